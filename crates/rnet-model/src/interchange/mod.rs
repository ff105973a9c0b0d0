//! Strict safetensors interchange with external trainers: a model (or a model update) leaves the
//! node as safetensors and comes back only if it is exactly the shape it must be.
//!
//! The export side is [`crate::Checkpoint::to_safetensors_bytes`] for models and
//! [`update_to_safetensors`] for updates. The import side is the strict inverse: the caller says
//! which config the result must have (the parent's, via `--like` in `rnet-util` or the grown tip
//! model in the miner), and the file is refused unless
//!
//! * it is a complete safetensors file (no truncation, no trailing bytes, a valid header);
//! * every `__metadata__` entry that describes the shape (`d_model`, `n_layers`, `n_slots`, `d_ff`,
//!   `window`, `kernel_sizes`) and `format`, when present, equals the expected one (other entries,
//!   and `height`, are ignored: trainers may add their own);
//! * its tensor names are exactly the expected ones (no unknown, no missing tensor);
//! * every tensor is F32 with exactly the expected shape;
//! * no value is NaN, infinite or subnormal (the checkpoint rules refuse all three).
//!
//! Checks run in that order and the first failure is reported, naming the tensor and, for values,
//! the element index. The accepted result re-exports to a file with the same tensors and, after
//! the canonical encoding, the same bytes as the original checkpoint or update.
//!
//! Tensor names are the checkpoint schema's (`embed`, `layers.{i}.norm1`, `layers.{i}.conv.{b}`,
//! `layers.{i}.gru.wz|wh|wo`, `layers.{i}.norm2`, `layers.{i}.slot.wq|keys|values|wm`,
//! `layers.{i}.norm3`, `layers.{i}.ffn.w_gate|w_up|w_down`, `norm_f`, `head`), shapes `[out, in]`
//! for matrices and `[n]` for gains; see [`crate::config::Layout`]. An update file holds, per
//! changed tensor, either the tensor under its own name (a full replacement) or the two factors
//! `NAME.u` (`[rows, r]`) and `NAME.v` (`[r, cols]`) of an additive `W += U·V`, where a gain of
//! shape `[n]` is viewed as `[1, n]` (protocol Part III §5.2).

mod checkpoint;
mod update;

use std::collections::HashMap;

use ::safetensors::tensor::{Dtype, Metadata, SafeTensors, TensorView};
use thiserror::Error;

use crate::config::ModelConfig;
use crate::model::ModelError;
use crate::update::UpdateFormatError;

pub use checkpoint::{checkpoint_from_safetensors, model_from_safetensors};
pub use update::{FACTOR_U, FACTOR_V, update_from_safetensors, update_to_safetensors};

/// The `format` metadata value of a model (checkpoint) export.
pub const MODEL_FORMAT: &str = "resonancenet-v5";
/// The `format` metadata value of a model-update export.
pub const UPDATE_FORMAT: &str = "resonancenet-v5-update";
/// Largest safetensors header accepted (the `safetensors` crate's own limit, 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// What is wrong with a value that the checkpoint rules refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadValue {
    /// Not a number.
    NaN,
    /// Positive or negative infinity.
    Infinite,
    /// Non-zero with magnitude below `f32::MIN_POSITIVE`.
    Subnormal,
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadValue::NaN => "NaN",
            BadValue::Infinite => "infinite",
            BadValue::Subnormal => "subnormal",
        })
    }
}

impl BadValue {
    /// The defect of `v`, or `None` when `v` is a value a checkpoint may hold.
    pub fn of(v: f32) -> Option<Self> {
        if v.is_nan() {
            Some(BadValue::NaN)
        } else if v.is_infinite() {
            Some(BadValue::Infinite)
        } else if v.is_subnormal() {
            Some(BadValue::Subnormal)
        } else {
            None
        }
    }
}

