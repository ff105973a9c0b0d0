//! Model updates on the wire (protocol 3): a node that accepts a new block answering `NeedUpdate`
//! fetches that block's update (not its checkpoint) in chunks verified against `update_root`,
//! and hands exactly those bytes to `accept_update`; whole checkpoints still travel for
//! `wanted_checkpoints`, side by side with updates; peers of older protocols are refused.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use rnet_crypto::SigningKey;
use rnet_model::checkpoint::{CHUNK_SIZE, chunk_hashes, merkle_root};
use rnet_net::Accepted;
use rnet_net::message::{Inv, Message, ModelObject, PROTOCOL_VERSION};
use rnet_net::net::AddNodeMode;
use rnet_primitives::{BlockHash, BlockHeader, Hash256};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// `len` bytes that differ per `seed` and per chunk.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + i / CHUNK_SIZE) % 251) as u8 ^ seed).collect()
}

/// Chunk `index` of `data`.
fn chunk(data: &[u8], index: u32) -> Vec<u8> {
    let start = index as usize * CHUNK_SIZE;
    data[start..(start + CHUNK_SIZE).min(data.len())].to_vec()
}

/// Node A extends its chain with a block and announces it; node B, connected to A, fetches the
/// block and, since its backend answers `NeedUpdate`, the block's two-chunk update from A:
/// `accept_update` gets exactly the update's bytes, and the checkpoint (which A also has) is
/// never fetched.
#[test]
fn announced_block_is_fetched_with_its_update() {
    let rt = runtime();
    let a = FakeBackend::new();
    let b = FakeBackend::new();
    *b.block_result.lock().unwrap() = Accepted::NeedUpdate;
    let node_a = start(&rt, config(), a.clone());
    let node_b = start(&rt, config(), b.clone());
    let target = format!("127.0.0.1:{}", node_a.local[0].port());
    node_b.add_node(&target, AddNodeMode::OneTry).unwrap();
    let linked = eventually(SECS(10), || {
        node_a.peers().iter().any(|p| p.handshaked) && node_b.peers().iter().any(|p| p.handshaked)
    });
    assert!(linked, "the two nodes connect");

    let update = bytes(CHUNK_SIZE + 4321, 0x11);
    let checkpoint = bytes(3 * CHUNK_SIZE, 0x22);
    let key = SigningKey::from_bytes(&[7; 32]);
    let block = block_with_update(
        &key,
        a.genesis_hash(),
        1,
        &update,
        merkle_root(&chunk_hashes(&checkpoint)),
        checkpoint.len() as u64,
    );
    let hash = block.block_hash();
    a.updates.lock().unwrap().insert(hash, update.clone().into());
    a.checkpoints.lock().unwrap().insert(hash, checkpoint.into());
    a.extend_chain(block);

    let done = eventually(SECS(20), || !b.accepted_updates.lock().unwrap().is_empty());
    assert!(done, "node B receives the block's update");
    assert_eq!(b.block_calls.load(std::sync::atomic::Ordering::SeqCst), 1, "the block, once");
    let got = b.accepted_updates.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one update");
    assert!(got[0].0 == hash && got[0].1 == update, "exactly the block's update bytes");
    std::thread::sleep(Duration::from_millis(300));
    assert!(b.accepted_checkpoints.lock().unwrap().is_empty(), "no checkpoint travels");
    assert_eq!(b.accepted_updates.lock().unwrap().len(), 1, "the update is not fetched again");
    assert!(node_b.peers().iter().all(|p| p.handshaked), "nobody was disconnected");
}

