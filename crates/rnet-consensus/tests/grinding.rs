//! Grinding the evaluation sample (`docs/protocol.md` Part V §8, Proof-of-Training v2 rule 8).
//!
//! A block's sample is drawn from its checkpoint root, so every distinct set of weights sees a
//! different sample. An attacker who does no training can still *grind*: perturb the parent's
//! weights at random, compute the new root, evaluate parent and candidate on the sample that root
//! draws (exactly as validators will, with [`evaluate_candidate`]), and keep the luckiest try.
//! Each try is one paired difference `parent_loss − val_loss` (µnat per byte) on a fresh sample;
//! its mean is negative for a trained parent (a perturbation hurts on average) but its spread
//! grows with the perturbation, so the best of `N` tries is positive and grows with `N`.
//!
//! The floor of the required improvement (`ChainParams::min_required_improvement`) must be at
//! least ten times the best improvement that grinding finds in 256 tries, so that a block can
//! only clear it by real training. This file measures that figure:
//!
//! - the parent is a *partly trained* model at the network's genesis shape (trained a few
//!   hundred steps: its loss clearly below the genesis ~5.58 nats/byte, far from converged);
//! - each candidate is the parent with every parameter moved by `σ · rms(tensor) · N(0, 1)`
//!   (SplitMix64 and Box–Muller, so every figure is reproducible);
//! - the relative scale `σ` is tuned on a grid from 1e-4 to 1 (the best maximum over a few tries
//!   per scale), then 256 fresh tries at the tuned scale give best-of-16, best-of-64 (the first 16
//!   and 64 of them) and best-of-256.
//!
//! Tuning on a few tries can miss the best scale, so the figure is what *this* grinder finds, not
//! a bound on every grinder. It also depends on the parent: the less trained, the larger (the
//! genesis model itself, the parent of block 1, is the easiest to "improve" by noise), so the
//! regtest measurement also prints the genesis parent and parents trained 100 and 1,500 steps.
//!
//! `grinding_is_deterministic_and_mostly_worsens` runs in CI (regtest, 16 tries at a fixed
//! scale). The measurements are ignored; run them with
//! `cargo test -p rnet-consensus --test grinding -- --ignored --nocapture grind_regtest`
//! (likewise `grind_testnet` and `grind_genesis_testnet`). Each prints a summary line per parent
//! starting with `GRIND`.

use std::ops::Range;
use std::time::Instant;

use rnet_consensus::{ChainParams, SampleEvaluation, evaluate_candidate};
use rnet_model::{Checkpoint, Model};
use rnet_primitives::{BlockHeader, Hash256};
use rnet_testkit::miner::checkpoint_root;
use rnet_training::{DataConfig, DataSource, TrainConfig, Trainer};

/// The relative perturbation scales tried when tuning `σ`.
const SIGMA_GRID: [f64; 9] = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0];

/// Tries of the final measurement (best-of-16 and best-of-64 are its prefixes).
const TRIES: usize = 256;

/// SplitMix64 with Box–Muller normals: small, deterministic and independent of any crate.
struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Self { state: seed, spare: None }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `(0, 1]` (never 0, so the logarithm below is finite).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal.
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let r = (-2.0 * self.unit().ln()).sqrt();
        let theta = std::f64::consts::TAU * self.unit();
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// A model trained for `steps` steps from the genesis checkpoint of `params`, with the mean
/// training loss (nats/byte) of its last steps.
fn partly_trained(params: &ChainParams, steps: u64, lr: f32, batch_windows: usize) -> (Model, f64) {
    let genesis = params.genesis_checkpoint().model;
    let config = genesis.config().clone();
    let seed = u64::from_le_bytes(*b"grind\0\0\0");
    let source = DataSource::from_static(
        rnet_model::training_text(),
        DataConfig { window: config.window, holdout_fraction: 0.0, seed },
    )
    .expect("the bundled corpus is a data source");
    let train = TrainConfig {
        lr,
        warmup: steps / 10,
        total_steps: steps,
        batch_windows,
        weight_decay: 0.0,
        seed,
        ..TrainConfig::default()
    };
    let (_, weights) = genesis.into_parts();
    let mut trainer = Trainer::new(weights, config.clone(), train, None).expect("trainer");
    let tail = (steps / 10).max(1);
    let mut tail_loss = 0.0;
    for step in 0..steps {
        let batch = source.batch(trainer.global_step(), batch_windows);
        let stats = trainer.step(&batch).expect("training step");
        if step + tail >= steps {
            tail_loss += stats.loss;
        }
    }
    let model = Model::from_parts(config, trainer.params().to_vec()).expect("trained model");
    (model, tail_loss / tail as f64)
}

