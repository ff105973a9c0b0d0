//! Where a tower keeps its blobs: a small trait (the node implements it over its database) and
//! an in-memory implementation.
//!
//! Blobs are keyed by `(hint, session)`, not by hint alone: the cheating party knows its own
//! commitment's txid, hence its hint, and could otherwise file a blob under it to displace its
//! victim's.

use std::collections::BTreeMap;

use thiserror::Error;

use super::blob::{EncryptedBlob, Hint};
use super::tower::SessionId;

/// A storage backend failure, described by the backend.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// The tower's blob storage.
pub trait AppointmentStore {
    /// Stores `blob` under `(hint, session)`, replacing what was there.
    fn put(
        &mut self,
        hint: Hint,
        session: SessionId,
        blob: EncryptedBlob,
    ) -> Result<(), StoreError>;

    /// Every blob filed under `hint`, with its session, in session order.
    fn get(&self, hint: &Hint) -> Result<Vec<(SessionId, EncryptedBlob)>, StoreError>;

    /// Removes the blob under `(hint, session)`; returns whether there was one.
    fn remove(&mut self, hint: &Hint, session: &SessionId) -> Result<bool, StoreError>;

    /// The number of blobs stored.
    fn len(&self) -> usize;

    /// Whether no blob is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An in-memory [`AppointmentStore`] (tests, and towers that need not survive a restart).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    blobs: BTreeMap<Hint, BTreeMap<SessionId, EncryptedBlob>>,
    len: usize,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl AppointmentStore for MemoryStore {
    fn put(
        &mut self,
        hint: Hint,
        session: SessionId,
        blob: EncryptedBlob,
    ) -> Result<(), StoreError> {
        if self.blobs.entry(hint).or_default().insert(session, blob).is_none() {
            self.len += 1;
        }
        Ok(())
    }

    fn get(&self, hint: &Hint) -> Result<Vec<(SessionId, EncryptedBlob)>, StoreError> {
        Ok(self
            .blobs
            .get(hint)
            .map(|m| m.iter().map(|(s, b)| (*s, b.clone())).collect())
            .unwrap_or_default())
    }

    fn remove(&mut self, hint: &Hint, session: &SessionId) -> Result<bool, StoreError> {
        let Some(by_session) = self.blobs.get_mut(hint) else { return Ok(false) };
        let removed = by_session.remove(session).is_some();
        if by_session.is_empty() {
            self.blobs.remove(hint);
        }
        if removed {
            self.len -= 1;
        }
        Ok(removed)
    }

    fn len(&self) -> usize {
        self.len
    }
}
