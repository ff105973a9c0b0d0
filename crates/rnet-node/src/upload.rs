//! Checkpoint uploads in parts (`uploadcheckpointpart`): a mainnet checkpoint (~42 MB) does not
//! fit one RPC body, so it is sent as consecutive parts of at most [`MAX_PART`] bytes, appended
//! in order (`offset` = bytes received so far; a repeated part is accepted again). Nothing is
//! verified until the last byte arrives; the caller then checks the chunk root.
//!
//! Memory is bounded: at most [`MAX_UPLOADS`] uploads in progress and [`MAX_TOTAL_BYTES`]
//! received bytes over all of them; starting another upload (or growing one past the cap)
//! evicts the oldest.

use std::collections::VecDeque;

use rnet_model::checkpoint::CHUNK_SIZE;
use rnet_primitives::Hash256;

/// Largest part (1 MiB, one checkpoint chunk).
pub const MAX_PART: usize = CHUNK_SIZE;
/// Largest checkpoint that may be uploaded in parts.
pub const MAX_UPLOAD_SIZE: u64 = 256 << 20;
/// Uploads in progress at once.
pub const MAX_UPLOADS: usize = 4;
/// Bytes held over all uploads in progress.
pub const MAX_TOTAL_BYTES: usize = 320 << 20;

/// Why a part was refused (all map to RPC -8).
#[derive(Debug, PartialEq, Eq)]
pub enum UploadError {
    /// `total_size` is 0 or above [`MAX_UPLOAD_SIZE`].
    BadSize(u64),
    /// The part is empty or larger than [`MAX_PART`].
    BadPart(usize),
    /// The same id was started with another total size.
    SizeMismatch {
        /// The size the upload started with.
        expected: u64,
        /// The size given now.
        got: u64,
    },
    /// The offset is not the number of bytes received so far (nor a repeat of a received part).
    BadOffset {
        /// Bytes received so far.
        expected: u64,
        /// The offset given.
        got: u64,
    },
    /// The part runs past `total_size`.
    PastEnd,
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadSize(s) => write!(f, "total_size {s} out of range (1..={MAX_UPLOAD_SIZE})"),
            Self::BadPart(n) => write!(f, "part size {n} out of range (1..={MAX_PART})"),
            Self::SizeMismatch { expected, got } => {
                write!(f, "total_size mismatch: upload started with {expected}, got {got}")
            }
            Self::BadOffset { expected, got } => {
                write!(f, "offset out of range: expected {expected}, got {got}")
            }
            Self::PastEnd => write!(f, "part runs past total_size"),
        }
    }
}

/// Result of adding a part.
#[derive(Debug, PartialEq, Eq)]
pub enum PartOutcome {
    /// More bytes are needed; this many are held.
    Partial(u64),
    /// The upload is complete (and removed): the assembled bytes.
    Complete(Vec<u8>),
}

struct Upload {
    id: Hash256,
    total: u64,
    data: Vec<u8>,
}

/// The uploads in progress, oldest first.
#[derive(Default)]
pub struct Uploads {
    list: VecDeque<Upload>,
}

impl Uploads {
    /// Adds `part` at `offset` of the upload `id` of `total` bytes.
    pub fn add_part(
        &mut self,
        id: Hash256,
        total: u64,
        offset: u64,
        part: &[u8],
    ) -> Result<PartOutcome, UploadError> {
        if total == 0 || total > MAX_UPLOAD_SIZE {
            return Err(UploadError::BadSize(total));
        }
        if part.is_empty() || part.len() > MAX_PART {
            return Err(UploadError::BadPart(part.len()));
        }
        let end = offset.checked_add(part.len() as u64).ok_or(UploadError::PastEnd)?;
        if end > total {
            return Err(UploadError::PastEnd);
        }
        let pos = match self.list.iter().position(|u| u.id == id) {
            Some(i) => {
                let u = &self.list[i];
                if u.total != total {
                    return Err(UploadError::SizeMismatch { expected: u.total, got: total });
                }
                let have = u.data.len() as u64;
                if end <= have && u.data[offset as usize..end as usize] == *part {
                    return Ok(PartOutcome::Partial(have));
                }
                if offset != have {
                    return Err(UploadError::BadOffset { expected: have, got: offset });
                }
                i
            }
            None => {
                if offset != 0 {
                    return Err(UploadError::BadOffset { expected: 0, got: offset });
                }
                if self.list.len() >= MAX_UPLOADS {
                    self.list.pop_front();
                }
                self.list.push_back(Upload { id, total, data: Vec::new() });
                self.list.len() - 1
            }
        };
        // Keep the total bounded: evict the oldest other uploads.
        let mut pos = pos;
        while self.held() + part.len() > MAX_TOTAL_BYTES && self.list.len() > 1 {
            let victim = if pos == 0 { 1 } else { 0 };
            self.list.remove(victim);
            if victim < pos {
                pos -= 1;
            }
        }
        let u = &mut self.list[pos];
        u.data.extend_from_slice(part);
        if u.data.len() as u64 == u.total {
            let u = self.list.remove(pos).expect("present");
            return Ok(PartOutcome::Complete(u.data));
        }
        Ok(PartOutcome::Partial(u.data.len() as u64))
    }

