//! ResonanceNet script (layer 2): the interpreter, witness programs, signature hashes and the
//! standard templates (plain key, the three recovery policies, HTLC).
//!
//! The normative rules are in `docs/protocol.md (Part IV)`; this crate is their reference
//! implementation. Nothing here panics on any input (scripts, witnesses, transactions).
//!
//! - [`verify`]: witness programs (v1 = key output, v0 = script-hash output) and the entry points
//!   [`verify_input`], [`verify_input_batched`], [`verify_transaction`],
//!   [`verify_transaction_batched`] over a [`SpendContext`].
//! - [`sighash`]: the BIP143-style Keccak-256d signature hash committing to amounts and scripts
//!   of all spent outputs, with the per-transaction [`SighashCache`].
//! - [`templates`]: [`PlainKey`], [`Heartbeat`], [`Social`] (+ [`RecoveryPending`]),
//!   [`EmissionReturn`], [`Htlc`] and their witnesses.
//! - [`covenant`]: [`EMISSION_RETURN_SCRIPT`] / [`is_emission_return`] and the fee bounds of the
//!   two covenant opcodes.
//! - [`locktime`]: BIP65/BIP68 encodings and [`relative_lock`], which consensus uses to enforce
//!   relative locks against coin age.
//! - [`opcodes`], [`script`], [`num`]: opcode values, parsing/building, script numbers.
//! - [`ScriptError`]: one variant per failure.

pub mod covenant;
pub mod error;
mod interpreter;
pub mod locktime;
pub mod num;
pub mod opcodes;
pub mod script;
pub mod sighash;
pub mod templates;
pub mod verify;

pub use covenant::{
    EMISSION_RETURN_SCRIPT, MAX_EMISSION_SWEEP_FEE_PER_INPUT, MAX_RECOVERY_FEE, is_emission_return,
};
pub use error::ScriptError;
pub use interpreter::{
    MAX_OPS_PER_SCRIPT, MAX_PUBKEYS_PER_MULTISIG, MAX_STACK_SIZE, SIG_CHECK_BUDGET_BASE,
    SIG_CHECK_COST, sig_check_budget,
};
pub use locktime::{LOCKTIME_THRESHOLD, RelativeLock, relative_lock};
pub use script::{Builder, MAX_SCRIPT_ELEMENT_SIZE, MAX_SCRIPT_SIZE, disassemble};
pub use sighash::{SighashCache, SighashType, signature_hash};
pub use templates::{
    EmissionReturn, Heartbeat, Htlc, PlainKey, RecoveryPending, RecoveryPolicy, ScriptTemplate,
    Social, TemplateError,
};
pub use verify::{
    MAX_WITNESS_ITEMS, OutputKind, SpendContext, TxScriptError, VerifyFlags, classify,
    parse_witness_program, verify_input, verify_input_batched, verify_transaction,
    verify_transaction_batched,
};
