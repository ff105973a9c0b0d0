//! Spending rules: witness programs and the verification entry points.
//!
//! Every spendable output is a witness program `[OP_n, L, program]` (what
//! `rnet_primitives::Address::script_pubkey` produces):
//!
//! | version | program | meaning | witness |
//! |---|---|---|---|
//! | 1 | 32 bytes | key output: the Ed25519 public key | `[signature]` |
//! | 0 | 32 bytes | script-hash output: Keccak-256d(witness script) | `[args…, witness_script]` |
//! | 0 or 1 | other length | invalid: fails with `WitnessProgramWrongLength` | — |
//! | 2..=16 | 2..=40 bytes | reserved for soft forks: anyone can spend (consensus); non-standard | anything |
//!
//! Any other scriptPubKey cannot be spent (`NotWitnessProgram`). The `script_sig` must be empty.
//!
//! Signatures commit to the genesis block id of the chain (see [`crate::sighash`]): the entry
//! points take it explicitly ([`verify_transaction`]) or through the [`SighashCache`] a
//! [`SpendContext`] is made from ([`verify_input`]).

use core::fmt;

use rnet_crypto::BatchVerifier;
use rnet_primitives::{BlockHash, Transaction, TxIn, TxOut};

use crate::covenant::is_emission_return;
use crate::error::ScriptError;
use crate::interpreter::{Checker, eval_script};
use crate::num::cast_to_bool;
use crate::script::{MAX_SCRIPT_ELEMENT_SIZE, MAX_SCRIPT_SIZE};
use crate::sighash::SighashCache;

/// The maximum number of witness items of a key or script-hash spend (the witness script
/// included).
pub const MAX_WITNESS_ITEMS: usize = 100;

/// The witness version of key outputs.
pub const KEY_WITNESS_VERSION: u8 = 1;
/// The witness version of script-hash outputs.
pub const SCRIPT_HASH_WITNESS_VERSION: u8 = 0;

/// Rules that are policy (mempool/relay), not consensus. Consensus uses
/// [`VerifyFlags::CONSENSUS`]; the mempool [`VerifyFlags::STANDARD`]. All other rules of the
/// interpreter (minimal pushes, MINIMALIF, NULLFAIL, clean stack, CLTV, CSV, the covenants) are
/// consensus from genesis and have no flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VerifyFlags {
    /// Fail spends of witness versions 2..=16 (reserved for future soft forks) with
    /// [`ScriptError::DiscourageUpgradableWitnessProgram`] instead of accepting them.
    pub discourage_upgradable_witness_program: bool,
    /// Fail a non-empty signature under a weak key ([`rnet_crypto::PublicKey::is_weak`]: small
    /// order or non-canonical encoding, which anyone can sign for) with
    /// [`ScriptError::WeakPublicKey`].
    pub reject_weak_keys: bool,
}

impl VerifyFlags {
    /// The consensus rules only.
    pub const CONSENSUS: Self =
        Self { discourage_upgradable_witness_program: false, reject_weak_keys: false };
    /// Consensus plus relay policy.
    pub const STANDARD: Self =
        Self { discourage_upgradable_witness_program: true, reject_weak_keys: true };
}

/// Everything needed to verify one input: the transaction, the index of the input, the outputs
/// spent by all inputs (in input order) and the precomputed signature-hash midstate.
/// Made by [`SighashCache::spend_context`] or [`SpendContext::new`], which check the index.
#[derive(Debug, Clone, Copy)]
pub struct SpendContext<'a> {
    cache: &'a SighashCache<'a>,
    input_index: usize,
}

impl<'a> SpendContext<'a> {
    /// The context for input `input_index` of the cache's transaction.
    pub fn new(cache: &'a SighashCache<'a>, input_index: usize) -> Result<Self, ScriptError> {
        if input_index >= cache.tx().inputs.len() {
            return Err(ScriptError::InputIndexOutOfRange);
        }
        Ok(Self { cache, input_index })
    }

    /// The spending transaction.
    pub fn tx(&self) -> &'a Transaction {
        self.cache.tx()
    }

    /// The index of the input being verified.
    pub fn input_index(&self) -> usize {
        self.input_index
    }

    /// The outputs spent by every input, in input order.
    pub fn spent_outputs(&self) -> &'a [TxOut] {
        self.cache.spent_outputs()
    }

    /// The input being verified.
    pub fn input(&self) -> &'a TxIn {
        // In range: checked by `new`, and the cache holds as many spent outputs as inputs.
        &self.tx().inputs[self.input_index]
    }

    /// The output the input spends.
    pub fn spent_output(&self) -> &'a TxOut {
        &self.spent_outputs()[self.input_index]
    }

    /// The signature-hash cache.
    pub fn cache(&self) -> &'a SighashCache<'a> {
        self.cache
    }
}

