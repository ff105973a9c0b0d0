//! JSON renderings of headers, blocks and transactions (Bitcoin Core field names plus the
//! Proof-of-Training fields), and `submitblock` rejection reasons. Blocks can also be written
//! as a stream ([`write_block_json`]): the same bytes `serde_json` gives for [`block_json`], one
//! transaction at a time.

use std::io::{self, Write};

use rnet_chain::{ChainError, ChainReader};
use rnet_consensus::{BlockError, median_time_past};
use rnet_miner::{loss_bits, loss_nats};
use rnet_primitives::encode::{Encode, compact_size_len};
use rnet_primitives::{Address, Amount, Block, BlockHash, BlockHeader, Network, Transaction};
use serde_json::{Value, json};

/// An amount as Core renders it: RNT as a JSON number with 8 decimals.
pub fn amount_json(a: Amount) -> Value {
    // Exact for every valid amount at 8 decimals: parse the fixed-point rendering.
    a.to_string().parse::<f64>().map(|f| json!(f)).unwrap_or(Value::Null)
}

/// Core-style short reason for a rejected block, followed by the detail.
pub fn reject_reason(e: &BlockError) -> String {
    let code = match e {
        BlockError::ValLossMismatch { .. } => "bad-val-loss",
        BlockError::InsufficientImprovement { .. } => "bad-improvement",
        BlockError::BadMerkleRoot => "bad-txnmrklroot",
        BlockError::MutatedMerkle => "bad-txns-duplicate",
        BlockError::BadMinerKey | BlockError::BadMinerSignature => "bad-miner-signature",
        BlockError::BadVersion(_) => "bad-version",
        BlockError::TimeTooOld { .. } => "time-too-old",
        BlockError::TimeTooNew { .. } => "time-too-new",
        BlockError::BadHeight { .. } => "bad-height",
        BlockError::BadShape { .. } => "bad-shape",
        BlockError::BadRequiredImprovement { .. } => "bad-required-improvement",
        BlockError::CoinbaseTooLarge { .. } => "bad-cb-amount",
        BlockError::NoTransactions | BlockError::FirstNotCoinbase => "bad-cb-missing",
        BlockError::MultipleCoinbase { .. } => "bad-cb-multiple",
        BlockError::Oversize { .. } => "bad-blk-length",
        BlockError::Transaction { .. } | BlockError::DuplicateTransaction { .. } => "bad-txns",
        BlockError::MissingCheckpoint => "missing-checkpoint",
        BlockError::MissingUpdate => "missing-update",
        BlockError::UpdateSizeMismatch { .. }
        | BlockError::UpdateRootMismatch
        | BlockError::BadUpdateSize { .. }
        | BlockError::InvalidUpdate(_)
        | BlockError::BadUpdate(_) => "bad-update",
        BlockError::CheckpointSizeMismatch { .. }
        | BlockError::CheckpointRootMismatch
        | BlockError::BadCheckpointSize { .. }
        | BlockError::InvalidCheckpoint(_)
        | BlockError::CheckpointHeightMismatch { .. }
        | BlockError::CheckpointConfigMismatch => "bad-checkpoint",
        _ => "invalid",
    };
    format!("{code}: {e}")
}

/// The `submitblock` result string for a chainstate error (`None`: not a rejection).
pub fn chain_reject_reason(e: &ChainError) -> Option<String> {
    Some(match e {
        ChainError::InvalidBlock { reason, .. } => reject_reason(reason),
        ChainError::InvalidAncestor { .. } => "bad-prevblk".to_string(),
        ChainError::KnownInvalid(_) => "duplicate-invalid".to_string(),
        ChainError::BadHeight { .. } => format!("bad-height: {e}"),
        ChainError::CheckpointMismatch { .. } => format!("bad-checkpoint: {e}"),
        ChainError::UpdateMismatch { .. } => format!("bad-update: {e}"),
        _ => return None,
    })
}

