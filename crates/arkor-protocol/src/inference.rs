//! Chat inference: arkor's `/v1/inference/chat` and the OpenAI-compatible
//! `/v1/chat/completions` and `/v1/models`.

use serde::{Deserialize, Serialize};

/// A chat message (OpenAI shape).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text (may be null on assistant tool-call messages).
    #[serde(default)]
    pub content: Option<String>,
    /// An assistant's calls: `[{id, type: "function", function: {name, arguments}}]`, with
    /// `arguments` a JSON string (OpenAI) or object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<serde_json::Value>>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// Which adapter answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum AdapterRef {
    /// A job's final adapter.
    Final {
        /// The job.
        job_id: String,
    },
    /// A job's checkpoint.
    Checkpoint {
        /// The job.
        job_id: String,
        /// The checkpoint's step.
        step: u64,
    },
}

/// `POST /v1/inference/chat` body: `adapter` or `baseModel`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Answer with this adapter on its job's base model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<AdapterRef>,
    /// Answer with this base model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
    /// Sampling temperature (0 = greedy). Default 0.7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// New tokens at most. Default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Server-sent chunks (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Sampling seed (arkor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Tool definitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<serde_json::Value>,
    /// `auto`, `none`, `required` or a named function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
    /// A [`ResponseFormat`] (kept as JSON so the backend can name a bad field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<serde_json::Value>,
    /// [`StructuredOutputs`] (kept as JSON so the backend can name a bad field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_outputs: Option<serde_json::Value>,
    /// Variables for the chat template, e.g. `{ "enable_thinking": false }` for Qwen3 and
    /// SmolLM3 (transformers' `apply_chat_template` keyword arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template_kwargs: Option<serde_json::Value>,
}

/// `responseFormat` (OpenAI's `response_format`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON valid against a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// The `json_schema` of a [`ResponseFormat::JsonSchema`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// A name for the schema (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the schema describes (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON schema (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// Every object must set `additionalProperties: false` (else 400 `invalid_schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `structuredOutputs` (vLLM's extension, snake_case keys): exactly one of `json`,
/// `regex`, `choice`, `grammar` and `json_object`, plus whitespace options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StructuredOutputs {
    /// A JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// A regular expression the whole reply matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The reply is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<Vec<String>>,
    /// A grammar in llguidance's Lark dialect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
    /// Any JSON object (`true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_object: Option<bool>,
    /// No whitespace between JSON tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_any_whitespace: Option<bool>,
    /// Objects that do not say allow no keys besides their `properties`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_additional_properties: Option<bool>,
    /// The whitespace allowed between JSON tokens, as a regex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whitespace_pattern: Option<String>,
}

/// `POST /v1/chat/completions` body (the subset arkor honours; other OpenAI keys are
/// accepted and ignored).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// A base model id or a fine-tune id from `/v1/models`.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// New tokens at most (legacy name).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// New tokens at most.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Stream chunks.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Stop strings: one or many.
    #[serde(default)]
    pub stop: Option<serde_json::Value>,
    /// A [`ResponseFormat`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<serde_json::Value>,
    /// [`StructuredOutputs`] (vLLM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_outputs: Option<serde_json::Value>,
    /// vLLM's older spelling of `structured_outputs.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guided_json: Option<serde_json::Value>,
    /// vLLM's older spelling of `structured_outputs.regex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guided_regex: Option<serde_json::Value>,
    /// vLLM's older spelling of `structured_outputs.choice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guided_choice: Option<serde_json::Value>,
    /// vLLM's older spelling of `structured_outputs.grammar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guided_grammar: Option<serde_json::Value>,
    /// vLLM's older spelling of `structured_outputs.whitespace_pattern`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guided_whitespace_pattern: Option<serde_json::Value>,
    /// Tool definitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<serde_json::Value>,
    /// `auto`, `none`, `required` or a named function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
    /// Variables for the chat template, e.g. `{ "enable_thinking": false }` (vLLM's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template_kwargs: Option<serde_json::Value>,
}

/// Token counts of a completion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

/// An assistant message in a completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: String,
    /// The reply (null when the reply is only tool calls).
    pub content: Option<String>,
    /// The tool calls of the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<serde_json::Value>>,
}

/// One choice of a completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// Always 0.
    pub index: u32,
    /// The reply.
    pub message: AssistantMessage,
    /// `stop` or `length`.
    pub finish_reason: String,
}

/// An OpenAI `chat.completion` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// `chatcmpl-...`.
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model id as requested.
    pub model: String,
    /// One choice.
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: Usage,
}

/// Streaming delta.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Set on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// New text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls, each whole: `[{index, id, type, function: {name, arguments}}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<serde_json::Value>>,
}

/// One choice of a chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Always 0.
    pub index: u32,
    /// New text.
    pub delta: Delta,
    /// Set on the last chunk.
    pub finish_reason: Option<String>,
}

/// An OpenAI `chat.completion.chunk` object (one SSE `data:` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// Same for every chunk of a reply.
    pub id: String,
    /// `chat.completion.chunk`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model id as requested.
    pub model: String,
    /// One choice.
    pub choices: Vec<ChunkChoice>,
}

/// One entry of `/v1/models`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// What `model` to send.
    pub id: String,
    /// `model`.
    pub object: String,
    /// Unix seconds (0 for base models).
    pub created: u64,
    /// `arkor` for base models, the org id for fine-tunes.
    pub owned_by: String,
    /// `base`, `final` or `checkpoint` (arkor).
    pub kind: String,
    /// The base model of a fine-tune (arkor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
    /// Whether a base model can be loaded without a download (arkor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_offline: Option<bool>,
    /// The job of a fine-tune (arkor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The checkpoint step (arkor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
}

/// `/v1/models` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// `list`.
    pub object: String,
    /// Base models, then fine-tunes newest first.
    pub data: Vec<ModelInfo>,
}
