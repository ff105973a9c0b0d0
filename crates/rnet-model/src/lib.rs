//! The ResonanceNet V5 model (layer 2): configuration and parameter layout, seeded
//! initialisation, the canonical bit-exact evaluator, the recurrent step used by inference,
//! checkpoints (canonical bytes, chunk hashes, merkle root, safetensors export and strict
//! import of models and updates for external trainers), function-preserving
//! growth with the consensus growth schedule, bounded model updates (a block's change to the grown
//! parent model: encoding, canonical application, limits) and the bundled validation data.
//!
//! The consensus rules fixed here are written out in `docs/protocol.md (Part III)`.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod evaluator;
mod expf;
pub mod forward;
pub mod growth;
pub mod init;
pub mod interchange;
pub mod kernels;
pub mod model;
pub mod safetensors;
pub mod step;
pub mod update;
pub mod update_apply;

#[cfg(test)]
mod test_util;

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointHeader};
pub use config::{ConfigError, LayerLayout, Layout, ModelConfig, ModelNetwork, TensorSpec, VOCAB};
pub use data::{benchmark_slice, corpus, excerpt, training_text};
pub use evaluator::{EvalError, EvalResult, evaluate, evaluate_params, evaluate_windows};
pub use growth::{GrowthCaps, GrowthError, grow, next_shape, shape_at_height};
pub use interchange::{
    BadValue, InterchangeError, checkpoint_from_safetensors, model_from_safetensors,
    update_from_safetensors, update_to_safetensors,
};
pub use model::{Model, ModelError};
pub use safetensors::SafetensorsError;
pub use step::{RecurrentState, StateMismatch, step};
pub use update::{Change, ModelUpdate, UpdateEntry, UpdateFormatError};
pub use update_apply::{UpdateError, UpdateLimits, apply, apply_committed, verify_root};
