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
    CpuLinear, Frozen, Mat, RopeTables, f32_slice, lora_shapes, rms_norm_rows, rms_norm_rows_bwd,
    rotate_runs, swiglu, with_cpu_f32, with_cpu_f32s,
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
    let (proj, params) = Projections::new(NAME, x, &[m.gate, m.up, m.down], m.scale)?;
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
    let (proj, params) = Projections::new(NAME, x, &[a.q, a.k, a.v, a.o], a.scale)?;
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

/// Where a projection's pair sits in the flat parameters: `A` at `a`, `B` at `b`.
#[derive(Clone, Copy, Debug)]
struct Pair {
    a: usize,
    b: usize,
    r: usize,
}

/// The projections of one op, their pairs read from one flat parameter tensor (a custom
/// op takes at most three tensors).
struct Projections {
    w: Vec<Frozen>,
    bias: Vec<Option<Vec<f32>>>,
    lora: Vec<Option<Pair>>,
    scale: f32,
}

impl Projections {
    /// The projections and the flat tensor of their LoRA factors (`A` then `B` of each
    /// projection with a pair, flattened), checking device, dtype and shapes.
    fn new(
        op: &str,
        x: &Tensor,
        ps: &[Projection<'_>],
        scale: f64,
    ) -> candle_core::Result<(Self, Tensor)> {
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            candle_core::bail!("{op} runs on the CPU in f32 (other devices: the composed ops)");
        }
        let mut parts = Vec::with_capacity(2 * ps.len());
        let (mut lora, mut bias) = (Vec::with_capacity(ps.len()), Vec::with_capacity(ps.len()));
        let mut at = 0;
        for p in ps {
            let (out, input) = p.weight.dims()?;
            bias.push(match p.bias {
                Some(b) if b.dims1()? != out => {
                    candle_core::bail!("{op}: a bias of {:?} for {out} outputs", b.dims())
                }
                Some(b) => Some(with_cpu_f32(b, "bias", |b| Ok(b.to_vec()))?),
                None => None,
            });
            lora.push(match p.lora {
                Some((a, b)) => {
                    if a.dtype() != DType::F32 || b.dtype() != DType::F32 {
                        candle_core::bail!("{op}: LoRA factors must be f32");
                    }
                    let (_, r) = lora_shapes((out, input), a, b)?;
                    parts.push(a.flatten_all()?);
                    parts.push(b.flatten_all()?);
                    at += r * input + out * r;
                    Some(Pair { a: at - r * input - out * r, b: at - out * r, r })
                }
                None => None,
            });
        }
        let params = if parts.is_empty() {
            Tensor::zeros(1, DType::F32, x.device())?
        } else {
            Tensor::cat(&parts, 0)?
        };
        let w = ps.iter().map(|p| p.weight.clone()).collect();
        Ok((Projections { w, bias, lora, scale: scale as f32 }, params))
    }

    fn has_pairs(&self) -> bool {
        self.lora.iter().any(Option::is_some)
    }

    /// Projection `i` over `p`, the flat LoRA factors.
    fn linear<'a>(&'a self, i: usize, p: &'a [f32]) -> candle_core::Result<CpuLinear<'a>> {
        let (out, input) = self.w[i].dims()?;
        let lora = self.lora[i].map(|l| {
            let a = Mat::new(&p[l.a..l.a + l.r * input], l.r, input);
            (a, Mat::new(&p[l.b..l.b + out * l.r], out, l.r))
        });
        Ok(CpuLinear { w: &self.w[i], lora, scale: self.scale })
    }

    /// Projection `i` of `x` (`[rows, in]`): `[rows, out]`, and its `x A^T` when it has a
    /// pair.
    fn forward(
        &self,
        i: usize,
        p: &[f32],
        x: Mat<'_>,
    ) -> candle_core::Result<(Vec<f32>, Option<Vec<f32>>)> {
        let out = self.w[i].dims()?.0;
        let (mut y, u) = self.linear(i, p)?.forward(x)?;
        if let Some(bias) = &self.bias[i] {
            y.par_chunks_mut(out)
                .for_each(|row| row.iter_mut().zip(bias).for_each(|(y, b)| *y += b));
        }
        Ok((y, u))
    }

    /// Projection `i`'s backward pass from its output's gradient `g` (`[rows, out]`) and
    /// input `x`: the input gradient added into `dx`, the pair's gradients into their place
    /// in `dp`.
    #[allow(clippy::too_many_arguments)]
    fn backward_into(
        &self,
        i: usize,
        p: &[f32],
        dp: &mut [f32],
        u: &Option<Vec<f32>>,
        dx: &mut [f32],
        g: Mat<'_>,
        x: Mat<'_>,
    ) -> candle_core::Result<()> {
        let pair = self.pair_grads(i, dp, u)?;
        self.linear(i, p)?.backward_into(dx, g, x, pair)
    }

