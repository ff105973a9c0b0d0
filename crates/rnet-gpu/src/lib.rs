//! Device backends for ResonanceNet training (layer 4, not consensus).
//!
//! One interface, [`Backend`], names the operations a V5 training step is built from — matrix
//! products, RMSNorm, SwiGLU, the 256-symbol cross-entropy, AdamW, the minGRU log-domain scan and the
//! depthwise causal convolution, each forward and backward, plus the glue of a whole model (embedding
//! gather/scatter-add, the slot softmax and its backward, `axpby`, fill, a sum of squares for the
//! gradient norm and the one-position minGRU step of decoding) — over device buffers of `f32`.
//!
//! [`model`] composes these operations into the whole V5 network on any backend: a
//! [`DeviceTrainer`] (forward, backward, global-norm clipping and AdamW on the device) and a
//! [`DeviceDecoder`] (recurrent decoding with O(1) state).
//!
//! * [`CpuBackend`] runs every operation through `rnet_training`'s own CPU code, so it *is* the
//!   reference the other backends are checked against (`tests/agreement.rs`).
//! * `CudaBackend` (cargo feature `cuda`) runs them on an NVIDIA GPU: kernels in CUDA C compiled at
//!   run time with NVRTC, matrix products through cuBLAS `sgemm`. The CUDA libraries are loaded
//!   dynamically, so the crate builds and its tests run on machines without CUDA; on such a machine
//!   `CudaBackend::new` returns a [`BackendError`] instead of panicking or falling back to the CPU.
//! * `WgpuBackend` (cargo feature `vulkan`) runs them on any Vulkan device through `wgpu`, kernels
//!   in WGSL including a tiled matrix product and matrix–vector kernels; with the feature `metal`
//!   the same backend also opens Apple GPUs through `wgpu`'s Metal backend (compiled on Apple
//!   targets only). The Vulkan loader is opened at run time, so the crate builds without a Vulkan
//!   SDK or driver; without an adapter `WgpuBackend::new` returns [`BackendError::NoAdapter`].
//!   Mesa's software driver (lavapipe) counts as an adapter, so the agreement tests also run on
//!   machines without a GPU.
//!
//! Conventions shared by every backend (the same as `rnet_training::ops`): activations are row-major
//! `[rows, width]`; a window is `t_len` consecutive rows; "accumulates" means `+=` into the output,
//! "overwrites" means the output's previous contents are ignored. Buffers may be longer than an
//! operation needs (the extra tail is left alone); a buffer that is too short, or a zero width, is a
//! [`BackendError::Shape`], never an out-of-bounds access. See `docs/training.md` ("GPU backends").

use std::ops::Range;

use thiserror::Error;

mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
pub mod device;
mod dynamic;
pub mod model;
mod shapes;

pub use cpu::CpuBackend;
#[cfg(feature = "cuda")]
pub use cuda::{CudaBackend, CudaBuffer};
pub use device::{Device, DeviceError, DeviceParseError, OpenDevice};
pub use dynamic::{DynDecoder, DynTrainer};
pub use model::{DeviceDecoder, DeviceTrainer, EngineError};
#[cfg(feature = "vulkan")]
mod wgpu_backend;
#[cfg(feature = "vulkan")]
pub use wgpu_backend::{GpuApi, WgpuAdapter, WgpuBackend, WgpuBuffer};

/// Size of the byte-level vocabulary: every cross-entropy row has this many logits.
pub const VOCAB: usize = rnet_model::VOCAB;

/// RMSNorm epsilon used by every backend (the CPU engine's value).
pub const RMS_EPS: f32 = rnet_training::ops::RMS_EPS as f32;

