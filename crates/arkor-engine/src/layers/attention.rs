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

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{Mat, causal_softmax, f32_slice, sgemm_on, visible_keys, with_cpu_f32s};

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
    if fusable(q, k, v) {
        let segments = (0..c.batch)
            .map(|b| Segment {
                queries: b * c.seq..(b + 1) * c.seq,
                keys: b * c.keys()..(b + 1) * c.keys(),
                prefix: 0,
            })
            .collect();
        return fused(q, k, v, Heads::of(&c), segments);
    }
    composed(q, k, v, c)
}

/// Heads and scores of an attention call, whatever its rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// The factor scores are multiplied by before the softmax.
    pub scale: f32,
    /// The sliding window: the query at `p` sees only keys in `(p - window, p]`.
    pub window: Option<usize>,
}

impl Heads {
    fn of(c: &Causal) -> Self {
        let Causal { heads, kv_heads, head_dim, scale, window, .. } = *c;
        Heads { heads, kv_heads, head_dim, scale, window }
    }

    /// `batch` sequences of `seq` queries, each after `offset` earlier positions.
    pub fn causal(&self, batch: usize, seq: usize, offset: usize) -> Causal {
        let Heads { heads, kv_heads, head_dim, scale, window } = *self;
        Causal { batch, seq, offset, heads, kv_heads, head_dim, scale, window }
    }
}

/// Causal attention over packed rows: `prefix` rows every sequence shares, then one
/// sequence after another (`lens` rows each). The prefix attends causally to itself; each
/// sequence attends to the whole prefix and causally to itself, never to another
/// sequence. `q` is `[rows, heads * hd]`, `k` and `v` `[rows, kv_heads * hd]`, rotated as
/// their positions say (the prefix from 0, each sequence from `prefix`). One op for the
/// whole batch: no per-sequence slices whose gradients candle would pad to full size. CPU
/// and f32 only; the decoder runs other devices per sequence on the composed ops.
pub fn packed_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    h: Heads,
    prefix: usize,
    lens: &[usize],
) -> candle_core::Result<Tensor> {
    let rows = prefix + lens.iter().sum::<usize>();
    let (width, kv_width) = (h.heads * h.head_dim, h.kv_heads * h.head_dim);
    if q.dims2()? != (rows, width)
        || k.dims2()? != (rows, kv_width)
        || v.dims2()? != (rows, kv_width)
        || h.kv_heads == 0
        || !h.heads.is_multiple_of(h.kv_heads)
    {
        candle_core::bail!(
            "packed_attention: q {:?}, k {:?}, v {:?} do not fit {h:?} over a prefix of \
             {prefix} rows and sequences of {lens:?}",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let segments = packed_segments(prefix, lens);
    if !fusable(q, k, v) {
        candle_core::bail!(
            "packed_attention runs on the CPU in f32 (other devices: causal_attention per sequence)"
        );
    }
    fused(q, k, v, h, segments)
}

/// The segments of packed rows: the prefix on its own, then each sequence after it.
pub(super) fn packed_segments(prefix: usize, lens: &[usize]) -> Vec<Segment> {
    let mut segments = Vec::with_capacity(lens.len() + 1);
    if prefix > 0 {
        segments.push(Segment { queries: 0..prefix, keys: 0..prefix, prefix: 0 });
    }
    let mut start = prefix;
    for &len in lens.iter().filter(|&&len| len > 0) {
        segments.push(Segment { queries: start..start + len, keys: start..start + len, prefix });
        start += len;
    }
    segments
}

fn fusable(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    q.device().is_cpu() && [q, k, v].iter().all(|t| t.dtype() == DType::F32)
}

fn fused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    h: Heads,
    segments: Vec<Segment>,
) -> candle_core::Result<Tensor> {
    let op = FusedAttention { h, segments, lse: Mutex::new(None) };
    q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, op)
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

/// One sequence of a call: its queries are rows `queries` of q; its keys (and values) are
/// rows `0..prefix` of k (and v), if any, then rows `keys`. The queries are its last
/// positions.
#[derive(Clone, Debug)]
pub(super) struct Segment {
    queries: std::ops::Range<usize>,
    keys: std::ops::Range<usize>,
    prefix: usize,
}

impl Segment {
    fn key_count(&self) -> usize {
        self.prefix + self.keys.len()
    }

    /// The row of k (and v) that holds the segment's key `j`.
    fn key_row(&self, j: usize) -> usize {
        if j < self.prefix { j } else { self.keys.start + j - self.prefix }
    }
}

struct FusedAttention {
    h: Heads,
    segments: Vec<Segment>,
    /// Per (segment, head): each query's log-sum-exp of its scaled scores, kept by the
    /// forward pass for the backward pass.
    lse: Mutex<Option<Vec<Vec<f32>>>>,
}

/// One segment's inputs, read in row layout.
struct Rows<'a> {
    h: Heads,
    /// The segment's geometry as one sequence.
    c: Causal,
    /// The segment's query rows of q (or of the output or its gradient) start here.
    q_at: usize,
    /// Its keys and values as `[keys, kv_heads * hd]` rows: views into k and v, or copies
    /// where a prefix precedes its own rows.
    k: std::borrow::Cow<'a, [f32]>,
    v: std::borrow::Cow<'a, [f32]>,
}

