//! The method registry: names, parameter names, help texts and async handlers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::watch;

use crate::error::RpcError;
use crate::params::{Params, normalize};
use crate::stream::JsonStream;

/// The boxed future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'static>>;

/// A type-erased method handler.
pub type Handler = Arc<dyn Fn(Params) -> HandlerFuture + Send + Sync + 'static>;

/// The boxed future a streaming handler returns.
pub type StreamHandlerFuture =
    Pin<Box<dyn Future<Output = Result<JsonStream, RpcError>> + Send + 'static>>;

/// A type-erased streaming method handler (see [`Registry::register_stream`]).
pub type StreamHandler = Arc<dyn Fn(Params) -> StreamHandlerFuture + Send + Sync + 'static>;

/// A method's result: a value, or JSON text still to be written.
pub(crate) enum Output {
    /// A result built in memory.
    Value(Value),
    /// A result written while it is sent.
    Stream(JsonStream),
}

/// The result `stop` returns, like Core's "Bitcoin Core stopping".
pub const STOP_MESSAGE: &str = "ResonanceNet server stopping";

/// The declaration of one RPC method: name, help category, parameter names, help text.
#[derive(Debug, Clone)]
pub struct MethodInfo {
    name: String,
    category: String,
    params: Vec<String>,
    help: Option<String>,
    any_params: bool,
}

impl MethodInfo {
    /// A method called `name`, listed under `category` (e.g. `"Blockchain"`) by `help`.
    pub fn new(name: impl Into<String>, category: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            category: category.into(),
            params: Vec::new(),
            help: None,
            any_params: false,
        }
    }

    /// The parameter names, in positional order (used for named calls and arity checks).
    pub fn params<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.params = names.into_iter().map(Into::into).collect();
        self
    }

    /// The help text, Core style: the first line is the usage line (`getblockhash height`),
    /// then a blank line and the description, arguments, result and examples.
    pub fn help(mut self, text: impl Into<String>) -> Self {
        self.help = Some(text.into());
        self
    }

    /// Accept any number of positional parameters (skip Core's arity check).
    pub fn any_params(mut self) -> Self {
        self.any_params = true;
        self
    }

    /// The method's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

struct Method {
    category: String,
    names: Arc<[String]>,
    help: Arc<str>,
    method: Arc<str>,
    any_params: bool,
    kind: Kind,
}

enum Kind {
    Handler(Handler),
    Stream(StreamHandler),
    Help,
    Uptime,
    Stop,
}

/// Why a method could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// A method of that name exists already.
    #[error("RPC method {0} is already registered")]
    Duplicate(String),
    /// The name is empty or contains characters other than `[a-z0-9_]`.
    #[error("invalid RPC method name {0:?}")]
    InvalidName(String),
}

/// A handle that asks the node to shut down (what `stop` uses) and lets it wait for that.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    fn new() -> Self {
        Self { tx: Arc::new(watch::channel(false).0) }
    }

    /// Ask for shutdown. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once shutdown is asked for (at once if it already was).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            // The sender lives in `self.tx`, which outlives every waiter that holds a clone; an
            // error can only mean it was dropped, which we treat as a shutdown.
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    }
}

