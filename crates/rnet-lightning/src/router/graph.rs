//! The channel graph: what this node knows about public and private channels and nodes.

use std::collections::{BTreeMap, BTreeSet};

use rnet_crypto::PublicKey;
use rnet_primitives::{BlockHash, TxOut};

use super::error::{ForwardError, GraphError};
use super::pathfind::Edge;
use super::policy::{ChannelPolicy, Direction, MAX_MSAT};
use crate::channel::MSAT_PER_RESONANCE;
use crate::gossip::{
    ChannelAnnouncement, ChannelUpdate, GossipError, NodeAnnouncement, ShortChannelId,
    check_funding_output, has_unknown_even_feature,
};
use crate::invoice::RouteHint;

/// Age (seconds) after which a direction's latest update is stale: two weeks, as BOLT 7.
pub const STALE_AFTER_SECS: u32 = 1_209_600;
/// How far (seconds) a timestamp may be ahead of the local clock; later ones are ignored so a
/// far-future timestamp cannot freeze a channel's policy.
pub const MAX_FUTURE_SECS: u32 = 86_400;

/// Bounds on the graph's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphLimits {
    /// Most channels (public and private together).
    pub max_channels: usize,
    /// Most nodes.
    pub max_nodes: usize,
    /// Most channels with queued updates (updates that arrived before their announcement).
    pub max_pending: usize,
}

impl Default for GraphLimits {
    /// 500 000 channels, 200 000 nodes, 10 000 queued channels.
    fn default() -> Self {
        Self { max_channels: 500_000, max_nodes: 200_000, max_pending: 10_000 }
    }
}

/// One direction of a channel: the latest accepted policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectionInfo {
    /// Fees, CLTV delta and HTLC limits.
    pub policy: ChannelPolicy,
    /// False when the latest update has the disable bit: pathfinding skips the direction.
    pub enabled: bool,
    /// Timestamp of the latest update (for a route hint: when it was added).
    pub timestamp: u32,
    /// The signed update, to relay and to attach to failures (`None` for a route hint).
    pub update: Option<ChannelUpdate>,
}

impl DirectionInfo {
    /// The forwarding node's check for this direction: refuse when disabled, else
    /// [`ChannelPolicy::check_forward`].
    pub fn check_forward(
        &self,
        incoming_amount_msat: u64,
        incoming_cltv_expiry: u32,
        amt_to_forward: u64,
        outgoing_cltv_value: u32,
    ) -> Result<(), ForwardError> {
        if !self.enabled {
            return Err(ForwardError::Disabled);
        }
        self.policy.check_forward(
            incoming_amount_msat,
            incoming_cltv_expiry,
            amt_to_forward,
            outgoing_cltv_value,
        )
    }
}

/// A channel in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The bytewise smaller endpoint (`node_id_1`).
    pub node_one: PublicKey,
    /// The larger endpoint (`node_id_2`).
    pub node_two: PublicKey,
    /// Funding amount in msat; `None` for a private channel from a route hint.
    pub capacity_msat: Option<u64>,
    /// The verified announcement; `None` for a private channel.
    pub announcement: Option<ChannelAnnouncement>,
    /// Latest policy per [`Direction`] (index `Direction::index`).
    pub directions: [Option<DirectionInfo>; 2],
    /// When the channel was added (local clock, seconds).
    pub added_at: u32,
}

impl ChannelInfo {
    /// Whether the channel was not announced (it came from a route hint).
    pub fn is_private(&self) -> bool {
        self.announcement.is_none()
    }

    /// The node that forwards in `direction`.
    pub fn source(&self, direction: Direction) -> &PublicKey {
        match direction {
            Direction::OneToTwo => &self.node_one,
            Direction::TwoToOne => &self.node_two,
        }
    }

    /// The node that receives in `direction`.
    pub fn target(&self, direction: Direction) -> &PublicKey {
        match direction {
            Direction::OneToTwo => &self.node_two,
            Direction::TwoToOne => &self.node_one,
        }
    }

    /// The latest policy of `direction`, if any.
    pub fn direction(&self, direction: Direction) -> Option<&DirectionInfo> {
        self.directions[direction.index()].as_ref()
    }

