//! P2P functional tests: real `rnetd` processes on loopback (`-port=0 -bind=127.0.0.1
//! -connect=0`, connections made with `addnode … onetry`), plus hostile peers written with
//! `rnet_net`'s transport and a SOCKS5 proxy run by the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_net::message::{Message, Version};
use rnet_net::transport::{self, NodeKey};
use rnet_primitives::{BlockHash, Network};
use rnet_script::PlainKey;
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");
const MAGIC: [u8; 4] = [0xf3, b'r', b'n', b't'];

fn start(extra: &[&str]) -> TestNode {
    let mut args = vec!["-port=0", "-bind=127.0.0.1", "-connect=0"];
    args.extend_from_slice(extra);
    TestNode::start(std::path::Path::new(RNETD), &args).expect("rnetd starts")
}

fn p2p_port(n: &TestNode) -> u16 {
    let f = n.network_dir().join("p2p.port");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(p) = std::fs::read_to_string(&f).ok().and_then(|t| t.trim().parse().ok()) {
            return p;
        }
        assert!(Instant::now() < deadline, "no p2p.port");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn addr(n: &TestNode) -> String {
    format!("127.0.0.1:{}", p2p_port(n))
}

fn connect(a: &TestNode, b: &TestNode) {
    a.call("addnode", json!([addr(b), "onetry"])).unwrap();
}

fn address() -> String {
    PlainKey::new(SigningKey::from_bytes(&[0x22; 32]).public_key())
        .address(Network::Regtest)
        .to_string()
}

fn mine(n: &TestNode, k: u32) -> Vec<String> {
    let v = n.call("generatetoaddress", json!([k, address()])).unwrap();
    v.as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect()
}

fn tip(n: &TestNode) -> (String, u64, u64) {
    let i = n.call("getblockchaininfo", json!([])).unwrap();
    (
        i["bestblockhash"].as_str().unwrap().to_string(),
        i["val_loss"].as_u64().unwrap(),
        i["blocks"].as_u64().unwrap(),
    )
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_peers(n: &TestNode, k: usize) {
    wait_until("peers", 20, || {
        n.call("getconnectioncount", json!([])).unwrap().as_u64().unwrap() as usize >= k
    });
}

fn wait_same_tip(nodes: &[&TestNode], secs: u64) -> (String, u64, u64) {
    let mut last = None;
    wait_until("same tip", secs, || {
        let tips: Vec<_> = nodes.iter().map(|n| tip(n)).collect();
        let same = tips.iter().all(|t| t == &tips[0]);
        last = Some(tips[0].clone());
        same
    });
    last.unwrap_or_default()
}

#[test]
fn four_nodes_sync_late_node_partition_and_reorg() {
    let n0 = start(&[]);
    let n1 = start(&[]);
    let n2 = start(&[]);
    let n3 = start(&[]);
    // Line topology n0 - n1 - n2 - n3.
    connect(&n1, &n0);
    connect(&n2, &n1);
    connect(&n3, &n2);
    wait_peers(&n1, 2);
    wait_peers(&n2, 2);
    mine(&n0, 20);
    let t = wait_same_tip(&[&n0, &n1, &n2, &n3], 60);
    assert_eq!(t.2, 20);
    let info = n1.call("getpeerinfo", json!([])).unwrap();
    assert!(info.as_array().unwrap().iter().all(|p| p["handshaked"] == json!(true)));
    assert!(n1.call("getnettotals", json!([])).unwrap()["totalbytesrecv"].as_u64().unwrap() > 0);

    // A node started later syncs the whole chain, checkpoints included, from one peer.
    let late = start(&[]);
    let t0 = Instant::now();
    connect(&late, &n0);
    wait_same_tip(&[&n0, &late], 60);
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "FIGURE initial sync from one peer: 20 blocks in {secs:.2}s = {:.1} blocks/s",
        20.0 / secs
    );
    let tip_hash = tip(&late).0;
    let ck = late.call("getcheckpointinfo", json!([tip_hash])).unwrap();
    assert!(ck["size"].as_u64().unwrap() > 0);
    drop(late);

    // Partition: n0-n1 | n2-n3, competing chains, then reconnect.
    n1.call("disconnectnode", json!([addr(&n2)])).unwrap_or(Value::Null);
    n2.call("disconnectnode", json!([addr(&n1)])).unwrap_or(Value::Null);
    wait_until("partition", 20, || {
        n1.call("getconnectioncount", json!([])).unwrap() == json!(1)
            && n2.call("getconnectioncount", json!([])).unwrap() == json!(1)
    });
    mine(&n0, 2);
    mine(&n3, 3);
    let a = wait_same_tip(&[&n0, &n1], 30);
    let b = wait_same_tip(&[&n2, &n3], 30);
    assert_ne!(a.0, b.0);
    connect(&n2, &n1);
    let best = if a.1 <= b.1 { a.clone() } else { b.clone() };
    let t = wait_same_tip(&[&n0, &n1, &n2, &n3], 60);
    // Lowest tip loss wins (ties: the first seen, so only check the loss then).
    assert_eq!(t.1, best.1.min(a.1.max(b.1)).min(best.1));
    if a.1 != b.1 {
        assert_eq!(t.0, best.0);
    }
    // Same UTXO set everywhere.
    let h: Vec<Value> = [&n0, &n1, &n2, &n3]
        .iter()
        .map(|n| n.call("gettxoutsetinfo", json!([])).unwrap()["utxo_set_hash"].clone())
        .collect();
    assert!(h.iter().all(|x| *x == h[0]));
}

/// A hostile peer speaking the real transport.
struct Hostile {
    rt: tokio::runtime::Runtime,
    est: Option<
        transport::Established<tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf>,
    >,
}

impl Hostile {
    fn connect(port: u16) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let est = rt.block_on(async {
            let s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (r, w) = s.into_split();
            let key = NodeKey::generate().unwrap();
            let mut est = transport::handshake(r, w, &key, MAGIC, true).await.unwrap();
            let v = Message::Version(Box::new(Version {
                version: 1,
                magic: MAGIC,
                services: 1,
                timestamp: 0,
                best_height: 0,
                best_loss: 0,
                best_hash: BlockHash::ZERO,
                nonce: 7,
                listen_port: 0,
                user_agent: "/hostile/".into(),
            }));
            est.sender.send(v.command(), &v.payload()).await.unwrap();
            est.sender.send(Message::Verack.command(), &[]).await.unwrap();
            est
        });
        Self { rt, est: Some(est) }
    }

    fn send(&mut self, m: &Message) -> bool {
        let est = self.est.as_mut().unwrap();
        self.rt.block_on(est.sender.send(m.command(), &m.payload())).is_ok()
    }

    fn send_raw(&mut self, command: u8, payload: &[u8]) -> bool {
        let est = self.est.as_mut().unwrap();
        self.rt.block_on(est.sender.send(command, payload)).is_ok()
    }

    fn send_plain(&mut self, plain: &[u8]) {
        let est = self.est.as_mut().unwrap();
        let _ = self.rt.block_on(est.sender.send_raw_plaintext(plain));
    }

    /// Reads messages until `f` picks one, or the connection closes (None).
    fn recv_until<T>(&mut self, secs: u64, mut f: impl FnMut(Message) -> Option<T>) -> Option<T> {
        let est = self.est.as_mut().unwrap();
        self.rt.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
            loop {
                let r = tokio::time::timeout_at(deadline, est.receiver.recv(8 << 20)).await.ok()?;
                let (c, p, _) = r.ok()?;
                if let Ok(m) = Message::decode(c, &p) {
                    if let Some(t) = f(m) {
                        return Some(t);
                    }
                }
            }
        })
    }

    /// Whether the node closed the connection within `secs`.
    fn closed(&mut self, secs: u64) -> bool {
        self.recv_until(secs, |_| None::<()>).is_none()
    }
}

