//! `/tx/TXID` (`?block=HASH` to name the block that holds it): a transaction from
//! `getrawtransaction`: its inputs, outputs and addresses, and where it was confirmed. Without
//! `?block` and without `-txindex`, the last [`SCAN_BLOCKS`] active blocks are searched.

use axum::extract::{Path, RawQuery, State};
use axum::response::Html;
use rnet_primitives::{BlockHash, Txid};
use serde_json::{Value, json};

use super::html::{self, Nav, block_link, escape, tx_link};
use super::source::Source;
use super::{PageError, PageResult, parse_id};

/// Recent blocks searched for a transaction when no block is named and there is no txindex.
pub const SCAN_BLOCKS: u32 = 100;

/// The active block among the last [`SCAN_BLOCKS`] that holds `txid`.
fn scan(node: &crate::node::Node, txid: &Txid) -> Result<Option<BlockHash>, PageError> {
    let internal = |e: rnet_chain::ChainError| PageError::Internal(e.to_string());
    let tip = node.reader.tip().map_err(internal)?.height;
    for height in (tip.saturating_sub(SCAN_BLOCKS - 1)..=tip).rev() {
        let Some(hash) = node.reader.block_hash_at(height).map_err(internal)? else { continue };
        let Some(block) = node.reader.block(&hash).map_err(internal)? else { continue };
        if block.transactions.iter().any(|t| t.txid() == *txid) {
            return Ok(Some(hash));
        }
    }
    Ok(None)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `/tx/TXID`.
pub async fn page(
    State(source): State<Source>,
    Path(txid): Path<String>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let id: Txid = parse_id("txid", &txid)?;
    let block = match html::query_param(query.as_deref(), "block") {
        Some(b) => Some(parse_id::<BlockHash>("block hash", b)?),
        None => None,
    };
    let lookup = |block: Option<BlockHash>| {
        let params = match block {
            Some(b) => json!([id.to_hex(), true, b.to_hex()]),
            None => json!([id.to_hex(), true]),
        };
        let source = source.clone();
        async move { source.rpc("getrawtransaction", params).await }
    };
    let tx = match lookup(block).await {
        Err(PageError::NotFound(_)) if block.is_none() => {
            match source.blocking(move |node| scan(node, &id)).await? {
                Some(found) => lookup(Some(found)).await?,
                None => {
                    return Err(PageError::NotFound(format!(
                        "transaction {} is not in the mempool or the last {SCAN_BLOCKS} blocks \
                         (name its block with ?block=HASH, or run the node with -txindex)",
                        id.to_hex()
                    )));
                }
            }
        }
        other => other?,
    };
    let mut body = format!(
        "<h1>Transaction</h1><table><tr><th>Txid</th><td class=\"mono\" id=\"txid\">{}</td></tr>\
         <tr><th>Witness id</th><td class=\"mono\">{}</td></tr><tr><th>Size</th><td>{} bytes</td></tr>",
        escape(&text(&tx["txid"])),
        escape(&text(&tx["hash"])),
        escape(&text(&tx["size"])),
    );
    match tx["blockhash"].as_str() {
        Some(b) => body.push_str(&format!(
            "<tr><th>Block</th><td id=\"block\">{}</td></tr><tr><th>Confirmations</th><td>{}</td></tr>",
            block_link(b),
            escape(&text(&tx["confirmations"]))
        )),
        None => body.push_str("<tr><th>Block</th><td id=\"block\">unconfirmed (mempool)</td></tr>"),
    }
    body.push_str("</table><h2>Inputs</h2><table id=\"vin\"><tr><th>#</th><th>Spends</th></tr>");
    for (i, input) in tx["vin"].as_array().into_iter().flatten().enumerate() {
        let spends = match input["txid"].as_str() {
            Some(prev) => format!("{}:{}", tx_link(prev, None), escape(&text(&input["vout"]))),
            None => format!(
                "coinbase <span class=\"mono\">{}</span>",
                escape(&text(&input["coinbase"]))
            ),
        };
        body.push_str(&format!("<tr><td>{i}</td><td>{spends}</td></tr>"));
    }
    body.push_str("</table><h2>Outputs</h2><table id=\"vout\"><tr><th>#</th><th>Value (RNT)</th><th>Address</th><th>Script</th></tr>");
    for output in tx["vout"].as_array().into_iter().flatten() {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            escape(&text(&output["n"])),
            escape(&text(&output["value"])),
            escape(&text(&output["scriptPubKey"]["address"])),
            escape(&text(&output["scriptPubKey"]["hex"])),
        ));
    }
    body.push_str("</table>");
    Ok(Html(html::page("Transaction", Nav::Blocks, &body, false, false)))
}
