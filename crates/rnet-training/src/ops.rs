//! Forward and backward of every element-wise and per-row operation of the V5 model. Matrix
//! products live in [`crate::linalg`], the minGRU recurrence in [`crate::scan`]; the model
//! ([`crate::model`]) chains them.
//!
//! Activations are row-major `[rows, width]` buffers where one row is one position of one window;
//! windows are contiguous blocks of `t_len` rows. Row-parallel operations split the rows into chunks
//! over the rayon pool; backward passes that reduce into a parameter gradient sum per-chunk partials.
//! All functions are generic over [`Real`] so the gradient checks run them in `f64`.

use rayon::prelude::*;

use crate::real::{Real, sigmoid};

/// RMSNorm epsilon: `x / sqrt(mean(x²) + EPS) · γ`.
pub const RMS_EPS: f64 = 1e-6;

/// Rows handled per rayon task in row-parallel loops.
const ROW_CHUNK: usize = 32;

/// Adds per-chunk partial sums into `out` in chunk order, so the result does not depend on how
/// rayon scheduled the chunks (training is reproducible for a given build and input).
fn add_partials<R: Real>(out: &mut [R], partials: Vec<Vec<R>>) {
    for p in partials {
        for (x, y) in out.iter_mut().zip(p) {
            *x += y;
        }
    }
}

/// Embedding lookup: row `i` of `x [rows, d]` becomes row `tokens[i]` of `embed [256, d]`.
pub fn embed_forward<R: Real>(x: &mut [R], embed: &[R], tokens: &[u8], d: usize) {
    x.par_chunks_mut(d).zip(tokens.par_iter()).for_each(|(row, &t)| {
        let t = t as usize;
        row.copy_from_slice(&embed[t * d..(t + 1) * d]);
    });
}

/// Embedding backward: `dembed[tokens[i]] += dx[i]`.
pub fn embed_backward<R: Real>(dembed: &mut [R], dx: &[R], tokens: &[u8], d: usize) {
    for (row, &t) in dx.chunks_exact(d).zip(tokens) {
        let t = t as usize;
        for (g, &v) in dembed[t * d..(t + 1) * d].iter_mut().zip(row) {
            *g += v;
        }
    }
}

/// RMSNorm forward per row: `y = x · r · γ` with `r = 1 / sqrt(mean(x²) + ε)`; stores `r` per row
/// in `rinv` for the backward pass.
pub fn rmsnorm_forward<R: Real>(y: &mut [R], rinv: &mut [R], x: &[R], gamma: &[R], d: usize) {
    let eps = R::from_f64(RMS_EPS);
    let inv_d = R::ONE / R::from_f64(d as f64);
    y.par_chunks_mut(d * ROW_CHUNK).zip(rinv.par_chunks_mut(ROW_CHUNK)).enumerate().for_each(
        |(c, (yc, rc))| {
            let base = c * ROW_CHUNK * d;
            for (i, (yr, r)) in yc.chunks_exact_mut(d).zip(rc.iter_mut()).enumerate() {
                let xr = &x[base + i * d..base + (i + 1) * d];
                let ss: R = xr.iter().map(|&v| v * v).sum();
                let ri = R::ONE / (ss * inv_d + eps).sqrt();
                *r = ri;
                for ((o, &v), &g) in yr.iter_mut().zip(xr).zip(gamma) {
                    *o = v * ri * g;
                }
            }
        },
    );
}

/// RMSNorm backward: `dx += ∂L/∂x` and `dgamma += ∂L/∂γ` given `dy = ∂L/∂y`, the input `x` and the
/// stored `rinv`.
pub fn rmsnorm_backward<R: Real>(
    dx: &mut [R],
    dgamma: &mut [R],
    dy: &[R],
    x: &[R],
    rinv: &[R],
    gamma: &[R],
    d: usize,
) {
    let inv_d = R::ONE / R::from_f64(d as f64);
    let partials: Vec<Vec<R>> = dx
        .par_chunks_mut(d * ROW_CHUNK)
        .enumerate()
        .map(|(c, dxc)| {
            let mut acc = vec![R::ZERO; d];
            let row0 = c * ROW_CHUNK;
            for (i, dxr) in dxc.chunks_exact_mut(d).enumerate() {
                let row = row0 + i;
                let xr = &x[row * d..(row + 1) * d];
                let dyr = &dy[row * d..(row + 1) * d];
                let r = rinv[row];
                let mut s = R::ZERO;
                for j in 0..d {
                    s += dyr[j] * gamma[j] * xr[j];
                    acc[j] += dyr[j] * xr[j] * r;
                }
                let k = r * r * r * s * inv_d;
                for j in 0..d {
                    dxr[j] += r * gamma[j] * dyr[j] - k * xr[j];
                }
            }
            acc
        })
        .collect();
    add_partials(dgamma, partials);
}

