//! Side-branch storage (issue 14 item 4), with synthetic rules (see `common`): descendants of
//! unvalidated blocks get the contextual header check before they are stored, the unvalidated
//! stretch above the last validated ancestor is bounded, and checkpoints of side branches that
//! cannot become best are pruned once they are deep enough below the tip.

mod common;

use common::*;
use rnet_chain::{
    AcceptOutcome, BlockStatus, ChainError, ChainOptions, ChainState, MAX_UNVALIDATED_DEPTH,
};
use rnet_consensus::BlockError;
use rnet_primitives::COIN;
use std::path::Path;

/// Accepts a block without its checkpoint.
fn accept_bare(chain: &mut ChainState, b: &Blk) -> Result<AcceptOutcome, ChainError> {
    chain.accept_block(b.block.clone(), None, NOW)
}

/// Whether the checkpoint file of `b` exists in the data directory.
fn ckpt_file(dir: &Path, b: &Blk) -> bool {
    dir.join("checkpoints").join(format!("{}.ckpt", b.hash())).exists()
}

/// `b` with a header field changed (synthetic blocks carry no signature; the merkle root is
/// recomputed so the block still passes the context-free checks).
fn with_header(mut b: Blk, edit: impl FnOnce(&mut rnet_primitives::BlockHeader)) -> Blk {
    edit(&mut b.block.header);
    b.block.header.merkle_root = b.block.compute_merkle_root().0;
    b
}

#[test]
fn descendants_of_unvalidated_blocks_get_the_header_check_before_storing() {
    let dir = TempDir::new("unvalidated-descendants");
    let rules = SynthRules::default();
    let g = genesis();
    let mut chain = open(dir.path(), &rules, archive());
    // a1 arrives without its checkpoint: stored, never validated.
    let a1 = simple(g.header(), 990_000, 1, &[COIN]);
    assert_eq!(accept_bare(&mut chain, &a1).unwrap(), AcceptOutcome::MissingUpdate);
    // An honest child and grandchild of the unvalidated block are stored.
    let a2 = simple(a1.header(), 980_000, 2, &[COIN]);
    assert_eq!(accept(&mut chain, &a2), AcceptOutcome::MissingUpdate);
    assert!(chain.block(&a2.hash()).unwrap().is_some());

    // A grandchild whose loss does not improve on its (unvalidated) parent: rejected for good,
    // its data not stored.
    let no_gain = simple(a2.header(), 980_000, 3, &[COIN]);
    let err = chain.accept_block(no_gain.block.clone(), Some(no_gain.ckpt.clone()), NOW);
    assert!(
        matches!(err, Err(ChainError::InvalidBlock { hash, reason: BlockError::InsufficientImprovement { .. } }) if hash == no_gain.hash()),
        "{err:?}"
    );
    assert!(chain.block(&no_gain.hash()).unwrap().is_none());
    assert!(!chain.has_checkpoint(&no_gain.hash()).unwrap());
    assert!(!ckpt_file(dir.path(), &no_gain));
    assert_eq!(chain.block_status(&no_gain.hash()).unwrap(), Some(BlockStatus::Invalid));

    // A great-grandchild of a1 whose time is not after its parent's (two unvalidated blocks
    // between it and genesis).
    let a3 = simple(a2.header(), 970_000, 4, &[COIN]);
    assert_eq!(accept(&mut chain, &a3), AcceptOutcome::MissingUpdate);
    let stale =
        with_header(simple(a3.header(), 960_000, 5, &[COIN]), |h| h.time = a3.header().time);
    let err = chain.accept_block(stale.block.clone(), Some(stale.ckpt.clone()), NOW);
    assert!(
        matches!(err, Err(ChainError::InvalidBlock { reason: BlockError::TimeTooOld { .. }, .. })),
        "{err:?}"
    );
    assert!(chain.block(&stale.hash()).unwrap().is_none());

    // A time too far ahead is temporary: nothing recorded, accepted once the time has come.
    let early = with_header(simple(a3.header(), 960_000, 6, &[COIN]), |h| h.time = NOW + 10_000);
    let err = chain.accept_block(early.block.clone(), Some(early.ckpt.clone()), NOW);
    assert!(
        matches!(err, Err(ChainError::InvalidBlock { reason: BlockError::TimeTooNew { .. }, .. })),
        "{err:?}"
    );
    assert_eq!(chain.block_status(&early.hash()).unwrap(), None);
    assert_eq!(
        chain.accept_block(early.block.clone(), Some(early.ckpt.clone()), NOW + 5_000).unwrap(),
        AcceptOutcome::MissingUpdate
    );

    // Once a1's checkpoint arrives the honest branch connects.
    match chain.accept_update(&a1.hash(), a1.ckpt.clone(), NOW + 5_000).unwrap() {
        AcceptOutcome::Connected { new_tip, .. } => assert_eq!(new_tip.hash, early.hash()),
        other => panic!("{other:?}"),
    }
    chain.verify_consistency().unwrap();
}

