//! Why a block or one of its transactions is invalid: one variant per rule.

use rnet_model::{CheckpointError, EvalError, UpdateError, UpdateFormatError};
use rnet_primitives::{Amount, BlockHash, OutPoint, Txid};
use rnet_script::TxScriptError;
use thiserror::Error;

/// Why a transaction inside a block is invalid (wrapped in [`BlockError::Transaction`]).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TxError {
    /// A transaction without inputs.
    #[error("transaction has no inputs")]
    NoInputs,
    /// A transaction without outputs.
    #[error("transaction has no outputs")]
    NoOutputs,
    /// An output value above `MAX_MONEY`.
    #[error("output {output} value {value} exceeds the supply cap")]
    OutputValueTooLarge {
        /// Output index.
        output: usize,
        /// The value.
        value: Amount,
    },
    /// The outputs add up to more than `MAX_MONEY`.
    #[error("outputs total more than the supply cap")]
    OutputTotalTooLarge,
    /// Two inputs of the transaction spend the same outpoint.
    #[error("input {input} spends an outpoint an earlier input of the same transaction spends")]
    DuplicateInput {
        /// Input index.
        input: usize,
    },
    /// A non-coinbase input spends the null outpoint.
    #[error("input {input} of a non-coinbase transaction spends the null outpoint")]
    NullPrevout {
        /// Input index.
        input: usize,
    },
    /// The coinbase `script_sig` is shorter than 8 bytes (the height and the network magic) or
    /// longer than 100 bytes.
    #[error("coinbase script_sig of {len} bytes (must be 8..=100)")]
    CoinbaseScriptSize {
        /// Its length.
        len: usize,
    },
    /// The coinbase `script_sig` does not start with the block height (u32 little-endian).
    #[error("coinbase script_sig does not start with the block height {expected}")]
    CoinbaseHeight {
        /// The block's height.
        expected: u32,
    },
    /// The coinbase `script_sig` does not carry this network's magic after the height: it was
    /// made for another network (or is untagged).
    #[error(
        "coinbase script_sig is tagged {} after the height, not this network's magic {}",
        hex(found),
        hex(expected)
    )]
    CoinbaseNetwork {
        /// This network's P2P message start.
        expected: [u8; 4],
        /// Bytes 4..8 of the `script_sig`.
        found: [u8; 4],
    },
    /// The coinbase input has a witness.
    #[error("coinbase input has a witness")]
    CoinbaseWitness,
    /// The lock time has not passed and some sequence is not final.
    #[error("transaction is not final (lock_time {lock_time})")]
    NonFinal {
        /// The transaction's lock time.
        lock_time: u32,
    },
    /// The outpoint is not in the UTXO set: it never existed or was spent in an earlier block.
    #[error("input {input} spends {outpoint:?}, which is missing or already spent")]
    MissingOrSpent {
        /// Input index.
        input: usize,
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// The outpoint was a coin that expired.
    #[error("input {input} spends {outpoint:?}, which has expired")]
    Expired {
        /// Input index.
        input: usize,
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// The outpoint was already spent by an earlier transaction (or input) of this block.
    #[error("input {input} spends {outpoint:?}, already spent earlier in this block")]
    DoubleSpendInBlock {
        /// Input index.
        input: usize,
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// A coinbase output spent before `coinbase_maturity` blocks.
    #[error("input {input} spends a coinbase of height {coin_height} at height {height}")]
    ImmatureCoinbase {
        /// Input index.
        input: usize,
        /// Height of the coinbase.
        coin_height: u32,
        /// Height of the spending block.
        height: u32,
    },
    /// The input's BIP68 relative lock has not passed.
    #[error("input {input}: relative lock time not reached")]
    SequenceLocked {
        /// Input index.
        input: usize,
    },
    /// The spent coins add up to more than `MAX_MONEY` (or one is above it).
    #[error("input values exceed the supply cap")]
    InputValueOutOfRange,
    /// The outputs are worth more than the inputs.
    #[error("outputs {outputs} exceed inputs {inputs}")]
    OutputsExceedInputs {
        /// Sum of the inputs.
        inputs: Amount,
        /// Sum of the outputs.
        outputs: Amount,
    },
    /// A script failed (for a bad signature found after a failed batch:
    /// `ScriptError::SigCheckFailed`).
    #[error("script: {0}")]
    Script(TxScriptError),
}

/// Why a block is invalid. Each rule has its own variant.
///
/// [`BlockError::is_data_mismatch`] separates the errors where the block's *data* (transactions,
/// signature, checkpoint bytes) may simply not be what the header commits to — a peer may have
/// corrupted it — from those where the header itself (hence the block id) is invalid.
#[derive(Debug, Error, PartialEq)]
pub enum BlockError {
    // ----- context-free (check_block) -----
    /// A block without transactions.
    #[error("block has no transactions")]
    NoTransactions,
    /// The encoded block is larger than `max_block_size`.
    #[error("block of {size} bytes exceeds {max}")]
    Oversize {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The header version is below [`crate::BLOCK_VERSION`].
    #[error("header version {0} is obsolete")]
    BadVersion(u32),
    /// The header's merkle root does not match the transactions.
    #[error("merkle root mismatch")]
    BadMerkleRoot,
    /// The transaction list has a duplicated subtree (CVE-2012-2459) with the header's root.
    #[error("mutated merkle tree (duplicated transactions)")]
    MutatedMerkle,
    /// `miner_pubkey` is not an Ed25519 point.
    #[error("miner public key is not a valid point")]
    BadMinerKey,
    /// The miner's signature over the block id does not verify.
    #[error("bad miner signature")]
    BadMinerSignature,
    /// The first transaction is not a coinbase.
    #[error("first transaction is not a coinbase")]
    FirstNotCoinbase,
    /// A coinbase after the first transaction.
    #[error("transaction {index} is a second coinbase")]
    MultipleCoinbase {
        /// Its index.
        index: usize,
    },
    /// Two transactions with the same txid.
    #[error("duplicate transaction {txid}")]
    DuplicateTransaction {
        /// The txid.
        txid: Txid,
    },
    /// A transaction breaks a rule.
    #[error("transaction {index} ({txid}): {error}")]
    Transaction {
        /// Index in the block.
        index: usize,
        /// Its txid.
        txid: Txid,
        /// The rule.
        error: TxError,
    },

    // ----- header in context (check_header_context) -----
    /// `prev_block_hash` is not the tip this block is validated against.
    #[error("previous block {got} is not the tip {expected}")]
    BadPrevHash {
        /// The tip's hash.
        expected: BlockHash,
        /// The header's parent.
        got: BlockHash,
    },
    /// The height is not the parent's plus one.
    #[error("height {got}, expected {expected}")]
    BadHeight {
        /// Parent height + 1.
        expected: u32,
        /// The header's height.
        got: u32,
    },
    /// The time is not after the median time past.
    #[error("time {time} not after the median time past {median_time_past}")]
    TimeTooOld {
        /// Header time.
        time: u64,
        /// Median of the last `median_time_span` blocks.
        median_time_past: u64,
    },
    /// The time is too far in the future.
    #[error("time {time} more than the allowed drift after {now}")]
    TimeTooNew {
        /// Header time.
        time: u64,
        /// The validating node's clock.
        now: u64,
    },
    /// The model shape is not the scheduled one.
    #[error("model shape {got:?}, scheduled {expected:?}")]
    BadShape {
        /// Scheduled `(d_model, n_layers)`.
        expected: (u32, u32),
        /// The header's.
        got: (u32, u32),
    },
    /// The header's required improvement differs from the value computed from the chain.
    #[error("required improvement {got}, the chain requires {expected}")]
    BadRequiredImprovement {
        /// Computed from the chain.
        expected: u64,
        /// The header's.
        got: u64,
    },
    /// The header's checkpoint size is not the size of a checkpoint of its shape.
    #[error("header checkpoint size {got}, the shape needs {expected}")]
    BadCheckpointSize {
        /// Size implied by the shape (0 if the shape is not a valid model).
        expected: u64,
        /// The header's.
        got: u64,
    },
    /// The header's update size is below an empty update's or above `max_update_bytes`.
    #[error("header update size {size} is outside {min}..={max}")]
    BadUpdateSize {
        /// The header's.
        size: u64,
        /// The size of an update with no entries.
        min: u64,
        /// The network's `max_update_bytes`.
        max: u64,
    },
    /// `parent_loss − val_loss` is below the effective required improvement.
    #[error("val_loss {val_loss} does not improve on parent_loss {parent_loss} by {required}")]
    InsufficientImprovement {
        /// Parent's loss.
        parent_loss: u64,
        /// This block's loss.
        val_loss: u64,
        /// The required improvement.
        required: u64,
    },

    // ----- Proof-of-Training (check_proof_of_training) -----
    /// No update bytes were supplied (the block's update is not available).
    #[error("model update missing")]
    MissingUpdate,
    /// The update bytes are not as long as the header says.
    #[error("model update has {actual} bytes, header says {header}")]
    UpdateSizeMismatch {
        /// Header's size.
        header: u64,
        /// Bytes supplied.
        actual: u64,
    },
    /// The update bytes do not hash to the header's update root.
    #[error("model update root mismatch")]
    UpdateRootMismatch,
    /// The committed update does not decode (Part III §5.2).
    #[error("model update invalid: {0}")]
    InvalidUpdate(UpdateFormatError),
    /// The committed update does not give the committed checkpoint from the grown parent: over
    /// a limit, for another tensor list, non-finite, or another root (Part III §5.2).
    #[error("model update rejected: {0}")]
    BadUpdate(UpdateError),
    /// The parent's model could not be grown to the block's shape (cannot happen once the shape
    /// passed the schedule check).
    #[error("cannot grow the parent model: {0}")]
    GrowthFailed(String),
    /// No checkpoint bytes were supplied (the checkpoint is not available).
    #[error("checkpoint missing")]
    MissingCheckpoint,
    /// The checkpoint bytes are not as long as the header says.
    #[error("checkpoint has {actual} bytes, header says {header}")]
    CheckpointSizeMismatch {
        /// Header's size.
        header: u64,
        /// Bytes supplied.
        actual: u64,
    },
    /// The checkpoint bytes do not hash to the header's root.
    #[error("checkpoint root mismatch")]
    CheckpointRootMismatch,
    /// The parent's checkpoint is not available (a node that has not obtained or has pruned it
    /// passes an empty slice).
    #[error("parent checkpoint missing")]
    MissingParentCheckpoint,
    /// The parent checkpoint bytes are not the ones the parent's header commits to.
    #[error("parent checkpoint does not match the parent's root")]
    ParentCheckpointMismatch,
    /// The parent checkpoint matches its root but does not parse (its block was never valid:
    /// a chainstate inconsistency, never the child's fault).
    #[error("parent checkpoint invalid: {0}")]
    InvalidParentCheckpoint(CheckpointError),
    /// A sample record's index is not above the previous one.
    #[error("sample record {index} out of order")]
    SampleOutOfOrder {
        /// The record's index.
        index: u32,
    },
    /// The sample carries more than `K` records.
    #[error("sample carries an extra record {index}")]
    SampleExtraRecord {
        /// The extra record's index.
        index: u32,
    },
    /// A drawn record is absent from the sample.
    #[error("sample lacks drawn record {index}")]
    SampleRecordMissing {
        /// The index that should have been there.
        index: u64,
    },
    /// A record that was not drawn for this header (for another root, key or parent).
    #[error("sample record {index} was not drawn for this block")]
    SampleRecordNotDrawn {
        /// The record's index.
        index: u32,
    },
    /// A record of the wrong length.
    #[error("sample record {index} has {len} bytes, expected {expected}")]
    SampleRecordLength {
        /// The record's index.
        index: u32,
        /// Its length.
        len: usize,
        /// `T + 1`.
        expected: usize,
    },
    /// A record whose branch does not prove it under `corpus_root`.
    #[error("sample record {index} has a bad merkle branch")]
    SampleBadProof {
        /// The record's index.
        index: u32,
    },
    /// The bytes match the header but are not a valid checkpoint.
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(CheckpointError),
    /// The checkpoint's height field differs from the block's.
    #[error("checkpoint height {checkpoint}, block height {block}")]
    CheckpointHeightMismatch {
        /// Block height.
        block: u32,
        /// Height in the checkpoint.
        checkpoint: u64,
    },
    /// The checkpoint's model config is not the scheduled one (shape, slots, kernels, window).
    #[error("checkpoint config differs from the scheduled config")]
    CheckpointConfigMismatch,
    /// The canonical evaluation failed (non-finite loss).
    #[error("evaluation failed: {0}")]
    EvaluationFailed(EvalError),
    /// The evaluated loss differs from the header's `val_loss`.
    #[error("header claims val_loss {claimed}, the checkpoint evaluates to {evaluated}")]
    ValLossMismatch {
        /// The header's value.
        claimed: u64,
        /// The canonical evaluation.
        evaluated: u64,
    },
    /// The parent checkpoint's loss on the sample differs from the header's `parent_loss`.
    #[error("header claims parent_loss {claimed}, the parent evaluates to {evaluated}")]
    ParentLossMismatch {
        /// The header's value.
        claimed: u64,
        /// The canonical evaluation of the parent checkpoint on this block's sample.
        evaluated: u64,
    },

    // ----- connection (connect_block) -----
    /// The coinbase pays more than the subsidy plus fees.
    #[error("coinbase pays {claimed}, at most {allowed} allowed")]
    CoinbaseTooLarge {
        /// Sum of the coinbase outputs.
        claimed: Amount,
        /// Subsidy + fees.
        allowed: Amount,
    },
    /// The block would raise the circulating supply above `MAX_MONEY` (or an amount sum
    /// overflowed).
    #[error("block exceeds the supply cap")]
    SupplyCapExceeded,
    /// The block's transactions check more non-empty signatures than `max_block_sig_checks`
    /// (counted before any is verified).
    #[error("block checks {count} signatures, more than the limit {max}")]
    TooManySigChecks {
        /// Signatures counted when the limit was passed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The block's signature batch failed but no single signature could be blamed (cannot happen
    /// unless batch and single verification disagree).
    #[error("signature batch verification failed")]
    SignatureBatchFailed,
}

impl BlockError {
    /// True when the error may come from data that does not match a valid header — corrupted
    /// transactions (bad or mutated merkle tree), a stripped or altered miner signature (the
    /// signature is not part of the block id), checkpoint bytes (the block's or its parent's)
    /// that are missing or are not the ones the headers commit to, or an evaluation sample that
    /// is not the one the header draws. The block id must then **not** be marked permanently invalid:
    /// the same header with the right data may be valid. For every other error the header (and
    /// so the id) is invalid.
    pub fn is_data_mismatch(&self) -> bool {
        matches!(
            self,
            BlockError::BadMerkleRoot
                | BlockError::MutatedMerkle
                | BlockError::BadMinerSignature
                | BlockError::MissingCheckpoint
                | BlockError::MissingUpdate
                | BlockError::UpdateSizeMismatch { .. }
                | BlockError::UpdateRootMismatch
                | BlockError::CheckpointSizeMismatch { .. }
                | BlockError::CheckpointRootMismatch
                | BlockError::MissingParentCheckpoint
                | BlockError::ParentCheckpointMismatch
                | BlockError::InvalidParentCheckpoint(_)
                | BlockError::SampleOutOfOrder { .. }
                | BlockError::SampleExtraRecord { .. }
                | BlockError::SampleRecordMissing { .. }
                | BlockError::SampleRecordNotDrawn { .. }
                | BlockError::SampleRecordLength { .. }
                | BlockError::SampleBadProof { .. }
        )
    }

    /// Whether the failure proves the block id invalid forever (so the block index may record
    /// it): neither a data mismatch ([`BlockError::is_data_mismatch`]) nor a time too far in the
    /// future ([`BlockError::TimeTooNew`], which passes once the clock catches up), nor a block
    /// validated against a branch that does not end at its parent ([`BlockError::BadPrevHash`],
    /// a caller error).
    pub fn is_permanent(&self) -> bool {
        !self.is_data_mismatch()
            && !matches!(self, BlockError::TimeTooNew { .. } | BlockError::BadPrevHash { .. })
    }

    pub(crate) fn tx(index: usize, txid: Txid, error: TxError) -> Self {
        BlockError::Transaction { index, txid, error }
    }
}

/// Lowercase hex of a byte string (for error messages).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
