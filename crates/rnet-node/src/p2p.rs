//! The node's side of the P2P network: [`rnet_net::Backend`] for [`Node`] and start-up from the
//! configuration (`-listen`, `-port`, `-bind`, `-connect`, `-addnode`, `-seednode`,
//! `-maxconnections`, `-proxy`, `-onlynet`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rnet_chain::checkpoints::StageMode;
use rnet_chain::{AcceptOutcome, BlockStatus, ChainError};
use rnet_mempool::MempoolError;
use rnet_net::{Accepted, Backend, NetConfig, NetHandle, Rejected, StoredCheckpoint};
use rnet_primitives::{Block, BlockHash, BlockHeader, Transaction, Txid};

use crate::config::Config;
use crate::node::Node;
use crate::tx_accept::SubmitTxError;

/// File in the network data directory holding the bound P2P port while the node runs.
pub const P2P_PORT_FILE: &str = "p2p.port";

/// The network's view of a node.
pub struct NodeBackend(pub Arc<Node>);

fn outcome(r: Result<AcceptOutcome, ChainError>) -> Result<Accepted, Rejected> {
    match r {
        Ok(AcceptOutcome::Connected { .. }) => Ok(Accepted::Connected),
        Ok(AcceptOutcome::StoredSideBranch) => Ok(Accepted::Stored),
        Ok(AcceptOutcome::MissingUpdate) => Ok(Accepted::NeedUpdate),
        Ok(AcceptOutcome::AlreadyHave) => Ok(Accepted::AlreadyHave),
        Ok(AcceptOutcome::Orphan { missing_parent }) => Ok(Accepted::Orphan(missing_parent)),
        Err(e) => {
            let invalid = matches!(
                e,
                ChainError::InvalidBlock { .. }
                    | ChainError::InvalidAncestor { .. }
                    | ChainError::KnownInvalid(_)
                    | ChainError::BadHeight { .. }
                    | ChainError::CheckpointMismatch { .. }
            );
            Err(Rejected { invalid, reason: e.to_string() })
        }
    }
}

impl NodeBackend {
    /// `r`, after recording new block data from a peer ([`Node::note_peer_data`]) when it
    /// stored something: the in-node miner waits while a better chain arrives.
    fn noted(&self, r: Result<Accepted, Rejected>) -> Result<Accepted, Rejected> {
        if matches!(r, Ok(Accepted::Connected | Accepted::Stored | Accepted::NeedUpdate)) {
            self.0.note_peer_data();
        }
        r
    }
}

impl Backend for NodeBackend {
    fn best(&self) -> (u32, u128, BlockHash) {
        let t = self.0.chain().tip();
        (t.height, t.chainwork, t.hash)
    }

    fn locator(&self) -> Vec<BlockHash> {
        let chain = self.0.chain();
        let mut h = chain.tip().height;
        let mut step = 1u32;
        let mut out = Vec::new();
        loop {
            if let Ok(Some(hash)) = chain.block_hash_at(h) {
                out.push(hash);
            }
            if h == 0 || out.len() >= rnet_net::message::MAX_LOCATOR - 1 {
                break;
            }
            if out.len() >= 10 {
                step = step.saturating_mul(2);
            }
            h = h.saturating_sub(step);
        }
        if out.last() != Some(&chain.genesis_hash()) {
            out.push(chain.genesis_hash());
        }
        out
    }

    fn headers_after(
        &self,
        locator: &[BlockHash],
        stop: &BlockHash,
        max: usize,
    ) -> Vec<BlockHeader> {
        // Read from a snapshot: serving headers never waits for block validation.
        let chain = &self.0.reader;
        let start = locator
            .iter()
            .find_map(|h| {
                chain
                    .block_info(h)
                    .ok()
                    .flatten()
                    .filter(|i| i.in_active_chain)
                    .map(|i| i.header.height)
            })
            .unwrap_or(0);
        let mut out = Vec::new();
        let mut h = start + 1;
        while out.len() < max {
            let Ok(Some(hash)) = chain.block_hash_at(h) else { break };
            let Ok(Some(header)) = chain.header(&hash) else { break };
            out.push(header);
            if hash == *stop {
                break;
            }
            h += 1;
        }
        out
    }

    fn has_block(&self, hash: &BlockHash) -> bool {
        matches!(self.0.reader.block_status(hash), Ok(Some(s)) if s != BlockStatus::HeaderValid)
    }

    fn headers_checked(&self, headers: &[BlockHeader]) {
        self.0.chain().note_headers(headers);
    }

    fn header(&self, hash: &BlockHash) -> Option<BlockHeader> {
        self.0.reader.header(hash).ok().flatten()
    }

    fn block(&self, hash: &BlockHash) -> Option<Block> {
        self.0.reader.block(hash).ok().flatten()
    }

    fn accept_block(&self, block: Block) -> Result<Accepted, Rejected> {
        self.noted(outcome(self.0.submit_block(block, None)))
    }

    fn accept_update(&self, hash: &BlockHash, bytes: Vec<u8>) -> Result<Accepted, Rejected> {
        self.noted(outcome(self.0.accept_update(hash, bytes)))
    }

