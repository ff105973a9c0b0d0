//! Proof-of-Training v2 end to end on real `rnetd` processes (`docs/protocol.md` Part V §4.3):
//! the stall escape driven by `setmocktime`, and the shared model getting better over 200
//! regtest blocks on text no block is ever evaluated on (`benchmark_loss`).

use std::time::{Duration, Instant};

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_primitives::Network;
use rnet_rpc::ClientError;
use rnet_script::PlainKey;
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

fn start(extra: &[&str]) -> TestNode {
    TestNode::start(std::path::Path::new(RNETD), extra).expect("rnetd starts")
}

fn address() -> String {
    PlainKey::new(SigningKey::from_bytes(&[0x31; 32]).public_key())
        .address(Network::Regtest)
        .to_string()
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn tip_header(node: &TestNode) -> Value {
    let tip = node.call("getbestblockhash", json!([])).unwrap();
    node.call("getblockheader", json!([tip])).unwrap()
}

/// Polls `getblockchaininfo` until the tip's `benchmark_loss` is computed.
fn benchmark_of_tip(node: &TestNode) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let info = node.call("getblockchaininfo", json!([])).unwrap();
        if let Some(loss) = info["benchmark_loss"].as_u64() {
            return loss;
        }
        assert!(Instant::now() < deadline, "benchmark_loss never computed: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A base requirement no model can meet (above the genesis loss itself) blocks a miner, until
/// enough time has passed: each 6 spacings without a block halve the requirement.
#[test]
fn stall_escape_lets_a_block_in_once_enough_time_has_passed() {
    let base: u64 = 8_192_000; // above the genesis loss of 5.58 M; 2⁶ halvings leave 128 000
    let node = start(&[&format!("-requiredimprovement={base}")]);
    let genesis =
        node.call("getblockheader", json!([node.call("getblockhash", json!([0])).unwrap()]));
    let genesis = genesis.unwrap();
    let genesis_time = u64_of(&genesis["time"]);
    assert_eq!(u64_of(&genesis["required_improvement"]), base);
    assert!(u64_of(&genesis["val_loss"]) < base);

    // One spacing after genesis: the full requirement, which training cannot reach.
    node.call("setmocktime", json!([genesis_time + 600])).unwrap();
    let info = node.call("getmininginfo", json!([])).unwrap();
    assert_eq!(u64_of(&info["required_improvement"]), base);
    assert_eq!(u64_of(&info["base_required_improvement"]), base);
    match node.call("generatetoaddress", json!([1, address(), 60])) {
        Err(ClientError::Rpc { message, .. }) => {
            assert!(message.contains(&format!("did not reach {base}")), "{message}")
        }
        other => panic!("a block at the full requirement: {other:?}"),
    }
    assert_eq!(node.call("getblockcount", json!([])).unwrap(), json!(0));

    // Six hours later: six halvings (⌊22 200 / 3 600⌋ = 6), 128 000 µnat, reachable.
    let later = genesis_time + 6 * 3600 + 600;
    node.call("setmocktime", json!([later])).unwrap();
    let info = node.call("getmininginfo", json!([])).unwrap();
    assert_eq!(u64_of(&info["required_improvement"]), base >> 6);
    assert_eq!(u64_of(&info["base_required_improvement"]), base);
    node.call("generatetoaddress", json!([1, address(), 600])).unwrap();
    let header = tip_header(&node);
    println!("STALL escape: block 1 at +{} s: {header}", later - genesis_time);
    assert_eq!(u64_of(&header["height"]), 1);
    assert_eq!(u64_of(&header["time"]), later);
    assert_eq!(u64_of(&header["required_improvement"]), base >> 6);
    assert!(u64_of(&header["improvement"]) >= base >> 6);
    // Its work is the requirement it met, not its improvement.
    assert_eq!(header["chainwork"], json!(format!("{:064x}", base >> 6)));
    // setmocktime is regtest-only and refuses nonsense.
    assert!(node.call("setmocktime", json!([-5])).is_err());
    node.call("setmocktime", json!([0])).unwrap();
}

/// 200 real regtest blocks: the tip model's loss on the held-out benchmark slice (never sampled,
/// never rewarded) ends below the genesis model's.
#[test]
fn the_model_learns_over_200_regtest_blocks() {
    let node = start(&[]);
    let genesis_benchmark = benchmark_of_tip(&node);
    let started = Instant::now();
    for _ in 0..4 {
        node.call("generatetoaddress", json!([50, address()])).unwrap();
    }
    let mining_s = started.elapsed().as_secs_f64();
    let tip = tip_header(&node);
    assert_eq!(u64_of(&tip["height"]), 200);
    let end_benchmark = benchmark_of_tip(&node);
    let info = node.call("getblockchaininfo", json!([])).unwrap();
    println!(
        "MODEL LEARNS: 200 blocks in {mining_s:.0} s; benchmark_loss genesis {genesis_benchmark} \
         → height 200 {end_benchmark} µnat/byte; loss_index {}; tip {tip}",
        info["loss_index"]
    );
    assert!(end_benchmark < genesis_benchmark);
    // Every block met the floor, so the loss index fell by at least 200 × the floor.
    let genesis_loss = u64_of(
        &node
            .call("getblockheader", json!([node.call("getblockhash", json!([0])).unwrap()]))
            .unwrap()["val_loss"],
    );
    assert!(
        u64_of(&info["loss_index"])
            <= genesis_loss - 200 * rnet_consensus::ChainParams::regtest().min_required_improvement
    );
}
