//! Differentiable building blocks of the decoder: frozen linear, RMSNorm, RoPE, causal
//! softmax, fused causal attention ([`attention`]) and cross-entropy.
//!
//! Why these exist instead of candle-nn's: candle-nn's fused `rms_norm`, `softmax_last_dim`,
//! `rope*` and `sdpa` have no backward and silently drop gradients, and candle's `matmul`
//! backward computes (and keeps) a weight-sized gradient even for frozen weights. Each op
//! here is a candle custom op with a hand-written CPU kernel for the forward pass and an
//! analytic backward, so training takes one pass over memory per op and never computes a
//! gradient for a base weight.
//!
//! On devices other than the CPU the functions fall back to candle's composed
//! (differentiable) ops, or its fused ops when no gradient is needed, so CUDA builds stay
//! correct while the CPU path stays fast.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, DType, Layout, Shape, Storage, Tensor,
};
use rayon::prelude::*;

/// `x @ w^T` for a frozen weight `w` of shape `[out, in]`; `x` may have any leading dims.
///
/// The backward pass returns only the gradient of `x`.
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (out_dim, in_dim) = w.dims2()?;
    over_rows(x, in_dim, out_dim, "frozen_linear", |x2| x2.apply_op1(FrozenLinear { w: w.clone() }))
}

/// `f` applied to `x` (`[..., in_dim]`) seen as `[rows, in_dim]`; its `[rows, out_dim]`
/// result is given `x`'s leading dims back.
fn over_rows(
    x: &Tensor,
    in_dim: usize,
    out_dim: usize,
    op: &str,
    f: impl FnOnce(Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let last = *dims.last().unwrap_or(&0);
    if last != in_dim {
        candle_core::bail!("{op}: input has {last} features, weight expects {in_dim}");
    }
    let rows = x.elem_count() / in_dim.max(1);
    let y = f(x.reshape((rows, in_dim))?)?;
    let mut out_dims = dims;
    *out_dims.last_mut().expect("non-empty dims") = out_dim;
    y.reshape(out_dims)
}

struct FrozenLinear {
    w: Tensor,
}

fn frozen_matmul<S: BackendStorage>(
    x: &S,
    xl: &Layout,
    w: &S,
    wl: &Layout,
) -> candle_core::Result<(S, Shape)> {
    let (m, k) = xl.shape().dims2()?;
    let (n, k2) = wl.shape().dims2()?;
    if k != k2 {
        candle_core::bail!("frozen-linear: shape mismatch {k} vs {k2}")
    }
    let wt = wl.transpose(0, 1)?;
    let out = x.matmul(w, (1, m, n, k), xl, &wt)?;
    Ok((out, Shape::from((m, n))))
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (ws, wl) = self.w.storage_and_layout();
        let Storage::Cpu(w) = &*ws else {
            candle_core::bail!("frozen-linear: weight and input on different devices")
        };
        // A few rows (decoding): the band-parallel kernel that reads W once.
        let (m, k) = l.shape().dims2()?;
        let n = wl.shape().dims2()?.0;
        if let (CpuStorage::F32(x), CpuStorage::F32(wv), Some((x0, x1)), Some((w0, w1))) =
            (s, w, l.contiguous_offsets(), wl.contiguous_offsets())
            && m <= skinny::MAX_ROWS
        {
            let y = skinny::matmul_t(&x[x0..x1], &wv[w0..w1], m, n, k);
            return Ok((CpuStorage::F32(y), Shape::from((m, n))));
        }
        frozen_matmul(s, l, w, wl)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (ws, wl) = self.w.storage_and_layout();
        match &*ws {
            Storage::Cuda(w) => frozen_matmul(s, l, w, wl),
            _ => candle_core::bail!("frozen-linear: weight and input on different devices"),
        }
    }

    fn bwd(&self, _: &Tensor, _: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?))
    }
}

/// A frozen weight `[out, in]` under a LoRA pair: fp32, or quantized blocks
/// ([`quant::BaseQuant`]).
#[derive(Clone, Debug)]
pub enum Frozen {
    /// fp32.
    Dense(Tensor),
    /// Quantized blocks, dequantized tile by tile inside the kernels (CPU only).
    Quant(std::sync::Arc<quant::QuantMatrix>),
}

impl Frozen {
    /// `(out, in)`.
    pub fn dims(&self) -> candle_core::Result<(usize, usize)> {
        match self {
            Frozen::Dense(w) => w.dims2(),
            Frozen::Quant(w) => Ok(w.dims()),
        }
    }

    /// `x W^T`, differentiable with respect to `x` only.
    pub fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Frozen::Dense(w) => frozen_linear(x, w),
            Frozen::Quant(w) => quant::quant_linear(x, w),
        }
    }

    /// The weight in fp32 (dequantized when stored quantized).
    pub fn dense(&self, device: &candle_core::Device) -> candle_core::Result<Tensor> {
        match self {
            Frozen::Dense(w) => Ok(w.clone()),
            Frozen::Quant(w) => w.dequantize(device),
        }
    }

    /// `x W^T` (`[rows, out]`) on the CPU, `x` `[rows, in]`.
    fn cpu_product(&self, x: Mat<'_>) -> candle_core::Result<Vec<f32>> {
        match self {
            Frozen::Dense(w) => with_cpu_f32(w, "lora-linear", |w| {
                Ok(sgemm_new(x, Mat::new(w, w.len() / x.cols.max(1), x.cols).t(), 1.0))
            }),
            Frozen::Quant(w) => {
                let mut y = vec![0f32; x.rows * w.dims().0];
                w.product_into(&mut y, x.data, x.rows);
                Ok(y)
            }
        }
    }

    /// `g W` (`[rows, in]`) on the CPU, `g` `[rows, out]`.
    fn cpu_input_grad_new(&self, g: Mat<'_>) -> candle_core::Result<Vec<f32>> {
        match self {
            Frozen::Dense(w) => with_cpu_f32(w, "lora-linear-bwd", |w| {
                Ok(sgemm_new(g, Mat::new(w, g.cols, w.len() / g.cols.max(1)), 1.0))
            }),
            Frozen::Quant(w) => {
                let mut dx = vec![0f32; g.rows * w.dims().1];
                w.input_grad_into(&mut dx, false, g.data, g.rows);
                Ok(dx)
            }
        }
    }

    /// `dx += g W` on the CPU, `g` `[rows, out]`, `dx` `[rows, in]`.
    fn cpu_input_grad_add(&self, dx: &mut [f32], g: Mat<'_>) -> candle_core::Result<()> {
        match self {
            Frozen::Dense(w) => with_cpu_f32(w, "lora-linear-bwd", |w| {
                sgemm(dx, true, g, Mat::new(w, g.cols, dx.len() / g.rows.max(1)), 1.0);
                Ok(())
            }),
            Frozen::Quant(w) => {
                w.input_grad_into(dx, true, g.data, g.rows);
                Ok(())
            }
        }
    }
}

