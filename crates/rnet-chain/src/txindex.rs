//! The optional transaction index (`rnetd -txindex`, as Bitcoin Core's): txid → the
//! active-chain block that holds the transaction, so `getrawtransaction` finds any confirmed
//! transaction with one lookup instead of scanning blocks.
//!
//! The index changes in the same write transaction as the active chain (a block's txids are
//! added when it connects and removed when it disconnects), so it is never ahead of or behind
//! the chain. When it is first enabled, [`build`] fills it from the stored blocks of the active
//! chain and only then sets `meta.txindex`; opening without the option deletes it (a later
//! re-enable rebuilds it rather than trusting a stale index).

use redb::{Database, ReadableTable, WriteTransaction};
use rnet_primitives::{Block, BlockHash};
use tracing::info;

use crate::error::ChainError;
use crate::reader::ChainReader;
use crate::schema::{META, META_TXINDEX, TX_INDEX};

/// Adds the txids of `block` (id `hash`), which is being connected, inside `w`.
pub(crate) fn add_block(
    w: &WriteTransaction,
    block: &Block,
    hash: &BlockHash,
) -> Result<(), ChainError> {
    let mut table = w.open_table(TX_INDEX)?;
    for tx in &block.transactions {
        table.insert(tx.txid().as_bytes().as_slice(), hash.as_bytes().as_slice())?;
    }
    Ok(())
}

/// Removes the txids of `block` (id `hash`), which is being disconnected, inside `w` (an entry
/// that points elsewhere — the same transaction in an earlier active block — is kept).
pub(crate) fn remove_block(
    w: &WriteTransaction,
    block: &Block,
    hash: &BlockHash,
) -> Result<(), ChainError> {
    let mut table = w.open_table(TX_INDEX)?;
    for tx in &block.transactions {
        let key = tx.txid();
        let points_here =
            table.get(key.as_bytes().as_slice())?.is_some_and(|v| v.value() == hash.as_bytes());
        if points_here {
            table.remove(key.as_bytes().as_slice())?;
        }
    }
    Ok(())
}

/// Makes the index match `enabled`: builds it over the active chain (tip height `height`) when
/// enabled and incomplete, deletes it when disabled. Returns the number of blocks indexed.
pub(crate) fn sync(
    db: &Database,
    reader: &ChainReader,
    height: u32,
    enabled: bool,
    durable: impl Fn(&mut WriteTransaction),
) -> Result<u32, ChainError> {
    let complete = reader.txindex_ready()?;
    if !enabled {
        if complete || reader.txindex_len()? > 0 {
            let mut w = db.begin_write()?;
            durable(&mut w);
            w.delete_table(TX_INDEX)?;
            w.open_table(META)?.remove(META_TXINDEX)?;
            w.commit()?;
            info!("deleted the transaction index (-txindex is off)");
        }
        return Ok(0);
    }
    if complete {
        return Ok(0);
    }
    info!(blocks = height + 1, "building the transaction index");
    // One write transaction per batch of blocks keeps memory flat on long chains.
    const BATCH: u32 = 1_000;
    let mut start = 0;
    while start <= height {
        let end = height.min(start.saturating_add(BATCH - 1));
        let mut w = db.begin_write()?;
        durable(&mut w);
        for h in start..=end {
            let hash = reader
                .block_hash_at(h)?
                .ok_or_else(|| crate::chainstate::corrupt(format!("no active block at {h}")))?;
            let block = reader
                .block(&hash)?
                .ok_or_else(|| crate::chainstate::corrupt(format!("no data for {hash}")))?;
            add_block(&w, &block, &hash)?;
        }
        if end == height {
            w.open_table(META)?.insert(META_TXINDEX, [1u8].as_slice())?;
        }
        w.commit()?;
        if end < height {
            info!(indexed = end + 1, of = height + 1, "building the transaction index");
        }
        start = end + 1;
    }
    info!(blocks = height + 1, "transaction index ready");
    Ok(height + 1)
}
