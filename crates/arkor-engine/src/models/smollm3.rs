//! The SmolLM3 family (`SmolLM3ForCausalLM`): SmolLM3-3B.
//!
//! A Llama decoder in which some layers attend without rotary embedding ("NoPE"):
//! `no_rope_layers[i]` is 1 where layer `i` rotates queries and keys and 0 where it does
//! not; without the list, every `no_rope_layer_interval`-th layer (4 by default) is a NoPE
//! layer, as transformers builds it. Sliding-window attention is declared but off in the
//! released checkpoint, so a config that turns it on is refused.
//!
//! Reference: `transformers/models/smollm3/modeling_smollm3.py`.

use serde::Deserialize;

use super::{CommonConfig, DecoderSpec, Family, FamilyDefaults};

/// `config.json` of a SmolLM3 checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct SmolLM3Config {
    #[serde(flatten)]
    common: CommonConfig,
    #[serde(default)]
    attention_bias: bool,
    no_rope_layers: Option<Vec<u8>>,
    #[serde(default = "default_interval")]
    no_rope_layer_interval: usize,
    #[serde(default)]
    use_sliding_window: bool,
}

fn default_interval() -> usize {
    4
}

/// Parses a SmolLM3 `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let c: SmolLM3Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if c.use_sliding_window {
        return Err("field `use_sliding_window`: sliding-window attention is not supported".into());
    }
    let (flags, interval) = (c.no_rope_layers, c.no_rope_layer_interval);
    let mut spec = c.common.spec(FamilyDefaults {
        family: Family::SmolLM3,
        head_dim: None,
        rms_norm_eps: 1e-6,
        max_positions: 32_768,
        rope_theta: 2_000_000.0,
        qkv_bias: c.attention_bias,
        qk_norm: false,
        layers_without_rope: vec![],
        tie_word_embeddings: true,
    })?;
    let layers = spec.num_layers;
    spec.layers_without_rope = match flags {
        Some(flags) => {
            if flags.len() < layers {
                return Err(format!(
                    "field `no_rope_layers`: expected at least {layers} entries (one per layer), \
                     got {}",
                    flags.len()
                ));
            }
            (0..layers).filter(|&i| flags[i] == 0).collect()
        }
        None if interval == 0 => {
            return Err("field `no_rope_layer_interval`: expected a positive integer, got 0".into());
        }
        None => (0..layers).filter(|&i| (i + 1) % interval == 0).collect(),
    };
    Ok(spec)
}
