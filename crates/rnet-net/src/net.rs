//! The peer manager: one task owns all peer and sync state; each connection has a reader task
//! (handshake, decrypt, decode) and a writer task fed by a bounded queue.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rnet_model::checkpoint::{CHUNK_SIZE, merkle_root, verify_chunk};
use rnet_primitives::{Block, BlockHash, Txid};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::addr::{AddrEntry, AddrMan, PeerAddr};
use crate::backend::{Accepted, Backend};
use crate::ban::{BanList, DEFAULT_BAN_SECS};
use crate::message::{
    Inv, InvKind, MAX_HEADERS, MAX_INV, Message, MessageError, NODE_NETWORK, PROTOCOL_VERSION,
    Version,
};
use crate::transport::{self, MAX_MESSAGE_SIZE, NodeKey, TransportError};

/// Score at which a peer is banned.
pub const BAN_SCORE: u32 = 100;
/// Blocks requested from one peer at a time.
pub const MAX_BLOCKS_IN_FLIGHT: usize = 16;
/// Checkpoint chunks requested from one peer at a time.
pub const MAX_CHUNKS_IN_FLIGHT: usize = 4;
/// Checkpoints downloaded at once.
pub const MAX_CHECKPOINT_FETCHES: usize = 4;
/// Largest checkpoint accepted for download.
pub const MAX_CHECKPOINT_SIZE: u64 = 1 << 30;
/// Outgoing messages queued per peer before it is disconnected as too slow.
pub const SEND_QUEUE: usize = 1024;
/// Blocks held while their parent is fetched.
pub const MAX_ORPHAN_BLOCKS: usize = 512;
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
        }
    }
}

/// A `setban` request (Bitcoin Core's parameters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetBanRequest {
    /// An IP, a subnet (`/prefix` or `/netmask`) or `key:<hex>`.
    pub target: String,
    /// Ban (`add`) or lift the ban (`remove`).
    pub add: bool,
    /// Seconds from now (default 24 h), or with `absolute` the Unix time the ban ends.
    pub bantime: Option<u64>,
    /// Whether `bantime` is an absolute Unix time.
    pub absolute: bool,
}

/// One peer, as `getpeerinfo` shows it.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Peer id.
    pub id: u64,
    /// Remote address.
    pub addr: String,
    /// Inbound connection.
    pub inbound: bool,
    /// Added by `-connect`/`-addnode`/`addnode`.
    pub manual: bool,
    /// The peer's node key (hex).
    pub node_key: String,
    /// Protocol version (0 before `version`).
    pub version: u32,
    /// User agent.
    pub user_agent: String,
    /// Services.
    pub services: u64,
    /// Best height at handshake, then the highest announced.
    pub best_height: u32,
    /// Best tip chainwork announced at handshake.
    pub best_chainwork: u128,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_recv: u64,
    /// Connection time (Unix seconds).
    pub conn_time: u64,
    /// Last ping round trip (seconds).
    pub ping_time: Option<f64>,
    /// Misbehaviour score.
    pub ban_score: u32,
    /// Blocks requested and not yet received.
    pub blocks_in_flight: usize,
    /// Handshake complete.
    pub handshaked: bool,
}

/// `getnetworkinfo` fields the network knows.
#[derive(Clone, Debug)]
pub struct NetworkInfo {
    /// Listening addresses.
    pub local: Vec<SocketAddr>,
    /// Inbound connections.
    pub inbound: usize,
    /// Outbound connections.
    pub outbound: usize,
    /// This node's key (hex).
    pub node_key: String,
    /// User agent.
    pub user_agent: String,
    /// Proxy.
    pub proxy: Option<SocketAddr>,
    /// Address manager sizes (new, tried).
    pub addrman: (usize, usize),
}

/// `addnode` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddNodeMode {
    /// Keep connected.
    Add,
    /// Stop keeping connected.
    Remove,
    /// Connect once.
    OneTry,
}

enum Cmd {
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Info(oneshot::Sender<NetworkInfo>),
    AddNode(String, AddNodeMode, oneshot::Sender<Result<(), String>>),
    Disconnect(Option<String>, Option<u64>, oneshot::Sender<bool>),
    Ping,
    SetBan(SetBanRequest, oneshot::Sender<Result<(), String>>),
    ListBanned(oneshot::Sender<Vec<(String, crate::ban::BanEntry)>>),
    ClearBanned,
}

/// Byte totals.
#[derive(Debug, Default)]
pub struct Totals {
    /// Sent.
    pub sent: AtomicU64,
    /// Received.
    pub recv: AtomicU64,
}

/// A handle to the running network (cheap to clone; usable from blocking threads).
#[derive(Clone)]
pub struct NetHandle {
    cmd: mpsc::Sender<Cmd>,
    /// Byte totals of all connections.
    pub totals: Arc<Totals>,
    /// The bound listening addresses.
    pub local: Vec<SocketAddr>,
    /// This node's public key.
    pub node_key: [u8; 32],
}

