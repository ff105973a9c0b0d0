//! Disconnection and `channel_reestablish` (BOLT 2 "Message Retransmission").

use super::channel::{Channel, LastSent, Negotiation, Phase};
use super::error::StateError;
use super::updates::Update;
use crate::wire::{ChannelReestablish, Message, Shutdown};

use super::channel::Outcome;

impl Channel {
    /// The connection to the counterparty dropped (or the node restarted and loaded the
    /// channel). Forgets every update either side sent that no `commitment_signed` covers, as
    /// BOLT 2 requires, and returns ours so the caller can send them again (or fail the HTLCs
    /// upstream). Until [`Channel::handle_message`] gets the counterparty's
    /// `channel_reestablish`, every other message is refused. A channel that was never funded
    /// should be forgotten instead.
    pub fn peer_disconnected(&mut self) -> Vec<Update> {
        self.connected = false;
        if self.local_commit.is_none() {
            return Vec::new();
        }
        let dropped = std::mem::take(&mut self.local_changes.proposed);
        let adds = dropped.iter().filter(|u| matches!(u, Update::Add(_))).count() as u64;
        self.next_local_htlc_id -= adds;
        for u in std::mem::take(&mut self.remote_changes.proposed) {
            if let Update::Add(a) = u {
                self.incoming_onions.remove(&a.id);
                self.next_remote_htlc_id -= 1;
            }
        }
        self.negotiation = Negotiation::default();
        dropped
    }

    /// Our `channel_reestablish`, to send first after reconnecting (only after
    /// [`Channel::peer_disconnected`], once the channel is funded).
    pub fn channel_reestablish(&self) -> Result<ChannelReestablish, StateError> {
        if self.connected {
            return Err(StateError::NotDisconnected);
        }
        let (Some(local), Some(remote)) = (&self.local_commit, &self.remote_commit) else {
            return Err(StateError::WrongPhase { what: "channel_reestablish", phase: self.phase });
        };
        let n = local.spec.commitment_number;
        let r = remote.spec.commitment_number;
        let your_last_per_commitment_secret =
            if r > 0 { self.secrets.get_commitment(r - 1)? } else { [0; 32] };
        Ok(ChannelReestablish {
            channel_id: self.channel_id,
            next_commitment_number: n + 1,
            next_revocation_number: r,
            your_last_per_commitment_secret,
            my_current_per_commitment_point: self.keys.per_commitment_point(n)?,
        })
    }

    /// The counterparty's `channel_reestablish`: checks it against our state and returns what
    /// must be retransmitted, in the original order.
    pub(crate) fn handle_channel_reestablish(
        &mut self,
        m: &ChannelReestablish,
    ) -> Result<Outcome, StateError> {
        if self.connected {
            return Err(StateError::NotDisconnected);
        }
        if m.channel_id != self.channel_id {
            return Err(StateError::WrongChannelId {
                expected: self.channel_id,
                got: m.channel_id,
            });
        }
        self.require_phase(
            "channel_reestablish",
            &[Phase::AwaitingChannelReady, Phase::Normal, Phase::Negotiating],
        )?;
        let (Some(local), Some(remote)) = (&self.local_commit, &self.remote_commit) else {
            return Err(StateError::WrongPhase { what: "channel_reestablish", phase: self.phase });
        };
        let n = local.spec.commitment_number;
        let r = remote.spec.commitment_number;
        let mismatch = StateError::ReestablishMismatch;

        // Our revocations, as the counterparty saw them.
        let nr = m.next_revocation_number;
        if nr > n {
            // It claims we revoked a commitment we do not know: if it proves it with our own
            // secret, we lost data and must not broadcast.
            let ours = self.keys.per_commitment_secret(nr - 1)?;
            return Err(if *ours == m.your_last_per_commitment_secret {
                StateError::OutdatedState
            } else {
                mismatch("next_revocation_number ahead of ours")
            });
        }
        let expected_secret =
            if nr > 0 { *self.keys.per_commitment_secret(nr - 1)? } else { [0; 32] };
        if m.your_last_per_commitment_secret != expected_secret {
            return Err(mismatch("your_last_per_commitment_secret"));
        }
        let resend_revoke = match n - nr {
            0 => false,
            1 => true,
            _ => return Err(mismatch("next_revocation_number too far behind")),
        };

        // Our commitment_signed, as the counterparty saw it.
        let nc = m.next_commitment_number;
        let (resend_commit, their_point) = match &self.remote_next {
            Some(_) if nc == r + 1 => (true, remote.point),
            Some(next) if nc == r + 2 => (false, next.commit.point),
            None if nc == r + 1 => (false, remote.point),
            _ => return Err(mismatch("next_commitment_number")),
        };
        if m.my_current_per_commitment_point != their_point {
            return Err(mismatch("my_current_per_commitment_point"));
        }

        let mut out = Outcome::default();
        if self.ready_sent && n == 0 && nc == 1 {
            out.messages.push(Message::ChannelReady(self.channel_ready_msg()?));
        }
        let revoke =
            if resend_revoke { Some(Message::RevokeAndAck(self.revoke_msg(n - 1)?)) } else { None };
        let mut commit = Vec::new();
        if resend_commit && let Some(next) = &self.remote_next {
            commit.extend(self.local_changes.signed.iter().map(|u| u.to_message(self.channel_id)));
            commit.push(Message::CommitmentSigned(next.sent.clone()));
        }
        // Whichever of the two we sent last goes last again.
        if self.last_sent == LastSent::Commitment {
            out.messages.extend(revoke);
            out.messages.extend(commit);
        } else {
            out.messages.extend(commit);
            out.messages.extend(revoke);
        }
        if let Some(script) = &self.local_shutdown {
            out.messages.push(Message::Shutdown(Shutdown {
                channel_id: self.channel_id,
                script_pubkey: script.clone(),
            }));
        }
        self.connected = true;
        if self.phase == Phase::Negotiating && self.is_funder {
            // Negotiation restarts after a reconnection.
            let fee = self.ideal_closing_fee()?;
            out.messages.push(self.propose_closing(fee)?);
        }
        Ok(out)
    }
}