impl<'a> Rows<'a> {
    fn new(h: Heads, s: &Segment, k: &'a [f32], v: &'a [f32]) -> Self {
        let kv_width = h.kv_heads * h.head_dim;
        let rows = |x: &'a [f32]| -> std::borrow::Cow<'a, [f32]> {
            let own = &x[s.keys.start * kv_width..s.keys.end * kv_width];
            if s.prefix == 0 {
                own.into()
            } else {
                [&x[..s.prefix * kv_width], own].concat().into()
            }
        };
        let c = h.causal(1, s.queries.len(), s.key_count() - s.queries.len());
        Rows { h, c, q_at: s.queries.start, k: rows(k), v: rows(v) }
    }

    /// Head `h` of the segment's rows of `x` (q, the output or its gradient): `[seq, hd]`.
    fn head<'x>(&self, x: &'x [f32], h: usize) -> Mat<'x> {
        let (hd, width) = (self.h.head_dim, self.h.heads * self.h.head_dim);
        let at = self.q_at * width + h * hd;
        Mat { data: &x[at..], rows: self.c.seq, cols: hd, rs: width, cs: 1 }
    }

    /// Key/value head `g` of the segment's keys (`which`: 0) or values (1): `[keys, hd]`.
    fn kv_head(&self, which: usize, g: usize) -> Mat<'_> {
        let hd = self.h.head_dim;
        let data = if which == 0 { &self.k } else { &self.v };
        let kv_width = self.h.kv_heads * hd;
        Mat { data: &data[g * hd..], rows: self.c.keys(), cols: hd, rs: kv_width, cs: 1 }
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
        let (q, k, v) =
            (f32_slice(qs, ql, NAME)?, f32_slice(ks, kl, NAME)?, f32_slice(vs, vl, NAME)?);
        let rows = ql.shape().dims2()?.0;
        let (out, lse) = attend(self.h, &self.segments, [q, k, v], rows);
        *self.lse.lock().expect("attention lse lock") = Some(lse);
        let width = self.h.heads * self.h.head_dim;
        Ok((CpuStorage::F32(out), Shape::from((rows, width))))
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
        let (dq, dk, dv) = with_cpu_f32s([q, k, v, out, grad], NAME, |[qd, kd, vd, o, g]| {
            Ok(attend_bwd(self.h, &self.segments, [qd, kd, vd, o, g], lse))
        })?;
        let device = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), device)?),
            Some(Tensor::from_vec(dk, k.shape(), device)?),
            Some(Tensor::from_vec(dv, v.shape(), device)?),
        ))
    }
}

