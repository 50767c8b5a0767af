//! The two halves of a Llama-style decoder block, each as one op, for training on the CPU:
//!
//! - attention: `x + o(attn(rope(q(n)), rope(k(n)), v(n)))` with `n = rms_norm(x)`;
//! - MLP: `x + down(silu(gate(n)) * up(n))` with `n = rms_norm(x)`;
//!
//! each projection a frozen weight (with an optional frozen bias) and an optional LoRA pair.
//!
//! Composed of the other ops, a half is six to nine nodes of candle's graph, and candle's
//! backward pass gives each node a zeroed gradient buffer and adds each gradient it
//! receives into it: passes over `[rows, hidden]` and `[rows, intermediate]` buffers that do
//! none of the model's arithmetic. Here the backward pass runs the chain itself (the input
//! gradients of the projections that share the norm's output are summed by gemm into one
//! buffer), and candle sees only the gradients of `x` and of the LoRA factors. The norm's
//! output and the MLP's activation are recomputed in the backward pass (one pass each)
//! instead of kept.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::attention::{Heads, Segment, attend, attend_bwd, packed_segments};
use super::{
    Frozen, Mat, RopeTables, f32_slice, lora_shapes, rms_norm_rows, rms_norm_rows_bwd, rotate_runs,
    sgemm, sgemm_into_cols, sgemm_new, swiglu, with_cpu_f32, with_cpu_f32s,
};

/// One projection of a block.
#[derive(Clone, Copy)]
pub struct Projection<'a> {
    /// `W [out, in]`.
    pub weight: &'a Frozen,
    /// `[out]`, frozen.
    pub bias: Option<&'a Tensor>,
    /// `(A [r, in], B [out, r])`, when the adapter targets the projection.
    pub lora: Option<(&'a Tensor, &'a Tensor)>,
}

/// The MLP half of a block: its norm and three projections.
#[derive(Clone, Copy)]
pub struct GatedMlp<'a> {
    /// The RMSNorm weight `[hidden]` before the MLP.
    pub norm: &'a Tensor,
    /// The norm's epsilon.
    pub eps: f64,
    pub gate: Projection<'a>,
    pub up: Projection<'a>,
    pub down: Projection<'a>,
    /// The adapters' `alpha / r`.
    pub scale: f64,
}

/// The attention half of a block: its norm, four projections, heads and rotation.
#[derive(Clone, Copy)]
pub struct SelfAttention<'a> {
    /// The RMSNorm weight `[hidden]` before attention.
    pub norm: &'a Tensor,
    /// The norm's epsilon.
    pub eps: f64,
    pub q: Projection<'a>,
    pub k: Projection<'a>,
    pub v: Projection<'a>,
    pub o: Projection<'a>,
    /// The adapters' `alpha / r`.
    pub scale: f64,
    pub heads: Heads,
    /// The rotation of queries and keys (rotating whole heads); `None`: no rotation.
    pub rope: Option<&'a RopeTables>,
}

/// Elements per parallel task of the element-wise passes.
const CHUNK: usize = 1 << 14;

/// `y += x`, in parallel chunks.
fn add_into(y: &mut [f32], x: &[f32]) {
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        y.iter_mut().zip(x).for_each(|(y, x)| *y += x);
    });
}

/// `x + down(silu(gate(rms_norm(x))) * up(rms_norm(x)))` for `x` `[rows, hidden]`,
/// differentiable with respect to `x` and the LoRA factors (never the frozen weights,
/// biases or norm). CPU and f32 only.
pub fn residual_gated_mlp(x: &Tensor, m: &GatedMlp<'_>) -> candle_core::Result<Tensor> {
    const NAME: &str = "gated-mlp";
    let (_, hidden) = x.dims2()?;
    let (n, h) = m.gate.weight.dims()?;
    let fits = h == hidden
        && m.up.weight.dims()? == (n, h)
        && m.down.weight.dims()? == (h, n)
        && m.norm.dims1()? == h;
    if !fits {
        candle_core::bail!(
            "{NAME}: x {:?}, norm {:?}, gate {:?}, up {:?} and down {:?} do not fit together",
            x.dims(),
            m.norm.dims(),
            m.gate.weight.dims()?,
            m.up.weight.dims()?,
            m.down.weight.dims()?
        );
    }
    let (proj, params) = Projections::new(NAME, x, &[&[m.gate, m.up], &[m.down]], m.scale)?;
    let op = GatedMlpOp {
        norm: Norm::new(m.norm, m.eps)?,
        proj,
        intermediate: n,
        saved: Mutex::new(None),
    };
    x.contiguous()?.apply_op2(&params, op)
}