/// The address of a script, if it is a witness program.
pub fn script_json(script: &[u8], network: Network) -> Value {
    let mut o = json!({ "hex": hex::encode(script) });
    if let Ok(a) = Address::from_script_pubkey(script, network) {
        o["address"] = json!(a.to_string());
    }
    o
}

/// A transaction as `decoderawtransaction` shows it.
pub fn tx_json(tx: &Transaction, network: Network) -> Value {
    let vin: Vec<Value> = tx
        .inputs
        .iter()
        .map(|i| {
            let mut o = if tx.is_coinbase() {
                json!({ "coinbase": hex::encode(&i.script_sig) })
            } else {
                json!({
                    "txid": i.previous_output.txid.to_hex(),
                    "vout": i.previous_output.vout,
                    "scriptSig": { "hex": hex::encode(&i.script_sig) },
                })
            };
            if !i.witness.is_empty() {
                o["txinwitness"] =
                    json!(i.witness.items().iter().map(hex::encode).collect::<Vec<_>>());
            }
            o["sequence"] = json!(i.sequence);
            o
        })
        .collect();
    let vout: Vec<Value> = tx
        .outputs
        .iter()
        .enumerate()
        .map(|(n, o)| {
            json!({
                "value": amount_json(o.value),
                "n": n,
                "scriptPubKey": script_json(&o.script_pubkey, network),
            })
        })
        .collect();
    json!({
        "txid": tx.txid().to_hex(),
        "hash": tx.wtxid().to_hex(),
        "version": tx.version,
        "size": tx.total_size(),
        "base_size": tx.base_size(),
        "locktime": tx.lock_time,
        "vin": vin,
        "vout": vout,
    })
}

/// Chainwork as Bitcoin Core prints it: 64 lowercase hex digits.
pub fn chainwork_hex(work: u128) -> String {
    format!("{work:064x}")
}

/// A header with its chain context (confirmations, next block, median time, chainwork, loss
/// index).
pub fn header_json(
    chain: &ChainReader,
    hash: &BlockHash,
    h: &BlockHeader,
) -> Result<Value, ChainError> {
    let active = chain.block_hash_at(h.height)? == Some(*hash);
    let info = chain.block_info(hash)?;
    let tip_height = chain.tip()?.height;
    let confirmations: i64 =
        if active { i64::from(tip_height) - i64::from(h.height) + 1 } else { -1 };
    let mut o = json!({
        "hash": hash.to_hex(),
        "confirmations": confirmations,
        "height": h.height,
        "version": h.version,
        "versionHex": format!("{:08x}", h.version),
        "merkleroot": h.merkle_root.to_hex(),
        "time": h.time,
        "val_loss": h.val_loss,
        "val_loss_nats": loss_nats(h.val_loss),
        "val_loss_bits": loss_bits(h.val_loss),
        "parent_loss": h.parent_loss,
        "improvement": h.parent_loss.saturating_sub(h.val_loss),
        "required_improvement": h.required_improvement,
        "chainwork": chainwork_hex(info.as_ref().map_or(0, |i| i.chainwork)),
        "loss_index": info.as_ref().and_then(|i| i.summary.as_ref()).map(|s| s.loss_index),
        "d_model": h.shape.d_model,
        "n_layers": h.shape.n_layers,
        "checkpoint_root": h.checkpoint_root.to_hex(),
        "checkpoint_size": h.checkpoint_size,
        "training_steps": h.training_steps,
        "dataset_commitment": h.dataset_commitment.to_hex(),
        "miner_pubkey": hex::encode(h.miner_pubkey),
    });
    if h.height > 0 {
        o["previousblockhash"] = json!(h.prev_block_hash.to_hex());
    }
    if active {
        if let Some(next) = chain.block_hash_at(h.height + 1)? {
            o["nextblockhash"] = json!(next.to_hex());
        }
        if let Ok(view) = chain.header_chain(hash) {
            o["mediantime"] = json!(median_time_past(&view, h.height));
        }
    }
    Ok(o)
}