/// `(out, r)` of a frozen weight `W [out, in]` with a LoRA pair `A [r, in]`, `B [out, r]`,
/// or an error naming the three shapes when they do not fit together.
fn lora_shapes(w: (usize, usize), a: &Tensor, b: &Tensor) -> candle_core::Result<(usize, usize)> {
    let (out_dim, in_dim) = w;
    let (r, a_in) = a.dims2()?;
    if b.dims2()? != (out_dim, r) || a_in != in_dim {
        candle_core::bail!(
            "lora_linear: W {:?}, A {:?} and B {:?} do not fit together",
            [out_dim, in_dim],
            a.dims(),
            b.dims()
        );
    }
    Ok((out_dim, r))
}

/// One projection of a decode step for [`linear_few_rows`]: a frozen fp32 weight
/// `W [out, in]`, with a LoRA pair `A [r, in]`, `B [out, r]` and its scale if adapted.
pub struct FewRowsProj<'a> {
    pub w: &'a Tensor,
    pub lora: Option<(&'a Tensor, &'a Tensor, f64)>,
}

/// `x W_i^T + scale_i * (x A_i^T) B_i^T` for projections that share a few rows of `x`
/// (`[rows, in]`), for inference on the CPU, no gradient: a decode step, where candle ops
/// and a dispatch to the threads per product cost more than the arithmetic. Every `W_i`
/// and `A_i` is read in one parallel pass of the few-row kernel; the `B_i` products (rank
/// `r` inner dimension) run on the calling thread.
pub fn linear_few_rows(x: &Tensor, projs: &[FewRowsProj<'_>]) -> candle_core::Result<Vec<Tensor>> {
    let (rows, k) = x.dims2()?;
    let mut tensors = vec![x];
    for p in projs {
        if let Some((a, b, _)) = p.lora {
            lora_shapes(p.w.dims2()?, a, b)?;
        }
        if p.w.dims2()?.1 != k {
            candle_core::bail!("linear_few_rows: x {:?} does not fit W {:?}", x.dims(), p.w.dims());
        }
        tensors.push(p.w);
    }
    tensors.extend(projs.iter().filter_map(|p| p.lora.map(|(a, _, _)| a)));
    tensors.extend(projs.iter().filter_map(|p| p.lora.map(|(_, b, _)| b)));
    let ys = with_cpu_f32_list(&tensors, "linear-few-rows", |s| {
        let (x, rest) = s.split_first().expect("x comes first");
        let (ws, rest) = rest.split_at(projs.len());
        let (a_s, b_s) = rest.split_at(rest.len() / 2);
        let firsts: Vec<&[f32]> = ws.iter().chain(a_s).copied().collect();
        let mut outs = skinny::matmul_t_many(x, &firsts, rows, k);
        let lows = outs.split_off(projs.len());
        let adapted = projs.iter().enumerate().filter_map(|(i, p)| p.lora.map(|l| (i, l.2)));
        for (((i, scale), low), b) in adapted.zip(&lows).zip(b_s) {
            let y = &mut outs[i];
            let (n, r) = (y.len() / rows, low.len() / rows);
            let delta = skinny::matmul_t_here(low, b, rows, n, r);
            let scale = scale as f32;
            for (y, d) in y.iter_mut().zip(&delta) {
                *y += scale * d;
            }
        }
        Ok(outs)
    })?;
    ys.into_iter()
        .map(|y| {
            let n = y.len() / rows;
            Tensor::from_vec(y, (rows, n), x.device())
        })
        .collect()
}

/// `x W^T + scale * (x A^T) B^T`: a frozen weight `W [out, in]` with a LoRA pair
/// `A [r, in]`, `B [out, r]`; `x` may have any leading dims.
///
/// On the CPU this is one op: the forward pass accumulates both products into one output
/// buffer and keeps nothing but its inputs, and the backward pass returns the gradients of
/// `x`, `A` and `B` (never of `W`). Composed of candle ops, the same computation would keep
/// four `[rows, out]` intermediates per projection alive until the backward pass.
pub fn lora_linear(
    x: &Tensor,
    w: &Frozen,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
) -> candle_core::Result<Tensor> {
    let in_dim = w.dims()?.1;
    let (out_dim, _) = lora_shapes(w.dims()?, a, b)?;
    let on_cpu = x.device().is_cpu() && x.dtype() == DType::F32 && a.dtype() == DType::F32;
    if !on_cpu {
        let low = x.broadcast_matmul(&a.t()?)?.broadcast_matmul(&(b * scale)?.t()?)?;
        return w.apply(x)? + low;
    }
    let dims = x.dims().to_vec();
    let rows = x.elem_count() / in_dim.max(1);
    let x2 = x.reshape((rows, in_dim))?.contiguous()?;
    let y = x2.apply_op3(
        &a.contiguous()?,
        &b.contiguous()?,
        LoraLinear { w: w.clone(), scale: scale as f32, u: Mutex::new(None) },
    )?;
    let mut out_dims = dims;
    *out_dims.last_mut().expect("non-empty dims") = out_dim;
    y.reshape(out_dims)
}

struct LoraLinear {
    w: Frozen,
    scale: f32,
    /// `x A^T` (`[rows, r]`), kept by the forward pass for the backward pass.
    u: Mutex<Option<Vec<f32>>>,
}

/// A row-major view of a matrix for [`sgemm`]: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose, without moving data.
    fn t(self) -> Self {
        Mat { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    /// The same matrix with rows `rs` elements apart (a block of columns of a wider one).
    fn with_rs(self, rs: usize) -> Self {
        Mat { rs, ..self }
    }

    /// Rows `range` of the matrix, without moving data.
    fn rows(self, range: std::ops::Range<usize>) -> Self {
        let data =
            if range.is_empty() { &self.data[..0] } else { &self.data[range.start * self.rs..] };
        Mat { data, rows: range.len(), ..self }
    }
}

/// `dst = (dst if accumulate) + alpha * lhs @ rhs` for a contiguous row-major `dst`, on
/// candle's GEMM with its thread count.
fn sgemm(dst: &mut [f32], accumulate: bool, lhs: Mat<'_>, rhs: Mat<'_>, alpha: f32) {
    sgemm_on(candle_core::utils::get_num_threads(), dst, accumulate, lhs, rhs, alpha)
}

/// [`sgemm`] on `threads` threads (1: on the calling thread, for callers that are already
/// parallel).
fn sgemm_on(
    threads: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    alpha: f32,
) {
    assert_eq!(dst.len(), lhs.rows * rhs.cols, "sgemm: destination size");
    // SAFETY: `dst` holds the `m * n` elements.
    unsafe { sgemm_ptr(threads, dst.as_mut_ptr(), rhs.cols, accumulate, lhs, rhs, alpha) }
}

/// `dst = alpha * lhs @ rhs` into the first `rhs.cols` columns of a row-major matrix whose
/// rows are `dst_rs` elements apart (a block of columns of a wider matrix).
fn sgemm_into_cols(dst: &mut [f32], dst_rs: usize, lhs: Mat<'_>, rhs: Mat<'_>, alpha: f32) {
    let (m, n) = (lhs.rows, rhs.cols);
    assert!(n <= dst_rs, "sgemm: {n} columns in rows of {dst_rs}");
    assert!(m == 0 || (m - 1) * dst_rs + n <= dst.len(), "sgemm: destination size");
    let threads = candle_core::utils::get_num_threads();
    // SAFETY: `dst` holds the `m` rows of `n` elements, `dst_rs` apart (checked above).
    unsafe { sgemm_ptr(threads, dst.as_mut_ptr(), dst_rs, false, lhs, rhs, alpha) }
}

/// `alpha * lhs @ rhs` as a new row-major vector, which gemm writes without its memory
/// being zeroed first (zeroing is a pass over memory the allocator recycles).
fn sgemm_new(lhs: Mat<'_>, rhs: Mat<'_>, alpha: f32) -> Vec<f32> {
    let len = lhs.rows * rhs.cols;
    let mut dst = Vec::with_capacity(len);
    // SAFETY: the capacity holds `m * n` elements; without `accumulate`, gemm (and the
    // `k == 0` case of `sgemm_ptr`) writes every one of them and reads none, so all are
    // initialised when the length is set.
    unsafe {
        sgemm_ptr(
            candle_core::utils::get_num_threads(),
            dst.as_mut_ptr(),
            rhs.cols,
            false,
            lhs,
            rhs,
            alpha,
        );
        dst.set_len(len);
    }
    dst
}

/// [`sgemm_on`] into `m = lhs.rows` rows of `n = rhs.cols` elements at `dst`, `dst_rs`
/// elements apart.
///
/// # Safety
/// `dst` must be valid for writing those elements (and for reading them with
/// `accumulate`).
unsafe fn sgemm_ptr(
    threads: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    alpha: f32,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "sgemm: inner dimensions differ");
    for x in [lhs, rhs] {
        if x.rows > 0 && x.cols > 0 {
            assert!((x.rows - 1) * x.rs + (x.cols - 1) * x.cs < x.data.len(), "sgemm: view");
        }
    }
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                // SAFETY: the caller's `dst` holds `m` rows of `n` elements, `dst_rs` apart.
                unsafe { std::ptr::write_bytes(dst.add(row * dst_rs), 0, n) };
            }
        }
        return;
    }
    let parallelism =
        if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: every index the kernel reads is inside `lhs.data` / `rhs.data` (checked
    // above for the last element; strides are non-negative) and it writes exactly the
    // `m` rows of `n` elements at `dst`, reading them only with `accumulate`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        )
    }
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "lora-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        as_: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, in_dim) = xl.shape().dims2()?;
        let (r, _) = al.shape().dims2()?;
        let (out_dim, _) = bl.shape().dims2()?;
        let x = Mat::new(f32_slice(xs, xl, "lora-linear")?, rows, in_dim);
        let a = Mat::new(f32_slice(as_, al, "lora-linear")?, r, in_dim);
        let b = Mat::new(f32_slice(bs, bl, "lora-linear")?, out_dim, r);
        let lin = CpuLinear { w: &self.w, lora: Some((a, b)), scale: self.scale };
        let (y, u) = lin.forward(x)?;
        *self.u.lock().expect("lora u lock") = u;
        Ok((CpuStorage::F32(y), Shape::from((rows, out_dim))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Detached: `A` and `B` are variables, and gradients built from tracked tensors
        // would keep the whole backward graph alive inside the gradient store.
        let (x, a, b, grad) = (x.detach(), a.detach(), b.detach(), grad.detach().contiguous()?);
        let u = self.u.lock().expect("lora u lock");
        let Some(u) = u.as_deref() else {
            candle_core::bail!("lora-linear: backward pass without a forward pass on the CPU")
        };
        self.cpu_bwd(&x, &a, &b, &grad, u)
    }
}

