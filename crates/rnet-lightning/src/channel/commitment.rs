//! Channel parameters, the state of one commitment (`CommitmentSpec`) and the commitment
//! transaction built from it for either party, with BOLT 3's fee, trimming, dust and ordering
//! rules and the reserve rule of BOLT 2.
//!
//! Amounts in a state are in milli-resonance (msat, 1 resonance = 1000 msat). On chain every
//! output is floored to whole resonance; everything that is not an output (the base fee, the
//! sub-resonance remainders, trimmed HTLCs and balances below the dust limit) is the
//! transaction's fee, and [`CommitmentFee`] accounts for every msat of it.

use std::collections::HashSet;

use rnet_crypto::{PublicKey, SigningKey};
use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
use rnet_script::ScriptTemplate;

use super::error::ChannelError;
use super::fees::{FeeRate, MIN_DUST_LIMIT, commitment_fee, htlc_success_fee, htlc_timeout_fee};
use super::keys::{ChannelPublicKeys, CommitmentKeys};
use super::number;
use super::scripts::{
    FundingScript, HtlcKeys, HtlcScript, OfferedHtlcScript, ReceivedHtlcScript, RevocableScript,
    check_cltv_expiry, to_remote_output,
};
use super::shachain::MAX_INDEX;
use super::sign::{sign_input, verify_input_signature};

/// The most HTLCs one party may have offered at a time (BOLT 2's `max_accepted_htlcs` bound).
pub const MAX_HTLCS_PER_DIRECTION: usize = 483;

/// Msat per resonance.
pub const MSAT_PER_RESONANCE: u64 = 1000;

/// One of the two parties, from the local node's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// This node.
    Local,
    /// The counterparty.
    Remote,
}

impl Side {
    /// The other party.
    pub fn other(self) -> Self {
        match self {
            Self::Local => Self::Remote,
            Self::Remote => Self::Local,
        }
    }
}

/// Who offered an HTLC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HtlcDirection {
    /// Offered by the party the view belongs to (it pays if the preimage is revealed).
    Offered,
    /// Received by the party the view belongs to (it is paid on the preimage).
    Received,
}

impl HtlcDirection {
    /// The same HTLC seen from the other party.
    pub fn flip(self) -> Self {
        match self {
            Self::Offered => Self::Received,
            Self::Received => Self::Offered,
        }
    }
}

/// A pending HTLC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HtlcSpec {
    /// The HTLC's id (unique per direction).
    pub id: u64,
    /// Who offered it (relative to the view it appears in).
    pub direction: HtlcDirection,
    /// Its value in msat.
    pub amount_msat: u64,
    /// Keccak-256d of the 32-byte payment preimage.
    pub payment_hash: [u8; 32],
    /// The block height at which it times out.
    pub cltv_expiry: u32,
}

impl HtlcSpec {
    /// The HTLC seen from the other party.
    pub fn flipped(&self) -> Self {
        Self { direction: self.direction.flip(), ..*self }
    }
}

/// The content of one commitment, seen from the **local** node: `to_local_msat` is this node's
/// balance and an `Offered` HTLC is one this node offered, whichever party's commitment
/// transaction is built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentSpec {
    /// The number of the commitment being built (that party's counter; < 2^48).
    pub commitment_number: u64,
    /// This node's balance, msat.
    pub to_local_msat: u64,
    /// The counterparty's balance, msat.
    pub to_remote_msat: u64,
    /// The fee rate of the commitment and its HTLC transactions.
    pub feerate: FeeRate,
    /// The pending HTLCs.
    pub htlcs: Vec<HtlcSpec>,
}

