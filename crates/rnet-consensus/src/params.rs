//! Chain parameters of mainnet, testnet and regtest, and the genesis block of each.
//!
//! Every number a node needs to agree with its peers lives in [`ChainParams`]. The values are
//! written out (with their reasons) in `docs/protocol.md` (Part V, §1). Tests may build modified
//! parameters with struct update syntax (`ChainParams { coinbase_maturity: 2, ..ChainParams::regtest() }`);
//! [`ChainParams::validate`] says whether such a set is usable.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use rnet_crypto::{SigningKey, keccak256};
use rnet_model::checkpoint::{chunk_hashes, merkle_root as checkpoint_merkle_root};
use rnet_model::data::hex32;
use rnet_model::{Checkpoint, GrowthCaps, Model, ModelConfig, ModelNetwork, evaluate_windows};
use rnet_primitives::{
    Amount, Block, BlockHash, BlockHeader, COIN, Hash256, MAX_BLOCK_SIZE, MAX_SAMPLE_RECORDS,
    ModelShape, Network, OutPoint, Transaction, TxIn, TxOut, Witness,
};
use thiserror::Error;

use crate::context::HeaderSummary;

/// Version of every block header this code produces; headers with a lower version are invalid.
pub const BLOCK_VERSION: u32 = 2;

/// Largest performance bonus: a block is paid at most `2 ×` the base reward.
pub const MAX_BONUS_MULTIPLE: u64 = 2;

/// Largest coinbase `script_sig` (the 8-byte tag, height and network magic, plus up to 92 bytes
/// of miner data).
pub const MAX_COINBASE_SCRIPT_SIG: usize = 100;

/// Mainnet `corpus_root` (window 512, 8,474 records).
const CORPUS_ROOT_MAINNET: [u8; 32] =
    hex32("1c3e6cb64c891f1f4c8443c1dc50473eb3b83c5e6e0fcf8c6294c630ec88e183");
/// Testnet `corpus_root` (window 256, 16,948 records).
const CORPUS_ROOT_TESTNET: [u8; 32] =
    hex32("f11342c33e8de7051b42bbaa2dd76a87fa945081025f5a7a06c1b9bb3a5ffcc9");
/// Regtest `corpus_root` (window 64, 67,794 records).
const CORPUS_ROOT_REGTEST: [u8; 32] =
    hex32("44991f77a24d824f61628a3b4e0fa1313ee00340afb718ff19de49db1281cab2");

/// Genesis losses on each genesis block's own sample (tests recompute them).
const GENESIS_LOSS_MAINNET: u64 = 5_555_653;
const GENESIS_LOSS_TESTNET: u64 = 5_551_272;
const GENESIS_LOSS_REGTEST: u64 = 5_579_651;

/// Required-improvement floors (µnat), each at least ten times the best improvement that grinding
/// roots finds in 256 tries (`docs/protocol.md` Part V §8; `tests/grinding.rs` measures it):
/// testnet 10 × 765 (K = 64, parent trained 300 steps); mainnet keeps testnet's floor (its
/// 128-record sample is less noisy, so grinding finds less); regtest 10 × 1,769 (K = 32, parent
/// trained 1,500 steps, the larger of two measurements), rounded up.
const FLOOR_MAINNET: u64 = 8_000;
const FLOOR_TESTNET: u64 = 8_000;
const FLOOR_REGTEST: u64 = 20_000;

