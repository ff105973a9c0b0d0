//! The public handle to the running network and the commands it sends to the manager.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{Manager, unix_now};
use crate::addr::PeerAddr;
use crate::message::Message;

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
    /// Service bits of its `version` (`NODE_NETWORK`, `NODE_MODEL_ARCHIVE`).
    pub services: u64,
    /// How many of its most recent blocks' models it serves (0: archive, or before `version`).
    pub model_depth: u32,
    /// Best height at handshake, then the highest announced.
    pub best_height: u32,
    /// Best tip chainwork announced at handshake.
    pub best_chainwork: u128,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_recv: u64,
    /// Payload bytes queued for the peer and not yet written to its socket.
    pub send_queue_bytes: u64,
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
    /// Orphan blocks buffered and the memory they hold (bytes).
    pub orphans: (usize, usize),
    /// Service bits this node advertises.
    pub services: u64,
    /// How many of its most recent blocks' models this node serves (0: archive, every one).
    pub model_depth: u32,
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

pub(super) enum Cmd {
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
    pub(super) cmd: mpsc::Sender<Cmd>,
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

impl Manager {
    pub(super) fn on_cmd(&mut self, c: Cmd) {
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
                        model_depth: p.version.as_ref().map_or(0, |v| v.model_depth),
                        best_height: p.best_height,
                        best_chainwork: p.version.as_ref().map_or(0, |v| v.best_chainwork),
                        bytes_sent: p.io.sent.load(Ordering::Relaxed),
                        bytes_recv: p.io.recv.load(Ordering::Relaxed),
                        send_queue_bytes: p.io.queued.load(Ordering::Relaxed) as u64,
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
                    orphans: self.orphans.usage(),
                    services: self.cfg.services(),
                    model_depth: self.cfg.model_depth,
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
