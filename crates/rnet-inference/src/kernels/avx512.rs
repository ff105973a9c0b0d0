//! The int8 decode product with AVX-512 VNNI: the rows-in-lanes product of [`super::packed`]
//! with 16-row panels (one 512-bit vector of i32 or f32 lanes), so one `vpdpbusd` adds four
//! columns' products to sixteen rows at once. Every function requires AVX-512 F, BW, VL and
//! VNNI.
//!
//! Against the earlier kernel (columns in the lanes: per row and 64-byte piece one `vpdpbusd`,
//! one convert and one FMA, and a horizontal sum per row at the end, which at the model's
//! widths cost as much as the products) this reads 97–99 GB/s from L3 on one thread instead of
//! 92–93 (73–95% of a plain read of the same bytes, depending on the moment: the decode bench's
//! `[int8 products alone]` line; docs/inference.md §7).

use super::packed::{self, BAND, Panels, Product, STEPS};
use super::{QVec, Store};
use crate::line_buf::LineBytes;
use std::arch::x86_64::*;

/// Rows per panel: the lanes of one 512-bit vector.
pub const PANEL: usize = 16;
/// Bytes of one piece: four columns of a panel's rows.
const PIECE: usize = 4 * PANEL;

/// `N` adjacent panels' f32 sums over the whole blocks: `Σ_b s_b · Σ_{k∈b} w · x_q`, one FMA per
/// block in block order, from 0 (each block's `Σ (w + 128) · x_q` less `128 · block_sums[b]`). Their pieces start at `w`, the `N` panels' pieces of
/// one step adjacent and successive steps `STRIDE` bytes apart.
///
/// # Safety
/// `w` holds the panels' `nb` blocks in that order, `xq` `32·nb` values and `s` `nb` scales; the
/// CPU has AVX-512 F and VNNI.
#[inline(always)]
unsafe fn panels<const N: usize, const STRIDE: usize>(
    w: *const u8,
    xq: *const i8,
    s: *const f32,
    block_sums: *const i32,
    nb: usize,
) -> [__m512; N] {
    // SAFETY: the caller guarantees the buffers and the CPU features.
    unsafe {
        let x = xq as *const i32;
        let mut acc = [_mm512_setzero_ps(); N];
        let mut wp = w;
        for b in 0..nb {
            let mut sums = [_mm512_setzero_si512(); N];
            for k in 0..STEPS {
                let xv = _mm512_set1_epi32(x.add(b * STEPS + k).read_unaligned());
                for (g, sum) in sums.iter_mut().enumerate() {
                    let wv = _mm512_loadu_si512(wp.add(k * STRIDE + g * PIECE) as *const __m512i);
                    *sum = _mm512_dpbusd_epi32(*sum, wv, xv);
                }
            }
            wp = wp.add(STEPS * STRIDE);
            let sv = _mm512_set1_ps(*s.add(b));
            // The offset's share of the block, exactly: Σ (w + 128) x − 128 Σ x = Σ w x.
            let offset = _mm512_set1_epi32(128 * *block_sums.add(b));
            for (a, sum) in acc.iter_mut().zip(sums) {
                let exact = _mm512_sub_epi32(sum, offset);
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), sv, *a);
            }
        }
        acc
    }
}

/// The 512-bit code of the packed product.
struct Vnni512;

impl Panels for Vnni512 {
    const PANEL: usize = PANEL;
    type Acc = __m512;

    #[inline(always)]
    unsafe fn band(
        w: *const u8,
        xq: *const i8,
        s: *const f32,
        sums: *const i32,
        nb: usize,
    ) -> [__m512; BAND] {
        // SAFETY: forwarded from the caller.
        unsafe { panels::<BAND, { BAND * PIECE }>(w, xq, s, sums, nb) }
    }

    #[inline(always)]
    unsafe fn lone(
        w: *const u8,
        in_band: bool,
        xq: *const i8,
        s: *const f32,
        sums: *const i32,
        nb: usize,
    ) -> __m512 {
        // SAFETY: forwarded from the caller.
        let [a] = unsafe {
            if in_band {
                panels::<1, { BAND * PIECE }>(w, xq, s, sums, nb)
            } else {
                panels::<1, PIECE>(w, xq, s, sums, nb)
            }
        };
        a
    }

    #[inline(always)]
    unsafe fn finish(p: &Product<'_>, acc: __m512, o: usize, y: &mut [f32]) {
        // SAFETY: the caller guarantees the rows and the CPU features.
        unsafe {
            let mut v = acc;
            if p.tail < p.cols {
                let t: [f32; PANEL] = std::array::from_fn(|r| p.tail_of(o + r));
                v = _mm512_add_ps(v, _mm512_loadu_ps(t.as_ptr()));
            }
            v = _mm512_mul_ps(v, _mm512_loadu_ps(p.scale.as_ptr().add(o)));
            let yp = y.as_mut_ptr().add(o);
            match p.store {
                Store::Overwrite => _mm512_storeu_ps(yp, v),
                Store::Add => _mm512_storeu_ps(yp, _mm512_add_ps(_mm512_loadu_ps(yp), v)),
            }
        }
    }
}

/// The offset weights `wo` (`rows × cols`, row-major) in the order [`matvec_q8_vnni512`] reads
/// them ([`packed::pack`] with 16-row panels).
pub fn pack(q: &[i8], rows: usize, cols: usize) -> LineBytes {
    packed::pack(q, rows, cols, PANEL, true)
}

/// Rows `first..first + rows` of a `total × cols` int8 matrix times one vector, reading the
/// offset weights in the [`pack`] order `packed` (the whole matrix's); `w`, `scale` and `y` are
/// those rows' signed weights, scales and outputs (see [`packed::matvec`]).
///
/// # Safety
/// `packed` is `pack` of a `total × cols` matrix and `first + rows ≤ total`; `w` holds
/// `rows · cols` bytes, `scale` `rows` values, `xq` the output of `QVec::quantize(&x[..cols])`,
/// `x` `cols` and `y` `rows` floats; the CPU has AVX-512 F, BW, VL and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8_vnni512(
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
        packed::matvec::<Vnni512>(packed, first, total, w, scale, rows, cols, xq, x, y, store)
    }
}

/// The product on row-major offset weights `wo` (all `rows` rows; packs them first): the
/// signature of the other VNNI kernels, for tests that run them all.
///
/// # Safety
/// As [`matvec_q8_vnni512`] with `first = 0`, `total = rows`, and `wo` holding `rows · cols`
/// bytes.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8_vnni512_row_major(
    w: &[i8],
    scale: &[f32],
    rows: usize,
    cols: usize,
    xq: &QVec,
    x: &[f32],
    y: &mut [f32],
    store: Store,
) {
    let packed = pack(w, rows, cols);
    // SAFETY: forwarded from the caller.
    unsafe { matvec_q8_vnni512(&packed, 0, rows, w, scale, rows, cols, xq, x, y, store) }
}
