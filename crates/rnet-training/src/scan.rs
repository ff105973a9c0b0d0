//! The minGRU recurrence `h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ g(h̃_t)`, `z_t = σ(k_t)`, `h_{−1} = 0`,
//! in two forms that compute the same function:
//!
//! * [`scan_sequential`]: the reference recurrence, one step per position.
//! * [`scan_parallel`]: the log-domain parallel scan (Heinsen 2023, as used for minGRU by Feng et
//!   al. 2024). With `a_t = ln(1 − z_t) = −softplus(k_t)` and `ln b_t = ln z_t + ln g(h̃_t) =
//!   −softplus(−k_t) + ln g(h̃_t)`, the solution is `h_t = exp(a*_t + logcumsumexp_{s≤t}(ln b_s −
//!   a*_s))` with `a*_t = Σ_{s≤t} a_s`. Both prefix operations are associative scans. The window is
//!   cut into chunks that are scanned independently (in parallel) in the log domain; a short pass
//!   then carries each chunk's final state into the next, `h_t += exp(a*_t) · h_start`, which is the
//!   usual two-level parallel prefix. Chunking also keeps `|a*|` small so the scan is accurate in f32.
//!
//! The backward pass of both is the reverse-time recurrence [`scan_backward`] (the exact gradient of
//! either form, since they compute the same function).
//!
//! Inputs are the fused pre-activations `zh [rows, 2d]`, each row `[k (d) | h̃ (d)]` as produced by
//! one product with the adjacent `gru.wz`, `gru.wh` weights.

use rayon::prelude::*;

use crate::real::{Real, sigmoid, softplus};

/// `g(x) = x + 0.5` for `x ≥ 0`, `σ(x)` otherwise (positive and continuous).
#[inline(always)]
pub fn g_act<R: Real>(x: R) -> R {
    if x >= R::ZERO { x + R::from_f64(0.5) } else { sigmoid(x) }
}

/// `g'(x)`: 1 for `x ≥ 0`, `σ(x)(1 − σ(x))` otherwise.
#[inline(always)]
pub fn g_grad<R: Real>(x: R) -> R {
    if x >= R::ZERO {
        R::ONE
    } else {
        let s = sigmoid(x);
        s * (R::ONE - s)
    }
}

/// `ln g(x)`: `ln(x + 0.5)` for `x ≥ 0`, `−softplus(−x)` otherwise.
#[inline(always)]
pub fn log_g<R: Real>(x: R) -> R {
    if x >= R::ZERO { (x + R::from_f64(0.5)).ln() } else { -softplus(-x) }
}

/// Default chunk length of the parallel scan.
pub const SCAN_CHUNK: usize = 64;

/// Sequential minGRU recurrence over each window of `t_len` rows: writes `h [rows, d]`.
pub fn scan_sequential<R: Real>(h: &mut [R], zh: &[R], t_len: usize, d: usize) {
    h.par_chunks_mut(t_len * d).enumerate().for_each(|(w, hw)| {
        let zw = &zh[w * t_len * 2 * d..(w + 1) * t_len * 2 * d];
        for t in 0..t_len {
            let (prev, cur) = hw.split_at_mut(t * d);
            let hrow = &mut cur[..d];
            let (k, ht) = zw[t * 2 * d..(t + 1) * 2 * d].split_at(d);
            if t == 0 {
                for j in 0..d {
                    hrow[j] = sigmoid(k[j]) * g_act(ht[j]);
                }
            } else {
                let hp = &prev[(t - 1) * d..];
                for j in 0..d {
                    let z = sigmoid(k[j]);
                    hrow[j] = (R::ONE - z) * hp[j] + z * g_act(ht[j]);
                }
            }
        }
    });
}

