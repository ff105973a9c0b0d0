//! Serving blocks' model objects, updates and checkpoints (`getchunkhashes`, `getchunk`), without
//! blocking the event loop.
//!
//! Loading a stored checkpoint checks its root, which hashes the whole file: seconds at mainnet
//! sizes, and longer while an evaluation or the miner occupies the hashing threads. So the
//! manager answers from the objects it loaded last (the last [`KEPT_CHECKPOINTS`] checkpoints,
//! the last [`KEPT_UPDATES`] updates), and hands any other (block, kind) to a loader task on the
//! blocking pool. A checkpoint the backend stores as a file is kept as the open file and its
//! chunk hashes: each `getchunk` reads one chunk from it, so serving holds one chunk per queued
//! request in memory whatever the checkpoint's size. Requests for an object being loaded wait
//! (bounded) and are answered when the load reports back as an event; one load runs per (block,
//! kind) however many peers ask for it. Objects asked while the loader's queue is full wait their
//! turn in [`Serving`]'s backlog: `modelnotfound` means the node lacks the object (the asker
//! leaves it out of that download for a minute), so a busy node never says it.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rnet_model::checkpoint::CHUNK_SIZE;
use tokio::sync::mpsc;

use crate::backend::{Backend, StoredCheckpoint};
use crate::message::{MAX_CHUNK_HASHES, Message, ModelObject};

use super::checkpoints::ObjectKey;
use super::peer::Outbound;
use super::{CHUNK_FLOOD_SCORE, Event, MAX_QUEUED_CHUNKS, Manager};

/// Distinct objects queued to the loader task at once; further ones wait in the backlog.
pub const MAX_LOADING: usize = 8;
/// Requests (all peers) that may wait for objects to load; beyond it they get `modelnotfound`
/// (it also bounds the backlog: every object in it has a waiting request).
pub const MAX_WAITING_REQUESTS: usize = 4096;
/// Requests one peer may have waiting for loads; beyond it that peer gets `modelnotfound`, so
/// one peer cannot queue thousands of loads ahead of everyone else's. An honest downloader has
/// at most `MAX_UPDATE_FETCHES + MAX_CHECKPOINT_FETCHES` = 20 hash lists and 4 chunks
/// outstanding with a peer.
pub const MAX_WAITING_PER_PEER: usize = 64;
/// Loaded updates kept to serve chunks from (at most 8 MiB each): peers syncing ask for the
/// updates of consecutive blocks, often several at once.
pub const KEPT_UPDATES: usize = 8;
/// Loaded checkpoints kept to serve chunks from (open files, or bytes for a backend that keeps
/// them in memory).
pub const KEPT_CHECKPOINTS: usize = 2;

/// What a peer asked of an object.
#[derive(Clone, Copy, Debug)]
pub(super) enum Request {
    /// `getchunkhashes` of the page starting at the given chunk index.
    Hashes(u32),
    /// `getchunk` of the given index.
    Chunk(u32),
}

/// A chunk to send: a shared buffer and the range of it that is the chunk.
type ChunkSlice = (Arc<Vec<u8>>, Range<usize>);

/// Where a loaded object's chunks are read from.
#[derive(Debug)]
pub(super) enum Source {
    /// Bytes in memory (shared with the backend).
    Bytes(Arc<Vec<u8>>),
    /// An open file of `size` bytes.
    File { file: Mutex<std::fs::File>, size: u64 },
}

impl Source {
    /// The object's size in bytes.
    fn len(&self) -> u64 {
        match self {
            Source::Bytes(b) => b.len() as u64,
            Source::File { size, .. } => *size,
        }
    }

    /// Chunk `index` as a buffer and the range of it to send; `None` if the index is past the
    /// end. Bytes are shared (no copy); a file chunk is read into a new buffer.
    fn chunk(&self, index: u32) -> Option<io::Result<ChunkSlice>> {
        let start = u64::from(index).checked_mul(CHUNK_SIZE as u64)?;
        if start >= self.len() {
            return None;
        }
        let len = (self.len() - start).min(CHUNK_SIZE as u64) as usize;
        Some(match self {
            Source::Bytes(b) => Ok((b.clone(), start as usize..start as usize + len)),
            Source::File { file, .. } => {
                let mut buf = vec![0u8; len];
                let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                f.seek(SeekFrom::Start(start))
                    .and_then(|_| f.read_exact(&mut buf))
                    .map(|()| (Arc::new(buf), 0..len))
            }
        })
    }
}

