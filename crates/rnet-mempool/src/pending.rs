//! Script verification outside the locks: [`crate::Mempool::prepare`] runs every cheap check
//! under the caller's locks and returns a [`PendingTx`] with the outputs it spends;
//! [`PendingTx::verify_scripts`] is pure (transaction, spent outputs, genesis id) and can run
//! with no lock held; [`crate::Mempool::accept_verified`] re-runs the cheap checks against the
//! then-current chain and pool, insists on the same spent outputs, and inserts.

use rnet_crypto::BatchVerifier;
use rnet_primitives::{BlockHash, Transaction, TxOut, Txid, Wtxid};
use rnet_script::{
    ScriptError, TxScriptError, VerifyFlags, verify_transaction, verify_transaction_batched,
};

use crate::error::MempoolError;

/// A transaction that passed every check but its scripts, with the outputs it spends (in input
/// order) and the chain whose genesis id its signatures must commit to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingTx {
    pub(crate) tx: Transaction,
    pub(crate) spent: Vec<TxOut>,
    pub(crate) genesis: BlockHash,
}

/// A transaction whose scripts passed against [`VerifiedTx::spent_outputs`]; only
/// [`PendingTx::verify_scripts`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    pub(crate) tx: Transaction,
    pub(crate) spent: Vec<TxOut>,
    pub(crate) genesis: BlockHash,
    /// Non-empty signatures its scripts check (what a block's signature budget counts).
    pub(crate) sig_checks: u32,
}

impl PendingTx {
    /// The transaction.
    pub fn tx(&self) -> &Transaction {
        &self.tx
    }

    /// Its txid.
    pub fn txid(&self) -> Txid {
        self.tx.txid()
    }

    /// The outputs its inputs spend, in input order.
    pub fn spent_outputs(&self) -> &[TxOut] {
        &self.spent
    }

    /// Runs every input's script with `VerifyFlags::STANDARD`, queueing all signatures into one
    /// batch that is verified only after every script ran (and its signature checks were
    /// counted against its budget). Pure and lock-free: the expensive part of acceptance.
    pub fn verify_scripts(self) -> Result<VerifiedTx, MempoolError> {
        let sig_checks = verify_scripts(&self.genesis, &self.tx, &self.spent)?;
        Ok(VerifiedTx { tx: self.tx, spent: self.spent, genesis: self.genesis, sig_checks })
    }
}

impl VerifiedTx {
    /// The transaction.
    pub fn tx(&self) -> &Transaction {
        &self.tx
    }

    /// Its txid.
    pub fn txid(&self) -> Txid {
        self.tx.txid()
    }

    /// Its wtxid.
    pub fn wtxid(&self) -> Wtxid {
        self.tx.wtxid()
    }

    /// The outputs its scripts were verified against, in input order.
    pub fn spent_outputs(&self) -> &[TxOut] {
        &self.spent
    }

    /// Non-empty signatures its scripts check.
    pub fn sig_checks(&self) -> u32 {
        self.sig_checks
    }
}

/// Verifies every script of `tx` spending `spent` on the chain `genesis` with
/// `VerifyFlags::STANDARD`, signatures in one batch. A failed batch is re-checked one signature
/// at a time to report the failing input (only invalid transactions pay for that). Returns the
/// number of non-empty signatures checked, counted (within each input's budget) before any is
/// verified.
pub(crate) fn verify_scripts(
    genesis: &BlockHash,
    tx: &Transaction,
    spent: &[TxOut],
) -> Result<u32, MempoolError> {
    let mut batch = BatchVerifier::new();
    verify_transaction_batched(genesis, tx, spent, VerifyFlags::STANDARD, &mut batch)
        .map_err(MempoolError::Script)?;
    let sig_checks = u32::try_from(batch.len()).unwrap_or(u32::MAX);
    if batch.verify().is_ok() {
        return Ok(sig_checks);
    }
    verify_transaction(genesis, tx, spent, VerifyFlags::STANDARD).map_err(MempoolError::Script)?;
    Err(MempoolError::Script(TxScriptError { input: None, error: ScriptError::SigCheckFailed }))
}
