//! The channel graph and pathfinding end to end: signed gossip into a [`NetworkGraph`], BOLT 7
//! update rules, routes on a hand-built 10-node graph checked by hand, exclusions and retries,
//! route hints, the 20-hop limit, route → onion → every hop's checks, and properties.

use std::collections::BTreeSet;

use proptest::prelude::*;
use rnet_crypto::{PublicKey, SigningKey};
use rnet_lightning::channel::funding_output;
use rnet_lightning::gossip::{
    ChannelAnnouncement, ChannelUpdate, GossipError, GossipMessage, NodeAnnouncement,
    ShortChannelId, UnsignedChannelAnnouncement, UnsignedChannelUpdate, UnsignedNodeAnnouncement,
};
use rnet_lightning::invoice::{InvoiceBuilder, RouteHint, RouteHintHop};
use rnet_lightning::onion::{
    DecodedFailure, FailureCode, FailureMessage, HopPayload, NodeSecret, Peeled, SessionKey,
    construct_onion, peel_onion,
};
use rnet_lightning::router::{
    Blame, ChannelPolicy, Direction, ForwardError, GraphError, GraphLimits, IgnoreReason,
    NetworkGraph, PaymentAttempts, Route, RouteError, RouteParams, STALE_AFTER_SECS, Scorer,
    ScorerParams, UpdateOutcome, blame_failure, find_route,
};
use rnet_primitives::{Amount, BlockHash, Network, TxOut};

const NOW: u32 = 1_700_000_000;
const HEIGHT: u32 = 800_000;
const FINAL_DELTA: u32 = 18;
const AMOUNT: u64 = 1_000_000;

fn chain() -> BlockHash {
    BlockHash::from_bytes([0x42; 32])
}

/// Node `i` has seed `[i + 1; 32]`; its funding key has seed `[i + 101; 32]`.
fn node_key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[i as u8 + 1; 32])
}

fn node(i: usize) -> PublicKey {
    node_key(i).public_key()
}

fn funding_key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[i as u8 + 101; 32])
}

fn scid(k: u32) -> ShortChannelId {
    ShortChannelId::new(700_000 + k, k, 0).unwrap()
}

/// `(fee_base, ppm, cltv_delta, htlc_min, htlc_max)`.
type Pol = (u32, u32, u16, u64, u64);
const DEFAULT_POL: Pol = (1_000, 1, 40, 1, 1_000_000_000);
const CAPACITY_RES: u64 = 10_000_000;

fn sign_update(
    from: usize,
    to: usize,
    k: u32,
    pol: Pol,
    timestamp: u32,
    disabled: bool,
) -> ChannelUpdate {
    let direction = u8::from(node(from).as_bytes() > node(to).as_bytes());
    UnsignedChannelUpdate {
        chain_hash: chain(),
        short_channel_id: scid(k),
        timestamp,
        channel_flags: direction | if disabled { 2 } else { 0 },
        cltv_expiry_delta: pol.2,
        htlc_minimum_msat: pol.3,
        fee_base_msat: pol.0,
        fee_proportional_millionths: pol.1,
        htlc_maximum_msat: pol.4,
    }
    .sign(&node_key(from))
}

fn announce(a: usize, b: usize, k: u32, capacity_res: u64) -> (ChannelAnnouncement, TxOut) {
    let (n1, n2) = if node(a).as_bytes() < node(b).as_bytes() { (a, b) } else { (b, a) };
    let contents = UnsignedChannelAnnouncement {
        features: vec![],
        chain_hash: chain(),
        short_channel_id: scid(k),
        node_id_1: node(n1),
        node_id_2: node(n2),
        funding_key_1: funding_key(n1).public_key(),
        funding_key_2: funding_key(n2).public_key(),
    };
    let ann = ChannelAnnouncement::sign_all(
        contents,
        &node_key(n1),
        &node_key(n2),
        &funding_key(n1),
        &funding_key(n2),
    )
    .unwrap();
    let out = funding_output(
        funding_key(a).public_key(),
        funding_key(b).public_key(),
        Amount(capacity_res),
    )
    .unwrap();
    (ann, out)
}

/// Announce channel `k` between `a` and `b` and give both directions a policy.
fn add_channel(g: &mut NetworkGraph, k: u32, a: usize, b: usize, ab: Pol, ba: Pol) {
    let (ann, out) = announce(a, b, k, CAPACITY_RES);
    assert_eq!(g.add_channel_announcement(&ann, &out, NOW), Ok(UpdateOutcome::Applied));
    for (from, to, pol) in [(a, b, ab), (b, a, ba)] {
        let u = sign_update(from, to, k, pol, NOW, false);
        assert_eq!(g.apply_channel_update(&u, NOW), Ok(UpdateOutcome::Applied));
    }
}

// Nodes of the hand-built graph.
const P: usize = 0;
const A: usize = 1;
const B: usize = 2;
const C: usize = 3;
const D: usize = 4;
const E: usize = 5;
const F: usize = 6;
const G: usize = 7;
const H: usize = 8;
const Q: usize = 9;
/// A private payee, reachable only through route hints.
const Z: usize = 50;

const FREE: Pol = (0, 0, 0, 0, 1_000_000_000);

