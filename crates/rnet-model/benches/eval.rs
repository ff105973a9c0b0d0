//! Evaluator benchmark: `cargo bench -p rnet-model`.
//!
//! Prints the canonical evaluator's throughput per network genesis shape and the time to verify
//! one mainnet block (the 64 KiB mainnet validation slice at the mainnet genesis shape, all cores),
//! plus the recurrent step rate. Set `RNET_BENCH_QUICK=1` to skip the full mainnet block.

use std::time::Instant;

use rnet_model::{
    Checkpoint, Model, ModelConfig, ModelNetwork, RecurrentState, evaluate, excerpt, step,
};

fn main() {
    let threads = rayon::current_num_threads();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("rnet-model evaluator benchmark: {cores} cores, rayon pool of {threads} threads");
    #[cfg(target_arch = "x86_64")]
    println!("avx2: {}", std::arch::is_x86_feature_detected!("avx2"));
    let quick = std::env::var_os("RNET_BENCH_QUICK").is_some();

    for net in [ModelNetwork::Regtest, ModelNetwork::Testnet, ModelNetwork::Mainnet] {
        let cfg = ModelConfig::genesis(net);
        let t0 = Instant::now();
        let model = Model::init(cfg.clone(), 0).expect("genesis config is valid");
        let init_s = t0.elapsed().as_secs_f64();
        let full = excerpt(net);
        let data = if net == ModelNetwork::Mainnet && quick { &full[..8 * 1024 + 1] } else { full };
        // Warm-up on a small prefix (page faults, thread pool start).
        let _ = evaluate(&model, &data[..(2 * cfg.window + 1).min(data.len())]);
        let t0 = Instant::now();
        let r = evaluate(&model, data).expect("evaluation succeeds");
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "{net:?}: d={} L={} T={} params={} | {} bytes in {:.3} s = {:.0} bytes/s | val_loss {} µnat ({:.4} nats, {:.4} bits/byte) | init {:.3} s",
            cfg.d_model,
            cfg.n_layers,
            cfg.window,
            model.param_count(),
            r.bytes,
            secs,
            r.bytes as f64 / secs,
            r.val_loss_micronats,
            r.mean_nats,
            r.bits_per_byte(),
            init_s,
        );
        if net == ModelNetwork::Mainnet {
            if quick {
                println!("(quick mode: mainnet block time estimated from 8 KiB)");
            }
            let est = secs * full.len() as f64 / data.len() as f64;
            println!(
                "mainnet block verification (64 KiB slice, genesis shape, {threads} threads): {est:.2} s"
            );
            let ck = Checkpoint::new(0, model.clone());
            let t0 = Instant::now();
            let bytes = ck.to_bytes();
            let root =
                rnet_model::checkpoint::merkle_root(&rnet_model::checkpoint::chunk_hashes(&bytes));
            let hash_s = t0.elapsed().as_secs_f64();
            let t0 = Instant::now();
            let back = Checkpoint::from_bytes(&bytes).expect("round trip");
            let load_s = t0.elapsed().as_secs_f64();
            assert_eq!(back.model.params().len(), model.param_count());
            println!(
                "mainnet checkpoint: {} bytes, encode+root {:.3} s, strict load {:.3} s, root {:02x}{:02x}{:02x}{:02x}…",
                bytes.len(),
                hash_s,
                load_s,
                root[0],
                root[1],
                root[2],
                root[3]
            );
        }
        // Recurrent step rate (single thread, one byte at a time).
        let mut state = RecurrentState::new(&cfg);
        let n = match net {
            ModelNetwork::Regtest => 2000,
            ModelNetwork::Testnet => 400,
            ModelNetwork::Mainnet => 100,
        };
        let t0 = Instant::now();
        for &b in data.iter().take(n) {
            let _ = step(&model, &mut state, b).expect("state matches");
        }
        let secs = t0.elapsed().as_secs_f64();
        println!("{net:?}: recurrent step {:.0} bytes/s", n as f64 / secs);
    }
}
