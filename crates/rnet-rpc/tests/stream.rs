//! Streamed results over real HTTP (issue 14, item 20): a 32 MiB result arrives byte-identical
//! while the server holds a bounded number of chunks, a client that stops reading makes the
//! writer give up after the server timeout (releasing what it holds), an error before the first
//! chunk is an ordinary JSON-RPC error, and a writer failing midway closes the connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rnet_rpc::{
    JsonStream, MethodInfo, RpcConfig, RpcError, RpcServer, RunningServer, STREAM_CHUNK,
    STREAM_CHUNKS_IN_FLIGHT, StreamError, StreamStats, basic_auth_header, read_cookie,
};
use serde_json::{Value, json};

/// Strings of the big result: `n` items of 1 KiB, deterministic.
fn item(i: usize) -> String {
    let c = (b'a' + (i % 26) as u8) as char;
    format!("{i:08}{}", c.to_string().repeat(1016))
}

/// The big result as a `Value` (what a built reply would hold).
fn big_value(n: usize) -> Value {
    Value::Array((0..n).map(|i| Value::String(item(i))).collect())
}

/// Writes the same array item by item.
fn write_big(n: usize, w: &mut dyn Write) -> Result<(), StreamError> {
    w.write_all(b"[")?;
    for i in 0..n {
        if i > 0 {
            w.write_all(b",")?;
        }
        serde_json::to_writer(&mut *w, &item(i)).map_err(std::io::Error::other)?;
    }
    w.write_all(b"]")?;
    Ok(())
}

const ITEMS_32_MIB: usize = 32 * 1024;

/// Set when dropped: the writer's resources (a stand-in for a permit) were released.
struct Released(Arc<AtomicBool>);
impl Drop for Released {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Server {
    _server: RunningServer,
    addr: SocketAddr,
    auth: String,
    stats: Arc<StreamStats>,
    released: Arc<AtomicBool>,
    stall_written: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
}

async fn start(timeout: Duration) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let stall_written = Arc::new(AtomicU64::new(0));
    let mut r = rnet_rpc::Registry::new();
    r.register_sync(MethodInfo::new("bigvalue", "Test").params(["n"]), |p| {
        Ok(big_value(p.required::<usize>(0)?))
    })
    .unwrap();
    r.register_stream(MethodInfo::new("bigstream", "Test").params(["n"]), |p| async move {
        let n: usize = p.required(0)?;
        Ok(JsonStream::new(move |w| write_big(n, w)))
    })
    .unwrap();
    // Writes until a write fails (at most 1 GiB), holding a `Released` guard.
    let (rel, written) = (released.clone(), stall_written.clone());
    r.register_stream(MethodInfo::new("endless", "Test"), move |_| {
        let (rel, written) = (rel.clone(), written.clone());
        async move {
            Ok(JsonStream::new(move |w| {
                let _guard = Released(rel);
                w.write_all(b"[")?;
                let piece = format!("\"{}\",", "x".repeat(4094));
                for _ in 0..(1 << 30) / piece.len() {
                    w.write_all(piece.as_bytes())?;
                    written.fetch_add(piece.len() as u64, Ordering::SeqCst);
                }
                w.write_all(b"0]")?;
                Ok(())
            }))
        }
    })
    .unwrap();
    r.register_stream(MethodInfo::new("failsearly", "Test"), |_| async {
        Ok(JsonStream::new(|w| {
            w.write_all(b"[1,2")?;
            Err(RpcError::invalid_parameter("no such thing").into())
        }))
    })
    .unwrap();
    r.register_stream(MethodInfo::new("failslate", "Test"), |_| async {
        Ok(JsonStream::new(|w| {
            w.write_all(b"[")?;
            w.write_all(&vec![b'1'; 3 * STREAM_CHUNK])?;
            Err(RpcError::misc("disk read failed").into())
        }))
    })
    .unwrap();
    let reg = Arc::new(r);
    let mut config = RpcConfig::localhost(0, dir.path());
    config.timeout = timeout;
    let server = RpcServer::bind(config, Arc::clone(&reg)).await.unwrap();
    let stats = server.stream_stats();
    let (user, pass) = read_cookie(server.cookie_path()).unwrap();
    let server = server.spawn(reg.stopped());
    Server {
        addr: server.local_addr(),
        _server: server,
        auth: basic_auth_header(&user, &pass),
        stats,
        released,
        stall_written,
        _dir: dir,
    }
}

