//! NEON products for aarch64 (phones, Apple silicon, Raspberry Pi 3 and later). NEON is part of
//! every aarch64 target Rust builds for, so these need no run-time check; the portable kernels
//! stay available through `set_portable_only` and are compared with these by the tests.
//!
//! The same shapes as the AVX2 module, with 128-bit registers: `R` output rows share each load of
//! the activations, two accumulators per row keep the fused multiply-adds independent, and the
//! int8 decode product multiplies int8 weights by block-quantised int8 activations
//! (`smull`/`smull2` into exact 16-bit products, `sadalp` into 32-bit sums) before one f32 scale
//! per block.

use super::{QVec, Store, Weight, q8_row_tail, store_value};
use std::arch::aarch64::*;

/// Loads of eight weights as two f32 vectors.
pub trait Load8: Weight {
    /// Eight consecutive elements at `p` as f32 (lanes 0–3, lanes 4–7).
    ///
    /// # Safety
    /// `p..p+8` must be readable.
    unsafe fn load8(p: *const Self) -> (float32x4_t, float32x4_t);
}

impl Load8 for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> (float32x4_t, float32x4_t) {
        // SAFETY: the caller guarantees 8 readable floats.
        unsafe { (vld1q_f32(p), vld1q_f32(p.add(4))) }
    }
}

impl Load8 for i8 {
    #[inline(always)]
    unsafe fn load8(p: *const i8) -> (float32x4_t, float32x4_t) {
        // SAFETY: the caller guarantees 8 readable bytes.
        unsafe {
            let h = vmovl_s8(vld1_s8(p));
            (vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))), vcvtq_f32_s32(vmovl_high_s16(h)))
        }
    }
}

/// `R` rows × one position, two accumulators per row.
///
/// # Safety
/// `R` rows of `cols` weights at `w` (rows `cols` apart) and `cols` floats at `x`.
#[inline(always)]
unsafe fn rows_x1<W: Load8, const R: usize>(w: *const W, cols: usize, x: *const f32) -> [f32; R] {
    // SAFETY: every read is below `cols` in its row and in `x` (the caller's guarantee).
    unsafe {
        let mut a0 = [vdupq_n_f32(0.0); R];
        let mut a1 = [vdupq_n_f32(0.0); R];
        let mut k = 0;
        while k + 8 <= cols {
            let x0 = vld1q_f32(x.add(k));
            let x1 = vld1q_f32(x.add(k + 4));
            for r in 0..R {
                let (w0, w1) = W::load8(w.add(r * cols + k));
                a0[r] = vfmaq_f32(a0[r], w0, x0);
                a1[r] = vfmaq_f32(a1[r], w1, x1);
            }
            k += 8;
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            let mut s = vaddvq_f32(vaddq_f32(a0[r], a1[r]));
            for kk in k..cols {
                s += (*w.add(r * cols + kk)).to_f32() * *x.add(kk);
            }
            out[r] = s;
        }
        out
    }
}

/// The product over `n_t` positions: `x` is `[n_t, cols]`, `y` is `[n_t, rows]`, each output
/// row multiplied by `scale[o]` when given (int8 weights).
///
/// # Safety
/// `w` holds `rows · cols` weights, `scale` (if any) `rows` values, `x` `n_t · cols` and `y`
/// `n_t · rows` floats.
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
    let sc = |o: usize| scale.map_or(1.0, |s| s[o]);
    // Rows outer, positions inner: a block of rows stays in L1 while every position passes.
    let mut o = 0;
    while o + R <= rows {
        for t in 0..n_t {
            // SAFETY: rows `o..o + R` are below `rows`; position `t` is below `n_t`.
            let acc =
                unsafe { rows_x1::<W, R>(w[o * cols..].as_ptr(), cols, x[t * cols..].as_ptr()) };
            for (r, &v) in acc.iter().enumerate() {
                store_value(&mut y[t * rows + o + r], v * sc(o + r), store);
            }
        }
        o += R;
    }
    while o < rows {
        for t in 0..n_t {
            // SAFETY: row `o` is below `rows`; position `t` is below `n_t`.
            let acc =
                unsafe { rows_x1::<W, 1>(w[o * cols..].as_ptr(), cols, x[t * cols..].as_ptr()) };
            store_value(&mut y[t * rows + o], acc[0] * sc(o), store);
        }
        o += 1;
    }
}

/// `R` int8 rows · the block-quantised vector: `Σ_b scale_x[b] · Σ_{k∈b} w[k]·xq[k]`. Each
/// 16-bit product is exact (`|w|, |xq| ≤ 127`) and the pairwise 32-bit sums cannot overflow, so
/// every block's integer sum is exact, as on the AVX2 path.
///
/// # Safety
/// `R` rows of `cols ≥ 32·nb` weights at `w`, `32·nb` quantised values at `xq` and `nb` scales
/// at `xs`.
#[inline(always)]
unsafe fn rows_q8<const R: usize>(
    w: *const i8,
    cols: usize,
    xq: *const i8,
    xs: *const f32,
    nb: usize,
) -> [f32; R] {
    // SAFETY: the reads stay inside the blocks the caller guarantees.
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); R];
        for b in 0..nb {
            let x0 = vld1q_s8(xq.add(b * 32));
            let x1 = vld1q_s8(xq.add(b * 32 + 16));
            let sx = vdupq_n_f32(*xs.add(b));
            for r in 0..R {
                let row = w.add(r * cols + b * 32);
                let w0 = vld1q_s8(row);
                let w1 = vld1q_s8(row.add(16));
                let mut s = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)));
                s = vpadalq_s16(s, vmull_high_s8(w0, x0));
                s = vpadalq_s16(s, vmull_s8(vget_low_s8(w1), vget_low_s8(x1)));
                s = vpadalq_s16(s, vmull_high_s8(w1, x1));
                acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(s), sx);
            }
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            out[r] = vaddvq_f32(acc[r]);
        }
        out
    }
}

/// The int8 matrix times one vector with block-quantised activations (see
/// [`super::quantize_q8`]); elements past the last whole block use `x` in f32.
///
/// # Safety
/// `w` holds `rows · cols` weights, `scale` `rows` values, `xq` the output of
/// `QVec::quantize(&x[..cols])`, `x` `cols` and `y` `rows` floats.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8(
    w: &[i8],
    scale: &[f32],
    rows: usize,
    cols: usize,
    xq: &QVec,
    x: &[f32],
    y: &mut [f32],
    store: Store,
) {
    const R: usize = 4;
    let (xs, xq) = (&xq.s, &xq.q);
    let nb = xs.len();
    let tail = nb * 32;
    let finish = |o: usize, v: f32| -> f32 { (v + q8_row_tail(w, cols, tail, x, o)) * scale[o] };
    let mut o = 0;
    // SAFETY (both loops): rows `o..o + R` (or `o`) are below `rows`; the caller guarantees the
    // buffers.
    while o + R <= rows {
        let acc =
            unsafe { rows_q8::<R>(w[o * cols..].as_ptr(), cols, xq.as_ptr(), xs.as_ptr(), nb) };
        for (r, &v) in acc.iter().enumerate() {
            store_value(&mut y[o + r], finish(o + r, v), store);
        }
        o += R;
    }
    while o < rows {
        let acc =
            unsafe { rows_q8::<1>(w[o * cols..].as_ptr(), cols, xq.as_ptr(), xs.as_ptr(), nb) };
        store_value(&mut y[o], finish(o, acc[0]), store);
        o += 1;
    }
}
