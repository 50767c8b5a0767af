//! The built-in tiny model `arkor/tiny` and the writer behind test fixtures.
//!
//! [`write_model`] writes a complete Hugging Face model directory (config, safetensors
//! weights, byte-level tokenizer with a ChatML template, generation config) from a
//! [`TinySpec`] and a seed, deterministically and without any download. `arkor/tiny` is
//! one such spec, generated on first use into the data directory, so the whole loop
//! (train, checkpoint, chat) runs offline in minutes on a CPU. Its weights are random:
//! it only says something sensible after it has been fine-tuned.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

use crate::lora::Proj;
use crate::models::Family;
use crate::{Error, Result};

/// The model id users write for the built-in model.
pub const TINY_MODEL_ID: &str = "arkor/tiny";

/// Shape and seed of a generated model.
#[derive(Clone, Debug, PartialEq)]
pub struct TinySpec {
    /// The architecture written.
    pub family: Family,
    /// Residual width.
    pub hidden_size: usize,
    /// Decoder blocks.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Whether the output head reuses the embeddings.
    pub tie_word_embeddings: bool,
    /// Rotary table length.
    pub max_position_embeddings: usize,
    /// Seed of the random weights.
    pub seed: u64,
    /// Embedding rows at least (0: the tokenizer's size); benchmarks use this to get a
    /// real model's vocabulary cost with the small generated tokenizer.
    pub min_vocab_size: usize,
}

impl TinySpec {
    /// The spec of `arkor/tiny`.
    pub fn arkor_tiny() -> Self {
        TinySpec {
            family: Family::Llama,
            hidden_size: 128,
            num_layers: 4,
            num_heads: 4,
            num_kv_heads: 2,
            intermediate_size: 352,
            tie_word_embeddings: true,
            max_position_embeddings: 2048,
            seed: 20_26,
            min_vocab_size: 0,
        }
    }
}

