//! ResonanceNet Proof-of-Training miner (layer 5).
//!
//! A [`MiningJob`] describes the block to build on a parent (its hash, checkpoint and supply,
//! the effective required improvement at the job's time, the scheduled shape, the transactions
//! and the time bounds). [`Miner::mine`] grows the parent model to the scheduled shape and trains
//! it with `rnet_training` on the miner's data. After each round it fixes the weights, draws the
//! evaluation sample those weights select (Proof-of-Training v2: the sample depends on the
//! checkpoint root, so it is known only afterwards) and evaluates parent and candidate on it;
//! once the improvement reaches the requirement it builds the coinbase, merkle root, header and
//! sample and signs with the miner's Ed25519 key. The result is a [`MinedBlock`]: the block
//! (with its sample) and its checkpoint bytes.
//!
//! With an [`ExternalTrainer`] ([`Miner::with_external_trainer`], `rnet-miner -trainer-cmd=…`)
//! the training is done by an outside program instead: the miner writes the grown parent as
//! safetensors, runs the command, strictly imports the weights it writes, evaluates them the same
//! way and runs the command again from those weights until the requirement is met
//! ([`external_trainer`]).
//!
//! With a device ([`Miner::with_device`], `rnet-miner -device=cuda|vulkan|metal|auto`) the
//! in-process training steps run on that device through `rnet_gpu` (a low-rank update computes
//! its gradients there and keeps its factors on the CPU); the weights are copied back after each
//! round and judged by the canonical CPU evaluator exactly as CPU-trained ones, so only an
//! accepted model is ever submitted.
//!
//! The miner key lives in a file (`miner.key`, hex, mode 0600), created on first use by
//! [`load_or_create_key`]. The `rnet-miner` binary mines against a node over JSON-RPC
//! (`getblocktemplate`, `getcheckpointchunk`, `submitcheckpoint` / `uploadcheckpointpart`,
//! `submitblock`).

mod engine;
pub mod external_trainer;
pub mod payout;
pub mod template;
pub mod warm_start;

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rnet_consensus::{
    BlockError, CandidateError, ChainParams, SampleEvaluation, block_subsidy, grown_parent,
    update_limits,
};
use rnet_crypto::SigningKey;
use rnet_model::checkpoint::{chunk_hashes, merkle_root as checkpoint_merkle_root};
use rnet_model::update::header_len;
use rnet_model::update_apply::matrix_dims;
use rnet_model::{
    Checkpoint, EvalError, Layout, Model, ModelConfig, ModelError, ModelUpdate, UpdateError, apply,
};
use rnet_primitives::{
    Amount, Block, BlockHash, BlockHeader, Hash256, ModelShape, OutPoint, Transaction, TxIn, TxOut,
    Witness,
};
use rnet_script::PlainKey;
use rnet_training::lowrank::default_targets;
use rnet_training::{
    DataConfig, DataError, DataSource, LowRankConfig, TrainConfig, TrainError, Trainer,
};
use thiserror::Error;

use engine::Engine;
pub use external_trainer::{ExternalTrainer, TrainerError, TrainerFailure};
pub use payout::{PayoutAddressError, recovery_policy_address};
pub use rnet_gpu::{Device, DeviceError, DeviceParseError};
pub use template::{TemplateError, job_from_template};
pub use warm_start::WarmStart;

/// Most windows per training step [`Miner::with_training`] accepts.
pub const MAX_BATCH_WINDOWS: usize = 1024;

/// File name of the miner key inside a data directory.
pub const MINER_KEY_FILE: &str = "miner.key";

/// Why a block could not be mined.
#[derive(Debug, Error)]
pub enum MineError {
    /// Growing the parent model to the scheduled shape (the consensus grown parent) failed.
    #[error("grown parent: {0}")]
    GrownParent(#[from] BlockError),
    /// The training engine failed.
    #[error("training: {0}")]
    Train(#[from] TrainError),
    /// The training data could not be used.
    #[error("training data: {0}")]
    Data(#[from] DataError),
    /// The trained parameters are not a model.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// The canonical evaluation failed.
    #[error("evaluation: {0}")]
    Eval(#[from] EvalError),
    /// The sample could not be drawn or evaluated.
    #[error("sample: {0}")]
    Candidate(#[from] CandidateError),
    /// The model update could not be built or applied to the grown parent.
    #[error("update: {0}")]
    Update(#[from] UpdateError),
    /// The configured low-rank rank is 0 or above the network's `max_rank`.
    #[error("rank {rank} is not in 1..={max_rank} (the network's max_rank)")]
    RankOutOfRange {
        /// The configured rank.
        rank: u32,
        /// The network's `max_rank`.
        max_rank: u32,
    },
    /// The update would be larger than the network's `max_update_bytes`.
    #[error(
        "the update at -rank={rank} is {size} bytes, above max_update_bytes = {max}; mine with \
         a lower rank"
    )]
    UpdateTooLarge {
        /// The rank the update was built with.
        rank: UpdateRank,
        /// Its encoded size in bytes.
        size: u64,
        /// The network's `max_update_bytes`.
        max: u64,
    },
    /// A training hyper-parameter is out of range ([`Miner::with_training`]).
    #[error("training: {0}")]
    Tuning(String),
    /// The improvement on the sample did not reach the requirement within the step budget.
    #[error("improvement {best} did not reach {target} after {steps} steps")]
    NotEnoughImprovement {
        /// Best improvement reached (micro-nats).
        best: u64,
        /// The requirement.
        target: u64,
        /// Steps taken.
        steps: u64,
    },
    /// Mining was cancelled (shutdown, or the tip changed).
    #[error("mining cancelled")]
    Cancelled,
    /// An external trainer writes full weights, so the block's update is a full replacement;
    /// that is not possible with a low `-rank`, nor when it exceeds `max_update_bytes`.
    #[error(
        "an external trainer needs full updates: -rank={rank} gives {size} bytes, \
         max_update_bytes = {max}"
    )]
    ExternalTrainerNeedsFull {
        /// The rank the miner is configured with (resolved).
        rank: UpdateRank,
        /// Size of a full replacement of the scheduled model.
        size: u64,
        /// The network's `max_update_bytes`.
        max: u64,
    },
    /// The external trainer ran its whole run budget without meeting the requirement.
    #[error(
        "external trainer: {runs} runs without reaching {target} (best {best}); last error: {}",
        last_error.as_ref().map_or_else(|| "none".to_string(), |e| e.to_string())
    )]
    TrainerRunsExhausted {
        /// Runs made.
        runs: u32,
        /// Best improvement reached by a run that produced a model (micro-nats).
        best: u64,
        /// The requirement.
        target: u64,
        /// The last run's failure, if it failed.
        last_error: Option<TrainerError>,
    },
    /// The exchange with the external trainer failed before any run (e.g. writing the data file).
    #[error("external trainer: {0}")]
    Trainer(#[from] TrainerError),
    /// The selected training device could not be opened (not built in, missing, failed).
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The device training engine failed.
    #[error("device training: {0}")]
    DeviceEngine(#[from] rnet_gpu::EngineError),
}

impl MineError {
    /// True for failures of one job that a fresh job (a new template) may not repeat: not enough
    /// improvement, and every external-trainer failure. The `rnet-miner` binary logs these and
    /// goes on instead of exiting.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MineError::NotEnoughImprovement { .. }
                | MineError::TrainerRunsExhausted { .. }
                | MineError::Trainer(_)
        )
    }
}

