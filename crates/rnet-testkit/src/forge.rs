//! [`ForgedChain`]: blocks whose headers, samples, coinbases and signatures are valid on any
//! network but whose training claims are never backed by a model: the losses only just meet the
//! requirement, and the model commitments are placeholders except where the caller supplies a
//! checkpoint. No training or evaluation runs, so a test can build thousands of mainnet- or
//! testnet-shaped blocks in seconds.
//!
//! A long chain runs the loss down: past a tenth of the genesis loss, a block's claimed parent
//! loss restarts at the genesis loss instead of being its parent's (again unbacked).
//!
//! Such blocks are what a node accepts under `-assumevalid` (docs/protocol.md Part V §7.1–7.2):
//! ancestors of the assumed-valid block skip Proof-of-Training and need no model data, and the
//! assumed-valid block needs only its whole checkpoint, checked against the committed root. A
//! node without `-assumevalid` refuses them (it cannot fetch models that were never made).
//!
//! Because each block only just passes, the stagnation count rises every block, so the schedule
//! grows the model fast (docs/protocol.md Part III §7): a testnet chain reaches a checkpoint of
//! several hundred MB near height 1,000.

use rnet_consensus::{
    BLOCK_VERSION, ChainParams, HeaderChain, HeaderSummary, block_subsidy, build_sample,
    effective_required_improvement, median_time_past, next_block_shape, summarize_header,
};
use rnet_crypto::SigningKey;
use rnet_model::checkpoint::CHUNK_SIZE;
use rnet_primitives::{Amount, Block, BlockHeader, Hash256, ModelShape};

use crate::miner::{checkpoint_root, coinbase, sign_header};

/// Why a block could not be forged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForgeError {
    /// The scheduled shape has no valid model config.
    #[error("no checkpoint size for shape {0}×{1}")]
    NoShape(u32, u32),
    /// The supplied checkpoint does not have the scheduled size.
    #[error("checkpoint of {got} bytes where the scheduled shape needs {expected}")]
    CheckpointSize {
        /// The size of the scheduled shape.
        expected: u64,
        /// The size supplied.
        got: u64,
    },
    /// The parent loss is too low to improve by the requirement.
    #[error("the loss cannot fall by the requirement any more")]
    LossExhausted,
    /// The sample cannot be drawn (the parameters' corpus is not the bundled one).
    #[error("the evaluation sample cannot be drawn")]
    Sample,
}

/// A branch of forged blocks from genesis (see the module documentation).
#[derive(Clone, Debug)]
pub struct ForgedChain {
    params: ChainParams,
    key: SigningKey,
    summaries: Vec<HeaderSummary>,
    blocks: Vec<Block>,
}

impl ForgedChain {
    /// A chain holding only `params`' genesis block; blocks are signed with `key`.
    pub fn new(params: ChainParams, key: SigningKey) -> Self {
        let genesis = params.genesis_block();
        let summary = params.genesis_summary();
        Self { params, key, summaries: vec![summary], blocks: vec![genesis] }
    }

    /// The chain's parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The blocks, genesis first.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The shape and checkpoint size the next block must have.
    pub fn next_shape(&self) -> Result<(ModelShape, u64), ForgeError> {
        let (d, l) = next_block_shape(&self.params, &self.tip());
        let size = self.params.checkpoint_size(d, l).ok_or(ForgeError::NoShape(d, l))?;
        Ok((ModelShape { d_model: d, n_layers: l }, size))
    }

