//! Raw transaction methods: decode, and lookup in blocks (by `blockhash`, or by scanning the
//! active chain from the tip — a simple stand-in for a transaction index).

use std::sync::Arc;

use rnet_primitives::Transaction;
use rnet_rpc::{MethodInfo, RegisterError, Registry, RpcError};
use serde_json::{Value, json};

use super::json::tx_json;
use super::{chain_err, param_block_hash, param_hex, param_txid, reg};
use crate::node::Node;

/// Most blocks `getrawtransaction` scans without a `blockhash`.
pub const MAX_SCAN_BLOCKS: u32 = 10_000;

pub(super) fn register(r: &mut Registry, node: &Arc<Node>) -> Result<(), RegisterError> {
    reg(
        r,
        node,
        MethodInfo::new("decoderawtransaction", "Rawtransactions").params(["hexstring"]).help(
            "decoderawtransaction \"hexstring\"\n\nReturn a JSON object representing the serialized, hex-encoded transaction.",
        ),
        |node, p| {
            let bytes = param_hex(p, 0, "TX")?;
            let tx = Transaction::from_bytes(&bytes)
                .map_err(|_| RpcError::deserialization("TX decode failed"))?;
            Ok(tx_json(&tx, node.network()))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getrawtransaction", "Rawtransactions")
            .params(["txid", "verbose", "blockhash"])
            .help(
                "getrawtransaction \"txid\" ( verbose \"blockhash\" )\n\nReturn the raw transaction (hex, or JSON with \
                 verbose) from the mempool, the given block, or the last 10000 blocks of the active chain.",
            ),
        |node, p| {
            let txid = param_txid(p, 0)?;
            let verbose = match p.get(1) {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(v) => v.as_u64().is_some_and(|n| n > 0),
            };
            let blockhash = match p.get(2) {
                None | Some(Value::Null) => None,
                Some(_) => Some(param_block_hash(p, 2)?),
            };
            if let Some(tx) = crate::rpc::mempool_tx(node, &txid) {
                return Ok(if verbose { tx_json(&tx, node.network()) } else { json!(hex::encode(tx.to_bytes())) });
            }
            let chain = node.chain();
            let candidates: Vec<_> = match blockhash {
                Some(h) => {
                    if chain.header(&h).map_err(chain_err)?.is_none() {
                        return Err(RpcError::invalid_address_or_key("Block hash not found"));
                    }
                    vec![h]
                }
                None => {
                    let tip = chain.height();
                    let lowest = tip.saturating_sub(MAX_SCAN_BLOCKS);
                    let mut v = Vec::new();
                    for h in (lowest..=tip).rev() {
                        if let Some(hash) = chain.block_hash_at(h).map_err(chain_err)? {
                            v.push(hash);
                        }
                    }
                    v
                }
            };
            for hash in candidates {
                let Some(block) = chain.block(&hash).map_err(chain_err)? else { continue };
                if let Some(tx) = block.transactions.iter().find(|t| t.txid() == txid) {
                    if !verbose {
                        return Ok(json!(hex::encode(tx.to_bytes())));
                    }
                    let mut o = tx_json(tx, node.network());
                    let active = chain.block_hash_at(block.header.height).map_err(chain_err)? == Some(hash);
                    o["blockhash"] = json!(hash.to_hex());
                    o["in_active_chain"] = json!(active);
                    o["blocktime"] = json!(block.header.time);
                    o["time"] = json!(block.header.time);
                    o["confirmations"] = json!(if active {
                        i64::from(chain.height()) - i64::from(block.header.height) + 1
                    } else {
                        0
                    });
                    return Ok(o);
                }
            }
            Err(RpcError::invalid_address_or_key(
                "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
            ))
        },
    )?;
    Ok(())
}
