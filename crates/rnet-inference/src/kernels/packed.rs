//! The rows-in-lanes int8 decode product shared by the AVX-512 VNNI ([`super::avx512`]) and
//! 256-bit VNNI ([`super::avx2`]) kernels: the packed order of the offset weights, the walk over a
//! row range, and the one-row path.
//!
//! A *panel* is as many rows as a vector has i32 lanes (16 for 512 bits, 8 for 256). The offset
//! weights (`w + 128` as unsigned bytes) are packed so that one vector-sized piece holds four
//! consecutive columns of each of a panel's rows: one `vpdpbusd` of that piece with the four
//! matching activation bytes broadcast to every lane adds four products to each row's exact i32
//! sum. Eight such steps cover one [`Q8_BLOCK`]-column block, whose sums are converted and added
//! to the rows' f32 accumulators with one FMA by the block's scale. Four panels (a *band*) share
//! each broadcast activation word and lie side by side in the packed order, so a band is read as
//! one forward stream, and a row's sum never has to be gathered from the lanes of a vector.
//!
//! A row's value is `((fma over the blocks, in order, from 0) + tail) · scale`, whatever computes
//! it: a band, a lone panel, or [`Product::row`] for rows outside whole panels. Each block's sum is
//! the exact integer `Σ w · x_q` (the VNNI kernels, which multiply `w + 128`, subtract `128 · Σ x_q`
//! in integers; the sum is below 2²⁴ in magnitude, so its conversion is exact too) and the FMA is
//! one rounding, so every path and every kernel give a row the same bits: the decode threads may
//! split the rows anywhere, and an AVX2, an AVX-VNNI and an AVX-512 machine decode identically.

use super::{Q8_BLOCK, QVec, Store, q8_row_tail};
use crate::line_buf::LineBytes;

/// The signature of a packed product (each architecture's `matvec_*` on packed weights): rows
/// `first..first + rows` of a `total`-row matrix, for the tests and the x86 kernel-width timing
/// that run several kernels through one loop.
#[cfg_attr(not(any(test, target_arch = "x86_64")), allow(dead_code))]
pub type Kernel =
    unsafe fn(&[u8], usize, usize, &[i8], &[f32], usize, usize, &QVec, &[f32], &mut [f32], Store);

/// Panels per band (sharing each broadcast activation word).
pub const BAND: usize = 4;
/// Columns per `vpdpbusd` lane.
const STEP: usize = 4;
/// 4-column steps per activation block.
pub const STEPS: usize = Q8_BLOCK / STEP;

/// Columns of a `cols`-wide matrix that the packed weights hold: its whole blocks (the columns
/// after them are read from the signed weights, in f32).
pub fn whole(cols: usize) -> usize {
    cols / Q8_BLOCK * Q8_BLOCK
}

/// The int8 weights `q` (`rows × cols`, row-major) as bytes — offset (`w + 128`, what `vpdpbusd`
/// multiplies) when `offset`, else signed — in the order the product reads them for panels of
/// `panel` rows, written straight into the aligned buffer: each band of `4 · panel` rows, for each 4-column step of its whole
/// blocks, panel 0's rows' four bytes each, then panel 1's, 2's and 3's; then the panels after
/// the last whole band the same way with one panel per step. Rows after the last whole panel are
/// not packed ([`Product::row`] reads the signed weights).
pub fn pack(q: &[i8], rows: usize, cols: usize, panel: usize, offset: bool) -> LineBytes {
    let wc = whole(cols);
    let bands = rows / (BAND * panel);
    let panels = rows / panel;
    let flip = if offset { 0x80 } else { 0 };
    let mut buf = LineBytes::zeroed(panels * panel * wc);
    let out = &mut buf[..];
    let mut next = 0;
    let mut put = |first_panel: usize, width: usize| {
        for k in (0..wc).step_by(STEP) {
            for g in 0..width {
                for r in 0..panel {
                    let at = ((first_panel + g) * panel + r) * cols + k;
                    for (o, &v) in out[next..next + STEP].iter_mut().zip(&q[at..at + STEP]) {
                        *o = v as u8 ^ flip;
                    }
                    next += STEP;
                }
            }
        }
    };
    for b in 0..bands {
        put(b * BAND, BAND);
    }
    for p in bands * BAND..panels {
        put(p, 1);
    }
    buf
}

/// Where panel `p`'s first piece is in the [`pack`] order, and whether it lies in a band (its
/// successive pieces `4 · piece` bytes apart) or after the bands (`piece` bytes apart), for
/// pieces of `piece = 4 · panel` bytes.
fn locate(p: usize, rows: usize, cols: usize, panel: usize) -> (usize, bool) {
    let wc = whole(cols);
    let bands = rows / (BAND * panel);
    if p < bands * BAND {
        (p / BAND * BAND * panel * wc + p % BAND * STEP * panel, true)
    } else {
        (bands * BAND * panel * wc + (p - bands * BAND) * panel * wc, false)
    }
}

