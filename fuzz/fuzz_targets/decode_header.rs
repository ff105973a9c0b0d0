//! Any bytes: header decoding never panics and accepted headers re-encode byte-identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_primitives::{BlockHeader, encode_to_vec};

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = BlockHeader::from_bytes(data) {
        assert_eq!(encode_to_vec(&header), data, "header encoding is not canonical");
        let _ = header.hash();
    }
});
