//! The OpenAI-compatible HTTP server.
//!
//! Endpoints: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/completions`,
//! `POST /v1/chat/completions` (with `stream: true` as server-sent events ending with
//! `data: [DONE]`). Tokens are bytes: `max_tokens` and the `usage` counts are bytes, and a prompt
//! may also be given as an array of byte values. Errors are OpenAI-shaped:
//! `{"error": {"message", "type", "param", "code"}}`.
//!
//! Embedding (what the node does): build a [`ServerState`] from the tip checkpoint, mount
//! [`router`] or call [`serve`], and call [`ServerState::reload`] when a new block brings a new
//! checkpoint. Requests in flight finish on the model they started with; new requests see the
//! new one. Each request has its own recurrent [`Session`](crate::engine::Session), so concurrent
//! requests never share state.
//!
//! Isolation from an embedding process: prefill and decoding run on the server's own rayon pool
//! (`compute_threads`), never on the global pool a node's miner trains with, and never on an
//! async worker; requests, connections, body size and read time are all bounded
//! ([`ServerConfig`]); a request whose client leaves stops its work within one prefill block.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rnet_model::{Checkpoint, Model};
use serde_json::{Map, Value, json};
use thiserror::Error;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::chat::{CHAT_STOP, ChatMessage, Role, render_chat};
use crate::connection::{ConnHandle, LimitedListener, Timeouts};
use crate::decoder::DeviceSession;
use crate::engine::{Engine, EngineError, Precision};
use crate::generate::{GenerateOutput, GenerateParams, generate_cancellable, generate_on};
use crate::request_body::{BodyError, json_values_bound, read_body};
use crate::sampling::{DEFAULT_PENALTY_WINDOW, MAX_PENALTY_WINDOW, SamplingParams, random_seed};

/// The model id served unless configured otherwise.
pub const DEFAULT_MODEL_ID: &str = "resonancenet-v5";

/// Default listening address of `rnet-util serve` and `rnetd -inference`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9556";

/// Most stop sequences per request.
pub const MAX_STOP_SEQUENCES: usize = 8;

/// Longest stop sequence (bytes).
pub const MAX_STOP_BYTES: usize = 256;

/// Most chat messages per request.
pub const MAX_MESSAGES: usize = 1024;

/// Longest piece of client input quoted in an error message (characters); longer input is cut
/// and marked with `…`, so an error never echoes a huge field back.
pub const MAX_QUOTED_CHARS: usize = 200;

/// JSON values a request may hold beyond `max_prompt_bytes` (messages, stop sequences, logit
/// bias and the other fields of the largest valid request fit well within it).
pub const JSON_VALUES_SLACK: usize = 65_536;

/// Limits and options of the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The id clients pass as `model` (listed by `/v1/models`).
    pub model_id: String,
    /// Weight precision the engine is built with.
    pub precision: Precision,
    /// When set, every request must carry `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Longest prompt (bytes; for chat, the rendered conversation).
    pub max_prompt_bytes: usize,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_limit: usize,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: usize,
    /// Generations running at once; further requests wait up to `queue_timeout`, then get 503.
    pub max_sessions: usize,
    /// How long a request waits for a free session.
    pub queue_timeout: Duration,
    /// Largest request body (bytes); larger bodies get 413.
    pub max_body_bytes: usize,
    /// Requests handled at once (reading their body, waiting for a session, or generating);
    /// further requests get 503 with `Retry-After` at once. Bounds the memory held by request
    /// bodies to about `max_requests × max_body_bytes`.
    pub max_requests: usize,
    /// Open connections at once; further clients wait in the accept backlog.
    pub max_connections: usize,
    /// Threads of the server's own compute pool (prefill and decoding run there, never on the
    /// embedding process's global rayon pool or its async workers).
    pub compute_threads: usize,
    /// Threads one generation's decode step may use ([`Engine::with_threads`]); `None`: as many
    /// as `compute_threads`. The decode pool serves one generation at a time: while several
    /// generations run, each decodes on its own thread.
    pub decode_threads: Option<usize>,
    /// A connection with no request in progress is closed when no byte of a next request
    /// arrives within this time (keep-alive timeout).
    pub idle_timeout: Duration,
    /// A request head must be complete within this time of its first byte.
    pub header_timeout: Duration,
    /// A request body must be complete within this time of its head (else 408).
    pub body_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            model_id: DEFAULT_MODEL_ID.to_string(),
            precision: Precision::Int8,
            api_key: None,
            max_prompt_bytes: 16 * 1024,
            max_tokens_limit: 4096,
            default_max_tokens: 256,
            max_sessions: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4),
            queue_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            max_requests: 32,
            max_connections: 256,
            compute_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4),
            decode_threads: None,
            idle_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// The model being served.
