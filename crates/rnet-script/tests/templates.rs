//! End-to-end tests of every standard template: build a real transaction spending an output
//! locked to the template, sign it through the signature hash, and verify it, both with
//! immediate signature checks and with batch verification (which must always agree).

use rnet_crypto::{BatchVerifier, PublicKey, SigningKey};
use rnet_primitives::transaction::SEQUENCE_FINAL;
use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
use rnet_script::templates::emission_output;
use rnet_script::{
    EMISSION_RETURN_SCRIPT, EmissionReturn, Heartbeat, Htlc, MAX_EMISSION_SWEEP_FEE_PER_INPUT,
    MAX_RECOVERY_FEE, PlainKey, RecoveryPending, RelativeLock, ScriptError, ScriptTemplate,
    SighashCache, SighashType, Social, TemplateError, VerifyFlags, verify_input,
    verify_input_batched, verify_transaction, verify_transaction_batched,
};

const COIN: u64 = 100_000_000;

/// The genesis id of the chain every test signature is for.
const GENESIS: BlockHash = BlockHash([0x47; 32]);

fn sk(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn pk(n: u8) -> PublicKey {
    sk(n).public_key()
}

/// Somebody else's plain-key output, as a destination.
fn elsewhere(value: u64) -> TxOut {
    PlainKey::new(pk(200)).output(Amount(value))
}

/// The prevout being spent: output 0 of a fake funding transaction.
fn prevout(n: u8) -> OutPoint {
    OutPoint::new(Txid::from_bytes([n; 32]), 0)
}

fn input(previous_output: OutPoint, sequence: u32) -> TxIn {
    TxIn { previous_output, script_sig: Vec::new(), sequence, witness: Witness::new() }
}

/// A version-2 transaction with one input spending `prevout(1)`.
fn spending(sequence: u32, lock_time: u32, outputs: Vec<TxOut>) -> Transaction {
    Transaction { version: 2, inputs: vec![input(prevout(1), sequence)], outputs, lock_time }
}

/// Signs input `index` of `tx` with `key`, scriptCode `code`.
fn sign(tx: &Transaction, spent: &[TxOut], index: usize, key: &SigningKey, code: &[u8]) -> Vec<u8> {
    SighashCache::new(&GENESIS, tx, spent)
        .unwrap()
        .sign(key, index, code, SighashType::All)
        .unwrap()
}

/// Verifies every input of `tx`, immediately and batched, asserting that both modes agree on
/// validity; returns the immediate result.
fn verify(tx: &Transaction, spent: &[TxOut]) -> Result<(), ScriptError> {
    let immediate =
        verify_transaction(&GENESIS, tx, spent, VerifyFlags::STANDARD).map_err(|e| e.error);
    let mut batch = BatchVerifier::new();
    let batched =
        verify_transaction_batched(&GENESIS, tx, spent, VerifyFlags::STANDARD, &mut batch)
            .map_err(|e| e.error)
            .and_then(|()| batch.verify().map_err(|_| ScriptError::SigCheckFailed));
    assert_eq!(
        immediate.is_ok(),
        batched.is_ok(),
        "immediate {immediate:?} vs batched {batched:?}"
    );
    if let Err(e) = immediate {
        // The verdict is the same; only a bad signature may be reported differently.
        if e != ScriptError::SigCheckFailed {
            assert_eq!(batched, Err(e));
        }
    }
    immediate
}

// ----- plain key -----------------------------------------------------------------------------

#[test]
fn plain_key_spend() {
    let owner = PlainKey::new(pk(1));
    let spent = vec![owner.output(Amount(COIN))];
    let mut tx = spending(SEQUENCE_FINAL, 0, vec![elsewhere(COIN - 1000)]);
    let sig = sign(&tx, &spent, 0, &sk(1), &owner.script_code());
    tx.inputs[0].witness = owner.witness(sig.clone());
    assert_eq!(verify(&tx, &spent), Ok(()));

    // Another key's signature.
    let mut t = tx.clone();
    t.inputs[0].witness = owner.witness(sign(&tx, &spent, 0, &sk(2), &owner.script_code()));
    assert_eq!(verify(&t, &spent), Err(ScriptError::SigCheckFailed));

    // Changing an output invalidates the signature.
    let mut t = tx.clone();
    t.outputs[0].value = Amount(COIN);
    assert_eq!(verify(&t, &spent), Err(ScriptError::SigCheckFailed));
}

#[test]
fn signature_over_a_different_amount_fails() {
    let owner = PlainKey::new(pk(1));
    let real = vec![owner.output(Amount(5 * COIN))];
    let claimed = vec![owner.output(Amount(COIN))];
    let mut tx = spending(SEQUENCE_FINAL, 0, vec![elsewhere(COIN / 2)]);
    // The signer was told the coin is worth 1 RNT; it is worth 5.
    tx.inputs[0].witness = owner.witness(sign(&tx, &claimed, 0, &sk(1), &owner.script_code()));
    assert_eq!(verify(&tx, &claimed), Ok(()));
    assert_eq!(verify(&tx, &real), Err(ScriptError::SigCheckFailed));

    // Same for a script-hash template, and for a lie about *another* input's amount.
    let hb = Heartbeat::new(pk(1), pk(2), RelativeLock::Blocks(10)).unwrap();
    let mut tx = Transaction {
        version: 2,
        inputs: vec![input(prevout(1), 0), input(prevout(2), 0)],
        outputs: vec![elsewhere(COIN)],
        lock_time: 0,
    };
    let real = vec![hb.output(Amount(COIN)), owner.output(Amount(3 * COIN))];
    let lie = vec![hb.output(Amount(COIN)), owner.output(Amount(COIN))];
    tx.inputs[0].witness = hb.owner_witness(sign(&tx, &lie, 0, &sk(1), &hb.witness_script()));
    tx.inputs[1].witness = owner.witness(sign(&tx, &lie, 1, &sk(1), &owner.script_code()));
    assert_eq!(verify(&tx, &lie), Ok(()));
    assert_eq!(verify(&tx, &real), Err(ScriptError::SigCheckFailed));
}

#[test]
fn anyone_can_pay_lets_others_add_inputs() {
    let owner = PlainKey::new(pk(1));
    let spent = vec![owner.output(Amount(COIN))];
    let mut tx = spending(SEQUENCE_FINAL, 0, vec![elsewhere(2 * COIN)]);
    let cache = SighashCache::new(&GENESIS, &tx, &spent).unwrap();
    let acp = cache.sign(&sk(1), 0, &owner.script_code(), SighashType::AllAnyoneCanPay).unwrap();
    let all = cache.sign(&sk(1), 0, &owner.script_code(), SighashType::All).unwrap();
    assert_eq!(acp.len(), 65);

    // Somebody adds an input paying the rest.
    let other = PlainKey::new(pk(3));
    let spent2 = vec![spent[0].clone(), other.output(Amount(COIN))];
    tx.inputs.push(input(prevout(2), SEQUENCE_FINAL));
    tx.inputs[1].witness = other.witness(sign(&tx, &spent2, 1, &sk(3), &other.script_code()));
    tx.inputs[0].witness = owner.witness(acp);
    assert_eq!(verify(&tx, &spent2), Ok(()));
    tx.inputs[0].witness = owner.witness(all);
    assert_eq!(verify(&tx, &spent2), Err(ScriptError::SigCheckFailed));
}

// ----- heartbeat -----------------------------------------------------------------------------

fn heartbeat() -> Heartbeat {
    Heartbeat::new(pk(1), pk(2), RelativeLock::Blocks(1000)).unwrap()
}

#[test]
fn heartbeat_owner_spends_any_time() {
    let hb = heartbeat();
    let spent = vec![hb.output(Amount(COIN))];
    for (version, sequence) in [(2, 0), (2, SEQUENCE_FINAL), (1, 0)] {
        let mut tx = spending(sequence, 0, vec![hb.output(Amount(COIN - 1000))]);
        tx.version = version;
        tx.inputs[0].witness = hb.owner_witness(sign(&tx, &spent, 0, &sk(1), &hb.witness_script()));
        assert_eq!(verify(&tx, &spent), Ok(()), "version {version} sequence {sequence}");
    }
    // The recovery key cannot use the owner path.
    let mut tx = spending(0, 0, vec![elsewhere(COIN - 1000)]);
    tx.inputs[0].witness = hb.owner_witness(sign(&tx, &spent, 0, &sk(2), &hb.witness_script()));
    assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
}

#[test]
fn heartbeat_recovery_only_after_interval() {
    let hb = heartbeat();
    let spent = vec![hb.output(Amount(COIN))];
    let recover = |sequence: u32, version: u32, key: u8| {
        let mut tx = spending(sequence, 0, vec![elsewhere(COIN - 1000)]);
        tx.version = version;
        tx.inputs[0].witness =
            hb.recovery_witness(sign(&tx, &spent, 0, &sk(key), &hb.witness_script()));
        verify(&tx, &spent)
    };
    assert_eq!(hb.recovery_sequence(), 1000);
    assert_eq!(recover(0, 2, 2), Err(ScriptError::UnsatisfiedSequence));
    assert_eq!(recover(999, 2, 2), Err(ScriptError::UnsatisfiedSequence));
    assert_eq!(recover(SEQUENCE_FINAL, 2, 2), Err(ScriptError::UnsatisfiedSequence));
    assert_eq!(recover(1000, 1, 2), Err(ScriptError::UnsatisfiedSequence), "BIP68 needs v2");
    assert_eq!(recover(1000, 2, 2), Ok(()));
    assert_eq!(recover(5000, 2, 2), Ok(()));
    // A time-based sequence does not satisfy a block-based lock.
    assert_eq!(
        recover(RelativeLock::Time(1000).to_sequence(), 2, 2),
        Err(ScriptError::UnsatisfiedSequence)
    );
    // Only the recovery key.
    assert_eq!(recover(1000, 2, 1), Err(ScriptError::SigCheckFailed));
    assert_eq!(recover(1000, 2, 3), Err(ScriptError::SigCheckFailed));
    // Consensus enforces the lock against the coin's age using the same sequence.
    assert_eq!(rnet_script::relative_lock(1000), Some(RelativeLock::Blocks(1000)));
}

#[test]
fn time_based_heartbeat() {
    let hb = Heartbeat::new(pk(1), pk(2), RelativeLock::Time(300)).unwrap();
    let spent = vec![hb.output(Amount(COIN))];
    let recover = |sequence: u32| {
        let mut tx = spending(sequence, 0, vec![elsewhere(COIN - 1000)]);
        tx.inputs[0].witness =
            hb.recovery_witness(sign(&tx, &spent, 0, &sk(2), &hb.witness_script()));
        verify(&tx, &spent)
    };
    assert_eq!(recover(300), Err(ScriptError::UnsatisfiedSequence));
    assert_eq!(
        recover(RelativeLock::Time(299).to_sequence()),
        Err(ScriptError::UnsatisfiedSequence)
    );
    assert_eq!(recover(hb.recovery_sequence()), Ok(()));
}

#[test]
fn bad_script_signatures_fail_with_sig_check_failed() {
    let hb = heartbeat();
    let spent = vec![hb.output(Amount(COIN))];
    let mut tx = spending(0, 0, vec![elsewhere(COIN - 1000)]);
    let mut sig = sign(&tx, &spent, 0, &sk(1), &hb.witness_script());
    sig[40] ^= 0x10;
    tx.inputs[0].witness = hb.owner_witness(sig);
    assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
    // Malformed signature encoding has its own error.
    tx.inputs[0].witness = hb.owner_witness(vec![0; 65]);
    assert_eq!(verify(&tx, &spent), Err(ScriptError::InvalidSignatureEncoding));
    // An empty signature is simply false.
    tx.inputs[0].witness = hb.owner_witness(Vec::new());
    assert_eq!(verify(&tx, &spent), Err(ScriptError::EvalFalse));
    // Non-minimal branch selector.
    let mut w = hb.owner_witness(sign(&tx, &spent, 0, &sk(1), &hb.witness_script()));
    w.0[1] = vec![2];
    tx.inputs[0].witness = w;
    assert_eq!(verify(&tx, &spent), Err(ScriptError::MinimalIf));
    // A witness script that is not the committed one.
    let other = Heartbeat::new(pk(1), pk(3), RelativeLock::Blocks(1000)).unwrap();
    tx.inputs[0].witness =
        other.owner_witness(sign(&tx, &spent, 0, &sk(1), &other.witness_script()));
    assert_eq!(verify(&tx, &spent), Err(ScriptError::WitnessProgramMismatch));
}

// ----- social --------------------------------------------------------------------------------

const GUARDIANS: [u8; 3] = [11, 12, 13];

fn social() -> Social {
    Social::new(pk(1), GUARDIANS.iter().map(|&g| pk(g)).collect(), 2, RelativeLock::Blocks(500))
        .unwrap()
}

/// Guardian signatures of `tx` input 0 from the guardians at `signers` (indices into GUARDIANS).
fn guardian_sigs(
    tx: &Transaction,
    spent: &[TxOut],
    s: &Social,
    signers: &[usize],
) -> Vec<Option<Vec<u8>>> {
    (0..GUARDIANS.len())
        .map(|i| {
            signers.contains(&i).then(|| sign(tx, spent, 0, &sk(GUARDIANS[i]), &s.witness_script()))
        })
        .collect()
}

#[test]
fn social_owner_spends() {
    let s = social();
    let spent = vec![s.output(Amount(COIN))];
    let mut tx = spending(0, 0, vec![elsewhere(COIN - 1000)]);
    tx.inputs[0].witness = s.owner_witness(sign(&tx, &spent, 0, &sk(1), &s.witness_script()));
    assert_eq!(verify(&tx, &spent), Ok(()));
    // A guardian cannot use the owner path.
    tx.inputs[0].witness = s.owner_witness(sign(&tx, &spent, 0, &sk(11), &s.witness_script()));
    assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
}

#[test]
fn social_guardians_can_only_move_to_recovery_pending() {
    let s = social();
    let amount = 10 * COIN;
    let spent = vec![s.output(Amount(amount))];
    let new_key = pk(50);
    let pending = s.pending(new_key);
    let try_recover = |outputs: Vec<TxOut>, signers: &[usize], key: &PublicKey| {
        let mut tx = spending(0, 0, outputs);
        let sigs = guardian_sigs(&tx, &spent, &s, signers);
        tx.inputs[0].witness = s.guardian_witness(key, &sigs).unwrap();
        verify(&tx, &spent)
    };

    // M guardians, into the pending output: accepted (any M of the N).
    let fee = 10_000;
    assert_eq!(try_recover(vec![pending.output(Amount(amount - fee))], &[0, 1], &new_key), Ok(()));
    assert_eq!(try_recover(vec![pending.output(Amount(amount - fee))], &[0, 2], &new_key), Ok(()));
    assert_eq!(try_recover(vec![pending.output(Amount(amount))], &[0, 1, 2], &new_key), Ok(()));
    // The largest fee allowed, and one more.
    let min = amount - MAX_RECOVERY_FEE.to_resonance();
    assert_eq!(try_recover(vec![pending.output(Amount(min))], &[1, 2], &new_key), Ok(()));
    assert_eq!(
        try_recover(vec![pending.output(Amount(min - 1))], &[1, 2], &new_key),
        Err(ScriptError::RecoveryOutputMismatch)
    );
    // Anywhere else: rejected.
    assert_eq!(
        try_recover(vec![elsewhere(amount - fee)], &[0, 1], &new_key),
        Err(ScriptError::RecoveryOutputMismatch)
    );
    // A pending output for a different new key than the one in the witness.
    assert_eq!(
        try_recover(vec![s.pending(pk(51)).output(Amount(amount - fee))], &[0, 1], &new_key),
        Err(ScriptError::RecoveryOutputMismatch)
    );
    // A pending output with another cancel window.
    let short = RecoveryPending { cancel_window: RelativeLock::Blocks(1), ..pending };
    assert_eq!(
        try_recover(vec![short.output(Amount(amount - fee))], &[0, 1], &new_key),
        Err(ScriptError::RecoveryOutputMismatch)
    );
    // The pending output must be at the input's index.
    assert_eq!(
        try_recover(vec![elsewhere(1000), pending.output(Amount(amount - fee))], &[0, 1], &new_key),
        Err(ScriptError::RecoveryOutputMismatch)
    );
    // No outputs at all.
    assert_eq!(try_recover(vec![], &[0, 1], &new_key), Err(ScriptError::RecoveryOutputMismatch));
}

#[test]
fn social_fewer_than_m_guardians_fail() {
    let s = social();
    let amount = COIN;
    let spent = vec![s.output(Amount(amount))];
    let new_key = pk(50);
    let mut tx = spending(0, 0, vec![s.pending(new_key).output(Amount(amount))]);
    let sigs = guardian_sigs(&tx, &spent, &s, &[1]);
    // The witness builder refuses; build the witness by hand.
    assert!(s.guardian_witness(&new_key, &sigs).is_err());
    let mut items = vec![new_key.as_bytes().to_vec()];
    items.extend(sigs.into_iter().map(Option::unwrap_or_default));
    items.push(Vec::new());
    items.push(s.witness_script());
    tx.inputs[0].witness = Witness(items.clone());
    // One signature of two is neither none nor the threshold.
    assert_eq!(verify(&tx, &spent), Err(ScriptError::MultisigSignatureCount));

    // A guardian's signature in another guardian's slot: the signature fails (NULLFAIL).
    let mut swapped = items.clone();
    swapped.swap(2, 3);
    let sig_other = sign(&tx, &spent, 0, &sk(GUARDIANS[2]), &s.witness_script());
    swapped[2] = sig_other;
    tx.inputs[0].witness = Witness(swapped);
    assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));

    // A non-guardian's signature.
    let mut outsider = items;
    outsider[1] = sign(&tx, &spent, 0, &sk(99), &s.witness_script());
    tx.inputs[0].witness = Witness(outsider);
    assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
}

