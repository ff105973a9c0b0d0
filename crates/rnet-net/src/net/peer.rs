//! Per-peer state, the send queue and misbehaviour scores.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rnet_primitives::BlockHash;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::{
    BAN_SCORE, CHUNK_REQUEST_BURST, CHUNK_REQUEST_RATE, MAX_BLOCKS_IN_FLIGHT, MAX_SEND_QUEUE_BYTES,
    Manager, UNREQUESTED_TX_BURST, UNREQUESTED_TX_RATE, is_loopback, unix_now,
};
use crate::addr::PeerAddr;
use crate::ban::DEFAULT_BAN_SECS;
use crate::message::{Message, ModelObject, NODE_MODEL_ARCHIVE, Version, chunk_payload, cmd};

/// Byte counters and the send-queue accounting of one connection, shared by the manager (which
/// enqueues) and the connection's reader and writer tasks.
#[derive(Debug, Default)]
pub(super) struct PeerIo {
    /// Bytes sent.
    pub(super) sent: AtomicU64,
    /// Bytes received.
    pub(super) recv: AtomicU64,
    /// Payload bytes queued and not yet written to the socket.
    pub(super) queued: AtomicUsize,
    /// Model object (update, checkpoint) chunks queued and not yet written.
    pub(super) queued_chunks: AtomicUsize,
    /// Blocks asked of this peer (`getdata`) and not yet received from it, kept after a stall so
    /// a late answer still counts as asked for; the reader decodes a `block` over
    /// [`super::MAX_UNREQUESTED_BLOCK_SIZE`] only if its id is here.
    requested_blocks: Mutex<HashSet<BlockHash>>,
}

impl PeerIo {
    /// Records a block request sent to this peer. Past [`MAX_REMEMBERED_BLOCK_REQUESTS`] the
    /// stalled requests (those not in `in_flight`) are forgotten.
    pub(super) fn block_requested(&self, hash: BlockHash, in_flight: &HashSet<BlockHash>) {
        let mut set = self.requested_blocks.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() >= MAX_REMEMBERED_BLOCK_REQUESTS {
            set.retain(|h| in_flight.contains(h));
        }
        set.insert(hash);
    }

    /// Forgets a block request: the block arrived from this peer or it said `notfound`.
    pub(super) fn block_answered(&self, hash: &BlockHash) {
        self.requested_blocks.lock().unwrap_or_else(|e| e.into_inner()).remove(hash);
    }

    /// Whether we asked this peer for the block `hash`.
    pub(super) fn asked_for(&self, hash: &BlockHash) -> bool {
        self.requested_blocks.lock().unwrap_or_else(|e| e.into_inner()).contains(hash)
    }

    /// Accounts for a message leaving the queue (written or dropped).
    pub(super) fn dequeued(&self, m: &Outbound) {
        self.queued.fetch_sub(m.size(), Ordering::Relaxed);
        if matches!(m, Outbound::Chunk { .. }) {
            self.queued_chunks.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Block requests remembered per peer (in flight or stalled): far more than the
/// [`MAX_BLOCKS_IN_FLIGHT`] out at once, so only a peer that stalled on hundreds of requests
/// has its oldest late answers refused (32 bytes each).
pub(super) const MAX_REMEMBERED_BLOCK_REQUESTS: usize = 64 * MAX_BLOCKS_IN_FLIGHT;

/// One queued outgoing message.
pub(super) enum Outbound {
    /// An encoded message.
    Encoded {
        /// Command byte.
        command: u8,
        /// Payload.
        payload: Vec<u8>,
    },
    /// A chunk of a checkpoint or update served from the object's shared bytes: queuing it
    /// copies nothing, so a peer asking for the same chunk many times costs one object in memory.
    Chunk {
        /// The block.
        block: BlockHash,
        /// Its checkpoint or its update.
        kind: ModelObject,
        /// Chunk index.
        index: u32,
        /// The whole object, shared with the backend.
        bytes: Arc<Vec<u8>>,
        /// The chunk's range in `bytes`.
        range: Range<usize>,
    },
}

impl Outbound {
    /// The command byte.
    pub(super) fn command(&self) -> u8 {
        match self {
            Outbound::Encoded { command, .. } => *command,
            Outbound::Chunk { .. } => cmd::CHUNK,
        }
    }

    /// The payload (a chunk is encoded here, in the writer task, one at a time).
    pub(super) fn payload(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Outbound::Encoded { payload, .. } => payload.as_slice().into(),
            Outbound::Chunk { block, kind, index, bytes, range } => {
                chunk_payload(block, *kind, *index, &bytes[range.clone()]).into()
            }
        }
    }

    /// The bytes this message counts against the peer's queue bound.
    pub(super) fn size(&self) -> usize {
        match self {
            Outbound::Encoded { payload, .. } => payload.len() + 1,
            Outbound::Chunk { range, .. } => range.len() + 43,
        }
    }
}

/// A token bucket: `burst` requests at once, refilled at `rate` per second.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: f64,
    at: Instant,
    burst: f64,
    rate: f64,
}

impl Bucket {
    /// A full bucket.
    pub(super) fn new(burst: f64, rate: f64) -> Self {
        Self { tokens: burst, at: Instant::now(), burst, rate }
    }

