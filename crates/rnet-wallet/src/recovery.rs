//! Non-owner spending paths, usable without the owner's wallet: the heartbeat recovery key, the
//! social guardians (a [`RecoveryRequest`] that each guardian signs), the new key after the
//! cancel window, and the emission sweep that anyone may build.
//!
//! Signatures commit to the genesis id of the chain they are for (`docs/protocol.md` Part IV
//! §6): the signing functions take it (`ChainParams::genesis_hash()`), and a
//! [`RecoveryRequest`] carries the one its creator chose, so every guardian signs for that chain.

use rnet_crypto::{PublicKey, SigningKey};
use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Witness};
use rnet_script::templates::emission_output;
use rnet_script::{
    EmissionReturn, Heartbeat, MAX_EMISSION_SWEEP_FEE_PER_INPUT, MAX_RECOVERY_FEE, RecoveryPending,
    ScriptTemplate, SighashCache, SighashType, Social,
};

use crate::error::{Result, WalletError};

/// Transaction version used for every wallet transaction (≥ 2 so CSV paths work).
pub const TX_VERSION: u32 = 2;
/// Input sequence that signals replace-by-fee and imposes no relative lock.
pub const RBF_SEQUENCE: u32 = 0xFFFF_FFFD;

fn unsigned(inputs: &[(OutPoint, u32)], outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: TX_VERSION,
        inputs: inputs
            .iter()
            .map(|&(previous_output, sequence)| TxIn {
                previous_output,
                script_sig: Vec::new(),
                sequence,
                witness: Witness::new(),
            })
            .collect(),
        outputs,
        lock_time: 0,
    }
}

fn total(coins: &[(OutPoint, TxOut)]) -> Result<Amount> {
    coins.iter().try_fold(Amount::ZERO, |a, (_, o)| {
        a.checked_add(o.value).ok_or_else(|| WalletError::InvalidAmount("overflow".into()))
    })
}

fn sign_all(
    genesis: &BlockHash,
    tx: &mut Transaction,
    spent: &[TxOut],
    key: &SigningKey,
    script: &[u8],
    witness: impl Fn(Vec<u8>) -> Witness,
) -> Result<()> {
    let sigs = {
        let cache = SighashCache::new(genesis, tx, spent)?;
        (0..tx.inputs.len())
            .map(|i| cache.sign(key, i, script, SighashType::All))
            .collect::<Result<Vec<_>, _>>()?
    };
    for (input, sig) in tx.inputs.iter_mut().zip(sigs) {
        input.witness = witness(sig);
    }
    Ok(())
}

fn spend_locked(
    coins: &[(OutPoint, TxOut)],
    destination: Vec<u8>,
    fee: Amount,
    sequence: u32,
) -> Result<(Transaction, Vec<TxOut>)> {
    if coins.is_empty() {
        return Err(WalletError::InvalidTransaction("no coins".into()));
    }
    let value = total(coins)?
        .checked_sub(fee)
        .filter(|v| v.0 > 0)
        .ok_or_else(|| WalletError::InvalidAmount("fee exceeds the coins' value".into()))?;
    let ins: Vec<(OutPoint, u32)> = coins.iter().map(|(o, _)| (*o, sequence)).collect();
    let tx = unsigned(&ins, vec![TxOut { value, script_pubkey: destination }]);
    Ok((tx, coins.iter().map(|(_, o)| o.clone()).collect()))
}

/// The recovery key's spend of heartbeat coins (all of one template) to `destination`, paying
/// `fee`, signed for the chain whose genesis id is `genesis`. Valid on chain once every coin is
/// `heartbeat.interval` old.
pub fn heartbeat_recovery_tx(
    genesis: &BlockHash,
    heartbeat: &Heartbeat,
    coins: &[(OutPoint, TxOut)],
    recovery_key: &SigningKey,
    destination: Vec<u8>,
    fee: Amount,
) -> Result<Transaction> {
    if recovery_key.public_key().as_bytes() != heartbeat.recovery.as_bytes() {
        return Err(WalletError::Script("not the policy's recovery key".into()));
    }
    let (mut tx, spent) = spend_locked(coins, destination, fee, heartbeat.recovery_sequence())?;
    let script = heartbeat.witness_script();
    sign_all(genesis, &mut tx, &spent, recovery_key, &script, |s| heartbeat.recovery_witness(s))?;
    Ok(tx)
}

