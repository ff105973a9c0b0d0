//! `address encode` and `address decode`: bech32m witness addresses.

use super::{parse_hex, print_json};
use anyhow::Context;
use clap::Subcommand;
use rnet_primitives::{Address, Network};

/// `rnet-util address ...`
#[derive(Subcommand)]
pub enum AddressCommand {
    /// Encode a witness program as a bech32m address.
    Encode {
        /// mainnet, testnet or regtest.
        #[arg(long)]
        network: Network,
        /// Witness version, 0 to 16.
        #[arg(long)]
        version: u8,
        /// The witness program as hex (2 to 40 bytes).
        program_hex: String,
    },
    /// Decode an address: network, witness version, program and scriptPubKey.
    Decode {
        /// The address (rnt1…, trnt1… or rrnt1…).
        address: String,
    },
}

/// Runs an address subcommand.
pub fn run(command: AddressCommand) -> anyhow::Result<()> {
    match command {
        AddressCommand::Encode { network, version, program_hex } => {
            let program = parse_hex("program", &program_hex)?;
            let address =
                Address::new(network, version, program).context("cannot encode address")?;
            println!("{address}");
        }
        AddressCommand::Decode { address } => {
            let parsed: Address = address.parse().context("invalid address")?;
            print_json(&serde_json::json!({
                "address": parsed.to_string(),
                "network": parsed.network().to_string(),
                "witness_version": parsed.witness_version(),
                "program": hex::encode(parsed.program()),
                "script_pubkey": hex::encode(parsed.script_pubkey()),
            }));
        }
    }
    Ok(())
}
