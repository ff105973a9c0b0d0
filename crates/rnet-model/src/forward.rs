//! The V5 forward pass over a block of consecutive positions, batched over positions.
//!
//! One function, [`forward_block`], serves both the evaluator (a fresh state per window, the whole
//! window as one block) and the recurrent step (one position at a time, or a prompt as one block):
//! every output element is computed by the same sequence of f32 operations either way, so the step
//! and the window forward agree bit for bit. The operation order is the consensus definition written
//! in `docs/protocol.md (Part III)`.

use crate::config::VOCAB;
use crate::kernels::{self, Store};
use crate::model::Model;
use crate::step::RecurrentState;

/// Working buffers of one forward block, reused across calls (sized for the longest block seen).
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    x: Vec<f32>,
    upad: Vec<f32>,
    c: Vec<f32>,
    zp: Vec<f32>,
    hp: Vec<f32>,
    hs: Vec<f32>,
    tmp: Vec<f32>,
    q: Vec<f32>,
    sc: Vec<f32>,
    mix: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    logits: Vec<f32>,
}

fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

impl Scratch {
    /// The logits of the last block run through [`forward_block`], `[n_t, 256]`.
    pub fn logits(&self, n_t: usize) -> &[f32] {
        &self.logits[..n_t * VOCAB]
    }
}

/// Runs `inputs` (bytes at consecutive positions) through `model`, starting from `state` and
/// leaving it after the last input. The logits of every position land in `s` (see
/// [`Scratch::logits`]). `state` must have been made for `model.config()` (checked by callers).
pub(crate) fn forward_block(
    model: &Model,
    state: &mut RecurrentState,
    inputs: &[u8],
    s: &mut Scratch,
) {
    let cfg = model.config();
    let lay = model.layout();
    let prm = model.params();
    let (d, n_s, f) = (cfg.d_model, cfg.n_slots, cfg.d_ff);
    let n_t = inputs.len();
    if n_t == 0 {
        return;
    }
    let hist_len = cfg.max_kernel() - 1;
    let scale = 1.0f32 / (d as f32).sqrt();

    // x_t = embed[byte_t]
    let x = sized(&mut s.x, n_t * d);
    let embed = &prm[lay.embed.clone()];
    for (row, &b) in x.chunks_exact_mut(d).zip(inputs) {
        row.copy_from_slice(&embed[b as usize * d..(b as usize + 1) * d]);
    }

    for (li, l) in lay.layers.iter().enumerate() {
        // 1. u = RMSNorm(x)·norm1, placed after the conv history in `upad`.
        let upad = sized(&mut s.upad, (hist_len + n_t) * d);
        let hist = &mut state.hist[li * hist_len * d..(li + 1) * hist_len * d];
        upad[..hist_len * d].copy_from_slice(hist);
        kernels::rms_norm(&s.x[..n_t * d], &prm[l.norm1.clone()], &mut upad[hist_len * d..]);
        // c_t = Σ_b Σ_k conv.b[k] ⊙ u_{t−k}, from 0.0, b then k increasing.
        let c = sized(&mut s.c, n_t * d);
        let branches: Vec<(&[f32], usize)> = l
            .conv
            .iter()
            .zip(&cfg.kernel_sizes)
            .map(|(range, &kb)| (&prm[range.clone()], kb))
            .collect();
        kernels::causal_conv(&branches, upad, hist_len, d, c);
        hist.copy_from_slice(&upad[n_t * d..(n_t + hist_len) * d]);

        // 2. minGRU: z = σ(wz c), h̃ = wh c, h_t = (1 − z) ⊙ h_{t−1} + z ⊙ g(h̃), x += wo h.
        let zp = sized(&mut s.zp, n_t * d);
        kernels::matmul(&prm[l.wz.clone()], d, d, &s.c[..n_t * d], n_t, zp, Store::Overwrite);
        let hp = sized(&mut s.hp, n_t * d);
        kernels::matmul(&prm[l.wh.clone()], d, d, &s.c[..n_t * d], n_t, hp, Store::Overwrite);
        // z = σ(zp) and g(h̃) for every position at once (the exponentials eight at a time).
        crate::expf::sigmoid_in_place(&mut s.zp[..n_t * d]);
        crate::expf::gru_g_in_place(&mut s.hp[..n_t * d]);
        let hs = sized(&mut s.hs, n_t * d);
        let h = &mut state.h[li * d..(li + 1) * d];
        for ((hrow, zrow), grow) in
            hs.chunks_exact_mut(d).zip(s.zp.chunks_exact(d)).zip(s.hp.chunks_exact(d))
        {
            for (((hv, out), &z), &g) in h.iter_mut().zip(hrow).zip(zrow).zip(grow) {
                *hv = (1.0 - z) * *hv + z * g;
                *out = *hv;
            }
        }
        kernels::matmul(&prm[l.wo.clone()], d, d, &s.hs[..n_t * d], n_t, &mut s.x, Store::Add);

        // 3. Slot memory: v = RMSNorm(x)·norm2, α = softmax((wq v)·keys_s · (1/sqrt d)),
        //    x += wm Σ_s α_s values_s.
        let tmp = sized(&mut s.tmp, n_t * d);
        kernels::rms_norm(&s.x[..n_t * d], &prm[l.norm2.clone()], tmp);
        let q = sized(&mut s.q, n_t * d);
        kernels::matmul(&prm[l.wq.clone()], d, d, &s.tmp[..n_t * d], n_t, q, Store::Overwrite);
        let sc = sized(&mut s.sc, n_t * n_s);
        kernels::matmul(&prm[l.keys.clone()], n_s, d, &s.q[..n_t * d], n_t, sc, Store::Overwrite);
        for row in sc.chunks_exact_mut(n_s) {
            for v in row.iter_mut() {
                *v *= scale;
            }
            kernels::softmax_in_place(row);
        }
        let mix = sized(&mut s.mix, n_t * d);
        kernels::weighted_rows(&s.sc[..n_t * n_s], &prm[l.values.clone()], n_s, d, mix);
        kernels::matmul(&prm[l.wm.clone()], d, d, &s.mix[..n_t * d], n_t, &mut s.x, Store::Add);

        // 4. SwiGLU: w = RMSNorm(x)·norm3, x += w_down (SiLU(w_gate w) ⊙ (w_up w)).
        let tmp = &mut s.tmp[..n_t * d];
        kernels::rms_norm(&s.x[..n_t * d], &prm[l.norm3.clone()], tmp);
        let gate = sized(&mut s.gate, n_t * f);
        kernels::matmul(&prm[l.w_gate.clone()], f, d, tmp, n_t, gate, Store::Overwrite);
        let up = sized(&mut s.up, n_t * f);
        kernels::matmul(&prm[l.w_up.clone()], f, d, tmp, n_t, up, Store::Overwrite);
        crate::expf::silu_mul_in_place(gate, up);
        kernels::matmul(&prm[l.w_down.clone()], d, f, gate, n_t, &mut s.x, Store::Add);
    }

    // logits = head · (RMSNorm(x)·norm_f)
    let tmp = &mut s.tmp[..n_t * d];
    kernels::rms_norm(&s.x[..n_t * d], &prm[lay.norm_f.clone()], tmp);
    let logits = sized(&mut s.logits, n_t * VOCAB);
    kernels::matmul(&prm[lay.head.clone()], VOCAB, d, tmp, n_t, logits, Store::Overwrite);
    state.position += n_t as u64;
}

