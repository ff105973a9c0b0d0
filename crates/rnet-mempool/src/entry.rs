//! One pooled transaction with its package statistics.

use rnet_primitives::{Amount, Transaction, Txid, Wtxid};

use crate::policy::FeeRate;

/// A transaction in the pool, with the statistics of its in-pool ancestors and descendants. The
/// ancestor and descendant figures **include the transaction itself** (as in Bitcoin Core).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolEntry {
    /// The transaction.
    pub tx: Transaction,
    /// Its txid.
    pub txid: Txid,
    /// Its wtxid.
    pub wtxid: Wtxid,
    /// Inputs minus outputs.
    pub fee: Amount,
    /// Serialized size in bytes (witness included).
    pub size: usize,
    /// Estimated memory use of the entry (its transaction's heap allocations plus its share of
    /// the pool's indexes), what the pool's size limit counts.
    pub usage: usize,
    /// Non-empty signatures its scripts check: what it takes from a block's signature budget
    /// (`ChainParams::max_block_sig_checks`).
    pub sig_checks: u32,
    /// When it entered the pool (unix seconds, the `now` given to `accept`).
    pub time: u64,
    /// The tip height when it entered the pool.
    pub height: u32,
    /// In-pool ancestors, itself included.
    pub ancestor_count: usize,
    /// Total size of itself and its in-pool ancestors.
    pub ancestor_size: usize,
    /// Total fees of itself and its in-pool ancestors.
    pub ancestor_fees: Amount,
    /// In-pool descendants, itself included.
    pub descendant_count: usize,
    /// Total size of itself and its in-pool descendants.
    pub descendant_size: usize,
    /// Total fees of itself and its in-pool descendants.
    pub descendant_fees: Amount,
}

impl MempoolEntry {
    /// Its own fee rate.
    pub fn fee_rate(&self) -> FeeRate {
        FeeRate::from_fee(self.fee, self.size)
    }

    /// Fee rate of the package of itself and its ancestors (what block assembly sorts by).
    pub fn ancestor_fee_rate(&self) -> FeeRate {
        FeeRate::from_fee(self.ancestor_fees, self.ancestor_size)
    }

    /// Fee rate of itself and its descendants (what eviction sorts by).
    pub fn descendant_fee_rate(&self) -> FeeRate {
        FeeRate::from_fee(self.descendant_fees, self.descendant_size)
    }
}

/// `a_fee / a_size` compared with `b_fee / b_size` exactly (no rounding).
pub(crate) fn cmp_rate(a_fee: u64, a_size: usize, b_fee: u64, b_size: usize) -> std::cmp::Ordering {
    let left = u128::from(a_fee) * b_size.max(1) as u128;
    let right = u128::from(b_fee) * a_size.max(1) as u128;
    left.cmp(&right)
}
