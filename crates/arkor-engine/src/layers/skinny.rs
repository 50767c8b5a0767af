//! `x W^T` for a few rows of `x`: the shape of decoding (one new token per sequence).
//!
//! A general GEMM packs `W` into panels before multiplying; with one to a few dozen rows
//! of `x` that packing costs as much as the product, and candle's GEMM runs such small
//! products on one thread. Here each thread takes a band of `W`'s rows and computes their
//! dot products with every row of `x`, so `W` is read from memory exactly once, on all
//! cores, which is what bounds a decode step. Each output element is the same dot product
//! whatever the number of rows, so a sequence decoded alone and in a batch gets the same
//! bits from the frozen projections.

use rayon::prelude::*;

/// Rows of `x` up to which [`matmul_t`] is used instead of the general GEMM.
pub(crate) const MAX_ROWS: usize = 4;

/// `y [m, n] = x [m, k] · w [n, k]^T`, all row-major and contiguous.
pub(crate) fn matmul_t(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    debug_assert_eq!((x.len(), w.len()), (m * k, n * k));
    // Results land as [n, m] (each band of W's rows writes a contiguous block), then are
    // transposed when there is more than one row.
    let mut yt = vec![0f32; n * m];
    let threads = rayon::current_num_threads().max(1);
    let band = n.div_ceil(threads * 4).max(16);
    yt.par_chunks_mut(band * m).enumerate().for_each(|(b, out)| {
        let rows = &w[b * band * k..(b * band + out.len() / m) * k];
        dots(x, rows, m, k, out);
    });
    if m == 1 {
        return yt;
    }
    let mut y = vec![0f32; m * n];
    for (j, col) in yt.chunks_exact(m).enumerate() {
        for (i, v) in col.iter().enumerate() {
            y[i * n + j] = *v;
        }
    }
    y
}

/// `out[j * m + i] = x_i · w_j` for every row `w_j` of `w` and `x_i` of `x`.
fn dots(x: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { dots_avx512(x, w, m, k, out) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { dots_avx2(x, w, m, k, out) };
        }
    }
    dots_generic::<false>(x, w, m, k, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dots_avx512(x: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    dots_generic::<true>(x, w, m, k, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(x: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    dots_generic::<true>(x, w, m, k, out)
}

/// Lanes of each accumulator: two AVX2 registers (one AVX-512 register) of partial sums.
const LANES: usize = 16;
/// Rows of `x` that share each load of a row of `w`: with [`LANES`], eight independent
/// chains of fused multiply-adds on AVX2, enough to hide their latency.
const BLOCK: usize = 4;

#[inline(always)]
fn dots_generic<const FMA: bool>(x: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    let body = k / LANES * LANES;
    let fma = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { c + a * b };
    for (wj, out) in w.chunks_exact(k).zip(out.chunks_exact_mut(m)) {
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(BLOCK);
            let mut acc = [[0f32; LANES]; BLOCK];
            for c in (0..body).step_by(LANES) {
                let b = &wj[c..c + LANES];
                for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                    let a = &x[(i + r) * k + c..(i + r) * k + c + LANES];
                    for l in 0..LANES {
                        acc[l] = fma(a[l], b[l], acc[l]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate().take(rows) {
                let xi = &x[(i + r) * k..(i + r + 1) * k];
                out[i + r] = reduce(acc) + tail(&xi[body..], &wj[body..]);
            }
            i += rows;
        }
    }
}

/// The sum of the lanes, as a tree (so the compiler keeps it in vector registers).
#[inline(always)]
fn reduce(acc: &[f32; LANES]) -> f32 {
    let mut v = *acc;
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            v[l] += v[l + width];
        }
        width /= 2;
    }
    v[0]
}

#[inline(always)]
fn tail(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_a_plain_product_for_any_row_count_and_width() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (m, n, k) in [(1, 7, 5), (1, 200, 576), (3, 70, 33), (16, 49, 64), (32, 1536, 576)] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let y = super::matmul_t(&x, &w, m, n, k);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 =
                        (0..k).map(|t| f64::from(x[i * k + t]) * f64::from(w[j * k + t])).sum();
                    let got = f64::from(y[i * n + j]);
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{m}x{n}x{k} [{i},{j}]: {got} vs {want}"
                    );
                }
            }
            // Each row alone gives the same bits as in the batch.
            let alone = super::matmul_t(&x[(m - 1) * k..], &w, 1, n, k);
            assert_eq!(alone, y[(m - 1) * n..]);
        }
    }
}