/// Sums the branch kernels of a multi-branch depthwise convolution into one kernel of
/// `kmax = max K_b` taps: `weff[k, j] = Σ_b conv_b[k, j]` over branches with `K_b > k`. The
/// convolution is linear in its weights, so one pass with the merged kernel equals the sum of the
/// branches.
pub fn conv_merge<R: Real>(weff: &mut [R], branches: &[&[R]], d: usize) {
    weff.fill(R::ZERO);
    for b in branches {
        for (w, &v) in weff.iter_mut().zip(b.iter()) {
            *w += v;
        }
    }
    debug_assert!(branches.iter().all(|b| b.len() % d == 0));
}

/// Depthwise causal convolution per window: `c[t, j] = Σ_{k<kmax, k≤t} weff[k, j] · u[t−k, j]`.
pub fn conv_forward<R: Real>(c: &mut [R], u: &[R], weff: &[R], t_len: usize, d: usize) {
    let kmax = weff.len() / d;
    c.par_chunks_mut(t_len * d).enumerate().for_each(|(w, cw)| {
        let uw = &u[w * t_len * d..(w + 1) * t_len * d];
        cw.fill(R::ZERO);
        for t in 0..t_len {
            let crow = &mut cw[t * d..(t + 1) * d];
            for k in 0..kmax.min(t + 1) {
                let urow = &uw[(t - k) * d..(t - k + 1) * d];
                let wk = &weff[k * d..(k + 1) * d];
                for j in 0..d {
                    crow[j] += wk[j] * urow[j];
                }
            }
        }
    });
}

/// Convolution backward: `du = ∂L/∂u` (overwritten) and `dweff += ∂L/∂weff` given `dc`.
pub fn conv_backward<R: Real>(
    du: &mut [R],
    dweff: &mut [R],
    dc: &[R],
    u: &[R],
    weff: &[R],
    t_len: usize,
    d: usize,
) {
    let kmax = weff.len() / d;
    let partials: Vec<Vec<R>> = du
        .par_chunks_mut(t_len * d)
        .enumerate()
        .map(|(w, duw)| {
            let mut acc = vec![R::ZERO; kmax * d];
            let uw = &u[w * t_len * d..(w + 1) * t_len * d];
            let dcw = &dc[w * t_len * d..(w + 1) * t_len * d];
            duw.fill(R::ZERO);
            for t in 0..t_len {
                let dcrow = &dcw[t * d..(t + 1) * d];
                for k in 0..kmax.min(t + 1) {
                    let s = t - k;
                    let urow = &uw[s * d..(s + 1) * d];
                    let durow = &mut duw[s * d..(s + 1) * d];
                    let wk = &weff[k * d..(k + 1) * d];
                    let ak = &mut acc[k * d..(k + 1) * d];
                    for j in 0..d {
                        ak[j] += dcrow[j] * urow[j];
                        durow[j] += wk[j] * dcrow[j];
                    }
                }
            }
            acc
        })
        .collect();
    add_partials(dweff, partials);
}

