//! `e^x` over a slice, eight lanes at a time where the CPU has AVX2 and FMA: for kernels
//! compiled for those features (attention's softmax, SwiGLU's sigmoid), and
//! [`shifted_exp`], which picks the path itself (the cross-entropy's softmax).

/// `x = e^x` in place: eight lanes at a time in the `FMA` kernels (a polynomial within
/// a few units in the last place of `f32::exp`, for arguments down to -87), `f32::exp`
/// elsewhere and for the tail.
#[inline(always)]
pub(crate) fn exp<const FMA: bool>(x: &mut [f32]) {
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
    let coeffs = [1.987_569_2e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 8 <= x.len()`.
        let v = unsafe { _mm256_loadu_ps(p.add(i)) };
        let v = _mm256_max_ps(_mm256_min_ps(v, _mm256_set1_ps(88.376_26)), _mm256_set1_ps(-87.0));
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

/// `x = e^(x - shift)` in place, on the vector path where the CPU has AVX2 and FMA.
pub(crate) fn shifted_exp(x: &mut [f32], shift: f32) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { shifted_exp_avx2(x, shift) };
    }
    shifted_exp_generic::<false>(x, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn shifted_exp_avx2(x: &mut [f32], shift: f32) {
    shifted_exp_generic::<true>(x, shift)
}

#[inline(always)]
fn shifted_exp_generic<const FMA: bool>(x: &mut [f32], shift: f32) {
    x.iter_mut().for_each(|v| *v -= shift);
    exp::<FMA>(x);
}
