//! Model updates: what a block will carry instead of a whole checkpoint, and their canonical bytes.
//!
//! An update says how to turn the parent's model, grown to the scheduled shape, into the block's
//! model: a list of per-tensor entries in schema order, each either a full replacement of the
//! tensor or an additive low-rank product `W += U·V`. Applying one (and its consensus checks) is
//! in [`crate::update_apply`]; `docs/protocol.md` Part III §5.2 is the normative text.
//!
//! Layout (all integers little-endian, values f32 LE):
//!
//! | size | field |
//! |---|---|
//! | 8 | magic `RNETUPDT` |
//! | 4 | format version, u32 = 1 |
//! | 4 × 5 | target shape: `d_model`, `n_layers`, `n_slots`, `d_ff`, `window`, u32 each |
//! | 4 | number of conv branches `B`, u32 |
//! | 4·B | kernel sizes, u32 each |
//! | 4 | entry count `E`, u32 |
//! | … | `E` entries |
//!
//! Entry: tensor index (schema order) u32, kind u8, `rows` u32, `cols` u32, then for kind 0
//! (replace) `rows·cols` values row-major; for kind 1 (low rank) `rank` u32, `U [rows, rank]`
//! row-major, `V [rank, cols]` row-major. A tensor of shape `[n]` is viewed as `[1, n]`.
//!
//! Decoding is strict: every field is checked before anything is allocated from it, sizes are
//! computed with overflow checks and compared with the bytes present, tensor indices must be
//! strictly increasing, and nothing may follow the last entry. The encoding is canonical: an
//! accepted byte string re-encodes to itself.

use thiserror::Error;

use crate::config::{ConfigError, MAX_CONV_BRANCHES, ModelConfig};

/// The 8-byte magic at the start of every update.
pub const UPDATE_MAGIC: [u8; 8] = *b"RNETUPDT";
/// The only update format version this code reads and writes.
pub const UPDATE_FORMAT_VERSION: u32 = 1;
/// Entry kind byte of a full replacement.
pub const KIND_REPLACE: u8 = 0;
/// Entry kind byte of an additive low-rank product.
pub const KIND_LOW_RANK: u8 = 1;
/// Bytes before the kernel-size list: magic, version, five shape fields, branch count.
const FIXED_HEADER: usize = 8 + 4 + 5 * 4 + 4;
/// Bytes of an entry before its payload: index, kind, rows, cols.
const ENTRY_HEADER: usize = 4 + 1 + 4 + 4;

/// Why bytes (or parts handed to a constructor) are not a well-formed update. Format only: whether
/// the update fits a model and the limits is checked when it is applied.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UpdateFormatError {
    /// Fewer bytes than the next field or payload needs.
    #[error("update truncated: need {needed} bytes, have {got}")]
    Truncated {
        /// Bytes needed up to the end of the field being read.
        needed: u64,
        /// Bytes present.
        got: u64,
    },
    /// Bytes left after the last entry.
    #[error("update has {got} bytes, the entries end at {expected} (trailing data)")]
    TrailingBytes {
        /// Where the last entry ends.
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// The first 8 bytes are not [`UPDATE_MAGIC`].
    #[error("bad update magic {0:02x?}")]
    BadMagic([u8; 8]),
    /// A format version other than [`UPDATE_FORMAT_VERSION`].
    #[error("unsupported update format version {0}")]
    UnsupportedVersion(u32),
    /// The declared target shape is not a valid V5 config.
    #[error("invalid target shape in update header: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// An entry kind byte that is neither [`KIND_REPLACE`] nor [`KIND_LOW_RANK`].
    #[error("entry {entry}: unknown kind {kind}")]
    UnknownKind {
        /// Entry position.
        entry: usize,
        /// The kind byte.
        kind: u8,
    },
    /// An entry with zero rows or zero columns (no tensor is empty).
    #[error("entry {entry}: zero rows or columns")]
    ZeroDimension {
        /// Entry position.
        entry: usize,
    },
    /// A low-rank entry of rank 0.
    #[error("entry {entry}: low-rank entry of rank 0")]
    ZeroRank {
        /// Entry position.
        entry: usize,
    },
    /// Two entries name the same tensor.
    #[error("entry {entry}: tensor {tensor} appears twice")]
    DuplicateTensor {
        /// Entry position of the second occurrence.
        entry: usize,
        /// The repeated tensor index.
        tensor: u32,
    },
    /// An entry names a tensor that comes before the previous entry's in schema order.
    #[error("entry {entry}: tensor {tensor} after tensor {previous} (not schema order)")]
    OutOfOrder {
        /// Entry position.
        entry: usize,
        /// This entry's tensor index.
        tensor: u32,
        /// The previous entry's tensor index.
        previous: u32,
    },
    /// A payload size (`rows·cols`, `rows·rank`, `rank·cols`, in bytes) overflows 64 bits.
    #[error("entry {entry}: payload size overflows")]
    SizeOverflow {
        /// Entry position.
        entry: usize,
    },
    /// A constructor was handed a value buffer of the wrong length for the declared dimensions.
    #[error("payload has {got} values, the dimensions need {expected}")]
    PayloadLength {
        /// Values the dimensions need.
        expected: u64,
        /// Values supplied.
        got: u64,
    },
    /// More entries than a u32 count can declare.
    #[error("{0} entries do not fit the u32 entry count")]
    TooManyEntries(usize),
}

