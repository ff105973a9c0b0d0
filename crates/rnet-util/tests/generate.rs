//! `rnet-util generate --threads N`: the decode threads are the user's to choose (capped at the
//! cores, 0 refused), and the completion does not depend on them.

use std::process::{Command, Output};

fn rnet_util(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnet-util")).args(args).output().expect("run rnet-util")
}

#[test]
fn threads_are_chosen_and_do_not_change_the_completion() {
    let dir = std::env::temp_dir().join(format!("rnet-util-generate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let genesis = dir.join("genesis.rnck");
    let genesis = genesis.to_str().unwrap();
    let out = rnet_util(&["checkpoint", "init", "--network", "regtest", "--out", genesis]);
    assert!(out.status.success());
    let run = |threads: &str| {
        let args = [
            "generate",
            "--checkpoint",
            genesis,
            "--threads",
            threads,
            "--max-tokens",
            "24",
            "--temperature",
            "0",
            "--stats",
            "In the beginning",
        ];
        let out = rnet_util(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (one, stats) = run("1");
    assert!(stats.contains("decode threads: 1"), "{stats}");
    // More threads than cores run on every core.
    let (many, stats) = run("64");
    assert!(stats.contains(&format!("decode threads: {cores}")), "{stats}");
    assert_eq!(one, many, "the threaded step gives the one-thread step's bytes");
    let zero = rnet_util(&["generate", "--checkpoint", genesis, "--threads", "0", "x"]);
    assert!(!zero.status.success());
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--threads"));
    let _ = std::fs::remove_dir_all(&dir);
}