/// Why a safetensors file is not the model or update it must be. Each refusal has its own variant
/// so that callers (the miner, tests) can tell them apart.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum InterchangeError {
    /// The file ends before its header, or before the tensor data its header declares.
    #[error("safetensors file truncated: need {needed} bytes, have {got}")]
    Truncated {
        /// Bytes the header (or the 8-byte length prefix) implies.
        needed: u64,
        /// Bytes present.
        got: u64,
    },
    /// Bytes follow the tensor data the header declares.
    #[error("safetensors file has {got} bytes, its header accounts for {expected} (trailing data)")]
    TrailingBytes {
        /// Size implied by the header.
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// The header is not a valid safetensors header (JSON, offsets, sizes).
    #[error("not a valid safetensors file: {0}")]
    Malformed(String),
    /// A metadata entry contradicts the expected model.
    #[error("metadata {key} is {got:?}, expected {expected:?}")]
    MetadataMismatch {
        /// The metadata key.
        key: String,
        /// The value the expected model has.
        expected: String,
        /// The value in the file.
        got: String,
    },
    /// A tensor whose name is not in the expected schema.
    #[error("unexpected tensor {0:?} (not in the model's schema)")]
    UnexpectedTensor(String),
    /// A tensor the expected model has is absent (for updates: one factor of a low-rank pair).
    #[error("tensor {0:?} is missing")]
    MissingTensor(String),
    /// A tensor that is not F32.
    #[error("tensor {tensor:?} has dtype {got}, expected F32")]
    WrongDtype {
        /// Tensor name.
        tensor: String,
        /// The dtype in the file (safetensors spelling).
        got: String,
    },
    /// A tensor whose shape is not the expected one.
    #[error("tensor {tensor:?} has shape {got:?}, expected {expected}")]
    WrongShape {
        /// Tensor name.
        tensor: String,
        /// The expected shape, e.g. `[32, 32]`, or `[32, r] with r >= 1` for a low-rank factor.
        expected: String,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A NaN, infinite or subnormal value.
    #[error("tensor {tensor:?} element {index} is {kind}")]
    BadValue {
        /// Tensor name.
        tensor: String,
        /// Element index inside the tensor (row-major).
        index: usize,
        /// What is wrong with it.
        kind: BadValue,
    },
    /// An update names a tensor both as a replacement and as low-rank factors.
    #[error("tensor {0:?} is both replaced and given low-rank factors")]
    ConflictingEntries(String),
    /// The expected config itself is invalid (the message of its [`ModelError`]).
    #[error("invalid expected model: {0}")]
    Model(String),
    /// The update cannot be built (the message of its [`UpdateFormatError`]).
    #[error("update: {0}")]
    Update(String),
}

impl From<ModelError> for InterchangeError {
    fn from(e: ModelError) -> Self {
        InterchangeError::Model(e.to_string())
    }
}

impl From<UpdateFormatError> for InterchangeError {
    fn from(e: UpdateFormatError) -> Self {
        InterchangeError::Update(e.to_string())
    }
}

/// A parsed, size-checked safetensors file and its metadata map (empty when absent).
struct Parsed<'a> {
    tensors: SafeTensors<'a>,
    metadata: HashMap<String, String>,
}

