//! One module per group of subcommands.

pub mod address;
pub mod checkpoint;
pub mod decode;
pub mod generate;
pub mod hash;
pub mod keys;
pub mod train;

use anyhow::Context;

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