/// ```text
///   P ─1─ A ─2─ B ─3─ Q        A→B 2000+200ppm Δ30, B→Q 1000+100ppm Δ40   (fee 3300)
///   P ─4─ C ─5─ Q              C→Q 5000+1000ppm Δ40                       (fee 6000)
///   P ─6─ D ─7─ E ─8─ F ─9─ Q  100+10ppm Δ10 each, E→F htlc_max 900 000   (fee 330)
///   P ─10─ G ─11─ Q            G→Q free, Δ2000: over the 2016-block total with Δ_final 18
///   P ─12─ H ─13─ Q            H→Q free, Δ10, but disabled
/// ```
fn test_graph() -> NetworkGraph {
    let mut g = NetworkGraph::new(chain());
    add_channel(&mut g, 1, P, A, FREE, DEFAULT_POL);
    add_channel(&mut g, 2, A, B, (2_000, 200, 30, 1, 1_000_000_000), DEFAULT_POL);
    add_channel(&mut g, 3, B, Q, (1_000, 100, 40, 1, 1_000_000_000), DEFAULT_POL);
    add_channel(&mut g, 4, P, C, FREE, DEFAULT_POL);
    add_channel(&mut g, 5, C, Q, (5_000, 1_000, 40, 1, 1_000_000_000), DEFAULT_POL);
    add_channel(&mut g, 6, P, D, FREE, DEFAULT_POL);
    add_channel(&mut g, 7, D, E, (100, 10, 10, 1, 1_000_000_000), DEFAULT_POL);
    add_channel(&mut g, 8, E, F, (100, 10, 10, 1, 900_000), DEFAULT_POL);
    add_channel(&mut g, 9, F, Q, (100, 10, 10, 1, 1_000_000_000), DEFAULT_POL);
    add_channel(&mut g, 10, P, G, FREE, DEFAULT_POL);
    add_channel(&mut g, 11, G, Q, (0, 0, 2_000, 1, 1_000_000_000), DEFAULT_POL);
    add_channel(&mut g, 12, P, H, FREE, DEFAULT_POL);
    add_channel(&mut g, 13, H, Q, (0, 0, 10, 1, 1_000_000_000), DEFAULT_POL);
    let off = sign_update(H, Q, 13, (0, 0, 10, 1, 1_000_000_000), NOW + 1, true);
    assert_eq!(g.apply_channel_update(&off, NOW), Ok(UpdateOutcome::Applied));
    assert_eq!(g.node_count(), 10);
    assert_eq!(g.channel_count(), 13);
    g
}

/// Only fees and failures count, so hand computations are exact.
fn fee_only_scorer() -> Scorer {
    Scorer::new(ScorerParams {
        base_penalty_msat: 0,
        cltv_risk_ppb: 0,
        failure_penalty_msat: 1_000_000,
        failure_half_life_secs: 3_600,
    })
}

fn params(payee: usize, amount: u64) -> RouteParams {
    RouteParams::new(node(P), node(payee), amount, FINAL_DELTA, HEIGHT)
}

fn path(route: &Route) -> Vec<(PublicKey, ShortChannelId)> {
    route.hops.iter().map(|h| (h.node_id, h.short_channel_id)).collect()
}

// ---------------------------------------------------------------------------------------------
// Gossip into the graph.

#[test]
fn announcement_signatures_and_fields_are_all_checked() {
    let (ann, out) = announce(A, B, 2, CAPACITY_RES);
    ann.verify(&chain()).unwrap();
    let bytes = ann.encode().unwrap();
    // Each of the four signatures, tampered, is refused by the graph.
    for i in 0..4 {
        let mut b = bytes.clone();
        b[i * 64] ^= 0x80;
        let bad = ChannelAnnouncement::decode(&b).unwrap();
        let mut g = NetworkGraph::new(chain());
        assert!(matches!(
            g.add_channel_announcement(&bad, &out, NOW),
            Err(GraphError::Gossip(GossipError::InvalidSignature(_)))
        ));
        assert_eq!(g.channel_count(), 0);
    }
    // A changed short channel id, capacity script, or chain.
    let mut moved = ann.clone();
    moved.contents.short_channel_id = scid(3);
    let mut g = NetworkGraph::new(chain());
    assert!(g.add_channel_announcement(&moved, &out, NOW).is_err());
    let wrong_out =
        funding_output(funding_key(A).public_key(), funding_key(C).public_key(), Amount(1))
            .unwrap();
    assert_eq!(
        g.add_channel_announcement(&ann, &wrong_out, NOW),
        Err(GraphError::Gossip(GossipError::FundingScriptMismatch))
    );
    let mut other = NetworkGraph::new(BlockHash::from_bytes([7; 32]));
    assert_eq!(
        other.add_channel_announcement(&ann, &out, NOW),
        Err(GraphError::Gossip(GossipError::WrongChain))
    );
    // The capacity is the output's value, in msat.
    assert_eq!(g.add_channel_announcement(&ann, &out, NOW), Ok(UpdateOutcome::Applied));
    assert_eq!(g.channel(scid(2)).unwrap().capacity_msat, Some(CAPACITY_RES * 1000));
    assert_eq!(
        g.add_channel_announcement(&ann, &out, NOW),
        Ok(UpdateOutcome::Ignored(IgnoreReason::Duplicate))
    );
    // Same id, other nodes: conflicting.
    let (other_ann, other_out) = announce(A, C, 2, CAPACITY_RES);
    assert_eq!(
        g.add_channel_announcement(&other_ann, &other_out, NOW),
        Err(GraphError::ConflictingAnnouncement(scid(2)))
    );
    // A required (even) feature bit nobody knows.
    let mut feat = announce(B, C, 9, CAPACITY_RES);
    feat.0.contents.features = vec![0x01];
    assert_eq!(
        g.add_channel_announcement(&feat.0, &feat.1, NOW),
        Err(GraphError::UnknownRequiredFeature)
    );
}

