//! The int8 decode product with the Armv8.2 dot-product instructions (`sdot`; Apple M1 and
//! later, Cortex-A76 and later, so the Raspberry Pi 5 and most phones since 2019): the
//! rows-in-lanes product of [`super::packed`] with 4-row panels (one 128-bit vector of i32 or f32
//! lanes) on the *signed* weights, so one `sdot` adds four columns' products to four rows at once
//! and no row's sum is ever gathered from the lanes of a vector.
//!
//! `sdot` multiplies signed by signed bytes, so unlike the x86 VNNI kernels no offset is added to
//! the weights or taken out again. Each block's sum is the exact integer `Σ w · x_q` and it is
//! added with one FMA by the block's scale, in block order: every row has the bits of
//! [`Product::row`], the same as on the AVX2, AVX-VNNI and AVX-512 kernels for the same quantised
//! input (tested under qemu in CI). Cores without the dot product (Cortex-A53/A72: Raspberry Pi 3
//! and 4) keep the plain NEON kernel (`neon::matvec_q8`).
//!
//! Rust 1.95 has no stable intrinsic for `sdot` (`vdotq_laneq_s32` is behind
//! `stdarch_neon_dotprod`), so the instruction is emitted by inline assembly, by-element: the
//! sixteen activation bytes of four 4-column steps sit in one register and each step names its
//! 32-bit lane, which every lane of the weights meets.

use super::packed::{self, BAND, Panels, Product, STEPS};
use super::{QVec, Store};
use crate::line_buf::LineBytes;
use std::arch::aarch64::*;

/// Rows per panel: the i32 lanes of one 128-bit vector.
pub const PANEL: usize = 4;
/// Bytes of one piece: four columns of a panel's rows.
const PIECE: usize = 4 * PANEL;

/// `acc.s[r] += Σ_{j<4} w.b[4r + j] · x.b[4L + j]` for each row lane `r` (`sdot` by element,
/// lane `L` of `x`).
///
/// # Safety
/// The CPU must have the dot-product extension (`dotprod`); the caller's function enables it.
#[inline(always)]
unsafe fn sdot_lane<const L: i32>(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: register-only instruction; the caller guarantees the extension.
    unsafe {
        std::arch::asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{lane}]",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            lane = const L,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// `N` adjacent panels' f32 sums over the whole blocks: `Σ_b s_b · Σ_{k∈b} w · x_q`, one FMA per
/// block in block order, from 0. Their pieces start at `w`, the `N` panels' pieces of one step
/// adjacent and successive steps `STRIDE` bytes apart. Each panel keeps two integer sums per
/// block (even and odd steps), so `2N` independent `sdot` chains hide the instruction's latency;
/// their exact sum is the block's.
///
/// # Safety
/// `w` holds the panels' `nb` blocks in that order, `xq` `32·nb` values and `s` `nb` scales; the
/// CPU has the dot-product extension.
#[inline(always)]
unsafe fn panels<const N: usize, const STRIDE: usize>(
    w: *const u8,
    xq: *const i8,
    s: *const f32,
    nb: usize,
) -> [float32x4_t; N] {
    // SAFETY: the caller guarantees the buffers and the CPU features.
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); N];
        let mut wp = w as *const i8;
        for b in 0..nb {
            let mut even = [vdupq_n_s32(0); N];
            let mut odd = [vdupq_n_s32(0); N];
            // The block's 32 activation bytes: steps 0–3 in `x0`, 4–7 in `x1`.
            let x0 = vld1q_s8(xq.add(b * 32));
            let x1 = vld1q_s8(xq.add(b * 32 + 16));
            let piece = |k: usize, g: usize| vld1q_s8(wp.add(k * STRIDE + g * PIECE));
            for g in 0..N {
                even[g] = sdot_lane::<0>(even[g], piece(0, g), x0);
                odd[g] = sdot_lane::<1>(odd[g], piece(1, g), x0);
            }
            for g in 0..N {
                even[g] = sdot_lane::<2>(even[g], piece(2, g), x0);
                odd[g] = sdot_lane::<3>(odd[g], piece(3, g), x0);
            }
            for g in 0..N {
                even[g] = sdot_lane::<0>(even[g], piece(4, g), x1);
                odd[g] = sdot_lane::<1>(odd[g], piece(5, g), x1);
            }
            for g in 0..N {
                even[g] = sdot_lane::<2>(even[g], piece(6, g), x1);
                odd[g] = sdot_lane::<3>(odd[g], piece(7, g), x1);
            }
            wp = wp.add(STEPS * STRIDE);
            let sv = vdupq_n_f32(*s.add(b));
            for g in 0..N {
                let exact = vaddq_s32(even[g], odd[g]);
                acc[g] = vfmaq_f32(acc[g], vcvtq_f32_s32(exact), sv);
            }
        }
        acc
    }
}

