//! HTLCs through the node: receiving (final hop checks), forwarding (policy checks, the
//! outgoing add, fulfilment and failure back), and our own payments (route, onion, retries).

use sha2::{Digest, Sha256};

use super::{
    Action, Attempt, LightningNode, NodeEvent, Origin, PaymentId, PaymentStatus, Resolution,
};
use crate::channel::HtlcSpec;
use crate::gossip::ShortChannelId;
use crate::invoice::Invoice;
use crate::onion::{
    DecodedFailure, FailureCode, FailureMessage, OnionError, OnionPacket, PACKET_LEN, Peeled,
    SessionKey, SharedSecret, construct_onion, create_error_packet, decode_error_packet,
    peel_onion, wrap_error_packet,
};
use crate::router::{Blame, ForwardError, PaymentAttempts, RouteParams};
use crate::state::{HtlcFailure, Phase};

/// The failure message of a refused forward.
fn forward_failure(e: &ForwardError, htlc: &HtlcSpec) -> FailureMessage {
    match e {
        ForwardError::Disabled => {
            FailureMessage::ChannelDisabled { disabled_flags: 0, channel_update: vec![] }
        }
        ForwardError::AmountBelowMinimum { .. } => FailureMessage::AmountBelowMinimum {
            htlc_msat: htlc.amount_msat,
            channel_update: vec![],
        },
        ForwardError::AmountAboveMaximum { .. } => {
            FailureMessage::TemporaryChannelFailure { channel_update: vec![] }
        }
        ForwardError::FeeInsufficient { .. } => {
            FailureMessage::FeeInsufficient { htlc_msat: htlc.amount_msat, channel_update: vec![] }
        }
        ForwardError::IncorrectCltvExpiry { .. } => FailureMessage::IncorrectCltvExpiry {
            cltv_expiry: htlc.cltv_expiry,
            channel_update: vec![],
        },
    }
}

/// The `invalid_onion_*` failure an upstream hop builds from a malformed report.
fn malformed_failure(sha256_of_onion: [u8; 32], code: u16) -> FailureMessage {
    match FailureCode(code) {
        FailureCode::INVALID_ONION_VERSION => {
            FailureMessage::InvalidOnionVersion { sha256_of_onion }
        }
        FailureCode::INVALID_ONION_KEY => FailureMessage::InvalidOnionKey { sha256_of_onion },
        _ => FailureMessage::InvalidOnionHmac { sha256_of_onion },
    }
}

impl LightningNode {
    /// An HTLC offered to us is irrevocably committed on channel `lid`: peel its onion and
    /// claim it (final hop), forward it, or fail it.
    pub(super) fn incoming_htlc(&mut self, lid: u64, htlc: HtlcSpec, onion: &[u8; PACKET_LEN]) {
        let id = htlc.id;
        let sha: [u8; 32] = Sha256::digest(&onion[..]).into();
        let malformed = |code: FailureCode| Resolution::Malformed {
            sha256_of_onion: sha,
            failure_code: code.0,
        };
        let packet = match OnionPacket::decode(&onion[..]) {
            Ok(p) => p,
            Err(OnionError::UnknownVersion(_)) => {
                return self.resolve_incoming(
                    lid,
                    id,
                    malformed(FailureCode::INVALID_ONION_VERSION),
                );
            }
            Err(_) => {
                return self.resolve_incoming(lid, id, malformed(FailureCode::INVALID_ONION_KEY));
            }
        };
        match peel_onion(&self.node_secret, &packet, &htlc.payment_hash) {
            Ok(Peeled::Forward { payload, next_packet, shared_secret }) => {
                self.forward_htlc(lid, htlc, &payload, &next_packet, shared_secret)
            }
            Ok(Peeled::Final { payload, shared_secret }) => {
                self.receive_htlc(lid, htlc, &payload, &shared_secret)
            }
            Err(OnionError::InvalidEphemeralKey(_)) => {
                self.resolve_incoming(lid, id, malformed(FailureCode::INVALID_ONION_KEY))
            }
            Err(OnionError::InvalidHmac) => {
                self.resolve_incoming(lid, id, malformed(FailureCode::INVALID_ONION_HMAC))
            }
            Err(e) => {
                // The HMAC verified but the payload is bad: an encrypted invalid_onion_payload.
                let location = match &e {
                    OnionError::InvalidPayload(p) => p.failure_location(),
                    _ => None,
                };
                match self.node_secret.shared_secret(&packet.ephemeral_key) {
                    Ok(ss) => {
                        let msg = FailureMessage::InvalidOnionPayload { location };
                        self.fail_incoming(lid, id, &ss, &msg)
                    }
                    Err(_) => {
                        self.resolve_incoming(lid, id, malformed(FailureCode::INVALID_ONION_KEY))
                    }
                }
            }
        }
    }

