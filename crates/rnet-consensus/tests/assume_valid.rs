//! Proof-of-Training under `-assumevalid` (`check_proof_of_training_assumed`, Part V §7.1):
//! only the two evaluations are skipped. A faked loss passes (that is what a node trusts the
//! assumed-valid hash for), while every other defect of the training data is still refused.

mod common;

use common::*;
use rnet_consensus::{BlockError, HeaderChain, check_proof_of_training_assumed};
use rnet_model::{Checkpoint, grow};
use rnet_primitives::Block;
use rnet_testkit::MemoryChain;

fn assumed(chain: &MemoryChain, block: &Block, checkpoint: &[u8]) -> Result<(), BlockError> {
    check_proof_of_training_assumed(
        chain.params(),
        &block.header,
        &chain.tip(),
        &block.sample,
        &chain.tip_checkpoint().to_bytes(),
        checkpoint,
    )
}

#[test]
fn only_the_evaluations_are_skipped() {
    let (chain, miner) = base();
    // A valid block passes both ways.
    let valid = template(&chain, &miner, vec![]).finish(&miner.key);
    assert_eq!(assumed(&chain, &valid.block, &valid.checkpoint_bytes), Ok(()));
    assert_eq!(pot(&chain, &valid.block, &valid.checkpoint_bytes), Ok(()));

    // A faked loss: refused by the full check, not looked at under assumevalid.
    let mut t = template(&chain, &miner, vec![]);
    t.header.val_loss -= 1000;
    let faked = t.finish(&miner.key);
    assert!(matches!(
        pot(&chain, &faked.block, &faked.checkpoint_bytes),
        Err(BlockError::ValLossMismatch { .. })
    ));
    assert_eq!(assumed(&chain, &faked.block, &faked.checkpoint_bytes), Ok(()));

    // Checkpoint bytes that do not match the committed root.
    let mut bytes = valid.checkpoint_bytes.clone();
    let n = bytes.len();
    bytes[n - 5] ^= 1;
    assert_eq!(assumed(&chain, &valid.block, &bytes), Err(BlockError::CheckpointRootMismatch));
    assert_eq!(assumed(&chain, &valid.block, &[]), Err(BlockError::MissingCheckpoint));

    // A checkpoint of another shape under a header with the right one.
    let mut t = template(&chain, &miner, vec![]);
    let d = t.header.shape.d_model as usize;
    let bigger = grow(&t.checkpoint.model, d + 2, 2, 3).unwrap();
    t.set_checkpoint_bytes(Checkpoint::new(8, bigger).to_bytes());
    let wrong_config = t.finish(&miner.key);
    assert_eq!(
        assumed(&chain, &wrong_config.block, &wrong_config.checkpoint_bytes),
        Err(BlockError::CheckpointConfigMismatch)
    );

    // A claimed improvement below the requirement.
    let mut t = template(&chain, &miner, vec![]);
    t.header.val_loss = t.header.parent_loss - required(&chain) + 1;
    let short = t.finish(&miner.key);
    assert!(matches!(
        assumed(&chain, &short.block, &short.checkpoint_bytes),
        Err(BlockError::InsufficientImprovement { .. })
    ));

    // A sample that is not the one the header draws.
    let mut block = valid.block.clone();
    block.sample.records.swap(0, 1);
    assert!(matches!(
        assumed(&chain, &block, &valid.checkpoint_bytes),
        Err(BlockError::SampleOutOfOrder { .. })
    ));
}
