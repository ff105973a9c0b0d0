//! Function-preserving growth to a larger `(d, L)` and the consensus growth schedule.
//!
//! # Growth (not consensus: how a miner initialises new weights is its business)
//!
//! Growing from width `d` to `d' ≥ d` with `c = sqrt(d'/d)`:
//! - The residual stream is scaled by `c` and padded with zeros: `embed'[:, :d] = c·embed`,
//!   `embed'[:, d:] = 0`, and every residual writer (`wo`, `wm`, `w_down`) has its old block
//!   multiplied by `c` and zero rows for the new residual dims. Then `mean(x'²)` over `d'` equals
//!   `mean(x²)` over `d` *exactly* (not just up to the epsilon), so
//!   `RMSNorm(x')·γ' = c·RMSNorm(x)·γ'`; every gain (`norm1..3`, `norm_f`) becomes `γ/c` on the old
//!   dims (and `1/c` on the new ones, which only ever see zeros) and all normalised activations are
//!   unchanged, with zeros in the new dims.
//! - New units (new minGRU channels, slot-mix dims, FFN units) get fresh random input-side weights
//!   (the new rows of `wz`, `wh`, `wq`, `w_gate`, `w_up`, new conv channels, new `values` columns,
//!   new `head` columns, and every new input column — those read zeros) and zero output sides (new
//!   columns of `wo`, `wm`, `w_down`), so they break symmetry without changing the function.
//! - Slot scores use `1/sqrt(d')` instead of `1/sqrt(d)`: the old block of `wq` is multiplied by
//!   `c` and new `keys` columns are zero (the new rows of `q` meet only zeros).
//! - New layers are appended after the old ones with fresh input sides and all-zero `wo`, `wm`,
//!   `w_down`: each adds exactly zero to the residual, so it is the identity.
//!
//! The grown model computes the same losses up to f32 rounding of the scaled weights.
//!
//! # Schedule (consensus)
//!
//! Per block, with `s` the stagnation count: `step = 2·(1 + ⌊s/10⌋)`;
//! `d' = min(cap_d, d + step)` (never below `d`; `cap_d` rounded down to even); the cumulative
//! width growth becomes `g' = g + (d' − d)`; `L' = min(cap_L, L + ⌊g'/128⌋ − ⌊g/128⌋)` (never
//! below `L`). Without stagnation the shape at height `h` is `d = min(cap_d, d₀ + 2h)`,
//! `L = min(cap_L, L₀ + ⌊(d − d₀)/128⌋)`.

use thiserror::Error;

use crate::config::{ConfigError, ModelConfig, ModelNetwork};
use crate::model::{Model, ModelError};

/// Width growth per extra layer.
pub const UNITS_PER_LAYER: usize = 128;

/// A growth request that is not an enlargement of a valid model.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GrowthError {
    /// The new width or depth is smaller than the old one.
    #[error("cannot shrink from (d = {from_d}, L = {from_l}) to (d = {to_d}, L = {to_l})")]
    Shrink {
        /// Old width.
        from_d: usize,
        /// Old depth.
        from_l: usize,
        /// Requested width.
        to_d: usize,
        /// Requested depth.
        to_l: usize,
    },
    /// The new shape is not a valid config.
    #[error("invalid grown config: {0}")]
    InvalidConfig(#[from] ConfigError),
}

