//! [`DeviceTrainer`]: the training step on a [`Backend`] — forward, backward, global-norm clipping and
//! AdamW, all on the device — with the CPU [`rnet_training::Trainer`]'s hyper-parameters
//! ([`TrainConfig`]), learning-rate schedule ([`lr_at`]), batch stream
//! ([`DataSource::batch`] by global step) and optimizer state ([`OptimizerState`]), so a run can move
//! between the CPU engine and a device and continue the same schedule.

use std::time::{Duration, Instant};

use rnet_model::config::MAX_WINDOW;
use rnet_model::{Layout, ModelConfig};
use rnet_training::optimizer::clip_scale;
use rnet_training::{Batch, DataSource, OptimizerState, StepStats, TrainConfig, lr_at};

use super::EngineError;
use super::backward::backward;
use super::forward::{Workspace, forward};
use super::params::{DeviceTensors, TensorIdx};
use crate::{AdamWStep, Backend};

/// Accumulator slots of the gradient-norm reduction ([`Backend::sum_squares`]).
const NORM_SLOTS: usize = 1024;

/// What [`DeviceTrainer::train_steps`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    /// Updates taken.
    pub steps: u64,
    /// Bytes trained on.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Statistics of the last update.
    pub last: Option<StepStats>,
}

/// Trains one model on a device: parameters, gradients, AdamW moments and activations live in
/// backend buffers; only the batch bytes go up and the loss and gradient norm come back each step.
pub struct DeviceTrainer<B: Backend> {
    be: B,
    config: ModelConfig,
    layout: Layout,
    idx: TensorIdx,
    train: TrainConfig,
    window: usize,
    params: DeviceTensors<B>,
    grads: DeviceTensors<B>,
    m: DeviceTensors<B>,
    v: DeviceTensors<B>,
    step: u64,
    norm_acc: B::Buffer,
    ws: Option<Workspace<B>>,
}

