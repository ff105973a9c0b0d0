//! [`TestMiner`]: builds real Proof-of-Training blocks on regtest (or any parameters), and
//! [`BlockTemplate`], which a test may change before signing to make each kind of invalid block.

use std::collections::HashMap;

use rnet_consensus::{
    ChainParams, HeaderChain, HeaderSummary, UtxoView, block_subsidy, median_time_past,
    next_block_shape, required_improvement,
};
use rnet_crypto::SigningKey;
use rnet_model::checkpoint::{chunk_hashes, merkle_root as checkpoint_merkle_root};
use rnet_model::{Checkpoint, EvalError, GrowthError, Model, ModelError, evaluate, grow};
use rnet_primitives::{
    Amount, Block, BlockHeader, Hash256, ModelShape, OutPoint, Transaction, TxIn, TxOut, Witness,
};
use rnet_training::{DataConfig, DataError, DataSource, TrainConfig, TrainError, Trainer};
use thiserror::Error;

/// Why a block could not be mined.
#[derive(Debug, Error)]
pub enum MineError {
    /// Growing the parent model to the scheduled shape failed.
    #[error("growth: {0}")]
    Growth(#[from] GrowthError),
    /// The training engine failed.
    #[error("training: {0}")]
    Train(#[from] TrainError),
    /// The training data could not be opened.
    #[error("training data: {0}")]
    Data(#[from] DataError),
    /// The trained parameters are not a model.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// The canonical evaluation failed.
    #[error("evaluation: {0}")]
    Eval(#[from] EvalError),
    /// The loss did not reach the target within the allowed rounds.
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
}

/// A mined block with its checkpoint.
#[derive(Clone, Debug)]
pub struct MinedBlock {
    /// The block.
    pub block: Block,
    /// The checkpoint's canonical bytes (what peers download and [`rnet_consensus::check_proof_of_training`]
    /// checks).
    pub checkpoint_bytes: Vec<u8>,
    /// The checkpoint (model) itself, to mine the next block on.
    pub checkpoint: Checkpoint,
}

/// Everything a block will contain, before the merkle root and signature are filled in. Change
/// any field, then [`BlockTemplate::finish`] to get a signed block.
#[derive(Clone, Debug)]
pub struct BlockTemplate {
    /// The header (merkle root and signature are set by [`BlockTemplate::finish`]).
    pub header: BlockHeader,
    /// The transactions, coinbase first.
    pub transactions: Vec<Transaction>,
    /// The trained checkpoint.
    pub checkpoint: Checkpoint,
    /// Its canonical bytes (the header commits to their root and size).
    pub checkpoint_bytes: Vec<u8>,
    /// The subsidy the coinbase claims.
    pub subsidy: Amount,
    /// The fees of the included transactions (as far as the miner could see their inputs).
    pub fees: Amount,
}

impl BlockTemplate {
    /// The coinbase transaction.
    pub fn coinbase_mut(&mut self) -> &mut Transaction {
        &mut self.transactions[0]
    }

    /// Replaces the checkpoint: bytes, root and size in the header, and `val_loss` set to the
    /// canonical evaluation of `checkpoint` on `params`' validation slice.
    pub fn set_checkpoint(
        &mut self,
        params: &ChainParams,
        checkpoint: Checkpoint,
    ) -> Result<(), EvalError> {
        let loss = evaluate(&checkpoint.model, params.validation_slice())?.val_loss_micronats;
        self.header.val_loss = loss;
        self.set_checkpoint_bytes(checkpoint.to_bytes());
        self.checkpoint = checkpoint;
        Ok(())
    }

    /// Replaces the checkpoint bytes and commits the header to them (root and size), leaving
    /// `val_loss` and [`BlockTemplate::checkpoint`] alone (for malformed-checkpoint tests).
    pub fn set_checkpoint_bytes(&mut self, bytes: Vec<u8>) {
        self.header.checkpoint_root = Hash256(checkpoint_root(&bytes));
        self.header.checkpoint_size = bytes.len() as u64;
        self.checkpoint_bytes = bytes;
    }

    /// Sets the merkle root from the transactions, signs the header with `key` and returns the
    /// block.
    pub fn finish(self, key: &SigningKey) -> MinedBlock {
        let mut block = Block { header: self.header, transactions: self.transactions };
        block.header.merkle_root = block.compute_merkle_root().0;
        sign_header(&mut block.header, key);
        MinedBlock { block, checkpoint_bytes: self.checkpoint_bytes, checkpoint: self.checkpoint }
    }
}

/// Chunk merkle root of checkpoint bytes (what `header.checkpoint_root` holds).
pub fn checkpoint_root(bytes: &[u8]) -> [u8; 32] {
    checkpoint_merkle_root(&chunk_hashes(bytes))
}

/// Sets `miner_pubkey` to `key`'s public key and signs the block id with it.
pub fn sign_header(header: &mut BlockHeader, key: &SigningKey) {
    header.miner_pubkey = key.public_key().to_bytes();
    header.signature = key.sign(header.hash().as_bytes()).to_bytes();
}

/// A coinbase for `height`: script_sig = height (u32 LE) ‖ `"rnet-testkit"`, one output.
pub fn coinbase(height: u32, value: Amount, script_pubkey: Vec<u8>) -> Transaction {
    let mut script_sig = height.to_le_bytes().to_vec();
    script_sig.extend_from_slice(b"rnet-testkit");
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

/// Builds real blocks: grows the parent model to the scheduled shape, trains it with
/// `rnet_training` on the bundled training text until its canonical loss beats the parent's by
/// the required improvement, and fills and signs the header.
#[derive(Clone, Debug)]
pub struct TestMiner {
    /// The chain's parameters.
    pub params: ChainParams,
    /// The key that signs headers.
    pub key: SigningKey,
    /// Training hyper-parameters (the seed is mixed with the height).
    pub train: TrainConfig,
    /// Training steps between two evaluations.
    pub steps_per_round: u64,
    /// Most evaluation rounds before giving up.
    pub max_rounds: u32,
}

impl TestMiner {
    /// A miner for `params` with a fixed key and gentle training (lr 1e-3, 4 windows per step,
    /// one step per round): on regtest each block improves by roughly 1 % and takes a few tens of
    /// milliseconds.
    pub fn new(params: ChainParams) -> Self {
        Self {
            params,
            key: SigningKey::from_bytes(&[0x4d; 32]),
            train: TrainConfig {
                lr: 1e-3,
                warmup: 0,
                total_steps: 1_000_000,
                batch_windows: 4,
                weight_decay: 0.0,
                ..TrainConfig::default()
            },
            steps_per_round: 1,
            max_rounds: 400,
        }
    }

    /// Trains `parent_checkpoint`, grown to the shape scheduled after `parent`, until its loss is
    /// at most `target` (≤ `parent.val_loss − required`). Returns the checkpoint, its loss and the
    /// steps taken.
    pub fn train(
        &self,
        parent: &HeaderSummary,
        parent_checkpoint: &Checkpoint,
        target: u64,
    ) -> Result<(Checkpoint, u64, u64), MineError> {
        let height = parent.height.saturating_add(1);
        let (d, l) = next_block_shape(&self.params, parent);
        let seed = self.train.seed ^ u64::from(height).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let model = grow(&parent_checkpoint.model, d as usize, l as usize, seed)?;
        let config = model.config().clone();
        let source = DataSource::from_static(
            rnet_model::training_text(),
            DataConfig { window: config.window, holdout_fraction: 0.0, seed },
        )?;
        let train = TrainConfig { seed, ..self.train.clone() };
        let (_, params) = model.into_parts();
        let mut trainer = Trainer::new(params, config.clone(), train, None)?;
        let val = self.params.validation_slice();
        let mut best = u64::MAX;
        for _ in 0..self.max_rounds {
            for _ in 0..self.steps_per_round.max(1) {
                let batch = source.batch(trainer.global_step(), self.train.batch_windows.max(1));
                trainer.step(&batch)?;
            }
            let model = Model::from_parts(config.clone(), trainer.params().to_vec())?;
            let loss = evaluate(&model, val)?.val_loss_micronats;
            best = best.min(loss);
            if loss <= target {
                return Ok((
                    Checkpoint::new(u64::from(height), model),
                    loss,
                    trainer.global_step(),
                ));
            }
        }
        Err(MineError::NotEnoughImprovement { best, target, steps: trainer.global_step() })
    }

    /// A template for the block after `chain.tip()`: trained checkpoint (loss at most
    /// `parent − required`, and at most `target_loss` if given), coinbase paying `payout` the full
    /// allowed subsidy plus the fees of `txs` (inputs looked up in `utxos` and in earlier `txs`),
    /// time `max(MTP + 1, time)` (`time` defaults to the parent's time + target spacing).
    #[allow(clippy::too_many_arguments)]
    pub fn template(
        &self,
        chain: &dyn HeaderChain,
        utxos: &dyn UtxoView,
        parent_checkpoint: &Checkpoint,
        txs: Vec<Transaction>,
        payout: Vec<u8>,
        time: Option<u64>,
        target_loss: Option<u64>,
    ) -> Result<BlockTemplate, MineError> {
        let parent = chain.tip();
        let required = required_improvement(&self.params, chain);
        let Some(mut target) = parent.val_loss.checked_sub(required) else {
            return Err(MineError::Impossible { parent: parent.val_loss, required });
        };
        if let Some(t) = target_loss {
            target = target.min(t);
        }
        let (checkpoint, loss, steps) = self.train(&parent, parent_checkpoint, target)?;
        let height = parent.height + 1;
        let fees = fees_of(&txs, utxos);
        let improvement = parent.val_loss - loss;
        let subsidy = block_subsidy(&self.params, parent.circulating_supply, improvement, required);
        let mtp = median_time_past(chain, parent.height);
        let time = time
            .unwrap_or(parent.time.saturating_add(self.params.target_spacing_secs))
            .max(mtp + 1);
        let checkpoint_bytes = checkpoint.to_bytes();
        let config = checkpoint.model.config();
        let header = BlockHeader {
            version: rnet_consensus::BLOCK_VERSION,
            prev_block_hash: parent.hash,
            merkle_root: Hash256::ZERO,
            time,
            height,
            shape: ModelShape { d_model: config.d_model as u32, n_layers: config.n_layers as u32 },
            checkpoint_root: Hash256(checkpoint_root(&checkpoint_bytes)),
            checkpoint_size: checkpoint_bytes.len() as u64,
            val_loss: loss,
            required_improvement: required,
            training_steps: steps,
            dataset_commitment: Hash256(rnet_model::data::TRAINING_HASH),
            miner_pubkey: self.key.public_key().to_bytes(),
            signature: [0; 64],
        };
        let value = Amount(subsidy.0.saturating_add(fees.0));
        let mut transactions = vec![coinbase(height, value, payout)];
        transactions.extend(txs);
        Ok(BlockTemplate { header, transactions, checkpoint, checkpoint_bytes, subsidy, fees })
    }

    /// Mines a valid block (as far as the miner can tell: the transactions are the caller's) on
    /// `chain.tip()`: [`TestMiner::template`] then [`BlockTemplate::finish`].
    pub fn mine(
        &self,
        chain: &dyn HeaderChain,
        utxos: &dyn UtxoView,
        parent_checkpoint: &Checkpoint,
        txs: Vec<Transaction>,
        payout: Vec<u8>,
    ) -> Result<MinedBlock, MineError> {
        let t = self.template(chain, utxos, parent_checkpoint, txs, payout, None, None)?;
        Ok(t.finish(&self.key))
    }
}

/// Sum of the fees of `txs`: inputs from `utxos` or from outputs of earlier `txs`; unknown inputs
/// count as 0 and a negative fee as 0.
pub fn fees_of(txs: &[Transaction], utxos: &dyn UtxoView) -> Amount {
    let mut local: HashMap<OutPoint, u64> = HashMap::new();
    let mut total = 0u64;
    for tx in txs {
        let mut inputs = 0u64;
        for i in &tx.inputs {
            let v = local
                .remove(&i.previous_output)
                .or_else(|| utxos.coin(&i.previous_output).map(|c| c.output.value.0))
                .unwrap_or(0);
            inputs = inputs.saturating_add(v);
        }
        let outputs = tx.outputs.iter().fold(0u64, |a, o| a.saturating_add(o.value.0));
        total = total.saturating_add(inputs.saturating_sub(outputs));
        let txid = tx.txid();
        for (vout, o) in tx.outputs.iter().enumerate() {
            local.insert(OutPoint::new(txid, vout as u32), o.value.0);
        }
    }
    Amount(total)
}
