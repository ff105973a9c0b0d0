//! Low-rank (LoRA/ReLoRA-style) training: the loss falls, the exported `ModelUpdate` survives the
//! canonical merge (`rnet_model::update_apply::apply` + `rnet_model::evaluate`), respects the rank
//! limit and has the §5.2 size, and merge-and-restart accumulates updates beyond rank `r`.

use std::ops::ControlFlow;

use rnet_model::update_apply::matrix_dims;
use rnet_model::{
    Change, Layout, Model, ModelConfig, ModelNetwork, UpdateError, UpdateLimits, apply, evaluate,
    training_text,
};
use rnet_training::lowrank::{LowRankConfig, OtherTensors, default_targets};
use rnet_training::{DataConfig, DataSource, RunOptions, TrainConfig, TrainError, Trainer};

fn regtest() -> ModelConfig {
    ModelConfig::genesis(ModelNetwork::Regtest)
}

/// The text trained on (and evaluated on in test (b)).
fn text() -> &'static [u8] {
    &training_text()[..16_384]
}

fn source(window: usize) -> DataSource {
    DataSource::from_static(text(), DataConfig { window, holdout_fraction: 0.0, seed: 5 }).unwrap()
}

fn train_config() -> TrainConfig {
    TrainConfig {
        lr: 1e-2,
        warmup: 2,
        total_steps: 40,
        batch_windows: 8,
        weight_decay: 0.0,
        ..TrainConfig::default()
    }
}

fn parent(config: &ModelConfig) -> Model {
    Model::init(config.clone(), 7).unwrap()
}

fn low_rank(rank: usize, other: OtherTensors) -> LowRankConfig {
    LowRankConfig { rank, other, ..LowRankConfig::default() }
}

fn limits(max_rank: u32) -> UpdateLimits {
    UpdateLimits { max_update_bytes: u64::MAX, max_rank }
}

fn go(t: &mut Trainer, src: &DataSource, steps: u64) {
    t.run(src, &RunOptions { steps, ..RunOptions::default() }, |_| ControlFlow::Continue(()))
        .unwrap();
}

#[test]
fn low_rank_steps_lower_the_loss_and_leave_the_base_frozen() {
    let c = regtest();
    let p = parent(&c);
    let src = source(c.window);
    let mut t = Trainer::new_low_rank(
        p.params().to_vec(),
        c.clone(),
        train_config(),
        low_rank(4, OtherTensors::Frozen),
    )
    .unwrap();
    let probe = src.batch(1_000, 8);
    let before = t.loss(&probe).unwrap();
    // U starts at zero: the trainer starts exactly at the parent's function.
    assert_eq!(t.params(), p.params());
    go(&mut t, &src, 30);
    let after = t.loss(&probe).unwrap();
    println!("low-rank r=4, 30 steps: probe loss {before:.4} -> {after:.4}");
    assert!(after < before - 0.05, "{before} -> {after}");
    assert_eq!(t.base_params(), p.params(), "the base stays frozen until a merge");
    // Frozen mode: gains and conv filters are untouched in the effective weights too.
    let layout = Layout::new(&c);
    let targets = default_targets(&layout);
    for spec in layout.tensors.iter().filter(|s| !targets.contains(&s.name)) {
        assert_eq!(&t.params()[spec.range()], &p.params()[spec.range()], "{}", spec.name);
    }
}

#[test]
fn exported_update_survives_the_canonical_merge() {
    let c = regtest();
    let p = parent(&c);
    let src = source(c.window);
    for other in [OtherTensors::Frozen, OtherTensors::Replace] {
        let mut t = Trainer::new_low_rank(
            p.params().to_vec(),
            c.clone(),
            train_config(),
            low_rank(8, other),
        )
        .unwrap();
        go(&mut t, &src, 40);
        let update = t.to_update().unwrap();
        let merged = apply(&p, &update, &limits(8), 1).unwrap();
        let before = evaluate(&p, text()).unwrap();
        let after = evaluate(&merged.model, text()).unwrap();
        println!(
            "{other:?}: canonical loss on the training text {:.4} -> {:.4} ({} entries, {} bytes)",
            before.mean_nats,
            after.mean_nats,
            update.entries().len(),
            update.encoded_len()
        );
        assert!(after.mean_nats.is_finite());
        assert!(after.mean_nats < before.mean_nats - 0.05, "{other:?}: {before:?} -> {after:?}");
        // What the trainer believed it learnt is what the canonical merge gives, up to rounding.
        for (a, b) in merged.model.params().iter().zip(t.params()) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
        let replaced =
            update.entries().iter().filter(|e| matches!(e.change(), Change::Replace(_))).count();
        match other {
            OtherTensors::Frozen => assert_eq!(replaced, 0),
            OtherTensors::Replace => assert!(replaced > 0),
        }
    }
}