    /// Uploads in progress.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether no upload is in progress.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.list.iter().map(|u| u.data.len()).sum()
    }

    /// Drops the upload `id` (after a failed verification).
    pub fn remove(&mut self, id: &Hash256) {
        self.list.retain(|u| u.id != *id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Hash256 {
        Hash256([n; 32])
    }

    #[test]
    fn assembles_in_order_and_rejects_gaps() {
        let mut u = Uploads::default();
        let data: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
        assert_eq!(u.add_part(id(1), 250, 0, &data[..100]), Ok(PartOutcome::Partial(100)));
        // A repeat of a received part is fine; a gap or an overlap with other data is not.
        assert_eq!(u.add_part(id(1), 250, 0, &data[..100]), Ok(PartOutcome::Partial(100)));
        assert_eq!(
            u.add_part(id(1), 250, 150, &data[150..200]),
            Err(UploadError::BadOffset { expected: 100, got: 150 })
        );
        assert_eq!(
            u.add_part(id(1), 251, 100, &data[100..200]),
            Err(UploadError::SizeMismatch { expected: 250, got: 251 })
        );
        assert_eq!(u.add_part(id(1), 250, 100, &[0; 151]), Err(UploadError::PastEnd));
        assert_eq!(u.add_part(id(1), 250, 100, &data[100..200]), Ok(PartOutcome::Partial(200)));
        assert_eq!(u.add_part(id(1), 250, 200, &data[200..]), Ok(PartOutcome::Complete(data)));
        assert!(u.is_empty());
        assert_eq!(u.add_part(id(2), 0, 0, &[1]), Err(UploadError::BadSize(0)));
        assert_eq!(u.add_part(id(2), 10, 0, &[]), Err(UploadError::BadPart(0)));
        assert_eq!(
            u.add_part(id(2), 10, 3, &[1]),
            Err(UploadError::BadOffset { expected: 0, got: 3 })
        );
        assert_eq!(u.add_part(id(2), u64::MAX, 0, &[1]), Err(UploadError::BadSize(u64::MAX)));
    }

    #[test]
    fn bounded_oldest_evicted() {
        let mut u = Uploads::default();
        for n in 0..MAX_UPLOADS as u8 + 2 {
            u.add_part(id(n), 10, 0, &[n]).unwrap();
        }
        assert_eq!(u.len(), MAX_UPLOADS);
        // The two oldest are gone: continuing them fails.
        assert_eq!(
            u.add_part(id(0), 10, 1, &[0]),
            Err(UploadError::BadOffset { expected: 0, got: 1 })
        );
        assert_eq!(u.held(), MAX_UPLOADS);
        // Byte cap: fill past MAX_TOTAL_BYTES with two big uploads; the older is evicted.
        let mut u = Uploads::default();
        let part = vec![7u8; MAX_PART];
        let per = (MAX_TOTAL_BYTES / MAX_PART) as u64 / 2 + 1;
        for a in 0..2u8 {
            for i in 0..per {
                u.add_part(id(a), MAX_UPLOAD_SIZE, i * MAX_PART as u64, &part).unwrap();
            }
        }
        assert!(u.held() <= MAX_TOTAL_BYTES);
        assert_eq!(u.len(), 1);
    }
}
