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

use super::{DecoderSpec, Family, OneOrMany, RopeConfig};

/// `config.json` of a Llama checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct LlamaConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    eos_token_id: Option<OneOrMany>,
    #[serde(flatten)]
    rope: RopeConfig,
}

fn default_eps() -> f64 {
    1e-6
}

fn default_max_positions() -> usize {
    2048
}

/// Parses a Llama `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let c: LlamaConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let head_dim = c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads.max(1));
    Ok(DecoderSpec {
        family: Family::Llama,
        vocab_size: c.vocab_size,
        hidden_size: c.hidden_size,
        intermediate_size: c.intermediate_size,
        num_layers: c.num_hidden_layers,
        num_heads: c.num_attention_heads,
        num_kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
        head_dim,
        rms_norm_eps: c.rms_norm_eps,
        rope_inv_freq: c.rope.inv_freq(head_dim, 10_000.0)?,
        max_position_embeddings: c.max_position_embeddings,
        tie_word_embeddings: c.tie_word_embeddings,
        qkv_bias: c.attention_bias,
        qk_norm: false,
        eos_token_ids: OneOrMany::into_vec(c.eos_token_id),
    })
}
