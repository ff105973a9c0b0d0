//! Block assembly: package selection by ancestor fee rate (Bitcoin Core's `CreateNewBlock`).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

use rnet_primitives::{Amount, Transaction, Txid};

use crate::entry::cmp_rate;
use crate::pool::Mempool;

/// After this many packages that did not fit, selection stops once the block is within
/// [`NEARLY_FULL_BYTES`] of the limit.
pub const MAX_CONSECUTIVE_FAILURES: usize = 1000;

/// See [`MAX_CONSECUTIVE_FAILURES`].
pub const NEARLY_FULL_BYTES: usize = 4000;

/// The transactions chosen for a block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockSelection {
    /// The transactions, parents before children (to follow the coinbase).
    pub transactions: Vec<Transaction>,
    /// Their txids, in the same order.
    pub txids: Vec<Txid>,
    /// Sum of their fees (what the coinbase may claim on top of the subsidy).
    pub fees: Amount,
    /// Sum of their serialized sizes.
    pub size: usize,
    /// Sum of their signature checks (at most the chain's `max_block_sig_checks`).
    pub sig_checks: u64,
}

/// A candidate: a transaction with its ancestor package (not yet in the block) statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Candidate {
    fees: u64,
    size: usize,
    txid: Txid,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_rate(self.fees, self.size, other.fees, other.size)
            // Smaller packages first at equal rate, then a fixed order.
            .then(other.size.cmp(&self.size))
            .then(other.txid.cmp(&self.txid))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Mempool {
    /// The transactions for the next block, at most `max_block_bytes` of them in serialized
    /// size (the room left after the header and coinbase) and at most the chain's
    /// `max_block_sig_checks` signature checks, chosen greedily by ancestor fee rate, parents
    /// before children.
    pub fn select_for_block(&self, max_block_bytes: usize) -> Vec<Transaction> {
        self.assemble(max_block_bytes).transactions
    }

    /// [`Mempool::select_for_block`] with the txids, total fees and size.
    ///
    /// Repeatedly takes the transaction whose package (itself and its ancestors not yet
    /// selected) has the highest fee rate, adds the package if it fits (ancestors first), and
    /// recomputes the package statistics of the remaining descendants of what was added.
    pub fn assemble(&self, max_block_bytes: usize) -> BlockSelection {
        let mut heap: BinaryHeap<Candidate> = self
            .nodes
            .values()
            .map(|n| Candidate {
                fees: n.entry.ancestor_fees.0,
                size: n.entry.ancestor_size,
                txid: n.entry.txid,
            })
            .collect();
        // Current package statistics of transactions whose ancestors were partly selected.
        let mut modified: HashMap<Txid, (u64, usize)> = HashMap::new();
        let mut in_block: HashSet<Txid> = HashSet::new();
        let mut out = BlockSelection::default();
        let mut failures = 0usize;
        while let Some(c) = heap.pop() {
            if in_block.contains(&c.txid) {
                continue;
            }
            let Some(node) = self.nodes.get(&c.txid) else { continue };
            let current = modified
                .get(&c.txid)
                .copied()
                .unwrap_or((node.entry.ancestor_fees.0, node.entry.ancestor_size));
            if current != (c.fees, c.size) {
                continue; // stale
            }
            if out.size.saturating_add(c.size) > max_block_bytes {
                failures += 1;
                if failures > MAX_CONSECUTIVE_FAILURES
                    && out.size.saturating_add(NEARLY_FULL_BYTES) > max_block_bytes
                {
                    break;
                }
                continue;
            }
            let mut package: Vec<Txid> =
                self.ancestors(&c.txid).into_iter().filter(|a| !in_block.contains(a)).collect();
            package.push(c.txid);
            let package_checks: u64 =
                package.iter().map(|t| u64::from(self.nodes[t].entry.sig_checks)).sum();
            if out.sig_checks.saturating_add(package_checks)
                > self.params().max_block_sig_checks as u64
            {
                failures += 1;
                continue;
            }
            failures = 0;
            package.sort_by_key(|t| (self.nodes[t].entry.ancestor_count, self.nodes[t].seq));
            for t in &package {
                let e = &self.nodes[t].entry;
                in_block.insert(*t);
                out.transactions.push(e.tx.clone());
                out.txids.push(*t);
                out.fees = Amount(out.fees.0.saturating_add(e.fee.0));
                out.size = out.size.saturating_add(e.size);
                out.sig_checks = out.sig_checks.saturating_add(u64::from(e.sig_checks));
            }
            for t in &package {
                let e = &self.nodes[t].entry;
                for d in self.descendants(t) {
                    if in_block.contains(&d) {
                        continue;
                    }
                    let de = &self.nodes[&d].entry;
                    let m = modified.entry(d).or_insert((de.ancestor_fees.0, de.ancestor_size));
                    m.0 = m.0.saturating_sub(e.fee.0);
                    m.1 = m.1.saturating_sub(e.size);
                    heap.push(Candidate { fees: m.0, size: m.1, txid: d });
                }
            }
        }
        out
    }
}
