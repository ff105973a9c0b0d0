//! Headers-first sync: the download set of wanted blocks, block scheduling and stalls.

use std::collections::HashMap;
use std::time::Instant;

use rnet_crypto::{BatchVerifier, PublicKey, Signature};
use rnet_primitives::{Block, BlockHash, BlockHeader};

use crate::backend::Accepted;
use crate::message::{Inv, MAX_HEADERS, Message, ModelObject};

use super::orphans::{ORPHAN_FLOOD_SCORE, OrphanRefused};
use super::validation::{
    Checked, HeadersReply, Job, MAX_PENDING_UNREQUESTED_BYTES, MAX_PENDING_UNREQUESTED_PER_PEER,
};
use super::{BAN_SCORE, BLOCK_DOWNLOAD_WINDOW, MAX_BLOCKS_IN_FLIGHT, Manager};

/// Headers a peer may add to the download set before its share is full.
pub const MAX_WANTED_PER_PEER: usize = 4 * MAX_HEADERS;
/// Blocks in the download set (all peers).
pub const MAX_WANTED: usize = 200_000;
/// Score of a `headers` message we did not ask for.
pub const UNSOLICITED_HEADERS_SCORE: u32 = 20;
/// Score of a non-continuous or unconnected `headers` message.
pub const BAD_HEADERS_SCORE: u32 = 20;

/// Whether every header's miner signature over its id verifies (the consensus check of
/// `check_block`, done early and batched so forged headers never enter the download set).
pub(super) fn signatures_ok(hs: &[(&BlockHeader, &BlockHash)]) -> bool {
    let mut batch = BatchVerifier::with_capacity(hs.len());
    for (h, hash) in hs {
        let Ok(key) = PublicKey::from_bytes(&h.miner_pubkey) else { return false };
        batch.queue(&key, hash.as_bytes(), &Signature::from_bytes(h.signature));
    }
    batch.verify().is_ok()
}

/// A block in the download set.
pub(super) struct Want {
    /// The peer whose headers introduced it (its share of the set).
    pub(super) origin: u64,
    pub(super) height: u32,
    pub(super) peers: Vec<u64>,
    pub(super) requested: Option<(u64, Instant)>,
}

impl Manager {
    /// Sends `getheaders` (after `from`, or after our active chain's locator) unless one is
    /// already outstanding to this peer: one request at a time, so each `headers` answer is
    /// matched to a request and a peer cannot feed the download set faster than we ask.
    pub(super) fn request_headers(&mut self, id: u64, from: Option<BlockHash>) {
        let now = Instant::now();
        let stall = self.cfg.stall_timeout;
        let Some(p) = self.peers.get_mut(&id) else { return };
        if p.headers_checking || p.headers_asked.is_some_and(|at| now.duration_since(at) <= stall) {
            // Asked again once the outstanding answer is in (it may predate what is new).
            p.headers_again = true;
            return;
        }
        p.headers_again = false;
        let locator = match from {
            Some(h) => vec![h],
            None => self.b(|b| b.locator()),
        };
        if let Some(p) = self.peers.get_mut(&id) {
            p.headers_asked = Some(now);
        }
        self.send(id, Message::GetHeaders { locator, stop: BlockHash::ZERO });
    }

