//! Each custom op against candle's composed ops: same values, same gradients.

use candle_core::{D, Device, Tensor, Var};

use super::*;

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Runs `ours` and `reference` on the same variable input and compares value and gradient
/// of `sum(out * probe)`.
fn check(
    input: &Tensor,
    ours: impl Fn(&Tensor) -> Tensor,
    reference: impl Fn(&Tensor) -> Tensor,
    tol: f32,
) {
    let x = Var::from_tensor(input).unwrap();
    let a = ours(x.as_tensor());
    let b = reference(x.as_tensor());
    assert!(max_diff(&a, &b) < tol, "forward differs by {}", max_diff(&a, &b));
    let probe = randn(a.dims(), 99);
    let ga = (&a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (&b * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let (ga, gb) = (ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap());
    assert!(max_diff(ga, gb) < tol, "gradient differs by {}", max_diff(ga, gb));
    assert!(ga.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
}

#[test]
fn rms_norm_matches_composed_op() {
    let w = randn(&[16], 1);
    check(
        &randn(&[3, 5, 16], 2),
        |x| rms_norm(x, &w, 1e-5).unwrap(),
        |x| candle_nn::ops::rms_norm_slow(x, &w, 1e-5).unwrap(),
        1e-4,
    );
}

#[test]
fn rope_matches_composed_op() {
    let inv: Vec<f32> = (0..4).map(|i| 1.0 / 10000f32.powf(i as f32 / 4.0)).collect();
    let tables = RopeTables::new(&inv, 32, &Device::Cpu).unwrap();
    let cos = tables.cos.narrow(0, 3, 6).unwrap();
    let sin = tables.sin.narrow(0, 3, 6).unwrap();
    check(
        &randn(&[2, 3, 6, 8], 3),
        |x| tables.apply(x, 3).unwrap(),
        |x| candle_nn::rotary_emb::rope_slow(x, &cos, &sin).unwrap(),
        1e-5,
    );
}

#[test]
fn causal_softmax_matches_masked_softmax() {
    // Without and with a sliding window (one wider than every row's keys).
    for (offset, window) in [(0, None), (2, None), (0, Some(2)), (3, Some(4)), (0, Some(9))] {
        let (t, kt) = (6, 6 + offset);
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| {
                let q = i + offset;
                (0..kt).map(move |j| {
                    let hidden = j > q || window.is_some_and(|w| q - j >= w);
                    if hidden { f32::NEG_INFINITY } else { 0.0 }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, kt), &Device::Cpu).unwrap();
        check(
            &randn(&[2, 3, t, kt], 4),
            |x| causal_softmax(x, 0.5, offset, window).unwrap(),
            |x| {
                let s = (x * 0.5).unwrap().broadcast_add(&mask).unwrap();
                candle_nn::ops::softmax(&s, D::Minus1).unwrap()
            },
            1e-5,
        );
    }
}

#[test]
fn cross_entropy_matches_log_softmax() {
    let targets = [1u32, 0, 6, 3];
    let weights = [1.0f32, 0.0, 0.5, 2.0];
    let w = Tensor::new(&weights, &Device::Cpu).unwrap();
    let idx = Tensor::new(&targets, &Device::Cpu).unwrap().unsqueeze(1).unwrap();
    check(
        &randn(&[4, 7], 5),
        |x| weighted_cross_entropy(x, &targets, &weights).unwrap(),
        |x| {
            let lp = candle_nn::ops::log_softmax(x, D::Minus1).unwrap();
            (lp.gather(&idx, 1).unwrap().squeeze(1).unwrap().neg().unwrap() * &w).unwrap()
        },
        1e-5,
    );
}

#[test]
fn frozen_linear_matches_matmul_and_skips_weight_gradient() {
    let w = Var::from_tensor(&randn(&[6, 4], 6)).unwrap();
    check(
        &randn(&[2, 3, 4], 7),
        |x| frozen_linear(x, w.as_tensor()).unwrap(),
        |x| x.broadcast_matmul(&w.as_tensor().t().unwrap()).unwrap(),
        1e-5,
    );
    let x = Var::from_tensor(&randn(&[3, 4], 8)).unwrap();
    let grads = frozen_linear(x.as_tensor(), w.as_tensor()).unwrap().sum_all().unwrap();
    let grads = grads.backward().unwrap();
    assert!(grads.get(w.as_tensor()).is_none(), "a frozen weight got a gradient");
    assert!(grads.get(x.as_tensor()).is_some());
}

#[test]
fn lora_linear_matches_composed_ops_for_input_and_both_lora_matrices() {
    let w = randn(&[12, 10], 20);
    let x = randn(&[2, 7, 10], 21);
    let (a, b) = (
        Var::from_tensor(&randn(&[4, 10], 22)).unwrap(),
        Var::from_tensor(&randn(&[12, 4], 23)).unwrap(),
    );
    let composed = |x: &Tensor| {
        let low =
            x.broadcast_matmul(&a.t().unwrap()).unwrap().broadcast_matmul(&b.t().unwrap()).unwrap();
        (x.broadcast_matmul(&w.t().unwrap()).unwrap() + (low * 0.5).unwrap()).unwrap()
    };
    check(&x, |x| lora_linear(x, &Frozen::Dense(w.clone()), &a, &b, 0.5).unwrap(), composed, 1e-4);
    // The gradients of A and B, not only of the input.
    let probe = randn(&[2, 7, 12], 24);
    let ours = (lora_linear(&x, &Frozen::Dense(w.clone()), &a, &b, 0.5).unwrap() * &probe)
        .unwrap()
        .sum_all()
        .unwrap();
    let reference = (composed(&x) * &probe).unwrap().sum_all().unwrap();
    let (go, gr) = (ours.backward().unwrap(), reference.backward().unwrap());
    assert!(go.get(&w).is_none(), "the frozen weight got a gradient");
    for v in [&a, &b] {
        let (o, r) = (go.get(v.as_tensor()).unwrap(), gr.get(v.as_tensor()).unwrap());
        assert!(max_diff(o, r) < 1e-3, "LoRA gradient differs by {}", max_diff(o, r));
        assert!(o.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
    }
}

/// A decode step's projections that share their input (q/k/v with and without pairs, of
/// different widths, wide enough for several bands each, rank 16 and rank 3 pairs), one to
/// four rows: each matches `x W^T + scale (x A^T) B^T` on its own.
#[test]
fn projections_sharing_few_rows_match_each_product_alone() {
    let k = 200;
    let ws = [randn(&[150, k], 30), randn(&[70, k], 31), randn(&[300, k], 32)];
    let pairs = [
        Some((randn(&[16, k], 33), randn(&[150, 16], 34), 0.5)),
        None,
        Some((randn(&[3, k], 35), randn(&[300, 3], 36), 2.0)),
    ];
    for rows in 1..=4 {
        let x = randn(&[rows, k], 37 + rows as u64);
        let projs: Vec<FewRowsProj<'_>> = ws
            .iter()
            .zip(&pairs)
            .map(|(w, p)| FewRowsProj { w, lora: p.as_ref().map(|(a, b, s)| (a, b, *s)) })
            .collect();
        let ys = linear_few_rows(&x, &projs).unwrap();
        assert_eq!(ys.len(), 3);
        for ((y, w), p) in ys.iter().zip(&ws).zip(&pairs) {
            let mut want = x.matmul(&w.t().unwrap()).unwrap();
            if let Some((a, b, s)) = p {
                let low = x.matmul(&a.t().unwrap()).unwrap().matmul(&b.t().unwrap()).unwrap();
                want = (want + (low * *s).unwrap()).unwrap();
            }
            assert_eq!(y.dims(), want.dims());
            assert!(max_diff(y, &want) < 1e-3, "{rows} rows: differs by {}", max_diff(y, &want));
        }
    }
    // A pair that does not fit its weight is named, not multiplied.
    let (a, b) = (randn(&[4, k], 40), randn(&[151, 4], 41));
    let bad = [FewRowsProj { w: &ws[0], lora: Some((&a, &b, 1.0)) }];
    let err = linear_few_rows(&randn(&[1, k], 42), &bad).unwrap_err().to_string();
    assert!(err.contains("do not fit"), "{err}");
}

#[test]
fn linear_cross_entropy_matches_the_head_then_cross_entropy() {
    // More rows than one block of logits, so the blocking is exercised.
    let (dim, vocab) = (8, 50);
    let rows = ce_block_rows(vocab) + 37;
    let w = randn(&[vocab, dim], 30);
    let targets: Vec<u32> = (0..rows as u32).map(|i| (i * 7) % vocab as u32).collect();
    let ones = vec![1.0; rows];
    // Gemma 2's soft cap, small enough to bend these logits.
    for cap in [None, Some(0.5)] {
        let reference = |x: &Tensor| {
            let logits = soft_cap(frozen_linear(x, &w).unwrap(), cap).unwrap();
            weighted_cross_entropy(&logits, &targets, &ones).unwrap()
        };
        check(
            &randn(&[rows, dim], 31),
            |x| linear_cross_entropy(x, &w, &targets, cap, true).unwrap(),
            reference,
            1e-4,
        );
        let x = randn(&[rows, dim], 32);
        let without_grad = linear_cross_entropy(&x, &w, &targets, cap, false).unwrap();
        assert!(max_diff(&without_grad, &reference(&x)) < 1e-4);
    }
    let x = randn(&[rows, dim], 32);
    let capped = linear_cross_entropy(&x, &w, &targets, Some(0.5), false).unwrap();
    let plain = linear_cross_entropy(&x, &w, &targets, None, false).unwrap();
    assert!(max_diff(&capped, &plain) > 1e-2, "the cap changed nothing");
}

#[test]
fn quantized_blocks_round_trip_within_half_a_step() {
    use quant::{BLOCK, BaseQuant, QuantMatrix};
    let (rows, cols) = (5, 3 * BLOCK);
    let w = randn(&[rows, cols], 40).flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (ty, levels) in [(BaseQuant::Q8_0, 254.0), (BaseQuant::Q4_1, 15.0)] {
        let q = QuantMatrix::quantize(&w, rows, cols, ty).unwrap();
        assert_eq!(q.bytes(), rows * cols / BLOCK * if ty == BaseQuant::Q8_0 { 34 } else { 20 });
        let back = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        let back = back.to_vec1::<f32>().unwrap();
        for (b, (orig, got)) in w.chunks(BLOCK).zip(back.chunks(BLOCK)).enumerate() {
            let min = orig.iter().fold(f32::INFINITY, |m, v| m.min(*v));
            let max = orig.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
            let range =
                if ty == BaseQuant::Q8_0 { 2.0 * max.abs().max(min.abs()) } else { max - min };
            // Half a quantization step, plus the f16 rounding of the scale and minimum.
            let bound = range / levels * 0.5 + 2e-3 * max.abs().max(min.abs());
            for (o, g) in orig.iter().zip(got) {
                assert!((o - g).abs() <= bound, "{ty:?} block {b}: {o} came back as {g}");
            }
        }
        // Rows dequantized alone are the same as the whole matrix's.
        let mut row = vec![0f32; cols];
        q.dequantize_rows(3, &mut row);
        assert_eq!(row, back[3 * cols..4 * cols]);
    }
    let odd = QuantMatrix::quantize(&w[..rows * 40], rows, 40, BaseQuant::Q8_0).unwrap_err();
    assert!(odd.to_string().contains("multiple of 32"), "{odd}");
}

#[test]
fn quant_linear_matches_the_dequantized_weight() {
    use quant::{BaseQuant, QuantMatrix, quant_linear};
    // More output rows than one tile (4 MiB of fp32), so the tiling is exercised.
    let (out, inp) = (1100, 1024);
    let w = randn(&[out, inp], 41);
    for ty in [BaseQuant::Q8_0, BaseQuant::Q4_1] {
        let q = std::sync::Arc::new(QuantMatrix::from_tensor(&w, ty).unwrap());
        let dense = q.dequantize(&Device::Cpu).unwrap();
        check(
            &randn(&[3, 7, inp], 42),
            |x| quant_linear(x, &q).unwrap(),
            |x| x.broadcast_matmul(&dense.t().unwrap()).unwrap(),
            1e-3,
        );
    }
}

#[test]
fn rope_in_row_layout_matches_rope_in_head_layout() {
    let inv: Vec<f32> = (0..4).map(|i| 1.0 / 10000f32.powf(i as f32 / 4.0)).collect();
    let tables = RopeTables::new(&inv, 32, &Device::Cpu).unwrap();
    // 2 sequences of 5 positions, 3 heads of 8, first position 4.
    let heads = |x: &Tensor| x.reshape((2, 5, 3, 8)).unwrap().transpose(1, 2).unwrap();
    let rows = |x: Tensor| x.transpose(1, 2).unwrap().reshape((10, 24)).unwrap();
    check(
        &randn(&[10, 24], 30),
        |x| tables.apply_rows(x, 5, 8, 4).unwrap(),
        |x| rows(tables.apply(&heads(x).contiguous().unwrap(), 4).unwrap()),
        1e-5,
    );
}

/// Attention from candle's differentiable ops and an explicit mask, in head layout.
fn reference_attention(q: &Tensor, k: &Tensor, v: &Tensor, c: attention::Causal) -> Tensor {
    let kv = c.offset + c.seq;
    let heads = |x: &Tensor, t: usize, n: usize| {
        x.reshape((c.batch, t, n, c.head_dim)).unwrap().transpose(1, 2).unwrap().contiguous()
    };
    let rep = c.heads / c.kv_heads;
    let q = heads(q, c.seq, c.heads).unwrap();
    let k = attention::repeat_kv(&heads(k, kv, c.kv_heads).unwrap(), rep).unwrap();
    let v = attention::repeat_kv(&heads(v, kv, c.kv_heads).unwrap(), rep).unwrap();
    let mask: Vec<f32> = (0..c.seq)
        .flat_map(|i| {
            let p = c.offset + i;
            (0..kv).map(move |j| {
                let hidden = j > p || c.window.is_some_and(|w| p - j >= w);
                if hidden { f32::NEG_INFINITY } else { 0.0 }
            })
        })
        .collect();
    let mask = Tensor::from_vec(mask, (c.seq, kv), &Device::Cpu).unwrap();
    let scores = (q.matmul(&k.t().unwrap()).unwrap() * c.scale as f64).unwrap();
    let probs = candle_nn::ops::softmax(&scores.broadcast_add(&mask).unwrap(), D::Minus1).unwrap();
    let out = probs.matmul(&v).unwrap().transpose(1, 2).unwrap();
    out.reshape((c.batch * c.seq, c.heads * c.head_dim)).unwrap()
}

/// `max |a - b| / max |b|`.
fn relative_diff(a: &Tensor, b: &Tensor) -> f32 {
    let scale: f32 = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
    max_diff(a, b) / scale.max(1e-12)
}

/// `ours` and `reference` agree to `tol` (relative), and so do the gradients of
/// `sum(out * probe)` with respect to each of `vars`.
fn assert_same_with_gradients(
    case: usize,
    ours: &Tensor,
    reference: &Tensor,
    vars: &[(&str, &Var)],
    seed: u64,
    tol: f32,
) {
    let diff = relative_diff(ours, reference);
    assert!(diff < tol, "case {case}: forward differs by {diff}");
    let probe = randn(ours.dims(), seed);
    let loss = |y: &Tensor| (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let (ga, gb) = (loss(ours), loss(reference));
    for (name, x) in vars {
        let diff = relative_diff(ga.get(x).unwrap(), gb.get(x).unwrap());
        assert!(diff < tol, "case {case}: d{name} differs by {diff}");
    }
}

#[test]
fn fused_attention_matches_composed_ops_with_gradients() {
    // (batch, seq, offset, heads, kv heads, head_dim, window)
    let cases = [
        (2, 7, 0, 9, 3, 64, None),
        (3, 5, 4, 4, 2, 16, None),
        (2, 6, 3, 2, 2, 8, Some(4)),
        (1, 9, 0, 4, 2, 64, Some(3)),
        (2, 5, 2, 9, 3, 64, Some(20)),
        (1, 1, 6, 4, 1, 12, Some(2)),
        // Several query tiles: windows that end inside a tile, and a last partial tile.
        (2, 150, 0, 9, 3, 64, None),
        (1, 130, 70, 4, 2, 16, Some(40)),
        (2, 129, 5, 4, 4, 8, Some(100)),
    ];
    for (n, (batch, seq, offset, heads, kv_heads, head_dim, window)) in
        cases.into_iter().enumerate()
    {
        let c = attention::Causal {
            batch,
            seq,
            offset,
            heads,
            kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            window,
        };
        let seed = 40 + 4 * n as u64;
        let q = Var::from_tensor(&randn(&[batch * seq, heads * head_dim], seed)).unwrap();
        let kv_shape = [batch * (offset + seq), kv_heads * head_dim];
        let k = Var::from_tensor(&randn(&kv_shape, seed + 1)).unwrap();
        let v = Var::from_tensor(&randn(&kv_shape, seed + 2)).unwrap();
        let ours = attention::causal_attention(&q, &k, &v, c).unwrap();
        let reference = reference_attention(&q, &k, &v, c);
        let vars = [("q", &q), ("k", &k), ("v", &v)];
        assert_same_with_gradients(n, &ours, &reference, &vars, seed + 3, 1e-4);
    }
}

#[test]
fn fused_attention_rejects_shapes_that_do_not_fit() {
    let c = attention::Causal {
        batch: 2,
        seq: 3,
        offset: 1,
        heads: 4,
        kv_heads: 2,
        head_dim: 8,
        scale: 0.5,
        window: None,
    };
    let q = randn(&[6, 32], 1);
    // Keys without the offset's positions.
    let k = randn(&[6, 16], 2);
    assert!(attention::causal_attention(&q, &k, &k, c).is_err());
}

#[test]
fn packed_attention_matches_each_sequence_on_its_own() {
    // (prefix, lens, heads, kv heads, head_dim, window)
    let cases: [(usize, &[usize], usize, usize, usize, Option<usize>); 4] = [
        (5, &[3, 7, 1], 9, 3, 16, None),
        (0, &[4, 6], 4, 2, 8, None),
        (70, &[90, 20], 4, 1, 8, Some(50)),
        (3, &[66], 2, 2, 8, None),
    ];
    for (n, (prefix, lens, heads, kv_heads, head_dim, window)) in cases.into_iter().enumerate() {
        let h = attention::Heads { heads, kv_heads, head_dim, scale: 0.3, window };
        let rows = prefix + lens.iter().sum::<usize>();
        let seed = 90 + 4 * n as u64;
        let q = Var::from_tensor(&randn(&[rows, heads * head_dim], seed)).unwrap();
        let k = Var::from_tensor(&randn(&[rows, kv_heads * head_dim], seed + 1)).unwrap();
        let v = Var::from_tensor(&randn(&[rows, kv_heads * head_dim], seed + 2)).unwrap();
        let ours = attention::packed_attention(&q, &k, &v, h, prefix, lens).unwrap();
        // The prefix on its own, then each sequence after the prefix's keys and values.
        let one = |start: usize, len: usize, past: usize| {
            let c = attention::Causal {
                batch: 1,
                seq: len,
                offset: past,
                heads,
                kv_heads,
                head_dim,
                scale: 0.3,
                window,
            };
            let keys = |x: &Tensor| {
                let own = x.narrow(0, start, len).unwrap();
                Tensor::cat(&[&x.narrow(0, 0, past).unwrap(), &own], 0).unwrap()
            };
            reference_attention(&q.narrow(0, start, len).unwrap(), &keys(&k), &keys(&v), c)
        };
        let mut parts = vec![];
        if prefix > 0 {
            parts.push(one(0, prefix, 0));
        }
        let mut start = prefix;
        for &len in lens {
            parts.push(one(start, len, prefix));
            start += len;
        }
        let reference = Tensor::cat(&parts, 0).unwrap();
        let vars = [("q", &q), ("k", &k), ("v", &v)];
        assert_same_with_gradients(n, &ours, &reference, &vars, seed + 3, 1e-4);
    }
}

#[test]
fn swiglu_matches_silu_times_up_with_gradients() {
    // A width that is no multiple of the vector lanes, and enough rows for several tasks.
    for (n, shape) in [[3, 7], [40, 1003]].into_iter().enumerate() {
        let seed = 120 + 3 * n as u64;
        // Gates from -20 to 20: the sigmoid's tails as well as its middle.
        let gate = Var::from_tensor(&(randn(&shape, seed) * 10.0).unwrap()).unwrap();
        let up = Var::from_tensor(&randn(&shape, seed + 1)).unwrap();
        let ours = swiglu(&gate, &up).unwrap();
        let reference = (gate.silu().unwrap() * up.as_tensor()).unwrap();
        let vars = [("gate", &gate), ("up", &up)];
        assert_same_with_gradients(n, &ours, &reference, &vars, seed + 2, 1e-5);
    }
    assert!(swiglu(&randn(&[2, 3], 1), &randn(&[3, 2], 2)).is_err());
}

/// A LoRA pair `(A [r, in], B [out, r])` for each projection of `shapes` (`(out, in)`)
/// that `pairs` marks.
fn lora_pairs(
    shapes: &[(usize, usize)],
    pairs: &[bool],
    r: usize,
    seed: u64,
) -> Vec<Option<(Var, Var)>> {
    let pair = |i: usize, (o, k): (usize, usize)| {
        let s = seed + 2 * i as u64;
        let a = Var::from_tensor(&(randn(&[r, k], s) * 0.3).unwrap()).unwrap();
        (a, Var::from_tensor(&(randn(&[o, r], s + 1) * 0.3).unwrap()).unwrap())
    };
    shapes.iter().enumerate().map(|(i, &shape)| pairs[i].then(|| pair(i, shape))).collect()
}

#[test]
fn gated_mlp_matches_composed_ops_with_gradients() {
    use block::{GatedMlp, Projection, residual_gated_mlp};
    // (rows, hidden, intermediate, rank, which projections carry a pair, quantized base)
    let cases = [
        (7, 10, 23, 3, [true, true, true], false),
        // Enough rows for several parallel tasks, and a pair on down only.
        (300, 64, 96, 4, [false, false, true], false),
        (5, 12, 8, 2, [true, false, false], false),
        // No pair: only x's gradient.
        (6, 9, 14, 2, [false, false, false], false),
        (9, 64, 96, 4, [true, true, true], true),
    ];
    for (case, (rows, h, n, r, pairs, quant)) in cases.into_iter().enumerate() {
        let seed = 200 + 20 * case as u64;
        let x = Var::from_tensor(&randn(&[rows, h], seed)).unwrap();
        let norm = ((randn(&[h], seed + 1) * 0.5).unwrap() + 1.0).unwrap();
        let shapes = [(n, h), (n, h), (h, n)];
        let weights: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(o, k))| (randn(&[o, k], seed + 2 + i as u64) * 0.3).unwrap())
            .collect();
        let frozen: Vec<Frozen> = weights
            .iter()
            .map(|w| match quant {
                true => Frozen::Quant(std::sync::Arc::new(
                    quant::QuantMatrix::from_tensor(w, quant::BaseQuant::Q8_0).unwrap(),
                )),
                false => Frozen::Dense(w.clone()),
            })
            .collect();
        // The reference multiplies by the weights the op sees (dequantized when quantized).
        let dense: Vec<Tensor> = frozen.iter().map(|f| f.dense(&Device::Cpu).unwrap()).collect();
        let lora = lora_pairs(&shapes, &pairs, r, seed + 10);
        let scale = 1.5;
        let proj = |i: usize| Projection {
            weight: &frozen[i],
            bias: None,
            lora: lora[i].as_ref().map(|(a, b)| (a.as_tensor(), b.as_tensor())),
        };
        let m =
            GatedMlp { norm: &norm, eps: 1e-5, gate: proj(0), up: proj(1), down: proj(2), scale };
        let ours = residual_gated_mlp(x.as_tensor(), &m).unwrap();
        let linear = |x: &Tensor, i: usize| {
            let y = x.matmul(&dense[i].t().unwrap()).unwrap();
            match &lora[i] {
                Some((a, b)) => {
                    let low = x.matmul(&a.t().unwrap()).unwrap().matmul(&b.t().unwrap()).unwrap();
                    (y + (low * scale).unwrap()).unwrap()
                }
                None => y,
            }
        };
        let normed = candle_nn::ops::rms_norm_slow(x.as_tensor(), &norm, 1e-5).unwrap();
        let act = (linear(&normed, 0).silu().unwrap() * linear(&normed, 1)).unwrap();
        let reference = (x.as_tensor() + &linear(&act, 2)).unwrap();
        let mut vars = vec![("x", &x)];
        for (i, pair) in lora.iter().enumerate() {
            if let Some((a, b)) = pair {
                vars.push((["A_gate", "A_up", "A_down"][i], a));
                vars.push((["B_gate", "B_up", "B_down"][i], b));
            }
        }
        assert_same_with_gradients(case, &ours, &reference, &vars, seed + 30, 1e-4);
    }
    let w = Frozen::Dense(randn(&[8, 6], 1));
    let p = Projection { weight: &w, bias: None, lora: None };
    let norm = randn(&[6], 2);
    let m = GatedMlp { norm: &norm, eps: 1e-5, gate: p, up: p, down: p, scale: 1.0 };
    let err = residual_gated_mlp(&randn(&[3, 6], 3), &m).unwrap_err().to_string();
    assert!(err.contains("do not fit"), "{err}");
}

#[test]
fn self_attention_block_matches_composed_ops_with_gradients() {
    use block::{Projection, SelfAttention, residual_self_attention};
    // (prefix, lens, heads, kv heads, head_dim, window, rotated, pairs on q/k/v/o, biases)
    let cases = [
        (0, vec![5, 5], 4, 2, 8, None, true, [true, true, true, true], false),
        (3, vec![4, 6, 2], 4, 4, 8, Some(4), true, [true, false, true, false], true),
        (0, vec![7], 2, 1, 16, None, false, [false, false, false, true], false),
        (0, vec![150, 20], 3, 1, 8, None, true, [true, true, true, true], true),
        (2, vec![3], 2, 2, 8, None, true, [false; 4], false),
    ];
    for (case, (prefix, lens, heads, kv_heads, hd, window, rotated, pairs, biases)) in
        cases.into_iter().enumerate()
    {
        let seed = 400 + 40 * case as u64;
        let (hidden, r, scale) = (12, 3, 0.75);
        let rows = prefix + lens.iter().sum::<usize>();
        let x = Var::from_tensor(&randn(&[rows, hidden], seed)).unwrap();
        let norm = ((randn(&[hidden], seed + 1) * 0.5).unwrap() + 1.0).unwrap();
        let shapes = [
            (heads * hd, hidden),
            (kv_heads * hd, hidden),
            (kv_heads * hd, hidden),
            (hidden, heads * hd),
        ];
        let weights: Vec<Frozen> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(o, k))| Frozen::Dense((randn(&[o, k], seed + 2 + i as u64) * 0.3).unwrap()))
            .collect();
        let bias: Vec<Option<Tensor>> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(o, _))| (biases && i < 3).then(|| randn(&[o], seed + 6 + i as u64)))
            .collect();
        let lora = lora_pairs(&shapes, &pairs, r, seed + 10);
        let inv_freq: Vec<f32> =
            (0..hd / 2).map(|j| 1.0 / 100f32.powf(2.0 * j as f32 / hd as f32)).collect();
        let rope = RopeTables::new(&inv_freq, 512, &Device::Cpu).unwrap();
        let heads_of = attention::Heads {
            heads,
            kv_heads,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
            window,
        };
        let proj = |i: usize| Projection {
            weight: &weights[i],
            bias: bias[i].as_ref(),
            lora: lora[i].as_ref().map(|(a, b)| (a.as_tensor(), b.as_tensor())),
        };
        let a = SelfAttention {
            norm: &norm,
            eps: 1e-5,
            q: proj(0),
            k: proj(1),
            v: proj(2),
            o: proj(3),
            scale,
            heads: heads_of,
            rope: rotated.then_some(&rope),
        };
        let ours = residual_self_attention(x.as_tensor(), &a, prefix, &lens).unwrap();
        let linear = |x: &Tensor, i: usize| {
            let y = match &lora[i] {
                Some((a, b)) => lora_linear(x, &weights[i], a, b, scale).unwrap(),
                None => weights[i].apply(x).unwrap(),
            };
            match &bias[i] {
                Some(b) => y.broadcast_add(b).unwrap(),
                None => y,
            }
        };
        let n = rms_norm(x.as_tensor(), &norm, 1e-5).unwrap();
        let (mut q, mut k, v) = (linear(&n, 0), linear(&n, 1), linear(&n, 2));
        if rotated {
            q = rope.apply_rows_packed(&q, hd, prefix, &lens).unwrap();
            k = rope.apply_rows_packed(&k, hd, prefix, &lens).unwrap();
        }
        let attn = attention::packed_attention(&q, &k, &v, heads_of, prefix, &lens).unwrap();
        let reference = (x.as_tensor() + &linear(&attn, 3)).unwrap();
        let mut vars = vec![("x", &x)];
        for (i, pair) in lora.iter().enumerate() {
            if let Some((a, b)) = pair {
                vars.push((["A_q", "A_k", "A_v", "A_o"][i], a));
                vars.push((["B_q", "B_k", "B_v", "B_o"][i], b));
            }
        }
        assert_same_with_gradients(case, &ours, &reference, &vars, seed + 30, 1e-4);
    }
}

