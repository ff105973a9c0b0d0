//! A several-hundred-MB checkpoint download between real processes, killed and resumed
//! (docs/network.md "Model objects", issue 15): a new testnet node snapshot-syncs to a block whose
//! model is a testnet model grown to that block's scheduled shape, is killed (SIGKILL) a third of
//! the way through the checkpoint, and on restart resumes from the chunks it had kept instead of
//! starting over. Its resident memory stays far below the checkpoint's size throughout: chunks
//! stream to a partial file, the finished file is moved into the checkpoint store and checked by
//! streaming, and the serving node reads chunks from its file.
//!
//! The chain is forged (`rnet_testkit::ForgedChain`): header-valid testnet blocks whose losses
//! only just meet the requirement, so the schedule grows the model fast, and whose training
//! claims are trusted under `-assumevalid`, as they are for any node that snapshot-syncs. Both
//! nodes run with `-assumevalid=<tip>`; the source loads the tip's checkpoint from a file with
//! `loadcheckpoint`. `RNET_DOWNLOAD_HEIGHT` picks another tip height (default 1008, where the
//! testnet model has d = 940, L = 10: a 360 MiB checkpoint).

#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant};

use rnet_consensus::ChainParams;
use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_model::{Checkpoint, Model, grow};
use rnet_testkit::{ForgedChain, plain_spk};
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

fn height() -> u32 {
    std::env::var("RNET_DOWNLOAD_HEIGHT").ok().and_then(|v| v.parse().ok()).unwrap_or(1008)
}

fn start(extra: &[&str]) -> TestNode {
    let mut args = vec!["-port=0", "-bind=127.0.0.1", "-connect=0", "-benchmarkloss=0"];
    args.extend_from_slice(extra);
    TestNode::start_on(Path::new(RNETD), "testnet", &args).expect("rnetd starts")
}

/// Resident and peak resident memory of a process, in bytes (`VmRSS`, `VmHWM`).
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Chunks a partial download's sidecar marks present (0 if there is none yet).
fn kept_chunks(node: &TestNode, block: &str) -> usize {
    let have = node.network_dir().join("downloads").join(format!("{block}.have"));
    std::fs::read(have).map(|m| m.iter().filter(|b| **b == 1).count()).unwrap_or(0)
}

fn log(node: &TestNode) -> String {
    std::fs::read_to_string(node.network_dir().join("debug.log")).unwrap_or_default()
}

fn block_count(n: &TestNode) -> u64 {
    n.call("getblockcount", json!([])).unwrap().as_u64().unwrap()
}