impl NetHandle {
    fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.cmd.blocking_send(make(tx)).ok()?;
        rx.blocking_recv().ok()
    }

    /// Connected peers (blocking).
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.ask(Cmd::Peers).unwrap_or_default()
    }

    /// Network information (blocking).
    pub fn info(&self) -> Option<NetworkInfo> {
        self.ask(Cmd::Info)
    }

    /// `addnode` (blocking).
    pub fn add_node(&self, node: &str, mode: AddNodeMode) -> Result<(), String> {
        self.ask(|t| Cmd::AddNode(node.to_string(), mode, t))
            .unwrap_or_else(|| Err("network stopped".into()))
    }

    /// Disconnects by address or id; whether a peer matched (blocking).
    pub fn disconnect(&self, addr: Option<String>, id: Option<u64>) -> bool {
        self.ask(|t| Cmd::Disconnect(addr, id, t)).unwrap_or(false)
    }

    /// Pings every peer.
    pub fn ping(&self) {
        let _ = self.cmd.blocking_send(Cmd::Ping);
    }

    /// `setban` (blocking): `add` bans for `secs` (0: 24 h), otherwise removes.
    pub fn set_ban(&self, request: SetBanRequest) -> Result<(), String> {
        self.ask(|t| Cmd::SetBan(request, t)).unwrap_or_else(|| Err("network stopped".into()))
    }

    /// Current bans (blocking).
    pub fn list_banned(&self) -> Vec<(String, crate::ban::BanEntry)> {
        self.ask(Cmd::ListBanned).unwrap_or_default()
    }

    /// Clears all bans.
    pub fn clear_banned(&self) {
        let _ = self.cmd.blocking_send(Cmd::ClearBanned);
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

enum Event {
    Connected { id: u64, remote_key: [u8; 32], tx: mpsc::Sender<Message> },
    Msg(u64, Message),
    Bad(u64, u32, String),
    Closed(u64, String),
    Inbound(TcpStream, SocketAddr),
}

struct Peer {
    addr: PeerAddr,
    inbound: bool,
    manual: Option<String>,
    abort: AbortHandle,
    tx: Option<mpsc::Sender<Message>>,
    key: Option<[u8; 32]>,
    version: Option<Box<Version>>,
    verack: bool,
    conn_time: u64,
    last_recv: Instant,
    ping: Option<(u64, Instant)>,
    last_ping: Instant,
    ping_time: Option<f64>,
    score: u32,
    blocks: HashSet<BlockHash>,
    chunks: usize,
    known: HashSet<[u8; 32]>,
    sent: Arc<AtomicU64>,
    recv: Arc<AtomicU64>,
    best_height: u32,
    seed: bool,
}

impl Peer {
    fn ready(&self) -> bool {
        self.version.is_some() && self.verack && self.tx.is_some()
    }
}

struct Want {
    height: u32,
    peers: Vec<u64>,
    requested: Option<(u64, Instant)>,
}

struct CkFetch {
    root: [u8; 32],
    size: u64,
    source: u64,
    hashes: Option<Vec<[u8; 32]>>,
    hashes_req: Option<(u64, Instant)>,
    chunks: Vec<Option<Vec<u8>>>,
    req: HashMap<u32, (u64, Instant)>,
    skip: HashSet<u64>,
    /// Peers that answered `notfound` for this checkpoint, and when: not asked again (no
    /// penalty) until `LACKING_RETRY` has passed and nobody else is left to ask.
    lacking: HashMap<u64, Instant>,
}

/// How long a peer that answered `notfound` for a checkpoint is left out of its download.
const LACKING_RETRY: Duration = Duration::from_secs(60);

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
    onetry: Vec<String>,
    wanted: HashMap<BlockHash, Want>,
    orphans: HashMap<BlockHash, Vec<(Block, u64)>>,
    orphan_count: usize,
    ck: HashMap<BlockHash, CkFetch>,
    ck_queue: VecDeque<(BlockHash, u64)>,
    last_tip: BlockHash,
    announced_txs: HashSet<Txid>,
    requested_txs: HashMap<Txid, Instant>,
    totals: Arc<Totals>,
    local: Vec<SocketAddr>,
    last_addr_save: Instant,
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
        wanted: HashMap::new(),
        orphans: HashMap::new(),
        orphan_count: 0,
        ck: HashMap::new(),
        ck_queue: VecDeque::new(),
        last_tip,
        announced_txs: HashSet::new(),
        requested_txs: HashMap::new(),
        totals: totals.clone(),
        local: local.clone(),
        last_addr_save: Instant::now(),
        key: key.clone(),
    };
    tokio::spawn(async move { m.run(events_rx, cmd_rx).await });
    Ok(NetHandle { cmd: cmd_tx, totals, local, node_key: key.public })
}

fn is_loopback(a: &PeerAddr) -> bool {
    a.addr.ip().is_some_and(|i| i.is_loopback())
}

