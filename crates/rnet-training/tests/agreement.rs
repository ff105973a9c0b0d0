//! The training engine's forward loss agrees with the canonical evaluator of `rnet_model`.

use rnet_model::{Layout, Model, ModelConfig, ModelNetwork, evaluate, excerpt};
use rnet_training::model::{ScanMode, Workspace, sequence_loss};

fn check(config: ModelConfig, seed: u64, data: &[u8]) {
    let model = Model::init(config.clone(), seed).unwrap();
    let canonical = evaluate(&model, data).unwrap();
    let layout = Layout::new(&config);
    let mut ws = Workspace::<f32>::new();
    for scan in [ScanMode::Sequential, ScanMode::Parallel] {
        let fast =
            sequence_loss(&config, &layout, model.params(), data, config.window, 8, &mut ws, scan)
                .unwrap();
        let rel = (fast - canonical.mean_nats).abs() / canonical.mean_nats;
        eprintln!("{scan:?}: engine {fast:.7} evaluator {:.7} rel {rel:.1e}", canonical.mean_nats);
        assert!(
            rel < 1e-4,
            "{scan:?}: engine {fast} vs evaluator {} (rel {rel:e})",
            canonical.mean_nats
        );
    }
}

#[test]
fn engine_forward_agrees_with_canonical_evaluator_regtest() {
    let cfg = ModelConfig::genesis(ModelNetwork::Regtest);
    // 2048 bytes: 31 full windows of 64 and a last one of 63.
    check(cfg, 0, excerpt(ModelNetwork::Regtest));
}

#[test]
fn engine_forward_agrees_with_canonical_evaluator_after_training_like_perturbation() {
    // A less symmetric model: random perturbation of every parameter, bigger windows and kernels.
    let mut cfg = ModelConfig::genesis(ModelNetwork::Regtest);
    cfg.kernel_sizes = vec![3, 7, 15, 31, 63];
    cfg.window = 100;
    let mut model = Model::init(cfg.clone(), 5).unwrap();
    let mut state = 0x1234_5678_u64;
    for v in model.params_mut() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *v += ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1.0;
    }
    let data = &excerpt(ModelNetwork::Testnet)[..1500];
    let canonical = evaluate(&model, data).unwrap();
    let layout = Layout::new(&cfg);
    let mut ws = Workspace::<f32>::new();
    let fast = sequence_loss(
        &cfg,
        &layout,
        model.params(),
        data,
        cfg.window,
        4,
        &mut ws,
        ScanMode::Sequential,
    )
    .unwrap();
    let rel = (fast - canonical.mean_nats).abs() / canonical.mean_nats;
    eprintln!("perturbed: engine {fast:.7} evaluator {:.7} rel {rel:.1e}", canonical.mean_nats);
    assert!(rel < 1e-4, "engine {fast} vs evaluator {} (rel {rel:e})", canonical.mean_nats);
}
