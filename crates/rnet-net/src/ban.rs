//! Misbehaviour bans, persisted as JSON in `<netdir>/banlist.json`. An entry bans an IP address
//! (`setban`, or automatic bans of non-loopback peers) or a peer's Noise node key (`key:<hex>`,
//! automatic bans; loopback peers share one IP, so they are banned by key only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File of the ban list.
pub const BANLIST_FILE: &str = "banlist.json";
/// Default ban duration (24 hours).
pub const DEFAULT_BAN_SECS: u64 = 24 * 3600;
/// Most entries kept.
pub const MAX_BANS: usize = 10_000;

/// One ban.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanEntry {
    /// When the ban was created (Unix seconds).
    pub created: u64,
    /// When it ends (Unix seconds).
    pub until: u64,
    /// Why.
    pub reason: String,
}

/// The ban list.
pub struct BanList {
    path: Option<PathBuf>,
    entries: BTreeMap<String, BanEntry>,
}

impl BanList {
    /// Loads `<netdir>/banlist.json`.
    pub fn load(netdir: Option<&Path>) -> Self {
        let path = netdir.map(|d| d.join(BANLIST_FILE));
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self { path, entries }
    }

    fn save(&self) {
        if let Some(p) = &self.path {
            if let Ok(b) = serde_json::to_vec_pretty(&self.entries) {
                let tmp = p.with_extension("json.tmp");
                if std::fs::write(&tmp, b).is_ok() {
                    let _ = std::fs::rename(&tmp, p);
                }
            }
        }
    }

    /// Bans `key` (an IP or `key:<hex>`) until `until`.
    pub fn ban(&mut self, key: String, now: u64, until: u64, reason: &str) {
        if self.entries.len() >= MAX_BANS && !self.entries.contains_key(&key) {
            self.sweep(now);
            if self.entries.len() >= MAX_BANS {
                return;
            }
        }
        self.entries.insert(key, BanEntry { created: now, until, reason: reason.to_string() });
        self.save();
    }

    /// Lifts a ban; whether there was one.
    pub fn unban(&mut self, key: &str) -> bool {
        let had = self.entries.remove(key).is_some();
        self.save();
        had
    }

    /// Removes every ban.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.save();
    }

    /// Whether `key` is banned now.
    pub fn is_banned(&self, key: &str, now: u64) -> bool {
        self.entries.get(key).is_some_and(|e| e.until > now)
    }

    /// Drops expired bans.
    pub fn sweep(&mut self, now: u64) {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.until > now);
        if self.entries.len() != before {
            self.save();
        }
    }

    /// All current bans.
    pub fn list(&self, now: u64) -> Vec<(String, BanEntry)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.until > now)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persisted_and_expiring() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = BanList::load(Some(dir.path()));
        b.ban("10.0.0.1".into(), 100, 200, "manual");
        let b2 = BanList::load(Some(dir.path()));
        assert!(b2.is_banned("10.0.0.1", 150));
        assert!(!b2.is_banned("10.0.0.1", 200));
        assert_eq!(b2.list(150).len(), 1);
    }
}
