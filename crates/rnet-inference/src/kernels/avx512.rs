//! The int8 decode product with AVX-512 VNNI: 64 weights per `vpdpbusd` (two activation blocks
//! at once) instead of AVX-VNNI's 32. Every function requires AVX-512 F, BW, VL and VNNI.
//!
//! Per pair of [`Q8_BLOCK`](super::Q8_BLOCK)-element activation blocks and output row the
//! product is one 512-bit load of offset weights, one `vpdpbusd` (exact `(w + 128) · x` sums
//! per 4 bytes in i32, lanes 0–7 for the first block and 8–15 for the second), one conversion to
//! f32 and one FMA with the two blocks' scales (a 16-lane vector from [`QVec`]'s expanded
//! scales). Eight rows share each activation load, and their eight accumulators are summed
//! together (a transpose by `vhaddps`) so that a group of rows ends in one 8-lane store.

use super::{QVec, Store, q8_row_tail};
use std::arch::x86_64::*;

/// Rows per register block.
const R: usize = 8;

/// Bytes of one group of eight rows in the interleaved order: their whole blocks.
pub fn group_bytes(cols: usize) -> usize {
    R * (cols / super::Q8_BLOCK) * super::Q8_BLOCK
}

/// The offset weights `wo` (`rows × cols`, row-major) in the order [`matvec_q8_vnni512_il`]
/// reads them: for each group of eight whole rows, the 64-byte chunk `p` of row 0, of
/// row 1, …, of row 7, then chunk `p + 1`; an odd last block as 32-byte pieces the same way;
/// then the rows after the last whole group, row-major. Only whole blocks are kept (the columns
/// after them are read from the signed weights). The product reads each group from one
/// contiguous region in address order, which the hardware prefetchers follow better than eight
/// row streams `cols` bytes apart.
pub fn interleave(wo: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    let nb = cols / super::Q8_BLOCK;
    let whole = nb * super::Q8_BLOCK;
    let groups = rows / R;
    let mut out = Vec::with_capacity(groups * group_bytes(cols) + (rows - groups * R) * whole);
    for g in 0..groups {
        for p in 0..nb / 2 {
            for r in 0..R {
                let at = (g * R + r) * cols + p * 64;
                out.extend_from_slice(&wo[at..at + 64]);
            }
        }
        if nb % 2 == 1 {
            for r in 0..R {
                let at = (g * R + r) * cols + (nb - 1) * 32;
                out.extend_from_slice(&wo[at..at + 32]);
            }
        }
    }
    for row in groups * R..rows {
        out.extend_from_slice(&wo[row * cols..row * cols + whole]);
    }
    out
}

/// Where row `row`'s weights start in the [`interleave`] order of a `rows × cols` matrix, and
/// how the kernel steps through them.
fn locate(row: usize, rows: usize, cols: usize) -> (usize, Layout) {
    let whole = cols / super::Q8_BLOCK * super::Q8_BLOCK;
    let groups = rows / R;
    if row < groups * R {
        (row / R * group_bytes(cols), Layout::Interleaved { first: row % R })
    } else {
        (groups * group_bytes(cols) + (row - groups * R) * whole, Layout::RowMajor { cols: whole })
    }
}

/// Where the kernel reads row `r`'s weights of pair `p` (64 bytes) and of the odd last block
/// (32 bytes), from the first row's start: row-major rows `cols` bytes apart, or inside one
/// interleaved group from its row `first` on.
#[derive(Clone, Copy)]
enum Layout {
    RowMajor { cols: usize },
    Interleaved { first: usize },
}

impl Layout {
    #[inline(always)]
    fn pair(self, r: usize, p: usize) -> usize {
        match self {
            Layout::RowMajor { cols } => r * cols + p * 64,
            Layout::Interleaved { first } => (p * R + first + r) * 64,
        }
    }

    #[inline(always)]
    fn last_block(self, r: usize, nb: usize) -> usize {
        match self {
            Layout::RowMajor { cols } => r * cols + (nb - 1) * 32,
            Layout::Interleaved { first } => (nb / 2) * R * 64 + (first + r) * 32,
        }
    }
}

