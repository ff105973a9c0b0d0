//! The `wgpu` backend: Vulkan (cargo feature `vulkan`) and Metal (feature `metal`, Apple targets),
//! one implementation with kernels in WGSL (`src/wgsl/*.wgsl`, embedded in the binary) compiled
//! when the backend opens. The Vulkan loader is opened at run time, so the crate builds without a
//! Vulkan SDK or driver; [`WgpuBackend::new`] returns [`BackendError::NoAdapter`] — never a panic,
//! never a silent CPU fallback — when the machine offers no adapter of the API. Software
//! rasterisers (Mesa's lavapipe) count as Vulkan adapters, which is how the agreement tests run on
//! machines without a GPU. The Metal path is the same code on `wgpu`'s Metal backend; it is
//! compiled for `aarch64-apple-darwin` in CI but has not run on an Apple GPU.
//!
//! Structure mirrors the CUDA port: [`device`] owns the `wgpu` device, buffers and dispatch (with
//! every `wgpu` error turned into a [`BackendError`]), [`kernels`] the WGSL modules and pipelines,
//! and this file launches kernels, one `Backend` operation at a time, after the shape checks every
//! backend shares (`crate::shapes`). Unlike cuBLAS there is no vendor GEMM: the matrix product
//! is a tiled WGSL kernel (`matmul.wgsl`).

mod device;
mod kernels;

use std::ops::Range;

pub use device::{GpuApi, WgpuBuffer};

use crate::shapes::{self, Chunks, Conv, Embed, Gated};
use crate::{
    AdamWStep, Backend, BackendError, MatmulSpec, RMS_EPS, VOCAB, check_adamw, check_axpby,
};
use device::Gpu;
use kernels::Kernels;

/// Invocations per workgroup of the element-wise and per-row kernels.
const WG: usize = 256;
/// Rows and columns of C one workgroup of the matrix product computes.
const TILE: usize = 64;
/// Most workgroups in one grid dimension (every Vulkan device's limit).
const MAX_GRID: usize = 65_535;
/// Columns one workgroup of the column reductions covers.
const COLS: usize = 32;
/// Most workgroups (accumulator slots) one `sum_squares` dispatch uses.
const SUM_GROUPS: usize = 1024;

/// A Vulkan device behind the [`Backend`] interface. Buffers are `wgpu` storage buffers; all work is
/// submitted to one queue, so operations run in the order they are called.
pub struct WgpuBackend {
    gpu: Gpu,
    k: Kernels,
    /// Matrix–vector products with one invocation per column (`matvec_cols`, for software
    /// rasterisers) instead of one workgroup per column (`matvec`, for GPUs).
    column_matvec: bool,
}

impl std::fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgpuBackend").field("name", &self.gpu.name).finish_non_exhaustive()
    }
}

/// An element count as the kernels' `u32` indexing allows (31 bits, like the CUDA port, so sums
/// such as `2·n` cannot wrap), or a shape error.
fn word(op: &'static str, n: usize) -> Result<u32, BackendError> {
    i32::try_from(n).map(|v| v as u32).map_err(|_| BackendError::Shape {
        op,
        detail: format!("{n} elements exceed the kernels' 31-bit indexing"),
    })
}

/// One adapter of this machine (see [`WgpuBackend::adapters`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgpuAdapter {
    /// Its ordinal, as [`WgpuBackend::new`] takes it.
    pub ordinal: usize,
    /// Name, device type and driver, for logs.
    pub name: String,
    /// A CPU implementation (a software rasteriser such as Mesa's lavapipe), not a GPU.
    pub software: bool,
}

impl WgpuBackend {
    /// The `api` adapters this machine offers, in ordinal order, without opening any (empty
    /// without a loader or driver). `Device::Auto` uses it to skip software rasterisers.
    pub fn adapters(api: GpuApi) -> Vec<WgpuAdapter> {
        device::adapter_infos(api)
            .into_iter()
            .enumerate()
            .map(|(ordinal, (name, software))| WgpuAdapter { ordinal, name, software })
            .collect()
    }

    /// Opens Vulkan adapter `ordinal` (in the loader's order; 0 is the first) and compiles the
    /// kernels. Fails with [`BackendError::NoAdapter`] when there is no such adapter — in
    /// particular on a machine without a Vulkan loader or driver — and [`BackendError::Wgpu`]
    /// when the device cannot be opened or a kernel does not compile.
    pub fn new(ordinal: usize) -> Result<Self, BackendError> {
        Self::open(GpuApi::Vulkan, ordinal)
    }

