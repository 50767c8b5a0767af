//! A frozen weight kept quantized in memory: GGUF's `Q8_0` and `Q4_1` block layouts, and a
//! linear layer over it that dequantizes a tile of rows at a time inside the kernel.
//!
//! A LoRA fine-tune never updates the base weights, so they need not be fp32: at 8 bits a
//! weight takes 1.06 bytes instead of 4, at 4 bits 0.63. The products stay fp32 (the
//! activations are not quantized, unlike llama.cpp's dot products): `x W^T` and its input
//! gradient `dy W` walk W in tiles of rows, each dequantized into a small buffer and fed to
//! the same GEMM as the fp32 path, so the only difference from an fp32 base is the rounding
//! of the weights themselves.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use half::f16;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Mat, f32_slice, over_rows, sgemm, with_cpu_f32};

/// Values per block, in both formats.
pub const BLOCK: usize = 32;

/// How the frozen base weights are kept in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseQuant {
    /// fp32, as loaded.
    #[default]
    None,
    /// 8-bit blocks of 32 with an f16 scale (GGUF `Q8_0`, 8.5 bits per weight).
    #[serde(rename = "q8_0")]
    Q8_0,
    /// 4-bit blocks of 32 with an f16 scale and minimum (GGUF `Q4_1`, 5 bits per weight).
    #[serde(rename = "q4_1")]
    Q4_1,
}

impl BaseQuant {
    /// Bytes of one block of [`BLOCK`] values.
    fn block_bytes(self) -> usize {
        match self {
            BaseQuant::None => BLOCK * 4,
            BaseQuant::Q8_0 => 2 + BLOCK,
            BaseQuant::Q4_1 => 4 + BLOCK / 2,
        }
    }
}

/// A `[rows, cols]` matrix stored as blocks of [`BLOCK`] values along each row.
pub struct QuantMatrix {
    ty: BaseQuant,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for QuantMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuantMatrix({:?}, {}x{})", self.ty, self.rows, self.cols)
    }
}

impl QuantMatrix {
    /// Quantizes a row-major `[rows, cols]` matrix; `cols` must be a multiple of [`BLOCK`].
    pub fn quantize(
        w: &[f32],
        rows: usize,
        cols: usize,
        ty: BaseQuant,
    ) -> candle_core::Result<Self> {
        if ty == BaseQuant::None {
            candle_core::bail!("quantize: no quantized type given");
        }
        if !cols.is_multiple_of(BLOCK) || w.len() != rows * cols {
            candle_core::bail!(
                "quantize: a {rows}x{cols} matrix cannot be stored as {ty:?} (rows must be a \
                 multiple of {BLOCK} values)"
            );
        }
        let bb = ty.block_bytes();
        let mut data = vec![0u8; w.len() / BLOCK * bb];
        data.par_chunks_mut(bb).zip(w.par_chunks(BLOCK)).for_each(|(out, x)| match ty {
            BaseQuant::Q8_0 => {
                let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                for (o, v) in out[2..].iter_mut().zip(x) {
                    *o = (v * inv).round().clamp(-127.0, 127.0) as i8 as u8;
                }
            }
            BaseQuant::Q4_1 => {
                let min = x.iter().fold(f32::INFINITY, |m, v| m.min(*v));
                let max = x.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                let d = (max - min) / 15.0;
                let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                out[2..4].copy_from_slice(&f16::from_f32(min).to_le_bytes());
                let q = |v: f32| ((v - min) * inv).round().clamp(0.0, 15.0) as u8;
                // GGUF's nibble order: value j in the low half of byte j, j + 16 in the high.
                for j in 0..BLOCK / 2 {
                    out[4 + j] = q(x[j]) | (q(x[j + BLOCK / 2]) << 4);
                }
            }
            BaseQuant::None => unreachable!("checked above"),
        });
        Ok(Self { ty, rows, cols, data })
    }

    /// Quantizes a 2-D fp32 tensor.
    pub fn from_tensor(w: &Tensor, ty: BaseQuant) -> candle_core::Result<Self> {
        let (rows, cols) = w.dims2()?;
        with_cpu_f32(w, "quantize", |v| Self::quantize(v, rows, cols, ty))
    }

    /// `[rows, cols]`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Writes rows `start..start + out.len() / cols` as fp32 into `out`.
    pub fn dequantize_rows(&self, start: usize, out: &mut [f32]) {
        let bb = self.ty.block_bytes();
        let first = start * self.cols / BLOCK;
        let blocks = out.len() / BLOCK;
        let src = &self.data[first * bb..(first + blocks) * bb];
        for (x, b) in out.chunks_exact_mut(BLOCK).zip(src.chunks_exact(bb)) {
            let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
            match self.ty {
                BaseQuant::Q8_0 => {
                    for (x, q) in x.iter_mut().zip(&b[2..]) {
                        *x = d * (*q as i8) as f32;
                    }
                }
                BaseQuant::Q4_1 => {
                    let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
                    let (lo, hi) = x.split_at_mut(BLOCK / 2);
                    for ((l, h), q) in lo.iter_mut().zip(hi).zip(&b[4..]) {
                        *l = d * (q & 0x0f) as f32 + m;
                        *h = d * (q >> 4) as f32 + m;
                    }
                }
                BaseQuant::None => unreachable!("never stored"),
            }
        }
    }