/// What an entry does to its tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// The tensor becomes these values (row-major, `rows·cols` of them).
    Replace(Vec<f32>),
    /// `W[i, j] += Σ_k U[i, k]·V[k, j]` (order and rounding: protocol Part III §5.2).
    LowRank {
        /// Inner dimension `r ≥ 1`.
        rank: u32,
        /// `U [rows, rank]`, row-major.
        u: Vec<f32>,
        /// `V [rank, cols]`, row-major.
        v: Vec<f32>,
    },
}

/// One per-tensor entry: the tensor's schema index, the dimensions the entry claims for it and the
/// change. The dimensions are checked against the model when the update is applied.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateEntry {
    tensor: u32,
    rows: u32,
    cols: u32,
    change: Change,
}

impl UpdateEntry {
    /// An entry for tensor `tensor` (schema index) viewed as `[rows, cols]`; checks only that the
    /// dimensions and rank are non-zero and the payload lengths match them (`entry` in errors is 0).
    pub fn new(
        tensor: u32,
        rows: u32,
        cols: u32,
        change: Change,
    ) -> Result<Self, UpdateFormatError> {
        if rows == 0 || cols == 0 {
            return Err(UpdateFormatError::ZeroDimension { entry: 0 });
        }
        let (r, c) = (rows as u64, cols as u64);
        let check = |expected: u64, got: usize| {
            if got as u64 == expected {
                Ok(())
            } else {
                Err(UpdateFormatError::PayloadLength { expected, got: got as u64 })
            }
        };
        match &change {
            Change::Replace(values) => check(r * c, values.len())?,
            Change::LowRank { rank, u, v } => {
                if *rank == 0 {
                    return Err(UpdateFormatError::ZeroRank { entry: 0 });
                }
                check(r * *rank as u64, u.len())?;
                check(*rank as u64 * c, v.len())?;
            }
        }
        Ok(Self { tensor, rows, cols, change })
    }

    /// Schema index of the tensor this entry changes.
    pub fn tensor(&self) -> u32 {
        self.tensor
    }

    /// The `[rows, cols]` the entry claims for its tensor.
    pub fn dims(&self) -> (u32, u32) {
        (self.rows, self.cols)
    }

    /// The change.
    pub fn change(&self) -> &Change {
        &self.change
    }

    /// The rank of a low-rank entry, `None` for a replacement.
    pub fn rank(&self) -> Option<u32> {
        match self.change {
            Change::Replace(_) => None,
            Change::LowRank { rank, .. } => Some(rank),
        }
    }

    /// The payload values in encoding order (replacement values, or `U` then `V`).
    pub fn values(&self) -> impl Iterator<Item = f32> + '_ {
        let (a, b): (&[f32], &[f32]) = match &self.change {
            Change::Replace(values) => (values, &[]),
            Change::LowRank { u, v, .. } => (u, v),
        };
        a.iter().chain(b).copied()
    }

    /// Exact encoded length of this entry.
    pub fn encoded_len(&self) -> u64 {
        ENTRY_HEADER as u64
            + match &self.change {
                Change::Replace(values) => 4 * values.len() as u64,
                Change::LowRank { u, v, .. } => 4 + 4 * (u.len() + v.len()) as u64,
            }
    }
}

