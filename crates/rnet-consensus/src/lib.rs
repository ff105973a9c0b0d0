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
//! - [`schedule`]: median time past, the retargeted required improvement and its stall escape,
//!   the growth schedule, the loss index.
//! - [`sample`]: the evaluation sample a block draws after fixing its weights, and its check.
//! - [`reward`]: subsidy with performance bonus and adaptive halving, expiry, supply accounting.

pub mod block_model;
pub mod coin;
pub mod context;
pub mod error;
pub mod params;
pub mod reward;
pub mod sample;
pub mod schedule;
pub mod validation;

pub use block_model::{
    check_update_commitment, derive_checkpoint, grown_parent, growth_seed, update_limits,
};
pub use coin::{Coin, UtxoView};
pub use context::{BlockEffects, HeaderChain, HeaderSummary};
pub use error::{BlockError, TxError};
pub use params::{
    BLOCK_VERSION, COINBASE_TAG_LEN, ChainParams, MAX_BONUS_MULTIPLE, MAX_COINBASE_SCRIPT_SIG,
    MAX_RANK, MAX_UPDATE_BYTES, ParamsError, coinbase_tag,
};
pub use reward::{
    base_subsidy, block_subsidy, emission_pool, expiry_threshold, halvings, is_expired,
    is_unspendable,
};
pub use sample::{
    CandidateError, CorpusTree, SampleEvaluation, build_sample, check_sample, draw_sample,
    evaluate_candidate, sample_indices, sample_seed,
};
pub use schedule::{
    effective_required_improvement, median_time_past, next_block_shape, next_loss_index,
    next_stagnation, required_improvement, stall_shift, summarize_header,
};
pub use validation::{
    ModelData, check_block, check_header_context, check_proof_of_training,
    check_proof_of_training_assumed, check_transaction, connect_block, is_final,
    relative_lock_passed, validate_block,
};
