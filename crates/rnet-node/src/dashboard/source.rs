//! Where the dashboard's numbers come from: the node's own JSON-RPC methods, called in-process
//! through the registry (so every figure is exactly what `rnet-cli` shows), restricted to a list
//! of read-only methods; plus the chain reader for the few per-block series no method returns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rnet_rpc::Registry;
use serde_json::Value;

use super::PageError;
use super::history::BenchmarkHistory;
use crate::node::Node;

/// The only methods the dashboard calls: all read-only, none touches a wallet or reveals a
/// secret.
pub const READ_ONLY_METHODS: &[&str] = &[
    "getblockchaininfo",
    "getmininginfo",
    "getmempoolinfo",
    "getconnectioncount",
    "gettraininginfo",
    "getblockcount",
    "getblockheader",
    "getrawtransaction",
];

/// Shared state of the dashboard's handlers.
#[derive(Clone)]
pub struct Source {
    /// The node (chain reader, parameters, shutdown flag).
    pub node: Arc<Node>,
    /// The node's RPC methods.
    pub registry: Arc<Registry>,
    /// The network data directory (for `inference.port`).
    pub netdir: PathBuf,
    /// `-inference` as configured (its port may be 0: the bound one is in `inference.port`).
    pub inference: Option<SocketAddr>,
    /// Benchmark losses of recent blocks.
    pub benchmark: Arc<BenchmarkHistory>,
    /// Permits for open `/events` streams.
    pub subscribers: Arc<tokio::sync::Semaphore>,
}

impl Source {
    /// Calls the read-only RPC method `method` with `params` in-process; a method outside
    /// [`READ_ONLY_METHODS`] is refused.
    pub async fn rpc(&self, method: &str, params: Value) -> Result<Value, PageError> {
        if !READ_ONLY_METHODS.contains(&method) {
            return Err(PageError::Internal(format!("{method} is not a read-only method")));
        }
        self.registry.call(method, params, None).await.map_err(|e| PageError::from_rpc(method, &e))
    }

    /// Runs `f` on a blocking thread (chain reads, corpus and model work).
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, PageError>
    where
        F: FnOnce(&Node) -> Result<T, PageError> + Send + 'static,
        T: Send + 'static,
    {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || f(&node))
            .await
            .map_err(|e| PageError::Internal(format!("worker failed: {e}")))?
    }

    /// The address the inference server listens on, if `-inference` is on and it has bound
    /// (the port from `<netdir>/inference.port`; an unspecified IP is reached on loopback).
    pub fn inference_addr(&self) -> Option<SocketAddr> {
        let configured = self.inference?;
        let port = std::fs::read_to_string(self.netdir.join(crate::inference::INFERENCE_PORT_FILE))
            .ok()
            .and_then(|t| t.trim().parse::<u16>().ok())?;
        let ip = if configured.ip().is_unspecified() {
            match configured {
                SocketAddr::V4(_) => std::net::IpAddr::from([127, 0, 0, 1]),
                SocketAddr::V6(_) => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            }
        } else {
            configured.ip()
        };
        Some(SocketAddr::new(ip, port))
    }
}
