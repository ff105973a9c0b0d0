//! Fast (non-consensus) kernels of the decode engine: row-major weight matrices in f32 or int8
//! (one f32 scale per output row), matrix–vector and matrix–matrix products, RMSNorm and the
//! activation functions.
//!
//! Unlike `rnet_model::kernels` nothing here is bit-exact: sums are split over several
//! accumulators and SIMD lanes, and on x86-64 with AVX2 + FMA products are fused. The engine is
//! held to the canonical forward by tolerance tests instead.
//!
//! On x86-64 the products run AVX2 + FMA code when the CPU has both (checked once at run time;
//! [`avx2`]), on aarch64 NEON code ([`neon`]; NEON is part of every aarch64 target, and the int8
//! decode product uses the dot-product instructions where the CPU has them, `neon_dot`);
//! everywhere else a portable version written so the compiler vectorises it.

use std::sync::OnceLock;

use crate::line_buf::LineBytes;

use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// When set, the SIMD paths are skipped (tests compare both paths).
static PORTABLE_ONLY: AtomicBool = AtomicBool::new(false);

/// Forces the portable kernels (`true`) or lets them use the SIMD kernels (AVX2 + FMA where the
/// CPU has it, NEON on aarch64; `false`, the default). Results differ only by rounding.
pub fn set_portable_only(portable: bool) {
    PORTABLE_ONLY.store(portable, Ordering::Relaxed);
}

