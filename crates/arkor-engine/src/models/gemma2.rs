//! The Gemma 2 family (`Gemma2ForCausalLM`): Gemma 2 2B, 9B and 27B.
//!
//! A Gemma decoder ([`GemmaBlock`]): embeddings scaled by `sqrt(hidden)`, RMSNorms that
//! multiply by `1 + weight`, norms both before and after attention and the MLP, a GeGLU
//! MLP, attention scaled by `query_pre_attn_scalar^-1/2`, attention scores soft-capped at
//! `attn_logit_softcapping` and output logits at `final_logit_softcapping`. Layers
//! alternate between a sliding window (`sliding_window`) and global attention, as
//! `layer_types` lists them (without it: even layers slide, odd ones are global).
//!
//! Reference: `transformers/models/gemma2/modeling_gemma2.py`.

use serde::Deserialize;

use super::{CommonConfig, DecoderSpec, Family, FamilyDefaults, GemmaBlock};

/// The `config.json` fields Gemma 2 and Gemma 3 share beyond the common ones.
#[derive(Debug, Deserialize)]
pub(crate) struct GemmaFields {
    #[serde(default = "default_scalar")]
    query_pre_attn_scalar: f64,
    #[serde(default = "default_window")]
    sliding_window: Option<usize>,
    layer_types: Option<Vec<String>>,
    hidden_activation: Option<String>,
    #[serde(default)]
    attention_bias: bool,
}

fn default_scalar() -> f64 {
    256.0
}

fn default_window() -> Option<usize> {
    Some(4096)
}

impl GemmaFields {
    /// Fills in the Gemma parts of `spec`; `pattern` is the sliding/global period used when
    /// the config has no `layer_types` (every `pattern`-th layer is global).
    pub(crate) fn apply(
        self,
        spec: &mut DecoderSpec,
        pattern: usize,
        attn_softcap: Option<f64>,
        final_softcap: Option<f64>,
    ) -> Result<(), String> {
        match self.hidden_activation.as_deref() {
            None | Some("gelu_pytorch_tanh") => {}
            Some(other) => {
                return Err(format!(
                    "field `hidden_activation`: unsupported \"{other}\" (supported: \
                     gelu_pytorch_tanh)"
                ));
            }
        }
        let layers = spec.num_layers;
        let types = self.layer_types.unwrap_or_else(|| {
            (0..layers)
                .map(|i| {
                    if (i + 1) % pattern == 0 { "full_attention" } else { "sliding_attention" }
                        .to_owned()
                })
                .collect()
        });
        if types.len() != layers {
            return Err(format!(
                "field `layer_types`: expected {layers} entries (one per layer), got {}",
                types.len()
            ));
        }
        let mut sliding = vec![];
        for (i, t) in types.iter().enumerate() {
            match t.as_str() {
                "sliding_attention" => sliding.push(i),
                "full_attention" => {}
                other => {
                    return Err(format!(
                        "field `layer_types[{i}]`: unsupported \"{other}\" (supported: \
                         sliding_attention, full_attention)"
                    ));
                }
            }
        }
        spec.qkv_bias = self.attention_bias;
        spec.sliding_window = self.sliding_window;
        spec.sliding_layers = sliding;
        spec.gemma = Some(GemmaBlock {
            query_pre_attn_scalar: self.query_pre_attn_scalar,
            attn_softcap,
            final_softcap,
        });
        Ok(())
    }
}

/// `config.json` of a Gemma 2 checkpoint, as Hugging Face writes it.
#[derive(Debug, Deserialize)]
pub struct Gemma2Config {
    #[serde(flatten)]
    common: CommonConfig,
    #[serde(flatten)]
    gemma: GemmaFields,
    #[serde(default = "default_attn_softcap")]
    attn_logit_softcapping: Option<f64>,
    #[serde(default = "default_final_softcap")]
    final_logit_softcapping: Option<f64>,
}

fn default_attn_softcap() -> Option<f64> {
    Some(50.0)
}

fn default_final_softcap() -> Option<f64> {
    Some(30.0)
}

/// Parses a Gemma 2 `config.json` into the shared decoder spec.
pub fn spec(json: &str) -> Result<DecoderSpec, String> {
    let c: Gemma2Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut spec = c.common.spec(gemma_defaults(Family::Gemma2, 8192))?;
    c.gemma.apply(&mut spec, 2, c.attn_logit_softcapping, c.final_logit_softcapping)?;
    Ok(spec)
}

/// What transformers assumes for Gemma configs that leave fields out.
pub(crate) fn gemma_defaults(family: Family, max_positions: usize) -> FamilyDefaults {
    FamilyDefaults {
        family,
        head_dim: Some(256),
        rms_norm_eps: 1e-6,
        max_positions,
        rope_theta: 10_000.0,
        qkv_bias: false,
        qk_norm: family == Family::Gemma3,
        layers_without_rope: vec![],
        tie_word_embeddings: true,
    }
}
