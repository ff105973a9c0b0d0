//! Lightning peer messages (BOLT 1 and BOLT 2) with ResonanceNet's field sizes:
//! Ed25519 keys (32 bytes) and signatures (64 bytes), amounts in resonance (on-chain) and msat
//! (HTLCs; 1 resonance = [`crate::channel::MSAT_PER_RESONANCE`] msat), fee rates in resonance
//! per 1000 bytes, `chain_hash` = the genesis block id and a 1365-byte onion.
//!
//! A message is framed as BOLT 1: `u16 type ‖ fields ‖ TLV extension stream` (big-endian).
//! [`Message::decode`] is strict: truncated fields, keys that are not Ed25519 points, malformed
//! TLV streams, unknown even message or TLV types and messages over 65535 bytes are errors
//! ([`WireError`]); an unknown odd message type is `Ok(None)` (ignored, as BOLT 1 says).
//! `docs/lightning.md` §4 is the normative message table.

pub(crate) mod codec;
mod error;
mod messages;

pub use error::WireError;
pub use messages::{
    AcceptChannel, AnnouncementSignatures, BADONION, ChannelId, ChannelReady, ChannelReestablish,
    ClosingSigned, CommitmentSigned, ErrorMessage, FundingCreated, FundingSigned, Init,
    MAX_MESSAGE_LEN, Message, OpenChannel, Ping, Pong, RevokeAndAck, Shutdown, SignatureBytes,
    UpdateAddHtlc, UpdateFailHtlc, UpdateFailMalformedHtlc, UpdateFee, UpdateFulfillHtlc, Warning,
    message_type, msg_type,
};