/// Why a key file (the miner key, the Lightning node key) could not be loaded or created.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold 64 hex characters.
    #[error("key file {0}: not a 32-byte hex secret key")]
    Malformed(String),
}

/// Loads an Ed25519 key from `path` (64 hex characters), creating a random one (file mode 0600,
/// synced) if the file does not exist; a malformed file is an error and is never replaced. Used
/// for the miner key and the Lightning node key.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, KeyError> {
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    match fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim())
                .map_err(|_| KeyError::Malformed(path.display().to_string()))?;
            SigningKey::from_slice(&bytes)
                .map_err(|_| KeyError::Malformed(path.display().to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(io)?;
            }
            let key = SigningKey::random();
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(io)?;
            f.write_all(hex::encode(key.as_bytes()).as_bytes()).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// The plain-key (witness v1) output script paying `key`.
pub fn key_script_pubkey(key: &SigningKey) -> Vec<u8> {
    PlainKey::new(key.public_key()).script_pubkey()
}

/// Chunk merkle root of checkpoint bytes (what `header.checkpoint_root` holds).
pub fn checkpoint_root(bytes: &[u8]) -> Hash256 {
    Hash256(checkpoint_merkle_root(&chunk_hashes(bytes)))
}

/// What a block's model update is made of (protocol Part III §5.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpdateRank {
    /// [`UpdateRank::Full`] when a replacement of every tensor of the scheduled model fits the
    /// network's `max_update_bytes` (regtest, testnet), else the largest `LowRank(r)` with
    /// `r ≤ min(`[`AUTO_RANK`]`, max_rank)` whose update of every matrix fits (mainnet); rank 1
    /// if none does, on the rotating subset of matrices that fits ([`low_rank_targets`]).
    #[default]
    Auto,
    /// Train every weight; the update replaces each tensor that changed.
    Full,
    /// Train low-rank adapters of this rank on the matrices (`rnet_training::lowrank`, gains and
    /// conv filters frozen); the update carries one `W += U·V` entry per matrix. Must be in
    /// `1..=max_rank`.
    LowRank(u32),
}

/// The rank [`UpdateRank::Auto`] picks when a full replacement does not fit (capped by the
/// network's `max_rank`): 3.2 MB at the mainnet genesis shape.
pub const AUTO_RANK: u32 = 16;

/// Why a `-rank` value does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("rank {0:?} is not auto, full or a positive integer")]
pub struct RankParseError(pub String);

impl FromStr for UpdateRank {
    type Err = RankParseError;

    /// `auto`, `full` (or `0`, as `rnet-util train --rank 0`) or a rank `N ≥ 1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(UpdateRank::Auto),
            "full" | "0" => Ok(UpdateRank::Full),
            n => n.parse().map(UpdateRank::LowRank).map_err(|_| RankParseError(s.to_string())),
        }
    }
}

impl fmt::Display for UpdateRank {
    /// The `-rank` spelling: `auto`, `full` or the number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateRank::Auto => f.write_str("auto"),
            UpdateRank::Full => f.write_str("full"),
            UpdateRank::LowRank(r) => write!(f, "{r}"),
        }
    }
}

impl UpdateRank {
    /// [`MineError::RankOutOfRange`] when this is a low rank of 0 or above `params.max_rank`.
    pub fn check(self, params: &ChainParams) -> Result<(), MineError> {
        match self {
            UpdateRank::LowRank(rank) if rank == 0 || rank > params.max_rank => {
                Err(MineError::RankOutOfRange { rank, max_rank: params.max_rank })
            }
            _ => Ok(()),
        }
    }

    /// The concrete kind of update for a block of shape `config` on `params`' network:
    /// [`UpdateRank::Auto`] resolved as documented, a low rank checked against `max_rank`
    /// ([`MineError::RankOutOfRange`]). Never returns `Auto`.
    pub fn resolve(self, params: &ChainParams, config: &ModelConfig) -> Result<Self, MineError> {
        self.check(params)?;
        match self {
            UpdateRank::Auto if full_update_size(config) <= params.max_update_bytes => {
                Ok(UpdateRank::Full)
            }
            UpdateRank::Auto => {
                // The largest rank up to AUTO_RANK whose update fits: the model grows, and at
                // about a year of mainnet growth rank 16 on every matrix no longer fits 8 MiB.
                let cap = AUTO_RANK.min(params.max_rank).max(1);
                let fits = (1..=cap)
                    .rev()
                    .find(|&r| low_rank_update_size(config, r) <= params.max_update_bytes);
                Ok(UpdateRank::LowRank(fits.unwrap_or(1)))
            }
            rank => Ok(rank),
        }
    }

    /// Encoded size of the update this kind gives a model of shape `config`: for `Full` (and
    /// `Auto`) the replacement of every tensor (an upper bound: unchanged tensors are left out),
    /// for `LowRank(r)` one rank-`r` entry per adapted matrix (`rnet_training`'s default targets).
    pub fn update_size(self, config: &ModelConfig) -> u64 {
        match self {
            UpdateRank::Auto | UpdateRank::Full => full_update_size(config),
            UpdateRank::LowRank(r) => low_rank_update_size(config, r),
        }
    }
}

/// Encoded size of an update replacing every tensor of a model of shape `config`:
/// `40 + 4B + Σ (13 + 4·rows·cols)` (protocol Part III §5.2).
pub fn full_update_size(config: &ModelConfig) -> u64 {
    let layout = Layout::new(config);
    let entries: u64 = layout
        .tensors
        .iter()
        .map(|t| {
            let (rows, cols) = matrix_dims(t);
            13 + 4 * rows * cols
        })
        .sum();
    header_len(config.kernel_sizes.len()) as u64 + entries
}

/// Encoded size of a rank-`rank` update on the matrices `rnet_training` adapts by default, for
/// a model of shape `config`: `40 + 4B + Σ (17 + 4·r·(rows + cols))`.
pub fn low_rank_update_size(config: &ModelConfig, rank: u32) -> u64 {
    let layout = Layout::new(config);
    low_rank_update_size_for(config, rank, &default_targets(&layout))
}

/// Encoded size of a rank-`rank` update on the matrices named in `targets`.
pub fn low_rank_update_size_for(config: &ModelConfig, rank: u32, targets: &[String]) -> u64 {
    let layout = Layout::new(config);
    let entries: u64 = layout
        .tensors
        .iter()
        .filter(|t| targets.contains(&t.name))
        .map(|t| low_rank_entry_size(t, rank))
        .sum();
    header_len(config.kernel_sizes.len()) as u64 + entries
}

fn low_rank_entry_size(t: &rnet_model::config::TensorSpec, rank: u32) -> u64 {
    let (rows, cols) = matrix_dims(t);
    17 + 4 * u64::from(rank) * (rows + cols)
}