/// Whether the SIMD kernels (AVX2 + FMA on x86-64, NEON on aarch64) are in use on this machine.
pub fn simd_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        let has = *DETECTED.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        });
        has && !PORTABLE_ONLY.load(Ordering::Relaxed)
    }
    #[cfg(target_arch = "aarch64")]
    {
        !PORTABLE_ONLY.load(Ordering::Relaxed)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// When set, the VNNI decode kernels are skipped (tests compare them with the AVX2 one).
static NO_VNNI: AtomicBool = AtomicBool::new(false);

/// Lets the int8 decode products use `vpdpbusd` (AVX-VNNI or AVX-512 VNNI) where the CPU has it
/// (`true`, the default) or keeps them on the AVX2 kernel (`false`). Every kernel gives the
/// same bits; only the speed differs.
pub fn set_vnni_allowed(allowed: bool) {
    NO_VNNI.store(!allowed, Ordering::Relaxed);
}

/// Whether the CPU has AVX-VNNI (CPUID leaf 7 sub-leaf 1, EAX bit 4) besides AVX2 + FMA. The
/// check is made by hand (and the instruction emitted by inline assembly) because Rust 1.85,
/// this workspace's minimum, has no stable `avxvnni` target feature.
// `__cpuid_count` is an unsafe function before Rust 1.89 and a safe one after.
#[allow(unused_unsafe)]
fn avx_vnni_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            if !(std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"))
            {
                return false;
            }
            // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is within the maximum leaf when
            // AVX2 (reported in leaf 7) was detected.
            let max_sub = unsafe { std::arch::x86_64::__cpuid_count(7, 0) }.eax;
            // SAFETY: as above; sub-leaf 1 exists when the maximum sub-leaf is at least 1.
            max_sub >= 1 && unsafe { std::arch::x86_64::__cpuid_count(7, 1) }.eax & (1 << 4) != 0
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU can run the 256-bit VNNI product: with the VEX encoding of `vpdpbusd`
/// (AVX-VNNI) or the EVEX one (AVX-512 VNNI + VL; [`avx2::matvec_q8_vnni_evex`]).
fn vnni256_detected() -> bool {
    avx_vnni_detected() || vnni512_detected()
}

/// The 256-bit VNNI product in the encoding this CPU has (VEX where it has AVX-VNNI). Only
/// called where [`vnni256_detected`].
#[cfg(target_arch = "x86_64")]
fn vnni256_kernel() -> packed::Kernel {
    if avx_vnni_detected() { avx2::matvec_q8_vnni } else { avx2::matvec_q8_vnni_evex }
}

/// Whether the int8 decode products may use a VNNI kernel now (which width: [`vnni512_enabled`]).
pub fn vnni_enabled() -> bool {
    simd_enabled() && vnni256_detected() && !NO_VNNI.load(Ordering::Relaxed)
}

/// The choice between the 512-bit and the 256-bit VNNI kernels: [`AVX512_MEASURED`] (the
/// default), [`AVX512_ON`] or [`AVX512_OFF`].
static AVX512_CHOICE: AtomicU8 = AtomicU8::new(AVX512_MEASURED);
const AVX512_MEASURED: u8 = 0;
const AVX512_ON: u8 = 1;
const AVX512_OFF: u8 = 2;

/// How the int8 decode products choose the 512-bit VNNI kernel on a CPU that has AVX-512 VNNI:
/// `None` (the default) uses it unless the 256-bit kernel measured faster
/// ([`avx512_measured_faster`]); `Some(true)` uses it; `Some(false)` keeps to the 256-bit
/// kernels (VNNI in the encoding the CPU has, or AVX2). Every kernel gives the same bits; only
/// the speed differs.
pub fn set_avx512(choice: Option<bool>) {
    let v = match choice {
        None => AVX512_MEASURED,
        Some(true) => AVX512_ON,
        Some(false) => AVX512_OFF,
    };
    AVX512_CHOICE.store(v, Ordering::Relaxed);
}

/// Whether the 512-bit VNNI product streams int8 weights at least as fast as the 256-bit one on
/// this CPU, measured once per process on a CPU with AVX-512 VNNI (where the 256-bit kernel
/// always exists too: AVX-VNNI, or the EVEX encoding on 256-bit registers). On the development
/// machines (AMD EPYC, Zen 4 and Zen 5) the 256-bit kernel reads the decode's weights from L3
/// faster (docs/inference.md §7), so which is faster is a property of the core, not of the
/// width. The measurement: 4 MiB of matrices (beyond L2, like the decode's weights) packed for
/// both, eight alternating passes each, the best pass of each compared; about 20 ms.
pub fn avx512_measured_faster() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static FASTER: OnceLock<bool> = OnceLock::new();
        *FASTER.get_or_init(|| {
            if !vnni512_detected() {
                return false;
            }
            let (t512, t256) = time_vnni_kernels();
            tracing::debug!(
                avx512_us = t512 * 1e6,
                vnni256_us = t256 * 1e6,
                "int8 decode kernel measured"
            );
            t512 <= t256
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The best of eight alternating passes of the 512-bit and the 256-bit VNNI product over 36
/// int8 matrices of 112 × 1024 back to back (4 MiB: beyond L2, like the decode's weights), in
/// seconds. Each buffer stays below glibc's default 128 KiB `mmap` threshold: freeing a larger
/// `mmap`ed block would raise that threshold for the rest of the process, and later
/// allocations up to that size would then come from the heap and stay resident when freed.
#[cfg(target_arch = "x86_64")]
fn time_vnni_kernels() -> (f64, f64) {
    let (count, rows, cols) = (36, 112, 1024);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mats: Vec<(Vec<i8>, LineBytes, LineBytes)> = (0..count)
        .map(|_| {
            let q: Vec<i8> = (0..rows * cols).map(|_| (next() % 255) as i8).collect();
            let (p512, p256) = (avx512::pack(&q, rows, cols), avx2::pack_vnni(&q, rows, cols));
            (q, p512, p256)
        })
        .collect();
    let scale = vec![1.0f32 / 127.0; rows];
    let x: Vec<f32> = (0..cols).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
    let mut xq = QVec::new();
    xq.quantize(&x);
    let mut y = vec![0.0f32; rows];
    use packed::Kernel;
    // One pass of `kernel` over every matrix's packed copy `pick`, in seconds.
    let mut pass = |kernel: Kernel, pick: fn(&(Vec<i8>, LineBytes, LineBytes)) -> &LineBytes| {
        let t0 = std::time::Instant::now();
        for m in &mats {
            // SAFETY: both VNNI extensions were detected (the caller's check); the buffers hold
            // the whole matrix and `pick` gives the copy packed for `kernel`.
            unsafe {
                kernel(
                    pick(m),
                    0,
                    rows,
                    &m.0,
                    &scale,
                    rows,
                    cols,
                    &xq,
                    &x,
                    &mut y,
                    Store::Overwrite,
                )
            };
        }
        t0.elapsed().as_secs_f64()
    };
    let (mut t512, mut t256) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..8 {
        t512 = t512.min(pass(avx512::matvec_q8_vnni512, |m| &m.1));
        t256 = t256.min(pass(vnni256_kernel(), |m| &m.2));
    }
    std::hint::black_box(&y);
    (t512, t256)
}

/// Whether the CPU has AVX-512 F, BW, VL and VNNI besides AVX2 + FMA.
fn vnni512_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the int8 decode products use AVX-512 VNNI now (see [`set_avx512`]).
pub fn vnni512_enabled() -> bool {
    simd_enabled()
        && vnni512_detected()
        && !NO_VNNI.load(Ordering::Relaxed)
        && match AVX512_CHOICE.load(Ordering::Relaxed) {
            AVX512_ON => true,
            AVX512_OFF => false,
            _ => avx512_measured_faster(),
        }
}

/// When set, the dot-product int8 decode kernel is skipped on aarch64 (tests compare it with
/// the plain NEON one).
static NO_DOTPROD: AtomicBool = AtomicBool::new(false);

/// Lets the int8 decode products use the Armv8.2 dot-product instructions where the CPU has
/// them (`true`, the default) or keeps them on the plain NEON kernel (`false`). Results differ
/// only by rounding.
pub fn set_dotprod_allowed(allowed: bool) {
    NO_DOTPROD.store(!allowed, Ordering::Relaxed);
}

/// Whether the CPU is aarch64 with the dot-product extension (`sdot`; reported by the kernel).
fn dotprod_detected() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        *DETECTED.get_or_init(|| std::arch::is_aarch64_feature_detected!("dotprod"))
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

/// Whether the int8 decode products use the dot-product kernel now.
pub fn dotprod_enabled() -> bool {
    simd_enabled() && dotprod_detected() && !NO_DOTPROD.load(Ordering::Relaxed)
}

/// The kernels in use now, for reports: `"avx512-vnni …"` (512-bit), `"avx-vnni …"` or
/// `"avx512-vnni 256-bit …"` (the 256-bit kernel, VEX or EVEX), `"avx2+fma"`,
/// `"neon+dotprod …"`, `"neon"` or `"portable"`.
pub fn kernel_name() -> &'static str {
    if vnni512_enabled() {
        "avx512-vnni (int8 decode) + avx2+fma"
    } else if vnni_enabled() && avx_vnni_detected() {
        "avx-vnni (int8 decode) + avx2+fma"
    } else if vnni_enabled() {
        "avx512-vnni 256-bit (int8 decode) + avx2+fma"
    } else if dotprod_enabled() {
        "neon+dotprod (int8 decode) + neon"
    } else if simd_enabled() && cfg!(target_arch = "aarch64") {
        "neon"
    } else if simd_enabled() {
        "avx2+fma"
    } else {
        "portable"
    }
}

/// Fewest positions per thread when a product is split across threads.
const PAR_MIN_POSITIONS: usize = 8;

/// Fewest multiply-adds (`rows · cols · n_t`) worth splitting across threads.
const PAR_MIN_WORK: usize = 1 << 20;

/// Storage of a weight matrix.
#[derive(Clone, Debug, PartialEq)]
pub enum MatrixData {
    /// f32 values, row-major.
    F32(Vec<f32>),
    /// int8 values, row-major, with one scale per row: `w[o][k] ≈ q[o][k] · scale[o]`.
    Int8 {
        /// Quantised values in `-127..=127`.
        q: Vec<i8>,
        /// Per-row scale (`max |w[o][·]| / 127`, or 0 for an all-zero row).
        scale: Vec<f32>,
    },
}

/// A `[rows, cols]` row-major weight matrix applied as `y = W x`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: MatrixData,
    /// For int8 on VNNI machines: the weights plus 128 as unsigned bytes (`vpdpbusd`
    /// multiplies unsigned by signed bytes; the offset is taken out once per product), in the
    /// packed order of the 256-bit kernel ([`avx2::pack_vnni`]: 8-row panels). Built with the
    /// matrix where that kernel is the one in use, on first use elsewhere (an AVX-512 machine told
    /// to keep to 256 bits), so an AVX-512 machine holds the weights twice, not three times.
    offset: OnceLock<LineBytes>,
    /// For int8 on AVX2 machines without VNNI: the signed weights in the packed order of the
    /// AVX2 decode kernel (`avx2::pack_signed`: 8-row panels). Built with the matrix where that
    /// kernel is the one in use, on first use elsewhere (a VNNI machine told not to use VNNI).
    /// On aarch64 with the dot-product extension: the signed weights in the order of that kernel
    /// (`neon_dot::pack`: 4-row panels), built with the matrix.
    signed_packed: OnceLock<LineBytes>,
    /// For int8 on AVX-512 VNNI machines: the same offset weights in the order the 512-bit
    /// kernel reads them ([`avx512::pack`]: per panel of 16 rows, four columns of each row per
    /// 64 bytes, four panels side by side), so sixteen rows sit in the lanes of one vector and a
    /// band of 64 rows is read as one forward stream.
    offset_packed: OnceLock<LineBytes>,
}

/// What a product does with its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// `y = W x`.
    Overwrite,
    /// `y = y + W x` (residual updates).
    Add,
}

impl Matrix {
    /// An f32 matrix. `values.len()` must be `rows · cols` (checked by the engine that builds it).
    pub fn f32(rows: usize, cols: usize, values: Vec<f32>) -> Self {
        debug_assert_eq!(values.len(), rows * cols);
        Self {
            rows,
            cols,
            data: MatrixData::F32(values),
            offset: OnceLock::new(),
            signed_packed: OnceLock::new(),
            offset_packed: OnceLock::new(),
        }
    }

    /// An int8 matrix quantised from f32 `values` with one symmetric scale per row
    /// (`scale = max |row| / 127`, `q = round(w / scale)`).
    pub fn int8(rows: usize, cols: usize, values: &[f32]) -> Self {
        debug_assert_eq!(values.len(), rows * cols);
        let mut q = vec![0i8; rows * cols];
        let mut scale = vec![0.0f32; rows];
        for ((row, qrow), s) in
            values.chunks_exact(cols).zip(q.chunks_exact_mut(cols)).zip(&mut scale)
        {
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if max > 0.0 && max.is_finite() {
                *s = max / 127.0;
                let inv = 127.0 / max;
                for (qv, &v) in qrow.iter_mut().zip(row) {
                    *qv = (v * inv).round().clamp(-127.0, 127.0) as i8;
                }
            }
        }
        let (offset, signed_packed, offset_packed) =
            (OnceLock::new(), OnceLock::new(), OnceLock::new());
        // The packed copy for the kernel in use now; another kernel chosen later (tests, the
        // bench) builds its own on first use.
        #[cfg(target_arch = "x86_64")]
        if vnni512_enabled() {
            let _ = offset_packed.set(avx512::pack(&q, rows, cols));
        } else if vnni_enabled() {
            let _ = offset.set(avx2::pack_vnni(&q, rows, cols));
        } else if simd_enabled() {
            let _ = signed_packed.set(avx2::pack_signed(&q, rows, cols));
        }
        #[cfg(target_arch = "aarch64")]
        if dotprod_detected() {
            let _ = signed_packed.set(neon_dot::pack(&q, rows, cols));
        }
        Self {
            rows,
            cols,
            data: MatrixData::Int8 { q, scale },
            offset,
            signed_packed,
            offset_packed,
        }
    }

    /// The offset weights of an int8 matrix on a VNNI machine in the 256-bit kernel's packed
    /// order (see `offset`).
    #[cfg(target_arch = "x86_64")]
    fn offset(&self) -> Option<&[u8]> {
        match &self.data {
            MatrixData::Int8 { q, .. } if vnni256_detected() => {
                Some(self.offset.get_or_init(|| avx2::pack_vnni(q, self.rows, self.cols)))
            }
            _ => None,
        }
    }

    /// The offset weights of an int8 matrix in the 512-bit kernel's packed order (see
    /// `offset_packed`).
    #[cfg(target_arch = "x86_64")]
    fn offset_packed(&self) -> Option<&[u8]> {
        match &self.data {
            MatrixData::Int8 { q, .. } if vnni512_detected() => {
                Some(self.offset_packed.get_or_init(|| avx512::pack(q, self.rows, self.cols)))
            }
            _ => None,
        }
    }

    /// The signed weights of an int8 matrix in the AVX2 kernel's packed order (see
    /// `signed_packed`).
    #[cfg(target_arch = "x86_64")]
    fn signed_packed(&self) -> Option<&[u8]> {
        match &self.data {
            MatrixData::Int8 { q, .. } => {
                Some(self.signed_packed.get_or_init(|| avx2::pack_signed(q, self.rows, self.cols)))
            }
            MatrixData::F32(_) => None,
        }
    }

    /// The signed weights of an int8 matrix in the dot-product kernel's packed order (see
    /// `signed_packed`).
    #[cfg(target_arch = "aarch64")]
    fn signed_packed(&self) -> Option<&[u8]> {
        match &self.data {
            MatrixData::Int8 { q, .. } => {
                Some(self.signed_packed.get_or_init(|| neon_dot::pack(q, self.rows, self.cols)))
            }
            MatrixData::F32(_) => None,
        }
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The storage.
    pub fn data(&self) -> &MatrixData {
        &self.data
    }

    /// Bytes read by one full product (values plus scales).
    pub fn bytes(&self) -> usize {
        match &self.data {
            MatrixData::F32(v) => 4 * v.len(),
            MatrixData::Int8 { q, scale } => q.len() + 4 * scale.len(),
        }
    }

    /// The value at `(row, col)` as f32 (dequantised for int8).
    pub fn get(&self, row: usize, col: usize) -> f32 {
        let i = row * self.cols + col;
        match &self.data {
            MatrixData::F32(v) => v[i],
            MatrixData::Int8 { q, scale } => q[i] as f32 * scale[row],
        }
    }

    /// `y = W x` or `y += W x` for one vector: `x.len() == cols`, `y.len() == rows`.
    pub fn matvec(&self, x: &[f32], y: &mut [f32], store: Store) {
        self.matmul(x, 1, y, store);
    }

    /// `y = W[rows] x` or `y += W[rows] x` for the output rows `rows` only (`y.len() ==
    /// rows.len()`, `x.len() == cols`): the piece of a product one decode thread computes.
    /// `xq` is `x` prepared by [`QVec::quantize`]; when it is given, the matrix is int8 and the
    /// AVX2 kernels are in use, the product runs on the quantised activations.
    ///
    /// # Panics
    /// When the slices or the range do not fit the matrix (a programming error).
    pub fn matvec_rows(
        &self,
        rows: std::ops::Range<usize>,
        x: &[f32],
        xq: Option<&QVec>,
        y: &mut [f32],
        store: Store,
    ) {
        let cols = self.cols;
        let n = rows.len();
        assert!(
            rows.end <= self.rows && x.len() >= cols && y.len() >= n,
            "matvec_rows: slices too short"
        );
        if n == 0 {
            return;
        }
        let wr = rows.start * cols..rows.end * cols;
        #[cfg(target_arch = "x86_64")]
        {
            if simd_enabled() {
                // SAFETY: AVX2 and FMA are present (checked by `simd_enabled`); the sub-slices
                // hold `n` rows of `cols` weights (and `n` scales), `x` `cols` floats, `y` `n`.
                unsafe {
                    match (&self.data, xq) {
                        (MatrixData::Int8 { q, scale }, Some(xq))
                            if xq.len == cols && vnni512_enabled() =>
                        {
                            let packed = self.offset_packed().unwrap_or_default();
                            avx512::matvec_q8_vnni512(
                                packed,
                                rows.start,
                                self.rows,
                                &q[wr],
                                &scale[rows],
                                n,
                                cols,
                                xq,
                                x,
                                y,
                                store,
                            );
                        }
                        (MatrixData::Int8 { q, scale }, Some(xq))
                            if xq.len == cols && vnni_enabled() =>
                        {
                            let packed = self.offset().unwrap_or_default();
                            vnni256_kernel()(
                                packed,
                                rows.start,
                                self.rows,
                                &q[wr],
                                &scale[rows],
                                n,
                                cols,
                                xq,
                                x,
                                y,
                                store,
                            );
                        }
                        (MatrixData::Int8 { q, scale }, Some(xq)) if xq.len == cols => {
                            let packed = self.signed_packed().unwrap_or_default();
                            avx2::matvec_q8(
                                packed,
                                rows.start,
                                self.rows,
                                &q[wr],
                                &scale[rows],
                                n,
                                cols,
                                xq,
                                x,
                                y,
                                store,
                            );
                        }
                        (MatrixData::Int8 { q, scale }, _) => {
                            avx2::matmul::<i8>(&q[wr], Some(&scale[rows]), n, cols, x, 1, y, store)
                        }
                        (MatrixData::F32(w), _) => {
                            avx2::matmul::<f32>(&w[wr], None, n, cols, x, 1, y, store)
                        }
                    }
                }
                return;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if simd_enabled() {
                // SAFETY: the sub-slices hold `n` rows of `cols` weights (and `n` scales), `x`
                // `cols` floats, `y` `n`; `xq` quantised `x` when its length is `cols`; the
                // dot-product kernel runs only where the CPU has the extension
                // (`dotprod_enabled`) and reads the packed weights of the whole matrix.
                unsafe {
                    match (&self.data, xq) {
                        (MatrixData::Int8 { q, scale }, Some(xq))
                            if xq.len == cols && dotprod_enabled() =>
                        {
                            let packed = self.signed_packed().unwrap_or_default();
                            neon_dot::matvec_q8_dot(
                                packed,
                                rows.start,
                                self.rows,
                                &q[wr],
                                &scale[rows],
                                n,
                                cols,
                                xq,
                                x,
                                y,
                                store,
                            );
                        }
                        (MatrixData::Int8 { q, scale }, Some(xq)) if xq.len == cols => {
                            neon::matvec_q8(&q[wr], &scale[rows], n, cols, xq, x, y, store);
                        }
                        (MatrixData::Int8 { q, scale }, _) => {
                            neon::matmul::<i8>(&q[wr], Some(&scale[rows]), n, cols, x, 1, y, store)
                        }
                        (MatrixData::F32(w), _) => {
                            neon::matmul::<f32>(&w[wr], None, n, cols, x, 1, y, store)
                        }
                    }
                }
                return;
            }
        }
        let _ = xq;
        match &self.data {
            MatrixData::F32(w) => portable_matmul(&w[wr], None, n, cols, x, 1, y, store),
            MatrixData::Int8 { q, scale } => {
                portable_matmul(&q[wr], Some(&scale[rows]), n, cols, x, 1, y, store)
            }
        }
    }

    /// Whether [`Matrix::matvec_rows`] would use quantised activations for this matrix now
    /// (int8 weights and the SIMD kernels in use): then the caller prepares a [`QVec`].
    pub fn wants_qvec(&self) -> bool {
        matches!(self.data, MatrixData::Int8 { .. }) && simd_enabled()
    }

    /// The product over `n_t` vectors: `x` is `[n_t, cols]`, `y` is `[n_t, rows]`.
    ///
    /// # Panics
    /// When a slice is shorter than the dimensions say (a programming error).
    pub fn matmul(&self, x: &[f32], n_t: usize, y: &mut [f32], store: Store) {
        let (rows, cols) = (self.rows, self.cols);
        assert!(x.len() >= n_t * cols && y.len() >= n_t * rows, "matmul: slices too short");
        if n_t == 0 || rows == 0 {
            return;
        }
        // Large position blocks (prefill) are split across threads by positions; every thread
        // reads the whole matrix (from the shared cache) and writes its own rows of `y`.
        let threads = rayon::current_num_threads();
        if threads > 1 && n_t >= 2 * PAR_MIN_POSITIONS && rows * cols * n_t >= PAR_MIN_WORK {
            let per = n_t.div_ceil(threads).max(PAR_MIN_POSITIONS);
            y[..n_t * rows]
                .par_chunks_mut(per * rows)
                .zip(x[..n_t * cols].par_chunks(per * cols))
                .for_each(|(yc, xc)| self.matmul_serial(xc, xc.len() / cols, yc, store));
            return;
        }
        self.matmul_serial(x, n_t, y, store);
    }

    fn matmul_serial(&self, x: &[f32], n_t: usize, y: &mut [f32], store: Store) {
        let (rows, cols) = (self.rows, self.cols);
        #[cfg(target_arch = "x86_64")]
        {
            if simd_enabled() {
                if let (MatrixData::Int8 { .. }, 1) = (&self.data, n_t) {
                    Q8_SCRATCH.with(|cell| {
                        let mut xq = cell.borrow_mut();
                        xq.quantize(&x[..cols]);
                        // The decode product on the quantised vector, with the fastest kernel.
                        self.matvec_rows(0..rows, x, Some(&xq), y, store);
                    });
                    return;
                }
                // SAFETY: AVX2 and FMA are present (checked by `simd_enabled`), and the slice
                // lengths were checked above.
                unsafe {
                    match &self.data {
                        MatrixData::F32(w) => {
                            avx2::matmul::<f32>(w, None, rows, cols, x, n_t, y, store)
                        }
                        MatrixData::Int8 { q, scale } => {
                            avx2::matmul::<i8>(q, Some(scale), rows, cols, x, n_t, y, store)
                        }
                    }
                }
                return;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if simd_enabled() {
                if let (MatrixData::Int8 { .. }, 1) = (&self.data, n_t) {
                    Q8_SCRATCH.with(|cell| {
                        let mut xq = cell.borrow_mut();
                        xq.quantize(&x[..cols]);
                        // The decode product on the quantised vector, with the fastest kernel.
                        self.matvec_rows(0..rows, x, Some(&xq), y, store);
                    });
                    return;
                }
                // SAFETY: the slice lengths were checked above.
                unsafe {
                    match &self.data {
                        MatrixData::F32(w) => {
                            neon::matmul::<f32>(w, None, rows, cols, x, n_t, y, store)
                        }
                        MatrixData::Int8 { q, scale } => {
                            neon::matmul::<i8>(q, Some(scale), rows, cols, x, n_t, y, store)
                        }
                    }
                }
                return;
            }
        }
        match &self.data {
            MatrixData::F32(w) => portable_matmul(w, None, rows, cols, x, n_t, y, store),
            MatrixData::Int8 { q, scale } => {
                portable_matmul(q, Some(scale), rows, cols, x, n_t, y, store)
            }
        }
    }
}

/// Block length of the activation quantisation of the int8 decode product.
pub const Q8_BLOCK: usize = 32;

thread_local! {
    /// Per-thread buffers of the quantised activation vector.
    static Q8_SCRATCH: std::cell::RefCell<QVec> = const { std::cell::RefCell::new(QVec::new()) };
}

/// An activation vector quantised for the int8 decode products: the int8 values of
/// [`quantize_q8`], the per-block scales, and each block's sum of values (the VNNI kernels
/// multiply `w + 128`, so they take `128 ·` that sum out of each block's integer sum, exactly).
#[derive(Clone, Debug, Default)]
pub struct QVec {
    q: Vec<i8>,
    s: Vec<f32>,
    /// `Σ_{k∈b} q_k` per block.
    sums: Vec<i32>,
    /// Length of the vector quantised (elements past the last whole block are read in f32).
    len: usize,
}

impl QVec {
    /// An empty vector (buffers grow on the first [`QVec::quantize`] and are reused after).
    pub const fn new() -> Self {
        Self { q: Vec::new(), s: Vec::new(), sums: Vec::new(), len: 0 }
    }

    /// Quantises `x` (see [`quantize_q8`]); allocation-free once the buffers have grown.
    pub fn quantize(&mut self, x: &[f32]) {
        quantize_q8(x, &mut self.q, &mut self.s);
        self.sums.clear();
        self.sums.extend(
            self.q.chunks_exact(Q8_BLOCK).map(|b| b.iter().map(|&v| v as i32).sum::<i32>()),
        );
        self.len = x.len();
    }

    /// The int8 values (whole blocks only).
    pub fn values(&self) -> &[i8] {
        &self.q
    }

    /// The per-block scales.
    pub fn scales(&self) -> &[f32] {
        &self.s
    }
}

/// Quantises the whole blocks of [`Q8_BLOCK`] elements of `x` to int8, symmetric with one f32
/// scale per block (`scale = max |block| / 127`). Elements past the last whole block are left
/// out (products take them as f32).
///
/// The int8 decode product (one vector, AVX2) multiplies int8 weights by these int8 activations
/// with integer multiply-adds (`vpmaddubsw`/`vpmaddwd`, exact) and scales each block's sum in
/// f32: about twice the throughput of converting every weight to f32, at the cost of rounding
/// the activations to 8 bits per block.
pub fn quantize_q8(x: &[f32], q: &mut Vec<i8>, scales: &mut Vec<f32>) {
    let nb = x.len() / Q8_BLOCK;
    q.clear();
    q.resize(nb * Q8_BLOCK, 0);
    scales.clear();
    scales.resize(nb, 0.0);
    #[cfg(target_arch = "x86_64")]
    {
        if simd_enabled() {
            // SAFETY: AVX2 and FMA are present.
            unsafe { quantize_q8_avx2(x, q, scales) };
            return;
        }
    }
    quantize_q8_impl(x, q, scales);
}

/// [`quantize_q8_impl`] in AVX2 (`vcvtps2dq` rounds to nearest even, as `round_ties_even`).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `q` holds `32 · scales.len()` values and `x` at least as
/// many.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_q8_avx2(x: &[f32], q: &mut [i8], scales: &mut [f32]) {
    use std::arch::x86_64::*;
    for ((xb, qb), s) in x.chunks_exact(Q8_BLOCK).zip(q.chunks_exact_mut(Q8_BLOCK)).zip(scales) {
        // SAFETY: each block has 32 floats in `xb` and 32 bytes in `qb`; AVX2 is present.
        unsafe {
            let p = xb.as_ptr();
            let a = [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ];
            let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
            let m = _mm256_max_ps(
                _mm256_max_ps(_mm256_and_ps(a[0], abs), _mm256_and_ps(a[1], abs)),
                _mm256_max_ps(_mm256_and_ps(a[2], abs), _mm256_and_ps(a[3], abs)),
            );
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_shuffle_ps::<0b01>(m, m));
            let max = _mm_cvtss_f32(m);
            if !(max > 0.0 && max.is_finite()) {
                *s = 0.0;
                qb.fill(0);
                continue;
            }
            *s = max / 127.0;
            let inv = _mm256_set1_ps(127.0 / max);
            let i = a.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, inv)));
            let packed =
                _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
            // The packs work per 128-bit lane; put the 4-byte groups back in order.
            let ordered =
                _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(qb.as_mut_ptr() as *mut __m256i, ordered);
        }
    }
}

