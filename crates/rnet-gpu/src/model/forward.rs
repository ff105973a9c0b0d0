//! The forward pass of the whole V5 network over a batch of windows on a [`Backend`], keeping every
//! activation the backward pass needs in a device [`Workspace`]. The operation order is
//! `rnet_training::model::forward`'s: per layer RMSNorm → merged causal conv → minGRU (`[wz|wh]`
//! products, log-domain scan) → `+ wo·h`; RMSNorm → slot attention (`wq`, scores against `keys`
//! scaled by `1/√d`, softmax, mix of `values`) → `+ wm·mem`; RMSNorm → SwiGLU → `+ w_down·p`; then
//! the final RMSNorm, the head and the cross-entropy.

use rnet_model::{ModelConfig, VOCAB};
use rnet_training::scan::SCAN_CHUNK;

use super::EngineError;
use super::params::{DeviceTensors, TensorIdx};
use super::products::{xw, xwt, xwt_cols};
use crate::{Backend, MatmulSpec};

/// Activations of one layer kept for the backward pass (`n = windows × t_len` rows).
pub(crate) struct LayerActs<B: Backend> {
    /// Layer input `[n, d]`.
    pub(crate) x_in: B::Buffer,
    pub(crate) r1: B::Buffer,
    pub(crate) u: B::Buffer,
    /// Merged conv kernel `[kmax, d]`.
    pub(crate) weff: B::Buffer,
    pub(crate) c: B::Buffer,
    /// `[n, 2d]`: rows `[wz·c | wh·c]`.
    pub(crate) zh: B::Buffer,
    pub(crate) h: B::Buffer,
    pub(crate) x1: B::Buffer,
    pub(crate) r2: B::Buffer,
    pub(crate) v: B::Buffer,
    pub(crate) q: B::Buffer,
    /// `[n, S]` slot weights.
    pub(crate) alpha: B::Buffer,
    pub(crate) mem: B::Buffer,
    pub(crate) x2: B::Buffer,
    pub(crate) r3: B::Buffer,
    pub(crate) wn: B::Buffer,
    /// `[n, 2F]`: rows `[w_gate·wn | w_up·wn]`.
    pub(crate) gu: B::Buffer,
    /// `[n, F]`.
    pub(crate) p: B::Buffer,
}

/// Device buffers for one batch shape: forward activations and backward scratch. Allocated once
/// per `(windows, t_len)` and reused across steps.
pub struct Workspace<B: Backend> {
    pub(crate) windows: usize,
    pub(crate) t_len: usize,
    pub(crate) layers: Vec<LayerActs<B>>,
    pub(crate) x_last: B::Buffer,
    pub(crate) rf: B::Buffer,
    pub(crate) xf: B::Buffer,
    /// Logits, replaced by the loss gradient after a forward pass with a gradient scale.
    pub(crate) logits: B::Buffer,
    pub(crate) losses: B::Buffer,
    pub(crate) g_res: B::Buffer,
    pub(crate) g_tmp: B::Buffer,
    pub(crate) g_tmp2: B::Buffer,
    pub(crate) dzh: B::Buffer,
    pub(crate) dgu: B::Buffer,
    pub(crate) dp: B::Buffer,
    pub(crate) dalpha: B::Buffer,
    pub(crate) dweff: B::Buffer,
    pub(crate) decay: B::Buffer,
    /// The inputs of the last forward pass (the embedding backward needs them).
    pub(crate) inputs: Option<B::Tokens>,
    /// Set by a forward pass that left the loss gradient in `logits`.
    pub(crate) ready_for_backward: bool,
}

impl<B: Backend> std::fmt::Debug for Workspace<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("windows", &self.windows)
            .field("t_len", &self.t_len)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Workspace<B> {
    /// Allocates every buffer for `windows × t_len` rows of `config`.
    pub fn new(
        be: &B,
        config: &ModelConfig,
        windows: usize,
        t_len: usize,
    ) -> Result<Self, EngineError> {
        let (d, s, f) = (config.d_model, config.n_slots, config.d_ff);
        let kmax = config.max_kernel();
        let n = windows * t_len;
        let z = |len: usize| be.zeros(len);
        let layers = (0..config.n_layers)
            .map(|_| {
                Ok(LayerActs {
                    x_in: z(n * d)?,
                    r1: z(n)?,
                    u: z(n * d)?,
                    weff: z(kmax * d)?,
                    c: z(n * d)?,
                    zh: z(n * 2 * d)?,
                    h: z(n * d)?,
                    x1: z(n * d)?,
                    r2: z(n)?,
                    v: z(n * d)?,
                    q: z(n * d)?,
                    alpha: z(n * s)?,
                    mem: z(n * d)?,
                    x2: z(n * d)?,
                    r3: z(n)?,
                    wn: z(n * d)?,
                    gu: z(n * 2 * f)?,
                    p: z(n * f)?,
                })
            })
            .collect::<Result<Vec<_>, crate::BackendError>>()?;
        Ok(Self {
            windows,
            t_len,
            layers,
            x_last: z(n * d)?,
            rf: z(n)?,
            xf: z(n * d)?,
            logits: z(n * VOCAB)?,
            losses: z(n)?,
            g_res: z(n * d)?,
            g_tmp: z(n * d)?,
            g_tmp2: z(n * d)?,
            dzh: z(n * 2 * d)?,
            dgu: z(n * 2 * f)?,
            dp: z(n * f)?,
            dalpha: z(n * s)?,
            dweff: z(kmax * d)?,
            decay: z(n * d)?,
            inputs: None,
            ready_for_backward: false,
        })
    }
}

