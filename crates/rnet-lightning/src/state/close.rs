//! `shutdown` and the `closing_signed` fee negotiation (BOLT 2 "Channel Close", without
//! `fee_range`: each side moves toward the other's last proposal until they agree).

use rnet_primitives::Amount;

use super::channel::{Channel, Event, Negotiation, Outcome, Phase};
use super::error::StateError;
use crate::channel::sweep::check_destination;
use crate::channel::{ClosingTransaction, FeeRate, MSAT_PER_RESONANCE, build_closing, closing_fee};
use crate::wire::{ClosingSigned, Message, Shutdown};

impl Channel {
    /// The fee rate we aim for in closing negotiation (default: the commitment's).
    pub fn set_closing_feerate(&mut self, feerate: FeeRate) {
        self.closing_feerate = Some(feerate);
    }

    /// Starts a cooperative close: returns `shutdown` (and, if the channel is already clean
    /// and we are the funder, the first `closing_signed`). No HTLC may be added afterwards;
    /// pending ones are settled as usual. Refused while our own updates are uncommitted.
    pub fn send_shutdown(&mut self) -> Result<Vec<Message>, StateError> {
        self.require_phase("shutdown", &[Phase::Normal])?;
        if !self.connected {
            return Err(StateError::NotReestablished);
        }
        if self.local_shutdown.is_some() {
            return Err(StateError::WrongPhase { what: "a second shutdown", phase: self.phase });
        }
        if !self.local_changes.proposed.is_empty() {
            return Err(StateError::PendingUpdates);
        }
        let mut next = self.clone();
        let mut out = Outcome::default();
        next.local_shutdown = Some(next.config.shutdown_script.clone());
        out.messages.push(Message::Shutdown(Shutdown {
            channel_id: next.channel_id,
            script_pubkey: next.config.shutdown_script.clone(),
        }));
        next.after_commitment_change(&mut out)?;
        *self = next;
        Ok(out.messages)
    }

    pub(crate) fn handle_shutdown(&mut self, m: &Shutdown) -> Result<Outcome, StateError> {
        self.require_phase("shutdown", &[Phase::Normal, Phase::Negotiating])?;
        if m.channel_id != self.channel_id {
            return Err(StateError::WrongChannelId {
                expected: self.channel_id,
                got: m.channel_id,
            });
        }
        if let Some(script) = &self.remote_shutdown {
            // A retransmission after reconnecting must repeat the script.
            if *script == m.script_pubkey {
                return Ok(Outcome::default());
            }
            return Err(StateError::InvalidShutdownScript);
        }
        check_destination(&m.script_pubkey).map_err(|_| StateError::InvalidShutdownScript)?;
        let upfront = &self.counterparty_ref("shutdown")?.upfront_shutdown_script;
        if upfront.as_ref().is_some_and(|s| *s != m.script_pubkey) {
            return Err(StateError::InvalidShutdownScript);
        }
        self.remote_shutdown = Some(m.script_pubkey.clone());
        let mut out = Outcome { messages: vec![], events: vec![Event::ShutdownReceived] };
        if self.local_shutdown.is_none() && self.local_changes.proposed.is_empty() {
            self.local_shutdown = Some(self.config.shutdown_script.clone());
            out.messages.push(Message::Shutdown(Shutdown {
                channel_id: self.channel_id,
                script_pubkey: self.config.shutdown_script.clone(),
            }));
        }
        self.after_commitment_change(&mut out)?;
        Ok(out)
    }

    /// Both shutdowns exchanged, no HTLC on either commitment and nothing pending.
    fn ready_to_negotiate(&self) -> bool {
        let lc = &self.local_changes;
        let rc = &self.remote_changes;
        self.phase == Phase::Normal
            && self.local_shutdown.is_some()
            && self.remote_shutdown.is_some()
            && self.remote_next.is_none()
            && [&lc.proposed, &lc.signed, &lc.acked, &rc.proposed, &rc.acked, &rc.signed]
                .iter()
                .all(|l| l.is_empty())
            && self.local_commit.as_ref().is_some_and(|c| c.spec.htlcs.is_empty())
            && self.remote_commit.as_ref().is_some_and(|c| c.spec.htlcs.is_empty())
    }

    /// Called after every change of the commitments or shutdown state: enters negotiation
    /// when the channel is clean, and the funder makes the first proposal.
    pub(crate) fn after_commitment_change(&mut self, out: &mut Outcome) -> Result<(), StateError> {
        if !self.ready_to_negotiate() {
            return Ok(());
        }
        self.phase = Phase::Negotiating;
        self.negotiation = Negotiation::default();
        if self.is_funder {
            let fee = self.ideal_closing_fee()?;
            out.messages.push(self.propose_closing(fee)?);
        }
        Ok(())
    }

    fn scripts(&self) -> Result<(&[u8], &[u8]), StateError> {
        match (&self.local_shutdown, &self.remote_shutdown) {
            (Some(ours), Some(theirs)) => Ok((ours, theirs)),
            _ => Err(StateError::WrongPhase { what: "closing_signed", phase: self.phase }),
        }
    }

