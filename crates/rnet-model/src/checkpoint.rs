//! Canonical checkpoint bytes, their 1 MiB chunk hashes and merkle root, and strict loading.
//!
//! Layout (all integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `RNETCKPT` |
//! | 8 | 4 | format version, u32 = 1 |
//! | 12 | 8 | height, u64 |
//! | 20 | 4 | `d_model`, u32 |
//! | 24 | 4 | `n_layers`, u32 |
//! | 28 | 4 | `n_slots`, u32 |
//! | 32 | 4 | `d_ff`, u32 |
//! | 36 | 4 | `window`, u32 |
//! | 40 | 4 | `n_branches` B, u32 |
//! | 44 | 4·B | kernel sizes, u32 each |
//! | 44 + 4B | 8 | parameter count, u64 (must equal the layout's total) |
//! | 52 + 4B | 4·count | parameters, f32 LE, tensors in schema order |
//!
//! Chunks: the bytes are cut into 1 MiB (`2^20`) chunks, the last one shorter; each chunk hash is
//! Keccak-256d of the chunk. The root is a binary merkle tree over the chunk hashes: each level
//! pairs neighbours as `Keccak-256d(left ‖ right)` (64 bytes), an odd level duplicates its last
//! hash, and a single chunk's root is its hash. As in Bitcoin the duplication lets two chunk lists
//! share a root, so a root is only meaningful together with the byte size (both are in the header).

use rayon::prelude::*;
use rnet_crypto::keccak256d;
use thiserror::Error;

use crate::config::{ConfigError, Layout, MAX_CONV_BRANCHES, ModelConfig};
use crate::model::Model;

/// The 8-byte magic at the start of every checkpoint.
pub const MAGIC: [u8; 8] = *b"RNETCKPT";
/// The only format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Chunk size for hashing and transfer: 1 MiB.
pub const CHUNK_SIZE: usize = 1 << 20;
/// Bytes before the kernel-size list.
const FIXED_HEADER: usize = 44;

/// Why bytes are not a valid checkpoint.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// Fewer bytes than the header or the declared tensors need.
    #[error("checkpoint truncated: need {needed} bytes, have {got}")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        got: u64,
    },
    /// More bytes than the header and tensors account for.
    #[error("checkpoint has {got} bytes, {expected} expected (trailing data)")]
    TrailingBytes {
        /// The exact size implied by the header.
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// The first 8 bytes are not [`MAGIC`].
    #[error("bad checkpoint magic {0:02x?}")]
    BadMagic([u8; 8]),
    /// A format version other than [`FORMAT_VERSION`].
    #[error("unsupported checkpoint format version {0}")]
    UnsupportedVersion(u32),
    /// The declared shape is not a valid V5 config.
    #[error("invalid config in checkpoint header: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// The declared parameter count differs from what the declared shapes need.
    #[error("header declares {declared} parameters, the declared shapes need {expected}")]
    ShapeMismatch {
        /// Count in the header.
        declared: u64,
        /// Count implied by the config.
        expected: u64,
    },
    /// A parameter is NaN or infinite.
    #[error("non-finite value in tensor {tensor} at element {index}")]
    NonFinite {
        /// Schema name of the tensor.
        tensor: String,
        /// Element index inside that tensor.
        index: usize,
    },
    /// A parameter is subnormal (non-zero with magnitude below `f32::MIN_POSITIVE`): slow on
    /// some CPUs, so consensus refuses it (`Checkpoint::new` flushes such values to zero).
    #[error("subnormal value in tensor {tensor} at element {index}")]
    Subnormal {
        /// Schema name of the tensor.
        tensor: String,
        /// Element index inside that tensor.
        index: usize,
    },
}

/// What the header says, parsed and validated (enough to know the exact size before the tensors
/// arrive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointHeader {
    /// Block height the checkpoint belongs to.
    pub height: u64,
    /// The validated shape.
    pub config: ModelConfig,
    /// Header length in bytes.
    pub header_len: usize,
    /// Exact total length of the checkpoint in bytes.
    pub total_len: u64,
}

/// A model at a height: the unit a block commits to.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Block height.
    pub height: u64,
    /// The network.
    pub model: Model,
}

/// Header length for `n_branches` conv branches.
pub fn header_len(n_branches: usize) -> usize {
    FIXED_HEADER + 4 * n_branches + 8
}

