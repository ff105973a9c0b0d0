//! Mempool methods: `sendrawtransaction`, `testmempoolaccept`, `getmempoolinfo`,
//! `getrawmempool`, `getmempoolentry`, `estimatesmartfee`.

use std::sync::Arc;

use rnet_mempool::{FeeRate, MempoolEntry, MempoolError};
use rnet_primitives::{Amount, Transaction};
use rnet_rpc::{MethodInfo, RegisterError, Registry, RpcError};
use serde_json::{Value, json};

use super::json::amount_json;
use super::{chain_err, param_hex, param_txid, reg};
use crate::node::Node;
use crate::tx_accept::SubmitTxError;

/// A fee rate in RNT per kB, as Core renders `feerate`.
fn feerate_json(r: FeeRate) -> Value {
    amount_json(Amount(r.as_per_kb()))
}

/// Core's reject reason for a mempool error.
fn reject_reason(e: &MempoolError) -> String {
    match e {
        MempoolError::MissingInputs { .. } => "bad-txns-inputs-missingorspent".to_string(),
        MempoolError::AlreadyInMempool(_) => "txn-already-in-mempool".to_string(),
        MempoolError::AlreadyConfirmed(_) => "txn-already-known".to_string(),
        MempoolError::MempoolFull => "mempool full".to_string(),
        other => other.to_string(),
    }
}

fn entry_json(e: &MempoolEntry) -> Value {
    json!({
        "vsize": e.size,
        "size": e.size,
        "time": e.time,
        "height": e.height,
        "fees": {
            "base": amount_json(e.fee),
            "ancestor": amount_json(e.ancestor_fees),
            "descendant": amount_json(e.descendant_fees),
        },
        "ancestorcount": e.ancestor_count,
        "ancestorsize": e.ancestor_size,
        "descendantcount": e.descendant_count,
        "descendantsize": e.descendant_size,
        "wtxid": e.wtxid.to_hex(),
    })
}

fn decode_tx(hex: &[u8]) -> Result<Transaction, RpcError> {
    Transaction::from_bytes(hex).map_err(|_| RpcError::deserialization("TX decode failed"))
}

pub(super) fn register(r: &mut Registry, node: &Arc<Node>) -> Result<(), RegisterError> {
    reg(
        r,
        node,
        MethodInfo::new("sendrawtransaction", "Rawtransactions")
            .params(["hexstring", "maxfeerate"])
            .help(
                "sendrawtransaction \"hexstring\" ( maxfeerate )\n\nSubmit a raw transaction to the mempool. Returns the txid.",
            ),
        |node, p| {
            let tx = decode_tx(&param_hex(p, 0, "TX")?)?;
            let txid = tx.txid();
            let rejected = match node.submit_transaction(tx) {
                Ok(res) => return Ok(json!(res.txid.to_hex())),
                Err(SubmitTxError::Chain(e)) => return Err(chain_err(e)),
                Err(SubmitTxError::Rejected(e)) => e,
            };
            match rejected {
                MempoolError::AlreadyInMempool(_) => Ok(json!(txid.to_hex())),
                MempoolError::AlreadyConfirmed(_) => {
                    Err(RpcError::already_in_chain("Transaction already in block chain"))
                }
                e @ MempoolError::MissingInputs { .. } => Err(RpcError::verify(reject_reason(&e))),
                e => Err(RpcError::verify_rejected(reject_reason(&e))),
            }
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("testmempoolaccept", "Rawtransactions")
            .params(["rawtxs", "maxfeerate"])
            .help(
                "testmempoolaccept [\"rawtx\",...] ( maxfeerate )\n\nReturns whether each raw transaction would be \
                 accepted by the mempool (txid, wtxid, allowed, vsize, fees or reject-reason).",
            ),
        |node, p| {
            let raws: Vec<String> = p.required(0)?;
            if raws.is_empty() || raws.len() > 25 {
                return Err(RpcError::invalid_parameter("Array must contain between 1 and 25 transactions."));
            }
            let mut txs = Vec::new();
            for raw in &raws {
                let bytes =
                    hex::decode(raw).map_err(|_| RpcError::deserialization("TX decode failed"))?;
                txs.push(decode_tx(&bytes)?);
            }
            let chain = node.chain();
            let utxos = chain.utxo_snapshot().map_err(chain_err)?;
            let tip = node.tip_context(&chain).map_err(chain_err)?;
            let pool = node.mempool();
            let out: Vec<Value> = txs
                .iter()
                .map(|tx| match pool.test_accept(tx, &utxos, &tip, node.now()) {
                    Ok(r) => json!({
                        "txid": r.txid.to_hex(),
                        "wtxid": r.wtxid.to_hex(),
                        "allowed": true,
                        "vsize": r.size,
                        "fees": { "base": amount_json(r.fee) },
                    }),
                    Err(e) => json!({
                        "txid": tx.txid().to_hex(),
                        "wtxid": tx.wtxid().to_hex(),
                        "allowed": false,
                        "reject-reason": reject_reason(&e),
                    }),
                })
                .collect();
            Ok(json!(out))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getmempoolinfo", "Blockchain")
            .help("getmempoolinfo\n\nReturns details on the active state of the TX memory pool."),
        |node, _| {
            let i = node.mempool().info();
            Ok(json!({
                "loaded": true,
                "size": i.size,
                "bytes": i.bytes,
                "usage": i.usage,
                "total_fee": amount_json(i.total_fee),
                "maxmempool": i.max_mempool,
                "mempoolminfee": feerate_json(i.mempool_min_fee),
                "minrelaytxfee": feerate_json(i.min_relay_tx_fee),
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getrawmempool", "Blockchain").params(["verbose"]).help(
            "getrawmempool ( verbose )\n\nReturns all transaction ids in memory pool (verbose: an object of entries).",
        ),
        |node, p| {
            let verbose: bool = p.optional_or(0, false)?;
            let pool = node.mempool();
            let mut txids = pool.txids();
            txids.sort();
            if !verbose {
                return Ok(json!(txids.iter().map(|t| t.to_hex()).collect::<Vec<_>>()));
            }
            let mut o = serde_json::Map::new();
            for t in txids {
                if let Some(e) = pool.get(&t) {
                    o.insert(t.to_hex(), entry_json(e));
                }
            }
            Ok(Value::Object(o))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getmempoolentry", "Blockchain")
            .params(["txid"])
            .help("getmempoolentry \"txid\"\n\nReturns mempool data for given transaction."),
        |node, p| {
            let txid = param_txid(p, 0)?;
            let pool = node.mempool();
            pool.get(&txid)
                .map(entry_json)
                .ok_or_else(|| RpcError::invalid_address_or_key("Transaction not in mempool"))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("estimatesmartfee", "Util").params(["conf_target", "estimate_mode"]).help(
            "estimatesmartfee conf_target ( \"estimate_mode\" )\n\nEstimates the fee rate (RNT/kB) for confirmation \
             within conf_target blocks.",
        ),
        |node, p| {
            let target: i64 = p.required(0)?;
            let target = u32::try_from(target)
                .ok()
                .filter(|t| (1..=1008).contains(t))
                .ok_or_else(|| RpcError::invalid_parameter("Invalid conf_target, must be between 1 and 1008"))?;
            Ok(match node.mempool().estimate_fee(target) {
                Some(rate) => json!({ "feerate": feerate_json(rate), "blocks": target }),
                None => json!({ "errors": ["Insufficient data or no feerate found"], "blocks": target }),
            })
        },
    )?;
    Ok(())
}