#[derive(Debug)]
pub struct LoadedModel {
    /// The id clients use.
    pub id: String,
    /// Height of the checkpoint.
    pub height: u64,
    /// Parameters of the checkpoint.
    pub parameters: usize,
    /// The CPU engine (its shape and precision; it decodes unless the model is on a device).
    pub engine: Engine,
    /// The device decoders when the server decodes on a device ([`ServerState::on_device`]).
    pub device: Option<DevicePool>,
    /// When it was loaded (Unix seconds): the `created` of `/v1/models`.
    pub created: u64,
}

/// The decoders of a model served on a device: one per concurrent generation, each holding its
/// own copy of the weights and its recurrent state on the device, reset between requests.
#[derive(Debug)]
pub struct DevicePool {
    /// The device and adapter.
    pub name: String,
    free: std::sync::Mutex<Vec<DeviceSession>>,
}

impl DevicePool {
    /// `sessions` decoders of `model` on `device`, each opened separately.
    fn open(device: rnet_gpu::Device, model: &Model, sessions: usize) -> Result<Self, String> {
        let mut free = Vec::with_capacity(sessions);
        for _ in 0..sessions.max(1) {
            let decoder = device
                .open()
                .map_err(|e| e.to_string())?
                .decoder(model)
                .map_err(|e| e.to_string())?;
            free.push(DeviceSession::new(decoder));
        }
        let name = free.first().map(|d| d.device_name()).unwrap_or_default();
        Ok(Self { name, free: std::sync::Mutex::new(free) })
    }

    fn take(&self) -> Option<DeviceSession> {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put(&self, session: DeviceSession) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(session);
    }
}

impl LoadedModel {
    fn fingerprint(&self) -> String {
        match &self.device {
            Some(_) => format!("rnet-h{}-f32-device", self.height),
            None => format!("rnet-h{}-{}", self.height, self.engine.precision()),
        }
    }

    /// One generation on this model: on a fresh CPU session, or on a free device session (the
    /// server's session limit equals the number of device decoders, so one is free for every
    /// admitted request).
    pub fn generate(
        &self,
        prompt: &[u8],
        params: &GenerateParams,
        cancelled: impl Fn() -> bool,
        on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<GenerateOutput, EngineError> {
        let Some(pool) = &self.device else {
            let mut session = self.engine.new_session();
            return generate_cancellable(
                &self.engine,
                &mut session,
                prompt,
                params,
                cancelled,
                on_text,
            );
        };
        let mut session =
            pool.take().ok_or_else(|| EngineError::Device("no free device session".into()))?;
        let out = session
            .reset()
            .and_then(|()| generate_on(&mut session, prompt, params, cancelled, on_text));
        pool.put(session);
        out
    }

    fn json(&self) -> Value {
        let c = self.engine.config();
        json!({
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": "resonancenet",
            "height": self.height,
            "parameters": self.parameters,
            "d_model": c.d_model,
            "n_layers": c.n_layers,
            "precision": if self.device.is_some() { "f32" } else { self.engine.precision().as_str() },
            "device": self.device.as_ref().map_or("cpu", |d| d.name.as_str()),
        })
    }
}

/// Errors starting the server.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The decoding device could not be opened or could not hold the model.
    #[error("device {device}: {reason}")]
    Device {
        /// The device asked for.
        device: rnet_gpu::Device,
        /// Why.
        reason: String,
    },
}

/// Shared state of the server: configuration, the served model (swappable), and the session
/// limit.
#[derive(Debug)]
pub struct ServerState {
    config: ServerConfig,
    /// Where generations decode: `None` on the CPU engine, else on this `rnet_gpu` device.
    device: Option<rnet_gpu::Device>,
    model: RwLock<Arc<LoadedModel>>,
    sessions: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    /// The compute pool (`None` only if the OS refused to start its threads: then the caller's
    /// thread and pool are used).
    pool: Option<rayon::ThreadPool>,
    prompt_bytes_fed: AtomicU64,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl ServerState {
    /// Serves `checkpoint` under `config`. Builds the engine (CPU work proportional to the model).
    pub fn new(config: ServerConfig, checkpoint: &Checkpoint) -> Arc<Self> {
        Self::from_model(config, &checkpoint.model, checkpoint.height)
    }

    /// Serves `model` (at `height`) under `config`.
    pub fn from_model(config: ServerConfig, model: &Model, height: u64) -> Arc<Self> {
        let pool = Self::compute_pool(&config);
        let loaded = Self::load(&config, pool.as_ref(), model, height);
        Self::assemble(config, None, pool, loaded)
    }

    /// Serves `checkpoint` under `config`, decoding on `device` (`rnet_gpu`; `Device::Cpu` is its
    /// CPU reference backend): one device decoder per session (`max_sessions`, each with its own
    /// weights on the device). A device that is missing or cannot hold the model is an error,
    /// never a silent CPU fallback.
    pub fn on_device(
        config: ServerConfig,
        checkpoint: &Checkpoint,
        device: rnet_gpu::Device,
    ) -> Result<Arc<Self>, ServerError> {
        let pool = Self::compute_pool(&config);
        let mut loaded = Self::load(&config, pool.as_ref(), &checkpoint.model, checkpoint.height);
        let sessions = config.max_sessions.clamp(1, Semaphore::MAX_PERMITS);
        loaded.device = Some(
            DevicePool::open(device, &checkpoint.model, sessions)
                .map_err(|reason| ServerError::Device { device, reason })?,
        );
        Ok(Self::assemble(config, Some(device), pool, loaded))
    }

    fn compute_pool(config: &ServerConfig) -> Option<rayon::ThreadPool> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(config.compute_threads.max(1))
            .thread_name(|i| format!("rnet-infer-{i}"))
            .build()
            .map_err(|e| {
                tracing::warn!("inference compute pool not started ({e}); sharing the caller's")
            })
            .ok()
    }

