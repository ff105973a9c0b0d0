//! Accepting a transaction from outside the wallets (P2P relay, `sendrawtransaction`) without
//! holding the chain and mempool locks while its signatures are verified.
//!
//! 1. Under the locks: every cheap check ([`rnet_mempool::Mempool::prepare`]), which also
//!    collects the outputs the transaction spends. A transaction with missing inputs goes to the
//!    orphan pool here (it fails before any script runs).
//! 2. No lock: the scripts, with every signature counted within its input's budget before the
//!    batch is verified ([`rnet_mempool::PendingTx::verify_scripts`]).
//! 3. Under the locks again: [`rnet_mempool::Mempool::accept_verified`] re-runs the cheap checks
//!    against whatever changed meanwhile and inserts. If the spent outputs changed (a block or a
//!    reorg came in between), the transaction is checked once more the plain way.
//!
//! So a peer's 100 kB transaction costs the peer's own thread its verification time, and every
//! RPC, block and other peer keeps the locks.

use rnet_chain::ChainError;
use rnet_mempool::{AcceptResult, MempoolError};
use rnet_primitives::Transaction;

use crate::node::Node;

/// Why a submitted transaction was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitTxError {
    /// The chain state could not be read.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The mempool refused it (see [`MempoolError::is_invalid`] for whether a relaying peer
    /// broke a rule).
    #[error(transparent)]
    Rejected(#[from] MempoolError),
}

impl Node {
    /// Validates `tx` (scripts outside the locks, see the module docs) and adds it to the
    /// mempool; on success the wallets and the miner's template hear about it.
    pub fn submit_transaction(&self, tx: Transaction) -> Result<AcceptResult, SubmitTxError> {
        let now = self.now();
        let pending = {
            let chain = self.chain();
            let utxos = chain.utxo_snapshot()?;
            let tip = self.tip_context(&chain)?;
            let mut pool = self.mempool();
            match pool.prepare(tx.clone(), &utxos, &tip, now) {
                Ok(pending) => pending,
                // Kept as an orphan (or refused) without running a script.
                Err(MempoolError::MissingInputs { .. }) => {
                    return self.admitted(pool.accept(tx, &utxos, &tip, now)?, pool, chain);
                }
                Err(e) => return Err(e.into()),
            }
        };
        let verified = pending.verify_scripts()?;
        let chain = self.chain();
        let utxos = chain.utxo_snapshot()?;
        let tip = self.tip_context(&chain)?;
        let mut pool = self.mempool();
        let result = match pool.accept_verified(verified, &utxos, &tip, now) {
            // The chain moved under the verification: check again the plain way.
            Err(MempoolError::StaleVerification(_)) => pool.accept(tx, &utxos, &tip, now)?,
            other => other?,
        };
        self.admitted(result, pool, chain)
    }

    /// Releases the locks and tells the wallets and the miner about an accepted transaction.
    fn admitted(
        &self,
        result: AcceptResult,
        pool: std::sync::MutexGuard<'_, rnet_mempool::Mempool>,
        chain: crate::node::ChainGuard<'_>,
    ) -> Result<AcceptResult, SubmitTxError> {
        let txs = Node::accepted_txs(&pool, &result);
        drop(pool);
        drop(chain);
        self.mempool_changed();
        for tx in &txs {
            self.events.publish(crate::events::NodeEvent::TransactionAccepted { txid: tx.txid() });
        }
        self.wallets.mempool_accepted(&txs, &result.replaced);
        Ok(result)
    }
}
