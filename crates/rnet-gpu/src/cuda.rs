//! The CUDA backend (cargo feature `cuda`): kernels in CUDA C (`kernels.cu`, embedded in the binary)
//! compiled at run time by NVRTC for the device's compute capability, matrix products through cuBLAS
//! `sgemm` (FP32, no TF32). The driver, NVRTC and cuBLAS are loaded dynamically by `cudarc`, so the
//! crate builds without a CUDA toolkit; [`CudaBackend::new`] checks each library is present first and
//! returns a [`BackendError`] — never a panic, never a silent CPU fallback — when one is not.

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::sys::cudaError_enum;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, DriverError,
    LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx, compile_ptx_with_opts};

use crate::shapes::{self, Chunks, Conv, Embed, Gated};
use crate::{
    AdamWStep, Backend, BackendError, MatmulSpec, RMS_EPS, VOCAB, check_adamw, check_axpby,
};

/// The kernels' CUDA C source.
const KERNELS: &str = include_str!("kernels.cu");

/// Threads per block of the element-wise and per-row kernels.
const BLOCK: u32 = 256;
/// Most blocks (accumulator slots) one `sum_squares` launch uses.
const SUM_BLOCKS: usize = 1024;

/// The compiled kernels, one handle each.
struct Kernels {
    rmsnorm_fwd: CudaFunction,
    rmsnorm_bwd_dx: CudaFunction,
    rmsnorm_bwd_dgamma: CudaFunction,
    swiglu_fwd: CudaFunction,
    swiglu_bwd: CudaFunction,
    cross_entropy: CudaFunction,
    adamw: CudaFunction,
    scan_chunks: CudaFunction,
    scan_carry: CudaFunction,
    scan_fix: CudaFunction,
    scan_bwd: CudaFunction,
    conv_fwd: CudaFunction,
    conv_bwd_du: CudaFunction,
    conv_bwd_dw: CudaFunction,
    fill: CudaFunction,
    axpby: CudaFunction,
    scan_step: CudaFunction,
    embed_fwd: CudaFunction,
    embed_bwd: CudaFunction,
    softmax_fwd: CudaFunction,
    softmax_bwd: CudaFunction,
    sum_squares: CudaFunction,
}

impl Kernels {
    fn load(module: &Arc<CudaModule>) -> Result<Self, BackendError> {
        let f = |name: &str| module.load_function(name).map_err(driver("loading a kernel"));
        Ok(Self {
            rmsnorm_fwd: f("rmsnorm_fwd")?,
            rmsnorm_bwd_dx: f("rmsnorm_bwd_dx")?,
            rmsnorm_bwd_dgamma: f("rmsnorm_bwd_dgamma")?,
            swiglu_fwd: f("swiglu_fwd")?,
            swiglu_bwd: f("swiglu_bwd")?,
            cross_entropy: f("cross_entropy")?,
            adamw: f("adamw")?,
            scan_chunks: f("scan_chunks")?,
            scan_carry: f("scan_carry")?,
            scan_fix: f("scan_fix")?,
            scan_bwd: f("scan_bwd")?,
            conv_fwd: f("conv_fwd")?,
            conv_bwd_du: f("conv_bwd_du")?,
            conv_bwd_dw: f("conv_bwd_dw")?,
            fill: f("fill")?,
            axpby: f("axpby")?,
            scan_step: f("scan_step")?,
            embed_fwd: f("embed_fwd")?,
            embed_bwd: f("embed_bwd")?,
            softmax_fwd: f("softmax_fwd")?,
            softmax_bwd: f("softmax_bwd")?,
            sum_squares: f("sum_squares")?,
        })
    }
}

/// A device buffer of the CUDA backend: `len` elements of `T` (at least one is allocated, since the
/// driver rejects empty allocations; the extra element is never read or written).
pub struct CudaBuffer<T> {
    inner: CudaSlice<T>,
    len: usize,
}

impl<T> CudaBuffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T> std::fmt::Debug for CudaBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBuffer").field("len", &self.len).finish_non_exhaustive()
    }
}

