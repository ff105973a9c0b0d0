//! The test miner builds real blocks quickly, and the memory chain keeps consistent books.

use std::time::Instant;

use rnet_consensus::{ChainParams, HeaderChain, check_proof_of_training};
use rnet_testkit::{MemoryChain, TestMiner, plain_spk, test_key};

#[test]
fn mines_real_regtest_blocks_in_well_under_a_second() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut chain = MemoryChain::new(params.clone());
    let spk = plain_spk(&test_key(1));
    let start = Instant::now();
    for _ in 0..10 {
        let parent = chain.tip();
        let t = Instant::now();
        let (mined, _) = chain.mine(&miner, vec![], spk.clone()).unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(secs < 1.0, "block took {secs:.3} s");
        // The checkpoint really evaluates to the header's loss.
        check_proof_of_training(&params, &mined.block.header, &parent, &mined.checkpoint_bytes)
            .unwrap();
        assert_eq!(mined.checkpoint.height, u64::from(mined.block.header.height));
    }
    eprintln!("10 blocks mined and validated in {:.2} s", start.elapsed().as_secs_f64());
    assert_eq!(chain.height(), 10);
    assert_eq!(chain.utxo_value(), chain.tip().circulating_supply);
    assert_eq!(chain.coins_paying(&spk).len(), 10);
}
