//! The canonical evaluator: the consensus `val_loss` of a model on a byte string.
//!
//! Windowing: a dataset of `N ≥ 2` bytes has `P = N − 1` predictions. Window `w` (from 0) takes
//! the inputs `data[wT .. wT + n_w]` and predicts `data[wT + 1 .. wT + n_w + 1]` with
//! `n_w = min(T, P − wT)`; windows are taken while `wT < P`, so every byte but the first is predicted
//! exactly once and only the last window may be shorter. Each window starts from the zero state.
//!
//! Accumulation: each position's cross-entropy is an f32 (see [`kernels::cross_entropy`]); a
//! window's sum is `Σ_t (loss_t as f64)` from `0.0` in position order; the total is the f64 sum of
//! the window sums from `0.0` in window order. Windows run in parallel (rayon) but their sums are
//! collected by index and added sequentially, so the result does not depend on the thread count.
//!
//! Result: `val_loss = round_half_even(total · 10⁶ / P)` computed exactly on the rational value of
//! the f64 `total` (integer arithmetic, [`micronats`]); `mean_nats = total / P` is informational.
//! A non-finite total is an error (such a checkpoint can never be valid).

use rayon::prelude::*;
use thiserror::Error;

use crate::config::ModelConfig;
use crate::forward::{Scratch, window_losses_with};
use crate::kernels;
use crate::model::{Model, ModelError};
use crate::step::RecurrentState;

/// Longest dataset the evaluator accepts (1 TiB): keeps the exact rounding within `u128`.
pub const MAX_EVAL_BYTES: usize = 1 << 40;

/// The outcome of an evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalResult {
    /// The consensus value: mean next-byte cross-entropy in micro-nats per predicted byte,
    /// rounded half to even.
    pub val_loss_micronats: u64,
    /// The same mean in nats as an f64 (`total_nats / bytes`), informational.
    pub mean_nats: f64,
    /// The f64 sum of all per-position losses, in window order.
    pub total_nats: f64,
    /// Number of predicted bytes `P = data.len() − 1`.
    pub bytes: usize,
    /// Number of windows.
    pub windows: usize,
}

impl EvalResult {
    /// The mean loss in bits per byte (`mean_nats / ln 2`), for people.
    pub fn bits_per_byte(&self) -> f64 {
        self.mean_nats / std::f64::consts::LN_2
    }
}

