//! The Lightning node key: an Ed25519 seed in `<netdir>/lightning.key` (64 hex digits, mode
//! 0600), created on first use. It names the node to peers (§8.1), signs invoices and gossip,
//! and is the onion key; channel funds are controlled by per-channel keys derived from it.

use std::io::Write;
use std::path::Path;

use rnet_crypto::SigningKey;

/// File name of the node key in the network data directory.
pub const NODE_KEY_FILE: &str = "lightning.key";

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("{0}: not a 64-hex-digit key")]
    Malformed(String),
}

/// Loads the node key from `path`, or creates it (0600, synced) if the file does not exist. A
/// malformed file is an error, never replaced.
pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.display().to_string(), source };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut seed = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut seed)
                .map_err(|_| KeyFileError::Malformed(path.display().to_string()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::random();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(io)?;
            f.write_all(hex::encode(key.as_bytes()).as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_and_malformed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NODE_KEY_FILE);
        let created = load_or_create(&path).unwrap();
        let loaded = load_or_create(&path).unwrap();
        assert_eq!(created.public_key(), loaded.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(load_or_create(&path), Err(KeyFileError::Malformed(_))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not hex", "never replaced");
    }
}
