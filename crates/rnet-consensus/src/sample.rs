//! The evaluation sample of Proof-of-Training v2 (`docs/protocol.md` Part V §3.3).
//!
//! The corpus (everything before the benchmark slice) is cut into `R` records of `T + 1` bytes
//! (`rnet_model::data::record`). Their leaves, Keccak-256d of each record, form a merkle tree
//! (Part II §6) whose root every network pins as `corpus_root`.
//!
//! A block's sample is drawn *after* its weights are fixed: the seed hashes the parent id, the
//! checkpoint root and the miner key, and `K` distinct record indices follow from it
//! ([`draw_sample`]). The block carries those records with their branches
//! ([`rnet_primitives::EvalSample`]), so validators never read the corpus; they only check the
//! records against `corpus_root` ([`check_sample`]). Miners build the tree once
//! ([`CorpusTree`]) and cut samples from it ([`build_sample`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use rnet_crypto::keccak256d;
use rnet_primitives::{
    BlockHash, BlockHeader, EvalSample, Hash256, MerkleTree, SampleRecord, merkle_root_from_branch,
};

use crate::error::BlockError;
use crate::params::ChainParams;

/// Domain tag of the sample seed.
pub const SAMPLE_TAG: &[u8; 14] = b"RNET/sample/v1";

/// `seed = Keccak-256d("RNET/sample/v1" ‖ prev_block_hash ‖ checkpoint_root ‖ miner_pubkey)`.
pub fn sample_seed(
    prev_block_hash: &BlockHash,
    checkpoint_root: &Hash256,
    miner_pubkey: &[u8; 32],
) -> [u8; 32] {
    let mut buf = Vec::with_capacity(SAMPLE_TAG.len() + 96);
    buf.extend_from_slice(SAMPLE_TAG);
    buf.extend_from_slice(prev_block_hash.as_bytes());
    buf.extend_from_slice(&checkpoint_root.0);
    buf.extend_from_slice(miner_pubkey);
    keccak256d(&buf)
}

/// The `k` distinct record indices drawn from `seed` among `record_count`, ascending: for
/// `j = 0, 1, 2, …`, `x_j` = the little-endian u64 of the first 8 bytes of
/// `Keccak-256d(seed ‖ u32_le(j))` and `r_j = x_j mod R`; repeats are skipped until `k` are
/// distinct. Asks for at most `R` indices (fewer records than that cannot be drawn).
pub fn draw_sample(seed: &[u8; 32], record_count: u64, k: usize) -> Vec<u64> {
    let k = k.min(usize::try_from(record_count).unwrap_or(usize::MAX));
    let mut drawn = BTreeSet::new();
    let mut buf = [0u8; 36];
    buf[..32].copy_from_slice(seed);
    let mut j: u32 = 0;
    while drawn.len() < k {
        buf[32..].copy_from_slice(&j.to_le_bytes());
        let h = keccak256d(&buf);
        let mut x = [0u8; 8];
        x.copy_from_slice(&h[..8]);
        drawn.insert(u64::from_le_bytes(x) % record_count);
        // With k ≤ R the loop ends with probability 1; j cannot realistically wrap.
        j = j.wrapping_add(1);
    }
    drawn.into_iter().collect()
}

/// The record indices `header`'s sample must hold on `params`' network.
pub fn sample_indices(params: &ChainParams, header: &BlockHeader) -> Vec<u64> {
    let seed = sample_seed(&header.prev_block_hash, &header.checkpoint_root, &header.miner_pubkey);
    draw_sample(&seed, params.corpus_records, params.sample_records)
}

/// The leaf of a record: Keccak-256d of its bytes.
pub fn record_leaf(bytes: &[u8]) -> Hash256 {
    Hash256(keccak256d(bytes))
}

/// The merkle tree over every corpus record of one window length (miners only; validators use
/// the branches a block carries).
#[derive(Debug)]
pub struct CorpusTree {
    window: usize,
    tree: MerkleTree,
}

impl CorpusTree {
    /// Builds the tree for window `T` (hashes the whole corpus: tens of milliseconds).
    pub fn build(window: usize) -> Option<Self> {
        let count = rnet_model::data::record_count(window);
        let leaves = (0..count)
            .map(|r| rnet_model::data::record(window, r).map(record_leaf))
            .collect::<Option<Vec<_>>>()?;
        Some(Self { window, tree: MerkleTree::new(leaves)? })
    }

