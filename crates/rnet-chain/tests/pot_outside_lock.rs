//! Proof-of-Training run outside the chain lock (`rnet_chain::pot`): a job taken from the chain
//! state, run on its own, and its verdict recorded, spares fork choice the evaluation; a job over
//! corrupted checkpoint bytes yields no verdict at all.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TempDir;
use rnet_chain::{AcceptOutcome, ChainOptions, ChainRules, ChainState, ConsensusRules};
use rnet_consensus::{BlockEffects, BlockError, ChainParams, HeaderChain, HeaderSummary, UtxoView};
use rnet_primitives::{Block, BlockHeader, EvalSample, Network};
use rnet_testkit::{MemoryChain, TestMiner, plain_spk, test_key};

/// The consensus rules, counting Proof-of-Training evaluations.
struct Counting {
    inner: ConsensusRules,
    evaluations: Arc<AtomicUsize>,
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
        checkpoint: &[u8],
    ) -> Result<(), BlockError> {
        self.evaluations.fetch_add(1, Ordering::SeqCst);
        self.inner.check_proof_of_training(header, parent, sample, parent_checkpoint, checkpoint)
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

#[test]
fn a_verdict_computed_outside_the_lock_spares_the_evaluation() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut memory = MemoryChain::new(params.clone());
    let mined = memory.mine_empty(&miner, 2, &plain_spk(&test_key(3))).unwrap();
    let now = memory.tip().time + 60;

    let dir = TempDir::new("pot-outside-lock");
    let evaluations = Arc::new(AtomicUsize::new(0));
    let rules =
        Counting { inner: ConsensusRules::new(params.clone()), evaluations: evaluations.clone() };
    let options =
        ChainOptions { prune_checkpoints_depth: 0, sync_writes: false, ..Default::default() };
    let mut chain = ChainState::open_with(dir.path(), Box::new(rules), options).unwrap();

    // Block 1: evaluated by the job, outside any lock; fork choice does not evaluate it again.
    let b1 = &mined[0];
    let job = chain.pot_job(&b1.block, Some(&b1.checkpoint_bytes)).unwrap().expect("a job");
    assert_eq!(job.hash(), b1.block.block_hash());
    let verdict = job.run(&ConsensusRules::new(params.clone())).expect("well-formed");
    assert_eq!(verdict, Ok(()));
    chain.record_pot_verdict(job.hash(), verdict);
    let outcome =
        chain.accept_block(b1.block.clone(), Some(b1.checkpoint_bytes.clone()), now).unwrap();
    assert!(matches!(outcome, AcceptOutcome::Connected { .. }), "{outcome:?}");
    assert_eq!(evaluations.load(Ordering::SeqCst), 0, "no evaluation under the lock");
    assert!(chain.pot_job(&b1.block, None).unwrap().is_none(), "nothing left to do");

    // Block 2 with damaged checkpoint bytes: the job yields no verdict, so nothing is recorded
    // against the block id; without a verdict fork choice evaluates it itself (the control).
    let b2 = &mined[1];
    let mut damaged = b2.checkpoint_bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let job = chain.pot_job(&b2.block, Some(&damaged)).unwrap().expect("a job");
    assert_eq!(job.run(&ConsensusRules::new(params.clone())), None);
    let outcome =
        chain.accept_block(b2.block.clone(), Some(b2.checkpoint_bytes.clone()), now).unwrap();
    assert!(matches!(outcome, AcceptOutcome::Connected { .. }), "{outcome:?}");
    assert_eq!(evaluations.load(Ordering::SeqCst), 1, "evaluated once, under the lock");
}
