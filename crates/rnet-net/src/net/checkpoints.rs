//! Checkpoint transfer: downloading chunks verified against the header's root.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use rnet_model::checkpoint::{CHUNK_SIZE, merkle_root, verify_chunk};
use rnet_primitives::BlockHash;

use crate::message::Message;

use super::partial::{self, Chunks};
use super::peer::Peer;
use super::validation::{Checked, Job};
use super::{
    BAN_SCORE, CHUNK_FLOOD_SCORE, MAX_CHECKPOINT_FETCHES, MAX_CHECKPOINT_SIZE,
    MAX_CHUNKS_IN_FLIGHT, Manager,
};

/// Checkpoints whose chunk hashes are kept for serving.
pub const CHUNK_HASH_CACHE: usize = 8;

/// Chunk hashes of recently served checkpoints (oldest out first).
#[derive(Default)]
pub(super) struct ChunkHashCache {
    map: HashMap<BlockHash, Vec<[u8; 32]>>,
    order: VecDeque<BlockHash>,
}

impl ChunkHashCache {
    /// The cached hashes of a block's checkpoint.
    pub(super) fn get(&self, block: &BlockHash) -> Option<&Vec<[u8; 32]>> {
        self.map.get(block)
    }

    /// Caches a block's chunk hashes.
    pub(super) fn insert(&mut self, block: BlockHash, hashes: Vec<[u8; 32]>) {
        if self.map.insert(block, hashes).is_none() {
            self.order.push_back(block);
        }
        while self.order.len() > CHUNK_HASH_CACHE {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// A checkpoint being downloaded.
pub(super) struct CkFetch {
    /// The block's height: which peers' advertised model service covers it.
    pub(super) height: u32,
    pub(super) root: [u8; 32],
    pub(super) size: u64,
    pub(super) source: u64,
    pub(super) hashes: Option<Vec<[u8; 32]>>,
    pub(super) hashes_req: Option<(u64, Instant)>,
    /// The verified chunks received (on disk under the netdir, else in memory).
    pub(super) chunks: Chunks,
    pub(super) req: HashMap<u32, (u64, Instant)>,
    pub(super) skip: HashSet<u64>,
    /// Peers that answered `notfound` for this checkpoint, and when: not asked again (no
    /// penalty) until `LACKING_RETRY` has passed and nobody else is left to ask.
    pub(super) lacking: HashMap<u64, Instant>,
}

/// The peers to ask for the model of the block at `height`, best first: those whose advertised
/// model service covers it ([`Peer::serves_model`]), archive peers first, so a pruning peer is
/// not asked for a model it announced it dropped. If none of `open` advertises it, all of them
/// (the service is a hint; `notfound` still tells who lacks it).
fn by_model_service(peers: &HashMap<u64, Peer>, open: Vec<u64>, height: u32) -> Vec<u64> {
    let (mut cover, rest): (Vec<u64>, Vec<u64>) =
        open.into_iter().partition(|id| peers.get(id).is_some_and(|p| p.serves_model(height)));
    if cover.is_empty() {
        return rest;
    }
    cover.sort_by_key(|id| !peers.get(id).is_some_and(Peer::archive));
    cover
}

/// How long a peer that answered `notfound` for a checkpoint is left out of its download.
const LACKING_RETRY: Duration = Duration::from_secs(60);

/// The "source" of a checkpoint fetched because the node found it missing: no peer (peer ids
/// start at 1 and never reach it), so nobody is scored for it.
const NO_SOURCE: u64 = u64::MAX;

impl Manager {
    /// A checkpoint verdict: an invalid one bans the block's source.
    pub(super) fn on_checkpoint_checked(&mut self, c: Checked) {
        let Checked::Checkpoint { source, block, result } = c else { return };
        self.ck_checking.remove(&block);
        match result {
            Ok(a) => tracing::debug!(%block, "checkpoint received: {a:?}"),
            Err(r) if r.invalid => {
                self.misbehave(source, BAN_SCORE, &format!("invalid block {block}: {}", r.reason))
            }
            Err(r) => tracing::warn!(%block, "checkpoint not accepted: {}", r.reason),
        }
        self.schedule();
    }

    /// Takes one token of the peer's checkpoint-request bucket; scores the peer when empty.
    pub(super) fn take_chunk_token(&mut self, id: u64) -> bool {
        let Some(p) = self.peers.get_mut(&id) else { return false };
        if p.chunk_requests.take(Instant::now()) {
            return true;
        }
        self.misbehave(id, CHUNK_FLOOD_SCORE, "checkpoint requests over the rate limit");
        false
    }

    /// Queues the checkpoints the node reports it lacks ([`crate::Backend::wanted_checkpoints`]):
    /// a download lost in a crash, a damaged file, a tip checkpoint a miner needs. They come
    /// from whichever peer has them; no peer is to blame for them (source [`NO_SOURCE`]).
    pub(super) fn fetch_wanted_checkpoints(&mut self) {
        if self.peers.values().all(|p| !p.ready()) {
            return;
        }
        for hash in self.b(|b| b.wanted_checkpoints(MAX_CHECKPOINT_FETCHES)) {
            if !self.ck.contains_key(&hash) {
                tracing::info!(%hash, "fetching a missing checkpoint from peers");
            }
            self.queue_checkpoint(hash, NO_SOURCE);
        }
    }

    pub(super) fn queue_checkpoint(&mut self, hash: BlockHash, from: u64) {
        if self.ck.contains_key(&hash) || self.ck_queue.iter().any(|(h, _)| *h == hash) {
            return;
        }
        if self.ck_queue.len() < 10_000 {
            self.ck_queue.push_back((hash, from));
        }
        self.schedule();
    }

    pub(super) fn on_chunk_hashes(&mut self, id: u64, block: BlockHash, hashes: Vec<[u8; 32]>) {
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
        // On disk, the chunks of an earlier partial file that still verify are kept (resume).
        let (netdir, size) = (self.cfg.netdir.as_deref(), f.size);
        f.chunks = tokio::task::block_in_place(|| Chunks::open(netdir, &block, &hashes, size));
        f.hashes = Some(hashes);
        if f.chunks.complete() {
            self.finish_checkpoint(block);
        }
        self.schedule();
    }

    /// `notfound` for a checkpoint being fetched: the peer is honest but lacks it. It is not asked
    /// again for it, and its outstanding requests (chunk hashes, chunks) are unassigned so the
    /// next `schedule` gives them to other peers at once instead of waiting for the stall timeout.
    /// Returns whether anything changed.
    pub(super) fn checkpoint_not_found(&mut self, id: u64, block: BlockHash) -> bool {
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

    pub(super) fn on_chunk(&mut self, id: u64, block: BlockHash, index: u32, data: Vec<u8>) {
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
        let stored = tokio::task::block_in_place(|| f.chunks.put(index as usize, data));
        if let Err(e) = stored {
            // Asked again by the next `schedule` (the chunk is still missing).
            tracing::warn!(%block, index, "cannot store a checkpoint chunk: {e}");
        } else if f.chunks.complete() {
            self.finish_checkpoint(block);
        }
        self.schedule();
    }

    /// Hands a complete download to the validation worker (which deletes its partial file).
    fn finish_checkpoint(&mut self, block: BlockHash) {
        let Some(f) = self.ck.remove(&block) else { return };
        let data = f.chunks.finish(f.size);
        let job = Job::Checkpoint { source: f.source, block, data };
        if self.block_jobs.try_send(job).is_ok() {
            self.ck_checking.insert(block);
        } else {
            // A partial file stays on disk: the next fetch of the block resumes from it.
            tracing::warn!(%block, "validation queue full; checkpoint dropped");
        }
    }

    /// Drops downloads of checkpoints the node got meanwhile (deleting their partial files) and
    /// sweeps stale partial files ([`partial::sweep`]).
    pub(super) fn sweep_partials(&mut self) {
        let active: Vec<BlockHash> = self.ck.keys().copied().collect();
        for h in active {
            if self.b(|b| b.has_checkpoint(&h)) {
                if let Some(f) = self.ck.remove(&h) {
                    f.chunks.discard();
                }
            }
        }
        let Some(dir) = self.cfg.netdir.clone() else { return };
        let mut active: HashSet<BlockHash> = self.ck.keys().copied().collect();
        active.extend(self.ck_checking.iter().copied());
        let b = self.backend.clone();
        tokio::task::block_in_place(|| {
            partial::sweep(
                &dir,
                &active,
                |h| b.header(h).is_some() && !b.has_checkpoint(h),
                SystemTime::now(),
            )
        });
    }

    pub(super) fn schedule_checkpoints(&mut self, now: Instant) {
        while self.ck.len() < MAX_CHECKPOINT_FETCHES {
            let Some((hash, source)) = self.ck_queue.pop_front() else { break };
            if self.ck_checking.contains(&hash) || self.b(|b| b.has_checkpoint(&hash)) {
                continue;
            }
            let Some(header) = self.b(|b| b.header(&hash)) else { continue };
            if header.checkpoint_size == 0 || header.checkpoint_size > MAX_CHECKPOINT_SIZE {
                continue;
            }
            self.ck.insert(
                hash,
                CkFetch {
                    height: header.height,
                    root: header.checkpoint_root.0,
                    size: header.checkpoint_size,
                    source,
                    hashes: None,
                    hashes_req: None,
                    chunks: Chunks::Memory(Vec::new()),
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
            let open: Vec<u64> = ready
                .iter()
                .copied()
                .filter(|p| !f.skip.contains(p) && !f.lacking.contains_key(p))
                .collect();
            let candidates = by_model_service(&self.peers, open, f.height);
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
                if f.chunks.has(i) || f.req.contains_key(&(i as u32)) {
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
            if let Some(f) = self.ck.remove(&h) {
                f.chunks.discard();
            }
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
}
