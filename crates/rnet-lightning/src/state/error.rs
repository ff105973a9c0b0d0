//! Why the channel state machine refuses a message or an action.

use rnet_primitives::{Amount, BlockHash};
use thiserror::Error;

use crate::channel::{ChannelError, FeeRate, ShachainError};
use crate::wire::{ChannelId, WireError};

/// Every refusal of [`super::Channel`]. A refusal of a counterparty message is a protocol
/// violation: the caller fails the channel (sends `error`, broadcasts the latest holder
/// commitment). The state is unchanged by a refused message or action.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// The transaction layer refused something (keys, amounts, reserves, fee, scripts).
    #[error("channel: {0}")]
    Channel(#[from] ChannelError),
    /// A message could not be encoded or a stored state decoded.
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    /// The counterparty's per-commitment secrets are inconsistent.
    #[error("per-commitment secrets: {0}")]
    Shachain(#[from] ShachainError),
    /// A message or action that the channel's phase does not allow.
    #[error("{what} is not allowed in phase {phase:?}")]
    WrongPhase {
        /// The message or action.
        what: &'static str,
        /// The phase the channel was in.
        phase: super::Phase,
    },
    /// A message for another channel.
    #[error("message for channel {got:?}, this is {expected:?}")]
    WrongChannelId {
        /// This channel's id.
        expected: ChannelId,
        /// The message's.
        got: ChannelId,
    },
    /// `open_channel` for another chain.
    #[error("open_channel for chain {0:?}")]
    WrongChain(BlockHash),
    /// A local configuration value that cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// A channel parameter proposed by the counterparty that BOLT 2 (or our configuration)
    /// refuses.
    #[error("unacceptable {field}: {reason}")]
    UnacceptableParameter {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A fee rate outside the configured range, or too large for the wire's `u32`.
    #[error("fee rate {0:?} outside the accepted range")]
    FeerateOutOfRange(FeeRate),
    /// Only the funder sends `update_fee`.
    #[error("update_fee from the non-funder")]
    NotFunder,
    /// The counterparty's signature of our commitment does not verify.
    #[error("invalid commitment signature")]
    InvalidCommitmentSignature,
    /// The counterparty's signature of one of our HTLC transactions does not verify.
    #[error("invalid signature of HTLC transaction {index}")]
    InvalidHtlcSignature {
        /// Its position (commitment output order).
        index: usize,
    },
    /// `commitment_signed` with a different number of HTLC signatures than untrimmed HTLCs.
    #[error("{got} HTLC signatures for {expected} untrimmed HTLCs")]
    WrongHtlcSignatureCount {
        /// Untrimmed HTLC outputs.
        expected: usize,
        /// Signatures received.
        got: usize,
    },
    /// A revealed per-commitment secret whose public key is not the revoked state's point.
    #[error("revealed per-commitment secret does not match the commitment's point")]
    InvalidRevocationSecret,
    /// `revoke_and_ack` while no commitment of the counterparty awaits revocation.
    #[error("revoke_and_ack without an outstanding commitment_signed")]
    UnexpectedRevocation,
    /// `commitment_signed` may not be sent until the previous one is revoked.
    #[error("waiting for revoke_and_ack")]
    AwaitingRevocation,
    /// Sending `commitment_signed` with no update to commit.
    #[error("nothing to commit")]
    NothingToCommit,
    /// A received `commitment_signed` that commits no update.
    #[error("commitment_signed without updates")]
    CommitmentWithoutChanges,
    /// HTLC ids must be 0, 1, 2, … per sender.
    #[error("HTLC id {got}, expected {expected}")]
    UnexpectedHtlcId {
        /// The next id.
        expected: u64,
        /// The id received.
        got: u64,
    },
    /// An HTLC below the receiver's `htlc_minimum_msat` (or zero).
    #[error("HTLC of {amount_msat} msat below the minimum {minimum_msat}")]
    HtlcBelowMinimum {
        /// The amount.
        amount_msat: u64,
        /// The receiver's minimum.
        minimum_msat: u64,
    },
    /// More HTLCs offered at once than the receiver's `max_accepted_htlcs`.
    #[error("{count} offered HTLCs exceed max_accepted_htlcs {max}")]
    TooManyHtlcs {
        /// HTLCs offered after the update.
        count: usize,
        /// The receiver's limit.
        max: u16,
    },
    /// Offered HTLCs above the receiver's `max_htlc_value_in_flight_msat`.
    #[error("{value_msat} msat in flight exceeds {max_msat}")]
    MaxInFlightExceeded {
        /// Value offered after the update.
        value_msat: u64,
        /// The receiver's limit.
        max_msat: u64,
    },
    /// Trimmed (dust) HTLCs on one commitment above our `max_dust_htlc_exposure_msat`.
    #[error("{exposure_msat} msat of dust HTLCs exceeds {max_msat}")]
    DustExposureExceeded {
        /// Dust HTLC value after the update.
        exposure_msat: u64,
        /// The limit.
        max_msat: u64,
    },
    /// An HTLC larger than the offerer's balance.
    #[error("balance too small for the update")]
    InsufficientBalance,
    /// No such HTLC in both current commitments (or it is already being removed).
    #[error("no committed HTLC {id} that can be settled")]
    UnknownHtlc {
        /// The id.
        id: u64,
    },
    /// A preimage whose Keccak-256d is not the HTLC's payment hash.
    #[error("preimage does not match HTLC {id}")]
    WrongPreimage {
        /// The HTLC.
        id: u64,
    },
    /// `update_fail_malformed_htlc` without the `BADONION` bit.
    #[error("malformed-HTLC failure code {0:#06x} lacks BADONION")]
    MissingBadOnion(u16),
    /// `update_add_htlc` after `shutdown`.
    #[error("no new HTLCs after shutdown")]
    ShuttingDown,
    /// A shutdown script that is not a standard 32-byte key or script-hash output, or not the
    /// one announced up front.
    #[error("unacceptable shutdown script")]
    InvalidShutdownScript,
    /// `shutdown` while our own updates are not yet committed.
    #[error("updates pending: commit them before shutdown")]
    PendingUpdates,
    /// A closing fee above the final commitment's fee or what the funder holds.
    #[error("closing fee {fee} above the maximum {max}")]
    ClosingFeeTooHigh {
        /// The proposal.
        fee: Amount,
        /// The maximum.
        max: Amount,
    },
    /// A closing fee proposal outside the range of the previous two proposals.
    #[error("closing fee {0} does not converge")]
    ClosingFeeNotConverging(Amount),
    /// The counterparty's closing signature does not verify.
    #[error("invalid closing signature")]
    InvalidClosingSignature,
    /// A channel message before `channel_reestablish` after a disconnection.
    #[error("awaiting channel_reestablish")]
    NotReestablished,
    /// `channel_reestablish` while connected (call `peer_disconnected` first).
    #[error("channel_reestablish while connected")]
    NotDisconnected,
    /// `channel_reestablish` whose numbers or points do not fit our state.
    #[error("channel_reestablish does not match our state: {0}")]
    ReestablishMismatch(&'static str),
    /// The counterparty proved (with our own per-commitment secret) that it has a newer state
    /// than ours: we lost data and must not broadcast our commitment.
    #[error("the counterparty has a newer state; ours is outdated")]
    OutdatedState,
    /// The counterparty sent `error` for this channel.
    #[error("counterparty error: {0}")]
    CounterpartyError(String),
    /// A message that does not belong to a channel (`init`, `ping`, `pong`).
    #[error("not a channel message")]
    NotAChannelMessage,
    /// A stored state with an unknown version byte.
    #[error("unsupported state version {0}")]
    UnsupportedVersion(u8),
    /// A stored state that decodes but is inconsistent.
    #[error("corrupt stored state: {0}")]
    CorruptState(&'static str),
}
