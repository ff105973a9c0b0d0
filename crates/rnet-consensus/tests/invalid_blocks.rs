//! The corpus of invalid blocks: each is a real regtest block (trained checkpoint, signed header)
//! with one thing wrong, and each is rejected for its own reason.

mod common;

use common::*;
use rnet_consensus::{
    BlockError, ChainParams, CorpusTree, HeaderChain, TxError, block_subsidy, build_sample,
    check_block, check_header_context, median_time_past,
};
use rnet_model::{Checkpoint, ModelUpdate, UpdateEntry, UpdateError, UpdateFormatError, grow};
use rnet_primitives::{Amount, Hash256, OutPoint, SampleRecord, TxOut};
use rnet_script::{RelativeLock, ScriptError, TxScriptError};
use rnet_testkit::{
    MemoryChain, TestMiner, plain_spk, sign_header, sign_plain, spend_plain, test_key, unsigned_tx,
};

/// A valid block on the base chain is accepted (the control for every case below).
#[test]
fn control_valid_block_with_a_spend_is_accepted() {
    let (mut chain, miner) = base();
    let (op, out) = coinbase_coin(&chain, 1);
    let tx = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0 - 1000)]);
    let t = template(&chain, &miner, vec![tx]);
    assert_eq!(t.fees, Amount(1000));
    let mined = t.finish(&miner.key);
    let connected = chain.submit(&mined).expect("valid");
    assert_eq!(connected.effects.fees, Amount(1000));
    assert_eq!(chain.utxo_value(), chain.tip().circulating_supply);
}

#[test]
fn faked_val_loss() {
    let (mut chain, miner) = base();
    let mut t = template(&chain, &miner, vec![]);
    t.header.val_loss -= 1000; // claims a better loss than the checkpoint has
    let mined = t.finish(&miner.key);
    let e = reject(&mut chain, &mined);
    assert!(
        matches!(e, BlockError::ValLossMismatch { claimed, evaluated } if evaluated == claimed + 1000)
    );
    assert!(e.is_permanent());
}

#[test]
fn loss_above_parent_minus_required() {
    let (mut chain, miner) = base();
    let mut t = template(&chain, &miner, vec![]);
    // An empty update: the block's model is the grown parent, which on its sample scores like
    // the parent.
    let empty = ModelUpdate::new(t.grown_parent.config().clone(), vec![]).unwrap();
    t.set_update(&empty).unwrap();
    let required = required(&chain);
    assert!(t.header.val_loss + required > t.header.parent_loss);
    let mined = t.finish(&miner.key);
    // The header stage already rejects the claim...
    let e = reject(&mut chain, &mined);
    assert!(
        matches!(e, BlockError::InsufficientImprovement { required: r, .. } if r == required),
        "{e:?}"
    );
    assert!(e.is_permanent());
    // ...and so does Proof-of-Training on its own.
    assert!(matches!(
        pot(&chain, &mined.block, &mined.update_bytes),
        Err(BlockError::InsufficientImprovement { .. })
    ));
}

#[test]
fn wrong_required_improvement_field() {
    let (mut chain, miner) = base();
    let required = required(&chain);
    let mut t = template(&chain, &miner, vec![]);
    t.header.required_improvement = required - 1;
    let mined = t.finish(&miner.key);
    assert_eq!(
        reject(&mut chain, &mined),
        BlockError::BadRequiredImprovement { expected: required, got: required - 1 }
    );
    // Claiming the stall discount without the time for it: `required_eff` is computed from the
    // header's own time, so halving it needs 6 spacings since the parent.
    let mut t = template(&chain, &miner, vec![]);
    t.header.required_improvement = required / 2;
    assert_eq!(
        reject(&mut chain, &t.finish(&miner.key)),
        BlockError::BadRequiredImprovement { expected: required, got: required / 2 }
    );
}

#[test]
fn wrong_shape() {
    let (mut chain, miner) = base();
    let mut t = template(&chain, &miner, vec![]);
    let expected = (t.header.shape.d_model, t.header.shape.n_layers);
    t.header.shape.d_model += 2;
    let mined = t.finish(&miner.key);
    assert_eq!(
        reject(&mut chain, &mined),
        BlockError::BadShape { expected, got: (expected.0 + 2, expected.1) }
    );
    // A checkpoint of another shape committed by a header with the right shape.
    let mut t = template(&chain, &miner, vec![]);
    let bigger = grow(&t.checkpoint.model, expected.0 as usize + 2, 2, 3).unwrap();
    t.set_checkpoint_bytes(Checkpoint::new(8, bigger).to_bytes());
    let mined = t.finish(&miner.key);
    assert!(matches!(reject(&mut chain, &mined), BlockError::BadCheckpointSize { .. }));
    let header = mined.block.header.clone();
    assert!(matches!(
        check_header_context(chain.params(), &header, &chain, header.time),
        Err(BlockError::BadCheckpointSize { .. })
    ));
    // The update gives the right shape, so its result is not the committed root.
    assert!(matches!(
        pot(&chain, &mined.block, &mined.update_bytes),
        Err(BlockError::BadUpdate(UpdateError::RootMismatch { .. }))
    ));
}

