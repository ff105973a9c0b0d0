//! `benchmark_loss`: the active tip model's canonical loss on the benchmark slice, the last
//! 64 KiB of the bundled text that consensus never samples and never rewards. It is the number a
//! user watches: does the shared model get better on text nobody was paid to fit?
//!
//! Evaluating it takes as long as one Proof-of-Training evaluation (seconds on mainnet), so it
//! never runs on the hot path: a background thread ([`run`]) evaluates each new tip once and the
//! RPC methods and the miner's log read the cached value ([`BenchmarkCache::latest`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rnet_primitives::BlockHash;

use crate::node::Node;

/// The benchmark loss of one block's model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchmarkLoss {
    /// The block whose checkpoint was evaluated.
    pub hash: BlockHash,
    /// Its height.
    pub height: u32,
    /// Canonical loss on the benchmark slice (micro-nats per byte).
    pub loss: u64,
}

/// The most recent benchmark loss (of the active tip once the thread has caught up).
#[derive(Debug, Default)]
pub struct BenchmarkCache {
    latest: Mutex<Option<BenchmarkLoss>>,
}

impl BenchmarkCache {
    /// The latest evaluated value, if any.
    pub fn latest(&self) -> Option<BenchmarkLoss> {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value for block `hash`, if that is the one evaluated last.
    pub fn for_block(&self, hash: &BlockHash) -> Option<u64> {
        self.latest().filter(|b| b.hash == *hash).map(|b| b.loss)
    }

    fn set(&self, value: BenchmarkLoss) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
    }
}

/// Evaluates the benchmark loss of the checkpoint of `hash` (the chain must still hold it).
pub fn evaluate_block(node: &Node, hash: &BlockHash) -> Result<u64, String> {
    let checkpoint = node.parsed_checkpoint(hash).map_err(|e| e.to_string())?;
    rnet_model::evaluate(&checkpoint.model, rnet_model::benchmark_slice())
        .map(|r| r.val_loss_micronats)
        .map_err(|e| e.to_string())
}

/// The background loop: whenever the active tip differs from the cached block and `interval`
/// has passed since the last evaluation began, evaluate the tip's model and cache the result.
/// Returns at shutdown.
pub fn run(node: &Node, interval: Duration) {
    let mut failed: Option<BlockHash> = None;
    let mut last: Option<Instant> = None;
    while !node.shutting_down() {
        let tip = node.chain().tip();
        let cached = node.benchmark.latest().map(|b| b.hash);
        let due = last.is_none_or(|t| t.elapsed() >= interval);
        if due && cached != Some(tip.hash) && failed != Some(tip.hash) {
            last = Some(Instant::now());
            match evaluate_block(node, &tip.hash) {
                Ok(loss) => {
                    tracing::info!(
                        height = tip.height,
                        benchmark_loss = loss,
                        loss_index = tip.loss_index,
                        "benchmark loss of the tip model"
                    );
                    node.benchmark.set(BenchmarkLoss { hash: tip.hash, height: tip.height, loss });
                }
                Err(e) => {
                    tracing::warn!(tip = %tip.hash, "benchmark loss unavailable: {e}");
                    failed = Some(tip.hash);
                }
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