    /// The tree for window `T`, built once per process and shared.
    pub fn shared(window: usize) -> Option<Arc<CorpusTree>> {
        static TREES: OnceLock<Mutex<HashMap<usize, Arc<CorpusTree>>>> = OnceLock::new();
        let trees = TREES.get_or_init(|| Mutex::new(HashMap::new()));
        let mut trees = trees.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = trees.get(&window) {
            return Some(Arc::clone(t));
        }
        let tree = Arc::new(CorpusTree::build(window)?);
        trees.insert(window, Arc::clone(&tree));
        Some(tree)
    }

    /// `corpus_root`.
    pub fn root(&self) -> Hash256 {
        self.tree.root()
    }

    /// Number of records `R`.
    pub fn record_count(&self) -> u64 {
        self.tree.leaf_count() as u64
    }

    /// Record `index` with its branch.
    pub fn record(&self, index: u64) -> Option<SampleRecord> {
        let bytes = rnet_model::data::record(self.window, index)?.to_vec();
        let proof = self.tree.branch(usize::try_from(index).ok()?)?;
        Some(SampleRecord { index: u32::try_from(index).ok()?, bytes, proof })
    }
}

/// The sample a block with `header` must carry (miners: call after the checkpoint root is fixed).
/// `None` only if the network's corpus tree cannot be built (a parameter bug).
pub fn build_sample(params: &ChainParams, header: &BlockHeader) -> Option<EvalSample> {
    let tree = CorpusTree::shared(params.genesis_model.window)?;
    let records = sample_indices(params, header)
        .into_iter()
        .map(|i| tree.record(i))
        .collect::<Option<Vec<_>>>()?;
    Some(EvalSample { records })
}

/// What a miner learns once its weights are fixed: the sample its header draws and both losses
/// on it, exactly as validators will compute them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleEvaluation {
    /// The records (with branches) the block must carry.
    pub sample: EvalSample,
    /// The parent checkpoint's loss on the sample (the header's `parent_loss`).
    pub parent_loss: u64,
    /// The candidate checkpoint's loss on the sample (the header's `val_loss`).
    pub val_loss: u64,
}

impl SampleEvaluation {
    /// `parent_loss − val_loss` (0 when the candidate is worse).
    pub fn improvement(&self) -> u64 {
        self.parent_loss.saturating_sub(self.val_loss)
    }
}

/// Why a candidate could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum CandidateError {
    /// The network's corpus tree could not be built (a parameter bug).
    #[error("the corpus tree of window {0} cannot be built")]
    Corpus(usize),
    /// A model failed to evaluate (non-finite loss).
    #[error(transparent)]
    Eval(#[from] rnet_model::EvalError),
}

/// Draws the sample for `header` (whose `prev_block_hash`, `checkpoint_root` and `miner_pubkey`
/// must be final) and evaluates `parent` and `candidate` on it: the miner's side of
/// Proof-of-Training.
pub fn evaluate_candidate(
    params: &ChainParams,
    header: &BlockHeader,
    parent: &rnet_model::Model,
    candidate: &rnet_model::Model,
) -> Result<SampleEvaluation, CandidateError> {
    let window = params.genesis_model.window;
    let sample = build_sample(params, header).ok_or(CandidateError::Corpus(window))?;
    let windows: Vec<&[u8]> = sample.records.iter().map(|r| r.bytes.as_slice()).collect();
    let val_loss = rnet_model::evaluate_windows(candidate, &windows)?.val_loss_micronats;
    let parent_loss = rnet_model::evaluate_windows(parent, &windows)?.val_loss_micronats;
    Ok(SampleEvaluation { sample, parent_loss, val_loss })
}

