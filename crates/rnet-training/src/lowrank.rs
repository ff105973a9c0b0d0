//! Low-rank (LoRA / ReLoRA-style) training: the base weights stay frozen and every adapted matrix
//! `W [rows, cols]` trains two factors `U [rows, r]`, `V [r, cols]`, so the weight the network
//! uses is `W + s·U·V` with the scale `s = alpha / √r` (rank-stabilised LoRA). `U` starts at zero
//! (training starts exactly at the parent's function), `V` is drawn `N(0, 1/cols)` from a seeded
//! generator. Before export `s` is folded into `U`, so the exported entry is exactly the §5.2
//! `W += U·V` with no scale (protocol Part III §5.2).
//!
//! Gradients are exact: the trainer materialises `W + s·U·V` into its parameter buffer, the
//! ordinary backward pass gives `G = ∂L/∂W_eff`, and the chain rule gives
//! `∂L/∂U = s·G·Vᵀ` and `∂L/∂V = s·Uᵀ·G` ([`factor_gradients`]). This costs a few `rows·cols·r`
//! products per step on top of the full-rank step (the full weight gradient is still formed).
//!
//! Tensors that are not adapted (by default the RMSNorm gains and the conv filters) are either
//! frozen or trained in full and exported as replacement entries ([`OtherTensors`]).
//!
//! ReLoRA's "merge and restart" ([`crate::Trainer::merge_and_restart`]) merges the update into the
//! base with `rnet_model::apply` itself (bit for bit what a node computes) and restarts the
//! factors, so consecutive blocks' updates add up to a full-rank change.

use std::ops::Range;

use rayon::prelude::*;
use rnet_model::update_apply::matrix_dims;
use rnet_model::{
    Layout, Model, ModelConfig, ModelError, ModelUpdate, TensorSpec, UpdateEntry, UpdateError,
    UpdateLimits,
};
use thiserror::Error;

use crate::linalg::gemm_strided;
use crate::optimizer::AdamW;
use crate::real::Real;
use crate::rng::Rng;

/// What happens to the tensors that carry no adapter (RMSNorm gains, conv filters by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtherTensors {
    /// They keep the parent's values and are not in the update (a pure low-rank update).
    #[default]
    Frozen,
    /// They are trained in full with AdamW and exported as replacement entries (each costs
    /// `13 + 4·len` bytes; the gains and conv filters are about 3% of the parameters).
    Replace,
}

/// Settings of low-rank training.
#[derive(Clone, Debug, PartialEq)]
pub struct LowRankConfig {
    /// Rank `r` of every adapter (the update's rank; must not exceed the chain's `max_rank`).
    pub rank: usize,
    /// Scale numerator: the adapter adds `(alpha / √r)·U·V` during training (folded into `U`
    /// on export). Default 16 (tuned at the regtest shape; see `docs/training.md`).
    pub alpha: f32,
    /// Treatment of the tensors without an adapter.
    pub other: OtherTensors,
    /// Names of the tensors to adapt; empty means [`default_targets`]. Each must be 2-D.
    pub tensors: Vec<String>,
    /// Seed of the factor initialisation (each restart draws a fresh stream of it).
    pub seed: u64,
}

impl Default for LowRankConfig {
    fn default() -> Self {
        Self { rank: 16, alpha: 16.0, other: OtherTensors::Frozen, tensors: Vec::new(), seed: 0 }
    }
}

