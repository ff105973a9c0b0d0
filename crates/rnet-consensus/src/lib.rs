//! ResonanceNet consensus rules (layer 2): chain parameters, Proof-of-Training, the required
//! improvement computed from the chain, rewards and adaptive halving, UTXO expiry, and the
//! validity of headers, blocks and transactions.
//!
//! This crate is pure: it never touches storage. The chainstate (`rnet-chain`) answers the
//! questions validation asks through the [`UtxoView`] and [`HeaderChain`] traits and applies the
//! [`BlockEffects`] that validation returns. The rules are written out in `docs/protocol.md`
//! (Part V).

pub mod coin;
pub mod context;

pub use coin::{Coin, UtxoView};
pub use context::{BlockEffects, HeaderChain, HeaderSummary};
