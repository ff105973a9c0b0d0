//! Wallet tests over real regtest blocks (`rnet-testkit`): sending, fee bumping, the three
//! recovery policies, restore, backups and encryption at rest.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[coin.clone()]` reads better in tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rnet_consensus::{ChainParams, HeaderChain, median_time_past};
use rnet_crypto::{BackupParams, ExtendedSecretKey, Mnemonic, SigningKey};
use rnet_mempool::FeeRate;
use rnet_primitives::{Amount, COIN, Network, OutPoint, Transaction, TxOut};
use rnet_script::{RecoveryPolicy, RelativeLock, ScriptTemplate, VerifyFlags, verify_transaction};
use rnet_testkit::{MemoryChain, TestMiner, plain_spk, regtest_genesis, test_key};
use rnet_wallet::*;
use tempfile::TempDir;

const SMALL: BackupParams = BackupParams { m_cost_kib: 8, t_cost: 1, p_cost: 1 };
const RATE: FeeRate = FeeRate(2000);

fn words(n: u8) -> Mnemonic {
    Mnemonic::from_entropy(&[n; 32])
}

struct Net {
    chain: MemoryChain,
    miner: TestMiner,
    dir: TempDir,
}

impl Net {
    fn new() -> Self {
        let params = ChainParams::regtest();
        Self {
            miner: TestMiner::new(params.clone()),
            chain: MemoryChain::new(params),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn wallet(&self, name: &str, seed: u8, policy: PolicyConfig) -> Wallet {
        Wallet::create(&self.file(name), Network::Regtest, &words(seed), "", policy, None)
            .expect("create")
    }

    /// Mines a block with `txs` paying `payout`; every wallet scans it.
    fn mine(&mut self, txs: Vec<Transaction>, payout: Vec<u8>, wallets: &mut [&mut Wallet]) {
        self.try_mine(txs, payout, wallets).expect("block accepted");
    }

    fn try_mine(
        &mut self,
        txs: Vec<Transaction>,
        payout: Vec<u8>,
        wallets: &mut [&mut Wallet],
    ) -> Result<(), String> {
        let (mined, _) = self.chain.mine(&self.miner, txs, payout).map_err(|e| e.to_string())?;
        let h = self.chain.height();
        let mtp = median_time_past(&self.chain, h - 1);
        for w in wallets.iter_mut() {
            let loss_index = self.chain.tip().loss_index;
            w.scan_block(&mined.block, h, loss_index, mtp).expect("scan");
        }
        Ok(())
    }

    fn mine_empty(&mut self, n: u32, wallets: &mut [&mut Wallet]) {
        for _ in 0..n {
            self.mine(Vec::new(), plain_spk(&test_key(200)), wallets);
        }
    }

    /// Feeds every block of the chain to `w` (a rescan).
    fn rescan(&self, w: &mut Wallet) {
        for h in 1..=self.chain.height() {
            let b = self.chain.block(h).expect("block");
            let mtp = median_time_past(&self.chain, h - 1);
            let loss_index = self.chain.summary(h).expect("summary").loss_index;
            w.scan_block(b, h, loss_index, mtp).expect("scan");
        }
    }
}

fn heartbeat(interval: u16) -> PolicyConfig {
    PolicyConfig::Heartbeat {
        recovery: test_key(7).public_key(),
        interval: RelativeLock::Blocks(interval),
    }
}

fn spk_of(w: &mut Wallet) -> Vec<u8> {
    w.new_address().expect("address").script_pubkey()
}

fn spent_outputs(w: &Wallet, tx: &Transaction) -> Vec<TxOut> {
    tx.inputs
        .iter()
        .map(|i| {
            w.coins().find(|c| c.outpoint == i.previous_output).expect("wallet coin").output.clone()
        })
        .collect()
}

fn coin_list(w: &Wallet) -> Vec<(OutPoint, TxOut)> {
    w.coins().map(|c| (c.outpoint, c.output.clone())).collect()
}

#[test]
fn send_bump_and_exact_balances() {
    let mut net = Net::new();
    let mut a = net.wallet("a", 1, heartbeat(100));
    let mut b =
        net.wallet("b", 2, PolicyConfig::EmissionReturn { inactivity: RelativeLock::Blocks(500) });
    let pay_a = spk_of(&mut a);
    net.mine(Vec::new(), pay_a, &mut [&mut a, &mut b]);
    let reward = a.balances(0).immature;
    assert!(reward.0 > 0);
    assert_eq!(a.balances(0).trusted, Amount::ZERO);
    // The wallet's coin matches consensus' coin exactly (height, MTP, loss).
    let coin = a.coins().next().expect("coin").clone();
    let chain_coin = net.chain.utxo_set().get(&coin.outpoint).expect("on chain").clone();
    assert_eq!(
        (coin.height, coin.creation_mtp, coin.creation_loss_index),
        (chain_coin.height, chain_coin.creation_mtp, chain_coin.creation_loss_index)
    );
    net.mine_empty(4, &mut [&mut a, &mut b]);
    assert_eq!(a.balances(0), Balances { trusted: reward, ..Balances::default() });

    let to_b = b.new_address().expect("b address");
    let sent = Amount(10 * COIN);
    let created = a.send(&[(to_b.clone(), sent)], RATE).expect("send");
    let tx = created.tx.clone();
    assert!(tx.inputs.iter().all(|i| i.sequence == RBF_SEQUENCE));
    let spent = spent_outputs(&a, &tx);
    verify_transaction(&regtest_genesis(), &tx, &spent, VerifyFlags::STANDARD)
        .expect("signed tx verifies");
    // Signed for regtest only: the same transaction is invalid on testnet.
    let testnet = ChainParams::testnet().genesis_hash();
    assert!(verify_transaction(&testnet, &tx, &spent, VerifyFlags::STANDARD).is_err());
    assert!(created.fee >= RATE.fee_for(tx.total_size()));
    let change = reward.0 - sent.0 - created.fee.0;
    assert_eq!(a.balances(0), Balances { pending: Amount(change), ..Balances::default() });
    assert!(b.add_unconfirmed(tx.clone()).expect("b sees it"));
    assert_eq!(b.balances(0).pending, sent);

    // Fee bump: same inputs, higher fee, still valid.
    let bumped = a.bump_fee(&tx.txid(), FeeRate(10_000)).expect("bump");
    let old_ins: Vec<_> = tx.inputs.iter().map(|i| i.previous_output).collect();
    let new_ins: Vec<_> = bumped.tx.inputs.iter().map(|i| i.previous_output).collect();
    assert_eq!(old_ins, new_ins);
    assert!(bumped.fee > created.fee);
    assert!(bumped.fee >= FeeRate(10_000).fee_for(bumped.tx.total_size()));
    verify_transaction(&regtest_genesis(), &bumped.tx, &spent, VerifyFlags::STANDARD)
        .expect("replacement verifies");
    assert_eq!(a.unconfirmed().count(), 1);
    net.mine(vec![bumped.tx.clone()], plain_spk(&test_key(200)), &mut [&mut a, &mut b]);

    let a_bal = a.balances(0);
    assert_eq!(a_bal.trusted, Amount(reward.0 - sent.0 - bumped.fee.0));
    assert_eq!(a_bal.pending, Amount::ZERO);
    assert_eq!(b.balances(0), Balances { trusted: sent, ..Balances::default() });
    assert_eq!(a.unconfirmed().count(), 0);
    assert_eq!(b.unconfirmed().count(), 0);

    // Insufficient funds and bad destinations are errors, not panics.
    let too_much = a.send(&[(to_b.clone(), Amount(100_000 * COIN))], RATE);
    assert!(matches!(too_much, Err(WalletError::InsufficientFunds { .. })));
    let mainnet = rnet_script::PlainKey::new(test_key(3).public_key()).address(Network::Mainnet);
    assert!(matches!(a.send(&[(mainnet, sent)], RATE), Err(WalletError::WrongNetwork { .. })));

    // B spends what it got back to A (emission policy owner path), both agree.
    let back = b.send(&[(a.new_address().expect("a"), Amount(4 * COIN))], RATE).expect("b sends");
    a.add_unconfirmed(back.tx.clone()).expect("a sees it");
    net.mine(vec![back.tx.clone()], plain_spk(&test_key(200)), &mut [&mut a, &mut b]);
    assert_eq!(a.balances(0).trusted, Amount(a_bal.trusted.0 + 4 * COIN));
    assert_eq!(b.balances(0).trusted, Amount(sent.0 - 4 * COIN - back.fee.0));

    // Undo of the last block restores the previous view.
    let h = net.chain.height();
    let block = net.chain.block(h).expect("tip").clone();
    a.undo_block(&block, h).expect("undo");
    b.undo_block(&block, h).expect("undo");
    assert_eq!(a.balances(0).trusted, a_bal.trusted);
    assert_eq!(b.balances(0).trusted, sent);
}

#[test]
fn heartbeat_recovery_and_proof_of_life() {
    let mut net = Net::new();
    let mut a = net.wallet("a", 3, heartbeat(3));
    let pay = spk_of(&mut a);
    net.mine(Vec::new(), pay.clone(), &mut [&mut a]); // h1
    net.mine(Vec::new(), pay, &mut [&mut a]); // h2
    net.mine_empty(5, &mut [&mut a]); // h7
    let info = a.recovery_info();
    assert_eq!(info.coins.len(), 2);
    assert!(info.coins.iter().any(|c| c.deadline == Some(Deadline::Height(4))));
    let coins = coin_list(&a);
    let (c1, c2) = (coins[0].clone(), coins[1].clone());
    let tmpl = |w: &Wallet, spk: &[u8]| -> rnet_script::Heartbeat {
        for i in 0..20 {
            if let Some(RecoveryPolicy::Heartbeat(h)) = w.template_at(KeyChain::Receive, i) {
                if h.script_pubkey() == spk {
                    return *h;
                }
            }
        }
        panic!("template");
    };
    // No heartbeat past the interval: the recovery key spends coin 2.
    let hb = tmpl(&a, &c2.1.script_pubkey);
    let rtx = heartbeat_recovery_tx(
        &regtest_genesis(),
        &hb,
        &[c2.clone()],
        &test_key(7),
        plain_spk(&test_key(8)),
        Amount(10_000),
    )
    .expect("recovery tx");
    verify_transaction(&regtest_genesis(), &rtx, &[c2.1.clone()], VerifyFlags::STANDARD)
        .expect("verifies");
    net.mine(vec![rtx], plain_spk(&test_key(200)), &mut [&mut a]); // h8
    assert_eq!(a.coins().count(), 1);

    // Proof of life for coin 1: the old coin is gone, the new one restarts the interval.
    let hbeat = a.send_heartbeat(RATE, None).expect("heartbeat");
    assert_eq!(hbeat.tx.inputs.len(), 1);
    assert_eq!(hbeat.tx.inputs[0].previous_output, c1.0);
    net.mine(vec![hbeat.tx.clone()], plain_spk(&test_key(200)), &mut [&mut a]); // h9
    let fresh = a.coins().next().expect("new coin").clone();
    assert_eq!(fresh.height, 9);
    assert_eq!(fresh.output.value, Amount(c1.1.value.0 - hbeat.fee.0));
    assert!(a.coins().all(|c| c.outpoint != c1.0));
    let hb_new = match a.template_at(KeyChain::Receive, fresh_index(&fresh)) {
        Some(RecoveryPolicy::Heartbeat(h)) => *h,
        _ => panic!("template"),
    };
    let early = heartbeat_recovery_tx(
        &regtest_genesis(),
        &hb_new,
        &[(fresh.outpoint, fresh.output.clone())],
        &test_key(7),
        plain_spk(&test_key(8)),
        Amount(10_000),
    )
    .expect("build");
    assert!(net.try_mine(vec![early.clone()], plain_spk(&test_key(200)), &mut [&mut a]).is_err());
    net.mine_empty(2, &mut [&mut a]); // h11: next block 12 = 9 + 3
    net.mine(vec![early], plain_spk(&test_key(200)), &mut [&mut a]);
    assert_eq!(a.balances(0).trusted, Amount::ZERO);
}

fn fresh_index(c: &WalletCoin) -> u32 {
    match c.owner {
        CoinOwner::Policy { index, .. } | CoinOwner::Pending { index, .. } => index,
    }
}

#[test]
fn social_recovery_cancel_and_complete() {
    let mut net = Net::new();
    let guardian_wallet = net.wallet("g", 9, heartbeat(100));
    let guardians = vec![
        test_key(11).public_key(),
        guardian_wallet.guardian_public_key(),
        test_key(13).public_key(),
    ];
    let policy =
        PolicyConfig::Social { guardians, threshold: 2, cancel_window: RelativeLock::Blocks(3) };
    let mut a = net.wallet("a", 4, policy);
    let pay = spk_of(&mut a);
    net.mine(Vec::new(), pay.clone(), &mut [&mut a]);
    net.mine(Vec::new(), pay, &mut [&mut a]);
    net.mine_empty(5, &mut [&mut a]);
    let coins = coin_list(&a);
    let social = match a.template_at(KeyChain::Receive, 0) {
        Some(RecoveryPolicy::Social(s)) => s.clone(),
        _ => panic!("social"),
    };
    let new_key = test_key(21);

    // Guardians 1 (plain key) and 2 (a wallet) move coin 1 into a recovery-pending output.
    let mut req = create_recovery_tx(
        &regtest_genesis(),
        &social,
        &coins[..1],
        new_key.public_key(),
        Amount(10_000),
    )
    .expect("req");
    req.sign(&test_key(11)).expect("g1");
    assert!(matches!(req.finalize(), Err(WalletError::NotEnoughSignatures { needed: 2, have: 1 })));
    assert!(matches!(req.sign(&test_key(99)), Err(WalletError::NotAGuardian)));
    // A request for another network is refused: the guardian's signature would be for the wrong
    // genesis id.
    let testnet = ChainParams::testnet().genesis_hash();
    let mut foreign =
        create_recovery_tx(&testnet, &social, &coins[..1], new_key.public_key(), Amount(10_000))
            .expect("req");
    assert!(matches!(
        guardian_wallet.sign_recovery_request(&mut foreign),
        Err(WalletError::WrongChain { expected, found }) if expected == regtest_genesis() && found == testnet
    ));
    guardian_wallet.sign_recovery_request(&mut req).expect("g2");
    let rtx = req.finalize().expect("finalize");
    verify_transaction(&regtest_genesis(), &rtx, &req.spent, VerifyFlags::STANDARD)
        .expect("verifies");
    net.mine(vec![rtx], plain_spk(&test_key(200)), &mut [&mut a]);
    let bal = a.balances(0);
    assert_eq!(bal.recovery_pending, Amount(coins[0].1.value.0 - 10_000));
    assert_eq!(bal.trusted, coins[1].1.value);
    assert!(a.recovery_info().coins.iter().any(|c| c.path == "claim"));

    // The owner cancels within the window, rotating to a new guardian set: back to the same
    // guardians (in any order, with any threshold) is refused and changes nothing.
    let old_policy = a.policy().clone();
    assert!(matches!(a.cancel_recovery(RATE, None), Err(WalletError::SameGuardians)));
    let reordered = PolicyConfig::Social {
        guardians: social.guardians().iter().rev().copied().collect(),
        threshold: 3,
        cancel_window: RelativeLock::Blocks(3),
    };
    assert!(matches!(a.cancel_recovery(RATE, Some(reordered)), Err(WalletError::SameGuardians)));
    assert_eq!(a.policy(), &old_policy);
    assert_eq!(a.policy_generation(), 0);
    let new_guardians = vec![test_key(31).public_key(), test_key(32).public_key()];
    let rotated = PolicyConfig::Social {
        guardians: new_guardians.clone(),
        threshold: 2,
        cancel_window: RelativeLock::Blocks(3),
    };
    let cancel = a.cancel_recovery(RATE, Some(rotated.clone())).expect("cancel");
    assert_eq!(a.policy(), &rotated);
    assert_eq!(a.policy_generation(), 1);
    net.mine(vec![cancel.tx.clone()], plain_spk(&test_key(200)), &mut [&mut a]);
    let bal = a.balances(0);
    assert_eq!(bal.recovery_pending, Amount::ZERO);
    assert_eq!(
        bal.trusted,
        Amount(coins[0].1.value.0 - 10_000 - cancel.fee.0 + coins[1].1.value.0)
    );
    // The cancelled coin now sits under the new guardian set.
    let moved = a
        .coins()
        .find(|c| c.outpoint.txid == cancel.tx.txid())
        .expect("cancel output is the wallet's")
        .clone();
    assert_eq!(moved.owner.generation(), 1);
    match a.coin_template(&moved.owner) {
        Some(RecoveryPolicy::Social(s)) => {
            assert_eq!(s.guardians(), &new_guardians[..]);
            assert_eq!(s.script_pubkey(), moved.output.script_pubkey);
        }
        other => panic!("social template expected, got {other:?}"),
    }

    // Coin 2: no cancel; the new key can claim only after the window.
    let mut req = create_recovery_tx(
        &regtest_genesis(),
        &social,
        &coins[1..2],
        new_key.public_key(),
        Amount(10_000),
    )
    .expect("req");
    req.sign(&test_key(13)).expect("g3");
    req.sign(&test_key(11)).expect("g1");
    net.mine(vec![req.finalize().expect("final")], plain_spk(&test_key(200)), &mut [&mut a]);
    let pending_coin = a
        .coins()
        .find(|c| matches!(c.owner, CoinOwner::Pending { .. }))
        .map(|c| (c.outpoint, c.output.clone()))
        .expect("pending watched");
    let claim = complete_recovery(
        &regtest_genesis(),
        &social.pending(new_key.public_key()),
        &[pending_coin.clone()],
        &new_key,
        plain_spk(&new_key),
        Amount(10_000),
    )
    .expect("claim");
    verify_transaction(
        &regtest_genesis(),
        &claim,
        &[pending_coin.1.clone()],
        VerifyFlags::STANDARD,
    )
    .expect("verifies");
    assert!(net.try_mine(vec![claim.clone()], plain_spk(&test_key(200)), &mut [&mut a]).is_err());
    net.mine_empty(2, &mut [&mut a]);
    net.mine(vec![claim], plain_spk(&test_key(200)), &mut [&mut a]);
    assert_eq!(a.balances(0).recovery_pending, Amount::ZERO);
    assert_eq!(net.chain.coins_paying(&plain_spk(&new_key)).len(), 1);
}

/// A rotation (cancel to a new guardian set) is stored: the wallet file and the backup both keep
/// the retired policy, so coins still under it are recognized and spendable after a reopen or
/// restore, and `sendheartbeat` moves them under the new policy.
#[test]
fn policy_rotation_survives_reopen_and_backup() {
    let mut net = Net::new();
    let old_guardians = vec![test_key(11).public_key(), test_key(12).public_key()];
    let policy = PolicyConfig::Social {
        guardians: old_guardians.clone(),
        threshold: 2,
        cancel_window: RelativeLock::Blocks(3),
    };
    let mut a = net.wallet("a", 4, policy.clone());
    let (p0, p1) = (spk_of(&mut a), spk_of(&mut a));
    net.mine(Vec::new(), p0, &mut [&mut a]);
    net.mine(Vec::new(), p1, &mut [&mut a]);
    net.mine_empty(5, &mut [&mut a]);
    let coins = coin_list(&a);
    let social = match a.template_at(KeyChain::Receive, 0) {
        Some(RecoveryPolicy::Social(s)) => s.clone(),
        _ => panic!("social"),
    };
    let first = coins.iter().find(|c| c.1.script_pubkey == social.script_pubkey()).unwrap();
    let mut req = create_recovery_tx(
        &regtest_genesis(),
        &social,
        &[first.clone()],
        test_key(21).public_key(),
        Amount(10_000),
    )
    .expect("req");
    req.sign(&test_key(11)).expect("g1");
    req.sign(&test_key(12)).expect("g2");
    net.mine(vec![req.finalize().expect("final")], plain_spk(&test_key(200)), &mut [&mut a]);
    let rotated = PolicyConfig::Social {
        guardians: vec![test_key(31).public_key(), test_key(32).public_key()],
        threshold: 1,
        cancel_window: RelativeLock::Blocks(3),
    };
    let cancel = a.cancel_recovery(RATE, Some(rotated.clone())).expect("cancel");
    net.mine(vec![cancel.tx], plain_spk(&test_key(200)), &mut [&mut a]);
    let want = a.balances(0);
    let mut want_coins = coin_list(&a);
    want_coins.sort_by_key(|c| c.0);
    // One coin under each generation.
    let mut gens: Vec<u32> = a.coins().map(|c| c.owner.generation()).collect();
    gens.sort_unstable();
    assert_eq!(gens, vec![0, 1]);
    a.backup(&net.file("a.backup"), "pw", SMALL).expect("backup");

    // Reopen.
    drop(a);
    let mut a = Wallet::open(&net.file("a")).expect("open");
    assert_eq!((a.policy(), a.policy_generation()), (&rotated, 1));
    assert_eq!(a.policy_of(0), Some(&policy));
    assert_eq!(a.balances(0), want);
    // Restore from the backup and rescan: the generation-0 coin is found again.
    let mut r =
        Wallet::restore_backup(&net.file("a.backup"), "pw", &net.file("r"), None).expect("restore");
    assert_eq!((r.policy(), r.policy_generation()), (&rotated, 1));
    net.rescan(&mut r);
    let mut got = coin_list(&r);
    got.sort_by_key(|c| c.0);
    assert_eq!(got, want_coins);
    assert_eq!(r.balances(0), want);

    // The coin still under the old guardians is spendable and moves under the new policy.
    let beat = a.send_heartbeat(RATE, None).expect("heartbeat");
    assert_eq!(beat.tx.inputs.len(), 2);
    net.mine(vec![beat.tx.clone()], plain_spk(&test_key(200)), &mut [&mut a]);
    assert!(a.coins().all(|c| c.owner.generation() == 1));
    assert_eq!(a.coins().count(), 1);
}

/// Coins within the last tenth of their expiry period are reported (regtest ratio 2/1: a coin
/// created at loss index `L` has period `threshold(L) − L = L` and expires once the tip's loss
/// index falls to `L / 2`). The wallet is fed real blocks with chosen loss indices.
#[test]
fn expiry_warnings_for_coins_near_expiry() {
    let mut net = Net::new();
    let mut a = net.wallet("a", 8, heartbeat(100));
    let pay = spk_of(&mut a);
    let (mined, _) = net.chain.mine(&net.miner, Vec::new(), pay).expect("mine");
    let created = 1_000_000u64;
    a.scan_block(&mined.block, 1, created, 0).expect("scan");
    let coin = a.coins().next().expect("coin").clone();
    assert_eq!(a.expiry_distance(&coin), Some((created, created)));
    assert!(a.expiry_warnings().is_empty());
    let mut height = 1;
    let mut at = |a: &mut Wallet, loss: u64| {
        let (mined, _) =
            net.chain.mine(&net.miner, Vec::new(), plain_spk(&test_key(200))).expect("mine");
        height += 1;
        a.scan_block(&mined.block, height, loss, 0).expect("scan");
        a.expiry_warnings()
    };
    // Threshold 2·560 000 − L = 120 000 left of 1 000 000: not yet.
    assert!(at(&mut a, 560_000).is_empty());
    // 100 000 left: exactly the last tenth.
    let w = at(&mut a, 550_000);
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0],
        ExpiryWarning {
            outpoint: coin.outpoint,
            value: coin.output.value,
            remaining: 100_000,
            period: created
        }
    );
    assert_eq!(at(&mut a, 500_001).first().map(|w| w.remaining), Some(2));
    // Expired: swept, no more warning.
    assert!(at(&mut a, 500_000).is_empty());
    assert_eq!(a.coins().count(), 0);
}

