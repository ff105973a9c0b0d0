//! Blocks: a header, a CompactSize-counted list of transactions, and the evaluation sample
//! ([`EvalSample`]) the block's Proof-of-Training is checked on.
//!
//! [`MAX_BLOCK_SIZE`] bounds the header and transactions (the block's *base*, what miners fill
//! with transactions); the sample has its own bound ([`MAX_SAMPLE_SIZE`]), so a full block
//! never has to leave room for it. The decoder reads at most [`MAX_BLOCK_WIRE_SIZE`] bytes.
//!
//! The header's merkle root commits to the **wtxids** of all transactions, coinbase included, so
//! the header (and thus the block id) commits to witnesses too. This departs from Bitcoin, which
//! commits to txids and puts a witness commitment in the coinbase.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::encode::{Decode, DecodeError, Encode, MAX_VEC_LEN, Reader, encode_to_vec, write_vec};
use crate::hash::{BlockHash, Hash256};
use crate::header::{BlockHeader, HEADER_SIZE};
use crate::merkle::merkle_root;
use crate::sample::{EvalSample, MAX_SAMPLE_SIZE};
use crate::transaction::Transaction;

/// Largest encoded header plus transactions (the block's base), in bytes.
pub const MAX_BLOCK_SIZE: usize = 4_000_000;

/// Largest encoded block the decoder accepts: the base plus the largest evaluation sample.
pub const MAX_BLOCK_WIRE_SIZE: usize = MAX_BLOCK_SIZE + MAX_SAMPLE_SIZE;

/// A block.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, coinbase first.
    pub transactions: Vec<Transaction>,
    /// The corpus records the checkpoint is evaluated on, with their merkle branches. Not
    /// covered by the block id; checked against `corpus_root` and the header (Part V).
    pub sample: EvalSample,
}

impl Block {
    /// The block id (the header's hash).
    pub fn block_hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// The memory this block holds, in bytes: the struct, its transactions
    /// ([`Transaction::heap_usage`]) and its evaluation sample's records.
    pub fn memory_usage(&self) -> usize {
        let txs: usize = self.transactions.iter().map(Transaction::heap_usage).sum();
        core::mem::size_of::<Self>()
            + self.transactions.capacity() * core::mem::size_of::<Transaction>()
            + txs
            + self.sample.heap_usage()
    }

    /// Merkle root over the wtxids of the transactions, and whether the list is mutated
    /// (see [`merkle_root`]).
    pub fn compute_merkle_root(&self) -> (Hash256, bool) {
        let leaves: Vec<Hash256> = self.transactions.iter().map(|t| t.wtxid().into()).collect();
        merkle_root(&leaves)
    }

    /// Whether the header's merkle root matches the transactions and the list is not mutated.
    pub fn check_merkle_root(&self) -> bool {
        let (root, mutated) = self.compute_merkle_root();
        !mutated && root == self.header.merkle_root
    }

    /// Decodes a block that spans `bytes` exactly; inputs over [`MAX_BLOCK_WIRE_SIZE`] are
    /// rejected before any parsing.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_BLOCK_WIRE_SIZE {
            return Err(DecodeError::OversizeLength {
                len: bytes.len() as u64,
                max: MAX_BLOCK_WIRE_SIZE as u64,
            });
        }
        crate::encode::decode_exact(bytes)
    }

    /// Encoded size of the header and transactions (what [`MAX_BLOCK_SIZE`] bounds).
    pub fn base_size(&self) -> usize {
        let mut w = Vec::new();
        self.header.encode(&mut w);
        write_vec(&mut w, &self.transactions);
        w.len()
    }

    /// The full encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }
}

impl Encode for Block {
    fn encode(&self, w: &mut Vec<u8>) {
        self.header.encode(w);
        write_vec(w, &self.transactions);
        self.sample.encode(w);
    }
}

impl Decode for Block {
    const MIN_ENCODED_SIZE: usize = HEADER_SIZE + 2;

