//! The chainstate: block index, blocks, checkpoints, the UTXO set with its expiry index, undo
//! data, fork choice and reorganisations, on one redb database.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashSet};
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

use crate::checkpoints::{CheckpointFiles, checkpoint_root};
use crate::encoding::{
    CheckpointRecord, IndexEntry, UndoRecord, child_key, coin_bytes, coin_from_bytes, expiry_key,
    flags, hash_from_slice, height_key, outpoint_from_key, outpoint_key, parse_expiry_key,
};
use crate::error::ChainError;
use crate::pot::{CheckpointSource, PotJob, PotVerdicts};
use crate::reader::ChainReader;
use crate::rules::{ChainRules, ConsensusRules};
use crate::schema::*;
use crate::views::{BranchView, ExtendedBranch, UtxoSnapshot, read_active, read_entry};

/// Default of [`ChainOptions::prune_checkpoints_depth`]: one day of mainnet blocks.
pub const DEFAULT_PRUNE_CHECKPOINTS_DEPTH: u32 = 144;

/// Tunables of a chainstate (none of them is consensus).
#[derive(Clone, Debug)]
pub struct ChainOptions {
    /// Keep the checkpoints of the last `K` blocks of the active chain (`0` = archive mode, keep
    /// every checkpoint). The tip's checkpoint is always kept. Only checkpoints of blocks that
    /// were validated (or found invalid) are pruned: a side-branch block's checkpoint stays until
    /// the block has been evaluated once.
    pub prune_checkpoints_depth: u32,
    /// Memory redb may use for its page cache, in bytes.
    pub cache_size: usize,
    /// Make every commit durable before it returns (fsync; redb 2-phase commit with quick
    /// repair) and fsync checkpoint files. Turning it off keeps atomicity and survives a crash
    /// of the process (the OS still holds the writes) but not of the machine: for tests and
    /// throw-away nodes only.
    pub sync_writes: bool,
    /// Keep the transaction index (`-txindex`, [`crate::txindex`]).
    pub txindex: bool,
}

