//! The test miner builds real blocks quickly, and the memory chain keeps consistent books.

use std::time::Instant;

use rnet_consensus::{ChainParams, HeaderChain, check_proof_of_training};
use rnet_testkit::{MemoryChain, TestMiner, plain_spk, test_key};

#[test]
fn mines_real_regtest_blocks_that_pass_proof_of_training() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut chain = MemoryChain::new(params.clone());
    let spk = plain_spk(&test_key(1));
    let start = Instant::now();
    for _ in 0..10 {
        let parent = chain.tip();
        let parent_checkpoint = chain.tip_checkpoint().to_bytes();
        let (mined, _) = chain.mine(&miner, vec![], spk.clone()).unwrap();
        // The update gives the committed checkpoint, and both checkpoints really evaluate to the
        // header's losses on the block's sample.
        let derived = check_proof_of_training(
            &params,
            &mined.block.header,
            &parent,
            &mined.block.sample,
            &parent_checkpoint,
            &mined.update_bytes,
        )
        .unwrap();
        assert_eq!(derived.to_bytes(), mined.checkpoint_bytes);
        assert_eq!(mined.checkpoint.height, u64::from(mined.block.header.height));
    }
    eprintln!("10 blocks mined and validated in {:.2} s", start.elapsed().as_secs_f64());
    assert_eq!(chain.height(), 10);
    assert_eq!(chain.utxo_value(), chain.tip().circulating_supply);
    assert_eq!(chain.coins_paying(&spk).len(), 10);
}
