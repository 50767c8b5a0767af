//! Causal self-attention as one op over projections in row layout, for training and
//! prefill on the CPU.
//!
//! Composed of candle ops, attention copies q, k and v into head layout, repeats the
//! key/value heads for grouped-query attention, materialises the full square of scores
//! (masked half included) and copies the result back to rows; its backward pass repeats
//! every copy and runs four full batched products. Here queries `[rows, heads * hd]` and
//! keys/values `[kv_rows, kv_heads * hd]` are read where they are: each (sequence, head)
//! computes only the scores its causal (and sliding-window) mask keeps, one query at a
//! time, and the result is written back in row layout. The forward pass keeps each query's
//! log-sum-exp; the backward pass recomputes the probabilities from it (as FlashAttention
//! does) instead of keeping them, and sums the key/value gradients over the query heads of
//! each group.
//!
//! It does not apply the rotary embedding, a soft cap (Gemma 2) or a KV cache: the caller
//! rotates q and k, and keeps the composed path where a cap or a cache in head layout is
//! involved. On devices other than the CPU, or in another dtype, [`causal_attention`]
//! runs the composed ops.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::{causal_softmax, f32_slice, visible_keys};

/// The geometry of one causal attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Causal {
    /// Independent sequences, laid out one after the other in the rows.
    pub batch: usize,
    /// New positions (queries) per sequence.
    pub seq: usize,
    /// Positions before the first query whose keys every query may see (a shared prefix
    /// or cached positions): each sequence has `offset + seq` keys, and query `i` sits at
    /// position `offset + i`.
    pub offset: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; query head `h` uses key/value head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    /// Width of each head.
    pub head_dim: usize,
    /// The factor scores are multiplied by before the softmax.
    pub scale: f32,
    /// The sliding window: the query at `p` sees only keys in `(p - window, p]`.
    pub window: Option<usize>,
}

impl Causal {
    /// Keys (and values) per sequence.
    fn keys(&self) -> usize {
        self.offset + self.seq
    }

    /// The keys query `i` attends to.
    fn visible(&self, i: usize) -> std::ops::Range<usize> {
        let keys = visible_keys(self.offset + i, self.window);
        keys.start.min(self.keys())..keys.end.min(self.keys())
    }
}

/// `softmax(scale * q k^T + causal mask) v` per sequence and head: `q` is
/// `[batch * seq, heads * hd]`, `k` and `v` are `[batch * (offset + seq), kv_heads * hd]`
/// (each sequence's keys after the previous sequence's), and the result is
/// `[batch * seq, heads * hd]`. Differentiable with respect to all three.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    c: Causal,
) -> candle_core::Result<Tensor> {
    let (width, kv_width) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let (q_rows, kv_rows) = (c.batch * c.seq, c.batch * c.keys());
    if q.dims2()? != (q_rows, width)
        || k.dims2()? != (kv_rows, kv_width)
        || v.dims2()? != (kv_rows, kv_width)
        || c.kv_heads == 0
        || !c.heads.is_multiple_of(c.kv_heads)
    {
        candle_core::bail!(
            "causal_attention: q {:?}, k {:?}, v {:?} do not fit {c:?}",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    if q.device().is_cpu() && [q, k, v].iter().all(|t| t.dtype() == DType::F32) {
        let op = FusedAttention { c, lse: Mutex::new(None) };
        return q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, op);
    }
    composed(q, k, v, c)
}

/// The same computation from candle ops: head layout, repeated key/value heads, full
/// scores, [`causal_softmax`]. The path other devices take; public for benchmarks.
pub fn composed(q: &Tensor, k: &Tensor, v: &Tensor, c: Causal) -> candle_core::Result<Tensor> {
    let heads = |x: &Tensor, t: usize, n: usize| -> candle_core::Result<Tensor> {
        x.reshape((c.batch, t, n, c.head_dim))?.transpose(1, 2)?.contiguous()
    };
    let rep = c.heads / c.kv_heads;
    let q = heads(q, c.seq, c.heads)?;
    let k = repeat_kv(&heads(k, c.keys(), c.kv_heads)?, rep)?;
    let v = repeat_kv(&heads(v, c.keys(), c.kv_heads)?, rep)?;
    let probs = causal_softmax(&q.matmul(&k.t()?)?, c.scale as f64, c.offset, c.window)?;
    probs.matmul(&v)?.transpose(1, 2)?.reshape((c.batch * c.seq, c.heads * c.head_dim))
}

/// `[b, kv_heads, t, d]` -> `[b, kv_heads * n_rep, t, d]`, each kv head repeated `n_rep`
/// times consecutively (the grouping transformers uses).
pub(crate) fn repeat_kv(x: &Tensor, n_rep: usize) -> candle_core::Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, nkv, t, d) = x.dims4()?;
    x.unsqueeze(2)?.broadcast_as((b, nkv, n_rep, t, d))?.reshape((b, nkv * n_rep, t, d))
}

