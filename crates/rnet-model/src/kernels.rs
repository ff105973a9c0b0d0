//! Deterministic f32 kernels shared by the window forward, the recurrent step and the reference
//! definitions in `docs/protocol.md (Part III)`.
//!
//! Every function here fixes the exact sequence of IEEE-754 single-precision operations that
//! produces each output element: reductions start from `0.0` and add terms in increasing index
//! order, products are rounded before they are added (Rust never contracts `a * b + c` into a fused
//! multiply-add), and transcendental functions come from `libm`. Vectorisation only ever runs
//! *across* independent outputs (positions or output rows), never inside one reduction, so the
//! result is bit-identical whatever the SIMD width, thread count or CPU feature level.

use std::sync::atomic::{AtomicBool, Ordering};

/// When set, the x86-64 AVX2 code paths are skipped (tests use it to show both paths give the same
/// bits).
static PORTABLE_ONLY: AtomicBool = AtomicBool::new(false);

/// Whether the AVX2-compiled kernels may be used on this CPU.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn use_avx2() -> bool {
    !PORTABLE_ONLY.load(Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx2")
}

/// Restricts the kernels to the portable code paths (`true`) or lets them pick AVX2 where the CPU
/// has it (`false`, the default). The results are identical either way; only speed changes.
pub fn set_portable_only(portable: bool) {
    PORTABLE_ONLY.store(portable, Ordering::Relaxed);
}

/// `1e-6`, the RMSNorm epsilon.
pub const RMS_EPS: f32 = 1e-6;

/// What a matrix product does with its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// `y = Σ`.
    Overwrite,
    /// `y = y + Σ` (one rounding for the sum, one for the addition): residual updates.
    Add,
}

/// Position-batched matrix product: for every position `t < n_t` and output row `o < n_out`,
/// `s = Σ_{k=0}^{n_in-1} w[o·n_in + k] · x[t·n_in + k]` accumulated from `0.0` with `k` increasing,
/// then `y[t·n_out + o] = s` or `y[t·n_out + o] + s` (see [`Store`]).
///
/// `w` is `[n_out, n_in]` row-major (the checkpoint layout, applied as `y = W x`), `x` is
/// `[n_t, n_in]` and `y` is `[n_t, n_out]`. Register-blocked over several output rows and positions;
/// the per-element operation sequence is the same for every block shape, so a single position (the
/// recurrent step) gives the same bits as a whole window.
///
/// # Panics
/// When a slice is shorter than its dimensions say (a programming error, never external input).
pub fn matmul(
    w: &[f32],
    n_out: usize,
    n_in: usize,
    x: &[f32],
    n_t: usize,
    y: &mut [f32],
    store: Store,
) {
    assert!(w.len() >= n_out * n_in, "matmul: weight slice too short");
    assert!(x.len() >= n_t * n_in, "matmul: input slice too short");
    assert!(y.len() >= n_t * n_out, "matmul: output slice too short");
    if n_t == 0 || n_out == 0 {
        return;
    }
    if n_t < 4 {
        // One position (the recurrent step): eight independent rows per block for ILP.
        matmul_blocked::<8, 1>(w, n_out, n_in, x, n_t, y, store);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if use_avx2() {
            // SAFETY: the CPU supports AVX2, checked just above; the function has no other
            // preconditions.
            unsafe { matmul_avx2(w, n_out, n_in, x, n_t, y, store) };
            return;
        }
    }
    matmul_blocked::<6, 8>(w, n_out, n_in, x, n_t, y, store);
}

/// The blocked kernel compiled with AVX2 enabled (eight-lane vectors across positions). Enabling a
/// target feature changes only the instructions, never the operations: Rust does not contract
/// multiplies and adds even when FMA is available.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn matmul_avx2(
    w: &[f32],
    n_out: usize,
    n_in: usize,
    x: &[f32],
    n_t: usize,
    y: &mut [f32],
    store: Store,
) {
    matmul_blocked::<4, 16>(w, n_out, n_in, x, n_t, y, store);
}