/// The matrices a rank-`rank` update of the block at `height` adapts within `max_bytes`: every
/// default target when they all fit; otherwise, once the model has outgrown the limit (past
/// about 4.2 years of mainnet growth even rank 1 on every matrix exceeds 8 MiB), a rotating
/// subset: starting at target `height mod n` and going round the list, each matrix whose entry
/// still fits is taken. Consecutive blocks thus train different matrices and every matrix keeps
/// being trained, at a share of the blocks that shrinks as the model grows. Returned in
/// schema order; empty when not even one matrix fits.
pub fn low_rank_targets(
    config: &ModelConfig,
    rank: u32,
    height: u64,
    max_bytes: u64,
) -> Vec<String> {
    let layout = Layout::new(config);
    let all = default_targets(&layout);
    if low_rank_update_size_for(config, rank, &all) <= max_bytes {
        return all;
    }
    let specs: Vec<_> =
        all.iter().filter_map(|name| layout.tensors.iter().find(|t| t.name == *name)).collect();
    let n = specs.len();
    if n == 0 {
        return Vec::new();
    }
    let mut size = header_len(config.kernel_sizes.len()) as u64;
    let mut chosen = vec![false; n];
    let start = (height % n as u64) as usize;
    for k in 0..n {
        let i = (start + k) % n;
        let entry = low_rank_entry_size(specs[i], rank);
        if size + entry <= max_bytes {
            size += entry;
            chosen[i] = true;
        }
    }
    specs.iter().zip(chosen).filter(|(_, c)| *c).map(|(t, _)| t.name.clone()).collect()
}

/// Everything needed to mine one block on a parent.
#[derive(Clone, Debug)]
pub struct MiningJob {
    /// The parent block.
    pub parent_hash: BlockHash,
    /// Circulating supply after the parent (for the subsidy).
    pub parent_supply: Amount,
    /// The parent's checkpoint.
    pub parent_checkpoint: Arc<Checkpoint>,
    /// Height of the new block.
    pub height: u32,
    /// Effective required improvement of the new block at [`MiningJob::time`] (micro-nats).
    pub required_improvement: u64,
    /// Scheduled model shape `(d_model, n_layers)` of the new block.
    pub shape: (u32, u32),
    /// Transactions to include after the coinbase.
    pub transactions: Vec<Transaction>,
    /// Sum of their fees.
    pub fees: Amount,
    /// Smallest allowed header time (median time past + 1).
    pub min_time: u64,
    /// Header time to use (raised to `min_time`).
    pub time: u64,
    /// Output script of the coinbase.
    pub payout_script: Vec<u8>,
}

/// The miner's training data.
#[derive(Clone, Debug)]
pub enum TrainingData {
    /// The training text bundled with `rnet-model`.
    Bundled,
    /// Bytes of the miner's own data (e.g. read from `-data=FILE`).
    Bytes(Arc<Vec<u8>>),
}

impl TrainingData {
    /// The dataset commitment written into the header: the bundled text's hash, or
    /// Keccak-256d of the miner's bytes.
    pub fn commitment(&self) -> Hash256 {
        match self {
            TrainingData::Bundled => Hash256(rnet_model::data::CORPUS_HASH),
            TrainingData::Bytes(b) => Hash256(rnet_crypto::keccak256d(b)),
        }
    }

    fn source(&self, window: usize, seed: u64) -> Result<DataSource, DataError> {
        let config = DataConfig { window, holdout_fraction: 0.0, seed };
        match self {
            TrainingData::Bundled => DataSource::from_static(rnet_model::training_text(), config),
            TrainingData::Bytes(b) => DataSource::from_bytes(b.as_ref().clone(), config),
        }
    }
}

/// A mined block with its model update and the checkpoint that update gives.
#[derive(Clone, Debug)]
pub struct MinedBlock {
    /// The signed block.
    pub block: Block,
    /// The model update's canonical bytes (the header commits to their root and size; peers
    /// apply them to the grown parent).
    pub update_bytes: Vec<u8>,
    /// The derived checkpoint's canonical bytes: the update applied to the grown parent with
    /// `rnet_model::apply` (the header commits to their root and size).
    pub checkpoint_bytes: Vec<u8>,
    /// The kind of update used ([`UpdateRank::Full`] or [`UpdateRank::LowRank`]).
    pub rank: UpdateRank,
    /// The subsidy claimed by the coinbase (without fees).
    pub subsidy: Amount,
    /// Training steps taken.
    pub steps: u64,
    /// Wall-clock time spent mining.
    pub elapsed: Duration,
    /// The external trainer's failed runs for this block, in order (empty without one).
    pub trainer_failures: Vec<TrainerFailure>,
}

/// How the miner reports progress and learns that it should stop.
pub struct MineControl<'a> {
    /// Show an `indicatif` progress bar on stderr.
    pub progress: bool,
    /// Polled between training rounds; `true` aborts with [`MineError::Cancelled`].
    pub cancel: &'a (dyn Fn() -> bool + Sync),
    /// Called once after training, when the block is assembled: the transactions to include
    /// now with the sum of their fees (e.g. the current mempool), or `None` to keep the job's.
    /// The transactions do not enter the evaluation sample's seed, so a new transaction never
    /// needs to restart the training, only this re-selection.
    pub transactions: Option<&'a TransactionSource<'a>>,
}

/// A source of the block's transactions at assembly time (see [`MineControl::transactions`]).
pub type TransactionSource<'a> = dyn Fn() -> Option<(Vec<Transaction>, Amount)> + Sync + 'a;

impl MineControl<'_> {
    /// No progress bar, never cancelled, the job's transactions.
    pub fn quiet() -> MineControl<'static> {
        MineControl { progress: false, cancel: &|| false, transactions: None }
    }
}

/// The Proof-of-Training miner: key, data, update kind and training hyper-parameters.
#[derive(Clone, Debug)]
pub struct Miner {
    /// Chain parameters (sample size, corpus, subsidy rules).
    pub params: ChainParams,
    /// The key that signs headers.
    pub key: SigningKey,
    /// The training data.
    pub data: TrainingData,
    /// Training hyper-parameters (the seed is mixed with the height and attempt).
    pub train: TrainConfig,
    /// Training steps between two canonical evaluations.
    pub steps_per_round: u64,
    /// Step budget of one attempt.
    pub max_steps: u64,
    /// Attempts (fresh seed, halved learning rate) before giving up.
    pub attempts: u32,
    /// What the block's update is made of (default [`UpdateRank::Auto`]); checked against the
    /// network's `max_rank` by [`Miner::with_rank`] and again when mining.
    pub rank: UpdateRank,
    /// Train with this outside program instead of in-process (default `None`).
    pub external: Option<ExternalTrainer>,
    /// Where in-process training runs (default [`Device::Cpu`], the CPU engine); set with
    /// [`Miner::with_device`], which resolves `auto`. Ignored with [`Miner::external`].
    pub device: Device,
    /// Where the optimizer state of a mined block waits for the next job on top of it (default
    /// `None`: every block starts from zero moments); see [`warm_start`].
    pub warm_start: Option<Arc<WarmStart>>,
}

impl Miner {
    /// A miner for `params` with `key`, training on `data` with gentle defaults (AdamW lr 1e-3,
    /// 4 windows per step) and [`Miner::balanced_steps_per_round`] steps between evaluations.
    pub fn new(params: ChainParams, key: SigningKey, data: TrainingData) -> Self {
        let batch_windows = 4;
        let steps_per_round = Self::balanced_steps_per_round(&params, batch_windows);
        Self {
            params,
            key,
            data,
            train: TrainConfig {
                lr: 1e-3,
                warmup: 0,
                total_steps: 1_000_000,
                batch_windows,
                weight_decay: 0.0,
                ..TrainConfig::default()
            },
            steps_per_round,
            max_steps: 2_000,
            attempts: 3,
            rank: UpdateRank::Auto,
            external: None,
            device: Device::Cpu,
            warm_start: None,
        }
    }

