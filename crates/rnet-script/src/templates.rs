//! Standard output templates: plain key, the three recovery policies and a hashed-timelock
//! contract, with builders for their outputs and for the witness of every spending path.
//!
//! Every receive address of the wallet carries one recovery policy ([`Heartbeat`], [`Social`],
//! [`EmissionReturn`], together [`RecoveryPolicy`]); [`PlainKey`] and [`Htlc`] exist for other
//! uses (miner payouts, channels, swaps). Script-hash templates implement [`ScriptTemplate`]:
//! their output is the version 0 program Keccak-256d(witness script), and a witness is the
//! arguments followed by the witness script. Signatures sign the witness script as scriptCode
//! (see [`crate::sighash`]).
//!
//! | template | witness script |
//! |---|---|
//! | [`Heartbeat`] / [`RecoveryPending`] | `IF <owner> CHECKSIG ELSE <lock> CSV DROP <recovery> CHECKSIG ENDIF` |
//! | [`Social`] | `IF <owner> CHECKSIG ELSE <m> <g_1>…<g_n> <n> CHECKMULTISIGVERIFY <owner> <window> CHECKRECOVERYPENDINGVERIFY 1 ENDIF` |
//! | [`EmissionReturn`] | `IF <owner> CHECKSIG ELSE <inactivity> CSV DROP CHECKEMISSIONVERIFY 1 ENDIF` |
//! | [`Htlc`] | `IF SIZE 32 EQUALVERIFY KECCAK256D <hash> EQUALVERIFY <receiver> ELSE <timeout> CLTV DROP <sender> ENDIF CHECKSIG` |

use rnet_crypto::PublicKey;
use rnet_primitives::{Address, Amount, Network, TxOut, Witness};
use thiserror::Error;

use crate::covenant::EMISSION_RETURN_SCRIPT;
use crate::interpreter::MAX_PUBKEYS_PER_MULTISIG;
use crate::locktime::{LOCKTIME_THRESHOLD, RelativeLock};
use crate::opcodes::*;
use crate::script::Builder;
use crate::verify::{KEY_WITNESS_VERSION, SCRIPT_HASH_WITNESS_VERSION};

/// The most guardians of a [`Social`] policy (the multisig key limit).
pub const MAX_GUARDIANS: usize = MAX_PUBKEYS_PER_MULTISIG;

/// Why a template cannot be built with the given parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TemplateError {
    /// A relative lock of zero would let the delayed path spend at once.
    #[error("relative lock must be at least 1")]
    ZeroLock,
    /// The social policy needs 1 to 20 guardians.
    #[error("guardian count must be 1 to 20")]
    GuardianCount,
    /// The same guardian key appears twice.
    #[error("duplicate guardian key")]
    DuplicateGuardian,
    /// The threshold must be 1 to the number of guardians.
    #[error("threshold must be between 1 and the number of guardians")]
    Threshold,
    /// A guardian witness needs one slot (signature or `None`) per guardian, and at least
    /// `threshold` signatures.
    #[error("wrong number of guardian signatures")]
    GuardianSignatures,
    /// An HTLC timeout of zero is always satisfied.
    #[error("HTLC timeout must be non-zero")]
    ZeroTimeout,
    /// A key of small order or with a non-canonical encoding: under the cofactored ZIP-215 rule
    /// anyone can sign for a small-order key, so it protects nothing.
    #[error("weak public key (small order or non-canonical encoding)")]
    WeakKey,
}

/// Refuses weak keys ([`PublicKey::is_weak`]) in a policy.
fn strong<'k>(keys: impl IntoIterator<Item = &'k PublicKey>) -> Result<(), TemplateError> {
    if keys.into_iter().any(PublicKey::is_weak) { Err(TemplateError::WeakKey) } else { Ok(()) }
}

/// Keccak-256d of a witness script: the program of its script-hash output.
pub fn script_hash(script: &[u8]) -> [u8; 32] {
    rnet_crypto::keccak256d(script)
}

