//! Structured outputs over HTTP on the untrained tiny model (random weights, the worst
//! case): every reply held to a JSON schema validates, a regex matches, a choice is one of
//! the choices, a grammar's language is kept, streaming gives the same text, and every
//! invalid request is a 400 naming the field, before any stream starts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::server::{Api, start};

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// `/v1/inference/chat` on the base model with `extra` merged in.
fn ask(extra: Value) -> Value {
    let mut body = json!({"messages": user("Classify: I cannot log in."), "baseModel": "arkor/tiny",
        "stream": false, "maxTokens": 200});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn reply(api: &Api, body: Value) -> (String, String) {
    let (status, r) = api.send("POST", &api.scoped("/v1/inference/chat"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let choice = &r["choices"][0];
    (
        choice["message"]["content"].as_str().unwrap().to_owned(),
        choice["finish_reason"].as_str().unwrap().to_owned(),
    )
}

/// The concatenated content deltas and the last finish reason of a streamed reply.
async fn streamed(api: &Api, path: &str, body: Value) -> (String, String) {
    let chunks = chunks(api, path, body).await;
    let text = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect::<String>();
    let finish = chunks.last().unwrap()["choices"][0]["finish_reason"].as_str().unwrap().to_owned();
    (text, finish)
}

/// The chunks of a streamed reply (`[DONE]` left out).
async fn chunks(api: &Api, path: &str, mut body: Value) -> Vec<Value> {
    body["stream"] = true.into();
    let (status, r) = api.send("POST", path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    r.as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn triage_schema() -> Value {
    json!({"type": "object", "additionalProperties": false,
        "required": ["category", "urgency", "details", "tags"],
        "properties": {
            "category": {"type": "string", "enum": ["account", "billing", "bug"]},
            "urgency": {"enum": ["low", "medium", "high"]},
            "details": {"type": "object", "additionalProperties": false, "required": ["summary", "ok"],
                "properties": {"summary": {"type": "string", "maxLength": 30}, "ok": {"type": "boolean"}}},
            "tags": {"type": "array", "maxItems": 3,
                "items": {"type": "string", "enum": ["login", "sso", "mfa"]}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constrained_replies_always_match() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 0).await;
    let api = Api::sign_up(&backend.url(), "structured").await;

    // A strict JSON schema with enums, a nested object and an array: every reply
    // validates, whatever the seed and temperature.
    let schema = triage_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let format = json!({"type": "json_schema",
        "json_schema": {"name": "triage", "schema": schema, "strict": true}});
    for (seed, temperature) in (0..12).map(|s| (s, [0.0, 0.7, 1.0, 1.5][s as usize % 4])) {
        let (text, finish) = reply(
            &api,
            ask(json!({"responseFormat": format, "seed": seed, "temperature": temperature})),
        )
        .await;
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("seed {seed}: not JSON ({e}): {text}"));
        assert!(validator.is_valid(&value), "seed {seed}: {value} breaks the schema");
        assert_eq!(finish, "stop", "seed {seed}: {text}");
    }
    // Unconstrained, the same model does not produce JSON.
    let (free, _) = reply(&api, ask(json!({"seed": 1, "temperature": 1.0}))).await;
    assert!(serde_json::from_str::<Value>(&free).is_err(), "{free}");

    // json_object: an object. Its keys and values are free, so a random model can ramble
    // until maxTokens; every reply that ended by itself parses, and most do.
    let mut finished = 0;
    for seed in 0..6 {
        let (text, finish) = reply(
            &api,
            ask(json!({"responseFormat": {"type": "json_object"}, "seed": seed,
                "temperature": 0.7, "maxTokens": 400})),
        )
        .await;
        if finish == "stop" {
            assert!(serde_json::from_str::<Value>(&text).unwrap().is_object(), "{text}");
            finished += 1;
        } else {
            assert!(text.starts_with('{'), "{text}");
        }
    }
    assert!(finished >= 3, "only {finished} of 6 JSON objects closed within 400 tokens");

    // regex, choice, grammar.
    for seed in 0..8 {
        let so = json!({"regex": "[0-9]{3}-[0-9]{4}"});
        let (text, finish) =
            reply(&api, ask(json!({"structuredOutputs": so, "seed": seed, "temperature": 1.0})))
                .await;
        let b = text.as_bytes();
        assert!(
            b.len() == 8
                && b[3] == b'-'
                && b.iter().enumerate().all(|(i, c)| i == 3 || c.is_ascii_digit()),
            "{text}"
        );
        assert_eq!(finish, "stop");
        let so = json!({"choice": ["yes", "no", "maybe \"quoted\"", "é"]});
        let (text, _) =
            reply(&api, ask(json!({"structuredOutputs": so, "seed": seed, "temperature": 1.5})))
                .await;
        assert!(["yes", "no", "maybe \"quoted\"", "é"].contains(&text.as_str()), "{text}");
        let so = json!({"grammar": "start: \"x=\" NUM \";\"\nNUM: /[0-9]{1,3}/"});
        let (text, _) =
            reply(&api, ask(json!({"structuredOutputs": so, "seed": seed, "temperature": 1.0})))
                .await;
        let num = text.strip_prefix("x=").and_then(|t| t.strip_suffix(';')).unwrap_or_default();
        assert!((1..=3).contains(&num.len()) && num.bytes().all(|c| c.is_ascii_digit()), "{text}");
    }

    // No whitespace at all with disable_any_whitespace; only declared keys with
    // disable_additional_properties.
    let open = json!({"type": "object", "properties": {"a": {"enum": [1, 2]}, "b": {"type": "boolean"}},
        "required": ["a", "b"]});
    for seed in 0..6 {
        let so = json!({"json": open, "disable_any_whitespace": true,
            "disable_additional_properties": true});
        let (text, _) =
            reply(&api, ask(json!({"structuredOutputs": so, "seed": seed, "temperature": 1.0})))
                .await;
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(text, serde_json::to_string(&value).unwrap(), "compact");
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["a", "b"], "{text}");
    }

    // Streaming: the deltas concatenate to the non-streaming text for the same seed.
    let body = ask(json!({"responseFormat": format, "seed": 5, "temperature": 1.0}));
    let whole = reply(&api, body.clone()).await;
    assert_eq!(streamed(&api, &api.scoped("/v1/inference/chat"), body).await, whole);

    // Running out of tokens mid-reply says so; the text is not repaired.
    let (text, finish) =
        reply(&api, ask(json!({"responseFormat": format, "maxTokens": 3, "seed": 1}))).await;
    assert_eq!(finish, "length");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    // The OpenAI route takes OpenAI's and vLLM's spellings.
    let completions = |extra: Value| {
        let mut body = json!({"model": "arkor/tiny", "messages": user("Answer."), "seed": 2,
            "temperature": 1.0, "max_tokens": 200});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for extra in [
        json!({"response_format": format}),
        json!({"structured_outputs": {"json": triage_schema()}}),
        json!({"guided_json": triage_schema()}),
    ] {
        let (status, r) =
            api.send("POST", "/v1/chat/completions", Some(completions(extra.clone()))).await;
        assert_eq!(status, StatusCode::OK, "{extra}: {r}");
        let text = r["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(validator.is_valid(&serde_json::from_str(text).unwrap()), "{extra}: {text}");
    }
    let (status, r) = api
        .send(
            "POST",
            "/v1/chat/completions",
            Some(completions(json!({"guided_choice": ["up", "down"]}))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert!(["up", "down"].contains(&r["choices"][0]["message"]["content"].as_str().unwrap()));
    let body = completions(json!({"response_format": format}));
    let (status, r) = api.send("POST", "/v1/chat/completions", Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let (text, finish) = streamed(&api, "/v1/chat/completions", body).await;
    assert_eq!(
        (text.as_str(), finish.as_str()),
        (
            r["choices"][0]["message"]["content"].as_str().unwrap(),
            r["choices"][0]["finish_reason"].as_str().unwrap()
        )
    );

    // async-openai's typed response_format.
    use async_openai::types::chat::{
        ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs, ResponseFormat,
        ResponseFormatJsonSchema,
    };
    let config = async_openai::config::OpenAIConfig::new()
        .with_api_base(format!("{}/v1", api.base))
        .with_api_key(&api.token);
    let client = async_openai::Client::with_config(config);
    let request = CreateChatCompletionRequestArgs::default()
        .model("arkor/tiny")
        .seed(4)
        .temperature(1.0)
        .max_completion_tokens(200u32)
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("Classify this.")
            .build()
            .unwrap()
            .into()])
        .response_format(ResponseFormat::JsonSchema {
            json_schema: ResponseFormatJsonSchema {
                name: "triage".into(),
                description: None,
                schema: triage_schema(),
                strict: Some(true),
            },
        })
        .build()
        .unwrap();
    let answer = client.chat().create(request).await.unwrap();
    let text = answer.choices[0].message.content.clone().unwrap();
    assert!(validator.is_valid(&serde_json::from_str(&text).unwrap()), "{text}");

    // The official OpenAI Python client: response_format, then a forced tool call.
    if let Some(py) = arkor_test_support::real::openai_python() {
        let (url, token) = (format!("{}/v1", api.base), api.token.clone());
        let weather = json!({"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "additionalProperties": false, "required": ["city"],
                "properties": {"city": {"enum": ["Oslo", "Rome"]}}}}});
        let base_req = json!({"model": "arkor/tiny", "temperature": 1.0, "seed": 5,
            "max_tokens": 200, "messages": [{"role": "user", "content": "Classify this."}]});
        let mut with_format = base_req.clone();
        with_format["response_format"] = json!({"type": "json_schema",
            "json_schema": {"name": "triage", "schema": triage_schema(), "strict": true}});
        let mut with_tool = base_req.clone();
        with_tool["tools"] = json!([weather]);
        with_tool["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
        let results = tokio::task::spawn_blocking(move || {
            [(with_format, false), (with_tool.clone(), false), (with_tool, true)].map(|(r, s)| {
                arkor_test_support::real::openai_python_chat(&py, &url, &token, &r, s)
            })
        })
        .await
        .unwrap();
        let text = results[0]["content"].as_str().unwrap_or_else(|| panic!("{}", results[0]));
        assert!(validator.is_valid(&serde_json::from_str(text).unwrap()), "{text}");
        for r in &results[1..] {
            assert_eq!(r["finish_reason"], "tool_calls", "{r}");
            let call = &r["tool_calls"][0];
            assert_eq!(call["name"], "get_weather", "{r}");
            let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
            assert!(["Oslo", "Rome"].contains(&args["city"].as_str().unwrap()), "{r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_constraints_are_400s_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 0).await;
    let api = Api::sign_up(&backend.url(), "structured").await;
    let loose = json!({"type": "object", "additionalProperties": false,
        "properties": {"inner": {"type": "object", "properties": {"x": {"type": "string"}}}}});
    let cases = [
        (
            json!({"responseFormat": {"type": "json_schema",
            "json_schema": {"name": "t", "schema": loose, "strict": true}}}),
            "invalid_schema",
            "/properties/inner",
        ),
        (
            json!({"responseFormat": {"type": "json_schema", "json_schema": {"name": "t",
            "schema": {"type": "strin"}}}}),
            "invalid_schema",
            "responseFormat",
        ),
        (
            json!({"structuredOutputs": {"json": {"type": "string", "pattern": "(?=a)b"}}}),
            "invalid_schema",
            "structuredOutputs",
        ),
        (
            json!({"structuredOutputs": {"json": {"type": "string", "format": "foo"}}}),
            "invalid_schema",
            "foo",
        ),
        (
            json!({"structuredOutputs": {"regex": "(unclosed"}}),
            "invalid_schema",
            "structuredOutputs",
        ),
        (
            json!({"structuredOutputs": {"grammar": "start: ("}}),
            "invalid_schema",
            "structuredOutputs",
        ),
        (json!({"structuredOutputs": {"choice": []}}), "bad_request", "structuredOutputs.choice"),
        (
            json!({"structuredOutputs": {"grammar": "  "}}),
            "bad_request",
            "structuredOutputs.grammar",
        ),
        (json!({"structuredOutputs": {"json": {}, "regex": "a"}}), "bad_request", "json, regex"),
        (json!({"structuredOutputs": {}}), "bad_request", "got none"),
        (
            json!({"responseFormat": {"type": "json_object"}, "structuredOutputs": {"regex": "a"}}),
            "bad_request",
            "cannot be combined",
        ),
        (json!({"responseFormat": {"type": "xml"}}), "bad_request", "responseFormat"),
        (
            json!({"responseFormat": {"type": "json_schema", "json_schema": {"name": "t"}}}),
            "bad_request",
            "schema",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
            "tool_calling_not_configured",
            "tool",
        ),
    ];
    for (extra, code, needle) in cases {
        for stream in [false, true] {
            let mut body = ask(extra.clone());
            body["stream"] = stream.into();
            let (status, r) = api.send("POST", &api.scoped("/v1/inference/chat"), Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {r}");
            assert_eq!(r["code"], code, "{extra}: {r}");
            let message = r["error"].as_str().unwrap();
            assert!(message.contains(needle), "{extra}: {message}");
        }
    }
    let body = json!({"model": "arkor/tiny", "messages": user("hi"),
        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": loose, "strict": true}}});
    let (status, r) = api.send("POST", "/v1/chat/completions", Some(body)).await;
    assert_eq!((status, r["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_schema")));
    assert!(r["error"].as_str().unwrap().contains("response_format.json_schema.schema"), "{r}");
    // The service still answers after all that.
    let (text, _) = reply(&api, ask(json!({"structuredOutputs": {"choice": ["ok"]}}))).await;
    assert_eq!(text, "ok");
}

fn two_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
            "strict": true, "parameters": {"type": "object", "additionalProperties": false,
                "required": ["city", "unit"], "properties": {
                    "city": {"enum": ["Paris", "Tokyo", "Lima"]},
                    "unit": {"enum": ["c", "f"]}}}}},
        {"type": "function", "function": {"name": "set_alarm",
            "parameters": {"type": "object", "additionalProperties": false, "required": ["hour"],
                "properties": {"hour": {"type": "integer", "minimum": 0, "maximum": 23}}}}}
    ])
}

/// The calls of a reply as (name, parsed arguments).
fn calls_of(message: &Value) -> Vec<(String, Value)> {
    message["tool_calls"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "function", "{c}");
            assert!(c["id"].as_str().unwrap().starts_with("call_"), "{c}");
            let args = c["function"]["arguments"].as_str().unwrap();
            (
                c["function"]["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(args).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_tool_calls_validate_and_stream_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 0).await;
    let api = Api::sign_up(&backend.url(), "tools").await;
    let tools = two_tools();
    let schema_of = |name: &str| {
        let t = tools.as_array().unwrap().iter().find(|t| t["function"]["name"] == name).unwrap();
        jsonschema::validator_for(&t["function"]["parameters"]).unwrap()
    };
    let body = |choice: Value, seed: u64| {
        ask(json!({"tools": tools, "toolChoice": choice, "seed": seed, "temperature": 1.0,
            "maxTokens": 300}))
    };
    // required: at least one call, each to a known tool with valid arguments, on a model
    // with random weights and no tool support in its template.
    for seed in 0..8 {
        let (status, r) = api
            .send("POST", &api.scoped("/v1/inference/chat"), Some(body(json!("required"), seed)))
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let choice = &r["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{r}");
        let calls = calls_of(&choice["message"]);
        assert!(!calls.is_empty(), "{r}");
        for (name, args) in calls {
            assert!(schema_of(&name).is_valid(&args), "seed {seed}: {name} {args}");
        }
    }
    // A named function: exactly one call, to it.
    let named = json!({"type": "function", "function": {"name": "set_alarm"}});
    for seed in 0..4 {
        let (_, r) = api
            .send("POST", &api.scoped("/v1/inference/chat"), Some(body(named.clone(), seed)))
            .await;
        let calls = calls_of(&r["choices"][0]["message"]);
        assert_eq!(calls.len(), 1, "{r}");
        assert_eq!(calls[0].0, "set_alarm");
        assert!(schema_of("set_alarm").is_valid(&calls[0].1), "{r}");
    }
    // none: the tools are ignored and the reply is text.
    let (_, r) =
        api.send("POST", &api.scoped("/v1/inference/chat"), Some(body(json!("none"), 1))).await;
    assert!(r["choices"][0]["message"]["tool_calls"].is_null(), "{r}");
    assert_ne!(r["choices"][0]["finish_reason"], "tool_calls");

    // Streaming gives the same calls, each whole in one delta, then finish_reason.
    let streaming = body(json!("required"), 3);
    let (_, whole) =
        api.send("POST", &api.scoped("/v1/inference/chat"), Some(streaming.clone())).await;
    let chunks = chunks(&api, &api.scoped("/v1/inference/chat"), streaming).await;
    let streamed: Vec<Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .cloned()
        .collect();
    assert_eq!(
        calls_of(&json!({"tool_calls": streamed})),
        calls_of(&whole["choices"][0]["message"])
    );
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");

    // A conversation that carries a call (arguments as a string, as OpenAI sends them) and
    // its result renders and is answered; the OpenAI route takes tools too.
    let history = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"c\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}
    ]);
    let (status, r) = api
        .send(
            "POST",
            "/v1/chat/completions",
            Some(json!({"model": "arkor/tiny", "messages": history,
            "tools": tools, "tool_choice": "required", "seed": 2, "max_tokens": 300})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["choices"][0]["finish_reason"], "tool_calls", "{r}");

    // Bad tool requests are 400s naming the field.
    let cases = [
        (json!({"tools": tools}), "tool_calling_not_configured", "no tool support"),
        (
            json!({"tools": tools, "toolChoice": "auto"}),
            "tool_calling_not_configured",
            "arkor/tiny",
        ),
        (
            json!({"tools": tools, "toolChoice": {"type": "function", "function": {"name": "nope"}}}),
            "bad_request",
            "no tool named \"nope\"",
        ),
        (json!({"toolChoice": "required"}), "bad_request", "toolChoice: it needs tools"),
        (json!({"tools": []}), "bad_request", "non-empty array"),
        (
            json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]}),
            "bad_request",
            "tools[0].function.name",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f", "strict": true,
            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}}]}),
            "invalid_schema",
            "tools[0].function.parameters",
        ),
        (
            json!({"tools": tools, "toolChoice": "required", "responseFormat": {"type": "json_object"}}),
            "bad_request",
            "toolChoice",
        ),
        (json!({"messages": [{"role": "tool", "content": "x"}]}), "bad_request", "tool_call_id"),
    ];
    for (extra, code, needle) in cases {
        for stream in [false, true] {
            let mut b = ask(extra.clone());
            b["stream"] = stream.into();
            let (status, r) = api.send("POST", &api.scoped("/v1/inference/chat"), Some(b)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {r}");
            assert_eq!(r["code"], code, "{extra}: {r}");
            assert!(r["error"].as_str().unwrap().contains(needle), "{extra}: {r}");
        }
    }
}

/// `chat_template_kwargs` reach the chat template: with a Qwen3-style `enable_thinking`
/// switch, the same request with thinking off has a longer prompt (the empty think block
/// the template adds); a variable arkor sets itself is refused, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_template_kwargs_reach_the_template() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 0).await;
    let api = Api::sign_up(&backend.url(), "kwargs").await;
    // arkor/tiny with a template that reads `enable_thinking` as Qwen3's does.
    let tiny = arkor_engine::tiny::ensure_tiny_model(&tmp.path().join("tiny")).unwrap();
    let model = tmp.path().join("thinking-tiny");
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(&tiny).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, model.join(path.file_name().unwrap())).unwrap();
    }
    let file = model.join("tokenizer_config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let template = config["chat_template"].as_str().unwrap().to_owned()
        + "{%- if add_generation_prompt and enable_thinking is defined and not enable_thinking %}\
           {{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}";
    config["chat_template"] = template.into();
    std::fs::write(&file, config.to_string()).unwrap();

    let prompt_tokens = |extra: Value| {
        let mut body = json!({"messages": user("Hi!"), "baseModel": model, "stream": false,
            "maxTokens": 1});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let api = &api;
        async move {
            let (status, r) = api.send("POST", &api.scoped("/v1/inference/chat"), Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{r}");
            r["usage"]["prompt_tokens"].as_u64().unwrap()
        }
    };
    let plain = prompt_tokens(json!({})).await;
    let on = prompt_tokens(json!({"chatTemplateKwargs": {"enable_thinking": true}})).await;
    let off = prompt_tokens(json!({"chatTemplateKwargs": {"enable_thinking": false}})).await;
    assert_eq!(on, plain);
    assert!(off > plain + 10, "the think block adds its tokens: {plain} -> {off}");

    for (path, body, field) in [
        (
            api.scoped("/v1/inference/chat"),
            ask(json!({"chatTemplateKwargs": {"messages": []}})),
            "chatTemplateKwargs.messages",
        ),
        (
            api.scoped("/v1/inference/chat"),
            ask(json!({"chatTemplateKwargs": "thinking"})),
            "chatTemplateKwargs",
        ),
        (
            "/v1/chat/completions".to_owned(),
            json!({"model": "arkor/tiny", "messages": user("Hi!"),
                "chat_template_kwargs": {"add_generation_prompt": false}}),
            "chat_template_kwargs.add_generation_prompt",
        ),
    ] {
        let (status, r) = api.send("POST", &path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
        assert!(r["error"].as_str().unwrap().contains(&format!("invalid {field}")), "{r}");
    }
    backend.shutdown().await;
}
