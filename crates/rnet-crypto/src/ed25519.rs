//! Ed25519 keys, signing, and verification under one frozen consensus rule set.
//!
//! # The frozen verification rule (ZIP-215)
//!
//! Ed25519 (RFC 8032) does not pin down which signatures are valid, and implementations disagree
//! on edge cases (small-order points, non-canonical encodings, cofactored or cofactorless
//! equations). A blockchain cannot tolerate that: a signature accepted by one node and rejected by
//! another splits the chain. ResonanceNet therefore freezes the rules of
//! [ZIP-215](https://zips.z.cash/zip-0215), implemented by `ed25519-zebra` 4.x, for every
//! signature checked by consensus. Given public key bytes `A_bytes` (32), signature
//! `R_bytes ‖ S_bytes` (32 + 32) and message `M`:
//!
//! 1. `A_bytes` MUST decode to a point `A` of the curve. Non-canonical encodings (a `y`
//!    coordinate `>= p`, or the sign bit set when `x = 0`) MUST be accepted. Points of small
//!    order and mixed order are accepted.
//! 2. `R_bytes` MUST decode to a point `R` under the same rule as `A_bytes`.
//! 3. `S_bytes`, read little-endian, MUST be canonical: `S < ℓ` where
//!    `ℓ = 2^252 + 27742317777372353535851937790883648493` is the prime group order.
//! 4. `k = SHA-512(R_bytes ‖ A_bytes ‖ M) mod ℓ`, hashing the bytes *as received* (never
//!    re-encoded).
//! 5. The signature is valid iff the **cofactored** equation `[8][S]B = [8]R + [8][k]A` holds.
//!    The cofactorless equation `[S]B = R + [k]A` MUST NOT be used.
//!
//! Because the equation is cofactored, batch verification ([`BatchVerifier`]) accepts a set of
//! signatures exactly when each one verifies alone (up to a 2^-128 chance of a false accept
//! from the random batch coefficients), so block validators may batch freely. Consequences
//! worth knowing: a signature with `R` and `A` both of small order and `S = 0` is valid for
//! every message, and `A` with a torsion component makes several signatures valid for one
//! message. Neither matters to consensus safety, which needs only that every node agrees; a
//! wallet never produces such keys.
//!
//! Signing is standard deterministic RFC 8032 Ed25519 (secret seed → SHA-512 → clamped scalar
//! and nonce prefix), so RFC 8032 test vectors reproduce bit for bit.

use core::fmt;

use ed25519_zebra::{VerificationKey, VerificationKeyBytes, batch};
use rand_core::{CryptoRng, OsRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::SignatureError;
use crate::hexfmt::HexFmt;

/// Length in bytes of a secret key (the RFC 8032 seed).
pub const SECRET_KEY_LEN: usize = 32;
/// Length in bytes of an encoded public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length in bytes of a signature (`R ‖ S`).
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key: the 32-byte RFC 8032 secret seed plus its expanded form.
///
/// Zeroized on drop; `Debug` prints only the public key.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_zebra::SigningKey,
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.inner.zeroize();
    }
}

impl ZeroizeOnDrop for SigningKey {}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("public_key", &self.public_key()).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The signing key for a 32-byte secret seed.
    pub fn from_bytes(secret: &[u8; SECRET_KEY_LEN]) -> Self {
        Self { inner: ed25519_zebra::SigningKey::from(*secret) }
    }

    /// The signing key for a secret given as a slice, which must be 32 bytes long.
    pub fn from_slice(secret: &[u8]) -> Result<Self, SignatureError> {
        let bytes: Zeroizing<[u8; SECRET_KEY_LEN]> =
            Zeroizing::new(secret.try_into().map_err(|_| SignatureError::InvalidLength {
                expected: SECRET_KEY_LEN,
                actual: secret.len(),
            })?);
        Ok(Self::from_bytes(&bytes))
    }

    /// A fresh key drawn from a cryptographic RNG.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut secret = Zeroizing::new([0u8; SECRET_KEY_LEN]);
        rng.fill_bytes(secret.as_mut());
        Self::from_bytes(&secret)
    }

    /// A fresh key drawn from the operating system's RNG.
    pub fn random() -> Self {
        Self::generate(&mut OsRng)
    }

    /// The 32-byte secret seed.
    pub fn as_bytes(&self) -> &[u8; SECRET_KEY_LEN] {
        self.inner.as_bytes()
    }

    /// A copy of the 32-byte secret seed that is zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SECRET_KEY_LEN]> {
        Zeroizing::new(*self.inner.as_bytes())
    }

    /// The public key of this signing key.
    pub fn public_key(&self) -> PublicKey {
        let vk = self.inner.verification_key();
        PublicKey { bytes: vk.into(), vk }
    }

    /// Sign `msg` (deterministic RFC 8032 Ed25519).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.inner.sign(msg).to_bytes())
    }
}