/// An NVIDIA GPU behind the [`Backend`] interface. Buffers are `cudarc` device slices; all work is
/// queued on one stream, so operations run in the order they are called.
pub struct CudaBackend {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    k: Kernels,
    name: String,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Maps a driver error to [`BackendError::Driver`] with what was being done.
fn driver(context: &'static str) -> impl Fn(DriverError) -> BackendError {
    move |e| BackendError::Driver { context, message: e.to_string() }
}

/// Runs `f`, turning a panic inside `cudarc` (a library or symbol that cannot be loaded) into a
/// [`BackendError::Driver`].
fn guarded<T>(
    context: &'static str,
    f: impl FnOnce() -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let message = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic while loading CUDA".into());
        Err(BackendError::Driver { context, message })
    })
}

/// An element count as the kernels' `int`, or a shape error.
fn int(op: &'static str, n: usize) -> Result<i32, BackendError> {
    i32::try_from(n).map_err(|_| BackendError::Shape {
        op,
        detail: format!("{n} elements exceed the kernels' 32-bit indexing"),
    })
}

/// One thread per element, `BLOCK` threads a block.
fn elementwise(n: i32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(BLOCK), 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block of `BLOCK` threads per row.
fn per_row(rows: i32) -> LaunchConfig {
    LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// Column reductions: 32 columns × 8 row-threads a block, `ys` blocks in y.
fn columns(d: i32, ys: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((d as u32).div_ceil(32), ys, 1),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaBackend {
    /// Opens device `ordinal`: loads the driver, NVRTC and cuBLAS, creates a context, a stream and a
    /// cuBLAS handle, and compiles the kernels for the device. Fails with [`BackendError::NoDriver`]
    /// on a machine without an NVIDIA driver, [`BackendError::NoDevice`] when there is no such
    /// device, [`BackendError::MissingLibrary`] when NVRTC or cuBLAS cannot be loaded.
    pub fn new(ordinal: usize) -> Result<Self, BackendError> {
        // SAFETY: only tries to dlopen the driver library under its usual names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(BackendError::NoDriver);
        }
        let count = guarded("counting devices", || match CudaContext::device_count() {
            Ok(c) => Ok(c.max(0) as usize),
            Err(DriverError(cudaError_enum::CUDA_ERROR_NO_DEVICE)) => Ok(0),
            Err(e) => Err(driver("counting devices")(e)),
        })?;
        if ordinal >= count {
            return Err(BackendError::NoDevice { ordinal, count });
        }
        // SAFETY: as above, for NVRTC and cuBLAS.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(BackendError::MissingLibrary("nvrtc"));
        }
        // SAFETY: as above.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(BackendError::MissingLibrary("cublas"));
        }
        guarded("initialising the device", || Self::open(ordinal))
    }

    fn open(ordinal: usize) -> Result<Self, BackendError> {
        let ctx = CudaContext::new(ordinal).map_err(driver("creating a context"))?;
        let (major, minor) = ctx.compute_capability().map_err(driver("reading the device"))?;
        let name = ctx.name().map_err(driver("reading the device"))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| BackendError::Blas(e.to_string()))?;
        let ptx = Self::compile_kernels(major, minor)?;
        let module = ctx.load_module(Ptx::from_src(ptx)).map_err(driver("loading the kernels"))?;
        let k = Kernels::load(&module)?;
        Ok(Self { stream, blas, k, name: format!("cuda:{ordinal} {name} (sm_{major}{minor})") })
    }

    /// Compiles the kernels with NVRTC for compute capability `major.minor` and returns the PTX.
    /// Needs only the NVRTC library, no driver or device, so a machine without a GPU can check
    /// that the kernels compile ([`BackendError::MissingLibrary`] when NVRTC is absent).
    pub fn compile_kernels(major: i32, minor: i32) -> Result<String, BackendError> {
        // SAFETY: only tries to dlopen NVRTC under its usual names.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(BackendError::MissingLibrary("nvrtc"));
        }
        guarded("compiling the kernels", || {
            let opts = CompileOptions {
                prec_div: Some(true),
                prec_sqrt: Some(true),
                options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
                name: Some("rnet_kernels.cu".into()),
                ..Default::default()
            };
            let ptx = compile_ptx_with_opts(KERNELS, opts).map_err(|e| {
                BackendError::Compile(match e {
                    CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
                    other => other.to_string(),
                })
            })?;
            Ok(ptx.to_src())
        })
    }

    /// The names of the kernels [`CudaBackend::compile_kernels`] produces.
    pub const KERNEL_NAMES: [&'static str; 22] = [
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

    /// Copies host data into a new buffer (one element allocated at least: the driver rejects
    /// zero-byte allocations).
    fn upload_any<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        data: &[T],
    ) -> Result<CudaBuffer<T>, BackendError> {
        let mut inner = self.stream.alloc_zeros(data.len().max(1)).map_err(driver("allocating"))?;
        if !data.is_empty() {
            self.stream.memcpy_htod(data, &mut inner).map_err(driver("uploading"))?;
        }
        Ok(CudaBuffer { inner, len: data.len() })
    }

    fn launch_err(e: DriverError) -> BackendError {
        BackendError::Driver { context: "launching a kernel", message: e.to_string() }
    }
}