/// A block's model update: the shape it applies to and its entries in strictly increasing schema
/// order (at most one per tensor).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelUpdate {
    config: ModelConfig,
    entries: Vec<UpdateEntry>,
}

impl ModelUpdate {
    /// An update of a model of shape `config`; `entries` are sorted into schema order and a tensor
    /// named twice is an error.
    pub fn new(
        config: ModelConfig,
        mut entries: Vec<UpdateEntry>,
    ) -> Result<Self, UpdateFormatError> {
        config.validate()?;
        if u32::try_from(entries.len()).is_err() {
            return Err(UpdateFormatError::TooManyEntries(entries.len()));
        }
        entries.sort_by_key(|e| e.tensor);
        for (i, pair) in entries.windows(2).enumerate() {
            if pair[0].tensor == pair[1].tensor {
                return Err(UpdateFormatError::DuplicateTensor {
                    entry: i + 1,
                    tensor: pair[1].tensor,
                });
            }
        }
        Ok(Self { config, entries })
    }

    /// The shape of the (grown) model this update applies to.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The entries, in schema order.
    pub fn entries(&self) -> &[UpdateEntry] {
        &self.entries
    }

    /// Exact length of [`ModelUpdate::encode`] (computed without encoding).
    pub fn encoded_len(&self) -> u64 {
        header_len(self.config.kernel_sizes.len()) as u64
            + self.entries.iter().map(UpdateEntry::encoded_len).sum::<u64>()
    }

    /// The canonical bytes (module docs).
    pub fn encode(&self) -> Vec<u8> {
        let c = &self.config;
        let mut out = Vec::with_capacity(usize::try_from(self.encoded_len()).unwrap_or(0));
        out.extend_from_slice(&UPDATE_MAGIC);
        out.extend_from_slice(&UPDATE_FORMAT_VERSION.to_le_bytes());
        for v in [c.d_model, c.n_layers, c.n_slots, c.d_ff, c.window, c.kernel_sizes.len()] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for &k in &c.kernel_sizes {
            out.extend_from_slice(&(k as u32).to_le_bytes());
        }
        // `new` and `decode` both bound the count by u32.
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.tensor.to_le_bytes());
            let kind = match e.change {
                Change::Replace(_) => KIND_REPLACE,
                Change::LowRank { .. } => KIND_LOW_RANK,
            };
            out.push(kind);
            out.extend_from_slice(&e.rows.to_le_bytes());
            out.extend_from_slice(&e.cols.to_le_bytes());
            if let Change::LowRank { rank, .. } = e.change {
                out.extend_from_slice(&rank.to_le_bytes());
            }
            for v in e.values() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Strictly parses canonical bytes (module docs). Never allocates more than the input's size.
    pub fn decode(bytes: &[u8]) -> Result<Self, UpdateFormatError> {
        let mut r = Reader { bytes, at: 0 };
        let mut magic = [0u8; 8];
        magic.copy_from_slice(r.take(8)?);
        if magic != UPDATE_MAGIC {
            return Err(UpdateFormatError::BadMagic(magic));
        }
        let version = r.u32()?;
        if version != UPDATE_FORMAT_VERSION {
            return Err(UpdateFormatError::UnsupportedVersion(version));
        }
        let mut shape = [0usize; 5];
        for s in &mut shape {
            *s = r.u32()? as usize;
        }
        let n_branches = r.u32()? as usize;
        if n_branches == 0 || n_branches > MAX_CONV_BRANCHES {
            return Err(ConfigError::BranchCount(n_branches).into());
        }
        let mut kernel_sizes = Vec::with_capacity(n_branches);
        for _ in 0..n_branches {
            kernel_sizes.push(r.u32()? as usize);
        }
        let [d_model, n_layers, n_slots, d_ff, window] = shape;
        let config = ModelConfig { d_model, n_layers, n_slots, d_ff, window, kernel_sizes };
        config.validate()?;
        let count = r.u32()? as usize;
        // Every entry takes at least ENTRY_HEADER + 4 bytes: never reserve more than the input
        // can hold.
        let mut entries = Vec::with_capacity(count.min(r.remaining() / (ENTRY_HEADER + 4)));
        let mut previous: Option<u32> = None;
        for entry in 0..count {
            let tensor = r.u32()?;
            if let Some(previous) = previous {
                if tensor == previous {
                    return Err(UpdateFormatError::DuplicateTensor { entry, tensor });
                }
                if tensor < previous {
                    return Err(UpdateFormatError::OutOfOrder { entry, tensor, previous });
                }
            }
            previous = Some(tensor);
            let kind = r.u8()?;
            if kind != KIND_REPLACE && kind != KIND_LOW_RANK {
                return Err(UpdateFormatError::UnknownKind { entry, kind });
            }
            let rows = r.u32()?;
            let cols = r.u32()?;
            if rows == 0 || cols == 0 {
                return Err(UpdateFormatError::ZeroDimension { entry });
            }
            let overflow = || UpdateFormatError::SizeOverflow { entry };
            let change = if kind == KIND_REPLACE {
                let n = (rows as u64).checked_mul(cols as u64).ok_or_else(overflow)?;
                Change::Replace(r.f32s(n, entry)?)
            } else {
                let rank = r.u32()?;
                if rank == 0 {
                    return Err(UpdateFormatError::ZeroRank { entry });
                }
                let nu = (rows as u64).checked_mul(rank as u64).ok_or_else(overflow)?;
                let nv = (rank as u64).checked_mul(cols as u64).ok_or_else(overflow)?;
                // Check the whole payload is present before allocating either factor.
                let total = nu.checked_add(nv).ok_or_else(overflow)?;
                r.need_values(total, entry)?;
                let u = r.f32s(nu, entry)?;
                let v = r.f32s(nv, entry)?;
                Change::LowRank { rank, u, v }
            };
            entries.push(UpdateEntry { tensor, rows, cols, change });
        }
        if r.at != bytes.len() {
            return Err(UpdateFormatError::TrailingBytes {
                expected: r.at as u64,
                got: bytes.len() as u64,
            });
        }
        Ok(Self { config, entries })
    }
}

