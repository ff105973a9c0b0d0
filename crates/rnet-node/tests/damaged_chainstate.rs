//! A damaged `chainstate.redb` (issue 14 item 14): `rnetd` exits with code 1 and a clear error
//! naming the file and what to do, never a panic.

use std::path::Path;

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use rnet_primitives::Network;
use rnet_script::PlainKey;
use serde_json::json;

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

/// A stopped node with a few blocks, and the path of its chainstate file.
fn stopped_node_with_blocks() -> (TestNode, std::path::PathBuf) {
    let mut node = TestNode::start(Path::new(RNETD), &[]).expect("rnetd starts");
    let key = SigningKey::from_bytes(&[0x14; 32]);
    let address = PlainKey::new(key.public_key()).address(Network::Regtest).to_string();
    node.call("generatetoaddress", json!([3, address])).unwrap();
    assert!(node.stop(), "clean stop");
    let db = node.network_dir().join("chainstate.redb");
    assert!(db.exists());
    (node, db)
}

fn assert_clear_error(node: &TestNode, db: &Path) {
    let (status, stderr) = node.run_second_instance().unwrap();
    println!("rnetd on a damaged chainstate: {status}; stderr:\n{stderr}");
    assert_eq!(status.code(), Some(1), "exit code 1, not a panic (101): {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    assert!(
        stderr.contains(&format!("chainstate database {} is damaged", db.display())),
        "{stderr}"
    );
    assert!(stderr.contains("resync"), "says what to do: {stderr}");
    assert!(stderr.contains("checkpoints"), "{stderr}");
    // The file is left for the operator: nothing was changed.
}

#[test]
fn truncated_chainstate_is_a_clear_error() {
    let (node, db) = stopped_node_with_blocks();
    let len = std::fs::metadata(&db).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    assert_clear_error(&node, &db);
    assert_eq!(std::fs::metadata(&db).unwrap().len(), len / 2, "the file is left as it was");
}

#[test]
fn garbage_chainstate_is_a_clear_error() {
    let (node, db) = stopped_node_with_blocks();
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    // Overwrite everything past the first page with a pattern.
    let mut bytes = std::fs::read(&db).unwrap();
    for (i, b) in bytes.iter_mut().enumerate().take(len).skip(4096) {
        *b = (i as u8).wrapping_mul(31) ^ 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    assert_clear_error(&node, &db);
}
