//! Passphrase-encrypted backups (wallet seed, wallet files): Argon2id → AES-256-CBC, then
//! HMAC-SHA256 over everything (encrypt-then-MAC).
//!
//! # Format, version 1
//!
//! All integers little-endian. Offsets in bytes.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 8  | magic `b"RNETBAK\0"` (`52 4e 45 54 42 41 4b 00`) |
//! | 8  | 1  | format version, `0x01` |
//! | 9  | 4  | Argon2id memory cost `m_cost` in KiB (u32) |
//! | 13 | 4  | Argon2id passes `t_cost` (u32) |
//! | 17 | 4  | Argon2id lanes `p_cost` (u32) |
//! | 21 | 32 | salt, random per backup |
//! | 53 | 16 | AES-CBC IV, random per backup |
//! | 69 | 16·n, n ≥ 1 | ciphertext: AES-256-CBC of the plaintext with PKCS#7 padding |
//! | end − 32 | 32 | tag: HMAC-SHA256(mac_key, bytes 0 .. end − 32) |
//!
//! Key derivation: `Argon2id` version 0x13 (RFC 9106) with password = the passphrase bytes as
//! given (wallet tools pass the UTF-8 of what was typed, unnormalized), salt = the 32-byte salt,
//! no secret, no associated data, the stored `m_cost`/`t_cost`/`p_cost`, output length 64:
//! `enc_key = out[0..32]`, `mac_key = out[32..64]`.
//!
//! Decryption order: check length, magic, version and parameter ranges *before* running Argon2
//! (a hostile file cannot make us allocate more than [`MAX_M_COST_KIB`]); derive keys; verify the
//! tag in constant time; only then decrypt and unpad. A wrong passphrase and a modified file are
//! indistinguishable by design and both give [`BackupError::WrongPassphraseOrCorrupt`].
//!
//! Accepted parameter ranges (encryption and decryption): `8·p_cost ≤ m_cost ≤ 1 GiB`
//! (1 048 576 KiB), `1 ≤ t_cost ≤ 16`, `1 ≤ p_cost ≤ 16`. Default: `m_cost = 65536` (64 MiB),
//! `t_cost = 3`, `p_cost = 1` — RFC 9106's second recommended option (§4) with one lane, since the
//! `argon2` crate computes lanes sequentially.

use aes::Aes256;
use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, OsRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::BackupError;

type HmacSha256 = Hmac<Sha256>;

/// Magic bytes at the start of every backup.
pub const MAGIC: [u8; 8] = *b"RNETBAK\0";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Salt length in bytes.
pub const SALT_LEN: usize = 32;
/// AES-CBC IV length in bytes.
pub const IV_LEN: usize = 16;
/// HMAC-SHA256 tag length in bytes.
pub const TAG_LEN: usize = 32;
/// Length of the header (magic, version, parameters, salt, IV) before the ciphertext.
pub const HEADER_LEN: usize = 8 + 1 + 12 + SALT_LEN + IV_LEN;
/// Smallest possible backup: header, one AES block, tag.
pub const MIN_LEN: usize = HEADER_LEN + 16 + TAG_LEN;

/// Largest accepted Argon2 memory cost: 1 GiB in KiB.
pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
/// Largest accepted Argon2 pass count.
pub const MAX_T_COST: u32 = 16;
/// Largest accepted Argon2 lane count.
pub const MAX_P_COST: u32 = 16;

/// Argon2id cost parameters stored in (and read from) a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupParams {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Parallelism (lanes).
    pub p_cost: u32,
}

impl BackupParams {
    /// The default: 64 MiB, 3 passes, 1 lane.
    pub const DEFAULT: Self = Self { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 };

    /// Check the parameters against the accepted ranges (see module docs).
    pub fn validate(&self) -> Result<(), BackupError> {
        let Self { m_cost_kib, t_cost, p_cost } = *self;
        let ok = (1..=MAX_P_COST).contains(&p_cost)
            && (1..=MAX_T_COST).contains(&t_cost)
            && m_cost_kib <= MAX_M_COST_KIB
            && m_cost_kib >= 8 * p_cost;
        if ok { Ok(()) } else { Err(BackupError::ParamsOutOfRange { m_cost_kib, t_cost, p_cost }) }
    }
}

