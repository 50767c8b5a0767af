//! Bad inputs give errors that say what and where.

use std::path::Path;

use arkor_engine::config::{LoraConfig, TrainConfig};
use arkor_engine::lora::Adapter;
use arkor_engine::models::Model;
use arkor_test_support::fixtures::{tiny_llama, tiny_qwen2};
use candle_core::Device;

fn load_err(dir: &Path) -> String {
    match Model::load(dir, &Device::Cpu) {
        Ok(_) => panic!("loading {} succeeded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn model_directory_errors_name_the_file_and_field() {
    let empty = tempfile::tempdir().unwrap();
    let msg = load_err(empty.path());
    assert!(
        msg.contains("no config.json") && msg.contains(&empty.path().display().to_string()),
        "{msg}"
    );

    let m = tiny_llama();
    edit_config(m.path(), |v| v["model_type"] = "gpt2".into());
    let msg = load_err(m.path());
    assert!(
        msg.contains("config.json")
            && msg.contains("`model_type`")
            && msg.contains("gpt2")
            && msg.contains("llama, mistral, qwen2, qwen3, smollm3, gemma2, gemma3_text"),
        "{msg}"
    );

    // The multimodal Gemma 3 is named as such, not as an unknown architecture.
    edit_config(m.path(), |v| v["model_type"] = "gemma3".into());
    let msg = load_err(m.path());
    assert!(msg.contains("multimodal") && msg.contains("gemma3_text"), "{msg}");

    let m = tiny_llama();
    edit_config(m.path(), |v| v["num_key_value_heads"] = 3.into());
    let msg = load_err(m.path());
    assert!(msg.contains("`num_key_value_heads`"), "{msg}");

    let m = tiny_llama();
    edit_config(m.path(), |v| {
        v["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 2.0})
    });
    let msg = load_err(m.path());
    assert!(msg.contains("rope_scaling.rope_type") && msg.contains("yarn"), "{msg}");

    let m = tiny_llama();
    edit_config(m.path(), |v| v["hidden_size"] = 32.into());
    let msg = load_err(m.path());
    assert!(msg.contains("model.safetensors") && msg.contains("expected shape"), "{msg}");

    let m = tiny_llama();
    std::fs::remove_file(m.path().join("model.safetensors")).unwrap();
    let msg = load_err(m.path());
    assert!(msg.contains("no model.safetensors"), "{msg}");
}

/// What Phi-3 support leaves out is refused naming the field, and so are LoRA targets
/// that do not exist in the family (a part of a fused projection alone, or a fused name
/// on a model with separate projections).
#[test]
fn phi3_unsupported_config_and_targets_name_the_field() {
    use arkor_test_support::fixtures::tiny_phi3;
    let cases: [(fn(&mut serde_json::Value), &[&str]); 5] = [
        (|v| v["rope_scaling"]["type"] = "yarn".into(), &["`rope_scaling.rope_type`", "yarn"]),
        (
            |v| v["rope_scaling"]["long_factor"] = serde_json::json!([1.0, 2.0]),
            &["`rope_scaling.long_factor`", "expected 6 entries", "got 2"],
        ),
        (
            |v| {
                v["rope_scaling"].as_object_mut().unwrap().remove("short_factor").map(drop).unwrap()
            },
            &["`rope_scaling.short_factor` is required"],
        ),
        (|v| v["hidden_act"] = "gelu_new".into(), &["`hidden_act`", "gelu_new"]),
        (|v| v["partial_rotary_factor"] = 0.1.into(), &["`partial_rotary_factor`", "rotates 1"]),
    ];
    for (edit, wanted) in cases {
        let m = tiny_phi3();
        edit_config(m.path(), edit);
        let msg = load_err(m.path());
        assert!(msg.contains("config.json"), "{msg}");
        for w in wanted {
            assert!(msg.contains(w), "{w:?} not in {msg}");
        }
    }

    let phi3 = tiny_phi3();
    let p = Model::load(phi3.path(), &Device::Cpu).unwrap();
    let only_q = LoraConfig { target_modules: vec!["q_proj".into()], ..Default::default() };
    let msg = Adapter::new(p.spec(), &only_q, "tiny", 1, &Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("lora.target_modules") && msg.contains("\"qkv_proj\""), "{msg}");
    let llama = tiny_llama();
    let l = Model::load(llama.path(), &Device::Cpu).unwrap();
    let fused = LoraConfig { target_modules: vec!["qkv_proj".into()], ..Default::default() };
    let msg = Adapter::new(l.spec(), &fused, "tiny", 1, &Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("lora.target_modules") && msg.contains("q_proj, k_proj"), "{msg}");
}

#[test]
fn adapter_errors_name_the_file_tensor_and_field() {
    let llama = tiny_llama();
    let qwen = tiny_qwen2();
    let l = Model::load(llama.path(), &Device::Cpu).unwrap();
    let q = Model::load(qwen.path(), &Device::Cpu).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let lora = LoraConfig { r: 4, ..Default::default() };
    let adapter = Adapter::new(l.spec(), &lora, "tiny", 1, &Device::Cpu).unwrap();
    adapter.save(tmp.path()).unwrap();
    // Same layer count and widths, so this loads; a model of another width must not.
    Adapter::load(tmp.path(), q.spec(), &Device::Cpu).unwrap();
    let mut wide = arkor_test_support::fixtures::llama_spec(3);
    wide.hidden_size = 32;
    wide.intermediate_size = 64;
    let wide_dir = tempfile::tempdir().unwrap();
    arkor_engine::tiny::write_model(wide_dir.path(), &wide).unwrap();
    let w = Model::load(wide_dir.path(), &Device::Cpu).unwrap();
    let msg = Adapter::load(tmp.path(), w.spec(), &Device::Cpu).unwrap_err().to_string();
    assert!(
        msg.contains("adapter_model.safetensors")
            && msg.contains("lora_A")
            && msg.contains("expected shape"),
        "{msg}"
    );

    let cfg_path = tmp.path().join("adapter_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["use_dora"] = true.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let msg = Adapter::load(tmp.path(), l.spec(), &Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("adapter_config.json") && msg.contains("`use_dora`"), "{msg}");

    let msg = Adapter::load(llama.path(), l.spec(), &Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("no adapter_config.json"), "{msg}");
}

#[test]
fn config_errors_name_the_field_and_the_allowed_values() {
    let check = |config: TrainConfig, needle: &[&str]| {
        let msg = config.validate().unwrap_err().to_string();
        for n in needle {
            assert!(msg.contains(n), "{msg:?} lacks {n:?}");
        }
    };
    let lora = |l: LoraConfig| TrainConfig { lora: l, ..Default::default() };
    check(
        lora(LoraConfig { target_modules: vec!["qq_proj".into()], ..Default::default() }),
        &["lora.target_modules", "qq_proj", "q_proj, k_proj"],
    );
    check(lora(LoraConfig { r: 0, ..Default::default() }), &["lora.r"]);
    check(TrainConfig { learning_rate: 3.0, ..Default::default() }, &["learning_rate", "got 3"]);
    check(TrainConfig { batch_size: 0, ..Default::default() }, &["batch_size"]);
    check(TrainConfig { eval_split: 0.9, ..Default::default() }, &["eval_split", "0.9"]);
}
