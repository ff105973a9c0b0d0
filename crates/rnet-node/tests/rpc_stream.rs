//! `getblock` streams its reply (issue 14, item 20): the streamed JSON is byte-identical to the
//! Value-based rendering for a block with many transactions, `getblock` works through the real
//! RPC server, and the memory one verbosity-2 reply of a ~4 MB block needs is measured before
//! (Value) and after (streamed), per thread with a counting allocator. Prints the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;

use rnet_consensus::ChainParams;
use rnet_crypto::SigningKey;
use rnet_miner::TrainingData;
use rnet_node::Node;
use rnet_node::rpc::{block_head_json, block_json, register_all, write_block_json};
use rnet_primitives::{
    Amount, Block, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, Witness,
};
use rnet_rpc::{Auth, JsonStream, MethodInfo, Registry, RpcClient, RpcConfig, RpcError, RpcServer};
use serde_json::json;

/// Counts the bytes each thread has allocated and not freed, and the thread's peak.
struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: the counters may be gone while the thread exits.
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator; only adds bookkeeping in thread-local cells.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        // SAFETY: as for `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most heap this thread held at once while `f` ran, above what it held before.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - base).max(0) as usize)
}

/// A writer that keeps nothing: stands in for the connection, which takes 64 KiB chunks.
struct Discard(u64);
impl Write for Discard {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn open_node(dir: &std::path::Path) -> Arc<Node> {
    let node = Node::open(
        ChainParams::regtest(),
        dir,
        SigningKey::from_bytes(&[7; 32]),
        TrainingData::Bundled,
        Default::default(),
    )
    .expect("regtest node opens");
    Arc::new(node)
}

/// The genesis block with `n` extra (made-up, unvalidated) transactions of two inputs with
/// witnesses and two witness outputs each: about 330 bytes apiece.
fn big_block(node: &Node, n: usize) -> (BlockHash, Block) {
    let hash = node.reader.block_hash_at(0).unwrap().unwrap();
    let mut block = node.reader.block(&hash).unwrap().unwrap();
    for i in 0..n {
        let b = (i as u32).to_le_bytes();
        let mut txid = [0u8; 32];
        txid[..4].copy_from_slice(&b);
        let input = |k: u32| TxIn {
            previous_output: OutPoint::new(Txid(txid), k),
            script_sig: Vec::new(),
            sequence: 0xffff_fffe,
            witness: Witness(vec![vec![b[0]; 64], vec![b[1]; 33]]),
        };
        let output = |k: u8| TxOut {
            value: Amount(1_000 + i as u64 * 7 + u64::from(k)),
            script_pubkey: [&[0x00, 20][..], &[k ^ b[0]; 20]].concat(),
        };
        block.transactions.push(Transaction {
            version: 2,
            inputs: vec![input(0), input(1)],
            outputs: vec![output(1), output(2)],
            lock_time: i as u32,
        });
    }
    (hash, block)
}

#[test]
fn streamed_block_json_is_byte_identical_and_needs_far_less_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path());
    let (hash, block) = big_block(&node, 12_000);
    let network = node.network();
    let size = block.to_bytes().len();
    assert!(size > 3_500_000, "a block of a few MB ({size} bytes)");
    for verbosity in [1u8, 2] {
        // Before: the whole block as a Value, then serialised (what the server sent).
        let started = Instant::now();
        let (old, old_peak) = peak_heap(|| {
            let v = block_json(&node.reader, &hash, &block, verbosity, network).unwrap();
            serde_json::to_vec(&v).unwrap()
        });
        let old_time = started.elapsed();
        // After: written as it goes.
        let started = Instant::now();
        let (written, new_peak) = peak_heap(|| {
            let head = block_head_json(&node.reader, &hash, &block).unwrap();
            let mut sink = Discard(0);
            write_block_json(&head, &block, verbosity, network, &mut sink).unwrap();
            sink.0
        });
        let new_time = started.elapsed();
        let mut streamed = Vec::new();
        let head = block_head_json(&node.reader, &hash, &block).unwrap();
        write_block_json(&head, &block, verbosity, network, &mut streamed).unwrap();
        assert!(old == streamed, "verbosity {verbosity}: streamed bytes differ from the Value's");
        assert_eq!(written, streamed.len() as u64);
        println!(
            "getblock verbosity {verbosity}, block of {size} bytes with {} transactions: reply \
             {} bytes; peak heap Value-based {:.1} MiB in {old_time:?}, streamed {:.2} MiB in \
             {new_time:?} (plus at most the server's chunk buffers, 64 KiB each)",
            block.transactions.len(),
            old.len(),
            old_peak as f64 / (1 << 20) as f64,
            new_peak as f64 / (1 << 20) as f64,
        );
        if verbosity == 2 {
            assert!(
                new_peak * 8 < old_peak,
                "streaming should need a small fraction of the memory: {new_peak} vs {old_peak}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getblock_streams_through_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path());
    let mut registry = Registry::new();
    register_all(&mut registry, &node).unwrap();
    // The same writer `getblock` uses, on a large block that is not on the chain.
    let (big_hash, big) = big_block(&node, 12_000);
    let big = Arc::new(big);
    let (n2, b2) = (node.clone(), big.clone());
    registry
        .register_stream(MethodInfo::new("getbigblock", "Test"), move |_| {
            let (node, block) = (n2.clone(), b2.clone());
            async move {
                Ok(JsonStream::new(move |w| {
                    let head = block_head_json(&node.reader, &big_hash, &block)
                        .map_err(|e| RpcError::database(e.to_string()))?;
                    Ok(write_block_json(&head, &block, 2, node.network(), w)?)
                }))
            }
        })
        .unwrap();
    let registry = Arc::new(registry);
    let server =
        RpcServer::bind(RpcConfig::localhost(0, dir.path()), registry.clone()).await.unwrap();
    let stats = server.stream_stats();
    let cookie = server.cookie_path().to_path_buf();
    let running = server.spawn(registry.stopped());
    let url = format!("http://{}", running.local_addr());
    let genesis = node.reader.block_hash_at(0).unwrap().unwrap();
    let genesis_block = node.reader.block(&genesis).unwrap().unwrap();
    let (node2, big2) = (node.clone(), big.clone());
    tokio::task::spawn_blocking(move || {
        let node = node2;
        let client = RpcClient::new(&url, Auth::Cookie(cookie)).unwrap();
        let hex = genesis.to_hex();
        for verbosity in [1u8, 2] {
            let got = client.call("getblock", json!([hex, verbosity])).unwrap();
            let want =
                block_json(&node.reader, &genesis, &genesis_block, verbosity, node.network())
                    .unwrap();
            assert_eq!(got, want, "verbosity {verbosity}");
        }
        assert_eq!(
            client.call("getblock", json!([hex])).unwrap()["tx"],
            json!([genesis_block.transactions[0].txid().to_hex()])
        );
        assert_eq!(
            client.call("getblock", json!([hex, 0])).unwrap(),
            json!(hex::encode(genesis_block.to_bytes()))
        );
        // Errors are ordinary replies, not broken streams.
        let missing = client.call("getblock", json!(["00".repeat(32)])).unwrap_err();
        assert_eq!(missing.rpc_code(), Some(-5), "{missing}");
        let bad = client.call("getblock", json!([hex, 3])).unwrap_err();
        assert_eq!(bad.rpc_code(), Some(-8), "{bad}");
        // A large verbosity-2 block through the server, as `getblock` writes it.
        let started = Instant::now();
        let got = client.call("getbigblock", json!([])).unwrap();
        let elapsed = started.elapsed();
        let want = block_json(&node.reader, &big_hash, &big2, 2, node.network()).unwrap();
        assert_eq!(got["tx"].as_array().unwrap().len(), big2.transactions.len());
        assert!(got == want, "the large block came back different");
        println!(
            "large block ({} transactions) through the server in {elapsed:?}",
            big2.transactions.len()
        );
    })
    .await
    .unwrap();
    // Four `getblock` replies and the large block; the two errors were ordinary replies.
    // The writer threads finish just after their last chunk went out.
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while stats.live_chunks() != 0 || stats.writers_running() != 0 {
        assert!(Instant::now() < deadline, "stream writers or chunks left over");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(stats.completed(), 5, "every successful reply above was streamed");
    assert!(stats.peak_chunks() <= rnet_rpc::STREAM_CHUNKS_IN_FLIGHT + 2 + 7);
    println!("server chunk buffers alive at most: {}", stats.peak_chunks());
    assert_eq!(node.heavy_rpc.available(), rnet_node::node::HEAVY_RPC_SLOTS);
    registry.shutdown().trigger();
    running.join().await.unwrap();
}