    fn assemble(
        config: ServerConfig,
        device: Option<rnet_gpu::Device>,
        pool: Option<rayon::ThreadPool>,
        loaded: LoadedModel,
    ) -> Arc<Self> {
        let permits = config.max_sessions.clamp(1, Semaphore::MAX_PERMITS);
        let requests = config.max_requests.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            device,
            model: RwLock::new(Arc::new(loaded)),
            sessions: Arc::new(Semaphore::new(permits)),
            requests: Arc::new(Semaphore::new(requests)),
            pool,
            prompt_bytes_fed: AtomicU64::new(0),
            config,
        })
    }

    /// Runs `f` on the compute pool (blocking the caller until it is done).
    fn compute<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    fn load(
        config: &ServerConfig,
        pool: Option<&rayon::ThreadPool>,
        model: &Model,
        height: u64,
    ) -> LoadedModel {
        let t0 = Instant::now();
        let threads = config.decode_threads.unwrap_or(config.compute_threads).max(1);
        let build = || Engine::new(model, config.precision).with_threads(threads);
        let engine = match pool {
            Some(pool) => pool.install(build),
            None => build(),
        };
        tracing::info!(
            height,
            parameters = model.param_count(),
            precision = %config.precision,
            ms = t0.elapsed().as_millis() as u64,
            "inference model loaded"
        );
        LoadedModel {
            id: config.model_id.clone(),
            height,
            parameters: model.param_count(),
            engine,
            device: None,
            created: unix_now(),
        }
    }

    /// Replaces the served model with `checkpoint` (e.g. the new tip after a block). Builds the
    /// new engine before taking the lock, so requests are never blocked by the rebuild; call it
    /// from a blocking context (`tokio::task::spawn_blocking`) in async code.
    pub fn reload(&self, checkpoint: &Checkpoint) {
        self.reload_model(&checkpoint.model, checkpoint.height);
    }

    /// [`ServerState::reload`] from a model and its height.
    pub fn reload_model(&self, model: &Model, height: u64) {
        let mut loaded = Self::load(&self.config, self.pool.as_ref(), model, height);
        if let Some(device) = self.device {
            let sessions = self.config.max_sessions.clamp(1, Semaphore::MAX_PERMITS);
            match DevicePool::open(device, model, sessions) {
                Ok(pool) => loaded.device = Some(pool),
                Err(reason) => {
                    tracing::error!(
                        height,
                        "device {device} cannot hold the new model ({reason}); still serving \
                         the previous one"
                    );
                    return;
                }
            }
        }
        let loaded = Arc::new(loaded);
        match self.model.write() {
            Ok(mut g) => *g = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
    }

    /// The model new requests are served with.
    pub fn model(&self) -> Arc<LoadedModel> {
        match self.model.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Sessions free right now.
    pub fn free_sessions(&self) -> usize {
        self.sessions.available_permits()
    }

    /// Requests being handled right now (admitted and not yet answered in full).
    pub fn active_requests(&self) -> usize {
        self.config.max_requests.clamp(1, Semaphore::MAX_PERMITS)
            - self.requests.available_permits()
    }

    /// Prompt bytes fed to the model by finished or abandoned generations since start (an
    /// abandoned prefill counts only what it fed before it stopped).
    pub fn prompt_bytes_fed(&self) -> u64 {
        self.prompt_bytes_fed.load(Ordering::Relaxed)
    }
}

/// The HTTP routes, ready to be served or nested into a bigger router.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), admit))
        .with_state(state)
}