fn banned(n: &TestNode) -> usize {
    n.call("listbanned", json!([])).unwrap().as_array().unwrap().len()
}

#[test]
fn hostile_peers_are_disconnected_and_banned() {
    let honest = start(&[]);
    mine(&honest, 3);
    let victim = start(&[]);
    let port = p2p_port(&victim);

    // Garbage bytes instead of a handshake: disconnected.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(&[0, 64]).unwrap();
    s.write_all(&[0xAB; 64]).unwrap();
    let mut buf = [0u8; 256];
    let mut closed = false;
    for _ in 0..10 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "garbage peer not disconnected");

    // An oversized length over a valid session: banned.
    let mut h = Hostile::connect(port);
    let mut plain = 100_000_000u32.to_le_bytes().to_vec();
    plain.push(2);
    h.send_plain(&plain);
    assert!(h.closed(10));
    wait_until("ban after oversize", 10, || banned(&victim) >= 1);

    // An unknown-message flood: banned.
    let mut h = Hostile::connect(port);
    for _ in 0..20 {
        if !h.send_raw(250, b"junk") {
            break;
        }
    }
    assert!(h.closed(10));
    wait_until("ban after flood", 10, || banned(&victim) >= 2);

    // A block with a faked loss (header altered; the signature no longer matches): banned.
    let hash1 = honest.call("getblockhash", json!([1])).unwrap();
    let raw = honest.call("getblock", json!([hash1, 0])).unwrap();
    let mut block =
        rnet_primitives::Block::from_bytes(&hex::decode(raw.as_str().unwrap()).unwrap()).unwrap();
    let real_block = block.clone();
    block.header.val_loss -= 1;
    let mut h = Hostile::connect(port);
    h.send(&Message::Block(Box::new(block)));
    assert!(h.closed(10));
    wait_until("ban after faked loss", 10, || banned(&victim) >= 3);

    // A checkpoint chunk that does not match the root: the genuine block, then bad bytes.
    let ck_info = honest.call("getcheckpointinfo", json!([hash1])).unwrap();
    let mut ck = Vec::new();
    for i in 0..ck_info["chunks"].as_u64().unwrap() {
        let c = honest.call("getcheckpointchunk", json!([hash1, i])).unwrap();
        ck.extend(hex::decode(c.as_str().unwrap()).unwrap());
    }
    let hashes = rnet_model::checkpoint::chunk_hashes(&ck);
    let mut h = Hostile::connect(port);
    let bh = real_block.block_hash();
    h.send(&Message::Block(Box::new(real_block)));
    let asked = h.recv_until(15, |m| match m {
        Message::GetChunkHashes(b) if b == bh => Some(()),
        _ => None,
    });
    assert!(asked.is_some(), "victim did not ask for chunk hashes");
    h.send(&Message::ChunkHashes { block: bh, hashes });
    let idx = h.recv_until(15, |m| match m {
        Message::GetChunk { block, index } if block == bh => Some(index),
        _ => None,
    });
    let idx = idx.expect("victim asked for a chunk");
    h.send(&Message::Chunk { block: bh, index: idx, data: vec![0u8; 10] });
    assert!(h.closed(10));
    wait_until("ban after bad chunk", 10, || banned(&victim) >= 4);
    let list = victim.call("listbanned", json!([])).unwrap();
    assert!(
        list.as_array().unwrap().iter().all(|b| b["address"].as_str().unwrap().starts_with("key:"))
    );

    // Honest sync continues.
    connect(&victim, &honest);
    wait_same_tip(&[&honest, &victim], 60);
    victim.call("clearbanned", json!([])).unwrap();
    assert_eq!(banned(&victim), 0);
}

