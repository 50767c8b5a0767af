//! Gradients reach every LoRA tensor, and they are the true derivatives.

use arkor_engine::lora::Adapter;
use arkor_engine::train::{adapter_gradients, loss};
use arkor_test_support::fixtures::{
    every_family, tiny_gemma2, tiny_llama, tiny_qwen2, write_qa_dataset,
};
use rand::{Rng, SeedableRng};

use crate::{load, prepare, quick_config};

/// An adapter whose B matrices are non-zero (drawn from `seed`), so gradients of A are
/// non-zero too and the adapter changes the model's output.
pub(crate) fn perturbed_adapter(l: &crate::Loaded, seed: u64) -> Adapter {
    let config = quick_config();
    let adapter =
        Adapter::new(l.model.spec(), &config.lora, "test", seed, l.model.device()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 2);
    for (name, var) in adapter.vars() {
        if name.contains("lora_B") {
            let v: Vec<f32> = (0..var.elem_count()).map(|_| rng.random_range(-0.1..0.1)).collect();
            var.set(&candle_core::Tensor::from_vec(v, var.dims(), var.device()).unwrap()).unwrap();
        }
    }
    adapter
}

#[test]
fn every_lora_tensor_gets_a_nonzero_gradient() {
    for fixture in every_family() {
        let l = load(fixture.path());
        let dir = tempfile::tempdir().unwrap();
        let data = prepare(&l.tokenizer, &[write_qa_dataset(dir.path(), 6)], &quick_config());
        let adapter = perturbed_adapter(&l, 3);
        let grads = adapter_gradients(&l.model, &adapter, &data.train).unwrap();
        let projections = arkor_engine::lora::Proj::of(l.model.spec()).len();
        assert_eq!(grads.len(), 2 * projections * 2, "2 layers x projections x (A, B)");
        for (name, _, g) in grads {
            let g = g.unwrap_or_else(|| panic!("{name} got no gradient"));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0, "{name} got an all-zero gradient");
        }
    }
}

/// Recomputing each block in the backward pass (activation checkpointing) gives the same
/// gradients as keeping every activation, for every family, with rows that share a prefix.
#[test]
fn recomputed_activations_give_the_same_gradients() {
    use arkor_engine::train::adapter_gradients_with;
    for fixture in every_family() {
        let l = load(fixture.path());
        let dir = tempfile::tempdir().unwrap();
        let data = prepare(&l.tokenizer, &[prompted_qa_dataset(dir.path())], &quick_config());
        let adapter = perturbed_adapter(&l, 5);
        let kept = adapter_gradients_with(&l.model, &adapter, &data.train, false).unwrap();
        let recomputed = adapter_gradients_with(&l.model, &adapter, &data.train, true).unwrap();
        assert_eq!(kept.len(), recomputed.len());
        for ((name, _, a), (_, _, b)) in kept.iter().zip(&recomputed) {
            let flat = |g: &Option<candle_core::Tensor>| {
                g.as_ref().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
            };
            let (a, b) = (flat(a), flat(b));
            assert!(a.iter().any(|v| *v != 0.0), "{name}: no gradient");
            arkor_test_support::check::assert_close(&b, &a, 1e-4);
        }
    }
}

/// The QA rows behind one long system prompt, so a batch shares a prefix.
fn prompted_qa_dataset(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("prompted.jsonl");
    let rows: String = arkor_test_support::fixtures::QA
        .iter()
        .cycle()
        .take(6)
        .map(|(q, a)| {
            let row = serde_json::json!({"messages": [
                {"role": "system", "content": "You answer in as few words as you can, politely."},
                {"role": "user", "content": q},
                {"role": "assistant", "content": a},
            ]});
            format!("{row}\n")
        })
        .collect();
    std::fs::write(&path, rows).unwrap();
    path
}

#[test]
fn gradients_match_finite_differences() {
    // Gemma 2 adds GeGLU, sandwich norms, soft caps on scores and logits, a sliding window.
    for fixture in [tiny_llama(), tiny_gemma2()] {
        let l = load(fixture.path());
        let dir = tempfile::tempdir().unwrap();
        let data = prepare(&l.tokenizer, &[write_qa_dataset(dir.path(), 3)], &quick_config());
        let adapter = perturbed_adapter(&l, 3);
        let grads = adapter_gradients(&l.model, &adapter, &data.train).unwrap();
        // One A and one B of an attention and an MLP projection, a few entries each.
        let picks = [
            "layers.0.self_attn.q_proj.lora_A",
            "layers.1.mlp.down_proj.lora_B",
            "layers.1.self_attn.v_proj.lora_B",
            "layers.0.mlp.gate_proj.lora_A",
        ];
        let eps = 1e-2f32;
        for pick in picks {
            let (name, var, grad) = grads.iter().find(|(n, _, _)| n.contains(pick)).unwrap();
            let grad = grad.as_ref().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let original = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            // The entries with the largest gradients, where finite differences are meaningful.
            let mut order: Vec<usize> = (0..grad.len()).collect();
            order.sort_by(|a, b| grad[*b].abs().total_cmp(&grad[*a].abs()));
            for &i in order.iter().take(3) {
                let eval = |delta: f32| {
                    let mut v = original.clone();
                    v[i] += delta;
                    var.set(&candle_core::Tensor::from_vec(v, var.dims(), var.device()).unwrap())
                        .unwrap();
                    loss(&l.model, &adapter, &data.train).unwrap()
                };
                let numeric = ((eval(eps) - eval(-eps)) / (2.0 * eps as f64)) as f32;
                var.set(
                    &candle_core::Tensor::from_vec(original.clone(), var.dims(), var.device())
                        .unwrap(),
                )
                .unwrap();
                let rel = (numeric - grad[i]).abs() / grad[i].abs().max(1e-3);
                assert!(
                    rel < 2e-2,
                    "{name}[{i}]: analytic {} vs numeric {numeric} (rel {rel})",
                    grad[i]
                );
            }
        }
    }
}