/// Parses `bytes` as one complete safetensors file: length prefix, header within the file, header
/// JSON, tensor data ending exactly at the end of the file.
fn parse(bytes: &[u8]) -> Result<Parsed<'_>, InterchangeError> {
    let got = bytes.len() as u64;
    let Some(prefix) = bytes.get(..8) else {
        return Err(InterchangeError::Truncated { needed: 8, got });
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(prefix);
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER {
        return Err(InterchangeError::Malformed(format!("header of {n} bytes is too large")));
    }
    let header_end = 8 + n;
    if got < header_end {
        return Err(InterchangeError::Truncated { needed: header_end, got });
    }
    let header: Metadata = serde_json::from_slice(&bytes[8..header_end as usize])
        .map_err(|e| InterchangeError::Malformed(format!("header: {e}")))?;
    let declared = header.tensors().values().map(|t| t.data_offsets.1 as u64).max().unwrap_or(0);
    let needed = header_end + declared;
    if got < needed {
        return Err(InterchangeError::Truncated { needed, got });
    }
    if got > needed {
        return Err(InterchangeError::TrailingBytes { expected: needed, got });
    }
    let tensors =
        SafeTensors::deserialize(bytes).map_err(|e| InterchangeError::Malformed(e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    Ok(Parsed { tensors, metadata })
}

/// The metadata an export of a model or update of `config` carries (without `height`).
fn config_metadata(config: &ModelConfig, format: &str) -> HashMap<String, String> {
    let ks: Vec<String> = config.kernel_sizes.iter().map(|k| k.to_string()).collect();
    HashMap::from([
        ("format".to_string(), format.to_string()),
        ("d_model".to_string(), config.d_model.to_string()),
        ("n_layers".to_string(), config.n_layers.to_string()),
        ("n_slots".to_string(), config.n_slots.to_string()),
        ("d_ff".to_string(), config.d_ff.to_string()),
        ("window".to_string(), config.window.to_string()),
        ("kernel_sizes".to_string(), ks.join(",")),
    ])
}

/// Refuses a file whose metadata contradicts `config` or `format` (absent entries are fine).
fn check_metadata(
    metadata: &HashMap<String, String>,
    config: &ModelConfig,
    format: &str,
) -> Result<(), InterchangeError> {
    let mut expected: Vec<(String, String)> = config_metadata(config, format).into_iter().collect();
    expected.sort();
    for (key, want) in expected {
        if let Some(got) = metadata.get(&key).filter(|got| **got != want) {
            return Err(InterchangeError::MetadataMismatch {
                key,
                expected: want,
                got: got.clone(),
            });
        }
    }
    Ok(())
}

/// The names in the file, sorted (so reports do not depend on hash order).
fn sorted_names(parsed: &Parsed<'_>) -> Vec<String> {
    let mut names: Vec<String> = parsed.tensors.names().into_iter().cloned().collect();
    names.sort();
    names
}

/// Refuses a non-F32 tensor.
fn check_dtype(name: &str, view: &TensorView<'_>) -> Result<(), InterchangeError> {
    if view.dtype() == Dtype::F32 {
        Ok(())
    } else {
        Err(InterchangeError::WrongDtype {
            tensor: name.to_string(),
            got: format!("{:?}", view.dtype()),
        })
    }
}

/// Refuses a tensor whose shape is not `shape`.
fn check_shape(name: &str, view: &TensorView<'_>, shape: &[usize]) -> Result<(), InterchangeError> {
    if view.shape() == shape {
        Ok(())
    } else {
        Err(InterchangeError::WrongShape {
            tensor: name.to_string(),
            expected: format!("{shape:?}"),
            got: view.shape().to_vec(),
        })
    }
}

/// The values of an F32 tensor, refusing the first NaN, infinite or subnormal one.
fn values(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>, InterchangeError> {
    let values: Vec<f32> =
        view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    match values.iter().enumerate().find_map(|(i, &v)| BadValue::of(v).map(|k| (i, k))) {
        Some((index, kind)) => {
            Err(InterchangeError::BadValue { tensor: name.to_string(), index, kind })
        }
        None => Ok(values),
    }
}

#[cfg(test)]
pub(crate) mod test_files {
    //! Builders of deliberately wrong safetensors files for the refusal tests.

    use std::collections::HashMap;

    use ::safetensors::tensor::{Dtype, TensorView};

    /// One tensor of a hand-built file: name, dtype, shape, raw little-endian bytes.
    pub struct RawTensor {
        /// Name.
        pub name: String,
        /// Dtype.
        pub dtype: Dtype,
        /// Shape.
        pub shape: Vec<usize>,
        /// Data.
        pub data: Vec<u8>,
    }

    /// Every tensor of a safetensors file, in file order, with its metadata.
    pub fn read(bytes: &[u8]) -> (Vec<RawTensor>, Option<HashMap<String, String>>) {
        let st = ::safetensors::SafeTensors::deserialize(bytes).unwrap();
        let (_, meta) = ::safetensors::SafeTensors::read_metadata(bytes).unwrap();
        let mut out: Vec<RawTensor> = st
            .tensors()
            .into_iter()
            .map(|(name, v)| RawTensor {
                name,
                dtype: v.dtype(),
                shape: v.shape().to_vec(),
                data: v.data().to_vec(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        (out, meta.metadata().clone())
    }

    /// Serializes `tensors` with `metadata`.
    pub fn write(tensors: &[RawTensor], metadata: Option<HashMap<String, String>>) -> Vec<u8> {
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .map(|t| (t.name.clone(), TensorView::new(t.dtype, t.shape.clone(), &t.data).unwrap()))
            .collect();
        ::safetensors::tensor::serialize(views, &metadata).unwrap()
    }

    /// Overwrites element `index` of tensor `name` (F32) with `value`.
    pub fn poke(tensors: &mut [RawTensor], name: &str, index: usize, value: f32) {
        let t = tensors.iter_mut().find(|t| t.name == name).unwrap();
        t.data[4 * index..4 * index + 4].copy_from_slice(&value.to_le_bytes());
    }
}
