//! Paged chunk-hash lists (no size ceiling on model downloads): `getchunkhashes` names the first
//! chunk wanted and `chunkhashes` answers one page with the object's chunk count. The receiver
//! asks the pages in order from one peer, verifies the merkle root of the whole list before any
//! chunk is requested, and bans a peer whose pages carry a wrong count, overrun the object or do
//! not give the root. Objects over the former 1 GiB skip and over `MAX_CHUNK_HASHES` chunks are
//! fetched; only objects over `MAX_CHECKPOINT_SIZE` (64 GiB) are refused.

mod common;

use std::time::Duration;

use common::*;
use rnet_model::checkpoint::{CHUNK_SIZE, chunk_hashes, merkle_root};
use rnet_net::message::{MAX_CHUNK_HASHES, Message, ModelObject, cmd};
use rnet_net::net::{AddNodeMode, MAX_CHECKPOINT_SIZE};
use rnet_primitives::{BlockHash, BlockHeader, Hash256};

const SECS: fn(u64) -> Duration = Duration::from_secs;
/// The object kind these tests move: whole checkpoints.
const CK: ModelObject = ModelObject::Checkpoint;
/// The page size of the small-object tests: a 10-chunk object comes in 4 pages (3, 3, 3, 1).
const PAGE: usize = 3;

/// A checkpoint of ten chunks (the last one short), each chunk different.
fn ten_chunks() -> Vec<u8> {
    (0..9 * CHUNK_SIZE + 4321).map(|i| ((i * 13 + i / CHUNK_SIZE) % 251) as u8).collect()
}

/// Stores the header of a block at height 5 whose checkpoint has `root` and `size`.
fn add_header(b: &FakeBackend, root: [u8; 32], size: u64, salt: u64) -> BlockHash {
    let h = BlockHeader {
        prev_block_hash: b.genesis_hash(),
        height: 5,
        time: 10 + salt,
        checkpoint_root: Hash256(root),
        checkpoint_size: size,
        ..BlockHeader::default()
    };
    let hash = h.hash();
    b.headers.lock().unwrap().insert(hash, h);
    hash
}

/// Stores the header of a block whose checkpoint is `bytes`.
fn add_block(b: &FakeBackend, bytes: &[u8]) -> BlockHash {
    add_header(b, merkle_root(&chunk_hashes(bytes)), bytes.len() as u64, 0)
}

/// The page of `hashes` from `start`, at most `len` hashes, with the list's length as total.
fn page(block: BlockHash, hashes: &[[u8; 32]], start: usize, len: usize) -> Message {
    let end = (start + len).min(hashes.len());
    Message::ChunkHashes {
        block,
        kind: CK,
        start: start as u32,
        total: hashes.len() as u32,
        hashes: hashes[start..end].to_vec(),
    }
}

fn chunk(bytes: &[u8], index: u32) -> Vec<u8> {
    let start = index as usize * CHUNK_SIZE;
    bytes[start..(start + CHUNK_SIZE).min(bytes.len())].to_vec()
}

fn is_model_request(m: &Message) -> bool {
    matches!(m, Message::GetChunkHashes { .. } | Message::GetChunk { .. })
}

/// Serves every `getchunk` of `bytes` until the backend accepted them (panics after 20 s).
async fn serve_chunks(peer: &mut RawPeer, b: &FakeBackend, block: BlockHash, bytes: &[u8]) {
    let deadline = std::time::Instant::now() + SECS(20);
    while !b.accepted_checkpoints.lock().unwrap().iter().any(|(h, _)| *h == block) {
        assert!(std::time::Instant::now() < deadline, "the checkpoint never completed");
        let m = peer.wait_for(Duration::from_millis(300), is_model_request).await;
        if let Some(Message::GetChunk { index, .. }) = m {
            let data = chunk(bytes, index);
            assert!(peer.send(&Message::Chunk { block, kind: CK, index, data }).await);
        }
    }
}

