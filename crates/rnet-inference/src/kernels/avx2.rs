//! AVX2 + FMA products. Every function requires a CPU with both features.

use super::packed::{self, BAND, Panels, Product, STEPS};
use super::{QVec, Store, Weight, store_value};
use crate::line_buf::LineBytes;
use std::arch::x86_64::*;

/// Loads of eight weights as f32 lanes.
pub trait Load8: Weight {
    /// Eight consecutive elements at `p` as f32.
    ///
    /// # Safety
    /// `p..p+8` must be readable and the CPU must have AVX2.
    unsafe fn load8(p: *const Self) -> __m256;
}

impl Load8 for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats and AVX2.
        unsafe { _mm256_loadu_ps(p) }
    }
}

impl Load8 for i8 {
    #[inline(always)]
    unsafe fn load8(p: *const i8) -> __m256 {
        // SAFETY: the caller guarantees 8 readable bytes and AVX2.
        unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i))) }
    }
}

/// Horizontal sum of eight lanes.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: AVX2 is present (caller).
    unsafe {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }
}

/// `R` rows × one position, two accumulators per row (the decode kernel).
#[inline(always)]
unsafe fn rows_x1<W: Load8, const R: usize>(w: *const W, cols: usize, x: *const f32) -> [f32; R] {
    // SAFETY: the caller guarantees `R` rows of `cols` weights at `w`, `cols` floats at `x`,
    // and AVX2 + FMA.
    unsafe {
        let mut a0 = [_mm256_setzero_ps(); R];
        let mut a1 = [_mm256_setzero_ps(); R];
        let mut k = 0;
        while k + 16 <= cols {
            let x0 = _mm256_loadu_ps(x.add(k));
            let x1 = _mm256_loadu_ps(x.add(k + 8));
            for r in 0..R {
                let row = w.add(r * cols + k);
                a0[r] = _mm256_fmadd_ps(W::load8(row), x0, a0[r]);
                a1[r] = _mm256_fmadd_ps(W::load8(row.add(8)), x1, a1[r]);
            }
            k += 16;
        }
        if k + 8 <= cols {
            let x0 = _mm256_loadu_ps(x.add(k));
            for r in 0..R {
                a0[r] = _mm256_fmadd_ps(W::load8(w.add(r * cols + k)), x0, a0[r]);
            }
            k += 8;
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            let mut s = hsum(_mm256_add_ps(a0[r], a1[r]));
            for kk in k..cols {
                s += (*w.add(r * cols + kk)).to_f32() * *x.add(kk);
            }
            out[r] = s;
        }
        out
    }
}

/// `R` rows × `P` positions (the prefill kernel); `x` rows are `cols` apart.
#[inline(always)]
unsafe fn rows_xp<W: Load8, const R: usize, const P: usize>(
    w: *const W,
    cols: usize,
    x: *const f32,
) -> [[f32; P]; R] {
    // SAFETY: the caller guarantees `R` rows of `cols` weights at `w`, `P` rows of `cols`
    // floats at `x`, and AVX2 + FMA.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); P]; R];
        let mut k = 0;
        while k + 8 <= cols {
            let mut xv = [_mm256_setzero_ps(); P];
            for p in 0..P {
                xv[p] = _mm256_loadu_ps(x.add(p * cols + k));
            }
            for r in 0..R {
                let wv = W::load8(w.add(r * cols + k));
                for p in 0..P {
                    acc[r][p] = _mm256_fmadd_ps(wv, xv[p], acc[r][p]);
                }
            }
            k += 8;
        }
        let mut out = [[0.0f32; P]; R];
        for r in 0..R {
            for p in 0..P {
                let mut s = hsum(acc[r][p]);
                for kk in k..cols {
                    s += (*w.add(r * cols + kk)).to_f32() * *x.add(p * cols + kk);
                }
                out[r][p] = s;
            }
        }
        out
    }
}