/// Blocks of `MO` output rows × `NT` positions. The positions of one block are packed into a
/// `[n_in][NT]` panel (zero-padded past `n_t`; padded lanes are computed and discarded), so the
/// innermost loop is `NT` independent accumulators updated with one weight, which the compiler
/// vectorises across positions.
#[inline(always)]
fn matmul_blocked<const MO: usize, const NT: usize>(
    w: &[f32],
    n_out: usize,
    n_in: usize,
    x: &[f32],
    n_t: usize,
    y: &mut [f32],
    store: Store,
) {
    let mut panel = vec![0.0f32; n_in * NT];
    let mut t0 = 0;
    while t0 < n_t {
        let nt = NT.min(n_t - t0);
        if NT == 1 {
            panel.copy_from_slice(&x[t0 * n_in..(t0 + 1) * n_in]);
        } else {
            for tt in 0..NT {
                if tt < nt {
                    let row = &x[(t0 + tt) * n_in..(t0 + tt + 1) * n_in];
                    for (k, &v) in row.iter().enumerate() {
                        panel[k * NT + tt] = v;
                    }
                } else {
                    for k in 0..n_in {
                        panel[k * NT + tt] = 0.0;
                    }
                }
            }
        }
        let mut o = 0;
        while o + MO <= n_out {
            let acc = block::<MO, NT>(&w[o * n_in..(o + MO) * n_in], n_in, &panel);
            write_block(&acc, y, n_out, t0, nt, o, store);
            o += MO;
        }
        while o < n_out {
            let acc = block::<1, NT>(&w[o * n_in..(o + 1) * n_in], n_in, &panel);
            write_block(&acc, y, n_out, t0, nt, o, store);
            o += 1;
        }
        t0 += NT;
    }
}

/// `acc[oo][tt] = Σ_k w[oo·n_in + k] · panel[k·NT + tt]`, `k` increasing from `0.0`.
#[inline(always)]
fn block<const MO: usize, const NT: usize>(
    w: &[f32],
    n_in: usize,
    panel: &[f32],
) -> [[f32; NT]; MO] {
    let rows: [&[f32]; MO] = std::array::from_fn(|oo| &w[oo * n_in..(oo + 1) * n_in]);
    let panel = &panel[..n_in * NT];
    let mut acc = [[0.0f32; NT]; MO];
    for k in 0..n_in {
        let p: &[f32; NT] = panel[k * NT..k * NT + NT].try_into().expect("NT elements");
        for oo in 0..MO {
            let wv = rows[oo][k];
            for tt in 0..NT {
                acc[oo][tt] += wv * p[tt];
            }
        }
    }
    acc
}

#[inline(always)]
fn write_block<const MO: usize, const NT: usize>(
    acc: &[[f32; NT]; MO],
    y: &mut [f32],
    n_out: usize,
    t0: usize,
    nt: usize,
    o: usize,
    store: Store,
) {
    for (tt, _) in (0..nt).zip(0..NT) {
        let row = &mut y[(t0 + tt) * n_out + o..(t0 + tt) * n_out + o + MO];
        for (oo, out) in row.iter_mut().enumerate() {
            match store {
                Store::Overwrite => *out = acc[oo][tt],
                Store::Add => *out += acc[oo][tt],
            }
        }
    }
}

/// Multi-branch depthwise causal convolution over a block of positions:
/// `c[t][j] = Σ_b Σ_{k<K_b} w_b[k][j] · u[hist + t − k][j]`, accumulated from `0.0` with `b`
/// increasing and, within a branch, `k` increasing. `u` is `[hist + n_t, d]`: the `hist` rows before
/// the block (zeros at a window start) followed by the block's own inputs; `hist` must be at least
/// `max_b K_b − 1`. Each branch is `(w_b [K_b, d], K_b)`.
pub fn causal_conv(branches: &[(&[f32], usize)], u: &[f32], hist: usize, d: usize, c: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if use_avx2() {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { causal_conv_avx2(branches, u, hist, d, c) };
            return;
        }
    }
    causal_conv_impl(branches, u, hist, d, c);
}

