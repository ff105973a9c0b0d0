//! [`ScriptError`]: one variant per reason a spend is rejected.

use thiserror::Error;

/// Why a script or a spend failed. Every rule of `docs/protocol.md (Part IV)` fails with its own
/// variant, so tests (and peers' ban logic) can tell the reasons apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ScriptError {
    // ----- Results -----
    /// The script finished with an empty stack or a false top item.
    #[error("script evaluated to false")]
    EvalFalse,
    /// The script finished with more than one item on the stack.
    #[error("stack not clean after execution (exactly one item must remain)")]
    CleanStack,
    /// `OP_RETURN` was executed.
    #[error("OP_RETURN executed")]
    OpReturn,
    /// `OP_VERIFY` found a false item.
    #[error("OP_VERIFY failed")]
    Verify,
    /// `OP_EQUALVERIFY` found unequal items.
    #[error("OP_EQUALVERIFY failed")]
    EqualVerify,
    /// `OP_NUMEQUALVERIFY` found unequal numbers.
    #[error("OP_NUMEQUALVERIFY failed")]
    NumEqualVerify,
    /// `OP_CHECKSIGVERIFY` got an empty signature.
    #[error("OP_CHECKSIGVERIFY failed")]
    CheckSigVerify,
    /// `OP_CHECKMULTISIGVERIFY` got fewer signatures than its threshold.
    #[error("OP_CHECKMULTISIGVERIFY failed")]
    CheckMultisigVerify,
    /// `OP_CHECKMULTISIG(VERIFY)` got a number of non-empty signature slots that is neither 0 nor
    /// exactly its threshold (so no relayer can blank or add a signature).
    #[error("multisig needs exactly the threshold of signatures, or none")]
    MultisigSignatureCount,

    // ----- Signatures and keys -----
    /// Relay policy: a non-empty signature under a weak key (small order or non-canonical
    /// encoding), which anyone can produce under ZIP-215.
    #[error("signature under a weak public key (small order or non-canonical)")]
    WeakPublicKey,
    /// A non-empty signature did not verify (NULLFAIL: only an empty signature may be false).
    #[error("signature check failed (a non-empty signature must be valid)")]
    SigCheckFailed,
    /// A non-empty signature is neither 64 bytes nor 65 bytes with a defined sighash type.
    #[error("invalid signature encoding or sighash type")]
    InvalidSignatureEncoding,
    /// A public key is not 32 bytes, or (when a signature is checked against it) is not a point
    /// of the curve.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// `OP_CHECKMULTISIG` key count outside 0..=20.
    #[error("multisig key count out of range")]
    MultisigKeyCount,
    /// `OP_CHECKMULTISIG` threshold outside 0..=key count.
    #[error("multisig threshold out of range")]
    MultisigThreshold,

    // ----- Lock times -----
    /// A lock-time operand is negative.
    #[error("negative lock time")]
    NegativeLockTime,
    /// `OP_CHECKLOCKTIMEVERIFY` is not satisfied by the transaction's lock time.
    #[error("lock time requirement not satisfied")]
    UnsatisfiedLockTime,
    /// `OP_CHECKSEQUENCEVERIFY` is not satisfied by the input's sequence (or the transaction
    /// version is below 2).
    #[error("relative lock time (sequence) requirement not satisfied")]
    UnsatisfiedSequence,

    // ----- Stack -----
    /// An operation needed more items than the stack (or alt stack) holds.
    #[error("stack underflow")]
    StackUnderflow,
    /// Stack plus alt stack would exceed 1000 items.
    #[error("stack size limit exceeded")]
    StackOverflow,
    /// `OP_PICK`/`OP_ROLL` with a negative or out-of-range index.
    #[error("invalid stack operation")]
    InvalidStackOperation,

    // ----- Parsing and limits -----
    /// A script exceeds 10 000 bytes.
    #[error("script size limit exceeded")]
    ScriptSize,
    /// A pushed or witness element exceeds 520 bytes.
    #[error("push size limit exceeded")]
    PushSize,
    /// More than 201 non-push operations (multisig keys included).
    #[error("operation count limit exceeded")]
    OpCount,
    /// The input's signature checks exceed its budget: 50 + the encoded size of its witness,
    /// 50 per non-empty signature (counted before the signature is verified).
    #[error("signature-check budget of the input exceeded")]
    SigCheckBudget,
    /// An undefined opcode appears in the script.
    #[error("undefined opcode 0x{0:02x}")]
    BadOpcode(u8),
    /// A push runs past the end of the script.
    #[error("push past the end of the script")]
    TruncatedPush,
    /// `OP_ELSE`/`OP_ENDIF` without `OP_IF`, or an `OP_IF` left open at the end.
    #[error("unbalanced conditional")]
    UnbalancedConditional,
    /// Data pushed with a longer opcode than necessary.
    #[error("non-minimal data push")]
    MinimalData,
    /// The argument of `OP_IF`/`OP_NOTIF` is neither empty nor exactly `0x01`.
    #[error("OP_IF/OP_NOTIF argument must be empty or 0x01")]
    MinimalIf,
    /// A number operand is not minimally encoded.
    #[error("non-minimally encoded script number")]
    NonMinimalNumber,
    /// A number operand is longer than allowed (4 bytes, 5 for lock times).
    #[error("script number overflow")]
    NumberOverflow,

    // ----- Witness programs -----
    /// The spent output's script is not a witness program: it cannot be spent.
    #[error("spent output is not a witness program")]
    NotWitnessProgram,
    /// The input's `script_sig` is not empty (witness spends require it empty).
    #[error("script_sig must be empty for witness spends")]
    NonEmptyScriptSig,
    /// A version 0 or 1 program is not 32 bytes.
    #[error("witness program has the wrong length for its version")]
    WitnessProgramWrongLength,
    /// The witness script does not hash to the script-hash program.
    #[error("witness script does not match the witness program")]
    WitnessProgramMismatch,
    /// A script-hash spend has an empty witness.
    #[error("empty witness for a script-hash output")]
    WitnessEmpty,
    /// A key spend's witness is not exactly one item.
    #[error("a key spend's witness must be exactly one signature")]
    KeyWitnessCount,
    /// The witness has more than 100 items.
    #[error("too many witness items")]
    WitnessItemCount,
    /// Spending an unknown witness version under a policy that discourages it.
    #[error("spending an upgradable witness program is non-standard")]
    DiscourageUpgradableWitnessProgram,

    // ----- Covenants -----
    /// `OP_CHECKRECOVERYPENDINGVERIFY`: the output at this input's index is missing, does not pay
    /// the recovery-pending template, or pays too little.
    #[error("recovery must pay the recovery-pending output")]
    RecoveryOutputMismatch,
    /// `OP_CHECKRECOVERYPENDINGVERIFY`: the transaction does not have exactly one output per
    /// input, or some output is worth more than the input at its index, so value (a recovered
    /// coin's fee allowance) could reach an output other than its own recovery-pending output.
    #[error("recovery transaction must pay each output at most the input at its index")]
    RecoveryValueMoved,
    /// `OP_CHECKRECOVERYPENDINGVERIFY`: the cancel window is not a valid relative lock.
    #[error("invalid recovery cancel window")]
    InvalidRecoveryParameter,
    /// `OP_CHECKEMISSIONVERIFY`: an output is not an emission-return output, there are none, or
    /// the fee exceeds the bound.
    #[error("emission sweep must pay only emission-return outputs")]
    EmissionOutputMismatch,

    // ----- Context -----
    /// The input index is not an input of the transaction.
    #[error("input index out of range")]
    InputIndexOutOfRange,
    /// The number of spent outputs differs from the number of inputs.
    #[error("spent outputs do not match the transaction's inputs")]
    SpentOutputsMismatch,
}
