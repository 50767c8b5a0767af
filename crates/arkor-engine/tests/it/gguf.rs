//! GGUF import: every listed quantization dequantizes to the values it encodes, tiny models
//! survive an export/import round trip, bad files get errors naming the problem, and the
//! real SmolLM2-135M-Instruct GGUF tokenizes, renders its chat template and computes
//! logits like the references (llama.cpp's ids, transformers' template and logits).

use std::path::{Path, PathBuf};

use arkor_engine::export::{ExportFormat, ExportRequest, Quant, export};
use arkor_engine::gguf::{GgufFile, import};
use arkor_engine::models::Model;
use arkor_engine::tokenizer::{ChatMessage, TextTokenizer};
use arkor_test_support::check::assert_close;
use arkor_test_support::fixtures::{
    tiny_gemma2, tiny_gemma3, tiny_llama, tiny_qwen2, tiny_qwen3, tiny_smollm3_every_fourth,
};
use arkor_test_support::real::smollm2_gguf;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

/// Exports `model_dir` (no adapter) as a GGUF file at `quant`.
pub fn export_gguf(model: &Model, quant: Quant, out: &Path) {
    let req = ExportRequest {
        model,
        adapter: None,
        format: ExportFormat::Gguf,
        quant,
        output: out,
        name: "test",
        system_prompt: None,
    };
    export(&req, &mut |_, _| {}).expect("export gguf");
}

fn logits(model: &Model, ids: &[u32]) -> Vec<f32> {
    let t = Tensor::new(ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    model.forward(&t, None).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn tiny_models_round_trip_through_an_f32_gguf() {
    let text = "The 2 cats sat on 1234 mats.\n\tdon't <|im_start|>user\nhi<|im_end|>";
    // Gemma's norms (stored as 1 + w), window, layer pattern, caps and rope bases too.
    // Phi-3 with fused projections, partial rotary and LongRoPE (context 16, so the 16
    // ids below use the short factors and the 40 ids further down the long ones).
    let phi3 = arkor_test_support::fixtures::tiny_phi3_without_window(16);
    for fixture in [
        tiny_llama(),
        tiny_qwen2(),
        tiny_qwen3(),
        tiny_gemma2(),
        tiny_gemma3(),
        tiny_smollm3_every_fourth(),
        phi3,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let original = Model::load(fixture.path(), &Device::Cpu).unwrap();
        let file = tmp.path().join("tiny.gguf");
        export_gguf(&original, Quant::F32, &file);
        let dir = import(&file, &tmp.path().join("cache")).unwrap();
        let imported = Model::load(&dir, &Device::Cpu).unwrap();
        assert_eq!(imported.spec().family, original.spec().family);
        // Longer than the Gemma fixtures' 8-token window.
        let ids = [1u32, 5, 9, 77, 120, 3, 200, 14, 15, 92, 35, 65, 89, 79, 32, 38];
        assert_close(&logits(&imported, &ids), &logits(&original, &ids), 1e-5);
        if original.spec().rope_long.is_some() {
            let long: Vec<u32> = (0..40u32).map(|i| (i * 37 + 11) % 250).collect();
            assert_close(&logits(&imported, &long), &logits(&original, &long), 1e-5);
            // The factors pass through f32 division, so equal to an ulp.
            let (a, b) = (imported.spec(), original.spec());
            let (la, lb) = (a.rope_long.as_ref().unwrap(), b.rope_long.as_ref().unwrap());
            assert_eq!(la.original_max_positions, lb.original_max_positions);
            assert_close(&la.inv_freq, &lb.inv_freq, 1e-6);
            assert_close(&a.rope_inv_freq, &b.rope_inv_freq, 1e-6);
            assert_eq!(a.rope_attention_factor, b.rope_attention_factor);
        }
        let (a, b) = (
            TextTokenizer::from_dir(fixture.path()).unwrap(),
            TextTokenizer::from_dir(&dir).unwrap(),
        );
        assert_eq!(b.encode(text, false).unwrap(), a.encode(text, false).unwrap());
        assert_eq!(b.eos_token_ids(), a.eos_token_ids());
        let chat = [ChatMessage { role: "user".into(), content: "hi".into() }];
        assert_eq!(b.render_chat(&chat, true).unwrap(), a.render_chat(&chat, true).unwrap());
        // A second import of the same file reuses the directory.
        assert_eq!(import(&file, &tmp.path().join("cache")).unwrap(), dir);
    }
}

/// A GGUF with llama metadata and one `[rows, cols]` tensor of each given type.
fn write_one_tensor_gguf(path: &Path, arch: &str, tensors: &[(&str, &QTensor)]) {
    let arch_v = Value::String(arch.to_owned());
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &[("general.architecture", &arch_v)], tensors).unwrap();
}

#[test]
fn every_listed_quantization_dequantizes_to_its_values() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Tensor::randn(0f32, 1., (4, 512), &Device::Cpu).unwrap();
    let values: Vec<f32> = src.flatten_all().unwrap().to_vec1().unwrap();
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    // Largest error of each format relative to the largest magnitude in the tensor.
    let cases = [
        (GgmlDType::F32, 0.0),
        (GgmlDType::F16, 1e-3),
        (GgmlDType::BF16, 8e-3),
        (GgmlDType::Q8_0, 1e-2),
        (GgmlDType::Q4_0, 0.15),
        (GgmlDType::Q4_1, 0.1),
        (GgmlDType::Q5_0, 0.07),
        (GgmlDType::Q4K, 0.12),
        (GgmlDType::Q5K, 0.06),
        (GgmlDType::Q6K, 0.03),
    ];
    for (dtype, tolerance) in cases {
        let q = QTensor::quantize(&src, dtype).unwrap();
        let path = tmp.path().join(format!("{dtype:?}.gguf"));
        write_one_tensor_gguf(&path, "llama", &[("blk.0.attn_v.weight", &q)]);
        let file = GgufFile::open(&path).unwrap();
        let config = serde_json::json!({"num_attention_heads": 1, "num_key_value_heads": 1});
        let tensors = file.hf_tensors(&config).unwrap();
        assert_eq!(tensors.len(), 1);
        assert_eq!(tensors[0].0, "model.layers.0.self_attn.v_proj.weight");
        assert_eq!(tensors[0].1.dims(), &[4, 512]);
        let got: Vec<f32> = tensors[0].1.flatten_all().unwrap().to_vec1().unwrap();
        let worst = got.iter().zip(&values).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= tolerance * max, "{dtype:?}: max error {worst} > {tolerance} x {max}");
        let mean =
            got.iter().zip(&values).map(|(a, b)| (a - b).abs()).sum::<f32>() / values.len() as f32;
        assert!(mean <= tolerance * max / 2.0 + 1e-9, "{dtype:?}: mean error {mean}");
    }
}

