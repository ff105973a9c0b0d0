//! Signatures do not replay across networks (issue 13 item 6).
//!
//! Every signature hash commits to the genesis id of its chain (`docs/protocol.md` Part IV §6),
//! and every coinbase carries its network's magic (Part V §3.1). So a transaction signed for one
//! network is invalid on every other, even where the outpoint it spends exists on both, and no
//! coinbase (hence no coin descending from one) is shared between networks.

mod common;

use common::*;
use rnet_consensus::{BlockError, ChainParams, TxError};
use rnet_primitives::{Amount, BlockHash, COIN, Network, OutPoint, Transaction, TxOut, Txid};
use rnet_script::{ScriptError, TxScriptError, VerifyFlags, verify_transaction};
use rnet_testkit::{
    MemoryChain, SubmitError, TestMiner, coinbase, plain_spk, spend_plain_on, test_key,
};

fn networks() -> [ChainParams; 3] {
    Network::ALL.map(ChainParams::for_network)
}

const SIG_CHECK_FAILED: TxScriptError =
    TxScriptError { input: Some(0), error: ScriptError::SigCheckFailed };

/// A spend of one plain-key coin signed for `genesis`, checked against the same coin on every
/// network: valid only on the network it was signed for.
#[test]
fn a_spend_signed_for_one_network_verifies_on_no_other() {
    let key = test_key(0x51);
    let coin = TxOut { value: Amount(10 * COIN), script_pubkey: plain_spk(&key) };
    let op = OutPoint::new(Txid::from_bytes([7; 32]), 0);
    let out = TxOut { value: Amount(10 * COIN - 1000), script_pubkey: plain_spk(&test_key(2)) };
    let spent = [coin.clone()];
    let genesis: Vec<BlockHash> = networks().iter().map(ChainParams::genesis_hash).collect();
    for (signer, signed_for) in networks().iter().zip(&genesis) {
        let tx = spend_plain_on(signed_for, &key, &[(op, coin.clone())], vec![out.clone()]);
        for (verifier, verified_on) in networks().iter().zip(&genesis) {
            let result = verify_transaction(verified_on, &tx, &spent, VerifyFlags::CONSENSUS);
            if verifier.network == signer.network {
                assert_eq!(result, Ok(()), "{} on its own network", signer.network);
            } else {
                assert_eq!(
                    result,
                    Err(SIG_CHECK_FAILED),
                    "signed for {}, replayed on {}",
                    signer.network,
                    verifier.network
                );
            }
        }
    }
}

/// Coinbases of the same height, value and payout differ on every network (the magic follows
/// the height), so no coinbase coin, nor any coin descending from one, exists on two networks.
#[test]
fn coinbases_of_the_same_height_differ_across_networks() {
    let spk = plain_spk(&payout_key());
    for height in [0, 1, 1000] {
        let txids: Vec<Txid> = networks()
            .iter()
            .map(|p| coinbase(p, height, Amount(50 * COIN), spk.clone()).txid())
            .collect();
        assert_ne!(txids[0], txids[1]);
        assert_ne!(txids[1], txids[2]);
        assert_ne!(txids[0], txids[2]);
    }
    let ids: Vec<Txid> = networks().iter().map(|p| p.genesis_coinbase().txid()).collect();
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
}

/// Two regtest chains with different genesis blocks (a relaunch: same network and magic, genesis
/// one second later) whose height-1 coinbases are byte-identical, so the same outpoint exists
/// on both. A block spending it with a transaction signed for the other chain is rejected by
/// `connect_block` (the block's signature batch fails, and the culprit is reported); signed for
/// its own chain, the same spend connects. Both directions.
#[test]
fn connect_block_rejects_a_spend_signed_for_another_genesis_of_the_same_outpoint() {
    let a = ChainParams::regtest();
    let b = ChainParams { genesis_time: a.genesis_time + 1, ..ChainParams::regtest() };
    assert_ne!(a.genesis_hash(), b.genesis_hash());
    let mut chains = [twin_chain(a), twin_chain(b)];
    let (op, coin) = coinbase_coin(&chains[0].0, 1);
    assert_eq!(coinbase_coin(&chains[1].0, 1), (op, coin.clone()), "the same outpoint on both");

    let genesis = [chains[0].0.params().genesis_hash(), chains[1].0.params().genesis_hash()];
    let spend = |signed_for: &BlockHash| {
        let out = to_payout(coin.value.0 - 1000);
        spend_plain_on(signed_for, &payout_key(), &[(op, coin.clone())], vec![out])
    };
    for (own, other) in [(0, 1), (1, 0)] {
        // Signed for the other chain: rejected here.
        let foreign = spend(&genesis[other]);
        let (chain, miner) = &mut chains[own];
        let e = try_spend(chain, miner, foreign.clone()).expect_err("replay rejected");
        assert_eq!(
            e,
            BlockError::Transaction {
                index: 1,
                txid: foreign.txid(),
                error: TxError::Script(SIG_CHECK_FAILED),
            }
        );
        assert!(e.is_permanent());
        // Signed for this chain: the same spend connects.
        let native = spend(&genesis[own]);
        try_spend(&mut chain.clone(), miner, native).expect("valid on its own chain");
    }
}

/// A regtest chain for `params` with 7 blocks: every coinbase pays exactly 1 RNT to the payout
/// key, so chains whose coinbase tags agree have identical coinbases at every height.
fn twin_chain(params: ChainParams) -> (MemoryChain, TestMiner) {
    let miner = TestMiner::new(params.clone());
    let mut chain = MemoryChain::new(params);
    for _ in 0..7 {
        let mut t = template(&chain, &miner, vec![]);
        t.coinbase_mut().outputs[0].value = Amount(COIN);
        chain.submit(&t.finish(&miner.key)).expect("mines");
    }
    (chain, miner)
}

fn try_spend(
    chain: &mut MemoryChain,
    miner: &TestMiner,
    tx: Transaction,
) -> Result<(), BlockError> {
    let mined = template(chain, miner, vec![tx]).finish(&miner.key);
    match chain.submit(&mined) {
        Ok(_) => Ok(()),
        Err(SubmitError::Invalid(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}