#[test]
fn a_killed_checkpoint_download_resumes_in_bounded_memory() {
    let top = height();
    let params = ChainParams::testnet();
    let mut forged = ForgedChain::new(params.clone(), SigningKey::from_bytes(&[0x33; 32]));
    let payout = plain_spk(&SigningKey::from_bytes(&[0x34; 32]));
    for _ in 1..top {
        forged.forge(None, &payout).unwrap();
    }
    // The tip's model: the testnet genesis model grown to the tip's scheduled shape.
    let (shape, size) = forged.next_shape().unwrap();
    let started = Instant::now();
    let genesis = Model::init(params.genesis_model.clone(), params.genesis_seed).unwrap();
    let model = grow(&genesis, shape.d_model as usize, shape.n_layers as usize, 7).unwrap();
    let bytes = Checkpoint::new(u64::from(top), model).to_bytes();
    assert_eq!(bytes.len() as u64, size);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("snapshot.ckpt");
    std::fs::write(&file, &bytes).unwrap();
    drop(bytes);
    let tip = forged.forge(Some(&std::fs::read(&file).unwrap()), &payout).unwrap().clone();
    let tip_hash = tip.block_hash().to_hex();
    let chunks = ForgedChain::chunks(size);
    println!(
        "CHECKPOINT DOWNLOAD: testnet chain of {top} forged blocks, tip model d={} L={}: {size} \
         bytes ({:.0} MiB, {chunks} chunks), made in {:.1} s",
        shape.d_model,
        shape.n_layers,
        size as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );

    // The source: every block, then the tip's checkpoint from the file.
    let assume = format!("-assumevalid={tip_hash}");
    let source = start(&[&assume]);
    // Headers first, as from peers: they locate the assumed-valid block's ancestry, so the
    // blocks connect without models.
    for block in &forged.blocks()[1..] {
        let hex = hex::encode(block.header.to_bytes());
        assert_eq!(source.call("submitheader", json!([hex])).unwrap(), Value::Null);
    }
    for block in &forged.blocks()[1..] {
        let hex = hex::encode(block.to_bytes());
        let r = source.call("submitblock", json!([hex])).unwrap();
        assert!(r.is_null() || r == json!("inconclusive"), "submitblock: {r}");
    }
    let loaded = source.call("loadcheckpoint", json!([tip_hash, file.to_str().unwrap()])).unwrap();
    assert_eq!(loaded["result"], json!("connected"), "{loaded}");
    assert_eq!(block_count(&source), u64::from(top));
    assert!(file.exists(), "loadcheckpoint leaves the operator's file alone");

    // The new node: killed once a third of the checkpoint is on disk.
    let mut node = start(&[&assume]);
    node.call("addnode", json!([source.p2p_addr().to_string(), "onetry"])).unwrap();
    let mut peak_rss = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    let download_started = Instant::now();
    while kept_chunks(&node, &tip_hash) < (chunks / 3) as usize {
        assert!(Instant::now() < deadline, "no download progress:\n{}", log(&node));
        if let Some((rss, _)) = node.pid().and_then(memory) {
            peak_rss = peak_rss.max(rss);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, hwm_before) = node.pid().and_then(memory).unwrap();
    node.kill();
    let kept = kept_chunks(&node, &tip_hash);
    let first_s = download_started.elapsed().as_secs_f64();
    assert!(kept >= (chunks / 3) as usize && kept < chunks as usize, "kept {kept} of {chunks}");

    // Restarted, it resumes from the kept chunks and finishes.
    node.restart(&[]).unwrap();
    node.call("addnode", json!([source.p2p_addr().to_string(), "onetry"])).unwrap();
    let resumed_started = Instant::now();
    while block_count(&node) < u64::from(top) {
        assert!(Instant::now() < deadline, "not synced:\n{}", log(&node));
        if let Some((rss, _)) = node.pid().and_then(memory) {
            peak_rss = peak_rss.max(rss);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let resume_s = resumed_started.elapsed().as_secs_f64();
    let (_, hwm_after) = node.pid().and_then(memory).unwrap();
    let received =
        node.call("getnettotals", json!([])).unwrap()["totalbytesrecv"].as_u64().unwrap();
    let log_text = log(&node);
    let resumed_line = log_text
        .lines()
        .find(|l| l.contains("resuming a partial checkpoint download"))
        .unwrap_or_else(|| panic!("no resume in the log:\n{log_text}"));
    println!(
        "CHECKPOINT DOWNLOAD: first run fetched {kept} chunks in {first_s:.1} s, then was killed; \
         the restarted node resumed ({}) and finished in {resume_s:.1} s, receiving {received} \
         bytes ({:.0} MiB of the {:.0} MiB checkpoint); peak RSS {:.0} MiB before the kill, {:.0} \
         MiB after (sampled {:.0} MiB)",
        resumed_line.split_once("resuming").map_or("", |(_, r)| r.trim()),
        received as f64 / (1 << 20) as f64,
        size as f64 / (1 << 20) as f64,
        hwm_before as f64 / (1 << 20) as f64,
        hwm_after as f64 / (1 << 20) as f64,
        peak_rss as f64 / (1 << 20) as f64,
    );

    // It resumed: the second run received what was missing, not the whole checkpoint again.
    let kept_bytes = kept as u64 * rnet_model::checkpoint::CHUNK_SIZE as u64;
    assert!(received < size - kept_bytes / 2, "received {received} of {size}");
    // Bounded memory: well below the checkpoint's size in both runs (the node's own working
    // set, about 60 MiB idle and 120 MiB while it syncs 1,000 blocks, does not grow with it).
    let bound = (size * 2 / 5).max(160 << 20);
    assert!(hwm_before < bound && hwm_after < bound, "peak RSS {hwm_before} / {hwm_after}");
    // Same model as the source, checked against the committed root.
    let info = |n: &TestNode| -> Value { n.call("getcheckpointinfo", json!([tip_hash])).unwrap() };
    assert_eq!(info(&node)["available"], json!(true));
    assert_eq!(info(&node)["root"], info(&source)["root"]);
    assert_eq!(
        node.call("getbestblockhash", json!([])).unwrap(),
        source.call("getbestblockhash", json!([])).unwrap()
    );
}
