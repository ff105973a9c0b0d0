//! The fast CPU training engine of ResonanceNet (layer 4, not consensus).
//!
//! * [`ops`], [`scan`], [`linalg`], [`model`]: forward and exact backward of the V5 model over a
//!   batch of windows, matrix products through `gemm`, element-wise parts parallel over cores.
//! * [`optimizer`]: AdamW with decoupled weight decay and bias correction, global-norm clipping,
//!   warmup + cosine schedule, and the miner-local optimizer state file.
//! * [`data`]: memory-mapped training files, seeded random windows, a held-out tail.
//! * [`trainer`]: the [`Trainer`] a command-line tool or miner drives step by step.
//! * [`lowrank`]: low-rank (LoRA/ReLoRA-style) training that exports an `rnet_model::ModelUpdate`.
//!
//! Results need not be bit-exact: the canonical loss is always recomputed with
//! `rnet_model`'s evaluator. See `docs/training.md`.

pub mod data;
pub mod linalg;
pub mod lowrank;
pub mod model;
pub mod ops;
pub mod optimizer;
pub mod real;
pub mod rng;
pub mod scan;
pub mod trainer;

pub use data::{Batch, DataConfig, DataError, DataSource};
pub use lowrank::{LowRankConfig, LowRankError, OtherTensors};
pub use model::{FlopCount, ScanMode, Workspace, flop_count};
pub use optimizer::{OptimizerState, StateError, lr_at};
pub use trainer::{Progress, RunOptions, RunSummary, StepStats, TrainConfig, TrainError, Trainer};
