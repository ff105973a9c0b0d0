//! ResonanceNet Proof-of-Training miner (layer 5).
//!
//! A [`MiningJob`] describes the block to build on a parent (its hash, loss, checkpoint and
//! supply, the required improvement, the scheduled shape, the transactions and the time bounds).
//! [`Miner::mine`] grows the parent model to the scheduled shape, trains it with
//! `rnet_training` on the miner's data until the canonical evaluation beats the parent by the
//! required improvement, then builds the coinbase, merkle root and header and signs it with the
//! miner's Ed25519 key. The result is a [`MinedBlock`]: the block and its checkpoint bytes.
//!
//! The miner key lives in a file (`miner.key`, hex, mode 0600), created on first use by
//! [`load_or_create_key`]. The `rnet-miner` binary mines against a node over JSON-RPC
//! (`getblocktemplate`, `getcheckpointchunk`, `submitcheckpoint` / `uploadcheckpointpart`,
//! `submitblock`).

pub mod template;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rnet_consensus::{ChainParams, block_subsidy};
use rnet_crypto::SigningKey;
use rnet_model::checkpoint::{chunk_hashes, merkle_root as checkpoint_merkle_root};
use rnet_model::{Checkpoint, EvalError, GrowthError, Model, ModelError, evaluate, grow};
use rnet_primitives::{
    Amount, Block, BlockHash, BlockHeader, Hash256, ModelShape, OutPoint, Transaction, TxIn, TxOut,
    Witness,
};
use rnet_script::PlainKey;
use rnet_training::{DataConfig, DataError, DataSource, TrainConfig, TrainError, Trainer};
use thiserror::Error;

pub use template::{TemplateError, job_from_template};

/// File name of the miner key inside a data directory.
pub const MINER_KEY_FILE: &str = "miner.key";

/// Why a block could not be mined.
#[derive(Debug, Error)]
pub enum MineError {
    /// Growing the parent model to the scheduled shape failed.
    #[error("growth: {0}")]
    Growth(#[from] GrowthError),
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
    /// The loss did not reach the target within the step budget.
    #[error("loss {best} did not reach {target} after {steps} steps")]
    NotEnoughImprovement {
        /// Best loss reached.
        best: u64,
        /// The target.
        target: u64,
        /// Steps taken.
        steps: u64,
    },
    /// The parent's loss is too low for the required improvement.
    #[error("parent loss {parent} cannot improve by {required}")]
    Impossible {
        /// Parent loss.
        parent: u64,
        /// Required improvement.
        required: u64,
    },
    /// Mining was cancelled (shutdown, or the tip changed).
    #[error("mining cancelled")]
    Cancelled,
}

/// Why the miner key could not be loaded or created.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("miner key {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold 64 hex characters.
    #[error("miner key {0}: not a 32-byte hex secret key")]
    Malformed(String),
}

/// Loads the Ed25519 miner key from `path` (64 hex characters), creating a random one (file mode
/// 0600) if the file does not exist.
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

/// Everything needed to mine one block on a parent.
#[derive(Clone, Debug)]
pub struct MiningJob {
    /// The parent block.
    pub parent_hash: BlockHash,
    /// The parent's `val_loss` (micro-nats per byte).
    pub parent_val_loss: u64,
    /// Circulating supply after the parent (for the subsidy).
    pub parent_supply: Amount,
    /// The parent's checkpoint.
    pub parent_checkpoint: Arc<Checkpoint>,
    /// Height of the new block.
    pub height: u32,
    /// Required improvement for the new block.
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

impl MiningJob {
    /// The loss the new block must reach: `parent − required`.
    pub fn target_loss(&self) -> Option<u64> {
        self.parent_val_loss.checked_sub(self.required_improvement)
    }
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
            TrainingData::Bundled => Hash256(rnet_model::data::TRAINING_HASH),
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

/// A mined block with its checkpoint.
#[derive(Clone, Debug)]
pub struct MinedBlock {
    /// The signed block.
    pub block: Block,
    /// The checkpoint's canonical bytes.
    pub checkpoint_bytes: Vec<u8>,
    /// The subsidy claimed by the coinbase (without fees).
    pub subsidy: Amount,
    /// Training steps taken.
    pub steps: u64,
    /// Wall-clock time spent mining.
    pub elapsed: Duration,
}

/// How the miner reports progress and learns that it should stop.
pub struct MineControl<'a> {
    /// Show an `indicatif` progress bar on stderr.
    pub progress: bool,
    /// Polled between training rounds; `true` aborts with [`MineError::Cancelled`].
    pub cancel: &'a (dyn Fn() -> bool + Sync),
}

impl MineControl<'_> {
    /// No progress bar, never cancelled.
    pub fn quiet() -> MineControl<'static> {
        MineControl { progress: false, cancel: &|| false }
    }
}

