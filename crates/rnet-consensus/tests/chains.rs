//! Whole regtest chains through every consensus stage: accounting and growth along the chain,
//! undo, and each recovery policy (heartbeat, social, emission return) plus HTLC timeouts and
//! time-based relative locks enforced by consensus against coin age.

mod common;

use common::*;
use rnet_consensus::{
    BlockError, ChainParams, HeaderChain, TxError, block_subsidy, median_time_past,
    summarize_header,
};
use rnet_crypto::SigningKey;
use rnet_primitives::{Amount, COIN, OutPoint, Transaction, TxOut, Witness};
use rnet_script::templates::emission_output;
use rnet_script::{
    EmissionReturn, Heartbeat, Htlc, RelativeLock, ScriptError, ScriptTemplate, SighashCache,
    SighashType, Social, TxScriptError,
};
use rnet_testkit::{
    MemoryChain, TestMiner, plain_spk, regtest_genesis, spend_plain, test_key, unsigned_tx,
};

/// Pays the coinbase of `height` (to the payout key) into `out`, mined into the next block;
/// returns the new outpoint.
fn fund(chain: &mut MemoryChain, miner: &TestMiner, height: u32, out: TxOut) -> OutPoint {
    let (op, coin) = coinbase_coin(chain, height);
    let change = coin.value.0 - out.value.0 - 1000;
    let tx = spend_plain(&payout_key(), &[(op, coin)], vec![out, to_payout(change)]);
    let txid = tx.txid();
    chain.mine(miner, vec![tx], plain_spk(&payout_key())).expect("funding block");
    OutPoint::new(txid, 0)
}

