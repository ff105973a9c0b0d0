//! `UtxoSnapshot::is_expired` (issue 14 item 19): a spend of a coin that expired in one of the
//! last `UtxoSnapshot::EXPIRED_LOOKBACK_BLOCKS` blocks is reported as expired (so the mempool rejects it as
//! such instead of keeping it as an orphan); spent, unknown and live outpoints are not.

mod common;

use common::*;
use rnet_chain::UtxoSnapshot;
use rnet_consensus::UtxoView;
use rnet_primitives::{COIN, OutPoint, Txid};

#[test]
fn snapshot_reports_recently_expired_coins() {
    let dir = TempDir::new("snapshot-expired");
    let rules = SynthRules::default();
    let g = genesis();
    let mut chain = open(dir.path(), &rules, archive());
    // Coins created at losses 900k and 600k; b3 spends one of b2's... none: b2's stays live.
    let b1 = simple(g.header(), 900_000, 1, &[COIN, 2 * COIN]);
    let b2 = simple(b1.header(), 600_000, 2, &[3 * COIN]);
    let b3 = block_on(
        b2.header(),
        500_000,
        3,
        vec![coinbase(3, 3, &[COIN]), spend(&[b1.out(0, 1)], &[COIN])],
    );
    for b in [&b1, &b2, &b3] {
        accept(&mut chain, b);
    }
    let before = chain.utxo_snapshot().unwrap();
    assert!(!before.is_expired(&b1.out(0, 0)), "still a live coin");
    // At loss 350k the threshold is 700k: b1's remaining coin expires, b2's does not.
    let b4 = simple(b3.header(), 350_000, 4, &[COIN]);
    accept(&mut chain, &b4);
    let snap = chain.utxo_snapshot().unwrap();
    assert!(snap.coin(&b1.out(0, 0)).is_none());
    assert!(snap.is_expired(&b1.out(0, 0)), "expired in the tip's sweep");
    assert!(!snap.is_expired(&b1.out(0, 1)), "spent, not expired");
    assert!(!snap.is_expired(&b2.out(0, 0)), "live");
    assert!(!snap.is_expired(&OutPoint::new(Txid([9; 32]), 0)), "unknown");
    assert!(snap.take_error().is_none());

    // Still recognised a few blocks later, forgotten beyond the lookback window.
    let mut parent = b4.header().clone();
    for i in 0..u64::from(UtxoSnapshot::EXPIRED_LOOKBACK_BLOCKS) {
        let b = simple(&parent, 340_000 - i * 1_000, 10 + i, &[COIN]);
        accept(&mut chain, &b);
        parent = b.header().clone();
        let snap = chain.utxo_snapshot().unwrap();
        let within = i + 1 < u64::from(UtxoSnapshot::EXPIRED_LOOKBACK_BLOCKS);
        assert_eq!(snap.is_expired(&b1.out(0, 0)), within, "{} blocks after", i + 1);
    }
    // Disconnecting back restores the coin: no longer expired.
    chain.invalidate_block(&b4.hash()).unwrap();
    let snap = chain.utxo_snapshot().unwrap();
    assert!(snap.coin(&b1.out(0, 0)).is_some());
    assert!(!snap.is_expired(&b1.out(0, 0)));
}