/// Exact canonical size of a checkpoint of `config` (which must be valid).
pub fn encoded_len(config: &ModelConfig) -> u64 {
    header_len(config.kernel_sizes.len()) as u64 + 4 * Layout::new(config).total as u64
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses and validates the header of `bytes` (which may be just a prefix of a checkpoint: only
/// the header must be present). Does not look at the tensors.
pub fn parse_header(bytes: &[u8]) -> Result<CheckpointHeader, CheckpointError> {
    let got = bytes.len() as u64;
    if bytes.len() < FIXED_HEADER {
        return Err(CheckpointError::Truncated { needed: FIXED_HEADER as u64, got });
    }
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&bytes[..8]);
    if magic != MAGIC {
        return Err(CheckpointError::BadMagic(magic));
    }
    let version = read_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(CheckpointError::UnsupportedVersion(version));
    }
    let height = read_u64(bytes, 12);
    let field = |at| read_u32(bytes, at) as usize;
    let n_branches = field(40);
    if n_branches == 0 || n_branches > MAX_CONV_BRANCHES {
        return Err(ConfigError::BranchCount(n_branches).into());
    }
    let header_len = header_len(n_branches);
    if bytes.len() < header_len {
        return Err(CheckpointError::Truncated { needed: header_len as u64, got });
    }
    let config = ModelConfig {
        d_model: field(20),
        n_layers: field(24),
        n_slots: field(28),
        d_ff: field(32),
        window: field(36),
        kernel_sizes: (0..n_branches).map(|b| field(FIXED_HEADER + 4 * b)).collect(),
    };
    config.validate()?;
    let declared = read_u64(bytes, header_len - 8);
    let expected = Layout::new(&config).total as u64;
    if declared != expected {
        return Err(CheckpointError::ShapeMismatch { declared, expected });
    }
    Ok(CheckpointHeader { height, config, header_len, total_len: header_len as u64 + 4 * expected })
}

impl Checkpoint {
    /// Wraps a model at a height, flushing subnormal parameters to `+0.0` (consensus refuses
    /// them, [`CheckpointError::Subnormal`]). Build the checkpoint before evaluating it, so the
    /// evaluated model is the committed one.
    pub fn new(height: u64, mut model: Model) -> Self {
        for v in model.params_mut() {
            if v.is_subnormal() {
                *v = 0.0;
            }
        }
        Self { height, model }
    }

    /// Exact length of [`Checkpoint::to_bytes`].
    pub fn encoded_len(&self) -> u64 {
        encoded_len(self.model.config())
    }

