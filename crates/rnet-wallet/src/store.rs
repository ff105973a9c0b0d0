//! The wallet file: one redb database with one table `wallet` (`&str → bytes`):
//!
//! - `format`: `b"rnet-wallet/1"`;
//! - `secret`: the [`crate::keys`] secret record (`0x01 ‖ entropy ‖ BIP39 passphrase`), either in
//!   plaintext (unencrypted wallet) or as an `rnet_crypto` encrypted backup blob (`RNETBAK`,
//!   Argon2id + AES-256-CBC + HMAC) under the wallet passphrase;
//! - `state`: JSON of the public state: network, account, policy, derived public keys, next
//!   indices, the guardian public key, coins, spent/expired coins kept for undo, unconfirmed
//!   transactions, recent tips. No private key and no seed is ever written here.
//!
//! Re-encrypting (encrypt, change passphrase) rewrites the whole file to a temporary file and
//! renames it over the old one, so no stale page of the old secret survives in the file.

use std::path::Path;

use redb::{Database, TableDefinition};

use crate::error::{Result, WalletError};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("wallet");
/// The value of the `format` record.
pub const FORMAT: &[u8] = b"rnet-wallet/1";

/// Creates a new wallet database at `path`, readable and writable by its owner only (0600 on
/// Unix: an unencrypted wallet holds the mnemonic entropy).
pub(crate) fn create(path: &Path) -> Result<Database> {
    if path.exists() {
        return Err(WalletError::AlreadyExists(path.display().to_string()));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?;
    Ok(Database::create(path)?)
}

pub(crate) fn open(path: &Path) -> Result<Database> {
    if !path.exists() {
        return Err(WalletError::Corrupt(format!("{} does not exist", path.display())));
    }
    Database::open(path).map_err(|e| WalletError::Corrupt(e.to_string()))
}

pub(crate) fn write(db: &Database, secret: Option<&[u8]>, state: &[u8]) -> Result<()> {
    let w = db.begin_write()?;
    {
        let mut t = w.open_table(TABLE)?;
        t.insert("format", FORMAT)?;
        if let Some(s) = secret {
            t.insert("secret", s)?;
        }
        t.insert("state", state)?;
    }
    w.commit()?;
    Ok(())
}

pub(crate) fn read(db: &Database) -> Result<(Vec<u8>, Vec<u8>)> {
    let r = db.begin_read()?;
    let t = r.open_table(TABLE).map_err(|e| WalletError::Corrupt(e.to_string()))?;
    let get = |k: &str| -> Result<Vec<u8>> {
        t.get(k)?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| WalletError::Corrupt(format!("missing {k} record")))
    };
    if get("format")? != FORMAT {
        return Err(WalletError::Corrupt("unknown wallet format".into()));
    }
    Ok((get("secret")?, get("state")?))
}