/// Runs one connection: handshake, then the reader loop (the writer is a separate task).
#[allow(clippy::too_many_arguments)]
async fn connection(
    id: u64,
    stream: TcpStream,
    key: NodeKey,
    magic: [u8; 4],
    initiator: bool,
    events: mpsc::Sender<Event>,
    sent: Arc<AtomicU64>,
    recv: Arc<AtomicU64>,
    totals: Arc<Totals>,
) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let hs = tokio::time::timeout(
        Duration::from_secs(10),
        transport::handshake(r, w, &key, magic, initiator),
    )
    .await;
    let est = match hs {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => {
            let _ = events.send(Event::Closed(id, format!("handshake failed: {e}"))).await;
            return;
        }
        Err(_) => {
            let _ = events.send(Event::Closed(id, "handshake timeout".into())).await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Message>(SEND_QUEUE);
    let mut sender = est.sender;
    let wevents = events.clone();
    let wtotals = totals.clone();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            match sender.send(m.command(), &m.payload()).await {
                Ok(n) => {
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    wtotals.sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    let _ = wevents.send(Event::Closed(id, format!("send: {e}"))).await;
                    break;
                }
            }
        }
    });
    if events.send(Event::Connected { id, remote_key: est.remote_key, tx }).await.is_err() {
        return;
    }
    let mut receiver = est.receiver;
    loop {
        match receiver.recv(MAX_MESSAGE_SIZE).await {
            Ok((c, payload, n)) => {
                recv.fetch_add(n as u64, Ordering::Relaxed);
                totals.recv.fetch_add(n as u64, Ordering::Relaxed);
                match Message::decode(c, &payload) {
                    Ok(m) => {
                        if events.send(Event::Msg(id, m)).await.is_err() {
                            return;
                        }
                    }
                    Err(MessageError::UnknownCommand(c)) => {
                        let _ =
                            events.send(Event::Bad(id, 10, format!("unknown command {c}"))).await;
                    }
                    Err(e) => {
                        let _ = events.send(Event::Bad(id, BAN_SCORE, e.to_string())).await;
                        return;
                    }
                }
            }
            Err(TransportError::Io(e)) => {
                let _ = events.send(Event::Closed(id, format!("read: {e}"))).await;
                return;
            }
            Err(e) => {
                let _ = events.send(Event::Bad(id, BAN_SCORE, e.to_string())).await;
                return;
            }
        }
    }
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

    fn spawn_conn(
        &mut self,
        stream: TcpStream,
        addr: PeerAddr,
        inbound: bool,
        manual: Option<String>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let sent = Arc::new(AtomicU64::new(0));
        let recv = Arc::new(AtomicU64::new(0));
        let h = tokio::spawn(connection(
            id,
            stream,
            self.key.clone(),
            self.cfg.magic,
            !inbound,
            self.events_tx.clone(),
            sent.clone(),
            recv.clone(),
            self.totals.clone(),
        ));
        let seed = manual.as_ref().is_some_and(|m| self.cfg.seednode.contains(m));
        self.peers.insert(
            id,
            Peer {
                addr,
                inbound,
                manual,
                abort: h.abort_handle(),
                tx: None,
                key: None,
                version: None,
                verack: false,
                conn_time: unix_now(),
                last_recv: Instant::now(),
                ping: None,
                last_ping: Instant::now(),
                ping_time: None,
                score: 0,
                blocks: HashSet::new(),
                chunks: 0,
                known: HashSet::new(),
                sent,
                recv,
                best_height: 0,
                seed,
            },
        );
    }

    fn connect_to(&mut self, target: String, manual: bool) {
        let Some(addr) = PeerAddr::parse(&target, self.cfg.default_port) else {
            tracing::warn!("cannot parse address {target}");
            return;
        };
        if self.cfg.onion_only && !addr.addr.is_onion() {
            tracing::debug!("-onlynet=onion: skipping {addr}");
            return;
        }
        let proxy = self.cfg.proxy;
        let tx = self.events_tx.clone();
        let tag = if manual { Some(target.clone()) } else { None };
        // Connect in the background, then hand the stream back as a pseudo-inbound event tagged
        // outbound through a one-shot channel.
        let (done_tx, done_rx) = oneshot::channel::<std::io::Result<TcpStream>>();
        tokio::spawn(async move {
            let fut = async {
                match (proxy, addr.socket_addr()) {
                    (Some(p), _) => crate::socks5::connect(p, &addr).await,
                    (None, Some(sa)) => TcpStream::connect(sa).await,
                    (None, None) => Err(std::io::Error::other("onion address needs -proxy")),
                }
            };
            let r = tokio::time::timeout(Duration::from_secs(10), fut)
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("connect timeout")));
            let _ = done_tx.send(r);
        });
        // Register a placeholder peer so limits and "already connecting" checks see it.
        let id = self.next_id;
        self.next_id += 1;
        let key = self.key.clone();
        let magic = self.cfg.magic;
        let totals = self.totals.clone();
        let sent = Arc::new(AtomicU64::new(0));
        let recv = Arc::new(AtomicU64::new(0));
        let (s2, r2) = (sent.clone(), recv.clone());
        let h = tokio::spawn(async move {
            match done_rx.await {
                Ok(Ok(stream)) => {
                    connection(id, stream, key, magic, true, tx, s2, r2, totals).await
                }
                Ok(Err(e)) => {
                    let _ = tx.send(Event::Closed(id, format!("connect: {e}"))).await;
                }
                Err(_) => {
                    let _ = tx.send(Event::Closed(id, "connect aborted".into())).await;
                }
            }
        });
        let seed = self.cfg.seednode.contains(&target);
        self.addrman.attempt(&addr, unix_now());
        self.peers.insert(
            id,
            Peer {
                addr,
                inbound: false,
                manual: tag,
                abort: h.abort_handle(),
                tx: None,
                key: None,
                version: None,
                verack: false,
                conn_time: unix_now(),
                last_recv: Instant::now(),
                ping: None,
                last_ping: Instant::now(),
                ping_time: None,
                score: 0,
                blocks: HashSet::new(),
                chunks: 0,
                known: HashSet::new(),
                sent,
                recv,
                best_height: 0,
                seed,
            },
        );
    }

    fn send(&mut self, id: u64, m: Message) {
        let full = match self.peers.get(&id).and_then(|p| p.tx.as_ref()) {
            Some(tx) => tx.try_send(m).is_err(),
            None => false,
        };
        if full {
            self.disconnect(id, "send queue full");
        }
    }

    fn disconnect(&mut self, id: u64, why: &str) {
        if let Some(p) = self.peers.remove(&id) {
            tracing::debug!(peer = id, addr = %p.addr, "disconnect: {why}");
            p.abort.abort();
            for h in p.blocks {
                if let Some(w) = self.wanted.get_mut(&h) {
                    w.requested = None;
                }
            }
            for f in self.ck.values_mut() {
                if f.hashes_req.is_some_and(|(p, _)| p == id) {
                    f.hashes_req = None;
                }
                f.req.retain(|_, (p, _)| *p != id);
            }
        }
    }

    fn misbehave(&mut self, id: u64, score: u32, why: &str) {
        let Some(p) = self.peers.get_mut(&id) else { return };
        p.score = p.score.saturating_add(score);
        tracing::info!(peer = id, addr = %p.addr, score = p.score, "misbehaving: {why}");
        if p.score >= BAN_SCORE {
            let now = unix_now();
            let until = now + DEFAULT_BAN_SECS;
            if let Some(k) = p.key {
                self.bans.ban(format!("key:{}", hex::encode(k)), now, until, why);
            }
            if !is_loopback(&p.addr) {
                self.bans.ban(crate::ban::host_key(&p.addr.addr.host()), now, until, why);
            }
            let addr = p.addr;
            tracing::warn!(peer = id, %addr, "banned: {why}");
            self.disconnect(id, why);
        }
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
                    tracing::debug!("refusing {addr}: inbound limit");
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
        }
    }

    fn version(&self) -> Message {
        let (h, l, hash) = self.b(|b| b.best());
        Message::Version(Box::new(Version {
            version: PROTOCOL_VERSION,
            magic: self.cfg.magic,
            services: NODE_NETWORK,
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
                let loc = self.b(|b| b.locator());
                self.send(id, Message::GetHeaders { locator: loc, stop: BlockHash::ZERO });
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
                        }
                        if let Some(w) = self.wanted.get_mut(&h) {
                            if w.requested.is_some_and(|(p, _)| p == id) {
                                w.requested = None;
                                resched = true;
                            }
                            w.peers.retain(|p| *p != id);
                        }
                        resched |= self.checkpoint_not_found(id, h);
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
            Message::Tx(tx) => {
                let txid = tx.txid();
                self.requested_txs.remove(&txid);
                if let Some(p) = self.peers.get_mut(&id) {
                    p.known.insert(txid.0);
                }
                match self.b(|b| b.accept_tx(*tx)) {
                    Ok(true) => tracing::debug!(peer = id, %txid, "accepted transaction"),
                    Ok(false) => {}
                    Err(r) => {
                        tracing::debug!(peer = id, %txid, "transaction rejected: {}", r.reason)
                    }
                }
            }
            Message::Mempool => {
                let mut ids = self.b(|b| b.mempool_txids());
                ids.truncate(MAX_INV);
                if !ids.is_empty() {
                    self.send(id, Message::Inv(ids.into_iter().map(Inv::tx).collect()));
                }
            }
            Message::GetChunkHashes(h) => match self.b(|b| b.checkpoint(&h)) {
                Some(bytes) => {
                    let hashes = rnet_model::checkpoint::chunk_hashes(&bytes);
                    self.send(id, Message::ChunkHashes { block: h, hashes });
                }
                None => self.send(id, Message::NotFound(vec![Inv::block(h)])),
            },
            Message::GetChunk { block, index } => match self.b(|b| b.checkpoint(&block)) {
                Some(bytes) => {
                    let start = (index as usize).saturating_mul(CHUNK_SIZE);
                    if start >= bytes.len() {
                        self.misbehave(id, 10, "chunk index out of range");
                        return;
                    }
                    let end = (start + CHUNK_SIZE).min(bytes.len());
                    let data = bytes[start..end].to_vec();
                    self.send(id, Message::Chunk { block, index, data });
                }
                None => self.send(id, Message::NotFound(vec![Inv::block(block)])),
            },
            Message::ChunkHashes { block, hashes } => self.on_chunk_hashes(id, block, hashes),
            Message::Chunk { block, index, data } => self.on_chunk(id, block, index, data),
            Message::Reject(r) => tracing::debug!(peer = id, "reject: {r}"),
        }
    }

    fn on_inv(&mut self, id: u64, items: Vec<Inv>) {
        let mut want_headers = false;
        let mut get = Vec::new();
        for i in items {
            if let Some(p) = self.peers.get_mut(&id) {
                if p.known.len() > 50_000 {
                    p.known.clear();
                }
                p.known.insert(i.hash);
            }
            match i.kind {
                InvKind::Block => {
                    let h = BlockHash(i.hash);
                    if !self.wanted.contains_key(&h) && !self.b(|b| b.has_block(&h)) {
                        want_headers = true;
                    }
                }
                InvKind::Tx => {
                    let t = Txid(i.hash);
                    if self.requested_txs.len() < 50_000
                        && !self.requested_txs.contains_key(&t)
                        && self.b(|b| b.tx(&t)).is_none()
                    {
                        self.requested_txs.insert(t, Instant::now());
                        get.push(i);
                    }
                }
            }
        }
        if want_headers {
            let loc = self.b(|b| b.locator());
            self.send(id, Message::GetHeaders { locator: loc, stop: BlockHash::ZERO });
        }
        if !get.is_empty() {
            self.send(id, Message::GetData(get));
        }
    }

    fn on_getdata(&mut self, id: u64, items: Vec<Inv>) {
        let mut missing = Vec::new();
        for i in items {
            match i.kind {
                InvKind::Block => match self.b(|b| b.block(&BlockHash(i.hash))) {
                    Some(blk) => self.send(id, Message::Block(Box::new(blk))),
                    None => missing.push(i),
                },
                InvKind::Tx => match self.b(|b| b.tx(&Txid(i.hash))) {
                    Some(tx) => self.send(id, Message::Tx(Box::new(tx))),
                    None => missing.push(i),
                },
            }
        }
        if !missing.is_empty() {
            self.send(id, Message::NotFound(missing));
        }
    }

    fn on_headers(&mut self, id: u64, hs: Vec<rnet_primitives::BlockHeader>) {
        let full = hs.len() == MAX_HEADERS;
        let mut prev: Option<BlockHash> = None;
        let mut last = None;
        for h in hs {
            let hash = h.hash();
            if let Some(p) = prev {
                if h.prev_block_hash != p {
                    self.misbehave(id, 20, "non-continuous headers");
                    return;
                }
            }
            prev = Some(hash);
            last = Some(hash);
            if let Some(p) = self.peers.get_mut(&id) {
                p.best_height = p.best_height.max(h.height);
                p.known.insert(hash.0);
            }
            if let Some(w) = self.wanted.get_mut(&hash) {
                if !w.peers.contains(&id) {
                    w.peers.push(id);
                }
                continue;
            }
            if self.b(|b| b.has_block(&hash)) {
                continue;
            }
            if self.wanted.len() < 20_000 {
                self.wanted
                    .insert(hash, Want { height: h.height, peers: vec![id], requested: None });
            }
        }
        if full {
            if let Some(l) = last {
                self.send(id, Message::GetHeaders { locator: vec![l], stop: BlockHash::ZERO });
            }
        }
        self.schedule();
    }

    fn on_block(&mut self, id: u64, block: Block) {
        let hash = block.block_hash();
        if let Some(p) = self.peers.get_mut(&id) {
            p.blocks.remove(&hash);
            p.known.insert(hash.0);
        }
        self.wanted.remove(&hash);
        let mut work = vec![(block, id)];
        while let Some((block, from)) = work.pop() {
            let hash = block.block_hash();
            let r = self.b(|b| b.accept_block(block.clone()));
            match r {
                Ok(Accepted::Orphan(parent)) => {
                    if self.orphan_count < MAX_ORPHAN_BLOCKS {
                        self.orphans.entry(parent).or_default().push((block, from));
                        self.orphan_count += 1;
                    }
                    if !self.wanted.contains_key(&parent) {
                        let loc = self.b(|b| b.locator());
                        self.send(
                            from,
                            Message::GetHeaders { locator: loc, stop: BlockHash::ZERO },
                        );
                    }
                }
                Ok(a) => {
                    tracing::debug!(peer = from, %hash, height = block.header.height, "block {a:?}");
                    if a == Accepted::NeedCheckpoint && !self.b(|b| b.has_checkpoint(&hash)) {
                        self.queue_checkpoint(hash, from);
                    }
                    if let Some(children) = self.orphans.remove(&hash) {
                        self.orphan_count -= children.len();
                        work.extend(children);
                    }
                }
                Err(r) if r.invalid => {
                    self.misbehave(from, BAN_SCORE, &format!("invalid block {hash}: {}", r.reason));
                }
                Err(r) => tracing::warn!(%hash, "block not accepted: {}", r.reason),
            }
        }
        self.schedule();
    }

    fn queue_checkpoint(&mut self, hash: BlockHash, from: u64) {
        if self.ck.contains_key(&hash) || self.ck_queue.iter().any(|(h, _)| *h == hash) {
            return;
        }
        if self.ck_queue.len() < 10_000 {
            self.ck_queue.push_back((hash, from));
        }
        self.schedule();
    }

    fn on_chunk_hashes(&mut self, id: u64, block: BlockHash, hashes: Vec<[u8; 32]>) {
        let Some(f) = self.ck.get_mut(&block) else { return };
        if f.hashes.is_some() || f.hashes_req.is_none_or(|(p, _)| p != id) {
            return;
        }
        f.hashes_req = None;
        let n = f.size.div_ceil(CHUNK_SIZE as u64) as usize;
        if hashes.len() != n || merkle_root(&hashes) != f.root {
            f.skip.insert(id);
            self.misbehave(id, BAN_SCORE, "checkpoint chunk hashes do not match the root");
            return;
        }
        f.chunks = vec![None; n];
        f.hashes = Some(hashes);
        self.schedule();
    }

    /// `notfound` for a checkpoint being fetched: the peer is honest but lacks it. It is not asked
    /// again for it, and its outstanding requests (chunk hashes, chunks) are unassigned so the
    /// next `schedule` gives them to other peers at once instead of waiting for the stall timeout.
    /// Returns whether anything changed.
    fn checkpoint_not_found(&mut self, id: u64, block: BlockHash) -> bool {
        let Some(f) = self.ck.get_mut(&block) else { return false };
        let new = f.lacking.insert(id, Instant::now()).is_none();
        let hashes = f.hashes_req.is_some_and(|(p, _)| p == id);
        if hashes {
            f.hashes_req = None;
        }
        let before = f.req.len();
        f.req.retain(|_, (p, _)| *p != id);
        let freed = before - f.req.len();
        if let Some(p) = self.peers.get_mut(&id) {
            p.chunks = p.chunks.saturating_sub(freed);
        }
        tracing::debug!(peer = id, %block, freed, "peer lacks the checkpoint; asking elsewhere");
        new || hashes || freed > 0
    }

    fn on_chunk(&mut self, id: u64, block: BlockHash, index: u32, data: Vec<u8>) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.chunks = p.chunks.saturating_sub(1);
        }
        let Some(f) = self.ck.get_mut(&block) else { return };
        if f.req.get(&index).is_none_or(|(p, _)| *p != id) {
            return;
        }
        f.req.remove(&index);
        let Some(hashes) = &f.hashes else { return };
        let start = u64::from(index) * CHUNK_SIZE as u64;
        let want_len = (f.size - start).min(CHUNK_SIZE as u64) as usize;
        if data.len() != want_len || !verify_chunk(hashes, index as usize, &data) {
            f.skip.insert(id);
            self.misbehave(id, BAN_SCORE, "checkpoint chunk does not match the root");
            self.schedule();
            return;
        }
        f.chunks[index as usize] = Some(data);
        if f.chunks.iter().all(Option::is_some) {
            let Some(f) = self.ck.remove(&block) else { return };
            let mut bytes = Vec::with_capacity(f.size as usize);
            for c in f.chunks.into_iter().flatten() {
                bytes.extend_from_slice(&c);
            }
            let source = f.source;
            match self.b(|b| b.accept_checkpoint(&block, bytes)) {
                Ok(a) => tracing::debug!(%block, "checkpoint received: {a:?}"),
                Err(r) if r.invalid => self.misbehave(
                    source,
                    BAN_SCORE,
                    &format!("invalid block {block}: {}", r.reason),
                ),
                Err(r) => tracing::warn!(%block, "checkpoint not accepted: {}", r.reason),
            }
        }
        self.schedule();
    }

    fn ready_peers(&self) -> Vec<u64> {
        let mut v: Vec<u64> =
            self.peers.iter().filter(|(_, p)| p.ready()).map(|(i, _)| *i).collect();
        v.sort_unstable();
        v
    }

    /// Requests wanted blocks and checkpoint chunks from peers with room.
    fn schedule(&mut self) {
        let now = Instant::now();
        let stall = self.cfg.stall_timeout;
        // Stalls.
        let mut stalled = Vec::new();
        for (h, w) in self.wanted.iter_mut() {
            if let Some((p, at)) = w.requested {
                if now.duration_since(at) > stall {
                    stalled.push((p, *h));
                    w.requested = None;
                    if w.peers.len() > 1 {
                        w.peers.retain(|x| *x != p);
                    }
                }
            }
        }
        for (p, h) in stalled {
            tracing::info!(peer = p, %h, "block download stalled; re-requesting elsewhere");
            if let Some(peer) = self.peers.get_mut(&p) {
                peer.blocks.remove(&h);
            }
        }
        // Blocks, lowest height first.
        let mut todo: Vec<(u32, BlockHash)> = self
            .wanted
            .iter()
            .filter(|(_, w)| w.requested.is_none())
            .map(|(h, w)| (w.height, *h))
            .collect();
        todo.sort_unstable();
        let mut batches: HashMap<u64, Vec<Inv>> = HashMap::new();
        for (_, h) in todo {
            let Some(w) = self.wanted.get(&h) else { continue };
            let best = w
                .peers
                .iter()
                .filter_map(|p| {
                    self.peers.get(p).filter(|x| x.ready()).map(|x| (x.blocks.len(), *p))
                })
                .filter(|(n, _)| *n < MAX_BLOCKS_IN_FLIGHT)
                .min();
            if let Some((_, p)) = best {
                if let Some(peer) = self.peers.get_mut(&p) {
                    peer.blocks.insert(h);
                }
                if let Some(w) = self.wanted.get_mut(&h) {
                    w.requested = Some((p, now));
                }
                batches.entry(p).or_default().push(Inv::block(h));
            }
        }
        // Drop wants no connected peer can serve.
        let peers = &self.peers;
        self.wanted.retain(|_, w| {
            w.peers.retain(|p| peers.contains_key(p));
            !w.peers.is_empty()
        });
        for (p, items) in batches {
            self.send(p, Message::GetData(items));
        }
        self.schedule_checkpoints(now);
    }

    fn schedule_checkpoints(&mut self, now: Instant) {
        while self.ck.len() < MAX_CHECKPOINT_FETCHES {
            let Some((hash, source)) = self.ck_queue.pop_front() else { break };
            if self.b(|b| b.has_checkpoint(&hash)) {
                continue;
            }
            let Some(header) = self.b(|b| b.header(&hash)) else { continue };
            if header.checkpoint_size == 0 || header.checkpoint_size > MAX_CHECKPOINT_SIZE {
                continue;
            }
            self.ck.insert(
                hash,
                CkFetch {
                    root: header.checkpoint_root.0,
                    size: header.checkpoint_size,
                    source,
                    hashes: None,
                    hashes_req: None,
                    chunks: Vec::new(),
                    req: HashMap::new(),
                    skip: HashSet::new(),
                    lacking: HashMap::new(),
                },
            );
        }
        let ready = self.ready_peers();
        let stall = self.cfg.stall_timeout;
        let mut sends = Vec::new();
        let mut drop_fetch = Vec::new();
        for (hash, f) in self.ck.iter_mut() {
            let candidates: Vec<u64> = ready
                .iter()
                .copied()
                .filter(|p| !f.skip.contains(p) && !f.lacking.contains_key(p))
                .collect();
            if candidates.is_empty() {
                // Nobody left to ask; retry later from scratch (peers that said `notfound` only
                // once `LACKING_RETRY` has passed: they may have fetched it meanwhile).
                f.skip.clear();
                f.lacking.retain(|_, at| now.duration_since(*at) < LACKING_RETRY);
                continue;
            }
            if f.hashes.is_none() {
                if let Some((p, at)) = f.hashes_req {
                    if now.duration_since(at) <= stall {
                        continue;
                    }
                    f.skip.insert(p);
                    f.hashes_req = None;
                    continue;
                }
                let p = if candidates.contains(&f.source) { f.source } else { candidates[0] };
                f.hashes_req = Some((p, now));
                sends.push((p, Message::GetChunkHashes(*hash)));
                continue;
            }
            f.req.retain(|_, (p, at)| {
                let keep = now.duration_since(*at) <= stall;
                if !keep {
                    f.skip.insert(*p);
                }
                keep
            });
            let n = f.chunks.len();
            let mut rr = 0usize;
            for i in 0..n {
                if f.chunks[i].is_some() || f.req.contains_key(&(i as u32)) {
                    continue;
                }
                // The block's source first, then round robin over peers with room.
                let mut chosen = None;
                let order: Vec<u64> = if candidates.contains(&f.source) && rr == 0 {
                    std::iter::once(f.source).chain(candidates.iter().copied()).collect()
                } else {
                    candidates.iter().copied().cycle().skip(rr).take(candidates.len()).collect()
                };
                for p in order {
                    let load = self.peers.get(&p).map_or(usize::MAX, |x| x.chunks);
                    let pending = sends
                        .iter()
                        .filter(|(q, m)| *q == p && matches!(m, Message::GetChunk { .. }))
                        .count();
                    if load + pending < MAX_CHUNKS_IN_FLIGHT {
                        chosen = Some(p);
                        break;
                    }
                }
                rr += 1;
                let Some(p) = chosen else { break };
                f.req.insert(i as u32, (p, now));
                sends.push((p, Message::GetChunk { block: *hash, index: i as u32 }));
            }
            if f.hashes.as_ref().is_some_and(|h| h.len() != n) {
                drop_fetch.push(*hash);
            }
        }
        for h in drop_fetch {
            self.ck.remove(&h);
        }
        for (p, m) in sends {
            if matches!(m, Message::GetChunk { .. }) {
                if let Some(x) = self.peers.get_mut(&p) {
                    x.chunks += 1;
                }
            }
            self.send(p, m);
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        // Timeouts and pings.
        let mut drop = Vec::new();
        let mut pings = Vec::new();
        for (id, p) in self.peers.iter_mut() {
            if p.tx.is_none() {
                if now.duration_since(p.last_recv) > Duration::from_secs(30) {
                    drop.push((*id, "connect/handshake timeout"));
                }
                continue;
            }
            if !p.ready() && now.duration_since(p.last_recv) > Duration::from_secs(20) {
                drop.push((*id, "version timeout"));
            } else if now.duration_since(p.last_recv) > self.cfg.inactivity_timeout {
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
        self.requested_txs.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
        self.schedule();
        if now.duration_since(self.last_addr_save) > Duration::from_secs(60) {
            self.addrman.save();
            self.bans.sweep(unix_now());
            self.last_addr_save = now;
        }
    }

    fn connected_to(&self, target: &str) -> bool {
        self.peers.values().any(|p| p.manual.as_deref() == Some(target))
    }

    fn connect_outbound(&mut self, now: Instant) {
        let due: Vec<String> = self
            .manual
            .iter()
            .filter(|(t, last)| {
                now.duration_since(**last) > Duration::from_secs(2) && !self.connected_to(t)
            })
            .map(|(t, _)| t.clone())
            .collect();
        for t in due {
            self.manual.insert(t.clone(), now);
            self.connect_to(t, true);
        }
        for t in std::mem::take(&mut self.onetry) {
            self.connect_to(t, true);
        }
        if self.cfg.auto_connect && self.cfg.connect.is_empty() {
            let outbound = self.peers.values().filter(|p| !p.inbound && p.manual.is_none()).count();
            if outbound < MAX_OUTBOUND && self.peers.len() < self.cfg.max_connections {
                let connected: HashSet<PeerAddr> = self.peers.values().map(|p| p.addr).collect();
                let local = self.local.clone();
                let onion_only = self.cfg.onion_only;
                if let Some(a) = self.addrman.select(unix_now(), &|a| {
                    connected.contains(a)
                        || (onion_only && !a.addr.is_onion())
                        || local.iter().any(|l| {
                            l.port() == a.port
                                && (a
                                    .addr
                                    .ip()
                                    .is_some_and(|i| i.is_loopback() || Some(i) == Some(l.ip())))
                        })
                }) {
                    self.connect_to(a.to_string(), false);
                }
            }
        }
    }

    fn relay(&mut self) {
        let (_, _, tip) = self.b(|b| b.best());
        let mut sends = Vec::new();
        if tip != self.last_tip {
            self.last_tip = tip;
            for (id, p) in self.peers.iter_mut() {
                if p.ready() && p.known.insert(tip.0) {
                    sends.push((*id, Message::Inv(vec![Inv::block(tip)])));
                }
            }
        }
        let txids = self.b(|b| b.mempool_txids());
        if self.announced_txs.len() > 100_000 {
            self.announced_txs.clear();
        }
        let fresh: Vec<Txid> =
            txids.into_iter().filter(|t| self.announced_txs.insert(*t)).collect();
        if !fresh.is_empty() {
            for (id, p) in self.peers.iter_mut() {
                if !p.ready() {
                    continue;
                }
                let items: Vec<Inv> =
                    fresh.iter().filter(|t| p.known.insert(t.0)).map(|t| Inv::tx(*t)).collect();
                if !items.is_empty() {
                    sends.push((*id, Message::Inv(items)));
                }
            }
        }
        for (id, m) in sends {
            self.send(id, m);
        }
    }

    fn on_cmd(&mut self, c: Cmd) {
        match c {
            Cmd::Peers(tx) => {
                let mut v: Vec<PeerInfo> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.tx.is_some())
                    .map(|(id, p)| PeerInfo {
                        id: *id,
                        addr: p.addr.to_string(),
                        inbound: p.inbound,
                        manual: p.manual.is_some(),
                        node_key: p.key.map(hex::encode).unwrap_or_default(),
                        version: p.version.as_ref().map_or(0, |v| v.version),
                        user_agent: p
                            .version
                            .as_ref()
                            .map(|v| v.user_agent.clone())
                            .unwrap_or_default(),
                        services: p.version.as_ref().map_or(0, |v| v.services),
                        best_height: p.best_height,
                        best_chainwork: p.version.as_ref().map_or(0, |v| v.best_chainwork),
                        bytes_sent: p.sent.load(Ordering::Relaxed),
                        bytes_recv: p.recv.load(Ordering::Relaxed),
                        conn_time: p.conn_time,
                        ping_time: p.ping_time,
                        ban_score: p.score,
                        blocks_in_flight: p.blocks.len(),
                        handshaked: p.ready(),
                    })
                    .collect();
                v.sort_by_key(|p| p.id);
                let _ = tx.send(v);
            }
            Cmd::Info(tx) => {
                let _ = tx.send(NetworkInfo {
                    local: self.local.clone(),
                    inbound: self.peers.values().filter(|p| p.inbound && p.tx.is_some()).count(),
                    outbound: self.peers.values().filter(|p| !p.inbound && p.tx.is_some()).count(),
                    node_key: hex::encode(self.key.public),
                    user_agent: self.cfg.user_agent.clone(),
                    proxy: self.cfg.proxy,
                    addrman: self.addrman.len(),
                });
            }
            Cmd::AddNode(node, mode, tx) => {
                if PeerAddr::parse(&node, self.cfg.default_port).is_none() {
                    let _ = tx.send(Err(format!("cannot parse address {node}")));
                    return;
                }
                let r = match mode {
                    AddNodeMode::Add => match self.manual.entry(node) {
                        std::collections::hash_map::Entry::Occupied(_) => {
                            Err("Node already added".to_string())
                        }
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(Instant::now() - Duration::from_secs(60));
                            Ok(())
                        }
                    },
                    AddNodeMode::Remove => {
                        if self.manual.remove(&node).is_some() {
                            Ok(())
                        } else {
                            Err("Node has not been added.".to_string())
                        }
                    }
                    AddNodeMode::OneTry => {
                        self.connect_to(node, true);
                        Ok(())
                    }
                };
                let _ = tx.send(r);
            }
            Cmd::Disconnect(addr, id, tx) => {
                let ids: Vec<u64> = self
                    .peers
                    .iter()
                    .filter(|(i, p)| {
                        id == Some(**i)
                            || addr.as_ref().is_some_and(|a| {
                                *a == p.addr.to_string() || p.manual.as_deref() == Some(a.as_str())
                            })
                    })
                    .map(|(i, _)| *i)
                    .collect();
                for i in &ids {
                    self.disconnect(*i, "disconnectnode");
                }
                let _ = tx.send(!ids.is_empty());
            }
            Cmd::Ping => {
                let now = Instant::now();
                let mut v = Vec::new();
                for (id, p) in self.peers.iter_mut() {
                    if p.ready() {
                        let n: u64 = rand::random();
                        p.ping = Some((n, now));
                        p.last_ping = now;
                        v.push((*id, n));
                    }
                }
                for (id, n) in v {
                    self.send(id, Message::Ping(n));
                }
            }
            Cmd::SetBan(r, tx) => {
                let now = unix_now();
                match self.bans.set_ban(&r.target, r.add, r.bantime, r.absolute, now) {
                    Ok(key) if r.add => {
                        let net = crate::ban::Subnet::parse(&key).ok();
                        let victims: Vec<u64> = self
                            .peers
                            .iter()
                            .filter(|(_, p)| {
                                let by_ip = p
                                    .addr
                                    .addr
                                    .ip()
                                    .is_some_and(|ip| net.is_some_and(|n| n.contains(ip)));
                                by_ip
                                    || p.key
                                        .is_some_and(|k| format!("key:{}", hex::encode(k)) == key)
                            })
                            .map(|(i, _)| *i)
                            .collect();
                        for v in victims {
                            self.disconnect(v, "banned");
                        }
                        let _ = tx.send(Ok(()));
                    }
                    Ok(_) => {
                        let _ = tx.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            }
            Cmd::ListBanned(tx) => {
                let _ = tx.send(self.bans.list(unix_now()));
            }
            Cmd::ClearBanned => self.bans.clear(),
        }
    }
}
