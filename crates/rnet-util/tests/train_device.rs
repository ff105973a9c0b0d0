//! `rnet-util train --device …` and `serve --device …`: `--device cpu` is the default engine (same
//! checkpoint, byte for byte); a device that is not built in or not present is a one-line error;
//! with `--features vulkan` (and an adapter; lavapipe counts) `--device vulkan` trains to about the
//! CPU's loss. Without an adapter the Vulkan test prints `no Vulkan adapter: skipped` unless
//! `RNET_REQUIRE_VULKAN=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rnet_util(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnet-util")).args(args).output().expect("run rnet-util")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = rnet_util(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Exit code 1; returns the `error:` lines of stderr (Mesa may print notices of its own).
fn error_lines(args: &[&str]) -> Vec<String> {
    let out = rnet_util(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    err.lines()
        .filter(|l| l.starts_with("error: --") || l.starts_with("error: device"))
        .map(String::from)
        .collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnet-util-device-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A regtest genesis checkpoint in `dir`.
fn genesis(dir: &Path) -> PathBuf {
    let genesis = dir.join("genesis.rnck");
    let out = rnet_util(&["checkpoint", "init", "--network", "regtest", "--out", p(&genesis)]);
    assert!(out.status.success());
    genesis
}

fn train_args<'a>(genesis: &'a Path, out: &'a Path, steps: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--network",
        "regtest",
        "--checkpoint",
        p(genesis),
        "--steps",
        steps,
        "--out",
        p(out),
        "--quiet",
    ]
}

#[test]
fn device_cpu_is_the_default_engine() {
    let dir = temp_dir("cpu");
    let genesis = genesis(&dir);
    let (a, b) = (dir.join("default.rnck"), dir.join("cpu.rnck"));
    let ta = json(&train_args(&genesis, &a, "20"));
    let mut args = train_args(&genesis, &b, "20");
    args.extend(["--device", "cpu"]);
    let tb = json(&args);
    assert_eq!(ta["device"], "cpu");
    assert_eq!(tb["device"], "cpu");
    assert_eq!(ta["checkpoint_root"], tb["checkpoint_root"]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(
        std::fs::read(dir.join("default.rnck.opt")).unwrap(),
        std::fs::read(dir.join("cpu.rnck.opt")).unwrap()
    );
}

#[test]
fn unavailable_devices_are_one_line_errors() {
    let dir = temp_dir("errors");
    let genesis = genesis(&dir);
    let out = dir.join("x.rnck");
    let with = |extra: &[&'static str]| {
        let mut args = train_args(&genesis, &out, "1");
        args.extend_from_slice(extra);
        error_lines(&args)
    };
    #[cfg(not(feature = "cuda"))]
    assert_eq!(
        with(&["--device", "cuda"]),
        ["error: device cuda:0: not built with CUDA support (rebuild with --features cuda)"]
    );
    #[cfg(feature = "cuda")]
    {
        let lines = with(&["--device", "cuda:1000"]);
        assert!(lines.len() == 1 && lines[0].starts_with("error: device cuda:1000 unavailable"));
    }
    assert_eq!(
        with(&["--device", "metal"]),
        [
            "error: device metal: not built with Metal support (rebuild with --features metal, on macOS)"
        ]
    );
    let lines = with(&["--device", "vulkan:1000"]);
    assert!(lines.len() == 1 && lines[0].starts_with("error: device vulkan:1000"), "{lines:?}");
    assert!(!out.exists(), "nothing is written when the device is missing");
    // A bad spelling is a usage error naming the device kinds.
    let bad =
        rnet_util(&[train_args(&genesis, &out, "1").as_slice(), &["--device", "gpu"]].concat());
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown device \"gpu\""));
    // Serving on a device that is not there is the same one-line error, never a CPU server.
    let lines = error_lines(&["serve", "--checkpoint", p(&genesis), "--device", "metal"]);
    assert_eq!(
        lines,
        [
            "error: --device metal: device metal: not built with Metal support (rebuild with --features metal, on macOS)"
        ]
    );
    #[cfg(not(feature = "cuda"))]
    {
        let lines = error_lines(&["serve", "--checkpoint", p(&genesis), "--device", "cuda"]);
        assert!(lines.len() == 1 && lines[0].contains("not built with CUDA support"), "{lines:?}");
    }
}

#[cfg(feature = "vulkan")]
#[test]
fn device_vulkan_trains_like_the_cpu() {
    let dir = temp_dir("vulkan");
    let genesis = genesis(&dir);
    let device = std::env::var("RNET_VULKAN_ADAPTER")
        .map_or("vulkan:0".to_string(), |n| format!("vulkan:{n}"));
    let (c, v) = (dir.join("cpu.rnck"), dir.join("vulkan.rnck"));
    let mut cpu = train_args(&genesis, &c, "30");
    cpu.extend(["--batch", "4"]);
    let tc = json(&cpu);
    let mut args = train_args(&genesis, &v, "30");
    args.extend(["--batch", "4", "--device", device.as_str()]);
    let out = rnet_util(&args);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            std::env::var_os("RNET_REQUIRE_VULKAN").is_none() && err.contains("unavailable"),
            "{err}"
        );
        eprintln!("no Vulkan adapter: skipped");
        return;
    }
    let tv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tv["device"], device);
    assert_eq!(tv["optimizer_step"], 30);
    let (lc, lv) = (tc["nats_per_byte"].as_f64().unwrap(), tv["nats_per_byte"].as_f64().unwrap());
    eprintln!("benchmark loss after 30 steps: cpu {lc:.5}, {device} {lv:.5} nats/byte");
    assert!((lc - lv).abs() < 1e-3, "cpu {lc} vs {device} {lv}");
    assert!(dir.join("vulkan.rnck.opt").exists());
}

/// `train --rank R --device vulkan`: the gradients on the device, the factors on the CPU; the
/// update and the benchmark loss match the CPU low-rank run closely.
#[cfg(feature = "vulkan")]
#[test]
fn device_vulkan_trains_low_rank_like_the_cpu() {
    let dir = temp_dir("vulkan-rank");
    let genesis = genesis(&dir);
    let device = std::env::var("RNET_VULKAN_ADAPTER")
        .map_or("vulkan:0".to_string(), |n| format!("vulkan:{n}"));
    let genesis_id = rnet_consensus::ChainParams::regtest().genesis_hash().to_hex();
    let (c, v) = (dir.join("cpu.rnck"), dir.join("vulkan.rnck"));
    let rank = ["--rank", "2", "--parent", genesis_id.as_str(), "--batch", "4"];
    let mut cpu = train_args(&genesis, &c, "20");
    cpu.extend(rank);
    let tc = json(&cpu);
    let mut args = train_args(&genesis, &v, "20");
    args.extend(rank);
    args.extend(["--device", device.as_str()]);
    let out = rnet_util(&args);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            std::env::var_os("RNET_REQUIRE_VULKAN").is_none() && err.contains("unavailable"),
            "{err}"
        );
        eprintln!("no Vulkan adapter: skipped");
        return;
    }
    let tv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tv["device"], device);
    assert_eq!(tc["device"], "cpu");
    assert_eq!(tv["update_bytes"], tc["update_bytes"]);
    let (lc, lv) = (tc["nats_per_byte"].as_f64().unwrap(), tv["nats_per_byte"].as_f64().unwrap());
    eprintln!("rank-2 benchmark loss after 20 steps: cpu {lc:.5}, {device} {lv:.5} nats/byte");
    assert!((lc - lv).abs() < 1e-3, "cpu {lc} vs {device} {lv}");
    assert!(dir.join("vulkan.rnck.update").exists());
}
