//! `-assumevalid` in the chainstate (`ChainOptions::assume_valid`, docs/protocol.md Part V
//! §7.1): blocks up to and including the assumed-valid block skip the Proof-of-Training
//! evaluations (everything else is still checked), blocks after it and blocks of other
//! branches are evaluated, and an unknown or absent hash changes nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TempDir;
use rnet_chain::{AcceptOutcome, ChainOptions, ChainRules, ChainState, ConsensusRules};
use rnet_consensus::{BlockEffects, BlockError, ChainParams, HeaderChain, HeaderSummary, UtxoView};
use rnet_primitives::{Block, BlockHash, BlockHeader, EvalSample, Network};
use rnet_testkit::{MemoryChain, MinedBlock, TestMiner, plain_spk, test_key};

/// The consensus rules, counting full and assumed Proof-of-Training checks.
struct Counting {
    inner: ConsensusRules,
    evaluations: Arc<AtomicUsize>,
    assumed: Arc<AtomicUsize>,
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
    fn check_proof_of_training_assumed(
        &self,
        header: &BlockHeader,
        parent: &HeaderSummary,
        sample: &EvalSample,
        parent_checkpoint: &[u8],
        checkpoint: &[u8],
    ) -> Result<(), BlockError> {
        self.assumed.fetch_add(1, Ordering::SeqCst);
        self.inner.check_proof_of_training_assumed(
            header,
            parent,
            sample,
            parent_checkpoint,
            checkpoint,
        )
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

/// Syncs `blocks` into a fresh chainstate with `assume_valid`; returns (full evaluations,
/// assumed checks) and checks every block connected.
fn sync(
    params: &ChainParams,
    blocks: &[MinedBlock],
    assume_valid: Option<BlockHash>,
) -> (usize, usize) {
    let dir = TempDir::new("assume-valid");
    let (evaluations, assumed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let rules = Counting {
        inner: ConsensusRules::new(params.clone()),
        evaluations: evaluations.clone(),
        assumed: assumed.clone(),
    };
    let options = ChainOptions {
        prune_checkpoints_depth: 0,
        sync_writes: false,
        assume_valid,
        ..Default::default()
    };
    let mut chain = ChainState::open_with(dir.path(), Box::new(rules), options).unwrap();
    // Headers first, as the network delivers them; then the blocks in order.
    let headers: Vec<BlockHeader> = blocks.iter().map(|b| b.block.header.clone()).collect();
    chain.note_headers(&headers);
    let now = blocks.last().unwrap().block.header.time + 60;
    for b in blocks {
        let outcome = chain.accept_block(b.block.clone(), Some(b.checkpoint_bytes.clone()), now);
        assert!(matches!(outcome, Ok(AcceptOutcome::Connected { .. })), "{outcome:?}");
    }
    assert_eq!(chain.tip().hash, blocks.last().unwrap().block.block_hash());
    (evaluations.load(Ordering::SeqCst), assumed.load(Ordering::SeqCst))
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
    let (evaluations, assumed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let rules = Counting {
        inner: ConsensusRules::new(params.clone()),
        evaluations: evaluations.clone(),
        assumed: assumed.clone(),
    };
    let options = ChainOptions {
        sync_writes: false,
        assume_valid: Some(blocks[2].block.block_hash()),
        ..Default::default()
    };
    let mut chain = ChainState::open_with(dir.path(), Box::new(rules), options).unwrap();
    let now = blocks[2].block.header.time + 60;
    for b in &blocks {
        chain.accept_block(b.block.clone(), Some(b.checkpoint_bytes.clone()), now).unwrap();
    }
    assert_eq!(chain.tip().hash, blocks[2].block.block_hash());
    assert_eq!((evaluations.load(Ordering::SeqCst), assumed.load(Ordering::SeqCst)), (2, 1));
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
    let (evaluations, assumed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let rules = Counting {
        inner: ConsensusRules::new(params.clone()),
        evaluations: evaluations.clone(),
        assumed: assumed.clone(),
    };
    let options = ChainOptions {
        prune_checkpoints_depth: 0,
        sync_writes: false,
        assume_valid: Some(main[2].block.block_hash()),
        ..Default::default()
    };
    let mut chain = ChainState::open_with(dir.path(), Box::new(rules), options).unwrap();
    let headers: Vec<BlockHeader> =
        side.iter().chain(&main).map(|b| b.block.header.clone()).collect();
    chain.note_headers(&headers);
    let now = main[2].block.header.time.max(side[1].block.header.time) + 60;
    // Headers-first order: the assumed chain's blocks arrive after the side branch is active.
    for b in side.iter().chain(&main) {
        chain.accept_block(b.block.clone(), Some(b.checkpoint_bytes.clone()), now).unwrap();
    }
    assert_eq!(chain.tip().hash, main[2].block.block_hash());
    assert_eq!(assumed.load(Ordering::SeqCst), 3, "the assumed chain");
    assert_eq!(evaluations.load(Ordering::SeqCst), 2, "the side branch, evaluated");
}
