//! Every spending path of every channel script, executed by the real script interpreter
//! (`rnet_script::verify_transaction` under both `VerifyFlags::STANDARD` and `CONSENSUS`, which
//! must agree): the valid spends and the ones that must fail. Also the amounts of commitment
//! transactions (conservation, trimming, dust, reserve) and fee/size estimates.
//!
//! Alice (keys 1..=5, funder) and Bob (keys 11..=15) run a 0.1 RNT channel. Alice's node holds
//! `alice_params()` (Alice = local), Bob's `bob_params()` (Bob = local).

/// Named so that `cargo test -p rnet-lightning channel` selects these tests.
mod channel {
    use rnet_crypto::{PublicKey, SigningKey};
    use rnet_lightning::channel::commitment::is_trimmed;
    use rnet_lightning::channel::fees::{
        HTLC_SUCCESS_TX_SIZE, HTLC_TIMEOUT_TX_SIZE, MAX_STANDARD_TX_SIZE, commitment_size,
    };
    use rnet_lightning::channel::number;
    use rnet_lightning::channel::scripts::to_remote_output;
    use rnet_lightning::channel::sign::{sign_input, verify_input_signature};
    use rnet_lightning::channel::sweep::{
        htlc_preimage_input, htlc_timeout_input, htlc_tx_output_input, htlc_tx_penalty_input,
        to_local_input, to_remote_input,
    };
    use rnet_lightning::channel::*;
    use rnet_primitives::transaction::SEQUENCE_FINAL;
    use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
    use rnet_script::templates::Htlc;
    use rnet_script::{
        PlainKey, ScriptError, ScriptTemplate, SighashCache, SighashType, TemplateError,
        VerifyFlags, verify_transaction,
    };

    /// The genesis id every signature commits to.
    const GENESIS: BlockHash = BlockHash([0x47; 32]);
    /// Another chain's genesis id.
    const OTHER_GENESIS: BlockHash = BlockHash([0x48; 32]);

    const FUNDING: Amount = Amount(10_000_000);
    const FEERATE: FeeRate = FeeRate(10_000);
    const ALICE_DELAY: u16 = 144;
    const BOB_DELAY: u16 = 100;

    const PREIMAGE_OFFERED: [u8; 32] = [0x10; 32];
    const PREIMAGE_RECEIVED: [u8; 32] = [0x12; 32];
    const CLTV_OFFERED: u32 = 500_100;
    const CLTV_RECEIVED: u32 = 500_050;

