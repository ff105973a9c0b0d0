//! The blocking client against a scripted HTTP server: keep-alive reuse, chunked bodies,
//! retry on a connection the server closed while idle, 1.0-style HTTP error replies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use rnet_rpc::{Auth, ClientError, RpcClient};
use serde_json::{Value, json};

/// Read one request; return its body.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut len = 0;
    let mut first = true;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if first {
            assert!(line.starts_with("POST / HTTP/1.1"), "{line}");
            first = false;
        } else if line == "\r\n" {
            break;
        } else if let Some((n, v)) = line.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(body)
}

/// A server that answers each request with `respond(n, request)`, where `n` counts requests on
/// the connection; it closes a connection after `per_conn` requests. Returns the port and the
/// connection counter.
fn scripted(per_conn: usize, respond: fn(usize, &Value) -> String) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&conns);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            c.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                for n in 0..per_conn {
                    let Some(body) = read_request(&mut r) else { return };
                    let req: Value = serde_json::from_slice(&body).unwrap();
                    let _ = w.write_all(respond(n, &req).as_bytes());
                }
            });
        }
    });
    (port, conns)
}

fn ok_reply(req: &Value) -> String {
    let body = json!({"jsonrpc": "2.0", "result": req["method"], "id": req["id"]}).to_string();
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn keep_alive_is_reused() {
    let (port, conns) = scripted(100, |_, req| ok_reply(req));
    let c = RpcClient::new(&format!("127.0.0.1:{port}"), Auth::None).unwrap();
    for m in ["a", "b", "c", "d"] {
        assert_eq!(c.call(m, Value::Null).unwrap(), json!(m));
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

#[test]
fn reconnects_when_the_server_closed_an_idle_connection() {
    // The server serves one request per connection and then drops it without a word.
    let (port, conns) = scripted(1, |_, req| ok_reply(req));
    let c = RpcClient::new(&format!("http://127.0.0.1:{port}/"), Auth::None).unwrap();
    for m in ["a", "b", "c"] {
        assert_eq!(c.call(m, Value::Null).unwrap(), json!(m));
    }
    assert_eq!(conns.load(Ordering::SeqCst), 3);
}

#[test]
fn chunked_and_http_errors() {
    let (port, _) = scripted(100, |n, req| {
        match n {
        0 => {
            let body = json!({"result": {"chunked": true}, "error": null, "id": req["id"]}).to_string();
            let (a, b) = body.split_at(5);
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
        }
        // A 1.0 server's error: HTTP 500 with a JSON body.
        1 => {
            let body = json!({"result": null, "error": {"code": -8, "message": "bad"}, "id": req["id"]}).to_string();
            format!("HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        }
        // An HTTP error without JSON.
        2 => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 26\r\n\r\nWork queue depth exceeded\n".into(),
        // Garbage.
        _ => "SMTP ready\r\n\r\n".into(),
    }
    });
    let c = RpcClient::new(&format!("127.0.0.1:{port}"), Auth::UserPass("u".into(), "p".into()))
        .unwrap();
    assert_eq!(c.call("x", Value::Null).unwrap(), json!({"chunked": true}));
    assert!(matches!(c.call("x", Value::Null), Err(ClientError::Rpc { code: -8, .. })));
    let e = c.call("x", Value::Null).unwrap_err();
    assert!(
        matches!(&e, ClientError::Http { status: 503, body } if body == "Work queue depth exceeded"),
        "{e}"
    );
    assert!(matches!(c.call("x", Value::Null), Err(ClientError::InvalidResponse(_))));
}