    fn fail_incoming(&mut self, lid: u64, id: u64, ss: &SharedSecret, msg: &FailureMessage) {
        let reason = match create_error_packet(ss, msg) {
            Ok(r) => r,
            Err(_) => return,
        };
        self.resolve_incoming(lid, id, Resolution::Fail(reason));
    }

    fn receive_htlc(
        &mut self,
        lid: u64,
        htlc: HtlcSpec,
        payload: &crate::onion::FinalPayload,
        ss: &SharedSecret,
    ) {
        if self.config.hold_incoming {
            // A payee that never settles: the HTLC stays pending until its payer times it out.
            return;
        }
        let height = self.meta.height;
        let unknown = FailureMessage::IncorrectOrUnknownPaymentDetails {
            htlc_msat: htlc.amount_msat,
            height,
        };
        if htlc.cltv_expiry < payload.outgoing_cltv_value {
            let msg = FailureMessage::FinalIncorrectCltvExpiry { cltv_expiry: htlc.cltv_expiry };
            return self.fail_incoming(lid, htlc.id, ss, &msg);
        }
        if htlc.amount_msat < payload.amt_to_forward {
            let msg =
                FailureMessage::FinalIncorrectHtlcAmount { incoming_htlc_amt: htlc.amount_msat };
            return self.fail_incoming(lid, htlc.id, ss, &msg);
        }
        let Some(record) = self.meta.invoices.get(&htlc.payment_hash) else {
            return self.fail_incoming(lid, htlc.id, ss, &unknown);
        };
        let Ok(invoice) = Invoice::parse(&record.invoice) else {
            return self.fail_incoming(lid, htlc.id, ss, &unknown);
        };
        let amount = invoice.amount_milli_resonance().unwrap_or(0);
        let min_cltv = u64::from(height) + u64::from(invoice.min_final_cltv_expiry_delta());
        let ok = payload.payment_secret == *invoice.payment_secret()
            && htlc.amount_msat >= amount
            && payload.total_msat >= amount
            && u64::from(htlc.cltv_expiry) >= min_cltv
            && !invoice.is_expired(self.meta.now);
        if !ok {
            return self.fail_incoming(lid, htlc.id, ss, &unknown);
        }
        let preimage = record.preimage;
        self.dirty.insert(super::Dirty::Invoice(htlc.payment_hash));
        if let Some(r) = self.meta.invoices.get_mut(&htlc.payment_hash) {
            r.paid_msat = Some(r.paid_msat.unwrap_or(0) + htlc.amount_msat);
        }
        self.resolve_incoming(lid, htlc.id, Resolution::Fulfill(preimage));
        self.event(NodeEvent::PaymentReceived {
            payment_hash: htlc.payment_hash,
            amount_msat: htlc.amount_msat,
        });
    }

    fn forward_htlc(
        &mut self,
        lid: u64,
        htlc: HtlcSpec,
        payload: &crate::onion::ForwardPayload,
        next_packet: &OnionPacket,
        ss: SharedSecret,
    ) {
        let Some(out) = self.channel_by_scid(payload.short_channel_id) else {
            return self.fail_incoming(lid, htlc.id, &ss, &FailureMessage::UnknownNextPeer);
        };
        let out_entry = &self.channels[&out];
        let capacity = out_entry.channel.funding_amount.0.saturating_mul(1000);
        let policy = self.forwarding_channel_policy(capacity);
        if let Err(e) = policy.check_forward(
            htlc.amount_msat,
            htlc.cltv_expiry,
            payload.amt_to_forward,
            payload.outgoing_cltv_value,
        ) {
            return self.fail_incoming(lid, htlc.id, &ss, &forward_failure(&e, &htlc));
        }
        let too_soon = u64::from(payload.outgoing_cltv_value)
            <= u64::from(self.meta.height) + u64::from(self.config.htlc_expiry_margin);
        if too_soon {
            let msg = FailureMessage::ExpiryTooSoon { channel_update: vec![] };
            return self.fail_incoming(lid, htlc.id, &ss, &msg);
        }
        let encoded = next_packet.encode();
        let Ok(onion) = <[u8; PACKET_LEN]>::try_from(encoded.as_slice()) else {
            let msg = FailureMessage::TemporaryNodeFailure;
            return self.fail_incoming(lid, htlc.id, &ss, &msg);
        };
        let out_entry = self.channels.get_mut(&out).expect("found");
        let peer = out_entry.peer;
        let added = if out_entry.channel.phase() == Phase::Normal {
            out_entry.channel.send_add_htlc(
                payload.amt_to_forward,
                htlc.payment_hash,
                payload.outgoing_cltv_value,
                Box::new(onion),
            )
        } else {
            Err(crate::state::StateError::NotReestablished)
        };
        match added {
            Ok(add) => {
                self.meta.forwards.insert(
                    (lid, htlc.id),
                    super::Forward {
                        shared_secret: *ss.as_bytes(),
                        incoming_msat: htlc.amount_msat,
                        outgoing_msat: payload.amt_to_forward,
                        incoming_cltv: htlc.cltv_expiry,
                        payment_hash: htlc.payment_hash,
                    },
                );
                self.meta.outgoing.insert((out, add.id), Origin::Forward(lid, htlc.id));
                self.send(peer, crate::wire::Message::UpdateAddHtlc(add));
                self.after_change(out);
            }
            Err(_) => {
                let msg = FailureMessage::TemporaryChannelFailure { channel_update: vec![] };
                self.fail_incoming(lid, htlc.id, &ss, &msg)
            }
        }
    }

