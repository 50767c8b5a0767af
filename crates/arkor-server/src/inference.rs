//! The inference service: base models in memory, LoRA adapters applied per request.
//!
//! A request is prepared on a blocking thread (model and adapter loaded, prompt rendered),
//! then joins its base model's decode batch (`batch.rs`), which streams text pieces through
//! a channel; when the receiver goes away (the client disconnected) the generation is
//! cancelled.

mod batch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arkor_engine::device::DeviceChoice;
use arkor_engine::generate::{FinishReason, Generation, SamplingParams};
use arkor_engine::lora::Adapter;
use arkor_engine::models::Model;
use arkor_engine::tokenizer::TextTokenizer;
use arkor_engine::tools::{
    Tool, ToolCall, ToolFormat, forced_call_grammar, hermes_system_prompt, parse_tool_calls,
};
use arkor_protocol::error::ErrorCode;
use tokio::sync::mpsc;

/// A base model ready to generate.
struct Loaded {
    reference: String,
    model: Arc<Model>,
    tokenizer: Arc<TextTokenizer>,
    /// Its decode thread, which every request on this base joins.
    batcher: batch::Batcher,
}

/// What to answer with.
pub struct Target {
    /// Base model reference (`arkor/tiny`, repo id, directory).
    pub base_model: String,
    /// An adapter directory on the base model.
    pub adapter_dir: Option<PathBuf>,
}

/// The end of a reply.
pub struct Finished {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// `stop`, `length` or `tool_calls`.
    pub finish_reason: &'static str,
    /// Tool calls read from the reply; then `content` is the text before them.
    pub tool_calls: Vec<ToolCall>,
    /// The reply text when tools were offered (it was not streamed as pieces).
    pub content: Option<String>,
}

/// Why a generation failed.
pub struct Failure {
    pub message: String,
    /// Set when the request could not be served as asked (a grammar that does not compile
    /// against the model's vocabulary, tools for a model without tool support): a 400 with
    /// this code, not a server fault.
    pub code: Option<ErrorCode>,
}

impl Failure {
    pub fn stopped() -> Failure {
        Failure { message: "generation stopped".to_owned(), code: None }
    }
}

/// How tools are used.
pub enum ToolMode {
    /// The model may call tools or answer (parsed from its native format).
    Auto,
    /// At least one call, forced by a grammar.
    Required,
    /// Exactly one call of this function, forced by a grammar.
    Named(String),
}

/// The tools of a request, validated.
pub struct ToolAsk {
    pub tools: Vec<Tool>,
    /// The OpenAI `tools` array, for the chat template.
    pub json: serde_json::Value,
    pub mode: ToolMode,
}

/// A conversation to answer: OpenAI-shaped messages (tool-call arguments as objects).
pub struct Prompt {
    pub messages: Vec<serde_json::Value>,
    pub tools: Option<ToolAsk>,
    /// More chat-template variables (`chat_template_kwargs`, e.g. `enable_thinking`).
    pub template_kwargs: serde_json::Map<String, serde_json::Value>,
}

/// The model cannot use tools freely.
#[derive(Debug, thiserror::Error)]
#[error(
    "tool_calling_not_configured: the chat template of {0} has no tool support, so tool calls \
     cannot be read from free replies; send toolChoice \"required\" or a named function (arkor \
     then forces a call with a grammar), or \"none\""
)]
struct ToolsNotConfigured(String);

/// A message from a generation: pieces of text (or, when the reply is read whole,
/// progress marks), then exactly one end.
pub enum Piece {
    Text(String),
    Progress,
    Done(Result<Finished, Failure>),
}

/// Adds `text` to the conversation's system message (a new first message when it has none).
fn add_system_text(messages: &mut Vec<serde_json::Value>, text: &str) {
    match messages.first_mut() {
        Some(first) if first["role"] == "system" => {
            let current = first["content"].as_str().unwrap_or_default().to_owned();
            first["content"] = if current.is_empty() {
                text.into()
            } else {
                format!("{current}\n\n{text}").into()
            };
        }
        _ => messages.insert(0, serde_json::json!({"role": "system", "content": text})),
    }
}

/// Loads models on demand and keeps the most recently used ones (`max_models`).
pub struct Inference {
    data_dir: PathBuf,
    hub: arkor_hub::HubOptions,
    device: DeviceChoice,
    /// Loaded base models, most recently used last.
    loaded: Mutex<Vec<Arc<Loaded>>>,
    max_models: usize,
    /// Requests decoded together at most on one base.
    max_batch: usize,
    /// Adapters by directory, with the base model each was loaded for.
    adapters: Mutex<HashMap<PathBuf, (Arc<Adapter>, Arc<Model>)>>,
    /// Serialises model loads so two requests do not load the same model twice.
    loading: Mutex<()>,
}

