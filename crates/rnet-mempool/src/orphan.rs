//! The orphan pool: transactions whose inputs are not (yet) known, waiting for a parent.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rnet_primitives::{Block, OutPoint, Transaction, Txid};

/// One orphan.
#[derive(Clone, Debug)]
pub(crate) struct Orphan {
    pub tx: Transaction,
    pub size: usize,
    /// When it arrived (kept when it is retried and put back).
    pub time: u64,
    seq: u64,
}

/// Orphans by txid, bounded in count and bytes, oldest evicted first, expiring by time, indexed by
/// the txids of the outputs they spend.
#[derive(Clone, Debug, Default)]
pub(crate) struct OrphanPool {
    orphans: HashMap<Txid, Orphan>,
    /// (arrival time, sequence) → txid: eviction and expiry order.
    by_age: BTreeMap<(u64, u64), Txid>,
    /// Parent txid → orphans spending one of its outputs.
    by_parent: HashMap<Txid, BTreeSet<Txid>>,
    bytes: usize,
    next_seq: u64,
}

impl OrphanPool {
    pub fn len(&self) -> usize {
        self.orphans.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, txid: &Txid) -> bool {
        self.orphans.contains_key(txid)
    }

    pub fn txids(&self) -> Vec<Txid> {
        self.by_age.values().copied().collect()
    }

    /// Adds `tx` unless present or larger than the byte limit; evicts the oldest orphans to
    /// stay within `max_count` and `max_bytes`. Returns whether it is now in the pool.
    pub fn insert(
        &mut self,
        tx: Transaction,
        txid: Txid,
        size: usize,
        time: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> bool {
        if self.orphans.contains_key(&txid) {
            return true;
        }
        if max_count == 0 || size > max_bytes {
            return false;
        }
        while self.orphans.len() >= max_count || self.bytes.saturating_add(size) > max_bytes {
            let Some((_, oldest)) = self.by_age.iter().next().map(|(k, v)| (*k, *v)) else { break };
            self.remove(&oldest);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        for input in &tx.inputs {
            self.by_parent.entry(input.previous_output.txid).or_default().insert(txid);
        }
        self.by_age.insert((time, seq), txid);
        self.bytes += size;
        self.orphans.insert(txid, Orphan { tx, size, time, seq });
        true
    }

    /// Puts back an orphan taken with [`OrphanPool::remove`] (its age is kept).
    pub fn put_back(&mut self, txid: Txid, orphan: Orphan, max_count: usize, max_bytes: usize) {
        let Orphan { tx, size, time, .. } = orphan;
        self.insert(tx, txid, size, time, max_count, max_bytes);
    }

    /// Removes and returns an orphan.
    pub fn remove(&mut self, txid: &Txid) -> Option<Orphan> {
        let orphan = self.orphans.remove(txid)?;
        self.by_age.remove(&(orphan.time, orphan.seq));
        self.bytes -= orphan.size;
        for input in &orphan.tx.inputs {
            let parent = input.previous_output.txid;
            if let Some(set) = self.by_parent.get_mut(&parent) {
                set.remove(txid);
                if set.is_empty() {
                    self.by_parent.remove(&parent);
                }
            }
        }
        Some(orphan)
    }

    /// Orphans spending an output of `parent`.
    pub fn children_of(&self, parent: &Txid) -> Vec<Txid> {
        self.by_parent.get(parent).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    /// Drops orphans that arrived more than `expiry_secs` before `now`.
    pub fn expire(&mut self, now: u64, expiry_secs: u64) {
        let cutoff = now.saturating_sub(expiry_secs);
        let old: Vec<Txid> = self.by_age.range(..(cutoff, 0)).map(|(_, t)| *t).collect();
        for txid in old {
            self.remove(&txid);
        }
    }

    /// Drops orphans confirmed by `block` or spending an outpoint it spends.
    pub fn remove_for_block(&mut self, block: &Block) {
        let mut spent: BTreeSet<OutPoint> = BTreeSet::new();
        for tx in &block.transactions {
            self.remove(&tx.txid());
            spent.extend(tx.inputs.iter().map(|i| i.previous_output));
        }
        let doomed: Vec<Txid> = self
            .orphans
            .iter()
            .filter(|(_, o)| o.tx.inputs.iter().any(|i| spent.contains(&i.previous_output)))
            .map(|(t, _)| *t)
            .collect();
        for txid in doomed {
            self.remove(&txid);
        }
    }
}
