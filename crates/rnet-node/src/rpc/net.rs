//! Network methods: `getpeerinfo`, `getnetworkinfo`, `getconnectioncount`, `addnode`,
//! `disconnectnode`, `getnettotals`, `ping`, `setban`, `listbanned`, `clearbanned`.

use std::sync::Arc;

use rnet_net::NetHandle;
use rnet_net::net::AddNodeMode;
use rnet_rpc::{MethodInfo, RegisterError, Registry, RpcError};
use serde_json::{Value, json};

use super::reg;
use crate::node::Node;

fn net(node: &Node) -> Result<&NetHandle, RpcError> {
    node.net
        .get()
        .ok_or_else(|| RpcError::new(-9, "Error: Peer-to-peer functionality missing or disabled"))
}

/// Registers the network methods.
pub fn register(r: &mut Registry, node: &Arc<Node>) -> Result<(), RegisterError> {
    reg(
        r,
        node,
        MethodInfo::new("getpeerinfo", "Network")
            .help("getpeerinfo\n\nData about each connected peer."),
        |node, _| {
            let peers = net(node)?.peers();
            Ok(Value::Array(
                peers
                    .into_iter()
                    .map(|p| {
                        json!({
                            "id": p.id,
                            "addr": p.addr,
                            "inbound": p.inbound,
                            "manual": p.manual,
                            "node_key": p.node_key,
                            "version": p.version,
                            "subver": p.user_agent,
                            "services": format!("{:016x}", p.services),
                            "model_depth": p.model_depth,
                            "model_archive": p.services & rnet_net::message::NODE_MODEL_ARCHIVE != 0,
                            "startingheight": p.best_height,
                            "best_chainwork": format!("{:064x}", p.best_chainwork),
                            "bytessent": p.bytes_sent,
                            "bytesrecv": p.bytes_recv,
                            "conntime": p.conn_time,
                            "pingtime": p.ping_time,
                            "banscore": p.ban_score,
                            "inflight": p.blocks_in_flight,
                            "handshaked": p.handshaked,
                        })
                    })
                    .collect(),
            ))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getconnectioncount", "Network")
            .help("getconnectioncount\n\nNumber of connections."),
        |node, _| Ok(json!(net(node)?.peers().iter().filter(|p| p.handshaked).count())),
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getnetworkinfo", "Network")
            .help("getnetworkinfo\n\nP2P networking state."),
        |node, _| {
            let n = net(node)?;
            let info = n.info().ok_or_else(|| RpcError::misc("network stopped"))?;
            Ok(json!({
                "version": 10000,
                "subversion": info.user_agent,
                "protocolversion": rnet_net::message::PROTOCOL_VERSION,
                "localservices": format!("{:016x}", info.services),
                "model_depth": info.model_depth,
                "networkactive": true,
                "connections": info.inbound + info.outbound,
                "connections_in": info.inbound,
                "connections_out": info.outbound,
                "node_key": info.node_key,
                "localaddresses": info.local.iter().map(|a| json!({"address": a.ip().to_string(), "port": a.port()})).collect::<Vec<_>>(),
                "proxy": info.proxy.map(|p| p.to_string()).unwrap_or_default(),
                "addrman_new": info.addrman.0,
                "addrman_tried": info.addrman.1,
                "encryption": "Noise_XX_25519_ChaChaPoly_BLAKE2s",
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("addnode", "Network")
            .params(["node", "command"])
            .help("addnode \"node\" \"add|remove|onetry\"\n\nAdds, removes or tries once a peer."),
        |node, p| {
            let target: String = p.required(0)?;
            let cmd: String = p.required(1)?;
            let mode = match cmd.as_str() {
                "add" => AddNodeMode::Add,
                "remove" => AddNodeMode::Remove,
                "onetry" => AddNodeMode::OneTry,
                _ => {
                    return Err(RpcError::invalid_parameter(
                        "command must be add, remove or onetry",
                    ));
                }
            };
            net(node)?.add_node(&target, mode).map_err(|e| RpcError::new(-23, e))?;
            Ok(Value::Null)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("disconnectnode", "Network")
            .params(["address", "nodeid"])
            .help("disconnectnode ( \"address\" nodeid )\n\nDisconnects a peer by address or id."),
        |node, p| {
            let addr: Option<String> = p.optional(0)?.filter(|s: &String| !s.is_empty());
            let id: Option<u64> = p.optional(1)?;
            if addr.is_none() == id.is_none() {
                return Err(RpcError::invalid_parameter(
                    "Only one of address and nodeid should be provided.",
                ));
            }
            if net(node)?.disconnect(addr, id) {
                Ok(Value::Null)
            } else {
                Err(RpcError::new(-29, "Node not found in connected nodes"))
            }
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getnettotals", "Network").help("getnettotals\n\nBytes sent and received."),
        |node, _| {
            let n = net(node)?;
            Ok(json!({
                "totalbytesrecv": n.totals.recv.load(std::sync::atomic::Ordering::Relaxed),
                "totalbytessent": n.totals.sent.load(std::sync::atomic::Ordering::Relaxed),
                "timemillis": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("ping", "Network")
            .help("ping\n\nPings every peer (results in getpeerinfo pingtime)."),
        |node, _| {
            net(node)?.ping();
            Ok(Value::Null)
        },
    )?;
    reg(r, node, MethodInfo::new("setban", "Network").params(["subnet", "command", "bantime", "absolute"]).help("setban \"ip(/netmask)|key:HEX\" \"add|remove\" ( bantime absolute )\n\nBans or unbans an IP, a subnet (1.2.3.0/24 or 1.2.3.0/255.255.255.0) or a node key. bantime: seconds \
         (default 86400; 0 or negative: the default), or with absolute=true the Unix time the ban ends."), |node, p| {
        let target: String = p.required(0)?;
        let cmd: String = p.required(1)?;
        // Seconds (any non-negative integer; ≤ 0 means the default, as in Core).
        let bantime: Option<serde_json::Number> = p.optional(2)?;
        let absolute: bool = p.optional(3)?.unwrap_or(false);
        let add = match cmd.as_str() {
            "add" => true,
            "remove" => false,
            _ => return Err(RpcError::invalid_parameter("command must be add or remove")),
        };
        let request = rnet_net::net::SetBanRequest {
            target,
            add,
            bantime: bantime.and_then(|t| t.as_u64()).filter(|t| *t > 0),
            absolute,
        };
        net(node)?.set_ban(request).map_err(|e| RpcError::new(if add { -23 } else { -30 }, e))?;
        Ok(Value::Null)
    })?;
    reg(
        r,
        node,
        MethodInfo::new("listbanned", "Network").help("listbanned\n\nCurrent bans."),
        |node, _| {
            Ok(Value::Array(
            net(node)?
                .list_banned()
                .into_iter()
                .map(|(k, e)| json!({"address": k, "ban_created": e.created, "banned_until": e.until, "ban_reason": e.reason}))
                .collect(),
        ))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("clearbanned", "Network").help("clearbanned\n\nRemoves every ban."),
        |node, _| {
            net(node)?.clear_banned();
            Ok(Value::Null)
        },
    )?;
    Ok(())
}