    /// [`Projections::backward_into`] into a new input gradient.
    fn backward(
        &self,
        i: usize,
        p: &[f32],
        dp: &mut [f32],
        u: &Option<Vec<f32>>,
        g: Mat<'_>,
        x: Mat<'_>,
    ) -> candle_core::Result<Vec<f32>> {
        let pair = self.pair_grads(i, dp, u)?;
        self.linear(i, p)?.backward_new(g, x, pair)
    }

    /// Projection `i`'s forward `u` and its pair's gradients in `dp`, when it has a pair.
    fn pair_grads<'a>(
        &self,
        i: usize,
        dp: &'a mut [f32],
        u: &'a Option<Vec<f32>>,
    ) -> candle_core::Result<Option<(&'a [f32], &'a mut [f32], &'a mut [f32])>> {
        Ok(match (self.lora[i], u.as_deref()) {
            (Some(l), Some(u)) => {
                let out = self.w[i].dims()?.0;
                let (da, db) = dp[l.a..l.b + out * l.r].split_at_mut(l.b - l.a);
                Some((u, da, db))
            }
            _ => None,
        })
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
    /// Gate, up, down.
    proj: Projections,
    intermediate: usize,
    saved: Mutex<Option<MlpSaved>>,
}

/// What the MLP's forward pass keeps for the backward pass.
struct MlpSaved {
    gate: Vec<f32>,
    up: Vec<f32>,
    sigmoid: Vec<f32>,
    /// Each projection's `x A^T`.
    u: [Option<Vec<f32>>; 3],
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
        let (gate, u_gate) = self.proj.forward(0, p, normed)?;
        let (up, u_up) = self.proj.forward(1, p, normed)?;
        let (mut sigmoid, mut act) = (vec![0f32; rows * n], vec![0f32; rows * n]);
        swiglu::forward_par(&gate, &up, &mut sigmoid, &mut act);
        let (mut y, u_down) = self.proj.forward(2, p, Mat::new(&act, rows, n))?;
        add_into(&mut y, x);
        let u = [u_gate, u_up, u_down];
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
            let mut d_gate = self.proj.backward(2, p, dp, &s.u[2], g, Mat::new(&act, rows, n))?;
            drop(act);
            let mut d_up = vec![0f32; rows * n];
            swiglu::backward_par([&s.gate, &s.up, &s.sigmoid], &mut d_gate, &mut d_up);
            // gate and up: both input gradients into one buffer.
            let normed = self.norm.forward(x);
            let normed = Mat::new(&normed, rows, h);
            let (d_gate, d_up) = (Mat::new(&d_gate, rows, n), Mat::new(&d_up, rows, n));
            let mut d_normed = self.proj.backward(0, p, dp, &s.u[0], d_gate, normed)?;
            self.proj.backward_into(1, p, dp, &s.u[1], &mut d_normed, d_up, normed)?;
            Ok(self.norm.backward_residual(x, d_normed, g.data))
        })
    }
}

struct SelfAttentionOp {
    norm: Norm,
    /// q, k, v, o.
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
    /// Each projection's `x A^T`.
    u: [Option<Vec<f32>>; 4],
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
        let (q, u_q) = self.proj.forward(0, p, normed)?;
        let (k, u_k) = self.proj.forward(1, p, normed)?;
        let (v, u_v) = self.proj.forward(2, p, normed)?;
        let (q, k) = (self.rotate(q, width, false), self.rotate(k, kv_width, false));
        let (out, lse) = attend(self.heads, &self.segments, [&q, &k, &v], rows);
        let (mut y, u_o) = self.proj.forward(3, p, Mat::new(&out, rows, width))?;
        add_into(&mut y, x);
        let u = [u_q, u_k, u_v, u_o];
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
            let d_out = self.proj.backward(3, p, dp, &s.u[3], g, Mat::new(&s.out, rows, width))?;
            let inputs = [&s.q[..], &s.k, &s.v, &s.out, &d_out];
            let (dq, dk, dv) = attend_bwd(self.heads, &self.segments, inputs, &s.lse);
            drop(d_out);
            let (dq, dk) = (self.rotate(dq, width, true), self.rotate(dk, kv_width, true));
            let normed = self.norm.forward(x);
            let normed = Mat::new(&normed, rows, h);
            let (dq, dk) = (Mat::new(&dq, rows, width), Mat::new(&dk, rows, kv_width));
            let dv = Mat::new(&dv, rows, kv_width);
            let mut d_normed = self.proj.backward(0, p, dp, &s.u[0], dq, normed)?;
            self.proj.backward_into(1, p, dp, &s.u[1], &mut d_normed, dk, normed)?;
            self.proj.backward_into(2, p, dp, &s.u[2], &mut d_normed, dv, normed)?;
            Ok(self.norm.backward_residual(x, d_normed, g.data))
        })
    }
}
