//! Chainstate behaviour with synthetic consensus rules (see `common`): storage, fork choice,
//! reorganisations against from-scratch replays, invalid blocks, expiry, pruning, restart and
//! crash injection.

mod common;

use common::*;
use rnet_chain::{AcceptOutcome, BlockStatus, ChainError, ChainOptions, ChainTipStatus, FailPoint};
use rnet_consensus::{BlockError, TxError};
use rnet_primitives::{Amount, BlockHash, COIN, MAX_MONEY};

/// Builds a linear chain of `n` blocks on `parent`, each paying `pay` to a fresh coin, with
/// losses falling by `step` from `start`.
fn linear(parent: &Blk, n: usize, start: u64, step: u64, tag: u64) -> Vec<Blk> {
    let mut out: Vec<Blk> = Vec::new();
    for i in 0..n {
        let p = out.last().unwrap_or(parent).header().clone();
        out.push(simple(&p, start - step * i as u64, tag * 1000 + i as u64, &[COIN, 2 * COIN]));
    }
    out
}

#[test]
fn genesis_state_and_restart() {
    let dir = TempDir::new("genesis");
    let rules = SynthRules::default();
    let g = genesis();
    {
        let chain = open(dir.path(), &rules, archive());
        assert_eq!(chain.tip().hash, g.hash());
        assert_eq!(chain.height(), 0);
        assert_eq!(chain.genesis_hash(), g.hash());
        assert_eq!(chain.circulating_supply(), Amount::ZERO);
        assert_eq!(chain.emission_pool(), Amount(MAX_MONEY));
        assert_eq!(chain.block_hash_at(0).unwrap(), Some(g.hash()));
        assert_eq!(chain.block_hash_at(1).unwrap(), None);
        assert_eq!(chain.block(&g.hash()).unwrap(), Some(g.block.clone()));
        assert_eq!(chain.checkpoint(&g.hash()).unwrap(), Some(g.ckpt.clone()));
        assert_eq!(chain.block_status(&g.hash()).unwrap(), Some(BlockStatus::FullyValid));
        let stats = chain.utxo_stats().unwrap();
        assert_eq!((stats.count, stats.total_value), (0, Amount::ZERO));
        chain.verify_consistency().unwrap();
    }
    let chain = open(dir.path(), &rules, archive());
    assert_eq!(chain.tip().hash, g.hash());
    let tips = chain.chain_tips().unwrap();
    assert_eq!(tips.len(), 1);
    assert_eq!(tips[0].status, ChainTipStatus::Active);
}

