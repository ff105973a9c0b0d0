//! The witness scripts of a channel and the witness of every spending path.
//!
//! All are version 0 script-hash outputs (program = Keccak-256d of the witness script) except
//! `to_remote`, a plain version 1 key output. Branch selectors are `[0x01]` (IF) and `[]` (ELSE),
//! as MINIMALIF requires; witnesses are listed bottom first and end with the witness script. In
//! a 2-of-2 `CHECKMULTISIG` (no dummy element, one slot per key) the signature for the first key
//! comes first.
//!
//! | script | witness script |
//! |---|---|
//! | [`FundingScript`] | `2 <k1> <k2> 2 CHECKMULTISIG` (keys in byte order) |
//! | [`RevocableScript`] | `IF 2 <revocation> <pc_point> 2 CHECKMULTISIG ELSE <delay> CSV DROP <delayed> CHECKSIG ENDIF` |
//! | [`OfferedHtlcScript`] | `IF 2 <revocation> <pc_point> 2 CHECKMULTISIG ELSE IF SIZE 32 EQUALVERIFY KECCAK256D <hash> EQUALVERIFY <remote_htlc> CHECKSIG ELSE <cltv> CLTV DROP 2 <local_htlc> <remote_htlc> 2 CHECKMULTISIG ENDIF ENDIF` |
//! | [`ReceivedHtlcScript`] | `IF 2 <revocation> <pc_point> 2 CHECKMULTISIG ELSE IF SIZE 32 EQUALVERIFY KECCAK256D <hash> EQUALVERIFY 2 <local_htlc> <remote_htlc> 2 CHECKMULTISIG ELSE <cltv> CLTV DROP <remote_htlc> CHECKSIG ENDIF ENDIF` |

use rnet_crypto::PublicKey;
use rnet_primitives::{Amount, TxOut, Witness};
use rnet_script::opcodes::*;
use rnet_script::{
    Builder, LOCKTIME_THRESHOLD, PlainKey, RelativeLock, ScriptTemplate, TemplateError,
};

use super::error::ChannelError;

const BRANCH_IF: &[u8] = &[1];
const BRANCH_ELSE: &[u8] = &[];

/// A script-hash witness: the arguments, then the witness script.
fn witness(mut args: Vec<Vec<u8>>, script: Vec<u8>) -> Witness {
    args.push(script);
    Witness(args)
}

fn strong(keys: &[&PublicKey]) -> Result<(), ChannelError> {
    if keys.iter().any(|k| k.is_weak()) {
        return Err(TemplateError::WeakKey.into());
    }
    Ok(())
}

/// Checks that a `cltv_expiry` is a block height (non-zero, below the lock-time threshold).
pub fn check_cltv_expiry(cltv_expiry: u32) -> Result<(), ChannelError> {
    if cltv_expiry == 0 {
        return Err(TemplateError::ZeroTimeout.into());
    }
    if cltv_expiry >= LOCKTIME_THRESHOLD {
        return Err(ChannelError::CltvNotHeight(cltv_expiry));
    }
    Ok(())
}

/// `2 <a> <b> 2 CHECKMULTISIG` appended to `b`.
fn two_of_two(b: Builder, first: &PublicKey, second: &PublicKey) -> Builder {
    b.push_opcode(OP_2)
        .push_key(first)
        .push_key(second)
        .push_opcode(OP_2)
        .push_opcode(OP_CHECKMULTISIG)
}

/// The revocation branch shared by every revocable script: `IF 2 <revocation> <pc_point> 2
/// CHECKMULTISIG ELSE`.
fn revocation_branch(revocation: &PublicKey, per_commitment_point: &PublicKey) -> Builder {
    two_of_two(Builder::new().push_opcode(OP_IF), revocation, per_commitment_point)
        .push_opcode(OP_ELSE)
}

/// The witness of the revocation branch of `script`: `[sig_revocation, sig_pc_point, 01]`.
fn revocation_witness(script: Vec<u8>, sig_revocation: Vec<u8>, sig_point: Vec<u8>) -> Witness {
    witness(vec![sig_revocation, sig_point, BRANCH_IF.to_vec()], script)
}

