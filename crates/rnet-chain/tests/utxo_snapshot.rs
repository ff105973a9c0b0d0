//! `UtxoSnapshot::is_expired` is exact (issue 14 item 19): the chainstate records every coin an
//! expiry sweep of the active chain removed (the `expired` table), so a spend of a coin that
//! expired any number of blocks ago is reported as expired (and the mempool rejects it as such
//! instead of keeping it as an orphan); spent, unknown and live outpoints are not. Disconnecting
//! the sweeping block forgets the entry; databases made before the table existed get it filled
//! from their undo records on open.

mod common;

use common::*;
use rnet_chain::schema::{DB_FILE, META, META_SCHEMA, SCHEMA_VERSION};
use rnet_chain::{ChainError, ChainState, FailPoint};
use rnet_consensus::{ChainParams, UtxoView};
use rnet_mempool::{Mempool, MempoolError, MempoolPolicy, TipContext};
use rnet_primitives::{COIN, OutPoint, Txid};

/// The table under test, by name (so the tests also run against a build that lacks it).
const EXPIRED: redb::TableDefinition<&[u8], u32> = redb::TableDefinition::new("expired");

/// Blocks more than the old 6-block lookback the snapshot used to have.
const LONG_AGO: u64 = 10;

/// A chain where `b1.out(0, 0)` expires in `b4`'s sweep, then `LONG_AGO` more blocks.
struct Expiring {
    b1: Blk,
    b2: Blk,
    b3: Blk,
    b4: Blk,
    after: Vec<Blk>,
}

impl Expiring {
    /// The coin `b4`'s sweep expires.
    fn coin(&self) -> OutPoint {
        self.b1.out(0, 0)
    }

    fn all(&self) -> Vec<&Blk> {
        let mut v = vec![&self.b1, &self.b2, &self.b3, &self.b4];
        v.extend(self.after.iter());
        v
    }
}

/// `b1..b4` of [`Expiring`] (not yet accepted): `b4`'s sweep expires `b1.out(0, 0)`.
fn first_four() -> [Blk; 4] {
    let g = genesis();
    // Coins created at losses 900k and 600k; b3 spends one of b1's, b2's stays live.
    let b1 = simple(g.header(), 900_000, 1, &[COIN, 2 * COIN]);
    let b2 = simple(b1.header(), 600_000, 2, &[3 * COIN]);
    let b3 = block_on(
        b2.header(),
        500_000,
        3,
        vec![coinbase(3, 3, &[COIN]), spend(&[b1.out(0, 1)], &[COIN])],
    );
    // At loss 350k the threshold is 700k: b1's remaining coin expires, b2's does not.
    let b4 = simple(b3.header(), 350_000, 4, &[COIN]);
    [b1, b2, b3, b4]
}

/// Builds [`Expiring`] on `chain`, checking after every block from `b4` on that the coin is
/// reported expired.
fn build(chain: &mut ChainState) -> Expiring {
    let [b1, b2, b3, b4] = first_four();
    for b in [&b1, &b2, &b3] {
        accept(chain, b);
    }
    let before = chain.utxo_snapshot().unwrap();
    assert!(!before.is_expired(&b1.out(0, 0)), "still a live coin");
    accept(chain, &b4);
    let mut parent = b4.header().clone();
    let mut after = Vec::new();
    for i in 0..LONG_AGO {
        let snap = chain.utxo_snapshot().unwrap();
        assert!(snap.coin(&b1.out(0, 0)).is_none());
        assert!(snap.is_expired(&b1.out(0, 0)), "{i} blocks after the sweep");
        assert!(snap.take_error().is_none());
        let b = simple(&parent, 340_000 - i * 1_000, 10 + i, &[COIN]);
        accept(chain, &b);
        parent = b.header().clone();
        after.push(b);
    }
    Expiring { b1, b2, b3, b4, after }
}

