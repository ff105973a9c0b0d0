//! Pathfinding: Dijkstra from the payee back to the payer, and the route it produces.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use rnet_crypto::PublicKey;

use super::error::RouteError;
use super::graph::{NetworkGraph, hint_channels};
use super::policy::{ChannelPolicy, MAX_MSAT};
use super::scorer::Scorer;
use crate::gossip::ShortChannelId;
use crate::invoice::{Invoice, RouteHint};
use crate::onion::{FinalPayload, ForwardPayload, HopPayload, MAX_HOPS};

/// Default bound on the whole route's CLTV (blocks from the current height to the first HTLC's
/// expiry): 2016 blocks, about two weeks at 10-minute blocks, as common BOLT implementations.
pub const DEFAULT_MAX_TOTAL_CLTV: u32 = 2016;

/// Channels and nodes a route must avoid (typically those that failed an earlier attempt).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// Channels not to use, in either direction.
    pub channels: BTreeSet<ShortChannelId>,
    /// Nodes not to route through (never applied to the payer or the payee).
    pub nodes: BTreeSet<PublicKey>,
}

/// What to route: who pays whom, how much, and under which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteParams {
    /// The paying node (the route starts at its channels).
    pub payer: PublicKey,
    /// The payee.
    pub payee: PublicKey,
    /// Amount the payee must receive, msat.
    pub amount_msat: u64,
    /// The invoice's `min_final_cltv_expiry_delta`: the final HTLC expires at
    /// `current_height + final_cltv_expiry_delta`.
    pub final_cltv_expiry_delta: u32,
    /// The current block height.
    pub current_height: u32,
    /// Private channels towards the payee (the invoice's `r` fields), used for this search only.
    pub route_hints: Vec<RouteHint>,
    /// Most hops (channels), 1 to 20.
    pub max_hops: usize,
    /// Most blocks from `current_height` to the first HTLC's expiry.
    pub max_total_cltv: u32,
    /// What to avoid.
    pub exclusions: Exclusions,
}

impl RouteParams {
    /// Parameters with the defaults: no hints, 20 hops, [`DEFAULT_MAX_TOTAL_CLTV`], nothing
    /// excluded.
    pub fn new(
        payer: PublicKey,
        payee: PublicKey,
        amount_msat: u64,
        final_cltv_expiry_delta: u32,
        current_height: u32,
    ) -> Self {
        Self {
            payer,
            payee,
            amount_msat,
            final_cltv_expiry_delta,
            current_height,
            route_hints: Vec::new(),
            max_hops: MAX_HOPS,
            max_total_cltv: DEFAULT_MAX_TOTAL_CLTV,
            exclusions: Exclusions::default(),
        }
    }

    /// Parameters to pay `invoice`: its payee, final CLTV delta and route hints; the amount is
    /// the invoice's, or `amount_msat` when the invoice has none.
    pub fn for_invoice(
        payer: PublicKey,
        invoice: &Invoice,
        amount_msat: Option<u64>,
        current_height: u32,
    ) -> Result<Self, RouteError> {
        let amount = invoice.amount_milli_resonance().or(amount_msat).unwrap_or(0);
        let mut params = Self::new(
            payer,
            *invoice.payee(),
            amount,
            invoice.min_final_cltv_expiry_delta(),
            current_height,
        );
        params.route_hints = invoice.route_hints().to_vec();
        params.check()?;
        Ok(params)
    }

    fn check(&self) -> Result<(), RouteError> {
        if self.amount_msat == 0 || self.amount_msat > MAX_MSAT {
            return Err(RouteError::InvalidAmount(self.amount_msat));
        }
        if self.payer == self.payee {
            return Err(RouteError::PayerIsPayee);
        }
        if self.max_hops == 0 || self.max_hops > MAX_HOPS {
            return Err(RouteError::InvalidMaxHops(self.max_hops));
        }
        if self.final_cltv_expiry_delta > self.max_total_cltv {
            return Err(RouteError::FinalCltvTooLarge {
                final_delta: self.final_cltv_expiry_delta,
                max_total: self.max_total_cltv,
            });
        }
        if self.current_height.checked_add(self.max_total_cltv).is_none() {
            return Err(RouteError::CltvOverflow);
        }
        Ok(())
    }
}

/// One hop of a route: the HTLC sent over `short_channel_id` to `node_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteHop {
    /// The node receiving the HTLC (the payee for the last hop).
    pub node_id: PublicKey,
    /// The channel the HTLC travels over (from the previous hop, or the payer).
    pub short_channel_id: ShortChannelId,
    /// The HTLC's amount, msat.
    pub amount_msat: u64,
    /// The HTLC's expiry (block height).
    pub cltv_expiry: u32,
    /// What `node_id` keeps for forwarding: `amount_msat` minus the next hop's; 0 for the last.
    pub fee_msat: u64,
}

