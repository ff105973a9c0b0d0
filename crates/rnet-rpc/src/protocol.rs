//! JSON-RPC 1.0/2.0 request handling with Bitcoin Core's rules (`httprpc.cpp`, `request.cpp`).
//!
//! * 1.0 (no `jsonrpc` key, or `"1.0"`): replies carry both `result` and `error`; an error in a
//!   single request is an HTTP error: 400 for `RPC_INVALID_REQUEST`, 404 for
//!   `RPC_METHOD_NOT_FOUND`, 500 for everything else (parse errors included).
//! * 2.0 (`"jsonrpc": "2.0"`): replies carry `jsonrpc`, and only one of `result`/`error`; method
//!   errors come back with HTTP 200; a request without `id` is a notification and gets 204.
//!   Errors found while reading the request object itself still use the HTTP status above.
//! * Batches (a top-level array) always answer 200 with an array (notifications left out), or
//!   204 when a non-empty batch held only notifications.
//! * A streamed result (a method registered with `Registry::register_stream`) of a single
//!   request is sent as it is written, inside the same envelope and key order as a built one
//!   (see [`StreamedReply`]); inside a batch it is buffered and parsed like any other result. A
//!   notification's streamed result is dropped without being written.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::error::{RpcError, codes};
use crate::registry::{Output, Registry};
use crate::stream::JsonStream;

/// The JSON-RPC dialect of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// JSON-RPC 1.0/1.1 (Core's `V1_LEGACY`).
    V1,
    /// JSON-RPC 2.0.
    V2,
}

/// One reply object, serialised with Core's key order.
pub(crate) struct Reply {
    version: Version,
    outcome: Result<Value, RpcError>,
    id: Option<Value>,
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if self.version == Version::V2 {
            m.serialize_entry("jsonrpc", "2.0")?;
        }
        match (&self.outcome, self.version) {
            (Ok(v), Version::V1) => {
                m.serialize_entry("result", v)?;
                m.serialize_entry("error", &Value::Null)?;
            }
            (Ok(v), Version::V2) => m.serialize_entry("result", v)?,
            (Err(e), Version::V1) => {
                m.serialize_entry("result", &Value::Null)?;
                m.serialize_entry("error", e)?;
            }
            (Err(e), Version::V2) => m.serialize_entry("error", e)?,
        }
        if let Some(id) = &self.id {
            m.serialize_entry("id", id)?;
        }
        m.end()
    }
}

/// A request object after Core's `JSONRPCRequest::parse`.
struct Request {
    id: Option<Value>,
    version: Version,
    method: String,
    params: Value,
}

impl Request {
    fn is_notification(&self) -> bool {
        self.id.is_none() && self.version == Version::V2
    }
}

/// Parse one request object. On failure, returns the error with the id and version read so far
/// (Core reads the id first, then the version, so errors after that carry them).
fn parse_request(v: Value) -> Result<Request, (RpcError, Option<Value>, Version)> {
    let Value::Object(mut obj) = v else {
        return Err((RpcError::invalid_request("Invalid Request object"), None, Version::V1));
    };
    let id = obj.remove("id");
    let version = match obj.get("jsonrpc") {
        None | Some(Value::Null) => Version::V1,
        Some(Value::String(s)) if s == "1.0" => Version::V1,
        Some(Value::String(s)) if s == "2.0" => Version::V2,
        Some(Value::String(_)) => {
            return Err((
                RpcError::invalid_request("JSON-RPC version not supported"),
                id,
                Version::V1,
            ));
        }
        Some(_) => {
            return Err((
                RpcError::invalid_request("jsonrpc field must be a string"),
                id,
                Version::V1,
            ));
        }
    };
    let method = match obj.remove("method") {
        None | Some(Value::Null) => {
            return Err((RpcError::invalid_request("Missing method"), id, version));
        }
        Some(Value::String(s)) => s,
        Some(_) => return Err((RpcError::invalid_request("Method must be a string"), id, version)),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Value::Array(Vec::new()),
        Some(p @ (Value::Array(_) | Value::Object(_))) => p,
        Some(_) => {
            return Err((
                RpcError::invalid_request("Params must be an array or object"),
                id,
                version,
            ));
        }
    };
    Ok(Request { id, version, method, params })
}

/// The HTTP status Core's `JSONErrorReply` uses for an error reply.
pub fn http_status_for_error(code: i32) -> u16 {
    match code {
        codes::RPC_INVALID_REQUEST => 400,
        codes::RPC_METHOD_NOT_FOUND => 404,
        _ => 500,
    }
}

/// What to send back for one HTTP request body.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// JSON body (with Core's trailing newline), or `None` for 204.
    pub body: Option<Vec<u8>>,
}