#[test]
fn emission_sweep_returns_value_to_the_pool() {
    let mut net = Net::new();
    let mut a =
        net.wallet("a", 5, PolicyConfig::EmissionReturn { inactivity: RelativeLock::Blocks(6) });
    let pay = spk_of(&mut a);
    net.mine(Vec::new(), pay, &mut [&mut a]); // h1
    net.mine_empty(3, &mut [&mut a]); // h4
    let coins = coin_list(&a);
    let tmpl = match a.template_at(KeyChain::Receive, 0) {
        Some(RecoveryPolicy::EmissionReturn(e)) => *e,
        _ => panic!("emission"),
    };
    let fee = Amount(5_000);
    let sweep = sweep_emission(&tmpl, &coins, fee).expect("sweep");
    assert!(net.try_mine(vec![sweep.clone()], plain_spk(&test_key(200)), &mut [&mut a]).is_err());
    net.mine_empty(2, &mut [&mut a]); // h6; next block 7 = 1 + 6
    let before = net.chain.tip().circulating_supply;
    let (_, connected) =
        net.chain.mine(&net.miner, vec![sweep.clone()], plain_spk(&test_key(200))).expect("swept");
    let h = net.chain.height();
    let b = net.chain.block(h).expect("block").clone();
    let loss_index = net.chain.tip().loss_index;
    a.scan_block(&b, h, loss_index, median_time_past(&net.chain, h - 1)).expect("scan");
    let returned = Amount(coins[0].1.value.0 - fee.0);
    assert_eq!(connected.effects.emission_returned, returned);
    let after = net.chain.tip().circulating_supply;
    assert_eq!(
        after.0,
        before.0 + connected.effects.subsidy.0 - coins[0].1.value.0 + fee.0
            - (fee.0 - connected.effects.fees.0)
    );
    assert_eq!(net.chain.utxo_value(), after);
    assert_eq!(a.coins().count(), 0);
}

