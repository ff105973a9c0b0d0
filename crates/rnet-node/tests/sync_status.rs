//! Honest sync status (issue 14 item 9): a node that knows a header whose block cannot connect
//! (its checkpoint never arrived) reports `initialblockdownload: true` and
//! `verificationprogress < 1`, and logs a warning naming the missing block; once the
//! checkpoint arrives and the block connects, it reports synced.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_miner::{MineControl, Miner, TrainingData, job_from_template};
use rnet_model::Checkpoint;
use rnet_script::PlainKey;
use serde_json::json;

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

#[test]
fn headers_ahead_of_blocks_is_not_synced_and_warns() {
    let node = TestNode::start(Path::new(RNETD), &["-syncstallwarn=1"]).expect("rnetd starts");
    // A block mined from the template in the test process, submitted without its model update.
    let t = node.call("getblocktemplate", json!([])).unwrap();
    let parent = t["previousblockhash"].as_str().unwrap();
    let info = node.call("getcheckpointinfo", json!([parent])).unwrap();
    let mut parent_bytes = Vec::new();
    for i in 0..info["chunks"].as_u64().unwrap() {
        let chunk = node.call("getcheckpointchunk", json!([parent, i])).unwrap();
        parent_bytes.extend(hex::decode(chunk.as_str().unwrap()).unwrap());
    }
    let key = SigningKey::from_bytes(&[0x09; 32]);
    let payout = PlainKey::new(key.public_key()).script_pubkey();
    let job =
        job_from_template(&t, Arc::new(Checkpoint::from_bytes(&parent_bytes).unwrap()), payout)
            .unwrap();
    let miner = Miner::new(rnet_consensus::ChainParams::regtest(), key, TrainingData::Bundled);
    let mined = miner.mine(&job, &MineControl::quiet()).unwrap();
    let hash = mined.block.block_hash().to_hex();
    let r = node.call("submitblock", json!([hex::encode(mined.block.to_bytes())])).unwrap();
    assert_eq!(r, json!("inconclusive"));

    let info = node.call("getblockchaininfo", json!([])).unwrap();
    assert_eq!((info["blocks"].as_u64(), info["headers"].as_u64()), (Some(0), Some(1)), "{info}");
    assert_eq!(info["initialblockdownload"], json!(true), "{info}");
    let progress = info["verificationprogress"].as_f64().unwrap();
    assert!(progress < 1.0, "progress {progress} with headers ahead of blocks");
    assert_eq!(progress, 0.0);

    // The watchdog names the block and what it waits for.
    let log_path = node.network_dir().join("debug.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    let expected = format!("block {hash} at height 1 waits for its model update");
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("sync makes no progress: headers=1 blocks=0") && log.contains(&expected) {
            assert!(log.contains("WARN"), "logged as a warning");
            break;
        }
        assert!(Instant::now() < deadline, "no stall warning in debug.log:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The update arrives: the block connects and the node reports synced.
    let ckpt = hex::encode(&mined.update_bytes);
    node.call("submitcheckpoint", json!([hash, ckpt])).unwrap();
    let info = node.call("getblockchaininfo", json!([])).unwrap();
    assert_eq!((info["blocks"].as_u64(), info["headers"].as_u64()), (Some(1), Some(1)), "{info}");
    assert_eq!(info["initialblockdownload"], json!(false), "{info}");
    assert_eq!(info["verificationprogress"], json!(1.0));
}