/// A route from the payer to the payee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The hops, first (the payer's channel) to last (into the payee).
    pub hops: Vec<RouteHop>,
    /// What the payer sends: the first hop's amount (the payee's amount plus every fee).
    pub total_amount_msat: u64,
    /// Blocks from the current height to the first HTLC's expiry: the final delta plus every
    /// forwarding node's `cltv_expiry_delta`.
    pub total_cltv: u32,
}

impl Route {
    /// Every fee paid: `total_amount_msat` minus the payee's amount.
    pub fn total_fee_msat(&self) -> u64 {
        self.hops.iter().map(|h| h.fee_msat).sum()
    }

    /// The hops' node ids, in order: the onion's hop keys.
    pub fn node_ids(&self) -> Vec<PublicKey> {
        self.hops.iter().map(|h| h.node_id).collect()
    }

    /// The onion payloads, one per hop. Hop `i < n−1` is told to forward the next hop's HTLC:
    /// `amt_to_forward = hops[i+1].amount_msat`, `outgoing_cltv_value = hops[i+1].cltv_expiry`,
    /// `short_channel_id = hops[i+1].short_channel_id`; the last hop gets its own amount and
    /// expiry with `payment_secret`, `total_msat` and the optional metadata. Each forwarding
    /// node's check ([`ChannelPolicy::check_forward`]) then holds exactly.
    pub fn onion_payloads(
        &self,
        payment_secret: [u8; 32],
        total_msat: u64,
        payment_metadata: Option<Vec<u8>>,
    ) -> Result<Vec<HopPayload>, RouteError> {
        let (last, forwards) = self.hops.split_last().ok_or(RouteError::EmptyRoute)?;
        let mut out: Vec<HopPayload> = forwards
            .iter()
            .zip(&self.hops[1..])
            .map(|(_, next)| {
                HopPayload::Forward(ForwardPayload {
                    amt_to_forward: next.amount_msat,
                    outgoing_cltv_value: next.cltv_expiry,
                    short_channel_id: next.short_channel_id.0,
                })
            })
            .collect();
        out.push(HopPayload::Final(FinalPayload {
            amt_to_forward: last.amount_msat,
            outgoing_cltv_value: last.cltv_expiry,
            payment_secret,
            total_msat,
            payment_metadata,
        }));
        Ok(out)
    }
}

/// A directed, enabled channel as pathfinding sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edge {
    pub(crate) short_channel_id: ShortChannelId,
    pub(crate) source: PublicKey,
    pub(crate) target: PublicKey,
    pub(crate) policy: ChannelPolicy,
    pub(crate) capacity_msat: Option<u64>,
}

/// The best known way from a node to the payee.
#[derive(Debug, Clone, Copy)]
struct Label {
    cost: u128,
    /// Amount of the HTLC arriving at this node.
    amount: u64,
    /// Blocks from the current height to the expiry of the HTLC arriving at this node.
    cltv: u32,
    /// Channels from this node to the payee.
    hops: usize,
    /// The channel taken out of this node (`None` at the payee).
    next: Option<Edge>,
}

impl Label {
    fn key(&self) -> (u128, usize, u64) {
        (self.cost, self.hops, self.amount)
    }
}