/// Sums the conv branches of a layer into the merged kernel `weff [kmax, d]` (branch `b` adds its
/// `K_b` rows to the first `K_b` rows), as `rnet_training::ops::conv_merge` does.
pub(crate) fn merge_conv<B: Backend>(
    be: &B,
    weff: &mut B::Buffer,
    params: &DeviceTensors<B>,
    branches: &[usize],
    kernel_sizes: &[usize],
    d: usize,
) -> Result<(), EngineError> {
    be.fill(weff, 0.0)?;
    for (&b, &k) in branches.iter().zip(kernel_sizes) {
        be.axpby(weff, 0, 1.0, params.get(b), 0, 1.0, k * d)?;
    }
    Ok(())
}

/// Runs the forward pass over `windows` windows of `t_len` rows (`inputs`, `targets`: one byte per
/// row, window-major) and returns the mean cross-entropy in nats per byte. With `keep_grad` the
/// loss gradient (of the mean) is left in the workspace so [`super::backward::backward`] can follow.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<B: Backend>(
    be: &B,
    config: &ModelConfig,
    idx: &TensorIdx,
    params: &DeviceTensors<B>,
    ws: &mut Workspace<B>,
    inputs: B::Tokens,
    targets: &B::Tokens,
    keep_grad: bool,
) -> Result<f64, EngineError> {
    let (d, s, f) = (config.d_model, config.n_slots, config.d_ff);
    let kmax = config.max_kernel();
    let (windows, t_len) = (ws.windows, ws.t_len);
    let n = windows * t_len;
    let slot_scale = 1.0 / (d as f32).sqrt();
    let prm = |i: usize| params.get(i);
    ws.ready_for_backward = false;

    be.embed_forward(&mut ws.layers[0].x_in, prm(idx.embed), &inputs, n, d)?;
    for (li, l) in idx.layers.iter().enumerate() {
        let (cur, next) = ws.layers.split_at_mut(li + 1);
        let a = &mut cur[li];
        // Conv block.
        be.rmsnorm_forward(&mut a.u, &mut a.r1, &a.x_in, prm(l.norm1), n, d)?;
        merge_conv(be, &mut a.weff, params, &l.conv, &config.kernel_sizes, d)?;
        be.conv_forward(&mut a.c, &a.u, &a.weff, windows, t_len, d, kmax)?;
        // minGRU: zh = [c·wzᵀ | c·whᵀ], log-domain scan, x1 = x_in + h·woᵀ.
        be.matmul(&xwt_cols(n, d, d, 2 * d, 0), &a.c, prm(l.wz), &mut a.zh)?;
        be.matmul(&xwt_cols(n, d, d, 2 * d, d), &a.c, prm(l.wh), &mut a.zh)?;
        be.scan_forward(&mut a.h, &mut ws.decay, &a.zh, windows, t_len, d, SCAN_CHUNK)?;
        be.axpby(&mut a.x1, 0, 1.0, &a.x_in, 0, 0.0, n * d)?;
        be.matmul(&xwt(n, d, d, 1.0, 1.0), &a.h, prm(l.wo), &mut a.x1)?;
        // Slot memory.
        be.rmsnorm_forward(&mut a.v, &mut a.r2, &a.x1, prm(l.norm2), n, d)?;
        be.matmul(&xwt(n, d, d, 1.0, 0.0), &a.v, prm(l.wq), &mut a.q)?;
        be.matmul(&xwt(n, d, s, slot_scale, 0.0), &a.q, prm(l.keys), &mut a.alpha)?;
        be.softmax_forward(&mut a.alpha, n, s)?;
        be.matmul(&xw(n, s, d, 0.0), &a.alpha, prm(l.values), &mut a.mem)?;
        be.axpby(&mut a.x2, 0, 1.0, &a.x1, 0, 0.0, n * d)?;
        be.matmul(&xwt(n, d, d, 1.0, 1.0), &a.mem, prm(l.wm), &mut a.x2)?;
        // SwiGLU.
        be.rmsnorm_forward(&mut a.wn, &mut a.r3, &a.x2, prm(l.norm3), n, d)?;
        be.matmul(&xwt_cols(n, d, f, 2 * f, 0), &a.wn, prm(l.w_gate), &mut a.gu)?;
        be.matmul(&xwt_cols(n, d, f, 2 * f, f), &a.wn, prm(l.w_up), &mut a.gu)?;
        be.swiglu_forward(&mut a.p, &a.gu, n, f)?;
        let out = if li + 1 < config.n_layers { &mut next[0].x_in } else { &mut ws.x_last };
        be.axpby(out, 0, 1.0, &a.x2, 0, 0.0, n * d)?;
        be.matmul(&xwt(n, f, d, 1.0, 1.0), &a.p, prm(l.w_down), out)?;
    }
    be.rmsnorm_forward(&mut ws.xf, &mut ws.rf, &ws.x_last, prm(idx.norm_f), n, d)?;
    let head: MatmulSpec = xwt(n, d, VOCAB, 1.0, 0.0);
    be.matmul(&head, &ws.xf, prm(idx.head), &mut ws.logits)?;
    let scale = if keep_grad { 1.0 / n as f32 } else { 0.0 };
    be.cross_entropy(&mut ws.logits, &mut ws.losses, targets, n, scale)?;
    let losses = be.download(&ws.losses)?;
    let total: f64 = losses[..n].iter().map(|&l| l as f64).sum();
    ws.inputs = Some(inputs);
    ws.ready_for_backward = keep_grad;
    Ok(total / n as f64)
}