/// Admission: at most `max_requests` requests at once (503 with `Retry-After` beyond), and the
/// connection is marked busy (no idle/head timeout) while the request is handled. Both marks
/// last until the response body has been produced (a stream's end, for SSE).
async fn admit(State(state): State<Arc<ServerState>>, req: Request, next: Next) -> Response {
    let activity = req.extensions().get::<ConnectInfo<ConnHandle>>().map(|c| c.0.begin());
    let Ok(permit) = state.requests.clone().try_acquire_owned() else {
        return overloaded("The server has too many requests in progress; please retry shortly.")
            .into_response();
    };
    let response = next.run(req).await;
    if response.body().size_hint().exact().is_some() {
        // Fully built already: the request is done once it is handed to the connection.
        return response;
    }
    let guard = (permit, activity);
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = &guard;
            chunk
        }))
    })
}

/// Binds `addr` and serves until the process ends.
pub async fn serve(addr: SocketAddr, state: Arc<ServerState>) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    serve_listener(listener, state, std::future::pending()).await
}

/// Serves on an already bound listener until `shutdown` completes (then finishes the requests in
/// flight).
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, model = %state.config.model_id, "OpenAI-compatible server listening");
    }
    let c = &state.config;
    let timeouts = Timeouts { idle: c.idle_timeout, header: c.header_timeout };
    let listener = LimitedListener::new(listener, c.max_connections, timeouts);
    let app = router(state).into_make_service_with_connect_info::<ConnHandle>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// Runs the server on its own multi-threaded runtime until Ctrl-C (for command-line tools
/// without a runtime of their own). `on_listening` is called with the bound address.
pub fn run_blocking(
    addr: SocketAddr,
    state: Arc<ServerState>,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        on_listening(listener.local_addr()?);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        };
        serve_listener(listener, state, shutdown).await
    })
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An OpenAI-shaped error response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// `invalid_request_error`, `authentication_error` or `server_error`.
    pub kind: &'static str,
    /// The request parameter at fault.
    pub param: Option<String>,
    /// A machine-readable code.
    pub code: Option<&'static str>,
}

impl ApiError {
    fn invalid(
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&'static str>,
    ) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code,
        }
    }

    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, &self.body());
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `input` cut to [`MAX_QUOTED_CHARS`] characters (with `…` when cut), for error messages.
fn quote(input: &str) -> String {
    match input.char_indices().nth(MAX_QUOTED_CHARS) {
        None => input.to_string(),
        Some((end, _)) => format!("{}…", &input[..end]),
    }
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::invalid(
        format!("Unknown request URL: {method} {}.", quote(uri.path())),
        None,
        Some("unknown_url"),
    )
    .with_status(StatusCode::NOT_FOUND)
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::invalid(
        format!("Method {method} is not allowed for {}.", quote(uri.path())),
        None,
        Some("method_not_allowed"),
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

fn authorize(state: &ServerState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.config.api_key else { return Ok(()) };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes()));
    if ok {
        return Ok(());
    }
    let message = if given.is_none() {
        "You didn't provide an API key. Provide it in an Authorization header (Authorization: Bearer YOUR_KEY)."
    } else {
        "Incorrect API key provided."
    };
    Err(ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: message.to_string(),
        kind: "invalid_request_error",
        param: None,
        code: Some("invalid_api_key"),
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------------------------
// Models

async fn list_models(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    let m = state.model();
    json_response(StatusCode::OK, &json!({"object": "list", "data": [m.json()]}))
}

async fn get_model(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    let m = state.model();
    if id != m.id {
        return unknown_model(&id).into_response();
    }
    json_response(StatusCode::OK, &m.json())
}

fn unknown_model(id: &str) -> ApiError {
    ApiError::invalid(
        format!("The model `{}` does not exist or you do not have access to it.", quote(id)),
        Some("model"),
        Some("model_not_found"),
    )
    .with_status(StatusCode::NOT_FOUND)
}

// ---------------------------------------------------------------------------------------------
// Request parsing

/// The fields of a JSON request object with typed, OpenAI-style errors.
struct Fields<'a>(&'a Map<String, Value>);

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            type_name(got)
        ),
        Some(param),
        Some("invalid_type"),
    )
}

fn out_of_range(param: &str, message: String) -> ApiError {
    ApiError::invalid(message, Some(param), Some("invalid_value"))
}

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn f32(&self, name: &str) -> Result<Option<f32>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64().map(|v| v as f32)),
            Some(v) => Err(wrong_type(name, "a number", v)),
        }
    }

    fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) => Ok(Some(v)),
                None if n.as_i64().is_some() => Err(out_of_range(
                    name,
                    format!("Invalid '{name}': {n} is below the minimum value 0."),
                )),
                None => Err(wrong_type(name, "an integer", &Value::Number(n.clone()))),
            },
            Some(v) => Err(wrong_type(name, "an integer", v)),
        }
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(wrong_type(name, "a boolean", v)),
        }
    }

    fn str(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(wrong_type(name, "a string", v)),
        }
    }
}