    /// The whole matrix as an fp32 tensor (for merging and export).
    pub fn dequantize(&self, device: &candle_core::Device) -> candle_core::Result<Tensor> {
        let mut out = vec![0f32; self.rows * self.cols];
        out.par_chunks_mut(self.cols).enumerate().for_each(|(r, row)| self.dequantize_rows(r, row));
        Tensor::from_vec(out, (self.rows, self.cols), device)
    }

    /// Rows per tile: about 4 MiB of fp32 (few enough GEMM calls that their fixed cost stays
    /// small next to the arithmetic), at least one row.
    fn tile_rows(&self) -> usize {
        ((1 << 20) / self.cols.max(1)).clamp(1, self.rows.max(1))
    }

    /// Dequantizes rows `start..start + n` into `buf` (resized), in parallel.
    fn tile(&self, start: usize, n: usize, buf: &mut Vec<f32>) {
        buf.resize(n * self.cols, 0.0);
        buf.par_chunks_mut(self.cols).enumerate().for_each(|(r, row)| {
            self.dequantize_rows(start + r, row);
        });
    }

    /// `y = x W^T` for `x` `[m, cols]` (contiguous), `y` `[m, rows]`.
    pub(crate) fn product_into(&self, y: &mut [f32], x: &[f32], m: usize) {
        let (n, k) = (self.rows, self.cols);
        let (mut tile, mut part) = (vec![], vec![]);
        let step = self.tile_rows();
        for start in (0..n).step_by(step) {
            let t = step.min(n - start);
            self.tile(start, t, &mut tile);
            part.resize(m * t, 0.0);
            sgemm(&mut part, false, Mat::new(x, m, k), Mat::new(&tile, t, k).t(), 1.0);
            for (row, p) in y.chunks_exact_mut(n).zip(part.chunks_exact(t)) {
                row[start..start + t].copy_from_slice(p);
            }
        }
    }

    /// `dx = g W` (`dx += g W` with `accumulate`) for `g` `[m, rows]` (contiguous), `dx`
    /// `[m, cols]`.
    pub(crate) fn input_grad_into(&self, dx: &mut [f32], accumulate: bool, g: &[f32], m: usize) {
        let (n, k) = (self.rows, self.cols);
        let mut tile = vec![];
        let step = self.tile_rows();
        for start in (0..n).step_by(step) {
            let t = step.min(n - start);
            self.tile(start, t, &mut tile);
            // The columns `start..start + t` of g, without copying.
            let lhs = Mat { data: &g[start..], rows: m, cols: t, rs: n, cs: 1 };
            sgemm(dx, accumulate || start > 0, lhs, Mat::new(&tile, t, k), 1.0);
        }
    }
}

/// `x @ w^T` for a frozen quantized weight `w` (`[out, in]`); `x` is `[rows, in]`. The
/// backward pass returns only the gradient of `x`. CPU only.
pub fn quant_linear(x: &Tensor, w: &Arc<QuantMatrix>) -> candle_core::Result<Tensor> {
    let (out_dim, in_dim) = w.dims();
    if !x.device().is_cpu() {
        candle_core::bail!("quant_linear: a quantized base runs on the CPU only");
    }
    over_rows(x, in_dim, out_dim, "quant_linear", |x2| {
        x2.contiguous()?.apply_op1(QuantLinear { w: w.clone() })
    })
}

struct QuantLinear {
    w: Arc<QuantMatrix>,
}

impl CustomOp1 for QuantLinear {
    fn name(&self) -> &'static str {
        "quant-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "quant-linear")?;
        let m = l.shape().dims2()?.0;
        let n = self.w.rows;
        let mut y = vec![0f32; m * n];
        self.w.product_into(&mut y, x, m);
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(&self, _: &Tensor, _: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(grad.apply_op1_no_bwd(&QuantLinearBwd { w: self.w.clone() })?))
    }
}

/// `dy @ w`: the input gradient of [`QuantLinear`], tile by tile of W's rows.
struct QuantLinearBwd {
    w: Arc<QuantMatrix>,
}

impl CustomOp1 for QuantLinearBwd {
    fn name(&self) -> &'static str {
        "quant-linear-bwd"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dy = f32_slice(s, l, "quant-linear-bwd")?;
        let m = l.shape().dims2()?.0;
        let mut dx = vec![0f32; m * self.w.cols];
        self.w.input_grad_into(&mut dx, false, dy, m);
        Ok((CpuStorage::F32(dx), Shape::from((m, self.w.cols))))
    }
}
