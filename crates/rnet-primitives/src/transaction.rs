//! Transactions, serialized segwit-style (BIP144 layout).
//!
//! ```text
//! version u32
//! [marker 0x00, flag 0x01]          only if some input has a non-empty witness
//! inputs:  CompactSize count, each: txid[32] vout u32 script_sig(var bytes) sequence u32
//! outputs: CompactSize count, each: value u64 script_pubkey(var bytes)
//! [witnesses]                       if flagged: per input, CompactSize item count, items (var bytes)
//! lock_time u32
//! ```
//!
//! The txid hashes the encoding without marker, flag and witnesses; the wtxid hashes all of it.
//! A transaction with zero inputs has no canonical encoding: its input count byte 0x00 is read as
//! the witness marker. The decoder therefore treats 0x00 after the version as the marker, and then
//! requires the flag 0x01 and at least one non-empty witness. Consensus rejects zero-input
//! transactions anyway.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::amount::Amount;
use crate::encode::{
    Decode, DecodeError, Encode, MAX_VEC_LEN, Reader, encode_to_vec, write_var_bytes, write_vec,
};
use crate::hash::{Txid, Wtxid};
use crate::hexser::{HexBytes, HexList};

/// `sequence` value that disables relative lock time and lock-time checks (BIP68/BIP125 "final").
pub const SEQUENCE_FINAL: u32 = 0xFFFF_FFFF;

/// Encoded size of an [`OutPoint`].
pub const OUTPOINT_SIZE: usize = 36;

/// The most items one input's witness may have; a witness with more does not decode (a
/// consensus rule, Part II §4). No spend can use more: a script's stacks hold at most 1,000
/// items, script-hash witnesses at most 100 and key witnesses one.
pub const MAX_WITNESS_STACK_ITEMS: usize = 1_000;

/// A reference to an output of an earlier transaction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct OutPoint {
    /// The transaction that created the output.
    pub txid: Txid,
    /// The output's index in that transaction.
    pub vout: u32,
}

impl OutPoint {
    /// The outpoint a coinbase input spends: zero txid, index `0xFFFFFFFF`.
    pub const NULL: Self = Self { txid: Txid::ZERO, vout: u32::MAX };

    /// An outpoint.
    pub const fn new(txid: Txid, vout: u32) -> Self {
        Self { txid, vout }
    }

    /// Whether this is [`OutPoint::NULL`].
    pub fn is_null(&self) -> bool {
        *self == Self::NULL
    }
}

impl Encode for OutPoint {
    fn encode(&self, w: &mut Vec<u8>) {
        self.txid.encode(w);
        self.vout.encode(w);
    }
}

impl Decode for OutPoint {
    const MIN_ENCODED_SIZE: usize = OUTPOINT_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { txid: Txid::decode(r)?, vout: r.read_u32()? })
    }
}

/// The witness of one input: a stack of byte strings.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Witness(pub Vec<Vec<u8>>);

impl Witness {
    /// An empty witness.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Whether the witness has no items.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The items, bottom of the stack first.
    pub fn items(&self) -> &[Vec<u8>] {
        &self.0
    }

    /// Appends an item.
    pub fn push(&mut self, item: Vec<u8>) {
        self.0.push(item);
    }
}

impl From<Vec<Vec<u8>>> for Witness {
    fn from(items: Vec<Vec<u8>>) -> Self {
        Self(items)
    }
}

impl Encode for Witness {
    fn encode(&self, w: &mut Vec<u8>) {
        crate::encode::write_compact_size(w, self.0.len() as u64);
        for item in &self.0 {
            write_var_bytes(w, item);
        }
    }
}

impl Decode for Witness {
    const MIN_ENCODED_SIZE: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.read_len(1, MAX_WITNESS_STACK_ITEMS)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(r.read_var_bytes(MAX_VEC_LEN)?);
        }
        Ok(Self(items))
    }
}

