//! The client side: signs the penalty of each revoked commitment of the counterparty, seals it
//! into an appointment, and tracks which towers hold it (`docs/lightning.md` §6.5).

use std::collections::BTreeMap;

use rnet_crypto::SigningKey;
use rnet_primitives::{BlockHash, OutPoint, Transaction};

use super::blob::{Appointment, BlobPlaintext, Hint, MAX_BLOB_TRANSACTIONS, hint_of};
use super::error::WatchtowerError;
use super::tower::SessionId;
use crate::channel::CommitmentTransaction;
use crate::channel::fees::{FeeRate, MAX_STANDARD_TX_SIZE};
use crate::channel::sweep::{
    SweepInput, build_sweep, check_destination, penalty_inputs, sweep_size,
};

/// The fully signed penalty of a revoked commitment of the counterparty: every revocable output
/// (`to_local` and every HTLC output) through its revocation 2-of-2, to `destination` at
/// `feerate`, for the chain with genesis id `genesis`. `to_remote` is left out: it is the
/// client's own plain key output, spendable at any time, so a tower need not race for it.
///
/// One transaction if it fits [`MAX_STANDARD_TX_SIZE`]; otherwise the inputs, largest value
/// first, are split greedily into transactions that each fit (each pays its own fee and must
/// stay above the dust limit). Fails with [`WatchtowerError::NothingToPunish`] if the commitment
/// has no revocable output, and with the channel layer's error if the secret or key is not the
/// commitment's or an output would be dust at this fee rate.
pub fn justice_transactions(
    revoked: &CommitmentTransaction,
    per_commitment_secret: &[u8; 32],
    revocation_key: &SigningKey,
    destination: &[u8],
    feerate: FeeRate,
    genesis: &BlockHash,
) -> Result<Vec<Transaction>, WatchtowerError> {
    let mut inputs = penalty_inputs(revoked, per_commitment_secret, revocation_key, None)?;
    if inputs.is_empty() {
        return Err(WatchtowerError::NothingToPunish);
    }
    if sweep_size(&inputs, destination)? <= MAX_STANDARD_TX_SIZE {
        return Ok(vec![build_sweep(&inputs, destination, feerate, genesis)?]);
    }
    inputs.sort_by_key(|i| std::cmp::Reverse(i.spent.value));
    let transactions = split_inputs(inputs, destination)?
        .iter()
        .map(|chunk| build_sweep(chunk, destination, feerate, genesis))
        .collect::<Result<Vec<_>, _>>()?;
    if transactions.len() > MAX_BLOB_TRANSACTIONS {
        return Err(WatchtowerError::TransactionCount(transactions.len()));
    }
    Ok(transactions)
}