/// One 256-bit `vpdpbusd`: `acc += Σ_{4 bytes} u8(w) · i8(x)` per i32 lane. The instruction
/// has two encodings that compute the same thing: VEX (AVX-VNNI: Intel from Alder Lake, AMD from
/// Zen 5) and EVEX (AVX-512 VNNI with VL: Intel server cores, AMD Zen 4), and a CPU may have
/// either or both, so the 256-bit kernel is generic over which one it emits.
pub(super) trait Dot {
    /// `acc + Σ_{4 bytes} u8(w) · i8(x)` per lane.
    ///
    /// # Safety
    /// The CPU has the encoding's extension (and AVX2).
    unsafe fn dpbusd(acc: __m256i, w: __m256i, x: __m256i) -> __m256i;
}

/// The VEX encoding (AVX-VNNI), by inline assembly: the workspace's oldest supported Rust has
/// no `avxvnni` target feature or intrinsic.
pub(super) struct VexDot;

impl Dot for VexDot {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dpbusd(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        let mut acc = acc;
        // SAFETY: register-only instruction; the caller guarantees AVX-VNNI.
        unsafe {
            std::arch::asm!(
                "{{vex}} vpdpbusd {acc}, {w}, {x}",
                acc = inout(ymm_reg) acc,
                w = in(ymm_reg) w,
                x = in(ymm_reg) x,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }
}

/// The EVEX encoding (AVX-512 VNNI + VL) on 256-bit registers, by the stable intrinsic; inlined
/// only into [`matvec_q8_vnni_evex`], which enables those features.
pub(super) struct EvexDot;

impl Dot for EvexDot {
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        // SAFETY: the caller guarantees AVX-512 VNNI and VL.
        unsafe { _mm256_dpbusd_epi32(acc, w, x) }
    }
}

/// Rows per panel of the 256-bit VNNI product: the lanes of one 256-bit vector.
pub const VNNI_PANEL: usize = 8;
/// Bytes of one piece: four columns of a panel's rows.
const PIECE: usize = 4 * VNNI_PANEL;

/// `N` adjacent 8-row panels' f32 sums over the whole blocks with 256-bit VNNI (see
/// [`super::packed`]): per 4-column step one `vpdpbusd` per panel, per block one subtraction of
/// the offset's exact share (`128 · block_sums[b]`), one convert and one FMA. The `N` panels' pieces of one step are adjacent and successive steps `STRIDE` bytes
/// apart.
///
/// # Safety
/// `w` holds the panels' `nb` blocks in that order, `xq` `32·nb` values and `s` `nb` scales; the
/// CPU has AVX2, FMA and `D`'s extension.
#[inline(always)]
unsafe fn vnni_panels<D: Dot, const N: usize, const STRIDE: usize>(
    w: *const u8,
    xq: *const i8,
    s: *const f32,
    block_sums: *const i32,
    nb: usize,
) -> [__m256; N] {
    // SAFETY: the caller guarantees the buffers and the CPU features.
    unsafe {
        let x = xq as *const i32;
        let mut acc = [_mm256_setzero_ps(); N];
        let mut wp = w;
        for b in 0..nb {
            let mut sums = [_mm256_setzero_si256(); N];
            for k in 0..STEPS {
                let xv = _mm256_set1_epi32(x.add(b * STEPS + k).read_unaligned());
                for (g, sum) in sums.iter_mut().enumerate() {
                    let wv = _mm256_loadu_si256(wp.add(k * STRIDE + g * PIECE) as *const __m256i);
                    *sum = D::dpbusd(*sum, wv, xv);
                }
            }
            wp = wp.add(STEPS * STRIDE);
            let sv = _mm256_set1_ps(*s.add(b));
            // The offset's share of the block, exactly: Σ (w + 128) x − 128 Σ x = Σ w x.
            let offset = _mm256_set1_epi32(128 * *block_sums.add(b));
            for (a, sum) in acc.iter_mut().zip(sums) {
                let exact = _mm256_sub_epi32(sum, offset);
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(exact), sv, *a);
            }
        }
        acc
    }
}

/// The 256-bit VNNI code of the packed product, in either encoding of `vpdpbusd`.
struct Vnni256<D>(std::marker::PhantomData<D>);

