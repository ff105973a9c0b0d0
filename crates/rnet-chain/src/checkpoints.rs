//! Checkpoint files: one file per block under `<datadir>/checkpoints/`, named by the block hash.
//!
//! A file is written to `<hash>.tmp`, fsynced, renamed to `<hash>.ckpt` and the directory fsynced
//! *before* the database transaction that records it commits; records are removed from the
//! database *before* the file is deleted. So a crash leaves at worst a file without a record,
//! which [`CheckpointFiles::cleanup`] deletes when the chainstate opens. Reads check the size and
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
    pub fn write(&self, hash: &BlockHash, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{}.tmp", hash.to_hex()));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            if self.sync {
                f.sync_all()?;
            }
        }
        fs::rename(&tmp, self.path(hash))?;
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
