//! The worst valid block under the signature-check budgets (Part IV §5, Part V §3), verified by
//! `connect_block` exactly as a node does, once with every signature good and once with the last
//! one bad (the batch fails and the culprit is found by bisection). Prints the figures recorded
//! in `docs/protocol.md` Part V §9; the target is under 5 s for the bad block.
//!
//! `cargo test --release -p rnet-consensus --test sig_budget -- --nocapture`

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::*;
use rnet_consensus::{
    BlockError, ChainParams, Coin, HeaderChain, TxError, UtxoView, connect_block,
};
use rnet_crypto::SigningKey;
use rnet_primitives::{Amount, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
use rnet_script::opcodes::{OP_2DUP, OP_CHECKSIG, OP_CHECKSIGVERIFY, OP_DROP};
use rnet_script::templates::{script_hash, script_hash_script_pubkey};
use rnet_script::{
    Builder, SIG_CHECK_COST, ScriptError, SighashCache, SighashType, TxScriptError,
    sig_check_budget,
};

/// Checks per input: the witness pays for each with exactly 50 bytes.
const CHECKS_PER_INPUT: usize = 40;
/// Inputs per transaction (each transaction stays under the 100 kB standard size).
const INPUTS_PER_TX: usize = 48;

/// `DROP×pads <K> (2DUP CHECKSIGVERIFY)×(checks-1) CHECKSIG`.
fn script(key: &SigningKey, pads: usize) -> Vec<u8> {
    let mut b = Builder::new();
    for _ in 0..pads {
        b = b.push_opcode(OP_DROP);
    }
    b = b.push_key(&key.public_key());
    for _ in 1..CHECKS_PER_INPUT {
        b = b.push_opcode(OP_2DUP).push_opcode(OP_CHECKSIGVERIFY);
    }
    b.push_opcode(OP_CHECKSIG).into_bytes()
}

/// Witness `[sig, pads…, script]` whose budget is exactly `CHECKS_PER_INPUT × 50`.
fn witness(sig: Vec<u8>, script: &[u8], pads: &[usize]) -> Witness {
    let mut items = vec![sig];
    items.extend(pads.iter().map(|&n| vec![0x5A; n]));
    items.push(script.to_vec());
    Witness(items)
}

fn pads_for(key: &SigningKey) -> (Vec<u8>, Vec<usize>) {
    let need = CHECKS_PER_INPUT * SIG_CHECK_COST as usize;
    for n in 1.. {
        let s = script(key, n);
        let base = sig_check_budget(witness(vec![0; 64], &s, &vec![0; n]).items()) as usize;
        let extra = need.saturating_sub(base);
        if extra <= n * 250 {
            let mut pads = vec![extra / n; n];
            for p in pads.iter_mut().take(extra % n) {
                *p += 1;
            }
            return (s, pads);
        }
    }
    unreachable!()
}

#[test]
fn worst_block_under_the_signature_budgets() {
    let (chain, miner) = base();
    let params = chain.params().clone();
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let (script, pads) = pads_for(&key);
    let spk = script_hash_script_pubkey(&script_hash(&script));
    let loss_index = chain.tip().loss_index;
    let total_inputs = params.max_block_sig_checks / CHECKS_PER_INPUT;

    // Coins for every input, and the transactions spending them.
    let mut coins: HashMap<OutPoint, Coin> = HashMap::new();
    let mut txs = Vec::new();
    let mut made = 0;
    while made < total_inputs {
        let n = INPUTS_PER_TX.min(total_inputs - made);
        let outpoints: Vec<OutPoint> = (made..made + n)
            .map(|i| OutPoint::new(Txid::from_bytes([0xC0; 32]), i as u32))
            .collect();
        let spent: Vec<TxOut> =
            (0..n).map(|_| TxOut { value: Amount(10_000), script_pubkey: spk.clone() }).collect();
        for (op, out) in outpoints.iter().zip(&spent) {
            coins.insert(
                *op,
                Coin {
                    output: out.clone(),
                    height: 1,
                    creation_mtp: 0,
                    is_coinbase: false,
                    creation_loss_index: loss_index,
                },
            );
        }
        let mut tx = Transaction {
            version: 2,
            inputs: outpoints
                .iter()
                .map(|op| TxIn {
                    previous_output: *op,
                    script_sig: Vec::new(),
                    sequence: 0,
                    witness: Witness::new(),
                })
                .collect(),
            outputs: vec![to_payout(n as u64 * 9_000)],
            lock_time: 0,
        };
        let sigs: Vec<Vec<u8>> = {
            let cache = SighashCache::new(&params.genesis_hash(), &tx, &spent).unwrap();
            (0..n).map(|i| cache.sign(&key, i, &script, SighashType::All).unwrap()).collect()
        };
        for (input, sig) in tx.inputs.iter_mut().zip(sigs) {
            input.witness = witness(sig, &script, &pads);
        }
        txs.push(tx);
        made += n;
    }
    let view = Overlay { chain: &chain, extra: &coins };

    let mined = template(&chain, &miner, txs.clone()).finish(&miner.key);
    let size = mined.block.base_size();
    assert!(size <= params.max_block_size, "block of {size} bytes");
    let t = Instant::now();
    connect_block(&params, &mined.block, &chain, &view).expect("the worst valid block connects");
    let good_s = t.elapsed().as_secs_f64();

    // The same block with the very last signature corrupted.
    let last = txs.len() - 1;
    let bad_input = txs[last].inputs.len() - 1;
    txs[last].inputs[bad_input].witness.0[0][10] ^= 1;
    let mined_bad = template(&chain, &miner, txs.clone()).finish(&miner.key);
    let t = Instant::now();
    let err = connect_block(&params, &mined_bad.block, &chain, &view).map(|_| ()).unwrap_err();
    let bad_s = t.elapsed().as_secs_f64();
    assert_eq!(
        tx_error(err),
        (
            last + 1,
            TxError::Script(TxScriptError {
                input: Some(bad_input),
                error: ScriptError::SigCheckFailed
            })
        )
    );

    // One more check anywhere and the block is refused before anything is verified.
    let one_more =
        ChainParams { max_block_sig_checks: total_inputs * CHECKS_PER_INPUT - 1, ..params.clone() };
    let t = Instant::now();
    let err = connect_block(&one_more, &mined.block, &chain, &view).map(|_| ()).unwrap_err();
    let refuse_s = t.elapsed().as_secs_f64();
    assert!(matches!(err, BlockError::TooManySigChecks { .. }), "{err:?}");

    println!(
        "FIGURE worst block under the budgets: {size} bytes, {} transactions, {total_inputs} \
         inputs, {} signature checks; valid: {good_s:.2} s; last signature bad (batch fails, \
         bisection finds it): {bad_s:.2} s; over the block budget: refused in {refuse_s:.2} s",
        txs.len(),
        total_inputs * CHECKS_PER_INPUT,
    );
}

/// The chain's coins plus the test's.
struct Overlay<'a> {
    chain: &'a rnet_testkit::MemoryChain,
    extra: &'a HashMap<OutPoint, Coin>,
}

impl UtxoView for Overlay<'_> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        self.extra.get(outpoint).cloned().or_else(|| self.chain.coin(outpoint))
    }
}
