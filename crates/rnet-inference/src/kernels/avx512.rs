//! The int8 decode product with AVX-512 VNNI, rows in lanes: each 512-bit accumulator holds
//! sixteen output rows (a *panel*), so a row's sum never has to be gathered from the lanes of a
//! vector at the end. Every function requires AVX-512 F, BW, VL and VNNI.
//!
//! The offset weights (`w + 128` as unsigned bytes) are packed ([`pack`]) so that one 64-byte
//! load holds four consecutive columns of each of a panel's sixteen rows. One `vpdpbusd` of that
//! load with the four matching activation bytes broadcast to every lane adds four products to
//! each row's exact i32 sum; eight of them cover one [`Q8_BLOCK`](super::Q8_BLOCK)-column block,
//! whose sum is then converted and added to the row's f32 accumulator with one FMA by the
//! block's scale. Per 64 bytes of weights that is one load and one `vpdpbusd`, plus a convert and
//! an FMA per eight; the earlier layout (lanes = columns) also needed a convert and an FMA per 64
//! bytes and a horizontal sum per row, which at the model's widths (384 columns: six 64-byte
//! pieces per row) cost as much as the products (measured: 82–90 GB/s from L2 against 133–136
//! GB/s for this one).
//!
//! Four panels (a *band* of 64 rows) share each activation broadcast: for every 4-column step
//! the band's four 64-byte pieces are adjacent, so the product reads a band as one forward
//! stream. A row's value is `((Σ_b fma over blocks) − offset + tail) · scale` whichever path
//! computes it (a band, a lone panel, or [`row`] for rows outside whole panels), so it does not
//! depend on how decode threads split the rows.

use super::{QVec, Store, q8_row_tail};
use std::arch::x86_64::*;

/// Rows per panel: the lanes of one 512-bit vector of i32 or f32.
pub const PANEL: usize = 16;
/// Panels per band (sharing each broadcast activation word).
pub const BAND: usize = 4;
/// Rows per band.
const BAND_ROWS: usize = PANEL * BAND;
/// Columns per `vpdpbusd` lane.
const STEP: usize = 4;
/// 4-column steps per activation block.
const STEPS: usize = super::Q8_BLOCK / STEP;

/// Columns of a `cols`-wide matrix that the packed weights hold: its whole blocks (the columns
/// after them are read from the signed weights, in f32).
fn whole(cols: usize) -> usize {
    cols / super::Q8_BLOCK * super::Q8_BLOCK
}

/// The offset weights `wo` (`rows × cols`, row-major) in the order the product reads them:
/// each band of 64 rows, for each block and each 4-column step in it, panel 0's sixteen rows'
/// four bytes, then panel 1's, 2's and 3's; then the panels after the last whole band the same
/// way with one panel per step; rows after the last whole panel are not packed ([`row`] reads
/// the signed weights). Only whole blocks are packed.
pub fn pack(wo: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    let wc = whole(cols);
    let bands = rows / BAND_ROWS;
    let panels = rows / PANEL;
    let mut out = Vec::with_capacity(panels * PANEL * wc);
    let mut put = |first_panel: usize, width: usize| {
        for k in (0..wc).step_by(STEP) {
            for g in 0..width {
                for r in 0..PANEL {
                    let at = ((first_panel + g) * PANEL + r) * cols + k;
                    out.extend_from_slice(&wo[at..at + STEP]);
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
    out
}

/// Where panel `p`'s first piece is in the [`pack`] order of a `rows × cols` matrix, and the
/// distance between its successive 4-column pieces.
fn locate(p: usize, rows: usize, cols: usize) -> (usize, usize) {
    let wc = whole(cols);
    let bands = rows / BAND_ROWS;
    if p < bands * BAND {
        (p / BAND * BAND_ROWS * wc + p % BAND * 64, BAND * 64)
    } else {
        (bands * BAND_ROWS * wc + (p - bands * BAND) * PANEL * wc, 64)
    }
}

/// `N` adjacent panels' f32 sums over the whole blocks: `Σ_b s_b · Σ_{k∈b} (w + 128) · x_q`,
/// one FMA per block in block order, from 0. Their pieces start at `w`, the `N` panels' pieces
/// of one step adjacent and successive steps `STRIDE` bytes apart.
///
/// # Safety
/// `w` holds the panels' `nb` blocks in that order, `xq` `32·nb` values and `s` `nb` scales; the
/// CPU has AVX-512 F, BW and VNNI.
#[inline(always)]
unsafe fn panels<const N: usize, const STRIDE: usize>(
    w: *const u8,
    xq: *const i8,
    s: *const f32,
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
                    let wv = _mm512_loadu_si512(wp.add(k * STRIDE + g * 64) as *const __m512i);
                    *sum = _mm512_dpbusd_epi32(*sum, wv, xv);
                }
            }
            wp = wp.add(STEPS * STRIDE);
            let sv = _mm512_set1_ps(*s.add(b));
            for (a, sum) in acc.iter_mut().zip(sums) {
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), sv, *a);
            }
        }
        acc
    }
}

