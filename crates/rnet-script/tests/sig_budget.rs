//! The per-input signature-check budget (protocol Part IV §5): 50 + the encoded size of the
//! witness, 50 per non-empty signature, charged before the signature is verified.
//!
//! The attack it closes: `<K> (2DUP CHECKSIGVERIFY)×100 CHECKSIG` makes one 344-byte witness
//! force 101 Ed25519 verifications of the same signature.

use std::time::Instant;

use rnet_crypto::{BatchVerifier, SigningKey};
use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
use rnet_script::opcodes::{
    OP_2DUP, OP_CHECKMULTISIG, OP_CHECKSIG, OP_CHECKSIGVERIFY, OP_DROP, OP_TRUE,
};
use rnet_script::templates::{script_hash, script_hash_script_pubkey};
use rnet_script::{
    Builder, SIG_CHECK_COST, ScriptError, SighashCache, SighashType, VerifyFlags, sig_check_budget,
    verify_transaction, verify_transaction_batched,
};

const GENESIS: BlockHash = BlockHash([0x47; 32]);

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// `DROP×pads <K> (2DUP CHECKSIGVERIFY)×(checks-1) CHECKSIG`: `checks` verifications of one
/// signature, after dropping `pads` padding items.
fn repeated_check_script(checks: usize, pads: usize) -> Vec<u8> {
    let mut b = Builder::new();
    for _ in 0..pads {
        b = b.push_opcode(OP_DROP);
    }
    b = b.push_key(&key(1).public_key());
    for _ in 1..checks {
        b = b.push_opcode(OP_2DUP).push_opcode(OP_CHECKSIGVERIFY);
    }
    b.push_opcode(OP_CHECKSIG).into_bytes()
}

/// The script of `checks` checks and padding lengths whose witness budget is exactly
/// `checks × 50` (or the smallest budget above it that the bare witness has), minus `short`.
fn paid_exactly(checks: usize, short: usize) -> (Vec<u8>, Vec<usize>) {
    for n in 0.. {
        let script = repeated_check_script(checks, n);
        let (probe, _) = spend_all(&script, 1, &vec![0; n]);
        let base = sig_check_budget(probe.inputs[0].witness.items()) as usize;
        let extra = (checks * SIG_CHECK_COST as usize).saturating_sub(base).saturating_sub(short);
        // Each pad byte adds one to the budget while a pad stays under 253 bytes.
        if extra <= n * 250 {
            let mut pads = vec![extra / n.max(1); n];
            for p in pads.iter_mut().take(extra % n.max(1)) {
                *p += 1;
            }
            return (script, pads);
        }
    }
    unreachable!()
}

/// A transaction with `inputs` inputs, each spending a script-hash output of `script` with the
/// witness `[sig, pad…, script]` (pads of the given lengths).
fn spend_all(script: &[u8], inputs: usize, pads: &[usize]) -> (Transaction, Vec<TxOut>) {
    let spk = script_hash_script_pubkey(&script_hash(script));
    let spent: Vec<TxOut> =
        (0..inputs).map(|_| TxOut { value: Amount(1_000), script_pubkey: spk.clone() }).collect();
    let mut tx = Transaction {
        version: 2,
        inputs: (0..inputs)
            .map(|i| TxIn {
                previous_output: OutPoint::new(Txid::from_bytes([7; 32]), i as u32),
                script_sig: Vec::new(),
                sequence: 0,
                witness: Witness::new(),
            })
            .collect(),
        outputs: vec![TxOut { value: Amount(500), script_pubkey: vec![0x51, 2, 0, 0] }],
        lock_time: 0,
    };
    let sigs: Vec<Vec<u8>> = {
        let cache = SighashCache::new(&GENESIS, &tx, &spent).unwrap();
        (0..inputs).map(|i| cache.sign(&key(1), i, script, SighashType::All).unwrap()).collect()
    };
    for (input, sig) in tx.inputs.iter_mut().zip(sigs) {
        let mut items = vec![sig];
        items.extend(pads.iter().map(|&len| vec![0xAB; len]));
        items.push(script.to_vec());
        input.witness = Witness(items);
    }
    (tx, spent)
}

fn verify(tx: &Transaction, spent: &[TxOut]) -> Result<(), ScriptError> {
    verify_transaction(&GENESIS, tx, spent, VerifyFlags::CONSENSUS).map_err(|e| e.error)
}

#[test]
fn the_repeated_checksig_attack_is_refused_before_its_signatures_are_verified() {
    let script = repeated_check_script(101, 0);
    let (tx, spent) = spend_all(&script, 1, &[]);
    let witness_size = tx.inputs[0].witness.items().iter().map(|i| i.len()).sum::<usize>();
    let budget = sig_check_budget(tx.inputs[0].witness.items());
    println!("witness {witness_size} bytes, budget {budget}: pays for {} checks", budget / 50);
    assert!(witness_size < 400, "the attack witness is small ({witness_size} bytes)");
    assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckBudget));

    // Batched: the checks the budget pays for are queued, the 8th is refused, and nothing has
    // been verified yet (counting comes before verifying).
    let mut batch = BatchVerifier::new();
    let r = verify_transaction_batched(&GENESIS, &tx, &spent, VerifyFlags::CONSENSUS, &mut batch);
    assert_eq!(r.map_err(|e| e.error), Err(ScriptError::SigCheckBudget));
    assert_eq!(batch.len() as u64, budget / SIG_CHECK_COST);
}