/// `N` offset-u8 rows · the quantised vector: per row the 8 partial sums (already scaled by the
/// activation block scales, before the offset is removed).
///
/// # Safety
/// `w` holds the `N` rows' `32·nb` bytes in `layout`, `xq` `32·nb` values and `s8` `8·nb`
/// expanded scales; the CPU has AVX-512 F, BW, VL and VNNI.
#[inline(always)]
unsafe fn rows_vnni512<const N: usize>(
    w: *const u8,
    layout: Layout,
    xq: *const i8,
    s8: *const f32,
    nb: usize,
) -> [__m256; N] {
    // SAFETY: the caller guarantees the buffers and the CPU features.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); N];
        let pairs = nb / 2;
        for p in 0..pairs {
            let xv = _mm512_loadu_si512(xq.add(p * 64) as *const __m512i);
            let sv = _mm512_loadu_ps(s8.add(p * 16));
            for r in 0..N {
                let wv = _mm512_loadu_si512(w.add(layout.pair(r, p)) as *const __m512i);
                let d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), sv, acc[r]);
            }
        }
        // Fold each row's 16 lanes to 8.
        let mut out = [_mm256_setzero_ps(); N];
        for r in 0..N {
            let lo = _mm512_castps512_ps256(acc[r]);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc[r])));
            out[r] = _mm256_add_ps(lo, hi);
        }
        // An odd last block: the same with 256-bit registers.
        if nb % 2 == 1 {
            let b = nb - 1;
            let xv = _mm256_loadu_si256(xq.add(b * 32) as *const __m256i);
            let sv = _mm256_loadu_ps(s8.add(b * 8));
            for r in 0..N {
                let wv = _mm256_loadu_si256(w.add(layout.last_block(r, nb)) as *const __m256i);
                let d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, xv);
                out[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), sv, out[r]);
            }
        }
        out
    }
}

/// The eight lane sums of eight vectors, in order: `[Σ v0, Σ v1, …, Σ v7]`.
#[inline(always)]
unsafe fn sum8(v: &[__m256; R]) -> __m256 {
    // SAFETY: register-only AVX operations; the caller guarantees AVX.
    unsafe {
        // Per 128-bit half: [v0₀₁, v0₂₃, v1₀₁, v1₂₃] …
        let t0 = _mm256_hadd_ps(v[0], v[1]);
        let t1 = _mm256_hadd_ps(v[2], v[3]);
        let t2 = _mm256_hadd_ps(v[4], v[5]);
        let t3 = _mm256_hadd_ps(v[6], v[7]);
        // … then [v0₀₋₃, v1₀₋₃, v2₀₋₃, v3₀₋₃ | v0₄₋₇, …].
        let u0 = _mm256_hadd_ps(t0, t1);
        let u1 = _mm256_hadd_ps(t2, t3);
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(u0, u1),
            _mm256_permute2f128_ps::<0x31>(u0, u1),
        )
    }
}

/// The lane sum of one vector, added in the same order as [`sum8`] adds each of its vectors (so
/// a row's value does not depend on whether it falls in a group of eight: threads split the
/// rows differently).
#[inline(always)]
unsafe fn sum1(v: __m256) -> f32 {
    // SAFETY: register-only AVX operations; the caller guarantees AVX.
    unsafe {
        let t = _mm256_hadd_ps(v, v); // [v₀₁, v₂₃, …] per half
        let u = _mm256_hadd_ps(t, t); // [v₀₋₃, …] | [v₄₋₇, …]
        _mm_cvtss_f32(_mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps::<1>(u)))
    }
}

/// The int8 matrix times one vector with block-quantised activations, on the row-major offset
/// weights `wo` (`w + 128` as unsigned bytes); `w` (the signed weights) serves the columns past
/// the last whole block. Same result as `avx2::matvec_q8_vnni` up to the order of the f32
/// additions, and bit for bit the result of [`matvec_q8_vnni512_il`] (tests compare them).
///
/// # Safety
/// `wo` and `w` hold `rows · cols` bytes, `scale` `rows` values, `xq` the output of
/// `QVec::quantize(&x[..cols])`, `x` `cols` and `y` `rows` floats; the CPU has AVX-512 F, BW, VL
/// and VNNI.
#[cfg(test)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8_vnni512(
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
    let p = Product::new(w, scale, rows, cols, xq, x, y, store);
    assert!(wo.len() >= rows * cols, "matvec_q8_vnni512: buffers too short");
    let layout = Layout::RowMajor { cols };
    let mut o = 0;
    // SAFETY: rows `o..o + R` (or `o`) are below `rows` and inside `wo` (checked); the caller
    // guarantees the CPU features.
    unsafe {
        while o + R <= rows {
            p.group(wo.as_ptr().add(o * cols), layout, o, y);
            o += R;
        }
        while o < rows {
            p.single(wo.as_ptr().add(o * cols), layout, o, y);
            o += 1;
        }
    }
}

