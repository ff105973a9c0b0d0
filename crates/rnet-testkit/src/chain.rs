//! [`MemoryChain`]: an in-memory chainstate (one branch) that runs every consensus stage on
//! submitted blocks and applies their effects and the expiry sweep the way a real chainstate
//! must, with undo for disconnecting the tip.

use std::collections::{BTreeSet, HashMap};

use rnet_consensus::{
    BlockEffects, BlockError, ChainParams, Coin, HeaderChain, HeaderSummary, ModelData, UtxoView,
    expiry_threshold, validate_block,
};
use rnet_model::Checkpoint;
use rnet_primitives::{Amount, Block, OutPoint, Transaction};

use crate::miner::{BlockTemplate, MineError, MinedBlock, TestMiner};

/// What connecting one block did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connected {
    /// The new tip's summary (after expiry).
    pub summary: HeaderSummary,
    /// The block's effects as validation returned them.
    pub effects: BlockEffects,
    /// The coins that expired when the block became the tip.
    pub expired: Vec<(OutPoint, Coin)>,
}

/// Undo data of one connected block.
#[derive(Clone, Debug)]
struct Undo {
    effects: BlockEffects,
    expired: Vec<(OutPoint, Coin)>,
}

/// Why a block could not be added.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Consensus rejected it.
    #[error(transparent)]
    Invalid(#[from] BlockError),
    /// The checkpoint bytes passed validation but do not parse (cannot happen).
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] rnet_model::CheckpointError),
    /// Mining failed.
    #[error(transparent)]
    Mine(#[from] MineError),
}

/// One branch of blocks in memory with its UTXO set, an expiry index ordered by creation loss
/// (so a sweep costs O(expired)), the expired coins (so a spend of one is reported as such), the
/// checkpoints and undo data.
#[derive(Clone, Debug)]
pub struct MemoryChain {
    params: ChainParams,
    summaries: Vec<HeaderSummary>,
    blocks: Vec<Block>,
    checkpoints: Vec<Checkpoint>,
    utxos: HashMap<OutPoint, Coin>,
    by_loss: BTreeSet<(u64, OutPoint)>,
    expired: HashMap<OutPoint, Coin>,
    undo: Vec<Undo>,
}