/// Two in-process nodes: the server answers pages of 3 hashes, so the client fetches the list of
/// a 10-chunk checkpoint in 4 pages, verifies it and downloads every chunk; the backend gets the
/// exact bytes.
#[test]
fn ten_chunk_checkpoint_downloads_between_nodes_in_pages_of_three() {
    let rt = runtime();
    let bytes = ten_chunks();
    let server_b = FakeBackend::new();
    let client_b = FakeBackend::new();
    let block = add_block(&client_b, &bytes);
    server_b.checkpoints.lock().unwrap().insert(block, bytes.clone().into());
    let mut cfg = config();
    cfg.chunk_hashes_page = PAGE;
    let server = start(&rt, cfg, server_b);
    let client = start(&rt, config(), client_b.clone());
    let target = format!("127.0.0.1:{}", server.local[0].port());
    client.add_node(&target, AddNodeMode::OneTry).unwrap();
    client_b.wanted.lock().unwrap().push(block);
    let done = eventually(SECS(30), || {
        client_b
            .accepted_checkpoints
            .lock()
            .unwrap()
            .iter()
            .any(|(h, c)| *h == block && *c == bytes)
    });
    assert!(done, "the client assembled the exact checkpoint from the paged list");
    assert!(client.list_banned().is_empty() && server.list_banned().is_empty());
}

/// A raw peer serves the list in pages of 3: the node asks for pages 0, 3, 6 and 9 in that
/// order, asks no chunk before the last page (the root is checked on the whole list), then
/// fetches every chunk; the backend gets the exact bytes.
#[test]
fn pages_are_asked_in_order_and_chunks_only_after_the_root() {
    let rt = runtime();
    let b = FakeBackend::new();
    let bytes = ten_chunks();
    let hashes = chunk_hashes(&bytes);
    assert_eq!(hashes.len(), 10);
    let block = add_block(&b, &bytes);
    let node = start(&rt, config(), b.clone());
    rt.block_on(async {
        let mut peer = RawPeer::connect(&node).await;
        b.wanted.lock().unwrap().push(block);
        let mut starts = Vec::new();
        for want in [0usize, 3, 6, 9] {
            let m = peer.wait_for(SECS(15), is_model_request).await;
            let Some(Message::GetChunkHashes { block: h, kind: CK, start }) = m else {
                panic!("page {want} asked for before any chunk, got {m:?}");
            };
            assert_eq!((h, start as usize), (block, want));
            starts.push(start);
            assert!(peer.send(&page(block, &hashes, want, PAGE)).await);
        }
        assert_eq!(starts, [0, 3, 6, 9]);
        serve_chunks(&mut peer, &b, block, &bytes).await;
    });
    let got = b.accepted_checkpoints.lock().unwrap();
    assert!(got.iter().any(|(h, c)| *h == block && *c == bytes), "exact bytes accepted");
    assert!(node.list_banned().is_empty());
}

