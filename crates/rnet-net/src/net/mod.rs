//! The peer manager: one task owns all peer and sync state; each connection has a reader task
//! (handshake, decrypt, decode) and a writer task fed by a bounded queue. Split by the protocol's
//! nouns: [`peer`] (per-peer state, send queue, scores), [`connection`] (sockets and dialing),
//! [`sync`] (headers-first block download), [`checkpoints`] (download of each block's model
//! update and of whole checkpoints, in verified chunks), `serving` (serving them),
//! [`relay`] (inv/getdata/tx relay) and [`handle`] (the public handle and its commands).

mod checkpoints;
mod connection;
mod eviction;
mod handle;
mod orphans;
mod partial;
mod peer;
mod relay;
mod serving;
mod sync;
mod validation;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rnet_model::checkpoint::CHUNK_SIZE;
use rnet_primitives::{BlockHash, Txid};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::addr::{AddrEntry, AddrMan, PeerAddr};
use crate::backend::Backend;
use crate::ban::BanList;
use crate::message::{
    Inv, InvKind, MAX_HEADERS, MAX_INV, MIN_PROTOCOL_VERSION, Message, NODE_MODEL_ARCHIVE,
    NODE_NETWORK, PROTOCOL_VERSION, Version,
};
use crate::transport::{self, NodeKey, TransportError};

use checkpoints::{ChunkHashCache, CkFetch, ObjectKey};
use handle::Cmd;
pub use handle::{AddNodeMode, NetHandle, NetworkInfo, PeerInfo, SetBanRequest, Totals};
use orphans::OrphanPool;
pub use orphans::{MAX_ORPHAN_BLOCKS, MAX_ORPHAN_BYTES};
pub use partial::{DOWNLOADS_DIR, MAX_PARTIAL_BYTES, PARTIAL_MAX_AGE};
use peer::{Outbound, Peer};
use relay::RejectFilter;
pub use serving::{MAX_LOADING, MAX_WAITING_PER_PEER};
use sync::Want;
use validation::{BLOCK_QUEUE, Checked, HEADERS_QUEUE, Job, TX_QUEUE};

/// Score at which a peer is banned.
pub const BAN_SCORE: u32 = 100;
/// Blocks requested from one peer at a time.
pub const MAX_BLOCKS_IN_FLIGHT: usize = 16;
/// Blocks are downloaded at most this far above the active tip (below the chain state's limit
/// of 288 stored blocks above the last validated one), so a fast block download never runs
/// ahead of update downloads and validation.
pub const BLOCK_DOWNLOAD_WINDOW: u32 = 256;
/// Model object (update, checkpoint) chunks requested from one peer at a time.
pub const MAX_CHUNKS_IN_FLIGHT: usize = 4;
/// Whole checkpoints downloaded at once.
pub const MAX_CHECKPOINT_FETCHES: usize = 4;
/// Largest checkpoint accepted for download: 64 GiB (65 536 chunks, 2 MiB of chunk hashes),
/// a sanity bound well above mainnet's growth cap (~25 GiB). A header committing to a larger
/// one is not fetched. Only the chunk-hash list (32 bytes per chunk) is held in memory; chunks
/// go to the partial file.
pub const MAX_CHECKPOINT_SIZE: u64 = 64 << 30;
/// Model updates downloaded at once (besides the checkpoints): a node syncing fetches one per
/// block.
pub const MAX_UPDATE_FETCHES: usize = 16;
/// Largest model update accepted for download: `max_update_bytes` of every network (8 MiB).
pub const MAX_UPDATE_SIZE: u64 = 8 << 20;
/// How often the manager asks the node which updates and checkpoints it lacks
/// ([`crate::Backend::wanted_updates`], [`crate::Backend::wanted_checkpoints`]).
pub const WANTED_CHECKPOINTS_POLL: Duration = Duration::from_secs(5);
/// Outgoing messages queued per peer before it is disconnected as too slow.
pub const SEND_QUEUE: usize = 1024;
/// Unsent payload bytes queued per peer before it is disconnected as not reading: room for the
/// largest honest demand, [`MAX_BLOCKS_IN_FLIGHT`] blocks of the largest wire size, plus slack.
pub const MAX_SEND_QUEUE_BYTES: usize =
    MAX_BLOCKS_IN_FLIGHT * rnet_primitives::MAX_BLOCK_WIRE_SIZE + 8 * CHUNK_SIZE;