#[test]
fn update_root_or_size_mismatch() {
    let (mut chain, miner) = base();
    let mined = template(&chain, &miner, vec![]).finish(&miner.key);
    // One flipped byte: same size, other root. A relay's fault, not the block's.
    let mut bytes = mined.update_bytes.clone();
    let n = bytes.len();
    bytes[n - 5] ^= 1;
    let e = chain.submit_at(&mined.block, &bytes, mined.block.header.time).unwrap_err();
    let rnet_testkit::SubmitError::Invalid(e) = e else { panic!() };
    assert_eq!(e, BlockError::UpdateRootMismatch);
    assert!(e.is_data_mismatch() && !e.is_permanent());
    // One byte more.
    let mut bytes = mined.update_bytes.clone();
    bytes.push(0);
    let e = pot(&chain, &mined.block, &bytes);
    assert_eq!(e, Err(BlockError::UpdateSizeMismatch { header: n as u64, actual: n as u64 + 1 }));
    // The header's own checkpoint size field is checked against the shape.
    let mut t = template(&chain, &miner, vec![]);
    let size = t.header.checkpoint_size;
    t.header.checkpoint_size += 4;
    let mined = t.finish(&miner.key);
    assert_eq!(
        reject(&mut chain, &mined),
        BlockError::BadCheckpointSize { expected: size, got: size + 4 }
    );
    // The header's update size must lie between an empty update and `max_update_bytes`.
    let max = chain.params().max_update_bytes;
    for bad in [0, 7, max + 1] {
        let mut t = template(&chain, &miner, vec![]);
        t.header.update_size = bad;
        let e = reject(&mut chain, &t.finish(&miner.key));
        assert!(
            matches!(e, BlockError::BadUpdateSize { size, max: m, .. } if size == bad && m == max)
        );
        assert!(e.is_permanent());
    }
}

#[test]
fn missing_update() {
    let (mut chain, miner) = base();
    let mined = template(&chain, &miner, vec![]).finish(&miner.key);
    let e = chain.submit_at(&mined.block, &[], mined.block.header.time).unwrap_err();
    let rnet_testkit::SubmitError::Invalid(e) = e else { panic!() };
    assert_eq!(e, BlockError::MissingUpdate);
    assert!(!e.is_permanent());
    // The same block with its update is fine, and gives the committed checkpoint.
    chain.submit(&mined).unwrap();
    assert_eq!(chain.tip_checkpoint().to_bytes(), mined.checkpoint_bytes);
}

/// A template whose update is replaced by `update`'s bytes (committed by the header) while the
/// checkpoint commitment and the claimed losses stay those of the trained block.
fn with_update_bytes(
    chain: &MemoryChain,
    miner: &TestMiner,
    bytes: Vec<u8>,
) -> rnet_testkit::MinedBlock {
    let mut t = template(chain, miner, vec![]);
    t.set_update_bytes(bytes);
    t.finish(&miner.key)
}

/// Each defect of an update the header commits to makes the block invalid for good, each with
/// its own error, before anything is evaluated (Part III §5.2).
#[test]
fn malformed_update_committed_by_the_header() {
    let (mut chain, miner) = base();
    let t = template(&chain, &miner, vec![]);
    let config = t.grown_parent.config().clone();
    let layout = t.grown_parent.layout().clone();
    let (rows, cols) = (256usize, config.d_model);
    let parent_config = chain.tip_checkpoint().model.config().clone();
    let max_rank = chain.params().max_rank;
    let mut check = |bytes: Vec<u8>, what: &str, ok: &dyn Fn(&BlockError) -> bool| {
        let mined = with_update_bytes(&chain, &miner, bytes);
        let e = reject(&mut chain, &mined);
        assert!(ok(&e), "{what}: {e:?}");
        assert!(e.is_permanent(), "{what}");
    };

    // Bytes that are not an update.
    check(vec![0x55; 200], "garbage", &|e| {
        matches!(e, BlockError::InvalidUpdate(UpdateFormatError::BadMagic(_)))
    });
    let norm_f = UpdateEntry::replace(&layout, "norm_f", vec![1.0; config.d_model]).unwrap();
    let mut truncated = ModelUpdate::new(config.clone(), vec![norm_f]).unwrap().encode();
    truncated.pop();
    check(truncated, "truncated", &|e| {
        matches!(e, BlockError::InvalidUpdate(UpdateFormatError::Truncated { .. }))
    });

    // Built for the parent's (ungrown) tensor list.
    assert_ne!(parent_config, config, "regtest grows every block");
    let stale = ModelUpdate::new(parent_config, vec![]).unwrap().encode();
    check(stale, "tensor list", &|e| {
        matches!(e, BlockError::BadUpdate(UpdateError::TensorListMismatch { .. }))
    });

    // A rank above `max_rank`.
    let rank = max_rank + 1;
    let r = rank as usize;
    let entry =
        UpdateEntry::low_rank(&layout, "embed", rank, vec![0.0; rows * r], vec![0.0; r * cols])
            .unwrap();
    let high = ModelUpdate::new(config.clone(), vec![entry]).unwrap().encode();
    check(high, "rank", &|e| matches!(e, BlockError::BadUpdate(UpdateError::RankTooHigh { .. })));

    // A NaN and a subnormal value in the update.
    for (value, name) in [(f32::NAN, "nan"), (f32::from_bits(3), "subnormal")] {
        let mut values = t.grown_parent.params()[layout.tensors[0].range()].to_vec();
        values[5] = value;
        let entry = UpdateEntry::replace(&layout, "embed", values).unwrap();
        let bytes = ModelUpdate::new(config.clone(), vec![entry]).unwrap().encode();
        check(bytes, name, &|e| {
            matches!(
                e,
                BlockError::BadUpdate(
                    UpdateError::NonFiniteValue { .. } | UpdateError::SubnormalValue { .. }
                )
            )
        });
    }

    // Finite factors whose product overflows: a non-finite result.
    let entry =
        UpdateEntry::low_rank(&layout, "embed", 1, vec![1e30; rows], vec![1e30; cols]).unwrap();
    let overflow = ModelUpdate::new(config.clone(), vec![entry]).unwrap().encode();
    check(overflow, "overflow", &|e| {
        matches!(e, BlockError::BadUpdate(UpdateError::NonFiniteResult { .. }))
    });

    // A valid update whose result is not the committed checkpoint (here: the grown parent).
    let empty = ModelUpdate::new(config.clone(), vec![]).unwrap().encode();
    check(empty, "root", &|e| matches!(e, BlockError::BadUpdate(UpdateError::RootMismatch { .. })));

    // An update over `max_update_bytes`: the header stage refuses its size, and applying it
    // alone refuses it too.
    let r = 7300usize;
    let entry =
        UpdateEntry::low_rank(&layout, "embed", r as u32, vec![0.0; rows * r], vec![0.0; r * cols])
            .unwrap();
    let huge = ModelUpdate::new(config.clone(), vec![entry]).unwrap().encode();
    assert!(huge.len() as u64 > chain.params().max_update_bytes);
    let mined = with_update_bytes(&chain, &miner, huge);
    assert!(matches!(reject(&mut chain, &mined), BlockError::BadUpdateSize { .. }));
    assert!(matches!(
        pot(&chain, &mined.block, &mined.update_bytes),
        Err(BlockError::BadUpdate(UpdateError::TooLarge { .. }))
    ));
}

