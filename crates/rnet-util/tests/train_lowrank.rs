//! `rnet-util train --rank R`: low-rank training writes a §5.2 update and the merged checkpoint;
//! the update applied canonically to the grown parent gives exactly that checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rnet_model::{Checkpoint, ModelUpdate, UpdateLimits, apply, grow};

fn rnet_util(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnet-util")).args(args).output().expect("run rnet-util")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = rnet_util(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Exit code 1 with a one-line error mentioning `needle`.
fn fails_with(args: &[&str], needle: &str) {
    let out = rnet_util(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(needle) && err.lines().count() <= 2, "{args:?}: {err:?}");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnet-util-lowrank-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn train_with_rank_writes_an_update_that_gives_the_checkpoint() {
    let dir = temp_dir("rank");
    let genesis = dir.join("genesis.rnck");
    let out = rnet_util(&["checkpoint", "init", "--network", "regtest", "--out", p(&genesis)]);
    assert!(out.status.success());
    let initial = json(&["checkpoint", "eval", p(&genesis)])["nats_per_byte"].as_f64().unwrap();

    let trained = dir.join("block1.rnck");
    let update_path = dir.join("block1.update");
    let base = [
        "train",
        "--network",
        "regtest",
        "--checkpoint",
        p(&genesis),
        "--steps",
        "60",
        "--out",
        p(&trained),
        "--quiet",
    ];
    // The shape grows at height 1: an update needs the parent's id for the growth seed.
    let mut args = base.to_vec();
    args.extend(["--rank", "4", "--update-out", p(&update_path)]);
    fails_with(&args, "needs --parent");
    let genesis_id = rnet_consensus::ChainParams::regtest().genesis_hash().to_hex();
    args.extend(["--parent", &genesis_id]);
    let t = json(&args);
    assert_eq!(t["rank"], 4);
    assert!(t["nats_per_byte"].as_f64().unwrap() < initial - 0.5, "{t}");
    assert!(!dir.join("block1.rnck.opt").exists(), "low-rank mode writes no optimizer state");

    // The update decodes, has rank 4 everywhere and the reported size; applied to the grown
    // parent it gives exactly the written checkpoint.
    let bytes = std::fs::read(&update_path).unwrap();
    assert_eq!(t["update_bytes"], bytes.len() as u64);
    let update = ModelUpdate::decode(&bytes).unwrap();
    assert!(update.entries().iter().all(|e| e.rank() == Some(4)));
    let written = Checkpoint::from_bytes(&std::fs::read(&trained).unwrap()).unwrap();
    let parent = Checkpoint::from_bytes(&std::fs::read(&genesis).unwrap()).unwrap();
    let (d, l) = (written.model.config().d_model, written.model.config().n_layers);
    let seed = rnet_consensus::growth_seed(&rnet_consensus::ChainParams::regtest().genesis_hash());
    let grown = grow(&parent.model, d, l, seed).unwrap();
    let limits = UpdateLimits { max_update_bytes: u64::MAX, max_rank: 4 };
    let merged = apply(&grown, &update, &limits, 1).unwrap();
    assert_eq!(merged.root(), written.root());
    assert_eq!(t["checkpoint_root"], hex::encode(written.root()));

    // The default update path is OUT.update; --other replace adds replacement entries.
    let trained2 = dir.join("other.rnck");
    let mut args = base.to_vec();
    args[8] = p(&trained2);
    args.extend(["--rank", "2", "--other", "replace", "--steps", "5", "--parent", &genesis_id]);
    args.drain(5..7); // the 60-step --steps of `base`
    let t = json(&args);
    let bytes = std::fs::read(dir.join("other.rnck.update")).unwrap();
    assert_eq!(t["update_bytes"], bytes.len() as u64);
    let update = ModelUpdate::decode(&bytes).unwrap();
    assert!(update.entries().iter().any(|e| e.rank().is_none()));

    // Bad arguments.
    let mut a = base.to_vec();
    a.extend(["--update-out", p(&update_path)]);
    fails_with(&a, "--update-out needs --rank");
    let mut a = base.to_vec();
    a.extend(["--alpha", "2"]);
    fails_with(&a, "--alpha needs --rank");
    let mut a = base.to_vec();
    a.extend(["--other", "replace"]);
    fails_with(&a, "--other needs --rank");
    let mut a = base.to_vec();
    a.extend(["--rank", "4", "--parent", "xyz"]);
    fails_with(&a, "--parent must be");
    let mut a = base.to_vec();
    a.extend(["--rank", "35", "--parent", &genesis_id]);
    fails_with(&a, "--rank 35");
    let mut a = base.to_vec();
    a.extend(["--rank", "4", "--alpha", "0"]);
    fails_with(&a, "--alpha");
    let mut a = base.to_vec();
    a.extend(["--rank", "4", "--update-out", p(&trained)]);
    fails_with(&a, "same file");
    let _ = std::fs::remove_dir_all(&dir);
}