#[test]
fn restore_from_words_and_rescan_recovers_balance() {
    let mut net = Net::new();
    let mut a = net.wallet("a", 6, heartbeat(50));
    let mut addrs = Vec::new();
    for _ in 0..8 {
        addrs.push(spk_of(&mut a));
    }
    net.mine(Vec::new(), addrs[7].clone(), &mut [&mut a]);
    net.mine(Vec::new(), addrs[2].clone(), &mut [&mut a]);
    net.mine_empty(5, &mut [&mut a]);
    let dest = a.new_address().expect("addr");
    let s = a.send(&[(dest, Amount(3 * COIN))], RATE).expect("send to self");
    net.mine(vec![s.tx], plain_spk(&test_key(200)), &mut [&mut a]);
    let want = a.balances(0);
    assert!(want.trusted.0 > 0);

    let mut r = net.wallet("r", 6, heartbeat(50));
    net.rescan(&mut r);
    assert_eq!(r.balances(0), want);
    let mut ca: Vec<_> = coin_list(&a);
    let mut cr: Vec<_> = coin_list(&r);
    ca.sort_by_key(|c| c.0);
    cr.sort_by_key(|c| c.0);
    assert_eq!(ca, cr);
    assert_eq!(r.address_at(KeyChain::Receive, 7), a.address_at(KeyChain::Receive, 7));
    assert!(r.next_indices()[0] >= 8);
}

