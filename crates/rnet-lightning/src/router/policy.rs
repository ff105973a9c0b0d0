//! One direction's forwarding policy and the fee and CLTV formulas both the sender and the
//! forwarding node use.

use super::error::ForwardError;
use crate::gossip::UnsignedChannelUpdate;

/// Largest amount anything in the router handles: 21 million RNT in msat
/// (21·10^6 · 10^8 · 10^3 = 2.1·10^18, below `u64::MAX`).
pub const MAX_MSAT: u64 = 2_100_000_000_000_000_000;

/// Which way over a channel: from `node_id_1` to `node_id_2` (the update's direction bit 0)
/// or back (bit 1). `node_id_1` is the bytewise smaller id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Forwarded by `node_id_1` towards `node_id_2`.
    OneToTwo,
    /// Forwarded by `node_id_2` towards `node_id_1`.
    TwoToOne,
}

impl Direction {
    /// From a `channel_update` direction bit.
    pub fn from_bit(bit: u8) -> Self {
        if bit & 1 == 0 { Self::OneToTwo } else { Self::TwoToOne }
    }

    /// The direction bit.
    pub fn bit(self) -> u8 {
        match self {
            Self::OneToTwo => 0,
            Self::TwoToOne => 1,
        }
    }

    /// Index 0 or 1, for per-direction arrays.
    pub fn index(self) -> usize {
        usize::from(self.bit())
    }
}

/// `fee_base_msat + ⌊amount_msat · fee_proportional_millionths / 1 000 000⌋`, computed in 128
/// bits; `None` if the result exceeds [`MAX_MSAT`].
pub fn fee_msat(
    fee_base_msat: u32,
    fee_proportional_millionths: u32,
    amount_msat: u64,
) -> Option<u64> {
    let prop = u128::from(amount_msat) * u128::from(fee_proportional_millionths) / 1_000_000;
    let fee = u128::from(fee_base_msat) + prop;
    u64::try_from(fee).ok().filter(|f| *f <= MAX_MSAT)
}

/// What a node charges and requires to forward over one channel direction (the fields of its
/// latest `channel_update`, or of a route hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelPolicy {
    /// Blocks between the incoming and the outgoing HTLC expiry.
    pub cltv_expiry_delta: u16,
    /// Smallest HTLC forwarded, msat.
    pub htlc_minimum_msat: u64,
    /// Largest HTLC forwarded, msat.
    pub htlc_maximum_msat: u64,
    /// Fixed fee, msat.
    pub fee_base_msat: u32,
    /// Proportional fee, millionths.
    pub fee_proportional_millionths: u32,
}

impl ChannelPolicy {
    /// The policy stated by a channel update.
    pub fn from_update(update: &UnsignedChannelUpdate) -> Self {
        Self {
            cltv_expiry_delta: update.cltv_expiry_delta,
            htlc_minimum_msat: update.htlc_minimum_msat,
            htlc_maximum_msat: update.htlc_maximum_msat,
            fee_base_msat: update.fee_base_msat,
            fee_proportional_millionths: update.fee_proportional_millionths,
        }
    }

    /// The fee for forwarding `amount_msat` ([`fee_msat`]).
    pub fn fee_msat(&self, amount_msat: u64) -> Option<u64> {
        fee_msat(self.fee_base_msat, self.fee_proportional_millionths, amount_msat)
    }

    /// Whether an HTLC of `amount_msat` may be sent over this direction.
    pub fn allows_amount(&self, amount_msat: u64) -> bool {
        (self.htlc_minimum_msat..=self.htlc_maximum_msat).contains(&amount_msat)
    }

    /// The forwarding node's check, for an incoming HTLC of `incoming_amount_msat` expiring at
    /// `incoming_cltv_expiry` whose onion asks to forward `amt_to_forward` with expiry
    /// `outgoing_cltv_value` over this direction: `htlc_minimum ≤ amt_to_forward ≤
    /// htlc_maximum`, `incoming_amount ≥ amt_to_forward + fee(amt_to_forward)` and
    /// `incoming_cltv_expiry ≥ outgoing_cltv_value + cltv_expiry_delta`.
    pub fn check_forward(
        &self,
        incoming_amount_msat: u64,
        incoming_cltv_expiry: u32,
        amt_to_forward: u64,
        outgoing_cltv_value: u32,
    ) -> Result<(), ForwardError> {
        if amt_to_forward < self.htlc_minimum_msat {
            return Err(ForwardError::AmountBelowMinimum {
                amount: amt_to_forward,
                minimum: self.htlc_minimum_msat,
            });
        }
        if amt_to_forward > self.htlc_maximum_msat {
            return Err(ForwardError::AmountAboveMaximum {
                amount: amt_to_forward,
                maximum: self.htlc_maximum_msat,
            });
        }
        let fee = u128::from(self.fee_base_msat)
            + u128::from(amt_to_forward) * u128::from(self.fee_proportional_millionths) / 1_000_000;
        let required = u128::from(amt_to_forward) + fee;
        if u128::from(incoming_amount_msat) < required {
            return Err(ForwardError::FeeInsufficient {
                incoming: incoming_amount_msat,
                required: u64::try_from(required).unwrap_or(u64::MAX),
            });
        }
        let required = u64::from(outgoing_cltv_value) + u64::from(self.cltv_expiry_delta);
        if u64::from(incoming_cltv_expiry) < required {
            return Err(ForwardError::IncorrectCltvExpiry {
                incoming: incoming_cltv_expiry,
                required,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ChannelPolicy {
        ChannelPolicy {
            cltv_expiry_delta: 40,
            htlc_minimum_msat: 1_000,
            htlc_maximum_msat: 10_000_000,
            fee_base_msat: 1_000,
            fee_proportional_millionths: 100,
        }
    }

    #[test]
    fn fee_is_base_plus_floored_proportional() {
        // 1000 + ⌊1_234_567 · 100 / 10^6⌋ = 1000 + 123 = 1123.
        assert_eq!(policy().fee_msat(1_234_567), Some(1_123));
        assert_eq!(fee_msat(0, 1, 999_999), Some(0));
        assert_eq!(fee_msat(0, 1, 1_000_000), Some(1));
        assert_eq!(fee_msat(u32::MAX, u32::MAX, MAX_MSAT), None);
    }

    #[test]
    fn forward_check_is_exact_at_the_boundaries() {
        let p = policy();
        let amt = 1_234_567;
        assert_eq!(p.check_forward(amt + 1_123, 840, amt, 800), Ok(()));
        assert!(matches!(
            p.check_forward(amt + 1_122, 840, amt, 800),
            Err(ForwardError::FeeInsufficient { required: 1_235_690, .. })
        ));
        assert!(matches!(
            p.check_forward(amt + 1_123, 839, amt, 800),
            Err(ForwardError::IncorrectCltvExpiry { required: 840, .. })
        ));
        assert!(matches!(
            p.check_forward(5_000, 840, 999, 800),
            Err(ForwardError::AmountBelowMinimum { .. })
        ));
        assert!(matches!(
            p.check_forward(u64::MAX, 840, 10_000_001, 800),
            Err(ForwardError::AmountAboveMaximum { .. })
        ));
        assert_eq!(
            ForwardError::FeeInsufficient { incoming: 0, required: 1 }.failure_code(),
            crate::onion::FailureCode::FEE_INSUFFICIENT
        );
    }
}
