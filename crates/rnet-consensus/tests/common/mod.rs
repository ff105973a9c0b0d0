//! Shared fixtures: a regtest chain with mature coinbase coins, mined once per test binary.
#![allow(dead_code)]

use std::sync::OnceLock;

use rnet_consensus::{BlockError, ChainParams, HeaderChain, TxError, check_proof_of_training};
use rnet_crypto::SigningKey;
use rnet_primitives::{Amount, Block, OutPoint, Transaction, TxOut};
use rnet_testkit::{
    BlockTemplate, MemoryChain, MinedBlock, SubmitError, TestMiner, plain_spk, test_key,
};

/// The miner's payout key.
pub fn payout_key() -> SigningKey {
    test_key(0xA1)
}

/// A regtest chain of 7 mined blocks paying [`payout_key`]: the coinbases of heights 1 and 2 are
/// spendable in block 8 (maturity 5).
pub fn base() -> (MemoryChain, TestMiner) {
    static BASE: OnceLock<(MemoryChain, TestMiner)> = OnceLock::new();
    BASE.get_or_init(|| {
        let params = ChainParams::regtest();
        let miner = TestMiner::new(params.clone());
        let mut chain = MemoryChain::new(params);
        chain.mine_empty(&miner, 7, &plain_spk(&payout_key())).expect("mines");
        (chain, miner)
    })
    .clone()
}

/// The coinbase coin of `height` as (outpoint, output).
pub fn coinbase_coin(chain: &MemoryChain, height: u32) -> (OutPoint, TxOut) {
    let block = chain.block(height).expect("block exists");
    let cb = &block.transactions[0];
    (OutPoint::new(cb.txid(), 0), cb.outputs[0].clone())
}

/// A template for the next block with `txs`, paying the payout key.
pub fn template(chain: &MemoryChain, miner: &TestMiner, txs: Vec<Transaction>) -> BlockTemplate {
    chain.template(miner, txs, plain_spk(&payout_key()), None, None).expect("template")
}

/// Submits and expects a consensus error.
pub fn reject(chain: &mut MemoryChain, mined: &MinedBlock) -> BlockError {
    reject_at(chain, mined, mined.block.header.time)
}

/// Submits at clock `now` and expects a consensus error.
pub fn reject_at(chain: &mut MemoryChain, mined: &MinedBlock, now: u64) -> BlockError {
    let before = chain.height();
    match chain.submit_at(&mined.block, &mined.update_bytes, now) {
        Err(SubmitError::Invalid(e)) => {
            assert_eq!(chain.height(), before);
            e
        }
        Err(e) => panic!("unexpected failure {e}"),
        Ok(_) => panic!("invalid block accepted"),
    }
}

/// The transaction error inside a `BlockError::Transaction`.
pub fn tx_error(e: BlockError) -> (usize, TxError) {
    match e {
        BlockError::Transaction { index, error, .. } => (index, error),
        other => panic!("expected a transaction error, got {other:?}"),
    }
}

/// An output of `value` resonance to the payout key.
pub fn to_payout(value: u64) -> TxOut {
    TxOut { value: Amount(value), script_pubkey: plain_spk(&payout_key()) }
}

/// The chain's required improvement for the next block (regtest: the floor).
pub fn required(chain: &MemoryChain) -> u64 {
    chain.params().min_required_improvement
}

/// Proof-of-Training of `block` with update bytes `update` on the chain's tip, exactly as a
/// validator runs it (the tip's checkpoint is the parent's).
pub fn pot(chain: &MemoryChain, block: &Block, update: &[u8]) -> Result<(), BlockError> {
    check_proof_of_training(
        chain.params(),
        &block.header,
        &chain.tip(),
        &block.sample,
        &chain.tip_checkpoint().to_bytes(),
        update,
    )
    .map(drop)
}
