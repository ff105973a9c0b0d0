//! Why bytes are not a valid peer message, or a message cannot be encoded.

use thiserror::Error;

use crate::onion::TlvError;

/// Every failure of the wire codec. Decoding never panics: any input is either a message, an
/// ignored unknown odd type, or one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Fewer than two bytes: no message type.
    #[error("message shorter than its 2-byte type")]
    NoType,
    /// A message (type included) longer than BOLT 8's 65535-byte limit.
    #[error("message of {0} bytes exceeds 65535")]
    TooLarge(usize),
    /// An even message type this implementation does not know (BOLT 1: it must fail).
    #[error("unknown even message type {0}")]
    UnknownEvenType(u16),
    /// The input ended inside a field.
    #[error("truncated {field}: needed {needed} bytes, {available} remain")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A 32-byte key field that does not decode to an Ed25519 point.
    #[error("{0} is not an Ed25519 point")]
    InvalidKey(&'static str),
    /// A field with a value the protocol does not allow (e.g. more HTLC signatures than there
    /// can be HTLCs).
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The trailing TLV stream is not a well-formed stream.
    #[error("TLV stream: {0}")]
    Tlv(#[from] TlvError),
    /// An even TLV type the message does not define (BOLT 1: it must fail).
    #[error("unknown even TLV type {tlv_type} in message type {msg_type}")]
    UnknownEvenTlv {
        /// The message type.
        msg_type: u16,
        /// The TLV type.
        tlv_type: u64,
    },
    /// A variable-length field too long for its `u16` length prefix (encoding).
    #[error("{field} of {len} bytes exceeds 65535")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
}
