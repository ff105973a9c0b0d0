//! Shared harness of the peer-hardening tests: an in-memory [`Backend`] and a raw peer that speaks
//! the protocol over loopback with `rnet_net`'s own transport, so a test can misbehave exactly.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rnet_crypto::SigningKey;
use rnet_net::message::Message;
use rnet_net::net::BAN_SCORE;
use rnet_net::testing;
use rnet_net::transport::NodeKey;
use rnet_net::{Accepted, Backend, NetConfig, NetHandle, Rejected};
use rnet_primitives::{Block, BlockHash, BlockHeader, Transaction, Txid};
use tokio::runtime::Runtime;

/// The network magic of the tests.
pub const MAGIC: [u8; 4] = *b"test";

/// An in-memory node: a genesis block, model updates and checkpoints, a mempool, and knobs for
/// slow or failing validation.
pub struct FakeBackend {
    /// The genesis header.
    pub genesis: BlockHeader,
    /// Stored headers (genesis plus whatever a test adds).
    pub headers: Mutex<HashMap<BlockHash, BlockHeader>>,
    /// Retained checkpoints.
    pub checkpoints: Mutex<HashMap<BlockHash, Arc<Vec<u8>>>>,
    /// Retained model updates.
    pub updates: Mutex<HashMap<BlockHash, Arc<Vec<u8>>>>,
    /// Accepted transactions.
    pub mempool: Mutex<HashMap<Txid, Transaction>>,
    /// How long `accept_tx` takes.
    pub tx_delay: Mutex<Duration>,
    /// Calls of `accept_tx`.
    pub tx_calls: AtomicUsize,
    /// How long `checkpoint` takes (a node reading and root-checking a large file).
    pub checkpoint_delay: Mutex<Duration>,
    /// Calls of `checkpoint`.
    pub checkpoint_calls: AtomicUsize,
    /// Calls of `accept_block`.
    pub block_calls: AtomicUsize,
    /// Transactions with this lock time are rejected as consensus-invalid; `lock_time + 1` as a
    /// policy reject (`invalid: false`).
    pub bad_lock_time: u32,
    /// Blocks whose parent is unknown are reported as orphans (others are stored).
    pub known: Mutex<HashSet<BlockHash>>,
    /// The active chain above genesis (served by `headers_after` and `block`; its last block is
    /// the tip `best` reports, so extending it makes the node announce the new tip).
    pub chain: Mutex<Vec<Block>>,
    /// Blocks whose checkpoints the node reports it lacks (`wanted_checkpoints`).
    pub wanted: Mutex<Vec<BlockHash>>,
    /// Checkpoints handed to `accept_checkpoint`.
    pub accepted_checkpoints: Mutex<Vec<(BlockHash, Vec<u8>)>>,
    /// Blocks whose updates the node reports it lacks (`wanted_updates`).
    pub wanted_updates: Mutex<Vec<BlockHash>>,
    /// Updates handed to `accept_update`.
    pub accepted_updates: Mutex<Vec<(BlockHash, Vec<u8>)>>,
    /// What `accept_block` answers for a block whose parent is known (`Stored` unless a test
    /// sets `NeedUpdate`); such a block's header is stored.
    pub block_result: Mutex<Accepted>,
}

impl FakeBackend {
    /// A backend whose chain is one genesis block.
    pub fn new() -> Arc<Self> {
        let genesis = BlockHeader { time: 1, ..BlockHeader::default() };
        let g = genesis.hash();
        Arc::new(Self {
            headers: Mutex::new(HashMap::from([(g, genesis.clone())])),
            known: Mutex::new(HashSet::from([g])),
            chain: Mutex::new(Vec::new()),
            genesis,
            checkpoints: Mutex::new(HashMap::new()),
            updates: Mutex::new(HashMap::new()),
            mempool: Mutex::new(HashMap::new()),
            tx_delay: Mutex::new(Duration::ZERO),
            tx_calls: AtomicUsize::new(0),
            checkpoint_delay: Mutex::new(Duration::ZERO),
            checkpoint_calls: AtomicUsize::new(0),
            block_calls: AtomicUsize::new(0),
            bad_lock_time: 7,
            wanted: Mutex::new(Vec::new()),
            accepted_checkpoints: Mutex::new(Vec::new()),
            wanted_updates: Mutex::new(Vec::new()),
            accepted_updates: Mutex::new(Vec::new()),
            block_result: Mutex::new(Accepted::Stored),
        })
    }

    /// The genesis block hash.
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis.hash()
    }
}