/// Adapters kept in memory at most.
const ADAPTER_CACHE: usize = 16;

impl Inference {
    /// Keeps up to `max_models` base models loaded (at least one): requests for bases beyond
    /// that evict the least recently used one. Up to `max_batch` concurrent requests on a
    /// base are decoded together.
    pub fn new(
        data_dir: PathBuf,
        hub: arkor_hub::HubOptions,
        device: DeviceChoice,
        max_models: usize,
        max_batch: usize,
    ) -> Self {
        Inference {
            data_dir,
            hub,
            device,
            loaded: Mutex::new(Vec::new()),
            max_models: max_models.max(1),
            max_batch: max_batch.max(1),
            adapters: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
        }
    }

    /// Whether a base model loads without the network.
    pub fn available_offline(&self, model: &str) -> bool {
        crate::resolve::model_available_offline(&self.data_dir, &self.hub, model)
    }

    fn base(&self, reference: &str) -> anyhow::Result<Arc<Loaded>> {
        let _guard = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = loaded.iter().position(|l| l.reference == reference) {
                let l = loaded.remove(i);
                loaded.push(l.clone());
                return Ok(l);
            }
        }
        let dir = crate::resolve::model(&self.data_dir, &self.hub, reference)?;
        let device = self.device.open()?;
        let model = Arc::new(Model::load(&dir, &device)?);
        let tokenizer = Arc::new(TextTokenizer::from_dir(&dir)?);
        let loaded = Arc::new(Loaded {
            reference: reference.to_owned(),
            batcher: batch::Batcher::start(model.clone(), tokenizer.clone(), self.max_batch)?,
            model,
            tokenizer,
        });
        let mut all = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= self.max_models {
            // Evict the least recently used base and the adapters loaded on it (requests
            // already running keep their `Arc`s).
            let gone = all.remove(0);
            self.adapters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, a| !Arc::ptr_eq(&a.1, &gone.model));
        }
        all.push(loaded.clone());
        Ok(loaded)
    }

    fn adapter(&self, dir: &Path, base: &Loaded) -> anyhow::Result<Arc<Adapter>> {
        if let Some((a, m)) = self.adapters.lock().unwrap_or_else(|p| p.into_inner()).get(dir)
            && Arc::ptr_eq(m, &base.model)
        {
            return Ok(a.clone());
        }
        let a = Arc::new(Adapter::load(dir, base.model.spec(), base.model.device())?);
        let mut cache = self.adapters.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= ADAPTER_CACHE {
            cache.clear();
        }
        cache.insert(dir.to_owned(), (a.clone(), base.model.clone()));
        Ok(a)
    }

    /// Starts a generation; text pieces and the end arrive on the returned channel.
    pub fn start(
        self: &Arc<Self>,
        target: Target,
        prompt: Prompt,
        params: SamplingParams,
    ) -> mpsc::UnboundedReceiver<Piece> {
        let (tx, rx) = mpsc::unbounded_channel();
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = me.submit(&target, prompt, params, &tx) {
                let _ = tx.send(Piece::Done(Err(failure(e))));
            }
        });
        rx
    }

    /// Loads what the request needs, renders its prompt and hands it to the base model's
    /// decode batch.
    fn submit(
        &self,
        target: &Target,
        mut prompt: Prompt,
        mut params: SamplingParams,
        tx: &mpsc::UnboundedSender<Piece>,
    ) -> anyhow::Result<()> {
        let base = self.base(&target.base_model)?;
        let adapter = match &target.adapter_dir {
            Some(dir) => Some(self.adapter(dir, &base)?),
            None => None,
        };
        let tokenizer = &base.tokenizer;
        // Tools: the template's own format, or Hermes taught by a system message when the
        // template cannot show tools (only for forced calls).
        let format = match &prompt.tools {
            None => None,
            Some(ask) => {
                let native = tokenizer.tool_format();
                if native.is_none() {
                    if matches!(ask.mode, ToolMode::Auto) {
                        return Err(ToolsNotConfigured(target.base_model.clone()).into());
                    }
                    add_system_text(&mut prompt.messages, &hermes_system_prompt(&ask.json));
                }
                let format = native.unwrap_or(ToolFormat::Hermes);
                match &ask.mode {
                    ToolMode::Auto => {}
                    ToolMode::Required => {
                        params.constraint = Some(forced_call_grammar(&ask.tools, format, false));
                    }
                    ToolMode::Named(name) => {
                        let one: Vec<Tool> =
                            ask.tools.iter().filter(|t| &t.name == name).cloned().collect();
                        params.constraint = Some(forced_call_grammar(&one, format, true));
                    }
                }
                Some(format)
            }
        };
        let tools_json = prompt.tools.as_ref().map(|t| &t.json);
        let text = tokenizer.render_conversation_with(
            &prompt.messages,
            tools_json,
            true,
            &prompt.template_kwargs,
        )?;
        let ids = tokenizer.encode(&text, false)?;
        let tools = prompt.tools.map(|t| t.tools).unwrap_or_default();
        let text_tx = tx.clone();
        let on_text = Box::new(move |text: &str| {
            // With tools the reply is read whole before anything is sent.
            let piece =
                if format.is_some() { Piece::Progress } else { Piece::Text(text.to_owned()) };
            text_tx.send(piece).is_ok()
        });
        let done_tx = tx.clone();
        let done = Box::new(move |result: anyhow::Result<Generation>| {
            let result = result.map(|g| finished(g, format, &tools)).map_err(failure);
            let _ = done_tx.send(Piece::Done(result));
        });
        base.batcher.submit(batch::Job { ids, params, adapter, on_text, done });
        Ok(())
    }
}