#[inline(always)]
fn quantize_q8_impl(x: &[f32], q: &mut [i8], scales: &mut [f32]) {
    for ((xb, qb), s) in x.chunks_exact(Q8_BLOCK).zip(q.chunks_exact_mut(Q8_BLOCK)).zip(scales) {
        // Lane-wise maxima (vectorised), then across lanes.
        let mut m8 = [0.0f32; 8];
        for c in xb.chunks_exact(8) {
            for l in 0..8 {
                m8[l] = m8[l].max(c[l].abs());
            }
        }
        let max = m8.iter().fold(0.0f32, |m, &v| m.max(v));
        if max > 0.0 && max.is_finite() {
            *s = max / 127.0;
            let inv = 127.0 / max;
            for (qv, &v) in qb.iter_mut().zip(xb) {
                *qv = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
            }
        } else {
            *s = 0.0;
            qb.fill(0);
        }
    }
}

/// Channels per block of the conv layout (see [`conv_index`]).
pub const CONV_BLOCK: usize = 16;

/// Where row `k` of channel `ch` lives in a conv array of `r` rows in the channel-blocked
/// layout `[⌈d/16⌉, r, 16]`: the merged conv taps (row `k` multiplies the input `k` positions
/// back) and a session's conv history (row `p mod r` holds position `p`'s input) both use it.
/// A decode thread convolves its own channels; in this layout each block of 16 of them reads
/// its `r` taps and its `r` history rows as two contiguous runs of `16 · r` values, where in
/// the `[r, d]` layout it read `2r` pieces of 64 bytes `4d` bytes apart, which the prefetchers
/// follow poorly (half the channels of the mainnet shape, 6 layers from L3: 20 → 14 µs).
#[inline(always)]
pub fn conv_index(r: usize, k: usize, ch: usize) -> usize {
    ((ch / CONV_BLOCK) * r + k) * CONV_BLOCK + ch % CONV_BLOCK
}

