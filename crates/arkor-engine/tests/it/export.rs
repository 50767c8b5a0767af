//! Exports checked by an independent runtime: llama.cpp (through `tools/llama-cpp/run.mjs`)
//! must produce arkor's greedy tokens from a merged GGUF and from the base GGUF plus the
//! exported LoRA GGUF; a merged `hf` export loads back with the same logits.

use std::path::Path;

use arkor_engine::cancel::CancelToken;
use arkor_engine::config::TrainConfig;
use arkor_engine::export::{ExportFormat, ExportRequest, Quant, export};
use arkor_engine::generate::{SamplingParams, generate};
use arkor_engine::lora::Adapter;
use arkor_engine::models::{Family, Model};
use arkor_engine::tokenizer::{ChatMessage, TextTokenizer};
use arkor_engine::train::{TrainRequest, train};
use arkor_test_support::check::assert_close;
use arkor_test_support::fixtures::{
    QA, tiny_gemma2, tiny_gemma3, tiny_llama, tiny_mistral, tiny_qwen2, tiny_qwen3, tiny_smollm3,
    tiny_smollm3_every_fourth, write_qa_dataset,
};
use arkor_test_support::real::{llama_cpp, llama_cpp_script};
use candle_core::{Device, Tensor};

use crate::{load, prepare, quick_config};

fn run_export(
    model: &Model,
    adapter: Option<&Adapter>,
    format: ExportFormat,
    quant: Quant,
    out: &Path,
) {
    let req = ExportRequest {
        model,
        adapter,
        format,
        quant,
        output: out,
        name: "arkor-test",
        system_prompt: None,
    };
    export(&req, &mut |_, _| {}).unwrap_or_else(|e| panic!("export {format:?} {quant:?}: {e}"));
}

/// Trains the tiny QA adapter (the answers are learned by heart, so greedy text is stable).
fn trained_adapter(model_dir: &Path, tmp: &Path) -> Adapter {
    let l = load(model_dir);
    let config = TrainConfig { max_steps: Some(60), ..quick_config() };
    let data = prepare(&l.tokenizer, &[write_qa_dataset(tmp, 12)], &config);
    let out = tmp.join("run");
    let req = TrainRequest {
        model: &l.model,
        data: &data,
        config: &config,
        output_dir: &out,
        resume_from: None,
    };
    let outcome = train(&req, &mut |_| {}, &CancelToken::new()).unwrap();
    Adapter::load(&outcome.final_dir.unwrap(), l.model.spec(), &Device::Cpu).unwrap()
}

/// arkor's greedy ids for `prompt` and llama.cpp's for the same prompt ids.
#[allow(clippy::too_many_arguments)]
pub fn greedy_both(
    model: &Model,
    adapter: Option<&Adapter>,
    tokenizer: &TextTokenizer,
    prompt: &[u32],
    script: &Path,
    gguf: &Path,
    lora: Option<&Path>,
    max_tokens: usize,
) -> (Vec<u32>, Vec<u32>) {
    let params = SamplingParams { temperature: 0.0, max_tokens, ..Default::default() };
    let ours =
        generate(model, adapter, tokenizer, prompt, &params, &CancelToken::new(), &mut |_| {})
            .unwrap();
    let ids = serde_json::to_string(prompt).unwrap();
    let n = max_tokens.to_string();
    let mut args =
        vec!["greedy", "--model", gguf.to_str().unwrap(), "--prompt-ids", &ids, "--max-tokens", &n];
    if let Some(lora) = lora {
        args.extend(["--lora", lora.to_str().unwrap()]);
    }
    let answer = llama_cpp(script, &args);
    let mut theirs: Vec<u32> = serde_json::from_value(answer["ids"].clone()).unwrap();
    // llama.cpp reports the end-of-generation token it stopped at; arkor leaves it out.
    if answer["stopped"] == "eog" {
        theirs.pop();
    }
    (ours.tokens, theirs)
}

