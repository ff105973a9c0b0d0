//! Agreement of every [`Backend`] operation with a reference, written once, generically.
//!
//! * CPU: [`CpuBackend`] (the `rnet-training` engine) against [`RefBackend`], straightforward loops
//!   in `f64` defined here, so a wrong CPU kernel fails; plus central-difference gradient checks of
//!   every backward operation on the CPU backend.
//! * CUDA (feature `cuda`): `CudaBackend` against [`CpuBackend`] on the same random inputs. Without
//!   a driver or device the test prints `no CUDA device: skipped` and passes; with
//!   `RNET_REQUIRE_CUDA=1` set it fails instead, so a run on a GPU machine cannot pass vacuously.
//!
//! * Vulkan (feature `vulkan`): `WgpuBackend` against [`CpuBackend`] and the reference loops, the
//!   same harness. Any Vulkan adapter counts, including Mesa's software driver lavapipe (`apt-get
//!   install mesa-vulkan-drivers libvulkan1`), so this runs on machines without a GPU. Without an
//!   adapter it prints `no Vulkan adapter: skipped` and passes; `RNET_REQUIRE_VULKAN=1` makes that a
//!   failure. `RNET_VULKAN_ADAPTER=N` picks adapter `N` (default 0). The kernels are also parsed and
//!   validated with naga, which needs no adapter at all.
//!
//! Tolerance: `|got − want| ≤ 1e-4 · max(|want|, rms(want))` per element (the rms of the whole
//! output is the absolute floor for values near 0).
//!
//! # Running the CUDA check on a remote GPU from a prebuilt binary
//!
//! Build here (no CUDA toolkit needed; the libraries are loaded at run time) and note the path that
//! cargo prints after `Executable tests/agreement.rs`:
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-gpu cargo test -p rnet-gpu --features cuda --release --no-run
//! #   Executable tests/agreement.rs (/work/target-gpu/release/deps/agreement-<hash>)
//! ```
//!
//! The binary is self-contained (no data files; the kernels' source is embedded). Copy it to the GPU
//! machine and run it there; it needs the NVIDIA driver (`libcuda.so.1`) and the CUDA 12 (or newer,
//! see below) NVRTC and cuBLAS libraries on the loader path:
//!
//! ```text
//! LD_LIBRARY_PATH=/usr/local/cuda/lib64:$LD_LIBRARY_PATH RNET_REQUIRE_CUDA=1 \
//!     ./agreement-<hash> --test-threads=1 --nocapture
//! ```
//!
//! The libraries are looked up as `libnvrtc.so`, `libnvrtc.so.12`, `libcublas.so`,
//! `libcublas.so.12`, …; with only CUDA 13 installed, the unversioned names from the toolkit's
//! `lib64` directory are the ones found. `ldconfig -p | grep -E 'nvrtc|cublas'` shows what the
//! loader already knows; `find / -name 'libnvrtc.so*' 2>/dev/null` finds a toolkit or a Python
//! wheel's copy (`…/site-packages/nvidia/cuda_nvrtc/lib`, `…/nvidia/cublas/lib`) to add to the path.
//! Under `RNET_REQUIRE_CUDA=1` a missing library fails the run with its name instead of skipping.

use std::ops::Range;

use rnet_gpu::{AdamWStep, Backend, BackendError, CpuBackend, MatmulSpec, RMS_EPS, VOCAB};
use rnet_training::rng::Rng;

// ---------------------------------------------------------------------------------------------
// Reference: straightforward loops, accumulated in f64.
// ---------------------------------------------------------------------------------------------

