//! Read-only views that answer consensus's questions from a database snapshot: [`UtxoSnapshot`]
//! implements [`UtxoView`], [`BranchView`] implements [`HeaderChain`].
//!
//! The consensus traits cannot return errors, so a database failure inside a lookup is recorded
//! and the lookup answers `None`; callers must check [`UtxoSnapshot::take_error`] /
//! [`BranchView::take_error`] after validation and prefer that error over the validation result
//! (a read failure must never make a valid block look invalid).

use std::cell::RefCell;

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable};
use rnet_consensus::{Coin, HeaderChain, HeaderSummary, UtxoView};
use rnet_primitives::encode::decode_exact;
use rnet_primitives::{BlockHash, OutPoint};

use crate::encoding::{IndexEntry, coin_from_bytes, hash_from_slice, outpoint_key};
use crate::error::ChainError;
use crate::schema::{ACTIVE_CHAIN, BLOCK_INDEX, EXPIRED, UTXO};

/// Reads the block index entry of `hash`.
pub(crate) fn read_entry(
    index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    hash: &BlockHash,
) -> Result<Option<IndexEntry>, ChainError> {
    match index.get(hash.as_bytes().as_slice())? {
        None => Ok(None),
        Some(v) => {
            let entry: IndexEntry =
                decode_exact(v.value()).map_err(ChainError::record("block_index"))?;
            if entry.hash() != *hash {
                return Err(ChainError::Corrupt(format!(
                    "index entry under {hash} has another id"
                )));
            }
            Ok(Some(entry))
        }
    }
}

/// Reads the active-chain hash at `height`.
pub(crate) fn read_active(
    active: &impl ReadableTable<u32, &'static [u8]>,
    height: u32,
) -> Result<Option<BlockHash>, ChainError> {
    match active.get(height)? {
        None => Ok(None),
        Some(v) => {
            Ok(Some(hash_from_slice(v.value()).map_err(ChainError::record("active_chain"))?))
        }
    }
}

/// The UTXO set as of one committed state of the chainstate (the active tip when it was taken).
///
/// It also answers [`UtxoView::is_expired`] exactly, from the `expired` table: every coin an
/// expiry sweep of the active chain removed, however long ago, so that a spend of an expired
/// coin is reported as expired rather than missing.
pub struct UtxoSnapshot {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
    expired: ReadOnlyTable<&'static [u8], u32>,
    error: RefCell<Option<ChainError>>,
}

impl UtxoSnapshot {
    pub(crate) fn new(txn: &ReadTransaction) -> Result<Self, ChainError> {
        Ok(Self {
            table: txn.open_table(UTXO)?,
            expired: txn.open_table(EXPIRED)?,
            error: RefCell::new(None),
        })
    }

    /// The height of the active-chain block whose expiry sweep removed the coin at `outpoint`
    /// (`None`: live, spent, or never existed), with database errors reported.
    pub fn expired_at(&self, outpoint: &OutPoint) -> Result<Option<u32>, ChainError> {
        crate::expired::expired_at(&self.expired, outpoint)
    }

    /// The coin at `outpoint`, with database errors reported.
    pub fn get(&self, outpoint: &OutPoint) -> Result<Option<Coin>, ChainError> {
        match self.table.get(outpoint_key(outpoint).as_slice())? {
            None => Ok(None),
            Some(v) => Ok(Some(coin_from_bytes(v.value()).map_err(ChainError::record("utxo"))?)),
        }
    }

    /// The first error a [`UtxoView::coin`] lookup hit, if any (cleared by this call).
    pub fn take_error(&self) -> Option<ChainError> {
        self.error.borrow_mut().take()
    }
}

impl UtxoView for UtxoSnapshot {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        match self.get(outpoint) {
            Ok(c) => c,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                None
            }
        }
    }

    /// Whether an expiry sweep of the active chain removed the coin at `outpoint` (one lookup).
    fn is_expired(&self, outpoint: &OutPoint) -> bool {
        match self.expired_at(outpoint) {
            Ok(at) => at.is_some(),
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                false
            }
        }
    }
}

