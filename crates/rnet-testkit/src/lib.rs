//! Test support for ResonanceNet consensus and chainstate code (used only as a dev-dependency).
//!
//! - [`TestMiner`] builds **real** Proof-of-Training blocks: it grows the parent checkpoint to the
//!   scheduled shape, trains it with `rnet_training` on the bundled text until the canonical loss
//!   beats the parent's by the required improvement, builds the coinbase (full subsidy + fees),
//!   fills and signs the header. On regtest a block takes a few tens of milliseconds.
//! - [`BlockTemplate`] is everything before signing, for tests that need an invalid block of a
//!   particular kind; [`sign_header`] re-signs a changed header.
//! - [`MemoryChain`] is an in-memory chainstate implementing [`rnet_consensus::HeaderChain`] and
//!   [`rnet_consensus::UtxoView`]: it validates submitted blocks with every consensus stage and
//!   applies their effects and the expiry sweep, with undo.
//! - [`ForgedChain`] forges header-valid blocks with unbacked training claims in seconds, for
//!   `-assumevalid`/snapshot-sync tests at real network shapes.
//! - [`tx`]: keys and plain-key spends (signed for regtest, or for any genesis id with the
//!   `_on` variants).

pub mod chain;
pub mod forge;
pub mod miner;
pub mod tx;

pub use chain::{Connected, MemoryChain, SubmitError};
pub use forge::{ForgeError, ForgedChain};
pub use miner::{
    BlockTemplate, MineError, MinedBlock, TestMiner, checkpoint_root, coinbase, fees_of,
    sign_header,
};
pub use tx::{
    plain_spk, regtest_genesis, sign_plain, sign_plain_on, spend_plain, spend_plain_on, test_key,
    unsigned_tx,
};
