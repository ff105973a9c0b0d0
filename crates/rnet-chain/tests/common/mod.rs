//! Test support: synthetic consensus rules (no model training) and a temporary directory.
//!
//! The synthetic rules keep the *shape* of the real ones — header linkage, time, strictly
//! falling `val_loss`, Proof-of-Training against checkpoint bytes, inputs that must exist, a
//! bounded coinbase, supply = parent + created − spent, the regtest expiry threshold — so the
//! chainstate's storage, fork choice, undo, expiry and crash behaviour can be exercised with
//! hundreds of blocks in milliseconds. A "checkpoint" is 48 bytes whose first 8 are the loss it
//! "evaluates" to. A synthetic block's `parent_loss` is its parent's `val_loss` and its work
//! (`required_improvement`) is its claimed improvement, so a branch's chainwork is the genesis
//! loss minus its tip's loss: most work = lowest tip loss, which keeps fork choice easy to steer.
#![allow(dead_code)]

pub mod counting;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rnet_chain::checkpoints::checkpoint_root;
use rnet_chain::{AcceptOutcome, ChainOptions, ChainRules, ChainState};
use rnet_consensus::{
    BlockEffects, BlockError, ChainParams, Coin, HeaderChain, HeaderSummary, TxError, UtxoView,
};
use rnet_primitives::{
    Amount, Block, BlockHash, BlockHeader, COIN, EvalSample, Hash256, ModelShape, Network,
    OutPoint, Transaction, TxIn, TxOut, Witness,
};

/// Loss of the synthetic genesis block.
pub const GENESIS_LOSS: u64 = 1_000_000;
/// Time of the synthetic genesis block.
pub const GENESIS_TIME: u64 = 1_000_000;
/// A clock far enough after every synthetic block.
pub const NOW: u64 = 2_000_000_000;
/// Largest synthetic coinbase (before fees).
pub const SUBSIDY: u64 = 50 * COIN;

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("rnet-chain-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Synthetic rules (see the module documentation). Counts Proof-of-Training evaluations.
#[derive(Clone, Default)]
pub struct SynthRules {
    pub pot_calls: Arc<AtomicUsize>,
}

impl SynthRules {
    pub fn pot_calls(&self) -> usize {
        self.pot_calls.load(Ordering::SeqCst)
    }
}

/// The synthetic checkpoint of a block: loss ‖ tag ‖ height ‖ 24 filler bytes.
pub fn synth_checkpoint(val_loss: u64, tag: u64, height: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(48);
    b.extend_from_slice(&val_loss.to_le_bytes());
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&u64::from(height).to_le_bytes());
    b.extend_from_slice(&[0xAB; 24]);
    b
}

pub fn coinbase(height: u32, tag: u64, outputs: &[u64]) -> Transaction {
    let mut script_sig = height.to_le_bytes().to_vec();
    script_sig.extend_from_slice(&tag.to_le_bytes());
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            previous_output: OutPoint::NULL,
            script_sig,
            sequence: u32::MAX,
            witness: Witness::new(),
        }],
        outputs: outputs.iter().map(|&v| output(v, tag as u8)).collect(),
        lock_time: 0,
    }
}

pub fn output(value: u64, tag: u8) -> TxOut {
    let mut script_pubkey = vec![0x51, 0x20];
    script_pubkey.extend_from_slice(&[tag; 32]);
    TxOut { value: Amount(value), script_pubkey }
}

pub fn spend(inputs: &[OutPoint], outputs: &[u64]) -> Transaction {
    Transaction {
        version: 1,
        inputs: inputs
            .iter()
            .map(|&previous_output| TxIn {
                previous_output,
                script_sig: vec![],
                sequence: u32::MAX,
                witness: Witness::new(),
            })
            .collect(),
        outputs: outputs.iter().map(|&v| output(v, 7)).collect(),
        lock_time: 0,
    }
}

