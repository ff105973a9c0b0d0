//! The 1365-byte Sphinx packet: construction by the origin and peeling by each hop.

use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use hmac::Mac;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::error::{KeyError, OnionError};
use super::keys::{
    KeyType, NodeSecret, SessionKey, SharedSecret, apply_stream, blinding_factor, ecdh,
    ephemeral_point, generate_key, hmac_sha256, hop_point, new_mac,
};
use super::payload::{FinalPayload, ForwardPayload, HopPayload};
use super::tlv::{bigsize_len, read_bigsize, write_bigsize};
use super::{HMAC_LEN, HOP_PAYLOADS_LEN, MAX_HOPS, PACKET_LEN, VERSION};

/// A version-0 onion packet: `version (0) ‖ ephemeral_key (32) ‖ hop_payloads (1300) ‖ hmac (32)`.
#[derive(Clone, PartialEq, Eq)]
pub struct OnionPacket {
    /// The X25519 ephemeral public key (Montgomery u-coordinate) for the receiving hop.
    pub ephemeral_key: [u8; 32],
    /// The obfuscated per-hop payloads.
    pub hop_payloads: Box<[u8; HOP_PAYLOADS_LEN]>,
    /// HMAC over `hop_payloads ‖ associated_data` under the receiving hop's `mu` key.
    pub hmac: [u8; HMAC_LEN],
}

impl core::fmt::Debug for OnionPacket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OnionPacket")
            .field("ephemeral_key", &hex(&self.ephemeral_key))
            .field("hmac", &hex(&self.hmac))
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl OnionPacket {
    /// The [`PACKET_LEN`]-byte wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PACKET_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.ephemeral_key);
        out.extend_from_slice(&self.hop_payloads[..]);
        out.extend_from_slice(&self.hmac);
        out
    }

    /// Decode exactly [`PACKET_LEN`] bytes with version 0. The ephemeral key is validated when
    /// the packet is peeled (so a hop can answer `invalid_onion_key` rather than drop it).
    pub fn decode(bytes: &[u8]) -> Result<Self, OnionError> {
        if bytes.len() != PACKET_LEN {
            return Err(OnionError::InvalidLength { expected: PACKET_LEN, actual: bytes.len() });
        }
        if bytes[0] != VERSION {
            return Err(OnionError::UnknownVersion(bytes[0]));
        }
        let mut ephemeral_key = [0u8; 32];
        ephemeral_key.copy_from_slice(&bytes[1..33]);
        let mut hop_payloads = Box::new([0u8; HOP_PAYLOADS_LEN]);
        hop_payloads.copy_from_slice(&bytes[33..33 + HOP_PAYLOADS_LEN]);
        let mut hmac = [0u8; HMAC_LEN];
        hmac.copy_from_slice(&bytes[33 + HOP_PAYLOADS_LEN..]);
        Ok(Self { ephemeral_key, hop_payloads, hmac })
    }

    /// `SHA256` of the encoded packet: the `sha256_of_onion` of the `invalid_onion_*` failures.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }
}

/// What a hop learns from a packet addressed to it.
#[derive(Debug, Clone)]
pub enum Peeled {
    /// Forward an HTLC over `payload.short_channel_id` carrying `next_packet`.
    Forward {
        /// This hop's instructions.
        payload: ForwardPayload,
        /// The packet for the next hop.
        next_packet: OnionPacket,
        /// Secret shared with the origin; keep it to build or wrap error packets.
        shared_secret: SharedSecret,
    },
    /// This node is the payee.
    Final {
        /// The payee's instructions.
        payload: FinalPayload,
        /// Secret shared with the origin; keep it to build error packets.
        shared_secret: SharedSecret,
    },
}

impl Peeled {
    /// The secret this hop shares with the origin.
    pub fn shared_secret(&self) -> &SharedSecret {
        match self {
            Self::Forward { shared_secret, .. } | Self::Final { shared_secret, .. } => {
                shared_secret
            }
        }
    }
}

/// `HMAC-SHA256(mu, hop_payloads ‖ associated_data)`: the packet HMAC a hop checks.
pub fn packet_hmac(
    shared_secret: &SharedSecret,
    hop_payloads: &[u8; HOP_PAYLOADS_LEN],
    associated_data: &[u8],
) -> [u8; HMAC_LEN] {
    let mu = shared_secret.derive_key(KeyType::Mu);
    hmac_sha256(&mu[..], &[&hop_payloads[..], associated_data])
}

