//! The whole V5 network over a batch of windows: forward pass that keeps every activation the
//! backward pass needs, and the exact backward pass into a flat gradient buffer that shares the
//! parameters' [`Layout`].
//!
//! Every projection is one matrix product over all `windows × t_len` rows of the batch. The adjacent
//! `gru.wz`/`gru.wh` and `ffn.w_gate`/`ffn.w_up` tensors are applied as one `[2d, d]` and one
//! `[2F, d]` product. The conv branches are merged into one kernel (the conv is linear in its
//! weights). Element-wise parts run in parallel over rows or windows.

use rnet_model::{Layout, ModelConfig, VOCAB};

use crate::linalg::{matmul_dytx, matmul_xw, matmul_xwt};
use crate::ops::{
    conv_backward, conv_forward, conv_merge, cross_entropy, embed_backward, embed_forward,
    rmsnorm_backward, rmsnorm_forward, softmax_rows, softmax_rows_backward, swiglu_backward,
    swiglu_forward,
};
use crate::real::Real;
use crate::scan::{SCAN_CHUNK, scan_backward, scan_parallel, scan_sequential};

/// Which form of the minGRU recurrence the forward pass uses (the results agree; see
/// [`crate::scan`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScanMode {
    /// The sequential recurrence (fastest on a CPU).
    #[default]
    Sequential,
    /// The chunked log-domain parallel (Heinsen) scan.
    Parallel,
}

/// Activations of one layer kept for the backward pass (`n = windows × t_len` rows).
#[derive(Clone, Debug, Default)]
struct LayerActs<R> {
    /// Layer input `[n, d]`.
    x_in: Vec<R>,
    r1: Vec<R>,
    u: Vec<R>,
    weff: Vec<R>,
    c: Vec<R>,
    /// `[n, 2d]`: rows `[Wz c | Wh c]`.
    zh: Vec<R>,
    h: Vec<R>,
    x1: Vec<R>,
    r2: Vec<R>,
    v: Vec<R>,
    q: Vec<R>,
    /// `[n, S]` slot weights.
    alpha: Vec<R>,
    mem: Vec<R>,
    x2: Vec<R>,
    r3: Vec<R>,
    wn: Vec<R>,
    /// `[n, 2F]`: rows `[W_gate w | W_up w]`.
    gu: Vec<R>,
    /// `[n, F]`.
    p: Vec<R>,
}

/// Reusable buffers for one batch shape: the forward activations and the backward scratch. Create
/// once and reuse across steps so the hot loop does not allocate.
#[derive(Clone, Debug, Default)]
pub struct Workspace<R> {
    config: Option<ModelConfig>,
    windows: usize,
    t_len: usize,
    inputs: Vec<u8>,
    targets: Vec<u8>,
    layers: Vec<LayerActs<R>>,
    x_last: Vec<R>,
    rf: Vec<R>,
    xf: Vec<R>,
    logits: Vec<R>,
    g_res: Vec<R>,
    g_tmp: Vec<R>,
    g_tmp2: Vec<R>,
    dzh: Vec<R>,
    dgu: Vec<R>,
    dp: Vec<R>,
    dalpha: Vec<R>,
    dweff: Vec<R>,
    decay: Vec<R>,
    /// Set by a forward pass that computed the loss gradient into `logits`.
    ready_for_backward: bool,
}

impl<R: Real> Workspace<R> {
    /// An empty workspace; buffers are sized on first use.
    pub fn new() -> Self {
        Self {
            config: None,
            windows: 0,
            t_len: 0,
            inputs: Vec::new(),
            targets: Vec::new(),
            layers: Vec::new(),
            x_last: Vec::new(),
            rf: Vec::new(),
            xf: Vec::new(),
            logits: Vec::new(),
            g_res: Vec::new(),
            g_tmp: Vec::new(),
            g_tmp2: Vec::new(),
            dzh: Vec::new(),
            dgu: Vec::new(),
            dp: Vec::new(),
            dalpha: Vec::new(),
            dweff: Vec::new(),
            decay: Vec::new(),
            ready_for_backward: false,
        }
    }