/// A guardian witness carries exactly the threshold of signatures, so a relayer cannot blank a
/// surplus one (same txid, other wtxid: the merkle root commits to wtxids).
#[test]
fn social_guardian_witness_is_not_malleable() {
    let s = social();
    let amount = COIN;
    let spent = vec![s.output(Amount(amount))];
    let new_key = pk(50);
    let mut tx = spending(0, 0, vec![s.pending(new_key).output(Amount(amount))]);
    let all = guardian_sigs(&tx, &spent, &s, &[0, 1, 2]);
    let by_hand = |sigs: &[Option<Vec<u8>>]| {
        let mut items = vec![new_key.as_bytes().to_vec()];
        items.extend(sigs.iter().map(|s| s.clone().unwrap_or_default()));
        items.push(Vec::new());
        items.push(s.witness_script());
        Witness(items)
    };
    // Three signatures for a 2-of-3: refused, whichever way it was built.
    tx.inputs[0].witness = by_hand(&all);
    assert_eq!(verify(&tx, &spent), Err(ScriptError::MultisigSignatureCount));
    // The builder keeps exactly the threshold (the first signatures in guardian order).
    tx.inputs[0].witness = s.guardian_witness(&new_key, &all).unwrap();
    assert_eq!(tx.inputs[0].witness.items()[3], Vec::<u8>::new());
    assert_eq!(verify(&tx, &spent), Ok(()));
    // Blanking one of the two leaves a count that is neither 0 nor the threshold.
    let mut blanked = all.clone();
    blanked[1] = None;
    blanked[2] = None;
    tx.inputs[0].witness = by_hand(&blanked);
    assert_eq!(verify(&tx, &spent), Err(ScriptError::MultisigSignatureCount));
}