#[test]
fn snapshot_reports_every_expired_coin() {
    let dir = TempDir::new("snapshot-expired");
    let rules = SynthRules::default();
    let mut chain = open(dir.path(), &rules, archive());
    let x = build(&mut chain);
    let check = |chain: &ChainState| {
        let snap = chain.utxo_snapshot().unwrap();
        assert!(snap.is_expired(&x.coin()), "expired {LONG_AGO} blocks ago");
        assert!(!snap.is_expired(&x.b1.out(0, 1)), "spent, not expired");
        assert!(!snap.is_expired(&x.b2.out(0, 0)), "live");
        assert!(!snap.is_expired(&OutPoint::new(Txid([9; 32]), 0)), "unknown");
        assert!(snap.take_error().is_none());
        chain.verify_consistency().unwrap();
    };
    check(&chain);
    assert_eq!(chain.expired_len().unwrap(), 1);
    // Across a restart.
    drop(chain);
    let chain = open(dir.path(), &rules, archive());
    check(&chain);
}

#[test]
fn disconnecting_the_sweep_makes_the_coin_spendable_again() {
    let dir = TempDir::new("snapshot-expired-reorg");
    let rules = SynthRules::default();
    let mut chain = open(dir.path(), &rules, archive());
    let x = build(&mut chain);
    let expired_state = state(&chain);

    // Invalidating the sweeping block restores the coin: no longer expired.
    chain.invalidate_block(&x.b4.hash()).unwrap();
    assert_eq!(chain.tip().hash, x.b3.hash());
    let snap = chain.utxo_snapshot().unwrap();
    assert!(snap.coin(&x.coin()).is_some());
    assert!(!snap.is_expired(&x.coin()));
    drop(snap);
    assert_eq!(chain.expired_len().unwrap(), 0);
    chain.verify_consistency().unwrap();

    // ... and spendable: a block spending it (at a loss that does not expire it) connects.
    let s = block_on(
        x.b3.header(),
        480_000,
        99,
        vec![coinbase(4, 99, &[COIN]), spend(&[x.coin()], &[COIN / 2])],
    );
    assert!(matches!(accept(&mut chain, &s), rnet_chain::AcceptOutcome::Connected { .. }));
    let snap = chain.utxo_snapshot().unwrap();
    assert!(snap.coin(&x.coin()).is_none());
    assert!(!snap.is_expired(&x.coin()), "spent, not expired");
    drop(snap);
    chain.verify_consistency().unwrap();

    // Reconsidering the sweep's branch (more chainwork) reorgs back: expired again, and the
    // table agrees with the UTXO set and with a fresh replay.
    chain.reconsider_block(&x.b4.hash()).unwrap();
    assert_eq!(state(&chain), expired_state);
    assert_eq!(state(&chain), replay(&x.all()));
    let snap = chain.utxo_snapshot().unwrap();
    assert!(snap.is_expired(&x.coin()));
    drop(snap);
    assert_eq!(chain.expired_len().unwrap(), 1);
    chain.verify_consistency().unwrap();
}

#[test]
fn mempool_rejects_a_spend_of_a_coin_expired_long_ago() {
    let dir = TempDir::new("snapshot-expired-mempool");
    let mut chain = open(dir.path(), &SynthRules::default(), archive());
    let x = build(&mut chain);
    let snap = chain.utxo_snapshot().unwrap();
    let tip = chain.tip();
    let context = TipContext {
        height: tip.height,
        median_time_past: tip.time,
        tip_loss_index: tip.loss_index,
    };
    let mut pool = Mempool::new(ChainParams::regtest(), MempoolPolicy::default());
    let tx = spend(&[x.coin()], &[COIN / 2]);
    let err = pool.accept(tx, &snap, &context, NOW).unwrap_err();
    assert_eq!(
        err,
        MempoolError::Invalid(rnet_consensus::TxError::Expired { input: 0, outpoint: x.coin() })
    );
    assert!(err.to_string().contains("expired"));
    assert_eq!(pool.orphan_count(), 0);
}

