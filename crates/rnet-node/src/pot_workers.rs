//! Proof-of-Training on a bounded set of workers, outside the chain lock.
//!
//! Evaluating a block takes seconds (18 s at the mainnet genesis shape, minutes later). Before a
//! block is handed to the chain state, the caller's thread takes a [`rnet_chain::PotJob`] under
//! a short lock, waits for one of [`PotWorkers`]' permits, runs the job without any lock and
//! records the verdict; the chain state's fork choice then uses it instead of evaluating while
//! every RPC and peer waits for the lock. Blocks whose job cannot be prepared (an unknown or
//! never-validated parent, a missing update or parent checkpoint) fall back to evaluation
//! inside fork choice.

use rnet_chain::{CheckpointSource, ConsensusRules};
use rnet_consensus::ChainParams;
use rnet_primitives::Block;

use crate::node::Node;
use crate::permits::Permits;

/// A bound on concurrent evaluations, and the rules they run.
pub struct PotWorkers {
    rules: ConsensusRules,
    permits: Permits,
}

impl std::fmt::Debug for PotWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PotWorkers").field("permits", &self.permits).finish_non_exhaustive()
    }
}

impl PotWorkers {
    /// At most `workers` (at least one) evaluations at a time under `params`.
    pub fn new(params: ChainParams, workers: usize) -> Self {
        Self { rules: ConsensusRules::new(params), permits: Permits::new(workers) }
    }

    /// The default number of workers: half the cores (an evaluation is itself parallel), at
    /// least one.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get() / 2).max(1)
    }

    /// Evaluates `block` (with `update`, or its stored one) outside the chain lock when it can,
    /// and records the verdict (with the derived checkpoint) in the chain state. Returns whether
    /// a verdict was recorded.
    pub fn preverify(&self, node: &Node, block: &Block, update: Option<&[u8]>) -> bool {
        let job = match node.chain().pot_job(block, update) {
            Ok(Some(mut job)) => {
                // The parent is usually the tip, whose bytes the node keeps in memory.
                if let Some(bytes) = node.cached_checkpoint_bytes(&job.parent.hash) {
                    job.parent_checkpoint = CheckpointSource::Bytes(bytes);
                }
                job
            }
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot prepare Proof-of-Training outside the lock");
                return false;
            }
        };
        let hash = job.hash();
        let verdict = {
            let _permit = self.permits.acquire();
            let start = std::time::Instant::now();
            let verdict = job.run(&self.rules);
            metrics::histogram!("rnet_pot_evaluation_seconds")
                .record(start.elapsed().as_secs_f64());
            tracing::debug!(%hash, secs = start.elapsed().as_secs_f64(), ?verdict, "Proof-of-Training outside the lock");
            verdict
        };
        let Some(verdict) = verdict else { return false };
        // The derived checkpoint goes to disk here, outside the lock (write and fsync: about
        // 100 ms at the mainnet genesis shape, seconds for large models); fork choice then
        // only renames it.
        let staged = match &verdict {
            Ok(bytes) => match node.reader.stage_checkpoint_bytes(&hash, bytes) {
                Ok(staged) => Some(staged),
                Err(e) => {
                    tracing::warn!(%hash, error = %e, "cannot stage the derived checkpoint; it is written under the lock");
                    None
                }
            },
            Err(_) => None,
        };
        let mut chain = node.chain();
        chain.record_pot_verdict(hash, verdict);
        if let Some(staged) = staged {
            chain.record_staged_checkpoint(hash, staged);
        }
        true
    }
}
