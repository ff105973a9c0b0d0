//! Checkpoint downloads on disk (issue 15): verified chunks go to a partial file under
//! `<netdir>/downloads/`, a restarted node re-verifies them and asks only for the missing ones,
//! damaged parts are fetched again, and the partial files are gone once the checkpoint is
//! accepted; stale partial files are swept at start.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::*;
use rnet_model::checkpoint::{CHUNK_SIZE, chunk_hashes, merkle_root};
use rnet_net::message::{Message, ModelObject};
use rnet_net::net::{DOWNLOADS_DIR, PARTIAL_MAX_AGE};
use rnet_primitives::{BlockHash, BlockHeader, Hash256};

const SECS: fn(u64) -> Duration = Duration::from_secs;
/// The object kind these tests move: whole checkpoints.
const CK: ModelObject = ModelObject::Checkpoint;

/// A checkpoint of four chunks (the last one short), each chunk different.
fn checkpoint_bytes() -> Vec<u8> {
    (0..3 * CHUNK_SIZE + 12_345).map(|i| ((i * 7 + i / CHUNK_SIZE) % 251) as u8).collect()
}

/// Stores the header of a block at height 5 whose checkpoint is `bytes`.
fn add_block(b: &FakeBackend, bytes: &[u8]) -> BlockHash {
    let h = BlockHeader {
        prev_block_hash: b.genesis_hash(),
        height: 5,
        time: 10,
        checkpoint_root: Hash256(merkle_root(&chunk_hashes(bytes))),
        checkpoint_size: bytes.len() as u64,
        ..BlockHeader::default()
    };
    let hash = h.hash();
    b.headers.lock().unwrap().insert(hash, h);
    hash
}

fn part_path(netdir: &Path, block: &BlockHash) -> PathBuf {
    netdir.join(DOWNLOADS_DIR).join(format!("{}.part", block.to_hex()))
}

fn have_path(netdir: &Path, block: &BlockHash) -> PathBuf {
    netdir.join(DOWNLOADS_DIR).join(format!("{}.have", block.to_hex()))
}

fn chunk(bytes: &[u8], index: u32) -> Vec<u8> {
    let start = index as usize * CHUNK_SIZE;
    bytes[start..(start + CHUNK_SIZE).min(bytes.len())].to_vec()
}

fn config_in(netdir: &Path) -> rnet_net::NetConfig {
    let mut c = config();
    c.netdir = Some(netdir.to_path_buf());
    c
}

/// A node on `netdir` wants the block; one peer serves the chunk hashes and only chunks 0 and 1;
/// once both are on disk the node is stopped (its runtime dropped).
fn half_download(netdir: &Path, bytes: &[u8]) -> BlockHash {
    let rt = runtime();
    let b = FakeBackend::new();
    let block = add_block(&b, bytes);
    let node = start(&rt, config_in(netdir), b.clone());
    rt.block_on(async {
        let mut peer = RawPeer::connect(&node).await;
        b.wanted.lock().unwrap().push(block);
        let got = peer
            .wait_for(SECS(15), |m| *m == Message::GetChunkHashes { block, kind: CK, start: 0 })
            .await;
        assert!(got.is_some(), "the peer is asked for the chunk hashes");
        let hashes = chunk_hashes(bytes);
        assert!(peer.send(&hash_list(block, CK, hashes)).await);
        let mut served = BTreeSet::new();
        while served.len() < 2 {
            let Some(Message::GetChunk { index, .. }) = peer
                .wait_for(
                    SECS(10),
                    |m| matches!(m, Message::GetChunk { block: h, .. } if *h == block),
                )
                .await
            else {
                panic!("chunks 0 and 1 are asked for (served {served:?})");
            };
            if index < 2 {
                assert!(
                    peer.send(&Message::Chunk {
                        block,
                        kind: CK,
                        index,
                        data: chunk(bytes, index)
                    })
                    .await
                );
                served.insert(index);
            }
        }
        let on_disk = eventually(SECS(10), || {
            fs::read(have_path(netdir, &block)).is_ok_and(|h| h == [1, 1, 0, 0])
        });
        assert!(on_disk, "chunks 0 and 1 are marked present on disk");
    });
    assert!(b.accepted_checkpoints.lock().unwrap().is_empty());
    drop(node);
    rt.shutdown_timeout(SECS(2));
    block
}

