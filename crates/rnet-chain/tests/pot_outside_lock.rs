//! Proof-of-Training run outside the chain lock (`rnet_chain::pot`): a job taken from the chain
//! state, run on its own, and its verdict recorded, spares fork choice the evaluation; a job over
//! corrupted checkpoint bytes yields no verdict at all.

mod common;

use common::TempDir;
use common::counting::Counting;
use rnet_chain::{AcceptOutcome, ChainOptions, ChainState, ConsensusRules};
use rnet_consensus::{ChainParams, HeaderChain};
use rnet_testkit::{MemoryChain, TestMiner, plain_spk, test_key};

#[test]
fn a_verdict_computed_outside_the_lock_spares_the_evaluation() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut memory = MemoryChain::new(params.clone());
    let mined = memory.mine_empty(&miner, 2, &plain_spk(&test_key(3))).unwrap();
    let now = memory.tip().time + 60;

    let dir = TempDir::new("pot-outside-lock");
    let (rules, counters) = Counting::new(params.clone());
    let options =
        ChainOptions { prune_checkpoints_depth: 0, sync_writes: false, ..Default::default() };
    let mut chain = ChainState::open_with(dir.path(), Box::new(rules), options).unwrap();

    // Block 1: evaluated by the job, outside any lock; fork choice does not evaluate it again.
    let b1 = &mined[0];
    let job = chain.pot_job(&b1.block, Some(&b1.update_bytes)).unwrap().expect("a job");
    assert_eq!(job.hash(), b1.block.block_hash());
    let verdict = job.run(&ConsensusRules::new(params.clone())).expect("well-formed");
    assert_eq!(verdict.as_deref(), Ok(&b1.checkpoint_bytes), "the job derives the checkpoint");
    chain.record_pot_verdict(job.hash(), verdict);
    let outcome = chain.accept_block(b1.block.clone(), Some(b1.update_bytes.clone()), now).unwrap();
    assert!(matches!(outcome, AcceptOutcome::Connected { .. }), "{outcome:?}");
    assert_eq!(counters.evaluations(), 0, "no evaluation under the lock");
    assert!(chain.pot_job(&b1.block, None).unwrap().is_none(), "nothing left to do");
    // The derived checkpoint was stored with the verdict: the next block builds on it.
    assert_eq!(
        chain.checkpoint(&b1.block.block_hash()).unwrap(),
        Some(b1.checkpoint_bytes.clone())
    );

    // Block 2 with damaged update bytes: the job yields no verdict, so nothing is recorded
    // against the block id; without a verdict fork choice evaluates it itself (the control).
    let b2 = &mined[1];
    let mut damaged = b2.update_bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let job = chain.pot_job(&b2.block, Some(&damaged)).unwrap().expect("a job");
    assert_eq!(job.run(&ConsensusRules::new(params.clone())), None);
    let outcome = chain.accept_block(b2.block.clone(), Some(b2.update_bytes.clone()), now).unwrap();
    assert!(matches!(outcome, AcceptOutcome::Connected { .. }), "{outcome:?}");
    assert_eq!(counters.evaluations(), 1, "evaluated once, under the lock");
}
