//! ResonanceNet primitives (layer 2): amounts, hashes, the hand-written consensus encoding,
//! transactions, block headers, blocks, merkle roots, bech32m addresses and networks.
//!
//! The byte-level rules are written down in `docs/protocol.md (Part II)`; this crate is their
//! reference implementation. Every decoder takes untrusted bytes: it never panics, never
//! allocates more than the input can justify, and rejects non-canonical encodings, so a value has
//! exactly one encoding and `encode(decode(b)) == b` for every accepted `b`.
//!
//! Entry points for "decode this exact byte slice": [`decode_exact`] (any [`Decode`] type,
//! trailing bytes rejected), [`Transaction::from_bytes`], [`BlockHeader::from_bytes`],
//! [`Block::from_bytes`]. Encoding: [`encode_to_vec`]. JSON-friendly display: `serde::Serialize`
//! on [`Transaction`], [`BlockHeader`] and [`Block`] (hashes and byte strings as hex).

pub mod address;
pub mod amount;
pub mod block;
pub mod encode;
pub mod hash;
pub mod header;
pub mod merkle;
pub mod network;
pub mod sample;
pub mod transaction;

mod hexser;
#[cfg(test)]
mod strategies;

pub use address::{Address, AddressError, RawWitnessAddress};
pub use amount::{Amount, COIN, MAX_MONEY, ParseAmountError};
pub use block::{Block, MAX_BLOCK_SIZE, MAX_BLOCK_WIRE_SIZE};
pub use encode::{Decode, DecodeError, Encode, Reader, decode_exact, encode_to_vec};
pub use hash::{BlockHash, Hash256, ParseHashError, Txid, Wtxid};
pub use header::{BlockHeader, HEADER_SIZE, ModelShape, UNSIGNED_HEADER_SIZE};
pub use merkle::{MerkleTree, merkle_depth, merkle_node, merkle_root, merkle_root_from_branch};
pub use network::{Network, ParseNetworkError};
pub use sample::{EvalSample, MAX_SAMPLE_RECORDS, SampleRecord};
pub use transaction::{OutPoint, Transaction, TxIn, TxOut, Witness};
