//! Failure messages and the error packets that carry them back to the origin (BOLT 4
//! "Returning Errors").
//!
//! The erring hop builds `hmac (32) ‖ failure_len (u16) ‖ failuremsg ‖ pad_len (u16) ‖ pad` with
//! `failure_len + pad_len = 256` (so every packet is [`ERROR_PACKET_LEN`] = 292 bytes), the HMAC
//! taken under its `um` key over everything after it, and XORs the whole packet with its `ammag`
//! stream. Every upstream hop XORs its own `ammag` stream. The origin, which knows every hop's
//! shared secret, strips the layers in route order and attributes the failure to the first hop
//! whose `um` HMAC verifies.

use hmac::Mac;

use super::error::{ErrorPacketError, FailureDecodeError, MalformedFailure};
use super::keys::{KeyType, SharedSecret, apply_stream, hmac_sha256, new_mac};
use super::tlv::{read_bigsize, write_bigsize};
use super::{HMAC_LEN, MAX_HOPS};

/// Length of `failure_len + pad_len` a conforming erring hop uses.
pub const FAILURE_PAD_LEN: usize = 256;
/// Length of every error packet this implementation builds: HMAC, two length fields, 256 bytes.
pub const ERROR_PACKET_LEN: usize = HMAC_LEN + 2 + FAILURE_PAD_LEN + 2;
/// Longest error packet accepted for attribution (the `u16` length of `update_fail_htlc`).
pub const MAX_ERROR_PACKET_LEN: usize = u16::MAX as usize;

/// A BOLT 4 failure code. The top bits are flags; the low byte numbers the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FailureCode(pub u16);

impl FailureCode {
    /// Flag: the onion was unparsable by the reporting node's downstream peer.
    pub const BADONION: u16 = 0x8000;
    /// Flag: the failure is permanent (otherwise transient).
    pub const PERM: u16 = 0x4000;
    /// Flag: the node failed (otherwise the channel).
    pub const NODE: u16 = 0x2000;
    /// Flag: a channel forwarding parameter was violated.
    pub const UPDATE: u16 = 0x1000;

    /// `temporary_node_failure` (NODE|2).
    pub const TEMPORARY_NODE_FAILURE: Self = Self(Self::NODE | 2);
    /// `permanent_node_failure` (PERM|NODE|2).
    pub const PERMANENT_NODE_FAILURE: Self = Self(Self::PERM | Self::NODE | 2);
    /// `required_node_feature_missing` (PERM|NODE|3).
    pub const REQUIRED_NODE_FEATURE_MISSING: Self = Self(Self::PERM | Self::NODE | 3);
    /// `invalid_onion_version` (BADONION|PERM|4).
    pub const INVALID_ONION_VERSION: Self = Self(Self::BADONION | Self::PERM | 4);
    /// `invalid_onion_hmac` (BADONION|PERM|5).
    pub const INVALID_ONION_HMAC: Self = Self(Self::BADONION | Self::PERM | 5);
    /// `invalid_onion_key` (BADONION|PERM|6).
    pub const INVALID_ONION_KEY: Self = Self(Self::BADONION | Self::PERM | 6);
    /// `temporary_channel_failure` (UPDATE|7).
    pub const TEMPORARY_CHANNEL_FAILURE: Self = Self(Self::UPDATE | 7);
    /// `permanent_channel_failure` (PERM|8).
    pub const PERMANENT_CHANNEL_FAILURE: Self = Self(Self::PERM | 8);
    /// `required_channel_feature_missing` (PERM|9).
    pub const REQUIRED_CHANNEL_FEATURE_MISSING: Self = Self(Self::PERM | 9);
    /// `unknown_next_peer` (PERM|10).
    pub const UNKNOWN_NEXT_PEER: Self = Self(Self::PERM | 10);
    /// `amount_below_minimum` (UPDATE|11).
    pub const AMOUNT_BELOW_MINIMUM: Self = Self(Self::UPDATE | 11);
    /// `fee_insufficient` (UPDATE|12).
    pub const FEE_INSUFFICIENT: Self = Self(Self::UPDATE | 12);
    /// `incorrect_cltv_expiry` (UPDATE|13).
    pub const INCORRECT_CLTV_EXPIRY: Self = Self(Self::UPDATE | 13);
    /// `expiry_too_soon` (UPDATE|14).
    pub const EXPIRY_TOO_SOON: Self = Self(Self::UPDATE | 14);
    /// `incorrect_or_unknown_payment_details` (PERM|15).
    pub const INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS: Self = Self(Self::PERM | 15);
    /// `final_incorrect_cltv_expiry` (18).
    pub const FINAL_INCORRECT_CLTV_EXPIRY: Self = Self(18);
    /// `final_incorrect_htlc_amount` (19).
    pub const FINAL_INCORRECT_HTLC_AMOUNT: Self = Self(19);
    /// `channel_disabled` (UPDATE|20).
    pub const CHANNEL_DISABLED: Self = Self(Self::UPDATE | 20);
    /// `expiry_too_far` (21).
    pub const EXPIRY_TOO_FAR: Self = Self(21);
    /// `invalid_onion_payload` (PERM|22).
    pub const INVALID_ONION_PAYLOAD: Self = Self(Self::PERM | 22);
    /// `mpp_timeout` (23).
    pub const MPP_TIMEOUT: Self = Self(23);

