//! Blockchain methods: chain info, blocks, headers, tips, coins, training history, checkpoints
//! download, invalidate/reconsider.

use std::sync::Arc;

use rnet_chain::checkpoints::StageMode;
use rnet_chain::{AcceptOutcome, ChainError, ChainTipStatus};
use rnet_consensus::{median_time_past, next_block_shape, required_improvement};
use rnet_miner::{loss_bits, loss_nats};
use rnet_model::checkpoint::CHUNK_SIZE;
use rnet_net::message::ModelObject;
use rnet_primitives::OutPoint;
use rnet_rpc::{MethodInfo, Params, RegisterError, Registry, RpcError};
use serde_json::{Value, json};

use super::json::{
    amount_json, block_head_json, header_json, script_json, write_block_json, write_hex_string,
};
use super::{chain_err, param_block_hash, param_txid, reg, reg_stream};
use crate::node::Node;

fn chain_name(node: &Node) -> &'static str {
    match node.network() {
        rnet_primitives::Network::Mainnet => "main",
        rnet_primitives::Network::Testnet => "test",
        rnet_primitives::Network::Regtest => "regtest",
    }
}

pub(super) fn register(r: &mut Registry, node: &Arc<Node>) -> Result<(), RegisterError> {
    reg(
        r,
        node,
        MethodInfo::new("getblockchaininfo", "Blockchain").help(
            "getblockchaininfo\n\nReturns an object containing various state info regarding blockchain processing, \
             including the tip's val_loss (micro-nats per byte, nats and bits per byte), loss_index, chainwork, \
             benchmark_loss (the tip model on the held-out benchmark slice; null until computed), model shape, \
             the required improvement for a block now (required_improvement, after the stall escape) and before the \
             discount (base_required_improvement), circulating supply and emission pool.",
        ),
        |node, _| {
            let chain = node.chain();
            let tip = chain.tip();
            let view = chain.header_chain(&tip.hash).map_err(chain_err)?;
            let base_required = required_improvement(&node.params, &view);
            let mtp = median_time_past(&view, tip.height);
            let required = rnet_consensus::effective_required_improvement(
                &node.params,
                &view,
                node.now().max(mtp + 1),
            );
            let (nd, nl) = next_block_shape(&node.params, &tip);
            let (headers, _) = crate::sync::best_header(&chain).map_err(chain_err)?;
            let ibd = node.ibd.check(tip.height, headers, tip.time, node.now());
            Ok(json!({
                "chain": chain_name(node),
                "blocks": tip.height,
                "headers": headers,
                "bestblockhash": tip.hash.to_hex(),
                "time": tip.time,
                "mediantime": median_time_past(&view, tip.height),
                "val_loss": tip.val_loss,
                "val_loss_nats": loss_nats(tip.val_loss),
                "val_loss_bits": loss_bits(tip.val_loss),
                "loss_index": tip.loss_index,
                "chainwork": super::json::chainwork_hex(tip.chainwork),
                "benchmark_loss": node.benchmark.for_block(&tip.hash),
                "shape": { "d_model": tip.d_model, "n_layers": tip.n_layers },
                "next_shape": { "d_model": nd, "n_layers": nl },
                "required_improvement": required,
                "base_required_improvement": base_required,
                "circulating_supply": amount_json(chain.circulating_supply()),
                "emission_pool": amount_json(chain.emission_pool()),
                "verificationprogress": crate::sync::verification_progress(tip.height, headers),
                "initialblockdownload": ibd,
                "pruned": false,
                "warnings": "",
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getblockcount", "Blockchain")
            .help("getblockcount\n\nReturns the height of the most-work fully-validated chain."),
        |node, _| Ok(json!(node.chain().height())),
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getbestblockhash", "Blockchain").help(
            "getbestblockhash\n\nReturns the hash of the best (tip) block in the active chain.",
        ),
        |node, _| Ok(json!(node.chain().tip().hash.to_hex())),
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getblockhash", "Blockchain").params(["height"]).help(
            "getblockhash height\n\nReturns hash of block in best-block-chain at height provided.",
        ),
        |node, p| {
            let height: i64 = p.required(0)?;
            let chain = node.chain();
            let h = u32::try_from(height)
                .ok()
                .filter(|h| *h <= chain.height())
                .ok_or_else(|| RpcError::invalid_parameter("Block height out of range"))?;
            let hash = chain
                .block_hash_at(h)
                .map_err(chain_err)?
                .ok_or_else(|| RpcError::invalid_parameter("Block height out of range"))?;
            Ok(json!(hash.to_hex()))
        },
    )?;
    reg_stream(
        r,
        node,
        MethodInfo::new("getblock", "Blockchain").params(["blockhash", "verbosity"]).help(
            "getblock \"blockhash\" ( verbosity )\n\nverbosity 0: hex-encoded block; 1 (default): JSON with txids; \
             2: JSON with decoded transactions.",
        ),
        |node, p, w| {
            let hash = param_block_hash(p, 0)?;
            let verbosity = match p.get(1) {
                None | Some(Value::Null) => 1,
                Some(Value::Bool(b)) => u8::from(*b),
                Some(v) => match v.as_u64() {
                    Some(n @ 0..=2) => n as u8,
                    _ => return Err(RpcError::invalid_parameter("verbosity must be 0, 1 or 2").into()),
                },
            };
            // A read snapshot: a large block never holds the chain lock while it is encoded;
            // at most `HEAVY_RPC_SLOTS` blocks are rendered at once, and the slot is held until
            // the reply is written (or abandoned). The reply is streamed: one transaction's
            // JSON at a time, never the whole block's.
            let _slot = node.heavy_rpc.acquire();
            let chain = &node.reader;
            if chain.header(&hash).map_err(chain_err)?.is_none() {
                return Err(RpcError::invalid_address_or_key("Block not found").into());
            }
            let block = chain
                .block(&hash)
                .map_err(chain_err)?
                .ok_or_else(|| RpcError::misc("Block not available (not fully downloaded)"))?;
            if verbosity == 0 {
                return Ok(write_hex_string(&block.to_bytes(), w)?);
            }
            let head = block_head_json(chain, &hash, &block).map_err(chain_err)?;
            Ok(write_block_json(&head, &block, verbosity, node.network(), w)?)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getblockheader", "Blockchain").params(["blockhash", "verbose"]).help(
            "getblockheader \"blockhash\" ( verbose )\n\nverbose true (default): JSON object; false: hex-encoded header.",
        ),
        |node, p| {
            let hash = param_block_hash(p, 0)?;
            let verbose: bool = p.optional_or(1, true)?;
            let chain = &node.reader;
            let header = chain
                .header(&hash)
                .map_err(chain_err)?
                .ok_or_else(|| RpcError::invalid_address_or_key("Block not found"))?;
            if !verbose {
                return Ok(json!(hex::encode(header.to_bytes())));
            }
            let mut o = header_json(chain, &hash, &header).map_err(chain_err)?;
            if let Some(b) = chain.block(&hash).map_err(chain_err)? {
                o["nTx"] = json!(b.transactions.len());
            }
            Ok(o)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getchaintips", "Blockchain").help(
            "getchaintips\n\nReturn information about all known tips in the block tree: height, hash, branchlen, \
             val_loss, chainwork and status (active, valid-fork, valid-headers, headers-only, invalid).",
        ),
        |node, _| {
            let tips = node.reader.chain_tips().map_err(chain_err)?;
            Ok(json!(
                tips.iter()
                    .map(|t| json!({
                        "height": t.height,
                        "hash": t.hash.to_hex(),
                        "branchlen": t.branch_len,
                        "val_loss": t.val_loss,
                        "chainwork": super::json::chainwork_hex(t.chainwork),
                        "status": match t.status {
                            ChainTipStatus::Active => "active",
                            ChainTipStatus::ValidFork => "valid-fork",
                            ChainTipStatus::ValidHeaders => "valid-headers",
                            ChainTipStatus::HeadersOnly => "headers-only",
                            ChainTipStatus::Invalid => "invalid",
                        },
                    }))
                    .collect::<Vec<_>>()
            ))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("gettxout", "Blockchain").params(["txid", "n", "include_mempool"]).help(
            "gettxout \"txid\" n ( include_mempool )\n\nReturns details about an unspent transaction output, or null. \
             With include_mempool (default true) a coin spent by a mempool transaction is null and outputs of \
             mempool transactions are returned with 0 confirmations.",
        ),
        |node, p| {
            let txid = param_txid(p, 0)?;
            let n: u32 = p.required(1)?;
            let include_mempool: bool = p.optional_or(2, true)?;
            let outpoint = OutPoint::new(txid, n);
            let chain = node.chain();
            let tip = chain.tip();
            let coin = chain.coin(&outpoint).map_err(chain_err)?;
            if include_mempool {
                // Like Core: a coin spent by a mempool transaction is gone; outputs of mempool
                // transactions are shown with 0 confirmations (lock order: chain → mempool).
                let pool = node.mempool();
                if pool.spender(&outpoint).is_some() {
                    return Ok(Value::Null);
                }
                if coin.is_none() {
                    let Some(out) = pool.get(&txid).and_then(|e| e.tx.outputs.get(n as usize))
                    else {
                        return Ok(Value::Null);
                    };
                    return Ok(json!({
                        "bestblock": tip.hash.to_hex(),
                        "confirmations": 0,
                        "value": amount_json(out.value),
                        "scriptPubKey": script_json(&out.script_pubkey, node.network()),
                        "coinbase": false,
                        "creation_loss_index": Value::Null,
                    }));
                }
            }
            let Some(coin) = coin else {
                return Ok(Value::Null);
            };
            Ok(json!({
                "bestblock": tip.hash.to_hex(),
                "confirmations": i64::from(tip.height) - i64::from(coin.height) + 1,
                "value": amount_json(coin.output.value),
                "scriptPubKey": script_json(&coin.output.script_pubkey, node.network()),
                "coinbase": coin.is_coinbase,
                "creation_loss_index": coin.creation_loss_index,
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("gettxoutsetinfo", "Blockchain").params(["hash_type"]).help(
            "gettxoutsetinfo\n\nReturns statistics about the unspent transaction output set, including the canonical \
             UTXO set hash (Keccak-256d, see docs/chainstate.md).",
        ),
        |node, _| {
            // O(UTXO set) on a read snapshot, without the chain lock.
            let _slot = node.heavy_rpc.acquire();
            let s = node.reader.utxo_stats().map_err(chain_err)?;
            Ok(json!({
                "height": s.height,
                "bestblock": s.tip.to_hex(),
                "txouts": s.count,
                "total_amount": amount_json(s.total_value),
                "utxo_set_hash": s.hash.to_hex(),
                "hash_serialized": s.hash.to_hex(),
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("gettraininginfo", "Mining").params(["nblocks"]).help(
            "gettraininginfo ( nblocks )\n\nLoss history of the last nblocks (default 20) blocks of the active chain, \
             oldest first: height, hash, val_loss (micro-nats/byte), nats, bits, parent_loss, improvement, shape, \
             required improvement, \
             training steps, time.",
        ),
        |node, p| {
            let n: u64 = p.optional_or(0, 20)?;
            let chain = node.chain();
            let tip = chain.height();
            let first = u64::from(tip).saturating_sub(n.saturating_sub(1)) as u32;
            let mut out = Vec::new();
            for h in first..=tip {
                let Some(hash) = chain.block_hash_at(h).map_err(chain_err)? else { continue };
                let Some(hd) = chain.header(&hash).map_err(chain_err)? else { continue };
                out.push(json!({
                    "height": h,
                    "hash": hash.to_hex(),
                    "val_loss": hd.val_loss,
                    "nats": loss_nats(hd.val_loss),
                    "bits": loss_bits(hd.val_loss),
                    "parent_loss": hd.parent_loss,
                    "improvement": hd.parent_loss.saturating_sub(hd.val_loss),
                    "d_model": hd.shape.d_model,
                    "n_layers": hd.shape.n_layers,
                    "required_improvement": hd.required_improvement,
                    "training_steps": hd.training_steps,
                    "time": hd.time,
                }));
            }
            Ok(json!(out))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getcheckpointinfo", "Mining").params(["blockhash", "object"]).help(
            "getcheckpointinfo \"blockhash\" ( \"object\" )\n\nRoot, size and chunk count (1 MiB chunks) of a block's \
             model data: object \"checkpoint\" (default: the block's whole checkpoint) or \"update\" (the model update \
             the block carries; genesis has none).",
        ),
        |node, p| {
            let hash = param_block_hash(p, 0)?;
            let object = param_model_object(p, 1)?;
            let header = node
                .chain()
                .header(&hash)
                .map_err(chain_err)?
                .ok_or_else(|| RpcError::invalid_address_or_key("Block not found"))?;
            let (root, size, available) = match object {
                ModelObject::Checkpoint => (
                    header.checkpoint_root,
                    header.checkpoint_size,
                    node.reader.has_checkpoint(&hash).map_err(chain_err)?,
                ),
                ModelObject::Update => (
                    header.update_root,
                    header.update_size,
                    node.reader.has_update(&hash).map_err(chain_err)?,
                ),
            };
            Ok(json!({
                "blockhash": hash.to_hex(),
                "height": header.height,
                "object": object.name(),
                "root": root.to_hex(),
                "size": size,
                "chunk_size": CHUNK_SIZE,
                "chunks": size.div_ceil(CHUNK_SIZE as u64),
                "available": available,
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("loadcheckpoint", "Blockchain").params(["blockhash", "path"]).help(
            "loadcheckpoint \"blockhash\" \"path\"\n\nLoads a known block's whole checkpoint from a file on the \
             node's machine (like Core's loadtxoutset: a snapshot obtained out of band, e.g. for -assumevalid). \
             The file is copied into the data directory and checked by streaming against the root and size the \
             header commits to, in bounded memory whatever its size; the original is left alone. Returns \
             {\"blockhash\", \"size\", \"result\"} with result \"connected\" (the tip moved), \"stored\" or \
             \"duplicate\".",
        ),
        |node, p| {
            let hash = param_block_hash(p, 0)?;
            let path: String = p.required(1)?;
            let header = node
                .reader
                .header(&hash)
                .map_err(chain_err)?
                .ok_or_else(|| RpcError::invalid_address_or_key("Block not found"))?;
            let path = std::path::Path::new(&path);
            if !path.is_file() {
                return Err(RpcError::invalid_parameter(format!(
                    "{} is not a readable file",
                    path.display()
                )));
            }
            let result = match node.accept_checkpoint_file(&hash, path, StageMode::Copy) {
                Ok(AcceptOutcome::Connected { .. }) => "connected",
                Ok(AcceptOutcome::AlreadyHave) => "duplicate",
                Ok(_) => "stored",
                Err(ChainError::CheckpointMismatch { .. }) => {
                    return Err(RpcError::verify(format!(
                        "the file does not match the checkpoint block {hash} commits to (root {}, \
                         {} bytes)",
                        header.checkpoint_root.to_hex(),
                        header.checkpoint_size
                    )));
                }
                Err(ChainError::Io(e)) => {
                    return Err(RpcError::misc(format!("cannot load {}: {e}", path.display())));
                }
                Err(e) => return Err(chain_err(e)),
            };
            Ok(json!({ "blockhash": hash.to_hex(), "size": header.checkpoint_size, "result": result }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getcheckpointchunk", "Mining").params(["blockhash", "index", "object"]).help(
            "getcheckpointchunk \"blockhash\" index ( \"object\" )\n\nChunk `index` (1 MiB) of a block's checkpoint \
             (object \"checkpoint\", the default) or model update (\"update\"), hex-encoded.",
        ),
        |node, p| {
            let hash = param_block_hash(p, 0)?;
            let index: u64 = p.required(1)?;
            let bytes = match param_model_object(p, 2)? {
                ModelObject::Checkpoint => node
                    .checkpoint_bytes(&hash)
                    .map_err(chain_err)?
                    .ok_or_else(|| RpcError::invalid_address_or_key("Checkpoint not available"))?,
                ModelObject::Update => node
                    .reader
                    .update(&hash)
                    .map_err(chain_err)?
                    .map(std::sync::Arc::new)
                    .ok_or_else(|| RpcError::invalid_address_or_key("Update not available"))?,
            };
            let start = usize::try_from(index)
                .ok()
                .and_then(|i| i.checked_mul(CHUNK_SIZE))
                .filter(|s| *s < bytes.len())
                .ok_or_else(|| RpcError::invalid_parameter("chunk index out of range"))?;
            let end = (start + CHUNK_SIZE).min(bytes.len());
            Ok(json!(hex::encode(&bytes[start..end])))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("invalidateblock", "Blockchain")
            .params(["blockhash"])
            .help("invalidateblock \"blockhash\"\n\nPermanently marks a block as invalid, as if it violated a consensus rule."),
        |node, p| {
            let hash = param_block_hash(p, 0)?;
            node.invalidate(&hash).map_err(chain_err)?;
            Ok(Value::Null)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("reconsiderblock", "Blockchain").params(["blockhash"]).help(
            "reconsiderblock \"blockhash\"\n\nRemoves invalidity status of a block, its ancestors and its descendants, \
             reconsider them for activation.",
        ),
        |node, p| {
            let hash = param_block_hash(p, 0)?;
            node.reconsider(&hash).map_err(chain_err)?;
            Ok(Value::Null)
        },
    )?;
    Ok(())
}

/// The optional `object` parameter of `getcheckpointinfo`/`getcheckpointchunk`: `"checkpoint"`
/// (the default) or `"update"`.
fn param_model_object(p: &Params, index: usize) -> Result<ModelObject, RpcError> {
    let object: Option<String> = p.optional(index)?;
    match object.as_deref() {
        None | Some("checkpoint") => Ok(ModelObject::Checkpoint),
        Some("update") => Ok(ModelObject::Update),
        Some(other) => Err(RpcError::invalid_parameter(format!(
            "object must be \"checkpoint\" or \"update\", not {other:?}"
        ))),
    }
}