#[test]
fn update_respects_max_rank_and_has_the_protocol_size() {
    let c = regtest();
    let p = parent(&c);
    let layout = Layout::new(&c);
    let rank = 5usize;
    let mut t = Trainer::new_low_rank(
        p.params().to_vec(),
        c.clone(),
        train_config(),
        low_rank(rank, OtherTensors::Frozen),
    )
    .unwrap();
    go(&mut t, &source(c.window), 3);
    let update = t.to_update().unwrap();
    let targets = default_targets(&layout);
    // Every matrix but the conv filters: embed, head and ten per layer (§5.2).
    assert_eq!(targets.len(), 2 + 10 * c.n_layers);
    assert_eq!(update.entries().len(), targets.len());
    let mut want = 40 + 4 * c.kernel_sizes.len() as u64;
    for e in update.entries() {
        assert_eq!(e.rank(), Some(rank as u32));
        let spec = &layout.tensors[e.tensor() as usize];
        assert!(targets.contains(&spec.name));
        let (rows, cols) = matrix_dims(spec);
        want += 17 + 4 * rank as u64 * (rows + cols);
    }
    assert_eq!(update.encoded_len(), want);
    assert_eq!(update.encode().len() as u64, want);
    update.check(&c, &limits(rank as u32)).unwrap();
    assert!(matches!(
        update.check(&c, &limits(rank as u32 - 1)),
        Err(UpdateError::RankTooHigh { rank: 5, max: 4, .. })
    ));
}

/// Numerical rank of a row-major matrix by Gaussian elimination with partial pivoting (f64).
fn numerical_rank(m: &[f64], rows: usize, cols: usize) -> usize {
    let mut a = m.to_vec();
    let scale = a.iter().fold(0.0f64, |x, v| x.max(v.abs()));
    let tol = scale * 1e-4;
    let mut rank = 0;
    for col in 0..cols {
        if rank == rows {
            break;
        }
        let piv = (rank..rows)
            .max_by(|&i, &j| a[i * cols + col].abs().total_cmp(&a[j * cols + col].abs()))
            .unwrap();
        if a[piv * cols + col].abs() <= tol {
            continue;
        }
        for j in 0..cols {
            a.swap(rank * cols + j, piv * cols + j);
        }
        for i in rank + 1..rows {
            let f = a[i * cols + col] / a[rank * cols + col];
            for j in col..cols {
                a[i * cols + j] -= f * a[rank * cols + j];
            }
        }
        rank += 1;
    }
    rank
}

