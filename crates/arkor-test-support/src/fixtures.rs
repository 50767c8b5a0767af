//! Tiny random models and datasets written into temp directories.

use std::path::{Path, PathBuf};

use arkor_engine::models::Family;
use arkor_engine::tiny::{TinySpec, write_model};

/// A generated model directory that is deleted on drop.
pub struct TempModel {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TempModel {
    /// The model directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn generate(spec: TinySpec) -> TempModel {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model");
    write_model(&path, &spec).expect("write tiny model");
    TempModel { _dir: dir, path }
}

/// A 2-layer Llama with grouped-query attention (4 heads, 2 kv heads) and tied embeddings.
pub fn tiny_llama() -> TempModel {
    generate(llama_spec(7))
}

/// The spec behind [`tiny_llama`], with a chosen seed.
pub fn llama_spec(seed: u64) -> TinySpec {
    TinySpec {
        family: Family::Llama,
        hidden_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        intermediate_size: 128,
        tie_word_embeddings: true,
        max_position_embeddings: 512,
        seed,
        min_vocab_size: 0,
    }
}

/// A 2-layer Qwen2 (q/k/v bias, untied head).
pub fn tiny_qwen2() -> TempModel {
    generate(TinySpec {
        family: Family::Qwen2,
        hidden_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        intermediate_size: 128,
        tie_word_embeddings: false,
        max_position_embeddings: 512,
        seed: 11,
        min_vocab_size: 0,
    })
}

/// A 2-layer Qwen3 (per-head q/k RMSNorm, no q/k/v bias, tied head), the tiny Llama's shape.
pub fn tiny_qwen3() -> TempModel {
    generate(TinySpec { family: Family::Qwen3, ..llama_spec(13) })
}

/// A 2-layer SmolLM3 whose second layer attends without rotary embedding (NoPE), the tiny
/// Llama's shape.
pub fn tiny_smollm3() -> TempModel {
    generate(TinySpec { family: Family::SmolLM3, ..llama_spec(17) })
}

/// A 4-layer SmolLM3 whose last layer attends without rotary embedding: the pattern of the
/// real SmolLM3-3B (every fourth layer), the only one llama.cpp's `smollm3` runs.
pub fn tiny_smollm3_every_fourth() -> TempModel {
    let model = generate(TinySpec { family: Family::SmolLM3, num_layers: 4, ..llama_spec(37) });
    let file = model.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read config")).expect("json");
    config["no_rope_layers"] = serde_json::json!([1, 1, 1, 0]);
    std::fs::write(&file, config.to_string()).expect("write config");
    model
}

/// A 2-layer Mistral with an 8-token sliding window in both layers, the tiny Llama's shape.
pub fn tiny_mistral() -> TempModel {
    generate(TinySpec { family: Family::Mistral, ..llama_spec(19) })
}

/// A 2-layer Gemma 2 (sandwich norms, GeGLU, soft caps; layer 0 slides over 8 tokens,
/// layer 1 is global), the tiny Llama's shape.
pub fn tiny_gemma2() -> TempModel {
    generate(TinySpec { family: Family::Gemma2, ..llama_spec(23) })
}

/// A 2-layer Gemma 3 text model (q/k norms, a local rope base on its sliding layer), the
/// tiny Llama's shape.
pub fn tiny_gemma3() -> TempModel {
    generate(TinySpec { family: Family::Gemma3, ..llama_spec(29) })
}

/// A 2-layer Phi-3 (fused qkv_proj and gate_up_proj, LongRoPE with a pretraining context
/// of 32, 12 of 16 head dimensions rotated, an 8-token sliding window), tied like
/// Phi-4-mini, the tiny Llama's shape.
pub fn tiny_phi3() -> TempModel {
    generate(TinySpec { family: Family::Phi3, ..llama_spec(31) })
}

/// [`tiny_phi3`] without its sliding window (llama.cpp runs phi3 without one) and with
/// LongRoPE's pretraining context set to `original_max`: below the prompts' lengths, both
/// arkor and llama.cpp (whose contexts are longer) use the long factors throughout.
pub fn tiny_phi3_without_window(original_max: usize) -> TempModel {
    let m = tiny_phi3();
    let path = m.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read config")).expect("json");
    config["sliding_window"] = serde_json::Value::Null;
    config["original_max_position_embeddings"] = original_max.into();
    std::fs::write(&path, config.to_string()).expect("write config");
    m
}

/// One tiny model of every supported family, for tests that must hold for each.
pub fn every_family() -> Vec<TempModel> {
    vec![
        tiny_llama(),
        tiny_qwen2(),
        tiny_qwen3(),
        tiny_smollm3(),
        tiny_mistral(),
        tiny_gemma2(),
        tiny_gemma3(),
        tiny_phi3(),
    ]
}

/// Three short question/answer pairs a tiny model can learn by heart.
pub const QA: [(&str, &str); 3] = [
    ("What colour is the sky?", "Blue."),
    ("Name a prime number.", "Seven."),
    ("Say hi.", "Hi there!"),
];

/// Writes `rows` chat rows cycling through [`QA`] as JSONL and returns the file path.
pub fn write_qa_dataset(dir: &Path, rows: usize) -> PathBuf {
    let path = dir.join("train.jsonl");
    let mut text = String::new();
    for i in 0..rows {
        let (q, a) = QA[i % QA.len()];
        let row = serde_json::json!({"messages": [
            {"role": "user", "content": q},
            {"role": "assistant", "content": a},
        ]});
        text.push_str(&row.to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write dataset");
    path
}
