//! Functional tests: real `rnetd` processes on free loopback ports in temporary data directories,
//! driven over JSON-RPC (harness: `rnet-functional`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_miner::{
    MineControl, Miner, TrainingData, checkpoint_root, job_from_template, sign_header,
};
use rnet_model::Checkpoint;
use rnet_primitives::{Block, Network};
use rnet_rpc::{Auth, ClientError, RpcClient};
use rnet_script::PlainKey;
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

fn start(extra: &[&str]) -> TestNode {
    TestNode::start(std::path::Path::new(RNETD), extra).expect("rnetd starts")
}

fn test_key() -> SigningKey {
    SigningKey::from_bytes(&[0x11; 32])
}

fn test_address() -> String {
    PlainKey::new(test_key().public_key()).address(Network::Regtest).to_string()
}

fn rpc_code(r: Result<Value, ClientError>) -> i32 {
    match r {
        Err(ClientError::Rpc { code, .. }) => code,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

fn download_checkpoint(node: &TestNode, hash: &str) -> Vec<u8> {
    let info = node.call("getcheckpointinfo", json!([hash])).unwrap();
    let mut bytes = Vec::new();
    for i in 0..info["chunks"].as_u64().unwrap() {
        let chunk = node.call("getcheckpointchunk", json!([hash, i])).unwrap();
        bytes.extend(hex::decode(chunk.as_str().unwrap()).unwrap());
    }
    assert_eq!(bytes.len() as u64, info["size"].as_u64().unwrap());
    bytes
}

/// Mines a block from `getblocktemplate` in the test process (the node's own checkpoint, a test
/// key), returning it and its model update's bytes.
fn mine_from_template(node: &TestNode) -> (Block, Vec<u8>) {
    let t = node.call("getblocktemplate", json!([])).unwrap();
    let parent = t["previousblockhash"].as_str().unwrap();
    let ckpt = Checkpoint::from_bytes(&download_checkpoint(node, parent)).unwrap();
    let payout = PlainKey::new(test_key().public_key()).script_pubkey();
    let job = job_from_template(&t, Arc::new(ckpt), payout).unwrap();
    let miner =
        Miner::new(rnet_consensus::ChainParams::regtest(), test_key(), TrainingData::Bundled);
    let mined = miner.mine(&job, &MineControl::quiet()).unwrap();
    (mined.block, mined.update_bytes)
}

#[test]
fn generate_read_back_submit_and_restart() {
    let mut node = start(&["-txindex"]);
    let addr = test_address();
    let started = std::time::Instant::now();
    let hashes: Vec<String> =
        serde_json::from_value(node.call("generatetoaddress", json!([10, addr])).unwrap()).unwrap();
    let per_block = started.elapsed() / 10;
    eprintln!("generatetoaddress: {per_block:?} per block end to end");
    assert_eq!(hashes.len(), 10);
    assert_eq!(node.call("getblockcount", json!([])).unwrap(), json!(10));
    assert_eq!(node.call("getbestblockhash", json!([])).unwrap(), json!(hashes[9]));
    for (i, h) in hashes.iter().enumerate() {
        assert_eq!(node.call("getblockhash", json!([i + 1])).unwrap(), json!(h));
        let b = node.call("getblock", json!([h])).unwrap();
        assert_eq!(b["height"], json!(i + 1));
        assert_eq!(b["confirmations"], json!(10 - i));
    }
    // Every block beat its parent on its own sample by the requirement (losses on different
    // samples are not comparable with each other); the loss index falls block by block.
    let history = node.call("gettraininginfo", json!([11])).unwrap();
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 11);
    let losses: Vec<u64> = history.iter().map(|e| e["val_loss"].as_u64().unwrap()).collect();
    for e in &history[1..] {
        let (parent, val) = (e["parent_loss"].as_u64().unwrap(), e["val_loss"].as_u64().unwrap());
        let req = e["required_improvement"].as_u64().unwrap();
        assert!(parent >= val + req, "{e}");
        assert_eq!(e["improvement"].as_u64().unwrap(), parent - val);
    }
    let index = |h: &str| node.call("getblockheader", json!([h])).unwrap()["loss_index"].as_u64();
    let indices: Vec<u64> = hashes.iter().map(|h| index(h).unwrap()).collect();
    assert!(indices.windows(2).all(|w| w[1] < w[0]), "{indices:?}");

    // Chain info.
    let info = node.call("getblockchaininfo", json!([])).unwrap();
    assert_eq!(info["chain"], json!("regtest"));
    assert_eq!(info["blocks"], json!(10));
    assert_eq!(info["bestblockhash"], json!(hashes[9]));
    assert_eq!(info["val_loss"], json!(losses[10]));
    assert!(info["val_loss_bits"].as_f64().unwrap() > info["val_loss_nats"].as_f64().unwrap());
    assert!(info["required_improvement"].as_u64().unwrap() > 0);
    assert!(info["circulating_supply"].as_f64().unwrap() > 0.0);
    let mining = node.call("getmininginfo", json!([])).unwrap();
    assert_eq!(mining["blocks"], json!(10));
    assert_eq!(mining["mining"], json!(false));

    // Blocks, headers, transactions, coins.
    let b1 = node.call("getblock", json!([hashes[0], 2])).unwrap();
    let cb = &b1["tx"][0];
    assert_eq!(cb["vout"][0]["scriptPubKey"]["address"], json!(addr));
    let txid = cb["txid"].as_str().unwrap().to_string();
    let hex0 = node.call("getblock", json!([hashes[0], 0])).unwrap();
    let block = Block::from_bytes(&hex::decode(hex0.as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(block.block_hash().to_hex(), hashes[0]);
    let hdr = node.call("getblockheader", json!([hashes[0], false])).unwrap();
    assert_eq!(hdr.as_str().unwrap().len() % 2, 0);
    let hdr = node.call("getblockheader", json!([hashes[0]])).unwrap();
    assert_eq!(hdr["nextblockhash"], json!(hashes[1]));
    let raw = node.call("getrawtransaction", json!([txid, true])).unwrap();
    assert_eq!(raw["blockhash"], json!(hashes[0]));
    let raw_hex = node.call("getrawtransaction", json!([txid, false, hashes[0]])).unwrap();
    let decoded = node.call("decoderawtransaction", json!([raw_hex])).unwrap();
    assert_eq!(decoded["txid"], json!(txid));
    let coin = node.call("gettxout", json!([txid, 0])).unwrap();
    assert_eq!(coin["coinbase"], json!(true));
    assert_eq!(coin["confirmations"], json!(10));
    assert_eq!(node.call("gettxout", json!([txid, 7])).unwrap(), Value::Null);
    let set = node.call("gettxoutsetinfo", json!([])).unwrap();
    assert_eq!(set["txouts"].as_u64().unwrap(), 10);
    assert_eq!(set["utxo_set_hash"].as_str().unwrap().len(), 64);
    let tips = node.call("getchaintips", json!([])).unwrap();
    assert_eq!(tips[0]["status"], json!("active"));

    // A block whose header claims a lower loss than its checkpoint evaluates to is rejected with
    // the reason; the genuine block is accepted, then reported as a duplicate.
    let (genuine, ckpt) = mine_from_template(&node);
    let mut fake = genuine.clone();
    fake.header.val_loss -= 1_000;
    sign_header(&mut fake.header, &test_key());
    let root = checkpoint_root(&ckpt).to_hex();
    node.call("submitcheckpoint", json!([root, hex::encode(&ckpt)])).unwrap();
    let r = node.call("submitblock", json!([hex::encode(fake.to_bytes())])).unwrap();
    assert!(r.as_str().unwrap().starts_with("bad-val-loss"), "{r}");
    assert_eq!(node.call("getblockcount", json!([])).unwrap(), json!(10));
    let r = node.call("submitblock", json!([hex::encode(genuine.to_bytes())])).unwrap();
    assert_eq!(r, Value::Null);
    assert_eq!(node.call("getblockcount", json!([])).unwrap(), json!(11));
    let r = node.call("submitblock", json!([hex::encode(genuine.to_bytes())])).unwrap();
    assert_eq!(r, json!("duplicate"));
    // A block submitted before its checkpoint is "inconclusive" until the checkpoint arrives.
    let (next, next_ckpt) = mine_from_template(&node);
    let r = node.call("submitblock", json!([hex::encode(next.to_bytes())])).unwrap();
    assert_eq!(r, json!("inconclusive"));
    node.call("submitcheckpoint", json!([next.block_hash().to_hex(), hex::encode(&next_ckpt)]))
        .unwrap();
    let log = std::fs::read_to_string(node.network_dir().join("debug.log")).unwrap();
    assert_eq!(node.call("getblockcount", json!([])).unwrap(), json!(12), "{log}");
    let bad = node.call("submitcheckpoint", json!([root, "00"]));
    assert_eq!(rpc_code(bad), -25);

    // invalidate / reconsider.
    let tip = next.block_hash().to_hex();
    node.call("invalidateblock", json!([tip])).unwrap();
    assert_eq!(
        node.call("getbestblockhash", json!([])).unwrap(),
        json!(genuine.block_hash().to_hex())
    );
    node.call("reconsiderblock", json!([tip])).unwrap();
    assert_eq!(node.call("getbestblockhash", json!([])).unwrap(), json!(tip));

    // Restart keeps the chain.
    let before = node.call("gettxoutsetinfo", json!([])).unwrap();
    node.restart(&[]).unwrap();
    assert_eq!(node.call("getblockcount", json!([])).unwrap(), json!(12));
    assert_eq!(node.call("getbestblockhash", json!([])).unwrap(), json!(tip));
    assert_eq!(node.call("gettxoutsetinfo", json!([])).unwrap(), before);

    // The same flow with the checkpoint uploaded in 3 parts (`uploadcheckpointpart`).
    let (third, third_ckpt) = mine_from_template(&node);
    let third_root = checkpoint_root(&third_ckpt).to_hex();
    let n = third_ckpt.len();
    let cuts = [0, n / 3, 2 * n / 3, n];
    let part = |i: usize| hex::encode(&third_ckpt[cuts[i]..cuts[i + 1]]);
    let r = node.call("uploadcheckpointpart", json!([third_root, n, 0, part(0)])).unwrap();
    assert_eq!(r, json!({"received": cuts[1], "complete": false}));
    // A repeated part is fine; a gap, a size change, an oversized part are -8.
    node.call("uploadcheckpointpart", json!([third_root, n, 0, part(0)])).unwrap();
    let gap = node.call("uploadcheckpointpart", json!([third_root, n, cuts[2], part(2)]));
    assert_eq!(rpc_code(gap), -8);
    let resized = node.call("uploadcheckpointpart", json!([third_root, n + 1, cuts[1], part(1)]));
    assert_eq!(rpc_code(resized), -8);
    let big = hex::encode(vec![0u8; (1 << 20) + 1]);
    assert_eq!(
        rpc_code(node.call("uploadcheckpointpart", json!([third_root, 2 << 20, 0, big]))),
        -8
    );
    node.call("uploadcheckpointpart", json!([third_root, n, cuts[1], part(1)])).unwrap();
    let r = node.call("uploadcheckpointpart", json!([third_root, n, cuts[2], part(2)])).unwrap();
    assert_eq!(r, json!({"received": n, "complete": true}));
    let r = node.call("submitblock", json!([hex::encode(third.to_bytes())])).unwrap();
    assert_eq!(r, Value::Null);
    assert_eq!(node.call("getblockcount", json!([])).unwrap(), json!(13));
    // Complete but not matching the root: -25.
    let wrong = node.call("uploadcheckpointpart", json!([third_root, 3, 0, "010203"]));
    assert_eq!(rpc_code(wrong), -25);
    assert!(node.stop(), "rnetd exits cleanly on stop");
}

#[test]
fn bad_rpc_input_gets_core_errors() {
    let node = start(&[]);
    // Unknown method, wrong parameters, bad values.
    assert_eq!(rpc_code(node.call("nosuchmethod", json!([]))), -32601);
    assert_eq!(rpc_code(node.call("getblockhash", json!([]))), -1);
    assert_eq!(rpc_code(node.call("getblockhash", json!(["x"]))), -3);
    assert_eq!(rpc_code(node.call("getblockhash", json!([5]))), -8);
    assert_eq!(rpc_code(node.call("getblockhash", json!([-1]))), -8);
    assert_eq!(rpc_code(node.call("getblock", json!(["zz"]))), -8);
    assert_eq!(rpc_code(node.call("getblock", json!(["00".repeat(32)]))), -5);
    assert_eq!(rpc_code(node.call("getblock", json!(["00".repeat(32), 7]))), -8);
    assert_eq!(rpc_code(node.call("getblockheader", json!(["11".repeat(32)]))), -5);
    assert_eq!(rpc_code(node.call("submitblock", json!(["zz"]))), -22);
    assert_eq!(rpc_code(node.call("submitblock", json!(["00"]))), -22);
    assert_eq!(rpc_code(node.call("decoderawtransaction", json!(["0000"]))), -22);
    assert_eq!(rpc_code(node.call("getrawtransaction", json!(["22".repeat(32)]))), -5);
    assert_eq!(rpc_code(node.call("generatetoaddress", json!([1, "nonsense"]))), -5);
    assert_eq!(rpc_code(node.call("generatetoaddress", json!([-1, test_address()]))), -8);
    assert_eq!(rpc_code(node.call("getcheckpointchunk", json!(["00".repeat(32), 0]))), -5);
    let genesis = node.call("getblockhash", json!([0])).unwrap();
    assert_eq!(rpc_code(node.call("getcheckpointchunk", json!([genesis, 99]))), -8);
    assert_eq!(rpc_code(node.call("invalidateblock", json!([genesis]))), -8);
    assert_eq!(rpc_code(node.call("invalidateblock", json!(["33".repeat(32)]))), -5);
    let help = node.call("help", json!([])).unwrap();
    assert!(help.as_str().unwrap().contains("getblocktemplate"));
    assert!(node.call("uptime", json!([])).unwrap().as_u64().is_some());

    // No credentials: HTTP 401.
    let anon = RpcClient::new(&node.url(), Auth::None).unwrap();
    assert!(matches!(anon.call("getblockcount", json!([])), Err(ClientError::Unauthorized)));

    // Malformed JSON: HTTP 500 with -32700.
    let cookie = std::fs::read_to_string(node.network_dir().join(".cookie")).unwrap();
    let (user, pass) = cookie.trim().split_once(':').unwrap();
    let body = "{not json";
    let mut s = TcpStream::connect(("127.0.0.1", node.rpc_port())).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        rnet_rpc::basic_auth_header(user, pass),
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 500"), "{reply}");
    assert!(reply.contains("-32700"), "{reply}");
}

#[test]
fn two_nodes_cannot_share_a_datadir() {
    let node = start(&[]);
    let (status, stderr) = node.run_second_instance().unwrap();
    assert!(!status.success());
    assert!(stderr.contains("Cannot obtain a lock on data directory"), "{stderr}");
    // The first node is unaffected.
    assert_eq!(node.call("getblockcount", json!([])).unwrap(), json!(0));
}

#[test]
fn in_node_miner_mines_and_stops() {
    let mut node = start(&["-mine"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.call("getblockcount", json!([])).unwrap().as_u64().unwrap() < 3 {
        assert!(std::time::Instant::now() < deadline, "miner made no progress");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(node.call("getmininginfo", json!([])).unwrap()["mining"], json!(true));
    let log = std::fs::read_to_string(node.network_dir().join("debug.log")).unwrap();
    assert!(log.contains("mined block height=1 val_loss="), "{log}");
    assert!(node.stop(), "rnetd exits cleanly on stop while mining");
}

fn miner_binary() -> Option<PathBuf> {
    let p = std::path::Path::new(RNETD)
        .with_file_name(format!("rnet-miner{}", std::env::consts::EXE_SUFFIX));
    p.exists().then_some(p)
}

#[test]
fn rnet_miner_binary_mines_against_the_node() {
    let Some(miner) = miner_binary() else {
        eprintln!("skipped: rnet-miner binary not built (run with -p rnet-miner too)");
        return;
    };
    let node = start(&[]);
    // Mined coins go to a recovery-policy address: a wallet of the node's.
    let recovery = "11".repeat(32);
    let recovery = hex::encode(
        rnet_crypto::SigningKey::from_bytes(&hex::decode(recovery).unwrap().try_into().unwrap())
            .public_key()
            .as_bytes(),
    );
    let policy = json!({ "heartbeat": { "recovery": recovery, "interval": 1000 } });
    node.call("createwallet", json!(["mined", policy])).unwrap();
    let out = std::process::Command::new(miner)
        .args(node.connect_args())
        .args(["-blocks=2", "-noprogress", "-miningwallet=mined"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("mined block height=2"), "{stderr}");
    assert_eq!(node.call("getblockcount", json!([])).unwrap(), json!(2));
    let history = node.call("gettraininginfo", json!([])).unwrap();
    for e in &history.as_array().unwrap()[1..] {
        let improvement = e["improvement"].as_u64().unwrap();
        assert!(improvement >= e["required_improvement"].as_u64().unwrap(), "{e}");
    }
}

#[test]
fn mempool_transaction_enters_the_next_block() {
    use rnet_consensus::ChainParams;
    use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
    use rnet_script::{SighashCache, SighashType};

    let node = start(&["-txindex"]);
    // Signatures commit to the chain's genesis id: the node's block 0.
    let genesis: BlockHash =
        node.call("getblockhash", json!([0])).unwrap().as_str().unwrap().parse().unwrap();
    assert_eq!(genesis, ChainParams::regtest().genesis_hash());
    let addr = test_address();
    let hashes = node.call("generatetoaddress", json!([6, addr])).unwrap();
    // Spend the (now mature) coinbase of block 1 back to the test key, paying a fee.
    let b1 = node.call("getblock", json!([hashes[0], 2])).unwrap();
    let cb_txid: Txid = b1["tx"][0]["txid"].as_str().unwrap().parse().unwrap();
    let cb_hex = node.call("getrawtransaction", json!([cb_txid.to_hex(), false])).unwrap();
    let cb = Transaction::from_bytes(&hex::decode(cb_hex.as_str().unwrap()).unwrap()).unwrap();
    let spent = cb.outputs[0].clone();
    let key = test_key();
    let spk = PlainKey::new(key.public_key()).script_pubkey();
    let fee = 100_000;
    let mut tx = Transaction {
        version: 2,
        inputs: vec![TxIn {
            previous_output: OutPoint::new(cb_txid, 0),
            script_sig: Vec::new(),
            sequence: u32::MAX,
            witness: Witness::new(),
        }],
        outputs: vec![TxOut { value: Amount(spent.value.0 - fee), script_pubkey: spk.clone() }],
        lock_time: 0,
    };
    let sign_for = |genesis: &BlockHash| {
        let spent_outputs = [spent.clone()];
        let cache = SighashCache::new(genesis, &tx, &spent_outputs).unwrap();
        cache.sign(&key, 0, &spk, SighashType::All).unwrap()
    };
    // Signed for testnet, the spend is invalid on this regtest node.
    let mut replay = tx.clone();
    replay.inputs[0].witness = Witness(vec![sign_for(&ChainParams::testnet().genesis_hash())]);
    let test = node.call("testmempoolaccept", json!([[hex::encode(replay.to_bytes())]])).unwrap();
    assert_eq!(test[0]["allowed"], json!(false), "{test}");
    assert!(test[0]["reject-reason"].as_str().unwrap().contains("signature"), "{test}");
    tx.inputs[0].witness = Witness(vec![sign_for(&genesis)]);
    let raw = hex::encode(tx.to_bytes());
    let txid = tx.txid().to_hex();

    let test = node.call("testmempoolaccept", json!([[raw]])).unwrap();
    assert_eq!(test[0]["allowed"], json!(true), "{test}");
    assert_eq!(node.call("sendrawtransaction", json!([raw])).unwrap(), json!(txid));
    assert_eq!(node.call("getrawmempool", json!([])).unwrap(), json!([txid]));
    let entry = node.call("getmempoolentry", json!([txid])).unwrap();
    assert_eq!(entry["fees"]["base"], json!(0.001));
    let info = node.call("getmempoolinfo", json!([])).unwrap();
    assert_eq!(info["size"], json!(1));
    assert_eq!(node.call("getrawtransaction", json!([txid])).unwrap(), json!(raw));
    // gettxout: the coin spent in the mempool is gone unless include_mempool=false; the mempool
    // output shows with 0 confirmations (and not at all without the mempool).
    let cb_out = cb_txid.to_hex();
    assert_eq!(node.call("gettxout", json!([cb_out, 0])).unwrap(), Value::Null);
    assert_eq!(node.call("gettxout", json!([cb_out, 0, true])).unwrap(), Value::Null);
    let c = node.call("gettxout", json!([cb_out, 0, false])).unwrap();
    assert_eq!(c["confirmations"], json!(6));
    let m = node.call("gettxout", json!([txid, 0])).unwrap();
    assert_eq!(m["confirmations"], json!(0), "{m}");
    assert_eq!(m["coinbase"], json!(false));
    let value: f64 = Amount(spent.value.0 - fee).to_string().parse().unwrap();
    assert_eq!(m["value"], json!(value));
    assert_eq!(node.call("gettxout", json!([txid, 0, false])).unwrap(), Value::Null);
    assert_eq!(node.call("gettxout", json!([txid, 1])).unwrap(), Value::Null);
    let gbt = node.call("getblocktemplate", json!([])).unwrap();
    assert_eq!(gbt["transactions"][0]["txid"], json!(txid));
    // The coinbase must start with the height and the regtest magic.
    let tag = ChainParams::regtest().coinbase_tag(gbt["height"].as_u64().unwrap() as u32);
    assert_eq!(gbt["coinbase_tag"], json!(hex::encode(tag)));
    assert_eq!(gbt["fees"], json!(fee));
    // Double spend is refused; a second submission of the same tx returns its txid.
    assert_eq!(node.call("sendrawtransaction", json!([raw])).unwrap(), json!(txid));
    let est = node.call("estimatesmartfee", json!([2])).unwrap();
    assert_eq!(est["blocks"], json!(2));
    assert_eq!(rpc_code(node.call("estimatesmartfee", json!([0]))), -8);
    assert_eq!(rpc_code(node.call("getmempoolentry", json!(["44".repeat(32)]))), -5);

    // Mined into the next block, removed from the pool.
    let h = node.call("generatetoaddress", json!([1, addr])).unwrap();
    let block = node.call("getblock", json!([h[0]])).unwrap();
    assert_eq!(block["tx"][1], json!(txid));
    assert_eq!(node.call("getrawmempool", json!([])).unwrap(), json!([]));
    assert_eq!(node.call("gettxout", json!([cb_txid.to_hex(), 0])).unwrap(), Value::Null);
    assert!(node.call("gettxout", json!([txid, 0])).unwrap().is_object());
    let confirmed = node.call("sendrawtransaction", json!([raw]));
    assert!(matches!(rpc_code(confirmed), -27..=-25));

    // Disconnecting the block puts the transaction back into the pool.
    node.call("invalidateblock", json!([h[0]])).unwrap();
    assert_eq!(node.call("getrawmempool", json!([])).unwrap(), json!([txid]));
}

/// Sends one HTTP/1.1 request to `port` and returns (status, body).
fn http_json(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to inference server");
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (status, serde_json::from_str(body.trim()).unwrap_or(Value::Null))
}

#[test]
fn inference_server_serves_and_follows_the_tip() {
    let node = start(&["-inference=127.0.0.1:0"]);
    let port_file = node.network_dir().join("inference.port");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !port_file.exists() {
        assert!(std::time::Instant::now() < deadline, "inference server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let port: u16 = std::fs::read_to_string(&port_file).unwrap().trim().parse().unwrap();

    let (status, models) = http_json(port, "GET", "/v1/models", None);
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "resonancenet-v5");

    let request = json!({"model": "resonancenet-v5", "prompt": "Ge1:1 In the", "max_tokens": 8,
        "temperature": 0});
    let (status, completion) = http_json(port, "POST", "/v1/completions", Some(&request));
    assert_eq!(status, 200, "{completion}");
    assert_eq!(completion["usage"]["prompt_tokens"], 12);
    assert!(completion["system_fingerprint"].as_str().unwrap().starts_with("rnet-h0-"));

    // A new block: the server reloads the tip model (height 1) on its own.
    node.call("generatetoaddress", json!([1, test_address()])).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, c) = http_json(port, "POST", "/v1/completions", Some(&request));
        if c["system_fingerprint"].as_str().unwrap_or("").starts_with("rnet-h1-") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "server still serves the old tip: {c}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `setban` as in Bitcoin Core: a huge relative time bans (it used to wrap into the past and ban
/// nothing), `absolute` takes a timestamp, and a `/24` is listed and enforced as the subnet.
#[test]
fn setban_huge_times_absolute_and_subnets() {
    let node = start(&[]);
    let banned = |n: &TestNode| -> Vec<(String, u64)> {
        n.call("listbanned", json!([]))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (b["address"].as_str().unwrap().to_string(), b["banned_until"].as_u64().unwrap())
            })
            .collect()
    };
    node.call("setban", json!(["10.1.1.1", "add", u64::MAX])).unwrap();
    node.call("setban", json!(["10.2.2.7/24", "add"])).unwrap();
    node.call("setban", json!(["10.3.3.3", "add", 4_000_000_000u64, true])).unwrap();
    let list = banned(&node);
    assert!(list.contains(&("10.1.1.1/32".to_string(), u64::MAX)), "{list:?}");
    assert!(list.iter().any(|(a, _)| a == "10.2.2.0/24"), "{list:?}");
    assert!(list.contains(&("10.3.3.3/32".to_string(), 4_000_000_000)), "{list:?}");
    // An absolute time in the past, a second ban of the same subnet, and garbage are refused.
    assert_eq!(rpc_code(node.call("setban", json!(["10.4.4.4", "add", 5, true]))), -23);
    assert_eq!(rpc_code(node.call("setban", json!(["10.2.2.0/255.255.255.0", "add"]))), -23);
    assert_eq!(rpc_code(node.call("setban", json!(["10.5.5.5/33", "add"]))), -23);
    node.call("setban", json!(["10.2.2.200/24", "remove"])).unwrap();
    assert!(!banned(&node).iter().any(|(a, _)| a == "10.2.2.0/24"));
}
