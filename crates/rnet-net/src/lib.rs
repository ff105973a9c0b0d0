//! ResonanceNet peer-to-peer network (layer 5): an encrypted Noise transport with a persistent
//! node key ([`transport`]), the strict message set ([`message`]), an address manager with Tor v3
//! addresses ([`addr`]), persisted bans ([`ban`]), a SOCKS5 client ([`socks5`]) and the peer
//! manager ([`net`]): handshake, ping, timeouts, misbehaviour scores, headers-first sync with
//! parallel block download and stall detection, chunked transfer of each block's model update
//! (and of whole checkpoints) verified against the header's `update_root`/`checkpoint_root`,
//! `inv`/`getdata` relay and mempool sync. See `docs/network.md`.

pub mod addr;
pub mod backend;
pub mod ban;
pub mod message;
pub mod net;
pub mod socks5;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod transport;

pub use addr::{AddrMan, NetAddr, PeerAddr};
pub use backend::{Accepted, Backend, Rejected, StoredCheckpoint};
pub use message::{Message, MessageError};
pub use net::{NetConfig, NetHandle, PeerInfo, start};
pub use transport::{NodeKey, TransportError};
