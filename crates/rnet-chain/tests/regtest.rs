//! The chainstate with the real consensus rules on regtest, fed real blocks mined by
//! `rnet_testkit::TestMiner` (each block is a few training steps of the regtest model).
//!
//! Branches are built on `rnet_testkit::MemoryChain`s (which validate every block themselves), then
//! fed to the chainstate; its UTXO set is compared with the memory chain's through an
//! independent implementation of the canonical UTXO set hash (`docs/chainstate.md` §6).

mod common;

use std::collections::HashMap;

use common::TempDir;
use rnet_chain::{
    AcceptOutcome, BlockStatus, ChainError, ChainOptions, ChainState, ConsensusRules,
};
use rnet_consensus::{BlockError, ChainParams, Coin};
use rnet_model::Checkpoint;
use rnet_primitives::encode::encode_to_vec;
use rnet_primitives::{Amount, Hash256, MAX_MONEY, Network, OutPoint, TxOut};
use rnet_testkit::{MemoryChain, MinedBlock, TestMiner, plain_spk, spend_plain, test_key};

fn options() -> ChainOptions {
    ChainOptions { prune_checkpoints_depth: 0, sync_writes: false, ..ChainOptions::default() }
}

fn open(dir: &TempDir, params: &ChainParams) -> ChainState {
    ChainState::open_with(dir.path(), Box::new(ConsensusRules::new(params.clone())), options())
        .unwrap()
}

/// The clock the chainstate validates with: after every regtest block time used here.
fn now(chain: &MemoryChain) -> u64 {
    chain.summary(chain.height()).unwrap().time + 60
}

fn accept(chain: &mut ChainState, mined: &MinedBlock, now: u64) -> AcceptOutcome {
    chain
        .accept_block(mined.block.clone(), Some(mined.update_bytes.clone()), now)
        .unwrap_or_else(|e| panic!("block {} rejected: {e}", mined.block.block_hash()))
}

/// The canonical UTXO set hash, written independently of the chainstate from its definition.
fn canonical_hash(set: &HashMap<OutPoint, Coin>) -> Hash256 {
    let mut items: Vec<(Vec<u8>, Vec<u8>)> = set
        .iter()
        .map(|(o, c)| {
            let mut v = encode_to_vec(&c.output);
            v.extend_from_slice(&c.height.to_le_bytes());
            v.extend_from_slice(&c.creation_mtp.to_le_bytes());
            v.push(u8::from(c.is_coinbase));
            v.extend_from_slice(&c.creation_loss_index.to_le_bytes());
            (encode_to_vec(o), v)
        })
        .collect();
    items.sort();
    let mut buf = Vec::new();
    for (k, v) in &items {
        buf.extend_from_slice(k);
        buf.extend_from_slice(v);
    }
    let total: u64 = set.values().map(|c| c.output.value.0).sum();
    buf.extend_from_slice(&(set.len() as u64).to_le_bytes());
    buf.extend_from_slice(&total.to_le_bytes());
    Hash256::hash(&buf)
}

/// The chainstate's tip and UTXO set equal the memory chain's.
fn assert_same(chain: &ChainState, mem: &MemoryChain) {
    let tip = mem.summary(mem.height()).unwrap();
    assert_eq!(&chain.tip(), tip);
    assert_eq!(chain.utxo_set_hash().unwrap(), canonical_hash(mem.utxo_set()));
    assert_eq!(chain.circulating_supply(), mem.utxo_value());
    assert_eq!(chain.emission_pool(), Amount(MAX_MONEY - mem.utxo_value().0));
    chain.verify_consistency().unwrap();
}

