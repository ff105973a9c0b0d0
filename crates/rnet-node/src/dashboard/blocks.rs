//! `/blocks` (the latest blocks, `?before=HEIGHT` pages back) and `/block/HASH`: a block's
//! miner, improvement against its requirement, reward, subsidy and fees, transactions, and the
//! evaluation sample it was judged on (Proof-of-Training v2: the corpus records its checkpoint
//! root drew, shown as text).

use axum::extract::{Path, RawQuery, State};
use axum::response::Html;
use rnet_consensus::sample::{sample_indices, sample_seed};
use rnet_primitives::{Address, Amount, Block, BlockHash, Network, Transaction};
use serde_json::{Value, json};

use super::html::{self, Nav, block_link, escape, tx_link};
use super::source::Source;
use super::{PageError, PageResult, parse_id};
use crate::node::Node;

/// Blocks per page of `/blocks`.
pub const PAGE_BLOCKS: u32 = 50;

/// One row of a block list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRow {
    /// Height.
    pub height: u32,
    /// Block id (hex).
    pub hash: String,
    /// Header time.
    pub time: u64,
    /// `parent_loss − val_loss`.
    pub improvement: u64,
    /// The effective required improvement.
    pub required: u64,
    /// The checkpoint's loss on its sample.
    pub val_loss: u64,
    /// Transactions, coinbase included.
    pub txs: usize,
    /// The coinbase's output addresses.
    pub miner: Vec<String>,
}

