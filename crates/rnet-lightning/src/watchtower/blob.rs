//! The encrypted blob a client leaves with a tower, and the hint it is filed under
//! (`docs/lightning.md` §6.2–6.3).
//!
//! ```text
//! hint      = SHA-256("rnet/tower/hint" ‖ txid)[0..16]
//! key       = SHA-256("rnet/tower/key" ‖ txid)
//! enc_key   = HMAC-SHA256(key, "rnet/tower/enc")
//! mac_key   = HMAC-SHA256(key, "rnet/tower/mac")
//! blob      = version (0x01) ‖ ciphertext ‖ tag
//! ciphertext = plaintext XOR ChaCha20(enc_key, nonce = 0^96, counter 0)
//! tag       = HMAC-SHA256(mac_key, version ‖ ciphertext)
//! plaintext = count (u8, 1..=8) ‖ count × (length u32 BE ‖ transaction) ‖ zero padding
//! ```
//!
//! `txid` is the revoked commitment's 32-byte id in its internal byte order. The plaintext is
//! padded to the smallest of [`BUCKETS`] that holds it, so a blob's length only tells which
//! power-of-two size class its penalty falls in.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use rnet_primitives::{Transaction, Txid};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::WatchtowerError;

type HmacSha256 = Hmac<Sha256>;

/// The only blob version: ChaCha20 then HMAC-SHA256, a list of signed transactions.
pub const BLOB_VERSION: u8 = 1;

/// Length of the HMAC-SHA256 tag that ends a blob.
pub const MAC_LEN: usize = 32;

/// The plaintext sizes a blob may have (512 B to 512 KiB, powers of two): padding to one of them
/// hides the exact number of HTLC outputs the penalty sweeps.
pub const BUCKETS: [usize; 11] =
    [512, 1 << 10, 1 << 11, 1 << 12, 1 << 13, 1 << 14, 1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 19];

/// The longest blob: version, the largest bucket, tag.
pub const MAX_BLOB_LEN: usize = 1 + BUCKETS[BUCKETS.len() - 1] + MAC_LEN;

/// The most transactions one blob may carry. A penalty larger than the standard size limit is
/// split; the 966 HTLC outputs a commitment may have need at most 5.
pub const MAX_BLOB_TRANSACTIONS: usize = 8;

/// The 16-byte index of an appointment: a hash of the revoked commitment's txid, so the tower can
/// recognise the commitment when it is mined but cannot find it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hint(pub [u8; 16]);

/// The hint of a revoked commitment with id `txid`.
pub fn hint_of(txid: &Txid) -> Hint {
    let digest = Sha256::new().chain_update(b"rnet/tower/hint").chain_update(txid.as_bytes());
    let mut hint = [0u8; 16];
    hint.copy_from_slice(&digest.finalize()[..16]);
    Hint(hint)
}

/// The key that encrypts the blob of a revoked commitment with id `txid`; nobody who has not
/// seen the commitment's txid can compute it.
pub fn blob_key(txid: &Txid) -> Zeroizing<[u8; 32]> {
    let digest = Sha256::new().chain_update(b"rnet/tower/key").chain_update(txid.as_bytes());
    Zeroizing::new(digest.finalize().into())
}

/// HMAC-SHA256 keyed with `key` (HMAC accepts keys of every length, so this cannot fail).
fn new_mac(key: &[u8]) -> HmacSha256 {
    match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// The cipher and MAC sub-keys of a blob key.
fn subkeys(key: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let derive = |label: &[u8]| {
        let mut mac = new_mac(key);
        mac.update(label);
        Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()))
    };
    (derive(b"rnet/tower/enc"), derive(b"rnet/tower/mac"))
}

/// XORs `buf` with the ChaCha20 stream of `key` (RFC 8439, 96-bit zero nonce, counter 0).
fn apply_stream(key: &[u8; 32], buf: &mut [u8]) {
    let mut cipher = ChaCha20::new(key.into(), &[0u8; 12].into());
    cipher.apply_keystream(buf);
}

/// The tag of `version ‖ ciphertext`.
fn tag_mac(mac_key: &[u8; 32], version: u8, ciphertext: &[u8]) -> HmacSha256 {
    let mut mac = new_mac(mac_key);
    mac.update(&[version]);
    mac.update(ciphertext);
    mac
}

