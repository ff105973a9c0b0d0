//! The recurrent step used by inference: state + one byte → next-byte logits, O(1) in context
//! length.
//!
//! The state of each layer is the minGRU hidden vector `h` (d floats) and the last
//! `max_kernel − 1` conv inputs `u` (a fixed-size history, zero at the start, which is exactly the
//! "zero before the window start" padding of the window forward). A step runs the same
//! [`forward_block`](crate::forward) code as the evaluator on a block of one position, so its logits
//! equal the window forward's bit for bit.

use thiserror::Error;

use crate::config::{ModelConfig, VOCAB};
use crate::forward::{Scratch, forward_block};
use crate::model::Model;

/// A state that was made for another shape than the model it is used with.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "recurrent state is for d = {state_d}, L = {state_layers}, history {state_hist}; model has d = {model_d}, L = {model_layers}, history {model_hist}"
)]
pub struct StateMismatch {
    /// Width the state was made for.
    pub state_d: usize,
    /// Depth the state was made for.
    pub state_layers: usize,
    /// Conv history length the state was made for.
    pub state_hist: usize,
    /// The model's width.
    pub model_d: usize,
    /// The model's depth.
    pub model_layers: usize,
    /// The model's conv history length.
    pub model_hist: usize,
}

/// Per-layer recurrent state of one generation session.
#[derive(Clone, Debug)]
pub struct RecurrentState {
    d: usize,
    n_layers: usize,
    hist_len: usize,
    /// minGRU hidden state, `[L, d]`.
    pub(crate) h: Vec<f32>,
    /// Last `hist_len` conv inputs per layer, oldest first, `[L, hist_len, d]`.
    pub(crate) hist: Vec<f32>,
    /// Bytes consumed since the state was created or reset.
    pub(crate) position: u64,
    scratch: Scratch,
}

impl RecurrentState {
    /// The start state for `config` (all zero): what every evaluation window starts from.
    pub fn new(config: &ModelConfig) -> Self {
        let d = config.d_model;
        let n_layers = config.n_layers;
        let hist_len = config.max_kernel().saturating_sub(1);
        Self {
            d,
            n_layers,
            hist_len,
            h: vec![0.0; n_layers * d],
            hist: vec![0.0; n_layers * hist_len * d],
            position: 0,
            scratch: Scratch::default(),
        }
    }

    /// Back to the start state.
    pub fn reset(&mut self) {
        self.h.fill(0.0);
        self.hist.fill(0.0);
        self.position = 0;
    }

    /// Number of bytes consumed since creation or the last reset.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Floats held (independent of how many bytes were consumed).
    pub fn state_len(&self) -> usize {
        self.h.len() + self.hist.len()
    }

    fn check(&self, model: &Model) -> Result<(), StateMismatch> {
        let c = model.config();
        let model_hist = c.max_kernel().saturating_sub(1);
        if self.d != c.d_model || self.n_layers != c.n_layers || self.hist_len != model_hist {
            return Err(StateMismatch {
                state_d: self.d,
                state_layers: self.n_layers,
                state_hist: self.hist_len,
                model_d: c.d_model,
                model_layers: c.n_layers,
                model_hist,
            });
        }
        Ok(())
    }

    /// Consumes `bytes` as one block (a prompt: position-batched, same numbers as stepping one
    /// byte at a time) and returns the logits after the last one; `None` for an empty slice.
    pub fn feed(&mut self, model: &Model, bytes: &[u8]) -> Result<Option<Vec<f32>>, StateMismatch> {
        self.check(model)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        forward_block(model, self, bytes, &mut scratch);
        let n = bytes.len();
        let out = scratch.logits(n)[(n - 1) * VOCAB..].to_vec();
        self.scratch = scratch;
        Ok(Some(out))
    }
}

/// Consumes one byte and returns the 256 logits for the next byte.
pub fn step(
    model: &Model,
    state: &mut RecurrentState,
    byte: u8,
) -> Result<Vec<f32>, StateMismatch> {
    state.feed(model, &[byte]).map(|l| l.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelNetwork;
    use crate::forward::window_logits;
    use crate::test_util::{random_bytes, random_config, random_model};

    #[test]
    fn step_agrees_with_the_window_forward_bit_for_bit() {
        let mut configs: Vec<ModelConfig> = (100..130).map(random_config).collect();
        configs.push(ModelConfig::genesis(ModelNetwork::Regtest));
        for (i, cfg) in configs.into_iter().enumerate() {
            let seed = 1000 + i as u64;
            let model = random_model(cfg.clone(), seed);
            let bytes = random_bytes(cfg.window, seed);
            let want = window_logits(&model, &bytes);
            let mut state = RecurrentState::new(&cfg);
            let len = state.state_len();
            for (t, &b) in bytes.iter().enumerate() {
                let got = step(&model, &mut state, b).unwrap();
                let w = &want[t * VOCAB..(t + 1) * VOCAB];
                for (g, w) in got.iter().zip(w) {
                    assert!((g - w).abs() <= 1e-5 * w.abs().max(1e-3), "cfg {i} pos {t}");
                }
                // Stronger: the same operations in the same order give the same bits.
                assert_eq!(got.as_slice(), w, "cfg {i} pos {t}");
            }
            assert_eq!(state.position(), bytes.len() as u64);
            assert_eq!(state.state_len(), len, "state size is independent of context length");
            // A prompt fed as one block ends in the same state as stepping.
            let mut fed = RecurrentState::new(&cfg);
            let last = fed.feed(&model, &bytes).unwrap().unwrap();
            assert_eq!(last.as_slice(), &want[(bytes.len() - 1) * VOCAB..]);
            assert_eq!(fed.h, state.h);
            assert_eq!(fed.hist, state.hist);
            // Reset returns to the start state.
            state.reset();
            assert_eq!(step(&model, &mut state, bytes[0]).unwrap().as_slice(), &want[..VOCAB]);
        }
    }

    #[test]
    fn step_continues_past_the_window_length() {
        let cfg = ModelConfig::genesis(ModelNetwork::Regtest);
        let model = Model::init(cfg.clone(), 0).unwrap();
        let mut state = RecurrentState::new(&cfg);
        for i in 0..3 * cfg.window {
            let l = step(&model, &mut state, b"In the beginning "[i % 17]).unwrap();
            assert_eq!(l.len(), VOCAB);
            assert!(l.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn a_state_for_another_shape_is_refused() {
        let cfg = ModelConfig::genesis(ModelNetwork::Regtest);
        let model = Model::init(cfg.clone(), 0).unwrap();
        let mut state = RecurrentState::new(&cfg.with_shape(34, 2));
        assert!(step(&model, &mut state, b'a').is_err());
    }
}