/// The addresses the coinbase pays (outputs of non-zero value whose script has an address).
pub fn coinbase_addresses(block: &Block, network: Network) -> Vec<String> {
    block
        .transactions
        .first()
        .map(|cb| {
            cb.outputs
                .iter()
                .filter(|o| o.value.0 > 0)
                .filter_map(|o| Address::from_script_pubkey(&o.script_pubkey, network).ok())
                .map(|a| a.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The sum of a transaction's outputs.
pub fn output_total(tx: &Transaction) -> Amount {
    Amount(tx.outputs.iter().fold(0u64, |a, o| a.saturating_add(o.value.0)))
}

/// Rows for the `n` active blocks at and below `before` (default: the tip), newest first.
fn rows(node: &Node, n: u32, before: Option<u32>) -> Result<Vec<BlockRow>, PageError> {
    let internal = |e: rnet_chain::ChainError| PageError::Internal(e.to_string());
    let tip = node.reader.tip().map_err(internal)?.height;
    let top = before.map_or(tip, |b| b.min(tip));
    let mut out = Vec::new();
    for height in (top.saturating_sub(n.saturating_sub(1))..=top).rev() {
        let Some(hash) = node.reader.block_hash_at(height).map_err(internal)? else { continue };
        let Some(block) = node.reader.block(&hash).map_err(internal)? else { continue };
        let h = &block.header;
        out.push(BlockRow {
            height,
            hash: hash.to_hex(),
            time: h.time,
            improvement: h.parent_loss.saturating_sub(h.val_loss),
            required: h.required_improvement,
            val_loss: h.val_loss,
            txs: block.transactions.len(),
            miner: coinbase_addresses(&block, node.network()),
        });
    }
    Ok(out)
}

/// The table of the `n` latest blocks at and below `before`.
pub async fn latest_table(
    source: &Source,
    n: u32,
    before: Option<u32>,
) -> Result<String, PageError> {
    let rows = source.blocking(move |node| rows(node, n, before)).await?;
    let mut out = String::from(
        "<table id=\"blocks\"><tr><th>Height</th><th>Block</th><th>Time</th><th>Improvement / required (µnat)</th>\
         <th>Loss (µnat/byte)</th><th>Txs</th><th>Miner</th></tr>",
    );
    for r in &rows {
        out.push_str(&format!(
            "<tr class=\"block-row\"><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            r.height,
            block_link(&r.hash),
            escape(&html::utc(r.time)),
            r.improvement,
            r.required,
            r.val_loss,
            r.txs,
            escape(&r.miner.join(", "))
        ));
    }
    out.push_str("</table>");
    Ok(out)
}

/// `/blocks`.
pub async fn list(State(source): State<Source>, RawQuery(query): RawQuery) -> PageResult {
    let before = match html::query_param(query.as_deref(), "before") {
        None => None,
        Some(v) => Some(v.parse::<u32>().map_err(|_| {
            PageError::BadRequest(format!("before must be a block height, not {v:?}"))
        })?),
    };
    let table = latest_table(&source, PAGE_BLOCKS, before).await?;
    let tip = source.rpc("getblockcount", json!([])).await.ok().and_then(|v| v.as_u64());
    let top = before.map(u64::from).or(tip).unwrap_or(0);
    let older = if top >= u64::from(PAGE_BLOCKS) {
        format!(
            "<p><a href=\"/blocks?before={}\">Older blocks</a></p>",
            top - u64::from(PAGE_BLOCKS)
        )
    } else {
        String::new()
    };
    let body = format!("<h1>Blocks</h1>{table}{older}");
    Ok(Html(html::page("Blocks", Nav::Blocks, &body, true, before.is_none())))
}

/// What a block page needs beyond `getblockheader`, read from the stored block.
struct BlockDetail {
    block: Block,
    /// The subsidy the block could claim (`None` for genesis).
    subsidy: Option<Amount>,
    /// Whether the sample's records are exactly the ones the header's seed draws.
    drawn: bool,
    seed: [u8; 32],
    window: usize,
}

fn detail(node: &Node, hash: &BlockHash) -> Result<BlockDetail, PageError> {
    let internal = |e: rnet_chain::ChainError| PageError::Internal(e.to_string());
    let block = node.reader.block(hash).map_err(internal)?.ok_or_else(|| {
        PageError::NotFound(format!("block {hash} is not stored (not fully downloaded)"))
    })?;
    let h = &block.header;
    let subsidy = if h.height == 0 {
        None
    } else {
        node.reader.header_summary(&h.prev_block_hash).map_err(internal)?.map(|parent| {
            rnet_consensus::block_subsidy(
                &node.params,
                parent.circulating_supply,
                h.parent_loss.saturating_sub(h.val_loss),
                h.required_improvement,
            )
        })
    };
    let indices: Vec<u64> = block.sample.records.iter().map(|r| u64::from(r.index)).collect();
    let drawn = h.height > 0 && indices == sample_indices(&node.params, h);
    let seed = sample_seed(&h.prev_block_hash, &h.checkpoint_root, &h.miner_pubkey);
    Ok(BlockDetail { block, subsidy, drawn, seed, window: node.params.genesis_model.window })
}

fn row(key: &str, id: &str, value_html: &str) -> String {
    format!("<tr><th>{}</th><td id=\"{}\">{value_html}</td></tr>", escape(key), escape(id))
}

/// `/block/HASH`.
pub async fn page(State(source): State<Source>, Path(hash): Path<String>) -> PageResult {
    let id: BlockHash = parse_id("block hash", &hash)?;
    let head = source.rpc("getblockheader", json!([id.to_hex(), true])).await?;
    let d = source.blocking(move |node| detail(node, &id)).await?;
    let h = &d.block.header;
    let hex = id.to_hex();
    let improvement = h.parent_loss.saturating_sub(h.val_loss);
    let ratio = improvement as f64 / h.required_improvement.max(1) as f64;
    let reward = d.block.transactions.first().map(output_total).unwrap_or(Amount::ZERO);
    let miner = coinbase_addresses(&d.block, source.node.network());
    let link = |v: &Value| v.as_str().map(block_link).unwrap_or_else(|| "none".into());
    let (subsidy, fees) = match d.subsidy {
        Some(s) => (s.to_string(), Amount(reward.0.saturating_sub(s.0)).to_string()),
        None => ("n/a (genesis)".into(), "n/a".into()),
    };
    let mut body = format!("<h1>Block {}</h1><table>", h.height);
    for r in [
        row("Hash", "hash", &format!("<span class=\"mono\">{}</span>", escape(&hex))),
        row("Previous", "prev", &link(&head["previousblockhash"])),
        row("Next", "next", &link(&head["nextblockhash"])),
        row("Confirmations", "confirmations", &escape(&head["confirmations"].to_string())),
        row("Time", "time", &escape(&html::utc(h.time))),
        row(
            "Miner (coinbase)",
            "miner",
            &format!("<span class=\"mono\">{}</span>", escape(&miner.join(", "))),
        ),
        row(
            "Miner key",
            "miner-key",
            &format!("<span class=\"mono\">{}</span>", hex::encode(h.miner_pubkey)),
        ),
        row("Loss on its sample", "val-loss", &escape(&html::loss(h.val_loss))),
        row("Parent's loss on it", "parent-loss", &escape(&html::loss(h.parent_loss))),
        row(
            "Improvement / required",
            "improvement",
            &format!("{improvement} / {} µnat ({ratio:.2}×)", h.required_improvement),
        ),
        row("Loss index after it", "loss-index", &escape(&head["loss_index"].to_string())),
        row(
            "Chainwork",
            "chainwork",
            &format!(
                "<span class=\"mono\">{}</span>",
                escape(head["chainwork"].as_str().unwrap_or(""))
            ),
        ),
        row("Reward claimed (RNT)", "reward", &reward.to_string()),
        row("Subsidy allowed (RNT)", "subsidy", &escape(&subsidy)),
        row("Fees (reward − subsidy)", "fees", &escape(&fees)),
        row("Model shape", "shape", &format!("d={} L={}", h.shape.d_model, h.shape.n_layers)),
        row(
            "Checkpoint",
            "checkpoint",
            &format!(
                "<span class=\"mono\">{}</span> ({})",
                h.checkpoint_root.to_hex(),
                escape(&html::bytes(h.checkpoint_size))
            ),
        ),
        row("Training steps (declared)", "steps", &h.training_steps.to_string()),
        row("Transactions", "ntx", &d.block.transactions.len().to_string()),
    ] {
        body.push_str(&r);
    }
    body.push_str("</table><h2>Transactions</h2><table id=\"txs\"><tr><th>#</th><th>Txid</th><th>Inputs</th><th>Outputs</th><th>Output total (RNT)</th></tr>");
    for (i, tx) in d.block.transactions.iter().enumerate() {
        let kind = if tx.is_coinbase() { " (coinbase)" } else { "" };
        body.push_str(&format!(
            "<tr><td>{i}{kind}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            tx_link(&tx.txid().to_hex(), Some(&hex)),
            tx.inputs.len(),
            tx.outputs.len(),
            output_total(tx)
        ));
    }
    body.push_str("</table>");
    body.push_str(&sample_html(&d));
    Ok(Html(html::page(&format!("Block {}", h.height), Nav::Blocks, &body, false, false)))
}

/// "What was this block judged on": the evaluation sample's records as text.
fn sample_html(d: &BlockDetail) -> String {
    let records = &d.block.sample.records;
    if d.block.header.height == 0 {
        return "<h2>Evaluation sample</h2><p class=\"note\">The genesis block is not judged.</p>"
            .into();
    }
    let check = if d.drawn {
        "exactly the records the header's seed draws"
    } else {
        "NOT the records the header's seed draws"
    };
    let mut out = format!(
        "<h2>Evaluation sample: what this block was judged on</h2>\
         <p class=\"note\">After the weights were fixed, the seed Keccak-256d(\"RNET/sample/v1\" ‖ parent ‖ \
         checkpoint root ‖ miner key) = <span class=\"mono\">{}</span> drew these {} corpus windows of {} bytes \
         ({check}); parent and new model were both evaluated on them, and the header's losses are their \
         averages.</p><div id=\"sample\">",
        hex::encode(d.seed),
        records.len(),
        d.window + 1
    );
    for r in records {
        out.push_str(&format!(
            "<div class=\"record\"><span class=\"note\">record {} (corpus bytes {}…)</span><pre class=\"win\">{}</pre></div>",
            r.index,
            u64::from(r.index) * d.window as u64,
            html::escape_bytes(&r.bytes)
        ));
    }
    out.push_str("</div>");
    out
}