/// The scriptPubKey of a script-hash output: `OP_0 <32-byte program>`.
pub fn script_hash_script_pubkey(program: &[u8; 32]) -> Vec<u8> {
    witness_program_script(SCRIPT_HASH_WITNESS_VERSION, program)
}

/// The scriptPubKey of a key output: `OP_1 <32-byte Ed25519 key>`.
pub fn key_script_pubkey(key: &PublicKey) -> Vec<u8> {
    witness_program_script(KEY_WITNESS_VERSION, key.as_bytes())
}

fn witness_program_script(version: u8, program: &[u8; 32]) -> Vec<u8> {
    let mut s = Vec::with_capacity(34);
    s.push(if version == 0 { OP_0 } else { OP_1 + version - 1 });
    s.push(32);
    s.extend_from_slice(program);
    s
}

fn address_for(network: Network, version: u8, program: &[u8; 32]) -> Address {
    // Cannot fail: versions 0 and 1 and 32-byte programs are within the address rules.
    Address::new(network, version, program.to_vec()).expect("valid witness version and length")
}

/// A template locked by a witness script (a version 0 script-hash output).
pub trait ScriptTemplate {
    /// The witness script.
    fn witness_script(&self) -> Vec<u8>;

    /// The witness program: Keccak-256d of the witness script.
    fn program(&self) -> [u8; 32] {
        script_hash(&self.witness_script())
    }

    /// The output script: `OP_0 <program>`.
    fn script_pubkey(&self) -> Vec<u8> {
        script_hash_script_pubkey(&self.program())
    }

    /// The address of the output on `network`.
    fn address(&self, network: Network) -> Address {
        address_for(network, SCRIPT_HASH_WITNESS_VERSION, &self.program())
    }

    /// An output paying `value` to this template.
    fn output(&self, value: Amount) -> TxOut {
        TxOut { value, script_pubkey: self.script_pubkey() }
    }
}

/// A script-hash witness: `args` then the script.
fn script_witness(args: Vec<Vec<u8>>, script: Vec<u8>) -> Witness {
    let mut items = args;
    items.push(script);
    Witness(items)
}

const BRANCH_IF: &[u8] = &[1];
const BRANCH_ELSE: &[u8] = &[];

fn nonzero(lock: RelativeLock) -> Result<RelativeLock, TemplateError> {
    if lock.value() == 0 { Err(TemplateError::ZeroLock) } else { Ok(lock) }
}

/// `IF <owner> CHECKSIG ELSE <lock> CSV DROP <recovery> CHECKSIG ENDIF`, from key bytes (the
/// covenant rebuilds it from stack items).
pub(crate) fn heartbeat_script(
    owner: &[u8; 32],
    recovery: &[u8; 32],
    lock: RelativeLock,
) -> Vec<u8> {
    Builder::new()
        .push_opcode(OP_IF)
        .push_slice(owner)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_ELSE)
        .push_int(i64::from(lock.to_sequence()))
        .push_opcode(OP_CHECKSEQUENCEVERIFY)
        .push_opcode(OP_DROP)
        .push_slice(recovery)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_ENDIF)
        .into_bytes()
}

// ---------------------------------------------------------------------------------------------

/// A plain key output (version 1 program = the Ed25519 key). Witness: `[signature]`; the
/// signature's scriptCode is the scriptPubKey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainKey {
    /// The key that spends.
    pub key: PublicKey,
}

impl PlainKey {
    /// A key output for `key`.
    pub fn new(key: PublicKey) -> Self {
        Self { key }
    }

    /// The output script `OP_1 <key>`.
    pub fn script_pubkey(&self) -> Vec<u8> {
        key_script_pubkey(&self.key)
    }

    /// The scriptCode its signatures sign (the scriptPubKey).
    pub fn script_code(&self) -> Vec<u8> {
        self.script_pubkey()
    }