#[test]
fn update_rules_newer_wins_older_ignored_disabled_stored() {
    let mut g = NetworkGraph::new(chain());
    // An update before its announcement is queued, then applied with it.
    let early = sign_update(A, B, 2, (7, 7, 7, 1, 1_000), NOW, false);
    assert_eq!(g.apply_channel_update(&early, NOW), Ok(UpdateOutcome::Queued));
    let (ann, out) = announce(A, B, 2, CAPACITY_RES);
    g.add_channel_announcement(&ann, &out, NOW).unwrap();
    let dir = g.channel(scid(2)).unwrap().direction_from(&node(A)).unwrap();
    let info = g.channel(scid(2)).unwrap().direction(dir).unwrap();
    assert_eq!(info.policy.fee_base_msat, 7);
    assert_eq!(g.pending_count(), 0);

    let newer = sign_update(A, B, 2, (8, 8, 8, 1, 1_000), NOW + 10, false);
    assert_eq!(g.apply_channel_update(&newer, NOW), Ok(UpdateOutcome::Applied));
    for ts in [NOW + 10, NOW + 5] {
        let older = sign_update(A, B, 2, (9, 9, 9, 1, 1_000), ts, false);
        assert_eq!(
            g.apply_channel_update(&older, NOW),
            Ok(UpdateOutcome::Ignored(IgnoreReason::NotNewer))
        );
    }
    let info = g.channel(scid(2)).unwrap().direction(dir).unwrap();
    assert_eq!((info.policy.fee_base_msat, info.timestamp, info.enabled), (8, NOW + 10, true));

    // Disabled is stored as such.
    assert_eq!(info.check_forward(1_000 + 8, 108, 1_000, 100), Ok(()));
    let off = sign_update(A, B, 2, (8, 8, 8, 1, 1_000), NOW + 20, true);
    assert_eq!(g.apply_channel_update(&off, NOW), Ok(UpdateOutcome::Applied));
    let info = g.channel(scid(2)).unwrap().direction(dir).unwrap();
    assert!(!info.enabled);
    assert_eq!(info.check_forward(1_000 + 8, 108, 1_000, 100), Err(ForwardError::Disabled));

    // Signed by the wrong endpoint, htlc_max above capacity, far future, stale.
    let mut forged = sign_update(A, B, 2, DEFAULT_POL, NOW + 30, false);
    forged.signature = sign_update(B, A, 2, DEFAULT_POL, NOW + 30, false).signature;
    assert!(matches!(
        g.apply_channel_update(&forged, NOW),
        Err(GraphError::Gossip(GossipError::InvalidSignature(_)))
    ));
    let huge = sign_update(A, B, 2, (1, 1, 1, 1, CAPACITY_RES * 1000 + 1), NOW + 30, false);
    assert!(matches!(
        g.apply_channel_update(&huge, NOW),
        Err(GraphError::HtlcMaximumAboveCapacity { .. })
    ));
    let future = sign_update(A, B, 2, DEFAULT_POL, NOW + 86_401, false);
    assert_eq!(
        g.apply_channel_update(&future, NOW),
        Ok(UpdateOutcome::Ignored(IgnoreReason::TooFarInFuture))
    );
    let stale = sign_update(A, B, 2, DEFAULT_POL, NOW - STALE_AFTER_SECS - 1, false);
    assert_eq!(
        g.apply_channel_update(&stale, NOW),
        Ok(UpdateOutcome::Ignored(IgnoreReason::Stale))
    );
}

#[test]
fn node_announcements_need_a_public_channel_and_a_newer_timestamp() {
    let mut g = NetworkGraph::new(chain());
    let na = |ts: u32| {
        UnsignedNodeAnnouncement {
            features: vec![],
            timestamp: ts,
            node_id: node(A),
            rgb_color: [0; 3],
            alias: [b'a'; 32],
            addresses: vec![],
            unknown_addresses: vec![],
        }
        .sign(&node_key(A))
        .unwrap()
    };
    assert_eq!(
        g.apply_node_announcement(&na(NOW), NOW),
        Ok(UpdateOutcome::Ignored(IgnoreReason::UnknownNode))
    );
    let (ann, out) = announce(A, B, 2, CAPACITY_RES);
    g.add_channel_announcement(&ann, &out, NOW).unwrap();
    assert_eq!(g.apply_node_announcement(&na(NOW), NOW), Ok(UpdateOutcome::Applied));
    assert_eq!(
        g.apply_node_announcement(&na(NOW), NOW),
        Ok(UpdateOutcome::Ignored(IgnoreReason::NotNewer))
    );
    let mut forged: NodeAnnouncement = na(NOW + 1);
    forged.contents.alias[0] = b'x';
    assert!(g.apply_node_announcement(&forged, NOW).is_err());
    assert_eq!(g.node(&node(A)).unwrap().announcement.as_ref().unwrap().contents.timestamp, NOW);
}

