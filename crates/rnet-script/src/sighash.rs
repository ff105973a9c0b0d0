//! Signature hashes: what an Ed25519 signature in a witness signs.
//!
//! BIP143-style with Keccak-256d, committing to the amount and script of the spent output, and
//! (except with `ANYONECANPAY`) to every input's spent output, like BIP341's `sha_amounts` and
//! `sha_scriptpubkeys`, so a signer that is lied to about any input's amount or script produces
//! a signature that is invalid. It also commits to the **genesis block id** of the chain the
//! signature is for, so a transaction signed for one network is invalid on every other network
//! (and on any chain with another genesis), even where the same outpoints exist. The message is
//!
//! ```text
//! Keccak-256d(
//!     "RNET/sighash/v2"          15 ASCII bytes
//!     genesis                    32   the chain's genesis block id (BlockHash bytes)
//!     version                    u32 LE
//!     hashPrevouts               32   Keccak-256d(outpoint of every input)          (0 if ACP)
//!     hashSpentOutputs           32   Keccak-256d(spent TxOut of every input)       (0 if ACP)
//!     hashSequences              32   Keccak-256d(sequence of every input, u32 LE)  (0 if ACP)
//!     outpoint                   36   this input's txid ‖ vout
//!     scriptCode                 var  CompactSize length ‖ bytes
//!     amount                     u64  value of the output this input spends
//!     sequence                   u32  this input's sequence
//!     hashOutputs                32   Keccak-256d(every output, consensus-encoded)
//!     lock_time                  u32
//!     sighash_type               u8   0x01 (ALL) or 0x81 (ALL|ANYONECANPAY)
//! )
//! ```
//!
//! A spent `TxOut` and an output are encoded as in the transaction (value u64 ‖ var-bytes
//! script). `scriptCode` is the witness script for a script-hash output and the 34-byte
//! scriptPubKey for a key output. The four `hash*` fields are computed once per transaction by
//! [`SighashCache::new`], so signing or verifying every input costs O(inputs + outputs) hashing,
//! not quadratic.

use rnet_crypto::keccak::Keccak256dWriter;
use rnet_crypto::{Signature, SigningKey};
use rnet_primitives::encode::write_var_bytes;
use rnet_primitives::{BlockHash, Encode, Transaction, TxOut};

use crate::error::ScriptError;
use crate::verify::SpendContext;

/// The domain-separation tag that starts every signature-hash preimage (`v2`: the preimage
/// commits to the genesis block id right after the tag).
pub const SIGHASH_TAG: &[u8] = b"RNET/sighash/v2";

/// What a signature commits to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SighashType {
    /// Every input and every output (the default; a 64-byte signature).
    #[default]
    All,
    /// This input only, and every output (a 65-byte signature ending in `0x81`): others may add
    /// inputs.
    AllAnyoneCanPay,
}

impl SighashType {
    /// The type byte committed in the message (and appended to 65-byte signatures).
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::All => 0x01,
            Self::AllAnyoneCanPay => 0x81,
        }
    }

    /// Whether only this input is committed.
    pub const fn anyone_can_pay(self) -> bool {
        matches!(self, Self::AllAnyoneCanPay)
    }
}

/// The witness encoding of a signature: the 64 bytes for [`SighashType::All`], the 64 bytes then
/// `0x81` for [`SighashType::AllAnyoneCanPay`].
pub fn encode_signature(sig: &Signature, ty: SighashType) -> Vec<u8> {
    let mut v = sig.as_bytes().to_vec();
    if ty != SighashType::All {
        v.push(ty.to_u8());
    }
    v
}

/// Parses a non-empty witness signature: 64 bytes → `All`; 65 bytes ending in `0x81` →
/// `AllAnyoneCanPay`; anything else is [`ScriptError::InvalidSignatureEncoding`] (an explicit
/// `0x01` byte is rejected so that each signature has one encoding).
pub fn parse_signature(bytes: &[u8]) -> Result<(Signature, SighashType), ScriptError> {
    let (sig, ty) = match bytes.len() {
        64 => (bytes, SighashType::All),
        65 if bytes.get(64) == Some(&0x81) => (&bytes[..64], SighashType::AllAnyoneCanPay),
        _ => return Err(ScriptError::InvalidSignatureEncoding),
    };
    let sig = Signature::from_slice(sig).map_err(|_| ScriptError::InvalidSignatureEncoding)?;
    Ok((sig, ty))
}

