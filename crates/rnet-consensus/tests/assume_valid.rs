//! Proof-of-Training under `-assumevalid` (`check_proof_of_training_assumed`, Part V §7.1):
//! only the two evaluations are skipped. A faked loss passes (that is what a node trusts the
//! assumed-valid hash for), while every other defect of the training data is still refused.

mod common;

use common::*;
use rnet_consensus::{BlockError, HeaderChain, check_proof_of_training_assumed};
use rnet_model::{Checkpoint, UpdateError, grow};
use rnet_primitives::Block;
use rnet_testkit::MemoryChain;

fn assumed(chain: &MemoryChain, block: &Block, update: &[u8]) -> Result<(), BlockError> {
    check_proof_of_training_assumed(
        chain.params(),
        &block.header,
        &chain.tip(),
        &block.sample,
        &chain.tip_checkpoint().to_bytes(),
        update,
    )
    .map(drop)
}

#[test]
fn only_the_evaluations_are_skipped() {
    let (chain, miner) = base();
    // A valid block passes both ways.
    let valid = template(&chain, &miner, vec![]).finish(&miner.key);
    assert_eq!(assumed(&chain, &valid.block, &valid.update_bytes), Ok(()));
    assert_eq!(pot(&chain, &valid.block, &valid.update_bytes), Ok(()));

    // A faked loss: refused by the full check, not looked at under assumevalid.
    let mut t = template(&chain, &miner, vec![]);
    t.header.val_loss -= 1000;
    let faked = t.finish(&miner.key);
    assert!(matches!(
        pot(&chain, &faked.block, &faked.update_bytes),
        Err(BlockError::ValLossMismatch { .. })
    ));
    assert_eq!(assumed(&chain, &faked.block, &faked.update_bytes), Ok(()));

    // Update bytes that do not match the committed root.
    let mut bytes = valid.update_bytes.clone();
    let n = bytes.len();
    bytes[n - 5] ^= 1;
    assert_eq!(assumed(&chain, &valid.block, &bytes), Err(BlockError::UpdateRootMismatch));
    assert_eq!(assumed(&chain, &valid.block, &[]), Err(BlockError::MissingUpdate));

    // A committed checkpoint of another shape under a header with the right one: the update
    // cannot give it, and that is still checked.
    let mut t = template(&chain, &miner, vec![]);
    let d = t.header.shape.d_model as usize;
    let bigger = grow(&t.checkpoint.model, d + 2, 2, 3).unwrap();
    t.set_checkpoint_bytes(Checkpoint::new(8, bigger).to_bytes());
    let wrong_config = t.finish(&miner.key);
    let e = assumed(&chain, &wrong_config.block, &wrong_config.update_bytes);
    assert!(matches!(e, Err(BlockError::BadUpdate(UpdateError::RootMismatch { .. }))), "{e:?}");

    // A claimed improvement below the requirement.
    let mut t = template(&chain, &miner, vec![]);
    t.header.val_loss = t.header.parent_loss - required(&chain) + 1;
    let short = t.finish(&miner.key);
    assert!(matches!(
        assumed(&chain, &short.block, &short.update_bytes),
        Err(BlockError::InsufficientImprovement { .. })
    ));

    // A sample that is not the one the header draws.
    let mut block = valid.block.clone();
    block.sample.records.swap(0, 1);
    assert!(matches!(
        assumed(&chain, &block, &valid.update_bytes),
        Err(BlockError::SampleOutOfOrder { .. })
    ));
}
