//! Model object transfer: downloading a block's update or checkpoint in chunks, each verified
//! against the chunk hashes whose merkle root the header commits to (`update_root` or
//! `checkpoint_root`).
//!
//! The chunk-hash list comes in `chunkhashes` pages of at most `MAX_CHUNK_HASHES`, asked in
//! order from one peer; each page must name the object's chunk count the header's size implies
//! and start where the last one ended. Once the list is whole its merkle root is checked, and
//! only then are chunks requested. A peer whose pages are inconsistent or do not give the root
//! is banned and the list is asked of another peer from the start.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use rnet_model::checkpoint::{CHUNK_SIZE, merkle_root, verify_chunk};
use rnet_primitives::{BlockHash, BlockHeader};

use crate::message::{Message, ModelObject, chunk_count};

use super::partial::{self, Chunks};
use super::peer::Peer;
use super::validation::{Checked, Job};
use super::{
    BAN_SCORE, CHUNK_FLOOD_SCORE, Event, MAX_CHECKPOINT_FETCHES, MAX_CHECKPOINT_SIZE,
    MAX_CHUNKS_IN_FLIGHT, MAX_UPDATE_FETCHES, MAX_UPDATE_SIZE, Manager,
};

/// Model objects of each kind whose chunk hashes are kept for serving.
pub const CHUNK_HASH_CACHE: usize = 8;

/// Model objects queued for download, per kind.
pub const MAX_QUEUED_FETCHES: usize = 10_000;

/// A block's model object: its checkpoint or its update.
pub(super) type ObjectKey = (BlockHash, ModelObject);

/// Downloads of this kind that run at once.
pub(super) fn max_fetches(kind: ModelObject) -> usize {
    match kind {
        ModelObject::Checkpoint => MAX_CHECKPOINT_FETCHES,
        ModelObject::Update => MAX_UPDATE_FETCHES,
    }
}

/// The root and size the header commits to for the object (`None`: nothing to fetch, or
/// larger than we download).
fn commitment(header: &BlockHeader, kind: ModelObject) -> Option<([u8; 32], u64)> {
    let (root, size, max) = match kind {
        ModelObject::Checkpoint => {
            (header.checkpoint_root, header.checkpoint_size, MAX_CHECKPOINT_SIZE)
        }
        ModelObject::Update => (header.update_root, header.update_size, MAX_UPDATE_SIZE),
    };
    (size != 0 && size <= max).then_some((root.0, size))
}

/// Chunk hashes of recently served model objects, [`CHUNK_HASH_CACHE`] of each kind (oldest
/// out first), so serving updates does not evict the hashes of a checkpoint.
#[derive(Default)]
pub(super) struct ChunkHashCache {
    map: HashMap<ObjectKey, Vec<[u8; 32]>>,
    order: [VecDeque<BlockHash>; 2],
}

impl ChunkHashCache {
    /// The cached hashes of a block's model object.
    pub(super) fn get(&self, key: &ObjectKey) -> Option<&Vec<[u8; 32]>> {
        self.map.get(key)
    }

    /// Caches a model object's chunk hashes.
    pub(super) fn insert(&mut self, key: ObjectKey, hashes: Vec<[u8; 32]>) {
        let (block, kind) = key;
        let order = &mut self.order[kind as usize];
        if self.map.insert(key, hashes).is_none() {
            order.push_back(block);
        }
        while order.len() > CHUNK_HASH_CACHE {
            if let Some(old) = order.pop_front() {
                self.map.remove(&(old, kind));
            }
        }
    }
}

