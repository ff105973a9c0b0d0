//! A small blocking JSON-RPC client over HTTP/1.1 keep-alive (std `TcpStream`, no HTTP crate).
//!
//! Used by `rnet-cli`, the miner and functional tests. It sends JSON-RPC 2.0 requests and also
//! understands 1.0 replies, so it works against Bitcoin-Core-style servers of either kind.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use thiserror::Error;

use crate::auth::{basic_auth_header, read_cookie};
use crate::error::RpcError;

/// bitcoin-cli's default `-rpcclienttimeout` (900 s).
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(900);
/// The largest response the client reads (1 GiB).
pub const MAX_RESPONSE: u64 = 1 << 30;
const MAX_HEADER_LINE: u64 = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// How the client authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No `Authorization` header.
    None,
    /// Read `user:password` from a cookie file (re-read after a 401, e.g. after a node restart).
    Cookie(PathBuf),
    /// A fixed user name and password.
    UserPass(String, String),
}

/// Why a call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The URL could not be understood.
    #[error("invalid RPC URL {0:?}")]
    InvalidUrl(String),
    /// No connection could be made.
    #[error("could not connect to the server {addr}: {source}")]
    Connect {
        /// `host:port` that was tried.
        addr: String,
        /// The last error seen.
        source: io::Error,
    },
    /// The cookie file could not be read.
    #[error("could not read the RPC cookie file {path}: {source}")]
    Cookie {
        /// The cookie file's path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The server refused the credentials (HTTP 401).
    #[error("authorization failed: incorrect rpcuser or rpcpassword")]
    Unauthorized,
    /// Sending the request or reading the reply failed (timeouts included).
    #[error("RPC transport error: {0}")]
    Io(#[from] io::Error),
    /// The server answered with an HTTP error and no JSON-RPC error object.
    #[error("server returned HTTP error {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Http {
        /// The HTTP status.
        status: u16,
        /// The body, as text.
        body: String,
    },
    /// The reply was not a JSON-RPC reply.
    #[error("invalid RPC response: {0}")]
    InvalidResponse(String),
    /// The server's JSON-RPC error.
    #[error("{message} (code {code})")]
    Rpc {
        /// Core's error code.
        code: i32,
        /// The server's message.
        message: String,
    },
}

impl ClientError {
    /// The JSON-RPC error code, for [`ClientError::Rpc`].
    pub fn rpc_code(&self) -> Option<i32> {
        match self {
            ClientError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the server could not be reached at all (not running, wrong port).
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }
}

impl From<RpcError> for ClientError {
    fn from(e: RpcError) -> Self {
        ClientError::Rpc { code: e.code, message: e.message }
    }
}

/// A parsed `http://host:port/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, ClientError> {
    let bad = || ClientError::InvalidUrl(url.to_owned());
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.contains("://") {
        return Err(bad());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        (h, after.strip_prefix(':').ok_or_else(bad)?)
    } else {
        authority.rsplit_once(':').ok_or_else(bad)?
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(bad());
    }
    Ok(Url { host: host.to_owned(), port, path: path.to_owned() })
}

/// A blocking JSON-RPC client. It keeps one HTTP/1.1 connection alive between calls and is
/// safe to share between threads (calls are serialised).
#[derive(Debug)]
pub struct RpcClient {
    url: Url,
    auth: Auth,
    timeout: Duration,
    max_response: u64,
    next_id: AtomicU64,
    conn: Mutex<Option<BufReader<TcpStream>>>,
    auth_header: Mutex<Option<String>>,
}

struct HttpResponse {
    status: u16,
    body: Vec<u8>,
    keep_alive: bool,
}

impl RpcClient {
    /// A client for `url` (`http://host:port[/path]`, or `host:port`; path `/wallet/<name>`
    /// selects a wallet). Nothing is connected or read until the first call.
    pub fn new(url: &str, auth: Auth) -> Result<Self, ClientError> {
        Ok(Self {
            url: parse_url(url)?,
            auth,
            timeout: DEFAULT_CLIENT_TIMEOUT,
            max_response: MAX_RESPONSE,
            next_id: AtomicU64::new(1),
            conn: Mutex::new(None),
            auth_header: Mutex::new(None),
        })
    }

