//! `-assumevalid` (docs/protocol.md Part V §7.1): the two Proof-of-Training evaluations of a
//! block are skipped when the block is the assumed-valid block or one of its ancestors. Every
//! other check still runs: headers and their signatures, the sample, the shape, the claimed
//! improvement, the checkpoint's bytes against the committed root and size and their strict
//! parse, and all transactions against the UTXO set.
//!
//! Blocks arrive in height order, so the assumed-valid block is usually not stored when its
//! ancestors are connected. Its ancestry comes from the headers the network has checked
//! ([`ChainState::note_headers`]) together with the block index.

use std::collections::HashMap;

use rnet_primitives::{BlockHash, BlockHeader};

use super::ChainState;
use crate::encoding::{IndexEntry, flags};
use crate::error::ChainError;

/// A block's place under snapshot sync (docs/protocol.md Part V §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SnapshotRole {
    /// Not covered: the block's model is derived from its update as usual.
    None,
    /// A strict ancestor of the assumed-valid block: needs no model data.
    Below,
    /// The assumed-valid block itself: its whole checkpoint stands in for its update.
    At,
}

/// Headers kept while the assumed-valid block's ancestry is unresolved (about 70 bytes each:
/// decades of mainnet blocks).
const MAX_NOTED_HEADERS: usize = 1 << 21;

/// The ancestry of the assumed-valid block.
#[derive(Debug, Default)]
pub(super) struct AssumedChain {
    /// Block ids by height, genesis first, ending at the assumed-valid block, once resolved
    /// (headers never change, so neither does the list).
    ids: Option<Vec<BlockHash>>,
    /// Headers learnt from peers while unresolved: id → (parent id, height).
    noted: HashMap<BlockHash, (BlockHash, u32)>,
    /// Whether headers were noted since the last failed resolution.
    dirty: bool,
}

impl ChainState {
    /// Headers the network has checked (signature, linkage to a known block), so that
    /// `-assumevalid` covers blocks whose descendant, the assumed-valid block, is not stored
    /// yet. Does nothing without `-assumevalid` or once the ancestry is resolved.
    pub fn note_headers(&mut self, headers: &[BlockHeader]) {
        let chain = &mut self.assumed_chain;
        if self.options.assume_valid.is_none() || chain.ids.is_some() {
            return;
        }
        for h in headers {
            if chain.noted.len() >= MAX_NOTED_HEADERS {
                break;
            }
            chain.noted.insert(h.hash(), (h.prev_block_hash, h.height));
            chain.dirty = true;
        }
    }

    /// Whether `hash` is a stored block or a header noted (or resolved) for `-assumevalid`: what
    /// a submitted header's parent must be.
    pub fn knows_header(&self, hash: &BlockHash) -> Result<bool, ChainError> {
        let chain = &self.assumed_chain;
        Ok(self.index_entry(hash)?.is_some()
            || chain.noted.contains_key(hash)
            || chain.ids.as_ref().is_some_and(|ids| ids.contains(hash)))
    }

    /// Whether `hash` at `height` is the assumed-valid block ([`super::ChainOptions`]) or an
    /// ancestor of it, and the assumed-valid block is not marked invalid.
    pub(super) fn is_assumed_valid(
        &mut self,
        hash: &BlockHash,
        height: u32,
    ) -> Result<bool, ChainError> {
        let Some(assumed) = self.options.assume_valid else { return Ok(false) };
        if let Some(entry) = self.index_entry(&assumed)? {
            if entry.status & flags::FAILED_MASK != 0 {
                return Ok(false);
            }
        }
        if self.assumed_chain.ids.is_none() && !self.resolve_assumed_chain(assumed)? {
            return Ok(false);
        }
        Ok(self.assumed_chain.ids.as_ref().and_then(|ids| ids.get(height as usize)) == Some(hash))
    }

    /// The block's role under snapshot sync ([`super::ChainOptions::snapshot_sync`]).
    pub(super) fn snapshot_role(
        &mut self,
        hash: &BlockHash,
        height: u32,
    ) -> Result<SnapshotRole, ChainError> {
        let Some(assumed) = self.options.assume_valid else { return Ok(SnapshotRole::None) };
        if !self.options.snapshot_sync || !self.is_assumed_valid(hash, height)? {
            return Ok(SnapshotRole::None);
        }
        Ok(if *hash == assumed { SnapshotRole::At } else { SnapshotRole::Below })
    }

    /// Whether `entry` can be connected without fetching anything of its own: stored, not
    /// failed, and either [`IndexEntry::is_connectable`] (validated, or its update stored) or
    /// covered by snapshot sync (an ancestor of the assumed-valid block, or that block with its
    /// checkpoint stored).
    pub(super) fn connectable(&mut self, entry: &IndexEntry) -> Result<bool, ChainError> {
        if entry.is_connectable() {
            return Ok(true);
        }
        if entry.is_failed() || !entry.has(flags::HAVE_DATA) {
            return Ok(false);
        }
        Ok(match self.snapshot_role(&entry.hash(), entry.header.height)? {
            SnapshotRole::Below => true,
            SnapshotRole::At => entry.has(flags::HAVE_CHECKPOINT),
            SnapshotRole::None => false,
        })
    }

    /// Builds the ancestry of `assumed` from stored and noted headers; false while a link is
    /// missing. Tried again only after more headers are noted (or the block is stored).
    fn resolve_assumed_chain(&mut self, assumed: BlockHash) -> Result<bool, ChainError> {
        let stored = self.index_entry(&assumed)?;
        if stored.is_none() && !self.assumed_chain.dirty {
            return Ok(false);
        }
        let link = |state: &Self, id: &BlockHash| -> Result<Option<(BlockHash, u32)>, ChainError> {
            if let Some(e) = state.index_entry(id)? {
                return Ok(Some((e.header.prev_block_hash, e.header.height)));
            }
            Ok(state.assumed_chain.noted.get(id).copied())
        };
        let Some((mut parent, top)) = link(self, &assumed)? else {
            self.assumed_chain.dirty = false;
            return Ok(false);
        };
        let mut ids = vec![assumed; top as usize + 1];
        for height in (0..top).rev() {
            match link(self, &parent)? {
                Some((grandparent, h)) if h == height => {
                    ids[height as usize] = parent;
                    parent = grandparent;
                }
                _ => {
                    self.assumed_chain.dirty = false;
                    return Ok(false);
                }
            }
        }
        if ids[0] != self.genesis {
            self.assumed_chain.dirty = false;
            return Ok(false);
        }
        tracing::info!(%assumed, height = top, "assumed-valid block located; its ancestors skip the Proof-of-Training evaluations");
        self.assumed_chain.ids = Some(ids);
        self.assumed_chain.noted = HashMap::new();
        Ok(true)
    }
}