/// Splits a witness-program scriptPubKey `[OP_n, L, program]` (`L` = 2..=40 = program length)
/// into `(version, program)`.
pub fn parse_witness_program(script_pubkey: &[u8]) -> Option<(u8, &[u8])> {
    let [op, len, program @ ..] = script_pubkey else {
        return None;
    };
    let version = match *op {
        0x00 => 0,
        0x51..=0x60 => op - 0x50,
        _ => return None,
    };
    (usize::from(*len) == program.len() && (2..=40).contains(&program.len()))
        .then_some((version, program))
}

/// What kind of output a scriptPubKey is (for policy and wallets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// Version 1, 32-byte program: an Ed25519 key.
    Key,
    /// Version 0, 32-byte program: the hash of a witness script.
    ScriptHash,
    /// [`crate::EMISSION_RETURN_SCRIPT`]: credited to the emission pool, unspendable.
    EmissionReturn,
    /// Version 0 or 1 with a program that is not 32 bytes: can never be spent.
    InvalidWitnessProgram,
    /// Version 2..=16: reserved for future soft forks (anyone can spend today).
    UpgradableWitnessProgram,
    /// Anything else: can never be spent.
    NonStandard,
}

/// Classifies a scriptPubKey.
pub fn classify(script_pubkey: &[u8]) -> OutputKind {
    if is_emission_return(script_pubkey) {
        return OutputKind::EmissionReturn;
    }
    match parse_witness_program(script_pubkey) {
        Some((KEY_WITNESS_VERSION, p)) if p.len() == 32 => OutputKind::Key,
        Some((SCRIPT_HASH_WITNESS_VERSION, p)) if p.len() == 32 => OutputKind::ScriptHash,
        Some((0 | 1, _)) => OutputKind::InvalidWitnessProgram,
        Some(_) => OutputKind::UpgradableWitnessProgram,
        None => OutputKind::NonStandard,
    }
}

/// Verifies that input `ctx.input_index()` may spend its output, checking every signature at
/// once. Signatures are checked for the chain of the context's cache
/// ([`SighashCache::genesis`]).
pub fn verify_input(ctx: &SpendContext<'_>, flags: VerifyFlags) -> Result<(), ScriptError> {
    verify_input_inner(ctx, flags, None)
}

/// Like [`verify_input`], but every well-encoded non-empty signature is queued into `batch`
/// (and taken as valid) instead of being verified. The input is valid iff this returns `Ok` and
/// the batch later verifies. Sound because of NULLFAIL: a non-empty signature that does not
/// verify fails the script in [`verify_input`] too, so a script's control flow never depends on
/// whether a signature verifies. Only the error reported may differ (a bad signature shows up as
/// a failed batch rather than [`ScriptError::SigCheckFailed`]). On `Err`, items this input
/// queued stay in `batch`; discard the batch when the transaction is rejected.
pub fn verify_input_batched(
    ctx: &SpendContext<'_>,
    flags: VerifyFlags,
    batch: &mut BatchVerifier,
) -> Result<(), ScriptError> {
    verify_input_inner(ctx, flags, Some(batch))
}

fn verify_input_inner(
    ctx: &SpendContext<'_>,
    flags: VerifyFlags,
    batch: Option<&mut BatchVerifier>,
) -> Result<(), ScriptError> {
    let input = ctx.input();
    let script_pubkey = ctx.spent_output().script_pubkey.as_slice();
    if !input.script_sig.is_empty() {
        return Err(ScriptError::NonEmptyScriptSig);
    }
    let (version, program) =
        parse_witness_program(script_pubkey).ok_or(ScriptError::NotWitnessProgram)?;
    let witness = input.witness.items();
    match version {
        0 | 1 if program.len() != 32 => Err(ScriptError::WitnessProgramWrongLength),
        KEY_WITNESS_VERSION => {
            let [sig] = witness else {
                return Err(ScriptError::KeyWitnessCount);
            };
            let mut checker = Checker::new(ctx, script_pubkey, batch, flags);
            if checker.check_sig(sig, program)? { Ok(()) } else { Err(ScriptError::EvalFalse) }
        }
        SCRIPT_HASH_WITNESS_VERSION => {
            if witness.len() > MAX_WITNESS_ITEMS {
                return Err(ScriptError::WitnessItemCount);
            }
            let (script, args) = witness.split_last().ok_or(ScriptError::WitnessEmpty)?;
            if script.len() > MAX_SCRIPT_SIZE {
                return Err(ScriptError::ScriptSize);
            }
            if rnet_crypto::keccak256d(script)[..] != *program {
                return Err(ScriptError::WitnessProgramMismatch);
            }
            if args.iter().any(|a| a.len() > MAX_SCRIPT_ELEMENT_SIZE) {
                return Err(ScriptError::PushSize);
            }
            let mut stack = args.to_vec();
            let mut checker = Checker::new(ctx, script, batch, flags);
            eval_script(script, &mut stack, &mut checker)?;
            match stack.as_slice() {
                [] => Err(ScriptError::EvalFalse),
                [.., top] if !cast_to_bool(top) => Err(ScriptError::EvalFalse),
                [_] => Ok(()),
                _ => Err(ScriptError::CleanStack),
            }
        }
        _ if flags.discourage_upgradable_witness_program => {
            Err(ScriptError::DiscourageUpgradableWitnessProgram)
        }
        _ => Ok(()),
    }
}