    /// The direction whose source is `node`, if `node` is an endpoint.
    pub fn direction_from(&self, node: &PublicKey) -> Option<Direction> {
        if *node == self.node_one {
            Some(Direction::OneToTwo)
        } else if *node == self.node_two {
            Some(Direction::TwoToOne)
        } else {
            None
        }
    }
}

/// A node in the graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its channels.
    pub channels: BTreeSet<ShortChannelId>,
    /// Its latest verified announcement.
    pub announcement: Option<NodeAnnouncement>,
}

/// What became of a message the graph accepted as valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The graph changed.
    Applied,
    /// A channel update for a channel not yet announced, kept until the announcement.
    Queued,
    /// Valid but not used, for the reason given (BOLT 7 "SHOULD ignore").
    Ignored(IgnoreReason),
}

/// Why a message was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// The same announcement is already known.
    Duplicate,
    /// The timestamp is not newer than the current one.
    NotNewer,
    /// The timestamp is more than [`MAX_FUTURE_SECS`] ahead of the local clock.
    TooFarInFuture,
    /// The timestamp is more than [`STALE_AFTER_SECS`] old.
    Stale,
    /// The queue of early updates is full.
    QueueFull,
    /// A node announcement for a node with no announced channel.
    UnknownNode,
    /// A route hint for a channel the graph knows from an announcement.
    PublicChannelKnown,
}

/// The channel graph: announced channels with both directions' latest updates, their nodes,
/// private channels from route hints, and updates waiting for their announcement.
#[derive(Debug, Clone)]
pub struct NetworkGraph {
    chain_hash: BlockHash,
    limits: GraphLimits,
    channels: BTreeMap<ShortChannelId, ChannelInfo>,
    nodes: BTreeMap<PublicKey, NodeInfo>,
    pending: BTreeMap<ShortChannelId, [Option<ChannelUpdate>; 2]>,
}

fn is_stale(timestamp: u32, now: u32) -> bool {
    now.saturating_sub(timestamp) > STALE_AFTER_SECS
}

impl NetworkGraph {
    /// An empty graph for the chain whose genesis block id is `chain_hash`.
    pub fn new(chain_hash: BlockHash) -> Self {
        Self::with_limits(chain_hash, GraphLimits::default())
    }

    /// An empty graph with explicit size limits.
    pub fn with_limits(chain_hash: BlockHash, limits: GraphLimits) -> Self {
        Self {
            chain_hash,
            limits,
            channels: BTreeMap::new(),
            nodes: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }

    /// The chain this graph is for.
    pub fn chain_hash(&self) -> &BlockHash {
        &self.chain_hash
    }

    /// A channel by id.
    pub fn channel(&self, scid: ShortChannelId) -> Option<&ChannelInfo> {
        self.channels.get(&scid)
    }

    /// A node by id.
    pub fn node(&self, id: &PublicKey) -> Option<&NodeInfo> {
        self.nodes.get(id)
    }

    /// Every channel, in short channel id order.
    pub fn channels(&self) -> impl Iterator<Item = (&ShortChannelId, &ChannelInfo)> {
        self.channels.iter()
    }

    /// Every node, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = (&PublicKey, &NodeInfo)> {
        self.nodes.iter()
    }

