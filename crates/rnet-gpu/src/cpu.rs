//! The CPU backend: every operation delegates to `rnet_training`'s CPU engine (`ops`, `scan`,
//! `linalg`, `optimizer`), so it computes exactly what CPU training computes and serves as the
//! reference for the device backends.

use std::ops::Range;

use rnet_training::optimizer::AdamW;
use rnet_training::real::sigmoid;
use rnet_training::{linalg, ops, scan};

use crate::shapes::{self, Conv, Embed, Gated};
use crate::{
    AdamWStep, Backend, BackendError, MatmulSpec, RMS_EPS, VOCAB, check_adamw, check_axpby,
};

/// The CPU engine behind the [`Backend`] interface; buffers are host vectors.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    /// The CPU backend (always available).
    pub fn new() -> Self {
        Self
    }
}

impl Backend for CpuBackend {
    type Buffer = Vec<f32>;
    type Tokens = Vec<u8>;

    fn name(&self) -> String {
        "cpu (rnet-training engine)".into()
    }

    fn upload(&self, data: &[f32]) -> Result<Vec<f32>, BackendError> {
        Ok(data.to_vec())
    }

    fn zeros(&self, len: usize) -> Result<Vec<f32>, BackendError> {
        Ok(vec![0.0; len])
    }

    fn download(&self, buf: &Vec<f32>) -> Result<Vec<f32>, BackendError> {
        Ok(buf.clone())
    }

    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }

    fn upload_into(&self, buf: &mut Vec<f32>, data: &[f32]) -> Result<(), BackendError> {
        crate::check_upload_len(buf.len(), data.len())?;
        buf.copy_from_slice(data);
        Ok(())
    }

    fn upload_tokens(&self, tokens: &[u8]) -> Result<Vec<u8>, BackendError> {
        Ok(tokens.to_vec())
    }

    fn tokens_len(&self, tokens: &Vec<u8>) -> usize {
        tokens.len()
    }

    fn synchronize(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn matmul(
        &self,
        spec: &MatmulSpec,
        a: &Vec<f32>,
        b: &Vec<f32>,
        c: &mut Vec<f32>,
    ) -> Result<(), BackendError> {
        spec.validate(a.len(), b.len(), c.len())?;
        let s = spec;
        if s.batch == 0 || s.m == 0 || s.n == 0 {
            return Ok(());
        }
        let (a_rs, a_cs) = if s.trans_a { (1, s.lda) } else { (s.lda, 1) };
        let (b_rs, b_cs) = if s.trans_b { (1, s.ldb) } else { (s.ldb, 1) };
        for i in 0..s.batch {
            let c_off = s.offset_c + i * s.stride_c;
            let dst = &mut c[c_off..];
            if s.beta != 0.0 && s.beta != 1.0 {
                for r in 0..s.m {
                    for v in &mut dst[r * s.ldc..r * s.ldc + s.n] {
                        *v *= s.beta;
                    }
                }
            }
            // With k = 0 the operands are never read (and may be empty).
            let (lhs, rhs): (&[f32], &[f32]) = if s.k == 0 {
                (&[], &[])
            } else {
                (&a[s.offset_a + i * s.stride_a..], &b[s.offset_b + i * s.stride_b..])
            };
            linalg::gemm_strided(
                s.m,
                s.n,
                s.k,
                dst,
                s.ldc,
                1,
                s.beta != 0.0,
                lhs,
                a_rs,
                a_cs,
                rhs,
                b_rs,
                b_cs,
                s.alpha,
            );
        }
        Ok(())
    }

    fn rmsnorm_forward(
        &self,
        y: &mut Vec<f32>,
        rinv: &mut Vec<f32>,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let n = shapes::rmsnorm_forward([y.len(), rinv.len(), x.len(), gamma.len()], rows, d)?;
        debug_assert_eq!(RMS_EPS as f64, ops::RMS_EPS as f32 as f64);
        ops::rmsnorm_forward(&mut y[..n], &mut rinv[..rows], &x[..n], &gamma[..d], d);
        Ok(())
    }

    fn rmsnorm_backward(
        &self,
        dx: &mut Vec<f32>,
        dgamma: &mut Vec<f32>,
        dy: &Vec<f32>,
        x: &Vec<f32>,
        rinv: &Vec<f32>,
        gamma: &Vec<f32>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let n = shapes::rmsnorm_backward(
            [dx.len(), dgamma.len(), dy.len(), x.len(), rinv.len(), gamma.len()],
            rows,
            d,
        )?;
        ops::rmsnorm_backward(
            &mut dx[..n],
            &mut dgamma[..d],
            &dy[..n],
            &x[..n],
            &rinv[..rows],
            &gamma[..d],
            d,
        );
        Ok(())
    }

    fn swiglu_forward(
        &self,
        p: &mut Vec<f32>,
        gu: &Vec<f32>,
        rows: usize,
        f: usize,
    ) -> Result<(), BackendError> {
        let Gated { n, n2 } = shapes::swiglu_forward([p.len(), gu.len()], rows, f)?;
        ops::swiglu_forward(&mut p[..n], &gu[..n2], f);
        Ok(())
    }

    fn swiglu_backward(
        &self,
        dgu: &mut Vec<f32>,
        dp: &Vec<f32>,
        gu: &Vec<f32>,
        rows: usize,
        f: usize,
    ) -> Result<(), BackendError> {
        let Gated { n, n2 } = shapes::swiglu_backward([dgu.len(), dp.len(), gu.len()], rows, f)?;
        ops::swiglu_backward(&mut dgu[..n2], &dp[..n], &gu[..n2], f);
        Ok(())
    }

    fn cross_entropy(
        &self,
        logits: &mut Vec<f32>,
        losses: &mut Vec<f32>,
        targets: &Vec<u8>,
        rows: usize,
        scale: f32,
    ) -> Result<(), BackendError> {
        let n = shapes::cross_entropy([logits.len(), losses.len(), targets.len()], rows)?;
        for ((row, loss), t) in
            logits[..n].chunks_exact_mut(VOCAB).zip(&mut losses[..rows]).zip(&targets[..rows])
        {
            *loss = ops::cross_entropy(row, std::slice::from_ref(t), VOCAB, scale) as f32;
        }
        Ok(())
    }

    fn adamw_update(
        &self,
        params: &mut Vec<f32>,
        grads: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        step: &AdamWStep,
        segments: &[(Range<usize>, bool)],
    ) -> Result<(), BackendError> {
        check_adamw([params.len(), grads.len(), m.len(), v.len()], step, segments)?;
        let opt = AdamW {
            lr: step.lr,
            beta1: step.beta1,
            beta2: step.beta2,
            eps: step.eps,
            weight_decay: step.weight_decay,
        };
        // `update_segments` counts the update itself: hand it the number of updates before this one.
        let mut before = step.step - 1;
        opt.update_segments(params, grads, step.grad_scale, m, v, &mut before, segments);
        Ok(())
    }

    fn scan_forward(
        &self,
        h: &mut Vec<f32>,
        decay: &mut Vec<f32>,
        zh: &Vec<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
        chunk: usize,
    ) -> Result<(), BackendError> {
        let Gated { n, n2 } =
            shapes::scan_forward([h.len(), decay.len(), zh.len()], windows, t_len, d)?;
        scan::scan_parallel(&mut h[..n], &mut decay[..n], &zh[..n2], t_len, d, chunk);
        Ok(())
    }

    fn scan_backward(
        &self,
        dzh: &mut Vec<f32>,
        dh: &Vec<f32>,
        zh: &Vec<f32>,
        h: &Vec<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let Gated { n, n2 } =
            shapes::scan_backward([dzh.len(), dh.len(), zh.len(), h.len()], windows, t_len, d)?;
        scan::scan_backward(&mut dzh[..n2], &dh[..n], &zh[..n2], &h[..n], t_len, d);
        Ok(())
    }

    fn conv_forward(
        &self,
        c: &mut Vec<f32>,
        u: &Vec<f32>,
        weff: &Vec<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
        kmax: usize,
    ) -> Result<(), BackendError> {
        let Conv { n, kd } =
            shapes::conv_forward([c.len(), u.len(), weff.len()], windows, t_len, d, kmax)?;
        ops::conv_forward(&mut c[..n], &u[..n], &weff[..kd], t_len, d);
        Ok(())
    }

    fn conv_backward(
        &self,
        du: &mut Vec<f32>,
        dweff: &mut Vec<f32>,
        dc: &Vec<f32>,
        u: &Vec<f32>,
        weff: &Vec<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
        kmax: usize,
    ) -> Result<(), BackendError> {
        let Conv { n, kd } = shapes::conv_backward(
            [du.len(), dweff.len(), dc.len(), u.len(), weff.len()],
            windows,
            t_len,
            d,
            kmax,
        )?;
        ops::conv_backward(
            &mut du[..n],
            &mut dweff[..kd],
            &dc[..n],
            &u[..n],
            &weff[..kd],
            t_len,
            d,
        );
        Ok(())
    }

    fn fill(&self, y: &mut Vec<f32>, value: f32) -> Result<(), BackendError> {
        y.fill(value);
        Ok(())
    }

    fn axpby(
        &self,
        y: &mut Vec<f32>,
        y_off: usize,
        alpha: f32,
        x: &Vec<f32>,
        x_off: usize,
        beta: f32,
        n: usize,
    ) -> Result<(), BackendError> {
        check_axpby(y.len(), y_off, x.len(), x_off, n)?;
        let (ys, xs) = (&mut y[y_off..y_off + n], &x[x_off..x_off + n]);
        if beta == 0.0 {
            for (o, &v) in ys.iter_mut().zip(xs) {
                *o = alpha * v;
            }
        } else {
            for (o, &v) in ys.iter_mut().zip(xs) {
                *o = alpha * v + beta * *o;
            }
        }
        Ok(())
    }

    fn embed_forward(
        &self,
        x: &mut Vec<f32>,
        table: &Vec<f32>,
        tokens: &Vec<u8>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let Embed { n, nt } = shapes::embed_forward([x.len(), table.len(), tokens.len()], rows, d)?;
        ops::embed_forward(&mut x[..n], &table[..nt], &tokens[..rows], d);
        Ok(())
    }

    fn embed_backward(
        &self,
        dtable: &mut Vec<f32>,
        dx: &Vec<f32>,
        tokens: &Vec<u8>,
        rows: usize,
        d: usize,
    ) -> Result<(), BackendError> {
        let Embed { n, nt } =
            shapes::embed_backward([dtable.len(), dx.len(), tokens.len()], rows, d)?;
        ops::embed_backward(&mut dtable[..nt], &dx[..n], &tokens[..rows], d);
        Ok(())
    }

    fn softmax_forward(&self, x: &mut Vec<f32>, rows: usize, s: usize) -> Result<(), BackendError> {
        let n = shapes::softmax_forward(x.len(), rows, s)?;
        ops::softmax_rows(&mut x[..n], s);
        Ok(())
    }

    fn softmax_backward(
        &self,
        dalpha: &mut Vec<f32>,
        alpha: &Vec<f32>,
        rows: usize,
        s: usize,
        scale: f32,
    ) -> Result<(), BackendError> {
        let n = shapes::softmax_backward([dalpha.len(), alpha.len()], rows, s)?;
        ops::softmax_rows_backward(&mut dalpha[..n], &alpha[..n], s, scale);
        Ok(())
    }

    fn sum_squares(&self, acc: &mut Vec<f32>, x: &Vec<f32>) -> Result<(), BackendError> {
        shapes::sum_squares(acc.len())?;
        let s: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        acc[0] = (acc[0] as f64 + s) as f32;
        Ok(())
    }

    fn scan_step(&self, h: &mut Vec<f32>, zh: &Vec<f32>, d: usize) -> Result<(), BackendError> {
        let d2 = shapes::scan_step([h.len(), zh.len()], d)?;
        let (k, hh) = zh[..d2].split_at(d);
        for ((hv, &kv), &xv) in h[..d].iter_mut().zip(k).zip(hh) {
            let z = sigmoid(kv);
            *hv = (1.0 - z) * *hv + z * scan::g_act(xv);
        }
        Ok(())
    }
}
