//! The orphan pool: transactions whose inputs are not (yet) known, waiting for a parent.
//!
//! Orphans are keyed by (txid, wtxid): a copy of a transaction with a different (e.g. invalid)
//! witness is a different orphan and cannot shadow the honest one. Their memory use (the
//! transaction's heap allocations plus every index entry, by-parent entries included) is what
//! the byte limit counts.

use std::collections::{BTreeMap, BTreeSet};

use rnet_primitives::{Block, OutPoint, Transaction, Txid, Wtxid};

use crate::memusage::{btree_entry, tx_heap_usage};

/// What identifies an orphan: its txid and its wtxid.
pub(crate) type OrphanKey = (Txid, Wtxid);

/// One orphan.
#[derive(Clone, Debug)]
pub(crate) struct Orphan {
    pub tx: Transaction,
    /// Serialized size.
    pub size: usize,
    /// Estimated memory use, index entries included.
    pub usage: usize,
    /// When it arrived (kept when it is retried and put back).
    pub time: u64,
    seq: u64,
}

/// Orphans by (txid, wtxid), bounded in count and memory, oldest evicted first, expiring by
/// time, indexed by the txids of the outputs they spend.
#[derive(Clone, Debug, Default)]
pub(crate) struct OrphanPool {
    orphans: BTreeMap<OrphanKey, Orphan>,
    /// (arrival time, sequence) → orphan: eviction and expiry order.
    by_age: BTreeMap<(u64, u64), OrphanKey>,
    /// (parent txid, orphan) for every distinct parent txid an orphan spends from.
    by_parent: BTreeSet<(Txid, OrphanKey)>,
    bytes: usize,
    usage: usize,
    next_seq: u64,
}

/// Estimated memory use of an orphan `tx` spending outputs of `parents` distinct txids.
fn orphan_usage(tx: &Transaction, parents: usize) -> usize {
    tx_heap_usage(tx)
        + btree_entry::<OrphanKey, Orphan>()
        + btree_entry::<(u64, u64), OrphanKey>()
        + parents * btree_entry::<(Txid, OrphanKey), ()>()
}

/// The distinct txids whose outputs `tx` spends.
fn parent_txids(tx: &Transaction) -> BTreeSet<Txid> {
    tx.inputs.iter().map(|i| i.previous_output.txid).collect()
}

/// Every key with this txid, in a range query.
fn txid_range(txid: Txid) -> std::ops::RangeInclusive<OrphanKey> {
    (txid, Wtxid([0; 32]))..=(txid, Wtxid([0xFF; 32]))
}

impl OrphanPool {
    pub fn len(&self) -> usize {
        self.orphans.len()
    }

    /// Sum of the orphans' serialized sizes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Sum of the orphans' estimated memory use (what the limit counts).
    pub fn usage(&self) -> usize {
        self.usage
    }

    /// Whether some orphan has this txid.
    pub fn contains_txid(&self, txid: &Txid) -> bool {
        self.orphans.range(txid_range(*txid)).next().is_some()
    }

    /// The orphans' txids, oldest first.
    pub fn txids(&self) -> Vec<Txid> {
        self.by_age.values().map(|k| k.0).collect()
    }

