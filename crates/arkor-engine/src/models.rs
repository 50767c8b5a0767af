//! Model families and the shared decoder they resolve to.
//!
//! Every supported family (Llama, Qwen2, ...) has one file under `models/` that
//! deserialises its Hugging Face `config.json` verbatim and turns it into a
//! [`DecoderSpec`]: the small set of facts the shared decoder in [`decoder`] needs
//! (shapes, norm epsilon, rotary frequencies, tied head, qkv bias). Adding a family that
//! is a Llama-style decoder is one new file plus one match arm in [`read_spec`]; a family
//! with a new block feature (Qwen3's q/k norms, Gemma's scaled embeddings) adds a flag to
//! [`DecoderSpec`] and a branch in the decoder.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

pub mod decoder;
pub mod gemma2;
pub mod gemma3;
pub mod llama;
pub mod mistral;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod smollm3;

pub use decoder::{ForwardMode, KvCache, Model};

/// The architecture families the engine can load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Llama 2/3.x, SmolLM2, TinyLlama and other `LlamaForCausalLM` checkpoints.
    Llama,
    /// Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`): Llama blocks with a bias on q/k/v.
    Qwen2,
    /// Qwen3 (`Qwen3ForCausalLM`): Llama blocks with an RMSNorm on each query and key head.
    Qwen3,
    /// SmolLM3 (`SmolLM3ForCausalLM`): Llama blocks, some of them without rotary embedding.
    SmolLM3,
    /// Mistral (`MistralForCausalLM`): Llama blocks with sliding-window attention.
    Mistral,
    /// Gemma 2 (`Gemma2ForCausalLM`): Gemma blocks, soft-capped attention and output logits,
    /// sliding-window layers interleaved with global ones.
    Gemma2,
    /// Gemma 3 text (`Gemma3ForCausalLM`): Gemma blocks with per-head q/k norms and a
    /// separate rotary base for the sliding-window layers.
    Gemma3,
    /// Phi-3 and Phi-4-mini (`Phi3ForCausalLM`): Llama blocks with fused `qkv_proj` and
    /// `gate_up_proj`, LongRoPE, partial rotary embedding and an optional sliding window.
    Phi3,
}

impl Family {
    /// The `model_type` values accepted in `config.json`, for error messages.
    pub const SUPPORTED: &'static str =
        "llama, mistral, qwen2, qwen3, smollm3, gemma2, gemma3_text, phi3";
}

/// Everything the shared decoder needs to know about an architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderSpec {
    /// Which family the config came from.
    pub family: Family,
    /// Rows of the embedding matrix.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (grouped-query attention when smaller than `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary inverse frequencies, scaling already applied: `head_dim / 2` of them, or
    /// fewer with partial rotary embedding (Phi-4-mini rotates the first 3/4 of each head).
    pub rope_inv_freq: Vec<f32>,
    /// Factor on the rotary cos and sin tables (LongRoPE's attention factor; 1 elsewhere).
    pub rope_attention_factor: f32,
    /// LongRoPE's long-context frequencies, used instead of `rope_inv_freq` by a forward
    /// pass that reaches past `original_max_position_embeddings` (Phi-3).
    pub rope_long: Option<LongRope>,
    /// Longest sequence the rotary tables cover.
    pub max_position_embeddings: usize,
    /// Whether the output head reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether q/k/v projections carry a bias.
    pub qkv_bias: bool,
    /// Whether each query and key head is RMS-normalised before the rotation (Qwen3).
    pub qk_norm: bool,
    /// Layers whose attention uses no rotary embedding (SmolLM3's NoPE layers).
    pub layers_without_rope: Vec<usize>,
    /// Sliding-window attention: the layers in `sliding_layers` see only the last
    /// `sliding_window` positions (the query's own included).
    pub sliding_window: Option<usize>,
    /// The layers that use `sliding_window` (every layer for Mistral; Gemma interleaves them
    /// with global layers).
    pub sliding_layers: Vec<usize>,
    /// Rotary inverse frequencies of the sliding-window layers where they differ from
    /// `rope_inv_freq` (Gemma 3's local base).
    pub rope_local_inv_freq: Option<Vec<f32>>,
    /// The Gemma block, when the family uses it.
    pub gemma: Option<GemmaBlock>,
    /// End-of-sequence ids declared in `config.json`.
    pub eos_token_ids: Vec<u32>,
}

/// The long half of a LongRoPE configuration. Like transformers, a forward pass whose last
/// position is at or past `original_max_positions` rotates all its new queries and keys with
/// `inv_freq` (the `long_factor` frequencies); shorter passes use the short ones. Keys
/// already cached keep the rotation they were stored with, as in transformers.
#[derive(Clone, Debug, PartialEq)]
pub struct LongRope {
    /// Inverse frequencies divided by `long_factor`.
    pub inv_freq: Vec<f32>,
    /// `original_max_position_embeddings`: the pretraining context.
    pub original_max_positions: usize,
}