    /// Bytes of activation and scratch memory held.
    pub fn memory_bytes(&self) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|l| {
                [
                    &l.x_in, &l.r1, &l.u, &l.weff, &l.c, &l.zh, &l.h, &l.x1, &l.r2, &l.v, &l.q,
                    &l.alpha, &l.mem, &l.x2, &l.r3, &l.wn, &l.gu, &l.p,
                ]
                .iter()
                .map(|b| b.len())
                .sum::<usize>()
            })
            .sum();
        let rest = [
            &self.x_last,
            &self.rf,
            &self.xf,
            &self.logits,
            &self.g_res,
            &self.g_tmp,
            &self.g_tmp2,
            &self.dzh,
            &self.dgu,
            &self.dp,
            &self.dalpha,
            &self.dweff,
            &self.decay,
        ]
        .iter()
        .map(|b| b.len())
        .sum::<usize>();
        (per_layer + rest) * std::mem::size_of::<R>()
    }

    /// Sizes every buffer for `windows × t_len` rows of `config`. Buffers keep their capacity, so
    /// alternating between batch shapes (training batches, a shorter last held-out batch) does not
    /// reallocate; every buffer is fully overwritten before it is read, so nothing is cleared.
    fn ensure(&mut self, config: &ModelConfig, windows: usize, t_len: usize) {
        if self.config.as_ref() == Some(config) && self.windows == windows && self.t_len == t_len {
            return;
        }
        if self.config.as_ref() != Some(config) {
            self.layers.clear();
        }
        let (d, s, f) = (config.d_model, config.n_slots, config.d_ff);
        let kmax = config.max_kernel();
        let n = windows * t_len;
        fn fit<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
            if v.len() > len {
                v.truncate(len);
            } else {
                v.resize(len, T::default());
            }
        }
        self.layers.resize_with(config.n_layers, LayerActs::default);
        for a in &mut self.layers {
            for (buf, len) in [
                (&mut a.x_in, n * d),
                (&mut a.r1, n),
                (&mut a.u, n * d),
                (&mut a.weff, kmax * d),
                (&mut a.c, n * d),
                (&mut a.zh, n * 2 * d),
                (&mut a.h, n * d),
                (&mut a.x1, n * d),
                (&mut a.r2, n),
                (&mut a.v, n * d),
                (&mut a.q, n * d),
                (&mut a.alpha, n * s),
                (&mut a.mem, n * d),
                (&mut a.x2, n * d),
                (&mut a.r3, n),
                (&mut a.wn, n * d),
                (&mut a.gu, n * 2 * f),
                (&mut a.p, n * f),
            ] {
                fit(buf, len);
            }
        }
        fit(&mut self.inputs, n);
        fit(&mut self.targets, n);
        for (buf, len) in [
            (&mut self.x_last, n * d),
            (&mut self.rf, n),
            (&mut self.xf, n * d),
            (&mut self.logits, n * VOCAB),
            (&mut self.g_res, n * d),
            (&mut self.g_tmp, n * d),
            (&mut self.g_tmp2, n * d),
            (&mut self.dzh, n * 2 * d),
            (&mut self.dgu, n * 2 * f),
            (&mut self.dp, n * f),
            (&mut self.dalpha, n * s),
            (&mut self.dweff, kmax * d),
            (&mut self.decay, n * d),
        ] {
            fit(buf, len);
        }
        self.config = Some(config.clone());
        self.windows = windows;
        self.t_len = t_len;
        self.ready_for_backward = false;
    }
}

/// Multiply–accumulate counts of one forward pass, per predicted byte.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlopCount {
    /// Multiply–adds of the forward pass per byte (matrix products, slot attention, the merged conv
    /// kernel, the head). Element-wise work is not counted.
    pub forward_macs_per_byte: f64,
}