    /// The canonical bytes (module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let c = self.model.config();
        let params = self.model.params();
        let mut out = Vec::with_capacity(self.encoded_len() as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        for v in [c.d_model, c.n_layers, c.n_slots, c.d_ff, c.window, c.kernel_sizes.len()] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for &k in &c.kernel_sizes {
            out.extend_from_slice(&(k as u32).to_le_bytes());
        }
        out.extend_from_slice(&(params.len() as u64).to_le_bytes());
        for v in params {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Strictly parses canonical bytes: the header is validated and the exact size computed from
    /// the validated config is compared with the length before anything is allocated; every value
    /// must be finite and not subnormal (the first offending value is reported).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let header = parse_header(bytes)?;
        let got = bytes.len() as u64;
        if got < header.total_len {
            return Err(CheckpointError::Truncated { needed: header.total_len, got });
        }
        if got > header.total_len {
            return Err(CheckpointError::TrailingBytes { expected: header.total_len, got });
        }
        let body = &bytes[header.header_len..];
        let params: Vec<f32> =
            body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if let Some(i) = params.iter().position(|v| !v.is_finite() || v.is_subnormal()) {
            let layout = Layout::new(&header.config);
            let spec = layout.tensors.iter().find(|t| t.range().contains(&i));
            let tensor = spec.map(|t| t.name.clone()).unwrap_or_default();
            let index = spec.map(|t| i - t.offset).unwrap_or(i);
            return Err(if params[i].is_finite() {
                CheckpointError::Subnormal { tensor, index }
            } else {
                CheckpointError::NonFinite { tensor, index }
            });
        }
        let model = Model::from_parts(header.config, params).map_err(|e| match e {
            crate::model::ModelError::InvalidConfig(c) => CheckpointError::InvalidConfig(c),
            crate::model::ModelError::ParamCount { expected, got } => {
                CheckpointError::ShapeMismatch { declared: got as u64, expected: expected as u64 }
            }
        })?;
        Ok(Self { height: header.height, model })
    }

    /// Keccak-256d of each 1 MiB chunk of the canonical bytes.
    pub fn chunk_hashes(&self) -> Vec<[u8; 32]> {
        chunk_hashes(&self.to_bytes())
    }

    /// The checkpoint root: merkle root of [`Checkpoint::chunk_hashes`].
    pub fn root(&self) -> [u8; 32] {
        merkle_root(&self.chunk_hashes())
    }
}

/// Keccak-256d of each [`CHUNK_SIZE`] chunk of `bytes` (the last one may be shorter; empty input
/// has no chunks). Hashed in parallel, returned in chunk order.
pub fn chunk_hashes(bytes: &[u8]) -> Vec<[u8; 32]> {
    bytes.par_chunks(CHUNK_SIZE).map(keccak256d).collect()
}

/// Chunks read and hashed together by [`chunk_hashes_from_reader`] (16 MiB of buffer).
pub const STREAM_BATCH_CHUNKS: usize = 16;

/// [`chunk_hashes`] of the first `size` bytes read from `reader`, holding at most
/// [`STREAM_BATCH_CHUNKS`] chunks in memory (hashed in parallel per batch): how a node checks a
/// checkpoint file of any size against its root. A reader that ends before `size` bytes is an
/// `UnexpectedEof` error.
pub fn chunk_hashes_from_reader(
    mut reader: impl std::io::Read,
    size: u64,
) -> std::io::Result<Vec<[u8; 32]>> {
    let chunks = size.div_ceil(CHUNK_SIZE as u64);
    let mut hashes = Vec::with_capacity(usize::try_from(chunks).unwrap_or(0).min(1 << 20));
    let mut buf = vec![0u8; STREAM_BATCH_CHUNKS * CHUNK_SIZE];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        reader.read_exact(&mut buf[..n])?;
        hashes.extend(chunk_hashes(&buf[..n]));
        left -= n as u64;
    }
    Ok(hashes)
}

/// Binary merkle root over `leaves` with `Keccak-256d(left ‖ right)`, duplicating the last hash of
/// an odd level; one leaf is its own root; no leaves give all zeros.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.is_empty() {
        return [0u8; 32];
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                let right = pair.get(1).unwrap_or(&pair[0]);
                let mut buf = [0u8; 64];
                buf[..32].copy_from_slice(&pair[0]);
                buf[32..].copy_from_slice(right);
                keccak256d(&buf)
            })
            .collect();
    }
    level[0]
}

