//! Block validity, in four stages that a node runs as the data arrives:
//!
//! 1. [`check_block`] — context-free: merkle root, size, header version, miner signature, coinbase
//!    shape, duplicate transactions, transaction syntax.
//! 2. [`check_header_context`] — the header against the branch it extends: parent, height, time,
//!    scheduled shape and checkpoint size, effective required improvement, claimed improvement.
//! 3. [`check_proof_of_training`] — the checkpoint bytes (size, root, strict parse, height,
//!    config), the parent's checkpoint, the evaluation sample drawn from the header, and the
//!    canonical evaluation of both checkpoints on it, equal to `val_loss` and `parent_loss`.
//! 4. [`connect_block`] — the transactions against the parent's UTXO set: existence, double spends,
//!    maturity, lock times, scripts (one signature batch per block), value, the coinbase limit and
//!    the supply cap; returns the new summary and the [`BlockEffects`].
//!
//! [`validate_block`] runs all four. Nothing here panics on any block or checkpoint bytes.

use std::collections::{HashMap, HashSet};

use rnet_crypto::{BatchVerifier, PublicKey, Signature};
use rnet_model::checkpoint::{chunk_hashes, merkle_root as checkpoint_merkle_root};
use rnet_model::{Checkpoint, evaluate_windows};
use rnet_primitives::{
    Amount, Block, BlockHeader, EvalSample, MAX_MONEY, OutPoint, Transaction, TxOut, Txid,
};
use rnet_script::{
    LOCKTIME_THRESHOLD, RelativeLock, VerifyFlags, locktime::MIN_RELATIVE_LOCK_TX_VERSION,
    relative_lock, verify_transaction, verify_transaction_batched,
};

use crate::block_model::{check_update_commitment, derive_checkpoint};
use crate::coin::{Coin, UtxoView};
use crate::context::{BlockEffects, HeaderChain, HeaderSummary};
pub use crate::error::{BlockError, TxError};
use crate::params::{BLOCK_VERSION, COINBASE_TAG_LEN, ChainParams, MAX_COINBASE_SCRIPT_SIG};
pub use crate::reward::{block_subsidy, expiry_threshold, is_unspendable};
use crate::sample::check_sample;
use crate::schedule::median_time_past_span;
pub use crate::schedule::{
    effective_required_improvement, median_time_past, next_block_shape, next_stagnation,
    required_improvement, summarize_header,
};

/// Context-free checks, in this order: at least one transaction (`NoTransactions`); the merkle
/// root over the wtxids matches (`BadMerkleRoot`) and the tree is not mutated (`MutatedMerkle`);
/// the encoded size of the header and transactions is at most `max_block_size` (`Oversize`);
/// `version ≥ 1` (`BadVersion`); the
/// miner key is a point (`BadMinerKey`) and signs the block id (`BadMinerSignature`); the first
/// transaction is a coinbase (`FirstNotCoinbase`) whose `script_sig` is 8..=100 bytes starting
/// with the height as u32 LE and the network's `magic` ([`ChainParams::coinbase_tag`]) and whose
/// witness is empty; no other coinbase (`MultipleCoinbase`);
/// no two transactions share a txid (`DuplicateTransaction`); every transaction has inputs and
/// outputs, output values and their sum within `MAX_MONEY`, no outpoint twice, and no null
/// outpoint outside the coinbase; finally the evaluation sample is the one the header draws,
/// every record proven ([`check_sample`]: it depends on the header and the parameters alone, so
/// a node refuses a corrupted sample before storing anything under the block id).
pub fn check_block(params: &ChainParams, block: &Block) -> Result<(), BlockError> {
    if block.transactions.is_empty() {
        return Err(BlockError::NoTransactions);
    }
    let (root, mutated) = block.compute_merkle_root();
    if root != block.header.merkle_root {
        return Err(BlockError::BadMerkleRoot);
    }
    if mutated {
        return Err(BlockError::MutatedMerkle);
    }
    let size = block.base_size();
    if size > params.max_block_size {
        return Err(BlockError::Oversize { size, max: params.max_block_size });
    }
    if block.header.version < BLOCK_VERSION {
        return Err(BlockError::BadVersion(block.header.version));
    }
    check_miner_signature(&block.header)?;

    let coinbase = &block.transactions[0];
    if !coinbase.is_coinbase() {
        return Err(BlockError::FirstNotCoinbase);
    }
    check_coinbase_input(params, coinbase, block.header.height)
        .map_err(|e| BlockError::tx(0, coinbase.txid(), e))?;
    let mut txids = HashSet::with_capacity(block.transactions.len());
    for (index, tx) in block.transactions.iter().enumerate() {
        let txid = tx.txid();
        if index > 0 && tx.is_coinbase() {
            return Err(BlockError::MultipleCoinbase { index });
        }
        if !txids.insert(txid) {
            return Err(BlockError::DuplicateTransaction { txid });
        }
        check_transaction(tx).map_err(|e| BlockError::tx(index, txid, e))?;
    }
    check_sample(params, &block.header, &block.sample)?;
    Ok(())
}

