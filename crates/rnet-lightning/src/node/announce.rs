//! Public channels (`docs/lightning.md` §5.9): once a channel opened with the announce flag is
//! [`ANNOUNCEMENT_DEPTH`] blocks deep, both sides send `announcement_signatures` (their node
//! key's and funding key's signatures over the `channel_announcement` digest); each side then
//! holds all four signatures, puts the announcement in its graph and gossips it with its own
//! `channel_update`, so that any node can route through the channel without an invoice hint.
//!
//! Nothing here is persisted: the signatures are sent again on every connection until the
//! announcement is assembled, and the graph is rebuilt from gossip after a restart.

use std::collections::{BTreeMap, BTreeSet};

use rnet_crypto::{PublicKey, Signature};
use rnet_primitives::TxOut;
use rnet_script::ScriptTemplate;

use super::{Action, ChanStatus, LightningNode, NodeError};
use crate::gossip::{
    CHANNEL_ANNOUNCEMENT_TYPE, CHANNEL_UPDATE_TYPE, ChannelAnnouncement, ChannelUpdate,
    UnsignedChannelAnnouncement,
};
use crate::router::UpdateOutcome;
use crate::state::Phase;
use crate::wire::{AnnouncementSignatures, Message, SignatureBytes};

/// Confirmations of the funding transaction before a channel is announced (BOLT 7: 6), so
/// that a shallow reorganisation does not invalidate announcements already relayed.
pub const ANNOUNCEMENT_DEPTH: u32 = 6;

/// The exchange's progress per channel (by local id); in memory only.
#[derive(Debug, Default, Clone)]
pub(crate) struct Announcements {
    /// Channels whose signatures went to their peer on its current connection.
    sent: BTreeSet<u64>,
    /// The counterparty's (node, funding) signatures, checked when the announcement is built.
    remote: BTreeMap<u64, (SignatureBytes, SignatureBytes)>,
    /// Channels whose announcement is in our graph.
    done: BTreeSet<u64>,
}