impl MemoryChain {
    /// A chain holding only the genesis block of `params`.
    pub fn new(params: ChainParams) -> Self {
        let genesis = params.genesis_block();
        let summary = params.genesis_summary();
        let checkpoint = params.genesis_checkpoint();
        Self {
            params,
            summaries: vec![summary],
            blocks: vec![genesis],
            checkpoints: vec![checkpoint],
            utxos: HashMap::new(),
            by_loss: BTreeSet::new(),
            expired: HashMap::new(),
            undo: Vec::new(),
        }
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Height of the tip.
    pub fn height(&self) -> u32 {
        (self.summaries.len() - 1) as u32
    }

    /// Summary of the block at `height`.
    pub fn summary(&self, height: u32) -> Option<&HeaderSummary> {
        self.summaries.get(height as usize)
    }

    /// The block at `height`.
    pub fn block(&self, height: u32) -> Option<&Block> {
        self.blocks.get(height as usize)
    }

    /// The checkpoint of the block at `height`.
    pub fn checkpoint(&self, height: u32) -> Option<&Checkpoint> {
        self.checkpoints.get(height as usize)
    }

    /// The tip's checkpoint (what the next block trains from).
    pub fn tip_checkpoint(&self) -> &Checkpoint {
        &self.checkpoints[self.checkpoints.len() - 1]
    }

    /// The UTXO set.
    pub fn utxo_set(&self) -> &HashMap<OutPoint, Coin> {
        &self.utxos
    }

    /// Unspent coins paying `script_pubkey`, ordered by (height, outpoint).
    pub fn coins_paying(&self, script_pubkey: &[u8]) -> Vec<(OutPoint, Coin)> {
        let mut v: Vec<_> = self
            .utxos
            .iter()
            .filter(|(_, c)| c.output.script_pubkey == script_pubkey)
            .map(|(o, c)| (*o, c.clone()))
            .collect();
        v.sort_by_key(|(o, c)| (c.height, *o));
        v
    }

    /// Value of every coin in the UTXO set (must equal the tip's `circulating_supply`).
    pub fn utxo_value(&self) -> Amount {
        Amount(self.utxos.values().map(|c| c.output.value.0).sum())
    }

    /// Validates `block` with all four consensus stages at clock `now` and connects it.
    pub fn submit_at(
        &mut self,
        block: &Block,
        update_bytes: &[u8],
        now: u64,
    ) -> Result<Connected, SubmitError> {
        let parent = self.tip_checkpoint().to_bytes();
        let model = ModelData { parent_checkpoint: &parent, update: update_bytes };
        let (summary, effects, checkpoint) =
            validate_block(&self.params, block, model, &*self, &*self, now)?;
        Ok(self.apply(block.clone(), checkpoint, summary, effects))
    }

    /// [`MemoryChain::submit_at`] with the clock at the block's own time.
    pub fn submit(&mut self, mined: &MinedBlock) -> Result<Connected, SubmitError> {
        self.submit_at(&mined.block, &mined.update_bytes, mined.block.header.time)
    }

    /// Applies a validated block the way a chainstate must: remove the spent coins, add the
    /// created ones, then expire every coin with
    /// `creation_loss_index ≥ expiry_threshold(new loss index)` (a range of the index ordered by
    /// creation loss index) and subtract their value from the summary.
    pub fn apply(
        &mut self,
        block: Block,
        checkpoint: Checkpoint,
        mut summary: HeaderSummary,
        effects: BlockEffects,
    ) -> Connected {
        for (outpoint, coin) in &effects.spent {
            self.utxos.remove(outpoint);
            self.by_loss.remove(&(coin.creation_loss_index, *outpoint));
        }
        for (outpoint, coin) in &effects.created {
            self.by_loss.insert((coin.creation_loss_index, *outpoint));
            self.utxos.insert(*outpoint, coin.clone());
        }
        let threshold = expiry_threshold(&self.params, summary.loss_index);
        let doomed: Vec<(u64, OutPoint)> =
            self.by_loss.range((threshold, OutPoint::default())..).copied().collect();
        let mut expired = Vec::with_capacity(doomed.len());
        for key in doomed {
            self.by_loss.remove(&key);
            if let Some(coin) = self.utxos.remove(&key.1) {
                self.expired.insert(key.1, coin.clone());
                expired.push((key.1, coin));
            }
        }
        let expired_value = Amount(expired.iter().map(|(_, c)| c.output.value.0).sum());
        summary.apply_expiry(expired_value).expect("expired coins are part of the supply");
        self.summaries.push(summary.clone());
        self.blocks.push(block);
        self.checkpoints.push(checkpoint);
        self.undo.push(Undo { effects: effects.clone(), expired: expired.clone() });
        Connected { summary, effects, expired }
    }

    /// Disconnects the tip (not genesis): restores expired and spent coins, removes created ones.
    /// Returns the disconnected block.
    pub fn disconnect_tip(&mut self) -> Option<Block> {
        if self.summaries.len() <= 1 {
            return None;
        }
        let undo = self.undo.pop()?;
        for (outpoint, coin) in undo.expired {
            self.expired.remove(&outpoint);
            self.by_loss.insert((coin.creation_loss_index, outpoint));
            self.utxos.insert(outpoint, coin);
        }
        for (outpoint, coin) in &undo.effects.created {
            self.utxos.remove(outpoint);
            self.by_loss.remove(&(coin.creation_loss_index, *outpoint));
        }
        for (outpoint, coin) in undo.effects.spent {
            self.by_loss.insert((coin.creation_loss_index, outpoint));
            self.utxos.insert(outpoint, coin);
        }
        self.summaries.pop();
        self.checkpoints.pop();
        self.blocks.pop()
    }

    /// A template for the next block from `miner` (see [`TestMiner::template`]).
    pub fn template(
        &self,
        miner: &TestMiner,
        txs: Vec<Transaction>,
        payout: Vec<u8>,
        time: Option<u64>,
        min_improvement: Option<u64>,
    ) -> Result<BlockTemplate, MineError> {
        miner.template(self, self, self.tip_checkpoint(), txs, payout, time, min_improvement)
    }

    /// Mines the next block with `miner` (including `txs`, paying the coinbase to `payout`) and
    /// submits it.
    pub fn mine(
        &mut self,
        miner: &TestMiner,
        txs: Vec<Transaction>,
        payout: Vec<u8>,
    ) -> Result<(MinedBlock, Connected), SubmitError> {
        let mined = miner.mine(&*self, &*self, self.tip_checkpoint(), txs, payout)?;
        let connected = self.submit(&mined)?;
        Ok((mined, connected))
    }

    /// Mines `n` empty blocks paying `payout`.
    pub fn mine_empty(
        &mut self,
        miner: &TestMiner,
        n: u32,
        payout: &[u8],
    ) -> Result<Vec<MinedBlock>, SubmitError> {
        (0..n).map(|_| self.mine(miner, Vec::new(), payout.to_vec()).map(|(m, _)| m)).collect()
    }
}

impl HeaderChain for MemoryChain {
    fn ancestor(&self, height: u32) -> Option<HeaderSummary> {
        self.summaries.get(height as usize).cloned()
    }

    fn tip(&self) -> HeaderSummary {
        self.summaries[self.summaries.len() - 1].clone()
    }
}

impl UtxoView for MemoryChain {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        self.utxos.get(outpoint).cloned()
    }

    fn is_expired(&self, outpoint: &OutPoint) -> bool {
        self.expired.contains_key(outpoint)
    }
}
