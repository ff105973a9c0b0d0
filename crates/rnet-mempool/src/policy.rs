//! Relay policy: fee rates, the limits of [`MempoolPolicy`], and the chain tip a transaction is
//! validated against ([`TipContext`]).

use std::fmt;

use rnet_primitives::Amount;

/// A fee rate in **resonance per 1000 bytes** of serialized transaction (witness included:
/// ResonanceNet has no weight discount).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeeRate(pub u64);

impl FeeRate {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// A rate of `resonance` per 1000 bytes.
    pub const fn per_kb(resonance: u64) -> Self {
        Self(resonance)
    }

    /// The rate in resonance per 1000 bytes.
    pub const fn as_per_kb(self) -> u64 {
        self.0
    }

    /// The rate of paying `fee` for `size` bytes, rounded down (`u64::MAX` for `size == 0`).
    pub fn from_fee(fee: Amount, size: usize) -> Self {
        if size == 0 {
            return Self(u64::MAX);
        }
        let rate = u128::from(fee.0) * 1000 / size as u128;
        Self(u64::try_from(rate).unwrap_or(u64::MAX))
    }

    /// The fee this rate asks of `size` bytes, rounded up (saturating).
    pub fn fee_for(self, size: usize) -> Amount {
        let fee = (u128::from(self.0) * size as u128).div_ceil(1000);
        Amount(u64::try_from(fee).unwrap_or(u64::MAX))
    }

    /// `self + other`, saturating.
    pub const fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for FeeRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resonance/kB", self.0)
    }
}

/// Bytes a transaction spends to create and later spend one plain-key output (output 43 bytes:
/// value 8 + script length 1 + script 34; input 108 bytes: outpoint 36 + empty script_sig 1 +
/// sequence 4 + witness count 1 + signature 1 + 64 + marker share ~1), the basis of the dust
/// threshold.
pub const DUST_SPEND_SIZE: usize = 151;

/// Relay policy of a [`crate::Mempool`]. Every number is documented in `docs/mempool.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolPolicy {
    /// Lowest fee rate relayed and accepted (default 1000 resonance/kB).
    pub min_relay_fee_rate: FeeRate,
    /// Step added to the rate of an evicted package when raising the dynamic minimum fee
    /// (default 1000 resonance/kB).
    pub incremental_relay_fee_rate: FeeRate,
    /// Rate whose cost of creating and spending an output ([`DUST_SPEND_SIZE`]) is the dust
    /// threshold (default 3000 resonance/kB, i.e. 453 resonance).
    pub dust_relay_fee_rate: FeeRate,
    /// Largest memory use of the pooled transactions, as [`crate::Mempool::usage`] estimates
    /// it (transactions' heap allocations plus index overhead; default 300 MB, Core's
    /// `-maxmempool`).
    pub max_size_bytes: usize,
    /// Pooled transactions older than this many seconds are removed with their descendants
    /// (default 14 days, Core's `-mempoolexpiry`).
    pub mempool_expiry_secs: u64,
    /// Most in-pool ancestors of a transaction, itself included (default 25).
    pub max_ancestors: usize,
    /// Largest total size of a transaction and its in-pool ancestors (default 101 000 bytes).
    pub max_ancestor_size: usize,
    /// Most in-pool descendants of a transaction, itself included (default 25).
    pub max_descendants: usize,
    /// Largest total size of a transaction and its in-pool descendants (default 101 000 bytes).
    pub max_descendant_size: usize,
    /// Most transactions one replacement may evict, descendants included (default 100).
    pub max_replacements: usize,
    /// Full replace-by-fee: any conflicting transaction may be replaced (default `true`). When
    /// `false`, only transactions signalling BIP125 (some input sequence < `0xFFFFFFFE`) may.
    pub full_rbf: bool,
    /// Most orphans kept (default 100).
    pub max_orphans: usize,
    /// Largest memory use of the orphans, index entries included (default 10 000 000 bytes).
    pub max_orphan_bytes: usize,
    /// Orphans are dropped after this many seconds (default 1200).
    pub orphan_expiry_secs: u64,
    /// Largest standard transaction (default 100 000 bytes); larger ones are not relayed.
    pub max_tx_size: usize,
    /// Largest standard null-data (`OP_RETURN <data>`) output script (default 83 bytes).
    pub max_null_data_size: usize,
    /// Half-life of the dynamic minimum fee after an eviction raised it (default 43 200 s).
    pub min_fee_halflife_secs: u64,
    /// Blocks of confirmation history kept for fee estimation (default 100).
    pub fee_history_blocks: usize,
}

impl Default for MempoolPolicy {
    fn default() -> Self {
        Self {
            min_relay_fee_rate: FeeRate(1000),
            incremental_relay_fee_rate: FeeRate(1000),
            dust_relay_fee_rate: FeeRate(3000),
            max_size_bytes: 300_000_000,
            mempool_expiry_secs: 14 * 24 * 60 * 60,
            max_ancestors: 25,
            max_ancestor_size: 101_000,
            max_descendants: 25,
            max_descendant_size: 101_000,
            max_replacements: 100,
            full_rbf: true,
            max_orphans: 100,
            max_orphan_bytes: 10_000_000,
            orphan_expiry_secs: 20 * 60,
            max_tx_size: 100_000,
            max_null_data_size: 83,
            min_fee_halflife_secs: 12 * 60 * 60,
            fee_history_blocks: 100,
        }
    }
}

impl MempoolPolicy {
    /// The smallest standard value of a spendable output: `dust_relay_fee_rate` ×
    /// [`DUST_SPEND_SIZE`] (453 resonance by default).
    pub fn dust_threshold(&self) -> Amount {
        self.dust_relay_fee_rate.fee_for(DUST_SPEND_SIZE)
    }
}

/// The chain tip the pool validates against: transactions must be valid in the block at
/// `height + 1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TipContext {
    /// Height of the tip.
    pub height: u32,
    /// Median time past of the tip (the median of the last `median_time_span` block times
    /// ending at the tip): what the next block's lock times are checked against.
    pub median_time_past: u64,
    /// The tip's loss index, for the expiry rule.
    pub tip_loss_index: u64,
}

impl TipContext {
    /// The height of the next block (saturating).
    pub fn next_height(&self) -> u32 {
        self.height.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults() {
        let p = MempoolPolicy::default();
        assert_eq!(p.dust_threshold(), Amount(453));
        assert_eq!(FeeRate(1000).fee_for(250), Amount(250));
        assert_eq!(FeeRate(1).fee_for(1), Amount(1));
        assert_eq!(FeeRate::from_fee(Amount(250), 250), FeeRate(1000));
        assert_eq!(FeeRate::from_fee(Amount(1), 0), FeeRate(u64::MAX));
        assert_eq!(FeeRate(u64::MAX).fee_for(usize::MAX), Amount(u64::MAX));
    }

    proptest! {
        #[test]
        fn rate_of_fee_for_is_at_least_the_rate(rate in 0u64..1_000_000_000, size in 1usize..1_000_000) {
            let fee = FeeRate(rate).fee_for(size);
            prop_assert!(FeeRate::from_fee(fee, size) >= FeeRate(rate));
            prop_assert!(fee.0 <= (u128::from(rate) * size as u128 / 1000) as u64 + 1);
        }
    }
}
