//! Merkle roots over Keccak-256d, Bitcoin's algorithm.
//!
//! A node is `keccak256d(left || right)`. A level with an odd number of nodes duplicates its last
//! node. One leaf is its own root; no leaves give the all-zero hash.
//!
//! Because of the duplication, `[a, b, c]` and `[a, b, c, c]` have the same root
//! (CVE-2012-2459). [`merkle_root`] reports such a mutation exactly as Bitcoin Core's
//! `ComputeMerkleRoot` does: `mutated` is set if, at any level, two sibling nodes are equal.
//! A block whose transaction list is mutated must be rejected without marking its id invalid.

use crate::hash::Hash256;

/// The parent of two nodes: Keccak-256d of their 64-byte concatenation.
pub fn merkle_node(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(&left.0);
    buf[32..].copy_from_slice(&right.0);
    Hash256(rnet_crypto::keccak256d(&buf))
}

/// The merkle root of `leaves` and whether the list is mutated (two equal siblings at some level).
pub fn merkle_root(leaves: &[Hash256]) -> (Hash256, bool) {
    let mut level: Vec<Hash256> = leaves.to_vec();
    let mut mutated = false;
    while level.len() > 1 {
        for pair in level.chunks_exact(2) {
            if pair[0] == pair[1] {
                mutated = true;
            }
        }
        if level.len() % 2 == 1 {
            let last = level[level.len() - 1];
            level.push(last);
        }
        level = level.chunks_exact(2).map(|p| merkle_node(&p[0], &p[1])).collect();
    }
    (level.first().copied().unwrap_or(Hash256::ZERO), mutated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rnet_crypto::keccak256d;

    fn leaf(i: u8) -> Hash256 {
        Hash256([i; 32])
    }

    /// keccak256d(a || b), computed independently of `merkle_node`.
    fn h(a: &Hash256, b: &Hash256) -> Hash256 {
        let mut v = a.0.to_vec();
        v.extend_from_slice(&b.0);
        Hash256(keccak256d(&v))
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(merkle_root(&[]), (Hash256::ZERO, false));
        assert_eq!(merkle_root(&[leaf(7)]), (leaf(7), false));
    }

    #[test]
    fn small_trees_by_hand() {
        let (a, b, c, d, e) = (leaf(1), leaf(2), leaf(3), leaf(4), leaf(5));
        assert_eq!(merkle_root(&[a, b]), (h(&a, &b), false));
        // Odd level: c is paired with itself.
        let abc = h(&h(&a, &b), &h(&c, &c));
        assert_eq!(merkle_root(&[a, b, c]), (abc, false));
        let abcd = h(&h(&a, &b), &h(&c, &d));
        assert_eq!(merkle_root(&[a, b, c, d]), (abcd, false));
        // Five leaves: e is duplicated at level 0, then (ee) at level 1.
        let ee = h(&e, &e);
        let abcde = h(&abcd, &h(&ee, &ee));
        assert_eq!(merkle_root(&[a, b, c, d, e]), (abcde, false));
    }

    #[test]
    fn detects_duplicate_last_leaf_mutation() {
        let (a, b, c) = (leaf(1), leaf(2), leaf(3));
        let (root, mutated) = merkle_root(&[a, b, c]);
        assert!(!mutated);
        assert_eq!(merkle_root(&[a, b, c, c]), (root, true));
    }

    #[test]
    fn detects_duplicate_subtree_mutation() {
        let l: Vec<Hash256> = (1..=6).map(leaf).collect();
        let (root, mutated) = merkle_root(&l);
        assert!(!mutated);
        // Six leaves: level 1 has 3 nodes, its last one duplicated; appending the last two
        // leaves again reproduces that duplication one level lower.
        let mut m = l.clone();
        m.extend_from_slice(&l[4..6]);
        assert_eq!(merkle_root(&m), (root, true));
    }

    #[test]
    fn equal_siblings_anywhere_count_as_mutated() {
        // Like Bitcoin Core: any equal pair at even position is flagged, not only the last.
        let (a, b) = (leaf(1), leaf(2));
        assert!(merkle_root(&[a, a, b, b]).1);
        assert!(merkle_root(&[a, b, a, b]).1); // (ab) == (ab) at level 1
        assert!(!merkle_root(&[b, a, a, b]).1);
    }

    proptest! {
        #[test]
        fn appending_a_copy_of_an_odd_tail_is_mutated(n in 1usize..40) {
            let l: Vec<Hash256> = (0..n).map(|i| Hash256([i as u8 + 1; 32])).collect();
            let (root, mutated) = merkle_root(&l);
            prop_assert!(!mutated);
            if n % 2 == 1 && n > 1 {
                let mut m = l.clone();
                m.push(l[n - 1]);
                prop_assert_eq!(merkle_root(&m), (root, true));
            }
        }
    }
}
