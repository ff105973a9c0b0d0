//! Recovery stays mandatory for miners (docs/node.md "Mining payout"): `rnetd -mine` refuses a
//! bare-key payout; on regtest with no payout it creates wallet `miner` with a heartbeat policy,
//! and once a mined coinbase has not moved for the policy's interval, the recovery key claims it
//! with `claimheartbeatrecovery` (refused before).

use std::path::Path;
use std::process::Command;

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_primitives::Network;
use rnet_script::ScriptTemplate;
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

/// `rnetd` with `args` must exit at once with an error containing `needle`.
fn refused(args: &[&str], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(RNETD)
        .arg(format!("-datadir={}", dir.path().display()))
        .args(["-rpcport=0", "-port=0", "-connect=0", "-printtoconsole=1"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{args:?} started: {stderr}");
    assert!(stderr.contains(needle) || stdout.contains(needle), "{args:?}: {stderr}{stdout}");
}

fn height(n: &TestNode) -> u64 {
    n.call("getblockcount", json!([])).unwrap().as_u64().unwrap()
}

/// A recovery-policy address of keys nobody here uses (where claims and other blocks go).
fn elsewhere() -> (String, Vec<u8>) {
    let owner = SigningKey::from_bytes(&[0x61; 32]).public_key();
    let recovery = SigningKey::from_bytes(&[0x62; 32]).public_key();
    let t = rnet_script::Heartbeat::new(owner, recovery, rnet_script::RelativeLock::Blocks(10))
        .unwrap();
    (t.address(Network::Regtest).to_string(), t.script_pubkey())
}

#[test]
fn mining_to_a_bare_key_is_refused() {
    let bare = rnet_script::PlainKey::new(SigningKey::from_bytes(&[0x33; 32]).public_key());
    let regtest = bare.address(Network::Regtest).to_string();
    refused(&["-regtest", "-mine", &format!("-miningaddress={regtest}")], "bare-key address");
    // The old option name is checked the same way.
    refused(&["-regtest", "-mine", &format!("-mineaddress={regtest}")], "bare-key address");
    // Off regtest nothing is created for the miner: a payout must be named.
    refused(&["-testnet", "-mine"], "-mine needs a recovery-policy payout");
    // A wallet that does not exist is named in the error.
    refused(&["-regtest", "-mine", "-miningwallet=nosuch"], "mining wallet nosuch");
}

#[test]
fn regtest_mining_without_a_payout_creates_a_heartbeat_wallet() {
    let node = TestNode::start(Path::new(RNETD), &["-mine"]).expect("rnetd starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while height(&node) < 2 {
        assert!(std::time::Instant::now() < deadline, "the miner made no progress");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(node.network_dir().join("debug.log")).unwrap();
    assert!(
        log.contains("created wallet miner for mining with a heartbeat recovery policy"),
        "{log}"
    );
    assert!(node.network_dir().join("miner-recovery.key").exists());
    // Block 1's coinbase pays an address of that wallet, whose policy is a heartbeat.
    let block =
        node.call("getblock", json!([node.call("getblockhash", json!([1])).unwrap(), 2])).unwrap();
    let coinbase = block["tx"][0]["txid"].clone();
    let tx = node.call("gettransaction", json!([coinbase])).expect("the wallet holds the coinbase");
    assert_eq!(tx["details"][0]["category"], json!("immature"), "{tx}");
    let policy = node.call("getrecoveryinfo", json!([])).unwrap();
    assert!(policy.to_string().contains("heartbeat"), "{policy}");
}

#[test]
fn a_mined_coinbase_is_claimed_through_its_recovery_path_after_the_interval() {
    const INTERVAL: u64 = 10;
    let recovery = SigningKey::from_bytes(&[0x71; 32]);
    let secret = hex::encode(recovery.as_bytes());
    let mut node = TestNode::start(Path::new(RNETD), &[]).expect("rnetd starts");
    let policy = json!({ "heartbeat": {
        "recovery": hex::encode(recovery.public_key().as_bytes()),
        "interval": INTERVAL,
    }});
    node.call("createwallet", json!(["m", policy])).unwrap();
    node.restart(&["-mine", "-miningwallet=m"]).expect("restart with -mine");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while height(&node) < 2 {
        assert!(std::time::Instant::now() < deadline, "the miner made no progress");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    node.restart(&["-nomine", "-wallet=m"]).expect("restart without mining");
    let block =
        node.call("getblock", json!([node.call("getblockhash", json!([1])).unwrap(), 2])).unwrap();
    let coinbase = block["tx"][0]["txid"].as_str().unwrap().to_string();
    node.call("gettransaction", json!([coinbase])).expect("wallet m holds the coinbase");
    let coin = format!("{coinbase}:0");
    let (dest, dest_spk) = elsewhere();
    // Too early: mature (5 blocks) but not still for the interval (10): the relative lock of
    // the recovery path refuses it.
    let h = height(&node);
    if h < 7 {
        node.call("generatetoaddress", json!([7 - h, dest])).unwrap();
    }
    let e = node.call("claimheartbeatrecovery", json!([coin, secret, dest])).unwrap_err();
    println!("RECOVERY: too early: {e}");
    assert!(e.to_string().contains("relative lock time not reached"), "{e}");
    // A key that is not the policy's recovery key is refused.
    let wrong = hex::encode([0x77u8; 32]);
    let e = node.call("claimheartbeatrecovery", json!([coin, wrong, dest])).unwrap_err();
    assert!(e.to_string().contains("recovery key"), "{e}");
    // After the interval the recovery key claims the coinbase to `dest`.
    let h = height(&node);
    let needed = (1 + INTERVAL).saturating_sub(h);
    if needed > 0 {
        node.call("generatetoaddress", json!([needed, dest])).unwrap();
    }
    let claim = node.call("claimheartbeatrecovery", json!([coin, secret, dest])).unwrap();
    let txid = claim["txid"].as_str().unwrap().to_string();
    node.call("generatetoaddress", json!([1, dest])).unwrap();
    let out = node.call("gettxout", json!([txid, 0])).unwrap();
    assert!(out["confirmations"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(out["scriptPubKey"]["hex"], json!(hex::encode(&dest_spk)));
    let value = |v: &Value| (v.as_f64().unwrap() * 1e8).round() as u64;
    let coinbase_value = value(&block["tx"][0]["vout"][0]["value"]);
    assert_eq!(value(&out["value"]) + value(&claim["fee"]), coinbase_value);
    assert!(
        node.call("gettxout", json!([coinbase, 0])).unwrap().is_null(),
        "the coinbase is spent"
    );
    println!("RECOVERY: coinbase {coin} claimed by the recovery key in {txid}");
}
