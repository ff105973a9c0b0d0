//! The script interpreter.
//!
//! [`eval_script`] runs one witness script over an initial stack. Signature, lock-time and
//! covenant checks go through a [`Checker`] bound to one input of one transaction, which either
//! verifies each Ed25519 signature at once or queues it into a [`BatchVerifier`].

use rnet_crypto::{BatchVerifier, PublicKey};
use rnet_primitives::transaction::SEQUENCE_FINAL;

use crate::covenant::{check_emission, check_recovery_pending};
use crate::error::ScriptError;
use crate::locktime::{
    LOCKTIME_THRESHOLD, MIN_RELATIVE_LOCK_TX_VERSION, SEQUENCE_LOCKTIME_DISABLE_FLAG,
    SEQUENCE_LOCKTIME_MASK, SEQUENCE_LOCKTIME_TYPE_FLAG,
};
use crate::num::{MAX_LOCKTIME_NUM_SIZE, MAX_NUM_SIZE, cast_to_bool, decode_num, encode_num};
use crate::opcodes::*;
use crate::script::{
    Instruction, Instructions, MAX_SCRIPT_ELEMENT_SIZE, MAX_SCRIPT_SIZE, counts_as_op,
    is_minimal_push,
};
use crate::sighash::{SighashType, parse_signature};
use crate::verify::{SpendContext, VerifyFlags};

/// The maximum number of items on the stack and the alt stack together.
pub const MAX_STACK_SIZE: usize = 1000;
/// The maximum number of non-push operations in a script (each multisig key counts as one more).
pub const MAX_OPS_PER_SCRIPT: usize = 201;
/// The maximum number of keys of one `OP_CHECKMULTISIG`.
pub const MAX_PUBKEYS_PER_MULTISIG: usize = 20;
/// What each non-empty signature check costs from an input's signature-check budget.
pub const SIG_CHECK_COST: u64 = 50;
/// The budget every input starts with, on top of the encoded size of its witness.
pub const SIG_CHECK_BUDGET_BASE: u64 = 50;

/// The signature-check budget of an input with `witness`: [`SIG_CHECK_BUDGET_BASE`] plus the
/// witness's consensus-encoded size (as tapscript's validation-weight budget). Every non-empty
/// signature costs [`SIG_CHECK_COST`], so a witness pays with its own bytes for each check.
pub fn sig_check_budget(witness: &[Vec<u8>]) -> u64 {
    let compact = |n: usize| match n {
        0..=0xfc => 1u64,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    };
    let items: u64 = witness.iter().map(|i| compact(i.len()) + i.len() as u64).sum();
    SIG_CHECK_BUDGET_BASE + compact(witness.len()) + items
}

/// Checks signatures, lock times and covenants for one input.
pub(crate) struct Checker<'c, 'a> {
    ctx: &'c SpendContext<'a>,
    script_code: &'c [u8],
    batch: Option<&'c mut BatchVerifier>,
    flags: VerifyFlags,
    sighash_all: Option<[u8; 32]>,
    sighash_acp: Option<[u8; 32]>,
    /// What is left of the input's signature-check budget ([`sig_check_budget`]).
    budget_left: u64,
}

impl<'c, 'a> Checker<'c, 'a> {
    /// A checker for `ctx`'s input whose signatures sign `script_code`. With `batch`, valid
    /// encodings of signatures are queued instead of verified.
    pub(crate) fn new(
        ctx: &'c SpendContext<'a>,
        script_code: &'c [u8],
        batch: Option<&'c mut BatchVerifier>,
        flags: VerifyFlags,
    ) -> Self {
        let budget_left = sig_check_budget(ctx.input().witness.items());
        Self { ctx, script_code, batch, flags, sighash_all: None, sighash_acp: None, budget_left }
    }

    /// The signature hash of this input for `ty`, computed at most once per type.
    fn sighash(&mut self, ty: SighashType) -> Result<[u8; 32], ScriptError> {
        let slot = match ty {
            SighashType::All => &mut self.sighash_all,
            SighashType::AllAnyoneCanPay => &mut self.sighash_acp,
        };
        if let Some(h) = slot {
            return Ok(*h);
        }
        let h = self.ctx.cache().signature_hash(self.ctx.input_index(), self.script_code, ty)?;
        *slot = Some(h);
        Ok(h)
    }

    /// Takes `n` signature checks from the input's budget, before any of them is verified
    /// (`SigCheckBudget` when the budget cannot pay).
    pub(crate) fn charge(&mut self, n: usize) -> Result<(), ScriptError> {
        let cost = (n as u64).saturating_mul(SIG_CHECK_COST);
        self.budget_left = self.budget_left.checked_sub(cost).ok_or(ScriptError::SigCheckBudget)?;
        Ok(())
    }

    /// `<sig> <pubkey> CHECKSIG`: the key must be 32 bytes; an empty signature is false; a
    /// non-empty one is charged to the budget ([`Checker::charge`]), must be well encoded, its
    /// key a curve point, and it must verify (NULLFAIL), or the script fails. In batch mode a
    /// well-encoded signature is queued and taken as true.
    pub(crate) fn check_sig(&mut self, sig: &[u8], pubkey: &[u8]) -> Result<bool, ScriptError> {
        if !sig.is_empty() {
            self.charge(1)?;
        }
        self.check_charged_sig(sig, pubkey)
    }

