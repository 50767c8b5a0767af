//! Exporting a base model plus adapter to the formats people deploy with.
//!
//! - [`ExportFormat::Hf`]: the adapter merged into the base, as a transformers directory
//!   (safetensors, `config.json`, the tokenizer files and chat template of the base).
//! - [`ExportFormat::Gguf`]: the merged model as one GGUF file for llama.cpp, LM Studio and
//!   Ollama, with the architecture and tokenizer metadata llama.cpp reads, at the chosen
//!   [`Quant`] (candle's `quantized` module quantizes and writes it).
//! - [`ExportFormat::GgufLora`]: the adapter alone as a llama.cpp LoRA GGUF (`--lora`,
//!   Ollama's `ADAPTER`).
//! - [`ExportFormat::Ollama`]: a GGUF plus a `Modelfile` for `ollama create`.
//!
//! Every export is written under a temporary name next to its destination and renamed at
//! the end, so a failed or interrupted export never leaves a half-written output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};

use crate::gguf::{finish_staging, names, staging_dir, vocab, write_json};
use crate::lora::{Adapter, Proj};
use crate::models::{DecoderSpec, Family, Model};
use crate::{Error, Result};

/// What to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// Merged transformers directory.
    Hf,
    /// Merged GGUF file.
    Gguf,
    /// The adapter as a llama.cpp LoRA GGUF file.
    GgufLora,
    /// A directory with a merged GGUF and a `Modelfile`.
    Ollama,
}

impl ExportFormat {
    /// The names accepted on the command line and in the API.
    pub const NAMES: &'static str = "hf, gguf, gguf-lora, ollama";

    /// Parses one of [`Self::NAMES`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "hf" => Self::Hf,
            "gguf" => Self::Gguf,
            "gguf-lora" => Self::GgufLora,
            "ollama" => Self::Ollama,
            _ => return None,
        })
    }
}

/// Weight precision of a GGUF export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    /// 32-bit floats: exact.
    F32,
    /// 16-bit floats.
    F16,
    /// bfloat16.
    Bf16,
    /// 8-bit blocks of 32.
    Q8_0,
    /// llama.cpp's Q4_K_M recipe (Q4_K, Q6_K for sensitive tensors, fallbacks by row width).
    Q4KM,
}

impl Quant {
    /// The names accepted on the command line and in the API.
    pub const NAMES: &'static str = "f32, f16, bf16, q8_0, q4_k_m";

