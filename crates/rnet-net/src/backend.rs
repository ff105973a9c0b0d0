//! What the network needs from the node: the chain, the mempool and the blocks' model objects
//! (each block's model update, and whole checkpoints). `rnet-node` implements [`Backend`] for its
//! `Node`; tests can implement it in memory.

use std::path::Path;
use std::sync::Arc;

use rnet_primitives::{Block, BlockHash, BlockHeader, Transaction, Txid};

/// A successful block, update or checkpoint submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// The active tip changed.
    Connected,
    /// Stored on a side branch.
    Stored,
    /// Stored; the update of this block is needed to validate it (the network fetches it and
    /// hands it to [`Backend::accept_update`]).
    NeedUpdate,
    /// Already known.
    AlreadyHave,
    /// The parent is unknown (nothing stored).
    Orphan(BlockHash),
}

/// A refused submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The peer broke a rule (score it); false for local failures.
    pub invalid: bool,
    /// Why.
    pub reason: String,
}

/// A stored checkpoint as the backend hands it out for serving.
#[derive(Debug)]
pub enum StoredCheckpoint {
    /// Its bytes, in memory.
    Bytes(Arc<Vec<u8>>),
    /// An open file of `size` bytes whose chunk hashes were checked against the committed root:
    /// chunks are read from it on demand, so serving a checkpoint of any size holds one chunk
    /// per request in memory.
    File {
        /// The open file.
        file: std::fs::File,
        /// Its size in bytes.
        size: u64,
        /// Keccak-256d of each chunk, in order.
        chunk_hashes: Vec<[u8; 32]>,
    },
}

/// The node as the network sees it. Methods block (they lock the chainstate).
pub trait Backend: Send + Sync + 'static {
    /// Active tip `(height, chainwork, hash)`.
    fn best(&self) -> (u32, u128, BlockHash);
    /// A block locator of the active chain (tip first, then exponentially sparser, genesis).
    fn locator(&self) -> Vec<BlockHash>;
    /// Active-chain headers after the first locator hash found on the active chain (genesis if
    /// none), up to `stop` or `max`.
    fn headers_after(
        &self,
        locator: &[BlockHash],
        stop: &BlockHash,
        max: usize,
    ) -> Vec<BlockHeader>;
    /// Whether the block is stored (with its data) or known invalid.
    fn has_block(&self, hash: &BlockHash) -> bool;
    /// A stored header.
    fn header(&self, hash: &BlockHash) -> Option<BlockHeader>;
    /// A stored block.
    fn block(&self, hash: &BlockHash) -> Option<Block>;
    /// Submits a block from the network.
    fn accept_block(&self, block: Block) -> Result<Accepted, Rejected>;
    /// Supplies a block's model update: bytes whose chunks matched the header's `update_root`
    /// and whose length is its `update_size`.
    fn accept_update(&self, hash: &BlockHash, bytes: Vec<u8>) -> Result<Accepted, Rejected>;
    /// A retained model update (served to peers).
    fn update(&self, hash: &BlockHash) -> Option<Arc<Vec<u8>>>;
    /// Whether a block's model update is stored.
    fn has_update(&self, hash: &BlockHash) -> bool;
    /// Supplies a block's whole checkpoint: bytes whose chunks matched the header's
    /// `checkpoint_root` and whose length is its `checkpoint_size`.
    fn accept_checkpoint(&self, hash: &BlockHash, bytes: Vec<u8>) -> Result<Accepted, Rejected>;
    /// A completed checkpoint download, a file the backend may take (move) or delete: the same
    /// checks as [`Backend::accept_checkpoint`], without reading the file into memory where the
    /// backend can. The default reads it and calls [`Backend::accept_checkpoint`].
    fn accept_checkpoint_file(&self, hash: &BlockHash, path: &Path) -> Result<Accepted, Rejected> {
        match std::fs::read(path) {
            Ok(bytes) => self.accept_checkpoint(hash, bytes),
            Err(e) => Err(Rejected {
                invalid: false,
                reason: format!("cannot read the downloaded checkpoint: {e}"),
            }),
        }
    }
    /// A retained checkpoint (served to peers).
    fn checkpoint(&self, hash: &BlockHash) -> Option<Arc<Vec<u8>>>;
    /// A retained checkpoint for serving, as a file where the backend stores one. The default
    /// is [`Backend::checkpoint`]'s bytes.
    fn checkpoint_for_serving(&self, hash: &BlockHash) -> Option<StoredCheckpoint> {
        self.checkpoint(hash).map(StoredCheckpoint::Bytes)
    }
    /// Whether a block's checkpoint is stored.
    fn has_checkpoint(&self, hash: &BlockHash) -> bool;
    /// Txids in the mempool.
    fn mempool_txids(&self) -> Vec<Txid>;
    /// A mempool transaction.
    fn tx(&self, txid: &Txid) -> Option<Transaction>;
    /// Submits a transaction from the network (`Ok(false)`: already known).
    fn accept_tx(&self, tx: Transaction) -> Result<bool, Rejected>;
    /// Up to `max` blocks whose checkpoints the node lacks and wants from peers (missing after a
    /// crash, dropped as damaged, pruned from the tip), most useful first. Polled every few
    /// seconds; the default wants nothing.
    fn wanted_checkpoints(&self, _max: usize) -> Vec<BlockHash> {
        Vec::new()
    }
    /// Up to `max` blocks whose data is stored but whose model update is not, which the node
    /// wants from peers (lost in a crash, or the block came without it), most useful first.
    /// Polled with [`Backend::wanted_checkpoints`]; the default wants nothing.
    fn wanted_updates(&self, _max: usize) -> Vec<BlockHash> {
        Vec::new()
    }
    /// Headers of a `headers` reply whose signatures and linkage passed, before their blocks
    /// are downloaded (the node's `-assumevalid` learns the assumed block's ancestry from them).
    /// The default ignores them.
    fn headers_checked(&self, _headers: &[BlockHeader]) {}
}
