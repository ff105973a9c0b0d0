//! `dev-reference` (hidden): the numbers an external trainer must reproduce, for its agreement
//! tests (`contrib/pytorch`). For a model (safetensors with the export metadata) and a data file it
//! writes the canonical evaluator's logits and per-position losses, the CPU training engine's
//! gradient of the mean loss over the data's full windows, and optionally the weights after a
//! short training run, and prints the scalars as JSON.

use super::print_json;
use anyhow::{Context, bail};
use clap::Args;
use rnet_model::forward::{window_logits, window_losses};
use rnet_model::{Checkpoint, Model, evaluate};
use rnet_training::{
    Batch, DataConfig, DataSource, RunOptions, ScanMode, TrainConfig, Trainer, flop_count,
};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Arguments of `rnet-util dev-reference`.
#[derive(Args)]
pub struct DevReferenceArgs {
    /// The model: safetensors with the export metadata (as `checkpoint export-safetensors`
    /// writes it).
    #[arg(long)]
    model: PathBuf,
    /// The bytes to evaluate, take the gradient on and train on.
    #[arg(long)]
    data: PathBuf,
    /// Output folder (created): `eval_logits.f32` `[P, 256]` and `eval_losses.f32` `[P]`
    /// (little-endian f32, the evaluator's windows in order), `grad.safetensors` (the gradient
    /// under the schema names), `trained.safetensors` (after `--steps`).
    #[arg(long)]
    out: PathBuf,
    /// Window length of the gradient batch and the training run; default: the model's window.
    #[arg(long)]
    window: Option<usize>,
    /// Training updates to take (0: no run).
    #[arg(long, default_value_t = 0)]
    steps: u64,
    /// Windows per training batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Seed of the batch sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    /// Warmup updates; default `min(20, steps)` (as `rnet-util train`).
    #[arg(long)]
    warmup: Option<u64>,
    /// Update at which the cosine decay ends; default `steps`.
    #[arg(long)]
    total_steps: Option<u64>,
    /// Fraction of the data (its tail) held out of the training run.
    #[arg(long, default_value_t = 0.01)]
    holdout: f64,
    /// Decoupled weight decay.
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f32,
    /// Global gradient-norm clip (0: off).
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Use the log-domain parallel scan instead of the sequential one.
    #[arg(long)]
    parallel_scan: bool,
    /// Skip the evaluator outputs (for throughput runs on large data).
    #[arg(long)]
    no_eval: bool,
    /// Skip the gradient output.
    #[arg(long)]
    no_grad: bool,
}

fn write_f32(path: &Path, values: &[f32]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn export(path: &Path, height: u64, like: &Model, params: Vec<f32>) -> anyhow::Result<()> {
    let model = Model::from_parts(like.config().clone(), params)?;
    Checkpoint::new(height, model)
        .export_safetensors(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs `rnet-util dev-reference`.
pub fn run(args: DevReferenceArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("cannot read {}", args.model.display()))?;
    let checkpoint = Checkpoint::from_safetensors_bytes(&bytes).with_context(|| {
        format!("{} is not a model export with its metadata", args.model.display())
    })?;
    let data = std::fs::read(&args.data)
        .with_context(|| format!("cannot read {}", args.data.display()))?;
    let model = checkpoint.model;
    let config = model.config().clone();
    let window = args.window.unwrap_or(config.window);
    if window == 0 {
        bail!("--window must be at least 1");
    }
    if data.len() < window + 1 {
        bail!("data of {} bytes is too short for one window of {} bytes", data.len(), window + 1);
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let scan = if args.parallel_scan { ScanMode::Parallel } else { ScanMode::Sequential };

    let eval = if args.no_eval {
        serde_json::Value::Null
    } else {
        let result = evaluate(&model, &data)?;
        let (mut logits, mut losses) = (Vec::new(), Vec::new());
        for r in rnet_model::evaluator::windows(data.len(), config.window) {
            logits.extend(window_logits(&model, &data[r.start..r.end]));
            losses.extend(window_losses(&model, &data[r.start..r.end + 1]));
        }
        write_f32(&args.out.join("eval_logits.f32"), &logits)?;
        write_f32(&args.out.join("eval_losses.f32"), &losses)?;
        serde_json::json!({
            "val_loss": result.val_loss_micronats,
            "total_nats": result.total_nats,
            "mean_nats": result.mean_nats,
            "bytes": result.bytes,
            "windows": result.windows,
        })
    };

    let train_config = |steps: u64| TrainConfig {
        lr: args.lr,
        warmup: args.warmup.unwrap_or(20.min(steps)),
        total_steps: args.total_steps.unwrap_or(steps),
        batch_windows: args.batch,
        window,
        weight_decay: args.weight_decay,
        clip: args.clip,
        seed: args.seed,
        scan,
        ..TrainConfig::default()
    };

    let grad = if args.no_grad {
        serde_json::Value::Null
    } else {
        let batch = Batch::from_sequence(&data, window);
        let mut trainer =
            Trainer::new(model.params().to_vec(), config.clone(), train_config(1), None)?;
        let (loss, grad) = trainer.gradient(&batch)?;
        export(&args.out.join("grad.safetensors"), checkpoint.height, &model, grad.to_vec())?;
        serde_json::json!({ "loss": loss, "windows": batch.windows(), "window": window })
    };

    let train = if args.steps == 0 {
        serde_json::Value::Null
    } else {
        let source = DataSource::from_bytes(
            data.clone(),
            DataConfig { window, holdout_fraction: args.holdout, seed: args.seed },
        )?;
        let mut trainer =
            Trainer::new(model.params().to_vec(), config.clone(), train_config(args.steps), None)?;
        let mut steps = Vec::new();
        let options = RunOptions { steps: args.steps, ..RunOptions::default() };
        let summary = trainer.run(&source, &options, |p| {
            steps.push(serde_json::json!({
                "step": p.stats.step,
                "loss": p.stats.loss,
                "grad_norm": p.stats.grad_norm,
                "lr": p.stats.lr,
                "elapsed_s": p.elapsed.as_secs_f64(),
            }));
            ControlFlow::Continue(())
        })?;
        let (params, _) = trainer.into_parts();
        export(&args.out.join("trained.safetensors"), checkpoint.height, &model, params)?;
        let secs = summary.elapsed.as_secs_f64().max(1e-9);
        serde_json::json!({
            "steps": steps,
            "bytes": summary.bytes,
            "elapsed_s": secs,
            "bytes_per_sec": summary.bytes as f64 / secs,
            "train_flops_per_byte": flop_count(&config).train_flops_per_byte(),
            "threads": rayon_threads(),
        })
    };

    print_json(&serde_json::json!({
        "config": super::checkpoint::config_json(&config),
        "eval": eval,
        "grad": grad,
        "train": train,
    }));
    Ok(())
}

/// Threads the engine's parallel loops run on (`RAYON_NUM_THREADS` or the core count).
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