#[test]
fn bad_miner_signature() {
    let (mut chain, miner) = base();
    let mut mined = template(&chain, &miner, vec![]).finish(&miner.key);
    mined.block.header.signature[10] ^= 1;
    let e = reject(&mut chain, &mined);
    assert_eq!(e, BlockError::BadMinerSignature);
    assert!(e.is_data_mismatch());
    // Signed by a key other than the header's.
    let other = test_key(0x77);
    mined.block.header.signature = other.sign(mined.block.header.hash().as_bytes()).to_bytes();
    assert_eq!(reject(&mut chain, &mined), BlockError::BadMinerSignature);
    // A key that is not a curve point (y = 2 has no x on edwards25519).
    let mut key = [0u8; 32];
    key[0] = 2;
    mined.block.header.miner_pubkey = key;
    assert_eq!(check_block(chain.params(), &mined.block), Err(BlockError::BadMinerKey));
}

#[test]
fn time_not_after_median_time_past() {
    let (mut chain, miner) = base();
    let mtp = median_time_past(&chain, chain.height());
    let mut t = template(&chain, &miner, vec![]);
    t.header.time = mtp;
    let mined = t.finish(&miner.key);
    assert_eq!(
        reject_at(&mut chain, &mined, mtp + 10_000),
        BlockError::TimeTooOld { time: mtp, median_time_past: mtp }
    );
    let mut t = template(&chain, &miner, vec![]);
    t.header.time = mtp + 1;
    chain.submit(&t.finish(&miner.key)).unwrap();
}

#[test]
fn time_too_far_ahead() {
    let (mut chain, miner) = base();
    let mined = template(&chain, &miner, vec![]).finish(&miner.key);
    let time = mined.block.header.time;
    let now = time - 7201;
    let e = reject_at(&mut chain, &mined, now);
    assert_eq!(e, BlockError::TimeTooNew { time, now });
    assert!(!e.is_permanent());
    // Exactly two hours ahead is fine.
    chain.submit_at(&mined.block, &mined.update_bytes, time - 7200).unwrap();
}

#[test]
fn bad_merkle_root() {
    let (mut chain, miner) = base();
    let mut mined = template(&chain, &miner, vec![]).finish(&miner.key);
    mined.block.header.merkle_root = Hash256([9; 32]);
    sign_header(&mut mined.block.header, &miner.key);
    let e = reject(&mut chain, &mined);
    assert_eq!(e, BlockError::BadMerkleRoot);
    assert!(e.is_data_mismatch());
    // Transactions changed under a valid header.
    let mut mined = template(&chain, &miner, vec![]).finish(&miner.key);
    mined.block.transactions[0].outputs[0].value.0 -= 1;
    assert_eq!(reject(&mut chain, &mined), BlockError::BadMerkleRoot);
}

#[test]
fn mutated_merkle_tree() {
    let (mut chain, miner) = base();
    let (op1, out1) = coinbase_coin(&chain, 1);
    let (op2, out2) = coinbase_coin(&chain, 2);
    let a = spend_plain(&payout_key(), &[(op1, out1.clone())], vec![to_payout(out1.value.0)]);
    let b = spend_plain(&payout_key(), &[(op2, out2.clone())], vec![to_payout(out2.value.0)]);
    // [cb, a, b, b] has the root of [cb, a, b].
    let mined = template(&chain, &miner, vec![a, b.clone(), b]).finish(&miner.key);
    let e = reject(&mut chain, &mined);
    assert_eq!(e, BlockError::MutatedMerkle);
    assert!(e.is_data_mismatch());
}

#[test]
fn duplicate_transaction() {
    let (mut chain, miner) = base();
    let (op, out) = coinbase_coin(&chain, 1);
    let a = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0)]);
    let txid = a.txid();
    // [cb, a, a] is not a mutation (a and a are not siblings) but repeats a txid.
    let mined = template(&chain, &miner, vec![a.clone(), a]).finish(&miner.key);
    let e = reject(&mut chain, &mined);
    assert_eq!(e, BlockError::DuplicateTransaction { txid });
    assert!(e.is_permanent());
}