/// Makes the database in `dir` look like one written before the `expired` table existed.
fn downgrade_to_schema_2(dir: &std::path::Path) {
    let db = redb::Database::open(dir.join(DB_FILE)).unwrap();
    let w = db.begin_write().unwrap();
    w.delete_table(EXPIRED).unwrap();
    w.open_table(META).unwrap().insert(META_SCHEMA, 2u32.to_le_bytes().as_slice()).unwrap();
    w.commit().unwrap();
}

fn schema_of(dir: &std::path::Path) -> u32 {
    let db = redb::Database::open(dir.join(DB_FILE)).unwrap();
    let r = db.begin_read().unwrap();
    let meta = r.open_table(META).unwrap();
    let v = meta.get(META_SCHEMA).unwrap().unwrap();
    u32::from_le_bytes(v.value().try_into().unwrap())
}

#[test]
fn opening_an_old_database_fills_the_expired_table() {
    let dir = TempDir::new("snapshot-expired-upgrade");
    let rules = SynthRules::default();
    let mut chain = open(dir.path(), &rules, archive());
    let x = build(&mut chain);
    drop(chain);
    downgrade_to_schema_2(dir.path());
    assert_eq!(schema_of(dir.path()), 2);

    let mut chain = open(dir.path(), &rules, archive());
    let snap = chain.utxo_snapshot().unwrap();
    assert!(snap.is_expired(&x.coin()), "filled from the undo records");
    assert!(!snap.is_expired(&x.b2.out(0, 0)));
    assert!(snap.take_error().is_none());
    drop(snap);
    assert_eq!(chain.expired_len().unwrap(), 1);
    chain.verify_consistency().unwrap();
    // The upgrade is recorded once; the table keeps following the chain afterwards.
    chain.invalidate_block(&x.b4.hash()).unwrap();
    assert_eq!(chain.expired_len().unwrap(), 0);
    chain.verify_consistency().unwrap();
    drop(chain);
    assert_eq!(schema_of(dir.path()), SCHEMA_VERSION);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = TempDir::new("snapshot-expired-newer");
    let rules = SynthRules::default();
    drop(open(dir.path(), &rules, archive()));
    {
        let db = redb::Database::open(dir.path().join(DB_FILE)).unwrap();
        let w = db.begin_write().unwrap();
        let next = SCHEMA_VERSION + 1;
        w.open_table(META).unwrap().insert(META_SCHEMA, next.to_le_bytes().as_slice()).unwrap();
        w.commit().unwrap();
    }
    let err = ChainState::open_with(dir.path(), Box::new(rules), archive()).err().unwrap();
    assert!(matches!(err, rnet_chain::ChainError::UnsupportedSchema(v) if v == SCHEMA_VERSION + 1));
}