/// A transaction input.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TxIn {
    /// The output being spent.
    pub previous_output: OutPoint,
    /// The unlocking script (empty for witness spends).
    pub script_sig: Vec<u8>,
    /// The sequence number (relative lock time, BIP68).
    pub sequence: u32,
    /// The witness; serialized in the transaction's witness section, not here.
    pub witness: Witness,
}

impl TxIn {
    /// The encoded size of an input without witness: outpoint, empty script, sequence.
    pub const MIN_SIZE: usize = OUTPOINT_SIZE + 1 + 4;

    /// Writes the input's non-witness part.
    fn encode_base(&self, w: &mut Vec<u8>) {
        self.previous_output.encode(w);
        write_var_bytes(w, &self.script_sig);
        self.sequence.encode(w);
    }

    /// Reads the input's non-witness part (the witness is left empty).
    fn decode_base(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            previous_output: OutPoint::decode(r)?,
            script_sig: r.read_var_bytes(MAX_VEC_LEN)?,
            sequence: r.read_u32()?,
            witness: Witness::new(),
        })
    }
}

/// Decoding helper: an input's non-witness part as a vector element.
struct BaseTxIn(TxIn);

impl Decode for BaseTxIn {
    const MIN_ENCODED_SIZE: usize = TxIn::MIN_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        TxIn::decode_base(r).map(Self)
    }
}

/// A transaction output.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TxOut {
    /// The amount (any `u64` decodes; consensus checks [`Amount::is_valid_money`]).
    pub value: Amount,
    /// The locking script.
    pub script_pubkey: Vec<u8>,
}

impl Encode for TxOut {
    fn encode(&self, w: &mut Vec<u8>) {
        self.value.encode(w);
        write_var_bytes(w, &self.script_pubkey);
    }
}

impl Decode for TxOut {
    const MIN_ENCODED_SIZE: usize = 8 + 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { value: Amount::decode(r)?, script_pubkey: r.read_var_bytes(MAX_VEC_LEN)? })
    }
}

/// A transaction.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Transaction {
    /// Transaction version.
    pub version: u32,
    /// Inputs, with their witnesses.
    pub inputs: Vec<TxIn>,
    /// Outputs.
    pub outputs: Vec<TxOut>,
    /// Absolute lock time (height or time, as in Bitcoin).
    pub lock_time: u32,
}

impl Transaction {
    /// Whether any input has a non-empty witness (so the extended encoding is used).
    pub fn has_witness(&self) -> bool {
        self.inputs.iter().any(|i| !i.witness.is_empty())
    }

    /// Appends the encoding without marker, flag and witnesses (what the txid hashes).
    pub fn encode_without_witness(&self, w: &mut Vec<u8>) {
        self.encode_inner(w, false);
    }

    fn encode_inner(&self, w: &mut Vec<u8>, with_witness: bool) {
        self.version.encode(w);
        if with_witness {
            w.extend_from_slice(&[0x00, 0x01]);
        }
        crate::encode::write_compact_size(w, self.inputs.len() as u64);
        for input in &self.inputs {
            input.encode_base(w);
        }
        write_vec(w, &self.outputs);
        if with_witness {
            for input in &self.inputs {
                input.witness.encode(w);
            }
        }
        self.lock_time.encode(w);
    }

    /// The id: Keccak-256d of the encoding without witnesses.
    pub fn txid(&self) -> Txid {
        let mut w = Vec::new();
        self.encode_without_witness(&mut w);
        Txid(rnet_crypto::keccak256d(&w))
    }

    /// The witness id: Keccak-256d of the full encoding (equals the txid without witnesses).
    pub fn wtxid(&self) -> Wtxid {
        Wtxid(rnet_crypto::keccak256d(&encode_to_vec(self)))
    }

    /// Whether this is a coinbase: exactly one input, spending [`OutPoint::NULL`].
    pub fn is_coinbase(&self) -> bool {
        self.inputs.len() == 1 && self.inputs[0].previous_output.is_null()
    }

