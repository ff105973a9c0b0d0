//! HTLC-success and HTLC-timeout transactions: the second stage through which the holder of a
//! commitment spends its HTLC outputs, so that what it takes is again delayed and revocable.
//!
//! Layout (BOLT 3 without anchors): version 2; one input spending the HTLC output with sequence
//! 0; lock time `cltv_expiry` (timeout) or 0 (success); one output of the HTLC's value floored to
//! resonance minus the fee for [`super::fees::HTLC_TIMEOUT_TX_SIZE`] /
//! [`super::fees::HTLC_SUCCESS_TX_SIZE`] at the commitment's fee rate, paying a
//! [`RevocableScript`] with the holder's delayed key and the same revocation 2-of-2 as the
//! commitment. The counterparty signs each of them (sighash `ALL`) before the holder's commitment
//! is valid for it; the holder adds its own signature (and the preimage) when it needs them.

use rnet_crypto::{PublicKey, SigningKey};
use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
use rnet_script::{ScriptTemplate, templates::Htlc};

use super::commitment::{CommitmentTransaction, HtlcDirection, HtlcSpec, MSAT_PER_RESONANCE};
use super::error::ChannelError;
use super::fees::{htlc_success_fee, htlc_timeout_fee};
use super::scripts::{HtlcScript, RevocableScript};
use super::sign::{sign_input, verify_input_signature};

/// Which second-stage transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HtlcTxKind {
    /// Spends an HTLC the holder offered, after its expiry.
    Timeout,
    /// Spends an HTLC the holder received, with the preimage.
    Success,
}

/// One HTLC-success or HTLC-timeout transaction (unsigned) and what is needed to sign it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtlcTransaction {
    /// The transaction.
    pub tx: Transaction,
    /// Which kind.
    pub kind: HtlcTxKind,
    /// The HTLC (seen from the commitment's holder).
    pub htlc: HtlcSpec,
    /// The commitment output it spends.
    pub commitment_output: u32,
    /// That output.
    pub spent_output: TxOut,
    /// That output's script.
    pub htlc_script: HtlcScript,
    /// The script of its own output.
    pub output_script: RevocableScript,
}

/// The HTLC transactions of a commitment, one per HTLC output, in output order (the order of
/// `commitment_signed`'s HTLC signatures).
pub fn htlc_transactions(
    commitment: &CommitmentTransaction,
) -> Result<Vec<HtlcTransaction>, ChannelError> {
    let keys = &commitment.keys;
    let output_script = RevocableScript::new(
        keys.revocation,
        keys.per_commitment_point,
        commitment.to_self_delay,
        keys.holder_delayed,
    )?;
    let txid = commitment.txid();
    commitment
        .htlc_outputs()
        .map(|(index, htlc, script)| {
            let (kind, fee, lock_time) = match htlc.direction {
                HtlcDirection::Offered => {
                    (HtlcTxKind::Timeout, htlc_timeout_fee(commitment.feerate), htlc.cltv_expiry)
                }
                HtlcDirection::Received => {
                    (HtlcTxKind::Success, htlc_success_fee(commitment.feerate), 0)
                }
            };
            let value = Amount(htlc.amount_msat / MSAT_PER_RESONANCE)
                .checked_sub(fee)
                .ok_or(ChannelError::AmountOverflow)?;
            let spent_output = commitment
                .tx
                .outputs
                .get(index as usize)
                .cloned()
                .ok_or(ChannelError::WrongOutput(index))?;
            let tx = Transaction {
                version: 2,
                inputs: vec![TxIn {
                    previous_output: OutPoint::new(txid, index),
                    script_sig: Vec::new(),
                    sequence: 0,
                    witness: Witness::new(),
                }],
                outputs: vec![output_script.output(value)],
                lock_time,
            };
            Ok(HtlcTransaction {
                tx,
                kind,
                htlc: *htlc,
                commitment_output: index,
                spent_output,
                htlc_script: *script,
                output_script,
            })
        })
        .collect()
}

impl HtlcTransaction {
    /// Its txid.
    pub fn txid(&self) -> Txid {
        self.tx.txid()
    }

    /// The outpoint of its (only) output.
    pub fn outpoint(&self) -> OutPoint {
        OutPoint::new(self.txid(), 0)
    }

    /// Its (only) output.
    pub fn output(&self) -> Result<TxOut, ChannelError> {
        self.tx.outputs.first().cloned().ok_or(ChannelError::WrongOutput(0))
    }

    /// The outputs its input spends.
    pub fn spent_outputs(&self) -> Vec<TxOut> {
        vec![self.spent_output.clone()]
    }

    /// Signs it with an HTLC key (either party's).
    pub fn sign(
        &self,
        htlc_key: &SigningKey,
        genesis: &BlockHash,
    ) -> Result<Vec<u8>, ChannelError> {
        let k = self.htlc_script.keys();
        let public = htlc_key.public_key();
        if public != k.holder_htlc && public != k.counterparty_htlc {
            return Err(ChannelError::KeyMismatch);
        }
        sign_input(
            genesis,
            &self.tx,
            &self.spent_outputs(),
            0,
            &self.htlc_script.witness_script(),
            htlc_key,
        )
    }

    /// Checks a signature by `key`.
    pub fn verify_signature(
        &self,
        key: &PublicKey,
        sig: &[u8],
        genesis: &BlockHash,
    ) -> Result<(), ChannelError> {
        verify_input_signature(
            genesis,
            &self.tx,
            &self.spent_outputs(),
            0,
            &self.htlc_script.witness_script(),
            key,
            sig,
        )
    }

    /// Checks the counterparty's signature, as received with the commitment.
    pub fn verify_counterparty_signature(
        &self,
        sig: &[u8],
        genesis: &BlockHash,
    ) -> Result<(), ChannelError> {
        self.verify_signature(&self.htlc_script.keys().counterparty_htlc, sig, genesis)
    }

    /// The broadcastable transaction. HTLC-success needs the preimage
    /// ([`ChannelError::WrongPreimage`] if it is missing or does not match); HTLC-timeout takes
    /// none.
    pub fn finalize(
        &self,
        holder_sig: Vec<u8>,
        counterparty_sig: Vec<u8>,
        preimage: Option<&[u8; 32]>,
    ) -> Result<Transaction, ChannelError> {
        let witness = match (&self.htlc_script, preimage) {
            (HtlcScript::Offered(s), None) => s.timeout_witness(holder_sig, counterparty_sig),
            (HtlcScript::Received(s), Some(p)) => {
                if Htlc::payment_hash_of(p) != self.htlc.payment_hash {
                    return Err(ChannelError::WrongPreimage);
                }
                s.success_witness(holder_sig, counterparty_sig, p)
            }
            _ => return Err(ChannelError::WrongPreimage),
        };
        let mut tx = self.tx.clone();
        tx.inputs.first_mut().ok_or(ChannelError::NoInputs)?.witness = witness;
        Ok(tx)
    }
}
