//! ResonanceNet consensus rules (layer 2): chain parameters, Proof-of-Training, the required
//! improvement computed from the chain, rewards and adaptive halving, UTXO expiry, and the
//! validity of headers, blocks and transactions.
//!
//! This crate is pure: it never touches storage. The chainstate (`rnet-chain`) answers the
//! questions validation asks through the [`UtxoView`] and [`HeaderChain`] traits and applies the
//! [`BlockEffects`] that validation returns. The rules are written out in `docs/protocol.md`
//! (Part V).
//!
//! - [`params`]: [`ChainParams`] of mainnet, testnet and regtest, genesis blocks.
//! - [`validation`]: the four stages of block validity ([`check_block`],
//!   [`check_header_context`], [`check_proof_of_training`], [`connect_block`]) and their errors.
//! - [`schedule`]: median time past, the retargeted required improvement, the growth schedule.
//! - [`reward`]: subsidy with performance bonus and adaptive halving, expiry, supply accounting.

pub mod coin;
pub mod context;
pub mod error;
pub mod params;
pub mod reward;
pub mod schedule;
pub mod validation;

pub use coin::{Coin, UtxoView};
pub use context::{BlockEffects, HeaderChain, HeaderSummary};
pub use error::{BlockError, TxError};
pub use params::{BLOCK_VERSION, ChainParams, MAX_BONUS_MULTIPLE, ParamsError};
pub use reward::{
    base_subsidy, block_subsidy, emission_pool, expiry_threshold, halvings, is_expired,
    is_unspendable,
};
pub use schedule::{
    median_time_past, next_block_shape, next_stagnation, required_improvement, summarize_header,
};
pub use validation::{
    check_block, check_header_context, check_proof_of_training, check_transaction, connect_block,
    is_final, relative_lock_passed, validate_block,
};
