//! Mining with low-rank updates against a real node, compared with full updates (issue 15):
//! the `rnet_miner` library mines 100 regtest blocks through RPC exactly as the `rnet-miner`
//! binary does (`getblocktemplate`, train, upload the update, `submitblock`), once with
//! `-rank=full` and once with `-rank=4`, each on its own fresh node. Every 10 blocks the tip
//! model's loss on the benchmark slice (never sampled, never rewarded) is measured with the
//! canonical evaluator, and both curves are printed with the training steps and time spent.
//!
//! A measurement, not a timed test: `cargo test -p rnet-node --test mining_lowrank -- --ignored
//! --nocapture` (about 5 minutes on 2 cores). The figures are in docs/training.md.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_miner::{MineControl, Miner, TrainingData, UpdateRank, job_from_template};
use rnet_model::Checkpoint;
use rnet_script::PlainKey;
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");
const BLOCKS: u64 = 100;
const EVERY: u64 = 10;

fn checkpoint_of(node: &TestNode, hash: &str) -> Checkpoint {
    let info = node.call("getcheckpointinfo", json!([hash])).unwrap();
    let mut bytes = Vec::new();
    for i in 0..info["chunks"].as_u64().unwrap() {
        let c = node.call("getcheckpointchunk", json!([hash, i])).unwrap();
        bytes.extend(hex::decode(c.as_str().unwrap()).unwrap());
    }
    Checkpoint::from_bytes(&bytes).unwrap()
}

/// Benchmark loss in bits per byte.
fn benchmark_bits(c: &Checkpoint) -> f64 {
    let r = rnet_model::evaluate(&c.model, rnet_model::benchmark_slice()).unwrap();
    r.val_loss_micronats as f64 / 1e6 / std::f64::consts::LN_2
}

/// One point of a curve: height, cumulative training steps, seconds, update bytes so far,
/// benchmark bits per byte.
type Point = (u64, u64, f64, u64, f64);

fn mine_chain(rank: UpdateRank) -> Vec<Point> {
    let node =
        TestNode::start(Path::new(RNETD), &["-port=0", "-bind=127.0.0.1", "-connect=0"]).unwrap();
    let key = SigningKey::from_bytes(&[0x46; 32]);
    let payout = PlainKey::new(key.public_key()).script_pubkey();
    let params = rnet_consensus::ChainParams::regtest();
    let miner = Miner::new(params, key, TrainingData::Bundled).with_rank(rank).unwrap();
    let genesis = node.call("getblockhash", json!([0])).unwrap();
    let mut parent = Arc::new(checkpoint_of(&node, genesis.as_str().unwrap()));
    let (mut steps, mut bytes) = (0, 0);
    let started = Instant::now();
    let mut curve = vec![(0, 0, 0.0, 0, benchmark_bits(&parent))];
    for height in 1..=BLOCKS {
        let t: Value = node.call("getblocktemplate", json!([])).unwrap();
        let job = job_from_template(&t, parent.clone(), payout.clone()).unwrap();
        let mined = miner.mine(&job, &MineControl::quiet()).unwrap();
        let root = mined.block.header.update_root.to_hex();
        node.call("submitcheckpoint", json!([root, hex::encode(&mined.update_bytes)])).unwrap();
        let r = node.call("submitblock", json!([hex::encode(mined.block.to_bytes())])).unwrap();
        assert_eq!(r, Value::Null, "block {height} refused");
        steps += mined.steps;
        bytes += mined.update_bytes.len() as u64;
        parent = Arc::new(Checkpoint::from_bytes(&mined.checkpoint_bytes).unwrap());
        if height % EVERY == 0 {
            let secs = started.elapsed().as_secs_f64();
            curve.push((height, steps, secs, bytes, benchmark_bits(&parent)));
        }
    }
    // The node derived the same model from the updates.
    let tip = node.call("getbestblockhash", json!([])).unwrap();
    let derived = checkpoint_of(&node, tip.as_str().unwrap());
    assert_eq!(derived.to_bytes(), parent.to_bytes());
    curve
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn low_rank_updates_train_the_chain_about_as_fast_as_full_updates() {
    let full = mine_chain(UpdateRank::Full);
    let low = mine_chain(UpdateRank::LowRank(4));
    println!(
        "| height | full: steps / s / update MiB / benchmark bits | rank 4: steps / s / update MiB / benchmark bits |"
    );
    println!("|---|---|---|");
    for (f, l) in full.iter().zip(&low) {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "| {} | {} / {:.0} / {:.1} / {:.4} | {} / {:.0} / {:.1} / {:.4} |",
            f.0,
            f.1,
            f.2,
            mib(f.3),
            f.4,
            l.1,
            l.2,
            mib(l.3),
            l.4
        );
    }
    let (f0, f1) = (full[0].4, full.last().unwrap().4);
    let (l0, l1) = (low[0].4, low.last().unwrap().4);
    println!(
        "benchmark drop over {BLOCKS} blocks: full {:.4}, rank 4 {:.4} bits/byte",
        f0 - f1,
        l0 - l1
    );
    assert!(f1 < f0 && l1 < l0, "both chains learn");
    // Low-rank updates are much smaller for the same chain progress.
    assert!(low.last().unwrap().3 < full.last().unwrap().3);
}