/// The miner's Ed25519 signature over the block id.
fn check_miner_signature(header: &BlockHeader) -> Result<(), BlockError> {
    let key = PublicKey::from_bytes(&header.miner_pubkey).map_err(|_| BlockError::BadMinerKey)?;
    let signature = Signature::from_bytes(header.signature);
    key.verify(header.hash().as_bytes(), &signature).map_err(|_| BlockError::BadMinerSignature)
}

/// The coinbase input: `script_sig` of 8..=100 bytes starting with the height (u32 LE; like
/// BIP34, coinbase txids differ at every height) and the network's magic (coinbase txids differ
/// across networks, so no coin, nor any spend of it, exists on two networks); no witness.
fn check_coinbase_input(
    params: &ChainParams,
    coinbase: &Transaction,
    height: u32,
) -> Result<(), TxError> {
    let input = &coinbase.inputs[0];
    let len = input.script_sig.len();
    if !(COINBASE_TAG_LEN..=MAX_COINBASE_SCRIPT_SIG).contains(&len) {
        return Err(TxError::CoinbaseScriptSize { len });
    }
    if input.script_sig[..4] != height.to_le_bytes() {
        return Err(TxError::CoinbaseHeight { expected: height });
    }
    if input.script_sig[4..COINBASE_TAG_LEN] != params.magic {
        let mut found = [0u8; 4];
        found.copy_from_slice(&input.script_sig[4..COINBASE_TAG_LEN]);
        return Err(TxError::CoinbaseNetwork { expected: params.magic, found });
    }
    if !input.witness.is_empty() {
        return Err(TxError::CoinbaseWitness);
    }
    Ok(())
}

/// Context-free transaction rules (Bitcoin's `CheckTransaction`).
pub fn check_transaction(tx: &Transaction) -> Result<(), TxError> {
    if tx.inputs.is_empty() {
        return Err(TxError::NoInputs);
    }
    if tx.outputs.is_empty() {
        return Err(TxError::NoOutputs);
    }
    let mut total = 0u64;
    for (output, out) in tx.outputs.iter().enumerate() {
        if !out.value.is_valid_money() {
            return Err(TxError::OutputValueTooLarge { output, value: out.value });
        }
        total = total.checked_add(out.value.0).ok_or(TxError::OutputTotalTooLarge)?;
        if total > MAX_MONEY {
            return Err(TxError::OutputTotalTooLarge);
        }
    }
    let coinbase = tx.is_coinbase();
    let mut seen = HashSet::with_capacity(tx.inputs.len());
    for (input, txin) in tx.inputs.iter().enumerate() {
        if !seen.insert(txin.previous_output) {
            return Err(TxError::DuplicateInput { input });
        }
        if !coinbase && txin.previous_output.is_null() {
            return Err(TxError::NullPrevout { input });
        }
    }
    Ok(())
}

