//! Causal self-attention as one op over projections in row layout, for training and
//! prefill on the CPU.
//!
//! Composed of candle ops, attention copies q, k and v into head layout, repeats the
//! key/value heads for grouped-query attention, materialises the full square of scores
//! (masked half included) and copies the result back to rows; its backward pass repeats
//! every copy and runs four full batched products. Here queries `[rows, heads * hd]` and
//! keys/values `[kv_rows, kv_heads * hd]` are read where they are (strided views, no
//! copies). Each (sequence, head) takes its queries a tile at a time: the tile's scores
//! against the keys its causal (and sliding-window) mask lets it see are one GEMM, the
//! masked softmax runs over that block, and the block times the values is another. Only
//! the diagonal tile computes scores the mask then drops. The forward pass keeps each
//! query's log-sum-exp; the backward pass recomputes the probabilities from it (as
//! FlashAttention does) instead of keeping them, and runs each (sequence, key/value head)
//! over its group's query heads, so the key/value gradients are summed where they are made.
//!
//! It does not apply the rotary embedding, a soft cap (Gemma 2) or a KV cache: the caller
//! rotates q and k, and keeps the composed path where a cap or a cache in head layout is
//! involved. On devices other than the CPU, or in another dtype, [`causal_attention`]
//! runs the composed ops.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::{Mat, causal_softmax, f32_slice, sgemm_on, visible_keys};

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

impl<'a> Rows<'a> {
    /// Head `h` of sequence `b` of `x` (`q`, the output or its gradient): `[seq, hd]`.
    fn head(&self, x: &'a [f32], b: usize, h: usize) -> Mat<'a> {
        let c = self.c;
        let at = (b * c.seq * c.heads + h) * c.head_dim;
        Mat { data: &x[at..], rows: c.seq, cols: c.head_dim, rs: c.heads * c.head_dim, cs: 1 }
    }

    /// Key/value head `g` of sequence `b` of `x` (`k` or `v`): `[keys, hd]`.
    fn kv_head(&self, x: &'a [f32], b: usize, g: usize) -> Mat<'a> {
        let c = self.c;
        let at = (b * c.keys() * c.kv_heads + g) * c.head_dim;
        Mat { data: &x[at..], rows: c.keys(), cols: c.head_dim, rs: c.kv_heads * c.head_dim, cs: 1 }
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
        let (hd, kv, group) = (c.head_dim, c.keys(), c.heads / c.kv_heads);
        // Per (sequence, key/value head): dq of the group's query heads `[group, seq, hd]`,
        // and dk and dv `[keys, hd]` each, summed over those heads.
        let parts: Vec<[Vec<f32>; 3]> = (0..c.batch * c.kv_heads)
            .into_par_iter()
            .map(|t| {
                let (b, kv_head) = (t / c.kv_heads, t % c.kv_heads);
                let mut dq = vec![0f32; group * c.seq * hd];
                let (mut dk, mut dv) = (vec![0f32; kv * hd], vec![0f32; kv * hd]);
                let grads = kernel::Grads { dq: &mut dq, dk: &mut dk, dv: &mut dv };
                kernel::backward(&x, b, kv_head, o, g, lse, grads);
                [dq, dk, dv]
            })
            .collect();
        let (width, kv_width) = (c.heads * hd, c.kv_heads * hd);
        let mut dq = vec![0f32; c.batch * c.seq * width];
        dq.par_chunks_mut(width).enumerate().for_each(|(r, row)| {
            let (b, i) = (r / c.seq.max(1), r % c.seq.max(1));
            for (h, dst) in row.chunks_exact_mut(hd).enumerate() {
                let at = ((h % group) * c.seq + i) * hd;
                dst.copy_from_slice(&parts[b * c.kv_heads + h / group][0][at..at + hd]);
            }
        });
        let gather = |which: usize| {
            let mut d = vec![0f32; c.batch * kv * kv_width];
            d.par_chunks_mut(kv_width).enumerate().for_each(|(r, row)| {
                let (b, j) = (r / kv.max(1), r % kv.max(1));
                for (g, dst) in row.chunks_exact_mut(hd).enumerate() {
                    dst.copy_from_slice(&parts[b * c.kv_heads + g][which][j * hd..(j + 1) * hd]);
                }
            });
            d
        };
        let (dk, dv) = (gather(1), gather(2));
        let device = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), device)?),
            Some(Tensor::from_vec(dk, k.shape(), device)?),
            Some(Tensor::from_vec(dv, v.shape(), device)?),
        ))
    }
}

/// The per-(sequence, head) loops, compiled for AVX-512 or AVX2 with FMA when the CPU
/// has them (chosen at run time, like [`super::skinny`]); the products run on gemm.
mod kernel {
    use super::{Mat, Rows, sgemm_on};

    /// Query rows per tile: one GEMM computes a tile's scores against the keys it sees.
    const TILE: usize = 64;

    /// A (sequence, key/value head)'s gradient buffers: `dq [group, seq, hd]` for the
    /// group's query heads, `dk`, `dv` `[keys, hd]`.
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