/// Why low-rank training cannot be set up or exported.
#[derive(Debug, Error)]
pub enum LowRankError {
    /// The rank is zero or does not fit a u32.
    #[error("rank {0} is not in 1..=u32::MAX")]
    Rank(usize),
    /// The scale numerator is not a positive finite number.
    #[error("alpha {0} must be positive and finite")]
    Alpha(f32),
    /// An adapter names a tensor the model does not have.
    #[error("no tensor called {0:?}")]
    UnknownTensor(String),
    /// An adapter names a tensor that is not 2-D (a gain).
    #[error("tensor {0:?} is not a matrix and cannot carry a low-rank adapter")]
    NotAMatrix(String),
    /// An adapter is named twice.
    #[error("tensor {0:?} is listed twice")]
    Duplicate(String),
    /// The merged weights would not be finite (training diverged).
    #[error("merging the update makes tensor {0} non-finite")]
    NonFiniteResult(String),
    /// Building or applying the update failed.
    #[error(transparent)]
    Update(#[from] UpdateError),
    /// The base parameters do not form a model.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The tensors adapted by default: every 2-D tensor except the conv filters — `embed`, `head` and
/// per layer `gru.wz gru.wh gru.wo slot.wq slot.keys slot.values slot.wm ffn.w_gate ffn.w_up
/// ffn.w_down` (the matrices §5.2 sizes its low-rank updates for, 97% of the parameters).
pub fn default_targets(layout: &Layout) -> Vec<String> {
    layout
        .tensors
        .iter()
        .filter(|t| t.shape.len() == 2 && !t.name.contains(".conv."))
        .map(|t| t.name.clone())
        .collect()
}

/// `w [rows, cols] += scale · u [rows, rank] · v [rank, cols]` (row-major), through `gemm`.
#[allow(clippy::too_many_arguments)]
pub fn add_product<R: Real>(
    w: &mut [R],
    u: &[R],
    v: &[R],
    rows: usize,
    cols: usize,
    rank: usize,
    scale: R,
) {
    gemm_strided(rows, cols, rank, w, cols, 1, true, u, rank, 1, v, cols, 1, scale);
}

/// Factor gradients of `W + scale·U·V` given `g = ∂L/∂(W + scale·U·V)` `[rows, cols]`:
/// `gu = scale · g · Vᵀ` `[rows, rank]` and `gv = scale · Uᵀ · g` `[rank, cols]` (overwritten).
#[allow(clippy::too_many_arguments)]
pub fn factor_gradients<R: Real>(
    gu: &mut [R],
    gv: &mut [R],
    g: &[R],
    u: &[R],
    v: &[R],
    rows: usize,
    cols: usize,
    rank: usize,
    scale: R,
) {
    gemm_strided(rows, rank, cols, gu, rank, 1, false, g, cols, 1, v, 1, cols, scale);
    gemm_strided(rank, cols, rows, gv, cols, 1, false, u, 1, rank, g, cols, 1, scale);
}

/// `w + u·v` with the §5.2 arithmetic (per element: `s = +0.0`, `s = s + u[i,k]·v[k,j]` for
/// `k = 0, 1, …` with every product rounded to f32, then `w + s`), rows in parallel. Used to see
/// whether an entry lands on a subnormal before it is exported; `rnet_model::apply` remains the
/// reference.
fn canonical_merge(w: &[f32], u: &[f32], v: &[f32], cols: usize, rank: usize) -> Vec<f32> {
    let mut out = w.to_vec();
    out.par_chunks_mut(cols).zip(u.par_chunks(rank)).for_each(|(row, u_row)| {
        let mut acc = vec![0.0f32; cols];
        for (k, &a) in u_row.iter().enumerate() {
            for (s, &b) in acc.iter_mut().zip(&v[k * cols..(k + 1) * cols]) {
                let p = a * b;
                *s += p;
            }
        }
        for (x, s) in row.iter_mut().zip(&acc) {
            *x += *s;
        }
    });
    out
}

fn flush(x: f32) -> f32 {
    if x.is_subnormal() { 0.0 } else { x }
}

/// One adapted matrix: where it lives in the model and where its factors live in `theta`.
#[derive(Clone, Debug)]
struct Adapter {
    name: String,
    params: Range<usize>,
    rows: usize,
    cols: usize,
    u: Range<usize>,
    v: Range<usize>,
}

/// A tensor trained in full ([`OtherTensors::Replace`]).
#[derive(Clone, Debug)]
struct Free {
    name: String,
    params: Range<usize>,
    theta: Range<usize>,
}

/// The trainable state of low-rank mode: frozen base, factors (and free tensors) with their AdamW
/// moments. Owned by the [`crate::Trainer`].
#[derive(Clone, Debug)]
pub(crate) struct LowRankState {
    pub(crate) config: LowRankConfig,
    model: ModelConfig,
    scale: f32,
    adapters: Vec<Adapter>,
    free: Vec<Free>,
    /// The base weights (the parent, or the last merge).
    pub(crate) base: Vec<f32>,
    /// Every trainable value: per adapter `U` then `V`, then the free tensors.
    theta: Vec<f32>,
    /// Gradient of `theta`.
    pub(crate) grad: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    /// AdamW updates since the last restart (bias correction).
    step: u64,
    segments: Vec<(Range<usize>, bool)>,
    restarts: u64,
}

fn find<'a>(layout: &'a Layout, name: &str) -> Result<&'a TensorSpec, LowRankError> {
    layout
        .tensors
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| LowRankError::UnknownTensor(name.to_string()))
}