#[test]
fn social_invalid_new_key_is_rejected() {
    let s = social();
    let spent = vec![s.output(Amount(COIN))];
    let mut tx = spending(0, 0, vec![elsewhere(COIN)]);
    let sigs = guardian_sigs(&tx, &spent, &s, &[0, 1]);
    let mut w = s.guardian_witness(&pk(50), &sigs).unwrap();
    w.0[0] = vec![7; 31];
    tx.inputs[0].witness = w;
    assert_eq!(verify(&tx, &spent), Err(ScriptError::InvalidPublicKey));
}

#[test]
fn social_recovery_end_to_end_with_cancel_window() {
    let s = social();
    let amount = 10 * COIN;
    let spent = vec![s.output(Amount(amount))];
    let new_key = pk(50);
    let pending = s.pending(new_key);
    assert_eq!(pending.claim_sequence(), 500);

    // Stage 1: two guardians move the coin into the recovery-pending output.
    let mut recovery = spending(0, 0, vec![pending.output(Amount(amount - 5_000))]);
    let sigs = guardian_sigs(&recovery, &spent, &s, &[0, 2]);
    recovery.inputs[0].witness = s.guardian_witness(&new_key, &sigs).unwrap();
    assert_eq!(verify(&recovery, &spent), Ok(()));

    // Stage 2: spending the pending output.
    let pending_spent = vec![recovery.outputs[0].clone()];
    let next = |sequence: u32, outputs: Vec<TxOut>| Transaction {
        version: 2,
        inputs: vec![input(OutPoint::new(recovery.txid(), 0), sequence)],
        outputs,
        lock_time: 0,
    };
    let code = pending.witness_script();

    // The owner cancels within the window: back to a fresh social address of theirs.
    let mut cancel = next(0, vec![social().output(Amount(amount - 10_000))]);
    cancel.inputs[0].witness =
        pending.cancel_witness(sign(&cancel, &pending_spent, 0, &sk(1), &code));
    assert_eq!(verify(&cancel, &pending_spent), Ok(()));

    // The new key before the window ends: rejected.
    for sequence in [0, 1, 499] {
        let mut claim = next(sequence, vec![elsewhere(amount - 10_000)]);
        claim.inputs[0].witness =
            pending.claim_witness(sign(&claim, &pending_spent, 0, &sk(50), &code));
        assert_eq!(verify(&claim, &pending_spent), Err(ScriptError::UnsatisfiedSequence));
    }
    // After it: accepted.
    let mut claim = next(500, vec![elsewhere(amount - 10_000)]);
    claim.inputs[0].witness =
        pending.claim_witness(sign(&claim, &pending_spent, 0, &sk(50), &code));
    assert_eq!(verify(&claim, &pending_spent), Ok(()));

    // Guardians have no path on the pending output.
    let mut steal = next(500, vec![elsewhere(amount - 10_000)]);
    steal.inputs[0].witness =
        pending.claim_witness(sign(&steal, &pending_spent, 0, &sk(GUARDIANS[0]), &code));
    assert_eq!(verify(&steal, &pending_spent), Err(ScriptError::SigCheckFailed));
}

