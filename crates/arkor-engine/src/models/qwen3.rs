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

use super::{DecoderSpec, Family, OneOrMany, RopeConfig};

/// `config.json` of a Qwen3 checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct Qwen3Config {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    /// transformers' default when the field is absent.
    #[serde(default = "default_head_dim")]
    head_dim: usize,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    use_sliding_window: bool,
    eos_token_id: Option<OneOrMany>,
    #[serde(flatten)]
    rope: RopeConfig,
}

fn default_head_dim() -> usize {
    128
}

fn default_eps() -> f64 {
    1e-6
}

fn default_max_positions() -> usize {
    32_768
}

/// Parses a Qwen3 `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let c: Qwen3Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if c.use_sliding_window {
        return Err("field `use_sliding_window`: sliding-window attention is not supported".into());
    }
    Ok(DecoderSpec {
        family: Family::Qwen3,
        vocab_size: c.vocab_size,
        hidden_size: c.hidden_size,
        intermediate_size: c.intermediate_size,
        num_layers: c.num_hidden_layers,
        num_heads: c.num_attention_heads,
        num_kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
        head_dim: c.head_dim,
        rms_norm_eps: c.rms_norm_eps,
        rope_inv_freq: c.rope.inv_freq(c.head_dim, 10_000.0)?,
        max_position_embeddings: c.max_position_embeddings,
        tie_word_embeddings: c.tie_word_embeddings,
        qkv_bias: c.attention_bias,
        qk_norm: true,
        eos_token_ids: OneOrMany::into_vec(c.eos_token_id),
    })
}