    /// Forges the next block, 10 minutes after its parent, paying the full subsidy to `payout`.
    /// Its header commits to `checkpoint` (which must have the scheduled size) or, if `None`,
    /// to a placeholder root; the update commitment is always a placeholder of the smallest
    /// valid size.
    pub fn forge(
        &mut self,
        checkpoint: Option<&[u8]>,
        payout: &[u8],
    ) -> Result<&Block, ForgeError> {
        let parent = self.tip();
        let height = parent.height + 1;
        let time = parent
            .time
            .saturating_add(self.params.target_spacing_secs)
            .max(median_time_past(self, parent.height) + 1);
        let required = effective_required_improvement(&self.params, self, time);
        let (shape, size) = self.next_shape()?;
        let checkpoint_root = match checkpoint {
            Some(bytes) if bytes.len() as u64 != size => {
                return Err(ForgeError::CheckpointSize { expected: size, got: bytes.len() as u64 });
            }
            Some(bytes) => Hash256(checkpoint_root(bytes)),
            None => Hash256(rnet_crypto::keccak256(
                &[b"forged-checkpoint".as_slice(), &height.to_le_bytes()].concat(),
            )),
        };
        // Each block claims to improve on its parent by exactly the requirement. Once the loss
        // would fall below the genesis loss's tenth, the claimed parent loss restarts at the
        // genesis loss: no longer the parent's, which only Proof-of-Training would notice.
        let floor = self.params.genesis_val_loss / 10;
        let parent_loss = match parent.val_loss.checked_sub(required) {
            Some(v) if v >= floor => parent.val_loss,
            _ => self.params.genesis_val_loss,
        };
        let val_loss = parent_loss.checked_sub(required).ok_or(ForgeError::LossExhausted)?;
        let kernels = self.params.genesis_model.kernel_sizes.len();
        let mut header = BlockHeader {
            version: BLOCK_VERSION,
            prev_block_hash: parent.hash,
            merkle_root: Hash256::ZERO,
            time,
            height,
            shape,
            checkpoint_root,
            checkpoint_size: size,
            update_root: Hash256(rnet_crypto::keccak256(&height.to_be_bytes())),
            update_size: rnet_model::update::header_len(kernels) as u64,
            parent_loss,
            val_loss,
            required_improvement: required,
            training_steps: 0,
            dataset_commitment: Hash256(rnet_model::data::CORPUS_HASH),
            miner_pubkey: self.key.public_key().to_bytes(),
            signature: [0; 64],
        };
        let sample = build_sample(&self.params, &header).ok_or(ForgeError::Sample)?;
        let subsidy = block_subsidy(&self.params, parent.circulating_supply, required, required);
        let coinbase = coinbase(&self.params, height, subsidy, payout.to_vec());
        let mut block = Block { header: header.clone(), transactions: vec![coinbase], sample };
        header.merkle_root = block.compute_merkle_root().0;
        sign_header(&mut header, &self.key);
        block.header = header;
        let mut summary = summarize_header(&self.params, &block.header, self);
        summary.circulating_supply = Amount(parent.circulating_supply.0.saturating_add(subsidy.0));
        self.summaries.push(summary);
        self.blocks.push(block);
        Ok(self.blocks.last().expect("just pushed"))
    }

    /// Chunks of a checkpoint of `size` bytes (for progress arithmetic in tests).
    pub fn chunks(size: u64) -> u64 {
        size.div_ceil(CHUNK_SIZE as u64)
    }
}

impl HeaderChain for ForgedChain {
    fn ancestor(&self, height: u32) -> Option<HeaderSummary> {
        self.summaries.get(height as usize).cloned()
    }

    fn tip(&self) -> HeaderSummary {
        self.summaries[self.summaries.len() - 1].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryChain;
    use crate::tx::{plain_spk, test_key};
    use rnet_consensus::{check_block, check_header_context};

    /// Forged blocks pass every check except the training claims: the context-free block
    /// checks and the contextual header checks of a real chain state, block after block.
    #[test]
    fn forged_blocks_pass_the_header_and_block_checks() {
        let params = ChainParams::testnet();
        let mut forged = ForgedChain::new(params.clone(), test_key(7));
        let memory = MemoryChain::new(params.clone());
        assert_eq!(forged.tip(), memory.tip());
        for _ in 0..30 {
            let block = forged.forge(None, &plain_spk(&test_key(8))).unwrap().clone();
            check_block(&params, &block).unwrap();
            // The header checks against the forged chain up to the parent.
            let mut upto = forged.clone();
            upto.summaries.pop();
            check_header_context(&params, &block.header, &upto, block.header.time).unwrap();
        }
        // The stagnation count rises every block.
        assert_eq!(forged.tip().stagnation, 30);
        // A supplied checkpoint must have the scheduled size.
        let (_, size) = forged.next_shape().unwrap();
        let e = forged.forge(Some(&[0u8; 10]), &[]).unwrap_err();
        assert_eq!(e, ForgeError::CheckpointSize { expected: size, got: 10 });
    }
}
