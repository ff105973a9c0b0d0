//! Command-line behaviour of the `rnet-miner` binary (this test also makes cargo build the binary,
//! which `crates/rnet-node/tests/functional.rs` runs against a real node).

use std::process::Command;

const MINER: &str = env!("CARGO_BIN_EXE_rnet-miner");

/// A recovery-policy address of throw-away keys.
fn policy_address() -> String {
    use rnet_script::ScriptTemplate;
    let key = |b: u8| rnet_crypto::SigningKey::from_bytes(&[b; 32]).public_key();
    rnet_script::Heartbeat::new(key(1), key(2), rnet_script::RelativeLock::Blocks(10))
        .unwrap()
        .address(rnet_primitives::Network::Regtest)
        .to_string()
}

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

/// Mined coins must have a recovery path: a bare-key address, or no payout at all, is refused
/// before anything is mined.
#[test]
fn a_bare_key_payout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    let bare =
        rnet_script::PlainKey::new(rnet_crypto::SigningKey::from_bytes(&[3; 32]).public_key())
            .address(rnet_primitives::Network::Regtest)
            .to_string();
    for (args, needle) in [
        (vec![format!("-miningaddress={bare}")], "bare-key address"),
        (vec![format!("-address={bare}")], "bare-key address"),
        (vec![], "a payout is required"),
    ] {
        let out = Command::new(MINER)
            .args(["-regtest", &datadir, "-rpcport=1", "-blocks=1"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
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
            &format!("-miningaddress={}", policy_address()),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:"), "{err}");
    assert!(!err.contains("payout"), "the payout was accepted; the node is missing: {err}");
}

#[test]
fn trainer_flags_are_checked_before_mining() {
    let out = Command::new(MINER).arg("-help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    for flag in ["-trainer-cmd=CMD", "-trainer-steps=N", "-trainer-timeout=S", "{input}"] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    let payout = format!("-miningaddress={}", policy_address());
    let run = |extra: &[&str]| {
        let mut args = vec!["-regtest", datadir.as_str(), "-rpcport=1", "-blocks=1", &payout];
        args.extend_from_slice(extra);
        let out = Command::new(MINER).args(&args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&["-trainer-cmd=cp {input} {output}", "-rank=4"]);
    assert!(err.contains("-trainer-cmd needs full updates"), "{err}");
    let err = run(&["-trainer-steps=5"]);
    assert!(err.contains("need -trainer-cmd"), "{err}");
    let err = run(&["-trainer-cmd=true", "-trainer-timeout=0"]);
    assert!(err.contains("-trainer-timeout must be at least 1 second"), "{err}");
}

#[test]
fn device_flag_is_checked_before_mining() {
    let out = Command::new(MINER).arg("-help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("-device=DEV"));
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    let payout = format!("-miningaddress={}", policy_address());
    let run = |extra: &[&str]| {
        let mut args = vec!["-regtest", datadir.as_str(), "-rpcport=1", "-blocks=1", &payout];
        args.extend_from_slice(extra);
        let out = Command::new(MINER).args(&args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&["-device=gpu"]);
    assert!(err.contains("invalid -device: unknown device \"gpu\""), "{err}");
    let err = run(&["-device=metal"]);
    assert_eq!(
        err.trim_end(),
        "error: device metal: not built with Metal support (rebuild with --features metal, on macOS)"
    );
    #[cfg(not(feature = "cuda"))]
    {
        let err = run(&["-device=cuda"]);
        assert_eq!(
            err.trim_end(),
            "error: device cuda:0: not built with CUDA support (rebuild with --features cuda)"
        );
    }
    // (Mesa's lavapipe may print its own notices on stderr first.)
    let err = run(&["-device=vulkan:1000"]);
    let ours: Vec<&str> = err.lines().filter(|l| l.starts_with("error: device")).collect();
    assert_eq!(ours.len(), 1, "{err}");
    assert!(ours[0].starts_with("error: device vulkan:1000"), "{err}");
}
