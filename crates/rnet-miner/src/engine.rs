//! The in-process training engine of one mining attempt: the CPU trainer (`rnet_training`, full or
//! low rank) or, with [`Miner::with_device`](crate::Miner::with_device), a [`DynTrainer`] on a
//! device (full rank). Either way the miner only steps it and reads the weights back; the weights
//! are then judged by the canonical CPU evaluator, so the device never decides validity.

use rnet_gpu::DynTrainer;
use rnet_model::ModelUpdate;
use rnet_training::{Batch, OptimizerState, Trainer};

use crate::{MineError, UpdateRank};

/// The trainer of one attempt.
pub(crate) enum Engine {
    /// The CPU engine (the default, and every low-rank attempt).
    Cpu(Box<Trainer>),
    /// The device engine (full rank only).
    Device(Box<DynTrainer>),
}

impl Engine {
    /// Updates taken so far.
    pub(crate) fn global_step(&self) -> u64 {
        match self {
            Engine::Cpu(t) => t.global_step(),
            Engine::Device(t) => t.global_step(),
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
        }
        Ok(())
    }

    /// The full parameters (flat, `Layout` order), copied back from the device if there.
    pub(crate) fn params(&self) -> Result<Vec<f32>, MineError> {
        match self {
            Engine::Cpu(t) => Ok(t.params().to_vec()),
            Engine::Device(t) => Ok(t.params()?),
        }
    }

    /// The optimizer state after the last step (copied back from the device if there).
    pub(crate) fn optimizer_state(&self) -> Result<OptimizerState, MineError> {
        match self {
            Engine::Cpu(t) => Ok(t.optimizer_state().clone()),
            Engine::Device(t) => Ok(t.optimizer_state()?),
        }
    }

    /// The update of a low-rank (`rank`) CPU attempt; a device attempt trains in full, so it has
    /// none ([`MineError::DeviceNeedsFull`]; [`Miner::mine`](crate::Miner::mine) never gets here).
    pub(crate) fn to_update(&self, rank: UpdateRank) -> Result<ModelUpdate, MineError> {
        match self {
            Engine::Cpu(t) => Ok(t.to_update()?),
            Engine::Device(t) => Err(MineError::DeviceNeedsFull { device: t.device(), rank }),
        }
    }
}
