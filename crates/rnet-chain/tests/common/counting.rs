//! The production consensus rules, counting Proof-of-Training checks (full evaluations and
//! `-assumevalid` checks), for tests that assert which path the chainstate took.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rnet_chain::{ChainRules, ConsensusRules};
use rnet_consensus::{BlockEffects, BlockError, ChainParams, HeaderChain, HeaderSummary, UtxoView};
use rnet_primitives::{Block, BlockHeader, EvalSample, Network};

/// How many checks a [`Counting`] rule set made (shared with the boxed rules).
#[derive(Clone, Default)]
pub struct Counters {
    evaluations: Arc<AtomicUsize>,
    assumed: Arc<AtomicUsize>,
}

impl Counters {
    /// Full Proof-of-Training checks (two evaluations each).
    pub fn evaluations(&self) -> usize {
        self.evaluations.load(Ordering::SeqCst)
    }

    /// `-assumevalid` checks (no evaluation).
    pub fn assumed(&self) -> usize {
        self.assumed.load(Ordering::SeqCst)
    }
}

/// The consensus rules, counting full and assumed Proof-of-Training checks.
pub struct Counting {
    inner: ConsensusRules,
    counters: Counters,
}

impl Counting {
    /// The rules of `params` and the handle to read their counts.
    pub fn new(params: ChainParams) -> (Self, Counters) {
        let counters = Counters::default();
        (Self { inner: ConsensusRules::new(params), counters: counters.clone() }, counters)
    }
}

impl ChainRules for Counting {
    fn network(&self) -> Network {
        self.inner.network()
    }
    fn genesis_block(&self) -> Block {
        self.inner.genesis_block()
    }
    fn genesis_summary(&self) -> HeaderSummary {
        self.inner.genesis_summary()
    }
    fn genesis_checkpoint(&self) -> Vec<u8> {
        self.inner.genesis_checkpoint()
    }
    fn check_block(&self, block: &Block) -> Result<(), BlockError> {
        self.inner.check_block(block)
    }
    fn check_header_context(
        &self,
        header: &BlockHeader,
        chain: &dyn HeaderChain,
        now: u64,
    ) -> Result<(), BlockError> {
        self.inner.check_header_context(header, chain, now)
    }
    fn check_proof_of_training(
        &self,
        header: &BlockHeader,
        parent: &HeaderSummary,
        sample: &EvalSample,
        parent_checkpoint: &[u8],
        update: &[u8],
    ) -> Result<Vec<u8>, BlockError> {
        self.counters.evaluations.fetch_add(1, Ordering::SeqCst);
        self.inner.check_proof_of_training(header, parent, sample, parent_checkpoint, update)
    }
    fn check_proof_of_training_assumed(
        &self,
        header: &BlockHeader,
        parent: &HeaderSummary,
        sample: &EvalSample,
        parent_checkpoint: &[u8],
        update: &[u8],
    ) -> Result<Vec<u8>, BlockError> {
        self.counters.assumed.fetch_add(1, Ordering::SeqCst);
        self.inner.check_proof_of_training_assumed(
            header,
            parent,
            sample,
            parent_checkpoint,
            update,
        )
    }
    fn summarize_header(&self, header: &BlockHeader, chain: &dyn HeaderChain) -> HeaderSummary {
        self.inner.summarize_header(header, chain)
    }
    fn connect_block(
        &self,
        block: &Block,
        chain: &dyn HeaderChain,
        utxos: &dyn UtxoView,
    ) -> Result<(HeaderSummary, BlockEffects), BlockError> {
        self.inner.connect_block(block, chain, utxos)
    }
    fn expiry_threshold(&self, tip_loss_index: u64) -> u64 {
        self.inner.expiry_threshold(tip_loss_index)
    }
    fn is_permanent(&self, error: &BlockError) -> bool {
        self.inner.is_permanent(error)
    }
}
