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

use super::RopeTables;

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

/// One layer's cached keys and values.
#[derive(Clone, Debug)]
pub(crate) enum LayerKv {
    /// `[batch, kv_heads, T, hd]` tensors each, as the composed attention makes them (on
    /// any device).
    Tensors(Tensor, Tensor),
    /// One sequence's, on the host, where a decode step appends in place.
    Host(HostKv),
}

impl LayerKv {
    /// The number of positions cached.
    pub(crate) fn len(&self) -> usize {
        match self {
            LayerKv::Tensors(k, _) => k.dims().get(2).copied().unwrap_or(0),
            LayerKv::Host(h) => h.len,
        }
    }

    /// The keys and values as `[batch, kv_heads, T, hd]` tensors on `device`.
    pub(crate) fn tensors(
        &self,
        device: &candle_core::Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        match self {
            LayerKv::Tensors(k, v) => Ok((k.clone(), v.clone())),
            LayerKv::Host(h) => h.tensors(device),
        }
    }
}

/// One sequence's keys and values, `[kv_heads, capacity, hd]` each, of which the first
/// `len` positions of every head are filled. A decode step writes its token's row into the
/// spare capacity (which doubles when it runs out) instead of copying the cache.
#[derive(Clone, Debug)]
pub(crate) struct HostKv {
    k: Vec<f32>,
    v: Vec<f32>,
    kv_heads: usize,
    hd: usize,
    len: usize,
    capacity: usize,
}

impl HostKv {
    fn empty(kv_heads: usize, hd: usize) -> Self {
        HostKv { k: vec![], v: vec![], kv_heads, hd, len: 0, capacity: 0 }
    }

    /// From `[1, kv_heads, T, hd]` tensors.
    fn from_tensors(k: &Tensor, v: &Tensor) -> candle_core::Result<Self> {
        let (b, kv_heads, len, hd) = k.dims4()?;
        if b != 1 || v.dims4()? != (b, kv_heads, len, hd) {
            candle_core::bail!(
                "decode-attention: a cache of keys {:?} and values {:?} for one sequence",
                k.dims(),
                v.dims()
            );
        }
        let mut host = HostKv::empty(kv_heads, hd);
        host.reserve(len + 1);
        let span = len * hd;
        for (t, into) in [(k, &mut host.k), (v, &mut host.v)] {
            let flat = t.flatten_all()?.to_vec1::<f32>()?;
            for (from, to) in
                flat.chunks_exact(span.max(1)).zip(into.chunks_exact_mut(host.capacity * hd))
            {
                to[..span].copy_from_slice(from);
            }
        }
        host.len = len;
        Ok(host)
    }

    /// Room for at least `positions` in every head.
    fn reserve(&mut self, positions: usize) {
        if positions <= self.capacity {
            return;
        }
        let capacity = positions.max(2 * self.capacity).max(64);
        let (hd, filled) = (self.hd, self.len * self.hd);
        for data in [&mut self.k, &mut self.v] {
            let mut grown = vec![0f32; self.kv_heads * capacity * hd];
            if self.capacity > 0 {
                let old = data.chunks_exact(self.capacity * hd);
                for (from, to) in old.zip(grown.chunks_exact_mut(capacity * hd)) {
                    to[..filled].copy_from_slice(&from[..filled]);
                }
            }
            *data = grown;
        }
        self.capacity = capacity;
    }

    fn tensors(&self, device: &candle_core::Device) -> candle_core::Result<(Tensor, Tensor)> {
        let (kvh, hd, len) = (self.kv_heads, self.hd, self.len);
        let filled = |data: &[f32]| -> Vec<f32> {
            if self.capacity == 0 {
                return vec![];
            }
            data.chunks_exact(self.capacity * hd)
                .flat_map(|head| &head[..len * hd])
                .copied()
                .collect()
        };
        Ok((
            Tensor::from_vec(filled(&self.k), (1, kvh, len, hd), device)?,
            Tensor::from_vec(filled(&self.v), (1, kvh, len, hd), device)?,
        ))
    }
}

