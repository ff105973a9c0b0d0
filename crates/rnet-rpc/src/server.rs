//! The HTTP side: binding, authentication, routing, body limits, Core's HTTP statuses.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::auth::{COOKIE_USER, CookieGuard, Credentials, random_cookie_password, write_cookie};
use crate::error::RpcServerError;
use crate::protocol::{Handled, HttpReply, StreamedReply, handle_request};
use crate::registry::Registry;
use crate::stream::{Start, StreamCtx, StreamStats, start};

/// Core's limit on a request body (`MAX_SIZE`, 32 MiB); larger bodies get HTTP 413.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;
/// How many requests may be in progress at once before new ones get HTTP 503, like Core's
/// `-rpcworkqueue`.
pub const DEFAULT_WORK_QUEUE: usize = 64;
/// How long a client may take to send a request head or body, stay idle between requests on a
/// keep-alive connection, or leave a chunk of a streamed reply untaken, before the connection
/// is closed (Core's `-rpcservertimeout`, 30 s).
pub const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections open at once (`-rpcmaxconnections`); a connection beyond it is closed as
/// soon as it is accepted, so stalled clients cannot exhaust the process's file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Least time between two log lines about connections refused at the cap.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How long a failed authentication is held before the 401 goes out (Core: 250 ms), to slow
/// down password guessing.
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(250);

/// How long [`RpcServer::run`] waits by default for open connections after the shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

const WWW_AUTHENTICATE: &str = "Basic realm=\"jsonrpc\"";

/// Settings of the RPC server.
#[derive(Clone)]
pub struct RpcConfig {
    /// The address to listen on. Loopback by default; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Where `.cookie` is written at start and deleted at shutdown (the network's datadir).
    pub cookie_dir: PathBuf,
    /// Optional `rpcuser`/`rpcpassword`, accepted besides the cookie.
    pub user_pass: Option<(String, String)>,
    /// The largest request body accepted (HTTP 413 above it).
    pub max_body: usize,
    /// Requests in progress at once before HTTP 503 `Work queue depth exceeded`.
    pub work_queue: usize,
    /// The time allowed to receive a request head (then the connection is closed) or body
    /// (HTTP 408), the longest idle time of a keep-alive connection between requests, and the
    /// longest a streamed reply's chunk waits for the client (then the stream is abandoned).
    pub timeout: Duration,
    /// Most connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// The delay before answering a failed authentication.
    pub auth_failure_delay: Duration,
    /// How long [`RpcServer::run`] waits for open connections after the shutdown signal.
    pub shutdown_grace: Duration,
}

impl std::fmt::Debug for RpcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcConfig")
            .field("bind", &self.bind)
            .field("cookie_dir", &self.cookie_dir)
            .field("user", &self.user_pass.as_ref().map(|(u, _)| u))
            .field("max_body", &self.max_body)
            .field("work_queue", &self.work_queue)
            .field("timeout", &self.timeout)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl RpcConfig {
    /// A configuration listening on `bind` with the cookie in `cookie_dir` and Core's defaults.
    pub fn new(bind: SocketAddr, cookie_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind,
            cookie_dir: cookie_dir.into(),
            user_pass: None,
            max_body: DEFAULT_MAX_BODY,
            work_queue: DEFAULT_WORK_QUEUE,
            timeout: DEFAULT_SERVER_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            auth_failure_delay: AUTH_FAILURE_DELAY,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }

    /// Listen on `127.0.0.1:port` (the default: RPC is bound to loopback).
    pub fn localhost(port: u16, cookie_dir: impl Into<PathBuf>) -> Self {
        Self::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), cookie_dir)
    }
}

struct ServerState {
    registry: Arc<Registry>,
    credentials: Credentials,
    max_body: usize,
    queue: Arc<Semaphore>,
    timeout: Duration,
    auth_failure_delay: Duration,
    streams: Arc<StreamStats>,
}

/// A bound RPC server, not yet serving. [`RpcServer::bind`] has written the cookie;
/// [`RpcServer::run`] serves until the shutdown future resolves and then deletes it.
pub struct RpcServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<ServerState>,
    cookie: CookieGuard,
    shutdown_grace: Duration,
    max_connections: usize,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("local_addr", &self.local_addr)
            .field("cookie", &self.cookie.path)
            .finish()
    }
}

