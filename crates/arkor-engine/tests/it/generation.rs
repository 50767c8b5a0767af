//! Generation: the KV-cache path agrees with full forward passes, sampling is seeded,
//! and limits are honoured.

use arkor_engine::cancel::CancelToken;
use arkor_engine::generate::{FinishReason, SamplingParams, generate, greedy_next_tokens};
use arkor_test_support::fixtures::{every_family, tiny_llama};

use crate::load;

#[test]
fn cached_greedy_decoding_matches_uncached_forward_passes() {
    for fixture in every_family() {
        let l = load(fixture.path());
        let prompt = l.tokenizer.encode("Hello there, tiny model", false).unwrap();
        // No EOS and no early stop: a random model may emit EOS, so use ids directly.
        let params = SamplingParams { temperature: 0.0, max_tokens: 12, ..Default::default() };
        let out = generate(
            &l.model,
            None,
            &l.tokenizer,
            &prompt,
            &params,
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap();
        // Re-derive each token from a full, cache-free forward pass over the prefix.
        let mut ids = prompt.clone();
        for &token in &out.tokens {
            let next = *greedy_next_tokens(&l.model, None, &ids).unwrap().last().unwrap();
            assert_eq!(next, token, "cache and full forward disagree after {} tokens", ids.len());
            ids.push(token);
        }
        if out.finish_reason == FinishReason::Length {
            assert_eq!(out.tokens.len(), 12);
        }
    }
}

#[test]
fn sampling_with_a_seed_is_reproducible_and_streams_the_whole_text() {
    let fixture = tiny_llama();
    let l = load(fixture.path());
    let prompt = l.tokenizer.encode("Once upon a time", false).unwrap();
    let params = SamplingParams {
        temperature: 1.0,
        top_p: 0.95,
        top_k: Some(50),
        max_tokens: 24,
        seed: 9,
        ..Default::default()
    };
    let mut streamed = String::new();
    let a =
        generate(&l.model, None, &l.tokenizer, &prompt, &params, &CancelToken::new(), &mut |t| {
            streamed.push_str(t)
        })
        .unwrap();
    let b =
        generate(&l.model, None, &l.tokenizer, &prompt, &params, &CancelToken::new(), &mut |_| {})
            .unwrap();
    assert_eq!(a, b);
    assert_eq!(streamed, a.text);
    let other = SamplingParams { seed: 10, ..params };
    let c =
        generate(&l.model, None, &l.tokenizer, &prompt, &other, &CancelToken::new(), &mut |_| {})
            .unwrap();
    assert_ne!(a.tokens, c.tokens, "a different seed gave the same sample");
}

#[test]
fn a_cancelled_generation_stops_at_once() {
    let fixture = tiny_llama();
    let l = load(fixture.path());
    let prompt = l.tokenizer.encode("abc", false).unwrap();
    let cancel = CancelToken::new();
    cancel.cancel();
    let params = SamplingParams { temperature: 0.0, ..Default::default() };
    let out =
        generate(&l.model, None, &l.tokenizer, &prompt, &params, &cancel, &mut |_| {}).unwrap();
    assert_eq!((out.finish_reason, out.tokens.len()), (FinishReason::Cancelled, 0));
}

/// The triage template's reply schema (strict, enums, bounded strings).
fn triage_schema() -> serde_json::Value {
    serde_json::json!({"type": "object", "additionalProperties": false,
        "required": ["category", "urgency", "summary"], "properties": {
            "category": {"enum": ["account", "billing", "bug", "feature_request", "other"]},
            "urgency": {"enum": ["low", "medium", "high"]},
            "summary": {"type": "string", "maxLength": 80}}})
}

#[test]
fn constrained_replies_of_random_models_follow_the_schema_and_stream_the_same_text() {
    use arkor_engine::constrain::Constraint;
    let schema = triage_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for fixture in every_family() {
        let l = load(fixture.path());
        let prompt = l.tokenizer.encode("Ticket: the app crashes on login", false).unwrap();
        for seed in 0..6 {
            let params = SamplingParams {
                temperature: 1.0,
                top_p: 1.0,
                max_tokens: 200,
                seed,
                constraint: Some(Constraint::Json {
                    schema: schema.clone(),
                    whitespace: Default::default(),
                }),
                ..Default::default()
            };
            let mut streamed = String::new();
            let out = generate(
                &l.model,
                None,
                &l.tokenizer,
                &prompt,
                &params,
                &CancelToken::new(),
                &mut |t| streamed.push_str(t),
            )
            .unwrap();
            let value: serde_json::Value = serde_json::from_str(&out.text)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", out.text));
            assert!(validator.is_valid(&value), "seed {seed}: {value}");
            assert_eq!(out.finish_reason, FinishReason::Stop);
            assert_eq!(streamed, out.text);
        }
    }
}

#[test]
fn smollm2_answers_the_triage_schema_with_valid_json_without_any_training() {
    use arkor_engine::constrain::Constraint;
    use arkor_engine::generate::chat;
    use arkor_engine::tokenizer::ChatMessage;
    let Some(dir) = crate::gguf::smollm2_dir() else { return };
    let l = load(&dir);
    let schema = triage_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let ask = |ticket: &str, constraint: Option<Constraint>| {
        let messages = [
            ChatMessage {
                role: "system".into(),
                content: "Classify the support ticket as JSON with category, urgency and summary."
                    .into(),
            },
            ChatMessage { role: "user".into(), content: ticket.into() },
        ];
        let params =
            SamplingParams { temperature: 0.0, max_tokens: 80, constraint, ..Default::default() };
        chat(&l.model, None, &l.tokenizer, &messages, &params, &CancelToken::new(), &mut |_| {})
            .unwrap()
    };
    let ticket = "I was charged twice for my subscription this month, please refund one.";
    let constrained = ask(
        ticket,
        Some(Constraint::Json { schema: schema.clone(), whitespace: Default::default() }),
    );
    let value: serde_json::Value = serde_json::from_str(&constrained.text)
        .unwrap_or_else(|e| panic!("{e}: {}", constrained.text));
    assert!(validator.is_valid(&value), "{value}");
    // It ended on the model's own end of turn (<|im_end|>), not on the token budget.
    assert_eq!(constrained.finish_reason, FinishReason::Stop, "{}", constrained.text);
    // Without the schema the base model answers in prose.
    let free = ask(ticket, None);
    assert!(serde_json::from_str::<serde_json::Value>(&free.text).is_err(), "{}", free.text);
}

/// Concurrent requests are stepped together (one forward pass for all, each with its own
/// adapter and cache, joining at different times); each must get what it gets alone.
#[test]
fn sequences_stepped_together_match_each_alone() {
    use arkor_engine::generate::{Sequence, next_logits};
    use arkor_engine::lora::Adapter;

    for fixture in every_family() {
        let l = load(fixture.path());
        let (a, b) = (
            crate::gradients::perturbed_adapter(&l, 3),
            crate::gradients::perturbed_adapter(&l, 4),
        );
        let asks: [(&str, Option<&Adapter>); 4] = [
            ("Hello there, tiny model", Some(&a)),
            ("Once upon a time in a land far away", Some(&b)),
            ("abc", None),
            ("The quick brown fox", Some(&a)),
        ];
        let params = SamplingParams { temperature: 0.0, max_tokens: 10, ..Default::default() };
        let prompts: Vec<Vec<u32>> =
            asks.iter().map(|(p, _)| l.tokenizer.encode(p, false).unwrap()).collect();
        // Alone: each sequence stepped by itself, its logits recorded per step.
        let alone: Vec<(Vec<Vec<f32>>, Vec<u32>)> = asks
            .iter()
            .zip(&prompts)
            .map(|((_, adapter), prompt)| {
                let mut seq =
                    Sequence::new(&l.model, &l.tokenizer, prompt, params.clone()).unwrap();
                let mut steps = vec![];
                while seq.wants_step() {
                    let logits = next_logits(&l.model, &mut [(&mut seq, *adapter)]).unwrap();
                    steps.push(logits[0].clone());
                    if seq.accept(logits[0].clone(), &mut |_| {}).unwrap() {
                        break;
                    }
                }
                (steps, seq.finish(&mut |_| {}).unwrap().tokens)
            })
            .collect();
        // Together: the last sequence joins two steps late, so a prefill shares a pass
        // with decode steps.
        let mut seqs: Vec<Sequence<'_>> = prompts
            .iter()
            .map(|p| Sequence::new(&l.model, &l.tokenizer, p, params.clone()).unwrap())
            .collect();
        let mut steps: Vec<Vec<Vec<f32>>> = vec![vec![]; asks.len()];
        let mut live: Vec<usize> = vec![0, 1, 2];
        for round in 0.. {
            if round == 2 {
                live.push(3);
            }
            live.retain(|&i| seqs[i].wants_step());
            if live.is_empty() {
                break;
            }
            let mut batch: Vec<(&mut Sequence<'_>, Option<&Adapter>)> = seqs
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| live.contains(i))
                .map(|(i, s)| (s, asks[i].1))
                .collect();
            let logits = next_logits(&l.model, &mut batch).unwrap();
            drop(batch);
            let mut ended = vec![];
            for (&i, row) in live.iter().zip(logits) {
                steps[i].push(row.clone());
                if seqs[i].accept(row, &mut |_| {}).unwrap() {
                    ended.push(i);
                }
            }
            live.retain(|i| !ended.contains(i));
        }
        for (i, seq) in seqs.into_iter().enumerate() {
            let tokens = seq.finish(&mut |_| {}).unwrap().tokens;
            assert_eq!(tokens, alone[i].1, "sequence {i} decoded differently in the batch");
            assert_eq!(steps[i].len(), alone[i].0.len());
            for (step, (x, y)) in steps[i].iter().zip(&alone[i].0).enumerate() {
                let scale = y.iter().fold(0f32, |m, v| m.max(v.abs()));
                let diff = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                assert!(
                    diff <= 1e-4 * scale.max(1.0),
                    "sequence {i}, step {step}: batched logits differ by {diff} (scale {scale})"
                );
            }
        }
        // The adapters matter: without them, sequence 0 decodes differently.
        let plain = generate(
            &l.model,
            None,
            &l.tokenizer,
            &prompts[0],
            &params,
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap();
        assert_ne!(plain.tokens, alone[0].1, "the test adapter does not change the reply");
    }
}