/// Length of a conv array of `r` rows of `d` channels in the layout of [`conv_index`] (`d`
/// rounded up to whole blocks; the padding channels are never read).
pub fn conv_len(r: usize, d: usize) -> usize {
    d.div_ceil(CONV_BLOCK) * CONV_BLOCK * r
}

/// `rows` (`[r, d]`, row-major) in the layout of [`conv_index`].
pub fn conv_blocked(rows: &[f32], r: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; conv_len(r, d)];
    for (k, row) in rows.chunks_exact(d).take(r).enumerate() {
        for (ch, &v) in row.iter().enumerate() {
            out[conv_index(r, k, ch)] = v;
        }
    }
    out
}

/// The depthwise causal convolution of channels `c0..c0 + c.len()` (all of them, or one decode
/// thread's) at one position: writes `u` (the current conv input of those channels) into ring
/// row `slot`, then `c[j] = Σ_{k<r} conv[k][c0 + j] · ring[(slot − k) mod r][c0 + j]`. `conv`
/// (the merged taps) and the ring (the last `r` inputs) are in the layout of [`conv_index`].
///
/// # Safety
/// `ring` points at [`conv_len`]`(r, d)` floats, `c0 + c.len() ≤ d`, `u.len() == c.len()`,
/// `conv` holds at least as many, and nobody else reads or writes those channels of the ring
/// during the call (other threads may use other channels: no slice of the ring is formed).
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
    #[cfg(target_arch = "x86_64")]
    {
        if simd_enabled() {
            // SAFETY: AVX2 and FMA are present; the caller guarantees the rest.
            unsafe { avx2::ring_conv_cols(conv, d, c0, r, slot, u, ring, c) };
            return;
        }
    }
    // SAFETY: the caller guarantees the buffers.
    unsafe { ring_conv_cols_impl(conv, d, c0, r, slot, u, ring, c) };
}

