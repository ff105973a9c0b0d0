//! Typed errors of the onion module. Every decoder returns one of these; none panics.

use thiserror::Error;

/// Why a curve point or scalar is unusable for the onion's X25519 Diffie-Hellman.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The bytes are not the encoding of a point of the curve (an Edwards `y` with no `x`, or a
    /// Montgomery `u` on the quadratic twist).
    #[error("bytes do not encode a curve point")]
    NotOnCurve,
    /// The point decodes but the bytes are not its canonical encoding.
    #[error("non-canonical point encoding")]
    NonCanonical,
    /// The point has order dividing 8 (it carries no secret-dependent information in ECDH).
    #[error("point of small order")]
    SmallOrder,
    /// The point has a torsion component (mixed order); no honest key has one.
    #[error("point is not in the prime-order subgroup")]
    NotTorsionFree,
    /// The Diffie-Hellman result is the identity (`u = 0`), so the shared secret would be public.
    #[error("Diffie-Hellman result is the identity")]
    ZeroSharedSecret,
    /// A scalar (session key or blinding factor) is zero modulo the group order.
    #[error("scalar is zero modulo the group order")]
    ZeroScalar,
}

/// A malformed BigSize or TLV stream. `offset` is the byte position in the decoded slice where
/// the offending record (or integer) starts, so a hop can report it in `invalid_onion_payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TlvError {
    /// The input ended inside a BigSize, a TLV header or a value.
    #[error("truncated at offset {offset}")]
    Truncated {
        /// Where the truncated item starts.
        offset: usize,
    },
    /// A BigSize used more bytes than its value needs.
    #[error("non-minimal BigSize at offset {offset}")]
    NonMinimalBigSize {
        /// Where the BigSize starts.
        offset: usize,
    },
    /// A record's type is not greater than the previous record's (duplicate or out of order).
    #[error("TLV type {tlv_type} at offset {offset} is not strictly increasing")]
    NotIncreasing {
        /// The offending type.
        tlv_type: u64,
        /// Where the record starts.
        offset: usize,
    },
    /// An even (mandatory) type this implementation does not understand.
    #[error("unknown even TLV type {tlv_type} at offset {offset}")]
    UnknownEvenType {
        /// The unknown type.
        tlv_type: u64,
        /// Where the record starts.
        offset: usize,
    },
    /// A known type whose value has the wrong length or a non-minimal truncated integer.
    #[error("invalid value for TLV type {tlv_type} at offset {offset}")]
    InvalidValue {
        /// The offending type.
        tlv_type: u64,
        /// Where the record starts.
        offset: usize,
    },
}

impl TlvError {
    /// The byte offset at which decoding failed.
    pub fn offset(&self) -> usize {
        match *self {
            Self::Truncated { offset }
            | Self::NonMinimalBigSize { offset }
            | Self::NotIncreasing { offset, .. }
            | Self::UnknownEvenType { offset, .. }
            | Self::InvalidValue { offset, .. } => offset,
        }
    }

    /// The TLV type at fault, where one is known.
    pub fn tlv_type(&self) -> Option<u64> {
        match *self {
            Self::NotIncreasing { tlv_type, .. }
            | Self::UnknownEvenType { tlv_type, .. }
            | Self::InvalidValue { tlv_type, .. } => Some(tlv_type),
            Self::Truncated { .. } | Self::NonMinimalBigSize { .. } => None,
        }
    }
}

/// A hop payload that is a well-formed TLV stream but wrong for its position in the route, or
/// not a TLV stream at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PayloadError {
    /// The TLV stream itself is malformed.
    #[error("malformed TLV stream: {0}")]
    Tlv(#[from] TlvError),
    /// A record required at this position is absent.
    #[error("missing required TLV type {tlv_type}")]
    Missing {
        /// The absent type.
        tlv_type: u64,
    },
    /// A known record that must not appear at this position (e.g. `short_channel_id` in the
    /// final hop's payload, `payment_data` in a forwarding hop's).
    #[error("TLV type {tlv_type} at offset {offset} is not allowed in this payload")]
    Forbidden {
        /// The forbidden type.
        tlv_type: u64,
        /// Where the record starts.
        offset: usize,
    },
}

impl PayloadError {
    /// The `(type, offset)` pair an erring hop puts into an `invalid_onion_payload` failure.
    /// The offset saturates at `u16::MAX` (it cannot exceed 1265 in a valid packet anyway).
    pub fn failure_location(&self) -> Option<(u64, u16)> {
        let clamp = |o: usize| u16::try_from(o).unwrap_or(u16::MAX);
        match *self {
            Self::Tlv(e) => e.tlv_type().map(|t| (t, clamp(e.offset()))),
            Self::Missing { tlv_type } => Some((tlv_type, 0)),
            Self::Forbidden { tlv_type, offset } => Some((tlv_type, clamp(offset))),
        }
    }
}

