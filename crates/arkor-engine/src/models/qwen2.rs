//! The Qwen2 family: Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`).
//!
//! Architecturally a Llama decoder whose q/k/v projections carry a bias. Small Qwen2.5
//! checkpoints tie the output head to the embeddings; larger ones do not. Sliding-window
//! attention is declared in the config but disabled in every released checkpoint
//! (`use_sliding_window: false`), so it is not implemented.
//!
//! Reference: `transformers/models/qwen2/modeling_qwen2.py`.

use serde::Deserialize;

use super::{CommonConfig, DecoderSpec, Family, FamilyDefaults};

/// `config.json` of a Qwen2 checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct Qwen2Config {
    #[serde(flatten)]
    common: CommonConfig,
    #[serde(default)]
    use_sliding_window: bool,
}

/// Parses a Qwen2 `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let c: Qwen2Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if c.use_sliding_window {
        return Err("field `use_sliding_window`: sliding-window attention is not supported".into());
    }
    c.common.spec(FamilyDefaults {
        family: Family::Qwen2,
        head_dim: None,
        rms_norm_eps: 1e-6,
        max_positions: 32_768,
        rope_theta: 10_000.0,
        qkv_bias: true,
        qk_norm: false,
        layers_without_rope: vec![],
        tie_word_embeddings: false,
    })
}
