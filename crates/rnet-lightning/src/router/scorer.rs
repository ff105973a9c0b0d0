//! Hop costs, failure penalties and the bookkeeping of one payment's attempts.

use std::collections::HashMap;

use rnet_crypto::PublicKey;

use super::error::RouteError;
use super::graph::NetworkGraph;
use super::pathfind::{Route, RouteParams, find_route};
use crate::gossip::ShortChannelId;
use crate::onion::{DecodedFailure, FailureCode};

/// The weights of the pathfinding cost (all costs are in msat, so they add to fees).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScorerParams {
    /// Flat cost of every forwarding hop, msat: prefers shorter routes at equal fees.
    pub base_penalty_msat: u64,
    /// CLTV risk, in billionths of the forwarded amount per block of `cltv_expiry_delta`: the
    /// value of having funds locked longer if the HTLC gets stuck.
    pub cltv_risk_ppb: u64,
    /// Cost of a channel that failed just now, msat.
    pub failure_penalty_msat: u64,
    /// The failure penalty halves after every full half-life, seconds (0: never decays).
    pub failure_half_life_secs: u32,
}

impl Default for ScorerParams {
    /// 500 msat per hop, 15 ppb per block, 1 000 000 msat per recent failure, 1-hour half-life.
    fn default() -> Self {
        Self {
            base_penalty_msat: 500,
            cltv_risk_ppb: 15,
            failure_penalty_msat: 1_000_000,
            failure_half_life_secs: 3_600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FailureRecord {
    count: u32,
    last_failure: u32,
}

/// Prices hops and remembers which channel directions failed, across payments.
#[derive(Debug, Clone, Default)]
pub struct Scorer {
    params: ScorerParams,
    failures: HashMap<(ShortChannelId, PublicKey), FailureRecord>,
}

impl Scorer {
    /// A scorer with these weights and no failures.
    pub fn new(params: ScorerParams) -> Self {
        Self { params, failures: HashMap::new() }
    }

    /// The weights.
    pub fn params(&self) -> &ScorerParams {
        &self.params
    }

    /// The cost of a forwarding hop that charges `fee_msat` to forward `amount_msat` with
    /// `cltv_expiry_delta`:
    /// `fee + ⌊amount · delta · cltv_risk_ppb / 10^9⌋ + base_penalty + failure_penalty`.
    pub fn hop_cost(
        &self,
        fee_msat: u64,
        amount_msat: u64,
        cltv_expiry_delta: u16,
        failure_penalty_msat: u64,
    ) -> u128 {
        let risk = u128::from(amount_msat)
            * u128::from(cltv_expiry_delta)
            * u128::from(self.params.cltv_risk_ppb)
            / 1_000_000_000;
        u128::from(fee_msat)
            + risk
            + u128::from(self.params.base_penalty_msat)
            + u128::from(failure_penalty_msat)
    }

    /// The failure penalty of the channel `scid` forwarded by `source` at time `now`:
    /// `failure_penalty · min(failures, 16)`, halved once per full half-life since the last
    /// failure; 0 if it never failed.
    pub fn failure_penalty_msat(&self, scid: ShortChannelId, source: &PublicKey, now: u32) -> u64 {
        let Some(rec) = self.failures.get(&(scid, *source)) else { return 0 };
        let halvings = match self.params.failure_half_life_secs {
            0 => 0,
            h => now.saturating_sub(rec.last_failure) / h,
        };
        let full = self.params.failure_penalty_msat.saturating_mul(u64::from(rec.count.min(16)));
        if halvings >= 64 { 0 } else { full >> halvings }
    }

    /// Record that `source` failed to forward over `scid` at time `now`.
    pub fn record_channel_failure(&mut self, scid: ShortChannelId, source: PublicKey, now: u32) {
        let rec = self
            .failures
            .entry((scid, source))
            .or_insert(FailureRecord { count: 0, last_failure: now });
        rec.count = rec.count.saturating_add(1);
        rec.last_failure = now;
    }

    /// Record that a payment over `route` from `payer` succeeded: its channels' failures are
    /// forgotten.
    pub fn record_success(&mut self, payer: &PublicKey, route: &Route) {
        let mut source = *payer;
        for hop in &route.hops {
            self.failures.remove(&(hop.short_channel_id, source));
            source = hop.node_id;
        }
    }
}

/// What a failure attributed to a hop says about the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The forwarding node could not use its outgoing channel `short_channel_id`.
    Channel {
        /// The failed channel.
        short_channel_id: ShortChannelId,
        /// The node that forwards over it (the erring node).
        source: PublicKey,
    },
    /// The node itself failed (`NODE` flag).
    Node(PublicKey),
    /// The payee refused the payment: retrying elsewhere cannot help.
    Payee(FailureCode),
    /// The error onion could not be attributed to a hop.
    Unattributable,
}

/// Which channel or node a failure from hop `hop_index` (the index
/// [`crate::onion::decode_error_packet`] returns: the erring node is `route.hops[hop_index]`)
/// blames: the payee's failures end the payment; a failure with the `NODE` flag blames the
/// node; any other failure of a forwarding node blames its outgoing channel
/// `route.hops[hop_index + 1]`. An index past the route is unattributable.
pub fn blame_failure(route: &Route, hop_index: usize, code: FailureCode) -> Blame {
    let Some(hop) = route.hops.get(hop_index) else { return Blame::Unattributable };
    match route.hops.get(hop_index + 1) {
        None => Blame::Payee(code),
        Some(_) if code.is_node() => Blame::Node(hop.node_id),
        Some(next) => {
            Blame::Channel { short_channel_id: next.short_channel_id, source: hop.node_id }
        }
    }
}

/// The attempts of one payment: each failure excludes what it blames, so the next
/// [`PaymentAttempts::next_route`] takes another path, and penalises it in the [`Scorer`] for
/// later payments.
#[derive(Debug, Clone)]
pub struct PaymentAttempts {
    params: RouteParams,
    attempts: u32,
    max_attempts: u32,
    rejected: Option<FailureCode>,
}

impl PaymentAttempts {
    /// Start a payment with at most `max_attempts` routes.
    pub fn new(params: RouteParams, max_attempts: u32) -> Self {
        Self { params, attempts: 0, max_attempts, rejected: None }
    }

    /// The current parameters, exclusions included.
    pub fn params(&self) -> &RouteParams {
        &self.params
    }

    /// Routes tried so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The next route to try; fails once the payee rejected the payment, after
    /// `max_attempts` routes, or when no route avoids every exclusion.
    pub fn next_route(
        &mut self,
        graph: &NetworkGraph,
        scorer: &Scorer,
        now: u32,
    ) -> Result<Route, RouteError> {
        if let Some(code) = self.rejected {
            return Err(RouteError::PayeeRejected(code));
        }
        if self.attempts >= self.max_attempts {
            return Err(RouteError::AttemptsExhausted(self.attempts));
        }
        let route = find_route(graph, &self.params, scorer, now)?;
        self.attempts += 1;
        Ok(route)
    }

    /// Record the failure of `route`: `failure` is what
    /// [`crate::onion::decode_error_packet`] returned, or `None` when the error onion was
    /// unattributable. The blamed channel or node is excluded from later attempts and the
    /// channel is penalised in `scorer`; an unattributable failure penalises every channel of
    /// the route once (one of them lied) without excluding any.
    pub fn record_failure(
        &mut self,
        route: &Route,
        failure: Option<&DecodedFailure>,
        scorer: &mut Scorer,
        now: u32,
    ) -> Blame {
        let blame = match failure {
            Some(f) => blame_failure(route, f.hop_index, f.message.code()),
            None => Blame::Unattributable,
        };
        match blame {
            Blame::Channel { short_channel_id, source } => {
                self.params.exclusions.channels.insert(short_channel_id);
                scorer.record_channel_failure(short_channel_id, source, now);
            }
            Blame::Node(node) => {
                self.params.exclusions.nodes.insert(node);
            }
            Blame::Payee(code) => self.rejected = Some(code),
            Blame::Unattributable => {
                let mut source = self.params.payer;
                for hop in &route.hops {
                    scorer.record_channel_failure(hop.short_channel_id, source, now);
                    source = hop.node_id;
                }
            }
        }
        blame
    }
}
