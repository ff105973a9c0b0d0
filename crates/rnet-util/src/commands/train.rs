//! `train`: grow a checkpoint to the next height's shape, train it with the CPU engine, and report
//! the canonical loss of the result on the held-out benchmark slice. With `--rank R` it trains
//! low-rank adapters instead and also writes the model update (protocol Part III §5.2). With
//! `--device cuda|vulkan|metal|auto` the training steps run on that device through
//! `rnet_gpu` — same schedule, batches and optimizer-state file — and the weights come back for the
//! canonical evaluation.

use super::checkpoint::load;
use super::keys::write_new;
use super::print_json;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rnet_gpu::Device;
use rnet_model::{
    Checkpoint, Model, ModelNetwork, UpdateLimits, apply, benchmark_slice, evaluate, grow,
    training_text,
};
use rnet_training::{
    DataConfig, DataSource, LowRankConfig, OptimizerState, OtherTensors, RunOptions, TrainConfig,
    Trainer,
};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `rnet-util train`.
#[derive(Args)]
pub struct TrainArgs {
    /// mainnet, testnet or regtest: the growth schedule (caps and interval).
    #[arg(long)]
    network: ModelNetwork,
    /// Checkpoint to start from (its optimizer state, `IN.opt`, is resumed when present).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Training data file (any bytes); default: the bundled corpus (everything but the
    /// benchmark slice).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Updates to take.
    #[arg(long)]
    steps: u64,
    /// Output checkpoint (its optimizer state goes to `OUT.opt`).
    #[arg(long)]
    out: PathBuf,
    /// Height the result is for; the model is grown to the schedule's shape there.
    /// Default: the input checkpoint's height + 1.
    #[arg(long)]
    height: Option<u64>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    /// Windows per batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Seed for batch sampling (and for the weights growth adds when `--parent` is absent).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The block id of the parent block whose model `--checkpoint` is. Growth then uses the
    /// consensus seed of that block (docs/protocol.md Part III §8), so the result is a model a
    /// block on that parent can carry; required with `--rank` when the shape grows (an update
    /// applies to the consensus grown parent).
    #[arg(long)]
    parent: Option<String>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
    /// Low-rank training with adapters of this rank on every matrix but the conv filters
    /// (0 or absent: full-rank training). Writes the update to `--update-out` and the merged
    /// checkpoint (the update applied to the grown parent) to `--out`; no optimizer state is read
    /// or written.
    #[arg(long, default_value_t = 0)]
    rank: u32,
    /// Where the update goes (with `--rank`). Default: `OUT.update`.
    #[arg(long)]
    update_out: Option<PathBuf>,
    /// Adapter scale numerator: training uses `W + (alpha/√rank)·U·V` (with `--rank`; the scale
    /// is folded into `U` in the update). Default: the engine's (16).
    #[arg(long)]
    alpha: Option<f32>,
    /// What happens to the gains and conv filters (with `--rank`): frozen, or trained and sent as
    /// replacement entries. Default: frozen.
    #[arg(long, value_enum)]
    other: Option<Other>,
    /// Where the training steps run: cpu (the CPU engine), cuda[:N], vulkan[:N], metal or auto
    /// (CUDA, else Metal, else a hardware Vulkan GPU, else cpu); with --rank the gradients are
    /// computed there and the factors kept on the CPU. cuda, vulkan and metal need rnet-util
    /// built with `--features cuda` / `vulkan` / `metal`; a missing device is an error.
    #[arg(long, default_value = "cpu")]
    device: Device,
}

/// `--other`: the tensors without an adapter.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Other {
    /// Keep the parent's values (a pure low-rank update).
    Frozen,
    /// Train them in full and send replacement entries.
    Replace,
}