/// Grows `model` to width `new_d` and depth `new_l`, preserving its function (module docs); new
/// input-side weights come from `Model::init(grown_config, seed)`.
pub fn grow(model: &Model, new_d: usize, new_l: usize, seed: u64) -> Result<Model, GrowthError> {
    let old_cfg = model.config();
    let (d, l) = (old_cfg.d_model, old_cfg.n_layers);
    if new_d < d || new_l < l {
        return Err(GrowthError::Shrink { from_d: d, from_l: l, to_d: new_d, to_l: new_l });
    }
    let new_cfg = old_cfg.with_shape(new_d, new_l);
    new_cfg.validate()?;
    let mut grown = match Model::init(new_cfg.clone(), seed) {
        Ok(m) => m,
        Err(ModelError::InvalidConfig(e)) => return Err(e.into()),
        Err(ModelError::ParamCount { .. }) => unreachable!("init sizes its own buffer"),
    };
    let c = ((new_d as f64) / (d as f64)).sqrt() as f32;
    let inv_c = ((d as f64) / (new_d as f64)).sqrt() as f32;
    let (f, new_f) = (old_cfg.d_ff, new_cfg.d_ff);
    let old_layout = model.layout().clone();
    let new_layout = grown.layout().clone();
    let src = model.params();
    let dst = grown.params_mut();

    // Copy `rows × cols` of an old `[_, old_cols]` matrix into the top-left of a new
    // `[_, new_cols]` one, multiplied by `scale`.
    let copy_block = |dst: &mut [f32],
                      src: &[f32],
                      rows: usize,
                      old_cols: usize,
                      new_cols: usize,
                      scale: f32| {
        for r in 0..rows {
            for k in 0..old_cols {
                dst[r * new_cols + k] = src[r * old_cols + k] * scale;
            }
        }
    };
    // Zero every entry outside the old `rows × cols` block (output side of new units/dims).
    let zero_outside = |dst: &mut [f32], rows: usize, cols: usize, new_cols: usize| {
        for (r, row) in dst.chunks_exact_mut(new_cols).enumerate() {
            for (k, v) in row.iter_mut().enumerate() {
                if r >= rows || k >= cols {
                    *v = 0.0;
                }
            }
        }
    };
    let norm = |dst: &mut [f32], src: &[f32]| {
        for (k, v) in dst.iter_mut().enumerate() {
            *v = if k < src.len() { src[k] * inv_c } else { inv_c };
        }
    };

    // embed [256, d]: scaled by c, zero in the new dims.
    {
        let e = &mut dst[new_layout.embed.clone()];
        e.fill(0.0);
        copy_block(e, &src[old_layout.embed.clone()], 256, d, new_d, c);
    }
    for (i, nl) in new_layout.layers.iter().enumerate() {
        let Some(ol) = old_layout.layers.get(i) else {
            // A new layer: identity through zero output projections.
            dst[nl.wo.clone()].fill(0.0);
            dst[nl.wm.clone()].fill(0.0);
            dst[nl.w_down.clone()].fill(0.0);
            continue;
        };
        norm(&mut dst[nl.norm1.clone()], &src[ol.norm1.clone()]);
        norm(&mut dst[nl.norm2.clone()], &src[ol.norm2.clone()]);
        norm(&mut dst[nl.norm3.clone()], &src[ol.norm3.clone()]);
        for ((nr, or), &k) in nl.conv.iter().zip(&ol.conv).zip(&old_cfg.kernel_sizes) {
            copy_block(&mut dst[nr.clone()], &src[or.clone()], k, d, new_d, 1.0);
        }
        // Input sides: old block kept, new rows and columns stay as freshly initialised.
        copy_block(&mut dst[nl.wz.clone()], &src[ol.wz.clone()], d, d, new_d, 1.0);
        copy_block(&mut dst[nl.wh.clone()], &src[ol.wh.clone()], d, d, new_d, 1.0);
        copy_block(&mut dst[nl.wq.clone()], &src[ol.wq.clone()], d, d, new_d, c);
        let s = old_cfg.n_slots;
        copy_block(&mut dst[nl.keys.clone()], &src[ol.keys.clone()], s, d, new_d, 1.0);
        zero_outside(&mut dst[nl.keys.clone()], s, d, new_d);
        copy_block(&mut dst[nl.values.clone()], &src[ol.values.clone()], s, d, new_d, 1.0);
        copy_block(&mut dst[nl.w_gate.clone()], &src[ol.w_gate.clone()], f, d, new_d, 1.0);
        copy_block(&mut dst[nl.w_up.clone()], &src[ol.w_up.clone()], f, d, new_d, 1.0);
        // Output sides: old block times c, zero elsewhere.
        for (nr, or, old_cols, new_cols) in [
            (&nl.wo, &ol.wo, d, new_d),
            (&nl.wm, &ol.wm, d, new_d),
            (&nl.w_down, &ol.w_down, f, new_f),
        ] {
            let t = &mut dst[nr.clone()];
            zero_outside(t, d, old_cols, new_cols);
            copy_block(t, &src[or.clone()], d, old_cols, new_cols, c);
        }
    }
    norm(&mut dst[new_layout.norm_f.clone()], &src[old_layout.norm_f.clone()]);
    copy_block(
        &mut dst[new_layout.head.clone()],
        &src[old_layout.head.clone()],
        256,
        d,
        new_d,
        1.0,
    );
    Ok(grown)
}

