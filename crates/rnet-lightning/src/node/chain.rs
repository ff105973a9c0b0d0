//! The chain: funding confirmations, spends of funding outputs (cooperative closes, our own
//! and the counterparty's commitments, revoked ones), sweeps, HTLC timeouts and preimages
//! revealed on chain.

use rnet_primitives::{Transaction, Txid};
use rnet_script::templates::Htlc;

use super::{
    Action, ChanStatus, CloseReason, LightningNode, NodeError, NodeEvent, Resolution, Scheduled,
};
use crate::channel::keys::per_commitment_point;
use crate::channel::sweep::{htlc_tx_output_input, to_local_input};
use crate::channel::{
    CommitmentSpec, CommitmentTransaction, HtlcDirection, HtlcScript, HtlcTxKind, Side, SweepInput,
    SweepPath, build_commitment, build_sweep, penalty_inputs,
};
use crate::gossip::ShortChannelId;
use crate::state::Phase;
use crate::watchtower::{TowerClient, justice_transactions};

impl LightningNode {
    /// A block at `height` with `transactions` (in block order) extends the chain.
    pub fn block_connected(
        &mut self,
        height: u32,
        transactions: &[Transaction],
    ) -> Result<Vec<Action>, NodeError> {
        self.meta.height = height;
        let txids: Vec<Txid> = transactions.iter().map(Transaction::txid).collect();
        self.funding_confirmations(height, &txids);
        // Transactions we wait on.
        for (tx, txid) in transactions.iter().zip(&txids) {
            let watched = self
                .meta
                .scheduled
                .iter()
                .any(|s| s.after.is_some_and(|(t, _)| t == *txid) || s.tx.txid() == *txid);
            if watched {
                self.meta.confirmed.insert(*txid, height);
            }
            self.funding_spends(tx, *txid, height);
        }
        self.preimages_on_chain(transactions);
        self.scheduled_confirmed(&txids);
        self.drop_conflicted(transactions);
        self.expiring_htlcs(height);
        self.broadcast_ready(height);
        self.send_announcement_signatures();
        self.finish()
    }

    /// The block at `height` was disconnected. Confirmation records at or above it are
    /// forgotten, so waiting transactions are re-broadcast as needed; channels whose funding
    /// confirmed there wait for it again.
    pub fn block_disconnected(&mut self, height: u32) -> Result<Vec<Action>, NodeError> {
        self.meta.height = height.saturating_sub(1);
        self.meta.confirmed.retain(|_, h| *h < height);
        for e in self.channels.values_mut() {
            if e.funding_height.is_some_and(|h| h >= height) {
                e.funding_height = None;
            }
        }
        self.finish()
    }

    fn funding_confirmations(&mut self, height: u32, txids: &[Txid]) {
        let ids: Vec<u64> = self.channels.keys().copied().collect();
        for lid in ids {
            let e = self.channels.get_mut(&lid).expect("listed");
            let Some(outpoint) = e.channel.parameters().map(|p| p.funding_outpoint()) else {
                continue;
            };
            if e.funding_height.is_none()
                && let Some(index) = txids.iter().position(|t| *t == outpoint.txid)
            {
                e.funding_height = Some(height);
                if let (Ok(index), Ok(vout)) = (u32::try_from(index), u16::try_from(outpoint.vout))
                {
                    e.scid = ShortChannelId::new(height, index, vout).ok();
                }
            }
            let Some(fh) = e.funding_height else { continue };
            if e.status != ChanStatus::Open || e.channel.ready_sent {
                continue;
            }
            if !matches!(e.channel.phase(), Phase::AwaitingChannelReady | Phase::Normal) {
                continue;
            }
            let confirmations = height.saturating_sub(fh) + 1;
            let peer = e.peer;
            if let Ok(outcome) = e.channel.funding_depth(confirmations) {
                for m in outcome.messages {
                    self.send(peer, m);
                }
                for ev in outcome.events {
                    self.channel_event_public(lid, ev);
                }
            }
        }
    }

    fn channel_event_public(&mut self, lid: u64, ev: crate::state::Event) {
        if ev == crate::state::Event::ChannelReady {
            self.channel_ready(lid);
        }
    }

    fn funding_spends(&mut self, tx: &Transaction, txid: Txid, height: u32) {
        for input in &tx.inputs {
            let lid = self.channels.iter().find_map(|(k, e)| {
                let op = e.channel.parameters()?.funding_outpoint();
                (op == input.previous_output && e.status != ChanStatus::Closed).then_some(*k)
            });
            if let Some(lid) = lid {
                self.funding_spent(lid, tx, txid, height);
            }
        }
    }