struct FusedAttention {
    c: Causal,
    /// `[batch, heads, seq]`: each query's log-sum-exp of its scaled scores, kept by the
    /// forward pass for the backward pass.
    lse: Mutex<Option<Vec<f32>>>,
}

/// The inputs of one call, read in row layout.
struct Rows<'a> {
    c: Causal,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
}

impl Rows<'_> {
    fn q(&self, b: usize, i: usize, h: usize) -> &[f32] {
        let at = ((b * self.c.seq + i) * self.c.heads + h) * self.c.head_dim;
        &self.q[at..at + self.c.head_dim]
    }

    /// Offset of key/value `j` of sequence `b` in kv head `g`.
    fn kv_at(&self, b: usize, j: usize, g: usize) -> usize {
        ((b * self.c.keys() + j) * self.c.kv_heads + g) * self.c.head_dim
    }

    fn k_row(&self, b: usize, j: usize, g: usize) -> &[f32] {
        let at = self.kv_at(b, j, g);
        &self.k[at..at + self.c.head_dim]
    }

    fn v_row(&self, b: usize, j: usize, g: usize) -> &[f32] {
        let at = self.kv_at(b, j, g);
        &self.v[at..at + self.c.head_dim]
    }

    fn group(&self, h: usize) -> usize {
        h / (self.c.heads / self.c.kv_heads)
    }
}