/// The vector code of one kernel: a band's and a lone panel's block sums, and how a panel's
/// results are finished and stored.
pub trait Panels {
    /// Rows per panel (i32 lanes per vector).
    const PANEL: usize;
    /// One panel's f32 block sums (a vector).
    type Acc: Copy;

    /// The four panels of a band whose first piece is at `w`: their f32 sums over the `nb`
    /// whole blocks, one FMA per block in block order from 0 of the block's exact `Σ w · x_q`
    /// (`sums` holds each block's `Σ x_q`, for kernels that multiply offset weights).
    ///
    /// # Safety
    /// `w` holds the band's packed pieces, `xq` `32·nb` values, `s` `nb` scales and `sums` `nb`
    /// block sums; the CPU has the kernel's features.
    unsafe fn band(
        w: *const u8,
        xq: *const i8,
        s: *const f32,
        sums: *const i32,
        nb: usize,
    ) -> [Self::Acc; BAND];

    /// The same for one panel whose successive pieces are `stride` bytes apart.
    ///
    /// # Safety
    /// As [`Panels::band`].
    unsafe fn lone(
        w: *const u8,
        in_band: bool,
        xq: *const i8,
        s: *const f32,
        sums: *const i32,
        nb: usize,
    ) -> Self::Acc;

    /// Stores `PANEL` rows from `o` on: `(acc + tail) · scale`, overwritten or added.
    ///
    /// # Safety
    /// Rows `o..o + PANEL` fit `p`'s buffers and `y`; the CPU has the width's features.
    unsafe fn finish(p: &Product<'_>, acc: Self::Acc, o: usize, y: &mut [f32]);
}

/// What one product's paths share: the quantised vector, the f32 input (for the tail columns),
/// the signed weights, the row scales and how results are stored.
pub struct Product<'a> {
    pub q: &'a [i8],
    pub s: &'a [f32],
    pub sums: &'a [i32],
    pub nb: usize,
    pub tail: usize,
    pub cols: usize,
    pub x: &'a [f32],
    pub w: &'a [i8],
    pub scale: &'a [f32],
    pub store: Store,
}

impl<'a> Product<'a> {
    /// Checks the buffers for `rows` rows (panics when they are too short).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        w: &'a [i8],
        scale: &'a [f32],
        rows: usize,
        cols: usize,
        xq: &'a QVec,
        x: &'a [f32],
        y: &[f32],
        store: Store,
    ) -> Self {
        let nb = xq.s.len();
        let tail = nb * Q8_BLOCK;
        assert!(
            w.len() >= rows * cols
                && scale.len() >= rows
                && xq.q.len() >= tail
                && x.len() >= cols
                && y.len() >= rows
                && tail == whole(cols),
            "packed int8 product: buffers too short"
        );
        Self { q: &xq.q, s: &xq.s, sums: &xq.sums, nb, tail, cols, x, w, scale, store }
    }

    /// Row `o`'s value computed on its own, by the same operations as a panel's lane: the exact
    /// integer sum of each block (`Σ w · x_q`, from the signed weights), one fused multiply-add
    /// per block in block order, then the tail columns and the scale.
    pub fn row(&self, o: usize) -> f32 {
        let mut acc = 0.0f32;
        let w = &self.w[o * self.cols..];
        for b in 0..self.nb {
            let k = b * Q8_BLOCK;
            let sum: i32 = w[k..k + Q8_BLOCK]
                .iter()
                .zip(&self.q[k..k + Q8_BLOCK])
                .map(|(&wv, &xv)| wv as i32 * xv as i32)
                .sum();
            acc = (sum as f32).mul_add(self.s[b], acc);
        }
        let mut v = acc;
        if self.tail < self.cols {
            v += self.tail_of(o);
        }
        v * self.scale[o]
    }

    /// Row `o`'s f32 product over the columns after the whole blocks.
    #[inline]
    pub fn tail_of(&self, o: usize) -> f32 {
        q8_row_tail(self.w, self.cols, self.tail, self.x, o)
    }

    /// `y = v` or `y += v`.
    #[inline(always)]
    pub fn put(&self, y: &mut f32, v: f32) {
        match self.store {
            Store::Overwrite => *y = v,
            Store::Add => *y += v,
        }
    }
}