impl RpcServer {
    /// Bind the listening socket and write the authentication cookie.
    pub async fn bind(config: RpcConfig, registry: Arc<Registry>) -> Result<Self, RpcServerError> {
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| RpcServerError::Bind { addr: config.bind, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| RpcServerError::Bind { addr: config.bind, source })?;
        if !config.bind.ip().is_loopback() {
            tracing::warn!(%local_addr, "RPC server is listening on a non-loopback address");
        }
        let password = random_cookie_password();
        let cookie_path = write_cookie(&config.cookie_dir, &password).map_err(|source| {
            RpcServerError::Cookie {
                path: config.cookie_dir.join(crate::auth::COOKIE_FILE),
                source,
            }
        })?;
        let mut credentials = Credentials::default();
        credentials.add(COOKIE_USER, &password);
        if let Some((user, pass)) = &config.user_pass {
            credentials.add(user, pass);
        }
        tracing::info!(%local_addr, cookie = %cookie_path.display(), "RPC server bound");
        let state = Arc::new(ServerState {
            registry,
            credentials,
            max_body: config.max_body,
            queue: Arc::new(Semaphore::new(config.work_queue.max(1))),
            timeout: config.timeout,
            auth_failure_delay: config.auth_failure_delay,
            streams: Arc::new(StreamStats::default()),
        });
        let contents = format!("{COOKIE_USER}:{password}");
        Ok(Self {
            listener,
            local_addr,
            state,
            cookie: CookieGuard { path: cookie_path, contents },
            shutdown_grace: config.shutdown_grace,
            max_connections: config.max_connections.clamp(1, u32::MAX as usize),
        })
    }

    /// The address actually bound (the chosen port when the configuration asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters of this server's streamed replies (chunks alive, abandoned streams, …).
    pub fn stream_stats(&self) -> Arc<StreamStats> {
        Arc::clone(&self.state.streams)
    }

    /// The path of the cookie file written by [`RpcServer::bind`].
    pub fn cookie_path(&self) -> &Path {
        &self.cookie.path
    }

    /// Serve until `shutdown` resolves, let requests in progress finish, delete the cookie.
    ///
    /// Each connection holds one of `max_connections` slots (beyond them it is closed at once)
    /// and is closed when a request head takes longer than the timeout or the connection idles
    /// that long between requests (hyper's header-read timer runs from the moment the server
    /// waits for the next request head).
    pub async fn run<F>(self, shutdown: F) -> Result<(), RpcServerError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Self { listener, local_addr, state, cookie, shutdown_grace, max_connections } = self;
        let slots = Arc::new(Semaphore::new(max_connections));
        let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
        let mut shutdown = pin!(shutdown);
        let mut refused = 0u64;
        let mut last_refusal_log: Option<Instant> = None;
        loop {
            let (tcp, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%local_addr, "RPC accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                drop(tcp);
                refused += 1;
                if last_refusal_log.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL) {
                    tracing::warn!(
                        %local_addr,
                        "RPC connection limit ({max_connections}) reached: closed {refused} new connection(s)"
                    );
                    last_refusal_log = Some(Instant::now());
                    refused = 0;
                }
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let state = Arc::clone(&state);
            let mut closing = closing_rx.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let timeout = state.timeout;
                // Notified when a streamed reply is abandoned or fails midway: close at once,
                // even while the connection waits to write to a client that stopped reading.
                let abort = Arc::new(Notify::new());
                let conn_abort = Arc::clone(&abort);
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let state = Arc::clone(&state);
                        let abort = Arc::clone(&conn_abort);
                        async move {
                            Ok::<_, Infallible>(
                                handle(state, peer, req.map(Body::new), abort).await,
                            )
                        }
                    });
                let mut builder = http1::Builder::new();
                builder.timer(TokioTimer::new()).header_read_timeout(timeout).keep_alive(true);
                let mut conn = pin!(builder.serve_connection(TokioIo::new(tcp), service));
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, "RPC connection closed: {e}");
                        }
                        return;
                    }
                    () = abort.notified() => {
                        tracing::debug!(%peer, "RPC connection closed: reply stream ended early");
                        return;
                    }
                    _ = closing.wait_for(|c| *c) => {}
                }
                // Shutdown: finish the request in progress, then close.
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = abort.notified() => {}
                }
            });
        }
        drop(listener);
        let _ = closing_tx.send(true);
        // Every connection task gives its slot back when it ends.
        let all = slots.acquire_many(max_connections as u32);
        if tokio::time::timeout(shutdown_grace, all).await.is_err() {
            tracing::warn!(%local_addr, "RPC connections still open {shutdown_grace:?} after shutdown; leaving them");
        }
        tracing::info!(%local_addr, "RPC server stopped");
        drop(cookie);
        Ok(())
    }

    /// Run the server on a new tokio task (see [`RpcServer::run`]).
    pub fn spawn<F>(self, shutdown: F) -> RunningServer
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let local_addr = self.local_addr;
        let cookie_path = self.cookie.path.clone();
        let handle = tokio::spawn(self.run(shutdown));
        RunningServer { local_addr, cookie_path, handle }
    }
}