    /// Whether the BADONION flag is set.
    pub fn is_bad_onion(self) -> bool {
        self.0 & Self::BADONION != 0
    }
    /// Whether the PERM flag is set.
    pub fn is_permanent(self) -> bool {
        self.0 & Self::PERM != 0
    }
    /// Whether the NODE flag is set.
    pub fn is_node(self) -> bool {
        self.0 & Self::NODE != 0
    }
    /// Whether the UPDATE flag is set.
    pub fn is_update(self) -> bool {
        self.0 & Self::UPDATE != 0
    }
}

/// A failure message with its typed data. `channel_update` fields are carried as opaque bytes
/// (BOLT 4 no longer requires them; nodes should send them empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureMessage {
    /// General temporary failure of the reporting node.
    TemporaryNodeFailure,
    /// General permanent failure of the reporting node.
    PermanentNodeFailure,
    /// The node requires a feature the onion did not have.
    RequiredNodeFeatureMissing,
    /// The next hop did not understand the onion version.
    InvalidOnionVersion {
        /// SHA256 of the packet as received.
        sha256_of_onion: [u8; 32],
    },
    /// The next hop found the onion's HMAC wrong.
    InvalidOnionHmac {
        /// SHA256 of the packet as received.
        sha256_of_onion: [u8; 32],
    },
    /// The next hop could not use the ephemeral key.
    InvalidOnionKey {
        /// SHA256 of the packet as received.
        sha256_of_onion: [u8; 32],
    },
    /// The outgoing channel cannot carry the HTLC now.
    TemporaryChannelFailure {
        /// Optional `channel_update` (opaque).
        channel_update: Vec<u8>,
    },
    /// The outgoing channel cannot carry any HTLC.
    PermanentChannelFailure,
    /// The outgoing channel requires a feature the onion did not have.
    RequiredChannelFeatureMissing,
    /// No channel with the requested `short_channel_id`.
    UnknownNextPeer,
    /// The HTLC is below the channel's minimum.
    AmountBelowMinimum {
        /// The HTLC amount.
        htlc_msat: u64,
        /// Optional `channel_update` (opaque).
        channel_update: Vec<u8>,
    },
    /// The fee paid is below the channel's.
    FeeInsufficient {
        /// The HTLC amount.
        htlc_msat: u64,
        /// Optional `channel_update` (opaque).
        channel_update: Vec<u8>,
    },
    /// `cltv_expiry − cltv_expiry_delta < outgoing_cltv_value`.
    IncorrectCltvExpiry {
        /// The HTLC's expiry.
        cltv_expiry: u32,
        /// Optional `channel_update` (opaque).
        channel_update: Vec<u8>,
    },
    /// The expiry is too close to the current height.
    ExpiryTooSoon {
        /// Optional `channel_update` (opaque).
        channel_update: Vec<u8>,
    },
    /// Unknown payment hash, wrong secret, wrong amount or expiry too soon at the payee.
    IncorrectOrUnknownPaymentDetails {
        /// The HTLC amount.
        htlc_msat: u64,
        /// The payee's best block height.
        height: u32,
    },
    /// The final HTLC's expiry is below the onion's `outgoing_cltv_value`.
    FinalIncorrectCltvExpiry {
        /// The HTLC's expiry.
        cltv_expiry: u32,
    },
    /// The final HTLC's amount is below the onion's `amt_to_forward`.
    FinalIncorrectHtlcAmount {
        /// The HTLC amount.
        incoming_htlc_amt: u64,
    },
    /// The outgoing channel is disabled.
    ChannelDisabled {
        /// Flags (none defined: zero).
        disabled_flags: u16,
        /// Optional `channel_update` (opaque).
        channel_update: Vec<u8>,
    },
    /// The expiry is too far in the future.
    ExpiryTooFar,
    /// The hop payload was not understood; optionally where (`type`, byte `offset`).
    InvalidOnionPayload {
        /// The TLV type and offset at fault, when known.
        location: Option<(u64, u16)>,
    },
    /// The multi-part payment was not completed in time.
    MppTimeout,
    /// A code this implementation does not know; its flags are still meaningful.
    Unknown {
        /// The code.
        code: FailureCode,
        /// Its data, uninterpreted.
        data: Vec<u8>,
    },
}