/// Runs `rnet-util train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("--lr must be a positive number");
    }
    if args.rank == 0 {
        for (given, flag) in [
            (args.update_out.is_some(), "--update-out"),
            (args.alpha.is_some(), "--alpha"),
            (args.other.is_some(), "--other"),
        ] {
            if given {
                bail!("{flag} needs --rank R with R >= 1 (low-rank training)");
            }
        }
    }
    if args.alpha.is_some_and(|a| !(a.is_finite() && a > 0.0)) {
        bail!("--alpha must be a positive number");
    }
    let update_out = (args.rank > 0).then(|| {
        args.update_out.clone().unwrap_or_else(|| {
            let mut s = args.out.as_os_str().to_owned();
            s.push(".update");
            PathBuf::from(s)
        })
    });
    if update_out.as_ref().is_some_and(|u| *u == args.out) {
        bail!("--update-out and --out name the same file");
    }
    let input = load(&args.checkpoint)?;
    let height = args.height.unwrap_or(input.height + 1);
    if height < input.height {
        bail!("--height {height} is below the checkpoint's height {}", input.height);
    }
    let parent = match &args.parent {
        Some(hex) => Some(
            hex.parse::<rnet_primitives::BlockHash>()
                .map_err(|_| anyhow::anyhow!("--parent must be a 64-hex-digit block id"))?,
        ),
        None => None,
    };
    let (d, l) = super::scheduled_shape(args.network, height);
    let model = if (d, l) == (input.model.config().d_model, input.model.config().n_layers) {
        input.model
    } else {
        let seed = match parent {
            Some(parent) => rnet_consensus::growth_seed(&parent),
            None if args.rank > 0 => bail!(
                "the shape grows at height {height}: --rank needs --parent BLOCKHASH (the update \
                 applies to the parent grown with that block's consensus seed)"
            ),
            None => args.seed,
        };
        grow(&input.model, d, l, seed).context("cannot grow to the scheduled shape")?
    };
    let config = model.config().clone();
    if args.rank as usize > config.d_model {
        bail!(
            "--rank {} is above d_model = {} at height {height}: such an update is no smaller \
             than replacing the matrices",
            args.rank,
            config.d_model
        );
    }
    if args.rank > 0 {
        return run_low_rank(args, model, height, update_out.expect("set with --rank"));
    }

    let state_path = OptimizerState::path_for_checkpoint(&args.checkpoint);
    let state = if state_path.exists() {
        Some(
            OptimizerState::load(&state_path)
                .with_context(|| format!("invalid optimizer state {}", state_path.display()))?,
        )
    } else {
        None
    };
    let resumed_from = state.as_ref().map(|s| s.step).unwrap_or(0);

    let data_config = DataConfig { window: config.window, holdout_fraction: 0.01, seed: args.seed };
    let source = match &args.data {
        Some(path) => DataSource::open(path, data_config)
            .with_context(|| format!("cannot use {} as training data", path.display()))?,
        None => DataSource::from_static(training_text(), data_config)?,
    };
    let train = TrainConfig {
        lr: args.lr,
        warmup: 20.min(args.steps),
        total_steps: resumed_from + args.steps,
        batch_windows: args.batch,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let (_, params) = model.into_parts();
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(args.steps) };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  loss {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .expect("static template"),
    );
    let run = if args.device == Device::Cpu {
        let mut trainer = Trainer::new(params, config.clone(), train, state)?;
        let options = RunOptions { steps: args.steps, eval_every: 0, ..RunOptions::default() };
        let summary = trainer.run(&source, &options, |progress| {
            bar.set_position(progress.step);
            bar.set_message(format!(
                "{:.4} nats/byte  {:.0} bytes/s",
                progress.stats.loss, progress.bytes_per_sec
            ));
            ControlFlow::Continue(())
        })?;
        let (params, state) = trainer.into_parts();
        let secs = summary.elapsed.as_secs_f64();
        TrainRun {
            params,
            state,
            steps: summary.steps,
            bytes: summary.bytes,
            secs,
            last_loss: summary.last_loss,
            device: Device::Cpu,
        }
    } else {
        train_on_device(args.device, &params, &config, train, state, &source, args.steps, &bar)?
    };
    bar.finish_and_clear();
    let TrainRun { params, state, steps, bytes, secs, last_loss, device } = run;
    let model = rnet_model::Model::from_parts(config.clone(), params)?;
    if !model.is_finite() {
        bail!("training diverged (non-finite weights); try a smaller --lr");
    }
    let result = evaluate(&model, benchmark_slice())?;
    let checkpoint = Checkpoint::new(height, model);
    write_new(&args.out, &checkpoint.to_bytes())?;
    let out_state = OptimizerState::path_for_checkpoint(&args.out);
    state.save(&out_state).with_context(|| format!("writing {}", out_state.display()))?;

    print_json(&serde_json::json!({
        "height": height,
        "d_model": config.d_model,
        "n_layers": config.n_layers,
        "steps": steps,
        "optimizer_step": state.step,
        "device": device.to_string(),
        "train_bytes_per_sec": bytes as f64 / secs.max(1e-9),
        "last_train_loss": last_loss,
        "benchmark_loss": result.val_loss_micronats,
        "nats_per_byte": result.mean_nats,
        "bits_per_byte": result.bits_per_byte(),
        "checkpoint_root": hex::encode(checkpoint.root()),
        "out": args.out.display().to_string(),
    }));
    Ok(())
}