/// A script failure of one input of a transaction (or of the transaction as a whole, when
/// `input` is `None`: the spent outputs do not match the inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxScriptError {
    /// The failing input, if the failure is specific to one.
    pub input: Option<usize>,
    /// The reason.
    pub error: ScriptError,
}

impl fmt::Display for TxScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.input {
            Some(i) => write!(f, "input {i}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for TxScriptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Verifies every input of `tx` (spending `spent_outputs`, in input order), signatures at once,
/// on the chain whose genesis block id is `genesis` (what every signature commits to).
pub fn verify_transaction(
    genesis: &BlockHash,
    tx: &Transaction,
    spent_outputs: &[TxOut],
    flags: VerifyFlags,
) -> Result<(), TxScriptError> {
    verify_transaction_inner(genesis, tx, spent_outputs, flags, None)
}

/// Verifies every input of `tx`, queueing signatures into `batch` (see
/// [`verify_input_batched`]); the transaction is valid iff this is `Ok` and the batch verifies.
pub fn verify_transaction_batched(
    genesis: &BlockHash,
    tx: &Transaction,
    spent_outputs: &[TxOut],
    flags: VerifyFlags,
    batch: &mut BatchVerifier,
) -> Result<(), TxScriptError> {
    verify_transaction_inner(genesis, tx, spent_outputs, flags, Some(batch))
}

fn verify_transaction_inner(
    genesis: &BlockHash,
    tx: &Transaction,
    spent_outputs: &[TxOut],
    flags: VerifyFlags,
    mut batch: Option<&mut BatchVerifier>,
) -> Result<(), TxScriptError> {
    let cache = SighashCache::new(genesis, tx, spent_outputs)
        .map_err(|error| TxScriptError { input: None, error })?;
    for index in 0..tx.inputs.len() {
        let wrap = |error| TxScriptError { input: Some(index), error };
        let ctx = SpendContext::new(&cache, index).map_err(wrap)?;
        verify_input_inner(&ctx, flags, batch.as_deref_mut()).map_err(wrap)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rnet_crypto::SigningKey;
    use rnet_primitives::{Amount, OutPoint, Txid, Witness};

    use super::*;
    use crate::opcodes::{OP_0, OP_1, OP_ENDIF, OP_IF};

    const GENESIS: BlockHash = BlockHash([0x47; 32]);
    use crate::script::Builder;
    use crate::sighash::SighashType;
    use crate::templates::{key_script_pubkey, script_hash, script_hash_script_pubkey};

    fn spend(spk: Vec<u8>, witness: Vec<Vec<u8>>) -> (Transaction, Vec<TxOut>) {
        let tx = Transaction {
            version: 2,
            inputs: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_bytes([3; 32]), 1),
                script_sig: Vec::new(),
                sequence: 0,
                witness: Witness(witness),
            }],
            outputs: vec![TxOut { value: Amount(90), script_pubkey: vec![0x51, 2, 0, 0] }],
            lock_time: 0,
        };
        (tx, vec![TxOut { value: Amount(100), script_pubkey: spk }])
    }

    fn check(tx: &Transaction, spent: &[TxOut], flags: VerifyFlags) -> Result<(), ScriptError> {
        verify_transaction(&GENESIS, tx, spent, flags).map_err(|e| e.error)
    }

