//! The chainstate: block index, blocks, checkpoints, the UTXO set with its expiry index, undo
//! data, fork choice and reorganisations, on one redb database.
//!
//! This module holds the types, the [`ChainState`] struct, opening and the read accessors; the
//! protocol's steps live in child modules: [`accept`] (accepting blocks and checkpoints),
//! [`fork_choice`] (best branch, validation before reorganising), [`connect`] (connect and
//! disconnect the tip), [`checkpoint_store`] (wanted, damaged and pruned checkpoints),
//! [`invalidation`] (invalid marks, invalidate / reconsider) and [`assume_valid`]
//! (`-assumevalid`).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Database, ReadTransaction, ReadableTable, ReadableTableMetadata, Table, WriteTransaction,
};
use rnet_consensus::BlockError;
use rnet_consensus::{Coin, HeaderChain, HeaderSummary};
use rnet_primitives::encode::{decode_exact, encode_to_vec};
use rnet_primitives::{Amount, Block, BlockHash, BlockHeader, Hash256, MAX_MONEY, OutPoint, Txid};
use tracing::{debug, info, warn};

use crate::checkpoints::{CheckpointFiles, StagedCheckpoint, checkpoint_root};
use crate::encoding::{
    CheckpointRecord, IndexEntry, UndoRecord, child_key, coin_bytes, coin_from_bytes, expiry_key,
    flags, hash_from_slice, height_key, outpoint_from_key, outpoint_key, parse_expiry_key,
};
use crate::error::ChainError;
use crate::pot::{CheckpointSource, PotJob, PotVerdicts, Verdict};
use crate::reader::ChainReader;
use crate::rules::{ChainRules, ConsensusRules};
use crate::schema::*;
use crate::views::{BranchView, ExtendedBranch, UtxoSnapshot, read_active, read_entry};

mod accept;
mod assume_valid;
mod checkpoint_store;
mod connect;
mod fork_choice;
mod invalidation;
use assume_valid::SnapshotRole;

/// Default of [`ChainOptions::prune_checkpoints_depth`]: one day of mainnet blocks.
pub const DEFAULT_PRUNE_CHECKPOINTS_DEPTH: u32 = 144;

/// How many blocks a stored branch may reach above its last fully validated ancestor. A block
/// whose parent is not validated gets its contextual header check against the header summaries
/// of that stretch; the bound keeps the check cheap and the unvalidated data a peer can make us
/// store finite ([`ChainError::TooFarAboveValidated`]). Two days of mainnet blocks.
pub const MAX_UNVALIDATED_DEPTH: u32 = 288;

/// Tunables of a chainstate (none of them is consensus).
#[derive(Clone, Debug)]
pub struct ChainOptions {
    /// Keep the checkpoints of the last `K` blocks of the active chain (`0` = archive mode, keep
    /// every checkpoint). The tip's checkpoint is always kept. Below that window, checkpoints of
    /// validated and invalid blocks are pruned, and so are those of never-validated side-branch
    /// blocks whose branch cannot become best (no stored descendant claims the tip's
    /// chainwork); an in-progress branch that may still win keeps its checkpoints.
    pub prune_checkpoints_depth: u32,
    /// Memory redb may use for its page cache, in bytes.
    pub cache_size: usize,
    /// Make every commit durable before it returns (fsync; redb 2-phase commit with quick
    /// repair) and fsync checkpoint files. Turning it off keeps atomicity and survives a crash
    /// of the process (the OS still holds the writes) but not of the machine: for tests and
    /// throw-away nodes only.
    pub sync_writes: bool,
    /// Keep the transaction index (`-txindex`; see the crate's `txindex` module).
    pub txindex: bool,
    /// `-assumevalid`: skip the Proof-of-Training evaluations of this block and its ancestors
    /// (every other check still runs; docs/protocol.md Part V §7.1). `None` evaluates every
    /// block.
    pub assume_valid: Option<BlockHash>,
    /// Snapshot sync (docs/protocol.md Part V §7.2): with `assume_valid` set, the ancestors of
    /// the assumed-valid block need no model data at all, and the assumed-valid block needs
    /// its whole checkpoint (fetched from a peer, checked against its committed root) instead
    /// of its update. Transactions are still checked for every block.
    pub snapshot_sync: bool,
}