/// A gossip message framed for the wire: `u16 type ‖ payload`.
fn framed(msg_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = msg_type.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

impl LightningNode {
    /// The announcement channel `lid` would have now, if it is public, open, usable and deep
    /// enough.
    fn unsigned_announcement(&self, lid: u64) -> Option<UnsignedChannelAnnouncement> {
        let e = self.channels.get(&lid)?;
        if e.channel.channel_flags & 1 == 0
            || e.status != ChanStatus::Open
            || e.channel.phase() != Phase::Normal
        {
            return None;
        }
        let scid = e.scid?;
        let depth = self.meta.height.checked_sub(scid.block_height())?.saturating_add(1);
        if depth < ANNOUNCEMENT_DEPTH {
            return None;
        }
        let ours = e.channel.keys.funding.public_key();
        let theirs = e.channel.counterparty.as_ref()?.keys.funding;
        let we_are_first = self.node_id.as_bytes() < e.peer.as_bytes();
        let (node_id_1, node_id_2, funding_key_1, funding_key_2) = if we_are_first {
            (self.node_id, e.peer, ours, theirs)
        } else {
            (e.peer, self.node_id, theirs, ours)
        };
        Some(UnsignedChannelAnnouncement {
            features: Vec::new(),
            chain_hash: self.config.genesis,
            short_channel_id: scid,
            node_id_1,
            node_id_2,
            funding_key_1,
            funding_key_2,
        })
    }

    /// Sends our `announcement_signatures` for every channel that can be announced and whose
    /// peer is connected and has not had them on this connection.
    pub(crate) fn send_announcement_signatures(&mut self) {
        let candidates: Vec<u64> = self
            .channels
            .keys()
            .copied()
            .filter(|lid| {
                !self.announcements.sent.contains(lid) && !self.announcements.done.contains(lid)
            })
            .collect();
        for lid in candidates {
            let Some(unsigned) = self.unsigned_announcement(lid) else { continue };
            let Ok(digest) = unsigned.signing_digest() else { continue };
            let e = &self.channels[&lid];
            if !self.peers.contains(&e.peer) || !e.channel.connected {
                continue;
            }
            let message = AnnouncementSignatures {
                channel_id: e.channel.channel_id(),
                short_channel_id: unsigned.short_channel_id.0,
                node_signature: self.config.node_key.sign(&digest).to_bytes(),
                funding_signature: e.channel.keys.funding.sign(&digest).to_bytes(),
            };
            let peer = e.peer;
            self.announcements.sent.insert(lid);
            self.send(peer, Message::AnnouncementSignatures(message));
            self.assemble_announcement(lid);
        }
    }

    /// The counterparty's half. Kept (one per channel) until ours is sent too; checked then.
    pub(crate) fn handle_announcement_signatures(
        &mut self,
        from: PublicKey,
        m: &AnnouncementSignatures,
    ) {
        let Some(lid) = self.find_channel(&from, &m.channel_id) else { return };
        if self.channels[&lid].scid.map(|s| s.0) != Some(m.short_channel_id) {
            // For another funding output than ours: not this channel's announcement.
            return;
        }
        self.announcements.remote.insert(lid, (m.node_signature, m.funding_signature));
        self.assemble_announcement(lid);
    }

    /// Forgets what was sent to `peer`, so the signatures go again on the next connection.
    pub(crate) fn announcements_peer_disconnected(&mut self, peer: &PublicKey) {
        let channels = &self.channels;
        self.announcements.sent.retain(|lid| channels.get(lid).is_none_or(|e| e.peer != *peer));
    }

    /// With both halves: the announcement goes into our graph (which checks all four
    /// signatures and our funding output) and out as gossip with our `channel_update`.
    fn assemble_announcement(&mut self, lid: u64) {
        if self.announcements.done.contains(&lid) || !self.announcements.sent.contains(&lid) {
            return;
        }
        let Some(&(node_sig, funding_sig)) = self.announcements.remote.get(&lid) else { return };
        let Some(unsigned) = self.unsigned_announcement(lid) else { return };
        let Ok(digest) = unsigned.signing_digest() else { return };
        let e = &self.channels[&lid];
        let Some(params) = e.channel.parameters() else { return };
        let ours = (self.config.node_key.sign(&digest), e.channel.keys.funding.sign(&digest));
        let theirs = (Signature::from_bytes(node_sig), Signature::from_bytes(funding_sig));
        let ((n1, f1), (n2, f2)) =
            if unsigned.node_id_1 == self.node_id { (ours, theirs) } else { (theirs, ours) };
        let announcement = ChannelAnnouncement {
            node_signature_1: n1,
            node_signature_2: n2,
            funding_signature_1: f1,
            funding_signature_2: f2,
            contents: unsigned,
        };
        let funding_output = TxOut {
            value: params.funding_amount(),
            script_pubkey: params.funding_script().script_pubkey(),
        };
        let now = self.now32();
        match self.graph.add_channel_announcement(&announcement, &funding_output, now) {
            Ok(_) => {
                self.announcements.done.insert(lid);
                if let Ok(payload) = announcement.encode() {
                    self.out.push(Action::Gossip(framed(CHANNEL_ANNOUNCEMENT_TYPE, &payload)));
                }
                let peer = e.peer;
                let scid = announcement.contents.short_channel_id;
                for update in self.channel_updates(&peer) {
                    if update.contents.short_channel_id == scid {
                        let _ = self.graph.apply_channel_update(&update, now);
                        self.out
                            .push(Action::Gossip(framed(CHANNEL_UPDATE_TYPE, &update.encode())));
                    }
                }
            }
            Err(_) => {
                // Their signatures do not verify: drop them and wait for another copy.
                self.announcements.remote.remove(&lid);
            }
        }
    }

    /// A `channel_announcement` from gossip, with the unspent output its short channel id
    /// points at (the caller's chain lookup, at least [`ANNOUNCEMENT_DEPTH`] deep).
    pub fn add_channel_announcement(
        &mut self,
        announcement: &ChannelAnnouncement,
        funding_output: &TxOut,
    ) -> Result<UpdateOutcome, NodeError> {
        let now = self.now32();
        Ok(self.graph.add_channel_announcement(announcement, funding_output, now)?)
    }

    /// The public part of our graph as gossip messages (announcements, then the latest update
    /// of each direction): what a newly connected peer is sent.
    pub fn gossip_snapshot(&self) -> Vec<Vec<u8>> {
        let mut announcements = Vec::new();
        let mut updates = Vec::new();
        for (_, info) in self.graph.channels() {
            let Some(announcement) = &info.announcement else { continue };
            let Ok(payload) = announcement.encode() else { continue };
            announcements.push(framed(CHANNEL_ANNOUNCEMENT_TYPE, &payload));
            for direction in info.directions.iter().flatten() {
                if let Some(update) = &direction.update {
                    updates.push(framed(CHANNEL_UPDATE_TYPE, &update.encode()));
                }
            }
        }
        announcements.extend(updates);
        announcements
    }

    /// Whether `update` is for a channel the graph knows as public (so that it is relayed).
    pub fn is_public_channel_update(&self, update: &ChannelUpdate) -> bool {
        self.graph
            .channel(update.contents.short_channel_id)
            .is_some_and(|info| info.announcement.is_some())
    }
}