/// `x + o(attention(rope(q(n)), rope(k(n)), v(n)))`, `n = rms_norm(x)`, for `x` in packed
/// rows (`[rows, hidden]`): `prefix` rows every sequence shares, then one sequence after
/// another (`lens` rows each), attending as [`super::attention::packed_attention`] does.
/// Differentiable with respect to `x` and the LoRA factors. CPU and f32 only.
pub fn residual_self_attention(
    x: &Tensor,
    a: &SelfAttention<'_>,
    prefix: usize,
    lens: &[usize],
) -> candle_core::Result<Tensor> {
    const NAME: &str = "self-attention";
    let (rows, hidden) = x.dims2()?;
    let h = a.heads;
    let (width, kv_width) = (h.heads * h.head_dim, h.kv_heads * h.head_dim);
    let fits = rows == prefix + lens.iter().sum::<usize>()
        && a.q.weight.dims()? == (width, hidden)
        && a.k.weight.dims()? == (kv_width, hidden)
        && a.v.weight.dims()? == (kv_width, hidden)
        && a.o.weight.dims()? == (hidden, width)
        && a.norm.dims1()? == hidden
        && h.kv_heads > 0
        && h.heads.is_multiple_of(h.kv_heads);
    if !fits {
        candle_core::bail!(
            "{NAME}: x {:?} (a prefix of {prefix} rows and sequences of {lens:?}), q {:?}, \
             k {:?}, v {:?} and o {:?} do not fit {h:?}",
            x.dims(),
            a.q.weight.dims()?,
            a.k.weight.dims()?,
            a.v.weight.dims()?,
            a.o.weight.dims()?
        );
    }
    let rope = match a.rope {
        Some(rope) if 2 * rope.cos.dim(1)? != h.head_dim => {
            candle_core::bail!("{NAME}: the rotation must cover whole heads")
        }
        Some(rope) => Some(rope.packed_rows(prefix, lens)?),
        None => None,
    };
    let (proj, params) = Projections::new(NAME, x, &[&[a.q, a.k, a.v], &[a.o]], a.scale)?;
    let op = SelfAttentionOp {
        norm: Norm::new(a.norm, a.eps)?,
        proj,
        heads: h,
        segments: packed_segments(prefix, lens),
        rope,
        saved: Mutex::new(None),
    };
    x.contiguous()?.apply_op2(&params, op)
}

/// An RMSNorm's weight and epsilon.
struct Norm {
    weight: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn new(weight: &Tensor, eps: f64) -> candle_core::Result<Self> {
        Ok(Norm { weight: with_cpu_f32(weight, "rms-norm", |w| Ok(w.to_vec()))?, eps: eps as f32 })
    }

    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; x.len()];
        rms_norm_rows(x, &self.weight, self.eps, &mut out);
        out
    }

    /// `dx = norm'(x) d + g`, the norm's input gradient plus the residual's `g`, written
    /// over `d`.
    fn backward_residual(&self, x: &[f32], mut d: Vec<f32>, g: &[f32]) -> Vec<f32> {
        rms_norm_rows_bwd(x, &mut d, &self.weight, self.eps);
        add_into(&mut d, g);
        d
    }
}

/// Where a projection's pair sits: its `B` at `b` in the flat parameters, its `A` as rows
/// `col..col + r` of its group's `A`s, and its `x A^T` as those columns of the group's.
#[derive(Clone, Copy, Debug)]
struct Pair {
    b: usize,
    r: usize,
    col: usize,
}

