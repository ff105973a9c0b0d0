//! Social recovery, claim and emission sweep with real `rnetd`: guardian wallets sign a
//! `createrecoverytx` request, the owner cancels one recovery (rotating to a new guardian set),
//! the new key claims another (of a coin still under the old set) after the cancel window, and a dormant emission-policy coin is swept into the emission pool.

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_rpc::{Auth, ClientError, RpcClient};
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");
const WINDOW: u64 = 5;
const INACTIVITY: u64 = 20;

fn wallet(node: &TestNode, name: &str) -> RpcClient {
    RpcClient::new(
        &format!("{}/wallet/{name}", node.url()),
        Auth::Cookie(node.network_dir().join(rnet_rpc::COOKIE_FILE)),
    )
    .unwrap()
}

fn rpc_err(r: Result<Value, ClientError>) -> (i32, String) {
    match r {
        Err(ClientError::Rpc { code, message }) => (code, message),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

fn res(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not an amount: {v}")) * 1e8).round() as i64
}

fn outside_address() -> String {
    rnet_script::PlainKey::new(SigningKey::from_bytes(&[0x22; 32]).public_key())
        .address(rnet_primitives::Network::Regtest)
        .to_string()
}

fn mine(node: &TestNode, n: u64) {
    node.call("generatetoaddress", json!([n, outside_address()])).unwrap();
}

fn height(node: &TestNode) -> u64 {
    node.call("getblockcount", json!([])).unwrap().as_u64().unwrap()
}

fn recovery_pending(w: &RpcClient) -> i64 {
    res(&w.call("getbalances", json!([])).unwrap()["mine"]["recovery_pending"])
}

fn heartbeat() -> Value {
    let k = hex::encode(SigningKey::from_bytes(&[0x11; 32]).public_key().as_bytes());
    json!({ "heartbeat": { "recovery": k, "interval": 50 } })
}

/// createrecoverytx → G1 signs (incomplete) → G2 signs (complete) → sendrecoverytx → mined.
/// Returns the recovery txid.
fn recover(node: &TestNode, g1: &RpcClient, g2: &RpcClient, coin: &str, new_key: &str) -> String {
    let req = node.call("createrecoverytx", json!([coin, new_key])).unwrap();
    assert_eq!(req["complete"], json!(false), "{req}");
    assert_eq!(req["threshold"], json!(2));
    // A garbled or re-versioned request is refused.
    let hex = req["hex"].as_str().unwrap();
    assert_eq!(rpc_err(g1.call("signrecoverytx", json!([&hex[..hex.len() - 2]]))).0, -22);
    for version in [1, 3] {
        let mut bumped = hex::decode(hex).unwrap();
        bumped[7] = version;
        assert_eq!(rpc_err(g1.call("signrecoverytx", json!([hex::encode(bumped)]))).0, -22);
    }
    // The request names the chain (its genesis id, bytes 8..40): a guardian wallet refuses to
    // sign for another one.
    let bytes = hex::decode(hex).unwrap();
    let genesis = node.call("getblockhash", json!([0])).unwrap();
    assert_eq!(json!(hex::encode(&bytes[8..40])), genesis);
    let mut foreign = bytes;
    foreign[8] ^= 1;
    let (code, message) = rpc_err(g1.call("signrecoverytx", json!([hex::encode(foreign)])));
    assert_eq!(code, -8, "{message}");
    assert!(message.contains("genesis"), "{message}");
    let s1 = g1.call("signrecoverytx", json!([hex])).unwrap();
    assert_eq!(
        (s1["complete"].clone(), s1["signatures"].clone()),
        (json!(false), json!(1)),
        "{s1}"
    );
    assert!(s1.get("tx").is_none());
    assert_eq!(rpc_err(node.call("sendrecoverytx", json!([s1["hex"]]))).0, -8);
    let s2 = g2.call("signrecoverytx", json!([s1["hex"]])).unwrap();
    assert_eq!(s2["complete"], json!(true), "{s2}");
    let txid = node.call("sendrecoverytx", json!([s2["hex"]])).unwrap();
    assert_eq!(txid, s2["txid"]);
    mine(node, 1);
    txid.as_str().unwrap().to_string()
}

#[test]
fn social_recovery_cancel_claim_and_emission_sweep() {
    let node = TestNode::start(std::path::Path::new(RNETD), &[]).expect("rnetd starts");
    for g in ["G1", "G2"] {
        node.call("createwallet", json!([g, heartbeat()])).unwrap();
    }
    let (g1, g2) = (wallet(&node, "G1"), wallet(&node, "G2"));
    let guardians = [
        g1.call("getguardiankey", json!([])).unwrap(),
        g2.call("getguardiankey", json!([])).unwrap(),
    ];
    let policy =
        json!({ "social": { "guardians": guardians, "threshold": 2, "cancel_window": WINDOW } });
    node.call("createwallet", json!(["O", policy])).unwrap();
    let o = wallet(&node, "O");
    let o_addr = o.call("getnewaddress", json!([])).unwrap();
    node.call("generatetoaddress", json!([2, o_addr])).unwrap();
    mine(&node, 5);
    let unspent = o.call("listunspent", json!([])).unwrap();
    let unspent = unspent.as_array().unwrap();
    let coins: Vec<String> =
        unspent.iter().map(|c| format!("{}:{}", c["txid"].as_str().unwrap(), c["vout"])).collect();
    assert_eq!(coins.len(), 2);
    let new_secret = [0x33u8; 32];
    let new_key = hex::encode(SigningKey::from_bytes(&new_secret).public_key().as_bytes());

    // A wallet whose guardian key is not in the policy cannot sign.
    let req = node.call("createrecoverytx", json!([coins[0], new_key])).unwrap();
    assert_eq!(rpc_err(o.call("signrecoverytx", json!([req["hex"]]))).0, -8);

    // Round 1: recovery, then the owner cancels within the window.
    let trusted_before = res(&o.call("getbalance", json!([])).unwrap());
    recover(&node, &g1, &g2, &coins[0], &new_key);
    let pending = recovery_pending(&o);
    let v0 = res(&unspent[0]["amount"]);
    assert!(pending > 0 && pending < v0 && v0 - pending <= 1_000_000, "{pending} of {v0}");
    assert_eq!(res(&o.call("getbalance", json!([])).unwrap()), trusted_before - v0);
    // A cancel must rotate the guardians: the old call shapes and the same guardian set (in
    // another order, with another threshold) are refused with -8 and change nothing.
    let reordered = json!({ "social": {
        "guardians": [guardians[1], guardians[0]], "threshold": 1, "cancel_window": WINDOW } });
    for args in [json!([]), json!([6]), json!([null, 6]), json!([policy]), json!([reordered])] {
        let (code, msg) = rpc_err(o.call("cancelrecovery", args.clone()));
        assert!(code == -8 && msg.contains("different guardian set"), "{args}: {code} {msg}");
    }
    assert_eq!(o.call("getwalletinfo", json!([])).unwrap()["policy_generation"], json!(0));
    let fresh_guardian = hex::encode(SigningKey::from_bytes(&[0x44; 32]).public_key().as_bytes());
    let rotated = json!({ "social": {
        "guardians": [guardians[0], fresh_guardian], "threshold": 2, "cancel_window": WINDOW } });
    let cancel = o.call("cancelrecovery", json!([rotated, 6])).unwrap();
    assert_eq!(cancel["policy"]["guardians"], json!([guardians[0], fresh_guardian]), "{cancel}");
    mine(&node, 1);
    assert_eq!(recovery_pending(&o), 0);
    let trusted_after = res(&o.call("getbalance", json!([])).unwrap());
    assert_eq!(trusted_after, trusted_before - v0 + pending - res(&cancel["fee"]));
    let info = o.call("getwalletinfo", json!([])).unwrap();
    assert_eq!(info["policy_generation"], json!(1), "{info}");
    assert_eq!(info["policy"]["guardians"], json!([guardians[0], fresh_guardian]), "{info}");
    // Nothing is near expiry on a young chain; listunspent shows each coin's expiry distance.
    assert_eq!(info["warnings"], json!([]), "{info}");
    let unspent_now = o.call("listunspent", json!([])).unwrap();
    let moved = unspent_now
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["txid"] == cancel["txid"])
        .unwrap_or_else(|| panic!("the cancel output is the wallet's: {unspent_now}"));
    let expiry = &moved["expiry"];
    assert!(expiry["remaining"].as_u64().unwrap() > 0, "{moved}");
    assert_eq!(expiry["near"], json!(false), "{moved}");

    // Round 2: no cancel; the new key's claim waits for the window.
    let rtxid = recover(&node, &g1, &g2, &coins[1], &new_key);
    let pending_at = height(&node);
    assert!(recovery_pending(&o) > 0);
    let claim = json!([format!("{rtxid}:0"), hex::encode(new_secret), outside_address()]);
    let (code, msg) = rpc_err(node.call("completerecovery", claim.clone()));
    assert!(code == -26 && msg.contains("relative lock time not reached"), "{code} {msg}");
    mine(&node, pending_at + WINDOW - 1 - height(&node));
    let claimed = node.call("completerecovery", claim).unwrap();
    mine(&node, 1);
    let block =
        node.call("getblock", json!([node.call("getbestblockhash", json!([])).unwrap()])).unwrap();
    assert!(block["tx"].as_array().unwrap().contains(&claimed["txid"]), "{block}");
    assert_eq!(recovery_pending(&o), 0);

    // Emission sweep: only after the inactivity period; the pool grows by the swept amount.
    node.call("createwallet", json!(["E", {"emission": {"inactivity": INACTIVITY}}])).unwrap();
    let e = wallet(&node, "E");
    let e_addr = e.call("getnewaddress", json!([])).unwrap();
    node.call("generatetoaddress", json!([1, e_addr])).unwrap();
    let coin_height = height(&node);
    mine(&node, 6);
    let coin = e.call("listunspent", json!([])).unwrap()[0].clone();
    let coin = format!("{}:{}", coin["txid"].as_str().unwrap(), coin["vout"]);
    let (code, msg) = rpc_err(node.call("sweepemission", json!([coin])));
    assert!(code == -26 && msg.contains("relative lock time not reached"), "{code} {msg}");
    mine(&node, coin_height + INACTIVITY - 1 - height(&node));
    let pool =
        |n: &TestNode| res(&n.call("getblockchaininfo", json!([])).unwrap()["emission_pool"]);
    // The tip's coinbase value (its subsidy varies with the block's improvement).
    let tip_coinbase = |n: &TestNode| {
        let tip = n.call("getbestblockhash", json!([])).unwrap();
        let block = n.call("getblock", json!([tip, 2])).unwrap();
        block["tx"][0]["vout"].as_array().unwrap().iter().map(|o| res(&o["value"])).sum::<i64>()
    };
    let p0 = pool(&node);
    mine(&node, 1);
    // An empty block: the pool pays the subsidy and nothing returns.
    assert_eq!(pool(&node) - p0, -tip_coinbase(&node));
    let coin_value = res(&e.call("listunspent", json!([])).unwrap()[0]["amount"]);
    let swept = node.call("sweepemission", json!([coin])).unwrap();
    let fee = coin_value - res(&swept["amount"]);
    assert!(fee > 0, "{swept}");
    let p1 = pool(&node);
    mine(&node, 1);
    // The sweep block: the pool pays the subsidy (coinbase minus the sweep's fee) and gets the
    // swept amount back.
    let subsidy = tip_coinbase(&node) - fee;
    assert_eq!(pool(&node) - p1, res(&swept["amount"]) - subsidy, "{swept}");
    assert_eq!(res(&e.call("getbalances", json!([])).unwrap()["mine"]["trusted"]), 0);
}
