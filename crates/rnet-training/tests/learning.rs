//! Learning: from a fresh regtest init, a few hundred steps on the bundled training text take the
//! canonical validation loss from ≈ ln 256 to under 2.5 nats per byte.

use std::time::Instant;

use rnet_model::{Layout, Model, ModelConfig, ModelNetwork, evaluate, excerpt, training_text};
use rnet_training::model::{ScanMode, Workspace, sequence_loss};
use rnet_training::{DataConfig, DataSource, RunOptions, TrainConfig, Trainer};

#[test]
fn a_few_hundred_steps_lower_the_canonical_validation_loss_below_2_5() {
    let config = ModelConfig::genesis(ModelNetwork::Regtest);
    let val = excerpt(ModelNetwork::Regtest);
    let model = Model::init(config.clone(), 0).unwrap();
    let before = evaluate(&model, val).unwrap().mean_nats;
    assert!((before - 256f64.ln()).abs() < 0.1, "initial loss {before}");

    let steps = 200;
    let train = TrainConfig {
        lr: 1e-2,
        warmup: 20,
        total_steps: steps,
        batch_windows: 16,
        weight_decay: 0.01,
        seed: 1,
        ..TrainConfig::default()
    };
    let source = DataSource::from_static(
        training_text(),
        DataConfig { window: config.window, holdout_fraction: 0.0, seed: 1 },
    )
    .unwrap();
    let (_, params) = model.into_parts();
    let mut trainer = Trainer::new(params, config.clone(), train, None).unwrap();
    let start = Instant::now();
    let summary = trainer
        .run(&source, &RunOptions { steps, ..RunOptions::default() }, |_| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(summary.steps, steps);
    assert_eq!(trainer.global_step(), steps);
    let (params, _) = trainer.into_parts();
    let model = Model::from_parts(config.clone(), params).unwrap();
    let after = evaluate(&model, val).unwrap().mean_nats;
    eprintln!(
        "canonical val loss {before:.4} -> {after:.4} nats/byte in {steps} steps, {secs:.2} s"
    );
    assert!(after < 2.5, "validation loss {after} not below 2.5");

    // The engine agrees with the evaluator on the trained model too.
    let layout = Layout::new(&config);
    let mut ws = Workspace::<f32>::new();
    let fast = sequence_loss(
        &config,
        &layout,
        model.params(),
        val,
        config.window,
        8,
        &mut ws,
        ScanMode::Parallel,
    )
    .unwrap();
    let rel = (fast - after).abs() / after;
    eprintln!("trained model: engine {fast:.7} evaluator {after:.7} rel {rel:.1e}");
    assert!(rel < 1e-4, "engine {fast} vs evaluator {after}");
}
