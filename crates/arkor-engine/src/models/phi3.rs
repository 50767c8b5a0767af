//! The Phi-3 family (`Phi3ForCausalLM`): Phi-3-mini/medium (4k and 128k), Phi-3.5-mini and
//! Phi-4-mini.
//!
//! A Llama decoder with three differences:
//! - fused projections: `self_attn.qkv_proj` holds the rows `[q; k; v]` and
//!   `mlp.gate_up_proj` the rows `[gate; up]`. The decoder keeps them fused (one matrix
//!   product each, split afterwards), so LoRA adapters target them under PEFT's Phi-3 names
//!   (`qkv_proj`, `o_proj`, `gate_up_proj`, `down_proj`) with one `A` per fused module;
//! - LongRoPE (`rope_scaling.type` `longrope`, or the older `su`): per-frequency
//!   `short_factor` and `long_factor` divide the base frequencies, the long ones in a
//!   forward pass that reaches past `original_max_position_embeddings`, and the cos and sin
//!   tables are multiplied by `attention_factor` (by default
//!   `sqrt(1 + ln(factor) / ln(original_max))` with `factor = max_position_embeddings /
//!   original_max`), transformers' `_compute_longrope_parameters`;
//! - `partial_rotary_factor` (Phi-4-mini: 0.75): only the first `head_dim * factor`
//!   dimensions of each head are rotated.
//!
//! `sliding_window` (Phi-3-mini-4k declares 2047) limits every layer's attention to the
//! last `sliding_window` positions, as transformers applies it. Dropout fields
//! (`resid_pdrop`, `embd_pdrop`, `attention_dropout`) are training-time only and ignored
//! (they are 0 in the released checkpoints). Anything else this file does not implement
//! (another activation, another rope type) is refused naming the field.
//!
//! Reference: `transformers/models/phi3/modeling_phi3.py`, `modeling_rope_utils.py`.

use serde::Deserialize;

use super::{CommonConfig, DecoderSpec, Family, FamilyDefaults, LongRope, RopeConfig};

/// `config.json` of a Phi-3 checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct Phi3Config {
    #[serde(flatten)]
    common: CommonConfig,
    sliding_window: Option<usize>,
    hidden_act: Option<String>,
    partial_rotary_factor: Option<f64>,
    original_max_position_embeddings: Option<usize>,
    #[serde(default)]
    attention_bias: bool,
}

/// The rotary fields, read separately from the same JSON: transformers 4 writes
/// `rope_scaling` (`type`, `short_factor`, `long_factor`) next to a top-level `rope_theta`,
/// transformers 5 `rope_parameters` with everything inside.
#[derive(Debug, Default, Deserialize)]
struct RopeFields {
    rope_theta: Option<f64>,
    rope_scaling: Option<LongRopeParams>,
    rope_parameters: Option<LongRopeParams>,
}

#[derive(Debug, Default, Deserialize)]
struct LongRopeParams {
    #[serde(alias = "type")]
    rope_type: Option<String>,
    rope_theta: Option<f64>,
    short_factor: Option<Vec<f64>>,
    long_factor: Option<Vec<f64>>,
    factor: Option<f64>,
    attention_factor: Option<f64>,
    original_max_position_embeddings: Option<usize>,
    partial_rotary_factor: Option<f64>,
}

/// transformers' `Phi3Config` defaults.
const DEFAULT_MAX_POSITIONS: usize = 4096;
const DEFAULT_THETA: f64 = 10_000.0;