#[test]
fn encrypted_backup_round_trip_with_default_argon2() {
    let mut net = Net::new();
    let mut a = net.wallet("a", 7, heartbeat(50));
    let pay = spk_of(&mut a);
    net.mine(Vec::new(), pay, &mut [&mut a]);
    let bak = net.file("a.bak");
    a.backup(&bak, "backup pass", BackupParams::DEFAULT).expect("backup");
    let wrong = Wallet::restore_backup(&bak, "nope", &net.file("x"), None);
    assert!(matches!(wrong, Err(WalletError::WrongPassphrase)));
    assert!(!net.file("x").exists());
    let mut r = Wallet::restore_backup(&bak, "backup pass", &net.file("r"), None).expect("restore");
    assert_eq!(r.policy(), a.policy());
    assert_eq!(r.address_at(KeyChain::Receive, 0), a.address_at(KeyChain::Receive, 0));
    assert_eq!(*r.mnemonic().expect("words").phrase(), *words(7).phrase());
    net.rescan(&mut r);
    assert_eq!(r.balances(0), a.balances(0));
    // A damaged backup is the same clear error; a non-backup is a structural error.
    let mut bytes = std::fs::read(&bak).expect("read");
    let n = bytes.len();
    bytes[n - 40] ^= 1;
    std::fs::write(&bak, &bytes).expect("write");
    assert!(matches!(
        Wallet::restore_backup(&bak, "backup pass", &net.file("y"), None),
        Err(WalletError::WrongPassphrase)
    ));
    std::fs::write(&bak, b"hello").expect("write");
    assert!(Wallet::restore_backup(&bak, "backup pass", &net.file("z"), None).is_err());
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_secrets(path: &Path, m: &Mnemonic, bip39: &str, indices: u32) {
    let bytes = std::fs::read(path).expect("read wallet");
    let seed = m.to_seed(bip39);
    assert!(!contains(&bytes, m.phrase().as_bytes()), "phrase in file");
    let first_words: Vec<&str> = m.words().take(4).collect();
    assert!(!contains(&bytes, first_words.join(" ").as_bytes()), "words in file");
    assert!(!contains(&bytes, seed.as_bytes()), "seed in file");
    assert!(!contains(&bytes, m.to_entropy().as_slice()), "entropy in file");
    assert!(!contains(&bytes, hex::encode(m.to_entropy().as_slice()).as_bytes()));
    let master = ExtendedSecretKey::from_seed(&seed);
    for chain in [KeyChain::Receive, KeyChain::Change, KeyChain::Guardian] {
        for i in 0..indices {
            let k: SigningKey = master
                .derive_path(&key_path(Network::Regtest, 0, chain, i).expect("path"))
                .signing_key();
            assert!(!contains(&bytes, k.as_bytes()), "private key in file");
            assert!(!contains(&bytes, hex::encode(k.as_bytes()).as_bytes()));
        }
    }
}

#[test]
fn encryption_at_rest_lock_unlock_and_passphrase_change() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("enc");
    let m = words(8);
    let enc = Encryption::new("correct horse").with_params(SMALL);
    let mut w = Wallet::create(&path, Network::Regtest, &m, "extra", heartbeat(10), Some(enc))
        .expect("create");
    let addr0 = w.new_address().expect("addr");
    w.lock();
    assert!(w.is_locked());
    assert!(matches!(w.mnemonic(), Err(WalletError::Locked)));
    drop(w);
    assert_no_secrets(&path, &m, "extra", 45);

    let mut w = Wallet::open(&path).expect("open");
    assert!(w.is_locked() && w.is_encrypted());
    assert!(matches!(w.unlock("wrong", Duration::MAX), Err(WalletError::WrongPassphrase)));
    // Pool keys still give addresses while locked.
    assert_eq!(w.address_at(KeyChain::Receive, 0), Some(addr0));
    w.unlock("correct horse", Duration::from_millis(30)).expect("unlock");
    assert!(!w.is_locked());
    std::thread::sleep(Duration::from_millis(60));
    assert!(w.is_locked(), "unlock timed out");
    w.change_passphrase("correct horse", Encryption::new("battery staple").with_params(SMALL))
        .expect("change");
    assert!(matches!(w.unlock("correct horse", Duration::MAX), Err(WalletError::WrongPassphrase)));
    w.unlock("battery staple", Duration::MAX).expect("new passphrase");
    assert_eq!(*w.mnemonic().expect("words").phrase(), *m.phrase());
    drop(w);
    assert_no_secrets(&path, &m, "extra", 45);

    // A plain wallet encrypted later keeps no plaintext secret in its file.
    let plain = dir.path().join("plain");
    let mut p =
        Wallet::create(&plain, Network::Regtest, &m, "", heartbeat(10), None).expect("create");
    assert!(contains(&std::fs::read(&plain).expect("read"), m.to_entropy().as_slice()));
    // Owner-only, before and after the rewrite that encryption does.
    #[cfg(unix)]
    let mode = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    };
    #[cfg(unix)]
    assert_eq!(mode(&plain), 0o600);
    p.encrypt(Encryption::new("pw").with_params(SMALL)).expect("encrypt");
    #[cfg(unix)]
    assert_eq!(mode(&plain), 0o600);
    assert!(matches!(p.encrypt(Encryption::new("pw")), Err(WalletError::AlreadyEncrypted)));
    drop(p);
    assert_no_secrets(&plain, &m, "", 45);
    assert!(Wallet::open(&plain).expect("open").is_locked());
    assert!(matches!(
        Wallet::create(&plain, Network::Regtest, &m, "", heartbeat(10), None),
        Err(WalletError::AlreadyExists(_))
    ));
}