#[test]
fn double_spend_inside_the_block() {
    let (mut chain, miner) = base();
    let (op, out) = coinbase_coin(&chain, 1);
    let a = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0)]);
    let b = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0 - 5)]);
    let mined = template(&chain, &miner, vec![a, b]).finish(&miner.key);
    assert_eq!(
        tx_error(reject(&mut chain, &mined)),
        (2, TxError::DoubleSpendInBlock { input: 0, outpoint: op })
    );
}

#[test]
fn spending_an_output_of_the_same_block_is_allowed_in_order() {
    let (mut chain, miner) = base();
    let (op, out) = coinbase_coin(&chain, 1);
    let a = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0 - 10)]);
    let a_out = (OutPoint::new(a.txid(), 0), a.outputs[0].clone());
    let b =
        spend_plain(&payout_key(), std::slice::from_ref(&a_out), vec![to_payout(out.value.0 - 30)]);
    // Child before parent: the parent's output does not exist yet.
    let mined = template(&chain, &miner, vec![b.clone(), a.clone()]).finish(&miner.key);
    assert_eq!(
        tx_error(reject(&mut chain, &mined)),
        (1, TxError::MissingOrSpent { input: 0, outpoint: a_out.0 })
    );
    // In order it connects; the intermediate output is neither created nor spent (net effects).
    let mined = template(&chain, &miner, vec![a, b.clone()]).finish(&miner.key);
    let c = chain.submit(&mined).unwrap();
    assert_eq!(c.effects.fees, Amount(30));
    assert!(!chain.utxo_set().contains_key(&a_out.0));
    assert!(chain.utxo_set().contains_key(&OutPoint::new(b.txid(), 0)));
    assert_eq!(c.effects.spent.len(), 1);
}

#[test]
fn double_spend_against_the_chain() {
    let (mut chain, miner) = base();
    let (op, out) = coinbase_coin(&chain, 1);
    let a = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0)]);
    chain.mine(&miner, vec![a], plain_spk(&payout_key())).unwrap();
    let b = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0 - 1)]);
    let mined = template(&chain, &miner, vec![b]).finish(&miner.key);
    assert_eq!(
        tx_error(reject(&mut chain, &mined)),
        (1, TxError::MissingOrSpent { input: 0, outpoint: op })
    );
}

#[test]
fn spend_of_an_expired_coin() {
    // Regtest with a ratio of 1.01, so the first coins expire after a few blocks of the floor.
    let params = ChainParams { expiry_ratio: (101, 100), ..ChainParams::regtest() };
    let miner = TestMiner::new(params.clone());
    let mut chain = MemoryChain::new(params);
    chain.mine_empty(&miner, 1, &plain_spk(&payout_key())).unwrap();
    let (op, out) = coinbase_coin(&chain, 1);
    let coin_index = chain.utxo_set()[&op].creation_loss_index;
    let mut expired_at = None;
    for _ in 0..40 {
        let (_, c) = chain.mine(&miner, vec![], plain_spk(&payout_key())).unwrap();
        // The sweep takes exactly the coins at or above the threshold of the new index.
        let threshold = rnet_consensus::expiry_threshold(chain.params(), c.summary.loss_index);
        assert_eq!(c.expired.iter().any(|(o, _)| *o == op), coin_index >= threshold);
        // The new block's own coinbase never expires with it.
        let new_cb = OutPoint::new(chain.block(chain.height()).unwrap().transactions[0].txid(), 0);
        assert!(chain.utxo_set().contains_key(&new_cb));
        assert_eq!(chain.utxo_value(), chain.tip().circulating_supply);
        if coin_index >= threshold {
            expired_at = Some(chain.height());
            break;
        }
    }
    let expired_at = expired_at.expect("the coin expires");
    // Mature by then (maturity 5): the spend is refused for expiry, not immaturity.
    while chain.height() < 6 {
        chain.mine(&miner, vec![], plain_spk(&payout_key())).unwrap();
    }
    assert!(expired_at >= 2);
    let tx = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0)]);
    let mined = template(&chain, &miner, vec![tx]).finish(&miner.key);
    assert_eq!(
        tx_error(reject(&mut chain, &mined)),
        (1, TxError::Expired { input: 0, outpoint: op })
    );
}

#[test]
fn immature_coinbase() {
    let (mut chain, miner) = base();
    // Block 8 may spend coinbases of heights ≤ 8 − 5 = 3; height 4 is immature.
    let (op, out) = coinbase_coin(&chain, 4);
    let tx = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0)]);
    let mined = template(&chain, &miner, vec![tx]).finish(&miner.key);
    assert_eq!(
        tx_error(reject(&mut chain, &mined)),
        (1, TxError::ImmatureCoinbase { input: 0, coin_height: 4, height: 8 })
    );
    let (op, out) = coinbase_coin(&chain, 3);
    let tx = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0)]);
    chain.mine(&miner, vec![tx], plain_spk(&payout_key())).unwrap();
}

#[test]
fn unmet_relative_lock_csv() {
    let (mut chain, miner) = base();
    // Coin of height 1 (7 blocks deep at the tip): a 7-block relative lock passes in block 8,
    // an 8-block one does not.
    let (op, out) = coinbase_coin(&chain, 1);
    let key = payout_key();
    let build = |blocks: u16| {
        let mut tx = unsigned_tx(
            2,
            &[(op, RelativeLock::Blocks(blocks).to_sequence())],
            vec![to_payout(out.value.0)],
            0,
        );
        sign_plain(&mut tx, std::slice::from_ref(&out), &key);
        tx
    };
    let mined = template(&chain, &miner, vec![build(8)]).finish(&miner.key);
    assert_eq!(tx_error(reject(&mut chain, &mined)), (1, TxError::SequenceLocked { input: 0 }));
    // Version 1 transactions carry no relative locks (BIP68).
    let mut v1 = unsigned_tx(1, &[(op, 8)], vec![to_payout(out.value.0)], 0);
    sign_plain(&mut v1, std::slice::from_ref(&out), &key);
    let mined = template(&chain, &miner, vec![v1]).finish(&miner.key);
    chain.submit(&mined).unwrap();
    chain.disconnect_tip().unwrap();
    let mined = template(&chain, &miner, vec![build(7)]).finish(&miner.key);
    chain.submit(&mined).unwrap();
}