#[test]
fn pruning_spent_and_stale_channels_and_bounded_size() {
    let mut g = test_graph();
    // Spent funding output: the channel leaves at once; G only had channels 10 and 11.
    assert!(g.funding_spent(scid(11)).is_some());
    assert!(g.channel(scid(11)).is_none());
    assert!(g.node(&node(G)).is_some());
    g.funding_spent(scid(10));
    assert!(g.node(&node(G)).is_none());

    // Refresh both directions of channel 1 at NOW + 2 weeks; prune at NOW + 2 weeks + 1 day.
    let later = NOW + STALE_AFTER_SECS;
    for (from, to) in [(P, A), (A, P)] {
        let u = sign_update(from, to, 1, FREE, later, false);
        assert_eq!(g.apply_channel_update(&u, later), Ok(UpdateOutcome::Applied));
    }
    let removed = g.prune_stale(later + 86_400);
    assert_eq!(removed.len(), 10, "every channel but 1 is stale: {removed:?}");
    assert!(g.channel(scid(1)).is_some());
    assert_eq!(g.node_count(), 2);

    // Bounded: no third channel in a graph of two.
    let limits = GraphLimits { max_channels: 2, max_nodes: 10, max_pending: 1 };
    let mut small = NetworkGraph::with_limits(chain(), limits);
    for k in [1, 2] {
        let (ann, out) = announce(k as usize, 0, k, CAPACITY_RES);
        small.add_channel_announcement(&ann, &out, NOW).unwrap();
    }
    let (ann, out) = announce(3, 0, 3, CAPACITY_RES);
    assert_eq!(small.add_channel_announcement(&ann, &out, NOW), Err(GraphError::Full));
    let q1 = sign_update(A, B, 20, DEFAULT_POL, NOW, false);
    let q2 = sign_update(A, B, 21, DEFAULT_POL, NOW, false);
    assert_eq!(small.apply_channel_update(&q1, NOW), Ok(UpdateOutcome::Queued));
    assert_eq!(
        small.apply_channel_update(&q2, NOW),
        Ok(UpdateOutcome::Ignored(IgnoreReason::QueueFull))
    );
}

// ---------------------------------------------------------------------------------------------
// Pathfinding on the hand-built graph.

#[test]
fn cheapest_feasible_path_with_exact_fees_and_cltvs() {
    let g = test_graph();
    let route = find_route(&g, &params(Q, AMOUNT), &fee_only_scorer(), NOW).unwrap();
    // D-E-F is cheaper (330 msat) but E→F's htlc_maximum is 900 000 < 1 000 000 + fees;
    // G is free but 18 + 2000 > 2016 blocks; H is disabled. So P-A-B-Q:
    //   B charges 1000 + ⌊1 000 000·100/10^6⌋ = 1100       → B receives 1 001 100
    //   A charges 2000 + ⌊1 001 100·200/10^6⌋ = 2000 + 200 → A receives 1 003 300
    //   Q's HTLC expires at 800 000 + 18 = 800 018, B's at +40 = 800 058, A's at +30 = 800 088.
    assert_eq!(path(&route), vec![(node(A), scid(1)), (node(B), scid(2)), (node(Q), scid(3))]);
    let amounts: Vec<_> =
        route.hops.iter().map(|h| (h.amount_msat, h.cltv_expiry, h.fee_msat)).collect();
    assert_eq!(
        amounts,
        vec![(1_003_300, 800_088, 2_200), (1_001_100, 800_058, 1_100), (1_000_000, 800_018, 0)]
    );
    assert_eq!(route.total_amount_msat, 1_003_300);
    assert_eq!(route.total_cltv, 88);
    assert_eq!(route.total_fee_msat(), 3_300);
}

#[test]
fn htlc_maximum_and_capacity_exclude_the_cheap_path() {
    let mut g = test_graph();
    // Small enough for E→F: the cheap D-E-F path, 3 × (100 + ⌊x·10/10^6⌋).
    let route = find_route(&g, &params(Q, 500_000), &fee_only_scorer(), NOW).unwrap();
    assert_eq!(
        path(&route),
        vec![(node(D), scid(6)), (node(E), scid(7)), (node(F), scid(8)), (node(Q), scid(9))]
    );
    // F: 100 + 5 = 105 → 500 105; E: 100 + 5 = 105 → 500 210; D: 100 + 5 → 500 315.
    assert_eq!(route.total_amount_msat, 500_315);
    assert_eq!(route.total_cltv, 18 + 30);

    // Capacity: a private shortcut P → C' with capacity below the amount is not used.
    let shortcut = ChannelPolicy {
        cltv_expiry_delta: 1,
        htlc_minimum_msat: 0,
        htlc_maximum_msat: u64::MAX,
        fee_base_msat: 0,
        fee_proportional_millionths: 0,
    };
    g.add_private_channel(node(C), node(Q), scid(30), shortcut, Some(999_999), NOW).unwrap();
    let route = find_route(&g, &params(Q, AMOUNT), &fee_only_scorer(), NOW).unwrap();
    assert_eq!(route.total_fee_msat(), 3_300);
    let route = find_route(&g, &params(Q, 999_999), &fee_only_scorer(), NOW).unwrap();
    assert_eq!(path(&route), vec![(node(C), scid(4)), (node(Q), scid(30))]);
    assert_eq!(route.total_fee_msat(), 0);

    // htlc_minimum: a free C → Q channel that only takes HTLCs of 2 000 000 msat or more.
    let big_only = ChannelPolicy { htlc_minimum_msat: 2_000_000, ..shortcut };
    g.add_private_channel(node(C), node(Q), scid(31), big_only, None, NOW).unwrap();
    let route = find_route(&g, &params(Q, AMOUNT), &fee_only_scorer(), NOW).unwrap();
    assert_eq!(route.total_fee_msat(), 3_300);
    let route = find_route(&g, &params(Q, 2_000_000), &fee_only_scorer(), NOW).unwrap();
    assert_eq!(path(&route), vec![(node(C), scid(4)), (node(Q), scid(31))]);
}