#[test]
fn merge_and_restart_follows_the_chain_and_accumulates_rank() {
    let c = regtest();
    let p = parent(&c);
    let src = source(c.window);
    let rank = 2;
    let mut t = Trainer::new_low_rank(
        p.params().to_vec(),
        c.clone(),
        train_config(),
        low_rank(rank, OtherTensors::Frozen),
    )
    .unwrap();
    // Three "blocks": each update is applied canonically to the previous block's model.
    let mut chain = p.clone();
    for block in 1..=3u64 {
        go(&mut t, &src, 8);
        let update = t.merge_and_restart().unwrap();
        chain = apply(&chain, &update, &limits(rank as u32), block).unwrap().model;
        assert_eq!(t.base_params(), chain.params(), "block {block}: base is the chain's model");
        assert_eq!(t.params(), chain.params(), "block {block}: factors restart at zero");
        assert!(t.to_update().unwrap().entries().iter().all(|e| match e.change() {
            Change::LowRank { u, .. } => u.iter().all(|&x| x == 0.0),
            Change::Replace(_) => false,
        }));
    }
    // The accumulated change of a square matrix has rank above one update's.
    let layout = Layout::new(&c);
    let spec = layout.tensors.iter().find(|s| s.name == "layers.0.gru.wo").unwrap();
    let delta: Vec<f64> = chain.params()[spec.range()]
        .iter()
        .zip(&p.params()[spec.range()])
        .map(|(a, b)| (*a as f64) - (*b as f64))
        .collect();
    let r = numerical_rank(&delta, spec.shape[0], spec.shape[1]);
    println!("rank of the accumulated change of layers.0.gru.wo after 3 rank-{rank} blocks: {r}");
    assert!(r > rank, "accumulated rank {r}");
}

#[test]
fn bad_low_rank_configs_are_typed_errors() {
    let c = regtest();
    let p = parent(&c).into_parts().1;
    let bad = |lr: LowRankConfig| {
        matches!(
            Trainer::new_low_rank(p.clone(), c.clone(), train_config(), lr),
            Err(TrainError::LowRank(_))
        )
    };
    assert!(bad(low_rank(0, OtherTensors::Frozen)));
    assert!(bad(LowRankConfig { alpha: f32::NAN, ..low_rank(4, OtherTensors::Frozen) }));
    assert!(bad(LowRankConfig { alpha: 0.0, ..low_rank(4, OtherTensors::Frozen) }));
    assert!(bad(LowRankConfig {
        tensors: vec!["no.such.tensor".into()],
        ..low_rank(4, OtherTensors::Frozen)
    }));
    // A gain is not a matrix: it cannot carry an adapter.
    assert!(bad(LowRankConfig {
        tensors: vec!["norm_f".into()],
        ..low_rank(4, OtherTensors::Frozen)
    }));
    // A full-rank trainer has no update to export.
    let mut full = Trainer::new(p.clone(), c.clone(), train_config(), None).unwrap();
    assert!(matches!(full.to_update(), Err(TrainError::NotLowRank)));
    assert!(matches!(full.merge_and_restart(), Err(TrainError::NotLowRank)));
}

/// A low-rank step from a gradient computed elsewhere (a device's forward and backward on the
/// effective weights) is the trainer's own step: the same factors, effective weights, statistics
/// and update. Wrong input is refused and changes nothing.
#[test]
fn a_low_rank_step_from_an_outside_gradient_equals_the_trainers_own_step() {
    let c = regtest();
    let p = parent(&c);
    let src = source(c.window);
    let new = || {
        Trainer::new_low_rank(
            p.params().to_vec(),
            c.clone(),
            train_config(),
            low_rank(4, OtherTensors::Frozen),
        )
        .unwrap()
    };
    let (mut own, mut outside) = (new(), new());
    for k in 0..5 {
        let batch = src.batch(k, 4);
        let a = own.step(&batch).unwrap();
        let (loss, g) = outside.gradient(&batch).unwrap();
        let g = g.to_vec();
        let b = outside.step_low_rank_from(loss, &g, batch.len()).unwrap();
        assert_eq!(a, b, "step {k}");
        assert_eq!(own.params(), outside.params(), "step {k}");
    }
    let (ua, ub) = (own.to_update().unwrap(), outside.to_update().unwrap());
    assert_eq!(ua, ub);
    // A gradient of the wrong length, or a full-rank trainer, is refused without a change.
    let before = outside.params().to_vec();
    let err = outside.step_low_rank_from(1.0, &[0.0; 3], 16).unwrap_err();
    assert!(matches!(err, TrainError::ParamCount { found: 3, .. }), "{err}");
    assert_eq!(outside.params(), &before[..]);
    let mut full = Trainer::new(p.params().to_vec(), c.clone(), train_config(), None).unwrap();
    let g = vec![0.0; p.params().len()];
    assert!(matches!(full.step_low_rank_from(1.0, &g, 16), Err(TrainError::NotLowRank)));
}
