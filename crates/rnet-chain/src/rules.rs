//! The consensus rules the chainstate applies, behind a small trait.
//!
//! [`ConsensusRules`] is the production implementation: it forwards every question to
//! `rnet_consensus` with one [`ChainParams`]. The trait exists so that storage-level tests
//! (crash injection, long reorgs, expiry sweeps) can drive the chainstate with synthetic blocks
//! and effects without training a model for every block; nothing else should implement it.

use rnet_consensus::BlockError;
use rnet_consensus::ChainParams;
use rnet_consensus::{BlockEffects, HeaderChain, HeaderSummary, UtxoView};
use rnet_primitives::{Block, BlockHeader, EvalSample, Network};

/// What the chainstate asks of consensus. See `rnet_consensus::validation` for the meaning of
/// each check; every method is deterministic.
pub trait ChainRules: Send + Sync {
    /// The network these rules belong to (recorded in the database and checked on open).
    fn network(&self) -> Network;

    /// The genesis block.
    fn genesis_block(&self) -> Block;

    /// The summary of the genesis block.
    fn genesis_summary(&self) -> HeaderSummary;

    /// The canonical bytes of the genesis checkpoint.
    fn genesis_checkpoint(&self) -> Vec<u8>;

    /// Context-free block checks (signature, merkle root, transaction syntax, size).
    fn check_block(&self, block: &Block) -> Result<(), BlockError>;

    /// Header checks against the branch the header extends (`chain.tip()` is its parent).
    fn check_header_context(
        &self,
        header: &BlockHeader,
        chain: &dyn HeaderChain,
        now: u64,
    ) -> Result<(), BlockError>;

    /// Proof-of-Training: the update applied to the grown parent gives the committed
    /// checkpoint, the sample is the one the header draws, and the checkpoint and the parent's
    /// checkpoint evaluate on it to the header's `val_loss` and `parent_loss`, which differ by
    /// at least the header's required improvement. Returns the block's checkpoint bytes.
    fn check_proof_of_training(
        &self,
        header: &BlockHeader,
        parent: &HeaderSummary,
        sample: &EvalSample,
        parent_checkpoint: &[u8],
        update: &[u8],
    ) -> Result<Vec<u8>, BlockError>;

    /// Proof-of-Training of a block under `-assumevalid`: everything
    /// [`ChainRules::check_proof_of_training`] checks except the evaluations. The default
    /// evaluates anyway (rules without a cheaper path stay correct).
    fn check_proof_of_training_assumed(
        &self,
        header: &BlockHeader,
        parent: &HeaderSummary,
        sample: &EvalSample,
        parent_checkpoint: &[u8],
        update: &[u8],
    ) -> Result<Vec<u8>, BlockError> {
        self.check_proof_of_training(header, parent, sample, parent_checkpoint, update)
    }

    /// The summary of `header` on top of `chain.tip()` before its transactions are connected
    /// (fork choice uses it to check Proof-of-Training along a candidate branch).
    fn summarize_header(&self, header: &BlockHeader, chain: &dyn HeaderChain) -> HeaderSummary;

    /// Validates the block's transactions against the parent's UTXO set and returns the new
    /// summary (before the expiry sweep) and the block's effects.
    fn connect_block(
        &self,
        block: &Block,
        chain: &dyn HeaderChain,
        utxos: &dyn UtxoView,
    ) -> Result<(HeaderSummary, BlockEffects), BlockError>;

    /// After a block with loss index `tip_loss_index` is connected, every coin whose creation
    /// loss index is at least this value expires.
    fn expiry_threshold(&self, tip_loss_index: u64) -> u64;

    /// Whether a failure proves that the block is invalid forever (and may be recorded as such).
    /// A failure that depends on the moment (a time too far in the future) or on something that
    /// the block id does not commit to is not permanent.
    fn is_permanent(&self, error: &BlockError) -> bool;
}

/// The production rules: `rnet_consensus` with one set of chain parameters.
#[derive(Clone, Debug)]
pub struct ConsensusRules {
    params: ChainParams,
}

impl ConsensusRules {
    /// Rules for `params`.
    pub fn new(params: ChainParams) -> Self {
        Self { params }
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }
}

impl ChainRules for ConsensusRules {
    fn network(&self) -> Network {
        self.params.network
    }

    fn genesis_block(&self) -> Block {
        self.params.genesis_block()
    }

    fn genesis_summary(&self) -> HeaderSummary {
        self.params.genesis_summary()
    }

    fn genesis_checkpoint(&self) -> Vec<u8> {
        self.params.genesis_checkpoint().to_bytes()
    }

    fn check_block(&self, block: &Block) -> Result<(), BlockError> {
        rnet_consensus::check_block(&self.params, block)
    }

    fn check_header_context(
        &self,
        header: &BlockHeader,
        chain: &dyn HeaderChain,
        now: u64,
    ) -> Result<(), BlockError> {
        rnet_consensus::check_header_context(&self.params, header, chain, now)
    }

    fn check_proof_of_training(
        &self,
        header: &BlockHeader,
        parent: &HeaderSummary,
        sample: &EvalSample,
        parent_checkpoint: &[u8],
        update: &[u8],
    ) -> Result<Vec<u8>, BlockError> {
        rnet_consensus::check_proof_of_training(
            &self.params,
            header,
            parent,
            sample,
            parent_checkpoint,
            update,
        )
        .map(|checkpoint| checkpoint.to_bytes())
    }

    fn check_proof_of_training_assumed(
        &self,
        header: &BlockHeader,
        parent: &HeaderSummary,
        sample: &EvalSample,
        parent_checkpoint: &[u8],
        update: &[u8],
    ) -> Result<Vec<u8>, BlockError> {
        rnet_consensus::check_proof_of_training_assumed(
            &self.params,
            header,
            parent,
            sample,
            parent_checkpoint,
            update,
        )
        .map(|checkpoint| checkpoint.to_bytes())
    }

    fn summarize_header(&self, header: &BlockHeader, chain: &dyn HeaderChain) -> HeaderSummary {
        rnet_consensus::summarize_header(&self.params, header, chain)
    }

    fn connect_block(
        &self,
        block: &Block,
        chain: &dyn HeaderChain,
        utxos: &dyn UtxoView,
    ) -> Result<(HeaderSummary, BlockEffects), BlockError> {
        rnet_consensus::connect_block(&self.params, block, chain, utxos)
    }

    fn expiry_threshold(&self, tip_loss_index: u64) -> u64 {
        rnet_consensus::expiry_threshold(&self.params, tip_loss_index)
    }

    fn is_permanent(&self, error: &BlockError) -> bool {
        is_permanent_failure(error)
    }
}

/// Whether a consensus failure may be recorded as "this block is invalid forever": not a data
/// mismatch (transactions, signature or checkpoint bytes that are not what the header commits
/// to) and not a time too far in the future (`BlockError::is_permanent`).
pub fn is_permanent_failure(error: &BlockError) -> bool {
    error.is_permanent()
}