/// Storage of the `expired` table per expired coin, measured with redb's table statistics on
/// 5 000 coins expired by one sweep (`--nocapture` prints it).
#[test]
fn storage_per_expired_coin() {
    use redb::ReadableTableMetadata;
    const PER_BLOCK: u64 = 1_000;
    const BLOCKS: u64 = 5;
    let dir = TempDir::new("snapshot-expired-storage");
    let mut chain = open(dir.path(), &SynthRules::default(), archive());
    let mut parent = genesis().block.header;
    for i in 0..BLOCKS {
        let outputs = vec![1_000; PER_BLOCK as usize];
        let b = simple(&parent, 900_000 - i * 1_000, 1 + i, &outputs);
        accept(&mut chain, &b);
        parent = b.block.header;
    }
    // Threshold 2 × 400k = 800k: every coin above expires.
    let sweep = simple(&parent, 400_000, 50, &[COIN]);
    accept(&mut chain, &sweep);
    let n = PER_BLOCK * BLOCKS;
    assert_eq!(chain.expired_len().unwrap(), n);
    chain.verify_consistency().unwrap();
    drop(chain);

    let db = redb::Database::open(dir.path().join(DB_FILE)).unwrap();
    let r = db.begin_read().unwrap();
    let table = r.open_table(EXPIRED).unwrap();
    assert_eq!(table.len().unwrap(), n);
    let stats = table.stats().unwrap();
    let total = stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes();
    let per_coin = total as f64 / n as f64;
    println!(
        "expired table: {n} coins, stored {} B, metadata {} B, fragmented {} B, {} leaf + {} \
         branch pages: {per_coin:.1} B per expired coin ({:.1} B payload)",
        stats.stored_bytes(),
        stats.metadata_bytes(),
        stats.fragmented_bytes(),
        stats.leaf_pages(),
        stats.branch_pages(),
        stats.stored_bytes() as f64 / n as f64,
    );
    // Key (36) + value (4) is the payload; page overhead stays within a small factor.
    assert!(stats.stored_bytes() >= 40 * n);
    assert!(per_coin < 120.0, "{per_coin} B per coin");
}

/// A connect or disconnect that fails inside its write transaction changes neither the UTXO set
/// nor the expired table: reopened, they agree with each other and with the state before.
#[test]
fn a_failed_sweep_or_unsweep_leaves_table_and_utxo_set_consistent() {
    let dir = TempDir::new("snapshot-expired-crash");
    let rules = SynthRules::default();
    let [b1, b2, b3, b4] = first_four();
    let coin = b1.out(0, 0);
    // A branch from b3 whose first block beats b4 (more chainwork) and sweeps the same coin.
    let c1 = simple(b3.header(), 345_000, 40, &[COIN]);

    let mut chain = open(dir.path(), &rules, durable());
    for b in [&b1, &b2, &b3] {
        accept(&mut chain, b);
    }
    chain.set_fail_point(Some(FailPoint::ErrorMidConnect));
    let err = chain.accept_block(b4.block.clone(), Some(b4.ckpt.clone()), NOW).unwrap_err();
    assert!(matches!(err, ChainError::FailPoint(_)));
    drop(chain);
    let mut chain = open(dir.path(), &rules, durable());
    assert_eq!(chain.tip().hash, b3.hash());
    assert!(!chain.utxo_snapshot().unwrap().is_expired(&coin));
    assert_eq!(chain.expired_len().unwrap(), 0);
    chain.verify_consistency().unwrap();
    chain.activate_best_chain(NOW).unwrap();
    assert_eq!(chain.tip().hash, b4.hash());
    assert_eq!(chain.utxo_snapshot().unwrap().expired_at(&coin).unwrap(), Some(4));
    let before = state(&chain);

    // The reorg to c1 fails while disconnecting b4, after its expired coins were restored.
    chain.set_fail_point(Some(FailPoint::ErrorMidDisconnect));
    let err = chain.accept_block(c1.block.clone(), Some(c1.ckpt.clone()), NOW).unwrap_err();
    assert!(matches!(err, ChainError::FailPoint(_)));
    drop(chain);
    let mut chain = open(dir.path(), &rules, durable());
    assert_eq!(state(&chain), before);
    assert_eq!(chain.utxo_snapshot().unwrap().expired_at(&coin).unwrap(), Some(4));
    assert_eq!(chain.expired_len().unwrap(), 1);
    chain.verify_consistency().unwrap();
    // Completed: c1's sweep expires the coin again, at the same height.
    chain.activate_best_chain(NOW).unwrap();
    assert_eq!(chain.tip().hash, c1.hash());
    assert_eq!(chain.utxo_snapshot().unwrap().expired_at(&coin).unwrap(), Some(4));
    assert_eq!(state(&chain), replay(&[&b1, &b2, &b3, &c1]));
    chain.verify_consistency().unwrap();
}
