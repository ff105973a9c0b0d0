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

/// A derived checkpoint staged outside the lock (written and fsynced there) is stored by a
/// rename when fork choice takes the verdict; a staged file that is not the header's is refused
/// and leaves nothing behind, and the block is then evaluated under the lock.
#[test]
fn a_staged_checkpoint_is_adopted_and_a_wrong_one_refused() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut memory = MemoryChain::new(params.clone());
    let mined = memory.mine_empty(&miner, 2, &plain_spk(&test_key(3))).unwrap();
    let now = memory.tip().time + 60;
    let dir = TempDir::new("pot-staged");
    let (rules, counters) = Counting::new(params.clone());
    let options =
        ChainOptions { prune_checkpoints_depth: 0, sync_writes: false, ..Default::default() };
    let mut chain = ChainState::open_with(dir.path(), Box::new(rules), options).unwrap();
    let tmp_files = || {
        std::fs::read_dir(dir.path().join("checkpoints"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
            .count()
    };

    let b1 = &mined[0];
    let job = chain.pot_job(&b1.block, Some(&b1.update_bytes)).unwrap().expect("a job");
    let verdict = job.run(&ConsensusRules::new(params.clone())).expect("well-formed");
    let bytes = verdict.as_ref().unwrap().clone();
    let staged = chain.reader().stage_checkpoint_bytes(&job.hash(), &bytes).unwrap();
    assert_eq!(tmp_files(), 1, "written outside the lock");
    chain.record_pot_verdict(job.hash(), verdict);
    chain.record_staged_checkpoint(job.hash(), staged);
    let outcome = chain.accept_block(b1.block.clone(), Some(b1.update_bytes.clone()), now).unwrap();
    assert!(matches!(outcome, AcceptOutcome::Connected { .. }), "{outcome:?}");
    assert_eq!(tmp_files(), 0, "renamed into place");
    assert_eq!(
        chain.checkpoint(&b1.block.block_hash()).unwrap(),
        Some(b1.checkpoint_bytes.clone())
    );
    assert_eq!(counters.evaluations(), 0);

    // Block 2: a passing verdict whose staged bytes are not the header's checkpoint.
    let b2 = &mined[1];
    let job = chain.pot_job(&b2.block, Some(&b2.update_bytes)).unwrap().expect("a job");
    let verdict = job.run(&ConsensusRules::new(params.clone())).expect("well-formed");
    let mut wrong = verdict.as_ref().unwrap().to_vec();
    wrong[10] ^= 1;
    let staged = chain.reader().stage_checkpoint_bytes(&job.hash(), &wrong).unwrap();
    chain.record_pot_verdict(job.hash(), verdict);
    chain.record_staged_checkpoint(job.hash(), staged);
    let outcome = chain.accept_block(b2.block.clone(), Some(b2.update_bytes.clone()), now).unwrap();
    assert_eq!(tmp_files(), 0, "the wrong file is deleted");
    assert!(
        !matches!(outcome, AcceptOutcome::Connected { .. }),
        "not connected on it: {outcome:?}"
    );
    assert!(!chain.has_checkpoint(&b2.block.block_hash()).unwrap());
    // Offered again, it is evaluated under the lock and connects on the right checkpoint.
    let outcome = chain.accept_block(b2.block.clone(), Some(b2.update_bytes.clone()), now).unwrap();
    assert!(matches!(outcome, AcceptOutcome::Connected { .. }), "{outcome:?}");
    assert_eq!(counters.evaluations(), 1);
    assert_eq!(
        chain.checkpoint(&b2.block.block_hash()).unwrap(),
        Some(b2.checkpoint_bytes.clone())
    );
}
