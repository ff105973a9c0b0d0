//! `-assumevalid` with real processes (docs/protocol.md Part V §7.1): a node that syncs a
//! regtest chain with `-assumevalid=<tip>` skips the Proof-of-Training evaluations of every block
//! and ends on the same tip and UTXO set as one that evaluates everything (`-assumevalid=0`).
//! Prints both sync times.

use std::path::Path;
use std::time::{Duration, Instant};

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_primitives::Network;
use rnet_script::PlainKey;
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");
const BLOCKS: u64 = 40;

fn start(extra: &[&str]) -> TestNode {
    let mut args = vec!["-port=0", "-bind=127.0.0.1", "-connect=0"];
    args.extend_from_slice(extra);
    TestNode::start(Path::new(RNETD), &args).expect("rnetd starts")
}

fn height(n: &TestNode) -> u64 {
    n.call("getblockcount", json!([])).unwrap().as_u64().unwrap()
}

/// Starts a node with `extra`, connects it to `source` and returns it with the seconds it took
/// to reach the source's height.
fn sync_from(source: &TestNode, extra: &[&str]) -> (TestNode, f64) {
    let node = start(extra);
    let started = Instant::now();
    node.call("addnode", json!([source.p2p_addr().to_string(), "onetry"])).unwrap();
    let deadline = started + Duration::from_secs(300);
    while height(&node) < BLOCKS {
        assert!(Instant::now() < deadline, "no sync within 300 s");
        std::thread::sleep(Duration::from_millis(25));
    }
    (node, started.elapsed().as_secs_f64())
}

fn utxo_set(n: &TestNode) -> Value {
    let s = n.call("gettxoutsetinfo", json!([])).unwrap();
    json!([s["bestblock"], s["utxo_set_hash"], s["txouts"]])
}

fn log_of(n: &TestNode) -> String {
    std::fs::read_to_string(n.network_dir().join("debug.log")).unwrap_or_default()
}

#[test]
fn assumevalid_skips_the_evaluations_and_reaches_the_same_state() {
    let source = start(&[]);
    let key = SigningKey::from_bytes(&[0x44; 32]);
    let address = PlainKey::new(key.public_key()).address(Network::Regtest).to_string();
    source.call("generatetoaddress", json!([BLOCKS, address])).unwrap();
    let tip = source.call("getbestblockhash", json!([])).unwrap();
    let tip = tip.as_str().unwrap().to_string();

    let (full, full_s) = sync_from(&source, &["-assumevalid=0"]);
    let assume = format!("-assumevalid={tip}");
    // Without snapshot sync (tests/snapshot_sync.rs): every update is applied, only the
    // evaluations are skipped.
    let (assumed, assumed_s) =
        sync_from(&source, &[&assume, "-snapshotsync=0", "-debug=rnet_chain=debug,info"]);
    println!(
        "ASSUMEVALID: {BLOCKS} regtest blocks synced in {full_s:.2} s evaluating every block, \
         {assumed_s:.2} s with -assumevalid=<tip> ({:.0}% less)",
        100.0 * (1.0 - assumed_s / full_s)
    );
    assert_eq!(utxo_set(&full), utxo_set(&source));
    assert_eq!(utxo_set(&assumed), utxo_set(&source));
    let log = log_of(&assumed);
    assert!(log.contains("assumed-valid block located"), "the ancestry was never resolved");
    let skipped = log.matches("Proof-of-Training evaluations skipped").count();
    assert!(skipped as u64 >= BLOCKS, "only {skipped} of {BLOCKS} blocks skipped evaluation");
    assert!(!log_of(&full).contains("assumed-valid block located"));
}
