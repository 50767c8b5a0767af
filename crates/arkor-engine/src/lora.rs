//! LoRA adapters in the PEFT format.
//!
//! An [`Adapter`] holds, for each targeted projection of each layer, a pair `A [r, in]`
//! and `B [out, r]`; the projection computes `W x + scale * B (A x)`. New adapters start
//! like PEFT's: `A` Kaiming-uniform (bound `1/sqrt(in)`), `B` zero, so training starts from
//! the base model's exact output.
//!
//! On disk an adapter is a PEFT directory: `adapter_config.json` and
//! `adapter_model.safetensors` with tensors named
//! `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` etc., so Python PEFT,
//! vLLM and llama.cpp tooling load ours and we load theirs. Features of PEFT we do not
//! implement (DoRA, per-layer rank/alpha patterns, LoRA bias, `modules_to_save`,
//! `fan_in_fan_out`) are rejected on load with a message saying which.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::LoraConfig;
use crate::models::DecoderSpec;
use crate::{Error, Result};

/// The projections of a decoder block that can carry an adapter: the seven separate ones of
/// most families, or Phi-3's four, two of which are fused (`qkv_proj`, `gate_up_proj`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proj {
    /// Attention query projection.
    Q,
    /// Attention key projection.
    K,
    /// Attention value projection.
    V,
    /// Attention output projection.
    O,
    /// MLP gate projection.
    Gate,
    /// MLP up projection.
    Up,
    /// MLP down projection.
    Down,
    /// Phi-3's fused query, key and value projection: rows `[q; k; v]`.
    Qkv,
    /// Phi-3's fused MLP gate and up projection: rows `[gate; up]`.
    GateUp,
}

impl Proj {
    /// The seven separate projections, in block order (every family but Phi-3).
    pub const ALL: [Proj; 7] =
        [Proj::Q, Proj::K, Proj::V, Proj::O, Proj::Gate, Proj::Up, Proj::Down];

    /// Phi-3's four projections, in block order.
    pub const FUSED: [Proj; 4] = [Proj::Qkv, Proj::O, Proj::GateUp, Proj::Down];

    /// Every projection name a config may use.
    pub const NAMES: [Proj; 9] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::Down,
        Proj::Qkv,
        Proj::GateUp,
    ];

    /// The projections of a model of shape `s`, in block order.
    pub fn of(s: &DecoderSpec) -> &'static [Proj] {
        if s.fused_projections() { &Proj::FUSED } else { &Proj::ALL }
    }

    /// The fused projection this one is part of in Phi-3, if it is part of one.
    pub fn fused_into(self) -> Option<Proj> {
        match self {
            Proj::Q | Proj::K | Proj::V => Some(Proj::Qkv),
            Proj::Gate | Proj::Up => Some(Proj::GateUp),
            _ => None,
        }
    }

    /// Position in [`Proj::NAMES`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The PEFT `target_modules` name, e.g. `q_proj`.
    pub fn peft_name(self) -> &'static str {
        match self {
            Proj::Q => "q_proj",
            Proj::K => "k_proj",
            Proj::V => "v_proj",
            Proj::O => "o_proj",
            Proj::Gate => "gate_proj",
            Proj::Up => "up_proj",
            Proj::Down => "down_proj",
            Proj::Qkv => "qkv_proj",
            Proj::GateUp => "gate_up_proj",
        }
    }

    /// The module path inside a layer, e.g. `self_attn.q_proj`.
    pub fn module_path(self) -> &'static str {
        match self {
            Proj::Q => "self_attn.q_proj",
            Proj::K => "self_attn.k_proj",
            Proj::V => "self_attn.v_proj",
            Proj::O => "self_attn.o_proj",
            Proj::Gate => "mlp.gate_proj",
            Proj::Up => "mlp.up_proj",
            Proj::Down => "mlp.down_proj",
            Proj::Qkv => "self_attn.qkv_proj",
            Proj::GateUp => "mlp.gate_up_proj",
        }
    }

    /// Parses `q_proj`, `q` or `self_attn.q_proj`.
    pub fn from_name(name: &str) -> Option<Proj> {
        Proj::NAMES.into_iter().find(|p| {
            name == p.peft_name()
                || name == p.module_path()
                || Some(name) == p.peft_name().strip_suffix("_proj")
        })
    }

    /// `(out, in)` of the projection's weight.
    pub fn shape(self, s: &DecoderSpec) -> (usize, usize) {
        let (h, hd, i) = (s.hidden_size, s.head_dim, s.intermediate_size);
        match self {
            Proj::Q => (s.num_heads * hd, h),
            Proj::K | Proj::V => (s.num_kv_heads * hd, h),
            Proj::O => (h, s.num_heads * hd),
            Proj::Gate | Proj::Up => (i, h),
            Proj::Down => (h, i),
            Proj::Qkv => ((s.num_heads + 2 * s.num_kv_heads) * hd, h),
            Proj::GateUp => (2 * i, h),
        }
    }

    /// Whether this is one of the projections Qwen2 gives a bias.
    pub fn is_qkv(self) -> bool {
        matches!(self, Proj::Q | Proj::K | Proj::V)
    }
}