/// The definitions of the operations as plain loops (host buffers, `f64` accumulation). Panics on
/// bad shapes: it is only fed the shapes these tests generate.
struct RefBackend;

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Backend for RefBackend {
    type Buffer = Vec<f32>;
    type Tokens = Vec<u8>;

    fn name(&self) -> String {
        "reference loops".into()
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
        s: &MatmulSpec,
        a: &Vec<f32>,
        b: &Vec<f32>,
        c: &mut Vec<f32>,
    ) -> Result<(), BackendError> {
        s.validate(a.len(), b.len(), c.len())?;
        for bi in 0..s.batch {
            let (oa, ob, oc) = (
                s.offset_a + bi * s.stride_a,
                s.offset_b + bi * s.stride_b,
                s.offset_c + bi * s.stride_c,
            );
            for i in 0..s.m {
                for j in 0..s.n {
                    let mut acc = 0.0f64;
                    for p in 0..s.k {
                        let av =
                            if s.trans_a { a[oa + p * s.lda + i] } else { a[oa + i * s.lda + p] };
                        let bv =
                            if s.trans_b { b[ob + j * s.ldb + p] } else { b[ob + p * s.ldb + j] };
                        acc += av as f64 * bv as f64;
                    }
                    let dst = &mut c[oc + i * s.ldc + j];
                    let old = if s.beta == 0.0 { 0.0 } else { s.beta as f64 * *dst as f64 };
                    *dst = (s.alpha as f64 * acc + old) as f32;
                }
            }
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
        for r in 0..rows {
            let xr = &x[r * d..(r + 1) * d];
            let ms = xr.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
            let ri = 1.0 / (ms + RMS_EPS as f64).sqrt();
            rinv[r] = ri as f32;
            for j in 0..d {
                y[r * d + j] = (xr[j] as f64 * ri * gamma[j] as f64) as f32;
            }
        }
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
        let mut dg = vec![0.0f64; d];
        for r in 0..rows {
            let ri = rinv[r] as f64;
            let (xr, dyr) = (&x[r * d..(r + 1) * d], &dy[r * d..(r + 1) * d]);
            // y_j = x_j r γ_j with r = (Σx²/d + ε)^(−1/2): ∂r/∂x_i = −r³ x_i / d.
            let s: f64 = (0..d).map(|j| dyr[j] as f64 * gamma[j] as f64 * xr[j] as f64).sum();
            for i in 0..d {
                let g = ri * gamma[i] as f64 * dyr[i] as f64
                    - ri * ri * ri * s * xr[i] as f64 / d as f64;
                dx[r * d + i] += g as f32;
                dg[i] += dyr[i] as f64 * xr[i] as f64 * ri;
            }
        }
        for (g, v) in dgamma.iter_mut().zip(dg) {
            *g += v as f32;
        }
        Ok(())
    }

    fn swiglu_forward(
        &self,
        p: &mut Vec<f32>,
        gu: &Vec<f32>,
        rows: usize,
        f: usize,
    ) -> Result<(), BackendError> {
        for r in 0..rows {
            for j in 0..f {
                let (a, b) = (gu[r * 2 * f + j] as f64, gu[r * 2 * f + f + j] as f64);
                p[r * f + j] = (a * sig(a) * b) as f32;
            }
        }
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
        for r in 0..rows {
            for j in 0..f {
                let (a, b) = (gu[r * 2 * f + j] as f64, gu[r * 2 * f + f + j] as f64);
                let g = dp[r * f + j] as f64;
                let s = sig(a);
                dgu[r * 2 * f + j] = (g * b * (s + a * s * (1.0 - s))) as f32;
                dgu[r * 2 * f + f + j] = (g * a * s) as f32;
            }
        }
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
        for r in 0..rows {
            let row = &mut logits[r * VOCAB..(r + 1) * VOCAB];
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
            let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            let t = targets[r] as usize;
            losses[r] = (z.ln() + m - row[t] as f64) as f32;
            for (j, v) in row.iter_mut().enumerate() {
                let pj = (*v as f64 - m).exp() / z;
                let onehot = if j == t { 1.0 } else { 0.0 };
                *v = (scale as f64 * (pj - onehot)) as f32;
            }
        }
        Ok(())
    }

    fn adamw_update(
        &self,
        params: &mut Vec<f32>,
        grads: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        s: &AdamWStep,
        segments: &[(Range<usize>, bool)],
    ) -> Result<(), BackendError> {
        let t = s.step as i32;
        let (b1, b2) = (s.beta1 as f64, s.beta2 as f64);
        for (r, decays) in segments {
            for i in r.clone() {
                let g = grads[i] as f64 * s.grad_scale as f64;
                let mi = b1 * m[i] as f64 + (1.0 - b1) * g;
                let vi = b2 * v[i] as f64 + (1.0 - b2) * g * g;
                let mhat = mi / (1.0 - b1.powi(t));
                let vhat = vi / (1.0 - b2.powi(t));
                let decay = if *decays { 1.0 - s.lr as f64 * s.weight_decay as f64 } else { 1.0 };
                let p =
                    params[i] as f64 * decay - s.lr as f64 * mhat / (vhat.sqrt() + s.eps as f64);
                m[i] = mi as f32;
                v[i] = vi as f32;
                params[i] = p as f32;
            }
        }
        Ok(())
    }

    /// The plain sequential recurrence (no chunks, no log domain).
    fn scan_forward(
        &self,
        h: &mut Vec<f32>,
        _decay: &mut Vec<f32>,
        zh: &Vec<f32>,
        windows: usize,
        t_len: usize,
        d: usize,
        _chunk: usize,
    ) -> Result<(), BackendError> {
        for w in 0..windows {
            for j in 0..d {
                let mut state = 0.0f64;
                for t in 0..t_len {
                    let row = w * t_len + t;
                    let z = sig(zh[row * 2 * d + j] as f64);
                    let x = zh[row * 2 * d + d + j] as f64;
                    let g = if x >= 0.0 { x + 0.5 } else { sig(x) };
                    state = (1.0 - z) * state + z * g;
                    h[row * d + j] = state as f32;
                }
            }
        }
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
        for w in 0..windows {
            for j in 0..d {
                let mut carry = 0.0f64;
                for t in (0..t_len).rev() {
                    let row = w * t_len + t;
                    let (k, x) = (zh[row * 2 * d + j] as f64, zh[row * 2 * d + d + j] as f64);
                    let z = sig(k);
                    let (g, gp) =
                        if x >= 0.0 { (x + 0.5, 1.0) } else { (sig(x), sig(x) * (1.0 - sig(x))) };
                    let hp = if t == 0 { 0.0 } else { h[(row - 1) * d + j] as f64 };
                    let total = dh[row * d + j] as f64 + carry;
                    dzh[row * 2 * d + j] = (total * (g - hp) * z * (1.0 - z)) as f32;
                    dzh[row * 2 * d + d + j] = (total * z * gp) as f32;
                    carry = total * (1.0 - z);
                }
            }
        }
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
        for w in 0..windows {
            for t in 0..t_len {
                for j in 0..d {
                    let mut acc = 0.0f64;
                    for k in 0..kmax {
                        if k <= t {
                            acc += weff[k * d + j] as f64 * u[(w * t_len + t - k) * d + j] as f64;
                        }
                    }
                    c[(w * t_len + t) * d + j] = acc as f32;
                }
            }
        }
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
        let mut dwf = vec![0.0f64; kmax * d];
        let mut duf = vec![0.0f64; windows * t_len * d];
        for w in 0..windows {
            for t in 0..t_len {
                for k in 0..kmax.min(t + 1) {
                    for j in 0..d {
                        let (tr, sr) = (w * t_len + t, w * t_len + t - k);
                        dwf[k * d + j] += dc[tr * d + j] as f64 * u[sr * d + j] as f64;
                        duf[sr * d + j] += weff[k * d + j] as f64 * dc[tr * d + j] as f64;
                    }
                }
            }
        }
        for (o, v) in du.iter_mut().zip(duf) {
            *o = v as f32;
        }
        for (o, v) in dweff.iter_mut().zip(dwf) {
            *o += v as f32;
        }
        Ok(())
    }

    fn fill(&self, y: &mut Vec<f32>, value: f32) -> Result<(), BackendError> {
        y.iter_mut().for_each(|v| *v = value);
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
        for i in 0..n {
            let old = if beta == 0.0 { 0.0 } else { beta as f64 * y[y_off + i] as f64 };
            y[y_off + i] = (alpha as f64 * x[x_off + i] as f64 + old) as f32;
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
        for r in 0..rows {
            for j in 0..d {
                x[r * d + j] = table[tokens[r] as usize * d + j];
            }
        }
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
        let mut acc: Vec<f64> = dtable.iter().map(|&v| v as f64).collect();
        for r in 0..rows {
            for j in 0..d {
                acc[tokens[r] as usize * d + j] += dx[r * d + j] as f64;
            }
        }
        for (o, v) in dtable.iter_mut().zip(acc) {
            *o = v as f32;
        }
        Ok(())
    }

    fn softmax_forward(&self, x: &mut Vec<f32>, rows: usize, s: usize) -> Result<(), BackendError> {
        for row in x[..rows * s].chunks_exact_mut(s) {
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
            let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            for v in row.iter_mut() {
                *v = ((*v as f64 - m).exp() / z) as f32;
            }
        }
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
        for r in 0..rows {
            let (dr, ar) = (&mut dalpha[r * s..(r + 1) * s], &alpha[r * s..(r + 1) * s]);
            let dot: f64 = dr.iter().zip(ar).map(|(&g, &a)| g as f64 * a as f64).sum();
            for (g, &a) in dr.iter_mut().zip(ar) {
                *g = (a as f64 * (*g as f64 - dot) * scale as f64) as f32;
            }
        }
        Ok(())
    }

    fn sum_squares(&self, acc: &mut Vec<f32>, x: &Vec<f32>) -> Result<(), BackendError> {
        let s: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        acc[0] = (acc[0] as f64 + s) as f32;
        Ok(())
    }

    fn scan_step(&self, h: &mut Vec<f32>, zh: &Vec<f32>, d: usize) -> Result<(), BackendError> {
        for j in 0..d {
            let z = sig(zh[j] as f64);
            let x = zh[d + j] as f64;
            let g = if x >= 0.0 { x + 0.5 } else { sig(x) };
            h[j] = ((1.0 - z) * h[j] as f64 + z * g) as f32;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The generic harness.
// ---------------------------------------------------------------------------------------------

fn randv(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

fn up<B: Backend>(b: &B, v: &[f32]) -> B::Buffer {
    b.upload(v).unwrap_or_else(|e| panic!("{}: upload: {e}", b.name()))
}

fn down<B: Backend>(b: &B, x: &B::Buffer) -> Vec<f32> {
    b.download(x).unwrap_or_else(|e| panic!("{}: download: {e}", b.name()))
}

/// Named outputs of one operation run on one backend.
type Outputs = Vec<(&'static str, Vec<f32>)>;

/// Checks `got` against `want` within the module's tolerance: the worst relative error, or a
/// description of the first element out of tolerance.
fn close(case: &str, name: &str, got: &[f32], want: &[f32]) -> Result<f64, String> {
    if got.len() != want.len() {
        return Err(format!("{case} {name}: {} elements, want {}", got.len(), want.len()));
    }
    let rms =
        (want.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / want.len().max(1) as f64).sqrt();
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g as f64, w as f64);
        let denom = w.abs().max(rms).max(f64::MIN_POSITIVE);
        let err = (g - w).abs() / denom;
        if !(g.is_finite() && w.is_finite() && err <= 1e-4) {
            return Err(format!(
                "{case} {name}[{i}]: got {g} want {w} (rel err {err:e}, rms floor {rms:e})"
            ));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

/// [`close`] as an assertion.
fn assert_close(case: &str, name: &str, got: &[f32], want: &[f32]) -> f64 {
    close(case, name, got, want).unwrap_or_else(|e| panic!("{e}"))
}

/// Products with one row of C (decoding's matrix–vector products, which device backends run with
/// their own kernels): every transposition, α/β, odd and decode-sized shapes, k = 0, and padded
/// strides with offsets in a strided batch. Returns the worst relative error.
fn matvec_agreement<B: Backend, O: Backend>(be: &B, oracle: &O, rng: &mut Rng) -> f64 {
    let mut worst = 0.0f64;
    for &(n, k) in &[(1usize, 1usize), (5, 0), (300, 129), (384, 384), (256, 768), (70, 64)] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (alpha, beta) in [(1.0f32, 0.0f32), (-1.5, 0.25)] {
                let s = MatmulSpec::new(1, n, k, ta, tb).scaled(alpha, beta);
                let a = randv(rng, k, 1.0);
                let b = randv(rng, k * n, 1.0);
                let c = if beta == 0.0 { vec![f32::NAN; n] } else { randv(rng, n, 1.0) };
                let case = format!("matvec n={n} k={k} ta={ta} tb={tb} α={alpha} β={beta}");
                worst = worst.max(compare(be, oracle, case, |r| r.matmul(&s, &a, &b, &c)));
            }
        }
    }
    for (ta, tb) in [(false, true), (true, false)] {
        let (n, k, batch) = (11usize, 13usize, 3usize);
        let mut s = MatmulSpec::new(1, n, k, ta, tb).scaled(0.5, 1.0);
        s.lda += 3;
        s.ldb += 2;
        s.ldc += 5;
        s.offset_a = 4;
        s.offset_b = 7;
        s.offset_c = 1;
        let (ar, br) = (if ta { k } else { 1 }, if tb { n } else { k });
        let s = s.batched(batch, ar * s.lda + 2, br * s.ldb + 1, s.ldc + 3);
        let a = randv(rng, s.offset_a + batch * s.stride_a, 1.0);
        let b = randv(rng, s.offset_b + batch * s.stride_b, 1.0);
        let c = randv(rng, s.offset_c + batch * s.stride_c, 1.0);
        let case = format!("matvec strided batched ta={ta} tb={tb}");
        worst = worst.max(compare(be, oracle, case, |r| r.matmul(&s, &a, &b, &c)));
    }
    worst
}

/// Runs `op` on `be` and on `oracle` and compares every output.
fn compare<B: Backend, O: Backend>(
    be: &B,
    oracle: &O,
    case: String,
    op: impl Fn(&dyn Runner) -> Outputs,
) -> f64 {
    let got = op(&Dyn(be));
    let want = op(&Dyn(oracle));
    let mut worst = 0.0f64;
    for ((n1, g), (n2, w)) in got.iter().zip(&want) {
        assert_eq!(n1, n2);
        worst = worst.max(assert_close(&case, n1, g, w));
    }
    worst
}

/// An object-safe view of a backend with host-side inputs and outputs, so each operation's test is
/// written once and run on any pair of backends.
trait Runner {
    fn matmul(&self, s: &MatmulSpec, a: &[f32], b: &[f32], c: &[f32]) -> Outputs;
    #[allow(clippy::too_many_arguments)]
    fn rmsnorm(
        &self,
        x: &[f32],
        gamma: &[f32],
        dy: &[f32],
        dx0: &[f32],
        dg0: &[f32],
        rows: usize,
        d: usize,
    ) -> Outputs;
    fn swiglu(&self, gu: &[f32], dp: &[f32], rows: usize, f: usize) -> Outputs;
    fn cross_entropy(&self, logits: &[f32], targets: &[u8], rows: usize, scale: f32) -> Outputs;
    #[allow(clippy::too_many_arguments)]
    fn adamw(
        &self,
        p: &[f32],
        g: &[f32],
        m: &[f32],
        v: &[f32],
        s: &AdamWStep,
        seg: &[(Range<usize>, bool)],
    ) -> Outputs;
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        zh: &[f32],
        dh: &[f32],
        windows: usize,
        t_len: usize,
        d: usize,
        chunk: usize,
    ) -> Outputs;
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        u: &[f32],
        weff: &[f32],
        dc: &[f32],
        dw0: &[f32],
        windows: usize,
        t_len: usize,
        d: usize,
        kmax: usize,
    ) -> Outputs;
    /// `fill` of a buffer, then `axpby` of a range of it from another buffer.
    #[allow(clippy::too_many_arguments)]
    fn axpby(
        &self,
        y: &[f32],
        x: &[f32],
        y_off: usize,
        x_off: usize,
        alpha: f32,
        beta: f32,
        n: usize,
    ) -> Outputs;
    fn embed(&self, table: &[f32], dx: &[f32], dt0: &[f32], tokens: &[u8], d: usize) -> Outputs;
    fn softmax(&self, x: &[f32], dalpha: &[f32], rows: usize, s: usize, scale: f32) -> Outputs;
    /// `sum_squares` of each buffer into one accumulator of `slots` partial sums, reduced in f64.
    fn sum_squares(&self, xs: &[Vec<f32>], slots: usize) -> Outputs;
    fn scan_step(&self, h: &[f32], zhs: &[Vec<f32>], d: usize) -> Outputs;
}

struct Dyn<'a, B>(&'a B);

impl<B: Backend> Runner for Dyn<'_, B> {
    fn matmul(&self, s: &MatmulSpec, a: &[f32], b: &[f32], c: &[f32]) -> Outputs {
        let be = self.0;
        let (a, b, mut cb) = (up(be, a), up(be, b), up(be, c));
        be.matmul(s, &a, &b, &mut cb).unwrap();
        vec![("c", down(be, &cb))]
    }

    #[allow(clippy::too_many_arguments)]
    fn rmsnorm(
        &self,
        x: &[f32],
        gamma: &[f32],
        dy: &[f32],
        dx0: &[f32],
        dg0: &[f32],
        rows: usize,
        d: usize,
    ) -> Outputs {
        let be = self.0;
        let (x, g, dy) = (up(be, x), up(be, gamma), up(be, dy));
        let (mut y, mut r) = (be.zeros(rows * d).unwrap(), be.zeros(rows).unwrap());
        be.rmsnorm_forward(&mut y, &mut r, &x, &g, rows, d).unwrap();
        let (mut dx, mut dg) = (up(be, dx0), up(be, dg0));
        be.rmsnorm_backward(&mut dx, &mut dg, &dy, &x, &r, &g, rows, d).unwrap();
        vec![
            ("y", down(be, &y)),
            ("rinv", down(be, &r)),
            ("dx", down(be, &dx)),
            ("dgamma", down(be, &dg)),
        ]
    }

    fn swiglu(&self, gu: &[f32], dp: &[f32], rows: usize, f: usize) -> Outputs {
        let be = self.0;
        let (gu, dp) = (up(be, gu), up(be, dp));
        let mut p = up(be, &vec![f32::NAN; rows * f]);
        be.swiglu_forward(&mut p, &gu, rows, f).unwrap();
        let mut dgu = up(be, &vec![f32::NAN; rows * 2 * f]);
        be.swiglu_backward(&mut dgu, &dp, &gu, rows, f).unwrap();
        vec![("p", down(be, &p)), ("dgu", down(be, &dgu))]
    }

    fn cross_entropy(&self, logits: &[f32], targets: &[u8], rows: usize, scale: f32) -> Outputs {
        let be = self.0;
        let mut l = up(be, logits);
        let t = be.upload_tokens(targets).unwrap();
        let mut loss = up(be, &vec![f32::NAN; rows]);
        be.cross_entropy(&mut l, &mut loss, &t, rows, scale).unwrap();
        vec![("losses", down(be, &loss)), ("dlogits", down(be, &l))]
    }

    fn adamw(
        &self,
        p: &[f32],
        g: &[f32],
        m: &[f32],
        v: &[f32],
        s: &AdamWStep,
        seg: &[(Range<usize>, bool)],
    ) -> Outputs {
        let be = self.0;
        let (mut p, g, mut m, mut v) = (up(be, p), up(be, g), up(be, m), up(be, v));
        be.adamw_update(&mut p, &g, &mut m, &mut v, s, seg).unwrap();
        vec![("params", down(be, &p)), ("m", down(be, &m)), ("v", down(be, &v))]
    }

    fn scan(
        &self,
        zh: &[f32],
        dh: &[f32],
        windows: usize,
        t_len: usize,
        d: usize,
        chunk: usize,
    ) -> Outputs {
        let be = self.0;
        let n = windows * t_len * d;
        let (zh, dh) = (up(be, zh), up(be, dh));
        let mut h = up(be, &vec![f32::NAN; n]);
        let mut decay = be.zeros(n).unwrap();
        be.scan_forward(&mut h, &mut decay, &zh, windows, t_len, d, chunk).unwrap();
        let mut dzh = up(be, &vec![f32::NAN; 2 * n]);
        be.scan_backward(&mut dzh, &dh, &zh, &h, windows, t_len, d).unwrap();
        vec![("h", down(be, &h)), ("dzh", down(be, &dzh))]
    }

    fn conv(
        &self,
        u: &[f32],
        weff: &[f32],
        dc: &[f32],
        dw0: &[f32],
        windows: usize,
        t_len: usize,
        d: usize,
        kmax: usize,
    ) -> Outputs {
        let be = self.0;
        let n = windows * t_len * d;
        let (u, w, dc) = (up(be, u), up(be, weff), up(be, dc));
        let mut c = up(be, &vec![f32::NAN; n]);
        be.conv_forward(&mut c, &u, &w, windows, t_len, d, kmax).unwrap();
        let mut du = up(be, &vec![f32::NAN; n]);
        let mut dw = up(be, dw0);
        be.conv_backward(&mut du, &mut dw, &dc, &u, &w, windows, t_len, d, kmax).unwrap();
        vec![("c", down(be, &c)), ("du", down(be, &du)), ("dweff", down(be, &dw))]
    }

    fn axpby(
        &self,
        y: &[f32],
        x: &[f32],
        y_off: usize,
        x_off: usize,
        alpha: f32,
        beta: f32,
        n: usize,
    ) -> Outputs {
        let be = self.0;
        let (mut yb, xb) = (up(be, y), up(be, x));
        be.axpby(&mut yb, y_off, alpha, &xb, x_off, beta, n).unwrap();
        let mut filled = up(be, y);
        be.fill(&mut filled, 0.25).unwrap();
        vec![("y", down(be, &yb)), ("filled", down(be, &filled))]
    }

    fn embed(&self, table: &[f32], dx: &[f32], dt0: &[f32], tokens: &[u8], d: usize) -> Outputs {
        let be = self.0;
        let rows = tokens.len();
        let (tb, dxb, tk) = (up(be, table), up(be, dx), be.upload_tokens(tokens).unwrap());
        let mut x = up(be, &vec![f32::NAN; rows * d]);
        be.embed_forward(&mut x, &tb, &tk, rows, d).unwrap();
        let mut dt = up(be, dt0);
        be.embed_backward(&mut dt, &dxb, &tk, rows, d).unwrap();
        vec![("x", down(be, &x)), ("dtable", down(be, &dt))]
    }

    fn softmax(&self, x: &[f32], dalpha: &[f32], rows: usize, s: usize, scale: f32) -> Outputs {
        let be = self.0;
        let mut a = up(be, x);
        be.softmax_forward(&mut a, rows, s).unwrap();
        let mut g = up(be, dalpha);
        be.softmax_backward(&mut g, &a, rows, s, scale).unwrap();
        vec![("alpha", down(be, &a)), ("dscores", down(be, &g))]
    }

    fn sum_squares(&self, xs: &[Vec<f32>], slots: usize) -> Outputs {
        let be = self.0;
        let mut acc = be.zeros(slots).unwrap();
        for x in xs {
            be.sum_squares(&mut acc, &up(be, x)).unwrap();
        }
        let total: f64 = down(be, &acc).iter().map(|&v| v as f64).sum();
        vec![("sum", vec![total as f32])]
    }

    fn scan_step(&self, h: &[f32], zhs: &[Vec<f32>], d: usize) -> Outputs {
        let be = self.0;
        let mut hb = up(be, h);
        for zh in zhs {
            be.scan_step(&mut hb, &up(be, zh), d).unwrap();
        }
        vec![("h", down(be, &hb))]
    }
}

/// Every operation on several shapes: `be` must agree with `oracle`.
fn agreement<B: Backend, O: Backend>(be: &B, oracle: &O) {
    let mut rng = Rng::new(0x5eed);
    let mut report = Vec::new();

    // Matrix products: all four transpositions, α/β, odd sizes, offsets, padding, batches.
    let mut worst = 0.0f64;
    for &(m, n, k) in &[
        (1usize, 1usize, 1usize),
        (7, 5, 3),
        (37, 23, 19),
        (64, 256, 48),
        (3, 300, 129),
        (2, 3, 0),
    ] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0), (-1.5, 0.25)] {
                let s = MatmulSpec::new(m, n, k, ta, tb).scaled(alpha, beta);
                let a = randv(&mut rng, m * k, 1.0);
                let b = randv(&mut rng, k * n, 1.0);
                // β = 0 must ignore C entirely, even NaN.
                let c =
                    if beta == 0.0 { vec![f32::NAN; m * n] } else { randv(&mut rng, m * n, 1.0) };
                let case = format!("matmul m={m} n={n} k={k} ta={ta} tb={tb} α={alpha} β={beta}");
                worst = worst.max(compare(be, oracle, case, |r| r.matmul(&s, &a, &b, &c)));
            }
        }
    }
    // Sub-blocks of larger buffers: padded row strides, offsets and a strided batch of 3.
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let (m, n, k, batch) = (9usize, 11usize, 13usize, 3usize);
        let mut s = MatmulSpec::new(m, n, k, ta, tb).scaled(1.0, 1.0);
        s.lda += 3;
        s.ldb += 2;
        s.ldc += 5;
        s.offset_a = 4;
        s.offset_b = 7;
        s.offset_c = 1;
        let (ar, br) = (if ta { k } else { m }, if tb { n } else { k });
        let s = s.batched(batch, ar * s.lda + 2, br * s.ldb + 1, m * s.ldc + 3);
        let a = randv(&mut rng, s.offset_a + batch * s.stride_a, 1.0);
        let b = randv(&mut rng, s.offset_b + batch * s.stride_b, 1.0);
        let c = randv(&mut rng, s.offset_c + batch * s.stride_c, 1.0);
        let case = format!("matmul strided batched ta={ta} tb={tb}");
        worst = worst.max(compare(be, oracle, case, |r| r.matmul(&s, &a, &b, &c)));
    }
    worst = worst.max(matvec_agreement(be, oracle, &mut rng));
    // One product at a realistic size (cuBLAS tiles, CPU gemm blocking).
    {
        let (m, n, k) = (256usize, 384usize, 320usize);
        let s = MatmulSpec::new(m, n, k, false, true);
        let a = randv(&mut rng, m * k, 1.0);
        let b = randv(&mut rng, k * n, 1.0);
        let c = vec![0.0; m * n];
        worst = worst.max(compare(be, oracle, "matmul 256x384x320 A·Bᵀ".into(), |r| {
            r.matmul(&s, &a, &b, &c)
        }));
    }
    report.push(("matmul", worst));

    let mut worst = 0.0f64;
    for &(rows, d) in &[(1usize, 1usize), (5, 7), (70, 64), (33, 300), (3, 1000)] {
        let x = randv(&mut rng, rows * d, 1.5);
        let gamma: Vec<f32> = randv(&mut rng, d, 0.2).iter().map(|v| v + 1.0).collect();
        let dy = randv(&mut rng, rows * d, 1.0);
        let dx0 = randv(&mut rng, rows * d, 1.0);
        let dg0 = randv(&mut rng, d, 1.0);
        let case = format!("rmsnorm rows={rows} d={d}");
        worst = worst
            .max(compare(be, oracle, case, |r| r.rmsnorm(&x, &gamma, &dy, &dx0, &dg0, rows, d)));
    }
    report.push(("rmsnorm", worst));

    let mut worst = 0.0f64;
    for &(rows, f) in &[(1usize, 1usize), (9, 5), (40, 300)] {
        let gu = randv(&mut rng, rows * 2 * f, 3.0);
        let dp = randv(&mut rng, rows * f, 1.0);
        let case = format!("swiglu rows={rows} f={f}");
        worst = worst.max(compare(be, oracle, case, |r| r.swiglu(&gu, &dp, rows, f)));
    }
    report.push(("swiglu", worst));

    let mut worst = 0.0f64;
    for &(rows, spread) in &[(1usize, 1.0f64), (7, 3.0), (130, 1.0), (5, 40.0)] {
        let logits = randv(&mut rng, rows * VOCAB, spread);
        let targets: Vec<u8> = (0..rows).map(|_| rng.below(256) as u8).collect();
        for scale in [1.0 / rows as f32, 1.0, 0.0] {
            let case = format!("cross_entropy rows={rows} spread={spread} scale={scale}");
            worst = worst.max(compare(be, oracle, case, |r| {
                r.cross_entropy(&logits, &targets, rows, scale)
            }));
        }
    }
    report.push(("cross_entropy", worst));

    let mut worst = 0.0f64;
    for step in [1u64, 7, 1000] {
        let n = 1000;
        let p = randv(&mut rng, n, 1.0);
        let g = randv(&mut rng, n, 0.1);
        let m = randv(&mut rng, n, 0.01);
        let v: Vec<f32> = randv(&mut rng, n, 0.01).iter().map(|x| x * x).collect();
        let s = AdamWStep {
            lr: 3e-3,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            grad_scale: 0.7,
            step,
        };
        // Elements 900.. belong to no segment and must stay untouched.
        let seg = [(0..300, true), (300..301, false), (301..600, true), (600..900, false)];
        let case = format!("adamw step={step}");
        worst = worst.max(compare(be, oracle, case, |r| r.adamw(&p, &g, &m, &v, &s, &seg)));
    }
    report.push(("adamw", worst));

    let mut worst = 0.0f64;
    for &(windows, t_len, d, chunk) in &[
        (1usize, 1usize, 1usize, 64usize),
        (2, 9, 3, 4),
        (3, 100, 8, 16),
        (2, 64, 5, 64),
        (1, 77, 4, 1),
        (2, 50, 40, 7),
    ] {
        let zh = randv(&mut rng, windows * t_len * 2 * d, 2.0);
        let dh = randv(&mut rng, windows * t_len * d, 1.0);
        let case = format!("scan windows={windows} t_len={t_len} d={d} chunk={chunk}");
        worst =
            worst.max(compare(be, oracle, case, |r| r.scan(&zh, &dh, windows, t_len, d, chunk)));
    }
    report.push(("scan", worst));

    let mut worst = 0.0f64;
    for &(windows, t_len, d, kmax) in &[
        (1usize, 1usize, 1usize, 1usize),
        (3, 9, 4, 5),
        (2, 40, 40, 8),
        (1, 3, 2, 5),
        (2, 5, 3, 0),
    ] {
        let u = randv(&mut rng, windows * t_len * d, 1.0);
        let weff = randv(&mut rng, kmax * d, 0.5);
        let dc = randv(&mut rng, windows * t_len * d, 1.0);
        let dw0 = randv(&mut rng, kmax * d, 1.0);
        let case = format!("conv windows={windows} t_len={t_len} d={d} kmax={kmax}");
        worst = worst.max(compare(be, oracle, case, |r| {
            r.conv(&u, &weff, &dc, &dw0, windows, t_len, d, kmax)
        }));
    }
    report.push(("conv", worst));

    let mut worst = 0.0f64;
    for &(len, y_off, x_off, n, alpha, beta) in &[
        (1usize, 0usize, 0usize, 1usize, 1.0f32, 0.0f32),
        (100, 3, 17, 80, -0.5, 1.0),
        (5000, 40, 0, 4900, 2.0, 0.5),
        (10, 4, 2, 0, 1.0, 1.0),
    ] {
        // β = 0 must ignore y entirely, even NaN.
        let y = if beta == 0.0 { vec![f32::NAN; len] } else { randv(&mut rng, len, 1.0) };
        let x = randv(&mut rng, len, 1.0);
        let case = format!("axpby len={len} y_off={y_off} x_off={x_off} n={n} α={alpha} β={beta}");
        worst =
            worst.max(compare(be, oracle, case, |r| r.axpby(&y, &x, y_off, x_off, alpha, beta, n)));
    }
    report.push(("axpby/fill", worst));

    let mut worst = 0.0f64;
    for &(rows, d, alphabet) in
        &[(1usize, 1usize, 256usize), (37, 5, 4), (300, 40, 256), (64, 300, 3)]
    {
        let table = randv(&mut rng, VOCAB * d, 1.0);
        let dx = randv(&mut rng, rows * d, 1.0);
        let dt0 = randv(&mut rng, VOCAB * d, 1.0);
        // A small alphabet makes many rows share a token (the scatter-add's conflicts).
        let tokens: Vec<u8> = (0..rows).map(|_| rng.below(alphabet as u64) as u8).collect();
        let case = format!("embed rows={rows} d={d} alphabet={alphabet}");
        worst = worst.max(compare(be, oracle, case, |r| r.embed(&table, &dx, &dt0, &tokens, d)));
    }
    report.push(("embed", worst));

    let mut worst = 0.0f64;
    for &(rows, s, spread) in
        &[(1usize, 1usize, 1.0f64), (9, 3, 2.0), (70, 64, 3.0), (5, 300, 20.0)]
    {
        let x = randv(&mut rng, rows * s, spread);
        let dalpha = randv(&mut rng, rows * s, 1.0);
        for scale in [1.0f32, 0.125] {
            let case = format!("softmax rows={rows} s={s} spread={spread} scale={scale}");
            worst =
                worst.max(compare(be, oracle, case, |r| r.softmax(&x, &dalpha, rows, s, scale)));
        }
    }
    report.push(("softmax", worst));

    let mut worst = 0.0f64;
    for &(sizes, slots) in &[(&[1usize][..], 1usize), (&[7, 300, 1], 4), (&[100_000, 3, 4097], 256)]
    {
        let xs: Vec<Vec<f32>> = sizes.iter().map(|&n| randv(&mut rng, n, 1.0)).collect();
        let case = format!("sum_squares sizes={sizes:?} slots={slots}");
        worst = worst.max(compare(be, oracle, case, |r| r.sum_squares(&xs, slots)));
    }
    report.push(("sum_squares", worst));

    let mut worst = 0.0f64;
    for &(d, steps) in &[(1usize, 1usize), (5, 7), (300, 3)] {
        let h = randv(&mut rng, d, 1.0);
        let zhs: Vec<Vec<f32>> = (0..steps).map(|_| randv(&mut rng, 2 * d, 2.0)).collect();
        let case = format!("scan_step d={d} steps={steps}");
        worst = worst.max(compare(be, oracle, case, |r| r.scan_step(&h, &zhs, d)));
    }
    report.push(("scan_step", worst));

    println!("{} vs {}:", be.name(), oracle.name());
    for (op, w) in report {
        println!("  {op:<14} worst relative error {w:.2e}");
    }
}