fn json_reply(status: u16, value: &impl Serialize) -> HttpReply {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            HttpReply { status, body: Some(body) }
        }
        Err(e) => {
            // Only a handler returning something serde cannot write (not possible for `Value`).
            tracing::error!("cannot serialise an RPC reply: {e}");
            let fallback = Reply {
                version: Version::V1,
                outcome: Err(RpcError::internal("cannot serialise the reply")),
                id: None,
            };
            let mut body = serde_json::to_vec(&fallback).unwrap_or_default();
            body.push(b'\n');
            HttpReply { status: 500, body: Some(body) }
        }
    }
}

fn error_reply(e: RpcError, version: Version, id: Option<Value>) -> HttpReply {
    let status = http_status_for_error(e.code);
    json_reply(status, &Reply { version, outcome: Err(e), id })
}

/// A single request whose result is streamed.
pub(crate) struct StreamedReply {
    /// What goes around the result.
    pub envelope: Envelope,
    /// The result's writer.
    pub stream: JsonStream,
}

/// The reply object around a streamed result: HTTP 200 with [`Envelope::prefix`], the
/// result's text, then [`Envelope::suffix`]; byte for byte what a built reply of the same
/// result would be.
pub(crate) struct Envelope {
    version: Version,
    id: Option<Value>,
}

impl Envelope {
    /// The envelope before the result: `{"result":` (1.0) or `{"jsonrpc":"2.0","result":`.
    pub fn prefix(&self) -> Vec<u8> {
        match self.version {
            Version::V1 => br#"{"result":"#.to_vec(),
            Version::V2 => br#"{"jsonrpc":"2.0","result":"#.to_vec(),
        }
    }

    /// The envelope after the result: `,"error":null` (1.0), `,"id":…` when there is an id,
    /// `}` and Core's newline.
    pub fn suffix(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.version == Version::V1 {
            out.extend_from_slice(br#","error":null"#);
        }
        if let Some(id) = &self.id {
            out.extend_from_slice(br#","id":"#);
            // Writing a `Value` into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut out, id);
        }
        out.extend_from_slice(b"}\n");
        out
    }

    /// The reply when the writer failed before anything was sent.
    pub fn error(&self, e: RpcError) -> HttpReply {
        result_error_reply(self.version, self.id.clone(), e)
    }
}

impl StreamedReply {
    /// The whole reply in memory (what [`handle_body`] returns for it).
    async fn buffered(self) -> HttpReply {
        let Self { envelope, stream } = self;
        let written = tokio::task::spawn_blocking(move || stream.into_bytes()).await;
        let text = match written {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => return envelope.error(e),
            Err(_) => {
                return envelope.error(RpcError::internal("the streamed result writer failed"));
            }
        };
        let mut body = envelope.prefix();
        body.extend_from_slice(&text);
        body.extend_from_slice(&envelope.suffix());
        HttpReply { status: 200, body: Some(body) }
    }
}

/// A method's error as a single request's reply: HTTP status by code in 1.0, 200 in 2.0.
fn result_error_reply(version: Version, id: Option<Value>, e: RpcError) -> HttpReply {
    let status = match version {
        Version::V1 => http_status_for_error(e.code),
        Version::V2 => 200,
    };
    json_reply(status, &Reply { version, outcome: Err(e), id })
}

/// What to send for one request body: a reply built in memory, or a streamed one.
pub(crate) enum Handled {
    /// A reply built whole.
    Full(HttpReply),
    /// A single request's streamed result.
    Stream(StreamedReply),
}

/// Handle one request body already authenticated: parse, dispatch, build Core's reply. A
/// streamed result is written into memory here; the server sends it as it is written instead.
pub async fn handle_body(
    registry: &Registry,
    body: &[u8],
    wallet: Option<&str>,
    user: Option<&str>,
) -> HttpReply {
    match handle_request(registry, body, wallet, user).await {
        Handled::Full(reply) => reply,
        Handled::Stream(s) => s.buffered().await,
    }
}

/// [`handle_body`], leaving a single request's streamed result unwritten.
pub(crate) async fn handle_request(
    registry: &Registry,
    body: &[u8],
    wallet: Option<&str>,
    user: Option<&str>,
) -> Handled {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return Handled::Full(error_reply(RpcError::parse("Parse error"), Version::V1, None));
        }
    };
    match value {
        Value::Object(obj) => handle_single(registry, obj, wallet, user).await,
        Value::Array(items) => Handled::Full(handle_batch(registry, items, wallet, user).await),
        _ => Handled::Full(error_reply(
            RpcError::parse("Top-level object parse error"),
            Version::V1,
            None,
        )),
    }
}

