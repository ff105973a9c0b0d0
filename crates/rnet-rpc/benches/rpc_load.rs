//! Load generator: `getblockcount` over loopback with K keep-alive connections.
//!
//! `cargo bench -p rnet-rpc --bench rpc_load` (release). Environment knobs:
//! `RPC_LOAD_CONNS` (comma-separated connection counts, default `1,16,64`),
//! `RPC_LOAD_SECS` (seconds per run, default 3), `RPC_LOAD_MAX` (request cap per run, default
//! 5,000,000), `RPC_LOAD_THREADS` (tokio worker threads shared by server and generator,
//! default: available cores). To measure a running node instead of the built-in toy server, set
//! `RPC_LOAD_TARGET=127.0.0.1:PORT` and `RPC_LOAD_COOKIE=<netdir>/.cookie`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rnet_rpc::{MethodInfo, Registry, RpcConfig, RpcServer, basic_auth_header, read_cookie};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One connection: send requests back to back until `stop`, recording latencies (µs).
async fn worker(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    max: u64,
) -> Vec<u32> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut lat = Vec::new();
    let mut line = String::new();
    let mut body = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if count.fetch_add(1, Ordering::Relaxed) >= max {
            break;
        }
        let t = Instant::now();
        w.write_all(&request).await.expect("write");
        let mut len = 0usize;
        let mut status_ok = false;
        let mut first = true;
        loop {
            line.clear();
            if r.read_line(&mut line).await.expect("read") == 0 {
                panic!("server closed the connection");
            }
            if first {
                status_ok = line.starts_with("HTTP/1.1 200");
                first = false;
            } else if line == "\r\n" {
                break;
            } else if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().expect("content-length");
                }
            }
        }
        body.resize(len, 0);
        r.read_exact(&mut body).await.expect("body");
        assert!(status_ok, "unexpected status: {}", String::from_utf8_lossy(&body));
        debug_assert!(body.starts_with(b"{\"result\":"));
        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    lat
}

fn main() {
    let conns: Vec<usize> = std::env::var("RPC_LOAD_CONNS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs: f64 = env_or("RPC_LOAD_SECS", 3.0);
    let max: u64 = env_or("RPC_LOAD_MAX", 5_000_000);
    let threads: usize = env_or(
        "RPC_LOAD_THREADS",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("rnet-rpc-load-{}", std::process::id()));
        let mut reg = Registry::new();
        reg.register_sync(MethodInfo::new("getblockcount", "Blockchain"), |_| Ok(json!(42))).expect("register");
        let reg = Arc::new(reg);
        let external = std::env::var("RPC_LOAD_TARGET").ok().zip(std::env::var("RPC_LOAD_COOKIE").ok());
        let (addr, user, pass, server) = match external {
            Some((target, cookie)) => {
                let addr: SocketAddr = target.parse().expect("RPC_LOAD_TARGET is IP:PORT");
                let (user, pass) = read_cookie(std::path::Path::new(&cookie)).expect("cookie");
                println!("rpc_load: measuring the node at {addr}");
                (addr, user, pass, None)
            }
            None => {
                let mut config = RpcConfig::localhost(0, &dir);
                config.work_queue = 1024;
                config.max_connections = 1024;
                let server = RpcServer::bind(config, Arc::clone(&reg)).await.expect("bind");
                let addr = server.local_addr();
                let (user, pass) = read_cookie(server.cookie_path()).expect("cookie");
                (addr, user, pass, Some(server.spawn(reg.stopped())))
            }
        };

        let body = br#"{"jsonrpc":"1.0","id":1,"method":"getblockcount","params":[]}"#;
        let request = Arc::new(
            [
                format!(
                    "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    basic_auth_header(&user, &pass),
                    body.len()
                )
                .into_bytes(),
                body.to_vec(),
            ]
            .concat(),
        );

        println!("rpc_load: getblockcount over loopback, {threads} tokio worker threads shared by server and load generator");
        for &k in &conns {
            let stop = Arc::new(AtomicBool::new(false));
            let count = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let tasks: Vec<_> = (0..k)
                .map(|_| tokio::spawn(worker(addr, Arc::clone(&request), Arc::clone(&stop), Arc::clone(&count), max)))
                .collect();
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            stop.store(true, Ordering::Relaxed);
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await.expect("worker"));
            }
            let elapsed = start.elapsed().as_secs_f64();
            lat.sort_unstable();
            let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
            println!(
                "  {k:>3} connections: {:>8} requests in {elapsed:.2} s = {:>8.0} req/s  (latency p50 {} µs, p99 {} µs)",
                lat.len(),
                lat.len() as f64 / elapsed,
                pct(0.50),
                pct(0.99)
            );
        }
        reg.shutdown().trigger();
        if let Some(server) = server {
            server.join().await.expect("server");
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