    /// Set the connect/read/write timeout (default 900 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Set the largest response accepted (default 1 GiB).
    pub fn with_max_response(mut self, bytes: u64) -> Self {
        self.max_response = bytes;
        self
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}:{}{}", self.url.host, self.url.port, self.url.path)
    }

    /// Call `method` with `params` (an array, an object of named parameters, or `null`).
    pub fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let params = if params.is_null() { json!([]) } else { params };
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let body =
            serde_json::to_vec(&req).map_err(|e| ClientError::InvalidResponse(e.to_string()))?;
        let resp = self.post(&body)?;
        let value = parse_reply_body(&resp)?;
        reply_to_result(value).map_err(ClientError::from)
    }

    /// [`RpcClient::call`] and deserialise the result.
    pub fn call_as<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, ClientError> {
        let v = self.call(method, params)?;
        serde_json::from_value(v).map_err(|e| ClientError::InvalidResponse(e.to_string()))
    }

    /// Send several calls in one batch; the results come back in the order of `calls`.
    pub fn batch(
        &self,
        calls: &[(&str, Value)],
    ) -> Result<Vec<Result<Value, RpcError>>, ClientError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.next_id.fetch_add(calls.len() as u64, Ordering::Relaxed);
        let reqs: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (m, p))| {
                let p = if p.is_null() { json!([]) } else { p.clone() };
                json!({"jsonrpc": "2.0", "id": first + i as u64, "method": m, "params": p})
            })
            .collect();
        let body =
            serde_json::to_vec(&reqs).map_err(|e| ClientError::InvalidResponse(e.to_string()))?;
        let resp = self.post(&body)?;
        let Value::Array(items) = parse_reply_body(&resp)? else {
            return Err(ClientError::InvalidResponse("batch reply is not an array".into()));
        };
        let mut out: Vec<Option<Result<Value, RpcError>>> = vec![None; calls.len()];
        for item in items {
            let idx = item
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| id.checked_sub(first))
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < calls.len())
                .ok_or_else(|| {
                    ClientError::InvalidResponse("batch reply with an unknown id".into())
                })?;
            out[idx] = Some(reply_to_result(item));
        }
        out.into_iter()
            .map(|r| {
                r.ok_or_else(|| {
                    ClientError::InvalidResponse("batch reply is missing an entry".into())
                })
            })
            .collect()
    }

    fn current_auth_header(&self, refresh: bool) -> Result<Option<String>, ClientError> {
        let mut cached = self.auth_header.lock().unwrap_or_else(|p| p.into_inner());
        if cached.is_none() || refresh {
            *cached = match &self.auth {
                Auth::None => None,
                Auth::UserPass(u, p) => Some(basic_auth_header(u, p)),
                Auth::Cookie(path) => {
                    let (u, p) = read_cookie(path)
                        .map_err(|source| ClientError::Cookie { path: path.clone(), source })?;
                    Some(basic_auth_header(&u, &p))
                }
            };
        }
        Ok(cached.clone())
    }

    /// POST `body`, retrying once on a stale keep-alive connection and once after a 401 with a
    /// changed cookie.
    fn post(&self, body: &[u8]) -> Result<HttpResponse, ClientError> {
        let header = self.current_auth_header(false)?;
        let resp = self.post_with(body, header.as_deref())?;
        if resp.status == 401 {
            if let Auth::Cookie(_) = self.auth {
                let fresh = self.current_auth_header(true)?;
                if fresh != header {
                    return self.post_with(body, fresh.as_deref());
                }
            }
        }
        Ok(resp)
    }

    fn post_with(&self, body: &[u8], auth: Option<&str>) -> Result<HttpResponse, ClientError> {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.url.path,
            self.url.host,
            self.url.port,
            body.len()
        );
        if let Some(a) = auth {
            head.push_str("Authorization: ");
            head.push_str(a);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");

        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // A reused connection may have been closed by the server while idle: if it fails before
        // any byte of the reply arrived, the request was not processed; reconnect once.
        if let Some(mut conn) = guard.take() {
            match exchange(&mut conn, head.as_bytes(), body, self.max_response) {
                Ok(resp) => {
                    if resp.keep_alive {
                        *guard = Some(conn);
                    }
                    return Ok(resp);
                }
                Err(Exchange::BeforeReply(_)) => {}
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
        let mut conn = BufReader::new(self.connect()?);
        match exchange(&mut conn, head.as_bytes(), body, self.max_response) {
            Ok(resp) => {
                if resp.keep_alive {
                    *guard = Some(conn);
                }
                Ok(resp)
            }
            Err(Exchange::BeforeReply(e)) => Err(ClientError::Io(e)),
            Err(Exchange::Failed(e)) => Err(e),
        }
    }

    fn connect(&self) -> Result<TcpStream, ClientError> {
        let addr_text = format!("{}:{}", self.url.host, self.url.port);
        let addrs: Vec<SocketAddr> = (self.url.host.as_str(), self.url.port)
            .to_socket_addrs()
            .map_err(|source| ClientError::Connect { addr: addr_text.clone(), source })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host name resolved to no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeout))?;
                    s.set_write_timeout(Some(self.timeout))?;
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(ClientError::Connect { addr: addr_text, source: last })
    }
}

enum Exchange {
    /// Failed before any byte of the reply: safe to retry on a fresh connection.
    BeforeReply(io::Error),
    Failed(ClientError),
}

fn exchange(
    conn: &mut BufReader<TcpStream>,
    head: &[u8],
    body: &[u8],
    max_response: u64,
) -> Result<HttpResponse, Exchange> {
    let stream = conn.get_mut();
    stream.write_all(head).map_err(Exchange::BeforeReply)?;
    stream.write_all(body).map_err(Exchange::BeforeReply)?;
    stream.flush().map_err(Exchange::BeforeReply)?;
    let status_line = read_line(conn).map_err(Exchange::BeforeReply)?;
    if status_line.is_empty() {
        return Err(Exchange::BeforeReply(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        )));
    }
    read_response(conn, &status_line, max_response).map_err(Exchange::Failed)
}

