//! `silu(gate) * up`, the gated MLP activation of the Llama-style families, as one op.
//!
//! Composed of candle ops it is two forward passes over `[rows, intermediate]` and, in the
//! backward pass, about a dozen more: candle differentiates silu as negate, exp, add,
//! reciprocal, two affines and three products, each a pass over the whole tensor with its
//! own allocation, and every gradient of the product is first added into a zeroed buffer.
//! Here the forward pass keeps `sigmoid(gate)` and the backward pass reads it back: one
//! pass each way.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::vexp::exp;
use super::{f32_slice, with_cpu_f32s};

/// `silu(gate) * up`, differentiable with respect to both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    if gate.shape() != up.shape() {
        candle_core::bail!("swiglu: gate {:?} and up {:?} differ", gate.dims(), up.dims());
    }
    let cpu_f32 = gate.device().is_cpu() && [gate, up].iter().all(|t| t.dtype() == DType::F32);
    if !cpu_f32 {
        return gate.silu()? * up;
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, Swiglu { sigmoid: Mutex::new(None) })
}

struct Swiglu {
    /// `sigmoid(gate)`, kept by the forward pass for the backward pass.
    sigmoid: Mutex<Option<Vec<f32>>>,
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

const NAME: &str = "swiglu";

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, u) = (f32_slice(gs, gl, NAME)?, f32_slice(us, ul, NAME)?);
        let (mut sig, mut out) = (vec![0f32; g.len()], vec![0f32; g.len()]);
        forward_par(g, u, &mut sig, &mut out);
        *self.sigmoid.lock().expect("swiglu lock") = Some(sig);
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let sig = self.sigmoid.lock().expect("swiglu lock");
        let Some(sig) = sig.as_deref() else {
            candle_core::bail!("{NAME}: backward pass without a forward pass on the CPU")
        };
        let (gate, up, grad) = (gate.detach(), up.detach(), grad.detach().contiguous()?);
        let (dg, du) = with_cpu_f32s([&gate, &up, &grad], NAME, |[g, u, d]| {
            let (mut dg, mut du) = (d.to_vec(), vec![0f32; g.len()]);
            backward_par([g, u, sig], &mut dg, &mut du);
            Ok((dg, du))
        })?;
        let (shape, device) = (gate.shape(), gate.device());
        Ok((Some(Tensor::from_vec(dg, shape, device)?), Some(Tensor::from_vec(du, shape, device)?)))
    }
}

/// `sig = sigmoid(g)`, `out = silu(g) u = g sig u`, in parallel chunks.
pub(super) fn forward_par(g: &[f32], u: &[f32], sig: &mut [f32], out: &mut [f32]) {
    sig.par_chunks_mut(CHUNK).zip(out.par_chunks_mut(CHUNK)).enumerate().for_each(
        |(c, (sig, out))| {
            let at = c * CHUNK..c * CHUNK + sig.len();
            forward(&g[at.clone()], &u[at], sig, out);
        },
    );
}

/// The gradients of `silu(g) u` with respect to `g` and `u` from the forward pass's
/// `sig = sigmoid(g)` and the output's gradient, which `dg` holds on entry and the gradient
/// of `g` on return; in parallel chunks.
pub(super) fn backward_par([g, u, sig]: [&[f32]; 3], dg: &mut [f32], du: &mut [f32]) {
    dg.par_chunks_mut(CHUNK).zip(du.par_chunks_mut(CHUNK)).enumerate().for_each(|(c, (dg, du))| {
        let at = c * CHUNK..c * CHUNK + dg.len();
        let (g, u, s) = (&g[at.clone()], &u[at.clone()], &sig[at]);
        // silu'(g) = s (1 + g (1 - s)).
        for i in 0..dg.len() {
            let d = dg[i];
            du[i] = d * g[i] * s[i];
            dg[i] = d * u[i] * s[i] * (1.0 + g[i] * (1.0 - s[i]));
        }
    });
}

/// `sig = sigmoid(g)`, `out = g sig u`, with the vector `exp` where the CPU has it.
fn forward(g: &[f32], u: &[f32], sig: &mut [f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { forward_avx2(g, u, sig, out) };
    }
    forward_generic::<false>(g, u, sig, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2(g: &[f32], u: &[f32], sig: &mut [f32], out: &mut [f32]) {
    forward_generic::<true>(g, u, sig, out)
}

#[inline(always)]
fn forward_generic<const FMA: bool>(g: &[f32], u: &[f32], sig: &mut [f32], out: &mut [f32]) {
    sig.iter_mut().zip(g).for_each(|(s, g)| *s = -g);
    exp::<FMA>(sig);
    for (((s, o), g), u) in sig.iter_mut().zip(out.iter_mut()).zip(g).zip(u) {
        *s = 1.0 / (1.0 + *s);
        *o = g * *s * u;
    }
}