    #[test]
    fn witness_program_parsing() {
        assert_eq!(parse_witness_program(&[0x00, 2, 7, 8]), Some((0, &[7u8, 8][..])));
        assert_eq!(parse_witness_program(&[0x60, 2, 7, 8]), Some((16, &[7u8, 8][..])));
        assert_eq!(parse_witness_program(&[0x50, 2, 7, 8]), None);
        assert_eq!(parse_witness_program(&[0x00, 3, 7, 8]), None);
        assert_eq!(parse_witness_program(&[0x00, 1, 7]), None);
        assert_eq!(parse_witness_program(&[0x00]), None);
        let mut long = vec![0x51, 41];
        long.extend([0; 41]);
        assert_eq!(parse_witness_program(&long), None);
    }

    #[test]
    fn classification() {
        let key = SigningKey::from_bytes(&[1; 32]).public_key();
        assert_eq!(classify(&key_script_pubkey(&key)), OutputKind::Key);
        assert_eq!(classify(&script_hash_script_pubkey(&[0; 32])), OutputKind::ScriptHash);
        assert_eq!(classify(crate::EMISSION_RETURN_SCRIPT), OutputKind::EmissionReturn);
        assert_eq!(classify(&[0x00, 2, 0, 0]), OutputKind::InvalidWitnessProgram);
        assert_eq!(classify(&[0x52, 2, 0, 0]), OutputKind::UpgradableWitnessProgram);
        assert_eq!(classify(&[0x6a]), OutputKind::NonStandard);
    }

    #[test]
    fn key_spend() {
        let sk = SigningKey::from_bytes(&[5; 32]);
        let spk = key_script_pubkey(&sk.public_key());
        let (mut tx, spent) = spend(spk.clone(), vec![]);
        let sig = SighashCache::new(&GENESIS, &tx, &spent)
            .unwrap()
            .sign(&sk, 0, &spk, SighashType::All)
            .unwrap();
        tx.inputs[0].witness = Witness(vec![sig.clone()]);
        assert_eq!(check(&tx, &spent, VerifyFlags::STANDARD), Ok(()));
        // The same transaction on a chain with another genesis: the signature does not verify.
        assert_eq!(
            verify_transaction(&BlockHash([0x48; 32]), &tx, &spent, VerifyFlags::STANDARD),
            Err(TxScriptError { input: Some(0), error: ScriptError::SigCheckFailed })
        );
        let mut batch = BatchVerifier::new();
        let other = BlockHash([0x48; 32]);
        let queued =
            verify_transaction_batched(&other, &tx, &spent, VerifyFlags::STANDARD, &mut batch);
        assert_eq!(queued, Ok(()));
        assert!(batch.verify().is_err(), "the batch fails on another chain");

        let mut t = tx.clone();
        t.inputs[0].witness = Witness(vec![vec![]]);
        assert_eq!(check(&t, &spent, VerifyFlags::STANDARD), Err(ScriptError::EvalFalse));
        t.inputs[0].witness = Witness(vec![]);
        assert_eq!(check(&t, &spent, VerifyFlags::STANDARD), Err(ScriptError::KeyWitnessCount));
        t.inputs[0].witness = Witness(vec![sig.clone(), vec![]]);
        assert_eq!(check(&t, &spent, VerifyFlags::STANDARD), Err(ScriptError::KeyWitnessCount));
        let mut bad = sig.clone();
        bad[10] ^= 1;
        t.inputs[0].witness = Witness(vec![bad]);
        assert_eq!(check(&t, &spent, VerifyFlags::STANDARD), Err(ScriptError::SigCheckFailed));

        let mut t = tx.clone();
        t.inputs[0].script_sig = vec![0x51];
        assert_eq!(check(&t, &spent, VerifyFlags::STANDARD), Err(ScriptError::NonEmptyScriptSig));

        // The signature commits to the amount.
        let mut s = spent.clone();
        s[0].value = Amount(101);
        assert_eq!(check(&tx, &s, VerifyFlags::STANDARD), Err(ScriptError::SigCheckFailed));
    }