/// What a Gemma decoder does differently from a Llama one: embeddings scaled by
/// `sqrt(hidden)`, every RMSNorm multiplying by `1 + weight`, a norm after attention and
/// after the MLP as well as before them, a GeGLU MLP (`gelu_tanh(gate) * up`), attention
/// scaled by `query_pre_attn_scalar^-1/2`, and optional soft-capping `cap * tanh(x / cap)`
/// of attention scores and output logits.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmaBlock {
    /// Queries are scaled by the inverse square root of this.
    pub query_pre_attn_scalar: f64,
    /// Soft cap of the attention scores (Gemma 2).
    pub attn_softcap: Option<f64>,
    /// Soft cap of the output logits (Gemma 2).
    pub final_softcap: Option<f64>,
}

/// Reads `dir/config.json` and dispatches on its `model_type`.
pub fn read_spec(dir: &Path) -> Result<DecoderSpec> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Model {
                path: dir.to_path_buf(),
                message: "no config.json: not a Hugging Face model directory".to_owned(),
            }
        } else {
            Error::io("failed to read", &path, e)
        }
    })?;
    let invalid = |message: String| Error::InvalidFile { path: path.clone(), message };
    let head: ModelTypeOnly = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let spec = match head.model_type.as_deref() {
        Some("llama") => llama::spec(&text),
        Some("qwen2") => qwen2::spec(&text),
        Some("qwen3") => qwen3::spec(&text),
        Some("smollm3") => smollm3::spec(&text),
        Some("mistral") => mistral::spec(&text),
        Some("gemma2") => gemma2::spec(&text),
        Some("gemma3_text") => gemma3::spec(&text),
        Some("phi3") => phi3::spec(&text),
        Some("gemma3") => {
            Err("field `model_type`: \"gemma3\" is the multimodal Gemma 3 (4B and up, \
                               with a vision tower); only the text-only gemma3_text checkpoints \
                               (Gemma 3 270M and 1B) are supported"
                .to_owned())
        }
        Some(other) => Err(format!(
            "field `model_type`: unsupported architecture \"{other}\" (supported: {})",
            Family::SUPPORTED
        )),
        None => Err(format!("missing field `model_type` (supported: {})", Family::SUPPORTED)),
    }
    .map_err(invalid)?;
    spec.validate().map_err(invalid)?;
    Ok(spec)
}

#[derive(Deserialize)]
struct ModelTypeOnly {
    model_type: Option<String>,
}

impl DecoderSpec {
    /// The factor attention scores are multiplied by before the softmax.
    pub fn attention_scale(&self) -> f64 {
        match &self.gemma {
            Some(g) => 1.0 / g.query_pre_attn_scalar.sqrt(),
            None => 1.0 / (self.head_dim as f64).sqrt(),
        }
    }

    /// The soft cap of the output logits, if any (Gemma 2).
    pub fn final_softcap(&self) -> Option<f64> {
        self.gemma.as_ref().and_then(|g| g.final_softcap)
    }

    /// Whether q/k/v and gate/up are fused projections (Phi-3's `qkv_proj`, `gate_up_proj`).
    pub fn fused_projections(&self) -> bool {
        self.family == Family::Phi3
    }

    /// Width of the rotated part of each head (`head_dim`, or less with partial rotary).
    pub fn rotary_dim(&self) -> usize {
        self.rope_inv_freq.len() * 2
    }

    /// The sliding window of `layer`, if it has one.
    pub fn window(&self, layer: usize) -> Option<usize> {
        self.sliding_window.filter(|_| self.sliding_layers.contains(&layer))
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.num_heads == 0
            || self.num_kv_heads == 0
            || !self.num_heads.is_multiple_of(self.num_kv_heads)
        {
            return Err(format!(
                "field `num_key_value_heads`: {} does not divide num_attention_heads {}",
                self.num_kv_heads, self.num_heads
            ));
        }
        if self.sliding_window == Some(0) {
            return Err("field `sliding_window`: expected a positive integer, got 0".to_owned());
        }
        if self.rotary_dim() > self.head_dim || self.rotary_dim() == 0 {
            return Err(format!(
                "rotary embedding of {} dimensions does not fit heads of {}",
                self.rotary_dim(),
                self.head_dim
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "field `head_dim`: expected an even number, got {}",
                self.head_dim
            ));
        }
        Ok(())
    }
}

/// The safetensors files of a model directory: `model.safetensors`, or every shard
/// listed in `model.safetensors.index.json`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(Error::Model {
            path: dir.to_path_buf(),
            message: "no model.safetensors or model.safetensors.index.json (only safetensors \
                      weights are supported)"
                .to_owned(),
        });
    }
    #[derive(Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let text =
        std::fs::read_to_string(&index).map_err(|e| Error::io("failed to read", &index, e))?;
    let parsed: Index = serde_json::from_str(&text)
        .map_err(|e| Error::InvalidFile { path: index.clone(), message: e.to_string() })?;
    let mut files: Vec<PathBuf> = parsed.weight_map.values().map(|f| dir.join(f)).collect();
    files.sort();
    files.dedup();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(Error::Model {
            path: dir.to_path_buf(),
            message: format!("shard {} listed in the index is missing", missing.display()),
        });
    }
    Ok(files)
}

