//! What the network needs from the node: the chain, the mempool and checkpoints. `rnet-node`
//! implements [`Backend`] for its `Node`; tests can implement it in memory.

use std::sync::Arc;

use rnet_primitives::{Block, BlockHash, BlockHeader, Transaction, Txid};

/// A successful block or checkpoint submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// The active tip changed.
    Connected,
    /// Stored on a side branch.
    Stored,
    /// Stored; the checkpoint of this block (or an ancestor) is needed to validate it.
    NeedCheckpoint,
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
    /// Supplies a block's checkpoint.
    fn accept_checkpoint(&self, hash: &BlockHash, bytes: Vec<u8>) -> Result<Accepted, Rejected>;
    /// A retained checkpoint.
    fn checkpoint(&self, hash: &BlockHash) -> Option<Arc<Vec<u8>>>;
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
    /// Headers of a `headers` reply whose signatures and linkage passed, before their blocks
    /// are downloaded (the node's `-assumevalid` learns the assumed block's ancestry from them).
    /// The default ignores them.
    fn headers_checked(&self, _headers: &[BlockHeader]) {}
}