impl<D: Dot> Panels for Vnni256<D> {
    const PANEL: usize = VNNI_PANEL;
    type Acc = __m256;

    #[inline(always)]
    unsafe fn band(
        w: *const u8,
        xq: *const i8,
        s: *const f32,
        sums: *const i32,
        nb: usize,
    ) -> [__m256; BAND] {
        // SAFETY: forwarded from the caller.
        unsafe { vnni_panels::<D, BAND, { BAND * PIECE }>(w, xq, s, sums, nb) }
    }

    #[inline(always)]
    unsafe fn lone(
        w: *const u8,
        in_band: bool,
        xq: *const i8,
        s: *const f32,
        sums: *const i32,
        nb: usize,
    ) -> __m256 {
        // SAFETY: forwarded from the caller.
        let [a] = unsafe {
            if in_band {
                vnni_panels::<D, 1, { BAND * PIECE }>(w, xq, s, sums, nb)
            } else {
                vnni_panels::<D, 1, PIECE>(w, xq, s, sums, nb)
            }
        };
        a
    }

    #[inline(always)]
    unsafe fn finish(p: &Product<'_>, acc: __m256, o: usize, y: &mut [f32]) {
        // SAFETY: forwarded from the caller.
        unsafe { finish8(p, acc, o, y) }
    }
}

/// Stores 8 rows from `o` on: `(acc + tail) · scale`, overwritten or added (both 256-bit packed
/// kernels).
///
/// # Safety
/// Rows `o..o + 8` fit `p`'s buffers and `y`; the CPU has AVX2.
#[inline(always)]
unsafe fn finish8(p: &Product<'_>, acc: __m256, o: usize, y: &mut [f32]) {
    // SAFETY: the caller guarantees the rows and the CPU features.
    unsafe {
        let mut v = acc;
        if p.tail < p.cols {
            let t: [f32; VNNI_PANEL] = std::array::from_fn(|r| p.tail_of(o + r));
            v = _mm256_add_ps(v, _mm256_loadu_ps(t.as_ptr()));
        }
        v = _mm256_mul_ps(v, _mm256_loadu_ps(p.scale.as_ptr().add(o)));
        let yp = y.as_mut_ptr().add(o);
        match p.store {
            Store::Overwrite => _mm256_storeu_ps(yp, v),
            Store::Add => _mm256_storeu_ps(yp, _mm256_add_ps(_mm256_loadu_ps(yp), v)),
        }
    }
}

/// `N` adjacent 8-row panels' f32 sums over the whole blocks with AVX2 on the *signed* packed
/// weights: per 4-column step and panel, `vpsignb` (w · sign x), `vpmaddubsw` (|x| · that: the
/// exact products summed in pairs, at most 2 · 127 · 127 so nothing saturates), `vpmaddwd` with
/// ones (the four products of each row in one i32 lane) and an add; per block one convert and one
/// FMA. The broadcast `x` and its magnitudes are shared by the `N` panels.
///
/// # Safety
/// `w` holds the panels' `nb` blocks in [`packed::pack`] order (of the signed weights), `xq`
/// `32·nb` values and `s` `nb` scales; the CPU has AVX2 and FMA.
#[inline(always)]
unsafe fn sign_panels<const N: usize, const STRIDE: usize>(
    w: *const u8,
    xq: *const i8,
    s: *const f32,
    nb: usize,
) -> [__m256; N] {
    // SAFETY: the caller guarantees the buffers and the CPU features.
    unsafe {
        let x = xq as *const i32;
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); N];
        let mut wp = w;
        for b in 0..nb {
            let mut sums = [_mm256_setzero_si256(); N];
            for k in 0..STEPS {
                let xv = _mm256_set1_epi32(x.add(b * STEPS + k).read_unaligned());
                let av = _mm256_abs_epi8(xv);
                for (g, sum) in sums.iter_mut().enumerate() {
                    let wv = _mm256_loadu_si256(wp.add(k * STRIDE + g * PIECE) as *const __m256i);
                    let p16 = _mm256_maddubs_epi16(av, _mm256_sign_epi8(wv, xv));
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p16, ones));
                }
            }
            wp = wp.add(STEPS * STRIDE);
            let sv = _mm256_set1_ps(*s.add(b));
            for (a, sum) in acc.iter_mut().zip(sums) {
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), sv, *a);
            }
        }
        acc
    }
}