#[test]
fn max_total_cltv_and_disabled_directions() {
    let mut g = test_graph();
    let mut p = params(Q, AMOUNT);
    p.max_total_cltv = 2_018;
    let route = find_route(&g, &p, &fee_only_scorer(), NOW).unwrap();
    assert_eq!(path(&route), vec![(node(G), scid(10)), (node(Q), scid(11))]);
    assert_eq!(route.total_cltv, 2_018);

    // Re-enabling H→Q with a newer update makes the free H path the best.
    let on = sign_update(H, Q, 13, (0, 0, 10, 1, 1_000_000_000), NOW + 2, false);
    assert_eq!(g.apply_channel_update(&on, NOW), Ok(UpdateOutcome::Applied));
    let route = find_route(&g, &params(Q, AMOUNT), &fee_only_scorer(), NOW).unwrap();
    assert_eq!(path(&route), vec![(node(H), scid(12)), (node(Q), scid(13))]);
    // Disabled again (newer): skipped; an older enabling update is ignored.
    let off = sign_update(H, Q, 13, (0, 0, 10, 1, 1_000_000_000), NOW + 3, true);
    g.apply_channel_update(&off, NOW).unwrap();
    let stale_on = sign_update(H, Q, 13, (0, 0, 10, 1, 1_000_000_000), NOW + 2, false);
    assert_eq!(
        g.apply_channel_update(&stale_on, NOW),
        Ok(UpdateOutcome::Ignored(IgnoreReason::NotNewer))
    );
    let route = find_route(&g, &params(Q, AMOUNT), &fee_only_scorer(), NOW).unwrap();
    assert_eq!(route.hops[0].node_id, node(A));
}

#[test]
fn cost_includes_cltv_risk_and_hop_penalty() {
    let g = test_graph();
    // With 1000 msat per hop, two-hop P-C-Q (6000 + 1000) beats three-hop P-A-B-Q
    // (3300 + 2000)? No: 7000 > 5300. With 3000 per hop: 6000 + 3000 < 3300 + 6000.
    let scorer = |base| {
        Scorer::new(ScorerParams {
            base_penalty_msat: base,
            cltv_risk_ppb: 0,
            failure_penalty_msat: 0,
            failure_half_life_secs: 0,
        })
    };
    let r = find_route(&g, &params(Q, AMOUNT), &scorer(1_000), NOW).unwrap();
    assert_eq!(r.hops[0].node_id, node(A));
    let r = find_route(&g, &params(Q, AMOUNT), &scorer(3_000), NOW).unwrap();
    assert_eq!(r.hops[0].node_id, node(C));
    // CLTV risk: A-B-Q locks 70 forwarding blocks, C-Q 40. Risk per block is
    // amount·ppb/10^9; at ppb = 100 000 for 1 000 000 msat that is 100 msat per block:
    // A-B-Q: 3300 + (30·1 001 100 + 40·1 000 000)·10^5/10^9 = 3300 + 7003 = 10 303;
    // C-Q:   6000 + 40·1 000 000·10^5/10^9 = 6000 + 4000 = 10 000 → C wins.
    let risky = Scorer::new(ScorerParams {
        base_penalty_msat: 0,
        cltv_risk_ppb: 100_000,
        failure_penalty_msat: 0,
        failure_half_life_secs: 0,
    });
    assert_eq!(risky.hop_cost(1_100, 1_000_000, 40, 0), 1_100 + 4_000);
    let r = find_route(&g, &params(Q, AMOUNT), &risky, NOW).unwrap();
    assert_eq!(r.hops[0].node_id, node(C));
}

#[test]
fn retry_after_a_channel_failure_takes_the_next_best_path() {
    let g = test_graph();
    let mut scorer = fee_only_scorer();
    let mut attempts = PaymentAttempts::new(params(Q, AMOUNT), 5);
    let first = attempts.next_route(&g, &scorer, NOW).unwrap();
    assert_eq!(first.hops[1].node_id, node(B));
    // B (hop index 1) cannot forward over B→Q: temporary_channel_failure.
    let failure = DecodedFailure {
        hop_index: 1,
        message: FailureMessage::decode(&[0x10, 0x07, 0, 0]).unwrap(),
    };
    assert_eq!(failure.message.code(), FailureCode::TEMPORARY_CHANNEL_FAILURE);
    let blame = attempts.record_failure(&first, Some(&failure), &mut scorer, NOW);
    assert_eq!(blame, Blame::Channel { short_channel_id: scid(3), source: node(B) });
    let second = attempts.next_route(&g, &scorer, NOW).unwrap();
    assert_eq!(path(&second), vec![(node(C), scid(4)), (node(Q), scid(5))]);
    assert_eq!(second.total_fee_msat(), 6_000);
    assert_eq!(attempts.attempts(), 2);

    // The scorer alone (a fresh payment, no exclusions) now also avoids B→Q: +1 000 000 msat.
    assert_eq!(scorer.failure_penalty_msat(scid(3), &node(B), NOW), 1_000_000);
    let r = find_route(&g, &params(Q, AMOUNT), &scorer, NOW).unwrap();
    assert_eq!(r.hops[0].node_id, node(C));
    // The penalty halves each hour; after 10 hours it is 976 msat < 6000 − 3300.
    assert_eq!(scorer.failure_penalty_msat(scid(3), &node(B), NOW + 36_000), 976);
    let r = find_route(&g, &params(Q, AMOUNT), &scorer, NOW + 36_000).unwrap();
    assert_eq!(r.hops[0].node_id, node(A));
    scorer.record_success(&node(P), &first);
    assert_eq!(scorer.failure_penalty_msat(scid(3), &node(B), NOW), 0);

    // A node failure excludes the node; the payee's failure ends the payment.
    let node_fail =
        DecodedFailure { hop_index: 0, message: FailureMessage::decode(&[0x20, 0x02]).unwrap() };
    assert_eq!(
        attempts.record_failure(&second, Some(&node_fail), &mut scorer, NOW),
        Blame::Node(node(C))
    );
    assert!(matches!(attempts.next_route(&g, &scorer, NOW), Err(RouteError::NoRoute { .. })));
    let payee_fail = DecodedFailure {
        hop_index: 1,
        message: FailureMessage::decode(&[0x40, 0x0f, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]).unwrap(),
    };
    assert!(matches!(
        attempts.record_failure(&second, Some(&payee_fail), &mut scorer, NOW),
        Blame::Payee(_)
    ));
    assert!(matches!(attempts.next_route(&g, &scorer, NOW), Err(RouteError::PayeeRejected(_))));
    assert_eq!(
        blame_failure(&second, 7, FailureCode::TEMPORARY_NODE_FAILURE),
        Blame::Unattributable
    );
}

