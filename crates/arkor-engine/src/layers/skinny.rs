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
pub(crate) fn dots(x: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
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

/// With two rows of `x` or more, pairs of rows of `x` against pairs of rows of `w`: each
/// step loads four vectors for four fused multiply-adds (a dot product at a time loads two
/// per multiply-add, which bounds a batch or a prompt by the loads). The sums keep
/// [`dot`]'s order, so every row gets the same bits as alone.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dots_avx512(x: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    if m < 2 {
        return dots_generic::<true>(x, w, m, k, out);
    }
    let n = w.len() / k;
    let (m2, n2) = (m / 2 * 2, n / 2 * 2);
    let row = |i: usize| i * k..(i + 1) * k;
    for j in (0..n2).step_by(2) {
        let ahead = w.as_ptr().wrapping_add(j * k + PREFETCH);
        for i in (0..m2).step_by(2) {
            let xs = [&x[row(i)], &x[row(i + 1)]];
            let ws = [&w[row(j)], &w[row(j + 1)]];
            // SAFETY: the CPU has AVX-512F (this function's features).
            let d = unsafe { dots_2x2_avx512(xs, ws, (i == 0).then_some(ahead)) };
            for (c, d) in d.iter().enumerate() {
                out[(j + c) * m + i..(j + c) * m + i + 2].copy_from_slice(d);
            }
        }
        for i in m2..m {
            for c in 0..2 {
                out[(j + c) * m + i] = dot::<true>(&x[row(i)], &w[row(j + c)], None);
            }
        }
    }
    for j in n2..n {
        let ahead = w.as_ptr().wrapping_add(j * k + PREFETCH);
        for i in 0..m {
            out[j * m + i] = dot::<true>(&x[row(i)], &w[row(j)], (i == 0).then_some(ahead));
        }
    }
}

/// `[[x_0 · w_0, x_1 · w_0], [x_0 · w_1, x_1 · w_1]]`, each summed in [`dot`]'s order, with
/// the rows of `w` fetched from `ahead` on (`ahead + k` for the second).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
// The accumulators are indexed [row of x][row of w][chain], with the chain also the offset.
#[allow(clippy::needless_range_loop)]
unsafe fn dots_2x2_avx512(
    xs: [&[f32]; 2],
    ws: [&[f32]; 2],
    ahead: Option<*const f32>,
) -> [[f32; 2]; 2] {
    use std::arch::x86_64::*;
    const STEP: usize = LANES * CHAINS;
    let k = xs[0].len();
    assert!(xs.iter().chain(&ws).all(|r| r.len() == k), "rows of one length");
    let body = k / STEP * STEP;
    let lanes = body + (k - body) / LANES * LANES;
    let (xp, wp) = ([xs[0].as_ptr(), xs[1].as_ptr()], [ws[0].as_ptr(), ws[1].as_ptr()]);
    // [row of x][row of w][chain]
    let mut acc = [[[_mm512_setzero_ps(); CHAINS]; 2]; 2];
    // SAFETY: every load reads LANES floats at an offset below `lanes <= k` of a row of
    // length `k`.
    unsafe {
        let mut t = 0;
        while t < body {
            if let Some(p) = ahead {
                prefetch(p.wrapping_add(t));
                prefetch(p.wrapping_add(k + t));
            }
            for q in 0..CHAINS {
                let o = t + q * LANES;
                let xv = [_mm512_loadu_ps(xp[0].add(o)), _mm512_loadu_ps(xp[1].add(o))];
                let wv = [_mm512_loadu_ps(wp[0].add(o)), _mm512_loadu_ps(wp[1].add(o))];
                for r in 0..2 {
                    for c in 0..2 {
                        acc[r][c][q] = _mm512_fmadd_ps(xv[r], wv[c], acc[r][c][q]);
                    }
                }
            }
            t += STEP;
        }
        while t < lanes {
            let xv = [_mm512_loadu_ps(xp[0].add(t)), _mm512_loadu_ps(xp[1].add(t))];
            let wv = [_mm512_loadu_ps(wp[0].add(t)), _mm512_loadu_ps(wp[1].add(t))];
            for r in 0..2 {
                for c in 0..2 {
                    acc[r][c][0] = _mm512_fmadd_ps(xv[r], wv[c], acc[r][c][0]);
                }
            }
            t += LANES;
        }
    }
    let mut out = [[0f32; 2]; 2];
    for r in 0..2 {
        for c in 0..2 {
            let a = &acc[r][c];
            let sum = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
            out[c][r] = reduce_avx512(sum) + tail(&xs[r][lanes..], &ws[c][lanes..]);
        }
    }
    out
}

/// [`reduce`] of one AVX-512 register: the same tree (lane `l` plus lane `l + 8`, then
/// `l + 4`, `l + 2`, `l + 1`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn reduce_avx512(v: std::arch::x86_64::__m512) -> f32 {
    use std::arch::x86_64::*;
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let s8 = _mm256_add_ps(lo, hi);
    let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    let s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    _mm_cvtss_f32(s1)
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
