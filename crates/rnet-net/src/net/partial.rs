//! Where a checkpoint download keeps its verified chunks: with a network data directory, in a
//! partial file on disk (`<netdir>/downloads/<blockhash>.part`, chunk `i` at `i * CHUNK_SIZE`)
//! with a one-byte-per-chunk presence sidecar (`<blockhash>.have`), so memory stays bounded and a
//! restarted node resumes; without one (tests), in memory as before.
//!
//! Crash order: a chunk's bytes are written and `sync_data`'d before its sidecar byte is set;
//! the sidecar itself is not synced (a lost mark only costs a re-fetch). On resume every chunk the
//! sidecar marks present is read back and re-verified against the chunk hashes, so a damaged or
//! truncated file only means those chunks are fetched again.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rnet_model::checkpoint::{CHUNK_SIZE, verify_chunk};
use rnet_primitives::BlockHash;

use super::{MAX_CHECKPOINT_FETCHES, MAX_CHECKPOINT_SIZE};

/// Subdirectory of the network data directory holding partial checkpoint downloads.
pub const DOWNLOADS_DIR: &str = "downloads";
/// A partial download untouched for this long is deleted by the sweep.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Total size of partial files kept; beyond it the sweep deletes the oldest inactive ones (room
/// for the largest checkpoints of all concurrent downloads).
pub const MAX_PARTIAL_BYTES: u64 = MAX_CHECKPOINT_FETCHES as u64 * MAX_CHECKPOINT_SIZE;

const PART_EXT: &str = "part";
const HAVE_EXT: &str = "have";

/// The received chunks of one checkpoint download.
pub(super) enum Chunks {
    /// In memory (no network data directory).
    Memory(Vec<Option<Vec<u8>>>),
    /// In a partial file on disk.
    Disk(PartialFile),
}

/// A checkpoint download's partial file and presence sidecar.
pub(super) struct PartialFile {
    part_path: PathBuf,
    have_path: PathBuf,
    part: File,
    have_file: File,
    have: Vec<bool>,
}

/// A completed download handed to the validation worker.
pub(super) enum CheckpointData {
    /// The bytes themselves.
    Bytes(Vec<u8>),
    /// A complete partial file of `size` bytes (and its sidecar), read by the worker and deleted
    /// after `accept_checkpoint`, whatever its verdict.
    File { part: PathBuf, have: PathBuf, size: u64 },
}

fn paths(dir: &Path, block: &BlockHash) -> (PathBuf, PathBuf) {
    let d = dir.join(DOWNLOADS_DIR);
    let name = block.to_hex();
    (d.join(format!("{name}.{PART_EXT}")), d.join(format!("{name}.{HAVE_EXT}")))
}

fn chunk_range(size: u64, i: usize) -> (u64, usize) {
    let start = i as u64 * CHUNK_SIZE as u64;
    (start, (size - start).min(CHUNK_SIZE as u64) as usize)
}

impl Chunks {
    /// Storage for a download of `hashes.len()` chunks, `size` bytes: on disk under `netdir`
    /// (resuming the chunks of an earlier partial file that still verify against `hashes`),
    /// else in memory. A disk error falls back to memory with a warning.
    pub(super) fn open(
        netdir: Option<&Path>,
        block: &BlockHash,
        hashes: &[[u8; 32]],
        size: u64,
    ) -> Self {
        let n = hashes.len();
        let Some(dir) = netdir else { return Chunks::Memory(vec![None; n]) };
        match PartialFile::open(dir, block, hashes, size) {
            Ok(p) => {
                let kept = p.have.iter().filter(|h| **h).count();
                if kept > 0 {
                    tracing::info!(%block, kept, of = n, "resuming a partial checkpoint download");
                }
                Chunks::Disk(p)
            }
            Err(e) => {
                tracing::warn!(%block, "cannot keep the checkpoint download on disk ({e}); in memory");
                Chunks::Memory(vec![None; n])
            }
        }
    }

    /// Number of chunks.
    pub(super) fn len(&self) -> usize {
        match self {
            Chunks::Memory(v) => v.len(),
            Chunks::Disk(p) => p.have.len(),
        }
    }

    /// Whether chunk `i` is present.
    pub(super) fn has(&self, i: usize) -> bool {
        match self {
            Chunks::Memory(v) => v.get(i).is_some_and(Option::is_some),
            Chunks::Disk(p) => p.have.get(i).copied().unwrap_or(false),
        }
    }

    /// Whether every chunk is present (and there is at least one).
    pub(super) fn complete(&self) -> bool {
        self.len() > 0 && (0..self.len()).all(|i| self.has(i))
    }

    /// Stores verified chunk `i` (on disk: data synced, then marked present).
    pub(super) fn put(&mut self, i: usize, data: Vec<u8>) -> io::Result<()> {
        match self {
            Chunks::Memory(v) => {
                if let Some(s) = v.get_mut(i) {
                    *s = Some(data);
                }
                Ok(())
            }
            Chunks::Disk(p) => p.put(i, &data),
        }
    }

    /// The completed download, for the validation worker.
    pub(super) fn finish(self, size: u64) -> CheckpointData {
        match self {
            Chunks::Memory(v) => {
                let mut bytes = Vec::with_capacity(size as usize);
                for c in v.into_iter().flatten() {
                    bytes.extend_from_slice(&c);
                }
                CheckpointData::Bytes(bytes)
            }
            Chunks::Disk(p) => CheckpointData::File { part: p.part_path, have: p.have_path, size },
        }
    }

    /// Drops an abandoned download, deleting its partial file.
    pub(super) fn discard(self) {
        if let Chunks::Disk(p) = self {
            remove_pair(&p.part_path, &p.have_path);
        }
    }
}