impl CommitmentSpec {
    /// Checks the commitment number, each HTLC (non-zero amount, expiry a block height, ids
    /// unique per direction, at most [`MAX_HTLCS_PER_DIRECTION`] each way) and that balances
    /// plus HTLCs are exactly the funding amount.
    pub fn check(&self, funding_amount: Amount) -> Result<(), ChannelError> {
        if self.commitment_number > MAX_INDEX {
            return Err(ChannelError::CommitmentNumberTooLarge(self.commitment_number));
        }
        let mut ids = HashSet::new();
        let mut offered = 0usize;
        let mut total = u128::from(self.to_local_msat) + u128::from(self.to_remote_msat);
        for h in &self.htlcs {
            if h.amount_msat == 0 {
                return Err(ChannelError::ZeroHtlcAmount { id: h.id });
            }
            check_cltv_expiry(h.cltv_expiry)?;
            if !ids.insert((h.direction, h.id)) {
                return Err(ChannelError::DuplicateHtlc { id: h.id, direction: h.direction });
            }
            offered += usize::from(h.direction == HtlcDirection::Offered);
            total += u128::from(h.amount_msat);
        }
        if offered > MAX_HTLCS_PER_DIRECTION || self.htlcs.len() - offered > MAX_HTLCS_PER_DIRECTION
        {
            return Err(ChannelError::TooManyHtlcs);
        }
        let expected = u128::from(funding_amount.0) * u128::from(MSAT_PER_RESONANCE);
        if total != expected {
            return Err(ChannelError::ValueNotConserved {
                expected_msat: expected,
                actual_msat: total,
            });
        }
        Ok(())
    }

    /// The same state as the counterparty's node sees it (balances swapped, directions
    /// flipped): `build_commitment(ours, side, spec, p)` and
    /// `build_commitment(theirs, side.other(), &spec.mirrored(), p)` build the same transaction.
    pub fn mirrored(&self) -> Self {
        Self {
            commitment_number: self.commitment_number,
            to_local_msat: self.to_remote_msat,
            to_remote_msat: self.to_local_msat,
            feerate: self.feerate,
            htlcs: self.htlcs.iter().map(HtlcSpec::flipped).collect(),
        }
    }

    /// A party's balance in msat.
    pub fn balance_msat(&self, side: Side) -> u64 {
        match side {
            Side::Local => self.to_local_msat,
            Side::Remote => self.to_remote_msat,
        }
    }

    /// The HTLCs seen from the holder of `side`'s commitment.
    fn htlcs_for(&self, side: Side) -> impl Iterator<Item = HtlcSpec> + '_ {
        self.htlcs.iter().map(move |h| if side == Side::Local { *h } else { h.flipped() })
    }
}

/// One party's settings for the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartyConfig {
    /// The party's public keys.
    pub keys: ChannelPublicKeys,
    /// Outputs below this are left out of the party's own commitment (≥ [`MIN_DUST_LIMIT`]).
    pub dust_limit: Amount,
    /// The relative delay (blocks) on the party's own delayed outputs, chosen by the other
    /// party: the time it has to punish a revoked commitment.
    pub to_self_delay: u16,
    /// The balance the party must keep (chosen by the other party), so it always has something
    /// to lose by broadcasting a revoked state.
    pub channel_reserve: Amount,
}

/// Everything fixed when the channel opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelParameters {
    funding_outpoint: OutPoint,
    funding_amount: Amount,
    local: PartyConfig,
    remote: PartyConfig,
    funder: Side,
    funding: FundingScript,
}

impl ChannelParameters {
    /// Checks and fixes the parameters: a valid non-zero funding amount, non-weak keys,
    /// distinct funding keys, dust limits at least [`MIN_DUST_LIMIT`], non-zero delays, reserves
    /// no larger than the channel.
    pub fn new(
        funding_outpoint: OutPoint,
        funding_amount: Amount,
        local: PartyConfig,
        remote: PartyConfig,
        funder: Side,
    ) -> Result<Self, ChannelError> {
        if funding_amount.0 == 0 || !funding_amount.is_valid_money() {
            return Err(ChannelError::InvalidFundingAmount(funding_amount));
        }
        for p in [&local, &remote] {
            p.keys.check()?;
            if p.dust_limit < MIN_DUST_LIMIT {
                return Err(ChannelError::DustLimitTooLow {
                    dust_limit: p.dust_limit,
                    minimum: MIN_DUST_LIMIT,
                });
            }
            if p.to_self_delay == 0 {
                return Err(ChannelError::ZeroDelay);
            }
            if p.channel_reserve > funding_amount {
                return Err(ChannelError::ReserveTooLarge(p.channel_reserve));
            }
        }
        let funding = FundingScript::new(local.keys.funding, remote.keys.funding)?;
        Ok(Self { funding_outpoint, funding_amount, local, remote, funder, funding })
    }