    fn funding_spent(&mut self, lid: u64, tx: &Transaction, txid: Txid, height: u32) {
        // Whatever spent the funding output, our own commitment can no longer confirm.
        self.meta.scheduled.retain(|s| {
            !(s.channel == lid
                && s.tx
                    .inputs
                    .iter()
                    .any(|i| tx.inputs.iter().any(|j| j.previous_output == i.previous_output))
                && s.tx.txid() != txid)
        });
        let reason = if let Some((_, penalties)) = self.meta.penalties.get(&txid).cloned() {
            for p in penalties {
                self.meta.scheduled.push(Scheduled {
                    channel: lid,
                    tx: p,
                    not_before: 0,
                    after: Some((txid, 0)),
                    resolves: None,
                });
            }
            self.meta.confirmed.insert(txid, height);
            // The penalty takes every HTLC output: our offered HTLCs are dead.
            let ours: Vec<(u64, u64)> =
                self.meta.outgoing.keys().filter(|(c, _)| *c == lid).copied().collect();
            for (c, id) in ours {
                self.outgoing_failed(c, id, None);
            }
            CloseReason::RevokedCommitment
        } else {
            let e = &self.channels[&lid];
            let closing = e.channel.closing_transaction().map(Transaction::txid);
            let holder = e.channel.holder_commitment().ok();
            if closing == Some(txid) {
                CloseReason::Cooperative
            } else if let Some(h) = holder.filter(|h| h.tx.txid() == txid) {
                self.meta.confirmed.insert(txid, height);
                self.resolve_holder_commitment(lid, &h);
                self.fail_missing_htlcs(lid, &h.commitment);
                CloseReason::LocalCommitment
            } else if let Some(c) =
                self.remote_commitments(lid).into_iter().find(|c| c.txid() == txid)
            {
                self.meta.confirmed.insert(txid, height);
                self.resolve_remote_commitment(lid, &c);
                self.fail_missing_htlcs(lid, &c);
                CloseReason::RemoteCommitment
            } else {
                CloseReason::UnknownSpend
            }
        };
        let e = self.channels.get_mut(&lid).expect("channel exists");
        e.status = ChanStatus::Closed;
        let (channel_id, peer, scid) = (e.channel.channel_id(), e.peer, e.scid);
        if let Some(scid) = scid {
            self.graph.funding_spent(scid);
        }
        self.event(NodeEvent::ChannelClosed { channel_id, peer, reason });
    }

    /// HTLCs we offered that have no output on the confirmed commitment `c` (never in it, or
    /// trimmed as dust) can no longer be claimed by anyone: fail them upstream.
    fn fail_missing_htlcs(&mut self, lid: u64, c: &CommitmentTransaction) {
        let on_chain: Vec<u64> = c
            .htlc_outputs()
            .filter(|(_, _, script)| match script {
                // Offered by the holder: ours if the holder is us.
                HtlcScript::Offered(_) => c.side == Side::Local,
                HtlcScript::Received(_) => c.side == Side::Remote,
            })
            .map(|(_, h, _)| h.id)
            .collect();
        let dead: Vec<(u64, u64)> = self
            .meta
            .outgoing
            .keys()
            .filter(|(ch, id)| *ch == lid && !on_chain.contains(id))
            .copied()
            .collect();
        for (ch, id) in dead {
            self.outgoing_failed(ch, id, None);
        }
    }

    /// The counterparty's current commitment, and the next one if it awaits revocation.
    fn remote_commitments(&self, lid: u64) -> Vec<CommitmentTransaction> {
        let ch = &self.channels[&lid].channel;
        let Some(params) = ch.parameters() else { return vec![] };
        let mut out = Vec::new();
        if let Some(rc) = &ch.remote_commit
            && let Ok(c) = build_commitment(params, Side::Remote, &rc.spec, &rc.point)
        {
            out.push(c);
        }
        if let (Some(next), Some(point)) = (&ch.remote_next, ch.remote_next_point)
            && let Ok(c) = build_commitment(params, Side::Remote, &next.commit.spec, &point)
        {
            out.push(c);
        }
        out
    }

    fn sweep(&self, inputs: &[SweepInput]) -> Option<Transaction> {
        build_sweep(inputs, &self.config.sweep_script, self.config.feerate, &self.config.genesis)
            .ok()
    }