/// Row `o`'s value computed one row at a time, by the same operations as a panel's lane: the
/// exact integer sum of each block (`Σ (w + 128) · x_q`, from the signed weights), one fused
/// multiply-add per block in block order, then the offset, the tail columns and the scale.
fn row(p: &Product<'_>, o: usize) -> f32 {
    let mut acc = 0.0f32;
    let w = &p.w[o * p.cols..];
    for b in 0..p.nb {
        let k = b * super::Q8_BLOCK;
        let sum: i32 = w[k..k + super::Q8_BLOCK]
            .iter()
            .zip(&p.q[k..k + super::Q8_BLOCK])
            .map(|(&wv, &xv)| (wv as i32 + 128) * xv as i32)
            .sum();
        acc = (sum as f32).mul_add(p.s[b], acc);
    }
    let mut v = acc - p.off;
    if p.tail < p.cols {
        v += q8_row_tail(p.w, p.cols, p.tail, p.x, o);
    }
    v * p.scale[o]
}

/// Rows `first..first + rows` of a `total × cols` int8 matrix times one vector, reading the
/// offset weights in the [`pack`] order `packed` (the whole matrix's); `w`, `scale` and `y` are
/// those rows' signed weights, scales and outputs. Whole bands take the four-panel path, other
/// whole panels the one-panel path, and rows outside whole panels of the range go one at a time
/// ([`row`]); all give a row the same bits.
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
    let p = Product::new(w, scale, rows, cols, xq, x, y, store);
    let panels_total = total / PANEL;
    assert!(
        first + rows <= total && packed.len() >= panels_total * PANEL * whole(cols),
        "matvec_q8_vnni512: buffers too short"
    );
    let bands = total / BAND_ROWS;
    let end = first + rows;
    let mut r = first;
    while r < end {
        let panel = r / PANEL;
        let in_panels = r.is_multiple_of(PANEL) && panel < panels_total;
        if in_panels && panel.is_multiple_of(BAND) && panel / BAND < bands && r + BAND_ROWS <= end {
            let (at, stride) = locate(panel, total, cols);
            debug_assert_eq!(stride, BAND * 64);
            // SAFETY: the band is inside `packed` (checked above) and its rows inside the range;
            // the caller guarantees the CPU features.
            unsafe {
                let acc = panels::<BAND, { BAND * 64 }>(
                    packed.as_ptr().add(at),
                    p.q.as_ptr(),
                    p.s.as_ptr(),
                    p.nb,
                );
                for (g, a) in acc.into_iter().enumerate() {
                    p.finish(a, r + g * PANEL - first, y);
                }
            }
            r += BAND_ROWS;
        } else if in_panels && r + PANEL <= end {
            let (at, stride) = locate(panel, total, cols);
            // SAFETY: as above, for one panel.
            unsafe {
                let base = packed.as_ptr().add(at);
                let [a] = if stride == 64 {
                    panels::<1, 64>(base, p.q.as_ptr(), p.s.as_ptr(), p.nb)
                } else {
                    panels::<1, { BAND * 64 }>(base, p.q.as_ptr(), p.s.as_ptr(), p.nb)
                };
                p.finish(a, r - first, y);
            }
            r += PANEL;
        } else {
            let o = r - first;
            store_one(&mut y[o], row(&p, o), store);
            r += 1;
        }
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
    wo: &[u8],
    w: &[i8],
    scale: &[f32],
    rows: usize,
    cols: usize,
    xq: &QVec,
    x: &[f32],
    y: &mut [f32],
    store: Store,
) {
    let packed = pack(wo, rows, cols);
    // SAFETY: forwarded from the caller.
    unsafe { matvec_q8_vnni512(&packed, 0, rows, w, scale, rows, cols, xq, x, y, store) }
}

