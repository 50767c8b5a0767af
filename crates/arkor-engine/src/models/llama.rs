//! The Llama family: Llama 2 and 3.x, SmolLM2, TinyLlama and other `LlamaForCausalLM`
//! checkpoints.
//!
//! Architecture: pre-norm decoder blocks (RMSNorm, grouped-query attention with rotary
//! embeddings in the "rotate half" layout, SwiGLU MLP), a final RMSNorm and an output
//! head that may be tied to the embeddings. Llama 3 checkpoints add `rope_scaling` with
//! `rope_type = "llama3"`, which stretches the low rotary frequencies.
//!
//! Reference: `transformers/models/llama/modeling_llama.py`.

use serde::Deserialize;

use super::{CommonConfig, DecoderSpec, Family, FamilyDefaults};

/// `config.json` of a Llama checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct LlamaConfig {
    #[serde(flatten)]
    common: CommonConfig,
    #[serde(default)]
    attention_bias: bool,
}

/// Parses a Llama `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let c: LlamaConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
    c.common.spec(FamilyDefaults {
        family: Family::Llama,
        head_dim: None,
        rms_norm_eps: 1e-6,
        max_positions: 2048,
        rope_theta: 10_000.0,
        qkv_bias: c.attention_bias,
        qk_norm: false,
        layers_without_rope: vec![],
        tie_word_embeddings: false,
    })
}
