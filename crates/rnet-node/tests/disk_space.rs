//! A full disk (issue 14 item 15): `rnetd -mine` stops cleanly with "disk space is too low"
//! once the free space falls below `-mindiskspace`, leaving no temporary files; at startup the
//! same threshold refuses to start.
//!
//! The disk is "filled" for real: the node gets a threshold 256 MiB below the free space it
//! sees at start, then the test reserves 1 GiB in a file on the same file system.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rnet_rpc::{Auth, RpcClient};
use serde_json::json;

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

fn spawn(datadir: &Path, extra: &[String]) -> Child {
    Command::new(RNETD)
        .arg("-regtest")
        .arg(format!("-datadir={}", datadir.display()))
        .arg("-rpcport=0")
        .arg("-printtoconsole=0")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child, within: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rnetd did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(tmp_files(&p));
        } else if p.extension().is_some_and(|x| x == "tmp") {
            out.push(p);
        }
    }
    out
}

/// Reserves `len` bytes of real disk space in a new file (`fallocate`, else zeros).
fn fill(path: &Path, len: u64) {
    let f = std::fs::File::create(path).unwrap();
    if rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, len).is_err() {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(&f);
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..len >> 20 {
            w.write_all(&chunk).unwrap();
        }
        w.flush().unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
fn too_little_space_at_startup_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(dir.path(), &[format!("-mindiskspace={}", u64::MAX / 2)]);
    let (code, stderr) = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("disk space is too low"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("regtest/chainstate.redb").exists(), "nothing written");
}

#[test]
fn mining_node_stops_cleanly_when_the_disk_fills() {
    let dir = tempfile::tempdir().unwrap();
    let netdir = dir.path().join("regtest");
    std::fs::create_dir_all(&netdir).unwrap();
    let free = rnet_node::disk::free_space(&netdir).unwrap();
    let margin = 256 << 20;
    assert!(free > 2 * (1 << 30), "needs 2 GiB free to run, has {free}");
    let threshold = free - margin;
    let mut child = spawn(dir.path(), &["-mine".into(), format!("-mindiskspace={threshold}")]);

    // Wait for RPC and a few mined blocks.
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        assert!(Instant::now() < deadline, "rnetd did not start");
        assert!(child.try_wait().unwrap().is_none(), "rnetd exited early");
        if let Ok(port) = std::fs::read_to_string(netdir.join("rpc.port")) {
            let url = format!("http://127.0.0.1:{}", port.trim());
            let c = RpcClient::new(&url, Auth::Cookie(netdir.join(rnet_rpc::COOKIE_FILE))).unwrap();
            if c.call("getblockcount", json!([])).is_ok() {
                break c;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    while client.call("getblockcount", json!([])).unwrap().as_u64().unwrap() < 2 {
        assert!(Instant::now() < deadline, "no blocks mined");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The disk "fills": 1 GiB taken, the free space drops ~768 MiB below the threshold.
    let filler = dir.path().join("filler");
    fill(&filler, 1 << 30);
    let t = Instant::now();
    let (code, stderr) = wait_exit(&mut child, Duration::from_secs(60));
    let took = t.elapsed();
    let _ = std::fs::remove_file(&filler);
    let log = std::fs::read_to_string(netdir.join("debug.log")).unwrap();
    println!("rnetd stopped {took:?} after the disk filled, exit code {code:?}");
    assert_eq!(code, Some(1), "stopped with an error status: {stderr}");
    assert!(stderr.contains("disk space is too low"), "{stderr}");
    assert_eq!(log.matches("disk space is too low").count(), 1, "logged once, not in a loop");
    assert!(log.contains("ERROR"), "at error level");
    assert!(log.contains("shutdown complete"), "clean shutdown:\n{log}");
    assert!(!netdir.join(rnet_rpc::COOKIE_FILE).exists(), "cookie removed by the clean shutdown");
    assert_eq!(tmp_files(dir.path()), Vec::<PathBuf>::new(), "no temporary files left");
}