#[test]
fn unmet_absolute_lock_cltv() {
    let (mut chain, miner) = base();
    let (op, out) = coinbase_coin(&chain, 1);
    let key = payout_key();
    // Lock time 8 is final only in blocks above 8 (Bitcoin's strict rule): not in block 8.
    let build = |lock_time: u32, sequence: u32| {
        let mut tx = unsigned_tx(2, &[(op, sequence)], vec![to_payout(out.value.0)], lock_time);
        sign_plain(&mut tx, std::slice::from_ref(&out), &key);
        tx
    };
    let mined = template(&chain, &miner, vec![build(8, 0xFFFF_FFFE)]).finish(&miner.key);
    assert_eq!(tx_error(reject(&mut chain, &mined)), (1, TxError::NonFinal { lock_time: 8 }));
    // A time lock after the median time past is not final either.
    let mtp = median_time_past(&chain, chain.height()) as u32;
    let mined = template(&chain, &miner, vec![build(mtp, 0xFFFF_FFFE)]).finish(&miner.key);
    assert_eq!(tx_error(reject(&mut chain, &mined)), (1, TxError::NonFinal { lock_time: mtp }));
    // Final sequences disable the lock time.
    let mined = template(&chain, &miner, vec![build(8, u32::MAX)]).finish(&miner.key);
    chain.submit(&mined).unwrap();
    chain.disconnect_tip().unwrap();
    let mined = template(&chain, &miner, vec![build(7, 0xFFFF_FFFE)]).finish(&miner.key);
    chain.submit(&mined).unwrap();
}

#[test]
fn bad_script_signature() {
    let (mut chain, miner) = base();
    let (op1, out1) = coinbase_coin(&chain, 1);
    let (op2, out2) = coinbase_coin(&chain, 2);
    let good = spend_plain(&payout_key(), &[(op1, out1.clone())], vec![to_payout(out1.value.0)]);
    // Signed by the wrong key: well-formed, so it goes into the block's batch, which fails.
    let bad = spend_plain(&test_key(0x66), &[(op2, out2.clone())], vec![to_payout(out2.value.0)]);
    let mined = template(&chain, &miner, vec![good, bad]).finish(&miner.key);
    assert_eq!(
        tx_error(reject(&mut chain, &mined)),
        (2, TxError::Script(TxScriptError { input: Some(0), error: ScriptError::SigCheckFailed }))
    );
}

#[test]
fn too_many_signature_checks_in_one_block() {
    use rnet_consensus::connect_block;
    let (chain, miner) = base();
    let (op1, out1) = coinbase_coin(&chain, 1);
    let (op2, out2) = coinbase_coin(&chain, 2);
    let a = spend_plain(&payout_key(), &[(op1, out1.clone())], vec![to_payout(out1.value.0)]);
    // The second spend's signature is bad: the count is exceeded before anything is verified,
    // so the block fails for its count, not for the signature.
    let b = spend_plain(&test_key(0x66), &[(op2, out2.clone())], vec![to_payout(out2.value.0)]);
    let mined = template(&chain, &miner, vec![a, b]).finish(&miner.key);
    let tight = ChainParams { max_block_sig_checks: 1, ..chain.params().clone() };
    assert_eq!(
        connect_block(&tight, &mined.block, &chain, &chain).map(|_| ()),
        Err(BlockError::TooManySigChecks { count: 2, max: 1 })
    );
    let enough = ChainParams { max_block_sig_checks: 2, ..chain.params().clone() };
    assert!(matches!(
        connect_block(&enough, &mined.block, &chain, &chain),
        Err(BlockError::Transaction { index: 2, .. })
    ));
    assert_eq!(
        chain.params().max_block_sig_checks,
        rnet_primitives::MAX_BLOCK_SIZE / 50,
        "every network: one check per 50 bytes of the largest block"
    );
}

#[test]
fn coinbase_above_subsidy_plus_fees() {
    let (mut chain, miner) = base();
    let (op, out) = coinbase_coin(&chain, 1);
    let tx = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0 - 500)]);
    let mut t = template(&chain, &miner, vec![tx]);
    let allowed = Amount(t.subsidy.0 + 500);
    assert_eq!(t.transactions[0].outputs[0].value, allowed);
    // The bonus follows the improvement on the sample: between 1× and 2× the base reward.
    let improvement = t.header.parent_loss - t.header.val_loss;
    let expected = block_subsidy(
        chain.params(),
        chain.tip().circulating_supply,
        improvement,
        t.header.required_improvement,
    );
    assert_eq!(t.subsidy, expected);
    assert!(t.subsidy >= Amount(50 * rnet_primitives::COIN));
    t.coinbase_mut().outputs[0].value.0 += 1;
    let mined = t.finish(&miner.key);
    assert_eq!(
        reject(&mut chain, &mined),
        BlockError::CoinbaseTooLarge { claimed: Amount(allowed.0 + 1), allowed }
    );
}