/// The trainable pair of one projection.
#[derive(Clone, Debug)]
pub struct LoraPair {
    /// `[r, in]`
    pub a: Var,
    /// `[out, r]`
    pub b: Var,
}

/// A LoRA adapter for a whole model.
#[derive(Debug)]
pub struct Adapter {
    config: LoraConfig,
    base_model: String,
    /// `layers[i][proj.index()]`
    layers: Vec<Vec<Option<LoraPair>>>,
}

/// Files of a PEFT adapter directory.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// Weights file of a PEFT adapter directory.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

fn tensor_name(layer: usize, p: Proj, which: char) -> String {
    format!("base_model.model.model.layers.{layer}.{}.lora_{which}.weight", p.module_path())
}

impl Adapter {
    /// A fresh adapter: `A` Kaiming-uniform from `seed`, `B` zero.
    pub fn new(
        spec: &DecoderSpec,
        config: &LoraConfig,
        base_model: &str,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let targets = resolve_targets(config, spec)?;
        let config = &LoraConfig {
            target_modules: targets.iter().map(|p| p.peft_name().to_owned()).collect(),
            ..config.clone()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut layers = Vec::with_capacity(spec.num_layers);
        for _ in 0..spec.num_layers {
            let mut row = vec![None; Proj::NAMES.len()];
            for &p in &targets {
                let (out_dim, in_dim) = p.shape(spec);
                let bound = 1.0 / (in_dim as f32).sqrt();
                let a: Vec<f32> =
                    (0..config.r * in_dim).map(|_| rng.random_range(-bound..bound)).collect();
                let a = Var::from_tensor(&Tensor::from_vec(a, (config.r, in_dim), device)?)?;
                let b = Var::zeros((out_dim, config.r), DType::F32, device)?;
                row[p.index()] = Some(LoraPair { a, b });
            }
            layers.push(row);
        }
        Ok(Self { config: config.clone(), base_model: base_model.to_owned(), layers })
    }

    /// The settings this adapter was created or loaded with.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The `base_model_name_or_path` recorded in the adapter.
    pub fn base_model(&self) -> &str {
        &self.base_model
    }

    /// The multiplier of `B A x`.
    pub fn scale(&self) -> f64 {
        self.config.scale()
    }

    /// Dropout probability used in training.
    pub fn dropout(&self) -> f64 {
        self.config.dropout
    }

    /// The pair on projection `p` of `layer`, if targeted.
    pub fn pair(&self, layer: usize, p: Proj) -> Option<&LoraPair> {
        self.layers.get(layer)?.get(p.index())?.as_ref()
    }

    /// Every trainable tensor with its PEFT name, in a stable order.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let mut out = vec![];
        for (i, row) in self.layers.iter().enumerate() {
            for p in Proj::NAMES {
                if let Some(pair) = &row[p.index()] {
                    out.push((tensor_name(i, p, 'A'), pair.a.clone()));
                    out.push((tensor_name(i, p, 'B'), pair.b.clone()));
                }
            }
        }
        out
    }

