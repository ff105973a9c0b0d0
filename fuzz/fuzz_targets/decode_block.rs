//! Any bytes: block decoding never panics or over-allocates, accepted blocks re-encode
//! byte-identically, and the merkle computation runs on them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_primitives::{Block, encode_to_vec};

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = Block::from_bytes(data) {
        assert_eq!(encode_to_vec(&block), data, "block encoding is not canonical");
        let _ = block.compute_merkle_root();
    }
});