impl LowRankState {
    /// Sets up adapters for `base` (flat, layout order) of shape `model`.
    pub(crate) fn new(
        config: LowRankConfig,
        model: &ModelConfig,
        layout: &Layout,
        base: Vec<f32>,
    ) -> Result<Self, LowRankError> {
        if config.rank == 0 || u32::try_from(config.rank).is_err() {
            return Err(LowRankError::Rank(config.rank));
        }
        if !(config.alpha.is_finite() && config.alpha > 0.0) {
            return Err(LowRankError::Alpha(config.alpha));
        }
        let names = if config.tensors.is_empty() {
            default_targets(layout)
        } else {
            config.tensors.clone()
        };
        let r = config.rank;
        let mut adapters = Vec::with_capacity(names.len());
        let mut segments = Vec::new();
        let mut n = 0usize;
        for (i, name) in names.iter().enumerate() {
            let spec = find(layout, name)?;
            if spec.shape.len() != 2 {
                return Err(LowRankError::NotAMatrix(name.clone()));
            }
            if names[..i].contains(name) {
                return Err(LowRankError::Duplicate(name.clone()));
            }
            let (rows, cols) = (spec.shape[0], spec.shape[1]);
            let u = n..n + rows * r;
            let v = u.end..u.end + r * cols;
            n = v.end;
            segments.push((u.start..v.end, true));
            adapters.push(Adapter { name: name.clone(), params: spec.range(), rows, cols, u, v });
        }
        let mut free = Vec::new();
        if config.other == OtherTensors::Replace {
            for spec in layout.tensors.iter().filter(|t| !names.contains(&t.name)) {
                let theta = n..n + spec.len();
                n = theta.end;
                segments.push((theta.clone(), spec.shape.len() >= 2));
                free.push(Free { name: spec.name.clone(), params: spec.range(), theta });
            }
        }
        let scale = config.alpha / (r as f32).sqrt();
        let mut s = Self {
            config,
            model: model.clone(),
            scale,
            adapters,
            free,
            base,
            theta: vec![0.0; n],
            grad: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
            step: 0,
            segments,
            restarts: 0,
        };
        s.restart();
        Ok(s)
    }

    /// Fresh factors (`U = 0`, `V ~ N(0, 1/cols)` from stream `restarts` of the seed), free tensors
    /// at the base values, zero moments.
    fn restart(&mut self) {
        let mut rng = Rng::for_stream(self.config.seed, self.restarts);
        for a in &self.adapters {
            self.theta[a.u.clone()].fill(0.0);
            let std = 1.0 / (a.cols as f64).sqrt();
            for x in &mut self.theta[a.v.clone()] {
                *x = (rng.normal() * std) as f32;
            }
        }
        for f in &self.free {
            self.theta[f.theta.clone()].copy_from_slice(&self.base[f.params.clone()]);
        }
        self.m.fill(0.0);
        self.v.fill(0.0);
        self.step = 0;
        self.restarts += 1;
    }

    /// Writes the effective weights `base + s·U·V` (and the free tensors) into `params`.
    pub(crate) fn effective(&self, params: &mut [f32]) {
        let r = self.config.rank;
        for a in &self.adapters {
            let w = &mut params[a.params.clone()];
            w.copy_from_slice(&self.base[a.params.clone()]);
            let (u, v) = (&self.theta[a.u.clone()], &self.theta[a.v.clone()]);
            add_product(w, u, v, a.rows, a.cols, r, self.scale);
        }
        for f in &self.free {
            params[f.params.clone()].copy_from_slice(&self.theta[f.theta.clone()]);
        }
    }

    /// Fills `self.grad` from the full gradient `g` of the effective weights.
    pub(crate) fn gather(&mut self, g: &[f32]) {
        let r = self.config.rank;
        for a in &self.adapters {
            let (gu, gv) = self.grad[a.u.start..a.v.end].split_at_mut(a.u.len());
            let (u, v) = (&self.theta[a.u.clone()], &self.theta[a.v.clone()]);
            factor_gradients(gu, gv, &g[a.params.clone()], u, v, a.rows, a.cols, r, self.scale);
        }
        for f in &self.free {
            self.grad[f.theta.clone()].copy_from_slice(&g[f.params.clone()]);
        }
    }