/// A version-2 transaction spending `op` (worth `spent`) with `sequence` and `lock_time` into
/// `outputs`, its witness made by `witness(signature hash cache)`.
fn spend_with(
    op: OutPoint,
    spent: &TxOut,
    sequence: u32,
    lock_time: u32,
    outputs: Vec<TxOut>,
    witness: impl FnOnce(&SighashCache<'_>) -> Witness,
) -> Transaction {
    let mut tx = unsigned_tx(2, &[(op, sequence)], outputs, lock_time);
    let spent = [spent.clone()];
    let w = witness(&SighashCache::new(&regtest_genesis(), &tx, &spent).unwrap());
    tx.inputs[0].witness = w;
    tx
}

fn sig(cache: &SighashCache<'_>, key: &SigningKey, script: &[u8]) -> Vec<u8> {
    cache.sign(key, 0, script, SighashType::All).unwrap()
}

fn try_mine(chain: &mut MemoryChain, miner: &TestMiner, tx: Transaction) -> Result<(), BlockError> {
    let mined = template(chain, miner, vec![tx]).finish(&miner.key);
    match chain.submit(&mined) {
        Ok(_) => Ok(()),
        Err(rnet_testkit::SubmitError::Invalid(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_mined_chain_keeps_its_books() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let mut chain = MemoryChain::new(params.clone());
    let spk = plain_spk(&payout_key());
    let genesis = chain.tip();
    assert_eq!(genesis.val_loss, params.genesis_val_loss);
    assert_eq!((genesis.loss_index, genesis.chainwork), (params.genesis_val_loss, 0));
    let mut snapshots = vec![(chain.tip(), chain.utxo_set().clone())];
    for h in 1..=20u32 {
        let before = chain.clone();
        let parent = chain.tip();
        let (mined, c) = chain.mine(&miner, vec![], spk.clone()).unwrap();
        let s = &c.summary;
        assert_eq!(s.height, h);
        // Width +2·(1 + ⌊stagnation/10⌋) per block up to the regtest cap of 64; depth stays 2.
        let step = 2 * (1 + parent.stagnation / 10);
        assert_eq!((s.d_model, s.n_layers), ((parent.d_model + step).min(64), 2));
        // The paired improvement reaches the requirement; the loss index moves by it, capped at
        // twice the requirement; chainwork adds the requirement.
        let improvement = s.parent_loss - s.val_loss;
        assert!(improvement >= s.required_eff);
        assert_eq!(s.required_eff, params.min_required_improvement);
        assert_eq!(s.loss_index, parent.loss_index - improvement.min(2 * s.required_eff));
        assert_eq!(s.chainwork, parent.chainwork + u128::from(s.required_eff));
        // The bonus follows the improvement; no halving yet; all of it circulates.
        let subsidy =
            block_subsidy(&params, parent.circulating_supply, improvement, s.required_eff);
        assert!(subsidy >= Amount(50 * COIN) && subsidy <= Amount(100 * COIN));
        assert_eq!(c.effects.subsidy, subsidy);
        assert_eq!(s.circulating_supply, Amount(parent.circulating_supply.0 + subsidy.0));
        assert_eq!(chain.utxo_value(), s.circulating_supply);
        // The summary is what the header alone says, plus the supply.
        let mut from_header = summarize_header(&params, &mined.block.header, &before);
        from_header.circulating_supply = s.circulating_supply;
        assert_eq!(&from_header, s);
        assert!(mined.block.header.time > median_time_past(&chain, h - 1));
        snapshots.push((chain.tip(), chain.utxo_set().clone()));
    }
    // Undo restores every earlier state exactly.
    while chain.height() > 0 {
        snapshots.pop();
        chain.disconnect_tip().unwrap();
        let (tip, utxos) = snapshots.last().unwrap();
        assert_eq!(&chain.tip(), tip);
        assert_eq!(chain.utxo_set(), utxos);
    }
    assert!(chain.disconnect_tip().is_none());
}

#[test]
fn heartbeat_recovery_only_after_the_interval_in_blocks() {
    let (mut chain, miner) = base();
    let owner = test_key(1);
    let recovery = test_key(2);
    let hb =
        Heartbeat::new(owner.public_key(), recovery.public_key(), RelativeLock::Blocks(3)).unwrap();
    let op = fund(&mut chain, &miner, 1, hb.output(Amount(10 * COIN)));
    let coin_height = chain.height();
    let out = hb.output(Amount(10 * COIN));
    let script = hb.witness_script();
    let recover = |seq: u32| {
        spend_with(op, &out, seq, 0, vec![to_payout(10 * COIN - 1000)], |c| {
            hb.recovery_witness(sig(c, &recovery, &script))
        })
    };
    // The script demands a relative-lock sequence ≥ 3 (here: none at all) ...
    let e = try_mine(&mut chain, &miner, recover(0xFFFF_FFFE)).unwrap_err();
    assert_eq!(
        tx_error(e),
        (
            1,
            TxError::Script(TxScriptError {
                input: Some(0),
                error: ScriptError::UnsatisfiedSequence
            })
        )
    );
    // ... and consensus demands the coin be 3 blocks deep for that sequence (BIP68).
    for depth in 1..3 {
        assert_eq!(chain.height() + 1 - coin_height, depth);
        let e = try_mine(&mut chain, &miner, recover(3)).unwrap_err();
        assert_eq!(tx_error(e), (1, TxError::SequenceLocked { input: 0 }));
        chain.mine_empty(&miner, 1, &plain_spk(&payout_key())).unwrap();
    }
    // The owner could have spent at any time; the recovery key can now.
    try_mine(&mut chain, &miner, recover(3)).unwrap();
    assert!(!chain.utxo_set().contains_key(&op));
}

#[test]
fn heartbeat_owner_proves_life_by_respending() {
    let (mut chain, miner) = base();
    let owner = test_key(1);
    let hb = Heartbeat::new(owner.public_key(), test_key(2).public_key(), RelativeLock::Blocks(3))
        .unwrap();
    let op = fund(&mut chain, &miner, 1, hb.output(Amount(10 * COIN)));
    let out = hb.output(Amount(10 * COIN));
    let script = hb.witness_script();
    // Immediately, to itself: a fresh coin whose interval starts again.
    let tx = spend_with(op, &out, u32::MAX, 0, vec![hb.output(Amount(10 * COIN - 1000))], |c| {
        hb.owner_witness(sig(c, &owner, &script))
    });
    let new_op = OutPoint::new(tx.txid(), 0);
    try_mine(&mut chain, &miner, tx).unwrap();
    assert_eq!(chain.utxo_set()[&new_op].height, chain.height());
}

#[test]
fn social_recovery_through_a_pending_output() {
    let (mut chain, miner) = base();
    let owner = test_key(1);
    let guardians: Vec<SigningKey> = (10..13).map(test_key).collect();
    let new_key = test_key(20);
    let social = Social::new(
        owner.public_key(),
        guardians.iter().map(|g| g.public_key()).collect(),
        2,
        RelativeLock::Blocks(2),
    )
    .unwrap();
    let value = 10 * COIN;
    let op = fund(&mut chain, &miner, 1, social.output(Amount(value)));
    let out = social.output(Amount(value));
    let script = social.witness_script();
    let pending = social.pending(new_key.public_key());

    // Guardians cannot pay anywhere else.
    let steal = spend_with(op, &out, u32::MAX, 0, vec![to_payout(value - 1000)], |c| {
        let s = |k: &SigningKey| Some(sig(c, k, &script));
        social
            .guardian_witness(&new_key.public_key(), &[s(&guardians[0]), s(&guardians[1]), None])
            .unwrap()
    });
    let e = tx_error(try_mine(&mut chain, &miner, steal).unwrap_err());
    assert_eq!(
        e,
        (
            1,
            TxError::Script(TxScriptError {
                input: Some(0),
                error: ScriptError::RecoveryOutputMismatch
            })
        )
    );
    // Two of three guardians move the coin into the pending output.
    let move_tx =
        spend_with(op, &out, u32::MAX, 0, vec![pending.output(Amount(value - 1000))], |c| {
            let s = |k: &SigningKey| Some(sig(c, k, &script));
            social
                .guardian_witness(
                    &new_key.public_key(),
                    &[None, s(&guardians[1]), s(&guardians[2])],
                )
                .unwrap()
        });
    let pending_op = OutPoint::new(move_tx.txid(), 0);
    try_mine(&mut chain, &miner, move_tx).unwrap();
    let pending_out = pending.output(Amount(value - 1000));
    let pscript = pending.witness_script();
    let claim = || {
        spend_with(
            pending_op,
            &pending_out,
            pending.claim_sequence(),
            0,
            vec![to_payout(value - 2000)],
            |c| pending.claim_witness(sig(c, &new_key, &pscript)),
        )
    };
    // The new key must wait out the cancel window (2 blocks).
    let e = tx_error(try_mine(&mut chain, &miner, claim()).unwrap_err());
    assert_eq!(e, (1, TxError::SequenceLocked { input: 0 }));
    // Meanwhile the owner can cancel; a chain where it does not ...
    let mut cancelled = chain.clone();
    let cancel =
        spend_with(pending_op, &pending_out, u32::MAX, 0, vec![to_payout(value - 2000)], |c| {
            pending.cancel_witness(sig(c, &owner, &pscript))
        });
    try_mine(&mut cancelled, &miner, cancel).unwrap();
    // ... lets the new key claim after the window.
    chain.mine_empty(&miner, 1, &plain_spk(&payout_key())).unwrap();
    try_mine(&mut chain, &miner, claim()).unwrap();
}

#[test]
fn emission_return_sweep_after_inactivity() {
    let (mut chain, miner) = base();
    let owner = test_key(1);
    let er = EmissionReturn::new(owner.public_key(), RelativeLock::Blocks(2)).unwrap();
    let value = 10 * COIN;
    let op = fund(&mut chain, &miner, 1, er.output(Amount(value)));
    let out = er.output(Amount(value));
    // Anyone (no key) may sweep, but only into the emission pool and only after 2 blocks.
    let sweep =
        |to: TxOut| spend_with(op, &out, er.sweep_sequence(), 0, vec![to], |_| er.sweep_witness());
    let e =
        tx_error(try_mine(&mut chain, &miner, sweep(emission_output(Amount(value)))).unwrap_err());
    assert_eq!(e, (1, TxError::SequenceLocked { input: 0 }));
    chain.mine_empty(&miner, 1, &plain_spk(&payout_key())).unwrap();
    let e = tx_error(try_mine(&mut chain, &miner, sweep(to_payout(value))).unwrap_err());
    assert_eq!(
        e,
        (
            1,
            TxError::Script(TxScriptError {
                input: Some(0),
                error: ScriptError::EmissionOutputMismatch
            })
        )
    );
    let before = chain.tip().circulating_supply;
    let tx = sweep(emission_output(Amount(value - 1000)));
    let mined = template(&chain, &miner, vec![tx]).finish(&miner.key);
    let c = chain.submit(&mined).unwrap();
    assert_eq!(c.effects.emission_returned, Amount(value - 1000));
    // The swept value left circulation; the 1000 fee went to the miner.
    assert_eq!(
        c.summary.circulating_supply,
        Amount(before.0 + c.effects.subsidy.0 - (value - 1000))
    );
    assert_eq!(chain.utxo_value(), c.summary.circulating_supply);
}

#[test]
fn htlc_refund_only_after_the_timeout() {
    let (mut chain, miner) = base();
    let sender = test_key(3);
    let receiver = test_key(4);
    let preimage = [7u8; 32];
    let timeout = chain.height() + 3; // block height
    let htlc = Htlc::new(
        receiver.public_key(),
        sender.public_key(),
        Htlc::payment_hash_of(&preimage),
        timeout,
    )
    .unwrap();
    let value = 5 * COIN;
    let op = fund(&mut chain, &miner, 1, htlc.output(Amount(value)));
    let out = htlc.output(Amount(value));
    let script = htlc.witness_script();
    let refund = || {
        spend_with(op, &out, 0xFFFF_FFFE, timeout, vec![to_payout(value - 1000)], |c| {
            htlc.refund_witness(sig(c, &sender, &script))
        })
    };
    // lock_time = timeout is final only in blocks above it.
    while chain.height() < timeout {
        let e = tx_error(try_mine(&mut chain, &miner, refund()).unwrap_err());
        assert_eq!(e, (1, TxError::NonFinal { lock_time: timeout }));
        chain.mine_empty(&miner, 1, &plain_spk(&payout_key())).unwrap();
    }
    // The receiver could claim with the preimage at any time (tested on a copy).
    let mut claimed = chain.clone();
    let claim = spend_with(op, &out, u32::MAX, 0, vec![to_payout(value - 1000)], |c| {
        htlc.claim_witness(sig(c, &receiver, &script), &preimage)
    });
    try_mine(&mut claimed, &miner, claim).unwrap();
    try_mine(&mut chain, &miner, refund()).unwrap();
}

#[test]
fn time_based_relative_lock_measures_median_time_past() {
    let (mut chain, miner) = base();
    let key = payout_key();
    let op = fund(&mut chain, &miner, 1, to_payout(COIN));
    let coin = chain.utxo_set()[&op].clone();
    assert_eq!(coin.creation_mtp, median_time_past(&chain, coin.height - 1));
    // Two 512-s units: the spending block's parent MTP must be ≥ creation MTP + 1024.
    let lock = RelativeLock::Time(2);
    let spend = || {
        let mut tx = unsigned_tx(2, &[(op, lock.to_sequence())], vec![to_payout(COIN - 1000)], 0);
        rnet_testkit::sign_plain(&mut tx, std::slice::from_ref(&coin.output), &key);
        tx
    };
    let mut refused = 0;
    while median_time_past(&chain, chain.height()) < coin.creation_mtp + 1024 {
        let e = tx_error(try_mine(&mut chain, &miner, spend()).unwrap_err());
        assert_eq!(e, (1, TxError::SequenceLocked { input: 0 }));
        chain.mine_empty(&miner, 1, &plain_spk(&payout_key())).unwrap();
        refused += 1;
    }
    assert!(refused >= 2);
    try_mine(&mut chain, &miner, spend()).unwrap();
}

#[test]
fn required_improvement_retargets_on_a_real_chain() {
    // Regtest with retargeting every 3 blocks towards 600 s from a floor of 100 (so sixteen times
    // the start is still reachable by training); blocks come every 60 s.
    let params = ChainParams {
        retarget_interval: 3,
        min_required_improvement: 100,
        initial_required_improvement: 100,
        ..ChainParams::regtest()
    };
    let miner = TestMiner::new(params.clone());
    let mut chain = MemoryChain::new(params.clone());
    let spk = plain_spk(&payout_key());
    let mut required = vec![];
    for _ in 0..7 {
        let time = chain.tip().time + 60;
        let t = chain.template(&miner, vec![], spk.clone(), Some(time), None).unwrap();
        if t.header.height == 6 {
            // The old value is refused at a retarget height.
            let mut stale = t.clone();
            stale.header.required_improvement = 400;
            let mined = stale.finish(&miner.key);
            let e = chain.submit(&mined).unwrap_err();
            assert!(matches!(
                e,
                rnet_testkit::SubmitError::Invalid(BlockError::BadRequiredImprovement {
                    expected: 1600,
                    got: 400
                })
            ));
        }
        let c = chain.submit(&t.finish(&miner.key)).unwrap();
        required.push(c.summary.required_improvement);
    }
    // Heights 1..=7. At 3: 2 gaps of 60 s against 2 × 600 s → ×4 (the bound). At 6: ×4 again.
    assert_eq!(required, [100, 100, 400, 400, 400, 1600, 1600]);
}
