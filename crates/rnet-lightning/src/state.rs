//! The channel state machine of BOLT 2 for one node: [`Channel`], driven by peer messages and
//! local actions, deterministic and without I/O.
//!
//! Life of a channel: `open_channel` → `accept_channel` → `funding_created` (the funder gives
//! the outpoint of the funding transaction it built) → `funding_signed` → `channel_ready` once
//! the caller reports enough confirmations ([`Channel::funding_depth`]) → normal operation
//! (HTLC updates, `update_fee`, `commitment_signed` / `revoke_and_ack`) → `shutdown` →
//! `closing_signed` negotiation → closed.
//!
//! Every counterparty signature (commitment, HTLC transactions, close) and every revealed
//! per-commitment secret is checked before it is accepted; a refused message leaves the
//! state unchanged and returns a [`StateError`], after which the caller fails the channel.
//! [`Channel::encode`] / [`Channel::decode`] persist the whole state (version byte first):
//! store it after every successful call and before sending what the call returned.
//! `docs/lightning.md` §4 states the rules.

mod channel;
mod close;
mod config;
mod error;
mod persist;
mod reestablish;
mod updates;

pub use channel::{Channel, Event, HolderCommitment, HtlcFailure, OpenRequest, Outcome, Phase};
pub use config::ChannelConfig;
pub use error::StateError;
pub use persist::STATE_VERSION;
pub use updates::{AddedHtlc, Update, reduce};