/// A checkpoint of 10 000 chunks (~9.8 GiB: over the former 1 GiB skip and over
/// `MAX_CHUNK_HASHES` = 4096 chunks) has its list fetched in three full-size pages, verified,
/// and its chunks asked for; a checkpoint over `MAX_CHECKPOINT_SIZE` is not fetched at all.
/// (No chunk bytes move: the list is made up, the root computed from it.)
#[test]
fn list_of_more_than_max_chunk_hashes_is_paged() {
    let rt = runtime();
    let b = FakeBackend::new();
    let n = 10_000usize;
    let hashes: Vec<[u8; 32]> = (0..n)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            h
        })
        .collect();
    let size = (n as u64 - 1) * CHUNK_SIZE as u64 + 77;
    assert!(size > 1 << 30 && n > MAX_CHUNK_HASHES);
    let too_big = add_header(&b, [7; 32], MAX_CHECKPOINT_SIZE + 1, 1);
    let block = add_header(&b, merkle_root(&hashes), size, 2);
    let node = start(&rt, config(), b.clone());
    rt.block_on(async {
        let mut peer = RawPeer::connect(&node).await;
        b.wanted.lock().unwrap().extend([too_big, block]);
        let mut starts = Vec::new();
        loop {
            let m = peer.wait_for(SECS(15), is_model_request).await;
            match m {
                Some(Message::GetChunkHashes { block: h, start, .. }) => {
                    assert_eq!(h, block, "only the checkpoint under the bound is fetched");
                    starts.push(start);
                    let p = page(block, &hashes, start as usize, MAX_CHUNK_HASHES);
                    assert!(peer.send(&p).await);
                }
                Some(Message::GetChunk { block: h, .. }) => {
                    assert_eq!(h, block, "only the checkpoint under the bound is fetched");
                    break;
                }
                other => panic!("expected the paged list, then chunks; got {other:?}"),
            }
        }
        assert_eq!(starts, [0, 4096, 8192], "three pages, in order");
        // Nothing ever asked of the oversize one.
        let m = peer
            .wait_for(SECS(1), |m| {
                matches!(m, Message::GetChunkHashes { block: h, .. } | Message::GetChunk { block: h, .. } if *h == too_big)
            })
            .await;
        assert!(m.is_none(), "a checkpoint over MAX_CHECKPOINT_SIZE was asked for: {m:?}");
    });
    assert!(node.list_banned().is_empty());
}

/// How a hostile peer spoils the paged list.
#[derive(Clone, Copy, Debug)]
enum Spoil {
    /// The second page names 11 chunks for a 10-chunk object.
    WrongTotal,
    /// The second page runs past the object (start 3, 8 hashes of a total of 10): it does not
    /// decode.
    Overrun,
    /// Every page is consistent but one hash of the last page is wrong: the whole list misses
    /// the root.
    WrongRoot,
}

/// A hostile peer (connected first, so asked first) spoils the list as `spoil` says: it is
/// banned, no chunk is asked of it, and the list is asked again from the start of an honest peer,
/// whose pages and chunks complete the download.
fn spoiled_pages_ban_and_the_download_moves_on(spoil: Spoil) {
    let rt = runtime();
    let b = FakeBackend::new();
    let bytes = ten_chunks();
    let hashes = chunk_hashes(&bytes);
    let block = add_block(&b, &bytes);
    let node = start(&rt, config(), b.clone());
    let hostile_key = rt.block_on(async {
        let mut hostile = RawPeer::connect(&node).await;
        let mut honest = RawPeer::connect(&node).await;
        b.wanted.lock().unwrap().push(block);
        let first = Message::GetChunkHashes { block, kind: CK, start: 0 };
        assert!(hostile.wait_for(SECS(15), |m| *m == first).await.is_some());
        assert!(hostile.send(&page(block, &hashes, 0, PAGE)).await);
        let second = Message::GetChunkHashes { block, kind: CK, start: 3 };
        assert!(hostile.wait_for(SECS(5), |m| *m == second).await.is_some());
        match spoil {
            Spoil::WrongTotal => {
                let mut longer = hashes.clone();
                longer.push([9; 32]);
                assert!(hostile.send(&page(block, &longer, 3, PAGE)).await);
            }
            Spoil::Overrun => {
                // Encoded by hand: `Message::decode` refuses it, so the reader scores it.
                let m = Message::ChunkHashes {
                    block,
                    kind: CK,
                    start: 3,
                    total: 10,
                    hashes: vec![[1; 32]; 8],
                };
                assert!(hostile.send_raw(cmd::CHUNKHASHES, &m.payload()).await);
            }
            Spoil::WrongRoot => {
                let mut bad = hashes.clone();
                bad[9][0] ^= 1;
                for start in [3, 6, 9] {
                    if start > 3 {
                        let want = Message::GetChunkHashes { block, kind: CK, start };
                        assert!(hostile.wait_for(SECS(5), |m| *m == want).await.is_some());
                    }
                    assert!(hostile.send(&page(block, &bad, start as usize, PAGE)).await);
                }
            }
        }
        // Banned; no chunk was asked of it meanwhile.
        let asked = hostile.wait_for(SECS(5), |m| matches!(m, Message::GetChunk { .. })).await;
        assert!(asked.is_none(), "{spoil:?}: a chunk asked before the list verified: {asked:?}");
        let is_banned =
            tokio::task::block_in_place(|| eventually(SECS(5), || banned(&node, &hostile.key)));
        assert!(is_banned, "{spoil:?}: not banned");
        // The honest peer is asked for the list from the start and completes the download.
        let mut next = 0usize;
        while next < hashes.len() {
            let want = Message::GetChunkHashes { block, kind: CK, start: next as u32 };
            let got = honest.wait_for(SECS(15), |m| *m == want).await;
            assert!(got.is_some(), "{spoil:?}: the honest peer is asked for page {next}");
            assert!(honest.send(&page(block, &hashes, next, PAGE)).await);
            next += PAGE;
        }
        serve_chunks(&mut honest, &b, block, &bytes).await;
        hostile.key.clone()
    });
    let got = b.accepted_checkpoints.lock().unwrap();
    assert!(got.iter().any(|(h, c)| *h == block && *c == bytes), "{spoil:?}: exact bytes");
    assert!(banned(&node, &hostile_key));
}

