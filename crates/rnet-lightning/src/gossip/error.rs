//! Why a gossip message is refused.

use thiserror::Error;

/// Which of a message's signatures failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureRole {
    /// `node_signature_1` of a channel announcement (by `node_id_1`).
    Node1,
    /// `node_signature_2` of a channel announcement (by `node_id_2`).
    Node2,
    /// `funding_signature_1` of a channel announcement (by `funding_key_1`).
    Funding1,
    /// `funding_signature_2` of a channel announcement (by `funding_key_2`).
    Funding2,
    /// The signature of a node announcement (by its `node_id`).
    Node,
    /// The signature of a channel update (by the node of its direction).
    Update,
}

/// A gossip message that cannot be decoded or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GossipError {
    /// The input ended inside a field.
    #[error("truncated: {field} needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// Bytes remain after the last field.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The payload is longer than a BOLT 1 message can carry.
    #[error("payload of {0} bytes exceeds the 65533-byte limit")]
    TooLong(usize),
    /// A key field does not decode to an Ed25519 curve point.
    #[error("{0} is not an Ed25519 public key")]
    InvalidPublicKey(&'static str),
    /// A key is weak (small order or non-canonical encoding): it would "sign" anything.
    #[error("{0} is a weak key")]
    WeakKey(&'static str),
    /// `message_flags` has `must_be_one` clear or an unknown bit set.
    #[error("unknown or missing message_flags bits: {0:#04x}")]
    InvalidMessageFlags(u8),
    /// `channel_flags` has an unknown bit set.
    #[error("unknown channel_flags bits: {0:#04x}")]
    InvalidChannelFlags(u8),
    /// A DNS address descriptor whose hostname is empty or not printable ASCII.
    #[error("invalid DNS hostname in address descriptor")]
    InvalidHostname,
    /// The message is for another chain (its `chain_hash` is not our genesis block id).
    #[error("message is for another chain")]
    WrongChain,
    /// `node_id_1` is not strictly below `node_id_2` (bytewise).
    #[error("node ids are not in strictly ascending order")]
    NodeIdsNotOrdered,
    /// The two funding keys are the same key.
    #[error("the two funding keys are equal")]
    DuplicateFundingKey,
    /// A signature does not verify.
    #[error("{0:?} signature does not verify")]
    InvalidSignature(SignatureRole),
    /// A channel update's `htlc_minimum_msat` is above its `htlc_maximum_msat`.
    #[error("htlc_minimum_msat {min} above htlc_maximum_msat {max}")]
    HtlcMinimumAboveMaximum {
        /// `htlc_minimum_msat`.
        min: u64,
        /// `htlc_maximum_msat`.
        max: u64,
    },
    /// A short channel id part does not fit in 24 bits.
    #[error("short channel id out of range: height {block_height}, tx index {tx_index}")]
    ScidOutOfRange {
        /// The block height given.
        block_height: u32,
        /// The transaction index given.
        tx_index: u32,
    },
    /// Not a `HEIGHTxTXxOUTPUT` string.
    #[error("not a short channel id string")]
    InvalidScidString,
    /// The message type is not a gossip message (256, 257, 258).
    #[error("unknown gossip message type {0}")]
    UnknownType(u16),
    /// The funding output does not pay the announced 2-of-2.
    #[error("funding output script does not match the announced funding keys")]
    FundingScriptMismatch,
}
