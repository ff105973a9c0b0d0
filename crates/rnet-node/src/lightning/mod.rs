//! `rnetd`'s Lightning service: the I/O around `rnet_lightning`'s node.
//!
//! - [`address_book`]: where the peers we dialled listen, to dial them again after a restart.
//! - [`keys`]: the node key file.
//! - [`link`]: Lightning peer connections: the project's Noise XX transport under Lightning's own
//!   prologue, then an identity exchange that binds each side's Ed25519 node id to the session.
//! - [`service`]: the service that runs the node: peers, the chain, the wallet, events.
//! - [`store`]: the node's state in redb (`<netdir>/lightning.redb`), behind
//!   [`rnet_lightning::store::Store`].

pub mod address_book;
pub mod keys;
pub mod link;
pub mod service;
pub mod store;