#[test]
fn social_recovery_of_two_coins_in_one_transaction() {
    let s = social();
    let new_key = pk(50);
    let pending = s.pending(new_key);
    let spent = vec![s.output(Amount(COIN)), s.output(Amount(2 * COIN))];
    let mut tx = Transaction {
        version: 2,
        inputs: vec![input(prevout(1), 0), input(prevout(2), 0)],
        // Index-aligned outputs: each coin into its own pending output.
        outputs: vec![pending.output(Amount(COIN - 1000)), pending.output(Amount(2 * COIN - 1000))],
        lock_time: 0,
    };
    for i in 0..2 {
        let sigs: Vec<_> = (0..3)
            .map(|g| {
                (g < 2).then(|| {
                    SighashCache::new(&GENESIS, &tx, &spent)
                        .unwrap()
                        .sign(&sk(GUARDIANS[g]), i, &s.witness_script(), SighashType::All)
                        .unwrap()
                })
            })
            .collect();
        tx.inputs[i].witness = s.guardian_witness(&new_key, &sigs).unwrap();
    }
    assert_eq!(verify(&tx, &spent), Ok(()));
    // Collapsing both into one output would let the second coin's value go to fees: rejected.
    let mut t = tx.clone();
    t.outputs = vec![pending.output(Amount(3 * COIN - 2000))];
    let cache_spent = spent.clone();
    for i in 0..2 {
        let sigs: Vec<_> = (0..3)
            .map(|g| {
                (g < 2).then(|| {
                    SighashCache::new(&GENESIS, &t, &cache_spent)
                        .unwrap()
                        .sign(&sk(GUARDIANS[g]), i, &s.witness_script(), SighashType::All)
                        .unwrap()
                })
            })
            .collect();
        t.inputs[i].witness = s.guardian_witness(&new_key, &sigs).unwrap();
    }
    // Input 0 finds its pending output but not one output per input (Part IV §8.1's value
    // rule); input 1 has no pending output at its index.
    let cache = SighashCache::new(&GENESIS, &t, &spent).unwrap();
    assert_eq!(
        verify_input(&cache.spend_context(0).unwrap(), VerifyFlags::STANDARD),
        Err(ScriptError::RecoveryValueMoved)
    );
    assert_eq!(
        verify_input(&cache.spend_context(1).unwrap(), VerifyFlags::STANDARD),
        Err(ScriptError::RecoveryOutputMismatch)
    );
}