    fn preimage_for(&self, lid: u64, id: u64, hash: &[u8; 32]) -> Option<[u8; 32]> {
        if let Some(Resolution::Fulfill(p)) = self.meta.resolutions.get(&(lid, id)) {
            return Some(*p);
        }
        self.channels.get(&lid).and_then(|e| e.channel.preimage(hash))
    }

    /// Our commitment confirmed: `to_local` after the delay; HTLC-timeout transactions at
    /// their expiry, HTLC-success ones for preimages we hold; their outputs after the delay.
    fn resolve_holder_commitment(&mut self, lid: u64, h: &crate::state::HolderCommitment) {
        let c = &h.commitment;
        let txid = c.txid();
        let keys = self.channels[&lid].channel.keys.clone();
        let genesis = self.config.genesis;
        let delay = c.to_self_delay;
        let mut items = Vec::new();
        if let Ok(input) = to_local_input(c, &keys.delayed_payment)
            && let Some(tx) = self.sweep(&[input])
        {
            items.push(Scheduled {
                channel: lid,
                tx,
                not_before: 0,
                after: Some((txid, delay)),
                resolves: None,
            });
        }
        for (htx, their_sig) in &h.htlc_txs {
            let Ok(ours) = htx.sign(&keys.htlc, &genesis) else { continue };
            let (signed, not_before, resolves) = match htx.kind {
                HtlcTxKind::Timeout => (
                    htx.finalize(ours, their_sig.clone(), None),
                    htx.htlc.cltv_expiry,
                    Some((lid, htx.htlc.id)),
                ),
                HtlcTxKind::Success => {
                    let Some(p) = self.preimage_for(lid, htx.htlc.id, &htx.htlc.payment_hash)
                    else {
                        continue;
                    };
                    (htx.finalize(ours, their_sig.clone(), Some(&p)), 0, None)
                }
            };
            let Ok(signed) = signed else { continue };
            items.push(Scheduled {
                channel: lid,
                tx: signed,
                not_before,
                after: Some((txid, 0)),
                resolves,
            });
            if let Ok(input) = htlc_tx_output_input(htx, &keys.delayed_payment)
                && let Some(tx) = self.sweep(&[input])
            {
                items.push(Scheduled {
                    channel: lid,
                    tx,
                    not_before: 0,
                    after: Some((htx.txid(), delay)),
                    resolves: None,
                });
            }
        }
        self.meta.scheduled.extend(items);
    }

    /// The counterparty's current commitment confirmed: sweep `to_remote` at once, claim
    /// HTLCs it offered with preimages we hold, take back ours after their expiry.
    fn resolve_remote_commitment(&mut self, lid: u64, c: &CommitmentTransaction) {
        let txid = c.txid();
        let keys = self.channels[&lid].channel.keys.clone();
        let mut items = Vec::new();
        if let Some(index) = c.to_remote()
            && let Ok(spent) = c.output(index)
        {
            let input = SweepInput {
                outpoint: c.outpoint(index),
                spent,
                path: SweepPath::Key { key: keys.payment.clone() },
            };
            if let Some(tx) = self.sweep(&[input]) {
                items.push(Scheduled {
                    channel: lid,
                    tx,
                    not_before: 0,
                    after: Some((txid, 0)),
                    resolves: None,
                });
            }
        }
        for (index, htlc, script) in c.htlc_outputs() {
            let Ok(spent) = c.output(index) else { continue };
            let outpoint = c.outpoint(index);
            match script {
                HtlcScript::Offered(s) => {
                    // They offered it: ours with the preimage.
                    let Some(p) = self.preimage_for(lid, htlc.id, &htlc.payment_hash) else {
                        continue;
                    };
                    let path = SweepPath::HtlcPreimage {
                        script: Box::new(*s),
                        htlc_key: keys.htlc.clone(),
                        preimage: p,
                    };
                    if let Some(tx) = self.sweep(&[SweepInput { outpoint, spent, path }]) {
                        items.push(Scheduled {
                            channel: lid,
                            tx,
                            not_before: 0,
                            after: Some((txid, 0)),
                            resolves: None,
                        });
                    }
                }
                HtlcScript::Received(s) => {
                    // We offered it: refund after its expiry.
                    let path = SweepPath::HtlcTimeout {
                        script: Box::new(*s),
                        htlc_key: keys.htlc.clone(),
                    };
                    if let Some(tx) = self.sweep(&[SweepInput { outpoint, spent, path }]) {
                        items.push(Scheduled {
                            channel: lid,
                            tx,
                            not_before: htlc.cltv_expiry,
                            after: Some((txid, 0)),
                            resolves: Some((lid, htlc.id)),
                        });
                    }
                }
            }
        }
        self.meta.scheduled.extend(items);
    }

