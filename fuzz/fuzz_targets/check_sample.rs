//! Any bytes: an evaluation sample decodes within its limits or is refused, re-encodes
//! byte-identically, and sample validation against a regtest header (whose seed fields come from
//! the input) never panics and never accepts records that are not the drawn, proven ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_consensus::{ChainParams, check_sample, sample_indices};
use rnet_primitives::{BlockHash, EvalSample, Hash256, decode_exact, encode_to_vec};

fuzz_target!(|data: &[u8]| {
    // The first 64 bytes choose the parent hash and checkpoint root; the rest is the sample.
    if data.len() < 64 {
        return;
    }
    let (seed_fields, encoded) = data.split_at(64);
    let Ok(sample) = decode_exact::<EvalSample>(encoded) else { return };
    assert_eq!(encode_to_vec(&sample), encoded, "sample encoding is not canonical");
    let params = ChainParams::regtest();
    let mut header = params.genesis_block().header;
    header.prev_block_hash = BlockHash::from_bytes(seed_fields[..32].try_into().unwrap());
    header.checkpoint_root = Hash256(seed_fields[32..].try_into().unwrap());
    if let Ok(windows) = check_sample(&params, &header, &sample) {
        let drawn = sample_indices(&params, &header);
        let got: Vec<u64> = sample.records.iter().map(|r| u64::from(r.index)).collect();
        assert_eq!(got, drawn, "an accepted sample is exactly the drawn records");
        assert_eq!(windows.len(), params.sample_records);
    }
});
