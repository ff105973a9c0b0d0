//! The `expired` table: every coin that an expiry sweep of the active chain removed, keyed by
//! outpoint, with the height of the block whose sweep removed it. It lets
//! [`crate::UtxoSnapshot`] answer `UtxoView::is_expired` exactly, so a spend of a coin that
//! expired any number of blocks ago is reported as `Expired` rather than missing (the mempool
//! then rejects it instead of keeping it as an orphan).
//!
//! The table is derived data: it equals the union of the `expired` lists of the undo records of
//! the active chain. Entries are added by the sweep in the connect transaction and removed when
//! that block is disconnected (in its disconnect transaction), so a crash never separates the
//! table from the UTXO set. An expired coin cannot be spent, and outpoints are unique (coinbase
//! txids commit to the height, other transactions spend unique coins), so nothing else adds or
//! removes an entry. Databases of schema version 2 (before the table) get it filled from the
//! undo records once, when opened ([`upgrade_from_v2`]).

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use rnet_primitives::OutPoint;
use rnet_primitives::encode::decode_exact;
use tracing::info;

use crate::encoding::{UndoRecord, outpoint_from_key, outpoint_key};
use crate::error::ChainError;
use crate::schema::{ACTIVE_CHAIN, EXPIRED, META, META_SCHEMA, SCHEMA_VERSION, UNDO, UTXO};
use crate::views::read_active;

fn corrupt(msg: impl Into<String>) -> ChainError {
    ChainError::Corrupt(msg.into())
}

/// Records that the sweep of the block at `height` expired `outpoint`.
pub(crate) fn record(
    table: &mut Table<&[u8], u32>,
    outpoint: &OutPoint,
    height: u32,
) -> Result<(), ChainError> {
    if let Some(earlier) = table.insert(outpoint_key(outpoint).as_slice(), height)? {
        return Err(corrupt(format!(
            "coin {outpoint:?} expired at {height} already expired at {}",
            earlier.value()
        )));
    }
    Ok(())
}

/// Forgets that the sweep of the block at `height`, which is being disconnected, expired
/// `outpoint` (the coin is restored to the UTXO set in the same transaction).
pub(crate) fn forget(
    table: &mut Table<&[u8], u32>,
    outpoint: &OutPoint,
    height: u32,
) -> Result<(), ChainError> {
    match table.remove(outpoint_key(outpoint).as_slice())?.map(|v| v.value()) {
        Some(h) if h == height => Ok(()),
        Some(h) => Err(corrupt(format!("coin {outpoint:?} expired at {h}, not at {height}"))),
        None => Err(corrupt(format!("expired coin {outpoint:?} not in the expired table"))),
    }
}

/// The height of the active-chain block whose sweep expired `outpoint`, if any.
pub(crate) fn expired_at(
    table: &impl ReadableTable<&'static [u8], u32>,
    outpoint: &OutPoint,
) -> Result<Option<u32>, ChainError> {
    Ok(table.get(outpoint_key(outpoint).as_slice())?.map(|v| v.value()))
}

/// Every `(outpoint, height)` the undo records of the active chain (tip height `tip`) list as
/// expired, lowest height first, through `each`.
fn for_each_in_undo(
    active: &impl ReadableTable<u32, &'static [u8]>,
    undo: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tip: u32,
    mut each: impl FnMut(&OutPoint, u32) -> Result<(), ChainError>,
) -> Result<(), ChainError> {
    // Genesis has no undo record (nothing to undo).
    for height in 1..=tip {
        let hash = read_active(active, height)?
            .ok_or_else(|| corrupt(format!("active chain has no block at {height}")))?;
        let bytes = undo
            .get(hash.as_bytes().as_slice())?
            .ok_or_else(|| corrupt(format!("active block {hash} has no undo data")))?;
        let record: UndoRecord = decode_exact(bytes.value()).map_err(ChainError::record("undo"))?;
        for (outpoint, _) in &record.expired {
            each(outpoint, height)?;
        }
        if height % 10_000 == 0 {
            info!(height, tip, "filling the expired-coin table");
        }
    }
    Ok(())
}

/// Upgrades a schema-2 database (no `expired` table) to the current schema inside `w`: fills the
/// table from the undo records of the active chain and sets `meta.schema_version`. One
/// transaction, so a crash leaves either the old database or the upgraded one. Cost: one read
/// of every active-chain undo record. Returns the number of expired coins recorded.
pub(crate) fn upgrade_from_v2(w: &WriteTransaction) -> Result<u64, ChainError> {
    // A table of that name cannot exist in schema 2; start from nothing all the same.
    w.delete_table(EXPIRED)?;
    let mut table = w.open_table(EXPIRED)?;
    let active = w.open_table(ACTIVE_CHAIN)?;
    let undo = w.open_table(UNDO)?;
    let tip = active.last()?.map(|(h, _)| h.value()).ok_or_else(|| corrupt("no active chain"))?;
    info!(blocks = tip, "upgrading the chainstate: recording expired coins from the undo data");
    let mut count = 0u64;
    for_each_in_undo(&active, &undo, tip, |outpoint, height| {
        record(&mut table, outpoint, height)?;
        count += 1;
        Ok(())
    })?;
    w.open_table(META)?.insert(META_SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())?;
    info!(expired_coins = count, schema = SCHEMA_VERSION, "upgraded the chainstate");
    Ok(count)
}

/// Checks that the table holds exactly the expired coins of the active chain's undo records
/// (tip height `tip`), each at its sweeping block's height, and that none is in the UTXO set.
pub(crate) fn verify(r: &ReadTransaction, tip: u32) -> Result<(), ChainError> {
    let table = r.open_table(EXPIRED)?;
    let utxo = r.open_table(UTXO)?;
    let mut count = 0u64;
    for_each_in_undo(&r.open_table(ACTIVE_CHAIN)?, &r.open_table(UNDO)?, tip, |outpoint, h| {
        if expired_at(&table, outpoint)? != Some(h) {
            return Err(corrupt(format!("coin {outpoint:?} expired at {h}, not so recorded")));
        }
        count += 1;
        Ok(())
    })?;
    if table.len()? != count {
        return Err(corrupt("expired table has entries no active sweep made"));
    }
    for item in table.iter()? {
        let (k, _) = item?;
        let outpoint = outpoint_from_key(k.value()).map_err(ChainError::record("expired"))?;
        if utxo.get(k.value())?.is_some() {
            return Err(corrupt(format!("expired coin {outpoint:?} is in the UTXO set")));
        }
    }
    Ok(())
}
