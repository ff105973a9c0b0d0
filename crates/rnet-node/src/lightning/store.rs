//! The Lightning node's state in redb: one table of byte keys and values in
//! `<netdir>/lightning.redb`, each batch one durable write transaction (docs/lightning.md §7:
//! the node persists before it sends what commits it).

use std::path::Path;

use redb::{Database, TableDefinition};
use rnet_lightning::store::{Entry, Store, StoreError, StoreOp};

/// The single table.
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("lightning");

/// File name in the network data directory.
pub const STORE_FILE: &str = "lightning.redb";

/// A [`Store`] on a redb database.
pub struct RedbStore {
    db: Database,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl RedbStore {
    /// Opens (creating it if needed) the store in `netdir`.
    pub fn open(netdir: &Path) -> Result<Self, StoreError> {
        let db = Database::create(netdir.join(STORE_FILE)).map_err(err)?;
        let w = db.begin_write().map_err(err)?;
        w.open_table(STATE).map_err(err)?;
        w.commit().map_err(err)?;
        Ok(Self { db })
    }
}

impl Store for RedbStore {
    fn write(&mut self, batch: Vec<StoreOp>) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(err)?;
        {
            let mut t = w.open_table(STATE).map_err(err)?;
            for op in &batch {
                match op {
                    StoreOp::Put(k, v) => {
                        t.insert(k.as_slice(), v.as_slice()).map_err(err)?;
                    }
                    StoreOp::Delete(k) => {
                        t.remove(k.as_slice()).map_err(err)?;
                    }
                }
            }
        }
        w.commit().map_err(err)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(STATE).map_err(err)?;
        Ok(t.get(key).map_err(err)?.map(|v| v.value().to_vec()))
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(STATE).map_err(err)?;
        let mut out = Vec::new();
        for item in t.range(prefix..).map_err(err)? {
            let (k, v) = item.map_err(err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches are atomic and survive reopening; scans are ordered and bounded by the prefix.
    #[test]
    fn batches_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = RedbStore::open(dir.path()).unwrap();
            s.write(vec![
                StoreOp::Put(b"ch/b".to_vec(), b"2".to_vec()),
                StoreOp::Put(b"ch/a".to_vec(), b"1".to_vec()),
                StoreOp::Put(b"ci".to_vec(), b"x".to_vec()),
            ])
            .unwrap();
            s.write(vec![StoreOp::Delete(b"ch/b".to_vec())]).unwrap();
        }
        let s = RedbStore::open(dir.path()).unwrap();
        assert_eq!(s.scan(b"ch/").unwrap(), vec![(b"ch/a".to_vec(), b"1".to_vec())]);
        assert_eq!(s.get(b"ci").unwrap(), Some(b"x".to_vec()));
        assert_eq!(s.get(b"ch/b").unwrap(), None);
        assert_eq!(s.scan(b"").unwrap().len(), 2);
    }
}
