//! Sphinx onion routing (BOLT 4 adapted to Ed25519 node keys) and error onions.
//!
//! The origin wraps one payload per hop into a fixed-size 1365-byte [`OnionPacket`] with
//! [`construct_onion`]; each hop [`peel_onion`]s its layer, learning only its own instructions
//! and the packet for the next hop, and the final hop recognises itself by an all-zero next HMAC.
//! A hop that fails the HTLC returns an error packet ([`create_error_packet`]) that every upstream
//! hop re-obfuscates ([`wrap_error_packet`]) and only the origin can read and attribute
//! ([`decode_error_packet`]).
//!
//! Differences from BOLT 4 (normative text: `docs/lightning.md` §2): node keys are Ed25519 and
//! the Diffie-Hellman is X25519 on their Montgomery form ([`keys`] explains why that is sound),
//! so the ephemeral key is 32 bytes (BOLT: a 33-byte compressed secp256k1 point) and the packet
//! [`PACKET_LEN`] = 1365 bytes rather than BOLT's 1366; the final payload must carry
//! `payment_data`; route blinding and attribution data (hold times) are not supported, so their
//! TLV types are unknown even types and refused.

mod error;
mod failure;
pub mod keys;
mod packet;
pub mod payload;
pub mod tlv;

#[cfg(test)]
mod bolt4_vectors;

pub use error::{
    ErrorPacketError, FailureDecodeError, KeyError, MalformedFailure, OnionError, PayloadError,
    TlvError,
};
pub use failure::{
    DecodedFailure, ERROR_PACKET_LEN, FAILURE_PAD_LEN, FailureCode, FailureMessage,
    MAX_ERROR_PACKET_LEN, create_error_packet, decode_error_packet, wrap_error_packet,
};
pub use keys::{
    KeyType, NodeSecret, SessionKey, SharedSecret, ed25519_public_to_x25519, ed25519_secret_scalar,
};
pub use packet::{OnionPacket, Peeled, construct_onion, packet_hmac, peel_onion};
pub use payload::{FinalPayload, ForwardPayload, HopPayload};

/// The only packet version: the first byte of every packet.
pub const VERSION: u8 = 0;
/// Length of the `hop_payloads` field.
pub const HOP_PAYLOADS_LEN: usize = 1300;
/// Length of an HMAC-SHA256 tag.
pub const HMAC_LEN: usize = 32;
/// Length of an encoded packet: version, 32-byte ephemeral key, payloads, HMAC.
pub const PACKET_LEN: usize = 1 + 32 + HOP_PAYLOADS_LEN + HMAC_LEN;
/// Longest route an onion can describe.
pub const MAX_HOPS: usize = 20;