fn invalid(msg: impl Into<String>) -> ClientError {
    ClientError::InvalidResponse(msg.into())
}

/// One CRLF-terminated line without its terminator (empty at EOF).
fn read_line(r: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(MAX_HEADER_LINE).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(String::new());
    }
    if buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "HTTP header line too long or truncated",
        ));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    String::from_utf8(buf)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "HTTP header is not UTF-8"))
}

fn read_response(
    r: &mut BufReader<TcpStream>,
    status_line: &str,
    max_response: u64,
) -> Result<HttpResponse, ClientError> {
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| invalid(format!("bad HTTP status line {status_line:?}")))?;
    let mut keep_alive = version == "HTTP/1.1";
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut count = 0;
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(invalid("too many HTTP headers"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid(format!("bad HTTP header {line:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                content_length = Some(value.parse().map_err(|_| invalid("bad Content-Length"))?);
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    keep_alive = false;
                } else if v.contains("keep-alive") {
                    keep_alive = true;
                }
            }
            _ => {}
        }
    }
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if chunked {
        read_chunked(r, max_response)?
    } else if let Some(len) = content_length {
        if len > max_response {
            return Err(invalid(format!("response of {len} bytes exceeds the limit")));
        }
        let mut body = Vec::new();
        r.by_ref().take(len).read_to_end(&mut body)?;
        if body.len() as u64 != len {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated HTTP body",
            )));
        }
        body
    } else {
        keep_alive = false;
        let mut body = Vec::new();
        r.by_ref().take(max_response + 1).read_to_end(&mut body)?;
        if body.len() as u64 > max_response {
            return Err(invalid("response exceeds the limit"));
        }
        body
    };
    Ok(HttpResponse { status, body, keep_alive })
}

fn read_chunked(r: &mut BufReader<TcpStream>, max_response: u64) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(r)?.is_empty() {}
            return Ok(body);
        }
        if body.len() as u64 + size > max_response {
            return Err(invalid("response exceeds the limit"));
        }
        let before = body.len();
        r.by_ref().take(size).read_to_end(&mut body)?;
        if (body.len() - before) as u64 != size {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated chunk",
            )));
        }
        if !read_line(r)?.is_empty() {
            return Err(invalid("missing CRLF after chunk"));
        }
    }
}

/// Interpret an HTTP response as Core's clients do: 401 is an auth failure; a JSON body is the
/// reply even on 400/404/500 (1.0 servers); other statuses are HTTP errors.
fn parse_reply_body(resp: &HttpResponse) -> Result<Value, ClientError> {
    if resp.status == 401 {
        return Err(ClientError::Unauthorized);
    }
    let parsed: Option<Value> = serde_json::from_slice(&resp.body).ok();
    match parsed {
        Some(v @ (Value::Object(_) | Value::Array(_))) => Ok(v),
        _ if resp.status == 204 => Err(invalid("the server sent no reply (204)")),
        _ if resp.status != 200 => Err(ClientError::Http {
            status: resp.status,
            body: String::from_utf8_lossy(&resp.body).trim().chars().take(1000).collect(),
        }),
        _ => Err(invalid("the reply is not a JSON object")),
    }
}

/// `{"result": …}` → `Ok`, `{"error": {code, message}}` → `Err`.
fn reply_to_result(reply: Value) -> Result<Value, RpcError> {
    let Value::Object(mut obj) = reply else {
        return Err(RpcError::parse("reply is not a JSON object"));
    };
    match obj.remove("error") {
        None | Some(Value::Null) => Ok(obj.remove("result").unwrap_or(Value::Null)),
        Some(err) => {
            let code = err
                .get("code")
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(-1);
            let message = match err.get("message") {
                Some(Value::String(s)) => s.clone(),
                _ => err.to_string(),
            };
            Err(RpcError::new(code, message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:9554").unwrap();
        assert_eq!(u, Url { host: "127.0.0.1".into(), port: 9554, path: "/".into() });
        let u = parse_url("localhost:1/wallet/a%20b").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("localhost", 1, "/wallet/a%20b"));
        let u = parse_url("http://[::1]:29554/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 29554));
        for bad in
            ["https://x:1", "http://x", "http://x:99999", "http://:1", "http://[::1]/", "a b:1"]
        {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replies() {
        assert_eq!(reply_to_result(json!({"result": 5, "error": null, "id": 1})), Ok(json!(5)));
        assert_eq!(
            reply_to_result(json!({"jsonrpc": "2.0", "result": null, "id": 1})),
            Ok(Value::Null)
        );
        assert_eq!(
            reply_to_result(json!({"error": {"code": -8, "message": "bad"}})),
            Err(RpcError::new(-8, "bad"))
        );
        assert_eq!(reply_to_result(json!({"error": "weird"})), Err(RpcError::new(-1, "\"weird\"")));
    }
}