/// The consensus parameters of one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// Which network these are.
    pub network: Network,
    /// The model crate's name for the network (genesis shape).
    pub model_network: ModelNetwork,
    /// P2P message-start bytes.
    pub magic: [u8; 4],
    /// Default P2P port.
    pub p2p_port: u16,
    /// Default JSON-RPC port.
    pub rpc_port: u16,
    /// Bech32m human-readable part of addresses (`rnt`, `trnt`, `rrnt`).
    pub address_hrp: &'static str,
    /// Time of the genesis block (unix seconds).
    pub genesis_time: u64,
    /// Seed of `Model::init` for the genesis checkpoint.
    pub genesis_seed: u64,
    /// The default `-assumevalid` block (Part V §7.1): its ancestors skip the Proof-of-Training
    /// evaluations during sync. A release sets it to a block buried deep in the chain it ships
    /// with; `None` until a network has such a chain.
    pub default_assume_valid: Option<BlockHash>,
    /// The genesis model shape (`n_slots`, `kernel_sizes` and `window` never change afterwards).
    pub genesis_model: ModelConfig,
    /// The canonical loss of the genesis checkpoint on the genesis block's own sample (pinned:
    /// tests recompute it). It is the genesis `val_loss`, `parent_loss` and loss index.
    pub genesis_val_loss: u64,
    /// Caps of the growth schedule.
    pub growth_caps: GrowthCaps,
    /// The shape grows only at heights that are multiples of this (mainnet 144: once a day).
    pub growth_interval: u32,
    /// Merkle root over the leaves of the corpus records (window = the genesis window `T`).
    pub corpus_root: Hash256,
    /// Number of corpus records `R = ⌊(corpus length − 1) / T⌋`.
    pub corpus_records: u64,
    /// Records in each block's evaluation sample (`K`).
    pub sample_records: usize,
    /// Block spacing the required improvement is retargeted towards (seconds).
    pub target_spacing_secs: u64,
    /// Blocks between retargets of the required improvement; `0` disables retargeting (the
    /// required improvement then stays at `initial_required_improvement` forever).
    pub retarget_interval: u32,
    /// Largest factor by which one retarget may raise or lower the required improvement.
    pub max_retarget_factor: u64,
    /// Floor of the required improvement (micro-nats), also the floor of the stall escape: at
    /// least ten times the best improvement that grinding roots finds in 256 tries
    /// (`docs/protocol.md` Part V §8).
    pub min_required_improvement: u64,
    /// Required improvement of the first block (micro-nats), recorded in the genesis header.
    pub initial_required_improvement: u64,
    /// A block "only just passes" (and extends the stagnation count) when its improvement is
    /// below this multiple of the required improvement.
    pub stagnation_multiple: u64,
    /// Block reward before halvings and bonus.
    pub base_reward: Amount,
    /// A coinbase output created at height `h` may be spent from height `h + coinbase_maturity`.
    pub coinbase_maturity: u32,
    /// `(num, den)`: a coin expires when `creation_loss_index / tip_loss ≥ num / den` (must be > 1).
    pub expiry_ratio: (u64, u64),
    /// Default inactivity period (blocks) of wallet emission-return policies. Not enforced by
    /// consensus: each output's script carries its own period.
    pub emission_inactivity_blocks: u32,
    /// A block's time may be at most this far ahead of the validating node's clock (seconds).
    pub max_future_block_time_secs: u64,
    /// Number of blocks whose median time a new block must exceed (11).
    pub median_time_span: u32,
    /// Largest encoded block, in bytes.
    pub max_block_size: usize,
    /// Most non-empty signatures a block may check, all inputs together (counted before any
    /// is verified; Part V §3).
    pub max_block_sig_checks: usize,
    /// Largest model update a block may carry, in bytes (Part III §5.2).
    pub max_update_bytes: u64,
    /// Largest rank of a low-rank entry of a block's update.
    pub max_rank: u32,
}

/// `max_update_bytes` of every network: 8 MiB, a fifth of the mainnet genesis checkpoint. At
/// rank 16 on every matrix the mainnet genesis update is 3.2 MB (Part III §5.2); a full
/// replacement of the regtest model (171 kB) fits, and testnet's (3.7 MB) too.
pub const MAX_UPDATE_BYTES: u64 = 8 * 1024 * 1024;

/// `max_rank` of every network.
pub const MAX_RANK: u32 = 128;

/// The per-block signature-check budget of every network: one check per 50 bytes of the
/// largest block. Per-input budgets (Part IV §5) already cost 50 witness bytes per check; this
/// bounds the whole block so that verifying it, including finding the culprit after a failed
/// batch, stays within a few seconds (Part V §9).
pub const MAX_BLOCK_SIG_CHECKS: usize = MAX_BLOCK_SIZE / 50;

/// A parameter set that cannot work.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParamsError {
    /// The genesis model shape is invalid.
    #[error("invalid genesis model: {0}")]
    GenesisModel(String),
    /// The floor of the required improvement is 0 or above the initial value.
    #[error("required-improvement floor must be in 1..=initial")]
    ImprovementFloor,
    /// The expiry ratio is not a fraction above 1.
    #[error("expiry ratio must be num/den with num > den > 0")]
    ExpiryRatio,
    /// The retarget factor is below 1 or the spacing is 0.
    #[error("retarget factor must be ≥ 1 and spacing > 0")]
    Retarget,
    /// The median-time span is 0.
    #[error("median time span must be positive")]
    MedianTimeSpan,
    /// The stagnation multiple is 0.
    #[error("stagnation multiple must be positive")]
    StagnationMultiple,
    /// The base reward exceeds the supply cap.
    #[error("base reward above the supply cap")]
    BaseReward,
    /// The sample size is 0, above the encoding limit or above the number of records.
    #[error("sample size must be in 1..=min(records, 256)")]
    SampleSize,
    /// The growth interval is 0.
    #[error("growth interval must be positive")]
    GrowthInterval,
    /// The update limits admit no update: `max_rank` is 0 or `max_update_bytes` is below an
    /// empty update.
    #[error("update limits must admit an empty update and rank ≥ 1")]
    UpdateLimits,
}