impl FlopCount {
    /// Model FLOPs of one forward pass per byte (`2 ×` multiply–adds).
    pub fn forward_flops_per_byte(&self) -> f64 {
        2.0 * self.forward_macs_per_byte
    }

    /// Model FLOPs of one training step per byte: forward plus backward (`≈ 2×` forward for the
    /// input and the weight gradients), i.e. `6 ×` multiply–adds.
    pub fn train_flops_per_byte(&self) -> f64 {
        6.0 * self.forward_macs_per_byte
    }
}

/// Counts the model FLOPs of `config` per byte.
pub fn flop_count(config: &ModelConfig) -> FlopCount {
    let (d, s, f) = (config.d_model as f64, config.n_slots as f64, config.d_ff as f64);
    let conv = config.max_kernel() as f64 * d;
    let gru = 2.0 * d * d + d * d;
    let slot = d * d + 2.0 * s * d + d * d;
    let ffn = 2.0 * f * d + f * d;
    let per_layer = conv + gru + slot + ffn;
    FlopCount { forward_macs_per_byte: config.n_layers as f64 * per_layer + VOCAB as f64 * d }
}

fn fused<'a, R>(p: &'a [R], a: &std::ops::Range<usize>, b: &std::ops::Range<usize>) -> &'a [R] {
    assert_eq!(a.end, b.start, "fused tensors must be adjacent in the layout");
    &p[a.start..b.end]
}

fn fused_mut<'a, R>(
    p: &'a mut [R],
    a: &std::ops::Range<usize>,
    b: &std::ops::Range<usize>,
) -> &'a mut [R] {
    assert_eq!(a.end, b.start, "fused tensors must be adjacent in the layout");
    &mut p[a.start..b.end]
}

