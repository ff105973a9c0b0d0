//! Wallet functional tests: real `rnetd` processes with several wallets, driven over JSON-RPC
//! on `/wallet/<name>` paths (harness: `rnet-functional`).

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_rpc::{Auth, ClientError, RpcClient};
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

fn start() -> TestNode {
    TestNode::start(std::path::Path::new(RNETD), &[]).expect("rnetd starts")
}

fn wallet(node: &TestNode, name: &str) -> RpcClient {
    RpcClient::new(
        &format!("{}/wallet/{name}", node.url()),
        Auth::Cookie(node.network_dir().join(rnet_rpc::COOKIE_FILE)),
    )
    .unwrap()
}

fn rpc_code(r: Result<Value, ClientError>) -> i32 {
    match r {
        Err(ClientError::Rpc { code, .. }) => code,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

/// RNT JSON number → resonance.
fn res(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not an amount: {v}")) * 1e8).round() as i64
}

fn recovery_key() -> String {
    hex::encode(SigningKey::from_bytes(&[0x11; 32]).public_key().as_bytes())
}

fn heartbeat_policy(interval: u32) -> Value {
    json!({ "heartbeat": { "recovery": recovery_key(), "interval": interval } })
}

/// A plain-key address no wallet of the test owns (to mine blocks paying nobody we track).
fn outside_address() -> String {
    rnet_script::PlainKey::new(SigningKey::from_bytes(&[0x22; 32]).public_key())
        .address(rnet_primitives::Network::Regtest)
        .to_string()
}

fn total(w: &RpcClient) -> i64 {
    let b = w.call("getbalances", json!([])).unwrap();
    res(&b["mine"]["trusted"]) + res(&b["mine"]["immature"])
}

#[test]
fn two_wallets_send_bump_restore_encrypt_heartbeat() {
    let node = start();
    // No wallet yet: -18; wallets need a policy.
    assert_eq!(rpc_code(node.call("getbalance", json!([]))), -18);
    assert_eq!(rpc_code(node.call("createwallet", json!(["A", {"bogus": {}}]))), -8);
    let created = node.call("createwallet", json!(["A", heartbeat_policy(50)])).unwrap();
    assert_eq!(created["name"], json!("A"));
    let words_a = created["mnemonic"].as_str().unwrap().to_string();
    assert_eq!(words_a.split_whitespace().count(), 24);
    // With one wallet the plain path works.
    assert_eq!(node.call("getbalance", json!([])).unwrap(), json!(0.0));
    let created_b =
        node.call("createwallet", json!(["B", heartbeat_policy(50), "secret pass"])).unwrap();
    let words_b = created_b["mnemonic"].as_str().unwrap().to_string();
    // Wallet files are the owner's alone (0600 in a 0700 directory), and an unencrypted wallet
    // says so, with how to encrypt it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = node.network_dir().join("wallets");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("A.wallet")), 0o600);
        assert_eq!(mode(&dir.join("B.wallet")), 0o600);
    }
    let warnings = created["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w.as_str().unwrap().contains("not encrypted")
            && w.as_str().unwrap().contains("encryptwallet")),
        "{created}"
    );
    assert_eq!(created_b["warnings"], json!([]));
    assert_eq!(rpc_code(node.call("createwallet", json!(["B", heartbeat_policy(50)]))), -35);
    // Two wallets: the plain path is ambiguous (-19).
    assert_eq!(rpc_code(node.call("getbalance", json!([]))), -19);
    assert_eq!(node.call("listwallets", json!([])).unwrap(), json!(["A", "B"]));
    let (a, b) = (wallet(&node, "A"), wallet(&node, "B"));

    // Mine to A; maturity 5 on regtest.
    let a_addr = a.call("getnewaddress", json!([])).unwrap();
    node.call("generatetoaddress", json!([7, a_addr])).unwrap();
    let bal = a.call("getbalances", json!([])).unwrap();
    let rewards = total(&a);
    assert!(res(&bal["mine"]["trusted"]) > 0 && res(&bal["mine"]["immature"]) > 0, "{bal}");
    assert_eq!(a.call("listunspent", json!([])).unwrap().as_array().unwrap().len(), 3);

    // A locked encrypted wallet still hands out addresses from its keypool.
    let b_addr = b.call("getnewaddress", json!([])).unwrap();
    assert_eq!(rpc_code(a.call("sendtoaddress", json!(["nonsense", 1]))), -5);
    assert_eq!(rpc_code(a.call("sendtoaddress", json!([b_addr, 1_000_000]))), -6);
    let txid1 = a.call("sendtoaddress", json!([b_addr, 1.5])).unwrap();
    let pool = node.call("getrawmempool", json!([])).unwrap();
    assert!(pool.as_array().unwrap().contains(&txid1), "{pool}");
    let fee1 = -res(&a.call("gettransaction", json!([txid1])).unwrap()["fee"]);
    assert!(fee1 > 0);
    let bb = b.call("getbalances", json!([])).unwrap();
    assert_eq!(res(&bb["mine"]["untrusted_pending"]), 150_000_000, "{bb}");

    // RBF: bumpfee replaces the transaction in the mempool.
    let bumped = a.call("bumpfee", json!([txid1])).unwrap();
    let txid2 = bumped["txid"].clone();
    assert_ne!(txid1, txid2);
    assert_eq!(res(&bumped["origfee"]), fee1);
    let fee2 = res(&bumped["fee"]);
    assert!(fee2 > fee1, "{bumped}");
    let pool = node.call("getrawmempool", json!([])).unwrap();
    let pool = pool.as_array().unwrap();
    assert!(!pool.contains(&txid1) && pool.contains(&txid2), "{pool:?}");
    assert_eq!(-res(&a.call("gettransaction", json!([txid2])).unwrap()["fee"]), fee2);
    assert_eq!(rpc_code(a.call("gettransaction", json!([txid1]))), -5);

    // Confirm it (to an outside address, so A earns nothing more).
    node.call("generatetoaddress", json!([1, outside_address()])).unwrap();
    let tx2 = a.call("gettransaction", json!([txid2])).unwrap();
    assert_eq!(tx2["confirmations"], json!(1));
    assert_eq!(-res(&tx2["fee"]), fee2);
    assert_eq!(res(&tx2["amount"]), -150_000_000);
    assert_eq!(total(&a), rewards - 150_000_000 - fee2);
    let bb = b.call("getbalances", json!([])).unwrap();
    assert_eq!(res(&bb["mine"]["trusted"]), 150_000_000, "{bb}");
    assert_eq!(res(&bb["mine"]["untrusted_pending"]), 0, "{bb}");
    assert_eq!(res(&b.call("gettransaction", json!([txid2])).unwrap()["amount"]), 150_000_000);
    assert!(!a.call("listtransactions", json!([])).unwrap().as_array().unwrap().is_empty());

    // Encryption: a locked wallet cannot spend (-13), a wrong passphrase is -14, the right one
    // unlocks; the file never holds the words in plaintext.
    let a_addr2 = a.call("getnewaddress", json!([])).unwrap();
    assert_eq!(rpc_code(b.call("sendtoaddress", json!([a_addr2, 0.1]))), -13);
    assert_eq!(rpc_code(b.call("walletpassphrase", json!(["wrong", 60]))), -14);
    b.call("walletpassphrase", json!(["secret pass", 60])).unwrap();
    b.call("sendtoaddress", json!([a_addr2, 0.1])).unwrap();
    b.call("walletlock", json!([])).unwrap();
    assert_eq!(rpc_code(b.call("sendtoaddress", json!([a_addr2, 0.1]))), -13);
    let bytes = std::fs::read(node.network_dir().join("wallets/B.wallet")).unwrap();
    let first_words: String = words_b.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    assert!(!contains(&bytes, words_b.as_bytes()) && !contains(&bytes, first_words.as_bytes()));
    assert_eq!(rpc_code(a.call("walletpassphrase", json!(["x", 60]))), -15);
    node.call("generatetoaddress", json!([1, outside_address()])).unwrap();

    // Backup file; restore from the 24 words + rescan gives the same balance.
    let backup = node.datadir().join("a.backup");
    assert_eq!(rpc_code(a.call("backupwallet", json!([backup.to_str().unwrap()]))), -8);
    a.call("backupwallet", json!([backup.to_str().unwrap(), "backup pass"])).unwrap();
    assert!(std::fs::metadata(&backup).unwrap().len() > 0);
    let a_total = total(&a);
    node.call("createwallet", json!(["A2", heartbeat_policy(50), null, words_a])).unwrap();
    let a2 = wallet(&node, "A2");
    assert_eq!(total(&a2), a_total);
    let r = a2.call("rescanblockchain", json!([])).unwrap();
    assert_eq!(r["start_height"], json!(0));
    assert_eq!(total(&a2), a_total);
    // From the encrypted backup too.
    assert_eq!(
        rpc_code(node.call("restorewallet", json!(["A3", backup.to_str().unwrap(), "nope"]))),
        -14
    );
    node.call("restorewallet", json!(["A3", backup.to_str().unwrap(), "backup pass"])).unwrap();
    assert_eq!(total(&wallet(&node, "A3")), a_total);
    // Unload and load again (rescans from its last block).
    node.call("unloadwallet", json!(["A3"])).unwrap();
    assert_eq!(rpc_code(wallet(&node, "A3").call("getbalance", json!([]))), -18);
    node.call("generatetoaddress", json!([1, outside_address()])).unwrap();
    node.call("loadwallet", json!(["A3"])).unwrap();
    assert_eq!(rpc_code(node.call("loadwallet", json!(["A3"]))), -35);
    assert_eq!(rpc_code(node.call("loadwallet", json!(["nope"]))), -18);
    let a3 = wallet(&node, "A3");
    assert_eq!(total(&a3), a_total);
    assert_eq!(
        a3.call("getwalletinfo", json!([])).unwrap()["lastprocessedblock"]["height"],
        node.call("getblockcount", json!([])).unwrap()
    );

    // Heartbeat: every coin moves to a fresh address and its recovery deadline restarts
    // (two more blocks first so the last coinbase is mature and spendable too).
    node.call("generatetoaddress", json!([2, outside_address()])).unwrap();
    let info = a.call("getrecoveryinfo", json!([])).unwrap();
    assert_eq!(info["policy"]["kind"], json!("heartbeat"));
    for c in info["coins"].as_array().unwrap() {
        assert_eq!(c["path"], json!("recovery"));
        assert_eq!(c["deadline"]["height"], json!(c["height"].as_u64().unwrap() + 50));
    }
    let hb = a.call("sendheartbeat", json!([])).unwrap();
    assert!(res(&hb["fee"]) > 0);
    node.call("generatetoaddress", json!([1, outside_address()])).unwrap();
    let tip = node.call("getblockcount", json!([])).unwrap().as_u64().unwrap();
    let info = a.call("getrecoveryinfo", json!([])).unwrap();
    let coins = info["coins"].as_array().unwrap();
    assert_eq!(coins.len(), 1, "{info}");
    assert_eq!(coins[0]["height"], json!(tip));
    assert_eq!(coins[0]["deadline"]["height"], json!(tip + 50));
    assert_eq!(coins[0]["deadline"]["blocks_remaining"], json!(50));
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `-wallet=A,B` loads wallets at startup (a missing one stops the node); a raw transaction
/// from `sendrawtransaction` paying B shows in B's `untrusted_pending`.
#[test]
fn startup_wallets_and_raw_transactions_reach_wallets() {
    use rnet_primitives::{Address, Amount, Network, OutPoint, Transaction, TxIn, TxOut, Txid};

    let missing = TestNode::start(std::path::Path::new(RNETD), &["-wallet=nope"]);
    let err = missing.err().expect("a missing -wallet stops rnetd").to_string();
    assert!(err.contains("exited early"), "{err}");

    let mut node = start();
    node.call("createwallet", json!(["A", heartbeat_policy(50)])).unwrap();
    node.call("createwallet", json!(["B", heartbeat_policy(50)])).unwrap();
    let a_addr = wallet(&node, "A").call("getnewaddress", json!([])).unwrap();
    node.call("generatetoaddress", json!([7, a_addr])).unwrap();
    let a_total = total(&wallet(&node, "A"));
    assert!(a_total > 0);

    node.restart(&["-wallet=A,B"]).unwrap();
    assert_eq!(node.call("listwallets", json!([])).unwrap(), json!(["A", "B"]));
    let (a, b) = (wallet(&node, "A"), wallet(&node, "B"));
    assert_eq!(total(&a), a_total);

    // A raw transaction spending a mature coin of A to B, signed by A, sent with
    // sendrawtransaction (not through the wallet).
    let coins = a.call("listunspent", json!([6])).unwrap();
    let coin = coins
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["confirmations"].as_u64().unwrap() >= 6)
        .expect("a mature coin")
        .clone();
    let value = res(&coin["amount"]);
    let b_addr = b.call("getnewaddress", json!([])).unwrap();
    let b_spk =
        Address::from_str_for(b_addr.as_str().unwrap(), Network::Regtest).unwrap().script_pubkey();
    let pay = value - 1_000_000;
    let tx = Transaction {
        version: 2,
        inputs: vec![TxIn {
            previous_output: OutPoint::new(
                coin["txid"].as_str().unwrap().parse::<Txid>().unwrap(),
                coin["vout"].as_u64().unwrap() as u32,
            ),
            script_sig: Vec::new(),
            sequence: u32::MAX - 2,
            witness: Default::default(),
        }],
        outputs: vec![TxOut { value: Amount(pay as u64), script_pubkey: b_spk }],
        lock_time: 0,
    };
    let signed =
        a.call("signrawtransactionwithwallet", json!([hex::encode(tx.to_bytes())])).unwrap();
    assert_eq!(signed["complete"], json!(true), "{signed}");
    let txid = node.call("sendrawtransaction", json!([signed["hex"]])).unwrap();
    assert_eq!(txid, json!(tx.txid().to_hex()));
    let bal = b.call("getbalances", json!([])).unwrap();
    assert_eq!(res(&bal["mine"]["untrusted_pending"]), pay, "{bal}");
    assert_eq!(res(&bal["mine"]["trusted"]), 0);
    // A sees the spend too (the coin is no longer trusted balance).
    assert_eq!(total(&a), a_total - value);
    assert!(node.stop());
}