#[test]
fn no_route_is_a_typed_error() {
    let g = test_graph();
    let s = fee_only_scorer();
    let lonely = node(40);
    let p = RouteParams::new(node(P), lonely, AMOUNT, FINAL_DELTA, HEIGHT);
    assert_eq!(
        find_route(&g, &p, &s, NOW),
        Err(RouteError::NoRoute { payee: lonely.to_bytes(), amount_msat: AMOUNT })
    );
    // Excluding every channel into Q but the disabled one.
    let mut p = params(Q, AMOUNT);
    p.exclusions.channels = BTreeSet::from([scid(3), scid(5), scid(9), scid(11)]);
    assert!(matches!(find_route(&g, &p, &s, NOW), Err(RouteError::NoRoute { .. })));
    // Too much for every path.
    assert!(matches!(
        find_route(&g, &params(Q, 2_000_000_000), &s, NOW),
        Err(RouteError::NoRoute { .. })
    ));
    assert_eq!(find_route(&g, &params(Q, 0), &s, NOW), Err(RouteError::InvalidAmount(0)));
    assert_eq!(find_route(&g, &params(P, 1), &s, NOW), Err(RouteError::PayerIsPayee));
    let mut p = params(Q, AMOUNT);
    p.max_hops = 21;
    assert_eq!(find_route(&g, &p, &s, NOW), Err(RouteError::InvalidMaxHops(21)));
}

#[test]
fn route_hints_reach_a_private_payee() {
    let g = test_graph();
    let hint = RouteHint::new(vec![RouteHintHop {
        src_node_id: node(B),
        short_channel_id: 0x0000_0100_0000_0001,
        fee_base_msat: 500,
        fee_proportional_millionths: 1_000,
        cltv_expiry_delta: 20,
    }])
    .unwrap();
    let invoice = InvoiceBuilder::new(Network::Regtest)
        .amount_milli_resonance(AMOUNT)
        .timestamp(u64::from(NOW))
        .payment_preimage(&[9; 32])
        .payment_secret([0xa5; 32])
        .description("private")
        .min_final_cltv_expiry_delta(FINAL_DELTA)
        .route_hint(hint.clone())
        .sign(&node_key(Z))
        .unwrap();
    let p = RouteParams::for_invoice(node(P), &invoice, None, HEIGHT).unwrap();
    assert!(matches!(
        find_route(&g, &RouteParams { route_hints: vec![], ..p.clone() }, &fee_only_scorer(), NOW),
        Err(RouteError::NoRoute { .. })
    ));
    let route = find_route(&g, &p, &fee_only_scorer(), NOW).unwrap();
    // B charges the hint's 500 + ⌊1 000 000·1000/10^6⌋ = 1500 → 1 001 500;
    // A charges 2000 + ⌊1 001 500·200/10^6⌋ = 2200 → 1 003 700. Expiries 800 018 / +20 / +30.
    assert_eq!(
        path(&route),
        vec![(node(A), scid(1)), (node(B), scid(2)), (node(Z), ShortChannelId(0x0100_0000_0001))]
    );
    let got: Vec<_> = route.hops.iter().map(|h| (h.amount_msat, h.cltv_expiry)).collect();
    assert_eq!(got, vec![(1_003_700, 800_068), (1_001_500, 800_038), (1_000_000, 800_018)]);

    // The same channel stored in the graph as a private channel gives the same route.
    let mut g2 = g.clone();
    g2.add_route_hint(&hint, &node(Z), NOW).unwrap();
    assert!(g2.channel(ShortChannelId(0x0100_0000_0001)).unwrap().is_private());
    let p2 = RouteParams::new(node(P), node(Z), AMOUNT, FINAL_DELTA, HEIGHT);
    assert_eq!(find_route(&g2, &p2, &fee_only_scorer(), NOW).unwrap(), route);
}