/// A server running on its own task (from [`RpcServer::spawn`]).
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    cookie_path: PathBuf,
    handle: JoinHandle<Result<(), RpcServerError>>,
}

impl RunningServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The cookie file's path.
    pub fn cookie_path(&self) -> &Path {
        &self.cookie_path
    }

    /// Wait until the server has stopped (its shutdown future resolved).
    pub async fn join(self) -> Result<(), RpcServerError> {
        match self.handle.await {
            Ok(r) => r,
            Err(e) => Err(RpcServerError::Task(e.to_string())),
        }
    }
}

/// Bind, write the cookie, serve until `shutdown` resolves, delete the cookie. Returns the
/// address it was bound to. To learn the address before serving (port 0), use
/// [`RpcServer::bind`] then [`RpcServer::run`] or [`RpcServer::spawn`].
pub async fn serve<F>(
    config: RpcConfig,
    registry: Arc<Registry>,
    shutdown: F,
) -> Result<SocketAddr, RpcServerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let server = RpcServer::bind(config, registry).await?;
    let addr = server.local_addr();
    server.run(shutdown).await?;
    Ok(addr)
}

/// The wallet a request path names: `/` → `Some(None)`, `/wallet/<name>` → `Some(Some(name))`
/// (percent-decoded), anything else → `None` (HTTP 404).
pub(crate) fn route(path: &str) -> Option<Option<String>> {
    if path == "/" {
        return Some(None);
    }
    let name = path.strip_prefix("/wallet/")?;
    Some(Some(percent_decode(name)?))
}

/// Decode `%XX` escapes; `None` when the result is not UTF-8 or an escape is malformed.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

fn unauthorized() -> Response {
    let mut r = StatusCode::UNAUTHORIZED.into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTHENTICATE));
    r
}

enum BodyError {
    TooLarge,
    Broken,
}

/// Read the whole body, failing as soon as it exceeds `limit` bytes.
async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut buf = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(buf),
            Some(Err(_)) => return Err(BodyError::Broken),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len().saturating_add(data.len()) > limit {
                        return Err(BodyError::TooLarge);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

fn json_response(reply: HttpReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.body {
        None => status.into_response(),
        Some(body) => {
            let mut r = (status, body).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    }
}

async fn handle(
    state: Arc<ServerState>,
    peer: SocketAddr,
    req: Request,
    abort: Arc<Notify>,
) -> Response {
    let (parts, body) = req.into_parts();
    let Some(wallet) = route(parts.uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if parts.method != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "JSONRPC server handles only POST requests");
    }
    let Some(auth) = parts.headers.get(header::AUTHORIZATION) else {
        return unauthorized();
    };
    let Some(user) = state.credentials.check(auth.as_bytes()) else {
        tracing::warn!(%peer, "RPC incorrect password attempt");
        tokio::time::sleep(state.auth_failure_delay).await;
        return unauthorized();
    };
    let Ok(permit) = Arc::clone(&state.queue).try_acquire_owned() else {
        tracing::warn!("RPC request rejected: work queue depth exceeded");
        return plain(StatusCode::SERVICE_UNAVAILABLE, "Work queue depth exceeded");
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body as u64) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let bytes = match tokio::time::timeout(state.timeout, read_body(body, state.max_body)).await {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::TooLarge)) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        Ok(Err(BodyError::Broken)) => return StatusCode::BAD_REQUEST.into_response(),
        Err(_) => return StatusCode::REQUEST_TIMEOUT.into_response(),
    };
    let streamed =
        match handle_request(&state.registry, &bytes, wallet.as_deref(), Some(&user)).await {
            Handled::Full(reply) => return json_response(reply),
            Handled::Stream(s) => s,
        };
    drop(bytes);
    // A streamed result: a chunked body written on a blocking thread; the work-queue slot is
    // held until the body ends.
    let StreamedReply { envelope, stream } = streamed;
    let ctx = StreamCtx { timeout: state.timeout, abort, stats: Arc::clone(&state.streams) };
    match start(stream, envelope.prefix(), envelope.suffix(), ctx, Some(permit)).await {
        Start::Fail(e) => json_response(envelope.error(e)),
        Start::Data(body) => {
            let mut r = (StatusCode::OK, Body::new(body)).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/"), Some(None));
        assert_eq!(route("/wallet/foo"), Some(Some("foo".into())));
        assert_eq!(route("/wallet/"), Some(Some(String::new())));
        assert_eq!(route("/wallet/my%20w%C3%A9"), Some(Some("my wé".into())));
        assert_eq!(route("/wallet/%zz"), None);
        assert_eq!(route("/wallet/%4"), None);
        assert_eq!(route("/other"), None);
        assert_eq!(route("/wallet"), None);
    }
}