/// The 256-bit AVX2 code of the packed product on signed weights.
struct Avx2Signed;

impl Panels for Avx2Signed {
    const PANEL: usize = VNNI_PANEL;
    type Acc = __m256;

    #[inline(always)]
    unsafe fn band(
        w: *const u8,
        xq: *const i8,
        s: *const f32,
        _sums: *const i32,
        nb: usize,
    ) -> [__m256; BAND] {
        // SAFETY: forwarded from the caller.
        unsafe { sign_panels::<BAND, { BAND * PIECE }>(w, xq, s, nb) }
    }

    #[inline(always)]
    unsafe fn lone(
        w: *const u8,
        in_band: bool,
        xq: *const i8,
        s: *const f32,
        _sums: *const i32,
        nb: usize,
    ) -> __m256 {
        // SAFETY: forwarded from the caller.
        let [a] = unsafe {
            if in_band {
                sign_panels::<1, { BAND * PIECE }>(w, xq, s, nb)
            } else {
                sign_panels::<1, PIECE>(w, xq, s, nb)
            }
        };
        a
    }

    #[inline(always)]
    unsafe fn finish(p: &Product<'_>, acc: __m256, o: usize, y: &mut [f32]) {
        // SAFETY: forwarded from the caller.
        unsafe { finish8(p, acc, o, y) }
    }
}

/// The signed int8 weights `q` (`rows × cols`, row-major) in the order [`matvec_q8`] reads them
/// ([`packed::pack`] with 8-row panels).
pub fn pack_signed(q: &[i8], rows: usize, cols: usize) -> LineBytes {
    packed::pack(q, rows, cols, VNNI_PANEL, false)
}

/// Rows `first..first + rows` of a `total × cols` int8 matrix times one vector with AVX2,
/// reading the signed weights in the [`pack_signed`] order `packed` (the whole matrix's); `w`,
/// `scale` and `y` are those rows' signed weights, scales and outputs (see
/// [`packed::matvec`]). The block sums are the exact `Σ w · x_q`, as the VNNI kernels', so every
/// row has the same bits on all three kernels.
///
/// # Safety
/// `packed` is `pack_signed` of a `total × cols` matrix and `first + rows ≤ total`; `w` holds
/// `rows · cols` bytes, `scale` `rows` values, `xq` the output of `QVec::quantize(&x[..cols])`,
/// `x` `cols` and `y` `rows` floats; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8(
    packed: &[u8],
    first: usize,
    total: usize,
    w: &[i8],
    scale: &[f32],
    rows: usize,
    cols: usize,
    xq: &QVec,
    x: &[f32],
    y: &mut [f32],
    store: Store,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        packed::matvec::<Avx2Signed>(packed, first, total, w, scale, rows, cols, xq, x, y, store)
    }
}

/// [`matvec_q8`] on the row-major signed weights (all `rows` rows; packs them first).
///
/// # Safety
/// As [`matvec_q8`] with `first = 0` and `total = rows`.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8_row_major(
    w: &[i8],
    scale: &[f32],
    rows: usize,
    cols: usize,
    xq: &QVec,
    x: &[f32],
    y: &mut [f32],
    store: Store,
) {
    let packed = pack_signed(w, rows, cols);
    // SAFETY: forwarded from the caller.
    unsafe { matvec_q8(&packed, 0, rows, w, scale, rows, cols, xq, x, y, store) }
}

/// The offset weights `wo` (`rows × cols`, row-major) in the order [`matvec_q8_vnni`] reads them
/// ([`packed::pack`] with 8-row panels).
pub fn pack_vnni(q: &[i8], rows: usize, cols: usize) -> LineBytes {
    packed::pack(q, rows, cols, VNNI_PANEL, true)
}

