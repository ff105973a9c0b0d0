//! The [`Trainer`]: owns the parameters, gradients, optimizer state and activation workspace of one
//! model and takes AdamW steps on batches. A command-line tool or miner drives it either step by
//! step ([`Trainer::step`]) or through [`Trainer::run`], which draws batches from a
//! [`DataSource`], reports [`Progress`] to a callback (for a progress bar) and optionally stops
//! early on the held-out loss.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rnet_model::config::{ConfigError, MAX_WINDOW};
use rnet_model::{Layout, ModelConfig, ModelUpdate};
use thiserror::Error;

use crate::data::{Batch, DataSource};
use crate::lowrank::{LowRankConfig, LowRankError, LowRankState};
use crate::model::{ScanMode, Workspace, backward, forward};
use crate::optimizer::{AdamW, OptimizerState, StateError, clip_scale, global_norm, lr_at};

/// Hyper-parameters of training.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Peak learning rate.
    pub lr: f32,
    /// Final learning rate as a fraction of `lr` (reached at `total_steps`).
    pub min_lr_ratio: f32,
    /// Linear warmup length in updates.
    pub warmup: u64,
    /// Update number at which the cosine decay reaches its floor (counted over the optimizer's
    /// lifetime, so a resumed run continues the same schedule).
    pub total_steps: u64,
    /// Windows per batch.
    pub batch_windows: usize,
    /// Training window length; `0` means the model's evaluation window.
    pub window: usize,
    /// Decoupled weight decay (matrices only).
    pub weight_decay: f32,
    /// Global gradient-norm clip; `0` disables clipping.
    pub clip: f32,
    /// Adam β₁.
    pub beta1: f32,
    /// Adam β₂.
    pub beta2: f32,
    /// Adam ε.
    pub eps: f32,
    /// Seed of the batch sampler (see [`DataSource`]).
    pub seed: u64,
    /// Form of the minGRU scan in the forward pass.
    pub scan: ScanMode,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            min_lr_ratio: 0.1,
            warmup: 100,
            total_steps: 10_000,
            batch_windows: 8,
            window: 0,
            weight_decay: 0.1,
            clip: 1.0,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            seed: 0,
            scan: ScanMode::Sequential,
        }
    }
}

/// Why training could not start or continue.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The model config is not a valid V5 shape.
    #[error("invalid model config: {0}")]
    Config(#[from] ConfigError),
    /// The parameter buffer does not match the config.
    #[error("model has {found} parameters; its config needs {expected}")]
    ParamCount {
        /// Parameters the config needs.
        expected: usize,
        /// Parameters given.
        found: usize,
    },
    /// The optimizer state does not fit the model.
    #[error(transparent)]
    State(#[from] StateError),
    /// A batch with another window length than the trainer's.
    #[error("batch window {found} differs from the training window {expected}")]
    Window {
        /// The trainer's window.
        expected: usize,
        /// The batch's window.
        found: usize,
    },
    /// The training window is zero or longer than the model allows.
    #[error("training window {0} is outside 1..={MAX_WINDOW}")]
    WindowRange(usize),
    /// A batch with no windows.
    #[error("empty batch")]
    EmptyBatch,
    /// The loss or gradient became NaN or infinite; the parameters were not updated.
    #[error("non-finite loss or gradient at step {step} (loss {loss}, grad norm {grad_norm})")]
    NonFinite {
        /// Global update number that failed.
        step: u64,
        /// The loss.
        loss: f64,
        /// The gradient norm.
        grad_norm: f64,
    },
    /// Low-rank training could not be set up, or its update could not be built.
    #[error("low-rank training: {0}")]
    LowRank(#[from] LowRankError),
    /// An update was asked of a trainer that is not in low-rank mode.
    #[error("the trainer is not in low-rank mode")]
    NotLowRank,
}

/// What one update did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Mean training loss of the batch before the update, nats per byte.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f32,
    /// Global update number after this step (the optimizer's step counter).
    pub step: u64,
    /// Bytes predicted in the batch.
    pub bytes: usize,
}

/// How [`Trainer::run`] proceeds.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Updates to take.
    pub steps: u64,
    /// Evaluate the held-out loss every this many updates (`0`: never).
    pub eval_every: u64,
    /// Most held-out windows per evaluation.
    pub eval_windows: usize,
    /// Stop after this many evaluations without improvement (`0`: never stop early). When held-out
    /// evaluation is on, the run ends with the parameters (and optimizer state) of the best
    /// evaluation.
    pub patience: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { steps: 100, eval_every: 0, eval_windows: 64, patience: 0 }
    }
}