    /// The funding outpoint.
    pub fn funding_outpoint(&self) -> OutPoint {
        self.funding_outpoint
    }

    /// The channel's value.
    pub fn funding_amount(&self) -> Amount {
        self.funding_amount
    }

    /// The party that funded the channel (and pays commitment and closing fees).
    pub fn funder(&self) -> Side {
        self.funder
    }

    /// A party's settings.
    pub fn party(&self, side: Side) -> &PartyConfig {
        match side {
            Side::Local => &self.local,
            Side::Remote => &self.remote,
        }
    }

    /// The funding 2-of-2.
    pub fn funding_script(&self) -> &FundingScript {
        &self.funding
    }

    /// The funding output (what the funding transaction must contain at the funding outpoint).
    pub fn funding_output(&self) -> TxOut {
        self.funding.output(self.funding_amount)
    }

    /// The factor that obscures commitment numbers ([`number::obscuring_factor`]).
    pub fn obscuring_factor(&self) -> u64 {
        let funder = self.party(self.funder);
        let fundee = self.party(self.funder.other());
        number::obscuring_factor(&funder.keys.payment, &fundee.keys.payment)
    }
}

/// The funding output for two funding keys: `OP_0 Keccak-256d(2 <k1> <k2> 2 CHECKMULTISIG)`.
pub fn funding_output(a: PublicKey, b: PublicKey, value: Amount) -> Result<TxOut, ChannelError> {
    Ok(FundingScript::new(a, b)?.output(value))
}

/// Whether an HTLC (seen from the holder) is trimmed from the holder's commitment: its value in
/// whole resonance minus the fee of the second-stage transaction that would spend it is below
/// the holder's dust limit.
pub fn is_trimmed(htlc: &HtlcSpec, dust_limit: Amount, feerate: FeeRate) -> bool {
    let fee = match htlc.direction {
        HtlcDirection::Offered => htlc_timeout_fee(feerate),
        HtlcDirection::Received => htlc_success_fee(feerate),
    };
    u128::from(htlc.amount_msat / MSAT_PER_RESONANCE) < u128::from(dust_limit.0) + u128::from(fee.0)
}

/// The base fee of `side`'s commitment for `spec` (paid by the funder).
pub fn commitment_base_fee(
    params: &ChannelParameters,
    side: Side,
    spec: &CommitmentSpec,
) -> Amount {
    let dust = params.party(side).dust_limit;
    let untrimmed = spec.htlcs_for(side).filter(|h| !is_trimmed(h, dust, spec.feerate)).count();
    commitment_fee(spec.feerate, untrimmed)
}

/// Where a commitment transaction's fee comes from, in msat. Always
/// `total × 1000 = base_fee_paid_msat + trimmed_htlc_msat + dust_balance_msat + rounding_msat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitmentFee {
    /// The fee the fee rate asks for ([`commitment_fee`]).
    pub base_fee: Amount,
    /// The part of it the funder's balance paid (all of it unless the balance was smaller).
    pub base_fee_paid_msat: u64,
    /// Trimmed HTLCs.
    pub trimmed_htlc_msat: u64,
    /// Balances left out because they were below the dust limit (after the base fee).
    pub dust_balance_msat: u64,
    /// The sub-resonance remainders of the outputs.
    pub rounding_msat: u64,
    /// The transaction's fee: the funding amount minus its outputs.
    pub total: Amount,
}

/// What a commitment output is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitmentOutputKind {
    /// The holder's balance, delayed and revocable.
    ToLocal(Box<RevocableScript>),
    /// The counterparty's balance, to its payment key.
    ToRemote(PublicKey),
    /// An HTLC (direction seen from the holder).
    Htlc {
        /// The HTLC.
        htlc: HtlcSpec,
        /// Its script.
        script: Box<HtlcScript>,
    },
}