    /// The heap memory this transaction holds, in bytes (vector capacities and their
    /// elements), for caps that must count memory rather than wire bytes: an input whose
    /// witness has many empty items costs 24 bytes of memory per wire byte.
    pub fn heap_usage(&self) -> usize {
        use core::mem::size_of;
        let inputs: usize = self
            .inputs
            .iter()
            .map(|i| {
                let items: usize = i.witness.0.iter().map(Vec::capacity).sum();
                i.script_sig.capacity() + i.witness.0.capacity() * size_of::<Vec<u8>>() + items
            })
            .sum();
        let outputs: usize = self.outputs.iter().map(|o| o.script_pubkey.capacity()).sum();
        self.inputs.capacity() * size_of::<TxIn>()
            + self.outputs.capacity() * size_of::<TxOut>()
            + inputs
            + outputs
    }

    /// Size of the full encoding in bytes.
    pub fn total_size(&self) -> usize {
        encode_to_vec(self).len()
    }

    /// Size of the encoding without witnesses in bytes.
    pub fn base_size(&self) -> usize {
        let mut w = Vec::new();
        self.encode_without_witness(&mut w);
        w.len()
    }

    /// Decodes a transaction that spans `bytes` exactly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        crate::encode::decode_exact(bytes)
    }

    /// The full encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }
}

impl Encode for Transaction {
    fn encode(&self, w: &mut Vec<u8>) {
        self.encode_inner(w, self.has_witness());
    }
}

impl Decode for Transaction {
    /// version, one minimal input, zero outputs, lock time.
    const MIN_ENCODED_SIZE: usize = 4 + 1 + TxIn::MIN_SIZE + 1 + 4;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.read_u32()?;
        let extended = r.peek_u8()? == 0x00;
        if extended {
            r.read_u8()?;
            if r.read_u8()? != 0x01 {
                return Err(DecodeError::InvalidValue("witness flag must be 0x01"));
            }
        }
        let mut inputs: Vec<TxIn> =
            r.read_vec::<BaseTxIn>(MAX_VEC_LEN)?.into_iter().map(|b| b.0).collect();
        let outputs = r.read_vec::<TxOut>(MAX_VEC_LEN)?;
        if extended {
            for input in &mut inputs {
                input.witness = Witness::decode(r)?;
            }
            if inputs.iter().all(|i| i.witness.is_empty()) {
                return Err(DecodeError::InvalidValue("witness marker without any witness"));
            }
        }
        let lock_time = r.read_u32()?;
        Ok(Self { version, inputs, outputs, lock_time })
    }
}

impl Serialize for OutPoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("OutPoint", 2)?;
        st.serialize_field("txid", &self.txid)?;
        st.serialize_field("vout", &self.vout)?;
        st.end()
    }
}

impl Serialize for TxIn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("TxIn", 5)?;
        st.serialize_field("txid", &self.previous_output.txid)?;
        st.serialize_field("vout", &self.previous_output.vout)?;
        st.serialize_field("script_sig", &HexBytes(&self.script_sig))?;
        st.serialize_field("sequence", &self.sequence)?;
        st.serialize_field("witness", &HexList(&self.witness.0))?;
        st.end()
    }
}

impl Serialize for TxOut {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("TxOut", 3)?;
        st.serialize_field("value", &self.value)?;
        st.serialize_field("value_rnt", &self.value.to_string())?;
        st.serialize_field("script_pubkey", &HexBytes(&self.script_pubkey))?;
        st.end()
    }
}