/// Length of the update header (before the entries) for `n_branches` conv branches.
pub fn header_len(n_branches: usize) -> usize {
    FIXED_HEADER + 4 * n_branches + 4
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], UpdateFormatError> {
        if self.remaining() < n {
            return Err(UpdateFormatError::Truncated {
                needed: self.at as u64 + n as u64,
                got: self.bytes.len() as u64,
            });
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, UpdateFormatError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, UpdateFormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Errors unless `n` f32 values are present, with overflow-checked sizes.
    fn need_values(&self, n: u64, entry: usize) -> Result<usize, UpdateFormatError> {
        let len = n.checked_mul(4).ok_or(UpdateFormatError::SizeOverflow { entry })?;
        let needed =
            (self.at as u64).checked_add(len).ok_or(UpdateFormatError::SizeOverflow { entry })?;
        if needed > self.bytes.len() as u64 {
            return Err(UpdateFormatError::Truncated { needed, got: self.bytes.len() as u64 });
        }
        // `len` fits because it is at most the input's length.
        Ok(len as usize)
    }

    fn f32s(&mut self, n: u64, entry: usize) -> Result<Vec<f32>, UpdateFormatError> {
        let len = self.need_values(n, entry)?;
        let raw = self.take(len)?;
        Ok(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    use super::*;
    use crate::config::ModelNetwork;

    fn regtest() -> ModelConfig {
        ModelConfig::genesis(ModelNetwork::Regtest)
    }

    /// Two entries of each kind with awkward values (signed zeros, NaN bits survive the bytes).
    fn sample() -> ModelUpdate {
        let entries = vec![
            UpdateEntry::new(
                7,
                2,
                3,
                Change::LowRank { rank: 1, u: vec![1.0, -0.0], v: vec![0.5, f32::NAN, 3.0] },
            )
            .unwrap(),
            UpdateEntry::new(1, 1, 4, Change::Replace(vec![0.0, -1.5, 2.0, 1e-3])).unwrap(),
            UpdateEntry::new(
                40,
                3,
                2,
                Change::LowRank { rank: 2, u: vec![1.0; 6], v: vec![2.0, 3.0, 4.0, 5.0] },
            )
            .unwrap(),
        ];
        ModelUpdate::new(regtest(), entries).unwrap()
    }

    #[test]
    fn round_trip_is_canonical_and_sorted() {
        let u = sample();
        assert_eq!(u.entries().iter().map(|e| e.tensor()).collect::<Vec<_>>(), [1, 7, 40]);
        let bytes = u.encode();
        assert_eq!(bytes.len() as u64, u.encoded_len());
        assert_eq!(&bytes[..8], b"RNETUPDT");
        let back = ModelUpdate::decode(&bytes).unwrap();
        // NaN != NaN, so compare the bytes and the structure separately.
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.config(), u.config());
        assert_eq!(back.entries().len(), 3);
        // An empty update is valid (the block keeps the grown parent's model).
        let empty = ModelUpdate::new(regtest(), vec![]).unwrap();
        let b = empty.encode();
        assert_eq!(b.len(), header_len(3));
        assert_eq!(ModelUpdate::decode(&b).unwrap(), empty);
    }

    #[test]
    fn random_round_trips() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        for _ in 0..200 {
            let mut entries = Vec::new();
            let mut tensors: Vec<u32> =
                (0..1 + rng.next_u32() % 6).map(|_| rng.next_u32() % 50).collect();
            tensors.sort_unstable();
            tensors.dedup();
            for t in tensors {
                let rows = 1 + rng.next_u32() % 5;
                let cols = 1 + rng.next_u32() % 5;
                let change = if rng.next_u32() % 2 == 0 {
                    Change::Replace(
                        (0..rows * cols).map(|_| f32::from_bits(rng.next_u32())).collect(),
                    )
                } else {
                    let rank = 1 + (rng.next_u32() % 4);
                    let u = (0..rows * rank).map(|_| f32::from_bits(rng.next_u32())).collect();
                    let v = (0..rank * cols).map(|_| f32::from_bits(rng.next_u32())).collect();
                    Change::LowRank { rank, u, v }
                };
                entries.push(UpdateEntry::new(t, rows, cols, change).unwrap());
            }
            let u = ModelUpdate::new(regtest(), entries).unwrap();
            let bytes = u.encode();
            assert_eq!(bytes.len() as u64, u.encoded_len());
            assert_eq!(ModelUpdate::decode(&bytes).unwrap().encode(), bytes);
        }
    }

    /// Offset of entry `i`'s first byte in `sample()`'s encoding.
    fn entry_at(u: &ModelUpdate, i: usize) -> usize {
        header_len(3) + u.entries()[..i].iter().map(|e| e.encoded_len() as usize).sum::<usize>()
    }

    #[test]
    fn strict_decoding_rejects_each_defect() {
        let u = sample();
        let good = u.encode();
        let e1 = entry_at(&u, 1); // the rank-1 entry on tensor 7
        let e2 = entry_at(&u, 2);
        let set = |at: usize, v: u32| {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            ModelUpdate::decode(&b)
        };
        // Every cut short of the end is truncated; one extra byte is trailing.
        for cut in 0..good.len() {
            assert!(
                matches!(
                    ModelUpdate::decode(&good[..cut]),
                    Err(UpdateFormatError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            ModelUpdate::decode(&long),
            Err(UpdateFormatError::TrailingBytes {
                expected: good.len() as u64,
                got: good.len() as u64 + 1
            })
        );
        let mut b = good.clone();
        b[0] = b'X';
        assert!(matches!(ModelUpdate::decode(&b), Err(UpdateFormatError::BadMagic(_))));
        assert_eq!(set(8, 2), Err(UpdateFormatError::UnsupportedVersion(2)));
        assert!(matches!(set(12, 33), Err(UpdateFormatError::InvalidConfig(_))));
        assert!(matches!(set(32, 0), Err(UpdateFormatError::InvalidConfig(_))));
        assert!(matches!(set(32, 9), Err(UpdateFormatError::InvalidConfig(_))));
        // Unknown kind byte.
        let mut b = good.clone();
        b[e1 + 4] = 2;
        assert_eq!(
            ModelUpdate::decode(&b),
            Err(UpdateFormatError::UnknownKind { entry: 1, kind: 2 })
        );
        // Same tensor twice, then a tensor before its predecessor.
        assert_eq!(set(e1, 1), Err(UpdateFormatError::DuplicateTensor { entry: 1, tensor: 1 }));
        assert_eq!(
            set(e2, 3),
            Err(UpdateFormatError::OutOfOrder { entry: 2, tensor: 3, previous: 7 })
        );
        // Zero dimensions and zero rank.
        assert_eq!(set(e1 + 5, 0), Err(UpdateFormatError::ZeroDimension { entry: 1 }));
        assert_eq!(set(e1 + 9, 0), Err(UpdateFormatError::ZeroDimension { entry: 1 }));
        assert_eq!(set(e1 + 13, 0), Err(UpdateFormatError::ZeroRank { entry: 1 }));
        // Sizes that overflow 64 bits, and huge but representable ones (truncated, no
        // allocation).
        let mut b = good.clone();
        b[e1 + 5..e1 + 9].copy_from_slice(&u32::MAX.to_le_bytes());
        b[e1 + 9..e1 + 13].copy_from_slice(&u32::MAX.to_le_bytes());
        b[e1 + 13..e1 + 17].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            ModelUpdate::decode(&b),
            Err(UpdateFormatError::SizeOverflow { entry: 1 } | UpdateFormatError::Truncated { .. })
        ));
        assert!(matches!(set(e1 + 5, u32::MAX), Err(UpdateFormatError::Truncated { .. })));
        let first = entry_at(&u, 0);
        assert!(matches!(set(first + 5, u32::MAX), Err(UpdateFormatError::Truncated { .. })));
        // A huge entry count with no entries behind it.
        assert!(matches!(
            set(header_len(3) - 4, u32::MAX),
            Err(UpdateFormatError::Truncated { .. })
        ));
    }

    #[test]
    fn overflowing_low_rank_sizes_are_refused() {
        // rows·rank fits u64 but ·4 bytes does not, and rank·cols overflows outright.
        let mut b = ModelUpdate::new(regtest(), vec![]).unwrap().encode();
        let count = header_len(3) - 4;
        b[count..count + 4].copy_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.push(KIND_LOW_RANK);
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(ModelUpdate::decode(&b), Err(UpdateFormatError::SizeOverflow { entry: 0 }));
    }

    #[test]
    fn constructors_check_lengths_and_duplicates() {
        assert_eq!(
            UpdateEntry::new(0, 2, 2, Change::Replace(vec![0.0; 3])),
            Err(UpdateFormatError::PayloadLength { expected: 4, got: 3 })
        );
        assert_eq!(
            UpdateEntry::new(0, 2, 2, Change::LowRank { rank: 0, u: vec![], v: vec![] }),
            Err(UpdateFormatError::ZeroRank { entry: 0 })
        );
        assert_eq!(
            UpdateEntry::new(
                0,
                2,
                3,
                Change::LowRank { rank: 1, u: vec![0.0; 2], v: vec![0.0; 2] }
            ),
            Err(UpdateFormatError::PayloadLength { expected: 3, got: 2 })
        );
        assert_eq!(
            UpdateEntry::new(0, 0, 3, Change::Replace(vec![])),
            Err(UpdateFormatError::ZeroDimension { entry: 0 })
        );
        let e = UpdateEntry::new(4, 1, 1, Change::Replace(vec![1.0])).unwrap();
        assert_eq!(
            ModelUpdate::new(regtest(), vec![e.clone(), e]),
            Err(UpdateFormatError::DuplicateTensor { entry: 1, tensor: 4 })
        );
    }

    /// Fuzz-style: random bytes, random mutations of a valid update and random truncations never
    /// panic, and whatever decodes re-encodes to the same bytes.
    #[test]
    fn random_bytes_never_panic() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let good = sample().encode();
        for i in 0..20_000 {
            let bytes: Vec<u8> = match i % 3 {
                0 => {
                    let n = (rng.next_u32() % 256) as usize;
                    let mut b = vec![0u8; n];
                    rng.fill_bytes(&mut b);
                    if n >= 8 && rng.next_u32() % 2 == 0 {
                        b[..8].copy_from_slice(&UPDATE_MAGIC);
                    }
                    b
                }
                1 => {
                    let mut b = good.clone();
                    for _ in 0..1 + rng.next_u32() % 4 {
                        let at = (rng.next_u32() as usize) % b.len();
                        b[at] = rng.next_u32() as u8;
                    }
                    b
                }
                _ => {
                    let cut = (rng.next_u32() as usize) % (good.len() + 1);
                    good[..cut].to_vec()
                }
            };
            if let Ok(u) = ModelUpdate::decode(&bytes) {
                assert_eq!(u.encode(), bytes);
            }
        }
    }
}
