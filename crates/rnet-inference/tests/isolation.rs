//! The server computes on its own threads: with every thread of the process's global rayon pool
//! busy (as a node's miner keeps it while training), generations still run, because prefill and
//! decoding use the server's own pool. Its own test binary, since it blocks the global pool.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rnet_inference::{Precision, ServerConfig, ServerState, serve_listener};
use rnet_model::{Model, ModelConfig, ModelNetwork};

#[test]
fn generations_run_while_the_global_rayon_pool_is_busy() {
    // Testnet's genesis shape is large enough that prefill splits its products across threads.
    let model = Model::init(ModelConfig::genesis(ModelNetwork::Testnet), 3).unwrap();
    let config =
        ServerConfig { precision: Precision::F32, compute_threads: 2, ..Default::default() };
    let state = ServerState::from_model(config, &model, 0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
        rt.unwrap().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = serve_listener(listener, state, async {
                let _ = stop_rx.await;
            })
            .await;
        });
    });

    // Occupy every global rayon worker until released (at most 60 s).
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let busy = Arc::new(AtomicUsize::new(0));
    let n = rayon::current_num_threads();
    for _ in 0..n {
        let (gate, busy) = (gate.clone(), busy.clone());
        rayon::spawn(move || {
            busy.fetch_add(1, Ordering::SeqCst);
            let (lock, cv) = &*gate;
            let open = lock.lock().unwrap();
            let _open = cv.wait_timeout_while(open, Duration::from_secs(60), |o| !*o).unwrap();
        });
    }
    let t0 = Instant::now();
    while busy.load(Ordering::SeqCst) < n {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }

    let body = format!("{{\"prompt\":\"{}\",\"max_tokens\":8}}", "In the beginning ".repeat(16));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let t0 = Instant::now();
    let mut reply = Vec::new();
    let read = s.read_to_end(&mut reply);
    let took = t0.elapsed();

    // Release the global pool before asserting, so a failure does not leave it blocked.
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let _ = stop_tx.send(());
    server.join().unwrap();

    assert!(read.is_ok(), "no reply within 20 s while the global pool was busy: {read:?}");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    println!("a completion with all {n} global rayon threads busy took {took:?}");
}
