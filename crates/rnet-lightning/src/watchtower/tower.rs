//! The tower: accepts appointments per client session within quotas, scans every new block for
//! revoked commitments, and returns the penalties to broadcast (`docs/lightning.md` §6.4).

use std::collections::BTreeMap;

use rnet_primitives::{BlockHash, Transaction, TxOut, Txid};
use rnet_script::{VerifyFlags, verify_transaction};

use super::blob::{Appointment, Hint, MAX_BLOB_LEN, hint_of};
use super::error::WatchtowerError;
use super::store::AppointmentStore;

/// A client session, named by the client's authenticated transport key (or any id the node
/// assigns): quotas are counted per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub [u8; 32]);

/// The tower's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TowerConfig {
    /// The most sessions open at once.
    pub max_sessions: usize,
    /// The most appointments one session holds.
    pub max_appointments_per_session: usize,
    /// The most blob bytes one session holds.
    pub max_bytes_per_session: usize,
    /// The longest blob accepted (at most [`MAX_BLOB_LEN`] is meaningful).
    pub max_blob_len: usize,
    /// Blocks an appointment is kept after it was (last) sent; the client sends it again before.
    pub appointment_lifetime: u32,
}

impl Default for TowerConfig {
    /// 10 000 sessions of 4 096 appointments and 16 MiB each, blobs up to [`MAX_BLOB_LEN`],
    /// kept 52 560 blocks (a year of 600 s blocks).
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            max_appointments_per_session: 4096,
            max_bytes_per_session: 16 << 20,
            max_blob_len: MAX_BLOB_LEN,
            appointment_lifetime: 52_560,
        }
    }
}

/// What the tower remembers of one appointment (the blob itself is in the store).
#[derive(Debug, Clone, Copy)]
struct AppointmentMeta {
    expires_at: u32,
    len: usize,
}

/// One session's appointments and the bytes they use.
#[derive(Debug, Clone, Default)]
struct Session {
    appointments: BTreeMap<Hint, AppointmentMeta>,
    bytes: usize,
}

/// Penalty transactions to broadcast: a session's blob matched a mined transaction and
/// decrypted to transactions that validly spend it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Justice {
    /// The session whose appointment matched.
    pub session: SessionId,
    /// The mined revoked commitment.
    pub breach: Txid,
    /// The penalty transactions, each verified against the breach's outputs.
    pub transactions: Vec<Transaction>,
}

/// An appointment whose hint matched a mined transaction but whose blob did not yield a valid
/// penalty for it (altered, garbage, or a hint collision). It is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The session that sent it.
    pub session: SessionId,
    /// The mined transaction its hint matched.
    pub breach: Txid,
    /// Why it was refused.
    pub error: WatchtowerError,
}

/// The result of scanning one block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockScan {
    /// Penalties to broadcast.
    pub justice: Vec<Justice>,
    /// Matching appointments that were refused (and deleted).
    pub rejected: Vec<Rejection>,
    /// Appointments expired at this height.
    pub expired: usize,
}

/// A watchtower over an [`AppointmentStore`]. It holds no keys: it can read a blob only once the
/// transaction whose txid encrypts it is mined.
#[derive(Debug)]
pub struct Tower<S> {
    store: S,
    genesis: BlockHash,
    config: TowerConfig,
    sessions: BTreeMap<SessionId, Session>,
}

impl<S: AppointmentStore> Tower<S> {
    /// A tower for the chain whose genesis block id is `genesis` (penalty signatures commit to
    /// it), storing blobs in `store`.
    pub fn new(store: S, genesis: BlockHash, config: TowerConfig) -> Self {
        Self { store, genesis, config, sessions: BTreeMap::new() }
    }

    /// The tower's limits.
    pub fn config(&self) -> &TowerConfig {
        &self.config
    }

    /// The blob store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Opens a session for a client.
    pub fn open_session(&mut self, session: SessionId) -> Result<(), WatchtowerError> {
        if self.sessions.contains_key(&session) {
            return Err(WatchtowerError::SessionExists);
        }
        if self.sessions.len() >= self.config.max_sessions {
            return Err(WatchtowerError::TooManySessions(self.config.max_sessions));
        }
        self.sessions.insert(session, Session::default());
        Ok(())
    }

    /// Closes a session and deletes its appointments; returns how many there were.
    pub fn close_session(&mut self, session: &SessionId) -> Result<usize, WatchtowerError> {
        let state = self.sessions.remove(session).ok_or(WatchtowerError::UnknownSession)?;
        for hint in state.appointments.keys() {
            self.store.remove(hint, session)?;
        }
        Ok(state.appointments.len())
    }

    /// The number of appointments a session holds (`None` if it is not open).
    pub fn appointment_count(&self, session: &SessionId) -> Option<usize> {
        self.sessions.get(session).map(|s| s.appointments.len())
    }