    fn sk(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn hash(preimage: &[u8; 32]) -> [u8; 32] {
        Htlc::payment_hash_of(preimage)
    }

    fn alice() -> ChannelKeys {
        ChannelKeys {
            funding: sk(1),
            revocation: sk(2),
            payment: sk(3),
            delayed_payment: sk(4),
            htlc: sk(5),
            commitment_seed: SecretGenerator::new([0xa0; 32]),
        }
    }

    fn bob() -> ChannelKeys {
        ChannelKeys {
            funding: sk(11),
            revocation: sk(12),
            payment: sk(13),
            delayed_payment: sk(14),
            htlc: sk(15),
            commitment_seed: SecretGenerator::new([0xb0; 32]),
        }
    }

    fn funding_outpoint() -> OutPoint {
        OutPoint::new(Txid::from_bytes([0xf0; 32]), 1)
    }

    fn alice_config() -> PartyConfig {
        PartyConfig {
            keys: alice().public_keys(),
            dust_limit: Amount(500),
            to_self_delay: ALICE_DELAY,
            channel_reserve: Amount(100_000),
        }
    }

    fn bob_config() -> PartyConfig {
        PartyConfig {
            keys: bob().public_keys(),
            dust_limit: Amount(600),
            to_self_delay: BOB_DELAY,
            channel_reserve: Amount(100_000),
        }
    }

    fn alice_params() -> ChannelParameters {
        ChannelParameters::new(
            funding_outpoint(),
            FUNDING,
            alice_config(),
            bob_config(),
            Side::Local,
        )
        .unwrap()
    }

    fn bob_params() -> ChannelParameters {
        ChannelParameters::new(
            funding_outpoint(),
            FUNDING,
            bob_config(),
            alice_config(),
            Side::Remote,
        )
        .unwrap()
    }

    /// A state seen from Alice: two HTLCs she offered (one trimmed), two she received (one
    /// trimmed), sub-resonance remainders on `to_remote` and one HTLC.
    fn spec(commitment_number: u64) -> CommitmentSpec {
        CommitmentSpec {
            commitment_number,
            to_local_msat: 4_000_000_000,
            to_remote_msat: 2_499_299_877,
            feerate: FEERATE,
            htlcs: vec![
                HtlcSpec {
                    id: 0,
                    direction: HtlcDirection::Offered,
                    amount_msat: 2_000_000_000,
                    payment_hash: hash(&PREIMAGE_OFFERED),
                    cltv_expiry: CLTV_OFFERED,
                },
                HtlcSpec {
                    id: 1,
                    direction: HtlcDirection::Offered,
                    amount_msat: 300_000,
                    payment_hash: hash(&[0x11; 32]),
                    cltv_expiry: 500_200,
                },
                HtlcSpec {
                    id: 0,
                    direction: HtlcDirection::Received,
                    amount_msat: 1_500_000_123,
                    payment_hash: hash(&PREIMAGE_RECEIVED),
                    cltv_expiry: CLTV_RECEIVED,
                },
                HtlcSpec {
                    id: 1,
                    direction: HtlcDirection::Received,
                    amount_msat: 400_000,
                    payment_hash: hash(&[0x13; 32]),
                    cltv_expiry: 500_300,
                },
            ],
        }
    }

    /// Alice's commitment `n` as her node builds it.
    fn alice_commitment(n: u64) -> CommitmentTransaction {
        let point = alice().per_commitment_point(n).unwrap();
        build_commitment(&alice_params(), Side::Local, &spec(n), &point).unwrap()
    }

    /// Both script-verification modes; they must agree.
    fn verify(tx: &Transaction, spent: &[TxOut]) -> Result<(), ScriptError> {
        let standard =
            verify_transaction(&GENESIS, tx, spent, VerifyFlags::STANDARD).map_err(|e| e.error);
        let consensus =
            verify_transaction(&GENESIS, tx, spent, VerifyFlags::CONSENSUS).map_err(|e| e.error);
        assert_eq!(standard, consensus, "policy and consensus disagree");
        standard
    }

    /// Somebody's plain key output, as a destination.
    fn elsewhere(value: Amount) -> TxOut {
        PlainKey::new(sk(200).public_key()).output(value)
    }

    /// A one-input, one-output spend of `spent` at `prevout`, whose witness is made by `witness`
    /// from the unsigned transaction (so it can sign it).
    fn spend(
        prevout: OutPoint,
        spent: &TxOut,
        sequence: u32,
        lock_time: u32,
        witness: impl FnOnce(&Transaction, &[TxOut]) -> Witness,
    ) -> (Transaction, Vec<TxOut>) {
        let mut tx = Transaction {
            version: 2,
            inputs: vec![TxIn {
                previous_output: prevout,
                script_sig: Vec::new(),
                sequence,
                witness: Witness::new(),
            }],
            outputs: vec![elsewhere(Amount(spent.value.0 - 1000))],
            lock_time,
        };
        let spent = vec![spent.clone()];
        tx.inputs[0].witness = witness(&tx, &spent);
        (tx, spent)
    }

    /// Signs input 0 of `tx` with `key` over `code`.
    fn sig(tx: &Transaction, spent: &[TxOut], key: &SigningKey, code: &[u8]) -> Vec<u8> {
        sign_input(&GENESIS, tx, spent, 0, code, key).unwrap()
    }

    fn sum(outputs: &[TxOut]) -> u64 {
        outputs.iter().map(|o| o.value.0).sum()
    }

    // ----- funding and commitment ----------------------------------------------------------------

    #[test]
    fn funding_output_is_the_sorted_two_of_two() {
        let (a, b) = (alice().funding.public_key(), bob().funding.public_key());
        let out = funding_output(a, b, FUNDING).unwrap();
        assert_eq!(out, funding_output(b, a, FUNDING).unwrap());
        assert_eq!(out, alice_params().funding_output());
        assert_eq!(out, bob_params().funding_output());
        assert_eq!(out.script_pubkey.len(), 34);
        assert_eq!(out.script_pubkey[..2], [0x00, 32]);
    }

    #[test]
    fn commitment_signed_by_both_spends_the_funding_output() {
        let c = alice_commitment(5);
        let bob_sig = c.sign(&bob().funding, &GENESIS).unwrap();
        // Alice checks Bob's signature on her commitment (commitment_signed).
        c.verify_counterparty_signature(&bob_sig, &GENESIS).unwrap();
        let alice_sig = c.sign(&alice().funding, &GENESIS).unwrap();
        let tx = c.finalize(alice_sig.clone(), bob_sig.clone()).unwrap();
        assert_eq!(verify(&tx, &c.spent_outputs()), Ok(()));
        assert_eq!(tx.txid(), c.txid(), "signing does not change the txid");

        // One signature is not enough: the other slot is empty.
        let mut one = tx.clone();
        let (first, second) = if c.funding.keys()[0] == alice().funding.public_key() {
            (alice_sig.clone(), Vec::new())
        } else {
            (Vec::new(), alice_sig.clone())
        };
        one.inputs[0].witness = c.funding.witness_slots(first, second);
        assert_eq!(verify(&one, &c.spent_outputs()), Err(ScriptError::MultisigSignatureCount));

        // Signatures in the wrong slots fail.
        let mut swapped = tx.clone();
        let items = swapped.inputs[0].witness.0.clone();
        swapped.inputs[0].witness =
            Witness(vec![items[1].clone(), items[0].clone(), items[2].clone()]);
        assert_eq!(verify(&swapped, &c.spent_outputs()), Err(ScriptError::SigCheckFailed));

        // A signature for another chain, a non-ALL signature and a third party's key are refused.
        let other = sign_input(
            &OTHER_GENESIS,
            &c.tx,
            &c.spent_outputs(),
            0,
            &c.funding.witness_script(),
            &bob().funding,
        )
        .unwrap();
        assert_eq!(
            c.verify_counterparty_signature(&other, &GENESIS),
            Err(ChannelError::InvalidSignature)
        );
        let acp = SighashCache::new(&GENESIS, &c.tx, &c.spent_outputs())
            .unwrap()
            .sign(&bob().funding, 0, &c.funding.witness_script(), SighashType::AllAnyoneCanPay)
            .unwrap();
        assert_eq!(
            c.verify_counterparty_signature(&acp, &GENESIS),
            Err(ChannelError::InvalidSignature)
        );
        assert_eq!(
            c.verify_counterparty_signature(&alice_sig, &GENESIS),
            Err(ChannelError::InvalidSignature)
        );
        assert_eq!(c.sign(&sk(99), &GENESIS), Err(ChannelError::KeyMismatch));
        let bad = c.finalize(alice_sig, other).unwrap();
        assert_eq!(verify(&bad, &c.spent_outputs()), Err(ScriptError::SigCheckFailed));
    }

    #[test]
    fn commitment_amounts_trimming_ordering_and_number() {
        let c = alice_commitment(5);
        let outs = &c.tx.outputs;
        // Inputs = outputs + fee, exactly.
        assert_eq!(sum(outs) + c.fee.total.0, FUNDING.0);
        // Base fee for 2 untrimmed HTLCs: 426 bytes at 10 000/kB.
        assert_eq!(c.fee.base_fee, Amount(4260));
        assert_eq!(c.fee.base_fee_paid_msat, 4_260_000);
        // The two small HTLCs are trimmed and their value is fee.
        assert_eq!(c.trimmed.len(), 2);
        assert_eq!(c.fee.trimmed_htlc_msat, 700_000);
        assert_eq!(c.fee.rounding_msat, 877 + 123);
        assert_eq!(c.fee.dust_balance_msat, 0);
        assert_eq!(c.fee.total, Amount(4_961));
        assert_eq!(
            c.fee.total.0 * 1000,
            c.fee.base_fee_paid_msat
                + c.fee.trimmed_htlc_msat
                + c.fee.dust_balance_msat
                + c.fee.rounding_msat
        );
        // Values: received HTLC, offered HTLC, to_remote, to_local (funder pays the fee).
        let values: Vec<u64> = outs.iter().map(|o| o.value.0).collect();
        assert_eq!(values, vec![1_500_000, 2_000_000, 2_499_299, 3_995_740]);
        assert_eq!(c.to_local().unwrap().0, 3);
        assert_eq!(c.to_remote(), Some(2));
        assert_eq!(outs[2], to_remote_output(&bob().payment.public_key(), Amount(2_499_299)));
        let htlcs: Vec<_> = c.htlc_outputs().map(|(i, h, _)| (i, h.direction, h.id)).collect();
        assert_eq!(htlcs, vec![(0, HtlcDirection::Received, 0), (1, HtlcDirection::Offered, 0)]);
        // Every output is above the dust limit.
        assert!(outs.iter().all(|o| o.value >= MIN_DUST_LIMIT));
        // Obscured commitment number, recoverable with the factor only.
        let factor = alice_params().obscuring_factor();
        assert_eq!(factor, bob_params().obscuring_factor());
        assert_eq!(number::decode(c.tx.lock_time, c.tx.inputs[0].sequence, factor), Some(5));
        assert_ne!(c.tx.lock_time & 0xff_ffff, 5);
        assert_eq!(c.tx.version, 2);
        // Signed size is exactly the size the fee was computed for.
        let tx = c
            .finalize(
                c.sign(&alice().funding, &GENESIS).unwrap(),
                c.sign(&bob().funding, &GENESIS).unwrap(),
            )
            .unwrap();
        assert_eq!(tx.total_size(), commitment_size(2));
    }

    #[test]
    fn output_order_breaks_ties_by_cltv_expiry() {
        // Two offered HTLCs with the same amount and hash but different expiries: BIP69 by value
        // and script, and since the expiry is in the script, the scripts order them
        // deterministically; identical HTLCs (same expiry) are ordered by id.
        let mut s = spec(1);
        s.htlcs = vec![
            HtlcSpec {
                id: 7,
                direction: HtlcDirection::Offered,
                amount_msat: 1_000_000_000,
                payment_hash: [1; 32],
                cltv_expiry: 600_000,
            },
            HtlcSpec {
                id: 3,
                direction: HtlcDirection::Offered,
                amount_msat: 1_000_000_000,
                payment_hash: [1; 32],
                cltv_expiry: 600_000,
            },
            HtlcSpec {
                id: 5,
                direction: HtlcDirection::Offered,
                amount_msat: 1_000_000_000,
                payment_hash: [1; 32],
                cltv_expiry: 599_999,
            },
        ];
        s.to_local_msat = 4_000_000_000;
        s.to_remote_msat = 3_000_000_000;
        let point = alice().per_commitment_point(1).unwrap();
        let c = build_commitment(&alice_params(), Side::Local, &s, &point).unwrap();
        let ids: Vec<u64> = c.htlc_outputs().map(|(_, h, _)| h.id).collect();
        let pos = |id| ids.iter().position(|&i| i == id).unwrap();
        assert!(pos(3) < pos(7), "identical outputs by id");
        // Outputs are sorted by (value, scriptPubKey).
        let keyed: Vec<_> =
            c.tx.outputs.iter().map(|o| (o.value, o.script_pubkey.clone())).collect();
        let mut sorted = keyed.clone();
        sorted.sort();
        assert_eq!(keyed, sorted);
        // Input order of the spec does not matter.
        s.htlcs.reverse();
        let again = build_commitment(&alice_params(), Side::Local, &s, &point).unwrap();
        assert_eq!(again.tx, c.tx);
    }

    #[test]
    fn dust_balances_are_left_out_and_become_fee() {
        let mut s = spec(2);
        // Bob's balance of 499.999 resonance is below Alice's dust limit (500): left out.
        let moved = s.to_remote_msat - 499_999;
        s.to_remote_msat = 499_999;
        s.to_local_msat += moved;
        let point = alice().per_commitment_point(2).unwrap();
        let c = build_commitment(&alice_params(), Side::Local, &s, &point).unwrap();
        assert_eq!(c.to_remote(), None);
        assert_eq!(c.tx.outputs.len(), 3);
        assert_eq!(c.fee.dust_balance_msat, 499_999);
        assert_eq!(sum(&c.tx.outputs) + c.fee.total.0, FUNDING.0);
        assert_eq!(
            c.fee.total.0 * 1000,
            c.fee.base_fee_paid_msat
                + c.fee.trimmed_htlc_msat
                + c.fee.dust_balance_msat
                + c.fee.rounding_msat
        );
        // The same state on Bob's commitment: his own balance is dust under his dust limit (600).
        let bob_point = bob().per_commitment_point(2).unwrap();
        let cb = build_commitment(&alice_params(), Side::Remote, &s, &bob_point).unwrap();
        assert!(cb.to_local().is_none());
        assert_eq!(cb.fee.dust_balance_msat, 499_999);
    }

    #[test]
    fn funder_without_enough_for_the_fee_loses_its_output() {
        // Alice (funder) has 3 resonance: the base fee takes all of it.
        let mut s = spec(3);
        s.htlcs.clear();
        s.to_local_msat = 3_000;
        s.to_remote_msat = FUNDING.0 * 1000 - 3_000;
        let point = alice().per_commitment_point(3).unwrap();
        let c = build_commitment(&alice_params(), Side::Local, &s, &point).unwrap();
        assert_eq!(c.fee.base_fee_paid_msat, 3_000);
        assert!(c.to_local().is_none());
        assert_eq!(sum(&c.tx.outputs) + c.fee.total.0, FUNDING.0);
        // The reserve rules refuse such a state.
        assert!(matches!(
            check_reserves(&alice_params(), None, &s),
            Err(ChannelError::FunderCannotAffordFee { .. })
        ));
    }

    #[test]
    fn reserve_is_enforced() {
        let p = alice_params();
        let before = spec(4);
        assert_eq!(check_reserves(&p, None, &before), Ok(()));
        // Bob pays Alice almost all his balance: he falls below his 100 000 reserve.
        let mut after = before.clone();
        after.to_remote_msat = 50_000_000;
        after.to_local_msat += before.to_remote_msat - 50_000_000;
        assert_eq!(
            check_reserves(&p, Some(&before), &after),
            Err(ChannelError::ReserveViolated {
                side: Side::Remote,
                balance_msat: 50_000_000,
                reserve: Amount(100_000)
            })
        );
        // A party already below its reserve may still receive.
        let mut more = after.clone();
        more.to_remote_msat += 10_000_000;
        more.to_local_msat -= 10_000_000;
        assert_eq!(check_reserves(&p, Some(&after), &more), Ok(()));
        // The fundee starts with nothing: allowed at opening.
        let mut opening = spec(0);
        opening.htlcs.clear();
        opening.to_local_msat = FUNDING.0 * 1000;
        opening.to_remote_msat = 0;
        assert_eq!(check_reserves(&p, None, &opening), Ok(()));
        // The funder must keep its reserve after the fee.
        let mut drained = opening.clone();
        drained.to_local_msat = 100_000_000; // 100 000 resonance, minus the fee: below the reserve
        drained.to_remote_msat = FUNDING.0 * 1000 - 100_000_000;
        assert!(matches!(
            check_reserves(&p, Some(&opening), &drained),
            Err(ChannelError::ReserveViolated { side: Side::Local, .. })
        ));
        // Amounts that do not add up are refused.
        let mut broken = before.clone();
        broken.to_local_msat += 1;
        assert!(matches!(
            check_reserves(&p, None, &broken),
            Err(ChannelError::ValueNotConserved { .. })
        ));
    }

    /// What each side could claim if a commitment confirmed: every resonance of the funding
    /// output is someone's output or fee, and both parties' commitments of one state agree on
    /// who owns what.
    #[test]
    fn commitment_claims_add_up_on_both_commitments() {
        let s = spec(5);
        let a = alice_commitment(5);
        let claims = a.claims();
        let total = |c: &CommitmentClaims| {
            c.to_holder.0 + c.to_counterparty.0 + c.offered_htlcs.0 + c.received_htlcs.0 + c.fee.0
        };
        assert_eq!(total(&claims), FUNDING.0);
        assert_eq!(claims.fee, a.fee.total);
        // Alice funds: her balance pays the base fee; sub-resonance remainders go to fee.
        assert_eq!(claims.to_holder.0, (s.to_local_msat - a.fee.base_fee_paid_msat) / 1000);
        assert_eq!(claims.to_counterparty, Amount(2_499_299));
        // The untrimmed HTLCs only; the trimmed ones are fee.
        assert_eq!(claims.offered_htlcs, Amount(2_000_000));
        assert_eq!(claims.received_htlcs, Amount(1_500_000));
        assert_eq!(claims.to_self_delay, a.to_self_delay);
        // Bob's commitment of the same state: the roles swap, the sum holds.
        let bob_point = bob().per_commitment_point(5).unwrap();
        let b = build_commitment(&alice_params(), Side::Remote, &s, &bob_point).unwrap().claims();
        assert_eq!(total(&b), FUNDING.0);
        assert_eq!(b.to_holder, claims.to_counterparty);
        assert_eq!(b.to_counterparty, claims.to_holder);
        assert_eq!(
            (b.offered_htlcs, b.received_htlcs),
            (claims.received_htlcs, claims.offered_htlcs)
        );
    }

    #[test]
    fn both_nodes_build_the_same_commitments() {
        let s = spec(5);
        let alice_point = alice().per_commitment_point(5).unwrap();
        let bob_point = bob().per_commitment_point(5).unwrap();
        // Alice's commitment, built by Alice and by Bob.
        let a1 = build_commitment(&alice_params(), Side::Local, &s, &alice_point).unwrap();
        let a2 =
            build_commitment(&bob_params(), Side::Remote, &s.mirrored(), &alice_point).unwrap();
        assert_eq!(a1.tx, a2.tx);
        // Bob's commitment, built by both.
        let b1 = build_commitment(&alice_params(), Side::Remote, &s, &bob_point).unwrap();
        let b2 = build_commitment(&bob_params(), Side::Local, &s.mirrored(), &bob_point).unwrap();
        assert_eq!(b1.tx, b2.tx);
        assert_ne!(a1.txid(), b1.txid());
        // On Bob's commitment, Alice's offered HTLC is received by the holder; Bob's to_local is
        // Alice's to_remote minus nothing (Alice pays the fee on both).
        let dirs: Vec<_> =
            b1.htlc_outputs().map(|(_, h, _)| (h.direction, h.amount_msat)).collect();
        assert!(dirs.contains(&(HtlcDirection::Received, 2_000_000_000)));
        assert!(dirs.contains(&(HtlcDirection::Offered, 1_500_000_123)));
        assert_eq!(
            b1.to_local().map(|(i, _)| b1.tx.outputs[i as usize].value),
            Some(Amount(2_499_299))
        );
        assert_eq!(b1.to_local().unwrap().1.to_self_delay, BOB_DELAY);
        // Alice signs Bob's commitment; Bob checks it and broadcasts.
        let alice_sig = b1.sign(&alice().funding, &GENESIS).unwrap();
        b2.verify_counterparty_signature(&alice_sig, &GENESIS).unwrap();
        let tx = b2.finalize(b2.sign(&bob().funding, &GENESIS).unwrap(), alice_sig).unwrap();
        assert_eq!(verify(&tx, &b2.spent_outputs()), Ok(()));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut low = alice_config();
        low.dust_limit = Amount(452);
        assert!(matches!(
            ChannelParameters::new(funding_outpoint(), FUNDING, low, bob_config(), Side::Local),
            Err(ChannelError::DustLimitTooLow { .. })
        ));
        let mut zero = alice_config();
        zero.to_self_delay = 0;
        assert_eq!(
            ChannelParameters::new(funding_outpoint(), FUNDING, zero, bob_config(), Side::Local),
            Err(ChannelError::ZeroDelay)
        );
        let mut same = bob_config();
        same.keys.funding = alice_config().keys.funding;
        assert_eq!(
            ChannelParameters::new(funding_outpoint(), FUNDING, alice_config(), same, Side::Local),
            Err(ChannelError::DuplicateFundingKey)
        );
        assert_eq!(
            ChannelParameters::new(
                funding_outpoint(),
                Amount(0),
                alice_config(),
                bob_config(),
                Side::Local
            ),
            Err(ChannelError::InvalidFundingAmount(Amount(0)))
        );
        // A weak per-commitment point is refused.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        let weak = PublicKey::from_bytes(&ident).unwrap();
        assert_eq!(
            build_commitment(&alice_params(), Side::Remote, &spec(1), &weak),
            Err(ChannelError::Template(TemplateError::WeakKey))
        );
        // HTLCs: duplicate ids, zero amounts, time-based expiries.
        let mut dup = spec(1);
        dup.htlcs[1].id = 0;
        let point = alice().per_commitment_point(1).unwrap();
        assert!(matches!(
            build_commitment(&alice_params(), Side::Local, &dup, &point),
            Err(ChannelError::DuplicateHtlc { id: 0, .. })
        ));
        let mut time = spec(1);
        time.htlcs[0].cltv_expiry = 1_700_000_000;
        assert_eq!(
            build_commitment(&alice_params(), Side::Local, &time, &point),
            Err(ChannelError::CltvNotHeight(1_700_000_000))
        );
        let mut big = spec(1);
        big.commitment_number = 1 << 48;
        assert_eq!(
            build_commitment(&alice_params(), Side::Local, &big, &point),
            Err(ChannelError::CommitmentNumberTooLarge(1 << 48))
        );
    }

    // ----- to_local ------------------------------------------------------------------------------

    #[test]
    fn to_local_delayed_spend_waits_for_to_self_delay() {
        let c = alice_commitment(5);
        let (index, script) = c.to_local().unwrap();
        let out = &c.tx.outputs[index as usize];
        let code = script.witness_script();
        let delayed = alice().delayed_payment;
        for (sequence, expected) in [
            (u32::from(ALICE_DELAY) - 1, Err(ScriptError::UnsatisfiedSequence)),
            (u32::from(ALICE_DELAY), Ok(())),
            (u32::from(ALICE_DELAY) + 50, Ok(())),
            (SEQUENCE_FINAL, Err(ScriptError::UnsatisfiedSequence)),
        ] {
            let (tx, spent) = spend(c.outpoint(index), out, sequence, 0, |tx, spent| {
                script.delayed_witness(sig(tx, spent, &delayed, &code))
            });
            assert_eq!(verify(&tx, &spent), expected, "sequence {sequence}");
        }
        // Another key cannot take the delayed path.
        let (tx, spent) = spend(c.outpoint(index), out, u32::from(ALICE_DELAY), 0, |tx, spent| {
            script.delayed_witness(sig(tx, spent, &bob().delayed_payment, &code))
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
        // The sweep helper builds the same valid spend.
        let sweep = build_sweep(
            &[to_local_input(&c, &delayed).unwrap()],
            &elsewhere(Amount::ZERO).script_pubkey,
            FEERATE,
            &GENESIS,
        )
        .unwrap();
        assert_eq!(sweep.inputs[0].sequence, u32::from(ALICE_DELAY));
        assert_eq!(verify(&sweep, std::slice::from_ref(out)), Ok(()));
        // Its fee is exactly the fee rate times its size.
        assert_eq!(out.value.0 - sweep.outputs[0].value.0, FEERATE.fee_for(sweep.total_size()).0);
    }

    #[test]
    fn revocation_needs_both_keys_and_works_once_the_secret_is_revealed() {
        // Alice is at commitment 5; she revealed the secrets of 0..=3 so far, Bob stored them.
        let mut store = SecretStore::new();
        for n in 0..4 {
            store.insert_commitment(n, *alice().per_commitment_secret(n).unwrap()).unwrap();
        }
        let revoked = alice_commitment(4);
        let (index, script) = revoked.to_local().unwrap();
        let out = revoked.tx.outputs[index as usize].clone();
        let code = script.witness_script();
        let outpoint = revoked.outpoint(index);
        let bob_rev = bob().revocation;

        // Before the secret of 4 is revealed, Bob does not have it.
        assert_eq!(store.get_commitment(4), Err(ShachainError::UnknownIndex((1 << 48) - 1 - 4)));
        // Bob alone: only the revocation signature.
        let (tx, spent) = spend(outpoint, &out, 0, 0, |tx, spent| {
            script.revocation_witness(sig(tx, spent, &bob_rev, &code), Vec::new())
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::MultisigSignatureCount));
        // Bob guessing the per-commitment key.
        let (tx, spent) = spend(outpoint, &out, 0, 0, |tx, spent| {
            script
                .revocation_witness(sig(tx, spent, &bob_rev, &code), sig(tx, spent, &sk(77), &code))
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
        // Bob using the secret of a state that was revealed (3) instead.
        let old = per_commitment_key_of(&store.get_commitment(3).unwrap());
        let (tx, spent) = spend(outpoint, &out, 0, 0, |tx, spent| {
            script.revocation_witness(sig(tx, spent, &bob_rev, &code), sig(tx, spent, &old, &code))
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
        // Alice alone: she has the per-commitment key but not Bob's revocation key.
        let alice_pc = per_commitment_key_of(&alice().per_commitment_secret(4).unwrap());
        let (tx, spent) = spend(outpoint, &out, 0, 0, |tx, spent| {
            script.revocation_witness(Vec::new(), sig(tx, spent, &alice_pc, &code))
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::MultisigSignatureCount));
        let (tx, spent) = spend(outpoint, &out, 0, 0, |tx, spent| {
            script.revocation_witness(
                sig(tx, spent, &alice().revocation, &code),
                sig(tx, spent, &alice_pc, &code),
            )
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));

        // Alice moves to commitment 5 and reveals the secret of 4; Bob checks it against the
        // point he was given and stores it.
        let revealed = *alice().per_commitment_secret(4).unwrap();
        rnet_lightning::channel::keys::check_per_commitment_secret(
            &revealed,
            &revoked.keys.per_commitment_point,
        )
        .unwrap();
        store.insert_commitment(4, revealed).unwrap();
        let secret = store.get_commitment(4).unwrap();
        let pc = per_commitment_key_of(&secret);
        let (tx, spent) = spend(outpoint, &out, 0, 0, |tx, spent| {
            script.revocation_witness(sig(tx, spent, &bob_rev, &code), sig(tx, spent, &pc, &code))
        });
        assert_eq!(verify(&tx, &spent), Ok(()), "no delay on the revocation path");
        // Swapped slots fail.
        let (tx, spent) = spend(outpoint, &out, 0, 0, |tx, spent| {
            script.revocation_witness(sig(tx, spent, &pc, &code), sig(tx, spent, &bob_rev, &code))
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
    }

    fn per_commitment_key_of(secret: &[u8; 32]) -> SigningKey {
        rnet_lightning::channel::keys::per_commitment_key(secret)
    }

    // ----- to_remote -----------------------------------------------------------------------------

    #[test]
    fn to_remote_is_spendable_at_once_by_the_payment_key() {
        let c = alice_commitment(5);
        let index = c.to_remote().unwrap();
        let out = c.tx.outputs[index as usize].clone();
        let sweep = build_sweep(
            &[to_remote_input(&c, &bob().payment).unwrap()],
            &elsewhere(Amount::ZERO).script_pubkey,
            FEERATE,
            &GENESIS,
        )
        .unwrap();
        assert_eq!(verify(&sweep, std::slice::from_ref(&out)), Ok(()));
        // Alice's payment key cannot.
        assert_eq!(
            build_sweep(
                &[to_remote_input(&c, &alice().payment).unwrap()],
                &elsewhere(Amount::ZERO).script_pubkey,
                FEERATE,
                &GENESIS
            ),
            Err(ChannelError::KeyMismatch)
        );
        let key = PlainKey::new(bob().payment.public_key());
        let (tx, spent) = spend(c.outpoint(index), &out, SEQUENCE_FINAL, 0, |tx, spent| {
            key.witness(sig(tx, spent, &alice().payment, &key.script_code()))
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
    }

    // ----- HTLC outputs --------------------------------------------------------------------------

    /// The index and script of Alice's commitment's HTLC output in `direction` (untrimmed).
    fn htlc_output(c: &CommitmentTransaction, direction: HtlcDirection) -> (u32, HtlcScript) {
        c.htlc_outputs()
            .find(|(_, h, _)| h.direction == direction)
            .map(|(i, _, s)| (i, *s))
            .unwrap()
    }

    #[test]
    fn offered_htlc_preimage_claim_needs_the_right_preimage() {
        let c = alice_commitment(5);
        let (index, script) = htlc_output(&c, HtlcDirection::Offered);
        let HtlcScript::Offered(offered) = script else { panic!("offered") };
        let out = c.tx.outputs[index as usize].clone();
        let code = offered.witness_script();
        let bob_htlc = bob().htlc;
        // Bob claims with the preimage, at once.
        let (tx, spent) = spend(c.outpoint(index), &out, SEQUENCE_FINAL, 0, |tx, spent| {
            offered.preimage_witness(sig(tx, spent, &bob_htlc, &code), &PREIMAGE_OFFERED)
        });
        assert_eq!(verify(&tx, &spent), Ok(()));
        // A wrong preimage fails.
        let (tx, spent) = spend(c.outpoint(index), &out, SEQUENCE_FINAL, 0, |tx, spent| {
            offered.preimage_witness(sig(tx, spent, &bob_htlc, &code), &[0x66; 32])
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::EqualVerify));
        // A preimage of the wrong size fails at SIZE.
        let (tx, spent) = spend(c.outpoint(index), &out, SEQUENCE_FINAL, 0, |tx, spent| {
            let mut w =
                offered.preimage_witness(sig(tx, spent, &bob_htlc, &code), &PREIMAGE_OFFERED);
            w.0[1].push(0);
            w
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::EqualVerify));
        // Alice cannot claim with the preimage (the branch wants Bob's key).
        let (tx, spent) = spend(c.outpoint(index), &out, SEQUENCE_FINAL, 0, |tx, spent| {
            offered.preimage_witness(sig(tx, spent, &alice().htlc, &code), &PREIMAGE_OFFERED)
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
        // The sweep helper refuses a wrong preimage and builds a valid claim with the right one.
        let dest = elsewhere(Amount::ZERO).script_pubkey;
        let wrong = htlc_preimage_input(&c, index, &bob_htlc, [0x66; 32]).unwrap();
        assert_eq!(
            build_sweep(&[wrong], &dest, FEERATE, &GENESIS),
            Err(ChannelError::WrongPreimage)
        );
        let right = htlc_preimage_input(&c, index, &bob_htlc, PREIMAGE_OFFERED).unwrap();
        let sweep = build_sweep(&[right], &dest, FEERATE, &GENESIS).unwrap();
        assert_eq!(verify(&sweep, &[out]), Ok(()));
        // Only offered outputs have this path.
        let (received, _) = htlc_output(&c, HtlcDirection::Received);
        assert_eq!(
            htlc_preimage_input(&c, received, &bob_htlc, PREIMAGE_RECEIVED).map(|_| ()),
            Err(ChannelError::WrongOutput(received))
        );
    }

    #[test]
    fn received_htlc_refund_waits_for_cltv_expiry() {
        let c = alice_commitment(5);
        let (index, script) = htlc_output(&c, HtlcDirection::Received);
        let HtlcScript::Received(received) = script else { panic!("received") };
        let out = c.tx.outputs[index as usize].clone();
        let code = received.witness_script();
        for (lock_time, sequence, expected) in [
            (CLTV_RECEIVED - 1, 0, Err(ScriptError::UnsatisfiedLockTime)),
            (CLTV_RECEIVED, SEQUENCE_FINAL, Err(ScriptError::UnsatisfiedLockTime)),
            (1_700_000_000, 0, Err(ScriptError::UnsatisfiedLockTime)), // a time, not a height
            (CLTV_RECEIVED, 0, Ok(())),
            (CLTV_RECEIVED + 10, 0xFFFF_FFFD, Ok(())),
        ] {
            let (tx, spent) = spend(c.outpoint(index), &out, sequence, lock_time, |tx, spent| {
                received.timeout_witness(sig(tx, spent, &bob().htlc, &code))
            });
            assert_eq!(
                verify(&tx, &spent),
                expected,
                "lock_time {lock_time} sequence {sequence:#x}"
            );
        }
        // Alice's HTLC key cannot take the refund.
        let (tx, spent) = spend(c.outpoint(index), &out, 0, CLTV_RECEIVED, |tx, spent| {
            received.timeout_witness(sig(tx, spent, &alice().htlc, &code))
        });
        assert_eq!(verify(&tx, &spent), Err(ScriptError::SigCheckFailed));
        // The sweep helper sets the lock time.
        let sweep = build_sweep(
            &[htlc_timeout_input(&c, index, &bob().htlc).unwrap()],
            &elsewhere(Amount::ZERO).script_pubkey,
            FEERATE,
            &GENESIS,
        )
        .unwrap();
        assert_eq!(sweep.lock_time, CLTV_RECEIVED);
        assert_eq!(verify(&sweep, &[out]), Ok(()));
    }

    #[test]
    fn htlc_timeout_transaction_needs_both_signatures_and_the_expiry() {
        let c = alice_commitment(5);
        let htlc_txs = htlc_transactions(&c).unwrap();
        assert_eq!(htlc_txs.len(), 2);
        let t = htlc_txs.iter().find(|t| t.kind == HtlcTxKind::Timeout).unwrap();
        assert_eq!(t.tx.lock_time, CLTV_OFFERED);
        assert_eq!(t.tx.inputs[0].sequence, 0);
        // Value: 2 000 000 minus the HTLC-timeout fee (454 bytes at 10 000/kB).
        assert_eq!(t.tx.outputs[0].value, Amount(2_000_000 - 4_540));
        // Bob signs it with the commitment; Alice checks and completes it.
        let bob_sig = t.sign(&bob().htlc, &GENESIS).unwrap();
        t.verify_counterparty_signature(&bob_sig, &GENESIS).unwrap();
        let alice_sig = t.sign(&alice().htlc, &GENESIS).unwrap();
        let tx = t.finalize(alice_sig.clone(), bob_sig.clone(), None).unwrap();
        assert_eq!(verify(&tx, &t.spent_outputs()), Ok(()));
        assert!(tx.total_size() <= HTLC_TIMEOUT_TX_SIZE);
        // Alice alone cannot time it out.
        let alone = t.finalize(alice_sig, Vec::new(), None).unwrap();
        assert_eq!(verify(&alone, &t.spent_outputs()), Err(ScriptError::MultisigSignatureCount));
        // Even with both signatures, not before the expiry: the script checks the lock time.
        let mut early = t.tx.clone();
        early.lock_time = CLTV_OFFERED - 1;
        let spent = t.spent_outputs();
        let code = t.htlc_script.witness_script();
        let HtlcScript::Offered(offered) = t.htlc_script else { panic!("offered") };
        early.inputs[0].witness = offered.timeout_witness(
            sig(&early, &spent, &alice().htlc, &code),
            sig(&early, &spent, &bob().htlc, &code),
        );
        assert_eq!(verify(&early, &spent), Err(ScriptError::UnsatisfiedLockTime));
        // And Bob's signature covers the lock time: moving it invalidates the signature.
        let mut moved = tx.clone();
        moved.lock_time = CLTV_OFFERED + 1;
        assert_eq!(verify(&moved, &spent), Err(ScriptError::SigCheckFailed));
    }

    #[test]
    fn htlc_success_transaction_needs_the_preimage() {
        let c = alice_commitment(5);
        let htlc_txs = htlc_transactions(&c).unwrap();
        let s = htlc_txs.iter().find(|t| t.kind == HtlcTxKind::Success).unwrap();
        assert_eq!(s.tx.lock_time, 0);
        assert_eq!(s.tx.outputs[0].value, Amount(1_500_000 - 4_880));
        let bob_sig = s.sign(&bob().htlc, &GENESIS).unwrap();
        s.verify_counterparty_signature(&bob_sig, &GENESIS).unwrap();
        let alice_sig = s.sign(&alice().htlc, &GENESIS).unwrap();
        let spent = s.spent_outputs();
        let tx = s.finalize(alice_sig.clone(), bob_sig.clone(), Some(&PREIMAGE_RECEIVED)).unwrap();
        assert_eq!(verify(&tx, &spent), Ok(()));
        assert!(tx.total_size() <= HTLC_SUCCESS_TX_SIZE);
        assert_eq!(
            s.finalize(alice_sig.clone(), bob_sig.clone(), Some(&[0x66; 32])),
            Err(ChannelError::WrongPreimage)
        );
        assert_eq!(
            s.finalize(alice_sig.clone(), bob_sig.clone(), None),
            Err(ChannelError::WrongPreimage)
        );
        // A wrong preimage put in the witness directly fails in the script.
        let HtlcScript::Received(received) = s.htlc_script else { panic!("received") };
        let mut wrong = tx.clone();
        wrong.inputs[0].witness = received.success_witness(alice_sig.clone(), bob_sig, &[0x66; 32]);
        assert_eq!(verify(&wrong, &spent), Err(ScriptError::EqualVerify));
        // Without Bob's signature, Alice's preimage alone is not enough.
        let mut alone = tx.clone();
        alone.inputs[0].witness =
            received.success_witness(alice_sig, Vec::new(), &PREIMAGE_RECEIVED);
        assert_eq!(verify(&alone, &spent), Err(ScriptError::MultisigSignatureCount));
    }

    #[test]
    fn second_stage_outputs_are_delayed_and_revocable() {
        let c = alice_commitment(5);
        let htlc_txs = htlc_transactions(&c).unwrap();
        let dest = elsewhere(Amount::ZERO).script_pubkey;
        for t in &htlc_txs {
            let out = t.tx.outputs[0].clone();
            let script = t.output_script;
            let code = script.witness_script();
            // Alice waits to_self_delay.
            let (tx, spent) =
                spend(t.outpoint(), &out, u32::from(ALICE_DELAY) - 1, 0, |tx, spent| {
                    script.delayed_witness(sig(tx, spent, &alice().delayed_payment, &code))
                });
            assert_eq!(verify(&tx, &spent), Err(ScriptError::UnsatisfiedSequence));
            let sweep = build_sweep(
                &[htlc_tx_output_input(t, &alice().delayed_payment).unwrap()],
                &dest,
                FEERATE,
                &GENESIS,
            )
            .unwrap();
            assert_eq!(verify(&sweep, std::slice::from_ref(&out)), Ok(()));
            // Once commitment 5 is revoked, Bob takes it with the secret.
            let secret = alice().per_commitment_secret(5).unwrap();
            let input = htlc_tx_penalty_input(t, &secret, &bob().revocation).unwrap();
            let penalty = build_sweep(&[input], &dest, FEERATE, &GENESIS).unwrap();
            assert_eq!(verify(&penalty, std::slice::from_ref(&out)), Ok(()));
            // Not with another state's secret.
            let other = alice().per_commitment_secret(4).unwrap();
            assert_eq!(
                htlc_tx_penalty_input(t, &other, &bob().revocation).map(|_| ()),
                Err(ChannelError::SecretMismatch)
            );
        }
    }

    #[test]
    fn htlc_revocation_paths_need_both_keys() {
        let c = alice_commitment(4);
        let secret = alice().per_commitment_secret(4).unwrap();
        let pc = per_commitment_key_of(&secret);
        for (index, _, script) in c.htlc_outputs() {
            let out = c.tx.outputs[index as usize].clone();
            let code = script.witness_script();
            let (tx, spent) = spend(c.outpoint(index), &out, 0, 0, |tx, spent| {
                script.revocation_witness(sig(tx, spent, &bob().revocation, &code), Vec::new())
            });
            assert_eq!(verify(&tx, &spent), Err(ScriptError::MultisigSignatureCount));
            let (tx, spent) = spend(c.outpoint(index), &out, 0, 0, |tx, spent| {
                script.revocation_witness(Vec::new(), sig(tx, spent, &pc, &code))
            });
            assert_eq!(verify(&tx, &spent), Err(ScriptError::MultisigSignatureCount));
            let (tx, spent) = spend(c.outpoint(index), &out, 0, 0, |tx, spent| {
                script.revocation_witness(
                    sig(tx, spent, &bob().revocation, &code),
                    sig(tx, spent, &pc, &code),
                )
            });
            assert_eq!(verify(&tx, &spent), Ok(()));
        }
    }

    // ----- penalty -------------------------------------------------------------------------------

    #[test]
    fn penalty_transaction_sweeps_every_output_of_a_revoked_commitment() {
        // Bob's node rebuilds Alice's revoked commitment 4 from its stored state and her point.
        let mut store = SecretStore::new();
        for n in 0..=4 {
            store.insert_commitment(n, *alice().per_commitment_secret(n).unwrap()).unwrap();
        }
        let alice_point = alice().per_commitment_point(4).unwrap();
        let revoked =
            build_commitment(&bob_params(), Side::Remote, &spec(4).mirrored(), &alice_point)
                .unwrap();
        assert_eq!(revoked.tx, alice_commitment(4).tx);
        let secret = store.get_commitment(4).unwrap();
        let inputs =
            penalty_inputs(&revoked, &secret, &bob().revocation, Some(&bob().payment)).unwrap();
        assert_eq!(inputs.len(), revoked.tx.outputs.len());
        let dest = PlainKey::new(sk(13).public_key()).script_pubkey();
        let penalty = build_sweep(&inputs, &dest, FEERATE, &GENESIS).unwrap();
        let spent: Vec<TxOut> = inputs.iter().map(|i| i.spent.clone()).collect();
        assert_eq!(verify(&penalty, &spent), Ok(()));
        // Every output of the revoked commitment is spent.
        let mut spent_points: Vec<OutPoint> =
            penalty.inputs.iter().map(|i| i.previous_output).collect();
        spent_points.sort();
        let mut all: Vec<OutPoint> =
            (0..revoked.tx.outputs.len() as u32).map(|i| revoked.outpoint(i)).collect();
        all.sort();
        assert_eq!(spent_points, all);
        // No lock: it can confirm right after the commitment.
        assert_eq!(penalty.lock_time, 0);
        assert!(penalty.inputs.iter().all(|i| i.sequence == 0xFFFF_FFFD));
        // Fee = rate × exact size, paid from the single output.
        assert_eq!(
            sum(&spent) - penalty.outputs[0].value.0,
            FEERATE.fee_for(penalty.total_size()).0
        );
        assert!(penalty.total_size() <= MAX_STANDARD_TX_SIZE);
        // The size estimate is exact.
        assert_eq!(sweep_size(&inputs, &dest).unwrap(), penalty.total_size());

        // Without the payment key, every output but to_remote.
        let fewer = penalty_inputs(&revoked, &secret, &bob().revocation, None).unwrap();
        assert_eq!(fewer.len(), revoked.tx.outputs.len() - 1);
        // The wrong secret, a future secret or the wrong revocation key are refused.
        let wrong = *alice().per_commitment_secret(3).unwrap();
        assert_eq!(
            penalty_inputs(&revoked, &wrong, &bob().revocation, None).map(|_| ()),
            Err(ChannelError::SecretMismatch)
        );
        assert_eq!(
            penalty_inputs(&revoked, &secret, &alice().revocation, None).map(|_| ()),
            Err(ChannelError::KeyMismatch)
        );
        assert!(store.get_commitment(5).is_err(), "the current state's secret is not derivable");
        // A penalty signed for another chain is invalid here.
        let elsewhere_penalty = build_sweep(&inputs, &dest, FEERATE, &OTHER_GENESIS).unwrap();
        assert_eq!(verify(&elsewhere_penalty, &spent), Err(ScriptError::SigCheckFailed));
    }

    #[test]
    fn sweeps_refuse_dust_and_non_standard_destinations() {
        let c = alice_commitment(5);
        let input = to_local_input(&c, &alice().delayed_payment).unwrap();
        let dest = elsewhere(Amount::ZERO).script_pubkey;
        assert_eq!(build_sweep(&[], &dest, FEERATE, &GENESIS), Err(ChannelError::NoInputs));
        assert_eq!(
            build_sweep(std::slice::from_ref(&input), &[0x6a, 0x01, 0x00], FEERATE, &GENESIS),
            Err(ChannelError::NonStandardDestination)
        );
        // A fee rate that eats the output.
        assert!(matches!(
            build_sweep(&[input], &dest, FeeRate(20_000_000_000), &GENESIS),
            Err(ChannelError::BelowDust { .. })
        ));
    }

    // ----- cooperative close ---------------------------------------------------------------------

    #[test]
    fn cooperative_close_needs_both_signatures() {
        let p = alice_params();
        let local_script = PlainKey::new(sk(30).public_key()).script_pubkey();
        let remote_script = PlainKey::new(sk(31).public_key()).script_pubkey();
        let fee = build_closing_fee(&local_script, &remote_script);
        let close =
            build_closing(&p, 6_000_000_500, 3_999_999_500, &local_script, &remote_script, fee)
                .unwrap();
        // Alice (funder) pays the fee; sub-resonance remainders are fee too.
        let values: Vec<u64> = close.tx.outputs.iter().map(|o| o.value.0).collect();
        assert_eq!(values, vec![3_999_999, 6_000_000 - fee.0]);
        assert_eq!(close.fee, Amount(fee.0 + 1));
        assert_eq!(sum(&close.tx.outputs) + close.fee.0, FUNDING.0);
        let a = alice().funding;
        let b = bob().funding;
        let sig_a = close.sign(&a, &GENESIS).unwrap();
        let sig_b = close.sign(&b, &GENESIS).unwrap();
        close.verify_signature(&b.public_key(), &sig_b, &GENESIS).unwrap();
        let tx =
            close.finalize((&a.public_key(), sig_a.clone()), (&b.public_key(), sig_b)).unwrap();
        assert_eq!(verify(&tx, &close.spent_outputs()), Ok(()));
        // Its size is what the fee was computed for.
        assert_eq!(FEERATE.fee_for(tx.total_size()), fee);
        // One signature only.
        let mut one = tx.clone();
        let slots = if close.funding.keys()[0] == a.public_key() {
            (sig_a, Vec::new())
        } else {
            (Vec::new(), sig_a)
        };
        one.inputs[0].witness = close.funding.witness_slots(slots.0, slots.1);
        assert_eq!(verify(&one, &close.spent_outputs()), Err(ScriptError::MultisigSignatureCount));
        // Alice's signature twice (in both slots).
        let mut twice = tx.clone();
        let s = close.sign(&a, &GENESIS).unwrap();
        twice.inputs[0].witness = close.funding.witness_slots(s.clone(), s);
        assert_eq!(verify(&twice, &close.spent_outputs()), Err(ScriptError::SigCheckFailed));
    }

    fn build_closing_fee(local: &[u8], remote: &[u8]) -> Amount {
        closing_fee(FEERATE, local, remote)
    }

    #[test]
    fn cooperative_close_omits_dust_and_checks_amounts() {
        let p = alice_params();
        let local_script = PlainKey::new(sk(30).public_key()).script_pubkey();
        let remote_script = PlainKey::new(sk(31).public_key()).script_pubkey();
        // Bob's 599.999 resonance are below the larger dust limit (600): left out, fee.
        let close = build_closing(
            &p,
            FUNDING.0 * 1000 - 599_999,
            599_999,
            &local_script,
            &remote_script,
            Amount(3_000),
        )
        .unwrap();
        assert_eq!(close.tx.outputs.len(), 1);
        assert_eq!(close.tx.outputs[0].script_pubkey, local_script);
        assert_eq!(close.fee, Amount(3_000 + 599 + 1));
        let tx = close
            .finalize(
                (&alice().funding.public_key(), close.sign(&alice().funding, &GENESIS).unwrap()),
                (&bob().funding.public_key(), close.sign(&bob().funding, &GENESIS).unwrap()),
            )
            .unwrap();
        assert_eq!(verify(&tx, &close.spent_outputs()), Ok(()));
        // Balances must add up; the funder must afford the fee; destinations must be standard.
        assert!(matches!(
            build_closing(&p, 1, 2, &local_script, &remote_script, Amount(1)),
            Err(ChannelError::ValueNotConserved { .. })
        ));
        assert!(matches!(
            build_closing(
                &p,
                1_000,
                FUNDING.0 * 1000 - 1_000,
                &local_script,
                &remote_script,
                Amount(2)
            ),
            Err(ChannelError::FunderCannotAffordFee { .. })
        ));
        assert_eq!(
            build_closing(&p, FUNDING.0 * 1000, 0, &[0x6a], &remote_script, Amount(1)).map(|_| ()),
            Err(ChannelError::NonStandardDestination)
        );
    }

    // ----- sizes and trimming --------------------------------------------------------------------

    #[test]
    fn trimming_uses_the_second_stage_fee() {
        let dust = Amount(500);
        let at = |amount_msat, direction| HtlcSpec {
            id: 0,
            direction,
            amount_msat,
            payment_hash: [0; 32],
            cltv_expiry: 1,
        };
        // Offered: 500 + 4540 = 5040 resonance is the smallest untrimmed value.
        assert!(is_trimmed(&at(5_039_999, HtlcDirection::Offered), dust, FEERATE));
        assert!(!is_trimmed(&at(5_040_000, HtlcDirection::Offered), dust, FEERATE));
        // Received: 500 + 4880.
        assert!(is_trimmed(&at(5_379_999, HtlcDirection::Received), dust, FEERATE));
        assert!(!is_trimmed(&at(5_380_000, HtlcDirection::Received), dust, FEERATE));
        // Each untrimmed HTLC adds one output to the fee's size.
        assert_eq!(commitment_size(3) - commitment_size(2), 43);
    }

    #[test]
    fn htlc_transaction_sizes_reach_their_bound_at_the_largest_expiry() {
        let mut s = spec(6);
        for h in &mut s.htlcs {
            h.cltv_expiry = 499_999_999;
        }
        let point = alice().per_commitment_point(6).unwrap();
        let c = build_commitment(&alice_params(), Side::Local, &s, &point).unwrap();
        for t in htlc_transactions(&c).unwrap() {
            let a = t.sign(&alice().htlc, &GENESIS).unwrap();
            let b = t.sign(&bob().htlc, &GENESIS).unwrap();
            let (tx, bound) = match t.kind {
                HtlcTxKind::Timeout => (t.finalize(a, b, None).unwrap(), HTLC_TIMEOUT_TX_SIZE),
                HtlcTxKind::Success => {
                    (t.finalize(a, b, Some(&PREIMAGE_RECEIVED)).unwrap(), HTLC_SUCCESS_TX_SIZE)
                }
            };
            assert_eq!(tx.total_size(), bound);
            assert_eq!(verify(&tx, &t.spent_outputs()), Ok(()));
            assert!(
                verify_input_signature(
                    &GENESIS,
                    &t.tx,
                    &t.spent_outputs(),
                    0,
                    &t.htlc_script.witness_script(),
                    &bob().htlc.public_key(),
                    &t.sign(&bob().htlc, &GENESIS).unwrap()
                )
                .is_ok()
            );
        }
    }

    // ----- every msat is accounted for ----------------------------------------------------------

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn commitments_conserve_value_for_any_state(
            htlcs in proptest::collection::vec(
                (1u64..=1_000_000_000, proptest::bool::ANY, 1u32..500_000_000, proptest::prelude::any::<u8>()),
                0..6,
            ),
            local_share in 0u64..=1000,
            feerate in 0u64..=60_000,
            number in 0u64..(1 << 48),
        ) {
            let total_msat = FUNDING.0 * 1000;
            let mut spec = CommitmentSpec {
                commitment_number: number,
                to_local_msat: 0,
                to_remote_msat: 0,
                feerate: FeeRate(feerate),
                htlcs: Vec::new(),
            };
            let mut used = 0;
            for (id, (amount_msat, offered, cltv_expiry, h)) in htlcs.into_iter().enumerate() {
                let direction =
                    if offered { HtlcDirection::Offered } else { HtlcDirection::Received };
                spec.htlcs.push(HtlcSpec {
                    id: id as u64,
                    direction,
                    amount_msat,
                    payment_hash: [h; 32],
                    cltv_expiry,
                });
                used += amount_msat;
            }
            let rest = total_msat - used;
            spec.to_local_msat = rest / 1000 * local_share;
            spec.to_remote_msat = rest - spec.to_local_msat;
            let factor = alice_params().obscuring_factor();
            for side in [Side::Local, Side::Remote] {
                let point = match side {
                    Side::Local => alice().per_commitment_point(3).unwrap(),
                    Side::Remote => bob().per_commitment_point(3).unwrap(),
                };
                let c = build_commitment(&alice_params(), side, &spec, &point).unwrap();
                let f = c.fee;
                proptest::prop_assert_eq!(sum(&c.tx.outputs) + f.total.0, FUNDING.0);
                proptest::prop_assert_eq!(
                    f.total.0 * 1000,
                    f.base_fee_paid_msat + f.trimmed_htlc_msat + f.dust_balance_msat + f.rounding_msat
                );
                let dust = alice_params().party(side).dust_limit;
                proptest::prop_assert!(c.tx.outputs.iter().all(|o| o.value >= dust));
                let keyed: Vec<_> =
                    c.tx.outputs.iter().map(|o| (o.value, o.script_pubkey.clone())).collect();
                let mut sorted = keyed.clone();
                sorted.sort();
                proptest::prop_assert_eq!(keyed, sorted);
                proptest::prop_assert_eq!(
                    number::decode(c.tx.lock_time, c.tx.inputs[0].sequence, factor),
                    Some(number)
                );
                proptest::prop_assert_eq!(
                    c.htlc_outputs().count() + c.trimmed.len(),
                    spec.htlcs.len()
                );
                for t in htlc_transactions(&c).unwrap() {
                    proptest::prop_assert!(t.tx.outputs[0].value >= dust);
                }
            }
        }
    }
}
