//! The WGSL kernels (`src/wgsl/*.wgsl`, embedded in the binary) and their compute pipelines. Each
//! kernel file is compiled as one shader module with the shared helpers (`common.wgsl`, and
//! `reduce.wgsl` where a workgroup reduction is needed) prepended; each entry point becomes one
//! pipeline whose bind-group layout `wgpu` derives from the bindings that entry point uses.

use crate::BackendError;

use super::device::Gpu;

const COMMON: &str = include_str!("../wgsl/common.wgsl");
const REDUCE: &str = include_str!("../wgsl/reduce.wgsl");
const MATMUL: &str = include_str!("../wgsl/matmul.wgsl");
const RMSNORM: &str = include_str!("../wgsl/rmsnorm.wgsl");
const SWIGLU: &str = include_str!("../wgsl/swiglu.wgsl");
const CROSS_ENTROPY: &str = include_str!("../wgsl/cross_entropy.wgsl");
const ADAMW: &str = include_str!("../wgsl/adamw.wgsl");
const SCAN: &str = include_str!("../wgsl/scan.wgsl");
const CONV: &str = include_str!("../wgsl/conv.wgsl");
const ELEMENTWISE: &str = include_str!("../wgsl/elementwise.wgsl");
const EMBED: &str = include_str!("../wgsl/embed.wgsl");
const SOFTMAX: &str = include_str!("../wgsl/softmax.wgsl");
const SUM_SQUARES: &str = include_str!("../wgsl/sum_squares.wgsl");

/// The kernel files: name, whether the workgroup reductions are prepended, source, entry points.
pub(super) const FILES: [(&str, bool, &str, &[&str]); 11] = [
    ("matmul", false, MATMUL, &["matmul", "matvec", "matvec_cols"]),
    ("rmsnorm", true, RMSNORM, &["rmsnorm_fwd", "rmsnorm_bwd_dx", "rmsnorm_bwd_dgamma"]),
    ("swiglu", false, SWIGLU, &["swiglu_fwd", "swiglu_bwd"]),
    ("cross_entropy", true, CROSS_ENTROPY, &["cross_entropy"]),
    ("adamw", false, ADAMW, &["adamw"]),
    ("scan", false, SCAN, &["scan_chunks", "scan_carry", "scan_fix", "scan_bwd"]),
    ("conv", false, CONV, &["conv_fwd", "conv_bwd_du", "conv_bwd_dw"]),
    ("elementwise", false, ELEMENTWISE, &["fill", "axpby", "scan_step"]),
    ("embed", false, EMBED, &["embed_fwd", "embed_bwd"]),
    ("softmax", true, SOFTMAX, &["softmax_fwd", "softmax_bwd"]),
    ("sum_squares", true, SUM_SQUARES, &["sum_squares"]),
];

/// The full WGSL source of kernel file `file` (helpers prepended).
pub(super) fn source(reduce: bool, file: &str) -> String {
    let mut s = String::from(COMMON);
    if reduce {
        s.push_str(REDUCE);
    }
    s.push_str(file);
    s
}

/// One compute pipeline per kernel entry point.
pub(super) struct Kernels {
    pub(super) matmul: wgpu::ComputePipeline,
    pub(super) matvec: wgpu::ComputePipeline,
    pub(super) matvec_cols: wgpu::ComputePipeline,
    pub(super) rmsnorm_fwd: wgpu::ComputePipeline,
    pub(super) rmsnorm_bwd_dx: wgpu::ComputePipeline,
    pub(super) rmsnorm_bwd_dgamma: wgpu::ComputePipeline,
    pub(super) swiglu_fwd: wgpu::ComputePipeline,
    pub(super) swiglu_bwd: wgpu::ComputePipeline,
    pub(super) cross_entropy: wgpu::ComputePipeline,
    pub(super) adamw: wgpu::ComputePipeline,
    pub(super) scan_chunks: wgpu::ComputePipeline,
    pub(super) scan_carry: wgpu::ComputePipeline,
    pub(super) scan_fix: wgpu::ComputePipeline,
    pub(super) scan_bwd: wgpu::ComputePipeline,
    pub(super) conv_fwd: wgpu::ComputePipeline,
    pub(super) conv_bwd_du: wgpu::ComputePipeline,
    pub(super) conv_bwd_dw: wgpu::ComputePipeline,
    pub(super) fill: wgpu::ComputePipeline,
    pub(super) axpby: wgpu::ComputePipeline,
    pub(super) scan_step: wgpu::ComputePipeline,
    pub(super) embed_fwd: wgpu::ComputePipeline,
    pub(super) embed_bwd: wgpu::ComputePipeline,
    pub(super) softmax_fwd: wgpu::ComputePipeline,
    pub(super) softmax_bwd: wgpu::ComputePipeline,
    pub(super) sum_squares: wgpu::ComputePipeline,
}

impl Kernels {
    /// Compiles every kernel file and creates its pipelines; a WGSL error (caught by the error
    /// scopes) is a [`BackendError::Wgpu`] naming the file.
    pub(super) fn compile(gpu: &Gpu) -> Result<Self, BackendError> {
        let mut pipelines = Vec::new();
        for (file, reduce, text, entries) in FILES {
            let src = source(reduce, text);
            let module = gpu
                .scoped("compiling the WGSL kernels", || {
                    gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(file),
                        source: wgpu::ShaderSource::Wgsl(src.into()),
                    })
                })
                .map_err(|e| with_file(e, file))?;
            for &entry in entries {
                let p = gpu
                    .scoped("creating the compute pipelines", || {
                        gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(entry),
                            layout: None,
                            module: &module,
                            entry_point: Some(entry),
                            compilation_options: wgpu::PipelineCompilationOptions {
                                constants: &[],
                                // Every kernel writes its workgroup memory before reading it.
                                zero_initialize_workgroup_memory: false,
                            },
                            cache: None,
                        })
                    })
                    .map_err(|e| with_file(e, entry))?;
                pipelines.push(p);
            }
        }
        let mut it = pipelines.into_iter();
        // The order of FILES' entry points; `next` cannot run out since every one was pushed.
        let mut next = || it.next().ok_or_else(|| internal("pipeline count"));
        Ok(Self {
            matmul: next()?,
            matvec: next()?,
            matvec_cols: next()?,
            rmsnorm_fwd: next()?,
            rmsnorm_bwd_dx: next()?,
            rmsnorm_bwd_dgamma: next()?,
            swiglu_fwd: next()?,
            swiglu_bwd: next()?,
            cross_entropy: next()?,
            adamw: next()?,
            scan_chunks: next()?,
            scan_carry: next()?,
            scan_fix: next()?,
            scan_bwd: next()?,
            conv_fwd: next()?,
            conv_bwd_du: next()?,
            conv_bwd_dw: next()?,
            fill: next()?,
            axpby: next()?,
            scan_step: next()?,
            embed_fwd: next()?,
            embed_bwd: next()?,
            softmax_fwd: next()?,
            softmax_bwd: next()?,
            sum_squares: next()?,
        })
    }
}

fn with_file(e: BackendError, what: &str) -> BackendError {
    match e {
        BackendError::Wgpu { context, message } => {
            BackendError::Wgpu { context, message: format!("{what}: {message}") }
        }
        other => other,
    }
}

fn internal(what: &str) -> BackendError {
    BackendError::Wgpu { context: "creating the compute pipelines", message: what.into() }
}
