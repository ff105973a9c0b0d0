//! The watchtower end to end: Bob's node (the client) makes an appointment for each of Alice's
//! revoked commitments; the tower, fed blocks, finds the breach, decrypts the penalty and returns
//! it, and the penalty is run through `rnet_script::verify_transaction` under both
//! `VerifyFlags::STANDARD` and `CONSENSUS` against the revoked commitment's outputs. Also every
//! refusal: other blocks, altered blobs, blobs that do not spend the breach, quotas, expiry,
//! removal, and what the tower can and cannot learn.
//!
//! Alice (keys 1..=5, funder) and Bob (keys 11..=15) run a 0.1 RNT channel.

/// Named so that `cargo test -p rnet-lightning watchtower` selects these tests.
mod watchtower {
    use proptest::prelude::*;
    use rnet_crypto::SigningKey;
    use rnet_lightning::channel::fees::MAX_STANDARD_TX_SIZE;
    use rnet_lightning::channel::*;
    use rnet_lightning::watchtower::*;
    use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};
    use rnet_script::templates::Htlc;
    use rnet_script::{PlainKey, ScriptError, VerifyFlags, verify_transaction};

    const GENESIS: BlockHash = BlockHash([0x47; 32]);
    const FUNDING: Amount = Amount(10_000_000);
    const FEERATE: FeeRate = FeeRate(10_000);
    const PENALTY_FEERATE: FeeRate = FeeRate(20_000);
    const HTLC_MSAT: u64 = 15_000_000;

    fn sk(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
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

    fn config(keys: &ChannelKeys, delay: u16) -> PartyConfig {
        PartyConfig {
            keys: keys.public_keys(),
            dust_limit: Amount(500),
            to_self_delay: delay,
            channel_reserve: Amount(100_000),
        }
    }

    /// Bob's view of the channel (Alice funded it).
    fn bob_params() -> ChannelParameters {
        ChannelParameters::new(
            OutPoint::new(Txid::from_bytes([0xf0; 32]), 1),
            FUNDING,
            config(&bob(), 100),
            config(&alice(), 144),
            Side::Remote,
        )
        .unwrap()
    }

    /// Alice's state `n` seen from Alice, with `htlcs` untrimmed HTLCs (alternately offered and
    /// received) and `extra_msat` moved from her balance to Bob's.
    fn alice_spec(n: u64, htlcs: u64, extra_msat: u64) -> CommitmentSpec {
        let to_local = 4_000_000_000 - extra_msat;
        let total = FUNDING.0 * 1000;
        let htlc_total: u64 = (0..htlcs).map(|i| HTLC_MSAT + i * 1000).sum();
        CommitmentSpec {
            commitment_number: n,
            to_local_msat: to_local,
            to_remote_msat: total - to_local - htlc_total,
            feerate: FEERATE,
            htlcs: (0..htlcs)
                .map(|i| HtlcSpec {
                    id: i / 2,
                    direction: if i % 2 == 0 {
                        HtlcDirection::Offered
                    } else {
                        HtlcDirection::Received
                    },
                    amount_msat: HTLC_MSAT + i * 1000,
                    payment_hash: Htlc::payment_hash_of(&[i as u8; 32]),
                    cltv_expiry: 500_000 + i as u32,
                })
                .collect(),
        }
    }

    /// Alice's commitment `n` as Bob's node rebuilds it (from the stored state and her point).
    fn alice_commitment(n: u64, htlcs: u64, extra_msat: u64) -> CommitmentTransaction {
        let point = alice().per_commitment_point(n).unwrap();
        build_commitment(
            &bob_params(),
            Side::Remote,
            &alice_spec(n, htlcs, extra_msat).mirrored(),
            &point,
        )
        .unwrap()
    }

    /// The commitment as Alice broadcasts it (both funding signatures).
    fn broadcast(c: &CommitmentTransaction) -> Transaction {
        let a = c.sign(&alice().funding, &GENESIS).unwrap();
        let b = c.sign(&bob().funding, &GENESIS).unwrap();
        c.finalize(a, b).unwrap()
    }

    fn secret(n: u64) -> [u8; 32] {
        *alice().per_commitment_secret(n).unwrap()
    }

    /// Bob's recovery-policy address.
    fn sweep_script() -> Vec<u8> {
        PlainKey::new(sk(99).public_key()).script_pubkey()
    }

    fn client() -> TowerClient {
        TowerClient::new(GENESIS, sweep_script(), PENALTY_FEERATE).unwrap()
    }

    const SESSION: SessionId = SessionId([0x5e; 32]);
    const OTHER_SESSION: SessionId = SessionId([0x5f; 32]);

    fn tower() -> Tower<MemoryStore> {
        let mut t = Tower::new(MemoryStore::new(), GENESIS, TowerConfig::default());
        t.open_session(SESSION).unwrap();
        t
    }

    /// Somebody else's transaction, to fill blocks.
    fn unrelated(tag: u8) -> Transaction {
        Transaction {
            version: 2,
            inputs: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_bytes([tag; 32]), 0),
                script_sig: Vec::new(),
                sequence: 0xFFFF_FFFF,
                witness: Witness(vec![vec![tag; 64]]),
            }],
            outputs: vec![PlainKey::new(sk(tag).public_key()).output(Amount(10_000))],
            lock_time: 0,
        }
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

    /// The outputs of `breach` that `tx` spends, in input order.
    fn spent_by(tx: &Transaction, breach: &Transaction) -> Vec<TxOut> {
        tx.inputs
            .iter()
            .map(|i| {
                assert_eq!(i.previous_output.txid, breach.txid());
                breach.outputs[i.previous_output.vout as usize].clone()
            })
            .collect()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn tower_returns_a_valid_penalty_paying_the_client() {
        let revoked = alice_commitment(3, 2, 0);
        let mut client = client();
        let appointment =
            client.build_appointment(&revoked, &secret(3), &bob().revocation).unwrap();
        assert_eq!(appointment.hint, hint_of(&revoked.txid()));
        let mut tower = tower();
        let expires = tower.add_appointment(&SESSION, &appointment, 1000).unwrap();
        assert_eq!(expires, 1000 + TowerConfig::default().appointment_lifetime);
        client.accepted(SESSION, &appointment.hint, expires).unwrap();

        let breach = broadcast(&revoked);
        let scan = tower.scan_block(1001, &[unrelated(1), breach.clone(), unrelated(2)]).unwrap();
        assert!(scan.rejected.is_empty());
        assert_eq!(scan.justice.len(), 1);
        let justice = &scan.justice[0];
        assert_eq!(justice.session, SESSION);
        assert_eq!(justice.breach, breach.txid());
        assert_eq!(justice.transactions.len(), 1);
        let penalty = &justice.transactions[0];

        let spent = spent_by(penalty, &breach);
        assert_eq!(verify(penalty, &spent), Ok(()));
        // It sweeps to_local and both HTLC outputs, not Bob's own to_remote.
        let mut swept: Vec<u32> = penalty.inputs.iter().map(|i| i.previous_output.vout).collect();
        swept.sort();
        let mut revocable: Vec<u32> = revoked
            .outputs
            .iter()
            .filter(|o| !matches!(o.kind, CommitmentOutputKind::ToRemote(_)))
            .map(|o| o.index)
            .collect();
        revocable.sort();
        assert_eq!(revocable.len(), 3);
        assert_eq!(swept, revocable);
        // One output, to the client's address, worth the swept value minus the fee at its rate.
        assert_eq!(penalty.outputs.len(), 1);
        assert_eq!(penalty.outputs[0].script_pubkey, sweep_script());
        let total: u64 = spent.iter().map(|o| o.value.0).sum();
        assert_eq!(
            total - penalty.outputs[0].value.0,
            PENALTY_FEERATE.fee_for(penalty.total_size()).0
        );
        // The same as the client's own penalty.
        assert_eq!(
            justice.transactions,
            justice_transactions(
                &revoked,
                &secret(3),
                &bob().revocation,
                &sweep_script(),
                PENALTY_FEERATE,
                &GENESIS
            )
            .unwrap()
        );
        // The appointment is kept in case the block is reorganised away.
        assert_eq!(tower.appointment_count(&SESSION), Some(1));
        assert_eq!(tower.scan_block(1002, &[breach]).unwrap().justice.len(), 1);
    }

    #[test]
    fn blocks_without_the_revoked_commitment_return_nothing() {
        let revoked = alice_commitment(3, 2, 0);
        let mut client = client();
        let appointment =
            client.build_appointment(&revoked, &secret(3), &bob().revocation).unwrap();
        let mut tower = tower();
        tower.add_appointment(&SESSION, &appointment, 0).unwrap();
        // Other transactions, the current (not revoked) commitment, an earlier revoked one with
        // no appointment, an empty block.
        let current = broadcast(&alice_commitment(4, 2, 0));
        let older = broadcast(&alice_commitment(2, 2, 0));
        for block in [vec![unrelated(1), unrelated(2)], vec![current, older], vec![]] {
            assert_eq!(tower.scan_block(5, &block).unwrap(), BlockScan::default());
        }
        assert_eq!(tower.appointment_count(&SESSION), Some(1));
    }

    #[test]
    fn altering_any_byte_of_the_blob_is_refused() {
        let revoked = alice_commitment(3, 2, 0);
        let breach = broadcast(&revoked);
        let appointment =
            client().build_appointment(&revoked, &secret(3), &bob().revocation).unwrap();
        let bytes = appointment.blob.as_bytes().to_vec();
        let mut tower = tower();
        for index in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[index] ^= 0x01;
            let Ok(blob) = EncryptedBlob::from_bytes(&altered) else {
                assert_eq!(index, 0, "only the version byte is checked on receipt");
                continue;
            };
            let altered = Appointment { hint: appointment.hint, blob };
            tower.add_appointment(&SESSION, &altered, 0).unwrap();
            let scan = tower.scan_block(1, std::slice::from_ref(&breach)).unwrap();
            assert!(scan.justice.is_empty(), "byte {index}");
            assert_eq!(scan.rejected.len(), 1);
            assert_eq!(scan.rejected[0].error, WatchtowerError::Authentication);
            // A refused blob is deleted.
            assert_eq!(tower.appointment_count(&SESSION), Some(0));
            assert!(tower.store().is_empty());
        }
        // Truncated and extended blobs are refused on receipt.
        assert!(EncryptedBlob::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(EncryptedBlob::from_bytes(&longer).is_err());
    }

    #[test]
    fn a_blob_that_does_not_spend_the_breach_is_refused() {
        let revoked = alice_commitment(3, 2, 0);
        let breach = broadcast(&revoked);
        let txid = breach.txid();
        let mut tower = tower();

        // The valid penalty of another revoked state, sealed under this breach's key.
        let other = justice_transactions(
            &alice_commitment(2, 2, 0),
            &secret(2),
            &bob().revocation,
            &sweep_script(),
            PENALTY_FEERATE,
            &GENESIS,
        )
        .unwrap();
        let wrong = Appointment::new(&BlobPlaintext { transactions: other }, &txid).unwrap();
        tower.add_appointment(&SESSION, &wrong, 0).unwrap();
        let scan = tower.scan_block(1, std::slice::from_ref(&breach)).unwrap();
        assert!(scan.justice.is_empty());
        assert_eq!(scan.rejected[0].error, WatchtowerError::NotSpendingBreach { tx: 0, input: 0 });

        // A transaction that spends the breach but is not validly signed (its output was raised
        // after signing): the script check refuses it.
        let mut penalties = justice_transactions(
            &revoked,
            &secret(3),
            &bob().revocation,
            &sweep_script(),
            PENALTY_FEERATE,
            &GENESIS,
        )
        .unwrap();
        penalties[0].outputs[0].value.0 += 1;
        let forged = Appointment::new(&BlobPlaintext { transactions: penalties }, &txid).unwrap();
        tower.add_appointment(&SESSION, &forged, 0).unwrap();
        let scan = tower.scan_block(1, std::slice::from_ref(&breach)).unwrap();
        assert!(scan.justice.is_empty());
        assert!(matches!(
            scan.rejected[0].error,
            WatchtowerError::InvalidPenalty {
                tx: 0,
                error: rnet_script::TxScriptError { error: ScriptError::SigCheckFailed, .. }
            }
        ));

        // An output index past the breach's outputs.
        let mut past = unrelated(3);
        past.inputs[0].previous_output = OutPoint::new(txid, breach.outputs.len() as u32);
        let past = Appointment::new(&BlobPlaintext { transactions: vec![past] }, &txid).unwrap();
        tower.add_appointment(&SESSION, &past, 0).unwrap();
        let scan = tower.scan_block(1, std::slice::from_ref(&breach)).unwrap();
        assert_eq!(scan.rejected[0].error, WatchtowerError::NotSpendingBreach { tx: 0, input: 0 });
        assert!(tower.store().is_empty());
    }

    #[test]
    fn sessions_quotas_and_limits_are_enforced() {
        let config = TowerConfig {
            max_sessions: 2,
            max_appointments_per_session: 2,
            max_bytes_per_session: 3 * (1 + 2048 + MAC_LEN),
            max_blob_len: 1 + 2048 + MAC_LEN,
            appointment_lifetime: 100,
        };
        let mut tower = Tower::new(MemoryStore::new(), GENESIS, config);
        let mut client = client();
        let a: Vec<Appointment> = (1..=3)
            .map(|n| {
                client.build_appointment(&alice_commitment(n, 2, 0), &secret(n), &bob().revocation)
            })
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tower.add_appointment(&SESSION, &a[0], 0), Err(WatchtowerError::UnknownSession));
        tower.open_session(SESSION).unwrap();
        assert_eq!(tower.open_session(SESSION), Err(WatchtowerError::SessionExists));
        tower.open_session(OTHER_SESSION).unwrap();
        assert_eq!(
            tower.open_session(SessionId([1; 32])),
            Err(WatchtowerError::TooManySessions(2))
        );

        tower.add_appointment(&SESSION, &a[0], 0).unwrap();
        tower.add_appointment(&SESSION, &a[1], 0).unwrap();
        assert_eq!(
            tower.add_appointment(&SESSION, &a[2], 0),
            Err(WatchtowerError::QuotaExceeded(2))
        );
        // Sending one again renews it and uses no slot.
        assert_eq!(tower.add_appointment(&SESSION, &a[1], 50), Ok(150));
        assert_eq!(tower.appointment_count(&SESSION), Some(2));
        // Another session has its own quota, and may use the same hint without displacing it.
        tower.add_appointment(&OTHER_SESSION, &a[1], 0).unwrap();
        tower.add_appointment(&OTHER_SESSION, &a[2], 0).unwrap();
        assert_eq!(tower.store().len(), 4);

        // A blob above the tower's size limit.
        let big = client
            .build_appointment(&alice_commitment(10, 40, 0), &secret(10), &bob().revocation)
            .unwrap();
        assert!(big.blob.len() > config.max_blob_len);
        assert_eq!(
            tower.add_appointment(&OTHER_SESSION, &big, 0),
            Err(WatchtowerError::BlobTooLarge { len: big.blob.len(), max: config.max_blob_len })
        );

        // Byte quota: two 2048-byte blobs fit in a 3-blob budget, a third would not if the count
        // allowed it.
        let mut tight = Tower::new(
            MemoryStore::new(),
            GENESIS,
            TowerConfig { max_bytes_per_session: 2 * a[0].blob.len(), ..config },
        );
        tight.open_session(SESSION).unwrap();
        tight.add_appointment(&SESSION, &a[0], 0).unwrap();
        tight.add_appointment(&SESSION, &a[1], 0).unwrap();
        assert!(tight.remove_appointment(&SESSION, &a[1].hint).unwrap());
        tight.add_appointment(&SESSION, &a[2], 0).unwrap();
        let tight_config =
            TowerConfig { max_bytes_per_session: a[0].blob.len() + a[1].blob.len() - 1, ..config };
        let mut tighter = Tower::new(MemoryStore::new(), GENESIS, tight_config);
        tighter.open_session(SESSION).unwrap();
        tighter.add_appointment(&SESSION, &a[0], 0).unwrap();
        assert_eq!(
            tighter.add_appointment(&SESSION, &a[1], 0),
            Err(WatchtowerError::ByteQuotaExceeded(tight_config.max_bytes_per_session))
        );

        // Closing a session deletes its appointments.
        assert_eq!(tower.close_session(&SESSION), Ok(2));
        assert_eq!(tower.store().len(), 2);
        assert_eq!(tower.close_session(&SESSION), Err(WatchtowerError::UnknownSession));
    }

    #[test]
    fn closed_channels_are_removed_and_old_appointments_expire() {
        let config = TowerConfig { appointment_lifetime: 10, ..TowerConfig::default() };
        let mut tower = Tower::new(MemoryStore::new(), GENESIS, config);
        tower.open_session(SESSION).unwrap();
        let mut client = client();
        let r3 = alice_commitment(3, 2, 0);
        let r2 = alice_commitment(2, 1, 0);
        let a3 = client.build_appointment(&r3, &secret(3), &bob().revocation).unwrap();
        let a2 = client.build_appointment(&r2, &secret(2), &bob().revocation).unwrap();
        assert_eq!(client.to_send(&SESSION, 100, 0).len(), 2);
        let e3 = tower.add_appointment(&SESSION, &a3, 100).unwrap();
        client.accepted(SESSION, &a3.hint, e3).unwrap();
        let e2 = tower.add_appointment(&SESSION, &a2, 105).unwrap();
        client.accepted(SESSION, &a2.hint, e2).unwrap();
        assert!(client.to_send(&SESSION, 100, 0).is_empty());
        // Within 2 blocks of height 108, a3 (expiring at 110) is due for renewal.
        assert_eq!(client.to_send(&SESSION, 108, 2), vec![&a3]);
        assert_eq!(client.to_send(&OTHER_SESSION, 108, 2).len(), 2);

        // Still watched at 109, gone at 110.
        let breach3 = broadcast(&r3);
        let scan = tower.scan_block(109, std::slice::from_ref(&breach3)).unwrap();
        assert_eq!(scan.justice.len(), 1);
        assert_eq!(scan.expired, 0);
        assert_eq!(tower.expire(110), Ok(1));
        assert!(tower.scan_block(111, std::slice::from_ref(&breach3)).unwrap().justice.is_empty());
        assert_eq!(tower.appointment_count(&SESSION), Some(1));

        // The channel closes: the client forgets it and asks the tower to delete the rest.
        let hints = client.channel_closed(&bob_params().funding_outpoint());
        assert_eq!(hints.len(), 2);
        assert!(client.is_empty());
        let removed: Vec<bool> =
            hints.iter().map(|h| tower.remove_appointment(&SESSION, h).unwrap()).collect();
        assert_eq!(removed.iter().filter(|&&r| r).count(), 1);
        assert!(tower.store().is_empty());
        assert!(tower.scan_block(112, &[broadcast(&r2)]).unwrap().justice.is_empty());
        assert_eq!(client.accepted(SESSION, &a2.hint, 1), Err(WatchtowerError::UnknownAppointment));
    }

    #[test]
    fn the_client_encrypts_one_blob_per_revoked_commitment() {
        let revoked = alice_commitment(3, 2, 0);
        let mut client = client();
        let first = client.build_appointment(&revoked, &secret(3), &bob().revocation).unwrap();
        // A new fee rate applies to later states; this state's blob is not re-encrypted.
        client.set_feerate(FeeRate(50_000));
        assert_eq!(client.build_appointment(&revoked, &secret(3), &bob().revocation), Ok(first));
        assert_eq!(client.len(), 1);
        // The wrong secret (a later state's is not revealed; an earlier one is not this state's)
        // and someone else's revocation key are refused.
        let next = alice_commitment(4, 2, 0);
        assert_eq!(
            client.build_appointment(&next, &secret(3), &bob().revocation),
            Err(WatchtowerError::Channel(ChannelError::SecretMismatch))
        );
        assert_eq!(
            client.build_appointment(&next, &secret(4), &alice().revocation),
            Err(WatchtowerError::Channel(ChannelError::KeyMismatch))
        );
        // A sweep address the mempool would not relay.
        assert!(TowerClient::new(GENESIS, vec![0x51], FEERATE).is_err());
        // A commitment whose holder has nothing revocable: Alice's balance all moved to Bob.
        let empty = alice_commitment(5, 0, 3_999_999_999);
        assert_eq!(
            client.build_appointment(&empty, &secret(5), &bob().revocation),
            Err(WatchtowerError::NothingToPunish)
        );
    }

    #[test]
    fn the_tower_sees_no_secret_and_blob_sizes_hide_the_htlc_count_within_a_bucket() {
        let mut client = client();
        let mut lens = Vec::new();
        for (n, htlcs, extra) in [(1, 0, 0), (2, 0, 123_456_000), (3, 1, 0), (4, 2, 0), (5, 3, 0)] {
            let revoked = alice_commitment(n, htlcs, extra);
            let s = secret(n);
            let a = client.build_appointment(&revoked, &s, &bob().revocation).unwrap();
            // Neither the blob nor what it decrypts to holds a key: not the revealed secret, not
            // Bob's revocation key, not their expanded scalars' seeds.
            let plaintext = a.blob.open(&revoked.txid()).unwrap();
            let encoded = plaintext.encode().unwrap();
            for data in [a.blob.as_bytes(), &encoded[..]] {
                assert!(!contains(data, &s));
                assert!(!contains(data, &[12u8; 32]));
                assert!(!contains(data, &[0xb0u8; 32]));
            }
            // The tower cannot read it with anything but the breach txid.
            assert_eq!(
                a.blob.open(&alice_commitment(n + 10, htlcs, extra).txid()),
                Err(WatchtowerError::Authentication)
            );
            lens.push((htlcs, a.blob.len(), plaintext.transactions[0].total_size()));
        }
        // Different balances with the same HTLC count, and 2 or 3 HTLCs: same blob size, though
        // the penalties differ in size.
        assert_eq!(lens[0].1, lens[1].1);
        assert_eq!(lens[3].1, lens[4].1);
        assert_ne!(lens[3].2, lens[4].2);
        assert_eq!(lens[3].1, 1 + 2048 + MAC_LEN);
        // Size classes are powers of two: no HTLC and one HTLC differ.
        assert_eq!(lens[0].1, 1 + 512 + MAC_LEN);
        assert_eq!(lens[2].1, 1 + 1024 + MAC_LEN);
        for (_, len, _) in &lens {
            assert!(BUCKETS.iter().any(|b| 1 + b + MAC_LEN == *len));
        }
    }

    #[test]
    fn a_penalty_too_large_for_one_transaction_is_split() {
        let revoked = alice_commitment(7, 300, 0);
        let mut client = client();
        let a = client.build_appointment(&revoked, &secret(7), &bob().revocation).unwrap();
        let breach = broadcast(&revoked);
        let mut tower = tower();
        tower.add_appointment(&SESSION, &a, 0).unwrap();
        let scan = tower.scan_block(1, std::slice::from_ref(&breach)).unwrap();
        assert!(scan.rejected.is_empty());
        let txs = &scan.justice[0].transactions;
        assert!(txs.len() >= 2, "{} transactions", txs.len());
        let mut swept = Vec::new();
        for tx in txs {
            assert!(tx.total_size() <= MAX_STANDARD_TX_SIZE);
            assert_eq!(verify(tx, &spent_by(tx, &breach)), Ok(()));
            assert_eq!(tx.outputs[0].script_pubkey, sweep_script());
            swept.extend(tx.inputs.iter().map(|i| i.previous_output.vout));
        }
        swept.sort();
        swept.dedup();
        // Every HTLC output and to_local, each exactly once.
        assert_eq!(swept.len(), 301);
        assert_eq!(
            txs.iter().map(|t| t.inputs.len()).sum::<usize>(),
            301,
            "no output is swept twice"
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_blobs_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let txid = Txid::from_bytes([7; 32]);
            let _ = BlobPlaintext::decode(&bytes);
            if let Ok(blob) = EncryptedBlob::from_bytes(&bytes) {
                prop_assert_eq!(blob.open(&txid), Err(WatchtowerError::Authentication));
            }
        }

        #[test]
        fn well_formed_blobs_of_random_content_fail_authentication(
            bucket in 0..3usize,
            body in proptest::collection::vec(any::<u8>(), 2048 + MAC_LEN),
        ) {
            let mut bytes = vec![BLOB_VERSION];
            bytes.extend_from_slice(&body[..BUCKETS[bucket] + MAC_LEN]);
            let blob = EncryptedBlob::from_bytes(&bytes).unwrap();
            prop_assert_eq!(blob.open(&Txid::from_bytes([7; 32])), Err(WatchtowerError::Authentication));
        }

        #[test]
        fn padded_plaintexts_of_random_content_never_panic(
            bucket in 0..3usize,
            body in proptest::collection::vec(any::<u8>(), 2048),
            count in 0u8..10,
        ) {
            let mut bytes = body[..BUCKETS[bucket]].to_vec();
            bytes[0] = count;
            if let Ok(p) = BlobPlaintext::decode(&bytes) {
                prop_assert_eq!(p.encode().unwrap(), bytes);
            }
        }
    }
}