/// True when `chunk` is chunk `index` of a checkpoint with these chunk hashes.
pub fn verify_chunk(chunk_hashes: &[[u8; 32]], index: usize, chunk: &[u8]) -> bool {
    chunk_hashes.get(index).is_some_and(|h| *h == keccak256d(chunk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelNetwork;

    #[test]
    fn streamed_chunk_hashes_equal_the_in_memory_ones() {
        for len in [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 7, 17 * CHUNK_SIZE + 1] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let streamed = chunk_hashes_from_reader(&bytes[..], len as u64).unwrap();
            assert_eq!(streamed, chunk_hashes(&bytes), "length {len}");
        }
        // A reader shorter than the size is an error, not a short list.
        let e = chunk_hashes_from_reader(&[0u8; 10][..], 11).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    fn regtest_checkpoint() -> Checkpoint {
        let model = Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 3).unwrap();
        Checkpoint::new(42, model)
    }

    #[test]
    fn round_trip_is_byte_identical() {
        let ck = regtest_checkpoint();
        let bytes = ck.to_bytes();
        assert_eq!(bytes.len() as u64, ck.encoded_len());
        assert_eq!(&bytes[..8], b"RNETCKPT");
        let back = Checkpoint::from_bytes(&bytes).unwrap();
        assert_eq!(back, ck);
        assert_eq!(back.to_bytes(), bytes);
        let h = parse_header(&bytes[..64]).unwrap();
        assert_eq!(h.height, 42);
        assert_eq!(h.total_len, bytes.len() as u64);
        assert_eq!(h.header_len, 52 + 4 * 3);
    }

    #[test]
    fn single_chunk_root_is_the_chunk_hash() {
        let ck = regtest_checkpoint();
        let bytes = ck.to_bytes();
        assert!(bytes.len() < CHUNK_SIZE);
        assert_eq!(ck.chunk_hashes(), vec![keccak256d(&bytes)]);
        assert_eq!(ck.root(), keccak256d(&bytes));
    }

    #[test]
    fn merkle_root_pairs_and_duplicates() {
        let h = |b: u8| keccak256d(&[b]);
        let node = |a: [u8; 32], b: [u8; 32]| {
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&a);
            buf[32..].copy_from_slice(&b);
            keccak256d(&buf)
        };
        assert_eq!(merkle_root(&[h(1), h(2)]), node(h(1), h(2)));
        assert_eq!(merkle_root(&[h(1), h(2), h(3)]), node(node(h(1), h(2)), node(h(3), h(3))));
        assert_eq!(merkle_root(&[]), [0u8; 32]);
    }

    #[test]
    fn root_changes_when_any_byte_changes() {
        // Small checkpoint: every header byte and a spread of tensor bytes.
        let bytes = regtest_checkpoint().to_bytes();
        let root = merkle_root(&chunk_hashes(&bytes));
        let mut positions: Vec<usize> = (0..64).collect();
        positions.extend((64..bytes.len()).step_by(997));
        positions.push(bytes.len() - 1);
        for i in positions {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert_ne!(merkle_root(&chunk_hashes(&b)), root, "byte {i}");
        }
        // Multi-chunk buffer (3 full chunks and a partial one): a flip in any chunk, including
        // the duplicated last one, changes the root; so does dropping or adding a chunk.
        let big: Vec<u8> = (0..3 * CHUNK_SIZE + 1000).map(|i| (i * 31 % 251) as u8).collect();
        let root = merkle_root(&chunk_hashes(&big));
        assert_eq!(chunk_hashes(&big).len(), 4);
        for i in [0, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 5, 3 * CHUNK_SIZE + 999] {
            let mut b = big.clone();
            b[i] ^= 0x80;
            assert_ne!(merkle_root(&chunk_hashes(&b)), root, "byte {i}");
        }
        assert_ne!(merkle_root(&chunk_hashes(&big[..3 * CHUNK_SIZE])), root);
        let hashes = chunk_hashes(&big);
        assert!(verify_chunk(&hashes, 3, &big[3 * CHUNK_SIZE..]));
        assert!(!verify_chunk(&hashes, 2, &big[3 * CHUNK_SIZE..]));
    }

    #[test]
    fn every_kind_of_corruption_has_its_own_error() {
        let ck = regtest_checkpoint();
        let good = ck.to_bytes();
        let hl = header_len(3);

        // Truncated: inside the fixed header, inside the kernel list, inside the tensors.
        for cut in [0, 7, 43, hl - 1, hl, good.len() - 1] {
            assert!(
                matches!(
                    Checkpoint::from_bytes(&good[..cut]),
                    Err(CheckpointError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
        // Trailing bytes.
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            Checkpoint::from_bytes(&long),
            Err(CheckpointError::TrailingBytes {
                expected: good.len() as u64,
                got: good.len() as u64 + 1
            })
        );
        // Wrong magic.
        let mut b = good.clone();
        b[0] = b'X';
        assert!(matches!(Checkpoint::from_bytes(&b), Err(CheckpointError::BadMagic(_))));
        // Unsupported version.
        let mut b = good.clone();
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(Checkpoint::from_bytes(&b), Err(CheckpointError::UnsupportedVersion(2)));
        // Config that fails validate(): odd width, d_ff not 2d, zero layers, too many branches,
        // a kernel over the cap, a huge claimed width (no allocation happens).
        for (at, v) in [(20, 33u32), (32, 65), (24, 0), (40, 9), (44, 64), (20, u32::MAX)] {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            assert!(
                matches!(Checkpoint::from_bytes(&b), Err(CheckpointError::InvalidConfig(_))),
                "field at {at} = {v}: {:?}",
                Checkpoint::from_bytes(&b)
            );
        }
        // Valid config but different shapes than the data: width 34 with the old count.
        let mut b = good.clone();
        b[20..24].copy_from_slice(&34u32.to_le_bytes());
        b[32..36].copy_from_slice(&68u32.to_le_bytes());
        assert!(matches!(Checkpoint::from_bytes(&b), Err(CheckpointError::ShapeMismatch { .. })));
        // Wrong declared count.
        let mut b = good.clone();
        let declared = read_u64(&b, hl - 8);
        b[hl - 8..hl].copy_from_slice(&(declared + 1).to_le_bytes());
        assert!(matches!(Checkpoint::from_bytes(&b), Err(CheckpointError::ShapeMismatch { .. })));
        // Consistent header for a bigger model but the tensors are missing: truncated.
        let mut b = good.clone();
        let bigger = ModelConfig::genesis(ModelNetwork::Regtest).with_shape(34, 2);
        b[20..24].copy_from_slice(&34u32.to_le_bytes());
        b[32..36].copy_from_slice(&68u32.to_le_bytes());
        b[hl - 8..hl].copy_from_slice(&(Layout::new(&bigger).total as u64).to_le_bytes());
        assert!(matches!(Checkpoint::from_bytes(&b), Err(CheckpointError::Truncated { .. })));
        // Non-finite values: NaN in the first tensor, +inf in the head.
        let layout = Layout::new(ck.model.config());
        for (value, tensor, index) in [
            (f32::NAN, "embed", 5usize),
            (f32::INFINITY, "head", 17),
            (f32::NEG_INFINITY, "layers.1.gru.wo", 0),
        ] {
            let spec = layout.tensors.iter().find(|t| t.name == tensor).unwrap();
            let mut b = good.clone();
            let at = hl + 4 * (spec.offset + index);
            b[at..at + 4].copy_from_slice(&value.to_le_bytes());
            assert_eq!(
                Checkpoint::from_bytes(&b),
                Err(CheckpointError::NonFinite { tensor: tensor.to_string(), index })
            );
        }
    }

    /// Subnormal parameters (|x| < 2⁻¹²⁶, non-zero) are refused at parse: on some CPUs they make
    /// arithmetic 10–100× slower, so a block full of them would be a cheap way to slow every
    /// validator. `Checkpoint::new` flushes them to zero, so honest miners never produce one.
    #[test]
    fn subnormal_parameters_are_refused_and_flushed_by_new() {
        let ck = Checkpoint::new(
            3,
            Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 0).unwrap(),
        );
        let good = ck.to_bytes();
        let hl = parse_header(&good).unwrap().header_len;
        let layout = Layout::new(ck.model.config());
        let tiny = f32::from_bits(1); // the smallest positive subnormal
        let largest = f32::from_bits(0x007f_ffff); // the largest subnormal
        for (value, tensor, index) in
            [(tiny, "embed", 3usize), (-largest, "head", 9), (f32::MIN_POSITIVE / 2.0, "embed", 0)]
        {
            assert!(value.is_subnormal());
            let spec = layout.tensors.iter().find(|t| t.name == tensor).unwrap();
            let mut b = good.clone();
            let at = hl + 4 * (spec.offset + index);
            b[at..at + 4].copy_from_slice(&value.to_le_bytes());
            assert_eq!(
                Checkpoint::from_bytes(&b),
                Err(CheckpointError::Subnormal { tensor: tensor.to_string(), index })
            );
        }
        // Zero of either sign and the smallest normal are fine.
        for value in [0.0f32, -0.0, f32::MIN_POSITIVE, -f32::MIN_POSITIVE] {
            let mut b = good.clone();
            b[hl..hl + 4].copy_from_slice(&value.to_le_bytes());
            assert!(Checkpoint::from_bytes(&b).is_ok(), "{value:e}");
        }
        // A model with subnormal weights becomes a valid checkpoint with those weights at +0.
        let mut model = ck.model.clone();
        model.params_mut()[7] = tiny;
        model.params_mut()[8] = -largest;
        let flushed = Checkpoint::new(3, model);
        assert_eq!(flushed.model.params()[7].to_bits(), 0);
        assert_eq!(flushed.model.params()[8].to_bits(), 0);
        assert_eq!(Checkpoint::from_bytes(&flushed.to_bytes()).unwrap(), flushed);
    }
}