#[test]
fn outputs_exceeding_inputs() {
    let (mut chain, miner) = base();
    let (op, out) = coinbase_coin(&chain, 1);
    let tx = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0 + 1)]);
    let mined = template(&chain, &miner, vec![tx]).finish(&miner.key);
    assert_eq!(
        tx_error(reject(&mut chain, &mined)),
        (1, TxError::OutputsExceedInputs { inputs: out.value, outputs: Amount(out.value.0 + 1) })
    );
}

#[test]
fn coinbase_structure() {
    let (mut chain, miner) = base();
    // Wrong height in the coinbase script.
    let mut t = template(&chain, &miner, vec![]);
    t.coinbase_mut().inputs[0].script_sig[..4].copy_from_slice(&7u32.to_le_bytes());
    let e = tx_error(reject(&mut chain, &t.finish(&miner.key)));
    assert_eq!(e, (0, TxError::CoinbaseHeight { expected: 8 }));
    // Script too short / too long.
    let mut t = template(&chain, &miner, vec![]);
    t.coinbase_mut().inputs[0].script_sig.truncate(3);
    let e = tx_error(reject(&mut chain, &t.finish(&miner.key)));
    assert_eq!(e, (0, TxError::CoinbaseScriptSize { len: 3 }));
    let mut t = template(&chain, &miner, vec![]);
    t.coinbase_mut().inputs[0].script_sig.resize(101, 0);
    let e = tx_error(reject(&mut chain, &t.finish(&miner.key)));
    assert_eq!(e, (0, TxError::CoinbaseScriptSize { len: 101 }));
    // A witness on the coinbase.
    let mut t = template(&chain, &miner, vec![]);
    t.coinbase_mut().inputs[0].witness.push(vec![1]);
    let e = tx_error(reject(&mut chain, &t.finish(&miner.key)));
    assert_eq!(e, (0, TxError::CoinbaseWitness));
    // No coinbase first.
    let (op, out) = coinbase_coin(&chain, 1);
    let tx = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(out.value.0)]);
    let mut t = template(&chain, &miner, vec![tx.clone()]);
    t.transactions.swap(0, 1);
    assert_eq!(reject(&mut chain, &t.finish(&miner.key)), BlockError::FirstNotCoinbase);
    // Two coinbases.
    let mut t = template(&chain, &miner, vec![]);
    let mut second = t.transactions[0].clone();
    second.inputs[0].script_sig.push(1);
    t.transactions.push(second);
    assert_eq!(
        reject(&mut chain, &t.finish(&miner.key)),
        BlockError::MultipleCoinbase { index: 1 }
    );
    // No transactions at all.
    let mut t = template(&chain, &miner, vec![]);
    t.transactions.clear();
    assert_eq!(reject(&mut chain, &t.finish(&miner.key)), BlockError::NoTransactions);
}

/// The coinbase `script_sig` carries the network's magic after the height: a coinbase tagged for
/// another network (or untagged) is invalid, so no coinbase txid is shared across networks.
#[test]
fn coinbase_network_tag() {
    let (mut chain, miner) = base();
    let regtest = chain.params().magic;
    assert_eq!(t_script_sig(&chain, &miner)[..8], chain.params().coinbase_tag(8));
    for other in [ChainParams::mainnet().magic, ChainParams::testnet().magic, [0; 4]] {
        let mut t = template(&chain, &miner, vec![]);
        t.coinbase_mut().inputs[0].script_sig[4..8].copy_from_slice(&other);
        let e = reject(&mut chain, &t.finish(&miner.key));
        assert!(e.is_permanent());
        assert_eq!(tx_error(e), (0, TxError::CoinbaseNetwork { expected: regtest, found: other }));
    }
    // Only the height (the rule before network tags): too short to carry the tag.
    let mut t = template(&chain, &miner, vec![]);
    t.coinbase_mut().inputs[0].script_sig.truncate(4);
    let e = tx_error(reject(&mut chain, &t.finish(&miner.key)));
    assert_eq!(e, (0, TxError::CoinbaseScriptSize { len: 4 }));
    // Exactly the tag, without miner data, is enough.
    let mut t = template(&chain, &miner, vec![]);
    t.coinbase_mut().inputs[0].script_sig.truncate(8);
    assert!(chain.clone().submit(&t.finish(&miner.key)).is_ok());
}

/// The coinbase `script_sig` of the next block the test miner builds.
fn t_script_sig(chain: &MemoryChain, miner: &TestMiner) -> Vec<u8> {
    template(chain, miner, vec![]).transactions[0].inputs[0].script_sig.clone()
}

#[test]
fn transaction_syntax() {
    let (mut chain, miner) = base();
    let (op, out) = coinbase_coin(&chain, 1);
    let cases: Vec<(rnet_primitives::Transaction, TxError)> = vec![
        (unsigned_tx(2, &[(op, 0)], vec![], 0), TxError::NoOutputs),
        (
            unsigned_tx(2, &[(op, 0), (op, 1)], vec![to_payout(1)], 0),
            TxError::DuplicateInput { input: 1 },
        ),
        (
            unsigned_tx(2, &[(op, 0)], vec![to_payout(rnet_primitives::MAX_MONEY + 1)], 0),
            TxError::OutputValueTooLarge {
                output: 0,
                value: Amount(rnet_primitives::MAX_MONEY + 1),
            },
        ),
        (
            unsigned_tx(
                2,
                &[(op, 0)],
                vec![to_payout(rnet_primitives::MAX_MONEY), to_payout(1)],
                0,
            ),
            TxError::OutputTotalTooLarge,
        ),
        (
            unsigned_tx(2, &[(op, 0), (OutPoint::NULL, 0)], vec![to_payout(1)], 0),
            TxError::NullPrevout { input: 1 },
        ),
    ];
    let _ = out;
    for (tx, expected) in cases {
        let mined = template(&chain, &miner, vec![tx]).finish(&miner.key);
        assert_eq!(tx_error(reject(&mut chain, &mined)), (1, expected));
    }
    // Zero inputs cannot even be encoded; check_block still rejects it in memory.
    let tx = unsigned_tx(2, &[], vec![to_payout(1)], 0);
    let mined = template(&chain, &miner, vec![tx]).finish(&miner.key);
    assert_eq!(tx_error(reject(&mut chain, &mined)), (1, TxError::NoInputs));
}