impl PartialFile {
    fn open(dir: &Path, block: &BlockHash, hashes: &[[u8; 32]], size: u64) -> io::Result<Self> {
        let n = hashes.len();
        let (part_path, have_path) = paths(dir, block);
        if let Some(d) = part_path.parent() {
            fs::create_dir_all(d)?;
        }
        let opts = || {
            let mut o = OpenOptions::new();
            o.read(true).write(true).create(true).truncate(false);
            o
        };
        let mut part = opts().open(&part_path)?;
        let mut have_file = opts().open(&have_path)?;
        let mut marks = Vec::new();
        have_file.read_to_end(&mut marks)?;
        let mut have = vec![false; n];
        if marks.len() == n {
            let mut buf = vec![0u8; CHUNK_SIZE];
            for (i, h) in have.iter_mut().enumerate() {
                if marks[i] != 1 {
                    continue;
                }
                let (start, len) = chunk_range(size, i);
                let ok = part.seek(SeekFrom::Start(start)).is_ok()
                    && part.read_exact(&mut buf[..len]).is_ok()
                    && verify_chunk(hashes, i, &buf[..len]);
                *h = ok;
            }
        }
        let marks: Vec<u8> = have.iter().map(|h| u8::from(*h)).collect();
        have_file.set_len(0)?;
        have_file.seek(SeekFrom::Start(0))?;
        have_file.write_all(&marks)?;
        part.set_len(size)?;
        Ok(Self { part_path, have_path, part, have_file, have })
    }

    fn put(&mut self, i: usize, data: &[u8]) -> io::Result<()> {
        if i >= self.have.len() {
            return Ok(());
        }
        self.part.seek(SeekFrom::Start(i as u64 * CHUNK_SIZE as u64))?;
        self.part.write_all(data)?;
        self.part.sync_data()?;
        self.have_file.seek(SeekFrom::Start(i as u64))?;
        self.have_file.write_all(&[1])?;
        self.have[i] = true;
        Ok(())
    }
}

impl CheckpointData {
    /// The checkpoint bytes: a partial file is read once (its length must be `size`).
    pub(super) fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            CheckpointData::Bytes(b) => Ok(b),
            CheckpointData::File { part, size, .. } => {
                let b = fs::read(part)?;
                if b.len() as u64 != size {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("partial file holds {} of {size} bytes", b.len()),
                    ));
                }
                Ok(b)
            }
        }
    }

    /// The partial file and sidecar behind the data, if any (to delete after validation).
    pub(super) fn files(&self) -> Option<(PathBuf, PathBuf)> {
        match self {
            CheckpointData::Bytes(_) => None,
            CheckpointData::File { part, have, .. } => Some((part.clone(), have.clone())),
        }
    }
}

/// Deletes a partial file and its sidecar (missing ones are fine).
pub(super) fn remove_pair(part: &Path, have: &Path) {
    for p in [part, have] {
        if let Err(e) = fs::remove_file(p) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("cannot delete {}: {e}", p.display());
            }
        }
    }
}

/// Deletes stale partial downloads under `<netdir>/downloads/`: those of blocks not in `active`
/// that are no longer `wanted`, those untouched for [`PARTIAL_MAX_AGE`], then the oldest inactive
/// ones while the partial files total more than [`MAX_PARTIAL_BYTES`]. Files whose names are not
/// `<blockhash>.part`/`.have` are left alone. Returns how many downloads were deleted.
pub(super) fn sweep(
    netdir: &Path,
    active: &HashSet<BlockHash>,
    wanted: impl Fn(&BlockHash) -> bool,
    now: SystemTime,
) -> usize {
    let dir = netdir.join(DOWNLOADS_DIR);
    let Ok(entries) = fs::read_dir(&dir) else { return 0 };
    // Per block: (newest modification time, total bytes).
    let mut found: HashMap<BlockHash, (SystemTime, u64)> = HashMap::new();
    for e in entries.flatten() {
        let path = e.path();
        let ext = path.extension().and_then(|x| x.to_str());
        if ext != Some(PART_EXT) && ext != Some(HAVE_EXT) {
            continue;
        }
        let Some(block) = path.file_stem().and_then(|s| s.to_str()).and_then(parse_hash) else {
            continue;
        };
        let Ok(md) = e.metadata() else { continue };
        let t = md.modified().unwrap_or(now);
        let entry = found.entry(block).or_insert((SystemTime::UNIX_EPOCH, 0));
        entry.0 = entry.0.max(t);
        entry.1 += md.len();
    }
    let mut keep: Vec<(BlockHash, SystemTime, u64)> = Vec::new();
    let mut deleted = 0;
    for (block, (t, bytes)) in found {
        if active.contains(&block) {
            continue;
        }
        let old = now.duration_since(t).is_ok_and(|age| age > PARTIAL_MAX_AGE);
        if old || !wanted(&block) {
            let (p, h) = paths(netdir, &block);
            remove_pair(&p, &h);
            deleted += 1;
        } else {
            keep.push((block, t, bytes));
        }
    }
    let mut total: u64 = keep.iter().map(|k| k.2).sum();
    keep.sort_by_key(|k| k.1);
    for (block, _, bytes) in keep {
        if total <= MAX_PARTIAL_BYTES {
            break;
        }
        let (p, h) = paths(netdir, &block);
        remove_pair(&p, &h);
        total -= bytes;
        deleted += 1;
    }
    if deleted > 0 {
        tracing::info!(deleted, "deleted stale partial checkpoint downloads");
    }
    deleted
}

fn parse_hash(s: &str) -> Option<BlockHash> {
    let v = hex::decode(s).ok()?;
    Some(BlockHash(v.try_into().ok()?))
}
