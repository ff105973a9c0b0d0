//! Connection limits of the RPC server (issue 14 item 8): idle, half-sent and idle keep-alive
//! connections are closed after the server timeout, connections beyond the cap are closed at
//! once, and a real client still gets answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rnet_rpc::{
    MethodInfo, Registry, RpcConfig, RpcServer, RunningServer, basic_auth_header, read_cookie,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(f: impl FnOnce(&mut RpcConfig)) -> (RunningServer, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Registry::new();
    r.register_sync(MethodInfo::new("getblockcount", "Blockchain"), |_| Ok(json!(42))).unwrap();
    let reg = Arc::new(r);
    let mut config = RpcConfig::localhost(0, dir.path());
    f(&mut config);
    let server = RpcServer::bind(config, Arc::clone(&reg)).await.unwrap();
    let (user, pass) = read_cookie(server.cookie_path()).unwrap();
    let auth = basic_auth_header(&user, &pass);
    (server.spawn(reg.stopped()), auth, dir)
}

fn request(auth: &str, keep_alive: bool) -> Vec<u8> {
    let body = r#"{"method":"getblockcount","id":1}"#;
    let conn = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: {conn}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads until the server closes the connection; `None` if it is still open after `wait`.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One full request on a fresh connection; the HTTP status.
async fn answered(addr: std::net::SocketAddr, auth: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&request(auth, false)).await.unwrap();
    let reply = closed_within(&mut s, Duration::from_secs(10)).await.expect("reply and close");
    let text = String::from_utf8_lossy(&reply);
    text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_after_the_timeout() {
    let timeout = Duration::from_millis(500);
    let (server, auth, _dir) = start(|c| c.timeout = timeout).await;
    let addr = server.local_addr();
    // Connected, nothing sent.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    // Half a request head.
    let mut half_head = TcpStream::connect(addr).await.unwrap();
    half_head.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le").await.unwrap();
    // A whole head, half the body.
    let mut half_body = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 100\r\n\r\n{{"
    );
    half_body.write_all(head.as_bytes()).await.unwrap();
    // One answered request, then an idle keep-alive connection.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(&request(&auth, true)).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let t = Instant::now();
    let wait = timeout * 6;
    assert!(closed_within(&mut idle, wait).await.is_some(), "idle connection closed");
    assert!(closed_within(&mut half_head, wait).await.is_some(), "half-sent head closed");
    let reply = closed_within(&mut half_body, wait).await.expect("half-sent body closed");
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 408"), "408 for a slow body");
    assert!(closed_within(&mut kept, wait).await.is_some(), "idle keep-alive connection closed");
    let took = t.elapsed();
    println!("4 stalled connections closed {took:?} after the {timeout:?} timeout started");
    assert!(took >= timeout / 2, "not closed before the timeout ({took:?})");
    // The server still answers.
    assert_eq!(answered(addr, &auth).await, 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_clients_still_get_answers() {
    let cap = 8;
    let timeout = Duration::from_millis(700);
    let (server, auth, _dir) = start(|c| {
        c.max_connections = cap;
        c.timeout = timeout;
    })
    .await;
    let addr = server.local_addr();
    // Far more stalled connections than the cap (the report: 369 under `ulimit -n 256`).
    let mut conns = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            let _ = s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n").await;
        }
        conns.push(s);
    }
    // Beyond the cap, the server closes them at once.
    let mut closed_at_once = 0;
    for s in &mut conns {
        if closed_within(s, Duration::from_millis(20)).await.is_some() {
            closed_at_once += 1;
        }
    }
    println!("{closed_at_once} of 200 stalled connections closed at once (cap {cap})");
    assert!(closed_at_once >= 200 - cap, "{closed_at_once} closed, cap {cap}");
    // After the timeout the rest are gone too, and a real client gets answers.
    for s in &mut conns {
        assert!(closed_within(s, timeout * 6).await.is_some(), "closed after the timeout");
    }
    for _ in 0..3 {
        assert_eq!(answered(addr, &auth).await, 200);
    }
    // A cap full of stalled connections frees its slots when they time out.
    let mut stalled = Vec::new();
    for _ in 0..cap {
        stalled.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(timeout * 2).await;
    assert_eq!(answered(addr, &auth).await, 200, "slots freed by the timeout");
}
