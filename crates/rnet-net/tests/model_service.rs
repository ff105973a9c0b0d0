//! Service bits (issue 15): the checkpoint downloader asks for an old block's model only peers
//! whose advertised model service covers it (archive peers first), and falls back to the others
//! only when nobody advertises it.

mod common;

use std::time::Duration;

use common::*;
use rnet_model::checkpoint::{CHUNK_SIZE, chunk_hashes, merkle_root};
use rnet_net::message::{Message, ModelObject, NODE_MODEL_ARCHIVE, NODE_NETWORK};
use rnet_net::net::AddNodeMode;
use rnet_primitives::{BlockHash, BlockHeader, Hash256};

const SECS: fn(u64) -> Duration = Duration::from_secs;
/// The object kind these tests move: whole checkpoints.
const CK: ModelObject = ModelObject::Checkpoint;

/// A block at `height` whose checkpoint is `bytes`, stored in the backend's headers.
fn old_block(b: &FakeBackend, height: u32, bytes: &[u8]) -> BlockHash {
    let h = BlockHeader {
        prev_block_hash: b.genesis_hash(),
        height,
        time: 10,
        checkpoint_root: Hash256(merkle_root(&chunk_hashes(bytes))),
        checkpoint_size: bytes.len() as u64,
        ..BlockHeader::default()
    };
    let hash = h.hash();
    b.headers.lock().unwrap().insert(hash, h);
    hash
}

fn is_checkpoint_request(m: &Message) -> bool {
    matches!(m, Message::GetChunkHashes { .. } | Message::GetChunk { .. })
}

/// A pruning peer (depth 10 at height 100) connects first, an archive peer second; the node
/// wants the model of block 5: the chunk hashes and every chunk are asked of the archive peer,
/// none of the pruning one, and the checkpoint completes.
#[test]
fn old_checkpoint_is_fetched_from_the_archive_peer_not_the_pruning_one() {
    let rt = runtime();
    let b = FakeBackend::new();
    let bytes: Vec<u8> = (0..2 * CHUNK_SIZE + 7).map(|i| (i % 253) as u8).collect();
    let block = old_block(&b, 5, &bytes);
    let node = start(&rt, config(), b.clone());
    rt.block_on(async {
        let mut pruned = RawPeer::connect_as(&node, version_with(1, 100, NODE_NETWORK, 10)).await;
        let mut archive =
            RawPeer::connect_as(&node, version_with(2, 100, NODE_NETWORK | NODE_MODEL_ARCHIVE, 0))
                .await;
        b.wanted.lock().unwrap().push(block);
        let got = archive
            .wait_for(SECS(15), |m| *m == Message::GetChunkHashes { block, kind: CK, start: 0 })
            .await;
        assert!(got.is_some(), "the archive peer is asked for the chunk hashes");
        let hashes = chunk_hashes(&bytes);
        assert!(archive.send(&hash_list(block, CK, hashes)).await);
        let mut served = Vec::new();
        while served.len() < 3 {
            let Some(Message::GetChunk { index, .. }) = archive
                .wait_for(
                    SECS(10),
                    |m| matches!(m, Message::GetChunk { block: h, .. } if *h == block),
                )
                .await
            else {
                panic!("the archive peer is asked for every chunk (got {served:?})");
            };
            let start = index as usize * CHUNK_SIZE;
            let data = bytes[start..(start + CHUNK_SIZE).min(bytes.len())].to_vec();
            assert!(archive.send(&Message::Chunk { block, kind: CK, index, data }).await);
            served.push(index);
        }
        let done = eventually(SECS(10), || {
            b.accepted_checkpoints.lock().unwrap().iter().any(|(h, c)| *h == block && *c == bytes)
        });
        assert!(done, "the checkpoint assembled from the archive peer's chunks");
        let asked = pruned.wait_for(Duration::from_millis(300), is_checkpoint_request).await;
        assert!(asked.is_none(), "the pruning peer was asked for a model it dropped: {asked:?}");
    });
}

