//! Mining methods: Proof-of-Training block templates, block and checkpoint submission,
//! `generatetoaddress` (regtest), mining info.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rnet_chain::{AcceptOutcome, ChainError};
use rnet_model::checkpoint::CHUNK_SIZE;
use rnet_primitives::{Address, Block, Hash256, Network};
use rnet_rpc::{MethodInfo, RegisterError, Registry, RpcError};
use serde_json::{Value, json};

use super::json::{amount_json, chain_reject_reason};
use super::{chain_err, node_err, param_hash, param_hex, reg};
use crate::node::{Node, NodeError};
use crate::upload::PartOutcome;

/// Most blocks one `generatetoaddress` call mines.
pub const MAX_GENERATE: u32 = 1000;

pub(super) fn register(r: &mut Registry, node: &Arc<Node>) -> Result<(), RegisterError> {
    reg(
        r,
        node,
        MethodInfo::new("getmininginfo", "Mining").help(
            "getmininginfo\n\nReturns mining-related information: blocks, tip val_loss, loss_index, chainwork, \
             benchmark_loss (null until computed), the required improvement of a block now (after the stall escape) \
             and before the discount, shape of the next block, whether the in-node miner runs.",
        ),
        |node, _| {
            let t = node.template().map_err(node_err)?;
            Ok(json!({
                "blocks": t.parent.height,
                "chain": node.network().name(),
                "val_loss": t.parent.val_loss,
                "loss_index": t.parent.loss_index,
                "chainwork": super::json::chainwork_hex(t.parent.chainwork),
                "benchmark_loss": node.benchmark.for_block(&t.parent.hash),
                "required_improvement": t.required_improvement,
                "base_required_improvement": t.base_required_improvement,
                "next_shape": { "d_model": t.shape.0, "n_layers": t.shape.1 },
                "pooledtx": node.mempool().len(),
                "mining": node.mining.load(Ordering::SeqCst),
                "warnings": "",
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getblocktemplate", "Mining").params(["template_request"]).help(
            "getblocktemplate ( \"template_request\" )\n\nProof-of-Training block template: parent hash and loss, \
             height, required improvement (effective at curtime; a later header time may earn the stall-escape \
             discount, see base_required_improvement), scheduled shape, the tip checkpoint (root, size, chunks; \
             download with getcheckpointchunk), transactions (data, txid, hash, fee), coinbasevalue (at exactly the \
             required improvement, plus fees; a larger improvement earns up to twice the subsidy), fees, \
             coinbase_tag (hex: the height u32 LE then the network magic, which the coinbase script_sig must \
             start with), circulating_supply (resonance), mintime, curtime, mediantime. While the node is \
             downloading a chain with more work than its tip, error -10 (try again once it has connected).",
        ),
        |node, _| {
            // A template on a tip that the download is about to replace is wasted work (the
            // in-node miner waits for the same reason; Core refuses during initial download).
            if node.catching_up() {
                return Err(RpcError::new(
                    rnet_rpc::codes::RPC_CLIENT_IN_INITIAL_DOWNLOAD,
                    "ResonanceNet is downloading blocks: a chain with more work than the tip is \
                     arriving; try again once it has connected",
                ));
            }
            let t = node.template().map_err(node_err)?;
            let fees = t.fees();
            let txs: Vec<Value> = t
                .transactions
                .iter()
                .map(|(tx, fee)| {
                    json!({
                        "data": hex::encode(tx.to_bytes()),
                        "txid": tx.txid().to_hex(),
                        "hash": tx.wtxid().to_hex(),
                        "fee": fee.0,
                    })
                })
                .collect();
            Ok(json!({
                "version": rnet_consensus::BLOCK_VERSION,
                "chain": node.network().name(),
                "previousblockhash": t.parent.hash.to_hex(),
                "height": t.height,
                "parent_val_loss": t.parent.val_loss,
                "required_improvement": t.required_improvement,
                "base_required_improvement": t.base_required_improvement,
                "sample_records": node.params.sample_records,
                "shape": { "d_model": t.shape.0, "n_layers": t.shape.1 },
                "checkpoint": {
                    "root": t.checkpoint.0.to_hex(),
                    "size": t.checkpoint.1,
                    "chunk_size": CHUNK_SIZE,
                    "chunks": t.checkpoint.1.div_ceil(CHUNK_SIZE as u64),
                },
                "transactions": txs,
                "coinbasevalue": t.base_subsidy.0.saturating_add(fees.0),
                "fees": fees.0,
                "coinbase_tag": hex::encode(node.params.coinbase_tag(t.height)),
                "circulating_supply": t.parent.circulating_supply.0,
                "mintime": t.median_time_past + 1,
                "curtime": t.time,
                "mediantime": t.median_time_past,
                "dataset_commitment": hex::encode(rnet_model::data::CORPUS_HASH),
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("submitblock", "Mining").params(["hexdata", "dummy"]).help(
            "submitblock \"hexdata\" ( \"dummy\" )\n\nAttempts to submit a new block. Its model update is taken from \
             an earlier submitcheckpoint or uploadcheckpointpart under the update's root. Returns null when \
             accepted, \"duplicate\", \"inconclusive\" (stored, not connected: side branch or missing update), or \
             the rejection reason (e.g. \"bad-val-loss: …\").",
        ),
        |node, p| {
            let bytes = param_hex(p, 0, "Block")?;
            let block = Block::from_bytes(&bytes)
                .map_err(|_| RpcError::deserialization("Block decode failed"))?;
            if block.transactions.first().is_none_or(|t| !t.is_coinbase()) {
                return Err(RpcError::deserialization("Block does not start with a coinbase"));
            }
            match node.submit_block(block, None) {
                Ok(AcceptOutcome::Connected { .. }) => Ok(Value::Null),
                Ok(AcceptOutcome::AlreadyHave) => Ok(json!("duplicate")),
                Ok(AcceptOutcome::Orphan { .. }) => Ok(json!("prev-blk-not-found")),
                Ok(AcceptOutcome::StoredSideBranch | AcceptOutcome::MissingUpdate) => {
                    Ok(json!("inconclusive"))
                }
                Err(e) => match chain_reject_reason(&e) {
                    Some(reason) => Ok(json!(reason)),
                    None => Err(chain_err(e)),
                },
            }
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("submitheader", "Mining").params(["hexdata"]).help(
            "submitheader \"hexdata\"\n\nChecks a block header (its miner signature, and a parent that is a stored \
             block or an earlier submitted header) and records it the way headers from peers are recorded: with \
             -assumevalid it locates the assumed-valid block's ancestry before the blocks arrive, so blocks \
             submitted next connect without their models. Returns null; errors if the header does not decode, \
             its signature fails, or its parent is unknown (\"Must submit previous header (…) first\").",
        ),
        |node, p| {
            let bytes = param_hex(p, 0, "Header")?;
            let header = rnet_primitives::BlockHeader::from_bytes(&bytes)
                .map_err(|_| RpcError::deserialization("Block header decode failed"))?;
            let hash = header.hash();
            let signed = rnet_crypto::PublicKey::from_bytes(&header.miner_pubkey).and_then(|key| {
                key.verify(hash.as_bytes(), &rnet_crypto::Signature::from_bytes(header.signature))
            });
            if signed.is_err() {
                return Err(RpcError::verify("bad-header-signature"));
            }
            let mut chain = node.chain();
            if !chain.knows_header(&header.prev_block_hash).map_err(chain_err)? {
                return Err(RpcError::verify(format!(
                    "Must submit previous header ({}) first",
                    header.prev_block_hash
                )));
            }
            chain.note_headers(std::slice::from_ref(&header));
            Ok(Value::Null)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("submitcheckpoint", "Mining").params(["id", "hexdata"]).help(
            "submitcheckpoint \"blockhash|root\" \"hexdata\"\n\nUploads a block's model data: for a known block (by \
             hash) the bytes are its model update (or its whole checkpoint), checked against the header, and the \
             block validated; otherwise `id` must be the data's chunk merkle root and it is kept for a block \
             submitted next with submitblock (whose header commits to it as update_root). Returns null.",
        ),
        |node, p| {
            let id = param_hash(p, 0, "id")?;
            let bytes = param_hex(p, 1, "Checkpoint")?;
            submit_checkpoint(node, id, bytes)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("uploadcheckpointpart", "Mining")
            .params(["id", "total_size", "offset", "hexdata"])
            .help(
                "uploadcheckpointpart \"blockhash|root\" total_size offset \"hexdata\"\n\nUploads model data (an update, \
                 or a whole checkpoint) too large for one request in consecutive parts of at most 1 MiB: offset is \
                 the number of bytes sent so far (a repeated part is accepted again). When the last byte arrives \
                 the data is handled like submitcheckpoint (size and chunk merkle root checked). Returns \
                 {\"received\", \"complete\"}.",
            ),
        |node, p| {
            let id = param_hash(p, 0, "id")?;
            let total: i64 = p.required(1)?;
            let offset: i64 = p.required(2)?;
            let part = param_hex(p, 3, "Part")?;
            let total = u64::try_from(total)
                .map_err(|_| RpcError::invalid_parameter("total_size must be positive"))?;
            let offset = u64::try_from(offset)
                .map_err(|_| RpcError::invalid_parameter("offset out of range"))?;
            let outcome = node
                .checkpoint_uploads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add_part(id, total, offset, &part)
                .map_err(|e| RpcError::invalid_parameter(e.to_string()))?;
            match outcome {
                PartOutcome::Partial(n) => Ok(json!({ "received": n, "complete": false })),
                PartOutcome::Complete(bytes) => {
                    submit_checkpoint(node, id, bytes)?;
                    Ok(json!({ "received": total, "complete": true }))
                }
            }
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("generatetoaddress", "Generating")
            .params(["nblocks", "address", "maxtries"])
            .help(
                "generatetoaddress nblocks \"address\" ( maxtries )\n\nRegtest only: mine nblocks blocks immediately \
                 (really training the tip model on the bundled data) paying address. maxtries: the training-step \
                 budget of each block (default: the miner's, 3 attempts of 2000 steps); a block that does not \
                 reach the requirement within it is an error. Returns the block hashes.",
            ),
        |node, p| {
            let n: i64 = p.required(0)?;
            let address: String = p.required(1)?;
            if node.network() != Network::Regtest {
                return Err(RpcError::misc("generatetoaddress is only available on regtest"));
            }
            let n = u32::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_GENERATE)
                .ok_or_else(|| RpcError::invalid_parameter(format!("nblocks must be 0..={MAX_GENERATE}")))?;
            let max_steps: Option<i64> = p.optional(2)?;
            let max_steps = match max_steps {
                None => None,
                Some(m) => Some(u64::try_from(m).ok().filter(|m| *m > 0).ok_or_else(|| {
                    RpcError::invalid_parameter("maxtries must be a positive number of steps")
                })?),
            };
            let payout = Address::from_str_for(&address, node.network())
                .map_err(|_| RpcError::invalid_address_or_key("Error: Invalid address"))?
                .script_pubkey();
            let hashes = node.generate(n, payout, max_steps).map_err(|e| match e {
                NodeError::ShuttingDown => RpcError::misc("shutting down"),
                other => node_err(other),
            })?;
            Ok(json!(hashes.iter().map(|h| h.to_hex()).collect::<Vec<_>>()))
        },
    )?;
    let _ = amount_json;
    Ok(())
}

/// `submitcheckpoint` (and a completed `uploadcheckpointpart`): for a known block the bytes are
/// its update (when they have the header's update size) or its whole checkpoint, checked against
/// its header, and the block validated; otherwise `id` must be their chunk root.
fn submit_checkpoint(node: &Node, id: Hash256, bytes: Vec<u8>) -> Result<Value, RpcError> {
    let block_hash = rnet_primitives::BlockHash(id.0);
    let known = node.chain().header(&block_hash).map_err(chain_err)?;
    if let Some(header) = known {
        let result = if bytes.len() as u64 == header.update_size {
            node.accept_update(&block_hash, bytes)
        } else {
            node.accept_checkpoint(&block_hash, bytes)
        };
        return match result {
            Ok(_) => Ok(Value::Null),
            Err(ChainError::CheckpointMismatch { .. } | ChainError::UpdateMismatch { .. }) => {
                Err(RpcError::verify(
                    "data matches neither the block's update nor its checkpoint (root and size)",
                ))
            }
            Err(e @ ChainError::InvalidBlock { .. }) => {
                Err(RpcError::verify(chain_reject_reason(&e).unwrap_or_else(|| e.to_string())))
            }
            Err(e) => Err(chain_err(e)),
        };
    }
    if !Node::checkpoint_matches(&bytes, &id) {
        return Err(RpcError::verify(
            "unknown block, and the data's chunk root is not the given id",
        ));
    }
    node.add_pending_checkpoint(id, bytes);
    Ok(Value::Null)
}
