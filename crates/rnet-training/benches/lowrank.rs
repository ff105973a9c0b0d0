//! Low-rank training against full-rank training.
//!
//! `cargo bench -p rnet-training --bench lowrank` prints
//! 1. training throughput (bytes/s) at the testnet genesis shape (d = 128, L = 4, T = 256) for
//!    full-rank training and for ranks 4, 16 and 64 (modes interleaved over rounds, best round);
//! 2. the canonical loss (`rnet_model::evaluate` on the benchmark slice) after the same number of
//!    steps from the same start, full rank against rank 16 (the low-rank result is the exported
//!    update applied with `rnet_model::apply`), at the regtest shape by default.
//!
//! Environment: `RNET_BENCH_STEPS` (timed steps per mode and round, default 4), `RNET_BENCH_ROUNDS`
//! (default 2), `RNET_BENCH_LOSS_STEPS` (default 300), `RNET_BENCH_LOSS_NET` (`regtest` or
//! `testnet`), `RNET_BENCH_ALPHA` (low-rank alpha, default the library's), `RNET_BENCH_LR`
//! (peak learning rate of the loss runs, default 3e-3), `RNET_BENCH_RANKS` (comma list for part 2,
//! default 16).

use std::ops::ControlFlow;
use std::time::Instant;

use rnet_model::{
    Model, ModelConfig, ModelNetwork, UpdateLimits, apply, benchmark_slice, evaluate, training_text,
};
use rnet_training::{DataConfig, DataSource, LowRankConfig, RunOptions, TrainConfig, Trainer};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn trainer(config: &ModelConfig, params: &[f32], train: &TrainConfig, rank: usize) -> Trainer {
    if rank == 0 {
        Trainer::new(params.to_vec(), config.clone(), train.clone(), None).unwrap()
    } else {
        let alpha = env("RNET_BENCH_ALPHA", LowRankConfig::default().alpha);
        let lr = LowRankConfig { rank, alpha, ..LowRankConfig::default() };
        Trainer::new_low_rank(params.to_vec(), config.clone(), train.clone(), lr).unwrap()
    }
}

fn throughput() {
    let config = ModelConfig::genesis(ModelNetwork::Testnet);
    let steps: u64 = env("RNET_BENCH_STEPS", 4);
    let rounds: usize = env("RNET_BENCH_ROUNDS", 2);
    let params = Model::init(config.clone(), 0).unwrap().into_parts().1;
    let train =
        TrainConfig { batch_windows: 8, warmup: 2, total_steps: 1000, ..TrainConfig::default() };
    let source = DataSource::from_static(
        &training_text()[..4_000_000],
        DataConfig { window: config.window, holdout_fraction: 0.0, seed: 1 },
    )
    .unwrap();
    println!(
        "throughput: testnet genesis d={} L={} T={}, {} windows/batch, {} threads, {steps} steps x {rounds} rounds",
        config.d_model,
        config.n_layers,
        config.window,
        train.batch_windows,
        rayon::current_num_threads()
    );
    let ranks = [0usize, 4, 16, 64];
    let mut best = [0.0f64; 4];
    for _ in 0..rounds {
        for (i, &rank) in ranks.iter().enumerate() {
            let mut t = trainer(&config, &params, &train, rank);
            t.step(&source.batch(0, train.batch_windows)).unwrap(); // warm-up: workspace, pages
            let start = Instant::now();
            let s = t
                .run(&source, &RunOptions { steps, ..RunOptions::default() }, |_| {
                    ControlFlow::Continue(())
                })
                .unwrap();
            let bps = s.bytes as f64 / start.elapsed().as_secs_f64();
            best[i] = best[i].max(bps);
        }
    }
    for (i, &rank) in ranks.iter().enumerate() {
        let name = if rank == 0 { "full rank".to_string() } else { format!("rank {rank}") };
        println!("  {name:>10}: {:8.0} bytes/s  ({:.2}x full rank)", best[i], best[i] / best[0]);
    }
}

fn loss_curves() {
    let net = match std::env::var("RNET_BENCH_LOSS_NET").as_deref() {
        Ok("testnet") => ModelNetwork::Testnet,
        _ => ModelNetwork::Regtest,
    };
    let config = ModelConfig::genesis(net);
    let steps: u64 = env("RNET_BENCH_LOSS_STEPS", 300);
    let lr: f32 = env("RNET_BENCH_LR", 3e-3);
    let ranks: Vec<usize> = std::env::var("RNET_BENCH_RANKS")
        .unwrap_or_else(|_| "16".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let parent = Model::init(config.clone(), 0).unwrap();
    let train = TrainConfig {
        lr,
        batch_windows: 16,
        warmup: 20.min(steps),
        total_steps: steps,
        ..TrainConfig::default()
    };
    let source = DataSource::from_static(
        training_text(),
        DataConfig { window: config.window, holdout_fraction: 0.0, seed: 2 },
    )
    .unwrap();
    let eval = &benchmark_slice()[..16_384];
    let start_loss = evaluate(&parent, eval).unwrap().mean_nats;
    println!(
        "loss: {net:?} genesis d={} L={}, {steps} steps of {} windows x {}, lr {lr}, canonical loss on 16 KiB of the benchmark slice (start {start_loss:.4} nats/byte)",
        config.d_model, config.n_layers, train.batch_windows, config.window
    );
    for rank in std::iter::once(0).chain(ranks) {
        let mut t = trainer(&config, parent.params(), &train, rank);
        let started = Instant::now();
        let s = t
            .run(&source, &RunOptions { steps, ..RunOptions::default() }, |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        let secs = started.elapsed().as_secs_f64();
        let (model, bytes) = if rank == 0 {
            (Model::from_parts(config.clone(), t.params().to_vec()).unwrap(), None)
        } else {
            let update = t.to_update().unwrap();
            let limits = UpdateLimits { max_update_bytes: u64::MAX, max_rank: rank as u32 };
            (apply(&parent, &update, &limits, 1).unwrap().model, Some(update.encoded_len()))
        };
        let l = evaluate(&model, eval).unwrap().mean_nats;
        let name = if rank == 0 { "full rank".to_string() } else { format!("rank {rank}") };
        println!(
            "  {name:>10}: loss {l:.4} nats/byte (last train loss {:.4}), {secs:.1} s{}",
            s.last_loss.unwrap_or(f64::NAN),
            bytes.map(|b| format!(", update {b} bytes")).unwrap_or_default()
        );
    }
}

fn main() {
    if std::env::var("RNET_BENCH_SKIP_THROUGHPUT").is_err() {
        throughput();
    }
    loss_curves();
}
