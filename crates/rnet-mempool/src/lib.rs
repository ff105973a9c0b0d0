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
//! - Orphans (missing inputs) wait in a bounded pool and are retried when a parent arrives.
//! - Size limit: lowest descendant-fee-rate packages are evicted and the minimum fee rises.
//! - Block assembly ([`Mempool::select_for_block`], [`Mempool::assemble`]) by ancestor fee rate.
//! - Fee estimation ([`Mempool::estimate_fee`]) from the pooled transactions blocks confirmed.
//!
//! The rules and numbers are in `docs/mempool.md`.

mod assembly;
mod entry;
mod error;
pub mod estimator;
mod orphan;
mod policy;
mod pool;
mod view;

pub use assembly::{BlockSelection, MAX_CONSECUTIVE_FAILURES, NEARLY_FULL_BYTES};
pub use entry::MempoolEntry;
pub use error::{MempoolError, NonStandard};
pub use policy::{DUST_SPEND_SIZE, FeeRate, MempoolPolicy, TipContext};
pub use pool::{AcceptResult, ENTRY_OVERHEAD, Mempool, MempoolInfo};
pub use view::MempoolView;

#[cfg(test)]
mod tests;