/// [`causal_conv`] compiled with AVX2 enabled.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn causal_conv_avx2(
    branches: &[(&[f32], usize)],
    u: &[f32],
    hist: usize,
    d: usize,
    c: &mut [f32],
) {
    causal_conv_impl(branches, u, hist, d, c);
}

#[inline(always)]
fn causal_conv_impl(branches: &[(&[f32], usize)], u: &[f32], hist: usize, d: usize, c: &mut [f32]) {
    for (t, crow) in c.chunks_exact_mut(d).enumerate() {
        crow.fill(0.0);
        for &(w, kb) in branches {
            for k in 0..kb {
                let urow = &u[(hist + t - k) * d..(hist + t - k + 1) * d];
                let wrow = &w[k * d..(k + 1) * d];
                axpy_mul(crow, wrow, urow);
            }
        }
    }
}

/// `out[j] = out[j] + a[j] · b[j]` over the common length.
#[inline(always)]
fn axpy_mul(out: &mut [f32], a: &[f32], b: &[f32]) {
    let n = out.len().min(a.len()).min(b.len());
    let (out, a, b) = (&mut out[..n], &a[..n], &b[..n]);
    for j in 0..n {
        out[j] += a[j] * b[j];
    }
}

/// RMSNorm with gain, row by row: for each row `x` of width `d = gamma.len()`,
/// `ss = Σ_k x_k·x_k` (from `0.0`, `k` increasing), `ms = ss / d`, `r = 1 / sqrt(ms + 1e-6)`,
/// `out_k = (x_k · r) · γ_k`.
pub fn rms_norm(x: &[f32], gamma: &[f32], out: &mut [f32]) {
    let d = gamma.len();
    let d_f = d as f32;
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mut ss = 0.0f32;
        for &v in xr {
            ss += v * v;
        }
        let r = 1.0f32 / (ss / d_f + RMS_EPS).sqrt();
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(gamma) {
            *o = v * r * g;
        }
    }
}

/// Logistic sigmoid `1 / (1 + expf(-x))` with `libm::expf`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// SiLU `x · sigmoid(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// The minGRU candidate activation `g(x) = x + 0.5` for `x ≥ 0`, else `sigmoid(x)`.
#[inline]
pub fn gru_g(x: f32) -> f32 {
    if x >= 0.0 { x + 0.5 } else { sigmoid(x) }
}

/// Softmax in place: `m = max_i v_i` (first element, then `if v_i > m`), `e_i = expf(v_i - m)`,
/// `z = Σ e_i` (from `0.0`, `i` increasing), `v_i = e_i / z`.
pub fn softmax_in_place(v: &mut [f32]) {
    let m = max_of(v);
    crate::expf::exp_minus_in_place(v, m);
    let mut z = 0.0f32;
    for e in v.iter() {
        z += *e;
    }
    for e in v.iter_mut() {
        *e /= z;
    }
}

/// The cross-entropy of `target` under `logits`, in nats:
/// `m = max_i l_i`, `s = Σ_i expf(l_i - m)` (from `0.0`, `i` increasing),
/// `loss = (logf(s) + m) - l_target`, all f32.
pub fn cross_entropy(logits: &[f32], target: usize) -> f32 {
    let m = max_of(logits);
    let s = crate::expf::sum_exp_minus(logits, m);
    (libm::logf(s) + m) - logits[target]
}

/// `max` as the protocol fixes it: start with the first element, replace when strictly greater.
#[inline]
fn max_of(v: &[f32]) -> f32 {
    let mut m = v.first().copied().unwrap_or(0.0);
    for &x in v {
        if x > m {
            m = x;
        }
    }
    m
}