    /// [`Checker::check_sig`] for a signature already charged to the budget.
    fn check_charged_sig(&mut self, sig: &[u8], pubkey: &[u8]) -> Result<bool, ScriptError> {
        let pubkey: &[u8; 32] = pubkey.try_into().map_err(|_| ScriptError::InvalidPublicKey)?;
        if sig.is_empty() {
            return Ok(false);
        }
        let (sig, ty) = parse_signature(sig)?;
        let key = PublicKey::from_bytes(pubkey).map_err(|_| ScriptError::InvalidPublicKey)?;
        if self.flags.reject_weak_keys && key.is_weak() {
            return Err(ScriptError::WeakPublicKey);
        }
        let msg = self.sighash(ty)?;
        match self.batch.as_deref_mut() {
            Some(batch) => {
                batch.queue(&key, &msg, &sig);
                Ok(true)
            }
            None => key.verify(&msg, &sig).map(|()| true).map_err(|_| ScriptError::SigCheckFailed),
        }
    }

    /// BIP65 `OP_CHECKLOCKTIMEVERIFY` against the transaction's lock time.
    fn check_lock_time(&self, n: i64) -> Result<(), ScriptError> {
        if n < 0 {
            return Err(ScriptError::NegativeLockTime);
        }
        let tx_lock = i64::from(self.ctx.tx().lock_time);
        let threshold = i64::from(LOCKTIME_THRESHOLD);
        let same_type = (tx_lock < threshold) == (n < threshold);
        if !same_type || n > tx_lock || self.ctx.input().sequence == SEQUENCE_FINAL {
            return Err(ScriptError::UnsatisfiedLockTime);
        }
        Ok(())
    }

    /// BIP112 `OP_CHECKSEQUENCEVERIFY` against the input's sequence.
    fn check_sequence(&self, n: i64) -> Result<(), ScriptError> {
        if n < 0 {
            return Err(ScriptError::NegativeLockTime);
        }
        // A 5-byte operand fits in 40 bits; the flags live in the low 32.
        let n = n as u64;
        if n & u64::from(SEQUENCE_LOCKTIME_DISABLE_FLAG) != 0 {
            return Ok(()); // No requirement: reserved for future soft forks (BIP112).
        }
        if self.ctx.tx().version < MIN_RELATIVE_LOCK_TX_VERSION {
            return Err(ScriptError::UnsatisfiedSequence);
        }
        let seq = u64::from(self.ctx.input().sequence);
        if seq & u64::from(SEQUENCE_LOCKTIME_DISABLE_FLAG) != 0 {
            return Err(ScriptError::UnsatisfiedSequence);
        }
        let type_flag = u64::from(SEQUENCE_LOCKTIME_TYPE_FLAG);
        let mask = type_flag | u64::from(SEQUENCE_LOCKTIME_MASK);
        let (req, have) = (n & mask, seq & mask);
        if (req & type_flag) != (have & type_flag) || req > have {
            return Err(ScriptError::UnsatisfiedSequence);
        }
        Ok(())
    }
}

/// The main stack, with checked access.
struct Stack<'s>(&'s mut Vec<Vec<u8>>);