    #[test]
    fn script_hash_spend_rules() {
        let script = vec![crate::opcodes::OP_1];
        let spk = script_hash_script_pubkey(&script_hash(&script));
        let (tx, spent) = spend(spk.clone(), vec![script.clone()]);
        assert_eq!(check(&tx, &spent, VerifyFlags::STANDARD), Ok(()));

        let (tx, spent) = spend(spk.clone(), vec![]);
        assert_eq!(check(&tx, &spent, VerifyFlags::STANDARD), Err(ScriptError::WitnessEmpty));
        let (tx, spent) = spend(spk.clone(), vec![vec![0x52]]);
        assert_eq!(
            check(&tx, &spent, VerifyFlags::STANDARD),
            Err(ScriptError::WitnessProgramMismatch)
        );
        let (tx, spent) = spend(spk.clone(), vec![vec![1], script.clone()]);
        assert_eq!(check(&tx, &spent, VerifyFlags::STANDARD), Err(ScriptError::CleanStack));
        let (tx, spent) = spend(spk.clone(), vec![vec![0; 521], script.clone()]);
        assert_eq!(check(&tx, &spent, VerifyFlags::STANDARD), Err(ScriptError::PushSize));
        let (tx, spent) = spend(spk.clone(), vec![vec![]; 101]);
        assert_eq!(check(&tx, &spent, VerifyFlags::STANDARD), Err(ScriptError::WitnessItemCount));

        // Stack result: false on top, or empty.
        let drop = vec![crate::opcodes::OP_DROP];
        let spk = script_hash_script_pubkey(&script_hash(&drop));
        let (tx, spent) = spend(spk.clone(), vec![vec![1], drop.clone()]);
        assert_eq!(check(&tx, &spent, VerifyFlags::STANDARD), Err(ScriptError::EvalFalse));
        let noop = vec![crate::opcodes::OP_0, crate::opcodes::OP_DROP];
        let spk = script_hash_script_pubkey(&script_hash(&noop));
        let (tx, spent) = spend(spk.clone(), vec![vec![0x80], noop.clone()]);
        assert_eq!(check(&tx, &spent, VerifyFlags::STANDARD), Err(ScriptError::EvalFalse));

        // A witness script up to 10 000 bytes is allowed; beyond, ScriptSize.
        let big = |tail: usize| {
            let mut b = Builder::new().push_opcode(OP_0).push_opcode(OP_IF);
            for _ in 0..19 {
                b = b.push_slice(&[7; 520]);
            }
            b.push_slice(&vec![7; tail]).push_opcode(OP_ENDIF).push_opcode(OP_1).into_bytes()
        };
        let ok = big(58);
        assert_eq!(ok.len(), MAX_SCRIPT_SIZE);
        let spk = script_hash_script_pubkey(&script_hash(&ok));
        let (tx, spent) = spend(spk, vec![ok]);
        assert_eq!(check(&tx, &spent, VerifyFlags::STANDARD), Ok(()));
        let too_big = big(59);
        let spk = script_hash_script_pubkey(&script_hash(&too_big));
        let (tx, spent) = spend(spk, vec![too_big]);
        assert_eq!(check(&tx, &spent, VerifyFlags::STANDARD), Err(ScriptError::ScriptSize));
    }

    #[test]
    fn program_versions_and_lengths() {
        let (tx, spent) = spend(
            vec![0x00, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![vec![1]],
        );
        assert_eq!(
            check(&tx, &spent, VerifyFlags::CONSENSUS),
            Err(ScriptError::WitnessProgramWrongLength)
        );
        let (tx, spent) = spend(vec![0x51, 2, 0, 0], vec![]);
        assert_eq!(
            check(&tx, &spent, VerifyFlags::CONSENSUS),
            Err(ScriptError::WitnessProgramWrongLength)
        );
        let (tx, spent) = spend(vec![0x52, 2, 0, 0], vec![]);
        assert_eq!(check(&tx, &spent, VerifyFlags::CONSENSUS), Ok(()));
        assert_eq!(
            check(&tx, &spent, VerifyFlags::STANDARD),
            Err(ScriptError::DiscourageUpgradableWitnessProgram)
        );
        let (tx, spent) = spend(crate::EMISSION_RETURN_SCRIPT.to_vec(), vec![]);
        assert_eq!(check(&tx, &spent, VerifyFlags::CONSENSUS), Err(ScriptError::NotWitnessProgram));
        let (tx, spent) = spend(vec![], vec![]);
        assert_eq!(check(&tx, &spent, VerifyFlags::CONSENSUS), Err(ScriptError::NotWitnessProgram));
    }

    #[test]
    fn transaction_errors_name_the_input() {
        let (tx, spent) = spend(vec![0x6a], vec![]);
        let err = verify_transaction(&GENESIS, &tx, &spent, VerifyFlags::CONSENSUS).unwrap_err();
        assert_eq!(err, TxScriptError { input: Some(0), error: ScriptError::NotWitnessProgram });
        assert_eq!(err.to_string(), "input 0: spent output is not a witness program");
        let err = verify_transaction(&GENESIS, &tx, &[], VerifyFlags::CONSENSUS).unwrap_err();
        assert_eq!(err, TxScriptError { input: None, error: ScriptError::SpentOutputsMismatch });
    }
}
