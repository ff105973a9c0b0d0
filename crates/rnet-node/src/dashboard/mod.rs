//! `-dashboard[=ADDR]`: a read-only web dashboard of the node (docs/dashboard.md).
//!
//! Server-rendered HTML with inline CSS and server-side SVG plots; the only scripts are the
//! live-update subscriber ([`events`]) and the chat playground's form ([`chat`]). Every number
//! comes from the node's own read-only RPC methods called in-process ([`source::Source::rpc`]),
//! or from the chain reader for per-block series; nothing secret (keys, cookie, wallets) is read.
//!
//! Like the inference server, it runs on its own OS thread and small tokio runtime
//! ([`crate::inference::on_own_runtime`]), never on the node's, and stops when the node shuts
//! down. Bad paths and malformed hashes get a 404 or 400 page, never a panic.

pub mod blocks;
pub mod chat;
pub mod events;
pub mod history;
pub mod html;
pub mod http_client;
pub mod loss;
pub mod model;
pub mod overview;
pub mod source;
pub mod svg;
pub mod tx;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use rnet_rpc::{Registry, RpcError, codes};
use thiserror::Error;

use crate::node::Node;
use history::BenchmarkHistory;
use source::Source;

/// File in the network data directory holding the dashboard's bound port while it runs.
pub const DASHBOARD_PORT_FILE: &str = "dashboard.port";

/// Worker threads of the dashboard's own async runtime.
pub const IO_WORKERS: usize = 1;

/// How often the server checks for the node's shutdown.
const SHUTDOWN_POLL: Duration = Duration::from_millis(300);

/// What the dashboard needs from the node's configuration.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen (`-dashboard`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// `-inference` as configured (the chat page talks to it).
    pub inference: Option<SocketAddr>,
    /// `-benchmarkloss`: whether benchmark losses are computed at all (the dashboard then also
    /// back-fills those of recent blocks).
    pub benchmark_loss: bool,
}

/// Why the dashboard stopped.
#[derive(Debug, Error)]
pub enum DashboardError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The port file could not be written, or serving failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The dashboard's thread or runtime failed.
    #[error("{0}")]
    Runtime(String),
}

/// Why a page cannot be shown; rendered as an HTML error page with the matching status.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PageError {
    /// A malformed request (e.g. a hash that is not 64 hex digits): 400.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing here (unknown block, transaction or path): 404.
    #[error("{0}")]
    NotFound(String),
    /// The node could not answer: 500.
    #[error("{0}")]
    Internal(String),
}

impl PageError {
    /// Maps an error of RPC method `method`: unknown objects are 404, bad parameters 400.
    pub fn from_rpc(method: &str, e: &RpcError) -> Self {
        match e.code {
            codes::RPC_INVALID_ADDRESS_OR_KEY => Self::NotFound(e.message.clone()),
            codes::RPC_INVALID_PARAMETER | codes::RPC_INVALID_PARAMS | codes::RPC_TYPE_ERROR => {
                Self::BadRequest(e.message.clone())
            }
            _ => Self::Internal(format!("{method}: {}", e.message)),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
        let body = format!(
            "<h1>{}</h1><p class=\"err\" id=\"error\">{}</p><p><a href=\"/\">Back to the overview</a></p>",
            html::escape(&title),
            html::escape(&self.to_string())
        );
        (status, Html(html::page(&title, html::Nav::None, &body, false, false))).into_response()
    }
}

/// The result of a page handler.
pub type PageResult = Result<Html<String>, PageError>;

/// Parses a 64-hex-digit id from a path (block hash or txid): 400 otherwise.
pub fn parse_id<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, PageError> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PageError::BadRequest(format!(
            "a {what} is 64 hexadecimal digits, not {:?}",
            text.chars().take(80).collect::<String>()
        )));
    }
    text.parse().map_err(|_| PageError::BadRequest(format!("invalid {what} {text:?}")))
}