/// `out[t][k] = Σ_s a[t][s] · v[s][k]` from `0.0` with `s` increasing; `a` is `[n_t, n_s]`, `v` is
/// `[n_s, d]`, `out` is `[n_t, d]` (the slot-memory read). Vectorised across `k`.
pub fn weighted_rows(a: &[f32], v: &[f32], n_s: usize, d: usize, out: &mut [f32]) {
    for (ar, or) in a.chunks_exact(n_s).zip(out.chunks_exact_mut(d)) {
        or.fill(0.0);
        for (&al, vr) in ar.iter().zip(v.chunks_exact(d)) {
            for (o, &vv) in or.iter_mut().zip(vr) {
                *o += al * vv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious triple loop with the same per-element operation order.
    fn naive(w: &[f32], n_out: usize, n_in: usize, x: &[f32], n_t: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; n_t * n_out];
        for t in 0..n_t {
            for o in 0..n_out {
                let mut s = 0.0f32;
                for k in 0..n_in {
                    s += w[o * n_in + k] * x[t * n_in + k];
                }
                y[t * n_out + o] = s;
            }
        }
        y
    }

    fn run_blocked<const MO: usize, const NT: usize>(
        w: &[f32],
        n_out: usize,
        n_in: usize,
        x: &[f32],
        n_t: usize,
    ) -> Vec<f32> {
        let mut y = vec![0.0; n_t * n_out];
        matmul_blocked::<MO, NT>(w, n_out, n_in, x, n_t, &mut y, Store::Overwrite);
        y
    }

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matmul_is_bit_identical_to_the_naive_loop_for_every_shape() {
        for &(n_out, n_in, n_t) in &[
            (1, 1, 1),
            (7, 5, 3),
            (13, 17, 4),
            (6, 8, 16),
            (25, 31, 37),
            (64, 32, 64),
            (5, 3, 100),
        ] {
            let w = pseudo(n_out * n_in, 1);
            let x = pseudo(n_t * n_in, 2);
            let want = naive(&w, n_out, n_in, &x, n_t);
            let mut y = vec![0.0; n_t * n_out];
            matmul(&w, n_out, n_in, &x, n_t, &mut y, Store::Overwrite);
            assert_eq!(
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{n_out}x{n_in} over {n_t}"
            );
            // Every block shape, whatever the CPU, gives the same bits.
            for y in [
                run_blocked::<6, 8>(&w, n_out, n_in, &x, n_t),
                run_blocked::<6, 16>(&w, n_out, n_in, &x, n_t),
                run_blocked::<8, 1>(&w, n_out, n_in, &x, n_t),
                run_blocked::<1, 4>(&w, n_out, n_in, &x, n_t),
            ] {
                assert_eq!(y, want, "{n_out}x{n_in} over {n_t}");
            }
            // Position by position (the step path) gives the same bits.
            for t in 0..n_t {
                let mut y1 = vec![0.0; n_out];
                matmul(&w, n_out, n_in, &x[t * n_in..], 1, &mut y1, Store::Overwrite);
                assert_eq!(&y1[..], &want[t * n_out..(t + 1) * n_out]);
            }
            // Store::Add adds the finished sum once.
            let base = pseudo(n_t * n_out, 3);
            let mut y2 = base.clone();
            matmul(&w, n_out, n_in, &x, n_t, &mut y2, Store::Add);
            for i in 0..y2.len() {
                assert_eq!(y2[i].to_bits(), (base[i] + want[i]).to_bits());
            }
        }
    }

    #[test]
    fn scalar_functions() {
        assert_eq!(gru_g(0.0), 0.5);
        assert_eq!(gru_g(2.0), 2.5);
        assert!((gru_g(-1.0) - 0.268_941_43).abs() < 1e-7);
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(silu(0.0), 0.0);
        let mut v = vec![1.0, 2.0, 3.0];
        softmax_in_place(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let uniform = vec![0.0f32; 256];
        assert!((cross_entropy(&uniform, 7) - 256f32.ln()).abs() < 1e-5);
    }
}
