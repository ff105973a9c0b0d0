//! The pool's memory accounting against the real heap: a counting global allocator measures what
//! pooled transactions and orphans really cost, and the size limits must bound that, not just
//! the serialized bytes (issue 14 items 18 and 19).
//!
//! One test function, so no other test allocates on another thread while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use rnet_consensus::{ChainParams, HeaderChain, median_time_past};
use rnet_mempool::{Mempool, MempoolPolicy, TipContext};
use rnet_primitives::{Amount, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
use rnet_testkit::{MemoryChain, TestMiner, plain_spk, spend_plain, test_key};

/// Bytes the heap really holds: each live allocation as glibc's malloc sizes it (8-byte header,
/// 16-byte granules, 32 bytes at least).
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

fn real(size: usize) -> isize {
    (size.saturating_add(8).div_ceil(16) * 16).max(32) as isize
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(real(layout.size()), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(real(layout.size()), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(real(new_size) - real(layout.size()), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

struct Fixture {
    chain: MemoryChain,
    spk: Vec<u8>,
    key: rnet_crypto::SigningKey,
}

impl Fixture {
    fn tip(&self) -> TipContext {
        let t = self.chain.tip();
        TipContext {
            height: t.height,
            median_time_past: median_time_past(&self.chain, t.height),
            tip_loss_index: t.loss_index,
        }
    }

    fn now(&self) -> u64 {
        self.chain.tip().time + 1
    }
}

/// Spendable coins: outpoint and output.
type Coins = Vec<(OutPoint, TxOut)>;

/// A chain whose key owns `small` coins of 20 000 resonance and `big` coins of 10 RNT.
fn fixture(small: usize, big: usize) -> (Fixture, Coins, Coins) {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut chain = MemoryChain::new(params);
    let key = test_key(1);
    let spk = plain_spk(&key);
    chain.mine_empty(&miner, 6, &spk).expect("mine");
    let coin = chain
        .coins_paying(&spk)
        .into_iter()
        .find(|(_, c)| c.is_coinbase && c.height == 1)
        .map(|(o, c)| (o, c.output))
        .expect("coinbase");
    let small_out = TxOut { value: Amount(20_000), script_pubkey: spk.clone() };
    let big_out = TxOut { value: Amount(1_000_000_000), script_pubkey: spk.clone() };
    let mut outputs = vec![small_out.clone(); small];
    outputs.extend(vec![big_out.clone(); big]);
    let total = 20_000 * small as u64 + 1_000_000_000 * big as u64;
    outputs.push(TxOut {
        value: Amount(coin.1.value.0 - total - 1_000_000),
        script_pubkey: spk.clone(),
    });
    let split = spend_plain(&key, &[coin], outputs);
    let txid = split.txid();
    chain.mine(&miner, vec![split], spk.clone()).expect("mine split");
    let smalls = (0..small).map(|i| (OutPoint::new(txid, i as u32), small_out.clone())).collect();
    let bigs =
        (small..small + big).map(|i| (OutPoint::new(txid, i as u32), big_out.clone())).collect();
    (Fixture { chain, spk, key }, smalls, bigs)
}

/// Many small transactions (one input, one output) and a few of about 90 kB (one input, 2000
/// outputs).
fn transactions(
    fx: &Fixture,
    smalls: &[(OutPoint, TxOut)],
    bigs: &[(OutPoint, TxOut)],
) -> Vec<Transaction> {
    let mut txs = Vec::new();
    for (i, coin) in smalls.iter().enumerate() {
        let fee = 1_000 + i as u64; // distinct fee rates: eviction order is well defined
        let out = TxOut { value: Amount(coin.1.value.0 - fee), script_pubkey: fx.spk.clone() };
        txs.push(spend_plain(&fx.key, std::slice::from_ref(coin), vec![out]));
    }
    for coin in bigs {
        let out = TxOut { value: Amount(1_000), script_pubkey: fx.spk.clone() };
        let mut outputs = vec![out; 2000];
        outputs.push(TxOut {
            value: Amount(coin.1.value.0 - 2_000_000 - 300_000),
            script_pubkey: fx.spk.clone(),
        });
        txs.push(spend_plain(&fx.key, std::slice::from_ref(coin), outputs));
    }
    txs
}

/// Fills a pool with the transactions `make` builds and returns it with its accounted usage and
/// the real heap growth (the transactions' own allocations included: they are made after the
/// first reading).
fn fill(
    fx: &Fixture,
    policy: MempoolPolicy,
    make: impl FnOnce() -> Vec<Transaction>,
) -> (Mempool, usize, usize) {
    let (tip, now) = (fx.tip(), fx.now());
    let mut pool = Mempool::new(ChainParams::regtest(), policy);
    let before = live();
    let mut txs = make();
    for tx in txs.drain(..) {
        let _ = pool.accept(tx, &fx.chain, &tip, now);
    }
    drop(txs);
    let grown = (live() - before).max(0) as usize;
    let usage = pool.info().usage;
    (pool, usage, grown)
}

/// Orphans of about 98 kB: 900 inputs from distinct unknown parents, one signature-sized
/// witness item each (orphans are stored before any script runs).
fn orphans(fx: &Fixture, n: usize) -> Vec<Transaction> {
    (0..n)
        .map(|k| {
            let inputs = (0..900u32)
                .map(|i| {
                    let mut parent = [0u8; 32];
                    parent[..4].copy_from_slice(&(k as u32).to_le_bytes());
                    parent[4..8].copy_from_slice(&i.to_le_bytes());
                    parent[31] = 0xAA;
                    TxIn {
                        previous_output: OutPoint::new(Txid(parent), 0),
                        script_sig: Vec::new(),
                        sequence: 0xFFFF_FFFF,
                        witness: Witness(vec![vec![7u8; 65]]),
                    }
                })
                .collect();
            Transaction {
                version: 2,
                inputs,
                outputs: vec![TxOut { value: Amount(1_000_000), script_pubkey: fx.spk.clone() }],
                lock_time: 0,
            }
        })
        .collect()
}

#[test]
fn accounted_memory_bounds_the_real_heap() {
    let (fx, smalls, bigs) = fixture(2000, 4);

    // Unlimited pool: what the accounting says against what the heap grew by.
    let txs = transactions(&fx, &smalls, &bigs);
    let serialized: usize = txs.iter().map(Transaction::total_size).sum();
    let count = txs.len();
    drop(txs);
    let make = || transactions(&fx, &smalls, &bigs);
    let (pool, usage, grown) = fill(&fx, MempoolPolicy::default(), make);
    assert_eq!(pool.len(), count);
    println!(
        "{count} transactions, {serialized} serialized bytes: real heap growth {grown} B, \
         accounted usage {usage} B ({:.2}x real, real = {:.2}x serialized)",
        usage as f64 / grown as f64,
        grown as f64 / serialized as f64
    );
    assert!(usage >= serialized + count * 200, "usage {usage} below serialized {serialized}");
    assert!(usage * 10 >= grown * 9, "usage {usage} under-counts the real heap growth {grown}");
    assert!(usage <= grown * 3, "usage {usage} over 3x the real heap growth {grown}");
    drop(pool);

    // A cap at a third of that: the real heap growth stays within it (plus 15 % for the hash
    // tables' power-of-two growth).
    let cap = usage / 3;
    let policy = MempoolPolicy { max_size_bytes: cap, ..MempoolPolicy::default() };
    let (pool, usage, grown) = fill(&fx, policy, || transactions(&fx, &smalls, &bigs));
    println!(
        "cap {cap} B: {} transactions kept, usage {usage} B, real heap growth {grown} B",
        pool.len()
    );
    assert!(pool.len() < count);
    assert!(usage <= cap);
    assert!(grown <= cap + cap * 15 / 100, "real heap {grown} B exceeds the {cap} B cap");
    drop(pool);

    // Orphans: a 2 MB cap bounds the real heap, by-parent index included.
    let cap = 2_000_000;
    let policy =
        MempoolPolicy { max_orphan_bytes: cap, max_orphans: 1000, ..MempoolPolicy::default() };
    let mut pool = Mempool::new(ChainParams::regtest(), policy);
    let orphan_serialized = orphans(&fx, 1)[0].total_size();
    let (tip, now) = (fx.tip(), fx.now());
    let before = live();
    for tx in orphans(&fx, 60) {
        assert!(pool.accept(tx, &fx.chain, &tip, now).unwrap_err().is_missing_inputs());
    }
    let grown = (live() - before).max(0) as usize;
    let info = pool.info();
    println!(
        "orphans of {orphan_serialized} B: {} kept, accounted {} B, real heap growth {grown} B",
        info.orphans, info.orphan_usage
    );
    assert!(info.orphans >= 1);
    assert!(info.orphan_usage <= cap);
    assert!(grown <= cap + cap * 15 / 100, "orphans hold {grown} B of heap against a {cap} B cap");
    assert!(info.orphan_usage * 10 >= grown * 9, "orphan accounting under-counts");
}