#[test]
fn regtest_genesis_state() {
    let dir = TempDir::new("regtest-genesis");
    let params = ChainParams::regtest();
    let genesis = params.genesis_block();
    {
        let chain = ChainState::open(dir.path(), params.clone()).unwrap();
        assert_eq!(chain.tip(), params.genesis_summary());
        assert_eq!(chain.genesis_hash(), genesis.block_hash());
        assert_eq!(chain.circulating_supply(), Amount::ZERO);
        assert_eq!(chain.emission_pool(), Amount(MAX_MONEY));
        assert_eq!(chain.utxo_stats().unwrap().count, 0, "the genesis coinbase creates no coin");
        let ckpt = chain.checkpoint(&genesis.block_hash()).unwrap().unwrap();
        assert_eq!(ckpt, params.genesis_checkpoint().to_bytes());
        assert_eq!(chain.block(&genesis.block_hash()).unwrap(), Some(genesis.clone()));
        assert_eq!(
            chain.block_status(&genesis.block_hash()).unwrap(),
            Some(BlockStatus::FullyValid)
        );
        chain.verify_consistency().unwrap();
    }
    // Reopening with another network's parameters is refused.
    let err = ChainState::open_with(
        dir.path(),
        Box::new(ConsensusRules::new(ChainParams::for_network(Network::Testnet))),
        ChainOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, ChainError::WrongNetwork { .. }), "{err}");
    let chain = ChainState::open(dir.path(), params.clone()).unwrap();
    assert_eq!(chain.tip(), params.genesis_summary());
}

#[test]
fn regtest_reorgs_match_the_memory_chain_and_a_fresh_replay() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let alice = test_key(1);
    let bob = test_key(2);
    let dir = TempDir::new("regtest-reorg");
    let mut chain = open(&dir, &params);

    // Common part: 6 blocks paying Alice.
    let mut mem_a = MemoryChain::new(params.clone());
    let common = mem_a.mine_empty(&miner, 6, &plain_spk(&alice)).unwrap();
    let mut mem_b = mem_a.clone();
    for m in &common {
        assert!(matches!(accept(&mut chain, m, now(&mem_a)), AcceptOutcome::Connected { .. }));
    }
    assert_same(&chain, &mem_a);

    // Branch A: Alice spends her (now mature) first coinbase to Bob, then one more block.
    let coin = mem_a.coins_paying(&plain_spk(&alice))[0].clone();
    let tx = spend_plain(
        &alice,
        &[(coin.0, coin.1.output.clone())],
        vec![TxOut { value: Amount(coin.1.output.value.0 - 1000), script_pubkey: plain_spk(&bob) }],
    );
    let (a1, _) = mem_a.mine(&miner, vec![tx], plain_spk(&alice)).unwrap();
    let a2 = mem_a.mine_empty(&miner, 1, &plain_spk(&alice)).unwrap().remove(0);
    for m in [&a1, &a2] {
        accept(&mut chain, m, now(&mem_a));
    }
    assert_same(&chain, &mem_a);
    assert!(chain.coin(&coin.0).unwrap().is_none());

    // Branch B: three blocks paying Bob; the third gives B more chainwork than A.
    let b = mem_b.mine_empty(&miner, 2, &plain_spk(&bob)).unwrap();
    let b3 = mem_b.mine_empty(&miner, 1, &plain_spk(&bob)).unwrap().remove(0);
    let clock = now(&mem_b).max(now(&mem_a));
    for m in &b[..2] {
        let outcome = accept(&mut chain, m, clock);
        assert!(
            matches!(outcome, AcceptOutcome::StoredSideBranch)
                || matches!(outcome, AcceptOutcome::Connected { .. }),
            "{outcome:?}"
        );
    }
    match accept(&mut chain, &b3, clock) {
        AcceptOutcome::Connected { new_tip, .. } => assert_eq!(new_tip.hash, b3.block.block_hash()),
        other => panic!("{other:?}"),
    }
    assert_same(&chain, &mem_b);
    assert!(chain.coin(&coin.0).unwrap().is_some(), "the spend on A is undone");

    // A fresh datadir fed only branch B reaches the same state.
    {
        let dir2 = TempDir::new("regtest-replay");
        let mut fresh = open(&dir2, &params);
        for m in common.iter().chain(&b).chain([&b3]) {
            accept(&mut fresh, m, clock);
        }
        assert_eq!(fresh.utxo_set_hash().unwrap(), chain.utxo_set_hash().unwrap());
        assert_eq!(fresh.tip(), chain.tip());
    }

    // A catches up (equal chainwork: the first seen, B, stays), then passes B: reorg back.
    let a3 = mem_a.mine_empty(&miner, 1, &plain_spk(&alice)).unwrap().remove(0);
    assert_eq!(
        mem_a.summary(mem_a.height()).unwrap().chainwork,
        mem_b.summary(mem_b.height()).unwrap().chainwork
    );
    assert!(matches!(
        accept(&mut chain, &a3, now(&mem_a).max(clock)),
        AcceptOutcome::StoredSideBranch
    ));
    assert_same(&chain, &mem_b);
    let a4 = mem_a.mine_empty(&miner, 1, &plain_spk(&alice)).unwrap().remove(0);
    match accept(&mut chain, &a4, now(&mem_a).max(clock)) {
        AcceptOutcome::Connected { disconnected, connected, .. } => {
            assert_eq!(disconnected.len(), 3);
            assert_eq!(connected.len(), 4);
        }
        other => panic!("{other:?}"),
    }
    assert_same(&chain, &mem_a);

    // Restart keeps everything.
    drop(chain);
    let mut chain = open(&dir, &params);
    assert_same(&chain, &mem_a);

    // A miner can build directly on the chainstate: branch view + UTXO snapshot + tip checkpoint.
    let tip = chain.tip().hash;
    let view = chain.header_chain(&tip).unwrap();
    let utxos = chain.utxo_snapshot().unwrap();
    let parent_ckpt = Checkpoint::from_bytes(&chain.checkpoint(&tip).unwrap().unwrap()).unwrap();
    let next = miner.mine(&view, &utxos, &parent_ckpt, vec![], plain_spk(&bob)).unwrap();
    assert!(view.take_error().is_none() && utxos.take_error().is_none());
    drop((view, utxos));
    mem_a.submit_at(&next.block, &next.update_bytes, now(&mem_a) + 600).unwrap();
    assert!(matches!(accept(&mut chain, &next, now(&mem_a)), AcceptOutcome::Connected { .. }));
    assert_same(&chain, &mem_a);
}