    /// A preimage learned after the channel's commitment confirmed: claim the HTLC `id` the
    /// counterparty offered, from whichever commitment is on chain.
    pub(super) fn claim_on_chain(&mut self, lid: u64, id: u64, preimage: [u8; 32]) {
        let Some(e) = self.channels.get(&lid) else { return };
        let keys = e.channel.keys.clone();
        let genesis = self.config.genesis;
        let mut items = Vec::new();
        if let Ok(h) = e.channel.holder_commitment()
            && self.meta.confirmed.contains_key(&h.tx.txid())
        {
            let delay = h.commitment.to_self_delay;
            for (htx, their_sig) in &h.htlc_txs {
                if htx.kind != HtlcTxKind::Success || htx.htlc.id != id {
                    continue;
                }
                let Ok(ours) = htx.sign(&keys.htlc, &genesis) else { continue };
                let Ok(tx) = htx.finalize(ours, their_sig.clone(), Some(&preimage)) else {
                    continue;
                };
                let txid = h.tx.txid();
                items.push(Scheduled {
                    channel: lid,
                    tx,
                    not_before: 0,
                    after: Some((txid, 0)),
                    resolves: None,
                });
                if let Ok(input) = htlc_tx_output_input(htx, &keys.delayed_payment)
                    && let Some(tx) = self.sweep(&[input])
                {
                    items.push(Scheduled {
                        channel: lid,
                        tx,
                        not_before: 0,
                        after: Some((htx.txid(), delay)),
                        resolves: None,
                    });
                }
            }
        }
        for c in self.remote_commitments(lid) {
            if !self.meta.confirmed.contains_key(&c.txid()) {
                continue;
            }
            for (index, htlc, script) in c.htlc_outputs() {
                let (HtlcScript::Offered(s), true) = (script, htlc.id == id) else { continue };
                let Ok(spent) = c.output(index) else { continue };
                let path = SweepPath::HtlcPreimage {
                    script: Box::new(*s),
                    htlc_key: keys.htlc.clone(),
                    preimage,
                };
                let input = SweepInput { outpoint: c.outpoint(index), spent, path };
                if let Some(tx) = self.sweep(&[input]) {
                    items.push(Scheduled {
                        channel: lid,
                        tx,
                        not_before: 0,
                        after: Some((c.txid(), 0)),
                        resolves: None,
                    });
                }
            }
        }
        let height = self.meta.height;
        for item in items {
            if self.is_ready(&item, height) {
                self.push(Action::Broadcast(item.tx.clone()));
            }
            self.meta.scheduled.push(item);
        }
    }

    /// Preimages in witnesses (the counterparty claimed our HTLC on chain): pass them
    /// upstream.
    fn preimages_on_chain(&mut self, transactions: &[Transaction]) {
        if self.meta.outgoing.is_empty() {
            return;
        }
        for tx in transactions {
            for input in &tx.inputs {
                for item in input.witness.items() {
                    let Ok(candidate) = <[u8; 32]>::try_from(item.as_slice()) else { continue };
                    let hash = Htlc::payment_hash_of(&candidate);
                    let hits: Vec<(u64, u64)> = self
                        .meta
                        .outgoing
                        .keys()
                        .filter(|(lid, id)| self.outgoing_hash(*lid, *id) == Some(hash))
                        .copied()
                        .collect();
                    for (lid, id) in hits {
                        self.outgoing_fulfilled(lid, id, candidate);
                    }
                }
            }
        }
    }

    fn outgoing_hash(&self, lid: u64, id: u64) -> Option<[u8; 32]> {
        let ch = &self.channels.get(&lid)?.channel;
        let find = |s: Option<&CommitmentSpec>| {
            s.and_then(|s| {
                s.htlcs
                    .iter()
                    .find(|h| h.id == id && h.direction == HtlcDirection::Offered)
                    .map(|h| h.payment_hash)
            })
        };
        find(ch.local_commitment_spec())
            .or_else(|| find(ch.remote_commit.as_ref().map(|c| &c.spec)))
            .or_else(|| find(ch.remote_commitment_spec()))
    }

    fn scheduled_confirmed(&mut self, txids: &[Txid]) {
        let mut done = Vec::new();
        self.meta.scheduled.retain(|s| {
            if txids.contains(&s.tx.txid()) {
                done.push(s.resolves);
                false
            } else {
                true
            }
        });
        for (lid, id) in done.into_iter().flatten() {
            self.outgoing_failed(lid, id, None);
        }
    }

