//! The constraining fields of a chat request (`responseFormat` / `response_format`,
//! `structuredOutputs` / `structured_outputs`, vLLM's `guided_*`), validated into one
//! engine [`Constraint`]. Every rejection is a 400 naming the field as the route spells
//! it; a schema, regex or grammar that does not compile is `invalid_schema`, and it is
//! reported before a model loads or a stream starts.

use arkor_engine::constrain::{Constraint, JsonWhitespace, close_objects, strict_violation};
use arkor_protocol::error::ErrorCode;
use arkor_protocol::inference::{JsonSchemaFormat, ResponseFormat, StructuredOutputs};
use serde_json::Value;

use super::{ApiError, ApiResult};

/// How a route spells the fields that shape a reply.
#[derive(Clone, Copy)]
pub struct Spelling {
    pub response_format: &'static str,
    pub structured_outputs: &'static str,
    pub tools: &'static str,
    pub tool_choice: &'static str,
    pub chat_template_kwargs: &'static str,
}

/// `/v1/inference/chat` (camelCase, as the reference system).
pub const ARKOR: Spelling = Spelling {
    response_format: "responseFormat",
    structured_outputs: "structuredOutputs",
    tools: "tools",
    tool_choice: "toolChoice",
    chat_template_kwargs: "chatTemplateKwargs",
};
/// `/v1/chat/completions` (OpenAI and vLLM).
pub const OPENAI: Spelling = Spelling {
    response_format: "response_format",
    structured_outputs: "structured_outputs",
    tools: "tools",
    tool_choice: "tool_choice",
    chat_template_kwargs: "chat_template_kwargs",
};

fn invalid_schema(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidSchema, message)
}

/// The constraint a request asks for, if any.
pub async fn parse(
    response_format: Option<&Value>,
    structured_outputs: Option<&Value>,
    names: Spelling,
) -> ApiResult<Option<Constraint>> {
    let from_format = match response_format.filter(|v| !v.is_null()) {
        None => None,
        Some(v) => from_response_format(v, names.response_format)?,
    };
    let from_structured = match structured_outputs.filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(from_structured_outputs(v, names.structured_outputs)?),
    };
    let (constraint, field) = match (from_format, from_structured) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "invalid {}: it cannot be combined with a constraining {} (json_object or \
                 json_schema); send one of them",
                names.structured_outputs, names.response_format
            )));
        }
        (Some(c), None) => (c, names.response_format),
        (None, Some(c)) => (c, names.structured_outputs),
        (None, None) => return Ok(None),
    };
    let checked = constraint.clone();
    tokio::task::spawn_blocking(move || checked.check())
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            invalid_schema(format!("invalid {field}: {}", strip_prefix(&e.to_string())))
        })?;
    Ok(Some(constraint))
}

fn strip_prefix(message: &str) -> &str {
    message.strip_prefix("constrained decoding: ").unwrap_or(message)
}

fn from_response_format(v: &Value, name: &str) -> ApiResult<Option<Constraint>> {
    let format: ResponseFormat = serde_json::from_value(v.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid {name}: {e}; expected {{\"type\": \"text\"}}, {{\"type\": \"json_object\"}} \
             or {{\"type\": \"json_schema\", \"json_schema\": {{\"name\", \"schema\", \"strict\"}}}}"
        ))
    })?;
    Ok(match format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(Constraint::json_object()),
        ResponseFormat::JsonSchema { json_schema: JsonSchemaFormat { schema, strict, .. } } => {
            let schema = schema.ok_or_else(|| {
                ApiError::bad_request(format!("invalid {name}.json_schema: `schema` is required"))
            })?;
            check_schema_shape(&schema, &format!("{name}.json_schema.schema"))?;
            if strict == Some(true)
                && let Some(pointer) = strict_violation(&schema)
            {
                return Err(invalid_schema(format!(
                    "invalid {name}.json_schema.schema: a strict schema must set \
                     \"additionalProperties\": false on every object, and {} does not",
                    if pointer.is_empty() { "the root".to_owned() } else { pointer }
                )));
            }
            Some(Constraint::Json { schema, whitespace: JsonWhitespace::Bounded })
        }
    })
}

fn check_schema_shape(schema: &Value, field: &str) -> ApiResult<()> {
    if schema.is_object() {
        Ok(())
    } else {
        Err(invalid_schema(format!("invalid {field}: expected a JSON schema object, got {schema}")))
    }
}

fn from_structured_outputs(v: &Value, name: &str) -> ApiResult<Constraint> {
    let so: StructuredOutputs = serde_json::from_value(v.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid {name}: {e}")))?;
    let given: Vec<&str> = [
        ("json", so.json.is_some()),
        ("regex", so.regex.is_some()),
        ("choice", so.choice.is_some()),
        ("grammar", so.grammar.is_some()),
        ("json_object", so.json_object == Some(true)),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if given.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "invalid {name}: expected exactly one of json, regex, choice, grammar and \
             json_object: true, got {}",
            if given.is_empty() { "none".to_owned() } else { given.join(", ") }
        )));
    }
    let whitespace = if so.disable_any_whitespace == Some(true) {
        JsonWhitespace::None
    } else if let Some(p) = so.whitespace_pattern {
        JsonWhitespace::Pattern(p)
    } else {
        JsonWhitespace::Bounded
    };
    Ok(if let Some(mut schema) = so.json {
        check_schema_shape(&schema, &format!("{name}.json"))?;
        if so.disable_additional_properties == Some(true) {
            close_objects(&mut schema);
        }
        Constraint::Json { schema, whitespace }
    } else if let Some(rx) = so.regex {
        Constraint::Regex(rx)
    } else if let Some(choice) = so.choice {
        if choice.is_empty() {
            return Err(ApiError::bad_request(format!(
                "invalid {name}.choice: expected at least one choice"
            )));
        }
        Constraint::Choice(choice)
    } else if let Some(grammar) = so.grammar {
        if grammar.trim().is_empty() {
            return Err(ApiError::bad_request(format!("invalid {name}.grammar: it is blank")));
        }
        Constraint::Lark(grammar)
    } else {
        Constraint::Json { schema: serde_json::json!({"type": "object"}), whitespace }
    })
}

/// vLLM's older top-level `guided_json`, `guided_regex`, `guided_choice`,
/// `guided_grammar` and `guided_whitespace_pattern`, as one `structured_outputs` value.
pub fn guided_as_structured(fields: [(&str, Option<&Value>); 5]) -> Option<Value> {
    let mut out = serde_json::Map::new();
    for (key, value) in fields {
        let Some(v) = value.filter(|v| !v.is_null()) else { continue };
        let key = key.strip_prefix("guided_").unwrap_or(key);
        let v = match v {
            // vLLM also takes the schema as a JSON string.
            Value::String(text) if key == "json" => {
                serde_json::from_str(text).unwrap_or_else(|_| v.clone())
            }
            _ => v.clone(),
        };
        out.insert(key.to_owned(), v);
    }
    (!out.is_empty()).then_some(Value::Object(out))
}