// ----- emission return -----------------------------------------------------------------------

fn emission() -> EmissionReturn {
    EmissionReturn::new(pk(1), RelativeLock::Blocks(52_560)).unwrap()
}

#[test]
fn emission_owner_spends() {
    let e = emission();
    let spent = vec![e.output(Amount(COIN))];
    let mut tx = spending(0, 0, vec![e.output(Amount(COIN - 1000))]);
    tx.inputs[0].witness = e.owner_witness(sign(&tx, &spent, 0, &sk(1), &e.witness_script()));
    assert_eq!(verify(&tx, &spent), Ok(()));
}

#[test]
fn emission_sweep_only_after_inactivity_and_only_to_the_pool() {
    let e = emission();
    let amount = 7 * COIN;
    let spent = vec![e.output(Amount(amount))];
    let sweep = |sequence: u32, outputs: Vec<TxOut>| {
        let mut tx = spending(sequence, 0, outputs);
        tx.inputs[0].witness = e.sweep_witness();
        verify(&tx, &spent)
    };
    let to_pool = || vec![emission_output(Amount(amount - 1000))];
    assert_eq!(e.sweep_sequence(), 52_560);
    assert_eq!(sweep(0, to_pool()), Err(ScriptError::UnsatisfiedSequence));
    assert_eq!(sweep(52_559, to_pool()), Err(ScriptError::UnsatisfiedSequence));
    assert_eq!(sweep(52_560, to_pool()), Ok(()));
    assert_eq!(sweep(60_000, to_pool()), Ok(()));
    // After the inactivity, but to a normal output (or partly).
    assert_eq!(
        sweep(52_560, vec![elsewhere(amount - 1000)]),
        Err(ScriptError::EmissionOutputMismatch)
    );
    assert_eq!(
        sweep(52_560, vec![emission_output(Amount(amount / 2)), elsewhere(amount / 2 - 1000)]),
        Err(ScriptError::EmissionOutputMismatch)
    );
    assert_eq!(sweep(52_560, vec![]), Err(ScriptError::EmissionOutputMismatch));
    // A sweeper cannot take the value as fee beyond the bound.
    let min = amount - MAX_EMISSION_SWEEP_FEE_PER_INPUT.to_resonance();
    assert_eq!(sweep(52_560, vec![emission_output(Amount(min))]), Ok(()));
    assert_eq!(
        sweep(52_560, vec![emission_output(Amount(min - 1))]),
        Err(ScriptError::EmissionOutputMismatch)
    );
    assert_eq!(
        sweep(52_560, vec![emission_output(Amount(0))]),
        Err(ScriptError::EmissionOutputMismatch)
    );
    // Several emission-return outputs are fine.
    assert_eq!(
        sweep(
            52_560,
            vec![emission_output(Amount(amount / 2)), emission_output(Amount(amount / 2))]
        ),
        Ok(())
    );
    assert!(rnet_script::is_emission_return(EMISSION_RETURN_SCRIPT));
}