/// Header checks against the branch it extends (`chain.tip()` is the parent), in this order:
/// `prev_block_hash` is the tip (`BadPrevHash`); height = tip + 1 (`BadHeight`);
/// time > median time past of the last `median_time_span` blocks (`TimeTooOld`) and
/// ≤ `now + max_future_block_time_secs` (`TimeTooNew`); shape = [`next_block_shape`]
/// (`BadShape`); `checkpoint_size` = the exact size of a checkpoint of that shape
/// (`BadCheckpointSize`); `update_size` between the size of an empty update and
/// `max_update_bytes` (`BadUpdateSize`); `required_improvement` = [`effective_required_improvement`] at the
/// header's time (`BadRequiredImprovement`); the claimed `parent_loss − val_loss ≥
/// required_improvement` (`InsufficientImprovement`). The claims themselves are verified by
/// [`check_proof_of_training`].
pub fn check_header_context(
    params: &ChainParams,
    header: &BlockHeader,
    chain: &dyn HeaderChain,
    now: u64,
) -> Result<(), BlockError> {
    let tip = chain.tip();
    check_parent(header, &tip)?;
    let mtp = median_time_past_span(chain, tip.height, params.median_time_span);
    if header.time <= mtp {
        return Err(BlockError::TimeTooOld { time: header.time, median_time_past: mtp });
    }
    if header.time > now.saturating_add(params.max_future_block_time_secs) {
        return Err(BlockError::TimeTooNew { time: header.time, now });
    }
    check_shape(params, header, &tip)?;
    let expected_size =
        params.checkpoint_size(header.shape.d_model, header.shape.n_layers).unwrap_or(0);
    if header.checkpoint_size != expected_size {
        return Err(BlockError::BadCheckpointSize {
            expected: expected_size,
            got: header.checkpoint_size,
        });
    }
    let min_update = rnet_model::update::header_len(params.genesis_model.kernel_sizes.len()) as u64;
    if header.update_size < min_update || header.update_size > params.max_update_bytes {
        return Err(BlockError::BadUpdateSize {
            size: header.update_size,
            min: min_update,
            max: params.max_update_bytes,
        });
    }
    check_required(params, header, chain)?;
    check_improvement(header)?;
    Ok(())
}

/// `header.required_improvement` = the effective requirement at the header's time.
fn check_required(
    params: &ChainParams,
    header: &BlockHeader,
    chain: &dyn HeaderChain,
) -> Result<(), BlockError> {
    let required = effective_required_improvement(params, chain, header.time);
    if header.required_improvement != required {
        return Err(BlockError::BadRequiredImprovement {
            expected: required,
            got: header.required_improvement,
        });
    }
    Ok(())
}

fn check_parent(header: &BlockHeader, tip: &HeaderSummary) -> Result<(), BlockError> {
    if header.prev_block_hash != tip.hash {
        return Err(BlockError::BadPrevHash { expected: tip.hash, got: header.prev_block_hash });
    }
    let expected = tip
        .height
        .checked_add(1)
        .ok_or(BlockError::BadHeight { expected: u32::MAX, got: header.height })?;
    if header.height != expected {
        return Err(BlockError::BadHeight { expected, got: header.height });
    }
    Ok(())
}

fn check_shape(
    params: &ChainParams,
    header: &BlockHeader,
    parent: &HeaderSummary,
) -> Result<(), BlockError> {
    let expected = next_block_shape(params, parent);
    let got = (header.shape.d_model, header.shape.n_layers);
    if got != expected {
        return Err(BlockError::BadShape { expected, got });
    }
    Ok(())
}

/// The header's claimed `improvement = parent_loss − val_loss` reaches its
/// `required_improvement`; returns the improvement.
fn check_improvement(header: &BlockHeader) -> Result<u64, BlockError> {
    let required = header.required_improvement;
    let insufficient = || BlockError::InsufficientImprovement {
        parent_loss: header.parent_loss,
        val_loss: header.val_loss,
        required,
    };
    let improvement = header.parent_loss.checked_sub(header.val_loss).ok_or_else(insufficient)?;
    if improvement < required {
        return Err(insufficient());
    }
    Ok(improvement)
}