impl Default for ChainOptions {
    fn default() -> Self {
        Self {
            prune_checkpoints_depth: DEFAULT_PRUNE_CHECKPOINTS_DEPTH,
            cache_size: 256 << 20,
            sync_writes: true,
            txindex: false,
            assume_valid: None,
            snapshot_sync: true,
        }
    }
}

/// What [`ChainState::accept_block`] did with a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// The active tip changed (the block, or a branch it completed, became the best chain).
    Connected {
        /// The new active tip.
        new_tip: HeaderSummary,
        /// Blocks connected, in order (the mempool removes their transactions).
        connected: Vec<BlockHash>,
        /// Blocks disconnected, tip first (the mempool re-adds their transactions).
        disconnected: Vec<BlockHash>,
    },
    /// Stored; its branch does not beat the active tip (fork choice: most chainwork, ties to the
    /// first seen).
    StoredSideBranch,
    /// Stored, but its model update (or an ancestor's, or the checkpoint of the validated
    /// block it builds on) is missing, so it cannot be validated yet; supply it with
    /// [`ChainState::accept_update`] (or [`ChainState::accept_checkpoint`]).
    MissingUpdate,
    /// The block was already stored.
    AlreadyHave,
    /// The parent is unknown; nothing was stored. Fetch the parent, then submit again.
    Orphan {
        /// The unknown parent.
        missing_parent: BlockHash,
    },
}

/// The validation state of a block in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockStatus {
    /// Only the header is known.
    HeaderValid,
    /// The block is stored but has not been validated (connected) yet.
    DataStored,
    /// The block was connected successfully (valid in full).
    FullyValid,
    /// The block is invalid (or was invalidated by the operator).
    Invalid,
    /// An ancestor of the block is invalid.
    InvalidChild,
}

impl BlockStatus {
    pub(crate) fn of(entry: &IndexEntry) -> Self {
        if entry.has(flags::FAILED) {
            Self::Invalid
        } else if entry.has(flags::FAILED_CHILD) {
            Self::InvalidChild
        } else if entry.has(flags::VALID_FULL) {
            Self::FullyValid
        } else if entry.has(flags::HAVE_DATA) {
            Self::DataStored
        } else {
            Self::HeaderValid
        }
    }
}

/// Everything the index knows about one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// The header.
    pub header: BlockHeader,
    /// Validation state.
    pub status: BlockStatus,
    /// Whether the block is on the active chain.
    pub in_active_chain: bool,
    /// Whether its checkpoint is stored.
    pub has_checkpoint: bool,
    /// The consensus summary (set once the block has been validated).
    pub summary: Option<HeaderSummary>,
    /// First-seen order among connectable blocks (0: not connectable yet).
    pub sequence: u64,
    /// Chainwork up to this block (claimed from headers until the block is validated).
    pub chainwork: u128,
}

/// Status of a branch tip, as in Bitcoin Core's `getchaintips`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainTipStatus {
    /// The tip of the active chain.
    Active,
    /// A fully validated branch that is not active.
    ValidFork,
    /// The branch's blocks are stored but not all validated.
    ValidHeaders,
    /// Some block of the branch has only its header.
    HeadersOnly,
    /// The branch contains an invalid block.
    Invalid,
}

/// One branch tip (a block without children, or the active tip).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainTip {
    /// The tip's hash.
    pub hash: BlockHash,
    /// The tip's height.
    pub height: u32,
    /// The tip's (claimed, unless validated) `val_loss`.
    pub val_loss: u64,
    /// The branch's (claimed, unless validated) chainwork.
    pub chainwork: u128,
    /// Blocks between the tip and the active chain (0 for the active tip).
    pub branch_len: u32,
    /// Status of the branch.
    pub status: ChainTipStatus,
}

/// Statistics of the UTXO set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UtxoStats {
    /// Number of coins.
    pub count: u64,
    /// Sum of their values.
    pub total_value: Amount,
    /// The canonical set hash ([`ChainState::utxo_set_hash`]).
    pub hash: Hash256,
    /// Active tip the statistics belong to.
    pub tip: BlockHash,
    /// Height of that tip.
    pub height: u32,
}

/// What one call of [`ChainState::activate_best_chain`] changed.
#[derive(Debug, Default)]
pub struct Activation {
    /// Blocks connected, in order.
    pub connected: Vec<BlockHash>,
    /// Blocks disconnected, tip first.
    pub disconnected: Vec<BlockHash>,
    /// Blocks found invalid, with the consensus reason.
    pub invalid: Vec<(BlockHash, BlockError)>,
}

