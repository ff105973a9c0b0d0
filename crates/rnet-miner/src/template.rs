//! Turning a node's `getblocktemplate` reply into a [`MiningJob`].

use std::sync::Arc;

use rnet_model::Checkpoint;
use rnet_primitives::{Amount, BlockHash, Transaction};
use serde_json::Value;
use thiserror::Error;

use crate::MiningJob;

/// Why a block template could not be used.
#[derive(Debug, Error)]
pub enum TemplateError {
    /// A field is missing or has the wrong type.
    #[error("block template field {0} missing or malformed")]
    Field(&'static str),
    /// A transaction of the template does not decode.
    #[error("block template transaction {0} does not decode")]
    Transaction(usize),
}

fn u64_field(t: &Value, name: &'static str) -> Result<u64, TemplateError> {
    t.get(name).and_then(Value::as_u64).ok_or(TemplateError::Field(name))
}

/// Builds the job described by a `getblocktemplate` reply `t`, mining on `parent_checkpoint`
/// (downloaded with `getcheckpointchunk`) and paying `payout_script`.
pub fn job_from_template(
    t: &Value,
    parent_checkpoint: Arc<Checkpoint>,
    payout_script: Vec<u8>,
) -> Result<MiningJob, TemplateError> {
    let parent_hash: BlockHash = t
        .get("previousblockhash")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or(TemplateError::Field("previousblockhash"))?;
    let height =
        u32::try_from(u64_field(t, "height")?).map_err(|_| TemplateError::Field("height"))?;
    let shape = t.get("shape").ok_or(TemplateError::Field("shape"))?;
    let d =
        u32::try_from(u64_field(shape, "d_model")?).map_err(|_| TemplateError::Field("d_model"))?;
    let l = u32::try_from(u64_field(shape, "n_layers")?)
        .map_err(|_| TemplateError::Field("n_layers"))?;
    let mut transactions = Vec::new();
    for (i, tx) in t
        .get("transactions")
        .and_then(Value::as_array)
        .ok_or(TemplateError::Field("transactions"))?
        .iter()
        .enumerate()
    {
        let bytes = tx
            .get("data")
            .and_then(Value::as_str)
            .and_then(|h| hex::decode(h).ok())
            .ok_or(TemplateError::Transaction(i))?;
        transactions
            .push(Transaction::from_bytes(&bytes).map_err(|_| TemplateError::Transaction(i))?);
    }
    Ok(MiningJob {
        parent_hash,
        parent_supply: Amount(u64_field(t, "circulating_supply")?),
        parent_checkpoint,
        height,
        required_improvement: u64_field(t, "required_improvement")?,
        shape: (d, l),
        transactions,
        fees: Amount(u64_field(t, "fees")?),
        min_time: u64_field(t, "mintime")?,
        time: u64_field(t, "curtime")?,
        payout_script,
    })
}