/// The Proof-of-Training miner: key, data and training hyper-parameters.
#[derive(Clone, Debug)]
pub struct Miner {
    /// Chain parameters (validation slice, subsidy rules).
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
}

impl Miner {
    /// A miner for `params` with `key`, training on `data` with gentle defaults (AdamW lr 1e-3,
    /// 4 windows per step, evaluation after every step).
    pub fn new(params: ChainParams, key: SigningKey, data: TrainingData) -> Self {
        Self {
            params,
            key,
            data,
            train: TrainConfig {
                lr: 1e-3,
                warmup: 0,
                total_steps: 1_000_000,
                batch_windows: 4,
                weight_decay: 0.0,
                ..TrainConfig::default()
            },
            steps_per_round: 1,
            max_steps: 2_000,
            attempts: 3,
        }
    }

    /// Mines `job`: grow, train until the target, evaluate, build and sign the block.
    pub fn mine(
        &self,
        job: &MiningJob,
        control: &MineControl<'_>,
    ) -> Result<MinedBlock, MineError> {
        let started = Instant::now();
        let Some(target) = job.target_loss() else {
            return Err(MineError::Impossible {
                parent: job.parent_val_loss,
                required: job.required_improvement,
            });
        };
        let mut best = u64::MAX;
        let mut total_steps = 0;
        let mut last = None;
        for attempt in 0..self.attempts.max(1) {
            match self.train(job, target, attempt, control) {
                Ok((checkpoint, loss, steps)) => {
                    last = Some((checkpoint, loss, total_steps + steps));
                    break;
                }
                Err(MineError::NotEnoughImprovement { best: b, steps, .. }) => {
                    best = best.min(b);
                    total_steps += steps;
                }
                Err(e) => return Err(e),
            }
        }
        let Some((checkpoint, loss, steps)) = last else {
            return Err(MineError::NotEnoughImprovement { best, target, steps: total_steps });
        };
        let improvement = job.parent_val_loss - loss;
        let subsidy =
            block_subsidy(&self.params, job.parent_supply, improvement, job.required_improvement);
        let checkpoint_bytes = checkpoint.to_bytes();
        let config = checkpoint.model.config();
        let header = BlockHeader {
            version: rnet_consensus::BLOCK_VERSION,
            prev_block_hash: job.parent_hash,
            merkle_root: Hash256::ZERO,
            time: job.time.max(job.min_time),
            height: job.height,
            shape: ModelShape { d_model: config.d_model as u32, n_layers: config.n_layers as u32 },
            checkpoint_root: checkpoint_root(&checkpoint_bytes),
            checkpoint_size: checkpoint_bytes.len() as u64,
            val_loss: loss,
            required_improvement: job.required_improvement,
            training_steps: steps,
            dataset_commitment: self.data.commitment(),
            miner_pubkey: [0; 32],
            signature: [0; 64],
        };
        let value = Amount(subsidy.0.saturating_add(job.fees.0));
        let mut transactions = vec![coinbase(job.height, value, job.payout_script.clone())];
        transactions.extend(job.transactions.iter().cloned());
        let mut block = Block { header, transactions };
        block.header.merkle_root = block.compute_merkle_root().0;
        sign_header(&mut block.header, &self.key);
        Ok(MinedBlock { block, checkpoint_bytes, subsidy, steps, elapsed: started.elapsed() })
    }

