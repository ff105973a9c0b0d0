//! The cooperative close: one transaction spending the funding output to the two parties'
//! chosen scripts, with no delays and no revocation.
//!
//! Layout: version 2; one input spending the funding output with sequence `0xFFFFFFFD`; lock
//! time 0; one output per party of its balance floored to resonance (the funder's minus the
//! negotiated fee), left out when below the larger of the two dust limits; outputs ordered by
//! value then scriptPubKey bytes. Only 32-byte key or script-hash destinations are accepted, as
//! the mempool relays nothing else.

use rnet_crypto::{PublicKey, SigningKey};
use rnet_primitives::{Amount, BlockHash, Transaction, TxIn, TxOut, Witness};
use rnet_script::ScriptTemplate;

use super::commitment::{ChannelParameters, MSAT_PER_RESONANCE, Side};
use super::error::ChannelError;
use super::fees::{FeeRate, closing_size};
use super::scripts::FundingScript;
use super::sign::{sign_input, verify_input_signature};
use super::sweep::check_destination;

/// The input sequence of a closing transaction (BOLT 3's).
pub const CLOSING_SEQUENCE: u32 = 0xFFFF_FFFD;

/// A cooperative close (unsigned) and what is needed to sign it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosingTransaction {
    /// The transaction.
    pub tx: Transaction,
    /// The funding 2-of-2 it spends.
    pub funding: FundingScript,
    /// The funding output.
    pub funding_output: TxOut,
    /// The fee it pays: the funding amount minus its outputs (the negotiated fee plus
    /// sub-resonance remainders and outputs omitted as dust).
    pub fee: Amount,
}

/// The fee of a close at `feerate` with both outputs present.
pub fn closing_fee(feerate: FeeRate, local_script: &[u8], remote_script: &[u8]) -> Amount {
    feerate.fee_for(closing_size(&[local_script.len(), remote_script.len()]))
}

/// Builds the close paying the local balance to `local_script` and the remote balance to
/// `remote_script`; the funder pays `fee`. The balances (msat) must add up to the channel (no
/// HTLC may be pending at a close).
pub fn build_closing(
    params: &ChannelParameters,
    local_msat: u64,
    remote_msat: u64,
    local_script: &[u8],
    remote_script: &[u8],
    fee: Amount,
) -> Result<ClosingTransaction, ChannelError> {
    check_destination(local_script)?;
    check_destination(remote_script)?;
    let expected = u128::from(params.funding_amount().0) * u128::from(MSAT_PER_RESONANCE);
    let actual = u128::from(local_msat) + u128::from(remote_msat);
    if actual != expected {
        return Err(ChannelError::ValueNotConserved {
            expected_msat: expected,
            actual_msat: actual,
        });
    }
    let fee_msat = u128::from(fee.0) * u128::from(MSAT_PER_RESONANCE);
    let (mut local, mut remote) = (local_msat, remote_msat);
    let funder = if params.funder() == Side::Local { &mut local } else { &mut remote };
    if u128::from(*funder) < fee_msat {
        return Err(ChannelError::FunderCannotAffordFee { balance_msat: *funder, fee });
    }
    // Below the balance, so it fits.
    *funder -= fee_msat as u64;
    let dust = params.party(Side::Local).dust_limit.max(params.party(Side::Remote).dust_limit);
    let mut outputs: Vec<TxOut> = [(local, local_script), (remote, remote_script)]
        .into_iter()
        .map(|(msat, script)| TxOut {
            value: Amount(msat / MSAT_PER_RESONANCE),
            script_pubkey: script.to_vec(),
        })
        .filter(|o| o.value >= dust)
        .collect();
    if outputs.is_empty() {
        return Err(ChannelError::BelowDust {
            value: Amount(local.max(remote) / MSAT_PER_RESONANCE),
            dust_limit: dust,
        });
    }
    outputs.sort_by(|a, b| (a.value, &a.script_pubkey).cmp(&(b.value, &b.script_pubkey)));
    let out_total = outputs
        .iter()
        .try_fold(Amount::ZERO, |acc, o| acc.checked_add(o.value))
        .ok_or(ChannelError::AmountOverflow)?;
    let total_fee =
        params.funding_amount().checked_sub(out_total).ok_or(ChannelError::AmountOverflow)?;
    let tx = Transaction {
        version: 2,
        inputs: vec![TxIn {
            previous_output: params.funding_outpoint(),
            script_sig: Vec::new(),
            sequence: CLOSING_SEQUENCE,
            witness: Witness::new(),
        }],
        outputs,
        lock_time: 0,
    };
    Ok(ClosingTransaction {
        tx,
        funding: *params.funding_script(),
        funding_output: params.funding_output(),
        fee: total_fee,
    })
}

impl ClosingTransaction {
    /// The outputs its input spends.
    pub fn spent_outputs(&self) -> Vec<TxOut> {
        vec![self.funding_output.clone()]
    }

    /// Signs it with a funding key (either party's).
    pub fn sign(
        &self,
        funding_key: &SigningKey,
        genesis: &BlockHash,
    ) -> Result<Vec<u8>, ChannelError> {
        if !self.funding.keys().contains(&funding_key.public_key()) {
            return Err(ChannelError::KeyMismatch);
        }
        sign_input(
            genesis,
            &self.tx,
            &self.spent_outputs(),
            0,
            &self.funding.witness_script(),
            funding_key,
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
            &self.funding.witness_script(),
            key,
            sig,
        )
    }

    /// The broadcastable transaction with both signatures, each given with its key.
    pub fn finalize(
        &self,
        a: (&PublicKey, Vec<u8>),
        b: (&PublicKey, Vec<u8>),
    ) -> Result<Transaction, ChannelError> {
        let mut tx = self.tx.clone();
        tx.inputs.first_mut().ok_or(ChannelError::NoInputs)?.witness =
            self.funding.witness(a, b)?;
        Ok(tx)
    }
}