impl FailureMessage {
    /// The failure code.
    pub fn code(&self) -> FailureCode {
        use FailureMessage as F;
        match self {
            F::TemporaryNodeFailure => FailureCode::TEMPORARY_NODE_FAILURE,
            F::PermanentNodeFailure => FailureCode::PERMANENT_NODE_FAILURE,
            F::RequiredNodeFeatureMissing => FailureCode::REQUIRED_NODE_FEATURE_MISSING,
            F::InvalidOnionVersion { .. } => FailureCode::INVALID_ONION_VERSION,
            F::InvalidOnionHmac { .. } => FailureCode::INVALID_ONION_HMAC,
            F::InvalidOnionKey { .. } => FailureCode::INVALID_ONION_KEY,
            F::TemporaryChannelFailure { .. } => FailureCode::TEMPORARY_CHANNEL_FAILURE,
            F::PermanentChannelFailure => FailureCode::PERMANENT_CHANNEL_FAILURE,
            F::RequiredChannelFeatureMissing => FailureCode::REQUIRED_CHANNEL_FEATURE_MISSING,
            F::UnknownNextPeer => FailureCode::UNKNOWN_NEXT_PEER,
            F::AmountBelowMinimum { .. } => FailureCode::AMOUNT_BELOW_MINIMUM,
            F::FeeInsufficient { .. } => FailureCode::FEE_INSUFFICIENT,
            F::IncorrectCltvExpiry { .. } => FailureCode::INCORRECT_CLTV_EXPIRY,
            F::ExpiryTooSoon { .. } => FailureCode::EXPIRY_TOO_SOON,
            F::IncorrectOrUnknownPaymentDetails { .. } => {
                FailureCode::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
            }
            F::FinalIncorrectCltvExpiry { .. } => FailureCode::FINAL_INCORRECT_CLTV_EXPIRY,
            F::FinalIncorrectHtlcAmount { .. } => FailureCode::FINAL_INCORRECT_HTLC_AMOUNT,
            F::ChannelDisabled { .. } => FailureCode::CHANNEL_DISABLED,
            F::ExpiryTooFar => FailureCode::EXPIRY_TOO_FAR,
            F::InvalidOnionPayload { .. } => FailureCode::INVALID_ONION_PAYLOAD,
            F::MppTimeout => FailureCode::MPP_TIMEOUT,
            F::Unknown { code, .. } => *code,
        }
    }

