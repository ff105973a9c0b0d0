//! Proptest strategies shared by the tests of several modules.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::amount::Amount;
use crate::block::Block;
use crate::hash::{BlockHash, Hash256, Txid};
use crate::header::{BlockHeader, ModelShape};
use crate::sample::{EvalSample, SampleRecord};
use crate::transaction::{OutPoint, Transaction, TxIn, TxOut, Witness};

/// Byte strings, mostly short, sometimes long enough for multi-byte CompactSize lengths.
pub(crate) fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..40),
        1 => vec(any::<u8>(), 250..300),
    ]
}

pub(crate) fn arb_outpoint() -> impl Strategy<Value = OutPoint> {
    prop_oneof![
        1 => Just(OutPoint::NULL),
        4 => (any::<[u8; 32]>(), any::<u32>()).prop_map(|(t, v)| OutPoint::new(Txid(t), v)),
    ]
}

pub(crate) fn arb_witness() -> impl Strategy<Value = Witness> {
    prop_oneof![
        1 => Just(Witness::new()),
        2 => vec(arb_bytes(), 0..4).prop_map(Witness),
    ]
}

pub(crate) fn arb_txin() -> impl Strategy<Value = TxIn> {
    (arb_outpoint(), arb_bytes(), any::<u32>(), arb_witness()).prop_map(
        |(previous_output, script_sig, sequence, witness)| TxIn {
            previous_output,
            script_sig,
            sequence,
            witness,
        },
    )
}

pub(crate) fn arb_txout() -> impl Strategy<Value = TxOut> {
    (any::<u64>(), arb_bytes())
        .prop_map(|(v, script_pubkey)| TxOut { value: Amount(v), script_pubkey })
}

/// Transactions with at least one input (zero-input transactions have no canonical encoding).
pub(crate) fn arb_transaction() -> impl Strategy<Value = Transaction> {
    (any::<u32>(), vec(arb_txin(), 1..4), vec(arb_txout(), 0..4), any::<u32>()).prop_map(
        |(version, inputs, outputs, lock_time)| Transaction { version, inputs, outputs, lock_time },
    )
}

pub(crate) fn arb_header() -> impl Strategy<Value = BlockHeader> {
    (
        (any::<u32>(), any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>(), any::<u32>()),
        (any::<u32>(), any::<u32>(), any::<[u8; 32]>(), any::<u64>(), any::<u64>()),
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>()),
        (any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>()),
        (any::<[u8; 32]>(), any::<u64>()),
    )
        .prop_map(|(a, b, c, sig, u)| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&sig.0);
            signature[32..].copy_from_slice(&sig.1);
            BlockHeader {
                version: a.0,
                prev_block_hash: BlockHash(a.1),
                merkle_root: Hash256(a.2),
                time: a.3,
                height: a.4,
                shape: ModelShape { d_model: b.0, n_layers: b.1 },
                checkpoint_root: Hash256(b.2),
                checkpoint_size: b.3,
                update_root: Hash256(u.0),
                update_size: u.1,
                parent_loss: sig.2,
                val_loss: b.4,
                required_improvement: c.0,
                training_steps: c.1,
                dataset_commitment: Hash256(c.2),
                miner_pubkey: c.3,
                signature,
            }
        })
}

/// Evaluation samples: a few records with short proofs.
pub(crate) fn arb_sample() -> impl Strategy<Value = EvalSample> {
    let record = (any::<u32>(), vec(any::<u8>(), 0..70), vec(any::<[u8; 32]>(), 0..5)).prop_map(
        |(index, bytes, proof)| SampleRecord {
            index,
            bytes,
            proof: proof.into_iter().map(Hash256).collect(),
        },
    );
    vec(record, 0..4).prop_map(|records| EvalSample { records })
}

pub(crate) fn arb_block() -> impl Strategy<Value = Block> {
    (arb_header(), vec(arb_transaction(), 0..5), arb_sample())
        .prop_map(|(header, transactions, sample)| Block { header, transactions, sample })
}
