//! Lightning RPC methods (`rnetd -lightning`), in Core Lightning's style and names where they do
//! not clash with Bitcoin Core's (docs/lightning.md §8.3): `getlightninginfo`, `connect`,
//! `fundchannel`, `listpeerchannels`, `invoice`, `decodepay`, `pay`, `listinvoices`,
//! `listpays`, `close`, `getroute`. Amounts on channels are in milli-resonance (`_msat`),
//! channel sizes in resonance.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rnet_crypto::PublicKey;
use rnet_lightning::invoice::{Invoice, InvoiceDescription};
use rnet_lightning::node::{
    ChanStatus, ChannelDetails, InvoiceStatus, NodeEvent, PaymentId, PaymentStatus,
};
use rnet_lightning::router::{RouteParams, Scorer, find_route};
use rnet_lightning::wire::ChannelId;
use rnet_primitives::Amount;
use rnet_rpc::{MethodInfo, Params, RegisterError, Registry, RpcError};
use serde_json::{Value, json};

use super::reg;
use crate::lightning::service::{LightningService, ServiceError};
use crate::node::Node;

/// How long `pay` waits for the payment's outcome.
const PAY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `fundchannel` waits for the funding transaction.
const FUND_TIMEOUT: Duration = Duration::from_secs(30);

fn service(node: &Node) -> Result<Arc<LightningService>, RpcError> {
    node.lightning
        .get()
        .cloned()
        .ok_or_else(|| RpcError::misc("Lightning is not running: start rnetd with -lightning"))
}

fn service_err(e: ServiceError) -> RpcError {
    match e {
        ServiceError::NoWallet => {
            RpcError::new(rnet_rpc::codes::RPC_WALLET_NOT_FOUND, e.to_string())
        }
        other => RpcError::misc(other.to_string()),
    }
}

fn param_node_id(p: &Params, index: usize, name: &str) -> Result<PublicKey, RpcError> {
    let text: String = p.required(index)?;
    let bytes: [u8; 32] = hex::decode(&text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| RpcError::invalid_parameter(format!("{name}: expected 64 hex digits")))?;
    PublicKey::from_bytes(&bytes)
        .map_err(|_| RpcError::invalid_parameter(format!("{name}: not a node id")))
}

fn param_invoice(p: &Params, index: usize, node: &Node) -> Result<Invoice, RpcError> {
    let text: String = p.required(index)?;
    let invoice = Invoice::parse(&text)
        .map_err(|e| RpcError::invalid_parameter(format!("invalid invoice: {e}")))?;
    if invoice.network() != node.network() {
        return Err(RpcError::invalid_parameter(format!(
            "invoice is for {}, this node runs {}",
            invoice.network(),
            node.network()
        )));
    }
    Ok(invoice)
}

fn channel_json(c: &ChannelDetails) -> Value {
    let state = match c.status {
        ChanStatus::Open => format!("{:?}", c.phase),
        ChanStatus::ForceClosing => "ForceClosing".to_string(),
        ChanStatus::Closed => "Closed".to_string(),
    };
    json!({
        "peer_id": hex::encode(c.peer.to_bytes()),
        "channel_id": hex::encode(c.channel_id.0),
        "short_channel_id": c.short_channel_id.map(|s| s.to_string()),
        "state": state,
        "opener": if c.is_funder { "local" } else { "remote" },
        "total_msat": c.capacity.0.saturating_mul(1000),
        "to_us_msat": c.local_balance_msat,
        "to_them_msat": c.remote_balance_msat,
        "pending_htlcs": c.pending_htlcs,
        "funding_txid": c.funding_outpoint.map(|o| o.txid.to_hex()),
        "funding_outnum": c.funding_outpoint.map(|o| o.vout),
        "feerate": c.feerate.map(|f| json!({ "perkb": f.0 })),
        // What each side could claim if our latest commitment confirmed now (resonance):
        // to_us + to_them + offered + received + fee = the channel's value.
        "onchain": c.onchain.map(|o| json!({
            "to_us_sat": o.to_holder.0,
            "to_them_sat": o.to_counterparty.0,
            "offered_htlcs_sat": o.offered_htlcs.0,
            "received_htlcs_sat": o.received_htlcs.0,
            "fee_sat": o.fee.0,
            "to_self_delay": o.to_self_delay,
        })),
    })
}