/// `SIZE 32 EQUALVERIFY KECCAK256D <hash> EQUALVERIFY` appended to `b`.
fn preimage_check(b: Builder, payment_hash: &[u8; 32]) -> Builder {
    b.push_opcode(OP_SIZE)
        .push_int(32)
        .push_opcode(OP_EQUALVERIFY)
        .push_opcode(OP_KECCAK256D)
        .push_slice(payment_hash)
        .push_opcode(OP_EQUALVERIFY)
}

// ---------------------------------------------------------------------------------------------

/// The funding output: a 2-of-2 of the two funding keys, in lexicographic order of their
/// 32-byte encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FundingScript {
    keys: [PublicKey; 2],
}

impl FundingScript {
    /// The funding script of two distinct, non-weak keys (in any order).
    pub fn new(a: PublicKey, b: PublicKey) -> Result<Self, ChannelError> {
        strong(&[&a, &b])?;
        if a.as_bytes() == b.as_bytes() {
            return Err(ChannelError::DuplicateFundingKey);
        }
        let keys = if a.as_bytes() < b.as_bytes() { [a, b] } else { [b, a] };
        Ok(Self { keys })
    }

    /// The two keys in script order.
    pub fn keys(&self) -> &[PublicKey; 2] {
        &self.keys
    }

    /// The witness from one signature slot per key in script order (`[]` = no signature).
    pub fn witness_slots(&self, first: Vec<u8>, second: Vec<u8>) -> Witness {
        witness(vec![first, second], self.witness_script())
    }

    /// The witness from two signatures, each given with the key that made it; fails with
    /// [`ChannelError::KeyMismatch`] unless they are the script's two keys.
    pub fn witness(
        &self,
        a: (&PublicKey, Vec<u8>),
        b: (&PublicKey, Vec<u8>),
    ) -> Result<Witness, ChannelError> {
        let (first, second) = if a.0 == &self.keys[0] && b.0 == &self.keys[1] {
            (a.1, b.1)
        } else if a.0 == &self.keys[1] && b.0 == &self.keys[0] {
            (b.1, a.1)
        } else {
            return Err(ChannelError::KeyMismatch);
        };
        Ok(self.witness_slots(first, second))
    }
}

impl ScriptTemplate for FundingScript {
    fn witness_script(&self) -> Vec<u8> {
        two_of_two(Builder::new(), &self.keys[0], &self.keys[1]).into_bytes()
    }
}

/// The `to_remote` output: a plain key output (version 1) to the counterparty's payment key.
pub fn to_remote_output(payment_key: &PublicKey, value: Amount) -> TxOut {
    PlainKey::new(*payment_key).output(value)
}

// ---------------------------------------------------------------------------------------------

/// A revocable delayed output: the holder's `to_local` output and the output of its
/// second-stage HTLC transactions. The holder's delayed key spends after `to_self_delay`
/// blocks (CSV); the revocation 2-of-2 spends at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocableScript {
    /// The counterparty's revocation key.
    pub revocation: PublicKey,
    /// The holder's per-commitment point of the state.
    pub per_commitment_point: PublicKey,
    /// The relative delay, in blocks, before the delayed key may spend.
    pub to_self_delay: u16,
    /// The holder's delayed-payment key.
    pub delayed: PublicKey,
}

impl RevocableScript {
    /// The script for these keys; refuses weak keys and a zero delay.
    pub fn new(
        revocation: PublicKey,
        per_commitment_point: PublicKey,
        to_self_delay: u16,
        delayed: PublicKey,
    ) -> Result<Self, ChannelError> {
        strong(&[&revocation, &per_commitment_point, &delayed])?;
        if to_self_delay == 0 {
            return Err(ChannelError::ZeroDelay);
        }
        Ok(Self { revocation, per_commitment_point, to_self_delay, delayed })
    }

    /// The witness of the revocation path (penalty): signatures of the revocation key and of
    /// the per-commitment key.
    pub fn revocation_witness(&self, sig_revocation: Vec<u8>, sig_point: Vec<u8>) -> Witness {
        revocation_witness(self.witness_script(), sig_revocation, sig_point)
    }

    /// The witness of the delayed path: `[sig, ""]`; the input's sequence must be at least
    /// [`RevocableScript::delayed_sequence`] in a transaction of version ≥ 2.
    pub fn delayed_witness(&self, sig: Vec<u8>) -> Witness {
        witness(vec![sig, BRANCH_ELSE.to_vec()], self.witness_script())
    }

