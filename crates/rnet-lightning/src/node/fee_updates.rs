//! Commitment fee updates (BOLT 2 `update_fee`, `docs/lightning.md` §4.3): the funder of a
//! channel keeps its commitment transactions confirmable as the chain's fee rate moves.

use super::{Action, ChanStatus, LightningNode, NodeError};
use crate::channel::FeeRate;
use crate::state::Phase;
use crate::wire::Message;

/// A channel's commitment fee rate is updated when it differs from the chain's by more than
/// this fraction (1/4): small moves are not worth a commitment round.
pub const FEE_UPDATE_THRESHOLD_DIVISOR: u64 = 4;

impl LightningNode {
    /// The chain's fee rate is now `feerate` (clamped to the channel configuration's bounds):
    /// channels opened from now on, sweeps and penalties use it, and every usable channel we
    /// funded whose commitment rate differs from it by more than a quarter gets an
    /// `update_fee` and a new commitment.
    pub fn update_feerate(&mut self, feerate: FeeRate) -> Result<Vec<Action>, NodeError> {
        let bounds = &self.config.channel;
        let feerate = FeeRate(feerate.0.clamp(bounds.min_feerate.0, bounds.max_feerate.0));
        self.config.feerate = feerate;
        let lids: Vec<u64> = self
            .channels
            .iter()
            .filter(|(_, e)| {
                e.status == ChanStatus::Open
                    && e.channel.is_funder()
                    && e.channel.phase() == Phase::Normal
                    && e.channel.connected
            })
            .filter(|(_, e)| {
                e.channel.local_commitment_spec().is_some_and(|spec| {
                    spec.feerate.0.abs_diff(feerate.0)
                        > spec.feerate.0 / FEE_UPDATE_THRESHOLD_DIVISOR
                })
            })
            .map(|(lid, _)| *lid)
            .collect();
        for lid in lids {
            let Some(e) = self.channels.get_mut(&lid) else { continue };
            // Refused when our balance cannot pay the new fee above the reserve: the channel
            // keeps its rate (BOLT 2 lets the funder choose).
            if let Ok(m) = e.channel.send_update_fee(feerate) {
                let peer = e.peer;
                self.send(peer, Message::UpdateFee(m));
                self.after_change(lid);
            }
        }
        self.finish()
    }
}