/// The new key's claim of recovery-pending coins after the cancel window, signed for the chain
/// whose genesis id is `genesis`.
pub fn complete_recovery(
    genesis: &BlockHash,
    pending: &RecoveryPending,
    coins: &[(OutPoint, TxOut)],
    new_key: &SigningKey,
    destination: Vec<u8>,
    fee: Amount,
) -> Result<Transaction> {
    if new_key.public_key().as_bytes() != pending.new_key.as_bytes() {
        return Err(WalletError::Script("not the recovery's new key".into()));
    }
    let (mut tx, spent) = spend_locked(coins, destination, fee, pending.claim_sequence())?;
    let script = pending.witness_script();
    sign_all(genesis, &mut tx, &spent, new_key, &script, |s| pending.claim_witness(s))?;
    Ok(tx)
}

/// A sweep of dormant emission-return coins (all of one template) into the emission pool,
/// leaving `fee_per_input` (at most 0.01 RNT, and never more than the coin's value, as the
/// covenant allows) per input to the miner. Anyone can build it; it is valid on chain once every
/// coin is `template.inactivity` old.
pub fn sweep_emission(
    template: &EmissionReturn,
    coins: &[(OutPoint, TxOut)],
    fee_per_input: Amount,
) -> Result<Transaction> {
    if fee_per_input > MAX_EMISSION_SWEEP_FEE_PER_INPUT {
        return Err(WalletError::InvalidAmount("sweep fee above 0.01 RNT per input".into()));
    }
    let fee = coins.iter().try_fold(Amount::ZERO, |fee, (_, o)| {
        fee.checked_add(fee_per_input.min(o.value))
            .ok_or_else(|| WalletError::InvalidAmount("overflow".into()))
    })?;
    let spk = template.script_pubkey();
    if coins.iter().any(|(_, o)| o.script_pubkey != spk) {
        return Err(WalletError::InvalidTransaction("coin does not pay this template".into()));
    }
    let (mut tx, _) = spend_locked(coins, Vec::new(), fee, template.sweep_sequence())?;
    let value = tx.outputs[0].value;
    tx.outputs = vec![emission_output(value)];
    for input in &mut tx.inputs {
        input.witness = template.sweep_witness();
    }
    Ok(tx)
}

/// A social recovery in progress: the unsigned transaction that moves each coin into the
/// recovery-pending output for `new_key` (index-aligned), and the guardian signatures so far
/// (one slot per guardian per input), for the chain whose genesis id is `genesis`. Pass it from
/// guardian to guardian, then [`RecoveryRequest::finalize`].
#[derive(Debug, Clone)]
pub struct RecoveryRequest {
    /// The genesis id of the chain the coins are on: what every guardian signature commits to.
    pub genesis: BlockHash,
    /// The policy of the coins (owner key + guardians + window).
    pub social: Social,
    /// The key the coins are recovered to.
    pub new_key: PublicKey,
    /// The transaction (inputs = the coins, output i = pending output of input i).
    pub tx: Transaction,
    /// The outputs the inputs spend.
    pub spent: Vec<TxOut>,
    /// `signatures[input][guardian]`.
    pub signatures: Vec<Vec<Option<Vec<u8>>>>,
}

/// Builds the unsigned recovery transaction for `coins` of one social template on the chain whose
/// genesis id is `genesis`: output `i` pays `social.pending(new_key)` the value of coin `i` minus
/// `fee_per_input` (≤ 0.01 RNT).
pub fn create_recovery_tx(
    genesis: &BlockHash,
    social: &Social,
    coins: &[(OutPoint, TxOut)],
    new_key: PublicKey,
    fee_per_input: Amount,
) -> Result<RecoveryRequest> {
    if coins.is_empty() {
        return Err(WalletError::InvalidTransaction("no coins".into()));
    }
    if fee_per_input > MAX_RECOVERY_FEE {
        return Err(WalletError::InvalidAmount("recovery fee above 0.01 RNT per input".into()));
    }
    let spk = social.script_pubkey();
    let pending = social.pending(new_key);
    let mut outputs = Vec::with_capacity(coins.len());
    for (_, o) in coins {
        if o.script_pubkey != spk {
            return Err(WalletError::InvalidTransaction("coin does not pay this policy".into()));
        }
        let value = o.value.checked_sub(fee_per_input).filter(|v| v.0 > 0).ok_or_else(|| {
            WalletError::InvalidAmount("coin smaller than the recovery fee".into())
        })?;
        outputs.push(pending.output(value));
    }
    let ins: Vec<(OutPoint, u32)> = coins.iter().map(|(o, _)| (*o, RBF_SEQUENCE)).collect();
    let tx = unsigned(&ins, outputs);
    let n = social.guardians().len();
    Ok(RecoveryRequest {
        genesis: *genesis,
        social: social.clone(),
        new_key,
        tx,
        spent: coins.iter().map(|(_, o)| o.clone()).collect(),
        signatures: vec![vec![None; n]; coins.len()],
    })
}

