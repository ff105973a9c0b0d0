//! Sweeps: one transaction collecting channel outputs into a single destination, each input
//! through one spending path: the penalty (justice) transaction of a revoked commitment, the
//! holder's delayed outputs after `to_self_delay`, the counterparty's claims of HTLC outputs
//! (preimage or timeout) and of `to_remote`.
//!
//! A sweep is version 2; its lock time is the largest `cltv_expiry` of its timeout inputs (0 if
//! none); delayed inputs have sequence `to_self_delay`, the others `0xFFFFFFFD` (not final, no
//! relative lock). Its fee is the fee rate times its exact size (signatures are always 64
//! bytes), taken from the single output.

use rnet_crypto::{PublicKey, SigningKey};
use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Witness};
use rnet_script::templates::Htlc;
use rnet_script::{OutputKind, PlainKey, ScriptTemplate, SighashCache, SighashType, classify};
use zeroize::Zeroizing;

use super::commitment::{CommitmentOutputKind, CommitmentTransaction};
use super::error::ChannelError;
use super::fees::{FeeRate, MAX_STANDARD_TX_SIZE, MIN_DUST_LIMIT};
use super::htlc_tx::HtlcTransaction;
use super::keys::{check_per_commitment_secret, per_commitment_key, per_commitment_point};
use super::scripts::{HtlcScript, OfferedHtlcScript, ReceivedHtlcScript, RevocableScript};

/// The sequence of sweep inputs without a relative lock.
pub const SWEEP_SEQUENCE: u32 = 0xFFFF_FFFD;

/// A script with a revocation branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocableOutput {
    /// `to_local` or a second-stage HTLC output.
    Delayed(Box<RevocableScript>),
    /// An HTLC output.
    Htlc(Box<HtlcScript>),
}

impl ScriptTemplate for RevocableOutput {
    fn witness_script(&self) -> Vec<u8> {
        match self {
            Self::Delayed(s) => s.witness_script(),
            Self::Htlc(s) => s.witness_script(),
        }
    }
}

impl RevocableOutput {
    fn revocation_witness(&self, sig_revocation: Vec<u8>, sig_point: Vec<u8>) -> Witness {
        match self {
            Self::Delayed(s) => s.revocation_witness(sig_revocation, sig_point),
            Self::Htlc(s) => s.revocation_witness(sig_revocation, sig_point),
        }
    }

    fn revocation_keys(&self) -> (PublicKey, PublicKey) {
        match self {
            Self::Delayed(s) => (s.revocation, s.per_commitment_point),
            Self::Htlc(s) => (s.keys().revocation, s.keys().per_commitment_point),
        }
    }
}

/// How a sweep input is spent, with the keys that sign it.
#[derive(Debug, Clone)]
pub enum SweepPath {
    /// The revocation 2-of-2 of a revoked state's output.
    Revocation {
        /// The output's script.
        output: RevocableOutput,
        /// The counterparty's revocation key.
        revocation_key: SigningKey,
        /// The revealed per-commitment secret (its key signs the second slot).
        per_commitment_secret: Zeroizing<[u8; 32]>,
    },
    /// The holder's delayed path after `to_self_delay`.
    Delayed {
        /// The output's script.
        script: Box<RevocableScript>,
        /// The holder's delayed-payment key.
        delayed_key: SigningKey,
    },
    /// A plain key output (`to_remote`).
    Key {
        /// The payment key.
        key: SigningKey,
    },
    /// The counterparty's claim of an HTLC the holder offered, with the preimage.
    HtlcPreimage {
        /// The output's script.
        script: Box<OfferedHtlcScript>,
        /// The counterparty's HTLC key.
        htlc_key: SigningKey,
        /// The payment preimage.
        preimage: [u8; 32],
    },
    /// The counterparty's refund of an HTLC the holder received, after its expiry.
    HtlcTimeout {
        /// The output's script.
        script: Box<ReceivedHtlcScript>,
        /// The counterparty's HTLC key.
        htlc_key: SigningKey,
    },
}

/// One input of a sweep.
#[derive(Debug, Clone)]
pub struct SweepInput {
    /// The output spent.
    pub outpoint: OutPoint,
    /// Its value and script.
    pub spent: TxOut,
    /// How it is spent.
    pub path: SweepPath,
}