    /// Records how the incoming HTLC `(lid, id)` is settled and sends it if the channel can.
    pub(super) fn resolve_incoming(&mut self, lid: u64, id: u64, r: Resolution) {
        if let Resolution::Fulfill(preimage) = &r
            && self.channels.get(&lid).is_some_and(|e| e.status == super::ChanStatus::Closed)
        {
            // The channel is already settling on chain: claim the HTLC there.
            self.claim_on_chain(lid, id, *preimage);
        }
        self.meta.resolutions.insert((lid, id), r.clone());
        self.apply_resolution(lid, id, &r);
        self.after_change(lid);
    }

    /// Sends a settle if the channel accepts it now (it refuses while disconnected or when the
    /// settle is already pending; reconnection sends it again).
    pub(super) fn apply_resolution(&mut self, lid: u64, id: u64, r: &Resolution) {
        let Some(e) = self.channels.get_mut(&lid) else { return };
        if e.status != super::ChanStatus::Open {
            return;
        }
        let peer = e.peer;
        let ch = &mut e.channel;
        let msg = match r {
            Resolution::Fulfill(p) => {
                ch.send_fulfill_htlc(id, *p).map(crate::wire::Message::UpdateFulfillHtlc)
            }
            Resolution::Fail(reason) => {
                ch.send_fail_htlc(id, reason.clone()).map(crate::wire::Message::UpdateFailHtlc)
            }
            Resolution::Malformed { sha256_of_onion, failure_code } => ch
                .send_fail_malformed_htlc(id, *sha256_of_onion, *failure_code)
                .map(crate::wire::Message::UpdateFailMalformedHtlc),
        };
        if let Ok(m) = msg {
            self.send(peer, m);
        }
    }

    /// The counterparty (or the chain) revealed the preimage of our HTLC `(lid, id)`.
    pub(super) fn outgoing_fulfilled(&mut self, lid: u64, id: u64, preimage: [u8; 32]) {
        let Some(origin) = self.meta.outgoing.remove(&(lid, id)) else { return };
        match origin {
            Origin::Payment(pid) => {
                self.dirty.insert(super::Dirty::Payment(pid));
                let Some(p) = self.meta.payments.get_mut(&pid) else { return };
                if p.status != PaymentStatus::Pending {
                    return;
                }
                let fee_msat = p
                    .attempt
                    .as_ref()
                    .map_or(0, |a| a.total_amount_msat.saturating_sub(p.amount_msat));
                if let Some(a) = &p.attempt {
                    self.scorer.record_success(&self.node_id, &a.route());
                }
                p.status = PaymentStatus::Succeeded { preimage, fee_msat };
                let payment_hash = p.payment_hash;
                self.event(NodeEvent::PaymentSent { id: pid, payment_hash, preimage, fee_msat });
            }
            Origin::Forward(ic, ih) => {
                let fee_msat = self
                    .meta
                    .forwards
                    .remove(&(ic, ih))
                    .map_or(0, |f| f.incoming_msat.saturating_sub(f.outgoing_msat));
                self.resolve_incoming(ic, ih, Resolution::Fulfill(preimage));
                let incoming = self.channels.get(&ic).map(|e| e.channel.channel_id());
                let outgoing = self.channels.get(&lid).map(|e| e.channel.channel_id());
                if let (Some(incoming), Some(outgoing)) = (incoming, outgoing) {
                    self.event(NodeEvent::HtlcForwarded { incoming, outgoing, fee_msat });
                }
            }
        }
    }