    /// Opens adapter `ordinal` of `api` and compiles the kernels; fails as [`WgpuBackend::new`].
    pub fn open(api: GpuApi, ordinal: usize) -> Result<Self, BackendError> {
        let gpu = Gpu::open(api, ordinal)?;
        let k = Kernels::compile(&gpu)?;
        let column_matvec = gpu.software;
        Ok(Self { gpu, k, column_matvec })
    }

    /// Chooses the matrix–vector kernel (products with one row of C, as in decoding): one
    /// invocation per column (`true`, the default on software rasterisers) or one workgroup per
    /// column that reduces in workgroup memory (`false`, the default on GPUs). Both give the same
    /// products up to the order of the additions; tests and benchmarks run both.
    pub fn with_column_matvec(mut self, column: bool) -> Self {
        self.column_matvec = column;
        self
    }

    /// Parses and validates every WGSL kernel with `naga` (the front end `wgpu` uses), without a
    /// device, and returns the entry points found; so a machine without Vulkan can still check the
    /// kernels. A parse or validation error is a [`BackendError::Wgpu`] naming the file.
    pub fn validate_kernels() -> Result<Vec<String>, BackendError> {
        use wgpu::naga;
        let mut names = Vec::new();
        for (file, reduce, text, _) in kernels::FILES {
            let err = |message: String| BackendError::Wgpu {
                context: "validating the WGSL kernels",
                message: format!("{file}: {message}"),
            };
            let src = kernels::source(reduce, text);
            let module =
                naga::front::wgsl::parse_str(&src).map_err(|e| err(e.emit_to_string(&src)))?;
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::empty(),
            )
            .validate(&module)
            .map_err(|e| err(e.emit_to_string(&src)))?;
            names.extend(module.entry_points.iter().map(|e| e.name.clone()));
        }
        Ok(names)
    }

    /// The entry points [`WgpuBackend::validate_kernels`] must find, one per compute pipeline.
    pub const KERNEL_NAMES: [&'static str; 25] = [
        "matmul",
        "matvec",
        "matvec_cols",
        "rmsnorm_fwd",
        "rmsnorm_bwd_dx",
        "rmsnorm_bwd_dgamma",
        "swiglu_fwd",
        "swiglu_bwd",
        "cross_entropy",
        "adamw",
        "scan_chunks",
        "scan_carry",
        "scan_fix",
        "scan_bwd",
        "conv_fwd",
        "conv_bwd_du",
        "conv_bwd_dw",
        "fill",
        "axpby",
        "scan_step",
        "embed_fwd",
        "embed_bwd",
        "softmax_fwd",
        "softmax_bwd",
        "sum_squares",
    ];

    /// One workgroup per row (or per element group), laid out on a two-dimensional grid.
    fn grid(&self, op: &'static str, groups: usize) -> Result<(u32, u32, u32), BackendError> {
        self.gpu.grid(op, groups)
    }
}

/// `f32` parameter as a uniform word.
fn bits(v: f32) -> u32 {
    v.to_bits()
}

impl Backend for WgpuBackend {
    type Buffer = WgpuBuffer<f32>;
    type Tokens = WgpuBuffer<u8>;

    fn name(&self) -> String {
        self.gpu.name.clone()
    }

    fn upload(&self, data: &[f32]) -> Result<WgpuBuffer<f32>, BackendError> {
        self.gpu.upload(data)
    }

    fn zeros(&self, len: usize) -> Result<WgpuBuffer<f32>, BackendError> {
        self.gpu.zeros(len)
    }

    fn download(&self, buf: &WgpuBuffer<f32>) -> Result<Vec<f32>, BackendError> {
        self.gpu.download(buf)
    }

    fn len(&self, buf: &WgpuBuffer<f32>) -> usize {
        buf.len()
    }

    fn upload_into(&self, buf: &mut WgpuBuffer<f32>, data: &[f32]) -> Result<(), BackendError> {
        crate::check_upload_len(buf.len(), data.len())?;
        self.gpu.write(buf, data)
    }

    fn upload_tokens(&self, tokens: &[u8]) -> Result<WgpuBuffer<u8>, BackendError> {
        self.gpu.upload_tokens(tokens)
    }