const PLACEHOLDER_SIG: [u8; 64] = [0; 64];

impl SweepInput {
    fn sequence(&self) -> u32 {
        match &self.path {
            SweepPath::Delayed { script, .. } => script.delayed_sequence(),
            _ => SWEEP_SEQUENCE,
        }
    }

    fn cltv(&self) -> u32 {
        match &self.path {
            SweepPath::HtlcTimeout { script, .. } => script.keys().cltv_expiry,
            _ => 0,
        }
    }

    /// Checks that the keys are the script's and the script is the spent output's.
    fn check(&self) -> Result<(), ChannelError> {
        let (script_pubkey, ok) = match &self.path {
            SweepPath::Revocation { output, revocation_key, per_commitment_secret } => {
                let (r, p) = output.revocation_keys();
                let ok = revocation_key.public_key() == r
                    && per_commitment_point(per_commitment_secret) == p;
                (output.script_pubkey(), ok)
            }
            SweepPath::Delayed { script, delayed_key } => {
                (script.script_pubkey(), delayed_key.public_key() == script.delayed)
            }
            SweepPath::Key { key } => (PlainKey::new(key.public_key()).script_pubkey(), true),
            SweepPath::HtlcPreimage { script, htlc_key, preimage } => {
                if Htlc::payment_hash_of(preimage) != script.keys().payment_hash {
                    return Err(ChannelError::WrongPreimage);
                }
                (script.script_pubkey(), htlc_key.public_key() == script.keys().counterparty_htlc)
            }
            SweepPath::HtlcTimeout { script, htlc_key } => {
                (script.script_pubkey(), htlc_key.public_key() == script.keys().counterparty_htlc)
            }
        };
        if !ok || script_pubkey != self.spent.script_pubkey {
            return Err(ChannelError::KeyMismatch);
        }
        Ok(())
    }

    /// The witness, with signatures made by `sign(key, script_code)`.
    fn witness(
        &self,
        mut sign: impl FnMut(&SigningKey, &[u8]) -> Result<Vec<u8>, ChannelError>,
    ) -> Result<Witness, ChannelError> {
        Ok(match &self.path {
            SweepPath::Revocation { output, revocation_key, per_commitment_secret } => {
                let code = output.witness_script();
                let point_key = per_commitment_key(per_commitment_secret);
                output.revocation_witness(sign(revocation_key, &code)?, sign(&point_key, &code)?)
            }
            SweepPath::Delayed { script, delayed_key } => {
                script.delayed_witness(sign(delayed_key, &script.witness_script())?)
            }
            SweepPath::Key { key } => {
                let p = PlainKey::new(key.public_key());
                p.witness(sign(key, &p.script_code())?)
            }
            SweepPath::HtlcPreimage { script, htlc_key, preimage } => {
                script.preimage_witness(sign(htlc_key, &script.witness_script())?, preimage)
            }
            SweepPath::HtlcTimeout { script, htlc_key } => {
                script.timeout_witness(sign(htlc_key, &script.witness_script())?)
            }
        })
    }
}

/// Checks that a destination is a 32-byte key or script-hash output (the only outputs the
/// mempool relays besides null data).
pub fn check_destination(script_pubkey: &[u8]) -> Result<(), ChannelError> {
    match classify(script_pubkey) {
        OutputKind::Key | OutputKind::ScriptHash => Ok(()),
        _ => Err(ChannelError::NonStandardDestination),
    }
}

/// The unsigned sweep of `inputs` to `destination` (output value 0), after checking the
/// inputs and destination.
fn unsigned_sweep(inputs: &[SweepInput], destination: &[u8]) -> Result<Transaction, ChannelError> {
    if inputs.is_empty() {
        return Err(ChannelError::NoInputs);
    }
    check_destination(destination)?;
    for input in inputs {
        input.check()?;
    }
    Ok(Transaction {
        version: 2,
        inputs: inputs
            .iter()
            .map(|i| TxIn {
                previous_output: i.outpoint,
                script_sig: Vec::new(),
                sequence: i.sequence(),
                witness: Witness::new(),
            })
            .collect(),
        outputs: vec![TxOut { value: Amount::ZERO, script_pubkey: destination.to_vec() }],
        lock_time: inputs.iter().map(SweepInput::cltv).max().unwrap_or(0),
    })
}

