//! `sample`: the evaluation sample a block draws (Proof-of-Training v2), so anyone can check a
//! block's records against the rule without running a node.

use super::{parse_hex_array, print_json};
use clap::Args;
use rnet_consensus::{draw_sample, sample_seed};
use rnet_model::ModelNetwork;
use rnet_primitives::{BlockHash, Hash256};

/// Arguments of `rnet-util sample`.
#[derive(Args)]
pub struct SampleArgs {
    /// mainnet, testnet or regtest: fixes `R` (corpus records) and `K` (records per sample).
    #[arg(long)]
    network: ModelNetwork,
    /// The parent block id (`prev_block_hash` of the block), 64 hex digits.
    #[arg(long)]
    prev: String,
    /// The block's `checkpoint_root`, 64 hex digits.
    #[arg(long)]
    root: String,
    /// The block's `miner_pubkey`, 64 hex digits.
    #[arg(long = "miner-key")]
    miner_key: String,
}

/// Runs `rnet-util sample`: prints the seed and the sorted record indices as JSON.
pub fn run(args: SampleArgs) -> anyhow::Result<()> {
    let params = super::chain_params(args.network);
    let prev = BlockHash(parse_hex_array::<32>("--prev", &args.prev)?);
    let root = Hash256(parse_hex_array::<32>("--root", &args.root)?);
    let key = parse_hex_array::<32>("--miner-key", &args.miner_key)?;
    let seed = sample_seed(&prev, &root, &key);
    let records = draw_sample(&seed, params.corpus_records, params.sample_records);
    print_json(&serde_json::json!({
        "network": params.network.name(),
        "seed": hex::encode(seed),
        "window": params.genesis_model.window,
        "corpus_records": params.corpus_records,
        "corpus_root": params.corpus_root.to_hex(),
        "records": records,
    }));
    Ok(())
}