impl ChainParams {
    /// The parameters of `network`.
    pub fn for_network(network: Network) -> ChainParams {
        match network {
            Network::Mainnet => Self::mainnet(),
            Network::Testnet => Self::testnet(),
            Network::Regtest => Self::regtest(),
        }
    }

    /// Mainnet.
    pub fn mainnet() -> ChainParams {
        ChainParams {
            network: Network::Mainnet,
            model_network: ModelNetwork::Mainnet,
            magic: [0xf1, b'r', b'n', b't'],
            p2p_port: 9555,
            rpc_port: 9554,
            address_hrp: Network::Mainnet.hrp(),
            // 2026-01-01T00:00:00Z.
            genesis_time: 1_767_225_600,
            genesis_seed: 0,
            default_assume_valid: None,
            genesis_model: ModelConfig::genesis(ModelNetwork::Mainnet),
            genesis_val_loss: GENESIS_LOSS_MAINNET,
            growth_caps: GrowthCaps::MAINNET,
            growth_interval: 144,
            corpus_root: Hash256(CORPUS_ROOT_MAINNET),
            corpus_records: 8_474,
            sample_records: 128,
            target_spacing_secs: 600,
            retarget_interval: 144,
            max_retarget_factor: 4,
            min_required_improvement: FLOOR_MAINNET,
            initial_required_improvement: 10_000,
            stagnation_multiple: 2,
            base_reward: Amount(50 * COIN),
            coinbase_maturity: 100,
            expiry_ratio: (10, 1),
            emission_inactivity_blocks: 52_560,
            max_future_block_time_secs: 2 * 60 * 60,
            median_time_span: 11,
            max_block_size: MAX_BLOCK_SIZE,
            max_block_sig_checks: MAX_BLOCK_SIG_CHECKS,
            max_update_bytes: MAX_UPDATE_BYTES,
            max_rank: MAX_RANK,
        }
    }

    /// Testnet: mainnet's rules with the smaller testnet model and slice.
    pub fn testnet() -> ChainParams {
        ChainParams {
            network: Network::Testnet,
            model_network: ModelNetwork::Testnet,
            magic: [0xf2, b'r', b'n', b't'],
            p2p_port: 19555,
            rpc_port: 19554,
            address_hrp: Network::Testnet.hrp(),
            // 2026-01-01T00:00:00Z.
            genesis_time: 1_767_225_600,
            genesis_seed: 0,
            default_assume_valid: None,
            genesis_model: ModelConfig::genesis(ModelNetwork::Testnet),
            genesis_val_loss: GENESIS_LOSS_TESTNET,
            growth_caps: GrowthCaps::TESTNET,
            corpus_root: Hash256(CORPUS_ROOT_TESTNET),
            corpus_records: 16_948,
            sample_records: 64,
            min_required_improvement: FLOOR_TESTNET,
            emission_inactivity_blocks: 4_320,
            ..Self::mainnet()
        }
    }

    /// Regtest: a tiny model, a constant small required improvement (no retargeting), short
    /// maturity and a low expiry ratio, so tests mine real blocks in milliseconds and reach every
    /// rule within a few blocks.
    pub fn regtest() -> ChainParams {
        ChainParams {
            network: Network::Regtest,
            model_network: ModelNetwork::Regtest,
            magic: [0xf3, b'r', b'n', b't'],
            p2p_port: 29555,
            rpc_port: 29554,
            address_hrp: Network::Regtest.hrp(),
            // 2023-11-14T22:13:20Z.
            genesis_time: 1_700_000_000,
            genesis_seed: 0,
            default_assume_valid: None,
            genesis_model: ModelConfig::genesis(ModelNetwork::Regtest),
            genesis_val_loss: GENESIS_LOSS_REGTEST,
            growth_caps: GrowthCaps::REGTEST,
            growth_interval: 1,
            corpus_root: Hash256(CORPUS_ROOT_REGTEST),
            corpus_records: 67_794,
            sample_records: 32,
            target_spacing_secs: 600,
            retarget_interval: 0,
            max_retarget_factor: 4,
            min_required_improvement: FLOOR_REGTEST,
            initial_required_improvement: FLOOR_REGTEST,
            stagnation_multiple: 2,
            base_reward: Amount(50 * COIN),
            coinbase_maturity: 5,
            expiry_ratio: (2, 1),
            emission_inactivity_blocks: 20,
            max_future_block_time_secs: 2 * 60 * 60,
            median_time_span: 11,
            max_block_size: MAX_BLOCK_SIZE,
            max_block_sig_checks: MAX_BLOCK_SIG_CHECKS,
            max_update_bytes: MAX_UPDATE_BYTES,
            max_rank: MAX_RANK,
        }
    }