/// The exact size in bytes of the signed sweep of `inputs` to `destination` (its fee is
/// `feerate.fee_for(size)`): every signature is 64 bytes, so placeholders measure it.
pub fn sweep_size(inputs: &[SweepInput], destination: &[u8]) -> Result<usize, ChannelError> {
    let mut tx = unsigned_sweep(inputs, destination)?;
    for (txin, input) in tx.inputs.iter_mut().zip(inputs) {
        txin.witness = input.witness(|_, _| Ok(PLACEHOLDER_SIG.to_vec()))?;
    }
    Ok(tx.total_size())
}

/// Builds and signs a sweep of `inputs` to `destination` at `feerate`, for the chain whose
/// genesis block id is `genesis`. Fails if a key or script does not match its input, if the
/// output after the fee would be below [`MIN_DUST_LIMIT`], or if the transaction would exceed
/// [`MAX_STANDARD_TX_SIZE`] (sweep fewer inputs at a time).
pub fn build_sweep(
    inputs: &[SweepInput],
    destination: &[u8],
    feerate: FeeRate,
    genesis: &BlockHash,
) -> Result<Transaction, ChannelError> {
    let size = sweep_size(inputs, destination)?;
    if size > MAX_STANDARD_TX_SIZE {
        return Err(ChannelError::TooLarge { size, max: MAX_STANDARD_TX_SIZE });
    }
    let total = inputs
        .iter()
        .try_fold(Amount::ZERO, |acc, i| acc.checked_add(i.spent.value))
        .ok_or(ChannelError::AmountOverflow)?;
    let value = total.checked_sub(feerate.fee_for(size)).unwrap_or(Amount::ZERO);
    if value < MIN_DUST_LIMIT {
        return Err(ChannelError::BelowDust { value, dust_limit: MIN_DUST_LIMIT });
    }
    let mut tx = unsigned_sweep(inputs, destination)?;
    tx.outputs[0].value = value;
    let spent: Vec<TxOut> = inputs.iter().map(|i| i.spent.clone()).collect();
    let witnesses = {
        let cache = SighashCache::new(genesis, &tx, &spent)?;
        inputs
            .iter()
            .enumerate()
            .map(|(index, input)| {
                input.witness(|key, code| Ok(cache.sign(key, index, code, SighashType::All)?))
            })
            .collect::<Result<Vec<_>, ChannelError>>()?
    };
    for (txin, witness) in tx.inputs.iter_mut().zip(witnesses) {
        txin.witness = witness;
    }
    Ok(tx)
}

/// The inputs of the penalty transaction for a revoked commitment of the counterparty: every
/// `to_local` and HTLC output through its revocation branch, and `to_remote` (ours) with our
/// payment key when given. Checks that `per_commitment_secret` is the one of that state and
/// that `revocation_key` is the commitment's revocation key.
pub fn penalty_inputs(
    revoked: &CommitmentTransaction,
    per_commitment_secret: &[u8; 32],
    revocation_key: &SigningKey,
    payment_key: Option<&SigningKey>,
) -> Result<Vec<SweepInput>, ChannelError> {
    check_per_commitment_secret(per_commitment_secret, &revoked.keys.per_commitment_point)?;
    if revocation_key.public_key() != revoked.keys.revocation {
        return Err(ChannelError::KeyMismatch);
    }
    let mut inputs = Vec::with_capacity(revoked.outputs.len());
    for out in &revoked.outputs {
        let revocation = |output| SweepPath::Revocation {
            output,
            revocation_key: revocation_key.clone(),
            per_commitment_secret: Zeroizing::new(*per_commitment_secret),
        };
        let path = match &out.kind {
            CommitmentOutputKind::ToLocal(s) => revocation(RevocableOutput::Delayed(s.clone())),
            CommitmentOutputKind::Htlc { script, .. } => {
                revocation(RevocableOutput::Htlc(script.clone()))
            }
            CommitmentOutputKind::ToRemote(key) => match payment_key {
                Some(k) if k.public_key() == *key => SweepPath::Key { key: k.clone() },
                Some(_) => return Err(ChannelError::KeyMismatch),
                None => continue,
            },
        };
        inputs.push(SweepInput {
            outpoint: revoked.outpoint(out.index),
            spent: revoked.output(out.index)?,
            path,
        });
    }
    Ok(inputs)
}