#[test]
fn header_link_and_version() {
    let (mut chain, miner) = base();
    let mut t = template(&chain, &miner, vec![]);
    t.header.version = 0;
    assert_eq!(reject(&mut chain, &t.finish(&miner.key)), BlockError::BadVersion(0));
    let mut t = template(&chain, &miner, vec![]);
    t.header.height = 9;
    t.coinbase_mut().inputs[0].script_sig[..4].copy_from_slice(&9u32.to_le_bytes());
    assert_eq!(
        reject(&mut chain, &t.finish(&miner.key)),
        BlockError::BadHeight { expected: 8, got: 9 }
    );
    let mut t = template(&chain, &miner, vec![]);
    t.header.prev_block_hash = chain.summary(6).unwrap().hash;
    t.redraw_sample().unwrap(); // the parent id seeds the sample
    let e = reject(&mut chain, &t.finish(&miner.key));
    assert!(matches!(e, BlockError::BadPrevHash { .. }));
    assert!(!e.is_permanent());
}

#[test]
fn oversize_block() {
    let (chain, miner) = base();
    let mined = template(&chain, &miner, vec![]).finish(&miner.key);
    // The bound is on the block without its sample (the sample has its own limits).
    let size = mined.block.base_size();
    let small = ChainParams { max_block_size: size - 1, ..chain.params().clone() };
    assert_eq!(
        check_block(&small, &mined.block),
        Err(BlockError::Oversize { size, max: size - 1 })
    );
    assert_eq!(check_block(chain.params(), &mined.block), Ok(()));
}

#[test]
fn unspendable_outputs_return_to_the_pool() {
    let (mut chain, miner) = base();
    let (op, out) = coinbase_coin(&chain, 1);
    let v = out.value.0;
    let burn = TxOut { value: Amount(1000), script_pubkey: vec![0x6a, 1, 1] };
    let ret = rnet_script::templates::emission_output(Amount(2000));
    let tx = spend_plain(&payout_key(), &[(op, out)], vec![to_payout(v - 3000), burn, ret]);
    let before = chain.tip().circulating_supply;
    let (_, c) = chain.mine(&miner, vec![tx], plain_spk(&payout_key())).unwrap();
    assert_eq!(c.effects.emission_returned, Amount(3000));
    assert_eq!(c.effects.created.len(), 2); // the payment and the coinbase
    assert_eq!(c.summary.circulating_supply, Amount(before.0 + c.effects.subsidy.0 - 3000));
    assert_eq!(chain.utxo_value(), c.summary.circulating_supply);
}

#[test]
fn genesis_passes_the_context_free_checks() {
    for params in [ChainParams::regtest(), ChainParams::testnet()] {
        assert_eq!(check_block(&params, &params.genesis_block()), Ok(()));
    }
    let _ = MemoryChain::new(ChainParams::regtest());
}

mod mutations {
    use super::*;
    use proptest::prelude::*;
    use rnet_consensus::connect_block;
    use rnet_primitives::Block;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random byte changes to a valid block and its update never panic any stage, and a
        /// changed block is never accepted.
        #[test]
        fn mutated_blocks_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            in_update in any::<bool>(),
        ) {
            static VALID: std::sync::OnceLock<(MemoryChain, rnet_testkit::MinedBlock)> =
                std::sync::OnceLock::new();
            let (chain, mined) = VALID.get_or_init(|| {
                let (chain, miner) = base();
                let (op, out) = coinbase_coin(&chain, 1);
                let tx = spend_plain(&payout_key(), &[(op, out.clone())], vec![to_payout(1000)]);
                let mined = template(&chain, &miner, vec![tx]).finish(&miner.key);
                (chain, mined)
            });
            let mut bytes = mined.block.to_bytes();
            let mut update = mined.update_bytes.clone();
            let target = if in_update { &mut update } else { &mut bytes };
            for (i, b) in &edits {
                let i = i.index(target.len());
                target[i] = *b;
            }
            let changed = bytes != mined.block.to_bytes() || update != mined.update_bytes;
            let Ok(block) = Block::from_bytes(&bytes) else { return Ok(()) };
            let p = chain.params();
            let stages = check_block(p, &block)
                .and_then(|_| check_header_context(p, &block.header, chain, block.header.time))
                .and_then(|_| pot(chain, &block, &update));
            let connected = connect_block(p, &block, chain, chain);
            if changed {
                // Some byte flips are no-ops on the decoded value (none here: the encoding is
                // canonical), so any change must fail some stage.
                prop_assert!(stages.is_err() || connected.is_err());
            } else {
                prop_assert!(stages.is_ok() && connected.is_ok());
            }
        }
    }
}

#[test]
fn wrong_parent_loss() {
    let (mut chain, miner) = base();
    let mut t = template(&chain, &miner, vec![]);
    // Claims a worse parent (a bigger improvement) than the parent checkpoint has on the sample.
    t.header.parent_loss += 1000;
    let mined = t.finish(&miner.key);
    let e = reject(&mut chain, &mined);
    assert!(
        matches!(e, BlockError::ParentLossMismatch { claimed, evaluated } if claimed == evaluated + 1000),
        "{e:?}"
    );
    assert!(e.is_permanent());
}