    /// Adds `tx` unless present or larger than the memory limit by itself; evicts the oldest
    /// orphans to stay within `max_count` and `max_usage`. Returns whether it is now in the pool.
    pub fn insert(
        &mut self,
        tx: Transaction,
        time: u64,
        max_count: usize,
        max_usage: usize,
    ) -> bool {
        let key = (tx.txid(), tx.wtxid());
        if self.orphans.contains_key(&key) {
            return true;
        }
        let parents = parent_txids(&tx);
        let usage = orphan_usage(&tx, parents.len());
        if max_count == 0 || usage > max_usage {
            return false;
        }
        while self.orphans.len() >= max_count || self.usage.saturating_add(usage) > max_usage {
            let Some(oldest) = self.by_age.values().next().copied() else { break };
            self.remove(&oldest);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        for parent in parents {
            self.by_parent.insert((parent, key));
        }
        self.by_age.insert((time, seq), key);
        let size = tx.total_size();
        self.bytes += size;
        self.usage += usage;
        self.orphans.insert(key, Orphan { tx, size, usage, time, seq });
        true
    }

    /// Puts back an orphan taken with [`OrphanPool::remove`] (its age is kept).
    pub fn put_back(&mut self, orphan: Orphan, max_count: usize, max_usage: usize) {
        let Orphan { tx, time, .. } = orphan;
        self.insert(tx, time, max_count, max_usage);
    }

    /// Removes and returns an orphan.
    pub fn remove(&mut self, key: &OrphanKey) -> Option<Orphan> {
        let orphan = self.orphans.remove(key)?;
        self.by_age.remove(&(orphan.time, orphan.seq));
        self.bytes -= orphan.size;
        self.usage -= orphan.usage;
        for parent in parent_txids(&orphan.tx) {
            self.by_parent.remove(&(parent, *key));
        }
        Some(orphan)
    }

    /// Orphans spending an output of `parent`.
    pub fn children_of(&self, parent: &Txid) -> Vec<OrphanKey> {
        let lo = (*parent, (Txid([0; 32]), Wtxid([0; 32])));
        let hi = (*parent, (Txid([0xFF; 32]), Wtxid([0xFF; 32])));
        self.by_parent.range(lo..=hi).map(|(_, k)| *k).collect()
    }

    /// Drops orphans that arrived more than `expiry_secs` before `now`.
    pub fn expire(&mut self, now: u64, expiry_secs: u64) {
        let cutoff = now.saturating_sub(expiry_secs);
        let old: Vec<OrphanKey> = self.by_age.range(..(cutoff, 0)).map(|(_, k)| *k).collect();
        for key in old {
            self.remove(&key);
        }
    }

    /// Drops orphans confirmed by `block` (any witness) or spending an outpoint it spends:
    /// O(block inputs · log n) through the by-parent index.
    pub fn remove_for_block(&mut self, block: &Block) {
        let mut spent: BTreeSet<OutPoint> = BTreeSet::new();
        for tx in &block.transactions {
            let confirmed: Vec<OrphanKey> =
                self.orphans.range(txid_range(tx.txid())).map(|(k, _)| *k).collect();
            for key in confirmed {
                self.remove(&key);
            }
            spent.extend(tx.inputs.iter().map(|i| i.previous_output));
        }
        let mut doomed = BTreeSet::new();
        for outpoint in &spent {
            for key in self.children_of(&outpoint.txid) {
                let spends = self
                    .orphans
                    .get(&key)
                    .is_some_and(|o| o.tx.inputs.iter().any(|i| i.previous_output == *outpoint));
                if spends {
                    doomed.insert(key);
                }
            }
        }
        for key in doomed {
            self.remove(&key);
        }
    }
}

#[cfg(test)]
impl OrphanPool {
    /// Recomputes the indexes and totals from scratch and compares.
    pub(crate) fn assert_consistent(&self) {
        let (mut bytes, mut usage, mut links) = (0, 0, 0);
        for (key, o) in &self.orphans {
            assert_eq!(*key, (o.tx.txid(), o.tx.wtxid()));
            assert_eq!(self.by_age.get(&(o.time, o.seq)), Some(key));
            let parents = parent_txids(&o.tx);
            for p in &parents {
                assert!(self.by_parent.contains(&(*p, *key)));
            }
            links += parents.len();
            assert_eq!(o.usage, orphan_usage(&o.tx, parents.len()));
            bytes += o.size;
            usage += o.usage;
        }
        assert_eq!(self.by_age.len(), self.orphans.len());
        assert_eq!(self.by_parent.len(), links);
        assert_eq!((self.bytes, self.usage), (bytes, usage));
    }
}