/// `y = v` or `y += v`.
#[inline(always)]
fn store_one(y: &mut f32, v: f32, store: Store) {
    match store {
        Store::Overwrite => *y = v,
        Store::Add => *y += v,
    }
}

/// What one product's paths share: the quantised vector, the f32 input (for the tail columns),
/// the signed weights, the row scales and how results are stored.
struct Product<'a> {
    q: &'a [i8],
    s: &'a [f32],
    off: f32,
    nb: usize,
    tail: usize,
    cols: usize,
    x: &'a [f32],
    w: &'a [i8],
    scale: &'a [f32],
    store: Store,
}

impl<'a> Product<'a> {
    /// Checks the buffers for `rows` rows (panics when they are too short).
    #[allow(clippy::too_many_arguments)]
    fn new(
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
        let tail = nb * super::Q8_BLOCK;
        assert!(
            w.len() >= rows * cols
                && scale.len() >= rows
                && xq.q.len() >= tail
                && x.len() >= cols
                && y.len() >= rows
                && tail == whole(cols),
            "matvec_q8_vnni512: buffers too short"
        );
        Self { q: &xq.q, s: &xq.s, off: xq.offset_sum, nb, tail, cols, x, w, scale, store }
    }

    /// Stores the panel of rows `o..o + 16` from its block sums `acc`: offset, tail columns,
    /// scale, as [`row`] does per row.
    ///
    /// # Safety
    /// Rows `o..o + 16` fit the buffers; AVX-512 F.
    #[inline(always)]
    unsafe fn finish(&self, acc: __m512, o: usize, y: &mut [f32]) {
        // SAFETY: the caller guarantees the rows and the CPU features.
        unsafe {
            let mut v = _mm512_sub_ps(acc, _mm512_set1_ps(self.off));
            if self.tail < self.cols {
                let t: [f32; PANEL] = std::array::from_fn(|r| {
                    q8_row_tail(self.w, self.cols, self.tail, self.x, o + r)
                });
                v = _mm512_add_ps(v, _mm512_loadu_ps(t.as_ptr()));
            }
            v = _mm512_mul_ps(v, _mm512_loadu_ps(self.scale.as_ptr().add(o)));
            let yp = y.as_mut_ptr().add(o);
            match self.store {
                Store::Overwrite => _mm512_storeu_ps(yp, v),
                Store::Add => _mm512_storeu_ps(yp, _mm512_add_ps(_mm512_loadu_ps(yp), v)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row range of every shape gives each row the bits of the one-row path: bands, lone
    /// panels, rows outside panels, tail columns, both stores.
    #[test]
    fn every_path_gives_a_row_the_same_bits() {
        if !super::super::vnni512_enabled() {
            return;
        }
        let pseudo = |n: usize, seed: u32| -> Vec<f32> {
            let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
            (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    (s % 2001) as f32 / 1000.0 - 1.0
                })
                .collect()
        };
        for &(total, cols) in
            &[(64, 32), (128, 384), (200, 96), (80, 167), (17, 64), (5, 40), (192, 768)]
        {
            let m = super::super::Matrix::int8(total, cols, &pseudo(total * cols, 3));
            let super::super::MatrixData::Int8 { q, scale } = m.data() else { unreachable!() };
            let offset: Vec<u8> = q.iter().map(|&v| (v as u8) ^ 0x80).collect();
            let packed = pack(&offset, total, cols);
            let x = pseudo(cols, 4);
            let mut qv = QVec::new();
            qv.quantize(&x);
            let one: Vec<f32> = {
                let p = Product::new(q, scale, total, cols, &qv, &x, &vec![0.0; total], Store::Add);
                (0..total).map(|o| row(&p, o)).collect()
            };
            for (start, end) in [
                (0, total),
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
                    // SAFETY: AVX-512 VNNI is enabled; the buffers hold the rows used.
                    unsafe {
                        matvec_q8_vnni512(
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
                            "{total}×{cols}, rows {start}..{end}, row {}",
                            start + o
                        );
                    }
                }
            }
        }
    }
}
