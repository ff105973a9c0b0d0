//! `libm::expf` eight lanes at a time: the same IEEE-754 single-precision operations in the same
//! order, so every lane has exactly the bits the scalar function gives (checked for all 2³²
//! inputs by `expf_avx2_equals_libm_for_every_bit_pattern`, three minutes on two cores, run by
//! hand with `--ignored`; the suite and CI check a million patterns and every range boundary).
//!
//! The canonical evaluator (`docs/protocol.md` Part III) takes `e^x` from `libm` 0.2.16's `expf`
//! (FreeBSD's `e_expf.c`): reduce `x = k·ln2 + r` with a two-part `ln2`, approximate `e^r` by a
//! rational function of degree 2, and scale by `2^k` (`scalbnf`). The scalar function branches
//! on the range of `|x|`; here every lane runs the main path and the special ranges (tiny, NaN,
//! overflow, underflow to zero) are blended in afterwards. Each softmax, sigmoid, SiLU and
//! cross-entropy of the evaluator needs one `expf` per element, which made it the largest single
//! cost of verifying a block after the matrix products.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `ln2` high part (`0x3f317200`): `k · LN2_HI` is exact for the `k` that occur.
#[cfg(target_arch = "x86_64")]
const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
/// `ln2` low part (`0x35bfbe8e`).
#[cfg(target_arch = "x86_64")]
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
/// `1 / ln2` (`0x3fb8aa3b`).
#[cfg(target_arch = "x86_64")]
const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
/// The rational approximation's first coefficient.
#[cfg(target_arch = "x86_64")]
const P1: f32 = f32::from_bits(0x3e2a_aa8f);
/// Its second.
#[cfg(target_arch = "x86_64")]
const P2: f32 = f32::from_bits(0xbb35_5215);
/// `2^127` (`0x7f000000`).
#[cfg(target_arch = "x86_64")]
const TWO_127: f32 = f32::from_bits(0x7f00_0000);
/// `2^−126 · 2^24` (`0x0c800000`), `scalbnf`'s first step towards a subnormal result.
#[cfg(target_arch = "x86_64")]
const TWO_MINUS_102: f32 = f32::from_bits(0x0c80_0000);

/// `e^x` for eight lanes, bit for bit `libm::expf` in each (inlined into AVX2 callers).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn expf8(x: __m256) -> __m256 {
    macro_rules! ps {
        ($v:expr) => {
            _mm256_set1_ps($v)
        };
    }
    macro_rules! int {
        ($v:expr) => {
            _mm256_set1_epi32($v)
        };
    }
    macro_rules! mask {
        ($m:expr) => {
            _mm256_castsi256_ps($m)
        };
    }
    // SAFETY: AVX2 is present (the caller's guarantee); nothing here touches memory.
    unsafe {
        let bits = _mm256_castps_si256(x);
        // |x|'s bits (the scalar `hx`), compared as non-negative i32; `neg` all ones where x < 0.
        let hx = _mm256_and_si256(bits, int!(0x7fff_ffff));
        let neg = _mm256_srai_epi32::<31>(bits);
        macro_rules! above {
            ($limit:expr) => {
                _mm256_cmpgt_epi32(hx, int!($limit))
            };
        }

        // Argument reduction. |x| > 1.5·ln2: k = trunc(INV_LN2·x ± 0.5); 0.5·ln2 < |x| ≤
        // 1.5·ln2: k = ±1; below: k = 0 (the scalar then takes hi = x, lo = 0, which is what the
        // formulas below give for k = 0: x − 0·LN2_HI = x exactly, 0·LN2_LO = +0).
        let half = _mm256_blendv_ps(ps!(0.5), ps!(-0.5), mask!(neg));
        let k_far = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(ps!(INV_LN2), x), half));
        let k_near = _mm256_or_si256(neg, int!(1));
        let k = _mm256_and_si256(k_near, above!(0x3eb1_7218));
        let k = _mm256_blendv_epi8(k, k_far, above!(0x3f85_1592));
        let kf = _mm256_cvtepi32_ps(k);
        let hi = _mm256_sub_ps(x, _mm256_mul_ps(kf, ps!(LN2_HI)));
        let lo = _mm256_mul_ps(kf, ps!(LN2_LO));
        let r = _mm256_sub_ps(hi, lo);

        // e^r ≈ 1 + (r·c/(2 − c) − lo + hi), c = r − r²·(P1 + r²·P2).
        let rr = _mm256_mul_ps(r, r);
        let poly = _mm256_add_ps(ps!(P1), _mm256_mul_ps(rr, ps!(P2)));
        let c = _mm256_sub_ps(r, _mm256_mul_ps(rr, poly));
        let q = _mm256_div_ps(_mm256_mul_ps(r, c), _mm256_sub_ps(ps!(2.0), c));
        let y = _mm256_add_ps(ps!(1.0), _mm256_add_ps(_mm256_sub_ps(q, lo), hi));

        // scalbnf(y, k) = (y · s1) · 2^k2: k > 127 (only 128 occurs) first multiplies by 2^127,
        // k < −126 by 2^−102 (2^−126 · 2^24), as the scalar function does; otherwise s1 = 1.
        let over = _mm256_cmpgt_epi32(k, int!(127));
        let under = _mm256_cmpgt_epi32(int!(-126), k);
        let k2 = _mm256_add_epi32(
            _mm256_sub_epi32(k, _mm256_and_si256(over, int!(127))),
            _mm256_and_si256(under, int!(102)),
        );
        let s1 = _mm256_blendv_ps(ps!(1.0), ps!(TWO_127), mask!(over));
        let s1 = _mm256_blendv_ps(s1, ps!(TWO_MINUS_102), mask!(under));
        let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k2, int!(127))));
        let mut out = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);

        // The scalar function's early returns, the later ones winning where ranges meet:
        // |x| ≤ 2^−14: 1 + x; x ≥ 88.722839: x · 2^127 (+∞); x ≤ −103.972084: +0; NaN: x.
        let tiny = _mm256_cmpgt_epi32(int!(0x3900_0001), hx);
        out = _mm256_blendv_ps(out, _mm256_add_ps(ps!(1.0), x), mask!(tiny));
        let overflow = _mm256_andnot_si256(neg, above!(0x42b1_7217));
        out = _mm256_blendv_ps(out, _mm256_mul_ps(x, ps!(TWO_127)), mask!(overflow));
        let zero = _mm256_and_si256(neg, above!(0x42cf_f1b4));
        out = _mm256_blendv_ps(out, _mm256_setzero_ps(), mask!(zero));
        _mm256_blendv_ps(out, x, mask!(above!(0x7f80_0000)))
    }
}