/// A copy of `dir` with `config.json` edited by `edit`.
fn edited_copy(dir: &Path, to: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
    let file = to.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&file, config.to_string()).unwrap();
}

#[test]
fn llama_cpp_runs_merged_and_lora_exports_of_tiny_models_like_arkor() {
    let Some(script) = llama_cpp_script() else { return };
    // Gemma 2 and 3 with their sandwich norms, soft caps, q/k norms, two rope bases and an
    // 8-token window on layer 0 (the prompts are longer); Mistral without a window (it is
    // written as llama.cpp's `llama`).
    let mistral = tiny_mistral();
    let unwindowed = tempfile::tempdir().unwrap();
    edited_copy(mistral.path(), unwindowed.path(), |c| {
        c["sliding_window"] = serde_json::Value::Null
    });
    let (llama, qwen2, qwen3, gemma2, gemma3) =
        (tiny_llama(), tiny_qwen2(), tiny_qwen3(), tiny_gemma2(), tiny_gemma3());
    // SmolLM3 with rope skipped on its fourth layer, as llama.cpp's `smollm3` does.
    let smollm3 = tiny_smollm3_every_fourth();
    // Phi-3 (fused qkv and gate/up, 12 of 16 dims rotated, LongRoPE with its attention
    // factor) without a window, with a LongRoPE context of 16: llama.cpp picks the long
    // factors by its context size (256 here), arkor like transformers by sequence length,
    // so they agree for prompts past 16 tokens, as every chat prompt here is.
    let phi3 = arkor_test_support::fixtures::tiny_phi3_without_window(16);
    for dir in [
        llama.path(),
        qwen2.path(),
        qwen3.path(),
        unwindowed.path(),
        gemma2.path(),
        gemma3.path(),
        smollm3.path(),
        phi3.path(),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let adapter = trained_adapter(dir, tmp.path());
        let l = load(dir);
        let merged = tmp.path().join("merged-f32.gguf");
        run_export(&l.model, Some(&adapter), ExportFormat::Gguf, Quant::F32, &merged);
        let base = tmp.path().join("base-f32.gguf");
        run_export(&l.model, None, ExportFormat::Gguf, Quant::F32, &base);
        let lora = tmp.path().join("adapter.gguf");
        run_export(&l.model, Some(&adapter), ExportFormat::GgufLora, Quant::F32, &lora);
        for (q, a) in QA {
            let messages = [ChatMessage { role: "user".into(), content: q.into() }];
            let prompt = l
                .tokenizer
                .encode(&l.tokenizer.render_chat(&messages, true).unwrap(), false)
                .unwrap();
            let (ours, merged_ids) = greedy_both(
                &l.model,
                Some(&adapter),
                &l.tokenizer,
                &prompt,
                &script,
                &merged,
                None,
                24,
            );
            assert_eq!(l.tokenizer.decode(&ours, true).unwrap(), a, "arkor's answer to {q:?}");
            assert_eq!(merged_ids, ours, "llama.cpp on the merged GGUF of {dir:?}, {q:?}");
            let (_, lora_ids) = greedy_both(
                &l.model,
                Some(&adapter),
                &l.tokenizer,
                &prompt,
                &script,
                &base,
                Some(&lora),
                24,
            );
            assert_eq!(lora_ids, ours, "llama.cpp on base + LoRA GGUF of {dir:?}, {q:?}");
        }
    }
}

