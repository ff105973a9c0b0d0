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

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::error::{RpcError, codes};
use crate::registry::Registry;

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

/// Handle one request body already authenticated: parse, dispatch, build Core's reply.
pub async fn handle_body(
    registry: &Registry,
    body: &[u8],
    wallet: Option<&str>,
    user: Option<&str>,
) -> HttpReply {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return error_reply(RpcError::parse("Parse error"), Version::V1, None),
    };
    match value {
        Value::Object(obj) => handle_single(registry, obj, wallet, user).await,
        Value::Array(items) => handle_batch(registry, items, wallet, user).await,
        _ => error_reply(RpcError::parse("Top-level object parse error"), Version::V1, None),
    }
}

async fn execute(
    registry: &Registry,
    req: Request,
    wallet: Option<&str>,
    user: Option<&str>,
) -> Reply {
    let outcome = registry
        .call_as(&req.method, req.params, wallet.map(str::to_owned), user.map(str::to_owned))
        .await;
    if let Err(e) = &outcome {
        tracing::debug!(method = %req.method, code = e.code, "RPC error: {}", e.message);
    }
    Reply { version: req.version, outcome, id: req.id }
}

async fn handle_single(
    registry: &Registry,
    obj: Map<String, Value>,
    wallet: Option<&str>,
    user: Option<&str>,
) -> HttpReply {
    let req = match parse_request(Value::Object(obj)) {
        Ok(r) => r,
        Err((e, id, version)) => return error_reply(e, version, id),
    };
    let notification = req.is_notification();
    let reply = execute(registry, req, wallet, user).await;
    if notification {
        return HttpReply { status: 204, body: None };
    }
    match (&reply.outcome, reply.version) {
        (Err(e), Version::V1) => json_reply(http_status_for_error(e.code), &reply),
        _ => json_reply(200, &reply),
    }
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
