//! ResonanceNet wallet library (layer 4).
//!
//! A wallet cannot exist without a recovery policy: [`Wallet::create`] takes a
//! [`PolicyConfig`] (heartbeat, social M-of-N, or emission return), and every receive and
//! change address is the v0 script-hash of that policy's template with a fresh owner key per
//! address. See `docs/wallet.md` for the path scheme, the file and backup formats, coin
//! selection and the recovery flows.
//!
//! - [`wallet`]: [`Wallet`] — keys, storage (redb, encrypted secret), lock/unlock, chain
//!   scanning, balances, recovery info, sending, RBF, heartbeat, cancel, backups.
//! - [`recovery`]: paths that do not need the owner's wallet: heartbeat recovery key, guardian
//!   [`RecoveryRequest`], claim after the cancel window, emission sweep.
//! - [`select`]: coin selection (branch-and-bound, largest-first fallback).
//! - [`keys`]: the derivation path scheme `m/44'/coin'/account'/chain'/index'` (coin type 9555 on
//!   mainnet, 1 on testnet and regtest).
//! - [`policy`]: [`PolicyConfig`] and parsers.

pub mod error;
pub mod keys;
pub mod policy;
pub mod recovery;
pub mod select;
mod store;
pub mod wallet;

pub use error::{Result, WalletError};
pub use keys::{COIN_TYPE, GAP_LIMIT, KeyChain, TEST_COIN_TYPE, coin_type, key_path};
pub use policy::{PolicyConfig, parse_hex_key, parse_key_or_address, parse_lock};
pub use recovery::{
    RBF_SEQUENCE, RecoveryRequest, TX_VERSION, complete_recovery, create_recovery_tx,
    heartbeat_recovery_tx, sweep_emission,
};
pub use store::FORMAT;
pub use wallet::{
    Balances, CoinOwner, CoinRecovery, CreatedTx, DUST_LIMIT, Deadline, Encryption, ExpiryWarning,
    RecoveryInfo, Wallet, WalletCoin,
};
