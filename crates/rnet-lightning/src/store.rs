//! Where a Lightning node keeps its state: a small ordered key-value interface with atomic
//! batches. The node persists a channel's state (and everything a payment needs) in one batch
//! *before* it sends the message that commits it, so a node killed at any point restarts from a
//! state its peers agree with (or one behind, which `channel_reestablish` repairs). `rnetd`
//! implements it on redb; [`MemoryStore`] serves tests, and cloning it captures a "disk" at any
//! instant.

use std::collections::BTreeMap;

/// A storage failure (the node stops rather than run on state it could not save).
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Sets `key` to `value`.
    Put(Vec<u8>, Vec<u8>),
    /// Removes `key` (absent keys are fine).
    Delete(Vec<u8>),
}

/// An ordered key-value store with atomic, durable batches.
pub trait Store: Send {
    /// Applies every operation or none, durably, before returning.
    fn write(&mut self, batch: Vec<StoreOp>) -> Result<(), StoreError>;
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError>;
}

/// An in-memory [`Store`]; `clone()` is a snapshot of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Store for MemoryStore {
    fn write(&mut self, batch: Vec<StoreOp>) -> Result<(), StoreError> {
        for op in batch {
            match op {
                StoreOp::Put(k, v) => {
                    self.map.insert(k, v);
                }
                StoreOp::Delete(k) => {
                    self.map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.get(key).cloned())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        Ok(self
            .map
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_apply_and_scans_are_ordered_by_prefix() {
        let mut s = MemoryStore::new();
        s.write(vec![
            StoreOp::Put(b"ch/2".to_vec(), b"b".to_vec()),
            StoreOp::Put(b"ch/1".to_vec(), b"a".to_vec()),
            StoreOp::Put(b"inv/1".to_vec(), b"x".to_vec()),
        ])
        .unwrap();
        let snapshot = s.clone();
        s.write(vec![StoreOp::Delete(b"ch/2".to_vec()), StoreOp::Delete(b"none".to_vec())])
            .unwrap();
        assert_eq!(s.scan(b"ch/").unwrap(), vec![(b"ch/1".to_vec(), b"a".to_vec())]);
        assert_eq!(snapshot.scan(b"ch/").unwrap().len(), 2, "a clone is a snapshot");
        assert_eq!(s.get(b"inv/1").unwrap(), Some(b"x".to_vec()));
        assert_eq!(s.len(), 2);
    }
}
