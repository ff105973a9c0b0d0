//! Inbound eviction (Bitcoin Core's `SelectNodeToEvict`): when every inbound slot is taken, a new
//! inbound connection replaces an existing one unless all are worth keeping, so connections that
//! merely sit in the slots cannot lock honest peers out.

use std::hash::BuildHasher;
use std::time::Instant;

use crate::addr::NetAddr;

/// Peers kept for their distinct network groups.
pub const PROTECT_BY_GROUP: usize = 4;
/// Peers kept for the lowest ping times.
pub const PROTECT_BY_PING: usize = 8;
/// Peers kept for the most recent new transactions.
pub const PROTECT_BY_TX: usize = 4;
/// Peers kept for the most recent new blocks.
pub const PROTECT_BY_BLOCK: usize = 4;

/// What eviction looks at for one inbound peer.
#[derive(Clone, Debug)]
pub(super) struct Candidate {
    /// Peer id.
    pub(super) id: u64,
    /// Network group (see [`net_group`]).
    pub(super) group: Vec<u8>,
    /// Handshake complete.
    pub(super) handshaked: bool,
    /// Last ping round trip.
    pub(super) ping: Option<f64>,
    /// Last new block from it.
    pub(super) last_block: Option<Instant>,
    /// Last new transaction from it.
    pub(super) last_tx: Option<Instant>,
    /// When it connected.
    pub(super) connected: Instant,
}

/// The network group of an address: IPv4 /16, IPv6 /32, all onion services one group, so an
/// attacker with many addresses in one network competes with itself.
pub(super) fn net_group(a: &NetAddr) -> Vec<u8> {
    match a {
        NetAddr::V4(b) => vec![4, b[0], b[1]],
        NetAddr::V6(b) => vec![6, b[0], b[1], b[2], b[3]],
        NetAddr::TorV3(_) => vec![7],
    }
}

/// The peer to evict, or None when every candidate is protected. Peers that have not finished
/// the handshake go first (the oldest of them). Otherwise, as Core: protect
/// [`PROTECT_BY_GROUP`] peers of distinct groups (in an order keyed by `keyer`, secret per node,
/// so an attacker cannot pick groups that win), [`PROTECT_BY_PING`] with the lowest ping,
/// [`PROTECT_BY_TX`] and [`PROTECT_BY_BLOCK`] that most recently relayed something new, and the
/// longest-connected half of the rest; then evict the youngest peer of the group with the most
/// remaining peers (ties: the group whose youngest is youngest).
pub(super) fn select_victim(mut c: Vec<Candidate>, keyer: &impl BuildHasher) -> Option<u64> {
    if let Some(v) = c.iter().filter(|x| !x.handshaked).min_by_key(|x| (x.connected, x.id)) {
        return Some(v.id);
    }
    // Distinct groups, in keyed order.
    c.sort_by_key(|x| (keyer.hash_one(&x.group), x.id));
    let mut seen = Vec::new();
    let mut keep = Vec::new();
    for x in &c {
        if seen.len() < PROTECT_BY_GROUP && !seen.contains(&x.group) {
            seen.push(x.group.clone());
            keep.push(x.id);
        }
    }
    c.retain(|x| !keep.contains(&x.id));
    protect(
        &mut c,
        PROTECT_BY_PING,
        |x| x.ping.map(|p| (p * 1e6) as u64).unwrap_or(u64::MAX),
        |x| x.ping.is_some(),
    );
    protect_recent(&mut c, PROTECT_BY_TX, |x| x.last_tx);
    protect_recent(&mut c, PROTECT_BY_BLOCK, |x| x.last_block);
    c.sort_by_key(|x| (x.connected, x.id));
    let half = c.len() / 2;
    c.drain(..half);
    if c.is_empty() {
        return None;
    }
    // The group with the most peers left; its youngest member.
    let mut groups: Vec<(Vec<u8>, usize, Instant)> = Vec::new();
    for x in &c {
        match groups.iter_mut().find(|g| g.0 == x.group) {
            Some(g) => {
                g.1 += 1;
                g.2 = g.2.max(x.connected);
            }
            None => groups.push((x.group.clone(), 1, x.connected)),
        }
    }
    let (group, _, _) = groups.into_iter().max_by_key(|g| (g.1, g.2))?;
    c.into_iter().filter(|x| x.group == group).max_by_key(|x| (x.connected, x.id)).map(|x| x.id)
}

impl super::Manager {
    /// The inbound peer to evict for a new inbound connection (None: keep them all).
    pub(super) fn inbound_victim(&self) -> Option<u64> {
        let c = self
            .peers
            .iter()
            .filter(|(_, p)| p.inbound)
            .map(|(id, p)| Candidate {
                id: *id,
                group: net_group(&p.addr.addr),
                handshaked: p.ready(),
                ping: p.ping_time,
                last_block: p.last_block,
                last_tx: p.last_tx,
                connected: p.connected,
            })
            .collect();
        select_victim(c, &self.evict_keyer)
    }
}

/// Removes the `n` best candidates by `key` (lowest first) among those `eligible`.
fn protect<K: Ord>(
    c: &mut Vec<Candidate>,
    n: usize,
    key: impl Fn(&Candidate) -> K,
    eligible: impl Fn(&Candidate) -> bool,
) {
    let mut best: Vec<&Candidate> = c.iter().filter(|x| eligible(x)).collect();
    best.sort_by_key(|x| key(x));
    let ids: Vec<u64> = best.iter().take(n).map(|x| x.id).collect();
    c.retain(|x| !ids.contains(&x.id));
}

/// Removes the `n` candidates with the most recent `when`.
fn protect_recent(c: &mut Vec<Candidate>, n: usize, when: impl Fn(&Candidate) -> Option<Instant>) {
    protect(c, n, |x| std::cmp::Reverse(when(x)), |x| when(x).is_some());
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;
    use std::time::Duration;

    use super::*;

    fn cand(id: u64, group: u8, at: Instant) -> Candidate {
        Candidate {
            id,
            group: vec![4, group, 0],
            handshaked: true,
            ping: None,
            last_block: None,
            last_tx: None,
            connected: at,
        }
    }

    #[test]
    fn evicts_unfinished_handshakes_first_then_the_crowded_groups_youngest() {
        let t0 = Instant::now();
        let s = RandomState::new();
        let mut c: Vec<Candidate> =
            (0..20).map(|i| cand(i, 1, t0 + Duration::from_secs(i))).collect();
        // Four honest peers in their own groups, one with a fast ping, one relaying blocks.
        for (i, g) in [(100, 2), (101, 3), (102, 5), (103, 6)] {
            c.push(cand(i, g, t0));
        }
        let mut silent = cand(50, 9, t0 + Duration::from_secs(99));
        silent.handshaked = false;
        let mut with_silent = c.clone();
        with_silent.push(silent);
        assert_eq!(select_victim(with_silent, &s), Some(50));
        // The attacker's group (group 1, 20 peers) loses its youngest member.
        assert_eq!(select_victim(c.clone(), &s), Some(19));
        // Everyone protected: nothing to evict.
        assert_eq!(select_victim(c[20..].to_vec(), &s), None);
    }
}
