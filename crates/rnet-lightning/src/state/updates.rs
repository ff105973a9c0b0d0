//! Channel updates (`update_*` messages) and how a list of them changes a commitment state.

use std::fmt;

use crate::channel::{CommitmentSpec, FeeRate, HtlcDirection, HtlcSpec};
use crate::onion::PACKET_LEN;
use crate::wire::{
    ChannelId, Message, UpdateAddHtlc, UpdateFailHtlc, UpdateFailMalformedHtlc, UpdateFee,
    UpdateFulfillHtlc,
};

use super::error::StateError;

/// An HTLC as offered in `update_add_htlc`.
#[derive(Clone, PartialEq, Eq)]
pub struct AddedHtlc {
    /// The offerer's id for it.
    pub id: u64,
    /// Its value, msat.
    pub amount_msat: u64,
    /// Keccak-256d of the preimage.
    pub payment_hash: [u8; 32],
    /// Its expiry height.
    pub cltv_expiry: u32,
    /// The onion for the receiver.
    pub onion: Box<[u8; PACKET_LEN]>,
}

impl fmt::Debug for AddedHtlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddedHtlc")
            .field("id", &self.id)
            .field("amount_msat", &self.amount_msat)
            .field("cltv_expiry", &self.cltv_expiry)
            .finish_non_exhaustive()
    }
}

/// One update of the channel state, sent by either party. Settles (`Fulfill`, `Fail`,
/// `FailMalformed`) name an HTLC the **other** party offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// `update_add_htlc`.
    Add(AddedHtlc),
    /// `update_fulfill_htlc`.
    Fulfill {
        /// The HTLC.
        id: u64,
        /// Its preimage.
        preimage: [u8; 32],
    },
    /// `update_fail_htlc`.
    Fail {
        /// The HTLC.
        id: u64,
        /// The error onion.
        reason: Vec<u8>,
    },
    /// `update_fail_malformed_htlc`.
    FailMalformed {
        /// The HTLC.
        id: u64,
        /// SHA-256 of the unparsable onion.
        sha256_of_onion: [u8; 32],
        /// A `BADONION` failure code.
        failure_code: u16,
    },
    /// `update_fee` (funder only).
    Fee(FeeRate),
}

impl Update {
    /// The HTLC a settle removes.
    pub fn settled_id(&self) -> Option<u64> {
        match self {
            Self::Fulfill { id, .. } | Self::Fail { id, .. } | Self::FailMalformed { id, .. } => {
                Some(*id)
            }
            Self::Add(_) | Self::Fee(_) => None,
        }
    }

    /// The message that carries it. A fee rate above `u32` never enters a channel (checked
    /// when proposed), so it saturates here only in theory.
    pub fn to_message(&self, channel_id: ChannelId) -> Message {
        match self {
            Self::Add(a) => Message::UpdateAddHtlc(UpdateAddHtlc {
                channel_id,
                id: a.id,
                amount_msat: a.amount_msat,
                payment_hash: a.payment_hash,
                cltv_expiry: a.cltv_expiry,
                onion_routing_packet: a.onion.clone(),
            }),
            Self::Fulfill { id, preimage } => Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
                channel_id,
                id: *id,
                payment_preimage: *preimage,
            }),
            Self::Fail { id, reason } => Message::UpdateFailHtlc(UpdateFailHtlc {
                channel_id,
                id: *id,
                reason: reason.clone(),
            }),
            Self::FailMalformed { id, sha256_of_onion, failure_code } => {
                Message::UpdateFailMalformedHtlc(UpdateFailMalformedHtlc {
                    channel_id,
                    id: *id,
                    sha256_of_onion: *sha256_of_onion,
                    failure_code: *failure_code,
                })
            }
            Self::Fee(rate) => Message::UpdateFee(UpdateFee {
                channel_id,
                feerate_per_kb: u32::try_from(rate.0).unwrap_or(u32::MAX),
            }),
        }
    }
}

/// Applies our updates `ours` and the counterparty's `theirs` to `base` (a local-view state)
/// and numbers the result `commitment_number`: adds first (ours become `Offered` and leave our
/// balance, theirs `Received`), then settles (a fulfill pays the HTLC to its receiver, a fail
/// returns it to its offerer), then the last fee update. Fails if a balance cannot pay an add
/// or a settle names an HTLC that is not there.
pub fn reduce(
    base: &CommitmentSpec,
    ours: &[Update],
    theirs: &[Update],
    commitment_number: u64,
) -> Result<CommitmentSpec, StateError> {
    let mut spec = base.clone();
    spec.commitment_number = commitment_number;
    for (updates, direction) in [(ours, HtlcDirection::Offered), (theirs, HtlcDirection::Received)]
    {
        for u in updates {
            if let Update::Add(a) = u {
                let balance = match direction {
                    HtlcDirection::Offered => &mut spec.to_local_msat,
                    HtlcDirection::Received => &mut spec.to_remote_msat,
                };
                *balance =
                    balance.checked_sub(a.amount_msat).ok_or(StateError::InsufficientBalance)?;
                spec.htlcs.push(HtlcSpec {
                    id: a.id,
                    direction,
                    amount_msat: a.amount_msat,
                    payment_hash: a.payment_hash,
                    cltv_expiry: a.cltv_expiry,
                });
            }
        }
    }
    // A settle by us removes an HTLC we received, and vice versa.
    for (updates, settled) in [(ours, HtlcDirection::Received), (theirs, HtlcDirection::Offered)] {
        for u in updates {
            let Some(id) = u.settled_id() else { continue };
            let pos = spec
                .htlcs
                .iter()
                .position(|h| h.id == id && h.direction == settled)
                .ok_or(StateError::UnknownHtlc { id })?;
            let htlc = spec.htlcs.remove(pos);
            let fulfilled = matches!(u, Update::Fulfill { .. });
            // Fulfilled: to the receiver; failed: back to the offerer.
            let to_local = (settled == HtlcDirection::Received) == fulfilled;
            let balance = if to_local { &mut spec.to_local_msat } else { &mut spec.to_remote_msat };
            *balance =
                balance.checked_add(htlc.amount_msat).ok_or(StateError::InsufficientBalance)?;
        }
    }
    if let Some(rate) = ours.iter().chain(theirs).rev().find_map(|u| match u {
        Update::Fee(r) => Some(*r),
        _ => None,
    }) {
        spec.feerate = rate;
    }
    Ok(spec)
}
