//! Fork-choice attacks that broke the first consensus design (lowest tip loss wins, claims
//! trusted until after the reorg), replayed on the chainstate with real regtest blocks under
//! Proof-of-Training v2 (`docs/protocol.md` Part V §4.3, §4.4, §7). Each would have succeeded
//! under the old rule; each fails now.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::TempDir;
use rnet_chain::{
    AcceptOutcome, BlockStatus, ChainError, ChainOptions, ChainState, ConsensusRules,
};
use rnet_consensus::{
    BlockError, ChainParams, HeaderChain, check_proof_of_training, effective_required_improvement,
};
use rnet_model::{Checkpoint, Model};
use rnet_testkit::{MemoryChain, MinedBlock, TestMiner, plain_spk, test_key};
use rnet_training::{DataConfig, DataSource, TrainConfig, Trainer};

fn open(dir: &TempDir, params: &ChainParams) -> ChainState {
    let options =
        ChainOptions { prune_checkpoints_depth: 0, sync_writes: false, ..ChainOptions::default() };
    ChainState::open_with(dir.path(), Box::new(ConsensusRules::new(params.clone())), options)
        .unwrap()
}

fn accept(chain: &mut ChainState, mined: &MinedBlock, now: u64) -> AcceptOutcome {
    chain
        .accept_block(mined.block.clone(), Some(mined.update_bytes.clone()), now)
        .unwrap_or_else(|e| panic!("block {} rejected: {e}", mined.block.block_hash()))
}

/// A clock after every block of `mem`.
fn now(mem: &MemoryChain) -> u64 {
    mem.tip().time + 60
}

/// Runs `f` with every `tracing` event (debug and up) written to a buffer; returns the text.
fn with_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer(Arc::default());
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (out, text)
}

/// `model` trained `steps` more steps on the corpus.
fn train_more(model: &Model, steps: u64, seed: u64) -> Model {
    let config = model.config().clone();
    let source = DataSource::from_static(
        rnet_model::training_text(),
        DataConfig { window: config.window, holdout_fraction: 0.0, seed },
    )
    .unwrap();
    let train = TrainConfig {
        lr: 1e-3,
        warmup: 0,
        total_steps: 1_000_000,
        batch_windows: 4,
        weight_decay: 0.0,
        seed,
        ..TrainConfig::default()
    };
    let (_, weights) = model.clone().into_parts();
    let mut trainer = Trainer::new(weights, config.clone(), train, None).unwrap();
    for _ in 0..steps {
        let batch = source.batch(trainer.global_step(), 4);
        trainer.step(&batch).unwrap();
    }
    Model::from_parts(config, trainer.params().to_vec()).unwrap()
}

/// (b) Loss sniping. Block 3's checkpoint is public; a sniper trains it further and publishes a
/// sibling at height 3 claiming a larger improvement and a lower loss. Under "lowest tip loss
/// wins" it took the tip and the reward; under most chainwork a sibling carries the same work,
/// and the first block seen stays.
#[test]
fn a_sniped_sibling_with_a_lower_loss_does_not_become_the_tip() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let dir = TempDir::new("attack-snipe");
    let mut chain = open(&dir, &params);
    let mut mem = MemoryChain::new(params.clone());
    let blocks = mem.mine_empty(&miner, 3, &plain_spk(&test_key(1))).unwrap();
    for m in &blocks {
        accept(&mut chain, m, now(&mem));
    }
    let honest = chain.tip();
    let honest_improvement = honest.parent_loss - honest.val_loss;
    // The sniper starts from the public checkpoint of block 3 and keeps training until its
    // sibling beats block 3 on both counts.
    let sniper = TestMiner { key: test_key(9), ..miner.clone() };
    let mut parent_view = mem.clone();
    parent_view.disconnect_tip().unwrap();
    let mut template =
        parent_view.template(&sniper, vec![], plain_spk(&test_key(9)), None, None).unwrap();
    let mut model = blocks[2].checkpoint.model.clone();
    let mut steps = 0;
    loop {
        model = train_more(&model, 5, 1000 + steps);
        steps += 5;
        template.set_checkpoint(Checkpoint::new(3, model.clone())).unwrap();
        let h = &template.header;
        if h.val_loss < honest.val_loss && h.parent_loss - h.val_loss > honest_improvement {
            break;
        }
        assert!(steps < 500, "the sniper never beat block 3");
    }
    let sibling = template.finish(&sniper.key);
    let h = &sibling.block.header;
    println!(
        "ATTACK (b) sniping: block 3 val_loss {} improvement {honest_improvement}; sibling \
         (+{steps} steps) val_loss {} improvement {}",
        honest.val_loss,
        h.val_loss,
        h.parent_loss - h.val_loss
    );
    assert!(matches!(accept(&mut chain, &sibling, now(&mem)), AcceptOutcome::StoredSideBranch));
    assert_eq!(chain.tip(), honest);
    // The sibling is valid, just not better: it is kept as a side branch.
    assert_eq!(
        chain.block_status(&sibling.block.block_hash()).unwrap(),
        Some(BlockStatus::DataStored)
    );
}

