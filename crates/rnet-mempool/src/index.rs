//! The pool's compact link sets and ordered indexes: [`TxidList`] (a pooled transaction's in-pool
//! parents or children) and [`EvictKey`] (the eviction order, so trimming takes the worst package
//! in O(log n) instead of scanning the pool).

use std::cmp::Ordering;

use rnet_primitives::Txid;

use crate::entry::cmp_rate;

/// A small sorted set of txids in one vector: the parents or children of a pooled transaction
/// (at most the ancestor/descendant limits). A `BTreeSet` would allocate a 360-byte node for
/// even one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TxidList(Vec<Txid>);

impl TxidList {
    /// Adds `txid`; returns whether it was new.
    pub fn insert(&mut self, txid: Txid) -> bool {
        match self.0.binary_search(&txid) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, txid);
                true
            }
        }
    }

    /// Removes `txid`; returns whether it was present.
    pub fn remove(&mut self, txid: &Txid) -> bool {
        match self.0.binary_search(txid) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `txid` is a member.
    #[cfg(test)]
    pub fn contains(&self, txid: &Txid) -> bool {
        self.0.binary_search(txid).is_ok()
    }

    /// The members in ascending order.
    pub fn iter(&self) -> std::slice::Iter<'_, Txid> {
        self.0.iter()
    }
}

impl FromIterator<Txid> for TxidList {
    fn from_iter<I: IntoIterator<Item = Txid>>(iter: I) -> Self {
        let mut v: Vec<Txid> = iter.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        v.shrink_to_fit();
        Self(v)
    }
}

/// A pooled transaction's place in the eviction order: by descendant-package fee rate
/// (`fees / size`, compared exactly), lowest first; among equal rates the newest (highest
/// insertion sequence) first. The first key of the index is the package trimming evicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EvictKey {
    /// Descendant fees (itself included).
    pub fees: u64,
    /// Descendant size (itself included).
    pub size: usize,
    /// Insertion sequence (unique per pooled transaction).
    pub seq: u64,
    /// The transaction.
    pub txid: Txid,
}

impl Ord for EvictKey {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_rate(self.fees, self.size, other.fees, other.size)
            .then(other.seq.cmp(&self.seq))
            .then(self.txid.cmp(&other.txid))
    }
}

impl PartialOrd for EvictKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn txid_list_is_a_sorted_set() {
        let mut l: TxidList = [Txid([3; 32]), Txid([1; 32]), Txid([3; 32])].into_iter().collect();
        assert_eq!(l.iter().copied().collect::<Vec<_>>(), vec![Txid([1; 32]), Txid([3; 32])]);
        assert!(l.insert(Txid([2; 32])));
        assert!(!l.insert(Txid([2; 32])));
        assert!(l.contains(&Txid([2; 32])));
        assert!(l.remove(&Txid([1; 32])));
        assert!(!l.remove(&Txid([1; 32])));
        assert_eq!(l.iter().count(), 2);
    }

    #[test]
    fn evict_order_is_rate_then_newest() {
        let k = |fees, size, seq| EvictKey { fees, size, seq, txid: Txid([seq as u8; 32]) };
        let set: BTreeSet<EvictKey> =
            [k(300, 100, 1), k(200, 100, 2), k(400, 200, 3), k(100, 100, 4)].into_iter().collect();
        let order: Vec<u64> = set.iter().map(|k| k.seq).collect();
        // 1.0 (seq 4), then 2.0 twice (newest, seq 3, first), then 3.0.
        assert_eq!(order, vec![4, 3, 2, 1]);
    }
}
