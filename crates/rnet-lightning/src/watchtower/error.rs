//! Why a blob, an appointment or a penalty is refused.

use rnet_script::TxScriptError;
use thiserror::Error;

use super::store::StoreError;
use crate::channel::ChannelError;

/// Every failure of the watchtower client and tower. Bytes from a client or a peer are checked
/// and refused with one of these; nothing here panics on them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WatchtowerError {
    /// A blob version this code does not know.
    #[error("unknown blob version {0}")]
    UnknownVersion(u8),
    /// A blob length that is not `1 + bucket + 32`.
    #[error("blob length {0} is not a valid bucket size")]
    BlobLength(usize),
    /// The tag does not verify: the blob was altered or was not made for this txid.
    #[error("blob authentication failed")]
    Authentication,
    /// The plaintext is not a valid encoding.
    #[error("malformed blob plaintext: {0}")]
    Malformed(&'static str),
    /// A blob carries 1 to 8 transactions.
    #[error("{0} transactions in a blob (1 to 8 allowed)")]
    TransactionCount(usize),
    /// Transaction `index` of the plaintext does not decode canonically.
    #[error("transaction {0} of the blob is malformed")]
    MalformedTransaction(usize),
    /// The transactions do not fit the largest bucket.
    #[error("blob plaintext of {size} bytes exceeds the largest bucket ({max})")]
    PlaintextTooLarge {
        /// Bytes needed.
        size: usize,
        /// The largest bucket.
        max: usize,
    },
    /// A decrypted transaction spends something other than an output of the mined commitment.
    #[error("transaction {tx} input {input} does not spend an output of the breach")]
    NotSpendingBreach {
        /// The transaction in the blob.
        tx: usize,
        /// Its input.
        input: usize,
    },
    /// A decrypted transaction fails script verification against the commitment's outputs.
    #[error("transaction {tx} of the blob is invalid: {error}")]
    InvalidPenalty {
        /// The transaction in the blob.
        tx: usize,
        /// Why the script interpreter refused it.
        error: TxScriptError,
    },
    /// The revoked commitment has no revocable output (both the holder's balance and every
    /// HTLC were dust): there is nothing to punish.
    #[error("the revoked commitment has no revocable output")]
    NothingToPunish,
    /// The penalty could not be built or signed.
    #[error("penalty: {0}")]
    Channel(#[from] ChannelError),
    /// The session is not open at this tower.
    #[error("unknown session")]
    UnknownSession,
    /// The session is already open.
    #[error("session already open")]
    SessionExists,
    /// The tower serves no more sessions.
    #[error("the tower has reached its limit of {0} sessions")]
    TooManySessions(usize),
    /// The session holds as many appointments as it may.
    #[error("session quota of {0} appointments reached")]
    QuotaExceeded(usize),
    /// The session holds as many blob bytes as it may.
    #[error("session quota of {0} blob bytes reached")]
    ByteQuotaExceeded(usize),
    /// The blob is longer than the tower accepts.
    #[error("blob of {len} bytes exceeds the tower's limit of {max}")]
    BlobTooLarge {
        /// The blob's length.
        len: usize,
        /// The tower's limit.
        max: usize,
    },
    /// The client has no appointment with this hint.
    #[error("unknown appointment")]
    UnknownAppointment,
    /// The storage backend failed.
    #[error("appointment store: {0}")]
    Store(#[from] StoreError),
}
