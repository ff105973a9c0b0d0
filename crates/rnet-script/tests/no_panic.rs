//! Property tests: random scripts, witness stacks and transactions never panic the interpreter,
//! and batch mode never accepts what immediate mode rejects.

use proptest::prelude::*;
use rnet_crypto::{BatchVerifier, SigningKey};
use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
use rnet_script::opcodes::*;
use rnet_script::templates::{script_hash, script_hash_script_pubkey};
use rnet_script::{
    EmissionReturn, Heartbeat, Htlc, RelativeLock, ScriptTemplate, SighashCache, Social,
    VerifyFlags, verify_input, verify_input_batched,
};

/// The genesis id the signatures are checked for (any 32 bytes).
const GENESIS: BlockHash = BlockHash([0x47; 32]);

/// Defined opcodes plus a few undefined ones, so random scripts get past the parser often.
const INTERESTING: &[u8] = &[
    OP_0,
    OP_1NEGATE,
    OP_1,
    OP_2,
    OP_3,
    OP_16,
    OP_IF,
    OP_NOTIF,
    OP_ELSE,
    OP_ENDIF,
    OP_VERIFY,
    OP_RETURN,
    OP_TOALTSTACK,
    OP_FROMALTSTACK,
    OP_2DROP,
    OP_2DUP,
    OP_DROP,
    OP_DUP,
    OP_OVER,
    OP_PICK,
    OP_ROLL,
    OP_ROT,
    OP_SWAP,
    OP_SIZE,
    OP_EQUAL,
    OP_EQUALVERIFY,
    OP_1ADD,
    OP_NOT,
    OP_0NOTEQUAL,
    OP_ADD,
    OP_SUB,
    OP_BOOLAND,
    OP_BOOLOR,
    OP_NUMEQUAL,
    OP_NUMEQUALVERIFY,
    OP_LESSTHAN,
    OP_GREATERTHAN,
    OP_WITHIN,
    OP_KECCAK256D,
    OP_CHECKSIG,
    OP_CHECKSIGVERIFY,
    OP_CHECKMULTISIG,
    OP_CHECKMULTISIGVERIFY,
    OP_CHECKLOCKTIMEVERIFY,
    OP_CHECKSEQUENCEVERIFY,
    OP_CHECKRECOVERYPENDINGVERIFY,
    OP_CHECKEMISSIONVERIFY,
    OP_PUSHDATA1,
    OP_PUSHDATA2,
    OP_PUSHDATA4,
    0x50,
    0x61,
    0xff,
];

fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(INTERESTING).prop_map(|op| vec![op]),
        2 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|d| {
            rnet_script::Builder::new().push_slice(&d).into_bytes()
        }),
        1 => any::<i32>().prop_map(|n| rnet_script::Builder::new().push_int(i64::from(n)).into_bytes()),
        1 => Just(rnet_script::Builder::new().push_slice(&SigningKey::from_bytes(&[1; 32]).public_key().to_bytes()).into_bytes()),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ]
}

fn script() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(token(), 0..60).prop_map(|t| t.concat()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

fn item() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..4),
        1 => prop::collection::vec(any::<u8>(), 31..34),
        1 => prop::collection::vec(any::<u8>(), 63..66),
        1 => prop::collection::vec(any::<u8>(), 0..600),
    ]
}

fn output() -> impl Strategy<Value = TxOut> {
    (any::<u64>(), prop::collection::vec(any::<u8>(), 0..40))
        .prop_map(|(v, s)| TxOut { value: Amount(v), script_pubkey: s })
}

/// A transaction with `n` inputs whose input 0 carries `witness`.
fn tx_with(
    witness: Vec<Vec<u8>>,
    version: u32,
    lock_time: u32,
    sequence: u32,
    outputs: Vec<TxOut>,
) -> Transaction {
    Transaction {
        version,
        inputs: vec![
            TxIn {
                previous_output: OutPoint::new(Txid::from_bytes([1; 32]), 0),
                script_sig: Vec::new(),
                sequence,
                witness: Witness(witness),
            },
            TxIn {
                previous_output: OutPoint::new(Txid::from_bytes([2; 32]), 1),
                script_sig: Vec::new(),
                sequence: 0,
                witness: Witness::new(),
            },
        ],
        outputs,
        lock_time,
    }
}