/// `q [n, heads * hd]`, `k`/`v` `[n, kv_heads * hd]`: the new token of each of `n`
/// sequences; `caches[i]` the keys and values of sequence `i` so far (none when empty),
/// `offsets[i]` its position. Appends each new key and value to its sequence's cache, in
/// place, and returns the attention output `[n, heads * hd]`.
pub(crate) fn decode_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    caches: &mut [&mut Option<LayerKv>],
    offsets: &[usize],
    rope: Option<&RopeTables>,
    shape: Heads,
    how: Scores,
) -> candle_core::Result<Tensor> {
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
    if caches.len() != n {
        candle_core::bail!("decode-attention: {} caches for {n} sequences", caches.len());
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
    let rotate = |x: &[f32], i: usize, out: &mut [f32]| {
        out.copy_from_slice(&x[..hd]);
        if rope.is_none() {
            return;
        }
        let (c, s) = (&cos[i], &sin[i]);
        // Partial rotary embedding: the dimensions past the tables pass through.
        let half = c.len();
        for j in 0..half {
            let (a, b) = (x[j], x[j + half]);
            out[j] = a * c[j] - b * s[j];
            out[j + half] = b * c[j] + a * s[j];
        }
    };
    let mut hosts = Vec::with_capacity(n);
    for slot in caches.iter_mut() {
        let mut host = match slot.take() {
            None => HostKv::empty(kv_heads, hd),
            Some(LayerKv::Host(h)) => h,
            Some(LayerKv::Tensors(k, v)) => HostKv::from_tensors(&k, &v)?,
        };
        if (host.kv_heads, host.hd) != (kv_heads, hd) {
            candle_core::bail!(
                "decode-attention: a cache of {} heads of {} for {kv_heads} heads of {hd}",
                host.kv_heads,
                host.hd
            );
        }
        host.reserve(host.len + 1);
        hosts.push(host);
    }
    // One task per (sequence, kv head): its cache rows, and its query heads' outputs, which
    // lie side by side in `out`.
    let mut tasks = Vec::with_capacity(n * kv_heads);
    for (i, host) in hosts.iter_mut().enumerate() {
        let (span, past) = (host.capacity * hd, host.len);
        let heads_of = host.k.chunks_exact_mut(span).zip(host.v.chunks_exact_mut(span));
        tasks.extend(heads_of.enumerate().map(|(g, (keys, values))| (i, g, past, keys, values)));
    }
    let mut out = vec![0f32; n * heads * hd];
    out.par_chunks_mut(rep * hd).zip(tasks.into_par_iter()).for_each(
        |(out, (i, g, past, keys, values))| {
            let row = i * kv_heads * hd + g * hd;
            rotate(&k[row..row + hd], i, &mut keys[past * hd..(past + 1) * hd]);
            values[past * hd..(past + 1) * hd].copy_from_slice(&v[row..row + hd]);
            // This kv head's query heads, rotated.
            let mut qs = vec![0f32; rep * hd];
            let at = i * heads * hd + g * rep * hd;
            for (r, qh) in qs.chunks_exact_mut(hd).enumerate() {
                rotate(&q[at + r * hd..at + (r + 1) * hd], i, qh);
            }
            // The keys this token sees: all of them, or the last `window`.
            let seen = super::visible_keys(past, how.window);
            let (seen_keys, seen_values) =
                (&keys[seen.start * hd..seen.end * hd], &values[seen.start * hd..seen.end * hd]);
            // `scores[j * rep + r]`: query head `r` against key `j`.
            let mut scores = vec![0f32; seen.len() * rep];
            super::skinny::dots(&qs, seen_keys, rep, hd, &mut scores);
            for r in 0..rep {
                let mut max = f32::NEG_INFINITY;
                for s in scores[r..].iter_mut().step_by(rep) {
                    *s *= scale;
                    if let Some(cap) = how.softcap {
                        *s = cap * (*s / cap).tanh();
                    }
                    max = max.max(*s);
                }
                let mut sum = 0f32;
                for s in scores[r..].iter_mut().step_by(rep) {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                let o = &mut out[r * hd..(r + 1) * hd];
                for (s, value) in scores[r..].iter().step_by(rep).zip(seen_values.chunks_exact(hd))
                {
                    let p = s / sum;
                    for (o, v) in o.iter_mut().zip(value) {
                        *o += p * v;
                    }
                }
            }
        },
    );
    for (slot, mut host) in caches.iter_mut().zip(hosts) {
        host.len += 1;
        **slot = Some(LayerKv::Host(host));
    }
    Tensor::from_vec(out, (n, heads * hd), &device)
}