    /// Takes one token if there is one.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One connection's state, owned by the manager.
pub(super) struct Peer {
    pub(super) addr: PeerAddr,
    pub(super) inbound: bool,
    pub(super) manual: Option<String>,
    pub(super) abort: AbortHandle,
    pub(super) tx: Option<mpsc::Sender<Outbound>>,
    pub(super) key: Option<[u8; 32]>,
    pub(super) version: Option<Box<Version>>,
    pub(super) verack: bool,
    pub(super) conn_time: u64,
    /// When the TCP connection was registered (handshake timeout, eviction by age).
    pub(super) connected: Instant,
    pub(super) last_recv: Instant,
    pub(super) ping: Option<(u64, Instant)>,
    pub(super) last_ping: Instant,
    pub(super) ping_time: Option<f64>,
    pub(super) score: u32,
    pub(super) blocks: HashSet<BlockHash>,
    pub(super) chunks: usize,
    pub(super) known: HashSet<[u8; 32]>,
    pub(super) io: Arc<PeerIo>,
    pub(super) best_height: u32,
    pub(super) seed: bool,
    /// `getchunk` requests this peer may still make (rate limit).
    pub(super) chunk_requests: Bucket,
    /// Unrequested `tx` messages this peer may still send (rate limit).
    pub(super) unrequested_txs: Bucket,
    /// Transactions this peer sent that wait in the validation queue.
    pub(super) txs_pending: usize,
    /// Blocks this peer pushed unrequested that wait in the validation queue.
    pub(super) unrequested_blocks_pending: usize,
    /// Our outstanding `getheaders` to this peer (one at a time), and when it was sent.
    pub(super) headers_asked: Option<Instant>,
    /// A `getheaders` was due while one was outstanding: send it when the answer arrives.
    pub(super) headers_again: bool,
    /// The answer to our `getheaders` waits for its signature verdict (counts as outstanding).
    pub(super) headers_checking: bool,
    /// The last header of a full `headers` batch not continued because the peer's share of the
    /// download set was full: asked for again once it drains.
    pub(super) headers_resume: Option<BlockHash>,
    /// Last time this peer gave us a new block / a new transaction (eviction protection).
    pub(super) last_block: Option<Instant>,
    pub(super) last_tx: Option<Instant>,
}

impl Peer {
    /// A connection just registered.
    pub(super) fn new(
        addr: PeerAddr,
        inbound: bool,
        manual: Option<String>,
        abort: AbortHandle,
        io: Arc<PeerIo>,
        seed: bool,
    ) -> Self {
        let now = Instant::now();
        Self {
            addr,
            inbound,
            manual,
            abort,
            tx: None,
            key: None,
            version: None,
            verack: false,
            conn_time: unix_now(),
            connected: now,
            last_recv: now,
            ping: None,
            last_ping: now,
            ping_time: None,
            score: 0,
            blocks: HashSet::new(),
            chunks: 0,
            known: HashSet::new(),
            io,
            best_height: 0,
            seed,
            chunk_requests: Bucket::new(CHUNK_REQUEST_BURST, CHUNK_REQUEST_RATE),
            unrequested_txs: Bucket::new(UNREQUESTED_TX_BURST, UNREQUESTED_TX_RATE),
            txs_pending: 0,
            unrequested_blocks_pending: 0,
            headers_asked: None,
            headers_again: false,
            headers_checking: false,
            headers_resume: None,
            last_block: None,
            last_tx: None,
        }
    }

    /// Whether the peer advertises serving the model of the block at `height` (its `version`'s
    /// model service against its best height: the handshake's, raised by announced headers).
    pub(super) fn serves_model(&self, height: u32) -> bool {
        self.version.as_ref().is_some_and(|v| {
            Version::serves_model(v.services, v.model_depth, self.best_height, height)
        })
    }

    /// Whether the peer advertises keeping every model ([`NODE_MODEL_ARCHIVE`]).
    pub(super) fn archive(&self) -> bool {
        self.version.as_ref().is_some_and(|v| v.services & NODE_MODEL_ARCHIVE != 0)
    }

    /// Handshake complete (`version` and `verack` both ways).
    pub(super) fn ready(&self) -> bool {
        self.version.is_some() && self.verack && self.tx.is_some()
    }
}

impl Manager {
    /// Queues a message for a peer.
    pub(super) fn send(&mut self, id: u64, m: Message) {
        self.send_out(id, Outbound::Encoded { command: m.command(), payload: m.payload() });
    }

    /// Queues an outgoing message; a peer whose unsent queue would pass [`SEND_QUEUE`] messages
    /// or [`MAX_SEND_QUEUE_BYTES`] bytes is disconnected (it does not read what it asks for).
    pub(super) fn send_out(&mut self, id: u64, m: Outbound) {
        let Some(p) = self.peers.get(&id) else { return };
        let Some(tx) = p.tx.as_ref() else { return };
        let size = m.size();
        let queued = p.io.queued.load(Ordering::Relaxed);
        if queued.saturating_add(size) > MAX_SEND_QUEUE_BYTES {
            self.disconnect(id, "send queue over its byte limit");
            return;
        }
        let chunk = matches!(m, Outbound::Chunk { .. });
        p.io.queued.fetch_add(size, Ordering::Relaxed);
        if chunk {
            p.io.queued_chunks.fetch_add(1, Ordering::Relaxed);
        }
        match tx.try_send(m) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(m)) => {
                p.io.dequeued(&m);
                self.disconnect(id, "send queue full");
            }
            // The connection is ending: its reader reports why (a score, or a close) next, so the
            // peer stays until then.
            Err(mpsc::error::TrySendError::Closed(m)) => p.io.dequeued(&m),
        }
    }

    /// Drops a peer and hands its outstanding requests back to the schedulers.
    pub(super) fn disconnect(&mut self, id: u64, why: &str) {
        if let Some(p) = self.peers.remove(&id) {
            tracing::debug!(peer = id, addr = %p.addr, "disconnect: {why}");
            p.abort.abort();
            self.orphans.remove_peer(id);
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

    /// Adds to a peer's misbehaviour score; at [`BAN_SCORE`] its key (and non-loopback address)
    /// is banned and it is disconnected.
    pub(super) fn misbehave(&mut self, id: u64, score: u32, why: &str) {
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
}
