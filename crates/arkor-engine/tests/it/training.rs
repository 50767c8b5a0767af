//! The training loop learns, is reproducible, resumes exactly and cancels promptly; the
//! adapters it writes round-trip and merge.

use std::path::Path;

use arkor_engine::cancel::CancelToken;
use arkor_engine::config::TrainConfig;
use arkor_engine::event::EngineEvent;
use arkor_engine::generate::{SamplingParams, chat};
use arkor_engine::lora::Adapter;
use arkor_engine::models::Model;
use arkor_engine::tokenizer::{ChatMessage, TextTokenizer};
use arkor_engine::train::{TrainOutcome, TrainRequest, train};
use arkor_test_support::check::assert_close;
use arkor_test_support::fixtures::{QA, every_family, tiny_llama, write_qa_dataset};
use candle_core::{Device, Tensor};

use crate::{Loaded, load, prepare, quick_config};

fn run(
    l: &Loaded,
    config: &TrainConfig,
    data_dir: &Path,
    out: &Path,
    resume: Option<&Path>,
    cancel: &CancelToken,
) -> (TrainOutcome, Vec<EngineEvent>) {
    let data = prepare(&l.tokenizer, &[write_qa_dataset(data_dir, 12)], config);
    let mut events = vec![];
    let req =
        TrainRequest { model: &l.model, data: &data, config, output_dir: out, resume_from: resume };
    let outcome = train(&req, &mut |e| events.push(e), cancel).expect("training runs");
    (outcome, events)
}

#[test]
fn loss_halves_in_30_steps_and_runs_are_reproducible() {
    for fixture in every_family() {
        let l = load(fixture.path());
        let tmp = tempfile::tempdir().unwrap();
        let config = quick_config();
        let (a, events) =
            run(&l, &config, tmp.path(), &tmp.path().join("a"), None, &CancelToken::new());
        let (b, _) = run(&l, &config, tmp.path(), &tmp.path().join("b"), None, &CancelToken::new());
        assert_eq!(a.losses.len(), 30);
        let (first, last) = (a.losses[0], *a.losses.last().unwrap());
        assert!(last < first / 2.0, "loss went from {first} to {last}");
        assert_eq!(a.losses, b.losses, "same seed, same data, different losses");
        assert!(matches!(events.first(), Some(EngineEvent::Started(_))));
        assert!(matches!(events.last(), Some(EngineEvent::Completed { step: 30, .. })));
        assert_eq!(events.iter().filter(|e| matches!(e, EngineEvent::Log(_))).count(), 30);
    }
}

/// With activation checkpointing the run is the same run: same losses step by step.
#[test]
fn gradient_checkpointing_trains_the_same_run() {
    let fixture = tiny_llama();
    let l = load(fixture.path());
    let tmp = tempfile::tempdir().unwrap();
    // Dropout on, so the recomputed blocks must draw the same masks.
    let lora = arkor_engine::config::LoraConfig { dropout: 0.1, ..quick_config().lora };
    let config = TrainConfig { lora, max_steps: Some(10), ..quick_config() };
    let (plain, _) = run(&l, &config, tmp.path(), &tmp.path().join("a"), None, &CancelToken::new());
    let config = TrainConfig { gradient_checkpointing: true, ..config };
    let (again, _) = run(&l, &config, tmp.path(), &tmp.path().join("b"), None, &CancelToken::new());
    assert_eq!(plain.losses.len(), 10);
    let f32s = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<_>>();
    assert_close(&f32s(&again.losses), &f32s(&plain.losses), 1e-4);
    assert!(plain.losses[9] < plain.losses[0]);
}