impl RecoveryRequest {
    /// Adds `guardian`'s signature on every input, for the request's chain
    /// ([`WalletError::NotAGuardian`] if the key is not one of the policy's guardians).
    pub fn sign(&mut self, guardian: &SigningKey) -> Result<()> {
        let pk = guardian.public_key();
        let slot = self
            .social
            .guardians()
            .iter()
            .position(|g| g.as_bytes() == pk.as_bytes())
            .ok_or(WalletError::NotAGuardian)?;
        let script = self.social.witness_script();
        let cache = SighashCache::new(&self.genesis, &self.tx, &self.spent)?;
        for (i, sigs) in self.signatures.iter_mut().enumerate() {
            let sig = cache.sign(guardian, i, &script, SighashType::All)?;
            if let Some(s) = sigs.get_mut(slot) {
                *s = Some(sig);
            }
        }
        Ok(())
    }

    /// Number of guardians who have signed (every input).
    pub fn signature_count(&self) -> usize {
        self.signatures.iter().map(|s| s.iter().filter(|x| x.is_some()).count()).min().unwrap_or(0)
    }

    /// The signed transaction once `threshold` guardians have signed.
    pub fn finalize(&self) -> Result<Transaction> {
        let have = self.signature_count();
        if have < self.social.threshold() {
            return Err(WalletError::NotEnoughSignatures { needed: self.social.threshold(), have });
        }
        let mut tx = self.tx.clone();
        for (input, sigs) in tx.inputs.iter_mut().zip(&self.signatures) {
            input.witness = self.social.guardian_witness(&self.new_key, sigs)?;
        }
        Ok(tx)
    }
}

/// Magic of the serialised [`RecoveryRequest`] (`RNETRRQ`), followed by the format version.
const REQUEST_MAGIC: &[u8; 7] = b"RNETRRQ";
/// Current [`RecoveryRequest`] encoding version (2: the genesis id follows the version; version 1
/// requests predate signatures that commit to it and are refused).
pub const RECOVERY_REQUEST_VERSION: u8 = 2;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(bad_request("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self, max: usize) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(bad_request("field too long"));
        }
        self.take(n)
    }
    fn key(&mut self) -> Result<PublicKey> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        PublicKey::from_bytes(&a).map_err(|_| bad_request("invalid key"))
    }
}