/// A plaintext the fuzzer found (`fuzz/fuzz_targets/decode_tower_blob.rs`, CI 2026-12-05): a
/// 261-byte content padded with zeros to the 1,024-byte bucket instead of the smallest bucket
/// that holds it. It used to decode (and encode back to a different, shorter plaintext); it is
/// refused now, and whatever does decode encodes back to the same bytes.
#[test]
fn fuzz_regression_plaintext_round_trips_or_is_refused() {
    use rnet_lightning::watchtower::{BlobPlaintext, EncryptedBlob};
    let data = include_bytes!("data/tower_blob_fuzz_crash.bin");
    let txid = rnet_primitives::Txid::from_bytes([0x42; 32]);
    assert!(BlobPlaintext::decode(data).is_err(), "padded beyond the smallest bucket");
    // The same content at its canonical length decodes, encodes back and survives sealing.
    let used = 1 + 4 + 256;
    let bucket = rnet_lightning::watchtower::BUCKETS.iter().copied().find(|&b| b >= used).unwrap();
    let canonical = &data[..bucket];
    let plaintext = BlobPlaintext::decode(canonical).expect("the canonical form decodes");
    assert_eq!(plaintext.encode().as_deref(), Ok(canonical));
    let sealed = EncryptedBlob::seal(&plaintext, &txid).expect("a decoded plaintext seals");
    assert_eq!(sealed.open(&txid), Ok(plaintext));
}