/// Why a backend could not be created or an operation could not run.
#[derive(Debug, Error)]
pub enum BackendError {
    /// The CUDA driver library (`libcuda`) could not be loaded: no NVIDIA driver on this machine.
    #[error("no CUDA driver found (libcuda could not be loaded)")]
    NoDriver,
    /// The driver loaded but reports no usable device (or fewer than the ordinal asked for).
    #[error("no CUDA device found (asked for device {ordinal}, driver reports {count})")]
    NoDevice {
        /// The device ordinal requested.
        ordinal: usize,
        /// How many devices the driver reports.
        count: usize,
    },
    /// A CUDA library other than the driver (NVRTC, cuBLAS) could not be loaded.
    #[error("CUDA library {0} not found (is the CUDA toolkit's lib directory on LD_LIBRARY_PATH?)")]
    MissingLibrary(&'static str),
    /// A CUDA driver call failed.
    #[error("CUDA driver error in {context}: {message}")]
    Driver {
        /// What was being done.
        context: &'static str,
        /// The driver's error.
        message: String,
    },
    /// NVRTC could not compile the kernels.
    #[error("NVRTC could not compile the kernels: {0}")]
    Compile(String),
    /// A cuBLAS call failed.
    #[error("cuBLAS error: {0}")]
    Blas(String),
    /// No adapter of this graphics API with this ordinal: the Vulkan loader or driver is missing
    /// (or this is not an Apple machine, for Metal), or it reports fewer adapters than the ordinal
    /// asked for.
    #[error("no {api} adapter found (asked for adapter {ordinal}, {count} reported)")]
    NoAdapter {
        /// The graphics API: `Vulkan` or `Metal`.
        api: &'static str,
        /// The adapter ordinal requested.
        ordinal: usize,
        /// How many adapters of that API the system reports (0 without a loader or driver).
        count: usize,
    },
    /// A `wgpu` call (Vulkan or Metal) failed: opening the device, compiling a WGSL kernel,
    /// allocating, dispatching or synchronising.
    #[error("wgpu error in {context}: {message}")]
    Wgpu {
        /// What was being done.
        context: &'static str,
        /// The error `wgpu` reported.
        message: String,
    },
    /// Buffer lengths or dimensions do not fit the operation.
    #[error("{op}: {detail}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// What does not fit.
        detail: String,
    },
}

/// A matrix product `C = α · op(A) · op(B) + β · C` on row-major matrices, optionally batched.
///
/// `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`. Without transposition `A` is stored
/// `m × k` with row stride `lda`; with `trans_a` it is stored `k × m` (so `op(A) = Aᵀ`), row stride
/// `lda`; likewise for `B` (`k × n` or, with `trans_b`, `n × k`). `C` has row stride `ldc`.
/// Each operand starts at an element offset into its buffer, so a product can use one tensor of a
/// flat parameter buffer. Batch `i` adds `i · stride_*` to each offset. With `beta == 0` the old
/// contents of `C` are ignored (even NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulSpec {
    /// Rows of `op(A)` and `C`.
    pub m: usize,
    /// Columns of `op(B)` and `C`.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Use `Aᵀ` (A stored `k × m`).
    pub trans_a: bool,
    /// Use `Bᵀ` (B stored `n × k`).
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the old `C`.
    pub beta: f32,
    /// Row stride of the stored `A`.
    pub lda: usize,
    /// Row stride of the stored `B`.
    pub ldb: usize,
    /// Row stride of `C`.
    pub ldc: usize,
    /// Element offset of `A` in its buffer.
    pub offset_a: usize,
    /// Element offset of `B` in its buffer.
    pub offset_b: usize,
    /// Element offset of `C` in its buffer.
    pub offset_c: usize,
    /// Number of products (1 for an ordinary product).
    pub batch: usize,
    /// Elements between consecutive batches of `A`.
    pub stride_a: usize,
    /// Elements between consecutive batches of `B`.
    pub stride_b: usize,
    /// Elements between consecutive batches of `C`.
    pub stride_c: usize,
}

impl MatmulSpec {
    /// A single dense product `C = op(A) · op(B)` with tight row strides (at least 1), no offsets,
    /// `α = 1`, `β = 0`.
    pub fn new(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        Self {
            m,
            n,
            k,
            trans_a,
            trans_b,
            alpha: 1.0,
            beta: 0.0,
            lda: if trans_a { m } else { k }.max(1),
            ldb: if trans_b { k } else { n }.max(1),
            ldc: n.max(1),
            offset_a: 0,
            offset_b: 0,
            offset_c: 0,
            batch: 1,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
        }
    }

    /// The same product with `C = α · op(A)·op(B) + β · C`.
    pub fn scaled(mut self, alpha: f32, beta: f32) -> Self {
        self.alpha = alpha;
        self.beta = beta;
        self
    }

    /// The same product repeated `batch` times with the given per-batch element strides.
    pub fn batched(
        mut self,
        batch: usize,
        stride_a: usize,
        stride_b: usize,
        stride_c: usize,
    ) -> Self {
        self.batch = batch;
        self.stride_a = stride_a;
        self.stride_b = stride_b;
        self.stride_c = stride_c;
        self
    }