/// `v[i] = libm::expf(v[i] − m)` for every element, eight at a time where the CPU has AVX2.
pub(crate) fn exp_minus_in_place(v: &mut [f32], m: f32) {
    #[cfg(target_arch = "x86_64")]
    if super::kernels::use_avx2() {
        // SAFETY: AVX2 is present.
        unsafe { exp_minus_in_place_avx2(v, m) };
        return;
    }
    for e in v.iter_mut() {
        *e = libm::expf(*e - m);
    }
}

/// [`exp_minus_in_place`] with AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_minus_in_place_avx2(v: &mut [f32], m: f32) {
    let mut chunks = v.chunks_exact_mut(8);
    for ch in &mut chunks {
        // SAFETY: eight floats; AVX2 is present.
        unsafe {
            let x = _mm256_sub_ps(_mm256_loadu_ps(ch.as_ptr()), _mm256_set1_ps(m));
            _mm256_storeu_ps(ch.as_mut_ptr(), expf8(x));
        }
    }
    for e in chunks.into_remainder() {
        *e = libm::expf(*e - m);
    }
}

/// `1 / (1 + expf(−x))` in eight lanes: the scalar `kernels::sigmoid`'s operations (the
/// negation is exact, as a flip of the sign bit), shared by the sigmoid, g and SiLU helpers.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sigmoid8(x: __m256) -> __m256 {
    // SAFETY: register-only AVX operations; the caller guarantees AVX2.
    unsafe {
        let one = _mm256_set1_ps(1.0);
        let e = expf8(_mm256_xor_ps(x, _mm256_set1_ps(-0.0)));
        _mm256_div_ps(one, _mm256_add_ps(one, e))
    }
}

/// `v[i] = 1 / (1 + libm::expf(−v[i]))` (the evaluator's sigmoid) for every element.
pub(crate) fn sigmoid_in_place(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::kernels::use_avx2() {
        // SAFETY: AVX2 is present.
        unsafe { sigmoid_in_place_avx2(v) };
        return;
    }
    for e in v.iter_mut() {
        *e = super::kernels::sigmoid(*e);
    }
}

