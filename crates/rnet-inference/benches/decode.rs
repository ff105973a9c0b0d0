//! Decode benchmark: `cargo bench -p rnet-inference --bench decode`.
//!
//! For the mainnet genesis shape in f32 and int8 it prints the decode rate of one session (bytes
//! per second), the recurrent state per session, the weight bytes read per decoded byte, the
//! machine's measured memory bandwidth (streaming read of a 1 GiB buffer) and the ratio of the
//! achieved rate to the bandwidth-bound rate (`bandwidth / weight bytes per byte`); then the same
//! with one session per core, the prefill rate, and the reference scalar step for comparison.
//! Rates are the best of several rounds (the machine may be shared). `RNET_BENCH_QUICK=1`
//! shortens every measurement.

use std::time::Instant;

use rnet_inference::bench::memory_bandwidth;
use rnet_inference::kernels::simd_enabled;
use rnet_inference::sampling::argmax;
use rnet_inference::{Engine, Precision};
use rnet_model::{Model, ModelConfig, ModelNetwork, RecurrentState, excerpt, step};

fn gb(bytes_per_s: f64) -> String {
    format!("{:.2} GB/s", bytes_per_s / 1e9)
}

fn mib(bytes: usize) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Greedy decode after `warm` unmeasured bytes: `rounds` rounds of `n` bytes each; returns the
/// best round's bytes per second (the machine may be shared, so the best round is the one least
/// disturbed).
fn decode_rate(engine: &Engine, prompt: &[u8], warm: usize, n: usize, rounds: usize) -> f64 {
    let mut s = engine.new_session();
    let mut next = argmax(engine.prefill(&mut s, prompt).expect("same shape").expect("non-empty"));
    for _ in 0..warm {
        next = argmax(engine.step(&mut s, next).expect("same shape"));
    }
    let mut best = 0.0f64;
    for _ in 0..rounds {
        let t0 = Instant::now();
        for _ in 0..n {
            next = argmax(engine.step(&mut s, next).expect("same shape"));
        }
        best = best.max(n as f64 / t0.elapsed().as_secs_f64());
    }
    std::hint::black_box(next);
    best
}

fn main() {
    let quick = std::env::var_os("RNET_BENCH_QUICK").is_some();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "rnet-inference decode benchmark: {cores} cores, AVX2+FMA kernels: {}",
        simd_enabled()
    );

    let buf = if quick { 256 << 20 } else { 1 << 30 };
    let bw1 = memory_bandwidth(buf, 1, 3);
    let bw_all = memory_bandwidth(buf, cores, 3);
    println!(
        "memory bandwidth (streaming read of {}): 1 thread {}, {cores} threads {}",
        mib(buf),
        gb(bw1),
        gb(bw_all)
    );

    let cfg = ModelConfig::genesis(ModelNetwork::Mainnet);
    let t0 = Instant::now();
    let model = Model::init(cfg.clone(), 0).expect("genesis config is valid");
    println!(
        "mainnet genesis shape: d={} L={} S={} F={} kernels={:?}, {} parameters ({} as f32); init {:.2} s",
        cfg.d_model,
        cfg.n_layers,
        cfg.n_slots,
        cfg.d_ff,
        cfg.kernel_sizes,
        model.param_count(),
        mib(4 * model.param_count()),
        t0.elapsed().as_secs_f64()
    );
    let prompt = &excerpt(ModelNetwork::Mainnet)[..512];
    let (warm, n, rounds) = if quick { (20, 100, 3) } else { (100, 500, 6) };

    for precision in [Precision::F32, Precision::Int8] {
        let t0 = Instant::now();
        let engine = Engine::new(&model, precision);
        let load = t0.elapsed().as_secs_f64();
        let wpt = engine.weight_bytes_per_token();
        let rate = decode_rate(&engine, prompt, warm, n, rounds);
        let bound1 = bw1 / wpt as f64;
        println!("\n[{precision}] engine build {load:.2} s");
        println!(
            "  state per session:        {} ({} B)",
            mib(engine.state_bytes()),
            engine.state_bytes()
        );
        println!("  weight bytes per token:   {} ({} B)", mib(wpt), wpt);
        println!(
            "  decode, 1 session:        {rate:.0} bytes/s ({:.3} ms/byte, {})",
            1e3 / rate,
            gb(rate * wpt as f64)
        );
        println!(
            "  bandwidth bound (1 thread): {bound1:.0} bytes/s -> achieved {:.0}% of bound",
            100.0 * rate / bound1
        );
        // The same read at the size of the weights: cache-resident when they fit in cache, so a
        // stricter bound than the DRAM bandwidth.
        let bw_ws = memory_bandwidth(wpt, 1, 20);
        println!(
            "  read bandwidth at that working set ({}): {} -> bound {:.0} bytes/s, achieved {:.0}%",
            mib(wpt),
            gb(bw_ws),
            bw_ws / wpt as f64,
            100.0 * rate * wpt as f64 / bw_ws
        );
        // One session per core: aggregate throughput against the all-core bandwidth.
        let per: Vec<f64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..cores)
                .map(|_| s.spawn(|| decode_rate(&engine, prompt, warm, n, rounds)))
                .collect();
            hs.into_iter().map(|h| h.join().expect("decode thread")).collect()
        });
        let total: f64 = per.iter().sum();
        let bound_all = bw_all / wpt as f64;
        println!(
            "  decode, {cores} sessions:       {total:.0} bytes/s total; all-core bound {bound_all:.0} bytes/s -> {:.0}%",
            100.0 * total / bound_all
        );
        // Prefill (position-blocked).
        let long = &excerpt(ModelNetwork::Mainnet)[..if quick { 1024 } else { 4096 }];
        let mut secs = f64::INFINITY;
        for _ in 0..3 {
            let mut s = engine.new_session();
            let t0 = Instant::now();
            engine.prefill(&mut s, long).expect("same shape");
            secs = secs.min(t0.elapsed().as_secs_f64());
        }
        println!(
            "  prefill ({cores} threads):      {:.0} bytes/s ({} bytes)",
            long.len() as f64 / secs,
            long.len()
        );
    }

    // The canonical scalar step, for comparison.
    let mut state = RecurrentState::new(&cfg);
    let steps = if quick { 10 } else { 50 };
    let t0 = Instant::now();
    for &b in &prompt[..steps] {
        std::hint::black_box(step(&model, &mut state, b).expect("same shape"));
    }
    println!(
        "\nreference rnet_model::step (bit-exact scalar): {:.0} bytes/s",
        steps as f64 / t0.elapsed().as_secs_f64()
    );
}