fn open_err(path: &Path) -> String {
    match GgufFile::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_files_get_errors_naming_the_problem_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = tiny_llama();
    let model = Model::load(fixture.path(), &Device::Cpu).unwrap();
    let good = tmp.path().join("good.gguf");
    export_gguf(&model, Quant::F16, &good);

    let bytes = std::fs::read(&good).unwrap();
    let truncated = tmp.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = open_err(&truncated);
    assert!(err.contains("truncated.gguf") && err.contains("truncated: tensor"), "{err}");
    let cache = tmp.path().join("cache");
    assert!(import(&truncated, &cache).is_err());
    let left: Vec<_> = std::fs::read_dir(&cache).map(|d| d.collect()).unwrap_or_default();
    assert!(left.is_empty(), "a failed import left {left:?}");

    let header_only = tmp.path().join("header.gguf");
    std::fs::write(&header_only, &bytes[..40]).unwrap();
    assert!(open_err(&header_only).contains("header"), "{}", open_err(&header_only));

    let text = tmp.path().join("notes.gguf");
    std::fs::write(&text, "hello, not a model").unwrap();
    assert!(open_err(&text).contains("not a GGUF file"), "{}", open_err(&text));

    let q = QTensor::quantize(
        &Tensor::zeros((2, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::Q8_0,
    )
    .unwrap();
    let phi = tmp.path().join("phi.gguf");
    write_one_tensor_gguf(&phi, "phi2", &[("token_embd.weight", &q)]);
    let err = open_err(&phi);
    assert!(
        err.contains("unsupported architecture \"phi2\"")
            && err.contains("llama, qwen2, qwen3, gemma2, gemma3, smollm3, phi3"),
        "{err}"
    );

    // Patch the tensor's type id to 23 (IQ4_XS), which candle cannot read.
    let iq = tmp.path().join("iq4.gguf");
    write_one_tensor_gguf(&iq, "llama", &[("token_embd.weight", &q)]);
    let mut raw = std::fs::read(&iq).unwrap();
    let at = raw.windows(17).position(|w| w == b"token_embd.weight").unwrap() + 17;
    let dtype_at = at + 4 + 2 * 8; // n_dims (u32), two dims (u64)
    raw[dtype_at..dtype_at + 4].copy_from_slice(&23u32.to_le_bytes());
    std::fs::write(&iq, raw).unwrap();
    let err = open_err(&iq);
    assert!(err.contains("IQ4_XS") && err.contains("iq4.gguf"), "{err}");
}

/// The reference fixtures of the real model, next to `make_smollm2_reference.py`.
fn smollm2_reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference/smollm2")
}

/// SmolLM2 imported once per target dir (the import is cached by path, size and mtime).
pub fn smollm2_dir() -> Option<PathBuf> {
    let gguf = smollm2_gguf()?;
    Some(
        import(&gguf, &Path::new(env!("CARGO_TARGET_TMPDIR")).join("gguf-import"))
            .expect("import SmolLM2"),
    )
}

fn read_json(name: &str) -> serde_json::Value {
    let path = smollm2_reference().join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn smollm2_tokenizer_matches_llama_cpp_and_its_template_renders_like_transformers() {
    let Some(dir) = smollm2_dir() else { return };
    let tokenizer = TextTokenizer::from_dir(&dir).unwrap();
    let corpus = read_json("corpus.json");
    let ids = read_json("token_ids.json");
    let texts = corpus.as_array().unwrap();
    assert!(texts.len() >= 15);
    for (text, want) in texts.iter().zip(ids["ids"].as_array().unwrap()) {
        let text = text.as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(want.clone()).unwrap();
        assert_eq!(tokenizer.encode(text, false).unwrap(), want, "ids of {text:?}");
    }
    assert_eq!(tokenizer.eos_token_ids(), &[2]);
    let chat = read_json("chat.json");
    for case in chat["conversations"].as_array().unwrap() {
        let messages: Vec<ChatMessage> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage {
                role: m["role"].as_str().unwrap().into(),
                content: m["content"].as_str().unwrap().into(),
            })
            .collect();
        let add = case["add_generation_prompt"].as_bool().unwrap();
        let rendered = tokenizer.render_chat(&messages, add).unwrap();
        assert_eq!(rendered, case["rendered"].as_str().unwrap(), "{}", case["name"]);
        let want: Vec<u32> = serde_json::from_value(case["llama_cpp_ids"].clone()).unwrap();
        assert_eq!(tokenizer.encode(&rendered, false).unwrap(), want, "ids of {}", case["name"]);
    }
}

#[test]
fn smollm2_logits_match_transformers_within_1e4() {
    let Some(dir) = smollm2_dir() else { return };
    let model = Model::load(&dir, &Device::Cpu).unwrap();
    let spec = model.spec();
    assert_eq!(
        (spec.hidden_size, spec.num_layers, spec.num_heads, spec.num_kv_heads),
        (576, 30, 9, 3)
    );
    assert!(spec.tie_word_embeddings);
    let reference = candle_core::safetensors::load(
        smollm2_reference().join("logits.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let mut checked = 0;
    for i in 0.. {
        let Some(ids) = reference.get(&format!("input_ids_{i}")) else { break };
        let ids: Vec<u32> = ids.to_dtype(candle_core::DType::U32).unwrap().to_vec1().unwrap();
        let want: Vec<f32> = reference[&format!("logits_{i}")].to_vec1().unwrap();
        let all = logits(&model, &ids);
        let last = &all[all.len() - want.len()..];
        assert_close(last, &want, 1e-4);
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} reference prompts");
}