/// Proof-of-Training, in this order: the update bytes are present (`MissingUpdate`: a node
/// that has not obtained them passes an empty slice), `header.update_size` long
/// (`UpdateSizeMismatch`) and under `header.update_root` (`UpdateRootMismatch`); the parent's
/// checkpoint bytes are present (`MissingParentCheckpoint`) and under `parent.checkpoint_root`
/// (`ParentCheckpointMismatch`); the sample is the one the header draws, every record proven
/// under `corpus_root` ([`check_sample`]); the shape is scheduled after `parent` (`BadShape`)
/// and the claimed improvement reaches `header.required_improvement`
/// (`InsufficientImprovement`), both before the expensive part; the parent checkpoint parses
/// (`InvalidParentCheckpoint`); the update decodes strictly (`InvalidUpdate`); applied to the
/// grown parent it gives a checkpoint under `header.checkpoint_root` (`BadUpdate`, see
/// [`crate::block_model::derive_checkpoint`]); the canonical evaluation of that checkpoint on the
/// sample succeeds (`EvaluationFailed`) and equals `val_loss` (`ValLossMismatch`); the parent's
/// on the same sample equals `parent_loss` (`ParentLossMismatch`).
///
/// Returns the block's checkpoint (derived, committed root checked), which the caller stores as
/// the parent of the next block. `header.required_improvement` is trusted here;
/// [`check_header_context`] verifies it.
pub fn check_proof_of_training(
    params: &ChainParams,
    header: &BlockHeader,
    parent: &HeaderSummary,
    sample: &EvalSample,
    parent_checkpoint: &[u8],
    update_bytes: &[u8],
) -> Result<Checkpoint, BlockError> {
    let CheckedTrainingData { checkpoint, parent_model, windows } =
        check_training_data(params, header, parent, sample, parent_checkpoint, update_bytes)?;
    let evaluated = evaluate_windows(&checkpoint.model, &windows)
        .map_err(BlockError::EvaluationFailed)?
        .val_loss_micronats;
    if evaluated != header.val_loss {
        return Err(BlockError::ValLossMismatch { claimed: header.val_loss, evaluated });
    }
    let evaluated = evaluate_windows(&parent_model, &windows)
        .map_err(BlockError::EvaluationFailed)?
        .val_loss_micronats;
    if evaluated != header.parent_loss {
        return Err(BlockError::ParentLossMismatch { claimed: header.parent_loss, evaluated });
    }
    Ok(checkpoint)
}

/// Proof-of-Training of a block under `-assumevalid` (Part V §7.1): every check of
/// [`check_proof_of_training`] except the two evaluations, which are the only expensive part.
/// The update must still be present, match its commitment, decode and give exactly the
/// committed checkpoint from the grown parent; the parent's checkpoint must match and parse; the
/// sample must be the one the header draws; the shape and the claimed improvement must hold.
/// Returns the derived checkpoint.
pub fn check_proof_of_training_assumed(
    params: &ChainParams,
    header: &BlockHeader,
    parent: &HeaderSummary,
    sample: &EvalSample,
    parent_checkpoint: &[u8],
    update_bytes: &[u8],
) -> Result<Checkpoint, BlockError> {
    check_training_data(params, header, parent, sample, parent_checkpoint, update_bytes)
        .map(|checked| checked.checkpoint)
}

/// What [`check_training_data`] leaves for the evaluations.
struct CheckedTrainingData<'a> {
    checkpoint: Checkpoint,
    parent_model: rnet_model::Model,
    windows: Vec<&'a [u8]>,
}

/// The checks of Proof-of-Training before the evaluations, in the order
/// [`check_proof_of_training`] documents.
fn check_training_data<'a>(
    params: &ChainParams,
    header: &BlockHeader,
    parent: &HeaderSummary,
    sample: &'a EvalSample,
    parent_checkpoint: &[u8],
    update_bytes: &[u8],
) -> Result<CheckedTrainingData<'a>, BlockError> {
    check_update_commitment(header, update_bytes)?;
    if parent_checkpoint.is_empty() {
        return Err(BlockError::MissingParentCheckpoint);
    }
    if checkpoint_merkle_root(&chunk_hashes(parent_checkpoint)) != parent.checkpoint_root.0 {
        return Err(BlockError::ParentCheckpointMismatch);
    }
    let windows = check_sample(params, header, sample)?;
    check_shape(params, header, parent)?;
    check_improvement(header)?;
    let parent_model = Checkpoint::from_bytes(parent_checkpoint)
        .map_err(BlockError::InvalidParentCheckpoint)?
        .model;
    let checkpoint = derive_checkpoint(params, header, &parent_model, update_bytes)?;
    Ok(CheckedTrainingData { checkpoint, parent_model, windows })
}

/// Whether `tx` is final in a block at `height` whose parent has median time past `mtp`
/// (Bitcoin's `IsFinalTx` with BIP113): `lock_time = 0`; or `lock_time < LOCKTIME_THRESHOLD` and
/// `lock_time < height`; or `lock_time ≥ LOCKTIME_THRESHOLD` and `lock_time < mtp`; or every
/// input's sequence is `0xFFFFFFFF`.
pub fn is_final(tx: &Transaction, height: u32, mtp: u64) -> bool {
    let lock_time = tx.lock_time;
    if lock_time == 0 {
        return true;
    }
    let passed = if lock_time < LOCKTIME_THRESHOLD {
        lock_time < height
    } else {
        u64::from(lock_time) < mtp
    };
    passed || tx.inputs.iter().all(|i| i.sequence == u32::MAX)
}

