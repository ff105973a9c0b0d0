//! The node's shared state: chainstate behind a mutex, the miner key, checkpoints uploaded ahead of
//! their blocks, and mining (block templates, the in-node miner loop, `generatetoaddress`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rnet_chain::{AcceptOutcome, Activation, ChainError, ChainOptions, ChainReader, ChainState};
use rnet_consensus::{
    ChainParams, HeaderSummary, block_subsidy, effective_required_improvement, median_time_past,
    next_block_shape, required_improvement,
};
use rnet_crypto::SigningKey;
use rnet_mempool::{Mempool, MempoolPolicy, TipContext};
use rnet_miner::{
    MineControl, MineError, MinedBlock, Miner, MiningJob, TrainingData, checkpoint_root, loss_bits,
    loss_nats,
};
use rnet_model::Checkpoint;
use rnet_primitives::{Amount, Block, BlockHash, Hash256, Network, Transaction};
use thiserror::Error;

/// Most checkpoints kept in memory that were uploaded before their block.
pub const MAX_PENDING_CHECKPOINTS: usize = 8;

/// Errors of node operations.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The chainstate failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Mining failed.
    #[error("mining: {0}")]
    Mine(#[from] MineError),
    /// The tip's checkpoint is not available (pruned, or never received).
    #[error("the checkpoint of the tip {0} is not available")]
    NoTipCheckpoint(BlockHash),
    /// A stored checkpoint does not parse.
    #[error("stored checkpoint of {0} is unreadable: {1}")]
    BadCheckpoint(BlockHash, String),
    /// A mined block was not connected.
    #[error("mined block {hash} was not connected: {outcome}")]
    NotConnected {
        /// The block.
        hash: BlockHash,
        /// What the chainstate said.
        outcome: String,
    },
    /// The node is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// `chainstate.redb` cannot be read: damaged (truncated, overwritten).
    #[error(
        "chainstate database {} is damaged ({detail}). It holds the block index, the blocks and \
         the UTXO set, so it cannot be rebuilt locally (there is no -reindex): stop the node, \
         move {} and the {} directory out of the way (keep miner.key and wallets/), and restart \
         to resync the chain from peers",
        path.display(),
        path.display(),
        checkpoints.display()
    )]
    DamagedChainstate {
        /// The database file.
        path: PathBuf,
        /// The checkpoint directory that goes with it.
        checkpoints: PathBuf,
        /// What failed.
        detail: String,
    },
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A block template: the job fields as the node computes them.
#[derive(Clone, Debug)]
pub struct Template {
    /// The parent (the active tip).
    pub parent: HeaderSummary,
    /// Height of the new block.
    pub height: u32,
    /// Header time of the new block: the node's clock, at least `median_time_past + 1`.
    pub time: u64,
    /// Effective required improvement at `time` (the header's `required_improvement`).
    pub required_improvement: u64,
    /// The base requirement before the stall-escape discount.
    pub base_required_improvement: u64,
    /// Scheduled shape.
    pub shape: (u32, u32),
    /// Median time past of the parent.
    pub median_time_past: u64,
    /// Transactions (after the coinbase) with their fees.
    pub transactions: Vec<(Transaction, Amount)>,
    /// Subsidy at exactly the required improvement.
    pub base_subsidy: Amount,
    /// Tip checkpoint root and size.
    pub checkpoint: (Hash256, u64),
}

impl Template {
    /// Sum of the fees.
    pub fn fees(&self) -> Amount {
        Amount(self.transactions.iter().fold(0u64, |a, (_, f)| a.saturating_add(f.0)))
    }
}

/// How many heavy RPC replies (`getblock`, `gettxoutsetinfo`) are built at once.
pub const HEAVY_RPC_SLOTS: usize = 2;