impl Stack<'_> {
    fn pop(&mut self) -> Result<Vec<u8>, ScriptError> {
        self.0.pop().ok_or(ScriptError::StackUnderflow)
    }

    fn push(&mut self, v: Vec<u8>) {
        self.0.push(v);
    }

    fn push_bool(&mut self, b: bool) {
        self.0.push(if b { vec![1] } else { Vec::new() });
    }

    fn push_num(&mut self, n: i64) {
        self.0.push(encode_num(n));
    }

    /// The item `depth` below the top (0 = top).
    fn peek(&self, depth: usize) -> Result<&Vec<u8>, ScriptError> {
        let len = self.0.len();
        if depth >= len {
            return Err(ScriptError::StackUnderflow);
        }
        Ok(&self.0[len - 1 - depth])
    }

    fn pop_num(&mut self) -> Result<i64, ScriptError> {
        let v = self.pop()?;
        decode_num(&v, MAX_NUM_SIZE)
    }

    fn pop_bool(&mut self) -> Result<bool, ScriptError> {
        self.pop().map(|v| cast_to_bool(&v))
    }

    fn need(&self, n: usize) -> Result<(), ScriptError> {
        if self.0.len() < n { Err(ScriptError::StackUnderflow) } else { Ok(()) }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The condition stack of nested IF/ELSE branches.
#[derive(Default)]
struct CondStack {
    conds: Vec<bool>,
    false_count: usize,
}

impl CondStack {
    fn executing(&self) -> bool {
        self.false_count == 0
    }

    fn push(&mut self, c: bool) {
        if !c {
            self.false_count += 1;
        }
        self.conds.push(c);
    }

    fn toggle(&mut self) -> Result<(), ScriptError> {
        let c = self.conds.last_mut().ok_or(ScriptError::UnbalancedConditional)?;
        if *c {
            self.false_count += 1;
        } else {
            self.false_count -= 1;
        }
        *c = !*c;
        Ok(())
    }

    fn pop(&mut self) -> Result<(), ScriptError> {
        let c = self.conds.pop().ok_or(ScriptError::UnbalancedConditional)?;
        if !c {
            self.false_count -= 1;
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.conds.is_empty()
    }
}

/// Runs `script` over `stack` (bottom first). On success the stack holds the final items; the
/// caller applies the clean-stack rule.
pub(crate) fn eval_script(
    script: &[u8],
    stack: &mut Vec<Vec<u8>>,
    checker: &mut Checker<'_, '_>,
) -> Result<(), ScriptError> {
    if script.len() > MAX_SCRIPT_SIZE {
        return Err(ScriptError::ScriptSize);
    }
    let mut stack = Stack(stack);
    let mut alt: Vec<Vec<u8>> = Vec::new();
    let mut conds = CondStack::default();
    let mut op_count = 0usize;

    for ins in Instructions::new(script) {
        let executing = conds.executing();
        match ins? {
            Instruction::Push { opcode, data } => {
                if data.len() > MAX_SCRIPT_ELEMENT_SIZE {
                    return Err(ScriptError::PushSize);
                }
                if !is_minimal_push(opcode, data) {
                    return Err(ScriptError::MinimalData);
                }
                if executing {
                    stack.push(data.to_vec());
                }
            }
            Instruction::Op(op) => {
                if !is_defined(op) {
                    return Err(ScriptError::BadOpcode(op));
                }
                if counts_as_op(op) {
                    op_count += 1;
                    if op_count > MAX_OPS_PER_SCRIPT {
                        return Err(ScriptError::OpCount);
                    }
                }
                match op {
                    OP_IF | OP_NOTIF => {
                        let mut cond = false;
                        if executing {
                            let v = stack.pop()?;
                            cond = match v.as_slice() {
                                [] => false,
                                [1] => true,
                                _ => return Err(ScriptError::MinimalIf),
                            };
                            if op == OP_NOTIF {
                                cond = !cond;
                            }
                        }
                        conds.push(cond);
                    }
                    OP_ELSE => conds.toggle()?,
                    OP_ENDIF => conds.pop()?,
                    _ if executing => {
                        execute(op, &mut stack, &mut alt, &mut op_count, checker)?;
                    }
                    _ => {}
                }
            }
        }
        if stack.len() + alt.len() > MAX_STACK_SIZE {
            return Err(ScriptError::StackOverflow);
        }
    }
    if !conds.is_empty() {
        return Err(ScriptError::UnbalancedConditional);
    }
    Ok(())
}

/// Executes one non-push, non-flow-control opcode (`OP_1NEGATE` and `OP_1..OP_16` included).
fn execute(
    op: u8,
    stack: &mut Stack<'_>,
    alt: &mut Vec<Vec<u8>>,
    op_count: &mut usize,
    checker: &mut Checker<'_, '_>,
) -> Result<(), ScriptError> {
    match op {
        OP_1NEGATE => stack.push_num(-1),
        OP_1..=OP_16 => stack.push_num(i64::from(op - OP_1 + 1)),

        OP_VERIFY => {
            if !stack.pop_bool()? {
                return Err(ScriptError::Verify);
            }
        }
        OP_RETURN => return Err(ScriptError::OpReturn),

        OP_TOALTSTACK => {
            let v = stack.pop()?;
            alt.push(v);
        }
        OP_FROMALTSTACK => {
            let v = alt.pop().ok_or(ScriptError::StackUnderflow)?;
            stack.push(v);
        }
        OP_2DROP => {
            stack.need(2)?;
            stack.pop()?;
            stack.pop()?;
        }
        OP_2DUP => {
            let a = stack.peek(1)?.clone();
            let b = stack.peek(0)?.clone();
            stack.push(a);
            stack.push(b);
        }
        OP_DROP => {
            stack.pop()?;
        }
        OP_DUP => {
            let v = stack.peek(0)?.clone();
            stack.push(v);
        }
        OP_OVER => {
            let v = stack.peek(1)?.clone();
            stack.push(v);
        }
        OP_PICK | OP_ROLL => {
            let n = stack.pop_num()?;
            let n = usize::try_from(n).map_err(|_| ScriptError::InvalidStackOperation)?;
            if n >= stack.len() {
                return Err(ScriptError::InvalidStackOperation);
            }
            let idx = stack.len() - 1 - n;
            let v = if op == OP_PICK { stack.0[idx].clone() } else { stack.0.remove(idx) };
            stack.push(v);
        }
        OP_ROT => {
            stack.need(3)?;
            let idx = stack.len() - 3;
            let v = stack.0.remove(idx);
            stack.push(v);
        }
        OP_SWAP => {
            stack.need(2)?;
            let len = stack.len();
            stack.0.swap(len - 1, len - 2);
        }
        OP_SIZE => {
            let n = stack.peek(0)?.len();
            stack.push_num(n as i64);
        }
        OP_EQUAL | OP_EQUALVERIFY => {
            stack.need(2)?;
            let b = stack.pop()?;
            let a = stack.pop()?;
            let eq = a == b;
            if op == OP_EQUALVERIFY {
                if !eq {
                    return Err(ScriptError::EqualVerify);
                }
            } else {
                stack.push_bool(eq);
            }
        }

        OP_1ADD | OP_NOT | OP_0NOTEQUAL => {
            let a = stack.pop_num()?;
            let r = match op {
                OP_1ADD => a + 1,
                OP_NOT => i64::from(a == 0),
                _ => i64::from(a != 0),
            };
            stack.push_num(r);
        }
        OP_ADD | OP_SUB | OP_BOOLAND | OP_BOOLOR | OP_NUMEQUAL | OP_NUMEQUALVERIFY
        | OP_LESSTHAN | OP_GREATERTHAN => {
            stack.need(2)?;
            let b = stack.pop_num()?;
            let a = stack.pop_num()?;
            // Operands are at most 4 bytes (|x| < 2^31), so no i64 overflow is possible.
            let r = match op {
                OP_ADD => a + b,
                OP_SUB => a - b,
                OP_BOOLAND => i64::from(a != 0 && b != 0),
                OP_BOOLOR => i64::from(a != 0 || b != 0),
                OP_NUMEQUAL | OP_NUMEQUALVERIFY => i64::from(a == b),
                OP_LESSTHAN => i64::from(a < b),
                _ => i64::from(a > b),
            };
            if op == OP_NUMEQUALVERIFY {
                if r == 0 {
                    return Err(ScriptError::NumEqualVerify);
                }
            } else {
                stack.push_num(r);
            }
        }
        OP_WITHIN => {
            stack.need(3)?;
            let max = stack.pop_num()?;
            let min = stack.pop_num()?;
            let x = stack.pop_num()?;
            stack.push_bool(min <= x && x < max);
        }

        OP_KECCAK256D => {
            let v = stack.pop()?;
            stack.push(rnet_crypto::keccak256d(&v).to_vec());
        }
        OP_CHECKSIG | OP_CHECKSIGVERIFY => {
            stack.need(2)?;
            let pubkey = stack.pop()?;
            let sig = stack.pop()?;
            let ok = checker.check_sig(&sig, &pubkey)?;
            if op == OP_CHECKSIGVERIFY {
                if !ok {
                    return Err(ScriptError::CheckSigVerify);
                }
            } else {
                stack.push_bool(ok);
            }
        }
        OP_CHECKMULTISIG | OP_CHECKMULTISIGVERIFY => {
            let n = stack.pop_num()?;
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n <= MAX_PUBKEYS_PER_MULTISIG)
                .ok_or(ScriptError::MultisigKeyCount)?;
            *op_count += n;
            if *op_count > MAX_OPS_PER_SCRIPT {
                return Err(ScriptError::OpCount);
            }
            // Stack: sig_1 … sig_n m pk_1 … pk_n (top).
            stack.need(2 * n + 1)?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                keys.push(stack.pop()?);
            }
            keys.reverse();
            let m = stack.pop_num()?;
            let m = usize::try_from(m)
                .ok()
                .filter(|&m| m <= n)
                .ok_or(ScriptError::MultisigThreshold)?;
            let mut sigs = Vec::with_capacity(n);
            for _ in 0..n {
                sigs.push(stack.pop()?);
            }
            sigs.reverse();
            // Count before verifying: exactly `m` signatures (true) or none (false); any other
            // count fails, so the witness cannot be malleated by blanking a surplus signature.
            let present = sigs.iter().filter(|sig| !sig.is_empty()).count();
            if present != m && present != 0 {
                return Err(ScriptError::MultisigSignatureCount);
            }
            // All of them are charged to the budget before the first one is verified.
            checker.charge(present)?;
            for (sig, key) in sigs.iter().zip(&keys) {
                // Empty slots give false; a non-empty one verifies or fails (NULLFAIL).
                checker.check_charged_sig(sig, key)?;
            }
            let ok = present == m;
            if op == OP_CHECKMULTISIGVERIFY {
                if !ok {
                    return Err(ScriptError::CheckMultisigVerify);
                }
            } else {
                stack.push_bool(ok);
            }
        }
        OP_CHECKLOCKTIMEVERIFY => {
            let n = decode_num(stack.peek(0)?, MAX_LOCKTIME_NUM_SIZE)?;
            checker.check_lock_time(n)?;
        }
        OP_CHECKSEQUENCEVERIFY => {
            let n = decode_num(stack.peek(0)?, MAX_LOCKTIME_NUM_SIZE)?;
            checker.check_sequence(n)?;
        }
        OP_CHECKRECOVERYPENDINGVERIFY => {
            stack.need(3)?;
            let window = stack.pop()?;
            let owner = stack.pop()?;
            let new_key = stack.pop()?;
            check_recovery_pending(checker.ctx, &new_key, &owner, &window)?;
        }
        OP_CHECKEMISSIONVERIFY => check_emission(checker.ctx)?,

        // Undefined opcodes are rejected before execution; flow control is handled by the caller.
        _ => return Err(ScriptError::BadOpcode(op)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rnet_primitives::{Amount, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};

    use super::*;
    use crate::script::Builder;
    use crate::sighash::SighashCache;

    fn tx(version: u32, lock_time: u32, sequence: u32) -> (Transaction, Vec<TxOut>) {
        let tx = Transaction {
            version,
            inputs: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_bytes([1; 32]), 0),
                script_sig: Vec::new(),
                sequence,
                witness: Witness::new(),
            }],
            outputs: vec![TxOut { value: Amount(1), script_pubkey: vec![0x6a] }],
            lock_time,
        };
        (tx, vec![TxOut { value: Amount(2), script_pubkey: vec![0x00, 0x02, 0, 0] }])
    }

    /// Runs `script` over `stack` in a transaction with the given fields; returns the final stack.
    fn run_in(
        script: &[u8],
        stack: Vec<Vec<u8>>,
        (version, lock_time, sequence): (u32, u32, u32),
    ) -> Result<Vec<Vec<u8>>, ScriptError> {
        let (tx, spent) = tx(version, lock_time, sequence);
        let cache = SighashCache::new(&rnet_primitives::BlockHash::ZERO, &tx, &spent).unwrap();
        let ctx = cache.spend_context(0).unwrap();
        let mut checker = Checker::new(&ctx, script, None, VerifyFlags::CONSENSUS);
        let mut stack = stack;
        eval_script(script, &mut stack, &mut checker)?;
        Ok(stack)
    }

    fn run(script: &[u8], stack: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, ScriptError> {
        run_in(script, stack, (2, 0, 0))
    }

    fn ops(ops: &[u8]) -> Vec<u8> {
        ops.to_vec()
    }

    fn n(x: i64) -> Vec<u8> {
        encode_num(x)
    }

    #[test]
    fn pushes_and_small_numbers() {
        let s = Builder::new().push_int(-1).push_int(0).push_int(7).push_int(1000).into_bytes();
        assert_eq!(run(&s, vec![]).unwrap(), vec![n(-1), n(0), n(7), n(1000)]);
        assert_eq!(run(&[OP_0], vec![]).unwrap(), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn minimal_data_enforced() {
        assert_eq!(run(&[0x01, 0x05], vec![]), Err(ScriptError::MinimalData));
        assert_eq!(run(&[OP_PUSHDATA1, 0x01, 0x20], vec![]), Err(ScriptError::MinimalData));
        // Also in an unexecuted branch.
        assert_eq!(
            run(&[OP_0, OP_IF, 0x01, 0x05, OP_ENDIF, OP_1], vec![]),
            Err(ScriptError::MinimalData)
        );
    }

    #[test]
    fn push_size_limit() {
        let ok = Builder::new().push_slice(&[7; 520]).into_bytes();
        assert_eq!(run(&ok, vec![]).unwrap().len(), 1);
        let big = Builder::new().push_slice(&[7; 521]).into_bytes();
        assert_eq!(run(&big, vec![]), Err(ScriptError::PushSize));
    }

    #[test]
    fn script_size_limit() {
        let s = vec![OP_1; MAX_SCRIPT_SIZE + 1];
        assert_eq!(run(&s, vec![]), Err(ScriptError::ScriptSize));
    }

    #[test]
    fn op_count_limit() {
        let mut s = vec![OP_1];
        s.extend(std::iter::repeat_n([OP_DUP, OP_DROP], 100).flatten());
        s.push(OP_DUP);
        assert!(run(&s, vec![]).is_ok(), "201 ops");
        s.push(OP_DROP);
        assert_eq!(run(&s, vec![]), Err(ScriptError::OpCount));
        // Unexecuted ops count too.
        let mut s = vec![OP_0, OP_IF];
        s.extend(std::iter::repeat_n(OP_DUP, 200));
        s.extend([OP_ENDIF, OP_1]);
        assert_eq!(run(&s, vec![]), Err(ScriptError::OpCount));
    }

    #[test]
    fn stack_size_limit() {
        // 999 pushes + DUP = 1000 items: fine; one more DUP overflows.
        let mut s = vec![OP_1; 999];
        s.push(OP_DUP);
        assert_eq!(run(&s, vec![]).unwrap().len(), 1000);
        s.push(OP_DUP);
        assert_eq!(run(&s, vec![]), Err(ScriptError::StackOverflow));
        // The alt stack counts too.
        let mut s = vec![OP_1; 1000];
        s.push(OP_TOALTSTACK);
        s.push(OP_1);
        assert_eq!(run(&s, vec![]), Err(ScriptError::StackOverflow));
    }

    #[test]
    fn undefined_opcodes_fail_everywhere() {
        for op in [0x50, 0x61, 0xa9, 0xab, 0xb0, 0xb3, 0xc2, 0xff] {
            assert_eq!(run(&[op], vec![]), Err(ScriptError::BadOpcode(op)), "{op:#x}");
            assert_eq!(
                run(&[OP_0, OP_IF, op, OP_ENDIF, OP_1], vec![]),
                Err(ScriptError::BadOpcode(op)),
                "unexecuted {op:#x}"
            );
        }
    }

    #[test]
    fn conditionals() {
        let s = ops(&[OP_IF, OP_2, OP_ELSE, OP_3, OP_ENDIF]);
        assert_eq!(run(&s, vec![vec![1]]).unwrap(), vec![n(2)]);
        assert_eq!(run(&s, vec![vec![]]).unwrap(), vec![n(3)]);
        let s = ops(&[OP_NOTIF, OP_2, OP_ELSE, OP_3, OP_ENDIF]);
        assert_eq!(run(&s, vec![vec![1]]).unwrap(), vec![n(3)]);
        assert_eq!(run(&s, vec![vec![]]).unwrap(), vec![n(2)]);
        // Nested, with the outer branch not taken.
        let s = ops(&[OP_IF, OP_IF, OP_4, OP_ELSE, OP_5, OP_ENDIF, OP_ELSE, OP_6, OP_ENDIF]);
        assert_eq!(run(&s, vec![vec![]]).unwrap(), vec![n(6)]);
        assert_eq!(run(&s, vec![vec![], vec![1]]).unwrap(), vec![n(5)]);
        assert_eq!(run(&s, vec![vec![1], vec![1]]).unwrap(), vec![n(4)]);
        // RETURN in an unexecuted branch is fine.
        assert_eq!(run(&[OP_0, OP_IF, OP_RETURN, OP_ENDIF, OP_1], vec![]).unwrap(), vec![n(1)]);
        assert_eq!(run(&[OP_RETURN], vec![]), Err(ScriptError::OpReturn));
    }

    #[test]
    fn unbalanced_conditionals() {
        for s in [&[OP_1, OP_IF][..], &[OP_ELSE], &[OP_ENDIF], &[OP_1, OP_IF, OP_ENDIF, OP_ENDIF]] {
            assert_eq!(run(s, vec![]), Err(ScriptError::UnbalancedConditional), "{s:?}");
        }
        assert_eq!(run(&[OP_IF, OP_ENDIF], vec![]), Err(ScriptError::StackUnderflow));
    }

    #[test]
    fn minimal_if() {
        let s = ops(&[OP_IF, OP_1, OP_ENDIF]);
        for bad in [vec![2], vec![1, 0], vec![0], vec![0x80]] {
            assert_eq!(run(&s, vec![bad]), Err(ScriptError::MinimalIf));
        }
        let s = ops(&[OP_NOTIF, OP_1, OP_ENDIF]);
        assert_eq!(run(&s, vec![vec![0]]), Err(ScriptError::MinimalIf));
    }

    #[test]
    fn verify_ops() {
        assert_eq!(run(&[OP_VERIFY], vec![vec![1]]).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(run(&[OP_VERIFY], vec![vec![0x80]]), Err(ScriptError::Verify));
        assert_eq!(run(&[OP_VERIFY], vec![]), Err(ScriptError::StackUnderflow));
        assert_eq!(run(&[OP_EQUAL], vec![vec![1], vec![1]]).unwrap(), vec![n(1)]);
        assert_eq!(run(&[OP_EQUAL], vec![vec![1], vec![1, 0]]).unwrap(), vec![n(0)]);
        assert_eq!(run(&[OP_EQUALVERIFY], vec![vec![3], vec![3]]).unwrap().len(), 0);
        assert_eq!(run(&[OP_EQUALVERIFY], vec![vec![3], vec![4]]), Err(ScriptError::EqualVerify));
        assert_eq!(run(&[OP_NUMEQUALVERIFY], vec![n(3), n(3)]).unwrap().len(), 0);
        assert_eq!(run(&[OP_NUMEQUALVERIFY], vec![n(3), n(4)]), Err(ScriptError::NumEqualVerify));
        assert_eq!(run(&[OP_EQUAL], vec![vec![1]]), Err(ScriptError::StackUnderflow));
    }

    #[test]
    fn stack_ops() {
        let abc = || vec![vec![0xa], vec![0xb], vec![0xc]];
        let r = |s: &[u8]| run(s, abc());
        assert_eq!(r(&[OP_DROP]).unwrap(), vec![vec![0xa], vec![0xb]]);
        assert_eq!(r(&[OP_2DROP]).unwrap(), vec![vec![0xa]]);
        assert_eq!(r(&[OP_DUP]).unwrap(), vec![vec![0xa], vec![0xb], vec![0xc], vec![0xc]]);
        assert_eq!(
            r(&[OP_2DUP]).unwrap(),
            vec![vec![0xa], vec![0xb], vec![0xc], vec![0xb], vec![0xc]]
        );
        assert_eq!(r(&[OP_OVER]).unwrap(), vec![vec![0xa], vec![0xb], vec![0xc], vec![0xb]]);
        assert_eq!(r(&[OP_SWAP]).unwrap(), vec![vec![0xa], vec![0xc], vec![0xb]]);
        assert_eq!(r(&[OP_ROT]).unwrap(), vec![vec![0xb], vec![0xc], vec![0xa]]);
        assert_eq!(r(&[OP_2, OP_PICK]).unwrap(), vec![vec![0xa], vec![0xb], vec![0xc], vec![0xa]]);
        assert_eq!(r(&[OP_0, OP_PICK]).unwrap(), vec![vec![0xa], vec![0xb], vec![0xc], vec![0xc]]);
        assert_eq!(r(&[OP_2, OP_ROLL]).unwrap(), vec![vec![0xb], vec![0xc], vec![0xa]]);
        assert_eq!(r(&[OP_3, OP_PICK]), Err(ScriptError::InvalidStackOperation));
        assert_eq!(r(&[OP_1NEGATE, OP_ROLL]), Err(ScriptError::InvalidStackOperation));
        assert_eq!(
            r(&[OP_TOALTSTACK, OP_DROP, OP_FROMALTSTACK]).unwrap(),
            vec![vec![0xa], vec![0xc]]
        );
        assert_eq!(r(&[OP_FROMALTSTACK]), Err(ScriptError::StackUnderflow));
        assert_eq!(r(&[OP_SIZE]).unwrap().last(), Some(&n(1)));
        assert_eq!(run(&[OP_SIZE], vec![vec![]]).unwrap(), vec![vec![], vec![]]);
        assert_eq!(run(&[OP_ROT], vec![vec![], vec![]]), Err(ScriptError::StackUnderflow));
        assert_eq!(run(&[OP_SWAP], vec![vec![]]), Err(ScriptError::StackUnderflow));
        assert_eq!(run(&[OP_2DUP], vec![vec![]]), Err(ScriptError::StackUnderflow));
        assert_eq!(run(&[OP_OVER], vec![vec![]]), Err(ScriptError::StackUnderflow));
        assert_eq!(run(&[OP_2DROP], vec![vec![]]), Err(ScriptError::StackUnderflow));
        assert_eq!(run(&[OP_DUP], vec![]), Err(ScriptError::StackUnderflow));
    }

    #[test]
    fn arithmetic() {
        let bin = |op: u8, a: i64, b: i64| run(&[op], vec![n(a), n(b)]).unwrap();
        assert_eq!(bin(OP_ADD, 2, 3), vec![n(5)]);
        assert_eq!(bin(OP_SUB, 2, 3), vec![n(-1)]);
        assert_eq!(bin(OP_ADD, 0x7fff_ffff, 0x7fff_ffff), vec![n(0xffff_fffe)]);
        assert_eq!(bin(OP_BOOLAND, 1, 0), vec![n(0)]);
        assert_eq!(bin(OP_BOOLAND, -1, 5), vec![n(1)]);
        assert_eq!(bin(OP_BOOLOR, 0, 0), vec![n(0)]);
        assert_eq!(bin(OP_BOOLOR, 0, 7), vec![n(1)]);
        assert_eq!(bin(OP_NUMEQUAL, 7, 7), vec![n(1)]);
        assert_eq!(bin(OP_LESSTHAN, 1, 2), vec![n(1)]);
        assert_eq!(bin(OP_LESSTHAN, 2, 2), vec![n(0)]);
        assert_eq!(bin(OP_GREATERTHAN, 3, 2), vec![n(1)]);
        let un = |op: u8, a: i64| run(&[op], vec![n(a)]).unwrap();
        assert_eq!(un(OP_1ADD, -1), vec![n(0)]);
        assert_eq!(un(OP_NOT, 0), vec![n(1)]);
        assert_eq!(un(OP_NOT, 9), vec![n(0)]);
        assert_eq!(un(OP_0NOTEQUAL, 9), vec![n(1)]);
        assert_eq!(un(OP_0NOTEQUAL, 0), vec![n(0)]);
        let within = |x, lo, hi| run(&[OP_WITHIN], vec![n(x), n(lo), n(hi)]).unwrap();
        assert_eq!(within(1, 1, 3), vec![n(1)]);
        assert_eq!(within(3, 1, 3), vec![n(0)]);
        assert_eq!(within(0, 1, 3), vec![n(0)]);
        // A 5-byte result cannot be an operand again.
        assert_eq!(
            run(&[OP_ADD, OP_1ADD], vec![n(0x7fff_ffff), n(1)]),
            Err(ScriptError::NumberOverflow)
        );
        assert_eq!(run(&[OP_1ADD], vec![vec![1, 0]]), Err(ScriptError::NonMinimalNumber));
        assert_eq!(run(&[OP_ADD], vec![n(1)]), Err(ScriptError::StackUnderflow));
    }

    #[test]
    fn keccak() {
        let r = run(&[OP_KECCAK256D], vec![b"abc".to_vec()]).unwrap();
        assert_eq!(r, vec![rnet_crypto::keccak256d(b"abc").to_vec()]);
    }

    #[test]
    fn checksig_basics() {
        let key = rnet_crypto::SigningKey::from_bytes(&[9; 32]);
        let pk = key.public_key().to_bytes().to_vec();
        // Empty signature: false, no error.
        assert_eq!(run(&[OP_CHECKSIG], vec![vec![], pk.clone()]).unwrap(), vec![n(0)]);
        assert_eq!(
            run(&[OP_CHECKSIGVERIFY], vec![vec![], pk.clone()]),
            Err(ScriptError::CheckSigVerify)
        );
        // Wrong signature: NULLFAIL.
        assert_eq!(
            run(&[OP_CHECKSIG, OP_NOT], vec![vec![0; 64], pk.clone()]),
            Err(ScriptError::SigCheckFailed)
        );
        assert_eq!(
            run(&[OP_CHECKSIG], vec![vec![0; 63], pk.clone()]),
            Err(ScriptError::InvalidSignatureEncoding)
        );
        assert_eq!(
            run(&[OP_CHECKSIG], vec![vec![], vec![0; 33]]),
            Err(ScriptError::InvalidPublicKey)
        );
        // A 32-byte string that is not a curve point.
        let mut not_point = [0u8; 32];
        not_point[0] = 2;
        assert!(PublicKey::from_bytes(&not_point).is_err());
        assert_eq!(
            run(&[OP_CHECKSIG], vec![vec![0; 64], not_point.to_vec()]),
            Err(ScriptError::InvalidPublicKey)
        );
        assert_eq!(run(&[OP_CHECKSIG], vec![vec![], not_point.to_vec()]).unwrap(), vec![n(0)]);
    }

    #[test]
    fn multisig_shape_errors() {
        let script = |m: i64, n: i64| {
            let mut b = Builder::new().push_int(m);
            for _ in 0..n.max(0) {
                b = b.push_slice(&[7; 32]);
            }
            b.push_int(n).push_opcode(OP_CHECKMULTISIG).into_bytes()
        };
        // 0 of 0 is true; 1 of 2 with empty slots is false.
        assert_eq!(run(&script(0, 0), vec![]).unwrap(), vec![n(1)]);
        assert_eq!(run(&script(1, 2), vec![vec![], vec![]]).unwrap(), vec![n(0)]);
        assert_eq!(run(&script(0, 2), vec![vec![], vec![]]).unwrap(), vec![n(1)]);
        assert_eq!(run(&script(3, 2), vec![vec![], vec![]]), Err(ScriptError::MultisigThreshold));
        assert_eq!(run(&script(-1, 2), vec![vec![], vec![]]), Err(ScriptError::MultisigThreshold));
        assert_eq!(run(&script(1, 2), vec![vec![]]), Err(ScriptError::StackUnderflow));
        let too_many = Builder::new().push_int(1).push_int(21).push_opcode(OP_CHECKMULTISIG);
        assert_eq!(run(too_many.as_bytes(), vec![]), Err(ScriptError::MultisigKeyCount));
        // Keys count towards the op limit (each 0-of-20 multisig + DROP costs 22 ops).
        let mut b = Builder::new();
        for _ in 0..9 {
            for _ in 0..20 {
                b = b.push_opcode(OP_0);
            }
            b = b.push_int(0);
            for _ in 0..20 {
                b = b.push_slice(&[7; 32]);
            }
            b = b.push_int(20).push_opcode(OP_CHECKMULTISIG).push_opcode(OP_DROP);
        }
        let s9 = b.clone().push_opcode(OP_1).into_bytes();
        assert_eq!(run(&s9, vec![]).unwrap(), vec![n(1)], "9 × 22 = 198 ops");
        let mut b10 = b;
        for _ in 0..20 {
            b10 = b10.push_opcode(OP_0);
        }
        b10 = b10.push_int(0);
        for _ in 0..20 {
            b10 = b10.push_slice(&[7; 32]);
        }
        let s10 = b10.push_int(20).push_opcode(OP_CHECKMULTISIG).into_bytes();
        assert_eq!(run(&s10, vec![]), Err(ScriptError::OpCount));
    }

    #[test]
    fn cltv() {
        let s =
            |n: i64| Builder::new().push_int(n).push_opcode(OP_CHECKLOCKTIMEVERIFY).into_bytes();
        let seq = 0xffff_fffe;
        assert_eq!(run_in(&s(100), vec![], (2, 100, seq)).unwrap(), vec![n(100)]);
        assert_eq!(run_in(&s(100), vec![], (2, 99, seq)), Err(ScriptError::UnsatisfiedLockTime));
        assert_eq!(
            run_in(&s(100), vec![], (2, 100, SEQUENCE_FINAL)),
            Err(ScriptError::UnsatisfiedLockTime)
        );
        // Height vs time.
        assert_eq!(
            run_in(&s(100), vec![], (2, 600_000_000, seq)),
            Err(ScriptError::UnsatisfiedLockTime)
        );
        assert!(run_in(&s(500_000_000), vec![], (2, 600_000_000, seq)).is_ok());
        assert_eq!(run_in(&s(-1), vec![], (2, 100, seq)), Err(ScriptError::NegativeLockTime));
        // 5-byte operand allowed, larger than any u32 lock time: unsatisfied.
        assert_eq!(
            run_in(&s(0x7f_ffff_ffff), vec![], (2, u32::MAX, seq)),
            Err(ScriptError::UnsatisfiedLockTime)
        );
        assert_eq!(
            run_in(&[OP_CHECKLOCKTIMEVERIFY], vec![vec![1, 2, 3, 4, 5, 6]], (2, 0, seq)),
            Err(ScriptError::NumberOverflow)
        );
        assert_eq!(
            run_in(&[OP_CHECKLOCKTIMEVERIFY], vec![], (2, 0, seq)),
            Err(ScriptError::StackUnderflow)
        );
    }

    #[test]
    fn csv() {
        let s =
            |n: i64| Builder::new().push_int(n).push_opcode(OP_CHECKSEQUENCEVERIFY).into_bytes();
        assert_eq!(run_in(&s(10), vec![], (2, 0, 10)).unwrap(), vec![n(10)]);
        assert!(run_in(&s(10), vec![], (2, 0, 11)).is_ok());
        assert_eq!(run_in(&s(10), vec![], (2, 0, 9)), Err(ScriptError::UnsatisfiedSequence));
        // Version 1: BIP68 does not apply.
        assert_eq!(run_in(&s(10), vec![], (1, 0, 10)), Err(ScriptError::UnsatisfiedSequence));
        // Input sequence with the disable flag.
        assert_eq!(
            run_in(&s(10), vec![], (2, 0, (1 << 31) | 10)),
            Err(ScriptError::UnsatisfiedSequence)
        );
        // Type mismatch: time requirement, block sequence.
        let time10 = i64::from(SEQUENCE_LOCKTIME_TYPE_FLAG | 10);
        assert_eq!(run_in(&s(time10), vec![], (2, 0, 10)), Err(ScriptError::UnsatisfiedSequence));
        assert!(run_in(&s(time10), vec![], (2, 0, SEQUENCE_LOCKTIME_TYPE_FLAG | 12)).is_ok());
        // Ignored bits of the sequence.
        assert!(run_in(&s(10), vec![], (2, 0, 0x00ff_000a & !SEQUENCE_LOCKTIME_TYPE_FLAG)).is_ok());
        // Disable flag in the operand: no requirement, even in version 1.
        assert!(run_in(&s(1 << 31), vec![], (1, 0, 0)).is_ok());
        assert_eq!(run_in(&s(-1), vec![], (2, 0, 10)), Err(ScriptError::NegativeLockTime));
    }
}