    fn build_close(&self, fee: Amount) -> Result<ClosingTransaction, StateError> {
        let params = self.params_ref("closing_signed")?;
        let local = self
            .local_commit
            .as_ref()
            .ok_or(StateError::WrongPhase { what: "closing_signed", phase: self.phase })?;
        let (ours, theirs) = self.scripts()?;
        Ok(build_closing(
            params,
            local.spec.to_local_msat,
            local.spec.to_remote_msat,
            ours,
            theirs,
            fee,
        )?)
    }

    /// The largest acceptable closing fee: the final commitment's base fee, and no more than
    /// the funder holds.
    fn max_closing_fee(&self) -> Result<Amount, StateError> {
        let local = self
            .local_commit
            .as_ref()
            .ok_or(StateError::WrongPhase { what: "closing_signed", phase: self.phase })?;
        let funder_msat =
            if self.is_funder { local.spec.to_local_msat } else { local.spec.to_remote_msat };
        Ok(self.max_commitment_fee()?.min(Amount(funder_msat / MSAT_PER_RESONANCE)))
    }

    /// Our preferred closing fee: a two-output close at our closing fee rate, capped.
    pub(crate) fn ideal_closing_fee(&self) -> Result<Amount, StateError> {
        let local = self
            .local_commit
            .as_ref()
            .ok_or(StateError::WrongPhase { what: "closing_signed", phase: self.phase })?;
        let rate = self.closing_feerate.unwrap_or(local.spec.feerate);
        let (ours, theirs) = self.scripts()?;
        Ok(closing_fee(rate, ours, theirs).min(self.max_closing_fee()?))
    }

    /// Signs the close with `fee` and records it as our last proposal.
    pub(crate) fn propose_closing(&mut self, fee: Amount) -> Result<Message, StateError> {
        let close = self.build_close(fee)?;
        let sig = close.sign(&self.keys.funding, &self.genesis)?;
        let signature = sig.try_into().map_err(|_| StateError::InvalidClosingSignature)?;
        self.negotiation.our_fee = Some(fee);
        Ok(Message::ClosingSigned(ClosingSigned { channel_id: self.channel_id, fee, signature }))
    }

    fn finish_close(
        &mut self,
        close: &ClosingTransaction,
        their_sig: &[u8; 64],
        out: &mut Outcome,
    ) -> Result<(), StateError> {
        let ours = close.sign(&self.keys.funding, &self.genesis)?;
        let their_key = self.counterparty_ref("closing_signed")?.keys.funding;
        let tx = close
            .finalize((&self.keys.funding.public_key(), ours), (&their_key, their_sig.to_vec()))?;
        self.closing_tx = Some(tx.clone());
        self.phase = Phase::Closed;
        out.events.push(Event::ChannelClosed(tx));
        Ok(())
    }

    pub(crate) fn handle_closing_signed(
        &mut self,
        m: &ClosingSigned,
    ) -> Result<Outcome, StateError> {
        if m.channel_id != self.channel_id {
            return Err(StateError::WrongChannelId {
                expected: self.channel_id,
                got: m.channel_id,
            });
        }
        let mut out = Outcome::default();
        if self.phase == Phase::Normal {
            // The fundee enters negotiation when the funder's first proposal arrives.
            self.after_commitment_change(&mut out)?;
        }
        self.require_phase("closing_signed", &[Phase::Negotiating])?;
        let max = self.max_closing_fee()?;
        if m.fee > max {
            return Err(StateError::ClosingFeeTooHigh { fee: m.fee, max });
        }
        let Negotiation { our_fee, their_fee } = self.negotiation.clone();
        if let (Some(ours), Some(theirs)) = (our_fee, their_fee) {
            let (lo, hi) = (ours.min(theirs), ours.max(theirs));
            if m.fee != ours && !(lo < m.fee && m.fee < hi) {
                return Err(StateError::ClosingFeeNotConverging(m.fee));
            }
        }
        let close = self.build_close(m.fee)?;
        let their_key = self.counterparty_ref("closing_signed")?.keys.funding;
        close
            .verify_signature(&their_key, &m.signature, &self.genesis)
            .map_err(|_| StateError::InvalidClosingSignature)?;
        if our_fee == Some(m.fee) {
            self.finish_close(&close, &m.signature, &mut out)?;
            return Ok(out);
        }
        let next_fee = match our_fee {
            None => self.ideal_closing_fee()?,
            Some(ours) if ours.0.abs_diff(m.fee.0) <= 1 => m.fee,
            Some(ours) => Amount((ours.0 + m.fee.0) / 2),
        };
        self.negotiation.their_fee = Some(m.fee);
        out.messages.push(self.propose_closing(next_fee)?);
        if next_fee == m.fee {
            self.finish_close(&close, &m.signature, &mut out)?;
        }
        Ok(out)
    }
}