/// Splits `inputs` (in order) into groups whose sweeps fit the standard size. Sizes add up per
/// input, so each input's share is measured once: `fixed = 2·size([a]) − size([a, a])` is the
/// part every sweep has, and `size([i]) − fixed` is input `i`'s. Two bytes are kept free for
/// the input count's CompactSize growing past 252; [`build_sweep`] checks the real size.
fn split_inputs(
    inputs: Vec<SweepInput>,
    destination: &[u8],
) -> Result<Vec<Vec<SweepInput>>, WatchtowerError> {
    let Some(first) = inputs.first() else { return Ok(Vec::new()) };
    let single = sweep_size(std::slice::from_ref(first), destination)?;
    let double = sweep_size(&[first.clone(), first.clone()], destination)?;
    let fixed = (2 * single).saturating_sub(double);
    let limit = MAX_STANDARD_TX_SIZE - 2;
    let mut chunks: Vec<Vec<SweepInput>> = Vec::new();
    let mut current: Vec<SweepInput> = Vec::new();
    let mut size = fixed;
    for input in inputs {
        let share = sweep_size(std::slice::from_ref(&input), destination)?.saturating_sub(fixed);
        if !current.is_empty() && size + share > limit {
            chunks.push(std::mem::take(&mut current));
            size = fixed;
        }
        size += share;
        current.push(input);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
}

/// One appointment the client made, and the towers that accepted it.
#[derive(Debug, Clone)]
struct Tracked {
    /// The funding outpoint of its channel.
    channel: OutPoint,
    appointment: Appointment,
    /// Tower → height at which that tower drops it.
    accepted: BTreeMap<SessionId, u32>,
}

/// A channel owner's watchtower client: makes one appointment per revoked commitment of the
/// counterparty (never two: each blob key must encrypt exactly one plaintext, so the same bytes
/// go to every tower), and tracks which towers accepted it until when.
///
/// Towers are named by a [`SessionId`] (the session the client holds at that tower).
#[derive(Debug, Clone)]
pub struct TowerClient {
    genesis: BlockHash,
    sweep_script: Vec<u8>,
    feerate: FeeRate,
    appointments: BTreeMap<Hint, Tracked>,
}

impl TowerClient {
    /// A client sweeping penalties to `sweep_script` (the wallet's recovery-policy scriptPubKey,
    /// a 32-byte key or script-hash output) at `feerate`, on the chain with genesis id
    /// `genesis`.
    pub fn new(
        genesis: BlockHash,
        sweep_script: Vec<u8>,
        feerate: FeeRate,
    ) -> Result<Self, WatchtowerError> {
        check_destination(&sweep_script)?;
        Ok(Self { genesis, sweep_script, feerate, appointments: BTreeMap::new() })
    }

    /// The fee rate of penalties built from now on.
    pub fn feerate(&self) -> FeeRate {
        self.feerate
    }

    /// Sets the fee rate of penalties built from now on (those already built keep theirs).
    pub fn set_feerate(&mut self, feerate: FeeRate) {
        self.feerate = feerate;
    }

    /// The address penalties pay to.
    pub fn sweep_script(&self) -> &[u8] {
        &self.sweep_script
    }

    /// The appointment for the counterparty's commitment `revoked`, just revoked by revealing
    /// `per_commitment_secret`; `revocation_key` is the client's. Signs the penalty
    /// ([`justice_transactions`]) and seals it under the commitment's txid. If an appointment
    /// for this commitment was already made, returns that one unchanged rather than encrypting
    /// a second plaintext under the same key.
    pub fn build_appointment(
        &mut self,
        revoked: &CommitmentTransaction,
        per_commitment_secret: &[u8; 32],
        revocation_key: &SigningKey,
    ) -> Result<Appointment, WatchtowerError> {
        let txid = revoked.txid();
        let hint = hint_of(&txid);
        if let Some(tracked) = self.appointments.get(&hint) {
            return Ok(tracked.appointment.clone());
        }
        let transactions = justice_transactions(
            revoked,
            per_commitment_secret,
            revocation_key,
            &self.sweep_script,
            self.feerate,
            &self.genesis,
        )?;
        let appointment = Appointment::new(&BlobPlaintext { transactions }, &txid)?;
        let channel = revoked.tx.inputs.first().map_or(OutPoint::NULL, |i| i.previous_output);
        self.appointments.insert(
            hint,
            Tracked { channel, appointment: appointment.clone(), accepted: BTreeMap::new() },
        );
        Ok(appointment)
    }

    /// Records that `tower` accepted the appointment `hint` until `expires_at`.
    pub fn accepted(
        &mut self,
        tower: SessionId,
        hint: &Hint,
        expires_at: u32,
    ) -> Result<(), WatchtowerError> {
        let tracked = self.appointments.get_mut(hint).ok_or(WatchtowerError::UnknownAppointment)?;
        tracked.accepted.insert(tower, expires_at);
        Ok(())
    }

    /// Appointments `tower` has not accepted yet, or that it drops within `margin` blocks of
    /// `height`: what to send (again) to it.
    pub fn to_send(&self, tower: &SessionId, height: u32, margin: u32) -> Vec<&Appointment> {
        self.appointments
            .values()
            .filter(|t| t.accepted.get(tower).is_none_or(|&e| e <= height.saturating_add(margin)))
            .map(|t| &t.appointment)
            .collect()
    }

    /// Forgets every appointment of the channel funded by `funding_outpoint` (it closed and its
    /// outputs are settled) and returns their hints, for the towers to delete.
    pub fn channel_closed(&mut self, funding_outpoint: &OutPoint) -> Vec<Hint> {
        let hints: Vec<Hint> = self
            .appointments
            .iter()
            .filter(|(_, t)| t.channel == *funding_outpoint)
            .map(|(h, _)| *h)
            .collect();
        for hint in &hints {
            self.appointments.remove(hint);
        }
        hints
    }

    /// The number of appointments tracked.
    pub fn len(&self) -> usize {
        self.appointments.len()
    }

    /// Whether no appointment is tracked.
    pub fn is_empty(&self) -> bool {
        self.appointments.is_empty()
    }
}