/// Why a dataset could not be evaluated.
#[derive(Debug, Error, PartialEq)]
pub enum EvalError {
    /// Fewer than two bytes: nothing to predict.
    #[error("dataset of {0} bytes has nothing to predict (need at least 2)")]
    TooShort(usize),
    /// More than [`MAX_EVAL_BYTES`].
    #[error("dataset of {0} bytes exceeds the evaluator limit of {MAX_EVAL_BYTES}")]
    TooLong(usize),
    /// An explicit window ([`evaluate_windows`]) longer than the model's window plus one.
    #[error("window of {len} bytes exceeds the model window {window} + 1")]
    WindowTooLong {
        /// Bytes in the window.
        len: usize,
        /// The model's window `T`.
        window: usize,
    },
    /// The loss overflowed or became NaN: the model is numerically broken.
    #[error("loss is not finite (total {0})")]
    NonFinite(f64),
    /// Config or parameter buffer invalid (only from [`evaluate_params`]).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The input ranges of the evaluation windows of a dataset of `len` bytes with window length `t`
/// (see the module docs); window `w`'s targets are the same range shifted by one.
pub fn windows(len: usize, t: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let p = len.saturating_sub(1);
    let t = t.max(1);
    (0..p.div_ceil(t)).map(move |w| w * t..(w * t + t).min(p))
}

/// Evaluates `model` on `data` with the canonical rules (module docs). Parallel across windows on
/// the current rayon pool; bit-identical for any pool size.
pub fn evaluate(model: &Model, data: &[u8]) -> Result<EvalResult, EvalError> {
    if data.len() < 2 {
        return Err(EvalError::TooShort(data.len()));
    }
    if data.len() > MAX_EVAL_BYTES {
        return Err(EvalError::TooLong(data.len()));
    }
    let t = model.config().window;
    let slices: Vec<&[u8]> = windows(data.len(), t).map(|r| &data[r.start..r.end + 1]).collect();
    sum_windows(model, &slices)
}

/// Evaluates `model` on explicit windows: each slice of `n + 1` bytes (`1 ≤ n ≤ T`) is one
/// window of `n` predictions from the zero state, and the windows are accumulated in the given
/// order exactly as [`evaluate`] accumulates its own (window sums in f64, then their f64 sum).
/// This is how Proof-of-Training evaluates a block's sample: one window per corpus record, in
/// ascending record order. Bit-identical for any rayon pool size.
pub fn evaluate_windows(model: &Model, windows: &[&[u8]]) -> Result<EvalResult, EvalError> {
    let t = model.config().window;
    let mut predictions = 0usize;
    for w in windows {
        if w.len() < 2 {
            return Err(EvalError::TooShort(w.len()));
        }
        if w.len() > t + 1 {
            return Err(EvalError::WindowTooLong { len: w.len(), window: t });
        }
        predictions += w.len() - 1;
    }
    if windows.is_empty() {
        return Err(EvalError::TooShort(0));
    }
    if predictions > MAX_EVAL_BYTES {
        return Err(EvalError::TooLong(predictions));
    }
    sum_windows(model, windows)
}

/// The canonical accumulation over windows that are already cut (each ≤ T + 1 bytes, ≥ 2).
fn sum_windows(model: &Model, windows: &[&[u8]]) -> Result<EvalResult, EvalError> {
    let sums: Vec<f64> = windows
        .par_iter()
        .map_init(
            || (RecurrentState::new(model.config()), Scratch::default()),
            |(state, scratch), w| {
                state.reset();
                let losses = window_losses_with(model, w, state, scratch);
                let mut sum = 0.0f64;
                for l in losses {
                    sum += l as f64;
                }
                sum
            },
        )
        .collect();
    let mut total = 0.0f64;
    for s in &sums {
        total += *s;
    }
    let p: usize = windows.iter().map(|w| w.len() - 1).sum();
    if !total.is_finite() {
        return Err(EvalError::NonFinite(total));
    }
    Ok(EvalResult {
        val_loss_micronats: micronats(total, p as u64),
        mean_nats: total / p as f64,
        total_nats: total,
        bytes: p,
        windows: sums.len(),
    })
}

/// [`evaluate`] for a config and a borrowed parameter buffer (for the training engine).
pub fn evaluate_params(
    config: &ModelConfig,
    params: &[f32],
    data: &[u8],
) -> Result<EvalResult, EvalError> {
    let model = Model::from_parts(config.clone(), params.to_vec())?;
    evaluate(&model, data)
}

/// `round_half_even(total · 10⁶ / predictions)` computed exactly from the binary value of `total`
/// (finite, ≥ 0; negative values and `predictions = 0` give 0), saturating at `u64::MAX`.
pub fn micronats(total: f64, predictions: u64) -> u64 {
    if total.is_nan() || total <= 0.0 || predictions == 0 {
        return 0;
    }
    if !total.is_finite() {
        return u64::MAX;
    }
    let bits = total.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    // total = m · 2^e exactly.
    let (m, e) = if exp == 0 { (frac, -1074) } else { (frac | (1u64 << 52), exp - 1075) };
    let num = m as u128 * 1_000_000u128; // < 2^73
    let p = predictions as u128;
    let (num, den) = if e >= 0 {
        if e > 50 {
            return u64::MAX;
        }
        (num << e, p)
    } else {
        let s = (-e) as u32;
        let p_bits = 128 - p.leading_zeros();
        if s + p_bits > 74 {
            // den = p · 2^s ≥ 2^74 > 2 · num: the quotient is below 1/2 and rounds to zero.
            return 0;
        }
        (num, p << s)
    };
    let q = num / den;
    let r = num % den;
    let q = if 2 * r > den || (2 * r == den && q % 2 == 1) { q + 1 } else { q };
    u64::try_from(q).unwrap_or(u64::MAX)
}

/// The per-position loss the evaluator uses (re-exported for the training engine's agreement
/// tests).
pub fn position_loss(logits: &[f32], target: u8) -> f32 {
    kernels::cross_entropy(logits, target as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_prediction_once() {
        for (len, t) in [(2, 4), (5, 4), (9, 4), (10, 4), (2048, 64), (1, 3), (0, 3)] {
            let w: Vec<_> = windows(len, t).collect();
            let mut next = 0;
            for r in &w {
                assert_eq!(r.start, next);
                assert!(r.end > r.start && r.end - r.start <= t);
                next = r.end;
            }
            assert_eq!(next, len.saturating_sub(1));
        }
        assert_eq!(windows(9, 4).collect::<Vec<_>>(), vec![0..4, 4..8]);
        assert_eq!(windows(10, 4).collect::<Vec<_>>(), vec![0..4, 4..8, 8..9]);
    }

    #[test]
    fn explicit_windows_match_the_dataset_evaluation() {
        let model = crate::test_util::random_model(
            ModelConfig::genesis(crate::config::ModelNetwork::Regtest),
            3,
        );
        let t = model.config().window;
        let data = &crate::data::training_text()[1000..1000 + 3 * t + 1];
        let whole = evaluate(&model, data).unwrap();
        let cut: Vec<&[u8]> = windows(data.len(), t).map(|r| &data[r.start..r.end + 1]).collect();
        assert_eq!(cut.len(), 3);
        assert_eq!(evaluate_windows(&model, &cut).unwrap(), whole);
        // Order matters only through the f64 accumulation; a single window is its own total.
        let one = evaluate_windows(&model, &cut[1..2]).unwrap();
        assert_eq!(one.bytes, t);
        assert_eq!(one, evaluate(&model, cut[1]).unwrap());
        // Malformed windows are refused.
        assert_eq!(evaluate_windows(&model, &[]), Err(EvalError::TooShort(0)));
        assert_eq!(evaluate_windows(&model, &[&data[..1]]), Err(EvalError::TooShort(1)));
        assert_eq!(
            evaluate_windows(&model, &[&data[..t + 2]]),
            Err(EvalError::WindowTooLong { len: t + 2, window: t })
        );
    }

    #[test]
    fn micronats_rounds_half_to_even_exactly() {
        assert_eq!(micronats(1.0, 1), 1_000_000);
        assert_eq!(micronats(0.0, 5), 0);
        assert_eq!(micronats(-1.0, 5), 0);
        // 2.5e-6 nats over 1 prediction is not exactly representable; 0.5 µnat over 1 byte is:
        // 2^-21 · 10^6 = 0.476..., rounds to 0; 3 · 2^-21 · 10^6 / 1 = 1.43 → 1.
        assert_eq!(micronats(2f64.powi(-21), 1), 0);
        assert_eq!(micronats(3.0 * 2f64.powi(-21), 1), 1);
        // Exact halves: 1 nat over 2_000_000 predictions = 0.5 µnat → 0 (even); 3 nats → 1.5 → 2.
        assert_eq!(micronats(1.0, 2_000_000), 0);
        assert_eq!(micronats(3.0, 2_000_000), 2);
        assert_eq!(micronats(5.0, 2_000_000), 2);
        assert_eq!(micronats(7.0, 2_000_000), 4);
        // The f64 product would round differently: exact rational rounding is used.
        let total = 11357.123456789;
        let p = 2047u64;
        let exact = micronats(total, p);
        assert!((exact as f64 - total * 1e6 / p as f64).abs() <= 0.5 + 1e-6);
        assert_eq!(micronats(f64::MAX, 1), u64::MAX);
        assert_eq!(micronats(f64::MIN_POSITIVE, 1), 0);
        assert_eq!(micronats(5e-324, 1), 0);
    }
}

#[cfg(test)]
mod golden {
    use super::*;
    use crate::config::ModelNetwork;
    use crate::data::excerpt;
    use crate::test_util::{random_bytes, random_model};

    /// Consensus pin: `val_loss` of `Model::init(regtest genesis, 0)` on the regtest validation
    /// slice. Any change to the forward, the kernels, libm, the windowing, the rounding, the
    /// initialisation or the bundled data changes this number.
    const GOLDEN_REGTEST_SEED0: u64 = 5_578_786;

    fn regtest_seed0() -> Model {
        Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 0).unwrap()
    }

    #[test]
    fn golden_val_loss_of_the_seeded_regtest_checkpoint() {
        let r = evaluate(&regtest_seed0(), excerpt(ModelNetwork::Regtest)).unwrap();
        assert_eq!(r.bytes, 2047);
        assert_eq!(r.windows, 32);
        assert_eq!(r.val_loss_micronats, GOLDEN_REGTEST_SEED0);
    }

    #[test]
    fn portable_and_simd_kernels_give_the_golden_value() {
        let model = regtest_seed0();
        let data = excerpt(ModelNetwork::Regtest);
        crate::kernels::set_portable_only(true);
        let portable = evaluate(&model, data);
        crate::kernels::set_portable_only(false);
        let simd = evaluate(&model, data).unwrap();
        let portable = portable.unwrap();
        assert_eq!(portable.total_nats.to_bits(), simd.total_nats.to_bits());
        assert_eq!(portable.val_loss_micronats, GOLDEN_REGTEST_SEED0);
    }

    #[test]
    fn the_result_does_not_depend_on_the_thread_count() {
        let cases = [
            (regtest_seed0(), excerpt(ModelNetwork::Regtest).to_vec()),
            (
                random_model(ModelConfig::genesis(ModelNetwork::Regtest), 4),
                random_bytes(3 * 64 + 17, 4),
            ),
        ];
        for (model, data) in &cases {
            let results: Vec<EvalResult> = [1, 2, 4]
                .iter()
                .map(|&n| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(n)
                        .build()
                        .unwrap()
                        .install(|| evaluate(model, data).unwrap())
                })
                .collect();
            for r in &results {
                assert_eq!(r.val_loss_micronats, results[0].val_loss_micronats);
                assert_eq!(r.total_nats.to_bits(), results[0].total_nats.to_bits());
            }
        }
        let r = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(|| evaluate(&cases[0].0, &cases[0].1).unwrap());
        assert_eq!(r.val_loss_micronats, GOLDEN_REGTEST_SEED0);
    }