/// Returns the directory of `arkor/tiny` under `data_dir`, generating it on first use.
///
/// Generation writes into a temporary sibling and renames it into place, so concurrent
/// callers and interrupted runs never see a half-written model.
pub fn ensure_tiny_model(data_dir: &Path) -> Result<PathBuf> {
    let dir = data_dir.join("models").join("arkor-tiny-v1");
    if dir.join("model.safetensors").is_file() {
        return Ok(dir);
    }
    let parent = data_dir.join("models");
    std::fs::create_dir_all(&parent).map_err(|e| Error::io("failed to create", &parent, e))?;
    let tmp = parent.join(format!(".arkor-tiny-v1.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    write_model(&tmp, &TinySpec::arkor_tiny())?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process won the race; its copy is identical.
        Err(_) if dir.join("model.safetensors").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(Error::io("failed to create", &dir, e)),
    }
}

/// Writes a random model in Hugging Face layout into `dir` and returns its vocab size.
pub fn write_model(dir: &Path, spec: &TinySpec) -> Result<usize> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("failed to create", dir, e))?;
    let tokenizer_vocab = crate::tokenizer::write_byte_level_tokenizer(dir)?;
    let vocab = tokenizer_vocab.max(spec.min_vocab_size).next_multiple_of(8);
    let eos = crate::tokenizer::TextTokenizer::from_dir(dir)?.eos_token_ids().to_vec();
    let head_dim = spec.hidden_size / spec.num_heads;
    let model_type = crate::gguf::names::model_type(spec.family);
    let architecture = crate::gguf::names::hf_architecture(spec.family);
    let gemma = matches!(spec.family, Family::Gemma2 | Family::Gemma3);
    let mut config = serde_json::json!({
        "architectures": [architecture],
        "model_type": model_type,
        "vocab_size": vocab,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": spec.max_position_embeddings,
        "tie_word_embeddings": spec.tie_word_embeddings,
        "eos_token_id": eos.first(),
        "torch_dtype": "float32",
    });
    if spec.family == Family::SmolLM3 {
        // Every other layer without rope, the last one included.
        let rope: Vec<u8> = (0..spec.num_layers).map(|i| u8::from(i % 2 == 0)).collect();
        config["no_rope_layers"] = rope.into();
    }
    // Windows short enough that test sequences cross them.
    match spec.family {
        Family::Mistral => config["sliding_window"] = 8.into(),
        Family::Gemma2 | Family::Gemma3 => {
            config["sliding_window"] = 8.into();
            config["hidden_activation"] = "gelu_pytorch_tanh".into();
            config["query_pre_attn_scalar"] = head_dim.into();
            // Even layers slide, odd ones are global.
            let types: Vec<&str> = (0..spec.num_layers)
                .map(|i| if i % 2 == 0 { "sliding_attention" } else { "full_attention" })
                .collect();
            config["layer_types"] = types.into();
            if spec.family == Family::Gemma2 {
                config["attn_logit_softcapping"] = 50.0.into();
                config["final_logit_softcapping"] = 30.0.into();
            } else {
                config["rope_local_base_freq"] = 1000.0.into();
            }
        }
        Family::Phi3 => {
            config["sliding_window"] = 8.into();
            // LongRoPE with a pretraining context test sequences cross, over the first
            // three quarters of each head where that is a whole number of pairs.
            let rotary = if (head_dim * 3).is_multiple_of(8) { head_dim * 3 / 4 } else { head_dim };
            config["partial_rotary_factor"] = (rotary as f64 / head_dim as f64).into();
            config["original_max_position_embeddings"] = 32.into();
            let factors = |base: f64| -> Vec<f64> {
                (0..rotary / 2).map(|i| base + i as f64 * 0.25).collect()
            };
            config["rope_scaling"] = serde_json::json!({
                "type": "longrope",
                "short_factor": factors(1.0),
                "long_factor": factors(2.0),
            });
        }
        _ => {}
    }
    write_json(&dir.join("config.json"), &config)?;
    write_json(&dir.join("generation_config.json"), &serde_json::json!({ "eos_token_id": eos }))?;

    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let mut uniform = |shape: (usize, usize), bound: f32| -> Result<Tensor> {
        let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| rng.random_range(-bound..bound)).collect();
        Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
    };
    let s = crate::models::DecoderSpec {
        family: spec.family,
        vocab_size: vocab,
        hidden_size: spec.hidden_size,
        intermediate_size: spec.intermediate_size,
        num_layers: spec.num_layers,
        num_heads: spec.num_heads,
        num_kv_heads: spec.num_kv_heads,
        head_dim,
        rms_norm_eps: 1e-5,
        rope_inv_freq: vec![],
        rope_attention_factor: 1.0,
        rope_long: None,
        max_position_embeddings: spec.max_position_embeddings,
        tie_word_embeddings: spec.tie_word_embeddings,
        qkv_bias: spec.family == Family::Qwen2,
        qk_norm: matches!(spec.family, Family::Qwen3 | Family::Gemma3),
        layers_without_rope: vec![],
        sliding_window: None,
        sliding_layers: vec![],
        rope_local_inv_freq: None,
        gemma: None,
        eos_token_ids: eos,
    };
    let mut tensors: Vec<(String, Tensor)> = vec![];
    tensors.push(("model.embed_tokens.weight".into(), uniform((vocab, spec.hidden_size), 0.1)?));
    for i in 0..spec.num_layers {
        for &p in Proj::of(&s) {
            let (out_dim, in_dim) = p.shape(&s);
            let name = format!("model.layers.{i}.{}", p.module_path());
            tensors.push((
                format!("{name}.weight"),
                uniform((out_dim, in_dim), 1.0 / (in_dim as f32).sqrt())?,
            ));
            if s.qkv_bias && p.is_qkv() {
                tensors.push((format!("{name}.bias"), uniform((1, out_dim), 0.1)?.flatten_all()?));
            }
        }
        if s.qk_norm {
            // Not ones, so a decoder that skipped them would compute something else.
            for norm in ["q_norm", "k_norm"] {
                // Gemma's norms multiply by `1 + weight`.
                let w = (uniform((1, head_dim), 0.5)? + if gemma { 0.0 } else { 1.0 })?
                    .flatten_all()?;
                tensors.push((format!("model.layers.{i}.self_attn.{norm}.weight"), w));
            }
        }
        let norms: &[&str] = if gemma {
            &[
                "input_layernorm",
                "post_attention_layernorm",
                "pre_feedforward_layernorm",
                "post_feedforward_layernorm",
            ]
        } else {
            &["input_layernorm", "post_attention_layernorm"]
        };
        for norm in norms {
            tensors.push((format!("model.layers.{i}.{norm}.weight"), unit_norm(spec, gemma)?));
        }
    }
    tensors.push(("model.norm.weight".into(), unit_norm(spec, gemma)?));
    if !spec.tie_word_embeddings {
        tensors.push(("lm_head.weight".into(), uniform((vocab, spec.hidden_size), 0.1)?));
    }
    crate::lora::safetensors_write(&tensors, None, &dir.join("model.safetensors"))?;
    Ok(vocab)
}

/// A norm weight that leaves its input's scale alone: ones, or zeros for Gemma's
/// `1 + weight`.
fn unit_norm(spec: &TinySpec, gemma: bool) -> Result<Tensor> {
    let ones = Tensor::ones(spec.hidden_size, candle_core::DType::F32, &Device::Cpu)?;
    Ok(if gemma { ones.zeros_like()? } else { ones })
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("json serialises");
    std::fs::write(path, text + "\n").map_err(|e| Error::io("failed to write", path, e))
}
