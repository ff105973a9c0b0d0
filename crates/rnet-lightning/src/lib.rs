//! ResonanceNet Lightning (layer 5): payment channels, multi-hop onion payments and invoices.
//!
//! The protocol is BOLT 2/3/4/7/11 adapted to Ed25519 and Keccak-256d; `docs/lightning.md` is the
//! normative text and says where and why it differs from the BOLTs.
//!
//! - [`channel`]: keys, scripts and transactions of a channel: funding, commitments, HTLC
//!   outputs, revocation, penalties and closes.
//! - [`gossip`]: channel and node announcements and channel updates (BOLT 7), signed by Ed25519
//!   keys.
//! - [`invoice`]: BOLT11-style bech32 payment requests, signed by an explicit payee key.
//! - [`onion`]: fixed-size Sphinx packets (X25519, ChaCha20, HMAC-SHA256) and attributable error
//!   onions.
//! - [`router`]: the channel graph, fee-, CLTV- and capacity-aware pathfinding and retries.
//! - [`node`]: a whole Lightning node without I/O: peers, channels, forwarding, payments,
//!   invoices, the chain and persistence.
//! - [`state`]: the channel state machine (BOLT 2), deterministic and serializable.
//! - [`store`]: the key-value interface a node persists through.
//! - [`watchtower`]: encrypted penalty appointments and the tower that acts on them.
//! - [`wire`]: the peer messages (BOLT 1/2) and their strict encoding.

pub mod channel;
pub mod gossip;
pub mod invoice;
pub mod node;
pub mod onion;
pub mod router;
pub mod state;
pub mod store;
pub mod watchtower;
pub mod wire;
