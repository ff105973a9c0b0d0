//! The in-process training engine of one mining attempt: the CPU trainer (`rnet_training`, full or
//! low rank) or, with [`Miner::with_device`](crate::Miner::with_device), a [`DynTrainer`] on a
//! device: full rank entirely there, low rank with the forward and backward there and the
//! factors on the CPU. Either way the miner only steps it and reads the weights back; the weights
//! are then judged by the canonical CPU evaluator, so the device never decides validity.

use rnet_gpu::DynTrainer;
use rnet_model::ModelUpdate;
use rnet_training::{Batch, OptimizerState, Trainer};

use crate::MineError;

/// The trainer of one attempt.
pub(crate) enum Engine {
    /// The CPU engine (the default, and every low-rank attempt).
    Cpu(Box<Trainer>),
    /// The device engine, full rank.
    Device(Box<DynTrainer>),
    /// Low rank with a device: each step the device computes the loss and the gradient of the
    /// effective weights (its forward and backward, the expensive part), and the CPU low-rank
    /// trainer turns that gradient into its factor update ([`Trainer::step_low_rank_from`]: the
    /// same factor gradients, clip and AdamW as a CPU step) and rebuilds the effective weights,
    /// which go back to the device. The factors, their optimizer state and the update stay on
    /// the CPU, so the update is built exactly as on a CPU attempt.
    DeviceLowRank {
        /// The forward and backward.
        device: Box<DynTrainer>,
        /// The factors, their AdamW state and the effective weights.
        factors: Box<Trainer>,
    },
}

impl Engine {
    /// Updates taken so far.
    pub(crate) fn global_step(&self) -> u64 {
        match self {
            Engine::Cpu(t) => t.global_step(),
            Engine::Device(t) => t.global_step(),
            Engine::DeviceLowRank { factors, .. } => factors.global_step(),
        }
    }

    /// One AdamW update on `batch`.
    pub(crate) fn step(&mut self, batch: &Batch) -> Result<(), MineError> {
        match self {
            Engine::Cpu(t) => {
                t.step(batch)?;
            }
            Engine::Device(t) => {
                t.step(batch)?;
            }
            Engine::DeviceLowRank { device, factors } => {
                let (loss, grads) = device.gradient(batch)?;
                factors.step_low_rank_from(loss, &grads, batch.len())?;
                device.load_params(factors.params())?;
            }
        }
        Ok(())
    }

    /// The full parameters (flat, `Layout` order), copied back from the device if there.
    pub(crate) fn params(&self) -> Result<Vec<f32>, MineError> {
        match self {
            Engine::Cpu(t) => Ok(t.params().to_vec()),
            Engine::Device(t) => Ok(t.params()?),
            Engine::DeviceLowRank { factors, .. } => Ok(factors.params().to_vec()),
        }
    }

    /// The optimizer state after the last step (copied back from the device if there).
    pub(crate) fn optimizer_state(&self) -> Result<OptimizerState, MineError> {
        match self {
            Engine::Cpu(t) => Ok(t.optimizer_state().clone()),
            Engine::Device(t) => Ok(t.optimizer_state()?),
            Engine::DeviceLowRank { factors, .. } => Ok(factors.optimizer_state().clone()),
        }
    }

    /// The update of a low-rank attempt (built from the CPU factors, device or not); a full-rank
    /// device attempt has none ([`Miner::mine`](crate::Miner::mine) never asks it).
    pub(crate) fn to_update(&self) -> Result<ModelUpdate, MineError> {
        match self {
            Engine::Cpu(t) => Ok(t.to_update()?),
            Engine::DeviceLowRank { factors, .. } => Ok(factors.to_update()?),
            Engine::Device(_) => Err(MineError::Train(rnet_training::TrainError::NotLowRank)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_gpu::Device;
    use rnet_model::{Model, ModelConfig, ModelNetwork, training_text};
    use rnet_training::lowrank::LowRankConfig;
    use rnet_training::{DataConfig, DataSource, TrainConfig};

    /// Low rank with the gradients from a device engine (here the device engine on its CPU
    /// backend, which computes the same forward and backward by another route) follows the CPU
    /// low-rank trainer step for step, and its update is the CPU trainer's kind of update.
    #[test]
    fn low_rank_with_device_gradients_follows_the_cpu_low_rank_trainer() {
        let config = ModelConfig::genesis(ModelNetwork::Regtest);
        let parent = Model::init(config.clone(), 5).expect("config");
        let train = TrainConfig { lr: 1e-2, warmup: 2, ..TrainConfig::default() };
        let low_rank = LowRankConfig { rank: 4, seed: 9, ..LowRankConfig::default() };
        let factors = || {
            Box::new(
                Trainer::new_low_rank(
                    parent.params().to_vec(),
                    config.clone(),
                    train.clone(),
                    low_rank.clone(),
                )
                .expect("low-rank trainer"),
            )
        };
        let mut cpu = Engine::Cpu(factors());
        let f = factors();
        let device = Device::Cpu
            .open()
            .expect("the CPU device")
            .trainer(f.params(), config.clone(), train.clone(), None)
            .expect("device trainer");
        let mut dev = Engine::DeviceLowRank { device: Box::new(device), factors: f };
        let text = &training_text()[..16_384];
        let data = DataConfig { window: config.window, holdout_fraction: 0.0, seed: 3 };
        let source = DataSource::from_static(text, data).expect("data");
        for k in 0..6 {
            let batch = source.batch(k, 4);
            cpu.step(&batch).expect("cpu step");
            dev.step(&batch).expect("device step");
        }
        assert_eq!(dev.global_step(), 6);
        let (a, b) = (cpu.params().expect("params"), dev.params().expect("params"));
        let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 1e-4 * scale, "effective weights differ by {worst} (scale {scale})");
        assert_ne!(b, parent.params(), "the factors moved");
        let (ua, ub) = (cpu.to_update().expect("update"), dev.to_update().expect("update"));
        assert_eq!(ua.entries().len(), ub.entries().len());
        assert_eq!(ua.encoded_len(), ub.encoded_len());
        // A full-rank device engine has no low-rank update.
        let full = Device::Cpu
            .open()
            .expect("the CPU device")
            .trainer(parent.params(), config, train, None)
            .expect("device trainer");
        assert!(Engine::Device(Box::new(full)).to_update().is_err());
    }
}
