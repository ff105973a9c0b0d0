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

/// Depth of a tree over `leaf_count` leaves: the number of levels above the leaves
/// (`⌈log₂ n⌉`; 0 for one leaf). Every branch of the tree has exactly this many hashes.
pub fn merkle_depth(leaf_count: u64) -> u32 {
    if leaf_count <= 1 { 0 } else { 64 - (leaf_count - 1).leading_zeros() }
}

/// A merkle tree with every level kept, so that branches can be read off (miners build one over
/// the corpus records once and take the sample's branches from it).
#[derive(Clone, Debug)]
pub struct MerkleTree {
    /// `levels[0]` are the leaves, the last level is the root alone.
    levels: Vec<Vec<Hash256>>,
}

impl MerkleTree {
    /// Builds the tree of [`merkle_root`] over `leaves` (at least one).
    pub fn new(leaves: Vec<Hash256>) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let mut levels = vec![leaves];
        while let Some(level) = levels.last().filter(|l| l.len() > 1) {
            let next =
                level.chunks(2).map(|p| merkle_node(&p[0], p.get(1).unwrap_or(&p[0]))).collect();
            levels.push(next);
        }
        Some(Self { levels })
    }

    /// The root.
    pub fn root(&self) -> Hash256 {
        self.levels.last().and_then(|l| l.first()).copied().unwrap_or(Hash256::ZERO)
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> usize {
        self.levels[0].len()
    }

    /// The branch of leaf `index`: its sibling at each level from the leaves up (a node without
    /// a sibling, the last of an odd level, is its own sibling). `None` past the last leaf.
    pub fn branch(&self, index: usize) -> Option<Vec<Hash256>> {
        if index >= self.leaf_count() {
            return None;
        }
        let mut i = index;
        let mut branch = Vec::with_capacity(self.levels.len() - 1);
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            branch.push(*level.get(sibling).unwrap_or(&level[i]));
            i >>= 1;
        }
        Some(branch)
    }
}

/// The root that `leaf` at `index` proves with `branch` in a tree of `leaf_count` leaves, or
/// `None` if the branch is not the canonical one for that position: `index ≥ leaf_count`, the
/// branch length is not [`merkle_depth`]`(leaf_count)`, or a node that is the last of an odd
/// level is given a sibling other than itself. So each (leaf, index) has exactly one branch.
pub fn merkle_root_from_branch(
    leaf: &Hash256,
    index: u64,
    branch: &[Hash256],
    leaf_count: u64,
) -> Option<Hash256> {
    if index >= leaf_count || branch.len() != merkle_depth(leaf_count) as usize {
        return None;
    }
    let mut node = *leaf;
    let mut i = index;
    let mut width = leaf_count;
    for sibling in branch {
        node = if i & 1 == 1 {
            merkle_node(sibling, &node)
        } else {
            if i + 1 == width && *sibling != node {
                return None;
            }
            merkle_node(&node, sibling)
        };
        i >>= 1;
        width = width.div_ceil(2);
    }
    Some(node)
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

    #[test]
    fn depth_of_trees() {
        assert_eq!(merkle_depth(0), 0);
        assert_eq!(merkle_depth(1), 0);
        assert_eq!(merkle_depth(2), 1);
        assert_eq!(merkle_depth(3), 2);
        assert_eq!(merkle_depth(4), 2);
        assert_eq!(merkle_depth(5), 3);
        assert_eq!(merkle_depth(1 << 32), 32);
    }

    #[test]
    fn branches_prove_every_leaf_and_nothing_else() {
        for n in 1..=17usize {
            let leaves: Vec<Hash256> = (0..n).map(|i| leaf(i as u8 + 1)).collect();
            let tree = MerkleTree::new(leaves.clone()).unwrap();
            assert_eq!(tree.root(), merkle_root(&leaves).0);
            assert!(tree.branch(n).is_none());
            for (i, l) in leaves.iter().enumerate() {
                let branch = tree.branch(i).unwrap();
                let count = n as u64;
                assert_eq!(merkle_root_from_branch(l, i as u64, &branch, count), Some(tree.root()));
                // The wrong position, leaf count or length does not verify.
                let other = (i + 1) % n;
                if other != i {
                    assert_ne!(
                        merkle_root_from_branch(l, other as u64, &branch, count),
                        Some(tree.root())
                    );
                }
                assert_eq!(merkle_root_from_branch(l, count, &branch, count), None);
                let mut long = branch.clone();
                long.push(*l);
                assert_eq!(merkle_root_from_branch(l, i as u64, &long, count), None);
                // Any changed sibling changes the root or is refused.
                for k in 0..branch.len() {
                    let mut bad = branch.clone();
                    bad[k].0[0] ^= 1;
                    assert_ne!(
                        merkle_root_from_branch(l, i as u64, &bad, count),
                        Some(tree.root())
                    );
                }
            }
        }
        assert!(MerkleTree::new(Vec::new()).is_none());
    }

    #[test]
    fn the_last_odd_node_must_be_its_own_sibling() {
        let leaves: Vec<Hash256> = (1..=3).map(leaf).collect();
        let tree = MerkleTree::new(leaves.clone()).unwrap();
        let branch = tree.branch(2).unwrap();
        assert_eq!(branch[0], leaves[2]);
        let mut other = branch.clone();
        other[0] = leaf(9);
        assert_eq!(merkle_root_from_branch(&leaves[2], 2, &other, 3), None);
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
