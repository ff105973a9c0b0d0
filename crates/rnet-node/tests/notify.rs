//! `-blocknotify` and `-walletnotify` (docs/node.md "Notifications") with a real `rnetd`: one
//! command per block with that block's hash, in order; one per wallet transaction (new, or
//! newly confirmed) with its txid and the wallet's name.

use std::path::Path;
use std::time::{Duration, Instant};

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use serde_json::json;

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn blocknotify_runs_once_per_block_and_walletnotify_once_per_wallet_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = dir.path().join("blocks.txt");
    let wallet = dir.path().join("wallet.txt");
    let block_cmd = format!("-blocknotify=echo %s >> {}", blocks.display());
    let wallet_cmd = format!("-walletnotify=echo %s %w >> {}", wallet.display());
    let node = TestNode::start(Path::new(RNETD), &[&block_cmd, &wallet_cmd]).expect("rnetd starts");
    let recovery = hex::encode(SigningKey::from_bytes(&[0x11; 32]).public_key().as_bytes());
    let policy = json!({ "heartbeat": { "recovery": recovery, "interval": 1000 } });
    node.call("createwallet", json!(["notified", policy])).unwrap();
    let address = node.call("getnewaddress", json!([])).unwrap();
    let hashes = node.call("generatetoaddress", json!([7, address])).unwrap();
    let hashes: Vec<String> =
        hashes.as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect();
    wait_for("seven block notifications", || lines(&blocks).len() >= 7);
    assert_eq!(lines(&blocks), hashes, "once per block, in order, with its hash");

    // Each coinbase is a wallet transaction of "notified".
    let coinbase = |h: &str| -> String {
        let b = node.call("getblock", json!([h, 1])).unwrap();
        b["tx"][0].as_str().unwrap().to_string()
    };
    let expected: Vec<String> =
        hashes.iter().map(|h| format!("{} notified", coinbase(h))).collect();
    wait_for("seven wallet notifications", || lines(&wallet).len() >= 7);
    assert_eq!(lines(&wallet), expected);

    // A payment out: notified when it enters the mempool and again when it confirms.
    let outside = rnet_script::PlainKey::new(SigningKey::from_bytes(&[0x22; 32]).public_key())
        .address(rnet_primitives::Network::Regtest)
        .to_string();
    let txid = node.call("sendtoaddress", json!([outside, 1.0])).unwrap();
    let txid = txid.as_str().unwrap().to_string();
    wait_for("the send's notification", || lines(&wallet).len() >= 8);
    assert_eq!(lines(&wallet)[7], format!("{txid} notified"));
    let more = node.call("generatetoaddress", json!([1, address])).unwrap();
    let block = more[0].as_str().unwrap().to_string();
    wait_for("the block's notifications", || {
        lines(&blocks).len() >= 8 && lines(&wallet).len() >= 10
    });
    assert_eq!(lines(&blocks)[7], block);
    let last: Vec<String> = lines(&wallet)[8..].to_vec();
    assert!(last.contains(&format!("{txid} notified")), "confirmation of the send: {last:?}");
    assert!(last.contains(&format!("{} notified", coinbase(&block))), "{last:?}");
    assert_eq!(lines(&wallet).len(), 10, "nothing is notified twice for one state");
}
