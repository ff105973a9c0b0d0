//! Snapshot sync with real processes (docs/protocol.md Part V §7.2, issue 15): a new node joins
//! an N-block regtest chain whose peer keeps only the models of its last 20 blocks. With
//! `-assumevalid=<block N − 10>` it connects the blocks below without their models
//! (transactions checked), fetches the whole checkpoint of block N − 10 from the peer (checked
//! chunk by chunk and against the committed root), then applies the last 10 updates, and ends on
//! the same tip, UTXO set and model root as the peer. A node without `-assumevalid` cannot sync
//! from such peers (the early updates are gone), which is why snapshot sync exists.
//!
//! N is 60 in CI (mining is the slow part: about 1.1 s per block early, 2–6 s per block past
//! height 250); `RNET_SNAPSHOT_BLOCKS=300` runs the 300-block version the issue asks for
//! (measured: 300 blocks mined in 1,106 s, the new node synced in 5.6 s).

use std::path::Path;
use std::time::{Duration, Instant};

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_primitives::Network;
use rnet_script::PlainKey;
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");
const KEEP: u64 = 20;

/// Chain length: `RNET_SNAPSHOT_BLOCKS` (a multiple of 10, at least 30), default 60.
fn blocks() -> u64 {
    std::env::var("RNET_SNAPSHOT_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &u64| *n >= 30 && n % 10 == 0)
        .unwrap_or(60)
}

fn start(extra: &[&str]) -> TestNode {
    let mut args = vec!["-port=0", "-bind=127.0.0.1", "-connect=0"];
    args.extend_from_slice(extra);
    TestNode::start(Path::new(RNETD), &args).expect("rnetd starts")
}

fn height(n: &TestNode) -> u64 {
    n.call("getblockcount", json!([])).unwrap().as_u64().unwrap()
}

fn wait_height(n: &TestNode, h: u64, secs: u64) -> f64 {
    let started = Instant::now();
    while height(n) < h {
        let log = std::fs::read_to_string(n.network_dir().join("debug.log")).unwrap_or_default();
        let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "no height {h} in {secs} s:\n{tail}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed().as_secs_f64()
}

fn utxo_set(n: &TestNode) -> Value {
    let s = n.call("gettxoutsetinfo", json!([])).unwrap();
    json!([s["bestblock"], s["utxo_set_hash"], s["txouts"]])
}

fn model(n: &TestNode, hash: &Value, object: &str) -> Value {
    n.call("getcheckpointinfo", json!([hash, object])).unwrap()
}

#[test]
fn new_node_syncs_from_pruned_peers_with_a_snapshot_and_updates() {
    let (blocks, snapshot_height) = (blocks(), blocks() - 10);
    let keep = format!("-prunemodels={KEEP}");
    let source = start(&[&keep]);
    let key = SigningKey::from_bytes(&[0x45; 32]);
    let address = PlainKey::new(key.public_key()).address(Network::Regtest).to_string();
    let started = Instant::now();
    for _ in 0..blocks / 10 {
        source.call("generatetoaddress", json!([10, address])).unwrap();
    }
    let mine_s = started.elapsed().as_secs_f64();
    let tip = source.call("getbestblockhash", json!([])).unwrap();
    let snapshot = source.call("getblockhash", json!([snapshot_height])).unwrap();
    let early = source.call("getblockhash", json!([5])).unwrap();
    // The source pruned: neither the model nor the update of block 5 is there any more.
    assert_eq!(model(&source, &early, "checkpoint")["available"], json!(false));
    assert_eq!(model(&source, &early, "update")["available"], json!(false));
    assert_eq!(model(&source, &snapshot, "checkpoint")["available"], json!(true));

    // A node with snapshot sync at block N − 10, connected to the pruned source.
    let assume = format!("-assumevalid={}", snapshot.as_str().unwrap());
    let node = start(&[&assume, &keep]);
    node.call("addnode", json!([source.p2p_addr().to_string(), "onetry"])).unwrap();
    let sync_s = wait_height(&node, blocks, 600);
    println!(
        "SNAPSHOT SYNC: {blocks} regtest blocks mined in {mine_s:.1} s; a new node synced from a \
         peer keeping {KEEP} models in {sync_s:.2} s (snapshot at {snapshot_height}, then {} \
         updates)",
        blocks - snapshot_height
    );
    assert_eq!(node.call("getbestblockhash", json!([])).unwrap(), tip);
    assert_eq!(utxo_set(&node), utxo_set(&source));
    let (mine, theirs) = (model(&node, &tip, "checkpoint"), model(&source, &tip, "checkpoint"));
    assert_eq!(mine["root"], theirs["root"]);
    assert_eq!(mine["available"], json!(true), "the node holds the tip model it derived");
    // It never had the early models or updates, and holds the snapshot's model.
    assert_eq!(model(&node, &early, "checkpoint")["available"], json!(false));
    assert_eq!(model(&node, &early, "update")["available"], json!(false));
    let info = node.call("getblockchaininfo", json!([])).unwrap();
    assert_eq!(info["initialblockdownload"], json!(false), "{info}");

    // The new node now serves the chain in turn: a second snapshot node syncs from it alone.
    let second = start(&[&assume]);
    second.call("addnode", json!([node.p2p_addr().to_string(), "onetry"])).unwrap();
    wait_height(&second, blocks, 600);
    assert_eq!(utxo_set(&second), utxo_set(&source));
    assert_eq!(model(&second, &tip, "checkpoint")["root"], theirs["root"]);
}