    /// `failure_code (u16) ‖ data`, big-endian as in BOLT 4. `channel_update` fields longer than
    /// `u16::MAX` cannot be framed; [`create_error_packet`] refuses anything over 256 bytes
    /// anyway, so they are truncated here rather than panicking.
    pub fn encode(&self) -> Vec<u8> {
        use FailureMessage as F;
        let mut out = self.code().0.to_be_bytes().to_vec();
        let update = |out: &mut Vec<u8>, u: &[u8]| {
            let u = &u[..u.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(u.len() as u16).to_be_bytes());
            out.extend_from_slice(u);
        };
        match self {
            F::TemporaryNodeFailure
            | F::PermanentNodeFailure
            | F::RequiredNodeFeatureMissing
            | F::PermanentChannelFailure
            | F::RequiredChannelFeatureMissing
            | F::UnknownNextPeer
            | F::ExpiryTooFar
            | F::MppTimeout => {}
            F::InvalidOnionVersion { sha256_of_onion }
            | F::InvalidOnionHmac { sha256_of_onion }
            | F::InvalidOnionKey { sha256_of_onion } => out.extend_from_slice(sha256_of_onion),
            F::TemporaryChannelFailure { channel_update } | F::ExpiryTooSoon { channel_update } => {
                update(&mut out, channel_update)
            }
            F::AmountBelowMinimum { htlc_msat, channel_update }
            | F::FeeInsufficient { htlc_msat, channel_update } => {
                out.extend_from_slice(&htlc_msat.to_be_bytes());
                update(&mut out, channel_update);
            }
            F::IncorrectCltvExpiry { cltv_expiry, channel_update } => {
                out.extend_from_slice(&cltv_expiry.to_be_bytes());
                update(&mut out, channel_update);
            }
            F::IncorrectOrUnknownPaymentDetails { htlc_msat, height } => {
                out.extend_from_slice(&htlc_msat.to_be_bytes());
                out.extend_from_slice(&height.to_be_bytes());
            }
            F::FinalIncorrectCltvExpiry { cltv_expiry } => {
                out.extend_from_slice(&cltv_expiry.to_be_bytes());
            }
            F::FinalIncorrectHtlcAmount { incoming_htlc_amt } => {
                out.extend_from_slice(&incoming_htlc_amt.to_be_bytes());
            }
            F::ChannelDisabled { disabled_flags, channel_update } => {
                out.extend_from_slice(&disabled_flags.to_be_bytes());
                update(&mut out, channel_update);
            }
            F::InvalidOnionPayload { location } => {
                if let Some((tlv_type, offset)) = location {
                    write_bigsize(&mut out, *tlv_type);
                    out.extend_from_slice(&offset.to_be_bytes());
                }
            }
            F::Unknown { data, .. } => out.extend_from_slice(data),
        }
        out
    }