/// [`sigmoid_in_place`] with AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sigmoid_in_place_avx2(v: &mut [f32]) {
    let mut chunks = v.chunks_exact_mut(8);
    for ch in &mut chunks {
        // SAFETY: eight floats; AVX2 is present.
        unsafe {
            _mm256_storeu_ps(ch.as_mut_ptr(), sigmoid8(_mm256_loadu_ps(ch.as_ptr())));
        }
    }
    for e in chunks.into_remainder() {
        *e = super::kernels::sigmoid(*e);
    }
}

/// `Σ_i libm::expf(v[i] − m)`, summed from `0.0` in increasing `i` (the cross-entropy's sum).
pub(crate) fn sum_exp_minus(v: &[f32], m: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if super::kernels::use_avx2() {
        // SAFETY: AVX2 is present.
        return unsafe { sum_exp_minus_avx2(v, m) };
    }
    let mut s = 0.0f32;
    for &l in v {
        s += libm::expf(l - m);
    }
    s
}

/// [`sum_exp_minus`] with AVX2: eight exponentials at a time, added one by one in order.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_exp_minus_avx2(v: &[f32], m: f32) -> f32 {
    let mut s = 0.0f32;
    let mut e = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for ch in &mut chunks {
        // SAFETY: eight floats each; AVX2 is present.
        unsafe {
            let x = _mm256_sub_ps(_mm256_loadu_ps(ch.as_ptr()), _mm256_set1_ps(m));
            _mm256_storeu_ps(e.as_mut_ptr(), expf8(x));
        }
        for &t in &e {
            s += t;
        }
    }
    for &l in chunks.remainder() {
        s += libm::expf(l - m);
    }
    s
}

/// `v[i] = gru_g(v[i])` (`x + 0.5` for `x ≥ 0`, else the sigmoid) for every element.
pub(crate) fn gru_g_in_place(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::kernels::use_avx2() {
        // SAFETY: AVX2 is present.
        unsafe { gru_g_in_place_avx2(v) };
        return;
    }
    for e in v.iter_mut() {
        *e = super::kernels::gru_g(*e);
    }
}

/// [`gru_g_in_place`] with AVX2 (the sigmoid is computed in every lane and kept where `x < 0`
/// or `x` is NaN, as the scalar comparison `x >= 0.0` decides).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gru_g_in_place_avx2(v: &mut [f32]) {
    let mut chunks = v.chunks_exact_mut(8);
    for ch in &mut chunks {
        // SAFETY: eight floats; AVX2 is present.
        unsafe {
            let x = _mm256_loadu_ps(ch.as_ptr());
            let sig = sigmoid8(x);
            let lin = _mm256_add_ps(x, _mm256_set1_ps(0.5));
            let pos = _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_setzero_ps());
            _mm256_storeu_ps(ch.as_mut_ptr(), _mm256_blendv_ps(sig, lin, pos));
        }
    }
    for e in chunks.into_remainder() {
        *e = super::kernels::gru_g(*e);
    }
}

/// `g[i] = silu(g[i]) · u[i]` (`(g · sigmoid(g)) · u`, the SwiGLU activation) for every element.
pub(crate) fn silu_mul_in_place(g: &mut [f32], u: &[f32]) {
    assert!(u.len() >= g.len(), "silu_mul_in_place: u shorter than g");
    #[cfg(target_arch = "x86_64")]
    if super::kernels::use_avx2() {
        // SAFETY: AVX2 is present; `u` is at least as long as `g` (checked).
        unsafe { silu_mul_in_place_avx2(g, u) };
        return;
    }
    for (gv, &uv) in g.iter_mut().zip(u) {
        *gv = super::kernels::silu(*gv) * uv;
    }
}

/// [`silu_mul_in_place`] with AVX2.
///
/// # Safety
/// The CPU must have AVX2; `u` is at least as long as `g`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn silu_mul_in_place_avx2(g: &mut [f32], u: &[f32]) {
    let n = g.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        // SAFETY: `i + 8 ≤ g.len() ≤ u.len()`; AVX2 is present.
        unsafe {
            let x = _mm256_loadu_ps(g.as_ptr().add(i));
            let sig = sigmoid8(x);
            let out = _mm256_mul_ps(_mm256_mul_ps(x, sig), _mm256_loadu_ps(u.as_ptr().add(i)));
            _mm256_storeu_ps(g.as_mut_ptr().add(i), out);
        }
    }
    for (gv, &uv) in g[n..].iter_mut().zip(&u[n..]) {
        *gv = super::kernels::silu(*gv) * uv;
    }
}