/// Runs input 0 in both modes; asserts no panic (implicitly) and that batch mode is never
/// stricter than immediate mode is lax: immediate Ok ⇒ batched Ok and the batch verifies.
fn run_both(tx: &Transaction, spent: &[TxOut]) {
    let cache = SighashCache::new(&GENESIS, tx, spent).unwrap();
    let ctx = cache.spend_context(0).unwrap();
    let immediate = verify_input(&ctx, VerifyFlags::CONSENSUS);
    let mut batch = BatchVerifier::new();
    let batched = verify_input_batched(&ctx, VerifyFlags::CONSENSUS, &mut batch);
    let batched_ok = batched.is_ok() && batch.verify().is_ok();
    assert_eq!(immediate.is_ok(), batched_ok, "{immediate:?} vs {batched:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_scripts_never_panic(
        script in script(),
        args in prop::collection::vec(item(), 0..8),
        version in 0u32..4,
        lock_time in any::<u32>(),
        sequence in any::<u32>(),
        outputs in prop::collection::vec(output(), 0..3),
        other in output(),
    ) {
        let spk = script_hash_script_pubkey(&script_hash(&script));
        let mut witness = args;
        witness.push(script);
        let tx = tx_with(witness, version, lock_time, sequence, outputs);
        let spent = vec![TxOut { value: Amount(1000), script_pubkey: spk }, other];
        run_both(&tx, &spent);
    }

    #[test]
    fn random_witnesses_never_panic(
        spk in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..45),
            (0u8..17, prop::collection::vec(any::<u8>(), 2..41)).prop_map(|(v, p)| {
                let mut s = vec![if v == 0 { 0 } else { 0x50 + v }, p.len() as u8];
                s.extend(p);
                s
            }),
        ],
        witness in prop::collection::vec(item(), 0..5),
        sequence in any::<u32>(),
    ) {
        let tx = tx_with(witness, 2, 0, sequence, vec![]);
        let spent = vec![TxOut { value: Amount(5), script_pubkey: spk }, TxOut { value: Amount(1), script_pubkey: vec![] }];
        run_both(&tx, &spent);
    }

    #[test]
    fn random_arguments_to_templates_never_panic(
        which in 0usize..4,
        args in prop::collection::vec(item(), 0..6),
        version in 0u32..3,
        lock_time in any::<u32>(),
        sequence in any::<u32>(),
        outputs in prop::collection::vec(output(), 0..3),
    ) {
        let k = |n: u8| SigningKey::from_bytes(&[n; 32]).public_key();
        let script = match which {
            0 => Heartbeat::new(k(1), k(2), RelativeLock::Blocks(10)).unwrap().witness_script(),
            1 => Social::new(k(1), vec![k(2), k(3), k(4)], 2, RelativeLock::Blocks(10)).unwrap().witness_script(),
            2 => EmissionReturn::new(k(1), RelativeLock::Time(3)).unwrap().witness_script(),
            _ => Htlc::new(k(1), k(2), [5; 32], 100).unwrap().witness_script(),
        };
        let spk = script_hash_script_pubkey(&script_hash(&script));
        let mut witness = args;
        witness.push(script);
        let tx = tx_with(witness, version, lock_time, sequence, outputs);
        let spent = vec![TxOut { value: Amount(1000), script_pubkey: spk }, TxOut { value: Amount(7), script_pubkey: vec![0x6a] }];
        run_both(&tx, &spent);
    }

    #[test]
    fn disassembly_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = rnet_script::disassemble(&bytes);
        let _ = rnet_script::classify(&bytes);
    }
}