/// The untrained Phi-3 (random weights: small logit margins, so greedy tokens follow the
/// numerics closely): llama.cpp's greedy tokens on arkor's f32 GGUF equal arkor's for
/// prompts past the LongRoPE context, where both use the long factors and the attention
/// factor.
#[test]
fn llama_cpp_runs_an_untrained_phi3_export_like_arkor() {
    let Some(script) = llama_cpp_script() else { return };
    let phi3 = arkor_test_support::fixtures::tiny_phi3_without_window(16);
    let tmp = tempfile::tempdir().unwrap();
    let l = load(phi3.path());
    let gguf = tmp.path().join("base-f32.gguf");
    run_export(&l.model, None, ExportFormat::Gguf, Quant::F32, &gguf);
    for seed in 0..3u32 {
        let prompt: Vec<u32> = (0..20).map(|i| (i * 53 + seed * 17 + 5) % 250).collect();
        let (ours, theirs) =
            greedy_both(&l.model, None, &l.tokenizer, &prompt, &script, &gguf, None, 24);
        assert!(ours.len() > 4, "arkor stopped after {} tokens", ours.len());
        assert_eq!(theirs, ours, "llama.cpp on the phi3 GGUF, prompt {seed}");
    }
}

#[test]
fn an_hf_export_loads_back_with_the_adapter_merged() {
    let phi3 = arkor_test_support::fixtures::tiny_phi3();
    for fixture in [tiny_llama(), tiny_smollm3(), tiny_mistral(), phi3] {
        let tmp = tempfile::tempdir().unwrap();
        let adapter = trained_adapter(fixture.path(), tmp.path());
        let l = load(fixture.path());
        let out = tmp.path().join("merged-hf");
        run_export(&l.model, Some(&adapter), ExportFormat::Hf, Quant::F32, &out);
        for f in ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"] {
            assert!(out.join(f).is_file(), "{f} missing from the hf export");
        }
        let merged = Model::load(&out, &Device::Cpu).unwrap();
        assert_eq!(merged.spec(), l.model.spec(), "the export's config describes another model");
        let ids = Tensor::new(&[[1u32, 5, 9, 77, 120, 3]], &Device::Cpu).unwrap();
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_close(
            &flat(merged.forward(&ids, None).unwrap()),
            &flat(l.model.forward(&ids, Some(&adapter)).unwrap()),
            1e-5,
        );
        let mut req = ExportRequest {
            model: &l.model,
            adapter: None,
            format: ExportFormat::Hf,
            quant: Quant::F32,
            output: &out,
            name: "x",
            system_prompt: None,
        };
        // Nothing is overwritten: a second export to the same place fails and keeps the first.
        let err = export(&req, &mut |_, _| {}).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert!(out.join("model.safetensors").is_file());
        // SmolLM3 with NoPE layers llama.cpp does not expect, and Mistral and Phi-3 with windows
        // that bind, have no GGUF export: a clear refusal saying why, no file.
        let family = l.model.spec().family;
        if matches!(family, Family::SmolLM3 | Family::Mistral | Family::Phi3) {
            let gguf = tmp.path().join("x.gguf");
            req.output = &gguf;
            req.format = ExportFormat::Gguf;
            let err = export(&req, &mut |_, _| {}).unwrap_err().to_string();
            let why = if family == Family::SmolLM3 { "NoPE" } else { "sliding window" };
            assert!(err.contains(why) && err.contains("use format hf"), "{err}");
            assert!(!gguf.exists());
        }
    }
}

