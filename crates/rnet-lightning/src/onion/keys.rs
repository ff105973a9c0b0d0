//! Keys of the onion: Ed25519 node keys mapped to X25519, the per-hop Diffie-Hellman, the
//! BOLT 4 key-generation function and the ChaCha20 byte stream.
//!
//! # Why the Ed25519 → X25519 conversion is sound
//!
//! Edwards25519 and Curve25519 are birationally equivalent: `u = (1 + y) / (1 − y)` maps the
//! Edwards point `(x, y)` to the Montgomery point with u-coordinate `u`, and the map is a group
//! isomorphism (up to the sign of `v`, which X25519 never uses). An Ed25519 public key is
//! `A = [a]B` where `a` is the clamped low half of `SHA-512(seed)`; the image of `A` is therefore
//! `[a]` times the image of `B`, which is the X25519 base point `u = 9`. So the same integer `a`
//! is the X25519 secret of `u(A)`, and the node needs no second key. This is the conversion of
//! libsodium's `crypto_sign_ed25519_pk_to_curve25519`/`crypto_sign_ed25519_sk_to_curve25519`.
//!
//! Hop keys given to the sender are accepted only when they are canonical encodings of points
//! in the prime-order subgroup (no small-order or mixed-order point): every key produced by
//! [`rnet_crypto::SigningKey::public_key`] is, and for such keys multiplying by a scalar reduced
//! modulo ℓ is the same as multiplying by the unreduced integer. That is what lets this module use
//! clamping-free `MontgomeryPoint * Scalar` everywhere (the blinded ephemeral scalars are products
//! modulo ℓ and could not be clamped) and still have sender and hop agree. The hop likewise
//! rejects ephemeral keys outside the prime-order subgroup, which stops an attacker from
//! learning `a mod 8` through a small-subgroup confinement attack.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, OsRng, RngCore};
use sha2::{Digest, Sha256, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::KeyError;

type HmacSha256 = Hmac<Sha256>;

/// The key types of BOLT 4's key-generation function. Each is the HMAC key (ASCII, no
/// terminator) under which the shared secret is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `rho`: ChaCha20 key that obfuscates `hop_payloads`.
    Rho,
    /// `mu`: HMAC key that authenticates `hop_payloads ‖ associated_data`.
    Mu,
    /// `um`: HMAC key of the error packet.
    Um,
    /// `pad`: ChaCha20 key for the initial random `hop_payloads` (keyed by the session key).
    Pad,
    /// `ammag`: ChaCha20 key that obfuscates the error packet.
    Ammag,
}

impl KeyType {
    /// The ASCII bytes used as the HMAC key.
    pub fn label(self) -> &'static [u8] {
        match self {
            Self::Rho => b"rho",
            Self::Mu => b"mu",
            Self::Um => b"um",
            Self::Pad => b"pad",
            Self::Ammag => b"ammag",
        }
    }
}