impl LoraLinear {
    /// The backward pass on the CPU from the forward pass's `u = x A^T`: every product on
    /// gemm with the scale folded in, no intermediate tensors.
    fn cpu_bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        grad: &Tensor,
        u: &[f32],
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let ((rows, in_dim), (r, _), (out_dim, _)) = (x.dims2()?, a.dims2()?, b.dims2()?);
        let op = "lora-linear-bwd";
        let (mut da, mut db) = (vec![0f32; r * in_dim], vec![0f32; out_dim * r]);
        let dx = with_cpu_f32s([x, a, b, grad], op, |[xs, as_, bs, gs]| {
            let (x, a) = (Mat::new(xs, rows, in_dim), Mat::new(as_, r, in_dim));
            let (b, g) = (Mat::new(bs, out_dim, r), Mat::new(gs, rows, out_dim));
            let lin = CpuLinear { w: &self.w, lora: Some((a, b)), scale: self.scale };
            lin.backward_new(g, x, Some((u, &mut da, &mut db)))
        })?;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (rows, in_dim), device)?),
            Some(Tensor::from_vec(da, (r, in_dim), device)?),
            Some(Tensor::from_vec(db, (out_dim, r), device)?),
        ))
    }
}

/// A frozen weight `W [out, in]` with an optional LoRA pair `A [r, in]`, `B [out, r]`, on
/// the CPU: the products of its forward and backward passes, shared by the LoRA op and the
/// fused MLP ([`mlp`]).
struct CpuLinear<'a> {
    w: &'a Frozen,
    lora: Option<(Mat<'a>, Mat<'a>)>,
    scale: f32,
}