    /// Scheduled transactions whose inputs another transaction of the block spent (the
    /// counterparty won a race, e.g. claimed an HTLC with its preimage) can never confirm.
    fn drop_conflicted(&mut self, transactions: &[Transaction]) {
        let spent: std::collections::BTreeSet<_> =
            transactions.iter().flat_map(|t| t.inputs.iter().map(|i| i.previous_output)).collect();
        self.meta
            .scheduled
            .retain(|s| !s.tx.inputs.iter().any(|i| spent.contains(&i.previous_output)));
    }

    /// Unresolved HTLCs close to expiry: close the channel and settle on chain. Ours count on
    /// any commitment (also one the counterparty has not revoked into yet); theirs only when
    /// we hold the preimage.
    fn expiring_htlcs(&mut self, height: u32) {
        let limit = u64::from(height) + u64::from(self.config.htlc_expiry_margin);
        let near = |h: &crate::channel::HtlcSpec| u64::from(h.cltv_expiry) <= limit;
        let close: Vec<u64> = self
            .channels
            .iter()
            .filter(|(_, e)| e.status == ChanStatus::Open && e.channel.phase() != Phase::Closed)
            .filter(|(lid, e)| {
                let ch = &e.channel;
                let specs = [
                    ch.local_commitment_spec(),
                    ch.remote_commit.as_ref().map(|c| &c.spec),
                    ch.remote_commitment_spec(),
                ];
                specs.into_iter().flatten().flat_map(|s| &s.htlcs).any(|h| {
                    near(h)
                        && match h.direction {
                            HtlcDirection::Offered => true,
                            HtlcDirection::Received => matches!(
                                self.meta.resolutions.get(&(**lid, h.id)),
                                Some(Resolution::Fulfill(_))
                            ),
                        }
                })
            })
            .map(|(k, _)| *k)
            .collect();
        for lid in close {
            self.force_close_local(lid);
        }
    }

    /// Whether a scheduled transaction can be mined in the block after `height`.
    fn is_ready(&self, s: &Scheduled, height: u32) -> bool {
        height >= s.not_before
            && match s.after {
                None => true,
                Some((t, d)) => self
                    .meta
                    .confirmed
                    .get(&t)
                    .is_some_and(|h| u64::from(height) + 1 >= u64::from(*h) + u64::from(d)),
            }
    }

    fn broadcast_ready(&mut self, height: u32) {
        let ready: Vec<Transaction> = self
            .meta
            .scheduled
            .iter()
            .filter(|s| self.is_ready(s, height))
            .map(|s| s.tx.clone())
            .collect();
        for tx in ready {
            self.push(Action::Broadcast(tx));
        }
    }

    /// A revoked counterparty commitment: keep its penalty (and hand it to watchtowers).
    pub(super) fn archive_revoked(&mut self, lid: u64, spec: &CommitmentSpec, secret: &[u8; 32]) {
        let ch = &self.channels[&lid].channel;
        let Some(params) = ch.parameters() else { return };
        let point = per_commitment_point(secret);
        let Ok(revoked) = build_commitment(params, Side::Remote, spec, &point) else { return };
        let keys = ch.keys.clone();
        let genesis = self.config.genesis;
        let mut txs = justice_transactions(
            &revoked,
            secret,
            &keys.revocation,
            &self.config.sweep_script,
            self.config.feerate,
            &genesis,
        )
        .unwrap_or_default();
        // `to_remote` (ours, no lock) separately, so it never conflicts with a tower's penalty.
        if let Ok(all) = penalty_inputs(&revoked, secret, &keys.revocation, Some(&keys.payment)) {
            let own: Vec<SweepInput> =
                all.into_iter().filter(|i| matches!(i.path, SweepPath::Key { .. })).collect();
            if !own.is_empty()
                && let Some(tx) = self.sweep(&own)
            {
                txs.push(tx);
            }
        }
        if txs.is_empty() {
            return;
        }
        if self.config.watchtower
            && let Ok(mut client) =
                TowerClient::new(genesis, self.config.sweep_script.clone(), self.config.feerate)
            && let Ok(appointment) = client.build_appointment(&revoked, secret, &keys.revocation)
        {
            self.push(Action::TowerAppointment(appointment));
        }
        self.dirty.insert(super::Dirty::Penalty(revoked.txid()));
        self.meta.penalties.insert(revoked.txid(), (lid, txs));
    }
}
