//! The Qwen3 family (`Qwen3ForCausalLM`): Qwen3 0.6B to 32B dense checkpoints.
//!
//! A Llama decoder with two differences: each query and key head is RMS-normalised (a
//! learned `[head_dim]` weight, `self_attn.q_norm` / `self_attn.k_norm`) after its
//! projection and before the rotation, and `head_dim` is set on its own rather than
//! derived from the hidden size (Qwen3-0.6B: hidden 1024, 16 heads of 128). No bias on
//! q/k/v unless `attention_bias` says so. Sliding-window attention is declared but off in
//! every released checkpoint (`use_sliding_window: false`), so a config that turns it on
//! is refused.
//!
//! Reference: `transformers/models/qwen3/modeling_qwen3.py`.

use serde::Deserialize;

use super::{CommonConfig, DecoderSpec, Family, FamilyDefaults};

/// `config.json` of a Qwen3 checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct Qwen3Config {
    #[serde(flatten)]
    common: CommonConfig,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    use_sliding_window: bool,
}

/// Parses a Qwen3 `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let c: Qwen3Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if c.use_sliding_window {
        return Err("field `use_sliding_window`: sliding-window attention is not supported".into());
    }
    c.common.spec(FamilyDefaults {
        family: Family::Qwen3,
        // transformers' default when the field is absent.
        head_dim: Some(128),
        rms_norm_eps: 1e-6,
        max_positions: 32_768,
        rope_theta: 10_000.0,
        qkv_bias: c.attention_bias,
        qk_norm: true,
        layers_without_rope: vec![],
        tie_word_embeddings: false,
    })
}