/// A valid block whose sample the test edits (the block id does not commit to the sample, so the
/// header and its signature stay valid).
fn with_sample(
    chain: &MemoryChain,
    miner: &TestMiner,
    edit: impl FnOnce(&mut Vec<SampleRecord>),
) -> rnet_testkit::MinedBlock {
    let mut mined = template(chain, miner, vec![]).finish(&miner.key);
    edit(&mut mined.block.sample.records);
    mined
}

/// The record at `index` with its proof, from the bundled corpus.
fn corpus_record(chain: &MemoryChain, index: u64) -> SampleRecord {
    let tree = CorpusTree::shared(chain.params().genesis_model.window).unwrap();
    tree.record(index).unwrap()
}

#[test]
fn sample_records_not_drawn_out_of_order_missing_or_extra() {
    let (mut chain, miner) = base();
    let control = with_sample(&chain, &miner, |_| {});
    let drawn: Vec<u32> = control.block.sample.records.iter().map(|r| r.index).collect();
    assert_eq!(drawn.len(), chain.params().sample_records);
    // An undrawn record (with a valid proof) in place of a drawn one.
    let undrawn = (0..chain.params().corpus_records as u32)
        .find(|i| !drawn.contains(i) && *i > drawn[2] && *i < drawn[3])
        .unwrap_or_else(|| panic!("a gap between drawn records"));
    let mined = with_sample(&chain, &miner, |r| r[3] = corpus_record(&chain, undrawn.into()));
    let e = reject(&mut chain, &mined);
    assert_eq!(e, BlockError::SampleRecordNotDrawn { index: undrawn });
    assert!(e.is_data_mismatch() && !e.is_permanent());
    // Two records swapped.
    let mined = with_sample(&chain, &miner, |r| r.swap(4, 5));
    assert_eq!(reject(&mut chain, &mined), BlockError::SampleOutOfOrder { index: drawn[4] });
    // A record left out, in the middle and at the end.
    let mined = with_sample(&chain, &miner, |r| {
        r.remove(7);
    });
    assert_eq!(
        reject(&mut chain, &mined),
        BlockError::SampleRecordMissing { index: drawn[7].into() }
    );
    let mined = with_sample(&chain, &miner, |r| {
        r.pop();
    });
    let last = *drawn.last().unwrap();
    assert_eq!(reject(&mut chain, &mined), BlockError::SampleRecordMissing { index: last.into() });
    // One record too many (after the last drawn one).
    let extra = last + 1;
    assert!(
        u64::from(extra) < chain.params().corpus_records,
        "the last draw is not the last record"
    );
    let mined = with_sample(&chain, &miner, |r| r.push(corpus_record(&chain, extra.into())));
    assert_eq!(reject(&mut chain, &mined), BlockError::SampleExtraRecord { index: extra });
    // The untouched block is accepted.
    chain.submit(&control).unwrap();
}

#[test]
fn sample_bad_proof_or_bytes() {
    let (mut chain, miner) = base();
    let index = |m: &rnet_testkit::MinedBlock| m.block.sample.records[1].index;
    // A flipped proof hash.
    let mined = with_sample(&chain, &miner, |r| r[1].proof[0].0[0] ^= 1);
    let e = reject(&mut chain, &mined);
    assert_eq!(e, BlockError::SampleBadProof { index: index(&mined) });
    assert!(e.is_data_mismatch());
    // A branch one level short.
    let mined = with_sample(&chain, &miner, |r| {
        r[1].proof.pop();
    });
    assert_eq!(reject(&mut chain, &mined), BlockError::SampleBadProof { index: index(&mined) });
    // Record bytes changed under a valid proof.
    let mined = with_sample(&chain, &miner, |r| r[1].bytes[10] ^= 0x20);
    assert_eq!(reject(&mut chain, &mined), BlockError::SampleBadProof { index: index(&mined) });
    // A record one byte short.
    let mined = with_sample(&chain, &miner, |r| {
        r[1].bytes.pop();
    });
    let window = chain.params().genesis_model.window;
    assert_eq!(
        reject(&mut chain, &mined),
        BlockError::SampleRecordLength { index: index(&mined), len: window, expected: window + 1 }
    );
}

#[test]
fn sample_of_another_checkpoint_root_or_miner_key() {
    let (mut chain, miner) = base();
    let t = template(&chain, &miner, vec![]);
    // The sample the same parent and checkpoint would draw for another miner.
    let mut other_key = t.header.clone();
    other_key.miner_pubkey = test_key(0x55).public_key().to_bytes();
    let for_other_key = build_sample(chain.params(), &other_key).unwrap();
    // The sample of another checkpoint root (a second template, trained further).
    let mut other_root = t.header.clone();
    other_root.checkpoint_root = Hash256([0x42; 32]);
    let for_other_root = build_sample(chain.params(), &other_root).unwrap();
    for sample in [for_other_key, for_other_root] {
        assert_ne!(sample, t.sample);
        let mut mined = t.clone().finish(&miner.key);
        mined.block.sample = sample;
        let e = reject(&mut chain, &mined);
        assert!(
            matches!(
                e,
                BlockError::SampleRecordNotDrawn { .. } | BlockError::SampleRecordMissing { .. }
            ),
            "{e:?}"
        );
        assert!(e.is_data_mismatch());
    }
    // The header's own sample is what validators draw.
    let own = build_sample(chain.params(), &t.header).unwrap();
    assert_eq!(own, t.sample);
    chain.submit(&t.finish(&miner.key)).unwrap();
}