#[test]
fn decode_steps_grow_caches_in_place_and_attend_as_a_plain_softmax() {
    use decode::{Heads, LayerKv, Scores, decode_attention};
    let (heads, kv_heads, hd) = (4, 2, 8);
    let shape = Heads { heads, kv_heads, head_dim: hd };
    let rows = |t: &Tensor| -> Vec<Vec<f32>> { t.to_vec2().unwrap() };
    for window in [None, Some(7)] {
        let how = Scores { scale: 0.35, softcap: None, window };
        // Sequence 0 starts empty; sequence 1 from a prefill's 5 positions, as tensors.
        let (k1, v1) = (randn(&[1, kv_heads, 5, hd], 1), randn(&[1, kv_heads, 5, hd], 2));
        let head_rows = |t: &Tensor, g: usize| rows(&t.get(0).unwrap().get(g).unwrap());
        // The reference caches: per sequence, per kv head, the rows so far.
        let mut keys: Vec<Vec<Vec<Vec<f32>>>> =
            vec![vec![vec![]; kv_heads], (0..kv_heads).map(|g| head_rows(&k1, g)).collect()];
        let mut values: Vec<Vec<Vec<Vec<f32>>>> =
            vec![vec![vec![]; kv_heads], (0..kv_heads).map(|g| head_rows(&v1, g)).collect()];
        let mut slots = [None, Some(LayerKv::Tensors(k1, v1))];
        for step in 0..150u64 {
            if step == 90 {
                // Sequence 0's cache handed over as tensors (a longer pass continuing it) and
                // back: the rows survive both ways.
                let (k, v) = slots[0].as_ref().unwrap().tensors(&Device::Cpu).unwrap();
                assert_eq!(k.dims(), [1, kv_heads, 90, hd]);
                for g in 0..kv_heads {
                    assert_eq!(head_rows(&k, g), keys[0][g]);
                    assert_eq!(head_rows(&v, g), values[0][g]);
                }
                slots[0] = Some(LayerKv::Tensors(k, v));
            }
            let seed = 10 + 3 * step;
            let q = randn(&[2, heads * hd], seed);
            let (k, v) =
                (randn(&[2, kv_heads * hd], seed + 1), randn(&[2, kv_heads * hd], seed + 2));
            let offsets: Vec<usize> = keys.iter().map(|s| s[0].len()).collect();
            let mut refs: Vec<_> = slots.iter_mut().collect();
            let out = decode_attention(&q, &k, &v, &mut refs, &offsets, None, shape, how).unwrap();
            let (q, k, v, out) = (rows(&q), rows(&k), rows(&v), rows(&out));
            for i in 0..2 {
                assert_eq!(slots[i].as_ref().unwrap().len(), offsets[i] + 1);
                for g in 0..kv_heads {
                    keys[i][g].push(k[i][g * hd..(g + 1) * hd].to_vec());
                    values[i][g].push(v[i][g * hd..(g + 1) * hd].to_vec());
                }
                for h in 0..heads {
                    let g = h / (heads / kv_heads);
                    let seen = visible_keys(offsets[i], window);
                    let qh = &q[i][h * hd..(h + 1) * hd];
                    let scores: Vec<f32> = keys[i][g][seen.clone()]
                        .iter()
                        .map(|key| qh.iter().zip(key).map(|(a, b)| a * b).sum::<f32>() * how.scale)
                        .collect();
                    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = scores.iter().map(|s| (s - max).exp()).sum();
                    for d in 0..hd {
                        let want: f32 = scores
                            .iter()
                            .zip(&values[i][g][seen.clone()])
                            .map(|(s, value)| (s - max).exp() / sum * value[d])
                            .sum();
                        let got = out[i][h * hd + d];
                        assert!(
                            (got - want).abs() < 1e-4,
                            "window {window:?}, step {step}, sequence {i}, head {h}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
