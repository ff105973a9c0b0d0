//! Any bytes: checkpoint header parsing and full loading never panic and never allocate from an
//! unchecked size; an accepted checkpoint re-encodes byte-identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_model::Checkpoint;
use rnet_model::checkpoint::parse_header;

fuzz_target!(|data: &[u8]| {
    let _ = parse_header(data);
    if let Ok(checkpoint) = Checkpoint::from_bytes(data) {
        assert_eq!(checkpoint.to_bytes(), data, "checkpoint encoding is not canonical");
    }
});