    fn tokens_len(&self, tokens: &WgpuBuffer<u8>) -> usize {
        tokens.len()
    }

    fn synchronize(&self) -> Result<(), BackendError> {
        self.gpu.synchronize()
    }

    fn matmul(
        &self,
        spec: &MatmulSpec,
        a: &WgpuBuffer<f32>,
        b: &WgpuBuffer<f32>,
        c: &mut WgpuBuffer<f32>,
    ) -> Result<(), BackendError> {
        spec.validate(a.len(), b.len(), c.len())?;
        let s = spec;
        if s.batch == 0 || s.m == 0 || s.n == 0 {
            return Ok(());
        }
        let op = "matmul";
        let w = |x: usize| word(op, x);
        // With k = 0 neither operand is read; their offsets and strides are then unchecked, so 0.
        let (oa, ob, sa, sb, lda, ldb) = if s.k == 0 {
            (0, 0, 0, 0, 1, 1)
        } else {
            (s.offset_a, s.offset_b, s.stride_a, s.stride_b, s.lda, s.ldb)
        };
        // One row of C (decoding): a matrix–vector kernel instead of 64-row tiles.
        let vector = s.m == 1 && s.n <= MAX_GRID;
        let (pipeline, gx, gy) = if vector && self.column_matvec {
            (&self.k.matvec_cols, s.n.div_ceil(64) as u32, 1)
        } else if vector {
            (&self.k.matvec, s.n as u32, 1)
        } else {
            let gx = Gpu::dim(op, "n / 64", s.n.div_ceil(TILE))?;
            let gy = Gpu::dim(op, "m / 64", s.m.div_ceil(TILE))?;
            (&self.k.matmul, gx, gy)
        };
        let flags = u32::from(s.trans_a) | (u32::from(s.trans_b) << 1);
        // Batches beyond one grid's depth go in further dispatches, each from its first batch.
        let per = Gpu::dim(op, "batch", s.batch.min(65_535))? as usize;
        let mut first = 0;
        while first < s.batch {
            let count = per.min(s.batch - first);
            let at = |off: usize, stride: usize| w(off + first * stride);
            let params = [
                w(s.m)?,
                w(s.n)?,
                w(s.k)?,
                flags,
                w(lda)?,
                w(ldb)?,
                w(s.ldc)?,
                0,
                at(oa, sa)?,
                at(ob, sb)?,
                at(s.offset_c, s.stride_c)?,
                0,
                w(sa)?,
                w(sb)?,
                w(s.stride_c)?,
                0,
                bits(s.alpha),
                bits(s.beta),
            ];
            self.gpu.dispatch(
                pipeline,
                &params,
                &[(1, &a.buf), (2, &b.buf), (3, &c.buf)],
                (gx, gy, count as u32),
            )?;
            first += count;
        }
        Ok(())
    }