/// Runs the forward pass over a batch of `inputs.len() / t_len` windows (inputs and next-byte
/// targets, both `windows × t_len` bytes, window-major) and returns the mean cross-entropy in nats
/// per byte. With `keep_grad` the loss gradient is prepared so [`backward`] can follow.
///
/// Panics if the buffers do not match `config`/`layout` (the [`crate::Trainer`] checks them).
#[allow(clippy::too_many_arguments)]
pub fn forward<R: Real>(
    config: &ModelConfig,
    layout: &Layout,
    params: &[R],
    inputs: &[u8],
    targets: &[u8],
    t_len: usize,
    ws: &mut Workspace<R>,
    scan: ScanMode,
    keep_grad: bool,
) -> f64 {
    assert_eq!(params.len(), layout.total, "parameter buffer does not match the layout");
    assert!(t_len > 0 && inputs.len() % t_len == 0, "inputs must be whole windows");
    assert_eq!(inputs.len(), targets.len(), "one target per input");
    let windows = inputs.len() / t_len;
    ws.ensure(config, windows, t_len);
    ws.inputs.copy_from_slice(inputs);
    ws.targets.copy_from_slice(targets);
    let (d, s, f) = (config.d_model, config.n_slots, config.d_ff);
    let n = windows * t_len;
    let slot_scale = R::ONE / R::from_f64(d as f64).sqrt();

    embed_forward(&mut ws.layers[0].x_in, &params[layout.embed.clone()], inputs, d);
    for li in 0..config.n_layers {
        let lay = &layout.layers[li];
        let (cur, next) = ws.layers.split_at_mut(li + 1);
        let a = &mut cur[li];
        // Conv block.
        rmsnorm_forward(&mut a.u, &mut a.r1, &a.x_in, &params[lay.norm1.clone()], d);
        let branches: Vec<&[R]> = lay.conv.iter().map(|r| &params[r.clone()]).collect();
        conv_merge(&mut a.weff, &branches, d);
        conv_forward(&mut a.c, &a.u, &a.weff, t_len, d);
        // minGRU.
        matmul_xwt(&mut a.zh, &a.c, fused(params, &lay.wz, &lay.wh), n, d, 2 * d, false, R::ONE);
        match scan {
            ScanMode::Sequential => scan_sequential(&mut a.h, &a.zh, t_len, d),
            ScanMode::Parallel => {
                scan_parallel(&mut a.h, &mut ws.decay, &a.zh, t_len, d, SCAN_CHUNK)
            }
        }
        a.x1.copy_from_slice(&a.x_in);
        matmul_xwt(&mut a.x1, &a.h, &params[lay.wo.clone()], n, d, d, true, R::ONE);
        // Slot memory.
        rmsnorm_forward(&mut a.v, &mut a.r2, &a.x1, &params[lay.norm2.clone()], d);
        matmul_xwt(&mut a.q, &a.v, &params[lay.wq.clone()], n, d, d, false, R::ONE);
        matmul_xwt(&mut a.alpha, &a.q, &params[lay.keys.clone()], n, d, s, false, slot_scale);
        softmax_rows(&mut a.alpha, s);
        matmul_xw(&mut a.mem, &a.alpha, &params[lay.values.clone()], n, s, d, false, R::ONE);
        a.x2.copy_from_slice(&a.x1);
        matmul_xwt(&mut a.x2, &a.mem, &params[lay.wm.clone()], n, d, d, true, R::ONE);
        // SwiGLU.
        rmsnorm_forward(&mut a.wn, &mut a.r3, &a.x2, &params[lay.norm3.clone()], d);
        let wgu = fused(params, &lay.w_gate, &lay.w_up);
        matmul_xwt(&mut a.gu, &a.wn, wgu, n, d, 2 * f, false, R::ONE);
        swiglu_forward(&mut a.p, &a.gu, f);
        let out = if li + 1 < config.n_layers { &mut next[0].x_in } else { &mut ws.x_last };
        out.copy_from_slice(&a.x2);
        matmul_xwt(out, &a.p, &params[lay.w_down.clone()], n, f, d, true, R::ONE);
    }
    rmsnorm_forward(&mut ws.xf, &mut ws.rf, &ws.x_last, &params[layout.norm_f.clone()], d);
    matmul_xwt(&mut ws.logits, &ws.xf, &params[layout.head.clone()], n, d, VOCAB, false, R::ONE);
    let scale = if keep_grad { R::ONE / R::from_f64(n as f64) } else { R::ZERO };
    let total = cross_entropy(&mut ws.logits, targets, VOCAB, scale);
    ws.ready_for_backward = keep_grad;
    total / n as f64
}

