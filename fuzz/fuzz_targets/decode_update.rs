//! Any bytes: model-update decoding never panics and never allocates from an unchecked size; an
//! accepted update re-encodes byte-identically and applying it to a regtest model either succeeds
//! or returns a typed error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rnet_model::{Model, ModelConfig, ModelNetwork, ModelUpdate, UpdateLimits, apply};

fn parent() -> &'static Model {
    static PARENT: OnceLock<Model> = OnceLock::new();
    PARENT.get_or_init(|| {
        Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 0).expect("regtest genesis")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(update) = ModelUpdate::decode(data) {
        assert_eq!(update.encode(), data, "update encoding is not canonical");
        assert_eq!(update.encoded_len(), data.len() as u64);
        let limits = UpdateLimits { max_update_bytes: 1 << 20, max_rank: 64 };
        let _ = apply(parent(), &update, &limits, 1);
    }
});
