//! Reading the chain without the chain lock.
//!
//! [`ChainReader`] is a cheap, cloneable handle on the chain database and the checkpoint files.
//! Every query opens a redb read transaction: a consistent snapshot of the last committed state,
//! unaffected by writes that commit while it runs. So RPC reads (`getblock`, `gettxoutsetinfo`,
//! `getrawtransaction`, …) never wait for, or hold up, block validation; the chain state keeps
//! the lock only for what changes the chain. [`crate::ChainState`] answers the same queries
//! through its own reader.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableTable, ReadableTableMetadata};
use rnet_consensus::{Coin, HeaderSummary};
use rnet_crypto::keccak::Keccak256dWriter;
use rnet_primitives::encode::decode_exact;
use rnet_primitives::{
    Amount, Block, BlockHash, BlockHeader, Hash256, OutPoint, Transaction, Txid,
};

use crate::chainstate::{
    BlockInfo, BlockStatus, ChainTip, ChainTipStatus, UtxoStats, corrupt, read_meta,
};
use crate::checkpoints::{
    CheckpointFiles, StageMode, StagedCheckpoint, checkpoint_root, file_chunk_hashes,
};
use crate::encoding::{
    CheckpointRecord, IndexEntry, coin_from_bytes, flags, hash_from_slice, outpoint_from_key,
};
use crate::error::ChainError;
use crate::schema::*;
use crate::views::{BranchView, UtxoSnapshot, read_active, read_entry};

