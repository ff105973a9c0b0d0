//! The value rule of `OP_CHECKRECOVERYPENDINGVERIFY` (docs/protocol.md Part IV §8.1): a guardian
//! recovery's fee allowance can only pay fees. A transaction recovering a social coin has exactly
//! one output per input and no output worth more than the input at its index, so a guardian
//! quorum cannot skim the allowance into an output of its own, neither with an extra output nor
//! by adding an input of its own with a "change" output.

use rnet_crypto::{PublicKey, SigningKey};
use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
use rnet_script::{
    MAX_RECOVERY_FEE, PlainKey, RelativeLock, ScriptError, ScriptTemplate, SighashCache,
    SighashType, Social, VerifyFlags, verify_transaction,
};

const COIN: u64 = 100_000_000;
const GENESIS: BlockHash = BlockHash([0x47; 32]);
const GUARDIANS: [u8; 3] = [11, 12, 13];

fn sk(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn pk(n: u8) -> PublicKey {
    sk(n).public_key()
}

/// A 2-of-3 social policy of owner `owner`.
fn social(owner: u8) -> Social {
    Social::new(pk(owner), GUARDIANS.iter().map(|&g| pk(g)).collect(), 2, RelativeLock::Blocks(500))
        .unwrap()
}

/// What a guardian is paid when it skims: a plain-key output of guardian 11.
fn to_guardian(value: u64) -> TxOut {
    PlainKey::new(pk(GUARDIANS[0])).output(Amount(value))
}

fn input(n: u8) -> TxIn {
    TxIn {
        previous_output: OutPoint::new(Txid::from_bytes([n; 32]), 0),
        script_sig: Vec::new(),
        sequence: 0,
        witness: Witness::new(),
    }
}

/// One input of a transaction: the social policy that locks it (guardians sign), or a plain key
/// of the guardian (the guardian signs with it).
enum Spend<'a> {
    Social(&'a Social),
    Guardian,
}

/// Builds the transaction spending `spends` (values `values`) into `outputs`, with guardians 0
/// and 1 recovering every social input to `new_key` and the guardian key signing its own inputs;
/// returns the verdict of full verification.
fn recover(spends: &[Spend<'_>], values: &[u64], outputs: Vec<TxOut>) -> Result<(), ScriptError> {
    let spent: Vec<TxOut> = spends
        .iter()
        .zip(values)
        .map(|(s, &v)| match s {
            Spend::Social(p) => p.output(Amount(v)),
            Spend::Guardian => to_guardian(v),
        })
        .collect();
    let mut tx = Transaction {
        version: 2,
        inputs: (0..spends.len()).map(|i| input(i as u8 + 1)).collect(),
        outputs,
        lock_time: 0,
    };
    let witnesses: Vec<Witness> = {
        let cache = SighashCache::new(&GENESIS, &tx, &spent).unwrap();
        spends
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Spend::Social(p) => {
                    let sigs: Vec<Option<Vec<u8>>> = (0..GUARDIANS.len())
                        .map(|g| {
                            (g < 2).then(|| {
                                cache
                                    .sign(
                                        &sk(GUARDIANS[g]),
                                        i,
                                        &p.witness_script(),
                                        SighashType::All,
                                    )
                                    .unwrap()
                            })
                        })
                        .collect();
                    p.guardian_witness(&pk(50), &sigs).unwrap()
                }
                Spend::Guardian => {
                    let key = PlainKey::new(pk(GUARDIANS[0]));
                    key.witness(
                        cache
                            .sign(&sk(GUARDIANS[0]), i, &key.script_code(), SighashType::All)
                            .unwrap(),
                    )
                }
            })
            .collect()
    };
    for (i, w) in tx.inputs.iter_mut().zip(witnesses) {
        i.witness = w;
    }
    verify_transaction(&GENESIS, &tx, &spent, VerifyFlags::CONSENSUS).map_err(|e| e.error)
}

