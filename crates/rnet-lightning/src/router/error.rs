//! Errors of the graph, of pathfinding and of the forwarding checks.

use thiserror::Error;

use crate::gossip::{GossipError, ShortChannelId};
use crate::onion::FailureCode;

/// Why a gossip message or a private channel is refused by the graph. Benign cases (a stale
/// update, a full queue) are not errors but [`super::UpdateOutcome::Ignored`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GraphError {
    /// The message does not verify.
    #[error(transparent)]
    Gossip(#[from] GossipError),
    /// The short channel id is known with other node ids or funding keys.
    #[error("channel {0} already announced with different contents")]
    ConflictingAnnouncement(ShortChannelId),
    /// The announcement requires a feature this node does not know (an even bit).
    #[error("announcement requires an unknown feature")]
    UnknownRequiredFeature,
    /// The graph holds its maximum number of channels or nodes.
    #[error("graph is full")]
    Full,
    /// A channel update's `htlc_maximum_msat` is above the channel's capacity.
    #[error("htlc_maximum_msat {htlc_maximum_msat} above capacity {capacity_msat}")]
    HtlcMaximumAboveCapacity {
        /// `htlc_maximum_msat`.
        htlc_maximum_msat: u64,
        /// Channel capacity, msat.
        capacity_msat: u64,
    },
    /// A private channel between a node and itself.
    #[error("channel endpoints are the same node")]
    SelfChannel,
    /// A channel's capacity does not fit in the msat range.
    #[error("capacity out of range")]
    CapacityOutOfRange,
}

fn hex32(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why no route was found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouteError {
    /// The amount is zero or above [`super::MAX_MSAT`].
    #[error("invalid amount {0} msat")]
    InvalidAmount(u64),
    /// Payer and payee are the same node.
    #[error("payer is the payee")]
    PayerIsPayee,
    /// The final CLTV delta alone exceeds the maximum total CLTV.
    #[error("final CLTV delta {final_delta} above the maximum total {max_total}")]
    FinalCltvTooLarge {
        /// Final delta asked for.
        final_delta: u32,
        /// Maximum total CLTV.
        max_total: u32,
    },
    /// `max_hops` is 0 or above the onion's 20.
    #[error("max_hops {0} not in 1..=20")]
    InvalidMaxHops(usize),
    /// No path satisfies every constraint.
    #[error("no route to {} for {amount_msat} msat", hex32(payee))]
    NoRoute {
        /// The payee's node id.
        payee: [u8; 32],
        /// Amount the payee should receive.
        amount_msat: u64,
    },
    /// A route with no hops cannot be turned into onion payloads.
    #[error("route has no hops")]
    EmptyRoute,
    /// The payee (final hop) failed the payment; another route cannot help.
    #[error("payee rejected the payment with {0:?}")]
    PayeeRejected(FailureCode),
    /// The payment used up its attempts.
    #[error("gave up after {0} attempts")]
    AttemptsExhausted(u32),
    /// A CLTV expiry overflows a block height.
    #[error("CLTV expiry overflows")]
    CltvOverflow,
}

/// Why a forwarding node refuses an HTLC (the onion failure it would return).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ForwardError {
    /// The outgoing direction is disabled.
    #[error("channel disabled")]
    Disabled,
    /// `amt_to_forward` is below the channel's `htlc_minimum_msat`.
    #[error("amount {amount} below minimum {minimum}")]
    AmountBelowMinimum {
        /// `amt_to_forward`.
        amount: u64,
        /// `htlc_minimum_msat`.
        minimum: u64,
    },
    /// `amt_to_forward` is above the channel's `htlc_maximum_msat`.
    #[error("amount {amount} above maximum {maximum}")]
    AmountAboveMaximum {
        /// `amt_to_forward`.
        amount: u64,
        /// `htlc_maximum_msat`.
        maximum: u64,
    },
    /// The incoming amount does not cover `amt_to_forward` plus the fee.
    #[error("fee insufficient: incoming {incoming}, need {required}")]
    FeeInsufficient {
        /// Incoming HTLC amount.
        incoming: u64,
        /// `amt_to_forward + fee`.
        required: u64,
    },
    /// The incoming expiry is below `outgoing_cltv_value + cltv_expiry_delta`.
    #[error("incorrect CLTV expiry: incoming {incoming}, need {required}")]
    IncorrectCltvExpiry {
        /// Incoming HTLC expiry.
        incoming: u32,
        /// `outgoing_cltv_value + cltv_expiry_delta`.
        required: u64,
    },
}

impl ForwardError {
    /// The BOLT 4 failure code a forwarding node returns for this refusal.
    pub fn failure_code(&self) -> FailureCode {
        match self {
            Self::Disabled => FailureCode::CHANNEL_DISABLED,
            Self::AmountBelowMinimum { .. } => FailureCode::AMOUNT_BELOW_MINIMUM,
            Self::AmountAboveMaximum { .. } => FailureCode::TEMPORARY_CHANNEL_FAILURE,
            Self::FeeInsufficient { .. } => FailureCode::FEE_INSUFFICIENT,
            Self::IncorrectCltvExpiry { .. } => FailureCode::INCORRECT_CLTV_EXPIRY,
        }
    }
}
