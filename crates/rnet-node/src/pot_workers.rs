//! Proof-of-Training on a bounded set of workers, outside the chain lock.
//!
//! Evaluating a block takes seconds (18 s at the mainnet genesis shape, minutes later). Before a
//! block is handed to the chain state, the caller's thread takes a [`rnet_chain::PotJob`] under
//! a short lock, waits for one of [`PotWorkers`]' permits, runs the job without any lock and
//! records the verdict; the chain state's fork choice then uses it instead of evaluating while
//! every RPC and peer waits for the lock. Blocks whose job cannot be prepared (an unknown or
//! never-validated parent, a missing checkpoint) fall back to evaluation inside fork choice.

use std::sync::{Condvar, Mutex};

use rnet_chain::{CheckpointSource, ConsensusRules};
use rnet_consensus::ChainParams;
use rnet_primitives::Block;

use crate::node::Node;

/// A counting semaphore bounding concurrent evaluations, and the rules they run.
pub struct PotWorkers {
    rules: ConsensusRules,
    free: Mutex<usize>,
    freed: Condvar,
}

impl std::fmt::Debug for PotWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PotWorkers").field("free", &self.free).finish_non_exhaustive()
    }
}

/// A held permit; frees its slot when dropped.
struct Permit<'a>(&'a PotWorkers);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

impl PotWorkers {
    /// At most `workers` (at least one) evaluations at a time under `params`.
    pub fn new(params: ChainParams, workers: usize) -> Self {
        Self {
            rules: ConsensusRules::new(params),
            free: Mutex::new(workers.max(1)),
            freed: Condvar::new(),
        }
    }

    /// The default number of workers: half the cores (an evaluation is itself parallel), at
    /// least one.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get() / 2).max(1)
    }

    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }

    /// Evaluates `block` (with `checkpoint`, or its stored one) outside the chain lock when it
    /// can, and records the verdict in the chain state. Returns whether a verdict was recorded.
    pub fn preverify(&self, node: &Node, block: &Block, checkpoint: Option<&[u8]>) -> bool {
        let job = match node.chain().pot_job(block, checkpoint) {
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
            let _permit = self.acquire();
            let start = std::time::Instant::now();
            let verdict = job.run(&self.rules);
            tracing::debug!(%hash, secs = start.elapsed().as_secs_f64(), ?verdict, "Proof-of-Training outside the lock");
            verdict
        };
        match verdict {
            Some(verdict) => {
                node.chain().record_pot_verdict(hash, verdict);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn permits_bound_concurrency() {
        let workers = Arc::new(PotWorkers::new(ChainParams::regtest(), 2));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (w, running, peak) = (workers.clone(), running.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _p = w.acquire();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(*workers.free.lock().unwrap(), 2, "every permit came back");
    }
}