/// An Ed25519 public key: 32 bytes that decode to a curve point (see the module docs: under
/// ZIP-215 non-canonical and small-order encodings are accepted).
///
/// Equality, ordering and hashing are on the 32 bytes as given, so two different encodings of
/// one point are different keys (and hash differently into `k`).
#[derive(Clone, Copy)]
pub struct PublicKey {
    bytes: [u8; PUBLIC_KEY_LEN],
    vk: VerificationKey,
}

impl PublicKey {
    /// Parse 32 bytes; fails only when they do not decode to a curve point.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, SignatureError> {
        VerificationKey::try_from(*bytes)
            .map(|vk| Self { bytes: *bytes, vk })
            .map_err(|_| SignatureError::MalformedPublicKey)
    }

    /// Parse a slice, which must be 32 bytes long and decode to a curve point.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SignatureError> {
        let arr: [u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| {
            SignatureError::InvalidLength { expected: PUBLIC_KEY_LEN, actual: bytes.len() }
        })?;
        Self::from_bytes(&arr)
    }

    /// The 32 bytes of the key, exactly as parsed or derived.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.bytes
    }

    /// The 32 bytes of the key, exactly as parsed or derived.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.bytes
    }

    /// Whether the key is unfit to protect coins: its encoding is not the canonical one of its
    /// point, or the point has small order (order dividing 8, e.g. the identity `01 00…00` or
    /// the all-zero encoding). Under the cofactored ZIP-215 rule a small-order key "signs" every
    /// message (`R` of small order and `S = 0` verify), so consensus accepts such keys but
    /// wallets, tools and relay policy refuse them.
    pub fn is_weak(&self) -> bool {
        match curve25519_dalek::edwards::CompressedEdwardsY(self.bytes).decompress() {
            None => true,
            Some(point) => point.is_small_order() || point.compress().to_bytes() != self.bytes,
        }
    }

    /// Verify `sig` on `msg` under the frozen ZIP-215 rule.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), SignatureError> {
        self.vk.verify(&sig.to_zebra(), msg).map_err(|_| SignatureError::InvalidSignature)
    }

    fn vk_bytes(&self) -> VerificationKeyBytes {
        VerificationKeyBytes::from(self.bytes)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for PublicKey {}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", HexFmt(self.as_bytes()))
    }
}

impl TryFrom<&[u8]> for PublicKey {
    type Error = SignatureError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Self::from_slice(bytes)
    }
}

/// An Ed25519 signature `R ‖ S` (64 bytes). Any 64 bytes parse; the rule on `R` and `S` is
/// applied at verification.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// A signature from its 64 bytes.
    pub const fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Self(bytes)
    }

    /// A signature from a slice, which must be 64 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SignatureError> {
        bytes.try_into().map(Self).map_err(|_| SignatureError::InvalidLength {
            expected: SIGNATURE_LEN,
            actual: bytes.len(),
        })
    }

    /// The 64 bytes `R ‖ S`.
    pub const fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0
    }

    /// The 64 bytes `R ‖ S`.
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }

    fn to_zebra(self) -> ed25519_zebra::Signature {
        ed25519_zebra::Signature::from_bytes(&self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", HexFmt(&self.0))
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = SignatureError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Self::from_slice(bytes)
    }
}

/// Sign `msg` with `key` (same as [`SigningKey::sign`]).
pub fn sign(key: &SigningKey, msg: &[u8]) -> Signature {
    key.sign(msg)
}