/// The dashboard's routes over `source`.
pub fn router(source: Source) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/loss", get(loss::page))
        .route("/model", get(model::page))
        .route("/blocks", get(blocks::list))
        .route("/block/{hash}", get(blocks::page))
        .route("/tx/{txid}", get(tx::page))
        .route("/chat", get(chat::page))
        .route("/chat/completions", post(chat::proxy))
        .route("/events", get(events::stream))
        .fallback(not_found)
        .with_state(source)
}

async fn not_found(uri: axum::http::Uri) -> PageError {
    PageError::NotFound(format!("no page at {}", uri.path()))
}

/// Binds `options.addr`, writes [`DASHBOARD_PORT_FILE`] and serves until `node` shuts down, on
/// the dashboard's own thread and runtime.
pub async fn run(
    options: Options,
    node: Arc<Node>,
    registry: Arc<Registry>,
    netdir: PathBuf,
) -> Result<(), DashboardError> {
    crate::inference::on_own_runtime("rnet-dashboard", IO_WORKERS, move || async move {
        Ok(serve(options, node, registry, netdir).await)
    })
    .await
    .map_err(DashboardError::Runtime)?
}

async fn serve(
    options: Options,
    node: Arc<Node>,
    registry: Arc<Registry>,
    netdir: PathBuf,
) -> Result<(), DashboardError> {
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|source| DashboardError::Bind { addr: options.addr, source })?;
    let bound = listener.local_addr()?;
    std::fs::write(netdir.join(DASHBOARD_PORT_FILE), format!("{}\n", bound.port()))?;
    tracing::info!("dashboard on http://{bound}/");
    let benchmark = Arc::new(BenchmarkHistory::default());
    let recorder = {
        let (node, benchmark) = (node.clone(), benchmark.clone());
        let backfill = options.benchmark_loss;
        std::thread::Builder::new()
            .name("dashboard-benchmark".into())
            .spawn(move || benchmark.follow(&node, backfill))?
    };
    let source = Source {
        node: node.clone(),
        registry,
        netdir: netdir.clone(),
        inference: options.inference,
        benchmark,
        subscribers: Arc::new(tokio::sync::Semaphore::new(events::MAX_SUBSCRIBERS)),
    };
    let stop = node.clone();
    let shutdown = async move {
        while !stop.shutting_down() {
            tokio::time::sleep(SHUTDOWN_POLL).await;
        }
    };
    let served = axum::serve(listener, router(source)).with_graceful_shutdown(shutdown).await;
    let _ = std::fs::remove_file(netdir.join(DASHBOARD_PORT_FILE));
    let _ = tokio::task::spawn_blocking(move || recorder.join()).await;
    served.map_err(DashboardError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_64_hex_digits() {
        let ok = "ab".repeat(32);
        assert!(parse_id::<rnet_primitives::BlockHash>("block hash", &ok).is_ok());
        for bad in ["", "zz", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65), "<script>"] {
            assert!(
                matches!(
                    parse_id::<rnet_primitives::BlockHash>("block hash", bad),
                    Err(PageError::BadRequest(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn rpc_errors_map_to_statuses() {
        let e = |code| PageError::from_rpc("getblock", &RpcError::new(code, "m"));
        assert_eq!(e(codes::RPC_INVALID_ADDRESS_OR_KEY), PageError::NotFound("m".into()));
        assert_eq!(e(codes::RPC_INVALID_PARAMETER), PageError::BadRequest("m".into()));
        assert_eq!(e(codes::RPC_MISC_ERROR), PageError::Internal("getblock: m".into()));
    }

    #[test]
    fn error_pages_have_their_status_and_escape_the_message() {
        let r = PageError::NotFound("<b>".into()).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(PageError::BadRequest(String::new()).status(), StatusCode::BAD_REQUEST);
        assert_eq!(PageError::Internal(String::new()).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