/// A model object (a block's update or checkpoint) being downloaded.
pub(super) struct CkFetch {
    /// The block's height: which peers' advertised model service covers it.
    pub(super) height: u32,
    pub(super) root: [u8; 32],
    pub(super) size: u64,
    pub(super) source: u64,
    /// The whole chunk-hash list, once its merkle root verified.
    pub(super) hashes: Option<Vec<[u8; 32]>>,
    /// The pages received so far (concatenated) and the peer that sent them; the next page
    /// starts at `pages.len()`. At most the object's chunk count of hashes.
    pub(super) pages: (u64, Vec<[u8; 32]>),
    /// The outstanding `getchunkhashes` page request: (peer, when).
    pub(super) hashes_req: Option<(u64, Instant)>,
    /// The verified chunks received (on disk under the netdir, else in memory).
    pub(super) chunks: Chunks,
    /// The partial file is being opened and its kept chunks re-verified on the blocking pool
    /// (a resumed download of a large checkpoint re-hashes up to gigabytes); no chunk is asked
    /// until [`Manager::on_partial_opened`].
    pub(super) opening: bool,
    pub(super) req: HashMap<u32, (u64, Instant)>,
    pub(super) skip: HashSet<u64>,
    /// Peers that answered `modelnotfound` for this object, and when: not asked again (no
    /// penalty) until `LACKING_RETRY` has passed and nobody else is left to ask.
    pub(super) lacking: HashMap<u64, Instant>,
}

/// The peers to ask for the model of the block at `height`, best first: those whose advertised
/// model service covers it ([`Peer::serves_model`]), archive peers first, so a pruning peer is
/// not asked for a model it announced it dropped. If none of `open` advertises it, all of them
/// (the service is a hint; `modelnotfound` still tells who lacks it).
fn by_model_service(peers: &HashMap<u64, Peer>, open: Vec<u64>, height: u32) -> Vec<u64> {
    let (mut cover, rest): (Vec<u64>, Vec<u64>) =
        open.into_iter().partition(|id| peers.get(id).is_some_and(|p| p.serves_model(height)));
    if cover.is_empty() {
        return rest;
    }
    cover.sort_by_key(|id| !peers.get(id).is_some_and(Peer::archive));
    cover
}

/// How long a peer that answered `modelnotfound` for an object is left out of its download.
const LACKING_RETRY: Duration = Duration::from_secs(60);

/// The "source" of an object fetched because the node found it missing: no peer (peer ids
/// start at 1 and never reach it), so nobody is scored for it.
const NO_SOURCE: u64 = u64::MAX;

impl Manager {
    /// A model object verdict: an invalid one bans the block's source.
    pub(super) fn on_model_checked(&mut self, c: Checked) {
        let Checked::Model { source, block, kind, result } = c else { return };
        self.ck_checking.remove(&(block, kind));
        match result {
            Ok(a) => tracing::debug!(%block, "{kind} received: {a:?}"),
            Err(r) if r.invalid => {
                self.misbehave(source, BAN_SCORE, &format!("invalid block {block}: {}", r.reason))
            }
            Err(r) => tracing::warn!(%block, "{kind} not accepted: {}", r.reason),
        }
        self.schedule();
    }

    /// Whether the node has the object already.
    fn have_object(&self, (block, kind): ObjectKey) -> bool {
        match kind {
            ModelObject::Checkpoint => self.b(|b| b.has_checkpoint(&block)),
            ModelObject::Update => self.b(|b| b.has_update(&block)),
        }
    }

    /// Takes one token of the peer's chunk-request bucket; scores the peer when empty.
    pub(super) fn take_chunk_token(&mut self, id: u64) -> bool {
        let Some(p) = self.peers.get_mut(&id) else { return false };
        if p.chunk_requests.take(Instant::now()) {
            return true;
        }
        self.misbehave(id, CHUNK_FLOOD_SCORE, "chunk requests over the rate limit");
        false
    }

    /// Queues the objects the node reports it lacks: updates
    /// ([`crate::Backend::wanted_updates`]: blocks stored without theirs, e.g. after a crash)
    /// and checkpoints ([`crate::Backend::wanted_checkpoints`]: a damaged file, a tip checkpoint
    /// a miner needs). They come from whichever peer has them; no peer is to blame for them
    /// (source [`NO_SOURCE`]).
    pub(super) fn fetch_wanted_objects(&mut self) {
        if self.peers.values().all(|p| !p.ready()) {
            return;
        }
        for kind in ModelObject::ALL {
            let wanted = match kind {
                ModelObject::Checkpoint => self.b(|b| b.wanted_checkpoints(MAX_CHECKPOINT_FETCHES)),
                ModelObject::Update => self.b(|b| b.wanted_updates(MAX_UPDATE_FETCHES)),
            };
            for hash in wanted {
                if !self.ck.contains_key(&(hash, kind)) {
                    tracing::info!(%hash, "fetching a missing {kind} from peers");
                }
                self.queue_object((hash, kind), NO_SOURCE);
            }
        }
    }

