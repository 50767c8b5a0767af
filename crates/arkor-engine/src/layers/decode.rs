//! Attention for a decode step: one new token in each of several sequences, each with its
//! own cache and position.
//!
//! Composed of candle ops this is a dozen small ops per sequence and layer (head layout,
//! rotation, cache concatenation, two products, softmax), whose fixed cost dominates a
//! batched decode step. Here it is one pass per sequence and key/value head, in parallel:
//! rotate the new query and key at the sequence's position, append the key and value to
//! the cache, and attend over it. Inference only (no gradient).

use candle_core::Tensor;
use rayon::prelude::*;

use super::{RopeTables, with_cpu_f32};

/// Shapes of the attention.
#[derive(Clone, Copy)]
pub(crate) struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// How attention scores are formed: `scale q.k`, soft-capped at `softcap` if set, over the
/// last `window` positions if set.
#[derive(Clone, Copy)]
pub(crate) struct Scores {
    pub scale: f32,
    pub softcap: Option<f32>,
    pub window: Option<usize>,
}

/// `q [n, heads * hd]`, `k`/`v` `[n, kv_heads * hd]`: the new token of each of `n`
/// sequences; `caches[i]` the keys and values of sequence `i` so far (`[1, kv_heads, T_i,
/// hd]`, none when empty), `offsets[i]` its position. Returns the attention output
/// `[n, heads * hd]` and each sequence's cache with the new token appended.
pub(crate) fn decode_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    caches: &[Option<(Tensor, Tensor)>],
    offsets: &[usize],
    rope: Option<&RopeTables>,
    shape: Heads,
    how: Scores,
) -> candle_core::Result<(Tensor, Vec<(Tensor, Tensor)>)> {
    let Heads { heads, kv_heads, head_dim: hd } = shape;
    let n = offsets.len();
    let rep = heads / kv_heads;
    let scale = how.scale;
    if let Some(rope) = rope {
        let max_pos = rope.cos.dim(0)?;
        if let Some(&o) = offsets.iter().find(|&&o| o >= max_pos) {
            candle_core::bail!(
                "sequence of {} tokens exceeds the model's {max_pos} positions",
                o + 1
            );
        }
    }
    let device = q.device().clone();
    let q = q.flatten_all()?.to_vec1::<f32>()?;
    let k = k.flatten_all()?.to_vec1::<f32>()?;
    let v = v.flatten_all()?.to_vec1::<f32>()?;
    // Each sequence's own tables: LongRoPE picks them by the sequence's length.
    let (cos, sin) = match rope {
        Some(rope) => {
            let (mut cos, mut sin) = (vec![], vec![]);
            for &o in offsets {
                let (c, s) = rope.for_end(o + 1);
                cos.push(c.narrow(0, o, 1)?.flatten_all()?.to_vec1::<f32>()?);
                sin.push(s.narrow(0, o, 1)?.flatten_all()?.to_vec1::<f32>()?);
            }
            (cos, sin)
        }
        None => (vec![], vec![]),
    };
    let rotate = |x: &[f32], i: usize| -> Vec<f32> {
        if rope.is_none() {
            return x.to_vec();
        }
        let (c, s) = (&cos[i], &sin[i]);
        // Partial rotary embedding: the dimensions past the tables pass through.
        let half = c.len();
        let mut out = x[..hd].to_vec();
        for j in 0..half {
            let (a, b) = (x[j], x[j + half]);
            out[j] = a * c[j] - b * s[j];
            out[j + half] = b * c[j] + a * s[j];
        }
        out
    };
    // One task per (sequence, kv head): its new cache rows and its query heads' outputs.
    let tasks: Vec<(usize, usize)> =
        (0..n).flat_map(|i| (0..kv_heads).map(move |g| (i, g))).collect();
    let results: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = tasks
        .par_iter()
        .map(|&(i, g)| -> candle_core::Result<_> {
            let past = caches[i].as_ref().map_or(Ok(0), |(k, _)| k.dim(2))?;
            let t = past + 1;
            let mut keys = Vec::with_capacity(t * hd);
            let mut values = Vec::with_capacity(t * hd);
            // This head's cached rows, copied straight from the cache into the new one.
            if let Some((pk, pv)) = &caches[i] {
                let span = g * past * hd..(g + 1) * past * hd;
                for (cached, into) in [(pk, &mut keys), (pv, &mut values)] {
                    with_cpu_f32(cached, "decode-attention", |s| {
                        into.extend_from_slice(&s[span.clone()]);
                        Ok(())
                    })?;
                }
            }
            let row = i * kv_heads * hd + g * hd;
            keys.extend(rotate(&k[row..row + hd], i));
            values.extend_from_slice(&v[row..row + hd]);
            let mut out = vec![0f32; rep * hd];
            // The keys this token sees: all of them, or the last `window`.
            let seen = super::visible_keys(past, how.window);
            let mut scores = vec![0f32; seen.len()];
            let (seen_keys, seen_values) = (&keys[seen.start * hd..], &values[seen.start * hd..]);
            for r in 0..rep {
                let h = g * rep + r;
                let qh = rotate(&q[i * heads * hd + h * hd..i * heads * hd + (h + 1) * hd], i);
                let mut max = f32::NEG_INFINITY;
                for (s, key) in scores.iter_mut().zip(seen_keys.chunks_exact(hd)) {
                    *s = qh.iter().zip(key).map(|(a, b)| a * b).sum::<f32>() * scale;
                    if let Some(cap) = how.softcap {
                        *s = cap * (*s / cap).tanh();
                    }
                    max = max.max(*s);
                }
                let mut sum = 0f32;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                let o = &mut out[r * hd..(r + 1) * hd];
                for (s, value) in scores.iter().zip(seen_values.chunks_exact(hd)) {
                    let p = s / sum;
                    for (o, v) in o.iter_mut().zip(value) {
                        *o += p * v;
                    }
                }
            }
            Ok((keys, values, out))
        })
        .collect::<candle_core::Result<_>>()?;
    let mut out = vec![0f32; n * heads * hd];
    let mut new_caches = Vec::with_capacity(n);
    for (i, per_seq) in results.chunks_exact(kv_heads).enumerate() {
        let t = per_seq[0].0.len() / hd;
        let mut keys = Vec::with_capacity(kv_heads * t * hd);
        let mut values = Vec::with_capacity(kv_heads * t * hd);
        for (g, (k, v, o)) in per_seq.iter().enumerate() {
            keys.extend_from_slice(k);
            values.extend_from_slice(v);
            let at = i * heads * hd + g * rep * hd;
            out[at..at + rep * hd].copy_from_slice(o);
        }
        new_caches.push((
            Tensor::from_vec(keys, (1, kv_heads, t, hd), &device)?,
            Tensor::from_vec(values, (1, kv_heads, t, hd), &device)?,
        ));
    }
    Ok((Tensor::from_vec(out, (n, heads * hd), &device)?, new_caches))
}