    /// Checks that the parameters are internally consistent.
    pub fn validate(&self) -> Result<(), ParamsError> {
        self.genesis_model.validate().map_err(|e| ParamsError::GenesisModel(e.to_string()))?;
        if self.min_required_improvement == 0
            || self.min_required_improvement > self.initial_required_improvement
        {
            return Err(ParamsError::ImprovementFloor);
        }
        let (num, den) = self.expiry_ratio;
        if den == 0 || num <= den {
            return Err(ParamsError::ExpiryRatio);
        }
        if self.max_retarget_factor == 0 || self.target_spacing_secs == 0 {
            return Err(ParamsError::Retarget);
        }
        if self.median_time_span == 0 {
            return Err(ParamsError::MedianTimeSpan);
        }
        if self.stagnation_multiple == 0 {
            return Err(ParamsError::StagnationMultiple);
        }
        if !self.base_reward.is_valid_money() {
            return Err(ParamsError::BaseReward);
        }
        if self.sample_records == 0
            || self.sample_records > MAX_SAMPLE_RECORDS
            || self.sample_records as u64 > self.corpus_records
        {
            return Err(ParamsError::SampleSize);
        }
        if self.growth_interval == 0 {
            return Err(ParamsError::GrowthInterval);
        }
        let empty_update = rnet_model::update::header_len(self.genesis_model.kernel_sizes.len());
        if self.max_rank == 0 || self.max_update_bytes < empty_update as u64 {
            return Err(ParamsError::UpdateLimits);
        }
        Ok(())
    }

    /// The model config of a block with header shape `(d_model, n_layers)`: the genesis config
    /// with that width and depth (`d_ff = 2·d`; slots, kernels and window as at genesis).
    pub fn model_config(&self, d_model: u32, n_layers: u32) -> ModelConfig {
        self.genesis_model.with_shape(d_model as usize, n_layers as usize)
    }

    /// The exact checkpoint size (bytes) of a block of shape `(d_model, n_layers)`, or `None` if
    /// that shape is not a valid model.
    pub fn checkpoint_size(&self, d_model: u32, n_layers: u32) -> Option<u64> {
        let config = self.model_config(d_model, n_layers);
        config.validate().ok()?;
        Some(rnet_model::checkpoint::encoded_len(&config))
    }

    /// The genesis checkpoint: `Model::init(genesis_model, genesis_seed)` at height 0.
    ///
    /// # Panics
    /// Only if `genesis_model` is invalid, which [`ChainParams::validate`] rules out (the built-in
    /// networks are tested).
    pub fn genesis_checkpoint(&self) -> Checkpoint {
        GenesisInputs::of(self).checkpoint()
    }

    /// Evaluates the genesis checkpoint on the genesis block's own sample (what
    /// `genesis_val_loss` pins). Seconds on mainnet.
    pub fn evaluate_genesis(&self) -> u64 {
        let ckpt = self.genesis_checkpoint();
        let block = self.genesis_block();
        let windows: Vec<&[u8]> = block.sample.records.iter().map(|r| r.bytes.as_slice()).collect();
        evaluate_windows(&ckpt.model, &windows)
            .map(|r| r.val_loss_micronats)
            .expect("the genesis model evaluates")
    }

    /// The key that signs the genesis header: secret `Keccak-256("ResonanceNet/genesis/" ‖
    /// network name)`. It is public on purpose; it only makes the genesis block pass the same
    /// context-free checks as every other block.
    pub fn genesis_signing_key(&self) -> SigningKey {
        GenesisInputs::of(self).signing_key()
    }

    /// The first [`COINBASE_TAG_LEN`] bytes of the `script_sig` of the coinbase of the block at
    /// `height` on this network: the height (u32 LE) then the P2P message start `magic`
    /// (`docs/protocol.md` Part V §3.1). Miner data may follow, up to
    /// [`MAX_COINBASE_SCRIPT_SIG`] bytes in all.
    pub fn coinbase_tag(&self, height: u32) -> [u8; COINBASE_TAG_LEN] {
        coinbase_tag(height, self.magic)
    }

