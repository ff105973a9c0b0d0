//! The two covenant rules: recovery-pending outputs (social recovery) and emission returns.
//!
//! These are the only opcodes that look at the spending transaction's outputs, and each checks
//! one fixed shape; there is no general covenant machinery.

use rnet_crypto::PublicKey;
use rnet_primitives::Amount;

use crate::error::ScriptError;
use crate::locktime::RelativeLock;
use crate::num::{MAX_LOCKTIME_NUM_SIZE, decode_num};
use crate::templates::{heartbeat_script, script_hash_script_pubkey};
use crate::verify::SpendContext;

/// The scriptPubKey of an emission-return output: `OP_RETURN <"RNET-EMISSION">`. Consensus
/// credits the value of every output with exactly this script to the emission pool (future block
/// rewards) instead of adding it to the UTXO set. Anyone may create one; it can never be spent.
pub const EMISSION_RETURN_SCRIPT: &[u8] = b"\x6a\x0dRNET-EMISSION";

/// Whether `script_pubkey` is exactly [`EMISSION_RETURN_SCRIPT`].
pub fn is_emission_return(script_pubkey: &[u8]) -> bool {
    script_pubkey == EMISSION_RETURN_SCRIPT
}

/// The most fee a guardian recovery may take out of the recovered input: the recovery-pending
/// output at the input's index must be worth at least the input's amount minus this
/// (0.01 RNT). The difference can only go to the fee: a recovery transaction must also keep every
/// output at or below the input at its index (`docs/protocol.md` Part IV §8.1 rule 5).
pub const MAX_RECOVERY_FEE: Amount = Amount(1_000_000);

/// The most fee an emission sweep may take per input of the sweeping transaction (0.01 RNT),
/// and never more than that input's own value: the sum of the emission-return outputs must be
/// at least `Σ amount_i − Σ min(this, amount_i)` over all inputs. So inputs that are worth
/// nothing (e.g. zero-value anyone-can-spend outputs) add nothing to the allowance.
pub const MAX_EMISSION_SWEEP_FEE_PER_INPUT: Amount = Amount(1_000_000);

/// `OP_CHECKRECOVERYPENDINGVERIFY` with its three operands (already popped).
pub(crate) fn check_recovery_pending(
    ctx: &SpendContext<'_>,
    new_key: &[u8],
    owner: &[u8],
    cancel_window: &[u8],
) -> Result<(), ScriptError> {
    let window = decode_num(cancel_window, MAX_LOCKTIME_NUM_SIZE)?;
    let window = u32::try_from(window)
        .ok()
        .and_then(RelativeLock::from_canonical)
        .filter(|w| w.value() > 0)
        .ok_or(ScriptError::InvalidRecoveryParameter)?;
    let owner: &[u8; 32] = owner.try_into().map_err(|_| ScriptError::InvalidPublicKey)?;
    let new_key: &[u8; 32] = new_key.try_into().map_err(|_| ScriptError::InvalidPublicKey)?;
    // The new key must be a usable key, so that the pending output can be claimed at all.
    PublicKey::from_bytes(new_key).map_err(|_| ScriptError::InvalidPublicKey)?;

    let expected = script_hash_script_pubkey(&crate::templates::script_hash(&heartbeat_script(
        owner, new_key, window,
    )));
    let amount = ctx.spent_output().value;
    let min_value = Amount(amount.to_resonance().saturating_sub(MAX_RECOVERY_FEE.to_resonance()));
    match ctx.tx().outputs.get(ctx.input_index()) {
        Some(out) if out.script_pubkey == expected && out.value >= min_value => {}
        _ => return Err(ScriptError::RecoveryOutputMismatch),
    }
    check_value_stays_in_place(ctx)
}

/// The value rule of a recovery transaction: exactly one output per input, and no output worth
/// more than the input at its index. So value never moves between index positions: whatever a
/// recovered input does not pay into its own recovery-pending output (at most
/// [`MAX_RECOVERY_FEE`]) can only be fee, and an input someone else adds can pay only its own
/// value, to its own output, never the recovered coin's allowance.
fn check_value_stays_in_place(ctx: &SpendContext<'_>) -> Result<(), ScriptError> {
    let outputs = &ctx.tx().outputs;
    let spent = ctx.spent_outputs();
    if outputs.len() != spent.len() || outputs.iter().zip(spent).any(|(o, s)| o.value > s.value) {
        return Err(ScriptError::RecoveryValueMoved);
    }
    Ok(())
}

/// `OP_CHECKEMISSIONVERIFY`.
pub(crate) fn check_emission(ctx: &SpendContext<'_>) -> Result<(), ScriptError> {
    let tx = ctx.tx();
    if tx.outputs.is_empty() || !tx.outputs.iter().all(|o| is_emission_return(&o.script_pubkey)) {
        return Err(ScriptError::EmissionOutputMismatch);
    }
    let total_out: u128 = tx.outputs.iter().map(|o| u128::from(o.value.to_resonance())).sum();
    let total_in: u128 =
        ctx.spent_outputs().iter().map(|o| u128::from(o.value.to_resonance())).sum();
    let per_input = MAX_EMISSION_SWEEP_FEE_PER_INPUT.to_resonance();
    let allowance: u128 =
        ctx.spent_outputs().iter().map(|o| u128::from(o.value.to_resonance().min(per_input))).sum();
    if total_out + allowance < total_in {
        return Err(ScriptError::EmissionOutputMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emission_script() {
        assert_eq!(EMISSION_RETURN_SCRIPT.len(), 15);
        assert_eq!(EMISSION_RETURN_SCRIPT[0], crate::opcodes::OP_RETURN);
        assert_eq!(usize::from(EMISSION_RETURN_SCRIPT[1]), EMISSION_RETURN_SCRIPT.len() - 2);
        assert!(is_emission_return(b"\x6a\x0dRNET-EMISSION"));
        assert!(!is_emission_return(b"\x6a\x0dRNET-EMISSIOM"));
        assert!(!is_emission_return(b"\x6a"));
        assert!(!is_emission_return(b""));
        assert_eq!(
            crate::script::disassemble(EMISSION_RETURN_SCRIPT),
            "OP_RETURN <524e45542d454d495353494f4e>"
        );
    }
}