/// (c) One block with a huge improvement cannot replace two blocks that carry more chainwork
/// (under "lowest tip loss wins" its loss alone displaced any number of blocks).
#[test]
fn one_block_with_a_huge_improvement_cannot_reorg_two_blocks() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let strong = TestMiner {
        key: test_key(8),
        steps_per_round: 5,
        train: TrainConfig { lr: 1e-2, ..miner.train.clone() },
        ..miner.clone()
    };
    let mut mem_a = MemoryChain::new(params.clone());
    let common = mem_a.mine_empty(&miner, 2, &plain_spk(&test_key(1))).unwrap();
    let mut mem_b = mem_a.clone();
    let a = mem_a.mine_empty(&miner, 2, &plain_spk(&test_key(1))).unwrap();
    let required = params.min_required_improvement;
    let t = mem_b.template(&strong, vec![], plain_spk(&test_key(8)), None, Some(20 * required));
    let big = t.unwrap().finish(&strong.key);
    mem_b.submit(&big).unwrap();
    let big_improvement = big.block.header.parent_loss - big.block.header.val_loss;
    let (a_tip, b_tip) = (mem_a.tip(), mem_b.tip());
    println!(
        "ATTACK (c) one-block reorg: the single block improves by {big_improvement} µnat (val_loss \
         {}); the two blocks by {} in all (tip val_loss {}); chainwork {} against {}",
        b_tip.val_loss,
        a.iter().map(|m| m.block.header.parent_loss - m.block.header.val_loss).sum::<u64>(),
        a_tip.val_loss,
        b_tip.chainwork,
        a_tip.chainwork
    );
    assert!(big_improvement >= 20 * required);
    assert!(b_tip.chainwork < a_tip.chainwork);
    let clock = now(&mem_a).max(now(&mem_b));

    // The two blocks first, then the big one: it is stored, nothing moves.
    let dir = TempDir::new("attack-reorg-1");
    let mut chain = open(&dir, &params);
    for m in common.iter().chain(&a) {
        accept(&mut chain, m, clock);
    }
    assert!(matches!(accept(&mut chain, &big, clock), AcceptOutcome::StoredSideBranch));
    assert_eq!(chain.tip(), a_tip);

    // The big one first: the second of the two blocks takes the tip back.
    let dir = TempDir::new("attack-reorg-2");
    let mut chain = open(&dir, &params);
    for m in common.iter().chain([&big]) {
        accept(&mut chain, m, clock);
    }
    assert!(matches!(accept(&mut chain, &a[0], clock), AcceptOutcome::StoredSideBranch));
    match accept(&mut chain, &a[1], clock) {
        AcceptOutcome::Connected { disconnected, connected, .. } => {
            assert_eq!(disconnected, vec![big.block.block_hash()]);
            assert_eq!(connected.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(chain.tip(), a_tip);
}

/// (d) A junk block claiming a huge improvement, on a branch whose claimed chainwork beats the
/// tip. The first design ranked branches by claimed loss and disconnected back to the fork before
/// evaluating anything. Now the chainstate runs Proof-of-Training on the whole candidate branch
/// first: the junk costs its evaluations, nothing is disconnected, and the call returns in
/// evaluation time.
#[test]
fn a_junk_block_claiming_a_huge_improvement_disconnects_nothing() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let other = TestMiner { key: test_key(7), ..miner.clone() };
    let mut mem_a = MemoryChain::new(params.clone());
    let common = mem_a.mine_empty(&miner, 2, &plain_spk(&test_key(1))).unwrap();
    let mut mem_b = mem_a.clone();
    let a3 = mem_a.mine_empty(&miner, 1, &plain_spk(&test_key(1))).unwrap().remove(0);
    let b3 = mem_b.mine_empty(&other, 1, &plain_spk(&test_key(7))).unwrap().remove(0);
    // The junk block on b3: a checkpoint of the right shape and size whose weights are noise,
    // claiming almost the whole parent loss as improvement.
    let mut t = mem_b.template(&other, vec![], plain_spk(&test_key(7)), None, None).unwrap();
    let (_, mut weights) = t.checkpoint.model.clone().into_parts();
    for (i, w) in weights.iter_mut().enumerate() {
        *w = ((i * 7919 % 1000) as f32 - 500.0) * 0.01;
    }
    let junk = Model::from_parts(t.checkpoint.model.config().clone(), weights).unwrap();
    t.set_checkpoint(Checkpoint::new(4, junk)).unwrap();
    t.header.val_loss = 1;
    let junk = t.finish(&other.key);
    let clock = now(&mem_a).max(now(&mem_b)) + 600;

    let dir = TempDir::new("attack-junk");
    let mut chain = open(&dir, &params);
    for m in common.iter().chain([&a3]) {
        accept(&mut chain, m, clock);
    }
    assert!(matches!(accept(&mut chain, &b3, clock), AcceptOutcome::StoredSideBranch));
    let tip = chain.tip();
    let utxo_hash = chain.utxo_set_hash().unwrap();
    // The cost of the evaluations the branch needs (b3 and the junk), measured alone.
    let t0 = Instant::now();
    let b3_parent = mem_b.checkpoint(2).unwrap().to_bytes();
    let parent = mem_b.summary(2).unwrap().clone();
    check_proof_of_training(
        &params,
        &b3.block.header,
        &parent,
        &b3.block.sample,
        &b3_parent,
        &b3.update_bytes,
    )
    .unwrap();
    let junk_pot = check_proof_of_training(
        &params,
        &junk.block.header,
        &mem_b.tip(),
        &junk.block.sample,
        &b3.checkpoint_bytes,
        &junk.update_bytes,
    );
    assert!(matches!(junk_pot, Err(BlockError::ValLossMismatch { .. })), "{junk_pot:?}");
    let evaluation_s = t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let (result, logs) = with_logs(|| {
        chain.accept_block(junk.block.clone(), Some(junk.update_bytes.clone()), clock)
    });
    let call_s = t0.elapsed().as_secs_f64();
    println!(
        "ATTACK (d) junk branch: claimed improvement {} µnat; accept_block returned in {call_s:.3} s \
         (the branch's evaluations alone: {evaluation_s:.3} s); disconnects in the log: {}",
        junk.block.header.parent_loss - 1,
        logs.matches("disconnected block").count()
    );
    assert!(
        matches!(
            result,
            Err(ChainError::InvalidBlock { reason: BlockError::ValLossMismatch { .. }, .. })
        ),
        "{result:?}"
    );
    assert!(logs.contains("invalid block"), "{logs}");
    assert!(!logs.contains("disconnected block"), "{logs}");
    assert!(!logs.contains("connected block"), "{logs}");
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.utxo_set_hash().unwrap(), utxo_hash);
    assert_eq!(chain.block_status(&junk.block.block_hash()).unwrap(), Some(BlockStatus::Invalid));
    // Evaluation time plus bookkeeping, not a replay of the chain.
    assert!(call_s < 5.0 * evaluation_s + 1.0, "{call_s} s against {evaluation_s} s");
    chain.verify_consistency().unwrap();
}