/// Parses a Phi-3 `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let mut c: Phi3Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let rope: RopeFields = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if let Some(act) = c.hidden_act.as_deref().filter(|a| *a != "silu") {
        return Err(format!("field `hidden_act`: unsupported \"{act}\" (supported: silu)"));
    }
    if c.attention_bias {
        return Err("field `attention_bias`: biases on qkv_proj are not supported".to_owned());
    }
    // The rotary part is computed here; the common reader sees plain default rope.
    c.common.rope = RopeConfig::default();
    let mut spec = c.common.spec(FamilyDefaults {
        family: Family::Phi3,
        head_dim: None,
        rms_norm_eps: 1e-5,
        max_positions: DEFAULT_MAX_POSITIONS,
        rope_theta: DEFAULT_THETA,
        qkv_bias: false,
        qk_norm: false,
        layers_without_rope: vec![],
        tie_word_embeddings: false,
    })?;
    // transformers prefers `rope_scaling` when both are present.
    let (params, field) = match (rope.rope_scaling, rope.rope_parameters) {
        (Some(p), _) => (p, "rope_scaling"),
        (None, Some(p)) => (p, "rope_parameters"),
        (None, None) => (LongRopeParams::default(), "rope_scaling"),
    };
    let theta = params.rope_theta.or(rope.rope_theta).unwrap_or(DEFAULT_THETA);
    let factor = params.partial_rotary_factor.or(c.partial_rotary_factor).unwrap_or(1.0);
    if !(factor > 0.0 && factor <= 1.0) {
        return Err(format!(
            "field `partial_rotary_factor`: expected a value in (0, 1], got {factor}"
        ));
    }
    // transformers: `int(head_dim * partial_rotary_factor)`.
    let dim = (spec.head_dim as f64 * factor) as usize;
    if dim == 0 || !dim.is_multiple_of(2) {
        return Err(format!(
            "field `partial_rotary_factor`: {factor} of head_dim {} rotates {dim} dimensions; \
             expected a positive even number",
            spec.head_dim
        ));
    }
    let base: Vec<f32> =
        (0..dim / 2).map(|i| (theta as f32).powf((2 * i) as f32 / dim as f32)).collect();
    let plain = || base.iter().map(|b| 1.0 / b).collect::<Vec<f32>>();
    match params.rope_type.as_deref().unwrap_or("default") {
        "default" => spec.rope_inv_freq = plain(),
        "longrope" | "su" => {
            let factors = |v: Option<Vec<f64>>, name: &str| -> Result<Vec<f32>, String> {
                let v = v.ok_or_else(|| {
                    format!("field `{field}.{name}` is required for rope type longrope")
                })?;
                if v.len() != dim / 2 {
                    return Err(format!(
                        "field `{field}.{name}`: expected {} entries (half the {dim} rotated \
                         dimensions), got {}",
                        dim / 2,
                        v.len()
                    ));
                }
                Ok(v.into_iter().map(|f| f as f32).collect())
            };
            let short = factors(params.short_factor, "short_factor")?;
            let long = factors(params.long_factor, "long_factor")?;
            // transformers gives the top-level field priority (Phi-3 keeps it there).
            let original = c
                .original_max_position_embeddings
                .or(params.original_max_position_embeddings)
                .unwrap_or(DEFAULT_MAX_POSITIONS);
            if original < 2 {
                return Err(format!(
                    "field `original_max_position_embeddings`: expected at least 2, got {original}"
                ));
            }
            let scale =
                params.factor.unwrap_or(spec.max_position_embeddings as f64 / original as f64);
            let attention = params.attention_factor.unwrap_or(if scale <= 1.0 {
                1.0
            } else {
                (1.0 + scale.ln() / (original as f64).ln()).sqrt()
            });
            let scaled = |ext: &[f32]| base.iter().zip(ext).map(|(b, e)| 1.0 / (e * b)).collect();
            spec.rope_inv_freq = scaled(&short);
            spec.rope_long =
                Some(LongRope { inv_freq: scaled(&long), original_max_positions: original });
            spec.rope_attention_factor = attention as f32;
        }
        other => {
            return Err(format!(
                "field `{field}.rope_type`: unsupported \"{other}\" for phi3 (supported: \
                 default, longrope, su)"
            ));
        }
    }
    spec.sliding_window = c.sliding_window;
    spec.sliding_layers = (0..spec.num_layers).collect();
    Ok(spec)
}