/// Log-domain parallel (Heinsen) scan over each window, chunked by `chunk` positions (see the
/// module docs). `decay [rows, d]` is scratch. Computes the same `h` as [`scan_sequential`].
pub fn scan_parallel<R: Real>(
    h: &mut [R],
    decay: &mut [R],
    zh: &[R],
    t_len: usize,
    d: usize,
    chunk: usize,
) {
    let chunk = chunk.clamp(1, t_len.max(1));
    let n_chunks = t_len.div_ceil(chunk);
    // Phase 1: every chunk of every window, independently, in the log domain from a zero state.
    h.par_chunks_mut(t_len * d).zip(decay.par_chunks_mut(t_len * d)).enumerate().for_each(
        |(w, (hw, dw))| {
            hw.par_chunks_mut(chunk * d).zip(dw.par_chunks_mut(chunk * d)).enumerate().for_each(
                |(c, (hc, dc))| {
                    let mut a_star = vec![R::ZERO; d];
                    let mut m = vec![R::neg_infinity(); d];
                    let mut s = vec![R::ZERO; d];
                    let row0 = w * t_len + c * chunk;
                    for (i, (hrow, drow)) in
                        hc.chunks_exact_mut(d).zip(dc.chunks_exact_mut(d)).enumerate()
                    {
                        let zrow = &zh[(row0 + i) * 2 * d..(row0 + i + 1) * 2 * d];
                        let (k, ht) = zrow.split_at(d);
                        for j in 0..d {
                            a_star[j] -= softplus(k[j]);
                            let log_b = -softplus(-k[j]) + log_g(ht[j]);
                            let x = log_b - a_star[j];
                            // Online logcumsumexp.
                            if x > m[j] {
                                s[j] = s[j] * (m[j] - x).exp() + R::ONE;
                                m[j] = x;
                            } else {
                                s[j] += (x - m[j]).exp();
                            }
                            hrow[j] = (a_star[j] + m[j] + s[j].ln()).exp();
                            drow[j] = a_star[j].exp();
                        }
                    }
                },
            );
        },
    );
    if n_chunks <= 1 {
        return;
    }
    // Phase 2: carry each chunk's final state into the next (sequential over chunks, O(d) each).
    let carries: Vec<Vec<R>> = (0..h.len() / (t_len * d))
        .into_par_iter()
        .map(|w| {
            let base = w * t_len;
            let mut carries = vec![R::ZERO; n_chunks * d];
            for c in 1..n_chunks {
                let end = base + c * chunk - 1;
                let (before, this) = carries.split_at_mut(c * d);
                let prev = &before[(c - 1) * d..];
                for j in 0..d {
                    this[j] = h[end * d + j] + decay[end * d + j] * prev[j];
                }
            }
            carries
        })
        .collect();
    // Phase 3: add the carried state into every position, in parallel.
    h.par_chunks_mut(t_len * d).zip(carries.par_iter()).enumerate().for_each(|(w, (hw, cw))| {
        for (c, hc) in hw.chunks_mut(chunk * d).enumerate().skip(1) {
            let carry = &cw[c * d..(c + 1) * d];
            let row0 = w * t_len + c * chunk;
            for (i, hrow) in hc.chunks_exact_mut(d).enumerate() {
                let drow = &decay[(row0 + i) * d..(row0 + i + 1) * d];
                for j in 0..d {
                    hrow[j] += drow[j] * carry[j];
                }
            }
        }
    });
}

