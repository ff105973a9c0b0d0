//! `keccak256` and `keccak256d`.

use super::parse_hex;

/// Prints Keccak-256 (or Keccak-256d when `double`) of the hex input.
pub fn keccak(input: &str, double: bool) -> anyhow::Result<()> {
    let bytes = parse_hex("input", input)?;
    let digest =
        if double { rnet_crypto::keccak256d(&bytes) } else { rnet_crypto::keccak256(&bytes) };
    println!("{}", hex::encode(digest));
    Ok(())
}