/// A block on `parent` with the given loss and transactions (coinbase first), and its checkpoint.
pub fn block_on(parent: &BlockHeader, val_loss: u64, tag: u64, txs: Vec<Transaction>) -> Blk {
    let height = parent.height + 1;
    let ckpt = synth_checkpoint(val_loss, tag, height);
    let mut block = Block {
        header: BlockHeader {
            version: 1,
            prev_block_hash: parent.hash(),
            time: parent.time + 600,
            height,
            shape: ModelShape { d_model: 8, n_layers: 1 },
            checkpoint_root: Hash256(checkpoint_root(&ckpt)),
            checkpoint_size: ckpt.len() as u64,
            // The synthetic update is the checkpoint itself (see `check_proof_of_training`).
            update_root: Hash256(checkpoint_root(&ckpt)),
            update_size: ckpt.len() as u64,
            parent_loss: parent.val_loss,
            val_loss,
            required_improvement: parent.val_loss.saturating_sub(val_loss),
            training_steps: tag,
            ..BlockHeader::default()
        },
        transactions: txs,
        ..Block::default()
    };
    block.header.merkle_root = block.compute_merkle_root().0;
    Blk { block, ckpt }
}

/// A block paying `outputs` from its coinbase, nothing else.
pub fn simple(parent: &BlockHeader, val_loss: u64, tag: u64, outputs: &[u64]) -> Blk {
    block_on(parent, val_loss, tag, vec![coinbase(parent.height + 1, tag, outputs)])
}

/// A block and its checkpoint.
#[derive(Clone, Debug)]
pub struct Blk {
    pub block: Block,
    pub ckpt: Vec<u8>,
}

impl Blk {
    pub fn hash(&self) -> BlockHash {
        self.block.block_hash()
    }
    pub fn header(&self) -> &BlockHeader {
        &self.block.header
    }
    /// Outpoint `vout` of transaction `tx`.
    pub fn out(&self, tx: usize, vout: u32) -> OutPoint {
        OutPoint::new(self.block.transactions[tx].txid(), vout)
    }
}

pub fn genesis() -> Blk {
    let ckpt = synth_checkpoint(GENESIS_LOSS, 0, 0);
    let mut cb = coinbase(0, 0, &[0]);
    cb.outputs[0].script_pubkey = vec![0x6a, 1, 0];
    let mut block = Block {
        header: BlockHeader {
            version: 1,
            time: GENESIS_TIME,
            shape: ModelShape { d_model: 8, n_layers: 1 },
            checkpoint_root: Hash256(checkpoint_root(&ckpt)),
            checkpoint_size: ckpt.len() as u64,
            parent_loss: GENESIS_LOSS,
            val_loss: GENESIS_LOSS,
            required_improvement: 1,
            ..BlockHeader::default()
        },
        transactions: vec![cb],
        ..Block::default()
    };
    block.header.merkle_root = block.compute_merkle_root().0;
    Blk { block, ckpt }
}

/// The summary of `header` on a parent with `parent_work` chainwork (genesis: `None`).
fn summary_of(header: &BlockHeader, parent_work: Option<u128>, supply: Amount) -> HeaderSummary {
    HeaderSummary {
        hash: header.hash(),
        height: header.height,
        time: header.time,
        parent_loss: header.parent_loss,
        val_loss: header.val_loss,
        required_improvement: header.required_improvement,
        required_eff: header.required_improvement,
        loss_index: header.val_loss,
        chainwork: parent_work.map_or(0, |w| w + u128::from(header.required_improvement)),
        checkpoint_root: header.checkpoint_root,
        d_model: header.shape.d_model,
        n_layers: header.shape.n_layers,
        cumulative_growth: 0,
        stagnation: 0,
        circulating_supply: supply,
    }
}

impl ChainRules for SynthRules {
    fn network(&self) -> Network {
        Network::Regtest
    }

    fn genesis_block(&self) -> Block {
        genesis().block
    }

    fn genesis_summary(&self) -> HeaderSummary {
        summary_of(&genesis().block.header, None, Amount::ZERO)
    }

    fn genesis_checkpoint(&self) -> Vec<u8> {
        genesis().ckpt
    }

