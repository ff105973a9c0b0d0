//! The RPC server over real HTTP on loopback: Core's JSON-RPC rules, statuses and auth.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rnet_rpc::{
    Auth, ClientError, MethodInfo, Registry, RpcClient, RpcConfig, RpcError, RpcServer,
    RunningServer, basic_auth_header, read_cookie,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A fresh empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rnet-rpc-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Harness {
    server: RunningServer,
    registry: Arc<Registry>,
    auth: String,
    gate: Arc<Notify>,
    _dir: TempDir,
}

fn registry(gate: Arc<Notify>) -> Registry {
    let mut r = Registry::new();
    r.register_sync(
        MethodInfo::new("getblockcount", "Blockchain")
            .help("getblockcount\n\nReturns the height of the most-work chain."),
        |_| Ok(json!(42)),
    )
    .unwrap();
    r.register(
        MethodInfo::new("echo", "Util")
            .params(["a", "b", "c"])
            .help("echo a ( b c )\n\nEchoes its arguments."),
        |p| async move {
            let a: i64 = p.required("a")?;
            let b: Option<String> = p.optional("b")?;
            let c: bool = p.optional_or(2, false)?;
            Ok(json!({"a": a, "b": b, "c": c}))
        },
    )
    .unwrap();
    r.register_sync(MethodInfo::new("whichwallet", "Wallet"), |p| Ok(json!(p.wallet()))).unwrap();
    r.register_sync(MethodInfo::new("whoami", "Util"), |p| Ok(json!(p.auth_user()))).unwrap();
    r.register_sync(MethodInfo::new("fail", "Util"), |_| {
        Err(RpcError::invalid_parameter("Block height out of range"))
    })
    .unwrap();
    r.register_sync(MethodInfo::new("boom", "Util"), |p| {
        // A handler bug must not take the server down.
        let v: Vec<u8> = Vec::new();
        Ok(json!(v[p.len() + 3]))
    })
    .unwrap();
    r.register(MethodInfo::new("wait", "Util"), move |_| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            Ok(json!("released"))
        }
    })
    .unwrap();
    r
}

async fn start_with(f: impl FnOnce(&mut RpcConfig)) -> Harness {
    let dir = TempDir::new();
    let gate = Arc::new(Notify::new());
    let reg = Arc::new(registry(Arc::clone(&gate)));
    let mut config = RpcConfig::localhost(0, &dir.0);
    config.auth_failure_delay = Duration::from_millis(10);
    f(&mut config);
    let server = RpcServer::bind(config, Arc::clone(&reg)).await.unwrap();
    let (user, pass) = read_cookie(server.cookie_path()).unwrap();
    let auth = basic_auth_header(&user, &pass);
    let server = server.spawn(reg.stopped());
    Harness { server, registry: reg, auth, gate, _dir: dir }
}

async fn start() -> Harness {
    start_with(|_| {}).await
}

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One raw HTTP/1.1 request on a fresh connection (`Connection: close`).
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // A server may reject before reading the body (413); ignore errors writing it.
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> HttpResponse {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    HttpResponse { status, headers, body: buf[end + 4..].to_vec() }
}

impl Harness {
    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    async fn post(&self, body: &str) -> HttpResponse {
        raw(self.addr(), "POST", "/", Some(&self.auth), body.as_bytes()).await
    }
}