impl Activation {
    fn merge(&mut self, other: Activation) {
        self.connected.extend(other.connected);
        self.disconnected.extend(other.disconnected);
        self.invalid.extend(other.invalid);
    }
}

/// Test-only fault injection: where the next block connect (or disconnect) stops, inside its
/// write transaction, after some of the UTXO changes are written and before the commit.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailPoint {
    /// Connect returns [`ChainError::FailPoint`]; the transaction is dropped uncommitted.
    ErrorMidConnect,
    /// Connect panics.
    PanicMidConnect,
    /// Connect creates this file, then sleeps until the process is killed.
    HangMidConnect(PathBuf),
    /// Disconnect returns [`ChainError::FailPoint`] after restoring some coins.
    ErrorMidDisconnect,
}

/// Result of trying to connect one block on the tip.
enum Step {
    Connected,
    Invalid(BlockError),
    /// Cannot be validated now (checkpoint missing or damaged, a temporary failure).
    Unavailable,
}

/// Fork-choice order: most chainwork first, then first seen, then id.
type Key = (Reverse<u128>, u64, BlockHash);

/// The durable chainstate of one network.
pub struct ChainState {
    db: Arc<Database>,
    /// Answers every read query (also usable without the chain lock: [`ChainState::reader`]).
    reader: ChainReader,
    rules: Box<dyn ChainRules>,
    options: ChainOptions,
    files: CheckpointFiles,
    genesis: BlockHash,
    tip: HeaderSummary,
    tip_seq: u64,
    /// Connectable blocks that may beat the tip, ordered by (most chainwork, first-seen, hash); the
    /// tip itself is always present. Derived data: rebuilt from the index on open.
    candidates: BTreeSet<Key>,
    fail_point: Option<FailPoint>,
    /// Proof-of-Training verdicts computed outside the lock ([`crate::pot`]).
    pot_verdicts: PotVerdicts,
    /// Blocks whose data is stored but whose model update is not (never received, lost with a
    /// partial download), most chainwork first: what the node asks peers for
    /// ([`ChainState::wanted_updates`]). Derived data: rebuilt on open.
    awaiting_update: BTreeSet<(Reverse<u128>, BlockHash)>,
    /// Validated blocks whose checkpoint is needed (the parent of a block to validate, pruned
    /// or dropped as damaged), most chainwork first ([`ChainState::wanted_checkpoints`]).
    /// Derived data: filled as validation finds them missing.
    awaiting_checkpoint: BTreeSet<(Reverse<u128>, BlockHash)>,
    /// The ancestry of [`ChainOptions::assume_valid`], once known.
    assumed_chain: assume_valid::AssumedChain,
}