    /// Reads at most [`MAX_BLOCK_WIRE_SIZE`] bytes, of which at most [`MAX_BLOCK_SIZE`] for the
    /// header and transactions: a block that would need more is rejected as oversize, even when
    /// `r` holds more input.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.position();
        let window_len = r.remaining().min(MAX_BLOCK_WIRE_SIZE);
        let truncated = r.remaining() > MAX_BLOCK_WIRE_SIZE;
        let window = r.clone().read_bytes(window_len)?;
        let mut sub = Reader::new(window);
        let oversize = || DecodeError::OversizeLength {
            len: (MAX_BLOCK_SIZE as u64).saturating_add(1),
            max: MAX_BLOCK_SIZE as u64,
        };
        let result = (|| -> Result<Self, DecodeError> {
            let header = BlockHeader::decode(&mut sub)?;
            let transactions = {
                // The base may not use more than MAX_BLOCK_SIZE bytes of the window.
                let base_window = &window[..window.len().min(MAX_BLOCK_SIZE)];
                let mut base = Reader::new(base_window);
                base.read_bytes(sub.position())?;
                let txs = base.read_vec::<Transaction>(MAX_VEC_LEN).map_err(|e| match e {
                    DecodeError::UnexpectedEnd { .. } | DecodeError::LengthExceedsInput { .. }
                        if window.len() > MAX_BLOCK_SIZE =>
                    {
                        oversize()
                    }
                    e => e,
                })?;
                sub.read_bytes(base.position() - sub.position())?;
                txs
            };
            let sample = EvalSample::decode(&mut sub)?;
            Ok(Self { header, transactions, sample })
        })();
        match result {
            Ok(block) => {
                r.read_bytes(sub.position())?;
                debug_assert_eq!(r.position(), start + sub.position());
                Ok(block)
            }
            Err(DecodeError::UnexpectedEnd { .. } | DecodeError::LengthExceedsInput { .. })
                if truncated =>
            {
                Err(DecodeError::OversizeLength {
                    len: (MAX_BLOCK_WIRE_SIZE as u64).saturating_add(1),
                    max: MAX_BLOCK_WIRE_SIZE as u64,
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// JSON view: the block id, the header and the transactions.
impl Serialize for Block {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Block", 5)?;
        st.serialize_field("hash", &self.block_hash())?;
        st.serialize_field("size", &self.to_bytes().len())?;
        st.serialize_field("header", &self.header)?;
        st.serialize_field("transactions", &self.transactions)?;
        st.serialize_field("sample", &self.sample)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::Amount;
    use crate::encode::decode_exact;
    use crate::strategies::arb_block;
    use crate::transaction::{OutPoint, TxIn, TxOut, Witness};
    use proptest::prelude::*;

    fn coinbase(tag: u8) -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![TxIn {
                previous_output: OutPoint::NULL,
                script_sig: vec![tag],
                sequence: u32::MAX,
                witness: Witness(vec![vec![tag; 3]]),
            }],
            outputs: vec![TxOut { value: Amount(50), script_pubkey: vec![0x51] }],
            lock_time: 0,
        }
    }

    #[test]
    fn layout_is_header_then_transactions_then_sample() {
        let sample = EvalSample {
            records: vec![crate::sample::SampleRecord {
                index: 5,
                bytes: vec![1, 2],
                proof: vec![],
            }],
        };
        let block =
            Block { header: BlockHeader::default(), transactions: vec![coinbase(1)], sample };
        let mut expected = block.header.to_bytes();
        expected.push(1);
        expected.extend(coinbase(1).to_bytes());
        assert_eq!(block.base_size(), expected.len());
        expected.extend(crate::encode::encode_to_vec(&block.sample));
        assert_eq!(block.to_bytes(), expected);
        assert_eq!(Block::from_bytes(&expected), Ok(block));
    }

    #[test]
    fn merkle_root_commits_to_wtxids() {
        let txs = vec![coinbase(1), coinbase(2)];
        let mut block =
            Block { header: BlockHeader::default(), transactions: txs.clone(), ..Block::default() };
        let expected = crate::merkle::merkle_node(&txs[0].wtxid().into(), &txs[1].wtxid().into());
        assert_eq!(block.compute_merkle_root(), (expected, false));
        assert!(!block.check_merkle_root());
        block.header.merkle_root = expected;
        assert!(block.check_merkle_root());
        // Changing only a witness changes the root.
        block.transactions[1].inputs[0].witness = Witness(vec![vec![9]]);
        assert_eq!(block.transactions[1].txid(), txs[1].txid());
        assert!(!block.check_merkle_root());
    }

    #[test]
    fn mutated_transaction_list_fails_the_check() {
        let txs = vec![coinbase(1), coinbase(2), coinbase(3)];
        let mut block =
            Block { header: BlockHeader::default(), transactions: txs, ..Block::default() };
        block.header.merkle_root = block.compute_merkle_root().0;
        assert!(block.check_merkle_root());
        block.transactions.push(block.transactions[2].clone());
        assert_eq!(block.compute_merkle_root(), (block.header.merkle_root, true));
        assert!(!block.check_merkle_root());
    }

    #[test]
    fn oversize_blocks_are_rejected_before_parsing() {
        let big = vec![0u8; MAX_BLOCK_WIRE_SIZE + 1];
        assert_eq!(
            Block::from_bytes(&big),
            Err(DecodeError::OversizeLength {
                len: MAX_BLOCK_WIRE_SIZE as u64 + 1,
                max: MAX_BLOCK_WIRE_SIZE as u64
            })
        );
        // Through the generic decoder: a block that declares a transaction running past the
        // limit is oversize, even though the input holds the bytes.
        let mut b = BlockHeader::default().to_bytes();
        b.push(1);
        let mut tx = coinbase(1);
        tx.outputs[0].script_pubkey = vec![0; MAX_BLOCK_SIZE];
        b.extend(tx.to_bytes());
        assert!(matches!(decode_exact::<Block>(&b), Err(DecodeError::OversizeLength { .. })));
        // A base exactly at the limit is accepted with a sample after it; one byte more is
        // oversize even though the whole block fits the wire limit (the sample's allowance is
        // not for transactions).
        let block_with_script = |len: usize| {
            let mut tx = coinbase(1);
            tx.outputs[0].script_pubkey = vec![0; len];
            Block { header: BlockHeader::default(), transactions: vec![tx], ..Block::default() }
        };
        let probe = block_with_script(3_000_000).base_size();
        let at_limit = block_with_script(3_000_000 + MAX_BLOCK_SIZE - probe);
        assert_eq!(at_limit.base_size(), MAX_BLOCK_SIZE);
        let mut at_limit = at_limit;
        at_limit.sample.records.push(crate::sample::SampleRecord::default());
        assert_eq!(Block::from_bytes(&at_limit.to_bytes()), Ok(at_limit));
        let over = block_with_script(3_000_001 + MAX_BLOCK_SIZE - probe);
        assert!(matches!(
            Block::from_bytes(&over.to_bytes()),
            Err(DecodeError::OversizeLength { .. })
        ));
    }

    #[test]
    fn huge_transaction_count_is_rejected_before_allocating() {
        let mut b = BlockHeader::default().to_bytes();
        b.extend([0xFD, 0xFF, 0xFF]);
        assert!(matches!(Block::from_bytes(&b), Err(DecodeError::LengthExceedsInput { .. })));
    }

    #[test]
    fn json_view() {
        let block = Block {
            header: BlockHeader::default(),
            transactions: vec![coinbase(1)],
            ..Block::default()
        };
        let v = serde_json::to_value(&block).unwrap();
        assert_eq!(v["hash"], block.block_hash().to_string());
        assert_eq!(v["header"]["hash"], block.block_hash().to_string());
        assert_eq!(v["transactions"][0]["is_coinbase"], true);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trips(block in arb_block()) {
            let b = block.to_bytes();
            let back = Block::from_bytes(&b).unwrap();
            prop_assert_eq!(&back, &block);
            prop_assert_eq!(back.to_bytes(), b);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            if let Ok(block) = Block::from_bytes(&data) {
                prop_assert_eq!(block.to_bytes(), data);
            }
        }

        #[test]
        fn header_prefixed_random_bytes_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..1024),
        ) {
            let mut data = BlockHeader::default().to_bytes();
            data.extend(tail);
            if let Ok(block) = Block::from_bytes(&data) {
                prop_assert_eq!(block.to_bytes(), data);
            }
        }

        #[test]
        fn mutated_encodings_never_panic(
            block in arb_block(),
            idx in any::<proptest::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = block.to_bytes();
            let i = idx.index(bytes.len());
            bytes[i] = byte;
            if let Ok(back) = Block::from_bytes(&bytes) {
                prop_assert_eq!(back.to_bytes(), bytes);
            }
        }
    }
}
