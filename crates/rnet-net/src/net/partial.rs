//! Where a model object download keeps its verified chunks: with a network data directory, in a
//! partial file on disk (`<netdir>/downloads/<blockhash>.part` for a checkpoint,
//! `<blockhash>.update.part` for an update; chunk `i` at `i * CHUNK_SIZE`) with a
//! one-byte-per-chunk presence sidecar (`<blockhash>.have`, `<blockhash>.update.have`), so memory
//! stays bounded, a block's update and checkpoint can download side by side, and a restarted node
//! resumes; without one (tests), in memory as before.
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

use crate::message::ModelObject;

use super::checkpoints::ObjectKey;
use super::{MAX_CHECKPOINT_FETCHES, MAX_CHECKPOINT_SIZE, MAX_UPDATE_FETCHES, MAX_UPDATE_SIZE};

/// Subdirectory of the network data directory holding partial model object downloads.
pub const DOWNLOADS_DIR: &str = "downloads";
/// A partial download untouched for this long is deleted by the sweep.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Total size of partial files kept; beyond it the sweep deletes the oldest inactive ones (room
/// for the largest checkpoints and updates of all concurrent downloads).
pub const MAX_PARTIAL_BYTES: u64 = MAX_CHECKPOINT_FETCHES as u64 * MAX_CHECKPOINT_SIZE
    + MAX_UPDATE_FETCHES as u64 * MAX_UPDATE_SIZE;

const PART_EXT: &str = "part";
const HAVE_EXT: &str = "have";
/// What an update's file names add after the block hash (checkpoints add nothing, as before).
const UPDATE_INFIX: &str = ".update";

/// The received chunks of one model object download.
pub(super) enum Chunks {
    /// In memory (no network data directory).
    Memory(Vec<Option<Vec<u8>>>),
    /// In a partial file on disk.
    Disk(PartialFile),
}

/// A model object download's partial file and presence sidecar.
pub(super) struct PartialFile {
    part_path: PathBuf,
    have_path: PathBuf,
    part: File,
    have_file: File,
    have: Vec<bool>,
}

/// A completed download handed to the validation worker.
pub(super) enum ObjectData {
    /// The bytes themselves.
    Bytes(Vec<u8>),
    /// A complete partial file of `size` bytes (and its sidecar), read by the worker and deleted
    /// after `accept_update`/`accept_checkpoint`, whatever its verdict.
    File { part: PathBuf, have: PathBuf, size: u64 },
}

/// The partial file and sidecar of a block's object.
fn paths(dir: &Path, (block, kind): &ObjectKey) -> (PathBuf, PathBuf) {
    let d = dir.join(DOWNLOADS_DIR);
    let infix = match kind {
        ModelObject::Checkpoint => "",
        ModelObject::Update => UPDATE_INFIX,
    };
    let name = format!("{}{infix}", block.to_hex());
    (d.join(format!("{name}.{PART_EXT}")), d.join(format!("{name}.{HAVE_EXT}")))
}

