//! Fee estimation from confirmed blocks ([`crate::Mempool::estimate_fee`]).
//!
//! For every connected block the pool records, for each transaction of the block that was in
//! the pool, its own fee rate and how many blocks it waited (`block height − tip height when it
//! entered`, at least 1). The estimate for a target of `n` blocks takes the samples of the last
//! `fee_history_blocks` blocks that waited at most `n` blocks and returns their
//! [`ESTIMATE_PERCENTILE`]th percentile (nearest rank) — conservative: three quarters of the
//! transactions that made it in time paid at most this — or `None` without a sample.

use std::collections::VecDeque;

use crate::policy::FeeRate;

/// Largest confirmation target answered (larger targets are clamped).
pub const MAX_TARGET: u32 = 1008;

/// Most samples kept per block (a block's samples are thinned evenly by rate above this).
pub const MAX_SAMPLES_PER_BLOCK: usize = 1000;

/// Percentile (of 100, nearest rank) of the qualifying fee rates that an estimate returns.
pub const ESTIMATE_PERCENTILE: usize = 75;

/// Samples of one confirmed block.
#[derive(Clone, Debug)]
struct BlockSamples {
    height: u32,
    /// (fee rate, blocks waited), sorted by rate.
    samples: Vec<(FeeRate, u32)>,
}

/// Confirmation history of the last blocks.
#[derive(Clone, Debug, Default)]
pub(crate) struct FeeEstimator {
    blocks: VecDeque<BlockSamples>,
}

impl FeeEstimator {
    /// Records the pooled transactions a block at `height` confirmed, keeping `history` blocks.
    pub fn record(&mut self, height: u32, mut samples: Vec<(FeeRate, u32)>, history: usize) {
        self.remove_block(height);
        samples.sort();
        if samples.len() > MAX_SAMPLES_PER_BLOCK {
            let n = samples.len();
            samples = (0..MAX_SAMPLES_PER_BLOCK)
                .map(|i| samples[i * n / MAX_SAMPLES_PER_BLOCK])
                .collect();
        }
        self.blocks.push_back(BlockSamples { height, samples });
        while self.blocks.len() > history {
            self.blocks.pop_front();
        }
    }

    /// Forgets the block at `height` (disconnected).
    pub fn remove_block(&mut self, height: u32) {
        self.blocks.retain(|b| b.height != height);
    }

    /// Number of samples recorded.
    #[cfg(test)]
    pub fn sample_count(&self) -> usize {
        self.blocks.iter().map(|b| b.samples.len()).sum()
    }

    /// The estimate for `target` blocks (clamped to `1..=MAX_TARGET`); see the module docs.
    pub fn estimate(&self, target: u32) -> Option<FeeRate> {
        let target = target.clamp(1, MAX_TARGET);
        let mut rates: Vec<FeeRate> = self
            .blocks
            .iter()
            .flat_map(|b| b.samples.iter())
            .filter(|(_, waited)| *waited <= target)
            .map(|(rate, _)| *rate)
            .collect();
        if rates.is_empty() {
            return None;
        }
        rates.sort_unstable();
        let index = (rates.len() * ESTIMATE_PERCENTILE).div_ceil(100).saturating_sub(1);
        rates.get(index.min(rates.len() - 1)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_and_targets() {
        let mut e = FeeEstimator::default();
        assert_eq!(e.estimate(1), None);
        let samples: Vec<(FeeRate, u32)> =
            (1..=8).map(|i| (FeeRate(i * 1000), if i <= 4 { 3 } else { 1 })).collect();
        e.record(10, samples, 100);
        // Target 1: rates 5000..=8000 qualify; 75th percentile of four = the third.
        assert_eq!(e.estimate(1), Some(FeeRate(7000)));
        // Target 3: all eight; the sixth.
        assert_eq!(e.estimate(3), Some(FeeRate(6000)));
        assert_eq!(e.estimate(0), e.estimate(1));
        e.remove_block(10);
        assert_eq!(e.estimate(3), None);
    }

    #[test]
    fn bounded_history() {
        let mut e = FeeEstimator::default();
        for h in 0..50 {
            e.record(h, vec![(FeeRate(1000), 1); 2000], 10);
        }
        assert_eq!(e.blocks.len(), 10);
        assert_eq!(e.sample_count(), 10 * MAX_SAMPLES_PER_BLOCK);
    }
}