/// Width and depth caps of a chain (consensus chain parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrowthCaps {
    /// Largest `d_model`.
    pub max_d_model: usize,
    /// Largest `n_layers`.
    pub max_layers: usize,
}

impl GrowthCaps {
    /// Mainnet: 4096 / 48.
    pub const MAINNET: Self = Self { max_d_model: 4096, max_layers: 48 };
    /// Testnet: as mainnet.
    pub const TESTNET: Self = Self { max_d_model: 4096, max_layers: 48 };
    /// Regtest: tiny, so long regtest chains stay cheap (64 / 2: reached at height 16).
    pub const REGTEST: Self = Self { max_d_model: 64, max_layers: 2 };

    /// The caps of `network` (`rnet_consensus::ChainParams` uses exactly these).
    pub fn for_network(network: ModelNetwork) -> Self {
        match network {
            ModelNetwork::Mainnet => Self::MAINNET,
            ModelNetwork::Testnet => Self::TESTNET,
            ModelNetwork::Regtest => Self::REGTEST,
        }
    }
}

/// Width added by one block with stagnation count `stagnation`: `2·(1 + ⌊stagnation/10⌋)`
/// (saturating).
pub fn width_step(stagnation: u64) -> usize {
    let s = usize::try_from(stagnation / 10).unwrap_or(usize::MAX);
    s.saturating_add(1).saturating_mul(2)
}

/// The shape of the next block: `prev = (d, L)`, `cumulative_growth` = total width growth since
/// genesis up to and including the previous block. The new cumulative growth is
/// `cumulative_growth + (d' − d)`.
pub fn next_shape(
    prev: (usize, usize),
    cumulative_growth: usize,
    stagnation: u64,
    caps: GrowthCaps,
) -> (usize, usize) {
    let (d, l) = prev;
    let cap_d = caps.max_d_model & !1;
    let new_d = if d >= cap_d { d } else { d.saturating_add(width_step(stagnation)).min(cap_d) };
    let new_growth = cumulative_growth.saturating_add(new_d - d);
    let added = new_growth / UNITS_PER_LAYER - cumulative_growth / UNITS_PER_LAYER;
    let new_l = if l >= caps.max_layers { l } else { l.saturating_add(added).min(caps.max_layers) };
    (new_d, new_l)
}

/// The shape at `height` for a chain that never stagnates, from `genesis = (d₀, L₀)`: the same as
/// applying [`next_shape`] `height` times with stagnation 0.
pub fn shape_at_height(genesis: (usize, usize), height: u64, caps: GrowthCaps) -> (usize, usize) {
    let (d0, l0) = genesis;
    let cap_d = caps.max_d_model & !1;
    let d = if d0 >= cap_d {
        d0
    } else {
        let h = usize::try_from(height).unwrap_or(usize::MAX);
        d0.saturating_add(h.saturating_mul(2)).min(cap_d)
    };
    let l = if l0 >= caps.max_layers {
        l0
    } else {
        (l0 + (d - d0) / UNITS_PER_LAYER).min(caps.max_layers)
    };
    (d, l)
}

