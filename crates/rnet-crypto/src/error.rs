//! Error types of this crate: one enum per module, and [`CryptoError`] wrapping them all for
//! callers that just want to propagate "something cryptographic failed".
//!
//! No function of this crate panics on input from outside (keys, signatures, mnemonics, paths,
//! backup files, passphrases); every such failure is one of these typed errors.

use thiserror::Error;

/// Ed25519 key parsing and signature verification failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// A byte string had the wrong length for the object being parsed.
    #[error("invalid length: expected {expected} bytes, got {actual}")]
    InvalidLength {
        /// The length required.
        expected: usize,
        /// The length supplied.
        actual: usize,
    },
    /// The 32 bytes of a public key do not decode to a point of the curve.
    #[error("malformed Ed25519 public key: not an encoding of a curve point")]
    MalformedPublicKey,
    /// The signature does not verify under the frozen (ZIP-215) rule: malformed `R`, non-canonical
    /// `S`, or the cofactored equation does not hold. For a batch: at least one item is invalid.
    #[error("invalid Ed25519 signature")]
    InvalidSignature,
}

/// SLIP-10 derivation and derivation-path failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Slip10Error {
    /// The seed is not between 16 and 64 bytes long (BIP32/SLIP-10 seed range).
    #[error("SLIP-10 seed must be 16 to 64 bytes, got {0}")]
    SeedLength(usize),
    /// Ed25519 SLIP-10 supports hardened derivation only; this index is not hardened.
    #[error("non-hardened index {0} (Ed25519 SLIP-10 derives hardened children only)")]
    NonHardenedIndex(u32),
    /// A hardened index was given as a number `>= 2^31` (pass it without the hardened bit).
    #[error("index {0} too large (hardened indices are 0 to 2^31 - 1 before the hardened bit)")]
    IndexTooLarge(u32),
    /// A path component names an index `>= 2^31` before the hardened marker.
    #[error("path component {position}: index out of range (must be below 2^31)")]
    IndexOutOfRange {
        /// Zero-based position of the component after `m`.
        position: usize,
    },
    /// A path component lacks the hardened marker (`'`, `h` or `H`).
    #[error("path component {position} is not hardened (Ed25519 SLIP-10 needs `'` or `h`)")]
    NonHardenedComponent {
        /// Zero-based position of the component after `m`.
        position: usize,
    },
    /// The path does not start with `m`.
    #[error("derivation path must start with `m`")]
    MissingMaster,
    /// A path component is empty or not a decimal number.
    #[error("path component {position} is not a decimal index")]
    MalformedComponent {
        /// Zero-based position of the component after `m`.
        position: usize,
    },
    /// The path has more than 255 components (BIP32 depth is one byte).
    #[error("derivation path deeper than 255 levels")]
    PathTooDeep,
}

/// BIP39 mnemonic failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MnemonicError {
    /// The phrase does not have exactly 24 words.
    #[error("mnemonic must have 24 words, got {0}")]
    WordCount(usize),
    /// A word is not in the BIP39 English word list.
    #[error("word {0} of the mnemonic is not in the BIP39 English word list")]
    UnknownWord(usize),
    /// The checksum bits encoded in the last word do not match the entropy.
    #[error("mnemonic checksum mismatch (a word is wrong or words are out of order)")]
    InvalidChecksum,
}

/// Encrypted backup encoding, decoding and decryption failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BackupError {
    /// The input is shorter than the smallest possible backup.
    #[error("backup truncated: {0} bytes is shorter than the minimum")]
    Truncated(usize),
    /// The input does not start with the backup magic bytes.
    #[error("not a ResonanceNet backup (bad magic bytes)")]
    BadMagic,
    /// The format version is not one this code reads.
    #[error("unsupported backup format version {0}")]
    UnsupportedVersion(u8),
    /// The Argon2id parameters are outside the accepted range (checked before any KDF work).
    #[error(
        "Argon2id parameters out of range: m_cost={m_cost_kib} KiB, t_cost={t_cost}, p_cost={p_cost}"
    )]
    ParamsOutOfRange {
        /// Memory cost in KiB.
        m_cost_kib: u32,
        /// Number of passes.
        t_cost: u32,
        /// Parallelism (lanes).
        p_cost: u32,
    },
    /// The ciphertext is empty or not a whole number of AES blocks.
    #[error("backup ciphertext length {0} is not a positive multiple of 16")]
    BadCiphertextLength(usize),
    /// The authentication tag does not verify: the passphrase is wrong or the file was altered.
    #[error("wrong passphrase or corrupted backup")]
    WrongPassphraseOrCorrupt,
    /// The key-derivation function failed (only for parameters the range check let through).
    #[error("Argon2id key derivation failed")]
    Kdf,
}

/// Any error of this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// See [`SignatureError`].
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// See [`Slip10Error`].
    #[error(transparent)]
    Slip10(#[from] Slip10Error),
    /// See [`MnemonicError`].
    #[error(transparent)]
    Mnemonic(#[from] MnemonicError),
    /// See [`BackupError`].
    #[error(transparent)]
    Backup(#[from] BackupError),
}