    /// Queues the download of a block's model object; `from` is the peer that sent the block
    /// (asked first, and blamed if the object proves invalid), or [`NO_SOURCE`].
    pub(super) fn queue_object(&mut self, key: ObjectKey, from: u64) {
        let queue = &mut self.ck_queue[key.1 as usize];
        if self.ck.contains_key(&key) || queue.iter().any(|(h, _)| *h == key.0) {
            return;
        }
        if queue.len() < MAX_QUEUED_FETCHES {
            queue.push_back((key.0, from));
        }
        self.schedule();
    }

    /// A `chunkhashes` page (decoding already checked `start + hashes.len() ≤ total`). Pages
    /// answering no request of ours, or starting elsewhere than the page asked for, are
    /// ignored. The page must carry the chunk count the header's size implies and at least
    /// one hash; the next page is then asked of the same peer, and once the list is whole its
    /// merkle root must be the header's. Any failure bans the peer and drops its pages.
    pub(super) fn on_chunk_hashes(
        &mut self,
        id: u64,
        key: ObjectKey,
        start: u32,
        total: u32,
        hashes: Vec<[u8; 32]>,
    ) {
        let Some(f) = self.ck.get_mut(&key) else { return };
        if f.hashes.is_some() || f.hashes_req.is_none_or(|(p, _)| p != id) {
            return;
        }
        if f.pages.0 != id {
            f.pages = (id, Vec::new());
        }
        let n = chunk_count(f.size);
        let have = f.pages.1.len();
        if u64::from(total) == n && start as usize != have {
            // Not the page asked for: a late answer to an earlier request (pages come in
            // request order on one connection, so the one asked for follows). The request
            // stays outstanding; a peer that never sends it is left by the stall timeout.
            let (block, kind) = key;
            tracing::debug!(peer = id, %block, start, have, "{kind} chunk hash page not asked for");
            return;
        }
        f.hashes_req = None;
        let fault = if u64::from(total) != n {
            Some(format!("chunk hash page with {total} chunks for a {n}-chunk object"))
        } else if hashes.is_empty() || have + hashes.len() > n as usize {
            Some(format!("chunk hash page of {} hashes at {start} of {n}", hashes.len()))
        } else {
            f.pages.1.extend_from_slice(&hashes);
            let whole = f.pages.1.len() == n as usize;
            (whole && merkle_root(&f.pages.1) != f.root)
                .then(|| "chunk hashes do not match the root".to_string())
        };
        if let Some(why) = fault {
            f.pages.1 = Vec::new();
            f.skip.insert(id);
            self.misbehave(id, BAN_SCORE, &format!("{}: {why}", key.1));
            self.schedule();
            return;
        }
        if f.pages.1.len() < n as usize {
            let (block, kind) = key;
            let start = f.pages.1.len() as u32;
            f.hashes_req = Some((id, Instant::now()));
            self.send(id, Message::GetChunkHashes { block, kind, start });
            return;
        }
        let hashes = std::mem::take(&mut f.pages.1);
        let size = f.size;
        let Some(netdir) = self.cfg.netdir.clone() else {
            f.chunks = Chunks::open(None, key, &hashes, size);
            f.hashes = Some(hashes);
            self.schedule();
            return;
        };
        // On disk, the chunks of an earlier partial file that still verify are kept (resume).
        // Re-verifying them reads and hashes the file: off the event loop.
        f.opening = true;
        f.hashes = Some(hashes.clone());
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let opened = tokio::task::spawn_blocking(move || {
                Chunks::open(Some(&netdir), key, &hashes, size)
            })
            .await;
            match opened {
                Ok(chunks) => {
                    let _ = events.send(Event::PartialOpened { key, chunks }).await;
                }
                Err(e) => {
                    tracing::error!(block = %key.0, "opening a partial {} download panicked: {e}", key.1)
                }
            }
        });
    }

    /// A download's partial file is open ([`Chunks::open`] on the blocking pool): chunks are
    /// asked from now on. A download dropped meanwhile just closes the file (the sweep owns
    /// leftovers).
    pub(super) fn on_partial_opened(&mut self, key: ObjectKey, chunks: Chunks) {
        let Some(f) = self.ck.get_mut(&key) else { return };
        if !f.opening {
            return;
        }
        f.opening = false;
        f.chunks = chunks;
        if f.chunks.complete() {
            self.finish_object(key);
        }
        self.schedule();
    }

    /// `modelnotfound` for an object being fetched: the peer is honest but lacks it. It is not
    /// asked again for it, and its outstanding requests (chunk hashes, chunks) are unassigned so
    /// the next `schedule` gives them to other peers at once instead of waiting for the stall
    /// timeout. Returns whether anything changed.
    pub(super) fn object_not_found(&mut self, id: u64, key: ObjectKey) -> bool {
        let Some(f) = self.ck.get_mut(&key) else { return false };
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
        let (block, kind) = key;
        tracing::debug!(peer = id, %block, freed, "peer lacks the {kind}; asking elsewhere");
        new || hashes || freed > 0
    }

    pub(super) fn on_chunk(&mut self, id: u64, key: ObjectKey, index: u32, data: Vec<u8>) {
        let Some(f) = self.ck.get_mut(&key) else { return };
        if f.req.get(&index).is_none_or(|(p, _)| *p != id) {
            // Unrequested, or a late answer to a request that stalled (its slot is free).
            return;
        }
        f.req.remove(&index);
        // The peer's slot counts exactly its outstanding requests.
        if let Some(p) = self.peers.get_mut(&id) {
            p.chunks = p.chunks.saturating_sub(1);
        }
        let Some(hashes) = &f.hashes else { return };
        let start = u64::from(index) * CHUNK_SIZE as u64;
        let want_len = (f.size - start).min(CHUNK_SIZE as u64) as usize;
        if data.len() != want_len || !verify_chunk(hashes, index as usize, &data) {
            f.skip.insert(id);
            let why = format!("{} chunk does not match the root", key.1);
            self.misbehave(id, BAN_SCORE, &why);
            self.schedule();
            return;
        }
        let stored = tokio::task::block_in_place(|| f.chunks.put(index as usize, data));
        if let Err(e) = stored {
            // Asked again by the next `schedule` (the chunk is still missing).
            let (block, kind) = key;
            tracing::warn!(%block, index, "cannot store a chunk of the {kind}: {e}");
        } else if f.chunks.complete() {
            self.finish_object(key);
        }
        self.schedule();
    }

    /// Hands a complete download to the validation worker (which deletes its partial file).
    fn finish_object(&mut self, key: ObjectKey) {
        let Some(f) = self.ck.remove(&key) else { return };
        let data = f.chunks.finish(f.size);
        let (block, kind) = key;
        let job = Job::Model { source: f.source, block, kind, data };
        if self.block_jobs.try_send(job).is_ok() {
            self.ck_checking.insert(key);
        } else {
            // A partial file stays on disk: the next fetch of the object resumes from it.
            tracing::warn!(%block, "validation queue full; {kind} dropped");
        }
    }

    /// Drops downloads of objects the node got meanwhile (deleting their partial files) and
    /// sweeps stale partial files ([`partial::sweep`]).
    pub(super) fn sweep_partials(&mut self) {
        let active: Vec<ObjectKey> = self.ck.keys().copied().collect();
        for key in active {
            if self.have_object(key) {
                if let Some(f) = self.ck.remove(&key) {
                    for (p, _) in f.req.values() {
                        if let Some(x) = self.peers.get_mut(p) {
                            x.chunks = x.chunks.saturating_sub(1);
                        }
                    }
                    f.chunks.discard();
                }
            }
        }
        let Some(dir) = self.cfg.netdir.clone() else { return };
        let mut active: HashSet<ObjectKey> = self.ck.keys().copied().collect();
        active.extend(self.ck_checking.iter().copied());
        let b = self.backend.clone();
        let wanted = |(h, kind): &ObjectKey| {
            b.header(h).is_some()
                && match kind {
                    ModelObject::Checkpoint => !b.has_checkpoint(h),
                    ModelObject::Update => !b.has_update(h),
                }
        };
        tokio::task::block_in_place(|| partial::sweep(&dir, &active, wanted, SystemTime::now()));
    }

    /// Starts queued downloads while each kind has fewer than [`max_fetches`] running.
    fn start_fetches(&mut self) {
        for kind in ModelObject::ALL {
            while self.ck.keys().filter(|(_, k)| *k == kind).count() < max_fetches(kind) {
                let Some((hash, source)) = self.ck_queue[kind as usize].pop_front() else {
                    break;
                };
                let key = (hash, kind);
                if self.ck_checking.contains(&key) || self.have_object(key) {
                    continue;
                }
                let Some(header) = self.b(|b| b.header(&hash)) else { continue };
                let Some((root, size)) = commitment(&header, kind) else {
                    tracing::debug!(%hash, "no {kind} to fetch (size 0 or over the limit)");
                    continue;
                };
                self.ck.insert(
                    key,
                    CkFetch {
                        height: header.height,
                        root,
                        size,
                        source,
                        hashes: None,
                        pages: (NO_SOURCE, Vec::new()),
                        hashes_req: None,
                        chunks: Chunks::Memory(Vec::new()),
                        opening: false,
                        req: HashMap::new(),
                        skip: HashSet::new(),
                        lacking: HashMap::new(),
                    },
                );
            }
        }
    }

    /// Starts queued downloads and sends the chunk hash and chunk requests that are due
    /// (stalled ones go to other peers).
    pub(super) fn schedule_objects(&mut self, now: Instant) {
        self.start_fetches();
        let ready = self.ready_peers();
        let stall = self.cfg.stall_timeout;
        let mut sends = Vec::new();
        let mut drop_fetch = Vec::new();
        // Updates first, lowest block first: they are what validating new blocks waits for, and
        // a large checkpoint download must not take every peer's chunk slots from them.
        let mut due: Vec<(bool, u32, ObjectKey)> =
            self.ck.iter().map(|(k, f)| (k.1 == ModelObject::Checkpoint, f.height, *k)).collect();
        due.sort_unstable();
        for (_, _, (block, kind)) in due {
            let Some(f) = self.ck.get_mut(&(block, kind)) else { continue };
            if f.opening {
                continue;
            }
            let open: Vec<u64> = ready
                .iter()
                .copied()
                .filter(|p| !f.skip.contains(p) && !f.lacking.contains_key(p))
                .collect();
            let candidates = by_model_service(&self.peers, open, f.height);
            if candidates.is_empty() {
                // Nobody left to ask; retry later from scratch (peers that said `modelnotfound`
                // only once `LACKING_RETRY` has passed: they may have fetched it meanwhile).
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
                // Pages are taken from one peer, so a list that misses the root has one author;
                // another peer starts over.
                if f.pages.0 != p {
                    f.pages = (p, Vec::new());
                }
                let start = f.pages.1.len() as u32;
                f.hashes_req = Some((p, now));
                sends.push((p, Message::GetChunkHashes { block, kind, start }));
                continue;
            }
            let mut stalled = Vec::new();
            f.req.retain(|_, (p, at)| {
                let keep = now.duration_since(*at) <= stall;
                if !keep {
                    f.skip.insert(*p);
                    stalled.push(*p);
                }
                keep
            });
            // A stalled request gives its slot back (a late answer is then ignored).
            for p in stalled {
                if let Some(x) = self.peers.get_mut(&p) {
                    x.chunks = x.chunks.saturating_sub(1);
                }
            }
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
                sends.push((p, Message::GetChunk { block, kind, index: i as u32 }));
            }
            if f.hashes.as_ref().is_some_and(|h| h.len() != n) {
                drop_fetch.push((block, kind));
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