    /// One AdamW update of the factors (and free tensors) with the gathered gradient.
    pub(crate) fn adam_step(&mut self, opt: &AdamW, grad_scale: f32) {
        opt.update_segments(
            &mut self.theta,
            &self.grad,
            grad_scale,
            &mut self.m,
            &mut self.v,
            &mut self.step,
            &self.segments,
        );
    }

    /// The update taking the base to the trained weights: one low-rank entry per adapter with
    /// `U·(alpha/√r)` folded into `U` (subnormal factor values flushed to zero), or a replacement
    /// entry where the §5.2 merge would land on a subnormal; with [`OtherTensors::Replace`] a
    /// replacement entry per free tensor that changed.
    pub(crate) fn to_update(&self, layout: &Layout) -> Result<ModelUpdate, LowRankError> {
        let r = self.config.rank;
        let mut entries = Vec::with_capacity(self.adapters.len() + self.free.len());
        for a in &self.adapters {
            let u: Vec<f32> =
                self.theta[a.u.clone()].iter().map(|&x| flush(x * self.scale)).collect();
            let v: Vec<f32> = self.theta[a.v.clone()].iter().map(|&x| flush(x)).collect();
            let merged = canonical_merge(&self.base[a.params.clone()], &u, &v, a.cols, r);
            if merged.iter().any(|x| !x.is_finite()) {
                return Err(LowRankError::NonFiniteResult(a.name.clone()));
            }
            entries.push(if merged.iter().any(|x| x.is_subnormal()) {
                UpdateEntry::replace(layout, &a.name, merged.into_iter().map(flush).collect())?
            } else {
                UpdateEntry::low_rank(layout, &a.name, r as u32, u, v)?
            });
        }
        for f in &self.free {
            let values: Vec<f32> = self.theta[f.theta.clone()].iter().map(|&x| flush(x)).collect();
            if values.iter().any(|x| !x.is_finite()) {
                return Err(LowRankError::NonFiniteResult(f.name.clone()));
            }
            let base = &self.base[f.params.clone()];
            if values.iter().zip(base).any(|(a, b)| a.to_bits() != b.to_bits()) {
                entries.push(UpdateEntry::replace(layout, &f.name, values)?);
            }
        }
        debug_assert!(entries.iter().all(|e| {
            let spec = &layout.tensors[e.tensor() as usize];
            matrix_dims(spec) == (e.dims().0 as u64, e.dims().1 as u64)
        }));
        Ok(ModelUpdate::new(self.model.clone(), entries).map_err(UpdateError::from)?)
    }