fn send(addr: SocketAddr, auth: &str, body: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

/// A whole response: status, headers (lowercase names), body (de-chunked), whether the chunked
/// body ended with its terminating chunk. `pause` is slept after each read (a slow client).
fn response(s: TcpStream, pause: Duration) -> (u16, Vec<(String, String)>, Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::with_capacity(256 * 1024, s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let mut body = Vec::new();
    if !chunked {
        r.read_to_end(&mut body).unwrap();
        return (status, headers, body, true);
    }
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return (status, headers, body, false);
        }
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        if size == 0 {
            return (status, headers, body, true);
        }
        let before = body.len();
        let got = r.by_ref().take(size as u64).read_to_end(&mut body).unwrap_or(0);
        if got != size {
            body.truncate(before + got);
            return (status, headers, body, false);
        }
        line.clear();
        r.read_line(&mut line).unwrap();
        std::thread::sleep(pause);
    }
}

/// Waits (at most 5 s) until no writer runs and every chunk was freed.
async fn settle(stats: &StreamStats) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.live_chunks() != 0 || stats.writers_running() != 0 {
        assert!(
            Instant::now() < deadline,
            "{} chunks alive, {} writers running 5 s after the replies",
            stats.live_chunks(),
            stats.writers_running()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_32_mib_result_streams_byte_identical_with_bounded_chunks() {
    let srv = start(Duration::from_secs(30)).await;
    let (addr, auth) = (srv.addr, srv.auth.clone());
    let n = ITEMS_32_MIB;
    let body = format!(r#"{{"jsonrpc":"2.0","method":"bigstream","params":[{n}],"id":"big"}}"#);
    let started = Instant::now();
    // A slow reader: the writer must wait for it rather than queue the reply.
    let (status, headers, got, complete) =
        blocking(move || response(send(addr, &auth, &body), Duration::from_micros(200))).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert!(complete, "the chunked body ended properly");
    assert!(headers.iter().any(|(k, v)| k == "content-type" && v == "application/json"));
    assert!(headers.iter().any(|(k, v)| k == "transfer-encoding" && v == "chunked"));
    assert!(!headers.iter().any(|(k, _)| k == "content-length"));
    let mut expected = br#"{"jsonrpc":"2.0","result":"#.to_vec();
    write_big(n, &mut expected).unwrap();
    expected.extend_from_slice(b",\"id\":\"big\"}\n");
    assert!(expected.len() > 32 << 20);
    assert!(got == expected, "streamed body differs from the expected bytes");
    let parsed: Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(parsed["result"].as_array().unwrap().len(), n);
    // Byte-identical to the same result built as a Value (1.0 envelope this time).
    let (addr, auth) = (srv.addr, srv.auth.clone());
    let (built, streamed) = blocking(move || {
        let q = |m: &str| format!(r#"{{"method":"{m}","params":[300],"id":7}}"#);
        let built = response(send(addr, &auth, &q("bigvalue")), Duration::ZERO).2;
        let streamed = response(send(addr, &auth, &q("bigstream")), Duration::ZERO).2;
        (built, streamed)
    })
    .await;
    assert_eq!(built, streamed);
    let peak = srv.stats.peak_chunks();
    println!(
        "32 MiB streamed in {elapsed:?} ({} bytes); peak chunk buffers alive {peak} \
         ({} KiB), {} completed",
        got.len(),
        peak * STREAM_CHUNK / 1024,
        srv.stats.completed()
    );
    // The channel's places, the one being filled and the one the connection is writing, plus
    // what hyper's write buffer queues (at most ~400 KiB: 7 chunks).
    let bound = STREAM_CHUNKS_IN_FLIGHT + 2 + 7;
    assert!(peak <= bound, "peak {peak} chunk buffers alive, bound {bound}");
    assert!(peak >= 2, "the slow client made the writer queue chunks ({peak})");
    // The writer threads finish just after their last chunk went out.
    settle(&srv.stats).await;
    assert_eq!(srv.stats.completed(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_makes_the_writer_give_up_after_the_timeout() {
    let timeout = Duration::from_millis(400);
    let srv = start(timeout).await;
    let mut s = send(srv.addr, &srv.auth, r#"{"method":"endless","id":1}"#);
    // Read the first bytes, then stall with the connection open.
    let mut first = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let stalled_at = Instant::now();
    let deadline = stalled_at + Duration::from_secs(20);
    while !(srv.released.load(Ordering::SeqCst) && srv.stats.writers_running() == 0) {
        assert!(Instant::now() < deadline, "the writer is still running 20 s after the stall");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gave_up = stalled_at.elapsed();
    let written = srv.stall_written.load(Ordering::SeqCst);
    println!(
        "stalled client: writer gave up {gave_up:?} after the stall (timeout {timeout:?}), \
         having written {} KiB of an endless reply",
        written / 1024
    );
    assert!(gave_up >= timeout, "gave up before the timeout ({gave_up:?})");
    assert!(written < 1 << 30, "the writer stopped long before the end");
    assert_eq!(srv.stats.abandoned(), 1);
    assert_eq!(srv.stats.completed(), 0);
    // The client took nothing for the whole timeout, so the channel was full: still bounded.
    let peak = srv.stats.peak_chunks();
    println!("stalled client: peak chunk buffers alive {peak}");
    assert!(peak <= STREAM_CHUNKS_IN_FLIGHT + 2 + 7, "peak {peak} chunk buffers alive");
    assert!(peak > STREAM_CHUNKS_IN_FLIGHT, "the channel filled up ({peak})");
    // The connection is closed: draining it ends (EOF or reset) without a complete body.
    let drained = blocking(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(k) => total += k,
            }
        }
    })
    .await;
    assert!((drained as u64) < written + (1 << 20));
    settle(&srv.stats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_before_the_first_chunk_are_replies_and_later_ones_close_the_connection() {
    let srv = start(Duration::from_secs(30)).await;
    let (addr, auth) = (srv.addr, srv.auth.clone());
    let (v1, v2, late) = blocking(move || {
        let v1 = response(send(addr, &auth, r#"{"method":"failsearly","id":1}"#), Duration::ZERO);
        let v2 = response(
            send(addr, &auth, r#"{"jsonrpc":"2.0","method":"failsearly","id":2}"#),
            Duration::ZERO,
        );
        let late = response(send(addr, &auth, r#"{"method":"failslate","id":3}"#), Duration::ZERO);
        (v1, v2, late)
    })
    .await;
    assert_eq!(v1.0, 500);
    assert_eq!(
        serde_json::from_slice::<Value>(&v1.2).unwrap(),
        json!({"result":null,"error":{"code":-8,"message":"no such thing"},"id":1})
    );
    assert_eq!(v2.0, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&v2.2).unwrap(),
        json!({"jsonrpc":"2.0","error":{"code":-8,"message":"no such thing"},"id":2})
    );
    assert_eq!(late.0, 200);
    assert!(!late.3, "a writer failing midway leaves the chunked body unterminated");
    assert!(late.2.starts_with(br#"{"result":[111"#));
    assert!(serde_json::from_slice::<Value>(&late.2).is_err());
    settle(&srv.stats).await;
    assert_eq!(srv.stats.failed(), 1);
    // In a batch the streamed result is buffered: same JSON as alone.
    let (addr, auth) = (srv.addr, srv.auth.clone());
    let batch = blocking(move || {
        let b = r#"[{"jsonrpc":"2.0","method":"bigstream","params":[3],"id":1},
                    {"jsonrpc":"2.0","method":"failsearly","id":2}]"#;
        response(send(addr, &auth, b), Duration::ZERO)
    })
    .await;
    assert_eq!(batch.0, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&batch.2).unwrap(),
        json!([
            {"jsonrpc":"2.0","result":big_value(3),"id":1},
            {"jsonrpc":"2.0","error":{"code":-8,"message":"no such thing"},"id":2}
        ])
    );
}