#[test]
fn unvalidated_stretch_is_bounded_and_not_recorded() {
    let dir = TempDir::new("unvalidated-depth");
    let rules = SynthRules::default();
    let g = genesis();
    let mut chain = open(dir.path(), &rules, archive());
    let depth = MAX_UNVALIDATED_DEPTH as usize;
    let mut branch: Vec<Blk> = Vec::with_capacity(depth + 1);
    for i in 0..=depth {
        let parent = branch.last().unwrap_or(&g).header().clone();
        branch.push(simple(&parent, 990_000 - 100 * i as u64, 10_000 + i as u64, &[COIN]));
    }
    // The first block lacks its checkpoint, so the whole branch stays unvalidated.
    assert_eq!(accept_bare(&mut chain, &branch[0]).unwrap(), AcceptOutcome::MissingUpdate);
    let mut times = Vec::with_capacity(depth);
    for b in &branch[1..depth] {
        let t0 = std::time::Instant::now();
        assert_eq!(accept(&mut chain, b), AcceptOutcome::MissingUpdate);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "accept_block of an unvalidated descendant (synthetic rules, debug build): {:.3} ms at \
         1 unvalidated ancestor, {:.3} ms at {} (the bound)",
        times[0],
        times[times.len() - 1],
        depth - 1
    );
    // One more would be MAX_UNVALIDATED_DEPTH + 1 blocks above genesis, the last validated
    // ancestor: refused, not recorded, not a verdict on the block.
    let last = &branch[depth];
    let err = chain.accept_block(last.block.clone(), Some(last.ckpt.clone()), NOW).unwrap_err();
    assert!(
        matches!(err, ChainError::TooFarAboveValidated { hash, height, max_depth }
            if hash == last.hash() && height as usize == depth + 1
                && max_depth == MAX_UNVALIDATED_DEPTH),
        "{err:?}"
    );
    assert_eq!(chain.block_status(&last.hash()).unwrap(), None);
    assert!(!ckpt_file(dir.path(), last));
    // When the branch is validated, the same block is accepted.
    chain.accept_update(&branch[0].hash(), branch[0].ckpt.clone(), NOW).unwrap();
    assert_eq!(chain.tip().hash, branch[depth - 1].hash());
    assert!(matches!(accept(&mut chain, last), AcceptOutcome::Connected { .. }));
    chain.verify_consistency().unwrap();
}