/// The config at `height` for a chain that never stagnates (see [`shape_at_height`]).
pub fn config_at_height(genesis: &ModelConfig, height: u64, caps: GrowthCaps) -> ModelConfig {
    let (d, l) = shape_at_height((genesis.d_model, genesis.n_layers), height, caps);
    genesis.with_shape(d, l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_follows_the_formulas() {
        let caps = GrowthCaps::MAINNET;
        assert_eq!(width_step(0), 2);
        assert_eq!(width_step(9), 2);
        assert_eq!(width_step(10), 4);
        assert_eq!(width_step(25), 6);
        assert_eq!(next_shape((384, 6), 0, 0, caps), (386, 6));
        assert_eq!(next_shape((384, 6), 126, 0, caps), (386, 7));
        assert_eq!(next_shape((384, 6), 127, 0, caps), (386, 7));
        assert_eq!(next_shape((384, 6), 124, 0, caps), (386, 6));
        assert_eq!(next_shape((384, 6), 0, 30, caps), (392, 6));
        assert_eq!(next_shape((4094, 20), 0, 50, caps), (4096, 20));
        assert_eq!(next_shape((4096, 20), 3712, 0, caps), (4096, 20));
        assert_eq!(next_shape((4000, 48), 254, 0, caps), (4002, 48));
        assert_eq!(next_shape((10, 1), 0, u64::MAX, caps), (4096, 1 + 4086 / 128));
        // Odd cap rounds down.
        let odd = GrowthCaps { max_d_model: 41, max_layers: 4 };
        assert_eq!(next_shape((38, 2), 0, 0, odd), (40, 2));
        assert_eq!(next_shape((40, 2), 2, 0, odd), (40, 2));
    }

    #[test]
    fn shape_at_height_equals_iterating_next_shape() {
        for (genesis, caps) in [
            ((384, 6), GrowthCaps::MAINNET),
            ((32, 2), GrowthCaps::REGTEST),
            ((128, 4), GrowthCaps { max_d_model: 1000, max_layers: 9 }),
        ] {
            let mut shape = genesis;
            let mut growth = 0;
            for h in 0..2500u64 {
                assert_eq!(shape_at_height(genesis, h, caps), shape, "height {h}");
                let next = next_shape(shape, growth, 0, caps);
                growth += next.0 - shape.0;
                shape = next;
            }
        }
        assert_eq!(shape_at_height((384, 6), 0, GrowthCaps::MAINNET), (384, 6));
        assert_eq!(shape_at_height((384, 6), 64, GrowthCaps::MAINNET), (512, 7));
        assert_eq!(shape_at_height((384, 6), 1856, GrowthCaps::MAINNET), (4096, 35));
        assert_eq!(shape_at_height((384, 6), u64::MAX, GrowthCaps::MAINNET), (4096, 35));
        let g = ModelConfig::genesis(ModelNetwork::Regtest);
        let c = config_at_height(&g, 10, GrowthCaps::REGTEST);
        assert_eq!((c.d_model, c.n_layers, c.d_ff), (52, 2, 104));
        c.validate().unwrap();
    }

    #[test]
    fn shrinking_is_refused() {
        let m = Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 0).unwrap();
        assert!(matches!(grow(&m, 30, 2, 0), Err(GrowthError::Shrink { .. })));
        assert!(matches!(grow(&m, 32, 1, 0), Err(GrowthError::Shrink { .. })));
        assert!(matches!(grow(&m, 33, 2, 0), Err(GrowthError::InvalidConfig(_))));
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs()
    }

    #[test]
    fn growth_preserves_the_loss() {
        use crate::data::excerpt;
        use crate::evaluator::evaluate;
        use crate::test_util::{random_bytes, random_config, random_model};
        let regtest = ModelConfig::genesis(ModelNetwork::Regtest);
        let data = excerpt(ModelNetwork::Regtest);
        let base = random_model(regtest.clone(), 21);
        let before = evaluate(&base, data).unwrap().mean_nats;
        for (new_d, new_l) in [(32, 3), (34, 2), (34, 3), (48, 4), (96, 2)] {
            let grown = grow(&base, new_d, new_l, 77).unwrap();
            assert_eq!(grown.config(), &regtest.with_shape(new_d, new_l));
            let after = evaluate(&grown, data).unwrap().mean_nats;
            assert!(rel(after, before) < 1e-5, "({new_d}, {new_l}): {after} vs {before}");
        }
        // Random small shapes and data, several growth steps in a row.
        for seed in 0..12u64 {
            let cfg = random_config(300 + seed);
            let mut m = random_model(cfg.clone(), seed);
            let data = random_bytes(3 * cfg.window + 5, seed);
            let before = evaluate(&m, &data).unwrap().mean_nats;
            for step in 1..=3 {
                let (d, l) = (m.config().d_model, m.config().n_layers);
                m = grow(&m, d + 2 * step, l + (step % 2), seed + step as u64).unwrap();
                let after = evaluate(&m, &data).unwrap().mean_nats;
                assert!(rel(after, before) < 1e-5, "seed {seed} step {step}: {after} vs {before}");
            }
        }
    }

    #[test]
    fn growth_along_the_schedule() {
        use crate::data::excerpt;
        use crate::evaluator::evaluate;
        let genesis = ModelConfig::genesis(ModelNetwork::Regtest);
        let caps = GrowthCaps { max_d_model: 256, max_layers: 8 };
        let data = &excerpt(ModelNetwork::Regtest)[..3 * genesis.window + 1];
        let mut m = crate::test_util::random_model(genesis.clone(), 5);
        let before = evaluate(&m, data).unwrap().mean_nats;
        let mut growth = 0;
        // Heights with and without stagnation; the third block crosses 128 units of growth and
        // adds a layer.
        for (h, stagnation) in [(1u64, 600u64), (2, 0), (3, 10), (4, 0)] {
            let prev = (m.config().d_model, m.config().n_layers);
            let (d, l) = next_shape(prev, growth, stagnation, caps);
            growth += d - prev.0;
            assert_eq!(d, prev.0 + width_step(stagnation));
            m = grow(&m, d, l, h).unwrap();
            let after = evaluate(&m, data).unwrap().mean_nats;
            assert!(rel(after, before) < 1e-5, "height {h}: {after} vs {before}");
        }
        assert_eq!(m.config().d_model, 32 + growth);
        assert_eq!(m.config().n_layers, 2 + growth / 128);
        assert!(m.config().n_layers > 2);
    }

    #[test]
    fn new_units_are_random_on_input_and_zero_on_output() {
        let m = Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 0).unwrap();
        let g = grow(&m, 36, 3, 9).unwrap();
        let (d, nd) = (32, 36);
        let wz = g.tensor("layers.0.gru.wz").unwrap();
        assert!(wz[d * nd..].iter().any(|&v| v != 0.0), "new rows of wz are random");
        let wo = g.tensor("layers.0.gru.wo").unwrap();
        for r in 0..nd {
            for k in 0..nd {
                if r >= d || k >= d {
                    assert_eq!(wo[r * nd + k], 0.0);
                }
            }
        }
        for name in ["layers.2.gru.wo", "layers.2.slot.wm", "layers.2.ffn.w_down"] {
            assert!(g.tensor(name).unwrap().iter().all(|&v| v == 0.0), "{name}");
        }
        assert!(g.tensor("layers.2.gru.wz").unwrap().iter().any(|&v| v != 0.0));
        let e = g.tensor("embed").unwrap();
        assert!((0..256).all(|b| e[b * nd + d..(b + 1) * nd].iter().all(|&v| v == 0.0)));
    }
}