async fn read_json(
    state: &ServerState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, ApiError> {
    authorize(state, headers)?;
    let limit = state.config.max_body_bytes;
    let too_large = || {
        ApiError::invalid(
            format!("Request body too large: the limit is {limit} bytes."),
            None,
            Some("request_too_large"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let timeout = state.config.body_timeout;
    let bytes = read_body(body, declared, limit, timeout).await.map_err(|e| match e {
        BodyError::TooLarge => too_large(),
        BodyError::Malformed => ApiError::invalid(
            "The request body could not be read: its transfer encoding is malformed or it ended early.",
            None,
            Some("malformed_body"),
        ),
        BodyError::Timeout => ApiError::invalid(
            format!("The request body did not arrive within {} ms.", timeout.as_millis()),
            None,
            Some("request_timeout"),
        )
        .with_status(StatusCode::REQUEST_TIMEOUT),
    })?;
    let budget = state.config.max_prompt_bytes.saturating_add(JSON_VALUES_SLACK);
    if json_values_bound(&bytes) > budget {
        return Err(ApiError::invalid(
            format!(
                "The request body holds more than {budget} JSON values; no valid request needs that many."
            ),
            None,
            Some("request_too_complex"),
        ));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(
            format!("We could not parse the JSON body of your request: {e}. The API expects a JSON object."),
            None,
            None,
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::invalid(
            format!("The request body must be a JSON object, not {}.", type_name(&other)),
            None,
            None,
        )),
    }
}

/// What both endpoints share: model, sampling, limits, streaming.
struct Common {
    model: Arc<LoadedModel>,
    params: GenerateParams,
    stream: bool,
    include_usage: bool,
}

fn parse_stop(f: &Fields<'_>) -> Result<Vec<Vec<u8>>, ApiError> {
    let list: Vec<&str> = match f.get("stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            for (i, v) in a.iter().enumerate() {
                match v {
                    Value::String(s) => out.push(s.as_str()),
                    other => return Err(wrong_type(&format!("stop[{i}]"), "a string", other)),
                }
            }
            out
        }
        Some(v) => return Err(wrong_type("stop", "a string or an array of strings", v)),
    };
    if list.len() > MAX_STOP_SEQUENCES {
        return Err(out_of_range(
            "stop",
            format!("Invalid 'stop': at most {MAX_STOP_SEQUENCES} stop sequences are allowed."),
        ));
    }
    if list.iter().any(|s| s.len() > MAX_STOP_BYTES) {
        return Err(out_of_range(
            "stop",
            format!("Invalid 'stop': a stop sequence may be at most {MAX_STOP_BYTES} bytes."),
        ));
    }
    Ok(list.into_iter().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()).collect())
}

fn parse_logit_bias(f: &Fields<'_>) -> Result<Vec<(u8, f32)>, ApiError> {
    let Some(v) = f.get("logit_bias") else { return Ok(Vec::new()) };
    let Value::Object(map) = v else { return Err(wrong_type("logit_bias", "an object", v)) };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let Ok(byte) = k.trim().parse::<u8>() else {
            return Err(out_of_range(
                "logit_bias",
                format!(
                    "Invalid 'logit_bias': key {:?} is not a byte value 0..=255 (tokens are bytes).",
                    quote(k)
                ),
            ));
        };
        let Some(b) = v.as_f64() else {
            return Err(wrong_type(&format!("logit_bias.{}", quote(k)), "a number", v));
        };
        out.push((byte, b as f32));
    }
    Ok(out)
}