/// Attention over `segments` of rows of `q` (`[rows, heads * hd]`), `k` and `v`
/// (`[kv_rows, kv_heads * hd]`, rotated already): the output `[rows, heads * hd]` and, per
/// (segment, head), each query's log-sum-exp for [`attend_bwd`].
pub(super) fn attend(
    h: Heads,
    segments: &[Segment],
    [q, k, v]: [&[f32]; 3],
    rows: usize,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let segs: Vec<Rows<'_>> = segments.iter().map(|s| Rows::new(h, s, k, v)).collect();
    let (hd, width) = (h.head_dim, h.heads * h.head_dim);
    // Each (segment, head) into its own `[seq, hd]` block, then into rows.
    let heads: Vec<(Vec<f32>, Vec<f32>)> = (0..segs.len() * h.heads)
        .into_par_iter()
        .map(|t| {
            let x = &segs[t / h.heads];
            let mut out = vec![0f32; x.c.seq * hd];
            let mut lse = vec![0f32; x.c.seq];
            kernel::forward(x, q, t % h.heads, &mut out, &mut lse);
            (out, lse)
        })
        .collect();
    let mut out = vec![0f32; rows * width];
    out.par_chunks_mut(width).enumerate().for_each(|(r, row)| {
        let (s, i) = owner(segments, r);
        for (hh, dst) in row.chunks_exact_mut(hd).enumerate() {
            dst.copy_from_slice(&heads[s * h.heads + hh].0[i * hd..(i + 1) * hd]);
        }
    });
    (out, heads.into_iter().map(|(_, lse)| lse).collect())
}

/// The gradients `(dq, dk, dv)` of [`attend`] from its inputs, its output `o`, the output's
/// gradient `g` and its log-sum-exps.
pub(super) fn attend_bwd(
    h: Heads,
    segments: &[Segment],
    [qd, kd, vd, o, g]: [&[f32]; 5],
    lse: &[Vec<f32>],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let segs: Vec<Rows<'_>> = segments.iter().map(|s| Rows::new(h, s, kd, vd)).collect();
    let (hd, group) = (h.head_dim, h.heads / h.kv_heads);
    // Per (segment, key/value head): dq of the group's query heads `[group, seq, hd]`,
    // and dk and dv `[keys, hd]` each, summed over those heads.
    let parts: Vec<[Vec<f32>; 3]> = (0..segs.len() * h.kv_heads)
        .into_par_iter()
        .map(|t| {
            let (s, kv) = (t / h.kv_heads, t % h.kv_heads);
            let x = &segs[s];
            let mut dq = vec![0f32; group * x.c.seq * hd];
            let (mut dk, mut dv) = (vec![0f32; x.c.keys() * hd], vec![0f32; x.c.keys() * hd]);
            let lse = &lse[s * h.heads..(s + 1) * h.heads];
            let grads = kernel::Grads { dq: &mut dq, dk: &mut dk, dv: &mut dv };
            kernel::backward(x, [qd, o, g], kv, lse, grads);
            [dq, dk, dv]
        })
        .collect();
    let (width, kv_width) = (h.heads * hd, h.kv_heads * hd);
    let mut dq = vec![0f32; qd.len()];
    dq.par_chunks_mut(width).enumerate().for_each(|(r, row)| {
        let (s, i) = owner(segments, r);
        for (hh, dst) in row.chunks_exact_mut(hd).enumerate() {
            let at = ((hh % group) * segs[s].c.seq + i) * hd;
            dst.copy_from_slice(&parts[s * h.kv_heads + hh / group][0][at..at + hd]);
        }
    });
    // dk and dv: a prefix's keys collect every segment's share.
    let gather = |which: usize| {
        let mut d = vec![0f32; kd.len()];
        for (s, seg) in segments.iter().enumerate() {
            for j in 0..seg.key_count() {
                let row = &mut d[seg.key_row(j) * kv_width..(seg.key_row(j) + 1) * kv_width];
                for (kv, dst) in row.chunks_exact_mut(hd).enumerate() {
                    let src = &parts[s * h.kv_heads + kv][which][j * hd..(j + 1) * hd];
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                }
            }
        }
        d
    };
    (dq, gather(1), gather(2))
}