/// A base kept in 8-bit or 4-bit blocks computes nearly the fp32 base's logits and still
/// learns: the same 30 steps halve the loss, close to the fp32 run's curve.
#[test]
fn a_quantized_base_stays_close_to_fp32_and_still_learns() {
    use arkor_engine::config::BaseQuant;
    let fixture = tiny_llama();
    let dense = load(fixture.path());
    let tmp = tempfile::tempdir().unwrap();
    let (reference, _) = run(
        &dense,
        &quick_config(),
        tmp.path(),
        &tmp.path().join("f32"),
        None,
        &CancelToken::new(),
    );
    let ids = Tensor::new(&[[5u32, 40, 41, 42, 99, 7, 8]], &Device::Cpu).unwrap();
    let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let dense_logits = flat(dense.model.forward(&ids, None).unwrap());
    for (quant, logit_tol, loss_tol) in
        [(BaseQuant::Q8_0, 0.02, 0.01), (BaseQuant::Q4_1, 0.3, 0.05)]
    {
        let model = Model::load_with(fixture.path(), &Device::Cpu, quant).unwrap();
        let logits = flat(model.forward(&ids, None).unwrap());
        let worst = arkor_test_support::check::max_relative_error(&logits, &dense_logits, 1.0);
        assert!(worst < logit_tol, "{quant:?}: logits differ from fp32 by {worst}");
        assert!(worst > 0.0, "{quant:?}: the weights were not quantized");
        let l = Loaded { model, tokenizer: TextTokenizer::from_dir(fixture.path()).unwrap() };
        let config = TrainConfig { base_quant: quant, ..quick_config() };
        let out = tmp.path().join(format!("{quant:?}"));
        let (outcome, _) = run(&l, &config, tmp.path(), &out, None, &CancelToken::new());
        let (first, last) = (outcome.losses[0], *outcome.losses.last().unwrap());
        assert!(last < first / 2.0, "{quant:?}: loss went from {first} to {last}");
        let end = *reference.losses.last().unwrap();
        assert!(
            (last - end).abs() < loss_tol * end.max(0.1),
            "{quant:?}: final loss {last} vs {end} with the fp32 base"
        );
    }
}

#[test]
fn a_trained_adapter_reproduces_the_answers_and_survives_a_round_trip() {
    learns_the_answers_and_round_trips(&tiny_llama());
}

/// The same on Phi-3: LoRA on the fused qkv_proj and gate_up_proj (the default seven
/// targets resolve to its four), saved with PEFT's names, merged back into fused weights.
/// The chat prompts (about 30 tokens) with their replies cross the 8-token window and the
/// 32-token LongRoPE context.
#[test]
fn phi3_learns_the_three_answers_through_fused_projections() {
    let fixture = arkor_test_support::fixtures::tiny_phi3();
    learns_the_answers_and_round_trips(&fixture);
    let config = std::fs::read_to_string(fixture.path().join("config.json")).unwrap();
    assert!(config.contains("longrope"), "the fixture uses LongRoPE");
}