/// The object a file stem (`<blockhash>` or `<blockhash>.update`) names.
fn parse_stem(stem: &str) -> Option<ObjectKey> {
    match stem.strip_suffix(UPDATE_INFIX) {
        Some(hash) => Some((parse_hash(hash)?, ModelObject::Update)),
        None => Some((parse_hash(stem)?, ModelObject::Checkpoint)),
    }
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
        key: ObjectKey,
        hashes: &[[u8; 32]],
        size: u64,
    ) -> Self {
        let n = hashes.len();
        let Some(dir) = netdir else { return Chunks::Memory(vec![None; n]) };
        let (block, kind) = key;
        match PartialFile::open(dir, &key, hashes, size) {
            Ok(p) => {
                let kept = p.have.iter().filter(|h| **h).count();
                if kept > 0 {
                    tracing::info!(%block, kept, of = n, "resuming a partial {kind} download");
                }
                Chunks::Disk(p)
            }
            Err(e) => {
                tracing::warn!(%block, "cannot keep the {kind} download on disk ({e}); in memory");
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
    pub(super) fn finish(self, size: u64) -> ObjectData {
        match self {
            Chunks::Memory(v) => {
                let mut bytes = Vec::with_capacity(size as usize);
                for c in v.into_iter().flatten() {
                    bytes.extend_from_slice(&c);
                }
                ObjectData::Bytes(bytes)
            }
            Chunks::Disk(p) => ObjectData::File { part: p.part_path, have: p.have_path, size },
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
    fn open(dir: &Path, key: &ObjectKey, hashes: &[[u8; 32]], size: u64) -> io::Result<Self> {
        let n = hashes.len();
        let (part_path, have_path) = paths(dir, key);
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

impl ObjectData {
    /// The object's bytes: a partial file is read once (its length must be `size`).
    pub(super) fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            ObjectData::Bytes(b) => Ok(b),
            ObjectData::File { part, size, .. } => {
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
            ObjectData::Bytes(_) => None,
            ObjectData::File { part, have, .. } => Some((part.clone(), have.clone())),
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

/// Deletes stale partial downloads under `<netdir>/downloads/`: those of objects not in `active`
/// that are no longer `wanted`, those untouched for [`PARTIAL_MAX_AGE`], then the oldest inactive
/// ones while the partial files total more than [`MAX_PARTIAL_BYTES`]. Files whose names are not
/// `<blockhash>[.update].part`/`.have` are left alone. Returns how many downloads were deleted.
pub(super) fn sweep(
    netdir: &Path,
    active: &HashSet<ObjectKey>,
    wanted: impl Fn(&ObjectKey) -> bool,
    now: SystemTime,
) -> usize {
    let dir = netdir.join(DOWNLOADS_DIR);
    let Ok(entries) = fs::read_dir(&dir) else { return 0 };
    // Per object: (newest modification time, total bytes).
    let mut found: HashMap<ObjectKey, (SystemTime, u64)> = HashMap::new();
    for e in entries.flatten() {
        let path = e.path();
        let ext = path.extension().and_then(|x| x.to_str());
        if ext != Some(PART_EXT) && ext != Some(HAVE_EXT) {
            continue;
        }
        let Some(key) = path.file_stem().and_then(|s| s.to_str()).and_then(parse_stem) else {
            continue;
        };
        let Ok(md) = e.metadata() else { continue };
        let t = md.modified().unwrap_or(now);
        let entry = found.entry(key).or_insert((SystemTime::UNIX_EPOCH, 0));
        entry.0 = entry.0.max(t);
        entry.1 += md.len();
    }
    let mut keep: Vec<(ObjectKey, SystemTime, u64)> = Vec::new();
    let mut deleted = 0;
    for (key, (t, bytes)) in found {
        if active.contains(&key) {
            continue;
        }
        let old = now.duration_since(t).is_ok_and(|age| age > PARTIAL_MAX_AGE);
        if old || !wanted(&key) {
            let (p, h) = paths(netdir, &key);
            remove_pair(&p, &h);
            deleted += 1;
        } else {
            keep.push((key, t, bytes));
        }
    }
    let mut total: u64 = keep.iter().map(|k| k.2).sum();
    keep.sort_by_key(|k| k.1);
    for (key, _, bytes) in keep {
        if total <= MAX_PARTIAL_BYTES {
            break;
        }
        let (p, h) = paths(netdir, &key);
        remove_pair(&p, &h);
        total -= bytes;
        deleted += 1;
    }
    if deleted > 0 {
        tracing::info!(deleted, "deleted stale partial model downloads");
    }
    deleted
}

fn parse_hash(s: &str) -> Option<BlockHash> {
    let v = hex::decode(s).ok()?;
    Some(BlockHash(v.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_model::checkpoint::chunk_hashes;

    /// A block's update and checkpoint have their own partial files, both resume, and the
    /// sweep tells them apart by kind.
    #[test]
    fn update_and_checkpoint_downloads_are_kept_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let block = BlockHash([0x42; 32]);
        let ck = (block, ModelObject::Checkpoint);
        let up = (block, ModelObject::Update);
        let (ck_part, ck_have) = paths(&dir, &ck);
        let (up_part, up_have) = paths(&dir, &up);
        let name = block.to_hex();
        assert!(
            ck_part.ends_with(format!("{name}.part")) && ck_have.ends_with(format!("{name}.have"))
        );
        assert!(up_part.ends_with(format!("{name}.update.part")));
        assert!(up_have.ends_with(format!("{name}.update.have")));
        assert_eq!(parse_stem(&name), Some(ck));
        assert_eq!(parse_stem(&format!("{name}.update")), Some(up));
        assert_eq!(parse_stem(&format!("{name}.other")), None);

        // Two chunks of each; one chunk of each stored, then both reopened.
        let ck_bytes = vec![1u8; CHUNK_SIZE + 10];
        let up_bytes = vec![2u8; CHUNK_SIZE + 20];
        let (ck_hashes, up_hashes) = (chunk_hashes(&ck_bytes), chunk_hashes(&up_bytes));
        let size = |b: &Vec<u8>| b.len() as u64;
        let mut c = Chunks::open(Some(&dir), ck, &ck_hashes, size(&ck_bytes));
        let mut u = Chunks::open(Some(&dir), up, &up_hashes, size(&up_bytes));
        assert!(matches!(c, Chunks::Disk(_)) && matches!(u, Chunks::Disk(_)));
        c.put(0, ck_bytes[..CHUNK_SIZE].to_vec()).unwrap();
        u.put(1, up_bytes[CHUNK_SIZE..].to_vec()).unwrap();
        drop((c, u));
        let c = Chunks::open(Some(&dir), ck, &ck_hashes, size(&ck_bytes));
        let u = Chunks::open(Some(&dir), up, &up_hashes, size(&up_bytes));
        assert!(c.has(0) && !c.has(1), "the checkpoint resumes with its own chunk");
        assert!(!u.has(0) && u.has(1), "the update resumes with its own chunk");
        drop((c, u));

        // The sweep asks about each object by kind: here only the update is still wanted.
        let asked = std::cell::RefCell::new(Vec::new());
        let wanted = |k: &ObjectKey| {
            asked.borrow_mut().push(*k);
            k.1 == ModelObject::Update
        };
        let deleted = sweep(&dir, &HashSet::new(), wanted, SystemTime::now());
        assert_eq!(deleted, 1);
        let mut asked = asked.into_inner();
        asked.sort();
        assert_eq!(asked, vec![ck, up]);
        assert!(!ck_part.exists() && !ck_have.exists(), "the unwanted checkpoint download goes");
        assert!(up_part.exists() && up_have.exists(), "the wanted update download stays");
    }
}