/// A block without its `tx` field: the header with its chain context, `size` and `nTx`.
pub fn block_head_json(
    chain: &ChainReader,
    hash: &BlockHash,
    block: &Block,
) -> Result<Value, ChainError> {
    let mut o = header_json(chain, hash, &block.header)?;
    o["size"] = json!(encoded_size(block));
    o["nTx"] = json!(block.transactions.len());
    Ok(o)
}

/// `block.to_bytes().len()` without encoding the transactions into one buffer.
fn encoded_size(block: &Block) -> usize {
    let mut rest = Vec::new();
    block.header.encode(&mut rest);
    block.sample.encode(&mut rest);
    let n = block.transactions.len();
    rest.len()
        + compact_size_len(n as u64)
        + block.transactions.iter().map(Transaction::total_size).sum::<usize>()
}

/// Writes a block as compact JSON, exactly the bytes `serde_json::to_writer` gives for
/// [`block_json`] with the same arguments, but builds one transaction's JSON at a time: `head`
/// is [`block_head_json`]; its fields are written in the map's own order with `tx` (verbosity
/// 1: txids; 2: transactions) at the place the map gives that key.
pub fn write_block_json(
    head: &Value,
    block: &Block,
    verbosity: u8,
    network: Network,
    w: &mut dyn Write,
) -> io::Result<()> {
    let Value::Object(fields) = head else {
        return Err(io::Error::other("block head is not a JSON object"));
    };
    // A placeholder puts `tx` where the map orders it (sorted, or last with `preserve_order`).
    let mut fields = fields.clone();
    fields.insert("tx".to_owned(), Value::Null);
    w.write_all(b"{")?;
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        serde_json::to_writer(&mut *w, key)?;
        w.write_all(b":")?;
        if key == "tx" {
            write_tx_array(block, verbosity, network, w)?;
        } else {
            serde_json::to_writer(&mut *w, value)?;
        }
    }
    w.write_all(b"}")
}

/// The `tx` array of [`write_block_json`]: each element built, written and dropped in turn.
fn write_tx_array(
    block: &Block,
    verbosity: u8,
    network: Network,
    w: &mut dyn Write,
) -> io::Result<()> {
    w.write_all(b"[")?;
    for (i, t) in block.transactions.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        if verbosity >= 2 {
            serde_json::to_writer(&mut *w, &tx_json(t, network))?;
        } else {
            serde_json::to_writer(&mut *w, &t.txid().to_hex())?;
        }
    }
    w.write_all(b"]")
}

/// Writes `bytes` as one JSON string of lowercase hex (what `json!(hex::encode(bytes))`
/// serialises to), a slice at a time.
pub fn write_hex_string(bytes: &[u8], w: &mut dyn Write) -> io::Result<()> {
    const SLICE: usize = 16 * 1024;
    let mut text = vec![0u8; 2 * SLICE];
    w.write_all(b"\"")?;
    for piece in bytes.chunks(SLICE) {
        let out = &mut text[..2 * piece.len()];
        hex::encode_to_slice(piece, out).map_err(io::Error::other)?;
        w.write_all(out)?;
    }
    w.write_all(b"\"")
}

/// A block: verbosity 1 (txids) or 2 (transactions), built whole (see [`write_block_json`] for
/// the streamed rendering `getblock` uses).
pub fn block_json(
    chain: &ChainReader,
    hash: &BlockHash,
    block: &Block,
    verbosity: u8,
    network: Network,
) -> Result<Value, ChainError> {
    let mut o = header_json(chain, hash, &block.header)?;
    o["size"] = json!(block.to_bytes().len());
    o["nTx"] = json!(block.transactions.len());
    o["tx"] = if verbosity >= 2 {
        json!(block.transactions.iter().map(|t| tx_json(t, network)).collect::<Vec<_>>())
    } else {
        json!(block.transactions.iter().map(|t| t.txid().to_hex()).collect::<Vec<_>>())
    };
    Ok(o)
}