    /// Sequence `b`, key/value head `kv` of the backward pass, given the forward output `o`
    /// and its gradient `g` (both `[rows, heads * hd]`) and every query's log-sum-exp
    /// (`[batch, heads, seq]`).
    pub(super) fn backward(
        x: &Rows<'_>,
        b: usize,
        kv: usize,
        o: &[f32],
        g: &[f32],
        lse: &[f32],
        d: Grads<'_>,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { backward_avx512(x, b, kv, o, g, lse, d) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                return unsafe { backward_avx2(x, b, kv, o, g, lse, d) };
            }
        }
        backward_generic::<false>(x, b, kv, o, g, lse, d)
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
        kv: usize,
        o: &[f32],
        g: &[f32],
        lse: &[f32],
        d: Grads<'_>,
    ) {
        backward_generic::<true>(x, b, kv, o, g, lse, d)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn backward_avx2(
        x: &Rows<'_>,
        b: usize,
        kv: usize,
        o: &[f32],
        g: &[f32],
        lse: &[f32],
        d: Grads<'_>,
    ) {
        backward_generic::<true>(x, b, kv, o, g, lse, d)
    }

    /// The tiles of `seq` queries: each tile's first query, its length, the span of keys
    /// its queries see between them, and for each of its queries the keys that query sees,
    /// relative to the span.
    fn tiles(
        x: &Rows<'_>,
    ) -> impl Iterator<Item = (usize, std::ops::Range<usize>, impl Fn(usize) -> std::ops::Range<usize>)>
    {
        let c = x.c;
        (0..c.seq).step_by(TILE).map(move |i0| {
            let n = TILE.min(c.seq - i0);
            let span = c.visible(i0).start..c.visible(i0 + n - 1).end;
            let start = span.start;
            let own = move |r: usize| {
                let keys = c.visible(i0 + r);
                keys.start - start..keys.end - start
            };
            (i0, span, own)
        })
    }

    /// `row = e^(row - shift)` over `own`, zero elsewhere.
    #[inline(always)]
    fn masked_exp<const FMA: bool>(row: &mut [f32], own: std::ops::Range<usize>, shift: f32) {
        row[..own.start].fill(0.0);
        row[own.end..].fill(0.0);
        let p = &mut row[own];
        p.iter_mut().for_each(|s| *s -= shift);
        exp::<FMA>(p);
    }

    #[inline(always)]
    fn forward_generic<const FMA: bool>(
        x: &Rows<'_>,
        b: usize,
        h: usize,
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        let (c, hd) = (x.c, x.c.head_dim);
        let g = h / (c.heads / c.kv_heads);
        let (q, k, v) = (x.head(x.q, b, h), x.kv_head(x.k, b, g), x.kv_head(x.v, b, g));
        let mut scores = vec![0f32; TILE * c.keys()];
        for (i0, span, own) in tiles(x) {
            let (n, len) = (TILE.min(c.seq - i0), span.len());
            let s = &mut scores[..n * len];
            sgemm_on(1, s, false, q.rows(i0..i0 + n), k.rows(span.clone()).t(), c.scale);
            for (r, row) in s.chunks_exact_mut(len).enumerate() {
                let own = own(r);
                let max = row[own.clone()].iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                masked_exp::<FMA>(row, own, max);
                let sum: f32 = row.iter().sum();
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|p| *p *= inv);
                lse[i0 + r] = max + sum.ln();
            }
            let probs = Mat::new(s, n, len);
            sgemm_on(1, &mut out[i0 * hd..(i0 + n) * hd], false, probs, v.rows(span), 1.0);
        }
    }

    #[inline(always)]
    fn backward_generic<const FMA: bool>(
        x: &Rows<'_>,
        b: usize,
        kv: usize,
        o: &[f32],
        g: &[f32],
        lse: &[f32],
        d: Grads<'_>,
    ) {
        let (c, hd) = (x.c, x.c.head_dim);
        let group = c.heads / c.kv_heads;
        let (k, v) = (x.kv_head(x.k, b, kv), x.kv_head(x.v, b, kv));
        // Per tile: the probabilities P, and dP = dO V^T turned into dS = P (dP - rowsum(dO * O)).
        let (mut p, mut ds) = (vec![0f32; TILE * c.keys()], vec![0f32; TILE * c.keys()]);
        for h in kv * group..(kv + 1) * group {
            let (q, gh, oh) = (x.head(x.q, b, h), x.head(g, b, h), x.head(o, b, h));
            let lse = &lse[(b * c.heads + h) * c.seq..(b * c.heads + h + 1) * c.seq];
            let dq = &mut d.dq[(h % group) * c.seq * hd..(h % group + 1) * c.seq * hd];
            for (i0, span, own) in tiles(x) {
                let (n, len) = (TILE.min(c.seq - i0), span.len());
                let (qt, gt) = (q.rows(i0..i0 + n), gh.rows(i0..i0 + n));
                let (p, ds) = (&mut p[..n * len], &mut ds[..n * len]);
                sgemm_on(1, p, false, qt, k.rows(span.clone()).t(), c.scale);
                sgemm_on(1, ds, false, gt, v.rows(span.clone()).t(), 1.0);
                for (r, (pr, dsr)) in
                    p.chunks_exact_mut(len).zip(ds.chunks_exact_mut(len)).enumerate()
                {
                    let i = i0 + r;
                    masked_exp::<FMA>(pr, own(r), lse[i]);
                    let (gi, oi) = (i * gh.rs, i * oh.rs);
                    let delta = dot::<FMA>(&gh.data[gi..gi + hd], &oh.data[oi..oi + hd]);
                    for (ds, p) in dsr.iter_mut().zip(pr.iter()) {
                        *ds = c.scale * p * (*ds - delta);
                    }
                }
                let (pm, dsm) = (Mat::new(p, n, len), Mat::new(ds, n, len));
                sgemm_on(1, &mut dq[i0 * hd..(i0 + n) * hd], false, dsm, k.rows(span.clone()), 1.0);
                let keys = span.start * hd..span.end * hd;
                sgemm_on(1, &mut d.dk[keys.clone()], true, dsm.t(), qt, 1.0);
                sgemm_on(1, &mut d.dv[keys], true, pm.t(), gt, 1.0);
            }
        }
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
}