/// The element type of a conv history: what the ring stores of each input and how it is read
/// back (f32 as it is; f16 bits rounded to nearest even and converted without branches).
trait History: Copy {
    /// The value stored for input `v`.
    fn stored(v: f32) -> Self;
    /// The stored value as f32.
    fn value(self) -> f32;
}

impl History for f32 {
    #[inline(always)]
    fn stored(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn value(self) -> f32 {
        self
    }
}

/// IEEE binary16 bits.
impl History for u16 {
    #[inline(always)]
    fn stored(v: f32) -> Self {
        f16_bits(v)
    }
    #[inline(always)]
    fn value(self) -> f32 {
        f16_lanes(self)
    }
}

/// The portable [`ring_conv_cols`] and [`ring_conv_cols_f16`].
///
/// # Safety
/// As [`ring_conv_cols`], with `ring` pointing at [`conv_len`]`(r, d)` values of `T`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn ring_conv_cols_impl<T: History>(
    conv: &[f32],
    d: usize,
    c0: usize,
    r: usize,
    slot: usize,
    u: &[f32],
    ring: *mut T,
    c: &mut [f32],
) {
    let n = c.len();
    assert!(
        conv.len() >= conv_len(r, d) && c0 + n <= d && u.len() >= n && slot < r,
        "ring_conv_cols: buffers too short"
    );
    for (j, &v) in u[..n].iter().enumerate() {
        // SAFETY: row `slot` of channel `c0 + j` belongs to the caller alone.
        unsafe { *ring.add(conv_index(r, slot, c0 + j)) = T::stored(v) };
    }
    // Two whole blocks of channels at a time where the range allows, else one block (or the
    // part of it in range): their sums stay in registers over all `r` taps (tap `k` reads
    // history row `slot − k`, walked down to row 0 and then from row `r − 1`), and each block's
    // taps and history rows are contiguous. Two blocks keep eight 4-lane sums in flight (the
    // scratch conv bench, SSE2, 384 channels × 6 layers from cache: 17.3 µs with one block at a
    // time, 14.6 µs with two; the `[r, d]` layout's 32-channel loop took 18.0 µs).
    const B: usize = CONV_BLOCK;
    let src = |k: usize| if k <= slot { slot - k } else { slot + r - k };
    let mut j = 0;
    while j < n {
        let (ch, lane) = (c0 + j, (c0 + j) % B);
        if lane == 0 && n - j >= 2 * B {
            let mut acc = [0.0f32; 2 * B];
            for k in 0..r {
                for (h, acc) in acc.chunks_exact_mut(B).enumerate() {
                    let at = conv_index(r, k, ch + h * B);
                    let wk = &conv[at..at + B];
                    // SAFETY: history row `src(k)` of the block's 16 channels: in the ring (the
                    // caller's guarantee) and not written by anyone during this call.
                    let ur = unsafe {
                        std::slice::from_raw_parts(ring.add(conv_index(r, src(k), ch + h * B)), B)
                    };
                    for l in 0..B {
                        acc[l] += wk[l] * ur[l].value();
                    }
                }
            }
            c[j..j + 2 * B].copy_from_slice(&acc);
            j += 2 * B;
            continue;
        }
        let w = (n - j).min(B - lane);
        let mut acc = [0.0f32; B];
        for k in 0..r {
            let wk = &conv[conv_index(r, k, ch)..conv_index(r, k, ch) + w];
            // SAFETY: history row `src(k)` of channels `ch..ch + w` (one block): in the ring
            // (the caller's guarantee) and not written by anyone during this call.
            let ur = unsafe { std::slice::from_raw_parts(ring.add(conv_index(r, src(k), ch)), w) };
            if w == B {
                for l in 0..B {
                    acc[l] += wk[l] * ur[l].value();
                }
            } else {
                for l in 0..w {
                    acc[l] += wk[l] * ur[l].value();
                }
            }
        }
        c[j..j + w].copy_from_slice(&acc[..w]);
        j += w;
    }
}

/// `x` rounded to IEEE binary16 (to nearest, ties to even; beyond its range to ±∞), as its
/// bits: how the sessions of int8 engines store their conv history.
#[inline]
pub fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// The binary16 value with bits `b`, as f32 (exact: every binary16 value is an f32 value).
#[inline]
pub fn f16_value(b: u16) -> f32 {
    half::f16::from_bits(b).to_f32()
}

/// Whether the CPU converts between f16 and f32 in hardware (F16C; every x86-64 CPU with AVX2
/// in practice).
#[cfg(target_arch = "x86_64")]
fn f16c_present() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| std::arch::is_x86_feature_detected!("f16c"))
}

/// Whether [`ring_conv_cols_f16`] runs its hardware-converting kernel here (x86-64 with AVX2,
/// FMA and F16C, SIMD kernels not switched off); elsewhere it converts in software.
pub fn f16_conv_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        simd_enabled() && f16c_present()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`ring_conv_cols`] over an f16 ring (the int8 engines' conv history): `u` is rounded to f16
/// ([`f16_bits`]) as it is stored; taps, products and sums are f32.
///
/// # Safety
/// As [`ring_conv_cols`], with `ring` pointing at [`conv_len`]`(r, d)` f16 values.
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
    #[cfg(target_arch = "x86_64")]
    {
        if f16_conv_in_hardware() {
            // SAFETY: AVX2, FMA and F16C are present; the caller guarantees the rest.
            unsafe { avx2::ring_conv_cols_f16(conv, d, c0, r, slot, u, ring, c) };
            return;
        }
    }
    // SAFETY: the caller's guarantees.
    unsafe { ring_conv_cols_impl(conv, d, c0, r, slot, u, ring, c) };
}

/// [`f16_value`] without branches, so that the portable f16 conv's lanes vectorise: the exponent
/// and
/// mantissa bits moved into place and scaled by 2¹¹² (exact, subnormals included), then
/// infinities and NaNs (whatever scaled to 2¹⁶ or more) given the all-ones exponent, then the
/// sign. Equal to [`f16_value`] for every one of the 65,536 bit patterns (tested).
#[inline(always)]
fn f16_lanes(b: u16) -> f32 {
    const TWO_POW_112: f32 = f32::from_bits((127 + 112) << 23);
    let magnitude = f32::from_bits(((b & 0x7fff) as u32) << 13) * TWO_POW_112;
    let special = if magnitude >= 65536.0 { 0x7f80_0000 } else { 0 };
    f32::from_bits(magnitude.to_bits() | special | (((b & 0x8000) as u32) << 16))
}

/// `1 / sqrt(mean(x²) + ε)`, the factor of [`rms_norm`].
#[inline]
pub fn rms_factor(x: &[f32]) -> f32 {
    1.0f32 / (sum_squares(x) / x.len().max(1) as f32 + rnet_model::kernels::RMS_EPS).sqrt()
}

/// A weight element: f32 or i8.
pub trait Weight: Copy + Send + Sync + 'static {
    /// The element as f32.
    fn to_f32(self) -> f32;
}

impl Weight for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Weight for i8 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
}