/// The pairs of a group of projections that share their input: their `A`s lie one after
/// another in the flat parameters (`[rank, in]` from `a`), so the group's `x A^T` is one
/// product.
#[derive(Clone, Copy, Debug)]
struct GroupPairs {
    a: usize,
    rank: usize,
}

/// The projections of one op, their pairs read from one flat parameter tensor (a custom
/// op takes at most three tensors), in groups that share their input (q, k and v; gate and
/// up).
struct Projections {
    w: Vec<Frozen>,
    bias: Vec<Option<Vec<f32>>>,
    lora: Vec<Option<Pair>>,
    groups: Vec<std::ops::Range<usize>>,
    group_pairs: Vec<Option<GroupPairs>>,
    scale: f32,
}

impl Projections {
    /// The projections (`groups` of them, each group sharing its input) and the flat tensor
    /// of their LoRA factors (per group, the `A`s of its projections with a pair, then their
    /// `B`s, flattened), checking device, dtype and shapes.
    fn new(
        op: &str,
        x: &Tensor,
        groups: &[&[Projection<'_>]],
        scale: f64,
    ) -> candle_core::Result<(Self, Tensor)> {
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            candle_core::bail!("{op} runs on the CPU in f32 (other devices: the composed ops)");
        }
        let mut proj = Projections {
            w: Vec::new(),
            bias: Vec::new(),
            lora: Vec::new(),
            groups: Vec::with_capacity(groups.len()),
            group_pairs: Vec::with_capacity(groups.len()),
            scale: scale as f32,
        };
        let (mut a_parts, mut b_parts) = (Vec::new(), Vec::new());
        let mut at = 0;
        for group in groups {
            let first = proj.w.len();
            let input = match group.first() {
                Some(p) => p.weight.dims()?.1,
                None => candle_core::bail!("{op}: an empty group of projections"),
            };
            let mut shapes = Vec::with_capacity(group.len());
            for p in *group {
                let (out, p_input) = p.weight.dims()?;
                if p_input != input {
                    candle_core::bail!(
                        "{op}: projections of {input} and {p_input} inputs share one"
                    );
                }
                proj.bias.push(match p.bias {
                    Some(b) if b.dims1()? != out => {
                        candle_core::bail!("{op}: a bias of {:?} for {out} outputs", b.dims())
                    }
                    Some(b) => Some(with_cpu_f32(b, "bias", |b| Ok(b.to_vec()))?),
                    None => None,
                });
                proj.w.push(p.weight.clone());
                shapes.push(match p.lora {
                    Some((a, b)) => {
                        if a.dtype() != DType::F32 || b.dtype() != DType::F32 {
                            candle_core::bail!("{op}: LoRA factors must be f32");
                        }
                        let (_, r) = lora_shapes((out, input), a, b)?;
                        a_parts.push(a.flatten_all()?);
                        b_parts.push(b.flatten_all()?);
                        Some((out, r))
                    }
                    None => None,
                });
            }
            let rank: usize = shapes.iter().flatten().map(|&(_, r)| r).sum();
            let (group_a, mut b_at, mut col) = (at, at + rank * input, 0);
            for shape in shapes {
                proj.lora.push(shape.map(|(out, r)| {
                    let pair = Pair { b: b_at, r, col };
                    (col, b_at) = (col + r, b_at + out * r);
                    pair
                }));
            }
            proj.group_pairs.push((rank > 0).then_some(GroupPairs { a: group_a, rank }));
            proj.groups.push(first..proj.w.len());
            at = b_at;
            // `A`s then `B`s of the group, in the order the offsets above assume.
            a_parts.append(&mut b_parts);
        }
        let params = if a_parts.is_empty() {
            Tensor::zeros(1, DType::F32, x.device())?
        } else {
            Tensor::cat(&a_parts, 0)?
        };
        Ok((proj, params))
    }

    fn has_pairs(&self) -> bool {
        self.lora.iter().any(Option::is_some)
    }

    /// Group `g`'s `A`s over `p`, the flat LoRA factors: `[rank, in]`.
    fn group_a<'a>(&self, g: usize, p: &'a [f32]) -> candle_core::Result<Option<Mat<'a>>> {
        let Some(gp) = self.group_pairs[g] else { return Ok(None) };
        let input = self.w[self.groups[g].start].dims()?.1;
        Ok(Some(Mat::new(&p[gp.a..gp.a + gp.rank * input], gp.rank, input)))
    }

    /// Projection `i`'s `B` over `p`: `[out, r]`.
    fn b<'a>(&self, i: usize, l: Pair, p: &'a [f32]) -> candle_core::Result<Mat<'a>> {
        let out = self.w[i].dims()?.0;
        Ok(Mat::new(&p[l.b..l.b + out * l.r], out, l.r))
    }

    /// Group `g`'s projections of their shared input `x` (`[rows, in]`): `x W^T + bias +
    /// scale * (x A^T) B^T` each (`[rows, out]`), and the group's `x A^T` (`[rows, rank]`,
    /// each pair's columns side by side) for the backward pass when it has pairs.
    fn forward(
        &self,
        g: usize,
        p: &[f32],
        x: Mat<'_>,
    ) -> candle_core::Result<(Vec<Vec<f32>>, Option<Vec<f32>>)> {
        let mut ys = Vec::with_capacity(self.groups[g].len());
        for i in self.groups[g].clone() {
            let out = self.w[i].dims()?.0;
            let mut y = self.w[i].cpu_product(x)?;
            if let Some(bias) = &self.bias[i] {
                y.par_chunks_mut(out)
                    .for_each(|row| row.iter_mut().zip(bias).for_each(|(y, b)| *y += b));
            }
            ys.push(y);
        }
        let Some(a) = self.group_a(g, p)? else { return Ok((ys, None)) };
        let u = sgemm_new(x, a.t(), 1.0);
        for (i, y) in self.groups[g].clone().zip(&mut ys) {
            let Some(l) = self.lora[i] else { continue };
            let u_i = Mat::new(&u[l.col..], x.rows, l.r).with_rs(a.rows);
            sgemm(y, true, u_i, self.b(i, l, p)?.t(), self.scale);
        }
        Ok((ys, Some(u)))
    }

    /// Group `g`'s backward pass from its outputs' gradients `grads` (`[rows, out]` each),
    /// their shared input `x` and the forward pass's `u`: the pairs' gradients into their
    /// place in `dp` (`dB = scale * g^T u`, and with `gu = scale * g B` side by side for the
    /// group, `dA = gu^T x`), and the input gradient `sum(g W) + gu A`.
    fn backward(
        &self,
        g: usize,
        p: &[f32],
        dp: &mut [f32],
        u: &Option<Vec<f32>>,
        grads: &[Mat<'_>],
        x: Mat<'_>,
    ) -> candle_core::Result<Vec<f32>> {
        let ids = self.groups[g].clone();
        let mut dx = self.w[ids.start].cpu_input_grad_new(grads[0])?;
        for (i, grad) in ids.clone().zip(grads).skip(1) {
            self.w[i].cpu_input_grad_add(&mut dx, *grad)?;
        }
        let (Some(a), Some(u)) = (self.group_a(g, p)?, u.as_deref()) else { return Ok(dx) };
        let (rows, rank) = (x.rows, a.rows);
        let mut gu = vec![0f32; rows * rank];
        for (i, grad) in ids.zip(grads) {
            let Some(l) = self.lora[i] else { continue };
            let b = self.b(i, l, p)?;
            let u_i = Mat::new(&u[l.col..], rows, l.r).with_rs(rank);
            sgemm(&mut dp[l.b..l.b + b.rows * l.r], false, grad.t(), u_i, self.scale);
            sgemm_into_cols(&mut gu[l.col..], rank, *grad, b, self.scale);
        }
        let gu = Mat::new(&gu, rows, rank);
        let a_at = self.group_pairs[g].map_or(0, |gp| gp.a);
        sgemm(&mut dp[a_at..a_at + rank * x.cols], false, gu.t(), x, 1.0);
        sgemm(&mut dx, true, gu, a, 1.0);
        Ok(dx)
    }

    /// An op's backward pass: `f` gets what the forward pass saved, `x`, the flat factors
    /// and the output's gradient, fills the factors' gradients `dp` and returns `dx`.
    fn backward_pass<S>(
        &self,
        op: &'static str,
        saved: &Mutex<Option<S>>,
        [x, params, grad]: [&Tensor; 3],
        f: impl FnOnce(&S, [&[f32]; 3], &mut [f32]) -> candle_core::Result<Vec<f32>>,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let saved = saved.lock().expect("block op lock");
        let Some(s) = saved.as_ref() else {
            candle_core::bail!("{op}: backward pass without a forward pass on the CPU")
        };
        let (x, params, grad) = (x.detach(), params.detach(), grad.detach().contiguous()?);
        let (dx, dp) = with_cpu_f32s([&x, &params, &grad], op, |inputs| {
            let mut dp = vec![0f32; params.elem_count()];
            Ok((f(s, inputs, &mut dp)?, dp))
        })?;
        let device = x.device();
        let dp = match self.has_pairs() {
            true => Some(Tensor::from_vec(dp, params.shape(), device)?),
            false => None,
        };
        Ok((Some(Tensor::from_vec(dx, x.shape(), device)?), dp))
    }
}