/// Model object chunks queued unsent per peer: an honest peer has at most
/// [`MAX_CHUNKS_IN_FLIGHT`] requests out (twice that allows for re-requests after a stall); a
/// `getchunk` beyond it is not served and scores [`CHUNK_FLOOD_SCORE`].
pub const MAX_QUEUED_CHUNKS: usize = 2 * MAX_CHUNKS_IN_FLIGHT;
/// `getchunk` requests a peer may make at once (token bucket size).
pub const CHUNK_REQUEST_BURST: f64 = 1024.0;
/// `getchunk` requests per second a peer may sustain (1 GiB/s of updates and checkpoints). An
/// honest downloader keeps [`MAX_CHUNKS_IN_FLIGHT`] requests out and is bounded by its link and
/// by verifying chunks; on loopback it fetches a few hundred MiB/s, which an earlier limit of
/// 64/s scored as flooding. The bucket only caps the disk reads one peer can cause.
pub const CHUNK_REQUEST_RATE: f64 = 1024.0;
/// Score of a `getchunk` over the rate limit or over [`MAX_QUEUED_CHUNKS`].
pub const CHUNK_FLOOD_SCORE: u32 = 10;
/// Unrequested `tx` messages a peer may send at once (token bucket size).
pub const UNREQUESTED_TX_BURST: f64 = 10.0;
/// Unrequested `tx` messages per second a peer may sustain.
pub const UNREQUESTED_TX_RATE: f64 = 1.0;
/// Largest `block` payload decoded without our request (bytes). Honest nodes never push blocks
/// (they announce with `inv`; we fetch with `getheaders` and `getdata`), so this only lets
/// tools and tests that push an ordinary block keep working: an evaluation sample at its limit
/// ([`rnet_primitives::sample::MAX_SAMPLE_SIZE`], 1.31 MB; mainnet's 128 records are ~0.6 MB) plus
/// 100 kB of coinbase and transactions (one standard-size transaction). A larger unrequested
/// block is dropped undecoded, before it costs a decode (a 4 MB block of empty witness items
/// decodes to ~88 MB), and scores [`UNREQUESTED_BLOCK_SCORE`].
pub const MAX_UNREQUESTED_BLOCK_SIZE: usize = rnet_primitives::sample::MAX_SAMPLE_SIZE + 100_000;
/// Score of a `block` over [`MAX_UNREQUESTED_BLOCK_SIZE`] we did not ask its sender for: like
/// unsolicited headers, data no honest node sends, yet not a ban at once (a request we forgot
/// after a long stall may be answered late); five ban.
pub const UNREQUESTED_BLOCK_SCORE: u32 = 20;
/// Automatic outbound connections.
pub const MAX_OUTBOUND: usize = 8;

/// Network configuration.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Network magic (also in the Noise prologue).
    pub magic: [u8; 4],
    /// Default P2P port of the network.
    pub default_port: u16,
    /// Accept inbound connections.
    pub listen: bool,
    /// Listen addresses (`-bind`); port 0 picks a free one.
    pub bind: Vec<SocketAddr>,
    /// Only connect to these (`-connect`); automatic connections are off when set.
    pub connect: Vec<String>,
    /// Keep connections to these (`-addnode`).
    pub addnode: Vec<String>,
    /// Connect once to learn addresses (`-seednode`).
    pub seednode: Vec<String>,
    /// Connection limit (inbound plus outbound).
    pub max_connections: usize,
    /// Make automatic outbound connections from the address manager.
    pub auto_connect: bool,
    /// SOCKS5 proxy for outbound connections (`-proxy`).
    pub proxy: Option<SocketAddr>,
    /// Connect only to onion addresses (`-onlynet=onion`).
    pub onion_only: bool,
    /// Where `p2p.key`, `banlist.json`, `peers.json` live (`None`: in memory, random key).
    pub netdir: Option<PathBuf>,
    /// User agent.
    pub user_agent: String,
    /// Block/chunk request timeout (stall detection).
    pub stall_timeout: Duration,
    /// Ping interval.
    pub ping_interval: Duration,
    /// Disconnect after this long without a message.
    pub inactivity_timeout: Duration,
    /// Drop a connection that has not completed the handshake (TCP connect, Noise, `version`
    /// and `verack`) this long after it was opened.
    pub handshake_timeout: Duration,
    /// How many of the most recent blocks' models (updates and checkpoints) the node keeps and
    /// serves, as advertised in `version` ([`Version::model_depth`]); 0: an archive node, which
    /// keeps every model and advertises [`NODE_MODEL_ARCHIVE`]. Set it to the node's pruning depth
    /// (`rnetd -prunemodels`); the default, 0, suits a backend that prunes nothing.
    pub model_depth: u32,
    /// Most chunk hashes this node puts in one `chunkhashes` page it serves (at most, and by
    /// default, [`crate::message::MAX_CHUNK_HASHES`]; tests set a small page to exercise
    /// paging with small objects). Values over the maximum are clamped, 0 counts as 1.
    pub chunk_hashes_page: usize,
}

