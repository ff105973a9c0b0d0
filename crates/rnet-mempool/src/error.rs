//! Why a transaction is not accepted.

use rnet_consensus::TxError;
use rnet_primitives::{Amount, OutPoint, Txid};
use rnet_script::{ScriptError, TxScriptError};
use thiserror::Error;

/// A transaction that is valid under consensus but not relayed (policy).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NonStandard {
    /// Larger than `max_tx_size`.
    #[error("transaction of {size} bytes exceeds {max}")]
    TxTooLarge {
        /// Serialized size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A version other than 1 or 2.
    #[error("transaction version {0} is not standard")]
    Version(u32),
    /// An output script that is neither a key, a script-hash, an emission-return nor a small
    /// null-data output.
    #[error("output {output} has a non-standard script")]
    OutputScript {
        /// Output index.
        output: usize,
    },
    /// A spendable output below the dust threshold.
    #[error("output {output} of {value} is below the dust threshold {threshold}")]
    Dust {
        /// Output index.
        output: usize,
        /// Its value.
        value: Amount,
        /// The threshold.
        threshold: Amount,
    },
    /// More than one null-data output.
    #[error("more than one null-data output")]
    MultipleNullData,
    /// A non-empty `script_sig` (always invalid when spent; rejected early).
    #[error("input {input} has a non-empty script_sig")]
    ScriptSig {
        /// Input index.
        input: usize,
    },
}

/// Why [`crate::Mempool::accept`] refused a transaction.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MempoolError {
    /// Coinbase transactions exist only in blocks.
    #[error("coinbase transaction")]
    Coinbase,
    /// The transaction is already in the pool.
    #[error("transaction {0} is already in the mempool")]
    AlreadyInMempool(Txid),
    /// Some output of the transaction is already a coin of the chain.
    #[error("transaction {0} is already confirmed")]
    AlreadyConfirmed(Txid),
    /// A consensus rule fails (sanity, finality at the next height, expired or immature input,
    /// relative lock, values).
    #[error("invalid: {0}")]
    Invalid(#[from] TxError),
    /// Policy (standardness) rejects it.
    #[error("non-standard: {0}")]
    NonStandard(#[from] NonStandard),
    /// Some inputs are neither chain coins nor outputs of pooled transactions. The transaction
    /// was kept in the orphan pool (if it fit) and is retried when a parent arrives.
    #[error("missing inputs: {missing:?}")]
    MissingInputs {
        /// The outpoints not found.
        missing: Vec<OutPoint>,
    },
    /// A script fails under `VerifyFlags::STANDARD`.
    #[error("script: {0}")]
    Script(TxScriptError),
    /// The fee is below the minimum relay fee for its size.
    #[error("fee {fee} below the minimum relay fee {required}")]
    FeeTooLow {
        /// The fee paid.
        fee: Amount,
        /// The minimum.
        required: Amount,
    },
    /// The fee is below the dynamic minimum the pool asks since it evicted for space.
    #[error("fee {fee} below the mempool minimum fee {required}")]
    MempoolMinFeeNotMet {
        /// The fee paid.
        fee: Amount,
        /// The minimum.
        required: Amount,
    },
    /// Spends an outpoint a pooled transaction spends, which does not allow replacement
    /// (only with `full_rbf = false`).
    #[error("conflicts with non-replaceable transaction {conflict}")]
    ConflictNotReplaceable {
        /// The conflicting pooled transaction.
        conflict: Txid,
    },
    /// Spends an output of a transaction it would replace.
    #[error("spends an output of {txid}, which it replaces")]
    SpendsConflictingTx {
        /// That transaction.
        txid: Txid,
    },
    /// The replacement would evict too many transactions.
    #[error("replacement would evict {count} transactions (max {max})")]
    TooManyReplacements {
        /// Transactions it would evict (conflicts and their descendants).
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The replacement's fee rate is not above that of a transaction it conflicts with.
    #[error("fee rate not above that of conflicting transaction {conflict}")]
    ReplacementFeeRateTooLow {
        /// The conflicting transaction.
        conflict: Txid,
    },
    /// The replacement does not pay for what it evicts plus its own relay.
    #[error("replacement fee {fee} below {required}")]
    ReplacementFeeTooLow {
        /// The fee paid.
        fee: Amount,
        /// Fees of all evicted transactions plus the minimum relay fee of the replacement.
        required: Amount,
    },
    /// Too many in-pool ancestors (itself included).
    #[error("{count} ancestors exceed {max}")]
    TooManyAncestors {
        /// Count with the transaction.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The transaction and its in-pool ancestors are too large.
    #[error("ancestor package of {size} bytes exceeds {max}")]
    AncestorSizeTooLarge {
        /// Size with the transaction.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An ancestor would get too many descendants.
    #[error("ancestor {ancestor} would have {count} descendants (max {max})")]
    TooManyDescendants {
        /// The ancestor.
        ancestor: Txid,
        /// Its descendant count with the transaction.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An ancestor's descendants would be too large.
    #[error("ancestor {ancestor} would have {size} bytes of descendants (max {max})")]
    DescendantSizeTooLarge {
        /// The ancestor.
        ancestor: Txid,
        /// Its descendants' size with the transaction.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The pool is full and the transaction was the one evicted (its package pays the lowest
    /// fee rate).
    #[error("mempool full")]
    MempoolFull,
    /// [`crate::Mempool::accept_verified`]: the transaction now spends other outputs than the
    /// ones its scripts were verified against, or was verified for another chain; verify again.
    #[error("transaction {0} was verified against other spent outputs")]
    StaleVerification(Txid),
}

impl MempoolError {
    /// Whether the transaction went to the orphan pool (missing inputs).
    pub fn is_missing_inputs(&self) -> bool {
        matches!(self, MempoolError::MissingInputs { .. })
    }

    /// Whether the transaction itself breaks a consensus or script rule, so that a peer relaying
    /// it may be penalised. `false` for what depends on the receiver's state or policy: already
    /// known, missing or expired inputs, not yet final or mature, fees, standardness (including
    /// the policy-only script flags), replacement and package limits, a full pool.
    pub fn is_invalid(&self) -> bool {
        match self {
            MempoolError::Coinbase => true,
            MempoolError::Invalid(e) => !matches!(
                e,
                TxError::NonFinal { .. }
                    | TxError::MissingOrSpent { .. }
                    | TxError::Expired { .. }
                    | TxError::DoubleSpendInBlock { .. }
                    | TxError::ImmatureCoinbase { .. }
                    | TxError::SequenceLocked { .. }
            ),
            MempoolError::Script(e) => !matches!(
                e.error,
                ScriptError::DiscourageUpgradableWitnessProgram | ScriptError::WeakPublicKey
            ),
            MempoolError::AlreadyInMempool(_)
            | MempoolError::AlreadyConfirmed(_)
            | MempoolError::NonStandard(_)
            | MempoolError::MissingInputs { .. }
            | MempoolError::FeeTooLow { .. }
            | MempoolError::MempoolMinFeeNotMet { .. }
            | MempoolError::ConflictNotReplaceable { .. }
            | MempoolError::SpendsConflictingTx { .. }
            | MempoolError::TooManyReplacements { .. }
            | MempoolError::ReplacementFeeRateTooLow { .. }
            | MempoolError::ReplacementFeeTooLow { .. }
            | MempoolError::TooManyAncestors { .. }
            | MempoolError::AncestorSizeTooLarge { .. }
            | MempoolError::TooManyDescendants { .. }
            | MempoolError::DescendantSizeTooLarge { .. }
            | MempoolError::MempoolFull
            | MempoolError::StaleVerification(_) => false,
        }
    }
}
