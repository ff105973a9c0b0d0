//! Blocks: a header and a CompactSize-counted list of transactions.
//!
//! The header's merkle root commits to the **wtxids** of all transactions, coinbase included, so
//! the header (and thus the block id) commits to witnesses too. This departs from Bitcoin, which
//! commits to txids and puts a witness commitment in the coinbase.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::encode::{Decode, DecodeError, Encode, MAX_VEC_LEN, Reader, encode_to_vec, write_vec};
use crate::hash::{BlockHash, Hash256};
use crate::header::{BlockHeader, HEADER_SIZE};
use crate::merkle::merkle_root;
use crate::transaction::Transaction;

/// Largest encoded block, in bytes, the decoder accepts.
pub const MAX_BLOCK_SIZE: usize = 4_000_000;

/// A block.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, coinbase first.
    pub transactions: Vec<Transaction>,
}

impl Block {
    /// The block id (the header's hash).
    pub fn block_hash(&self) -> BlockHash {
        self.header.hash()
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

    /// Decodes a block that spans `bytes` exactly; inputs over [`MAX_BLOCK_SIZE`] are rejected
    /// before any parsing.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_BLOCK_SIZE {
            return Err(DecodeError::OversizeLength {
                len: bytes.len() as u64,
                max: MAX_BLOCK_SIZE as u64,
            });
        }
        crate::encode::decode_exact(bytes)
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
    }
}

impl Decode for Block {
    const MIN_ENCODED_SIZE: usize = HEADER_SIZE + 1;

    /// Reads at most [`MAX_BLOCK_SIZE`] bytes: a block that would need more is rejected as
    /// oversize, even when `r` holds more input.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.position();
        let window_len = r.remaining().min(MAX_BLOCK_SIZE);
        let truncated = r.remaining() > MAX_BLOCK_SIZE;
        let window = r.clone().read_bytes(window_len)?;
        let mut sub = Reader::new(window);
        let result = (|| -> Result<Self, DecodeError> {
            let header = BlockHeader::decode(&mut sub)?;
            let transactions = sub.read_vec::<Transaction>(MAX_VEC_LEN)?;
            Ok(Self { header, transactions })
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
                    len: (MAX_BLOCK_SIZE as u64).saturating_add(1),
                    max: MAX_BLOCK_SIZE as u64,
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// JSON view: the block id, the header and the transactions.
impl Serialize for Block {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Block", 4)?;
        st.serialize_field("hash", &self.block_hash())?;
        st.serialize_field("size", &self.to_bytes().len())?;
        st.serialize_field("header", &self.header)?;
        st.serialize_field("transactions", &self.transactions)?;
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
    fn layout_is_header_then_transactions() {
        let block = Block { header: BlockHeader::default(), transactions: vec![coinbase(1)] };
        let mut expected = block.header.to_bytes();
        expected.push(1);
        expected.extend(coinbase(1).to_bytes());
        assert_eq!(block.to_bytes(), expected);
        assert_eq!(Block::from_bytes(&expected), Ok(block));
    }

    #[test]
    fn merkle_root_commits_to_wtxids() {
        let txs = vec![coinbase(1), coinbase(2)];
        let mut block = Block { header: BlockHeader::default(), transactions: txs.clone() };
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
        let mut block = Block { header: BlockHeader::default(), transactions: txs };
        block.header.merkle_root = block.compute_merkle_root().0;
        assert!(block.check_merkle_root());
        block.transactions.push(block.transactions[2].clone());
        assert_eq!(block.compute_merkle_root(), (block.header.merkle_root, true));
        assert!(!block.check_merkle_root());
    }

    #[test]
    fn oversize_blocks_are_rejected_before_parsing() {
        let big = vec![0u8; MAX_BLOCK_SIZE + 1];
        assert_eq!(
            Block::from_bytes(&big),
            Err(DecodeError::OversizeLength {
                len: MAX_BLOCK_SIZE as u64 + 1,
                max: MAX_BLOCK_SIZE as u64
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
    }

    #[test]
    fn huge_transaction_count_is_rejected_before_allocating() {
        let mut b = BlockHeader::default().to_bytes();
        b.extend([0xFD, 0xFF, 0xFF]);
        assert!(matches!(Block::from_bytes(&b), Err(DecodeError::LengthExceedsInput { .. })));
    }

    #[test]
    fn json_view() {
        let block = Block { header: BlockHeader::default(), transactions: vec![coinbase(1)] };
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