/// The result of reading or opening a recorded checkpoint's file: a missing file is corruption
/// (the record says it is there).
fn stored_file<T>(hash: &BlockHash, opened: std::io::Result<T>) -> Result<T, ChainError> {
    match opened {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(corrupt(format!("checkpoint file of {hash} is missing")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A stored checkpoint opened for serving: the file, its size and its chunk hashes (checked
/// against the committed root when opened; on Unix the open file stays readable even if the
/// checkpoint is pruned meanwhile).
#[derive(Debug)]
pub struct CheckpointFile {
    /// The open file.
    pub file: std::fs::File,
    /// Its size in bytes.
    pub size: u64,
    /// Keccak-256d of each chunk, in order.
    pub chunk_hashes: Vec<[u8; 32]>,
}

/// A read-only handle on the chain (see the module documentation). Clone it freely; the
/// database stays open while any handle lives, so drop them before reopening the chain state.
#[derive(Clone)]
pub struct ChainReader {
    db: Arc<Database>,
    files: CheckpointFiles,
}

impl std::fmt::Debug for ChainReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainReader").field("files", &self.files).finish_non_exhaustive()
    }
}

/// The active tip's id as committed in `r`.
fn tip_of(r: &ReadTransaction) -> Result<BlockHash, ChainError> {
    let meta = r.open_table(META)?;
    let tip = read_meta(&meta, META_TIP)?.ok_or_else(|| corrupt("no tip"))?;
    hash_from_slice(&tip).map_err(ChainError::record("meta"))
}

impl ChainReader {
    pub(crate) fn new(db: Arc<Database>, files: CheckpointFiles) -> Self {
        Self { db, files }
    }

    fn read(&self) -> Result<ReadTransaction, ChainError> {
        Ok(self.db.begin_read()?)
    }

    /// The active tip's summary, as last committed.
    pub fn tip(&self) -> Result<HeaderSummary, ChainError> {
        let tip = tip_of(&self.read()?)?;
        self.header_summary(&tip)?.ok_or_else(|| corrupt(format!("tip {tip} has no summary")))
    }

    /// The active-chain block at `height`.
    pub fn block_hash_at(&self, height: u32) -> Result<Option<BlockHash>, ChainError> {
        read_active(&self.read()?.open_table(ACTIVE_CHAIN)?, height)
    }

    pub(crate) fn is_active(&self, hash: &BlockHash, height: u32) -> Result<bool, ChainError> {
        Ok(self.block_hash_at(height)? == Some(*hash))
    }

    pub(crate) fn index_entry(&self, hash: &BlockHash) -> Result<Option<IndexEntry>, ChainError> {
        read_entry(&self.read()?.open_table(BLOCK_INDEX)?, hash)
    }

    pub(crate) fn stored_block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        let r = self.read()?;
        let table = r.open_table(BLOCKS)?;
        let Some(v) = table.get(hash.as_bytes().as_slice())? else { return Ok(None) };
        let block = Block::from_bytes(v.value()).map_err(ChainError::record("blocks"))?;
        if block.block_hash() != *hash {
            return Err(corrupt(format!("stored block {hash} has another id")));
        }
        Ok(Some(block))
    }

    /// A stored block (any branch).
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        self.stored_block(hash)
    }

    /// A known header (any branch, including invalid ones).
    pub fn header(&self, hash: &BlockHash) -> Result<Option<BlockHeader>, ChainError> {
        Ok(self.index_entry(hash)?.map(|e| e.header))
    }

    /// The consensus summary of a validated block.
    pub fn header_summary(&self, hash: &BlockHash) -> Result<Option<HeaderSummary>, ChainError> {
        Ok(self.index_entry(hash)?.and_then(|e| e.summary))
    }

    /// The validation state of a known block.
    pub fn block_status(&self, hash: &BlockHash) -> Result<Option<BlockStatus>, ChainError> {
        Ok(self.index_entry(hash)?.map(|e| BlockStatus::of(&e)))
    }

    /// Everything the index knows about a block.
    pub fn block_info(&self, hash: &BlockHash) -> Result<Option<BlockInfo>, ChainError> {
        let Some(e) = self.index_entry(hash)? else { return Ok(None) };
        Ok(Some(BlockInfo {
            in_active_chain: self.is_active(hash, e.header.height)?,
            status: BlockStatus::of(&e),
            has_checkpoint: e.has(flags::HAVE_CHECKPOINT),
            sequence: e.seq,
            chainwork: e.chainwork,
            summary: e.summary,
            header: e.header,
        }))
    }

    /// The unspent coin at `outpoint` after the tip.
    pub fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, ChainError> {
        UtxoSnapshot::new(&self.read()?)?.get(outpoint)
    }

    /// A consistent read-only view of the UTXO set after the current tip (implements
    /// `UtxoView`; later writes do not affect it).
    pub fn utxo_snapshot(&self) -> Result<UtxoSnapshot, ChainError> {
        UtxoSnapshot::new(&self.read()?)
    }

    /// The branch ending at the validated block `tip` (implements `HeaderChain`): what consensus
    /// needs to validate or build a block on top of `tip`.
    pub fn header_chain(&self, tip: &BlockHash) -> Result<BranchView, ChainError> {
        BranchView::new(&self.read()?, tip)
    }

    /// Whether the checkpoint of `hash` is stored.
    pub fn has_checkpoint(&self, hash: &BlockHash) -> Result<bool, ChainError> {
        Ok(self.read()?.open_table(CHECKPOINTS)?.get(hash.as_bytes().as_slice())?.is_some())
    }

    /// The checkpoint bytes of `hash`, checked against the root and size the header commits to
    /// (a damaged file is reported as corrupt, never returned). `None` if not stored (never
    /// received, or pruned).
    pub fn checkpoint(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, ChainError> {
        let Some(record) = self.checkpoint_record(hash)? else { return Ok(None) };
        let bytes = stored_file(hash, self.files.read(hash))?;
        if bytes.len() as u64 != record.size || checkpoint_root(&bytes) != record.root {
            return Err(corrupt(format!("checkpoint file of {hash} is damaged")));
        }
        Ok(Some(bytes))
    }

    /// The checkpoint file of `hash`, open for reading, with its size and chunk hashes, checked
    /// against the record by streaming the file (bounded memory whatever its size): what serving
    /// a checkpoint to peers needs, without holding it in memory. `None` if not stored; a
    /// missing or damaged file is [`ChainError::Corrupt`].
    pub fn checkpoint_file(&self, hash: &BlockHash) -> Result<Option<CheckpointFile>, ChainError> {
        let Some(record) = self.checkpoint_record(hash)? else { return Ok(None) };
        let file = stored_file(hash, self.files.open_file(hash))?;
        let damaged = || corrupt(format!("checkpoint file of {hash} is damaged"));
        if file.metadata()?.len() != record.size {
            return Err(damaged());
        }
        let chunk_hashes = match file_chunk_hashes(&file, record.size) {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(damaged()),
            Err(e) => return Err(e.into()),
        };
        if rnet_model::checkpoint::merkle_root(&chunk_hashes) != record.root {
            return Err(damaged());
        }
        Ok(Some(CheckpointFile { file, size: record.size, chunk_hashes }))
    }

    /// The stored record (size and root) of the checkpoint of `hash`, if any.
    fn checkpoint_record(&self, hash: &BlockHash) -> Result<Option<CheckpointRecord>, ChainError> {
        let r = self.read()?;
        let table = r.open_table(CHECKPOINTS)?;
        let Some(v) = table.get(hash.as_bytes().as_slice())? else { return Ok(None) };
        decode_exact::<CheckpointRecord>(v.value())
            .map(Some)
            .map_err(ChainError::record("checkpoints"))
    }

    /// Stages `src` as a candidate checkpoint of `hash` ([`CheckpointFiles::stage`]): moved or
    /// copied into the checkpoint directory and measured by streaming, without the chain lock.
    /// Hand the result to `ChainState::accept_staged_checkpoint`.
    pub fn stage_checkpoint(
        &self,
        hash: &BlockHash,
        src: &std::path::Path,
        mode: StageMode,
    ) -> Result<StagedCheckpoint, ChainError> {
        Ok(self.files.stage(hash, src, mode)?)
    }

    /// Stages checkpoint bytes derived outside the chain lock ([`CheckpointFiles::stage_bytes`]:
    /// written and fsynced now, renamed into place when fork choice stores them). Hand the
    /// result to `ChainState::record_staged_checkpoint`.
    pub fn stage_checkpoint_bytes(
        &self,
        hash: &BlockHash,
        bytes: &[u8],
    ) -> Result<StagedCheckpoint, ChainError> {
        Ok(self.files.stage_bytes(hash, bytes)?)
    }

    /// Whether the model update of `hash` is stored.
    pub fn has_update(&self, hash: &BlockHash) -> Result<bool, ChainError> {
        Ok(self.read()?.open_table(UPDATES)?.get(hash.as_bytes().as_slice())?.is_some())
    }

    /// The model update bytes of `hash` (checked against the header's root and size before
    /// they were stored). `None` if not stored (never received, or pruned).
    pub fn update(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, ChainError> {
        let r = self.read()?;
        let table = r.open_table(UPDATES)?;
        Ok(table.get(hash.as_bytes().as_slice())?.map(|v| v.value().to_vec()))
    }

    /// All branch tips (blocks without children, plus the active tip), like `getchaintips`.
    pub fn chain_tips(&self) -> Result<Vec<ChainTip>, ChainError> {
        let r = self.read()?;
        let tip_hash = tip_of(&r)?;
        let index = r.open_table(BLOCK_INDEX)?;
        let active = r.open_table(ACTIVE_CHAIN)?;
        let mut parents = HashSet::new();
        for item in r.open_table(CHILDREN)?.iter()? {
            let (k, _) = item?;
            parents
                .insert(hash_from_slice(&k.value()[..32]).map_err(ChainError::record("children"))?);
        }
        let mut tips = Vec::new();
        for item in index.iter()? {
            let (k, _) = item?;
            let hash = hash_from_slice(k.value()).map_err(ChainError::record("block_index"))?;
            if parents.contains(&hash) && hash != tip_hash {
                continue;
            }
            let tip = read_entry(&index, &hash)?.ok_or(ChainError::UnknownBlock(hash))?;
            let (height, val_loss, chainwork) =
                (tip.header.height, tip.header.val_loss, tip.chainwork);
            let mut status = if hash == tip_hash {
                ChainTipStatus::Active
            } else if tip.is_failed() {
                ChainTipStatus::Invalid
            } else {
                ChainTipStatus::ValidFork
            };
            let mut branch_len = 0;
            let mut cursor = tip;
            while read_active(&active, cursor.header.height)? != Some(cursor.hash()) {
                branch_len += 1;
                if !cursor.has(flags::HAVE_DATA) {
                    if status != ChainTipStatus::Invalid {
                        status = ChainTipStatus::HeadersOnly;
                    }
                } else if !cursor.has(flags::VALID_FULL) && status == ChainTipStatus::ValidFork {
                    status = ChainTipStatus::ValidHeaders;
                }
                let parent = cursor.header.prev_block_hash;
                cursor = read_entry(&index, &parent)?.ok_or(ChainError::UnknownBlock(parent))?;
            }
            tips.push(ChainTip { hash, height, val_loss, chainwork, branch_len, status });
        }
        tips.sort_by_key(|t| (t.status != ChainTipStatus::Active, Reverse(t.chainwork), t.height));
        Ok(tips)
    }

    /// The canonical hash of the UTXO set (see `docs/chainstate.md`): Keccak-256d over every
    /// (outpoint ‖ coin) in ascending order of the 36-byte outpoint encoding, followed by the
    /// coin count and the total value (u64 LE each).
    pub fn utxo_set_hash(&self) -> Result<Hash256, ChainError> {
        Ok(self.utxo_stats()?.hash)
    }

    /// Count, total value and canonical hash of the UTXO set after the tip (O(set size)).
    pub fn utxo_stats(&self) -> Result<UtxoStats, ChainError> {
        let r = self.read()?;
        let tip = tip_of(&r)?;
        let height = read_entry(&r.open_table(BLOCK_INDEX)?, &tip)?.map_or(0, |e| e.header.height);
        let mut hasher = Keccak256dWriter::new();
        let mut count = 0u64;
        let mut total = Amount::ZERO;
        for item in r.open_table(UTXO)?.iter()? {
            let (k, v) = item?;
            outpoint_from_key(k.value()).map_err(ChainError::record("utxo"))?;
            let coin = coin_from_bytes(v.value()).map_err(ChainError::record("utxo"))?;
            hasher.update(k.value());
            hasher.update(v.value());
            count += 1;
            total = total
                .checked_add(coin.output.value)
                .ok_or_else(|| corrupt("UTXO value overflows"))?;
        }
        hasher.update(&count.to_le_bytes());
        hasher.update(&total.0.to_le_bytes());
        Ok(UtxoStats { count, total_value: total, hash: Hash256(hasher.finalize()), tip, height })
    }

    /// Number of entries in the expiry index (equals the UTXO count in a consistent state).
    pub fn expiry_index_len(&self) -> Result<u64, ChainError> {
        Ok(self.read()?.open_table(EXPIRY_INDEX)?.len()?)
    }

    /// Number of entries in the expired-coin table (the coins the sweeps of the active chain
    /// removed).
    pub fn expired_len(&self) -> Result<u64, ChainError> {
        Ok(self.read()?.open_table(EXPIRED)?.len()?)
    }

    /// Whether the transaction index is enabled and complete (`-txindex`).
    pub fn txindex_ready(&self) -> Result<bool, ChainError> {
        Ok(read_meta(&self.read()?.open_table(META)?, META_TXINDEX)?.is_some())
    }

    /// Number of transactions in the index (0 when it does not exist).
    pub(crate) fn txindex_len(&self) -> Result<u64, ChainError> {
        match self.read()?.open_table(TX_INDEX) {
            Ok(t) => Ok(t.len()?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// A confirmed transaction and the active-chain block holding it, by the transaction
    /// index: `Ok(None)` when unknown, `Err(ChainError::NoTxIndex)` when the index is off.
    pub fn indexed_transaction(
        &self,
        txid: &Txid,
    ) -> Result<Option<(Transaction, BlockHash)>, ChainError> {
        let r = self.read()?;
        if read_meta(&r.open_table(META)?, META_TXINDEX)?.is_none() {
            return Err(ChainError::NoTxIndex);
        }
        let table = r.open_table(TX_INDEX)?;
        let Some(v) = table.get(txid.as_bytes().as_slice())? else { return Ok(None) };
        let hash = hash_from_slice(v.value()).map_err(ChainError::record("tx_index"))?;
        drop(table);
        drop(r);
        let block = self
            .stored_block(&hash)?
            .ok_or_else(|| corrupt(format!("indexed block {hash} missing")))?;
        let tx = block
            .transactions
            .into_iter()
            .find(|t| t.txid() == *txid)
            .ok_or_else(|| corrupt(format!("tx {txid} not in its indexed block {hash}")))?;
        Ok(Some((tx, hash)))
    }
}
