//! The Qwen2 family: Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`).
//!
//! Architecturally a Llama decoder whose q/k/v projections carry a bias. Small Qwen2.5
//! checkpoints tie the output head to the embeddings; larger ones do not. Sliding-window
//! attention is declared in the config but disabled in every released checkpoint
//! (`use_sliding_window: false`), so it is not implemented.
//!
//! Reference: `transformers/models/qwen2/modeling_qwen2.py`.

use serde::Deserialize;

use super::{DecoderSpec, Family, OneOrMany, RopeConfig};

/// `config.json` of a Qwen2 checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct Qwen2Config {
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
    use_sliding_window: bool,
    eos_token_id: Option<OneOrMany>,
    #[serde(flatten)]
    rope: RopeConfig,
}

fn default_eps() -> f64 {
    1e-6
}

fn default_max_positions() -> usize {
    32_768
}

/// Parses a Qwen2 `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let c: Qwen2Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if c.use_sliding_window {
        return Err("field `use_sliding_window`: sliding-window attention is not supported".into());
    }
    let head_dim = c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads.max(1));
    Ok(DecoderSpec {
        family: Family::Qwen2,
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
        qkv_bias: true,
        qk_norm: false,
        eos_token_ids: OneOrMany::into_vec(c.eos_token_id),
    })
}