impl Backend for CudaBackend {
    type Buffer = CudaBuffer<f32>;
    type Tokens = CudaBuffer<u8>;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn upload(&self, data: &[f32]) -> Result<CudaBuffer<f32>, BackendError> {
        self.upload_any(data)
    }

    fn zeros(&self, len: usize) -> Result<CudaBuffer<f32>, BackendError> {
        let inner = self.stream.alloc_zeros(len.max(1)).map_err(driver("allocating"))?;
        Ok(CudaBuffer { inner, len })
    }

    fn download(&self, buf: &CudaBuffer<f32>) -> Result<Vec<f32>, BackendError> {
        if buf.len == 0 {
            return Ok(Vec::new());
        }
        let v =
            self.stream.clone_dtoh(&buf.inner.slice(..buf.len)).map_err(driver("downloading"))?;
        self.synchronize()?;
        Ok(v)
    }

    fn len(&self, buf: &CudaBuffer<f32>) -> usize {
        buf.len
    }

    fn upload_into(&self, buf: &mut CudaBuffer<f32>, data: &[f32]) -> Result<(), BackendError> {
        crate::check_upload_len(buf.len, data.len())?;
        if !data.is_empty() {
            // On the backend's one stream: after every operation queued before it.
            let mut dst = buf.inner.slice_mut(..data.len());
            self.stream.memcpy_htod(data, &mut dst).map_err(driver("uploading"))?;
        }
        Ok(())
    }

    fn upload_tokens(&self, tokens: &[u8]) -> Result<CudaBuffer<u8>, BackendError> {
        self.upload_any(tokens)
    }

    fn tokens_len(&self, tokens: &CudaBuffer<u8>) -> usize {
        tokens.len
    }

    fn synchronize(&self) -> Result<(), BackendError> {
        self.stream.synchronize().map_err(driver("synchronising"))
    }

    fn matmul(
        &self,
        spec: &MatmulSpec,
        a: &CudaBuffer<f32>,
        b: &CudaBuffer<f32>,
        c: &mut CudaBuffer<f32>,
    ) -> Result<(), BackendError> {
        spec.validate(a.len(), b.len(), c.len())?;
        let s = spec;
        if s.batch == 0 || s.m == 0 || s.n == 0 {
            return Ok(());
        }
        let op = "matmul";
        let i = |x: usize| int(op, x);
        let l = |x: usize| {
            i64::try_from(x)
                .map_err(|_| BackendError::Shape { op, detail: "stride too large".into() })
        };
        let t = |yes: bool| {
            if yes { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N }
        };
        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B goes first.
        let gemm = GemmConfig {
            transa: t(s.trans_b),
            transb: t(s.trans_a),
            m: i(s.n)?,
            n: i(s.m)?,
            k: i(s.k)?,
            alpha: s.alpha,
            lda: i(s.ldb)?,
            ldb: i(s.lda)?,
            beta: s.beta,
            ldc: i(s.ldc)?,
        };
        // With k = 0 cuBLAS reads neither operand; their offsets are then not checked, so use 0.
        let (oa, ob) = if s.k == 0 { (0, 0) } else { (s.offset_a, s.offset_b) };
        let av = a.inner.slice(oa.min(a.len)..);
        let bv = b.inner.slice(ob.min(b.len)..);
        let mut cv = c.inner.slice_mut(s.offset_c..);
        let res = if s.batch == 1 {
            // SAFETY: `validate` checked that every element the product touches (offsets, strides
            // and row strides included) lies inside the three buffers, and the dimensions fit in i32.
            unsafe { self.blas.gemm(gemm, &bv, &av, &mut cv) }
        } else {
            let cfg = StridedBatchedConfig {
                gemm,
                batch_size: i(s.batch)?,
                stride_a: l(s.stride_b)?,
                stride_b: l(s.stride_a)?,
                stride_c: l(s.stride_c)?,
            };
            // SAFETY: as above, for every batch (`validate` includes the last batch's extent).
            unsafe { self.blas.gemm_strided_batched(cfg, &bv, &av, &mut cv) }
        };
        res.map_err(|e| BackendError::Blas(e.to_string()))
    }

