//! `-assumevalid` in the chainstate (`ChainOptions::assume_valid`, docs/protocol.md Part V
//! §7.1): blocks up to and including the assumed-valid block skip the Proof-of-Training
//! evaluations (everything else is still checked), blocks after it and blocks of other
//! branches are evaluated, and an unknown or absent hash changes nothing.

mod common;

use common::TempDir;
use common::counting::{Counters, Counting};
use rnet_chain::{AcceptOutcome, ChainOptions, ChainState};
use rnet_consensus::ChainParams;
use rnet_primitives::{BlockHash, BlockHeader};
use rnet_testkit::{MemoryChain, MinedBlock, TestMiner, plain_spk, test_key};

/// A fresh chainstate in `dir` with counting rules and `-assumevalid=assume_valid`; with
/// `headers`, they are noted first, as the network delivers them before the blocks.
fn open(
    dir: &TempDir,
    params: &ChainParams,
    assume_valid: Option<BlockHash>,
    headers: &[&MinedBlock],
) -> (ChainState, Counters) {
    let (rules, counters) = Counting::new(params.clone());
    let options = ChainOptions {
        prune_checkpoints_depth: 0,
        sync_writes: false,
        assume_valid,
        // Snapshot sync has its own tests (tests/snapshot_sync.rs): here every block brings its
        // update and only the evaluations are skipped.
        snapshot_sync: false,
        ..Default::default()
    };
    let mut chain = ChainState::open_with(dir.path(), Box::new(rules), options).unwrap();
    let headers: Vec<BlockHeader> = headers.iter().map(|b| b.block.header.clone()).collect();
    chain.note_headers(&headers);
    (chain, counters)
}

/// Syncs `blocks` into a fresh chainstate with `assume_valid`; returns (full evaluations,
/// assumed checks) and checks every block connected.
fn sync(
    params: &ChainParams,
    blocks: &[MinedBlock],
    assume_valid: Option<BlockHash>,
) -> (usize, usize) {
    let dir = TempDir::new("assume-valid");
    let (mut chain, counters) =
        open(&dir, params, assume_valid, &blocks.iter().collect::<Vec<_>>());
    let now = blocks.last().unwrap().block.header.time + 60;
    for b in blocks {
        let outcome = chain.accept_block(b.block.clone(), Some(b.update_bytes.clone()), now);
        assert!(matches!(outcome, Ok(AcceptOutcome::Connected { .. })), "{outcome:?}");
    }
    assert_eq!(chain.tip().hash, blocks.last().unwrap().block.block_hash());
    (counters.evaluations(), counters.assumed())
}

#[test]
fn ancestors_of_the_assumed_valid_block_skip_only_the_evaluations() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut memory = MemoryChain::new(params.clone());
    let blocks = memory.mine_empty(&miner, 6, &plain_spk(&test_key(5))).unwrap();
    let fourth = blocks[3].block.block_hash();

    assert_eq!(sync(&params, &blocks, None), (6, 0), "no assumevalid: every block evaluated");
    assert_eq!(sync(&params, &blocks, Some(fourth)), (2, 4), "blocks 1-4 assumed, 5-6 evaluated");
    let tip = blocks[5].block.block_hash();
    assert_eq!(sync(&params, &blocks, Some(tip)), (0, 6));
    // A hash the node has never seen (another chain's block) covers nothing.
    assert_eq!(sync(&params, &blocks, Some(BlockHash([7; 32]))), (6, 0));
}

#[test]
fn without_headers_the_assumed_block_covers_itself_once_stored() {
    // Blocks alone, no header announcements: an ancestor cannot be recognised before the
    // assumed-valid block is stored, so each is evaluated; the assumed block itself is not.
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut memory = MemoryChain::new(params.clone());
    let blocks = memory.mine_empty(&miner, 3, &plain_spk(&test_key(5))).unwrap();
    let dir = TempDir::new("assume-valid-noheaders");
    let (mut chain, counters) = open(&dir, &params, Some(blocks[2].block.block_hash()), &[]);
    let now = blocks[2].block.header.time + 60;
    for b in &blocks {
        chain.accept_block(b.block.clone(), Some(b.update_bytes.clone()), now).unwrap();
    }
    assert_eq!(chain.tip().hash, blocks[2].block.block_hash());
    assert_eq!((counters.evaluations(), counters.assumed()), (2, 1));
}

#[test]
fn blocks_off_the_assumed_chain_are_evaluated() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut memory = MemoryChain::new(params.clone());
    let main = memory.mine_empty(&miner, 3, &plain_spk(&test_key(5))).unwrap();
    // A sibling branch from genesis (another payout key, so other blocks).
    let mut other = MemoryChain::new(params.clone());
    let side = other.mine_empty(&miner, 2, &plain_spk(&test_key(6))).unwrap();
    assert_ne!(side[0].block.block_hash(), main[0].block.block_hash());

    let dir = TempDir::new("assume-valid-fork");
    let headers: Vec<&MinedBlock> = side.iter().chain(&main).collect();
    let (mut chain, counters) = open(&dir, &params, Some(main[2].block.block_hash()), &headers);
    let now = main[2].block.header.time.max(side[1].block.header.time) + 60;
    // Headers-first order: the assumed chain's blocks arrive after the side branch is active.
    for b in side.iter().chain(&main) {
        chain.accept_block(b.block.clone(), Some(b.update_bytes.clone()), now).unwrap();
    }
    assert_eq!(chain.tip().hash, main[2].block.block_hash());
    assert_eq!(counters.assumed(), 3, "the assumed chain");
    assert_eq!(counters.evaluations(), 2, "the side branch, evaluated");
}