    /// The genesis coinbase: script_sig = height 0 (u32 LE) ‖ `magic` ‖
    /// `"ResonanceNet/<network>"`, one zero-value `OP_RETURN` output carrying a message. It
    /// creates no coin, so the circulating supply at genesis is 0.
    pub fn genesis_coinbase(&self) -> Transaction {
        GenesisInputs::of(self).coinbase()
    }

    /// The genesis block (deterministic): the genesis coinbase and a header committing to the
    /// genesis checkpoint's root and size and its pinned `val_loss`, signed by
    /// [`ChainParams::genesis_signing_key`], with the sample its header draws.
    pub fn genesis_block(&self) -> Block {
        let inputs = GenesisInputs::of(self);
        let (header, coinbase) = inputs.header_and_coinbase();
        let sample = crate::sample::build_sample(self, &header).unwrap_or_default();
        Block { header, transactions: vec![coinbase], sample }
    }

    /// The genesis block id, `genesis_block().block_hash()`, which every signature hash commits
    /// to (`docs/protocol.md` Part IV §6).
    ///
    /// Building the genesis block costs about a second on mainnet (model initialisation and
    /// 40 MB of checkpoint hashing), so the id is memoised for the process, keyed by every field
    /// the genesis header depends on: `network`, `magic`, `genesis_time`, `genesis_seed`,
    /// `genesis_model`, `genesis_val_loss` and `initial_required_improvement` (the sample, drawn
    /// with `corpus_root`, `corpus_records` and `sample_records`, is not part of the id). Custom
    /// parameters (`ChainParams { genesis_time: 7, ..ChainParams::regtest() }`) therefore get
    /// their own id, and parameters differing only in other fields share one.
    pub fn genesis_hash(&self) -> BlockHash {
        static CACHE: OnceLock<Mutex<HashMap<GenesisInputs, BlockHash>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let lock = || cache.lock().unwrap_or_else(PoisonError::into_inner);
        let inputs = GenesisInputs::of(self);
        if let Some(hash) = lock().get(&inputs) {
            return *hash;
        }
        // Computed without holding the lock: a concurrent caller may compute the same id.
        let hash = inputs.header_and_coinbase().0.hash();
        lock().insert(inputs, hash);
        hash
    }

    /// The summary of the genesis block (the root of every block index).
    pub fn genesis_summary(&self) -> HeaderSummary {
        let (header, _) = GenesisInputs::of(self).header_and_coinbase();
        HeaderSummary {
            hash: header.hash(),
            height: 0,
            time: self.genesis_time,
            parent_loss: self.genesis_val_loss,
            val_loss: self.genesis_val_loss,
            required_improvement: self.initial_required_improvement,
            required_eff: self.initial_required_improvement,
            loss_index: self.genesis_val_loss,
            chainwork: 0,
            checkpoint_root: header.checkpoint_root,
            d_model: header.shape.d_model,
            n_layers: header.shape.n_layers,
            cumulative_growth: 0,
            stagnation: 0,
            circulating_supply: Amount::ZERO,
        }
    }
}

/// Length of the coinbase tag: the height (u32 LE) and the network magic (4 bytes).
pub const COINBASE_TAG_LEN: usize = 8;

/// `height` (u32 LE) ‖ `magic`: how every coinbase `script_sig` starts
/// ([`ChainParams::coinbase_tag`]).
pub fn coinbase_tag(height: u32, magic: [u8; 4]) -> [u8; COINBASE_TAG_LEN] {
    let mut tag = [0u8; COINBASE_TAG_LEN];
    tag[..4].copy_from_slice(&height.to_le_bytes());
    tag[4..].copy_from_slice(&magic);
    tag
}

/// Every field of [`ChainParams`] that the genesis header and coinbase (hence the genesis block
/// id) are built from, and nothing else: the genesis block is computed from this struct alone,
/// so the key of [`ChainParams::genesis_hash`]'s cache cannot miss a field it depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GenesisInputs {
    network: Network,
    magic: [u8; 4],
    time: u64,
    seed: u64,
    model: ModelConfig,
    val_loss: u64,
    required_improvement: u64,
}