const NAME: &str = "causal-attention";

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = self.c;
        let x = Rows {
            c,
            q: f32_slice(qs, ql, NAME)?,
            k: f32_slice(ks, kl, NAME)?,
            v: f32_slice(vs, vl, NAME)?,
        };
        let (hd, width) = (c.head_dim, c.heads * c.head_dim);
        // Each (sequence, head) into its own `[seq, hd]` block, then into rows.
        let heads: Vec<(Vec<f32>, Vec<f32>)> = (0..c.batch * c.heads)
            .into_par_iter()
            .map(|t| {
                let mut out = vec![0f32; c.seq * hd];
                let mut lse = vec![0f32; c.seq];
                kernel::forward(&x, t / c.heads, t % c.heads, &mut out, &mut lse);
                (out, lse)
            })
            .collect();
        let mut out = vec![0f32; c.batch * c.seq * width];
        out.par_chunks_mut(width).enumerate().for_each(|(r, row)| {
            let (b, i) = (r / c.seq.max(1), r % c.seq.max(1));
            for (h, dst) in row.chunks_exact_mut(hd).enumerate() {
                dst.copy_from_slice(&heads[b * c.heads + h].0[i * hd..(i + 1) * hd]);
            }
        });
        let lse = heads.into_iter().flat_map(|(_, lse)| lse).collect();
        *self.lse.lock().expect("attention lse lock") = Some(lse);
        Ok((CpuStorage::F32(out), Shape::from((c.batch * c.seq, width))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let lse = self.lse.lock().expect("attention lse lock");
        let Some(lse) = lse.as_deref() else {
            candle_core::bail!("{NAME}: backward pass without a forward pass on the CPU")
        };
        let c = self.c;
        let tensors = [q, k, v, out, grad]
            .map(|t| t.detach().contiguous())
            .into_iter()
            .collect::<candle_core::Result<Vec<_>>>()?;
        let storages: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
        let mut slices = Vec::with_capacity(storages.len());
        for (s, l) in &storages {
            let Storage::Cpu(s) = &**s else {
                candle_core::bail!("{NAME}: backward pass on another device")
            };
            slices.push(f32_slice(s, l, NAME)?);
        }
        let x = Rows { c, q: slices[0], k: slices[1], v: slices[2] };
        let (o, g) = (slices[3], slices[4]);
        let hd = c.head_dim;
        let kv = c.keys();
        // Per (sequence, head): dq `[seq, hd]`, and that head's share of dk and dv
        // `[keys, hd]` each.
        let parts: Vec<[Vec<f32>; 3]> = (0..c.batch * c.heads)
            .into_par_iter()
            .map(|t| {
                let (b, h) = (t / c.heads, t % c.heads);
                let mut dq = vec![0f32; c.seq * hd];
                let (mut dk, mut dv) = (vec![0f32; kv * hd], vec![0f32; kv * hd]);
                let lse = &lse[t * c.seq..(t + 1) * c.seq];
                let grads = kernel::Grads { dq: &mut dq, dk: &mut dk, dv: &mut dv };
                kernel::backward(&x, b, h, o, g, lse, grads);
                [dq, dk, dv]
            })
            .collect();
        let (width, kv_width) = (c.heads * hd, c.kv_heads * hd);
        let mut dq = vec![0f32; c.batch * c.seq * width];
        dq.par_chunks_mut(width).enumerate().for_each(|(r, row)| {
            let (b, i) = (r / c.seq.max(1), r % c.seq.max(1));
            for (h, dst) in row.chunks_exact_mut(hd).enumerate() {
                dst.copy_from_slice(&parts[b * c.heads + h][0][i * hd..(i + 1) * hd]);
            }
        });
        // dk and dv of a kv head: the sum over its group's query heads.
        let group = c.heads / c.kv_heads;
        let sum_heads = |which: usize| {
            let mut d = vec![0f32; c.batch * kv * kv_width];
            d.par_chunks_mut(kv_width).enumerate().for_each(|(r, row)| {
                let (b, j) = (r / kv.max(1), r % kv.max(1));
                for (g, dst) in row.chunks_exact_mut(hd).enumerate() {
                    for h in g * group..(g + 1) * group {
                        let src = &parts[b * c.heads + h][which][j * hd..(j + 1) * hd];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    }
                }
            });
            d
        };
        let (dk, dv) = (sum_heads(1), sum_heads(2));
        let device = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), device)?),
            Some(Tensor::from_vec(dk, k.shape(), device)?),
            Some(Tensor::from_vec(dv, v.shape(), device)?),
        ))
    }
}

/// The per-(sequence, head) loops, compiled for AVX-512 or AVX2 with FMA when the CPU
/// has them (chosen at run time, like [`super::skinny`]).
mod kernel {
    use super::Rows;