/// Every operation rejects buffers too short for the shape with a typed error, without touching
/// memory out of bounds or panicking.
fn rejects_bad_shapes<B: Backend>(be: &B) {
    let shape = |r: Result<(), BackendError>, what: &str| {
        assert!(matches!(r, Err(BackendError::Shape { .. })), "{}: {what}: {r:?}", be.name());
    };
    let z = |n| be.zeros(n).unwrap();
    let (mut a, b, mut c) = (z(6), z(6), z(3));
    shape(be.matmul(&MatmulSpec::new(2, 2, 3, false, false), &a, &b, &mut c), "matmul short C");
    let (mut r, x) = (z(1), z(8));
    shape(be.rmsnorm_forward(&mut a, &mut r, &x, &b, 2, 4), "rmsnorm short gamma");
    shape(be.rmsnorm_forward(&mut a, &mut r, &x, &b, 2, 0), "rmsnorm zero width");
    let mut dg = z(4);
    shape(be.rmsnorm_backward(&mut a, &mut dg, &x, &x, &r, &x, 2, 4), "rmsnorm_backward short dx");
    shape(be.swiglu_forward(&mut a, &b, 2, 3), "swiglu short gu");
    let mut dgu = z(12);
    shape(be.swiglu_backward(&mut dgu, &b, &b, 2, 3), "swiglu_backward short gu");
    let mut logits = z(VOCAB * 2);
    let t = be.upload_tokens(&[1]).unwrap();
    let mut loss = z(2);
    shape(be.cross_entropy(&mut logits, &mut loss, &t, 2, 1.0), "cross_entropy short targets");
    let (mut p, g, mut m, mut v) = (z(4), z(4), z(4), z(3));
    let s = AdamWStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
        grad_scale: 1.0,
        step: 1,
    };
    shape(
        be.adamw_update(&mut p, &g, &mut m, &mut v, &s, &[(0..3, true)]),
        "adamw unequal lengths",
    );
    let mut v = z(4);
    shape(
        be.adamw_update(&mut p, &g, &mut m, &mut v, &s, &[(2..5, true)]),
        "adamw segment outside",
    );
    shape(
        be.adamw_update(&mut p, &g, &mut m, &mut v, &AdamWStep { step: 0, ..s }, &[]),
        "adamw step 0",
    );
    let (mut h, mut dec, zh) = (z(6), z(6), z(11));
    shape(be.scan_forward(&mut h, &mut dec, &zh, 2, 3, 1, 2), "scan short zh");
    let mut dzh = z(12);
    shape(be.scan_backward(&mut dzh, &h, &zh, &h, 2, 3, 1), "scan_backward short zh");
    let (mut cc, u, w) = (z(6), z(6), z(5));
    shape(be.conv_forward(&mut cc, &u, &w, 1, 3, 2, 3), "conv short weff");
    let mut dw = z(6);
    shape(be.conv_backward(&mut cc, &mut dw, &u, &u, &w, 1, 3, 2, 3), "conv_backward short weff");
    let (mut y, x) = (z(5), z(5));
    shape(be.axpby(&mut y, 2, 1.0, &x, 0, 1.0, 4), "axpby y range outside");
    shape(be.axpby(&mut y, 0, 1.0, &x, 3, 1.0, 3), "axpby x range outside");
    shape(be.axpby(&mut y, usize::MAX, 1.0, &x, 0, 1.0, 2), "axpby overflow");
    let (mut xe, table) = (z(6), z(VOCAB * 3 - 1));
    let tk = be.upload_tokens(&[1, 2]).unwrap();
    shape(be.embed_forward(&mut xe, &table, &tk, 2, 3), "embed short table");
    shape(be.embed_forward(&mut xe, &z(VOCAB * 3), &tk, 3, 2), "embed short tokens");
    let mut dt = z(VOCAB * 3);
    shape(be.embed_backward(&mut dt, &z(5), &tk, 2, 3), "embed_backward short dx");
    let mut sm = z(5);
    shape(be.softmax_forward(&mut sm, 2, 3), "softmax short x");
    shape(be.softmax_forward(&mut sm, 2, 0), "softmax zero width");
    shape(be.softmax_backward(&mut z(6), &sm, 2, 3, 1.0), "softmax_backward short alpha");
    shape(be.sum_squares(&mut z(0), &sm), "sum_squares empty accumulator");
    shape(be.scan_step(&mut z(3), &z(5), 3), "scan_step short zh");
    shape(be.scan_step(&mut z(2), &z(6), 3), "scan_step short h");
}