/// A grinder: a parent model on a network, and everything a try needs besides the perturbation.
struct Grinder {
    params: ChainParams,
    parent: Model,
    /// Each tensor's range in the flat buffer and its rms (an all-zero tensor uses the rms of the
    /// whole buffer).
    scales: Vec<(Range<usize>, f64)>,
    /// The genesis header (the candidates' headers copy it).
    genesis: BlockHeader,
}

impl Grinder {
    fn new(params: &ChainParams, parent: Model) -> Self {
        let rms = |v: &[f32]| {
            (v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / v.len().max(1) as f64)
                .sqrt()
        };
        let global = rms(parent.params());
        let scales = parent
            .layout()
            .tensors
            .iter()
            .map(|t| {
                let r = rms(&parent.params()[t.range()]);
                (t.range(), if r > 0.0 { r } else { global })
            })
            .collect();
        Self { params: params.clone(), parent, scales, genesis: params.genesis_block().header }
    }

    /// The parent with every parameter moved by `sigma · rms(tensor) · N(0, 1)`, drawn from
    /// `seed`.
    fn perturb(&self, sigma: f64, seed: u64) -> Model {
        let mut rng = Rng::new(seed);
        let mut candidate = self.parent.clone();
        let weights = candidate.params_mut();
        for (range, rms) in &self.scales {
            for w in &mut weights[range.clone()] {
                *w += (sigma * rms * rng.normal()) as f32;
            }
        }
        candidate
    }

    /// A height-1 header on the genesis block committing to `candidate` (only the parent id, the
    /// checkpoint root and the miner key matter for the sample).
    fn header_for(&self, candidate: &Model) -> BlockHeader {
        let bytes = Checkpoint::new(1, candidate.clone()).to_bytes();
        BlockHeader {
            prev_block_hash: self.genesis.hash(),
            height: 1,
            checkpoint_root: Hash256(checkpoint_root(&bytes)),
            checkpoint_size: bytes.len() as u64,
            ..self.genesis.clone()
        }
    }

    /// One try: the candidate's evaluation, exactly as a miner (and validators) would compute
    /// it, and its signed improvement `parent_loss − val_loss` (µnat).
    fn try_once(&self, sigma: f64, seed: u64) -> (SampleEvaluation, i64) {
        let candidate = self.perturb(sigma, seed);
        let header = self.header_for(&candidate);
        let eval = evaluate_candidate(&self.params, &header, &self.parent, &candidate)
            .expect("the parent and a finite perturbation evaluate");
        let signed = eval.parent_loss as i64 - eval.val_loss as i64;
        (eval, signed)
    }

    /// The signed improvements of tries `0..n` at `sigma`, seeds from `stream`.
    fn improvements(&self, sigma: f64, stream: u64, n: usize) -> Vec<i64> {
        (0..n).map(|i| self.try_once(sigma, try_seed(stream, i)).1).collect()
    }
}

/// Seed of try `i` of seed stream `stream` (one stream per tuning grid point, one for the
/// measurement, so the measured tries are fresh).
fn try_seed(stream: u64, i: usize) -> u64 {
    stream.wrapping_mul(0x1_0000_0001) ^ ((i as u64) << 20) ^ 0x5eed
}

/// Best of a slice of improvements.
fn best(xs: &[i64]) -> i64 {
    xs.iter().copied().max().unwrap_or(i64::MIN)
}

/// Mean of a slice of improvements.
fn mean(xs: &[i64]) -> f64 {
    xs.iter().sum::<i64>() as f64 / xs.len().max(1) as f64
}

/// The figures of one full measurement.
struct Measurement {
    sigma: f64,
    best16: i64,
    best64: i64,
    best256: i64,
}

