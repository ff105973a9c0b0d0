//! Signing and checking channel signatures with the chain's signature hash
//! (`docs/protocol.md` Part IV §6).
//!
//! Every channel signature is sighash `ALL` (64 bytes): it commits to every input, every spent
//! output's amount and script, every output and the genesis block id, so a signature is valid on
//! one chain and for one exact transaction. The chain has no `SINGLE` type, so BOLT 3's
//! `SINGLE|ANYONECANPAY` HTLC signatures (anchor channels) do not exist here, and a counterparty
//! signature that is not `ALL` is refused.

use rnet_crypto::{PublicKey, SigningKey};
use rnet_primitives::{BlockHash, Transaction, TxOut};
use rnet_script::sighash::parse_signature;
use rnet_script::{SighashCache, SighashType};

use super::error::ChannelError;

/// Signs input `index` of `tx` (spending `spent`, one output per input) with `key`, over
/// `script_code` (the witness script of a script-hash output, the scriptPubKey of a key
/// output), for the chain whose genesis block id is `genesis`. Returns the 64-byte witness
/// signature.
pub fn sign_input(
    genesis: &BlockHash,
    tx: &Transaction,
    spent: &[TxOut],
    index: usize,
    script_code: &[u8],
    key: &SigningKey,
) -> Result<Vec<u8>, ChannelError> {
    Ok(SighashCache::new(genesis, tx, spent)?.sign(key, index, script_code, SighashType::All)?)
}

/// Checks that `sig` is a 64-byte `ALL` signature by `key` of input `index` of `tx` (as
/// [`sign_input`] makes it). Fails with [`ChannelError::InvalidSignature`] otherwise.
pub fn verify_input_signature(
    genesis: &BlockHash,
    tx: &Transaction,
    spent: &[TxOut],
    index: usize,
    script_code: &[u8],
    key: &PublicKey,
    sig: &[u8],
) -> Result<(), ChannelError> {
    let (signature, ty) = parse_signature(sig).map_err(|_| ChannelError::InvalidSignature)?;
    if ty != SighashType::All || key.is_weak() {
        return Err(ChannelError::InvalidSignature);
    }
    let msg = SighashCache::new(genesis, tx, spent)?.signature_hash(index, script_code, ty)?;
    key.verify(&msg, &signature).map_err(|_| ChannelError::InvalidSignature)
}