/// Why an onion packet could not be built, decoded or peeled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OnionError {
    /// The encoded packet does not have exactly [`super::PACKET_LEN`] bytes.
    #[error("onion packet is {actual} bytes, expected {expected}")]
    InvalidLength {
        /// The required length.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// The version byte is not 0 (BOLT 4 `invalid_onion_version`).
    #[error("unknown onion version {0}")]
    UnknownVersion(u8),
    /// The packet's ephemeral key is unusable (BOLT 4 `invalid_onion_key`).
    #[error("invalid ephemeral key: {0}")]
    InvalidEphemeralKey(KeyError),
    /// A route hop's Ed25519 public key cannot be used for onion Diffie-Hellman.
    #[error("hop {index} public key is unusable: {reason}")]
    InvalidHopKey {
        /// Position of the hop in the route (0 = first hop after the origin).
        index: usize,
        /// What is wrong with it.
        reason: KeyError,
    },
    /// The session key reduces to zero modulo the group order.
    #[error("session key reduces to zero")]
    InvalidSessionKey,
    /// A blinding factor or Diffie-Hellman result degenerated (probability ~2^-252).
    #[error("degenerate key material: {0}")]
    DegenerateKey(KeyError),
    /// The route is empty.
    #[error("route has no hops")]
    EmptyRoute,
    /// The route is longer than [`super::MAX_HOPS`].
    #[error("route has {0} hops, at most 20 are allowed")]
    TooManyHops(usize),
    /// The number of hop keys and payloads differ.
    #[error("{keys} hop keys but {payloads} payloads")]
    HopCountMismatch {
        /// Number of public keys.
        keys: usize,
        /// Number of payloads.
        payloads: usize,
    },
    /// A forward payload in the last position or a final payload before it.
    #[error("payload {index} is of the wrong kind for its position in the route")]
    MisplacedPayload {
        /// Position of the offending payload.
        index: usize,
    },
    /// The framed payloads do not fit into the 1300-byte `hop_payloads` field.
    #[error("hop payloads need {needed} bytes, the packet has 1300")]
    RouteTooLarge {
        /// Bytes the framed payloads need.
        needed: usize,
    },
    /// The packet's HMAC does not verify (BOLT 4 `invalid_onion_hmac`).
    #[error("onion HMAC mismatch")]
    InvalidHmac,
    /// The decrypted payload length prefix is not a minimal BigSize.
    #[error("malformed payload length prefix")]
    MalformedPayloadLength,
    /// The decrypted payload length is 0 or 1 (reserved) or leaves no room for the next HMAC.
    #[error("payload length {0} out of range")]
    PayloadLengthOutOfRange(u64),
    /// The decrypted payload is not valid for this hop (BOLT 4 `invalid_onion_payload`).
    #[error("invalid hop payload: {0}")]
    InvalidPayload(#[from] PayloadError),
}

/// Why a failure message could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FailureDecodeError {
    /// Fewer than two bytes: no failure code.
    #[error("failure message has no code")]
    MissingCode,
    /// The data for a known failure code is shorter than its fixed fields.
    #[error("data of failure code {code:#06x} is truncated")]
    Truncated {
        /// The failure code.
        code: u16,
    },
    /// A BigSize inside the failure data is not minimal.
    #[error("data of failure code {code:#06x} has a non-minimal BigSize")]
    NonMinimal {
        /// The failure code.
        code: u16,
    },
}

/// Why an error packet could not be built or attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ErrorPacketError {
    /// The encoded failure message is longer than [`super::FAILURE_PAD_LEN`] bytes.
    #[error("failure message is {0} bytes, at most 256 allowed")]
    FailureTooLong(usize),
    /// The packet length is outside `[ERROR_PACKET_LEN, MAX_ERROR_PACKET_LEN]`.
    #[error("error packet is {0} bytes")]
    InvalidLength(usize),
    /// No shared secrets were given.
    #[error("route has no hops")]
    EmptyRoute,
    /// More shared secrets than [`super::MAX_HOPS`].
    #[error("route has {0} hops, at most 20 are allowed")]
    TooManyHops(usize),
    /// No hop's HMAC verifies: the packet was corrupted on the way (or forged) and cannot be
    /// attributed to any hop.
    #[error("error packet cannot be attributed to any hop")]
    Unattributable,
    /// Hop `hop_index`'s HMAC verifies, so that hop sent it, but its contents are malformed.
    /// The origin should treat the hop as faulty.
    #[error("hop {hop_index} sent a malformed failure: {reason}")]
    Malformed {
        /// The hop that authenticated the packet.
        hop_index: usize,
        /// What is wrong.
        reason: MalformedFailure,
    },
}

/// What is wrong inside an authenticated but malformed error packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MalformedFailure {
    /// `failure_len`/`pad_len` do not add up to the packet length.
    #[error("length fields do not match the packet length")]
    LayoutMismatch,
    /// The failure message itself does not parse.
    #[error("{0}")]
    Message(#[from] FailureDecodeError),
}
