#![no_main]
//! P2P message decoding: the first byte is the command, the rest the payload; decoding must never
//! panic, and whatever decodes must re-encode to the same bytes.

use libfuzzer_sys::fuzz_target;
use rnet_net::Message;

fuzz_target!(|data: &[u8]| {
    if let Some((&command, payload)) = data.split_first() {
        if let Ok(m) = Message::decode(command, payload) {
            assert_eq!(m.command(), command);
            assert_eq!(m.payload(), payload);
        }
    }
});
