//! GGUF files (llama.cpp, Ollama, LM Studio) as base models, and the naming rules shared
//! with the GGUF writers in [`crate::export`].
//!
//! Import turns a GGUF into a Hugging Face model directory, the one layout the rest of the
//! engine loads: every tensor dequantized to fp32 (candle's `quantized` module does the
//! dequantization), renamed to transformers' names with llama.cpp's Q/K row permutation
//! undone, `config.json` from the `{arch}.*` metadata, and a `tokenizer.json` rebuilt from
//! the `tokenizer.ggml.*` arrays with the pre-tokenizer the file names (see [`vocab`]).
//! The directory is written under a temporary name and renamed, so an interrupted import
//! leaves nothing that looks finished.
//!
//! What it does not do: architectures other than `llama` and `qwen2`, SentencePiece
//! (`tokenizer.ggml.model = llama`) vocabularies, and the IQ/TQ/MXFP4 quantizations
//! candle cannot read; each is refused with an error naming it.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};

use crate::models::Family;
use crate::{Error, Result};

pub mod names;
pub mod vocab;

/// A GGUF file whose header has been read and checked.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
    family: Family,
}

/// ggml type ids candle cannot read, for the error message.
fn ggml_type_name(id: u32) -> &'static str {
    match id {
        4 | 5 => "Q4_2/Q4_3 (removed from ggml)",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "unknown",
    }
}

