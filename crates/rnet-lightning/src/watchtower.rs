//! Watchtower: a third party that punishes a revoked commitment while the client is offline
//! (`docs/lightning.md` §6 is the normative text).
//!
//! After each `revoke_and_ack` the client (the channel's owner) signs the complete penalty
//! (justice) transaction of the counterparty's newly revoked commitment, encrypts it under a key
//! derived from that commitment's txid and sends it, indexed by a hint also derived from the
//! txid, to a tower. The tower holds no keys and learns nothing until the revoked commitment
//! appears in a block: then it derives the key from the txid, decrypts, checks that the penalty
//! spends that commitment and is valid, and broadcasts it.
//!
//! - [`blob`]: hint and key derivation, the encrypted blob (ChaCha20 then HMAC-SHA256) and its
//!   padded plaintext.
//! - [`client`]: [`TowerClient`] builds appointments from the channel layer and tracks them;
//!   [`justice_transactions`] signs the penalty.
//! - [`store`]: the tower's storage trait and an in-memory implementation.
//! - [`tower`]: [`Tower`]: sessions, quotas, expiry, and scanning blocks.

pub mod blob;
pub mod client;
mod error;
pub mod store;
pub mod tower;

pub use blob::{
    Appointment, BLOB_VERSION, BUCKETS, BlobPlaintext, EncryptedBlob, Hint, MAC_LEN, MAX_BLOB_LEN,
    MAX_BLOB_TRANSACTIONS, blob_key, hint_of,
};
pub use client::{TowerClient, justice_transactions};
pub use error::WatchtowerError;
pub use store::{AppointmentStore, MemoryStore, StoreError};
pub use tower::{BlockScan, Justice, Rejection, SessionId, Tower, TowerConfig};