    fn check_block(&self, block: &Block) -> Result<(), BlockError> {
        if block.header.version == 0 {
            return Err(BlockError::BadVersion(0));
        }
        let (root, mutated) = block.compute_merkle_root();
        if mutated {
            return Err(BlockError::MutatedMerkle);
        }
        if root != block.header.merkle_root {
            return Err(BlockError::BadMerkleRoot);
        }
        Ok(())
    }

    fn check_header_context(
        &self,
        header: &BlockHeader,
        chain: &dyn HeaderChain,
        now: u64,
    ) -> Result<(), BlockError> {
        let tip = chain.tip();
        // The view must be a coherent branch ending at the parent, rooted at genesis.
        assert_eq!(chain.ancestor(tip.height).as_ref(), Some(&tip), "view tip");
        assert_eq!(chain.ancestor(0).map(|s| s.hash), Some(genesis().hash()), "view root");
        assert!(chain.ancestor(tip.height + 1).is_none(), "view above tip");
        if tip.height > 0 {
            let parent = chain.ancestor(tip.height - 1).expect("grandparent");
            assert!(parent.val_loss > tip.val_loss, "view order");
        }
        if header.prev_block_hash != tip.hash {
            return Err(BlockError::BadPrevHash {
                expected: tip.hash,
                got: header.prev_block_hash,
            });
        }
        if header.height != tip.height + 1 {
            return Err(BlockError::BadHeight { expected: tip.height + 1, got: header.height });
        }
        if header.time <= tip.time {
            return Err(BlockError::TimeTooOld { time: header.time, median_time_past: tip.time });
        }
        if header.time > now + 7200 {
            return Err(BlockError::TimeTooNew { time: header.time, now });
        }
        if header.val_loss >= tip.val_loss {
            return Err(BlockError::InsufficientImprovement {
                parent_loss: tip.val_loss,
                val_loss: header.val_loss,
                required: 1,
            });
        }
        Ok(())
    }

    fn check_proof_of_training(
        &self,
        header: &BlockHeader,
        parent: &HeaderSummary,
        _sample: &EvalSample,
        parent_checkpoint: &[u8],
        update: &[u8],
    ) -> Result<Vec<u8>, BlockError> {
        self.pot_calls.fetch_add(1, Ordering::SeqCst);
        if parent_checkpoint.is_empty()
            || checkpoint_root(parent_checkpoint) != parent.checkpoint_root.0
        {
            return Err(BlockError::ParentCheckpointMismatch);
        }
        // A synthetic update is the block's whole checkpoint: applying it gives itself.
        if update.len() < 8 || checkpoint_root(update) != header.checkpoint_root.0 {
            return Err(BlockError::CheckpointRootMismatch);
        }
        let evaluated = u64::from_le_bytes(update[..8].try_into().unwrap());
        if evaluated != header.val_loss {
            return Err(BlockError::ValLossMismatch { claimed: header.val_loss, evaluated });
        }
        Ok(update.to_vec())
    }