    /// A head's gradient buffers: `dq [seq, hd]`, `dk`, `dv` `[keys, hd]`.
    pub(super) struct Grads<'a> {
        pub dq: &'a mut [f32],
        pub dk: &'a mut [f32],
        pub dv: &'a mut [f32],
    }

    /// Sequence `b`, head `h`: `out [seq, hd]` and each query's log-sum-exp.
    pub(super) fn forward(x: &Rows<'_>, b: usize, h: usize, out: &mut [f32], lse: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { forward_avx512(x, b, h, out, lse) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                return unsafe { forward_avx2(x, b, h, out, lse) };
            }
        }
        forward_generic::<false>(x, b, h, out, lse)
    }

    /// Sequence `b`, head `h` of the backward pass, given the forward output `o` and its
    /// gradient `g` (both `[rows, heads * hd]`) and the head's log-sum-exps.
    pub(super) fn backward(
        x: &Rows<'_>,
        b: usize,
        h: usize,
        o: &[f32],
        g: &[f32],
        lse: &[f32],
        d: Grads<'_>,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { backward_avx512(x, b, h, o, g, lse, d) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                return unsafe { backward_avx2(x, b, h, o, g, lse, d) };
            }
        }
        backward_generic::<false>(x, b, h, o, g, lse, d)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn forward_avx512(x: &Rows<'_>, b: usize, h: usize, out: &mut [f32], lse: &mut [f32]) {
        forward_generic::<true>(x, b, h, out, lse)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(x: &Rows<'_>, b: usize, h: usize, out: &mut [f32], lse: &mut [f32]) {
        forward_generic::<true>(x, b, h, out, lse)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn backward_avx512(
        x: &Rows<'_>,
        b: usize,
        h: usize,
        o: &[f32],
        g: &[f32],
        lse: &[f32],
        d: Grads<'_>,
    ) {
        backward_generic::<true>(x, b, h, o, g, lse, d)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn backward_avx2(
        x: &Rows<'_>,
        b: usize,
        h: usize,
        o: &[f32],
        g: &[f32],
        lse: &[f32],
        d: Grads<'_>,
    ) {
        backward_generic::<true>(x, b, h, o, g, lse, d)
    }

    #[inline(always)]
    fn forward_generic<const FMA: bool>(
        x: &Rows<'_>,
        b: usize,
        h: usize,
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        let (c, hd, grp) = (x.c, x.c.head_dim, x.group(h));
        let mut scores = vec![0f32; BLOCK * c.keys()];
        for i0 in (0..c.seq).step_by(BLOCK) {
            let n = BLOCK.min(c.seq - i0);
            let span = c.visible(i0).start..c.visible(i0 + n - 1).end;
            let len = span.len();
            let qs: [&[f32]; BLOCK] = std::array::from_fn(|r| x.q(b, i0 + r.min(n - 1), h));
            // Keys every query of a full block sees: four dot products per load of a key.
            let common = c.visible(i0 + n - 1).start..c.visible(i0).end;
            if n == BLOCK {
                for j in common.clone() {
                    let s = dots4::<FMA>(qs, x.k_row(b, j, grp));
                    for (r, s) in s.iter().enumerate() {
                        scores[r * len + j - span.start] = c.scale * s;
                    }
                }
            }
            for r in 0..n {
                let i = i0 + r;
                let keys = c.visible(i);
                let s = &mut scores[r * len..(r + 1) * len];
                for j in keys.clone().filter(|j| n < BLOCK || !common.contains(j)) {
                    s[j - span.start] = c.scale * dot::<FMA>(qs[r], x.k_row(b, j, grp));
                }
                let s = &mut s[keys.start - span.start..keys.end - span.start];
                let max = s.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                s.iter_mut().for_each(|s| *s -= max);
                exp::<FMA>(s);
                let sum: f32 = s.iter().sum();
                let inv = 1.0 / sum;
                s.iter_mut().for_each(|p| *p *= inv);
                let out = &mut out[i * hd..(i + 1) * hd];
                weighted_sum::<FMA>(out, s, |t| x.v_row(b, keys.start + t, grp));
                lse[i] = max + sum.ln();
            }
        }
    }

    /// Queries whose keys are visited together: each key is loaded once for the block's
    /// dot products, and its gradient rows are loaded and stored once per block.
    const BLOCK: usize = 4;

    #[inline(always)]
    fn backward_generic<const FMA: bool>(
        x: &Rows<'_>,
        b: usize,
        h: usize,
        o: &[f32],
        g: &[f32],
        lse: &[f32],
        d: Grads<'_>,
    ) {
        let (c, hd, grp) = (x.c, x.c.head_dim, x.group(h));
        // Per query of the block, over the block's keys: probabilities and dS =
        // P (dP - rowsum(dO * O)), dP = dO V^T; zero where that query does not look.
        let (mut p, mut ds) = (vec![0f32; BLOCK * c.keys()], vec![0f32; BLOCK * c.keys()]);
        let zero = vec![0f32; hd];
        for i0 in (0..c.seq).step_by(BLOCK) {
            let n = BLOCK.min(c.seq - i0);
            let span = c.visible(i0).start..c.visible(i0 + n - 1).end;
            let len = span.len();
            let (mut qs, mut gs) = ([&zero[..]; BLOCK], [&zero[..]; BLOCK]);
            p[..BLOCK * len].fill(0.0);
            ds[..BLOCK * len].fill(0.0);
            for r in 0..n {
                let row = ((b * c.seq + i0 + r) * c.heads + h) * hd;
                (qs[r], gs[r]) = (x.q(b, i0 + r, h), &g[row..row + hd]);
            }
            // Keys every query of a full block sees: four dot products per load of a key.
            let common = c.visible(i0 + n - 1).start..c.visible(i0).end;
            if n == BLOCK {
                for j in common.clone() {
                    let t = j - span.start;
                    let s = dots4::<FMA>(qs, x.k_row(b, j, grp));
                    let dp = dots4::<FMA>(gs, x.v_row(b, j, grp));
                    for r in 0..BLOCK {
                        p[r * len + t] = c.scale * s[r] - lse[i0 + r];
                        ds[r * len + t] = dp[r];
                    }
                }
            }
            for r in 0..n {
                let (pr, dsr) = (&mut p[r * len..(r + 1) * len], &mut ds[r * len..(r + 1) * len]);
                let i = i0 + r;
                let row = ((b * c.seq + i) * c.heads + h) * hd;
                let (oi, gi, qi) = (&o[row..row + hd], gs[r], qs[r]);
                let delta = dot::<FMA>(gi, oi);
                let keys = c.visible(i);
                let own = keys.start - span.start..keys.end - span.start;
                for j in keys.clone().filter(|j| n < BLOCK || !common.contains(j)) {
                    let t = j - span.start;
                    pr[t] = c.scale * dot::<FMA>(qi, x.k_row(b, j, grp)) - lse[i];
                    dsr[t] = dot::<FMA>(gi, x.v_row(b, j, grp));
                }
                exp::<FMA>(&mut pr[own.clone()]);
                for (ds, p) in dsr[own.clone()].iter_mut().zip(&pr[own.clone()]) {
                    *ds = c.scale * p * (*ds - delta);
                }
                let own = &dsr[own];
                let dq = &mut d.dq[i * hd..(i + 1) * hd];
                weighted_sum::<FMA>(dq, own, |t| x.k_row(b, keys.start + t, grp));
            }
            for (t, j) in span.enumerate() {
                let at = j * hd..(j + 1) * hd;
                let weights = |w: &[f32]| std::array::from_fn(|r| w[r * len + t]);
                axpy4::<FMA>(&mut d.dk[at.clone()], weights(&ds), qs);
                axpy4::<FMA>(&mut d.dv[at], weights(&p), gs);
            }
        }
    }

    /// `y += sum_t w[t] row(t)`, four rows per pass over `y`.
    #[inline(always)]
    fn weighted_sum<'a, const FMA: bool>(
        y: &mut [f32],
        w: &[f32],
        row: impl Fn(usize) -> &'a [f32],
    ) {
        let mut t = 0;
        while t + 4 <= w.len() {
            let rows = [row(t), row(t + 1), row(t + 2), row(t + 3)];
            axpy4::<FMA>(y, [w[t], w[t + 1], w[t + 2], w[t + 3]], rows);
            t += 4;
        }
        for (t, &w) in w.iter().enumerate().skip(t) {
            axpy::<FMA>(y, w, row(t));
        }
    }

    /// `y += sum_r a[r] x[r]`.
    #[inline(always)]
    fn axpy4<const FMA: bool>(y: &mut [f32], a: [f32; 4], x: [&[f32]; 4]) {
        // Zipped slices, not indexing through the array: the compiler vectorises this form.
        let [x0, x1, x2, x3] = x;
        for ((((y, x0), x1), x2), x3) in y.iter_mut().zip(x0).zip(x1).zip(x2).zip(x3) {
            let v = fma::<FMA>(a[0], *x0, *y);
            let v = fma::<FMA>(a[1], *x1, v);
            let v = fma::<FMA>(a[2], *x2, v);
            *y = fma::<FMA>(a[3], *x3, v);
        }
    }

    #[inline(always)]
    fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
        if FMA { a.mul_add(b, c) } else { c + a * b }
    }

    /// `x = e^x` in place: eight lanes at a time in the `FMA` kernels (a polynomial within
    /// a few units in the last place of `f32::exp`, for arguments down to -87), `f32::exp`
    /// elsewhere and for the tail.
    #[inline(always)]
    fn exp<const FMA: bool>(x: &mut [f32]) {
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if FMA {
            // SAFETY: `FMA` kernels run only inside the AVX2 + FMA (or AVX-512) functions.
            done = unsafe { exp_avx2(x) };
        }
        x[done..].iter_mut().for_each(|v| *v = v.exp());
    }

    /// The Cephes `expf` scheme on eight lanes: `2^n e^r` with `n = round(x / ln 2)` and a
    /// degree-5 polynomial for `e^r - 1 - r`. Returns how many leading elements it did.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn exp_avx2(x: &mut [f32]) -> usize {
        use std::arch::x86_64::*;
        let body = x.len() / 8 * 8;
        let p = x.as_mut_ptr();
        let coeffs =
            [1.987_569_2e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];
        let mut i = 0;
        while i < body {
            // SAFETY: `i + 8 <= x.len()`.
            let v = unsafe { _mm256_loadu_ps(p.add(i)) };
            let v =
                _mm256_max_ps(_mm256_min_ps(v, _mm256_set1_ps(88.376_26)), _mm256_set1_ps(-87.0));
            let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(v, _mm256_set1_ps(std::f32::consts::LOG2_E)),
            );
            let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), v);
            let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
            let mut y = _mm256_set1_ps(coeffs[0]);
            for c in &coeffs[1..] {
                y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(*c));
            }
            let y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0)));
            let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
                _mm256_cvtps_epi32(n),
                _mm256_set1_epi32(127),
            ));
            let out = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(p.add(i), out) };
            i += 8;
        }
        body
    }

    /// `[q[r] · k for r in 0..4]`.
    #[inline(always)]
    fn dots4<const FMA: bool>(q: [&[f32]; 4], k: &[f32]) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        if FMA {
            // SAFETY: `FMA` kernels run only inside the AVX2 + FMA (or AVX-512) functions.
            return unsafe { dots4_avx2(q, k) };
        }
        q.map(|q| dot::<FMA>(q, k))
    }

    /// [`dots4`] with one 8-lane accumulator per row.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn dots4_avx2(q: [&[f32]; 4], k: &[f32]) -> [f32; 4] {
        use std::arch::x86_64::*;
        let n = q.iter().fold(k.len(), |n, q| n.min(q.len()));
        let body = n / 8 * 8;
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < body {
            // SAFETY: `i + 8 <= n`, inside `k` and every row of `q`.
            unsafe {
                let kv = _mm256_loadu_ps(k.as_ptr().add(i));
                for (acc, q) in acc.iter_mut().zip(&q) {
                    *acc = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), kv, *acc);
                }
            }
            i += 8;
        }
        std::array::from_fn(|r| {
            let v = acc[r];
            let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
            let v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
            let tail: f32 = q[r][body..n].iter().zip(&k[body..n]).map(|(a, b)| a * b).sum();
            _mm_cvtss_f32(v) + tail
        })
    }

    #[inline(always)]
    fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if FMA {
            // SAFETY: `FMA` kernels run only inside the AVX2 + FMA (or AVX-512) functions.
            return unsafe { dot_avx2(a, b) };
        }
        a.iter().zip(b).map(|(a, b)| a * b).sum()
    }

    /// `a · b` with two 8-lane accumulators (the compiler's own vectorisation of this
    /// loop inside the kernels used two-lane registers).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        use std::arch::x86_64::*;
        let n = a.len().min(b.len());
        let body = n / 16 * 16;
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut i = 0;
        while i < body {
            // SAFETY: `i + 16 <= n`, inside both slices.
            unsafe {
                lo = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), lo);
                let (x, y) = (_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)));
                hi = _mm256_fmadd_ps(x, y, hi);
            }
            i += 16;
        }
        let v = _mm256_add_ps(lo, hi);
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        let v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
        _mm_cvtss_f32(v) + a[body..n].iter().zip(&b[body..n]).map(|(a, b)| a * b).sum::<f32>()
    }

    /// `y += a x`.
    #[inline(always)]
    fn axpy<const FMA: bool>(y: &mut [f32], a: f32, x: &[f32]) {
        for (y, x) in y.iter_mut().zip(x) {
            *y = fma::<FMA>(a, *x, *y);
        }
    }
}