    /// A `headers` answer. Before a header enters the download set: the message must answer our
    /// `getheaders` (else [`UNSOLICITED_HEADERS_SCORE`]), be one continuous chain whose first
    /// parent is a known block or header or already wanted (else [`BAD_HEADERS_SCORE`]), and every
    /// new header's miner signature must verify (else [`BAN_SCORE`]). The signatures (up to 2000
    /// per answer) are checked by a validation worker; the answer is processed when the verdict
    /// comes back ([`Manager::on_headers_checked`]), and until then no other `getheaders` goes to
    /// the peer, so its answers are still taken one at a time, in order.
    pub(super) fn on_headers(&mut self, id: u64, hs: Vec<BlockHeader>) {
        let Some(p) = self.peers.get_mut(&id) else { return };
        if p.headers_asked.take().is_none() {
            self.misbehave(id, UNSOLICITED_HEADERS_SCORE, "unsolicited headers");
            return;
        }
        let Some(first) = hs.first() else {
            if p.headers_again {
                self.request_headers(id, None);
            }
            return;
        };
        let hashes: Vec<BlockHash> = hs.iter().map(BlockHeader::hash).collect();
        if hs.iter().skip(1).zip(&hashes).any(|(h, prev)| h.prev_block_hash != *prev) {
            self.misbehave(id, BAD_HEADERS_SCORE, "non-continuous headers");
            return;
        }
        let parent = first.prev_block_hash;
        let connects = self.wanted.contains_key(&parent)
            || self.blocks_checking.contains(&parent)
            || self.b(|b| b.has_block(&parent) || b.header(&parent).is_some());
        if !connects {
            self.misbehave(id, BAD_HEADERS_SCORE, "headers not connecting to a known block");
            return;
        }
        let fresh: Vec<usize> = (0..hs.len()).filter(|&i| self.is_new_block(&hashes[i])).collect();
        let reply = HeadersReply { peer: id, headers: hs, hashes, fresh };
        if reply.fresh.is_empty() {
            self.on_headers_checked(reply, true);
            return;
        }
        match self.header_jobs.try_send(Job::Headers(reply)) {
            Ok(()) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.headers_checking = true;
                }
            }
            // Full (or the worker is gone): check here rather than drop a solicited answer.
            Err(e) => {
                let Job::Headers(reply) = e.into_inner() else { return };
                let ok = reply.signatures_ok();
                self.on_headers_checked(reply, ok);
            }
        }
    }

    /// Neither wanted, being validated nor stored.
    fn is_new_block(&self, hash: &BlockHash) -> bool {
        !self.wanted.contains_key(hash)
            && !self.blocks_checking.contains(hash)
            && !self.b(|b| b.has_block(hash))
    }

    /// A `headers` answer's signature verdict: a bad signature bans the peer; otherwise its new
    /// headers enter the download set. Each peer may introduce at most [`MAX_WANTED_PER_PEER`]
    /// wanted blocks (the set holds at most [`MAX_WANTED`]); a full batch over that is continued
    /// once the peer's share has drained. A header that became new while the verdict was pending
    /// (it left the download set) was not checked with the batch and is checked on its own.
    pub(super) fn on_headers_checked(&mut self, reply: HeadersReply, ok: bool) {
        let HeadersReply { peer: id, headers: hs, hashes, fresh } = reply;
        let Some(p) = self.peers.get_mut(&id) else { return };
        p.headers_checking = false;
        if !ok {
            self.misbehave(id, BAN_SCORE, "header with a bad miner signature");
            return;
        }
        let Some(parent) = hs.first().map(|h| h.prev_block_hash) else { return };
        self.b(|b| b.headers_checked(&hs));
        let full = hs.len() == MAX_HEADERS;
        let mut share = self.wanted.values().filter(|w| w.origin == id).count();
        let mut resume = None;
        let mut last = None;
        for (i, (h, hash)) in hs.iter().zip(hashes).enumerate() {
            if let Some(w) = self.wanted.get_mut(&hash) {
                if !w.peers.contains(&id) {
                    w.peers.push(id);
                }
            } else if !self.blocks_checking.contains(&hash) && !self.b(|b| b.has_block(&hash)) {
                if share >= MAX_WANTED_PER_PEER || self.wanted.len() >= MAX_WANTED {
                    resume = Some(last.unwrap_or(parent));
                    break;
                }
                if fresh.binary_search(&i).is_err() && !signatures_ok(&[(h, &hash)]) {
                    self.misbehave(id, BAN_SCORE, "header with a bad miner signature");
                    return;
                }
                self.wanted.insert(
                    hash,
                    Want { height: h.height, peers: vec![id], requested: None, origin: id },
                );
                share += 1;
            }
            if let Some(p) = self.peers.get_mut(&id) {
                p.best_height = p.best_height.max(h.height);
                p.known.insert(hash.0);
            }
            last = Some(hash);
        }
        if let Some(r) = resume {
            tracing::debug!(peer = id, "download set share full; headers resume later");
            if let Some(p) = self.peers.get_mut(&id) {
                p.headers_resume = Some(r);
            }
        } else if full {
            self.request_headers(id, last);
        } else if self.peers.get(&id).is_some_and(|p| p.headers_again) {
            self.request_headers(id, None);
        }
        self.schedule();
    }

    /// Continues header downloads paused by [`MAX_WANTED_PER_PEER`] once the peer's share of the
    /// download set has room for a full batch again.
    fn resume_headers(&mut self) {
        let paused: Vec<(u64, BlockHash)> =
            self.peers.iter().filter_map(|(id, p)| p.headers_resume.map(|h| (*id, h))).collect();
        for (id, from) in paused {
            let share = self.wanted.values().filter(|w| w.origin == id).count();
            if share + MAX_HEADERS <= MAX_WANTED_PER_PEER
                && self.wanted.len() + MAX_HEADERS <= MAX_WANTED
            {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.headers_resume = None;
                }
                self.request_headers(id, Some(from));
            }
        }
    }

    /// A `block`: it leaves the download set and goes to the validation queue.
    pub(super) fn on_block(&mut self, id: u64, block: Block) {
        let hash = block.block_hash();
        if let Some(p) = self.peers.get_mut(&id) {
            p.blocks.remove(&hash);
            p.io.block_answered(&hash);
            p.known.insert(hash.0);
        }
        let requested = self.wanted.remove(&hash).is_some();
        self.submit_block(id, Box::new(block), requested);
        self.schedule();
    }

    /// Queues a block for `accept_block` off the event loop (once per hash at a time).
    pub(super) fn submit_block(&mut self, from: u64, block: Box<Block>, requested: bool) {
        let hash = block.block_hash();
        if self.blocks_checking.contains(&hash) {
            return;
        }
        let memory = if requested { 0 } else { block.memory_usage() };
        if !requested {
            let pending = self.peers.get(&from).map_or(0, |p| p.unrequested_blocks_pending);
            if pending >= MAX_PENDING_UNREQUESTED_PER_PEER {
                self.misbehave(from, ORPHAN_FLOOD_SCORE, "unrequested blocks while others wait");
                return;
            }
            if self.unrequested_pending_bytes > 0
                && self.unrequested_pending_bytes + memory > MAX_PENDING_UNREQUESTED_BYTES
            {
                tracing::debug!(peer = from, %hash, "unrequested blocks use their memory; dropped");
                return;
            }
        }
        if self.block_jobs.try_send(Job::Block { peer: from, block, requested }).is_err() {
            tracing::warn!(peer = from, %hash, "block validation queue full; block dropped");
            return;
        }
        self.blocks_checking.insert(hash);
        if !requested {
            self.unrequested_pending_bytes += memory;
            if let Some(p) = self.peers.get_mut(&from) {
                p.unrequested_blocks_pending += 1;
            }
        }
    }

    /// A block verdict: orphans wait for their parent, a stored block releases its waiting
    /// children, an invalid one bans its sender.
    pub(super) fn on_block_checked(&mut self, c: Checked) {
        let Checked::Block { peer: from, block, requested, result } = c else { return };
        let hash = block.block_hash();
        self.blocks_checking.remove(&hash);
        if !requested {
            self.unrequested_pending_bytes =
                self.unrequested_pending_bytes.saturating_sub(block.memory_usage());
            if let Some(p) = self.peers.get_mut(&from) {
                p.unrequested_blocks_pending = p.unrequested_blocks_pending.saturating_sub(1);
            }
        }
        match result {
            Ok(Accepted::Orphan(parent)) => {
                self.add_orphan(from, block, parent, requested);
                if !self.wanted.contains_key(&parent) {
                    self.request_headers(from, None);
                }
            }
            Ok(a) => {
                tracing::debug!(peer = from, %hash, height = block.header.height, "block {a:?}");
                if matches!(a, Accepted::Connected | Accepted::Stored) {
                    if let Some(p) = self.peers.get_mut(&from) {
                        p.last_block = Some(Instant::now());
                    }
                }
                if a == Accepted::NeedUpdate && !self.b(|b| b.has_update(&hash)) {
                    self.queue_object((hash, ModelObject::Update), from);
                }
                for (child, child_from) in self.orphans.take_children(&hash) {
                    self.submit_block(child_from, child, true);
                }
            }
            Err(r) if r.invalid => {
                self.misbehave(from, BAN_SCORE, &format!("invalid block {hash}: {}", r.reason));
            }
            Err(r) => tracing::warn!(%hash, "block not accepted: {}", r.reason),
        }
        self.schedule();
    }

    /// Buffers a block whose parent is unknown. The chain reports orphans before checking them,
    /// so the miner signature is checked here first (a bad one bans the sender); unrequested
    /// orphans over the sender's allowance are dropped and score [`ORPHAN_FLOOD_SCORE`].
    fn add_orphan(&mut self, from: u64, block: Box<Block>, parent: BlockHash, requested: bool) {
        let hash = block.block_hash();
        if !signatures_ok(&[(&block.header, &hash)]) {
            self.misbehave(from, BAN_SCORE, &format!("orphan block {hash} with a bad signature"));
            return;
        }
        match self.orphans.add(from, block, parent, requested, Instant::now()) {
            Ok(()) | Err(OrphanRefused::Duplicate) => {}
            Err(OrphanRefused::PeerFull) => {
                self.misbehave(from, ORPHAN_FLOOD_SCORE, "unrequested orphan blocks")
            }
            Err(OrphanRefused::TooLarge) => tracing::warn!(%hash, "orphan block too large"),
        }
    }

    /// Requests wanted blocks and model object (update, checkpoint) chunks from peers with room.
    pub(super) fn schedule(&mut self) {
        self.resume_headers();
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
        // Blocks, lowest height first, at most `BLOCK_DOWNLOAD_WINDOW` above the active tip: the
        // chain state refuses to store blocks too far above their last validated ancestor
        // (`rnet_chain::MAX_UNVALIDATED_DEPTH`), so fetching further ahead would only waste them.
        let window_top = self.b(|b| b.best()).0.saturating_add(BLOCK_DOWNLOAD_WINDOW);
        let mut todo: Vec<(u32, BlockHash)> = self
            .wanted
            .iter()
            .filter(|(_, w)| w.requested.is_none() && w.height <= window_top)
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
                    peer.io.block_requested(h, &peer.blocks);
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
        self.schedule_objects(now);
    }
}