impl Backend for FakeBackend {
    fn best(&self) -> (u32, u128, BlockHash) {
        let chain = self.chain.lock().unwrap();
        let tip = chain.last().map_or(self.genesis_hash(), Block::block_hash);
        (chain.len() as u32, 1 + chain.len() as u128, tip)
    }
    fn locator(&self) -> Vec<BlockHash> {
        vec![self.best().2]
    }
    fn headers_after(&self, locator: &[BlockHash], _: &BlockHash, max: usize) -> Vec<BlockHeader> {
        let chain = self.chain.lock().unwrap();
        let hashes: Vec<BlockHash> = chain.iter().map(Block::block_hash).collect();
        let after = locator
            .iter()
            .find_map(|l| hashes.iter().position(|h| h == l).map(|i| i + 1))
            .unwrap_or(0);
        chain[after..].iter().take(max).map(|b| b.header.clone()).collect()
    }
    fn has_block(&self, hash: &BlockHash) -> bool {
        self.known.lock().unwrap().contains(hash)
    }
    fn header(&self, hash: &BlockHash) -> Option<BlockHeader> {
        self.headers.lock().unwrap().get(hash).cloned()
    }
    fn block(&self, hash: &BlockHash) -> Option<Block> {
        self.chain.lock().unwrap().iter().find(|b| b.block_hash() == *hash).cloned()
    }
    fn accept_block(&self, block: Block) -> Result<Accepted, Rejected> {
        self.block_calls.fetch_add(1, Ordering::SeqCst);
        let parent = block.header.prev_block_hash;
        if !self.has_block(&parent) {
            return Ok(Accepted::Orphan(parent));
        }
        let hash = block.block_hash();
        self.headers.lock().unwrap().insert(hash, block.header.clone());
        self.known.lock().unwrap().insert(hash);
        Ok(self.block_result.lock().unwrap().clone())
    }
    fn accept_update(&self, hash: &BlockHash, bytes: Vec<u8>) -> Result<Accepted, Rejected> {
        self.wanted_updates.lock().unwrap().retain(|h| h != hash);
        self.accepted_updates.lock().unwrap().push((*hash, bytes.clone()));
        self.updates.lock().unwrap().insert(*hash, Arc::new(bytes));
        Ok(Accepted::Connected)
    }
    fn update(&self, hash: &BlockHash) -> Option<Arc<Vec<u8>>> {
        self.updates.lock().unwrap().get(hash).cloned()
    }
    fn has_update(&self, hash: &BlockHash) -> bool {
        self.updates.lock().unwrap().contains_key(hash)
    }
    fn wanted_updates(&self, max: usize) -> Vec<BlockHash> {
        self.wanted_updates.lock().unwrap().iter().take(max).copied().collect()
    }
    fn accept_checkpoint(&self, hash: &BlockHash, bytes: Vec<u8>) -> Result<Accepted, Rejected> {
        self.wanted.lock().unwrap().retain(|h| h != hash);
        self.accepted_checkpoints.lock().unwrap().push((*hash, bytes));
        Ok(Accepted::Stored)
    }
    fn wanted_checkpoints(&self, max: usize) -> Vec<BlockHash> {
        self.wanted.lock().unwrap().iter().take(max).copied().collect()
    }
    fn checkpoint(&self, hash: &BlockHash) -> Option<Arc<Vec<u8>>> {
        self.checkpoint_calls.fetch_add(1, Ordering::SeqCst);
        let d = *self.checkpoint_delay.lock().unwrap();
        if !d.is_zero() {
            std::thread::sleep(d);
        }
        self.checkpoints.lock().unwrap().get(hash).cloned()
    }
    fn has_checkpoint(&self, hash: &BlockHash) -> bool {
        self.checkpoints.lock().unwrap().contains_key(hash)
    }
    fn mempool_txids(&self) -> Vec<Txid> {
        self.mempool.lock().unwrap().keys().copied().collect()
    }
    fn tx(&self, txid: &Txid) -> Option<Transaction> {
        self.mempool.lock().unwrap().get(txid).cloned()
    }
    fn accept_tx(&self, tx: Transaction) -> Result<bool, Rejected> {
        self.tx_calls.fetch_add(1, Ordering::SeqCst);
        let d = *self.tx_delay.lock().unwrap();
        if !d.is_zero() {
            std::thread::sleep(d);
        }
        if tx.lock_time == self.bad_lock_time {
            return Err(Rejected { invalid: true, reason: "bad signature".into() });
        }
        if tx.lock_time == self.bad_lock_time + 1 {
            return Err(Rejected { invalid: false, reason: "fee too low".into() });
        }
        Ok(self.mempool.lock().unwrap().insert(tx.txid(), tx).is_none())
    }
}

/// A multi-threaded runtime for one test.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A listening, non-dialing configuration on loopback.
pub fn config() -> NetConfig {
    let mut c = NetConfig::new(MAGIC, 0);
    c.bind = vec!["127.0.0.1:0".parse().unwrap()];
    c.auto_connect = false;
    c
}

/// Starts a node on `rt`.
pub fn start(rt: &Runtime, cfg: NetConfig, backend: Arc<FakeBackend>) -> NetHandle {
    let _g = rt.enter();
    rt.block_on(rnet_net::start(cfg, backend)).unwrap()
}

/// A peer driven by the test: [`rnet_net::testing::RawPeer`] (fields and methods through
/// `Deref`) with constructors that take the node under test.
pub struct RawPeer(pub testing::RawPeer);

