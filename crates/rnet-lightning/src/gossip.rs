//! Gossip: channel announcements, node announcements and channel updates (BOLT 7 adapted to
//! Ed25519; `docs/lightning.md` §5 is the normative text).
//!
//! Each message is encoded here as the **payload body** that follows the BOLT 1 `u16` type
//! ([`CHANNEL_ANNOUNCEMENT_TYPE`], [`NODE_ANNOUNCEMENT_TYPE`], [`CHANNEL_UPDATE_TYPE`]); the wire
//! layer adds the type. Decoding is strict: every field has exactly one encoding, trailing bytes
//! and unknown flag bits are refused, and no input makes a decoder panic.
//!
//! Signatures are Ed25519 (RFC 8032, verified under the ZIP-215 rule of `rnet-crypto`) over the
//! 32-byte digest `Keccak-256d("rnet/gossip/v1" ‖ u16 type ‖ the body after the signatures)`
//! ([`signing_digest`]); a channel announcement carries four of them (both node keys and both
//! funding keys). That the funding output exists, unspent and deep enough, is the caller's
//! check against its UTXO set: [`expected_funding_script_pubkey`] and [`check_funding_output`]
//! say what it must look like.
//!
//! - [`ShortChannelId`]: block height (24 bits) ‖ transaction index (24) ‖ output index (16).
//! - [`ChannelAnnouncement`] / [`UnsignedChannelAnnouncement`] (type 256).
//! - [`NodeAnnouncement`] / [`UnsignedNodeAnnouncement`] (type 257), with [`NetAddress`].
//! - [`ChannelUpdate`] / [`UnsignedChannelUpdate`] (type 258).

mod error;
mod messages;
mod scid;

pub use error::{GossipError, SignatureRole};
pub use messages::{
    CHANNEL_ANNOUNCEMENT_TYPE, CHANNEL_FLAG_DIRECTION, CHANNEL_FLAG_DISABLED, CHANNEL_UPDATE_LEN,
    CHANNEL_UPDATE_TYPE, ChannelAnnouncement, ChannelUpdate, GossipMessage, MAX_GOSSIP_PAYLOAD_LEN,
    MESSAGE_FLAG_MUST_BE_ONE, NODE_ANNOUNCEMENT_TYPE, NetAddress, NodeAnnouncement, SIGNING_DOMAIN,
    UnsignedChannelAnnouncement, UnsignedChannelUpdate, UnsignedNodeAnnouncement,
    check_funding_output, expected_funding_script_pubkey, has_unknown_even_feature, signing_digest,
};
pub use scid::ShortChannelId;

#[cfg(test)]
mod tests;
