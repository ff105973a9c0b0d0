//! Runs the real `rnet-util` binary: known vectors come out, bad input exits 1 with one line, and
//! the checkpoint/train commands produce files that load and evaluate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rnet_util(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnet-util")).args(args).output().expect("run rnet-util")
}

fn ok(args: &[&str]) -> String {
    let out = rnet_util(args);
    assert!(
        out.status.success(),
        "rnet-util {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).unwrap()
}

/// Asserts exit code 1 and a short error on stderr; returns it.
fn fails(args: &[&str]) -> String {
    let out = rnet_util(args);
    assert_eq!(out.status.code(), Some(1), "rnet-util {args:?} should fail with 1");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.trim().is_empty() && err.lines().count() <= 2, "one-line error, got {err:?}");
    err
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnet-util-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn keccak_vectors() {
    // Ethereum's Keccak-256 of "abc" and of the empty string.
    assert_eq!(
        ok(&["keccak256", "616263"]).trim(),
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    );
    assert_eq!(
        ok(&["keccak256", ""]).trim(),
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    );
    // Keccak-256d("") = Keccak-256 of the 32 bytes above.
    let inner = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470";
    assert_eq!(ok(&["keccak256d", ""]), ok(&["keccak256", inner]));
    fails(&["keccak256", "0g"]);
    fails(&["keccak256", "abc"]);
}

#[test]
fn slip10_vector_1_through_the_cli() {
    // SLIP-0010 test vector 1 for ed25519, chain m/0H/1H.
    let v = json(&["derive", "000102030405060708090a0b0c0d0e0f", "m/0'/1'"]);
    assert_eq!(
        v["private_key"],
        "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2"
    );
    assert_eq!(v["public_key"], "1932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187");
    fails(&["derive", "000102030405060708090a0b0c0d0e0f", "m/0"]);
    fails(&["derive", "00", "m/0'"]);
}

#[test]
fn mnemonic_sign_and_verify() {
    let words = ok(&["mnemonic", "new"]);
    assert_eq!(words.split_whitespace().count(), 24);
    let seed = ok(&["mnemonic", "seed", words.trim(), "--passphrase", "TREZOR"]);
    assert_eq!(seed.trim().len(), 128);
    fails(&["mnemonic", "seed", "abandon abandon abandon"]);

    let key = json(&["derive", seed.trim(), "m/44'/9555'/0'"]);
    let private = key["private_key"].as_str().unwrap();
    let public = key["public_key"].as_str().unwrap();
    let sig = ok(&["sign", private, "68656c6c6f"]);
    assert_eq!(sig.trim().len(), 128);
    assert_eq!(ok(&["verify", public, "68656c6c6f", sig.trim()]).trim(), "true");
    // Another message does not verify: exit 1.
    fails(&["verify", public, "68656c6c6e", sig.trim()]);
    fails(&["sign", "00", "00"]);
}

#[test]
fn address_round_trip_and_errors() {
    let program = "11".repeat(32);
    let address = ok(&["address", "encode", "--network", "regtest", "--version", "1", &program]);
    assert!(address.starts_with("rrnt1p"), "{address}");
    let decoded = json(&["address", "decode", address.trim()]);
    assert_eq!(decoded["network"], "regtest");
    assert_eq!(decoded["witness_version"], 1);
    assert_eq!(decoded["program"], program);
    assert_eq!(decoded["script_pubkey"], format!("5120{program}"));
    fails(&["address", "decode", "rnt1qqqqqq"]);
    fails(&["address", "encode", "--network", "mainnet", "--version", "17", &program]);
    fails(&["address", "encode", "--network", "nonet", "--version", "1", &program]);
}

#[test]
fn decoders_reject_garbage_with_one_line() {
    fails(&["decode-tx", "00"]);
    fails(&["decode-tx", "zz"]);
    fails(&["decode-header", "0102"]);
    // A well-formed header (all-zero 328 bytes) decodes and reports its id; 288 bytes (a
    // version-1 header, without `update_root` and `update_size`) is refused.
    fails(&["decode-header", &"00".repeat(288)]);
    let header = json(&["decode-header", &"00".repeat(rnet_primitives::HEADER_SIZE)]);
    assert_eq!(header["height"], 0);
    assert_eq!(header["parent_loss"], 0);
    assert_eq!(header["hash"].as_str().unwrap().len(), 64);
}

#[test]
fn usage_errors_exit_1() {
    fails(&["no-such-command"]);
    fails(&["keccak256"]);
    assert!(rnet_util(&["--help"]).status.success());
}

#[test]
fn backup_round_trip_and_wrong_passphrase() {
    let dir = temp_dir("backup");
    let (plain, sealed, back) = (dir.join("plain"), dir.join("sealed"), dir.join("back"));
    std::fs::write(&plain, b"twenty-four words would go here").unwrap();
    let run = |pass: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rnet-util"))
            .args(args)
            .env("RNET_PASSPHRASE", pass)
            .output()
            .unwrap()
    };
    assert!(run("correct horse", &["backup", "encrypt", p(&plain), p(&sealed)]).status.success());
    let wrong = run("wrong horse", &["backup", "decrypt", p(&sealed), p(&back)]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(!back.exists(), "nothing written on a wrong passphrase");
    assert!(run("correct horse", &["backup", "decrypt", p(&sealed), p(&back)]).status.success());
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&plain).unwrap());
}