    /// Our HTLC `(lid, id)` failed: `failure` from the counterparty, or `None` for a local
    /// failure (never committed, or timed out on chain).
    pub(super) fn outgoing_failed(&mut self, lid: u64, id: u64, failure: Option<HtlcFailure>) {
        let Some(origin) = self.meta.outgoing.remove(&(lid, id)) else { return };
        match origin {
            Origin::Payment(pid) => self.payment_attempt_failed(pid, lid, failure),
            Origin::Forward(ic, ih) => {
                let Some(f) = self.meta.forwards.remove(&(ic, ih)) else { return };
                let ss = SharedSecret::from_bytes(f.shared_secret);
                let reason = match failure {
                    Some(HtlcFailure::Reason(packet)) => wrap_error_packet(&ss, &packet),
                    Some(HtlcFailure::Malformed { sha256_of_onion, failure_code }) => {
                        match create_error_packet(
                            &ss,
                            &malformed_failure(sha256_of_onion, failure_code),
                        ) {
                            Ok(p) => p,
                            Err(_) => return,
                        }
                    }
                    None => {
                        let msg =
                            FailureMessage::TemporaryChannelFailure { channel_update: vec![] };
                        match create_error_packet(&ss, &msg) {
                            Ok(p) => p,
                            Err(_) => return,
                        }
                    }
                };
                self.resolve_incoming(ic, ih, Resolution::Fail(reason));
            }
        }
    }

    fn payment_attempt_failed(&mut self, pid: PaymentId, lid: u64, failure: Option<HtlcFailure>) {
        self.dirty.insert(super::Dirty::Payment(pid));
        let Some(p) = self.meta.payments.get_mut(&pid) else { return };
        let Some(attempt) = p.attempt.take() else { return };
        if p.status != PaymentStatus::Pending {
            return;
        }
        let route = attempt.route();
        let decoded: Option<DecodedFailure> = match &failure {
            Some(HtlcFailure::Reason(packet)) => {
                let secrets: Vec<SharedSecret> =
                    attempt.shared_secrets.iter().map(|s| SharedSecret::from_bytes(*s)).collect();
                decode_error_packet(&secrets, packet).ok()
            }
            _ => None,
        };
        let blame = match (&failure, &decoded) {
            // Never committed: our own first channel could not carry it; try again later.
            (None, _) => {
                let known = self.channels.get(&lid).is_some_and(|e| {
                    e.status == super::ChanStatus::Open && e.channel.phase() == Phase::Normal
                });
                if known {
                    p.retry = true;
                    return;
                }
                match route.hops.first() {
                    Some(hop) => Blame::Channel {
                        short_channel_id: hop.short_channel_id,
                        source: self.node_id,
                    },
                    None => Blame::Unattributable,
                }
            }
            _ => {
                let invoice = Invoice::parse(&p.invoice);
                let Ok(invoice) = invoice else { return };
                let Ok(params) = self.route_params(pid, &invoice) else { return };
                let mut attempts = PaymentAttempts::new(params, 1);
                let now = self.now32();
                attempts.record_failure(&route, decoded.as_ref(), &mut self.scorer, now)
            }
        };
        let p = self.meta.payments.get_mut(&pid).expect("payment exists");
        match blame {
            Blame::Payee(code) => {
                let reason = format!("payee refused the payment (failure code {:#06x})", code.0);
                return self.fail_payment(pid, reason);
            }
            Blame::Channel { short_channel_id, .. } => p.excluded_channels.push(short_channel_id.0),
            Blame::Node(n) => p.excluded_nodes.push(n),
            Blame::Unattributable => {}
        }
        self.send_payment_attempt(pid);
    }

    fn route_params(
        &self,
        pid: PaymentId,
        invoice: &Invoice,
    ) -> Result<RouteParams, super::NodeError> {
        let p = &self.meta.payments[&pid];
        let mut params =
            RouteParams::for_invoice(self.node_id, invoice, Some(p.amount_msat), self.meta.height)?;
        params.exclusions.channels.extend(p.excluded_channels.iter().map(|c| ShortChannelId(*c)));
        params.exclusions.nodes.extend(p.excluded_nodes.iter().copied());
        Ok(params)
    }