    /// The address on `network`.
    pub fn address(&self, network: Network) -> Address {
        address_for(network, KEY_WITNESS_VERSION, self.key.as_bytes())
    }

    /// An output paying `value` to the key.
    pub fn output(&self, value: Amount) -> TxOut {
        TxOut { value, script_pubkey: self.script_pubkey() }
    }

    /// The spending witness.
    pub fn witness(&self, signature: Vec<u8>) -> Witness {
        Witness(vec![signature])
    }
}

// ---------------------------------------------------------------------------------------------

/// Heartbeat recovery: the owner spends at any time; once the coin is `interval` old (CSV), the
/// recovery key may spend. The wallet proves life by re-sending its coins to itself before the
/// interval ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The owner key.
    pub owner: PublicKey,
    /// The recovery key.
    pub recovery: PublicKey,
    /// How old the coin must be before the recovery key may spend it.
    pub interval: RelativeLock,
}

impl Heartbeat {
    /// A heartbeat policy; the interval must be non-zero.
    pub fn new(
        owner: PublicKey,
        recovery: PublicKey,
        interval: RelativeLock,
    ) -> Result<Self, TemplateError> {
        strong([&owner, &recovery])?;
        Ok(Self { owner, recovery, interval: nonzero(interval)? })
    }

    /// Witness for the owner path.
    pub fn owner_witness(&self, signature: Vec<u8>) -> Witness {
        script_witness(vec![signature, BRANCH_IF.to_vec()], self.witness_script())
    }

    /// Witness for the recovery path (the input's sequence must be at least
    /// [`Heartbeat::recovery_sequence`], in a transaction of version ≥ 2).
    pub fn recovery_witness(&self, signature: Vec<u8>) -> Witness {
        script_witness(vec![signature, BRANCH_ELSE.to_vec()], self.witness_script())
    }

    /// The input sequence the recovery path needs.
    pub fn recovery_sequence(&self) -> u32 {
        self.interval.to_sequence()
    }
}

impl ScriptTemplate for Heartbeat {
    fn witness_script(&self) -> Vec<u8> {
        heartbeat_script(self.owner.as_bytes(), self.recovery.as_bytes(), self.interval)
    }
}

// ---------------------------------------------------------------------------------------------

/// Social (M-of-N) recovery: the owner spends at any time; `threshold` of the guardians may move
/// the coin only into a [`RecoveryPending`] output (enforced by
/// `OP_CHECKRECOVERYPENDINGVERIFY`) for a new key they choose, which the owner can still reclaim
/// during the cancel window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Social {
    owner: PublicKey,
    guardians: Vec<PublicKey>,
    threshold: usize,
    cancel_window: RelativeLock,
}

impl Social {
    /// A social policy: 1..=20 distinct guardians, threshold 1..=guardians, non-zero window.
    pub fn new(
        owner: PublicKey,
        guardians: Vec<PublicKey>,
        threshold: usize,
        cancel_window: RelativeLock,
    ) -> Result<Self, TemplateError> {
        if guardians.is_empty() || guardians.len() > MAX_GUARDIANS {
            return Err(TemplateError::GuardianCount);
        }
        for (i, g) in guardians.iter().enumerate() {
            if guardians[..i].contains(g) {
                return Err(TemplateError::DuplicateGuardian);
            }
        }
        if threshold == 0 || threshold > guardians.len() {
            return Err(TemplateError::Threshold);
        }
        strong(std::iter::once(&owner).chain(&guardians))?;
        Ok(Self { owner, guardians, threshold, cancel_window: nonzero(cancel_window)? })
    }

    /// The owner key.
    pub fn owner(&self) -> &PublicKey {
        &self.owner
    }

    /// The guardian keys, in script order.
    pub fn guardians(&self) -> &[PublicKey] {
        &self.guardians
    }

