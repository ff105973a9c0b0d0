//! A block's model: the parent's model grown to the block's scheduled shape (with a growth seed
//! fixed by the parent's id), plus the block's update (Part III §5.2 and §8 of
//! `docs/protocol.md`).
//!
//! Blocks above genesis carry a bounded [`ModelUpdate`] instead of a whole checkpoint. The header
//! commits to both the update (`update_root`, `update_size`) and the resulting checkpoint
//! (`checkpoint_root`, `checkpoint_size`); every node derives the checkpoint from the parent's
//! and checks it against the committed root, so a node never has to download a whole model for
//! a block whose parent's model it has.

use rnet_crypto::keccak256;
use rnet_model::checkpoint::{chunk_hashes, merkle_root as checkpoint_merkle_root};
use rnet_model::update_apply::{UpdateLimits, apply_committed};
use rnet_model::{Checkpoint, Model, ModelUpdate, grow};
use rnet_primitives::{BlockHash, BlockHeader};

use crate::error::BlockError;
use crate::params::ChainParams;

/// Domain tag of [`growth_seed`].
pub const GROWTH_SEED_TAG: &[u8] = b"rnet/growth-seed/v1";

/// The seed of the fresh input-side weights of a block's grown parent (Part III §8): the first 8
/// bytes, little-endian, of `Keccak-256(GROWTH_SEED_TAG ‖ parent block id)`. Fixed by the
/// parent, so every node grows the parent to the same bits, and no miner chooses it.
pub fn growth_seed(parent: &BlockHash) -> u64 {
    let mut input = Vec::with_capacity(GROWTH_SEED_TAG.len() + 32);
    input.extend_from_slice(GROWTH_SEED_TAG);
    input.extend_from_slice(parent.as_bytes());
    let digest = keccak256(&input);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The network's bounds on a block's update.
pub fn update_limits(params: &ChainParams) -> UpdateLimits {
    UpdateLimits { max_update_bytes: params.max_update_bytes, max_rank: params.max_rank }
}

/// The grown parent of a block with `header`: `parent_model` itself when the scheduled shape is
/// the parent's (bit for bit), otherwise `grow(parent_model, d, L, growth_seed(prev_block_hash))`.
/// The shape must already have passed the schedule check.
pub fn grown_parent(parent_model: &Model, header: &BlockHeader) -> Result<Model, BlockError> {
    let (d, l) = (header.shape.d_model as usize, header.shape.n_layers as usize);
    let config = parent_model.config();
    if config.d_model == d && config.n_layers == l {
        return Ok(parent_model.clone());
    }
    grow(parent_model, d, l, growth_seed(&header.prev_block_hash))
        .map_err(|e| BlockError::GrowthFailed(e.to_string()))
}

/// Checks `update_bytes` against the header's commitment: present (`MissingUpdate`),
/// `update_size` long (`UpdateSizeMismatch`) and under `update_root` (`UpdateRootMismatch`).
/// These are data mismatches: other bytes for the same header may be right.
pub fn check_update_commitment(
    header: &BlockHeader,
    update_bytes: &[u8],
) -> Result<(), BlockError> {
    if update_bytes.is_empty() {
        return Err(BlockError::MissingUpdate);
    }
    let actual = update_bytes.len() as u64;
    if actual != header.update_size {
        return Err(BlockError::UpdateSizeMismatch { header: header.update_size, actual });
    }
    if checkpoint_merkle_root(&chunk_hashes(update_bytes)) != header.update_root.0 {
        return Err(BlockError::UpdateRootMismatch);
    }
    Ok(())
}

/// The block's checkpoint: decodes `update_bytes` strictly (`InvalidUpdate`), applies it to the
/// grown parent under the network's limits and checks the result's root against
/// `header.checkpoint_root` (`BadUpdate`, one inner variant per rule). The update's commitment
/// must already have passed [`check_update_commitment`].
pub fn derive_checkpoint(
    params: &ChainParams,
    header: &BlockHeader,
    parent_model: &Model,
    update_bytes: &[u8],
) -> Result<Checkpoint, BlockError> {
    let update = ModelUpdate::decode(update_bytes).map_err(BlockError::InvalidUpdate)?;
    let grown = grown_parent(parent_model, header)?;
    apply_committed(
        &grown,
        &update,
        &update_limits(params),
        u64::from(header.height),
        &header.checkpoint_root.0,
    )
    .map_err(BlockError::BadUpdate)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the seed derivation: a change of tag or byte order changes every grown model.
    #[test]
    fn growth_seed_is_pinned() {
        let mut input = GROWTH_SEED_TAG.to_vec();
        input.extend_from_slice(&[7; 32]);
        let digest = keccak256(&input);
        let expected = u64::from_le_bytes(digest[..8].try_into().unwrap());
        assert_eq!(growth_seed(&BlockHash([7; 32])), expected);
        assert_ne!(growth_seed(&BlockHash([7; 32])), growth_seed(&BlockHash([8; 32])));
    }

    #[test]
    fn same_shape_grows_to_the_parent_itself() {
        let params = ChainParams::regtest();
        let parent = params.genesis_checkpoint().model;
        let c = parent.config();
        let mut header = BlockHeader::default();
        header.shape.d_model = c.d_model as u32;
        header.shape.n_layers = c.n_layers as u32;
        let grown = grown_parent(&parent, &header).unwrap();
        assert_eq!(grown.params(), parent.params());
        header.shape.d_model += 2;
        header.prev_block_hash = BlockHash([1; 32]);
        let a = grown_parent(&parent, &header).unwrap();
        let b = grown_parent(&parent, &header).unwrap();
        assert_eq!(a.params(), b.params(), "growth is a function of the parent id");
        header.prev_block_hash = BlockHash([2; 32]);
        let other = grown_parent(&parent, &header).unwrap();
        assert_ne!(a.params(), other.params(), "another parent id seeds other new weights");
    }

    #[test]
    fn update_commitment_is_checked() {
        let bytes = vec![5u8; 100];
        let mut header = BlockHeader {
            update_size: 100,
            update_root: rnet_primitives::Hash256(checkpoint_merkle_root(&chunk_hashes(&bytes))),
            ..BlockHeader::default()
        };
        assert_eq!(check_update_commitment(&header, &bytes), Ok(()));
        assert_eq!(check_update_commitment(&header, &[]), Err(BlockError::MissingUpdate));
        assert_eq!(
            check_update_commitment(&header, &bytes[..99]),
            Err(BlockError::UpdateSizeMismatch { header: 100, actual: 99 })
        );
        header.update_root.0[0] ^= 1;
        assert_eq!(check_update_commitment(&header, &bytes), Err(BlockError::UpdateRootMismatch));
    }
}
