//! Encrypted transport throughput over loopback TCP (prints a figure; bounded in size).

use std::time::Instant;

use rnet_net::transport::{self, MAX_MESSAGE_SIZE, NodeKey};

#[test]
fn encrypted_transport_throughput() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (r, w) = s.into_split();
            let k = NodeKey::generate().unwrap();
            let mut e = transport::handshake(r, w, &k, *b"tput", false).await.unwrap();
            let mut total = 0usize;
            while total < 64 << 20 {
                let (_, p, _) = e.receiver.recv(MAX_MESSAGE_SIZE).await.unwrap();
                total += p.len();
            }
            total
        });
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        let k = NodeKey::generate().unwrap();
        let mut e = transport::handshake(r, w, &k, *b"tput", true).await.unwrap();
        let msg = vec![0x5au8; 1 << 20];
        let t = Instant::now();
        for _ in 0..64 {
            e.sender.send(17, &msg).await.unwrap();
        }
        let total = server.await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "FIGURE encrypted transport throughput: {} MiB in {secs:.3}s = {:.1} MiB/s",
            total >> 20,
            (total as f64 / (1 << 20) as f64) / secs
        );
        assert_eq!(total, 64 << 20);
    });
}