/// Whether the BIP68 relative lock of an input with `sequence` spending `coin` has passed in a
/// block at `height` whose parent has median time past `mtp`: for `Blocks(n)`,
/// `height ≥ coin.height + n`; for `Time(n)`, `mtp ≥ coin.creation_mtp + n · 512`. Applies only
/// to transactions of version ≥ 2 (never to the coinbase).
pub fn relative_lock_passed(sequence: u32, coin: &Coin, height: u32, mtp: u64) -> bool {
    match relative_lock(sequence) {
        None => true,
        Some(RelativeLock::Blocks(n)) => u64::from(height) >= u64::from(coin.height) + u64::from(n),
        Some(lock @ RelativeLock::Time(_)) => {
            let secs = u64::from(lock.seconds().unwrap_or(0));
            mtp >= coin.creation_mtp.saturating_add(secs)
        }
    }
}

/// A coin as seen while connecting one block: from the parent's UTXO set or created earlier in
/// the block.
enum Source {
    View,
    Block,
}

/// Connects `block` on top of `chain.tip()`, checking every transaction against `utxos` (the
/// UTXO set after the tip, already expiry-swept). Assumes [`check_block`] passed, but does not
/// rely on it for safety. Checks, per non-coinbase transaction in block order: finality at this
/// height and the parent's MTP (`NonFinal`); per input, the coin exists (`MissingOrSpent`,
/// `Expired` when the view knows it expired, `DoubleSpendInBlock` when an earlier transaction or
/// input of this block spent it; outputs of earlier transactions of the block may be spent),
/// coinbase maturity (`ImmatureCoinbase`), BIP68 for version ≥ 2 (`SequenceLocked`); the input sum
/// within `MAX_MONEY` (`InputValueOutOfRange`) and at least the output sum (`OutputsExceedInputs`);
/// the scripts under `VerifyFlags::CONSENSUS`, signatures committing to
/// [`ChainParams::genesis_hash`] and queued into one batch per block (`Script`; after a failed batch the first transaction with a bad signature is reported with
/// `SigCheckFailed`), at most `max_block_sig_checks` of them, counted before any is verified
/// (`TooManySigChecks`). Then the coinbase: final, and paying at most
/// [`block_subsidy`]`(parent circulating, improvement, required_eff) + fees`
/// (`CoinbaseTooLarge`); and the new circulating supply is at most `MAX_MONEY`
/// (`SupplyCapExceeded`).
///
/// The header's link, shape, effective requirement and claimed improvement are re-checked
/// (cheaply), because the returned summary is built from them; the losses themselves must have
/// been verified by [`check_proof_of_training`].
///
/// Returns the block's summary — `circulating_supply` = parent's + created − spent, **before**
/// expiry — and the effects. New coins get `height`, `creation_mtp` = the parent's MTP,
/// `creation_loss_index` = the block's loss index. The chainstate then removes every coin with
/// `creation_loss_index ≥ expiry_threshold(params, summary.loss_index)` and subtracts their value
/// ([`HeaderSummary::apply_expiry`]).
pub fn connect_block(
    params: &ChainParams,
    block: &Block,
    chain: &dyn HeaderChain,
    utxos: &dyn UtxoView,
) -> Result<(HeaderSummary, BlockEffects), BlockError> {
    let header = &block.header;
    let tip = chain.tip();
    check_parent(header, &tip)?;
    check_shape(params, header, &tip)?;
    check_required(params, header, chain)?;
    let improvement = check_improvement(header)?;
    let required = header.required_improvement;
    let mut summary = summarize_header(params, header, chain);
    let height = header.height;
    let mtp = median_time_past_span(chain, tip.height, params.median_time_span);

    let Some(coinbase) = block.transactions.first().filter(|t| t.is_coinbase()) else {
        return Err(BlockError::FirstNotCoinbase);
    };
    if !is_final(coinbase, height, mtp) {
        return Err(BlockError::tx(
            0,
            coinbase.txid(),
            TxError::NonFinal { lock_time: coinbase.lock_time },
        ));
    }

    // Outputs created by earlier transactions of this block and not yet spent.
    let mut block_coins: HashMap<OutPoint, Coin> = HashMap::new();
    // Every outpoint spent so far in this block.
    let mut spent_here: HashSet<OutPoint> = HashSet::new();
    let mut spent: Vec<(OutPoint, Coin)> = Vec::new();
    let mut fees = 0u64;
    let mut batch = BatchVerifier::new();
    // Every signature commits to the genesis id: a transaction signed for another network (or
    // another chain) fails here even when the coins it spends exist on both.
    let genesis = params.genesis_hash();
    // Per transaction: its index, txid, spent outputs and the end of its signatures in the batch
    // (to blame a bad signature afterwards).
    let mut verified: Vec<(usize, Txid, Vec<TxOut>, usize)> =
        Vec::with_capacity(block.transactions.len());
    let mut emission_returned = 0u64;
    let mut txids: Vec<Txid> = Vec::with_capacity(block.transactions.len());
    txids.push(coinbase.txid());

    let new_coin = |output: &TxOut, is_coinbase: bool| Coin {
        output: output.clone(),
        height,
        creation_mtp: mtp,
        is_coinbase,
        creation_loss_index: summary.loss_index,
    };

    for (index, tx) in block.transactions.iter().enumerate().skip(1) {
        let txid = tx.txid();
        let fail = |error| BlockError::tx(index, txid, error);
        if tx.is_coinbase() {
            return Err(BlockError::MultipleCoinbase { index });
        }
        if !is_final(tx, height, mtp) {
            return Err(fail(TxError::NonFinal { lock_time: tx.lock_time }));
        }
        let mut inputs_value = 0u64;
        let mut spent_outputs = Vec::with_capacity(tx.inputs.len());
        let mut sources = Vec::with_capacity(tx.inputs.len());
        for (input, txin) in tx.inputs.iter().enumerate() {
            let outpoint = txin.previous_output;
            if spent_here.contains(&outpoint) {
                return Err(fail(TxError::DoubleSpendInBlock { input, outpoint }));
            }
            let (coin, source) = if let Some(c) = block_coins.get(&outpoint) {
                (c.clone(), Source::Block)
            } else if let Some(c) = utxos.coin(&outpoint) {
                (c, Source::View)
            } else if utxos.is_expired(&outpoint) {
                return Err(fail(TxError::Expired { input, outpoint }));
            } else {
                return Err(fail(TxError::MissingOrSpent { input, outpoint }));
            };
            if coin.is_coinbase
                && u64::from(height) < u64::from(coin.height) + u64::from(params.coinbase_maturity)
            {
                return Err(fail(TxError::ImmatureCoinbase {
                    input,
                    coin_height: coin.height,
                    height,
                }));
            }
            if tx.version >= MIN_RELATIVE_LOCK_TX_VERSION
                && !relative_lock_passed(txin.sequence, &coin, height, mtp)
            {
                return Err(fail(TxError::SequenceLocked { input }));
            }
            if !coin.output.value.is_valid_money() {
                return Err(fail(TxError::InputValueOutOfRange));
            }
            inputs_value = inputs_value
                .checked_add(coin.output.value.0)
                .filter(|v| *v <= MAX_MONEY)
                .ok_or_else(|| fail(TxError::InputValueOutOfRange))?;
            spent_outputs.push(coin.output.clone());
            sources.push((outpoint, coin, source));
            spent_here.insert(outpoint);
        }
        let outputs_value = sum_outputs(tx).ok_or_else(|| fail(TxError::OutputTotalTooLarge))?;
        if outputs_value > inputs_value {
            return Err(fail(TxError::OutputsExceedInputs {
                inputs: Amount(inputs_value),
                outputs: Amount(outputs_value),
            }));
        }
        verify_transaction_batched(
            &genesis,
            tx,
            &spent_outputs,
            VerifyFlags::CONSENSUS,
            &mut batch,
        )
        .map_err(|e| fail(TxError::Script(e)))?;
        // Counted before anything is verified: the batch holds exactly the block's non-empty
        // signatures so far.
        if batch.len() > params.max_block_sig_checks {
            return Err(BlockError::TooManySigChecks {
                count: batch.len(),
                max: params.max_block_sig_checks,
            });
        }
        fees =
            fees.checked_add(inputs_value - outputs_value).ok_or(BlockError::SupplyCapExceeded)?;
        for (outpoint, coin, source) in sources {
            match source {
                Source::View => spent.push((outpoint, coin)),
                Source::Block => {
                    block_coins.remove(&outpoint);
                }
            }
        }
        for (vout, out) in tx.outputs.iter().enumerate() {
            add_output(&mut block_coins, &mut emission_returned, txid, vout, out, || {
                new_coin(out, false)
            })?;
        }
        verified.push((index, txid, spent_outputs, batch.len()));
        txids.push(txid);
    }

    // The coinbase.
    let subsidy = block_subsidy(params, tip.circulating_supply, improvement, required);
    let allowed = subsidy.0.checked_add(fees).ok_or(BlockError::SupplyCapExceeded)?;
    let claimed = sum_outputs(coinbase).ok_or(BlockError::SupplyCapExceeded)?;
    if claimed > allowed {
        return Err(BlockError::CoinbaseTooLarge {
            claimed: Amount(claimed),
            allowed: Amount(allowed),
        });
    }
    for (vout, out) in coinbase.outputs.iter().enumerate() {
        add_output(&mut block_coins, &mut emission_returned, txids[0], vout, out, || {
            new_coin(out, true)
        })?;
    }

    // Signatures: one batch for the whole block; on failure bisect (with batches) to the first
    // bad signature and report its transaction.
    if let Some(bad) = batch.first_invalid() {
        // The transaction whose signatures end after the bad item holds it.
        let culprit = verified.iter().find(|(.., end)| bad < *end);
        if let Some((index, txid, spent_outputs, _)) = culprit {
            let tx = &block.transactions[*index];
            if let Err(e) = verify_transaction(&genesis, tx, spent_outputs, VerifyFlags::CONSENSUS)
            {
                return Err(BlockError::tx(*index, *txid, TxError::Script(e)));
            }
        }
        return Err(BlockError::SignatureBatchFailed);
    }

    // Net effects in a deterministic order: created coins by (transaction, output) order.
    let mut created: Vec<(OutPoint, Coin)> = Vec::with_capacity(block_coins.len());
    for (tx, &txid) in block.transactions.iter().zip(&txids) {
        for vout in 0..tx.outputs.len() {
            let Ok(vout) = u32::try_from(vout) else { break };
            let outpoint = OutPoint::new(txid, vout);
            if let Some(coin) = block_coins.remove(&outpoint) {
                created.push((outpoint, coin));
            }
        }
    }
    let effects = BlockEffects {
        spent,
        created,
        emission_returned: Amount(emission_returned),
        fees: Amount(fees),
        subsidy,
    };
    let circulating = tip
        .circulating_supply
        .0
        .checked_add(effects.created_value().0)
        .and_then(|v| v.checked_sub(effects.spent_value().0))
        .filter(|v| *v <= MAX_MONEY)
        .ok_or(BlockError::SupplyCapExceeded)?;

    summary.circulating_supply = Amount(circulating);
    Ok((summary, effects))
}