    /// Stored shape `(rows, cols)` of `A` and `B`.
    fn stored(&self) -> ((usize, usize), (usize, usize)) {
        let a = if self.trans_a { (self.k, self.m) } else { (self.m, self.k) };
        let b = if self.trans_b { (self.n, self.k) } else { (self.k, self.n) };
        (a, b)
    }

    /// Checks strides and buffer lengths (`a`, `b`, `c` elements) so no product can reach outside
    /// its buffers.
    pub fn validate(&self, a: usize, b: usize, c: usize) -> Result<(), BackendError> {
        let err = |detail: String| Err(BackendError::Shape { op: "matmul", detail });
        let ((ar, ac), (br, bc)) = self.stored();
        if self.lda < ac.max(1) || self.ldb < bc.max(1) || self.ldc < self.n.max(1) {
            return err(format!(
                "row strides lda={} ldb={} ldc={} below the row widths {ac}, {bc}, {}",
                self.lda, self.ldb, self.ldc, self.n
            ));
        }
        if self.batch == 0 || self.m == 0 || self.n == 0 {
            return Ok(());
        }
        let need =
            |off: usize, rows: usize, cols: usize, ld: usize, stride: usize| -> Option<usize> {
                if rows == 0 || cols == 0 {
                    return Some(0);
                }
                let last = (self.batch - 1).checked_mul(stride)?;
                let span = (rows - 1).checked_mul(ld)?.checked_add(cols)?;
                off.checked_add(last)?.checked_add(span)
            };
        for (name, have, want) in [
            ("A", a, need(self.offset_a, ar, ac, self.lda, self.stride_a)),
            ("B", b, need(self.offset_b, br, bc, self.ldb, self.stride_b)),
            ("C", c, need(self.offset_c, self.m, self.n, self.ldc, self.stride_c)),
        ] {
            match want {
                Some(w) if w <= have => {}
                Some(w) => return err(format!("{name} needs {w} elements, buffer has {have}")),
                None => return err(format!("{name} extent overflows")),
            }
        }
        Ok(())
    }
}

/// One AdamW update's hyper-parameters (the arithmetic of `rnet_training::optimizer::AdamW`):
/// `g ← g · grad_scale`, `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `θ ← θ · (1 − lr·wd) − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)`, the decay only on segments
/// marked for it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// Learning rate of this update.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Factor applied to the gradient first (global-norm clipping).
    pub grad_scale: f32,
    /// The 1-based number of this update (drives the bias correction).
    pub step: u64,
}

impl AdamWStep {
    /// The per-element scalars `[grad_scale, decay factor, step size, 1/√(1−β₂ᵗ)]` for a segment,
    /// computed exactly as the CPU optimizer does (bias corrections in `f64`).
    pub fn scalars(&self, decays: bool) -> [f32; 4] {
        let t = self.step.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - (self.beta1 as f64).powi(t);
        let bc2 = 1.0 - (self.beta2 as f64).powi(t);
        let step_size = (self.lr as f64 / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let decay = if decays { 1.0 - self.lr * self.weight_decay } else { 1.0 };
        [self.grad_scale, decay, step_size, inv_sqrt_bc2]
    }
}

/// A compute device for the training step: buffers of `f32` and the operations on them.
///
/// Every operation checks its buffer lengths first ([`BackendError::Shape`]). Operations may run
/// asynchronously; [`Backend::download`] and [`Backend::synchronize`] wait for them and report
/// errors a queued operation hit.
pub trait Backend {
    /// A buffer of `f32` on the device.
    type Buffer;
    /// A buffer of byte tokens (cross-entropy targets) on the device.
    type Tokens;

    /// A human-readable name of the device (for logs and test output).
    fn name(&self) -> String;
    /// Copies `data` into a new device buffer.
    fn upload(&self, data: &[f32]) -> Result<Self::Buffer, BackendError>;
    /// A new device buffer of `len` zeros.
    fn zeros(&self, len: usize) -> Result<Self::Buffer, BackendError>;
    /// Copies a device buffer back to the host (waits for queued work).
    fn download(&self, buf: &Self::Buffer) -> Result<Vec<f32>, BackendError>;
    /// Number of elements of a buffer.
    fn len(&self, buf: &Self::Buffer) -> usize;
    /// Overwrites `buf` with `data` (the same length), in the order of the queued operations and
    /// reusing its device memory: for weights a caller updates on the host every step. A length
    /// that differs is a [`BackendError::Shape`] and changes nothing. The default allocates a
    /// new buffer; the device backends write in place.
    fn upload_into(&self, buf: &mut Self::Buffer, data: &[f32]) -> Result<(), BackendError> {
        check_upload_len(self.len(buf), data.len())?;
        *buf = self.upload(data)?;
        Ok(())
    }
    /// Copies byte tokens into a new device buffer.
    fn upload_tokens(&self, tokens: &[u8]) -> Result<Self::Tokens, BackendError>;
    /// Number of tokens of a token buffer.
    fn tokens_len(&self, tokens: &Self::Tokens) -> usize;
    /// Waits until queued work has finished, reporting any error it hit.
    fn synchronize(&self) -> Result<(), BackendError>;

