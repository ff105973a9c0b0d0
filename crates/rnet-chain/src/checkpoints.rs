//! Checkpoint files: one file per block under `<datadir>/checkpoints/`, named by the block hash.
//!
//! A file is written to `<hash>.tmp`, fsynced, renamed to `<hash>.ckpt` and the directory fsynced
//! *before* the database transaction that records it commits; records are removed from the
//! database *before* the file is deleted. So a crash leaves at worst a file without a record,
//! which [`CheckpointFiles::cleanup`] deletes when the chainstate opens; a failed write (a full
//! disk) deletes its temporary file at once. Reads check the size and
//! the chunk merkle root against the record, so a damaged file is never handed out.
//!
//! A checkpoint that arrives as a file (a finished P2P download, `loadcheckpoint`) is *staged*
//! ([`CheckpointFiles::stage`]): moved or copied to `<hash>.<n>.tmp` in the directory, then its
//! size and root are computed by streaming it through a bounded buffer. The chainstate compares
//! them with the header and [`CheckpointFiles::adopt`]s the file (fsynced when staged; then
//! rename and directory fsync). No step holds more than [`rnet_model::checkpoint::STREAM_BATCH_CHUNKS`] chunks in
//! memory, whatever the checkpoint's size, and the bytes checked are the bytes kept: the staged
//! copy is ours, so nothing can change it between the check and the rename.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rnet_primitives::BlockHash;

/// Chunk merkle root of checkpoint bytes (`docs/protocol.md`, Part III §5.1).
pub fn checkpoint_root(bytes: &[u8]) -> [u8; 32] {
    rnet_model::checkpoint::merkle_root(&rnet_model::checkpoint::chunk_hashes(bytes))
}

/// Chunk hashes of the first `size` bytes of `file`, read through a bounded buffer.
pub fn file_chunk_hashes(file: &fs::File, size: u64) -> io::Result<Vec<[u8; 32]>> {
    rnet_model::checkpoint::chunk_hashes_from_reader(BufReader::new(file), size)
}

/// How [`CheckpointFiles::stage`] takes a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageMode {
    /// Rename it into the checkpoint directory (copying only across file systems): for files
    /// the node owns, such as a finished download.
    Move,
    /// Copy it, leaving the original alone: for a file an operator names.
    Copy,
}

/// A checkpoint file staged in the checkpoint directory with its measured size, chunk hashes
/// and root; deleted on drop unless [`CheckpointFiles::adopt`]ed.
#[derive(Debug)]
pub struct StagedCheckpoint {
    path: PathBuf,
    /// The file's size in bytes.
    pub size: u64,
    /// Its chunk merkle root.
    pub root: [u8; 32],
}

impl Drop for StagedCheckpoint {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Distinguishes concurrent stagings of one block's checkpoint.
static STAGE_COUNTER: AtomicU64 = AtomicU64::new(0);

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

    /// Stages `src` as the checkpoint of `hash` (see the module documentation): moves or copies
    /// it into the directory, then measures its size and root by streaming it. Holds a bounded
    /// buffer whatever the file's size.
    pub fn stage(
        &self,
        hash: &BlockHash,
        src: &Path,
        mode: StageMode,
    ) -> io::Result<StagedCheckpoint> {
        // From here on the guard deletes the staged file on any error.
        let mut staged = StagedCheckpoint { path: self.stage_path(hash), size: 0, root: [0; 32] };
        let moved = mode == StageMode::Move && fs::rename(src, &staged.path).is_ok();
        if !moved {
            let mut from = fs::File::open(src)?;
            let mut to = fs::File::create(&staged.path)?;
            io::copy(&mut from, &mut to)?;
            if mode == StageMode::Move {
                drop(from);
                fs::remove_file(src)?;
            }
        }
        let file = fs::File::open(&staged.path)?;
        staged.size = file.metadata()?.len();
        staged.root = rnet_model::checkpoint::merkle_root(&file_chunk_hashes(&file, staged.size)?);
        // Durable before adoption, so the caller's lock is not held through a long fsync.
        if self.sync {
            fs::OpenOptions::new().write(true).open(&staged.path)?.sync_all()?;
        }
        Ok(staged)
    }

    /// Stages checkpoint bytes the node derived itself (Proof-of-Training outside the chain
    /// lock): written to a temporary file in the directory and fsynced here, so that storing
    /// them later under the lock is only a rename.
    pub fn stage_bytes(&self, hash: &BlockHash, bytes: &[u8]) -> io::Result<StagedCheckpoint> {
        let mut staged = StagedCheckpoint { path: self.stage_path(hash), size: 0, root: [0; 32] };
        let mut f = fs::File::create(&staged.path)?;
        f.write_all(bytes)?;
        if self.sync {
            f.sync_all()?;
        }
        staged.size = bytes.len() as u64;
        staged.root = checkpoint_root(bytes);
        Ok(staged)
    }

    /// A fresh temporary path for a staged checkpoint of `hash`.
    fn stage_path(&self, hash: &BlockHash) -> PathBuf {
        let n = STAGE_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{}.{}-{n}.tmp", hash.to_hex(), std::process::id()))
    }

    /// Makes a staged (already synced) file the checkpoint of `hash`, durably (rename,
    /// directory fsync).
    pub fn adopt(&self, hash: &BlockHash, mut staged: StagedCheckpoint) -> io::Result<()> {
        let path = std::mem::take(&mut staged.path);
        let done = fs::rename(&path, self.path(hash));
        if let Err(e) = done {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        if self.sync { sync_dir(&self.dir) } else { Ok(()) }
    }

    /// Opens the checkpoint file of `hash` for reading (unchecked; see
    /// `ChainReader::checkpoint_file`).
    pub fn open_file(&self, hash: &BlockHash) -> io::Result<fs::File> {
        fs::File::open(self.path(hash))
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

    /// Staging measures the file by streaming it; a copy leaves the original, a move takes it;
    /// a dropped stage leaves nothing behind and an adopted one becomes the checkpoint.
    #[test]
    fn staged_files_are_measured_then_adopted_or_dropped() {
        let dir = TempDir::new("stage");
        let files = CheckpointFiles::open(dir.path().join("ck"), true).unwrap();
        let bytes: Vec<u8> =
            (0..3 * rnet_model::checkpoint::CHUNK_SIZE + 5).map(|i| (i % 253) as u8).collect();
        let src = dir.path().join("incoming.bin");
        fs::write(&src, &bytes).unwrap();
        let hash = BlockHash::from_bytes([9; 32]);

        let copied = files.stage(&hash, &src, StageMode::Copy).unwrap();
        assert_eq!((copied.size, copied.root), (bytes.len() as u64, checkpoint_root(&bytes)));
        assert!(src.exists(), "a copy leaves the operator's file alone");
        drop(copied);
        assert_eq!(tmp_files(&dir.path().join("ck")), Vec::<String>::new());
        assert!(files.read(&hash).is_err(), "a dropped stage is not a checkpoint");

        let moved = files.stage(&hash, &src, StageMode::Move).unwrap();
        assert!(!src.exists(), "a move takes the file");
        assert_eq!(moved.root, checkpoint_root(&bytes));
        files.adopt(&hash, moved).unwrap();
        assert_eq!(files.read(&hash).unwrap(), bytes);
        assert_eq!(tmp_files(&dir.path().join("ck")), Vec::<String>::new());

        // A missing source is an error that stages nothing.
        assert!(files.stage(&hash, &src, StageMode::Copy).is_err());
        assert_eq!(tmp_files(&dir.path().join("ck")), Vec::<String>::new());
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
