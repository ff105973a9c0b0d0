//! Checkpoint files: one file per block under `<datadir>/checkpoints/`, named by the block hash.
//!
//! A file is written to `<hash>.tmp`, fsynced, renamed to `<hash>.ckpt` and the directory fsynced
//! *before* the database transaction that records it commits; records are removed from the
//! database *before* the file is deleted. So a crash leaves at worst a file without a record,
//! which [`CheckpointFiles::cleanup`] deletes when the chainstate opens; a failed write (a full
//! disk) deletes its temporary file at once. Reads check the size and
//! the chunk merkle root against the record, so a damaged file is never handed out.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rnet_primitives::BlockHash;

/// Chunk merkle root of checkpoint bytes (`docs/protocol.md`, Part III §5.1).
pub fn checkpoint_root(bytes: &[u8]) -> [u8; 32] {
    rnet_model::checkpoint::merkle_root(&rnet_model::checkpoint::chunk_hashes(bytes))
}

/// The directory of checkpoint files.
#[derive(Clone, Debug)]
pub struct CheckpointFiles {
    dir: PathBuf,
    sync: bool,
}

impl CheckpointFiles {
    /// Opens (creating it if needed) the checkpoint directory; `sync` makes writes durable
    /// (fsync of the file and the directory).
    pub fn open(dir: PathBuf, sync: bool) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(Self { dir, sync })
    }

    fn path(&self, hash: &BlockHash) -> PathBuf {
        self.dir.join(format!("{}.ckpt", hash.to_hex()))
    }

    /// Writes the checkpoint of `hash` durably (temporary file, fsync, rename, directory fsync).
    /// A failed write (a full disk) removes its temporary file: nothing is left behind.
    pub fn write(&self, hash: &BlockHash, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{}.tmp", hash.to_hex()));
        let written = (|| {
            {
                let mut f = fs::File::create(&tmp)?;
                f.write_all(bytes)?;
                if self.sync {
                    f.sync_all()?;
                }
            }
            fs::rename(&tmp, self.path(hash))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if self.sync { sync_dir(&self.dir) } else { Ok(()) }
    }

    /// Reads the checkpoint file of `hash` (unchecked; see `ChainState::checkpoint`).
    pub fn read(&self, hash: &BlockHash) -> io::Result<Vec<u8>> {
        fs::read(self.path(hash))
    }

    /// Deletes the checkpoint file of `hash`; a missing file is not an error.
    pub fn remove(&self, hash: &BlockHash) -> io::Result<()> {
        match fs::remove_file(self.path(hash)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes temporary files and every checkpoint file whose block is not in `keep`. Returns
    /// the number of files deleted.
    pub fn cleanup(&self, keep: &HashSet<BlockHash>) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stale = match name.strip_suffix(".ckpt") {
                Some(stem) => stem.parse::<BlockHash>().map_or(true, |h| !keep.contains(&h)),
                None => name.ends_with(".tmp"),
            };
            if stale {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    // Directories can be opened and fsynced on Unix; elsewhere this is best effort.
    match fs::File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("rnet-chain-ckpt-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn tmp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    /// A write that fails with ENOSPC (the temporary file is a link to `/dev/full`) or at the
    /// rename leaves no temporary file and no checkpoint.
    #[test]
    fn failed_writes_leave_no_temporary_file() {
        let dir = TempDir::new("fail");
        let files = CheckpointFiles::open(dir.path().to_path_buf(), true).unwrap();
        let bytes = vec![7u8; 100_000];

        #[cfg(target_os = "linux")]
        {
            let full = BlockHash::from_bytes([1; 32]);
            let tmp = dir.path().join(format!("{}.tmp", full.to_hex()));
            std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
            let e = files.write(&full, &bytes).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
            assert!(fs::symlink_metadata(&tmp).is_err(), "temporary file removed");
            assert!(files.read(&full).is_err());
        }

        // The rename fails: a directory occupies the checkpoint's name.
        let blocked = BlockHash::from_bytes([2; 32]);
        fs::create_dir(files.path(&blocked)).unwrap();
        fs::write(files.path(&blocked).join("x"), b"x").unwrap();
        assert!(files.write(&blocked, &bytes).is_err());
        assert_eq!(tmp_files(dir.path()), Vec::<String>::new());

        // A good write still works and leaves only the checkpoint.
        let good = BlockHash::from_bytes([3; 32]);
        files.write(&good, &bytes).unwrap();
        assert_eq!(files.read(&good).unwrap(), bytes);
        assert_eq!(tmp_files(dir.path()), Vec::<String>::new());
    }

    /// Temporary files left by a crash are deleted by the cleanup at open.
    #[test]
    fn cleanup_removes_stale_temporary_files() {
        let dir = TempDir::new("cleanup");
        let files = CheckpointFiles::open(dir.path().to_path_buf(), false).unwrap();
        let keep = BlockHash::from_bytes([4; 32]);
        files.write(&keep, b"abc").unwrap();
        for i in 0..3 {
            fs::write(
                dir.path().join(format!("{}.tmp", BlockHash::from_bytes([i; 32]).to_hex())),
                b"x",
            )
            .unwrap();
        }
        let removed = files.cleanup(&HashSet::from([keep])).unwrap();
        assert_eq!(removed, 3);
        assert_eq!(tmp_files(dir.path()), Vec::<String>::new());
        assert_eq!(files.read(&keep).unwrap(), b"abc");
    }
}