/// Rows `first..first + rows` of a `total × cols` int8 matrix times one vector with AVX-VNNI,
/// reading the offset weights in the [`pack_vnni`] order `packed` (the whole matrix's); `w`,
/// `scale` and `y` are those rows' signed weights, scales and outputs (see
/// [`packed::matvec`]). Gives every row the same bits as the AVX-512 and AVX2 kernels.
///
/// # Safety
/// `packed` is `pack_vnni` of a `total × cols` matrix and `first + rows ≤ total`; `w` holds
/// `rows · cols` bytes, `scale` `rows` values, `xq` the output of `QVec::quantize(&x[..cols])`,
/// `x` `cols` and `y` `rows` floats; the CPU has AVX2, FMA and AVX-VNNI.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8_vnni(
    packed: &[u8],
    first: usize,
    total: usize,
    w: &[i8],
    scale: &[f32],
    rows: usize,
    cols: usize,
    xq: &QVec,
    x: &[f32],
    y: &mut [f32],
    store: Store,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        packed::matvec::<Vnni256<VexDot>>(
            packed, first, total, w, scale, rows, cols, xq, x, y, store,
        )
    }
}

/// [`matvec_q8_vnni`] with the EVEX encoding of the same instruction, for CPUs that have
/// AVX-512 VNNI but not AVX-VNNI (AMD Zen 4, Intel Ice Lake to Sapphire Rapids): the 256-bit
/// kernel there, to be measured against the 512-bit one ([`super::avx512_measured_faster`]).
/// Same layout, same bits.
///
/// # Safety
/// As [`matvec_q8_vnni`], with AVX-512 F, VL and VNNI in place of AVX-VNNI.
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8_vnni_evex(
    packed: &[u8],
    first: usize,
    total: usize,
    w: &[i8],
    scale: &[f32],
    rows: usize,
    cols: usize,
    xq: &QVec,
    x: &[f32],
    y: &mut [f32],
    store: Store,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        packed::matvec::<Vnni256<EvexDot>>(
            packed, first, total, w, scale, rows, cols, xq, x, y, store,
        )
    }
}

/// [`matvec_q8_vnni`] on the row-major signed weights `w` (all `rows` rows; packs them first):
/// the signature of the other VNNI kernels, for tests that run them all.
///
/// # Safety
/// As [`matvec_q8_vnni`] with `first = 0` and `total = rows`.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8_vnni_row_major(
    w: &[i8],
    scale: &[f32],
    rows: usize,
    cols: usize,
    xq: &QVec,
    x: &[f32],
    y: &mut [f32],
    store: Store,
) {
    let packed = pack_vnni(w, rows, cols);
    // SAFETY: forwarded from the caller.
    unsafe { matvec_q8_vnni(&packed, 0, rows, w, scale, rows, cols, xq, x, y, store) }
}

/// See [`super::Matrix::matmul`].
///
/// # Safety
/// AVX2 and FMA must be present; `w` holds `rows · cols` weights, `scale` (if any) `rows`
/// values, `x` `n_t · cols` and `y` `n_t · rows` floats.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul<W: Load8>(
    w: &[W],
    scale: Option<&[f32]>,
    rows: usize,
    cols: usize,
    x: &[f32],
    n_t: usize,
    y: &mut [f32],
    store: Store,
) {
    const R: usize = 4;
    let mut o = 0;
    // Rows outer (a block of rows stays in L1 while every position passes over it), positions
    // inner: the weights are streamed from memory once per call, whatever `n_t`.
    // SAFETY: `o + R <= rows` and `o < rows` keep the row blocks inside `w`.
    while o + R <= rows {
        unsafe { row_block::<W, R>(w, scale, o, rows, cols, x, n_t, y, store) };
        o += R;
    }
    while o < rows {
        unsafe { row_block::<W, 1>(w, scale, o, rows, cols, x, n_t, y, store) };
        o += 1;
    }
}

