//! ResonanceNet transaction memory pool (layer 3).
//!
//! [`Mempool`] holds unconfirmed transactions that are valid in the next block on top of the
//! caller's chain tip. It is pure over [`rnet_consensus::UtxoView`]: every call that validates
//! takes the chain's UTXO view (as of the tip) and a [`TipContext`]; the node owns both the pool
//! and the chainstate and calls [`Mempool::block_connected`] / [`Mempool::block_disconnected`]
//! as the tip moves.
//!
//! - Acceptance ([`Mempool::accept`], [`Mempool::test_accept`]): consensus sanity, finality for
//!   the next block, inputs from the chain or the pool, expiry, coinbase maturity, BIP68,
//!   standardness (size, version, output kinds, dust), minimum relay and dynamic minimum fees,
//!   replace-by-fee, ancestor/descendant limits, scripts with `VerifyFlags::STANDARD`.
//! - Script verification outside the caller's locks: [`Mempool::prepare`] (cheap checks),
//!   [`PendingTx::verify_scripts`] (pure), [`Mempool::accept_verified`] (re-check and insert).
//! - Orphans (missing inputs) wait in a bounded pool, keyed by wtxid, and are retried when a
//!   parent arrives (in the pool or in a block).
//! - Memory limit: the pool's estimated memory use (Core's `DynamicMemoryUsage`) is bounded; the
//!   lowest descendant-fee-rate packages are evicted (O(log n) each) and the minimum fee rises.
//! - Expiry: transactions older than `mempool_expiry_secs` (two weeks) are dropped.
//! - Block assembly ([`Mempool::select_for_block`], [`Mempool::assemble`]) by ancestor fee rate.
//! - Fee estimation ([`Mempool::estimate_fee`]) from the pooled transactions blocks confirmed.
//!
//! The rules and numbers are in `docs/mempool.md`.

mod assembly;
mod entry;
mod error;
pub mod estimator;
mod index;
mod memusage;
mod orphan;
mod pending;
mod policy;
mod pool;
mod view;

pub use assembly::{BlockSelection, MAX_CONSECUTIVE_FAILURES, NEARLY_FULL_BYTES};
pub use entry::MempoolEntry;
pub use error::{MempoolError, NonStandard};
pub use pending::{PendingTx, VerifiedTx};
pub use policy::{DUST_SPEND_SIZE, FeeRate, MempoolPolicy, TipContext};
pub use pool::{AcceptResult, Mempool, MempoolInfo};
pub use view::MempoolView;

#[cfg(test)]
mod tests;