#[inline(always)]
fn store_value(y: &mut f32, v: f32, store: Store) {
    match store {
        Store::Overwrite => *y = v,
        Store::Add => *y += v,
    }
}

/// The f32 part of row `o` of an int8 decode product (every SIMD kernel's): the weights past the
/// last whole block of [`Q8_BLOCK`] (columns `tail..cols`) times `x` there.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn q8_row_tail(w: &[i8], cols: usize, tail: usize, x: &[f32], o: usize) -> f32 {
    let row = &w[o * cols + tail..(o + 1) * cols];
    let mut t = 0.0f32;
    for (&wv, &xv) in row.iter().zip(&x[tail..cols]) {
        t += wv as f32 * xv;
    }
    t
}

/// Dot product with eight independent accumulators (vectorised by the compiler).
#[inline(always)]
fn dot_portable<W: Weight>(w: &[W], x: &[f32]) -> f32 {
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    let mut acc = [0.0f32; 8];
    let mut wc = w.chunks_exact(8);
    let mut xc = x.chunks_exact(8);
    for (a, b) in (&mut wc).zip(&mut xc) {
        for l in 0..8 {
            acc[l] += a[l].to_f32() * b[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (a, b) in wc.remainder().iter().zip(xc.remainder()) {
        s += a.to_f32() * b;
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn portable_matmul<W: Weight>(
    w: &[W],
    scale: Option<&[f32]>,
    rows: usize,
    cols: usize,
    x: &[f32],
    n_t: usize,
    y: &mut [f32],
    store: Store,
) {
    for t in 0..n_t {
        let xr = &x[t * cols..(t + 1) * cols];
        let yr = &mut y[t * rows..(t + 1) * rows];
        for (o, out) in yr.iter_mut().enumerate() {
            let mut v = dot_portable(&w[o * cols..(o + 1) * cols], xr);
            if let Some(s) = scale {
                v *= s[o];
            }
            store_value(out, v, store);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)] // register-blocked loops read best with indices
mod avx2;

#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)] // register-blocked loops read best with indices
mod avx512;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod packed;

#[cfg(target_arch = "aarch64")]
#[allow(clippy::needless_range_loop)] // register-blocked loops read best with indices
mod neon;

#[cfg(target_arch = "aarch64")]
#[allow(clippy::needless_range_loop)] // register-blocked loops read best with indices
mod neon_dot;

/// `out = RMSNorm(x)·γ` for one row: `out_k = x_k · (1/sqrt(mean(x²) + 1e-6)) · γ_k`.
#[inline]
pub fn rms_norm(x: &[f32], gamma: &[f32], out: &mut [f32]) {
    let d = gamma.len();
    let ss = sum_squares(&x[..d]);
    let r = 1.0f32 / (ss / d as f32 + rnet_model::kernels::RMS_EPS).sqrt();
    for ((o, &v), &g) in out[..d].iter_mut().zip(&x[..d]).zip(gamma) {
        *o = v * r * g;
    }
}

/// `Σ x²` with eight accumulators.
#[inline]
fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut c = x.chunks_exact(8);
    for ch in &mut c {
        for l in 0..8 {
            acc[l] += ch[l] * ch[l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for v in c.remainder() {
        s += v * v;
    }
    s
}

/// `e^x` without a library call, so loops over it vectorise: `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`,
/// `e^r` by Cephes' degree-7 polynomial and `2^n` built in the exponent bits. Relative error
/// below 4·10⁻⁷ (a few ulp) on `[−87, 88]`, the range of normal results; below it the result
/// is 0 (so a `−∞` score gets no weight), above it about `1.7·10³⁸` rather than infinity.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let input = x;
    // ln 2 split in a high part exact in few bits and the rest, so `n · C1` is exact.
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer, which then sits in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = x - n * C1 - n * C2;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2^n: `n` is the low bits of `t`'s pattern (0x4B40_0000 is SHIFTER's).
    let two_n = f32::from_bits(((t.to_bits() as i32 - 0x4B40_0000 + 127) << 23) as u32);
    if input < -87.0 { 0.0 } else { er * two_n }
}

/// `1 / (1 + e^{−x})`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `x · σ(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// The minGRU candidate activation: `x + 0.5` for `x ≥ 0`, else `σ(x)`.
#[inline]
pub fn gru_g(x: f32) -> f32 {
    // Both sides computed and one selected: no branch, so loops over it vectorise.
    let s = sigmoid(x);
    if x >= 0.0 { x + 0.5 } else { s }
}

/// Softmax in place (max-subtracted). The maximum and the sum are taken over eight lanes and the
/// exponentials computed in a separate loop, so all three vectorise (a running sum in one
/// accumulator kept the whole loop scalar: ~4× slower for the 64 slot scores of a decode step).
#[inline(always)]
pub fn softmax(v: &mut [f32]) {
    const LANES: usize = 8;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = v.chunks_exact(LANES);
    for ch in &mut chunks {
        for (m, &e) in lanes.iter_mut().zip(ch) {
            *m = m.max(e);
        }
    }
    let m = chunks
        .remainder()
        .iter()
        .copied()
        .fold(lanes.into_iter().fold(f32::NEG_INFINITY, f32::max), f32::max);
    for e in v.iter_mut() {
        *e = exp(*e - m);
    }
    let mut sums = [0.0f32; LANES];
    let mut chunks = v.chunks_exact(LANES);
    for ch in &mut chunks {
        for (s, &e) in sums.iter_mut().zip(ch) {
            *s += e;
        }
    }
    let z = sums.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>();
    if z > 0.0 {
        let inv = 1.0 / z;
        for e in v.iter_mut() {
            *e *= inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn naive(w: &Matrix, x: &[f32], n_t: usize) -> Vec<f64> {
        let (rows, cols) = (w.rows(), w.cols());
        let mut y = vec![0.0f64; n_t * rows];
        for t in 0..n_t {
            for o in 0..rows {
                y[t * rows + o] =
                    (0..cols).map(|k| w.get(o, k) as f64 * x[t * cols + k] as f64).sum();
            }
        }
        y
    }

    /// Serialises the tests that switch the (process-wide) kernel path.
    static PATH_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn products_match_a_naive_f64_loop_on_every_path_and_shape() {
        let _path = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for &(rows, cols, n_t) in &[
            (1, 1, 1),
            (7, 5, 3),
            (13, 17, 4),
            (6, 8, 16),
            (25, 31, 37),
            (64, 32, 7),
            (5, 3, 100),
            (9, 40, 2),
            (256, 384, 1),
        ] {
            let values = pseudo(rows * cols, 1);
            let x = pseudo(n_t * cols, 2);
            for m in [Matrix::f32(rows, cols, values.clone()), Matrix::int8(rows, cols, &values)] {
                let want = naive(&m, &x, n_t);
                let is_int8 = matches!(m.data(), MatrixData::Int8 { .. });
                // Σ |w·x| of output (t, o): the scale of the int8 decode path's activation
                // rounding (see `int8_decode_product_is_exact_on_the_quantised_activations`).
                let mag = |t: usize, o: usize| -> f64 {
                    (0..cols).map(|k| (m.get(o, k) as f64 * x[t * cols + k] as f64).abs()).sum()
                };
                for portable in [false, true] {
                    set_portable_only(portable);
                    let q8 = is_int8 && simd_enabled();
                    let tol = |t: usize, o: usize, single: bool| {
                        if q8 && single {
                            0.01 * mag(t, o) + 1e-5
                        } else {
                            1e-5 * (cols as f64).sqrt().max(1.0)
                        }
                    };
                    let mut y = vec![0.0; n_t * rows];
                    m.matmul(&x, n_t, &mut y, Store::Overwrite);
                    for (i, (&g, &w)) in y.iter().zip(&want).enumerate() {
                        assert!(
                            (g as f64 - w).abs() <= tol(i / rows, i % rows, n_t == 1),
                            "{rows}x{cols}x{n_t} portable={portable} i={i}: {g} vs {w}"
                        );
                    }
                    let base = pseudo(n_t * rows, 3);
                    let mut y2 = base.clone();
                    m.matmul(&x, n_t, &mut y2, Store::Add);
                    for i in 0..y2.len() {
                        assert!((y2[i] - (base[i] + y[i])).abs() <= 1e-5);
                    }
                    // One position at a time gives the same values up to rounding.
                    for t in 0..n_t {
                        let mut y1 = vec![0.0; rows];
                        m.matvec(&x[t * cols..(t + 1) * cols], &mut y1, Store::Overwrite);
                        for o in 0..rows {
                            let w = want[t * rows + o];
                            assert!(
                                (y1[o] as f64 - w).abs() <= tol(t, o, true),
                                "{rows}x{cols} t={t} o={o}"
                            );
                        }
                    }
                }
                set_portable_only(false);
            }
        }
    }

    #[test]
    fn row_ranges_of_a_product_equal_the_whole_product_on_every_path() {
        let _path = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for &(rows, cols) in
            &[(1, 1), (7, 5), (13, 33), (64, 96), (256, 384), (9, 100), (21, 64), (19, 160)]
        {
            let values = pseudo(rows * cols, 11);
            let x = pseudo(cols, 12);
            for m in [Matrix::f32(rows, cols, values.clone()), Matrix::int8(rows, cols, &values)] {
                for (portable, vnni, avx512) in [
                    (false, true, true),
                    (false, true, false),
                    (false, false, false),
                    (true, false, false),
                ] {
                    set_portable_only(portable);
                    set_vnni_allowed(vnni);
                    set_avx512(Some(avx512));
                    let mut whole = vec![0.0; rows];
                    // The reference: the whole product through the same kernel.
                    let mut qw = QVec::new();
                    let xw = m.wants_qvec().then(|| {
                        qw.quantize(&x);
                        &qw
                    });
                    m.matvec_rows(0..rows, &x, xw, &mut whole, Store::Overwrite);
                    let mut plain = vec![0.0; rows];
                    m.matvec(&x, &mut plain, Store::Overwrite);
                    for o in 0..rows {
                        let tol = 1e-2 * plain.iter().fold(0.0f32, |a, v| a.max(v.abs())) + 1e-5;
                        assert!((whole[o] - plain[o]).abs() <= tol, "{rows}x{cols} vnni={vnni}");
                    }
                    let mut qv = QVec::new();
                    let xq = m.wants_qvec().then(|| {
                        qv.quantize(&x);
                        &qv
                    });
                    for split in [0, 1, rows / 3, rows / 2, rows] {
                        let base = pseudo(rows, 13);
                        let mut y = base.clone();
                        m.matvec_rows(0..split, &x, xq, &mut y[..split], Store::Add);
                        m.matvec_rows(split..rows, &x, xq, &mut y[split..], Store::Overwrite);
                        for o in 0..rows {
                            let want = if o < split { base[o] + whole[o] } else { whole[o] };
                            assert!(
                                (y[o] - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                "{rows}x{cols} split {split} portable={portable} row {o}: {} vs {want}",
                                y[o]
                            );
                        }
                    }
                }
                set_portable_only(false);
                set_vnni_allowed(true);
                set_avx512(None);
            }
        }
    }

    /// The signature shared by the VNNI decode kernels.
    #[cfg(target_arch = "x86_64")]
    type VnniKernel = unsafe fn(&[i8], &[f32], usize, usize, &QVec, &[f32], &mut [f32], Store);

    #[test]
    fn int8_decode_product_is_exact_on_the_quantised_activations() {
        #[cfg(target_arch = "x86_64")]
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            return;
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        return;
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        for &(rows, cols) in &[
            (1, 1),
            (5, 31),
            (7, 32),
            (9, 33),
            (13, 100),
            (256, 384),
            (6, 64),
            (17, 96),
            (24, 200),
        ] {
            let m = Matrix::int8(rows, cols, &pseudo(rows * cols, 5));
            let mut x = pseudo(cols, 6);
            if cols >= 100 {
                x[3] = 25.0; // an outlier only affects its own block
            }
            let mut qv = QVec::new();
            qv.quantize(&x);
            let (xq, xs) = (qv.values(), qv.scales());
            let xd: Vec<f64> = (0..cols)
                .map(|k| match xs.get(k / Q8_BLOCK) {
                    Some(&s) => xq[k] as f64 * s as f64,
                    None => x[k] as f64,
                })
                .collect();
            let mut y = vec![0.0; rows];
            let MatrixData::Int8 { q, scale } = m.data() else { unreachable!() };
            // SAFETY: AVX2 and FMA were detected above; the buffers have the required sizes.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx2::matvec_q8_row_major(q, scale, rows, cols, &qv, &x, &mut y, Store::Overwrite)
            };
            // SAFETY: NEON is part of aarch64; the buffers have the required sizes.
            #[cfg(target_arch = "aarch64")]
            unsafe {
                neon::matvec_q8(q, scale, rows, cols, &qv, &x, &mut y, Store::Overwrite)
            };
            // The VNNI kernels present on this CPU (AVX-VNNI, AVX-512 VNNI; the EVEX 256-bit kernel is
            // checked bit for bit against the others in `packed`'s tests).
            #[cfg(target_arch = "x86_64")]
            let vnni_kernels: Vec<(&str, VnniKernel)> = [
                ("avx-vnni", avx_vnni_detected(), avx2::matvec_q8_vnni_row_major as VnniKernel),
                (
                    "avx512-vnni",
                    vnni512_detected(),
                    avx512::matvec_q8_vnni512_row_major as VnniKernel,
                ),
            ]
            .into_iter()
            .filter(|k| k.1)
            .map(|(name, _, f)| (name, f))
            .collect();
            #[cfg(target_arch = "x86_64")]
            for (name, kernel) in vnni_kernels {
                let mut yv = vec![0.0; rows];
                // SAFETY: the kernel's CPU features were detected; the buffers fit.
                unsafe { kernel(q, scale, rows, cols, &qv, &x, &mut yv, Store::Overwrite) };
                for (o, (&a, &b)) in yv.iter().zip(&y).enumerate() {
                    // Same exact integer sums; only the f32 rounding of the offset differs.
                    let want: f64 = (0..cols).map(|k| m.get(o, k) as f64 * xd[k]).sum();
                    assert!(
                        (a as f64 - want).abs() <= 1e-4 * (cols as f64).sqrt() * (1.0 + want.abs()),
                        "{name} {rows}x{cols} row {o}: {a} vs {b} (want {want})"
                    );
                }
            }
            for (o, &yo) in y.iter().enumerate() {
                let want: f64 = (0..cols).map(|k| m.get(o, k) as f64 * xd[k]).sum();
                assert!(
                    (yo as f64 - want).abs() <= 1e-5 * (cols as f64).sqrt(),
                    "{rows}x{cols} row {o}"
                );
                // And close to the unquantised product.
                let exact: f64 = (0..cols).map(|k| m.get(o, k) as f64 * x[k] as f64).sum();
                let norm: f64 = (0..cols).map(|k| (m.get(o, k) as f64 * x[k] as f64).abs()).sum();
                assert!((yo as f64 - exact).abs() <= 0.01 * norm + 1e-6, "{rows}x{cols} row {o}");
            }
        }
    }

    #[test]
    fn activation_quantisation_is_the_same_on_both_paths() {
        let x: Vec<f32> =
            pseudo(32 * 9 + 5, 8).iter().enumerate().map(|(i, v)| v * (i % 7) as f32).collect();
        let mut x = x;
        x[40..72].fill(0.0); // an all-zero block
        let (mut q1, mut s1) = (vec![0i8; 32 * 9], vec![0f32; 9]);
        quantize_q8_impl(&x, &mut q1, &mut s1);
        let (mut q2, mut s2) = (Vec::new(), Vec::new());
        quantize_q8(&x, &mut q2, &mut s2);
        assert_eq!(s1, s2);
        assert_eq!(q1, q2);
        assert!(q1.iter().all(|&v| v >= -127));
        for (b, &s) in s1.iter().enumerate() {
            for k in 0..32 {
                assert!((q1[b * 32 + k] as f32 * s - x[b * 32 + k]).abs() <= s * 0.5 + 1e-6);
            }
        }
    }

    #[test]
    fn int8_quantisation_is_per_row_and_bounded() {
        let rows = 8;
        let cols = 100;
        let mut values = pseudo(rows * cols, 9);
        // Rows of very different magnitudes, and one zero row.
        for (o, row) in values.chunks_exact_mut(cols).enumerate() {
            for v in row.iter_mut() {
                *v *= 10f32.powi(o as i32 - 4);
            }
        }
        values[3 * cols..4 * cols].fill(0.0);
        let m = Matrix::int8(rows, cols, &values);
        for o in 0..rows {
            let max = values[o * cols..(o + 1) * cols].iter().fold(0.0f32, |a, v| a.max(v.abs()));
            for k in 0..cols {
                let err = (m.get(o, k) - values[o * cols + k]).abs();
                assert!(err <= max / 254.0 * 1.0001 + 1e-30, "row {o} col {k}");
            }
        }
        assert_eq!(m.bytes(), rows * cols + 4 * rows);
    }

    #[test]
    fn fast_exp_is_within_a_few_ulp_over_the_normal_range() {
        assert_eq!(exp(0.0), 1.0);
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
            x += 0.000_7;
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        // 0 below the normal range, finite above it.
        assert_eq!(exp(-1e4), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(1e4).is_finite() && exp(1e4) > 1e38);
        assert!(sigmoid(1e4) == 1.0 && sigmoid(-1e4) < 1e-37);
    }

    #[test]
    fn the_ring_conv_stores_the_input_and_sums_the_history_in_the_blocked_layout() {
        // Whole groups of four blocks, single blocks, 8-lane pieces and single channels, at
        // several offsets and slots; a width that is not a whole number of blocks (padding).
        for (d, r, ranges) in [
            (80, 7, vec![(0, 80), (3, 70), (16, 9), (8, 72)]),
            (37, 5, vec![(0, 37), (5, 30), (32, 5)]),
        ] {
            let rows = pseudo(r * d, 11);
            let conv = conv_blocked(&rows, r, d);
            assert_eq!(conv.len(), conv_len(r, d));
            for k in 0..r {
                for ch in 0..d {
                    assert_eq!(conv[conv_index(r, k, ch)], rows[k * d + ch]);
                }
            }
            let len = conv_len(r, d);
            let hist32: Vec<f32> = pseudo(len, 12).iter().map(|&v| 4.0 * v).collect();
            let hist16: Vec<u16> = hist32.iter().map(|&v| f16_bits(v)).collect();
            for &(c0, n) in &ranges {
                for slot in [0, 3.min(r - 1), r - 1] {
                    let u: Vec<f32> =
                        pseudo(n, (c0 + slot) as u32).iter().map(|v| 3.0 * v).collect();
                    let written =
                        |i: usize| (c0..c0 + n).map(|ch| conv_index(r, slot, ch)).any(|at| at == i);
                    // f16 and f32 histories, SIMD kernel and portable.
                    for (f16, portable) in
                        [(true, false), (true, true), (false, false), (false, true)]
                    {
                        let (mut r16, mut r32) = (hist16.clone(), hist32.clone());
                        let mut c = vec![0.0f32; n];
                        // SAFETY: the rings are `conv_len(r, d)` values, `c0 + n ≤ d`.
                        unsafe {
                            let (p16, p32) = (r16.as_mut_ptr(), r32.as_mut_ptr());
                            match (f16, portable) {
                                (true, true) => {
                                    ring_conv_cols_impl(&conv, d, c0, r, slot, &u, p16, &mut c)
                                }
                                (true, false) => {
                                    ring_conv_cols_f16(&conv, d, c0, r, slot, &u, p16, &mut c)
                                }
                                (false, true) => {
                                    ring_conv_cols_impl(&conv, d, c0, r, slot, &u, p32, &mut c)
                                }
                                (false, false) => {
                                    ring_conv_cols(&conv, d, c0, r, slot, &u, p32, &mut c)
                                }
                            }
                        }
                        let value = |i: usize| if f16 { f16_value(r16[i]) } else { r32[i] };
                        for (j, &v) in u.iter().enumerate() {
                            let stored = if f16 { f16_value(f16_bits(v)) } else { v };
                            assert_eq!(value(conv_index(r, slot, c0 + j)), stored);
                        }
                        if f16 {
                            assert!((0..len).filter(|&i| !written(i)).all(|i| r16[i] == hist16[i]));
                        } else {
                            assert!((0..len).filter(|&i| !written(i)).all(|i| r32[i] == hist32[i]));
                        }
                        for (j, &got) in c.iter().enumerate() {
                            let (mut want, mut scale) = (0.0f64, 0.0f64);
                            for k in 0..r {
                                let src = (slot + r - k) % r;
                                let term = rows[k * d + c0 + j] as f64
                                    * value(conv_index(r, src, c0 + j)) as f64;
                                want += term;
                                scale += term.abs();
                            }
                            let err = (got as f64 - want).abs();
                            assert!(
                                err <= 1e-6 * scale,
                                "d {d} c0 {c0} slot {slot} j {j} f16 {f16} portable {portable}: \
                                 {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_channel_s_conv_sum_does_not_depend_on_the_range_it_is_computed_in() {
        // Decode threads split the channels at different points; every path of the kernels
        // (SIMD: four blocks, one block, eight lanes, one channel; portable: two blocks, one
        // block, part of one) must give a channel the same bits.
        let (d, r) = (96, 9);
        let conv = conv_blocked(&pseudo(r * d, 21), r, d);
        let len = conv_len(r, d);
        let u = pseudo(d, 22);
        let hist: Vec<u16> = pseudo(len, 23).iter().map(|&v| f16_bits(v)).collect();
        // SAFETY (both): `ring` is `conv_len(r, d)` values; the two calls of a split touch
        // disjoint channels.
        let conv_range = |portable: bool, c0: usize, ring: &mut [u16], c: &mut [f32]| unsafe {
            let u = &u[c0..c0 + c.len()];
            if portable {
                ring_conv_cols_impl(&conv, d, c0, r, 2, u, ring.as_mut_ptr(), c);
            } else {
                ring_conv_cols_f16(&conv, d, c0, r, 2, u, ring.as_mut_ptr(), c);
            }
        };
        for portable in [false, true] {
            let mut whole = vec![0.0f32; d];
            conv_range(portable, 0, &mut hist.clone(), &mut whole);
            for split in [1, 3, 8, 12, 16, 24, 40, 64, 72, 95] {
                let mut ring = hist.clone();
                let mut c = vec![0.0f32; d];
                let (lo, hi) = c.split_at_mut(split);
                conv_range(portable, 0, &mut ring, lo);
                conv_range(portable, split, &mut ring, hi);
                assert_eq!(c, whole, "split at {split}, portable {portable}");
            }
        }
    }

    #[test]
    fn f16_rounding_is_to_nearest_even() {
        // Rounding to nearest even, as F16C's.
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(1.0 + 1.0 / 2048.0), 0x3c00); // halfway: to even
        assert_eq!(f16_bits(1.0 + 3.0 / 2048.0), 0x3c02); // halfway: to even
        assert_eq!(f16_value(0x3c01), 1.0 + 1.0 / 1024.0);
        assert_eq!(f16_bits(1e6), 0x7c00);
    }

    #[test]
    fn the_branchless_f16_conversion_equals_the_crate_s_for_every_bit_pattern() {
        for b in 0..=u16::MAX {
            let (got, want) = (f16_lanes(b), f16_value(b));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{b:#06x}: {got:e} against {want:e}"
            );
        }
    }

    #[test]
    fn softmax_matches_f64_at_every_length_with_the_maximum_anywhere() {
        for len in [1, 2, 7, 8, 9, 16, 63, 64, 67] {
            for at in [0, len / 2, len - 1] {
                let mut v: Vec<f32> = pseudo(len, len as u32).iter().map(|x| 8.0 * x).collect();
                v[at] = 30.0; // the maximum, in the lanes or in the remainder
                if len > 2 {
                    v[(at + 1) % len] = f32::NEG_INFINITY;
                }
                let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let e: Vec<f64> = v.iter().map(|&x| (x as f64 - m).exp()).collect();
                let z: f64 = e.iter().sum();
                softmax(&mut v);
                for (i, (&got, &want)) in v.iter().zip(&e).enumerate() {
                    let want = want / z;
                    assert!(
                        (got as f64 - want).abs() <= 2e-6 * want.max(1e-30),
                        "len {len}, max at {at}, element {i}: {got} against {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn scalar_functions() {
        assert_eq!(gru_g(0.0), 0.5);
        assert_eq!(gru_g(2.0), 2.5);
        assert!((gru_g(-1.0) - 0.268_941_43).abs() < 1e-6);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        let mut v = vec![1.0, 2.0, 3.0, f32::NEG_INFINITY];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(v[3], 0.0);
        let x = pseudo(37, 4);
        let g = vec![1.0; 37];
        let mut out = vec![0.0; 37];
        rms_norm(&x, &g, &mut out);
        let ms = out.iter().map(|v| v * v).sum::<f32>() / 37.0;
        assert!((ms - 1.0).abs() < 1e-4);
    }
}
