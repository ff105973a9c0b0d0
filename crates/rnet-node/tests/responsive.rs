//! The node stays responsive while it evaluates blocks (issue: Proof-of-Training used to run with
//! the chain lock held, inside the network task). A testnet miner (genesis shape d=128, L=4:
//! each block's Proof-of-Training takes seconds on two cores) mines while this test calls
//! `getblockcount` every 25 ms, and a second node pings it over P2P every 200 ms. Every answer
//! must come in under 100 ms while at least two blocks are mined and verified by both nodes.
//! Prints the worst and median latencies. (Regression: a follower's `getchunkhashes` made the
//! miner's network loop wait seconds for hashing threads the benchmark evaluation held, and the
//! RPC server, which shared that loop's runtime, waited with it.)

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use rnet_functional::TestNode;
use serde_json::json;

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");
const LIMIT: Duration = Duration::from_millis(100);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn height(node: &TestNode) -> u64 {
    node.call("getblockcount", json!([])).unwrap().as_u64().unwrap()
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize]
}

/// A recovery-policy (heartbeat) address of throw-away keys: what `-miningaddress` requires.
fn mining_policy_address(network: rnet_primitives::Network) -> String {
    use rnet_script::ScriptTemplate;
    let owner = rnet_crypto::SigningKey::from_bytes(&[0x51; 32]).public_key();
    let recovery = rnet_crypto::SigningKey::from_bytes(&[0x52; 32]).public_key();
    rnet_script::Heartbeat::new(owner, recovery, rnet_script::RelativeLock::Blocks(100))
        .expect("a valid heartbeat policy")
        .address(network)
        .to_string()
}

#[test]
fn rpc_and_p2p_answer_within_100_ms_during_evaluation() {
    let port = free_port().to_string();
    // A testnet recovery-policy address of throw-away keys.
    let address = mining_policy_address(rnet_primitives::Network::Testnet);
    let miner = TestNode::start_on(
        Path::new(RNETD),
        "testnet",
        &[
            &format!("-port={port}"),
            "-bind=127.0.0.1",
            "-connect=0",
            "-mine",
            &format!("-miningaddress={address}"),
        ],
    )
    .expect("miner starts");
    let connect = format!("-connect=127.0.0.1:{port}");
    let follower =
        TestNode::start_on(Path::new(RNETD), "testnet", &["-port=0", "-bind=127.0.0.1", &connect])
            .expect("follower starts");

    let start_height = height(&miner);
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut rpc = Vec::new();
    let mut pings = Vec::new();
    let mut last_ping = Instant::now();
    // Until the miner has mined two blocks and the follower has verified them.
    while height(&follower) < start_height + 2 {
        assert!(Instant::now() < deadline, "no blocks within 240 s");
        let t = Instant::now();
        miner.call("getblockcount", json!([])).unwrap();
        rpc.push(t.elapsed());
        if last_ping.elapsed() > Duration::from_millis(200) {
            // The follower's ping to the miner (its pingtime is the round trip over P2P).
            follower.call("ping", json!([])).unwrap();
            last_ping = Instant::now();
            let peers = follower.call("getpeerinfo", json!([])).unwrap();
            if let Some(p) = peers.as_array().and_then(|a| a.first()) {
                if let Some(secs) = p["pingtime"].as_f64() {
                    pings.push(Duration::from_secs_f64(secs));
                }
            }
            // Also the follower's own RPC, while it verifies the miner's blocks.
            let t = Instant::now();
            follower.call("getblockcount", json!([])).unwrap();
            rpc.push(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let blocks = height(&miner) - start_height;
    let (rpc_max, rpc_p50) = (percentile(&mut rpc, 1.0), percentile(&mut rpc, 0.5));
    assert!(!pings.is_empty(), "no ping round trip measured");
    let (ping_max, ping_p50) = (percentile(&mut pings, 1.0), percentile(&mut pings, 0.5));
    println!(
        "{blocks} blocks mined and verified; getblockcount: {} calls, median {:.1} ms, worst \
         {:.1} ms; P2P ping: {} samples, median {:.1} ms, worst {:.1} ms",
        rpc.len(),
        rpc_p50.as_secs_f64() * 1e3,
        rpc_max.as_secs_f64() * 1e3,
        pings.len(),
        ping_p50.as_secs_f64() * 1e3,
        ping_max.as_secs_f64() * 1e3,
    );
    if rpc_max >= LIMIT || ping_max >= LIMIT {
        // Say what held the nodes up: long chain-lock holds are logged as warnings.
        for (name, node) in [("miner", &miner), ("follower", &follower)] {
            let log =
                std::fs::read_to_string(node.network_dir().join("debug.log")).unwrap_or_default();
            for line in log.lines().filter(|l| l.contains("WARN")) {
                println!("{name}: {line}");
            }
        }
    }
    assert!(rpc_max < LIMIT, "getblockcount took {rpc_max:?}");
    assert!(ping_max < LIMIT, "ping took {ping_max:?}");
}