#[test]
fn linear_chain_spends_and_restart() {
    let dir = TempDir::new("linear");
    let rules = SynthRules::default();
    let g = genesis();
    let b1 = simple(g.header(), 900_000, 1, &[10 * COIN, 5 * COIN]);
    let b2 = simple(b1.header(), 800_000, 2, &[COIN]);
    // b3 spends b1's first coin into two outputs (fee 1 COIN collected by its coinbase), and a
    // second transaction spends one of those outputs inside the same block.
    let t1 = spend(&[b1.out(0, 0)], &[6 * COIN, 3 * COIN]);
    let t2 = spend(&[rnet_primitives::OutPoint::new(t1.txid(), 1)], &[3 * COIN]);
    let b3 = block_on(b2.header(), 700_000, 3, vec![coinbase(3, 3, &[SUBSIDY + COIN]), t1, t2]);
    let (tip_state, supply) = {
        let mut chain = open(dir.path(), &rules, archive());
        for b in [&b1, &b2, &b3] {
            match accept(&mut chain, b) {
                AcceptOutcome::Connected { new_tip, connected, disconnected } => {
                    assert_eq!(new_tip.hash, b.hash());
                    assert_eq!(connected, vec![b.hash()]);
                    assert!(disconnected.is_empty());
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(chain.height(), 3);
        assert!(chain.coin(&b1.out(0, 0)).unwrap().is_none(), "spent");
        let c = chain.coin(&b1.out(0, 1)).unwrap().unwrap();
        assert_eq!(
            (c.output.value, c.height, c.is_coinbase, c.creation_loss_index),
            (Amount(5 * COIN), 1, true, 900_000)
        );
        // The intra-block coin never entered the set.
        assert!(chain.coin(&b3.out(1, 1)).unwrap().is_none());
        assert!(chain.coin(&b3.out(2, 0)).unwrap().is_some());
        // Coins: b1's 5, b2's 1, b3's coinbase 50 + 1 (fee), t1's 6, t2's 3.
        let supply = Amount(5 * COIN + COIN + SUBSIDY + COIN + 6 * COIN + 3 * COIN);
        assert_eq!(chain.circulating_supply(), supply);
        assert_eq!(chain.emission_pool(), Amount(MAX_MONEY - supply.0));
        assert_eq!(chain.utxo_stats().unwrap().total_value, supply);
        chain.verify_consistency().unwrap();
        assert_eq!(accept(&mut chain, &b2), AcceptOutcome::AlreadyHave);
        (state(&chain), supply)
    };
    let chain = open(dir.path(), &rules, archive());
    assert_eq!(state(&chain), tip_state);
    assert_eq!(chain.circulating_supply(), supply);
    assert_eq!(chain.block_hash_at(2).unwrap(), Some(b2.hash()));
    chain.verify_consistency().unwrap();
    assert_eq!(replay(&[&b1, &b2, &b3]), tip_state);
}

#[test]
fn reorg_to_lower_loss_branch_and_back_matches_replay() {
    let dir = TempDir::new("reorg");
    let rules = SynthRules::default();
    let g = genesis();
    let common_part = linear(&g, 2, 990_000, 10_000, 1); // heights 1, 2
    let fork = common_part.last().unwrap();
    // Branch A: 4 blocks, tip loss 940_000; it spends a common coin.
    let a1 = block_on(
        fork.header(),
        970_000,
        21,
        vec![coinbase(3, 21, &[SUBSIDY]), spend(&[common_part[0].out(0, 0)], &[COIN / 2])],
    );
    let mut a = vec![a1.clone()];
    a.extend(linear(&a1, 3, 960_000, 10_000, 22));
    // Branch B: 2 blocks, tip loss 930_000 (lower): it wins although shorter. It spends the
    // same common coin differently.
    let b1 = block_on(
        fork.header(),
        950_000,
        31,
        vec![coinbase(3, 31, &[SUBSIDY]), spend(&[common_part[0].out(0, 0)], &[COIN / 4])],
    );
    let b2 = simple(b1.header(), 930_000, 32, &[7 * COIN]);

    let mut chain = open(dir.path(), &rules, archive());
    for blk in common_part.iter().chain(&a) {
        accept(&mut chain, blk);
    }
    assert_eq!(chain.tip().hash, a[3].hash());
    let a_path: Vec<&Blk> = common_part.iter().chain(&a).collect();
    assert_eq!(state(&chain), replay(&a_path));

    // b1 alone (950_000) loses to A's tip (940_000): stored as a side branch.
    assert_eq!(accept(&mut chain, &b1), AcceptOutcome::StoredSideBranch);
    assert_eq!(chain.block_status(&b1.hash()).unwrap(), Some(BlockStatus::DataStored));
    // b2 (930_000) wins: disconnect A back to the fork, connect B.
    match accept(&mut chain, &b2) {
        AcceptOutcome::Connected { new_tip, connected, disconnected } => {
            assert_eq!(new_tip.hash, b2.hash());
            assert_eq!(connected, vec![b1.hash(), b2.hash()]);
            assert_eq!(disconnected, a.iter().rev().map(Blk::hash).collect::<Vec<_>>());
        }
        other => panic!("{other:?}"),
    }
    chain.verify_consistency().unwrap();
    let b_path: Vec<&Blk> = common_part.iter().chain([&b1, &b2]).collect();
    assert_eq!(state(&chain), replay(&b_path));
    assert_eq!(chain.block_hash_at(3).unwrap(), Some(b1.hash()));
    assert_eq!(chain.block_hash_at(5).unwrap(), None);
    let tips = chain.chain_tips().unwrap();
    assert_eq!(tips.len(), 2);
    assert_eq!((tips[0].hash, tips[0].status), (b2.hash(), ChainTipStatus::Active));
    assert_eq!(
        (tips[1].hash, tips[1].status, tips[1].branch_len),
        (a[3].hash(), ChainTipStatus::ValidFork, 4)
    );

    // A grows to 920_000: reorg back. Its blocks were validated before, so no PoT runs again.
    let pot_before = rules.pot_calls();
    let a5 = simple(a[3].header(), 920_000, 25, &[COIN]);
    match accept(&mut chain, &a5) {
        AcceptOutcome::Connected { connected, disconnected, .. } => {
            assert_eq!(disconnected, vec![b2.hash(), b1.hash()]);
            assert_eq!(connected.len(), 5);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rules.pot_calls(), pot_before + 1, "only the new block is evaluated");
    let mut a_path = a_path;
    a_path.push(&a5);
    assert_eq!(state(&chain), replay(&a_path));
    chain.verify_consistency().unwrap();
    drop(chain);
    let chain = open(dir.path(), &rules, archive());
    assert_eq!(state(&chain), replay(&a_path));
}

#[test]
fn ties_go_to_the_first_seen() {
    let g = genesis();
    let x = simple(g.header(), 900_000, 1, &[COIN]);
    let y = simple(g.header(), 900_000, 2, &[2 * COIN]);
    assert_ne!(x.hash(), y.hash());
    for (first, second) in [(&x, &y), (&y, &x)] {
        let dir = TempDir::new("tie");
        let rules = SynthRules::default();
        let mut chain = open(dir.path(), &rules, archive());
        assert!(matches!(accept(&mut chain, first), AcceptOutcome::Connected { .. }));
        assert_eq!(accept(&mut chain, second), AcceptOutcome::StoredSideBranch);
        assert_eq!(chain.tip().hash, first.hash());
        drop(chain);
        // The order survives a restart.
        let mut chain = open(dir.path(), &rules, archive());
        assert_eq!(chain.activate_best_chain(NOW).unwrap().connected.len(), 0);
        assert_eq!(chain.tip().hash, first.hash());
        // The first seen block wins again after the tip is invalidated and reconsidered.
        chain.invalidate_block(&first.hash()).unwrap();
        assert_eq!(chain.tip().hash, second.hash());
        chain.reconsider_block(&first.hash()).unwrap();
        assert_eq!(chain.tip().hash, first.hash());
        // A strictly lower loss wins at once.
        let z = simple(second.header(), 899_999, 3, &[COIN]);
        assert!(matches!(accept(&mut chain, &z), AcceptOutcome::Connected { .. }));
        assert_eq!(chain.tip().hash, z.hash());
        chain.verify_consistency().unwrap();
    }
}

#[test]
fn invalid_blocks_are_marked_and_never_retried() {
    let dir = TempDir::new("invalid");
    let rules = SynthRules::default();
    let g = genesis();
    let b1 = simple(g.header(), 900_000, 1, &[COIN]);
    let mut chain = open(dir.path(), &rules, archive());
    accept(&mut chain, &b1);
    let before = state(&chain);

    // The checkpoint evaluates to another loss than the header claims.
    let mut liar = simple(b1.header(), 800_000, 2, &[COIN]);
    liar.ckpt = synth_checkpoint(850_000, 2, 2);
    liar.block.header.checkpoint_root =
        rnet_primitives::Hash256(rnet_chain::checkpoints::checkpoint_root(&liar.ckpt));
    liar.block.header.checkpoint_size = liar.ckpt.len() as u64;
    liar.block.header.update_root = liar.block.header.checkpoint_root;
    liar.block.header.update_size = liar.ckpt.len() as u64;
    let err = chain.accept_block(liar.block.clone(), Some(liar.ckpt.clone()), NOW).unwrap_err();
    assert!(
        matches!(err, ChainError::InvalidBlock { hash, reason: BlockError::ValLossMismatch { .. } } if hash == liar.hash()),
        "{err}"
    );
    assert_eq!(chain.block_status(&liar.hash()).unwrap(), Some(BlockStatus::Invalid));
    assert_eq!(state(&chain), before);
    let calls = rules.pot_calls();
    let err = chain.accept_block(liar.block.clone(), Some(liar.ckpt.clone()), NOW).unwrap_err();
    assert!(matches!(err, ChainError::KnownInvalid(h) if h == liar.hash()));
    assert_eq!(rules.pot_calls(), calls, "not evaluated again");
    // The invalid block's checkpoint is gone.
    assert!(!chain.has_checkpoint(&liar.hash()).unwrap());
    // A child of the invalid block is rejected as such.
    let child = simple(liar.header(), 700_000, 3, &[COIN]);
    let err = chain.accept_block(child.block.clone(), Some(child.ckpt.clone()), NOW).unwrap_err();
    assert!(
        matches!(err, ChainError::InvalidAncestor { invalid_ancestor, .. } if invalid_ancestor == liar.hash())
    );
    assert_eq!(chain.block_status(&child.hash()).unwrap(), Some(BlockStatus::InvalidChild));

    // A block spending a coin that does not exist.
    let ghost = block_on(
        b1.header(),
        800_000,
        4,
        vec![coinbase(2, 4, &[COIN]), spend(&[liar.out(0, 0)], &[1])],
    );
    let err = chain.accept_block(ghost.block.clone(), Some(ghost.ckpt.clone()), NOW).unwrap_err();
    assert!(matches!(
        err,
        ChainError::InvalidBlock {
            reason: BlockError::Transaction { error: TxError::MissingOrSpent { .. }, .. },
            ..
        }
    ));
    // A header that fails in context (time before its parent) is recorded invalid at once.
    let mut old = simple(b1.header(), 800_000, 5, &[COIN]);
    old.block.header.time = b1.header().time;
    let err = chain.accept_block(old.block.clone(), Some(old.ckpt.clone()), NOW).unwrap_err();
    assert!(matches!(err, ChainError::InvalidBlock { reason: BlockError::TimeTooOld { .. }, .. }));
    assert_eq!(chain.block_status(&old.hash()).unwrap(), Some(BlockStatus::Invalid));
    assert!(chain.block(&old.hash()).unwrap().is_none(), "no data stored for it");
    assert_eq!(state(&chain), before);
    chain.verify_consistency().unwrap();
    let tips = chain.chain_tips().unwrap();
    assert!(tips.iter().any(|t| t.hash == child.hash() && t.status == ChainTipStatus::Invalid));

    // Marks survive a restart.
    drop(chain);
    let mut chain = open(dir.path(), &rules, archive());
    let err = chain.accept_block(ghost.block.clone(), Some(ghost.ckpt.clone()), NOW).unwrap_err();
    assert!(matches!(err, ChainError::KnownInvalid(_)));
    // A valid sibling is still accepted.
    let good = simple(b1.header(), 800_000, 6, &[COIN]);
    assert!(matches!(accept(&mut chain, &good), AcceptOutcome::Connected { .. }));
}

#[test]
fn failures_that_do_not_prove_invalidity_are_not_recorded() {
    let dir = TempDir::new("temporary");
    let rules = SynthRules::default();
    let g = genesis();
    let mut chain = open(dir.path(), &rules, archive());
    let b1 = simple(g.header(), 900_000, 1, &[COIN]);

    // Too far in the future for this clock: rejected, not stored; fine later.
    let early = b1.header().time - 7200 - 1;
    let err = chain.accept_block(b1.block.clone(), Some(b1.ckpt.clone()), early).unwrap_err();
    assert!(matches!(err, ChainError::InvalidBlock { reason: BlockError::TimeTooNew { .. }, .. }));
    assert_eq!(chain.block_status(&b1.hash()).unwrap(), None);

    // Transactions that are not what the header commits to: rejected, not recorded.
    let mut tampered = b1.block.clone();
    tampered.transactions[0].outputs[0].value = Amount(2 * COIN);
    let err = chain.accept_block(tampered, Some(b1.ckpt.clone()), NOW).unwrap_err();
    assert!(matches!(err, ChainError::InvalidBlock { reason: BlockError::BadMerkleRoot, .. }));
    assert_eq!(chain.block_status(&b1.hash()).unwrap(), None);

    // Update bytes that are not the committed ones: rejected, nothing stored.
    let err = chain.accept_block(b1.block.clone(), Some(vec![1, 2, 3]), NOW).unwrap_err();
    assert!(matches!(err, ChainError::UpdateMismatch { .. }));
    assert_eq!(chain.block_status(&b1.hash()).unwrap(), None);

    assert!(matches!(accept(&mut chain, &b1), AcceptOutcome::Connected { .. }));
}

#[test]
fn orphans_and_missing_checkpoints() {
    let dir = TempDir::new("orphan");
    let rules = SynthRules::default();
    let g = genesis();
    let mut chain = open(dir.path(), &rules, archive());
    let b1 = simple(g.header(), 900_000, 1, &[COIN]);
    let b2 = simple(b1.header(), 800_000, 2, &[COIN]);
    assert_eq!(accept(&mut chain, &b2), AcceptOutcome::Orphan { missing_parent: b1.hash() });
    assert_eq!(chain.block_status(&b2.hash()).unwrap(), None);

    // Without their updates the blocks are stored but cannot be validated.
    assert_eq!(
        chain.accept_block(b1.block.clone(), None, NOW).unwrap(),
        AcceptOutcome::MissingUpdate
    );
    assert_eq!(
        chain.accept_block(b2.block.clone(), Some(b2.ckpt.clone()), NOW).unwrap(),
        AcceptOutcome::MissingUpdate
    );
    assert_eq!(chain.tip().hash, g.hash());
    let tips = chain.chain_tips().unwrap();
    assert!(tips.iter().any(|t| t.hash == b2.hash() && t.status == ChainTipStatus::ValidHeaders));
    // Wrong bytes are refused.
    assert!(matches!(
        chain.accept_update(&b1.hash(), b2.ckpt.clone(), NOW),
        Err(ChainError::UpdateMismatch { .. })
    ));
    // The missing update completes the branch: both blocks connect.
    match chain.accept_update(&b1.hash(), b1.ckpt.clone(), NOW).unwrap() {
        AcceptOutcome::Connected { new_tip, connected, .. } => {
            assert_eq!(new_tip.hash, b2.hash());
            assert_eq!(connected, vec![b1.hash(), b2.hash()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        chain.accept_update(&b1.hash(), b1.ckpt.clone(), NOW).unwrap(),
        AcceptOutcome::AlreadyHave
    );
    assert!(matches!(
        chain.accept_update(&BlockHash([9; 32]), b1.ckpt.clone(), NOW),
        Err(ChainError::UnknownBlock(_))
    ));
    chain.verify_consistency().unwrap();
}

#[test]
fn invalid_block_inside_a_better_branch_falls_back_to_the_best_valid_chain() {
    let dir = TempDir::new("badbranch");
    let rules = SynthRules::default();
    let g = genesis();
    let a = linear(&g, 3, 900_000, 10_000, 1); // tip 880_000
    let b1 = simple(g.header(), 895_000, 11, &[COIN]);
    let b2 = block_on(
        b1.header(),
        870_000,
        12,
        vec![coinbase(2, 12, &[COIN]), spend(&[a[0].out(0, 0)], &[1])], // not on this branch
    );
    let b3 = simple(b2.header(), 850_000, 13, &[COIN]);
    let mut chain = open(dir.path(), &rules, archive());
    for blk in &a {
        accept(&mut chain, blk);
    }
    let a_state = state(&chain);
    // b1, b2 are side branch blocks until b2's claimed loss beats the tip: then the reorg finds
    // b2 invalid, marks it, and goes back to A.
    assert_eq!(accept(&mut chain, &b1), AcceptOutcome::StoredSideBranch);
    let err = chain.accept_block(b2.block.clone(), Some(b2.ckpt.clone()), NOW).unwrap_err();
    assert!(matches!(err, ChainError::InvalidBlock { hash, .. } if hash == b2.hash()));
    assert_eq!(state(&chain), a_state);
    assert_eq!(chain.block_status(&b1.hash()).unwrap(), Some(BlockStatus::FullyValid));
    assert_eq!(chain.block_status(&b2.hash()).unwrap(), Some(BlockStatus::Invalid));
    let err = chain.accept_block(b3.block.clone(), Some(b3.ckpt.clone()), NOW).unwrap_err();
    assert!(
        matches!(err, ChainError::InvalidAncestor { invalid_ancestor, .. } if invalid_ancestor == b2.hash())
    );
    chain.verify_consistency().unwrap();
    assert_eq!(state(&chain), replay(&a.iter().collect::<Vec<_>>()));
}

#[test]
fn invalidate_and_reconsider() {
    let dir = TempDir::new("invalidate");
    let rules = SynthRules::default();
    let g = genesis();
    let a = linear(&g, 5, 900_000, 10_000, 1);
    let mut chain = open(dir.path(), &rules, archive());
    for blk in &a {
        accept(&mut chain, blk);
    }
    let full = state(&chain);
    let report = chain.invalidate_block(&a[2].hash()).unwrap();
    assert_eq!(report.disconnected, vec![a[4].hash(), a[3].hash(), a[2].hash()]);
    assert_eq!(chain.tip().hash, a[1].hash());
    assert_eq!(state(&chain), replay(&[&a[0], &a[1]]));
    assert_eq!(chain.block_status(&a[2].hash()).unwrap(), Some(BlockStatus::Invalid));
    assert_eq!(chain.block_status(&a[4].hash()).unwrap(), Some(BlockStatus::InvalidChild));
    chain.verify_consistency().unwrap();
    assert!(matches!(chain.invalidate_block(&g.hash()), Err(ChainError::Genesis)));
    // Restart keeps the invalidation.
    drop(chain);
    let mut chain = open(dir.path(), &rules, archive());
    assert_eq!(chain.tip().hash, a[1].hash());
    let report = chain.reconsider_block(&a[2].hash()).unwrap();
    assert_eq!(report.connected.len(), 3);
    assert_eq!(state(&chain), full);
    chain.verify_consistency().unwrap();
}

#[test]
fn expiry_sweep_removes_exactly_the_expired_coins_and_disconnect_restores_them() {
    let dir = TempDir::new("expiry");
    let rules = SynthRules::default();
    let g = genesis();
    let mut chain = open(dir.path(), &rules, archive());
    // Coins created at losses 900k, 700k, 600k, 500k.
    let b1 = simple(g.header(), 900_000, 1, &[COIN, 2 * COIN]);
    let b2 = simple(b1.header(), 700_000, 2, &[3 * COIN]);
    let b3 = simple(b2.header(), 600_000, 3, &[4 * COIN]);
    let b4 = simple(b3.header(), 500_000, 4, &[5 * COIN]);
    for b in [&b1, &b2, &b3, &b4] {
        accept(&mut chain, b);
    }
    // Threshold at tip loss 500k is 1M: nothing has expired.
    assert_eq!(chain.utxo_stats().unwrap().count, 5);
    let before = state(&chain);
    let supply_before = chain.circulating_supply();
    // A block at loss 350k: threshold 700k, so the coins of b1 (900k) and b2 (700k, boundary
    // included) expire; b3's (600k) do not. The new block's own coin (350k) stays.
    let b5 = simple(b4.header(), 350_000, 5, &[6 * COIN]);
    accept(&mut chain, &b5);
    assert!(chain.coin(&b1.out(0, 0)).unwrap().is_none());
    assert!(chain.coin(&b1.out(0, 1)).unwrap().is_none());
    assert!(chain.coin(&b2.out(0, 0)).unwrap().is_none());
    assert!(chain.coin(&b3.out(0, 0)).unwrap().is_some());
    assert!(chain.coin(&b4.out(0, 0)).unwrap().is_some());
    assert!(chain.coin(&b5.out(0, 0)).unwrap().is_some());
    let expired = Amount(6 * COIN);
    assert_eq!(chain.circulating_supply(), Amount(supply_before.0 + 6 * COIN - expired.0));
    assert_eq!(chain.tip().circulating_supply, chain.circulating_supply());
    assert_eq!(
        chain.header_summary(&b5.hash()).unwrap().unwrap().circulating_supply,
        chain.circulating_supply()
    );
    assert_eq!(chain.emission_pool(), Amount(MAX_MONEY - chain.circulating_supply().0));
    chain.verify_consistency().unwrap();
    assert_eq!(state(&chain), replay(&[&b1, &b2, &b3, &b4, &b5]));
    // Spending an expired coin is invalid.
    let late = block_on(
        b5.header(),
        340_000,
        6,
        vec![coinbase(6, 6, &[COIN]), spend(&[b2.out(0, 0)], &[COIN])],
    );
    assert!(chain.accept_block(late.block.clone(), Some(late.ckpt.clone()), NOW).is_err());
    // Disconnecting b5 restores exactly the expired coins.
    chain.invalidate_block(&b5.hash()).unwrap();
    assert_eq!(state(&chain), before);
    assert_eq!(chain.circulating_supply(), supply_before);
    chain.verify_consistency().unwrap();
}

#[test]
fn a_coin_created_and_expired_by_the_same_block_round_trips() {
    // With a sweep that removes coins created at the tip's own loss (threshold <= loss), the
    // undo record holds the coin both as created and as expired; disconnect must cope.
    #[derive(Clone, Default)]
    struct Aggressive(SynthRules);
    impl rnet_chain::ChainRules for Aggressive {
        fn network(&self) -> rnet_primitives::Network {
            self.0.network()
        }
        fn genesis_block(&self) -> rnet_primitives::Block {
            self.0.genesis_block()
        }
        fn genesis_summary(&self) -> rnet_consensus::HeaderSummary {
            self.0.genesis_summary()
        }
        fn genesis_checkpoint(&self) -> Vec<u8> {
            self.0.genesis_checkpoint()
        }
        fn check_block(&self, b: &rnet_primitives::Block) -> Result<(), BlockError> {
            self.0.check_block(b)
        }
        fn check_header_context(
            &self,
            h: &rnet_primitives::BlockHeader,
            c: &dyn rnet_consensus::HeaderChain,
            now: u64,
        ) -> Result<(), BlockError> {
            self.0.check_header_context(h, c, now)
        }
        fn check_proof_of_training(
            &self,
            h: &rnet_primitives::BlockHeader,
            p: &rnet_consensus::HeaderSummary,
            s: &rnet_primitives::EvalSample,
            pc: &[u8],
            c: &[u8],
        ) -> Result<Vec<u8>, BlockError> {
            self.0.check_proof_of_training(h, p, s, pc, c)
        }
        fn summarize_header(
            &self,
            h: &rnet_primitives::BlockHeader,
            c: &dyn rnet_consensus::HeaderChain,
        ) -> rnet_consensus::HeaderSummary {
            self.0.summarize_header(h, c)
        }
        fn connect_block(
            &self,
            b: &rnet_primitives::Block,
            c: &dyn rnet_consensus::HeaderChain,
            u: &dyn rnet_consensus::UtxoView,
        ) -> Result<(rnet_consensus::HeaderSummary, rnet_consensus::BlockEffects), BlockError>
        {
            self.0.connect_block(b, c, u)
        }
        fn expiry_threshold(&self, tip_loss: u64) -> u64 {
            tip_loss
        }
        fn is_permanent(&self, e: &BlockError) -> bool {
            self.0.is_permanent(e)
        }
    }
    let dir = TempDir::new("selfexpire");
    let mut chain =
        rnet_chain::ChainState::open_with(dir.path(), Box::new(Aggressive::default()), archive())
            .unwrap();
    let g = genesis();
    let b1 = simple(g.header(), 900_000, 1, &[COIN]);
    accept(&mut chain, &b1);
    assert_eq!(chain.utxo_stats().unwrap().count, 0);
    assert_eq!(chain.circulating_supply(), Amount::ZERO);
    chain.verify_consistency().unwrap();
    chain.invalidate_block(&b1.hash()).unwrap();
    assert_eq!(chain.tip().hash, g.hash());
    chain.verify_consistency().unwrap();
}

#[test]
fn pruning_keeps_the_checkpoints_of_the_last_k_blocks() {
    let dir = TempDir::new("prune");
    let rules = SynthRules::default();
    let options = ChainOptions { prune_checkpoints_depth: 3, ..archive() };
    let g = genesis();
    let a = linear(&g, 8, 990_000, 10_000, 1);
    // A side branch at height 1 that never wins: never validated, so it has its update but no
    // checkpoint. The update stays until the next pruning pass (the tip does not change when it
    // arrives).
    let side = simple(g.header(), 995_000, 99, &[COIN]);
    let mut chain = open(dir.path(), &rules, options.clone());
    for blk in &a {
        accept(&mut chain, blk);
    }
    assert_eq!(accept(&mut chain, &side), AcceptOutcome::StoredSideBranch);
    let kept: Vec<u32> = (0..=8)
        .filter(|&h| chain.has_checkpoint(&chain.block_hash_at(h).unwrap().unwrap()).unwrap())
        .collect();
    assert_eq!(kept, vec![6, 7, 8]);
    assert_eq!(chain.checkpoint(&a[7].hash()).unwrap(), Some(a[7].ckpt.clone()));
    assert_eq!(chain.checkpoint(&a[0].hash()).unwrap(), None);
    assert_eq!(chain.update(&a[0].hash()).unwrap(), None, "pruned with its checkpoint");
    assert_eq!(chain.update(&a[7].hash()).unwrap(), Some(a[7].ckpt.clone()));
    assert!(!chain.has_checkpoint(&side.hash()).unwrap());
    assert!(chain.has_update(&side.hash()).unwrap());
    let files = std::fs::read_dir(dir.path().join("checkpoints")).unwrap().count();
    assert_eq!(files, 3);
    // Reorganising below the pruned depth still works: validated blocks need no evaluation.
    chain.invalidate_block(&a[2].hash()).unwrap();
    assert_eq!(chain.tip().hash, a[1].hash());
    chain.reconsider_block(&a[2].hash()).unwrap();
    assert_eq!(chain.tip().hash, a[7].hash());
    chain.verify_consistency().unwrap();
    // That pass pruned the side branch: K deep and less chainwork than the tip, it cannot win.
    assert!(!chain.has_update(&side.hash()).unwrap());
    assert_eq!(std::fs::read_dir(dir.path().join("checkpoints")).unwrap().count(), 3);
    // Restart keeps the same files.
    drop(chain);
    let chain = open(dir.path(), &rules, options);
    assert_eq!(std::fs::read_dir(dir.path().join("checkpoints")).unwrap().count(), 3);
    assert!(chain.has_checkpoint(&a[7].hash()).unwrap());
}

#[test]
fn damaged_checkpoint_files_are_unavailable_not_invalid() {
    let dir = TempDir::new("damaged");
    let rules = SynthRules::default();
    let g = genesis();
    let mut chain = open(dir.path(), &rules, archive());
    let tip = simple(g.header(), 950_000, 1, &[COIN]);
    accept(&mut chain, &tip);
    // The tip's checkpoint (derived when it was validated) is damaged on disk.
    let path = dir.path().join("checkpoints").join(format!("{}.ckpt", tip.hash()));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(chain.checkpoint(&tip.hash()), Err(ChainError::Corrupt(_))));
    // Its child arrives with its update: validating it finds the parent's damaged file, drops
    // it and waits for the checkpoint again instead of calling the child invalid.
    let child = simple(tip.header(), 940_000, 3, &[COIN]);
    assert_eq!(accept(&mut chain, &child), AcceptOutcome::StoredSideBranch);
    assert_eq!(chain.tip().hash, tip.hash());
    assert_eq!(chain.block_status(&child.hash()).unwrap(), Some(BlockStatus::DataStored));
    assert!(!chain.has_checkpoint(&tip.hash()).unwrap());
    assert!(!path.exists());
    assert_eq!(chain.wanted_checkpoints(10).unwrap(), vec![tip.hash()]);
    match chain.accept_checkpoint(&tip.hash(), tip.ckpt.clone(), NOW).unwrap() {
        AcceptOutcome::Connected { new_tip, .. } => assert_eq!(new_tip.hash, child.hash()),
        other => panic!("{other:?}"),
    }
    let wanted = chain.wanted_checkpoints(10).unwrap();
    assert!(wanted.is_empty(), "{wanted:?} tip {} child {}", tip.hash(), child.hash());
    // Stray files are removed on open.
    std::fs::write(dir.path().join("checkpoints").join("junk.tmp"), b"x").unwrap();
    drop(chain);
    let chain = open(dir.path(), &rules, archive());
    assert!(!dir.path().join("checkpoints").join("junk.tmp").exists());
    assert_eq!(chain.checkpoint(&child.hash()).unwrap(), Some(child.ckpt.clone()));
}

#[test]
fn wrong_network_is_refused() {
    #[derive(Clone, Default)]
    struct Mainnet(SynthRules);
    impl rnet_chain::ChainRules for Mainnet {
        fn network(&self) -> rnet_primitives::Network {
            rnet_primitives::Network::Mainnet
        }
        fn genesis_block(&self) -> rnet_primitives::Block {
            self.0.genesis_block()
        }
        fn genesis_summary(&self) -> rnet_consensus::HeaderSummary {
            self.0.genesis_summary()
        }
        fn genesis_checkpoint(&self) -> Vec<u8> {
            self.0.genesis_checkpoint()
        }
        fn check_block(&self, b: &rnet_primitives::Block) -> Result<(), BlockError> {
            self.0.check_block(b)
        }
        fn check_header_context(
            &self,
            h: &rnet_primitives::BlockHeader,
            c: &dyn rnet_consensus::HeaderChain,
            now: u64,
        ) -> Result<(), BlockError> {
            self.0.check_header_context(h, c, now)
        }
        fn check_proof_of_training(
            &self,
            h: &rnet_primitives::BlockHeader,
            p: &rnet_consensus::HeaderSummary,
            s: &rnet_primitives::EvalSample,
            pc: &[u8],
            c: &[u8],
        ) -> Result<Vec<u8>, BlockError> {
            self.0.check_proof_of_training(h, p, s, pc, c)
        }
        fn summarize_header(
            &self,
            h: &rnet_primitives::BlockHeader,
            c: &dyn rnet_consensus::HeaderChain,
        ) -> rnet_consensus::HeaderSummary {
            self.0.summarize_header(h, c)
        }
        fn connect_block(
            &self,
            b: &rnet_primitives::Block,
            c: &dyn rnet_consensus::HeaderChain,
            u: &dyn rnet_consensus::UtxoView,
        ) -> Result<(rnet_consensus::HeaderSummary, rnet_consensus::BlockEffects), BlockError>
        {
            self.0.connect_block(b, c, u)
        }
        fn expiry_threshold(&self, tip_loss: u64) -> u64 {
            self.0.expiry_threshold(tip_loss)
        }
        fn is_permanent(&self, e: &BlockError) -> bool {
            self.0.is_permanent(e)
        }
    }
    let dir = TempDir::new("network");
    drop(open(dir.path(), &SynthRules::default(), archive()));
    let err =
        rnet_chain::ChainState::open_with(dir.path(), Box::new(Mainnet::default()), archive())
            .err()
            .unwrap();
    assert!(matches!(err, ChainError::WrongNetwork { .. }), "{err}");
}

/// A deterministic pseudo-random walk over branches: after every accepted block the state must
/// equal a from-scratch replay of the active chain.
#[test]
fn random_branch_walk_always_matches_replay() {
    let dir = TempDir::new("walk");
    let rules = SynthRules::default();
    let g = genesis();
    let mut chain = open(dir.path(), &rules, archive());
    let mut all: Vec<Blk> = vec![g.clone()];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..24u64 {
        let parent = all[(next() % all.len() as u64) as usize].clone();
        // Spend the parent's first coinbase output when the parent has one (valid only on
        // the parent's own branch, which is where the block goes).
        let mut txs = vec![coinbase(parent.header().height + 1, 100 + i, &[COIN + i, 3])];
        if parent.header().height > 0 && next() % 2 == 0 {
            txs.push(spend(&[parent.out(0, 0)], &[COIN / 2]));
        }
        let drop_by = 1 + next() % 30_000;
        let blk = block_on(parent.header(), parent.header().val_loss - drop_by, 100 + i, txs);
        accept(&mut chain, &blk);
        all.push(blk);
        chain.verify_consistency().unwrap();
        if i % 6 == 5 {
            // Replay the active chain from scratch.
            let mut path: Vec<&Blk> = Vec::new();
            for h in 1..=chain.height() {
                let hash = chain.block_hash_at(h).unwrap().unwrap();
                path.push(all.iter().find(|b| b.hash() == hash).unwrap());
            }
            assert_eq!(state(&chain), replay(&path));
        }
    }
    // The tip has the lowest loss among all blocks (none is invalid here).
    let best = all.iter().map(|b| b.header().val_loss).min().unwrap();
    assert_eq!(chain.tip().val_loss, best);
}

// ------------------------------------------------------------------------------------------
// Crash injection.

fn crash_fixture() -> (Vec<Blk>, Blk) {
    let g = genesis();
    let a = linear(&g, 3, 900_000, 10_000, 1);
    let next = block_on(
        a[2].header(),
        100_000, // low enough to expire a[0]'s coins in the same transaction
        9,
        vec![coinbase(4, 9, &[SUBSIDY + COIN]), spend(&[a[1].out(0, 0)], &[0])],
    );
    (a, next)
}

fn check_recovered(
    path: &std::path::Path,
    rules: &SynthRules,
    before: &(BlockHash, rnet_primitives::Hash256, Amount),
    a: &[Blk],
    next: &Blk,
) {
    let mut chain = open(path, rules, durable());
    assert_eq!(&state(&chain), before, "reopened state equals the state before the crash");
    chain.verify_consistency().unwrap();
    // The block was stored before the failed connect; activation connects it now.
    let report = chain.activate_best_chain(NOW).unwrap();
    assert_eq!(report.connected, vec![next.hash()]);
    chain.verify_consistency().unwrap();
    let path: Vec<&Blk> = a.iter().chain([next]).collect();
    assert_eq!(state(&chain), replay(&path));
}

#[test]
fn crash_error_mid_connect_leaves_the_state_before() {
    let dir = TempDir::new("crash-error");
    let rules = SynthRules::default();
    let (a, next) = crash_fixture();
    let before = {
        let mut chain = open(dir.path(), &rules, durable());
        for b in &a {
            accept(&mut chain, b);
        }
        let before = state(&chain);
        chain.set_fail_point(Some(FailPoint::ErrorMidConnect));
        let err = chain.accept_block(next.block.clone(), Some(next.ckpt.clone()), NOW).unwrap_err();
        assert!(matches!(err, ChainError::FailPoint(_)));
        assert_eq!(state(&chain), before, "the same handle still sees the old state");
        before
    };
    check_recovered(dir.path(), &rules, &before, &a, &next);
}

#[test]
fn crash_panic_mid_connect_leaves_the_state_before() {
    let dir = TempDir::new("crash-panic");
    let rules = SynthRules::default();
    let (a, next) = crash_fixture();
    let mut chain = open(dir.path(), &rules, durable());
    for b in &a {
        accept(&mut chain, b);
    }
    let before = state(&chain);
    chain.set_fail_point(Some(FailPoint::PanicMidConnect));
    let (block, ckpt) = (next.block.clone(), next.ckpt.clone());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _ = chain.accept_block(block, Some(ckpt), NOW);
    }));
    assert!(result.is_err());
    // `chain` was moved into the closure and dropped during unwinding.
    check_recovered(dir.path(), &rules, &before, &a, &next);
}

#[test]
fn crash_mid_disconnect_during_a_reorg_is_recoverable() {
    let dir = TempDir::new("crash-disconnect");
    let rules = SynthRules::default();
    let g = genesis();
    let a = linear(&g, 4, 900_000, 10_000, 1);
    let b = linear(&a[0], 2, 880_000, 30_000, 2); // tip 850_000 beats a's 870_000
    let before = {
        let mut chain = open(dir.path(), &rules, durable());
        for blk in &a {
            accept(&mut chain, blk);
        }
        accept(&mut chain, &b[0]);
        let before = state(&chain);
        assert_eq!(before.0, a[3].hash());
        chain.set_fail_point(Some(FailPoint::ErrorMidDisconnect));
        assert!(matches!(
            chain.accept_block(b[1].block.clone(), Some(b[1].ckpt.clone()), NOW),
            Err(ChainError::FailPoint(_))
        ));
        before
    };
    let mut chain = open(dir.path(), &rules, durable());
    assert_eq!(state(&chain), before);
    chain.verify_consistency().unwrap();
    chain.activate_best_chain(NOW).unwrap();
    assert_eq!(state(&chain), replay(&[&a[0], &b[0], &b[1]]));
    chain.verify_consistency().unwrap();
}

/// Runs in a child process (see `sigkill_mid_connect`): opens the prepared chainstate and
/// connects the prepared block with a fail point that hangs inside the write transaction.
#[test]
fn sigkill_child() {
    let Ok(dir) = std::env::var("RNET_CHAIN_SIGKILL_DIR") else { return };
    let dir = std::path::PathBuf::from(dir);
    let bytes = std::fs::read(dir.join("next.block")).unwrap();
    let block = rnet_primitives::Block::from_bytes(&bytes).unwrap();
    let ckpt = std::fs::read(dir.join("next.ckpt")).unwrap();
    let mut chain = open(&dir.join("data"), &SynthRules::default(), durable());
    chain.set_fail_point(Some(FailPoint::HangMidConnect(dir.join("marker"))));
    let _ = chain.accept_block(block, Some(ckpt), NOW);
    unreachable!("the fail point hangs until the process is killed");
}

#[cfg(unix)]
#[test]
fn sigkill_mid_connect_leaves_a_consistent_state() {
    let dir = TempDir::new("sigkill");
    let rules = SynthRules::default();
    let (a, next) = crash_fixture();
    let data = dir.path().join("data");
    let before = {
        let mut chain = open(&data, &rules, durable());
        for b in &a {
            accept(&mut chain, b);
        }
        state(&chain)
    };
    std::fs::write(dir.path().join("next.block"), next.block.to_bytes()).unwrap();
    std::fs::write(dir.path().join("next.ckpt"), &next.ckpt).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigkill_child", "--nocapture", "--test-threads=1"])
        .env("RNET_CHAIN_SIGKILL_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = dir.path().join("marker");
    let start = std::time::Instant::now();
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child exited early: {status}");
        }
        assert!(start.elapsed().as_secs() < 120, "child never reached the fail point");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, mid-transaction
    child.wait().unwrap();
    check_recovered(&data, &rules, &before, &a, &next);
}

#[test]
fn chainstate_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<rnet_chain::ChainState>();
}

#[test]
fn a_corrupt_database_is_a_typed_error() {
    use redb::{Database, ReadableTable, TableDefinition};
    const INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("block_index");
    const UTXO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("utxo");
    let dir = TempDir::new("corrupt");
    let rules = SynthRules::default();
    let g = genesis();
    let b1 = simple(g.header(), 900_000, 1, &[COIN]);
    {
        let mut chain = open(dir.path(), &rules, archive());
        accept(&mut chain, &b1);
    }
    let db_path = dir.path().join(rnet_chain::schema::DB_FILE);
    // A coin record that does not decode.
    {
        let db = Database::create(&db_path).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(UTXO).unwrap().insert(&[7u8; 36][..], &[1u8, 2, 3][..]).unwrap();
        w.commit().unwrap();
    }
    {
        let chain = open(dir.path(), &rules, archive());
        let err = chain.utxo_set_hash().unwrap_err();
        assert!(matches!(err, ChainError::CorruptRecord { table: "utxo", .. }), "{err}");
        assert!(chain.verify_consistency().is_err());
    }
    // The tip's index entry truncated: opening fails with a typed error.
    {
        let db = Database::create(&db_path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(INDEX).unwrap();
            let key = b1.hash();
            let v = t.get(key.as_bytes().as_slice()).unwrap().unwrap().value().to_vec();
            t.insert(key.as_bytes().as_slice(), &v[..v.len() - 1]).unwrap();
        }
        w.commit().unwrap();
    }
    let err = rnet_chain::ChainState::open_with(dir.path(), Box::new(rules.clone()), archive())
        .err()
        .unwrap();
    assert!(matches!(err, ChainError::CorruptRecord { table: "block_index", .. }), "{err}");
}
