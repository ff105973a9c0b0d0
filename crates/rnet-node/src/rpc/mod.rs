//! The node's JSON-RPC methods, registered into an `rnet_rpc::Registry`. Every handler runs on
//! a blocking thread (`spawn_blocking`) since it locks the chainstate, which the miner and block
//! validation hold during evaluation. Methods with large results (`getblock`) stream them
//! ([`rnet_rpc::JsonStream`]): their writer runs on a blocking thread while the reply is sent.

mod blockchain;
mod control;
mod json;
mod lightning;
mod mempool;
mod mining;
mod net;
mod rawtx;
pub(crate) mod wallet;

use std::io::Write;
use std::sync::Arc;

use rnet_chain::ChainError;
use rnet_primitives::{BlockHash, Hash256, Txid};
use rnet_rpc::{JsonStream, MethodInfo, Params, RegisterError, Registry, RpcError, StreamError};
use serde_json::Value;

use crate::node::{Node, NodeError};

pub use json::{
    amount_json, block_head_json, block_json, reject_reason, write_block_json, write_hex_string,
};
pub(crate) use wallet::load_wallet;

/// Registers `f` to run on a blocking thread with the node.
fn reg<F>(r: &mut Registry, node: &Arc<Node>, info: MethodInfo, f: F) -> Result<(), RegisterError>
where
    F: Fn(&Node, &Params) -> Result<Value, RpcError> + Send + Sync + 'static,
{
    let node = node.clone();
    let f = Arc::new(f);
    r.register(info, move |p| {
        let node = node.clone();
        let f = f.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&node, &p))
                .await
                .map_err(|e| RpcError::internal(format!("handler failed: {e}")))?
        }
    })
}

/// Registers `f` as a streamed method: it writes the result's JSON text into the reply on a
/// blocking thread (everything it holds, such as a heavy-RPC permit, is held until it returns:
/// when the reply is written, or abandoned by a client that stopped reading). An `RpcError` it
/// returns before writing is an ordinary error reply.
fn reg_stream<F>(
    r: &mut Registry,
    node: &Arc<Node>,
    info: MethodInfo,
    f: F,
) -> Result<(), RegisterError>
where
    F: Fn(&Node, &Params, &mut dyn Write) -> Result<(), StreamError> + Send + Sync + 'static,
{
    let node = node.clone();
    let f = Arc::new(f);
    r.register_stream(info, move |p| {
        let node = node.clone();
        let f = f.clone();
        async move { Ok(JsonStream::new(move |w| f(&node, &p, w))) }
    })
}

/// Registers every node method.
pub fn register_all(r: &mut Registry, node: &Arc<Node>) -> Result<(), RegisterError> {
    blockchain::register(r, node)?;
    control::register(r, node)?;
    mining::register(r, node)?;
    rawtx::register(r, node)?;
    mempool::register(r, node)?;
    net::register(r, node)?;
    wallet::register(r, node)?;
    lightning::register(r, node)?;
    Ok(())
}

/// Maps a chainstate error to an RPC error.
pub(crate) fn chain_err(e: ChainError) -> RpcError {
    match e {
        ChainError::UnknownBlock(_) => RpcError::invalid_address_or_key("Block not found"),
        ChainError::Db(_)
        | ChainError::Io(_)
        | ChainError::Corrupt(_)
        | ChainError::CorruptRecord { .. } => RpcError::database(e.to_string()),
        ChainError::Genesis => RpcError::invalid_parameter(e.to_string()),
        other => RpcError::misc(other.to_string()),
    }
}

/// Maps a node error to an RPC error.
pub(crate) fn node_err(e: NodeError) -> RpcError {
    match e {
        NodeError::Chain(c) => chain_err(c),
        other => RpcError::misc(other.to_string()),
    }
}

fn parse_hex32(p: &Params, index: usize, name: &str) -> Result<[u8; 32], RpcError> {
    let s: String = p.required(index)?;
    if s.len() != 64 {
        return Err(RpcError::invalid_parameter(format!(
            "{name} must be of length 64 (not {}, for '{s}')",
            s.len()
        )));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(&s, &mut out).map_err(|_| {
        RpcError::invalid_parameter(format!("{name} must be hexadecimal string (not '{s}')"))
    })?;
    Ok(out)
}

/// A block hash parameter (64 hex characters), -8 otherwise.
pub(crate) fn param_block_hash(p: &Params, index: usize) -> Result<BlockHash, RpcError> {
    parse_hex32(p, index, "blockhash").map(BlockHash)
}

/// A txid parameter.
pub(crate) fn param_txid(p: &Params, index: usize) -> Result<Txid, RpcError> {
    parse_hex32(p, index, "txid").map(Txid)
}

/// A 32-byte hash parameter.
pub(crate) fn param_hash(p: &Params, index: usize, name: &str) -> Result<Hash256, RpcError> {
    parse_hex32(p, index, name).map(Hash256)
}

/// A hex-string parameter, decoded (-22 with `what` if not hex).
pub(crate) fn param_hex(p: &Params, index: usize, what: &str) -> Result<Vec<u8>, RpcError> {
    let s: String = p.required(index)?;
    hex::decode(s.trim()).map_err(|_| RpcError::deserialization(format!("{what} decode failed")))
}

/// A transaction from the mempool, if there is one with `txid`.
pub(crate) fn mempool_tx(node: &Node, txid: &Txid) -> Option<rnet_primitives::Transaction> {
    node.mempool().get(txid).map(|e| e.tx.clone())
}