struct GatedMlpOp {
    norm: Norm,
    /// Gate and up, then down.
    proj: Projections,
    intermediate: usize,
    saved: Mutex<Option<MlpSaved>>,
}

/// What the MLP's forward pass keeps for the backward pass.
struct MlpSaved {
    gate: Vec<f32>,
    up: Vec<f32>,
    sigmoid: Vec<f32>,
    /// Each group's `x A^T`.
    u: [Option<Vec<f32>>; 2],
}

impl CustomOp2 for GatedMlpOp {
    fn name(&self) -> &'static str {
        "gated-mlp"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, p) = (f32_slice(xs, xl, self.name())?, f32_slice(ps, pl, self.name())?);
        let (h, n) = (self.norm.weight.len(), self.intermediate);
        let rows = x.len() / h.max(1);
        let normed = self.norm.forward(x);
        let normed = Mat::new(&normed, rows, h);
        let (gate_up, u_gate_up) = self.proj.forward(0, p, normed)?;
        let [gate, up] = <[Vec<f32>; 2]>::try_from(gate_up).expect("gate and up");
        let (mut sigmoid, mut act) = (vec![0f32; rows * n], vec![0f32; rows * n]);
        swiglu::forward_par(&gate, &up, &mut sigmoid, &mut act);
        let (down, u_down) = self.proj.forward(1, p, Mat::new(&act, rows, n))?;
        let mut y = down.into_iter().next().expect("down");
        add_into(&mut y, x);
        let u = [u_gate_up, u_down];
        *self.saved.lock().expect("mlp lock") = Some(MlpSaved { gate, up, sigmoid, u });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (h, n) = (self.norm.weight.len(), self.intermediate);
        let pass = [x, params, grad];
        self.proj.backward_pass(self.name(), &self.saved, pass, |s, [x, p, g], dp| {
            let rows = x.len() / h.max(1);
            let g = Mat::new(g, rows, h);
            // down, its input (the activation) recomputed.
            let mut act = vec![0f32; rows * n];
            act.par_chunks_mut(CHUNK).enumerate().for_each(|(c, act)| {
                let at = c * CHUNK..c * CHUNK + act.len();
                let (g, sg, u) = (&s.gate[at.clone()], &s.sigmoid[at.clone()], &s.up[at]);
                for i in 0..act.len() {
                    act[i] = g[i] * sg[i] * u[i];
                }
            });
            // The activation's gradient, then the gate's in its place.
            let down_in = Mat::new(&act, rows, n);
            let mut d_gate = self.proj.backward(1, p, dp, &s.u[1], &[g], down_in)?;
            drop(act);
            let mut d_up = vec![0f32; rows * n];
            swiglu::backward_par([&s.gate, &s.up, &s.sigmoid], &mut d_gate, &mut d_up);
            // gate and up: both input gradients into one buffer.
            let normed = self.norm.forward(x);
            let normed = Mat::new(&normed, rows, h);
            let grads = [Mat::new(&d_gate, rows, n), Mat::new(&d_up, rows, n)];
            let d_normed = self.proj.backward(0, p, dp, &s.u[0], &grads, normed)?;
            Ok(self.norm.backward_residual(x, d_normed, g.data))
        })
    }
}