/// What a blob decrypts to: the signed penalty transactions of one revoked commitment (usually
/// one; more when the penalty would exceed the standard transaction size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPlaintext {
    /// The transactions, each spending only outputs of the revoked commitment.
    pub transactions: Vec<Transaction>,
}

impl BlobPlaintext {
    /// The padded encoding (its length is one of [`BUCKETS`]). Fails if there are no
    /// transactions or more than [`MAX_BLOB_TRANSACTIONS`], or if they do not fit the largest
    /// bucket.
    pub fn encode(&self) -> Result<Vec<u8>, WatchtowerError> {
        let count = self.transactions.len();
        if count == 0 || count > MAX_BLOB_TRANSACTIONS {
            return Err(WatchtowerError::TransactionCount(count));
        }
        let mut out = vec![count as u8];
        for tx in &self.transactions {
            let bytes = tx.to_bytes();
            let len =
                u32::try_from(bytes.len()).map_err(|_| WatchtowerError::PlaintextTooLarge {
                    size: bytes.len(),
                    max: BUCKETS[BUCKETS.len() - 1],
                })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        let bucket = BUCKETS.iter().copied().find(|&b| b >= out.len()).ok_or(
            WatchtowerError::PlaintextTooLarge { size: out.len(), max: BUCKETS[BUCKETS.len() - 1] },
        )?;
        out.resize(bucket, 0);
        Ok(out)
    }

    /// Decodes a padded plaintext. Refuses a length that is not a bucket, a count of zero or
    /// above [`MAX_BLOB_TRANSACTIONS`], a truncated or non-canonical transaction, non-zero
    /// padding and padding beyond the smallest bucket that holds the content, so every accepted
    /// plaintext is exactly what [`BlobPlaintext::encode`] writes.
    pub fn decode(bytes: &[u8]) -> Result<Self, WatchtowerError> {
        if !BUCKETS.contains(&bytes.len()) {
            return Err(WatchtowerError::Malformed("plaintext length is not a bucket size"));
        }
        let (&count, mut rest) =
            bytes.split_first().ok_or(WatchtowerError::Malformed("empty plaintext"))?;
        let count = usize::from(count);
        if count == 0 || count > MAX_BLOB_TRANSACTIONS {
            return Err(WatchtowerError::TransactionCount(count));
        }
        let mut transactions = Vec::with_capacity(count);
        for index in 0..count {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or(WatchtowerError::Malformed("transaction length truncated"))?;
            let len = usize::try_from(u32::from_be_bytes(*len))
                .map_err(|_| WatchtowerError::Malformed("transaction length overflows"))?;
            if len > tail.len() {
                return Err(WatchtowerError::Malformed("transaction truncated"));
            }
            let (tx_bytes, tail) = tail.split_at(len);
            let tx = Transaction::from_bytes(tx_bytes)
                .map_err(|_| WatchtowerError::MalformedTransaction(index))?;
            if tx.to_bytes() != tx_bytes {
                return Err(WatchtowerError::MalformedTransaction(index));
            }
            transactions.push(tx);
            rest = tail;
        }
        if rest.iter().any(|&b| b != 0) {
            return Err(WatchtowerError::Malformed("non-zero padding"));
        }
        // Encoding pads to the smallest bucket that holds the content: a larger one is not
        // canonical (and would let one plaintext have several blobs).
        let used = bytes.len() - rest.len();
        if BUCKETS.iter().copied().find(|&b| b >= used) != Some(bytes.len()) {
            return Err(WatchtowerError::Malformed("padded beyond the smallest bucket"));
        }
        Ok(Self { transactions })
    }
}

/// An encrypted blob as the tower stores it. Constructing one checks only what the tower can
/// check without the key: the version and that the length is `1 + bucket + 32`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptedBlob(Vec<u8>);

impl EncryptedBlob {
    /// Checks the public structure of received bytes (version, length).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WatchtowerError> {
        let (&version, _) = bytes.split_first().ok_or(WatchtowerError::BlobLength(bytes.len()))?;
        if version != BLOB_VERSION {
            return Err(WatchtowerError::UnknownVersion(version));
        }
        let body = bytes.len().checked_sub(1 + MAC_LEN);
        if !body.is_some_and(|b| BUCKETS.contains(&b)) {
            return Err(WatchtowerError::BlobLength(bytes.len()));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// Encrypts `plaintext` for the revoked commitment `txid`. A key must encrypt one plaintext
    /// only (the nonce is fixed): call this once per revoked commitment ([`super::TowerClient`]
    /// does).
    pub fn seal(plaintext: &BlobPlaintext, txid: &Txid) -> Result<Self, WatchtowerError> {
        let mut body = plaintext.encode()?;
        let (enc_key, mac_key) = subkeys(&blob_key(txid));
        apply_stream(&enc_key, &mut body);
        let tag = tag_mac(&mac_key, BLOB_VERSION, &body).finalize().into_bytes();
        let mut bytes = Vec::with_capacity(1 + body.len() + MAC_LEN);
        bytes.push(BLOB_VERSION);
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&tag);
        Ok(Self(bytes))
    }