    #[test]
    fn total_is_the_ordered_sum_of_window_sums() {
        let model = random_model(ModelConfig::genesis(ModelNetwork::Regtest), 8);
        let data = random_bytes(5 * 64 + 30, 8);
        let mut total = 0.0f64;
        for r in windows(data.len(), 64) {
            let mut sum = 0.0f64;
            for l in crate::forward::window_losses(&model, &data[r.start..r.end + 1]) {
                sum += l as f64;
            }
            total += sum;
        }
        let eval = evaluate(&model, &data).unwrap();
        assert_eq!(eval.total_nats.to_bits(), total.to_bits());
        assert_eq!(eval.val_loss_micronats, micronats(total, data.len() as u64 - 1));
        assert_eq!(eval.windows, 6);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let model = regtest_seed0();
        assert_eq!(evaluate(&model, b""), Err(EvalError::TooShort(0)));
        assert_eq!(evaluate(&model, b"a"), Err(EvalError::TooShort(1)));
        assert_eq!(evaluate(&model, b"ab").unwrap().bytes, 1);
        // Finite parameters whose activations overflow give an error, not a number.
        let mut broken = regtest_seed0();
        for v in broken.params_mut() {
            *v = 3.0e38;
        }
        assert!(matches!(evaluate(&broken, b"abc"), Err(EvalError::NonFinite(_))));
        let cfg = ModelConfig::genesis(ModelNetwork::Regtest);
        assert!(matches!(evaluate_params(&cfg, &[0.0; 3], b"abc"), Err(EvalError::Model(_))));
        let p = regtest_seed0().into_parts().1;
        assert_eq!(
            evaluate_params(&cfg, &p, excerpt(ModelNetwork::Regtest)).unwrap().val_loss_micronats,
            GOLDEN_REGTEST_SEED0
        );
    }
}
