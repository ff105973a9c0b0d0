//! Helpers shared by the integration tests: random models with every component active, random
//! shapes and bytes, and a quickly trained regtest model.
#![allow(dead_code)]

use std::sync::OnceLock;

use rnet_model::init::Sampler;
use rnet_model::{Model, ModelConfig, ModelNetwork, training_text};

/// A model whose every parameter is random and large enough that each component (conv taps,
/// gates, slot scores, FFN, head) visibly changes the logits.
pub fn random_model(config: ModelConfig, seed: u64) -> Model {
    let mut m = Model::init(config.clone(), seed).unwrap();
    let layout = m.layout().clone();
    let d = config.d_model as f64;
    for t in &layout.tensors {
        let mut s = Sampler::new(seed ^ 0x5eed, &t.name);
        let kind = t.name.rsplit('.').next().unwrap();
        let fan_in = *t.shape.last().unwrap() as f64;
        let p = &mut m.params_mut()[t.range()];
        for v in p.iter_mut() {
            let z = s.normal();
            *v = match kind {
                "embed" => z,
                "head" => z * 3.0 / d.sqrt(),
                "norm1" | "norm2" | "norm3" | "norm_f" => 1.0 + 0.3 * z,
                "keys" => 1.5 * z,
                "values" => z,
                "wo" | "wm" | "w_down" => z / fan_in.sqrt(),
                _ if t.name.contains(".conv.") => 0.5 * z,
                _ => 1.5 * z / fan_in.sqrt(),
            } as f32;
        }
    }
    m
}

/// A small random valid config.
pub fn random_config(seed: u64) -> ModelConfig {
    let mut s = Sampler::new(seed, "config");
    let mut pick = |n: usize| (s.uniform() * n as f64) as usize;
    let d = 2 * (1 + pick(24));
    let n_branches = 1 + pick(4);
    let kernel_sizes = (0..n_branches).map(|_| 1 + pick(20)).collect();
    let cfg = ModelConfig {
        d_model: d,
        n_layers: 1 + pick(3),
        n_slots: 1 + pick(40),
        d_ff: 2 * d,
        kernel_sizes,
        window: 1 + pick(100),
    };
    cfg.validate().unwrap();
    cfg
}

/// Pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = Sampler::new(seed, "bytes");
    (0..len).map(|_| (s.uniform() * 256.0) as u8).collect()
}

/// The regtest genesis model trained for a few hundred steps on the bundled training text (once
/// per test process).
pub fn trained_regtest() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        use rnet_training::{DataConfig, DataSource, RunOptions, TrainConfig, Trainer};
        let cfg = ModelConfig::genesis(ModelNetwork::Regtest);
        let model = Model::init(cfg.clone(), 0).unwrap();
        let source = DataSource::from_static(
            training_text(),
            DataConfig { window: cfg.window, holdout_fraction: 0.01, seed: 1 },
        )
        .unwrap();
        let steps = 300;
        let train = TrainConfig {
            lr: 1e-2,
            warmup: 20,
            total_steps: steps,
            batch_windows: 16,
            ..TrainConfig::default()
        };
        let (_, params) = model.into_parts();
        let mut trainer = Trainer::new(params, cfg.clone(), train, None).unwrap();
        let options = RunOptions { steps, eval_every: 0, ..RunOptions::default() };
        trainer.run(&source, &options, |_| std::ops::ControlFlow::Continue(())).unwrap();
        let (params, _) = trainer.into_parts();
        Model::from_parts(cfg, params).unwrap()
    })
}