    fn rmsnorm_forward(
        &self,
        y: &mut CudaBuffer<f32>,
        rinv: &mut CudaBuffer<f32>,
        x: &CudaBuffer<f32>,
        gamma: &CudaBuffer<f32>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "rmsnorm_forward";
        let n = shapes::rmsnorm_forward([y.len(), rinv.len(), x.len(), gamma.len()], rows, d)?;
        let (_, rows_i, d_i) = (int(op, n)?, int(op, rows)?, int(op, d)?);
        if rows == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.rmsnorm_fwd);
        l.arg(&mut y.inner)
            .arg(&mut rinv.inner)
            .arg(&x.inner)
            .arg(&gamma.inner)
            .arg(&rows_i)
            .arg(&d_i)
            .arg(&RMS_EPS);
        // SAFETY: the kernel touches rows·d elements of y and x, rows of rinv and d of gamma, all
        // checked above; argument types match the kernel signature.
        unsafe { l.launch(per_row(rows_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn rmsnorm_backward(
        &self,
        dx: &mut CudaBuffer<f32>,
        dgamma: &mut CudaBuffer<f32>,
        dy: &CudaBuffer<f32>,
        x: &CudaBuffer<f32>,
        rinv: &CudaBuffer<f32>,
        gamma: &CudaBuffer<f32>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "rmsnorm_backward";
        let n = shapes::rmsnorm_backward(
            [dx.len(), dgamma.len(), dy.len(), x.len(), rinv.len(), gamma.len()],
            rows,
            d,
        )?;
        let (_, rows_i, d_i) = (int(op, n)?, int(op, rows)?, int(op, d)?);
        if rows == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.rmsnorm_bwd_dx);
        l.arg(&mut dx.inner)
            .arg(&dy.inner)
            .arg(&x.inner)
            .arg(&rinv.inner)
            .arg(&gamma.inner)
            .arg(&rows_i)
            .arg(&d_i);
        // SAFETY: bounds checked above; argument types match the kernel.
        unsafe { l.launch(per_row(rows_i)) }.map_err(Self::launch_err)?;
        let mut l = self.stream.launch_builder(&self.k.rmsnorm_bwd_dgamma);
        l.arg(&mut dgamma.inner)
            .arg(&dy.inner)
            .arg(&x.inner)
            .arg(&rinv.inner)
            .arg(&rows_i)
            .arg(&d_i);
        // SAFETY: as above.
        unsafe { l.launch(columns(d_i, 1)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn swiglu_forward(
        &self,
        p: &mut CudaBuffer<f32>,
        gu: &CudaBuffer<f32>,
        rows: usize,
        f: usize,
    ) -> Result<(), BackendError> {
        let op = "swiglu_forward";
        let Gated { n, n2 } = shapes::swiglu_forward([p.len(), gu.len()], rows, f)?;
        let (n_i, _, rows_i, f_i) = (int(op, n)?, int(op, n2)?, int(op, rows)?, int(op, f)?);
        if n == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.swiglu_fwd);
        l.arg(&mut p.inner).arg(&gu.inner).arg(&rows_i).arg(&f_i);
        // SAFETY: bounds checked above; argument types match the kernel.
        unsafe { l.launch(elementwise(n_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn swiglu_backward(
        &self,
        dgu: &mut CudaBuffer<f32>,
        dp: &CudaBuffer<f32>,
        gu: &CudaBuffer<f32>,
        rows: usize,
        f: usize,
    ) -> Result<(), BackendError> {
        let op = "swiglu_backward";
        let Gated { n, n2 } = shapes::swiglu_backward([dgu.len(), dp.len(), gu.len()], rows, f)?;
        let (n_i, _, rows_i, f_i) = (int(op, n)?, int(op, n2)?, int(op, rows)?, int(op, f)?);
        if n == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.swiglu_bwd);
        l.arg(&mut dgu.inner).arg(&dp.inner).arg(&gu.inner).arg(&rows_i).arg(&f_i);
        // SAFETY: bounds checked above; argument types match the kernel.
        unsafe { l.launch(elementwise(n_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn cross_entropy(
        &self,
        logits: &mut CudaBuffer<f32>,
        losses: &mut CudaBuffer<f32>,
        targets: &CudaBuffer<u8>,
        rows: usize,
        scale: f32,
    ) -> Result<(), BackendError> {
        let op = "cross_entropy";
        let n = shapes::cross_entropy([logits.len(), losses.len(), targets.len()], rows)?;
        let (_, rows_i, vocab_i) = (int(op, n)?, int(op, rows)?, int(op, VOCAB)?);
        if rows == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.cross_entropy);
        l.arg(&mut logits.inner)
            .arg(&mut losses.inner)
            .arg(&targets.inner)
            .arg(&rows_i)
            .arg(&vocab_i)
            .arg(&scale);
        // SAFETY: bounds checked above; every target is a byte, so below VOCAB = 256.
        unsafe { l.launch(per_row(rows_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn adamw_update(
        &self,
        params: &mut CudaBuffer<f32>,
        grads: &CudaBuffer<f32>,
        m: &mut CudaBuffer<f32>,
        v: &mut CudaBuffer<f32>,
        step: &AdamWStep,
        segments: &[(Range<usize>, bool)],
    ) -> Result<(), BackendError> {
        let op = "adamw_update";
        let n = check_adamw([params.len(), grads.len(), m.len(), v.len()], step, segments)?;
        int(op, n)?;
        for (r, decays) in segments {
            if r.is_empty() {
                continue;
            }
            let (start, len) = (int(op, r.start)?, int(op, r.len())?);
            let [gs, decay, step_size, inv] = step.scalars(*decays);
            let mut l = self.stream.launch_builder(&self.k.adamw);
            l.arg(&mut params.inner).arg(&grads.inner).arg(&mut m.inner).arg(&mut v.inner);
            l.arg(&start).arg(&len).arg(&gs).arg(&decay).arg(&step_size).arg(&inv);
            l.arg(&step.beta1).arg(&step.beta2).arg(&step.eps);
            // SAFETY: the segment lies inside the four equal-length buffers (checked above).
            unsafe { l.launch(elementwise(len)) }.map_err(Self::launch_err)?;
        }
        Ok(())
    }

    fn scan_forward(
        &self,
        h: &mut CudaBuffer<f32>,
        decay: &mut CudaBuffer<f32>,
        zh: &CudaBuffer<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
        chunk: usize,
    ) -> Result<(), BackendError> {
        let op = "scan_forward";
        let Gated { n, n2 } =
            shapes::scan_forward([h.len(), decay.len(), zh.len()], windows, t_len, d)?;
        let Chunks { chunk, n_chunks, phase1 } = shapes::scan_chunks(windows, t_len, d, chunk)?;
        let (n_i, _, w_i, t_i, d_i) =
            (int(op, n)?, int(op, n2)?, int(op, windows)?, int(op, t_len)?, int(op, d)?);
        let (c_i, nc_i, p1_i, wd_i) =
            (int(op, chunk)?, int(op, n_chunks)?, int(op, phase1)?, int(op, windows * d)?);
        if n == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.scan_chunks);
        l.arg(&mut h.inner)
            .arg(&mut decay.inner)
            .arg(&zh.inner)
            .arg(&w_i)
            .arg(&t_i)
            .arg(&d_i)
            .arg(&c_i)
            .arg(&nc_i);
        // SAFETY: bounds checked above; argument types match the kernel.
        unsafe { l.launch(elementwise(p1_i)) }.map_err(Self::launch_err)?;
        if n_chunks > 1 {
            let mut l = self.stream.launch_builder(&self.k.scan_carry);
            l.arg(&mut h.inner)
                .arg(&decay.inner)
                .arg(&w_i)
                .arg(&t_i)
                .arg(&d_i)
                .arg(&c_i)
                .arg(&nc_i);
            // SAFETY: as above.
            unsafe { l.launch(elementwise(wd_i)) }.map_err(Self::launch_err)?;
            let mut l = self.stream.launch_builder(&self.k.scan_fix);
            l.arg(&mut h.inner).arg(&decay.inner).arg(&w_i).arg(&t_i).arg(&d_i).arg(&c_i);
            // SAFETY: as above.
            unsafe { l.launch(elementwise(n_i)) }.map_err(Self::launch_err)?;
        }
        Ok(())
    }

    fn scan_backward(
        &self,
        dzh: &mut CudaBuffer<f32>,
        dh: &CudaBuffer<f32>,
        zh: &CudaBuffer<f32>,
        h: &CudaBuffer<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "scan_backward";
        let Gated { n, n2 } =
            shapes::scan_backward([dzh.len(), dh.len(), zh.len(), h.len()], windows, t_len, d)?;
        let (_, _, w_i, t_i, d_i) =
            (int(op, n)?, int(op, n2)?, int(op, windows)?, int(op, t_len)?, int(op, d)?);
        let wd_i = int(op, windows * d)?;
        if n == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.scan_bwd);
        l.arg(&mut dzh.inner)
            .arg(&dh.inner)
            .arg(&zh.inner)
            .arg(&h.inner)
            .arg(&w_i)
            .arg(&t_i)
            .arg(&d_i);
        // SAFETY: bounds checked above; argument types match the kernel.
        unsafe { l.launch(elementwise(wd_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn conv_forward(
        &self,
        c: &mut CudaBuffer<f32>,
        u: &CudaBuffer<f32>,
        weff: &CudaBuffer<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
        kmax: usize,
    ) -> Result<(), BackendError> {
        let op = "conv_forward";
        let Conv { n, kd } =
            shapes::conv_forward([c.len(), u.len(), weff.len()], windows, t_len, d, kmax)?;
        let (n_i, _, w_i, t_i, d_i, k_i) = (
            int(op, n)?,
            int(op, kd)?,
            int(op, windows)?,
            int(op, t_len)?,
            int(op, d)?,
            int(op, kmax)?,
        );
        if n == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.conv_fwd);
        l.arg(&mut c.inner).arg(&u.inner).arg(&weff.inner).arg(&w_i).arg(&t_i).arg(&d_i).arg(&k_i);
        // SAFETY: bounds checked above (the kernel reads kmax·d of weff); types match the kernel.
        unsafe { l.launch(elementwise(n_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn conv_backward(
        &self,
        du: &mut CudaBuffer<f32>,
        dweff: &mut CudaBuffer<f32>,
        dc: &CudaBuffer<f32>,
        u: &CudaBuffer<f32>,
        weff: &CudaBuffer<f32>,
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
        let (n_i, _, w_i, t_i, d_i, k_i) = (
            int(op, n)?,
            int(op, kd)?,
            int(op, windows)?,
            int(op, t_len)?,
            int(op, d)?,
            int(op, kmax)?,
        );
        if kmax > 65_535 {
            return Err(BackendError::Shape { op, detail: format!("kmax {kmax} above 65535") });
        }
        if n == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.conv_bwd_du);
        l.arg(&mut du.inner)
            .arg(&dc.inner)
            .arg(&weff.inner)
            .arg(&w_i)
            .arg(&t_i)
            .arg(&d_i)
            .arg(&k_i);
        // SAFETY: bounds checked above; argument types match the kernel.
        unsafe { l.launch(elementwise(n_i)) }.map_err(Self::launch_err)?;
        if kmax > 0 {
            let mut l = self.stream.launch_builder(&self.k.conv_bwd_dw);
            l.arg(&mut dweff.inner).arg(&dc.inner).arg(&u.inner).arg(&w_i).arg(&t_i).arg(&d_i);
            // SAFETY: as above; grid y = kmax, so k < kmax.
            unsafe { l.launch(columns(d_i, k_i as u32)) }.map_err(Self::launch_err)?;
        }
        Ok(())
    }

    fn fill(&self, y: &mut CudaBuffer<f32>, value: f32) -> Result<(), BackendError> {
        let op = "fill";
        let n_i = int(op, y.len())?;
        if n_i == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.fill);
        l.arg(&mut y.inner).arg(&n_i).arg(&value);
        // SAFETY: n is the buffer's length; argument types match the kernel.
        unsafe { l.launch(elementwise(n_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn axpby(
        &self,
        y: &mut CudaBuffer<f32>,
        y_off: usize,
        alpha: f32,
        x: &CudaBuffer<f32>,
        x_off: usize,
        beta: f32,
        n: usize,
    ) -> Result<(), BackendError> {
        let op = "axpby";
        check_axpby(y.len(), y_off, x.len(), x_off, n)?;
        int(op, y_off + n)?;
        int(op, x_off + n)?;
        let (yo, xo, n_i) = (int(op, y_off)?, int(op, x_off)?, int(op, n)?);
        if n == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.axpby);
        l.arg(&mut y.inner).arg(&x.inner).arg(&yo).arg(&xo).arg(&n_i).arg(&alpha).arg(&beta);
        // SAFETY: both ranges checked above; argument types match the kernel.
        unsafe { l.launch(elementwise(n_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn embed_forward(
        &self,
        x: &mut CudaBuffer<f32>,
        table: &CudaBuffer<f32>,
        tokens: &CudaBuffer<u8>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "embed_forward";
        let Embed { n, nt } = shapes::embed_forward([x.len(), table.len(), tokens.len()], rows, d)?;
        let (n_i, _, rows_i, d_i) = (int(op, n)?, int(op, nt)?, int(op, rows)?, int(op, d)?);
        if n == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.embed_fwd);
        l.arg(&mut x.inner).arg(&table.inner).arg(&tokens.inner).arg(&rows_i).arg(&d_i);
        // SAFETY: bounds checked above; every token is a byte, so below VOCAB = 256.
        unsafe { l.launch(elementwise(n_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn embed_backward(
        &self,
        dtable: &mut CudaBuffer<f32>,
        dx: &CudaBuffer<f32>,
        tokens: &CudaBuffer<u8>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "embed_backward";
        let Embed { n, nt } =
            shapes::embed_backward([dtable.len(), dx.len(), tokens.len()], rows, d)?;
        let (_, _, rows_i, d_i) = (int(op, n)?, int(op, nt)?, int(op, rows)?, int(op, d)?);
        if n == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.embed_bwd);
        l.arg(&mut dtable.inner).arg(&dx.inner).arg(&tokens.inner).arg(&rows_i).arg(&d_i);
        // SAFETY: bounds checked above; one block per table row.
        unsafe { l.launch(per_row(VOCAB as i32)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn softmax_forward(
        &self,
        x: &mut CudaBuffer<f32>,
        rows: usize,
        s: usize,
    ) -> Result<(), BackendError> {
        let op = "softmax_forward";
        let n = shapes::softmax_forward(x.len(), rows, s)?;
        let (_, rows_i, s_i) = (int(op, n)?, int(op, rows)?, int(op, s)?);
        if rows == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.softmax_fwd);
        l.arg(&mut x.inner).arg(&rows_i).arg(&s_i);
        // SAFETY: bounds checked above.
        unsafe { l.launch(per_row(rows_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn softmax_backward(
        &self,
        dalpha: &mut CudaBuffer<f32>,
        alpha: &CudaBuffer<f32>,
        rows: usize,
        s: usize,
        scale: f32,
    ) -> Result<(), BackendError> {
        let op = "softmax_backward";
        let n = shapes::softmax_backward([dalpha.len(), alpha.len()], rows, s)?;
        let (_, rows_i, s_i) = (int(op, n)?, int(op, rows)?, int(op, s)?);
        if rows == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.k.softmax_bwd);
        l.arg(&mut dalpha.inner).arg(&alpha.inner).arg(&rows_i).arg(&s_i).arg(&scale);
        // SAFETY: bounds checked above.
        unsafe { l.launch(per_row(rows_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn sum_squares(
        &self,
        acc: &mut CudaBuffer<f32>,
        x: &CudaBuffer<f32>,
    ) -> Result<(), BackendError> {
        let op = "sum_squares";
        shapes::sum_squares(acc.len())?;
        let n_i = int(op, x.len())?;
        if n_i == 0 {
            return Ok(());
        }
        let blocks = x.len().div_ceil(BLOCK as usize).min(acc.len()).min(SUM_BLOCKS) as u32;
        let mut l = self.stream.launch_builder(&self.k.sum_squares);
        l.arg(&mut acc.inner).arg(&x.inner).arg(&n_i);
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: block b writes acc[b] only, b < acc.len(); x is read below its length.
        unsafe { l.launch(cfg) }.map_err(Self::launch_err)?;
        Ok(())
    }

    fn scan_step(
        &self,
        h: &mut CudaBuffer<f32>,
        zh: &CudaBuffer<f32>,
        d: usize,
    ) -> Result<(), BackendError> {
        let op = "scan_step";
        let d2 = shapes::scan_step([h.len(), zh.len()], d)?;
        let (_, d_i) = (int(op, d2)?, int(op, d)?);
        let mut l = self.stream.launch_builder(&self.k.scan_step);
        l.arg(&mut h.inner).arg(&zh.inner).arg(&d_i);
        // SAFETY: bounds checked above.
        unsafe { l.launch(elementwise(d_i)) }.map_err(Self::launch_err)?;
        Ok(())
    }
}