    /// Decode `failure_code ‖ data`. Bytes after a known code's fields are ignored (BOLT 4: they
    /// may hold a TLV stream); unknown codes keep their data.
    pub fn decode(bytes: &[u8]) -> Result<Self, FailureDecodeError> {
        use FailureMessage as F;
        let (code, data) = bytes.split_at_checked(2).ok_or(FailureDecodeError::MissingCode)?;
        let code = FailureCode(u16::from_be_bytes([code[0], code[1]]));
        let mut r = Reader { data, code };
        let msg = match code {
            FailureCode::TEMPORARY_NODE_FAILURE => F::TemporaryNodeFailure,
            FailureCode::PERMANENT_NODE_FAILURE => F::PermanentNodeFailure,
            FailureCode::REQUIRED_NODE_FEATURE_MISSING => F::RequiredNodeFeatureMissing,
            FailureCode::INVALID_ONION_VERSION => {
                F::InvalidOnionVersion { sha256_of_onion: r.array()? }
            }
            FailureCode::INVALID_ONION_HMAC => F::InvalidOnionHmac { sha256_of_onion: r.array()? },
            FailureCode::INVALID_ONION_KEY => F::InvalidOnionKey { sha256_of_onion: r.array()? },
            FailureCode::TEMPORARY_CHANNEL_FAILURE => {
                F::TemporaryChannelFailure { channel_update: r.update()? }
            }
            FailureCode::PERMANENT_CHANNEL_FAILURE => F::PermanentChannelFailure,
            FailureCode::REQUIRED_CHANNEL_FEATURE_MISSING => F::RequiredChannelFeatureMissing,
            FailureCode::UNKNOWN_NEXT_PEER => F::UnknownNextPeer,
            FailureCode::AMOUNT_BELOW_MINIMUM => F::AmountBelowMinimum {
                htlc_msat: u64::from_be_bytes(r.array()?),
                channel_update: r.update()?,
            },
            FailureCode::FEE_INSUFFICIENT => F::FeeInsufficient {
                htlc_msat: u64::from_be_bytes(r.array()?),
                channel_update: r.update()?,
            },
            FailureCode::INCORRECT_CLTV_EXPIRY => F::IncorrectCltvExpiry {
                cltv_expiry: u32::from_be_bytes(r.array()?),
                channel_update: r.update()?,
            },
            FailureCode::EXPIRY_TOO_SOON => F::ExpiryTooSoon { channel_update: r.update()? },
            FailureCode::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS => {
                F::IncorrectOrUnknownPaymentDetails {
                    htlc_msat: u64::from_be_bytes(r.array()?),
                    height: u32::from_be_bytes(r.array()?),
                }
            }
            FailureCode::FINAL_INCORRECT_CLTV_EXPIRY => {
                F::FinalIncorrectCltvExpiry { cltv_expiry: u32::from_be_bytes(r.array()?) }
            }
            FailureCode::FINAL_INCORRECT_HTLC_AMOUNT => {
                F::FinalIncorrectHtlcAmount { incoming_htlc_amt: u64::from_be_bytes(r.array()?) }
            }
            FailureCode::CHANNEL_DISABLED => F::ChannelDisabled {
                disabled_flags: u16::from_be_bytes(r.array()?),
                channel_update: r.update()?,
            },
            FailureCode::EXPIRY_TOO_FAR => F::ExpiryTooFar,
            FailureCode::INVALID_ONION_PAYLOAD => {
                if r.data.is_empty() {
                    F::InvalidOnionPayload { location: None }
                } else {
                    let tlv_type = r.bigsize()?;
                    let offset = u16::from_be_bytes(r.array()?);
                    F::InvalidOnionPayload { location: Some((tlv_type, offset)) }
                }
            }
            FailureCode::MPP_TIMEOUT => F::MppTimeout,
            code => F::Unknown { code, data: data.to_vec() },
        };
        Ok(msg)
    }
}

/// Cursor over a failure's data.
struct Reader<'a> {
    data: &'a [u8],
    code: FailureCode,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FailureDecodeError> {
        let (head, tail) = self
            .data
            .split_at_checked(n)
            .ok_or(FailureDecodeError::Truncated { code: self.code.0 })?;
        self.data = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FailureDecodeError> {
        let code = self.code.0;
        self.take(N)?.try_into().map_err(|_| FailureDecodeError::Truncated { code })
    }

    fn update(&mut self) -> Result<Vec<u8>, FailureDecodeError> {
        let len = u16::from_be_bytes(self.array()?);
        Ok(self.take(usize::from(len))?.to_vec())
    }

    fn bigsize(&mut self) -> Result<u64, FailureDecodeError> {
        let code = self.code.0;
        let (value, used) = read_bigsize(self.data, 0).map_err(|e| match e {
            super::error::TlvError::NonMinimalBigSize { .. } => {
                FailureDecodeError::NonMinimal { code }
            }
            _ => FailureDecodeError::Truncated { code },
        })?;
        self.data = &self.data[used..];
        Ok(value)
    }
}