impl<B: Backend> std::fmt::Debug for DeviceTrainer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTrainer")
            .field("device", &self.be.name())
            .field("config", &self.config)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> DeviceTrainer<B> {
    /// A trainer on `be` for `params` (flat, [`Layout`] order, e.g. `Model::params`) of shape
    /// `config`. `state` continues a previous run (a state of a smaller shape is remapped with
    /// [`OptimizerState::remap`], as the CPU trainer does); without one the moments start at zero.
    pub fn new(
        be: B,
        params: &[f32],
        config: ModelConfig,
        train: TrainConfig,
        state: Option<OptimizerState>,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        let layout = Layout::new(&config);
        if params.len() != layout.total {
            return Err(EngineError::ParamCount { expected: layout.total, found: params.len() });
        }
        let window = if train.window == 0 { config.window } else { train.window };
        if window == 0 || window > MAX_WINDOW {
            return Err(EngineError::WindowRange(window));
        }
        let state = match state {
            Some(s) => s.remap(&config)?,
            None => OptimizerState::new(&config),
        };
        let idx = TensorIdx::new(&layout);
        let params = DeviceTensors::upload(&be, &layout, params)?;
        let grads = DeviceTensors::zeros(&be, &layout)?;
        let m = DeviceTensors::upload(&be, &layout, &state.m)?;
        let v = DeviceTensors::upload(&be, &layout, &state.v)?;
        let norm_acc = be.zeros(NORM_SLOTS)?;
        Ok(Self {
            be,
            config,
            layout,
            idx,
            train,
            window,
            params,
            grads,
            m,
            v,
            step: state.step,
            norm_acc,
            ws: None,
        })
    }

    /// The backend the trainer runs on.
    pub fn backend(&self) -> &B {
        &self.be
    }

    /// The model shape.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The training window length every batch must have.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Updates taken over the optimizer's lifetime.
    pub fn global_step(&self) -> u64 {
        self.step
    }

    /// The current parameters, downloaded (flat, [`Layout`] order).
    pub fn params(&self) -> Result<Vec<f32>, EngineError> {
        self.params.download(&self.be, &self.layout)
    }

    /// Replaces the parameters with `flat` ([`Layout`] order), leaving the optimizer state as it
    /// is: for a caller that updates the weights itself, such as low-rank training whose factors
    /// live on the CPU while the forward and backward run here ([`DeviceTrainer::gradient`]).
    /// A buffer of the wrong length is refused and changes nothing.
    pub fn load_params(&mut self, flat: &[f32]) -> Result<(), EngineError> {
        self.params.write(&self.be, &self.layout, flat)?;
        Ok(())
    }

    /// The optimizer state, downloaded (save it with [`OptimizerState::save`]).
    pub fn optimizer_state(&self) -> Result<OptimizerState, EngineError> {
        Ok(OptimizerState {
            step: self.step,
            config: self.config.clone(),
            m: self.m.download(&self.be, &self.layout)?,
            v: self.v.download(&self.be, &self.layout)?,
        })
    }

    /// Gives back the parameters and the optimizer state (downloaded).
    pub fn into_parts(self) -> Result<(Vec<f32>, OptimizerState), EngineError> {
        Ok((self.params()?, self.optimizer_state()?))
    }

    fn check(&self, batch: &Batch) -> Result<(), EngineError> {
        if batch.window != self.window {
            return Err(EngineError::Window { expected: self.window, found: batch.window });
        }
        if batch.is_empty()
            || batch.inputs.len() % batch.window != 0
            || batch.targets.len() != batch.inputs.len()
        {
            return Err(EngineError::EmptyBatch);
        }
        Ok(())
    }

    /// Runs the forward pass on `batch` (uploading its bytes, sizing the workspace).
    fn run_forward(&mut self, batch: &Batch, keep_grad: bool) -> Result<f64, EngineError> {
        self.check(batch)?;
        let windows = batch.windows();
        let ws = match self.ws.take() {
            Some(ws) if ws.windows == windows && ws.t_len == self.window => ws,
            _ => Workspace::new(&self.be, &self.config, windows, self.window)?,
        };
        let ws = self.ws.insert(ws);
        let inputs = self.be.upload_tokens(&batch.inputs)?;
        let targets = self.be.upload_tokens(&batch.targets)?;
        forward(&self.be, &self.config, &self.idx, &self.params, ws, inputs, &targets, keep_grad)
    }

    /// Mean loss of `batch` under the current parameters (forward only; nats per byte).
    pub fn loss(&mut self, batch: &Batch) -> Result<f64, EngineError> {
        self.run_forward(batch, false)
    }

    /// Loss and gradient of `batch` left in the device gradient buffers (not downloaded).
    fn compute_gradient(&mut self, batch: &Batch) -> Result<f64, EngineError> {
        let loss = self.run_forward(batch, true)?;
        self.grads.clear(&self.be)?;
        let ws = self.ws.as_mut().ok_or(EngineError::EmptyBatch)?;
        backward(&self.be, &self.config, &self.idx, &self.params, &mut self.grads, ws)?;
        Ok(loss)
    }

    /// Loss and gradient of `batch` without updating, the gradient downloaded (flat, [`Layout`]
    /// order): for low-rank training (the factor update runs on the CPU), tests and diagnostics.
    pub fn gradient(&mut self, batch: &Batch) -> Result<(f64, Vec<f32>), EngineError> {
        let loss = self.compute_gradient(batch)?;
        Ok((loss, self.grads.download(&self.be, &self.layout)?))
    }

    /// Euclidean norm of the whole gradient: per-tensor sums of squares on the device, one small
    /// download, the final sum in `f64`.
    fn grad_norm(&mut self) -> Result<f64, EngineError> {
        self.be.fill(&mut self.norm_acc, 0.0)?;
        for g in self.grads.iter() {
            self.be.sum_squares(&mut self.norm_acc, g)?;
        }
        let parts = self.be.download(&self.norm_acc)?;
        Ok(parts.iter().map(|&p| p as f64).sum::<f64>().sqrt())
    }

    /// One AdamW update on `batch`: forward, backward, global-norm clip, scheduled learning rate,
    /// exactly as [`rnet_training::Trainer::step`]. A non-finite loss or gradient leaves the
    /// parameters and the optimizer state untouched ([`EngineError::NonFinite`]).
    pub fn step(&mut self, batch: &Batch) -> Result<StepStats, EngineError> {
        let loss = self.compute_gradient(batch)?;
        let grad_norm = self.grad_norm()?;
        let step = self.step + 1;
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(EngineError::NonFinite { step, loss, grad_norm });
        }
        let lr = lr_at(&self.train, step);
        let adam = AdamWStep {
            lr,
            beta1: self.train.beta1,
            beta2: self.train.beta2,
            eps: self.train.eps,
            weight_decay: self.train.weight_decay,
            grad_scale: clip_scale(grad_norm, self.train.clip),
            step,
        };
        for (i, t) in self.layout.tensors.iter().enumerate() {
            // Weight decay on every rank-2 tensor, not on the RMSNorm gains (as the CPU optimizer).
            let segment = [(0..t.len(), t.shape.len() >= 2)];
            self.be.adamw_update(
                self.params.get_mut(i),
                self.grads.get(i),
                self.m.get_mut(i),
                self.v.get_mut(i),
                &adam,
                &segment,
            )?;
        }
        self.step = step;
        Ok(StepStats { loss, grad_norm, lr, step, bytes: batch.len() })
    }

    /// Takes `steps` updates on batches from `source`: update `k` of the optimizer's lifetime uses
    /// `source.batch(k, batch_windows)`, the CPU trainer's stream, so a run continues where the last
    /// one (on either engine) stopped.
    pub fn train_steps(
        &mut self,
        source: &DataSource,
        steps: u64,
    ) -> Result<TrainSummary, EngineError> {
        if source.config().window != self.window {
            return Err(EngineError::Window {
                expected: self.window,
                found: source.config().window,
            });
        }
        let start = Instant::now();
        let mut summary = TrainSummary { steps: 0, bytes: 0, elapsed: Duration::ZERO, last: None };
        for _ in 0..steps {
            let batch = source.batch(self.step, self.train.batch_windows.max(1));
            let stats = self.step(&batch)?;
            summary.steps += 1;
            summary.bytes += stats.bytes as u64;
            summary.last = Some(stats);
        }
        summary.elapsed = start.elapsed();
        Ok(summary)
    }
}