#[test]
fn cpu_backend_agrees_with_reference_loops() {
    agreement(&CpuBackend::new(), &RefBackend);
}

/// `upload_into` overwrites a buffer in the order of the queued operations: an operation queued
/// before it sees the old contents, one queued after sees the new; a wrong length is a shape
/// error that changes nothing.
fn upload_into_is_ordered<B: Backend>(be: &B) {
    let n = 1000;
    let old: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let new: Vec<f32> = (0..n).map(|i| -(i as f32) * 0.5).collect();
    let mut w = be.upload(&old).unwrap();
    let mut before = be.zeros(n).unwrap();
    let mut after = be.zeros(n).unwrap();
    // Queued before the write: copies the old contents.
    be.axpby(&mut before, 0, 1.0, &w, 0, 0.0, n).unwrap();
    be.upload_into(&mut w, &new).unwrap();
    // Queued after: copies the new ones.
    be.axpby(&mut after, 0, 1.0, &w, 0, 0.0, n).unwrap();
    assert_eq!(be.download(&before).unwrap(), old, "{}", be.name());
    assert_eq!(be.download(&after).unwrap(), new, "{}", be.name());
    assert_eq!(be.download(&w).unwrap(), new, "{}", be.name());
    // A fill queued before a write does not land after it.
    be.fill(&mut w, 7.0).unwrap();
    be.upload_into(&mut w, &old).unwrap();
    assert_eq!(be.download(&w).unwrap(), old, "{}", be.name());
    let err = be.upload_into(&mut w, &new[..n - 1]).unwrap_err();
    assert!(matches!(err, BackendError::Shape { op: "upload_into", .. }), "{err}");
    assert_eq!(be.download(&w).unwrap(), old, "{}", be.name());
}