/// JSON view: computed ids and sizes, then the fields; byte strings as hex, `value` in
/// resonance plus `value_rnt` as a decimal string.
impl Serialize for Transaction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Transaction", 9)?;
        st.serialize_field("txid", &self.txid())?;
        st.serialize_field("wtxid", &self.wtxid())?;
        st.serialize_field("size", &self.total_size())?;
        st.serialize_field("base_size", &self.base_size())?;
        st.serialize_field("is_coinbase", &self.is_coinbase())?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("inputs", &self.inputs)?;
        st.serialize_field("outputs", &self.outputs)?;
        st.serialize_field("lock_time", &self.lock_time)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::decode_exact;
    use crate::strategies::arb_transaction;
    use proptest::prelude::*;

    fn sample(with_witness: bool) -> Transaction {
        Transaction {
            version: 2,
            inputs: vec![TxIn {
                previous_output: OutPoint::new(Txid([0x11; 32]), 3),
                script_sig: vec![0xAA, 0xBB],
                sequence: 0xFFFF_FFFE,
                witness: if with_witness {
                    Witness(vec![vec![0x01, 0x02], vec![]])
                } else {
                    Witness::new()
                },
            }],
            outputs: vec![TxOut { value: Amount(0x0102), script_pubkey: vec![0x51] }],
            lock_time: 7,
        }
    }

    /// The layout written out by hand, byte by byte.
    fn sample_bytes(with_witness: bool) -> Vec<u8> {
        let mut b = vec![2, 0, 0, 0];
        if with_witness {
            b.extend([0x00, 0x01]);
        }
        b.push(1);
        b.extend([0x11; 32]);
        b.extend([3, 0, 0, 0]);
        b.extend([2, 0xAA, 0xBB]);
        b.extend([0xFE, 0xFF, 0xFF, 0xFF]);
        b.push(1);
        b.extend([0x02, 0x01, 0, 0, 0, 0, 0, 0]);
        b.extend([1, 0x51]);
        if with_witness {
            b.extend([2, 2, 0x01, 0x02, 0]);
        }
        b.extend([7, 0, 0, 0]);
        b
    }

    #[test]
    fn layout_matches_spec() {
        for wit in [false, true] {
            let tx = sample(wit);
            assert_eq!(tx.to_bytes(), sample_bytes(wit), "with_witness={wit}");
            assert_eq!(Transaction::from_bytes(&sample_bytes(wit)), Ok(tx));
        }
    }

    #[test]
    fn txid_excludes_witness_wtxid_includes_it() {
        let plain = sample(false);
        let wit = sample(true);
        let base = sample_bytes(false);
        assert_eq!(plain.txid().0, rnet_crypto::keccak256d(&base));
        assert_eq!(plain.wtxid().0, plain.txid().0);
        assert_eq!(wit.txid(), plain.txid());
        assert_eq!(wit.wtxid().0, rnet_crypto::keccak256d(&sample_bytes(true)));
        assert_ne!(wit.wtxid().0, wit.txid().0);
        assert_eq!(wit.base_size(), base.len());
        assert_eq!(wit.total_size(), sample_bytes(true).len());
    }

    #[test]
    fn coinbase_detection() {
        let mut tx = sample(false);
        assert!(!tx.is_coinbase());
        tx.inputs[0].previous_output = OutPoint::NULL;
        assert!(tx.is_coinbase());
        tx.inputs.push(tx.inputs[0].clone());
        assert!(!tx.is_coinbase());
        let mut tx = sample(false);
        tx.inputs[0].previous_output = OutPoint::new(Txid::ZERO, 0);
        assert!(!tx.is_coinbase());
    }

    #[test]
    fn rejects_bad_flag() {
        let mut b = sample_bytes(true);
        b[5] = 0x02;
        assert_eq!(
            Transaction::from_bytes(&b),
            Err(DecodeError::InvalidValue("witness flag must be 0x01"))
        );
    }

    #[test]
    fn rejects_witness_marker_with_all_empty_witnesses() {
        // The non-witness sample with marker/flag and one empty witness inserted.
        let mut b = sample_bytes(false);
        b.splice(4..4, [0x00, 0x01]);
        let lt = b.len() - 4;
        b.insert(lt, 0x00);
        assert_eq!(
            Transaction::from_bytes(&b),
            Err(DecodeError::InvalidValue("witness marker without any witness"))
        );
    }

    #[test]
    fn zero_input_transaction_has_no_canonical_encoding() {
        let tx = Transaction { version: 1, inputs: vec![], outputs: vec![], lock_time: 0 };
        let b = tx.to_bytes();
        assert_eq!(b, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(Transaction::from_bytes(&b).is_err());
    }

    #[test]
    fn rejects_trailing_bytes_and_truncation() {
        let mut b = sample_bytes(true);
        b.push(0);
        assert_eq!(Transaction::from_bytes(&b), Err(DecodeError::TrailingBytes(1)));
        let b = sample_bytes(true);
        for cut in 0..b.len() {
            assert!(Transaction::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_huge_counts_before_allocating() {
        // version, input count 0xFFFFFFFF.
        let b = [1, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(matches!(
            Transaction::from_bytes(&b),
            Err(DecodeError::OversizeLength { len: 0xFFFF_FFFF, .. })
        ));
        let b = [1, 0, 0, 0, 0xFD, 0x00, 0x10];
        assert!(matches!(
            Transaction::from_bytes(&b),
            Err(DecodeError::LengthExceedsInput { len: 0x1000, .. })
        ));
    }

    #[test]
    fn witness_item_count_is_bounded_at_decode() {
        // A witness of empty items: one wire byte each, 24 bytes of memory each. At most
        // MAX_WITNESS_STACK_ITEMS decode; one more is refused before anything is allocated.
        let with_items = |n: usize| {
            let mut tx = sample(true);
            tx.inputs[0].witness = Witness(vec![Vec::new(); n]);
            tx.to_bytes()
        };
        let ok = Transaction::from_bytes(&with_items(MAX_WITNESS_STACK_ITEMS)).unwrap();
        assert_eq!(ok.inputs[0].witness.len(), MAX_WITNESS_STACK_ITEMS);
        assert_eq!(
            Transaction::from_bytes(&with_items(MAX_WITNESS_STACK_ITEMS + 1)),
            Err(DecodeError::OversizeLength {
                len: MAX_WITNESS_STACK_ITEMS as u64 + 1,
                max: MAX_WITNESS_STACK_ITEMS as u64
            })
        );
    }

    #[test]
    fn heap_usage_counts_witness_items_not_wire_bytes() {
        let mut tx = sample(true);
        let base = tx.heap_usage();
        tx.inputs[0].witness = Witness(vec![Vec::new(); 1_000]);
        let wire = tx.total_size() - sample(true).total_size();
        let grown = tx.heap_usage() - base;
        assert!(grown >= 1_000 * core::mem::size_of::<Vec<u8>>() - 100, "{grown} for {wire} bytes");
        assert!(grown > 20 * wire, "memory {grown} vs wire {wire}");
    }

    #[test]
    fn json_view_uses_hex() {
        let tx = sample(true);
        let v = serde_json::to_value(&tx).unwrap();
        assert_eq!(v["txid"], tx.txid().to_string());
        assert_eq!(v["wtxid"], tx.wtxid().to_string());
        assert_eq!(v["inputs"][0]["script_sig"], "aabb");
        assert_eq!(v["inputs"][0]["witness"][0], "0102");
        assert_eq!(v["inputs"][0]["witness"][1], "");
        assert_eq!(v["outputs"][0]["value"], 0x0102);
        assert_eq!(v["outputs"][0]["value_rnt"], "0.00000258");
        assert_eq!(v["outputs"][0]["script_pubkey"], "51");
        assert_eq!(v["lock_time"], 7);
    }

    proptest! {
        #[test]
        fn round_trips(tx in arb_transaction()) {
            let bytes = tx.to_bytes();
            let back = Transaction::from_bytes(&bytes).unwrap();
            prop_assert_eq!(&back, &tx);
            prop_assert_eq!(back.to_bytes(), bytes.clone());
            prop_assert_eq!(back.txid(), tx.txid());
            prop_assert_eq!(decode_exact::<Transaction>(&bytes).unwrap(), tx);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(tx) = Transaction::from_bytes(&data) {
                // Anything accepted is canonical.
                prop_assert_eq!(tx.to_bytes(), data);
            }
        }

        #[test]
        fn mutated_encodings_never_panic(
            tx in arb_transaction(),
            idx in any::<proptest::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = tx.to_bytes();
            let i = idx.index(bytes.len());
            bytes[i] = byte;
            if let Ok(back) = Transaction::from_bytes(&bytes) {
                prop_assert_eq!(back.to_bytes(), bytes);
            }
        }
    }
}