    /// ReLoRA merge and restart: the base becomes `rnet_model::apply(base, update)` (exactly the
    /// model a node derives from this update), the factors and their moments restart. Returns the
    /// merged update.
    pub(crate) fn merge_and_restart(
        &mut self,
        layout: &Layout,
    ) -> Result<ModelUpdate, LowRankError> {
        let update = self.to_update(layout)?;
        let model = Model::from_parts(self.model.clone(), self.base.clone())?;
        let limits = UpdateLimits { max_update_bytes: u64::MAX, max_rank: self.config.rank as u32 };
        self.base = rnet_model::apply(&model, &update, &limits, 0)?.model.into_parts().1;
        self.restart();
        Ok(update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{random_params, tiny_config};
    use crate::model::{ScanMode, Workspace, backward, forward};

    /// The factor gradients through `W + s·U·V`, for every default adapter of a tiny model, agree
    /// with central differences of the whole model's loss in `f64`.
    #[test]
    fn factor_gradients_match_finite_differences() {
        let cfg = tiny_config();
        let layout = Layout::new(&cfg);
        let base = random_params(&layout, 61);
        let mut rng = Rng::new(62);
        let (rank, scale) = (2usize, 0.7f64);
        let targets = default_targets(&layout);
        assert_eq!(targets.len(), 2 + 10 * cfg.n_layers);
        // Non-zero U and V so both gradients are non-trivial.
        let factors: Vec<(Vec<f64>, Vec<f64>)> = targets
            .iter()
            .map(|name| {
                let s = &layout.tensors.iter().find(|t| &t.name == name).unwrap().shape;
                let u = (0..s[0] * rank).map(|_| 0.3 * rng.normal()).collect();
                let v = (0..rank * s[1]).map(|_| 0.3 * rng.normal()).collect();
                (u, v)
            })
            .collect();
        let spec = |name: &str| layout.tensors.iter().find(|t| t.name == name).unwrap().clone();
        let effective = |factors: &[(Vec<f64>, Vec<f64>)]| {
            let mut p = base.clone();
            for (name, (u, v)) in targets.iter().zip(factors) {
                let t = spec(name);
                add_product(&mut p[t.range()], u, v, t.shape[0], t.shape[1], rank, scale);
            }
            p
        };
        let t_len = cfg.window;
        let inputs: Vec<u8> = (0..2 * t_len).map(|_| b'a' + rng.below(5) as u8).collect();
        let targets_b: Vec<u8> = (0..2 * t_len).map(|_| rng.below(256) as u8).collect();
        let mut ws = Workspace::<f64>::new();
        let p = effective(&factors);
        let scan = ScanMode::Sequential;
        forward(&cfg, &layout, &p, &inputs, &targets_b, t_len, &mut ws, scan, true);
        let mut g = vec![0.0; layout.total];
        backward(&cfg, &layout, &p, &mut g, &mut ws);

        let eps = 1e-5;
        let mut checked = 0;
        for (ti, name) in targets.iter().enumerate() {
            let t = spec(name);
            let (rows, cols) = (t.shape[0], t.shape[1]);
            let (u, v) = &factors[ti];
            let mut gu = vec![0.0; rows * rank];
            let mut gv = vec![0.0; rank * cols];
            factor_gradients(&mut gu, &mut gv, &g[t.range()], u, v, rows, cols, rank, scale);
            for (which, len) in [(0usize, u.len()), (1, v.len())] {
                // Four entries spread over each factor.
                for i in (0..4).map(|k| k * (len - 1) / 3) {
                    let mut f = factors.clone();
                    let at = |f: &mut Vec<(Vec<f64>, Vec<f64>)>, x: f64| {
                        if which == 0 { f[ti].0[i] = x } else { f[ti].1[i] = x }
                    };
                    let orig = if which == 0 { u[i] } else { v[i] };
                    let mut loss = |f: &Vec<(Vec<f64>, Vec<f64>)>| {
                        let p = effective(f);
                        forward(&cfg, &layout, &p, &inputs, &targets_b, t_len, &mut ws, scan, false)
                    };
                    at(&mut f, orig + eps);
                    let lp = loss(&f);
                    at(&mut f, orig - eps);
                    let lm = loss(&f);
                    let num = (lp - lm) / (2.0 * eps);
                    let ana = if which == 0 { gu[i] } else { gv[i] };
                    let err = (num - ana).abs() / num.abs().max(ana.abs()).max(1e-4);
                    assert!(
                        err < 1e-4,
                        "{name} {}[{i}]: analytic {ana} numeric {num} rel err {err:e}",
                        if which == 0 { "U" } else { "V" }
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 8 * targets.len());
    }

    /// The local §5.2 merge agrees bit for bit with `rnet_model::apply`.
    #[test]
    fn canonical_merge_matches_rnet_model_apply() {
        let cfg = tiny_config();
        let layout = Layout::new(&cfg);
        let base: Vec<f32> = random_params(&layout, 71).iter().map(|&x| x as f32).collect();
        let model = Model::from_parts(cfg.clone(), base.clone()).unwrap();
        let mut rng = Rng::new(72);
        let t = layout.tensors.iter().find(|t| t.name == "layers.1.ffn.w_up").unwrap();
        let (rows, cols, r) = (t.shape[0], t.shape[1], 3);
        let u: Vec<f32> = (0..rows * r).map(|_| rng.normal() as f32).collect();
        let v: Vec<f32> = (0..r * cols).map(|_| rng.normal() as f32).collect();
        let mine = canonical_merge(&base[t.range()], &u, &v, cols, r);
        let e = UpdateEntry::low_rank(&layout, &t.name, r as u32, u, v).unwrap();
        let update = ModelUpdate::new(cfg, vec![e]).unwrap();
        let limits = UpdateLimits { max_update_bytes: u64::MAX, max_rank: 3 };
        let ck = rnet_model::apply(&model, &update, &limits, 0).unwrap();
        let theirs = &ck.model.params()[t.range()];
        assert!(mine.iter().zip(theirs).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