/// Reported to the [`Trainer::run`] callback after every update.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Updates done in this run (1-based).
    pub step: u64,
    /// Updates this run will take.
    pub steps: u64,
    /// The update's statistics (global step, loss, gradient norm, learning rate).
    pub stats: StepStats,
    /// Training throughput so far in this run.
    pub bytes_per_sec: f64,
    /// Time since the run started.
    pub elapsed: Duration,
    /// Estimated time to the end of the run.
    pub eta: Duration,
    /// Held-out loss, when evaluated at this step.
    pub holdout_loss: Option<f64>,
}

/// Outcome of [`Trainer::run`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// Updates taken in this run.
    pub steps: u64,
    /// Bytes trained on.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Training loss of the last update.
    pub last_loss: Option<f64>,
    /// Best held-out loss seen (the parameters kept), when evaluated.
    pub best_holdout: Option<f64>,
    /// True when the run stopped on patience or on the callback's request.
    pub stopped_early: bool,
}

/// Trains one model: parameters, gradients, AdamW state and activation workspace.
pub struct Trainer {
    config: ModelConfig,
    layout: Layout,
    train: TrainConfig,
    window: usize,
    params: Vec<f32>,
    grads: Vec<f32>,
    state: OptimizerState,
    ws: Workspace<f32>,
    /// Low-rank mode: frozen base, factors and their moments (`params` then holds the effective
    /// weights `base + s·U·V`).
    low_rank: Option<Box<LowRankState>>,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("train", &self.train)
            .field("step", &self.state.step)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// A trainer for `params` (flat, in [`Layout`] order) of shape `config`. `state` continues a
    /// previous run; a state of a smaller shape (the model has grown since) is carried over with
    /// [`OptimizerState::remap`]. Without a state the moments start at zero.
    pub fn new(
        params: Vec<f32>,
        config: ModelConfig,
        train: TrainConfig,
        state: Option<OptimizerState>,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        let layout = Layout::new(&config);
        if params.len() != layout.total {
            return Err(TrainError::ParamCount { expected: layout.total, found: params.len() });
        }
        let window = if train.window == 0 { config.window } else { train.window };
        if window == 0 || window > MAX_WINDOW {
            return Err(TrainError::WindowRange(window));
        }
        let state = match state {
            Some(s) => s.remap(&config)?,
            None => OptimizerState::new(&config),
        };
        let grads = vec![0.0; layout.total];
        Ok(Self {
            config,
            layout,
            train,
            window,
            params,
            grads,
            state,
            ws: Workspace::new(),
            low_rank: None,
        })
    }

    /// A trainer in low-rank mode ([`crate::lowrank`]): `params` (the parent, e.g. the grown
    /// parent of the next block) become the frozen base, and every step trains only the adapter
    /// factors (and, with [`crate::OtherTensors::Replace`], the tensors without an adapter) with
    /// AdamW. The schedule and batch stream follow [`Trainer::global_step`] as in full-rank mode;
    /// the model-wide optimizer moments are not used.
    pub fn new_low_rank(
        params: Vec<f32>,
        config: ModelConfig,
        train: TrainConfig,
        low_rank: LowRankConfig,
    ) -> Result<Self, TrainError> {
        let mut t = Self::new(params, config, train, None)?;
        let state = LowRankState::new(low_rank, &t.config, &t.layout, t.params.clone())?;
        t.low_rank = Some(Box::new(state));
        Ok(t)
    }

    /// The low-rank settings, when in low-rank mode.
    pub fn low_rank_config(&self) -> Option<&LowRankConfig> {
        self.low_rank.as_ref().map(|s| &s.config)
    }

    /// The frozen base weights in low-rank mode (the parent, or the model after the last
    /// [`Trainer::merge_and_restart`]); the parameters themselves in full-rank mode.
    pub fn base_params(&self) -> &[f32] {
        self.low_rank.as_ref().map_or(&self.params, |s| &s.base)
    }

    /// The update taking the base to what was trained (low-rank mode): one low-rank entry
    /// `W += U·V` per adapted matrix, with the scale folded into `U`, plus replacement entries
    /// for the other tensors under [`crate::OtherTensors::Replace`]. Apply it to the base with
    /// `rnet_model::apply`.
    pub fn to_update(&self) -> Result<ModelUpdate, TrainError> {
        let s = self.low_rank.as_ref().ok_or(TrainError::NotLowRank)?;
        Ok(s.to_update(&self.layout)?)
    }

    /// ReLoRA's merge and restart (low-rank mode): builds [`Trainer::to_update`], makes the base
    /// exactly `rnet_model::apply(base, update)` (the model a node derives from the update),
    /// restarts the factors (`U = 0`, fresh `V`) and their moments, and returns the update. The
    /// next update is then relative to the merged model, so consecutive updates add up to a
    /// full-rank change.
    pub fn merge_and_restart(&mut self) -> Result<ModelUpdate, TrainError> {
        let s = self.low_rank.as_mut().ok_or(TrainError::NotLowRank)?;
        let update = s.merge_and_restart(&self.layout)?;
        s.effective(&mut self.params);
        Ok(update)
    }

