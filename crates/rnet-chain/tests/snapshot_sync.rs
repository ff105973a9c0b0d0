//! Snapshot sync in the chainstate (`ChainOptions::snapshot_sync`, docs/protocol.md Part V §7.2):
//! with `-assumevalid=A`, the ancestors of `A` connect without any model data (their
//! transactions are still checked), `A` connects once its whole checkpoint arrives, and the
//! blocks after `A` derive their checkpoints from it with their updates. The result is the same
//! chain, UTXO set and model as a node that validated everything.

mod common;

use common::TempDir;
use common::counting::{Counters, Counting};
use rnet_chain::checkpoints::StageMode;
use rnet_chain::{AcceptOutcome, ChainError, ChainOptions, ChainState};
use rnet_consensus::ChainParams;
use rnet_primitives::{BlockHash, BlockHeader};
use rnet_testkit::{MemoryChain, MinedBlock, TestMiner, plain_spk, test_key};

fn open(
    dir: &TempDir,
    params: &ChainParams,
    assume_valid: Option<BlockHash>,
    headers: &[MinedBlock],
) -> (ChainState, Counters) {
    let (rules, counters) = Counting::new(params.clone());
    let options = ChainOptions {
        prune_checkpoints_depth: 0,
        sync_writes: false,
        assume_valid,
        ..Default::default()
    };
    let mut chain = ChainState::open_with(dir.path(), Box::new(rules), options).unwrap();
    let headers: Vec<BlockHeader> = headers.iter().map(|b| b.block.header.clone()).collect();
    chain.note_headers(&headers);
    (chain, counters)
}

#[test]
fn snapshot_then_updates_gives_the_fully_validated_chain() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut memory = MemoryChain::new(params.clone());
    let blocks = memory.mine_empty(&miner, 12, &plain_spk(&test_key(5))).unwrap();
    let now = blocks.last().unwrap().block.header.time + 60;
    let snapshot = &blocks[8]; // height 9
    let a = snapshot.block.block_hash();

    // The reference: every block with its update, everything evaluated.
    let full_dir = TempDir::new("snapshot-reference");
    let (mut full, full_counters) = open(&full_dir, &params, None, &[]);
    for b in &blocks {
        full.accept_block(b.block.clone(), Some(b.update_bytes.clone()), now).unwrap();
    }
    assert_eq!(full_counters.evaluations(), 12);

    // Snapshot sync: headers first, then blocks 1–8 without any model data connect at once.
    let dir = TempDir::new("snapshot-sync");
    let (mut chain, counters) = open(&dir, &params, Some(a), &blocks);
    for b in &blocks[..8] {
        let outcome = chain.accept_block(b.block.clone(), None, now).unwrap();
        assert!(matches!(outcome, AcceptOutcome::Connected { .. }), "{outcome:?}");
        assert!(chain.wanted_updates(16).unwrap().is_empty(), "no update is wanted below A");
    }
    assert_eq!(chain.height(), 8);
    assert_eq!((counters.evaluations(), counters.assumed()), (0, 0), "no model work below A");
    assert!(!chain.has_checkpoint(&blocks[7].block.block_hash()).unwrap());

    // A itself waits for its whole checkpoint, which is what the node asks peers for.
    let outcome = chain.accept_block(snapshot.block.clone(), None, now).unwrap();
    assert_eq!(outcome, AcceptOutcome::MissingUpdate);
    assert_eq!(chain.wanted_checkpoints(16).unwrap(), vec![a]);
    assert!(chain.wanted_updates(16).unwrap().is_empty());
    // Blocks after A arrive with their updates and wait for A.
    for b in &blocks[9..] {
        let outcome = chain.accept_block(b.block.clone(), Some(b.update_bytes.clone()), now);
        assert_eq!(outcome.unwrap(), AcceptOutcome::MissingUpdate);
    }
    // The checkpoint arrives (checked against A's committed root): everything connects, the
    // blocks after A evaluated against checkpoints derived from A's.
    let mut wrong = snapshot.checkpoint_bytes.clone();
    wrong[100] ^= 1;
    assert!(chain.accept_checkpoint(&a, wrong.clone(), now).is_err());
    // It arrives as a file (a finished download): staged and measured without the chain,
    // then adopted. A file with other bytes is refused and leaves nothing behind.
    let (bad_file, good_file) = (dir.path().join("bad.part"), dir.path().join("good.part"));
    std::fs::write(&bad_file, &wrong).unwrap();
    std::fs::write(&good_file, &snapshot.checkpoint_bytes).unwrap();
    let staged = chain.reader().stage_checkpoint(&a, &bad_file, StageMode::Move).unwrap();
    let refused = chain.accept_staged_checkpoint(&a, staged, now);
    assert!(matches!(refused, Err(ChainError::CheckpointMismatch { .. })), "{refused:?}");
    assert!(!chain.has_checkpoint(&a).unwrap());
    let staged = chain.reader().stage_checkpoint(&a, &good_file, StageMode::Copy).unwrap();
    let outcome = chain.accept_staged_checkpoint(&a, staged, now).unwrap();
    assert!(matches!(outcome, AcceptOutcome::Connected { .. }), "{outcome:?}");
    assert!(good_file.exists(), "a copied file stays");
    assert_eq!(chain.tip().hash, blocks.last().unwrap().block.block_hash());
    // Served from the file: chunk hashes checked against the root, bytes read from disk.
    let served = chain.reader().checkpoint_file(&a).unwrap().unwrap();
    assert_eq!(served.size, snapshot.checkpoint_bytes.len() as u64);
    assert_eq!(
        served.chunk_hashes,
        rnet_model::checkpoint::chunk_hashes(&snapshot.checkpoint_bytes)
    );
    assert_eq!(counters.evaluations(), 3, "only the three blocks after A are evaluated");
    assert!(chain.wanted_checkpoints(16).unwrap().is_empty());

    // Same chain, UTXO set and model as the fully validated node.
    assert_eq!(chain.tip(), full.tip());
    assert_eq!(chain.utxo_set_hash().unwrap(), full.utxo_set_hash().unwrap());
    let tip = chain.tip().hash;
    assert_eq!(chain.checkpoint(&tip).unwrap(), full.checkpoint(&tip).unwrap());
    assert_eq!(chain.checkpoint(&tip).unwrap(), Some(blocks[11].checkpoint_bytes.clone()));
    chain.verify_consistency().unwrap();
}