#[test]
fn bad_policies_are_rejected() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = PolicyConfig::Social {
        guardians: vec![],
        threshold: 1,
        cancel_window: RelativeLock::Blocks(3),
    };
    assert!(matches!(
        Wallet::create(&dir.path().join("w"), Network::Regtest, &words(1), "", bad, None),
        Err(WalletError::Policy(_))
    ));
    assert!(parse_lock("0").is_err());
    assert_eq!(parse_lock("1024s").expect("time"), RelativeLock::Time(2));
    assert!(PolicyConfig::heartbeat("zz", RelativeLock::Blocks(1)).is_err());
    // Small-order keys (anyone can sign for them under ZIP-215) as recovery key or guardian.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for weak in [[0u8; 32], identity] {
        let weak = rnet_crypto::PublicKey::from_bytes(&weak).expect("a curve point");
        let policies = [
            PolicyConfig::Heartbeat { recovery: weak, interval: RelativeLock::Blocks(10) },
            PolicyConfig::Social {
                guardians: vec![test_key(5).public_key(), weak],
                threshold: 1,
                cancel_window: RelativeLock::Blocks(3),
            },
        ];
        for (i, policy) in policies.into_iter().enumerate() {
            let path = dir.path().join(format!("weak-{i}-{}", weak.as_bytes()[0]));
            assert!(matches!(
                Wallet::create(&path, Network::Regtest, &words(1), "", policy, None),
                Err(WalletError::Policy(_))
            ));
        }
    }
}

