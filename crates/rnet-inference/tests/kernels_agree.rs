//! The int8 decode gives the same bits with every x86-64 kernel (AVX-512 VNNI, 256-bit VNNI, AVX2):
//! each computes a block's exact integer sum and adds it with one FMA per block, so an int8
//! session decodes the same bytes on any x86-64 machine with AVX2 and FMA. (Own test binary: it
//! switches the kernel path, which is process-wide.)
#![cfg(target_arch = "x86_64")]

mod common;

use common::{random_bytes, random_config, random_model};
use rnet_inference::kernels::{set_avx512, set_vnni_allowed};
use rnet_inference::{Engine, Precision};
use rnet_model::{ModelConfig, ModelNetwork};

#[test]
fn int8_decode_is_bit_identical_on_every_x86_kernel() {
    if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    {
        return;
    }
    let mut configs: Vec<ModelConfig> = (200..206u64).map(random_config).collect();
    configs.push(ModelConfig::genesis(ModelNetwork::Regtest));
    configs.push(ModelConfig::genesis(ModelNetwork::Mainnet));
    for (i, cfg) in configs.into_iter().enumerate() {
        let model = random_model(cfg.clone(), 300 + i as u64);
        let bytes = random_bytes(40, 400 + i as u64);
        let engine = Engine::new(&model, Precision::Int8).with_threads(2);
        let mut runs = Vec::new();
        // AVX-512 VNNI where present, 256-bit VNNI (VEX or EVEX) where present, AVX2.
        for (vnni, avx512) in [(true, true), (true, false), (false, false)] {
            set_vnni_allowed(vnni);
            set_avx512(Some(avx512));
            let name = rnet_inference::kernels::kernel_name();
            let mut s = engine.new_session();
            let mut logits: Vec<Vec<f32>> =
                bytes[..20].iter().map(|&b| engine.step(&mut s, b).unwrap().to_vec()).collect();
            // And after a prefill (its products are not the decode kernels'; the decode after
            // it continues from the same state).
            engine.prefill(&mut s, &bytes[20..39]).unwrap();
            logits.push(engine.step(&mut s, bytes[39]).unwrap().to_vec());
            runs.push((name, logits));
        }
        set_vnni_allowed(true);
        set_avx512(None);
        let (first, want) = &runs[0];
        for (name, got) in &runs[1..] {
            for (t, (g, w)) in got.iter().zip(want).enumerate() {
                let same = g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "config {i}, byte {t}: {name} differs from {first}");
            }
        }
    }
}