/// A chain `0 → 1 → … → n` of public channels, each forwarding node charging 10 msat, Δ10.
fn chain_graph(n: usize) -> NetworkGraph {
    let mut g = NetworkGraph::new(chain());
    for i in 0..n {
        add_channel(&mut g, 100 + i as u32, i, i + 1, (10, 0, 10, 1, 1_000_000_000), DEFAULT_POL);
    }
    g
}

#[test]
fn twenty_hop_limit() {
    let g = chain_graph(21);
    let s = fee_only_scorer();
    let to = |n: usize| RouteParams::new(node(0), node(n), AMOUNT, FINAL_DELTA, HEIGHT);
    let route = find_route(&g, &to(20), &s, NOW).unwrap();
    assert_eq!(route.hops.len(), 20);
    assert_eq!(route.total_fee_msat(), 19 * 10);
    assert_eq!(route.total_cltv, FINAL_DELTA + 19 * 10);
    assert!(matches!(find_route(&g, &to(21), &s, NOW), Err(RouteError::NoRoute { .. })));
    let mut short = to(6);
    short.max_hops = 5;
    assert!(matches!(find_route(&g, &short, &s, NOW), Err(RouteError::NoRoute { .. })));
    short.max_hops = 6;
    assert_eq!(find_route(&g, &short, &s, NOW).unwrap().hops.len(), 6);
}

/// The policy the route's hop `i` node applies to forward over hop `i + 1`'s channel.
fn forward_policy(g: &NetworkGraph, route: &Route, i: usize) -> ChannelPolicy {
    let ch = g.channel(route.hops[i + 1].short_channel_id).unwrap();
    let dir: Direction = ch.direction_from(&route.hops[i].node_id).unwrap();
    ch.direction(dir).unwrap().policy
}

fn onion_walk(g: &NetworkGraph, route: &Route, seeds: &[[u8; 32]]) {
    let payment_hash = [0x77; 32];
    let payloads = route.onion_payloads([0xa5; 32], AMOUNT, None).unwrap();
    let (mut packet, _) = construct_onion(
        &SessionKey::from_bytes([0x5e; 32]),
        &route.node_ids(),
        &payloads,
        &payment_hash,
    )
    .unwrap();
    let n = route.hops.len();
    for (i, seed) in seeds.iter().enumerate() {
        let hop = &route.hops[i];
        match peel_onion(&NodeSecret::from_ed25519_seed(seed), &packet, &payment_hash).unwrap() {
            Peeled::Forward { payload, next_packet, .. } => {
                assert!(i < n - 1);
                let next = &route.hops[i + 1];
                assert_eq!(payload.amt_to_forward, next.amount_msat);
                assert_eq!(payload.outgoing_cltv_value, next.cltv_expiry);
                assert_eq!(payload.short_channel_id, next.short_channel_id.0);
                let policy = forward_policy(g, route, i);
                // The incoming HTLC pays exactly the fee and the CLTV delta; one less fails.
                assert_eq!(
                    policy.check_forward(
                        hop.amount_msat,
                        hop.cltv_expiry,
                        payload.amt_to_forward,
                        payload.outgoing_cltv_value
                    ),
                    Ok(())
                );
                assert!(matches!(
                    policy.check_forward(
                        hop.amount_msat - 1,
                        hop.cltv_expiry,
                        payload.amt_to_forward,
                        payload.outgoing_cltv_value
                    ),
                    Err(ForwardError::FeeInsufficient { .. })
                ));
                assert!(matches!(
                    policy.check_forward(
                        hop.amount_msat,
                        hop.cltv_expiry - 1,
                        payload.amt_to_forward,
                        payload.outgoing_cltv_value
                    ),
                    Err(ForwardError::IncorrectCltvExpiry { .. })
                ));
                packet = next_packet;
            }
            Peeled::Final { payload, .. } => {
                assert_eq!(i, n - 1);
                assert_eq!(payload.amt_to_forward, hop.amount_msat);
                assert_eq!(payload.outgoing_cltv_value, hop.cltv_expiry);
                assert_eq!(payload.outgoing_cltv_value, HEIGHT + FINAL_DELTA);
                assert_eq!(payload.payment_secret, [0xa5; 32]);
                assert_eq!(payload.total_msat, AMOUNT);
            }
        }
    }
    assert!(payloads.last().is_some_and(HopPayload::is_final));
}

