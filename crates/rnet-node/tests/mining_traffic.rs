//! The in-node miner (`-mine`) keeps mining under a steady stream of transactions (issue 14
//! item 16): a new transaction may refresh the block's transaction set, never abandon the
//! training. One real `rnetd` mines for a window without traffic, then for an equal window while
//! the test sends a transaction every 250 ms; blocks keep coming, and every transaction sent ends
//! up in a block. Needs about 45 s: two measured mining windows plus confirmation.

use std::path::Path;
use std::time::{Duration, Instant};

use rnet_consensus::ChainParams;
use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_primitives::{
    Amount, BlockHash, Network, OutPoint, Transaction, TxIn, TxOut, Txid, Witness,
};
use rnet_script::{PlainKey, SighashCache, SighashType};
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");
/// Length of each measured mining window.
const WINDOW: Duration = Duration::from_secs(15);
/// Outputs of the fan-out transaction: one per streamed transaction.
const FANOUT: usize = 80;
/// Interval between two streamed transactions.
const TX_INTERVAL: Duration = Duration::from_millis(250);

fn key() -> SigningKey {
    SigningKey::from_bytes(&[0x16; 32])
}

fn script() -> Vec<u8> {
    PlainKey::new(key().public_key()).script_pubkey()
}

/// `tx` with every input spending an output paying [`script`] signed by [`key`].
fn signed(mut tx: Transaction, spent: &[TxOut], genesis: &BlockHash) -> Transaction {
    let witnesses: Vec<Witness> = {
        let cache = SighashCache::new(genesis, &tx, spent).unwrap();
        (0..tx.inputs.len())
            .map(|i| Witness(vec![cache.sign(&key(), i, &script(), SighashType::All).unwrap()]))
            .collect()
    };
    for (input, w) in tx.inputs.iter_mut().zip(witnesses) {
        input.witness = w;
    }
    tx
}

fn spend(outpoint: OutPoint, value: Amount, outputs: Vec<TxOut>) -> (Transaction, Vec<TxOut>) {
    let tx = Transaction {
        version: 2,
        inputs: vec![TxIn {
            previous_output: outpoint,
            script_sig: Vec::new(),
            sequence: u32::MAX,
            witness: Witness::new(),
        }],
        outputs,
        lock_time: 0,
    };
    (tx, vec![TxOut { value, script_pubkey: script() }])
}

fn height(node: &TestNode) -> u64 {
    node.call("getblockcount", json!([])).unwrap().as_u64().unwrap()
}

fn confirmed(node: &TestNode, txid: &str) -> bool {
    node.call("getrawtransaction", json!([txid, true]))
        .ok()
        .and_then(|v| v["confirmations"].as_u64())
        .is_some_and(|c| c > 0)
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
fn in_node_miner_keeps_mining_under_a_stream_of_transactions() {
    let address = PlainKey::new(key().public_key()).address(Network::Regtest).to_string();
    let mut node = TestNode::start(Path::new(RNETD), &["-txindex"]).expect("rnetd starts");
    let genesis: BlockHash =
        node.call("getblockhash", json!([0])).unwrap().as_str().unwrap().parse().unwrap();
    assert_eq!(genesis, ChainParams::regtest().genesis_hash());
    // A mature coinbase of block 1, fanned out into FANOUT coins and confirmed.
    let hashes = node.call("generatetoaddress", json!([6, address])).unwrap();
    let b1 = node.call("getblock", json!([hashes[0], 2])).unwrap();
    let cb_txid: Txid = b1["tx"][0]["txid"].as_str().unwrap().parse().unwrap();
    let cb_hex = node.call("getrawtransaction", json!([cb_txid.to_hex(), false])).unwrap();
    let cb = Transaction::from_bytes(&hex::decode(cb_hex.as_str().unwrap()).unwrap()).unwrap();
    let cb_value = cb.outputs[0].value;
    let each = Amount((cb_value.0 - 2_000_000) / FANOUT as u64);
    let outputs = vec![TxOut { value: each, script_pubkey: script() }; FANOUT];
    let (fan, spent) = spend(OutPoint::new(cb_txid, 0), cb_value, outputs);
    let fan = signed(fan, &spent, &genesis);
    let fan_txid = fan.txid();
    node.call("sendrawtransaction", json!([hex::encode(fan.to_bytes())])).unwrap();
    node.call("generatetoaddress", json!([1, address])).unwrap();
    assert!(confirmed(&node, &fan_txid.to_hex()));

    let payout = mining_policy_address(Network::Regtest);
    node.restart(&["-mine", &format!("-miningaddress={payout}")]).expect("restart with -mine");
    // Window 1: no traffic.
    let start = height(&node);
    std::thread::sleep(WINDOW);
    let quiet_blocks = height(&node) - start;

    // Window 2: a transaction every TX_INTERVAL.
    let start = height(&node);
    let began = Instant::now();
    let mut sent = Vec::new();
    let mut confirmed_during_stream = 0;
    let mut next = 0;
    while began.elapsed() < WINDOW && next < FANOUT {
        let (tx, spent) = spend(
            OutPoint::new(fan_txid, next as u32),
            each,
            vec![TxOut { value: Amount(each.0 - 100_000), script_pubkey: script() }],
        );
        let tx = signed(tx, &spent, &genesis);
        next += 1;
        let r = node.call("sendrawtransaction", json!([hex::encode(tx.to_bytes())]));
        assert_eq!(r.unwrap(), json!(tx.txid().to_hex()), "stream transaction accepted");
        sent.push(tx.txid().to_hex());
        std::thread::sleep(TX_INTERVAL);
    }
    let stream_blocks = height(&node) - start;
    for txid in &sent {
        confirmed_during_stream += usize::from(confirmed(&node, txid));
    }
    println!(
        "in-node miner, {} s windows: {quiet_blocks} blocks without traffic, {stream_blocks} blocks \
         with {} transactions ({:.1} tx/s); {confirmed_during_stream} of them confirmed during \
         the stream",
        WINDOW.as_secs(),
        sent.len(),
        sent.len() as f64 / WINDOW.as_secs_f64(),
    );
    assert!(quiet_blocks >= 2, "the miner mines without traffic ({quiet_blocks} blocks)");
    assert!(
        stream_blocks >= 2 && stream_blocks * 3 >= quiet_blocks,
        "transactions must not stop the miner: {stream_blocks} blocks with traffic vs \
         {quiet_blocks} without"
    );
    assert!(confirmed_during_stream > 0, "streamed transactions enter blocks while they stream");

    // Every streamed transaction ends up in a block.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sent.iter().all(|t| confirmed(&node, t)) {
        assert!(Instant::now() < deadline, "streamed transactions not all confirmed");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(node.call("getrawmempool", json!([])).unwrap(), Value::Array(vec![]));
    assert!(node.stop(), "rnetd exits cleanly");
}