/// Rows `first..first + rows` of a `total × cols` int8 matrix times one vector, with the
/// offset weights `packed` in the [`pack`] order for `K::PANEL` (the whole matrix's); `w`,
/// `scale` and `y` are those rows' signed weights, scales and outputs. Whole bands take
/// [`Panels::band`], other whole panels [`Panels::lone`], and rows outside whole panels of the
/// range [`Product::row`].
///
/// # Safety
/// `packed` is `pack(…, total, cols, K::PANEL)` and `first + rows ≤ total`; `w` holds
/// `rows · cols` bytes, `scale` `rows` values, `xq` the output of `QVec::quantize(&x[..cols])`,
/// `x` `cols` and `y` `rows` floats; the CPU has `K`'s features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec<K: Panels>(
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
    let p = Product::new(w, scale, rows, cols, xq, x, y, store);
    let panel = K::PANEL;
    let panels_total = total / panel;
    assert!(
        first + rows <= total && packed.len() >= panels_total * panel * whole(cols),
        "packed int8 product: buffers too short"
    );
    let bands = total / (BAND * panel);
    let end = first + rows;
    let (q, s, sums, nb) = (p.q.as_ptr(), p.s.as_ptr(), p.sums.as_ptr(), p.nb);
    let mut r = first;
    while r < end {
        let index = r / panel;
        let in_panels = r.is_multiple_of(panel) && index < panels_total;
        if in_panels
            && index.is_multiple_of(BAND)
            && index / BAND < bands
            && r + BAND * panel <= end
        {
            let (at, _) = locate(index, total, cols, panel);
            // SAFETY: the band is inside `packed` (checked above) and its rows inside the range;
            // the caller guarantees the CPU features.
            unsafe {
                let acc = K::band(packed.as_ptr().add(at), q, s, sums, nb);
                for (g, a) in acc.into_iter().enumerate() {
                    K::finish(&p, a, r + g * panel - first, y);
                }
            }
            r += BAND * panel;
        } else if in_panels && r + panel <= end {
            let (at, in_band) = locate(index, total, cols, panel);
            // SAFETY: as above, for one panel.
            unsafe {
                let a = K::lone(packed.as_ptr().add(at), in_band, q, s, sums, nb);
                K::finish(&p, a, r - first, y);
            }
            r += panel;
        } else {
            let o = r - first;
            p.put(&mut y[o], p.row(o));
            r += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Matrix, MatrixData};

    use super::Kernel;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Every row range of every shape gives each row the bits of the one-row path, with every
    /// kernel this CPU has (so the kernels agree with each other bit for bit): bands, lone
    /// panels inside and after the bands, rows outside panels, tail columns, both stores.
    #[test]
    fn every_path_and_width_gives_a_row_the_same_bits() {
        // (name, panel rows, offset weights, kernel)
        let mut kernels: Vec<(&str, usize, bool, Kernel)> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if super::super::vnni512_detected() {
                kernels.push(("avx512-vnni", 16, true, super::super::avx512::matvec_q8_vnni512));
            }
            if super::super::avx_vnni_detected() {
                kernels.push(("avx-vnni", 8, true, super::super::avx2::matvec_q8_vnni));
            }
            if super::super::vnni512_detected() {
                kernels.push((
                    "avx512-vnni 256-bit",
                    8,
                    true,
                    super::super::avx2::matvec_q8_vnni_evex,
                ));
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                kernels.push(("avx2", 8, false, super::super::avx2::matvec_q8));
            }
        }
        #[cfg(target_arch = "aarch64")]
        if super::super::dotprod_detected() {
            kernels.push(("neon-dotprod", 4, false, super::super::neon_dot::matvec_q8_dot));
        }
        // CI runs this under qemu-aarch64, whose CPU has the dot product: there it must be tested.
        if std::env::var_os("RNET_REQUIRE_DOTPROD").is_some() {
            assert!(kernels.iter().any(|k| k.0 == "neon-dotprod"), "no dot-product kernel here");
        }
        for &(total, cols) in
            &[(64, 32), (128, 384), (200, 96), (80, 167), (17, 64), (5, 40), (192, 768), (40, 64)]
        {
            let m = Matrix::int8(total, cols, &pseudo(total * cols, 3));
            let MatrixData::Int8 { q, scale } = m.data() else { unreachable!() };
            let x = pseudo(cols, 4);
            let mut qv = QVec::new();
            qv.quantize(&x);
            let one: Vec<f32> = {
                let p = Product::new(q, scale, total, cols, &qv, &x, &[0.0; 256], Store::Add);
                (0..total).map(|o| p.row(o)).collect()
            };
            for &(name, panel, is_offset, kernel) in &kernels {
                let packed = pack(q, total, cols, panel, is_offset);
                for (start, end) in [
                    (0, total),
                    (8, total),
                    (16, total),
                    (3, total),
                    (total / 2, total),
                    (total / 3, total / 3 + 70),
                ] {
                    let (start, end) = (start.min(total), end.min(total));
                    let n = end - start;
                    let wr = start * cols..end * cols;
                    for store in [Store::Overwrite, Store::Add] {
                        let before = pseudo(n, 5);
                        let mut y = before.clone();
                        // SAFETY: the kernel's features were detected; the buffers hold the
                        // rows used.
                        unsafe {
                            kernel(
                                &packed,
                                start,
                                total,
                                &q[wr.clone()],
                                &scale[start..end],
                                n,
                                cols,
                                &qv,
                                &x,
                                &mut y,
                                store,
                            )
                        };
                        for (o, &v) in y.iter().enumerate() {
                            let want = match store {
                                Store::Overwrite => one[start + o],
                                Store::Add => before[o] + one[start + o],
                            };
                            assert_eq!(
                                v.to_bits(),
                                want.to_bits(),
                                "{name}: {total}×{cols}, rows {start}..{end}, row {}",
                                start + o
                            );
                        }
                    }
                }
            }
        }
    }
}