    /// Number of trainable scalars.
    pub fn num_parameters(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` into `dir` (created
    /// if missing) and returns the two paths.
    pub fn save(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("failed to create", dir, e))?;
        let tensors: Vec<(String, Tensor)> =
            self.vars().into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        let weights = dir.join(ADAPTER_WEIGHTS);
        let metadata = Some(HashMap::from([("format".to_owned(), "pt".to_owned())]));
        safetensors_write(&tensors, metadata, &weights)?;
        let config = PeftConfig::from_lora(&self.config, &self.base_model);
        let config_path = dir.join(ADAPTER_CONFIG);
        let json = serde_json::to_string_pretty(&config).expect("adapter config serialises");
        std::fs::write(&config_path, json + "\n")
            .map_err(|e| Error::io("failed to write", &config_path, e))?;
        Ok(vec![config_path, weights])
    }

    /// Loads a PEFT adapter directory for a model of shape `spec`.
    pub fn load(dir: &Path, spec: &DecoderSpec, device: &Device) -> Result<Self> {
        let config_path = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Model {
                    path: dir.to_path_buf(),
                    message: format!("not an adapter directory: no {ADAPTER_CONFIG}"),
                }
            } else {
                Error::io("failed to read", &config_path, e)
            }
        })?;
        let invalid = |message: String| Error::InvalidFile { path: config_path.clone(), message };
        let peft: PeftConfig = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let lora = peft.to_lora().map_err(invalid)?;
        let weights_path = dir.join(ADAPTER_WEIGHTS);
        let tensors = candle_core::safetensors::load(&weights_path, device).map_err(|e| {
            Error::Model { path: weights_path.clone(), message: format!("failed to read: {e}") }
        })?;
        let mut remaining: HashMap<String, Tensor> = tensors
            .into_iter()
            .map(|(k, v)| (k.replace(".default.weight", ".weight"), v))
            .collect();
        let targets = resolve_targets(&lora, spec).map_err(|e| invalid(e.to_string()))?;
        // Saved again, the adapter names the modules it holds (Phi-3's fused ones for the
        // seven separate names or `all-linear`).
        let lora = LoraConfig {
            target_modules: targets.iter().map(|p| p.peft_name().to_owned()).collect(),
            ..lora
        };
        let mut layers = Vec::with_capacity(spec.num_layers);
        for i in 0..spec.num_layers {
            let mut row = vec![None; Proj::NAMES.len()];
            for &p in &targets {
                let (out_dim, in_dim) = p.shape(spec);
                let mut take = |which: char, shape: [usize; 2]| -> Result<Option<Var>> {
                    let name = tensor_name(i, p, which);
                    let Some(t) = remaining.remove(&name) else { return Ok(None) };
                    if t.dims() != shape {
                        return Err(Error::Tensor {
                            path: weights_path.clone(),
                            name,
                            message: format!(
                                "expected shape {shape:?} for this base model, got {:?}",
                                t.dims()
                            ),
                        });
                    }
                    Ok(Some(Var::from_tensor(&t.to_dtype(DType::F32)?)?))
                };
                let a = take('A', [lora.r, in_dim])?;
                let b = take('B', [out_dim, lora.r])?;
                match (a, b) {
                    (Some(a), Some(b)) => row[p.index()] = Some(LoraPair { a, b }),
                    (None, None) => {}
                    _ => {
                        return Err(Error::Tensor {
                            path: weights_path.clone(),
                            name: tensor_name(i, p, 'A'),
                            message: "lora_A and lora_B must both be present".to_owned(),
                        });
                    }
                }
            }
            layers.push(row);
        }
        if let Some(name) = remaining.keys().min() {
            return Err(Error::Tensor {
                path: weights_path,
                name: name.clone(),
                message: format!(
                    "not a LoRA tensor of this {}-layer model's target modules ({})",
                    spec.num_layers,
                    lora.target_modules.join(", ")
                ),
            });
        }
        if layers.iter().all(|row| row.iter().all(Option::is_none)) {
            return Err(Error::Model {
                path: weights_path,
                message: "the adapter holds no LoRA tensors".to_owned(),
            });
        }
        Ok(Self {
            config: lora,
            base_model: peft.base_model_name_or_path.unwrap_or_default(),
            layers,
        })
    }

    /// Copies the values of `other` into this adapter's variables (same shapes).
    pub fn copy_from(&self, other: &Adapter) -> Result<()> {
        for ((_, dst), (_, src)) in self.vars().iter().zip(other.vars()) {
            dst.set(src.as_tensor())?;
        }
        Ok(())
    }
}

fn targets(config: &LoraConfig) -> Vec<Proj> {
    let mut t: Vec<Proj> =
        config.target_modules.iter().filter_map(|n| Proj::from_name(n)).collect();
    t.sort();
    t.dedup();
    t
}

/// The projections `config` targets on a model of shape `spec`. Phi-3 fuses q/k/v and
/// gate/up, so there a separate name is accepted only with the rest of its group (the
/// default all-seven list, PEFT's `all-linear`) or with the fused name itself, and means the
/// fused projection; the fused names on any other family are refused.
fn resolve_targets(config: &LoraConfig, spec: &DecoderSpec) -> Result<Vec<Proj>> {
    let named = targets(config);
    let has = |p: Proj| named.contains(&p);
    let family = crate::gguf::names::model_type(spec.family);
    let mut out = vec![];
    for &p in &named {
        let resolved = match (spec.fused_projections(), p.fused_into()) {
            (true, Some(group)) => {
                let members = Proj::ALL.iter().filter(|m| m.fused_into() == Some(group));
                if !has(group) && !members.clone().all(|&m| has(m)) {
                    let names: Vec<_> = members.map(|m| m.peft_name()).collect();
                    return Err(Error::config(
                        "lora.target_modules",
                        format!(
                            "\"{}\" is part of {family}'s fused {}, which holds {}: target                              \"{}\" (or all of its parts)",
                            p.peft_name(),
                            group.peft_name(),
                            names.join(", "),
                            group.peft_name()
                        ),
                    ));
                }
                group
            }
            (false, None) if matches!(p, Proj::Qkv | Proj::GateUp) => {
                return Err(Error::config(
                    "lora.target_modules",
                    format!(
                        "\"{}\" is a fused Phi-3 projection; a {family} model has {}",
                        p.peft_name(),
                        Proj::ALL.map(|p| p.peft_name()).join(", ")
                    ),
                ));
            }
            _ => p,
        };
        out.push(resolved);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Writes tensors to a safetensors file with metadata, atomically (temp file + rename).
pub(crate) fn safetensors_write(
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
    path: &Path,
) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<candle_core::Result<_>>()?;
    safetensors::serialize_to_file(cpu.iter().map(|(n, t)| (n.as_str(), t)), metadata, &tmp)
        .map_err(|e| Error::Model { path: tmp.clone(), message: e.to_string() })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("failed to write", path, e))
}

/// `adapter_config.json` as PEFT reads and writes it (the keys that matter to LoRA; PEFT
/// fills the rest with defaults on load).
#[derive(Debug, Serialize, Deserialize)]
struct PeftConfig {
    peft_type: Option<String>,
    task_type: Option<String>,
    base_model_name_or_path: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f64,
    target_modules: TargetModules,
    #[serde(default = "bias_none")]
    bias: String,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default = "yes")]
    inference_mode: bool,
    #[serde(default)]
    modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    rank_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    alpha_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    init_lora_weights: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum TargetModules {
    List(Vec<String>),
    Regex(String),
}

fn bias_none() -> String {
    "none".to_owned()
}

fn yes() -> bool {
    true
}

impl PeftConfig {
    fn from_lora(c: &LoraConfig, base: &str) -> Self {
        PeftConfig {
            peft_type: Some("LORA".to_owned()),
            task_type: Some("CAUSAL_LM".to_owned()),
            base_model_name_or_path: Some(base.to_owned()),
            r: c.r,
            lora_alpha: c.alpha,
            lora_dropout: c.dropout,
            target_modules: TargetModules::List(
                targets(c).iter().map(|p| p.peft_name().to_owned()).collect(),
            ),
            bias: bias_none(),
            fan_in_fan_out: false,
            use_rslora: c.use_rslora,
            use_dora: false,
            inference_mode: true,
            modules_to_save: None,
            rank_pattern: HashMap::new(),
            alpha_pattern: HashMap::new(),
            init_lora_weights: serde_json::Value::Bool(true),
        }
    }

    fn to_lora(&self) -> std::result::Result<LoraConfig, String> {
        if let Some(t) = &self.peft_type
            && t != "LORA"
        {
            return Err(format!("field `peft_type`: expected \"LORA\", got \"{t}\""));
        }
        let unsupported = [
            (self.use_dora, "use_dora", "DoRA adapters are not supported"),
            (self.fan_in_fan_out, "fan_in_fan_out", "Conv1D-style weights are not supported"),
            (self.bias != "none", "bias", "only \"none\" is supported"),
            (!self.rank_pattern.is_empty(), "rank_pattern", "per-module ranks are not supported"),
            (
                !self.alpha_pattern.is_empty(),
                "alpha_pattern",
                "per-module alphas are not supported",
            ),
            (
                self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()),
                "modules_to_save",
                "fully trained modules are not supported",
            ),
        ];
        if let Some((_, field, why)) = unsupported.iter().find(|(bad, _, _)| *bad) {
            return Err(format!("field `{field}`: {why}"));
        }
        let target_modules = match &self.target_modules {
            TargetModules::List(l) => l.clone(),
            TargetModules::Regex(r) => {
                // PEFT allows a regex; accept the common "all linear" spellings.
                if r == "all-linear" {
                    Proj::ALL.iter().map(|p| p.peft_name().to_owned()).collect()
                } else {
                    // `v_proj` is inside `qkv_proj` and `up_proj` inside `gate_up_proj`;
                    // the fused group absorbs them when resolved against a Phi-3 model.
                    Proj::NAMES
                        .iter()
                        .filter(|p| r.contains(p.peft_name()))
                        .map(|p| p.peft_name().to_owned())
                        .collect()
                }
            }
        };
        let lora = LoraConfig {
            r: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            target_modules,
            use_rslora: self.use_rslora,
        };
        lora.validate().map_err(|e| e.to_string())?;
        Ok(lora)
    }
}