/// The end of a reply, with the tool calls read from it when tools were offered.
fn finished(generation: Generation, format: Option<ToolFormat>, tools: &[Tool]) -> Finished {
    let mut finished = Finished {
        prompt_tokens: generation.prompt_tokens,
        completion_tokens: generation.tokens.len(),
        finish_reason: match generation.finish_reason {
            FinishReason::Length => "length",
            FinishReason::Stop | FinishReason::Cancelled => "stop",
        },
        tool_calls: vec![],
        content: None,
    };
    if let Some(format) = format {
        match parse_tool_calls(&generation.text, format, tools) {
            Some((content, calls)) => {
                finished.content = content;
                finished.tool_calls = calls;
                finished.finish_reason = "tool_calls";
            }
            None => finished.content = Some(generation.text),
        }
    }
    finished
}

/// A failed request as the API reports it: a 400 code for what the client asked wrongly.
fn failure(e: anyhow::Error) -> Failure {
    let code = if e.downcast_ref::<ToolsNotConfigured>().is_some() {
        Some(ErrorCode::ToolCallingNotConfigured)
    } else if matches!(
        e.downcast_ref::<arkor_engine::Error>(),
        Some(arkor_engine::Error::Constraint(_))
    ) {
        Some(ErrorCode::InvalidSchema)
    } else {
        None
    };
    Failure { message: format!("{e:#}"), code }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arkor_engine::device::DeviceChoice;

    use super::Inference;

    #[test]
    fn the_least_recently_used_base_model_goes_first() {
        let data = tempfile::tempdir().unwrap();
        let (llama, qwen) = (
            arkor_test_support::fixtures::tiny_llama(),
            arkor_test_support::fixtures::tiny_qwen2(),
        );
        let (l, q) = (llama.path().display().to_string(), qwen.path().display().to_string());
        let hub = arkor_hub::HubOptions {
            endpoint: "http://127.0.0.1:9".into(),
            cache_dir: data.path().join("hub"),
            token: None,
            offline: true,
            progress: false,
        };
        let inference = Inference::new(data.path().to_owned(), hub, DeviceChoice::Cpu, 2, 16);
        let tiny = inference.base("arkor/tiny").unwrap();
        let first_llama = inference.base(&l).unwrap();
        // Two bases fit: both stay loaded (the same model, not a reload).
        assert!(Arc::ptr_eq(&inference.base("arkor/tiny").unwrap().model, &tiny.model));
        assert!(Arc::ptr_eq(&inference.base(&l).unwrap().model, &first_llama.model));
        // A third evicts the least recently used (arkor/tiny, used before the llama).
        inference.base(&q).unwrap();
        assert!(Arc::ptr_eq(&inference.base(&l).unwrap().model, &first_llama.model));
        assert!(!Arc::ptr_eq(&inference.base("arkor/tiny").unwrap().model, &tiny.model));
        assert_eq!(inference.loaded.lock().unwrap().len(), 2);
    }
}