#[test]
fn emission_sweep_of_many_coins_into_one_output() {
    let e = emission();
    let spent: Vec<_> = (1..=3).map(|i| e.output(Amount(i * COIN))).collect();
    let mut tx = Transaction {
        version: 2,
        inputs: (1..=3).map(|i| input(prevout(i), e.sweep_sequence())).collect(),
        outputs: vec![emission_output(Amount(6 * COIN - 3 * MAX_EMISSION_SWEEP_FEE_PER_INPUT.0))],
        lock_time: 0,
    };
    for i in 0..3 {
        tx.inputs[i].witness = e.sweep_witness();
    }
    assert_eq!(verify(&tx, &spent), Ok(()));
    tx.outputs[0].value.0 -= 1;
    assert_eq!(verify(&tx, &spent), Err(ScriptError::EmissionOutputMismatch));
}

/// Padding a sweep with zero-value inputs that need no signature (witness version 2 and above
/// are anyone-can-spend) must not raise the fee it may take from the pool: each input adds at
/// most its own value to the allowance.
#[test]
fn emission_sweep_fee_allowance_is_bounded_by_the_swept_value() {
    // A miner includes such a transaction itself: consensus flags (standardness would refuse
    // the anyone-can-spend inputs anyway).
    let verify_consensus = |tx: &Transaction, spent: &[TxOut]| {
        verify_transaction(&GENESIS, tx, spent, VerifyFlags::CONSENSUS).map_err(|e| e.error)
    };
    let e = emission();
    let amount = 7 * COIN;
    let free = TxOut { value: Amount(0), script_pubkey: [&[0x52u8, 32][..], &[9; 32]].concat() };
    let padding = 50;
    let mut spent = vec![e.output(Amount(amount))];
    spent.extend(std::iter::repeat_n(free.clone(), padding));
    let sweep = |fee: u64| {
        let mut tx = Transaction {
            version: 2,
            inputs: (0..=padding)
                .map(|i| {
                    input(OutPoint::new(Txid::from_bytes([i as u8; 32]), 1), e.sweep_sequence())
                })
                .collect(),
            outputs: vec![emission_output(Amount(amount - fee))],
            lock_time: 0,
        };
        tx.inputs[0].witness = e.sweep_witness();
        verify_consensus(&tx, &spent)
    };
    let per_input = MAX_EMISSION_SWEEP_FEE_PER_INPUT.to_resonance();
    // The padding itself verifies (no signature needed), and the swept coin's own allowance is
    // available.
    assert_eq!(sweep(per_input), Ok(()));
    // 51 inputs no longer allow 51 × 0.01 RNT when 50 of them are worth nothing.
    assert_eq!(sweep(per_input + 1), Err(ScriptError::EmissionOutputMismatch));
    assert_eq!(sweep(per_input * (padding as u64 + 1)), Err(ScriptError::EmissionOutputMismatch));
    // An input worth less than the per-input allowance contributes only its value.
    let mut spent_small = spent.clone();
    spent_small[1].value = Amount(400);
    let mut tx = Transaction {
        version: 2,
        inputs: (0..=padding)
            .map(|i| input(OutPoint::new(Txid::from_bytes([i as u8; 32]), 1), e.sweep_sequence()))
            .collect(),
        outputs: vec![emission_output(Amount(amount + 400 - per_input - 400))],
        lock_time: 0,
    };
    tx.inputs[0].witness = e.sweep_witness();
    assert_eq!(verify_consensus(&tx, &spent_small), Ok(()));
    tx.outputs[0].value.0 -= 1;
    assert_eq!(verify_consensus(&tx, &spent_small), Err(ScriptError::EmissionOutputMismatch));
}