#[test]
fn page_with_a_wrong_total_bans() {
    spoiled_pages_ban_and_the_download_moves_on(Spoil::WrongTotal);
}

#[test]
fn page_that_overruns_the_object_bans() {
    spoiled_pages_ban_and_the_download_moves_on(Spoil::Overrun);
}

#[test]
fn pages_that_miss_the_root_ban() {
    spoiled_pages_ban_and_the_download_moves_on(Spoil::WrongRoot);
}

/// A page at another start than the one asked for (what a late answer to an earlier request
/// looks like) is ignored, not scored: the request stays outstanding, the page asked for is still
/// taken, and a peer that never sends it is left at the stall timeout for another peer, which is
/// asked from the start.
#[test]
fn page_at_another_start_is_ignored_until_the_stall() {
    let rt = runtime();
    let b = FakeBackend::new();
    let bytes = ten_chunks();
    let hashes = chunk_hashes(&bytes);
    let block = add_block(&b, &bytes);
    let mut cfg = config();
    cfg.stall_timeout = SECS(2);
    let node = start(&rt, cfg, b.clone());
    rt.block_on(async {
        let mut slow = RawPeer::connect(&node).await;
        let mut other = RawPeer::connect(&node).await;
        b.wanted.lock().unwrap().push(block);
        let ask = |start: u32| Message::GetChunkHashes { block, kind: CK, start };
        assert!(slow.wait_for(SECS(15), |m| *m == ask(0)).await.is_some());
        assert!(slow.send(&page(block, &hashes, 0, PAGE)).await);
        assert!(slow.wait_for(SECS(5), |m| *m == ask(3)).await.is_some());
        // A page at 6 and one at 0 while 3 is asked: ignored; then page 3 is taken.
        assert!(slow.send(&page(block, &hashes, 6, PAGE)).await);
        assert!(slow.send(&page(block, &hashes, 0, PAGE)).await);
        assert!(slow.send(&page(block, &hashes, 3, PAGE)).await);
        assert!(slow.wait_for(SECS(5), |m| *m == ask(6)).await.is_some(), "page 3 taken");
        // Now a wrong page only: after the stall the other peer is asked from the start.
        assert!(slow.send(&page(block, &hashes, 9, PAGE)).await);
        let moved = other.wait_for(SECS(10), |m| *m == ask(0)).await;
        assert!(moved.is_some(), "the list moves to the other peer after the stall");
        let mut next = 0usize;
        while next < hashes.len() {
            if next > 0 {
                let got = other.wait_for(SECS(5), |m| *m == ask(next as u32)).await;
                assert!(got.is_some(), "page {next}");
            }
            assert!(other.send(&page(block, &hashes, next, PAGE)).await);
            next += PAGE;
        }
        serve_chunks(&mut other, &b, block, &bytes).await;
    });
    let got = b.accepted_checkpoints.lock().unwrap();
    assert!(got.iter().any(|(h, c)| *h == block && *c == bytes), "exact bytes");
    assert!(node.list_banned().is_empty(), "nobody is banned for a page at another start");
}

