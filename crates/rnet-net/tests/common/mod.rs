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

/// An in-memory node: a genesis block, checkpoints, a mempool, and knobs for slow or failing
/// validation.
pub struct FakeBackend {
    /// The genesis header.
    pub genesis: BlockHeader,
    /// Stored headers (genesis plus whatever a test adds).
    pub headers: Mutex<HashMap<BlockHash, BlockHeader>>,
    /// Retained checkpoints.
    pub checkpoints: Mutex<HashMap<BlockHash, Arc<Vec<u8>>>>,
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
    /// Blocks whose checkpoints the node reports it lacks (`wanted_checkpoints`).
    pub wanted: Mutex<Vec<BlockHash>>,
    /// Checkpoints handed to `accept_checkpoint`.
    pub accepted_checkpoints: Mutex<Vec<(BlockHash, Vec<u8>)>>,
}

impl FakeBackend {
    /// A backend whose chain is one genesis block.
    pub fn new() -> Arc<Self> {
        let genesis = BlockHeader { time: 1, ..BlockHeader::default() };
        let g = genesis.hash();
        Arc::new(Self {
            headers: Mutex::new(HashMap::from([(g, genesis.clone())])),
            known: Mutex::new(HashSet::from([g])),
            genesis,
            checkpoints: Mutex::new(HashMap::new()),
            mempool: Mutex::new(HashMap::new()),
            tx_delay: Mutex::new(Duration::ZERO),
            tx_calls: AtomicUsize::new(0),
            checkpoint_delay: Mutex::new(Duration::ZERO),
            checkpoint_calls: AtomicUsize::new(0),
            block_calls: AtomicUsize::new(0),
            bad_lock_time: 7,
            wanted: Mutex::new(Vec::new()),
            accepted_checkpoints: Mutex::new(Vec::new()),
        })
    }

    /// The genesis block hash.
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis.hash()
    }
}

impl Backend for FakeBackend {
    fn best(&self) -> (u32, u128, BlockHash) {
        (0, 1, self.genesis_hash())
    }
    fn locator(&self) -> Vec<BlockHash> {
        vec![self.genesis_hash()]
    }
    fn headers_after(&self, _: &[BlockHash], _: &BlockHash, _: usize) -> Vec<BlockHeader> {
        Vec::new()
    }
    fn has_block(&self, hash: &BlockHash) -> bool {
        self.known.lock().unwrap().contains(hash)
    }
    fn header(&self, hash: &BlockHash) -> Option<BlockHeader> {
        self.headers.lock().unwrap().get(hash).cloned()
    }
    fn block(&self, _: &BlockHash) -> Option<Block> {
        None
    }
    fn accept_block(&self, block: Block) -> Result<Accepted, Rejected> {
        self.block_calls.fetch_add(1, Ordering::SeqCst);
        let parent = block.header.prev_block_hash;
        if !self.has_block(&parent) {
            return Ok(Accepted::Orphan(parent));
        }
        self.known.lock().unwrap().insert(block.block_hash());
        Ok(Accepted::Stored)
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