impl GgufFile {
    /// Reads the header (metadata and tensor table) of `path` and checks that every
    /// tensor's data lies inside the file and that the architecture is supported.
    pub fn open(path: &Path) -> Result<Self> {
        let fail = |message: String| Error::Gguf { path: path.to_path_buf(), message };
        let file = File::open(path).map_err(|e| Error::io("failed to open", path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io("failed to stat", path, e))?.len();
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| {
            // candle appends a backtrace when RUST_BACKTRACE is set: keep the first line.
            let full = e.to_string();
            let text = full.lines().next().unwrap_or_default();
            let id =
                text.strip_prefix("unknown dtype for tensor ").and_then(|n| n.trim().parse().ok());
            match id {
                Some(id) => fail(format!(
                    "a tensor uses quantization type {id} ({}), which arkor cannot read \
                     (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K); \
                     use a Q4_K_M, Q8_0 or F16 build of the model",
                    ggml_type_name(id)
                )),
                None if text.contains("magic") => {
                    fail(format!("not a GGUF file (bad magic or version): {text}"))
                }
                None => fail(format!("unreadable header (truncated or corrupt file?): {text}")),
            }
        })?;
        for (name, info) in &content.tensor_infos {
            let elems = info.shape.elem_count();
            let block = info.ggml_dtype.block_size();
            let bytes = (elems / block * info.ggml_dtype.type_size()) as u64;
            let end = content.tensor_data_offset + info.offset + bytes;
            if end > file_len {
                return Err(fail(format!(
                    "truncated: tensor {name} ends at byte {end} but the file has {file_len} bytes"
                )));
            }
        }
        let arch = meta_str(&content, "general.architecture").map_err(fail)?;
        let family = match arch {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            "gemma2" => Family::Gemma2,
            "gemma3" => Family::Gemma3,
            "smollm3" => Family::SmolLM3,
            "phi3" => Family::Phi3,
            other => {
                return Err(fail(format!(
                    "field general.architecture: unsupported architecture \"{other}\" \
                     (supported: llama, qwen2, qwen3, gemma2, gemma3, smollm3, phi3)"
                )));
            }
        };
        Ok(Self { path: path.to_path_buf(), content, family })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The architecture family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// One metadata value.
    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn fail(&self, message: String) -> Error {
        Error::Gguf { path: self.path.clone(), message }
    }

    fn arch_key(&self, key: &str) -> String {
        format!("{}.{key}", names::arch_name(self.family))
    }

    fn usize_of(&self, key: &str) -> Result<Option<usize>> {
        self.metadata(key)
            .map(|v| as_usize(v).map_err(|m| self.fail(format!("{key}: {m}"))))
            .transpose()
    }

    fn required(&self, key: &str) -> Result<usize> {
        self.usize_of(key)?.ok_or_else(|| self.fail(format!("missing metadata key {key}")))
    }

    fn f64_of(&self, key: &str) -> Result<Option<f64>> {
        self.metadata(key)
            .map(|v| as_f64(v).map_err(|m| self.fail(format!("{key}: {m}"))))
            .transpose()
    }

    /// The Hugging Face `config.json` equivalent of the file's `{arch}.*` metadata.
    pub fn hf_config(&self) -> Result<serde_json::Value> {
        let hidden = self.required(&self.arch_key("embedding_length"))?;
        let heads = self.required(&self.arch_key("attention.head_count"))?;
        let kv_heads = self.usize_of(&self.arch_key("attention.head_count_kv"))?.unwrap_or(heads);
        let head_dim = match self.usize_of(&self.arch_key("attention.key_length"))? {
            Some(d) => d,
            // Phi-3's rotary dimensions may be fewer than a head's (partial rotary).
            None if self.family == Family::Phi3 => hidden / heads.max(1),
            None => self
                .usize_of(&self.arch_key("rope.dimension_count"))?
                .unwrap_or(hidden / heads.max(1)),
        };
        let embed = self.tensor_shape("token_embd.weight")?;
        let vocab = embed[0];
        let tied = !self.content.tensor_infos.contains_key("output.weight");
        let qkv_bias = self.content.tensor_infos.contains_key("blk.0.attn_q.bias");
        if self.content.tensor_infos.contains_key("rope_freqs.weight") {
            return Err(self.fail(
                "tensor rope_freqs.weight (Llama 3.1-style rope scaling stored as factors) is \
                 not supported yet; use the Hugging Face checkpoint of this model"
                    .to_owned(),
            ));
        }
        if let Some(Value::String(kind)) = self.metadata(&self.arch_key("rope.scaling.type"))
            && kind != "none"
        {
            return Err(self.fail(format!(
                "{}: rope scaling \"{kind}\" is not supported yet",
                self.arch_key("rope.scaling.type")
            )));
        }
        let bos = self.usize_of("tokenizer.ggml.bos_token_id")?;
        let eos = self.usize_of("tokenizer.ggml.eos_token_id")?;
        let mut config = serde_json::json!({
            "architectures": [names::hf_architecture(self.family)],
            "model_type": names::model_type(self.family),
            "hidden_size": hidden,
            "intermediate_size": self.required(&self.arch_key("feed_forward_length"))?,
            "num_hidden_layers": self.required(&self.arch_key("block_count"))?,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "head_dim": head_dim,
            "max_position_embeddings": self.usize_of(&self.arch_key("context_length"))?.unwrap_or(2048),
            "rms_norm_eps": self.f64_of(&self.arch_key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6),
            "rope_theta": self.f64_of(&self.arch_key("rope.freq_base"))?.unwrap_or(10_000.0),
            "vocab_size": vocab,
            "tie_word_embeddings": tied,
            "hidden_act": "silu",
            "bos_token_id": bos,
            "eos_token_id": eos,
            "torch_dtype": "float32",
        });
        match self.family {
            Family::Llama => {
                config["attention_bias"] = qkv_bias.into();
                config["mlp_bias"] = false.into();
            }
            Family::Qwen2 => {
                config["use_sliding_window"] = false.into();
                config["max_window_layers"] = config["num_hidden_layers"].clone();
            }
            Family::Qwen3 => {
                config["attention_bias"] = qkv_bias.into();
                config["use_sliding_window"] = false.into();
            }
            Family::Gemma2 | Family::Gemma3 => self.gemma_config(&mut config, head_dim)?,
            Family::SmolLM3 => {
                // 1 where a layer rotates, as transformers writes `no_rope_layers`.
                let step = crate::export::SMOLLM3_NOPE_STEP;
                let layers = self.required(&self.arch_key("block_count"))?;
                let rope: Vec<u8> = (0..layers).map(|i| u8::from((i + 1) % step != 0)).collect();
                config["no_rope_layers"] = rope.into();
                config["attention_bias"] = qkv_bias.into();
                config["mlp_bias"] = false.into();
            }
            Family::Phi3 => self.phi3_config(&mut config, head_dim)?,
            // `open` refuses this architecture; kept an error rather than a panic.
            Family::Mistral => {
                return Err(self.fail(format!(
                    "{} GGUF files are not supported",
                    names::arch_name(self.family)
                )));
            }
        }
        Ok(config)
    }

    /// Gemma's keys as llama.cpp reads them, with its defaults: queries scaled by
    /// `head_dim^-1/2` (`hidden / heads` for the 27B shapes), Gemma 2's window of 4096 on
    /// every other layer and soft caps of 50 and 30, Gemma 3's window (when the file has one)
    /// on five layers of six and local rope base 10000.
    fn gemma_config(&self, config: &mut serde_json::Value, head_dim: usize) -> Result<()> {
        let gemma2 = self.family == Family::Gemma2;
        let layers = self.required(&self.arch_key("block_count"))?;
        let (hidden, heads) = (
            self.required(&self.arch_key("embedding_length"))?,
            self.required(&self.arch_key("attention.head_count"))?,
        );
        let big = layers == if gemma2 { 46 } else { 62 };
        config["query_pre_attn_scalar"] =
            (if big { hidden / heads.max(1) } else { head_dim }).into();
        config["hidden_activation"] = "gelu_pytorch_tanh".into();
        config["hidden_act"] = "gelu_pytorch_tanh".into();
        let window = self.usize_of(&self.arch_key("attention.sliding_window"))?;
        let window = if gemma2 { Some(window.unwrap_or(4096)) } else { window.filter(|w| *w > 0) };
        let period = self
            .usize_of(&self.arch_key("attention.sliding_window_pattern"))?
            .unwrap_or(if gemma2 { 2 } else { 6 });
        let types: Vec<&str> = (0..layers)
            .map(|i| {
                let sliding = window.is_some() && (period == 0 || i % period < period - 1);
                if sliding { "sliding_attention" } else { "full_attention" }
            })
            .collect();
        config["layer_types"] = types.into();
        config["sliding_window"] = window.into();
        let global = config["rope_theta"].clone();
        let local = self.f64_of(&self.arch_key("rope.freq_base_swa"))?;
        let final_cap = self.f64_of(&self.arch_key("final_logit_softcapping"))?;
        if gemma2 {
            let attn_cap = self.f64_of(&self.arch_key("attn_logit_softcapping"))?;
            config["attn_logit_softcapping"] = attn_cap.unwrap_or(50.0).into();
            config["final_logit_softcapping"] = final_cap.unwrap_or(30.0).into();
            if local.is_some_and(|l| Some(l) != global.as_f64()) {
                return Err(self.fail(
                    "a Gemma 2 file with a local rope base of its own is not supported".to_owned(),
                ));
            }
        } else {
            config["final_logit_softcapping"] = final_cap.into();
            config["rope_local_base_freq"] = local.unwrap_or(10_000.0).into();
        }
        Ok(())
    }

    /// Phi-3's keys as llama.cpp's converter writes them: the rotated dimensions (partial
    /// rotary), the window (0: none) and LongRoPE's original context, attention factor and
    /// per-frequency factors (the `rope_factors_long` and `rope_factors_short` tensors).
    fn phi3_config(&self, config: &mut serde_json::Value, head_dim: usize) -> Result<()> {
        let rot = self.usize_of(&self.arch_key("rope.dimension_count"))?.unwrap_or(head_dim);
        config["partial_rotary_factor"] = (rot as f64 / head_dim as f64).into();
        let window = self.usize_of(&self.arch_key("attention.sliding_window"))?;
        config["sliding_window"] = window.filter(|w| *w > 0).into();
        let has = |n: &str| self.content.tensor_infos.contains_key(n);
        if !has("rope_factors_long.weight") {
            return Ok(());
        }
        let original_key = self.arch_key("rope.scaling.original_context_length");
        let original = self.required(&original_key)?;
        config["original_max_position_embeddings"] = original.into();
        let factors = |name: &str| -> Result<Vec<f32>> {
            let file =
                File::open(&self.path).map_err(|e| Error::io("failed to open", &self.path, e))?;
            let q = self
                .content
                .tensor(&mut BufReader::new(file), name, &Device::Cpu)
                .map_err(|e| self.fail(format!("tensor {name}: {e}")))?;
            Ok(q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?)
        };
        let mut scaling = serde_json::json!({
            "type": "longrope",
            "long_factor": factors("rope_factors_long.weight")?,
            "short_factor": factors("rope_factors_short.weight")?,
        });
        if let Some(a) = self.f64_of(&self.arch_key("rope.scaling.attn_factor"))? {
            scaling["attention_factor"] = a.into();
        }
        config["rope_scaling"] = scaling;
        Ok(())
    }

    fn tensor_shape(&self, name: &str) -> Result<Vec<usize>> {
        self.content
            .tensor_infos
            .get(name)
            .map(|i| i.shape.dims().to_vec())
            .ok_or_else(|| self.fail(format!("missing tensor {name}")))
    }

    /// Every tensor dequantized to fp32 under its transformers name, Q/K rows restored to
    /// the Hugging Face layout for the `llama` architecture.
    pub fn hf_tensors(&self, config: &serde_json::Value) -> Result<Vec<(String, Tensor)>> {
        let heads = config["num_attention_heads"].as_u64().unwrap_or(1) as usize;
        let kv_heads = config["num_key_value_heads"].as_u64().unwrap_or(1) as usize;
        let file =
            File::open(&self.path).map_err(|e| Error::io("failed to open", &self.path, e))?;
        let mut reader = BufReader::new(file);
        let mut names: Vec<&String> = self.content.tensor_infos.keys().collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            // LongRoPE's factors went into `config.json` (`phi3_config`).
            if self.family == Family::Phi3 && name.starts_with("rope_factors_") {
                continue;
            }
            let Some(hf) = names::hf_name(self.family, name) else {
                return Err(self.fail(format!(
                    "unexpected tensor {name} for a {} model",
                    names::arch_name(self.family)
                )));
            };
            let q = self
                .content
                .tensor(&mut reader, name, &Device::Cpu)
                .map_err(|e| self.fail(format!("tensor {name}: {e}")))?;
            let mut t = q.dequantize(&Device::Cpu)?;
            if names::permutes(self.family)
                && let Some(n) = names::permuted_heads(&hf, heads, kv_heads)
            {
                t = names::unpermute(&t, n)?;
            }
            // Gemma's norms are stored as the `1 + w` they multiply by.
            if matches!(self.family, Family::Gemma2 | Family::Gemma3) && hf.ends_with("norm.weight")
            {
                t = (t - 1.0)?;
            }
            out.push((hf, t));
        }
        Ok(out)
    }

