//! The inference service: one base model in memory, LoRA adapters applied per request.
//!
//! Generation runs on a blocking thread and streams text pieces through a channel; when
//! the receiver goes away (the client disconnected) the generation is cancelled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arkor_engine::cancel::CancelToken;
use arkor_engine::device::DeviceChoice;
use arkor_engine::generate::{FinishReason, SamplingParams, chat};
use arkor_engine::lora::Adapter;
use arkor_engine::models::Model;
use arkor_engine::tokenizer::{ChatMessage, TextTokenizer};
use tokio::sync::mpsc;

/// A base model ready to generate.
struct Loaded {
    reference: String,
    model: Arc<Model>,
    tokenizer: Arc<TextTokenizer>,
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
    /// `stop` or `length`.
    pub finish_reason: &'static str,
}

/// Why a generation failed.
pub struct Failure {
    pub message: String,
    /// The request could not be served as asked (a grammar that does not compile against
    /// the model's vocabulary): a 400, not a server fault.
    pub invalid_constraint: bool,
}

impl Failure {
    pub fn stopped() -> Failure {
        Failure { message: "generation stopped".to_owned(), invalid_constraint: false }
    }
}

/// A message from a generation: a piece of text, then exactly one end.
pub enum Piece {
    Text(String),
    Done(Result<Finished, Failure>),
}

/// Loads models on demand and keeps the last one.
pub struct Inference {
    data_dir: PathBuf,
    hub: arkor_hub::HubOptions,
    device: DeviceChoice,
    loaded: Mutex<Option<Arc<Loaded>>>,
    adapters: Mutex<HashMap<PathBuf, Arc<Adapter>>>,
    /// Serialises model loads so two requests do not load the same model twice.
    loading: Mutex<()>,
}

/// Adapters kept in memory at most.
const ADAPTER_CACHE: usize = 16;

impl Inference {
    pub fn new(data_dir: PathBuf, hub: arkor_hub::HubOptions, device: DeviceChoice) -> Self {
        Inference {
            data_dir,
            hub,
            device,
            loaded: Mutex::new(None),
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
        if let Some(l) = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && l.reference == reference
        {
            return Ok(l.clone());
        }
        let dir = crate::resolve::model(&self.data_dir, &self.hub, reference)?;
        let device = self.device.open()?;
        let loaded = Arc::new(Loaded {
            reference: reference.to_owned(),
            model: Arc::new(Model::load(&dir, &device)?),
            tokenizer: Arc::new(TextTokenizer::from_dir(&dir)?),
        });
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = Some(loaded.clone());
        self.adapters.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(loaded)
    }

    fn adapter(&self, dir: &Path, base: &Loaded) -> anyhow::Result<Arc<Adapter>> {
        if let Some(a) = self.adapters.lock().unwrap_or_else(|p| p.into_inner()).get(dir) {
            return Ok(a.clone());
        }
        let a = Arc::new(Adapter::load(dir, base.model.spec(), base.model.device())?);
        let mut cache = self.adapters.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= ADAPTER_CACHE {
            cache.clear();
        }
        cache.insert(dir.to_owned(), a.clone());
        Ok(a)
    }

    /// Starts a generation; text pieces and the end arrive on the returned channel.
    pub fn start(
        self: &Arc<Self>,
        target: Target,
        messages: Vec<ChatMessage>,
        params: SamplingParams,
    ) -> mpsc::UnboundedReceiver<Piece> {
        let (tx, rx) = mpsc::unbounded_channel();
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = me.generate(&target, &messages, &params, &tx);
            let _ = tx.send(Piece::Done(result.map_err(|e| Failure {
                message: format!("{e:#}"),
                invalid_constraint: matches!(
                    e.downcast_ref::<arkor_engine::Error>(),
                    Some(arkor_engine::Error::Constraint(_))
                ),
            })));
        });
        rx
    }

    fn generate(
        &self,
        target: &Target,
        messages: &[ChatMessage],
        params: &SamplingParams,
        tx: &mpsc::UnboundedSender<Piece>,
    ) -> anyhow::Result<Finished> {
        let base = self.base(&target.base_model)?;
        let adapter = match &target.adapter_dir {
            Some(dir) => Some(self.adapter(dir, &base)?),
            None => None,
        };
        let cancel = CancelToken::new();
        let mut on_text = |text: &str| {
            if tx.send(Piece::Text(text.to_owned())).is_err() {
                cancel.cancel();
            }
        };
        let generation = chat(
            &base.model,
            adapter.as_deref(),
            &base.tokenizer,
            messages,
            params,
            &cancel,
            &mut on_text,
        )?;
        Ok(Finished {
            prompt_tokens: generation.prompt_tokens,
            completion_tokens: generation.tokens.len(),
            finish_reason: match generation.finish_reason {
                FinishReason::Length => "length",
                FinishReason::Stop | FinishReason::Cancelled => "stop",
            },
        })
    }
}