/// A batch of rows of different lengths is computed without padding (rows packed end to
/// end, each attending only to itself, a prefix they all share computed once); its loss
/// and gradients must equal those of each row run on its own, weighted by the row's
/// trained tokens.
#[test]
fn rows_of_different_lengths_train_as_if_each_ran_alone() {
    let fixture = tiny_qwen2();
    let l = load(fixture.path());
    let dir = tempfile::tempdir().unwrap();
    let plain = write_qa_dataset(dir.path(), 4);
    // The same rows behind one long system prompt: the batch shares a prefix.
    let system = "You are the support assistant of a small bakery. Answer in one short \
                  sentence, politely, and never invent opening hours or prices.";
    let prompted = dir.path().join("prompted.jsonl");
    let rows: Vec<String> = std::fs::read_to_string(&plain)
        .unwrap()
        .lines()
        .map(|line| {
            let mut row: serde_json::Value = serde_json::from_str(line).unwrap();
            let messages = row["messages"].as_array_mut().unwrap();
            messages.insert(0, serde_json::json!({"role": "system", "content": system}));
            row.to_string()
        })
        .collect();
    std::fs::write(&prompted, rows.join("\n") + "\n").unwrap();
    for (file, shared) in [(plain, false), (prompted, true)] {
        let data = prepare(&l.tokenizer, &[file], &quick_config());
        let common = data.train[1..].iter().fold(data.train[0].input_ids.len(), |p, e| {
            p.min(
                data.train[0]
                    .input_ids
                    .iter()
                    .zip(&e.input_ids)
                    .take_while(|(a, b)| a == b)
                    .count(),
            )
        });
        assert_eq!(common >= 16, shared, "shared prefix of {common} tokens");
        check_rows_alone(&l, &data);
    }
}

fn check_rows_alone(l: &crate::Loaded, data: &arkor_engine::data::PreparedDataset) {
    let lens: Vec<usize> = data.train.iter().map(|e| e.input_ids.len()).collect();
    assert!(lens.iter().any(|n| *n != lens[0]), "rows must differ in length: {lens:?}");
    let adapter = perturbed_adapter(l, 3);
    let trained =
        |e: &arkor_engine::data::Example| e.loss_mask.iter().skip(1).filter(|m| **m).count() as f64;
    let total: f64 = data.train.iter().map(trained).sum();

    let together = loss(&l.model, &adapter, &data.train).unwrap();
    let alone: f64 = data
        .train
        .iter()
        .map(|e| loss(&l.model, &adapter, std::slice::from_ref(e)).unwrap() * trained(e))
        .sum::<f64>()
        / total;
    assert!((together - alone).abs() < 1e-5, "packed {together} vs row by row {alone}");

    // The same loss from the padded forward pass: logits of each row alone, cross-entropy
    // by hand at its trained positions.
    let mut by_hand = 0.0;
    for e in &data.train {
        let ids = candle_core::Tensor::new(e.input_ids.as_slice(), l.model.device()).unwrap();
        let logits = l.model.forward(&ids.unsqueeze(0).unwrap(), Some(&adapter)).unwrap();
        let logits = logits.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        for i in 1..e.input_ids.len() {
            if e.loss_mask[i] {
                let row = &logits[i - 1];
                let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                let lse = row.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max;
                by_hand += (lse - row[e.input_ids[i] as usize]) as f64;
            }
        }
    }
    let by_hand = by_hand / total;
    assert!((together - by_hand).abs() < 1e-4, "packed {together} vs padded forward {by_hand}");

    let grads = adapter_gradients(&l.model, &adapter, &data.train).unwrap();
    let mut summed: Vec<Vec<f32>> = vec![];
    for e in &data.train {
        let w = (trained(e) / total) as f32;
        let row = adapter_gradients(&l.model, &adapter, std::slice::from_ref(e)).unwrap();
        for (k, (_, _, g)) in row.iter().enumerate() {
            let g = g.as_ref().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            if summed.len() <= k {
                summed.push(vec![0.0; g.len()]);
            }
            summed[k].iter_mut().zip(&g).for_each(|(s, g)| *s += w * g);
        }
    }
    for ((name, _, g), expected) in grads.iter().zip(&summed) {
        let g = g.as_ref().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = expected.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let worst = g.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst / scale < 1e-4, "{name}: packed and row-by-row gradients differ by {worst}");
    }
}