#[test]
fn route_to_onion_each_hop_sees_what_the_route_says() {
    let g = test_graph();
    let route = find_route(&g, &params(Q, AMOUNT), &fee_only_scorer(), NOW).unwrap();
    let seeds: Vec<[u8; 32]> = [A, B, Q].iter().map(|&i| [i as u8 + 1; 32]).collect();
    onion_walk(&g, &route, &seeds);

    let g = chain_graph(20);
    let p = RouteParams::new(node(0), node(20), AMOUNT, FINAL_DELTA, HEIGHT);
    let route = find_route(&g, &p, &fee_only_scorer(), NOW).unwrap();
    let seeds: Vec<[u8; 32]> = (1..=20).map(|i| [i as u8 + 1; 32]).collect();
    onion_walk(&g, &route, &seeds);
    assert_eq!(
        Route { hops: vec![], total_amount_msat: 0, total_cltv: 0 }
            .onion_payloads([0; 32], 1, None),
        Err(RouteError::EmptyRoute)
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn gossip_decoders_never_panic(msg_type in 255u16..260, bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = GossipMessage::decode(msg_type, &bytes) {
            // Accepted input re-encodes to the same bytes (one encoding per message).
            prop_assert_eq!(m.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let (ann, _) = announce(A, B, 2, CAPACITY_RES);
        let upd = sign_update(A, B, 2, DEFAULT_POL, NOW, false);
        for (t, mut bytes) in [(256u16, ann.encode().unwrap()), (258, upd.encode())] {
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            bytes.truncate(cut.index(bytes.len() + 1));
            if let Ok(m) = GossipMessage::decode(t, &bytes) {
                prop_assert_eq!(m.encode().unwrap(), bytes);
                if let GossipMessage::ChannelAnnouncement(a) = m {
                    let _ = a.verify(&chain());
                }
            }
        }
    }
}

/// Every constraint a found route must satisfy, checked from the graph.
fn check_route(g: &NetworkGraph, p: &RouteParams, route: &Route) -> Result<(), String> {
    let n = route.hops.len();
    if n == 0 || n > p.max_hops {
        return Err(format!("{n} hops"));
    }
    let last = &route.hops[n - 1];
    if last.node_id != p.payee || last.amount_msat != p.amount_msat {
        return Err("wrong payee or amount".into());
    }
    if last.cltv_expiry != p.current_height + p.final_cltv_expiry_delta || last.fee_msat != 0 {
        return Err("wrong final expiry".into());
    }
    if route.total_amount_msat != route.hops[0].amount_msat
        || route.hops[0].cltv_expiry != p.current_height + route.total_cltv
        || route.total_cltv > p.max_total_cltv
    {
        return Err("totals".into());
    }
    let mut seen = BTreeSet::from([p.payer]);
    let mut from = p.payer;
    for (i, hop) in route.hops.iter().enumerate() {
        if !seen.insert(hop.node_id) {
            return Err("loop".into());
        }
        if p.exclusions.channels.contains(&hop.short_channel_id)
            || (i + 1 < n && p.exclusions.nodes.contains(&hop.node_id))
        {
            return Err("excluded".into());
        }
        let ch = g.channel(hop.short_channel_id).ok_or("unknown channel")?;
        let dir = ch.direction_from(&from).ok_or("not adjacent")?;
        if *ch.target(dir) != hop.node_id {
            return Err("wrong target".into());
        }
        let d = ch.direction(dir).ok_or("no policy")?;
        if !d.enabled || !d.policy.allows_amount(hop.amount_msat) {
            return Err("disabled or out of HTLC limits".into());
        }
        if ch.capacity_msat.is_some_and(|c| hop.amount_msat > c) {
            return Err("over capacity".into());
        }
        if i + 1 < n {
            let next = &route.hops[i + 1];
            let policy = forward_policy(g, route, i);
            let fee = policy.fee_msat(next.amount_msat).ok_or("fee overflow")?;
            if hop.amount_msat != next.amount_msat + fee || hop.fee_msat != fee {
                return Err(format!("fee at hop {i}"));
            }
            if hop.cltv_expiry != next.cltv_expiry + u32::from(policy.cltv_expiry_delta) {
                return Err(format!("cltv at hop {i}"));
            }
        }
        from = hop.node_id;
    }
    Ok(())
}

fn pol_strategy() -> impl Strategy<Value = (Pol, bool)> {
    (
        0u32..3_000,
        0u32..5_000,
        0u16..300,
        0u64..2_000,
        100_000u64..5_000_000,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(b, ppm, d, min, max, off)| ((b, ppm, d, min, max.max(min)), off))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn found_routes_satisfy_every_constraint(
        // Short links (a → a+1 ..= a+3 modulo 10), so routes to nodes 4..=6 need 2+ hops.
        edges in proptest::collection::vec((0usize..10, 1usize..4, pol_strategy(), pol_strategy()), 8..40),
        amount in 1u64..1_500_000,
        final_delta in 0u32..200,
        max_total in 200u32..1_200,
        max_hops in 1usize..8,
        excluded_node in proptest::option::of(1usize..10),
        excluded_channel in proptest::option::of(0u32..40),
        payee in 1usize..7,
    ) {
        let mut g = NetworkGraph::new(chain());
        for (k, (a, step, (ab, ab_off), (ba, ba_off))) in edges.iter().enumerate() {
            let (a, b, k) = (*a, (a + step) % 10, k as u32);
            let (ann, out) = announce(a, b, k, CAPACITY_RES);
            g.add_channel_announcement(&ann, &out, NOW).unwrap();
            g.apply_channel_update(&sign_update(a, b, k, *ab, NOW, *ab_off), NOW).unwrap();
            g.apply_channel_update(&sign_update(b, a, k, *ba, NOW, *ba_off), NOW).unwrap();
        }
        let mut p = RouteParams::new(node(0), node(payee), amount, final_delta, HEIGHT);
        p.max_total_cltv = max_total;
        p.max_hops = max_hops;
        if let Some(n) = excluded_node.filter(|n| *n != payee) {
            p.exclusions.nodes.insert(node(n));
        }
        if let Some(c) = excluded_channel {
            p.exclusions.channels.insert(scid(c));
        }
        match find_route(&g, &p, &Scorer::default(), NOW) {
            Ok(route) => {
                if let Err(e) = check_route(&g, &p, &route) {
                    return Err(TestCaseError::fail(format!("{e}: {route:?}")));
                }
            }
            Err(RouteError::NoRoute { .. }) | Err(RouteError::FinalCltvTooLarge { .. }) => {}
            Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
        }
    }
}