/// The full measurement on `params`: trains a parent for `steps` steps (0: the genesis model
/// itself), tunes `σ` with `tune_tries` tries per grid point, then grinds [`TRIES`] fresh times at
/// the tuned scale and prints the `GRIND` line.
fn grind(
    params: &ChainParams,
    steps: u64,
    lr: f32,
    batch_windows: usize,
    tune_tries: usize,
) -> Measurement {
    let name = params.network.name();
    let start = Instant::now();
    let parent = if steps == 0 {
        eprintln!("{name}: parent = the genesis model");
        params.genesis_checkpoint().model
    } else {
        let (parent, loss) = partly_trained(params, steps, lr, batch_windows);
        eprintln!(
            "{name}: parent trained {steps} steps (lr {lr}, {batch_windows} windows) in {:.1}s, \
             loss of its last steps {loss:.4} nats/byte",
            start.elapsed().as_secs_f64()
        );
        parent
    };
    let train_secs = start.elapsed().as_secs_f64();
    let grinder = Grinder::new(params, parent);

    let mut tuned = (SIGMA_GRID[0], i64::MIN);
    for (g, &sigma) in SIGMA_GRID.iter().enumerate() {
        let t = Instant::now();
        let imps = grinder.improvements(sigma, g as u64 + 1, tune_tries);
        eprintln!(
            "{name}: tune sigma={sigma:e} max={} mean={:.1} over {tune_tries} tries ({:.2}s/try)",
            best(&imps),
            mean(&imps),
            t.elapsed().as_secs_f64() / tune_tries as f64
        );
        if best(&imps) > tuned.1 {
            tuned = (sigma, best(&imps));
        }
    }
    let sigma = tuned.0;

    let t = Instant::now();
    let mut imps = Vec::with_capacity(TRIES);
    let mut parent_loss = 0u64;
    for i in 0..TRIES {
        let (eval, imp) = grinder.try_once(sigma, try_seed(0, i));
        imps.push(imp);
        parent_loss += eval.parent_loss;
    }
    let grind_secs = t.elapsed().as_secs_f64();
    let m = Measurement {
        sigma,
        best16: best(&imps[..16]),
        best64: best(&imps[..64]),
        best256: best(&imps),
    };
    eprintln!(
        "GRIND {name} steps={steps} sigma={:e} best16={} best64={} best256={} mean={:.1} \
         improving={}/{TRIES} (µnat) parent_loss={} µnat floor={} \
         time train={train_secs:.1}s grind={grind_secs:.1}s ({:.2}s/try) total={:.1}s",
        m.sigma,
        m.best16,
        m.best64,
        m.best256,
        mean(&imps),
        imps.iter().filter(|&&x| x > 0).count(),
        parent_loss / TRIES as u64,
        params.min_required_improvement,
        grind_secs / TRIES as f64,
        start.elapsed().as_secs_f64()
    );
    m
}

/// CI: on regtest, evaluating a candidate is deterministic, another root draws another sample,
/// and at a moderate scale most perturbations of a partly trained parent make it worse.
#[test]
fn grinding_is_deterministic_and_mostly_worsens() {
    let params = ChainParams::regtest();
    let (parent, loss) = partly_trained(&params, 400, 3e-3, 8);
    assert!(loss < 3.0, "training lowered the loss ({loss:.3} nats/byte)");
    let grinder = Grinder::new(&params, parent);
    let sigma = 1e-2;

    let (first, _) = grinder.try_once(sigma, try_seed(0, 0));
    let (again, _) = grinder.try_once(sigma, try_seed(0, 0));
    assert_eq!(first, again, "the same candidate evaluates identically");
    let (other, _) = grinder.try_once(sigma, try_seed(0, 1));
    assert_ne!(first.sample, other.sample, "another root draws another sample");

    let imps = grinder.improvements(sigma, 0, 16);
    let improving = imps.iter().filter(|&&x| x > 0).count();
    eprintln!("regtest sigma={sigma:e} improvements {imps:?} best16={}", best(&imps));
    assert!(improving <= 8, "{improving} of 16 perturbations improve: {imps:?}");
    assert!(mean(&imps) < 0.0, "perturbations improve on average: {imps:?}");
}

/// Full measurement at the regtest genesis shape (d=32, L=2, T=64, K=32): a parent trained 400
/// steps (the reference figure), then the genesis model itself (the parent of block 1) and
/// parents trained 100 and 1,500 steps, to show how the figure depends on the parent (about a
/// minute in all).
#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn grind_regtest() {
    let params = ChainParams::regtest();
    let runs: Vec<(u64, Measurement)> = [400, 0, 100, 1500]
        .into_iter()
        .map(|steps| (steps, grind(&params, steps, 3e-3, 8, 64)))
        .collect();
    for (steps, m) in &runs {
        eprintln!(
            "GRIND regtest summary: parent steps={steps} sigma={:e} best16={} best64={} best256={}",
            m.sigma, m.best16, m.best64, m.best256
        );
    }
}

/// Full measurement at the testnet genesis shape (d=128, L=4, T=256, K=64) for a parent trained
/// 300 steps (about 9 minutes on two cores).
#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn grind_testnet() {
    grind(&ChainParams::testnet(), 300, 2e-3, 4, 10);
}

/// As [`grind_testnet`] with the genesis model as the parent (about 8 minutes on two cores).
#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn grind_genesis_testnet() {
    grind(&ChainParams::testnet(), 0, 2e-3, 4, 10);
}