#[cfg(test)]
mod tests {
    /// [`super::expf8`] of eight values (the CPU has AVX2: callers check).
    #[cfg(target_arch = "x86_64")]
    fn lanes(xs: [f32; 8]) -> [f32; 8] {
        use std::arch::x86_64::*;
        let mut out = [0f32; 8];
        // SAFETY: AVX2 is present (checked by every caller); eight floats each way.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), super::expf8(_mm256_loadu_ps(xs.as_ptr()))) };
        out
    }

    /// Every `step`-th f32 bit pattern through [`super::expf8`] against `libm::expf`, compared as
    /// bits (NaNs included: both return the input), split over the cores.
    #[cfg(target_arch = "x86_64")]
    fn check_patterns(step: u64) {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let width: u64 = 8;
        let stride = width * step;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    let mut base = t * stride;
                    while base < 1 << 32 {
                        let mut xs = [0f32; 8];
                        for (i, x) in xs.iter_mut().enumerate() {
                            *x = f32::from_bits((base + i as u64 * step) as u32);
                        }
                        for (x, g) in xs.iter().zip(lanes(xs)) {
                            let want = libm::expf(*x);
                            assert_eq!(g.to_bits(), want.to_bits(), "expf({x:e}) = {want:e}");
                        }
                        base += stride * threads;
                    }
                });
            }
        });
    }

    #[test]
    #[ignore = "2^32 inputs, 3 minutes on 2 cores: cargo test -p rnet-model --lib expf -- --ignored"]
    #[cfg(target_arch = "x86_64")]
    fn expf_avx2_equals_libm_for_every_bit_pattern() {
        check_patterns(1);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn expf_avx2_equals_libm_on_a_strided_sample_and_at_every_range_boundary() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        // 2^32 / 4099 ≈ 1M patterns spread over every exponent and sign.
        check_patterns(4099);
        // Around each threshold of the scalar function, and the special values.
        let mut edges = vec![0u32, 0x8000_0000, 0x7f80_0000, 0xff80_0000, 0x7fc0_0000, 0xffc0_0001];
        for b in [0x3900_0000u32, 0x3eb1_7218, 0x3f85_1592, 0x42ae_ac50, 0x42b1_7218, 0x42cf_f1b5] {
            for sign in [0, 0x8000_0000] {
                for d in 0..=16 {
                    edges.push((b - 8 + d) | sign);
                }
            }
        }
        for chunk in edges.chunks(8) {
            let mut xs = [1.0f32; 8];
            for (x, &b) in xs.iter_mut().zip(chunk) {
                *x = f32::from_bits(b);
            }
            let want = xs.map(|x| libm::expf(x).to_bits());
            assert_eq!(lanes(xs).map(f32::to_bits), want, "{chunk:x?}");
        }
    }

    /// Equal bits, or both NaN: Rust (LLVM) does not fix which NaN an operation on NaNs returns,
    /// in the scalar code any more than in the vector code, so only NaN-ness is comparable.
    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn the_slice_helpers_equal_the_scalar_definitions_with_and_without_avx2() {
        let mut v: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.173).collect();
        v.extend([-0.0, 0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-30, -1e-30]);
        for portable in [false, true] {
            crate::kernels::set_portable_only(portable);
            let mut e = v.clone();
            super::exp_minus_in_place(&mut e, 3.5);
            for (g, x) in e.iter().zip(&v) {
                assert!(same(*g, libm::expf(x - 3.5)), "{x}");
            }
            let mut s = v.clone();
            super::sigmoid_in_place(&mut s);
            for (g, x) in s.iter().zip(&v) {
                assert!(same(*g, crate::kernels::sigmoid(*x)), "{x}");
            }
            let mut s = v.clone();
            super::gru_g_in_place(&mut s);
            for (g, x) in s.iter().zip(&v) {
                assert!(same(*g, crate::kernels::gru_g(*x)), "{x}");
            }
            let mut s = v.clone();
            let u: Vec<f32> = v.iter().map(|x| 0.5 - x * 0.01).collect();
            super::silu_mul_in_place(&mut s, &u);
            for ((g, x), uv) in s.iter().zip(&v).zip(&u) {
                assert!(same(*g, crate::kernels::silu(*x) * uv), "{x}");
            }
            let mut want = 0.0f32;
            for x in &v[..999] {
                want += libm::expf(x - 7.0);
            }
            assert_eq!(super::sum_exp_minus(&v[..999], 7.0).to_bits(), want.to_bits());
        }
        crate::kernels::set_portable_only(false);
    }
}
