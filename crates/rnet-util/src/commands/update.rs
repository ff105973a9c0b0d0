//! `update export-safetensors|import-safetensors`: a block's model update (canonical bytes,
//! protocol Part III §5.2) to and from safetensors, for external trainers. The strict checks are
//! `rnet_model::interchange`'s; this only reads and writes the files.

use super::checkpoint::{config_json, load};
use super::keys::write_new;
use super::print_json;
use anyhow::Context;
use clap::Subcommand;
use rnet_model::{ModelUpdate, update_from_safetensors, update_to_safetensors};
use std::path::{Path, PathBuf};

/// `rnet-util update ...`
#[derive(Subcommand)]
pub enum UpdateCommand {
    /// Export an update to safetensors: a replaced tensor under its schema name, a low-rank
    /// entry as NAME.u [rows, r] and NAME.v [r, cols]; the target shape in the metadata.
    ExportSafetensors {
        /// Update file (canonical bytes, e.g. from `train --rank`).
        file: PathBuf,
        /// Output .safetensors file.
        out: PathBuf,
    },
    /// Import an update from safetensors strictly: names, F32 dtype and shapes of the --like
    /// checkpoint's config (the grown parent the update applies to), no NaN, infinite or
    /// subnormal value. The inverse of export-safetensors.
    ImportSafetensors {
        /// Input .safetensors file.
        file: PathBuf,
        /// Checkpoint of the shape the update applies to (the grown parent).
        #[arg(long)]
        like: PathBuf,
        /// Output update file (canonical bytes).
        #[arg(long)]
        out: PathBuf,
    },
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Runs an update subcommand.
pub fn run(command: UpdateCommand) -> anyhow::Result<()> {
    match command {
        UpdateCommand::ExportSafetensors { file, out } => {
            let update = ModelUpdate::decode(&read(&file)?)
                .with_context(|| format!("invalid update {}", file.display()))?;
            let bytes = update_to_safetensors(&update)
                .with_context(|| format!("cannot export {}", file.display()))?;
            write_new(&out, &bytes)?;
            println!("{}", out.display());
        }
        UpdateCommand::ImportSafetensors { file, like, out } => {
            let like = load(&like)?;
            let update = update_from_safetensors(&read(&file)?, like.model.config())
                .with_context(|| format!("refusing {}", file.display()))?;
            let bytes = update.encode();
            write_new(&out, &bytes)?;
            print_json(&serde_json::json!({
                "config": config_json(update.config()),
                "entries": update.entries().len(),
                "low_rank_entries": update.entries().iter().filter(|e| e.rank().is_some()).count(),
                "bytes": bytes.len(),
                "out": out.display().to_string(),
            }));
        }
    }
    Ok(())
}