    fn update(&self, hash: &BlockHash) -> Option<Arc<Vec<u8>>> {
        self.0.reader.update(hash).ok().flatten().map(Arc::new)
    }

    fn has_update(&self, hash: &BlockHash) -> bool {
        self.0.reader.has_update(hash).unwrap_or(false)
    }

    fn wanted_updates(&self, max: usize) -> Vec<BlockHash> {
        self.0.chain().wanted_updates(max).unwrap_or_default()
    }

    fn accept_checkpoint(&self, hash: &BlockHash, bytes: Vec<u8>) -> Result<Accepted, Rejected> {
        self.noted(outcome(self.0.accept_checkpoint(hash, bytes)))
    }

    fn accept_checkpoint_file(&self, hash: &BlockHash, path: &Path) -> Result<Accepted, Rejected> {
        self.noted(outcome(self.0.accept_checkpoint_file(hash, path, StageMode::Move)))
    }

    fn checkpoint(&self, hash: &BlockHash) -> Option<Arc<Vec<u8>>> {
        self.0.checkpoint_bytes(hash).ok().flatten()
    }

    fn checkpoint_for_serving(&self, hash: &BlockHash) -> Option<StoredCheckpoint> {
        // The checkpoint held in memory (usually the tip's) is served from memory; any other
        // from its file.
        if let Some(bytes) = self.0.cached_checkpoint_bytes(hash) {
            return Some(StoredCheckpoint::Bytes(bytes));
        }
        let f = self.0.checkpoint_file(hash).ok().flatten()?;
        Some(StoredCheckpoint::File { file: f.file, size: f.size, chunk_hashes: f.chunk_hashes })
    }

    fn has_checkpoint(&self, hash: &BlockHash) -> bool {
        self.0.reader.has_checkpoint(hash).unwrap_or(false)
    }

    fn mempool_txids(&self) -> Vec<Txid> {
        self.0.mempool().txids()
    }

    fn tx(&self, txid: &Txid) -> Option<Transaction> {
        self.0.mempool().get(txid).map(|e| e.tx.clone())
    }

    fn wanted_checkpoints(&self, max: usize) -> Vec<BlockHash> {
        self.0.chain().wanted_checkpoints(max).unwrap_or_default()
    }

    fn accept_tx(&self, tx: Transaction) -> Result<bool, Rejected> {
        match self.0.submit_transaction(tx) {
            Ok(_) => Ok(true),
            Err(SubmitTxError::Rejected(MempoolError::AlreadyInMempool(_))) => Ok(false),
            Err(SubmitTxError::Rejected(e)) => {
                // A transaction that breaks a consensus or script rule costs the peer that sent
                // it; policy refusals (fees, limits, missing inputs) do not.
                Err(Rejected { invalid: e.is_invalid(), reason: e.to_string() })
            }
            Err(e) => Err(Rejected { invalid: false, reason: e.to_string() }),
        }
    }
}

/// The network configuration of a node configuration.
pub fn net_config(config: &Config, node: &Node) -> NetConfig {
    let mut c = NetConfig::new(node.params.magic, node.params.p2p_port);
    c.listen = config.listen;
    c.bind = config.bind.iter().map(|ip| SocketAddr::new(*ip, config.p2p_port)).collect();
    c.connect = config.connect.clone();
    c.auto_connect = config.auto_connect;
    c.addnode = config.addnode.clone();
    c.seednode = config.seednode.clone();
    c.max_connections = config.max_connections;
    c.proxy = config.proxy;
    c.onion_only = config.onion_only;
    c.netdir = Some(node.netdir.clone());
    c.model_depth = config.model_depth();
    c
}

/// The P2P network's own runtime. Its event loop calls the node with `block_in_place`, so a
/// call that waits (for the chain lock, or for hashing threads an evaluation occupies) must never
/// take a worker the RPC server needs: the network runs on threads of its own (named `p2p`).
pub struct P2pRuntime(Option<tokio::runtime::Runtime>);

impl P2pRuntime {
    /// Stops the network's tasks, waiting up to `grace` for them (call from a blocking thread).
    pub fn shutdown(mut self, grace: std::time::Duration) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(grace);
        }
    }
}

impl Drop for P2pRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Starts the network from the configuration on its own runtime, and writes the bound port to
/// [`P2P_PORT_FILE`].
pub async fn start(
    config: &Config,
    node: &Arc<Node>,
) -> Result<(NetHandle, P2pRuntime), rnet_net::TransportError> {
    let cfg = net_config(config, node);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("p2p")
        .enable_all()
        .build()?;
    let backend = Arc::new(NodeBackend(node.clone()));
    let started = runtime.spawn(rnet_net::start(cfg, backend)).await;
    let runtime = P2pRuntime(Some(runtime));
    let handle = started.map_err(std::io::Error::other)??;
    if let Some(a) = handle.local.first() {
        std::fs::write(node.netdir.join(P2P_PORT_FILE), format!("{}\n", a.port()))?;
    }
    let _ = node.net.set(handle.clone());
    Ok((handle, runtime))
}
