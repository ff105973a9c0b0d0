//! `decode-tx` and `decode-header`: consensus bytes to JSON.

use super::{parse_hex, print_json};
use anyhow::Context;
use rnet_primitives::{BlockHeader, Transaction};

/// Decodes a transaction and prints it with its txid, wtxid and sizes.
pub fn transaction(input: &str) -> anyhow::Result<()> {
    let bytes = parse_hex("transaction", input)?;
    let tx = Transaction::from_bytes(&bytes).context("invalid transaction")?;
    print_json(&serde_json::to_value(&tx)?);
    Ok(())
}

/// Decodes a block header and prints it with its block id.
pub fn header(input: &str) -> anyhow::Result<()> {
    let bytes = parse_hex("header", input)?;
    let header = BlockHeader::from_bytes(&bytes).context("invalid block header")?;
    print_json(&serde_json::to_value(&header)?);
    Ok(())
}