    /// Writes this model as a Hugging Face directory at `out` (which must not exist):
    /// `config.json`, `generation_config.json`, `model.safetensors` (fp32),
    /// `tokenizer.json` and `tokenizer_config.json`.
    pub fn write_hf_dir(&self, out: &Path) -> Result<()> {
        let config = self.hf_config()?;
        let tokenizer = vocab::tokenizer_from_gguf(self)?;
        let staging = staging_dir(out)?;
        let result = (|| {
            let tensors = self.hf_tensors(&config)?;
            crate::export::write_safetensors(&staging.join("model.safetensors"), &tensors)?;
            write_json(&staging.join("config.json"), &config)?;
            write_json(&staging.join("tokenizer.json"), &tokenizer.tokenizer_json)?;
            write_json(&staging.join("tokenizer_config.json"), &tokenizer.tokenizer_config)?;
            write_json(&staging.join("generation_config.json"), &tokenizer.generation_config)?;
            write_json(
                &staging.join("arkor-gguf-source.json"),
                &serde_json::json!({"gguf": self.path, "general.name": self.metadata("general.name").and_then(|v| v.to_string().ok())}),
            )?;
            Ok(())
        })();
        finish_staging(staging, out, result)
    }
}

/// Imports `gguf` into `cache_root/<stem>-<key>/` (once; later calls reuse the directory
/// while the file's size and modification time are unchanged) and returns the directory.
pub fn import(gguf: &Path, cache_root: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(gguf).map_err(|e| Error::io("failed to read", gguf, e))?;
    let canonical = gguf.canonicalize().map_err(|e| Error::io("failed to resolve", gguf, e))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = fnv1a(&format!("{}|{}|{modified}|v1", canonical.display(), meta.len()));
    let stem = gguf.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let dir = cache_root.join(format!("{stem}-{key}"));
    if dir.join("config.json").is_file() {
        return Ok(dir);
    }
    let file = GgufFile::open(gguf)?;
    std::fs::create_dir_all(cache_root)
        .map_err(|e| Error::io("failed to create", cache_root, e))?;
    match file.write_hf_dir(&dir) {
        // Another process imported the same file at the same time: use its copy.
        Err(_) if dir.join("config.json").is_file() => Ok(dir),
        result => result.map(|()| dir),
    }
}

