//! Throughput of the device engine (`DeviceTrainer`, `DeviceDecoder`) on each selected device, for
//! the figures in `docs/training.md` ("GPU backends", device selection):
//!
//! ```text
//! cargo bench -p rnet-gpu --features vulkan --bench device
//! ```
//!
//! Per device: the measured matrix-product peak (best of square `A·Bᵀ` products through
//! `Backend::matmul`), the measured memory bandwidth (`axpby` over 64 MiB: two reads and a write
//! per element), then per shape the training throughput in bytes/s with its model FLOPs
//! utilisation (model FLOPs as `rnet_training::flop_count`, 6 × forward multiply-adds, against the
//! measured peak) and the decoding throughput in bytes/s against the bandwidth bound (every weight
//! but the embedding table read once per byte, in f32).
//!
//! Shapes: the mainnet genesis shape (d = 384, L = 6) and d = 1024, L = 12 (mainnet S, F = 2d and
//! kernels). Environment: `RNET_BENCH_DEVICES` (default `cpu` plus `vulkan:0` when built with
//! `vulkan`; any `Device` spelling), `RNET_BENCH_SHAPES` (`mainnet,d1024`), `RNET_BENCH_WINDOWS`
//! (windows per step, default 1), `RNET_BENCH_T` (training window length, default the shape's 512),
//! `RNET_BENCH_STEPS` (timed steps after one warm-up step, default 2), `RNET_BENCH_DECODE`
//! (decoded bytes after 2 warm-up bytes, default 32). On a machine whose only Vulkan adapter is
//! lavapipe the "device" is a software rasteriser on the same CPU cores.

use std::time::Instant;

use rnet_gpu::{Backend, BackendError, Device, DynTrainer, MatmulSpec, OpenDevice};
use rnet_model::{Layout, Model, ModelConfig, ModelNetwork, training_text};
use rnet_training::{DataConfig, DataSource, TrainConfig, flop_count};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Best wall time in seconds of `reps` runs of `f` after one warm-up, synchronised.
fn best<B: Backend>(be: &B, reps: usize, mut f: impl FnMut() -> Result<(), BackendError>) -> f64 {
    let mut run = || {
        let t = Instant::now();
        f().and_then(|()| be.synchronize()).unwrap_or_else(|e| panic!("{}: {e}", be.name()));
        t.elapsed().as_secs_f64()
    };
    run();
    (0..reps).map(|_| run()).fold(f64::INFINITY, f64::min)
}

/// Measured peak FLOP/s: the best square `A·Bᵀ` product of 256³, 512³ and 1024³.
fn matmul_peak<B: Backend>(be: &B) -> f64 {
    let mut peak: f64 = 0.0;
    for n in [256, 512, 1024] {
        let v: Vec<f32> = (0..n * n).map(|i| ((i % 97) as f32 - 48.0) * 0.01).collect();
        let (a, b) = (be.upload(&v).expect("upload"), be.upload(&v).expect("upload"));
        let mut c = be.zeros(n * n).expect("alloc");
        let s = MatmulSpec::new(n, n, n, false, true);
        let secs = best(be, 2, || be.matmul(&s, &a, &b, &mut c));
        peak = peak.max(2.0 * (n as f64).powi(3) / secs);
    }
    peak
}

/// Measured bandwidth in bytes/s: `y = x + y` over 16 Mi floats (12 bytes moved per element).
fn bandwidth<B: Backend>(be: &B) -> f64 {
    let n = 16 << 20;
    let x = be.upload(&vec![1.0f32; n]).expect("upload");
    let mut y = be.zeros(n).expect("alloc");
    let secs = best(be, 3, || be.axpby(&mut y, 0, 1.0, &x, 0, 1.0, n));
    12.0 * n as f64 / secs
}

/// The benchmark shapes.
fn shapes() -> Vec<(&'static str, ModelConfig)> {
    let mainnet = ModelConfig::genesis(ModelNetwork::Mainnet);
    let big = ModelConfig { d_model: 1024, n_layers: 12, d_ff: 2048, ..mainnet.clone() };
    let wanted = std::env::var("RNET_BENCH_SHAPES").unwrap_or_else(|_| "mainnet,d1024".into());
    let mut out = Vec::new();
    for name in wanted.split(',').map(str::trim) {
        match name {
            "mainnet" => out.push(("mainnet genesis d=384 L=6", mainnet.clone())),
            "d1024" => out.push(("d=1024 L=12", big.clone())),
            other => panic!("unknown shape {other:?} (mainnet, d1024)"),
        }
    }
    out
}

