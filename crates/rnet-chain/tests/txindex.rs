//! The transaction index (`ChainOptions::txindex`) and the lock-free reader: the index is built
//! when first enabled, follows connects and disconnects in the same write transaction, and is
//! deleted when the option is off; a `ChainReader` answers from committed snapshots.

mod common;

use common::TempDir;
use rnet_chain::{ChainError, ChainOptions, ChainState, ConsensusRules};
use rnet_consensus::{ChainParams, HeaderChain};
use rnet_primitives::{Amount, TxOut, Txid};
use rnet_testkit::{MemoryChain, TestMiner, plain_spk, spend_plain, test_key};

fn open(dir: &TempDir, params: &ChainParams, txindex: bool) -> ChainState {
    let options = ChainOptions {
        prune_checkpoints_depth: 0,
        sync_writes: false,
        txindex,
        ..ChainOptions::default()
    };
    ChainState::open_with(dir.path(), Box::new(ConsensusRules::new(params.clone())), options)
        .unwrap()
}

#[test]
fn transaction_index_follows_the_active_chain() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let alice = test_key(1);
    let mut mem = MemoryChain::new(params.clone());
    let mut mined = mem.mine_empty(&miner, 6, &plain_spk(&alice)).unwrap();
    let coin = mem.coins_paying(&plain_spk(&alice))[0].clone();
    let spend = spend_plain(
        &alice,
        &[(coin.0, coin.1.output.clone())],
        vec![TxOut {
            value: Amount(coin.1.output.value.0 - 1000),
            script_pubkey: plain_spk(&test_key(2)),
        }],
    );
    let (with_spend, _) = mem.mine(&miner, vec![spend.clone()], plain_spk(&alice)).unwrap();
    mined.push(with_spend);
    let now = mem.tip().time + 60;

    // Without the index: lookups say so.
    let dir = TempDir::new("txindex");
    let mut chain = open(&dir, &params, false);
    for m in &mined {
        chain.accept_block(m.block.clone(), Some(m.update_bytes.clone()), now).unwrap();
    }
    let reader = chain.reader();
    assert!(matches!(reader.indexed_transaction(&spend.txid()), Err(ChainError::NoTxIndex)));
    // A reader keeps the database open: drop both before reopening.
    drop((reader, chain));

    // Enabling it builds it over the existing chain.
    let mut chain = open(&dir, &params, true);
    let reader = chain.reader();
    assert!(reader.txindex_ready().unwrap());
    let tip = chain.tip().hash;
    let (tx, block) = reader.indexed_transaction(&spend.txid()).unwrap().expect("indexed");
    assert_eq!((tx.txid(), block), (spend.txid(), tip));
    let coinbase_1 = mined[0].block.transactions[0].txid();
    assert_eq!(
        reader.indexed_transaction(&coinbase_1).unwrap().map(|(_, b)| b),
        Some(mined[0].block.block_hash())
    );
    assert_eq!(reader.indexed_transaction(&Txid::from_bytes([9; 32])).unwrap(), None);

    // Disconnecting the block removes its transactions; the reader sees the new state at once.
    chain.invalidate_block(&tip).unwrap();
    assert_eq!(reader.indexed_transaction(&spend.txid()).unwrap(), None);
    assert_eq!(reader.tip().unwrap().hash, chain.tip().hash);
    // Reconnecting adds them back.
    chain.reconsider_block(&tip).unwrap();
    assert_eq!(reader.indexed_transaction(&spend.txid()).unwrap().map(|(_, b)| b), Some(tip));
    drop((reader, chain));

    // Turning it off deletes it; turning it on again rebuilds it.
    drop(open(&dir, &params, false));
    let chain = open(&dir, &params, false);
    assert!(!chain.reader().txindex_ready().unwrap());
    drop(chain);
    let chain = open(&dir, &params, true);
    assert_eq!(
        chain.reader().indexed_transaction(&spend.txid()).unwrap().map(|(_, b)| b),
        Some(tip)
    );
}