/// One output of a commitment transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentOutput {
    /// Its index in the transaction.
    pub index: u32,
    /// What it is.
    pub kind: CommitmentOutputKind,
}

/// A commitment transaction (unsigned) and everything needed to sign, check and spend it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentTransaction {
    /// The transaction; its witness is empty until [`CommitmentTransaction::finalize`].
    pub tx: Transaction,
    /// Whose commitment it is (the party that can broadcast it).
    pub side: Side,
    /// Its commitment number.
    pub commitment_number: u64,
    /// The keys it uses.
    pub keys: CommitmentKeys,
    /// The delay on the holder's outputs.
    pub to_self_delay: u16,
    /// Its fee rate (also that of its HTLC transactions).
    pub feerate: FeeRate,
    /// The funding 2-of-2 it spends.
    pub funding: FundingScript,
    /// The funding output it spends.
    pub funding_output: TxOut,
    /// Its outputs, in transaction order.
    pub outputs: Vec<CommitmentOutput>,
    /// HTLCs that have no output (their value is fee), seen from the holder.
    pub trimmed: Vec<HtlcSpec>,
    /// Its fee.
    pub fee: CommitmentFee,
}

/// Builds `side`'s commitment transaction for `spec` (a local-view state), with `side`'s
/// per-commitment point of that state.
///
/// Steps (BOLT 3 "Commitment Transaction Construction"): trim HTLCs whose value minus their
/// second-stage fee is below the holder's dust limit; take the base fee for the remaining HTLC
/// count from the funder's balance (all of it if it is smaller); add the untrimmed HTLC outputs
/// and each balance of at least the dust limit (floored to resonance); order outputs by value,
/// then scriptPubKey bytes, then HTLC `cltv_expiry`, then HTLC id; put the obscured commitment
/// number in the lock time and sequence.
pub fn build_commitment(
    params: &ChannelParameters,
    side: Side,
    spec: &CommitmentSpec,
    per_commitment_point: &PublicKey,
) -> Result<CommitmentTransaction, ChannelError> {
    spec.check(params.funding_amount)?;
    let holder = params.party(side);
    let counterparty = params.party(side.other());
    let keys = CommitmentKeys::new(&holder.keys, &counterparty.keys, *per_commitment_point)?;
    let dust = holder.dust_limit;

    let (untrimmed, trimmed): (Vec<HtlcSpec>, Vec<HtlcSpec>) =
        spec.htlcs_for(side).partition(|h| !is_trimmed(h, dust, spec.feerate));
    let base_fee = commitment_fee(spec.feerate, untrimmed.len());

    let mut to_holder = spec.balance_msat(side);
    let mut to_counterparty = spec.balance_msat(side.other());
    let funder_balance = if params.funder == side { &mut to_holder } else { &mut to_counterparty };
    let base_fee_msat = u128::from(base_fee.0) * u128::from(MSAT_PER_RESONANCE);
    // At most the balance, so it fits a u64.
    let base_fee_paid_msat = base_fee_msat.min(u128::from(*funder_balance)) as u64;
    *funder_balance -= base_fee_paid_msat;

    let mut fee = CommitmentFee {
        base_fee,
        base_fee_paid_msat,
        trimmed_htlc_msat: trimmed.iter().map(|h| h.amount_msat).sum(),
        dust_balance_msat: 0,
        rounding_msat: 0,
        total: Amount::ZERO,
    };

    // (output, kind, cltv, id) for sorting.
    let mut outs: Vec<(TxOut, CommitmentOutputKind, u32, u64)> = Vec::new();
    for h in untrimmed {
        let value = Amount(h.amount_msat / MSAT_PER_RESONANCE);
        fee.rounding_msat += h.amount_msat % MSAT_PER_RESONANCE;
        let hk = HtlcKeys {
            revocation: keys.revocation,
            per_commitment_point: keys.per_commitment_point,
            holder_htlc: keys.holder_htlc,
            counterparty_htlc: keys.counterparty_htlc,
            payment_hash: h.payment_hash,
            cltv_expiry: h.cltv_expiry,
        };
        let script = match h.direction {
            HtlcDirection::Offered => HtlcScript::Offered(OfferedHtlcScript::new(hk)?),
            HtlcDirection::Received => HtlcScript::Received(ReceivedHtlcScript::new(hk)?),
        };
        outs.push((
            script.output(value),
            CommitmentOutputKind::Htlc { htlc: h, script: Box::new(script) },
            h.cltv_expiry,
            h.id,
        ));
    }
    let to_local_value = to_holder / MSAT_PER_RESONANCE;
    if to_local_value >= dust.0 {
        fee.rounding_msat += to_holder % MSAT_PER_RESONANCE;
        let script = RevocableScript::new(
            keys.revocation,
            keys.per_commitment_point,
            holder.to_self_delay,
            keys.holder_delayed,
        )?;
        outs.push((
            script.output(Amount(to_local_value)),
            CommitmentOutputKind::ToLocal(Box::new(script)),
            0,
            0,
        ));
    } else {
        fee.dust_balance_msat += to_holder;
    }
    let to_remote_value = to_counterparty / MSAT_PER_RESONANCE;
    if to_remote_value >= dust.0 {
        fee.rounding_msat += to_counterparty % MSAT_PER_RESONANCE;
        outs.push((
            to_remote_output(&keys.counterparty_payment, Amount(to_remote_value)),
            CommitmentOutputKind::ToRemote(keys.counterparty_payment),
            0,
            0,
        ));
    } else {
        fee.dust_balance_msat += to_counterparty;
    }
    outs.sort_by(|a, b| {
        (a.0.value, &a.0.script_pubkey, a.2, a.3).cmp(&(b.0.value, &b.0.script_pubkey, b.2, b.3))
    });

    let (lock_time, sequence) = number::encode(spec.commitment_number, params.obscuring_factor())?;
    let mut outputs = Vec::with_capacity(outs.len());
    let mut described = Vec::with_capacity(outs.len());
    for (index, (txout, kind, _, _)) in outs.into_iter().enumerate() {
        outputs.push(txout);
        described.push(CommitmentOutput { index: index as u32, kind });
    }
    let out_total = outputs
        .iter()
        .try_fold(Amount::ZERO, |acc, o| acc.checked_add(o.value))
        .ok_or(ChannelError::AmountOverflow)?;
    fee.total = params.funding_amount.checked_sub(out_total).ok_or(ChannelError::AmountOverflow)?;

    let tx = Transaction {
        version: 2,
        inputs: vec![TxIn {
            previous_output: params.funding_outpoint,
            script_sig: Vec::new(),
            sequence,
            witness: Witness::new(),
        }],
        outputs,
        lock_time,
    };
    Ok(CommitmentTransaction {
        tx,
        side,
        commitment_number: spec.commitment_number,
        keys,
        to_self_delay: holder.to_self_delay,
        feerate: spec.feerate,
        funding: params.funding,
        funding_output: params.funding_output(),
        outputs: described,
        trimmed,
        fee,
    })
}

