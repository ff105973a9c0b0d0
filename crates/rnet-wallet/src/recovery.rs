//! Non-owner spending paths, usable without the owner's wallet: the heartbeat recovery key, the
//! social guardians (a [`RecoveryRequest`] that each guardian signs), the new key after the
//! cancel window, and the emission sweep that anyone may build.

use rnet_crypto::{PublicKey, SigningKey};
use rnet_primitives::{Amount, OutPoint, Transaction, TxIn, TxOut, Witness};
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
    tx: &mut Transaction,
    spent: &[TxOut],
    key: &SigningKey,
    script: &[u8],
    witness: impl Fn(Vec<u8>) -> Witness,
) -> Result<()> {
    let sigs = {
        let cache = SighashCache::new(tx, spent)?;
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
/// `fee`. Valid on chain once every coin is `heartbeat.interval` old.
pub fn heartbeat_recovery_tx(
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
    sign_all(&mut tx, &spent, recovery_key, &script, |s| heartbeat.recovery_witness(s))?;
    Ok(tx)
}

/// The new key's claim of recovery-pending coins after the cancel window.
pub fn complete_recovery(
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
    sign_all(&mut tx, &spent, new_key, &script, |s| pending.claim_witness(s))?;
    Ok(tx)
}

/// A sweep of dormant emission-return coins (all of one template) into the emission pool,
/// leaving `fee_per_input` (at most 0.01 RNT) per input to the miner. Anyone can build it; it is
/// valid on chain once every coin is `template.inactivity` old.
pub fn sweep_emission(
    template: &EmissionReturn,
    coins: &[(OutPoint, TxOut)],
    fee_per_input: Amount,
) -> Result<Transaction> {
    if fee_per_input > MAX_EMISSION_SWEEP_FEE_PER_INPUT {
        return Err(WalletError::InvalidAmount("sweep fee above 0.01 RNT per input".into()));
    }
    let fee = fee_per_input
        .checked_mul(coins.len() as u64)
        .ok_or_else(|| WalletError::InvalidAmount("overflow".into()))?;
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
/// (one slot per guardian per input). Pass it from guardian to guardian, then
/// [`RecoveryRequest::finalize`].
#[derive(Debug, Clone)]
pub struct RecoveryRequest {
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

/// Builds the unsigned recovery transaction for `coins` of one social template: output `i` pays
/// `social.pending(new_key)` the value of coin `i` minus `fee_per_input` (≤ 0.01 RNT).
pub fn create_recovery_tx(
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
        social: social.clone(),
        new_key,
        tx,
        spent: coins.iter().map(|(_, o)| o.clone()).collect(),
        signatures: vec![vec![None; n]; coins.len()],
    })
}

impl RecoveryRequest {
    /// Adds `guardian`'s signature on every input ([`WalletError::NotAGuardian`] if the key is
    /// not one of the policy's guardians).
    pub fn sign(&mut self, guardian: &SigningKey) -> Result<()> {
        let pk = guardian.public_key();
        let slot = self
            .social
            .guardians()
            .iter()
            .position(|g| g.as_bytes() == pk.as_bytes())
            .ok_or(WalletError::NotAGuardian)?;
        let script = self.social.witness_script();
        let cache = SighashCache::new(&self.tx, &self.spent)?;
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