/// What a full-rank training run gives back, on either engine.
struct TrainRun {
    params: Vec<f32>,
    state: OptimizerState,
    steps: u64,
    bytes: u64,
    secs: f64,
    last_loss: Option<f64>,
    /// The device it ran on (what `auto` picked).
    device: Device,
}

/// `train --device D`: `steps` updates on the device with the CPU trainer's batch stream (update `k`
/// of the optimizer's lifetime uses `source.batch(k, batch)`), then the weights and optimizer state
/// copied back.
#[allow(clippy::too_many_arguments)]
fn train_on_device(
    device: Device,
    params: &[f32],
    config: &rnet_model::ModelConfig,
    train: TrainConfig,
    state: Option<OptimizerState>,
    source: &DataSource,
    steps: u64,
    bar: &ProgressBar,
) -> anyhow::Result<TrainRun> {
    let opened = device.open()?;
    let device = opened.device();
    eprintln!("training on {device}: {}", opened.name());
    let windows = train.batch_windows.max(1);
    let mut trainer = opened.trainer(params, config.clone(), train, state)?;
    let start = Instant::now();
    let (mut bytes, mut last_loss) = (0u64, None);
    for step in 1..=steps {
        let batch = source.batch(trainer.global_step(), windows);
        let stats = trainer.step(&batch)?;
        bytes += stats.bytes as u64;
        last_loss = Some(stats.loss);
        bar.set_position(step);
        bar.set_message(format!(
            "{:.4} nats/byte  {:.0} bytes/s",
            stats.loss,
            bytes as f64 / start.elapsed().as_secs_f64().max(1e-9)
        ));
    }
    let secs = start.elapsed().as_secs_f64();
    let (params, state) = trainer.into_parts()?;
    Ok(TrainRun { params, state, steps, bytes, secs, last_loss, device })
}