fn learns_the_answers_and_round_trips(fixture: &arkor_test_support::fixtures::TempModel) {
    let l = load(fixture.path());
    let tmp = tempfile::tempdir().unwrap();
    let config = TrainConfig { max_steps: Some(60), ..quick_config() };
    let (outcome, _) =
        run(&l, &config, tmp.path(), &tmp.path().join("run"), None, &CancelToken::new());
    let final_dir = outcome.final_dir.unwrap();
    let adapter = Adapter::load(&final_dir, l.model.spec(), &Device::Cpu).unwrap();
    let names: Vec<&str> =
        arkor_engine::lora::Proj::of(l.model.spec()).iter().map(|p| p.peft_name()).collect();
    let mut targets: Vec<&str> = adapter.config().target_modules.iter().map(|s| &**s).collect();
    targets.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(targets, expected, "the adapter targets the family's projections");
    let greedy = SamplingParams { temperature: 0.0, max_tokens: 40, ..Default::default() };
    for (q, a) in QA {
        let messages = [ChatMessage { role: "user".into(), content: q.into() }];
        let mut streamed = String::new();
        let reply = chat(
            &l.model,
            Some(&adapter),
            &l.tokenizer,
            &messages,
            &greedy,
            &CancelToken::new(),
            &mut |t| streamed.push_str(t),
        )
        .unwrap();
        assert_eq!(reply.text, a, "answer to {q:?}");
        assert_eq!(streamed, reply.text);
        let base = chat(
            &l.model,
            None,
            &l.tokenizer,
            &messages,
            &greedy,
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap();
        assert_ne!(base.text, a, "the base model already knew the answer");
    }

    // Save again from the loaded copy, reload, compare logits with the original file.
    let ids = Tensor::new(&[[1u32, 5, 9, 77, 120, 3]], &Device::Cpu).unwrap();
    let resaved = tmp.path().join("resaved");
    adapter.save(&resaved).unwrap();
    let reloaded = Adapter::load(&resaved, l.model.spec(), &Device::Cpu).unwrap();
    let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let original = flat(l.model.forward(&ids, Some(&adapter)).unwrap());
    assert_eq!(flat(l.model.forward(&ids, Some(&reloaded)).unwrap()), original);

    // Merging the adapter into the base weights gives the same logits without it.
    let merged_dir = tmp.path().join("merged");
    std::fs::create_dir_all(&merged_dir).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(fixture.path().join(f), merged_dir.join(f)).unwrap();
    }
    let weights = l.model.merged_weights(Some(&adapter)).unwrap();
    candle_core::safetensors::save(&weights, merged_dir.join("model.safetensors")).unwrap();
    let merged = Model::load(&merged_dir, &Device::Cpu).unwrap();
    assert_close(&flat(merged.forward(&ids, None).unwrap()), &original, 1e-4);
}

#[test]
fn resuming_from_step_10_replays_steps_11_to_20_exactly() {
    let fixture = tiny_llama();
    let l = load(fixture.path());
    let tmp = tempfile::tempdir().unwrap();
    let lora = arkor_engine::config::LoraConfig { dropout: 0.1, ..quick_config().lora };
    let full = TrainConfig {
        max_steps: Some(20),
        save_steps: Some(10),
        gradient_accumulation_steps: 2,
        warmup_steps: 3,
        weight_decay: 0.01,
        lora,
        ..quick_config()
    };
    let (uninterrupted, _) =
        run(&l, &full, tmp.path(), &tmp.path().join("full"), None, &CancelToken::new());
    let checkpoint = tmp.path().join("full/checkpoint-10");
    for f in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(checkpoint.join(f).is_file(), "checkpoint lacks {f}");
    }
    let (resumed, events) = run(
        &l,
        &full,
        tmp.path(),
        &tmp.path().join("full"),
        Some(&checkpoint),
        &CancelToken::new(),
    );
    assert!(matches!(&events[0], EngineEvent::Started(info) if info.start_step == 10));
    assert_eq!(resumed.losses, uninterrupted.losses[10..].to_vec());
}

#[test]
fn cancel_stops_within_one_step_and_says_so() {
    let fixture = tiny_llama();
    let l = load(fixture.path());
    let tmp = tempfile::tempdir().unwrap();
    let config = TrainConfig { max_steps: Some(1000), ..quick_config() };
    let data = prepare(&l.tokenizer, &[write_qa_dataset(tmp.path(), 12)], &config);
    let cancel = CancelToken::new();
    let mut events = vec![];
    let mut cancelled_at = None;
    let req = TrainRequest {
        model: &l.model,
        data: &data,
        config: &config,
        output_dir: tmp.path(),
        resume_from: None,
    };
    let outcome = train(
        &req,
        &mut |e: EngineEvent| {
            if let EngineEvent::Log(m) = &e
                && m.step == 3
            {
                cancel.cancel();
                cancelled_at = Some(m.step);
            }
            events.push(e);
        },
        &cancel,
    )
    .unwrap();
    assert!(outcome.cancelled);
    assert_eq!(Some(outcome.steps), cancelled_at, "ran past the step where cancel fired");
    assert!(matches!(events.last(), Some(EngineEvent::Cancelled { step: 3 })));
    assert!(!tmp.path().join("final").exists(), "a cancelled run wrote a final adapter");
}