#[test]
fn regtest_invalid_blocks() {
    let params = ChainParams::regtest();
    let miner = TestMiner::new(params.clone());
    let payout = plain_spk(&test_key(3));
    let dir = TempDir::new("regtest-invalid");
    let mut chain = open(&dir, &params);
    let mut mem = MemoryChain::new(params.clone());
    let m1 = mem.mine_empty(&miner, 1, &payout).unwrap().remove(0);
    accept(&mut chain, &m1, now(&mem));
    let clock = now(&mem) + 600;
    let template = mem.template(&miner, vec![], payout.clone(), None, None).unwrap();

    // A bad miner signature is not part of the block id: rejected but not recorded, and the
    // properly signed block with the same id is accepted afterwards.
    let good = template.clone().finish(&miner.key);
    let mut forged = good.block.clone();
    forged.header.signature[0] ^= 1;
    assert_eq!(forged.block_hash(), good.block.block_hash());
    let err = chain.accept_block(forged, Some(good.update_bytes.clone()), clock).unwrap_err();
    assert!(
        matches!(err, ChainError::InvalidBlock { reason: BlockError::BadMinerSignature, .. }),
        "{err}"
    );
    assert_eq!(chain.block_status(&good.block.block_hash()).unwrap(), None);

    // A wrong sample is not part of the block id either: the block is refused before it is
    // stored, so the same id with its real sample is accepted later (a relayer that corrupts the
    // sample cannot block the real block).
    let mut bad_sample = good.block.clone();
    bad_sample.sample.records.swap(0, 1);
    let err = chain.accept_block(bad_sample, Some(good.update_bytes.clone()), clock).unwrap_err();
    assert!(
        matches!(err, ChainError::InvalidBlock { reason: BlockError::SampleOutOfOrder { .. }, .. }),
        "{err}"
    );
    assert_eq!(chain.block_status(&good.block.block_hash()).unwrap(), None);

    // The header claims a lower loss than its checkpoint evaluates to: Proof-of-Training fails,
    // the block is marked invalid for good.
    let mut liar = template.clone();
    liar.header.val_loss -= 1000;
    let liar = liar.finish(&miner.key);
    let err =
        chain.accept_block(liar.block.clone(), Some(liar.update_bytes.clone()), clock).unwrap_err();
    assert!(
        matches!(err, ChainError::InvalidBlock { reason: BlockError::ValLossMismatch { .. }, .. }),
        "{err}"
    );
    assert_eq!(chain.block_status(&liar.block.block_hash()).unwrap(), Some(BlockStatus::Invalid));
    let err =
        chain.accept_block(liar.block.clone(), Some(liar.update_bytes.clone()), clock).unwrap_err();
    assert!(matches!(err, ChainError::KnownInvalid(_)));

    // A coinbase paying more than allowed: invalid at connection.
    let mut greedy = template.clone();
    greedy.coinbase_mut().outputs[0].value.0 += 1;
    let greedy = greedy.finish(&miner.key);
    let err = chain
        .accept_block(greedy.block.clone(), Some(greedy.update_bytes.clone()), clock)
        .unwrap_err();
    assert!(
        matches!(err, ChainError::InvalidBlock { reason: BlockError::CoinbaseTooLarge { .. }, .. }),
        "{err}"
    );

    // A wrong required improvement is caught by the header checks and recorded at once.
    let mut lazy = template.clone();
    lazy.header.required_improvement += 1;
    let lazy = lazy.finish(&miner.key);
    let err =
        chain.accept_block(lazy.block.clone(), Some(lazy.update_bytes.clone()), clock).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::InvalidBlock { reason: BlockError::BadRequiredImprovement { .. }, .. }
        ),
        "{err}"
    );
    assert_eq!(chain.block_status(&lazy.block.block_hash()).unwrap(), Some(BlockStatus::Invalid));

    // Checkpoint bytes that are not the committed ones are refused outright.
    assert!(matches!(
        chain.accept_block(good.block.clone(), Some(m1.update_bytes.clone()), clock),
        Err(ChainError::UpdateMismatch { .. })
    ));

    // None of this moved the tip; the good block still connects.
    assert_eq!(chain.tip().hash, m1.block.block_hash());
    assert!(matches!(accept(&mut chain, &good, clock), AcceptOutcome::Connected { .. }));
    chain.verify_consistency().unwrap();
}