    /// Accepts an appointment at chain height `height`; returns the height at which it expires
    /// unless sent again. Sending the same hint again replaces the blob and renews it without
    /// using another slot. Refuses blobs over the size limit and appointments over the
    /// session's count or byte quota.
    pub fn add_appointment(
        &mut self,
        session: &SessionId,
        appointment: &Appointment,
        height: u32,
    ) -> Result<u32, WatchtowerError> {
        let len = appointment.blob.len();
        if len > self.config.max_blob_len {
            return Err(WatchtowerError::BlobTooLarge { len, max: self.config.max_blob_len });
        }
        let state = self.sessions.get_mut(session).ok_or(WatchtowerError::UnknownSession)?;
        let previous = state.appointments.get(&appointment.hint).map_or(0, |m| m.len);
        if previous == 0 && state.appointments.len() >= self.config.max_appointments_per_session {
            return Err(WatchtowerError::QuotaExceeded(self.config.max_appointments_per_session));
        }
        let bytes = state.bytes - previous + len;
        if bytes > self.config.max_bytes_per_session {
            return Err(WatchtowerError::ByteQuotaExceeded(self.config.max_bytes_per_session));
        }
        self.store.put(appointment.hint, *session, appointment.blob.clone())?;
        let expires_at = height.saturating_add(self.config.appointment_lifetime);
        state.appointments.insert(appointment.hint, AppointmentMeta { expires_at, len });
        state.bytes = bytes;
        Ok(expires_at)
    }

    /// Deletes a session's appointment (its channel closed); returns whether it existed.
    pub fn remove_appointment(
        &mut self,
        session: &SessionId,
        hint: &Hint,
    ) -> Result<bool, WatchtowerError> {
        let state = self.sessions.get_mut(session).ok_or(WatchtowerError::UnknownSession)?;
        if !state.appointments.contains_key(hint) {
            return Ok(false);
        }
        self.forget(session, hint)?;
        Ok(true)
    }

    /// Deletes every appointment that expires at or before `height`; returns how many.
    pub fn expire(&mut self, height: u32) -> Result<usize, WatchtowerError> {
        let mut count = 0;
        for (session, state) in &mut self.sessions {
            let expired: Vec<Hint> = state
                .appointments
                .iter()
                .filter(|(_, m)| m.expires_at <= height)
                .map(|(h, _)| *h)
                .collect();
            for hint in expired {
                if let Some(meta) = state.appointments.remove(&hint) {
                    state.bytes -= meta.len;
                }
                self.store.remove(&hint, session)?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Scans the transactions of a new block at `height`: for each one whose hint has blobs,
    /// decrypts them with the key of its txid and keeps the penalties that spend only its
    /// outputs and pass script verification (`VerifyFlags::STANDARD`); refused blobs are deleted.
    /// Then expires appointments at `height`. Matched appointments are kept (the block may be
    /// reorganised away and the commitment mined again) until the client removes them or they
    /// expire.
    pub fn scan_block(
        &mut self,
        height: u32,
        transactions: &[Transaction],
    ) -> Result<BlockScan, WatchtowerError> {
        let mut scan = BlockScan::default();
        for breach in transactions {
            let txid = breach.txid();
            let hint = hint_of(&txid);
            for (session, blob) in self.store.get(&hint)? {
                let checked = blob
                    .open(&txid)
                    .and_then(|p| self.check_penalty(breach, &txid, &p.transactions).map(|_| p));
                match checked {
                    Ok(plaintext) => scan.justice.push(Justice {
                        session,
                        breach: txid,
                        transactions: plaintext.transactions,
                    }),
                    Err(error) => {
                        self.forget(&session, &hint)?;
                        scan.rejected.push(Rejection { session, breach: txid, error });
                    }
                }
            }
        }
        scan.expired = self.expire(height)?;
        Ok(scan)
    }

    /// Deletes an appointment from its session (if still open) and from the store.
    fn forget(&mut self, session: &SessionId, hint: &Hint) -> Result<(), WatchtowerError> {
        if let Some(state) = self.sessions.get_mut(session)
            && let Some(meta) = state.appointments.remove(hint)
        {
            state.bytes -= meta.len;
        }
        self.store.remove(hint, session)?;
        Ok(())
    }

    /// Checks that every input of every penalty spends an output of `breach` and that every
    /// penalty's scripts verify against those outputs.
    fn check_penalty(
        &self,
        breach: &Transaction,
        txid: &Txid,
        penalties: &[Transaction],
    ) -> Result<(), WatchtowerError> {
        for (tx_index, tx) in penalties.iter().enumerate() {
            if tx.inputs.is_empty() {
                return Err(WatchtowerError::Malformed("penalty transaction without inputs"));
            }
            let spent = tx
                .inputs
                .iter()
                .enumerate()
                .map(|(input, txin)| {
                    let out = txin.previous_output;
                    if out.txid != *txid {
                        return Err(WatchtowerError::NotSpendingBreach { tx: tx_index, input });
                    }
                    usize::try_from(out.vout)
                        .ok()
                        .and_then(|v| breach.outputs.get(v))
                        .cloned()
                        .ok_or(WatchtowerError::NotSpendingBreach { tx: tx_index, input })
                })
                .collect::<Result<Vec<TxOut>, _>>()?;
            verify_transaction(&self.genesis, tx, &spent, VerifyFlags::STANDARD)
                .map_err(|error| WatchtowerError::InvalidPenalty { tx: tx_index, error })?;
        }
        Ok(())
    }
}