    /// Authenticates (constant-time tag comparison) and decrypts the blob with the key of
    /// `txid`, then decodes the plaintext. Fails with [`WatchtowerError::Authentication`] if the
    /// blob was not made for `txid` or was altered.
    pub fn open(&self, txid: &Txid) -> Result<BlobPlaintext, WatchtowerError> {
        let (&version, rest) =
            self.0.split_first().ok_or(WatchtowerError::BlobLength(self.0.len()))?;
        let split =
            rest.len().checked_sub(MAC_LEN).ok_or(WatchtowerError::BlobLength(self.0.len()))?;
        let (ciphertext, tag) = rest.split_at(split);
        let (enc_key, mac_key) = subkeys(&blob_key(txid));
        tag_mac(&mac_key, version, ciphertext)
            .verify_slice(tag)
            .map_err(|_| WatchtowerError::Authentication)?;
        let mut body = Zeroizing::new(ciphertext.to_vec());
        apply_stream(&enc_key, &mut body);
        BlobPlaintext::decode(&body)
    }

    /// The blob's bytes, as sent to the tower.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The blob's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a blob has at least a version, the smallest bucket and a tag.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One appointment: the blob and the hint it is filed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    /// The hint of the revoked commitment's txid.
    pub hint: Hint,
    /// The encrypted penalty.
    pub blob: EncryptedBlob,
}

impl Appointment {
    /// Encrypts `plaintext` for the revoked commitment `txid` and files it under its hint.
    pub fn new(plaintext: &BlobPlaintext, txid: &Txid) -> Result<Self, WatchtowerError> {
        Ok(Self { hint: hint_of(txid), blob: EncryptedBlob::seal(plaintext, txid)? })
    }
}

#[cfg(test)]
mod tests {
    use rnet_primitives::{Amount, OutPoint, TxIn, TxOut, Witness};

    use super::*;

    fn tx(inputs: usize) -> Transaction {
        Transaction {
            version: 2,
            inputs: (0..inputs)
                .map(|i| TxIn {
                    previous_output: OutPoint::new(Txid::from_bytes([7; 32]), i as u32),
                    script_sig: Vec::new(),
                    sequence: 0xFFFF_FFFD,
                    witness: Witness(vec![vec![1; 64], vec![2; 64], vec![1]]),
                })
                .collect(),
            outputs: vec![TxOut { value: Amount(1000), script_pubkey: vec![0x51; 34] }],
            lock_time: 0,
        }
    }

    #[test]
    fn plaintext_round_trips_and_pads_to_a_bucket() {
        for n in [1, 3, 40] {
            let p = BlobPlaintext { transactions: vec![tx(n), tx(1)] };
            let bytes = p.encode().unwrap();
            assert!(BUCKETS.contains(&bytes.len()));
            assert_eq!(BlobPlaintext::decode(&bytes).unwrap(), p);
        }
        assert_eq!(
            BlobPlaintext { transactions: vec![] }.encode(),
            Err(WatchtowerError::TransactionCount(0))
        );
        let nine = BlobPlaintext { transactions: vec![tx(1); MAX_BLOB_TRANSACTIONS + 1] };
        assert_eq!(nine.encode(), Err(WatchtowerError::TransactionCount(9)));
    }