fn invoice_json(invoice: &Invoice) -> Value {
    let description = match invoice.description() {
        InvoiceDescription::Text(t) => json!({ "description": t }),
        InvoiceDescription::Hash(h) => json!({ "description_hash": hex::encode(h) }),
    };
    let mut v = json!({
        "network": invoice.network().to_string(),
        "payee": hex::encode(invoice.payee().to_bytes()),
        "payment_hash": hex::encode(invoice.payment_hash()),
        "amount_msat": invoice.amount_milli_resonance(),
        "created_at": invoice.timestamp(),
        "expiry": invoice.expiry(),
        "expires_at": invoice.expires_at(),
        "min_final_cltv_expiry": invoice.min_final_cltv_expiry_delta(),
        "routes": invoice.route_hints().iter().map(|h| {
            h.hops().iter().map(|hop| json!({
                "pubkey": hex::encode(hop.src_node_id.to_bytes()),
                "short_channel_id": rnet_lightning::gossip::ShortChannelId(hop.short_channel_id).to_string(),
                "fee_base_msat": hop.fee_base_msat,
                "fee_proportional_millionths": hop.fee_proportional_millionths,
                "cltv_expiry_delta": hop.cltv_expiry_delta,
            })).collect::<Vec<_>>()
        }).collect::<Vec<_>>(),
    });
    if let (Some(obj), Some(d)) = (v.as_object_mut(), description.as_object()) {
        obj.extend(d.clone());
    }
    v
}

/// The channel named by `id`: a channel id (64 hex digits) or a peer's node id (its only
/// open channel).
fn find_channel(svc: &LightningService, id: &str) -> Result<ChannelId, RpcError> {
    let channels = svc.with_node(|n| Ok((n.list_channels(), Vec::new()))).map_err(service_err)?;
    let open = channels.iter().filter(|c| c.status == ChanStatus::Open);
    let matching: Vec<&ChannelDetails> = open
        .filter(|c| hex::encode(c.channel_id.0) == id || hex::encode(c.peer.to_bytes()) == id)
        .collect();
    match matching.as_slice() {
        [c] => Ok(c.channel_id),
        [] => Err(RpcError::invalid_parameter(format!("no open channel {id}"))),
        _ => Err(RpcError::invalid_parameter(format!(
            "several channels with {id}: give a channel id"
        ))),
    }
}