impl GenesisInputs {
    fn of(p: &ChainParams) -> Self {
        Self {
            network: p.network,
            magic: p.magic,
            time: p.genesis_time,
            seed: p.genesis_seed,
            model: p.genesis_model.clone(),
            val_loss: p.genesis_val_loss,
            required_improvement: p.initial_required_improvement,
        }
    }

    fn checkpoint(&self) -> Checkpoint {
        let model =
            Model::init(self.model.clone(), self.seed).expect("the genesis model config is valid");
        Checkpoint::new(0, model)
    }

    fn signing_key(&self) -> SigningKey {
        let mut seed = b"ResonanceNet/genesis/".to_vec();
        seed.extend_from_slice(self.network.name().as_bytes());
        SigningKey::from_bytes(&keccak256(&seed))
    }

    fn coinbase(&self) -> Transaction {
        let mut script_sig = coinbase_tag(0, self.magic).to_vec();
        script_sig.extend_from_slice(b"ResonanceNet/");
        script_sig.extend_from_slice(self.network.name().as_bytes());
        let message: &[u8] = b"ResonanceNet genesis: one shared model, trained by every miner";
        let mut script_pubkey = vec![0x6a, message.len() as u8];
        script_pubkey.extend_from_slice(message);
        Transaction {
            version: 1,
            inputs: vec![TxIn {
                previous_output: OutPoint::NULL,
                script_sig,
                sequence: u32::MAX,
                witness: Witness::new(),
            }],
            outputs: vec![TxOut { value: Amount::ZERO, script_pubkey }],
            lock_time: 0,
        }
    }