/// Keys derive under coin type 9555 on mainnet and 1 (BIP44's "testnet, all coins") on testnet
/// and regtest, so a test wallet never holds a mainnet key.
#[test]
fn coin_type_is_per_network() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = words(3);
    let master = ExtendedSecretKey::from_seed(&m.to_seed(""));
    let at = |path: &str| master.derive_path(&path.parse().expect("path")).signing_key();
    let mut guardians = Vec::new();
    for (network, coin) in [(Network::Mainnet, 9555), (Network::Testnet, 1), (Network::Regtest, 1)]
    {
        let path = dir.path().join(network.name());
        let w = Wallet::create(&path, network, &m, "", heartbeat(10), None).expect("create");
        let g = at(&format!("m/44'/{coin}'/0'/2'/0'"));
        assert_eq!(w.guardian_public_key(), g.public_key(), "{network}");
        let k = at(&format!("m/44'/{coin}'/0'/0'/3'"));
        assert_eq!(w.signing_key(KeyChain::Receive, 3).expect("key").as_bytes(), k.as_bytes());
        let template = w.template_at(KeyChain::Receive, 3).expect("derived");
        assert_eq!(*template, heartbeat(10).template(k.public_key()).expect("template"));
        guardians.push(w.guardian_public_key());
    }
    assert_ne!(guardians[0], guardians[1]);
    assert_eq!(guardians[1], guardians[2]);
}

/// The wallet signs for its network's genesis unless told to follow other parameters of the
/// same network (a custom regtest genesis).
#[test]
fn chain_params_choose_the_genesis_signatures_commit_to() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut w =
        Wallet::create(&dir.path().join("w"), Network::Regtest, &words(4), "", heartbeat(10), None)
            .expect("create");
    assert_eq!(w.genesis_hash(), regtest_genesis());
    let custom = ChainParams { genesis_time: 1_700_000_001, ..ChainParams::regtest() };
    w.set_chain_params(custom.clone()).expect("same network");
    assert_eq!(w.genesis_hash(), custom.genesis_hash());
    assert_ne!(w.genesis_hash(), regtest_genesis());
    assert_eq!(w.chain_params(), &custom);
    assert!(matches!(
        w.set_chain_params(ChainParams::testnet()),
        Err(WalletError::WrongNetwork { expected: Network::Regtest, found: Network::Testnet })
    ));
}