/// Everything the RPC handlers and the miner thread share.
pub struct Node {
    /// Chain parameters.
    pub params: ChainParams,
    /// The network data directory.
    pub netdir: PathBuf,
    /// The miner's signing key (`<netdir>/miner.key`).
    pub miner_key: SigningKey,
    /// Training data of the in-node miner and `generatetoaddress`.
    pub mine_data: TrainingData,
    chain: Mutex<ChainState>,
    /// Reads the chain without its lock (RPC and peers' reads; `rnet_chain::ChainReader`).
    pub reader: ChainReader,
    /// Proof-of-Training outside the chain lock (`crate::pot_workers`).
    pub pot_workers: crate::pot_workers::PotWorkers,
    /// Bounds RPC replies that read or render a lot (`getblock`, `gettxoutsetinfo`): a burst of
    /// them runs [`HEAVY_RPC_SLOTS`] at a time, so their memory stays bounded.
    pub heavy_rpc: crate::permits::Permits,
    mempool: Mutex<Mempool>,
    tip_version: AtomicU64,
    /// Blocks, mempool and wallet transactions as they happen ([`crate::events`]).
    pub events: crate::events::EventBus,
    mempool_version: AtomicU64,
    shutdown: AtomicBool,
    /// Set while the in-node miner (`-mine`) runs.
    pub mining: AtomicBool,
    /// When a block, update or checkpoint from a peer was last stored (the miner's catch-up
    /// wait, [`crate::catch_up`]).
    peer_data_at: Mutex<Option<std::time::Instant>>,
    /// Where mining trains (`-device`, resolved at startup; the CPU engine when unset).
    mine_device: std::sync::OnceLock<rnet_miner::Device>,
    /// The in-node miner's optimizer state, carried from each block it mines to the next one on
    /// top of it (`rnet_miner::warm_start`).
    mine_warm_start: Arc<rnet_miner::WarmStart>,
    /// The in-node miner's learning rate and batch (`-minelr`, `-minebatch`), when set.
    mine_training: std::sync::OnceLock<(f32, usize)>,
    mining_lock: Mutex<()>,
    pending_checkpoints: Mutex<VecDeque<(Hash256, Arc<Vec<u8>>)>>,
    /// Checkpoint uploads in parts (`uploadcheckpointpart`).
    pub checkpoint_uploads: Mutex<crate::upload::Uploads>,
    parsed_checkpoint: Mutex<Option<(BlockHash, Arc<Checkpoint>)>>,
    checkpoint_bytes: Mutex<Option<(BlockHash, Arc<Vec<u8>>)>>,
    /// The P2P network, once started (`-listen`/`-connect`; see `crate::p2p`).
    pub net: std::sync::OnceLock<rnet_net::NetHandle>,
    /// The Lightning service, with `-lightning` (set once it listens).
    pub lightning: std::sync::OnceLock<Arc<crate::lightning::service::LightningService>>,
    /// The loaded wallets (see `crate::wallets`); they follow every active-chain change.
    pub wallets: crate::wallets::Wallets,
    /// `setmocktime` (regtest): the clock the node uses instead of the system's; 0 = real time.
    mock_time: AtomicU64,
    /// The tip model's loss on the benchmark slice, computed off the hot path
    /// (`crate::benchmark`).
    pub benchmark: crate::benchmark::BenchmarkCache,
    /// The initial-block-download latch of `getblockchaininfo` (see `crate::sync`).
    pub ibd: crate::sync::IbdLatch,
    /// Free disk space required before writes (`-mindiskspace`, see `crate::disk`).
    pub disk: crate::disk::DiskGuard,
    /// Stops the whole node (the RPC server's shutdown), set by `crate::run`.
    stop_hook: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Why the node stopped on its own (e.g. disk space too low), for the exit status.
    fatal: Mutex<Option<String>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("network", &self.params.network).finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the chainstate in `netdir`, activates the best chain and builds the node.
    pub fn open(
        params: ChainParams,
        netdir: &Path,
        miner_key: SigningKey,
        mine_data: TrainingData,
        options: ChainOptions,
    ) -> Result<Self, NodeError> {
        let chain = crate::chain_open::open_chainstate(netdir, &params, options, now())?;
        let reader = chain.reader();
        let mock_time = AtomicU64::new(0);
        Ok(Self {
            mock_time,
            lightning: std::sync::OnceLock::new(),
            benchmark: Default::default(),
            params: params.clone(),
            netdir: netdir.to_path_buf(),
            miner_key,
            mine_data,
            chain: Mutex::new(chain),
            reader,
            heavy_rpc: crate::permits::Permits::new(HEAVY_RPC_SLOTS),
            pot_workers: crate::pot_workers::PotWorkers::new(
                params.clone(),
                crate::pot_workers::PotWorkers::default_workers(),
            ),
            mempool: Mutex::new(Mempool::new(params.clone(), MempoolPolicy::default())),
            tip_version: AtomicU64::new(0),
            events: crate::events::EventBus::default(),
            mempool_version: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            mining: AtomicBool::new(false),
            peer_data_at: Mutex::new(None),
            mine_device: std::sync::OnceLock::new(),
            mine_warm_start: Arc::new(rnet_miner::WarmStart::new()),
            mine_training: std::sync::OnceLock::new(),
            mining_lock: Mutex::new(()),
            pending_checkpoints: Mutex::new(VecDeque::new()),
            checkpoint_uploads: Mutex::new(crate::upload::Uploads::default()),
            parsed_checkpoint: Mutex::new(None),
            checkpoint_bytes: Mutex::new(None),
            net: std::sync::OnceLock::new(),
            wallets: crate::wallets::Wallets::default(),
            ibd: crate::sync::IbdLatch::default(),
            disk: crate::disk::DiskGuard::new(netdir, crate::config::DEFAULT_MIN_DISK_SPACE),
            stop_hook: std::sync::OnceLock::new(),
            fatal: Mutex::new(None),
        })
    }

