//! Serving blocks' model objects, updates and checkpoints (`getchunkhashes`, `getchunk`), without
//! blocking the event loop.
//!
//! Loading a stored checkpoint checks its root, which hashes the whole file: seconds at mainnet
//! sizes, and longer while an evaluation or the miner occupies the hashing threads. So the
//! manager answers from the objects it loaded last (the last checkpoint, the last
//! [`KEPT_UPDATES`] updates), and hands any other (block, kind) to a loader task on the blocking
//! pool. Requests for an object being loaded wait (bounded) and are answered when the load
//! reports back as an event; one load runs per (block, kind) however many peers ask for it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rnet_model::checkpoint::CHUNK_SIZE;
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::message::{Message, ModelObject};

use super::checkpoints::ObjectKey;
use super::peer::Outbound;
use super::{CHUNK_FLOOD_SCORE, Event, MAX_QUEUED_CHUNKS, Manager};

/// Distinct objects that may be waiting to load at once.
pub const MAX_LOADING: usize = 8;
/// Requests (all peers) that may wait for objects to load; beyond it they get `modelnotfound`.
pub const MAX_WAITING_REQUESTS: usize = 4096;
/// Loaded updates kept to serve chunks from (at most 8 MiB each): peers syncing ask for the
/// updates of consecutive blocks, often several at once.
pub const KEPT_UPDATES: usize = 8;
/// Loaded checkpoints kept to serve chunks from (up to 1 GiB each).
pub const KEPT_CHECKPOINTS: usize = 1;

/// What a peer asked of an object.
#[derive(Clone, Copy, Debug)]
pub(super) enum Request {
    /// `getchunkhashes`.
    Hashes,
    /// `getchunk` of the given index.
    Chunk(u32),
}

/// A loaded object: its bytes (shared with the backend) and its chunk hashes.
type Object = (Arc<Vec<u8>>, Vec<[u8; 32]>);

/// A finished load: the object, or `None` if it is not stored.
pub(super) struct Loaded {
    key: ObjectKey,
    object: Option<Object>,
}

/// The manager's serving state.
pub(super) struct Serving {
    /// The objects loaded last, per kind (indexed by `ModelObject as usize`), newest last:
    /// chunks are served from them without the loader.
    kept: [VecDeque<(ObjectKey, Arc<Vec<u8>>)>; 2],
    /// Requests waiting for an object's load, in arrival order.
    waiting: HashMap<ObjectKey, Vec<(u64, Request)>>,
    /// Total entries of `waiting`.
    waiting_len: usize,
    /// The loader's queue.
    loads: mpsc::Sender<ObjectKey>,
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
            loads,
        }
    }

    /// The kept bytes of an object.
    fn kept(&self, key: &ObjectKey) -> Option<Arc<Vec<u8>>> {
        self.kept[key.1 as usize].iter().find(|(k, _)| k == key).map(|(_, b)| b.clone())
    }

    /// Keeps a loaded object (dropping the oldest of its kind over the limit).
    fn keep(&mut self, key: ObjectKey, bytes: Arc<Vec<u8>>) {
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
    let bytes = match kind {
        ModelObject::Checkpoint => b.checkpoint(&block),
        ModelObject::Update => b.update(&block),
    };
    let object = bytes.map(|bytes| {
        let hashes = rnet_model::checkpoint::chunk_hashes(&bytes);
        (bytes, hashes)
    });
    Loaded { key, object }
}

impl Manager {
    /// Answers `getchunkhashes`: from the cache of recently served hashes, or after a load.
    pub(super) fn serve_chunk_hashes(&mut self, id: u64, key: ObjectKey) {
        if !self.take_chunk_token(id) {
            return;
        }
        if let Some(hashes) = self.chunk_hashes.get(&key) {
            let hashes = hashes.clone();
            let (block, kind) = key;
            self.send(id, Message::ChunkHashes { block, kind, hashes });
            return;
        }
        self.wait_for_load(id, key, Request::Hashes);
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
        let waiting = self.serving.waiting.remove(&key).unwrap_or_default();
        self.serving.waiting_len -= waiting.len();
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
                Request::Hashes => {
                    self.send(id, Message::ChunkHashes { block, kind, hashes: hashes.clone() })
                }
                Request::Chunk(index) => self.send_chunk(id, key, index, bytes.clone()),
            }
        }
    }

    /// Parks a request until the object is loaded, starting the load if none runs. Without room
    /// (too many waiting requests or loads) the peer gets `modelnotfound` and asks elsewhere.
    fn wait_for_load(&mut self, id: u64, key: ObjectKey, request: Request) {
        let s = &mut self.serving;
        let room = s.waiting_len < MAX_WAITING_REQUESTS;
        let started = s.waiting.contains_key(&key);
        if room && (started || s.loads.try_send(key).is_ok()) {
            s.waiting.entry(key).or_default().push((id, request));
            s.waiting_len += 1;
        } else {
            let (block, kind) = key;
            tracing::debug!(%block, peer = id, "{kind} serving busy; answering modelnotfound");
            self.send(id, Message::ModelNotFound { block, kind });
        }
    }

    /// Queues chunk `index` of `bytes` for peer `id` (scoring an index out of range or a peer
    /// whose earlier chunks are still unread).
    fn send_chunk(&mut self, id: u64, key: ObjectKey, index: u32, bytes: Arc<Vec<u8>>) {
        let Some(p) = self.peers.get(&id) else { return };
        if p.io.queued_chunks.load(Ordering::Relaxed) >= MAX_QUEUED_CHUNKS {
            self.misbehave(id, CHUNK_FLOOD_SCORE, "getchunk while its chunks are unread");
            return;
        }
        let start = (index as usize).saturating_mul(CHUNK_SIZE);
        if start >= bytes.len() {
            self.misbehave(id, 10, "chunk index out of range");
            return;
        }
        let end = start.saturating_add(CHUNK_SIZE).min(bytes.len());
        let (block, kind) = key;
        self.send_out(id, Outbound::Chunk { block, kind, index, bytes, range: start..end });
    }
}
