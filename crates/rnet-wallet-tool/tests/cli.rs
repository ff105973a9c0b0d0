//! End-to-end runs of the `rnet-wallet-tool` binary.

use std::process::{Command, Output};

fn tool(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnet-wallet-tool"))
        .args(["--kdf-memory-kib", "8"])
        .args(args)
        .env("RNET_WALLET_PASSPHRASE", "pw")
        .env("RNET_BACKUP_PASSPHRASE", "bpw")
        .current_dir(dir)
        .output()
        .expect("run")
}

const KEY: &str = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";

#[test]
fn create_info_backup_restore_and_errors() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path();
    let out = tool(
        dir,
        &[
            "--wallet",
            "w",
            "create",
            "--network",
            "regtest",
            "--policy",
            "heartbeat",
            "--recovery",
            KEY,
            "--interval",
            "100",
            "--encrypt",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let words = v["mnemonic"].as_str().expect("words").to_owned();
    assert_eq!(words.split(' ').count(), 24);
    let addr = v["first_address"].as_str().expect("addr").to_owned();
    assert!(addr.starts_with("rrnt1"));

    let info = tool(dir, &["--wallet", "w", "info"]);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    assert_eq!(v["locked"], true);
    assert!(v.get("mnemonic").is_none());

    assert!(tool(dir, &["--wallet", "w", "backup", "--out", "b.bak"]).status.success());
    let r = tool(dir, &["--wallet", "r", "restore-backup", "--backup", "b.bak"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).expect("json");
    assert_eq!(v["first_address"].as_str(), Some(addr.as_str()));

    let r2 = tool(
        dir,
        &[
            "--wallet",
            "r2",
            "restore",
            "--words",
            &words,
            "--network",
            "regtest",
            "--policy",
            "heartbeat",
            "--recovery",
            KEY,
            "--interval",
            "100",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&r2.stdout).expect("json");
    assert_eq!(v["first_address"].as_str(), Some(addr.as_str()));
    assert!(tool(dir, &["--wallet", "r2", "encrypt"]).status.success());

    for bad in [
        vec![
            "--wallet",
            "w",
            "create",
            "--network",
            "regtest",
            "--policy",
            "heartbeat",
            "--recovery",
            KEY,
            "--interval",
            "5",
        ],
        vec![
            "--wallet",
            "x",
            "create",
            "--policy",
            "social",
            "--threshold",
            "1",
            "--cancel-window",
            "5",
        ],
        vec![
            "--wallet",
            "x",
            "restore",
            "--words",
            "abandon abandon",
            "--policy",
            "emission",
            "--inactivity",
            "9",
        ],
        vec!["--wallet", "missing", "info"],
    ] {
        let o = tool(dir, &bad);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}