#[test]
fn regtest_expiry_follows_the_memory_chain_and_undoes() {
    // Coins expire once the loss index has fallen by 2 % since their creation; with a
    // requirement of 30,000 µnat the index falls by 30,000 to 60,000 per block.
    let params = ChainParams {
        expiry_ratio: (102, 100),
        initial_required_improvement: 30_000,
        min_required_improvement: 30_000,
        ..ChainParams::regtest()
    };
    params.validate().unwrap();
    let miner = TestMiner::new(params.clone());
    let payout = plain_spk(&test_key(4));
    let dir = TempDir::new("regtest-expiry");
    let mut chain = open(&dir, &params);
    let mut mem = MemoryChain::new(params.clone());
    let mut expired_any = false;
    let mut states = vec![(chain.tip(), chain.utxo_set_hash().unwrap())];
    for _ in 0..6 {
        let (m, connected) = mem.mine(&miner, vec![], payout.clone()).unwrap();
        expired_any |= !connected.expired.is_empty();
        accept(&mut chain, &m, now(&mem));
        assert_same(&chain, &mem);
        for (outpoint, _) in &connected.expired {
            assert!(chain.coin(outpoint).unwrap().is_none());
        }
        states.push((chain.tip(), chain.utxo_set_hash().unwrap()));
    }
    assert!(expired_any, "some coins expired");
    // Walk back through every state by invalidating the tip.
    for i in (1..states.len()).rev() {
        let tip = chain.tip().hash;
        chain.invalidate_block(&tip).unwrap();
        assert_eq!((chain.tip(), chain.utxo_set_hash().unwrap()), states[i - 1]);
        chain.verify_consistency().unwrap();
    }
}
