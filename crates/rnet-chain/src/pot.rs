//! Proof-of-Training outside the chain lock.
//!
//! Evaluating a block's checkpoint takes seconds to minutes, and the chain state is shared
//! behind one lock. So the node takes a [`PotJob`] from the chain state (a short lock: the
//! parent's summary and where both checkpoints are; nothing is read or hashed under it), runs it
//! on its own worker without the lock (reading and checking the checkpoints there), and hands
//! the verdict back ([`crate::ChainState::record_pot_verdict`]). When fork choice later needs
//! the block's Proof-of-Training it uses the recorded verdict instead of evaluating again.
//!
//! Caching by block id is sound: the verdict is a function of the header (which commits to the
//! parent, the update and checkpoint roots and both claimed losses), the parent's summary and
//! checkpoint (fixed by the parent id) and the sample, which the context-free checks have pinned
//! to the records the header draws. A job only yields a verdict after those checks and the
//! update's and parent checkpoint's roots and sizes have passed, so a relay that corrupts the
//! sample, the update or a checkpoint gets no verdict recorded against the block.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rnet_consensus::{BlockError, HeaderSummary};
use rnet_primitives::{Block, BlockHash, BlockHeader};

use crate::checkpoints::{CheckpointFiles, StagedCheckpoint, checkpoint_root};
use crate::rules::ChainRules;

/// How many verdicts are kept (oldest dropped first). A verdict is consumed when the block is
/// validated, so only blocks still waiting for fork choice hold one.
const MAX_VERDICTS: usize = 64;

/// Where a [`PotJob`] gets checkpoint bytes from: bytes in hand, or a stored file read (and
/// checked against the block's committed root and size) when the job runs, outside the lock.
#[derive(Debug, Clone)]
pub enum CheckpointSource {
    /// Bytes in memory (a checkpoint that came with the block, or a node's cached copy).
    Bytes(Arc<Vec<u8>>),
    /// The stored file of a block.
    Stored {
        /// The checkpoint directory.
        files: CheckpointFiles,
        /// The block whose checkpoint it is.
        hash: BlockHash,
    },
}

impl CheckpointSource {
    /// The bytes, if they match `header`'s committed root and size.
    fn load(&self, header: &BlockHeader) -> Option<Arc<Vec<u8>>> {
        let bytes = match self {
            Self::Bytes(b) => b.clone(),
            Self::Stored { files, hash } => Arc::new(files.read(hash).ok()?),
        };
        (bytes.len() as u64 == header.checkpoint_size
            && checkpoint_root(&bytes) == header.checkpoint_root.0)
            .then_some(bytes)
    }
}

/// Everything Proof-of-Training of one block needs, taken from the chain state under its lock
/// and run without it.
#[derive(Debug, Clone)]
pub struct PotJob {
    /// The block.
    pub block: Block,
    /// The parent's header (it commits to the parent checkpoint's root and size).
    pub parent_header: BlockHeader,
    /// The parent's consensus summary.
    pub parent: HeaderSummary,
    /// The parent's checkpoint.
    pub parent_checkpoint: CheckpointSource,
    /// The block's model update (already checked against the header's update root).
    pub update: Arc<Vec<u8>>,
    /// The block is covered by `-assumevalid`: check everything but the evaluations.
    pub assumed_valid: bool,
}

impl PotJob {
    /// The block id.
    pub fn hash(&self) -> BlockHash {
        self.block.block_hash()
    }

    /// Runs the context-free checks, loads the parent's checkpoint (checked against its
    /// committed root and size) and runs Proof-of-Training, which derives the block's
    /// checkpoint from it and the update. `None` when the block, the update or the parent
    /// checkpoint is malformed, damaged or gone: nothing may be recorded against the block id
    /// then (the normal path rejects or re-fetches them without condemning the id); otherwise
    /// the verdict, with the derived checkpoint's bytes when it passed.
    pub fn run(&self, rules: &dyn ChainRules) -> Option<Result<Arc<Vec<u8>>, BlockError>> {
        let header = &self.block.header;
        rules.check_block(&self.block).ok()?;
        let update = &self.update;
        if update.len() as u64 != header.update_size
            || checkpoint_root(update) != header.update_root.0
        {
            return None;
        }
        let parent_checkpoint = self.parent_checkpoint.load(&self.parent_header)?;
        let sample = &self.block.sample;
        let verdict = if self.assumed_valid {
            tracing::debug!(hash = %self.hash(), "assumed valid: Proof-of-Training evaluations skipped");
            rules.check_proof_of_training_assumed(
                header,
                &self.parent,
                sample,
                &parent_checkpoint,
                update,
            )
        } else {
            rules.check_proof_of_training(header, &self.parent, sample, &parent_checkpoint, update)
        };
        Some(verdict.map(Arc::new))
    }
}

/// The outcome of Proof-of-Training: the derived checkpoint's bytes, or why the block fails.
pub type Verdict = Result<Arc<Vec<u8>>, BlockError>;

/// Verdicts computed by [`PotJob::run`], by block id, bounded.
#[derive(Debug, Default)]
pub(crate) struct PotVerdicts {
    order: VecDeque<BlockHash>,
    verdicts: HashMap<BlockHash, Verdict>,
    /// Derived checkpoints already written to disk outside the lock (dropped with their
    /// verdict; dropping deletes the file).
    staged: HashMap<BlockHash, StagedCheckpoint>,
}

impl PotVerdicts {
    /// Records a verdict, dropping the oldest beyond [`MAX_VERDICTS`].
    pub(crate) fn insert(&mut self, hash: BlockHash, verdict: Verdict) {
        if self.verdicts.insert(hash, verdict).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > MAX_VERDICTS {
            if let Some(old) = self.order.pop_front() {
                self.verdicts.remove(&old);
                self.staged.remove(&old);
            }
        }
    }

    /// Attaches the staged file of a recorded verdict's checkpoint (ignored without one).
    pub(crate) fn attach_staged(&mut self, hash: BlockHash, staged: StagedCheckpoint) {
        if self.verdicts.contains_key(&hash) {
            self.staged.insert(hash, staged);
        }
    }

    /// Takes the verdict of `hash`, if one was recorded, with its staged file if any.
    pub(crate) fn take(&mut self, hash: &BlockHash) -> Option<(Verdict, Option<StagedCheckpoint>)> {
        let verdict = self.verdicts.remove(hash)?;
        self.order.retain(|h| h != hash);
        Some((verdict, self.staged.remove(hash)))
    }

    /// Number of verdicts held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.verdicts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_bounded_and_taken_once() {
        let mut v = PotVerdicts::default();
        for i in 0..(MAX_VERDICTS as u8 + 10) {
            v.insert(BlockHash([i; 32]), Ok(Arc::new(vec![i])));
        }
        assert_eq!(v.len(), MAX_VERDICTS);
        assert!(v.take(&BlockHash([0; 32])).is_none(), "the oldest were dropped");
        let last = BlockHash([MAX_VERDICTS as u8 + 9; 32]);
        assert_eq!(v.take(&last).map(|(v, _)| v), Some(Ok(Arc::new(vec![MAX_VERDICTS as u8 + 9]))));
        assert!(v.take(&last).is_none());
        assert_eq!(v.len(), MAX_VERDICTS - 1);
    }
}