/// The dot-product code of the packed product.
struct Dot;

impl Panels for Dot {
    const PANEL: usize = PANEL;
    type Acc = float32x4_t;

    #[inline(always)]
    unsafe fn band(
        w: *const u8,
        xq: *const i8,
        s: *const f32,
        _sums: *const i32,
        nb: usize,
    ) -> [float32x4_t; BAND] {
        // SAFETY: forwarded from the caller.
        unsafe { panels::<BAND, { BAND * PIECE }>(w, xq, s, nb) }
    }

    #[inline(always)]
    unsafe fn lone(
        w: *const u8,
        in_band: bool,
        xq: *const i8,
        s: *const f32,
        _sums: *const i32,
        nb: usize,
    ) -> float32x4_t {
        // SAFETY: forwarded from the caller.
        let [a] = unsafe {
            if in_band {
                panels::<1, { BAND * PIECE }>(w, xq, s, nb)
            } else {
                panels::<1, PIECE>(w, xq, s, nb)
            }
        };
        a
    }

    #[inline(always)]
    unsafe fn finish(p: &Product<'_>, acc: float32x4_t, o: usize, y: &mut [f32]) {
        // SAFETY: the caller guarantees rows `o..o + 4` of `p`'s buffers and of `y`.
        unsafe {
            let mut v = acc;
            if p.tail < p.cols {
                let t: [f32; PANEL] = std::array::from_fn(|r| p.tail_of(o + r));
                v = vaddq_f32(v, vld1q_f32(t.as_ptr()));
            }
            v = vmulq_f32(v, vld1q_f32(p.scale.as_ptr().add(o)));
            let yp = y.as_mut_ptr().add(o);
            match p.store {
                Store::Overwrite => vst1q_f32(yp, v),
                Store::Add => vst1q_f32(yp, vaddq_f32(vld1q_f32(yp), v)),
            }
        }
    }
}

/// The signed int8 weights `q` (`rows × cols`, row-major) in the order [`matvec_q8_dot`] reads
/// them ([`packed::pack`] with 4-row panels).
pub fn pack(q: &[i8], rows: usize, cols: usize) -> LineBytes {
    packed::pack(q, rows, cols, PANEL, false)
}

/// Rows `first..first + rows` of a `total × cols` int8 matrix times one vector with `sdot`,
/// reading the signed weights in the [`pack`] order `packed` (the whole matrix's); `w`, `scale`
/// and `y` are those rows' signed weights, scales and outputs (see [`packed::matvec`]).
///
/// # Safety
/// `packed` is `pack` of a `total × cols` matrix and `first + rows ≤ total`; `w` holds
/// `rows · cols` bytes, `scale` `rows` values, `xq` the output of `QVec::quantize(&x[..cols])`,
/// `x` `cols` and `y` `rows` floats; the CPU has the dot-product extension.
#[target_feature(enable = "dotprod")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8_dot(
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
    unsafe { packed::matvec::<Dot>(packed, first, total, w, scale, rows, cols, xq, x, y, store) }
}