    #[test]
    fn plaintext_decoding_is_strict() {
        let mut bytes = BlobPlaintext { transactions: vec![tx(1)] }.encode().unwrap();
        let last = bytes.len() - 1;
        bytes[last] = 1;
        assert_eq!(
            BlobPlaintext::decode(&bytes),
            Err(WatchtowerError::Malformed("non-zero padding"))
        );
        bytes[last] = 0;
        assert!(BlobPlaintext::decode(&bytes[..bytes.len() - 1]).is_err());
        bytes[0] = 0;
        assert_eq!(BlobPlaintext::decode(&bytes), Err(WatchtowerError::TransactionCount(0)));
        bytes[0] = 1;
        // A length running past the end.
        bytes[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            BlobPlaintext::decode(&bytes),
            Err(WatchtowerError::Malformed("transaction truncated"))
        );
    }

    #[test]
    fn seal_and_open() {
        let txid = Txid::from_bytes([9; 32]);
        let p = BlobPlaintext { transactions: vec![tx(2)] };
        let blob = EncryptedBlob::seal(&p, &txid).unwrap();
        assert_eq!(blob.len(), 1 + 512 + MAC_LEN);
        assert_eq!(EncryptedBlob::from_bytes(blob.as_bytes()).unwrap(), blob);
        assert_eq!(blob.open(&txid).unwrap(), p);
        assert_eq!(blob.open(&Txid::from_bytes([8; 32])), Err(WatchtowerError::Authentication));
        // Deterministic: the same plaintext and txid give the same blob (no second keystream).
        assert_eq!(EncryptedBlob::seal(&p, &txid).unwrap(), blob);
        let mut bad = blob.as_bytes().to_vec();
        bad[0] = 2;
        assert_eq!(EncryptedBlob::from_bytes(&bad), Err(WatchtowerError::UnknownVersion(2)));
        assert_eq!(
            EncryptedBlob::from_bytes(&blob.as_bytes()[..100]),
            Err(WatchtowerError::BlobLength(100))
        );
        assert_eq!(EncryptedBlob::from_bytes(&[]), Err(WatchtowerError::BlobLength(0)));
    }

    /// Known answers for txid = 00 01 … 1f, computed independently (Python `hashlib`, `hmac`
    /// and `cryptography`'s ChaCha20) from the derivations of `docs/lightning.md` §6.2–6.3.
    #[test]
    fn derivations_match_independent_known_answers() {
        let txid = Txid::from_bytes(core::array::from_fn(|i| i as u8));
        assert_eq!(hex::encode(hint_of(&txid).0), "036ced432946b64281b1564fa686c4c6");
        let key = blob_key(&txid);
        assert_eq!(
            hex::encode(*key),
            "df5e52e58d9e3206f4cea17dec8d9112a3e9ec34b44e6be218e722083cab8049"
        );
        let (enc, mac) = subkeys(&key);
        assert_eq!(
            hex::encode(*enc),
            "9bb719ce65a27e12ab4943904c31ce8d70e814f25872c3d271675f7b95381be4"
        );
        assert_eq!(
            hex::encode(*mac),
            "a04f14429711a95f9f8408bacb28a0a9cf6edcb2480165fb7d48574e05c60a8b"
        );
        // 512 zero bytes of plaintext: the keystream, then the tag over version 1 ‖ ciphertext.
        let mut body = vec![0u8; 512];
        apply_stream(&enc, &mut body);
        assert_eq!(
            hex::encode(&body[..32]),
            "43365ebe5fba9f20bd158ab25afb1501dc8f3dbf95d51176f5cbe97d2106e27b"
        );
        assert_eq!(hex::encode(&body[496..]), "67b5ce1e62cfd9f826399afe89f8d7c9");
        assert_eq!(
            hex::encode(tag_mac(&mac, BLOB_VERSION, &body).finalize().into_bytes()),
            "938ff5031f0bb05d8b924a050e93c3fa76e41f5a7980076dcaf7018a5bfc38be"
        );
    }

    #[test]
    fn hint_and_key_are_domain_separated() {
        let txid = Txid::from_bytes([3; 32]);
        assert_ne!(hint_of(&txid).0[..], blob_key(&txid)[..16]);
        assert_ne!(hint_of(&txid).0[..], txid.as_bytes()[..16]);
        assert_ne!(hint_of(&txid), hint_of(&Txid::from_bytes([4; 32])));
    }
}