/// (e) A timestamp 2 h ahead (the most a node accepts) buys at most two stall halvings: a 4 ×
/// lower requirement, and a quarter of the work. Its full-work sibling then takes the tip even
/// though the liar came first.
#[test]
fn a_timestamp_two_hours_ahead_gets_at_most_the_documented_discount() {
    // A base requirement four times the floor, so the discount is visible above the floor.
    let params = ChainParams {
        initial_required_improvement: 4 * ChainParams::regtest().min_required_improvement,
        ..ChainParams::regtest()
    };
    let miner = TestMiner::new(params.clone());
    let liar_miner = TestMiner { key: test_key(6), ..miner.clone() };
    let mut mem = MemoryChain::new(params.clone());
    let common = mem.mine_empty(&miner, 2, &plain_spk(&test_key(1))).unwrap();
    let parent = mem.tip();
    let clock = parent.time + params.target_spacing_secs;
    let max_ahead = params.max_future_block_time_secs;
    let honest_required = effective_required_improvement(&params, &mem, clock);
    let liar_required = effective_required_improvement(&params, &mem, clock + max_ahead);
    // ⌊(600 + 7200) / 3600⌋ = 2 halvings: exactly the documented bound of 4.
    assert_eq!(honest_required, params.initial_required_improvement);
    assert_eq!(liar_required * 4, honest_required);
    let liar = mem
        .template(&liar_miner, vec![], plain_spk(&test_key(6)), Some(clock + max_ahead), None)
        .unwrap()
        .finish(&liar_miner.key);
    let honest = mem
        .template(&miner, vec![], plain_spk(&test_key(1)), Some(clock), None)
        .unwrap()
        .finish(&miner.key);
    assert_eq!(liar.block.header.required_improvement, liar_required);
    assert_eq!(honest.block.header.required_improvement, honest_required);

    let dir = TempDir::new("attack-time");
    let mut chain = open(&dir, &params);
    for m in &common {
        accept(&mut chain, m, clock);
    }
    // One second further ahead is refused outright.
    let mut later = mem
        .template(&liar_miner, vec![], plain_spk(&test_key(6)), Some(clock + max_ahead + 1), None)
        .unwrap();
    later.header.required_improvement = liar_required;
    let later = later.finish(&liar_miner.key);
    let e = chain.accept_block(later.block.clone(), Some(later.update_bytes), clock);
    assert!(
        matches!(e, Err(ChainError::InvalidBlock { reason: BlockError::TimeTooNew { .. }, .. })),
        "{e:?}"
    );
    // The liar arrives first and becomes the tip...
    assert!(matches!(accept(&mut chain, &liar, clock), AcceptOutcome::Connected { .. }));
    let liar_tip = chain.tip();
    // ...then the honest sibling, with four times the work, replaces it.
    match accept(&mut chain, &honest, clock) {
        AcceptOutcome::Connected { disconnected, new_tip, .. } => {
            assert_eq!(disconnected, vec![liar.block.block_hash()]);
            assert_eq!(new_tip.hash, honest.block.block_hash());
            assert_eq!(
                new_tip.chainwork - parent.chainwork,
                4 * (liar_tip.chainwork - parent.chainwork)
            );
        }
        other => panic!("{other:?}"),
    }
    println!(
        "ATTACK (e) timestamp +{max_ahead} s: requirement {liar_required} against \
         {honest_required}; the honest sibling replaced it"
    );
}

