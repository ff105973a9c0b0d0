//! [`TestMiner`]: builds real Proof-of-Training blocks on regtest (or any parameters), and
//! [`BlockTemplate`], which a test may change before signing to make each kind of invalid block.

use std::collections::HashMap;

use rnet_consensus::{
    BlockError, CandidateError, ChainParams, HeaderChain, SampleEvaluation, UtxoView,
    block_subsidy, build_sample, effective_required_improvement, evaluate_candidate, grown_parent,
    median_time_past, next_block_shape, update_limits,
};
use rnet_crypto::SigningKey;
use rnet_model::checkpoint::{chunk_hashes, merkle_root as checkpoint_merkle_root};
use rnet_model::{
    Checkpoint, EvalError, GrowthError, Model, ModelError, ModelUpdate, UpdateError, apply,
};
use rnet_primitives::{
    Amount, Block, BlockHeader, EvalSample, Hash256, ModelShape, OutPoint, Transaction, TxIn,
    TxOut, Witness,
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
    /// The sample could not be drawn or evaluated.
    #[error("sample: {0}")]
    Candidate(#[from] CandidateError),
    /// The parent could not be grown to the block's shape.
    #[error("grown parent: {0}")]
    GrownParent(#[from] BlockError),
    /// The update could not be built or applied.
    #[error("update: {0}")]
    Update(#[from] UpdateError),
    /// The improvement on the sample did not reach the target within the allowed rounds.
    #[error("improvement {best} did not reach {target} after {steps} steps")]
    NotEnoughImprovement {
        /// Best improvement reached.
        best: u64,
        /// The target.
        target: u64,
        /// Steps taken.
        steps: u64,
    },
}

/// A mined block with its model update and the checkpoint it gives.
#[derive(Clone, Debug)]
pub struct MinedBlock {
    /// The block.
    pub block: Block,
    /// The model update's bytes (what peers download and
    /// [`rnet_consensus::check_proof_of_training`] applies to the grown parent).
    pub update_bytes: Vec<u8>,
    /// The resulting checkpoint's canonical bytes (the header commits to their root and size).
    pub checkpoint_bytes: Vec<u8>,
    /// The checkpoint (model) itself, to mine the next block on.
    pub checkpoint: Checkpoint,
}

/// Everything a block will contain, before the merkle root and signature are filled in. Change
/// any field, then [`BlockTemplate::finish`] to get a signed block.
#[derive(Clone, Debug)]
pub struct BlockTemplate {
    /// The chain's parameters (to redraw the sample when the header changes).
    pub params: ChainParams,
    /// The header (merkle root and signature are set by [`BlockTemplate::finish`]).
    pub header: BlockHeader,
    /// The transactions, coinbase first.
    pub transactions: Vec<Transaction>,
    /// The evaluation sample the block will carry.
    pub sample: EvalSample,
    /// The parent's checkpoint (what `parent_loss` is measured on).
    pub parent_checkpoint: Checkpoint,
    /// The parent's model grown to the header's shape (what the update applies to).
    pub grown_parent: Model,
    /// The update's bytes (the header commits to their root and size).
    pub update_bytes: Vec<u8>,
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

    /// Replaces the block's model by `checkpoint`: the update becomes a replacement of every
    /// tensor that differs from the grown parent, the header commits to both (roots and sizes),
    /// then the sample is redrawn and `val_loss` and `parent_loss` set to the canonical
    /// evaluations on it ([`BlockTemplate::redraw_sample`]).
    pub fn set_checkpoint(&mut self, checkpoint: Checkpoint) -> Result<(), MineError> {
        let update = ModelUpdate::replacing_changed(&self.grown_parent, &checkpoint.model)?;
        self.commit_update_bytes(update.encode());
        self.set_checkpoint_bytes(checkpoint.to_bytes());
        self.checkpoint = checkpoint;
        self.redraw_sample()
    }

    /// Replaces the block's update by `update`, applied canonically to the grown parent under
    /// the network's limits: the resulting checkpoint, both commitments, the sample and both
    /// losses follow.
    pub fn set_update(&mut self, update: &ModelUpdate) -> Result<(), MineError> {
        let limits = update_limits(&self.params);
        let checkpoint = apply(&self.grown_parent, update, &limits, u64::from(self.header.height))?;
        self.commit_update_bytes(update.encode());
        self.set_checkpoint_bytes(checkpoint.to_bytes());
        self.checkpoint = checkpoint;
        self.redraw_sample()
    }

    /// Replaces the update bytes and commits the header to them (root and size), leaving the
    /// checkpoint commitment and the losses alone, and carries the sample the header now draws
    /// (for malformed-update tests: the bytes need not decode).
    pub fn set_update_bytes(&mut self, bytes: Vec<u8>) {
        self.commit_update_bytes(bytes);
        if let Some(sample) = build_sample(&self.params, &self.header) {
            self.sample = sample;
        }
    }

    fn commit_update_bytes(&mut self, bytes: Vec<u8>) {
        self.header.update_root = Hash256(checkpoint_root(&bytes));
        self.header.update_size = bytes.len() as u64;
        self.update_bytes = bytes;
    }

    /// Commits the header to other checkpoint bytes (root and size) and carries the sample the
    /// new root draws, leaving the update, the losses and [`BlockTemplate::checkpoint`] alone
    /// (for tests of a committed root that the update does not give).
    pub fn set_checkpoint_bytes(&mut self, bytes: Vec<u8>) {
        self.header.checkpoint_root = Hash256(checkpoint_root(&bytes));
        self.header.checkpoint_size = bytes.len() as u64;
        self.checkpoint_bytes = bytes;
        if let Some(sample) = build_sample(&self.params, &self.header) {
            self.sample = sample;
        }
    }

    /// Draws the sample for the header as it stands (parent, checkpoint root, miner key) and
    /// sets `val_loss` and `parent_loss` to the evaluations of [`BlockTemplate::checkpoint`]
    /// and the parent checkpoint on it.
    pub fn redraw_sample(&mut self) -> Result<(), MineError> {
        let eval = evaluate_candidate(
            &self.params,
            &self.header,
            &self.parent_checkpoint.model,
            &self.checkpoint.model,
        )?;
        self.header.val_loss = eval.val_loss;
        self.header.parent_loss = eval.parent_loss;
        self.sample = eval.sample;
        Ok(())
    }

    /// Sets the merkle root from the transactions, signs the header with `key` and returns the
    /// block. Signing with another key than the template's changes the sample seed, so the
    /// sample is then redrawn and the losses re-evaluated.
    pub fn finish(mut self, key: &SigningKey) -> MinedBlock {
        if self.header.miner_pubkey != key.public_key().to_bytes() {
            self.header.miner_pubkey = key.public_key().to_bytes();
            // The parent and checkpoint were evaluated before: this cannot fail.
            let _ = self.redraw_sample();
        }
        let mut block =
            Block { header: self.header, transactions: self.transactions, sample: self.sample };
        block.header.merkle_root = block.compute_merkle_root().0;
        sign_header(&mut block.header, key);
        MinedBlock {
            block,
            update_bytes: self.update_bytes,
            checkpoint_bytes: self.checkpoint_bytes,
            checkpoint: self.checkpoint,
        }
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

/// A coinbase for `height` on `params`' network: script_sig = height (u32 LE) ‖ network magic ‖
/// `"rnet-testkit"` ([`ChainParams::coinbase_tag`]), one output.
pub fn coinbase(
    params: &ChainParams,
    height: u32,
    value: Amount,
    script_pubkey: Vec<u8>,
) -> Transaction {
    let mut script_sig = params.coinbase_tag(height).to_vec();
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
/// `rnet_training` on the bundled corpus until its improvement over the parent, on the sample its
/// own weights draw, reaches the effective requirement, and fills and signs the header.
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

    /// Trains `parent_checkpoint`, grown to the shape of `header` (whose parent, height, time,
    /// shape and miner key are final) by the consensus rule, until the improvement on the
    /// sample its weights draw is at least `min_improvement`. Each round fixes the weights,
    /// builds the update (every changed tensor replaced), sets both commitments in the header,
    /// draws the sample and evaluates parent and candidate on it (what validators will do).
    /// Returns the checkpoint, its update's bytes, the sample evaluation and the steps taken.
    pub fn train(
        &self,
        header: &mut BlockHeader,
        parent_checkpoint: &Checkpoint,
        min_improvement: u64,
    ) -> Result<(Checkpoint, Vec<u8>, SampleEvaluation, u64), MineError> {
        let height = header.height;
        let seed = self.train.seed ^ u64::from(height).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let grown = grown_parent(&parent_checkpoint.model, header)?;
        let model = grown.clone();
        let config = model.config().clone();
        let source = DataSource::from_static(
            rnet_model::training_text(),
            DataConfig { window: config.window, holdout_fraction: 0.0, seed },
        )?;
        let train = TrainConfig { seed, ..self.train.clone() };
        let (_, params) = model.into_parts();
        let mut trainer = Trainer::new(params, config.clone(), train, None)?;
        let mut best = 0;
        for _ in 0..self.max_rounds {
            for _ in 0..self.steps_per_round.max(1) {
                let batch = source.batch(trainer.global_step(), self.train.batch_windows.max(1));
                trainer.step(&batch)?;
            }
            let model = Model::from_parts(config.clone(), trainer.params().to_vec())?;
            let checkpoint = Checkpoint::new(u64::from(height), model);
            let update = ModelUpdate::replacing_changed(&grown, &checkpoint.model)?.encode();
            header.update_root = Hash256(checkpoint_root(&update));
            header.update_size = update.len() as u64;
            let bytes = checkpoint.to_bytes();
            header.checkpoint_root = Hash256(checkpoint_root(&bytes));
            header.checkpoint_size = bytes.len() as u64;
            let eval = evaluate_candidate(
                &self.params,
                header,
                &parent_checkpoint.model,
                &checkpoint.model,
            )?;
            best = best.max(eval.improvement());
            if eval.improvement() >= min_improvement {
                return Ok((checkpoint, update, eval, trainer.global_step()));
            }
        }
        Err(MineError::NotEnoughImprovement {
            best,
            target: min_improvement,
            steps: trainer.global_step(),
        })
    }

    /// A template for the block after `chain.tip()`: time `max(MTP + 1, time)` (`time`
    /// defaults to the parent's time + target spacing), the effective requirement at that time,
    /// a trained checkpoint whose sample improvement reaches it (and `min_improvement` if
    /// given), and a coinbase paying `payout` the full allowed subsidy plus the fees of `txs`
    /// (inputs looked up in `utxos` and in earlier `txs`).
    #[allow(clippy::too_many_arguments)]
    pub fn template(
        &self,
        chain: &dyn HeaderChain,
        utxos: &dyn UtxoView,
        parent_checkpoint: &Checkpoint,
        txs: Vec<Transaction>,
        payout: Vec<u8>,
        time: Option<u64>,
        min_improvement: Option<u64>,
    ) -> Result<BlockTemplate, MineError> {
        let parent = chain.tip();
        let height = parent.height + 1;
        let mtp = median_time_past(chain, parent.height);
        let time = time
            .unwrap_or(parent.time.saturating_add(self.params.target_spacing_secs))
            .max(mtp + 1);
        let required = effective_required_improvement(&self.params, chain, time);
        let (d, l) = next_block_shape(&self.params, &parent);
        let mut header = BlockHeader {
            version: rnet_consensus::BLOCK_VERSION,
            prev_block_hash: parent.hash,
            merkle_root: Hash256::ZERO,
            time,
            height,
            shape: ModelShape { d_model: d, n_layers: l },
            checkpoint_root: Hash256::ZERO,
            checkpoint_size: 0,
            update_root: Hash256::ZERO,
            update_size: 0,
            parent_loss: 0,
            val_loss: 0,
            required_improvement: required,
            training_steps: 0,
            dataset_commitment: Hash256(rnet_model::data::CORPUS_HASH),
            miner_pubkey: self.key.public_key().to_bytes(),
            signature: [0; 64],
        };
        let target = required.max(min_improvement.unwrap_or(0));
        let (checkpoint, update_bytes, eval, steps) =
            self.train(&mut header, parent_checkpoint, target)?;
        let grown_parent = grown_parent(&parent_checkpoint.model, &header)?;
        header.parent_loss = eval.parent_loss;
        header.val_loss = eval.val_loss;
        header.training_steps = steps;
        let fees = fees_of(&txs, utxos);
        let subsidy =
            block_subsidy(&self.params, parent.circulating_supply, eval.improvement(), required);
        let checkpoint_bytes = checkpoint.to_bytes();
        let value = Amount(subsidy.0.saturating_add(fees.0));
        let mut transactions = vec![coinbase(&self.params, height, value, payout)];
        transactions.extend(txs);
        Ok(BlockTemplate {
            params: self.params.clone(),
            header,
            transactions,
            sample: eval.sample,
            parent_checkpoint: parent_checkpoint.clone(),
            grown_parent,
            update_bytes,
            checkpoint,
            checkpoint_bytes,
            subsidy,
            fees,
        })
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
