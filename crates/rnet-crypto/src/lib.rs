//! ResonanceNet cryptography (layer 1).
//!
//! Everything the protocol hashes or signs goes through this crate, so that the consensus-critical
//! primitives live in one place with their test vectors beside them:
//!
//! - [`keccak`]: Keccak-256 (original 0x01 padding) and Keccak-256d.
//! - [`ed25519`]: keys, signing, single and batch verification under the frozen ZIP-215 rule.
//! - [`slip10`]: SLIP-10 Ed25519 hardened key derivation from a seed.
//! - [`mnemonic`]: BIP39 24-word English mnemonics and their 64-byte seeds.
//! - [`backup`]: passphrase-encrypted backups (Argon2id → AES-256-CBC + HMAC-SHA256).
//! - [`error`]: the typed errors; nothing here panics on input from outside.
//!
//! Every secret (signing keys, seeds, derived keys, KDF output) is zeroized when dropped.

pub mod backup;
pub mod ed25519;
pub mod error;
mod hexfmt;
pub mod keccak;
pub mod mnemonic;
pub mod slip10;

pub use backup::{BackupParams, decrypt_backup, encrypt_backup};
pub use ed25519::{BatchVerifier, PublicKey, Signature, SigningKey, sign, verify};
pub use error::{BackupError, CryptoError, MnemonicError, SignatureError, Slip10Error};
pub use keccak::{keccak256, keccak256d};
pub use mnemonic::{Mnemonic, Seed};
pub use slip10::{ChildIndex, DerivationPath, ExtendedSecretKey};
