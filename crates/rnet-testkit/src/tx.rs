//! Transaction helpers for tests: unsigned spends and signing of plain-key inputs.
//!
//! Signatures commit to the genesis id of the chain they are for (`docs/protocol.md` Part IV §6).
//! [`sign_plain`] and [`spend_plain`] sign for **regtest** ([`regtest_genesis`]), which is what
//! almost every test chain is; [`sign_plain_on`] and [`spend_plain_on`] take the genesis id of
//! another chain (e.g. `params.genesis_hash()` of custom parameters that change the genesis).

use std::sync::OnceLock;

use rnet_consensus::ChainParams;
use rnet_crypto::SigningKey;
use rnet_primitives::{BlockHash, OutPoint, Transaction, TxIn, TxOut, Witness};
use rnet_script::{PlainKey, SighashCache, SighashType};

/// The genesis id of [`ChainParams::regtest`]: what [`sign_plain`] and [`spend_plain`] sign for.
pub fn regtest_genesis() -> BlockHash {
    static GENESIS: OnceLock<BlockHash> = OnceLock::new();
    *GENESIS.get_or_init(|| ChainParams::regtest().genesis_hash())
}

/// A deterministic test key from a one-byte label.
pub fn test_key(label: u8) -> SigningKey {
    SigningKey::from_bytes(&[label; 32])
}

/// The plain-key (v1) scriptPubKey of `key`.
pub fn plain_spk(key: &SigningKey) -> Vec<u8> {
    PlainKey::new(key.public_key()).script_pubkey()
}

/// An unsigned transaction of `version` spending `inputs` (outpoint, sequence) into `outputs`.
pub fn unsigned_tx(
    version: u32,
    inputs: &[(OutPoint, u32)],
    outputs: Vec<TxOut>,
    lock_time: u32,
) -> Transaction {
    Transaction {
        version,
        inputs: inputs
            .iter()
            .map(|&(previous_output, sequence)| TxIn {
                previous_output,
                script_sig: Vec::new(),
                sequence,
                witness: Witness::new(),
            })
            .collect(),
        outputs,
        lock_time,
    }
}

/// Signs every input of `tx` as a plain-key spend by `key` (`SIGHASH_ALL`) for regtest; `spent`
/// are the outputs the inputs spend, in order.
///
/// # Panics
/// If `spent` does not have one output per input.
pub fn sign_plain(tx: &mut Transaction, spent: &[TxOut], key: &SigningKey) {
    sign_plain_on(&regtest_genesis(), tx, spent, key);
}

/// [`sign_plain`] for the chain whose genesis id is `genesis`.
///
/// # Panics
/// If `spent` does not have one output per input.
pub fn sign_plain_on(genesis: &BlockHash, tx: &mut Transaction, spent: &[TxOut], key: &SigningKey) {
    let script_code = plain_spk(key);
    let sigs: Vec<Vec<u8>> = {
        let cache = SighashCache::new(genesis, tx, spent).expect("one spent output per input");
        (0..tx.inputs.len())
            .map(|i| cache.sign(key, i, &script_code, SighashType::All).expect("input exists"))
            .collect()
    };
    for (input, sig) in tx.inputs.iter_mut().zip(sigs) {
        input.witness = Witness(vec![sig]);
    }
}

/// A version-2 transaction spending the plain-key coins `inputs` of `key` into `outputs`, signed
/// for regtest.
pub fn spend_plain(
    key: &SigningKey,
    inputs: &[(OutPoint, TxOut)],
    outputs: Vec<TxOut>,
) -> Transaction {
    spend_plain_on(&regtest_genesis(), key, inputs, outputs)
}

/// [`spend_plain`] for the chain whose genesis id is `genesis`.
pub fn spend_plain_on(
    genesis: &BlockHash,
    key: &SigningKey,
    inputs: &[(OutPoint, TxOut)],
    outputs: Vec<TxOut>,
) -> Transaction {
    let ins: Vec<(OutPoint, u32)> = inputs.iter().map(|(o, _)| (*o, u32::MAX)).collect();
    let mut tx = unsigned_tx(2, &ins, outputs, 0);
    let spent: Vec<TxOut> = inputs.iter().map(|(_, o)| o.clone()).collect();
    sign_plain_on(genesis, &mut tx, &spent, key);
    tx
}