/// A raw peer announces block X; the node fetches X and asks for X's update, whose chunks the
/// peer holds back. Meanwhile the node wants the checkpoint of an older block Y
/// (`wanted_checkpoints`): it asks for it by kind, and Y's checkpoint is accepted while X's update
/// is still in flight; then the update completes too. Each object is asked for under its own
/// kind, and each arrives whole at the right backend method.
#[test]
fn wanted_checkpoint_arrives_while_an_update_is_in_flight() {
    let rt = runtime();
    let b = FakeBackend::new();
    *b.block_result.lock().unwrap() = Accepted::NeedUpdate;
    let mut cfg = config();
    cfg.stall_timeout = SECS(60);
    let node = start(&rt, cfg, b.clone());

    // Y: an older block whose header the node has, and whose checkpoint it wants.
    let checkpoint = bytes(2 * CHUNK_SIZE + 99, 0x33);
    let y_header = BlockHeader {
        prev_block_hash: b.genesis_hash(),
        height: 1,
        time: 10,
        checkpoint_root: Hash256(merkle_root(&chunk_hashes(&checkpoint))),
        checkpoint_size: checkpoint.len() as u64,
        ..BlockHeader::default()
    };
    let y = y_header.hash();
    b.headers.lock().unwrap().insert(y, y_header);
    // X: a new block on genesis carrying a two-chunk update.
    let update = bytes(CHUNK_SIZE + 1, 0x44);
    let key = SigningKey::from_bytes(&[9; 32]);
    let x_block = block_with_update(&key, b.genesis_hash(), 1, &update, [5; 32], 1000);
    let x = x_block.block_hash();

    rt.block_on(async {
        let mut peer = RawPeer::connect(&node).await;
        // Announce X; answer the node's getheaders and getdata.
        assert!(peer.send(&Message::Inv(vec![Inv::block(x)])).await);
        let got = peer.wait_for(SECS(10), |m| matches!(m, Message::GetHeaders { .. })).await;
        assert!(got.is_some(), "the announcement makes the node ask for headers");
        assert!(peer.send(&Message::Headers(vec![x_block.header.clone()])).await);
        let got = peer.wait_for(SECS(10), |m| *m == Message::GetData(vec![Inv::block(x)])).await;
        assert!(got.is_some(), "the node asks for block X");
        assert!(peer.send(&Message::Block(Box::new(x_block.clone()))).await);

        // The update of X: hashes given, chunks held back.
        let want = Message::GetChunkHashes { block: x, kind: ModelObject::Update, start: 0 };
        let got = peer.wait_for(SECS(10), |m| *m == want).await;
        assert!(got.is_some(), "NeedUpdate makes the node ask for X's update");
        let hashes = chunk_hashes(&update);
        let reply = hash_list(x, ModelObject::Update, hashes);
        assert!(peer.send(&reply).await);

        // Now the node wants Y's checkpoint; serve it while holding X's update chunks.
        b.wanted.lock().unwrap().push(y);
        let mut held = BTreeSet::new();
        let mut served = BTreeSet::new();
        let deadline = Instant::now() + SECS(20);
        while !b.accepted_checkpoints.lock().unwrap().iter().any(|(h, _)| *h == y) {
            assert!(Instant::now() < deadline, "Y's checkpoint arrives (served {served:?})");
            let Some(m) = peer.recv(Duration::from_millis(200)).await else { continue };
            match m {
                Message::Ping(n) => assert!(peer.send(&Message::Pong(n)).await),
                Message::GetChunk { block, kind: ModelObject::Update, index } if block == x => {
                    held.insert(index);
                }
                Message::GetChunkHashes { block, kind, start: 0 } if block == y => {
                    assert_eq!(kind, ModelObject::Checkpoint, "Y is asked for as a checkpoint");
                    let hashes = chunk_hashes(&checkpoint);
                    assert!(peer.send(&hash_list(block, kind, hashes)).await);
                }
                Message::GetChunk { block, kind, index } if block == y => {
                    assert_eq!(kind, ModelObject::Checkpoint);
                    let data = chunk(&checkpoint, index);
                    assert!(peer.send(&Message::Chunk { block, kind, index, data }).await);
                    served.insert(index);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(b.accepted_updates.lock().unwrap().is_empty(), "X's update is still in flight");
        assert_eq!(held, BTreeSet::from([0, 1]), "both update chunks were asked for");
        assert_eq!(served, BTreeSet::from([0, 1, 2]));

        // Release X's update.
        for &index in &held {
            let m = Message::Chunk {
                block: x,
                kind: ModelObject::Update,
                index,
                data: chunk(&update, index),
            };
            assert!(peer.send(&m).await);
        }
        let done = eventually(SECS(10), || !b.accepted_updates.lock().unwrap().is_empty());
        assert!(done, "X's update completes");
    });
    let updates = b.accepted_updates.lock().unwrap().clone();
    assert!(updates.len() == 1 && updates[0].0 == x && updates[0].1 == update);
    let checkpoints = b.accepted_checkpoints.lock().unwrap().clone();
    assert!(checkpoints.len() == 1 && checkpoints[0].0 == y && checkpoints[0].1 == checkpoint);
}

/// An update chunk that does not match the chunk hashes bans the sender, like a checkpoint's.
#[test]
fn forged_update_chunk_bans_the_sender() {
    let rt = runtime();
    let b = FakeBackend::new();
    *b.block_result.lock().unwrap() = Accepted::NeedUpdate;
    let node = start(&rt, config(), b.clone());
    let update = bytes(1000, 0x55);
    let key = SigningKey::from_bytes(&[3; 32]);
    let x_block = block_with_update(&key, b.genesis_hash(), 1, &update, [5; 32], 1000);
    let x = x_block.block_hash();
    let peer = rt.block_on(async {
        let mut peer = RawPeer::connect(&node).await;
        assert!(peer.send(&Message::Block(Box::new(x_block))).await);
        let want = Message::GetChunkHashes { block: x, kind: ModelObject::Update, start: 0 };
        assert!(peer.wait_for(SECS(10), |m| *m == want).await.is_some());
        let hashes = chunk_hashes(&update);
        assert!(peer.send(&hash_list(x, ModelObject::Update, hashes)).await);
        let want = |m: &Message| matches!(m, Message::GetChunk { block, .. } if *block == x);
        assert!(peer.wait_for(SECS(10), want).await.is_some());
        let mut data = update.clone();
        data[0] ^= 1;
        let m = Message::Chunk { block: x, kind: ModelObject::Update, index: 0, data };
        assert!(peer.send(&m).await);
        peer
    });
    assert!(eventually(SECS(5), || banned(&node, &peer.key)), "the forger is banned");
    assert!(b.accepted_updates.lock().unwrap().is_empty());
}

/// A node serves a block's update under the update kind and its checkpoint under the
/// checkpoint kind; an object it lacks gets `modelnotfound` naming that kind.
#[test]
fn updates_and_checkpoints_are_served_by_kind() {
    let rt = runtime();
    let b = FakeBackend::new();
    let block = BlockHash([4; 32]);
    let update = bytes(CHUNK_SIZE + 10, 0x66);
    let checkpoint = bytes(2 * CHUNK_SIZE + 10, 0x77);
    b.updates.lock().unwrap().insert(block, update.clone().into());
    b.checkpoints.lock().unwrap().insert(block, checkpoint.clone().into());
    let other = BlockHash([8; 32]);
    b.checkpoints.lock().unwrap().insert(other, checkpoint.clone().into());
    let node = start(&rt, config(), b);
    rt.block_on(async {
        let mut p = RawPeer::connect(&node).await;
        for (kind, data) in [(ModelObject::Update, &update), (ModelObject::Checkpoint, &checkpoint)]
        {
            assert!(p.send(&Message::GetChunkHashes { block, kind, start: 0 }).await);
            let got = p.wait_for(SECS(10), |m| matches!(m, Message::ChunkHashes { .. })).await;
            let want = hash_list(block, kind, chunk_hashes(data));
            assert_eq!(got, Some(want), "{kind} hashes");
            assert!(p.send(&Message::GetChunk { block, kind, index: 1 }).await);
            let got = p.wait_for(SECS(10), |m| matches!(m, Message::Chunk { .. })).await;
            let want = Message::Chunk { block, kind, index: 1, data: chunk(data, 1) };
            assert_eq!(got, Some(want), "{kind} chunk 1");
        }
        // `other` has a checkpoint but no update.
        let kind = ModelObject::Update;
        assert!(p.send(&Message::GetChunkHashes { block: other, kind, start: 0 }).await);
        let got = p
            .wait_for(SECS(10), |m| {
                matches!(m, Message::ModelNotFound { .. } | Message::ChunkHashes { .. })
            })
            .await;
        assert_eq!(got, Some(Message::ModelNotFound { block: other, kind }));
    });
}

/// A peer announcing an older protocol version (2: chunk messages without the object kind) is
/// disconnected before `verack`, and not banned (it is not hostile).
#[test]
fn older_protocol_versions_are_refused_without_a_ban() {
    let rt = runtime();
    let node = start(&rt, config(), FakeBackend::new());
    rt.block_on(async {
        let Message::Version(mut v) = version(1) else { unreachable!() };
        v.version = PROTOCOL_VERSION - 1;
        let p =
            rnet_net::testing::RawPeer::connect_as(node.local[0], MAGIC, Message::Version(v)).await;
        assert!(p.is_none(), "no verack for protocol {}", PROTOCOL_VERSION - 1);
        let ok = rnet_net::testing::RawPeer::connect(node.local[0], MAGIC).await;
        assert!(ok.is_some(), "a current peer still connects");
    });
    assert!(node.list_banned().is_empty(), "the old peer is not banned");
}
