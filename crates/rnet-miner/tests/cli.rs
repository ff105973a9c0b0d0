//! Command-line behaviour of the `rnet-miner` binary (this test also makes cargo build the binary,
//! which `crates/rnet-node/tests/functional.rs` runs against a real node).

use std::process::Command;

const MINER: &str = env!("CARGO_BIN_EXE_rnet-miner");

#[test]
fn help_and_bad_arguments() {
    let out = Command::new(MINER).arg("-help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("-blocks=N"));
    let out = Command::new(MINER).arg("-bogus").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option -bogus"));
    let out = Command::new(MINER).args(["-blocks=x"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn no_node_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(MINER)
        .args([
            "-regtest",
            &format!("-datadir={}", dir.path().display()),
            "-rpcport=1",
            "-blocks=1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:"), "{err}");
}
