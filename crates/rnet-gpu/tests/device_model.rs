//! The whole V5 model on a device ([`DeviceTrainer`], [`DeviceDecoder`]) against the CPU engines,
//! written once, generically over the [`Backend`]:
//!
//! 1. the loss and the gradient of **every** parameter tensor after one forward/backward match
//!    `rnet_training::Trainer::gradient` within 1e-4 relative (per element, floored by the
//!    tensor's rms), on three small random models (one with the five conv branches);
//! 2. a short training run lowers the canonical loss (`rnet_model::evaluate`) about as much as the
//!    CPU trainer's run of the same steps on the same batches;
//! 3. decoding byte by byte gives the logits of `rnet_model::step` (CPU inference) within 1e-4,
//!    past the window length too.
//!
//! Always run on [`CpuBackend`]; with `--features cuda` also on `CudaBackend` (device 0; skipped
//! without one unless `RNET_REQUIRE_CUDA=1`); with `--features vulkan` also on `WgpuBackend` (adapter
//! `RNET_VULKAN_ADAPTER`, default 0). Without a Vulkan adapter the Vulkan tests print
//! `no Vulkan adapter: skipped` and pass, unless `RNET_REQUIRE_VULKAN=1` is set. Figures are
//! printed with `--nocapture`.

use std::time::Instant;

use rnet_gpu::model::TrainSummary;
use rnet_gpu::{Backend, CpuBackend, DeviceDecoder, DeviceTrainer, EngineError};
use rnet_model::{Layout, Model, ModelConfig, VOCAB};
use rnet_training::rng::Rng;
use rnet_training::{Batch, DataConfig, DataSource, RunOptions, ScanMode, TrainConfig, Trainer};

/// Small shapes that still have every kind of tensor: (d, layers, slots, kernel sizes, window).
fn shapes() -> Vec<ModelConfig> {
    let cfg = |d: usize, l: usize, s: usize, k: &[usize], t: usize| ModelConfig {
        d_model: d,
        n_layers: l,
        n_slots: s,
        d_ff: 2 * d,
        kernel_sizes: k.to_vec(),
        window: t,
    };
    vec![
        cfg(6, 2, 3, &[1, 3, 4], 9),
        cfg(16, 1, 8, &[3, 7, 15, 31, 63], 70),
        cfg(10, 3, 5, &[2, 5], 13),
    ]
}

/// Random parameters with a realistic spread (gains near 1, matrices `N(0, 1/fan_in)`).
fn random_params(layout: &Layout, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut p = vec![0.0f32; layout.total];
    for t in &layout.tensors {
        let is_norm = t.shape.len() == 1;
        let fan_in = *t.shape.last().unwrap_or(&1) as f64;
        for v in &mut p[t.range()] {
            *v = if is_norm { 1.0 + 0.2 * rng.normal() } else { rng.normal() / fan_in.sqrt() }
                as f32;
        }
    }
    p
}

/// `windows` windows of `t` inputs: inputs from a small alphabet (so embedding rows collect several
/// rows' gradients), targets uniform.
fn random_batch(t: usize, windows: usize, seed: u64) -> Batch {
    let mut rng = Rng::new(seed);
    let inputs = (0..windows * t).map(|_| b'a' + rng.below(7) as u8).collect();
    let targets = (0..windows * t).map(|_| rng.below(256) as u8).collect();
    Batch { window: t, inputs, targets }
}

/// Worst `|got − want| / max(|want|, rms(want))` over a tensor; panics past `tol`.
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let rms =
        (want.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / want.len().max(1) as f64).sqrt();
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g as f64, w as f64);
        let err = (g - w).abs() / w.abs().max(rms).max(f64::MIN_POSITIVE);
        assert!(
            g.is_finite() && err <= tol,
            "{what}[{i}]: got {g} want {w} (rel err {err:e}, rms {rms:e})"
        );
        worst = worst.max(err);
    }
    worst
}

