//! The Gemma 3 text family (`Gemma3ForCausalLM`, `model_type: gemma3_text`): Gemma 3 270M
//! and 1B.
//!
//! The Gemma 2 block ([`super::GemmaBlock`]) without soft-capping by default, plus a
//! per-head RMSNorm (`1 + weight`, like every Gemma norm) on queries and keys before the
//! rotation, and two rotary bases: the global layers use `rope_theta` (1e6, with any
//! `rope_scaling`), the sliding-window layers `rope_local_base_freq` (1e4). Five sliding
//! layers per global one unless `layer_types` says otherwise. transformers 5 writes both
//! bases as `rope_parameters: {"full_attention": {...}, "sliding_attention": {...}}`;
//! transformers 4 as `rope_theta`, `rope_local_base_freq` and `rope_scaling`; both are read.
//! The multimodal `gemma3` checkpoints (4B and up) are refused with a message.
//!
//! Reference: `transformers/models/gemma3/modeling_gemma3.py`.

use serde::Deserialize;

use super::gemma2::{GemmaFields, gemma_defaults};
use super::{CommonConfig, DecoderSpec, Family, FamilyDefaults, RopeConfig, RopeScaling};

/// `config.json` of a Gemma 3 text checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct Gemma3Config {
    #[serde(flatten)]
    common: CommonConfig,
    #[serde(flatten)]
    gemma: GemmaFields,
    final_logit_softcapping: Option<f64>,
    rope_parameters: Option<PerLayerType>,
    rope_local_base_freq: Option<f64>,
    sliding_window_pattern: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct PerLayerType {
    full_attention: Option<RopeScaling>,
    sliding_attention: Option<RopeScaling>,
}

/// Parses a Gemma 3 text `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let mut c: Gemma3Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let (full, local) = match c.rope_parameters.take() {
        Some(p) => (p.full_attention, p.sliding_attention),
        None => (None, None),
    };
    // The global layers: `rope_parameters.full_attention`, else the top-level spelling.
    if let Some(full) = full {
        c.common.rope = RopeConfig { rope_parameters: Some(full), ..RopeConfig::default() };
    }
    let local = RopeConfig {
        rope_theta: c.rope_local_base_freq,
        rope_parameters: local,
        rope_scaling: None,
    };
    // transformers' global default base is 1e6 and its local one 1e4.
    let defaults = FamilyDefaults { rope_theta: 1e6, ..gemma_defaults(Family::Gemma3, 131_072) };
    let mut spec = c.common.spec(defaults)?;
    let local = local.inv_freq(spec.head_dim, 10_000.0)?;
    spec.rope_local_inv_freq = Some(local);
    let pattern = c.sliding_window_pattern.unwrap_or(6).max(1);
    // transformers' Gemma 3 attention ignores `attn_logit_softcapping`; so does this.
    c.gemma.apply(&mut spec, pattern, None, c.final_logit_softcapping)?;
    Ok(spec)
}