/// Backward pass of the last [`forward`] (which must have run with `keep_grad`): adds `∂loss/∂θ`
/// for the mean loss into `grads` (same layout as the parameters).
pub fn backward<R: Real>(
    config: &ModelConfig,
    layout: &Layout,
    params: &[R],
    grads: &mut [R],
    ws: &mut Workspace<R>,
) {
    assert!(ws.ready_for_backward, "backward needs a forward pass with keep_grad");
    assert_eq!(grads.len(), layout.total, "gradient buffer does not match the layout");
    ws.ready_for_backward = false;
    let (d, s, f) = (config.d_model, config.n_slots, config.d_ff);
    let t_len = ws.t_len;
    let n = ws.windows * t_len;
    let slot_scale = R::ONE / R::from_f64(d as f64).sqrt();
    let Workspace {
        inputs,
        layers,
        x_last,
        rf,
        xf,
        logits,
        g_res,
        g_tmp,
        g_tmp2,
        dzh,
        dgu,
        dp,
        dalpha,
        dweff,
        ..
    } = ws;

    // Head and final norm.
    matmul_dytx(&mut grads[layout.head.clone()], logits, xf, n, VOCAB, d, true, R::ONE);
    matmul_xw(g_tmp, logits, &params[layout.head.clone()], n, VOCAB, d, false, R::ONE);
    g_res.fill(R::ZERO);
    let norm_f = &params[layout.norm_f.clone()];
    rmsnorm_backward(g_res, &mut grads[layout.norm_f.clone()], g_tmp, x_last, rf, norm_f, d);

    for li in (0..config.n_layers).rev() {
        let lay = &layout.layers[li];
        let a = &layers[li];
        // SwiGLU: g_res = ∂L/∂x_out.
        matmul_dytx(&mut grads[lay.w_down.clone()], g_res, &a.p, n, d, f, true, R::ONE);
        matmul_xw(dp, g_res, &params[lay.w_down.clone()], n, d, f, false, R::ONE);
        swiglu_backward(dgu, dp, &a.gu, f);
        let gwgu = fused_mut(grads, &lay.w_gate, &lay.w_up);
        matmul_dytx(gwgu, dgu, &a.wn, n, 2 * f, d, true, R::ONE);
        let wgu = fused(params, &lay.w_gate, &lay.w_up);
        matmul_xw(g_tmp, dgu, wgu, n, 2 * f, d, false, R::ONE);
        let norm3 = &params[lay.norm3.clone()];
        rmsnorm_backward(g_res, &mut grads[lay.norm3.clone()], g_tmp, &a.x2, &a.r3, norm3, d);
        // Slot memory: g_res = ∂L/∂x2.
        matmul_dytx(&mut grads[lay.wm.clone()], g_res, &a.mem, n, d, d, true, R::ONE);
        matmul_xw(g_tmp, g_res, &params[lay.wm.clone()], n, d, d, false, R::ONE);
        let values = &params[lay.values.clone()];
        matmul_xwt(dalpha, g_tmp, values, n, d, s, false, R::ONE);
        matmul_dytx(&mut grads[lay.values.clone()], &a.alpha, g_tmp, n, s, d, true, R::ONE);
        softmax_rows_backward(dalpha, &a.alpha, s, slot_scale);
        matmul_xw(g_tmp, dalpha, &params[lay.keys.clone()], n, s, d, false, R::ONE);
        matmul_dytx(&mut grads[lay.keys.clone()], dalpha, &a.q, n, s, d, true, R::ONE);
        matmul_dytx(&mut grads[lay.wq.clone()], g_tmp, &a.v, n, d, d, true, R::ONE);
        matmul_xw(g_tmp2, g_tmp, &params[lay.wq.clone()], n, d, d, false, R::ONE);
        let norm2 = &params[lay.norm2.clone()];
        rmsnorm_backward(g_res, &mut grads[lay.norm2.clone()], g_tmp2, &a.x1, &a.r2, norm2, d);
        // minGRU: g_res = ∂L/∂x1.
        matmul_dytx(&mut grads[lay.wo.clone()], g_res, &a.h, n, d, d, true, R::ONE);
        matmul_xw(g_tmp, g_res, &params[lay.wo.clone()], n, d, d, false, R::ONE);
        scan_backward(dzh, g_tmp, &a.zh, &a.h, t_len, d);
        let gwzh = fused_mut(grads, &lay.wz, &lay.wh);
        matmul_dytx(gwzh, dzh, &a.c, n, 2 * d, d, true, R::ONE);
        matmul_xw(g_tmp, dzh, fused(params, &lay.wz, &lay.wh), n, 2 * d, d, false, R::ONE);
        // Conv.
        dweff.fill(R::ZERO);
        conv_backward(g_tmp2, dweff, g_tmp, &a.u, &a.weff, t_len, d);
        for r in &lay.conv {
            for (g, &v) in grads[r.clone()].iter_mut().zip(dweff.iter()) {
                *g += v;
            }
        }
        let norm1 = &params[lay.norm1.clone()];
        rmsnorm_backward(g_res, &mut grads[lay.norm1.clone()], g_tmp2, &a.x_in, &a.r1, norm1, d);
    }
    embed_backward(&mut grads[layout.embed.clone()], g_res, inputs, d);
}