/// The per-transaction part of the signature hash, computed once for all inputs.
#[derive(Debug, Clone)]
pub struct SighashCache<'a> {
    genesis: BlockHash,
    tx: &'a Transaction,
    spent_outputs: &'a [TxOut],
    hash_prevouts: [u8; 32],
    hash_spent_outputs: [u8; 32],
    hash_sequences: [u8; 32],
    hash_outputs: [u8; 32],
}

impl<'a> SighashCache<'a> {
    /// Precomputes the hashes for `tx`, whose inputs spend `spent_outputs` (one per input, in
    /// input order), on the chain whose genesis block id is `genesis` (every signature made or
    /// checked through this cache commits to it). Fails with
    /// [`ScriptError::SpentOutputsMismatch`] if the counts differ.
    pub fn new(
        genesis: &BlockHash,
        tx: &'a Transaction,
        spent_outputs: &'a [TxOut],
    ) -> Result<Self, ScriptError> {
        if spent_outputs.len() != tx.inputs.len() {
            return Err(ScriptError::SpentOutputsMismatch);
        }
        let mut buf = Vec::with_capacity(64);
        let mut prevouts = Keccak256dWriter::new();
        let mut sequences = Keccak256dWriter::new();
        for input in &tx.inputs {
            buf.clear();
            input.previous_output.encode(&mut buf);
            prevouts.update(&buf);
            sequences.update(&input.sequence.to_le_bytes());
        }
        let mut spent = Keccak256dWriter::new();
        for out in spent_outputs {
            buf.clear();
            out.encode(&mut buf);
            spent.update(&buf);
        }
        let mut outputs = Keccak256dWriter::new();
        for out in &tx.outputs {
            buf.clear();
            out.encode(&mut buf);
            outputs.update(&buf);
        }
        Ok(Self {
            genesis: *genesis,
            tx,
            spent_outputs,
            hash_prevouts: prevouts.finalize(),
            hash_spent_outputs: spent.finalize(),
            hash_sequences: sequences.finalize(),
            hash_outputs: outputs.finalize(),
        })
    }

    /// The genesis block id of the chain the signatures are for.
    pub fn genesis(&self) -> &BlockHash {
        &self.genesis
    }

    /// The transaction.
    pub fn tx(&self) -> &'a Transaction {
        self.tx
    }

    /// The outputs spent by the transaction's inputs.
    pub fn spent_outputs(&self) -> &'a [TxOut] {
        self.spent_outputs
    }

    /// The context for verifying input `input_index`
    /// ([`ScriptError::InputIndexOutOfRange`] if there is no such input).
    pub fn spend_context(&self, input_index: usize) -> Result<SpendContext<'_>, ScriptError> {
        SpendContext::new(self, input_index)
    }

    /// The message a signature of type `ty` on input `input_index` signs, with `script_code` the
    /// witness script (script-hash outputs) or the scriptPubKey (key outputs).
    pub fn signature_hash(
        &self,
        input_index: usize,
        script_code: &[u8],
        ty: SighashType,
    ) -> Result<[u8; 32], ScriptError> {
        let input = self.tx.inputs.get(input_index).ok_or(ScriptError::InputIndexOutOfRange)?;
        let spent = self.spent_outputs.get(input_index).ok_or(ScriptError::InputIndexOutOfRange)?;
        let zero = [0u8; 32];
        let acp = ty.anyone_can_pay();
        let mut w = Vec::with_capacity(252 + script_code.len());
        w.extend_from_slice(SIGHASH_TAG);
        w.extend_from_slice(self.genesis.as_bytes());
        w.extend_from_slice(&self.tx.version.to_le_bytes());
        w.extend_from_slice(if acp { &zero } else { &self.hash_prevouts });
        w.extend_from_slice(if acp { &zero } else { &self.hash_spent_outputs });
        w.extend_from_slice(if acp { &zero } else { &self.hash_sequences });
        input.previous_output.encode(&mut w);
        write_var_bytes(&mut w, script_code);
        w.extend_from_slice(&spent.value.to_resonance().to_le_bytes());
        w.extend_from_slice(&input.sequence.to_le_bytes());
        w.extend_from_slice(&self.hash_outputs);
        w.extend_from_slice(&self.tx.lock_time.to_le_bytes());
        w.push(ty.to_u8());
        Ok(rnet_crypto::keccak256d(&w))
    }

    /// Signs input `input_index` with `key` and returns the witness signature (64 or 65 bytes).
    pub fn sign(
        &self,
        key: &SigningKey,
        input_index: usize,
        script_code: &[u8],
        ty: SighashType,
    ) -> Result<Vec<u8>, ScriptError> {
        let msg = self.signature_hash(input_index, script_code, ty)?;
        Ok(encode_signature(&key.sign(&msg), ty))
    }
}

