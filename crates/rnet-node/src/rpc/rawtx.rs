//! Raw transaction methods: decode, and lookup in the mempool, in a given block, or (with
//! `-txindex`) through the transaction index, as Bitcoin Core does.

use std::sync::Arc;

use rnet_chain::ChainError;
use rnet_primitives::Transaction;
use rnet_rpc::{MethodInfo, RegisterError, Registry, RpcError};
use serde_json::{Value, json};

use super::json::tx_json;
use super::{chain_err, param_block_hash, param_hex, param_txid, reg};
use crate::node::Node;

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
                 verbose) from the mempool, the given block, or (with -txindex) any block of the active chain.",
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
            // Read snapshots only: a lookup never takes the chain lock.
            let chain = &node.reader;
            let found = match blockhash {
                Some(h) => {
                    if chain.header(&h).map_err(chain_err)?.is_none() {
                        return Err(RpcError::invalid_address_or_key("Block hash not found"));
                    }
                    chain
                        .block(&h)
                        .map_err(chain_err)?
                        .and_then(|b| b.transactions.into_iter().find(|t| t.txid() == txid))
                        .map(|tx| (tx, h))
                }
                None => match chain.indexed_transaction(&txid) {
                    Ok(found) => found,
                    Err(ChainError::NoTxIndex) => {
                        return Err(RpcError::invalid_address_or_key(
                            "No such mempool transaction. Use -txindex or provide a block hash to enable \
                             blockchain transaction queries. Use gettransaction for wallet transactions.",
                        ));
                    }
                    Err(e) => return Err(chain_err(e)),
                },
            };
            if let Some((tx, hash)) = found {
                if !verbose {
                    return Ok(json!(hex::encode(tx.to_bytes())));
                }
                let header = chain
                    .header(&hash)
                    .map_err(chain_err)?
                    .ok_or_else(|| RpcError::invalid_address_or_key("Block hash not found"))?;
                let tip = chain.tip().map_err(chain_err)?;
                let active = chain.block_hash_at(header.height).map_err(chain_err)? == Some(hash);
                let mut o = tx_json(&tx, node.network());
                o["blockhash"] = json!(hash.to_hex());
                o["in_active_chain"] = json!(active);
                o["blocktime"] = json!(header.time);
                o["time"] = json!(header.time);
                o["confirmations"] = json!(if active {
                    i64::from(tip.height) - i64::from(header.height) + 1
                } else {
                    0
                });
                return Ok(o);
            }
            Err(RpcError::invalid_address_or_key(
                "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
            ))
        },
    )?;
    Ok(())
}
