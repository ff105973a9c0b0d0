//! ResonanceNet chainstate (layer 3): the durable state of one node's view of the chain, on the
//! embedded [`redb`] database.
//!
//! - **Block index** with a status per block (header valid, data stored, fully valid, invalid,
//!   invalid child) and first-seen order; **blocks**; **checkpoints** in files checked against
//!   the header's root on every read, pruned to the last `K` blocks of the active chain.
//! - **UTXO set** with an **expiry index** keyed by creation loss, so the expiry sweep after each
//!   block costs O(expired coins); **undo data** per connected block (spent and expired coins,
//!   created outpoints); an **expired-coin table** (every coin the sweeps of the active chain
//!   removed), so a spend of an expired coin is reported as expired however old.
//! - **Fork choice**: the valid chain with the lowest tip `val_loss`, ties to the block that
//!   became connectable first; reorganisations disconnect through undo data and connect block by
//!   block. Each connect or disconnect is one redb write transaction (UTXO changes, expiry sweep,
//!   undo record, index status, tip pointer), so a crash at any point leaves a consistent state.
//! - Invalid blocks are marked (with their descendants) and never validated again, unless the
//!   operator reconsiders them.
//!
//! Entry point: [`ChainState`]. The layout and rules are written out in `docs/chainstate.md`.

pub mod checkpoints;
pub mod error;
pub mod pot;
pub mod reader;
pub mod rules;
pub mod schema;
pub mod views;

mod chainstate;
mod encoding;
mod expired;
mod txindex;

pub use chainstate::{
    AcceptOutcome, Activation, BlockInfo, BlockStatus, ChainOptions, ChainState, ChainTip,
    ChainTipStatus, DEFAULT_PRUNE_CHECKPOINTS_DEPTH, FailPoint, MAX_UNVALIDATED_DEPTH, UtxoStats,
};
pub use error::ChainError;
pub use pot::{CheckpointSource, PotJob, Verdict};
pub use reader::{ChainReader, CheckpointFile};
pub use rules::{ChainRules, ConsensusRules};
pub use views::{BranchView, UtxoSnapshot};
