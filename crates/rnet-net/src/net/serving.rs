//! Checkpoint serving (`getchunkhashes`, `getchunk`) without blocking the event loop.
//!
//! Loading a stored checkpoint checks its root, which hashes the whole file: seconds at mainnet
//! sizes, and longer while an evaluation or the miner occupies the hashing threads. So the
//! manager answers from the checkpoint it last loaded, and hands any other block to a loader task
//! on the blocking pool. Requests for a block being loaded wait (bounded) and are answered when
//! the load reports back as an event; one load runs per block however many peers ask for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rnet_model::checkpoint::CHUNK_SIZE;
use rnet_primitives::BlockHash;
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::message::{Inv, Message};

use super::peer::Outbound;
use super::{CHUNK_FLOOD_SCORE, Event, MAX_QUEUED_CHUNKS, Manager};

/// Distinct checkpoints that may be waiting to load at once.
pub const MAX_LOADING: usize = 8;
/// Requests (all peers) that may wait for checkpoints to load; beyond it they get `notfound`.
pub const MAX_WAITING_REQUESTS: usize = 4096;

/// What a peer asked of a checkpoint.
#[derive(Clone, Copy, Debug)]
pub(super) enum Request {
    /// `getchunkhashes`.
    Hashes,
    /// `getchunk` of the given index.
    Chunk(u32),
}

/// A loaded checkpoint: its bytes (shared with the backend) and its chunk hashes.
type Checkpoint = (Arc<Vec<u8>>, Vec<[u8; 32]>);

/// A finished load: the checkpoint, or `None` if it is not stored.
pub(super) struct Loaded {
    block: BlockHash,
    checkpoint: Option<Checkpoint>,
}

/// The manager's serving state.
pub(super) struct Serving {
    /// The checkpoint loaded last (chunks are served from it without the loader).
    current: Option<(BlockHash, Arc<Vec<u8>>)>,
    /// Requests waiting for a block's load, in arrival order.
    waiting: HashMap<BlockHash, Vec<(u64, Request)>>,
    /// Total entries of `waiting`.
    waiting_len: usize,
    /// The loader's queue.
    loads: mpsc::Sender<BlockHash>,
}

impl Serving {
    /// Starts the loader task; its results come back as [`Event::Loaded`].
    pub(super) fn start(backend: Arc<dyn Backend>, events: mpsc::Sender<Event>) -> Self {
        let (loads, mut rx) = mpsc::channel::<BlockHash>(MAX_LOADING);
        tokio::spawn(async move {
            while let Some(block) = rx.recv().await {
                let b = backend.clone();
                let Ok(loaded) = tokio::task::spawn_blocking(move || load(b.as_ref(), block)).await
                else {
                    tracing::error!(%block, "checkpoint load panicked");
                    continue;
                };
                if events.send(Event::Loaded(loaded)).await.is_err() {
                    break;
                }
            }
        });
        Self { current: None, waiting: HashMap::new(), waiting_len: 0, loads }
    }
}

/// Reads a checkpoint through the backend (which checks it against its root) and hashes its
/// chunks for `getchunkhashes`.
fn load(b: &dyn Backend, block: BlockHash) -> Loaded {
    let checkpoint = b.checkpoint(&block).map(|bytes| {
        let hashes = rnet_model::checkpoint::chunk_hashes(&bytes);
        (bytes, hashes)
    });
    Loaded { block, checkpoint }
}

impl Manager {
    /// Answers `getchunkhashes`: from the cache of recently served hashes, or after a load.
    pub(super) fn serve_chunk_hashes(&mut self, id: u64, block: BlockHash) {
        if !self.take_chunk_token(id) {
            return;
        }
        if let Some(hashes) = self.chunk_hashes.get(&block) {
            let hashes = hashes.clone();
            self.send(id, Message::ChunkHashes { block, hashes });
            return;
        }
        self.wait_for_load(id, block, Request::Hashes);
    }

    /// Answers `getchunk`: the chunk is queued as a slice of the shared checkpoint bytes (no
    /// copy). Requests over the peer's rate limit, or while [`MAX_QUEUED_CHUNKS`] of its chunks
    /// are still unsent, are not served and score [`CHUNK_FLOOD_SCORE`].
    pub(super) fn serve_chunk(&mut self, id: u64, block: BlockHash, index: u32) {
        if !self.take_chunk_token(id) {
            return;
        }
        match &self.serving.current {
            Some((b, bytes)) if *b == block => {
                let bytes = bytes.clone();
                self.send_chunk(id, block, index, bytes);
            }
            _ => self.wait_for_load(id, block, Request::Chunk(index)),
        }
    }

    /// A load finished: cache it and answer everyone who waited for it.
    pub(super) fn on_loaded(&mut self, loaded: Loaded) {
        let Loaded { block, checkpoint } = loaded;
        let waiting = self.serving.waiting.remove(&block).unwrap_or_default();
        self.serving.waiting_len -= waiting.len();
        let Some((bytes, hashes)) = checkpoint else {
            for (id, _) in waiting {
                self.send(id, Message::NotFound(vec![Inv::block(block)]));
            }
            return;
        };
        self.chunk_hashes.insert(block, hashes.clone());
        self.serving.current = Some((block, bytes.clone()));
        for (id, request) in waiting {
            match request {
                Request::Hashes => {
                    self.send(id, Message::ChunkHashes { block, hashes: hashes.clone() })
                }
                Request::Chunk(index) => self.send_chunk(id, block, index, bytes.clone()),
            }
        }
    }

    /// Parks a request until `block`'s checkpoint is loaded, starting the load if none runs.
    /// Without room (too many waiting requests or loads) the peer gets `notfound` and asks
    /// elsewhere.
    fn wait_for_load(&mut self, id: u64, block: BlockHash, request: Request) {
        let s = &mut self.serving;
        let room = s.waiting_len < MAX_WAITING_REQUESTS;
        let started = s.waiting.contains_key(&block);
        if room && (started || s.loads.try_send(block).is_ok()) {
            s.waiting.entry(block).or_default().push((id, request));
            s.waiting_len += 1;
        } else {
            tracing::debug!(%block, peer = id, "checkpoint serving busy; answering notfound");
            self.send(id, Message::NotFound(vec![Inv::block(block)]));
        }
    }

    /// Queues chunk `index` of `bytes` for peer `id` (scoring an index out of range or a peer
    /// whose earlier chunks are still unread).
    fn send_chunk(&mut self, id: u64, block: BlockHash, index: u32, bytes: Arc<Vec<u8>>) {
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
        self.send_out(id, Outbound::Chunk { block, index, bytes, range: start..end });
    }
}