    /// The same miner with AdamW learning rate `lr` and `batch_windows` windows per step (and the
    /// steps per round rebalanced for that batch); [`MineError::Tuning`] when `lr` is not a
    /// positive finite number at most 1 or `batch_windows` is not in `1..=`[`MAX_BATCH_WINDOWS`].
    pub fn with_training(mut self, lr: f32, batch_windows: usize) -> Result<Self, MineError> {
        if !(lr.is_finite() && lr > 0.0 && lr <= 1.0) {
            return Err(MineError::Tuning(format!("learning rate {lr} is not in (0, 1]")));
        }
        if !(1..=MAX_BATCH_WINDOWS).contains(&batch_windows) {
            return Err(MineError::Tuning(format!(
                "batch of {batch_windows} windows is not in 1..={MAX_BATCH_WINDOWS}"
            )));
        }
        self.train.lr = lr;
        self.train.batch_windows = batch_windows;
        self.steps_per_round = Self::balanced_steps_per_round(&self.params, batch_windows);
        Ok(self)
    }

    /// The same miner continuing its optimizer state from each block it mines to the next job
    /// built on that block ([`warm_start`]); share one [`WarmStart`] across the miners of a loop.
    pub fn with_warm_start(mut self, warm_start: Arc<WarmStart>) -> Self {
        self.warm_start = Some(warm_start);
        self
    }

    /// The same miner training on `device`: opens it once to check it (and to resolve
    /// [`Device::Auto`] to the device it picks, which [`Miner::device`] then names so callers can
    /// log it), and opens it again for every attempt. A device that is not built in, missing or
    /// broken is [`MineError::Device`] — never a silent CPU fallback. A full-rank update trains
    /// entirely on the device; a low-rank one computes each step's gradient there and keeps the
    /// factors on the CPU (see `engine.rs`).
    pub fn with_device(mut self, device: Device) -> Result<Self, MineError> {
        self.device = device.resolve()?;
        Ok(self)
    }

    /// The same miner training with `trainer` (module docs of [`external_trainer`]).
    pub fn with_external_trainer(mut self, trainer: ExternalTrainer) -> Self {
        self.external = Some(trainer);
        self
    }

    /// The same miner building updates of kind `rank`: [`MineError::RankOutOfRange`] when a low
    /// rank is 0 or above the network's `max_rank`.
    pub fn with_rank(mut self, rank: UpdateRank) -> Result<Self, MineError> {
        rank.check(&self.params)?;
        self.rank = rank;
        Ok(self)
    }

    /// Training steps per evaluation round that spend about as much compute on training as on
    /// evaluating: a round evaluates parent and candidate on `K` windows (`2K` window forwards)
    /// and a step costs about three window forwards (forward and backward) per batch window, so
    /// `⌈2K / (3 · batch_windows)⌉` (regtest 6, mainnet 22 with 4 windows per step). Evaluating
    /// after every step would spend most of the time evaluating.
    pub fn balanced_steps_per_round(params: &ChainParams, batch_windows: usize) -> u64 {
        let k = params.sample_records as u64;
        (2 * k).div_ceil(3 * batch_windows.max(1) as u64).max(1)
    }

    /// Mines `job`: grow the parent by the consensus rule, train (in full or low rank, see
    /// [`Miner::rank`]) until the improvement on the drawn sample reaches the requirement, build
    /// and sign the block. The block's checkpoint is its update applied canonically to the grown
    /// parent, so it is exactly what validators derive.
    pub fn mine(
        &self,
        job: &MiningJob,
        control: &MineControl<'_>,
    ) -> Result<MinedBlock, MineError> {
        let started = Instant::now();
        // The parent, shape and height are final, so the consensus grown parent is too.
        let grown = grown_parent(&job.parent_checkpoint.model, &self.header_for(job, &[], &[]))?;
        let rank = self.rank.resolve(&self.params, grown.config())?;
        let max = self.params.max_update_bytes;
        if let Some(trainer) = &self.external {
            let size = full_update_size(grown.config());
            if rank != UpdateRank::Full || size > max {
                return Err(MineError::ExternalTrainerNeedsFull { rank, size, max });
            }
            let (round, failures) = self.train_external(job, &grown, trainer, control)?;
            return Ok(self.assemble(job, control, round, 0, rank, failures, started));
        }
        // A low rank adapts as many matrices as fit (all of them until the model outgrows
        // max_update_bytes, then a rotating subset); a full update must fit whole.
        let targets = match rank {
            UpdateRank::LowRank(r) => {
                let targets = low_rank_targets(grown.config(), r, u64::from(job.height), max);
                if targets.is_empty() {
                    let size = rank.update_size(grown.config());
                    return Err(MineError::UpdateTooLarge { rank, size, max });
                }
                targets
            }
            UpdateRank::Auto | UpdateRank::Full => {
                let size = rank.update_size(grown.config());
                if size > max {
                    return Err(MineError::UpdateTooLarge { rank, size, max });
                }
                Vec::new()
            }
        };
        let mut best = 0;
        let mut total_steps = 0;
        let mut last = None;
        for attempt in 0..self.attempts.max(1) {
            match self.train(job, &grown, rank, &targets, attempt, control) {
                Ok(round) => {
                    last = Some((round, total_steps));
                    break;
                }
                Err(MineError::NotEnoughImprovement { best: b, steps, .. }) => {
                    best = best.max(b);
                    total_steps += steps;
                }
                Err(e) => return Err(e),
            }
        }
        let Some((mut round, earlier_steps)) = last else {
            return Err(MineError::NotEnoughImprovement {
                best,
                target: job.required_improvement,
                steps: total_steps,
            });
        };
        let optimizer = round.optimizer.take();
        let mined = self.assemble(job, control, round, earlier_steps, rank, Vec::new(), started);
        if let (Some(warm), Some(state)) = (&self.warm_start, optimizer) {
            warm.keep(mined.block.block_hash(), state);
        }
        Ok(mined)
    }