/// A fresh sibling directory of `out` to write into before renaming.
pub(crate) fn staging_dir(out: &Path) -> Result<PathBuf> {
    if out.exists() {
        return Err(Error::io(
            "refusing to overwrite",
            out,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it already exists"),
        ));
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io("failed to create", parent, e))?;
    let name = out.file_name().and_then(|s| s.to_str()).unwrap_or("out");
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staging = parent.join(format!(".{name}.partial-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| Error::io("failed to create", &staging, e))?;
    Ok(staging)
}

/// Renames `staging` to `out` when `result` is a success, else removes it.
pub(crate) fn finish_staging(staging: PathBuf, out: &Path, result: Result<()>) -> Result<()> {
    match result {
        Ok(()) => {
            std::fs::rename(&staging, out).map_err(|e| Error::io("failed to move into", out, e))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("json serialises") + "\n";
    std::fs::write(path, text).map_err(|e| Error::io("failed to write", path, e))
}

fn meta_str<'a>(content: &'a Content, key: &str) -> std::result::Result<&'a str, String> {
    match content.metadata.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => {
            Err(format!("metadata {key}: expected a string, got {:?}", other.value_type()))
        }
        None => Err(format!("missing metadata key {key}")),
    }
}

/// A count or id stored as any integer type (producers use U32, I32 and U64).
pub(crate) fn as_usize(v: &Value) -> std::result::Result<usize, String> {
    let n: i128 = match v {
        Value::U8(x) => (*x).into(),
        Value::I8(x) => (*x).into(),
        Value::U16(x) => (*x).into(),
        Value::I16(x) => (*x).into(),
        Value::U32(x) => (*x).into(),
        Value::I32(x) => (*x).into(),
        Value::U64(x) => (*x).into(),
        Value::I64(x) => (*x).into(),
        other => return Err(format!("expected an integer, got {:?}", other.value_type())),
    };
    usize::try_from(n).map_err(|_| format!("expected a non-negative integer, got {n}"))
}

fn as_f64(v: &Value) -> std::result::Result<f64, String> {
    match v {
        Value::F32(x) => Ok((*x).into()),
        Value::F64(x) => Ok(*x),
        other => as_usize(other).map(|n| n as f64),
    }
}

/// A stable 64-bit hash as 16 hex digits (a cache key, not a checksum).
fn fnv1a(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}
