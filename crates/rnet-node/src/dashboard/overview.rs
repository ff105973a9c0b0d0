//! `/`: the overview. Height, tip, chainwork and losses from `getblockchaininfo`; mining state
//! and requirement from `getmininginfo`; mempool from `getmempoolinfo`; peers from
//! `getconnectioncount`; the training rate from `gettraininginfo`; the latest blocks.

use axum::extract::State;
use axum::response::Html;
use serde_json::{Value, json};

use super::html::{self, Nav, card, escape};
use super::source::Source;
use super::{PageResult, blocks};

/// Blocks of history the training rate is measured over.
pub const RATE_BLOCKS: u64 = 20;

/// Blocks listed on the overview.
const LATEST: u32 = 10;

/// Training bytes per step of this node's miner: its batch windows times the window length.
pub fn bytes_per_step(node: &crate::node::Node) -> u64 {
    let miner =
        rnet_miner::Miner::new(node.params.clone(), node.miner_key.clone(), node.mine_data.clone());
    (miner.train.batch_windows * node.params.genesis_model.window) as u64
}

/// Bytes trained per second over `history` (`gettraininginfo` entries, oldest first): the
/// training steps the blocks after the first declare, times `bytes_per_step`, over the time from
/// the first block to the last. `None` with fewer than two blocks or no elapsed time.
pub fn training_rate(history: &[Value], bytes_per_step: u64) -> Option<f64> {
    let (first, last) = (history.first()?, history.last()?);
    let elapsed = last["time"].as_u64()?.checked_sub(first["time"].as_u64()?)?;
    if history.len() < 2 || elapsed == 0 {
        return None;
    }
    let steps: u64 = history[1..].iter().filter_map(|b| b["training_steps"].as_u64()).sum();
    Some(steps as f64 * bytes_per_step as f64 / elapsed as f64)
}

/// Renders a JSON value for a card: strings bare, `null` as "n/a".
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "n/a".into(),
        other => other.to_string(),
    }
}

/// The overview page.
pub async fn page(State(source): State<Source>) -> PageResult {
    let info = source.rpc("getblockchaininfo", json!([])).await?;
    let mining = source.rpc("getmininginfo", json!([])).await?;
    let mempool = source.rpc("getmempoolinfo", json!([])).await?;
    // Without a running P2P layer the method fails: show n/a rather than fail the page.
    let peers = source.rpc("getconnectioncount", json!([])).await.map_or(Value::Null, |v| v);
    let history = source.rpc("gettraininginfo", json!([RATE_BLOCKS])).await?;
    let per_step = source.blocking(|node| Ok(bytes_per_step(node))).await?;
    let rate = history
        .as_array()
        .and_then(|h| training_rate(h, per_step))
        .map_or_else(|| "n/a".to_string(), |r| format!("{r:.0}"));
    let latest = blocks::latest_table(&source, LATEST, None).await?;
    let benchmark = match &info["benchmark_loss"] {
        Value::Number(n) => n.as_u64().map_or_else(|| n.to_string(), html::loss),
        _ => "pending".to_string(),
    };
    let loss = info["val_loss"].as_u64().map_or_else(|| "n/a".into(), html::loss);
    let loss_index = info["loss_index"].as_u64().map_or_else(|| "n/a".into(), html::loss);
    let shape =
        format!("d={} L={}", text(&info["shape"]["d_model"]), text(&info["shape"]["n_layers"]));
    let cards = [
        card("height", "Height", &text(&info["blocks"])),
        card("headers", "Headers", &text(&info["headers"])),
        card("peers", "Peers", &text(&peers)),
        card("mempool-size", "Mempool transactions", &text(&mempool["size"])),
        card("mempool-bytes", "Mempool bytes", &text(&mempool["bytes"])),
        card(
            "mining",
            "Mining (in-node miner)",
            if mining["mining"] == json!(true) { "yes" } else { "no" },
        ),
        card("train-rate", "Bytes trained per second", &rate),
        card("required", "Required improvement (µnat)", &text(&mining["required_improvement"])),
        card("val-loss", "Tip loss on its sample", &loss),
        card("loss-index", "Loss index", &loss_index),
        card("benchmark", "Benchmark loss (held-out)", &benchmark),
        card("shape", "Model shape", &shape),
        card("supply", "Circulating supply (RNT)", &text(&info["circulating_supply"])),
        card("ibd", "Initial block download", &text(&info["initialblockdownload"])),
    ];
    let body = format!(
        "<h1>Node overview <span class=\"note\">{chain}</span></h1>\
         <div class=\"grid\">{cards}</div>\
         <h2>Tip</h2><table><tr><th>Tip hash</th><td class=\"mono\" id=\"tip\"><a href=\"/block/{tip}\">{tip}</a></td></tr>\
         <tr><th>Chainwork</th><td class=\"mono\" id=\"chainwork\">{chainwork}</td></tr></table>\
         <p class=\"note\">Bytes trained per second: training steps declared by the last {RATE_BLOCKS} blocks \
         × {per_step} bytes per step, over the time between them.</p>\
         <h2>Latest blocks</h2>{latest}<p><a href=\"/blocks\">All blocks</a></p>",
        chain = escape(&text(&info["chain"])),
        cards = cards.concat(),
        tip = escape(&text(&info["bestblockhash"])),
        chainwork = escape(&text(&info["chainwork"])),
    );
    Ok(Html(html::page("Overview", Nav::Overview, &body, true, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_rate_counts_the_steps_after_the_first_block() {
        let h = |time: u64, steps: u64| json!({ "time": time, "training_steps": steps });
        let history = [h(100, 999), h(104, 10), h(110, 30)];
        assert_eq!(training_rate(&history, 8), Some(40.0 * 8.0 / 10.0));
        assert_eq!(training_rate(&history[..1], 8), None, "one block has no interval");
        assert_eq!(training_rate(&[h(100, 1), h(100, 2)], 8), None, "no elapsed time");
        assert_eq!(training_rate(&[], 8), None);
    }

    #[test]
    fn card_text_of_json_values() {
        assert_eq!(text(&json!("abc")), "abc");
        assert_eq!(text(&json!(12)), "12");
        assert_eq!(text(&Value::Null), "n/a");
    }
}
