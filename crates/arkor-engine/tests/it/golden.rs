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

/// A reference tensor, from whichever of `make_reference.py`'s files holds it
/// (`logits`: `generate`; `families`: `generate-families`; `greedy`: `generate-greedy`;
/// `phi3`: `generate-phi3`).
fn reference(name: &str) -> Tensor {
    for file in ["logits", "families", "greedy", "phi3"] {
        let path = reference_dir().join(format!("{file}.safetensors"));
        if let Some(t) = candle_core::safetensors::load(path, &Device::Cpu).unwrap().remove(name) {
            return t;
        }
    }
    panic!("no tensor {name} in the reference files")
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
fn qwen3_qk_norm_independent_head_dim_matches_transformers() {
    check("tiny-qwen3", None, "tiny-qwen3.logits", "tiny-qwen3");
}

#[test]
fn peft_adapter_on_qwen3_matches_transformers() {
    check("tiny-qwen3", Some("peft-adapter-qwen3"), "tiny-qwen3+peft.logits", "tiny-qwen3");
}

#[test]
fn smollm3_nope_layer_matches_transformers() {
    check("tiny-smollm3", None, "tiny-smollm3.logits", "tiny-smollm3");
}

#[test]
fn peft_adapter_on_smollm3_matches_transformers() {
    check("tiny-smollm3", Some("peft-adapter-smollm3"), "tiny-smollm3+peft.logits", "tiny-smollm3");
}

#[test]
fn mistral_sliding_window_matches_transformers() {
    check("tiny-mistral", None, "tiny-mistral.logits", "tiny-mistral");
}

#[test]
fn peft_adapter_on_mistral_matches_transformers() {
    check("tiny-mistral", Some("peft-adapter-mistral"), "tiny-mistral+peft.logits", "tiny-mistral");
}

#[test]
fn gemma2_softcaps_sandwich_norms_sliding_layer_match_transformers() {
    check("tiny-gemma2", None, "tiny-gemma2.logits", "tiny-gemma2");
}

#[test]
fn peft_adapter_on_gemma2_matches_transformers() {
    check("tiny-gemma2", Some("peft-adapter-gemma2"), "tiny-gemma2+peft.logits", "tiny-gemma2");
}

#[test]
fn gemma3_qk_norms_local_rope_sliding_layer_match_transformers() {
    check("tiny-gemma3", None, "tiny-gemma3.logits", "tiny-gemma3");
}

#[test]
fn peft_adapter_on_gemma3_matches_transformers() {
    check("tiny-gemma3", Some("peft-adapter-gemma3"), "tiny-gemma3+peft.logits", "tiny-gemma3");
}

#[test]
fn peft_adapter_on_qwen2_matches_transformers() {
    check("tiny-qwen2", Some("peft-adapter-qwen2"), "tiny-qwen2+peft.logits", "tiny-qwen2");
}

/// Greedy continuations through arkor's serving path (the prompt through the cache, then one
/// decode step at a time for both rows together) equal transformers' full-forward greedy
/// tokens, with and without the PEFT adapter, for every family. 20 steps cross the 4-token
/// windows five times.
#[test]
fn every_family_continues_greedily_as_transformers() {
    for name in [
        "tiny-llama",
        "tiny-qwen2",
        "tiny-qwen3",
        "tiny-smollm3",
        "tiny-mistral",
        "tiny-gemma2",
        "tiny-gemma3",
    ] {
        check_greedy(name, 12);
    }
}

/// Phi-3 against transformers' own cached `generate` from a 10-token prompt: decoding
/// crosses the 6-token window and, at position 16, the LongRoPE pretraining context, from
/// where both rotate new queries and keys with the long factors while the cached keys keep
/// the short ones.
#[test]
fn phi3_continues_greedily_as_transformers_generate() {
    check_greedy("tiny-phi3", 10);
}

fn check_greedy(name: &str, prompt_len: usize) {
    use arkor_engine::models::KvCache;
    let adapter_dir = match name.trim_start_matches("tiny-") {
        "llama" => "peft-adapter".to_owned(),
        family => format!("peft-adapter-{family}"),
    };
    let model = Model::load(&reference_dir().join(name), &Device::Cpu).unwrap();
    let adapter =
        Adapter::load(&reference_dir().join(adapter_dir), model.spec(), &Device::Cpu).unwrap();
    for (adapter, key) in [(None, name.to_owned()), (Some(&adapter), format!("{name}+peft"))] {
        let expected: Vec<Vec<u32>> =
            reference(&format!("{key}.greedy")).to_dtype(DType::U32).unwrap().to_vec2().unwrap();
        let mut rows: Vec<Vec<u32>> = expected.iter().map(|r| r[..prompt_len].to_vec()).collect();
        let mut caches = [KvCache::new(), KvCache::new()];
        let mut step: Vec<Vec<u32>> = rows.clone();
        while rows[0].len() < expected[0].len() {
            let lens: Vec<usize> = step.iter().map(Vec::len).collect();
            let ids = Tensor::new(step.concat().as_slice(), &Device::Cpu).unwrap();
            let [a, b] = &mut caches;
            let hidden =
                model.hidden_states_cached(&ids, &lens, &mut [a, b], &[adapter, adapter]).unwrap();
            let mut end = 0;
            for (j, len) in lens.iter().enumerate() {
                end += len;
                let last = hidden.narrow(0, end - 1, 1).unwrap();
                let logits = model.logits(&last).unwrap().flatten_all().unwrap();
                let next = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
                rows[j].push(next);
                step[j] = vec![next];
            }
        }
        assert_eq!(rows, expected, "{key}: greedy tokens differ from transformers'");
    }
}

/// Fused qkv_proj/gate_up_proj, LongRoPE with its attention factor (on 24 tokens, past the
/// pretraining context of 16, so the long factors), partial rotary factor 0.75 and a
/// 6-token sliding window.
#[test]
fn phi3_longrope_partial_rotary_sliding_window_match_transformers() {
    check("tiny-phi3", None, "tiny-phi3.logits", "tiny-phi3");
    // The first 16 positions alone stay within the context: the short factors.
    let model = Model::load(&reference_dir().join("tiny-phi3"), &Device::Cpu).unwrap();
    let ids = reference("tiny-phi3.input_ids").to_dtype(DType::U32).unwrap();
    let short = model.forward(&ids.narrow(1, 0, 16).unwrap(), None).unwrap();
    let long = reference("tiny-phi3.logits").narrow(1, 0, 16).unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(arkor_test_support::check::max_relative_error(&flat(&short), &flat(&long), 1.0) > 1e-3);
}

/// A PEFT adapter with PEFT's Phi-3 names: one A per fused module, B over `[q; k; v]`.
#[test]
fn peft_adapter_on_phi3_matches_transformers() {
    check("tiny-phi3", Some("peft-adapter-phi3"), "tiny-phi3+peft.logits", "tiny-phi3");
}

#[test]
fn peft_adapter_loads_and_matches_transformers() {
    check("tiny-llama", Some("peft-adapter"), "tiny-llama+peft.logits", "tiny-llama");
}

#[test]
fn peft_rslora_adapter_matches_transformers() {
    check("tiny-llama", Some("peft-adapter-rslora"), "tiny-llama+peft-rslora.logits", "tiny-llama");
}

/// Writes an arkor adapter (non-zero B) for each reference model and arkor's logits with
/// it to `target/tmp/peft-roundtrip/<model>/`, where `make_reference.py check-adapter` reads
/// them to confirm PEFT loads our files and computes the same logits.
#[test]
fn our_adapter_files_are_written_for_the_peft_check() {
    use rand::{Rng, SeedableRng};
    for name in [
        "tiny-llama",
        "tiny-qwen2",
        "tiny-qwen3",
        "tiny-smollm3",
        "tiny-mistral",
        "tiny-gemma2",
        "tiny-gemma3",
        "tiny-phi3",
    ] {
        let model = Model::load(&reference_dir().join(name), &Device::Cpu).unwrap();
        let lora = arkor_engine::config::LoraConfig { r: 4, alpha: 8.0, ..Default::default() };
        let adapter = Adapter::new(model.spec(), &lora, name, 5, &Device::Cpu).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        for (n, var) in adapter.vars() {
            if n.contains("lora_B") {
                let v: Vec<f32> =
                    (0..var.elem_count()).map(|_| rng.random_range(-0.3..0.3)).collect();
                var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap()).unwrap();
            }
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("peft-roundtrip").join(name);
        adapter.save(&dir.join("adapter")).unwrap();
        let ids = reference(&format!("{name}.input_ids")).to_dtype(DType::U32).unwrap();
        let logits = model.forward(&ids, Some(&adapter)).unwrap();
        candle_core::safetensors::save(
            &std::collections::HashMap::from([("logits".to_owned(), logits.clone())]),
            dir.join("logits.safetensors"),
        )
        .unwrap();
        let reloaded = Adapter::load(&dir.join("adapter"), model.spec(), &Device::Cpu).unwrap();
        let again = model.forward(&ids, Some(&reloaded)).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&again), flat(&logits));
        let base = model.forward(&ids, None).unwrap();
        assert!(
            arkor_test_support::check::max_relative_error(&flat(&logits), &flat(&base), 1.0) > 1e-3
        );
    }
}