/// The penalty input for the output of a second-stage HTLC transaction of a revoked commitment.
pub fn htlc_tx_penalty_input(
    htlc_tx: &HtlcTransaction,
    per_commitment_secret: &[u8; 32],
    revocation_key: &SigningKey,
) -> Result<SweepInput, ChannelError> {
    let script = htlc_tx.output_script;
    check_per_commitment_secret(per_commitment_secret, &script.per_commitment_point)?;
    Ok(SweepInput {
        outpoint: htlc_tx.outpoint(),
        spent: htlc_tx.output()?,
        path: SweepPath::Revocation {
            output: RevocableOutput::Delayed(Box::new(script)),
            revocation_key: revocation_key.clone(),
            per_commitment_secret: Zeroizing::new(*per_commitment_secret),
        },
    })
}

/// The holder's sweep of its own `to_local` output after `to_self_delay`.
pub fn to_local_input(
    commitment: &CommitmentTransaction,
    delayed_key: &SigningKey,
) -> Result<SweepInput, ChannelError> {
    let (index, script) = commitment.to_local().ok_or(ChannelError::NoInputs)?;
    Ok(SweepInput {
        outpoint: commitment.outpoint(index),
        spent: commitment.output(index)?,
        path: SweepPath::Delayed { script: Box::new(*script), delayed_key: delayed_key.clone() },
    })
}

/// The holder's sweep of the output of one of its confirmed HTLC transactions, after
/// `to_self_delay`.
pub fn htlc_tx_output_input(
    htlc_tx: &HtlcTransaction,
    delayed_key: &SigningKey,
) -> Result<SweepInput, ChannelError> {
    Ok(SweepInput {
        outpoint: htlc_tx.outpoint(),
        spent: htlc_tx.output()?,
        path: SweepPath::Delayed {
            script: Box::new(htlc_tx.output_script),
            delayed_key: delayed_key.clone(),
        },
    })
}

/// The counterparty's sweep of `to_remote` on the holder's commitment.
pub fn to_remote_input(
    commitment: &CommitmentTransaction,
    payment_key: &SigningKey,
) -> Result<SweepInput, ChannelError> {
    let index = commitment.to_remote().ok_or(ChannelError::NoInputs)?;
    Ok(SweepInput {
        outpoint: commitment.outpoint(index),
        spent: commitment.output(index)?,
        path: SweepPath::Key { key: payment_key.clone() },
    })
}

/// The counterparty's claim, with the preimage, of the HTLC the holder offered at `index`.
pub fn htlc_preimage_input(
    commitment: &CommitmentTransaction,
    index: u32,
    htlc_key: &SigningKey,
    preimage: [u8; 32],
) -> Result<SweepInput, ChannelError> {
    match commitment.htlc_outputs().find(|(i, _, _)| *i == index) {
        Some((_, _, HtlcScript::Offered(script))) => Ok(SweepInput {
            outpoint: commitment.outpoint(index),
            spent: commitment.output(index)?,
            path: SweepPath::HtlcPreimage {
                script: Box::new(*script),
                htlc_key: htlc_key.clone(),
                preimage,
            },
        }),
        _ => Err(ChannelError::WrongOutput(index)),
    }
}

/// The counterparty's refund, after expiry, of the HTLC the holder received at `index`.
pub fn htlc_timeout_input(
    commitment: &CommitmentTransaction,
    index: u32,
    htlc_key: &SigningKey,
) -> Result<SweepInput, ChannelError> {
    match commitment.htlc_outputs().find(|(i, _, _)| *i == index) {
        Some((_, _, HtlcScript::Received(script))) => Ok(SweepInput {
            outpoint: commitment.outpoint(index),
            spent: commitment.output(index)?,
            path: SweepPath::HtlcTimeout { script: Box::new(*script), htlc_key: htlc_key.clone() },
        }),
        _ => Err(ChannelError::WrongOutput(index)),
    }
}
