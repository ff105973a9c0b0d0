//! The redb tables of the chainstate (documented in `docs/chainstate.md`).

use redb::TableDefinition;

/// Version of the table layout and record encodings; bumped on any incompatible change.
/// Version 3 added [`EXPIRED`]; a version-2 database is upgraded when opened (filled from the
/// undo records), and code that only knows version 2 refuses a version-3 one, so the table can
/// never fall behind the chain. Version 4 added [`UPDATES`] (created when a version-2 or -3
/// database is opened).
pub const SCHEMA_VERSION: u32 = 4;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "chainstate.redb";

/// Directory (inside the data directory) holding checkpoint files.
pub const CHECKPOINT_DIR: &str = "checkpoints";

/// `meta`: string key → value bytes (see the `META_*` keys).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `block_index`: block hash → encoded `IndexEntry`.
pub const BLOCK_INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("block_index");
/// `children`: parent hash ‖ child hash → ().
pub const CHILDREN: TableDefinition<&[u8], ()> = TableDefinition::new("children");
/// `active_chain`: height → block hash of the active chain.
pub const ACTIVE_CHAIN: TableDefinition<u32, &[u8]> = TableDefinition::new("active_chain");
/// `blocks`: block hash → consensus encoding of the block.
pub const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
/// `undo`: block hash → encoded `UndoRecord` (blocks of the active chain only).
pub const UNDO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("undo");
/// `utxo`: outpoint (txid ‖ vout LE) → encoded coin.
pub const UTXO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("utxo");
/// `expiry_index`: creation_loss_index BE u64 ‖ outpoint → ().
pub const EXPIRY_INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("expiry_index");
/// `expired`: outpoint (txid ‖ vout LE) → height (u32) of the active-chain block whose expiry
/// sweep removed the coin (every such coin; see the crate's `expired` module).
pub const EXPIRED: TableDefinition<&[u8], u32> = TableDefinition::new("expired");
/// `checkpoints`: block hash → encoded `CheckpointRecord` (the bytes live in a file).
pub const CHECKPOINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("checkpoints");
/// Block hash → the block's model update bytes (checked against the header's `update_root`
/// and `update_size` before they are stored; at most `max_update_bytes`).
pub const UPDATES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("updates");
/// `checkpoint_heights`: height BE u32 ‖ block hash → () (pruning order).
pub const CHECKPOINT_HEIGHTS: TableDefinition<&[u8], ()> =
    TableDefinition::new("checkpoint_heights");

/// `meta` key: schema version, u32 LE.
pub const META_SCHEMA: &str = "schema_version";
/// `meta` key: network name (its `Display` form).
pub const META_NETWORK: &str = "network";
/// `meta` key: genesis block hash.
pub const META_GENESIS: &str = "genesis";
/// `meta` key: active tip hash.
pub const META_TIP: &str = "tip";
/// `meta` key: next first-seen sequence number, u64 LE.
pub const META_NEXT_SEQ: &str = "next_seq";

/// `tx_index` (only with `ChainOptions::txindex`): txid → hash of the active-chain block that
/// holds the transaction.
pub const TX_INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tx_index");
/// `meta` key: present (value `[1]`) while `tx_index` covers the whole active chain.
pub const META_TXINDEX: &str = "txindex";