/// A restarted node on `netdir` wants the block again; a second peer serves whatever is asked.
/// Returns the chunk indices it was asked for; asserts the backend got the exact bytes and the
/// partial files are gone.
fn resume(netdir: &Path, bytes: &[u8]) -> BTreeSet<u32> {
    let rt = runtime();
    let b = FakeBackend::new();
    let block = add_block(&b, bytes);
    let node = start(&rt, config_in(netdir), b.clone());
    let asked = rt.block_on(async {
        let mut peer = RawPeer::connect(&node).await;
        b.wanted.lock().unwrap().push(block);
        let got = peer
            .wait_for(SECS(15), |m| *m == Message::GetChunkHashes { block, kind: CK, start: 0 })
            .await;
        assert!(got.is_some(), "the second peer is asked for the chunk hashes");
        assert!(peer.send(&hash_list(block, CK, chunk_hashes(bytes))).await);
        let mut asked = BTreeSet::new();
        loop {
            if b.accepted_checkpoints.lock().unwrap().iter().any(|(h, _)| *h == block) {
                break;
            }
            let m = peer
                .wait_for(
                    Duration::from_millis(300),
                    |m| matches!(m, Message::GetChunk { block: h, .. } if *h == block),
                )
                .await;
            if let Some(Message::GetChunk { index, .. }) = m {
                asked.insert(index);
                assert!(
                    peer.send(&Message::Chunk {
                        block,
                        kind: CK,
                        index,
                        data: chunk(bytes, index)
                    })
                    .await
                );
            } else {
                let done =
                    eventually(SECS(10), || !b.accepted_checkpoints.lock().unwrap().is_empty());
                assert!(done, "the checkpoint completes (asked {asked:?})");
            }
        }
        asked
    });
    let accepted = b.accepted_checkpoints.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1);
    assert!(accepted[0].0 == block && accepted[0].1 == bytes, "the exact bytes are accepted");
    let gone = eventually(SECS(5), || {
        !part_path(netdir, &block).exists() && !have_path(netdir, &block).exists()
    });
    assert!(gone, "the partial files are deleted after the checkpoint is accepted");
    drop(node);
    rt.shutdown_timeout(SECS(2));
    asked
}

/// Half a checkpoint downloaded, the node restarted: only the missing chunks are fetched.
#[test]
fn restarted_node_fetches_only_the_missing_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = checkpoint_bytes();
    half_download(dir.path(), &bytes);
    let asked = resume(dir.path(), &bytes);
    assert_eq!(asked, BTreeSet::from([2, 3]), "only the chunks missing after the restart");
}

/// A corrupted chunk in the partial file is not trusted: it is fetched again.
#[test]
fn corrupted_partial_chunk_is_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = checkpoint_bytes();
    let block = half_download(dir.path(), &bytes);
    let part = part_path(dir.path(), &block);
    let mut data = fs::read(&part).unwrap();
    data[10] ^= 0xff;
    fs::write(&part, data).unwrap();
    let asked = resume(dir.path(), &bytes);
    assert_eq!(asked, BTreeSet::from([0, 2, 3]), "the damaged chunk 0 and the missing ones");
}

/// A truncated partial file: the chunk cut off is fetched again.
#[test]
fn truncated_partial_file_means_refetch() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = checkpoint_bytes();
    let block = half_download(dir.path(), &bytes);
    let part = fs::OpenOptions::new().write(true).open(part_path(dir.path(), &block)).unwrap();
    part.set_len(CHUNK_SIZE as u64 + 100).unwrap();
    drop(part);
    let asked = resume(dir.path(), &bytes);
    assert_eq!(asked, BTreeSet::from([1, 2, 3]), "chunk 1 was cut off");
}

/// A presence sidecar of the wrong length marks nothing present: every chunk is fetched.
#[test]
fn damaged_sidecar_means_refetch() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = checkpoint_bytes();
    let block = half_download(dir.path(), &bytes);
    fs::write(have_path(dir.path(), &block), b"garbage").unwrap();
    let asked = resume(dir.path(), &bytes);
    assert_eq!(asked, BTreeSet::from([0, 1, 2, 3]), "a sidecar of the wrong length marks nothing");
}

/// At start the node deletes partial downloads of blocks it does not want (unknown, or whose
/// checkpoint it has) and those older than `PARTIAL_MAX_AGE`; it keeps a fresh one of a wanted
/// block and files that are not partial downloads.
#[test]
fn stale_partial_files_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join(DOWNLOADS_DIR);
    fs::create_dir_all(&d).unwrap();
    let b = FakeBackend::new();
    let fresh = add_block(&b, &[1u8; 100]);
    let old = add_block(&b, &[2u8; 100]);
    let have = add_block(&b, &[3u8; 100]);
    b.checkpoints.lock().unwrap().insert(have, std::sync::Arc::new(vec![3u8; 100]));
    let unknown = BlockHash([9u8; 32]);
    for h in [fresh, old, have, unknown] {
        fs::write(part_path(dir.path(), &h), [0u8; 100]).unwrap();
        fs::write(have_path(dir.path(), &h), [0u8; 1]).unwrap();
    }
    let long_ago = SystemTime::now() - PARTIAL_MAX_AGE - SECS(3600);
    for p in [part_path(dir.path(), &old), have_path(dir.path(), &old)] {
        fs::File::options().write(true).open(p).unwrap().set_modified(long_ago).unwrap();
    }
    fs::write(d.join("notes.txt"), b"keep me").unwrap();
    let rt = runtime();
    let _node = start(&rt, config_in(dir.path()), b);
    assert!(part_path(dir.path(), &fresh).exists() && have_path(dir.path(), &fresh).exists());
    for h in [old, have, unknown] {
        assert!(!part_path(dir.path(), &h).exists(), "stale {h} deleted");
        assert!(!have_path(dir.path(), &h).exists(), "stale {h} sidecar deleted");
    }
    assert!(d.join("notes.txt").exists());
}
