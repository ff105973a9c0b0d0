//! Any bytes: gossip decoding never panics, an accepted message re-encodes to exactly the input
//! (one encoding per message), and verifying it and feeding it to a graph never panic.
//!
//! The first byte picks the message type (256, 257, 258, or an unknown one); the rest is the
//! payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_lightning::gossip::GossipMessage;
use rnet_lightning::router::NetworkGraph;
use rnet_primitives::BlockHash;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else { return };
    let msg_type = 255 + u16::from(selector % 5);
    let Ok(message) = GossipMessage::decode(msg_type, payload) else { return };
    assert_eq!(message.msg_type(), msg_type);
    assert_eq!(message.encode().as_deref(), Ok(payload));
    let chain = BlockHash::from_bytes([0x42; 32]);
    let mut graph = NetworkGraph::new(chain);
    match &message {
        GossipMessage::ChannelAnnouncement(a) => {
            let _ = a.verify(&chain);
        }
        GossipMessage::NodeAnnouncement(n) => {
            let _ = n.verify();
            let _ = graph.apply_node_announcement(n, 1_700_000_000);
        }
        GossipMessage::ChannelUpdate(u) => {
            let _ = graph.apply_channel_update(u, u.contents.timestamp);
        }
    }
});
