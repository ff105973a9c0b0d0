//! Trainer behaviour: resuming from a saved optimizer state, growth, error paths, run control.

use std::ops::ControlFlow;

use rnet_model::{Layout, Model, ModelConfig, ModelNetwork, grow, training_text};
use rnet_training::model::{ScanMode, Workspace, sequence_loss};
use rnet_training::{
    Batch, DataConfig, DataSource, OptimizerState, RunOptions, TrainConfig, TrainError, Trainer,
};

fn regtest() -> ModelConfig {
    ModelConfig::genesis(ModelNetwork::Regtest)
}

fn source(window: usize, holdout: f64) -> DataSource {
    DataSource::from_static(
        &training_text()[..200_000],
        DataConfig { window, holdout_fraction: holdout, seed: 3 },
    )
    .unwrap()
}

fn train_config() -> TrainConfig {
    TrainConfig { lr: 5e-3, warmup: 2, total_steps: 20, batch_windows: 4, ..TrainConfig::default() }
}

fn params(config: &ModelConfig, seed: u64) -> Vec<f32> {
    Model::init(config.clone(), seed).unwrap().into_parts().1
}

fn go(trainer: &mut Trainer, src: &DataSource, steps: u64) {
    trainer
        .run(src, &RunOptions { steps, ..RunOptions::default() }, |_| ControlFlow::Continue(()))
        .unwrap();
}

#[test]
fn resuming_from_a_saved_state_equals_an_uninterrupted_run() {
    let c = regtest();
    let src = source(c.window, 0.0);
    let mut straight = Trainer::new(params(&c, 1), c.clone(), train_config(), None).unwrap();
    go(&mut straight, &src, 6);

    let mut first = Trainer::new(params(&c, 1), c.clone(), train_config(), None).unwrap();
    go(&mut first, &src, 3);
    let (p, state) = first.into_parts();
    let dir = std::env::temp_dir().join(format!("rnet-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = OptimizerState::path_for_checkpoint(&dir.join("model.ckpt"));
    state.save(&path).unwrap();
    let loaded = OptimizerState::load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(loaded.step, 3);
    let mut second = Trainer::new(p, c.clone(), train_config(), Some(loaded)).unwrap();
    go(&mut second, &src, 3);
    assert_eq!(second.global_step(), 6);
    assert_eq!(second.params(), straight.params(), "resumed run diverged");
    assert_eq!(second.optimizer_state(), straight.optimizer_state());
}

#[test]
fn training_continues_after_growth_with_remapped_moments() {
    let c = regtest();
    let src = source(c.window, 0.0);
    let mut t = Trainer::new(params(&c, 2), c.clone(), train_config(), None).unwrap();
    go(&mut t, &src, 5);
    let (p, state) = t.into_parts();
    let model = Model::from_parts(c.clone(), p).unwrap();
    let grown = grow(&model, c.d_model + 2, c.n_layers + 1, 9).unwrap();
    let gc = grown.config().clone();

    // The engine sees the function preserved by growth.
    let data = &training_text()[300_000..302_049];
    let mut ws = Workspace::<f32>::new();
    let before = sequence_loss(
        &c,
        &Layout::new(&c),
        model.params(),
        data,
        c.window,
        8,
        &mut ws,
        ScanMode::Sequential,
    )
    .unwrap();
    let after = sequence_loss(
        &gc,
        &Layout::new(&gc),
        grown.params(),
        data,
        gc.window,
        8,
        &mut ws,
        ScanMode::Sequential,
    )
    .unwrap();
    assert!((before - after).abs() / before < 1e-5, "{before} vs {after}");

    // The smaller state is carried over and training goes on at the new shape.
    let mut t =
        Trainer::new(grown.into_parts().1, gc.clone(), train_config(), Some(state)).unwrap();
    assert_eq!(t.global_step(), 5);
    assert_eq!(t.optimizer_state().config, gc);
    let b = src.batch(5, 4);
    let l0 = t.loss(&b).unwrap();
    let s = t.step(&b).unwrap();
    assert_eq!(s.step, 6);
    assert!((s.loss - l0).abs() < 1e-5);
    assert!(t.loss(&b).unwrap() < l0, "a step at the grown shape should lower the batch loss");

    // A state of a larger shape cannot be used for a smaller model.
    let big = t.into_parts().1;
    let r = Trainer::new(params(&c, 2), c.clone(), train_config(), Some(big));
    assert!(matches!(r, Err(TrainError::State(_))));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let c = regtest();
    let p = params(&c, 3);
    assert!(matches!(
        Trainer::new(p[1..].to_vec(), c.clone(), train_config(), None),
        Err(TrainError::ParamCount { .. })
    ));
    let mut bad = c.clone();
    bad.d_ff = 3;
    assert!(matches!(
        Trainer::new(p.clone(), bad, train_config(), None),
        Err(TrainError::Config(_))
    ));
    let mut t = Trainer::new(p.clone(), c.clone(), train_config(), None).unwrap();
    let wrong = Batch::from_sequence(&training_text()[..1000], 32);
    assert!(matches!(t.step(&wrong), Err(TrainError::Window { expected: 64, found: 32 })));
    let empty = Batch::from_sequence(&[], 64);
    assert!(matches!(t.step(&empty), Err(TrainError::EmptyBatch)));
    assert!(matches!(
        t.run(&source(32, 0.0), &RunOptions::default(), |_| ControlFlow::Continue(())),
        Err(TrainError::Window { .. })
    ));

    // A NaN parameter: the step is refused and nothing changes.
    let mut nan = p.clone();
    let k = p.len() - 1; // in the head: every logit row sees it
    nan[k] = f32::NAN;
    let mut t = Trainer::new(nan, c.clone(), train_config(), None).unwrap();
    let b = source(64, 0.0).batch(0, 2);
    assert!(matches!(t.step(&b), Err(TrainError::NonFinite { step: 1, .. })));
    assert_eq!(t.global_step(), 0);
    assert!(t.params()[k].is_nan() && t.params()[..k] == p[..k]);
}

#[test]
fn run_reports_progress_stops_on_request_and_keeps_the_best_holdout() {
    let c = regtest();
    let src = source(c.window, 0.05);
    let mut t = Trainer::new(params(&c, 4), c.clone(), train_config(), None).unwrap();
    let mut seen = Vec::new();
    let s = t
        .run(&src, &RunOptions { steps: 10, ..RunOptions::default() }, |p| {
            seen.push((p.step, p.stats.step, p.steps));
            assert!(p.bytes_per_sec > 0.0 && p.stats.lr > 0.0 && p.stats.loss.is_finite());
            if p.step == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .unwrap();
    assert_eq!(seen, vec![(1, 1, 10), (2, 2, 10), (3, 3, 10)]);
    assert!(s.stopped_early && s.steps == 3 && s.bytes == 3 * 4 * 64);

    let opts = RunOptions { steps: 12, eval_every: 4, eval_windows: 16, patience: 0 };
    let mut evals = Vec::new();
    let s = t
        .run(&src, &opts, |p| {
            if let Some(l) = p.holdout_loss {
                evals.push(l);
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(evals.len(), 3);
    let best = evals.iter().copied().fold(f64::MAX, f64::min);
    assert_eq!(s.best_holdout, Some(best));
    let holdout = src.holdout_batches(4, 16);
    assert_eq!(t.loss_over(&holdout).unwrap(), best, "the best parameters are kept");
}
