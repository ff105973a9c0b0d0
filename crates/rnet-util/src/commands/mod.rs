//! One module per group of subcommands.

pub mod address;
pub mod checkpoint;
pub mod decode;
pub mod dev;
pub mod generate;
pub mod hash;
pub mod keys;
pub mod sample;
pub mod train;
pub mod update;

use anyhow::Context;
use rnet_consensus::ChainParams;
use rnet_model::ModelNetwork;
use rnet_primitives::Network;

/// The chain parameters of a model network (growth caps and interval, sample size, corpus).
pub fn chain_params(network: ModelNetwork) -> ChainParams {
    ChainParams::for_network(match network {
        ModelNetwork::Mainnet => Network::Mainnet,
        ModelNetwork::Testnet => Network::Testnet,
        ModelNetwork::Regtest => Network::Regtest,
    })
}

/// The consensus model shape `(d_model, n_layers)` at `height` of a chain that never
/// stagnates: the shape grows once per `growth_interval` blocks.
pub fn scheduled_shape(network: ModelNetwork, height: u64) -> (usize, usize) {
    let params = chain_params(network);
    let genesis = &params.genesis_model;
    rnet_model::shape_at_height(
        (genesis.d_model, genesis.n_layers),
        height / u64::from(params.growth_interval.max(1)),
        params.growth_caps,
    )
}

/// Decodes a hex argument, naming it in the error.
pub fn parse_hex(what: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(text.trim()).with_context(|| format!("{what} is not valid hex"))
}

/// Decodes a hex argument that must be exactly `N` bytes.
pub fn parse_hex_array<const N: usize>(what: &str, text: &str) -> anyhow::Result<[u8; N]> {
    let bytes = parse_hex(what, text)?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| anyhow::anyhow!("{what} must be {N} bytes, got {len}"))
}

/// Prints a JSON value, pretty.
pub fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values always serialize"));
}
