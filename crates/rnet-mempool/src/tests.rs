//! Tests over real regtest blocks, coins and signatures (`rnet-testkit`).

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[coin.clone()]` reads better in tests.

use std::collections::HashMap;

use proptest::prelude::*;
use rnet_consensus::{ChainParams, Coin, HeaderChain, TxError, median_time_past};
use rnet_crypto::SigningKey;
use rnet_primitives::{Amount, Block, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
use rnet_script::{ScriptError, TxScriptError};
use rnet_testkit::{
    MemoryChain, TestMiner, plain_spk, sign_plain, spend_plain, spend_plain_on, test_key,
    unsigned_tx,
};

use crate::*;

struct Fx {
    chain: MemoryChain,
    miner: TestMiner,
    key: SigningKey,
    spk: Vec<u8>,
    pool: Mempool,
}

impl Fx {
    /// A regtest chain of `blocks` blocks paying `test_key(1)` and an empty pool.
    fn new(blocks: u32) -> Self {
        Self::with_policy(blocks, MempoolPolicy::default())
    }

    fn with_policy(blocks: u32, policy: MempoolPolicy) -> Self {
        let params = ChainParams::regtest();
        let miner = TestMiner::new(params.clone());
        let mut chain = MemoryChain::new(params.clone());
        let key = test_key(1);
        let spk = plain_spk(&key);
        chain.mine_empty(&miner, blocks, &spk).expect("mine");
        Self { chain, miner, key, spk, pool: Mempool::new(params, policy) }
    }

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

    /// Coins of the key spendable in the next block, oldest first.
    fn coins(&self) -> Vec<(OutPoint, TxOut)> {
        let next = self.chain.height() + 1;
        let maturity = self.chain.params().coinbase_maturity;
        self.chain
            .coins_paying(&self.spk)
            .into_iter()
            .filter(|(_, c)| !c.is_coinbase || next - c.height >= maturity)
            .map(|(o, c)| (o, c.output))
            .collect()
    }

    fn coinbase_at(&self, height: u32) -> (OutPoint, TxOut) {
        self.chain
            .coins_paying(&self.spk)
            .into_iter()
            .find(|(_, c)| c.is_coinbase && c.height == height)
            .map(|(o, c)| (o, c.output))
            .expect("coinbase")
    }

    fn accept(&mut self, tx: &Transaction) -> Result<AcceptResult, MempoolError> {
        let (tip, now) = (self.tip(), self.now());
        let result = self.pool.accept(tx.clone(), &self.chain, &tip, now);
        self.pool.assert_consistent();
        result
    }

    fn test_accept(&self, tx: &Transaction) -> Result<AcceptResult, MempoolError> {
        self.pool.test_accept(tx, &self.chain, &self.tip(), self.now())
    }

    /// Mines `txs` into the next block and tells the pool.
    fn mine(&mut self, txs: Vec<Transaction>) -> Block {
        let (mined, _) = self.chain.mine(&self.miner, txs, self.spk.clone()).expect("mine");
        let tip = self.tip();
        self.pool.block_connected(&mined.block, &self.chain, &tip);
        self.pool.assert_consistent();
        mined.block
    }

    /// Confirms a transaction splitting the oldest mature coin into `n` coins of 1 RNT.
    fn split(&mut self, n: usize) -> Vec<(OutPoint, TxOut)> {
        let coin = self.coins()[0].clone();
        let out = TxOut { value: Amount(100_000_000), script_pubkey: self.spk.clone() };
        let mut outputs = vec![out.clone(); n];
        let total = 100_000_000 * n as u64;
        outputs.push(TxOut {
            value: Amount(coin.1.value.0 - total - 100_000),
            script_pubkey: self.spk.clone(),
        });
        let tx = spend_plain(&self.key, &[coin], outputs);
        let txid = tx.txid();
        self.mine(vec![tx]);
        (0..n).map(|i| (OutPoint::new(txid, i as u32), out.clone())).collect()
    }

    /// Spends `inputs` into one output to the key, paying `fee`.
    fn pay(&self, inputs: &[(OutPoint, TxOut)], fee: u64) -> Transaction {
        let total: u64 = inputs.iter().map(|(_, o)| o.value.0).sum();
        let out = TxOut { value: Amount(total - fee), script_pubkey: self.spk.clone() };
        spend_plain(&self.key, inputs, vec![out])
    }
}

/// Output `vout` of `tx` as a spendable input.
fn output(tx: &Transaction, vout: u32) -> (OutPoint, TxOut) {
    (OutPoint::new(tx.txid(), vout), tx.outputs[vout as usize].clone())
}

#[test]
fn mature_coinbase_spend_enters_pool_and_next_block() {
    let mut fx = Fx::new(6);
    let coin = fx.coinbase_at(1);
    let tx = fx.pay(&[coin.clone()], 10_000);
    let res = fx.accept(&tx).expect("accepted");
    assert_eq!(res.txid, tx.txid());
    assert_eq!(res.fee, Amount(10_000));
    assert!(res.replaced.is_empty());
    assert!(fx.pool.contains(&tx.txid()));
    assert_eq!(fx.pool.txids(), vec![tx.txid()]);
    let info = fx.pool.info();
    assert_eq!((info.size, info.bytes, info.total_fee), (1, tx.total_size(), Amount(10_000)));
    assert_eq!(info.mempool_min_fee, FeeRate(1000));
    let e = fx.pool.get(&tx.txid()).expect("entry");
    assert_eq!((e.ancestor_count, e.descendant_count, e.height), (1, 1, 6));
    assert_eq!(e.fee_rate(), FeeRate::from_fee(Amount(10_000), tx.total_size()));

    // The overlay: the coin is spent, the new output is an unconfirmed coin.
    let tip = fx.tip();
    let view = fx.pool.view(&fx.chain, tip);
    use rnet_consensus::UtxoView;
    assert!(view.coin(&coin.0).is_none());
    let new = view.coin(&OutPoint::new(tx.txid(), 0)).expect("unconfirmed coin");
    assert_eq!((new.height, new.is_coinbase), (7, false));

    // Again: already in the pool.
    assert_eq!(fx.accept(&tx), Err(MempoolError::AlreadyInMempool(tx.txid())));

    let selected = fx.pool.select_for_block(1_000_000);
    assert_eq!(selected, vec![tx.clone()]);
    fx.mine(selected);
    assert!(fx.pool.is_empty());
    assert_eq!(fx.pool.total_bytes(), 0);
    assert!(fx.chain.utxo_set().contains_key(&OutPoint::new(tx.txid(), 0)));
    // Confirmed now.
    assert_eq!(fx.accept(&tx), Err(MempoolError::AlreadyConfirmed(tx.txid())));
}

#[test]
fn immature_coinbase_rejected_at_the_boundary() {
    let mut fx = Fx::new(6);
    // Next block is 7; maturity 5: a coinbase of height 3 is 4 blocks old, of height 2 is 5.
    let young = fx.coinbase_at(3);
    let tx = fx.pay(&[young], 10_000);
    assert!(matches!(
        fx.accept(&tx),
        Err(MempoolError::Invalid(TxError::ImmatureCoinbase { coin_height: 3, height: 7, .. }))
    ));
    let newest = fx.pay(&[fx.coinbase_at(6)], 10_000);
    assert!(matches!(
        fx.accept(&newest),
        Err(MempoolError::Invalid(TxError::ImmatureCoinbase { .. }))
    ));
    let ok = fx.pay(&[fx.coinbase_at(2)], 10_000);
    fx.accept(&ok).expect("mature at exactly 5 blocks");
    assert_eq!(fx.pool.len(), 1);
}

#[test]
fn orphan_waits_for_its_parent() {
    let mut fx = Fx::new(6);
    let parent = fx.pay(&[fx.coinbase_at(1)], 10_000);
    let child = fx.pay(&[output(&parent, 0)], 10_000);
    let grandchild = fx.pay(&[output(&child, 0)], 10_000);
    let err = fx.accept(&child).unwrap_err();
    assert_eq!(err, MempoolError::MissingInputs { missing: vec![OutPoint::new(parent.txid(), 0)] });
    assert!(err.is_missing_inputs());
    assert!(fx.accept(&grandchild).unwrap_err().is_missing_inputs());
    assert_eq!(fx.pool.orphan_count(), 2);
    assert!(fx.pool.contains_orphan(&child.txid()));
    assert!(fx.pool.is_empty());

    let res = fx.accept(&parent).expect("parent");
    assert_eq!(res.accepted_orphans, vec![child.txid(), grandchild.txid()]);
    assert_eq!(fx.pool.len(), 3);
    assert_eq!(fx.pool.orphan_count(), 0);
    let c = fx.pool.get(&grandchild.txid()).unwrap();
    assert_eq!((c.ancestor_count, c.ancestor_fees), (3, Amount(30_000)));
    let p = fx.pool.get(&parent.txid()).unwrap();
    assert_eq!((p.descendant_count, p.descendant_fees), (3, Amount(30_000)));
    assert_eq!(fx.pool.children(&parent.txid()), vec![child.txid()]);
    assert_eq!(fx.pool.parents(&child.txid()), vec![parent.txid()]);
}

#[test]
fn orphan_pool_is_bounded_and_expires() {
    let policy = MempoolPolicy { max_orphans: 3, ..MempoolPolicy::default() };
    let mut fx = Fx::with_policy(1, policy);
    let coin = (
        OutPoint::new(Txid([7; 32]), 0),
        TxOut { value: Amount(100_000_000), script_pubkey: fx.spk.clone() },
    );
    let orphans: Vec<Transaction> = (0..5).map(|i| fx.pay(&[coin.clone()], 1000 + i)).collect();
    for o in &orphans {
        assert!(fx.accept(o).unwrap_err().is_missing_inputs());
    }
    // Oldest evicted first.
    assert_eq!(fx.pool.orphan_count(), 3);
    assert!(!fx.pool.contains_orphan(&orphans[0].txid()));
    assert!(fx.pool.contains_orphan(&orphans[4].txid()));
    // Expiry: 20 minutes later any accept call drops them.
    let (tip, later) = (fx.tip(), fx.now() + 1201);
    let other = fx.pay(&[(OutPoint::new(Txid([8; 32]), 0), coin.1.clone())], 1000);
    assert!(fx.pool.accept(other, &fx.chain, &tip, later).unwrap_err().is_missing_inputs());
    assert_eq!(fx.pool.orphan_count(), 1);
}

#[test]
fn double_spend_needs_to_pay_more() {
    let mut fx = Fx::new(6);
    let coin = fx.coinbase_at(1);
    let first = fx.pay(&[coin.clone()], 10_000);
    fx.accept(&first).unwrap();
    // Same fee, different recipient: rejected.
    let other =
        TxOut { value: Amount(coin.1.value.0 - 10_000), script_pubkey: plain_spk(&test_key(2)) };
    let same_fee = spend_plain(&fx.key, &[coin.clone()], vec![other]);
    assert!(matches!(
        fx.accept(&same_fee),
        Err(MempoolError::ReplacementFeeRateTooLow { conflict }) if conflict == first.txid()
    ));
    assert!(fx.pool.contains(&first.txid()));

    // Without full RBF a non-signalling transaction cannot be replaced at all.
    let mut strict = Mempool::new(
        ChainParams::regtest(),
        MempoolPolicy { full_rbf: false, ..Default::default() },
    );
    let (tip, now) = (fx.tip(), fx.now());
    strict.accept(first.clone(), &fx.chain, &tip, now).unwrap();
    let richer = fx.pay(&[coin], 1_000_000);
    assert_eq!(
        strict.accept(richer, &fx.chain, &tip, now),
        Err(MempoolError::ConflictNotReplaceable { conflict: first.txid() })
    );
}

#[test]
fn replacement_with_higher_fee_evicts_conflict_and_descendants() {
    let mut fx = Fx::new(6);
    let coin = fx.coinbase_at(1);
    let first = fx.pay(&[coin.clone()], 10_000);
    let child = fx.pay(&[output(&first, 0)], 10_000);
    fx.accept(&first).unwrap();
    fx.accept(&child).unwrap();
    let replacement = fx.pay(&[coin], 100_000);
    let probe = fx.test_accept(&replacement).unwrap();
    assert_eq!(probe.replaced.len(), 2);
    assert_eq!(fx.pool.len(), 2);
    let res = fx.accept(&replacement).unwrap();
    let mut expected = vec![first.txid(), child.txid()];
    expected.sort();
    assert_eq!(res.replaced, expected);
    assert_eq!(fx.pool.txids(), vec![replacement.txid()]);
    assert_eq!(fx.pool.total_fees(), Amount(100_000));
    assert_eq!(fx.pool.total_bytes(), replacement.total_size());
}

#[test]
fn replacement_paying_too_little_is_rejected() {
    let mut fx = Fx::new(6);
    let coin = fx.coinbase_at(1);
    let first = fx.pay(&[coin.clone()], 10_000);
    let child = fx.pay(&[output(&first, 0)], 10_000);
    fx.accept(&first).unwrap();
    fx.accept(&child).unwrap();
    // Higher rate than `first`, but not more than first + child + relay of itself.
    let cheap = fx.pay(&[coin.clone()], 15_000);
    assert!(matches!(fx.accept(&cheap), Err(MempoolError::ReplacementFeeTooLow { .. })));
    // Exactly the evicted fees plus relay of its own size is enough.
    let size = cheap.total_size() as u64;
    let enough = fx.pay(&[coin.clone()], 20_000 + size);
    assert_eq!(enough.total_size() as u64, size);
    let short = fx.pay(&[coin], 20_000 + size - 1);
    assert!(matches!(fx.test_accept(&short), Err(MempoolError::ReplacementFeeTooLow { .. })));
    fx.accept(&enough).unwrap();
    // The replacement cannot spend what it replaces.
    assert!(!fx.pool.contains(&child.txid()));
}

#[test]
fn fee_below_min_relay_rejected() {
    let mut fx = Fx::new(6);
    let coin = fx.coinbase_at(1);
    let free = fx.pay(&[coin.clone()], 0);
    let size = free.total_size();
    assert_eq!(
        fx.accept(&free),
        Err(MempoolError::FeeTooLow { fee: Amount(0), required: Amount(size as u64) })
    );
    let low = fx.pay(&[coin.clone()], size as u64 - 1);
    assert!(matches!(fx.accept(&low), Err(MempoolError::FeeTooLow { .. })));
    let exact = fx.pay(&[coin], size as u64);
    fx.accept(&exact).unwrap();
}

#[test]
fn bad_signature_rejected() {
    let mut fx = Fx::new(6);
    let coin = fx.coinbase_at(1);
    let out = TxOut { value: Amount(coin.1.value.0 - 10_000), script_pubkey: fx.spk.clone() };
    let wrong_key = spend_plain(&test_key(9), &[coin.clone()], vec![out]);
    assert!(matches!(fx.accept(&wrong_key), Err(MempoolError::Script(_))));
    let mut tampered = fx.pay(&[coin], 10_000);
    tampered.inputs[0].witness.0[0][5] ^= 1;
    assert!(matches!(fx.accept(&tampered), Err(MempoolError::Script(_))));
    assert!(fx.pool.is_empty());
    assert_eq!(fx.pool.orphan_count(), 0);
}

/// A spend signed for another network (its signature commits to that network's genesis id)
/// is rejected by the regtest pool even though the coin is regtest's; signed for regtest, the
/// same spend is accepted.
#[test]
fn spend_signed_for_another_network_rejected() {
    let mut fx = Fx::new(6);
    let coin = fx.coinbase_at(1);
    let out = TxOut { value: Amount(coin.1.value.0 - 10_000), script_pubkey: fx.spk.clone() };
    for other in [ChainParams::testnet(), ChainParams::mainnet()] {
        let genesis = other.genesis_hash();
        let replay = spend_plain_on(&genesis, &fx.key, &[coin.clone()], vec![out.clone()]);
        assert_eq!(
            fx.accept(&replay),
            Err(MempoolError::Script(TxScriptError {
                input: Some(0),
                error: ScriptError::SigCheckFailed
            }))
        );
    }
    assert!(fx.pool.is_empty());
    let native = spend_plain_on(&fx.pool.params().genesis_hash(), &fx.key, &[coin], vec![out]);
    fx.accept(&native).expect("signed for regtest");
}

#[test]
fn non_final_and_non_standard_rejected() {
    let mut fx = Fx::new(6);
    let coin = fx.coinbase_at(1);
    let out = TxOut { value: Amount(coin.1.value.0 - 10_000), script_pubkey: fx.spk.clone() };
    // Lock time at the next height is not final (must be below it).
    let mut locked = unsigned_tx(2, &[(coin.0, 0)], vec![out.clone()], 7);
    sign_plain(&mut locked, &[coin.1.clone()], &fx.key);
    assert_eq!(fx.accept(&locked), Err(MempoolError::Invalid(TxError::NonFinal { lock_time: 7 })));
    let mut unlocked = unsigned_tx(2, &[(coin.0, 0)], vec![out.clone()], 6);
    sign_plain(&mut unlocked, &[coin.1.clone()], &fx.key);
    fx.test_accept(&unlocked).expect("final at 7");

    let upgradable = TxOut { value: Amount(100_000), script_pubkey: vec![0x52, 0x02, 0xaa, 0xbb] };
    let tx = spend_plain(&fx.key, &[coin.clone()], vec![out.clone(), upgradable]);
    assert_eq!(fx.accept(&tx), Err(NonStandard::OutputScript { output: 1 }.into()));
    let dust = TxOut { value: Amount(452), script_pubkey: fx.spk.clone() };
    let tx = spend_plain(&fx.key, &[coin.clone()], vec![dust]);
    assert!(matches!(fx.accept(&tx), Err(MempoolError::NonStandard(NonStandard::Dust { .. }))));
    let mut v3 = unsigned_tx(3, &[(coin.0, u32::MAX)], vec![out], 0);
    sign_plain(&mut v3, &[coin.1], &fx.key);
    assert_eq!(fx.accept(&v3), Err(NonStandard::Version(3).into()));
}

#[test]
fn ancestor_limit() {
    let mut fx = Fx::new(6);
    let mut prev = fx.coinbase_at(1);
    let mut chain = Vec::new();
    for _ in 0..26 {
        let tx = fx.pay(&[prev], 1000);
        prev = output(&tx, 0);
        chain.push(tx);
    }
    for tx in &chain[..25] {
        fx.accept(tx).unwrap();
    }
    assert_eq!(fx.pool.get(&chain[24].txid()).unwrap().ancestor_count, 25);
    assert_eq!(fx.pool.get(&chain[0].txid()).unwrap().descendant_count, 25);
    assert_eq!(fx.accept(&chain[25]), Err(MempoolError::TooManyAncestors { count: 26, max: 25 }));
    // Removing the root removes its descendants.
    fx.pool.remove(&chain[24].txid());
    fx.pool.assert_consistent();
    assert_eq!(fx.pool.get(&chain[0].txid()).unwrap().descendant_count, 24);
    fx.pool.remove(&chain[0].txid());
    assert!(fx.pool.is_empty());
    assert_eq!((fx.pool.total_bytes(), fx.pool.total_fees()), (0, Amount(0)));
}

#[test]
fn descendant_limit() {
    let policy = MempoolPolicy { max_descendants: 3, ..MempoolPolicy::default() };
    let mut fx = Fx::with_policy(6, policy);
    let coin = fx.coinbase_at(1);
    let half = coin.1.value.0 / 4;
    let outs = vec![TxOut { value: Amount(half), script_pubkey: fx.spk.clone() }; 3];
    let root = spend_plain(&fx.key, &[coin], outs);
    fx.accept(&root).unwrap();
    fx.accept(&fx.pay(&[output(&root, 0)], 1000)).unwrap();
    fx.accept(&fx.pay(&[output(&root, 1)], 1000)).unwrap();
    let third = fx.pay(&[output(&root, 2)], 1000);
    assert!(matches!(
        fx.accept(&third),
        Err(MempoolError::TooManyDescendants { count: 4, max: 3, .. })
    ));
}

#[test]
fn size_limit_evicts_lowest_fee_rate_and_raises_min_fee() {
    let mut fx = Fx::new(6);
    let coins = fx.split(8);
    let probe = fx.pay(&[coins[0].clone()], 1000);
    let size = probe.total_size();
    // The limit counts memory use, the same for each of these one-in one-out spends.
    let usage = crate::pool::entry_usage(&probe, 0);
    assert!(usage > size);
    fx.pool = Mempool::new(
        ChainParams::regtest(),
        MempoolPolicy { max_size_bytes: 3 * usage + usage / 2, ..MempoolPolicy::default() },
    );
    let t1 = fx.pay(&[coins[0].clone()], 2000);
    let t2 = fx.pay(&[coins[1].clone()], 3000);
    let t3 = fx.pay(&[coins[2].clone()], 4000);
    for t in [&t1, &t2, &t3] {
        fx.accept(t).unwrap();
    }
    assert_eq!(fx.pool.info().mempool_min_fee, FeeRate(1000));
    let t4 = fx.pay(&[coins[3].clone()], 5000);
    fx.accept(&t4).unwrap();
    assert!(!fx.pool.contains(&t1.txid()));
    assert_eq!(fx.pool.len(), 3);
    assert!(fx.pool.usage() <= fx.pool.policy().max_size_bytes);
    assert_eq!(fx.pool.usage(), 3 * usage);
    let raised = FeeRate::from_fee(Amount(2000), size).saturating_add(FeeRate(1000));
    assert_eq!(fx.pool.info().mempool_min_fee, raised);
    // Below the raised minimum.
    let low = fx.pay(&[coins[4].clone()], 1500);
    assert!(matches!(fx.accept(&low), Err(MempoolError::MempoolMinFeeNotMet { .. })));
    // Above the minimum but the cheapest package: accepted, then evicted itself.
    let cheapest = fx.pay(&[coins[5].clone()], raised.fee_for(size).0 + 10);
    assert!(cheapest.total_size() == size);
    assert_eq!(fx.accept(&cheapest), Err(MempoolError::MempoolFull));
    assert!(!fx.pool.contains(&cheapest.txid()));
    // The minimum decays: after 12 hours it halves.
    assert!(fx.pool.min_fee_rate(fx.now() + 12 * 3600) < raised);
}

#[test]
fn block_connected_removes_confirmed_and_conflicting() {
    let mut fx = Fx::new(6);
    let coins = fx.split(3);
    let a = fx.pay(&[coins[0].clone()], 10_000);
    let a_child = fx.pay(&[output(&a, 0)], 20_000);
    let b = fx.pay(&[coins[1].clone()], 10_000);
    let other =
        TxOut { value: Amount(coins[1].1.value.0 - 5000), script_pubkey: plain_spk(&test_key(3)) };
    let b_conflict = spend_plain(&fx.key, &[coins[1].clone()], vec![other]);
    let c = fx.pay(&[coins[2].clone()], 10_000);
    for t in [&a, &a_child, &b, &c] {
        fx.accept(t).unwrap();
    }
    assert_eq!(fx.pool.estimate_fee(1), None);
    fx.mine(vec![a.clone(), b_conflict]);
    assert!(!fx.pool.contains(&a.txid()));
    assert!(!fx.pool.contains(&b.txid()));
    assert!(fx.pool.contains(&c.txid()));
    let e = fx.pool.get(&a_child.txid()).expect("child stays");
    assert_eq!((e.ancestor_count, e.ancestor_size, e.ancestor_fees), (1, e.size, e.fee));
    assert_eq!(fx.pool.parents(&a_child.txid()), Vec::<Txid>::new());
    assert_eq!(fx.pool.len(), 2);
    assert_eq!(fx.pool.total_fees(), Amount(30_000));
    // `a` confirmed after one block: fee estimation has a sample.
    assert_eq!(fx.pool.estimate_fee(1), Some(FeeRate::from_fee(Amount(10_000), a.total_size())));
}

#[test]
fn block_disconnected_re_adds() {
    let mut fx = Fx::new(6);
    let a = fx.pay(&[fx.coinbase_at(1)], 10_000);
    fx.accept(&a).unwrap();
    fx.mine(vec![a.clone()]);
    assert!(fx.pool.is_empty());
    let child = fx.pay(&[output(&a, 0)], 10_000);
    fx.accept(&child).unwrap();
    assert_eq!(fx.pool.get(&child.txid()).unwrap().ancestor_count, 1);
    assert!(fx.pool.estimate_fee(1).is_some());

    let block = fx.chain.disconnect_tip().expect("tip");
    let tip = fx.tip();
    fx.pool.block_disconnected(&block, &fx.chain, &tip);
    fx.pool.assert_consistent();
    assert_eq!(fx.pool.txids(), vec![a.txid(), child.txid()]);
    assert_eq!(fx.pool.get(&child.txid()).unwrap().ancestor_count, 2);
    assert_eq!(fx.pool.get(&a.txid()).unwrap().descendant_count, 2);
    assert_eq!(fx.pool.estimate_fee(1), None);
    // Both can be mined again, parent first.
    assert_eq!(fx.pool.select_for_block(1_000_000), vec![a.clone(), child.clone()]);
    fx.mine(fx.pool.select_for_block(1_000_000));
    assert!(fx.pool.is_empty());
}

#[test]
fn block_disconnected_drops_spends_of_the_lost_coinbase() {
    let mut fx = Fx::new(6);
    // Coinbase of height 2 is mature for block 7; after disconnecting block 6 it is not (block 6).
    let tx = fx.pay(&[fx.coinbase_at(2)], 10_000);
    fx.accept(&tx).unwrap();
    let block = fx.chain.disconnect_tip().expect("tip");
    let tip = fx.tip();
    fx.pool.block_disconnected(&block, &fx.chain, &tip);
    fx.pool.assert_consistent();
    assert!(fx.pool.is_empty());
}

#[test]
fn block_assembly_keeps_within_the_signature_budget() {
    let mut fx = Fx::new(6);
    let coins = fx.split(3);
    let txs: Vec<Transaction> = coins.iter().map(|c| fx.pay(&[c.clone()], 10_000)).collect();
    for t in &txs {
        fx.accept(t).unwrap();
    }
    for t in &txs {
        assert_eq!(fx.pool.get(&t.txid()).unwrap().sig_checks, 1, "one key spend, one check");
    }
    assert_eq!(fx.pool.assemble(1_000_000).sig_checks, 3);
    // A chain whose blocks may check only two signatures: the third transaction waits.
    let mut params = fx.pool.params().clone();
    params.max_block_sig_checks = 2;
    let mut tight = Mempool::new(params, MempoolPolicy::default());
    let tip = fx.tip();
    let now = fx.now();
    for t in &txs {
        tight.accept(t.clone(), &fx.chain, &tip, now).unwrap();
    }
    let selection = tight.assemble(1_000_000);
    assert_eq!((selection.transactions.len(), selection.sig_checks), (2, 2));
}

#[test]
fn select_for_block_prefers_cpfp_package() {
    let mut fx = Fx::new(6);
    let coins = fx.split(2);
    let parent = fx.pay(&[coins[0].clone()], 200);
    let child = fx.pay(&[output(&parent, 0)], 50_000);
    let medium = fx.pay(&[coins[1].clone()], 10_000);
    for t in [&parent, &medium, &child] {
        fx.accept(t).unwrap();
    }
    let all = fx.pool.assemble(1_000_000);
    assert_eq!(all.transactions, vec![parent.clone(), child.clone(), medium.clone()]);
    assert_eq!(all.fees, Amount(60_200));
    assert_eq!(all.size, fx.pool.total_bytes());
    // Room for the package only.
    let room = parent.total_size() + child.total_size();
    assert_eq!(fx.pool.select_for_block(room), vec![parent.clone(), child.clone()]);
    // Room for one transaction: the package does not fit, the medium one does.
    assert_eq!(fx.pool.select_for_block(medium.total_size()), vec![medium.clone()]);
    assert!(fx.pool.select_for_block(10).is_empty());
    // A block mined from the selection is valid.
    fx.mine(fx.pool.select_for_block(1_000_000));
    assert!(fx.pool.is_empty());
}

#[test]
fn estimate_fee_from_confirmed_blocks() {
    let mut fx = Fx::new(6);
    assert_eq!(fx.pool.estimate_fee(1), None);
    let coins = fx.split(6);
    assert_eq!(fx.pool.estimate_fee(1), None, "the split never was in the pool");
    let mut rates = Vec::new();
    for (i, coin) in coins.iter().enumerate() {
        let tx = fx.pay(&[coin.clone()], 1000 * (i as u64 + 1));
        rates.push(FeeRate::from_fee(Amount(1000 * (i as u64 + 1)), tx.total_size()));
        fx.accept(&tx).unwrap();
        if i % 2 == 1 {
            fx.mine(fx.pool.select_for_block(1_000_000));
        }
    }
    assert!(fx.pool.is_empty());
    rates.sort();
    // Six samples, all within one block: the 75th percentile is the fifth.
    let estimate = fx.pool.estimate_fee(1).expect("data");
    assert_eq!(estimate, rates[4]);
    assert!(estimate >= fx.pool.policy().min_relay_fee_rate);
    assert_eq!(fx.pool.estimate_fee(25), Some(estimate));
}

#[test]
fn test_accept_changes_nothing() {
    let mut fx = Fx::new(6);
    let tx = fx.pay(&[fx.coinbase_at(1)], 10_000);
    let before = fx.pool.info();
    let res = fx.test_accept(&tx).unwrap();
    assert_eq!((res.txid, res.fee, res.size), (tx.txid(), Amount(10_000), tx.total_size()));
    assert_eq!(fx.pool.info(), before);
    assert!(fx.pool.is_empty());
    let orphan = fx.pay(&[output(&tx, 0)], 10_000);
    assert!(fx.test_accept(&orphan).unwrap_err().is_missing_inputs());
    assert_eq!(fx.pool.orphan_count(), 0);
    let accepted = fx.accept(&tx).unwrap();
    assert_eq!(accepted.txid, res.txid);
}

#[test]
fn coinbase_and_malformed_rejected() {
    let mut fx = Fx::new(1);
    let cb = fx.chain.block(1).unwrap().transactions[0].clone();
    assert_eq!(fx.accept(&cb), Err(MempoolError::Coinbase));
    let coin = (
        OutPoint::new(Txid([1; 32]), 0),
        TxOut { value: Amount(100_000), script_pubkey: fx.spk.clone() },
    );
    let mut dup = fx.pay(&[coin.clone()], 1000);
    dup.inputs.push(dup.inputs[0].clone());
    assert_eq!(fx.accept(&dup), Err(TxError::DuplicateInput { input: 1 }.into()));
    let mut no_outputs = fx.pay(&[coin], 1000);
    no_outputs.outputs.clear();
    assert_eq!(fx.accept(&no_outputs), Err(TxError::NoOutputs.into()));
}

fn arb_tx() -> impl Strategy<Value = Transaction> {
    let input =
        (any::<[u8; 32]>(), 0u32..4, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..70))
            .prop_map(|(txid, vout, sequence, sig)| TxIn {
                previous_output: OutPoint::new(Txid(txid), vout),
                script_sig: Vec::new(),
                sequence,
                witness: Witness(vec![sig]),
            });
    let spk = prop_oneof![
        Just(plain_spk(&test_key(1))),
        Just(vec![0x6a, 0x01, 0x00]),
        Just(vec![0x52, 0x02, 0xaa, 0xbb]),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    let output =
        (0u64..2_000_000, spk).prop_map(|(v, s)| TxOut { value: Amount(v), script_pubkey: s });
    (
        1u32..3,
        proptest::collection::vec(input, 1..4),
        proptest::collection::vec(output, 0..4),
        any::<u32>(),
    )
        .prop_map(|(version, inputs, outputs, lock_time)| Transaction {
            version,
            inputs,
            outputs,
            lock_time,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary transactions over a small fake UTXO set never panic, never break the pool's
    /// accounting, and never overfill the orphan pool.
    #[test]
    fn arbitrary_transactions_never_panic(txs in proptest::collection::vec(arb_tx(), 1..12)) {
        let params = ChainParams::regtest();
        let policy = MempoolPolicy { max_orphans: 4, ..MempoolPolicy::default() };
        let mut pool = Mempool::new(params, policy);
        let mut utxos: HashMap<OutPoint, Coin> = HashMap::new();
        for tx in &txs {
            for i in &tx.inputs {
                if i.previous_output.vout == 0 {
                    utxos.insert(i.previous_output, Coin {
                        output: TxOut { value: Amount(1_000_000), script_pubkey: plain_spk(&test_key(1)) },
                        height: 1,
                        creation_mtp: 0,
                        is_coinbase: false,
                        creation_loss_index: 10,
                    });
                }
            }
        }
        let tip = TipContext { height: 10, median_time_past: 1_700_000_000, tip_loss_index: 100 };
        for tx in txs {
            let _ = pool.test_accept(&tx, &utxos, &tip, 1_700_000_000);
            let _ = pool.accept(tx, &utxos, &tip, 1_700_000_000);
            prop_assert!(pool.orphan_count() <= 4);
            pool.assert_consistent();
        }
        let bytes: usize = pool.entries().map(|e| e.size).sum();
        prop_assert_eq!(bytes, pool.total_bytes());
        let _ = pool.select_for_block(1_000_000);
        let _ = pool.estimate_fee(3);
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Spend 1..=3 known outputs (possibly already spent: conflicts) into `outs` outputs.
    Spend { picks: Vec<proptest::sample::Index>, fee: u64, outs: u64 },
    /// Mine a block from the pool's selection with `room` bytes.
    Mine { room: usize },
    /// Mine a block holding only a transaction of someone else spending a chain coin.
    MineForeign(proptest::sample::Index),
    /// Remove a pooled transaction (and descendants).
    Remove(proptest::sample::Index),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::collection::vec(any::<proptest::sample::Index>(), 1..=3), 200u64..60_000, 1u64..=3)
            .prop_map(|(picks, fee, outs)| Op::Spend { picks, fee, outs }),
        1 => (0usize..2000).prop_map(|room| Op::Mine { room }),
        1 => any::<proptest::sample::Index>().prop_map(Op::MineForeign),
        1 => any::<proptest::sample::Index>().prop_map(Op::Remove),
    ]
}

/// Applies `txs` (in order) to `utxos` as a block at `height`; panics if one spends a missing coin.
fn apply_block(utxos: &mut HashMap<OutPoint, Coin>, txs: &[Transaction], height: u32) {
    for tx in txs {
        for i in &tx.inputs {
            assert!(
                utxos.remove(&i.previous_output).is_some(),
                "selected tx spends a missing coin"
            );
        }
        for (vout, out) in tx.outputs.iter().enumerate() {
            utxos.insert(
                OutPoint::new(tx.txid(), vout as u32),
                Coin {
                    output: out.clone(),
                    height,
                    creation_mtp: 0,
                    is_coinbase: false,
                    creation_loss_index: 10,
                },
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random spends (with conflicts, chains, replacements), blocks from the selection, foreign
    /// blocks and removals: the pool's links and statistics stay exact, it stays within its size,
    /// and every selection is a valid block body against the UTXO set.
    #[test]
    fn random_operations_keep_the_pool_consistent(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let key = test_key(1);
        let spk = plain_spk(&key);
        let coin_out = TxOut { value: Amount(10_000_000), script_pubkey: spk.clone() };
        let mut utxos: HashMap<OutPoint, Coin> = (1..=6u8)
            .map(|i| (OutPoint::new(Txid([i; 32]), 0), Coin {
                output: coin_out.clone(), height: 1, creation_mtp: 0, is_coinbase: false, creation_loss_index: 10,
            }))
            .collect();
        let mut known: Vec<(OutPoint, TxOut)> = utxos.iter().map(|(o, c)| (*o, c.output.clone())).collect();
        known.sort_by_key(|(o, _)| *o);
        let mut tip = TipContext { height: 10, median_time_past: 1_700_000_000, tip_loss_index: 100 };
        let policy = MempoolPolicy {
            max_size_bytes: 3000, max_ancestors: 5, max_descendants: 5, ..MempoolPolicy::default()
        };
        let mut pool = Mempool::new(ChainParams::regtest(), policy);
        let now = 1_700_000_000;
        for op in ops {
            match op {
                Op::Spend { picks, fee, outs } => {
                    let mut inputs: Vec<(OutPoint, TxOut)> = Vec::new();
                    for p in picks {
                        let c = known[p.index(known.len())].clone();
                        if !inputs.iter().any(|(o, _)| *o == c.0) {
                            inputs.push(c);
                        }
                    }
                    let total: u64 = inputs.iter().map(|(_, o)| o.value.0).sum();
                    if total <= fee + outs * 1000 {
                        continue;
                    }
                    let each = (total - fee) / outs;
                    let out = TxOut { value: Amount(each), script_pubkey: spk.clone() };
                    let tx = spend_plain(&key, &inputs, vec![out.clone(); outs as usize]);
                    for v in 0..outs {
                        known.push((OutPoint::new(tx.txid(), v as u32), out.clone()));
                    }
                    let probe = pool.test_accept(&tx, &utxos, &tip, now);
                    let result = pool.accept(tx, &utxos, &tip, now);
                    if let (Ok(a), Ok(b)) = (&probe, &result) {
                        prop_assert_eq!(&a.replaced, &b.replaced);
                    }
                }
                Op::Mine { room } => {
                    let selection = pool.assemble(room);
                    prop_assert!(selection.size <= room);
                    let fees: u64 = selection.txids.iter().map(|t| pool.get(t).unwrap().fee.0).sum();
                    prop_assert_eq!(selection.fees, Amount(fees));
                    tip.height += 1;
                    tip.median_time_past += 600;
                    apply_block(&mut utxos, &selection.transactions, tip.height);
                    let mut block = Block::default();
                    block.header.height = tip.height;
                    block.header.time = now;
                    block.transactions = std::iter::once(rnet_testkit::coinbase(pool.params(), tip.height, Amount(0), spk.clone()))
                        .chain(selection.transactions)
                        .collect();
                    pool.block_connected(&block, &utxos, &tip);
                    for t in &selection.txids {
                        prop_assert!(!pool.contains(t));
                    }
                }
                Op::MineForeign(i) => {
                    let mut coins: Vec<(OutPoint, Coin)> = utxos.iter().map(|(o, c)| (*o, c.clone())).collect();
                    if coins.is_empty() {
                        continue;
                    }
                    coins.sort_by_key(|(o, _)| *o);
                    let (op, coin) = coins[i.index(coins.len())].clone();
                    let out = TxOut { value: Amount(coin.output.value.0 - 1000), script_pubkey: plain_spk(&test_key(2)) };
                    let tx = spend_plain(&key, &[(op, coin.output)], vec![out]);
                    tip.height += 1;
                    apply_block(&mut utxos, std::slice::from_ref(&tx), tip.height);
                    let mut block = Block::default();
                    block.header.height = tip.height;
                    block.transactions = vec![rnet_testkit::coinbase(pool.params(), tip.height, Amount(0), spk.clone()), tx];
                    pool.block_connected(&block, &utxos, &tip);
                    prop_assert!(pool.spender(&op).is_none());
                }
                Op::Remove(i) => {
                    let ids = pool.txids();
                    if !ids.is_empty() {
                        let t = ids[i.index(ids.len())];
                        pool.remove(&t);
                        prop_assert!(!pool.contains(&t));
                    }
                }
            }
            pool.assert_consistent();
            prop_assert!(pool.total_bytes() <= 3000);
            // Every pooled transaction spends coins of the chain or of the pool.
            for e in pool.entries() {
                for i in &e.tx.inputs {
                    let op = i.previous_output;
                    prop_assert!(utxos.contains_key(&op) || pool.contains(&op.txid));
                }
            }
        }
    }
}

/// Issue 14 item 18: a transaction older than the expiry (default two weeks, Core's
/// `-mempoolexpiry`) is removed with its descendants on the next accept or block.
#[test]
fn old_transactions_expire_with_descendants() {
    let mut fx = Fx::new(6);
    let coins = fx.split(3);
    let (tip, t0) = (fx.tip(), fx.now());
    let old = fx.pay(&[coins[0].clone()], 10_000);
    let old_child = fx.pay(&[output(&old, 0)], 10_000);
    fx.pool.accept(old.clone(), &fx.chain, &tip, t0).unwrap();
    let two_weeks = 14 * 24 * 3600;
    // A day before the expiry the child arrives; the parent then expires first, taking it along.
    fx.pool.accept(old_child.clone(), &fx.chain, &tip, t0 + two_weeks - 86_400).unwrap();
    let young = fx.pay(&[coins[1].clone()], 10_000);
    fx.pool.accept(young.clone(), &fx.chain, &tip, t0 + two_weeks).unwrap();
    assert_eq!(fx.pool.len(), 3, "exactly two weeks old is not yet expired");
    let newer = fx.pay(&[coins[2].clone()], 10_000);
    fx.pool.accept(newer.clone(), &fx.chain, &tip, t0 + two_weeks + 1).unwrap();
    fx.pool.assert_consistent();
    assert!(!fx.pool.contains(&old.txid()));
    assert!(!fx.pool.contains(&old_child.txid()));
    assert!(fx.pool.contains(&young.txid()) && fx.pool.contains(&newer.txid()));

    // block_connected expires too (its clock is the block time at the latest).
    let policy = MempoolPolicy { mempool_expiry_secs: 60, ..MempoolPolicy::default() };
    let mut fx = Fx::with_policy(6, policy);
    let coin = fx.coinbase_at(1);
    let tx = fx.pay(&[coin], 10_000);
    let (tip, now) = (fx.tip(), fx.now());
    fx.pool.accept(tx.clone(), &fx.chain, &tip, now.saturating_sub(1_000)).unwrap();
    fx.mine(Vec::new());
    assert!(!fx.pool.contains(&tx.txid()));
}

/// Issue 14 item 19: orphans are keyed by wtxid, so a copy of a transaction with a bad witness
/// (same txid) does not shadow the honest one: when the parent arrives the honest copy enters.
#[test]
fn bad_witness_orphan_does_not_shadow_the_honest_one() {
    let mut fx = Fx::new(6);
    let parent = fx.pay(&[fx.coinbase_at(1)], 10_000);
    let honest = fx.pay(&[output(&parent, 0)], 10_000);
    let mut forged = honest.clone();
    forged.inputs[0].witness.0[0][10] ^= 1;
    assert_eq!(forged.txid(), honest.txid());
    assert_ne!(forged.wtxid(), honest.wtxid());
    assert!(fx.accept(&forged).unwrap_err().is_missing_inputs());
    assert!(fx.accept(&honest).unwrap_err().is_missing_inputs());
    assert_eq!(fx.pool.orphan_count(), 2);
    let res = fx.accept(&parent).expect("parent");
    assert_eq!(res.accepted_orphans, vec![honest.txid()]);
    assert_eq!(fx.pool.get(&honest.txid()).unwrap().wtxid, honest.wtxid());
    assert_eq!(fx.pool.orphan_count(), 0);
}

/// Issue 14 item 19: a block retries only the orphans spending outputs of its transactions, not
/// every orphan.
#[test]
fn block_retries_only_the_children_of_its_transactions() {
    let mut fx = Fx::new(6);
    let coins = fx.split(2);
    let parent = fx.pay(&[coins[0].clone()], 10_000);
    let child = fx.pay(&[output(&parent, 0)], 10_000);
    assert!(fx.accept(&child).unwrap_err().is_missing_inputs());
    let unrelated: Vec<Transaction> = (0..30u8)
        .map(|i| {
            let coin = (OutPoint::new(Txid([i + 1; 32]), 0), coins[1].1.clone());
            fx.pay(&[coin], 10_000)
        })
        .collect();
    for o in &unrelated {
        assert!(fx.accept(o).unwrap_err().is_missing_inputs());
    }
    assert_eq!(fx.pool.orphan_count(), 31);
    let before = fx.pool.orphan_retries;
    fx.mine(vec![parent.clone()]);
    assert_eq!(fx.pool.orphan_retries - before, 1, "only the parent's orphan is retried");
    assert!(fx.pool.contains(&child.txid()));
    assert_eq!(fx.pool.orphan_count(), 30);
}

/// A parentless, unsigned transaction spending the made-up outpoint `n` (for measurements that
/// insert without validating).
fn filler(n: u64, spk: &[u8]) -> Transaction {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id[31] = 0x55;
    Transaction {
        version: 2,
        inputs: vec![TxIn {
            previous_output: OutPoint::new(Txid(id), 0),
            script_sig: Vec::new(),
            sequence: 0xFFFF_FFFF,
            witness: Witness(vec![vec![1; 65]]),
        }],
        outputs: vec![TxOut { value: Amount(10_000), script_pubkey: spk.to_vec() }],
        lock_time: 0,
    }
}

/// Time of one insertion that evicts a package, in a full pool of `n` transactions: the mean
/// over `rounds` insertions, the best of five such batches (robust to a loaded machine).
fn evicting_insert_time(n: u64, rounds: u64) -> std::time::Duration {
    let spk = plain_spk(&test_key(1));
    let mut pool = Mempool::new(ChainParams::regtest(), MempoolPolicy::default());
    // Fee rates spread pseudo-randomly; the new ones pay more than any, so each insertion
    // evicts exactly one old package.
    for i in 0..n {
        let fee = 200 + (i.wrapping_mul(2_654_435_761) % 100_000);
        pool.insert_unvalidated(filler(i, &spk), Amount(fee), 1);
    }
    pool.cap_at_current_size();
    let mut best = std::time::Duration::MAX;
    for batch in 0..5 {
        let start = std::time::Instant::now();
        for i in batch * rounds..(batch + 1) * rounds {
            assert!(pool.insert_unvalidated(filler(n + i, &spk), Amount(1_000_000 + i), 1));
        }
        best = best.min(start.elapsed() / rounds as u32);
    }
    assert_eq!(pool.len() as u64, n);
    best
}

/// Issue 14 item 18: eviction takes the lowest package from an ordered index, O(log n), instead
/// of scanning the pool per evicted package. Prints the time per evicting insertion at 10k and
/// 100k entries (run with `--nocapture`); at 10× the entries it may not cost 10× the time.
#[test]
fn eviction_does_not_scan_the_pool() {
    let rounds = 60;
    let small = evicting_insert_time(10_000, rounds);
    let large = evicting_insert_time(100_000, rounds);
    println!("evicting insert: {small:?} at 10k entries, {large:?} at 100k entries");
    assert!(large < small * 4, "{large:?} at 100k vs {small:?} at 10k: eviction scales with n");
}

/// Issue 13 item 5 / 14 item 17: the expensive script check runs outside the locks through
/// `prepare` → `verify_scripts` → `accept_verified`, which inserts exactly as `accept` does.
#[test]
fn prepare_verify_accept_verified() {
    let mut fx = Fx::new(6);
    let coins = fx.split(3);
    let (tip, now) = (fx.tip(), fx.now());
    let tx = fx.pay(&[coins[0].clone()], 10_000);
    let pending = fx.pool.prepare(tx.clone(), &fx.chain, &tip, now).expect("cheap checks");
    assert_eq!(pending.spent_outputs(), &[coins[0].1.clone()]);
    assert!(fx.pool.is_empty(), "prepare changes nothing");
    let verified = pending.verify_scripts().expect("scripts");
    let res = fx.pool.accept_verified(verified, &fx.chain, &tip, now).expect("accepted");
    fx.pool.assert_consistent();
    assert_eq!((res.txid, res.fee), (tx.txid(), Amount(10_000)));
    assert!(fx.pool.contains(&tx.txid()));

    // A bad signature passes prepare and fails verify_scripts, naming the input.
    let mut bad = fx.pay(&[coins[1].clone()], 10_000);
    bad.inputs[0].witness.0[0][3] ^= 1;
    let pending = fx.pool.prepare(bad, &fx.chain, &tip, now).expect("cheap checks pass");
    let err = pending.verify_scripts().unwrap_err();
    assert_eq!(
        err,
        MempoolError::Script(TxScriptError { input: Some(0), error: ScriptError::SigCheckFailed })
    );
    assert!(err.is_invalid());

    // Spent outputs that differ from the ones verified: refused, nothing changes.
    let other = fx.pay(&[coins[1].clone()], 10_000);
    let mut verified =
        fx.pool.prepare(other, &fx.chain, &tip, now).unwrap().verify_scripts().unwrap();
    verified.spent[0].value = Amount(verified.spent[0].value.0 + 1);
    let txid = verified.txid();
    assert_eq!(
        fx.pool.accept_verified(verified, &fx.chain, &tip, now),
        Err(MempoolError::StaleVerification(txid))
    );
    assert_eq!(fx.pool.len(), 1);
}

/// `accept_verified` refuses a transaction whose input was spent after it was verified: by a
/// pooled transaction (a replacement that pays too little) or by a block (then missing).
#[test]
fn accept_verified_refuses_inputs_spent_in_between() {
    let mut fx = Fx::new(6);
    let coins = fx.split(2);
    let (tip, now) = (fx.tip(), fx.now());
    let late = fx.pay(&[coins[0].clone()], 10_000);
    let verified = fx.pool.prepare(late.clone(), &fx.chain, &tip, now).unwrap();
    let verified = verified.verify_scripts().unwrap();
    let first = fx.pay(&[coins[0].clone()], 20_000);
    fx.accept(&first).unwrap();
    assert_eq!(
        fx.pool.accept_verified(verified, &fx.chain, &tip, now),
        Err(MempoolError::ReplacementFeeRateTooLow { conflict: first.txid() })
    );
    assert!(fx.pool.contains(&first.txid()) && !fx.pool.contains(&late.txid()));

    let late = fx.pay(&[coins[1].clone()], 10_000);
    let verified = fx.pool.prepare(late.clone(), &fx.chain, &tip, now).unwrap();
    let verified = verified.verify_scripts().unwrap();
    let confirmed = fx.pay(&[coins[1].clone()], 30_000);
    fx.mine(vec![confirmed]);
    let (tip, now) = (fx.tip(), fx.now());
    let err = fx.pool.accept_verified(verified, &fx.chain, &tip, now).unwrap_err();
    assert!(err.is_missing_inputs() && !err.is_invalid());
    assert!(!fx.pool.contains(&late.txid()));
    fx.pool.assert_consistent();
}

/// `is_invalid`: true only when the transaction itself breaks a consensus or script rule.
#[test]
fn is_invalid_classifies_errors() {
    let mut fx = Fx::new(6);
    let coin = fx.coinbase_at(1);
    let op = coin.0;
    let script = |error| MempoolError::Script(TxScriptError { input: Some(0), error });
    let invalid = [
        MempoolError::Coinbase,
        MempoolError::Invalid(TxError::NoInputs),
        MempoolError::Invalid(TxError::InputValueOutOfRange),
        script(ScriptError::SigCheckFailed),
        script(ScriptError::EvalFalse),
    ];
    let not_invalid = [
        MempoolError::AlreadyInMempool(op.txid),
        MempoolError::AlreadyConfirmed(op.txid),
        MempoolError::MissingInputs { missing: vec![op] },
        MempoolError::Invalid(TxError::NonFinal { lock_time: 1 }),
        MempoolError::Invalid(TxError::Expired { input: 0, outpoint: op }),
        MempoolError::Invalid(TxError::ImmatureCoinbase { input: 0, coin_height: 1, height: 2 }),
        MempoolError::Invalid(TxError::SequenceLocked { input: 0 }),
        MempoolError::NonStandard(NonStandard::Version(3)),
        script(ScriptError::DiscourageUpgradableWitnessProgram),
        script(ScriptError::WeakPublicKey),
        MempoolError::FeeTooLow { fee: Amount(1), required: Amount(2) },
        MempoolError::ReplacementFeeRateTooLow { conflict: op.txid },
        MempoolError::TooManyAncestors { count: 26, max: 25 },
        MempoolError::MempoolFull,
        MempoolError::StaleVerification(op.txid),
    ];
    assert!(invalid.iter().all(MempoolError::is_invalid));
    assert!(!not_invalid.iter().any(MempoolError::is_invalid));

    // From real rejections: a bad signature is invalid, a low fee is not.
    let mut tampered = fx.pay(&[coin.clone()], 10_000);
    tampered.inputs[0].witness.0[0][5] ^= 1;
    assert!(fx.accept(&tampered).unwrap_err().is_invalid());
    assert!(!fx.accept(&fx.pay(&[coin], 10)).unwrap_err().is_invalid());
}

/// A spend of a coin the view reports as expired is `Invalid(Expired)`, not an orphan.
#[test]
fn spend_of_an_expired_coin_is_not_orphaned() {
    struct Expired(HashMap<OutPoint, Coin>, OutPoint);
    impl rnet_consensus::UtxoView for Expired {
        fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
            self.0.get(outpoint).cloned()
        }
        fn is_expired(&self, outpoint: &OutPoint) -> bool {
            *outpoint == self.1
        }
    }
    let mut fx = Fx::new(6);
    let coin = fx.coinbase_at(1);
    let mut utxos = fx.chain.utxo_set().clone();
    utxos.remove(&coin.0);
    let view = Expired(utxos, coin.0);
    let tx = fx.pay(&[coin.clone()], 10_000);
    let (tip, now) = (fx.tip(), fx.now());
    let err = fx.pool.accept(tx, &view, &tip, now).unwrap_err();
    assert_eq!(err, MempoolError::Invalid(TxError::Expired { input: 0, outpoint: coin.0 }));
    assert!(err.to_string().contains("expired"));
    assert_eq!(fx.pool.orphan_count(), 0);
}