/// The logits `[inputs.len(), 256]` of one window: `inputs` run from a fresh (zero) state.
pub fn window_logits(model: &Model, inputs: &[u8]) -> Vec<f32> {
    let mut state = RecurrentState::new(model.config());
    let mut s = Scratch::default();
    forward_block(model, &mut state, inputs, &mut s);
    s.logits(inputs.len()).to_vec()
}

/// Per-position cross-entropies (nats, f32) of one window: inputs `window[..n−1]` from a fresh
/// state predict `window[1..]`. Empty when `window` has fewer than two bytes.
pub fn window_losses(model: &Model, window: &[u8]) -> Vec<f32> {
    let mut state = RecurrentState::new(model.config());
    let mut s = Scratch::default();
    window_losses_with(model, window, &mut state, &mut s)
}

/// [`window_losses`] with caller-provided buffers; `state` must be fresh.
pub(crate) fn window_losses_with(
    model: &Model,
    window: &[u8],
    state: &mut RecurrentState,
    s: &mut Scratch,
) -> Vec<f32> {
    if window.len() < 2 {
        return Vec::new();
    }
    let inputs = &window[..window.len() - 1];
    forward_block(model, state, inputs, s);
    s.logits(inputs.len())
        .chunks_exact(VOCAB)
        .zip(&window[1..])
        .map(|(l, &target)| kernels::cross_entropy(l, target as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, ModelNetwork};
    use crate::evaluator::{evaluate, windows};
    use crate::test_util::{random_bytes, random_config, random_model, reference_losses};

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1.0)
    }

    #[test]
    fn fast_forward_matches_the_f64_reference_on_random_models() {
        for seed in 0..40u64 {
            let cfg = random_config(seed);
            let model = random_model(cfg.clone(), seed);
            let data = random_bytes(2 + (seed as usize * 7) % 50, seed);
            let want = reference_losses(&model, &data);
            let mut got = Vec::new();
            for r in windows(data.len(), cfg.window) {
                got.extend(window_losses(&model, &data[r.start..r.end + 1]));
            }
            assert_eq!(got.len(), want.len());
            for (t, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(close(g as f64, w, 1e-4), "seed {seed} cfg {cfg:?} pos {t}: {g} vs {w}");
            }
            let mean_ref = want.iter().sum::<f64>() / want.len() as f64;
            let eval = evaluate(&model, &data).unwrap();
            assert!(
                close(eval.mean_nats, mean_ref, 1e-4),
                "seed {seed}: {} vs {mean_ref}",
                eval.mean_nats
            );
            // The random models are far from uniform, so the comparison is sensitive.
            assert!((mean_ref - 256f64.ln()).abs() > 0.05, "seed {seed}: {mean_ref}");
        }
    }

    #[test]
    fn fast_forward_matches_the_reference_on_the_regtest_genesis_shape() {
        let cfg = ModelConfig::genesis(ModelNetwork::Regtest);
        let model = random_model(cfg.clone(), 99);
        let data = random_bytes(2 * cfg.window + 10, 5);
        let want = reference_losses(&model, &data);
        let eval = evaluate(&model, &data).unwrap();
        let mean_ref = want.iter().sum::<f64>() / want.len() as f64;
        assert!(close(eval.mean_nats, mean_ref, 1e-4), "{} vs {mean_ref}", eval.mean_nats);
    }

    #[test]
    fn initial_loss_is_close_to_uniform() {
        let cfg = ModelConfig::genesis(ModelNetwork::Regtest);
        let model = Model::init(cfg, 0).unwrap();
        let eval = evaluate(&model, crate::data::excerpt(ModelNetwork::Regtest)).unwrap();
        assert!((eval.mean_nats - 256f64.ln()).abs() < 0.05, "{}", eval.mean_nats);
    }
}