impl NetConfig {
    /// The service bits this node advertises.
    pub fn services(&self) -> u64 {
        if self.model_depth == 0 { NODE_NETWORK | NODE_MODEL_ARCHIVE } else { NODE_NETWORK }
    }
}

impl NetConfig {
    /// Defaults for a network.
    pub fn new(magic: [u8; 4], default_port: u16) -> Self {
        Self {
            magic,
            default_port,
            listen: true,
            bind: vec![SocketAddr::from(([0, 0, 0, 0], default_port))],
            connect: Vec::new(),
            addnode: Vec::new(),
            seednode: Vec::new(),
            max_connections: 125,
            auto_connect: true,
            proxy: None,
            onion_only: false,
            netdir: None,
            user_agent: format!("/rnetd:{}/", env!("CARGO_PKG_VERSION")),
            stall_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            inactivity_timeout: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(30),
            model_depth: 0,
            chunk_hashes_page: crate::message::MAX_CHUNK_HASHES,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

enum Event {
    Connected {
        id: u64,
        remote_key: [u8; 32],
        tx: mpsc::Sender<Outbound>,
    },
    Msg(u64, Message),
    Bad(u64, u32, String),
    Closed(u64, String),
    Inbound(TcpStream, SocketAddr),
    Checked(Checked),
    Loaded(serving::Loaded),
    /// A download's partial file was opened off the event loop.
    PartialOpened {
        key: checkpoints::ObjectKey,
        chunks: partial::Chunks,
    },
}

struct Manager {
    cfg: NetConfig,
    backend: Arc<dyn Backend>,
    key: NodeKey,
    nonce: u64,
    events_tx: mpsc::Sender<Event>,
    next_id: u64,
    peers: HashMap<u64, Peer>,
    bans: BanList,
    addrman: AddrMan,
    manual: HashMap<String, Instant>,
    /// The node key last reached at each `addnode` target (a link to that key, whichever side
    /// dialed it, counts as connected).
    manual_keys: HashMap<String, [u8; 32]>,
    /// Secret key of the eviction's network-group order.
    evict_keyer: std::collections::hash_map::RandomState,
    onetry: Vec<String>,
    wanted: HashMap<BlockHash, Want>,
    orphans: OrphanPool,
    /// Model object downloads running, by (block, kind).
    ck: HashMap<ObjectKey, CkFetch>,
    /// Queued downloads per kind (indexed by `ModelObject as usize`): (block, source peer).
    ck_queue: [VecDeque<(BlockHash, u64)>; 2],
    /// Completed downloads waiting for `accept_update`/`accept_checkpoint` (not fetched again).
    ck_checking: HashSet<ObjectKey>,
    chunk_hashes: ChunkHashCache,
    serving: serving::Serving,
    last_tip: BlockHash,
    announced_txs: HashSet<Txid>,
    requested_txs: HashMap<Txid, (u64, Instant)>,
    recent_rejects: RejectFilter,
    tx_checking: HashSet<Txid>,
    blocks_checking: HashSet<BlockHash>,
    /// `Block::memory_usage` of the unrequested blocks waiting in the validation queue.
    unrequested_pending_bytes: usize,
    tx_jobs: mpsc::Sender<Job>,
    block_jobs: mpsc::Sender<Job>,
    header_jobs: mpsc::Sender<Job>,
    totals: Arc<Totals>,
    local: Vec<SocketAddr>,
    last_addr_save: Instant,
    last_wanted_poll: Instant,
}

/// Starts the network on the current tokio runtime (multi-threaded: backend calls use
/// `block_in_place`). Returns once the listeners are bound.
pub async fn start(cfg: NetConfig, backend: Arc<dyn Backend>) -> Result<NetHandle, TransportError> {
    let key = match &cfg.netdir {
        Some(d) => NodeKey::load_or_create(&d.join(transport::NODE_KEY_FILE))?,
        None => NodeKey::generate()?,
    };
    let (events_tx, events_rx) = mpsc::channel(4096);
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let mut local = Vec::new();
    if cfg.listen {
        for b in &cfg.bind {
            // A port already in use is not fatal: the node runs without that listener.
            let l = match TcpListener::bind(b).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("P2P: cannot listen on {b}: {e}; continuing without it");
                    continue;
                }
            };
            local.push(l.local_addr()?);
            tracing::info!("P2P listening on {}", l.local_addr()?);
            let tx = events_tx.clone();
            tokio::spawn(async move {
                loop {
                    match l.accept().await {
                        Ok((s, a)) => {
                            if tx.send(Event::Inbound(s, a)).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        }
    }
    let totals = Arc::new(Totals::default());
    let mut manual = HashMap::new();
    for a in cfg.connect.iter().chain(cfg.addnode.iter()) {
        manual.insert(a.clone(), Instant::now() - Duration::from_secs(60));
    }
    let last_tip = tokio::task::block_in_place(|| backend.best().2);
    let tx_jobs = validation::spawn_worker(backend.clone(), events_tx.clone(), TX_QUEUE);
    let block_jobs = validation::spawn_worker(backend.clone(), events_tx.clone(), BLOCK_QUEUE);
    let header_jobs = validation::spawn_worker(backend.clone(), events_tx.clone(), HEADERS_QUEUE);
    let serving = serving::Serving::start(backend.clone(), events_tx.clone());
    let mut m = Manager {
        bans: BanList::load(cfg.netdir.as_deref()),
        addrman: AddrMan::load(cfg.netdir.as_deref()),
        onetry: cfg.seednode.clone(),
        cfg,
        backend,
        nonce: rand::random(),
        events_tx,
        next_id: 1,
        peers: HashMap::new(),
        manual,
        manual_keys: HashMap::new(),
        evict_keyer: Default::default(),
        wanted: HashMap::new(),
        orphans: OrphanPool::default(),
        ck: HashMap::new(),
        ck_queue: [VecDeque::new(), VecDeque::new()],
        ck_checking: HashSet::new(),
        chunk_hashes: ChunkHashCache::default(),
        serving,
        last_tip,
        announced_txs: HashSet::new(),
        requested_txs: HashMap::new(),
        recent_rejects: RejectFilter::default(),
        tx_checking: HashSet::new(),
        blocks_checking: HashSet::new(),
        unrequested_pending_bytes: 0,
        tx_jobs,
        block_jobs,
        header_jobs,
        totals: totals.clone(),
        local: local.clone(),
        last_addr_save: Instant::now(),
        last_wanted_poll: Instant::now(),
        key: key.clone(),
    };
    m.sweep_partials();
    tokio::spawn(async move { m.run(events_rx, cmd_rx).await });
    Ok(NetHandle { cmd: cmd_tx, totals, local, node_key: key.public })
}

/// Aborts a task when dropped (ties a connection's writer to its reader task).
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn is_loopback(a: &PeerAddr) -> bool {
    a.addr.ip().is_some_and(|i| i.is_loopback())
}

impl Manager {
    fn b<T>(&self, f: impl FnOnce(&dyn Backend) -> T) -> T {
        let b = self.backend.clone();
        tokio::task::block_in_place(|| f(b.as_ref()))
    }

    async fn run(&mut self, mut events: mpsc::Receiver<Event>, mut cmds: mpsc::Receiver<Cmd>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(e) => self.on_event(e),
                    None => break,
                },
                c = cmds.recv() => match c {
                    Some(c) => self.on_cmd(c),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(),
            }
        }
        self.addrman.save();
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Inbound(s, a) => {
                let addr = PeerAddr::from(a);
                let now = unix_now();
                let inbound = self.peers.values().filter(|p| p.inbound).count();
                if self.bans.is_banned_host(&addr.addr.host(), now) {
                    tracing::debug!("refusing banned {addr}");
                } else if inbound >= self.cfg.max_connections.saturating_sub(MAX_OUTBOUND).max(1) {
                    match self.inbound_victim() {
                        Some(v) => {
                            self.disconnect(v, "evicted for a new inbound connection");
                            self.spawn_conn(s, addr, true, None);
                        }
                        None => tracing::debug!("refusing {addr}: inbound slots full"),
                    }
                } else {
                    self.spawn_conn(s, addr, true, None);
                }
            }
            Event::Connected { id, remote_key, tx } => {
                let now = unix_now();
                if self.bans.is_banned(&format!("key:{}", hex::encode(remote_key)), now) {
                    self.disconnect(id, "banned node key");
                    return;
                }
                if remote_key == self.key.public {
                    self.disconnect(id, "connected to self");
                    return;
                }
                let Some(p) = self.peers.get(&id) else { return };
                if let Some(t) = p.manual.clone() {
                    self.manual_keys.insert(t, remote_key);
                }
                if let Some(drop) = self.duplicate_link(id, remote_key) {
                    self.disconnect(drop, "duplicate connection to the same node");
                    if drop == id {
                        return;
                    }
                }
                let Some(p) = self.peers.get_mut(&id) else { return };
                p.key = Some(remote_key);
                p.tx = Some(tx);
                p.last_recv = Instant::now();
                if !p.inbound {
                    let v = self.version();
                    self.send(id, v);
                }
            }
            Event::Msg(id, m) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.last_recv = Instant::now();
                    self.on_message(id, m);
                }
            }
            Event::Bad(id, score, why) => {
                self.misbehave(id, score, &why);
                if score >= BAN_SCORE {
                    self.disconnect(id, &why);
                }
            }
            Event::Closed(id, why) => self.disconnect(id, &why),
            Event::Checked(c @ Checked::Tx { .. }) => self.on_tx_checked(c),
            Event::Checked(c @ Checked::Block { .. }) => self.on_block_checked(c),
            Event::Checked(c @ Checked::Model { .. }) => self.on_model_checked(c),
            Event::Checked(Checked::Headers { reply, ok }) => self.on_headers_checked(reply, ok),
            Event::Loaded(l) => self.on_loaded(l),
            Event::PartialOpened { key, chunks } => self.on_partial_opened(key, chunks),
        }
    }

    fn version(&self) -> Message {
        let (h, l, hash) = self.b(|b| b.best());
        Message::Version(Box::new(Version {
            version: PROTOCOL_VERSION,
            magic: self.cfg.magic,
            services: self.cfg.services(),
            model_depth: self.cfg.model_depth,
            timestamp: unix_now(),
            best_height: h,
            best_chainwork: l,
            best_hash: hash,
            nonce: self.nonce,
            listen_port: self.local.first().map_or(0, |a| a.port()),
            user_agent: self.cfg.user_agent.clone(),
        }))
    }

    fn on_message(&mut self, id: u64, m: Message) {
        let ready = self.peers.get(&id).is_some_and(|p| p.ready());
        match m {
            Message::Version(v) => {
                let Some(p) = self.peers.get_mut(&id) else { return };
                if p.version.is_some() {
                    self.misbehave(id, 10, "duplicate version");
                    return;
                }
                if v.magic != self.cfg.magic {
                    self.disconnect(id, "wrong network");
                    return;
                }
                if v.version < MIN_PROTOCOL_VERSION {
                    // It would send chunk messages without the object kind: not hostile, just
                    // unable to talk to us (no score, no ban).
                    self.disconnect(id, "obsolete protocol version");
                    return;
                }
                if v.nonce == self.nonce {
                    self.disconnect(id, "self connection");
                    return;
                }
                p.best_height = v.best_height;
                let inbound = p.inbound;
                let listen = v.listen_port;
                let ip = p.addr.addr;
                p.version = Some(v);
                if inbound {
                    let v = self.version();
                    self.send(id, v);
                    if listen != 0 {
                        self.addrman.add(PeerAddr { addr: ip, port: listen }, unix_now());
                    }
                } else {
                    let a = self.peers[&id].addr;
                    self.addrman.good(&a, unix_now());
                }
                self.send(id, Message::Verack);
            }
            Message::Verack => {
                let Some(p) = self.peers.get_mut(&id) else { return };
                if p.version.is_none() || p.verack {
                    self.misbehave(id, 10, "unexpected verack");
                    return;
                }
                p.verack = true;
                let seed = p.seed;
                tracing::info!(peer = id, addr = %p.addr, inbound = p.inbound, "peer connected");
                self.request_headers(id, None);
                self.send(id, Message::Mempool);
                self.send(id, Message::GetAddr);
                if seed {
                    tracing::debug!(peer = id, "seed node");
                }
            }
            _ if !ready => self.misbehave(id, 10, "message before handshake"),
            Message::Ping(n) => self.send(id, Message::Pong(n)),
            Message::Pong(n) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    if let Some((nonce, at)) = p.ping {
                        if nonce == n {
                            p.ping_time = Some(at.elapsed().as_secs_f64());
                            p.ping = None;
                        }
                    }
                }
            }
            Message::GetAddr => {
                let now = unix_now();
                let list = self
                    .addrman
                    .sample(1000)
                    .into_iter()
                    .map(|(a, t)| AddrEntry {
                        time: t.min(now) as u32,
                        services: NODE_NETWORK,
                        addr: a.addr,
                        port: a.port,
                    })
                    .collect();
                self.send(id, Message::Addr(list));
            }
            Message::Addr(list) => {
                let now = unix_now();
                for e in list {
                    self.addrman.add(PeerAddr { addr: e.addr, port: e.port }, now);
                }
                if self.peers.get(&id).is_some_and(|p| p.seed) {
                    self.disconnect(id, "seed node done");
                }
            }
            Message::Inv(items) => self.on_inv(id, items),
            Message::GetData(items) => self.on_getdata(id, items),
            Message::NotFound(items) => {
                let mut resched = false;
                for i in items {
                    if i.kind == InvKind::Block {
                        let h = BlockHash(i.hash);
                        if let Some(p) = self.peers.get_mut(&id) {
                            p.blocks.remove(&h);
                            p.io.block_answered(&h);
                        }
                        if let Some(w) = self.wanted.get_mut(&h) {
                            if w.requested.is_some_and(|(p, _)| p == id) {
                                w.requested = None;
                                resched = true;
                            }
                            w.peers.retain(|p| *p != id);
                        }
                    }
                }
                if resched {
                    self.schedule();
                }
            }
            Message::GetHeaders { locator, stop } => {
                let hs = self.b(|b| b.headers_after(&locator, &stop, MAX_HEADERS));
                self.send(id, Message::Headers(hs));
            }
            Message::Headers(hs) => self.on_headers(id, hs),
            Message::Block(b) => self.on_block(id, *b),
            Message::Tx(tx) => self.on_tx(id, tx),
            Message::Mempool => {
                let mut ids = self.b(|b| b.mempool_txids());
                ids.truncate(MAX_INV);
                if !ids.is_empty() {
                    self.send(id, Message::Inv(ids.into_iter().map(Inv::tx).collect()));
                }
            }
            Message::GetChunkHashes { block, kind, start } => {
                self.serve_chunk_hashes(id, (block, kind), start)
            }
            Message::GetChunk { block, kind, index } => self.serve_chunk(id, (block, kind), index),
            Message::ChunkHashes { block, kind, start, total, hashes } => {
                self.on_chunk_hashes(id, (block, kind), start, total, hashes)
            }
            Message::Chunk { block, kind, index, data } => {
                self.on_chunk(id, (block, kind), index, data)
            }
            Message::ModelNotFound { block, kind } => {
                if self.object_not_found(id, (block, kind)) {
                    self.schedule();
                }
            }
            Message::Reject(r) => tracing::debug!(peer = id, "reject: {r}"),
        }
    }

    fn ready_peers(&self) -> Vec<u64> {
        let mut v: Vec<u64> =
            self.peers.iter().filter(|(_, p)| p.ready()).map(|(i, _)| *i).collect();
        v.sort_unstable();
        v
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        // Timeouts and pings.
        let mut drop = Vec::new();
        let mut pings = Vec::new();
        for (id, p) in self.peers.iter_mut() {
            if !p.ready() && now.duration_since(p.connected) > self.cfg.handshake_timeout {
                drop.push((*id, "handshake timeout"));
                continue;
            }
            if p.tx.is_none() {
                continue;
            }
            if now.duration_since(p.last_recv) > self.cfg.inactivity_timeout {
                drop.push((*id, "inactivity timeout"));
            } else if p.ready()
                && p.ping.is_none()
                && now.duration_since(p.last_ping) > self.cfg.ping_interval
            {
                let n: u64 = rand::random();
                p.ping = Some((n, now));
                p.last_ping = now;
                pings.push((*id, n));
            }
        }
        for (id, why) in drop {
            self.disconnect(id, why);
        }
        for (id, n) in pings {
            self.send(id, Message::Ping(n));
        }
        self.connect_outbound(now);
        self.relay();
        self.requested_txs.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(60));
        self.orphans.expire(now);
        self.schedule();
        if now.duration_since(self.last_wanted_poll) > WANTED_CHECKPOINTS_POLL {
            self.last_wanted_poll = now;
            self.fetch_wanted_objects();
        }
        if now.duration_since(self.last_addr_save) > Duration::from_secs(60) {
            self.addrman.save();
            self.bans.sweep(unix_now());
            self.sweep_partials();
            self.last_addr_save = now;
        }
    }
}