/// (f) A descendant of a block that is not validated yet (its checkpoint has not arrived) used
/// to be stored without any contextual header check, so it could declare any checkpoint size up
/// to the cap and any requirement. Now its header is checked against the branch's header
/// summaries before anything is stored.
#[test]
fn a_descendant_of_an_unvalidated_block_cannot_declare_its_own_shape() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut mem = MemoryChain::new(params.clone());
    let a1 = mem.mine_empty(&miner, 1, &plain_spk(&test_key(1))).unwrap().remove(0);
    let spk = plain_spk(&test_key(1));
    let mut oversized = mem.template(&miner, vec![], spk.clone(), None, None).unwrap();
    oversized.header.checkpoint_size *= 16;
    let oversized = oversized.finish(&miner.key);
    let mut overclaim = mem.template(&miner, vec![], spk.clone(), None, None).unwrap();
    overclaim.header.required_improvement += 1;
    let overclaim = overclaim.finish(&miner.key);
    let a2 = mem.mine_empty(&miner, 1, &spk).unwrap().remove(0);
    let clock = now(&mem);

    let dir = TempDir::new("attack-unvalidated-parent");
    let mut chain = open(&dir, &params);
    let outcome = chain.accept_block(a1.block.clone(), None, clock).unwrap();
    assert_eq!(outcome, AcceptOutcome::MissingUpdate);
    let result = chain.accept_block(oversized.block.clone(), None, clock);
    println!("ATTACK (f) oversized child of an unvalidated block: {result:?}");
    assert!(
        matches!(
            result,
            Err(ChainError::InvalidBlock { reason: BlockError::BadCheckpointSize { .. }, .. })
        ),
        "{result:?}"
    );
    let result = chain.accept_block(overclaim.block.clone(), None, clock);
    assert!(
        matches!(
            result,
            Err(ChainError::InvalidBlock { reason: BlockError::BadRequiredImprovement { .. }, .. })
        ),
        "{result:?}"
    );
    for bad in [&oversized, &overclaim] {
        let hash = bad.block.block_hash();
        assert!(chain.block(&hash).unwrap().is_none(), "stored");
        assert_eq!(chain.block_status(&hash).unwrap(), Some(BlockStatus::Invalid));
    }
    // The honest child is stored, and the branch connects once a1's update arrives.
    let outcome = chain.accept_block(a2.block.clone(), Some(a2.update_bytes.clone()), clock);
    assert_eq!(outcome.unwrap(), AcceptOutcome::MissingUpdate);
    match chain.accept_update(&a1.block.block_hash(), a1.update_bytes.clone(), clock) {
        Ok(AcceptOutcome::Connected { new_tip, .. }) => {
            assert_eq!(new_tip.hash, a2.block.block_hash())
        }
        other => panic!("{other:?}"),
    }
    chain.verify_consistency().unwrap();
}
