//! Attacks on Proof-of-Training that broke the first consensus design, replayed against v2
//! (`docs/protocol.md` Part V §3.3, §4.4). Fork-choice attacks (sniping, one-block reorgs, junk
//! branches, timestamp lies) are in `rnet-chain/tests/attacks.rs`.

mod common;

use common::*;
use rnet_consensus::{
    ChainParams, HeaderChain, build_sample, evaluate_candidate, expiry_threshold,
};
use rnet_model::{Checkpoint, Model, evaluate_windows};
use rnet_primitives::{BlockHeader, Hash256};
use rnet_testkit::miner::checkpoint_root;
use rnet_testkit::{MemoryChain, TestMiner, plain_spk};
use rnet_training::{Batch, DataConfig, DataSource, TrainConfig, Trainer};

/// `model` trained `steps` steps on `batch_of(step)` at learning rate `lr`.
fn train(model: Model, steps: u64, lr: f32, mut batch_of: impl FnMut(u64) -> Batch) -> Model {
    let config = model.config().clone();
    let (_, weights) = model.into_parts();
    let train = TrainConfig {
        lr,
        warmup: 0,
        total_steps: 1_000_000,
        weight_decay: 0.0,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(weights, config.clone(), train, None).expect("trainer");
    for _ in 0..steps {
        let batch = batch_of(trainer.global_step());
        trainer.step(&batch).expect("step");
    }
    Model::from_parts(config, trainer.params().to_vec()).expect("model")
}

/// The header a candidate at the genesis shape would carry on top of `params`' genesis block:
/// what the sample seed needs (parent, root, key).
fn header_for(params: &ChainParams, candidate: &Model) -> BlockHeader {
    let bytes = Checkpoint::new(1, candidate.clone()).to_bytes();
    let mut header = params.genesis_block().header;
    header.prev_block_hash = params.genesis_summary().hash;
    header.height = 1;
    header.checkpoint_root = Hash256(checkpoint_root(&bytes));
    header.checkpoint_size = bytes.len() as u64;
    header
}

/// (a) Memorisation. The first design evaluated every block on one public slice, so training on
/// it alone made valid blocks that expired every coin and halted the chain. Here a trainer
/// memorises a fixed set of `K` records (the sample its parent's own root draws: public before it
/// starts) until its loss there falls by ten times the requirement. Its block is evaluated on
/// the fresh sample its own root draws, where the gain is a small fraction of that, below the
/// requirement: the memoriser has no block.
#[test]
fn memorising_a_fixed_sample_does_not_carry_over_to_a_fresh_one() {
    let params = ChainParams::regtest();
    let required = params.min_required_improvement;
    let window = params.genesis_model.window;
    // A partly trained parent (honest training on the corpus).
    let source = DataSource::from_static(
        rnet_model::training_text(),
        DataConfig { window, holdout_fraction: 0.0, seed: 7 },
    )
    .unwrap();
    let parent = train(params.genesis_checkpoint().model, 300, 3e-3, |s| source.batch(s, 8));
    // The fixed set: the K records the parent's own root draws.
    let fixed = build_sample(&params, &header_for(&params, &parent)).unwrap();
    let fixed_windows: Vec<&[u8]> = fixed.records.iter().map(|r| r.bytes.as_slice()).collect();
    let loss_on_fixed = |m: &Model| evaluate_windows(m, &fixed_windows).unwrap().val_loss_micronats;
    let parent_fixed = loss_on_fixed(&parent);
    // Memorise: train only on those records until the loss there falls by ≥ 10 × required.
    let mut memoriser = parent.clone();
    let mut steps = 0;
    while parent_fixed.saturating_sub(loss_on_fixed(&memoriser)) < 10 * required {
        memoriser = train(memoriser, 5, 3e-3, |_| {
            Batch::from_windows(window, fixed_windows.iter().copied())
        });
        steps += 5;
        assert!(steps <= 2000, "memorisation did not converge");
    }
    let fixed_gain = parent_fixed - loss_on_fixed(&memoriser);
    // Its block: the sample its own root draws.
    let eval =
        evaluate_candidate(&params, &header_for(&params, &memoriser), &parent, &memoriser).unwrap();
    let fresh_gain = eval.parent_loss as i64 - eval.val_loss as i64;
    println!(
        "ATTACK (a) memorisation: {steps} steps on {} fixed records; improvement on the fixed \
         set {fixed_gain} µnat (≥ 10 × {required}); on the fresh sample of its own root \
         {fresh_gain} µnat",
        fixed.records.len()
    );
    assert!(fixed_gain >= 10 * required);
    assert!(fresh_gain < (fixed_gain / 5) as i64, "a small fraction of the memorised gain");
    assert!(fresh_gain < required as i64, "the memoriser's block does not meet the requirement");
}

/// (f) Expiry moves at most `2 × required_eff` per block. In the first design one block with a
/// huge loss drop expired every coin at once; now the loss index (which expiry follows) moves by
/// at most twice the requirement, however large the block's improvement.
#[test]
fn expiry_moves_at_most_twice_the_requirement_per_block() {
    let (mut chain, miner) = base();
    let parent = chain.tip();
    let required = required(&chain);
    // A strong miner: ten times the requirement in one block.
    let strong = TestMiner {
        steps_per_round: 5,
        train: rnet_training::TrainConfig { lr: 1e-2, ..miner.train.clone() },
        ..miner.clone()
    };
    let t = chain
        .template(&strong, vec![], plain_spk(&payout_key()), None, Some(10 * required))
        .unwrap();
    let improvement = t.header.parent_loss - t.header.val_loss;
    assert!(improvement >= 10 * required);
    let coins_before = chain.utxo_set().len();
    let c = chain.submit(&t.finish(&strong.key)).unwrap();
    assert_eq!(c.summary.required_eff, required);
    assert_eq!(parent.loss_index - c.summary.loss_index, 2 * required);
    // Under the old rule the index would have moved by the whole improvement; the coins within
    // that distance of the threshold survive now.
    let old_threshold = expiry_threshold(chain.params(), parent.loss_index - improvement);
    let new_threshold = expiry_threshold(chain.params(), c.summary.loss_index);
    assert!(new_threshold > old_threshold);
    assert!(c.expired.iter().all(|(_, coin)| coin.creation_loss_index >= new_threshold));
    assert_eq!(chain.utxo_set().len(), coins_before + 1 - c.expired.len());
    println!(
        "ATTACK (f) expiry: improvement {improvement} µnat (requirement {required}); loss index \
         moved {} µnat",
        parent.loss_index - c.summary.loss_index
    );
    // Every block of a chain obeys the bound.
    let mut mem = MemoryChain::new(ChainParams::regtest());
    for _ in 0..6 {
        let before = mem.tip();
        let (_, c) = mem.mine(&strong, vec![], plain_spk(&payout_key())).unwrap();
        let step = before.loss_index - c.summary.loss_index;
        assert!(step >= c.summary.required_eff && step <= 2 * c.summary.required_eff);
    }
}