    /// The input sequence the delayed path needs: `to_self_delay` blocks.
    pub fn delayed_sequence(&self) -> u32 {
        RelativeLock::Blocks(self.to_self_delay).to_sequence()
    }
}

impl ScriptTemplate for RevocableScript {
    fn witness_script(&self) -> Vec<u8> {
        revocation_branch(&self.revocation, &self.per_commitment_point)
            .push_int(i64::from(self.delayed_sequence()))
            .push_opcode(OP_CHECKSEQUENCEVERIFY)
            .push_opcode(OP_DROP)
            .push_key(&self.delayed)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ENDIF)
            .into_bytes()
    }
}

// ---------------------------------------------------------------------------------------------

/// The parameters shared by the two HTLC scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtlcKeys {
    /// The counterparty's revocation key.
    pub revocation: PublicKey,
    /// The holder's per-commitment point of the state.
    pub per_commitment_point: PublicKey,
    /// The holder's HTLC key.
    pub holder_htlc: PublicKey,
    /// The counterparty's HTLC key.
    pub counterparty_htlc: PublicKey,
    /// Keccak-256d of the payment preimage.
    pub payment_hash: [u8; 32],
    /// The block height at which the HTLC times out.
    pub cltv_expiry: u32,
}

impl HtlcKeys {
    fn check(&self) -> Result<(), ChannelError> {
        strong(&[
            &self.revocation,
            &self.per_commitment_point,
            &self.holder_htlc,
            &self.counterparty_htlc,
        ])?;
        check_cltv_expiry(self.cltv_expiry)
    }
}

/// An HTLC the holder offered: the counterparty claims it with the preimage; the holder takes
/// it back after `cltv_expiry` through its HTLC-timeout transaction (2-of-2 of the two HTLC keys,
/// the counterparty's signature made in advance); the revocation 2-of-2 spends it at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedHtlcScript(HtlcKeys);

impl OfferedHtlcScript {
    /// The script; refuses weak keys and an expiry that is not a block height.
    pub fn new(keys: HtlcKeys) -> Result<Self, ChannelError> {
        keys.check()?;
        Ok(Self(keys))
    }

    /// The script's parameters.
    pub fn keys(&self) -> &HtlcKeys {
        &self.0
    }

    /// The revocation path: `[sig_revocation, sig_pc_point, 01]`.
    pub fn revocation_witness(&self, sig_revocation: Vec<u8>, sig_point: Vec<u8>) -> Witness {
        revocation_witness(self.witness_script(), sig_revocation, sig_point)
    }

    /// The counterparty's claim: `[sig_counterparty_htlc, preimage, 01, ""]`.
    pub fn preimage_witness(&self, sig: Vec<u8>, preimage: &[u8; 32]) -> Witness {
        witness(
            vec![sig, preimage.to_vec(), BRANCH_IF.to_vec(), BRANCH_ELSE.to_vec()],
            self.witness_script(),
        )
    }

    /// The holder's HTLC-timeout spend: `[sig_holder_htlc, sig_counterparty_htlc, "", ""]`;
    /// the transaction's lock time must be at least `cltv_expiry` (a height) and the input's
    /// sequence not final.
    pub fn timeout_witness(&self, sig_holder: Vec<u8>, sig_counterparty: Vec<u8>) -> Witness {
        witness(
            vec![sig_holder, sig_counterparty, BRANCH_ELSE.to_vec(), BRANCH_ELSE.to_vec()],
            self.witness_script(),
        )
    }
}

impl ScriptTemplate for OfferedHtlcScript {
    fn witness_script(&self) -> Vec<u8> {
        let k = &self.0;
        let b = revocation_branch(&k.revocation, &k.per_commitment_point).push_opcode(OP_IF);
        let b = preimage_check(b, &k.payment_hash)
            .push_key(&k.counterparty_htlc)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ELSE)
            .push_int(i64::from(k.cltv_expiry))
            .push_opcode(OP_CHECKLOCKTIMEVERIFY)
            .push_opcode(OP_DROP);
        two_of_two(b, &k.holder_htlc, &k.counterparty_htlc)
            .push_opcode(OP_ENDIF)
            .push_opcode(OP_ENDIF)
            .into_bytes()
    }
}

/// An HTLC the holder received: the holder claims it with the preimage through its HTLC-success
/// transaction (2-of-2, the counterparty's signature made in advance); the counterparty takes it
/// back after `cltv_expiry`; the revocation 2-of-2 spends it at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedHtlcScript(HtlcKeys);