/// BOLT 4 key generation: `HMAC-SHA256(key = label, message = secret)`.
pub fn generate_key(key_type: KeyType, secret: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(hmac_sha256(key_type.label(), &[secret]))
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = new_mac(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A fresh HMAC-SHA256 instance (HMAC accepts keys of any length, so this cannot fail).
pub(crate) fn new_mac(key: &[u8]) -> HmacSha256 {
    match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// XOR `buf` with the ChaCha20 stream (RFC 8439, 96-bit zero nonce, counter 0) under `key`.
pub(crate) fn apply_stream(key: &[u8; 32], buf: &mut [u8]) {
    let mut cipher = ChaCha20::new(key.into(), &[0u8; 12].into());
    cipher.apply_keystream(buf);
}

/// The Ed25519 secret scalar of a 32-byte seed: the low 32 bytes of `SHA-512(seed)` clamped
/// (bits 0–2 and 255 cleared, bit 254 set), exactly the scalar RFC 8032 signs with. It is also
/// the X25519 secret of the key's Montgomery form.
pub fn ed25519_secret_scalar(seed: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut digest = Zeroizing::new([0u8; 64]);
    digest.copy_from_slice(&Sha512::digest(seed));
    let mut scalar = Zeroizing::new([0u8; 32]);
    scalar.copy_from_slice(&digest[..32]);
    scalar[0] &= 0xf8;
    scalar[31] &= 0x7f;
    scalar[31] |= 0x40;
    scalar
}

/// The X25519 form (Montgomery u-coordinate) of an Ed25519 public key, accepted only when the
/// bytes canonically encode a point of the prime-order subgroup other than the identity.
pub fn ed25519_public_to_x25519(key: &rnet_crypto::PublicKey) -> Result<[u8; 32], KeyError> {
    hop_point(key.as_bytes()).map(|p| p.to_bytes())
}

pub(crate) fn hop_point(bytes: &[u8; 32]) -> Result<MontgomeryPoint, KeyError> {
    let point = CompressedEdwardsY(*bytes).decompress().ok_or(KeyError::NotOnCurve)?;
    if point.compress().to_bytes() != *bytes {
        return Err(KeyError::NonCanonical);
    }
    if point.is_small_order() {
        return Err(KeyError::SmallOrder);
    }
    if !point.is_torsion_free() {
        return Err(KeyError::NotTorsionFree);
    }
    Ok(point.to_montgomery())
}

/// Validate an ephemeral key (a Montgomery u-coordinate) received in a packet: it must be the
/// canonical encoding of a point on the curve (not the twist), not of small order, and in the
/// prime-order subgroup.
pub(crate) fn ephemeral_point(bytes: &[u8; 32]) -> Result<MontgomeryPoint, KeyError> {
    let candidate = MontgomeryPoint(*bytes);
    // The sign is irrelevant: P and −P have the same u-coordinate, order and torsion.
    let edwards = candidate.to_edwards(0).ok_or(KeyError::NotOnCurve)?;
    // Compare bytes: `MontgomeryPoint`'s equality reduces modulo p and ignores the top bit.
    if edwards.to_montgomery().to_bytes() != *bytes {
        return Err(KeyError::NonCanonical);
    }
    if edwards.is_small_order() {
        return Err(KeyError::SmallOrder);
    }
    if !edwards.is_torsion_free() {
        return Err(KeyError::NotTorsionFree);
    }
    Ok(candidate)
}

/// `SHA256(u([k]P))`, refusing an identity result.
pub(crate) fn ecdh(point: &MontgomeryPoint, scalar: &Scalar) -> Result<SharedSecret, KeyError> {
    let mut shared = point * scalar;
    if shared.to_bytes() == [0u8; 32] {
        return Err(KeyError::ZeroSharedSecret);
    }
    let secret = SharedSecret(Sha256::digest(shared.as_bytes()).into());
    shared.zeroize();
    Ok(secret)
}

/// `SHA256(ephemeral_key ‖ shared_secret)` read little-endian and reduced modulo ℓ.
pub(crate) fn blinding_factor(
    ephemeral_key: &[u8; 32],
    shared_secret: &SharedSecret,
) -> Result<Scalar, KeyError> {
    let mut h = Sha256::new();
    h.update(ephemeral_key);
    h.update(shared_secret.0);
    let factor = Scalar::from_bytes_mod_order(h.finalize().into());
    if factor == Scalar::ZERO {
        return Err(KeyError::ZeroScalar);
    }
    Ok(factor)
}

/// A node's onion-decryption secret: its Ed25519 secret scalar, reduced modulo ℓ.
///
/// Zeroized on drop; `Debug` prints only the public X25519 key.
#[derive(Clone)]
pub struct NodeSecret {
    scalar: Scalar,
}

impl Drop for NodeSecret {
    fn drop(&mut self) {
        self.scalar.zeroize();
    }
}

impl ZeroizeOnDrop for NodeSecret {}

impl core::fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NodeSecret")
            .field("x25519_public_key", &hex_string(&self.x25519_public_key()))
            .finish_non_exhaustive()
    }
}

impl NodeSecret {
    /// The onion secret of a node whose identity key has this 32-byte Ed25519 seed.
    pub fn from_ed25519_seed(seed: &[u8; 32]) -> Self {
        let clamped = ed25519_secret_scalar(seed);
        Self { scalar: Scalar::from_bytes_mod_order(*clamped) }
    }

    /// The onion secret of the node whose identity is `key`.
    pub fn from_signing_key(key: &rnet_crypto::SigningKey) -> Self {
        Self::from_ed25519_seed(key.as_bytes())
    }

    /// The X25519 public key, equal to [`ed25519_public_to_x25519`] of the node's Ed25519 key.
    pub fn x25519_public_key(&self) -> [u8; 32] {
        MontgomeryPoint::mul_base(&self.scalar).to_bytes()
    }

    /// The shared secret with the sender of a packet carrying `ephemeral_key`. A hop calls this
    /// directly when it must return an encrypted failure for a packet whose payload it could not
    /// use; [`super::peel_onion`] calls it internally.
    pub fn shared_secret(&self, ephemeral_key: &[u8; 32]) -> Result<SharedSecret, KeyError> {
        let point = ephemeral_point(ephemeral_key)?;
        self.shared_secret_with(&point)
    }

    /// Diffie-Hellman with an already validated ephemeral point.
    pub(crate) fn shared_secret_with(
        &self,
        point: &MontgomeryPoint,
    ) -> Result<SharedSecret, KeyError> {
        ecdh(point, &self.scalar)
    }
}

/// The 32-byte secret a sender shares with one hop: `SHA256(u([e]A))`.
///
/// The hop keeps it from the forward pass to build or re-obfuscate error packets; the origin
/// keeps one per hop to attribute them. Zeroized on drop; `Debug` redacts it.
#[derive(Clone)]
pub struct SharedSecret([u8; 32]);

impl Drop for SharedSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for SharedSecret {}

impl core::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

impl SharedSecret {
    /// Wrap raw bytes (for persisted secrets, test vectors and fuzzing).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The BOLT 4 key of type `key_type` derived from this secret.
    pub fn derive_key(&self, key_type: KeyType) -> Zeroizing<[u8; 32]> {
        generate_key(key_type, &self.0)
    }
}

/// The sender's 32-byte session key: the first hop's ephemeral scalar (read little-endian and
/// reduced modulo ℓ) and the seed of the initial `hop_payloads` padding.
///
/// Zeroized on drop; `Debug` redacts it.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl Drop for SessionKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for SessionKey {}

impl core::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// A session key from fixed bytes (tests, deterministic retries).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh session key from a cryptographic RNG. Every packet needs its own.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let key = Self(bytes);
        bytes.zeroize();
        key
    }

    /// A fresh session key from the operating system's RNG.
    pub fn random() -> Self {
        Self::generate(&mut OsRng)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    #[test]
    fn node_secret_matches_converted_public_key() {
        for n in 1u8..=8 {
            let sk = rnet_crypto::SigningKey::from_bytes(&[n; 32]);
            let from_secret = NodeSecret::from_signing_key(&sk).x25519_public_key();
            let from_public = ed25519_public_to_x25519(&sk.public_key()).unwrap();
            assert_eq!(from_secret, from_public, "seed {n}");
            // And the clamped scalar is the RFC 8032 one: [a]B is the Ed25519 public key.
            let a = ed25519_secret_scalar(&[n; 32]);
            let edwards = curve25519_dalek::EdwardsPoint::mul_base_clamped(*a);
            assert_eq!(edwards.compress().to_bytes(), sk.public_key().to_bytes());
        }
    }

    #[test]
    fn both_sides_derive_the_same_secret() {
        let node = rnet_crypto::SigningKey::from_bytes(&[7; 32]);
        let e = Scalar::from_bytes_mod_order([0x42; 32]);
        let epk = MontgomeryPoint::mul_base(&e).to_bytes();
        let sender = ecdh(&hop_point(node.public_key().as_bytes()).unwrap(), &e).unwrap();
        let hop = NodeSecret::from_signing_key(&node).shared_secret(&epk).unwrap();
        assert_eq!(sender.as_bytes(), hop.as_bytes());
    }

    #[test]
    fn weak_hop_keys_are_rejected() {
        // The Edwards identity and every other small-order point.
        for t in EIGHT_TORSION {
            let bytes = t.compress().to_bytes();
            assert_eq!(hop_point(&bytes), Err(KeyError::SmallOrder));
        }
        // A valid key plus a torsion point: mixed order.
        let sk = rnet_crypto::SigningKey::from_bytes(&[3; 32]);
        let a = CompressedEdwardsY(sk.public_key().to_bytes()).decompress().unwrap();
        let mixed = (a + EIGHT_TORSION[1]).compress().to_bytes();
        assert_eq!(hop_point(&mixed), Err(KeyError::NotTorsionFree));
        // y = 2 is not on the curve.
        let mut off = [0u8; 32];
        off[0] = 2;
        assert_eq!(hop_point(&off), Err(KeyError::NotOnCurve));
        // Non-canonical: y + p for y = 1 (the identity) is 2^255 - 18 (sign bit clear).
        let mut noncanon = [0xffu8; 32];
        noncanon[0] = 0xee;
        noncanon[31] = 0x7f;
        assert_eq!(hop_point(&noncanon), Err(KeyError::NonCanonical));
    }

    #[test]
    fn weak_ephemeral_keys_are_rejected() {
        let node = NodeSecret::from_ed25519_seed(&[1; 32]);
        // u = 0 (order 2 / identity image) and u = 1 (order 4).
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(node.shared_secret(&[0; 32]).err(), Some(KeyError::SmallOrder));
        assert_eq!(node.shared_secret(&one).err(), Some(KeyError::SmallOrder));
        // u = 2 lies on the twist.
        let mut two = [0u8; 32];
        two[0] = 2;
        assert_eq!(node.shared_secret(&two).err(), Some(KeyError::NotOnCurve));
        // A prime-order point plus torsion.
        let e = curve25519_dalek::EdwardsPoint::mul_base(&Scalar::from(5u8));
        let mixed = (e + EIGHT_TORSION[1]).to_montgomery().to_bytes();
        assert_eq!(node.shared_secret(&mixed).err(), Some(KeyError::NotTorsionFree));
        // High bit set on a valid u: non-canonical.
        let mut high = e.to_montgomery().to_bytes();
        assert!(node.shared_secret(&high).is_ok());
        high[31] |= 0x80;
        assert_eq!(node.shared_secret(&high).err(), Some(KeyError::NonCanonical));
        // u + p for a small u is another non-canonical encoding of an on-curve point: u = 0
        // (order 2) encoded as p itself.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert_eq!(node.shared_secret(&p).err(), Some(KeyError::NonCanonical));
    }

    #[test]
    fn shared_secret_is_redacted() {
        let s = SharedSecret::from_bytes([0xab; 32]);
        assert!(!format!("{s:?}").contains("ab"));
        let k = SessionKey::from_bytes([0xcd; 32]);
        assert!(!format!("{k:?}").contains("cd"));
    }
}