    /// The signed block of `job` for a successful `round` (after `earlier_steps` steps of failed
    /// attempts).
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        &self,
        job: &MiningJob,
        control: &MineControl<'_>,
        round: Round,
        earlier_steps: u64,
        rank: UpdateRank,
        trainer_failures: Vec<TrainerFailure>,
        started: Instant,
    ) -> MinedBlock {
        let Round { update_bytes, checkpoint_bytes, eval, steps, .. } = round;
        let steps = earlier_steps + steps;
        let subsidy = block_subsidy(
            &self.params,
            job.parent_supply,
            eval.improvement(),
            job.required_improvement,
        );
        let mut header = self.header_for(job, &update_bytes, &checkpoint_bytes);
        header.parent_loss = eval.parent_loss;
        header.val_loss = eval.val_loss;
        header.training_steps = steps;
        let (txs, fees) = control
            .transactions
            .and_then(|source| source())
            .unwrap_or_else(|| (job.transactions.clone(), job.fees));
        let value = Amount(subsidy.0.saturating_add(fees.0));
        let payout = job.payout_script.clone();
        let mut transactions = vec![coinbase(&self.params, job.height, value, payout)];
        transactions.extend(txs);
        let mut block = Block { header, transactions, sample: eval.sample };
        block.header.merkle_root = block.compute_merkle_root().0;
        sign_header(&mut block.header, &self.key);
        MinedBlock {
            block,
            update_bytes,
            checkpoint_bytes,
            rank,
            subsidy,
            steps,
            elapsed: started.elapsed(),
            trainer_failures,
        }
    }

    /// The header of `job`'s block committing to `update_bytes` and `checkpoint_bytes`, before
    /// its losses, merkle root and signature are known: everything the sample seed depends on is
    /// final.
    fn header_for(
        &self,
        job: &MiningJob,
        update_bytes: &[u8],
        checkpoint_bytes: &[u8],
    ) -> BlockHeader {
        BlockHeader {
            version: rnet_consensus::BLOCK_VERSION,
            prev_block_hash: job.parent_hash,
            merkle_root: Hash256::ZERO,
            time: job.time.max(job.min_time),
            height: job.height,
            shape: ModelShape { d_model: job.shape.0, n_layers: job.shape.1 },
            checkpoint_root: checkpoint_root(checkpoint_bytes),
            checkpoint_size: checkpoint_bytes.len() as u64,
            update_root: checkpoint_root(update_bytes),
            update_size: update_bytes.len() as u64,
            parent_loss: 0,
            val_loss: 0,
            required_improvement: job.required_improvement,
            training_steps: 0,
            dataset_commitment: self.data.commitment(),
            miner_pubkey: self.key.public_key().to_bytes(),
            signature: [0; 64],
        }
    }

    /// One attempt: trains `grown` (the consensus grown parent) with update kind `rank`
    /// (resolved, not `Auto`; a low rank adapts `targets`), and after every round builds the update, applies it canonically
    /// and evaluates the result on the sample its header draws.
    fn train(
        &self,
        job: &MiningJob,
        grown: &Model,
        rank: UpdateRank,
        targets: &[String],
        attempt: u32,
        control: &MineControl<'_>,
    ) -> Result<Round, MineError> {
        let target = job.required_improvement;
        let height = u64::from(job.height);
        let limits = update_limits(&self.params);
        let seed = self.train.seed
            ^ u64::from(job.height).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(attempt).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        let config = grown.config().clone();
        let source = self.data.source(config.window, seed)?;
        let lr = self.train.lr / (1u32 << attempt.min(8)) as f32;
        let train = TrainConfig { seed, lr, ..self.train.clone() };
        let params = grown.params().to_vec();
        // Only the first attempt continues: a later one restarts on purpose (fresh seed, lower
        // learning rate). Low-rank training has no model-wide moments to continue.
        let warm = match (&self.warm_start, rank, attempt) {
            (Some(w), UpdateRank::Auto | UpdateRank::Full, 0) => w.take_after(&job.parent_hash),
            _ => None,
        };
        let mut trainer = match rank {
            UpdateRank::LowRank(r) => {
                let low_rank = LowRankConfig {
                    rank: r as usize,
                    seed,
                    tensors: targets.to_vec(),
                    ..LowRankConfig::default()
                };
                let factors = Box::new(Trainer::new_low_rank(
                    params,
                    config.clone(),
                    train.clone(),
                    low_rank,
                )?);
                if self.device == Device::Cpu {
                    Engine::Cpu(factors)
                } else {
                    // The forward and backward on the device, on the effective weights.
                    let device = self.device.open()?;
                    tracing::debug!(
                        "block {} attempt {attempt}: rank-{r} training, gradients on {}",
                        job.height,
                        device.name()
                    );
                    let device =
                        Box::new(device.trainer(factors.params(), config.clone(), train, None)?);
                    Engine::DeviceLowRank { device, factors }
                }
            }
            UpdateRank::Auto | UpdateRank::Full if self.device == Device::Cpu => {
                Engine::Cpu(Box::new(Trainer::new(params, config.clone(), train, warm)?))
            }
            UpdateRank::Auto | UpdateRank::Full => {
                let device = self.device.open()?;
                tracing::debug!(
                    "block {} attempt {attempt}: training on {}",
                    job.height,
                    device.name()
                );
                Engine::Device(Box::new(device.trainer(&params, config.clone(), train, warm)?))
            }
        };
        // A warm-started trainer counts the steps of earlier blocks too.
        let first_step = trainer.global_step();
        let bar = if control.progress {
            let bar = ProgressBar::new(target);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} block {prefix} [{bar:30}] {pos}/{len} µnats {msg} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(job.height.to_string());
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut best = 0;
        let rounds = (self.max_steps / self.steps_per_round.max(1)).max(1);
        for _ in 0..rounds {
            if (control.cancel)() {
                bar.finish_and_clear();
                return Err(MineError::Cancelled);
            }
            for _ in 0..self.steps_per_round.max(1) {
                let batch = source.batch(trainer.global_step(), self.train.batch_windows.max(1));
                trainer.step(&batch)?;
            }
            // Fix the weights as an update; the block's model is that update applied to the
            // grown parent (bit for bit what validators derive), then learn the sample it draws.
            let update = match rank {
                UpdateRank::LowRank(_) => trainer.to_update()?,
                UpdateRank::Auto | UpdateRank::Full => {
                    // From a device, this copies the weights back to the host.
                    let trained = Model::from_parts(config.clone(), trainer.params()?)?;
                    // `Checkpoint::new` flushes subnormals, so the replacement values load.
                    let trained = Checkpoint::new(height, trained);
                    ModelUpdate::replacing_changed(grown, &trained.model)?
                }
            };
            let size = update.encoded_len();
            if size > limits.max_update_bytes {
                bar.finish_and_clear();
                return Err(MineError::UpdateTooLarge { rank, size, max: limits.max_update_bytes });
            }
            let (update_bytes, checkpoint_bytes, eval) = self.judge(job, grown, &update)?;
            best = best.max(eval.improvement());
            bar.set_position(best.min(target));
            bar.set_message(format!(
                "best {best} step {} update {} B",
                trainer.global_step(),
                update_bytes.len()
            ));
            if eval.improvement() >= target {
                bar.finish_and_clear();
                let steps = trainer.global_step() - first_step;
                let optimizer = match rank {
                    UpdateRank::LowRank(_) => None,
                    UpdateRank::Auto | UpdateRank::Full => Some(trainer.optimizer_state()?),
                };
                return Ok(Round { update_bytes, checkpoint_bytes, eval, steps, optimizer });
            }
        }
        bar.finish_and_clear();
        let steps = trainer.global_step() - first_step;
        Err(MineError::NotEnoughImprovement { best, target, steps })
    }

    /// Applies `update` to `grown` canonically (bit for bit what validators derive) and evaluates
    /// the result against the parent on the sample its header draws: the update's and the
    /// checkpoint's bytes and the evaluation.
    fn judge(
        &self,
        job: &MiningJob,
        grown: &Model,
        update: &ModelUpdate,
    ) -> Result<(Vec<u8>, Vec<u8>, SampleEvaluation), MineError> {
        let limits = update_limits(&self.params);
        let checkpoint = apply(grown, update, &limits, u64::from(job.height))?;
        let update_bytes = update.encode();
        let checkpoint_bytes = checkpoint.to_bytes();
        let header = self.header_for(job, &update_bytes, &checkpoint_bytes);
        let eval = rnet_consensus::evaluate_candidate(
            &self.params,
            &header,
            &job.parent_checkpoint.model,
            &checkpoint.model,
        )?;
        Ok((update_bytes, checkpoint_bytes, eval))
    }

    /// The `{data}` file of `trainer`: its own path, or the miner's data written to
    /// [`external_trainer::DATA_FILE`] in the work directory (rewritten only when it differs).
    fn trainer_data(&self, trainer: &ExternalTrainer) -> Result<std::path::PathBuf, TrainerError> {
        if let Some(path) = &trainer.data {
            return Ok(path.clone());
        }
        let path = trainer.work_dir.join(external_trainer::DATA_FILE);
        let bytes: &[u8] = match &self.data {
            TrainingData::Bundled => rnet_model::training_text(),
            TrainingData::Bytes(b) => b,
        };
        let io = |action, e: &std::io::Error| TrainerError::Io {
            action,
            path: path.clone(),
            kind: e.kind(),
            message: e.to_string(),
        };
        let same = fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64)
            && fs::read(&path).is_ok_and(|b| b == bytes);
        if !same {
            fs::create_dir_all(&trainer.work_dir).map_err(|e| io("creating", &e))?;
            fs::write(&path, bytes).map_err(|e| io("writing", &e))?;
        }
        Ok(path)
    }

    /// Mining with an external trainer: up to `trainer.runs` runs, each from the last good weights
    /// (first the grown parent); a failed run is logged and recorded, never fatal. A run's weights
    /// become a full-replacement update of the grown parent, judged like in-process training.
    fn train_external(
        &self,
        job: &MiningJob,
        grown: &Model,
        trainer: &ExternalTrainer,
        control: &MineControl<'_>,
    ) -> Result<(Round, Vec<TrainerFailure>), MineError> {
        let target = job.required_improvement;
        let max = self.params.max_update_bytes;
        let data = self.trainer_data(trainer)?;
        let runs = trainer.runs.max(1);
        let mut current = Checkpoint::new(u64::from(job.height), grown.clone());
        let mut failures: Vec<TrainerFailure> = Vec::new();
        let mut best = 0;
        let mut good_runs = 0u64;
        let mut last_error = None;
        for run in 0..runs {
            if (control.cancel)() {
                return Err(MineError::Cancelled);
            }
            let trained = match trainer.run(&current, &data) {
                Ok(trained) => trained,
                Err(error) => {
                    tracing::warn!(
                        "external trainer run {}/{runs} for block {} failed: {error}; running it \
                         again from the last good weights",
                        run + 1,
                        job.height
                    );
                    last_error = Some(error.clone());
                    failures.push(TrainerFailure { run, error });
                    continue;
                }
            };
            last_error = None;
            good_runs += 1;
            let update = ModelUpdate::replacing_changed(grown, &trained.model)?;
            let size = update.encoded_len();
            if size > max {
                let rank = UpdateRank::Full;
                return Err(MineError::ExternalTrainerNeedsFull { rank, size, max });
            }
            let (update_bytes, checkpoint_bytes, eval) = self.judge(job, grown, &update)?;
            best = best.max(eval.improvement());
            tracing::info!(
                "external trainer run {}/{runs} for block {}: improvement {} of {target} required \
                 (parent {} val {})",
                run + 1,
                job.height,
                eval.improvement(),
                eval.parent_loss,
                eval.val_loss
            );
            if eval.improvement() >= target {
                let steps = good_runs * trainer.steps;
                let round = Round { update_bytes, checkpoint_bytes, eval, steps, optimizer: None };
                return Ok((round, failures));
            }
            current = trained;
        }
        Err(MineError::TrainerRunsExhausted { runs, best, target, last_error })
    }
}

