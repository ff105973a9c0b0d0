//! The transaction layer of a payment channel: BOLT 3 adapted to Ed25519, Keccak-256d and
//! ResonanceNet's script (`docs/lightning.md` §1 is the normative text).
//!
//! - [`shachain`]: per-commitment secrets (BOLT 3 generator and compact receiver store).
//! - [`keys`]: static basepoints, per-commitment points, the keys of one commitment.
//! - [`scripts`]: funding, `to_local` / second-stage ([`RevocableScript`]), offered and received
//!   HTLC scripts with the witness of every path; `to_remote` is a plain key output.
//! - [`fees`]: fee rate (resonance per 1000 bytes, as the mempool), exact transaction sizes,
//!   dust threshold.
//! - [`number`]: the obscured commitment number in lock time and sequence.
//! - [`claims`]: a commitment's outputs by owner (what each side could claim on chain).
//! - [`commitment`]: channel parameters, [`CommitmentSpec`], [`build_commitment`] for either
//!   party, trimming, dust, fee accounting, reserve rules.
//! - [`htlc_tx`]: HTLC-success and HTLC-timeout transactions.
//! - [`sweep`]: penalty (justice) transactions and every other sweep of channel outputs.
//! - [`close`]: the cooperative close.
//! - [`sign`]: signing and checking signatures through the chain's signature hash.
//! - [`expiry`]: how close the funding output is to UTXO expiry.
//!
//! Revocation does not use BOLT 3's key tweaks (Ed25519 seeds have none): a holder's revocable
//! outputs have a 2-of-2 revocation branch of the counterparty's revocation key and the holder's
//! per-commitment point; revealing the per-commitment secret revokes the state.

pub mod claims;
pub mod close;
pub mod commitment;
mod error;
pub mod expiry;
pub mod fees;
pub mod htlc_tx;
pub mod keys;
pub mod number;
pub mod scripts;
pub mod shachain;
pub mod sign;
pub mod sweep;

pub use claims::CommitmentClaims;
pub use close::{ClosingTransaction, build_closing, closing_fee};
pub use commitment::{
    ChannelParameters, CommitmentFee, CommitmentOutput, CommitmentOutputKind, CommitmentSpec,
    CommitmentTransaction, HtlcDirection, HtlcSpec, MSAT_PER_RESONANCE, PartyConfig, Side,
    build_commitment, check_reserves, funding_output,
};
pub use error::ChannelError;
pub use expiry::FundingExpiry;
pub use fees::{FeeRate, MIN_DUST_LIMIT};
pub use htlc_tx::{HtlcTransaction, HtlcTxKind, htlc_transactions};
pub use keys::{ChannelKeys, ChannelPublicKeys, CommitmentKeys};
pub use scripts::{
    FundingScript, HtlcKeys, HtlcScript, OfferedHtlcScript, ReceivedHtlcScript, RevocableScript,
};
pub use shachain::{SecretGenerator, SecretStore, ShachainError};
pub use sweep::{SweepInput, SweepPath, build_sweep, penalty_inputs, sweep_size};