impl CpuLinear<'_> {
    /// `y = x W^T + scale * (x A^T) B^T` for `x` `[rows, in]`, and `u = x A^T`
    /// (`[rows, r]`) for the backward pass when there is a pair.
    fn forward(&self, x: Mat<'_>) -> candle_core::Result<(Vec<f32>, Option<Vec<f32>>)> {
        let mut y = self.w.cpu_product(x)?;
        let Some((a, b)) = self.lora else { return Ok((y, None)) };
        let u = sgemm_new(x, a.t(), 1.0);
        sgemm(&mut y, true, Mat::new(&u, x.rows, a.rows), b.t(), self.scale);
        Ok((y, Some(u)))
    }

    /// From the output's gradient `g` (`[rows, out]`): `dx = g W + scale * (g B) A`, and
    /// with a pair, given the forward pass's `u`, `dA` and `dB` (overwritten):
    /// `dB = scale * g^T u`, `dA = scale * (g B)^T x`.
    fn backward_new(
        &self,
        g: Mat<'_>,
        x: Mat<'_>,
        pair_grads: Option<(&[f32], &mut [f32], &mut [f32])>,
    ) -> candle_core::Result<Vec<f32>> {
        let mut dx = self.w.cpu_input_grad_new(g)?;
        self.pair_backward(&mut dx, g, x, pair_grads);
        Ok(dx)
    }

    /// The pair's share of the backward pass: `dx += scale * (g B) A`, `dA`, `dB`.
    fn pair_backward(
        &self,
        dx: &mut [f32],
        g: Mat<'_>,
        x: Mat<'_>,
        pair_grads: Option<(&[f32], &mut [f32], &mut [f32])>,
    ) {
        let (Some((a, b)), Some((u, da, db))) = (self.lora, pair_grads) else { return };
        let (rows, r) = (g.rows, a.rows);
        let gu = sgemm_new(g, b, self.scale);
        let gu = Mat::new(&gu, rows, r);
        sgemm(db, false, g.t(), Mat::new(u, rows, r), self.scale);
        sgemm(da, false, gu.t(), x, 1.0);
        sgemm(dx, true, gu, a, 1.0);
    }
}

/// Reads a contiguous f32 CPU storage as a slice.
fn f32_slice<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &'static str,
) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => Err(candle_core::Error::RequiresContiguous { op }),
    }
}

fn with_cpu_f32<T>(
    t: &Tensor,
    op: &'static str,
    f: impl FnOnce(&[f32]) -> candle_core::Result<T>,
) -> candle_core::Result<T> {
    with_cpu_f32s([t], op, |[t]| f(t))
}

/// [`with_cpu_f32`] over several tensors at once.
fn with_cpu_f32s<const N: usize, T>(
    ts: [&Tensor; N],
    op: &'static str,
    f: impl FnOnce([&[f32]; N]) -> candle_core::Result<T>,
) -> candle_core::Result<T> {
    with_cpu_f32_list(&ts, op, |s| f(s.try_into().expect("one slice per tensor")))
}

