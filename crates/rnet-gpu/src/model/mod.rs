//! The whole V5 model on a [`Backend`]: the network `rnet_training::model` trains on the CPU,
//! composed from the backend's operations so it runs wherever the backend does (the CPU engine
//! itself, CUDA, Vulkan).
//!
//! * [`params`]: one device buffer per tensor of the checkpoint [`Layout`](rnet_model::Layout)
//!   (parameters, gradients, AdamW moments), uploaded from and downloaded to the flat CPU layout.
//! * [`forward`]: embedding, per layer RMSNorm → merged 5-branch causal conv → minGRU (log-domain
//!   scan) → slot attention → SwiGLU with residuals, final norm, head, cross-entropy; keeps every
//!   activation the backward pass needs in a device workspace.
//! * [`backward`]: the exact backward pass into the gradient buffers.
//! * [`step`]: [`DeviceTrainer`], a training step = forward + backward + global-norm clipping +
//!   AdamW, with the CPU trainer's schedule, batch stream and optimizer-state file.
//! * [`decode`]: [`DeviceDecoder`], recurrent decoding with O(1) state per layer.
//!
//! Not consensus: whatever this engine trains is judged by `rnet_model`'s evaluator, and the tests
//! hold it to the CPU engine within 1e-4 (`tests/device_model.rs`).

pub mod backward;
pub mod decode;
pub mod forward;
pub mod params;
mod products;
pub mod step;

use rnet_model::config::{ConfigError, MAX_WINDOW};
use rnet_training::StateError;
use thiserror::Error;

use crate::BackendError;

pub use decode::DeviceDecoder;
pub use params::DeviceTensors;
pub use step::{DeviceTrainer, TrainSummary};

/// Why the device engine could not start, train or decode.
#[derive(Debug, Error)]
pub enum EngineError {
    /// A backend operation failed (device error, or an internal shape error).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The model config is not a valid V5 shape.
    #[error("invalid model config: {0}")]
    Config(#[from] ConfigError),
    /// The parameter buffer does not match the config.
    #[error("model has {found} parameters; its config needs {expected}")]
    ParamCount {
        /// Parameters the config needs.
        expected: usize,
        /// Parameters given.
        found: usize,
    },
    /// The optimizer state does not fit the model.
    #[error(transparent)]
    State(#[from] StateError),
    /// The training window is zero or longer than the model allows.
    #[error("training window {0} is outside 1..={MAX_WINDOW}")]
    WindowRange(usize),
    /// A batch (or data source) with another window length than the trainer's.
    #[error("batch window {found} differs from the training window {expected}")]
    Window {
        /// The trainer's window.
        expected: usize,
        /// The batch's window.
        found: usize,
    },
    /// A batch with no windows, or inputs that are not whole windows.
    #[error("empty batch")]
    EmptyBatch,
    /// The loss or gradient became NaN or infinite; the parameters were not updated.
    #[error("non-finite loss or gradient at step {step} (loss {loss}, grad norm {grad_norm})")]
    NonFinite {
        /// Global update number that failed.
        step: u64,
        /// The loss.
        loss: f64,
        /// The gradient norm.
        grad_norm: f64,
    },
}
