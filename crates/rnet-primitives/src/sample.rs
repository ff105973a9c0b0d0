//! The evaluation sample a block carries: the corpus records its Proof-of-Training is evaluated
//! on, each with a merkle branch to the network's `corpus_root`.
//!
//! Encoding (after the block's transactions):
//!
//! ```text
//! record count      CompactSize (≤ MAX_SAMPLE_RECORDS)
//!   per record:     index u32 | bytes (CompactSize length ≤ MAX_RECORD_BYTES, then the bytes)
//!                   | branch (CompactSize count ≤ MAX_BRANCH_DEPTH, then 32-byte hashes)
//! ```
//!
//! The block id does not commit to the sample (like the checkpoint bytes, it is checked against
//! commitments the header does make: the sample indices follow from the header, the records from
//! `corpus_root`). Which records a block must carry, in which order, is a consensus rule
//! (`rnet_consensus::sample`); this module only fixes the bytes.

use serde::Serialize;

use crate::encode::{Decode, DecodeError, Encode, Reader, write_compact_size, write_var_bytes};
use crate::hash::Hash256;

/// Most records a sample may carry (mainnet draws 128).
pub const MAX_SAMPLE_RECORDS: usize = 256;

/// Longest record: a window of at most 4096 inputs plus the final target byte.
pub const MAX_RECORD_BYTES: usize = 4097;

/// Longest merkle branch: trees of up to 2³² leaves.
pub const MAX_BRANCH_DEPTH: usize = 32;

/// Largest encoded sample: the count, then every record at its limits.
pub const MAX_SAMPLE_SIZE: usize =
    3 + MAX_SAMPLE_RECORDS * (4 + 3 + MAX_RECORD_BYTES + 1 + MAX_BRANCH_DEPTH * 32);

/// One corpus record with its merkle branch.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct SampleRecord {
    /// Record index `r`: the corpus bytes `[r·T, r·T + T + 1)`.
    pub index: u32,
    /// The record's bytes.
    #[serde(serialize_with = "crate::hexser::hex_vec")]
    pub bytes: Vec<u8>,
    /// Sibling hashes from the leaf up to the root (Part II §6 tree, Keccak-256d nodes).
    pub proof: Vec<Hash256>,
}

/// The records a block's Proof-of-Training is evaluated on.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct EvalSample {
    /// The records, in ascending index order.
    pub records: Vec<SampleRecord>,
}

impl EvalSample {
    /// The heap memory the records hold, in bytes.
    pub fn heap_usage(&self) -> usize {
        let records: usize =
            self.records.iter().map(|r| r.bytes.capacity() + r.proof.capacity() * 32).sum();
        self.records.capacity() * core::mem::size_of::<SampleRecord>() + records
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        crate::encode::encode_to_vec(self).len()
    }
}

impl Encode for SampleRecord {
    fn encode(&self, w: &mut Vec<u8>) {
        self.index.encode(w);
        write_var_bytes(w, &self.bytes);
        write_compact_size(w, self.proof.len() as u64);
        for h in &self.proof {
            h.encode(w);
        }
    }
}

impl Decode for SampleRecord {
    const MIN_ENCODED_SIZE: usize = 4 + 1 + 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let index = r.read_u32()?;
        let bytes = r.read_var_bytes(MAX_RECORD_BYTES)?;
        let proof = r.read_vec::<Hash256>(MAX_BRANCH_DEPTH)?;
        Ok(Self { index, bytes, proof })
    }
}

impl Encode for EvalSample {
    fn encode(&self, w: &mut Vec<u8>) {
        write_compact_size(w, self.records.len() as u64);
        for record in &self.records {
            record.encode(w);
        }
    }
}

impl Decode for EvalSample {
    const MIN_ENCODED_SIZE: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { records: r.read_vec::<SampleRecord>(MAX_SAMPLE_RECORDS)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::decode_exact;
    use crate::strategies::arb_sample;
    use proptest::prelude::*;

    #[test]
    fn layout() {
        let s = EvalSample {
            records: vec![SampleRecord {
                index: 0x0102_0304,
                bytes: vec![7, 8],
                proof: vec![Hash256([0xAB; 32])],
            }],
        };
        let mut expected = vec![1, 0x04, 0x03, 0x02, 0x01, 2, 7, 8, 1];
        expected.extend([0xAB; 32]);
        let bytes = crate::encode::encode_to_vec(&s);
        assert_eq!(bytes, expected);
        assert_eq!(s.encoded_len(), expected.len());
        assert_eq!(decode_exact::<EvalSample>(&bytes), Ok(s));
        assert_eq!(decode_exact::<EvalSample>(&[0]), Ok(EvalSample::default()));
    }

    #[test]
    fn limits_are_enforced_before_allocation() {
        // Too many records.
        let mut b = Vec::new();
        write_compact_size(&mut b, MAX_SAMPLE_RECORDS as u64 + 1);
        b.extend(vec![0u8; 6 * (MAX_SAMPLE_RECORDS + 1)]);
        assert!(matches!(decode_exact::<EvalSample>(&b), Err(DecodeError::OversizeLength { .. })));
        // A record longer than any window.
        let mut b = vec![1, 0, 0, 0, 0];
        write_compact_size(&mut b, MAX_RECORD_BYTES as u64 + 1);
        b.extend(vec![0u8; MAX_RECORD_BYTES + 2]);
        assert!(matches!(decode_exact::<EvalSample>(&b), Err(DecodeError::OversizeLength { .. })));
        // A branch deeper than any tree.
        let mut b = vec![1, 0, 0, 0, 0, 0];
        write_compact_size(&mut b, MAX_BRANCH_DEPTH as u64 + 1);
        b.extend(vec![0u8; 32 * (MAX_BRANCH_DEPTH + 1)]);
        assert!(matches!(decode_exact::<EvalSample>(&b), Err(DecodeError::OversizeLength { .. })));
        // A declared count the input cannot hold.
        assert!(matches!(
            decode_exact::<EvalSample>(&[0x20]),
            Err(DecodeError::LengthExceedsInput { .. })
        ));
    }

    #[test]
    fn the_largest_sample_fits_the_bound() {
        let record = SampleRecord {
            index: u32::MAX,
            bytes: vec![0xFF; MAX_RECORD_BYTES],
            proof: vec![Hash256([1; 32]); MAX_BRANCH_DEPTH],
        };
        let s = EvalSample { records: vec![record; MAX_SAMPLE_RECORDS] };
        assert!(s.encoded_len() <= MAX_SAMPLE_SIZE);
    }

    proptest! {
        #[test]
        fn round_trips(s in arb_sample()) {
            let b = crate::encode::encode_to_vec(&s);
            prop_assert_eq!(decode_exact::<EvalSample>(&b), Ok(s));
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(s) = decode_exact::<EvalSample>(&data) {
                prop_assert_eq!(crate::encode::encode_to_vec(&s), data);
            }
        }
    }
}