    pub(super) fn fail_payment(&mut self, pid: PaymentId, reason: String) {
        self.dirty.insert(super::Dirty::Payment(pid));
        let Some(p) = self.meta.payments.get_mut(&pid) else { return };
        if p.status != PaymentStatus::Pending {
            return;
        }
        p.status = PaymentStatus::Failed { reason: reason.clone() };
        p.retry = false;
        let payment_hash = p.payment_hash;
        self.event(NodeEvent::PaymentFailed { id: pid, payment_hash, reason });
    }

    /// Tries the next route of a pending payment without an HTLC in flight.
    pub(super) fn send_payment_attempt(&mut self, pid: PaymentId) {
        self.dirty.insert(super::Dirty::Payment(pid));
        loop {
            let Some(p) = self.meta.payments.get(&pid) else { return };
            if p.status != PaymentStatus::Pending || p.attempt.is_some() {
                return;
            }
            if p.attempts >= self.config.max_payment_attempts {
                let reason = format!("no route succeeded after {} attempts", p.attempts);
                return self.fail_payment(pid, reason);
            }
            let Ok(invoice) = Invoice::parse(&p.invoice) else {
                return self.fail_payment(pid, "stored invoice unreadable".into());
            };
            let params = match self.route_params(pid, &invoice) {
                Ok(p) => p,
                Err(e) => return self.fail_payment(pid, e.to_string()),
            };
            let route =
                match crate::router::find_route(&self.graph, &params, &self.scorer, self.now32()) {
                    Ok(r) => r,
                    Err(e) => return self.fail_payment(pid, e.to_string()),
                };
            let Some(first_hop) = route.hops.first().copied() else {
                return self.fail_payment(pid, "empty route".into());
            };
            let first = first_hop.short_channel_id;
            let Some(lid) = self.channel_by_scid(first.0) else {
                self.meta.payments.get_mut(&pid).expect("exists").excluded_channels.push(first.0);
                continue;
            };
            let usable = {
                let ch = &self.channels[&lid].channel;
                ch.phase() == Phase::Normal && ch.connected
            };
            if !usable {
                // Wait for the peer to come back (the route may be the only one).
                self.meta.payments.get_mut(&pid).expect("exists").retry = true;
                return;
            }
            let payloads = match route.onion_payloads(
                *invoice.payment_secret(),
                self.meta.payments[&pid].amount_msat,
                None,
            ) {
                Ok(p) => p,
                Err(e) => return self.fail_payment(pid, e.to_string()),
            };
            let session = SessionKey::from_bytes(self.entropy(b"onion session"));
            let hash = *invoice.payment_hash();
            let (packet, secrets) =
                match construct_onion(&session, &route.node_ids(), &payloads, &hash) {
                    Ok(x) => x,
                    Err(e) => return self.fail_payment(pid, e.to_string()),
                };
            let Ok(onion) = <[u8; PACKET_LEN]>::try_from(packet.encode().as_slice()) else {
                return self.fail_payment(pid, "onion encoding".into());
            };
            let e = self.channels.get_mut(&lid).expect("found");
            let peer = e.peer;
            match e.channel.send_add_htlc(
                route.total_amount_msat,
                hash,
                first_hop.cltv_expiry,
                Box::new(onion),
            ) {
                Ok(add) => {
                    let p = self.meta.payments.get_mut(&pid).expect("exists");
                    p.attempts += 1;
                    p.retry = false;
                    p.attempt = Some(Attempt {
                        hops: route.hops.clone(),
                        total_amount_msat: route.total_amount_msat,
                        total_cltv: route.total_cltv,
                        shared_secrets: secrets.iter().map(|s| *s.as_bytes()).collect(),
                        channel: lid,
                        htlc_id: add.id,
                    });
                    self.meta.outgoing.insert((lid, add.id), Origin::Payment(pid));
                    self.send(peer, crate::wire::Message::UpdateAddHtlc(add));
                    self.after_change(lid);
                    return;
                }
                Err(_) => {
                    self.meta
                        .payments
                        .get_mut(&pid)
                        .expect("exists")
                        .excluded_channels
                        .push(first.0);
                }
            }
        }
    }

    /// Payments waiting for a usable first hop.
    pub(super) fn retry_payments(&mut self) {
        let waiting: Vec<PaymentId> = self
            .meta
            .payments
            .iter()
            .filter(|(_, p)| p.retry && p.status == PaymentStatus::Pending && p.attempt.is_none())
            .map(|(id, _)| *id)
            .collect();
        for pid in waiting {
            self.send_payment_attempt(pid);
        }
    }

    /// Pushes an action (used by the chain code).
    pub(super) fn push(&mut self, a: Action) {
        self.out.push(a);
    }
}
