//! Block headers.
//!
//! Fields in encoding order, with sizes in bytes:
//!
//! | field | type | bytes |
//! |---|---|---|
//! | version | u32 | 4 |
//! | prev_block_hash | BlockHash | 32 |
//! | merkle_root | Hash256 | 32 |
//! | time | u64 | 8 |
//! | height | u32 | 4 |
//! | shape.d_model | u32 | 4 |
//! | shape.n_layers | u32 | 4 |
//! | checkpoint_root | Hash256 | 32 |
//! | checkpoint_size | u64 | 8 |
//! | update_root | Hash256 | 32 |
//! | update_size | u64 | 8 |
//! | parent_loss | u64 | 8 |
//! | val_loss | u64 | 8 |
//! | required_improvement | u64 | 8 |
//! | training_steps | u64 | 8 |
//! | dataset_commitment | Hash256 | 32 |
//! | miner_pubkey | [u8; 32] | 32 |
//! | signature | [u8; 64] | 64 |
//!
//! Total [`HEADER_SIZE`] = 328 bytes; without the signature [`UNSIGNED_HEADER_SIZE`] = 264.
//! The block id ([`BlockHeader::hash`]) is Keccak-256d of the 264 unsigned bytes and is exactly
//! what the miner signs: the signature is covered by the block's validity, not by its id (like a
//! witness).

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::encode::{Decode, DecodeError, Encode, Reader, encode_to_vec};
use crate::hash::{BlockHash, Hash256};
use crate::hexser::HexBytes;

/// Encoded size of a header, signature included.
pub const HEADER_SIZE: usize = 328;

/// Encoded size of a header without its signature (what the block id hashes).
pub const UNSIGNED_HEADER_SIZE: usize = HEADER_SIZE - 64;

/// The model shape a block's checkpoint must have.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, serde::Serialize)]
pub struct ModelShape {
    /// Model width.
    pub d_model: u32,
    /// Number of layers.
    pub n_layers: u32,
}

impl Encode for ModelShape {
    fn encode(&self, w: &mut Vec<u8>) {
        self.d_model.encode(w);
        self.n_layers.encode(w);
    }
}

impl Decode for ModelShape {
    const MIN_ENCODED_SIZE: usize = 8;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { d_model: r.read_u32()?, n_layers: r.read_u32()? })
    }
}

/// A block header (see the module documentation for the layout).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct BlockHeader {
    /// Header version.
    pub version: u32,
    /// Id of the parent block.
    pub prev_block_hash: BlockHash,
    /// Merkle root over the wtxids of the block's transactions.
    pub merkle_root: Hash256,
    /// Block time, unix seconds.
    pub time: u64,
    /// Height of this block.
    pub height: u32,
    /// The model shape scheduled for this height.
    pub shape: ModelShape,
    /// Merkle root of the checkpoint's 1 MiB chunks.
    pub checkpoint_root: Hash256,
    /// Checkpoint size in bytes.
    pub checkpoint_size: u64,
    /// Merkle root of the 1 MiB chunks of the block's model update (the bytes that travel; the
    /// checkpoint is derived from the parent's and checked against `checkpoint_root`). Zero at
    /// genesis, which has no parent.
    pub update_root: Hash256,
    /// Model update size in bytes (0 at genesis).
    pub update_size: u64,
    /// The parent checkpoint's loss on this block's evaluation sample (micro-nats per byte,
    /// canonical evaluator output).
    pub parent_loss: u64,
    /// This block's checkpoint's loss on the same sample (micro-nats per byte).
    pub val_loss: u64,
    /// The effective required improvement `parent_loss − val_loss` must reach (micro-nats): the
    /// chain's base requirement after the stall-escape discount, as computed from the chain.
    pub required_improvement: u64,
    /// Training steps the miner claims (informational, never trusted).
    pub training_steps: u64,
    /// Commitment to the miner's training data (informational, never trusted).
    pub dataset_commitment: Hash256,
    /// The miner's Ed25519 public key.
    pub miner_pubkey: [u8; 32],
    /// Ed25519 signature by `miner_pubkey` over [`BlockHeader::signing_hash`].
    pub signature: [u8; 64],
}

impl Default for BlockHeader {
    fn default() -> Self {
        Self {
            version: 0,
            prev_block_hash: BlockHash::ZERO,
            merkle_root: Hash256::ZERO,
            time: 0,
            height: 0,
            shape: ModelShape::default(),
            checkpoint_root: Hash256::ZERO,
            checkpoint_size: 0,
            update_root: Hash256::ZERO,
            update_size: 0,
            parent_loss: 0,
            val_loss: 0,
            required_improvement: 0,
            training_steps: 0,
            dataset_commitment: Hash256::ZERO,
            miner_pubkey: [0; 32],
            signature: [0; 64],
        }
    }
}