/// One shape on one device: training bytes/s and MFU, decoding bytes/s against the bound.
fn bench_shape(device: Device, label: &str, config: &ModelConfig, peak: f64, bw: f64) {
    let windows = env_usize("RNET_BENCH_WINDOWS", 1).max(1);
    let t_len = env_usize("RNET_BENCH_T", config.window).clamp(1, config.window);
    let steps = env_usize("RNET_BENCH_STEPS", 2).max(1);
    let decode = env_usize("RNET_BENCH_DECODE", 32).max(1);
    let model = Model::init(config.clone(), 0).expect("valid shape");
    let train =
        TrainConfig { batch_windows: windows, window: t_len, lr: 1e-4, ..TrainConfig::default() };
    let data = DataConfig { window: t_len, holdout_fraction: 0.0, seed: 1 };
    let source = DataSource::from_static(training_text(), data).expect("bundled text");
    let open = || device.open().unwrap_or_else(|e| panic!("{e}"));
    let mut trainer: DynTrainer = open()
        .trainer(model.params(), config.clone(), train, None)
        .unwrap_or_else(|e| panic!("{device}: {e}"));
    trainer.train_steps(&source, 1).unwrap_or_else(|e| panic!("{device}: {e}"));
    let s = trainer.train_steps(&source, steps as u64).unwrap_or_else(|e| panic!("{device}: {e}"));
    drop(trainer);
    let secs = s.elapsed.as_secs_f64();
    let bytes_per_sec = s.bytes as f64 / secs;
    let train_flops = flop_count(config).train_flops_per_byte();
    let achieved = bytes_per_sec * train_flops;
    println!(
        "  {label}: train {windows}×{t_len} bytes/step, {steps} steps in {secs:.2} s: \
         {bytes_per_sec:.0} bytes/s, {:.1} MFLOP/byte, {:.2} GFLOP/s = {:.1} % MFU",
        train_flops / 1e6,
        achieved / 1e9,
        100.0 * achieved / peak
    );

    let mut decoder = open().decoder(&model).unwrap_or_else(|e| panic!("{device}: {e}"));
    for &b in b"Ge" {
        decoder.step(b).unwrap_or_else(|e| panic!("{device}: {e}"));
    }
    let text = training_text();
    let t = Instant::now();
    for &b in text.iter().cycle().take(decode) {
        decoder.step(b).unwrap_or_else(|e| panic!("{device}: {e}"));
    }
    let secs = t.elapsed().as_secs_f64();
    let layout = Layout::new(config);
    let weight_bytes = 4.0 * (layout.total - 256 * config.d_model + config.d_model) as f64;
    let bound = bw / weight_bytes;
    let rate = decode as f64 / secs;
    println!(
        "  {label}: decode {decode} bytes in {secs:.2} s: {rate:.1} bytes/s; bandwidth bound \
         {bound:.1} bytes/s ({:.1} MB of f32 weights per byte) = {:.1} % of bound",
        weight_bytes / 1e6,
        100.0 * rate / bound
    );
}

fn main() {
    let default = if cfg!(feature = "vulkan") { "cpu,vulkan:0" } else { "cpu" };
    let devices = std::env::var("RNET_BENCH_DEVICES").unwrap_or_else(|_| default.into());
    for spelling in devices.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let device: Device = spelling.parse().unwrap_or_else(|e| panic!("{e}"));
        let opened = match device.open() {
            Ok(d) => d,
            Err(e) => {
                println!("{spelling}: skipped ({e})");
                continue;
            }
        };
        let device = opened.device();
        println!("device {device}: {}", opened.name());
        let (peak, bw) = match opened {
            OpenDevice::Cpu(be) => (matmul_peak(&be), bandwidth(&be)),
            #[cfg(feature = "cuda")]
            OpenDevice::Cuda { backend, .. } => (matmul_peak(&*backend), bandwidth(&*backend)),
            #[cfg(feature = "vulkan")]
            OpenDevice::Wgpu { backend, .. } => (matmul_peak(&*backend), bandwidth(&*backend)),
        };
        println!(
            "  measured matmul peak {:.2} GFLOP/s, bandwidth {:.2} GB/s",
            peak / 1e9,
            bw / 1e9
        );
        for (label, config) in shapes() {
            bench_shape(device, label, &config, peak, bw);
        }
    }
}