/// A pruning peer whose depth covers the block (depth 200 at height 100) is asked like any
/// other; when the only peer's depth does not cover it, it is still asked (a hint, not a rule).
#[test]
fn pruning_peers_are_asked_when_they_cover_it_or_nobody_advertises_it() {
    let rt = runtime();
    let b = FakeBackend::new();
    let bytes = vec![7u8; 100];
    let block = old_block(&b, 5, &bytes);
    let node = start(&rt, config(), b.clone());
    rt.block_on(async {
        let mut deep = RawPeer::connect_as(&node, version_with(1, 100, NODE_NETWORK, 200)).await;
        b.wanted.lock().unwrap().push(block);
        let got = deep
            .wait_for(SECS(15), |m| *m == Message::GetChunkHashes { block, kind: CK, start: 0 })
            .await;
        assert!(got.is_some(), "a peer whose depth covers the block is asked");
    });
    let b = FakeBackend::new();
    let block = old_block(&b, 5, &bytes);
    let node = start(&rt, config(), b.clone());
    rt.block_on(async {
        let mut only = RawPeer::connect_as(&node, version_with(1, 100, NODE_NETWORK, 10)).await;
        b.wanted.lock().unwrap().push(block);
        let got = only
            .wait_for(SECS(15), |m| *m == Message::GetChunkHashes { block, kind: CK, start: 0 })
            .await;
        assert!(got.is_some(), "with nobody advertising the model, the pruning peer is asked");
    });
}

/// Each node advertises its configured model depth, and the peer data behind `getpeerinfo`
/// shows the other's: a pruning node (depth 144) dials an archive node; a raw peer's announced
/// depth is shown as sent.
#[test]
fn version_advertises_the_configured_model_depth() {
    let rt = runtime();
    let mut cfg = config();
    cfg.model_depth = 144;
    let pruning = start(&rt, cfg, FakeBackend::new());
    let archive = start(&rt, config(), FakeBackend::new());
    let info = pruning.info().unwrap();
    assert_eq!((info.services, info.model_depth), (NODE_NETWORK, 144));
    let info = archive.info().unwrap();
    assert_eq!((info.services, info.model_depth), (NODE_NETWORK | NODE_MODEL_ARCHIVE, 0));
    let target = format!("127.0.0.1:{}", archive.local[0].port());
    pruning.add_node(&target, AddNodeMode::OneTry).unwrap();
    let linked = eventually(SECS(10), || {
        pruning.peers().iter().any(|p| p.handshaked) && archive.peers().iter().any(|p| p.handshaked)
    });
    assert!(linked, "the two nodes connect");
    let seen_by_archive = archive.peers();
    assert_eq!((seen_by_archive[0].services, seen_by_archive[0].model_depth), (NODE_NETWORK, 144));
    let seen_by_pruning = pruning.peers();
    assert_eq!(
        (seen_by_pruning[0].services, seen_by_pruning[0].model_depth),
        (NODE_NETWORK | NODE_MODEL_ARCHIVE, 0)
    );
    let _p = rt.block_on(RawPeer::connect_as(&pruning, version_with(9, 50, NODE_NETWORK, 12)));
    let raw = pruning.peers().into_iter().find(|p| p.model_depth == 12);
    assert!(raw.is_some_and(|p| p.services == NODE_NETWORK && p.best_height == 50));
}

/// A `version` with an inconsistent model service (the archive bit with a depth) does not
/// decode: the sender is banned and never completes the handshake.
#[test]
fn inconsistent_model_service_bans_the_sender() {
    let rt = runtime();
    let node = start(&rt, config(), FakeBackend::new());
    rt.block_on(async {
        let v = version_with(1, 0, NODE_NETWORK | NODE_MODEL_ARCHIVE, 10);
        let p = rnet_net::testing::RawPeer::connect_as(node.local[0], MAGIC, v).await;
        assert!(p.is_none(), "no verack for an inconsistent version");
    });
    assert!(node.peers().iter().all(|p| !p.handshaked));
    assert_eq!(node.list_banned().len(), 1, "the sender's key is banned");
}
