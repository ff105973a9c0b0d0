//! ResonanceNet JSON-RPC: a Bitcoin-Core-compatible HTTP JSON-RPC server framework and a
//! blocking client.
//!
//! The server knows nothing about the chain. The node builds a [`Registry`] (which already holds
//! `help`, `uptime` and `stop`), registers its methods with parameter names and Core-style help
//! texts, and serves it:
//!
//! ```no_run
//! use std::sync::Arc;
//! use rnet_rpc::{MethodInfo, Registry, RpcConfig, RpcError, RpcServer};
//! use serde_json::json;
//!
//! # async fn node() -> Result<(), Box<dyn std::error::Error>> {
//! let mut registry = Registry::new();
//! registry.register(
//!     MethodInfo::new("getblockhash", "Blockchain")
//!         .params(["height"])
//!         .help("getblockhash height\n\nReturns hash of block in best-block-chain at height provided."),
//!     |p| async move {
//!         let height: u64 = p.required("height")?;
//!         if height > 100 {
//!             return Err(RpcError::invalid_parameter("Block height out of range"));
//!         }
//!         Ok(json!(format!("{height:064x}")))
//!     },
//! )?;
//! let registry = Arc::new(registry);
//! let config = RpcConfig::localhost(29554, "/home/me/.resonancenet/regtest");
//! let server = RpcServer::bind(config, Arc::clone(&registry)).await?;
//! println!("RPC on {}", server.local_addr());
//! server.run(registry.stopped()).await?; // until `stop` is called
//! # Ok(()) }
//! ```
//!
//! A method with a large result registers with [`Registry::register_stream`] and returns a
//! [`JsonStream`] that writes the JSON text; the server sends it as a chunked body while it is
//! written, with bounded memory (see `stream.rs` and `docs/rpc.md`).
//!
//! Protocol rules follow Bitcoin Core's `httprpc.cpp` and `request.cpp`; see
//! [`protocol`] and `docs/rpc.md`.

mod auth;
mod client;
mod error;
mod net;
mod params;
pub mod protocol;
mod registry;
mod server;
mod stream;

pub use auth::{COOKIE_FILE, COOKIE_USER, basic_auth_header, read_cookie};
pub use client::{Auth, ClientError, DEFAULT_CLIENT_TIMEOUT, MAX_RESPONSE, RpcClient};
pub use error::{RpcError, RpcServerError, codes};
pub use net::{
    DEFAULT_DATADIR_NAME, cookie_path, default_datadir, default_rpc_port, network_datadir,
    network_subdir,
};
pub use params::{ParamKey, Params};
pub use registry::{
    Handler, HandlerFuture, MethodInfo, RegisterError, Registry, STOP_MESSAGE, Shutdown,
    StreamHandler, StreamHandlerFuture,
};
pub use rnet_primitives::Network;
pub use server::{
    AUTH_FAILURE_DELAY, DEFAULT_MAX_BODY, DEFAULT_SERVER_TIMEOUT, DEFAULT_WORK_QUEUE, RpcConfig,
    RpcServer, RunningServer, SHUTDOWN_GRACE, serve,
};
pub use stream::{JsonStream, STREAM_CHUNK, STREAM_CHUNKS_IN_FLIGHT, StreamError, StreamStats};