/// A regtest node with a custom initial required improvement has its own genesis block, so its
/// signatures commit to another genesis id than default regtest's: the wallets it loads sign
/// for the node's chain, and their spends are accepted and mined.
#[test]
fn wallets_sign_for_a_custom_regtest_genesis() {
    let node = TestNode::start(std::path::Path::new(RNETD), &["-requiredimprovement=20001"])
        .expect("rnetd starts");
    let genesis = node.call("getblockhash", json!([0])).unwrap();
    let default = rnet_consensus::ChainParams::regtest().genesis_hash().to_hex();
    assert_ne!(genesis, json!(default), "a custom genesis");
    node.call("createwallet", json!(["A", heartbeat_policy(50)])).unwrap();
    let a = wallet(&node, "A");
    let addr = a.call("getnewaddress", json!([])).unwrap();
    node.call("generatetoaddress", json!([6, addr])).unwrap();
    let txid = a.call("sendtoaddress", json!([outside_address(), 1.5])).unwrap();
    assert_eq!(node.call("getrawmempool", json!([])).unwrap(), json!([txid]));
    let block = node.call("generatetoaddress", json!([1, outside_address()])).unwrap();
    let block = node.call("getblock", json!([block[0]])).unwrap();
    assert_eq!(block["tx"][1], txid);
}