#[test]
fn cpu_backend_upload_into_is_ordered() {
    upload_into_is_ordered(&CpuBackend::new());
}

#[test]
fn cpu_backend_rejects_bad_shapes() {
    rejects_bad_shapes(&CpuBackend::new());
}

/// A reference that is deliberately wrong in one place must be caught (the harness can fail).
#[test]
fn harness_detects_a_wrong_result() {
    let want = [1.0f32, -2.0, 3.0];
    assert_close("self-check", "exact", &want, &want);
    let bad = [1.0f32, -2.0, 3.001];
    assert!(close("self-check", "perturbed", &bad, &want).is_err(), "3e-4 relative must fail");
    let near = [1.0f32, -2.0, 3.0001];
    assert!(close("self-check", "near", &near, &want).is_ok(), "3e-5 relative must pass");
    assert!(close("self-check", "nan", &[1.0, f32::NAN, 3.0], &want).is_err(), "NaN must fail");
}

// ---------------------------------------------------------------------------------------------
// Finite-difference gradient checks of the backward operations on the CPU backend.
// ---------------------------------------------------------------------------------------------

/// Central differences of `loss` (accumulated in f64 from the backend's f32 outputs) at `x`
/// against `analytic`, at every index. f32 forward passes limit the accuracy, so the step is 1e-2
/// and the tolerance 1e-2 relative with a floor of 1e-2.
fn check_grad(name: &str, loss: &dyn Fn(&[f32]) -> f64, x: &[f32], analytic: &[f32]) {
    let eps = 1e-2f32;
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        let orig = xp[i];
        xp[i] = orig + eps;
        let fp = loss(&xp);
        xp[i] = orig - eps;
        let fm = loss(&xp);
        xp[i] = orig;
        let num = (fp - fm) / (2.0 * eps as f64);
        let a = analytic[i] as f64;
        let err = (num - a).abs() / num.abs().max(a.abs()).max(1e-2);
        assert!(err < 1e-2, "{name}[{i}]: analytic {a} vs numeric {num} (rel err {err:e})");
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

#[test]
fn cpu_backward_ops_match_finite_differences() {
    let be = CpuBackend::new();
    let mut rng = Rng::new(77);

    // RMSNorm: L = Σ proj ⊙ y.
    let (rows, d) = (4, 6);
    let x = randv(&mut rng, rows * d, 1.0);
    let gamma: Vec<f32> = randv(&mut rng, d, 0.2).iter().map(|v| v + 1.0).collect();
    let proj = randv(&mut rng, rows * d, 1.0);
    let fwd = |x: &[f32], g: &[f32]| {
        let (mut y, mut r) = (vec![0.0; rows * d], vec![0.0; rows]);
        be.rmsnorm_forward(&mut y, &mut r, &x.to_vec(), &g.to_vec(), rows, d).unwrap();
        (y, r)
    };
    let (_, r) = fwd(&x, &gamma);
    let (mut dx, mut dg) = (vec![0.0; rows * d], vec![0.0; d]);
    be.rmsnorm_backward(&mut dx, &mut dg, &proj, &x, &r, &gamma, rows, d).unwrap();
    check_grad("rmsnorm.x", &|x| dot(&fwd(x, &gamma).0, &proj), &x, &dx);
    check_grad("rmsnorm.gamma", &|g| dot(&fwd(&x, g).0, &proj), &gamma, &dg);

    // SwiGLU: L = Σ proj ⊙ p.
    let (rows, f) = (3, 5);
    let gu = randv(&mut rng, rows * 2 * f, 1.5);
    let proj = randv(&mut rng, rows * f, 1.0);
    let fwd = |gu: &[f32]| {
        let mut p = vec![0.0; rows * f];
        be.swiglu_forward(&mut p, &gu.to_vec(), rows, f).unwrap();
        p
    };
    let mut dgu = vec![0.0; rows * 2 * f];
    be.swiglu_backward(&mut dgu, &proj, &gu, rows, f).unwrap();
    check_grad("swiglu.gu", &|g| dot(&fwd(g), &proj), &gu, &dgu);

    // Cross-entropy: L = Σ loss (scale 1), gradient returned in place of the logits.
    let rows = 2;
    let logits = randv(&mut rng, rows * VOCAB, 2.0);
    let targets = vec![3u8, 250];
    let losses = |l: &[f32]| {
        let (mut l, mut loss) = (l.to_vec(), vec![0.0; rows]);
        be.cross_entropy(&mut l, &mut loss, &targets, rows, 1.0).unwrap();
        (loss.iter().map(|&v| v as f64).sum::<f64>(), l)
    };
    let (_, grad) = losses(&logits);
    check_grad("cross_entropy.logits", &|l| losses(l).0, &logits, &grad);

    // Scan: L = Σ proj ⊙ h, chunked so all three phases run.
    let (windows, t_len, d, chunk) = (2, 7, 3, 3);
    let mut zh = randv(&mut rng, windows * t_len * 2 * d, 1.0);
    for v in zh.iter_mut() {
        // Keep h̃ and k away from g's kink at 0 by more than the finite-difference step.
        if v.abs() < 0.05 {
            *v += 0.1;
        }
    }
    let proj = randv(&mut rng, windows * t_len * d, 1.0);
    let fwd = |zh: &[f32]| {
        let (mut h, mut dec) = (vec![0.0; windows * t_len * d], vec![0.0; windows * t_len * d]);
        be.scan_forward(&mut h, &mut dec, &zh.to_vec(), windows, t_len, d, chunk).unwrap();
        h
    };
    let h = fwd(&zh);
    let mut dzh = vec![0.0; zh.len()];
    be.scan_backward(&mut dzh, &proj, &zh, &h, windows, t_len, d).unwrap();
    check_grad("scan.zh", &|z| dot(&fwd(z), &proj), &zh, &dzh);

    // Conv: L = Σ proj ⊙ c, with respect to u and the merged kernel.
    let (windows, t_len, d, kmax) = (2, 6, 3, 4);
    let u = randv(&mut rng, windows * t_len * d, 1.0);
    let weff = randv(&mut rng, kmax * d, 0.5);
    let proj = randv(&mut rng, windows * t_len * d, 1.0);
    let fwd = |u: &[f32], w: &[f32]| {
        let mut c = vec![0.0; windows * t_len * d];
        be.conv_forward(&mut c, &u.to_vec(), &w.to_vec(), windows, t_len, d, kmax).unwrap();
        c
    };
    let (mut du, mut dw) = (vec![0.0; u.len()], vec![0.0; weff.len()]);
    be.conv_backward(&mut du, &mut dw, &proj, &u, &weff, windows, t_len, d, kmax).unwrap();
    check_grad("conv.u", &|u| dot(&fwd(u, &weff), &proj), &u, &du);
    check_grad("conv.weff", &|w| dot(&fwd(&u, w), &proj), &weff, &dw);

    // Softmax: L = Σ proj ⊙ softmax(x) with the backward's score scale 1.
    let (rows, s) = (3, 5);
    let x = randv(&mut rng, rows * s, 1.0);
    let proj = randv(&mut rng, rows * s, 1.0);
    let fwd = |x: &[f32]| {
        let mut a = x.to_vec();
        be.softmax_forward(&mut a, rows, s).unwrap();
        a
    };
    let mut ds = proj.clone();
    be.softmax_backward(&mut ds, &fwd(&x), rows, s, 1.0).unwrap();
    check_grad("softmax.x", &|x| dot(&fwd(x), &proj), &x, &ds);

    // Embedding: L = Σ proj ⊙ x(table), with repeated tokens.
    let (d, tokens) = (3, vec![5u8, 9, 5, 200, 9, 5]);
    let table = randv(&mut rng, VOCAB * d, 1.0);
    let proj = randv(&mut rng, tokens.len() * d, 1.0);
    let fwd = |t: &[f32]| {
        let mut x = vec![0.0; tokens.len() * d];
        be.embed_forward(&mut x, &t.to_vec(), &tokens, tokens.len(), d).unwrap();
        x
    };
    let mut dt = vec![0.0; table.len()];
    be.embed_backward(&mut dt, &proj, &tokens, tokens.len(), d).unwrap();
    check_grad("embed.table", &|t| dot(&fwd(t), &proj), &table, &dt);
}

// ---------------------------------------------------------------------------------------------
// Device backends.
// ---------------------------------------------------------------------------------------------

/// A device backend against the CPU engine and directly against the definitions, after checking it
/// rejects bad shapes.
#[cfg(any(feature = "cuda", feature = "vulkan"))]
fn check_device<B: Backend>(be: &B) {
    println!("device: {}", be.name());
    rejects_bad_shapes(be);
    upload_into_is_ordered(be);
    agreement(be, &CpuBackend::new());
    agreement(be, &RefBackend);
}

/// Reports a device test skipped because `e` says the device or a library is absent (`what`), or
/// fails it when the environment variable `require` is set.
#[cfg(any(feature = "cuda", feature = "vulkan"))]
fn skip_unless_required(require: &str, what: &str, e: &BackendError) {
    assert!(std::env::var_os(require).is_none(), "{require} is set but: {e}");
    println!("{what}: skipped ({e})");
}

// ---------------------------------------------------------------------------------------------
// CUDA.
// ---------------------------------------------------------------------------------------------

/// CUDA against the CPU engine. Skips (and passes) only when the driver, a device or a CUDA library
/// is absent, and not even then under `RNET_REQUIRE_CUDA`; any other failure (a kernel that does not
/// compile, a driver error) fails.
#[cfg(feature = "cuda")]
#[test]
fn cuda_backend_agrees_with_cpu() {
    use rnet_gpu::CudaBackend;
    let be = match CudaBackend::new(0) {
        Ok(be) => be,
        Err(
            e @ (BackendError::NoDriver
            | BackendError::NoDevice { .. }
            | BackendError::MissingLibrary(_)),
        ) => {
            skip_unless_required("RNET_REQUIRE_CUDA", "no CUDA device", &e);
            return;
        }
        Err(e) => panic!("CUDA backend failed to start: {e}"),
    };
    check_device(&be);
}

/// The kernels compile with NVRTC for the GPUs the project targets (Ampere, Ada, Hopper). Needs
/// only the NVRTC library, not a GPU: skipped (and passing) when NVRTC is absent, unless
/// `RNET_REQUIRE_CUDA` is set.
#[cfg(feature = "cuda")]
#[test]
fn cuda_kernels_compile_with_nvrtc() {
    use rnet_gpu::CudaBackend;
    for (major, minor) in [(8, 0), (8, 9), (9, 0)] {
        match CudaBackend::compile_kernels(major, minor) {
            Ok(ptx) => {
                for name in CudaBackend::KERNEL_NAMES {
                    assert!(
                        ptx.contains(&format!(".entry {name}(")),
                        "sm_{major}{minor}: no kernel {name}"
                    );
                }
                println!(
                    "sm_{major}{minor}: {} kernels, {} bytes of PTX",
                    CudaBackend::KERNEL_NAMES.len(),
                    ptx.len()
                );
            }
            Err(e @ BackendError::MissingLibrary(_)) => {
                skip_unless_required("RNET_REQUIRE_CUDA", "no NVRTC", &e);
                return;
            }
            Err(e) => panic!("sm_{major}{minor}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Vulkan.
// ---------------------------------------------------------------------------------------------

/// The Vulkan adapter to test: `RNET_VULKAN_ADAPTER` (default 0).
#[cfg(feature = "vulkan")]
fn vulkan_adapter() -> usize {
    std::env::var("RNET_VULKAN_ADAPTER").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Vulkan against the CPU engine and the definitions. Skips (and passes) only when there is no
/// Vulkan adapter, and not even then under `RNET_REQUIRE_VULKAN`; any other failure (a kernel that
/// does not compile, a device error) fails.
#[cfg(feature = "vulkan")]
#[test]
fn vulkan_backend_agrees_with_cpu() {
    use rnet_gpu::WgpuBackend;
    let be = match WgpuBackend::new(vulkan_adapter()) {
        Ok(be) => be,
        Err(e @ BackendError::NoAdapter { .. }) => {
            skip_unless_required("RNET_REQUIRE_VULKAN", "no Vulkan adapter", &e);
            return;
        }
        Err(e) => panic!("Vulkan backend failed to start: {e}"),
    };
    check_device(&be);
}

/// Both matrix–vector kernels of the Vulkan backend (one invocation per column, the default on
/// software rasterisers; one workgroup per column, the default on GPUs) against the CPU engine,
/// whichever the adapter would pick.
#[cfg(feature = "vulkan")]
#[test]
fn vulkan_matrix_vector_kernels_agree_with_cpu() {
    use rnet_gpu::WgpuBackend;
    for column in [true, false] {
        let be = match WgpuBackend::new(vulkan_adapter()) {
            Ok(be) => be.with_column_matvec(column),
            Err(e @ BackendError::NoAdapter { .. }) => {
                skip_unless_required("RNET_REQUIRE_VULKAN", "no Vulkan adapter", &e);
                return;
            }
            Err(e) => panic!("Vulkan backend failed to start: {e}"),
        };
        let worst = matvec_agreement(&be, &CpuBackend::new(), &mut Rng::new(21));
        println!("column kernel {column}: worst relative error {worst:.2e}");
    }
}

/// The WGSL kernels parse and validate with naga (no adapter needed) and define every entry point
/// the backend creates a pipeline for.
#[cfg(feature = "vulkan")]
#[test]
fn vulkan_kernels_validate_with_naga() {
    use rnet_gpu::WgpuBackend;
    let names = WgpuBackend::validate_kernels().unwrap_or_else(|e| panic!("{e}"));
    for want in WgpuBackend::KERNEL_NAMES {
        assert!(names.iter().any(|n| n == want), "no entry point {want} in {names:?}");
    }
    assert_eq!(names.len(), WgpuBackend::KERNEL_NAMES.len(), "{names:?}");
}
