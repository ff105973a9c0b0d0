//! Any bytes: Lightning peer-message decoding never panics; an accepted message re-encodes and
//! decodes to itself, and the channel-state decoder never panics on the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_lightning::state::Channel;
use rnet_lightning::wire::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(msg)) = Message::decode(data) {
        let bytes = msg.encode().expect("a decoded message fits its fields");
        assert_eq!(Message::decode(&bytes), Ok(Some(msg)));
    }
    if let Ok(channel) = Channel::decode(data) {
        assert_eq!(Channel::decode(&channel.encode()).map(|c| c.encode()), Ok(channel.encode()));
    }
});