impl BlockHeader {
    /// Appends every field except the signature (the 264 bytes the id hashes).
    pub fn encode_unsigned_into(&self, w: &mut Vec<u8>) {
        self.version.encode(w);
        self.prev_block_hash.encode(w);
        self.merkle_root.encode(w);
        self.time.encode(w);
        self.height.encode(w);
        self.shape.encode(w);
        self.checkpoint_root.encode(w);
        self.checkpoint_size.encode(w);
        self.update_root.encode(w);
        self.update_size.encode(w);
        self.parent_loss.encode(w);
        self.val_loss.encode(w);
        self.required_improvement.encode(w);
        self.training_steps.encode(w);
        self.dataset_commitment.encode(w);
        self.miner_pubkey.encode(w);
    }

    /// The encoding without the signature.
    pub fn encode_unsigned(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(UNSIGNED_HEADER_SIZE);
        self.encode_unsigned_into(&mut w);
        w
    }

    /// The block id: Keccak-256d of [`BlockHeader::encode_unsigned`].
    pub fn hash(&self) -> BlockHash {
        BlockHash(rnet_crypto::keccak256d(&self.encode_unsigned()))
    }

    /// The message the miner signs; equal to [`BlockHeader::hash`].
    pub fn signing_hash(&self) -> BlockHash {
        self.hash()
    }

    /// Decodes a header that spans `bytes` exactly (328 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        crate::encode::decode_exact(bytes)
    }

    /// The full 328-byte encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }
}

impl Encode for BlockHeader {
    fn encode(&self, w: &mut Vec<u8>) {
        self.encode_unsigned_into(w);
        self.signature.encode(w);
    }
}

impl Decode for BlockHeader {
    const MIN_ENCODED_SIZE: usize = HEADER_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let remaining = r.remaining();
        if remaining < HEADER_SIZE {
            return Err(DecodeError::UnexpectedEnd { needed: HEADER_SIZE, remaining });
        }
        Ok(Self {
            version: r.read_u32()?,
            prev_block_hash: BlockHash::decode(r)?,
            merkle_root: Hash256::decode(r)?,
            time: r.read_u64()?,
            height: r.read_u32()?,
            shape: ModelShape::decode(r)?,
            checkpoint_root: Hash256::decode(r)?,
            checkpoint_size: r.read_u64()?,
            update_root: Hash256::decode(r)?,
            update_size: r.read_u64()?,
            parent_loss: r.read_u64()?,
            val_loss: r.read_u64()?,
            required_improvement: r.read_u64()?,
            training_steps: r.read_u64()?,
            dataset_commitment: Hash256::decode(r)?,
            miner_pubkey: r.read_array()?,
            signature: r.read_array()?,
        })
    }
}

/// JSON view: the block id first, then every field; hashes, key and signature as hex.
impl Serialize for BlockHeader {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("BlockHeader", 18)?;
        st.serialize_field("hash", &self.hash())?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("prev_block_hash", &self.prev_block_hash)?;
        st.serialize_field("merkle_root", &self.merkle_root)?;
        st.serialize_field("time", &self.time)?;
        st.serialize_field("height", &self.height)?;
        st.serialize_field("shape", &self.shape)?;
        st.serialize_field("checkpoint_root", &self.checkpoint_root)?;
        st.serialize_field("checkpoint_size", &self.checkpoint_size)?;
        st.serialize_field("update_root", &self.update_root)?;
        st.serialize_field("update_size", &self.update_size)?;
        st.serialize_field("parent_loss", &self.parent_loss)?;
        st.serialize_field("val_loss", &self.val_loss)?;
        st.serialize_field("required_improvement", &self.required_improvement)?;
        st.serialize_field("training_steps", &self.training_steps)?;
        st.serialize_field("dataset_commitment", &self.dataset_commitment)?;
        st.serialize_field("miner_pubkey", &HexBytes(&self.miner_pubkey))?;
        st.serialize_field("signature", &HexBytes(&self.signature))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::arb_header;
    use proptest::prelude::*;