    /// How many guardians must sign.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// How long the owner can cancel a recovery.
    pub fn cancel_window(&self) -> RelativeLock {
        self.cancel_window
    }

    /// Witness for the owner path.
    pub fn owner_witness(&self, signature: Vec<u8>) -> Witness {
        script_witness(vec![signature, BRANCH_IF.to_vec()], self.witness_script())
    }

    /// The recovery-pending template the guardians must pay when recovering to `new_key`.
    pub fn pending(&self, new_key: PublicKey) -> RecoveryPending {
        RecoveryPending { owner: self.owner, new_key, cancel_window: self.cancel_window }
    }

    /// Witness for the guardian path: one entry per guardian in [`Social::guardians`] order,
    /// `Some(signature)` or `None`; at least `threshold` signatures, of which the first
    /// `threshold` in guardian order are used (consensus wants exactly the threshold, so the
    /// witness cannot be malleated). The transaction must pay `self.pending(new_key)` at the
    /// output with the same index as this input, at least the input's amount minus
    /// [`crate::MAX_RECOVERY_FEE`], and have one output per input, none worth more than the
    /// input at its index (so the allowance can only pay the fee).
    pub fn guardian_witness(
        &self,
        new_key: &PublicKey,
        signatures: &[Option<Vec<u8>>],
    ) -> Result<Witness, TemplateError> {
        if signatures.len() != self.guardians.len()
            || signatures.iter().filter(|s| s.is_some()).count() < self.threshold
        {
            return Err(TemplateError::GuardianSignatures);
        }
        let mut args = vec![new_key.as_bytes().to_vec()];
        let mut used = 0;
        args.extend(signatures.iter().map(|s| match s {
            Some(sig) if used < self.threshold => {
                used += 1;
                sig.clone()
            }
            _ => Vec::new(),
        }));
        args.push(BRANCH_ELSE.to_vec());
        Ok(script_witness(args, self.witness_script()))
    }
}

impl ScriptTemplate for Social {
    fn witness_script(&self) -> Vec<u8> {
        let mut b = Builder::new()
            .push_opcode(OP_IF)
            .push_key(&self.owner)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ELSE)
            .push_int(self.threshold as i64);
        for g in &self.guardians {
            b = b.push_key(g);
        }
        b.push_int(self.guardians.len() as i64)
            .push_opcode(OP_CHECKMULTISIGVERIFY)
            .push_key(&self.owner)
            .push_int(i64::from(self.cancel_window.to_sequence()))
            .push_opcode(OP_CHECKRECOVERYPENDINGVERIFY)
            .push_opcode(OP_1)
            .push_opcode(OP_ENDIF)
            .into_bytes()
    }
}

/// The output a social recovery creates: the owner can cancel (reclaim) at any time, the new key
/// can spend once the output is `cancel_window` old. Same script shape as [`Heartbeat`] with the
/// new key as recovery key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPending {
    /// The owner, who can cancel.
    pub owner: PublicKey,
    /// The key chosen by the guardians.
    pub new_key: PublicKey,
    /// The cancel window.
    pub cancel_window: RelativeLock,
}

impl RecoveryPending {
    /// Witness for the owner's cancel (reclaim) path.
    pub fn cancel_witness(&self, signature: Vec<u8>) -> Witness {
        script_witness(vec![signature, BRANCH_IF.to_vec()], self.witness_script())
    }

    /// Witness for the new key's path (sequence at least [`RecoveryPending::claim_sequence`]).
    pub fn claim_witness(&self, signature: Vec<u8>) -> Witness {
        script_witness(vec![signature, BRANCH_ELSE.to_vec()], self.witness_script())
    }

    /// The input sequence the new key's path needs.
    pub fn claim_sequence(&self) -> u32 {
        self.cancel_window.to_sequence()
    }
}

