//! Crash safety with real processes: `kill -9` at random moments, at least 20 times in one run,
//! while one node mines and its wallet sends, and a second node downloads blocks and checkpoints
//! from it. After every restart, nothing acknowledged is lost: every block hash that
//! `generatetoaddress` returned is still on the active chain, every txid `sendtoaddress` returned
//! is still in the wallet, and both databases open. At the end the syncing node reaches the
//! miner's tip with the same UTXO set hash.
//!
//! The seed of the random schedule is printed; set `RNET_CRASH_SEED` to replay one.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_rpc::{Auth, RpcClient};
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");
const KILLS: usize = 22;

/// xorshift64*: a small deterministic schedule from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn client(node: &TestNode, path: &str) -> RpcClient {
    RpcClient::new(
        &format!("{}{path}", node.url()),
        Auth::Cookie(node.network_dir().join(rnet_rpc::COOKIE_FILE)),
    )
    .unwrap()
}

fn heartbeat_policy() -> Value {
    let recovery = hex::encode(SigningKey::from_bytes(&[0x11; 32]).public_key().as_bytes());
    json!({ "heartbeat": { "recovery": recovery, "interval": 500 } })
}

fn tip(node: &TestNode) -> (u64, String) {
    let info = node.call("getblockchaininfo", json!([])).unwrap();
    (info["blocks"].as_u64().unwrap(), info["bestblockhash"].as_str().unwrap().to_string())
}

fn utxo_hash(node: &TestNode) -> String {
    node.call("gettxoutsetinfo", json!([])).unwrap()["hash_serialized"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Everything acknowledged to a client before a kill.
#[derive(Default)]
struct Acknowledged {
    blocks: Vec<String>,
    txids: Vec<String>,
}

#[test]
fn kill_9_at_random_moments_loses_nothing() {
    let seed =
        std::env::var("RNET_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
                | 1
        });
    println!("RNET_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let port_a = free_port().to_string();
    let mut a = TestNode::start(
        std::path::Path::new(RNETD),
        &[&format!("-port={port_a}"), "-bind=127.0.0.1", "-connect=0"],
    )
    .expect("miner starts");
    a.call("createwallet", json!(["w", heartbeat_policy()])).unwrap();
    let wallet = client(&a, "/wallet/w");
    let mine_addr = wallet.call("getnewaddress", json!([])).unwrap().as_str().unwrap().to_string();
    let pay_addr = wallet.call("getnewaddress", json!([])).unwrap().as_str().unwrap().to_string();
    a.call("generatetoaddress", json!([8, mine_addr])).unwrap();
    a.restart(&["-wallet=w"]).expect("miner restarts with its wallet");
    let connect = format!("-connect=127.0.0.1:{port_a}");
    let mut b =
        TestNode::start(std::path::Path::new(RNETD), &["-port=0", "-bind=127.0.0.1", &connect])
            .expect("follower starts");

    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut restarts = (0, 0);
    for round in 0..KILLS {
        // Work in flight on the miner: a block, a wallet send, or nothing (the follower is
        // downloading in the background either way).
        let op = rng.below(3);
        let worker = {
            let (node_rpc, wallet_rpc) = (client(&a, ""), client(&a, "/wallet/w"));
            let (acked, mine_addr, pay_addr) = (acked.clone(), mine_addr.clone(), pay_addr.clone());
            std::thread::spawn(move || match op {
                0 => {
                    if let Ok(v) = node_rpc.call("generatetoaddress", json!([1, mine_addr])) {
                        let hashes = v.as_array().cloned().unwrap_or_default();
                        let mut acked = acked.lock().unwrap();
                        acked
                            .blocks
                            .extend(hashes.iter().filter_map(|h| h.as_str().map(String::from)));
                    }
                }
                1 => {
                    if let Ok(v) = wallet_rpc.call("sendtoaddress", json!([pay_addr, 0.25])) {
                        if let Some(txid) = v.as_str() {
                            acked.lock().unwrap().txids.push(txid.to_string());
                        }
                    }
                }
                _ => {}
            })
        };
        std::thread::sleep(Duration::from_millis(rng.below(1_200)));
        let kill_miner = rng.below(2) == 0;
        if kill_miner {
            a.kill_and_restart(&[]).expect("miner restarts after kill -9");
            restarts.0 += 1;
        } else {
            b.kill_and_restart(&[]).expect("follower restarts after kill -9");
            restarts.1 += 1;
        }
        worker.join().unwrap();

        // Nothing acknowledged is lost.
        let acked = acked.lock().unwrap();
        for hash in &acked.blocks {
            let header = a
                .call("getblockheader", json!([hash]))
                .unwrap_or_else(|e| panic!("round {round}: acknowledged block {hash} lost: {e}"));
            assert!(
                header["confirmations"].as_i64().unwrap_or(0) >= 1,
                "round {round}: acknowledged block {hash} left the active chain"
            );
        }
        let wallet = client(&a, "/wallet/w");
        for txid in &acked.txids {
            wallet
                .call("gettransaction", json!([txid]))
                .unwrap_or_else(|e| panic!("round {round}: acknowledged tx {txid} lost: {e}"));
        }
        b.call("getblockcount", json!([])).expect("the follower answers");
    }

    // The follower catches up with the miner and holds the same coins.
    let deadline = Instant::now() + Duration::from_secs(120);
    while tip(&b) != tip(&a) {
        if Instant::now() > deadline {
            for (name, node) in [("follower", &b), ("miner", &a)] {
                let log = std::fs::read_to_string(node.network_dir().join("debug.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                println!("--- {name} debug.log, newest first ---\n{}", tail.join("\n"));
            }
            panic!("follower stuck at {:?}, miner at {:?}", tip(&b), tip(&a));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(utxo_hash(&a), utxo_hash(&b));
    let acked = acked.lock().unwrap();
    println!(
        "kill -9: {} of the miner, {} of the follower; {} acknowledged blocks and {} acknowledged \
         transactions all kept; final height {}",
        restarts.0,
        restarts.1,
        acked.blocks.len(),
        acked.txids.len(),
        tip(&a).0
    );
    assert!(restarts.0 + restarts.1 >= 20);
}