/// A block below A whose transactions are invalid is still refused: snapshot sync skips model
/// work, never transaction checks.
#[test]
fn snapshot_sync_still_checks_transactions() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut memory = MemoryChain::new(params.clone());
    let mut blocks = memory.mine_empty(&miner, 4, &plain_spk(&test_key(5))).unwrap();
    let now = blocks.last().unwrap().block.header.time + 60;
    // Block 2 with a coinbase claiming one unit more than allowed, re-signed (its sample is
    // unchanged: it depends on the parent, the checkpoint root and the key). It is A itself.
    let mut forged = blocks[1].clone();
    forged.block.transactions[0].outputs[0].value.0 += 1;
    forged.block.header.merkle_root = forged.block.compute_merkle_root().0;
    rnet_testkit::sign_header(&mut forged.block.header, &miner.key);
    blocks[1] = forged.clone();
    let a = forged.block.block_hash();
    let dir = TempDir::new("snapshot-invalid");
    let (mut chain, counters) = open(&dir, &params, Some(a), &blocks[..2]);
    chain.accept_block(blocks[0].block.clone(), None, now).unwrap();
    // With its checkpoint A is connectable, but its coinbase is refused.
    let outcome = chain.accept_block(forged.block.clone(), None, now).unwrap();
    assert_eq!(outcome, AcceptOutcome::MissingUpdate);
    let result = chain.accept_checkpoint(&a, forged.checkpoint_bytes.clone(), now);
    assert!(result.is_err(), "{result:?}");
    assert_eq!(chain.height(), 1);
    assert_eq!(counters.evaluations(), 0);
}