    fn connect_block(
        &self,
        block: &Block,
        chain: &dyn HeaderChain,
        utxos: &dyn UtxoView,
    ) -> Result<(HeaderSummary, BlockEffects), BlockError> {
        let header = &block.header;
        let tip = chain.tip();
        let mut effects = BlockEffects::default();
        let mut in_block: Vec<(OutPoint, Coin)> = Vec::new();
        let mut fees = 0u64;
        let coin = |out: &TxOut, is_coinbase| Coin {
            output: out.clone(),
            height: header.height,
            creation_mtp: tip.time,
            is_coinbase,
            creation_loss_index: header.val_loss,
        };
        for (index, tx) in block.transactions.iter().enumerate() {
            let txid = tx.txid();
            if index > 0 {
                let mut inputs = 0u64;
                for (input, txin) in tx.inputs.iter().enumerate() {
                    let outpoint = txin.previous_output;
                    let fail = |error| BlockError::Transaction { index, txid, error };
                    if effects.spent.iter().any(|(o, _)| *o == outpoint) {
                        return Err(fail(TxError::DoubleSpendInBlock { input, outpoint }));
                    }
                    let c = in_block
                        .iter()
                        .find(|(o, _)| *o == outpoint)
                        .map(|(_, c)| c.clone())
                        .or_else(|| utxos.coin(&outpoint))
                        .ok_or_else(|| fail(TxError::MissingOrSpent { input, outpoint }))?;
                    inputs += c.output.value.0;
                    // Deliberately not netted against `created`: the chainstate must cope.
                    effects.spent.push((outpoint, c));
                }
                let outputs: u64 = tx.outputs.iter().map(|o| o.value.0).sum();
                if outputs > inputs {
                    return Err(BlockError::Transaction {
                        index,
                        txid,
                        error: TxError::OutputsExceedInputs {
                            inputs: Amount(inputs),
                            outputs: Amount(outputs),
                        },
                    });
                }
                fees += inputs - outputs;
            }
            for (vout, out) in tx.outputs.iter().enumerate() {
                if out.value.0 == 0 {
                    continue;
                }
                let c = coin(out, index == 0);
                let outpoint = OutPoint::new(txid, vout as u32);
                in_block.push((outpoint, c.clone()));
                effects.created.push((outpoint, c));
            }
        }
        let claimed: u64 = block.transactions[0].outputs.iter().map(|o| o.value.0).sum();
        if claimed > SUBSIDY + fees {
            return Err(BlockError::CoinbaseTooLarge {
                claimed: Amount(claimed),
                allowed: Amount(SUBSIDY + fees),
            });
        }
        let created: u64 = effects.created.iter().map(|(_, c)| c.output.value.0).sum();
        let spent: u64 = effects.spent.iter().map(|(_, c)| c.output.value.0).sum();
        let supply = Amount(tip.circulating_supply.0 + created - spent);
        Ok((summary_of(header, Some(tip.chainwork), supply), effects))
    }

    fn summarize_header(&self, header: &BlockHeader, chain: &dyn HeaderChain) -> HeaderSummary {
        let tip = chain.tip();
        summary_of(header, Some(tip.chainwork), tip.circulating_supply)
    }

    fn expiry_threshold(&self, tip_loss_index: u64) -> u64 {
        // Regtest's ratio (2/1): a coin expires once the loss has halved since its creation.
        rnet_consensus::expiry_threshold(&ChainParams::regtest(), tip_loss_index)
    }

    fn is_permanent(&self, error: &BlockError) -> bool {
        error.is_permanent()
    }
}

/// Opens a chainstate with synthetic rules.
pub fn open(dir: &Path, rules: &SynthRules, options: ChainOptions) -> ChainState {
    ChainState::open_with(dir, Box::new(rules.clone()), options).expect("open chainstate")
}

/// Archive-mode options without fsync (fast; process crashes are still survived).
pub fn archive() -> ChainOptions {
    ChainOptions { prune_checkpoints_depth: 0, sync_writes: false, ..ChainOptions::default() }
}

/// Archive-mode options with durable commits, as in production.
pub fn durable() -> ChainOptions {
    ChainOptions { prune_checkpoints_depth: 0, ..ChainOptions::default() }
}

/// Accepts a block with its checkpoint.
pub fn accept(chain: &mut ChainState, b: &Blk) -> AcceptOutcome {
    chain.accept_block(b.block.clone(), Some(b.ckpt.clone()), NOW).expect("accept block")
}

/// (tip, UTXO set hash, supply) of a fresh chainstate that received `blocks` in order.
pub fn replay(blocks: &[&Blk]) -> (BlockHash, Hash256, Amount) {
    let dir = TempDir::new("replay");
    let mut chain = open(dir.path(), &SynthRules::default(), archive());
    for b in blocks {
        accept(&mut chain, b);
    }
    chain.verify_consistency().unwrap();
    (chain.tip().hash, chain.utxo_set_hash().unwrap(), chain.circulating_supply())
}

/// (tip, UTXO set hash, supply) of `chain`.
pub fn state(chain: &ChainState) -> (BlockHash, Hash256, Amount) {
    (chain.tip().hash, chain.utxo_set_hash().unwrap(), chain.circulating_supply())
}
