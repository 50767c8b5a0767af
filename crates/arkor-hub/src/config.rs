//! [`HubOptions`], the Ollama models directory, and the one place this crate reads the
//! environment.

use std::path::PathBuf;

/// Where and how to reach the hub.
#[derive(Clone)]
pub struct HubOptions {
    /// Hub base URL (`HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: String,
    /// Cache root (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Access token (`HF_TOKEN`, else `$HF_HOME/token`); redacted in `Debug`.
    pub token: Option<String>,
    /// Use only the cache (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Show download progress bars.
    pub progress: bool,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.offline)
            .field("progress", &self.progress)
            .finish()
    }
}

impl HubOptions {
    /// Reads `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN` and `HF_HUB_OFFLINE` the
    /// way the Python `huggingface_hub` library does.
    #[allow(clippy::disallowed_methods)] // This is the configuration module.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        let hf_home =
            var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".cache/huggingface"));
        let cache_dir =
            var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(hf_home.join("token"))
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
        });
        let offline = var("HF_HUB_OFFLINE")
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"));
        Self {
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".to_owned()),
            cache_dir,
            token,
            offline,
            progress: true,
        }
    }
}

/// Ollama's model store: `OLLAMA_MODELS`, else `$HOME/.ollama/models` (as `ollama serve`
/// run by the user picks it; the Linux system service keeps its own store under
/// `/usr/share/ollama/.ollama/models`, which needs `OLLAMA_MODELS` set to be found).
#[allow(clippy::disallowed_methods)] // This is the configuration module.
pub fn ollama_models_dir() -> PathBuf {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(dir) = var("OLLAMA_MODELS") {
        return PathBuf::from(dir.trim());
    }
    let home = var("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".ollama/models")
}