    /// A header whose every field has distinct bytes, and its encoding written out by hand.
    fn sample() -> (BlockHeader, Vec<u8>) {
        let h = BlockHeader {
            version: 0x0403_0201,
            prev_block_hash: BlockHash([0xA1; 32]),
            merkle_root: Hash256([0xA2; 32]),
            time: 0x1112_1314_1516_1718,
            height: 0x2122_2324,
            shape: ModelShape { d_model: 0x3132_3334, n_layers: 0x4142_4344 },
            checkpoint_root: Hash256([0xA3; 32]),
            checkpoint_size: 0x5152_5354_5556_5758,
            update_root: Hash256([0xA7; 32]),
            update_size: 0xB1B2_B3B4_B5B6_B7B8,
            parent_loss: 0x9192_9394_9596_9798,
            val_loss: 0x6162_6364_6566_6768,
            required_improvement: 0x7172_7374_7576_7778,
            training_steps: 0x8182_8384_8586_8788,
            dataset_commitment: Hash256([0xA4; 32]),
            miner_pubkey: [0xA5; 32],
            signature: [0xA6; 64],
        };
        let mut b = vec![0x01, 0x02, 0x03, 0x04];
        b.extend([0xA1; 32]);
        b.extend([0xA2; 32]);
        b.extend([0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]);
        b.extend([0x24, 0x23, 0x22, 0x21]);
        b.extend([0x34, 0x33, 0x32, 0x31]);
        b.extend([0x44, 0x43, 0x42, 0x41]);
        b.extend([0xA3; 32]);
        b.extend([0x58, 0x57, 0x56, 0x55, 0x54, 0x53, 0x52, 0x51]);
        b.extend([0xA7; 32]);
        b.extend([0xB8, 0xB7, 0xB6, 0xB5, 0xB4, 0xB3, 0xB2, 0xB1]);
        b.extend([0x98, 0x97, 0x96, 0x95, 0x94, 0x93, 0x92, 0x91]);
        b.extend([0x68, 0x67, 0x66, 0x65, 0x64, 0x63, 0x62, 0x61]);
        b.extend([0x78, 0x77, 0x76, 0x75, 0x74, 0x73, 0x72, 0x71]);
        b.extend([0x88, 0x87, 0x86, 0x85, 0x84, 0x83, 0x82, 0x81]);
        b.extend([0xA4; 32]);
        b.extend([0xA5; 32]);
        b.extend([0xA6; 64]);
        (h, b)
    }

    #[test]
    fn layout_matches_spec() {
        let (h, b) = sample();
        assert_eq!(b.len(), 328);
        assert_eq!(HEADER_SIZE, 328);
        assert_eq!(UNSIGNED_HEADER_SIZE, 264);
        assert_eq!(h.to_bytes(), b);
        assert_eq!(h.encode_unsigned(), b[..264]);
        assert_eq!(BlockHeader::from_bytes(&b), Ok(h));
    }

    #[test]
    fn id_excludes_signature() {
        let (mut h, b) = sample();
        assert_eq!(h.hash().0, rnet_crypto::keccak256d(&b[..264]));
        assert_eq!(h.signing_hash(), h.hash());
        let id = h.hash();
        h.signature = [0; 64];
        assert_eq!(h.hash(), id);
        h.miner_pubkey[0] ^= 1;
        assert_ne!(h.hash(), id);
    }

    #[test]
    fn rejects_wrong_sizes() {
        let (_, b) = sample();
        assert_eq!(
            BlockHeader::from_bytes(&b[..327]),
            Err(DecodeError::UnexpectedEnd { needed: 328, remaining: 327 })
        );
        let mut long = b.clone();
        long.push(0);
        assert_eq!(BlockHeader::from_bytes(&long), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn json_view_uses_hex() {
        let (h, _) = sample();
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["hash"], h.hash().to_string());
        assert_eq!(v["prev_block_hash"], "a1".repeat(32));
        assert_eq!(v["shape"]["d_model"], 0x3132_3334);
        assert_eq!(v["val_loss"], 0x6162_6364_6566_6768u64);
        assert_eq!(v["parent_loss"], 0x9192_9394_9596_9798u64);
        assert_eq!(v["miner_pubkey"], "a5".repeat(32));
        assert_eq!(v["signature"], "a6".repeat(64));
    }

    proptest! {
        #[test]
        fn round_trips(h in arb_header()) {
            let b = h.to_bytes();
            prop_assert_eq!(b.len(), HEADER_SIZE);
            let back = BlockHeader::from_bytes(&b).unwrap();
            prop_assert_eq!(&back, &h);
            prop_assert_eq!(back.to_bytes(), b);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..440)) {
            match BlockHeader::from_bytes(&data) {
                Ok(h) => prop_assert_eq!(h.to_bytes(), data),
                Err(_) => prop_assert_ne!(data.len(), HEADER_SIZE),
            }
        }
    }
}