struct SelfAttentionOp {
    norm: Norm,
    /// q, k and v, then o.
    proj: Projections,
    heads: Heads,
    segments: Vec<Segment>,
    /// `(cos, sin)` per row, `[rows, head_dim / 2]` each.
    rope: Option<(Vec<f32>, Vec<f32>)>,
    saved: Mutex<Option<AttentionSaved>>,
}

/// What the attention's forward pass keeps for the backward pass.
struct AttentionSaved {
    /// Rotated queries and keys, values, attention's output and its log-sum-exps.
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    out: Vec<f32>,
    lse: Vec<Vec<f32>>,
    /// Each group's `x A^T`.
    u: [Option<Vec<f32>>; 2],
}

impl SelfAttentionOp {
    /// Rows of `x` (`width` wide) rotated by each row's tables; `inverse` rotates back.
    fn rotate(&self, mut x: Vec<f32>, width: usize, inverse: bool) -> Vec<f32> {
        let Some((cos, sin)) = &self.rope else { return x };
        let rows = x.len() / width.max(1);
        rotate_runs(&mut x, [rows, self.heads.head_dim, width], [cos, sin], inverse);
        x
    }
}

impl CustomOp2 for SelfAttentionOp {
    fn name(&self) -> &'static str {
        "self-attention"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, p) = (f32_slice(xs, xl, self.name())?, f32_slice(ps, pl, self.name())?);
        let hn = &self.heads;
        let (h, width) = (self.norm.weight.len(), hn.heads * hn.head_dim);
        let kv_width = hn.kv_heads * hn.head_dim;
        let rows = x.len() / h.max(1);
        let normed = self.norm.forward(x);
        let normed = Mat::new(&normed, rows, h);
        let (qkv, u_qkv) = self.proj.forward(0, p, normed)?;
        let [q, k, v] = <[Vec<f32>; 3]>::try_from(qkv).expect("q, k and v");
        let (q, k) = (self.rotate(q, width, false), self.rotate(k, kv_width, false));
        let (out, lse) = attend(self.heads, &self.segments, [&q, &k, &v], rows);
        let (o, u_o) = self.proj.forward(1, p, Mat::new(&out, rows, width))?;
        let mut y = o.into_iter().next().expect("o");
        add_into(&mut y, x);
        let u = [u_qkv, u_o];
        *self.saved.lock().expect("attention lock") = Some(AttentionSaved { q, k, v, out, lse, u });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let hn = &self.heads;
        let (h, width) = (self.norm.weight.len(), hn.heads * hn.head_dim);
        let kv_width = hn.kv_heads * hn.head_dim;
        let pass = [x, params, grad];
        self.proj.backward_pass(self.name(), &self.saved, pass, |s, [x, p, g], dp| {
            let rows = x.len() / h.max(1);
            let g = Mat::new(g, rows, h);
            let out = Mat::new(&s.out, rows, width);
            let d_out = self.proj.backward(1, p, dp, &s.u[1], &[g], out)?;
            let inputs = [&s.q[..], &s.k, &s.v, &s.out, &d_out];
            let (dq, dk, dv) = attend_bwd(self.heads, &self.segments, inputs, &s.lse);
            drop(d_out);
            let (dq, dk) = (self.rotate(dq, width, true), self.rotate(dk, kv_width, true));
            let normed = self.norm.forward(x);
            let normed = Mat::new(&normed, rows, h);
            let grads = [
                Mat::new(&dq, rows, width),
                Mat::new(&dk, rows, kv_width),
                Mat::new(&dv, rows, kv_width),
            ];
            let d_normed = self.proj.backward(0, p, dp, &s.u[0], &grads, normed)?;
            Ok(self.norm.backward_residual(x, d_normed, g.data))
        })
    }
}