/// Build the error packet an erring hop returns upstream: `failure` padded to 256 bytes,
/// authenticated under `um` and obfuscated under `ammag` of the hop's `shared_secret`.
/// The result is always [`ERROR_PACKET_LEN`] bytes.
pub fn create_error_packet(
    shared_secret: &SharedSecret,
    failure: &FailureMessage,
) -> Result<Vec<u8>, ErrorPacketError> {
    let msg = failure.encode();
    if msg.len() > FAILURE_PAD_LEN {
        return Err(ErrorPacketError::FailureTooLong(msg.len()));
    }
    let mut packet = vec![0u8; ERROR_PACKET_LEN];
    let body = &mut packet[HMAC_LEN..];
    body[..2].copy_from_slice(&(msg.len() as u16).to_be_bytes());
    body[2..2 + msg.len()].copy_from_slice(&msg);
    let pad_len = FAILURE_PAD_LEN - msg.len();
    body[2 + msg.len()..4 + msg.len()].copy_from_slice(&(pad_len as u16).to_be_bytes());
    let um = shared_secret.derive_key(KeyType::Um);
    let hmac = hmac_sha256(&um[..], &[&packet[HMAC_LEN..]]);
    packet[..HMAC_LEN].copy_from_slice(&hmac);
    apply_stream(&shared_secret.derive_key(KeyType::Ammag), &mut packet);
    Ok(packet)
}

/// What an intermediate hop does to an error packet it passes upstream: XOR it with its own
/// `ammag` stream. Works on any length (BOLT 4 allows packets longer than 292 bytes).
pub fn wrap_error_packet(shared_secret: &SharedSecret, packet: &[u8]) -> Vec<u8> {
    let mut out = packet.to_vec();
    apply_stream(&shared_secret.derive_key(KeyType::Ammag), &mut out);
    out
}

/// A failure the origin attributed to one hop of its route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedFailure {
    /// Position in the route (0 = first hop) of the hop that built the packet.
    pub hop_index: usize,
    /// Its failure message.
    pub message: FailureMessage,
}