/// Backward of the recurrence: given `dh = ∂L/∂h` (from the output projection), the
/// pre-activations `zh` and the states `h`, writes `dzh = ∂L/∂zh` (rows `[∂k | ∂h̃]`).
pub fn scan_backward<R: Real>(dzh: &mut [R], dh: &[R], zh: &[R], h: &[R], t_len: usize, d: usize) {
    dzh.par_chunks_mut(t_len * 2 * d).enumerate().for_each(|(w, dzw)| {
        let base = w * t_len;
        let mut carry = vec![R::ZERO; d];
        for t in (0..t_len).rev() {
            let row = base + t;
            let (k, ht) = zh[row * 2 * d..(row + 1) * 2 * d].split_at(d);
            let (dk, dht) = dzw[t * 2 * d..(t + 1) * 2 * d].split_at_mut(d);
            let dhrow = &dh[row * d..(row + 1) * d];
            for j in 0..d {
                let z = sigmoid(k[j]);
                let g = g_act(ht[j]);
                let hp = if t == 0 { R::ZERO } else { h[(row - 1) * d + j] };
                let total = dhrow[j] + carry[j];
                let dz = total * (g - hp);
                dk[j] = dz * z * (R::ONE - z);
                dht[j] = total * z * g_grad(ht[j]);
                carry[j] = total * (R::ONE - z);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::{check_grad, randv};
    use crate::rng::Rng;

    #[test]
    fn sequential_matches_definition() {
        let mut rng = Rng::new(21);
        let (w, t_len, d) = (2, 7, 3);
        let zh = randv(&mut rng, w * t_len * 2 * d, 2.0);
        let mut h = vec![0.0; w * t_len * d];
        scan_sequential(&mut h, &zh, t_len, d);
        for wi in 0..w {
            let mut state = [0.0f64; 3];
            for t in 0..t_len {
                let r = wi * t_len + t;
                for j in 0..d {
                    let k = zh[r * 2 * d + j];
                    let x = zh[r * 2 * d + d + j];
                    let z = 1.0 / (1.0 + (-k).exp());
                    let g = if x >= 0.0 { x + 0.5 } else { 1.0 / (1.0 + (-x).exp()) };
                    state[j] = (1.0 - z) * state[j] + z * g;
                    assert!((h[r * d + j] - state[j]).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn log_g_is_log_of_g() {
        for &x in &[-30.0f64, -3.0, -0.1, 0.0, 0.2, 5.0] {
            assert!((log_g(x) - g_act(x).ln()).abs() < 1e-12, "{x}");
        }
    }

    #[test]
    fn parallel_scan_agrees_with_sequential_f32() {
        let mut rng = Rng::new(22);
        for &(w, t_len, d, chunk, scale) in &[
            (3usize, 512usize, 16usize, SCAN_CHUNK, 2.0f64),
            (2, 100, 8, 7, 3.0),
            (1, 64, 5, 64, 1.0),
            (2, 33, 4, 1, 4.0),
            (1, 256, 8, 1000, 2.0),
        ] {
            let zh: Vec<f32> =
                randv(&mut rng, w * t_len * 2 * d, scale).iter().map(|&v| v as f32).collect();
            let mut hs = vec![0.0f32; w * t_len * d];
            scan_sequential(&mut hs, &zh, t_len, d);
            let mut hp = vec![0.0f32; w * t_len * d];
            let mut decay = vec![0.0f32; w * t_len * d];
            scan_parallel(&mut hp, &mut decay, &zh, t_len, d, chunk);
            let max_err = hs
                .iter()
                .zip(&hp)
                .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
                .fold(0.0, f32::max);
            assert!(max_err < 1e-4, "t={t_len} chunk={chunk}: max err {max_err:e}");
        }
    }

    #[test]
    fn scan_backward_matches_finite_differences() {
        let mut rng = Rng::new(23);
        let (w, t_len, d) = (2, 11, 3);
        let mut zh = randv(&mut rng, w * t_len * 2 * d, 1.5);
        // Keep h̃ away from the kink of g at 0 so central differences are meaningful.
        for v in zh.iter_mut() {
            if v.abs() < 1e-3 {
                *v += 0.01;
            }
        }
        let proj = randv(&mut rng, w * t_len * d, 1.0);
        let fwd_seq = |zh: &[f64]| {
            let mut h = vec![0.0; w * t_len * d];
            scan_sequential(&mut h, zh, t_len, d);
            h
        };
        let fwd_par = |zh: &[f64]| {
            let mut h = vec![0.0; w * t_len * d];
            let mut dec = vec![0.0; w * t_len * d];
            scan_parallel(&mut h, &mut dec, zh, t_len, d, 4);
            h
        };
        let h = fwd_seq(&zh);
        let mut dzh = vec![0.0; zh.len()];
        scan_backward(&mut dzh, &proj, &zh, &h, t_len, d);
        let dot = |a: &[f64]| a.iter().zip(&proj).map(|(x, y)| x * y).sum::<f64>();
        check_grad("scan.seq", &mut |z| dot(&fwd_seq(z)), &zh, &dzh, 1e-5, 1e-5);
        check_grad("scan.par", &mut |z| dot(&fwd_par(z)), &zh, &dzh, 1e-5, 1e-5);
    }
}
