//! Structured logs (`tracing`): to `<netdir>/debug.log` always, and to stderr unless
//! `-printtoconsole=0`.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Name of the log file inside the network data directory.
pub const LOG_FILE: &str = "debug.log";

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log file could not be opened.
    #[error("cannot open log file {path}: {source}")]
    Io {
        /// The log file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The `-debug` filter does not parse.
    #[error("invalid -debug filter: {0}")]
    Filter(String),
    /// A global subscriber was already installed.
    #[error("logging already initialised: {0}")]
    Init(String),
}

/// Installs the global subscriber: `filter` (env-filter syntax), `debug.log` in `netdir`, and
/// stderr if `console`.
pub fn init(netdir: &Path, filter: &str, console: bool) -> Result<(), LogError> {
    std::fs::create_dir_all(netdir)
        .map_err(|source| LogError::Io { path: netdir.display().to_string(), source })?;
    let path = netdir.join(LOG_FILE);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| LogError::Io { path: path.display().to_string(), source })?;
    let filter = EnvFilter::try_new(filter).map_err(|e| LogError::Filter(e.to_string()))?;
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .with_writer(Mutex::new(file));
    let console_layer = console.then(|| {
        // Colour only on a terminal, so redirected logs stay plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(file_layer)
        .with(console_layer)
        .try_init()
        .map_err(|e| LogError::Init(e.to_string()))
}