/// Find the cheapest route for `params` in `graph` plus `params.route_hints`, pricing each
/// hop with `scorer` at local time `now`.
///
/// Dijkstra runs from the payee towards the payer. A node's label holds the amount and CLTV
/// delta its incoming HTLC must carry; relaxing the channel `u → v` (priced by `u`'s policy)
/// requires `htlc_minimum ≤ amount_v ≤ min(htlc_maximum, capacity)`, gives
/// `amount_u = amount_v + fee_u(amount_v)` and `cltv_u = cltv_v + delta_u` (neither added when
/// `u` is the payer, who pays no fee to itself), and is refused past `max_hops` or
/// `max_total_cltv`. The cost of a forwarding hop is `fee + cltv_risk + base_penalty +
/// failure_penalty` ([`Scorer::hop_cost`]); the payer's own channel costs only its failure
/// penalty. Disabled directions, excluded channels and excluded nodes are skipped.
pub fn find_route(
    graph: &NetworkGraph,
    params: &RouteParams,
    scorer: &Scorer,
    now: u32,
) -> Result<Route, RouteError> {
    params.check()?;
    let no_route =
        || RouteError::NoRoute { payee: params.payee.to_bytes(), amount_msat: params.amount_msat };

    let mut hint_edges: HashMap<PublicKey, Vec<Edge>> = HashMap::new();
    for hint in &params.route_hints {
        for (from, to, scid, policy) in hint_channels(hint, &params.payee) {
            if from != to {
                hint_edges.entry(to).or_default().push(Edge {
                    short_channel_id: scid,
                    source: from,
                    target: to,
                    policy,
                    capacity_msat: None,
                });
            }
        }
    }

    let mut labels: BTreeMap<PublicKey, Label> = BTreeMap::new();
    let mut settled: HashSet<PublicKey> = HashSet::new();
    let mut heap = BinaryHeap::new();
    let start = Label {
        cost: 0,
        amount: params.amount_msat,
        cltv: params.final_cltv_expiry_delta,
        hops: 0,
        next: None,
    };
    labels.insert(params.payee, start);
    heap.push(Reverse((start.key(), params.payee)));
    let mut edges = Vec::new();

    while let Some(Reverse((key, v))) = heap.pop() {
        if settled.contains(&v) {
            continue;
        }
        let Some(label_v) = labels.get(&v).copied() else { continue };
        if label_v.key() != key {
            continue;
        }
        settled.insert(v);
        if v == params.payer {
            return build_route(&labels, params);
        }
        if label_v.hops >= params.max_hops {
            continue;
        }
        edges.clear();
        graph.edges_into(&v, &mut edges);
        if let Some(extra) = hint_edges.get(&v) {
            edges.extend_from_slice(extra);
        }
        for edge in &edges {
            let u = edge.source;
            if u == params.payee
                || settled.contains(&u)
                || params.exclusions.channels.contains(&edge.short_channel_id)
                || (u != params.payer && params.exclusions.nodes.contains(&u))
            {
                continue;
            }
            let amount = label_v.amount;
            if !edge.policy.allows_amount(amount) || edge.capacity_msat.is_some_and(|c| amount > c)
            {
                continue;
            }
            let penalty = scorer.failure_penalty_msat(edge.short_channel_id, &u, now);
            let candidate = if u == params.payer {
                Label {
                    cost: label_v.cost + u128::from(penalty),
                    amount,
                    cltv: label_v.cltv,
                    hops: label_v.hops + 1,
                    next: Some(*edge),
                }
            } else {
                let Some(fee) = edge.policy.fee_msat(amount) else { continue };
                let Some(amount_u) = amount.checked_add(fee).filter(|a| *a <= MAX_MSAT) else {
                    continue;
                };
                let cltv_u = label_v.cltv + u32::from(edge.policy.cltv_expiry_delta);
                if cltv_u > params.max_total_cltv {
                    continue;
                }
                let cost = scorer.hop_cost(fee, amount, edge.policy.cltv_expiry_delta, penalty);
                Label {
                    cost: label_v.cost + cost,
                    amount: amount_u,
                    cltv: cltv_u,
                    hops: label_v.hops + 1,
                    next: Some(*edge),
                }
            };
            if labels.get(&u).is_none_or(|l| candidate.key() < l.key()) {
                labels.insert(u, candidate);
                heap.push(Reverse((candidate.key(), u)));
            }
        }
    }
    Err(no_route())
}

fn build_route(
    labels: &BTreeMap<PublicKey, Label>,
    params: &RouteParams,
) -> Result<Route, RouteError> {
    let payer = labels.get(&params.payer).ok_or(RouteError::EmptyRoute)?;
    let mut hops: Vec<RouteHop> = Vec::with_capacity(payer.hops);
    let mut next = payer.next;
    while let Some(edge) = next {
        let label = labels.get(&edge.target).ok_or(RouteError::EmptyRoute)?;
        hops.push(RouteHop {
            node_id: edge.target,
            short_channel_id: edge.short_channel_id,
            amount_msat: label.amount,
            cltv_expiry: params
                .current_height
                .checked_add(label.cltv)
                .ok_or(RouteError::CltvOverflow)?,
            fee_msat: 0,
        });
        next = label.next;
        if hops.len() > MAX_HOPS {
            return Err(RouteError::EmptyRoute);
        }
    }
    for i in 0..hops.len().saturating_sub(1) {
        hops[i].fee_msat = hops[i].amount_msat - hops[i + 1].amount_msat;
    }
    let first = hops.first().ok_or(RouteError::EmptyRoute)?;
    Ok(Route { total_amount_msat: first.amount_msat, total_cltv: payer.cltv, hops })
}