/// A loaded object: where its chunks are and its chunk hashes.
type Object = (Arc<Source>, Vec<[u8; 32]>);

/// A finished load: the object, or `None` if it is not stored.
pub(super) struct Loaded {
    key: ObjectKey,
    object: Option<Object>,
}

/// The manager's serving state.
pub(super) struct Serving {
    /// The objects loaded last, per kind (indexed by `ModelObject as usize`), newest last:
    /// chunks are served from them without the loader.
    kept: [VecDeque<(ObjectKey, Arc<Source>)>; 2],
    /// Requests waiting for an object's load, in arrival order.
    waiting: HashMap<ObjectKey, Vec<(u64, Request)>>,
    /// Total entries of `waiting`.
    waiting_len: usize,
    /// Entries of `waiting` per peer.
    waiting_by_peer: HashMap<u64, usize>,
    /// The loader's queue.
    loads: mpsc::Sender<ObjectKey>,
    /// Objects with waiting requests not yet handed to the loader (its queue was full), in
    /// arrival order; handed over as loads finish.
    backlog: VecDeque<ObjectKey>,
}

/// How many loaded objects of a kind are kept.
fn kept_limit(kind: ModelObject) -> usize {
    match kind {
        ModelObject::Checkpoint => KEPT_CHECKPOINTS,
        ModelObject::Update => KEPT_UPDATES,
    }
}

impl Serving {
    /// Starts the loader task; its results come back as [`Event::Loaded`].
    pub(super) fn start(backend: Arc<dyn Backend>, events: mpsc::Sender<Event>) -> Self {
        let (loads, mut rx) = mpsc::channel::<ObjectKey>(MAX_LOADING);
        tokio::spawn(async move {
            while let Some(key) = rx.recv().await {
                let b = backend.clone();
                let Ok(loaded) = tokio::task::spawn_blocking(move || load(b.as_ref(), key)).await
                else {
                    tracing::error!(block = %key.0, "{} load panicked", key.1);
                    continue;
                };
                if events.send(Event::Loaded(loaded)).await.is_err() {
                    break;
                }
            }
        });
        Self {
            kept: [VecDeque::new(), VecDeque::new()],
            waiting: HashMap::new(),
            waiting_len: 0,
            waiting_by_peer: HashMap::new(),
            loads,
            backlog: VecDeque::new(),
        }
    }

    /// Hands backlogged objects to the loader, oldest first, while its queue has room (a
    /// closed queue, at shutdown, leaves them: nobody answers any more).
    fn feed_loader(&mut self) {
        while let Some(&key) = self.backlog.front() {
            if self.loads.try_send(key).is_err() {
                break;
            }
            self.backlog.pop_front();
        }
    }

    /// The kept source of an object.
    fn kept(&self, key: &ObjectKey) -> Option<Arc<Source>> {
        self.kept[key.1 as usize].iter().find(|(k, _)| k == key).map(|(_, b)| b.clone())
    }

    /// Keeps a loaded object (dropping the oldest of its kind over the limit).
    fn keep(&mut self, key: ObjectKey, bytes: Arc<Source>) {
        let list = &mut self.kept[key.1 as usize];
        list.retain(|(k, _)| *k != key);
        list.push_back((key, bytes));
        while list.len() > kept_limit(key.1) {
            list.pop_front();
        }
    }
}

