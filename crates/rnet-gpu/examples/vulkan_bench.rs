//! Throughput of the Vulkan backend's matrix product and scan against the CPU backend, for the
//! figures in `docs/training.md` ("GPU backends"):
//!
//! ```text
//! cargo run -p rnet-gpu --features vulkan --release --example vulkan_bench
//! ```
//!
//! Each figure is the best of several runs after a warm-up, timed from the first dispatch to the
//! end of `synchronize` (uploads and downloads excluded). On a machine whose only Vulkan adapter is
//! Mesa's lavapipe the "device" is a software rasteriser on the same CPU, so its figures measure
//! lavapipe, not a GPU. `RNET_VULKAN_ADAPTER=N` picks another adapter.

use std::time::Instant;

use rnet_gpu::{Backend, BackendError, CpuBackend, MatmulSpec, WgpuBackend};
use rnet_training::rng::Rng;

/// Best wall time in seconds of `reps` runs of `f` (after one warm-up run).
fn best<B: Backend>(be: &B, reps: usize, mut f: impl FnMut() -> Result<(), BackendError>) -> f64 {
    let mut run = || -> f64 {
        let t = Instant::now();
        f().and_then(|()| be.synchronize()).unwrap_or_else(|e| panic!("{}: {e}", be.name()));
        t.elapsed().as_secs_f64()
    };
    run();
    (0..reps).map(|_| run()).fold(f64::INFINITY, f64::min)
}

/// GFLOP/s of an `n × n × n` product `A·Bᵀ` (the shape of a forward linear layer).
fn matmul_gflops<B: Backend>(be: &B, n: usize, rng: &mut Rng) -> f64 {
    let v: Vec<f32> = (0..n * n).map(|_| rng.normal() as f32).collect();
    let (a, b) = (be.upload(&v).unwrap(), be.upload(&v).unwrap());
    let mut c = be.zeros(n * n).unwrap();
    let s = MatmulSpec::new(n, n, n, false, true);
    let secs = best(be, 3, || be.matmul(&s, &a, &b, &mut c));
    2.0 * (n as f64).powi(3) / secs / 1e9
}

/// Million (position, channel) steps per second of the chunked scan forward.
fn scan_msteps<B: Backend>(be: &B, rng: &mut Rng) -> f64 {
    let (windows, t_len, d, chunk) = (8, 256, 256, 64);
    let n = windows * t_len * d;
    let zh: Vec<f32> = (0..2 * n).map(|_| rng.normal() as f32).collect();
    let zh = be.upload(&zh).unwrap();
    let (mut h, mut decay) = (be.zeros(n).unwrap(), be.zeros(n).unwrap());
    let secs = best(be, 3, || be.scan_forward(&mut h, &mut decay, &zh, windows, t_len, d, chunk));
    n as f64 / secs / 1e6
}

fn main() -> Result<(), BackendError> {
    let ordinal = std::env::var("RNET_VULKAN_ADAPTER").ok().and_then(|v| v.parse().ok());
    let vk = WgpuBackend::new(ordinal.unwrap_or(0))?;
    let cpu = CpuBackend::new();
    let mut rng = Rng::new(1);
    println!("device: {}", vk.name());
    println!("{:<26} {:>12} {:>12}", "", "vulkan", "cpu");
    for n in [128, 256, 512, 1024] {
        let (g, c) = (matmul_gflops(&vk, n, &mut rng), matmul_gflops(&cpu, n, &mut rng));
        println!("{:<26} {g:>12.2} {c:>12.2}", format!("matmul {n}³ A·Bᵀ GFLOP/s"));
    }
    let (g, c) = (scan_msteps(&vk, &mut rng), scan_msteps(&cpu, &mut rng));
    println!("{:<26} {g:>12.1} {c:>12.1}", "scan fwd 8×256×256 Msteps/s");
    Ok(())
}