/// `train --rank R`: low-rank training of the grown parent `parent`; writes the update and the
/// merged checkpoint (`rnet_model::apply` of the update to `parent`, exactly what a node derives).
fn run_low_rank(
    args: TrainArgs,
    parent: Model,
    height: u64,
    update_out: PathBuf,
) -> anyhow::Result<()> {
    let config = parent.config().clone();
    let data_config = DataConfig { window: config.window, holdout_fraction: 0.01, seed: args.seed };
    let source = match &args.data {
        Some(path) => DataSource::open(path, data_config)
            .with_context(|| format!("cannot use {} as training data", path.display()))?,
        None => DataSource::from_static(training_text(), data_config)?,
    };
    let train = TrainConfig {
        lr: args.lr,
        warmup: 20.min(args.steps),
        total_steps: args.steps,
        batch_windows: args.batch,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let defaults = LowRankConfig::default();
    let low_rank = LowRankConfig {
        rank: args.rank as usize,
        alpha: args.alpha.unwrap_or(defaults.alpha),
        other: match args.other {
            Some(Other::Replace) => OtherTensors::Replace,
            Some(Other::Frozen) | None => OtherTensors::Frozen,
        },
        seed: args.seed,
        ..defaults
    };
    let alpha = low_rank.alpha;
    let mut trainer =
        Trainer::new_low_rank(parent.params().to_vec(), config.clone(), train, low_rank)?;

    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(args.steps) };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  loss {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .expect("static template"),
    );
    let (steps, bytes, secs, last_loss, device) = if args.device == Device::Cpu {
        let options = RunOptions { steps: args.steps, eval_every: 0, ..RunOptions::default() };
        let summary = trainer.run(&source, &options, |progress| {
            bar.set_position(progress.step);
            bar.set_message(format!(
                "{:.4} nats/byte  {:.0} bytes/s",
                progress.stats.loss, progress.bytes_per_sec
            ));
            ControlFlow::Continue(())
        })?;
        let secs = summary.elapsed.as_secs_f64();
        (summary.steps, summary.bytes, secs, summary.last_loss, Device::Cpu)
    } else {
        low_rank_on_device(args.device, &mut trainer, &source, args.steps, &bar)?
    };
    bar.finish_and_clear();

    let update = trainer
        .to_update()
        .context("cannot build the update (training diverged?); try a smaller --lr")?;
    let limits = UpdateLimits { max_update_bytes: u64::MAX, max_rank: args.rank };
    let checkpoint =
        apply(&parent, &update, &limits, height).context("the update does not apply")?;
    let result = evaluate(&checkpoint.model, benchmark_slice())?;
    let encoded = update.encode();
    write_new(&update_out, &encoded)?;
    write_new(&args.out, &checkpoint.to_bytes())?;

    print_json(&serde_json::json!({
        "height": height,
        "d_model": config.d_model,
        "n_layers": config.n_layers,
        "steps": steps,
        "device": device.to_string(),
        "rank": args.rank,
        "alpha": alpha,
        "update_entries": update.entries().len(),
        "update_bytes": encoded.len(),
        "checkpoint_bytes": checkpoint.encoded_len(),
        "train_bytes_per_sec": bytes as f64 / secs.max(1e-9),
        "last_train_loss": last_loss,
        "benchmark_loss": result.val_loss_micronats,
        "nats_per_byte": result.mean_nats,
        "bits_per_byte": result.bits_per_byte(),
        "checkpoint_root": hex::encode(checkpoint.root()),
        "out": args.out.display().to_string(),
        "update": update_out.display().to_string(),
    }));
    Ok(())
}

/// `train --rank R --device D`: `steps` low-rank updates whose forward and backward run on the
/// device (on the effective weights) while `trainer` keeps the factors and their AdamW state on
/// the CPU ([`Trainer::step_low_rank_from`]), with the CPU run's batch stream. Returns the steps,
/// bytes, seconds, last loss and the device it ran on.
fn low_rank_on_device(
    device: Device,
    trainer: &mut Trainer,
    source: &DataSource,
    steps: u64,
    bar: &ProgressBar,
) -> anyhow::Result<(u64, u64, f64, Option<f64>, Device)> {
    let opened = device.open()?;
    let device = opened.device();
    eprintln!("low-rank training with gradients on {device}: {}", opened.name());
    let config = trainer.config().clone();
    let train = trainer.train_config().clone();
    let windows = train.batch_windows.max(1);
    let mut grads_on = opened.trainer(trainer.params(), config, train, None)?;
    let start = Instant::now();
    let (mut bytes, mut last_loss) = (0u64, None);
    for step in 1..=steps {
        let batch = source.batch(trainer.global_step(), windows);
        let (loss, grads) = grads_on.gradient(&batch)?;
        let stats = trainer.step_low_rank_from(loss, &grads, batch.len())?;
        grads_on.load_params(trainer.params())?;
        bytes += stats.bytes as u64;
        last_loss = Some(stats.loss);
        bar.set_position(step);
        bar.set_message(format!(
            "{:.4} nats/byte  {:.0} bytes/s",
            stats.loss,
            bytes as f64 / start.elapsed().as_secs_f64().max(1e-9)
        ));
    }
    Ok((steps, bytes, start.elapsed().as_secs_f64(), last_loss, device))
}