#[tokio::test]
async fn jsonrpc_1_and_2_success() {
    let h = start().await;
    let r = h.post(r#"{"method":"getblockcount","params":[],"id":"x"}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"result": 42, "error": null, "id": "x"}));
    assert!(r.body.ends_with(b"\n"));
    // Core's key order for 1.0 replies.
    assert_eq!(String::from_utf8_lossy(&r.body), "{\"result\":42,\"error\":null,\"id\":\"x\"}\n");

    let r = h.post(r#"{"jsonrpc":"1.0","method":"getblockcount","id":1}"#).await;
    assert_eq!(r.json(), json!({"result": 42, "error": null, "id": 1}));

    let r = h.post(r#"{"jsonrpc":"2.0","method":"getblockcount","id":7}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(String::from_utf8_lossy(&r.body), "{\"jsonrpc\":\"2.0\",\"result\":42,\"id\":7}\n");
}

#[tokio::test]
async fn batch_mixed_and_notifications() {
    let h = start().await;
    let r = h
        .post(
            r#"[{"jsonrpc":"2.0","method":"getblockcount","id":1},
                {"jsonrpc":"2.0","method":"nosuch","id":2},
                {"method":"fail","id":3},
                {"jsonrpc":"2.0","method":"getblockcount"},
                {"jsonrpc":"2.0","method":"echo","params":{"a":"str"},"id":4}]"#,
        )
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 4, "the notification gets no entry: {v}");
    assert_eq!(arr[0], json!({"jsonrpc":"2.0","result":42,"id":1}));
    assert_eq!(arr[1]["error"]["code"], json!(-32601));
    assert_eq!(
        arr[2],
        json!({"result":null,"error":{"code":-8,"message":"Block height out of range"},"id":3})
    );
    assert_eq!(arr[3]["error"]["code"], json!(-3));

    // A single 2.0 notification: executed, 204 with no body.
    let r = h.post(r#"{"jsonrpc":"2.0","method":"getblockcount"}"#).await;
    assert_eq!((r.status, r.body.len()), (204, 0));
    // All-notification batch: 204. Empty batch: 200 [].
    let r = h.post(r#"[{"jsonrpc":"2.0","method":"getblockcount"}]"#).await;
    assert_eq!(r.status, 204);
    let r = h.post("[]").await;
    assert_eq!((r.status, r.json()), (200, json!([])));
}

#[tokio::test]
async fn malformed_and_unknown() {
    let h = start().await;
    // Core: parse errors are HTTP 500 with -32700 (JSONErrorReply maps only -32600/-32601).
    let r = h.post(r#"{"method": "getblockcount", "#).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        json!({"result": null, "error": {"code": -32700, "message": "Parse error"}})
    );
    let r = h.post("\"just a string\"").await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (500, json!(-32700)));

    // Unknown method: 404 in 1.0, 200 in 2.0.
    let r = h.post(r#"{"method":"nosuch","id":1}"#).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"result":null,"error":{"code":-32601,"message":"Method not found"},"id":1})
    );
    let r = h.post(r#"{"jsonrpc":"2.0","method":"nosuch","id":1}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1})
    );

    // Invalid request objects: 400.
    let r = h.post(r#"{"id":1}"#).await;
    assert_eq!((r.status, r.json()["error"]["message"].clone()), (400, json!("Missing method")));
    let r = h.post(r#"{"method":5,"id":1}"#).await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32600)));

    // A handler error in 1.0: HTTP 500 with the code.
    let r = h.post(r#"{"method":"fail","id":1}"#).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"], json!({"code":-8,"message":"Block height out of range"}));
}

#[tokio::test]
async fn params_positional_named_and_errors() {
    let h = start().await;
    let call = |body: &'static str| h.post(body);
    let r = call(r#"{"jsonrpc":"2.0","method":"echo","params":[1,"x",true],"id":1}"#).await;
    assert_eq!(r.json()["result"], json!({"a":1,"b":"x","c":true}));
    let r = call(r#"{"jsonrpc":"2.0","method":"echo","params":{"c":true,"a":5},"id":1}"#).await;
    assert_eq!(r.json()["result"], json!({"a":5,"b":null,"c":true}));
    let r = call(r#"{"jsonrpc":"2.0","method":"echo","params":{"args":[9],"b":"y"},"id":1}"#).await;
    assert_eq!(r.json()["result"], json!({"a":9,"b":"y","c":false}));

    // Wrong type: -3 (HTTP 500 in 1.0).
    let r = call(r#"{"method":"echo","params":["notanumber"],"id":1}"#).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["code"], json!(-3));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("a (position 1)"));
    // Missing required parameter: Core's -1 with the help text.
    let r = call(r#"{"jsonrpc":"2.0","method":"echo","params":[],"id":1}"#).await;
    assert_eq!(
        r.json()["error"],
        json!({"code":-1,"message":"echo a ( b c )\n\nEchoes its arguments."})
    );
    // Too many: the same.
    let r = call(r#"{"jsonrpc":"2.0","method":"echo","params":[1,"b",true,4],"id":1}"#).await;
    assert_eq!(r.json()["error"]["code"], json!(-1));
    // Unknown named parameter: -8.
    let r = call(r#"{"jsonrpc":"2.0","method":"echo","params":{"a":1,"zz":2},"id":1}"#).await;
    assert_eq!(r.json()["error"], json!({"code":-8,"message":"Unknown named parameter zz"}));
    // Params of the wrong shape: -32600 / 400.
    let r = call(r#"{"method":"echo","params":"1","id":1}"#).await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32600)));
}

#[tokio::test]
async fn auth_rules() {
    let h = start_with(|c| c.user_pass = Some(("alice".into(), "s3cret".into()))).await;
    let body = br#"{"method":"whoami","id":1}"#;
    // No Authorization header: 401, Core's WWW-Authenticate, empty body.
    let r = raw(h.addr(), "POST", "/", None, body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"jsonrpc\""));
    assert!(r.body.is_empty());
    // Wrong password, wrong scheme, garbage.
    for bad in [
        basic_auth_header("alice", "wrong"),
        basic_auth_header("__cookie__", "0"),
        "Bearer x".into(),
    ] {
        let r = raw(h.addr(), "POST", "/", Some(&bad), body).await;
        assert_eq!(r.status, 401, "{bad}");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"jsonrpc\""));
    }
    // Cookie and user/password both work.
    let r = raw(h.addr(), "POST", "/", Some(&h.auth), body).await;
    assert_eq!(r.json()["result"], json!("__cookie__"));
    let r = raw(h.addr(), "POST", "/", Some(&basic_auth_header("alice", "s3cret")), body).await;
    assert_eq!(r.json()["result"], json!("alice"));

    // The cookie file: __cookie__:<64 hex>, owner-only.
    let text = std::fs::read_to_string(h.server.cookie_path()).unwrap();
    let (user, pass) = text.split_once(':').unwrap();
    assert_eq!(user, "__cookie__");
    assert_eq!(pass.len(), 64);
    assert!(pass.bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.server.cookie_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn http_level_rules() {
    let h = start_with(|c| c.max_body = 1024).await;
    // Non-POST: 405 (before auth, as Core).
    let r = raw(h.addr(), "GET", "/", None, b"").await;
    assert_eq!(r.status, 405);
    assert_eq!(String::from_utf8_lossy(&r.body), "JSONRPC server handles only POST requests");
    // Unknown path: 404.
    let r = raw(h.addr(), "POST", "/rest/chaininfo.json", Some(&h.auth), b"{}").await;
    assert_eq!(r.status, 404);
    // Oversize body: 413, by Content-Length...
    let big = format!(r#"{{"method":"echo","params":["{}"],"id":1}}"#, "x".repeat(2000));
    let r = raw(h.addr(), "POST", "/", Some(&h.auth), big.as_bytes()).await;
    assert_eq!(r.status, 413);
    // ...and with a chunked body that never declares its length.
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        h.auth
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..3 {
        let _ = s.write_all(format!("200\r\n{}\r\n", "y".repeat(0x200)).as_bytes()).await;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    assert_eq!(parse_response(&buf).status, 413);
    // A body just under the limit is fine.
    let ok = format!(r#"{{"method":"getblockcount","params":[],"id":"{}"}}"#, "z".repeat(900));
    assert_eq!(raw(h.addr(), "POST", "/", Some(&h.auth), ok.as_bytes()).await.status, 200);
}

#[tokio::test]
async fn wallet_path_reaches_handlers() {
    let h = start().await;
    let body = br#"{"method":"whichwallet","id":1}"#;
    let r = raw(h.addr(), "POST", "/wallet/foo", Some(&h.auth), body).await;
    assert_eq!(r.json()["result"], json!("foo"));
    let r = raw(h.addr(), "POST", "/wallet/my%20wallet", Some(&h.auth), body).await;
    assert_eq!(r.json()["result"], json!("my wallet"));
    let r = raw(h.addr(), "POST", "/", Some(&h.auth), body).await;
    assert_eq!(r.json()["result"], Value::Null);
}

#[tokio::test]
async fn builtins_help_uptime() {
    let h = start().await;
    let r = h.post(r#"{"jsonrpc":"2.0","method":"help","id":1}"#).await;
    let text = r.json()["result"].as_str().unwrap().to_owned();
    assert!(text.starts_with("== Blockchain ==\ngetblockcount\n"), "{text}");
    assert!(text.contains("== Control ==\nhelp ( \"command\" )\nstop\nuptime"), "{text}");
    let r = h.post(r#"{"jsonrpc":"2.0","method":"help","params":["echo"],"id":1}"#).await;
    assert_eq!(r.json()["result"], json!("echo a ( b c )\n\nEchoes its arguments."));
    let r = h.post(r#"{"jsonrpc":"2.0","method":"help","params":["nope"],"id":1}"#).await;
    assert_eq!(r.json()["result"], json!("help: unknown command: nope"));
    let r = h.post(r#"{"jsonrpc":"2.0","method":"uptime","id":1}"#).await;
    assert!(r.json()["result"].as_u64().is_some());
}

#[tokio::test]
async fn handler_panic_is_internal_error() {
    let h = start().await;
    let r = h.post(r#"{"jsonrpc":"2.0","method":"boom","id":1}"#).await;
    assert_eq!(r.json()["error"]["code"], json!(-32603));
    // The server is still alive.
    assert_eq!(h.post(r#"{"method":"getblockcount","id":1}"#).await.status, 200);
}

#[tokio::test]
async fn warmup_gives_minus_28() {
    let h = start().await;
    h.registry.set_warmup(Some("Loading block index…".into()));
    let r = h.post(r#"{"method":"getblockcount","id":1}"#).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"], json!({"code":-28,"message":"Loading block index…"}));
    h.registry.set_warmup(None);
    assert_eq!(h.post(r#"{"method":"getblockcount","id":1}"#).await.status, 200);
}

#[tokio::test]
async fn work_queue_full_is_503() {
    let h = start_with(|c| c.work_queue = 1).await;
    let addr = h.addr();
    let auth = h.auth.clone();
    let slow = tokio::spawn(async move {
        raw(addr, "POST", "/", Some(&auth), br#"{"method":"wait","id":1}"#).await
    });
    // Wait until the slow request holds the only slot.
    let mut got = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        got = h.post(r#"{"method":"getblockcount","id":1}"#).await.status;
        if got == 503 {
            break;
        }
    }
    assert_eq!(got, 503);
    h.gate.notify_one();
    assert_eq!(slow.await.unwrap().json()["result"], json!("released"));
    assert_eq!(h.post(r#"{"method":"getblockcount","id":1}"#).await.status, 200);
}

#[tokio::test]
async fn stop_shuts_down_and_removes_cookie() {
    let h = start().await;
    let cookie = h.server.cookie_path().to_path_buf();
    assert!(cookie.exists());
    let r = h.post(r#"{"jsonrpc":"2.0","method":"stop","id":1}"#).await;
    assert_eq!(r.json()["result"], json!("ResonanceNet server stopping"));
    let addr = h.addr();
    tokio::time::timeout(Duration::from_secs(10), h.server.join()).await.unwrap().unwrap();
    assert!(!cookie.exists(), "cookie removed on clean shutdown");
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn blocking_client() {
    let h = start_with(|c| c.user_pass = Some(("bob".into(), "pw".into()))).await;
    let url = format!("http://{}", h.addr());
    let cookie = h.server.cookie_path().to_path_buf();
    let wallet_url = format!("{url}/wallet/w1");
    let bad_url = url.clone();
    tokio::task::spawn_blocking(move || {
        let c = RpcClient::new(&url, Auth::Cookie(cookie)).unwrap();
        // Several calls over one keep-alive connection.
        for _ in 0..5 {
            assert_eq!(c.call("getblockcount", Value::Null).unwrap(), json!(42));
        }
        assert_eq!(c.call_as::<u64>("getblockcount", json!([])).unwrap(), 42);
        assert_eq!(c.call("echo", json!({"a": 3})).unwrap(), json!({"a":3,"b":null,"c":false}));
        let e = c.call("fail", Value::Null).unwrap_err();
        assert!(matches!(&e, ClientError::Rpc { code: -8, message } if message == "Block height out of range"), "{e}");
        let e = c.call("nosuch", Value::Null).unwrap_err();
        assert_eq!(e.rpc_code(), Some(-32601));
        let b = c.batch(&[("getblockcount", Value::Null), ("fail", Value::Null), ("echo", json!([1]))]).unwrap();
        assert_eq!(b[0], Ok(json!(42)));
        assert_eq!(b[1].as_ref().unwrap_err().code, -8);
        assert_eq!(b[2], Ok(json!({"a":1,"b":null,"c":false})));

        let w = RpcClient::new(&wallet_url, Auth::UserPass("bob".into(), "pw".into())).unwrap();
        assert_eq!(w.call("whichwallet", Value::Null).unwrap(), json!("w1"));

        let bad = RpcClient::new(&bad_url, Auth::UserPass("bob".into(), "nope".into())).unwrap();
        assert!(matches!(bad.call("getblockcount", Value::Null), Err(ClientError::Unauthorized)));
        let none = RpcClient::new(&bad_url, Auth::None).unwrap();
        assert!(matches!(none.call("getblockcount", Value::Null), Err(ClientError::Unauthorized)));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn client_connection_refused() {
    // A port that was just free.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let e = tokio::task::spawn_blocking(move || {
        RpcClient::new(&format!("http://{addr}"), Auth::None)
            .unwrap()
            .call("getblockcount", Value::Null)
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(e.is_connect(), "{e}");
}

#[tokio::test]
async fn port_in_use_is_a_bind_error() {
    let h = start().await;
    let dir = TempDir::new();
    let err = RpcServer::bind(RpcConfig::new(h.addr(), &dir.0), Arc::new(Registry::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, rnet_rpc::RpcServerError::Bind { .. }), "{err}");
    // The failed bind wrote no cookie.
    assert!(!dir.0.join(".cookie").exists());
}

#[tokio::test]
async fn stuck_client_cannot_block_shutdown() {
    let h = start_with(|c| c.shutdown_grace = Duration::from_millis(300)).await;
    // A client that sends half a request and then nothing.
    // An authenticated client that sends half a body and then nothing: its handler waits for
    // the rest (up to the 30 s body timeout).
    let mut stuck = TcpStream::connect(h.addr()).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 100\r\n\r\n{{",
        h.auth
    );
    stuck.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.registry.shutdown().trigger();
    let t = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), h.server.join()).await.unwrap().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(250), "the grace period applied");
    drop(stuck);
}