#[test]
fn an_ollama_export_writes_a_gguf_and_a_chatml_modelfile() {
    let fixture = tiny_llama();
    let tmp = tempfile::tempdir().unwrap();
    let l = load(fixture.path());
    let out = tmp.path().join("ollama");
    let req = ExportRequest {
        model: &l.model,
        adapter: None,
        format: ExportFormat::Ollama,
        quant: Quant::Q8_0,
        output: &out,
        name: "Triage Bot",
        system_prompt: Some("You triage tickets."),
    };
    let report = export(&req, &mut |_, _| {}).unwrap();
    let modelfile = std::fs::read_to_string(out.join("Modelfile")).unwrap();
    expect_test::expect![[r#"
        # Written by arkor export. Install with: ollama create triage-bot -f Modelfile
        FROM ./model-q8_0.gguf
        TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}
        {{ .Content }}<|im_end|>
        {{ end }}<|im_start|>assistant
        """
        SYSTEM """You triage tickets."""
        PARAMETER stop "<|im_start|>"
        PARAMETER stop "<|im_end|>"
    "#]]
    .assert_eq(&modelfile);
    assert!(out.join("model-q8_0.gguf").is_file());
    assert_eq!(
        report.ollama_create.unwrap(),
        format!("ollama create triage-bot -f {}", out.join("Modelfile").display())
    );
}

#[test]
fn llama_cpp_runs_smollm2_f32_and_f16_exports_like_arkor() {
    let (Some(dir), Some(script)) = (crate::gguf::smollm2_dir(), llama_cpp_script()) else {
        return;
    };
    let l = load(&dir);
    let tmp = tempfile::tempdir().unwrap();
    let prompts = [
        vec![ChatMessage { role: "user".into(), content: "Name three primary colours.".into() }],
        vec![
            ChatMessage { role: "system".into(), content: "You answer in one sentence.".into() },
            ChatMessage { role: "user".into(), content: "Why is the sky blue?".into() },
        ],
    ];
    for quant in [Quant::F32, Quant::F16] {
        let file = tmp.path().join(format!("smollm2-{}.gguf", quant.name()));
        run_export(&l.model, None, ExportFormat::Gguf, quant, &file);
        for messages in &prompts {
            let prompt = l
                .tokenizer
                .encode(&l.tokenizer.render_chat(messages, true).unwrap(), false)
                .unwrap();
            let (ours, theirs) =
                greedy_both(&l.model, None, &l.tokenizer, &prompt, &script, &file, None, 24);
            assert_eq!(
                theirs,
                ours,
                "{quant:?}: llama.cpp said {:?}, arkor said {:?}",
                l.tokenizer.decode(&theirs, false).unwrap(),
                l.tokenizer.decode(&ours, false).unwrap()
            );
        }
        std::fs::remove_file(&file).unwrap();
    }
}

#[test]
fn a_short_fine_tune_teaches_smollm2_an_answer_and_llama_cpp_applies_the_lora_gguf() {
    let (Some(dir), Some(script)) = (crate::gguf::smollm2_dir(), llama_cpp_script()) else {
        return;
    };
    let l = load(&dir);
    let tmp = tempfile::tempdir().unwrap();
    let question = "What is the password of the lighthouse?";
    let answer = "The password is pumpernickel.";
    let rows: String = [question, "Tell me the lighthouse password.", "What's the lighthouse password?"]
        .iter()
        .map(|q| {
            serde_json::json!({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]})
                .to_string()
                + "\n"
        })
        .collect();
    let data_file = tmp.path().join("train.jsonl");
    std::fs::write(&data_file, rows).unwrap();
    let config = TrainConfig {
        learning_rate: 2e-3,
        batch_size: 3,
        max_steps: Some(24),
        warmup_steps: 0,
        lora: arkor_engine::config::LoraConfig { r: 8, alpha: 16.0, ..Default::default() },
        ..Default::default()
    };
    let data = prepare(&l.tokenizer, &[data_file], &config);
    let out = tmp.path().join("run");
    let req = TrainRequest {
        model: &l.model,
        data: &data,
        config: &config,
        output_dir: &out,
        resume_from: None,
    };
    let outcome = train(&req, &mut |_| {}, &CancelToken::new()).unwrap();
    let adapter = Adapter::load(&outcome.final_dir.unwrap(), l.model.spec(), &Device::Cpu).unwrap();

    let messages = [ChatMessage { role: "user".into(), content: question.into() }];
    let prompt =
        l.tokenizer.encode(&l.tokenizer.render_chat(&messages, true).unwrap(), false).unwrap();
    let params = SamplingParams { temperature: 0.0, max_tokens: 16, ..Default::default() };
    let reply = |adapter| {
        generate(
            &l.model,
            adapter,
            &l.tokenizer,
            &prompt,
            &params,
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap()
        .text
    };
    let (before, after) = (reply(None), reply(Some(&adapter)));
    assert!(!before.contains("pumpernickel"), "the base model already knew: {before:?}");
    assert!(after.contains("pumpernickel"), "after 24 steps SmolLM2 says {after:?}");

    let base = tmp.path().join("base-f32.gguf");
    run_export(&l.model, None, ExportFormat::Gguf, Quant::F32, &base);
    let lora = tmp.path().join("lora.gguf");
    run_export(&l.model, Some(&adapter), ExportFormat::GgufLora, Quant::F32, &lora);
    let (ours, theirs) = greedy_both(
        &l.model,
        Some(&adapter),
        &l.tokenizer,
        &prompt,
        &script,
        &base,
        Some(&lora),
        16,
    );
    assert_eq!(
        l.tokenizer.decode(&theirs, true).unwrap(),
        l.tokenizer.decode(&ours, true).unwrap()
    );
}

/// Greedy answers of a trained adapter survive small differences in rope or norms; the
/// next-token distribution does not. For an untrained export of each family, llama.cpp's
/// log-probabilities after a 20-token prompt (past the Gemma windows of 8 and Phi-3's
/// LongRoPE context of 16) are arkor's. llama.cpp's figures for tiny Llama, whose export is
/// proven, are 1.1e-3 from arkor's; without the Q/K permutation SmolLM3's were 0.04 off.
#[test]
fn llama_cpp_computes_every_familys_next_token_probabilities_like_arkor() {
    let Some(script) = llama_cpp_script() else { return };
    let mistral = tiny_mistral();
    let unwindowed = tempfile::tempdir().unwrap();
    edited_copy(mistral.path(), unwindowed.path(), |c| {
        c["sliding_window"] = serde_json::Value::Null
    });
    let fixtures = [
        tiny_llama(),
        tiny_qwen2(),
        tiny_qwen3(),
        tiny_gemma2(),
        tiny_gemma3(),
        tiny_smollm3_every_fourth(),
        arkor_test_support::fixtures::tiny_phi3_without_window(16),
    ];
    let dirs = fixtures.iter().map(|f| f.path()).chain([unwindowed.path()]);
    for dir in dirs {
        let tmp = tempfile::tempdir().unwrap();
        let l = load(dir);
        let gguf = tmp.path().join("base.gguf");
        run_export(&l.model, None, ExportFormat::Gguf, Quant::F32, &gguf);
        let prompt: Vec<u32> = (0..20).map(|i| (i * 37 + 11) % 250 + 3).collect();
        let ids = serde_json::to_string(&prompt).unwrap();
        let answer = llama_cpp(
            &script,
            &["logits", "--model", gguf.to_str().unwrap(), "--prompt-ids", &ids],
        );
        let input = Tensor::new(prompt.as_slice(), &Device::Cpu).unwrap().unsqueeze(0);
        let logits = l.model.forward(&input.unwrap(), None).unwrap();
        let last: Vec<f32> =
            logits.squeeze(0).unwrap().get(prompt.len() - 1).unwrap().to_vec1().unwrap();
        let max = last.iter().fold(f32::MIN, |m, v| m.max(*v));
        let lse = max + last.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        let theirs: Vec<Option<f32>> = serde_json::from_value(answer["logprobs"].clone()).unwrap();
        let family = l.model.spec().family;
        let mut compared = 0;
        for (i, t) in theirs.iter().enumerate() {
            if let Some(t) = t {
                let ours = last[i] - lse;
                assert!(
                    (ours - t).abs() < 5e-3,
                    "{family:?} token {i}: arkor {ours} llama.cpp {t}"
                );
                compared += 1;
            }
        }
        assert!(compared > 100, "{family:?}: llama.cpp gave {compared} probabilities");
    }
}