/// Sum of a transaction's outputs, `None` above `MAX_MONEY` or on overflow.
fn sum_outputs(tx: &Transaction) -> Option<u64> {
    tx.outputs
        .iter()
        .try_fold(0u64, |acc, o| acc.checked_add(o.value.0))
        .filter(|v| *v <= MAX_MONEY)
}

/// Records output `vout` of `txid`: a new coin, or value returned to the emission pool.
fn add_output(
    block_coins: &mut HashMap<OutPoint, Coin>,
    emission_returned: &mut u64,
    txid: Txid,
    vout: usize,
    out: &TxOut,
    coin: impl FnOnce() -> Coin,
) -> Result<(), BlockError> {
    if is_unspendable(&out.script_pubkey) {
        *emission_returned =
            emission_returned.checked_add(out.value.0).ok_or(BlockError::SupplyCapExceeded)?;
        return Ok(());
    }
    let vout = u32::try_from(vout).map_err(|_| BlockError::SupplyCapExceeded)?;
    block_coins.insert(OutPoint::new(txid, vout), coin());
    Ok(())
}

/// The model data Proof-of-Training needs: the parent's checkpoint and the block's update.
#[derive(Clone, Copy, Debug)]
pub struct ModelData<'a> {
    /// The parent block's checkpoint.
    pub parent_checkpoint: &'a [u8],
    /// The block's model update.
    pub update: &'a [u8],
}