fn set_durability(w: &mut WriteTransaction, sync: bool) {
    if sync {
        // Durable on return, and 2-phase commit with saved allocator state, so reopening after
        // a crash needs no full repair.
        w.set_quick_repair(true);
    } else {
        w.set_durability(redb::Durability::Eventual);
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn corrupt(msg: impl Into<String>) -> ChainError {
    ChainError::Corrupt(msg.into())
}

fn entry_key(e: &IndexEntry) -> Key {
    (Reverse(e.chainwork), if e.seq == 0 { u64::MAX } else { e.seq }, e.hash())
}

fn put_entry(table: &mut Table<&[u8], &[u8]>, entry: &IndexEntry) -> Result<(), ChainError> {
    table.insert(entry.hash().as_bytes().as_slice(), encode_to_vec(entry).as_slice())?;
    Ok(())
}

pub(crate) fn read_meta(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, ChainError> {
    Ok(table.get(key)?.map(|v| v.value().to_vec()))
}

fn meta_u64(bytes: &[u8], what: &str) -> Result<u64, ChainError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| corrupt(format!("meta {what}")))?;
    Ok(u64::from_le_bytes(arr))
}

fn children_of(
    table: &impl ReadableTable<&'static [u8], ()>,
    parent: &BlockHash,
) -> Result<Vec<BlockHash>, ChainError> {
    let lo = child_key(parent, &BlockHash::ZERO);
    let hi = child_key(parent, &BlockHash([0xFF; 32]));
    let mut out = Vec::new();
    for item in table.range(lo.as_slice()..=hi.as_slice())? {
        let (k, _) = item?;
        out.push(hash_from_slice(&k.value()[32..]).map_err(ChainError::record("children"))?);
    }
    Ok(out)
}

impl ChainState {
    /// Opens (creating on first use) the chainstate in `datadir` with the production consensus
    /// rules of `params` and default options. A fresh data directory gets the genesis state.
    pub fn open(
        datadir: impl AsRef<Path>,
        params: rnet_consensus::ChainParams,
    ) -> Result<Self, ChainError> {
        Self::open_with(datadir, Box::new(ConsensusRules::new(params)), ChainOptions::default())
    }

    /// Opens the chainstate with explicit rules and options.
    ///
    /// Opening never connects or disconnects blocks: after a crash in the middle of a
    /// reorganisation the tip is a consistent intermediate block; call
    /// [`ChainState::activate_best_chain`] to finish.
    pub fn open_with(
        datadir: impl AsRef<Path>,
        rules: Box<dyn ChainRules>,
        options: ChainOptions,
    ) -> Result<Self, ChainError> {
        let datadir = datadir.as_ref();
        std::fs::create_dir_all(datadir)?;
        let db = Database::builder()
            .create_with_file_format_v3(true)
            .set_cache_size(options.cache_size)
            .create(datadir.join(DB_FILE))?;
        let files = CheckpointFiles::open(datadir.join(CHECKPOINT_DIR), options.sync_writes)?;
        let genesis_block = rules.genesis_block();
        let genesis = genesis_block.block_hash();

        let mut w = db.begin_write()?;
        set_durability(&mut w, options.sync_writes);
        let fresh = {
            let meta = w.open_table(META)?;
            read_meta(&meta, META_SCHEMA)?.is_none()
        };
        if fresh {
            Self::init_genesis(&w, rules.as_ref(), &files, &genesis_block)?;
            w.commit()?;
            info!(%genesis, network = %rules.network(), "created chainstate");
        } else {
            let meta = w.open_table(META)?;
            let schema = read_meta(&meta, META_SCHEMA)?.unwrap_or_default();
            let schema = u32::from_le_bytes(
                schema.as_slice().try_into().map_err(|_| corrupt("meta schema_version"))?,
            );
            let upgrade = match schema {
                SCHEMA_VERSION => None,
                2 | 3 => Some(schema),
                _ => return Err(ChainError::UnsupportedSchema(schema)),
            };
            let network = read_meta(&meta, META_NETWORK)?.unwrap_or_default();
            if network != rules.network().to_string().as_bytes() {
                return Err(ChainError::WrongNetwork {
                    expected: rules.network(),
                    found: String::from_utf8_lossy(&network).into_owned(),
                });
            }
            let found = read_meta(&meta, META_GENESIS)?.unwrap_or_default();
            let found = hash_from_slice(&found).map_err(ChainError::record("meta"))?;
            if found != genesis {
                return Err(ChainError::WrongGenesis { expected: genesis, found });
            }
            drop(meta);
            if let Some(from) = upgrade {
                if from == 2 {
                    crate::expired::upgrade_from_v2(&w)?;
                }
                w.open_table(UPDATES)?;
                w.open_table(META)?.insert(META_SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())?;
                w.commit()?;
            } else {
                w.abort()?;
            }
        }

        let db = Arc::new(db);
        let mut state = Self {
            reader: ChainReader::new(db.clone(), files.clone()),
            db,
            rules,
            options,
            files,
            genesis,
            tip: HeaderSummary {
                hash: genesis,
                height: 0,
                time: 0,
                parent_loss: 0,
                val_loss: 0,
                required_improvement: 0,
                required_eff: 0,
                loss_index: 0,
                chainwork: 0,
                checkpoint_root: Hash256::ZERO,
                d_model: 0,
                n_layers: 0,
                cumulative_growth: 0,
                stagnation: 0,
                circulating_supply: Amount::ZERO,
            },
            tip_seq: 0,
            candidates: BTreeSet::new(),
            fail_point: None,
            pot_verdicts: PotVerdicts::default(),
            awaiting_update: BTreeSet::new(),
            awaiting_checkpoint: BTreeSet::new(),
            assumed_chain: Default::default(),
        };
        state.load_tip()?;
        let sync = state.options.sync_writes;
        crate::txindex::sync(
            &state.db,
            &state.reader,
            state.tip.height,
            state.options.txindex,
            |w| set_durability(w, sync),
        )?;
        state.cleanup_checkpoint_files()?;
        state.rebuild_candidates()?;
        info!(tip = %state.tip.hash, height = state.tip.height, val_loss = state.tip.val_loss, "opened chainstate");
        Ok(state)
    }

    fn init_genesis(
        w: &WriteTransaction,
        rules: &dyn ChainRules,
        files: &CheckpointFiles,
        block: &Block,
    ) -> Result<(), ChainError> {
        let hash = block.block_hash();
        let summary = rules.genesis_summary();
        if summary.hash != hash || summary.height != 0 || block.header.height != 0 {
            return Err(corrupt("the genesis summary does not match the genesis block"));
        }
        if summary.circulating_supply != Amount::ZERO {
            // Genesis creates no coins (its coinbase is an OP_RETURN); a summary claiming supply
            // would make the UTXO set and the supply disagree.
            return Err(corrupt("the genesis summary claims circulating supply"));
        }
        let ckpt = rules.genesis_checkpoint();
        if ckpt.len() as u64 != block.header.checkpoint_size
            || checkpoint_root(&ckpt) != block.header.checkpoint_root.0
        {
            return Err(ChainError::CheckpointMismatch { hash });
        }
        files.write(&hash, &ckpt)?;

        // Create every table so read transactions can open them.
        for t in [BLOCK_INDEX, BLOCKS, UNDO, UTXO, CHECKPOINTS, UPDATES] {
            w.open_table(t)?;
        }
        for t in [CHILDREN, EXPIRY_INDEX, CHECKPOINT_HEIGHTS] {
            w.open_table(t)?;
        }
        w.open_table(EXPIRED)?;
        let entry = IndexEntry {
            header: block.header.clone(),
            status: flags::HAVE_DATA
                | flags::HAVE_CHECKPOINT
                | flags::VALID_HEADER
                | flags::VALID_FULL,
            seq: 1,
            chainwork: summary.chainwork,
            summary: Some(summary),
        };
        put_entry(&mut w.open_table(BLOCK_INDEX)?, &entry)?;
        w.open_table(BLOCKS)?.insert(hash.as_bytes().as_slice(), block.to_bytes().as_slice())?;
        w.open_table(ACTIVE_CHAIN)?.insert(0, hash.as_bytes().as_slice())?;
        let record = CheckpointRecord {
            root: block.header.checkpoint_root.0,
            size: block.header.checkpoint_size,
            height: 0,
        };
        w.open_table(CHECKPOINTS)?
            .insert(hash.as_bytes().as_slice(), encode_to_vec(&record).as_slice())?;
        w.open_table(CHECKPOINT_HEIGHTS)?.insert(height_key(0, &hash).as_slice(), ())?;
        let mut meta = w.open_table(META)?;
        meta.insert(META_SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())?;
        meta.insert(META_NETWORK, rules.network().to_string().as_bytes())?;
        meta.insert(META_GENESIS, hash.as_bytes().as_slice())?;
        meta.insert(META_TIP, hash.as_bytes().as_slice())?;
        meta.insert(META_NEXT_SEQ, 2u64.to_le_bytes().as_slice())?;
        Ok(())
    }

    fn begin_write(&self) -> Result<WriteTransaction, ChainError> {
        let mut w = self.db.begin_write()?;
        set_durability(&mut w, self.options.sync_writes);
        Ok(w)
    }

    fn read(&self) -> Result<ReadTransaction, ChainError> {
        Ok(self.db.begin_read()?)
    }

    /// Loads the tip from `meta` and checks it against the index and the active chain.
    fn load_tip(&mut self) -> Result<(), ChainError> {
        let r = self.read()?;
        let meta = r.open_table(META)?;
        let tip = read_meta(&meta, META_TIP)?.ok_or_else(|| corrupt("no tip"))?;
        let tip = hash_from_slice(&tip).map_err(ChainError::record("meta"))?;
        let entry = read_entry(&r.open_table(BLOCK_INDEX)?, &tip)?
            .ok_or_else(|| corrupt(format!("tip {tip} not in the index")))?;
        let summary =
            entry.summary.clone().ok_or_else(|| corrupt(format!("tip {tip} not validated")))?;
        if read_active(&r.open_table(ACTIVE_CHAIN)?, summary.height)? != Some(tip) {
            return Err(corrupt("tip is not at its height in the active chain"));
        }
        if r.open_table(ACTIVE_CHAIN)?.len()? != u64::from(summary.height) + 1 {
            return Err(corrupt("active chain length does not match the tip height"));
        }
        self.tip = summary;
        self.tip_seq = entry.seq;
        Ok(())
    }

    fn tip_key(&self) -> Key {
        (Reverse(self.tip.chainwork), self.tip_seq, self.tip.hash)
    }

    /// Rebuilds the candidate set from the whole index (on open and after invalidate/reconsider).
    fn rebuild_candidates(&mut self) -> Result<(), ChainError> {
        let r = self.read()?;
        let mut set = BTreeSet::new();
        for item in r.open_table(BLOCK_INDEX)?.iter()? {
            let (_, v) = item?;
            let entry: IndexEntry =
                decode_exact(v.value()).map_err(ChainError::record("block_index"))?;
            if self.connectable(&entry)? {
                set.insert(entry_key(&entry));
            }
            if Self::awaits_update(&entry) {
                self.awaiting_update.insert((Reverse(entry.chainwork), entry.hash()));
            }
        }
        set.insert(self.tip_key());
        self.candidates = set;
        Ok(())
    }

    /// Arms (or with `None` disarms) a fault-injection point. Test use only.
    #[doc(hidden)]
    pub fn set_fail_point(&mut self, point: Option<FailPoint>) {
        self.fail_point = point;
    }

    /// The consensus rules in use.
    pub fn rules(&self) -> &dyn ChainRules {
        self.rules.as_ref()
    }

    /// The summary of the active tip.
    pub fn tip(&self) -> HeaderSummary {
        self.tip.clone()
    }

    /// Height of the active tip.
    pub fn height(&self) -> u32 {
        self.tip.height
    }

    /// The genesis block id.
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis
    }

    /// Value of all coins in the UTXO set after the tip (never above the supply cap).
    pub fn circulating_supply(&self) -> Amount {
        self.tip.circulating_supply
    }

    /// Value still to be emitted: `MAX_MONEY − circulating supply`. Expired coins and
    /// emission-return outputs flow back here.
    pub fn emission_pool(&self) -> Amount {
        Amount(MAX_MONEY.saturating_sub(self.tip.circulating_supply.0))
    }

    /// A read-only handle that answers the queries below without the chain lock
    /// ([`crate::reader`]).
    pub fn reader(&self) -> ChainReader {
        self.reader.clone()
    }

    /// The active-chain block at `height`.
    pub fn block_hash_at(&self, height: u32) -> Result<Option<BlockHash>, ChainError> {
        self.reader.block_hash_at(height)
    }

    fn is_active(&self, hash: &BlockHash, height: u32) -> Result<bool, ChainError> {
        self.reader.is_active(hash, height)
    }

    fn index_entry(&self, hash: &BlockHash) -> Result<Option<IndexEntry>, ChainError> {
        self.reader.index_entry(hash)
    }

    fn stored_block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        self.reader.stored_block(hash)
    }

    /// A stored block (any branch).
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        self.reader.block(hash)
    }

    /// A known header (any branch, including invalid ones).
    pub fn header(&self, hash: &BlockHash) -> Result<Option<BlockHeader>, ChainError> {
        self.reader.header(hash)
    }

    /// The consensus summary of a validated block.
    pub fn header_summary(&self, hash: &BlockHash) -> Result<Option<HeaderSummary>, ChainError> {
        self.reader.header_summary(hash)
    }

    /// The validation state of a known block.
    pub fn block_status(&self, hash: &BlockHash) -> Result<Option<BlockStatus>, ChainError> {
        self.reader.block_status(hash)
    }

    /// Everything the index knows about a block.
    pub fn block_info(&self, hash: &BlockHash) -> Result<Option<BlockInfo>, ChainError> {
        self.reader.block_info(hash)
    }

    /// The unspent coin at `outpoint` after the tip.
    pub fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, ChainError> {
        self.reader.coin(outpoint)
    }

    /// A consistent read-only view of the UTXO set after the current tip.
    pub fn utxo_snapshot(&self) -> Result<UtxoSnapshot, ChainError> {
        self.reader.utxo_snapshot()
    }

    /// The branch ending at the validated block `tip` (implements `HeaderChain`).
    pub fn header_chain(&self, tip: &BlockHash) -> Result<BranchView, ChainError> {
        self.reader.header_chain(tip)
    }

    /// Whether the checkpoint of `hash` is stored.
    pub fn has_checkpoint(&self, hash: &BlockHash) -> Result<bool, ChainError> {
        self.reader.has_checkpoint(hash)
    }

    /// The checkpoint bytes of `hash`, checked against the committed root and size (see
    /// [`ChainReader::checkpoint`]).
    pub fn checkpoint(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, ChainError> {
        self.reader.checkpoint(hash)
    }

    /// Whether the model update of `hash` is stored.
    pub fn has_update(&self, hash: &BlockHash) -> Result<bool, ChainError> {
        self.reader.has_update(hash)
    }

    /// The model update bytes of `hash` (see [`ChainReader::update`]).
    pub fn update(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, ChainError> {
        self.reader.update(hash)
    }

    /// All branch tips, like `getchaintips`.
    pub fn chain_tips(&self) -> Result<Vec<ChainTip>, ChainError> {
        self.reader.chain_tips()
    }

    /// The canonical hash of the UTXO set (see [`ChainReader::utxo_set_hash`]).
    pub fn utxo_set_hash(&self) -> Result<Hash256, ChainError> {
        self.reader.utxo_set_hash()
    }

    /// Count, total value and canonical hash of the UTXO set after the tip (O(set size)).
    pub fn utxo_stats(&self) -> Result<UtxoStats, ChainError> {
        self.reader.utxo_stats()
    }

    /// Number of entries in the expiry index (equals the UTXO count in a consistent state).
    pub fn expiry_index_len(&self) -> Result<u64, ChainError> {
        self.reader.expiry_index_len()
    }

    /// Number of entries in the expired-coin table (the coins the sweeps of the active chain
    /// removed).
    pub fn expired_len(&self) -> Result<u64, ChainError> {
        self.reader.expired_len()
    }

    /// Checks the invariants that tie the tables together (O(UTXO set + active chain)): the
    /// expiry index matches the UTXO set coin for coin, the UTXO total equals the tip's
    /// circulating supply, the active chain links parent to child with validated blocks and undo
    /// data, and the expired-coin table holds exactly the coins the undo records of the active
    /// chain list as expired (none of them in the UTXO set). Used by tests and by
    /// `rnetd -checkchainstate`-style tools.
    pub fn verify_consistency(&self) -> Result<(), ChainError> {
        let r = self.read()?;
        let utxo = r.open_table(UTXO)?;
        let expiry = r.open_table(EXPIRY_INDEX)?;
        if utxo.len()? != expiry.len()? {
            return Err(corrupt("expiry index and UTXO set differ in size"));
        }
        let mut total = Amount::ZERO;
        for item in utxo.iter()? {
            let (k, v) = item?;
            let outpoint = outpoint_from_key(k.value()).map_err(ChainError::record("utxo"))?;
            let coin = coin_from_bytes(v.value()).map_err(ChainError::record("utxo"))?;
            if expiry.get(expiry_key(coin.creation_loss_index, &outpoint).as_slice())?.is_none() {
                return Err(corrupt(format!("coin {outpoint:?} not in the expiry index")));
            }
            total = total.checked_add(coin.output.value).ok_or_else(|| corrupt("overflow"))?;
        }
        if total != self.tip.circulating_supply {
            return Err(corrupt(format!(
                "UTXO total {} differs from circulating supply {}",
                total.0, self.tip.circulating_supply.0
            )));
        }
        let index = r.open_table(BLOCK_INDEX)?;
        let active = r.open_table(ACTIVE_CHAIN)?;
        let undo = r.open_table(UNDO)?;
        let mut prev = None;
        for item in active.iter()? {
            let (h, v) = item?;
            let hash = hash_from_slice(v.value()).map_err(ChainError::record("active_chain"))?;
            let e = read_entry(&index, &hash)?.ok_or(ChainError::UnknownBlock(hash))?;
            if e.header.height != h.value() || !e.has(flags::VALID_FULL) || e.is_failed() {
                return Err(corrupt(format!("active block {hash} is not valid at its height")));
            }
            if let Some(p) = prev {
                if e.header.prev_block_hash != p {
                    return Err(corrupt(format!("active block {hash} does not extend its parent")));
                }
                if undo.get(hash.as_bytes().as_slice())?.is_none() {
                    return Err(corrupt(format!("active block {hash} has no undo data")));
                }
            }
            prev = Some(hash);
        }
        if prev != Some(self.tip.hash) {
            return Err(corrupt("active chain does not end at the tip"));
        }
        if undo.len()? != u64::from(self.tip.height) {
            return Err(corrupt("undo data for blocks off the active chain"));
        }
        crate::expired::verify(&r, self.tip.height)
    }
}