fn parse_common(state: &ServerState, f: &Fields<'_>, chat: bool) -> Result<Common, ApiError> {
    let model = state.model();
    match f.get("model") {
        None => {}
        Some(Value::String(id)) if *id == model.id => {}
        Some(Value::String(id)) => return Err(unknown_model(id)),
        Some(v) => return Err(wrong_type("model", "a string", v)),
    }
    let limit = state.config.max_tokens_limit;
    let mut max_tokens = f.u64("max_tokens")?;
    if chat && let Some(m) = f.u64("max_completion_tokens")? {
        max_tokens = Some(m);
    }
    let max_tokens = match max_tokens {
        None => state.config.default_max_tokens.min(limit),
        Some(m) if m > limit as u64 => {
            return Err(out_of_range(
                "max_tokens",
                format!(
                    "Invalid 'max_tokens': {m} is greater than the maximum of {limit} (tokens are bytes)."
                ),
            ));
        }
        Some(m) => m as usize,
    };
    if let Some(n) = f.u64("n")?
        && n != 1
    {
        return Err(out_of_range("n", format!("Invalid 'n': only n = 1 is supported, got {n}.")));
    }
    let defaults = SamplingParams::default();
    let top_k = f.u64("top_k")?.unwrap_or(0);
    let penalty_window = f.u64("penalty_window")?.unwrap_or(DEFAULT_PENALTY_WINDOW as u64);
    let seed = match f.get("seed") {
        None => None,
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Some(u),
            (None, Some(i)) => Some(i as u64),
            _ => return Err(wrong_type("seed", "an integer", &Value::Number(n.clone()))),
        },
        Some(v) => return Err(wrong_type("seed", "an integer", v)),
    };
    let sampling = SamplingParams {
        temperature: f.f32("temperature")?.unwrap_or(defaults.temperature),
        top_k: top_k.min(u32::MAX as u64) as usize,
        top_p: f.f32("top_p")?.unwrap_or(defaults.top_p),
        repetition_penalty: f.f32("repetition_penalty")?.unwrap_or(defaults.repetition_penalty),
        presence_penalty: f.f32("presence_penalty")?.unwrap_or(0.0),
        frequency_penalty: f.f32("frequency_penalty")?.unwrap_or(0.0),
        penalty_window: penalty_window.min(MAX_PENALTY_WINDOW as u64 + 1) as usize,
        logit_bias: parse_logit_bias(f)?,
        seed,
    };
    sampling.validate().map_err(|e| {
        out_of_range(e.param, format!("Invalid '{}': {} (got {}).", e.param, e.expected, e.value))
    })?;
    let mut stop = parse_stop(f)?;
    if chat {
        stop.insert(0, CHAT_STOP.as_bytes().to_vec());
    }
    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.get("stream_options") {
        None => false,
        Some(Value::Object(o)) => Fields(o).bool("include_usage")?.unwrap_or(false),
        Some(v) => return Err(wrong_type("stream_options", "an object", v)),
    };
    for unsupported in ["suffix", "logprobs", "tools", "functions"] {
        match f.get(unsupported) {
            None | Some(Value::Bool(false)) => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    format!("'{unsupported}' is not supported by this server."),
                    Some(unsupported),
                    Some("unsupported_parameter"),
                ));
            }
        }
    }
    Ok(Common {
        model,
        params: GenerateParams { max_tokens, sampling, stop },
        stream,
        include_usage,
    })
}

fn prompt_too_long(state: &ServerState, got: usize, param: &str) -> ApiError {
    ApiError::invalid(
        format!(
            "This server's maximum prompt length is {} bytes. However, your {param} is {got} bytes (tokens are bytes).",
            state.config.max_prompt_bytes
        ),
        Some(param),
        Some("context_length_exceeded"),
    )
}

/// `prompt`: a string, an array of one string, an array of byte values, or an array of one such
/// array.
fn parse_prompt(f: &Fields<'_>) -> Result<Vec<u8>, ApiError> {
    fn bytes_of(a: &[Value], param: &str) -> Result<Vec<u8>, ApiError> {
        a.iter()
            .enumerate()
            .map(|(i, v)| match v.as_u64() {
                Some(b) if b <= 255 => Ok(b as u8),
                _ => Err(out_of_range(
                    param,
                    format!("Invalid '{param}[{i}]': token ids are byte values 0..=255."),
                )),
            })
            .collect()
    }
    match f.0.get("prompt") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Array(a)) if a.is_empty() => Ok(Vec::new()),
        Some(Value::Array(a)) => match &a[0] {
            Value::String(s) if a.len() == 1 => Ok(s.as_bytes().to_vec()),
            Value::Array(inner) if a.len() == 1 => bytes_of(inner, "prompt[0]"),
            Value::Number(_) => bytes_of(a, "prompt"),
            Value::String(_) | Value::Array(_) => Err(out_of_range(
                "prompt",
                "Invalid 'prompt': only one prompt per request is supported.".to_string(),
            )),
            other => Err(wrong_type(
                "prompt",
                "a string, an array of strings or an array of byte values",
                other,
            )),
        },
        Some(v) => Err(wrong_type("prompt", "a string or an array", v)),
    }
}

