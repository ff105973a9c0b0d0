//! The ResonanceNet V5 model (layer 2): configuration and parameter layout, the canonical
//! bit-exact evaluator, the recurrent step used by inference, checkpoints, growth and the bundled
//! validation data.

pub mod config;

pub use config::{LayerLayout, Layout, ModelConfig, ModelNetwork, TensorSpec, VOCAB};
