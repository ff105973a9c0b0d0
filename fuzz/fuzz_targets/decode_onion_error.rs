//! Any bytes: error-packet attribution with fixed shared secrets never panics, and a failure a
//! hop builds from fuzzed data is attributed to exactly that hop after every upstream layer.
//!
//! The first byte picks the route length (1–20) and the erring hop. The rest is decoded as a
//! returned error packet; it is also parsed as a failure message, and when that succeeds (and
//! fits) the erring hop builds a packet from it that must decode back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_lightning::onion::{
    DecodedFailure, FailureMessage, MAX_HOPS, SharedSecret, create_error_packet,
    decode_error_packet, wrap_error_packet,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let hops = usize::from(selector) % MAX_HOPS + 1;
    let secrets: Vec<SharedSecret> =
        (0..hops).map(|i| SharedSecret::from_bytes([i as u8 + 1; 32])).collect();
    let _ = decode_error_packet(&secrets, rest);

    let Ok(message) = FailureMessage::decode(rest) else { return };
    let erring = usize::from(selector >> 4) % hops;
    let Ok(mut packet) = create_error_packet(&secrets[erring], &message) else { return };
    for secret in secrets[..erring].iter().rev() {
        packet = wrap_error_packet(secret, &packet);
    }
    assert_eq!(
        decode_error_packet(&secrets, &packet),
        Ok(DecodedFailure { hop_index: erring, message })
    );
});