/// The `config.json` fields every Llama-style family shares, as Hugging Face writes them;
/// each family's config flattens this and adds its own fields.
#[derive(Debug, Deserialize)]
pub(crate) struct CommonConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    eos_token_id: Option<OneOrMany>,
    #[serde(flatten)]
    rope: RopeConfig,
}

/// A family's defaults (transformers') for fields its configs may leave out, and its flags.
pub(crate) struct FamilyDefaults {
    pub family: Family,
    /// `None`: the hidden size over the number of heads.
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    pub max_positions: usize,
    pub rope_theta: f64,
    pub qkv_bias: bool,
    pub qk_norm: bool,
    pub layers_without_rope: Vec<usize>,
    /// transformers' default when `tie_word_embeddings` is absent (it leaves it out when it
    /// equals its own default).
    pub tie_word_embeddings: bool,
}

impl CommonConfig {
    /// The decoder spec of a config of the family `d` describes.
    pub(crate) fn spec(self, d: FamilyDefaults) -> std::result::Result<DecoderSpec, String> {
        let head_dim = self
            .head_dim
            .or(d.head_dim)
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1));
        Ok(DecoderSpec {
            family: d.family,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_hidden_layers,
            num_heads: self.num_attention_heads,
            num_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            rms_norm_eps: self.rms_norm_eps.unwrap_or(d.rms_norm_eps),
            rope_inv_freq: self.rope.inv_freq(head_dim, d.rope_theta)?,
            rope_attention_factor: 1.0,
            rope_long: None,
            max_position_embeddings: self.max_position_embeddings.unwrap_or(d.max_positions),
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(d.tie_word_embeddings),
            qkv_bias: d.qkv_bias,
            qk_norm: d.qk_norm,
            layers_without_rope: d.layers_without_rope,
            sliding_window: None,
            sliding_layers: vec![],
            rope_local_inv_freq: None,
            gemma: None,
            eos_token_ids: OneOrMany::into_vec(self.eos_token_id),
        })
    }
}

/// Rotary settings as Hugging Face writes them: top-level `rope_theta` + `rope_scaling`
/// (transformers 4.x) or `rope_parameters` (transformers 5.x).
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RopeConfig {
    pub(crate) rope_theta: Option<f64>,
    pub(crate) rope_scaling: Option<RopeScaling>,
    pub(crate) rope_parameters: Option<RopeScaling>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RopeScaling {
    rope_theta: Option<f64>,
    #[serde(alias = "type")]
    rope_type: Option<String>,
    factor: Option<f64>,
    low_freq_factor: Option<f64>,
    high_freq_factor: Option<f64>,
    original_max_position_embeddings: Option<f64>,
}

impl RopeConfig {
    /// Inverse frequencies for `head_dim`, with Llama 3 or linear scaling applied.
    pub(crate) fn inv_freq(
        &self,
        head_dim: usize,
        default_theta: f64,
    ) -> std::result::Result<Vec<f32>, String> {
        let params = self.rope_parameters.as_ref();
        let theta = self.rope_theta.or(params.and_then(|p| p.rope_theta)).unwrap_or(default_theta);
        // transformers computes the base frequencies in fp32.
        let base: Vec<f32> = (0..head_dim / 2)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let scaling = self.rope_scaling.as_ref().or(params);
        let Some(s) = scaling else { return Ok(base) };
        let field = if self.rope_scaling.is_some() { "rope_scaling" } else { "rope_parameters" };
        let need = |v: Option<f64>, name: &str| {
            v.ok_or_else(|| format!("field `{field}.{name}` is required for this rope_type"))
        };
        match s.rope_type.as_deref().unwrap_or("default") {
            "default" => Ok(base),
            "linear" => {
                let factor = need(s.factor, "factor")? as f32;
                Ok(base.iter().map(|f| f / factor).collect())
            }
            "llama3" => {
                let factor = need(s.factor, "factor")?;
                let low = need(s.low_freq_factor, "low_freq_factor")?;
                let high = need(s.high_freq_factor, "high_freq_factor")?;
                let old_ctx =
                    need(s.original_max_position_embeddings, "original_max_position_embeddings")?;
                let (low_wavelen, high_wavelen) = (old_ctx / low, old_ctx / high);
                Ok(base
                    .iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f as f64;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            (f as f64 / factor) as f32
                        } else {
                            let smooth = (old_ctx / wavelen - low) / (high - low);
                            ((1.0 - smooth) * f as f64 / factor + smooth * f as f64) as f32
                        }
                    })
                    .collect())
            }
            other => Err(format!(
                "field `{field}.rope_type`: unsupported \"{other}\" (supported: default, linear, llama3)"
            )),
        }
    }
}

/// `eos_token_id` / `bos_token_id` may be a number or a list of numbers.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

impl OneOrMany {
    pub(crate) fn into_vec(this: Option<Self>) -> Vec<u32> {
        match this {
            None => vec![],
            Some(OneOrMany::One(id)) => vec![id],
            Some(OneOrMany::Many(ids)) => ids,
        }
    }
}