#[test]
fn skim_to_an_extra_output_is_refused() {
    let s = social(1);
    let amount = 10 * COIN;
    let allowance = MAX_RECOVERY_FEE.to_resonance();
    let pending = s.pending(pk(50)).output(Amount(amount - allowance));
    // The skim: the pending output takes the whole allowance, which goes to a guardian.
    assert_eq!(
        recover(&[Spend::Social(&s)], &[amount], vec![pending.clone(), to_guardian(allowance)]),
        Err(ScriptError::RecoveryValueMoved)
    );
    // Any extra output, even one worth nothing, breaks the one-output-per-input shape.
    let nothing = TxOut { value: Amount::ZERO, script_pubkey: vec![0x6a] };
    assert_eq!(
        recover(&[Spend::Social(&s)], &[amount], vec![pending.clone(), nothing]),
        Err(ScriptError::RecoveryValueMoved)
    );
    // The honest recovery: the allowance (or less) is the fee and there is no other output.
    assert_eq!(recover(&[Spend::Social(&s)], &[amount], vec![pending]), Ok(()));
    let fee = 5_000;
    let pending = s.pending(pk(50)).output(Amount(amount - fee));
    assert_eq!(recover(&[Spend::Social(&s)], &[amount], vec![pending]), Ok(()));
}

#[test]
fn skim_through_a_guardian_input_is_refused() {
    let s = social(1);
    let amount = 10 * COIN;
    let own = COIN;
    let allowance = MAX_RECOVERY_FEE.to_resonance();
    let pending = s.pending(pk(50)).output(Amount(amount - allowance));
    let spends = [Spend::Social(&s), Spend::Guardian];
    // The guardian adds a coin of its own and a "change" output worth its coin plus the
    // recovered coin's allowance: the fee is zero and the allowance went to the guardian.
    assert_eq!(
        recover(&spends, &[amount, own], vec![pending.clone(), to_guardian(own + allowance)]),
        Err(ScriptError::RecoveryValueMoved)
    );
    // Even one resonance more than its own input.
    assert_eq!(
        recover(&spends, &[amount, own], vec![pending.clone(), to_guardian(own + 1)]),
        Err(ScriptError::RecoveryValueMoved)
    );
    // Putting the guardian's input first changes nothing: value cannot cross index positions.
    let swapped = [Spend::Guardian, Spend::Social(&s)];
    assert_eq!(
        recover(&swapped, &[own, amount], vec![to_guardian(own + allowance), pending.clone()]),
        Err(ScriptError::RecoveryValueMoved)
    );
    // And the pending output must be at the recovered input's index.
    assert_eq!(
        recover(&swapped, &[own, amount], vec![pending.clone(), to_guardian(own)]),
        Err(ScriptError::RecoveryOutputMismatch)
    );
    // A guardian may still add its own coin to pay more fee: its output takes at most its own
    // value, so the owner loses nothing beyond the allowance, and that only to the fee.
    let full = s.pending(pk(50)).output(Amount(amount));
    assert_eq!(recover(&spends, &[amount, own], vec![full, to_guardian(own - 20_000)]), Ok(()));
}

#[test]
fn several_owners_recovered_together_stay_index_aligned() {
    let (a, b) = (social(1), social(2));
    let spends = [Spend::Social(&a), Spend::Social(&b)];
    let values = [COIN, 3 * COIN];
    let pa = a.pending(pk(50));
    let pb = b.pending(pk(50));
    assert_eq!(
        recover(
            &spends,
            &values,
            vec![pa.output(Amount(COIN - 1000)), pb.output(Amount(3 * COIN))]
        ),
        Ok(())
    );
    // Coin b's output takes part of coin a's value: each still gets at least its amount minus
    // the allowance, but b's output exceeds b's input, so a's value moved.
    let shift = 500;
    assert_eq!(
        recover(
            &spends,
            &values,
            vec![pa.output(Amount(COIN - 1000 - shift)), pb.output(Amount(3 * COIN + shift))]
        ),
        Err(ScriptError::RecoveryValueMoved)
    );
}
