//! Validation off the event loop: transactions, blocks, model objects (updates and checkpoints)
//! and the miner signatures of solicited headers go to bounded queues served by worker tasks that
//! run on tokio's blocking pool (calling the blocking backend), one job at a time per queue, and
//! report back as events. The
//! manager keeps answering pings and serving peers while a 64 ms transaction, a block
//! re-evaluation or a 2000-header signature batch runs.

use std::sync::Arc;

use rnet_primitives::{Block, BlockHash, BlockHeader, Transaction, Txid, Wtxid};
use tokio::sync::mpsc;

use crate::backend::{Accepted, Backend, Rejected};
use crate::message::ModelObject;

use super::Event;
use super::partial::{ObjectData, remove_pair};
use super::sync::signatures_ok;

/// Transactions waiting for validation (all peers).
pub const TX_QUEUE: usize = 256;
/// Transactions one peer may have waiting for validation.
pub const MAX_PENDING_TXS_PER_PEER: usize = 64;
/// Blocks, updates and checkpoints waiting for validation.
pub const BLOCK_QUEUE: usize = 256;
/// Blocks one peer may have waiting for validation without our request (a decoded block with
/// many empty witness items holds ~90 MB, so the queue's job count alone bounds nothing).
pub const MAX_PENDING_UNREQUESTED_PER_PEER: usize = 2;
/// Memory (`Block::memory_usage`) of the unrequested blocks waiting for validation, all peers
/// together; one block is admitted whatever its size when none waits.
pub const MAX_PENDING_UNREQUESTED_BYTES: usize = 64 << 20;

/// Solicited `headers` answers waiting for their signature check: one per peer at a time (one
/// `getheaders` is outstanding per peer), so room for every connection of the default limit; an
/// answer that finds the queue full is checked on the event loop.
pub const HEADERS_QUEUE: usize = 128;

/// A submission for a worker.
pub(super) enum Job {
    /// A transaction from a peer.
    Tx { peer: u64, tx: Box<Transaction> },
    /// A block from a peer (`requested`: it was in the download set).
    Block { peer: u64, block: Box<Block>, requested: bool },
    /// A downloaded update or checkpoint (bytes, or a complete partial file deleted once
    /// checked); `source` sent the block.
    Model { source: u64, block: BlockHash, kind: ModelObject, data: ObjectData },
    /// A solicited `headers` answer; the headers at `fresh` need their miner signatures checked.
    Headers(HeadersReply),
}

/// A solicited `headers` answer that passed the event loop's cheap checks (continuity, a known
/// first parent), with its header ids.
pub(super) struct HeadersReply {
    /// The peer that answered.
    pub(super) peer: u64,
    /// The headers, in the peer's order.
    pub(super) headers: Vec<BlockHeader>,
    /// Their ids.
    pub(super) hashes: Vec<BlockHash>,
    /// Indices of the headers new to us when the answer arrived (the ones checked).
    pub(super) fresh: Vec<usize>,
}

impl HeadersReply {
    /// Whether the miner signature of every fresh header verifies (batched).
    pub(super) fn signatures_ok(&self) -> bool {
        let pairs: Vec<(&BlockHeader, &BlockHash)> =
            self.fresh.iter().map(|&i| (&self.headers[i], &self.hashes[i])).collect();
        signatures_ok(&pairs)
    }
}

/// A worker's verdict.
pub(super) enum Checked {
    /// `accept_tx` returned.
    Tx { peer: u64, txid: Txid, wtxid: Wtxid, result: Result<bool, Rejected> },
    /// `accept_block` returned (the block comes back for the orphan buffer).
    Block { peer: u64, block: Box<Block>, requested: bool, result: Result<Accepted, Rejected> },
    /// `accept_update` or `accept_checkpoint` returned.
    Model { source: u64, block: BlockHash, kind: ModelObject, result: Result<Accepted, Rejected> },
    /// A `headers` answer's signatures were checked (`ok`: all verify).
    Headers { reply: HeadersReply, ok: bool },
}

/// Starts a worker serving `capacity` queued jobs; returns its queue.
pub(super) fn spawn_worker(
    backend: Arc<dyn Backend>,
    events: mpsc::Sender<Event>,
    capacity: usize,
) -> mpsc::Sender<Job> {
    let (tx, mut rx) = mpsc::channel::<Job>(capacity);
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            let b = backend.clone();
            let Ok(done) = tokio::task::spawn_blocking(move || run(b.as_ref(), job)).await else {
                tracing::error!("validation job panicked");
                continue;
            };
            if events.send(Event::Checked(done)).await.is_err() {
                break;
            }
        }
    });
    tx
}

fn run(b: &dyn Backend, job: Job) -> Checked {
    match job {
        Job::Tx { peer, tx } => {
            let (txid, wtxid) = (tx.txid(), tx.wtxid());
            Checked::Tx { peer, txid, wtxid, result: b.accept_tx(*tx) }
        }
        Job::Block { peer, block, requested } => {
            let result = b.accept_block((*block).clone());
            Checked::Block { peer, block, requested, result }
        }
        Job::Model { source, block, kind, data } => {
            let files = data.files();
            let result = match (data, kind) {
                // A checkpoint file goes to the backend as a file (of any size: never read
                // into memory here).
                (ObjectData::File { part, .. }, ModelObject::Checkpoint) => {
                    b.accept_checkpoint_file(&block, &part)
                }
                (data, kind) => accept_bytes(b, block, kind, data),
            };
            if let Some((part, have)) = files {
                remove_pair(&part, &have);
            }
            Checked::Model { source, block, kind, result }
        }
        Job::Headers(reply) => {
            let ok = reply.signatures_ok();
            Checked::Headers { reply, ok }
        }
    }
}

/// Hands a downloaded object's bytes to the backend (an update, or a checkpoint kept in
/// memory because the node has no data directory).
fn accept_bytes(
    b: &dyn Backend,
    block: BlockHash,
    kind: ModelObject,
    data: ObjectData,
) -> Result<Accepted, Rejected> {
    match (data.into_bytes(), kind) {
        (Ok(bytes), ModelObject::Update) => b.accept_update(&block, bytes),
        (Ok(bytes), ModelObject::Checkpoint) => b.accept_checkpoint(&block, bytes),
        (Err(e), _) => Err(Rejected {
            invalid: false,
            reason: format!("cannot read the downloaded {kind}: {e}"),
        }),
    }
}