fn train_config(steps: u64) -> TrainConfig {
    TrainConfig {
        lr: 3e-3,
        warmup: 10,
        total_steps: steps,
        batch_windows: 4,
        scan: ScanMode::Parallel,
        seed: 7,
        ..TrainConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The generic checks.
// ---------------------------------------------------------------------------------------------

/// (1) Loss and every tensor's gradient against the CPU trainer (parallel scan, as the device runs).
fn gradients_match_cpu_engine<B: Backend>(make: &dyn Fn() -> B) {
    for (si, cfg) in shapes().into_iter().enumerate() {
        let layout = Layout::new(&cfg);
        let params = random_params(&layout, 100 + si as u64);
        let batch = random_batch(cfg.window, 3, 200 + si as u64);
        let train = train_config(10);
        let mut cpu = Trainer::new(params.clone(), cfg.clone(), train.clone(), None).unwrap();
        let (want_loss, want) = cpu.gradient(&batch).unwrap();
        let want = want.to_vec();
        let mut dev = DeviceTrainer::new(make(), &params, cfg.clone(), train, None).unwrap();
        let (loss, got) = dev.gradient(&batch).unwrap();
        let name = dev.backend().name();
        assert!(
            (loss - want_loss).abs() <= 1e-5 * want_loss,
            "{name} shape {si}: loss {loss} vs CPU {want_loss}"
        );
        let mut worst = 0.0f64;
        for t in &layout.tensors {
            let r = t.range();
            let w = assert_close(
                &format!("{name} shape {si} grad {}", t.name),
                &got[r.clone()],
                &want[r],
                1e-4,
            );
            worst = worst.max(w);
        }
        println!(
            "{name}: shape {si} ({} tensors, {} params): loss {loss:.6} (CPU {want_loss:.6}), \
             worst gradient rel err {worst:.2e}",
            layout.tensors.len(),
            layout.total
        );
    }
}

/// (1b) The forward loss equals the canonical evaluator's on the same windows.
fn forward_loss_matches_evaluator<B: Backend>(make: &dyn Fn() -> B) {
    for (si, cfg) in shapes().into_iter().enumerate() {
        let layout = Layout::new(&cfg);
        let params = random_params(&layout, 300 + si as u64);
        let mut rng = Rng::new(400 + si as u64);
        let text: Vec<u8> = (0..3 * cfg.window + 1).map(|_| b' ' + rng.below(90) as u8).collect();
        let batch = Batch::from_sequence(&text, cfg.window);
        let mut dev =
            DeviceTrainer::new(make(), &params, cfg.clone(), train_config(10), None).unwrap();
        let loss = dev.loss(&batch).unwrap();
        let model = Model::from_parts(cfg.clone(), params).unwrap();
        let want = rnet_model::evaluate(&model, &text).unwrap().mean_nats;
        let rel = (loss - want).abs() / want;
        assert!(rel <= 1e-4, "shape {si}: device loss {loss} vs evaluator {want} ({rel:e})");
        println!(
            "{}: shape {si}: loss {loss:.6} vs evaluator {want:.6} ({rel:.1e})",
            dev.backend().name()
        );
    }
}

/// Canonical loss of `params` on the evaluation text.
fn canonical(cfg: &ModelConfig, params: Vec<f32>, text: &[u8]) -> f64 {
    let model = Model::from_parts(cfg.clone(), params).unwrap();
    rnet_model::evaluate(&model, text).unwrap().mean_nats
}

/// (2) `steps` updates on the device against the CPU trainer: both start from the same initialised
/// model and draw the same batches; the canonical loss must fall by about as much.
fn training_lowers_loss_like_cpu<B: Backend>(make: &dyn Fn() -> B, steps: u64) {
    let cfg = ModelConfig {
        d_model: 16,
        n_layers: 2,
        n_slots: 8,
        d_ff: 32,
        kernel_sizes: vec![3, 7, 15, 31, 63],
        window: 32,
    };
    let model = Model::init(cfg.clone(), 11).unwrap();
    let params = model.params().to_vec();
    let source = DataSource::from_static(
        rnet_model::training_text(),
        DataConfig { window: cfg.window, holdout_fraction: 0.0, seed: 5 },
    )
    .unwrap();
    let eval_text = &rnet_model::benchmark_slice()[..4096];
    let train = train_config(steps);

    let t0 = Instant::now();
    let mut cpu = Trainer::new(params.clone(), cfg.clone(), train.clone(), None).unwrap();
    let options = RunOptions { steps, ..RunOptions::default() };
    cpu.run(&source, &options, |_| std::ops::ControlFlow::Continue(())).unwrap();
    let cpu_secs = t0.elapsed().as_secs_f64();
    let (cpu_params, _) = cpu.into_parts();

    let mut dev = DeviceTrainer::new(make(), &params, cfg.clone(), train, None).unwrap();
    let name = dev.backend().name();
    let TrainSummary { steps: done, elapsed, last, .. } = dev.train_steps(&source, steps).unwrap();
    assert_eq!(done, steps);
    assert_eq!(dev.global_step(), steps);
    let (dev_params, state) = dev.into_parts().unwrap();
    assert_eq!(state.step, steps);

    let before = canonical(&cfg, params, eval_text);
    let after_cpu = canonical(&cfg, cpu_params, eval_text);
    let after_dev = canonical(&cfg, dev_params, eval_text);
    let (drop_cpu, drop_dev) = (before - after_cpu, before - after_dev);
    println!(
        "{name}: {steps} steps in {:.2} s (CPU trainer {cpu_secs:.2} s), last train loss {:.4}; \
         canonical loss {before:.4} -> device {after_dev:.4} (drop {drop_dev:.4}), \
         CPU {after_cpu:.4} (drop {drop_cpu:.4})",
        elapsed.as_secs_f64(),
        last.map_or(f64::NAN, |s| s.loss),
    );
    assert!(drop_cpu > 0.05, "the CPU run must learn something: drop {drop_cpu}");
    assert!(
        (drop_dev - drop_cpu).abs() <= 0.05 * drop_cpu,
        "device drop {drop_dev} vs CPU drop {drop_cpu}"
    );
}

/// (3) Decoding byte by byte on the device against `rnet_model::step`, past the window.
fn decode_matches_cpu_inference<B: Backend>(make: &dyn Fn() -> B) {
    for (si, cfg) in shapes().into_iter().enumerate() {
        let layout = Layout::new(&cfg);
        let model =
            Model::from_parts(cfg.clone(), random_params(&layout, 500 + si as u64)).unwrap();
        let mut rng = Rng::new(600 + si as u64);
        let bytes: Vec<u8> = (0..cfg.window + 20).map(|_| rng.below(256) as u8).collect();
        let mut cpu = rnet_model::RecurrentState::new(&cfg);
        let mut dev = DeviceDecoder::new(make(), &model).unwrap();
        let len = dev.state_len();
        let mut worst = 0.0f64;
        for (t, &b) in bytes.iter().enumerate() {
            let want = rnet_model::step(&model, &mut cpu, b).unwrap();
            let got = dev.step(b).unwrap();
            assert_eq!(got.len(), VOCAB);
            worst =
                worst.max(assert_close(&format!("shape {si} pos {t} logits"), &got, &want, 1e-4));
        }
        assert_eq!(dev.position(), bytes.len() as u64);
        assert_eq!(dev.state_len(), len, "state size is independent of the context length");
        // Reset returns to the start state.
        dev.reset().unwrap();
        let mut fresh = rnet_model::RecurrentState::new(&cfg);
        let want = rnet_model::step(&model, &mut fresh, bytes[0]).unwrap();
        assert_close("after reset", &dev.step(bytes[0]).unwrap(), &want, 1e-4);
        let name = dev.backend_name();
        println!(
            "{name}: decode shape {si}: {} positions, worst logit rel err {worst:.2e}",
            bytes.len()
        );
    }
}

/// Typed errors, never panics, on inputs that do not fit.
fn rejects_bad_inputs<B: Backend>(make: &dyn Fn() -> B) {
    let cfg = shapes().remove(0);
    let layout = Layout::new(&cfg);
    let params = random_params(&layout, 1);
    let short = &params[..params.len() - 1];
    let r = DeviceTrainer::new(make(), short, cfg.clone(), train_config(10), None);
    assert!(matches!(r, Err(EngineError::ParamCount { .. })), "{r:?}");
    let mut bad = cfg.clone();
    bad.d_ff = 3;
    let r = DeviceTrainer::new(make(), &params, bad, train_config(10), None);
    assert!(matches!(r, Err(EngineError::Config(_))), "{r:?}");
    let mut dev = DeviceTrainer::new(make(), &params, cfg.clone(), train_config(10), None).unwrap();
    let r = dev.step(&random_batch(cfg.window + 1, 2, 3));
    assert!(matches!(r, Err(EngineError::Window { .. })), "{r:?}");
    let r = dev.step(&Batch { window: cfg.window, inputs: vec![], targets: vec![] });
    assert!(matches!(r, Err(EngineError::EmptyBatch)), "{r:?}");
    let mut nan = params.clone();
    nan[layout.head.start] = f32::NAN;
    let mut dev = DeviceTrainer::new(make(), &nan, cfg.clone(), train_config(10), None).unwrap();
    let r = dev.step(&random_batch(cfg.window, 2, 4));
    assert!(matches!(r, Err(EngineError::NonFinite { step: 1, .. })), "{r:?}");
    assert_eq!(dev.global_step(), 0, "a refused step changes nothing");
}

// ---------------------------------------------------------------------------------------------
// CPU backend.
// ---------------------------------------------------------------------------------------------

#[test]
fn cpu_gradients_match_cpu_engine() {
    gradients_match_cpu_engine(&CpuBackend::new);
}

#[test]
fn cpu_forward_loss_matches_evaluator() {
    forward_loss_matches_evaluator(&CpuBackend::new);
}

#[test]
fn cpu_training_lowers_loss_like_cpu_engine() {
    training_lowers_loss_like_cpu(&CpuBackend::new, 200);
}

#[test]
fn cpu_decode_matches_cpu_inference() {
    decode_matches_cpu_inference(&CpuBackend::new);
}

#[test]
fn cpu_rejects_bad_inputs() {
    rejects_bad_inputs(&CpuBackend::new);
}

// ---------------------------------------------------------------------------------------------
// Vulkan backend (any adapter, lavapipe included).
// ---------------------------------------------------------------------------------------------

/// Opens the Vulkan adapter under test, or `None` (test skipped) when there is none and
/// `RNET_REQUIRE_VULKAN` is not set.
#[cfg(feature = "vulkan")]
fn vulkan() -> Option<impl Fn() -> rnet_gpu::WgpuBackend> {
    use rnet_gpu::{BackendError, WgpuBackend};
    let ordinal =
        std::env::var("RNET_VULKAN_ADAPTER").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    match WgpuBackend::new(ordinal) {
        Ok(_) => Some(move || WgpuBackend::new(ordinal).expect("the adapter opened before")),
        Err(e @ BackendError::NoAdapter { .. }) => {
            assert!(
                std::env::var_os("RNET_REQUIRE_VULKAN").is_none(),
                "RNET_REQUIRE_VULKAN is set but: {e}"
            );
            println!("no Vulkan adapter: skipped ({e})");
            None
        }
        Err(e) => panic!("Vulkan backend failed to start: {e}"),
    }
}

#[cfg(feature = "vulkan")]
#[test]
fn vulkan_gradients_match_cpu_engine() {
    if let Some(make) = vulkan() {
        gradients_match_cpu_engine(&make);
    }
}

#[cfg(feature = "vulkan")]
#[test]
fn vulkan_forward_loss_matches_evaluator() {
    if let Some(make) = vulkan() {
        forward_loss_matches_evaluator(&make);
    }
}

#[cfg(feature = "vulkan")]
#[test]
fn vulkan_training_lowers_loss_like_cpu_engine() {
    if let Some(make) = vulkan() {
        training_lowers_loss_like_cpu(&make, 200);
    }
}

#[cfg(feature = "vulkan")]
#[test]
fn vulkan_decode_matches_cpu_inference() {
    if let Some(make) = vulkan() {
        decode_matches_cpu_inference(&make);
    }
}

#[cfg(feature = "vulkan")]
#[test]
fn vulkan_rejects_bad_inputs() {
    if let Some(make) = vulkan() {
        rejects_bad_inputs(&make);
    }
}

// ---------------------------------------------------------------------------------------------
// CUDA backend (needs an NVIDIA driver, a device, NVRTC and cuBLAS).
// ---------------------------------------------------------------------------------------------

/// Opens CUDA device 0, or `None` (test skipped) without a driver, device or CUDA library, unless
/// `RNET_REQUIRE_CUDA` is set.
#[cfg(feature = "cuda")]
fn cuda() -> Option<impl Fn() -> rnet_gpu::CudaBackend> {
    use rnet_gpu::{BackendError, CudaBackend};
    match CudaBackend::new(0) {
        Ok(_) => Some(|| CudaBackend::new(0).expect("the device opened before")),
        Err(
            e @ (BackendError::NoDriver
            | BackendError::NoDevice { .. }
            | BackendError::MissingLibrary(_)),
        ) => {
            assert!(
                std::env::var_os("RNET_REQUIRE_CUDA").is_none(),
                "RNET_REQUIRE_CUDA is set but: {e}"
            );
            println!("no CUDA device: skipped ({e})");
            None
        }
        Err(e) => panic!("CUDA backend failed to start: {e}"),
    }
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_gradients_match_cpu_engine() {
    if let Some(make) = cuda() {
        gradients_match_cpu_engine(&make);
    }
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_forward_loss_matches_evaluator() {
    if let Some(make) = cuda() {
        forward_loss_matches_evaluator(&make);
    }
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_training_lowers_loss_like_cpu_engine() {
    if let Some(make) = cuda() {
        training_lowers_loss_like_cpu(&make, 200);
    }
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_decode_matches_cpu_inference() {
    if let Some(make) = cuda() {
        decode_matches_cpu_inference(&make);
    }
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_rejects_bad_inputs() {
    if let Some(make) = cuda() {
        rejects_bad_inputs(&make);
    }
}
