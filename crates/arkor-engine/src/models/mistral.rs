//! The Mistral family (`MistralForCausalLM`): Mistral 7B, Ministral-style dense checkpoints.
//!
//! A Llama decoder whose attention may be limited to a sliding window: with
//! `sliding_window: N` in the config, the query at position `i` sees the keys at positions
//! `i - N + 1 ..= i` in every layer (transformers' `sliding_window_overlay`). Mistral 7B
//! v0.1 declares a 4096-token window; v0.2 and later set it to `null` (full attention).
//! Configs that declare alternating `layer_types` belong to transformers' Ministral class
//! and are refused here rather than run with the wrong mask.
//!
//! Reference: `transformers/models/mistral/modeling_mistral.py`.

use serde::Deserialize;

use super::{CommonConfig, DecoderSpec, Family, FamilyDefaults};

/// `config.json` of a Mistral checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct MistralConfig {
    #[serde(flatten)]
    common: CommonConfig,
    #[serde(default = "default_window")]
    sliding_window: Option<usize>,
    layer_types: Option<Vec<String>>,
}

/// transformers' default when the field is absent (an explicit `null` turns it off).
fn default_window() -> Option<usize> {
    Some(4096)
}

/// Parses a Mistral `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let c: MistralConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if c.layer_types.as_ref().is_some_and(|t| t.iter().any(|t| t != "full_attention")) {
        return Err("field `layer_types`: per-layer attention types (Ministral) are not \
                    supported for model_type mistral"
            .into());
    }
    let mut spec = c.common.spec(FamilyDefaults {
        family: Family::Mistral,
        head_dim: None,
        rms_norm_eps: 1e-6,
        max_positions: 4096 * 32,
        rope_theta: 10_000.0,
        qkv_bias: false,
        qk_norm: false,
        layers_without_rope: vec![],
        tie_word_embeddings: false,
    })?;
    spec.sliding_window = c.sliding_window;
    spec.sliding_layers = (0..spec.num_layers).collect();
    Ok(spec)
}