/// A one-connection-at-a-time SOCKS5 server (no auth, IPv4 CONNECT) forwarding to the target.
fn socks5_server(count: Arc<AtomicUsize>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut c) = s else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut b = [0u8; 3];
                if c.read_exact(&mut b).is_err() || b[0] != 5 {
                    return;
                }
                c.write_all(&[5, 0]).unwrap_or(());
                let mut req = [0u8; 4];
                if c.read_exact(&mut req).is_err() || req[3] != 1 {
                    return;
                }
                let mut a = [0u8; 6];
                if c.read_exact(&mut a).is_err() {
                    return;
                }
                let target = std::net::SocketAddr::from((
                    [a[0], a[1], a[2], a[3]],
                    u16::from_be_bytes([a[4], a[5]]),
                ));
                let Ok(up) = TcpStream::connect(target) else {
                    let _ = c.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
                let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                let (mut c, mut up) = (c, up);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut up2);
                    let _ = up2.shutdown(std::net::Shutdown::Both);
                });
                let _ = std::io::copy(&mut up, &mut c);
                let _ = c.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

#[test]
fn outbound_through_socks5_proxy() {
    let a = start(&[]);
    mine(&a, 2);
    let count = Arc::new(AtomicUsize::new(0));
    let proxy = socks5_server(count.clone());
    let proxy_arg = format!("-proxy=127.0.0.1:{proxy}");
    let b = start(&[&proxy_arg]);
    connect(&b, &a);
    wait_same_tip(&[&a, &b], 60);
    assert!(count.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        b.call("getnetworkinfo", json!([])).unwrap()["proxy"],
        json!(format!("127.0.0.1:{proxy}"))
    );
}
