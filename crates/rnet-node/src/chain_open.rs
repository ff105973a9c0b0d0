//! Opening the chainstate at startup with a clear error when `chainstate.redb` is damaged.
//!
//! redb 2.6 does not always return an error for a damaged file: on a file shorter than the
//! layout its header records it fails an assertion, and on garbage pages it reaches
//! `unreachable!` (both panic, which used to end `rnetd` with exit code 101 and a backtrace).
//! So, as a last resort, the open and the first activation run under `catch_unwind` with the
//! panic hook silenced (this runs once, at startup, before any other node thread exists), and
//! both panics and redb's corruption errors become [`NodeError::DamagedChainstate`].
//!
//! There is no `-reindex`: the blocks are stored inside `chainstate.redb` itself (only the
//! checkpoints live in `checkpoints/`), so nothing local can rebuild it. The error tells the
//! operator to move the file and the checkpoint directory away and resync from peers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rnet_chain::schema::{CHECKPOINT_DIR, DB_FILE};
use rnet_chain::{ChainError, ChainOptions, ChainState, ConsensusRules};
use rnet_consensus::ChainParams;

use crate::node::NodeError;

/// Opens the chainstate in `netdir` and activates the best chain; a damaged database is
/// [`NodeError::DamagedChainstate`], never a panic.
pub fn open_chainstate(
    netdir: &Path,
    params: &ChainParams,
    options: ChainOptions,
    now: u64,
) -> Result<ChainState, NodeError> {
    let message = Arc::new(Mutex::new(None::<String>));
    let previous = std::panic::take_hook();
    {
        let message = message.clone();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line()));
            *message.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("{text}{}", at.unwrap_or_default()));
        }));
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        let rules = Box::new(ConsensusRules::new(params.clone()));
        let mut chain = ChainState::open_with(netdir, rules, options)?;
        chain.activate_best_chain(now)?;
        Ok::<_, ChainError>(chain)
    }));
    std::panic::set_hook(previous);
    let damaged = |detail: String| NodeError::DamagedChainstate {
        path: netdir.join(DB_FILE),
        checkpoints: netdir.join(CHECKPOINT_DIR),
        detail,
    };
    match result {
        Ok(Ok(chain)) => Ok(chain),
        Ok(Err(e)) if is_damage(&e) => Err(damaged(e.to_string())),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            let detail = message.lock().unwrap_or_else(|e| e.into_inner()).take();
            Err(damaged(format!(
                "the database library failed: {}",
                detail.unwrap_or_else(|| "panic".into())
            )))
        }
    }
}

/// Whether an error opening the chainstate means the file's content is damaged (as opposed to
/// e.g. a permission problem, or a data directory of another network).
fn is_damage(e: &ChainError) -> bool {
    match e {
        ChainError::Corrupt(_) | ChainError::CorruptRecord { .. } => true,
        ChainError::Db(e) => match e.as_ref() {
            redb::Error::Corrupted(_) => true,
            redb::Error::Io(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
            _ => false,
        },
        _ => false,
    }
}