fn parse_messages(f: &Fields<'_>) -> Result<Vec<ChatMessage>, ApiError> {
    let Some(v) = f.0.get("messages") else {
        return Err(ApiError::invalid(
            "Missing required parameter: 'messages'.",
            Some("messages"),
            Some("missing_required_parameter"),
        ));
    };
    let Value::Array(list) = v else { return Err(wrong_type("messages", "an array", v)) };
    if list.is_empty() {
        return Err(out_of_range(
            "messages",
            "Invalid 'messages': empty array. Expected at least one message.".into(),
        ));
    }
    if list.len() > MAX_MESSAGES {
        return Err(out_of_range(
            "messages",
            format!("Invalid 'messages': at most {MAX_MESSAGES} messages."),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let Value::Object(obj) = m else {
            return Err(wrong_type(&format!("messages[{i}]"), "an object", m));
        };
        let mf = Fields(obj);
        let role_param = format!("messages[{i}].role");
        let Some(role_name) = mf.str("role").map_err(|_| {
            wrong_type(&role_param, "a string", obj.get("role").unwrap_or(&Value::Null))
        })?
        else {
            return Err(ApiError::invalid(
                format!("Missing required parameter: '{role_param}'."),
                Some(&role_param),
                Some("missing_required_parameter"),
            ));
        };
        let Some(role) = Role::parse(role_name) else {
            return Err(out_of_range(
                &role_param,
                format!(
                    "Invalid value for '{role_param}': {:?}; supported roles are 'system', 'developer', 'user' and 'assistant'.",
                    quote(role_name)
                ),
            ));
        };
        let content_param = format!("messages[{i}].content");
        let content = match obj.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut s = String::new();
                for (j, p) in parts.iter().enumerate() {
                    let text = p
                        .as_object()
                        .filter(|o| o.get("type").and_then(Value::as_str) == Some("text"))
                        .and_then(|o| o.get("text"))
                        .and_then(Value::as_str);
                    match text {
                        Some(t) => s.push_str(t),
                        None => {
                            return Err(ApiError::invalid(
                                format!(
                                    "Invalid '{content_param}[{j}]': only text content parts ({{\"type\": \"text\", \"text\": ...}}) are supported."
                                ),
                                Some(&format!("{content_param}[{j}]")),
                                Some("invalid_value"),
                            ));
                        }
                    }
                }
                s
            }
            Some(v) => {
                return Err(wrong_type(&content_param, "a string or an array of content parts", v));
            }
        };
        out.push(ChatMessage { role, content });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Generation

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn new_id(prefix: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:012x}{n:06x}", random_seed() & 0xffff_ffff_ffff)
}

/// Sets the flag when dropped: a request whose client went away stops its generation.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// 503 `overloaded` (sent with `Retry-After`).
fn overloaded(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: message.into(),
        kind: "server_error",
        param: None,
        code: Some("overloaded"),
    }
}

async fn acquire(state: &ServerState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(state.config.queue_timeout, state.sessions.clone().acquire_owned())
        .await
    {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(overloaded("The server is busy with other requests; please retry shortly.")),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("internal error: {e}"),
        kind: "server_error",
        param: None,
        code: None,
    }
}

fn usage(out: &GenerateOutput) -> Value {
    json!({
        "prompt_tokens": out.prompt_bytes,
        "completion_tokens": out.completion_bytes,
        "total_tokens": out.prompt_bytes + out.completion_bytes,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completion,
    Chat,
}

/// A parsed request, ready to run.
struct Job {
    kind: Kind,
    common: Common,
    prompt: Vec<u8>,
    echo: bool,
}

async fn completions(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match prepare(&state, &headers, body, Kind::Completion).await {
        Ok(job) => run(state, job).await,
        Err(e) => e.into_response(),
    }
}

async fn chat_completions(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match prepare(&state, &headers, body, Kind::Chat).await {
        Ok(job) => run(state, job).await,
        Err(e) => e.into_response(),
    }
}

async fn prepare(
    state: &ServerState,
    headers: &HeaderMap,
    body: Body,
    kind: Kind,
) -> Result<Job, ApiError> {
    let map = read_json(state, headers, body).await?;
    let f = Fields(&map);
    let common = parse_common(state, &f, kind == Kind::Chat)?;
    let (prompt, echo) = match kind {
        Kind::Completion => {
            let prompt = parse_prompt(&f)?;
            if prompt.len() > state.config.max_prompt_bytes {
                return Err(prompt_too_long(state, prompt.len(), "prompt"));
            }
            (prompt, f.bool("echo")?.unwrap_or(false))
        }
        Kind::Chat => {
            let messages = parse_messages(&f)?;
            let prompt = render_chat(&messages).into_bytes();
            if prompt.len() > state.config.max_prompt_bytes {
                return Err(prompt_too_long(state, prompt.len(), "messages"));
            }
            (prompt, false)
        }
    };
    Ok(Job { kind, common, prompt, echo })
}

async fn run(state: Arc<ServerState>, job: Job) -> Response {
    let permit = match acquire(&state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if job.common.stream {
        stream(state, job, permit).await
    } else {
        complete(state, job, permit).await
    }
}

async fn complete(
    state: Arc<ServerState>,
    job: Job,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Response {
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let model = job.common.model.clone();
    let params = job.common.params.clone();
    let prompt = job.prompt.clone();
    let t0 = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let out = state.compute(|| {
            let cancelled = || cancel.load(Ordering::Relaxed);
            model.generate(&prompt, &params, cancelled, |_| ControlFlow::Continue(()))
        });
        if let Ok(out) = &out {
            state.prompt_bytes_fed.fetch_add(out.prompt_bytes as u64, Ordering::Relaxed);
        }
        out
    })
    .await;
    let out = match result {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return internal(e).into_response(),
        Err(e) => return internal(e).into_response(),
    };
    log_done(&job, &out, t0);
    let m = &job.common.model;
    let created = unix_now();
    let body = match job.kind {
        Kind::Completion => {
            let text = if job.echo {
                let mut t = String::from_utf8_lossy(&job.prompt).into_owned();
                t.push_str(&out.text);
                t
            } else {
                out.text.clone()
            };
            json!({
                "id": new_id("cmpl"),
                "object": "text_completion",
                "created": created,
                "model": m.id,
                "system_fingerprint": m.fingerprint(),
                "choices": [{
                    "text": text,
                    "index": 0,
                    "logprobs": null,
                    "finish_reason": out.finish_reason.as_str(),
                }],
                "usage": usage(&out),
            })
        }
        Kind::Chat => json!({
            "id": new_id("chatcmpl"),
            "object": "chat.completion",
            "created": created,
            "model": m.id,
            "system_fingerprint": m.fingerprint(),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": out.text},
                "logprobs": null,
                "finish_reason": out.finish_reason.as_str(),
            }],
            "usage": usage(&out),
        }),
    };
    json_response(StatusCode::OK, &body)
}

