//! Any bytes: decoding never panics, and whatever decodes re-encodes to the same bytes
//! (one encoding per value).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_primitives::{Transaction, encode_to_vec};

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::from_bytes(data) {
        assert_eq!(encode_to_vec(&tx), data, "transaction encoding is not canonical");
        let _ = (tx.txid(), tx.wtxid());
    }
});
