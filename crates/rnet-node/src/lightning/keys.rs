//! The Lightning node key: an Ed25519 seed in `<netdir>/lightning.key` (64 hex digits, mode
//! 0600), created on first use like the miner key ([`rnet_miner::load_or_create_key`]). It names
//! the node to peers (docs/lightning.md §8.1), signs invoices and gossip, and is the onion key.

use std::path::Path;

use rnet_crypto::SigningKey;
use rnet_miner::KeyError;

/// File name of the node key in the network data directory.
pub const NODE_KEY_FILE: &str = "lightning.key";

/// Loads the node key from `netdir`, or creates it if it does not exist. A malformed file is an
/// error, never replaced.
pub fn load_or_create(netdir: &Path) -> Result<SigningKey, KeyError> {
    rnet_miner::load_or_create_key(&netdir.join(NODE_KEY_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_and_malformed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let created = load_or_create(dir.path()).unwrap();
        assert_eq!(created.public_key(), load_or_create(dir.path()).unwrap().public_key());
        let path = dir.path().join(NODE_KEY_FILE);
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(load_or_create(dir.path()), Err(KeyError::Malformed(_))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not hex", "never replaced");
    }
}