/// The segment whose queries include row `r`, and `r`'s place among them.
fn owner(segments: &[Segment], r: usize) -> (usize, usize) {
    let s = segments.partition_point(|s| s.queries.end <= r);
    (s, r - segments[s].queries.start)
}

/// The per-(sequence, head) loops, compiled for AVX-512 or AVX2 with FMA when the CPU
/// has them (chosen at run time, like [`super::skinny`]); the products run on gemm.
mod kernel {
    use super::super::vexp::exp;
    use super::{Mat, Rows, sgemm_on};

    /// Query rows per tile: one GEMM computes a tile's scores against the keys it sees.
    const TILE: usize = 128;

    /// A (sequence, key/value head)'s gradient buffers: `dq [group, seq, hd]` for the
    /// group's query heads, `dk`, `dv` `[keys, hd]`.
    pub(super) struct Grads<'a> {
        pub dq: &'a mut [f32],
        pub dk: &'a mut [f32],
        pub dv: &'a mut [f32],
    }

    /// Head `h` of a segment whose queries are in `q`: `out [seq, hd]` and each query's
    /// log-sum-exp.
    pub(super) fn forward(x: &Rows<'_>, q: &[f32], h: usize, out: &mut [f32], lse: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { forward_avx512(x, q, h, out, lse) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                return unsafe { forward_avx2(x, q, h, out, lse) };
            }
        }
        forward_generic::<false>(x, q, h, out, lse)
    }

    /// Key/value head `kv` of a segment's backward pass, given `[q, o, g]` (the queries,
    /// the forward output and its gradient, each `[rows, heads * hd]`) and the log-sum-exps
    /// of the segment's heads.
    pub(super) fn backward(
        x: &Rows<'_>,
        qog: [&[f32]; 3],
        kv: usize,
        lse: &[Vec<f32>],
        d: Grads<'_>,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { backward_avx512(x, qog, kv, lse, d) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                return unsafe { backward_avx2(x, qog, kv, lse, d) };
            }
        }
        backward_generic::<false>(x, qog, kv, lse, d)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn forward_avx512(x: &Rows<'_>, q: &[f32], h: usize, out: &mut [f32], lse: &mut [f32]) {
        forward_generic::<true>(x, q, h, out, lse)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(x: &Rows<'_>, q: &[f32], h: usize, out: &mut [f32], lse: &mut [f32]) {
        forward_generic::<true>(x, q, h, out, lse)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn backward_avx512(
        x: &Rows<'_>,
        qog: [&[f32]; 3],
        kv: usize,
        lse: &[Vec<f32>],
        d: Grads<'_>,
    ) {
        backward_generic::<true>(x, qog, kv, lse, d)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn backward_avx2(
        x: &Rows<'_>,
        qog: [&[f32]; 3],
        kv: usize,
        lse: &[Vec<f32>],
        d: Grads<'_>,
    ) {
        backward_generic::<true>(x, qog, kv, lse, d)
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
        q: &[f32],
        h: usize,
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        let (c, hd) = (x.c, x.c.head_dim);
        let g = h / (c.heads / c.kv_heads);
        let (q, k, v) = (x.head(q, h), x.kv_head(0, g), x.kv_head(1, g));
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
        [q_all, o, g]: [&[f32]; 3],
        kv: usize,
        lse: &[Vec<f32>],
        d: Grads<'_>,
    ) {
        let (c, hd) = (x.c, x.c.head_dim);
        let group = c.heads / c.kv_heads;
        let (k, v) = (x.kv_head(0, kv), x.kv_head(1, kv));
        // Per tile: the probabilities P, and dP = dO V^T turned into dS = P (dP - rowsum(dO * O)).
        let (mut p, mut ds) = (vec![0f32; TILE * c.keys()], vec![0f32; TILE * c.keys()]);
        for h in kv * group..(kv + 1) * group {
            let (q, gh, oh) = (x.head(q_all, h), x.head(g, h), x.head(o, h));
            let lse = &lse[h];
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
