//! `checkpoint init|info|eval|grow|export-safetensors|import-safetensors`.

use super::keys::write_new;
use super::print_json;
use anyhow::{Context, bail};
use clap::Subcommand;
use rnet_model::checkpoint::parse_header;
use rnet_model::{Checkpoint, Model, ModelConfig, ModelNetwork, evaluate, grow};
use std::io::Read;
use std::path::{Path, PathBuf};

/// `rnet-util checkpoint ...`
#[derive(Subcommand)]
pub enum CheckpointCommand {
    /// Create the seeded genesis checkpoint of a network (height 0).
    Init {
        /// mainnet, testnet or regtest.
        #[arg(long)]
        network: ModelNetwork,
        /// Initialisation seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a checkpoint's header, size, parameter count and chunk merkle root.
    Info {
        /// Checkpoint file.
        file: PathBuf,
    },
    /// Evaluate a checkpoint with the canonical evaluator on the benchmark slice (or a file):
    /// the integer (micro-nats per byte), nats/byte and bits/byte.
    Eval {
        /// Checkpoint file.
        file: PathBuf,
        /// Evaluate on this file instead of the benchmark slice.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Grow a checkpoint to the shape the schedule gives at a height (function-preserving).
    Grow {
        /// Checkpoint file.
        file: PathBuf,
        /// Target height.
        #[arg(long)]
        to_height: u64,
        /// Network whose growth schedule and caps apply.
        #[arg(long)]
        network: ModelNetwork,
        /// Seed for the new input-side weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Export to safetensors (tensor names as in the checkpoint schema).
    ExportSafetensors {
        /// Checkpoint file.
        file: PathBuf,
        /// Output .safetensors file.
        out: PathBuf,
    },
    /// Import safetensors (e.g. an external trainer's output) strictly: exactly the tensor names,
    /// F32 dtype and shapes of the --like checkpoint's config, no NaN, infinite or subnormal
    /// value; the result has --like's height. The inverse of export-safetensors.
    ImportSafetensors {
        /// Input .safetensors file.
        file: PathBuf,
        /// Checkpoint whose config (and height) the result must have.
        #[arg(long)]
        like: PathBuf,
        /// Output checkpoint file.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Reads and strictly parses a checkpoint file, checking the size its header implies before
/// reading the tensors.
pub fn load(path: &Path) -> anyhow::Result<Checkpoint> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let actual = file.metadata()?.len();
    let mut head = vec![0u8; actual.min(4096) as usize];
    file.read_exact(&mut head)?;
    let header =
        parse_header(&head).with_context(|| format!("{} is not a checkpoint", path.display()))?;
    if header.total_len != actual {
        bail!(
            "{}: header implies {} bytes but the file has {actual}",
            path.display(),
            header.total_len
        );
    }
    let bytes = std::fs::read(path)?;
    Checkpoint::from_bytes(&bytes).with_context(|| format!("invalid checkpoint {}", path.display()))
}

fn save(checkpoint: &Checkpoint, path: &Path) -> anyhow::Result<()> {
    write_new(path, &checkpoint.to_bytes())
}

/// A config as JSON (the `config` object of `checkpoint info`).
pub fn config_json(config: &ModelConfig) -> serde_json::Value {
    serde_json::json!({
        "d_model": config.d_model,
        "n_layers": config.n_layers,
        "n_slots": config.n_slots,
        "d_ff": config.d_ff,
        "kernel_sizes": config.kernel_sizes,
        "window": config.window,
    })
}

/// Runs a checkpoint subcommand.
pub fn run(command: CheckpointCommand) -> anyhow::Result<()> {
    match command {
        CheckpointCommand::Init { network, seed, out } => {
            let model = Model::init(ModelConfig::genesis(network), seed)?;
            let checkpoint = Checkpoint::new(0, model);
            save(&checkpoint, &out)?;
            println!("{}", hex::encode(checkpoint.root()));
        }
        CheckpointCommand::Info { file } => {
            let checkpoint = load(&file)?;
            print_json(&serde_json::json!({
                "height": checkpoint.height,
                "config": config_json(checkpoint.model.config()),
                "parameters": checkpoint.model.param_count(),
                "size": checkpoint.encoded_len(),
                "chunks": checkpoint.chunk_hashes().len(),
                "checkpoint_root": hex::encode(checkpoint.root()),
            }));
        }
        CheckpointCommand::Eval { file, data } => {
            let checkpoint = load(&file)?;
            let owned;
            let data: &[u8] = match data {
                Some(path) => {
                    owned = std::fs::read(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    &owned
                }
                None => rnet_model::benchmark_slice(),
            };
            let result = evaluate(&checkpoint.model, data)?;
            print_json(&serde_json::json!({
                "val_loss": result.val_loss_micronats,
                "nats_per_byte": result.mean_nats,
                "bits_per_byte": result.bits_per_byte(),
                "bytes": result.bytes,
                "windows": result.windows,
            }));
        }
        CheckpointCommand::Grow { file, to_height, network, seed, out } => {
            let checkpoint = load(&file)?;
            if to_height < checkpoint.height {
                bail!(
                    "checkpoint is at height {}, cannot grow back to {to_height}",
                    checkpoint.height
                );
            }
            let (d, l) = super::scheduled_shape(network, to_height);
            let grown = grow(&checkpoint.model, d, l, seed)?;
            let grown = Checkpoint::new(to_height, grown);
            save(&grown, &out)?;
            print_json(&serde_json::json!({
                "height": to_height,
                "config": config_json(grown.model.config()),
                "checkpoint_root": hex::encode(grown.root()),
            }));
        }
        CheckpointCommand::ExportSafetensors { file, out } => {
            let checkpoint = load(&file)?;
            checkpoint.export_safetensors(&out)?;
            println!("{}", out.display());
        }
        CheckpointCommand::ImportSafetensors { file, like, out } => {
            let like = load(&like)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let checkpoint = rnet_model::checkpoint_from_safetensors(&bytes, &like)
                .with_context(|| format!("refusing {}", file.display()))?;
            save(&checkpoint, &out)?;
            print_json(&serde_json::json!({
                "height": checkpoint.height,
                "config": config_json(checkpoint.model.config()),
                "checkpoint_root": hex::encode(checkpoint.root()),
                "out": out.display().to_string(),
            }));
        }
    }
    Ok(())
}