impl ScriptTemplate for RecoveryPending {
    fn witness_script(&self) -> Vec<u8> {
        heartbeat_script(self.owner.as_bytes(), self.new_key.as_bytes(), self.cancel_window)
    }
}

// ---------------------------------------------------------------------------------------------

/// Emission return: the owner spends at any time; once the coin is `inactivity` old, anyone may
/// sweep it, but only into emission-return outputs (`OP_CHECKEMISSIONVERIFY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmissionReturn {
    /// The owner key.
    pub owner: PublicKey,
    /// How old the coin must be before it can be swept.
    pub inactivity: RelativeLock,
}

impl EmissionReturn {
    /// An emission-return policy; the inactivity period must be non-zero.
    pub fn new(owner: PublicKey, inactivity: RelativeLock) -> Result<Self, TemplateError> {
        strong([&owner])?;
        Ok(Self { owner, inactivity: nonzero(inactivity)? })
    }

    /// Witness for the owner path.
    pub fn owner_witness(&self, signature: Vec<u8>) -> Witness {
        script_witness(vec![signature, BRANCH_IF.to_vec()], self.witness_script())
    }

    /// Witness for the sweep (no signature; sequence at least
    /// [`EmissionReturn::sweep_sequence`]).
    pub fn sweep_witness(&self) -> Witness {
        script_witness(vec![BRANCH_ELSE.to_vec()], self.witness_script())
    }

    /// The input sequence the sweep needs.
    pub fn sweep_sequence(&self) -> u32 {
        self.inactivity.to_sequence()
    }
}

impl ScriptTemplate for EmissionReturn {
    fn witness_script(&self) -> Vec<u8> {
        Builder::new()
            .push_opcode(OP_IF)
            .push_key(&self.owner)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ELSE)
            .push_int(i64::from(self.inactivity.to_sequence()))
            .push_opcode(OP_CHECKSEQUENCEVERIFY)
            .push_opcode(OP_DROP)
            .push_opcode(OP_CHECKEMISSIONVERIFY)
            .push_opcode(OP_1)
            .push_opcode(OP_ENDIF)
            .into_bytes()
    }
}

/// An emission-return output of `value` (what a sweep pays).
pub fn emission_output(value: Amount) -> TxOut {
    TxOut { value, script_pubkey: EMISSION_RETURN_SCRIPT.to_vec() }
}

// ---------------------------------------------------------------------------------------------

/// One recovery policy; every wallet receive address carries exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryPolicy {
    /// [`Heartbeat`].
    Heartbeat(Heartbeat),
    /// [`Social`].
    Social(Social),
    /// [`EmissionReturn`].
    EmissionReturn(EmissionReturn),
}

impl RecoveryPolicy {
    /// The owner key (which spends through the `IF` branch with
    /// [`RecoveryPolicy::owner_witness`]).
    pub fn owner(&self) -> &PublicKey {
        match self {
            Self::Heartbeat(p) => &p.owner,
            Self::Social(p) => &p.owner,
            Self::EmissionReturn(p) => &p.owner,
        }
    }

    /// Witness for the owner path.
    pub fn owner_witness(&self, signature: Vec<u8>) -> Witness {
        script_witness(vec![signature, BRANCH_IF.to_vec()], self.witness_script())
    }
}