/// The server answers each page from its cached list: pages of 3 from any start, the last one
/// short, with the object's chunk count; a page past the end is not answered (scored) and the
/// peer is still served afterwards.
#[test]
fn server_answers_pages_from_its_cached_list() {
    let rt = runtime();
    let b = FakeBackend::new();
    let block = BlockHash([5; 32]);
    let bytes = ten_chunks();
    let hashes = chunk_hashes(&bytes);
    b.checkpoints.lock().unwrap().insert(block, bytes.into());
    let mut cfg = config();
    cfg.chunk_hashes_page = PAGE;
    let node = start(&rt, cfg, b.clone());
    rt.block_on(async {
        let mut p = RawPeer::connect(&node).await;
        for start in [0u32, 3, 6, 9, 8, 1] {
            assert!(p.send(&Message::GetChunkHashes { block, kind: CK, start }).await);
            let got = p.wait_for(SECS(10), |m| matches!(m, Message::ChunkHashes { .. })).await;
            assert_eq!(got, Some(page(block, &hashes, start as usize, PAGE)), "page at {start}");
        }
        assert_eq!(b.checkpoint_calls.load(std::sync::atomic::Ordering::SeqCst), 1, "one load");
        assert!(p.send(&Message::GetChunkHashes { block, kind: CK, start: 10 }).await);
        let got = p.wait_for(SECS(1), |m| matches!(m, Message::ChunkHashes { .. })).await;
        assert!(got.is_none(), "a page past the end is not answered: {got:?}");
        assert!(p.send(&Message::GetChunkHashes { block, kind: CK, start: 9 }).await);
        let got = p.wait_for(SECS(10), |m| matches!(m, Message::ChunkHashes { .. })).await;
        assert_eq!(got, Some(page(block, &hashes, 9, PAGE)), "still served");
    });
}

/// A peer that leaves its first chunk requests unanswered (slow or overloaded, not malicious)
/// is asked again once they stall: the stalled requests give its download slots back. (The
/// slots used to stay taken, so a download whose only source had stalled once never moved
/// again.)
#[test]
fn stalled_chunk_requests_free_the_peers_slots() {
    let rt = runtime();
    let b = FakeBackend::new();
    let bytes = ten_chunks();
    let hashes = chunk_hashes(&bytes);
    let block = add_block(&b, &bytes);
    let mut cfg = config();
    cfg.stall_timeout = SECS(2);
    cfg.chunk_hashes_page = MAX_CHUNK_HASHES;
    let node = start(&rt, cfg, b.clone());
    rt.block_on(async {
        let mut only = RawPeer::connect(&node).await;
        b.wanted.lock().unwrap().push(block);
        let ask = Message::GetChunkHashes { block, kind: CK, start: 0 };
        assert!(only.wait_for(SECS(15), |m| *m == ask).await.is_some());
        assert!(only.send(&page(block, &hashes, 0, hashes.len())).await);
        // Every chunk request of the first round goes unanswered.
        let mut ignored = 0;
        while only.wait_for(SECS(1), is_model_request).await.is_some() {
            ignored += 1;
        }
        assert!(ignored > 0, "chunks were requested");
        // After the stall the same peer is asked again, and serving completes the download.
        serve_chunks(&mut only, &b, block, &bytes).await;
    });
    let got = b.accepted_checkpoints.lock().unwrap();
    assert!(got.iter().any(|(h, c)| *h == block && *c == bytes), "exact bytes");
}