impl Default for ChainOptions {
    fn default() -> Self {
        Self {
            prune_checkpoints_depth: DEFAULT_PRUNE_CHECKPOINTS_DEPTH,
            cache_size: 256 << 20,
            sync_writes: true,
            txindex: false,
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
    /// Stored, but its checkpoint (or an ancestor's) is missing, so it cannot be validated yet;
    /// supply it with [`ChainState::accept_checkpoint`].
    MissingCheckpoint,
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
    /// Blocks whose data is stored but whose checkpoint is not (never received, lost with a
    /// partial download, or dropped as damaged), most chainwork first: what the node asks
    /// peers for ([`ChainState::wanted_checkpoints`]). Derived data: rebuilt on open.
    awaiting_checkpoint: BTreeSet<(Reverse<u128>, BlockHash)>,
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
            if schema != SCHEMA_VERSION {
                return Err(ChainError::UnsupportedSchema(schema));
            }
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
            w.abort()?;
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
            awaiting_checkpoint: BTreeSet::new(),
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
        for t in [BLOCK_INDEX, BLOCKS, UNDO, UTXO, CHECKPOINTS] {
            w.open_table(t)?;
        }
        for t in [CHILDREN, EXPIRY_INDEX, CHECKPOINT_HEIGHTS] {
            w.open_table(t)?;
        }
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

    fn cleanup_checkpoint_files(&self) -> Result<(), ChainError> {
        let r = self.read()?;
        let mut keep = HashSet::new();
        for item in r.open_table(CHECKPOINTS)?.iter()? {
            let (k, _) = item?;
            keep.insert(hash_from_slice(k.value()).map_err(ChainError::record("checkpoints"))?);
        }
        let removed = self.files.cleanup(&keep)?;
        if removed > 0 {
            info!(removed, "removed stale checkpoint files");
        }
        Ok(())
    }

    /// Rebuilds the candidate set from the whole index (on open and after invalidate/reconsider).
    fn rebuild_candidates(&mut self) -> Result<(), ChainError> {
        let r = self.read()?;
        let mut set = BTreeSet::new();
        for item in r.open_table(BLOCK_INDEX)?.iter()? {
            let (_, v) = item?;
            let entry: IndexEntry =
                decode_exact(v.value()).map_err(ChainError::record("block_index"))?;
            if entry.is_connectable() {
                set.insert(entry_key(&entry));
            }
            if Self::awaits_checkpoint(&entry) {
                self.awaiting_checkpoint.insert((Reverse(entry.chainwork), entry.hash()));
            }
        }
        set.insert(self.tip_key());
        self.candidates = set;
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // Fault injection (tests).

    /// Arms (or with `None` disarms) a fault-injection point. Test use only.
    #[doc(hidden)]
    pub fn set_fail_point(&mut self, point: Option<FailPoint>) {
        self.fail_point = point;
    }

    fn fire_connect_fail_point(&self) -> Result<(), ChainError> {
        match &self.fail_point {
            Some(FailPoint::ErrorMidConnect) => Err(ChainError::FailPoint("mid-connect")),
            Some(FailPoint::PanicMidConnect) => panic!("fail point: panic mid-connect"),
            Some(FailPoint::HangMidConnect(marker)) => {
                let _ = std::fs::write(marker, b"hanging");
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
            _ => Ok(()),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Accepting blocks and checkpoints.

    /// Accepts a block (and optionally its checkpoint) from the network, a miner or RPC, stores
    /// it and runs fork choice.
    ///
    /// Context-free failures (bad signature, mutated merkle tree, …) are rejected without storing
    /// or marking anything, since the block id does not commit to the signature. Failures of
    /// the contextual header checks, of Proof-of-Training and of the transactions mark the block
    /// invalid for good (`ChainError::InvalidBlock`); such a block is never validated again
    /// (`ChainError::KnownInvalid`) unless [`ChainState::reconsider_block`] is called.
    pub fn accept_block(
        &mut self,
        block: Block,
        checkpoint: Option<Vec<u8>>,
        now: u64,
    ) -> Result<AcceptOutcome, ChainError> {
        let hash = block.block_hash();
        let existing = self.index_entry(&hash)?;
        if let Some(e) = &existing {
            if e.has(flags::FAILED) {
                return Err(ChainError::KnownInvalid(hash));
            }
            if e.has(flags::FAILED_CHILD) {
                let invalid_ancestor = self.failed_ancestor(&hash)?;
                return Err(ChainError::InvalidAncestor { hash, invalid_ancestor });
            }
            if e.has(flags::HAVE_DATA) {
                if let Some(bytes) = checkpoint {
                    if !e.has(flags::HAVE_CHECKPOINT) {
                        return self.accept_checkpoint(&hash, bytes, now);
                    }
                }
                // A connectable block that dropped out of the candidates (a temporary failure)
                // gets another chance when it is offered again.
                let key = entry_key(e);
                if e.is_connectable() && key < self.tip_key() && !self.candidates.contains(&key) {
                    self.candidates.insert(key);
                    let tip_before = self.tip.hash;
                    let report = self.activate_best_chain(now)?;
                    return self.outcome_for(&hash, tip_before, report);
                }
                return Ok(AcceptOutcome::AlreadyHave);
            }
        }

        let header = &block.header;
        let parent_hash = header.prev_block_hash;
        let Some(parent) = self.index_entry(&parent_hash)? else {
            debug!(%hash, parent = %parent_hash, "orphan block");
            return Ok(AcceptOutcome::Orphan { missing_parent: parent_hash });
        };
        if parent.header.height.checked_add(1) != Some(header.height) {
            // The block id commits to the height, but there is no consensus reason value to
            // record; reject without storing.
            return Err(corrupt_input_height(hash, header.height, parent.header.height));
        }
        self.rules
            .check_block(&block)
            .map_err(|reason| ChainError::InvalidBlock { hash, reason })?;

        if parent.is_failed() {
            let invalid_ancestor = if parent.has(flags::FAILED) {
                parent_hash
            } else {
                self.failed_ancestor(&parent_hash)?
            };
            self.store_header_only(header, flags::FAILED_CHILD)?;
            return Err(ChainError::InvalidAncestor { hash, invalid_ancestor });
        }

        let mut status = flags::HAVE_DATA;
        if parent.has(flags::VALID_FULL) {
            let r = self.read()?;
            let view = BranchView::new(&r, &parent_hash)?;
            match self.rules.check_header_context(header, &view, now) {
                Ok(()) => status |= flags::VALID_HEADER,
                Err(reason) => {
                    if let Some(e) = view.take_error() {
                        return Err(e);
                    }
                    if self.rules.is_permanent(&reason) {
                        self.store_header_only(header, flags::FAILED)?;
                    }
                    return Err(ChainError::InvalidBlock { hash, reason });
                }
            }
        }

        if let Some(bytes) = &checkpoint {
            verify_checkpoint(header, bytes)?;
            self.files.write(&hash, bytes)?;
            status |= flags::HAVE_CHECKPOINT;
        }

        let w = self.begin_write()?;
        let entry = {
            let mut index = w.open_table(BLOCK_INDEX)?;
            let prior = existing.as_ref().map_or(0, |e| e.status);
            let mut entry = IndexEntry {
                header: header.clone(),
                status: status | (prior & flags::VALID_HEADER),
                seq: 0,
                chainwork: parent.chainwork.saturating_add(u128::from(header.required_improvement)),
                summary: None,
            };
            if entry.is_connectable() {
                entry.seq = Self::next_seq(&w)?;
            }
            put_entry(&mut index, &entry)?;
            w.open_table(BLOCKS)?
                .insert(hash.as_bytes().as_slice(), block.to_bytes().as_slice())?;
            w.open_table(CHILDREN)?.insert(child_key(&parent_hash, &hash).as_slice(), ())?;
            if checkpoint.is_some() {
                Self::put_checkpoint_record(&w, header)?;
            }
            entry
        };
        w.commit()?;
        debug!(%hash, height = header.height, val_loss = header.val_loss, "stored block");
        if Self::awaits_checkpoint(&entry) {
            self.awaiting_checkpoint.insert((Reverse(entry.chainwork), hash));
        }

        let key = entry_key(&entry);
        if entry.is_connectable() && key < self.tip_key() {
            self.candidates.insert(key);
        }
        let tip_before = self.tip.hash;
        let report = self.activate_best_chain(now)?;
        self.outcome_for(&hash, tip_before, report)
    }

    /// Supplies the checkpoint of a stored block (for example after
    /// [`AcceptOutcome::MissingCheckpoint`], or to restore a pruned tip checkpoint for miners),
    /// then runs fork choice.
    pub fn accept_checkpoint(
        &mut self,
        hash: &BlockHash,
        bytes: Vec<u8>,
        now: u64,
    ) -> Result<AcceptOutcome, ChainError> {
        let entry = self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        if entry.has(flags::FAILED) {
            return Err(ChainError::KnownInvalid(*hash));
        }
        if entry.has(flags::HAVE_CHECKPOINT) {
            return Ok(AcceptOutcome::AlreadyHave);
        }
        verify_checkpoint(&entry.header, &bytes)?;
        self.files.write(hash, &bytes)?;
        let w = self.begin_write()?;
        let mut entry = entry;
        entry.status |= flags::HAVE_CHECKPOINT;
        if entry.seq == 0 && entry.is_connectable() {
            entry.seq = Self::next_seq(&w)?;
        }
        put_entry(&mut w.open_table(BLOCK_INDEX)?, &entry)?;
        Self::put_checkpoint_record(&w, &entry.header)?;
        w.commit()?;
        debug!(%hash, "stored checkpoint");
        self.awaiting_checkpoint.remove(&(Reverse(entry.chainwork), *hash));

        // The block and every connectable descendant may now be reachable.
        let tip_key = self.tip_key();
        let r = self.read()?;
        let index = r.open_table(BLOCK_INDEX)?;
        let children = r.open_table(CHILDREN)?;
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            let Some(e) = read_entry(&index, &h)? else { continue };
            if !e.is_connectable() {
                continue;
            }
            let key = entry_key(&e);
            if key < tip_key {
                self.candidates.insert(key);
            }
            stack.extend(children_of(&children, &h)?);
        }
        drop((index, children, r));
        let tip_before = self.tip.hash;
        let report = self.activate_best_chain(now)?;
        self.outcome_for(hash, tip_before, report)
    }

    fn outcome_for(
        &mut self,
        hash: &BlockHash,
        tip_before: BlockHash,
        mut report: Activation,
    ) -> Result<AcceptOutcome, ChainError> {
        if let Some(pos) = report.invalid.iter().position(|(h, _)| h == hash) {
            let (_, reason) = report.invalid.swap_remove(pos);
            return Err(ChainError::InvalidBlock { hash: *hash, reason });
        }
        let entry = self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        if entry.has(flags::FAILED) {
            return Err(ChainError::KnownInvalid(*hash));
        }
        if entry.has(flags::FAILED_CHILD) {
            let invalid_ancestor = self.failed_ancestor(hash)?;
            return Err(ChainError::InvalidAncestor { hash: *hash, invalid_ancestor });
        }
        if self.tip.hash != tip_before {
            return Ok(AcceptOutcome::Connected {
                new_tip: self.tip.clone(),
                connected: report.connected,
                disconnected: report.disconnected,
            });
        }
        if entry.has(flags::VALID_FULL) || self.path_connectable(hash)? {
            Ok(AcceptOutcome::StoredSideBranch)
        } else {
            Ok(AcceptOutcome::MissingCheckpoint)
        }
    }

    /// Whether every block from the active chain up to `hash` can be connected.
    fn path_connectable(&self, hash: &BlockHash) -> Result<bool, ChainError> {
        let (_, path) = self.path_from_active(hash)?;
        Ok(path.iter().all(IndexEntry::is_connectable))
    }

    fn next_seq(w: &WriteTransaction) -> Result<u64, ChainError> {
        let mut meta = w.open_table(META)?;
        let seq = match read_meta(&meta, META_NEXT_SEQ)? {
            Some(b) => meta_u64(&b, "next_seq")?,
            None => return Err(corrupt("no next_seq")),
        };
        meta.insert(META_NEXT_SEQ, (seq + 1).to_le_bytes().as_slice())?;
        Ok(seq)
    }

    fn put_checkpoint_record(w: &WriteTransaction, header: &BlockHeader) -> Result<(), ChainError> {
        let hash = header.hash();
        let record = CheckpointRecord {
            root: header.checkpoint_root.0,
            size: header.checkpoint_size,
            height: header.height,
        };
        w.open_table(CHECKPOINTS)?
            .insert(hash.as_bytes().as_slice(), encode_to_vec(&record).as_slice())?;
        w.open_table(CHECKPOINT_HEIGHTS)?
            .insert(height_key(header.height, &hash).as_slice(), ())?;
        Ok(())
    }

    /// Records a header without data (an invalid block or a child of one), so it is never
    /// validated again.
    fn store_header_only(&mut self, header: &BlockHeader, status: u8) -> Result<(), ChainError> {
        let hash = header.hash();
        let w = self.begin_write()?;
        {
            let mut index = w.open_table(BLOCK_INDEX)?;
            let entry =
                IndexEntry { header: header.clone(), status, seq: 0, chainwork: 0, summary: None };
            put_entry(&mut index, &entry)?;
            w.open_table(CHILDREN)?
                .insert(child_key(&header.prev_block_hash, &hash).as_slice(), ())?;
        }
        w.commit()?;
        debug!(%hash, status, "recorded invalid header");
        Ok(())
    }

    /// The nearest ancestor of `hash` (or `hash` itself) marked `FAILED`.
    fn failed_ancestor(&self, hash: &BlockHash) -> Result<BlockHash, ChainError> {
        let r = self.read()?;
        let index = r.open_table(BLOCK_INDEX)?;
        let mut cursor = *hash;
        loop {
            let e = read_entry(&index, &cursor)?.ok_or(ChainError::UnknownBlock(cursor))?;
            if e.has(flags::FAILED) || e.header.height == 0 {
                return Ok(cursor);
            }
            cursor = e.header.prev_block_hash;
        }
    }

    // ----------------------------------------------------------------------------------------
    // Fork choice.

    /// The blocks from just above the active chain up to `hash` (in connect order), and the
    /// height of the fork point.
    fn path_from_active(&self, hash: &BlockHash) -> Result<(u32, Vec<IndexEntry>), ChainError> {
        let r = self.read()?;
        let index = r.open_table(BLOCK_INDEX)?;
        let active = r.open_table(ACTIVE_CHAIN)?;
        let mut path = Vec::new();
        let mut cursor = *hash;
        loop {
            let e = read_entry(&index, &cursor)?.ok_or(ChainError::UnknownBlock(cursor))?;
            let height = e.header.height;
            if read_active(&active, height)? == Some(cursor) {
                path.reverse();
                return Ok((height, path));
            }
            if height == 0 {
                return Err(corrupt("a branch does not reach the active chain"));
            }
            cursor = e.header.prev_block_hash;
            path.push(e);
        }
    }

    /// Makes the best connectable branch active: the candidate with the most (claimed)
    /// chainwork, ties to the first seen. First checks the header and Proof-of-Training of every
    /// block of the branch without touching the active chain; then disconnects back to the fork
    /// point and connects the branch block by block (one write transaction each). A block that
    /// fails validation is marked invalid with its descendants and the next best branch is
    /// tried. Then prunes old checkpoints.
    pub fn activate_best_chain(&mut self, now: u64) -> Result<Activation, ChainError> {
        let old_tip = self.tip.hash;
        let result = self.activate_inner(now);
        if result.is_err() {
            // Derived state may have drifted from the database; rebuild it.
            if let Err(e) = self.load_tip().and_then(|()| self.rebuild_candidates()) {
                warn!(error = %e, "could not rebuild candidates after a failed activation");
            }
        }
        let report = result?;
        let tip_key = self.tip_key();
        self.candidates.retain(|k| *k <= tip_key);
        self.candidates.insert(tip_key);
        if self.tip.hash != old_tip {
            info!(tip = %self.tip.hash, height = self.tip.height, val_loss = self.tip.val_loss,
                connected = report.connected.len(), disconnected = report.disconnected.len(),
                "new best chain");
            self.prune_checkpoints()?;
        }
        Ok(report)
    }

    fn activate_inner(&mut self, now: u64) -> Result<Activation, ChainError> {
        let mut report = Activation::default();
        loop {
            self.candidates.insert(self.tip_key());
            let Some(&best) = self.candidates.first() else { break };
            if best.2 == self.tip.hash {
                break;
            }
            let (fork_height, mut path) = self.path_from_active(&best.2)?;
            if path.iter().any(|e| !e.is_connectable()) {
                debug!(candidate = %best.2, "candidate has an unavailable block on its path");
                self.candidates.remove(&best);
                continue;
            }
            // Proof-of-Training on every block of the branch before anything is disconnected:
            // a branch that fails costs its evaluation and nothing else.
            match self.prevalidate_branch(&mut path, now)? {
                None => {}
                Some((hash, Step::Invalid(reason))) => {
                    warn!(%hash, %reason, "invalid block on a candidate branch");
                    self.mark_invalid(&hash, true)?;
                    report.invalid.push((hash, reason));
                    continue;
                }
                Some((_, _)) => {
                    self.candidates.remove(&best);
                    continue;
                }
            }
            while self.tip.height > fork_height {
                let hash = self.tip.hash;
                self.disconnect_tip()?;
                report.disconnected.push(hash);
            }
            for entry in path {
                let hash = entry.hash();
                match self.connect_tip(&entry, now)? {
                    Step::Connected => report.connected.push(hash),
                    Step::Invalid(reason) => {
                        warn!(%hash, %reason, "invalid block");
                        self.mark_invalid(&hash, true)?;
                        report.invalid.push((hash, reason));
                        break;
                    }
                    Step::Unavailable => {
                        self.candidates.remove(&best);
                        break;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Checks the headers and Proof-of-Training of the blocks of `path` (in connect order, from
    /// just above the active chain) against the branch below each of them, without touching the
    /// active chain. Marks each block whose Proof-of-Training passed (`VALID_POT`, in the index
    /// and in `path`). Returns the first block that failed and how.
    fn prevalidate_branch(
        &mut self,
        path: &mut [IndexEntry],
        now: u64,
    ) -> Result<Option<(BlockHash, Step)>, ChainError> {
        let Some(first) = path.first() else { return Ok(None) };
        let r = self.read()?;
        let base = BranchView::new(&r, &first.header.prev_block_hash)?;
        let mut branch = ExtendedBranch::new(&base);
        for entry in path.iter_mut() {
            let hash = entry.hash();
            let block =
                self.stored_block(&hash)?.ok_or_else(|| corrupt(format!("no data for {hash}")))?;
            if let Err(reason) = self.rules.check_header_context(&block.header, &branch, now) {
                if let Some(e) = base.take_error() {
                    return Err(e);
                }
                return Ok(Some((hash, self.classify(reason))));
            }
            if !entry.has(flags::VALID_FULL | flags::VALID_POT) {
                let parent = branch.tip();
                if let Some(step) = self.check_pot(&block, &parent)? {
                    return Ok(Some((hash, step)));
                }
                entry.status |= flags::VALID_POT;
                let w = self.begin_write()?;
                {
                    let mut index = w.open_table(BLOCK_INDEX)?;
                    if let Some(mut stored) = read_entry(&index, &hash)? {
                        stored.status |= flags::VALID_POT;
                        put_entry(&mut index, &stored)?;
                    }
                }
                w.commit()?;
            }
            let summary = match &entry.summary {
                Some(s) => s.clone(),
                None => self.rules.summarize_header(&block.header, &branch),
            };
            branch.push(summary);
        }
        if let Some(e) = base.take_error() {
            return Err(e);
        }
        Ok(None)
    }

    /// Whether `entry` is a block that still needs its checkpoint: data stored, checkpoint not,
    /// not known invalid, and either not validated yet or (pruned or damaged) the active tip.
    fn awaits_checkpoint(entry: &IndexEntry) -> bool {
        entry.has(flags::HAVE_DATA) && !entry.has(flags::HAVE_CHECKPOINT) && !entry.is_failed()
    }

    /// Up to `max` blocks whose checkpoints the node should fetch from peers, most useful first:
    /// the active tip if its checkpoint is missing (a miner needs it), then stored blocks whose
    /// checkpoints never arrived (for example a download cut short by a crash), on branches with
    /// at least the tip's chainwork (a branch that cannot become best is not worth its model
    /// data). Entries that no longer need one are dropped on the way.
    pub fn wanted_checkpoints(&mut self, max: usize) -> Result<Vec<BlockHash>, ChainError> {
        let mut out = Vec::new();
        let tip = self.tip.hash;
        if let Some(e) = self.index_entry(&tip)? {
            if !e.has(flags::HAVE_CHECKPOINT) && max > 0 {
                out.push(tip);
            }
        }
        let mut stale = Vec::new();
        for (work, hash) in self.awaiting_checkpoint.iter() {
            if out.len() >= max {
                break;
            }
            if *hash == tip {
                continue;
            }
            match self.index_entry(hash)? {
                Some(e) if Self::awaits_checkpoint(&e) && !e.has(flags::VALID_FULL) => {
                    // Most chainwork first: once below the tip, nothing later can beat it.
                    if work.0 < self.tip.chainwork {
                        break;
                    }
                    out.push(*hash);
                }
                _ => stale.push((*work, *hash)),
            }
        }
        for key in stale {
            self.awaiting_checkpoint.remove(&key);
        }
        Ok(out)
    }

    /// Drops the stored checkpoint of `hash` after it was found damaged (size or root no longer
    /// match), so that it is fetched again from peers ([`ChainState::wanted_checkpoints`]).
    pub fn drop_damaged_checkpoint(&mut self, hash: &BlockHash) -> Result<(), ChainError> {
        warn!(%hash, "dropping a damaged checkpoint; it will be fetched again from peers");
        self.forget_checkpoint(hash)?;
        if let Some(e) = self.index_entry(hash)? {
            self.awaiting_checkpoint.insert((Reverse(e.chainwork), *hash));
        }
        Ok(())
    }

    /// What Proof-of-Training of `block` needs, to run without the chain lock
    /// ([`crate::pot`]): `None` when there is nothing to do ahead of fork choice (the block is
    /// known invalid or already evaluated) or it cannot be done yet (unknown parent, a parent
    /// never validated, a checkpoint not stored and not given). Reads nothing but the index:
    /// the checkpoints are read and checked when the job runs.
    pub fn pot_job(
        &mut self,
        block: &Block,
        checkpoint: Option<&[u8]>,
    ) -> Result<Option<PotJob>, ChainError> {
        let hash = block.block_hash();
        if let Some(e) = self.index_entry(&hash)? {
            if e.has(flags::FAILED) || e.has(flags::VALID_POT) || e.has(flags::VALID_FULL) {
                return Ok(None);
            }
        }
        let Some(parent) = self.index_entry(&block.header.prev_block_hash)? else {
            return Ok(None);
        };
        let Some(parent_summary) = parent.summary.clone() else { return Ok(None) };
        let stored = |hash: BlockHash| CheckpointSource::Stored { files: self.files.clone(), hash };
        let checkpoint = match checkpoint {
            Some(bytes) => CheckpointSource::Bytes(Arc::new(bytes.to_vec())),
            None if self.index_entry(&hash)?.is_some_and(|e| e.has(flags::HAVE_CHECKPOINT)) => {
                stored(hash)
            }
            None => return Ok(None),
        };
        if !parent.has(flags::HAVE_CHECKPOINT) {
            return Ok(None);
        }
        Ok(Some(PotJob {
            block: block.clone(),
            parent_header: parent.header.clone(),
            parent: parent_summary,
            parent_checkpoint: stored(block.header.prev_block_hash),
            checkpoint,
        }))
    }

    /// Records the verdict of a [`PotJob`] run outside the lock; fork choice uses it instead of
    /// evaluating the block again.
    pub fn record_pot_verdict(&mut self, hash: BlockHash, verdict: Result<(), BlockError>) {
        self.pot_verdicts.insert(hash, verdict);
    }

    /// Runs Proof-of-Training for `block` on `parent` with the stored checkpoints of both (or
    /// takes the verdict recorded by [`ChainState::record_pot_verdict`]).
    /// `Some(step)` if it cannot pass now (unavailable data) or ever (invalid).
    fn check_pot(
        &mut self,
        block: &Block,
        parent: &HeaderSummary,
    ) -> Result<Option<Step>, ChainError> {
        let hash = block.block_hash();
        if let Some(verdict) = self.pot_verdicts.take(&hash) {
            debug!(%hash, ok = verdict.is_ok(), "Proof-of-Training verdict computed outside the lock");
            return Ok(verdict.err().map(|reason| self.classify(reason)));
        }
        let Some(bytes) = self.load_checkpoint_for_validation(&hash)? else {
            return Ok(Some(Step::Unavailable));
        };
        let Some(parent_bytes) = self.load_checkpoint_for_validation(&parent.hash)? else {
            debug!(%hash, parent = %parent.hash, "parent checkpoint unavailable");
            return Ok(Some(Step::Unavailable));
        };
        match self.rules.check_proof_of_training(
            &block.header,
            parent,
            &block.sample,
            &parent_bytes,
            &bytes,
        ) {
            Ok(()) => Ok(None),
            Err(reason) => Ok(Some(self.classify(reason))),
        }
    }

    /// Connects `entry` (whose parent is the tip) in one write transaction.
    fn connect_tip(&mut self, entry: &IndexEntry, now: u64) -> Result<Step, ChainError> {
        let hash = entry.hash();
        if entry.header.prev_block_hash != self.tip.hash {
            return Err(corrupt(format!("connecting {hash}, which does not extend the tip")));
        }
        let block =
            self.stored_block(&hash)?.ok_or_else(|| corrupt(format!("no data for {hash}")))?;

        let r = self.read()?;
        let view = BranchView::new(&r, &self.tip.hash)?;
        if let Err(reason) = self.rules.check_header_context(&block.header, &view, now) {
            if let Some(e) = view.take_error() {
                return Err(e);
            }
            return Ok(self.classify(reason));
        }
        if !entry.has(flags::VALID_FULL | flags::VALID_POT) {
            let tip = self.tip.clone();
            if let Some(step) = self.check_pot(&block, &tip)? {
                return Ok(step);
            }
        }
        let utxos = UtxoSnapshot::new(&r)?;
        let result = self.rules.connect_block(&block, &view, &utxos);
        if let Some(e) = utxos.take_error().or_else(|| view.take_error()) {
            return Err(e);
        }
        let (mut summary, effects) = match result {
            Ok(x) => x,
            Err(reason) => return Ok(self.classify(reason)),
        };
        drop((view, utxos, r));
        if summary.hash != hash || summary.height != entry.header.height {
            return Err(corrupt("consensus returned a summary for another block"));
        }

        let w = self.begin_write()?;
        {
            let mut utxo = w.open_table(UTXO)?;
            let mut expiry = w.open_table(EXPIRY_INDEX)?;
            let mut undo = UndoRecord::default();

            // Coins both created and spent inside the block never touch the set.
            let created: HashSet<OutPoint> = effects.created.iter().map(|(o, _)| *o).collect();
            let mut internal = HashSet::new();
            for (outpoint, coin) in &effects.spent {
                if created.contains(outpoint) {
                    internal.insert(*outpoint);
                    continue;
                }
                let stored = utxo
                    .remove(outpoint_key(outpoint).as_slice())?
                    .ok_or_else(|| corrupt(format!("spent coin {outpoint:?} not in the set")))?;
                let stored = coin_from_bytes(stored.value()).map_err(ChainError::record("utxo"))?;
                if stored != *coin {
                    return Err(corrupt(format!("spent coin {outpoint:?} differs from the set")));
                }
                if expiry
                    .remove(expiry_key(stored.creation_loss_index, outpoint).as_slice())?
                    .is_none()
                {
                    return Err(corrupt(format!("coin {outpoint:?} missing from expiry index")));
                }
                undo.spent.push((*outpoint, stored));
            }
            for (outpoint, coin) in &effects.created {
                if internal.contains(outpoint) {
                    continue;
                }
                let key = outpoint_key(outpoint);
                if utxo.insert(key.as_slice(), coin_bytes(coin).as_slice())?.is_some() {
                    return Err(corrupt(format!("created coin {outpoint:?} already exists")));
                }
                expiry.insert(expiry_key(coin.creation_loss_index, outpoint).as_slice(), ())?;
                undo.created.push(*outpoint);
            }
            self.fire_connect_fail_point()?;

            // Expiry sweep: every coin with creation_loss_index >= threshold, O(expired).
            let threshold = self.rules.expiry_threshold(summary.loss_index);
            let start = expiry_key(threshold, &OutPoint::new(Txid::ZERO, 0));
            let mut expired_keys = Vec::new();
            for item in expiry.range(start.as_slice()..)? {
                let (k, _) = item?;
                expired_keys.push(k.value().to_vec());
            }
            let mut expired_value = Amount::ZERO;
            for k in expired_keys {
                let (loss, outpoint) =
                    parse_expiry_key(&k).map_err(ChainError::record("expiry_index"))?;
                expiry.remove(k.as_slice())?;
                let stored = utxo
                    .remove(outpoint_key(&outpoint).as_slice())?
                    .ok_or_else(|| corrupt(format!("indexed coin {outpoint:?} not in the set")))?;
                let coin = coin_from_bytes(stored.value()).map_err(ChainError::record("utxo"))?;
                if coin.creation_loss_index != loss {
                    return Err(corrupt(format!("expiry key of {outpoint:?} has another loss")));
                }
                expired_value = expired_value
                    .checked_add(coin.output.value)
                    .ok_or_else(|| corrupt("expired value overflows"))?;
                undo.expired.push((outpoint, coin));
            }
            if !undo.expired.is_empty() {
                debug!(%hash, coins = undo.expired.len(), value = expired_value.0, threshold, "expired coins");
            }
            summary
                .apply_expiry(expired_value)
                .ok_or_else(|| corrupt("expired more value than is circulating"))?;

            w.open_table(UNDO)?
                .insert(hash.as_bytes().as_slice(), encode_to_vec(&undo).as_slice())?;
            let mut new_entry = entry.clone();
            new_entry.status |= flags::VALID_HEADER | flags::VALID_FULL;
            new_entry.summary = Some(summary.clone());
            put_entry(&mut w.open_table(BLOCK_INDEX)?, &new_entry)?;
            w.open_table(ACTIVE_CHAIN)?.insert(summary.height, hash.as_bytes().as_slice())?;
            w.open_table(META)?.insert(META_TIP, hash.as_bytes().as_slice())?;
            if self.options.txindex {
                crate::txindex::add_block(&w, &block, &hash)?;
            }
        }
        w.commit()?;
        debug!(%hash, height = summary.height, val_loss = summary.val_loss, "connected block");
        self.tip = summary;
        self.tip_seq = entry.seq;
        Ok(Step::Connected)
    }

    fn classify(&self, reason: BlockError) -> Step {
        if self.rules.is_permanent(&reason) {
            Step::Invalid(reason)
        } else {
            debug!(%reason, "temporary validation failure");
            Step::Unavailable
        }
    }

    /// Disconnects the tip in one write transaction, using its undo data.
    fn disconnect_tip(&mut self) -> Result<(), ChainError> {
        let hash = self.tip.hash;
        if self.tip.height == 0 {
            return Err(ChainError::Genesis);
        }
        let entry = self.index_entry(&hash)?.ok_or(ChainError::UnknownBlock(hash))?;
        let parent_hash = entry.header.prev_block_hash;
        let parent =
            self.index_entry(&parent_hash)?.ok_or(ChainError::UnknownBlock(parent_hash))?;
        let parent_summary =
            parent.summary.clone().ok_or_else(|| corrupt("parent of the tip not validated"))?;
        let indexed = match self.options.txindex {
            true => Some(
                self.stored_block(&hash)?.ok_or_else(|| corrupt(format!("no data for {hash}")))?,
            ),
            false => None,
        };

        let w = self.begin_write()?;
        {
            if let Some(block) = &indexed {
                crate::txindex::remove_block(&w, block, &hash)?;
            }
            let record = w
                .open_table(UNDO)?
                .remove(hash.as_bytes().as_slice())?
                .ok_or_else(|| corrupt(format!("no undo data for {hash}")))?
                .value()
                .to_vec();
            let undo: UndoRecord = decode_exact(&record).map_err(ChainError::record("undo"))?;
            let mut utxo = w.open_table(UTXO)?;
            let mut expiry = w.open_table(EXPIRY_INDEX)?;
            let mut restore = |outpoint: &OutPoint, coin: &Coin| -> Result<(), ChainError> {
                if utxo
                    .insert(outpoint_key(outpoint).as_slice(), coin_bytes(coin).as_slice())?
                    .is_some()
                {
                    return Err(corrupt(format!("restored coin {outpoint:?} already in the set")));
                }
                expiry.insert(expiry_key(coin.creation_loss_index, outpoint).as_slice(), ())?;
                Ok(())
            };
            // Expired first: a coin the block created may also have expired in its own sweep.
            for (outpoint, coin) in &undo.expired {
                restore(outpoint, coin)?;
            }
            if self.fail_point == Some(FailPoint::ErrorMidDisconnect) {
                return Err(ChainError::FailPoint("mid-disconnect"));
            }
            for (outpoint, coin) in &undo.spent {
                restore(outpoint, coin)?;
            }
            for outpoint in &undo.created {
                let stored = utxo
                    .remove(outpoint_key(outpoint).as_slice())?
                    .ok_or_else(|| corrupt(format!("created coin {outpoint:?} not in the set")))?;
                let coin = coin_from_bytes(stored.value()).map_err(ChainError::record("utxo"))?;
                if expiry
                    .remove(expiry_key(coin.creation_loss_index, outpoint).as_slice())?
                    .is_none()
                {
                    return Err(corrupt(format!("coin {outpoint:?} missing from expiry index")));
                }
            }
            if w.open_table(ACTIVE_CHAIN)?.remove(self.tip.height)?.is_none() {
                return Err(corrupt("tip missing from the active chain"));
            }
            w.open_table(META)?.insert(META_TIP, parent_hash.as_bytes().as_slice())?;
        }
        w.commit()?;
        debug!(%hash, height = self.tip.height, "disconnected block");
        self.tip = parent_summary;
        self.tip_seq = parent.seq;
        Ok(())
    }

    /// Marks `hash` invalid and every descendant invalid-child, in one transaction, and drops
    /// them from the candidates. A block found invalid by consensus also loses its checkpoint.
    fn mark_invalid(&mut self, hash: &BlockHash, by_consensus: bool) -> Result<(), ChainError> {
        let w = self.begin_write()?;
        let mut dropped = Vec::new();
        let mut remove_checkpoint = false;
        {
            let mut index = w.open_table(BLOCK_INDEX)?;
            let children = w.open_table(CHILDREN)?;
            let mut entry = read_entry(&index, hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
            dropped.push(entry_key(&entry));
            entry.status |= flags::FAILED;
            if by_consensus && entry.has(flags::HAVE_CHECKPOINT) {
                entry.status &= !flags::HAVE_CHECKPOINT;
                remove_checkpoint = true;
            }
            put_entry(&mut index, &entry)?;
            let mut stack = children_of(&children, hash)?;
            while let Some(h) = stack.pop() {
                let Some(mut e) = read_entry(&index, &h)? else { continue };
                dropped.push(entry_key(&e));
                e.status |= flags::FAILED_CHILD;
                put_entry(&mut index, &e)?;
                stack.extend(children_of(&children, &h)?);
            }
            if remove_checkpoint {
                w.open_table(CHECKPOINTS)?.remove(hash.as_bytes().as_slice())?;
                w.open_table(CHECKPOINT_HEIGHTS)?
                    .remove(height_key(entry.header.height, hash).as_slice())?;
            }
        }
        w.commit()?;
        for key in dropped {
            self.candidates.remove(&key);
        }
        if remove_checkpoint {
            self.files.remove(hash)?;
        }
        Ok(())
    }

    /// Reads and checks the checkpoint used to validate `hash`. A missing or damaged file is
    /// "unavailable" (the record is dropped so the checkpoint can be supplied again), never a
    /// reason to call the block invalid.
    fn load_checkpoint_for_validation(
        &mut self,
        hash: &BlockHash,
    ) -> Result<Option<Vec<u8>>, ChainError> {
        match self.checkpoint(hash) {
            Err(e @ ChainError::Corrupt(_)) => {
                warn!(%hash, error = %e, "damaged checkpoint");
                self.drop_damaged_checkpoint(hash)?;
                Ok(None)
            }
            other => other,
        }
    }

    fn forget_checkpoint(&mut self, hash: &BlockHash) -> Result<(), ChainError> {
        let w = self.begin_write()?;
        {
            let mut index = w.open_table(BLOCK_INDEX)?;
            if let Some(mut e) = read_entry(&index, hash)? {
                e.status &= !flags::HAVE_CHECKPOINT;
                put_entry(&mut index, &e)?;
                w.open_table(CHECKPOINT_HEIGHTS)?
                    .remove(height_key(e.header.height, hash).as_slice())?;
            }
            w.open_table(CHECKPOINTS)?.remove(hash.as_bytes().as_slice())?;
        }
        w.commit()?;
        self.files.remove(hash)?;
        Ok(())
    }

    /// Deletes checkpoints of validated or invalid blocks more than `prune_checkpoints_depth`
    /// blocks below the tip.
    fn prune_checkpoints(&mut self) -> Result<(), ChainError> {
        let depth = self.options.prune_checkpoints_depth;
        if depth == 0 || self.tip.height < depth {
            return Ok(());
        }
        let cutoff = self.tip.height - depth;
        let w = self.begin_write()?;
        let mut pruned = Vec::new();
        {
            let mut index = w.open_table(BLOCK_INDEX)?;
            let mut heights = w.open_table(CHECKPOINT_HEIGHTS)?;
            let mut records = w.open_table(CHECKPOINTS)?;
            let hi = height_key(cutoff, &BlockHash([0xFF; 32]));
            let mut keys = Vec::new();
            for item in heights.range(..=hi.as_slice())? {
                let (k, _) = item?;
                keys.push(k.value().to_vec());
            }
            for k in keys {
                let hash =
                    hash_from_slice(&k[4..]).map_err(ChainError::record("checkpoint_heights"))?;
                let Some(mut e) = read_entry(&index, &hash)? else {
                    return Err(corrupt(format!("checkpoint of unknown block {hash}")));
                };
                if !(e.has(flags::VALID_FULL) || e.is_failed()) || hash == self.tip.hash {
                    continue;
                }
                e.status &= !flags::HAVE_CHECKPOINT;
                put_entry(&mut index, &e)?;
                heights.remove(k.as_slice())?;
                records.remove(hash.as_bytes().as_slice())?;
                pruned.push(hash);
            }
        }
        w.commit()?;
        for hash in &pruned {
            self.files.remove(hash)?;
        }
        if !pruned.is_empty() {
            debug!(count = pruned.len(), cutoff, "pruned checkpoints");
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // Operator actions.

    /// Marks a block invalid (RPC `invalidateblock`): disconnects it if it is on the active
    /// chain, marks its descendants invalid-child and switches to the best remaining chain.
    pub fn invalidate_block(&mut self, hash: &BlockHash) -> Result<Activation, ChainError> {
        let entry = self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        if *hash == self.genesis {
            return Err(ChainError::Genesis);
        }
        let mut report = Activation::default();
        if self.is_active(hash, entry.header.height)? {
            while self.tip.height >= entry.header.height {
                let h = self.tip.hash;
                self.disconnect_tip()?;
                report.disconnected.push(h);
            }
        }
        self.mark_invalid(hash, false)?;
        info!(%hash, "block invalidated");
        self.rebuild_candidates()?;
        report.merge(self.activate_best_chain(now_secs())?);
        Ok(report)
    }

    /// Clears the invalid marks of a block, its descendants and its ancestors (RPC
    /// `reconsiderblock`) and runs fork choice again; blocks that really are invalid are found
    /// invalid again when connected.
    pub fn reconsider_block(&mut self, hash: &BlockHash) -> Result<Activation, ChainError> {
        self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        let w = self.begin_write()?;
        {
            let mut index = w.open_table(BLOCK_INDEX)?;
            let children = w.open_table(CHILDREN)?;
            let mut stack = vec![*hash];
            while let Some(h) = stack.pop() {
                let Some(mut e) = read_entry(&index, &h)? else { continue };
                if e.is_failed() {
                    e.status &= !flags::FAILED_MASK;
                    if e.seq == 0 && e.is_connectable() {
                        e.seq = Self::next_seq(&w)?;
                    }
                    put_entry(&mut index, &e)?;
                }
                stack.extend(children_of(&children, &h)?);
            }
            let mut cursor = read_entry(&index, hash)?.map(|e| e.header.prev_block_hash);
            while let Some(h) = cursor {
                let Some(mut e) = read_entry(&index, &h)? else { break };
                if e.is_failed() {
                    e.status &= !flags::FAILED_MASK;
                    put_entry(&mut index, &e)?;
                }
                cursor = (e.header.height > 0).then_some(e.header.prev_block_hash);
            }
        }
        w.commit()?;
        info!(%hash, "block reconsidered");
        self.rebuild_candidates()?;
        self.activate_best_chain(now_secs())
    }

    // ----------------------------------------------------------------------------------------
    // Queries.

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

    /// Checks the invariants that tie the tables together (O(UTXO set + active chain)): the
    /// expiry index matches the UTXO set coin for coin, the UTXO total equals the tip's
    /// circulating supply, the active chain links parent to child with validated blocks and undo
    /// data. Used by tests and by `rnetd -checkchainstate`-style tools.
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
        Ok(())
    }
}

fn corrupt_input_height(hash: BlockHash, height: u32, parent_height: u32) -> ChainError {
    ChainError::BadHeight { hash, height, parent_height }
}

/// Checks offered checkpoint bytes against the size and root the header commits to.
fn verify_checkpoint(header: &BlockHeader, bytes: &[u8]) -> Result<(), ChainError> {
    if bytes.len() as u64 != header.checkpoint_size
        || checkpoint_root(bytes) != header.checkpoint_root.0
    {
        return Err(ChainError::CheckpointMismatch { hash: header.hash() });
    }
    Ok(())
}