impl ReceivedHtlcScript {
    /// The script; refuses weak keys and an expiry that is not a block height.
    pub fn new(keys: HtlcKeys) -> Result<Self, ChannelError> {
        keys.check()?;
        Ok(Self(keys))
    }

    /// The script's parameters.
    pub fn keys(&self) -> &HtlcKeys {
        &self.0
    }

    /// The revocation path: `[sig_revocation, sig_pc_point, 01]`.
    pub fn revocation_witness(&self, sig_revocation: Vec<u8>, sig_point: Vec<u8>) -> Witness {
        revocation_witness(self.witness_script(), sig_revocation, sig_point)
    }

    /// The holder's HTLC-success spend:
    /// `[sig_holder_htlc, sig_counterparty_htlc, preimage, 01, ""]`.
    pub fn success_witness(
        &self,
        sig_holder: Vec<u8>,
        sig_counterparty: Vec<u8>,
        preimage: &[u8; 32],
    ) -> Witness {
        witness(
            vec![
                sig_holder,
                sig_counterparty,
                preimage.to_vec(),
                BRANCH_IF.to_vec(),
                BRANCH_ELSE.to_vec(),
            ],
            self.witness_script(),
        )
    }

    /// The counterparty's refund: `[sig_counterparty_htlc, "", ""]`; the transaction's lock time
    /// must be at least `cltv_expiry` (a height) and the input's sequence not final.
    pub fn timeout_witness(&self, sig: Vec<u8>) -> Witness {
        witness(vec![sig, BRANCH_ELSE.to_vec(), BRANCH_ELSE.to_vec()], self.witness_script())
    }
}

impl ScriptTemplate for ReceivedHtlcScript {
    fn witness_script(&self) -> Vec<u8> {
        let k = &self.0;
        let b = revocation_branch(&k.revocation, &k.per_commitment_point).push_opcode(OP_IF);
        let b =
            two_of_two(preimage_check(b, &k.payment_hash), &k.holder_htlc, &k.counterparty_htlc);
        b.push_opcode(OP_ELSE)
            .push_int(i64::from(k.cltv_expiry))
            .push_opcode(OP_CHECKLOCKTIMEVERIFY)
            .push_opcode(OP_DROP)
            .push_key(&k.counterparty_htlc)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ENDIF)
            .push_opcode(OP_ENDIF)
            .into_bytes()
    }
}

/// An HTLC output's script, either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HtlcScript {
    /// Offered by the holder.
    Offered(OfferedHtlcScript),
    /// Received by the holder.
    Received(ReceivedHtlcScript),
}

impl HtlcScript {
    /// The script's parameters.
    pub fn keys(&self) -> &HtlcKeys {
        match self {
            Self::Offered(s) => &s.0,
            Self::Received(s) => &s.0,
        }
    }

    /// The revocation path: `[sig_revocation, sig_pc_point, 01]`.
    pub fn revocation_witness(&self, sig_revocation: Vec<u8>, sig_point: Vec<u8>) -> Witness {
        revocation_witness(self.witness_script(), sig_revocation, sig_point)
    }
}