/// The table of RPC methods the server dispatches to.
///
/// `Registry::new()` holds the built-in `help`, `uptime` and `stop`; the node registers its own
/// methods with [`Registry::register`], wraps the registry in an `Arc` and hands it to
/// [`crate::serve`]. [`Registry::call`] runs a method in-process (tests, the node itself).
pub struct Registry {
    methods: BTreeMap<String, Method>,
    started: Instant,
    shutdown: Shutdown,
    warmup: RwLock<Option<String>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Run a handler's future on its own task: a panic becomes `RPC_INTERNAL_ERROR`.
async fn run_handler<T: Send + 'static>(
    method: &str,
    fut: Pin<Box<dyn Future<Output = Result<T, RpcError>> + Send + 'static>>,
) -> Result<T, RpcError> {
    match tokio::spawn(fut).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => {
            tracing::error!(method, "RPC handler panicked");
            Err(RpcError::internal(format!("internal error while executing {method}")))
        }
        Err(_) => Err(RpcError::internal(format!("{method} was cancelled"))),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Registry {
    /// A registry holding only the built-in methods `help`, `uptime` and `stop`.
    pub fn new() -> Self {
        let mut r = Self {
            methods: BTreeMap::new(),
            started: Instant::now(),
            shutdown: Shutdown::new(),
            warmup: RwLock::new(None),
        };
        r.register_builtins();
        r
    }

    /// Register `handler` for the method described by `info`.
    ///
    /// A handler is any `Fn(Params) -> impl Future<Output = Result<Value, RpcError>>`; it runs
    /// on its own tokio task, so a panic in it becomes `RPC_INTERNAL_ERROR` rather than a dead
    /// connection.
    pub fn register<F, Fut>(&mut self, info: MethodInfo, handler: F) -> Result<(), RegisterError>
    where
        F: Fn(Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |p| Box::pin(handler(p)) as HandlerFuture);
        self.insert(info, Kind::Handler(handler))
    }

    /// Register a synchronous handler (runs on the async worker; keep it quick or use
    /// [`Registry::register`] with `spawn_blocking`).
    pub fn register_sync<F>(&mut self, info: MethodInfo, handler: F) -> Result<(), RegisterError>
    where
        F: Fn(Params) -> Result<Value, RpcError> + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        self.register(info, move |p| {
            let h = Arc::clone(&handler);
            async move { h(p) }
        })
    }

    /// Register a handler whose result is streamed: it returns a [`JsonStream`] that writes the
    /// result's JSON text on a blocking thread while the server sends it in chunks, so a large
    /// result (a block with its transactions) is never held whole in memory. Errors the handler
    /// returns, or that its writer returns before the first chunk went out, are ordinary
    /// JSON-RPC errors. In a batch, and through [`Registry::call`], the result is buffered.
    pub fn register_stream<F, Fut>(
        &mut self,
        info: MethodInfo,
        handler: F,
    ) -> Result<(), RegisterError>
    where
        F: Fn(Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<JsonStream, RpcError>> + Send + 'static,
    {
        let handler: StreamHandler = Arc::new(move |p| Box::pin(handler(p)) as StreamHandlerFuture);
        self.insert(info, Kind::Stream(handler))
    }

    fn insert(&mut self, info: MethodInfo, kind: Kind) -> Result<(), RegisterError> {
        if !valid_name(&info.name) {
            return Err(RegisterError::InvalidName(info.name));
        }
        if self.methods.contains_key(&info.name) {
            return Err(RegisterError::Duplicate(info.name));
        }
        let help = match info.help {
            Some(h) => h,
            None => {
                let mut usage = info.name.clone();
                for p in &info.params {
                    usage.push(' ');
                    usage.push_str(p);
                }
                usage
            }
        };
        let method = Method {
            category: info.category,
            names: info.params.into(),
            help: help.into(),
            method: Arc::from(info.name.as_str()),
            any_params: info.any_params,
            kind,
        };
        self.methods.insert(info.name, method);
        Ok(())
    }

    /// The names of all registered methods, sorted.
    pub fn method_names(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(String::as_str)
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.methods.contains_key(name)
    }

    /// The shutdown handle `stop` triggers.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Resolves when `stop` has been called (or [`Shutdown::trigger`]); the node awaits this.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shutdown.wait()
    }

    /// Seconds since the registry was created (what `uptime` returns).
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Set (`Some(status)`) or clear (`None`) warm-up mode: while set, every call fails with
    /// `RPC_IN_WARMUP` (-28) and the status as message, as Core does while loading.
    pub fn set_warmup(&self, status: Option<String>) {
        match self.warmup.write() {
            Ok(mut w) => *w = status,
            Err(poisoned) => *poisoned.into_inner() = status,
        }
    }

    fn warmup_status(&self) -> Option<String> {
        match self.warmup.read() {
            Ok(w) => w.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Call `method` with `params` (array, object or `null`) in-process, exactly as the server
    /// would: warm-up check, lookup, named-to-positional conversion, Core's arity check, then
    /// the handler on its own task. `wallet` is the `/wallet/<name>` of the request, if any.
    /// A streamed result is written into memory and parsed.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        wallet: Option<String>,
    ) -> Result<Value, RpcError> {
        match self.call_as(method, params, wallet, None).await? {
            Output::Value(v) => Ok(v),
            Output::Stream(s) => s.into_value().await,
        }
    }

    pub(crate) async fn call_as(
        &self,
        method: &str,
        params: Value,
        wallet: Option<String>,
        user: Option<String>,
    ) -> Result<Output, RpcError> {
        if let Some(status) = self.warmup_status() {
            return Err(RpcError::in_warmup(status));
        }
        let Some(m) = self.methods.get(method) else {
            return Err(RpcError::method_not_found());
        };
        let values = normalize(params, &m.names)?;
        let params = Params::from_parts(
            Arc::clone(&m.method),
            Arc::clone(&m.names),
            Arc::clone(&m.help),
            values,
            wallet,
            user,
        );
        if !m.any_params && params.len() > m.names.len() {
            return Err(params.help_error());
        }
        match &m.kind {
            Kind::Handler(h) => run_handler(method, h(params)).await.map(Output::Value),
            Kind::Stream(h) => run_handler(method, h(params)).await.map(Output::Stream),
            Kind::Help => params
                .optional::<String>(0)
                .map(|cmd| Output::Value(Value::String(self.help_text(cmd.as_deref())))),
            Kind::Uptime => Ok(Output::Value(Value::from(self.uptime_secs()))),
            Kind::Stop => {
                tracing::info!("RPC stop requested");
                self.shutdown.trigger();
                Ok(Output::Value(Value::String(STOP_MESSAGE.to_owned())))
            }
        }
    }

    /// The text `help` returns: without a command, the usage line of every method grouped by
    /// category; with one, its full help; an unknown command gives Core's
    /// `help: unknown command: <name>` (as a result, not an error).
    pub fn help_text(&self, command: Option<&str>) -> String {
        if let Some(cmd) = command {
            return match self.methods.get(cmd) {
                Some(m) => m.help.to_string(),
                None => format!("help: unknown command: {cmd}"),
            };
        }
        let mut by_cat: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for (name, m) in &self.methods {
            let usage = m.help.lines().next().unwrap_or(name);
            by_cat.entry(m.category.as_str()).or_default().push((name, usage));
        }
        let mut out = String::new();
        for (cat, mut list) in by_cat {
            list.sort();
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("== {cat} ==\n"));
            for (_, usage) in list {
                out.push_str(usage);
                out.push('\n');
            }
        }
        if out.ends_with('\n') {
            out.pop();
        }
        out
    }

    fn register_builtins(&mut self) {
        let builtins = [
            (
                MethodInfo::new("help", "Control").params(["command"]).help(
                    "help ( \"command\" )\n\nList all commands, or get help for a specified command.\n\n\
                     Arguments:\n1. command    (string, optional, default=all commands) The command to get help on\n\n\
                     Result:\n\"str\"    (string) The help text",
                ),
                Kind::Help,
            ),
            (
                MethodInfo::new("uptime", "Control").help(
                    "uptime\n\nReturns the total uptime of the server.\n\n\
                     Result:\nn    (numeric) The number of seconds that the server has been running\n\n\
                     Examples:\n> rnet-cli uptime",
                ),
                Kind::Uptime,
            ),
            (
                MethodInfo::new("stop", "Control").help(
                    "stop\n\nRequest a graceful shutdown of the ResonanceNet server.\n\n\
                     Result:\n\"str\"    (string) A string with the content 'ResonanceNet server stopping'",
                ),
                Kind::Stop,
            ),
        ];
        for (info, kind) in builtins {
            // The names are valid and the table is empty, so this cannot fail.
            let _ = self.insert(info, kind);
        }
    }
}