/// The branch of the block index that ends at a given block, as consensus sees it: ancestors by
/// height. Blocks on the active chain are found through the `active_chain` table; the part of the
/// branch off the active chain is walked once when the view is built (O(branch length)).
///
/// Every block of the branch must have been validated (its summary set).
pub struct BranchView {
    tip: HeaderSummary,
    /// Summaries of the off-active-chain part, from `fork_height + 1` up to the tip.
    side: Vec<HeaderSummary>,
    /// Highest height at which the branch and the active chain agree.
    fork_height: u32,
    active: ReadOnlyTable<u32, &'static [u8]>,
    index: ReadOnlyTable<&'static [u8], &'static [u8]>,
    error: RefCell<Option<ChainError>>,
}

impl BranchView {
    pub(crate) fn new(txn: &ReadTransaction, tip: &BlockHash) -> Result<Self, ChainError> {
        let active = txn.open_table(ACTIVE_CHAIN)?;
        let index = txn.open_table(BLOCK_INDEX)?;
        let mut side = Vec::new();
        let mut cursor = *tip;
        let fork_height = loop {
            let entry = read_entry(&index, &cursor)?.ok_or(ChainError::UnknownBlock(cursor))?;
            let height = entry.header.height;
            if read_active(&active, height)? == Some(cursor) {
                break height;
            }
            let summary = entry.summary.ok_or_else(|| {
                ChainError::Corrupt(format!("branch block {cursor} has no summary"))
            })?;
            side.push(summary);
            if height == 0 {
                return Err(ChainError::Corrupt("a second genesis in the block index".into()));
            }
            cursor = entry.header.prev_block_hash;
        };
        side.reverse();
        let tip = match side.last() {
            Some(s) => s.clone(),
            None => read_entry(&index, tip)?
                .and_then(|e| e.summary)
                .ok_or_else(|| ChainError::Corrupt(format!("active block {tip} has no summary")))?,
        };
        Ok(Self { tip, side, fork_height, active, index, error: RefCell::new(None) })
    }

    /// The summary of the ancestor at `height`, with database errors reported.
    pub fn get(&self, height: u32) -> Result<Option<HeaderSummary>, ChainError> {
        if height > self.tip.height {
            return Ok(None);
        }
        if height > self.fork_height {
            return Ok(self.side.get((height - self.fork_height - 1) as usize).cloned());
        }
        let Some(hash) = read_active(&self.active, height)? else {
            return Err(ChainError::Corrupt(format!("active chain has no block at {height}")));
        };
        let entry = read_entry(&self.index, &hash)?.ok_or(ChainError::UnknownBlock(hash))?;
        entry
            .summary
            .map(Some)
            .ok_or_else(|| ChainError::Corrupt(format!("active block {hash} has no summary")))
    }

    /// The first error an [`HeaderChain::ancestor`] lookup hit, if any (cleared by this call).
    pub fn take_error(&self) -> Option<ChainError> {
        self.error.borrow_mut().take()
    }
}

impl HeaderChain for BranchView {
    fn ancestor(&self, height: u32) -> Option<HeaderSummary> {
        match self.get(height) {
            Ok(s) => s,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                None
            }
        }
    }

    fn tip(&self) -> HeaderSummary {
        self.tip.clone()
    }
}

/// A [`BranchView`] extended by blocks that are not connected yet: fork choice walks a candidate
/// branch from its fork point, checking each header and its Proof-of-Training against the
/// branch below it, and pushes each block's provisional summary
/// (`rnet_consensus::summarize_header`) before checking the next.
pub(crate) struct ExtendedBranch<'a> {
    base: &'a BranchView,
    extra: Vec<HeaderSummary>,
}

impl<'a> ExtendedBranch<'a> {
    /// The branch `base` with nothing added yet.
    pub(crate) fn new(base: &'a BranchView) -> Self {
        Self { base, extra: Vec::new() }
    }

    /// Adds the next block's summary (its parent must be the current tip).
    pub(crate) fn push(&mut self, summary: HeaderSummary) {
        self.extra.push(summary);
    }
}

impl HeaderChain for ExtendedBranch<'_> {
    fn ancestor(&self, height: u32) -> Option<HeaderSummary> {
        let base_height = self.base.tip.height;
        if height <= base_height {
            return self.base.ancestor(height);
        }
        self.extra.get((height - base_height - 1) as usize).cloned()
    }

    fn tip(&self) -> HeaderSummary {
        self.extra.last().cloned().unwrap_or_else(|| self.base.tip())
    }
}