    /// Matrix product, see [`MatmulSpec`].
    fn matmul(
        &self,
        spec: &MatmulSpec,
        a: &Self::Buffer,
        b: &Self::Buffer,
        c: &mut Self::Buffer,
    ) -> Result<(), BackendError>;

    /// RMSNorm forward over `rows` rows of width `d`: `y = x · r · γ` with
    /// `r = 1/√(mean(x²) + RMS_EPS)`; overwrites `y [rows, d]` and `rinv [rows]` (kept for backward).
    fn rmsnorm_forward(
        &self,
        y: &mut Self::Buffer,
        rinv: &mut Self::Buffer,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError>;

    /// RMSNorm backward: accumulates `∂L/∂x` into `dx` and `∂L/∂γ` into `dgamma` given `dy`.
    #[allow(clippy::too_many_arguments)]
    fn rmsnorm_backward(
        &self,
        dx: &mut Self::Buffer,
        dgamma: &mut Self::Buffer,
        dy: &Self::Buffer,
        x: &Self::Buffer,
        rinv: &Self::Buffer,
        gamma: &Self::Buffer,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError>;

    /// SwiGLU forward: rows of `gu [rows, 2f]` are `[a | b]`; overwrites `p [rows, f] = SiLU(a) ⊙ b`.
    fn swiglu_forward(
        &self,
        p: &mut Self::Buffer,
        gu: &Self::Buffer,
        rows: usize,
        f: usize,
    ) -> Result<(), BackendError>;

    /// SwiGLU backward: overwrites `dgu [rows, 2f] = [dp ⊙ b ⊙ SiLU'(a) | dp ⊙ SiLU(a)]`.
    fn swiglu_backward(
        &self,
        dgu: &mut Self::Buffer,
        dp: &Self::Buffer,
        gu: &Self::Buffer,
        rows: usize,
        f: usize,
    ) -> Result<(), BackendError>;

    /// Softmax cross-entropy over `rows` rows of [`VOCAB`] logits against `targets`, forward and
    /// backward in one pass: overwrites `losses [rows]` with each row's loss in nats and replaces
    /// the logits by `scale · (softmax − onehot(target))`, the gradient of `scale · Σ loss`.
    fn cross_entropy(
        &self,
        logits: &mut Self::Buffer,
        losses: &mut Self::Buffer,
        targets: &Self::Tokens,
        rows: usize,
        scale: f32,
    ) -> Result<(), BackendError>;

    /// One AdamW update (see [`AdamWStep`]) of `params` with `grads`, moments `m` and `v`, over
    /// `segments` (an element range and whether weight decay applies to it). The four buffers must
    /// have equal lengths and the segments must lie inside them.
    fn adamw_update(
        &self,
        params: &mut Self::Buffer,
        grads: &Self::Buffer,
        m: &mut Self::Buffer,
        v: &mut Self::Buffer,
        step: &AdamWStep,
        segments: &[(Range<usize>, bool)],
    ) -> Result<(), BackendError>;

    /// minGRU forward over `windows` windows of `t_len` rows, as the chunked log-domain (Heinsen)
    /// scan: `zh [rows, 2d]` rows are `[k | h̃]`; overwrites `h [rows, d]` with
    /// `h_t = (1 − σ(k_t)) h_{t−1} + σ(k_t) g(h̃_t)`, `h_{−1} = 0`. `decay [rows, d]` is scratch.
    #[allow(clippy::too_many_arguments)]
    fn scan_forward(
        &self,
        h: &mut Self::Buffer,
        decay: &mut Self::Buffer,
        zh: &Self::Buffer,
        windows: usize,
        t_len: usize,
        d: usize,
        chunk: usize,
    ) -> Result<(), BackendError>;

    /// minGRU backward: given `dh = ∂L/∂h`, the pre-activations `zh` and the states `h`,
    /// overwrites `dzh [rows, 2d]` with `[∂L/∂k | ∂L/∂h̃]`.
    #[allow(clippy::too_many_arguments)]
    fn scan_backward(
        &self,
        dzh: &mut Self::Buffer,
        dh: &Self::Buffer,
        zh: &Self::Buffer,
        h: &Self::Buffer,
        windows: usize,
        t_len: usize,
        d: usize,
    ) -> Result<(), BackendError>;

    /// Depthwise causal convolution per window with a merged kernel `weff [kmax, d]`: overwrites
    /// `c[t, j] = Σ_{k<kmax, k≤t} weff[k, j] · u[t−k, j]`.
    #[allow(clippy::too_many_arguments)]
    fn conv_forward(
        &self,
        c: &mut Self::Buffer,
        u: &Self::Buffer,
        weff: &Self::Buffer,
        windows: usize,
        t_len: usize,
        d: usize,
        kmax: usize,
    ) -> Result<(), BackendError>;

    /// Convolution backward: overwrites `du = ∂L/∂u` and accumulates `∂L/∂weff` into `dweff`.
    #[allow(clippy::too_many_arguments)]
    fn conv_backward(
        &self,
        du: &mut Self::Buffer,
        dweff: &mut Self::Buffer,
        dc: &Self::Buffer,
        u: &Self::Buffer,
        weff: &Self::Buffer,
        windows: usize,
        t_len: usize,
        d: usize,
        kmax: usize,
    ) -> Result<(), BackendError>;

    /// Sets every element of `y` to `value` (clears gradient buffers between steps).
    fn fill(&self, y: &mut Self::Buffer, value: f32) -> Result<(), BackendError>;

    /// `y[y_off + i] = α · x[x_off + i] + β · y[y_off + i]` for `i < n`: residual copies and adds,
    /// merging the conv branches and scattering their gradient, shifting the decode history. With
    /// `β = 0` the old `y` is ignored (even NaN). `x` and `y` must be different buffers.
    #[allow(clippy::too_many_arguments)]
    fn axpby(
        &self,
        y: &mut Self::Buffer,
        y_off: usize,
        alpha: f32,
        x: &Self::Buffer,
        x_off: usize,
        beta: f32,
        n: usize,
    ) -> Result<(), BackendError>;

    /// Embedding lookup: overwrites row `i < rows` of `x [rows, d]` with row `tokens[i]` of
    /// `table [VOCAB, d]`.
    fn embed_forward(
        &self,
        x: &mut Self::Buffer,
        table: &Self::Buffer,
        tokens: &Self::Tokens,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError>;

    /// Embedding backward: accumulates row `i` of `dx [rows, d]` into row `tokens[i]` of
    /// `dtable [VOCAB, d]` (a scatter-add; rows sharing a token are summed in row order).
    fn embed_backward(
        &self,
        dtable: &mut Self::Buffer,
        dx: &Self::Buffer,
        tokens: &Self::Tokens,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError>;

    /// Row-wise softmax in place over `rows` rows of width `s` (the slot scores become the slot
    /// weights `α`).
    fn softmax_forward(
        &self,
        x: &mut Self::Buffer,
        rows: usize,
        s: usize,
    ) -> Result<(), BackendError>;

    /// Softmax backward in place: turns `dα` into `scale · α ⊙ (dα − Σ_j α_j dα_j)` per row, the
    /// gradient of the scores the softmax was taken of (times the score scale).
    fn softmax_backward(
        &self,
        dalpha: &mut Self::Buffer,
        alpha: &Self::Buffer,
        rows: usize,
        s: usize,
        scale: f32,
    ) -> Result<(), BackendError>;

    /// Adds `Σ x²` over all of `x` into the partial sums `acc` (length ≥ 1): how the sum is split
    /// across the slots of `acc` is the backend's choice, but afterwards `Σ acc` has grown by
    /// `Σ x²`. Accumulating every gradient tensor into one small buffer and downloading it once
    /// gives the global gradient norm for clipping with one synchronisation per step.
    fn sum_squares(&self, acc: &mut Self::Buffer, x: &Self::Buffer) -> Result<(), BackendError>;

    /// One minGRU step for decoding, in place on the state: `zh [2d]` is `[k | h̃]`;
    /// `h ← (1 − σ(k)) ⊙ h + σ(k) ⊙ g(h̃)` over the first `d` elements of `h`.
    fn scan_step(
        &self,
        h: &mut Self::Buffer,
        zh: &Self::Buffer,
        d: usize,
    ) -> Result<(), BackendError>;
}

/// Checks that every `(name, have, want)` buffer is long enough for operation `op`.
pub(crate) fn check_lens(
    op: &'static str,
    bufs: &[(&str, usize, usize)],
) -> Result<(), BackendError> {
    for &(name, have, want) in bufs {
        if have < want {
            return Err(BackendError::Shape {
                op,
                detail: format!("{name} needs {want} elements, buffer has {have}"),
            });
        }
    }
    Ok(())
}

/// Checks an [`Backend::axpby`] call: both ranges `off..off + n` inside their buffers.
pub(crate) fn check_axpby(
    y_len: usize,
    y_off: usize,
    x_len: usize,
    x_off: usize,
    n: usize,
) -> Result<(), BackendError> {
    let op = "axpby";
    let end = |off: usize, name: &str| {
        off.checked_add(n)
            .ok_or_else(|| BackendError::Shape { op, detail: format!("{name} range overflows") })
    };
    check_lens(op, &[("y", y_len, end(y_off, "y")?), ("x", x_len, end(x_off, "x")?)])
}

/// `a · b · …` with overflow reported as a shape error of `op`.
pub(crate) fn product(op: &'static str, dims: &[usize]) -> Result<usize, BackendError> {
    dims.iter()
        .try_fold(1usize, |acc, &x| acc.checked_mul(x))
        .ok_or_else(|| BackendError::Shape { op, detail: format!("dimensions {dims:?} overflow") })
}

/// Rejects a zero width (every per-row operation needs `d > 0`).
pub(crate) fn check_width(op: &'static str, name: &str, w: usize) -> Result<(), BackendError> {
    if w == 0 {
        return Err(BackendError::Shape { op, detail: format!("{name} must be positive") });
    }
    Ok(())
}

/// Checks the AdamW buffers and segments; returns the common length.
pub(crate) fn check_adamw(
    lens: [usize; 4],
    step: &AdamWStep,
    segments: &[(Range<usize>, bool)],
) -> Result<usize, BackendError> {
    let op = "adamw_update";
    let n = lens[0];
    if lens.iter().any(|&l| l != n) {
        return Err(BackendError::Shape {
            op,
            detail: format!("params, grads, m, v lengths differ: {lens:?}"),
        });
    }
    if step.step == 0 {
        return Err(BackendError::Shape { op, detail: "step is 1-based; got 0".into() });
    }
    for (r, _) in segments {
        if r.start > r.end || r.end > n {
            return Err(BackendError::Shape {
                op,
                detail: format!("segment {r:?} outside the {n} parameters"),
            });
        }
    }
    Ok(n)
}

/// The length check of [`Backend::upload_into`].
pub(crate) fn check_upload_len(buffer: usize, data: usize) -> Result<(), BackendError> {
    if buffer != data {
        return Err(BackendError::Shape {
            op: "upload_into",
            detail: format!("{data} values for a buffer of {buffer}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_spec_rejects_short_buffers_and_small_strides() {
        let s = MatmulSpec::new(3, 4, 5, false, false);
        assert!(s.validate(15, 20, 12).is_ok());
        assert!(matches!(s.validate(14, 20, 12), Err(BackendError::Shape { .. })));
        assert!(matches!(s.validate(15, 19, 12), Err(BackendError::Shape { .. })));
        assert!(matches!(s.validate(15, 20, 11), Err(BackendError::Shape { .. })));
        let mut t = s;
        t.lda = 4;
        assert!(t.validate(100, 100, 100).is_err());
        let b = MatmulSpec::new(2, 2, 2, true, true).batched(3, 4, 4, 4);
        assert!(b.validate(12, 12, 12).is_ok());
        assert!(b.validate(11, 12, 12).is_err());
        let huge = MatmulSpec::new(2, 2, 2, false, false).batched(2, usize::MAX, 0, 0);
        assert!(huge.validate(usize::MAX, 4, 4).is_err());
    }

    #[test]
    fn adamw_scalars_match_the_definition() {
        let s = AdamWStep {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
            grad_scale: 0.5,
            step: 2,
        };
        let [gs, decay, step_size, inv] = s.scalars(true);
        assert_eq!(gs, 0.5);
        assert!((decay - 0.999).abs() < 1e-7);
        assert!((step_size - (0.01 / (1.0 - 0.81)) as f32).abs() < 1e-7);
        assert!((inv - (1.0 / (1.0f64 - 0.99 * 0.99).sqrt()) as f32).abs() < 1e-5);
        assert_eq!(s.scalars(false)[1], 1.0);
    }
}
