//! The benchmark loss of recent blocks, for the loss plot.
//!
//! The node caches only the latest value ([`crate::benchmark::BenchmarkCache`]). The dashboard
//! records every value that cache takes and, with `-benchmarkloss` on, back-fills the blocks it
//! missed (those mined before the dashboard started, or while the benchmark thread was busy):
//! one block at a time, newest first, only while the node's own benchmark thread is caught up
//! with the tip, only blocks whose model is still stored (the last `-prunemodels`), and at most
//! [`BACKFILL_DEPTH`] blocks deep. Each back-filled value costs one benchmark evaluation, as the
//! node's thread spends per block. Values live in memory only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rnet_model::Checkpoint;
use rnet_primitives::BlockHash;

use crate::node::Node;

/// How far below the tip blocks are back-filled.
pub const BACKFILL_DEPTH: u32 = 144;

/// Most values kept (oldest heights dropped first).
pub const MAX_KEPT: usize = 4096;

/// How often the recorder looks at the cache when there is nothing to back-fill.
const POLL: Duration = Duration::from_millis(250);

/// Benchmark losses by block (micro-nats per byte), with the block's height.
#[derive(Debug, Default)]
pub struct BenchmarkHistory {
    /// `None`: the block's evaluation failed (never retried).
    values: Mutex<HashMap<BlockHash, (u32, Option<u64>)>>,
}

impl BenchmarkHistory {
    /// The recorded loss of block `hash`.
    pub fn get(&self, hash: &BlockHash) -> Option<u64> {
        self.lock().get(hash).and_then(|(_, loss)| *loss)
    }

    /// Records the loss of block `hash` at `height` (`None`: it could not be evaluated),
    /// dropping the lowest heights beyond [`MAX_KEPT`].
    pub fn insert(&self, hash: BlockHash, height: u32, loss: Option<u64>) {
        let mut values = self.lock();
        values.insert(hash, (height, loss));
        while values.len() > MAX_KEPT {
            let Some(lowest) = values.iter().min_by_key(|(_, (h, _))| *h).map(|(k, _)| *k) else {
                break;
            };
            values.remove(&lowest);
        }
    }

    /// Number of recorded values.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BlockHash, (u32, Option<u64>)>> {
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Until the node shuts down: records each value of the node's benchmark cache and, with
    /// `backfill`, evaluates missing recent blocks (module documentation).
    pub fn follow(&self, node: &Node, backfill: bool) {
        while !node.shutting_down() {
            if let Some(b) = node.benchmark.latest() {
                self.insert(b.hash, b.height, Some(b.loss));
            }
            let next = if backfill { self.next_missing(node) } else { None };
            match next {
                Some((hash, height)) => match evaluate_stored(node, &hash) {
                    Ok(loss) => self.insert(hash, height, Some(loss)),
                    Err(e) => {
                        tracing::debug!(%hash, "dashboard: no benchmark loss: {e}");
                        self.insert(hash, height, None);
                    }
                },
                None => std::thread::sleep(POLL),
            }
        }
    }

    /// The highest active block within [`BACKFILL_DEPTH`] of the tip that has no value and a
    /// stored model, once the node's benchmark thread has evaluated the tip.
    fn next_missing(&self, node: &Node) -> Option<(BlockHash, u32)> {
        let tip = node.reader.tip().ok()?;
        if node.benchmark.latest().map(|b| b.hash) != Some(tip.hash) {
            return None;
        }
        let lowest = tip.height.saturating_sub(BACKFILL_DEPTH);
        (lowest..=tip.height).rev().find_map(|h| {
            let hash = node.reader.block_hash_at(h).ok()??;
            let missing = self.lock().get(&hash).is_none();
            (missing && node.reader.has_checkpoint(&hash).ok()?).then_some((hash, h))
        })
    }
}

/// The benchmark loss of block `hash`'s stored model, read straight from the chain reader (not
/// through the node's checkpoint cache, which holds the tip's model for the miner and peers).
fn evaluate_stored(node: &Node, hash: &BlockHash) -> Result<u64, String> {
    let bytes =
        node.reader.checkpoint(hash).map_err(|e| e.to_string())?.ok_or("model not stored")?;
    let checkpoint = Checkpoint::from_bytes(&bytes).map_err(|e| e.to_string())?;
    rnet_model::evaluate(&checkpoint.model, rnet_model::benchmark_slice())
        .map(|r| r.val_loss_micronats)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_heights() {
        let history = BenchmarkHistory::default();
        for h in 0..(MAX_KEPT as u32 + 10) {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&h.to_le_bytes());
            history.insert(BlockHash(id), h, Some(h.into()));
        }
        assert!(history.len() <= MAX_KEPT);
        let values = history.lock();
        let lowest = values.values().map(|(h, _)| *h).min().unwrap();
        assert!(lowest >= 10, "the lowest heights were dropped first: {lowest}");
    }

    #[test]
    fn failed_evaluations_are_remembered_without_a_value() {
        let history = BenchmarkHistory::default();
        let hash = BlockHash([7; 32]);
        history.insert(hash, 3, None);
        assert_eq!(history.get(&hash), None);
        assert_eq!(history.len(), 1, "remembered, so not evaluated again");
        history.insert(hash, 3, Some(5));
        assert_eq!(history.get(&hash), Some(5));
    }
}