/// One-shot [`SighashCache::signature_hash`] on the chain whose genesis block id is `genesis`
/// (builds the cache; use the cache for many inputs).
pub fn signature_hash(
    genesis: &BlockHash,
    tx: &Transaction,
    input_index: usize,
    spent_outputs: &[TxOut],
    script_code: &[u8],
    ty: SighashType,
) -> Result<[u8; 32], ScriptError> {
    SighashCache::new(genesis, tx, spent_outputs)?.signature_hash(input_index, script_code, ty)
}

#[cfg(test)]
mod tests {
    use rnet_primitives::{Amount, OutPoint, TxIn, Txid, Witness};

    use super::*;

    /// The genesis id the test signatures are for (any 32 bytes).
    const GENESIS: BlockHash = BlockHash([0x47; 32]);

    fn tx() -> (Transaction, Vec<TxOut>) {
        let input = |n: u8| TxIn {
            previous_output: OutPoint::new(Txid::from_bytes([n; 32]), u32::from(n)),
            script_sig: Vec::new(),
            sequence: 0xffff_fffe,
            witness: Witness::new(),
        };
        let tx = Transaction {
            version: 2,
            inputs: vec![input(1), input(2)],
            outputs: vec![TxOut { value: Amount(5_000), script_pubkey: vec![0x51, 0x02, 1, 2] }],
            lock_time: 77,
        };
        let spent = vec![
            TxOut { value: Amount(3_000), script_pubkey: vec![0x00, 0x02, 3, 4] },
            TxOut { value: Amount(4_000), script_pubkey: vec![0x00, 0x02, 5, 6] },
        ];
        (tx, spent)
    }

    #[test]
    fn signature_encoding() {
        let sig = Signature::from_bytes([7; 64]);
        let all = encode_signature(&sig, SighashType::All);
        assert_eq!(all.len(), 64);
        assert_eq!(parse_signature(&all), Ok((sig, SighashType::All)));
        let acp = encode_signature(&sig, SighashType::AllAnyoneCanPay);
        assert_eq!(acp.len(), 65);
        assert_eq!(parse_signature(&acp), Ok((sig, SighashType::AllAnyoneCanPay)));
        let mut explicit_all = all.clone();
        explicit_all.push(0x01);
        for bad in [&explicit_all[..], &all[..63], &[][..], &[0u8; 66][..]] {
            assert_eq!(parse_signature(bad), Err(ScriptError::InvalidSignatureEncoding));
        }
    }