    /// Number of channels.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of channels with queued updates.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    fn new_nodes(&self, a: &PublicKey, b: &PublicKey) -> usize {
        usize::from(!self.nodes.contains_key(a)) + usize::from(!self.nodes.contains_key(b))
    }

    fn check_room(&self, a: &PublicKey, b: &PublicKey) -> Result<(), GraphError> {
        if self.channels.len() >= self.limits.max_channels
            || self.nodes.len() + self.new_nodes(a, b) > self.limits.max_nodes
        {
            return Err(GraphError::Full);
        }
        Ok(())
    }

    fn insert_channel(&mut self, scid: ShortChannelId, info: ChannelInfo) {
        for node in [info.node_one, info.node_two] {
            self.nodes.entry(node).or_default().channels.insert(scid);
        }
        self.channels.insert(scid, info);
    }

    /// Add a channel from its announcement and the unspent output found at its short channel
    /// id (the caller's UTXO lookup, after enough confirmations). Verifies the announcement
    /// ([`ChannelAnnouncement::verify`]) and that the output pays the announced 2-of-2; the
    /// capacity is the output's value. Queued updates for the channel are then applied.
    ///
    /// A private channel with the same id and endpoints becomes public; a known id with other
    /// contents is [`GraphError::ConflictingAnnouncement`].
    pub fn add_channel_announcement(
        &mut self,
        announcement: &ChannelAnnouncement,
        funding_output: &TxOut,
        now: u32,
    ) -> Result<UpdateOutcome, GraphError> {
        let c = &announcement.contents;
        let scid = c.short_channel_id;
        let upgrade = match self.channels.get(&scid) {
            Some(existing) => match &existing.announcement {
                Some(known) if known.contents == *c => {
                    return Ok(UpdateOutcome::Ignored(IgnoreReason::Duplicate));
                }
                None if existing.node_one == c.node_id_1 && existing.node_two == c.node_id_2 => {
                    true
                }
                _ => return Err(GraphError::ConflictingAnnouncement(scid)),
            },
            None => false,
        };
        if has_unknown_even_feature(&c.features) {
            return Err(GraphError::UnknownRequiredFeature);
        }
        announcement.verify(&self.chain_hash)?;
        let value = check_funding_output(c, funding_output)?;
        let capacity_msat = value
            .0
            .checked_mul(MSAT_PER_RESONANCE)
            .filter(|m| *m <= MAX_MSAT)
            .ok_or(GraphError::CapacityOutOfRange)?;
        if upgrade {
            if let Some(info) = self.channels.get_mut(&scid) {
                info.announcement = Some(announcement.clone());
                info.capacity_msat = Some(capacity_msat);
                for d in info.directions.iter_mut() {
                    if d.as_ref().is_some_and(|d| d.policy.htlc_maximum_msat > capacity_msat) {
                        *d = None;
                    }
                }
            }
        } else {
            self.check_room(&c.node_id_1, &c.node_id_2)?;
            let info = ChannelInfo {
                node_one: c.node_id_1,
                node_two: c.node_id_2,
                capacity_msat: Some(capacity_msat),
                announcement: Some(announcement.clone()),
                directions: [None, None],
                added_at: now,
            };
            self.insert_channel(scid, info);
        }
        if let Some(queued) = self.pending.remove(&scid) {
            for update in queued.into_iter().flatten() {
                // A queued update was never verified; a bad one is simply dropped now.
                let _ = self.apply_channel_update(&update, now);
            }
        }
        Ok(UpdateOutcome::Applied)
    }

    /// Apply a channel update (BOLT 7 rules): refuse another chain, a bad signature (under the
    /// node of the update's direction), `htlc_minimum > htlc_maximum` or `htlc_maximum` above
    /// the capacity; ignore a timestamp that is not strictly newer than the direction's
    /// current one, more than [`MAX_FUTURE_SECS`] ahead of `now`, or already stale; queue an
    /// update for an unknown channel (bounded) until its announcement arrives. A disabled
    /// update is stored and makes pathfinding skip the direction.
    pub fn apply_channel_update(
        &mut self,
        update: &ChannelUpdate,
        now: u32,
    ) -> Result<UpdateOutcome, GraphError> {
        let c = &update.contents;
        if c.chain_hash != self.chain_hash {
            return Err(GossipError::WrongChain.into());
        }
        if c.timestamp > now.saturating_add(MAX_FUTURE_SECS) {
            return Ok(UpdateOutcome::Ignored(IgnoreReason::TooFarInFuture));
        }
        if is_stale(c.timestamp, now) {
            return Ok(UpdateOutcome::Ignored(IgnoreReason::Stale));
        }
        let direction = Direction::from_bit(c.direction());
        let Some(info) = self.channels.get_mut(&c.short_channel_id) else {
            if c.htlc_minimum_msat > c.htlc_maximum_msat {
                return Err(GossipError::HtlcMinimumAboveMaximum {
                    min: c.htlc_minimum_msat,
                    max: c.htlc_maximum_msat,
                }
                .into());
            }
            if !self.pending.contains_key(&c.short_channel_id)
                && self.pending.len() >= self.limits.max_pending
            {
                return Ok(UpdateOutcome::Ignored(IgnoreReason::QueueFull));
            }
            let slot = &mut self.pending.entry(c.short_channel_id).or_default()[direction.index()];
            if slot.as_ref().is_some_and(|q| q.contents.timestamp >= c.timestamp) {
                return Ok(UpdateOutcome::Ignored(IgnoreReason::NotNewer));
            }
            *slot = Some(*update);
            return Ok(UpdateOutcome::Queued);
        };
        update.verify(&self.chain_hash, info.source(direction))?;
        if let Some(capacity_msat) = info.capacity_msat {
            if c.htlc_maximum_msat > capacity_msat {
                return Err(GraphError::HtlcMaximumAboveCapacity {
                    htlc_maximum_msat: c.htlc_maximum_msat,
                    capacity_msat,
                });
            }
        }
        let slot = &mut info.directions[direction.index()];
        if let Some(current) = slot {
            if c.timestamp <= current.timestamp {
                return Ok(UpdateOutcome::Ignored(IgnoreReason::NotNewer));
            }
        }
        *slot = Some(DirectionInfo {
            policy: ChannelPolicy::from_update(c),
            enabled: !c.is_disabled(),
            timestamp: c.timestamp,
            update: Some(*update),
        });
        Ok(UpdateOutcome::Applied)
    }

    /// Apply a node announcement: verified, for a node with at least one announced channel,
    /// strictly newer than the one held and not more than [`MAX_FUTURE_SECS`] ahead.
    pub fn apply_node_announcement(
        &mut self,
        announcement: &NodeAnnouncement,
        now: u32,
    ) -> Result<UpdateOutcome, GraphError> {
        let c = &announcement.contents;
        let has_public = self.nodes.get(&c.node_id).is_some_and(|n| {
            n.channels.iter().any(|s| self.channels.get(s).is_some_and(|ch| !ch.is_private()))
        });
        if !has_public {
            return Ok(UpdateOutcome::Ignored(IgnoreReason::UnknownNode));
        }
        if c.timestamp > now.saturating_add(MAX_FUTURE_SECS) {
            return Ok(UpdateOutcome::Ignored(IgnoreReason::TooFarInFuture));
        }
        announcement.verify()?;
        let Some(node) = self.nodes.get_mut(&c.node_id) else {
            return Ok(UpdateOutcome::Ignored(IgnoreReason::UnknownNode));
        };
        if node.announcement.as_ref().is_some_and(|a| a.contents.timestamp >= c.timestamp) {
            return Ok(UpdateOutcome::Ignored(IgnoreReason::NotNewer));
        }
        node.announcement = Some(announcement.clone());
        Ok(UpdateOutcome::Applied)
    }

    /// Add or refresh one direction of a private channel `from → to` (from a route hint or this
    /// node's own unannounced channels), with timestamp `now`. A channel known from an
    /// announcement is left alone (its signed updates win).
    pub fn add_private_channel(
        &mut self,
        from: PublicKey,
        to: PublicKey,
        short_channel_id: ShortChannelId,
        policy: ChannelPolicy,
        capacity_msat: Option<u64>,
        now: u32,
    ) -> Result<UpdateOutcome, GraphError> {
        if from == to {
            return Err(GraphError::SelfChannel);
        }
        if capacity_msat.is_some_and(|c| c > MAX_MSAT) {
            return Err(GraphError::CapacityOutOfRange);
        }
        let (one, two) = if from < to { (from, to) } else { (to, from) };
        let direction = if from == one { Direction::OneToTwo } else { Direction::TwoToOne };
        let info = DirectionInfo { policy, enabled: true, timestamp: now, update: None };
        if let Some(existing) = self.channels.get_mut(&short_channel_id) {
            if existing.node_one != one || existing.node_two != two {
                return Err(GraphError::ConflictingAnnouncement(short_channel_id));
            }
            if !existing.is_private() {
                return Ok(UpdateOutcome::Ignored(IgnoreReason::PublicChannelKnown));
            }
            existing.directions[direction.index()] = Some(info);
            if capacity_msat.is_some() {
                existing.capacity_msat = capacity_msat;
            }
            return Ok(UpdateOutcome::Applied);
        }
        self.check_room(&one, &two)?;
        let mut directions = [None, None];
        directions[direction.index()] = Some(info);
        let channel = ChannelInfo {
            node_one: one,
            node_two: two,
            capacity_msat,
            announcement: None,
            directions,
            added_at: now,
        };
        self.insert_channel(short_channel_id, channel);
        Ok(UpdateOutcome::Applied)
    }

    /// Add the private channels of an invoice route hint: hop `i` is the channel from its
    /// `src_node_id` to the next hop's `src_node_id` (the payee for the last hop), with the
    /// hint's fees and CLTV delta, no HTLC minimum and no known maximum or capacity.
    pub fn add_route_hint(
        &mut self,
        hint: &RouteHint,
        payee: &PublicKey,
        now: u32,
    ) -> Result<(), GraphError> {
        for (from, to, scid, policy) in hint_channels(hint, payee) {
            self.add_private_channel(from, to, scid, policy, None, now)?;
        }
        Ok(())
    }

    /// Remove a channel whose funding output was spent (BOLT 7: closed channels leave the
    /// graph at once); nodes left without channels go too. Returns what was removed.
    pub fn funding_spent(&mut self, scid: ShortChannelId) -> Option<ChannelInfo> {
        self.pending.remove(&scid);
        let info = self.channels.remove(&scid)?;
        for node in [info.node_one, info.node_two] {
            if let Some(n) = self.nodes.get_mut(&node) {
                n.channels.remove(&scid);
                if n.channels.is_empty() {
                    self.nodes.remove(&node);
                }
            }
        }
        Some(info)
    }

    /// Prune by age at local time `now`: a direction whose latest update is older than
    /// [`STALE_AFTER_SECS`] is dropped; a channel with no direction left and added more than
    /// [`STALE_AFTER_SECS`] ago is removed, and nodes left without channels with it; queued
    /// updates that became stale are dropped. Returns the removed channels.
    pub fn prune_stale(&mut self, now: u32) -> Vec<ShortChannelId> {
        let mut removed = Vec::new();
        for (scid, info) in self.channels.iter_mut() {
            for d in info.directions.iter_mut() {
                if d.as_ref().is_some_and(|d| is_stale(d.timestamp, now)) {
                    *d = None;
                }
            }
            if info.directions.iter().all(Option::is_none) && is_stale(info.added_at, now) {
                removed.push(*scid);
            }
        }
        for scid in &removed {
            self.funding_spent(*scid);
        }
        self.pending.retain(|_, q| {
            for slot in q.iter_mut() {
                if slot.as_ref().is_some_and(|u| is_stale(u.contents.timestamp, now)) {
                    *slot = None;
                }
            }
            q.iter().any(Option::is_some)
        });
        removed
    }

    /// The enabled directed edges that end at `node`, appended to `out` in channel order.
    pub(crate) fn edges_into(&self, node: &PublicKey, out: &mut Vec<Edge>) {
        let Some(info) = self.nodes.get(node) else { return };
        for scid in &info.channels {
            let Some(ch) = self.channels.get(scid) else { continue };
            let Some(dir) = ch.direction_from(node) else { continue };
            let incoming = match dir {
                Direction::OneToTwo => Direction::TwoToOne,
                Direction::TwoToOne => Direction::OneToTwo,
            };
            if let Some(d) = ch.direction(incoming).filter(|d| d.enabled) {
                out.push(Edge {
                    short_channel_id: *scid,
                    source: *ch.source(incoming),
                    target: *node,
                    policy: d.policy,
                    capacity_msat: ch.capacity_msat,
                });
            }
        }
    }
}

/// The directed channels a route hint describes: `(from, to, scid, policy)`.
pub(crate) fn hint_channels(
    hint: &RouteHint,
    payee: &PublicKey,
) -> Vec<(PublicKey, PublicKey, ShortChannelId, ChannelPolicy)> {
    let hops = hint.hops();
    hops.iter()
        .enumerate()
        .map(|(i, hop)| {
            let to = hops.get(i + 1).map_or(*payee, |next| next.src_node_id);
            let policy = ChannelPolicy {
                cltv_expiry_delta: hop.cltv_expiry_delta,
                htlc_minimum_msat: 0,
                htlc_maximum_msat: MAX_MSAT,
                fee_base_msat: hop.fee_base_msat,
                fee_proportional_millionths: hop.fee_proportional_millionths,
            };
            (hop.src_node_id, to, ShortChannelId(hop.short_channel_id), policy)
        })
        .collect()
}