impl Default for BackupParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Argon2id (v0x13) of `password` and `salt` with optional `secret` and associated data `ad`,
/// filling `out`. The backup uses an empty secret and no associated data; the RFC 9106 test
/// vector exercises both.
fn argon2id(
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    ad: &[u8],
    params: BackupParams,
    out: &mut [u8],
) -> Result<(), BackupError> {
    params.validate()?;
    let mut builder = ParamsBuilder::new();
    builder
        .m_cost(params.m_cost_kib)
        .t_cost(params.t_cost)
        .p_cost(params.p_cost)
        .output_len(out.len());
    if !ad.is_empty() {
        builder.data(AssociatedData::new(ad).map_err(|_| BackupError::Kdf)?);
    }
    let argon_params = builder.build().map_err(|_| BackupError::Kdf)?;
    let ctx = if secret.is_empty() {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
    } else {
        Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, argon_params)
            .map_err(|_| BackupError::Kdf)?
    };
    ctx.hash_password_into(password, salt, out).map_err(|_| BackupError::Kdf)
}

/// The AES key and the MAC key for a passphrase, salt and parameters.
struct Keys {
    material: Zeroizing<[u8; 64]>,
}

impl Keys {
    fn derive(passphrase: &[u8], salt: &[u8], params: BackupParams) -> Result<Self, BackupError> {
        let mut material = Zeroizing::new([0u8; 64]);
        argon2id(passphrase, salt, &[], &[], params, material.as_mut())?;
        Ok(Self { material })
    }

    fn enc_key(&self) -> &[u8] {
        &self.material[..32]
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.material[32..]).expect("HMAC takes keys of any length")
    }
}

/// Encrypt `plaintext` under `passphrase` with fresh random salt and IV from the OS RNG.
pub fn encrypt_backup(
    plaintext: &[u8],
    passphrase: &[u8],
    params: BackupParams,
) -> Result<Vec<u8>, BackupError> {
    encrypt_backup_with_rng(plaintext, passphrase, params, &mut OsRng)
}

/// Encrypt `plaintext` under `passphrase`, drawing salt and IV from `rng`.
pub fn encrypt_backup_with_rng<R: RngCore + CryptoRng>(
    plaintext: &[u8],
    passphrase: &[u8],
    params: BackupParams,
    rng: &mut R,
) -> Result<Vec<u8>, BackupError> {
    params.validate()?;
    let mut salt = [0u8; SALT_LEN];
    let mut iv = [0u8; IV_LEN];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut iv);
    let keys = Keys::derive(passphrase, &salt, params)?;

    let ciphertext = cbc::Encryptor::<Aes256>::new_from_slices(keys.enc_key(), &iv)
        .map_err(|_| BackupError::Kdf)?
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);

    let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len() + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&params.m_cost_kib.to_le_bytes());
    out.extend_from_slice(&params.t_cost.to_le_bytes());
    out.extend_from_slice(&params.p_cost.to_le_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&iv);
    out.extend_from_slice(&ciphertext);
    let mut mac = keys.mac();
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

/// The parsed, not yet authenticated, parts of a backup.
struct Parsed<'a> {
    params: BackupParams,
    salt: &'a [u8],
    iv: &'a [u8],
    authenticated: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>, BackupError> {
    // Check what can be checked on a short input first, so a wrong file says "bad magic".
    if bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] != MAGIC {
        return Err(BackupError::BadMagic);
    }
    if bytes.len() > MAGIC.len() && bytes[MAGIC.len()] != VERSION {
        return Err(BackupError::UnsupportedVersion(bytes[MAGIC.len()]));
    }
    if bytes.len() < MIN_LEN {
        return Err(BackupError::Truncated(bytes.len()));
    }
    let params = BackupParams {
        m_cost_kib: u32_at(bytes, 9),
        t_cost: u32_at(bytes, 13),
        p_cost: u32_at(bytes, 17),
    };
    params.validate()?;
    let (authenticated, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    let ciphertext = &authenticated[HEADER_LEN..];
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(BackupError::BadCiphertextLength(ciphertext.len()));
    }
    Ok(Parsed {
        params,
        salt: &bytes[21..21 + SALT_LEN],
        iv: &bytes[21 + SALT_LEN..HEADER_LEN],
        authenticated,
        ciphertext,
        tag,
    })
}

/// Read the Argon2id parameters of a backup without decrypting it (checks magic, version,
/// length and parameter ranges; does not authenticate).
pub fn backup_params(bytes: &[u8]) -> Result<BackupParams, BackupError> {
    parse(bytes).map(|p| p.params)
}

