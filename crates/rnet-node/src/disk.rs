//! Free disk space: checked before the node writes blocks and checkpoints (and at startup), as
//! Bitcoin Core does. Below the threshold (`-mindiskspace`, default 50 MiB) the node logs
//! "disk space is too low" and shuts down cleanly instead of failing every write (which used
//! to log ENOSPC once a second under `-mine` and leave temporary files behind).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// The data directory's disk has less free space than the node needs.
#[derive(Clone, Debug, Error)]
#[error(
    "disk space is too low: {free} bytes free for {}, below the minimum of {min} bytes \
     (-mindiskspace); free some space and restart",
    path.display()
)]
pub struct DiskSpaceLow {
    /// The directory checked.
    pub path: PathBuf,
    /// Bytes available.
    pub free: u64,
    /// The threshold.
    pub min: u64,
}

/// Bytes available to unprivileged processes on the file system holding `path`.
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(path)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// The threshold and the directory it applies to.
#[derive(Debug)]
pub struct DiskGuard {
    path: PathBuf,
    min: AtomicU64,
}

impl DiskGuard {
    /// Guards the disk holding `path`, requiring `min` free bytes.
    pub fn new(path: &Path, min: u64) -> Self {
        Self { path: path.to_path_buf(), min: AtomicU64::new(min) }
    }

    /// Changes the threshold (`-mindiskspace`).
    pub fn set_min(&self, min: u64) {
        self.min.store(min, Ordering::SeqCst);
    }

    /// `Err` when the free space is below the threshold. A file system that cannot report
    /// its free space passes (the write itself will then report any failure).
    pub fn check(&self) -> Result<(), DiskSpaceLow> {
        let min = self.min.load(Ordering::SeqCst);
        if min == 0 {
            return Ok(());
        }
        match free_space(&self.path) {
            Ok(free) if free < min => Err(DiskSpaceLow { path: self.path.clone(), free, min }),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!("free space of {} unknown: {e}", self.path.display());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_against_the_real_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(dir.path()).unwrap();
        assert!(free > 0);
        let guard = DiskGuard::new(dir.path(), 1);
        guard.check().unwrap();
        guard.set_min(0);
        guard.check().unwrap();
        guard.set_min(free.saturating_mul(4).max(u64::MAX / 2));
        let e = guard.check().unwrap_err();
        assert!(e.free < e.min);
        assert!(e.to_string().starts_with("disk space is too low"), "{e}");
        assert!(e.to_string().contains(&dir.path().display().to_string()));
    }
}