/// Verify `sig` on `msg` by `public_key` under the frozen ZIP-215 rule (see module docs).
pub fn verify(public_key: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), SignatureError> {
    public_key.verify(msg, sig)
}

/// Verify raw bytes: parse the key and signature, then [`verify`]. Convenient for consensus code
/// that holds keys and signatures as bytes.
pub fn verify_bytes(public_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
    let pk = PublicKey::from_slice(public_key)?;
    let sig = Signature::from_slice(sig)?;
    pk.verify(msg, &sig)
}

/// Batch verification under the same frozen rule: [`verify`](BatchVerifier::verify) succeeds
/// exactly when every queued signature would pass [`verify`] on its own.
#[derive(Default, Clone)]
pub struct BatchVerifier {
    items: Vec<batch::Item>,
}

impl fmt::Debug for BatchVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchVerifier").field("len", &self.items.len()).finish()
    }
}

impl BatchVerifier {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `n` signatures.
    pub fn with_capacity(n: usize) -> Self {
        Self { items: Vec::with_capacity(n) }
    }

    /// Queue one (key, message, signature) triple. The message is hashed now, not kept.
    pub fn queue(&mut self, public_key: &PublicKey, msg: &[u8], sig: &Signature) {
        self.items.push(batch::Item::from((public_key.vk_bytes(), sig.to_zebra(), msg)));
    }

    /// Number of queued signatures.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Verify the whole batch with coefficients from the OS RNG. `Ok` iff every item is valid;
    /// an empty batch is `Ok`.
    pub fn verify(self) -> Result<(), SignatureError> {
        self.verify_with_rng(OsRng)
    }

    /// Verify the whole batch with coefficients from `rng` (which must be cryptographic: a
    /// predictable RNG lets an attacker craft a batch that passes with an invalid item).
    pub fn verify_with_rng<R: RngCore + CryptoRng>(self, rng: R) -> Result<(), SignatureError> {
        let mut verifier = batch::Verifier::new();
        for item in self.items {
            verifier.queue(item);
        }
        verifier.verify(rng).map_err(|_| SignatureError::InvalidSignature)
    }

