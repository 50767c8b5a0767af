//! `tools` and `toolChoice` (OpenAI shapes), and conversations that carry tool calls and
//! tool results, validated for the engine. Every rejection is a 400 naming the field.

use arkor_engine::constrain::strict_violation;
use arkor_engine::tools::{Tool, ToolCall};
use arkor_protocol::error::ErrorCode;
use arkor_protocol::inference::ChatMessage;
use serde_json::{Value, json};

use super::{ApiError, ApiResult};
use crate::inference::{ToolAsk, ToolMode};
use crate::util::new_id;

/// The messages as the chat template sees them: OpenAI's shape, with each tool call's
/// `arguments` parsed from its JSON string into an object (templates print it with
/// `tojson`; a string would be encoded twice).
pub fn conversation(messages: &[ChatMessage]) -> ApiResult<Vec<Value>> {
    if messages.is_empty() {
        return Err(ApiError::bad_request("invalid messages: expected at least one message"));
    }
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        if !["system", "user", "assistant", "tool"].contains(&m.role.as_str()) {
            return Err(ApiError::bad_request(format!(
                "invalid messages[{i}].role \"{}\": expected system, user, assistant or tool",
                m.role
            )));
        }
        let mut v = json!({"role": m.role, "content": m.content.clone().unwrap_or_default()});
        if let Some(calls) = &m.tool_calls {
            if m.role != "assistant" {
                return Err(ApiError::bad_request(format!(
                    "invalid messages[{i}].tool_calls: only assistant messages carry tool calls"
                )));
            }
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(j, c)| template_call(c, &format!("messages[{i}].tool_calls[{j}]")))
                .collect::<ApiResult<_>>()?;
            v["tool_calls"] = calls.into();
        }
        if m.role == "tool" {
            let id = m.tool_call_id.clone().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid messages[{i}]: a tool message needs tool_call_id"
                ))
            })?;
            v["tool_call_id"] = id.into();
        }
        out.push(v);
    }
    Ok(out)
}

fn template_call(call: &Value, field: &str) -> ApiResult<Value> {
    let name = call["function"]["name"].as_str().ok_or_else(|| {
        ApiError::bad_request(format!("invalid {field}.function.name: expected a string"))
    })?;
    let arguments = match &call["function"]["arguments"] {
        Value::String(s) => serde_json::from_str::<Value>(s).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid {field}.function.arguments: not a JSON object ({e})"
            ))
        })?,
        Value::Null => json!({}),
        other => other.clone(),
    };
    if !arguments.is_object() {
        return Err(ApiError::bad_request(format!(
            "invalid {field}.function.arguments: expected a JSON object"
        )));
    }
    let mut out = json!({"type": "function", "function": {"name": name, "arguments": arguments}});
    if let Some(id) = call.get("id") {
        out["id"] = id.clone();
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The tools and how to use them; `None` when there are none or `toolChoice` is `none`.
pub fn parse(
    tools: Option<&Value>,
    choice: Option<&Value>,
    names: (&str, &str),
) -> ApiResult<Option<ToolAsk>> {
    let (tools_field, choice_field) = names;
    let tools = tools.filter(|t| !t.is_null());
    let choice = choice.filter(|c| !c.is_null());
    let Some(tools) = tools else {
        return match choice {
            None => Ok(None),
            Some(_) => Err(ApiError::bad_request(format!(
                "invalid {choice_field}: it needs {tools_field}"
            ))),
        };
    };
    let list = tools.as_array().filter(|l| !l.is_empty()).ok_or_else(|| {
        ApiError::bad_request(format!("invalid {tools_field}: expected a non-empty array"))
    })?;
    let mut parsed: Vec<Tool> = vec![];
    let mut for_template = vec![];
    for (i, t) in list.iter().enumerate() {
        let field = format!("{tools_field}[{i}]");
        if t["type"] != "function" {
            return Err(ApiError::bad_request(format!(
                "invalid {field}.type: expected \"function\", got {}",
                t["type"]
            )));
        }
        let f = &t["function"];
        let name = f["name"].as_str().unwrap_or_default();
        if !valid_name(name) {
            return Err(ApiError::bad_request(format!(
                "invalid {field}.function.name {:?}: expected 1-64 of A-Z, a-z, 0-9, _ and -",
                f["name"]
            )));
        }
        if parsed.iter().any(|p| p.name == name) {
            return Err(ApiError::bad_request(format!(
                "invalid {field}.function.name: \"{name}\" is defined twice"
            )));
        }
        let parameters = match f.get("parameters").filter(|p| !p.is_null()) {
            None => json!({"type": "object"}),
            Some(p)
                if p.is_object() && (p["type"] == "object" || p.get("properties").is_some()) =>
            {
                p.clone()
            }
            Some(p) => {
                return Err(ApiError::bad_request(format!(
                    "invalid {field}.function.parameters: expected an object schema, got {p}"
                )));
            }
        };
        if f["strict"] == true
            && let Some(pointer) = strict_violation(&parameters)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidSchema,
                format!(
                    "invalid {field}.function.parameters: a strict tool must set \
                     \"additionalProperties\": false on every object, and {} does not",
                    if pointer.is_empty() { "the root".to_owned() } else { pointer }
                ),
            ));
        }
        for_template.push(json!({"type": "function", "function": f}));
        parsed.push(Tool { name: name.to_owned(), parameters });
    }
    let mode = match choice {
        None => ToolMode::Auto,
        Some(Value::String(s)) if s == "none" => return Ok(None),
        Some(Value::String(s)) if s == "auto" => ToolMode::Auto,
        Some(Value::String(s)) if s == "required" => ToolMode::Required,
        Some(c) if c["type"] == "function" && c["function"]["name"].is_string() => {
            let name = c["function"]["name"].as_str().unwrap_or_default();
            if !parsed.iter().any(|t| t.name == name) {
                return Err(ApiError::bad_request(format!(
                    "invalid {choice_field}: no tool named \"{name}\" in {tools_field}"
                )));
            }
            ToolMode::Named(name.to_owned())
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid {choice_field} {other}: expected \"auto\", \"none\", \"required\" or \
                 {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
            )));
        }
    };
    Ok(Some(ToolAsk { tools: parsed, json: Value::Array(for_template), mode }))
}

/// A call as OpenAI returns it: an id, and the arguments as a compact JSON string.
pub fn openai_call(call: &ToolCall) -> Value {
    json!({"id": new_id("call"), "type": "function",
        "function": {"name": call.name, "arguments": call.arguments.to_string()}})
}
