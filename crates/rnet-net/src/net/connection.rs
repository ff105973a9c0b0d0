//! Sockets: the per-connection reader and writer tasks, inbound registration and dialing.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rnet_primitives::BlockHeader;
use rnet_primitives::encode::{Decode, Reader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::peer::{Outbound, Peer, PeerIo};
use super::{
    AbortOnDrop, BAN_SCORE, Event, MAX_OUTBOUND, MAX_UNREQUESTED_BLOCK_SIZE, Manager, SEND_QUEUE,
    Totals, UNREQUESTED_BLOCK_SCORE, unix_now,
};
use crate::addr::PeerAddr;
use crate::message::{Message, MessageError, cmd};
use crate::transport::{self, MAX_MESSAGE_SIZE, NodeKey, TransportError};

/// Runs one connection: handshake, then the reader loop (the writer is a separate task).
#[allow(clippy::too_many_arguments)]
pub(super) async fn connection(
    id: u64,
    stream: TcpStream,
    key: NodeKey,
    magic: [u8; 4],
    initiator: bool,
    events: mpsc::Sender<Event>,
    io: Arc<PeerIo>,
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
    let (tx, mut rx) = mpsc::channel::<Outbound>(SEND_QUEUE);
    let mut sender = est.sender;
    let wevents = events.clone();
    let wtotals = totals.clone();
    let wio = io.clone();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let r = sender.send(m.command(), &m.payload()).await;
            wio.dequeued(&m);
            match r {
                Ok(n) => {
                    wio.sent.fetch_add(n as u64, Ordering::Relaxed);
                    wtotals.sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    let _ = wevents.send(Event::Closed(id, format!("send: {e}"))).await;
                    break;
                }
            }
        }
    });
    // The writer (and the queue it holds) goes when the connection task ends or is aborted, so a
    // peer that never reads cannot keep it alive after a disconnect.
    let _writer = AbortOnDrop(writer.abort_handle());
    if events.send(Event::Connected { id, remote_key: est.remote_key, tx }).await.is_err() {
        return;
    }
    let mut receiver = est.receiver;
    loop {
        match receiver.recv(MAX_MESSAGE_SIZE).await {
            Ok((c, payload, n)) => {
                io.recv.fetch_add(n as u64, Ordering::Relaxed);
                totals.recv.fetch_add(n as u64, Ordering::Relaxed);
                if let Some(why) = refuse_undecoded(&io, c, &payload) {
                    let _ = events.send(Event::Bad(id, UNREQUESTED_BLOCK_SCORE, why)).await;
                    continue;
                }
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

/// Why a message is dropped before it is decoded, if it is: a `block` over
/// [`MAX_UNREQUESTED_BLOCK_SIZE`] whose id (from its header, the payload's first bytes) we did
/// not ask this peer for. A payload whose header does not parse is left to the decoder (a ban).
fn refuse_undecoded(io: &PeerIo, command: u8, payload: &[u8]) -> Option<String> {
    if command != cmd::BLOCK || payload.len() <= MAX_UNREQUESTED_BLOCK_SIZE {
        return None;
    }
    let header = BlockHeader::decode(&mut Reader::new(payload)).ok()?;
    let hash = header.hash();
    (!io.asked_for(&hash))
        .then(|| format!("unrequested block {hash} of {} bytes (not decoded)", payload.len()))
}

impl Manager {
    pub(super) fn spawn_conn(
        &mut self,
        stream: TcpStream,
        addr: PeerAddr,
        inbound: bool,
        manual: Option<String>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let io = Arc::new(PeerIo::default());
        let h = tokio::spawn(connection(
            id,
            stream,
            self.key.clone(),
            self.cfg.magic,
            !inbound,
            self.events_tx.clone(),
            io.clone(),
            self.totals.clone(),
        ));
        let seed = manual.as_ref().is_some_and(|m| self.cfg.seednode.contains(m));
        self.peers.insert(id, Peer::new(addr, inbound, manual, h.abort_handle(), io, seed));
    }

    pub(super) fn connect_to(&mut self, target: String, manual: bool) {
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
        let io = Arc::new(PeerIo::default());
        let io2 = io.clone();
        let h = tokio::spawn(async move {
            match done_rx.await {
                Ok(Ok(stream)) => connection(id, stream, key, magic, true, tx, io2, totals).await,
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
        self.peers.insert(id, Peer::new(addr, false, tag, h.abort_handle(), io, seed));
    }

    /// Whether an `addnode` target is connected: a connection made for it, or any link to the
    /// node key last reached there (it may have dialed us; see [`Manager::duplicate_link`]).
    pub(super) fn connected_to(&self, target: &str) -> bool {
        let key = self.manual_keys.get(target);
        self.peers.values().any(|p| {
            p.manual.as_deref() == Some(target) || (key.is_some() && p.key.as_ref() == key)
        })
    }

    /// A second link to a node key we are already linked to: which connection to drop (None if
    /// `id` is the only one). Both nodes pick the same link: the one dialed by the node with the
    /// smaller key; between links dialed by the same side, the older one.
    pub(super) fn duplicate_link(&self, id: u64, remote_key: [u8; 32]) -> Option<u64> {
        let other = self
            .peers
            .iter()
            .find(|(o, p)| **o != id && p.key == Some(remote_key))
            .map(|(o, _)| *o)?;
        let dialer = |i: u64| {
            if self.peers[&i].inbound { remote_key } else { self.key.public }
        };
        let (d_new, d_old) = (dialer(id), dialer(other));
        if d_new == d_old {
            return Some(id.max(other));
        }
        let preferred = d_new.min(d_old);
        Some(if d_new == preferred { other } else { id })
    }

    pub(super) fn connect_outbound(&mut self, now: Instant) {
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
}