/// Build an onion for the route `hops` (first hop first) carrying `payloads` (one per hop; all
/// but the last [`HopPayload::Forward`], the last [`HopPayload::Final`]), bound to
/// `associated_data` (the payment hash for payments).
///
/// Returns the packet for the first hop and the shared secret of every hop, in route order, which
/// the origin keeps to attribute error packets ([`super::decode_error_packet`]).
pub fn construct_onion(
    session_key: &SessionKey,
    hops: &[rnet_crypto::PublicKey],
    payloads: &[HopPayload],
    associated_data: &[u8],
) -> Result<(OnionPacket, Vec<SharedSecret>), OnionError> {
    if hops.len() != payloads.len() {
        return Err(OnionError::HopCountMismatch { keys: hops.len(), payloads: payloads.len() });
    }
    if hops.is_empty() {
        return Err(OnionError::EmptyRoute);
    }
    if hops.len() > MAX_HOPS {
        return Err(OnionError::TooManyHops(hops.len()));
    }
    let last = payloads.len() - 1;
    if let Some(index) = payloads.iter().enumerate().position(|(i, p)| p.is_final() != (i == last))
    {
        return Err(OnionError::MisplacedPayload { index });
    }
    let encoded: Vec<Vec<u8>> = payloads.iter().map(HopPayload::encode).collect();
    let needed: usize = encoded.iter().map(|p| shift_size(p.len())).sum();
    if needed > HOP_PAYLOADS_LEN {
        return Err(OnionError::RouteTooLarge { needed });
    }

    let (ephemeral_key, secrets) = route_secrets(session_key, hops)?;
    let (hop_payloads, hmac) = wrap(session_key, &secrets, &encoded, associated_data);
    Ok((OnionPacket { ephemeral_key, hop_payloads, hmac }, secrets))
}

/// Bytes a payload of `len` bytes takes in `hop_payloads`: BigSize length, payload, next HMAC.
fn shift_size(len: usize) -> usize {
    bigsize_len(len as u64) + len + HMAC_LEN
}

/// The first ephemeral public key and the shared secret with every hop.
fn route_secrets(
    session_key: &SessionKey,
    hops: &[rnet_crypto::PublicKey],
) -> Result<([u8; 32], Vec<SharedSecret>), OnionError> {
    let mut scalar = Scalar::from_bytes_mod_order(*session_key.as_bytes());
    if scalar == Scalar::ZERO {
        return Err(OnionError::InvalidSessionKey);
    }
    let first = MontgomeryPoint::mul_base(&scalar).to_bytes();
    let mut secrets = Vec::with_capacity(hops.len());
    for (index, hop) in hops.iter().enumerate() {
        let point = hop_point(hop.as_bytes())
            .map_err(|reason| OnionError::InvalidHopKey { index, reason })?;
        let ephemeral = MontgomeryPoint::mul_base(&scalar).to_bytes();
        let secret = ecdh(&point, &scalar).map_err(OnionError::DegenerateKey)?;
        let factor = blinding_factor(&ephemeral, &secret).map_err(OnionError::DegenerateKey)?;
        scalar *= factor;
        secrets.push(secret);
    }
    scalar.zeroize();
    Ok((first, secrets))
}

/// The filler: what the last `Σ shift` bytes of `hop_payloads` look like at the last hop, after
/// every earlier hop has appended its zeros and XORed its `rho` stream.
fn filler(secrets: &[SharedSecret], shifts: &[usize]) -> Vec<u8> {
    let mut filler: Vec<u8> = Vec::with_capacity(HOP_PAYLOADS_LEN);
    let mut stream = [0u8; 2 * HOP_PAYLOADS_LEN];
    let hops_before_last = secrets.len().saturating_sub(1);
    for (secret, &shift) in secrets.iter().zip(shifts).take(hops_before_last) {
        let start = HOP_PAYLOADS_LEN - filler.len();
        filler.resize(filler.len() + shift, 0);
        let end = HOP_PAYLOADS_LEN + shift;
        stream[..end].fill(0);
        apply_stream(&secret.derive_key(KeyType::Rho), &mut stream[..end]);
        for (f, s) in filler.iter_mut().zip(&stream[start..end]) {
            *f ^= s;
        }
    }
    filler
}