/// Runs all four stages: [`check_block`], [`check_header_context`],
/// [`check_proof_of_training`] (with the block's sample and `model`), [`connect_block`].
/// Returns the block's derived checkpoint with the summary and effects.
pub fn validate_block(
    params: &ChainParams,
    block: &Block,
    model: ModelData<'_>,
    chain: &dyn HeaderChain,
    utxos: &dyn UtxoView,
    now: u64,
) -> Result<(HeaderSummary, BlockEffects, Checkpoint), BlockError> {
    check_block(params, block)?;
    check_header_context(params, &block.header, chain, now)?;
    let checkpoint = check_proof_of_training(
        params,
        &block.header,
        &chain.tip(),
        &block.sample,
        model.parent_checkpoint,
        model.update,
    )?;
    let (summary, effects) = connect_block(params, block, chain, utxos)?;
    Ok((summary, effects, checkpoint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_primitives::{TxIn, Witness};

    fn tx(lock_time: u32, sequences: &[u32]) -> Transaction {
        Transaction {
            version: 2,
            inputs: sequences
                .iter()
                .map(|&sequence| TxIn {
                    previous_output: OutPoint::default(),
                    script_sig: Vec::new(),
                    sequence,
                    witness: Witness::new(),
                })
                .collect(),
            outputs: vec![],
            lock_time,
        }
    }

    #[test]
    fn finality_follows_bitcoin() {
        assert!(is_final(&tx(0, &[0]), 0, 0));
        // Heights: strictly below the block's height.
        assert!(!is_final(&tx(10, &[0]), 10, 0));
        assert!(is_final(&tx(10, &[0]), 11, 0));
        // Times: strictly below the parent's median time past.
        let t = LOCKTIME_THRESHOLD + 5;
        assert!(!is_final(&tx(t, &[0]), 1, u64::from(t)));
        assert!(is_final(&tx(t, &[0]), 1, u64::from(t) + 1));
        // A time lock is never satisfied by a height, nor the reverse.
        assert!(!is_final(&tx(t, &[0]), u32::MAX, 0));
        assert!(!is_final(&tx(10, &[0, 0]), 5, u64::MAX));
        // All sequences final: the lock time is ignored.
        assert!(is_final(&tx(10, &[u32::MAX, u32::MAX]), 5, 0));
        assert!(!is_final(&tx(10, &[u32::MAX, 0]), 5, 0));
    }

    #[test]
    fn relative_locks_measure_coin_age() {
        let coin = Coin {
            output: TxOut { value: Amount(1), script_pubkey: vec![] },
            height: 100,
            creation_mtp: 1_000_000,
            is_coinbase: false,
            creation_loss_index: 1,
        };
        assert!(relative_lock_passed(RelativeLock::Blocks(5).to_sequence(), &coin, 105, 0));
        assert!(!relative_lock_passed(RelativeLock::Blocks(5).to_sequence(), &coin, 104, 0));
        let time = RelativeLock::Time(3).to_sequence();
        assert!(relative_lock_passed(time, &coin, 0, 1_000_000 + 1536));
        assert!(!relative_lock_passed(time, &coin, 0, 1_000_000 + 1535));
        // The disable flag: no lock. Ignored bits do not matter.
        assert!(relative_lock_passed(1 << 31 | 0xFFFF, &coin, 0, 0));
        assert!(!relative_lock_passed(0x0001_0005, &coin, 104, 0));
        // The largest lock does not overflow.
        let far = Coin { height: u32::MAX, creation_mtp: u64::MAX, ..coin };
        assert!(!relative_lock_passed(0xFFFF, &far, u32::MAX, u64::MAX - 1));
        assert!(relative_lock_passed(
            RelativeLock::Time(u16::MAX).to_sequence(),
            &far,
            0,
            u64::MAX
        ));
    }

    #[test]
    fn data_mismatch_and_permanence() {
        assert!(BlockError::BadMerkleRoot.is_data_mismatch());
        assert!(BlockError::CheckpointRootMismatch.is_data_mismatch());
        assert!(!BlockError::ValLossMismatch { claimed: 1, evaluated: 2 }.is_data_mismatch());
        assert!(BlockError::ValLossMismatch { claimed: 1, evaluated: 2 }.is_permanent());
        assert!(!BlockError::TimeTooNew { time: 1, now: 0 }.is_permanent());
        assert!(!BlockError::MissingCheckpoint.is_permanent());
        assert!(!BlockError::BadMinerSignature.is_permanent());
        assert!(BlockError::BadMinerKey.is_permanent());
    }
}