impl ScriptTemplate for HtlcScript {
    fn witness_script(&self) -> Vec<u8> {
        match self {
            Self::Offered(s) => s.witness_script(),
            Self::Received(s) => s.witness_script(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rnet_crypto::SigningKey;
    use rnet_script::disassemble;

    use super::super::fees::{FUNDING_SCRIPT_SIZE, MAX_HTLC_SCRIPT_SIZE};
    use super::*;

    fn key(n: u8) -> PublicKey {
        SigningKey::from_bytes(&[n; 32]).public_key()
    }

    fn htlc_keys(cltv_expiry: u32) -> HtlcKeys {
        HtlcKeys {
            revocation: key(1),
            per_commitment_point: key(2),
            holder_htlc: key(3),
            counterparty_htlc: key(4),
            payment_hash: [0xab; 32],
            cltv_expiry,
        }
    }

    #[test]
    fn funding_keys_are_sorted_and_checked() {
        let (a, b) = (key(1), key(2));
        let s1 = FundingScript::new(a, b).unwrap();
        let s2 = FundingScript::new(b, a).unwrap();
        assert_eq!(s1, s2);
        assert!(s1.keys()[0].as_bytes() < s1.keys()[1].as_bytes());
        assert_eq!(s1.witness_script().len(), FUNDING_SCRIPT_SIZE);
        assert_eq!(FundingScript::new(a, a), Err(ChannelError::DuplicateFundingKey));
        // Signatures land in their key's slot whatever order they are given in.
        let w1 = s1.witness((&a, vec![0xa; 64]), (&b, vec![0xb; 64])).unwrap();
        let w2 = s1.witness((&b, vec![0xb; 64]), (&a, vec![0xa; 64])).unwrap();
        assert_eq!(w1, w2);
        let first = if s1.keys()[0] == a { 0xa } else { 0xb };
        assert_eq!(w1.items()[0], vec![first; 64]);
        assert_eq!(s1.witness((&a, vec![]), (&key(3), vec![])), Err(ChannelError::KeyMismatch));
    }

    #[test]
    fn scripts_have_the_documented_shape() {
        let r = RevocableScript::new(key(1), key(2), 144, key(3)).unwrap();
        let text = disassemble(&r.witness_script());
        assert!(text.starts_with("OP_IF OP_2 <"), "{text}");
        assert!(text.contains("OP_2 OP_CHECKMULTISIG OP_ELSE"), "{text}");
        assert!(text.contains("OP_ELSE <9000> OP_CHECKSEQUENCEVERIFY OP_DROP <"), "{text}");
        assert!(text.ends_with("OP_CHECKSIG OP_ENDIF"), "{text}");
        assert_eq!(r.delayed_sequence(), 144);
        assert_eq!(RevocableScript::new(key(1), key(2), 0, key(3)), Err(ChannelError::ZeroDelay));

        let o = OfferedHtlcScript::new(htlc_keys(500_000)).unwrap();
        let text = disassemble(&o.witness_script());
        assert!(text.contains("OP_ELSE OP_IF OP_SIZE"), "{text}");
        assert!(text.contains("OP_KECCAK256D"), "{text}");
        assert!(text.contains("OP_CHECKLOCKTIMEVERIFY OP_DROP OP_2"), "{text}");
        assert!(text.ends_with("OP_2 OP_CHECKMULTISIG OP_ENDIF OP_ENDIF"), "{text}");
        let rc = ReceivedHtlcScript::new(htlc_keys(500_000)).unwrap();
        let text = disassemble(&rc.witness_script());
        assert!(text.contains("OP_EQUALVERIFY OP_2"), "{text}");
        assert!(text.contains("OP_CHECKLOCKTIMEVERIFY OP_DROP <"), "{text}");
        assert!(text.ends_with("OP_CHECKSIG OP_ENDIF OP_ENDIF"), "{text}");
        // The scripts of one HTLC differ by direction.
        assert_ne!(o.script_pubkey(), rc.script_pubkey());
    }

    #[test]
    fn htlc_script_size_bound_is_exact() {
        for cltv in [1, 16, 17, 500_000, 8_388_608, 499_999_999] {
            let o = OfferedHtlcScript::new(htlc_keys(cltv)).unwrap().witness_script().len();
            let r = ReceivedHtlcScript::new(htlc_keys(cltv)).unwrap().witness_script().len();
            assert_eq!(o, r);
            assert!(o <= MAX_HTLC_SCRIPT_SIZE);
        }
        let max = OfferedHtlcScript::new(htlc_keys(499_999_999)).unwrap().witness_script().len();
        assert_eq!(max, MAX_HTLC_SCRIPT_SIZE);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(
            OfferedHtlcScript::new(htlc_keys(0)),
            Err(ChannelError::Template(TemplateError::ZeroTimeout))
        );
        assert_eq!(
            ReceivedHtlcScript::new(htlc_keys(LOCKTIME_THRESHOLD)),
            Err(ChannelError::CltvNotHeight(LOCKTIME_THRESHOLD))
        );
        // The identity point (all zero but the first byte) is of small order.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        let weak = PublicKey::from_bytes(&ident).unwrap();
        assert!(weak.is_weak());
        assert_eq!(
            RevocableScript::new(key(1), weak, 6, key(3)),
            Err(ChannelError::Template(TemplateError::WeakKey))
        );
        assert_eq!(
            FundingScript::new(weak, key(1)),
            Err(ChannelError::Template(TemplateError::WeakKey))
        );
    }
}