/// [`with_cpu_f32`] over a list of tensors.
fn with_cpu_f32_list<T>(
    ts: &[&Tensor],
    op: &'static str,
    f: impl FnOnce(&[&[f32]]) -> candle_core::Result<T>,
) -> candle_core::Result<T> {
    let ts = ts.iter().map(|t| t.contiguous()).collect::<candle_core::Result<Vec<_>>>()?;
    let storages: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(ts.len());
    for (s, l) in &storages {
        match &**s {
            Storage::Cpu(s) => slices.push(f32_slice(s, l, op)?),
            _ => candle_core::bail!("{op}: expected a cpu tensor"),
        }
    }
    f(&slices)
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x^2) + eps) * w`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let weight = with_cpu_f32(w, "rms-norm", |w| Ok(w.to_vec()))?;
        x.contiguous()?.apply_op1(RmsNorm { weight, eps: eps as f32 })
    } else if x.track_op() {
        candle_nn::ops::rms_norm_slow(x, w, eps as f32)
    } else {
        candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)
    }
}

struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "rms-norm")?;
        let mut out = vec![0f32; x.len()];
        rms_norm_rows(x, &self.weight, self.eps, &mut out);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(x.apply_op2_no_bwd(&grad, &RmsNormBwd { weight: &self.weight, eps: self.eps })?))
    }
}

struct RmsNormBwd<'a> {
    weight: &'a [f32],
    eps: f32,
}

impl CustomOp2 for RmsNormBwd<'_> {
    fn name(&self) -> &'static str {
        "rms-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(xs, xl, "rms-norm-bwd")?;
        let g = f32_slice(gs, gl, "rms-norm-bwd")?;
        let mut out = g.to_vec();
        rms_norm_rows_bwd(x, &mut out, self.weight, self.eps);
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

/// `out = x / sqrt(mean(x^2) + eps) * w` for each row of `x` (rows as wide as `w`).
fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    out.par_chunks_mut(n).zip(x.par_chunks(n)).for_each(|(o, x)| {
        let ms = x.iter().map(|v| v * v).sum::<f32>() / n as f32;
        let r = 1.0 / (ms + eps).sqrt();
        for ((o, x), w) in o.iter_mut().zip(x).zip(w) {
            *o = x * r * w;
        }
    });
}

/// The gradient of [`rms_norm_rows`] with respect to `x`, written over the output's
/// gradient `g`.
fn rms_norm_rows_bwd(x: &[f32], g: &mut [f32], w: &[f32], eps: f32) {
    let n = w.len();
    g.par_chunks_mut(n).zip(x.par_chunks(n)).for_each(|(g, x)| {
        let ms = x.iter().map(|v| v * v).sum::<f32>() / n as f32;
        let r = 1.0 / (ms + eps).sqrt();
        let dot: f32 = x.iter().zip(g.iter()).zip(w).map(|((x, g), w)| x * g * w).sum();
        let c = r * r * r * dot / n as f32;
        for ((g, x), w) in g.iter_mut().zip(x).zip(w) {
            *g = r * *g * w - x * c;
        }
    });
}

/// Rotary position embedding tables in the Hugging Face "rotate half" layout.
///
/// The tables may be narrower than a head (partial rotary embedding, Phi-4-mini): then
/// only the first `2 * cos.dim(1)` dimensions of each head are rotated and the rest pass
/// through. With LongRoPE (Phi-3) a second pair of tables holds the long-context rotation,
/// used by a pass whose last position reaches past the pretraining context.
#[derive(Clone, Debug)]
pub struct RopeTables {
    /// `[max_positions, rotary_dim / 2]`
    pub cos: Tensor,
    /// `[max_positions, rotary_dim / 2]`
    pub sin: Tensor,
    /// LongRoPE's long tables (same shape) and the pretraining context: a pass ending past
    /// it uses them for all its positions, like transformers' `longrope_frequency_update`.
    pub long: Option<(Tensor, Tensor, usize)>,
}

/// `(cos, sin)` of `inv_freq` at positions `0..max_positions`, times `factor`.
fn rope_tables(
    inv_freq: &[f32],
    factor: f32,
    max_positions: usize,
    device: &candle_core::Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let half = inv_freq.len();
    let mut cos = Vec::with_capacity(max_positions * half);
    let mut sin = Vec::with_capacity(max_positions * half);
    for p in 0..max_positions {
        for f in inv_freq {
            // fp32 like transformers, so the tables match its logits bit for bit.
            let angle = p as f32 * f;
            cos.push(angle.cos() * factor);
            sin.push(angle.sin() * factor);
        }
    }
    Ok((
        Tensor::from_vec(cos, (max_positions, half), device)?,
        Tensor::from_vec(sin, (max_positions, half), device)?,
    ))
}

impl RopeTables {
    /// Builds the tables from per-pair inverse frequencies.
    pub fn new(
        inv_freq: &[f32],
        max_positions: usize,
        device: &candle_core::Device,
    ) -> candle_core::Result<Self> {
        let (cos, sin) = rope_tables(inv_freq, 1.0, max_positions, device)?;
        Ok(Self { cos, sin, long: None })
    }

    /// Tables with cos and sin multiplied by `factor` (LongRoPE's attention factor) and,
    /// with `long = (inv_freq, original_max)`, LongRoPE's long-context tables.
    pub fn scaled(
        inv_freq: &[f32],
        factor: f32,
        long: Option<(&[f32], usize)>,
        max_positions: usize,
        device: &candle_core::Device,
    ) -> candle_core::Result<Self> {
        let (cos, sin) = rope_tables(inv_freq, factor, max_positions, device)?;
        let long = match long {
            Some((f, original)) => {
                let (c, s) = rope_tables(f, factor, max_positions, device)?;
                Some((c, s, original))
            }
            None => None,
        };
        Ok(Self { cos, sin, long })
    }

    /// The `(cos, sin)` of a pass whose last position is `end - 1`.
    pub fn for_end(&self, end: usize) -> (&Tensor, &Tensor) {
        match &self.long {
            Some((cos, sin, original)) if end > *original => (cos, sin),
            _ => (&self.cos, &self.sin),
        }
    }

    /// Applies the rotation to `x` of shape `[batch, heads, seq, head_dim]` whose first
    /// position is `offset`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> candle_core::Result<Tensor> {
        let t = x.dim(2)?;
        if offset + t > self.cos.dim(0)? {
            candle_core::bail!(
                "sequence of {} tokens exceeds the model's {} positions",
                offset + t,
                self.cos.dim(0)?
            );
        }
        let (cos, sin) = self.for_end(offset + t);
        let cos = cos.narrow(0, offset, t)?;
        let sin = sin.narrow(0, offset, t)?;
        let (hd, rot) = (x.dim(3)?, 2 * cos.dim(1)?);
        if rot < hd {
            let rotated = rotate(&x.narrow(3, 0, rot)?, &cos, &sin)?;
            return Tensor::cat(&[&rotated, &x.narrow(3, rot, hd - rot)?], 3);
        }
        rotate(x, &cos, &sin)
    }

    /// Applies the rotation to `x` in row layout, `[batch * seq, heads * head_dim]`, each
    /// sequence's first position being `offset`: the same result as [`RopeTables::apply`]
    /// on the head layout, without copying into it on the CPU.
    pub fn apply_rows(
        &self,
        x: &Tensor,
        seq: usize,
        head_dim: usize,
        offset: usize,
    ) -> candle_core::Result<Tensor> {
        let (rows, width) = x.dims2()?;
        if seq == 0 || !rows.is_multiple_of(seq) || head_dim == 0 || !width.is_multiple_of(head_dim)
        {
            candle_core::bail!("rope: {rows} x {width} rows are not sequences of {seq} heads");
        }
        let whole = 2 * self.cos.dim(1)? == head_dim;
        if whole && x.device().is_cpu() && x.dtype() == DType::F32 {
            if offset + seq > self.cos.dim(0)? {
                candle_core::bail!(
                    "sequence of {} tokens exceeds the model's {} positions",
                    offset + seq,
                    self.cos.dim(0)?
                );
            }
            let (cos, sin) = self.for_end(offset + seq);
            let cos = with_cpu_f32(&cos.narrow(0, offset, seq)?, "rope", |c| Ok(c.to_vec()))?;
            let sin = with_cpu_f32(&sin.narrow(0, offset, seq)?, "rope", |s| Ok(s.to_vec()))?;
            return x.contiguous()?.apply_op1(Rope { cos, sin, inverse: false, rows: Some(seq) });
        }
        let (batch, heads) = (rows / seq, width / head_dim);
        let x = x.reshape((batch, seq, heads, head_dim))?.transpose(1, 2)?.contiguous()?;
        self.apply(&x, offset)?.transpose(1, 2)?.reshape((rows, width))
    }

    /// [`RopeTables::apply_rows`] over packed rows: `prefix` rows at positions from 0, then
    /// one sequence after another (`lens` rows each), each from position `prefix`. One op
    /// for all rows on the CPU; each sequence picks its tables by its own end, as
    /// [`RopeTables::apply_rows`] does.
    pub fn apply_rows_packed(
        &self,
        x: &Tensor,
        head_dim: usize,
        prefix: usize,
        lens: &[usize],
    ) -> candle_core::Result<Tensor> {
        let (rows, width) = x.dims2()?;
        if rows != prefix + lens.iter().sum::<usize>() || head_dim == 0 {
            candle_core::bail!(
                "rope: {rows} x {width} rows are not a prefix of {prefix} rows and sequences of {lens:?}"
            );
        }
        let parts = std::iter::once((0, prefix)).chain(lens.iter().map(|&len| (prefix, len)));
        let whole = 2 * self.cos.dim(1)? == head_dim && width.is_multiple_of(head_dim);
        if !(whole && x.device().is_cpu() && x.dtype() == DType::F32) {
            let mut start = 0;
            let mut out = Vec::with_capacity(lens.len() + 1);
            for (offset, len) in parts.filter(|&(_, len)| len > 0) {
                out.push(self.apply_rows(&x.narrow(0, start, len)?, len, head_dim, offset)?);
                start += len;
            }
            return Tensor::cat(&out, 0);
        }
        let (cos, sin) = self.packed_rows(prefix, lens)?;
        x.contiguous()?.apply_op1(Rope { cos, sin, inverse: false, rows: Some(rows) })
    }

    /// The `(cos, sin)` rows (`[rows, rotary_dim / 2]` each, on the CPU) of packed rows:
    /// `prefix` rows from position 0, then each sequence from `prefix`, each sequence's
    /// tables chosen by its own end.
    pub(crate) fn packed_rows(
        &self,
        prefix: usize,
        lens: &[usize],
    ) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
        let parts = std::iter::once((0, prefix)).chain(lens.iter().map(|&len| (prefix, len)));
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for (offset, len) in parts.filter(|&(_, len)| len > 0) {
            if offset + len > self.cos.dim(0)? {
                candle_core::bail!(
                    "sequence of {} tokens exceeds the model's {} positions",
                    offset + len,
                    self.cos.dim(0)?
                );
            }
            let (c, s) = self.for_end(offset + len);
            with_cpu_f32(&c.narrow(0, offset, len)?, "rope", |c| {
                cos.extend_from_slice(c);
                Ok(())
            })?;
            with_cpu_f32(&s.narrow(0, offset, len)?, "rope", |s| {
                sin.extend_from_slice(s);
                Ok(())
            })?;
        }
        Ok((cos, sin))
    }
}

/// The rotation of a whole head by tables already narrowed to its positions.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let cos = with_cpu_f32(cos, "rope", |c| Ok(c.to_vec()))?;
        let sin = with_cpu_f32(sin, "rope", |s| Ok(s.to_vec()))?;
        x.contiguous()?.apply_op1(Rope { cos, sin, inverse: false, rows: None })
    } else if x.track_op() {
        candle_nn::rotary_emb::rope_slow(&x.contiguous()?, cos, sin)
    } else {
        candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)
    }
}

struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    inverse: bool,
    /// `None`: `x` is `[batch, heads, seq, head_dim]`. `Some(seq)`: `x` is in row layout,
    /// `[batch * seq, heads * head_dim]`, and the tables rotate whole heads.
    rows: Option<usize>,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "rope")?;
        // Runs of `t` positions, each `width` wide: one head per position in head layout,
        // every head of the position in row layout.
        let (t, d, width) = match self.rows {
            None => {
                let (_, _, t, d) = l.shape().dims4()?;
                (t, d, d)
            }
            Some(t) => (t, 2 * self.cos.len() / t.max(1), l.shape().dims2()?.1),
        };
        let mut out = x.to_vec();
        rotate_runs(&mut out, [t, d, width], [&self.cos, &self.sin], self.inverse);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _: &Tensor, _: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let inverse = Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            inverse: !self.inverse,
            rows: self.rows,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}

/// Rotates the rows of `x` (`width` wide, heads of `d`) in place: row `r` takes the
/// tables' position `r % t` (`cos`, `sin` `[t, d / 2]`); `inverse` rotates back (the
/// backward pass).
fn rotate_runs(x: &mut [f32], [t, d, width]: [usize; 3], [cos, sin]: [&[f32]; 2], inverse: bool) {
    let half = d / 2;
    let sign = if inverse { -1.0 } else { 1.0 };
    let width = width.max(1);
    x.par_chunks_mut(width).enumerate().for_each(|(r, x)| {
        let p = r % t.max(1);
        let (cos, sin) = (&cos[p * half..(p + 1) * half], &sin[p * half..]);
        for x in x.chunks_exact_mut(d) {
            for j in 0..half {
                let (c, s) = (cos[j], sign * sin[j]);
                let (a, b) = (x[j], x[j + half]);
                x[j] = a * c - b * s;
                x[j + half] = b * c + a * s;
            }
        }
    });
}

/// `softmax(scale * scores)` over the last dimension with a causal mask: query `i` (at
/// absolute position `offset + i`) sees keys `0..=offset + i`, or with a sliding `window`
/// only the last `window` of them (`offset + i + 1 - window ..= offset + i`).
///
/// `scores` has shape `[batch, heads, queries, keys]`.
pub fn causal_softmax(
    scores: &Tensor,
    scale: f64,
    offset: usize,
    window: Option<usize>,
) -> candle_core::Result<Tensor> {
    if scores.device().is_cpu() && scores.dtype() == DType::F32 {
        return scores.contiguous()?.apply_op1(CausalSoftmax {
            scale: scale as f32,
            offset,
            window: window.unwrap_or(usize::MAX),
        });
    }
    let (_, _, t, kt) = scores.dims4()?;
    let scores = (scores * scale)?;
    let windowed = window.is_some_and(|w| w < kt);
    let scores = if t > 1 || windowed {
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..kt).map(move |j| {
                    if visible_keys(i + offset, window).contains(&j) {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, kt), scores.device())?.to_dtype(scores.dtype())?;
        scores.broadcast_add(&mask)?
    } else {
        scores
    };
    if scores.track_op() {
        candle_nn::ops::softmax(&scores, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(&scores)
    }
}

/// The keys the query at absolute position `q` attends to.
pub(crate) fn visible_keys(q: usize, window: Option<usize>) -> std::ops::Range<usize> {
    let end = q + 1;
    end.saturating_sub(window.unwrap_or(usize::MAX))..end
}

struct CausalSoftmax {
    scale: f32,
    offset: usize,
    /// `usize::MAX`: no sliding window.
    window: usize,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "causal-softmax")?;
        let (_, _, t, kt) = l.shape().dims4()?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(kt).zip(x.par_chunks(kt)).enumerate().for_each(|(row, (o, x))| {
            let keys = visible_keys(row % t + self.offset, Some(self.window));
            let keys = keys.start.min(kt)..keys.end.min(kt);
            let (o, x) = (&mut o[keys.clone()], &x[keys]);
            let max = x.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) * self.scale;
            let mut sum = 0.0;
            for (o, x) in o.iter_mut().zip(x) {
                *o = (x * self.scale - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|o| *o *= inv);
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(res.apply_op2_no_bwd(&grad, &SoftmaxBwd { scale: self.scale })?))
    }
}

struct SoftmaxBwd {
    scale: f32,
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "causal-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = f32_slice(ys, yl, "causal-softmax-bwd")?;
        let g = f32_slice(gs, gl, "causal-softmax-bwd")?;
        let kt = *yl.dims().last().unwrap_or(&1);
        let mut out = vec![0f32; y.len()];
        out.par_chunks_mut(kt).zip(y.par_chunks(kt).zip(g.par_chunks(kt))).for_each(
            |(o, (y, g))| {
                let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                for ((o, y), g) in o.iter_mut().zip(y).zip(g) {
                    *o = self.scale * y * (g - dot);
                }
            },
        );
        Ok((CpuStorage::F32(out), yl.shape().clone()))
    }
}

/// Per-row weighted cross-entropy of `logits` (`[rows, vocab]`) against `targets`.
///
/// Returns `[rows]` losses already multiplied by `weights` (0 for ignored positions), so the
/// caller sums them and divides by its own normaliser.
pub fn weighted_cross_entropy(
    logits: &Tensor,
    targets: &[u32],
    weights: &[f32],
) -> candle_core::Result<Tensor> {
    let (rows, vocab) = logits.dims2()?;
    if weights.len() != rows {
        candle_core::bail!("cross-entropy: {rows} rows but {} weights", weights.len());
    }
    check_targets(targets, rows, vocab)?;
    if logits.device().is_cpu() && logits.dtype() == DType::F32 {
        return logits
            .contiguous()?
            .apply_op1(CrossEntropy { targets: targets.to_vec(), weights: weights.to_vec() });
    }
    let device = logits.device();
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let idx = Tensor::from_slice(targets, (rows, 1), device)?;
    let picked = log_probs.gather(&idx, 1)?.squeeze(1)?;
    let w = Tensor::from_slice(weights, rows, device)?.to_dtype(logits.dtype())?;
    picked.neg()? * w
}

/// One target per row, each inside the vocabulary.
fn check_targets(targets: &[u32], rows: usize, vocab: usize) -> candle_core::Result<()> {
    if targets.len() != rows {
        candle_core::bail!("cross-entropy: {rows} rows but {} targets", targets.len());
    }
    if let Some(bad) = targets.iter().find(|t| **t as usize >= vocab) {
        candle_core::bail!("cross-entropy: target id {bad} is outside the vocabulary of {vocab}");
    }
    Ok(())
}

/// `(max, sum(exp(x - max)))` of a row of logits: `ln(sum) + max` is its log-sum-exp.
fn max_and_exp_sum(x: &[f32]) -> (f32, f32) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    (max, x.iter().map(|v| (v - max).exp()).sum())
}

struct CrossEntropy {
    targets: Vec<u32>,
    weights: Vec<f32>,
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "cross-entropy")?;
        let (rows, vocab) = l.shape().dims2()?;
        let mut out = vec![0f32; rows];
        out.par_iter_mut().zip(x.par_chunks(vocab)).enumerate().for_each(|(i, (o, x))| {
            if self.weights[i] == 0.0 {
                return;
            }
            let (max, sum) = max_and_exp_sum(x);
            *o = (sum.ln() + max - x[self.targets[i] as usize]) * self.weights[i];
        });
        Ok((CpuStorage::F32(out), Shape::from(rows)))
    }

    fn bwd(&self, x: &Tensor, _: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(x.apply_op2_no_bwd(&grad, &CrossEntropyBwd { inner: self })?))
    }
}

struct CrossEntropyBwd<'a> {
    inner: &'a CrossEntropy,
}

impl CustomOp2 for CrossEntropyBwd<'_> {
    fn name(&self) -> &'static str {
        "cross-entropy-bwd"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(xs, xl, "cross-entropy-bwd")?;
        let g = f32_slice(gs, gl, "cross-entropy-bwd")?;
        let (_, vocab) = xl.shape().dims2()?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(vocab).zip(x.par_chunks(vocab)).enumerate().for_each(|(i, (o, x))| {
            let scale = g[i] * self.inner.weights[i];
            if scale == 0.0 {
                return;
            }
            let (max, sum) = max_and_exp_sum(x);
            let inv = scale / sum;
            for (o, x) in o.iter_mut().zip(x) {
                *o = (x - max).exp() * inv;
            }
            o[self.inner.targets[i] as usize] -= scale;
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

/// Cross-entropy of `hidden @ w^T` (`hidden [rows, dim]`, a frozen head `w [vocab, dim]`)
/// against `targets`: `[rows]` losses, without keeping the `[rows, vocab]` logits.
///
/// On the CPU the logits are computed a block of rows at a time into one reused buffer.
/// With `with_grad`, the same pass also computes each row's input gradient for an upstream
/// gradient of 1 (`(softmax - onehot) w`), and the backward pass only scales it by the
/// actual upstream gradient: the same two GEMMs as the composed ops, but neither the
/// logits nor their gradient (2 x 200 MB at 1,024 rows of a 49k vocabulary) ever exist
/// whole. Without `with_grad` (evaluation), the result must not be differentiated.
///
/// With `softcap`, the logits are soft-capped first (`cap * tanh(logits / cap)`, Gemma 2).
pub fn linear_cross_entropy(
    hidden: &Tensor,
    w: &Tensor,
    targets: &[u32],
    softcap: Option<f64>,
    with_grad: bool,
) -> candle_core::Result<Tensor> {
    let (rows, dim) = hidden.dims2()?;
    let (vocab, w_dim) = w.dims2()?;
    if w_dim != dim {
        candle_core::bail!("linear_cross_entropy: hidden has {dim} features, the head {w_dim}");
    }
    check_targets(targets, rows, vocab)?;
    if !(hidden.device().is_cpu() && hidden.dtype() == DType::F32) {
        let logits = soft_cap(frozen_linear(hidden, w)?, softcap)?;
        return weighted_cross_entropy(&logits, targets, &vec![1.0; rows]);
    }
    let op = LinearCrossEntropy {
        w: w.contiguous()?,
        targets: targets.to_vec(),
        softcap: softcap.map(|c| c as f32),
        with_grad,
        input_grad: Mutex::new(None),
    };
    hidden.contiguous()?.apply_op1(op)
}

/// `cap * tanh(x / cap)`, or `x` without a cap.
pub fn soft_cap(x: Tensor, cap: Option<f64>) -> candle_core::Result<Tensor> {
    match cap {
        Some(cap) => (x / cap)?.tanh()? * cap,
        None => Ok(x),
    }
}

struct LinearCrossEntropy {
    w: Tensor,
    targets: Vec<u32>,
    softcap: Option<f32>,
    with_grad: bool,
    /// `d loss_i / d hidden_i`, computed by the forward pass for the backward pass.
    input_grad: Mutex<Option<Vec<f32>>>,
}

/// Rows of logits computed at once: as many as fit in 96 MiB, between 64 and 512 (512 rows of
/// SmolLM2's 49k vocabulary; 165 of Qwen's 152k). The input gradient `block W` has the whole
/// vocabulary as its inner dimension, and gemm runs it at 0.7x its speed over 128 rows and at
/// full speed over 512 (measured at SmolLM2's shape).
fn ce_block_rows(vocab: usize) -> usize {
    const BUDGET: usize = 96 << 20;
    (BUDGET / (vocab.max(1) * size_of::<f32>())).clamp(64, 512)
}

impl CustomOp1 for LinearCrossEntropy {
    fn name(&self) -> &'static str {
        "linear-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = f32_slice(s, l, "linear-cross-entropy")?;
        let (rows, dim) = l.shape().dims2()?;
        let vocab = self.w.dim(0)?;
        let mut losses = vec![0f32; rows];
        let mut input_grad = if self.with_grad { vec![0f32; rows * dim] } else { vec![] };
        let block_rows = ce_block_rows(vocab);
        let mut logits = vec![0f32; block_rows.min(rows) * vocab];
        with_cpu_f32(&self.w, "linear-cross-entropy", |w| {
            let w = Mat::new(w, vocab, dim);
            for start in (0..rows).step_by(block_rows) {
                let n = block_rows.min(rows - start);
                let block = &mut logits[..n * vocab];
                let hb = Mat::new(&h[start * dim..(start + n) * dim], n, dim);
                sgemm(block, false, hb, w.t(), 1.0);
                let targets = &self.targets[start..start + n];
                let losses = &mut losses[start..start + n];
                block.par_chunks_mut(vocab).zip(losses.par_iter_mut()).zip(targets).for_each(
                    |((x, loss), &target)| {
                        // Soft-capped logits z = cap tanh(l / cap), and dz/dl = 1 - tanh^2.
                        let mut slope = vec![];
                        if let Some(cap) = self.softcap {
                            for v in x.iter_mut() {
                                let t = (*v / cap).tanh();
                                *v = cap * t;
                                if self.with_grad {
                                    slope.push(1.0 - t * t);
                                }
                            }
                        }
                        let max = x.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                        let picked = x[target as usize];
                        // exp once, in place: the softmax numerators are the gradient's too.
                        vexp::shifted_exp(x, max);
                        let sum: f32 = x.iter().sum();
                        *loss = sum.ln() + max - picked;
                        if self.with_grad {
                            let inv = 1.0 / sum;
                            x.iter_mut().for_each(|v| *v *= inv);
                            x[target as usize] -= 1.0;
                            x.iter_mut().zip(&slope).for_each(|(v, d)| *v *= d);
                        }
                    },
                );
                if self.with_grad {
                    let dx = &mut input_grad[start * dim..(start + n) * dim];
                    sgemm(dx, false, Mat::new(block, n, vocab), w, 1.0);
                }
            }
            Ok(())
        })?;
        if self.with_grad {
            *self.input_grad.lock().expect("input gradient lock") = Some(input_grad);
        }
        Ok((CpuStorage::F32(losses), Shape::from(rows)))
    }

    fn bwd(&self, x: &Tensor, _: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let Some(unit) = self.input_grad.lock().expect("input gradient lock").take() else {
            candle_core::bail!("linear-cross-entropy: differentiated without with_grad")
        };
        let unit = Tensor::from_vec(unit, x.shape(), x.device())?;
        Ok(Some(unit.broadcast_mul(&grad.detach().unsqueeze(1)?)?))
    }
}

pub mod attention;
pub mod block;
pub(crate) mod decode;
pub mod quant;
mod skinny;
mod swiglu;
mod vexp;

pub use swiglu::swiglu;

#[cfg(test)]
mod tests;