fn log_done(job: &Job, out: &GenerateOutput, t0: Instant) {
    let secs = t0.elapsed().as_secs_f64();
    tracing::info!(
        endpoint = if job.kind == Kind::Chat { "chat" } else { "completions" },
        stream = job.common.stream,
        prompt_bytes = out.prompt_bytes,
        completion_bytes = out.completion_bytes,
        finish = out.finish_reason.as_str(),
        ms = (secs * 1000.0) as u64,
        bytes_per_s = (out.completion_bytes as f64 / secs.max(1e-9)) as u64,
        "generation done"
    );
}

async fn stream(
    state: Arc<ServerState>,
    job: Job,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Response {
    let (tx, rx) = mpsc::channel::<String>(64);
    let m = job.common.model.clone();
    let id = new_id(if job.kind == Kind::Chat { "chatcmpl" } else { "cmpl" });
    let created = unix_now();
    let fingerprint = m.fingerprint();
    let (object, kind) = match job.kind {
        Kind::Completion => ("text_completion", Kind::Completion),
        Kind::Chat => ("chat.completion.chunk", Kind::Chat),
    };
    let chunk = move |text: Option<&str>, role: bool, finish: Option<&str>| -> Value {
        let choice = match kind {
            Kind::Completion => json!({
                "text": text.unwrap_or(""),
                "index": 0,
                "logprobs": null,
                "finish_reason": finish,
            }),
            Kind::Chat => {
                let mut delta = Map::new();
                if role {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(t) = text {
                    delta.insert("content".into(), json!(t));
                }
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
        };
        json!({
            "id": id,
            "object": object,
            "created": created,
            "model": m.id,
            "system_fingerprint": fingerprint,
            "choices": [choice],
        })
    };
    let t0 = Instant::now();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let send = |v: &Value| tx.blocking_send(v.to_string()).is_ok();
        let mut alive = true;
        match job.kind {
            Kind::Chat => alive = send(&chunk(Some(""), true, None)),
            Kind::Completion if job.echo => {
                alive = send(&chunk(Some(&String::from_utf8_lossy(&job.prompt)), false, None));
            }
            Kind::Completion => {}
        }
        if !alive {
            return;
        }
        let model = &job.common.model;
        let result = state.compute(|| {
            let (prompt, params) = (&job.prompt, &job.common.params);
            model.generate(
                prompt,
                params,
                || tx.is_closed(),
                |text| {
                    if send(&chunk(Some(text), false, None)) {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    }
                },
            )
        });
        if let Ok(out) = &result {
            state.prompt_bytes_fed.fetch_add(out.prompt_bytes as u64, Ordering::Relaxed);
        }
        match result {
            Ok(out) => {
                log_done(&job, &out, t0);
                if out.finish_reason == crate::generate::FinishReason::Cancelled {
                    return;
                }
                let mut last = chunk(None, false, Some(out.finish_reason.as_str()));
                if kind == Kind::Completion {
                    last["choices"][0]["text"] = json!("");
                }
                if job.common.include_usage {
                    last["usage"] = Value::Null;
                    if !send(&last) {
                        return;
                    }
                    let mut u = chunk(None, false, None);
                    u["choices"] = json!([]);
                    u["usage"] = usage(&out);
                    if !send(&u) {
                        return;
                    }
                } else {
                    // Not in OpenAI's stream by default, but clients ignore it and it is useful.
                    last["usage"] = usage(&out);
                    if !send(&last) {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = send(&internal(e).body());
            }
        }
        let _ = tx.blocking_send("[DONE]".to_string());
    });
    let events =
        ReceiverStream::new(rx).map(|data| Ok::<Event, Infallible>(Event::default().data(data)));
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}