fn bad_request(why: &str) -> WalletError {
    WalletError::InvalidTransaction(format!("invalid recovery request: {why}"))
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

impl RecoveryRequest {
    /// The versioned encoding: `"RNETRRQ" ‖ version (2) ‖ genesis id (32) ‖ owner (32) ‖ guardian count (1) ‖
    /// guardians (32 each) ‖ threshold (1) ‖ cancel window sequence (u32 LE) ‖ new key (32) ‖
    /// tx (u32 LE length ‖ bytes) ‖ per input: spent value (u64 LE) ‖ spent script (u32 LE
    /// length ‖ bytes) ‖ per guardian: 0 (no signature) or 1 ‖ signature (u32 LE length ‖
    /// bytes)`. Integers little-endian; no trailing bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = REQUEST_MAGIC.to_vec();
        out.push(RECOVERY_REQUEST_VERSION);
        out.extend_from_slice(self.genesis.as_bytes());
        out.extend_from_slice(self.social.owner().as_bytes());
        out.push(self.social.guardians().len() as u8);
        for g in self.social.guardians() {
            out.extend_from_slice(g.as_bytes());
        }
        out.push(self.social.threshold() as u8);
        out.extend_from_slice(&self.social.cancel_window().to_sequence().to_le_bytes());
        out.extend_from_slice(self.new_key.as_bytes());
        put_bytes(&mut out, &self.tx.to_bytes());
        for (spent, sigs) in self.spent.iter().zip(&self.signatures) {
            out.extend_from_slice(&spent.value.0.to_le_bytes());
            put_bytes(&mut out, &spent.script_pubkey);
            for s in sigs {
                match s {
                    None => out.push(0),
                    Some(sig) => {
                        out.push(1);
                        put_bytes(&mut out, sig);
                    }
                }
            }
        }
        out
    }

    /// Decodes [`RecoveryRequest::to_bytes`] strictly: known version, valid policy, one spent
    /// output and signature row per input, every input paying the policy and every output the
    /// matching recovery-pending output, no trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        if r.take(REQUEST_MAGIC.len())? != REQUEST_MAGIC {
            return Err(bad_request("bad magic"));
        }
        let version = r.u8()?;
        if version != RECOVERY_REQUEST_VERSION {
            return Err(bad_request(&format!("unknown version {version}")));
        }
        let mut genesis = [0u8; 32];
        genesis.copy_from_slice(r.take(32)?);
        let genesis = BlockHash(genesis);
        let owner = r.key()?;
        let n = usize::from(r.u8()?);
        let guardians = (0..n).map(|_| r.key()).collect::<Result<Vec<_>>>()?;
        let threshold = usize::from(r.u8()?);
        let window = rnet_script::RelativeLock::from_canonical(r.u32()?)
            .ok_or_else(|| bad_request("bad cancel window"))?;
        let social = Social::new(owner, guardians, threshold, window)
            .map_err(|e| bad_request(&e.to_string()))?;
        let new_key = r.key()?;
        let tx = Transaction::from_bytes(r.bytes(4_000_000)?)
            .map_err(|_| bad_request("bad transaction"))?;
        if tx.inputs.is_empty() || tx.inputs.len() != tx.outputs.len() {
            return Err(bad_request("inputs and outputs must pair up"));
        }
        let spk = social.script_pubkey();
        let pending_spk = social.pending(new_key).script_pubkey();
        let mut spent = Vec::with_capacity(tx.inputs.len());
        let mut signatures = Vec::with_capacity(tx.inputs.len());
        for _ in 0..tx.inputs.len() {
            let value = Amount(r.u64()?);
            let script_pubkey = r.bytes(10_000)?.to_vec();
            if script_pubkey != spk {
                return Err(bad_request("a spent output does not pay the policy"));
            }
            spent.push(TxOut { value, script_pubkey });
            let mut row = Vec::with_capacity(n);
            for _ in 0..n {
                row.push(match r.u8()? {
                    0 => None,
                    1 => Some(r.bytes(1_000)?.to_vec()),
                    _ => return Err(bad_request("bad signature flag")),
                });
            }
            signatures.push(row);
        }
        if !r.0.is_empty() {
            return Err(bad_request("trailing bytes"));
        }
        if tx.outputs.iter().any(|o| o.script_pubkey != pending_spk) {
            return Err(bad_request("an output does not pay the recovery-pending output"));
        }
        Ok(Self { genesis, social, new_key, tx, spent, signatures })
    }
}

#[cfg(test)]
mod tests {
    use rnet_primitives::Txid;
    use rnet_script::RelativeLock;

    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn request_encoding_round_trips_and_is_strict() {
        let guardians = vec![key(2).public_key(), key(3).public_key(), key(4).public_key()];
        let social =
            Social::new(key(1).public_key(), guardians, 2, RelativeLock::Blocks(5)).unwrap();
        let coins = vec![
            (
                OutPoint::new(Txid([7; 32]), 0),
                TxOut { value: Amount(5_000_000), script_pubkey: social.script_pubkey() },
            ),
            (
                OutPoint::new(Txid([8; 32]), 1),
                TxOut { value: Amount(9_000_000), script_pubkey: social.script_pubkey() },
            ),
        ];
        let genesis = BlockHash([0x47; 32]);
        let mut req =
            create_recovery_tx(&genesis, &social, &coins, key(9).public_key(), Amount(1_000))
                .unwrap();
        req.sign(&key(3)).unwrap();
        let bytes = req.to_bytes();
        assert_eq!(bytes[7], 2);
        assert_eq!(bytes[8..40], [0x47; 32]);
        let back = RecoveryRequest::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.genesis, genesis);
        assert_eq!(back.signature_count(), 1);
        assert_eq!(back.tx, req.tx);
        let mut back = back;
        back.sign(&key(4)).unwrap();
        assert!(back.finalize().is_ok());
        // The guardian signatures are for the request's chain: on another chain they fail.
        let tx = back.finalize().unwrap();
        let verify = |g: &BlockHash| {
            rnet_script::verify_transaction(g, &tx, &back.spent, rnet_script::VerifyFlags::STANDARD)
        };
        assert_eq!(verify(&genesis), Ok(()));
        assert!(verify(&BlockHash([0x48; 32])).is_err());
        // Truncated, trailing bytes, unknown versions (1: before the genesis id), bad magic.
        assert!(RecoveryRequest::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(RecoveryRequest::from_bytes(&[bytes.as_slice(), &[0]].concat()).is_err());
        for version in [1, 3] {
            let mut other = bytes.clone();
            other[7] = version;
            assert!(RecoveryRequest::from_bytes(&other).is_err());
        }
        let mut magic = bytes;
        magic[0] = b'X';
        assert!(RecoveryRequest::from_bytes(&magic).is_err());
    }
}