impl CommitmentTransaction {
    /// Its txid (witnesses are not part of it, so it is final before signing).
    pub fn txid(&self) -> Txid {
        self.tx.txid()
    }

    /// The outpoint of output `index`.
    pub fn outpoint(&self, index: u32) -> OutPoint {
        OutPoint::new(self.txid(), index)
    }

    /// Output `index` ([`ChannelError::WrongOutput`] if there is none).
    pub fn output(&self, index: u32) -> Result<TxOut, ChannelError> {
        self.tx.outputs.get(index as usize).cloned().ok_or(ChannelError::WrongOutput(index))
    }

    /// The outputs its input spends (for signature hashes and script checks).
    pub fn spent_outputs(&self) -> Vec<TxOut> {
        vec![self.funding_output.clone()]
    }

    /// The `to_local` output, if present.
    pub fn to_local(&self) -> Option<(u32, &RevocableScript)> {
        self.outputs.iter().find_map(|o| match &o.kind {
            CommitmentOutputKind::ToLocal(s) => Some((o.index, &**s)),
            _ => None,
        })
    }

    /// The index of the `to_remote` output, if present.
    pub fn to_remote(&self) -> Option<u32> {
        self.outputs
            .iter()
            .find_map(|o| matches!(o.kind, CommitmentOutputKind::ToRemote(_)).then_some(o.index))
    }