/// Row-wise softmax in place over rows of width `s` (the slot scores become the weights `α`).
pub fn softmax_rows<R: Real>(x: &mut [R], s: usize) {
    x.par_chunks_mut(s * ROW_CHUNK).for_each(|xc| {
        for row in xc.chunks_exact_mut(s) {
            let m = row.iter().fold(R::neg_infinity(), |a, &b| a.max(b));
            let mut z = R::ZERO;
            for v in row.iter_mut() {
                *v = (*v - m).exp();
                z += *v;
            }
            let inv = R::ONE / z;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    });
}

/// Softmax backward in place: turns `dα` into `∂L/∂scores = α ⊙ (dα − Σ α dα)`, times `scale`.
pub fn softmax_rows_backward<R: Real>(dalpha: &mut [R], alpha: &[R], s: usize, scale: R) {
    dalpha.par_chunks_mut(s * ROW_CHUNK).enumerate().for_each(|(c, dc)| {
        let base = c * ROW_CHUNK * s;
        for (i, drow) in dc.chunks_exact_mut(s).enumerate() {
            let arow = &alpha[base + i * s..base + (i + 1) * s];
            let dot: R = drow.iter().zip(arow).map(|(&g, &a)| g * a).sum();
            for (g, &a) in drow.iter_mut().zip(arow) {
                *g = a * (*g - dot) * scale;
            }
        }
    });
}

/// SwiGLU gate: `gu` rows are `[a (f) | b (f)]`; `p = SiLU(a) ⊙ b` with `SiLU(a) = a·σ(a)`.
pub fn swiglu_forward<R: Real>(p: &mut [R], gu: &[R], f: usize) {
    p.par_chunks_mut(f * ROW_CHUNK).enumerate().for_each(|(c, pc)| {
        let base = c * ROW_CHUNK * 2 * f;
        for (i, prow) in pc.chunks_exact_mut(f).enumerate() {
            let row = &gu[base + i * 2 * f..base + (i + 1) * 2 * f];
            let (a, b) = row.split_at(f);
            for j in 0..f {
                prow[j] = a[j] * sigmoid(a[j]) * b[j];
            }
        }
    });
}

/// SwiGLU backward: `dgu = [dp ⊙ b ⊙ SiLU'(a) | dp ⊙ SiLU(a)]` (overwritten).
pub fn swiglu_backward<R: Real>(dgu: &mut [R], dp: &[R], gu: &[R], f: usize) {
    dgu.par_chunks_mut(2 * f * ROW_CHUNK).enumerate().for_each(|(c, dc)| {
        let base = c * ROW_CHUNK;
        for (i, drow) in dc.chunks_exact_mut(2 * f).enumerate() {
            let r = base + i;
            let row = &gu[r * 2 * f..(r + 1) * 2 * f];
            let (a, b) = row.split_at(f);
            let dprow = &dp[r * f..(r + 1) * f];
            let (da, db) = drow.split_at_mut(f);
            for j in 0..f {
                let s = sigmoid(a[j]);
                let silu = a[j] * s;
                da[j] = dprow[j] * b[j] * (s + silu * (R::ONE - s));
                db[j] = dprow[j] * silu;
            }
        }
    });
}

/// Softmax cross-entropy per row of `logits [rows, vocab]` against `targets`. Returns the summed
/// loss (nats, accumulated in `f64`) and replaces the logits by `∂(scale · Σ loss)/∂logits =
/// scale · (softmax − onehot)`.
pub fn cross_entropy<R: Real>(logits: &mut [R], targets: &[u8], vocab: usize, scale: R) -> f64 {
    logits
        .par_chunks_mut(vocab * ROW_CHUNK)
        .enumerate()
        .map(|(c, lc)| {
            let mut total = 0.0f64;
            for (i, row) in lc.chunks_exact_mut(vocab).enumerate() {
                let t = targets[c * ROW_CHUNK + i] as usize;
                let m = row.iter().fold(R::neg_infinity(), |a, &b| a.max(b));
                let shifted_target = (row[t] - m).to_f64();
                let mut z = R::ZERO;
                for v in row.iter_mut() {
                    *v = (*v - m).exp();
                    z += *v;
                }
                // loss = ln Σ e^(logit − m) − (logit_t − m).
                total += z.to_f64().ln() - shifted_target;
                let inv = scale / z;
                for v in row.iter_mut() {
                    *v *= inv;
                }
                row[t] -= scale;
            }
            total
        })
        .collect::<Vec<f64>>()
        .into_iter()
        .sum()
}

/// Softmax cross-entropy loss only (no gradient), summed over rows in `f64`. `logits` is consumed as
/// scratch.
pub fn cross_entropy_loss<R: Real>(logits: &mut [R], targets: &[u8], vocab: usize) -> f64 {
    cross_entropy(logits, targets, vocab, R::ZERO)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Central-difference check of `analytic` against the gradient of `f` at `x`, for the indices in
    /// `sample` (all if `None`). Relative error with an absolute floor.
    pub(crate) fn check_grad(
        name: &str,
        f: &mut dyn FnMut(&[f64]) -> f64,
        x: &[f64],
        analytic: &[f64],
        eps: f64,
        tol: f64,
    ) {
        let mut xp = x.to_vec();
        for i in 0..x.len() {
            let orig = xp[i];
            xp[i] = orig + eps;
            let fp = f(&xp);
            xp[i] = orig - eps;
            let fm = f(&xp);
            xp[i] = orig;
            let num = (fp - fm) / (2.0 * eps);
            let err = (num - analytic[i]).abs() / (num.abs().max(analytic[i].abs()).max(1e-3));
            assert!(
                err < tol,
                "{name}[{i}]: analytic {} vs numeric {num} (rel err {err:e})",
                analytic[i]
            );
        }
    }

    pub(crate) fn randv(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| rng.normal() * scale).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn rmsnorm_gradients() {
        let mut rng = Rng::new(11);
        let (rows, d) = (70, 6);
        let x = randv(&mut rng, rows * d, 1.0);
        let gamma = randv(&mut rng, d, 1.0);
        let proj = randv(&mut rng, rows * d, 1.0);
        let fwd = |x: &[f64], g: &[f64]| {
            let mut y = vec![0.0; rows * d];
            let mut r = vec![0.0; rows];
            rmsnorm_forward(&mut y, &mut r, x, g, d);
            (y, r)
        };
        let (_, r) = fwd(&x, &gamma);
        let mut dx = vec![0.0; rows * d];
        let mut dg = vec![0.0; d];
        rmsnorm_backward(&mut dx, &mut dg, &proj, &x, &r, &gamma, d);
        check_grad("rms.x", &mut |xx| dot(&fwd(xx, &gamma).0, &proj), &x, &dx, 1e-5, 1e-5);
        check_grad("rms.gamma", &mut |gg| dot(&fwd(&x, gg).0, &proj), &gamma, &dg, 1e-5, 1e-5);
        // f32 agrees with f64.
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let g32: Vec<f32> = gamma.iter().map(|&v| v as f32).collect();
        let mut y32 = vec![0.0f32; rows * d];
        let mut r32 = vec![0.0f32; rows];
        rmsnorm_forward(&mut y32, &mut r32, &x32, &g32, d);
        for (a, b) in y32.iter().zip(&fwd(&x, &gamma).0) {
            assert!((*a as f64 - b).abs() < 1e-5 * (1.0 + b.abs()));
        }
    }

    #[test]
    fn conv_gradients_and_merge() {
        let mut rng = Rng::new(12);
        let (windows, t_len, d) = (3, 9, 4);
        let kernels = [2usize, 3, 5];
        let n = windows * t_len * d;
        let u = randv(&mut rng, n, 1.0);
        let branches: Vec<Vec<f64>> =
            kernels.iter().map(|&k| randv(&mut rng, k * d, 0.5)).collect();
        let proj = randv(&mut rng, n, 1.0);
        let kmax = 5;
        let fwd = |u: &[f64], br: &[Vec<f64>]| {
            let refs: Vec<&[f64]> = br.iter().map(|b| b.as_slice()).collect();
            let mut weff = vec![0.0; kmax * d];
            conv_merge(&mut weff, &refs, d);
            let mut c = vec![0.0; n];
            conv_forward(&mut c, u, &weff, t_len, d);
            (c, weff)
        };
        // Direct definition: sum over branches and taps, zero before the window start.
        let (c, weff) = fwd(&u, &branches);
        for w in 0..windows {
            for t in 0..t_len {
                for j in 0..d {
                    let mut want = 0.0;
                    for (b, &kb) in kernels.iter().enumerate() {
                        for k in 0..kb.min(t + 1) {
                            want += branches[b][k * d + j] * u[(w * t_len + t - k) * d + j];
                        }
                    }
                    assert!((c[(w * t_len + t) * d + j] - want).abs() < 1e-12);
                }
            }
        }
        let mut du = vec![0.0; n];
        let mut dweff = vec![0.0; kmax * d];
        conv_backward(&mut du, &mut dweff, &proj, &u, &weff, t_len, d);
        check_grad("conv.u", &mut |uu| dot(&fwd(uu, &branches).0, &proj), &u, &du, 1e-5, 1e-5);
        for (b, &kb) in kernels.iter().enumerate() {
            let mut f = |wb: &[f64]| {
                let mut br = branches.clone();
                br[b] = wb.to_vec();
                dot(&fwd(&u, &br).0, &proj)
            };
            check_grad("conv.branch", &mut f, &branches[b], &dweff[..kb * d], 1e-5, 1e-5);
        }
    }

    #[test]
    fn softmax_gradients() {
        let mut rng = Rng::new(13);
        let (rows, s) = (40, 5);
        let x = randv(&mut rng, rows * s, 2.0);
        let proj = randv(&mut rng, rows * s, 1.0);
        let fwd = |x: &[f64]| {
            let mut a = x.to_vec();
            softmax_rows(&mut a, s);
            a
        };
        let alpha = fwd(&x);
        for row in alpha.chunks(s) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let mut g = proj.clone();
        softmax_rows_backward(&mut g, &alpha, s, 1.0);
        check_grad("softmax", &mut |xx| dot(&fwd(xx), &proj), &x, &g, 1e-5, 1e-5);
    }

    #[test]
    fn swiglu_gradients() {
        let mut rng = Rng::new(14);
        let (rows, f) = (35, 6);
        let gu = randv(&mut rng, rows * 2 * f, 2.0);
        let proj = randv(&mut rng, rows * f, 1.0);
        let fwd = |gu: &[f64]| {
            let mut p = vec![0.0; rows * f];
            swiglu_forward(&mut p, gu, f);
            p
        };
        let mut dgu = vec![0.0; rows * 2 * f];
        swiglu_backward(&mut dgu, &proj, &gu, f);
        check_grad("swiglu", &mut |g| dot(&fwd(g), &proj), &gu, &dgu, 1e-5, 1e-5);
    }

    #[test]
    fn cross_entropy_gradients_and_value() {
        let mut rng = Rng::new(15);
        let (rows, vocab) = (37, 7);
        let logits = randv(&mut rng, rows * vocab, 2.0);
        let targets: Vec<u8> = (0..rows).map(|_| rng.below(vocab as u64) as u8).collect();
        let loss = |l: &[f64]| {
            let mut s = l.to_vec();
            cross_entropy_loss(&mut s, &targets, vocab)
        };
        // Direct definition.
        let mut want = 0.0;
        for (r, row) in logits.chunks(vocab).enumerate() {
            let z: f64 = row.iter().map(|v| v.exp()).sum();
            want += z.ln() - row[targets[r] as usize];
        }
        assert!((loss(&logits) - want).abs() < 1e-10);
        let mut g = logits.clone();
        let l2 = cross_entropy(&mut g, &targets, vocab, 1.0);
        assert!((l2 - want).abs() < 1e-10);
        check_grad("xent", &mut |l| loss(l), &logits, &g, 1e-5, 1e-5);
    }

    #[test]
    fn embedding_gradients() {
        let mut rng = Rng::new(16);
        let d = 3;
        let embed = randv(&mut rng, 256 * d, 1.0);
        let tokens: Vec<u8> = vec![5, 200, 5, 7, 0, 255];
        let proj = randv(&mut rng, tokens.len() * d, 1.0);
        let fwd = |e: &[f64]| {
            let mut x = vec![0.0; tokens.len() * d];
            embed_forward(&mut x, e, &tokens, d);
            dot(&x, &proj)
        };
        let mut de = vec![0.0; 256 * d];
        embed_backward(&mut de, &proj, &tokens, d);
        check_grad("embed", &mut |e| fwd(e), &embed, &de, 1e-6, 1e-8);
    }
}
