//! Memory-use estimates in the manner of Bitcoin Core's `memusage.h` (`DynamicMemoryUsage`):
//! heap allocations rounded up as a 64-bit `malloc` rounds them, plus the amortised cost of the
//! index entries that hold them. What the pool's size limit and the orphan limit count, so that
//! bookkeeping, not just serialized bytes, is paid for.

use std::mem::size_of;

use rnet_primitives::Transaction;

/// Bytes a 64-bit `malloc` really uses for a request of `alloc` bytes (Core's `MallocUsage`):
/// one 8-byte header, rounded up to 16 bytes; 0 for no allocation.
pub(crate) const fn malloc_usage(alloc: usize) -> usize {
    if alloc == 0 { 0 } else { (alloc.saturating_add(31) >> 4) << 4 }
}

/// Heap bytes of a `Vec<T>` buffer of `capacity` elements (not its inline 24 bytes).
pub(crate) const fn vec_usage<T>(capacity: usize) -> usize {
    malloc_usage(capacity.saturating_mul(size_of::<T>()))
}

/// Amortised bytes of one entry of a `HashMap<K, V>` (hashbrown): a bucket of `K + V` plus one
/// control byte, with at most 7/8 of the buckets used and the bucket count a power of two, so
/// between 8/7 and 16/7 buckets per entry; counted as 2.
pub(crate) const fn hash_entry<K, V>() -> usize {
    2 * (size_of::<K>() + size_of::<V>() + 1)
}

/// Amortised bytes of one entry of a `BTreeMap<K, V>` / `BTreeSet<K>` (`V = ()`): leaf nodes of
/// 11 slots at least half full, plus the internal nodes above them; counted as 3/2 of the slot
/// plus 8 bytes of node header and parent links.
pub(crate) const fn btree_entry<K, V>() -> usize {
    (size_of::<K>() + size_of::<V>()) * 3 / 2 + 8
}

/// Heap bytes of a transaction's allocations: the input and output arrays, each `script_sig`,
/// each witness stack and its items, each `script_pubkey` (capacities, malloc-rounded).
pub(crate) fn tx_heap_usage(tx: &Transaction) -> usize {
    let mut total = vec_usage::<rnet_primitives::TxIn>(tx.inputs.capacity())
        + vec_usage::<rnet_primitives::TxOut>(tx.outputs.capacity());
    for input in &tx.inputs {
        total += malloc_usage(input.script_sig.capacity());
        total += vec_usage::<Vec<u8>>(input.witness.0.capacity());
        total += input.witness.0.iter().map(|item| malloc_usage(item.capacity())).sum::<usize>();
    }
    total + tx.outputs.iter().map(|o| malloc_usage(o.script_pubkey.capacity())).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_primitives::{Amount, OutPoint, TxIn, TxOut, Txid, Witness};

    #[test]
    fn malloc_rounding() {
        assert_eq!(malloc_usage(0), 0);
        assert_eq!(malloc_usage(1), 32);
        assert_eq!(malloc_usage(16), 32);
        assert_eq!(malloc_usage(17), 48);
        assert_eq!(malloc_usage(usize::MAX), usize::MAX >> 4 << 4);
    }

    #[test]
    fn tx_usage_covers_every_allocation() {
        let input = TxIn {
            previous_output: OutPoint::new(Txid([1; 32]), 0),
            script_sig: Vec::new(),
            sequence: 0,
            witness: Witness(vec![vec![0; 64], vec![0; 100]]),
        };
        let output = TxOut { value: Amount(1), script_pubkey: vec![0; 34] };
        let tx = Transaction {
            version: 2,
            inputs: vec![input],
            outputs: vec![output.clone(), output],
            lock_time: 0,
        };
        let expected = malloc_usage(size_of::<TxIn>())
            + malloc_usage(2 * size_of::<TxOut>())
            + malloc_usage(2 * size_of::<Vec<u8>>())
            + malloc_usage(64)
            + malloc_usage(100)
            + 2 * malloc_usage(34);
        assert_eq!(tx_heap_usage(&tx), expected);
        assert!(tx_heap_usage(&tx) > tx.total_size());
    }
}
