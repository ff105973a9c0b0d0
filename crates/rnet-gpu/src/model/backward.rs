//! The exact backward pass of [`super::forward::forward`] on a [`Backend`]: adds `∂loss/∂θ` of the
//! mean loss into one gradient buffer per tensor, in `rnet_training::model::backward`'s order. The
//! conv gradient is the merged kernel's gradient restricted to each branch's taps; the fused
//! `[wz|wh]` and `[gate|up]` products are split into their two halves.

use rnet_model::{ModelConfig, VOCAB};

use super::EngineError;
use super::forward::Workspace;
use super::params::{DeviceTensors, TensorIdx};
use super::products::{dytx, dytx_cols, xw, xw_cols, xwt};
use crate::Backend;

/// Backward pass of the last forward pass, which must have run with `keep_grad`; accumulates into
/// `grads` (clear them first for a fresh gradient). Returns [`EngineError::EmptyBatch`] when no
/// such forward pass is pending.
pub(crate) fn backward<B: Backend>(
    be: &B,
    config: &ModelConfig,
    idx: &TensorIdx,
    params: &DeviceTensors<B>,
    grads: &mut DeviceTensors<B>,
    ws: &mut Workspace<B>,
) -> Result<(), EngineError> {
    if !ws.ready_for_backward {
        return Err(EngineError::EmptyBatch);
    }
    ws.ready_for_backward = false;
    let (d, s, f) = (config.d_model, config.n_slots, config.d_ff);
    let kmax = config.max_kernel();
    let (windows, t_len) = (ws.windows, ws.t_len);
    let n = windows * t_len;
    let slot_scale = 1.0 / (d as f32).sqrt();
    let prm = |i: usize| params.get(i);
    let Workspace {
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
        inputs,
        ..
    } = ws;
    let inputs = inputs.as_ref().ok_or(EngineError::EmptyBatch)?;

    // Head and final norm.
    be.matmul(&dytx(n, VOCAB, d), logits, xf, grads.get_mut(idx.head))?;
    be.matmul(&xw(n, VOCAB, d, 0.0), logits, prm(idx.head), g_tmp)?;
    be.fill(g_res, 0.0)?;
    be.rmsnorm_backward(
        g_res,
        grads.get_mut(idx.norm_f),
        g_tmp,
        x_last,
        rf,
        prm(idx.norm_f),
        n,
        d,
    )?;

    for (li, l) in idx.layers.iter().enumerate().rev() {
        let a = &layers[li];
        // SwiGLU: g_res = ∂L/∂x_out.
        be.matmul(&dytx(n, d, f), g_res, &a.p, grads.get_mut(l.w_down))?;
        be.matmul(&xw(n, d, f, 0.0), g_res, prm(l.w_down), dp)?;
        be.swiglu_backward(dgu, dp, &a.gu, n, f)?;
        be.matmul(&dytx_cols(n, f, d, 2 * f, 0), dgu, &a.wn, grads.get_mut(l.w_gate))?;
        be.matmul(&dytx_cols(n, f, d, 2 * f, f), dgu, &a.wn, grads.get_mut(l.w_up))?;
        be.matmul(&xw_cols(n, f, d, 2 * f, 0, 0.0), dgu, prm(l.w_gate), g_tmp)?;
        be.matmul(&xw_cols(n, f, d, 2 * f, f, 1.0), dgu, prm(l.w_up), g_tmp)?;
        be.rmsnorm_backward(
            g_res,
            grads.get_mut(l.norm3),
            g_tmp,
            &a.x2,
            &a.r3,
            prm(l.norm3),
            n,
            d,
        )?;
        // Slot memory: g_res = ∂L/∂x2.
        be.matmul(&dytx(n, d, d), g_res, &a.mem, grads.get_mut(l.wm))?;
        be.matmul(&xw(n, d, d, 0.0), g_res, prm(l.wm), g_tmp)?;
        be.matmul(&xwt(n, d, s, 1.0, 0.0), g_tmp, prm(l.values), dalpha)?;
        be.matmul(&dytx(n, s, d), &a.alpha, g_tmp, grads.get_mut(l.values))?;
        be.softmax_backward(dalpha, &a.alpha, n, s, slot_scale)?;
        be.matmul(&xw(n, s, d, 0.0), dalpha, prm(l.keys), g_tmp)?;
        be.matmul(&dytx(n, s, d), dalpha, &a.q, grads.get_mut(l.keys))?;
        be.matmul(&dytx(n, d, d), g_tmp, &a.v, grads.get_mut(l.wq))?;
        be.matmul(&xw(n, d, d, 0.0), g_tmp, prm(l.wq), g_tmp2)?;
        be.rmsnorm_backward(
            g_res,
            grads.get_mut(l.norm2),
            g_tmp2,
            &a.x1,
            &a.r2,
            prm(l.norm2),
            n,
            d,
        )?;
        // minGRU: g_res = ∂L/∂x1.
        be.matmul(&dytx(n, d, d), g_res, &a.h, grads.get_mut(l.wo))?;
        be.matmul(&xw(n, d, d, 0.0), g_res, prm(l.wo), g_tmp)?;
        be.scan_backward(dzh, g_tmp, &a.zh, &a.h, windows, t_len, d)?;
        be.matmul(&dytx_cols(n, d, d, 2 * d, 0), dzh, &a.c, grads.get_mut(l.wz))?;
        be.matmul(&dytx_cols(n, d, d, 2 * d, d), dzh, &a.c, grads.get_mut(l.wh))?;
        be.matmul(&xw_cols(n, d, d, 2 * d, 0, 0.0), dzh, prm(l.wz), g_tmp)?;
        be.matmul(&xw_cols(n, d, d, 2 * d, d, 1.0), dzh, prm(l.wh), g_tmp)?;
        // Conv: the merged kernel's gradient, scattered to the branches' taps.
        be.fill(dweff, 0.0)?;
        be.conv_backward(g_tmp2, dweff, g_tmp, &a.u, &a.weff, windows, t_len, d, kmax)?;
        for (&b, &k) in l.conv.iter().zip(&config.kernel_sizes) {
            be.axpby(grads.get_mut(b), 0, 1.0, dweff, 0, 1.0, k * d)?;
        }
        be.rmsnorm_backward(
            g_res,
            grads.get_mut(l.norm1),
            g_tmp2,
            &a.x_in,
            &a.r1,
            prm(l.norm1),
            n,
            d,
        )?;
    }
    be.embed_backward(grads.get_mut(idx.embed), g_res, inputs, n, d)?;
    Ok(())
}