#[test]
fn checkpoint_lifecycle_and_training() {
    let dir = temp_dir("checkpoint");
    let genesis = dir.join("genesis.rnck");
    let root = ok(&["checkpoint", "init", "--network", "regtest", "--out", p(&genesis)]);
    let info = json(&["checkpoint", "info", p(&genesis)]);
    assert_eq!(info["checkpoint_root"], root.trim());
    assert_eq!(info["height"], 0);
    assert_eq!(info["config"]["d_model"], 32);

    // A fresh model predicts bytes roughly uniformly: about ln 256 = 5.545 nats per byte.
    let eval = json(&["checkpoint", "eval", p(&genesis)]);
    let initial = eval["nats_per_byte"].as_f64().unwrap();
    assert!((initial - 5.545).abs() < 0.2, "{initial}");

    // Growth to height 3 follows the schedule (d += 2 per block) and preserves the loss.
    let grown = dir.join("grown.rnck");
    let g = json(&[
        "checkpoint",
        "grow",
        p(&genesis),
        "--to-height",
        "3",
        "--network",
        "regtest",
        "--out",
        p(&grown),
    ]);
    assert_eq!(g["config"]["d_model"], 38);
    let eval_grown = json(&["checkpoint", "eval", p(&grown)]);
    let after = eval_grown["nats_per_byte"].as_f64().unwrap();
    assert!((after - initial).abs() / initial < 1e-5, "{initial} -> {after}");

    // Training lowers the canonical loss and writes the optimizer state beside the output.
    let trained = dir.join("block1.rnck");
    let t = json(&[
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
    ]);
    assert_eq!(t["height"], 1);
    assert_eq!(t["d_model"], 34);
    assert!(t["nats_per_byte"].as_f64().unwrap() < initial - 1.0, "{t}");
    assert!(dir.join("block1.rnck.opt").exists());
    let check = json(&["checkpoint", "eval", p(&trained)]);
    assert_eq!(check["val_loss"], t["benchmark_loss"], "re-evaluation gives the same integer");

    // Resuming continues the optimizer's step count.
    let trained2 = dir.join("block2.rnck");
    let t2 = json(&[
        "train",
        "--network",
        "regtest",
        "--checkpoint",
        p(&trained),
        "--steps",
        "10",
        "--out",
        p(&trained2),
        "--quiet",
    ]);
    assert_eq!(t2["optimizer_step"], 70);
    assert_eq!(t2["d_model"], 36);

    let st = dir.join("model.safetensors");
    ok(&["checkpoint", "export-safetensors", p(&trained), p(&st)]);
    assert!(std::fs::metadata(&st).unwrap().len() > 100_000);

    // Corrupt files are clear errors.
    let mut bytes = std::fs::read(&genesis).unwrap();
    bytes.truncate(bytes.len() - 5);
    let broken = dir.join("broken.rnck");
    std::fs::write(&broken, &bytes).unwrap();
    fails(&["checkpoint", "info", p(&broken)]);
    fails(&["checkpoint", "info", p(&dir.join("missing.rnck"))]);
    fails(&[
        "train",
        "--network",
        "regtest",
        "--checkpoint",
        p(&genesis),
        "--steps",
        "0",
        "--out",
        p(&trained),
    ]);
}

#[test]
fn sample_reproduces_a_blocks_records_from_the_spec_inputs() {
    // The regtest genesis block carries the sample its own header draws.
    let params = rnet_consensus::ChainParams::regtest();
    let genesis = params.genesis_block();
    let h = &genesis.header;
    let out = json(&[
        "sample",
        "--network",
        "regtest",
        "--prev",
        &h.prev_block_hash.to_hex(),
        "--root",
        &h.checkpoint_root.to_hex(),
        "--miner-key",
        &hex::encode(h.miner_pubkey),
    ]);
    let expected: Vec<u64> = genesis.sample.records.iter().map(|r| u64::from(r.index)).collect();
    let got: Vec<u64> =
        out["records"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(got, expected);
    assert_eq!(got.len(), 32);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    let seed = rnet_consensus::sample_seed(&h.prev_block_hash, &h.checkpoint_root, &h.miner_pubkey);
    assert_eq!(out["seed"], hex::encode(seed));
    assert_eq!(out["corpus_records"], 67_794);
    assert_eq!(out["corpus_root"], params.corpus_root.to_hex());
    // Bad input: one line, exit 1.
    fails(&["sample", "--network", "regtest", "--prev", "00", "--root", "00", "--miner-key", "00"]);
    fails(&["sample", "--network", "moon", "--prev", "", "--root", "", "--miner-key", ""]);
}
