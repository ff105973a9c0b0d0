//! Issue 18 end to end: the `rnet-miner` binary mines against a real regtest `rnetd` with its
//! training done by the reference PyTorch trainer (`contrib/pytorch`) under
//! `torchrun --nproc_per_node=2` (DDP on Gloo), and the node accepts every block.
//!
//! Needs a Python with the pinned `contrib/pytorch/requirements.txt` installed: set
//! `RNET_TORCH_PYTHON` to its interpreter (e.g. `/work/venv-torch/bin/python`), and build the miner
//! too (`cargo test -p rnet-node -p rnet-miner --test pytorch_trainer`). Without either the test
//! says why and passes as skipped, like the other optional-binary tests of this crate.

use std::path::{Path, PathBuf};

use rnet_functional::TestNode;
use serde_json::json;

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

fn miner_binary() -> Option<PathBuf> {
    let p = Path::new(RNETD).with_file_name(format!("rnet-miner{}", std::env::consts::EXE_SUFFIX));
    p.exists().then_some(p)
}

fn torch_python() -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var_os("RNET_TORCH_PYTHON")?);
    let ok = std::process::Command::new(&python)
        .args(["-c", "import torch, safetensors, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

#[test]
fn rnet_miner_mines_with_the_pytorch_trainer_on_two_ranks() {
    let Some(miner) = miner_binary() else {
        eprintln!("skipped: rnet-miner binary not built (run with -p rnet-miner too)");
        return;
    };
    let Some(python) = torch_python() else {
        eprintln!("skipped: RNET_TORCH_PYTHON is not a Python with torch (contrib/pytorch)");
        return;
    };
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/pytorch");
    let contrib = contrib.canonicalize().expect("contrib/pytorch exists");
    let node = TestNode::start(Path::new(RNETD), &[]).expect("rnetd starts");
    // Mined coins go to a recovery-policy address: a wallet of the node's.
    let recovery = "11".repeat(32);
    let recovery = hex::encode(
        rnet_crypto::SigningKey::from_bytes(&hex::decode(recovery).unwrap().try_into().unwrap())
            .public_key()
            .as_bytes(),
    );
    let policy = json!({ "heartbeat": { "recovery": recovery, "interval": 1000 } });
    node.call("createwallet", json!(["mined", policy])).unwrap();
    let cmd = format!(
        "{} -m torch.distributed.run --standalone --nproc_per_node=2 -m rnet_trainer \
         --input {{input}} --output {{output}} --data {{data}} --steps {{steps}} \
         --batch 8 --lr 3e-3 --log-every 5",
        python.display()
    );
    let out = std::process::Command::new(miner)
        .args(node.connect_args())
        .args([
            "-blocks=2",
            "-noprogress",
            "-miningwallet=mined",
            &format!("-trainer-cmd={cmd}"),
            "-trainer-steps=20",
            "-trainer-timeout=300",
        ])
        .env("PYTHONPATH", &contrib)
        .env("OMP_NUM_THREADS", "1")
        .env("GLOO_SOCKET_IFNAME", "lo")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The trainer's own progress lines reach the miner's log, and both blocks were mined.
    assert!(stderr.contains("step 20/20 loss"), "{stderr}");
    assert!(stderr.contains("mined block height=1"), "{stderr}");
    assert!(stderr.contains("mined block height=2"), "{stderr}");
    assert_eq!(node.call("getblockcount", json!([])).unwrap(), json!(2));
    let history = node.call("gettraininginfo", json!([])).unwrap();
    let entries = history.as_array().unwrap();
    assert_eq!(entries.len(), 3, "genesis and two blocks: {history}");
    for e in &entries[1..] {
        let improvement = e["improvement"].as_u64().unwrap();
        assert!(improvement >= e["required_improvement"].as_u64().unwrap(), "{e}");
    }
}