#[test]
fn the_budget_is_fifty_plus_the_witness_size_exactly() {
    // Pad the witness until it pays for exactly `checks` checks, then one byte less.
    for checks in [7usize, 30, 90] {
        let (script, pads) = paid_exactly(checks, 0);
        let (tx, spent) = spend_all(&script, 1, &pads);
        assert_eq!(
            sig_check_budget(tx.inputs[0].witness.items()),
            checks as u64 * SIG_CHECK_COST,
            "{checks} checks"
        );
        assert_eq!(verify(&tx, &spent), Ok(()), "{checks} checks paid by the witness");
        let (script, pads) = paid_exactly(checks, 1);
        let (short, spent) = spend_all(&script, 1, &pads);
        assert_eq!(verify(&short, &spent), Err(ScriptError::SigCheckBudget), "{checks} checks");
    }
}

#[test]
fn multisig_signatures_are_all_charged_before_the_first_is_verified() {
    // 20-of-20: 20 signatures pay for themselves (65+ bytes each against 50).
    let keys: Vec<SigningKey> = (1..=20).map(key).collect();
    let mut b = Builder::new().push_int(20);
    for k in &keys {
        b = b.push_key(&k.public_key());
    }
    let script = b.push_int(20).push_opcode(OP_CHECKMULTISIG).into_bytes();
    let spk = script_hash_script_pubkey(&script_hash(&script));
    let spent = vec![TxOut { value: Amount(1_000), script_pubkey: spk }];
    let mut tx = Transaction {
        version: 2,
        inputs: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_bytes([9; 32]), 0),
            script_sig: Vec::new(),
            sequence: 0,
            witness: Witness::new(),
        }],
        outputs: vec![TxOut { value: Amount(500), script_pubkey: vec![0x51, 2, 0, 0] }],
        lock_time: 0,
    };
    let cache_sigs: Vec<Vec<u8>> = {
        let cache = SighashCache::new(&GENESIS, &tx, &spent).unwrap();
        keys.iter().map(|k| cache.sign(k, 0, &script, SighashType::All).unwrap()).collect()
    };
    let mut items = cache_sigs;
    items.push(script.clone());
    tx.inputs[0].witness = Witness(items);
    assert_eq!(verify(&tx, &spent), Ok(()));
    assert!(sig_check_budget(tx.inputs[0].witness.items()) >= 20 * SIG_CHECK_COST);
}

#[test]
fn a_plain_key_spend_and_an_empty_signature_cost_nothing_extra() {
    // `<sig> <K> CHECKSIG` with the smallest witness that can carry a signature still passes;
    // an empty signature is free (it is never verified).
    let script = repeated_check_script(1, 0);
    let (tx, spent) = spend_all(&script, 1, &[]);
    assert_eq!(verify(&tx, &spent), Ok(()));
    let free = Builder::new()
        .push_key(&key(1).public_key())
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_DROP)
        .push_opcode(OP_TRUE)
        .into_bytes();
    let spk = script_hash_script_pubkey(&script_hash(&free));
    let spent = [TxOut { value: Amount(10), script_pubkey: spk }];
    let mut tx = tx.clone();
    tx.inputs[0].witness = Witness(vec![Vec::new(), free]);
    assert_eq!(verify(&tx, &spent[..1]), Ok(()));
}

/// The figure of the issue: the worst standard transaction (about 100 kB) under the budget.
/// Before the budget, 290 inputs of the attack script forced 29,290 verifications (1.39 s).
#[test]
fn worst_standard_transaction_figure() {
    // The densest standard input: each check paid by exactly 50 witness bytes.
    let checks = 40;
    let (script, pads) = paid_exactly(checks, 0);
    let one = spend_all(&script, 1, &pads).0.total_size();
    let inputs = 99_000 / one.max(1);
    let (tx, spent) = spend_all(&script, inputs, &pads);
    assert!(tx.total_size() <= 100_000, "standard size: {}", tx.total_size());
    let start = Instant::now();
    let mut batch = BatchVerifier::new();
    verify_transaction_batched(&GENESIS, &tx, &spent, VerifyFlags::STANDARD, &mut batch).unwrap();
    let queued = batch.len();
    batch.verify().unwrap();
    let batched = start.elapsed();
    let start = Instant::now();
    verify(&tx, &spent).unwrap();
    let single = start.elapsed();
    println!(
        "worst standard tx: {} bytes, {inputs} inputs, {queued} signature checks; batched {:.1} ms, \
         one by one {:.1} ms",
        tx.total_size(),
        batched.as_secs_f64() * 1e3,
        single.as_secs_f64() * 1e3
    );
    assert_eq!(queued, inputs * checks);
    // Bounded by the bytes: at most one check per 50 witness bytes (plus one per input).
    assert!(queued as u64 <= tx.total_size() as u64 / SIG_CHECK_COST + inputs as u64);
}