impl ScriptTemplate for RecoveryPolicy {
    fn witness_script(&self) -> Vec<u8> {
        match self {
            Self::Heartbeat(p) => p.witness_script(),
            Self::Social(p) => p.witness_script(),
            Self::EmissionReturn(p) => p.witness_script(),
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// A hashed-timelock contract: the receiver spends with the 32-byte preimage of `payment_hash`
/// (Keccak-256d); after the absolute `timeout` (CLTV: a height below 500 000 000, else a unix
/// time) the sender can take the coin back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Htlc {
    /// Who can claim with the preimage.
    pub receiver: PublicKey,
    /// Who can refund after the timeout.
    pub sender: PublicKey,
    /// Keccak-256d of the 32-byte preimage.
    pub payment_hash: [u8; 32],
    /// The absolute lock time after which the sender may refund.
    pub timeout: u32,
}

impl Htlc {
    /// An HTLC; the timeout must be non-zero.
    pub fn new(
        receiver: PublicKey,
        sender: PublicKey,
        payment_hash: [u8; 32],
        timeout: u32,
    ) -> Result<Self, TemplateError> {
        if timeout == 0 {
            return Err(TemplateError::ZeroTimeout);
        }
        strong([&receiver, &sender])?;
        Ok(Self { receiver, sender, payment_hash, timeout })
    }

    /// The payment hash of a preimage: Keccak-256d.
    pub fn payment_hash_of(preimage: &[u8; 32]) -> [u8; 32] {
        rnet_crypto::keccak256d(preimage)
    }

    /// Whether the timeout is a unix time (else a block height).
    pub fn timeout_is_time(&self) -> bool {
        self.timeout >= LOCKTIME_THRESHOLD
    }

    /// Witness for the receiver's claim.
    pub fn claim_witness(&self, signature: Vec<u8>, preimage: &[u8; 32]) -> Witness {
        script_witness(
            vec![signature, preimage.to_vec(), BRANCH_IF.to_vec()],
            self.witness_script(),
        )
    }

    /// Witness for the sender's refund: the transaction's lock time must be at least `timeout`
    /// (same kind) and the input's sequence not `0xFFFFFFFF`.
    pub fn refund_witness(&self, signature: Vec<u8>) -> Witness {
        script_witness(vec![signature, BRANCH_ELSE.to_vec()], self.witness_script())
    }
}

impl ScriptTemplate for Htlc {
    fn witness_script(&self) -> Vec<u8> {
        Builder::new()
            .push_opcode(OP_IF)
            .push_opcode(OP_SIZE)
            .push_int(32)
            .push_opcode(OP_EQUALVERIFY)
            .push_opcode(OP_KECCAK256D)
            .push_slice(&self.payment_hash)
            .push_opcode(OP_EQUALVERIFY)
            .push_key(&self.receiver)
            .push_opcode(OP_ELSE)
            .push_int(i64::from(self.timeout))
            .push_opcode(OP_CHECKLOCKTIMEVERIFY)
            .push_opcode(OP_DROP)
            .push_key(&self.sender)
            .push_opcode(OP_ENDIF)
            .push_opcode(OP_CHECKSIG)
            .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use rnet_crypto::SigningKey;

    use super::*;
    use crate::script::disassemble;

    fn key(n: u8) -> PublicKey {
        SigningKey::from_bytes(&[n; 32]).public_key()
    }

    #[test]
    fn parameter_checks() {
        let b = RelativeLock::Blocks;
        assert_eq!(Heartbeat::new(key(1), key(2), b(0)), Err(TemplateError::ZeroLock));
        assert_eq!(
            EmissionReturn::new(key(1), RelativeLock::Time(0)),
            Err(TemplateError::ZeroLock)
        );
        assert_eq!(Social::new(key(1), vec![], 1, b(5)), Err(TemplateError::GuardianCount));
        let many: Vec<_> = (0..21).map(|i| key(10 + i)).collect();
        assert_eq!(Social::new(key(1), many, 1, b(5)), Err(TemplateError::GuardianCount));
        assert_eq!(
            Social::new(key(1), vec![key(2), key(2)], 1, b(5)),
            Err(TemplateError::DuplicateGuardian)
        );
        assert_eq!(Social::new(key(1), vec![key(2)], 2, b(5)), Err(TemplateError::Threshold));
        assert_eq!(Social::new(key(1), vec![key(2)], 0, b(5)), Err(TemplateError::Threshold));
        assert_eq!(Htlc::new(key(1), key(2), [0; 32], 0), Err(TemplateError::ZeroTimeout));
        let s = Social::new(key(1), vec![key(2), key(3)], 2, b(5)).unwrap();
        assert_eq!(
            s.guardian_witness(&key(9), &[Some(vec![1]), None]),
            Err(TemplateError::GuardianSignatures)
        );
        assert_eq!(s.guardian_witness(&key(9), &[None]), Err(TemplateError::GuardianSignatures));
    }

    #[test]
    fn script_shapes() {
        let hb = Heartbeat::new(key(1), key(2), RelativeLock::Blocks(144)).unwrap();
        let d = disassemble(&hb.witness_script());
        assert!(d.starts_with("OP_IF <"), "{d}");
        assert!(d.ends_with("> OP_CHECKSIG OP_ENDIF"), "{d}");
        assert!(d.contains("> OP_CHECKSIG OP_ELSE <9000> OP_CHECKSEQUENCEVERIFY OP_DROP <"), "{d}");

        let pending = Social::new(key(1), vec![key(3)], 1, RelativeLock::Blocks(144))
            .unwrap()
            .pending(key(2));
        assert_eq!(pending.script_pubkey(), hb.script_pubkey(), "pending = heartbeat shape");

        let social =
            Social::new(key(1), vec![key(3), key(4), key(5)], 2, RelativeLock::Time(10)).unwrap();
        let d = disassemble(&social.witness_script());
        assert!(d.contains("OP_ELSE OP_2 <"), "{d}");
        let tail = format!(
            "> OP_3 OP_CHECKMULTISIGVERIFY <{}> <0a0040> OP_CHECKRECOVERYPENDINGVERIFY OP_1 OP_ENDIF",
            hex::encode(key(1).as_bytes())
        );
        assert!(d.ends_with(&tail), "{d}");

        let em = EmissionReturn::new(key(1), RelativeLock::Blocks(52_560)).unwrap();
        let d = disassemble(&em.witness_script());
        assert!(
            d.ends_with(
                "OP_ELSE <50cd00> OP_CHECKSEQUENCEVERIFY OP_DROP OP_CHECKEMISSIONVERIFY OP_1 OP_ENDIF"
            ),
            "{d}"
        );

        let h = Htlc::new(key(1), key(2), [0xab; 32], 1000).unwrap();
        let d = disassemble(&h.witness_script());
        assert!(d.starts_with("OP_IF OP_SIZE <20> OP_EQUALVERIFY OP_KECCAK256D <abab"), "{d}");
        assert!(d.contains("OP_ELSE <e803> OP_CHECKLOCKTIMEVERIFY OP_DROP <"), "{d}");
        assert!(d.ends_with("> OP_ENDIF OP_CHECKSIG"), "{d}");
        assert!(!h.timeout_is_time());
    }

    #[test]
    fn outputs_and_addresses() {
        let pk = PlainKey::new(key(1));
        let spk = pk.script_pubkey();
        assert_eq!(spk.len(), 34);
        assert_eq!(pk.address(Network::Regtest).script_pubkey(), spk);
        assert_eq!(spk[..2], [0x51, 32]);

        let hb = Heartbeat::new(key(1), key(2), RelativeLock::Blocks(10)).unwrap();
        let a = hb.address(Network::Mainnet);
        assert_eq!(a.witness_version(), 0);
        assert_eq!(a.script_pubkey(), hb.script_pubkey());
        assert_eq!(a.program(), script_hash(&hb.witness_script()));
        assert!(a.to_string().starts_with("rnt1q"));
        let policy = RecoveryPolicy::Heartbeat(hb);
        assert_eq!(policy.script_pubkey(), hb.script_pubkey());
        assert_eq!(policy.owner(), &key(1));
        assert_eq!(policy.owner_witness(vec![7]), hb.owner_witness(vec![7]));
        assert_eq!(emission_output(Amount(5)).script_pubkey, EMISSION_RETURN_SCRIPT);
    }
}