    #[test]
    fn commits_to_everything() {
        let (tx, spent) = tx();
        let base = signature_hash(&GENESIS, &tx, 0, &spent, b"code", SighashType::All).unwrap();
        // The preimage, spelled out byte by byte as in the module docs.
        let d = |b: &[u8]| rnet_crypto::keccak256d(b).to_vec();
        let mut prevouts = Vec::new();
        for (n, vout) in [(1u8, 1u32), (2, 2)] {
            prevouts.extend([n; 32]);
            prevouts.extend(vout.to_le_bytes());
        }
        let spent_ser = [
            &3_000u64.to_le_bytes()[..],
            &[4, 0x00, 0x02, 3, 4],
            &4_000u64.to_le_bytes(),
            &[4, 0x00, 0x02, 5, 6],
        ]
        .concat();
        let seqs = [0xffff_fffeu32.to_le_bytes(), 0xffff_fffeu32.to_le_bytes()].concat();
        let outs = [&5_000u64.to_le_bytes()[..], &[4, 0x51, 0x02, 1, 2]].concat();
        let preimage = [
            &b"RNET/sighash/v2"[..],
            &[0x47; 32],
            &2u32.to_le_bytes(),
            &d(&prevouts),
            &d(&spent_ser),
            &d(&seqs),
            &[1u8; 32],
            &1u32.to_le_bytes(),
            &[4],
            b"code",
            &3_000u64.to_le_bytes(),
            &0xffff_fffeu32.to_le_bytes(),
            &d(&outs),
            &77u32.to_le_bytes(),
            &[0x01],
        ]
        .concat();
        assert_eq!(base, rnet_crypto::keccak256d(&preimage));
        // Pinned: changing the preimage layout is a consensus change.
        assert_eq!(
            hex::encode(base),
            "567e4d5414761038f54610b291538fc5364b951487707b4916635361b3dfba66"
        );

        let h = |tx: &Transaction, spent: &[TxOut], i, code: &[u8], ty| {
            signature_hash(&GENESIS, tx, i, spent, code, ty).unwrap()
        };
        // Another chain (another genesis id): another message, so no signature replays there.
        let other =
            signature_hash(&BlockHash([0x48; 32]), &tx, 0, &spent, b"code", SighashType::All);
        assert_ne!(other.unwrap(), base, "genesis");
        let other = signature_hash(&BlockHash::ZERO, &tx, 0, &spent, b"code", SighashType::All);
        assert_ne!(other.unwrap(), base, "genesis");
        assert_ne!(h(&tx, &spent, 1, b"code", SighashType::All), base, "input index");
        assert_ne!(h(&tx, &spent, 0, b"cod", SighashType::All), base, "script code");
        assert_ne!(h(&tx, &spent, 0, b"code", SighashType::AllAnyoneCanPay), base, "type");

        let mut s = spent.clone();
        s[0].value = Amount(3_001);
        assert_ne!(h(&tx, &s, 0, b"code", SighashType::All), base, "own amount");
        let mut s = spent.clone();
        s[1].value = Amount(4_001);
        assert_ne!(h(&tx, &s, 0, b"code", SighashType::All), base, "other amount");
        let mut s = spent.clone();
        s[1].script_pubkey[3] = 9;
        assert_ne!(h(&tx, &s, 0, b"code", SighashType::All), base, "other script");

        let mut t = tx.clone();
        t.version = 3;
        assert_ne!(h(&t, &spent, 0, b"code", SighashType::All), base, "version");
        let mut t = tx.clone();
        t.lock_time = 78;
        assert_ne!(h(&t, &spent, 0, b"code", SighashType::All), base, "lock time");
        let mut t = tx.clone();
        t.inputs[1].sequence = 5;
        assert_ne!(h(&t, &spent, 0, b"code", SighashType::All), base, "other sequence");
        let mut t = tx.clone();
        t.inputs[0].sequence = 5;
        assert_ne!(h(&t, &spent, 0, b"code", SighashType::All), base, "own sequence");
        let mut t = tx.clone();
        t.outputs[0].value = Amount(4_999);
        assert_ne!(h(&t, &spent, 0, b"code", SighashType::All), base, "output value");
        let mut t = tx.clone();
        t.inputs[1].previous_output.vout = 9;
        assert_ne!(h(&t, &spent, 0, b"code", SighashType::All), base, "other outpoint");

        // Witnesses and script_sigs are not committed.
        let mut t = tx.clone();
        t.inputs[1].witness.push(vec![1]);
        assert_eq!(h(&t, &spent, 0, b"code", SighashType::All), base);
    }

    #[test]
    fn anyone_can_pay_ignores_other_inputs() {
        let (tx, spent) = tx();
        let acp_hash = |tx: &Transaction, spent: &[TxOut]| {
            signature_hash(&GENESIS, tx, 0, spent, b"code", SighashType::AllAnyoneCanPay).unwrap()
        };
        let acp = acp_hash(&tx, &spent);
        let mut t = tx.clone();
        t.inputs.truncate(1);
        assert_eq!(acp_hash(&t, &spent[..1]), acp);
        let mut s = spent.clone();
        s[0].value = Amount(1);
        assert_ne!(acp_hash(&tx, &s), acp);
        // ANYONECANPAY commits to the genesis id too.
        let other = signature_hash(
            &BlockHash([0x48; 32]),
            &tx,
            0,
            &spent,
            b"code",
            SighashType::AllAnyoneCanPay,
        );
        assert_ne!(other.unwrap(), acp);
    }

    #[test]
    fn context_errors() {
        let (tx, spent) = tx();
        assert_eq!(
            SighashCache::new(&GENESIS, &tx, &spent[..1]).unwrap_err(),
            ScriptError::SpentOutputsMismatch
        );
        let cache = SighashCache::new(&GENESIS, &tx, &spent).unwrap();
        assert_eq!(cache.genesis(), &GENESIS);
        assert_eq!(
            cache.signature_hash(2, b"", SighashType::All),
            Err(ScriptError::InputIndexOutOfRange)
        );
        assert!(cache.spend_context(2).is_err());
    }
}