    /// The network.
    pub fn network(&self) -> Network {
        self.params.network
    }

    /// Locks the chainstate. A hold longer than [`SLOW_CHAIN_LOCK`] is logged with the caller's
    /// location, since every RPC and peer that needs the chain waits behind it.
    #[track_caller]
    pub fn chain(&self) -> ChainGuard<'_> {
        ChainGuard {
            guard: self.chain.lock().unwrap_or_else(|e| e.into_inner()),
            since: std::time::Instant::now(),
            caller: std::panic::Location::caller(),
        }
    }

    /// Locks the mempool (lock order: chainstate first, then mempool).
    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        self.mempool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tip context transactions are validated against.
    pub fn tip_context(&self, chain: &ChainState) -> Result<TipContext, ChainError> {
        let tip = chain.tip();
        let view = chain.header_chain(&tip.hash)?;
        Ok(TipContext {
            height: tip.height,
            median_time_past: median_time_past(&view, tip.height),
            tip_loss_index: tip.loss_index,
        })
    }

    /// Updates the mempool after the active chain changed: transactions of disconnected blocks
    /// go back to the pool, those of connected blocks (and conflicts) leave it.
    fn chain_changed(
        &self,
        chain: &ChainState,
        connected: &[BlockHash],
        disconnected: &[BlockHash],
    ) {
        if connected.is_empty() && disconnected.is_empty() {
            return;
        }
        self.best_block_changed();
        let (Ok(utxos), Ok(tip)) = (chain.utxo_snapshot(), self.tip_context(chain)) else {
            tracing::warn!("mempool not updated: chainstate unreadable");
            return;
        };
        let mut pool = self.mempool();
        let mut events = Vec::with_capacity(connected.len() + disconnected.len());
        for hash in disconnected {
            if let Ok(Some(block)) = chain.block(hash) {
                pool.block_disconnected(&block, &utxos, &tip);
                let height = block.header.height;
                events.push(crate::events::NodeEvent::BlockDisconnected { hash: *hash, height });
            }
        }
        for hash in connected {
            if let Ok(Some(block)) = chain.block(hash) {
                pool.block_connected(&block, &utxos, &tip);
                let height = block.header.height;
                events.push(crate::events::NodeEvent::BlockConnected { hash: *hash, height });
            }
        }
        drop(pool);
        for event in events {
            self.events.publish(event);
        }
        self.wallets.chain_changed(chain, connected, disconnected);
    }

    /// `invalidateblock`: marks `hash` invalid and activates the best remaining chain.
    pub fn invalidate(&self, hash: &BlockHash) -> Result<Activation, ChainError> {
        let mut chain = self.chain();
        let a = chain.invalidate_block(hash)?;
        self.chain_changed(&chain, &a.connected, &a.disconnected);
        Ok(a)
    }

    /// `reconsiderblock`: clears the invalid marks and runs fork choice.
    pub fn reconsider(&self, hash: &BlockHash) -> Result<Activation, ChainError> {
        let mut chain = self.chain();
        let a = chain.reconsider_block(hash)?;
        self.chain_changed(&chain, &a.connected, &a.disconnected);
        Ok(a)
    }

    /// Supplies the model update of a stored block (its checkpoint is derived from the parent's
    /// when the block is validated).
    pub fn accept_update(
        &self,
        hash: &BlockHash,
        bytes: Vec<u8>,
    ) -> Result<AcceptOutcome, ChainError> {
        self.ensure_disk_space()?;
        // The block is stored already: evaluate it without the chain lock first.
        if let Ok(Some(block)) = self.reader.block(hash) {
            self.pot_workers.preverify(self, &block, Some(&bytes));
        }
        let mut chain = self.chain();
        let outcome = chain.accept_update(hash, bytes, self.now())?;
        if let AcceptOutcome::Connected { connected, disconnected, .. } = &outcome {
            self.chain_changed(&chain, connected, disconnected);
        }
        Ok(outcome)
    }

    /// Supplies the whole checkpoint of a stored block (a pruned or damaged one, or the parent
    /// a block needs).
    pub fn accept_checkpoint(
        &self,
        hash: &BlockHash,
        bytes: Vec<u8>,
    ) -> Result<AcceptOutcome, ChainError> {
        self.ensure_disk_space()?;
        let mut chain = self.chain();
        let outcome = chain.accept_checkpoint(hash, bytes, self.now())?;
        if let AcceptOutcome::Connected { connected, disconnected, .. } = &outcome {
            self.chain_changed(&chain, connected, disconnected);
        }
        Ok(outcome)
    }

    /// [`Node::accept_checkpoint`] for a checkpoint in a file (a finished download, or
    /// `loadcheckpoint`): staged into the checkpoint directory and measured by streaming without
    /// the chain lock, then adopted under it if its size and root are the header's. Memory stays
    /// bounded whatever the checkpoint's size. `mode` says whether the file may be taken.
    pub fn accept_checkpoint_file(
        &self,
        hash: &BlockHash,
        path: &std::path::Path,
        mode: rnet_chain::checkpoints::StageMode,
    ) -> Result<AcceptOutcome, ChainError> {
        self.ensure_disk_space()?;
        if self.reader.has_checkpoint(hash)? {
            return Ok(AcceptOutcome::AlreadyHave);
        }
        let staged = self.reader.stage_checkpoint(hash, path, mode)?;
        let mut chain = self.chain();
        let outcome = chain.accept_staged_checkpoint(hash, staged, self.now())?;
        if let AcceptOutcome::Connected { connected, disconnected, .. } = &outcome {
            self.chain_changed(&chain, connected, disconnected);
        }
        Ok(outcome)
    }

    /// The stored checkpoint of `hash` opened for serving (checked against its root by
    /// streaming; see [`rnet_chain::ChainReader::checkpoint_file`]). A damaged file is dropped so
    /// the network fetches it again.
    pub fn checkpoint_file(
        &self,
        hash: &BlockHash,
    ) -> Result<Option<rnet_chain::CheckpointFile>, ChainError> {
        match self.reader.checkpoint_file(hash) {
            Err(ChainError::Corrupt(reason)) => {
                tracing::warn!(%hash, %reason, "stored checkpoint is damaged; re-fetching it from peers");
                self.chain().drop_damaged_checkpoint(hash)?;
                Ok(None)
            }
            other => other,
        }
    }

    /// After a mempool acceptance from outside the wallets (`sendrawtransaction`, P2P): the
    /// transaction and the orphans it let in, for the loaded wallets (call with the pool locked,
    /// then pass the result to [`crate::wallets::Wallets::mempool_accepted`] after unlocking).
    pub fn accepted_txs(pool: &Mempool, res: &rnet_mempool::AcceptResult) -> Vec<Transaction> {
        std::iter::once(&res.txid)
            .chain(&res.accepted_orphans)
            .filter_map(|t| pool.get(t).map(|e| e.tx.clone()))
            .collect()
    }

    /// Sets the in-node miner's learning rate and windows per step (checked by
    /// `rnet_miner::Miner::with_training` when mining); only the first call counts.
    pub fn set_mine_training(&self, lr: f32, batch_windows: usize) {
        let _ = self.mine_training.set((lr, batch_windows));
    }

    /// Sets where mining trains (a device already resolved: `Device::resolve`); only the first
    /// call counts.
    pub fn set_mine_device(&self, device: rnet_miner::Device) {
        let _ = self.mine_device.set(device);
    }

    /// Asks long-running work (the miner, `generatetoaddress`) to stop.
    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown was requested.
    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Sets what stops the whole node (the RPC server's shutdown) when a fatal condition
    /// arises outside RPC (see [`Node::fatal_stop`]). Only the first call counts.
    pub fn set_stop_hook(&self, hook: impl Fn() + Send + Sync + 'static) {
        let _ = self.stop_hook.set(Box::new(hook));
    }

    /// Stops the node cleanly for a fatal reason: logs it once at error level, records it
    /// (`crate::run` then exits with an error) and triggers the shutdown.
    pub fn fatal_stop(&self, reason: String) {
        {
            let mut fatal = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
            if fatal.is_some() {
                return;
            }
            tracing::error!("{reason}; shutting down");
            *fatal = Some(reason);
        }
        self.request_shutdown();
        if let Some(hook) = self.stop_hook.get() {
            hook();
        }
    }

    /// The reason of a [`Node::fatal_stop`], if there was one.
    pub fn fatal_reason(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks the free disk space before a write; below `-mindiskspace` the node stops
    /// ([`Node::fatal_stop`]) and the write is refused with an I/O "storage full" error.
    pub fn ensure_disk_space(&self) -> Result<(), ChainError> {
        self.disk.check().map_err(|e| {
            self.fatal_stop(e.to_string());
            ChainError::Io(std::io::Error::new(std::io::ErrorKind::StorageFull, e))
        })
    }

    /// Records that the active chain changed: the in-node miner abandons its training job (its
    /// parent is no longer the tip). Called only from the chain-change path.
    fn best_block_changed(&self) {
        self.tip_version.fetch_add(1, Ordering::SeqCst);
        self.mempool_changed();
    }

    /// Records that the mempool's content changed (a transaction accepted or replaced): a
    /// miner re-selects the block's transactions when it assembles the block after training.
    /// It never abandons the training: the transactions do not affect the evaluation sample.
    pub fn mempool_changed(&self) {
        self.mempool_version.fetch_add(1, Ordering::SeqCst);
    }

    /// Keeps a checkpoint uploaded before its block (keyed by chunk root).
    pub fn add_pending_checkpoint(&self, root: Hash256, bytes: Vec<u8>) {
        let mut p = self.pending_checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        if p.iter().any(|(r, _)| *r == root) {
            return;
        }
        if p.len() >= MAX_PENDING_CHECKPOINTS {
            p.pop_front();
        }
        p.push_back((root, Arc::new(bytes)));
    }

    /// A pending checkpoint with this root and size (it stays pending: a rejected block with
    /// the same checkpoint must not use it up for the genuine one).
    fn pending_checkpoint(&self, root: &Hash256, size: u64) -> Option<Vec<u8>> {
        let p = self.pending_checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        p.iter().find(|(r, b)| r == root && b.len() as u64 == size).map(|(_, b)| b.as_ref().clone())
    }

    /// Accepts a block (with its model update, or one uploaded earlier with
    /// `submitcheckpoint`/`uploadcheckpointpart` under the update's root).
    pub fn submit_block(
        &self,
        block: Block,
        update: Option<Vec<u8>>,
    ) -> Result<AcceptOutcome, ChainError> {
        let update = update.or_else(|| {
            self.pending_checkpoint(&block.header.update_root, block.header.update_size)
        });
        self.ensure_disk_space()?;
        // Proof-of-Training without the chain lock, when the block's parent is known.
        self.pot_workers.preverify(self, &block, update.as_deref());
        let mut chain = self.chain();
        let outcome = chain.accept_block(block, update, self.now());
        if let Ok(AcceptOutcome::Connected { connected, disconnected, .. }) = &outcome {
            self.chain_changed(&chain, connected, disconnected);
        }
        outcome
    }

    /// The checkpoint bytes of `hash`, cached (the tip's is asked for chunk by chunk).
    pub fn checkpoint_bytes(&self, hash: &BlockHash) -> Result<Option<Arc<Vec<u8>>>, ChainError> {
        {
            let c = self.checkpoint_bytes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((h, b)) = c.as_ref() {
                if h == hash {
                    return Ok(Some(b.clone()));
                }
            }
        }
        let bytes = match self.reader.checkpoint(hash) {
            Ok(Some(bytes)) => Arc::new(bytes),
            Ok(None) => return Ok(None),
            Err(ChainError::Corrupt(reason)) => {
                // Never hand out damaged bytes; drop them so the network fetches them again.
                tracing::warn!(%hash, %reason, "stored checkpoint is damaged; re-fetching it from peers");
                self.chain().drop_damaged_checkpoint(hash)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        *self.checkpoint_bytes.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((*hash, bytes.clone()));
        Ok(Some(bytes))
    }

    /// The checkpoint bytes of `hash` if they are the ones held in memory (usually the tip's),
    /// without touching the disk or the chain lock.
    pub fn cached_checkpoint_bytes(&self, hash: &BlockHash) -> Option<Arc<Vec<u8>>> {
        let c = self.checkpoint_bytes.lock().unwrap_or_else(|e| e.into_inner());
        c.as_ref().filter(|(h, _)| h == hash).map(|(_, b)| b.clone())
    }

    pub(crate) fn parsed_checkpoint(&self, hash: &BlockHash) -> Result<Arc<Checkpoint>, NodeError> {
        {
            let c = self.parsed_checkpoint.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((h, ck)) = c.as_ref() {
                if h == hash {
                    return Ok(ck.clone());
                }
            }
        }
        let bytes = self.checkpoint_bytes(hash)?.ok_or(NodeError::NoTipCheckpoint(*hash))?;
        let ck = Arc::new(
            Checkpoint::from_bytes(&bytes)
                .map_err(|e| NodeError::BadCheckpoint(*hash, e.to_string()))?,
        );
        *self.parsed_checkpoint.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((*hash, ck.clone()));
        Ok(ck)
    }

    /// The node's clock (unix seconds): the mock time set with `setmocktime`, else the system's.
    pub fn now(&self) -> u64 {
        match self.mock_time.load(Ordering::SeqCst) {
            0 => now(),
            t => t,
        }
    }

    /// Sets (or with 0 clears) the mock clock (`setmocktime`, regtest only: the caller checks).
    pub fn set_mock_time(&self, time: u64) {
        self.mock_time.store(time, Ordering::SeqCst);
    }

    /// The template for the next block on the active tip (transactions from the mempool).
    pub fn template(&self) -> Result<Template, NodeError> {
        let chain = self.chain();
        self.template_locked(&chain)
    }

    fn template_locked(&self, chain: &ChainState) -> Result<Template, NodeError> {
        let tip = chain.tip();
        let view = chain.header_chain(&tip.hash)?;
        let shape = next_block_shape(&self.params, &tip);
        let mtp = median_time_past(&view, tip.height);
        let time = self.now().max(mtp + 1);
        let base_required = required_improvement(&self.params, &view);
        let required = effective_required_improvement(&self.params, &view, time);
        let header = chain.header(&tip.hash)?.ok_or(ChainError::UnknownBlock(tip.hash))?;
        let transactions = self.select_transactions();
        let base_subsidy = block_subsidy(&self.params, tip.circulating_supply, required, required);
        Ok(Template {
            height: tip.height + 1,
            time,
            required_improvement: required,
            base_required_improvement: base_required,
            shape,
            median_time_past: mtp,
            transactions,
            base_subsidy,
            checkpoint: (header.checkpoint_root, header.checkpoint_size),
            parent: tip,
        })
    }

    /// The mempool's best transactions for a block on the active tip, with their fees (call
    /// with the chainstate locked or knowing the tip, as the mempool follows it).
    fn select_transactions(&self) -> Vec<(Transaction, Amount)> {
        // Room for the header and the coinbase.
        let max_bytes = self.params.max_block_size.saturating_sub(4_000);
        let pool = self.mempool();
        let selection = pool.assemble(max_bytes);
        selection
            .transactions
            .into_iter()
            .zip(selection.txids)
            .map(|(tx, txid)| (tx, pool.get(&txid).map(|e| e.fee).unwrap_or(Amount::ZERO)))
            .collect()
    }

    /// The transactions of a block on `parent` assembled now: the current mempool's selection
    /// if the mempool changed since `mempool_version` and `parent` is still the active tip (the
    /// pool follows the tip, so its transactions may not fit another parent), else `None`.
    fn refreshed_transactions(
        &self,
        parent: &BlockHash,
        mempool_version: u64,
    ) -> Option<(Vec<Transaction>, Amount)> {
        if self.mempool_version.load(Ordering::SeqCst) == mempool_version {
            return None;
        }
        let chain = self.chain();
        if chain.tip().hash != *parent {
            return None;
        }
        let selected = self.select_transactions();
        let fees = Amount(selected.iter().fold(0u64, |a, (_, f)| a.saturating_add(f.0)));
        Some((selected.into_iter().map(|(t, _)| t).collect(), fees))
    }

    /// Builds a mining job on the active tip paying `payout`; also returns the tip version it
    /// was built at.
    pub fn job(&self, payout: Vec<u8>) -> Result<(MiningJob, u64), NodeError> {
        self.job_versions(payout).map(|(job, tip, _)| (job, tip))
    }

    /// [`Node::job`] with the tip and mempool versions it was built at.
    fn job_versions(&self, payout: Vec<u8>) -> Result<(MiningJob, u64, u64), NodeError> {
        let (template, version, pool_version) = {
            let chain = self.chain();
            // Read the versions before the selection: a change during it is seen as a change.
            let version = self.tip_version.load(Ordering::SeqCst);
            let pool_version = self.mempool_version.load(Ordering::SeqCst);
            (self.template_locked(&chain)?, version, pool_version)
        };
        let parent_checkpoint = self.parsed_checkpoint(&template.parent.hash)?;
        let fees = template.fees();
        let job = MiningJob {
            parent_hash: template.parent.hash,
            parent_supply: template.parent.circulating_supply,
            parent_checkpoint,
            height: template.height,
            required_improvement: template.required_improvement,
            shape: template.shape,
            transactions: template.transactions.into_iter().map(|(t, _)| t).collect(),
            fees,
            min_time: template.median_time_past + 1,
            time: template.time,
            payout_script: payout,
        };
        Ok((job, version, pool_version))
    }

    /// Mines one block on the active tip paying `payout` and submits it. With `abandon_on_new_tip`
    /// the work is cancelled (`MineError::Cancelled`) when the tip changes meanwhile; a mempool
    /// change never cancels it: the block takes the current mempool's transactions when it is
    /// assembled after training (if its parent is still the tip). `max_steps` replaces the
    /// miner's budget with one attempt of at most that many training steps.
    pub fn mine_one(
        &self,
        payout: Vec<u8>,
        abandon_on_new_tip: bool,
        max_steps: Option<u64>,
    ) -> Result<(MinedBlock, AcceptOutcome), NodeError> {
        let _guard = self.mining_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.shutting_down() {
            return Err(NodeError::ShuttingDown);
        }
        let (job, version, pool_version) = self.job_versions(payout)?;
        let mut miner =
            Miner::new(self.params.clone(), self.miner_key.clone(), self.mine_data.clone())
                .with_warm_start(self.mine_warm_start.clone());
        if let Some(&(lr, batch)) = self.mine_training.get() {
            miner = miner.with_training(lr, batch)?;
        }
        if let Some(device) = self.mine_device.get() {
            miner.device = *device;
        }
        if let Some(steps) = max_steps {
            miner.max_steps = steps.max(1);
            miner.attempts = 1;
        }
        let cancel = || {
            self.shutting_down()
                || (abandon_on_new_tip && self.tip_version.load(Ordering::SeqCst) != version)
        };
        let refresh = || self.refreshed_transactions(&job.parent_hash, pool_version);
        let control =
            MineControl { progress: false, cancel: &cancel, transactions: Some(&refresh) };
        let mined = miner.mine(&job, &control)?;
        let outcome = self.submit_block(mined.block.clone(), Some(mined.update_bytes.clone()))?;
        let h = &mined.block.header;
        if matches!(outcome, AcceptOutcome::Connected { .. }) {
            let bytes =
                mined.steps * (miner.train.batch_windows * self.params.genesis_model.window) as u64;
            metrics::counter!("rnet_blocks_mined_total").increment(1);
            metrics::counter!("rnet_training_steps_total").increment(mined.steps);
            metrics::counter!("rnet_training_bytes_total").increment(bytes);
            let secs = mined.elapsed.as_secs_f64();
            if secs > 0.0 {
                metrics::gauge!("rnet_training_bytes_per_second").set(bytes as f64 / secs);
            }
            let loss_index = self.chain().tip().loss_index;
            let benchmark = self
                .benchmark
                .latest()
                .map_or_else(|| "pending".to_string(), |b| format!("{} (h{})", b.loss, b.height));
            tracing::info!(
                "mined block height={} val_loss={} ({:.6} nats/byte, {:.6} bits/byte) parent_loss={} improvement={} required={} loss_index={} benchmark_loss={} shape=(d={}, L={}) reward={} RNT steps={} time={:.3}s hash={}",
                h.height,
                h.val_loss,
                loss_nats(h.val_loss),
                loss_bits(h.val_loss),
                h.parent_loss,
                h.parent_loss.saturating_sub(h.val_loss),
                h.required_improvement,
                loss_index,
                benchmark,
                h.shape.d_model,
                h.shape.n_layers,
                mined.subsidy,
                mined.steps,
                mined.elapsed.as_secs_f64(),
                mined.block.block_hash(),
            );
        }
        Ok((mined, outcome))
    }

    /// Mines `n` blocks paying `payout` (for `generatetoaddress`; `max_steps` is its
    /// `maxtries`: the training-step budget of each block); returns their hashes.
    pub fn generate(
        &self,
        n: u32,
        payout: Vec<u8>,
        max_steps: Option<u64>,
    ) -> Result<Vec<BlockHash>, NodeError> {
        let mut hashes = Vec::new();
        for _ in 0..n {
            let (mined, outcome) = self.mine_one(payout.clone(), false, max_steps)?;
            let hash = mined.block.block_hash();
            if !matches!(outcome, AcceptOutcome::Connected { .. }) {
                return Err(NodeError::NotConnected { hash, outcome: format!("{outcome:?}") });
            }
            hashes.push(hash);
        }
        Ok(hashes)
    }

    /// Records that block data from a peer (a block, update or checkpoint) was just stored.
    pub fn note_peer_data(&self) {
        *self.peer_data_at.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::time::Instant::now());
    }

    /// Whether the in-node miner should wait: the node is downloading a chain with more work
    /// than its tip ([`crate::catch_up`]).
    pub fn catching_up(&self) -> bool {
        let last = *self.peer_data_at.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        // Cheap test first: without recent peer data there is nothing to wait for.
        if !crate::catch_up::should_wait(true, last, now, crate::catch_up::CATCH_UP_WINDOW) {
            return false;
        }
        let Ok(tip) = self.reader.tip() else { return false };
        let tips = self.reader.chain_tips().unwrap_or_default();
        crate::catch_up::behind(&tips, tip.chainwork)
    }

    /// The in-node miner loop (`-mine`): mines on the tip until shutdown; waits while the node
    /// downloads a chain with more work ([`crate::catch_up`]).
    pub fn mining_loop(&self, payout: Vec<u8>) {
        self.mining.store(true, Ordering::SeqCst);
        tracing::info!("in-node miner started");
        let mut waiting = false;
        while !self.shutting_down() {
            // A full disk stops the node (before training a block that could not be stored).
            if self.ensure_disk_space().is_err() {
                break;
            }
            if self.catching_up() {
                if !waiting {
                    tracing::info!("miner waits: downloading a chain with more work than the tip");
                    waiting = true;
                }
                // Each check scans the block index's branch tips: once a second is enough for a
                // decision made once per block.
                for _ in 0..10 {
                    if self.shutting_down() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            if waiting {
                let height = self.reader.tip().map_or(0, |t| t.height);
                tracing::info!("miner resumes at height {height}");
                waiting = false;
            }
            match self.mine_one(payout.clone(), true, None) {
                Ok(_) => {}
                Err(NodeError::Mine(MineError::Cancelled)) | Err(NodeError::ShuttingDown) => {}
                // Stopping (e.g. the disk filled): the reason is already logged.
                Err(_) if self.shutting_down() => {}
                Err(e) => {
                    tracing::warn!("miner: {e}");
                    for _ in 0..10 {
                        if self.shutting_down() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        }
        self.mining.store(false, Ordering::SeqCst);
        tracing::info!("in-node miner stopped");
    }

    /// Verifies uploaded checkpoint bytes against `root` (chunk merkle root).
    pub fn checkpoint_matches(bytes: &[u8], root: &Hash256) -> bool {
        checkpoint_root(bytes) == *root
    }
}

/// How long the chain lock may be held before the hold is logged.
pub const SLOW_CHAIN_LOCK: std::time::Duration = std::time::Duration::from_millis(50);

/// The locked chainstate (see [`Node::chain`]); logs holds longer than [`SLOW_CHAIN_LOCK`].
pub struct ChainGuard<'a> {
    guard: MutexGuard<'a, ChainState>,
    since: std::time::Instant,
    caller: &'static std::panic::Location<'static>,
}

impl std::ops::Deref for ChainGuard<'_> {
    type Target = ChainState;
    fn deref(&self) -> &ChainState {
        &self.guard
    }
}

impl std::ops::DerefMut for ChainGuard<'_> {
    fn deref_mut(&mut self) -> &mut ChainState {
        &mut self.guard
    }
}

impl Drop for ChainGuard<'_> {
    fn drop(&mut self) {
        let held = self.since.elapsed();
        if held > SLOW_CHAIN_LOCK {
            tracing::warn!(
                held_ms = held.as_millis() as u64,
                at = %self.caller,
                "chain lock held long; RPC and peers waited"
            );
        }
    }
}