    /// The signed genesis header and the coinbase it commits to.
    fn header_and_coinbase(&self) -> (BlockHeader, Transaction) {
        let ckpt_bytes = self.checkpoint().to_bytes();
        let root = checkpoint_merkle_root(&chunk_hashes(&ckpt_bytes));
        let coinbase = self.coinbase();
        let key = self.signing_key();
        let mut header = BlockHeader {
            version: BLOCK_VERSION,
            prev_block_hash: BlockHash::ZERO,
            merkle_root: Hash256::from(coinbase.wtxid()),
            time: self.time,
            height: 0,
            shape: ModelShape {
                d_model: self.model.d_model as u32,
                n_layers: self.model.n_layers as u32,
            },
            checkpoint_root: Hash256(root),
            checkpoint_size: ckpt_bytes.len() as u64,
            update_root: Hash256::ZERO,
            update_size: 0,
            parent_loss: self.val_loss,
            val_loss: self.val_loss,
            required_improvement: self.required_improvement,
            training_steps: 0,
            dataset_commitment: Hash256::ZERO,
            miner_pubkey: key.public_key().to_bytes(),
            signature: [0; 64],
        };
        header.signature = key.sign(header.hash().as_bytes()).to_bytes();
        (header, coinbase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::is_unspendable;

    #[test]
    fn every_network_is_consistent() {
        let all = Network::ALL.map(ChainParams::for_network);
        for p in &all {
            p.validate().unwrap();
            assert_eq!(p.address_hrp, p.network.hrp());
            assert_eq!(p.median_time_span, 11);
            assert_eq!(p.max_future_block_time_secs, 7200);
            assert_eq!(p.base_reward, Amount(50 * COIN));
            assert_eq!(p.corpus_records, rnet_model::data::record_count(p.genesis_model.window));
            assert!(p.growth_interval >= 1);
            let g = &p.genesis_model;
            assert_eq!(
                p.checkpoint_size(g.d_model as u32, g.n_layers as u32),
                Some(rnet_model::checkpoint::encoded_len(g))
            );
            assert!(p.emission_inactivity_blocks <= u32::from(u16::MAX));
        }
        let ports: Vec<(u16, u16)> = all.iter().map(|p| (p.p2p_port, p.rpc_port)).collect();
        assert_eq!(ports, [(9555, 9554), (19555, 19554), (29555, 29554)]);
        assert_ne!(all[0].magic, all[1].magic);
        assert_ne!(all[1].magic, all[2].magic);
        assert_ne!(all[0].magic, all[2].magic);
        assert_eq!(all[0].growth_caps, GrowthCaps { max_d_model: 4096, max_layers: 48 });
        assert_eq!(all[2].growth_caps, GrowthCaps { max_d_model: 64, max_layers: 2 });
        assert_eq!(all[2].growth_caps, GrowthCaps::for_network(ModelNetwork::Regtest));
        assert_eq!(
            [all[0].growth_interval, all[1].growth_interval, all[2].growth_interval],
            [144, 144, 1]
        );
        assert_eq!(
            [all[0].sample_records, all[1].sample_records, all[2].sample_records],
            [128, 64, 32]
        );
        assert_eq!(all[0].coinbase_maturity, 100);
        assert_eq!(all[2].coinbase_maturity, 5);
        assert_eq!(all[0].expiry_ratio, (10, 1));
        assert_eq!((all[0].retarget_interval, all[2].retarget_interval), (144, 0));
    }

    #[test]
    fn broken_parameters_are_refused() {
        let r = ChainParams::regtest;
        let bad = [
            (ChainParams { min_required_improvement: 0, ..r() }, ParamsError::ImprovementFloor),
            (ChainParams { initial_required_improvement: 1, ..r() }, ParamsError::ImprovementFloor),
            (ChainParams { expiry_ratio: (1, 1), ..r() }, ParamsError::ExpiryRatio),
            (ChainParams { expiry_ratio: (2, 0), ..r() }, ParamsError::ExpiryRatio),
            (ChainParams { max_retarget_factor: 0, ..r() }, ParamsError::Retarget),
            (ChainParams { median_time_span: 0, ..r() }, ParamsError::MedianTimeSpan),
            (ChainParams { stagnation_multiple: 0, ..r() }, ParamsError::StagnationMultiple),
            (ChainParams { base_reward: Amount(u64::MAX), ..r() }, ParamsError::BaseReward),
            (ChainParams { sample_records: 0, ..r() }, ParamsError::SampleSize),
            (ChainParams { sample_records: 257, ..r() }, ParamsError::SampleSize),
            (ChainParams { corpus_records: 5, sample_records: 6, ..r() }, ParamsError::SampleSize),
            (ChainParams { growth_interval: 0, ..r() }, ParamsError::GrowthInterval),
        ];
        for (p, e) in bad {
            assert_eq!(p.validate(), Err(e));
        }
        let mut odd = r();
        odd.genesis_model.d_model = 33;
        assert!(matches!(odd.validate(), Err(ParamsError::GenesisModel(_))));
    }

    /// Consensus pin: the regtest genesis checkpoint (seed 0) evaluated on the genesis block's
    /// own sample, and the genesis block built from it.
    #[test]
    fn regtest_genesis_is_pinned() {
        let p = ChainParams::regtest();
        eprintln!(
            "regtest genesis loss {} id {}",
            p.evaluate_genesis(),
            p.genesis_block().block_hash()
        );
        assert_eq!(p.evaluate_genesis(), p.genesis_val_loss);
        let block = p.genesis_block();
        assert_eq!(block, p.genesis_block(), "deterministic");
        assert_eq!(block.header.checkpoint_size, p.genesis_checkpoint().encoded_len());
        assert_eq!(block.header.checkpoint_root.0, p.genesis_checkpoint().root());
        assert_eq!(block.header.val_loss, p.genesis_val_loss);
        assert_eq!(block.header.parent_loss, p.genesis_val_loss);
        assert_eq!(block.header.required_improvement, p.initial_required_improvement);
        assert_eq!(block.sample.records.len(), p.sample_records);
        assert_eq!(
            crate::sample::check_sample(&p, &block.header, &block.sample).map(|w| w.len()),
            Ok(p.sample_records)
        );
        assert_eq!(block.block_hash().to_string(), REGTEST_GENESIS_HASH);
        let s = p.genesis_summary();
        assert_eq!(s.hash, block.block_hash());
        assert_eq!((s.height, s.d_model, s.n_layers), (0, 32, 2));
        assert_eq!((s.loss_index, s.chainwork), (p.genesis_val_loss, 0));
        assert_eq!(s.circulating_supply, Amount::ZERO);
        // The genesis coinbase creates no coin.
        assert!(block.transactions[0].outputs.iter().all(|o| is_unspendable(&o.script_pubkey)));
        // Another network's genesis differs.
        assert_ne!(ChainParams::testnet().genesis_block().block_hash(), block.block_hash());
    }

    /// `genesis_hash` is the genesis block's id, memoised per genesis-defining parameter set:
    /// changing any field the genesis header depends on gives that set's own id, changing
    /// another field keeps the id.
    #[test]
    fn genesis_hash_is_the_genesis_block_id_for_any_parameters() {
        let r = ChainParams::regtest;
        let base = r().genesis_hash();
        assert_eq!(base, r().genesis_block().block_hash());
        assert_eq!(base, r().genesis_summary().hash);
        assert_eq!(base.to_string(), REGTEST_GENESIS_HASH);
        let mut wider = r();
        wider.genesis_model.n_slots += 1;
        let changed = [
            ChainParams { network: Network::Testnet, ..r() },
            ChainParams { magic: [0xf4, b'r', b'n', b't'], ..r() },
            ChainParams { genesis_time: 1_700_000_001, ..r() },
            ChainParams { genesis_seed: 1, ..r() },
            wider,
            ChainParams { genesis_val_loss: 5_000_000, ..r() },
            ChainParams { initial_required_improvement: 30_000, ..r() },
        ];
        let mut seen = vec![base];
        for p in &changed {
            // Twice: the first call fills the cache, the second reads it.
            for _ in 0..2 {
                assert_eq!(p.genesis_hash(), p.genesis_block().block_hash());
            }
            assert!(!seen.contains(&p.genesis_hash()), "each genesis input changes the id");
            seen.push(p.genesis_hash());
        }
        // The regtest id is still cached correctly, and fields outside the header keep it.
        assert_eq!(r().genesis_hash(), base);
        let same = [
            ChainParams { coinbase_maturity: 2, ..r() },
            ChainParams { corpus_records: 1_000, ..r() },
            ChainParams { sample_records: 8, ..r() },
            ChainParams { min_required_improvement: 1, ..r() },
        ];
        for p in &same {
            assert_eq!(p.genesis_hash(), base);
            assert_eq!(p.genesis_block().block_hash(), base);
        }
        assert_eq!(ChainParams::testnet().genesis_hash().to_string(), TESTNET_GENESIS_HASH);
        assert_eq!(
            ChainParams::testnet().genesis_hash(),
            ChainParams::testnet().genesis_block().block_hash()
        );
    }

    /// About a second (model initialisation and 40 MB of hashing): `-- --ignored`.
    #[test]
    #[ignore]
    fn mainnet_genesis_hash_is_the_genesis_block_id() {
        let p = ChainParams::mainnet();
        let start = std::time::Instant::now();
        let hash = p.genesis_hash();
        eprintln!("mainnet genesis id {hash} ({:?})", start.elapsed());
        let start = std::time::Instant::now();
        assert_eq!(p.genesis_hash(), hash);
        assert!(start.elapsed() < std::time::Duration::from_millis(100), "memoised");
        assert_eq!(hash, p.genesis_block().block_hash());
        assert_eq!(hash.to_string(), MAINNET_GENESIS_HASH);
    }

    /// The genesis coinbase follows the coinbase rule of every block: height 0, then the
    /// network's magic (so no two networks share a genesis coinbase txid).
    #[test]
    fn genesis_coinbase_carries_the_network_tag() {
        let mut txids = Vec::new();
        for p in Network::ALL.map(ChainParams::for_network) {
            let cb = p.genesis_coinbase();
            let script_sig = &cb.inputs[0].script_sig;
            assert_eq!(script_sig[..4], 0u32.to_le_bytes());
            assert_eq!(script_sig[4..8], p.magic, "{}", p.network);
            txids.push(cb.txid());
        }
        assert_ne!(txids[0], txids[1]);
        assert_ne!(txids[1], txids[2]);
        assert_ne!(txids[0], txids[2]);
        let p = ChainParams::regtest();
        assert_eq!(crate::validation::check_block(&p, &p.genesis_block()), Ok(()));
    }

    const REGTEST_GENESIS_HASH: &str =
        "d3160e4355061494ec9e6fb6c52a9b5e68ac945da85a35baa4980583b6011ad1";
    const TESTNET_GENESIS_HASH: &str =
        "6cf1ad15bbc3a7807e21e412b055ce0a0a840192240b30f43d6eeb6fb91c77da";
    const MAINNET_GENESIS_HASH: &str =
        "bf82d681005e641ce1c663b6342c9941a7d5c4e004b36aafbb9e9afce2cb5e2d";

    #[test]
    fn testnet_genesis_loss_is_pinned() {
        let p = ChainParams::testnet();
        eprintln!("testnet genesis loss {}", p.evaluate_genesis());
        assert_eq!(p.evaluate_genesis(), p.genesis_val_loss);
    }

    /// Seconds on two cores (128 windows of 512): `cargo test -p rnet-consensus -- --ignored`.
    #[test]
    #[ignore]
    fn mainnet_genesis_loss_is_pinned() {
        let p = ChainParams::mainnet();
        let start = std::time::Instant::now();
        eprintln!("mainnet genesis loss {} ({:?})", p.evaluate_genesis(), start.elapsed());
        assert_eq!(p.evaluate_genesis(), p.genesis_val_loss);
    }
}