/// Wrap already-encoded payloads (TLV streams, without the length prefix) for the hops whose
/// shared secrets are `secrets`. The caller has checked that they fit.
fn wrap(
    session_key: &SessionKey,
    secrets: &[SharedSecret],
    payloads: &[Vec<u8>],
    associated_data: &[u8],
) -> (Box<[u8; HOP_PAYLOADS_LEN]>, [u8; HMAC_LEN]) {
    let shifts: Vec<usize> = payloads.iter().map(|p| shift_size(p.len())).collect();
    let filler = filler(secrets, &shifts);

    let mut mix = Box::new([0u8; HOP_PAYLOADS_LEN]);
    apply_stream(&generate_key(KeyType::Pad, session_key.as_bytes()), &mut mix[..]);
    let mut next_hmac = [0u8; HMAC_LEN];
    let mut frame = Vec::with_capacity(HOP_PAYLOADS_LEN);
    for (i, (secret, payload)) in secrets.iter().zip(payloads).enumerate().rev() {
        let shift = shifts[i];
        mix.copy_within(..HOP_PAYLOADS_LEN - shift, shift);
        frame.clear();
        write_bigsize(&mut frame, payload.len() as u64);
        frame.extend_from_slice(payload);
        frame.extend_from_slice(&next_hmac);
        mix[..shift].copy_from_slice(&frame);
        apply_stream(&secret.derive_key(KeyType::Rho), &mut mix[..]);
        if i == secrets.len() - 1 {
            mix[HOP_PAYLOADS_LEN - filler.len()..].copy_from_slice(&filler);
        }
        next_hmac = packet_hmac(secret, &mix, associated_data);
    }
    (mix, next_hmac)
}

/// Process a packet addressed to this node: check its HMAC (constant time) against
/// `associated_data`, decrypt this hop's payload and either return the packet for the next hop
/// or recognise that this node is the final one (next HMAC all zero).
pub fn peel_onion(
    node_secret: &NodeSecret,
    packet: &OnionPacket,
    associated_data: &[u8],
) -> Result<Peeled, OnionError> {
    let ephemeral =
        ephemeral_point(&packet.ephemeral_key).map_err(OnionError::InvalidEphemeralKey)?;
    let shared_secret =
        node_secret.shared_secret_with(&ephemeral).map_err(OnionError::InvalidEphemeralKey)?;

    let mu = shared_secret.derive_key(KeyType::Mu);
    let mut mac = new_mac(&mu[..]);
    mac.update(&packet.hop_payloads[..]);
    mac.update(associated_data);
    mac.verify_slice(&packet.hmac).map_err(|_| OnionError::InvalidHmac)?;

    let mut buf = vec![0u8; 2 * HOP_PAYLOADS_LEN];
    buf[..HOP_PAYLOADS_LEN].copy_from_slice(&packet.hop_payloads[..]);
    apply_stream(&shared_secret.derive_key(KeyType::Rho), &mut buf);

    let (len, prefix) = read_bigsize(&buf, 0).map_err(|_| OnionError::MalformedPayloadLength)?;
    let out_of_range = OnionError::PayloadLengthOutOfRange(len);
    let payload_len = usize::try_from(len).map_err(|_| out_of_range)?;
    if payload_len < 2 || payload_len > HOP_PAYLOADS_LEN - HMAC_LEN - prefix {
        return Err(out_of_range);
    }
    let payload = &buf[prefix..prefix + payload_len];
    let shift = prefix + payload_len + HMAC_LEN;
    let mut next_hmac = [0u8; HMAC_LEN];
    next_hmac.copy_from_slice(&buf[prefix + payload_len..shift]);

    if next_hmac == [0u8; HMAC_LEN] {
        let payload = FinalPayload::decode(payload)?;
        return Ok(Peeled::Final { payload, shared_secret });
    }
    let payload = ForwardPayload::decode(payload)?;
    let factor = blinding_factor(&packet.ephemeral_key, &shared_secret)
        .map_err(OnionError::DegenerateKey)?;
    let next_ephemeral = (ephemeral * factor).to_bytes();
    if next_ephemeral == [0u8; 32] {
        return Err(OnionError::DegenerateKey(KeyError::ZeroSharedSecret));
    }
    let mut hop_payloads = Box::new([0u8; HOP_PAYLOADS_LEN]);
    hop_payloads.copy_from_slice(&buf[shift..shift + HOP_PAYLOADS_LEN]);
    let next_packet = OnionPacket { ephemeral_key: next_ephemeral, hop_payloads, hmac: next_hmac };
    Ok(Peeled::Forward { payload, next_packet, shared_secret })
}

/// BOLT 4 conformance of the symmetric layers (filler, shifting, stream, HMAC). They do not
/// depend on the curve, so with BOLT's shared secrets they must reproduce its packet bytes.
#[cfg(test)]
pub(crate) fn wrap_with_secrets(
    session_key: &SessionKey,
    secrets: &[SharedSecret],
    payloads: &[Vec<u8>],
    associated_data: &[u8],
) -> (Box<[u8; HOP_PAYLOADS_LEN]>, [u8; HMAC_LEN]) {
    wrap(session_key, secrets, payloads, associated_data)
}