    fn rmsnorm_forward(
        &self,
        y: &mut WgpuBuffer<f32>,
        rinv: &mut WgpuBuffer<f32>,
        x: &WgpuBuffer<f32>,
        gamma: &WgpuBuffer<f32>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "rmsnorm_forward";
        let n = shapes::rmsnorm_forward([y.len(), rinv.len(), x.len(), gamma.len()], rows, d)?;
        word(op, n)?;
        if rows == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.rmsnorm_fwd,
            &[word(op, rows)?, word(op, d)?, bits(RMS_EPS)],
            &[(1, &y.buf), (2, &rinv.buf), (3, &x.buf), (4, &gamma.buf)],
            self.grid(op, rows)?,
        )
    }

    fn rmsnorm_backward(
        &self,
        dx: &mut WgpuBuffer<f32>,
        dgamma: &mut WgpuBuffer<f32>,
        dy: &WgpuBuffer<f32>,
        x: &WgpuBuffer<f32>,
        rinv: &WgpuBuffer<f32>,
        gamma: &WgpuBuffer<f32>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "rmsnorm_backward";
        let n = shapes::rmsnorm_backward(
            [dx.len(), dgamma.len(), dy.len(), x.len(), rinv.len(), gamma.len()],
            rows,
            d,
        )?;
        word(op, n)?;
        if rows == 0 {
            return Ok(());
        }
        let params = [word(op, rows)?, word(op, d)?, bits(RMS_EPS)];
        self.gpu.dispatch(
            &self.k.rmsnorm_bwd_dx,
            &params,
            &[(5, &dx.buf), (6, &dy.buf), (3, &x.buf), (7, &rinv.buf), (4, &gamma.buf)],
            self.grid(op, rows)?,
        )?;
        self.gpu.dispatch(
            &self.k.rmsnorm_bwd_dgamma,
            &params,
            &[(8, &dgamma.buf), (6, &dy.buf), (3, &x.buf), (7, &rinv.buf)],
            (Gpu::dim(op, "d / 32", d.div_ceil(COLS))?, 1, 1),
        )
    }

    fn swiglu_forward(
        &self,
        p: &mut WgpuBuffer<f32>,
        gu: &WgpuBuffer<f32>,
        rows: usize,
        f: usize,
    ) -> Result<(), BackendError> {
        let op = "swiglu_forward";
        let Gated { n, n2 } = shapes::swiglu_forward([p.len(), gu.len()], rows, f)?;
        word(op, n2)?;
        if n == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.swiglu_fwd,
            &[word(op, rows)?, word(op, f)?, word(op, n)?],
            &[(1, &p.buf), (2, &gu.buf)],
            self.grid(op, n.div_ceil(WG))?,
        )
    }

    fn swiglu_backward(
        &self,
        dgu: &mut WgpuBuffer<f32>,
        dp: &WgpuBuffer<f32>,
        gu: &WgpuBuffer<f32>,
        rows: usize,
        f: usize,
    ) -> Result<(), BackendError> {
        let op = "swiglu_backward";
        let Gated { n, n2 } = shapes::swiglu_backward([dgu.len(), dp.len(), gu.len()], rows, f)?;
        word(op, n2)?;
        if n == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.swiglu_bwd,
            &[word(op, rows)?, word(op, f)?, word(op, n)?],
            &[(3, &dgu.buf), (4, &dp.buf), (2, &gu.buf)],
            self.grid(op, n.div_ceil(WG))?,
        )
    }

    fn cross_entropy(
        &self,
        logits: &mut WgpuBuffer<f32>,
        losses: &mut WgpuBuffer<f32>,
        targets: &WgpuBuffer<u8>,
        rows: usize,
        scale: f32,
    ) -> Result<(), BackendError> {
        let op = "cross_entropy";
        let n = shapes::cross_entropy([logits.len(), losses.len(), targets.len()], rows)?;
        word(op, n)?;
        if rows == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.cross_entropy,
            &[word(op, rows)?, word(op, VOCAB)?, bits(scale)],
            &[(1, &logits.buf), (2, &losses.buf), (3, &targets.buf)],
            self.grid(op, rows)?,
        )
    }

    fn adamw_update(
        &self,
        params: &mut WgpuBuffer<f32>,
        grads: &WgpuBuffer<f32>,
        m: &mut WgpuBuffer<f32>,
        v: &mut WgpuBuffer<f32>,
        step: &AdamWStep,
        segments: &[(Range<usize>, bool)],
    ) -> Result<(), BackendError> {
        let op = "adamw_update";
        let n = check_adamw([params.len(), grads.len(), m.len(), v.len()], step, segments)?;
        word(op, n)?;
        for (r, decays) in segments {
            if r.is_empty() {
                continue;
            }
            let [gs, decay, step_size, inv] = step.scalars(*decays);
            let words = [
                word(op, r.start)?,
                word(op, r.len())?,
                bits(gs),
                bits(decay),
                bits(step_size),
                bits(inv),
                bits(step.beta1),
                bits(step.beta2),
                bits(step.eps),
            ];
            self.gpu.dispatch(
                &self.k.adamw,
                &words,
                &[(1, &params.buf), (2, &grads.buf), (3, &m.buf), (4, &v.buf)],
                self.grid(op, r.len().div_ceil(WG))?,
            )?;
        }
        Ok(())
    }

    fn scan_forward(
        &self,
        h: &mut WgpuBuffer<f32>,
        decay: &mut WgpuBuffer<f32>,
        zh: &WgpuBuffer<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
        chunk: usize,
    ) -> Result<(), BackendError> {
        let op = "scan_forward";
        let Gated { n, n2 } =
            shapes::scan_forward([h.len(), decay.len(), zh.len()], windows, t_len, d)?;
        let Chunks { chunk, n_chunks, phase1 } = shapes::scan_chunks(windows, t_len, d, chunk)?;
        word(op, n2)?;
        if n == 0 {
            return Ok(());
        }
        let params = [
            word(op, windows)?,
            word(op, t_len)?,
            word(op, d)?,
            word(op, chunk)?,
            word(op, n_chunks)?,
        ];
        self.gpu.dispatch(
            &self.k.scan_chunks,
            &params,
            &[(1, &h.buf), (2, &decay.buf), (3, &zh.buf)],
            self.grid(op, phase1.div_ceil(WG))?,
        )?;
        if n_chunks > 1 {
            self.gpu.dispatch(
                &self.k.scan_carry,
                &params,
                &[(1, &h.buf), (4, &decay.buf)],
                self.grid(op, (windows * d).div_ceil(WG))?,
            )?;
            self.gpu.dispatch(
                &self.k.scan_fix,
                &params,
                &[(1, &h.buf), (4, &decay.buf)],
                self.grid(op, n.div_ceil(WG))?,
            )?;
        }
        Ok(())
    }

    fn scan_backward(
        &self,
        dzh: &mut WgpuBuffer<f32>,
        dh: &WgpuBuffer<f32>,
        zh: &WgpuBuffer<f32>,
        h: &WgpuBuffer<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "scan_backward";
        let Gated { n, n2 } =
            shapes::scan_backward([dzh.len(), dh.len(), zh.len(), h.len()], windows, t_len, d)?;
        word(op, n2)?;
        if n == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.scan_bwd,
            &[word(op, windows)?, word(op, t_len)?, word(op, d)?, 1, 1],
            &[(5, &dzh.buf), (6, &dh.buf), (3, &zh.buf), (7, &h.buf)],
            self.grid(op, (windows * d).div_ceil(WG))?,
        )
    }

    fn conv_forward(
        &self,
        c: &mut WgpuBuffer<f32>,
        u: &WgpuBuffer<f32>,
        weff: &WgpuBuffer<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
        kmax: usize,
    ) -> Result<(), BackendError> {
        let op = "conv_forward";
        let Conv { n, kd } =
            shapes::conv_forward([c.len(), u.len(), weff.len()], windows, t_len, d, kmax)?;
        word(op, n)?;
        word(op, kd)?;
        if n == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.conv_fwd,
            &[word(op, windows)?, word(op, t_len)?, word(op, d)?, word(op, kmax)?],
            &[(1, &c.buf), (2, &u.buf), (3, &weff.buf)],
            self.grid(op, n.div_ceil(WG))?,
        )
    }

    fn conv_backward(
        &self,
        du: &mut WgpuBuffer<f32>,
        dweff: &mut WgpuBuffer<f32>,
        dc: &WgpuBuffer<f32>,
        u: &WgpuBuffer<f32>,
        weff: &WgpuBuffer<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
        kmax: usize,
    ) -> Result<(), BackendError> {
        let op = "conv_backward";
        let Conv { n, kd } = shapes::conv_backward(
            [du.len(), dweff.len(), dc.len(), u.len(), weff.len()],
            windows,
            t_len,
            d,
            kmax,
        )?;
        word(op, n)?;
        word(op, kd)?;
        let gk = Gpu::dim(op, "kmax", kmax)?;
        let gd = Gpu::dim(op, "d / 32", d.div_ceil(COLS))?;
        if n == 0 {
            return Ok(());
        }
        let params = [word(op, windows)?, word(op, t_len)?, word(op, d)?, word(op, kmax)?];
        self.gpu.dispatch(
            &self.k.conv_bwd_du,
            &params,
            &[(4, &du.buf), (5, &dc.buf), (3, &weff.buf)],
            self.grid(op, n.div_ceil(WG))?,
        )?;
        if kmax > 0 {
            self.gpu.dispatch(
                &self.k.conv_bwd_dw,
                &params,
                &[(6, &dweff.buf), (5, &dc.buf), (2, &u.buf)],
                (gd, gk, 1),
            )?;
        }
        Ok(())
    }

    fn fill(&self, y: &mut WgpuBuffer<f32>, value: f32) -> Result<(), BackendError> {
        let op = "fill";
        let n = y.len();
        if n == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.fill,
            &[word(op, n)?, 0, 0, 0, 0, 0, bits(value)],
            &[(1, &y.buf)],
            self.grid(op, n.div_ceil(WG))?,
        )
    }

    fn axpby(
        &self,
        y: &mut WgpuBuffer<f32>,
        y_off: usize,
        alpha: f32,
        x: &WgpuBuffer<f32>,
        x_off: usize,
        beta: f32,
        n: usize,
    ) -> Result<(), BackendError> {
        let op = "axpby";
        check_axpby(y.len(), y_off, x.len(), x_off, n)?;
        word(op, y_off + n)?;
        word(op, x_off + n)?;
        if n == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.axpby,
            &[word(op, n)?, word(op, y_off)?, word(op, x_off)?, 0, bits(alpha), bits(beta)],
            &[(1, &y.buf), (2, &x.buf)],
            self.grid(op, n.div_ceil(WG))?,
        )
    }

    fn embed_forward(
        &self,
        x: &mut WgpuBuffer<f32>,
        table: &WgpuBuffer<f32>,
        tokens: &WgpuBuffer<u8>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "embed_forward";
        let Embed { n, nt } = shapes::embed_forward([x.len(), table.len(), tokens.len()], rows, d)?;
        word(op, n)?;
        word(op, nt)?;
        if n == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.embed_fwd,
            &[word(op, rows)?, word(op, d)?],
            &[(1, &x.buf), (2, &table.buf), (3, &tokens.buf)],
            self.grid(op, n.div_ceil(WG))?,
        )
    }

    fn embed_backward(
        &self,
        dtable: &mut WgpuBuffer<f32>,
        dx: &WgpuBuffer<f32>,
        tokens: &WgpuBuffer<u8>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "embed_backward";
        let Embed { n, nt } =
            shapes::embed_backward([dtable.len(), dx.len(), tokens.len()], rows, d)?;
        word(op, n)?;
        word(op, nt)?;
        if n == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.embed_bwd,
            &[word(op, rows)?, word(op, d)?],
            &[(4, &dtable.buf), (5, &dx.buf), (3, &tokens.buf)],
            (VOCAB as u32, 1, 1),
        )
    }

    fn softmax_forward(
        &self,
        x: &mut WgpuBuffer<f32>,
        rows: usize,
        s: usize,
    ) -> Result<(), BackendError> {
        let op = "softmax_forward";
        let n = shapes::softmax_forward(x.len(), rows, s)?;
        word(op, n)?;
        if rows == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.softmax_fwd,
            &[word(op, rows)?, word(op, s)?, bits(1.0)],
            &[(1, &x.buf)],
            self.grid(op, rows)?,
        )
    }

    fn softmax_backward(
        &self,
        dalpha: &mut WgpuBuffer<f32>,
        alpha: &WgpuBuffer<f32>,
        rows: usize,
        s: usize,
        scale: f32,
    ) -> Result<(), BackendError> {
        let op = "softmax_backward";
        let n = shapes::softmax_backward([dalpha.len(), alpha.len()], rows, s)?;
        word(op, n)?;
        if rows == 0 {
            return Ok(());
        }
        self.gpu.dispatch(
            &self.k.softmax_bwd,
            &[word(op, rows)?, word(op, s)?, bits(scale)],
            &[(1, &dalpha.buf), (2, &alpha.buf)],
            self.grid(op, rows)?,
        )
    }

    fn sum_squares(
        &self,
        acc: &mut WgpuBuffer<f32>,
        x: &WgpuBuffer<f32>,
    ) -> Result<(), BackendError> {
        let op = "sum_squares";
        shapes::sum_squares(acc.len())?;
        let n = x.len();
        word(op, n)?;
        if n == 0 {
            return Ok(());
        }
        let groups = n.div_ceil(WG).min(acc.len()).min(SUM_GROUPS);
        self.gpu.dispatch(
            &self.k.sum_squares,
            &[word(op, n)?, word(op, groups)?],
            &[(1, &acc.buf), (2, &x.buf)],
            (groups as u32, 1, 1),
        )
    }

    fn scan_step(
        &self,
        h: &mut WgpuBuffer<f32>,
        zh: &WgpuBuffer<f32>,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "scan_step";
        let d2 = shapes::scan_step([h.len(), zh.len()], d)?;
        word(op, d2)?;
        self.gpu.dispatch(
            &self.k.scan_step,
            // The uniform is the whole 32-byte `Params` of elementwise.wgsl.
            &[word(op, d)?, 0, 0, 0, 0, 0, 0, 0],
            &[(1, &h.buf), (2, &zh.buf)],
            self.grid(op, d.div_ceil(WG))?,
        )
    }
}