impl Deref for RawPeer {
    type Target = testing::RawPeer;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for RawPeer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl RawPeer {
    /// Connects and completes the Noise handshake and `version`/`verack`.
    pub async fn connect(node: &NetHandle) -> Self {
        Self::try_connect(node).await.expect("verack")
    }

    /// Connects and completes only the Noise handshake.
    pub async fn connect_noise(node: &NetHandle) -> Self {
        Self::try_connect_noise(node).await.expect("noise handshake")
    }

    /// Connects and tries the Noise handshake (None if the node refuses).
    pub async fn try_connect_noise(node: &NetHandle) -> Option<Self> {
        testing::RawPeer::connect_noise(node.local[0], MAGIC).await.ok().map(Self)
    }

    /// Connects, handshakes and waits for `verack` (None if the node refuses).
    pub async fn try_connect(node: &NetHandle) -> Option<Self> {
        testing::RawPeer::connect(node.local[0], MAGIC).await.map(Self)
    }

    /// Connects and handshakes announcing `version` (see [`version_with`]).
    pub async fn connect_as(node: &NetHandle, version: Message) -> Self {
        testing::RawPeer::connect_as(node.local[0], MAGIC, version).await.map(Self).expect("verack")
    }
}

/// A `version` message.
pub fn version(nonce: u64) -> Message {
    testing::version(MAGIC, nonce)
}

/// A `version` message announcing `best_height`, `services` and `model_depth`.
pub fn version_with(nonce: u64, best_height: u32, services: u64, model_depth: u32) -> Message {
    let Message::Version(mut v) = version(nonce) else { unreachable!("version() is a version") };
    v.best_height = best_height;
    v.services = services;
    v.model_depth = model_depth;
    Message::Version(v)
}

/// A header on `parent` at `height`, signed by `key`; `salt` tells siblings apart.
pub fn signed_header(key: &SigningKey, parent: BlockHash, height: u32, salt: u64) -> BlockHeader {
    let mut h = BlockHeader {
        prev_block_hash: parent,
        height,
        time: 2 + u64::from(height),
        training_steps: salt,
        miner_pubkey: key.public_key().to_bytes(),
        ..BlockHeader::default()
    };
    h.signature = key.sign(h.hash().as_bytes()).to_bytes();
    h
}

/// Whether the node bans the key of `peer`.
pub fn banned(node: &NetHandle, peer: &NodeKey) -> bool {
    let k = format!("key:{}", hex::encode(peer.public));
    node.list_banned().iter().any(|(t, _)| *t == k)
}

/// Waits (blocking) until `f` holds or `t` passes.
pub fn eventually(t: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + t;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// The ban threshold (re-exported for tests).
pub const BAN: u32 = BAN_SCORE;

impl FakeBackend {
    /// Extends the active chain with `block` (its header stored and known): the node announces
    /// it as its new tip and serves it.
    pub fn extend_chain(&self, block: Block) {
        let hash = block.block_hash();
        self.headers.lock().unwrap().insert(hash, block.header.clone());
        self.known.lock().unwrap().insert(hash);
        self.chain.lock().unwrap().push(block);
    }
}

/// A block on `parent` at `height` signed by `key`, committing to the model update `update` and
/// to a checkpoint of `checkpoint_size` bytes with root `checkpoint_root`.
pub fn block_with_update(
    key: &SigningKey,
    parent: BlockHash,
    height: u32,
    update: &[u8],
    checkpoint_root: [u8; 32],
    checkpoint_size: u64,
) -> Block {
    use rnet_model::checkpoint::{chunk_hashes, merkle_root};
    use rnet_primitives::{Amount, Hash256, OutPoint, TxIn, TxOut, Witness};
    let mut header = BlockHeader {
        prev_block_hash: parent,
        height,
        time: 2 + u64::from(height),
        checkpoint_root: Hash256(checkpoint_root),
        checkpoint_size,
        update_root: Hash256(merkle_root(&chunk_hashes(update))),
        update_size: update.len() as u64,
        miner_pubkey: key.public_key().to_bytes(),
        ..BlockHeader::default()
    };
    header.signature = key.sign(header.hash().as_bytes()).to_bytes();
    let coinbase = Transaction {
        version: 2,
        inputs: vec![TxIn {
            previous_output: OutPoint::new(Txid([0; 32]), u32::MAX),
            script_sig: height.to_le_bytes().to_vec(),
            sequence: u32::MAX,
            witness: Witness::new(),
        }],
        outputs: vec![TxOut { value: Amount(50), script_pubkey: vec![0x51] }],
        lock_time: 0,
    };
    Block { header, transactions: vec![coinbase], sample: Default::default() }
}

/// The whole chunk-hash list of an object as one `chunkhashes` page (start 0, total its length).
pub fn hash_list(
    block: BlockHash,
    kind: rnet_net::message::ModelObject,
    hashes: Vec<[u8; 32]>,
) -> Message {
    let total = hashes.len() as u32;
    Message::ChunkHashes { block, kind, start: 0, total, hashes }
}