    /// The model shape.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The hyper-parameters.
    pub fn train_config(&self) -> &TrainConfig {
        &self.train
    }

    /// The training window length every batch must have.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The current parameters (flat, [`Layout`] order).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The optimizer state (save it beside the checkpoint with [`OptimizerState::save`]).
    pub fn optimizer_state(&self) -> &OptimizerState {
        &self.state
    }

    /// Updates taken over the optimizer's lifetime.
    pub fn global_step(&self) -> u64 {
        self.state.step
    }

    /// Bytes held by the activation workspace (grows with `batch_windows × window`).
    pub fn workspace_bytes(&self) -> usize {
        self.ws.memory_bytes()
    }

    /// Gives back the parameters (in low-rank mode the effective weights `base + s·U·V`; use
    /// [`Trainer::to_update`] for what a block carries) and the optimizer state.
    pub fn into_parts(self) -> (Vec<f32>, OptimizerState) {
        (self.params, self.state)
    }

    fn check(&self, batch: &Batch) -> Result<(), TrainError> {
        if batch.window != self.window {
            return Err(TrainError::Window { expected: self.window, found: batch.window });
        }
        if batch.is_empty() || batch.inputs.len() % batch.window != 0 {
            return Err(TrainError::EmptyBatch);
        }
        Ok(())
    }

    /// Mean loss of `batch` under the current parameters (forward only; nats per byte).
    pub fn loss(&mut self, batch: &Batch) -> Result<f64, TrainError> {
        self.check(batch)?;
        Ok(forward(
            &self.config,
            &self.layout,
            &self.params,
            &batch.inputs,
            &batch.targets,
            self.window,
            &mut self.ws,
            self.train.scan,
            false,
        ))
    }

    /// Byte-weighted mean loss over several batches (e.g. [`DataSource::holdout_batches`]).
    pub fn loss_over(&mut self, batches: &[Batch]) -> Result<f64, TrainError> {
        let (mut total, mut bytes) = (0.0, 0usize);
        for b in batches {
            total += self.loss(b)? * b.len() as f64;
            bytes += b.len();
        }
        if bytes == 0 {
            return Err(TrainError::EmptyBatch);
        }
        Ok(total / bytes as f64)
    }

    /// Loss and gradient of `batch` without updating (the gradient is left in an internal buffer
    /// and returned). For tests and diagnostics.
    pub fn gradient(&mut self, batch: &Batch) -> Result<(f64, &[f32]), TrainError> {
        self.check(batch)?;
        let loss = forward(
            &self.config,
            &self.layout,
            &self.params,
            &batch.inputs,
            &batch.targets,
            self.window,
            &mut self.ws,
            self.train.scan,
            true,
        );
        self.grads.fill(0.0);
        backward(&self.config, &self.layout, &self.params, &mut self.grads, &mut self.ws);
        Ok((loss, &self.grads))
    }