    /// The HTLC outputs in transaction order (the order HTLC signatures are exchanged in).
    pub fn htlc_outputs(&self) -> impl Iterator<Item = (u32, &HtlcSpec, &HtlcScript)> {
        self.outputs.iter().filter_map(|o| match &o.kind {
            CommitmentOutputKind::Htlc { htlc, script } => Some((o.index, htlc, &**script)),
            _ => None,
        })
    }

    /// Signs the funding input with `funding_key` (either party's funding key).
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

    /// Checks a signature of the funding input by `key`.
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

    /// Checks the counterparty's signature on this (the holder's) commitment, as received in
    /// `commitment_signed`.
    pub fn verify_counterparty_signature(
        &self,
        sig: &[u8],
        genesis: &BlockHash,
    ) -> Result<(), ChannelError> {
        self.verify_signature(&self.keys.counterparty_funding, sig, genesis)
    }

    /// The broadcastable transaction with both funding signatures in the witness.
    pub fn finalize(
        &self,
        holder_sig: Vec<u8>,
        counterparty_sig: Vec<u8>,
    ) -> Result<Transaction, ChannelError> {
        let witness = self.funding.witness(
            (&self.keys.holder_funding, holder_sig),
            (&self.keys.counterparty_funding, counterparty_sig),
        )?;
        let mut tx = self.tx.clone();
        tx.inputs.first_mut().ok_or(ChannelError::NoInputs)?.witness = witness;
        Ok(tx)
    }
}

/// BOLT 2's reserve and fee rules for a state change from `before` to `after` (both local
/// views; `None` for the first state):
///
/// - the funder must be able to pay the larger of the two commitments' base fees
///   ([`ChannelError::FunderCannotAffordFee`]);
/// - a party whose balance (the funder's after that fee) is below its `channel_reserve` may
///   not have it lowered further ([`ChannelError::ReserveViolated`]): a party below its reserve
///   (the fundee right after opening) may only receive. For the first state the funder must
///   hold its reserve and the fundee is free.
pub fn check_reserves(
    params: &ChannelParameters,
    before: Option<&CommitmentSpec>,
    after: &CommitmentSpec,
) -> Result<(), ChannelError> {
    after.check(params.funding_amount)?;
    if let Some(b) = before {
        b.check(params.funding_amount)?;
    }
    let fee_of = |spec: &CommitmentSpec| {
        commitment_base_fee(params, Side::Local, spec).max(commitment_base_fee(
            params,
            Side::Remote,
            spec,
        ))
    };
    let fee_after = fee_of(after);
    for side in [Side::Local, Side::Remote] {
        let mut balance = after.balance_msat(side);
        let mut previous = match before {
            Some(b) => b.balance_msat(side),
            None if side == params.funder => u64::MAX,
            None => 0,
        };
        if side == params.funder {
            let fee_msat = u128::from(fee_after.0) * u128::from(MSAT_PER_RESONANCE);
            if u128::from(balance) < fee_msat {
                return Err(ChannelError::FunderCannotAffordFee {
                    balance_msat: balance,
                    fee: fee_after,
                });
            }
            // Below the balance, so it fits.
            balance -= fee_msat as u64;
            if let Some(b) = before {
                let fee_before = u128::from(fee_of(b).0) * u128::from(MSAT_PER_RESONANCE);
                previous = (u128::from(previous).saturating_sub(fee_before)) as u64;
            }
        }
        let reserve = params.party(side).channel_reserve;
        let reserve_msat = u128::from(reserve.0) * u128::from(MSAT_PER_RESONANCE);
        if u128::from(balance) < reserve_msat && balance < previous {
            return Err(ChannelError::ReserveViolated { side, balance_msat: balance, reserve });
        }
    }
    Ok(())
}