/// A small-order recovery key "signs" every message under the cofactored ZIP-215 rule: once the
/// interval has passed, anyone can take the coin with `R = identity, S = 0`. Consensus accepts
/// the key (it is a curve point), so the templates refuse to build such a policy and relay
/// policy refuses to verify a signature under such a key.
#[test]
fn weak_recovery_keys_are_refused() {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = PublicKey::from_bytes(&identity).unwrap();
    let interval = RelativeLock::Blocks(50);
    // The template refuses the key everywhere a policy takes one.
    assert_eq!(Heartbeat::new(pk(1), weak, interval), Err(TemplateError::WeakKey));
    assert_eq!(Heartbeat::new(weak, pk(2), interval), Err(TemplateError::WeakKey));
    assert_eq!(
        Social::new(pk(1), vec![pk(11), weak], 1, interval).map(|_| ()),
        Err(TemplateError::WeakKey)
    );
    assert_eq!(EmissionReturn::new(weak, interval).map(|_| ()), Err(TemplateError::WeakKey));
    assert_eq!(Htlc::new(weak, pk(2), [1; 32], 10).map(|_| ()), Err(TemplateError::WeakKey));
    // The spend that would have worked: a policy built around the check, a forged signature.
    let h = Heartbeat { owner: pk(1), recovery: weak, interval };
    let spent = vec![h.output(Amount(COIN))];
    let mut tx = spending(h.recovery_sequence(), 0, vec![elsewhere(COIN - 1000)]);
    let mut forged = vec![0u8; 64];
    forged[0] = 1;
    tx.inputs[0].witness = h.recovery_witness(forged);
    assert!(verify_transaction(&GENESIS, &tx, &spent, VerifyFlags::CONSENSUS).is_ok());
    assert_eq!(
        verify_transaction(&GENESIS, &tx, &spent, VerifyFlags::STANDARD).map_err(|e| e.error),
        Err(ScriptError::WeakPublicKey)
    );
}

// ----- HTLC ----------------------------------------------------------------------------------

#[test]
fn htlc_claim_and_refund() {
    let preimage = [0x42u8; 32];
    let h = Htlc::new(pk(1), pk(2), Htlc::payment_hash_of(&preimage), 800_000).unwrap();
    let spent = vec![h.output(Amount(COIN))];
    let code = h.witness_script();

    // Receiver claims with the preimage at any time.
    let mut tx = spending(SEQUENCE_FINAL, 0, vec![elsewhere(COIN - 1000)]);
    tx.inputs[0].witness = h.claim_witness(sign(&tx, &spent, 0, &sk(1), &code), &preimage);
    assert_eq!(verify(&tx, &spent), Ok(()));
    // Wrong preimage.
    tx.inputs[0].witness = h.claim_witness(sign(&tx, &spent, 0, &sk(1), &code), &[0x43; 32]);
    assert_eq!(verify(&tx, &spent), Err(ScriptError::EqualVerify));
    // Preimage of the wrong size.
    let mut w = h.claim_witness(sign(&tx, &spent, 0, &sk(1), &code), &preimage);
    w.0[1].push(0);
    tx.inputs[0].witness = w;
    assert_eq!(verify(&tx, &spent), Err(ScriptError::EqualVerify));
    // Sender cannot claim with the preimage.
    tx.inputs[0].witness = h.claim_witness(sign(&tx, &spent, 0, &sk(2), &code), &preimage);
    assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));

    // Sender refunds only after the timeout.
    let refund = |sequence: u32, lock_time: u32| {
        let mut tx = spending(sequence, lock_time, vec![elsewhere(COIN - 1000)]);
        tx.inputs[0].witness = h.refund_witness(sign(&tx, &spent, 0, &sk(2), &code));
        verify(&tx, &spent)
    };
    assert_eq!(refund(0, 799_999), Err(ScriptError::UnsatisfiedLockTime));
    assert_eq!(refund(0, 0), Err(ScriptError::UnsatisfiedLockTime));
    assert_eq!(refund(SEQUENCE_FINAL, 800_000), Err(ScriptError::UnsatisfiedLockTime));
    assert_eq!(refund(0, 1_700_000_000), Err(ScriptError::UnsatisfiedLockTime), "time vs height");
    assert_eq!(refund(0, 800_000), Ok(()));
    assert_eq!(refund(SEQUENCE_FINAL - 1, 900_000), Ok(()));
    // The receiver cannot take the refund path.
    let mut tx = spending(0, 800_000, vec![elsewhere(COIN - 1000)]);
    tx.inputs[0].witness = h.refund_witness(sign(&tx, &spent, 0, &sk(1), &code));
    assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
}