/// Rows `o..o + RR` for every position.
///
/// # Safety
/// As [`matmul`], and `o + RR <= rows`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_block<W: Load8, const RR: usize>(
    w: &[W],
    scale: Option<&[f32]>,
    o: usize,
    rows: usize,
    cols: usize,
    x: &[f32],
    n_t: usize,
    y: &mut [f32],
    store: Store,
) {
    const P: usize = 3;
    let sc: [f32; RR] = std::array::from_fn(|r| scale.map_or(1.0, |s| s[o + r]));
    let wp = w[o * cols..].as_ptr();
    let mut t = 0;
    // SAFETY (both loops): positions `t..t + P` (or `t`) are below `n_t`, so the reads stay in
    // `x`; the caller guarantees the rows.
    while t + P <= n_t {
        let acc = unsafe { rows_xp::<W, RR, P>(wp, cols, x[t * cols..].as_ptr()) };
        for (r, accr) in acc.iter().enumerate() {
            for (p, &v) in accr.iter().enumerate() {
                store_value(&mut y[(t + p) * rows + o + r], v * sc[r], store);
            }
        }
        t += P;
    }
    while t < n_t {
        let acc = unsafe { rows_x1::<W, RR>(wp, cols, x[t * cols..].as_ptr()) };
        for (r, &v) in acc.iter().enumerate() {
            store_value(&mut y[t * rows + o + r], v * sc[r], store);
        }
        t += 1;
    }
}

/// The body of the depthwise causal convolution of channels `c0..c0 + c.len()` at one position
/// over a history of element type `$T` (see `super::ring_conv_cols`), for both history types:
/// `$load8!(p)` reads eight history values at `p` as f32 and `$store8!(p, v)` stores eight
/// inputs. Taps and history are in the channel-blocked layout (`super::conv_index`), so each
/// block of 16 channels reads its taps and its history as two contiguous streams. Four blocks
/// (64 channels) at a time sum over the `r` taps in eight registers (eight FMA chains: enough to
/// cover the FMA latency); then single blocks, eight-lane pieces and single channels, every
/// channel by the same chain of fused multiply-adds, so a channel's sum does not depend on
/// which of these paths computes it (threads split the channels differently).
macro_rules! conv_cols_body {
    ($T:ty, $conv:ident, $d:ident, $c0:ident, $r:ident, $slot:ident, $u:ident, $ring:ident,
     $c:ident, $load8:ident, $store8:ident, $value:expr, $stored:expr) => {{
        let n = $c.len();
        assert!(
            $conv.len() >= super::conv_len($r, $d) && $c0 + n <= $d && $u.len() >= n && $slot < $r,
            "ring_conv_cols: buffers too short"
        );
        let r = $r;
        let at = |k: usize, ch: usize| super::conv_index(r, k, ch);
        // Tap `k` reads history row `slot − k`, walked down to row 0 and then from row `r − 1`.
        let src = |k: usize| if k <= $slot { $slot - k } else { $slot + r - k };
        let (w, rg) = ($conv.as_ptr(), $ring as *const $T);
        // SAFETY (every block): the history row `slot` of channels `c0..c0 + n` belongs to the
        // caller alone; every index is `conv_index(r, k < r, ch < d)`, inside `conv` (checked)
        // and the ring (the caller's guarantee); nobody writes the history rows read.
        unsafe {
            let mut j = 0;
            while j < n {
                let ch = $c0 + j;
                if ch % 8 == 0 && j + 8 <= n {
                    $store8!($ring.add(at($slot, ch)), _mm256_loadu_ps($u.as_ptr().add(j)));
                    j += 8;
                } else {
                    *$ring.add(at($slot, ch)) = $stored($u[j]);
                    j += 1;
                }
            }
            j = 0;
            while j < n {
                let ch = $c0 + j;
                if ch % 16 == 0 && j + 64 <= n {
                    let b = ch / 16;
                    let mut a = [_mm256_setzero_ps(); 8];
                    for k in 0..r {
                        let s = src(k);
                        for q in 0..4 {
                            let wp = w.add(((b + q) * r + k) * 16);
                            let up = rg.add(((b + q) * r + s) * 16);
                            for l in 0..2 {
                                a[2 * q + l] = _mm256_fmadd_ps(
                                    _mm256_loadu_ps(wp.add(8 * l)),
                                    $load8!(up.add(8 * l)),
                                    a[2 * q + l],
                                );
                            }
                        }
                    }
                    for (l, al) in a.iter().enumerate() {
                        _mm256_storeu_ps($c.as_mut_ptr().add(j + 8 * l), *al);
                    }
                    j += 64;
                } else if ch % 16 == 0 && j + 16 <= n {
                    let mut a = [_mm256_setzero_ps(); 2];
                    for k in 0..r {
                        let (wp, up) = (w.add(at(k, ch)), rg.add(at(src(k), ch)));
                        for (l, al) in a.iter_mut().enumerate() {
                            *al = _mm256_fmadd_ps(
                                _mm256_loadu_ps(wp.add(8 * l)),
                                $load8!(up.add(8 * l)),
                                *al,
                            );
                        }
                    }
                    _mm256_storeu_ps($c.as_mut_ptr().add(j), a[0]);
                    _mm256_storeu_ps($c.as_mut_ptr().add(j + 8), a[1]);
                    j += 16;
                } else if ch % 8 == 0 && j + 8 <= n {
                    let mut a = _mm256_setzero_ps();
                    for k in 0..r {
                        let (wp, up) = (w.add(at(k, ch)), rg.add(at(src(k), ch)));
                        a = _mm256_fmadd_ps(_mm256_loadu_ps(wp), $load8!(up), a);
                    }
                    _mm256_storeu_ps($c.as_mut_ptr().add(j), a);
                    j += 8;
                } else {
                    let mut a = 0.0f32;
                    for k in 0..r {
                        a = (*w.add(at(k, ch))).mul_add($value(*rg.add(at(src(k), ch))), a);
                    }
                    $c[j] = a;
                    j += 1;
                }
            }
        }
    }};
}