/// The outcome of a successful training attempt.
struct Round {
    /// The update's canonical bytes.
    update_bytes: Vec<u8>,
    /// The derived checkpoint's canonical bytes.
    checkpoint_bytes: Vec<u8>,
    /// Parent and candidate on the drawn sample.
    eval: SampleEvaluation,
    /// Training steps of the attempt.
    steps: u64,
    /// The optimizer state after the last step (full-rank in-process training only), for
    /// [`Miner::warm_start`].
    optimizer: Option<rnet_training::OptimizerState>,
}

/// Sets `miner_pubkey` to `key`'s public key and signs the block id with it.
pub fn sign_header(header: &mut BlockHeader, key: &SigningKey) {
    header.miner_pubkey = key.public_key().to_bytes();
    header.signature = key.sign(header.hash().as_bytes()).to_bytes();
}

/// A coinbase for `height` on `params`' network: script_sig = height (u32 LE) ‖ network magic ‖
/// `"rnet-miner"` ([`ChainParams::coinbase_tag`]; consensus requires the first 8 bytes), one
/// output.
pub fn coinbase(
    params: &ChainParams,
    height: u32,
    value: Amount,
    script_pubkey: Vec<u8>,
) -> Transaction {
    let mut script_sig = params.coinbase_tag(height).to_vec();
    script_sig.extend_from_slice(b"rnet-miner");
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            previous_output: OutPoint::NULL,
            script_sig,
            sequence: u32::MAX,
            witness: Witness::new(),
        }],
        outputs: vec![TxOut { value, script_pubkey }],
        lock_time: 0,
    }
}

/// `val_loss` (micro-nats per byte) in nats per byte.
pub fn loss_nats(val_loss: u64) -> f64 {
    val_loss as f64 / 1e6
}