#[test]
fn htlc_time_based_timeout() {
    let preimage = [7u8; 32];
    let h = Htlc::new(pk(1), pk(2), Htlc::payment_hash_of(&preimage), 1_800_000_000).unwrap();
    assert!(h.timeout_is_time());
    let spent = vec![h.output(Amount(COIN))];
    let refund = |lock_time: u32| {
        let mut tx = spending(0, lock_time, vec![elsewhere(COIN - 1000)]);
        tx.inputs[0].witness = h.refund_witness(sign(&tx, &spent, 0, &sk(2), &h.witness_script()));
        verify(&tx, &spent)
    };
    assert_eq!(refund(1_799_999_999), Err(ScriptError::UnsatisfiedLockTime));
    assert_eq!(refund(100), Err(ScriptError::UnsatisfiedLockTime));
    assert_eq!(refund(1_800_000_000), Ok(()));
}

// ----- batch mode ----------------------------------------------------------------------------

#[test]
fn batch_mode_agrees_with_immediate_mode() {
    // A transaction spending one output of every template, with every signature valid.
    let hb = heartbeat();
    let s = social();
    let e = emission();
    let preimage = [9u8; 32];
    let h = Htlc::new(pk(1), pk(2), Htlc::payment_hash_of(&preimage), 10).unwrap();
    let plain = PlainKey::new(pk(4));
    let spent = vec![
        hb.output(Amount(COIN)),
        s.output(Amount(COIN)),
        h.output(Amount(COIN)),
        plain.output(Amount(COIN)),
        e.output(Amount(COIN)),
    ];
    let mut tx = Transaction {
        version: 2,
        inputs: (1..=5).map(|i| input(prevout(i), 1000)).collect(),
        outputs: vec![elsewhere(5 * COIN - 10_000)],
        lock_time: 20,
    };
    let cache_sign =
        |tx: &Transaction, i: usize, key: u8, code: &[u8]| sign(tx, &spent, i, &sk(key), code);
    let w0 = hb.recovery_witness(cache_sign(&tx, 0, 2, &hb.witness_script()));
    let w1 = s.owner_witness(cache_sign(&tx, 1, 1, &s.witness_script()));
    let w2 = h.refund_witness(cache_sign(&tx, 2, 2, &h.witness_script()));
    let w3 = plain.witness(cache_sign(&tx, 3, 4, &plain.script_code()));
    let w4 = e.owner_witness(cache_sign(&tx, 4, 1, &e.witness_script()));
    for (i, w) in [w0, w1, w2, w3, w4].into_iter().enumerate() {
        tx.inputs[i].witness = w;
    }
    assert_eq!(verify(&tx, &spent), Ok(()));

    let cache = SighashCache::new(&GENESIS, &tx, &spent).unwrap();
    let mut batch = BatchVerifier::new();
    for i in 0..5 {
        let ctx = cache.spend_context(i).unwrap();
        assert_eq!(verify_input(&ctx, VerifyFlags::CONSENSUS), Ok(()));
        assert_eq!(verify_input_batched(&ctx, VerifyFlags::CONSENSUS, &mut batch), Ok(()));
    }
    assert_eq!(batch.len(), 5);
    assert!(batch.verify().is_ok());

    // Corrupt each signature in turn: immediate mode rejects that input with SigCheckFailed,
    // batch mode accepts the scripts but the batch fails.
    for i in 0..4 {
        let mut t = tx.clone();
        let sig = &mut t.inputs[i].witness.0[0];
        sig[5] ^= 1;
        let err = verify_transaction(&GENESIS, &t, &spent, VerifyFlags::CONSENSUS).unwrap_err();
        assert_eq!(err.input, Some(i));
        assert_eq!(err.error, ScriptError::SigCheckFailed);
        let mut batch = BatchVerifier::new();
        assert_eq!(
            verify_transaction_batched(&GENESIS, &t, &spent, VerifyFlags::CONSENSUS, &mut batch),
            Ok(())
        );
        assert!(batch.verify().is_err());
    }
}