    fn train(
        &self,
        job: &MiningJob,
        target: u64,
        attempt: u32,
        control: &MineControl<'_>,
    ) -> Result<(Checkpoint, u64, u64), MineError> {
        let (d, l) = job.shape;
        let seed = self.train.seed
            ^ u64::from(job.height).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(attempt).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        let model = grow(&job.parent_checkpoint.model, d as usize, l as usize, seed)?;
        let config = model.config().clone();
        let source = self.data.source(config.window, seed)?;
        let lr = self.train.lr / (1u32 << attempt.min(8)) as f32;
        let train = TrainConfig { seed, lr, ..self.train.clone() };
        let (_, params) = model.into_parts();
        let mut trainer = Trainer::new(params, config.clone(), train, None)?;
        let val = self.params.validation_slice();
        let bar = if control.progress {
            let bar = ProgressBar::new(job.parent_val_loss.saturating_sub(target));
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
        let mut best = u64::MAX;
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
            let model = Model::from_parts(config.clone(), trainer.params().to_vec())?;
            let loss = evaluate(&model, val)?.val_loss_micronats;
            best = best.min(loss);
            bar.set_position(
                job.parent_val_loss.saturating_sub(best).min(bar.length().unwrap_or(0)),
            );
            bar.set_message(format!("loss {best} step {}", trainer.global_step()));
            if loss <= target {
                bar.finish_and_clear();
                return Ok((
                    Checkpoint::new(u64::from(job.height), model),
                    loss,
                    trainer.global_step(),
                ));
            }
        }
        bar.finish_and_clear();
        Err(MineError::NotEnoughImprovement { best, target, steps: trainer.global_step() })
    }
}

/// Sets `miner_pubkey` to `key`'s public key and signs the block id with it.
pub fn sign_header(header: &mut BlockHeader, key: &SigningKey) {
    header.miner_pubkey = key.public_key().to_bytes();
    header.signature = key.sign(header.hash().as_bytes()).to_bytes();
}

/// A coinbase for `height`: script_sig = height (u32 LE) ‖ `"rnet-miner"`, one output.
pub fn coinbase(height: u32, value: Amount, script_pubkey: Vec<u8>) -> Transaction {
    let mut script_sig = height.to_le_bytes().to_vec();
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

    #[test]
    fn mines_a_valid_regtest_block() {
        let params = ChainParams::regtest();
        let genesis = params.genesis_summary();
        let key = SigningKey::from_bytes(&[7; 32]);
        let miner = Miner::new(params.clone(), key.clone(), TrainingData::Bundled);
        let job = MiningJob {
            parent_hash: genesis.hash,
            parent_val_loss: genesis.val_loss,
            parent_supply: genesis.circulating_supply,
            parent_checkpoint: Arc::new(params.genesis_checkpoint()),
            height: 1,
            required_improvement: params.initial_required_improvement,
            shape: rnet_consensus::next_block_shape(&params, &genesis),
            transactions: vec![],
            fees: Amount::ZERO,
            min_time: genesis.time + 1,
            time: genesis.time + 600,
            payout_script: key_script_pubkey(&key),
        };
        let mined = miner.mine(&job, &MineControl::quiet()).unwrap();
        assert!(mined.block.header.val_loss <= genesis.val_loss - job.required_improvement);
        rnet_consensus::check_block(&params, &mined.block).unwrap();
        let ckpt = Checkpoint::from_bytes(&mined.checkpoint_bytes).unwrap();
        let loss = evaluate(&ckpt.model, params.validation_slice()).unwrap().val_loss_micronats;
        assert_eq!(loss, mined.block.header.val_loss);
    }
}