/// Rows `first..first + rows` of a `total × cols` int8 matrix times one vector, reading the
/// offset weights in the [`interleave`] order `il` (the whole matrix's); `w`, `scale` and `y`
/// are those rows' signed weights, scales and outputs. Whole groups of eight rows take the
/// eight-row path; rows before the range's first group boundary and after its last whole
/// group go one at a time. Both paths sum a row the same way, so a row's value does not depend
/// on the range it is computed in.
///
/// # Safety
/// `il` is `interleave` of a `total × cols` matrix and `first + rows ≤ total`; `w` holds
/// `rows · cols` bytes, `scale` `rows` values, `xq` the output of `QVec::quantize(&x[..cols])`,
/// `x` `cols` and `y` `rows` floats; the CPU has AVX-512 F, BW, VL and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matvec_q8_vnni512_il(
    il: &[u8],
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
    let whole = cols / super::Q8_BLOCK * super::Q8_BLOCK;
    let (groups, gb) = (total / R, group_bytes(cols));
    assert!(
        first + rows <= total && il.len() >= groups * gb + total % R * whole,
        "matvec_q8_vnni512_il: buffers too short"
    );
    let single = |o: usize| {
        let (at, layout) = locate(first + o, total, cols);
        (il.as_ptr().wrapping_add(at), layout)
    };
    let mut o = 0;
    // SAFETY: every row is below `total`, so `locate` and the groups stay inside `il` (checked);
    // rows `o..o + R` (or `o`) are below `rows`; the caller guarantees the CPU features.
    unsafe {
        while o < rows && !(first + o).is_multiple_of(R) {
            let (wp, layout) = single(o);
            p.single(wp, layout, o, y);
            o += 1;
        }
        let mut wp = il.as_ptr().add((first + o) / R * gb);
        while o + R <= rows && (first + o) / R < groups {
            p.group(wp, Layout::Interleaved { first: 0 }, o, y);
            wp = wp.add(gb);
            o += R;
        }
        while o < rows {
            let (wp, layout) = single(o);
            p.single(wp, layout, o, y);
            o += 1;
        }
    }
}

/// What one product's row paths share: the quantised vector, the f32 input (for the tail
/// columns), the signed weights, the row scales and how results are stored.
struct Product<'a> {
    q: &'a [i8],
    s8: &'a [f32],
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
        let tail = nb * 32;
        assert!(
            w.len() >= rows * cols
                && scale.len() >= rows
                && xq.q.len() >= tail
                && xq.s8.len() >= 8 * nb
                && x.len() >= cols
                && y.len() >= rows
                && tail <= cols,
            "matvec_q8_vnni512: buffers too short"
        );
        Self { q: &xq.q, s8: &xq.s8, off: xq.offset_sum, nb, tail, cols, x, w, scale, store }
    }

    /// Rows `o..o + 8`, whose offset weights start at `wp` in `layout`.
    ///
    /// # Safety
    /// `wp` points at the eight rows' weights; `o + 8` rows fit the buffers; AVX-512 VNNI.
    #[inline(always)]
    unsafe fn group(&self, wp: *const u8, layout: Layout, o: usize, y: &mut [f32]) {
        let (cols, tail) = (self.cols, self.tail);
        // SAFETY: the caller guarantees the weights, the row range and the CPU features.
        unsafe {
            let acc = rows_vnni512::<R>(wp, layout, self.q.as_ptr(), self.s8.as_ptr(), self.nb);
            let mut v = _mm256_sub_ps(sum8(&acc), _mm256_set1_ps(self.off));
            if tail < cols {
                let t: [f32; R] =
                    std::array::from_fn(|r| q8_row_tail(self.w, cols, tail, self.x, o + r));
                v = _mm256_add_ps(v, _mm256_loadu_ps(t.as_ptr()));
            }
            v = _mm256_mul_ps(v, _mm256_loadu_ps(self.scale.as_ptr().add(o)));
            let yp = y.as_mut_ptr().add(o);
            match self.store {
                Store::Overwrite => _mm256_storeu_ps(yp, v),
                Store::Add => _mm256_storeu_ps(yp, _mm256_add_ps(_mm256_loadu_ps(yp), v)),
            }
        }
    }

    /// Row `o`, whose offset weights start at `wp` in `layout`: the same operations as a
    /// group's lane (the tail added only when there is one).
    ///
    /// # Safety
    /// `wp` points at the row's weights; row `o` fits the buffers; AVX-512 VNNI.
    #[inline(always)]
    unsafe fn single(&self, wp: *const u8, layout: Layout, o: usize, y: &mut [f32]) {
        let (cols, tail) = (self.cols, self.tail);
        // SAFETY: the caller guarantees the weights, the row and the CPU features.
        let [acc] =
            unsafe { rows_vnni512::<1>(wp, layout, self.q.as_ptr(), self.s8.as_ptr(), self.nb) };
        // SAFETY: register-only AVX operations.
        let mut v = unsafe { sum1(acc) } - self.off;
        if tail < cols {
            v += q8_row_tail(self.w, cols, tail, self.x, o);
        }
        let v = v * self.scale[o];
        match self.store {
            Store::Overwrite => y[o] = v,
            Store::Add => y[o] += v,
        }
    }
}
