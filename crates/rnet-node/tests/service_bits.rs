//! Service bits (issue 15) with real processes: a node started with `-prunemodels=N` advertises
//! that depth, an archive node (`-prunemodels=0`) the archive bit, and each shows the other's in
//! `getpeerinfo` (`getnetworkinfo` shows its own).

use std::path::Path;
use std::time::{Duration, Instant};

use rnet_functional::TestNode;
use rnet_net::message::{NODE_MODEL_ARCHIVE, NODE_NETWORK};
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

fn start(extra: &[&str]) -> TestNode {
    let mut args = vec!["-port=0", "-bind=127.0.0.1", "-connect=0"];
    args.extend_from_slice(extra);
    TestNode::start(Path::new(RNETD), &args).expect("rnetd starts")
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

/// The first handshaked peer in `getpeerinfo`, waiting up to 20 s.
fn handshaked_peer(n: &TestNode) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let peers = n.call("getpeerinfo", json!([])).unwrap();
        if let Some(p) = peers.as_array().unwrap().iter().find(|p| p["handshaked"] == json!(true)) {
            return p.clone();
        }
        assert!(Instant::now() < deadline, "no handshaked peer: {peers}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn getpeerinfo_shows_the_peers_model_depth() {
    let pruning = start(&["-prunemodels=12"]);
    let archive = start(&["-prunecheckpoints=0"]);
    let hex = |s: u64| format!("{s:016x}");
    let info = pruning.call("getnetworkinfo", json!([])).unwrap();
    assert_eq!(
        (&info["localservices"], &info["model_depth"]),
        (&json!(hex(NODE_NETWORK)), &json!(12))
    );
    let info = archive.call("getnetworkinfo", json!([])).unwrap();
    assert_eq!(info["localservices"], json!(hex(NODE_NETWORK | NODE_MODEL_ARCHIVE)));
    assert_eq!(info["model_depth"], json!(0));

    let target = format!("127.0.0.1:{}", p2p_port(&archive));
    pruning.call("addnode", json!([target, "onetry"])).unwrap();
    let seen = handshaked_peer(&archive);
    assert_eq!(seen["services"], json!(hex(NODE_NETWORK)), "{seen}");
    assert_eq!(
        (&seen["model_depth"], &seen["model_archive"]),
        (&json!(12), &json!(false)),
        "{seen}"
    );
    let seen = handshaked_peer(&pruning);
    assert_eq!(seen["services"], json!(hex(NODE_NETWORK | NODE_MODEL_ARCHIVE)), "{seen}");
    assert_eq!((&seen["model_depth"], &seen["model_archive"]), (&json!(0), &json!(true)), "{seen}");
}

#[test]
fn conflicting_prune_options_are_refused() {
    let r = TestNode::start(Path::new(RNETD), &["-prunemodels=5", "-prunecheckpoints=6"]);
    assert!(r.is_err(), "rnetd started with -prunemodels=5 -prunecheckpoints=6");
}