/// The depthwise causal convolution of channels `c0..c0 + c.len()` at one position over an f32
/// history (`super::ring_conv_cols`; the body is `conv_cols_body`).
///
/// # Safety
/// AVX2 and FMA must be present; as `super::ring_conv_cols`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn ring_conv_cols(
    conv: &[f32],
    d: usize,
    c0: usize,
    r: usize,
    slot: usize,
    u: &[f32],
    ring: *mut f32,
    c: &mut [f32],
) {
    macro_rules! load8 {
        ($p:expr) => {
            _mm256_loadu_ps($p)
        };
    }
    macro_rules! store8 {
        ($p:expr, $v:expr) => {
            _mm256_storeu_ps($p, $v)
        };
    }
    conv_cols_body!(f32, conv, d, c0, r, slot, u, ring, c, load8, store8, |v: f32| v, |v: f32| v);
}

/// [`ring_conv_cols`] over an f16 history (`super::ring_conv_cols_f16`): the same loops with
/// the history converted by F16C as it is loaded, and `u` rounded to f16 (to nearest even) as
/// it is stored.
///
/// # Safety
/// AVX2, FMA and F16C must be present; as `super::ring_conv_cols_f16`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn ring_conv_cols_f16(
    conv: &[f32],
    d: usize,
    c0: usize,
    r: usize,
    slot: usize,
    u: &[f32],
    ring: *mut u16,
    c: &mut [f32],
) {
    // Rounding control 0: to nearest, ties to even (as `f16_bits`).
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT;
    // Macros, so the conversions are inlined into this function's F16C code.
    macro_rules! load8 {
        ($p:expr) => {
            _mm256_cvtph_ps(_mm_loadu_si128($p.cast()))
        };
    }
    macro_rules! store8 {
        ($p:expr, $v:expr) => {
            _mm_storeu_si128($p.cast(), _mm256_cvtps_ph::<NEAREST>($v))
        };
    }
    conv_cols_body!(
        u16,
        conv,
        d,
        c0,
        r,
        slot,
        u,
        ring,
        c,
        load8,
        store8,
        super::f16_value,
        super::f16_bits
    );
}