    /// The index of the first invalid item (in queue order), or `None` when every item is
    /// valid. Bisects with batches: after the whole batch (size n) fails, it verifies the left
    /// half of the range that must hold a bad item and narrows to whichever half does, so
    /// finding the culprit costs about one more batch of n items in all, not n single checks.
    pub fn first_invalid(&self) -> Option<usize> {
        let verify_range = |range: core::ops::Range<usize>| {
            let mut verifier = batch::Verifier::new();
            for item in &self.items[range] {
                verifier.queue(item.clone());
            }
            verifier.verify(OsRng).is_ok()
        };
        let (mut lo, mut hi) = (0, self.items.len());
        if verify_range(lo..hi) {
            return None;
        }
        // Invariant: items[lo..hi] holds an invalid item, and so does the first one found.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if verify_range(lo..mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }

    /// Verify the batch and, if it fails, find which items are invalid. Returns one result per
    /// queued item, in queue order.
    pub fn verify_each(self) -> Vec<Result<(), SignatureError>> {
        let n = self.items.len();
        if self.clone().verify().is_ok() {
            return vec![Ok(()); n];
        }
        self.items
            .into_iter()
            .map(|item| item.verify_single().map_err(|_| SignatureError::InvalidSignature))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn h64(s: &str) -> [u8; 64] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// Single and batch verification of one item; asserts they agree and returns the verdict.
    fn verdict(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        let Ok(pk) = PublicKey::from_bytes(pk) else { return false };
        let sig = Signature::from_bytes(*sig);
        let single = verify(&pk, msg, &sig).is_ok();
        let mut b = BatchVerifier::new();
        b.queue(&pk, msg, &sig);
        let batched = b.verify().is_ok();
        assert_eq!(single, batched, "single and batch verification disagree");
        single
    }

    // RFC 8032 §7.1, TEST 1, 2 and 3: (secret key, public key, message, signature).
    const RFC8032: [(&str, &str, &str, &str); 3] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];

    #[test]
    fn rfc8032_tests_1_to_3() {
        for (sk, pk, msg, sig) in RFC8032 {
            let sk = SigningKey::from_bytes(&h32(sk));
            let msg = hex::decode(msg).unwrap();
            assert_eq!(sk.public_key().to_bytes(), h32(pk));
            let signature = sk.sign(&msg);
            assert_eq!(signature.to_bytes(), h64(sig));
            assert!(verdict(&h32(pk), &msg, &h64(sig)));
            // A different message must not verify.
            let mut other = msg.clone();
            other.push(0);
            assert!(!verdict(&h32(pk), &other, &h64(sig)));
        }
    }

    #[test]
    fn batch_of_rfc8032_vectors_and_one_bad() {
        let mut b = BatchVerifier::new();
        for (_, pk, msg, sig) in RFC8032 {
            let pk = PublicKey::from_bytes(&h32(pk)).unwrap();
            b.queue(&pk, &hex::decode(msg).unwrap(), &Signature::from_bytes(h64(sig)));
        }
        assert_eq!(b.len(), 3);
        assert!(b.clone().verify().is_ok());
        // Swap in a wrong message for the second key.
        let (_, pk, _, sig) = RFC8032[1];
        let pk = PublicKey::from_bytes(&h32(pk)).unwrap();
        b.queue(&pk, b"not the message", &Signature::from_bytes(h64(sig)));
        assert_eq!(b.clone().verify(), Err(SignatureError::InvalidSignature));
        assert_eq!(b.first_invalid(), Some(3));
        let each = b.verify_each();
        assert_eq!(each, vec![Ok(()), Ok(()), Ok(()), Err(SignatureError::InvalidSignature)]);
        assert!(BatchVerifier::new().verify().is_ok(), "empty batch is valid");
    }

    /// The 8 canonical encodings of the 8-torsion points (ZIP-215 / `curve25519-dalek`
    /// `EIGHT_TORSION`), and the 6 non-canonical encodings of small-order points (ZIP-215:
    /// identity and (0,-1) with the sign bit set; y = p and y = p + 1 with either sign bit).
    const SMALL_ORDER: [&str; 14] = [
        "0100000000000000000000000000000000000000000000000000000000000000", // identity
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
        "0000000000000000000000000000000000000000000000000000000000000080", // order 4
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
        "0000000000000000000000000000000000000000000000000000000000000000", // order 4
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
        "0100000000000000000000000000000000000000000000000000000000000080", // identity, x sign set
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // (0,-1), x sign set
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p (≡ 0)
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // y = p, x sign set
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p + 1 (identity)
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // y = p + 1, sign set
    ];

    /// ZIP-215: for every small-order A and R (canonical or not) and S = 0, the cofactored
    /// equation holds ([8]R = [8][k]A = 0 = [8][0]B), so the signature is VALID for any message;
    /// batch verification agrees on all 196 cases.
    #[test]
    fn zip215_small_order_grid_is_valid_and_batch_agrees() {
        for a in SMALL_ORDER {
            let pk = h32(a);
            PublicKey::from_bytes(&pk).expect("ZIP-215 accepts small-order and non-canonical A");
            for r in SMALL_ORDER {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&h32(r));
                assert!(verdict(&pk, b"Zcash", &sig), "A={a} R={r} S=0 must be valid");
                assert!(verdict(&pk, b"any other message", &sig));
            }
        }
        // One batch holding all 196 at once also passes.
        let mut b = BatchVerifier::new();
        for a in SMALL_ORDER {
            let pk = PublicKey::from_bytes(&h32(a)).unwrap();
            for r in SMALL_ORDER {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&h32(r));
                b.queue(&pk, b"Zcash", &Signature::from_bytes(sig));
            }
        }
        assert!(b.verify().is_ok());
    }

    /// S = 1 with small-order R and A: [8]B ≠ 0 = [8]R + [8][k]A, so INVALID.
    #[test]
    fn zip215_small_order_with_nonzero_s_is_invalid() {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&h32(SMALL_ORDER[0]));
        sig[32] = 1;
        assert!(!verdict(&h32(SMALL_ORDER[1]), b"Zcash", &sig));
    }

    /// Edge cases from "Taming the many EdDSAs" (Chalkias, Garillot, Nikolaenko 2020),
    /// novifinancial/ed25519-speccheck `cases.txt` (12 cases), with the expected verdicts of its
    /// results table row "Zebra" (= ZIP-215): V V V V V V X X X V V V.
    /// 0: small A and R, S = 0. 1-2: small/mixed-order A and R (cofactored passes).
    /// 3: mixed A and R, both equations pass. 4-5: mixed A and R, only cofactored passes.
    /// 6-7: S > ℓ (non-canonical S, rejected). 8-9: non-canonical small-order R (hashed as
    /// reduced → invalid; hashed as received → valid). 10-11: non-canonical small-order A.
    #[test]
    fn zip215_speccheck_cases() {
        const CASES: [(&str, &str, &str, bool); 12] = [
            (
                "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
                "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
                "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000",
                true,
            ),
            (
                "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
                "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
                "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
                true,
            ),
            (
                "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
                "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
                "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
                true,
            ),
            (
                "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
                "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
                "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
                true,
            ),
            (
                "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
                "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
                "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
                true,
            ),
            (
                "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
                "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
                "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
                true,
            ),
            (
                "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
                "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
                "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
                false,
            ),
            (
                "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
                "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
                "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
                false,
            ),
            (
                "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
                "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
                "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f",
                false,
            ),
            (
                "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
                "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
                "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908",
                true,
            ),
            (
                "e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
                "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
                true,
            ),
            (
                "39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
                "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
                true,
            ),
        ];
        for (i, (msg, pk, sig, valid)) in CASES.into_iter().enumerate() {
            let msg = hex::decode(msg).unwrap();
            assert_eq!(verdict(&h32(pk), &msg, &h64(sig)), valid, "speccheck case {i}");
        }
    }

    /// ℓ = 2^252 + 27742317777372353535851937790883648493 (RFC 8032 §5.1), little-endian.
    const ELL_LE: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

    fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let s = u16::from(a[i]) + u16::from(b[i]) + carry;
            out[i] = s as u8;
            carry = s >> 8;
        }
        out
    }

    /// ZIP-215: S must be canonical. RFC 8032 TEST 1 with S replaced by S + ℓ (same value mod ℓ,
    /// so the equation would hold) is INVALID; S = ℓ and S = 2^256 - 1 are INVALID.
    #[test]
    fn zip215_non_canonical_s_is_rejected() {
        let (_, pk, _, sig) = RFC8032[0];
        let (pk, sig) = (h32(pk), h64(sig));
        let s: [u8; 32] = sig[32..].try_into().unwrap();
        let mut bad = sig;
        bad[32..].copy_from_slice(&add_le(&s, &h32(ELL_LE)));
        assert!(verdict(&pk, b"", &sig));
        assert!(!verdict(&pk, b"", &bad));

        let mut sig_ell = [0u8; 64];
        sig_ell[..32].copy_from_slice(&h32(SMALL_ORDER[0]));
        sig_ell[32..].copy_from_slice(&h32(ELL_LE));
        // With R = A = identity, S ≡ 0 mod ℓ would satisfy the equation; S = ℓ is still rejected.
        assert!(!verdict(&h32(SMALL_ORDER[0]), b"", &sig_ell));
        sig_ell[32..].copy_from_slice(&[0xff; 32]);
        assert!(!verdict(&h32(SMALL_ORDER[0]), b"", &sig_ell));
    }

    /// y = 2 is not the y coordinate of any curve point ((y²-1)/(dy²+1) is a non-square mod p;
    /// checked independently), canonically or as y = p + 2: the key is rejected, and an R with
    /// that encoding makes the signature invalid.
    #[test]
    fn non_point_encodings_are_rejected() {
        let not_point = "0200000000000000000000000000000000000000000000000000000000000000";
        let not_point_nc = "efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
        for enc in [not_point, not_point_nc] {
            assert_eq!(PublicKey::from_bytes(&h32(enc)), Err(SignatureError::MalformedPublicKey));
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&h32(enc));
            assert!(!verdict(&h32(SMALL_ORDER[0]), b"", &sig));
        }
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let a = SigningKey::random();
        let b = SigningKey::generate(&mut OsRng);
        assert_ne!(a.as_bytes(), b.as_bytes());
        let sig = sign(&a, b"tx");
        assert!(verify(&a.public_key(), b"tx", &sig).is_ok());
        assert_eq!(verify(&b.public_key(), b"tx", &sig), Err(SignatureError::InvalidSignature));
    }

    #[test]
    fn parse_lengths_and_debug_hides_secret() {
        assert_eq!(
            PublicKey::from_slice(&[0u8; 31]),
            Err(SignatureError::InvalidLength { expected: 32, actual: 31 })
        );
        assert_eq!(
            Signature::from_slice(&[0u8; 65]),
            Err(SignatureError::InvalidLength { expected: 64, actual: 65 })
        );
        assert!(SigningKey::from_slice(&[7u8; 33]).is_err());
        assert!(verify_bytes(&[0u8; 3], b"", &[0u8; 64]).is_err());
        let sk = SigningKey::from_bytes(&h32(RFC8032[0].0));
        let dbg = format!("{sk:?}");
        assert!(!dbg.contains("9d61b19d"), "Debug leaked the secret: {dbg}");
        assert!(dbg.contains("d75a9801"));
        assert_eq!(sk.to_bytes().as_slice(), h32(RFC8032[0].0).as_slice());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn sign_verify_round_trip(seed in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 0..256), flip in any::<usize>()) {
            let sk = SigningKey::from_bytes(&seed);
            let pk = sk.public_key();
            let sig = sk.sign(&msg);
            prop_assert!(verdict(pk.as_bytes(), &msg, sig.as_bytes()));
            prop_assert!(verify_bytes(pk.as_bytes(), &msg, sig.as_bytes()).is_ok());
            // Flipping any bit of the signature breaks it (single and batch agree).
            let mut bad = sig.to_bytes();
            let bit = flip % 512;
            bad[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!verdict(pk.as_bytes(), &msg, &bad));
        }

        #[test]
        fn random_bytes_never_panic_and_batch_agrees(pk in any::<[u8; 32]>(), sig in proptest::collection::vec(any::<u8>(), 64..=64), msg in proptest::collection::vec(any::<u8>(), 0..64)) {
            let sig: [u8; 64] = sig.try_into().unwrap();
            let _ = verdict(&pk, &msg, &sig);
            let _ = PublicKey::from_slice(&msg);
            let _ = Signature::from_slice(&msg);
            let _ = verify_bytes(&msg, &msg, &msg);
        }

        #[test]
        fn mixed_batch_agrees_with_singles(seeds in proptest::collection::vec((any::<[u8; 32]>(), any::<bool>()), 1..8)) {
            let mut b = BatchVerifier::new();
            let mut expected = Vec::new();
            for (seed, good) in &seeds {
                let sk = SigningKey::from_bytes(seed);
                let sig = sk.sign(b"block");
                let msg: &[u8] = if *good { b"block" } else { b"other" };
                b.queue(&sk.public_key(), msg, &sig);
                expected.push(if *good { Ok(()) } else { Err(SignatureError::InvalidSignature) });
            }
            let all_good = seeds.iter().all(|(_, g)| *g);
            prop_assert_eq!(b.clone().verify().is_ok(), all_good);
            prop_assert_eq!(b.first_invalid(), expected.iter().position(|r| r.is_err()));
            prop_assert_eq!(b.verify_each(), expected);
        }
    }

    #[test]
    fn weak_keys_are_small_order_or_non_canonical() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        // y = p - 1 (−1): the point of order 2.
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        for bytes in [[0u8; 32], identity, minus_one] {
            assert!(PublicKey::from_bytes(&bytes).unwrap().is_weak(), "{bytes:02x?}");
        }
        // The identity written non-canonically (y = 1 + p).
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        assert!(PublicKey::from_bytes(&non_canonical).unwrap().is_weak());
        // A derived key is strong.
        let key = SigningKey::from_bytes(&[7; 32]).public_key();
        assert!(!key.is_weak());
        // Anyone can "sign" for the identity key: R = identity, S = 0 verifies any message.
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let weak = PublicKey::from_bytes(&identity).unwrap();
        assert!(weak.verify(b"any message", &Signature::from_bytes(forged)).is_ok());
    }
}
