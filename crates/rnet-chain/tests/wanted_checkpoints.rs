//! `ChainState::wanted_updates` and `wanted_checkpoints`: what the node asks peers for. A stored
//! block whose update never arrived (a download cut short by a crash) is wanted, across a
//! restart; a damaged tip checkpoint is dropped and wanted again; stored data is not wanted.

mod common;

use common::TempDir;
use rnet_chain::{AcceptOutcome, ChainError, ChainOptions, ChainState, ConsensusRules};
use rnet_consensus::{ChainParams, HeaderChain};
use rnet_testkit::{MemoryChain, TestMiner, plain_spk, test_key};

fn open(dir: &TempDir, params: &ChainParams) -> ChainState {
    let options =
        ChainOptions { prune_checkpoints_depth: 0, sync_writes: false, ..ChainOptions::default() };
    ChainState::open_with(dir.path(), Box::new(ConsensusRules::new(params.clone())), options)
        .unwrap()
}

#[test]
fn missing_and_damaged_checkpoints_are_wanted_until_stored() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut mem = MemoryChain::new(params.clone());
    let mined = mem.mine_empty(&miner, 2, &plain_spk(&test_key(4))).unwrap();
    let now = mem.tip().time + 60;
    let dir = TempDir::new("wanted-checkpoints");
    let mut chain = open(&dir, &params);
    assert!(chain.wanted_checkpoints(10).unwrap().is_empty());
    assert!(chain.wanted_updates(10).unwrap().is_empty());

    // Block 1 arrives without its update (the download was lost): wanted, also after a restart.
    let b1 = &mined[0];
    let outcome = chain.accept_block(b1.block.clone(), None, now).unwrap();
    assert!(matches!(outcome, AcceptOutcome::MissingUpdate), "{outcome:?}");
    assert_eq!(chain.wanted_updates(10).unwrap(), vec![b1.block.block_hash()]);
    assert!(chain.wanted_checkpoints(10).unwrap().is_empty(), "its checkpoint is derived");
    drop(chain);
    let mut chain = open(&dir, &params);
    assert_eq!(chain.wanted_updates(10).unwrap(), vec![b1.block.block_hash()]);
    assert!(chain.wanted_updates(0).unwrap().is_empty());

    // Its update arrives: connected with the derived checkpoint, nothing wanted.
    let outcome =
        chain.accept_update(&b1.block.block_hash(), b1.update_bytes.clone(), now).unwrap();
    assert!(matches!(outcome, AcceptOutcome::Connected { .. }), "{outcome:?}");
    assert!(chain.wanted_updates(10).unwrap().is_empty());
    assert!(chain.wanted_checkpoints(10).unwrap().is_empty());
    assert_eq!(
        chain.checkpoint(&b1.block.block_hash()).unwrap(),
        Some(b1.checkpoint_bytes.clone())
    );

    // The tip's checkpoint file gets damaged on disk: reading it is an error, never bad bytes;
    // dropping it makes it wanted, and the genuine bytes restore it.
    let tip = chain.tip().hash;
    let file = dir.path().join("checkpoints").join(format!("{}.ckpt", tip.to_hex()));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0xFF;
    std::fs::write(&file, &bytes).unwrap();
    assert!(matches!(chain.checkpoint(&tip), Err(ChainError::Corrupt(_))));
    chain.drop_damaged_checkpoint(&tip).unwrap();
    assert_eq!(chain.checkpoint(&tip).unwrap(), None);
    assert_eq!(chain.wanted_checkpoints(10).unwrap(), vec![tip]);
    chain.accept_checkpoint(&tip, b1.checkpoint_bytes.clone(), now).unwrap();
    assert!(chain.wanted_checkpoints(10).unwrap().is_empty());
    assert_eq!(chain.checkpoint(&tip).unwrap().as_deref(), Some(b1.checkpoint_bytes.as_slice()));
}