/// The origin's side: strip each hop's `ammag` layer in route order and attribute the packet to
/// the first hop whose `um` HMAC verifies (constant-time comparison), then parse its message.
///
/// `shared_secrets` are those [`super::construct_onion`] returned. The loop always runs
/// [`MAX_HOPS`] times (with throw-away keys past the route's end, whose matches are ignored), so
/// its timing reveals neither the route length nor the erring hop's position.
pub fn decode_error_packet(
    shared_secrets: &[SharedSecret],
    packet: &[u8],
) -> Result<DecodedFailure, ErrorPacketError> {
    if shared_secrets.is_empty() {
        return Err(ErrorPacketError::EmptyRoute);
    }
    if shared_secrets.len() > MAX_HOPS {
        return Err(ErrorPacketError::TooManyHops(shared_secrets.len()));
    }
    if !(ERROR_PACKET_LEN..=MAX_ERROR_PACKET_LEN).contains(&packet.len()) {
        return Err(ErrorPacketError::InvalidLength(packet.len()));
    }
    let dummy = SharedSecret::from_bytes([0u8; 32]);
    let mut buf = packet.to_vec();
    let mut found: Option<(usize, Vec<u8>)> = None;
    for i in 0..MAX_HOPS {
        let secret = shared_secrets.get(i).unwrap_or(&dummy);
        apply_stream(&secret.derive_key(KeyType::Ammag), &mut buf);
        let um = secret.derive_key(KeyType::Um);
        let mut mac = new_mac(&um[..]);
        mac.update(&buf[HMAC_LEN..]);
        let verified = mac.verify_slice(&buf[..HMAC_LEN]).is_ok();
        if verified && i < shared_secrets.len() && found.is_none() {
            found = Some((i, buf[HMAC_LEN..].to_vec()));
        }
    }
    let (hop_index, body) = found.ok_or(ErrorPacketError::Unattributable)?;
    let malformed = |reason| ErrorPacketError::Malformed { hop_index, reason };
    let failure_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let failure =
        body.get(2..2 + failure_len).ok_or(malformed(MalformedFailure::LayoutMismatch))?;
    let pad_len_bytes = body
        .get(2 + failure_len..4 + failure_len)
        .ok_or(malformed(MalformedFailure::LayoutMismatch))?;
    let pad_len = usize::from(u16::from_be_bytes([pad_len_bytes[0], pad_len_bytes[1]]));
    if 4 + failure_len + pad_len != body.len() {
        return Err(malformed(MalformedFailure::LayoutMismatch));
    }
    // With the packet at least ERROR_PACKET_LEN long, a consistent layout already has
    // failure_len + pad_len >= FAILURE_PAD_LEN.
    let message =
        FailureMessage::decode(failure).map_err(|e| malformed(MalformedFailure::Message(e)))?;
    Ok(DecodedFailure { hop_index, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_messages() -> Vec<FailureMessage> {
        use FailureMessage as F;
        let u = vec![0xaa; 136];
        vec![
            F::TemporaryNodeFailure,
            F::PermanentNodeFailure,
            F::RequiredNodeFeatureMissing,
            F::InvalidOnionVersion { sha256_of_onion: [1; 32] },
            F::InvalidOnionHmac { sha256_of_onion: [2; 32] },
            F::InvalidOnionKey { sha256_of_onion: [3; 32] },
            F::TemporaryChannelFailure { channel_update: u.clone() },
            F::PermanentChannelFailure,
            F::RequiredChannelFeatureMissing,
            F::UnknownNextPeer,
            F::AmountBelowMinimum { htlc_msat: 5, channel_update: vec![] },
            F::FeeInsufficient { htlc_msat: 6, channel_update: u.clone() },
            F::IncorrectCltvExpiry { cltv_expiry: 7, channel_update: vec![] },
            F::ExpiryTooSoon { channel_update: vec![] },
            F::IncorrectOrUnknownPaymentDetails { htlc_msat: 100, height: 800_000 },
            F::FinalIncorrectCltvExpiry { cltv_expiry: 9 },
            F::FinalIncorrectHtlcAmount { incoming_htlc_amt: 10 },
            F::ChannelDisabled { disabled_flags: 0, channel_update: u },
            F::ExpiryTooFar,
            F::InvalidOnionPayload { location: None },
            F::InvalidOnionPayload { location: Some((0x1_0000, 12)) },
            F::MppTimeout,
            F::Unknown { code: FailureCode(0x2099), data: vec![1, 2, 3] },
        ]
    }

    #[test]
    fn every_message_round_trips_with_its_code() {
        for m in all_messages() {
            let bytes = m.encode();
            assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]), m.code().0);
            assert_eq!(FailureMessage::decode(&bytes), Ok(m.clone()), "{m:?}");
            // Trailing bytes (a TLV stream) are ignored for known codes.
            // (Not for unknown codes, whose data is kept whole, nor for an `invalid_onion_payload`
            // without location, whose data is optional.)
            if !matches!(
                m,
                FailureMessage::Unknown { .. }
                    | FailureMessage::InvalidOnionPayload { location: None }
            ) {
                let mut longer = bytes.clone();
                longer.extend_from_slice(&[0x01, 0x00]);
                assert_eq!(FailureMessage::decode(&longer), Ok(m));
            }
        }
    }

    #[test]
    fn bolt4_code_values() {
        assert_eq!(FailureCode::TEMPORARY_NODE_FAILURE.0, 0x2002);
        assert_eq!(FailureCode::INVALID_ONION_HMAC.0, 0xc005);
        assert_eq!(FailureCode::TEMPORARY_CHANNEL_FAILURE.0, 0x1007);
        assert_eq!(FailureCode::UNKNOWN_NEXT_PEER.0, 0x400a);
        assert_eq!(FailureCode::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS.0, 0x400f);
        assert_eq!(FailureCode::CHANNEL_DISABLED.0, 0x1014);
        assert_eq!(FailureCode::MPP_TIMEOUT.0, 23);
        let c = FailureCode::INVALID_ONION_KEY;
        assert!(c.is_bad_onion() && c.is_permanent() && !c.is_node() && !c.is_update());
    }

    #[test]
    fn truncated_data_is_refused() {
        let full = FailureMessage::IncorrectOrUnknownPaymentDetails { htlc_msat: 1, height: 2 };
        let bytes = full.encode();
        for cut in 2..bytes.len() {
            assert_eq!(
                FailureMessage::decode(&bytes[..cut]),
                Err(FailureDecodeError::Truncated { code: 0x400f })
            );
        }
        assert_eq!(FailureMessage::decode(&[0x10]), Err(FailureDecodeError::MissingCode));
        // channel_update length beyond the data.
        assert_eq!(
            FailureMessage::decode(&[0x10, 0x07, 0x00, 0x05, 1, 2]),
            Err(FailureDecodeError::Truncated { code: 0x1007 })
        );
        // Non-minimal BigSize in invalid_onion_payload.
        assert_eq!(
            FailureMessage::decode(&[0x40, 0x16, 0xfd, 0x00, 0x01, 0, 0]),
            Err(FailureDecodeError::NonMinimal { code: 0x4016 })
        );
    }

    #[test]
    fn oversized_failures_are_refused() {
        let ss = SharedSecret::from_bytes([9; 32]);
        let big = FailureMessage::Unknown { code: FailureCode(0x2099), data: vec![0; 255] };
        assert_eq!(create_error_packet(&ss, &big), Err(ErrorPacketError::FailureTooLong(257)));
        let fits = FailureMessage::Unknown { code: FailureCode(0x2099), data: vec![0; 254] };
        let packet = create_error_packet(&ss, &fits).unwrap();
        assert_eq!(packet.len(), ERROR_PACKET_LEN);
        let decoded = decode_error_packet(&[ss], &packet).unwrap();
        assert_eq!(decoded, DecodedFailure { hop_index: 0, message: fits });
    }

    #[test]
    fn authenticated_but_malformed_packets_blame_the_hop() {
        let ss = SharedSecret::from_bytes([5; 32]);
        // failure_len + pad_len below 256, HMAC correct.
        let mut body = vec![0u8; FAILURE_PAD_LEN + 4];
        body[..4].copy_from_slice(&[0x00, 0x02, 0x20, 0x02]);
        body[4..6].copy_from_slice(&[0x00, 0x10]);
        let seal = |body: &[u8]| {
            let um = ss.derive_key(KeyType::Um);
            let mut p = hmac_sha256(&um[..], &[body]).to_vec();
            p.extend_from_slice(body);
            apply_stream(&ss.derive_key(KeyType::Ammag), &mut p);
            p
        };
        let packet = seal(&body);
        assert_eq!(
            decode_error_packet(std::slice::from_ref(&ss), &packet),
            Err(ErrorPacketError::Malformed {
                hop_index: 0,
                reason: MalformedFailure::LayoutMismatch
            })
        );
        // Correct layout but a truncated known message.
        let mut body = vec![0u8; FAILURE_PAD_LEN + 4];
        body[..2].copy_from_slice(&[0x00, 0x03]);
        body[2..5].copy_from_slice(&[0x40, 0x0f, 0x00]);
        body[5..7].copy_from_slice(&(253u16).to_be_bytes());
        assert_eq!(
            decode_error_packet(std::slice::from_ref(&ss), &seal(&body)),
            Err(ErrorPacketError::Malformed {
                hop_index: 0,
                reason: MalformedFailure::Message(FailureDecodeError::Truncated { code: 0x400f })
            })
        );
        // Too short a packet is refused before any HMAC work.
        assert_eq!(
            decode_error_packet(std::slice::from_ref(&ss), &packet[..ERROR_PACKET_LEN - 1]),
            Err(ErrorPacketError::InvalidLength(ERROR_PACKET_LEN - 1))
        );
    }
}
