//! What each party could claim on chain if a commitment transaction confirmed now: the
//! figures `listpeerchannels` reports as `onchain`, and the ones the functional tests check
//! add up to the channel's value.

use rnet_primitives::Amount;

use super::commitment::{CommitmentOutputKind, CommitmentTransaction, HtlcDirection};

/// A commitment transaction's outputs by owner, seen from its holder. Always
/// `to_holder + to_counterparty + offered_htlcs + received_htlcs + fee = funding amount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitmentClaims {
    /// The holder's balance (`to_local`), claimable after `to_self_delay` blocks.
    pub to_holder: Amount,
    /// The counterparty's balance (`to_remote`), claimable at once.
    pub to_counterparty: Amount,
    /// HTLCs the holder offered: back to the holder after their expiry, or to the counterparty
    /// with the preimage.
    pub offered_htlcs: Amount,
    /// HTLCs the holder received: to the holder with the preimage, or back to the counterparty
    /// after their expiry.
    pub received_htlcs: Amount,
    /// The commitment's fee (base fee, trimmed HTLCs, dust balances and rounding).
    pub fee: Amount,
    /// The delay on the holder's outputs.
    pub to_self_delay: u16,
}

impl CommitmentTransaction {
    /// The commitment's outputs by owner.
    pub fn claims(&self) -> CommitmentClaims {
        let mut claims = CommitmentClaims {
            fee: self.fee.total,
            to_self_delay: self.to_self_delay,
            ..CommitmentClaims::default()
        };
        for output in &self.outputs {
            let value = self.tx.outputs.get(output.index as usize).map_or(Amount(0), |o| o.value);
            let slot = match &output.kind {
                CommitmentOutputKind::ToLocal(_) => &mut claims.to_holder,
                CommitmentOutputKind::ToRemote(_) => &mut claims.to_counterparty,
                CommitmentOutputKind::Htlc { htlc, .. } => match htlc.direction {
                    HtlcDirection::Offered => &mut claims.offered_htlcs,
                    HtlcDirection::Received => &mut claims.received_htlcs,
                },
            };
            slot.0 = slot.0.saturating_add(value.0);
        }
        claims
    }
}