    /// Parses one of [`Self::NAMES`] (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "f32" => Self::F32,
            "f16" => Self::F16,
            "bf16" => Self::Bf16,
            "q8_0" => Self::Q8_0,
            "q4_k_m" => Self::Q4KM,
            _ => return None,
        })
    }

    /// The lowercase name, used in file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::Q8_0 => "q8_0",
            Self::Q4KM => "q4_k_m",
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`).
    fn file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q8_0 => 7,
            Self::Q4KM => 15,
            Self::Bf16 => 32,
        }
    }
}

/// What an export wrote.
#[derive(Debug)]
pub struct ExportReport {
    /// The directory or file at the requested output path.
    pub output: PathBuf,
    /// Every file written, with its size in bytes.
    pub files: Vec<(PathBuf, u64)>,
    /// For [`ExportFormat::Ollama`]: the command that installs the model.
    pub ollama_create: Option<String>,
}

/// One export: the loaded base model, an optional adapter, and where to write.
pub struct ExportRequest<'a> {
    /// The base model.
    pub model: &'a Model,
    /// The adapter to merge or convert (required for [`ExportFormat::GgufLora`]).
    pub adapter: Option<&'a Adapter>,
    /// The format.
    pub format: ExportFormat,
    /// Precision for GGUF outputs (ignored by `hf`, which is fp32, and `gguf-lora`, fp32).
    pub quant: Quant,
    /// A directory (`hf`, `ollama`) or a file (`gguf`, `gguf-lora`); must not exist.
    pub output: &'a Path,
    /// The model name written into GGUF metadata and the Ollama command.
    pub name: &'a str,
    /// A system prompt for the Ollama `Modelfile`.
    pub system_prompt: Option<&'a str>,
}

/// Runs an export; `progress(done, total)` is called as tensors are written.
pub fn export(
    req: &ExportRequest<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ExportReport> {
    let family = req.model.spec().family;
    if req.format != ExportFormat::Hf
        && let Err(why) = family_metadata(req.model.spec(), &read_config(req.model.dir()))
    {
        return Err(Error::config(
            "format",
            format!("GGUF export of this {family:?} model is not supported ({why}); use format hf"),
        ));
    }
    match req.format {
        ExportFormat::Hf => {
            let staging = staging_dir(req.output)?;
            let result = write_hf(req, &staging, progress);
            finish_staging(staging, req.output, result)?;
        }
        ExportFormat::Gguf => {
            write_file_atomically(req.output, |tmp| write_gguf(req, tmp, progress))?
        }
        ExportFormat::GgufLora => {
            let adapter = req.adapter.ok_or_else(|| {
                Error::config("adapter", "gguf-lora exports an adapter: give one")
            })?;
            write_file_atomically(req.output, |tmp| {
                write_gguf_lora(req.model, adapter, req.name, tmp)
            })?
        }
        ExportFormat::Ollama => {
            let staging = staging_dir(req.output)?;
            let result = (|| {
                let file = format!("model-{}.gguf", req.quant.name());
                write_gguf(req, &staging.join(&file), progress)?;
                let modelfile = ollama_modelfile(req, &file)?;
                std::fs::write(staging.join("Modelfile"), modelfile)
                    .map_err(|e| Error::io("failed to write", staging.join("Modelfile"), e))
            })();
            finish_staging(staging, req.output, result)?;
        }
    }
    let files = list_files(req.output)?;
    let ollama_create = (req.format == ExportFormat::Ollama).then(|| {
        format!(
            "ollama create {} -f {}",
            ollama_name(req.name),
            req.output.join("Modelfile").display()
        )
    });
    Ok(ExportReport { output: req.output.to_path_buf(), files, ollama_create })
}

/// Ollama model names are lowercase `[a-z0-9._-]`.
pub fn ollama_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.is_empty() { "arkor-model".to_owned() } else { cleaned }
}

fn list_files(path: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let size = |p: &Path| {
        std::fs::metadata(p).map(|m| m.len()).map_err(|e| Error::io("failed to read", p, e))
    };
    if path.is_file() {
        return Ok(vec![(path.to_path_buf(), size(path)?)]);
    }
    let mut out = vec![];
    for entry in std::fs::read_dir(path).map_err(|e| Error::io("failed to read", path, e))? {
        let p = entry.map_err(|e| Error::io("failed to read", path, e))?.path();
        out.push((p.clone(), size(&p)?));
    }
    out.sort();
    Ok(out)
}

fn write_file_atomically(out: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let staging = staging_dir(out)?;
    let tmp = staging.join("out");
    let result = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, out).map_err(|e| Error::io("failed to move into", out, e))
    });
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Writes fp32 tensors as safetensors with `{"format": "pt"}` metadata (what
/// `save_pretrained` writes; transformers 4.x refuses a metadata block without it).
pub(crate) fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let meta: HashMap<String, String> = [("format".to_owned(), "pt".to_owned())].into();
    let views: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.as_str(), t.to_dtype(DType::F32)?.contiguous()?)))
        .collect::<Result<_>>()?;
    safetensors::serialize_to_file(views, Some(meta), path)
        .map_err(|e| Error::io("failed to write", path, std::io::Error::other(e.to_string())))
}

/// Files copied from the base model directory into an `hf` export, when present.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
];

fn write_hf(
    req: &ExportRequest<'_>,
    dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let merged = req.model.merged_weights(req.adapter)?;
    let mut tensors: Vec<(String, Tensor)> = merged.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    progress(0, 1);
    write_safetensors(&dir.join("model.safetensors"), &tensors)?;
    let src = req.model.dir();
    let mut config: serde_json::Value = {
        let path = src.join("config.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::io("failed to read", &path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::InvalidFile { path, message: e.to_string() })?
    };
    config["torch_dtype"] = "float32".into();
    write_json(&dir.join("config.json"), &config)?;
    for name in TOKENIZER_FILES {
        let from = src.join(name);
        if from.is_file() {
            std::fs::copy(&from, dir.join(name))
                .map_err(|e| Error::io("failed to copy", &from, e))?;
        }
    }
    progress(1, 1);
    Ok(())
}

/// The GGUF type of one 2-D tensor under `quant`, with llama.cpp's fallbacks for rows whose
/// width is not a multiple of the block size.
fn tensor_type(
    quant: Quant,
    gguf: &str,
    cols: usize,
    layer: Option<usize>,
    layers: usize,
    tied: bool,
) -> GgmlDType {
    let want = match quant {
        Quant::F32 => return GgmlDType::F32,
        Quant::F16 => return GgmlDType::F16,
        Quant::Bf16 => return GgmlDType::BF16,
        Quant::Q8_0 => GgmlDType::Q8_0,
        Quant::Q4KM => {
            let output = gguf == "output.weight" || (tied && gguf == "token_embd.weight");
            let sensitive = (gguf.contains(".attn_v.") || gguf.contains(".ffn_down."))
                && layer.is_some_and(|i| {
                    i < layers / 8 || i >= 7 * layers / 8 || (i - layers / 8) % 3 == 2
                });
            if output || sensitive { GgmlDType::Q6K } else { GgmlDType::Q4K }
        }
    };
    let fallback = match want {
        _ if cols.is_multiple_of(want.block_size()) => return want,
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        _ => GgmlDType::F16,
    };
    if cols.is_multiple_of(fallback.block_size()) { fallback } else { GgmlDType::F16 }
}

fn layer_of(gguf: &str) -> Option<usize> {
    gguf.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// `{arch}.*` and `general.*` metadata of a model.
fn model_metadata(
    spec: &DecoderSpec,
    config: &serde_json::Value,
    name: &str,
    quant: Quant,
) -> Vec<(String, Value)> {
    let arch = names::arch_name(spec.family);
    let key = |k: &str| format!("{arch}.{k}");
    let theta = config["rope_theta"]
        .as_f64()
        .or(config["rope_parameters"]["rope_theta"].as_f64())
        .unwrap_or(10_000.0);
    let mut out = vec![
        ("general.architecture".to_owned(), Value::String(arch.to_owned())),
        ("general.type".to_owned(), Value::String("model".to_owned())),
        ("general.name".to_owned(), Value::String(name.to_owned())),
        ("general.file_type".to_owned(), Value::U32(quant.file_type())),
        ("general.quantization_version".to_owned(), Value::U32(2)),
        (key("context_length"), Value::U32(spec.max_position_embeddings as u32)),
        (key("embedding_length"), Value::U32(spec.hidden_size as u32)),
        (key("block_count"), Value::U32(spec.num_layers as u32)),
        (key("feed_forward_length"), Value::U32(spec.intermediate_size as u32)),
        (key("attention.head_count"), Value::U32(spec.num_heads as u32)),
        (key("attention.head_count_kv"), Value::U32(spec.num_kv_heads as u32)),
        (key("rope.freq_base"), Value::F32(theta as f32)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(spec.rms_norm_eps as f32)),
        (key("vocab_size"), Value::U32(spec.vocab_size as u32)),
        (key("rope.dimension_count"), Value::U32(spec.head_dim as u32)),
    ];
    if spec.head_dim * spec.num_heads != spec.hidden_size {
        out.push((key("attention.key_length"), Value::U32(spec.head_dim as u32)));
        out.push((key("attention.value_length"), Value::U32(spec.head_dim as u32)));
    }
    out
}

/// The model's `config.json` as JSON (null when it cannot be read: every key then falls
/// back to its default).
fn read_config(dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// llama.cpp's smollm3 graph: layer `i` attends without rope when `(i + 1) % 4 == 0`.
pub(crate) const SMOLLM3_NOPE_STEP: usize = 4;

/// The `{arch}.*` keys a family needs beyond the common ones, or why llama.cpp would run
/// the model differently from arkor (then nothing is written).
fn family_metadata(
    spec: &DecoderSpec,
    config: &serde_json::Value,
) -> std::result::Result<Vec<(String, Value)>, String> {
    let arch = names::arch_name(spec.family);
    let key = |k: &str| format!("{arch}.{k}");
    match spec.family {
        Family::Llama | Family::Qwen2 | Family::Qwen3 => Ok(vec![]),
        // llama.cpp's smollm3 skips rope on every fourth layer and has no key to say otherwise.
        Family::SmolLM3 => {
            let fourth: Vec<usize> =
                (0..spec.num_layers).filter(|i| (i + 1) % SMOLLM3_NOPE_STEP == 0).collect();
            if spec.layers_without_rope == fourth {
                Ok(vec![])
            } else {
                Err(format!(
                    "its NoPE layers (those without rope) are {:?}, and llama.cpp's smollm3 architecture \
                     takes them to be every fourth layer ({fourth:?})",
                    spec.layers_without_rope
                ))
            }
        }
        Family::Phi3 => phi3_metadata(spec, config),
        // Written as `llama`, which has no sliding window: fine when the window never binds.
        Family::Mistral => match spec.sliding_window {
            Some(w) if w < spec.max_position_embeddings => Err(format!(
                "its {w}-token sliding window is shorter than its context \
                 ({}), and llama.cpp's llama architecture has no sliding window",
                spec.max_position_embeddings
            )),
            _ => Ok(vec![]),
        },
        Family::Gemma2 | Family::Gemma3 => {
            let gemma = spec.gemma.as_ref().ok_or("no Gemma block")?;
            // llama.cpp scales queries by head_dim^-1/2 (n_embd / n_head for the 27B shapes)
            // and ignores query_pre_attn_scalar.
            let big = spec.num_layers == if spec.family == Family::Gemma2 { 46 } else { 62 };
            let theirs = if big { spec.hidden_size / spec.num_heads } else { spec.head_dim };
            if (gemma.query_pre_attn_scalar - theirs as f64).abs() > 1e-9 {
                return Err(format!(
                    "its query_pre_attn_scalar {} is not the {theirs} llama.cpp scales queries by",
                    gemma.query_pre_attn_scalar
                ));
            }
            // llama.cpp's layer pattern: a period p, layer i sliding when i % p < p - 1.
            let sliding = |i: usize| spec.window(i).is_some();
            let period = (0..spec.num_layers).find(|&i| !sliding(i)).map_or(0, |i| i + 1);
            let llama_cpp = |i: usize| period == 0 || i % period < period - 1;
            if (0..spec.num_layers).any(|i| sliding(i) != llama_cpp(i)) {
                return Err("its sliding and global layers do not repeat with one period, the \
                            only pattern llama.cpp reads"
                    .to_owned());
            }
            let theta = |v: &serde_json::Value| v["rope_theta"].as_f64();
            let params = &config["rope_parameters"];
            let global = theta(&params["full_attention"])
                .or(theta(params))
                .or(theta(config))
                .unwrap_or(10_000.0);
            let local = match spec.family {
                Family::Gemma3 => theta(&params["sliding_attention"])
                    .or(config["rope_local_base_freq"].as_f64())
                    .unwrap_or(10_000.0),
                _ => global,
            };
            let plain = |base: f64, table: &[f32]| {
                table.iter().enumerate().all(|(i, f)| {
                    let want = base.powf(-((2 * i) as f64) / spec.head_dim as f64);
                    ((*f as f64) - want).abs() <= 1e-5 * want
                })
            };
            let local_table = spec.rope_local_inv_freq.as_deref().unwrap_or(&spec.rope_inv_freq);
            if !plain(global, &spec.rope_inv_freq) || !plain(local, local_table) {
                return Err("its rope is scaled, which arkor does not write for Gemma".to_owned());
            }
            let mut out = vec![
                (key("rope.freq_base"), Value::F32(global as f32)),
                (key("attention.key_length"), Value::U32(spec.head_dim as u32)),
                (key("attention.value_length"), Value::U32(spec.head_dim as u32)),
                (key("attention.sliding_window_pattern"), Value::U32(period as u32)),
                (key("rope.freq_base_swa"), Value::F32(local as f32)),
            ];
            if let Some(w) = spec.sliding_window {
                out.push((key("attention.sliding_window"), Value::U32(w as u32)));
            }
            if let Some(c) = gemma.attn_softcap {
                out.push((key("attn_logit_softcapping"), Value::F32(c as f32)));
            } else if spec.family == Family::Gemma2 {
                return Err("llama.cpp always soft-caps Gemma 2's attention".to_owned());
            }
            if let Some(c) = gemma.final_softcap {
                out.push((key("final_logit_softcapping"), Value::F32(c as f32)));
            }
            Ok(out)
        }
    }
}

/// The `phi3.*` keys: the rotated dimensions, the window and LongRoPE's context and
/// attention factor (its per-frequency factors are tensors, [`phi3_rope_factors`]), as
/// llama.cpp's converter writes them.
fn phi3_metadata(
    spec: &DecoderSpec,
    _config: &serde_json::Value,
) -> std::result::Result<Vec<(String, Value)>, String> {
    let key = |k: &str| format!("phi3.{k}");
    // llama.cpp's phi3 runs every layer with full attention ("Phi SWA is currently
    // disabled"): fine only when the window never binds.
    if let Some(w) = spec.sliding_window.filter(|w| *w < spec.max_position_embeddings) {
        return Err(format!(
            "its {w}-token sliding window is shorter than its context ({}), and llama.cpp runs              phi3 without a sliding window",
            spec.max_position_embeddings
        ));
    }
    let mut out = vec![
        (key("rope.dimension_count"), Value::U32(spec.rotary_dim() as u32)),
        (key("attention.sliding_window"), Value::U32(spec.sliding_window.unwrap_or(0) as u32)),
    ];
    if let Some(long) = &spec.rope_long {
        let original = long.original_max_positions as u32;
        out.push((key("rope.scaling.original_context_length"), Value::U32(original)));
        out.push((key("rope.scaling.attn_factor"), Value::F32(spec.rope_attention_factor)));
    }
    Ok(out)
}

/// LongRoPE's `short_factor` and `long_factor` as llama.cpp's `rope_factors_short` and
/// `rope_factors_long` tensors, recovered from the spec's frequencies (none without
/// LongRoPE).
fn phi3_rope_factors(spec: &DecoderSpec, theta: f64) -> Vec<(String, Vec<f32>)> {
    let Some(long) = &spec.rope_long else { return vec![] };
    let dim = spec.rotary_dim();
    let base: Vec<f32> =
        (0..dim / 2).map(|i| (theta as f32).powf((2 * i) as f32 / dim as f32)).collect();
    // `inv_freq = 1 / (factor * base)`.
    let factors =
        |inv: &[f32]| -> Vec<f32> { inv.iter().zip(&base).map(|(f, b)| 1.0 / (f * b)).collect() };
    vec![
        ("rope_factors_long.weight".to_owned(), factors(&long.inv_freq)),
        ("rope_factors_short.weight".to_owned(), factors(&spec.rope_inv_freq)),
    ]
}

/// llama.cpp's `rope_freqs` factors when the spec's frequencies were scaled (Llama 3).
fn rope_factors(spec: &DecoderSpec, theta: f64) -> Option<Vec<f32>> {
    let base: Vec<f32> = (0..spec.head_dim / 2)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / spec.head_dim as f32))
        .collect();
    let factors: Vec<f32> = base.iter().zip(&spec.rope_inv_freq).map(|(b, s)| b / s).collect();
    factors.iter().any(|f| (f - 1.0).abs() > 1e-6).then_some(factors)
}

fn write_gguf(
    req: &ExportRequest<'_>,
    path: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let spec = req.model.spec();
    let src = req.model.dir();
    let config = read_config(src);
    let mut metadata = model_metadata(spec, &config, req.name, req.quant);
    let extra = family_metadata(spec, &config).map_err(|why| Error::config("format", why))?;
    metadata.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    metadata.extend(extra);
    metadata.extend(vocab::gguf_metadata_from_dir(src, spec.vocab_size)?);
    let merged = req.model.merged_weights(req.adapter)?;
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(merged.len());
    let mut hf_names: Vec<&String> = merged.keys().collect();
    let family = spec.family;
    hf_names.sort_by_key(|n| {
        (layer_of(&names::gguf_name(family, n).unwrap_or_default()), (*n).clone())
    });
    let total = hf_names.len();
    for (done, hf) in hf_names.into_iter().enumerate() {
        let gguf = names::gguf_name(family, hf).ok_or_else(|| Error::Tensor {
            path: src.to_path_buf(),
            name: hf.clone(),
            message: "has no GGUF name".to_owned(),
        })?;
        let mut t = merged[hf].clone();
        if names::permutes(family)
            && let Some(n) = names::permuted_heads(hf, spec.num_heads, spec.num_kv_heads)
        {
            t = names::permute(&t, n)?;
        }
        // llama.cpp multiplies by Gemma's norm weights as they are: the `1 + w` transformers
        // computes is stored (as its converter does).
        if spec.gemma.is_some() && hf.ends_with("norm.weight") {
            t = (t + 1.0)?;
        }
        let dtype = match t.dims() {
            [_, cols] => tensor_type(
                req.quant,
                &gguf,
                *cols,
                layer_of(&gguf),
                spec.num_layers,
                spec.tie_word_embeddings,
            ),
            _ => GgmlDType::F32,
        };
        // A fresh copy: `QTensor::quantize` reads the storage from offset 0.
        let fresh = t.to_dtype(DType::F32)?.contiguous()?.copy()?;
        tensors.push((gguf, QTensor::quantize(&fresh, dtype)?));
        progress(done + 1, total);
    }
    let theta = config["rope_theta"]
        .as_f64()
        .or(config["rope_parameters"]["rope_theta"].as_f64())
        .unwrap_or(10_000.0);
    // Gemma's tables were checked to be plain (`family_metadata`); Phi-3's scaling is
    // LongRoPE's, in tensors of its own.
    if family == Family::Phi3 {
        for (name, factors) in phi3_rope_factors(spec, theta) {
            let t = Tensor::new(factors, &candle_core::Device::Cpu)?;
            tensors.push((name, QTensor::quantize(&t, GgmlDType::F32)?));
        }
    } else if let Some(factors) = rope_factors(spec, theta).filter(|_| spec.gemma.is_none()) {
        let t = Tensor::new(factors, &candle_core::Device::Cpu)?;
        tensors.push(("rope_freqs.weight".to_owned(), QTensor::quantize(&t, GgmlDType::F32)?));
    }
    write_gguf_file(path, &metadata, &tensors)
}

fn write_gguf_file(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io("failed to create", path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let meta: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    candle_core::quantized::gguf_file::write(&mut w, &meta, &ts)?;
    use std::io::Write;
    w.flush().map_err(|e| Error::io("failed to write", path, e))
}

fn write_gguf_lora(model: &Model, adapter: &Adapter, name: &str, path: &Path) -> Result<()> {
    let spec = model.spec();
    let r = adapter.config().r as f64;
    // llama.cpp scales by alpha / r with r read from B; rsLoRA's scale is folded in here.
    let alpha = adapter.scale() * r;
    let metadata = vec![
        (
            "general.architecture".to_owned(),
            Value::String(names::arch_name(spec.family).to_owned()),
        ),
        ("general.type".to_owned(), Value::String("adapter".to_owned())),
        ("general.name".to_owned(), Value::String(name.to_owned())),
        ("adapter.type".to_owned(), Value::String("lora".to_owned())),
        ("adapter.lora.alpha".to_owned(), Value::F32(alpha as f32)),
    ];
    let mut tensors = vec![];
    for layer in 0..spec.num_layers {
        for &p in Proj::of(spec) {
            let Some(pair) = adapter.pair(layer, p) else { continue };
            let hf = format!("model.layers.{layer}.{}.weight", p.module_path());
            let base = names::gguf_name(spec.family, &hf).expect("projection names map to GGUF");
            let mut b = pair.b.as_tensor().clone();
            if names::permutes(spec.family)
                && let Some(n) = names::permuted_heads(&hf, spec.num_heads, spec.num_kv_heads)
            {
                b = names::permute(&b, n)?;
            }
            let a = pair.a.as_tensor().to_dtype(DType::F32)?.contiguous()?.copy()?;
            let b = b.to_dtype(DType::F32)?.contiguous()?.copy()?;
            tensors.push((format!("{base}.lora_a"), QTensor::quantize(&a, GgmlDType::F32)?));
            tensors.push((format!("{base}.lora_b"), QTensor::quantize(&b, GgmlDType::F32)?));
        }
    }
    write_gguf_file(path, &metadata, &tensors)
}

/// Ollama's ChatML template (its `template/chatml.gotmpl`).
const OLLAMA_CHATML: &str = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n";

fn ollama_modelfile(req: &ExportRequest<'_>, gguf_file: &str) -> Result<String> {
    let tokenizer = crate::tokenizer::TextTokenizer::from_dir(req.model.dir())?;
    let template = tokenizer.chat_template();
    let mut out = format!(
        "# Written by arkor export. Install with: ollama create {} -f Modelfile\n",
        ollama_name(req.name)
    );
    out.push_str(&format!("FROM ./{gguf_file}\n"));
    if template.contains("<|im_start|>") {
        out.push_str(&format!("TEMPLATE \"\"\"{OLLAMA_CHATML}\"\"\"\n"));
        let system =
            req.system_prompt.map(str::to_owned).or_else(|| default_system_prompt(template));
        if let Some(system) = system {
            out.push_str(&format!("SYSTEM \"\"\"{system}\"\"\"\n"));
        }
        out.push_str("PARAMETER stop \"<|im_start|>\"\nPARAMETER stop \"<|im_end|>\"\n");
    } else {
        // Ollama picks a template from the GGUF's tokenizer.chat_template.
        if let Some(system) = req.system_prompt {
            out.push_str(&format!("SYSTEM \"\"\"{system}\"\"\"\n"));
        }
    }
    Ok(out)
}

/// The system prompt a ChatML template inserts when the conversation has none (SmolLM2's
/// "You are a helpful AI assistant named SmolLM..."), so Ollama answers as arkor does.
fn default_system_prompt(template: &str) -> Option<String> {
    // Templates write the newline either raw or as a `\n` escape inside a Jinja string.
    let (start, end_marker) = ["<|im_start|>system\n", "<|im_start|>system\\n"]
        .iter()
        .find_map(|m| template.find(m).map(|i| (i + m.len(), "<|im_end|>")))?;
    let rest = &template[start..];
    let text = &rest[..rest.find(end_marker)?];
    (!text.is_empty() && !text.contains(['{', '}', '\'', '"', '+']))
        .then(|| text.replace("\\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_k_m_recipe_follows_llama_cpp() {
        // 30 layers: layers < 3 and >= 26, and (i - 3) % 3 == 2, use Q6_K for attn_v/ffn_down.
        let t = |name: &str, cols| tensor_type(Quant::Q4KM, name, cols, layer_of(name), 30, true);
        assert_eq!(t("blk.0.attn_v.weight", 512), GgmlDType::Q6K);
        assert_eq!(t("blk.5.ffn_down.weight", 512), GgmlDType::Q6K);
        assert_eq!(t("blk.6.ffn_down.weight", 512), GgmlDType::Q4K);
        assert_eq!(t("blk.6.attn_q.weight", 512), GgmlDType::Q4K);
        // 576 columns are not a multiple of 256: llama.cpp falls back to Q5_0 / Q8_0.
        assert_eq!(t("blk.6.attn_q.weight", 576), GgmlDType::Q5_0);
        assert_eq!(t("token_embd.weight", 576), GgmlDType::Q8_0);
        assert_eq!(t("blk.6.attn_q.weight", 100), GgmlDType::F16);
        assert_eq!(
            tensor_type(Quant::Q8_0, "blk.0.attn_q.weight", 100, Some(0), 30, false),
            GgmlDType::F16
        );
    }

    #[test]
    fn smollm2_default_system_prompt_is_found() {
        let t = "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}";
        assert_eq!(
            default_system_prompt(t).as_deref(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        assert_eq!(
            default_system_prompt(
                "{{ '<|im_start|>system\\n' + message['content'] + '<|im_end|>' }}"
            ),
            None
        );
        assert_eq!(ollama_name("Triage Run/1"), "triage-run-1");
    }
}