/// Checks `sample` against `header` and returns the evaluation windows in order. In this order:
/// the indices strictly ascending over the whole sample (`SampleOutOfOrder` at the first record
/// not above its predecessor); then record by record: no more than `K` (`SampleExtraRecord`);
/// each index drawn for this header (`SampleRecordNotDrawn`) and at its place, i.e. no drawn
/// index skipped (`SampleRecordMissing`); `T + 1` bytes (`SampleRecordLength`); a branch proving
/// the record at its index under `corpus_root` (`SampleBadProof`); finally all `K` present
/// (`SampleRecordMissing`).
///
/// Every failure is a data mismatch: the block id does not commit to the sample.
pub fn check_sample<'a>(
    params: &ChainParams,
    header: &BlockHeader,
    sample: &'a EvalSample,
) -> Result<Vec<&'a [u8]>, BlockError> {
    if let Some(pair) = sample.records.windows(2).find(|w| w[1].index <= w[0].index) {
        return Err(BlockError::SampleOutOfOrder { index: pair[1].index });
    }
    let drawn = sample_indices(params, header);
    let record_len = params.genesis_model.window + 1;
    let mut windows = Vec::with_capacity(drawn.len());
    for (position, record) in sample.records.iter().enumerate() {
        let index = record.index;
        let Some(&expected) = drawn.get(position) else {
            return Err(BlockError::SampleExtraRecord { index });
        };
        if u64::from(index) != expected {
            return Err(if drawn.binary_search(&u64::from(index)).is_ok() {
                BlockError::SampleRecordMissing { index: expected }
            } else {
                BlockError::SampleRecordNotDrawn { index }
            });
        }
        if record.bytes.len() != record_len {
            return Err(BlockError::SampleRecordLength {
                index,
                len: record.bytes.len(),
                expected: record_len,
            });
        }
        let root = merkle_root_from_branch(
            &record_leaf(&record.bytes),
            u64::from(index),
            &record.proof,
            params.corpus_records,
        );
        if root != Some(params.corpus_root) {
            return Err(BlockError::SampleBadProof { index });
        }
        windows.push(record.bytes.as_slice());
    }
    if let Some(&missing) = drawn.get(sample.records.len()) {
        return Err(BlockError::SampleRecordMissing { index: missing });
    }
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_layout_is_the_spec() {
        let prev = BlockHash([1; 32]);
        let root = Hash256([2; 32]);
        let key = [3u8; 32];
        let mut msg = b"RNET/sample/v1".to_vec();
        msg.extend([1u8; 32]);
        msg.extend([2u8; 32]);
        msg.extend([3u8; 32]);
        assert_eq!(sample_seed(&prev, &root, &key), keccak256d(&msg));
        assert_ne!(sample_seed(&prev, &root, &[4; 32]), sample_seed(&prev, &root, &key));
    }

    #[test]
    fn draws_follow_the_spec() {
        let seed = [9u8; 32];
        // Recompute the first draws by hand.
        let mut expected = BTreeSet::new();
        let mut j = 0u32;
        while expected.len() < 5 {
            let mut b = seed.to_vec();
            b.extend(j.to_le_bytes());
            let h = keccak256d(&b);
            expected.insert(u64::from_le_bytes(h[..8].try_into().unwrap()) % 1000);
            j += 1;
        }
        let drawn = draw_sample(&seed, 1000, 5);
        assert_eq!(drawn, expected.into_iter().collect::<Vec<_>>());
        assert!(drawn.windows(2).all(|w| w[0] < w[1]));
        // Small populations: repeats are skipped, and never more than R are drawn.
        let all = draw_sample(&seed, 4, 4);
        assert_eq!(all, vec![0, 1, 2, 3]);
        assert_eq!(draw_sample(&seed, 3, 10), vec![0, 1, 2]);
        assert!(draw_sample(&seed, 0, 10).is_empty());
    }

    #[test]
    fn network_corpus_roots_are_pinned() {
        let nets = [ChainParams::mainnet(), ChainParams::testnet(), ChainParams::regtest()];
        let trees: Vec<_> =
            nets.iter().map(|p| CorpusTree::build(p.genesis_model.window).unwrap()).collect();
        for (p, tree) in nets.iter().zip(&trees) {
            eprintln!("{}: corpus_root {} records {}", p.network, tree.root(), tree.record_count());
        }
        for (p, tree) in nets.iter().zip(&trees) {
            assert_eq!(tree.root(), p.corpus_root, "{}", p.network);
            assert_eq!(tree.record_count(), p.corpus_records, "{}", p.network);
        }
    }
}