    /// One AdamW update on `batch`: forward, backward, global-norm clip, scheduled learning rate.
    /// A non-finite loss or gradient leaves the parameters and state untouched.
    pub fn step(&mut self, batch: &Batch) -> Result<StepStats, TrainError> {
        if self.low_rank.is_some() {
            return self.step_low_rank(batch);
        }
        let (loss, _) = self.gradient(batch)?;
        let grad_norm = global_norm(&self.grads);
        let step = self.state.step + 1;
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(TrainError::NonFinite { step, loss, grad_norm });
        }
        let lr = lr_at(&self.train, step);
        let opt = AdamW {
            lr,
            beta1: self.train.beta1,
            beta2: self.train.beta2,
            eps: self.train.eps,
            weight_decay: self.train.weight_decay,
        };
        let scale = clip_scale(grad_norm, self.train.clip);
        opt.update(&mut self.params, &self.grads, scale, &mut self.state, &self.layout);
        Ok(StepStats { loss, grad_norm, lr, step: self.state.step, bytes: batch.len() })
    }

    /// [`Trainer::step`] in low-rank mode: the full gradient of the effective weights is turned
    /// into factor gradients, which are clipped (their global norm) and given to AdamW; then the
    /// effective weights are rebuilt.
    fn step_low_rank(&mut self, batch: &Batch) -> Result<StepStats, TrainError> {
        let (loss, _) = self.gradient(batch)?;
        let grads = std::mem::take(&mut self.grads);
        let stats = self.low_rank_update(loss, &grads, batch.len());
        self.grads = grads;
        stats
    }

    /// One low-rank update from a loss and a gradient of the effective weights computed
    /// elsewhere — on a device, whose forward and backward run on the same effective weights
    /// ([`Trainer::params`]) — instead of by this trainer's CPU forward and backward: the factor
    /// gradients, the clip, AdamW on the factors and the rebuilt effective weights are exactly
    /// those of [`Trainer::step`]. `grads` is flat in [`Layout`] order; `bytes` is the batch
    /// size, for the statistics.
    pub fn step_low_rank_from(
        &mut self,
        loss: f64,
        grads: &[f32],
        bytes: usize,
    ) -> Result<StepStats, TrainError> {
        if self.low_rank.is_none() {
            return Err(TrainError::NotLowRank);
        }
        if grads.len() != self.params.len() {
            return Err(TrainError::ParamCount { expected: self.params.len(), found: grads.len() });
        }
        self.low_rank_update(loss, grads, bytes)
    }

    /// The low-rank update of [`Trainer::step`] given the loss and the effective-weight gradient.
    fn low_rank_update(
        &mut self,
        loss: f64,
        grads: &[f32],
        bytes: usize,
    ) -> Result<StepStats, TrainError> {
        let s = self.low_rank.as_mut().ok_or(TrainError::NotLowRank)?;
        s.gather(grads);
        let grad_norm = global_norm(&s.grad);
        let step = self.state.step + 1;
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(TrainError::NonFinite { step, loss, grad_norm });
        }
        let lr = lr_at(&self.train, step);
        let opt = AdamW {
            lr,
            beta1: self.train.beta1,
            beta2: self.train.beta2,
            eps: self.train.eps,
            weight_decay: self.train.weight_decay,
        };
        s.adam_step(&opt, clip_scale(grad_norm, self.train.clip));
        s.effective(&mut self.params);
        self.state.step = step;
        Ok(StepStats { loss, grad_norm, lr, step, bytes })
    }

    /// Takes `options.steps` updates on batches from `source` (batch `k` of the optimizer's
    /// lifetime is `source.batch(k, batch_windows)`, so a resumed run continues the same stream),
    /// calling `on_progress` after each; the callback may stop the run with `ControlFlow::Break`.
    pub fn run(
        &mut self,
        source: &DataSource,
        options: &RunOptions,
        mut on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<RunSummary, TrainError> {
        if source.config().window != self.window {
            return Err(TrainError::Window {
                expected: self.window,
                found: source.config().window,
            });
        }
        let holdout = if options.eval_every > 0 {
            source.holdout_batches(self.train.batch_windows.max(1), options.eval_windows)
        } else {
            Vec::new()
        };
        let evaluating = !holdout.is_empty();
        let start = Instant::now();
        let mut summary = RunSummary {
            steps: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            last_loss: None,
            best_holdout: None,
            stopped_early: false,
        };
        type Snapshot = (f64, Vec<f32>, OptimizerState, Option<Box<LowRankState>>);
        let mut best: Option<Snapshot> = None;
        let mut since_best = 0u32;
        for i in 1..=options.steps {
            let batch = source.batch(self.state.step, self.train.batch_windows.max(1));
            let stats = self.step(&batch)?;
            summary.steps = i;
            summary.bytes += stats.bytes as u64;
            summary.last_loss = Some(stats.loss);
            let mut holdout_loss = None;
            if evaluating && (i % options.eval_every == 0 || i == options.steps) {
                let l = self.loss_over(&holdout)?;
                holdout_loss = Some(l);
                if best.as_ref().is_none_or(|b| l < b.0) {
                    let lr = self.low_rank.clone();
                    best = Some((l, self.params.clone(), self.state.clone(), lr));
                    since_best = 0;
                } else {
                    since_best += 1;
                }
            }
            let elapsed = start.elapsed();
            let secs = elapsed.as_secs_f64().max(1e-9);
            let per_step = secs / i as f64;
            let progress = Progress {
                step: i,
                steps: options.steps,
                stats,
                bytes_per_sec: summary.bytes as f64 / secs,
                elapsed,
                eta: Duration::from_secs_f64(per_step * (options.steps - i) as f64),
                holdout_loss,
            };
            let stop_patience = options.patience > 0 && since_best >= options.patience;
            if on_progress(&progress).is_break() || stop_patience {
                summary.stopped_early = i < options.steps;
                break;
            }
        }
        if let Some((l, params, state, low_rank)) = best {
            summary.best_holdout = Some(l);
            self.params = params;
            self.state = state;
            self.low_rank = low_rank;
        }
        summary.elapsed = start.elapsed();
        Ok(summary)
    }
}
