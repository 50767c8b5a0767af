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

/// Rows of `x` up to which [`matmul_t`] is used instead of the general GEMM: a decode
/// step's rows, and short prompts (a 16-token prefill ran at 1.3-1.5x the tokens/s it got
/// on the GEMM, which packs all of W for a few rows).
pub(crate) const MAX_ROWS: usize = 16;

/// `y [m, n] = x [m, k] · w [n, k]^T`, all row-major and contiguous.
pub(crate) fn matmul_t(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    debug_assert_eq!(w.len(), n * k);
    matmul_t_many(x, &[w], m, k).pop().expect("one product")
}

/// `y_i [m, n_i] = x [m, k] · w_i [n_i, k]^T` for weights that share their input (a layer's
/// q, k and v, or gate and up, with their LoRA `A`s) in one parallel pass: the tasks are
/// bands of all the weights' rows, so the products cost one dispatch to the threads
/// instead of one each, and no thread waits on a small product.
pub(crate) fn matmul_t_many(x: &[f32], ws: &[&[f32]], m: usize, k: usize) -> Vec<Vec<f32>> {
    debug_assert_eq!(x.len(), m * k);
    debug_assert!(ws.iter().all(|w| w.len() % k == 0));
    // Results land as [n, m] (each band of W's rows writes a contiguous block), then are
    // transposed when there is more than one row.
    let mut yts: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; w.len() / k * m]).collect();
    let total: usize = ws.iter().map(|w| w.len() / k).sum();
    let threads = rayon::current_num_threads().max(1);
    let band = total.div_ceil(threads * 4).max(16);
    let tasks: Vec<(&[f32], &mut [f32])> = yts
        .iter_mut()
        .zip(ws)
        .flat_map(|(yt, w)| yt.chunks_mut(band * m).zip(w.chunks(band * k)))
        .map(|(out, rows)| (rows, out))
        .collect();
    tasks.into_par_iter().for_each(|(rows, out)| dots(x, rows, m, k, out));
    yts.into_iter().map(|yt| rows_first(yt, m)).collect()
}

/// [`matmul_t`] on the calling thread: for products too small to share out.
pub(crate) fn matmul_t_here(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    debug_assert_eq!((x.len(), w.len()), (m * k, n * k));
    let mut yt = vec![0f32; n * m];
    dots(x, w, m, k, &mut yt);
    rows_first(yt, m)
}

/// `[n, m]` as `[m, n]`.
fn rows_first(yt: Vec<f32>, m: usize) -> Vec<f32> {
    if m == 1 {
        return yt;
    }
    let n = yt.len() / m;
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
/// Independent accumulators of each dot product, so that their fused multiply-adds do
/// not wait on each other.
const CHAINS: usize = 4;
/// Floats of `w` ahead of the one being read that each step of a dot product asks the
/// cache to fetch. The weights stream from memory once per decode step; with the hardware
/// prefetcher alone one thread's stream left about a fifth of this CPU's bandwidth unused
/// (measured on the decode step's products: 20% more bytes per second with it).
const PREFETCH: usize = 2048;

#[inline(always)]
fn dots_generic<const FMA: bool>(x: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    for (j, (wj, out)) in w.chunks_exact(k).zip(out.chunks_exact_mut(m)).enumerate() {
        // The first row of `x` fetches ahead; the others find `wj` in the cache. Every row
        // sums in the same order, so a row gets the same bits alone and in a batch.
        let ahead = w.as_ptr().wrapping_add(j * k + PREFETCH);
        for (i, out) in out.iter_mut().enumerate() {
            *out = dot::<FMA>(&x[i * k..(i + 1) * k], wj, (i == 0).then_some(ahead));
        }
    }
}

/// `a · b`, asking the cache for the floats from `ahead` on as it goes.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32], ahead: Option<*const f32>) -> f32 {
    const STEP: usize = LANES * CHAINS;
    let fma = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { c + a * b };
    let body = a.len() / STEP * STEP;
    let mut acc = [[0f32; LANES]; CHAINS];
    for (c, (a, b)) in a[..body].chunks_exact(STEP).zip(b[..body].chunks_exact(STEP)).enumerate() {
        if let Some(p) = ahead {
            prefetch(p.wrapping_add(c * STEP));
        }
        for (q, acc) in acc.iter_mut().enumerate() {
            let (a, b) = (&a[q * LANES..(q + 1) * LANES], &b[q * LANES..(q + 1) * LANES]);
            for l in 0..LANES {
                acc[l] = fma(a[l], b[l], acc[l]);
            }
        }
    }
    let lanes = (a.len() - body) / LANES * LANES;
    let (a, b) = (&a[body..], &b[body..]);
    for (a, b) in a[..lanes].chunks_exact(LANES).zip(b[..lanes].chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[0][l] = fma(a[l], b[l], acc[0][l]);
        }
    }
    let mut sum = [0f32; LANES];
    for (l, s) in sum.iter_mut().enumerate() {
        *s = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
    }
    reduce(&sum) + tail(&a[lanes..], &b[lanes..])
}

/// Asks the cache for the line holding `p` (a hint: it never faults).
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
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
