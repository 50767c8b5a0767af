//! Tool calling: how a model family writes tool calls, the grammar that forces a call,
//! and the parser that reads calls back out of a reply.
//!
//! Two native formats are known, detected from the chat template:
//! - **Hermes** (Qwen2.5 and most ChatML tool templates): the template shows the tools in
//!   the system turn and the model answers `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`,
//!   one block per call;
//! - **Llama 3 JSON** (Llama 3.1/3.2): a bare `{"name": ..., "parameters": {...}}`.
//!
//! A template that never reads `tools` (SmolLM2's, ChatML, `arkor/tiny`) has no native
//! format: a forced call then uses the Hermes format, with the tools described in a system
//! message arkor adds ([`hermes_system_prompt`]), and free (`auto`) tool use is refused.

use serde_json::{Value, json};

use crate::constrain::{Constraint, DEFAULT_JSON_WHITESPACE};
use crate::tokenizer::TextTokenizer;

/// How a model writes tool calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolFormat {
    /// `<tool_call>{"name", "arguments"}</tool_call>` blocks.
    Hermes,
    /// A bare `{"name", "parameters"}` object (optionally after `<|python_tag|>`).
    Llama3Json,
}

impl TextTokenizer {
    /// The tool-call format the chat template teaches, if it reads `tools` at all.
    pub fn tool_format(&self) -> Option<ToolFormat> {
        if !self.template_uses_tools() {
            return None;
        }
        let t = self.chat_template();
        if t.contains("<tool_call>") {
            Some(ToolFormat::Hermes)
        } else if t.contains("<|start_header_id|>") {
            Some(ToolFormat::Llama3Json)
        } else {
            None
        }
    }
}

/// One function tool: `{"type": "function", "function": {name, description?, parameters?}}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// The function name.
    pub name: String,
    /// Its JSON-schema parameters (`{"type": "object"}` when the tool gave none).
    pub parameters: Value,
}

/// A call read from a reply.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// The function.
    pub name: String,
    /// Its arguments (a JSON object).
    pub arguments: Value,
}

/// The grammar of a reply that is one call (`only_one`) or one or more calls to `tools`,
/// written in `format`.
pub fn forced_call_grammar(tools: &[Tool], format: ToolFormat, only_one: bool) -> Constraint {
    let key = match format {
        ToolFormat::Hermes => "arguments",
        ToolFormat::Llama3Json => "parameters",
    };
    let alternatives: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({"type": "object", "additionalProperties": false, "required": ["name", key],
                "properties": {"name": {"const": t.name}, key: t.parameters}})
        })
        .collect();
    let mut schema = json!({"anyOf": alternatives});
    schema["x-guidance"] = json!({"whitespace_pattern": DEFAULT_JSON_WHITESPACE});
    let body = serde_json::to_string(&schema).expect("schemas serialise");
    let grammar = match (format, only_one) {
        (ToolFormat::Hermes, true) => format!("start: call\n{}", hermes_call(&body)),
        (ToolFormat::Hermes, false) => {
            format!("start: call (\"\\n\" call)*\n{}", hermes_call(&body))
        }
        (ToolFormat::Llama3Json, _) => format!("start: %json {body}"),
    };
    Constraint::Lark(grammar)
}

fn hermes_call(body: &str) -> String {
    format!("call: \"<tool_call>\\n\" %json {body} \"\\n</tool_call>\"")
}

/// The system text that teaches the Hermes format to a model whose template cannot show
/// tools (Qwen2.5's wording).
pub fn hermes_system_prompt(tools: &Value) -> String {
    let mut text = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for tool in tools.as_array().into_iter().flatten() {
        text.push('\n');
        crate::tokenizer::python_dumps(tool, None, false, false, 0, &mut text);
    }
    text.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and \
         arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": \
         <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    text
}

/// Splits a reply into its text before the first call and the calls, or `None` when it
/// holds no well-formed call to a known tool (then it is plain text).
pub fn parse_tool_calls(
    text: &str,
    format: ToolFormat,
    known: &[Tool],
) -> Option<(Option<String>, Vec<ToolCall>)> {
    let is_known = |name: &str| known.iter().any(|t| t.name == name);
    let (content, bodies): (&str, Vec<&str>) = match format {
        ToolFormat::Hermes => {
            let start = text.find("<tool_call>")?;
            let (open, close) = ("<tool_call>", "</tool_call>");
            let mut bodies = vec![];
            let mut rest = &text[start..];
            while let Some(i) = rest.find(open) {
                let after = &rest[i + open.len()..];
                let end = after.find(close);
                bodies.push(after[..end.unwrap_or(after.len())].trim());
                rest = end.map_or("", |e| &after[e + close.len()..]);
            }
            (&text[..start], bodies)
        }
        ToolFormat::Llama3Json => {
            let body = text.trim_start();
            let body = body.strip_prefix("<|python_tag|>").unwrap_or(body);
            if !body.trim_start().starts_with('{') {
                return None;
            }
            ("", body.split("; ").collect())
        }
    };
    let mut calls = vec![];
    for body in bodies {
        let value: Value = serde_json::from_str(body).ok()?;
        let items = match value {
            Value::Array(items) => items,
            one => vec![one],
        };
        for item in items {
            let name = item["name"].as_str()?.to_owned();
            let arguments = item.get("arguments").or_else(|| item.get("parameters"))?.clone();
            if !is_known(&name) || !arguments.is_object() {
                return None;
            }
            calls.push(ToolCall { name, arguments });
        }
    }
    if calls.is_empty() {
        return None;
    }
    let content = content.trim();
    Some(((!content.is_empty()).then(|| content.to_owned()), calls))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<Tool> {
        vec![
            Tool { name: "get_weather".into(), parameters: json!({"type": "object"}) },
            Tool { name: "add".into(), parameters: json!({"type": "object"}) },
        ]
    }

    #[test]
    fn hermes_and_llama_calls_parse_and_anything_else_stays_text() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>";
        let (content, calls) = parse_tool_calls(text, ToolFormat::Hermes, &tools()).unwrap();
        assert_eq!(content.as_deref(), Some("Let me check."));
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments, json!({"city": "Paris"}));
        // SmolLM2 writes a JSON array inside one block.
        let arr = "<tool_call>[{\"name\": \"add\", \"arguments\": {}}]</tool_call>";
        assert_eq!(parse_tool_calls(arr, ToolFormat::Hermes, &tools()).unwrap().1.len(), 1);
        let llama = "<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": 2}}";
        let (content, calls) = parse_tool_calls(llama, ToolFormat::Llama3Json, &tools()).unwrap();
        assert_eq!((content, calls[0].arguments.clone()), (None, json!({"a": 2})));
        for plain in [
            "no call here",
            "<tool_call>{\"name\": \"nope\", \"arguments\": {}}</tool_call>",
            "<tool_call>{broken</tool_call>",
        ] {
            assert_eq!(parse_tool_calls(plain, ToolFormat::Hermes, &tools()), None, "{plain}");
        }
    }

    #[test]
    fn forced_call_grammars_compile() {
        for format in [ToolFormat::Hermes, ToolFormat::Llama3Json] {
            for only_one in [true, false] {
                forced_call_grammar(&tools(), format, only_one).check().unwrap();
            }
        }
    }
}
