//! Where our Lightning peers listen (`<netdir>/lightning_peers.json`), so that a restarted node
//! dials the peers of its open channels again, as Core Lightning and LDK nodes do: a channel
//! whose peer never comes back cannot settle or fail its HTLCs off chain.
//!
//! Only peers we dialled are recorded (an inbound peer's source port is not where it listens);
//! the side that dialled reconnects. Writes go to a temporary file that is renamed over the old
//! one, so a crash leaves the old book or the new one, never a torn file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rnet_crypto::PublicKey;

/// The file name, in the network directory.
pub const ADDRESS_BOOK_FILE: &str = "lightning_peers.json";

/// Why the address book could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AddressBookError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not an address book.
    #[error("{path}: not a Lightning address book: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Peer node ids and the addresses we reached them at.
#[derive(Debug)]
pub struct AddressBook {
    path: PathBuf,
    peers: BTreeMap<[u8; 32], SocketAddr>,
}

impl AddressBook {
    /// Loads the book of `netdir` (empty if there is none yet).
    pub fn load(netdir: &Path) -> Result<Self, AddressBookError> {
        let path = netdir.join(ADDRESS_BOOK_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self { path, peers: BTreeMap::new() });
            }
            Err(source) => return Err(AddressBookError::Io { path, source }),
        };
        let malformed = |reason: String| AddressBookError::Malformed { path: path.clone(), reason };
        let raw: BTreeMap<String, String> =
            serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        let mut peers = BTreeMap::new();
        for (id, addr) in raw {
            let key = hex::decode(&id)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .filter(|b| PublicKey::from_bytes(b).is_ok())
                .ok_or_else(|| malformed(format!("bad node id {id:?}")))?;
            let addr: SocketAddr =
                addr.parse().map_err(|_| malformed(format!("bad address {addr:?} for {id}")))?;
            peers.insert(key, addr);
        }
        Ok(Self { path, peers })
    }

    /// Records that `peer` listens at `addr`, writing the book if that is news.
    pub fn insert(&mut self, peer: &PublicKey, addr: SocketAddr) -> Result<(), AddressBookError> {
        if self.peers.insert(peer.to_bytes(), addr) == Some(addr) {
            return Ok(());
        }
        self.save()
    }

    /// Every recorded peer and its address.
    pub fn peers(&self) -> Vec<(PublicKey, SocketAddr)> {
        self.peers
            .iter()
            .filter_map(|(k, a)| PublicKey::from_bytes(k).ok().map(|p| (p, *a)))
            .collect()
    }

    fn save(&self) -> Result<(), AddressBookError> {
        let raw: BTreeMap<String, String> =
            self.peers.iter().map(|(k, a)| (hex::encode(k), a.to_string())).collect();
        let text = serde_json::to_string_pretty(&raw).map_err(|e| AddressBookError::Malformed {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let io = |source| AddressBookError::Io { path: self.path.clone(), source };
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_crypto::SigningKey;

    fn key(n: u8) -> PublicKey {
        SigningKey::from_bytes(&[n; 32]).public_key()
    }

    #[test]
    fn peers_survive_a_reload_and_a_missing_book_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = AddressBook::load(dir.path()).unwrap();
        assert!(book.peers().is_empty());
        let addr: SocketAddr = "127.0.0.1:9735".parse().unwrap();
        book.insert(&key(1), addr).unwrap();
        book.insert(&key(2), "[::1]:19735".parse().unwrap()).unwrap();
        book.insert(&key(1), "127.0.0.1:9736".parse().unwrap()).unwrap();
        let again = AddressBook::load(dir.path()).unwrap();
        let found: BTreeMap<[u8; 32], SocketAddr> =
            again.peers().into_iter().map(|(k, a)| (k.to_bytes(), a)).collect();
        let expected: BTreeMap<[u8; 32], SocketAddr> = [
            (key(1).to_bytes(), "127.0.0.1:9736".parse().unwrap()),
            (key(2).to_bytes(), "[::1]:19735".parse().unwrap()),
        ]
        .into();
        assert_eq!(found, expected);
        assert!(!dir.path().join("lightning_peers.json.tmp").exists());
    }

    #[test]
    fn a_malformed_book_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADDRESS_BOOK_FILE);
        for text in [
            "not json",
            r#"{"zz": "127.0.0.1:1"}"#,
            &format!(r#"{{"{}": "nowhere"}}"#, hex::encode(key(1).to_bytes())),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = AddressBook::load(dir.path()).unwrap_err();
            assert!(matches!(e, AddressBookError::Malformed { .. }), "{text}: {e}");
            assert!(e.to_string().contains(ADDRESS_BOOK_FILE), "{e}");
        }
    }
}
