//! Relay: `inv`/`getdata` handling and announcing the tip and new mempool transactions.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use rnet_primitives::{BlockHash, Transaction, Txid};

use crate::message::{Inv, InvKind, Message};

use super::validation::{Checked, Job, MAX_PENDING_TXS_PER_PEER};
use super::{BAN_SCORE, Manager};

/// Most entries of the rolling reject filter.
pub const MAX_RECENT_REJECTS: usize = 50_000;
/// Score of a consensus-invalid transaction (the backend says `invalid`).
pub const INVALID_TX_SCORE: u32 = BAN_SCORE;
/// Score of an unrequested `tx` over the peer's allowance (the transaction is dropped).
pub const UNREQUESTED_TX_SCORE: u32 = 5;

/// Recently rejected transactions (Bitcoin Core's `m_recent_rejects`): their txids and wtxids, so
/// a rejected transaction is neither requested again on `inv` nor validated again when pushed.
/// Bounded (the oldest entries go first) and cleared when the tip changes, since a policy reject
/// may pass on the new tip.
#[derive(Default)]
pub(super) struct RejectFilter {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl RejectFilter {
    /// Remembers a hash.
    pub(super) fn insert(&mut self, h: [u8; 32]) {
        if self.set.insert(h) {
            self.order.push_back(h);
            while self.order.len() > MAX_RECENT_REJECTS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    /// Whether a hash was rejected recently.
    pub(super) fn contains(&self, h: &[u8; 32]) -> bool {
        self.set.contains(h)
    }

    /// Forgets everything (new tip).
    pub(super) fn clear(&mut self) {
        self.set.clear();
        self.order.clear();
    }
}

impl Manager {
    /// A `tx` from a peer: unrequested ones use a small allowance, recent rejects and
    /// transactions already being checked are dropped, the rest queued for validation.
    pub(super) fn on_tx(&mut self, id: u64, tx: Box<Transaction>) {
        let txid = tx.txid();
        let requested = match self.requested_txs.get(&txid) {
            Some((p, _)) if *p == id => {
                self.requested_txs.remove(&txid);
                true
            }
            _ => false,
        };
        let Some(p) = self.peers.get_mut(&id) else { return };
        p.known.insert(txid.0);
        if !requested && !p.unrequested_txs.take(Instant::now()) {
            self.misbehave(id, UNREQUESTED_TX_SCORE, "unrequested transactions over the allowance");
            return;
        }
        if p.txs_pending >= MAX_PENDING_TXS_PER_PEER {
            tracing::debug!(peer = id, %txid, "too many transactions waiting; dropped");
            return;
        }
        let wtxid = tx.wtxid();
        if self.recent_rejects.contains(&wtxid.0) || self.tx_checking.contains(&txid) {
            return;
        }
        match self.tx_jobs.try_send(Job::Tx { peer: id, tx }) {
            Ok(()) => {
                p.txs_pending += 1;
                self.tx_checking.insert(txid);
            }
            Err(_) => tracing::debug!(peer = id, %txid, "validation queue full; dropped"),
        }
    }

    /// A transaction verdict: a reject enters the reject filter; a consensus-invalid one scores
    /// its sender [`INVALID_TX_SCORE`].
    pub(super) fn on_tx_checked(&mut self, c: Checked) {
        let Checked::Tx { peer, txid, wtxid, result } = c else { return };
        self.tx_checking.remove(&txid);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.txs_pending = p.txs_pending.saturating_sub(1);
        }
        match result {
            Ok(true) => {
                tracing::debug!(peer, %txid, "accepted transaction");
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.last_tx = Some(Instant::now());
                }
            }
            Ok(false) => {}
            Err(r) => {
                tracing::debug!(peer, %txid, invalid = r.invalid, "transaction rejected: {}", r.reason);
                self.recent_rejects.insert(wtxid.0);
                self.recent_rejects.insert(txid.0);
                if r.invalid {
                    self.misbehave(
                        peer,
                        INVALID_TX_SCORE,
                        &format!("invalid transaction {txid}: {}", r.reason),
                    );
                }
            }
        }
    }

    pub(super) fn on_inv(&mut self, id: u64, items: Vec<Inv>) {
        let mut want_headers = false;
        let mut get = Vec::new();
        for i in items {
            if let Some(p) = self.peers.get_mut(&id) {
                if p.known.len() > 50_000 {
                    p.known.clear();
                }
                p.known.insert(i.hash);
            }
            match i.kind {
                InvKind::Block => {
                    let h = BlockHash(i.hash);
                    if !self.wanted.contains_key(&h)
                        && !self.blocks_checking.contains(&h)
                        && !self.b(|b| b.has_block(&h))
                    {
                        want_headers = true;
                    }
                }
                InvKind::Tx => {
                    let t = Txid(i.hash);
                    if self.requested_txs.len() < 50_000
                        && !self.requested_txs.contains_key(&t)
                        && !self.recent_rejects.contains(&t.0)
                        && !self.tx_checking.contains(&t)
                        && self.b(|b| b.tx(&t)).is_none()
                    {
                        self.requested_txs.insert(t, (id, Instant::now()));
                        get.push(i);
                    }
                }
            }
        }
        if want_headers {
            self.request_headers(id, None);
        }
        if !get.is_empty() {
            self.send(id, Message::GetData(get));
        }
    }

    pub(super) fn on_getdata(&mut self, id: u64, items: Vec<Inv>) {
        let mut missing = Vec::new();
        for i in items {
            match i.kind {
                InvKind::Block => match self.b(|b| b.block(&BlockHash(i.hash))) {
                    Some(blk) => self.send(id, Message::Block(Box::new(blk))),
                    None => missing.push(i),
                },
                InvKind::Tx => match self.b(|b| b.tx(&Txid(i.hash))) {
                    Some(tx) => self.send(id, Message::Tx(Box::new(tx))),
                    None => missing.push(i),
                },
            }
        }
        if !missing.is_empty() {
            self.send(id, Message::NotFound(missing));
        }
    }

    pub(super) fn relay(&mut self) {
        let (_, _, tip) = self.b(|b| b.best());
        let mut sends = Vec::new();
        if tip != self.last_tip {
            self.last_tip = tip;
            self.recent_rejects.clear();
            for (id, p) in self.peers.iter_mut() {
                if p.ready() && p.known.insert(tip.0) {
                    sends.push((*id, Message::Inv(vec![Inv::block(tip)])));
                }
            }
        }
        let txids = self.b(|b| b.mempool_txids());
        if self.announced_txs.len() > 100_000 {
            self.announced_txs.clear();
        }
        let fresh: Vec<Txid> =
            txids.into_iter().filter(|t| self.announced_txs.insert(*t)).collect();
        if !fresh.is_empty() {
            for (id, p) in self.peers.iter_mut() {
                if !p.ready() {
                    continue;
                }
                let items: Vec<Inv> =
                    fresh.iter().filter(|t| p.known.insert(t.0)).map(|t| Inv::tx(*t)).collect();
                if !items.is_empty() {
                    sends.push((*id, Message::Inv(items)));
                }
            }
        }
        for (id, m) in sends {
            self.send(id, m);
        }
    }
}
