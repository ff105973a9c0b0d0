//! Optimizer continuity from one mined block to the next.
//!
//! A block's model is the miner's trained weights (a full-rank update replaces every changed
//! tensor, so the checkpoint is those weights with subnormals flushed). When the next job builds
//! on that very block, the miner can go on training where it stopped instead of starting AdamW
//! from zero moments: the first moments and the second-moment scale it learnt stay valid, and the
//! step count keeps the bias correction and the learning-rate schedule where they were. Starting
//! over every block throws that away and makes the first updates of each block sign-like steps of
//! full size (Adam's first step is `lr · sign(g)`), which costs part of what the block just gained.
//!
//! [`WarmStart`] holds the optimizer state of the last block the miner mined, keyed by that
//! block's hash. A job on any other parent (someone else's block, a reorg) starts from zero
//! moments, as before. A grown shape is carried over by [`OptimizerState::remap`] (new rows and
//! columns start at zero). Only the miner's own speed depends on this; validators never see it.

use std::sync::Mutex;

use rnet_primitives::BlockHash;
use rnet_training::OptimizerState;

/// The optimizer state left by the last block this miner mined (see the module docs).
#[derive(Debug, Default)]
pub struct WarmStart {
    slot: Mutex<Option<(BlockHash, OptimizerState)>>,
}

impl WarmStart {
    /// Empty: the next block starts from zero moments.
    pub fn new() -> Self {
        Self::default()
    }

    /// The block whose optimizer state is held, and that state's update count.
    pub fn held(&self) -> Option<(BlockHash, u64)> {
        self.lock().as_ref().map(|(hash, state)| (*hash, state.step))
    }

    /// Takes the held state if it was left by `parent` (the block the next job builds on);
    /// a state left by another block is dropped, since it can never be used again.
    pub(crate) fn take_after(&self, parent: &BlockHash) -> Option<OptimizerState> {
        match self.lock().take() {
            Some((hash, state)) if hash == *parent => Some(state),
            _ => None,
        }
    }

    /// Holds `state`, left by training the model of `block`.
    pub(crate) fn keep(&self, block: BlockHash, state: OptimizerState) {
        *self.lock() = Some((block, state));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(BlockHash, OptimizerState)>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}