/// Registers the Lightning methods.
pub fn register(r: &mut Registry, node: &Arc<Node>) -> Result<(), RegisterError> {
    reg(
        r,
        node,
        MethodInfo::new("getlightninginfo", "Lightning").help(
            "getlightninginfo\n\nThe Lightning node: its id (Ed25519, hex), port, block height followed (null until \
             the node is created), channel and peer counts, and with -watchtower the appointments held.",
        ),
        |node, _| {
            let svc = service(node)?;
            let state = svc.existing(|n| (n.height(), n.list_channels().len(), n.list_peers().len()));
            Ok(json!({
                "id": hex::encode(svc.node_id().to_bytes()),
                "port": svc.port(),
                "blockheight": state.map(|s| s.0),
                "num_channels": state.map_or(0, |s| s.1),
                "num_peers": state.map_or(0, |s| s.2),
                "watchtower_appointments": svc.tower_appointments(),
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("connect", "Lightning").params(["id", "host", "port"]).help(
            "connect \"id\" \"host\" port\n\nConnects to the Lightning node `id` (64 hex digits) at host:port, \
             authenticating it (docs/lightning.md §8.1). Returns {\"id\"}.",
        ),
        |node, p| {
            let svc = service(node)?;
            let id = param_node_id(p, 0, "id")?;
            let host: String = p.required(1)?;
            let port: u16 = p.required(2)?;
            let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| RpcError::invalid_parameter(format!("cannot resolve {host}")))?;
            tokio::runtime::Handle::current()
                .block_on(svc.connect(id, addr))
                .map_err(service_err)?;
            Ok(json!({ "id": hex::encode(id.to_bytes()) }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("fundchannel", "Lightning").params(["id", "amount", "push_msat", "announce"]).help(
            "fundchannel \"id\" amount ( push_msat announce )\n\nOpens a channel of `amount` resonance to the connected \
             peer `id`, funded by the Lightning wallet, pushing `push_msat` to it; with announce (default true) the \
             channel is announced to the network once 6 blocks deep, else it stays private (reached through invoice \
             route hints). Waits for the funding transaction (broadcast once the peer signed our first commitment). \
             Returns {\"channel_id\", \"txid\", \"outnum\"}.",
        ),
        |node, p| {
            let svc = service(node)?;
            let id = param_node_id(p, 0, "id")?;
            let amount: u64 = p.required(1)?;
            let push: u64 = p.optional(2)?.unwrap_or(0);
            let announce: bool = p.optional(3)?.unwrap_or(true);
            let known: Vec<ChannelId> = svc
                .with_node(|n| Ok((n.list_channels().iter().map(|c| c.channel_id).collect(), Vec::new())))
                .map_err(service_err)?;
            svc.with_node(|n| n.open_channel(id, Amount(amount), push, announce)).map_err(service_err)?;
            let deadline = Instant::now() + FUND_TIMEOUT;
            loop {
                let channels = svc.with_node(|n| Ok((n.list_channels(), Vec::new()))).map_err(service_err)?;
                let new = channels
                    .iter()
                    .find(|c| c.peer == id && !known.contains(&c.channel_id) && c.funding_outpoint.is_some());
                if let Some(c) = new {
                    let o = c.funding_outpoint.expect("checked");
                    return Ok(json!({
                        "channel_id": hex::encode(c.channel_id.0),
                        "txid": o.txid.to_hex(),
                        "outnum": o.vout,
                    }));
                }
                if Instant::now() > deadline {
                    return Err(RpcError::misc("the peer did not complete the channel opening in time"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("listpeerchannels", "Lightning").params(["id"]).help(
            "listpeerchannels ( \"id\" )\n\nEvery channel (with the peer `id` only, if given): state, capacity \
             (total_msat), balances (to_us_msat, to_them_msat), pending HTLCs, funding outpoint, short channel id, and \
             onchain: what each side could claim if our latest commitment confirmed now (to_us_sat after \
             to_self_delay blocks, to_them_sat, offered_htlcs_sat, received_htlcs_sat, fee_sat; they add up to the \
             channel's value).",
        ),
        |node, p| {
            let svc = service(node)?;
            let only = match p.optional::<String>(0)? {
                Some(_) => Some(param_node_id(p, 0, "id")?),
                None => None,
            };
            let channels = svc.with_node(|n| Ok((n.list_channels(), Vec::new()))).map_err(service_err)?;
            let list: Vec<Value> = channels
                .iter()
                .filter(|c| only.is_none_or(|id| c.peer == id))
                .map(channel_json)
                .collect();
            Ok(json!({ "channels": list }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("invoice", "Lightning").params(["amount_msat", "description", "expiry"]).help(
            "invoice amount_msat \"description\" ( expiry )\n\nCreates an invoice for `amount_msat` milli-resonance \
             (expiry in seconds, default 3600). Returns {\"bolt11\", \"payment_hash\", \"expires_at\"}.",
        ),
        |node, p| {
            let svc = service(node)?;
            let amount: u64 = p.required(0)?;
            let description: String = p.required(1)?;
            let expiry: u64 = p.optional(2)?.unwrap_or(3600);
            if amount == 0 || expiry == 0 {
                return Err(RpcError::invalid_parameter("amount_msat and expiry must be positive"));
            }
            let invoice = svc
                .with_node(|n| Ok((n.create_invoice(amount, &description, expiry)?, Vec::new())))
                .map_err(service_err)?;
            Ok(json!({
                "bolt11": invoice.to_string(),
                "payment_hash": hex::encode(invoice.payment_hash()),
                "expires_at": invoice.expires_at(),
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("decodepay", "Lightning").params(["bolt11"]).help(
            "decodepay \"bolt11\"\n\nDecodes and checks an invoice (checksum, amount, fields, the payee's signature).",
        ),
        |node, p| Ok(invoice_json(&param_invoice(p, 0, node)?)),
    )?;
    reg(
        r,
        node,
        MethodInfo::new("pay", "Lightning").params(["bolt11"]).help(
            "pay \"bolt11\"\n\nPays an invoice: finds a route, sends the payment and retries around failures. Waits \
             for the outcome (60 s). Returns {\"payment_hash\", \"payment_preimage\", \"amount_msat\", \
             \"amount_sent_msat\", \"status\": \"complete\"}; an error if it failed.",
        ),
        |node, p| {
            let svc = service(node)?;
            let invoice = param_invoice(p, 0, node)?;
            let amount = invoice
                .amount_milli_resonance()
                .ok_or_else(|| RpcError::invalid_parameter("the invoice has no amount"))?;
            let mut events = svc.subscribe();
            let id: PaymentId = svc.with_node(|n| n.pay_invoice(&invoice)).map_err(service_err)?;
            let deadline = Instant::now() + PAY_TIMEOUT;
            let hash = *invoice.payment_hash();
            loop {
                match events.try_recv() {
                    Ok(NodeEvent::PaymentSent { id: got, preimage, fee_msat, .. }) if got == id => {
                        return Ok(json!({
                            "payment_hash": hex::encode(hash),
                            "payment_preimage": hex::encode(preimage),
                            "amount_msat": amount,
                            "amount_sent_msat": amount + fee_msat,
                            "status": "complete",
                        }));
                    }
                    Ok(NodeEvent::PaymentFailed { id: got, reason, .. }) if got == id => {
                        return Err(RpcError::misc(format!("payment failed: {reason}")));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(_) => {}
                }
                if Instant::now() > deadline {
                    return Err(RpcError::misc("payment still pending after 60 s (see listpays)"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("listinvoices", "Lightning").help(
            "listinvoices\n\nOur invoices: bolt11, payment_hash, status (unpaid, paid with amount_received_msat, \
             expired).",
        ),
        |node, _| {
            let svc = service(node)?;
            let list = svc.with_node(|n| Ok((n.list_invoices(), Vec::new()))).map_err(service_err)?;
            let list: Vec<Value> = list
                .iter()
                .map(|i| {
                    let (status, received) = match i.status {
                        InvoiceStatus::Unpaid => ("unpaid", None),
                        InvoiceStatus::Paid(amount_msat) => ("paid", Some(amount_msat)),
                        InvoiceStatus::Expired => ("expired", None),
                    };
                    json!({
                        "bolt11": i.invoice,
                        "payment_hash": hex::encode(i.payment_hash),
                        "status": status,
                        "amount_received_msat": received,
                    })
                })
                .collect();
            Ok(json!({ "invoices": list }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("listpays", "Lightning").help(
            "listpays\n\nOur payments: payment_hash, amount_msat, attempts, status (pending, complete with \
             preimage and fee, failed with the reason).",
        ),
        |node, _| {
            let svc = service(node)?;
            let list = svc.with_node(|n| Ok((n.list_payments(), Vec::new()))).map_err(service_err)?;
            let list: Vec<Value> = list
                .iter()
                .map(|pmt| {
                    let mut v = json!({
                        "payment_hash": hex::encode(pmt.payment_hash),
                        "amount_msat": pmt.amount_msat,
                        "attempts": pmt.attempts,
                    });
                    let extra = match &pmt.status {
                        PaymentStatus::Pending => json!({ "status": "pending" }),
                        PaymentStatus::Succeeded { preimage, fee_msat } => json!({
                            "status": "complete",
                            "preimage": hex::encode(preimage),
                            "fee_msat": fee_msat,
                        }),
                        PaymentStatus::Failed { reason } => json!({ "status": "failed", "reason": reason }),
                    };
                    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                        o.extend(e.clone());
                    }
                    v
                })
                .collect();
            Ok(json!({ "pays": list }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("close", "Lightning").params(["id", "force"]).help(
            "close \"id\" ( force )\n\nCloses a channel (by channel id, or the peer's node id if it is the only open \
             one): cooperatively, paying our side to the Lightning wallet's recovery-policy address; with force \
             true, unilaterally (our commitment is broadcast; our funds wait the delay). Returns {\"channel_id\", \
             \"type\": \"mutual\"|\"unilateral\"}.",
        ),
        |node, p| {
            let svc = service(node)?;
            let id: String = p.required(0)?;
            let force: bool = p.optional(1)?.unwrap_or(false);
            let channel = find_channel(&svc, &id)?;
            if force {
                svc.with_node(|n| Ok(((), n.force_close(channel)?))).map_err(service_err)?;
            } else {
                svc.with_node(|n| Ok(((), n.close_channel(channel)?))).map_err(service_err)?;
            }
            Ok(json!({
                "channel_id": hex::encode(channel.0),
                "type": if force { "unilateral" } else { "mutual" },
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("devsignlasttx", "Lightning").params(["id"]).help(
            "devsignlasttx \"id\"\n\nRegtest only: our latest commitment transaction of a channel (by channel id, or \
             the peer's node id), fully signed, without broadcasting it. Broadcasting it after the channel moved \
             on is cheating, which is what it is for: testing that the counterparty punishes it. Returns \
             {\"tx\": hex, \"txid\"}.",
        ),
        |node, p| {
            if node.network() != rnet_primitives::Network::Regtest {
                return Err(RpcError::misc("devsignlasttx is only available on regtest"));
            }
            let svc = service(node)?;
            let id: String = p.required(0)?;
            let channel = find_channel(&svc, &id)?;
            let commitment = svc
                .with_node(|n| Ok((n.holder_commitment(channel)?, Vec::new())))
                .map_err(service_err)?;
            Ok(json!({
                "tx": hex::encode(commitment.tx.to_bytes()),
                "txid": commitment.tx.txid().to_hex(),
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getroute", "Lightning").params(["id", "amount_msat", "cltv"]).help(
            "getroute \"id\" amount_msat ( cltv )\n\nThe route this node would take to pay `amount_msat` to node `id` \
             with a final CLTV delta `cltv` (default 18): per hop the node, short channel id, amount and expiry.",
        ),
        |node, p| {
            let svc = service(node)?;
            let payee = param_node_id(p, 0, "id")?;
            let amount: u64 = p.required(1)?;
            let cltv: u32 = p.optional(2)?.unwrap_or(18);
            let route = svc
                .with_node(|n| {
                    let params = RouteParams::new(n.node_id(), payee, amount, cltv, n.height());
                    let now = u32::try_from(crate::node::now()).unwrap_or(u32::MAX);
                    Ok((find_route(n.graph(), &params, &Scorer::default(), now), Vec::new()))
                })
                .map_err(service_err)?
                .map_err(|e| RpcError::misc(format!("no route: {e}")))?;
            let hops: Vec<Value> = route
                .hops
                .iter()
                .map(|h| {
                    json!({
                        "id": hex::encode(h.node_id.to_bytes()),
                        "channel": h.short_channel_id.to_string(),
                        "amount_msat": h.amount_msat,
                        "delay": h.cltv_expiry,
                    })
                })
                .collect();
            Ok(json!({ "route": hops }))
        },
    )?;
    Ok(())
}