/// `val_loss` (micro-nats per byte) in bits per byte.
pub fn loss_bits(val_loss: u64) -> f64 {
    loss_nats(val_loss) / std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MINER_KEY_FILE);
        let a = load_or_create_key(&path).unwrap();
        let b = load_or_create_key(&path).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(&path, "zz").unwrap();
        assert!(matches!(load_or_create_key(&path), Err(KeyError::Malformed(_))));
    }

    /// The coinbases the miner builds for the same height, value and payout differ on every
    /// network (the magic follows the height), so their txids, and every spend of their coins,
    /// differ too.
    #[test]
    fn coinbases_differ_across_networks() {
        let spk = key_script_pubkey(&SigningKey::from_bytes(&[7; 32]));
        let value = Amount(50 * rnet_primitives::COIN);
        let [main, test, reg] = rnet_primitives::Network::ALL.map(ChainParams::for_network);
        for height in [1, 144, 1_000_000] {
            let [m, t, r] =
                [&main, &test, &reg].map(|p| coinbase(p, height, value, spk.clone()).txid());
            assert_ne!(m, t, "mainnet and testnet at height {height}");
            assert_ne!(t, r);
            assert_ne!(m, r);
            let cb = coinbase(&main, height, value, spk.clone());
            assert_eq!(cb.inputs[0].script_sig[..8], main.coinbase_tag(height));
            assert_eq!(cb.inputs[0].script_sig[4..8], main.magic);
        }
    }

    /// The regtest job on genesis.
    fn regtest_job(params: &ChainParams, key: &SigningKey) -> MiningJob {
        let genesis = params.genesis_summary();
        MiningJob {
            parent_hash: genesis.hash,
            parent_supply: genesis.circulating_supply,
            parent_checkpoint: Arc::new(params.genesis_checkpoint()),
            height: 1,
            required_improvement: params.initial_required_improvement,
            shape: rnet_consensus::next_block_shape(params, &genesis),
            transactions: vec![],
            fees: Amount::ZERO,
            min_time: genesis.time + 1,
            time: genesis.time + 600,
            payout_script: key_script_pubkey(key),
        }
    }

    /// Checks `mined` as a validator does (block rules, then Proof-of-Training with the update:
    /// sample, update commitment, canonical apply to the grown parent, committed root, both
    /// losses) and that the checkpoint it derives is the miner's; returns the decoded update.
    fn validate(params: &ChainParams, job: &MiningJob, mined: &MinedBlock) -> ModelUpdate {
        validate_on(params, &params.genesis_summary(), job, mined)
    }

    /// [`validate`] on the parent `parent`.
    fn validate_on(
        params: &ChainParams,
        parent: &rnet_consensus::HeaderSummary,
        job: &MiningJob,
        mined: &MinedBlock,
    ) -> ModelUpdate {
        let header = &mined.block.header;
        assert!(header.parent_loss - header.val_loss >= job.required_improvement);
        assert_eq!(header.update_size, mined.update_bytes.len() as u64);
        assert_eq!(header.update_root, checkpoint_root(&mined.update_bytes));
        assert_eq!(header.checkpoint_size, mined.checkpoint_bytes.len() as u64);
        assert_eq!(header.checkpoint_root, checkpoint_root(&mined.checkpoint_bytes));
        rnet_consensus::check_block(params, &mined.block).unwrap();
        let parent_bytes = job.parent_checkpoint.to_bytes();
        let derived = rnet_consensus::check_proof_of_training(
            params,
            header,
            parent,
            &mined.block.sample,
            &parent_bytes,
            &mined.update_bytes,
        )
        .unwrap();
        assert_eq!(derived.to_bytes(), mined.checkpoint_bytes);
        ModelUpdate::decode(&mined.update_bytes).unwrap()
    }

    #[test]
    fn mines_a_valid_regtest_block() {
        let params = ChainParams::regtest();
        let key = SigningKey::from_bytes(&[7; 32]);
        let miner = Miner::new(params.clone(), key.clone(), TrainingData::Bundled);
        let job = regtest_job(&params, &key);
        let mined = miner.mine(&job, &MineControl::quiet()).unwrap();
        // Auto: a full replacement of the regtest model fits max_update_bytes.
        assert_eq!(mined.rank, UpdateRank::Full);
        let update = validate(&params, &job, &mined);
        assert!(!update.entries().is_empty());
        assert!(update.entries().iter().all(|e| e.rank().is_none()), "replacements only");

        // The transaction source is asked at assembly: its fees reach the coinbase, and the
        // same training (same seed) gives the same update, checkpoint and sample.
        let extra_fees = Amount(12_345);
        let source = || Some((vec![], extra_fees));
        let control =
            MineControl { progress: false, cancel: &|| false, transactions: Some(&source) };
        let refreshed = miner.mine(&job, &control).unwrap();
        assert_eq!(refreshed.update_bytes, mined.update_bytes);
        assert_eq!(refreshed.checkpoint_bytes, mined.checkpoint_bytes);
        assert_eq!(refreshed.block.sample, mined.block.sample);
        let coinbase_value = |b: &Block| b.transactions[0].outputs[0].value.0;
        assert_eq!(coinbase_value(&refreshed.block), coinbase_value(&mined.block) + extra_fees.0);
    }

    /// The job of the block after `mined` (a block of `job`).
    fn child_job(
        params: &ChainParams,
        job: &MiningJob,
        mined: &MinedBlock,
    ) -> (MiningJob, rnet_consensus::HeaderSummary) {
        let header = &mined.block.header;
        let genesis = params.genesis_summary();
        let parent = rnet_consensus::HeaderSummary {
            hash: mined.block.block_hash(),
            height: header.height,
            time: header.time,
            d_model: header.shape.d_model,
            n_layers: header.shape.n_layers,
            cumulative_growth: header.shape.d_model - genesis.d_model,
            checkpoint_root: header.checkpoint_root,
            parent_loss: header.parent_loss,
            val_loss: header.val_loss,
            stagnation: 0,
            ..genesis
        };
        let checkpoint = Checkpoint::from_bytes(&mined.checkpoint_bytes).unwrap();
        let child = MiningJob {
            parent_hash: parent.hash,
            parent_checkpoint: Arc::new(checkpoint),
            height: header.height + 1,
            shape: rnet_consensus::next_block_shape(params, &parent),
            min_time: header.time + 1,
            time: header.time + 600,
            ..job.clone()
        };
        (child, parent)
    }

    #[test]
    fn warm_start_continues_the_optimizer_only_on_the_block_it_mined() {
        let params = ChainParams::regtest();
        let key = SigningKey::from_bytes(&[7; 32]);
        let warm = Arc::new(WarmStart::new());
        let cold = Miner::new(params.clone(), key.clone(), TrainingData::Bundled);
        let miner = cold.clone().with_warm_start(warm.clone());
        let job1 = regtest_job(&params, &key);
        let first = miner.mine(&job1, &MineControl::quiet()).unwrap();
        assert_eq!(warm.held(), Some((first.block.block_hash(), first.steps)));

        // On its own block the optimizer goes on: its update count continues, and the block is
        // valid (the model grew in between: the moments were remapped).
        let (job2, parent) = child_job(&params, &job1, &first);
        assert_ne!(
            job2.shape,
            (first.block.header.shape.d_model, first.block.header.shape.n_layers)
        );
        let second = miner.mine(&job2, &MineControl::quiet()).unwrap();
        validate_on(&params, &parent, &job2, &second);
        assert_eq!(second.block.header.training_steps, second.steps, "this block's steps only");
        assert_eq!(warm.held(), Some((second.block.block_hash(), first.steps + second.steps)));
        let cold_second = cold.mine(&job2, &MineControl::quiet()).unwrap();
        assert_ne!(cold_second.update_bytes, second.update_bytes, "the moments changed training");

        // On any other parent it starts from zero moments: the same block as a cold miner's.
        let again = miner.mine(&job1, &MineControl::quiet()).unwrap();
        assert_eq!(again.update_bytes, first.update_bytes);
        assert_eq!(warm.held(), Some((again.block.block_hash(), again.steps)));
    }

    #[test]
    fn mines_a_valid_low_rank_block() {
        let params = ChainParams::regtest();
        let key = SigningKey::from_bytes(&[9; 32]);
        let miner = Miner::new(params.clone(), key.clone(), TrainingData::Bundled)
            .with_rank(UpdateRank::LowRank(4))
            .unwrap();
        let job = regtest_job(&params, &key);
        let mined = miner.mine(&job, &MineControl::quiet()).unwrap();
        assert_eq!(mined.rank, UpdateRank::LowRank(4));
        let update = validate(&params, &job, &mined);
        let low_rank = update.entries().iter().filter(|e| e.rank() == Some(4)).count();
        assert!(low_rank > 0, "the update carries rank-4 entries");
        // The same model as a full replacement of every changed tensor is much larger.
        let header = &mined.block.header;
        let grown = grown_parent(&job.parent_checkpoint.model, header).unwrap();
        let derived = Checkpoint::from_bytes(&mined.checkpoint_bytes).unwrap();
        let full = ModelUpdate::replacing_changed(&grown, &derived.model).unwrap().encoded_len();
        assert!(
            (mined.update_bytes.len() as u64) < full,
            "rank-4 update {} bytes, full replacement {full} bytes",
            mined.update_bytes.len()
        );
        assert_eq!(
            mined.update_bytes.len() as u64,
            UpdateRank::LowRank(4).update_size(grown.config())
        );
    }

    #[test]
    fn training_tuning_is_checked_and_rebalances_rounds() {
        let params = ChainParams::testnet();
        let miner =
            Miner::new(params.clone(), SigningKey::from_bytes(&[7; 32]), TrainingData::Bundled);
        let tuned = miner.clone().with_training(3e-3, 16).unwrap();
        assert_eq!((tuned.train.lr, tuned.train.batch_windows), (3e-3, 16));
        // 2K = 128 window forwards per evaluation, 3 per window of a step: ⌈128 / 48⌉.
        assert_eq!(tuned.steps_per_round, 3);
        for (lr, batch) in [(0.0, 4), (-1e-3, 4), (f32::NAN, 4), (2.0, 4), (1e-3, 0), (1e-3, 1025)]
        {
            assert!(
                matches!(miner.clone().with_training(lr, batch), Err(MineError::Tuning(_))),
                "lr {lr} batch {batch}"
            );
        }
    }

    #[test]
    fn rank_above_max_rank_is_a_typed_error() {
        let params = ChainParams::regtest();
        let key = SigningKey::from_bytes(&[7; 32]);
        let max_rank = params.max_rank;
        let miner = Miner::new(params.clone(), key.clone(), TrainingData::Bundled);
        for rank in [0, max_rank + 1] {
            let err = miner.clone().with_rank(UpdateRank::LowRank(rank)).unwrap_err();
            assert!(
                matches!(err, MineError::RankOutOfRange { rank: r, max_rank: m } if r == rank && m == max_rank),
                "{err}"
            );
        }
        assert_eq!(
            miner.clone().with_rank(UpdateRank::LowRank(max_rank)).unwrap().rank,
            UpdateRank::LowRank(max_rank)
        );
        // Set directly, the rank is checked when mining, before any training.
        let mut direct = miner;
        direct.rank = UpdateRank::LowRank(max_rank + 1);
        let job = regtest_job(&params, &key);
        let err = direct.mine(&job, &MineControl::quiet()).unwrap_err();
        assert!(matches!(err, MineError::RankOutOfRange { .. }), "{err}");
    }

    #[test]
    fn oversized_update_is_a_typed_error() {
        let mut params = ChainParams::regtest();
        let key = SigningKey::from_bytes(&[7; 32]);
        let job = regtest_job(&params, &key);
        let miner = Miner::new(params.clone(), key.clone(), TrainingData::Bundled);
        let parent = &job.parent_checkpoint.model;
        let grown = grown_parent(parent, &miner.header_for(&job, &[], &[])).unwrap();
        let config = grown.config();
        let full = full_update_size(config);
        assert!(full > full_update_size(parent.config()), "regtest grows at every height");
        // Auto falls back to low rank when the full replacement of the scheduled model does
        // not fit.
        params.max_update_bytes = full;
        assert_eq!(UpdateRank::Auto.resolve(&params, config).unwrap(), UpdateRank::Full);
        params.max_update_bytes = full - 1;
        assert_eq!(
            UpdateRank::Auto.resolve(&params, config).unwrap(),
            UpdateRank::LowRank(AUTO_RANK.min(params.max_rank))
        );
        // An explicit full rank that does not fit is refused with the sizes, before training.
        let miner = Miner::new(params.clone(), key, TrainingData::Bundled)
            .with_rank(UpdateRank::Full)
            .unwrap();
        let err = miner.mine(&job, &MineControl::quiet()).unwrap_err();
        assert!(
            matches!(
                err,
                MineError::UpdateTooLarge { rank: UpdateRank::Full, size, max }
                    if size == full && max == full - 1
            ),
            "{err}"
        );
        assert!(err.to_string().contains("lower rank"), "{err}");
    }

    /// Past the size limit a low-rank update adapts a rotating subset of the matrices: within
    /// the limit, starting at `height mod n`, different from one block to the next, and empty
    /// only when not one matrix fits.
    #[test]
    fn oversized_low_rank_updates_adapt_a_rotating_subset() {
        let config = ModelConfig::genesis(rnet_model::ModelNetwork::Mainnet);
        let all = default_targets(&Layout::new(&config));
        let full = low_rank_update_size(&config, 4);
        assert_eq!(low_rank_targets(&config, 4, 7, full), all, "all fit: all");
        let max = full / 3;
        let a = low_rank_targets(&config, 4, 7, max);
        let b = low_rank_targets(&config, 4, 8, max);
        assert!(!a.is_empty() && a.len() < all.len(), "{} of {}", a.len(), all.len());
        assert!(low_rank_update_size_for(&config, 4, &a) <= max);
        assert_ne!(a, b, "the next block trains other matrices");
        assert!(a.contains(&all[7]) && b.contains(&all[8]), "each starts at height mod n");
        let order: Vec<usize> =
            a.iter().map(|t| all.iter().position(|x| x == t).unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "schema order");
        // Over n consecutive blocks every matrix is trained.
        let n = all.len() as u64;
        let mut seen = std::collections::HashSet::new();
        for h in 0..n {
            seen.extend(low_rank_targets(&config, 4, h, max));
        }
        assert_eq!(seen.len(), all.len());
        assert!(low_rank_targets(&config, 4, 0, 100).is_empty(), "nothing fits 100 bytes");
    }

    /// A regtest block mined with a limit below rank 1 on every matrix: the miner adapts a
    /// subset and the block's update fits and derives the committed checkpoint.
    #[test]
    fn mining_past_the_limit_uses_a_subset_that_fits() {
        let mut params = ChainParams::regtest();
        let key = SigningKey::from_bytes(&[7; 32]);
        let job = regtest_job(&params, &key);
        let probe = Miner::new(params.clone(), key.clone(), TrainingData::Bundled);
        let grown =
            grown_parent(&job.parent_checkpoint.model, &probe.header_for(&job, &[], &[])).unwrap();
        let all = low_rank_update_size(grown.config(), 1);
        params.max_update_bytes = all * 2 / 3;
        let miner = Miner::new(params.clone(), key, TrainingData::Bundled)
            .with_rank(UpdateRank::LowRank(1))
            .unwrap();
        let mined = miner.mine(&job, &MineControl::quiet()).unwrap();
        assert!(mined.update_bytes.len() as u64 <= params.max_update_bytes);
        let update = ModelUpdate::decode(&mined.update_bytes).unwrap();
        let targets = default_targets(&Layout::new(grown.config()));
        assert!(update.entries().len() < targets.len(), "a strict subset");
        let limits = update_limits(&params);
        let derived = apply(&grown, &update, &limits, u64::from(job.height)).unwrap();
        assert_eq!(derived.root(), mined.block.header.checkpoint_root.0);
    }

    #[test]
    fn rank_flag_values_parse() {
        assert_eq!("auto".parse(), Ok(UpdateRank::Auto));
        assert_eq!("full".parse(), Ok(UpdateRank::Full));
        assert_eq!("0".parse(), Ok(UpdateRank::Full));
        assert_eq!("8".parse(), Ok(UpdateRank::LowRank(8)));
        assert!("-1".parse::<UpdateRank>().is_err());
        assert!("low".parse::<UpdateRank>().is_err());
        for rank in [UpdateRank::Auto, UpdateRank::Full, UpdateRank::LowRank(16)] {
            assert_eq!(rank.to_string().parse(), Ok(rank));
        }
    }
}
