//! Memory under large request bodies: resident memory after rounds of 8 concurrent clients each
//! posting a 1 MiB JSON body stays bounded (a body is buffered once at its declared size, and a
//! body with more JSON values than any valid request is refused before it is parsed into a
//! document tree many times its size). Its own test binary, so nothing else shares the process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rnet_inference::{Precision, ServerConfig, ServerState, serve_listener};
use rnet_model::{Model, ModelConfig, ModelNetwork};

/// Resident set size of this process (bytes), from `/proc/self/statm`.
fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn post(addr: SocketAddr, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out[..12.min(out.len())])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A body of just under 1 MiB: a prompt given as byte values (the most expensive JSON to
/// parse per byte), far over the prompt limit, so the server must read, parse and refuse it.
fn big_body() -> Vec<u8> {
    let mut b = b"{\"max_tokens\":1,\"prompt\":[".to_vec();
    while b.len() < (1 << 20) - 16 {
        b.extend_from_slice(b"65,");
    }
    b.extend_from_slice(b"65]}");
    b
}

#[test]
fn rss_stays_bounded_under_8_clients_posting_1_mib_bodies() {
    let Some(start_rss) = rss() else {
        eprintln!("no /proc/self/statm: skipped");
        return;
    };
    let config = ServerConfig { precision: Precision::F32, ..ServerConfig::default() };
    let model = Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 0).unwrap();
    let state = ServerState::from_model(config, &model, 0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
        rt.unwrap().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = serve_listener(listener, state, async {
                let _ = rx.await;
            })
            .await;
        });
    });
    let body = std::sync::Arc::new(big_body());
    assert_eq!(post(addr, b"{\"prompt\":\"a\",\"max_tokens\":1}"), 200);
    let warm = rss().unwrap();
    let mut after = Vec::new();
    for _round in 0..6 {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let body = body.clone();
                std::thread::spawn(move || post(addr, &body))
            })
            .collect();
        for c in clients {
            let status = c.join().unwrap();
            assert!(status == 400 || status == 503, "status {status}");
        }
        after.push(rss().unwrap());
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let rounds: Vec<String> = after.iter().map(|&r| format!("{:.1}", mib(r))).collect();
    println!(
        "RSS: start {:.1} MiB, warm {:.1} MiB, after each round of 8 x 1 MiB: [{}] MiB",
        mib(start_rss),
        mib(warm),
        rounds.join(", ")
    );
    let _ = tx.send(());
    server.join().unwrap();
    // Mean growth over the rounds: on the code before the value budget and exact-size body
    // buffers this measured 28-31 MiB in debug builds; now 2-8 MiB.
    let mean = after.iter().map(|&r| r.saturating_sub(warm)).sum::<u64>() / after.len() as u64;
    assert!(mib(mean) < 16.0, "RSS grew by {:.1} MiB on average per round", mib(mean));
}
