//! Training throughput of the CPU engine at the mainnet genesis shape, against the machine's
//! measured f32 matrix-multiply peak with the same `gemm` backend.
//!
//! `cargo bench -p rnet-training` prints: bytes/s, model FLOPs per byte, achieved FLOP/s, the
//! measured peak and their ratio (model FLOPs utilisation). Environment overrides:
//! `RNET_BENCH_WINDOWS` (windows per batch, default 4), `RNET_BENCH_STEPS` (timed steps, default 4),
//! `RNET_BENCH_SCAN=parallel` (use the log-domain scan).

use std::time::Instant;

use rnet_model::{Model, ModelConfig, ModelNetwork, training_text};
use rnet_training::linalg::gemm_strided;
use rnet_training::{DataConfig, DataSource, ScanMode, TrainConfig, Trainer, flop_count};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Best-of-`reps` rate of an `n × n × n` f32 product, FLOP/s.
fn gemm_peak(n: usize, reps: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 97) as f32 - 48.0) * 0.01).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 89) as f32 - 44.0) * 0.01).collect();
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::MAX;
    for _ in 0..reps + 1 {
        let t = Instant::now();
        gemm_strided(n, n, n, &mut c, n, 1, false, &a, n, 1, &b, n, 1, 1.0);
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&c);
    2.0 * (n * n * n) as f64 / best
}

fn main() {
    let threads = rayon::current_num_threads();
    let config = ModelConfig::genesis(ModelNetwork::Mainnet);
    let windows = env_usize("RNET_BENCH_WINDOWS", 4);
    let steps = env_usize("RNET_BENCH_STEPS", 4).max(1);
    let scan = match std::env::var("RNET_BENCH_SCAN").as_deref() {
        Ok("parallel") => ScanMode::Parallel,
        _ => ScanMode::Sequential,
    };
    println!(
        "rnet-training bench: mainnet genesis d={} L={} S={} F={} kernels={:?} T={}, {} windows/batch, {} threads, {:?} scan",
        config.d_model,
        config.n_layers,
        config.n_slots,
        config.d_ff,
        config.kernel_sizes,
        config.window,
        windows,
        threads,
        scan
    );

    let peak_before = gemm_peak(2048, 3);

    let model = Model::init(config.clone(), 0).expect("genesis config is valid");
    let (_, params) = model.into_parts();
    let train = TrainConfig {
        batch_windows: windows,
        warmup: 10,
        total_steps: 1000,
        scan,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(params, config.clone(), train, None).expect("trainer");
    let source = DataSource::from_static(
        training_text(),
        DataConfig { window: config.window, holdout_fraction: 0.0, seed: 7 },
    )
    .expect("bundled corpus");

    // Warm-up step (sizes the workspace).
    let b = source.batch(0, windows);
    let s0 = trainer.step(&b).expect("step");
    let mut times = Vec::with_capacity(steps);
    let mut last = s0;
    for i in 0..steps {
        let b = source.batch(1 + i as u64, windows);
        let t = Instant::now();
        last = trainer.step(&b).expect("step");
        times.push(t.elapsed().as_secs_f64());
    }
    let bytes = b.len() * steps;
    let secs: f64 = times.iter().sum();
    let best_step = times.iter().copied().fold(f64::MAX, f64::min);
    let fwd_t = Instant::now();
    let _ = trainer.loss(&b).expect("loss");
    let fwd_secs = fwd_t.elapsed().as_secs_f64();

    // The peak is measured before and after the training steps and the higher one is used, so a
    // busy neighbour during one measurement cannot inflate the utilisation.
    let peak = peak_before.max(gemm_peak(2048, 3));
    println!(
        "measured f32 gemm peak (2048^3 product, gemm crate, {threads} threads, best of 8): {:.1} GFLOP/s",
        peak / 1e9
    );
    let fc = flop_count(&config);
    let bytes_per_sec = bytes as f64 / secs;
    let best_bytes_per_sec = b.len() as f64 / best_step;
    let train_flops = fc.train_flops_per_byte();
    println!(
        "step time: mean {:.3} s, best {:.3} s for {} bytes (loss {:.3} → {:.3})",
        secs / steps as f64,
        best_step,
        b.len(),
        s0.loss,
        last.loss
    );
    println!("forward-only time: {:.3} s per batch", fwd_secs);
    println!("activation workspace: {:.0} MiB", trainer_memory_mib(&trainer));
    println!(
        "training throughput: {:.0} bytes/s mean, {:.0} bytes/s best step",
        bytes_per_sec, best_bytes_per_sec
    );
    println!(
        "model FLOPs per byte: {:.2} MFLOP forward, {:.2} MFLOP train (6 × {:.2} M multiply-adds)",
        fc.forward_flops_per_byte() / 1e6,
        train_flops / 1e6,
        fc.forward_macs_per_byte / 1e6
    );
    println!(
        "achieved: {:.1} GFLOP/s mean, {:.1} GFLOP/s best step",
        bytes_per_sec * train_flops / 1e9,
        best_bytes_per_sec * train_flops / 1e9
    );
    println!(
        "model FLOPs utilization: {:.1}% (best step vs best gemm), {:.1}% (mean step vs best gemm)",
        100.0 * best_bytes_per_sec * train_flops / peak,
        100.0 * bytes_per_sec * train_flops / peak
    );
}

fn trainer_memory_mib(t: &Trainer) -> f64 {
    t.workspace_bytes() as f64 / (1024.0 * 1024.0)
}