/// Decrypt a backup. The result is zeroized when dropped.
pub fn decrypt_backup(bytes: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, BackupError> {
    let parsed = parse(bytes)?;
    let keys = Keys::derive(passphrase, parsed.salt, parsed.params)?;
    let mut mac = keys.mac();
    mac.update(parsed.authenticated);
    mac.verify_slice(parsed.tag).map_err(|_| BackupError::WrongPassphraseOrCorrupt)?;

    let decryptor = cbc::Decryptor::<Aes256>::new_from_slices(keys.enc_key(), parsed.iv)
        .map_err(|_| BackupError::Kdf)?;
    let mut buf = Zeroizing::new(parsed.ciphertext.to_vec());
    let len = decryptor
        .decrypt_padded_mut::<Pkcs7>(buf.as_mut_slice())
        .map_err(|_| BackupError::WrongPassphraseOrCorrupt)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SMALL: BackupParams = BackupParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

    /// RFC 9106 §5.3 (Argon2id test vector): m = 32 KiB, t = 3, p = 4, password 32 × 0x01,
    /// salt 16 × 0x02, secret 8 × 0x03, associated data 12 × 0x04, tag 32 bytes.
    #[test]
    fn rfc9106_argon2id_vector() {
        let params = BackupParams { m_cost_kib: 32, t_cost: 3, p_cost: 4 };
        let mut tag = [0u8; 32];
        argon2id(&[0x01; 32], &[0x02; 16], &[0x03; 8], &[0x04; 12], params, &mut tag).unwrap();
        assert_eq!(
            hex::encode(tag),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    #[test]
    fn round_trip_small_params_and_layout() {
        let pt = b"abandon abandon ... art (the seed or wallet file)";
        let ct = encrypt_backup(pt, b"correct horse", SMALL).unwrap();
        assert_eq!(&ct[..8], b"RNETBAK\0");
        assert_eq!(ct[8], 1);
        assert_eq!(&ct[9..13], &64u32.to_le_bytes());
        assert_eq!(&ct[13..17], &1u32.to_le_bytes());
        assert_eq!(&ct[17..21], &1u32.to_le_bytes());
        // 49-byte plaintext pads to 64 bytes of ciphertext.
        assert_eq!(ct.len(), HEADER_LEN + 64 + TAG_LEN);
        assert_eq!(backup_params(&ct), Ok(SMALL));
        assert_eq!(decrypt_backup(&ct, b"correct horse").unwrap().as_slice(), pt);
        // Fresh salt and IV each time.
        assert_ne!(encrypt_backup(pt, b"correct horse", SMALL).unwrap(), ct);
    }

    #[test]
    fn round_trip_default_64_mib_params() {
        let pt = [0x5au8; 64];
        let ct = encrypt_backup(&pt, "pässphrase".as_bytes(), BackupParams::default()).unwrap();
        assert_eq!(&ct[9..13], &65536u32.to_le_bytes());
        assert_eq!(&ct[13..17], &3u32.to_le_bytes());
        assert_eq!(backup_params(&ct), Ok(BackupParams::DEFAULT));
        assert_eq!(decrypt_backup(&ct, "pässphrase".as_bytes()).unwrap().as_slice(), pt);
    }

    #[test]
    fn wrong_passphrase_and_tampering() {
        let ct = encrypt_backup(b"", b"pw", SMALL).unwrap();
        assert_eq!(ct.len(), MIN_LEN, "empty plaintext is one padding block");
        assert_eq!(decrypt_backup(&ct, b"pw").unwrap().len(), 0);
        assert_eq!(decrypt_backup(&ct, b""), Err(BackupError::WrongPassphraseOrCorrupt));
        assert_eq!(decrypt_backup(&ct, b"pW"), Err(BackupError::WrongPassphraseOrCorrupt));
        // Flip one bit in the salt, IV, ciphertext and tag: all detected by the MAC.
        for at in [21, 53, HEADER_LEN, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[at] ^= 0x01;
            assert_eq!(decrypt_backup(&bad, b"pw"), Err(BackupError::WrongPassphraseOrCorrupt));
        }
        // Changing a parameter (still in range) changes the keys: also detected.
        let mut bad = ct.clone();
        bad[13] = 2;
        assert_eq!(decrypt_backup(&bad, b"pw"), Err(BackupError::WrongPassphraseOrCorrupt));
    }

    #[test]
    fn structural_errors_are_distinct_and_come_before_the_kdf() {
        let ct = encrypt_backup(b"x", b"pw", SMALL).unwrap();
        assert_eq!(
            decrypt_backup(&ct[..MIN_LEN - 1], b"pw"),
            Err(BackupError::Truncated(MIN_LEN - 1))
        );
        assert_eq!(decrypt_backup(&[], b"pw"), Err(BackupError::Truncated(0)));
        let mut bad = ct.clone();
        bad[0] = b'X';
        assert_eq!(decrypt_backup(&bad, b"pw"), Err(BackupError::BadMagic));
        assert_eq!(
            decrypt_backup(b"PK\x03\x04 a zip file, not a backup", b"pw"),
            Err(BackupError::BadMagic)
        );
        let mut bad = ct.clone();
        bad[8] = 2;
        assert_eq!(decrypt_backup(&bad, b"pw"), Err(BackupError::UnsupportedVersion(2)));
        // Hostile memory cost: 4 TiB. Rejected immediately (this test would otherwise abort).
        let mut bad = ct.clone();
        bad[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decrypt_backup(&bad, b"pw"),
            Err(BackupError::ParamsOutOfRange { m_cost_kib: u32::MAX, t_cost: 1, p_cost: 1 })
        );
        for (m, t, p) in [
            (MAX_M_COST_KIB + 1, 1, 1),
            (64, 0, 1),
            (64, 17, 1),
            (64, 1, 0),
            (64, 1, 17),
            (15, 1, 2),
        ] {
            let params = BackupParams { m_cost_kib: m, t_cost: t, p_cost: p };
            let mut bad = ct.clone();
            bad[9..13].copy_from_slice(&m.to_le_bytes());
            bad[13..17].copy_from_slice(&t.to_le_bytes());
            bad[17..21].copy_from_slice(&p.to_le_bytes());
            let err = BackupError::ParamsOutOfRange { m_cost_kib: m, t_cost: t, p_cost: p };
            assert_eq!(decrypt_backup(&bad, b"pw"), Err(err));
            assert_eq!(encrypt_backup(b"x", b"pw", params), Err(err));
        }
        // Ciphertext not a multiple of the block size.
        let mut bad = ct.clone();
        bad.insert(HEADER_LEN, 0);
        assert_eq!(decrypt_backup(&bad, b"pw"), Err(BackupError::BadCiphertextLength(17)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn round_trip(pt in proptest::collection::vec(any::<u8>(), 0..200), pw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let ct = encrypt_backup(&pt, &pw, SMALL).unwrap();
            prop_assert_eq!(ct.len(), HEADER_LEN + (pt.len() / 16 + 1) * 16 + TAG_LEN);
            let back = decrypt_backup(&ct, &pw).unwrap();
            prop_assert_eq!(back.as_slice(), pt.as_slice());
        }

        #[test]
        fn any_single_byte_change_is_rejected(pt in proptest::collection::vec(any::<u8>(), 0..40), at in any::<usize>(), x in 1u8..) {
            let ct = encrypt_backup(&pt, b"pw", SMALL).unwrap();
            let mut bad = ct.clone();
            let at = at % bad.len();
            bad[at] ^= x;
            prop_assert!(decrypt_backup(&bad, b"pw").is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random bytes never panic the decoder (most fail on magic; see the next test).
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(decrypt_backup(&bytes, b"pw").is_err());
            let _ = backup_params(&bytes);
        }

        /// Random bytes behind a valid magic and version never panic either; parameters are
        /// forced small so that the ones reaching Argon2 stay cheap.
        #[test]
        fn random_body_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200), small in any::<bool>()) {
            let mut bytes = MAGIC.to_vec();
            bytes.push(VERSION);
            if small {
                bytes.extend_from_slice(&8u32.to_le_bytes());
                bytes.extend_from_slice(&1u32.to_le_bytes());
                bytes.extend_from_slice(&1u32.to_le_bytes());
            }
            bytes.extend_from_slice(&body);
            if !small && bytes.len() >= 21 {
                // Keep random parameters from asking for a large (valid) Argon2 run.
                let m = u32_at(&bytes, 9);
                if m <= MAX_M_COST_KIB && m > 1024 {
                    bytes[12] = 0xff;
                }
            }
            prop_assert!(decrypt_backup(&bytes, b"pw").is_err());
        }
    }
}