async fn dispatch(
    registry: &Registry,
    req: &mut Request,
    wallet: Option<&str>,
    user: Option<&str>,
) -> Result<Output, RpcError> {
    let params = std::mem::take(&mut req.params);
    let started = std::time::Instant::now();
    let outcome = registry
        .call_as(&req.method, params, wallet.map(str::to_owned), user.map(str::to_owned))
        .await;
    // Metrics by method (`rnet_rpc_*`, docs/node.md "Metrics"); names a client made up share
    // one label so they cannot grow the label set.
    let method =
        if registry.contains(&req.method) { req.method.clone() } else { "unknown".to_string() };
    metrics::histogram!("rnet_rpc_duration_seconds", "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("rnet_rpc_requests_total", "method" => method.clone()).increment(1);
    if let Err(e) = &outcome {
        metrics::counter!("rnet_rpc_errors_total", "method" => method).increment(1);
        tracing::debug!(method = %req.method, code = e.code, "RPC error: {}", e.message);
    }
    outcome
}

/// Run a request to a built reply (a streamed result is buffered: batches).
async fn execute(
    registry: &Registry,
    mut req: Request,
    wallet: Option<&str>,
    user: Option<&str>,
) -> Reply {
    let outcome = match dispatch(registry, &mut req, wallet, user).await {
        Ok(Output::Value(v)) => Ok(v),
        Ok(Output::Stream(s)) => s.into_value().await,
        Err(e) => Err(e),
    };
    Reply { version: req.version, outcome, id: req.id }
}

async fn handle_single(
    registry: &Registry,
    obj: Map<String, Value>,
    wallet: Option<&str>,
    user: Option<&str>,
) -> Handled {
    let mut req = match parse_request(Value::Object(obj)) {
        Ok(r) => r,
        Err((e, id, version)) => return Handled::Full(error_reply(e, version, id)),
    };
    let notification = req.is_notification();
    let outcome = dispatch(registry, &mut req, wallet, user).await;
    if notification {
        return Handled::Full(HttpReply { status: 204, body: None });
    }
    let outcome = match outcome {
        Ok(Output::Stream(stream)) => {
            let envelope = Envelope { version: req.version, id: req.id };
            return Handled::Stream(StreamedReply { envelope, stream });
        }
        Ok(Output::Value(v)) => Ok(v),
        Err(e) => Err(e),
    };
    let reply = Reply { version: req.version, outcome, id: req.id };
    Handled::Full(match (&reply.outcome, reply.version) {
        (Err(e), Version::V1) => json_reply(http_status_for_error(e.code), &reply),
        _ => json_reply(200, &reply),
    })
}

async fn handle_batch(
    registry: &Registry,
    items: Vec<Value>,
    wallet: Option<&str>,
    user: Option<&str>,
) -> HttpReply {
    let n = items.len();
    let mut replies = Vec::with_capacity(n);
    for item in items {
        match parse_request(item) {
            Ok(req) => {
                let notification = req.is_notification();
                let reply = execute(registry, req, wallet, user).await;
                if !notification {
                    replies.push(reply);
                }
            }
            Err((e, id, version)) => replies.push(Reply { version, outcome: Err(e), id }),
        }
    }
    if replies.is_empty() && n > 0 {
        return HttpReply { status: 204, body: None };
    }
    json_reply(200, &replies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MethodInfo;
    use serde_json::json;

    fn registry() -> Registry {
        let mut r = Registry::new();
        r.register_sync(MethodInfo::new("getblockcount", "Blockchain"), |_| Ok(json!(42))).unwrap();
        r
    }

    async fn run(body: &str) -> (u16, Option<Value>) {
        let r = registry();
        let reply = handle_body(&r, body.as_bytes(), None, None).await;
        let v = reply.body.map(|b| serde_json::from_slice(&b).unwrap());
        (reply.status, v)
    }

    #[tokio::test]
    async fn core_rules() {
        assert_eq!(
            run(r#"{"method":"getblockcount","id":1}"#).await,
            (200, Some(json!({"result":42,"error":null,"id":1})))
        );
        assert_eq!(
            run(r#"{"jsonrpc":"2.0","method":"getblockcount","id":"a"}"#).await,
            (200, Some(json!({"jsonrpc":"2.0","result":42,"id":"a"})))
        );
        // 1.0 without id: reply without id (not a notification).
        assert_eq!(
            run(r#"{"method":"getblockcount"}"#).await,
            (200, Some(json!({"result":42,"error":null})))
        );
        assert_eq!(run(r#"{"jsonrpc":"2.0","method":"getblockcount"}"#).await, (204, None));
        assert_eq!(run(r#"{"jsonrpc":"2.0","method":"nope"}"#).await, (204, None));
        let (s, v) = run(r#"{"method":"nope","id":1}"#).await;
        assert_eq!((s, v.unwrap()["error"]["code"].clone()), (404, json!(-32601)));
        let (s, v) = run(r#"{"jsonrpc":"2.0","method":"nope","id":1}"#).await;
        assert_eq!(s, 200);
        assert_eq!(
            v.unwrap(),
            json!({"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1})
        );
        assert_eq!(
            run("{").await,
            (500, Some(json!({"result":null,"error":{"code":-32700,"message":"Parse error"}})))
        );
        let (s, v) = run("7").await;
        assert_eq!(
            (s, v.unwrap()["error"]["message"].clone()),
            (500, json!("Top-level object parse error"))
        );
        let (s, v) = run(r#"{"jsonrpc":"3.0","method":"x","id":1}"#).await;
        assert_eq!((s, v.unwrap()["error"]["code"].clone()), (400, json!(-32600)));
        let (s, v) = run(r#"{"jsonrpc":"2.0","id":1}"#).await;
        assert_eq!(
            (s, v.unwrap()),
            (
                400,
                json!({"jsonrpc":"2.0","error":{"code":-32600,"message":"Missing method"},"id":1})
            )
        );
        let (s, v) = run(r#"{"method":"getblockcount","params":5,"id":1}"#).await;
        assert_eq!(
            (s, v.unwrap()["error"]["message"].clone()),
            (400, json!("Params must be an array or object"))
        );
        // Too many parameters: Core's -1 with the help text, HTTP 500 in 1.0.
        let (s, v) = run(r#"{"method":"getblockcount","params":[1],"id":1}"#).await;
        assert_eq!((s, v.unwrap()["error"]["code"].clone()), (500, json!(-1)));
    }

    #[tokio::test]
    async fn streamed_results_have_the_built_envelope_byte_for_byte() {
        let result = json!({"b": [1, 2.5, "x\"y"], "a": null, "c": {"d": true}});
        let mut r = registry();
        let built = result.clone();
        r.register_sync(MethodInfo::new("built", "Test"), move |_| Ok(built.clone())).unwrap();
        let streamed = result.clone();
        r.register_stream(MethodInfo::new("streamed", "Test"), move |_| {
            let v = streamed.clone();
            async move {
                Ok(JsonStream::new(move |w| {
                    serde_json::to_writer(w, &v).map_err(std::io::Error::other)?;
                    Ok(())
                }))
            }
        })
        .unwrap();
        for envelope in [
            r#""id":1"#,
            r#""id":"a\"b""#,
            r#""id":null"#,
            r#""id":[1,{"x":2}]"#,
            r#""jsonrpc":"2.0","id":1"#,
            r#""jsonrpc":"2.0","id":"z""#,
            r#""jsonrpc":"1.0","id":1"#,
            r#""jsonrpc":"1.0""#,
            r#""x":0"#,
        ] {
            let body = |m: &str| format!(r#"{{"method":"{m}",{envelope}}}"#);
            let a = handle_body(&r, body("built").as_bytes(), None, None).await;
            let b = handle_body(&r, body("streamed").as_bytes(), None, None).await;
            assert_eq!(a.status, 200, "{envelope}");
            assert_eq!(a, b, "{envelope}");
            let Handled::Stream(s) =
                handle_request(&r, body("streamed").as_bytes(), None, None).await
            else {
                panic!("a single streamed request is not buffered ({envelope})");
            };
            let mut direct = s.envelope.prefix();
            direct.extend_from_slice(&s.stream.into_bytes().unwrap());
            direct.extend_from_slice(&s.envelope.suffix());
            assert_eq!(Some(direct), a.body, "{envelope}");
        }
        // A notification's streamed result is not written.
        let body = r#"{"jsonrpc":"2.0","method":"streamed"}"#;
        assert_eq!(handle_body(&r, body.as_bytes(), None, None).await.status, 204);
    }

    #[tokio::test]
    async fn batches() {
        let (s, v) = run(r#"[{"jsonrpc":"2.0","method":"getblockcount","id":1},
                {"method":"nope","id":2},
                {"jsonrpc":"2.0","method":"getblockcount"},
                5]"#)
        .await;
        assert_eq!(s, 200);
        assert_eq!(
            v.unwrap(),
            json!([
                {"jsonrpc":"2.0","result":42,"id":1},
                {"result":null,"error":{"code":-32601,"message":"Method not found"},"id":2},
                {"result":null,"error":{"code":-32600,"message":"Invalid Request object"}}
            ])
        );
        assert_eq!(run("[]").await, (200, Some(json!([]))));
        assert_eq!(run(r#"[{"jsonrpc":"2.0","method":"getblockcount"}]"#).await, (204, None));
    }
}