/// Reads an update or checkpoint through the backend (which checks it against its root) and
/// hashes its chunks for `getchunkhashes`.
fn load(b: &dyn Backend, key: ObjectKey) -> Loaded {
    let (block, kind) = key;
    let in_memory = |bytes: Arc<Vec<u8>>| {
        let hashes = rnet_model::checkpoint::chunk_hashes(&bytes);
        (Arc::new(Source::Bytes(bytes)), hashes)
    };
    let object = match kind {
        ModelObject::Checkpoint => b.checkpoint_for_serving(&block).map(|c| match c {
            StoredCheckpoint::Bytes(bytes) => in_memory(bytes),
            StoredCheckpoint::File { file, size, chunk_hashes } => {
                (Arc::new(Source::File { file: Mutex::new(file), size }), chunk_hashes)
            }
        }),
        ModelObject::Update => b.update(&block).map(in_memory),
    };
    Loaded { key, object }
}

/// The `chunkhashes` page of an object's `hashes` starting at chunk `start`, at most `page`
/// hashes (clamped to 1..=[`MAX_CHUNK_HASHES`]); `None` if `start` is not a chunk of the object.
pub(super) fn hash_page(
    key: ObjectKey,
    hashes: &[[u8; 32]],
    start: u32,
    page: usize,
) -> Option<Message> {
    let (from, total) = (start as usize, u32::try_from(hashes.len()).ok()?);
    if from >= hashes.len() {
        return None;
    }
    let to = from.saturating_add(page.clamp(1, MAX_CHUNK_HASHES)).min(hashes.len());
    let (block, kind) = key;
    Some(Message::ChunkHashes { block, kind, start, total, hashes: hashes[from..to].to_vec() })
}

impl Manager {
    /// Answers `getchunkhashes`: a page from the cache of recently served hashes, or after a
    /// load.
    pub(super) fn serve_chunk_hashes(&mut self, id: u64, key: ObjectKey, start: u32) {
        if !self.take_chunk_token(id) {
            return;
        }
        if let Some(hashes) = self.chunk_hashes.get(&key) {
            let page = hash_page(key, hashes, start, self.cfg.chunk_hashes_page);
            self.send_hash_page(id, page);
            return;
        }
        self.wait_for_load(id, key, Request::Hashes(start));
    }

    /// Sends a page of chunk hashes; `None` (a page that starts past the object) is not
    /// answered and scores like a chunk index out of range.
    fn send_hash_page(&mut self, id: u64, page: Option<Message>) {
        match page {
            Some(m) => self.send(id, m),
            None => self.misbehave(id, 10, "chunk hash page out of range"),
        }
    }

    /// Answers `getchunk`: the chunk is queued as a slice of the shared object bytes (no
    /// copy). Requests over the peer's rate limit, or while [`MAX_QUEUED_CHUNKS`] of its chunks
    /// are still unsent, are not served and score [`CHUNK_FLOOD_SCORE`].
    pub(super) fn serve_chunk(&mut self, id: u64, key: ObjectKey, index: u32) {
        if !self.take_chunk_token(id) {
            return;
        }
        match self.serving.kept(&key) {
            Some(bytes) => self.send_chunk(id, key, index, bytes),
            None => self.wait_for_load(id, key, Request::Chunk(index)),
        }
    }

