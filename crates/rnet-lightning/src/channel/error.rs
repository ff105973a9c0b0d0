//! Why a channel transaction cannot be built, signed or checked.

use rnet_primitives::Amount;
use rnet_script::{ScriptError, TemplateError};
use thiserror::Error;

use super::commitment::{HtlcDirection, Side};
use super::shachain::ShachainError;

/// Every failure of the channel transaction layer. Inputs that come from the counterparty
/// (keys, signatures, secrets, amounts) are checked and refused with one of these; nothing in
/// this layer panics on them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelError {
    /// A script could not be built (weak key, zero lock, zero timeout).
    #[error("script template: {0}")]
    Template(#[from] TemplateError),
    /// An HTLC's `cltv_expiry` must be a block height (1 ..= 499 999 999).
    #[error("cltv_expiry {0} is not a block height")]
    CltvNotHeight(u32),
    /// A dust limit below the relay dust threshold would create outputs the mempool refuses.
    #[error("dust limit {dust_limit} below the relay threshold {minimum}")]
    DustLimitTooLow {
        /// The requested limit.
        dust_limit: Amount,
        /// [`super::fees::MIN_DUST_LIMIT`].
        minimum: Amount,
    },
    /// `to_self_delay` of zero would make the holder's outputs spendable at once, leaving no
    /// time to punish a revoked commitment.
    #[error("to_self_delay must be at least 1 block")]
    ZeroDelay,
    /// The funding amount is zero or above `MAX_MONEY`.
    #[error("invalid funding amount {0}")]
    InvalidFundingAmount(Amount),
    /// A channel reserve larger than the channel.
    #[error("channel reserve {0} exceeds the funding amount")]
    ReserveTooLarge(Amount),
    /// The two parties use the same funding key.
    #[error("both parties use the same funding key")]
    DuplicateFundingKey,
    /// Commitment numbers are 48-bit.
    #[error("commitment number {0} exceeds 2^48 - 1")]
    CommitmentNumberTooLarge(u64),
    /// Balances and HTLCs do not add up to the funding amount (in msat).
    #[error("balances and HTLCs sum to {actual_msat} msat, funding is {expected_msat} msat")]
    ValueNotConserved {
        /// `funding_amount × 1000`.
        expected_msat: u128,
        /// `to_local + to_remote + Σ htlc`.
        actual_msat: u128,
    },
    /// An HTLC of zero msat.
    #[error("HTLC {id} has a zero amount")]
    ZeroHtlcAmount {
        /// The HTLC.
        id: u64,
    },
    /// Two HTLCs with the same id in the same direction.
    #[error("duplicate HTLC id {id} ({direction:?})")]
    DuplicateHtlc {
        /// The id.
        id: u64,
        /// Who offered it.
        direction: HtlcDirection,
    },
    /// More HTLCs in one direction than [`super::commitment::MAX_HTLCS_PER_DIRECTION`].
    #[error("more than the allowed number of HTLCs in one direction")]
    TooManyHtlcs,
    /// The funder's balance cannot pay the commitment fee.
    #[error("funder balance {balance_msat} msat cannot pay the commitment fee {fee}")]
    FunderCannotAffordFee {
        /// The funder's balance in msat before the fee.
        balance_msat: u64,
        /// The larger base fee of the two commitments.
        fee: Amount,
    },
    /// A party's balance fell below its channel reserve in an update that lowered it.
    #[error("{side:?} balance {balance_msat} msat is below its reserve {reserve}")]
    ReserveViolated {
        /// Whose balance.
        side: Side,
        /// The balance (the funder's after the fee).
        balance_msat: u64,
        /// The reserve it must keep.
        reserve: Amount,
    },
    /// A revealed per-commitment secret whose public key is not the commitment's point.
    #[error("per-commitment secret does not match the commitment's per-commitment point")]
    SecretMismatch,
    /// A signing key that is not the key the script expects.
    #[error("signing key does not match the key in the script")]
    KeyMismatch,
    /// A preimage whose Keccak-256d is not the HTLC's payment hash.
    #[error("preimage does not match the payment hash")]
    WrongPreimage,
    /// An output index that is not of the expected kind (or does not exist).
    #[error("output {0} is not an output of the expected kind")]
    WrongOutput(u32),
    /// A sweep (or transaction) with no inputs, or an output that is not there.
    #[error("no inputs")]
    NoInputs,
    /// A sweep whose value after its fee is below the dust limit.
    #[error("sweep output {value} below the dust limit {dust_limit}")]
    BelowDust {
        /// The output value after the fee (0 if the fee exceeds the inputs).
        value: Amount,
        /// The limit.
        dust_limit: Amount,
    },
    /// A transaction larger than the mempool accepts; split the inputs.
    #[error("transaction of {size} bytes exceeds the standard size {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// [`super::fees::MAX_STANDARD_TX_SIZE`].
        max: usize,
    },
    /// A destination that is not a 32-byte v0 or v1 witness program (the mempool refuses
    /// anything else).
    #[error("destination is not a standard key or script-hash output")]
    NonStandardDestination,
    /// Amount arithmetic overflowed.
    #[error("amount overflow")]
    AmountOverflow,
    /// A signature that is not a valid 64-byte `ALL` signature of the expected key over the
    /// expected message.
    #[error("invalid signature")]
    InvalidSignature,
    /// The signature hash could not be computed.
    #[error("signature hash: {0}")]
    Script(#[from] ScriptError),
    /// A per-commitment secret store failure.
    #[error("per-commitment secrets: {0}")]
    Shachain(#[from] ShachainError),
}