/// Mean loss (nats per byte) of `data` with the evaluator's windowing — non-overlapping windows of
/// `t_len` inputs at stride `t_len`, every byte but the first predicted once, the last window possibly
/// shorter — computed by the fast engine, `batch_windows` windows at a time. A fast estimate of the
/// canonical `val_loss` (agrees within rounding, not bit for bit). `None` for fewer than 2 bytes.
#[allow(clippy::too_many_arguments)]
pub fn sequence_loss<R: Real>(
    config: &ModelConfig,
    layout: &Layout,
    params: &[R],
    data: &[u8],
    t_len: usize,
    batch_windows: usize,
    ws: &mut Workspace<R>,
    scan: ScanMode,
) -> Option<f64> {
    if data.len() < 2 || t_len == 0 {
        return None;
    }
    let p = data.len() - 1;
    let full = p / t_len;
    let mut total = 0.0f64;
    let per = batch_windows.max(1);
    let mut w = 0;
    while w < full {
        let k = per.min(full - w);
        let span = w * t_len..(w + k) * t_len;
        let inputs = &data[span.clone()];
        let targets = &data[span.start + 1..span.end + 1];
        total += forward(config, layout, params, inputs, targets, t_len, ws, scan, false)
            * (k * t_len) as f64;
        w += k;
    }
    let rest = p - full * t_len;
    if rest > 0 {
        let start = full * t_len;
        let inputs = &data[start..start + rest];
        let targets = &data[start + 1..start + rest + 1];
        total +=
            forward(config, layout, params, inputs, targets, rest, ws, scan, false) * rest as f64;
    }
    Some(total / p as f64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A tiny config that still has every kind of tensor (two layers, three conv branches).
    pub(crate) fn tiny_config() -> ModelConfig {
        ModelConfig {
            d_model: 6,
            n_layers: 2,
            n_slots: 3,
            d_ff: 12,
            kernel_sizes: vec![1, 3, 4],
            window: 9,
        }
    }

    /// Random parameters with a realistic spread (gains near 1, small matrices).
    pub(crate) fn random_params(layout: &Layout, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let mut p = vec![0.0; layout.total];
        for t in &layout.tensors {
            let is_norm = t.shape.len() == 1;
            let fan_in = *t.shape.last().unwrap_or(&1) as f64;
            for v in &mut p[t.range()] {
                *v = if is_norm { 1.0 + 0.2 * rng.normal() } else { rng.normal() / fan_in.sqrt() };
            }
        }
        p
    }

    fn tokens(rng: &mut Rng, n: usize) -> Vec<u8> {
        (0..n).map(|_| rng.below(256) as u8).collect()
    }

    #[test]
    fn whole_model_gradient_matches_finite_differences_on_every_tensor() {
        let cfg = tiny_config();
        let layout = Layout::new(&cfg);
        let params = random_params(&layout, 31);
        let mut rng = Rng::new(32);
        let (windows, t_len) = (3, cfg.window);
        // Inputs drawn from a small alphabet so several embedding rows get gradient.
        let inputs: Vec<u8> = (0..windows * t_len).map(|_| b'a' + rng.below(5) as u8).collect();
        let targets = tokens(&mut rng, windows * t_len);
        for scan in [ScanMode::Sequential, ScanMode::Parallel] {
            let mut ws = Workspace::<f64>::new();
            forward(&cfg, &layout, &params, &inputs, &targets, t_len, &mut ws, scan, true);
            let mut grads = vec![0.0; layout.total];
            backward(&cfg, &layout, &params, &mut grads, &mut ws);
            let mut p = params.clone();
            let mut loss = |p: &[f64]| {
                forward(&cfg, &layout, p, &inputs, &targets, t_len, &mut ws, scan, false)
            };
            let eps = 1e-5;
            let mut checked = 0;
            for t in &layout.tensors {
                // Up to 6 entries per tensor, spread over it; for the embedding, rows that occur.
                let idx: Vec<usize> = if t.name == "embed" {
                    (0..6).map(|i| (b'a' as usize + i % 5) * cfg.d_model + i).collect()
                } else {
                    let (len, k) = (t.len(), 6.min(t.len()));
                    (0..k).map(|i| i * (len - 1) / (k - 1).max(1)).collect()
                };
                for i in idx {
                    let k = t.offset + i;
                    let orig = p[k];
                    p[k] = orig + eps;
                    let lp = loss(&p);
                    p[k] = orig - eps;
                    let lm = loss(&p);
                    p[k] = orig;
                    let num = (lp - lm) / (2.0 * eps);
                    let err = (num - grads[k]).abs() / num.abs().max(grads[k].abs()).max(1e-4);
                    assert!(
                        err < 1e-4,
                        "{scan:?} {}[{i}]: analytic {} numeric {num} rel err {err:e}",
                        t.name,
                        grads[k]
                    );
                    checked += 1;
                }
            }
            assert!(checked >= 6 * layout.tensors.len() - 6);
        }
    }

    #[test]
    fn f32_engine_agrees_with_f64_and_scan_modes_agree() {
        let cfg = tiny_config();
        let layout = Layout::new(&cfg);
        let p64 = random_params(&layout, 41);
        let p32: Vec<f32> = p64.iter().map(|&v| v as f32).collect();
        let mut rng = Rng::new(42);
        let t_len = 9;
        let inputs = tokens(&mut rng, 4 * t_len);
        let targets = tokens(&mut rng, 4 * t_len);
        let mut ws64 = Workspace::new();
        let l64 = forward(
            &cfg,
            &layout,
            &p64,
            &inputs,
            &targets,
            t_len,
            &mut ws64,
            ScanMode::Sequential,
            false,
        );
        let mut ws32 = Workspace::new();
        for scan in [ScanMode::Sequential, ScanMode::Parallel] {
            let l32 =
                forward(&cfg, &layout, &p32, &inputs, &targets, t_len, &mut ws32, scan, false);
            assert!((l32 - l64).abs() / l64 < 1e-5, "{scan:?}: {l32} vs {l64}");
        }
    }

    #[test]
    fn workspace_reuse_across_batch_shapes_changes_nothing() {
        let cfg = tiny_config();
        let layout = Layout::new(&cfg);
        let p: Vec<f32> = random_params(&layout, 51).iter().map(|&v| v as f32).collect();
        let mut rng = Rng::new(52);
        let big = (tokens(&mut rng, 5 * 9), tokens(&mut rng, 5 * 9));
        let small = (tokens(&mut rng, 2 * 7), tokens(&mut rng, 2 * 7));
        let run = |ws: &mut Workspace<f32>, b: &(Vec<u8>, Vec<u8>), t: usize| {
            let l = forward(&cfg, &layout, &p, &b.0, &b.1, t, ws, ScanMode::Sequential, true);
            let mut g = vec![0.0f32; layout.total];
            backward(&cfg, &layout, &p, &mut g, ws);
            (l, g)
        };
        let fresh_small = run(&mut Workspace::new(), &small, 7);
        let fresh_big = run(&mut Workspace::new(), &big, 9);
        let mut ws = Workspace::new();
        run(&mut ws, &big, 9);
        assert_eq!(run(&mut ws, &small, 7), fresh_small);
        assert_eq!(run(&mut ws, &big, 9), fresh_big);
    }

    #[test]
    fn flop_count_of_mainnet_is_about_ten_million_macs_per_byte() {
        let c = ModelConfig::genesis(rnet_model::ModelNetwork::Mainnet);
        let m = flop_count(&c).forward_macs_per_byte;
        assert!((9.5e6..11e6).contains(&m), "{m}");
    }
}
