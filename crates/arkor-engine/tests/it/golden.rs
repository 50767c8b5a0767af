//! Logit parity with Hugging Face transformers on tiny random checkpoints.
//!
//! The model directories, input ids and reference logits under `tests/data/reference/`
//! were produced by `make_reference.py` there (pinned versions in its requirements.txt);
//! CI only reads them.

use std::path::PathBuf;

use arkor_engine::lora::Adapter;
use arkor_engine::models::Model;
use arkor_test_support::check::assert_close;
use candle_core::{DType, Device, Tensor};

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference")
}

fn reference(name: &str) -> Tensor {
    let tensors =
        candle_core::safetensors::load(reference_dir().join("logits.safetensors"), &Device::Cpu)
            .unwrap();
    tensors.get(name).unwrap_or_else(|| panic!("no tensor {name}")).clone()
}

fn check(model_dir: &str, adapter_dir: Option<&str>, logits_name: &str, model_key: &str) {
    let model = Model::load(&reference_dir().join(model_dir), &Device::Cpu).unwrap();
    let adapter = adapter_dir
        .map(|d| Adapter::load(&reference_dir().join(d), model.spec(), &Device::Cpu).unwrap());
    let ids = reference(&format!("{model_key}.input_ids")).to_dtype(DType::U32).unwrap();
    let ours = model.forward(&ids, adapter.as_ref()).unwrap();
    let expected = reference(logits_name);
    assert_eq!(ours.dims(), expected.dims());
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_close(&flat(&ours), &flat(&expected), 1e-4);
}

#[test]
fn llama_gqa_tied_sharded_llama3_rope_matches_transformers() {
    check("tiny-llama", None, "tiny-llama.logits", "tiny-llama");
}

#[test]
fn qwen2_bias_untied_bf16_matches_transformers() {
    check("tiny-qwen2", None, "tiny-qwen2.logits", "tiny-qwen2");
}

#[test]
fn peft_adapter_loads_and_matches_transformers() {
    check("tiny-llama", Some("peft-adapter"), "tiny-llama+peft.logits", "tiny-llama");
}

#[test]
fn peft_rslora_adapter_matches_transformers() {
    check("tiny-llama", Some("peft-adapter-rslora"), "tiny-llama+peft-rslora.logits", "tiny-llama");
}
