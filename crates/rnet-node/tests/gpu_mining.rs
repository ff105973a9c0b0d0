//! The main job on a GPU (issue 17): `rnetd -regtest -mine -device=vulkan` trains each block on
//! the Vulkan backend and the node's own CPU evaluator accepts the blocks. Built with
//! `--features vulkan`; runs wherever a Vulkan adapter exists (CI: Mesa's lavapipe), skips
//! without one unless `RNET_REQUIRE_VULKAN=1`. `-device` naming a device that is not built in
//! is refused at startup in every build.

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

#[test]
fn a_missing_device_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(RNETD)
        .arg(format!("-datadir={}", dir.path().display()))
        .args(["-regtest", "-rpcport=0", "-port=0", "-connect=0", "-mine", "-device=metal"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-device") && err.contains("metal"), "{err}");
    let out = std::process::Command::new(RNETD)
        .arg(format!("-datadir={}", dir.path().display()))
        .args(["-regtest", "-rpcport=0", "-device=gpu"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device"));
}

#[cfg(feature = "vulkan")]
mod vulkan {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use rnet_functional::TestNode;
    use serde_json::json;

    use super::RNETD;

    #[test]
    fn rnetd_mines_on_vulkan_and_its_cpu_evaluator_accepts_the_blocks() {
        let required = std::env::var("RNET_REQUIRE_VULKAN").is_ok_and(|v| v == "1");
        let node = match TestNode::start(Path::new(RNETD), &["-mine", "-device=vulkan"]) {
            Ok(node) => node,
            Err(e) if !required => {
                eprintln!("no Vulkan adapter: skipped ({e})");
                return;
            }
            Err(e) => panic!("rnetd -device=vulkan did not start: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        while node.call("getblockcount", json!([])).unwrap().as_u64().unwrap() < 2 {
            assert!(Instant::now() < deadline, "no blocks mined on Vulkan");
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(node.network_dir().join("debug.log")).unwrap();
        assert!(log.contains("mining trains on device vulkan"), "{log}");
        assert!(log.contains("mined block height=2"), "{log}");
        // Every block passed the node's checks, the canonical CPU evaluation included.
        let history = node.call("gettraininginfo", json!([])).unwrap();
        for block in &history.as_array().unwrap()[1..] {
            let improvement = block["improvement"].as_u64().unwrap();
            assert!(improvement >= block["required_improvement"].as_u64().unwrap(), "{block}");
        }
    }
}