#[test]
fn losing_side_branch_updates_are_pruned_once_deep() {
    let dir = TempDir::new("prune-side");
    let rules = SynthRules::default();
    const K: u32 = 3;
    let options = ChainOptions { prune_checkpoints_depth: K, ..archive() };
    let g = genesis();
    let mut chain = open(dir.path(), &rules, options.clone());
    let main1 = simple(g.header(), 990_000, 1, &[COIN]);
    accept(&mut chain, &main1);
    // A losing side branch (less chainwork than the tip), stored with its updates (never
    // validated, so without checkpoints).
    let lose1 = simple(g.header(), 995_000, 2, &[COIN]);
    let lose2 = simple(lose1.header(), 994_000, 3, &[COIN]);
    assert_eq!(accept(&mut chain, &lose1), AcceptOutcome::StoredSideBranch);
    assert_eq!(accept(&mut chain, &lose2), AcceptOutcome::StoredSideBranch);
    // An in-progress branch whose (not yet validatable) tip claims more chainwork than any tip
    // the main chain reaches in this test: its stored updates are kept.
    let win1 = simple(g.header(), 996_000, 4, &[COIN]);
    let win2 = simple(win1.header(), 500_000, 5, &[COIN]);
    assert_eq!(accept(&mut chain, &win1), AcceptOutcome::StoredSideBranch);
    assert_eq!(accept_bare(&mut chain, &win2).unwrap(), AcceptOutcome::MissingUpdate);
    for b in [&lose1, &lose2, &win1] {
        assert!(chain.has_update(&b.hash()).unwrap());
        assert!(!chain.has_checkpoint(&b.hash()).unwrap());
        assert!(!ckpt_file(dir.path(), b));
    }

    // The main chain advances; within K blocks of the losing branch nothing is pruned.
    let mut parent = main1.clone();
    let mut main = vec![main1.clone()];
    for i in 0..K - 1 {
        let b =
            simple(parent.header(), 980_000 - 10_000 * u64::from(i), 20 + u64::from(i), &[COIN]);
        assert!(matches!(accept(&mut chain, &b), AcceptOutcome::Connected { .. }));
        parent = b.clone();
        main.push(b);
    }
    // Tip height K: lose1 (height 1) is within the last K heights, still kept.
    assert!(chain.has_update(&lose1.hash()).unwrap());
    // One more block: lose1 is K below the tip (height <= tip height - K), out of the window.
    let b = simple(parent.header(), 900_000, 30, &[COIN]);
    assert!(matches!(accept(&mut chain, &b), AcceptOutcome::Connected { .. }));
    parent = b.clone();
    main.push(b);
    assert!(!chain.has_update(&lose1.hash()).unwrap());
    assert_eq!(chain.update(&lose1.hash()).unwrap(), None);
    // lose2 (height 2) is still within K.
    assert!(chain.has_update(&lose2.hash()).unwrap());
    let b = simple(parent.header(), 890_000, 31, &[COIN]);
    assert!(matches!(accept(&mut chain, &b), AcceptOutcome::Connected { .. }));
    assert!(!chain.has_update(&lose2.hash()).unwrap());
    // The block data of the losing branch stays (small; it keeps the index whole).
    assert!(chain.block(&lose2.hash()).unwrap().is_some());
    assert_eq!(chain.block_status(&lose2.hash()).unwrap(), Some(BlockStatus::DataStored));
    // The branch that can still become best keeps its update.
    assert!(chain.has_update(&win1.hash()).unwrap());
    // The active chain keeps its last K checkpoints.
    let tip_h = chain.height();
    for h in tip_h - K + 1..=tip_h {
        assert!(chain.has_checkpoint(&chain.block_hash_at(h).unwrap().unwrap()).unwrap());
    }
    chain.verify_consistency().unwrap();

    // After a restart the index agrees with the files; the pruned losing branch is not wanted.
    drop(chain);
    let mut chain = open(dir.path(), &rules, options);
    assert!(!chain.has_update(&lose1.hash()).unwrap());
    assert!(chain.has_update(&win1.hash()).unwrap());
    let wanted = chain.wanted_updates(16).unwrap();
    assert!(!wanted.contains(&lose1.hash()) && !wanted.contains(&lose2.hash()), "{wanted:?}");
    assert!(wanted.contains(&win2.hash()));
    // The in-progress branch completes. It forks more than K blocks below the tip, so its first
    // block needs the pruned genesis checkpoint back (docs/chainstate.md §5): validation asks
    // for it, and the branch wins once it arrives.
    assert_eq!(
        chain.accept_update(&win2.hash(), win2.ckpt.clone(), NOW).unwrap(),
        AcceptOutcome::StoredSideBranch
    );
    assert_eq!(chain.wanted_checkpoints(16).unwrap(), vec![g.hash()]);
    match chain.accept_checkpoint(&g.hash(), g.ckpt.clone(), NOW).unwrap() {
        AcceptOutcome::Connected { new_tip, .. } => assert_eq!(new_tip.hash, win2.hash()),
        other => panic!("{other:?}"),
    }
    chain.verify_consistency().unwrap();
}