    /// A load finished: cache it and answer everyone who waited for it.
    pub(super) fn on_loaded(&mut self, loaded: Loaded) {
        let Loaded { key, object } = loaded;
        let (block, kind) = key;
        // The loader took this object off its queue: there is room for the backlog's next.
        self.serving.feed_loader();
        let waiting = self.serving.waiting.remove(&key).unwrap_or_default();
        self.serving.waiting_len -= waiting.len();
        for (id, _) in &waiting {
            if let Some(n) = self.serving.waiting_by_peer.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    self.serving.waiting_by_peer.remove(id);
                }
            }
        }
        let Some((bytes, hashes)) = object else {
            for (id, _) in waiting {
                self.send(id, Message::ModelNotFound { block, kind });
            }
            return;
        };
        self.chunk_hashes.insert(key, hashes.clone());
        self.serving.keep(key, bytes.clone());
        for (id, request) in waiting {
            match request {
                Request::Hashes(start) => {
                    let page = hash_page(key, &hashes, start, self.cfg.chunk_hashes_page);
                    self.send_hash_page(id, page)
                }
                Request::Chunk(index) => self.send_chunk(id, key, index, bytes.clone()),
            }
        }
    }

    /// Parks a request until the object is loaded, starting the load if none runs (or queueing
    /// it in the backlog while the loader's queue is full). Without room for another waiting
    /// request ([`MAX_WAITING_REQUESTS`], or [`MAX_WAITING_PER_PEER`] of this peer's) the peer
    /// gets `modelnotfound` and asks elsewhere.
    fn wait_for_load(&mut self, id: u64, key: ObjectKey, request: Request) {
        let s = &mut self.serving;
        let peer_waiting = s.waiting_by_peer.get(&id).copied().unwrap_or(0);
        if s.waiting_len < MAX_WAITING_REQUESTS && peer_waiting < MAX_WAITING_PER_PEER {
            if !s.waiting.contains_key(&key) {
                // Through the backlog, so loads start in the order they were asked for.
                s.backlog.push_back(key);
                s.feed_loader();
            }
            s.waiting.entry(key).or_default().push((id, request));
            s.waiting_len += 1;
            *s.waiting_by_peer.entry(id).or_default() += 1;
        } else {
            let (block, kind) = key;
            tracing::debug!(%block, peer = id, "{kind} serving busy; answering modelnotfound");
            self.send(id, Message::ModelNotFound { block, kind });
        }
    }

    /// Queues chunk `index` of `source` for peer `id` (scoring an index out of range or a peer
    /// whose earlier chunks are still unread). A file chunk is read here (one chunk, from the
    /// page cache as a rule); a read error answers `modelnotfound` so the peer asks elsewhere.
    fn send_chunk(&mut self, id: u64, key: ObjectKey, index: u32, source: Arc<Source>) {
        let Some(p) = self.peers.get(&id) else { return };
        if p.io.queued_chunks.load(Ordering::Relaxed) >= MAX_QUEUED_CHUNKS {
            self.misbehave(id, CHUNK_FLOOD_SCORE, "getchunk while its chunks are unread");
            return;
        }
        let (block, kind) = key;
        match tokio::task::block_in_place(|| source.chunk(index)) {
            None => self.misbehave(id, 10, "chunk index out of range"),
            Some(Ok((bytes, range))) => {
                self.send_out(id, Outbound::Chunk { block, kind, index, bytes, range })
            }
            Some(Err(e)) => {
                tracing::warn!(%block, index, "cannot read a chunk of the stored {kind}: {e}");
                self.send(id, Message::ModelNotFound { block, kind });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_primitives::BlockHash;

    /// Pages are slices of the list from `start`, the page size clamped to
    /// 1..=`MAX_CHUNK_HASHES`, the total always the list's length; a start past the end has none.
    #[test]
    fn hash_pages_slice_the_cached_list() {
        let key = (BlockHash([1; 32]), ModelObject::Checkpoint);
        let hashes: Vec<[u8; 32]> = (0..10_000u32)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..4].copy_from_slice(&i.to_le_bytes());
                h
            })
            .collect();
        let got = |start: u32, page: usize| match hash_page(key, &hashes, start, page) {
            Some(Message::ChunkHashes { start: s, total, hashes: h, .. }) => {
                assert_eq!((s, total), (start, 10_000));
                Some((h.first().copied(), h.len()))
            }
            None => None,
            Some(m) => panic!("not a page: {m:?}"),
        };
        assert_eq!(got(0, MAX_CHUNK_HASHES), Some((Some(hashes[0]), MAX_CHUNK_HASHES)));
        assert_eq!(got(8192, MAX_CHUNK_HASHES), Some((Some(hashes[8192]), 10_000 - 8192)));
        assert_eq!(got(5, usize::MAX), Some((Some(hashes[5]), MAX_CHUNK_HASHES)), "clamped");
        assert_eq!(got(5, 0), Some((Some(hashes[5]), 1)), "0 counts as 1");
        assert_eq!(got(9_999, 3), Some((Some(hashes[9_999]), 1)));
        assert_eq!(got(10_000, 3), None);
        assert_eq!(got(u32::MAX, 3), None);
        assert_eq!(hash_page(key, &[], 0, 3), None);
    }
}
