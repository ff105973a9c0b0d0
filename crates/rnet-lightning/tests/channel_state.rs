//! The peer protocol end to end: BOLT 1/2 wire messages (`mod wire`) and two [`Channel`]s
//! driven against each other in process (`mod state`), in the style of LDK's functional tests:
//! every message goes through `Message::encode` / `Message::decode`, and after every step each
//! channel is encoded, decoded and the run continues from the decoded copy.
//!
//! Alice (keys 1..=5) funds a 0.1 RNT channel with Bob (keys 11..=15).

/// Named so that `cargo test -p rnet-lightning wire` selects these tests.
mod wire {
    use proptest::prelude::*;
    use rnet_crypto::SigningKey;
    use rnet_lightning::channel::ChannelPublicKeys;
    use rnet_lightning::onion::PACKET_LEN;
    use rnet_lightning::onion::TlvError;
    use rnet_lightning::wire::*;
    use rnet_primitives::{Amount, BlockHash, OutPoint, Txid};

    fn key(n: u8) -> rnet_crypto::PublicKey {
        SigningKey::from_bytes(&[n; 32]).public_key()
    }

    fn keys() -> ChannelPublicKeys {
        ChannelPublicKeys {
            funding: key(1),
            revocation: key(2),
            payment: key(3),
            delayed_payment: key(4),
            htlc: key(5),
        }
    }

    const CID: ChannelId = ChannelId([0x11; 32]);

    /// One message of every type (no optional TLV records).
    fn samples() -> Vec<Message> {
        let mut onion = Box::new([0u8; PACKET_LEN]);
        onion.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        vec![
            Message::Warning(Warning { channel_id: CID, data: b"careful".to_vec() }),
            Message::Init(Init {
                global_features: vec![],
                features: vec![0x02, 0x20],
                networks: None,
            }),
            Message::Error(ErrorMessage { channel_id: ChannelId::ALL, data: b"bad".to_vec() }),
            Message::Ping(Ping { num_pong_bytes: 4, ignored: vec![0; 3] }),
            Message::Pong(Pong { ignored: vec![0; 4] }),
            Message::OpenChannel(Box::new(OpenChannel {
                chain_hash: BlockHash([0x47; 32]),
                temporary_channel_id: CID,
                funding_amount: Amount(10_000_000),
                push_msat: 1_000,
                dust_limit: Amount(453),
                max_htlc_value_in_flight_msat: u64::MAX,
                channel_reserve: Amount(100_000),
                htlc_minimum_msat: 1,
                feerate_per_kb: 10_000,
                to_self_delay: 144,
                max_accepted_htlcs: 483,
                keys: keys(),
                first_per_commitment_point: key(9),
                channel_flags: 1,
                upfront_shutdown_script: None,
            })),
            Message::AcceptChannel(Box::new(AcceptChannel {
                temporary_channel_id: CID,
                dust_limit: Amount(500),
                max_htlc_value_in_flight_msat: 5_000_000_000,
                channel_reserve: Amount(100_000),
                htlc_minimum_msat: 1000,
                minimum_depth: 3,
                to_self_delay: 100,
                max_accepted_htlcs: 30,
                keys: keys(),
                first_per_commitment_point: key(10),
                upfront_shutdown_script: None,
            })),
            Message::FundingCreated(FundingCreated {
                temporary_channel_id: CID,
                funding_txid: Txid::from_bytes([0xf0; 32]),
                funding_output_index: 1,
                signature: [0x5a; 64],
            }),
            Message::FundingSigned(FundingSigned { channel_id: CID, signature: [0x5b; 64] }),
            Message::ChannelReady(ChannelReady {
                channel_id: CID,
                next_per_commitment_point: key(7),
            }),
            Message::Shutdown(Shutdown {
                channel_id: CID,
                script_pubkey: [&[0x00, 0x20][..], &[7; 32]].concat(),
            }),
            Message::ClosingSigned(ClosingSigned {
                channel_id: CID,
                fee: Amount(3400),
                signature: [1; 64],
            }),
            Message::UpdateAddHtlc(UpdateAddHtlc {
                channel_id: CID,
                id: 7,
                amount_msat: 123_456,
                payment_hash: [0x22; 32],
                cltv_expiry: 500_100,
                onion_routing_packet: onion,
            }),
            Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
                channel_id: CID,
                id: 7,
                payment_preimage: [0x33; 32],
            }),
            Message::UpdateFailHtlc(UpdateFailHtlc {
                channel_id: CID,
                id: 8,
                reason: vec![0x44; 292],
            }),
            Message::UpdateFailMalformedHtlc(UpdateFailMalformedHtlc {
                channel_id: CID,
                id: 9,
                sha256_of_onion: [0x55; 32],
                failure_code: BADONION | 5,
            }),
            Message::CommitmentSigned(CommitmentSigned {
                channel_id: CID,
                signature: [2; 64],
                htlc_signatures: vec![[3; 64], [4; 64]],
            }),
            Message::RevokeAndAck(RevokeAndAck {
                channel_id: CID,
                per_commitment_secret: [0x66; 32],
                next_per_commitment_point: key(8),
            }),
            Message::UpdateFee(UpdateFee { channel_id: CID, feerate_per_kb: 20_000 }),
            Message::ChannelReestablish(ChannelReestablish {
                channel_id: CID,
                next_commitment_number: 5,
                next_revocation_number: 4,
                your_last_per_commitment_secret: [0x77; 32],
                my_current_per_commitment_point: key(6),
            }),
        ]
    }

    #[test]
    fn wire_every_message_round_trips_and_every_truncation_fails() {
        let all = samples();
        let types: std::collections::BTreeSet<u16> = all.iter().map(Message::msg_type).collect();
        assert_eq!(types.len(), 20, "one sample per message type");
        for msg in all {
            let bytes = msg.encode().unwrap();
            assert_eq!(message_type(&bytes).unwrap(), msg.msg_type());
            assert_eq!(Message::decode(&bytes).unwrap().as_ref(), Some(&msg));
            for len in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..len]).is_err(),
                    "type {} truncated to {len} bytes decoded",
                    msg.msg_type()
                );
            }
        }
    }

    #[test]
    fn wire_sizes_follow_the_table() {
        let size = |i: usize| samples()[i].encode().unwrap().len();
        assert_eq!(size(5), 2 + 313, "open_channel");
        assert_eq!(size(6), 2 + 264, "accept_channel");
        assert_eq!(size(7), 2 + 130, "funding_created");
        assert_eq!(size(8), 2 + 96, "funding_signed");
        assert_eq!(size(9), 2 + 64, "channel_ready");
        assert_eq!(size(11), 2 + 104, "closing_signed");
        assert_eq!(size(12), 2 + 84 + 1365, "update_add_htlc");
        assert_eq!(size(13), 2 + 72, "update_fulfill_htlc");
        assert_eq!(size(15), 2 + 74, "update_fail_malformed_htlc");
        assert_eq!(size(16), 2 + 98 + 2 * 64, "commitment_signed");
        assert_eq!(size(17), 2 + 96, "revoke_and_ack");
        assert_eq!(size(18), 2 + 36, "update_fee");
        assert_eq!(size(19), 2 + 112, "channel_reestablish");
    }

    #[test]
    fn wire_pinned_bytes() {
        let fee = Message::UpdateFee(UpdateFee {
            channel_id: ChannelId([1; 32]),
            feerate_per_kb: 0x0102_0304,
        });
        assert_eq!(hex::encode(fee.encode().unwrap()), format!("0086{}01020304", "01".repeat(32)));

        let fulfill = Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
            channel_id: ChannelId([0xab; 32]),
            id: 0x0102,
            payment_preimage: [0xcd; 32],
        });
        assert_eq!(
            hex::encode(fulfill.encode().unwrap()),
            format!("0082{}0000000000000102{}", "ab".repeat(32), "cd".repeat(32))
        );

        let re = Message::ChannelReestablish(ChannelReestablish {
            channel_id: ChannelId([0; 32]),
            next_commitment_number: 1,
            next_revocation_number: 0,
            your_last_per_commitment_secret: [0; 32],
            my_current_per_commitment_point: key(1),
        });
        assert_eq!(
            hex::encode(re.encode().unwrap()),
            format!(
                "0088{}00000000000000010000000000000000{}{}",
                "00".repeat(32),
                "00".repeat(32),
                hex::encode(key(1).as_bytes())
            )
        );
        let ping = Message::Ping(Ping { num_pong_bytes: 2, ignored: vec![0, 0] });
        assert_eq!(hex::encode(ping.encode().unwrap()), "0012000200020000");
    }

    #[test]
    fn wire_channel_id_xors_the_output_index() {
        let txid = Txid::from_bytes([0xf0; 32]);
        let id = ChannelId::from_funding_outpoint(&OutPoint::new(txid, 0x0102)).unwrap();
        let mut expected = [0xf0; 32];
        expected[30] = 0xf1;
        expected[31] = 0xf2;
        assert_eq!(id, ChannelId(expected));
        assert!(ChannelId::from_funding_outpoint(&OutPoint::new(txid, 65_536)).is_err());
    }

    #[test]
    fn wire_unknown_types_and_tlvs() {
        // Unknown odd message: ignored; unknown even: error.
        assert_eq!(Message::decode(&[0x80, 0x01, 1, 2, 3]), Ok(None));
        assert_eq!(Message::decode(&[0x80, 0x00]), Err(WireError::UnknownEvenType(0x8000)));
        assert_eq!(Message::decode(&[0x01]), Err(WireError::NoType));
        let base = samples()[18].encode().unwrap(); // update_fee
        // An odd TLV record after the fields is skipped.
        let odd = [&base[..], &[0x03, 0x02, 0xaa, 0xbb]].concat();
        assert_eq!(Message::decode(&odd).unwrap(), Some(samples()[18].clone()));
        // An even one is refused.
        let even = [&base[..], &[0x02, 0x00]].concat();
        assert_eq!(
            Message::decode(&even),
            Err(WireError::UnknownEvenTlv { msg_type: 134, tlv_type: 2 })
        );
        // Malformed streams are refused: non-minimal type, overlong record, types out of order.
        let nonminimal = [&base[..], &[0xfd, 0x00, 0x03, 0x00]].concat();
        assert!(matches!(
            Message::decode(&nonminimal),
            Err(WireError::Tlv(TlvError::NonMinimalBigSize { .. }))
        ));
        let overlong = [&base[..], &[0x03, 0x05, 0xaa]].concat();
        assert!(matches!(
            Message::decode(&overlong),
            Err(WireError::Tlv(TlvError::Truncated { .. }))
        ));
        let unordered = [&base[..], &[0x05, 0x00, 0x03, 0x00]].concat();
        assert!(matches!(
            Message::decode(&unordered),
            Err(WireError::Tlv(TlvError::NotIncreasing { .. }))
        ));

        // Known TLVs: init networks and open_channel upfront_shutdown_script.
        let init = Message::Init(Init {
            global_features: vec![],
            features: vec![0x01, 0x00],
            networks: Some(vec![BlockHash([0x47; 32]), BlockHash([0x48; 32])]),
        });
        let bytes = init.encode().unwrap();
        assert_eq!(Message::decode(&bytes).unwrap(), Some(init));
        let mut bad_networks = bytes.clone();
        bad_networks.truncate(bytes.len() - 1);
        let len_at = bytes.len() - 64 - 1;
        bad_networks[len_at] = 63;
        assert!(Message::decode(&bad_networks).is_err());
        let Message::OpenChannel(mut open) = samples()[5].clone() else { unreachable!() };
        open.upfront_shutdown_script = Some(vec![0x51, 0x20]);
        let msg = Message::OpenChannel(open);
        assert_eq!(Message::decode(&msg.encode().unwrap()).unwrap(), Some(msg));
    }

    #[test]
    fn wire_init_feature_check() {
        let init = Init { global_features: vec![], features: vec![0x01, 0x02], networks: None };
        // Bits 1 (odd) and 8 (even) are set.
        assert_eq!(init.unknown_required_feature(&[]), Some(8));
        assert_eq!(init.unknown_required_feature(&[8]), None);
        assert_eq!(
            Ping { num_pong_bytes: 3, ignored: vec![] }.response(),
            Some(Pong { ignored: vec![0; 3] })
        );
        assert_eq!(Ping { num_pong_bytes: 65_532, ignored: vec![] }.response(), None);
    }

    #[test]
    fn wire_oversized_fields_are_refused() {
        let err = Message::Error(ErrorMessage { channel_id: CID, data: vec![0; 65_536] });
        assert_eq!(err.encode(), Err(WireError::FieldTooLong { field: "data", len: 65_536 }));
        // Fits its length prefix, but not the 65535-byte message.
        let big = Message::UpdateFailHtlc(UpdateFailHtlc {
            channel_id: CID,
            id: 0,
            reason: vec![0; 65_500],
        });
        assert!(matches!(big.encode(), Err(WireError::TooLarge(_))));
        let too_many = Message::CommitmentSigned(CommitmentSigned {
            channel_id: CID,
            signature: [0; 64],
            htlc_signatures: vec![[0; 64]; 967],
        });
        assert!(too_many.encode().is_err());
        let mut raw = vec![0x00, 0x84];
        raw.extend_from_slice(&[0; 32 + 64]);
        raw.extend_from_slice(&967u16.to_be_bytes());
        raw.extend(std::iter::repeat_n(0u8, 967 * 64));
        assert!(matches!(
            Message::decode(&raw),
            Err(WireError::InvalidField { field: "num_htlcs", .. })
        ));
        assert!(matches!(Message::decode(&vec![0x00; 65_536]), Err(WireError::TooLarge(65_536))));
        // A length prefix larger than what follows.
        let mut shutdown = samples()[10].encode().unwrap();
        shutdown[34] = 0x01;
        assert!(matches!(
            Message::decode(&shutdown),
            Err(WireError::Truncated { field: "scriptpubkey", .. })
        ));
        // A key that is not a curve point.
        let mut ready = samples()[9].encode().unwrap();
        let mut bad_point = None;
        for y in 2u8..=255 {
            let mut k = [y; 32];
            k[31] &= 0x7f;
            if rnet_crypto::PublicKey::from_bytes(&k).is_err() {
                bad_point = Some(k);
                break;
            }
        }
        ready[34..66].copy_from_slice(&bad_point.unwrap());
        assert_eq!(
            Message::decode(&ready),
            Err(WireError::InvalidKey("next_per_commitment_point"))
        );
    }

    proptest! {
        #[test]
        fn wire_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn wire_decode_of_known_types_never_panics(
            index in 0usize..20,
            body in proptest::collection::vec(any::<u8>(), 0..1600),
        ) {
            let t = samples()[index].msg_type();
            let bytes = [&t.to_be_bytes()[..], &body].concat();
            if let Ok(Some(msg)) = Message::decode(&bytes) {
                // Whatever decodes re-encodes and decodes to itself.
                let again = msg.encode().unwrap();
                prop_assert_eq!(Message::decode(&again).unwrap(), Some(msg));
            }
        }

        #[test]
        fn wire_mutated_messages_never_panic(index in 0usize..20, pos in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = samples()[index].encode().unwrap();
            let p = pos % bytes.len();
            bytes[p] = byte;
            let _ = Message::decode(&bytes);
        }
    }
}

/// Named so that `cargo test -p rnet-lightning state` selects these tests.
mod state {
    use rnet_crypto::SigningKey;
    use rnet_lightning::channel::fees::commitment_fee;
    use rnet_lightning::channel::{
        ChannelError, ChannelKeys, FeeRate, HtlcDirection, MSAT_PER_RESONANCE, SecretGenerator,
    };
    use rnet_lightning::onion::PACKET_LEN;
    use rnet_lightning::state::*;
    use rnet_lightning::wire::*;
    use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, Txid};
    use rnet_script::templates::Htlc;
    use rnet_script::{VerifyFlags, verify_transaction};

    const GENESIS: BlockHash = BlockHash([0x47; 32]);
    const FUNDING: Amount = Amount(10_000_000);
    const CAPACITY_MSAT: u64 = 10_000_000 * MSAT_PER_RESONANCE;
    const PUSH_MSAT: u64 = 3_000_000_000;
    const FEERATE: FeeRate = FeeRate(10_000);
    const CLTV: u32 = 500_100;

    fn sk(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn keys(base: u8) -> ChannelKeys {
        ChannelKeys {
            funding: sk(base),
            revocation: sk(base + 1),
            payment: sk(base + 2),
            delayed_payment: sk(base + 3),
            htlc: sk(base + 4),
            commitment_seed: SecretGenerator::new([base + 0xa0; 32]),
        }
    }

    fn alice_script() -> Vec<u8> {
        [&[0x00, 0x20][..], &[0xaa; 32]].concat()
    }

    fn bob_script() -> Vec<u8> {
        [&[0x51, 0x20][..], sk(13).public_key().as_bytes()].concat()
    }

    fn preimage(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn hash(n: u8) -> [u8; 32] {
        Htlc::payment_hash_of(&preimage(n))
    }

    fn onion(n: u8) -> Box<[u8; PACKET_LEN]> {
        Box::new([n; PACKET_LEN])
    }

    fn funding_outpoint() -> OutPoint {
        OutPoint::new(Txid::from_bytes([0xf0; 32]), 1)
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Who {
        Alice,
        Bob,
    }
    use Who::*;

    /// Two channels and the messages between them.
    struct Pair {
        alice: Channel,
        bob: Channel,
        events: Vec<(Who, Event)>,
        /// Types of the messages delivered, with their sender.
        sent: Vec<(Who, u16)>,
        /// Revoked counterparty states, with the node that learned them.
        revoked: Vec<(Who, rnet_lightning::channel::CommitmentSpec, [u8; 32])>,
    }

    /// Encodes, decodes and continues from the copy, checking the encoding is stable.
    fn reload(ch: &mut Channel) {
        let bytes = ch.encode();
        assert_eq!(bytes[0], STATE_VERSION);
        let copy = Channel::decode(&bytes).expect("state decodes");
        assert_eq!(copy.encode(), bytes, "state re-encodes to the same bytes");
        *ch = copy;
    }

    /// Through the wire codec.
    fn wire(msg: &Message) -> Message {
        Message::decode(&msg.encode().unwrap()).unwrap().unwrap()
    }

    /// Every funded state: value is conserved in msat, and the holder commitment is fully
    /// signed and valid under the script interpreter.
    fn check_invariants(ch: &Channel) {
        let Some(spec) = ch.local_commitment_spec() else { return };
        let htlcs: u64 = spec.htlcs.iter().map(|h| h.amount_msat).sum();
        assert_eq!(spec.to_local_msat + spec.to_remote_msat + htlcs, CAPACITY_MSAT);
        let hc = ch.holder_commitment().unwrap();
        let fee = hc.commitment.fee;
        // Balances after the funder's fee + fee + HTLCs = capacity.
        let (to_funder, to_fundee) = if ch.is_funder() {
            (spec.to_local_msat, spec.to_remote_msat)
        } else {
            (spec.to_remote_msat, spec.to_local_msat)
        };
        assert_eq!(
            to_funder - fee.base_fee_paid_msat + to_fundee + fee.base_fee_paid_msat + htlcs,
            CAPACITY_MSAT
        );
        assert_eq!(
            fee.total.0 * MSAT_PER_RESONANCE,
            fee.base_fee_paid_msat
                + fee.trimmed_htlc_msat
                + fee.dust_balance_msat
                + fee.rounding_msat
        );
        let outputs: u64 = hc.tx.outputs.iter().map(|o| o.value.0).sum();
        assert_eq!(outputs + fee.total.0, FUNDING.0);
        verify_transaction(&GENESIS, &hc.tx, &hc.commitment.spent_outputs(), VerifyFlags::STANDARD)
            .expect("holder commitment is valid");
        // One counterparty signature per untrimmed HTLC, each valid.
        for (tx, sig) in &hc.htlc_txs {
            tx.verify_counterparty_signature(sig, &GENESIS).unwrap();
        }
    }

    impl Pair {
        fn ch(&mut self, who: Who) -> &mut Channel {
            match who {
                Alice => &mut self.alice,
                Bob => &mut self.bob,
            }
        }

        fn step_done(&mut self) {
            reload(&mut self.alice);
            reload(&mut self.bob);
            check_invariants(&self.alice);
            check_invariants(&self.bob);
        }

        /// Delivers `msgs` from `from` to the other side, then every reply back, until quiet.
        fn deliver(&mut self, from: Who, msgs: Vec<Message>) {
            let mut queue: Vec<(Who, Message)> = msgs.into_iter().map(|m| (from, m)).collect();
            while !queue.is_empty() {
                let (sender, msg) = queue.remove(0);
                self.sent.push((sender, msg.msg_type()));
                let to = if sender == Alice { Bob } else { Alice };
                let out = self
                    .ch(to)
                    .handle_message(&wire(&msg))
                    .unwrap_or_else(|e| panic!("{to:?} refused {msg:?}: {e}"));
                self.record(to, out.events);
                queue.extend(out.messages.into_iter().map(|m| (to, m)));
                self.step_done();
            }
        }

        /// Delivers one message and returns the other side's replies without delivering them.
        fn deliver_one(&mut self, from: Who, msg: Message) -> Vec<Message> {
            let to = if from == Alice { Bob } else { Alice };
            let out = self.ch(to).handle_message(&wire(&msg)).unwrap();
            self.record(to, out.events);
            self.step_done();
            out.messages
        }

        /// The full dance from `who`: commitment_signed, revoke_and_ack, the reverse
        /// commitment_signed and its revoke_and_ack.
        fn commit(&mut self, who: Who) {
            let cs = self.ch(who).send_commitment().unwrap();
            self.step_done();
            self.deliver(who, vec![Message::CommitmentSigned(cs)]);
            let other = if who == Alice { Bob } else { Alice };
            if self.ch(other).has_pending_commit() {
                let cs = self.ch(other).send_commitment().unwrap();
                self.step_done();
                self.deliver(other, vec![Message::CommitmentSigned(cs)]);
            }
        }

        fn add(&mut self, who: Who, amount_msat: u64, n: u8) -> u64 {
            let m = self.ch(who).send_add_htlc(amount_msat, hash(n), CLTV, onion(n)).unwrap();
            self.step_done();
            let id = m.id;
            self.deliver(who, vec![Message::UpdateAddHtlc(m)]);
            id
        }

        /// Commits until neither side has anything pending.
        fn settle_all(&mut self) {
            while self.alice.has_pending_commit() || self.bob.has_pending_commit() {
                let who = if self.alice.has_pending_commit() { Alice } else { Bob };
                self.commit(who);
            }
        }

        /// Keeps revocation records apart from the other events.
        fn record(&mut self, to: Who, events: Vec<Event>) {
            for e in events {
                match e {
                    Event::CounterpartyRevoked { spec, per_commitment_secret } => {
                        self.revoked.push((to, spec, per_commitment_secret));
                    }
                    e => self.events.push((to, e)),
                }
            }
        }

        fn take_events(&mut self) -> Vec<(Who, Event)> {
            std::mem::take(&mut self.events)
        }

        fn balances(&self) -> (u64, u64) {
            let a = self.alice.local_commitment_spec().unwrap();
            let b = self.bob.local_commitment_spec().unwrap();
            // Both views agree.
            assert_eq!((a.to_local_msat, a.to_remote_msat), (b.to_remote_msat, b.to_local_msat));
            (a.to_local_msat, a.to_remote_msat)
        }
    }

    fn alice_config() -> ChannelConfig {
        ChannelConfig::new(alice_script())
    }

    fn bob_config() -> ChannelConfig {
        let mut c = ChannelConfig::new(bob_script());
        c.dust_limit = Amount(500);
        c.htlc_minimum_msat = 1000;
        c.max_accepted_htlcs = 5;
        c.to_self_delay = 100;
        c.minimum_depth = 2;
        c
    }

    fn open_with(alice_cfg: ChannelConfig, bob_cfg: ChannelConfig) -> Pair {
        let request = OpenRequest {
            temporary_channel_id: ChannelId([0x77; 32]),
            funding_amount: FUNDING,
            push_msat: PUSH_MSAT,
            feerate: FEERATE,
            announce: false,
        };
        let (mut alice, open) =
            Channel::new_outbound(keys(1), GENESIS, alice_cfg, request).unwrap();
        reload(&mut alice);
        let Message::OpenChannel(open) = wire(&Message::OpenChannel(Box::new(open))) else {
            unreachable!()
        };
        let (mut bob, accept) = Channel::new_inbound(keys(11), GENESIS, bob_cfg, &open).unwrap();
        reload(&mut bob);
        let mut pair = Pair { alice, bob, events: vec![], sent: vec![], revoked: vec![] };
        pair.deliver(Bob, vec![Message::AcceptChannel(Box::new(accept))]);
        assert_eq!(pair.alice.phase(), Phase::AwaitingFundingOutpoint);
        // Alice builds the funding transaction paying this output.
        let out = pair.alice.funding_output().unwrap();
        assert_eq!(out.value, FUNDING);
        let created = pair.alice.funding_created(funding_outpoint()).unwrap();
        pair.step_done();
        pair.deliver(Alice, vec![Message::FundingCreated(created)]);
        assert_eq!(pair.take_events(), vec![(Alice, Event::FundingSigned)]);
        let cid = ChannelId::from_funding_outpoint(&funding_outpoint()).unwrap();
        assert_eq!((pair.alice.channel_id(), pair.bob.channel_id()), (cid, cid));
        // Confirmations: Bob asked for 2, Alice wants max(3, 2).
        assert_eq!(pair.alice.minimum_depth(), 3);
        assert_eq!(pair.bob.funding_depth(1).unwrap(), Outcome::default());
        let ready_b = pair.bob.funding_depth(2).unwrap();
        assert_eq!(
            (kinds(&ready_b.messages), ready_b.events.len()),
            (vec![msg_type::CHANNEL_READY], 0)
        );
        assert_eq!(pair.bob.funding_depth(3).unwrap(), Outcome::default(), "sent once");
        pair.deliver(Bob, ready_b.messages);
        assert_eq!(pair.alice.funding_depth(2).unwrap(), Outcome::default());
        let ready_a = pair.alice.funding_depth(3).unwrap();
        assert_eq!(ready_a.events, vec![Event::ChannelReady]);
        pair.deliver(Alice, ready_a.messages);
        assert_eq!(pair.take_events(), vec![(Bob, Event::ChannelReady)]);
        assert_eq!((pair.alice.phase(), pair.bob.phase()), (Phase::Normal, Phase::Normal));
        pair
    }

    fn open() -> Pair {
        open_with(alice_config(), bob_config())
    }

    fn base_fee(rate: FeeRate, htlcs: usize) -> u64 {
        commitment_fee(rate, htlcs).0 * MSAT_PER_RESONANCE
    }

    #[test]
    fn state_open_fund_and_first_commitments() {
        let pair = open();
        assert_eq!(pair.balances(), (CAPACITY_MSAT - PUSH_MSAT, PUSH_MSAT));
        let hc = pair.alice.holder_commitment().unwrap();
        assert_eq!(hc.commitment.fee.base_fee_paid_msat, base_fee(FEERATE, 0));
        assert_eq!(hc.commitment.commitment_number, 0);
        // Bob's reserve requirement for Alice is 1% of the channel.
        let params = pair.bob.parameters().unwrap();
        assert_eq!(
            params.party(rnet_lightning::channel::Side::Remote).channel_reserve,
            Amount(100_000)
        );
    }

    #[test]
    fn state_htlcs_both_directions_fee_update_and_cooperative_close() {
        let mut p = open();
        let (a0, b0) = (CAPACITY_MSAT - PUSH_MSAT, PUSH_MSAT);

        // Alice offers 500 000 resonance.
        let h1 = p.add(Alice, 500_000_000, 1);
        assert_eq!(p.alice.local_commitment_spec().unwrap().htlcs.len(), 0, "not committed yet");
        p.commit(Alice);
        assert_eq!(p.balances(), (a0 - 500_000_000, b0));
        let ev = p.take_events();
        assert!(matches!(&ev[..], [(Bob, Event::HtlcReceived { htlc, onion })]
            if htlc.id == h1 && htlc.amount_msat == 500_000_000 && htlc.direction == HtlcDirection::Received
               && **onion == [1u8; PACKET_LEN]));
        assert_eq!(p.alice.holder_commitment().unwrap().htlc_txs.len(), 1);

        // Simultaneous adds from both sides, then both commit at once (crossing messages).
        let m_b = p.bob.send_add_htlc(200_000_000, hash(2), CLTV, onion(2)).unwrap();
        let m_a = p.alice.send_add_htlc(1_000_000, hash(3), CLTV, onion(3)).unwrap(); // dust
        p.step_done();
        p.deliver_one(Bob, Message::UpdateAddHtlc(m_b));
        p.deliver_one(Alice, Message::UpdateAddHtlc(m_a));
        let cs_a = p.alice.send_commitment().unwrap();
        let cs_b = p.bob.send_commitment().unwrap();
        p.step_done();
        let raa_b = p.deliver_one(Alice, Message::CommitmentSigned(cs_a));
        let raa_a = p.deliver_one(Bob, Message::CommitmentSigned(cs_b));
        p.deliver(Bob, raa_b);
        p.deliver(Alice, raa_a);
        // Each side now signs the other's update for the other.
        assert!(p.alice.has_pending_commit() && p.bob.has_pending_commit());
        let cs_a = p.alice.send_commitment().unwrap();
        let cs_b = p.bob.send_commitment().unwrap();
        p.step_done();
        p.deliver(Alice, vec![Message::CommitmentSigned(cs_a)]);
        p.deliver(Bob, vec![Message::CommitmentSigned(cs_b)]);
        assert_eq!(p.balances(), (a0 - 501_000_000, b0 - 200_000_000));
        let spec = p.alice.local_commitment_spec().unwrap().clone();
        assert_eq!(spec.htlcs.len(), 3);
        // The 1000-resonance HTLC is trimmed: two HTLC outputs, and the fee counts two.
        let hc = p.alice.holder_commitment().unwrap();
        assert_eq!(hc.htlc_txs.len(), 2);
        assert_eq!(hc.commitment.fee.trimmed_htlc_msat, 1_000_000);
        assert_eq!(hc.commitment.fee.base_fee_paid_msat, base_fee(FEERATE, 2));
        let ev = p.take_events();
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().any(|(w, e)| *w == Alice && matches!(e, Event::HtlcReceived { htlc, .. } if htlc.id == 0 && htlc.amount_msat == 200_000_000)));
        assert!(ev.iter().any(|(w, e)| *w == Bob && matches!(e, Event::HtlcReceived { htlc, .. } if htlc.id == 1 && htlc.amount_msat == 1_000_000)));

        // Bob fulfills both of Alice's HTLCs; Alice fails Bob's.
        assert!(matches!(
            p.bob.send_fulfill_htlc(h1, preimage(2)),
            Err(StateError::WrongPreimage { .. })
        ));
        let f1 = p.bob.send_fulfill_htlc(h1, preimage(1)).unwrap();
        let f3 = p.bob.send_fulfill_htlc(1, preimage(3)).unwrap();
        assert!(matches!(
            p.bob.send_fulfill_htlc(1, preimage(3)),
            Err(StateError::UnknownHtlc { id: 1 })
        ));
        p.step_done();
        p.deliver(Bob, vec![Message::UpdateFulfillHtlc(f1), Message::UpdateFulfillHtlc(f3)]);
        let ev = p.take_events();
        assert_eq!(
            ev,
            vec![
                (
                    Alice,
                    Event::HtlcFulfilled { id: h1, payment_hash: hash(1), preimage: preimage(1) }
                ),
                (
                    Alice,
                    Event::HtlcFulfilled { id: 1, payment_hash: hash(3), preimage: preimage(3) }
                ),
            ]
        );
        let fail = p.alice.send_fail_htlc(0, vec![0xee; 292]).unwrap();
        p.step_done();
        p.deliver(Alice, vec![Message::UpdateFailHtlc(fail)]);
        p.commit(Bob);
        // Bob's commitment carried his fulfills; Alice's fail reaches Bob's commitment with
        // her reply and his in the next round.
        assert_eq!(p.alice.local_commitment_spec().unwrap().htlcs.len(), 1);
        p.settle_all();
        assert_eq!(p.balances(), (a0 - 501_000_000, b0 + 501_000_000));
        assert!(p.alice.local_commitment_spec().unwrap().htlcs.is_empty());
        assert!(p.bob.remote_commitment_spec().unwrap().htlcs.is_empty());
        let ev = p.take_events();
        assert_eq!(
            ev,
            vec![(
                Bob,
                Event::HtlcFailed {
                    id: 0,
                    payment_hash: hash(2),
                    failure: HtlcFailure::Reason(vec![0xee; 292]),
                }
            )]
        );
        // Bob revealed secrets for each of Alice's revoked commitments, and the reverse.
        let n_alice = p.alice.local_commitment_spec().unwrap().commitment_number;
        assert_eq!(p.bob.counterparty_secrets().len(), n_alice);
        for n in 0..n_alice {
            let s = p.bob.counterparty_secrets().get_commitment(n).unwrap();
            assert_eq!(s, *keys(1).commitment_seed.secret(n).unwrap());
        }

        // Every revoked state of Alice's can be punished by Bob: rebuild it and sweep every
        // output with the revealed secret.
        let bob_revoked: Vec<_> = p.revoked.iter().filter(|r| r.0 == Bob).cloned().collect();
        assert_eq!(bob_revoked.len() as u64, n_alice);
        let (_, spec, secret) = bob_revoked
            .iter()
            .find(|r| r.1.htlcs.len() == 3)
            .expect("a revoked state with three HTLCs")
            .clone();
        assert_eq!(secret, *keys(1).commitment_seed.secret(spec.commitment_number).unwrap());
        let params = p.bob.parameters().unwrap();
        let point = rnet_lightning::channel::keys::per_commitment_point(&secret);
        let revoked = rnet_lightning::channel::build_commitment(
            params,
            rnet_lightning::channel::Side::Remote,
            &spec,
            &point,
        )
        .unwrap();
        let inputs = rnet_lightning::channel::penalty_inputs(
            &revoked,
            &secret,
            &keys(11).revocation,
            Some(&keys(11).payment),
        )
        .unwrap();
        assert_eq!(inputs.len(), revoked.tx.outputs.len(), "to_local, to_remote and two HTLCs");
        let penalty =
            rnet_lightning::channel::build_sweep(&inputs, &bob_script(), FEERATE, &GENESIS)
                .unwrap();
        let spent: Vec<_> = inputs.iter().map(|i| i.spent.clone()).collect();
        verify_transaction(&GENESIS, &penalty, &spent, VerifyFlags::STANDARD)
            .expect("penalty is valid");

        // The funder raises the fee.
        assert!(matches!(p.bob.send_update_fee(FeeRate(20_000)), Err(StateError::NotFunder)));
        let fee = p.alice.send_update_fee(FeeRate(20_000)).unwrap();
        p.step_done();
        p.deliver(Alice, vec![Message::UpdateFee(fee)]);
        p.commit(Alice);
        assert_eq!(p.alice.local_commitment_spec().unwrap().feerate, FeeRate(20_000));
        assert_eq!(p.bob.local_commitment_spec().unwrap().feerate, FeeRate(20_000));
        let hc = p.bob.holder_commitment().unwrap();
        assert_eq!(hc.commitment.fee.base_fee_paid_msat, base_fee(FeeRate(20_000), 0));
        assert_eq!(p.balances(), (a0 - 501_000_000, b0 + 501_000_000));

        // Cooperative close: Bob aims lower, the fee converges between the two proposals.
        p.bob.set_closing_feerate(FeeRate(5_000));
        let shutdown = p.bob.send_shutdown().unwrap();
        assert!(matches!(
            p.bob.send_add_htlc(1_000_000, hash(9), CLTV, onion(9)),
            Err(StateError::ShuttingDown)
        ));
        p.step_done();
        p.sent.clear();
        p.deliver(Bob, shutdown);
        // shutdown both ways, then alternating proposals until one side repeats the other's.
        let closing: Vec<Who> = p
            .sent
            .iter()
            .filter(|(_, t)| *t == msg_type::CLOSING_SIGNED)
            .map(|(w, _)| *w)
            .collect();
        assert!(closing.len() >= 4, "several rounds: {closing:?}");
        assert_eq!(closing[0], Alice, "the funder proposes first");
        assert!(closing.windows(2).all(|w| w[0] != w[1]), "proposals alternate");
        let closes: Vec<_> = p
            .take_events()
            .into_iter()
            .filter_map(|(w, e)| match e {
                Event::ChannelClosed(tx) => Some((w, tx)),
                _ => None,
            })
            .collect();
        assert_eq!(closes.len(), 2);
        assert_eq!(closes[0].1, closes[1].1, "both sides hold the same closing transaction");
        let tx: &Transaction = &closes[0].1;
        assert_eq!((p.alice.phase(), p.bob.phase()), (Phase::Closed, Phase::Closed));
        let spent = vec![p.alice.parameters().unwrap().funding_output()];
        verify_transaction(&GENESIS, tx, &spent, VerifyFlags::STANDARD).unwrap();
        verify_transaction(&GENESIS, tx, &spent, VerifyFlags::CONSENSUS).unwrap();
        // The agreed fee lies between Bob's 5000/kB and Alice's 20 000/kB proposals.
        let fee = FUNDING.0 - tx.outputs.iter().map(|o| o.value.0).sum::<u64>();
        assert!(fee > 1_700 && fee < 6_800, "fee {fee}");
        let (a, b) = p.balances();
        let bob_out = tx.outputs.iter().find(|o| o.script_pubkey == bob_script()).unwrap();
        let alice_out = tx.outputs.iter().find(|o| o.script_pubkey == alice_script()).unwrap();
        assert_eq!(bob_out.value.0, b / MSAT_PER_RESONANCE);
        assert_eq!(alice_out.value.0, a / MSAT_PER_RESONANCE - fee);
        assert_eq!(p.alice.closing_transaction(), Some(tx));
    }

    fn tamper(msgs: &mut [Message]) {
        match &mut msgs[0] {
            Message::CommitmentSigned(cs) => cs.signature[5] ^= 1,
            Message::RevokeAndAck(raa) => raa.per_commitment_secret[0] ^= 1,
            _ => panic!("unexpected"),
        }
    }

    #[test]
    fn state_bad_signatures_and_secrets_are_refused_without_changing_state() {
        let mut p = open();
        p.add(Alice, 100_000_000, 1);
        let cs = p.alice.send_commitment().unwrap();
        p.step_done();
        let before = p.bob.encode();

        let mut bad = vec![Message::CommitmentSigned(cs.clone())];
        tamper(&mut bad);
        assert_eq!(p.bob.handle_message(&bad[0]), Err(StateError::InvalidCommitmentSignature));
        let mut bad_htlc = cs.clone();
        bad_htlc.htlc_signatures[0][9] ^= 1;
        assert_eq!(
            p.bob.handle_message(&Message::CommitmentSigned(bad_htlc)),
            Err(StateError::InvalidHtlcSignature { index: 0 })
        );
        let mut missing = cs.clone();
        missing.htlc_signatures.clear();
        assert_eq!(
            p.bob.handle_message(&Message::CommitmentSigned(missing)),
            Err(StateError::WrongHtlcSignatureCount { expected: 1, got: 0 })
        );
        // A signature by the wrong key (Bob's own) is refused too.
        let mut wrong_key = cs.clone();
        wrong_key.htlc_signatures[0] = cs.signature;
        assert!(p.bob.handle_message(&Message::CommitmentSigned(wrong_key)).is_err());
        assert_eq!(p.bob.encode(), before, "refusals change nothing");

        // The genuine one is accepted; now a wrong secret in revoke_and_ack.
        let mut raa = p.deliver_one(Alice, Message::CommitmentSigned(cs));
        let alice_before = p.alice.encode();
        tamper(&mut raa);
        assert_eq!(p.alice.handle_message(&raa[0]), Err(StateError::InvalidRevocationSecret));
        // A valid secret of another commitment of Bob's is just as wrong.
        let Message::RevokeAndAck(mut other) = raa[0].clone() else { unreachable!() };
        other.per_commitment_secret = *keys(11).commitment_seed.secret(1).unwrap();
        assert_eq!(
            p.alice.handle_message(&Message::RevokeAndAck(other)),
            Err(StateError::InvalidRevocationSecret)
        );
        assert_eq!(p.alice.encode(), alice_before);
        tamper(&mut raa);
        p.deliver(Bob, raa);
        assert_eq!(p.alice.counterparty_secrets().len(), 1);
    }

    #[test]
    fn state_htlc_limits_are_enforced_on_send_and_receive() {
        let mut p = open();
        let cid = p.alice.channel_id();
        let add = |id: u64, amount_msat: u64| {
            Message::UpdateAddHtlc(UpdateAddHtlc {
                channel_id: cid,
                id,
                amount_msat,
                payment_hash: hash(1),
                cltv_expiry: CLTV,
                onion_routing_packet: onion(1),
            })
        };
        // Below Bob's minimum of 1000 msat.
        assert_eq!(
            p.alice.send_add_htlc(999, hash(1), CLTV, onion(1)).unwrap_err(),
            StateError::HtlcBelowMinimum { amount_msat: 999, minimum_msat: 1000 }
        );
        assert_eq!(
            p.bob.handle_message(&add(0, 999)).unwrap_err(),
            StateError::HtlcBelowMinimum { amount_msat: 999, minimum_msat: 1000 }
        );
        // Over Bob's reserve: Bob holds 3 000 000 resonance and must keep 100 000.
        let too_much = PUSH_MSAT - 100_000_000 + 1;
        assert!(matches!(
            p.bob.send_add_htlc(too_much, hash(1), CLTV, onion(1)),
            Err(StateError::Channel(ChannelError::ReserveViolated { .. }))
        ));
        assert!(matches!(
            p.alice.handle_message(&add(0, too_much)),
            Err(StateError::Channel(ChannelError::ReserveViolated { .. }))
        ));
        // Exactly down to the reserve is fine.
        p.bob.send_add_htlc(too_much - 1, hash(1), CLTV, onion(1)).unwrap();
        // Ids must count up from 0.
        assert_eq!(
            p.bob.handle_message(&add(1, 5000)).unwrap_err(),
            StateError::UnexpectedHtlcId { expected: 0, got: 1 }
        );
        // Bob accepts at most 5 HTLCs from Alice.
        for n in 0..5 {
            p.add(Alice, 10_000_000, n);
        }
        assert_eq!(
            p.alice.send_add_htlc(10_000_000, hash(9), CLTV, onion(9)).unwrap_err(),
            StateError::TooManyHtlcs { count: 6, max: 5 }
        );
        assert_eq!(
            p.bob.handle_message(&add(5, 10_000_000)).unwrap_err(),
            StateError::TooManyHtlcs { count: 6, max: 5 }
        );
        // A fee update Alice cannot pay is refused.
        let huge = FeeRate(u64::from(u32::MAX));
        assert!(matches!(
            p.alice.send_update_fee(huge),
            Err(StateError::Channel(ChannelError::FunderCannotAffordFee { .. }))
        ));
        // Bob refuses a fee rate outside his range.
        assert_eq!(
            p.bob
                .handle_message(&Message::UpdateFee(UpdateFee {
                    channel_id: cid,
                    feerate_per_kb: 5
                }))
                .unwrap_err(),
            StateError::FeerateOutOfRange(FeeRate(5))
        );
        // Nothing may be fulfilled before it is committed.
        assert_eq!(
            p.bob.send_fulfill_htlc(0, preimage(0)).unwrap_err(),
            StateError::UnknownHtlc { id: 0 }
        );
    }

    #[test]
    fn state_malformed_failure_reaches_the_offerer() {
        let mut p = open();
        let (a0, b0) = p.balances();
        p.add(Alice, 40_000_000, 1);
        p.settle_all();
        p.take_events();
        assert_eq!(
            p.bob.send_fail_malformed_htlc(0, [0x5e; 32], 5).unwrap_err(),
            StateError::MissingBadOnion(5)
        );
        let cid = p.alice.channel_id();
        let no_badonion = Message::UpdateFailMalformedHtlc(UpdateFailMalformedHtlc {
            channel_id: cid,
            id: 0,
            sha256_of_onion: [0x5e; 32],
            failure_code: 5,
        });
        assert_eq!(
            p.alice.handle_message(&no_badonion).unwrap_err(),
            StateError::MissingBadOnion(5)
        );
        // An unknown HTLC cannot be settled.
        let unknown = Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
            channel_id: cid,
            id: 7,
            payment_preimage: [1; 32],
        });
        assert_eq!(
            p.alice.handle_message(&unknown).unwrap_err(),
            StateError::UnknownHtlc { id: 7 }
        );
        let m = p.bob.send_fail_malformed_htlc(0, [0x5e; 32], BADONION | 5).unwrap();
        p.step_done();
        p.deliver(Bob, vec![Message::UpdateFailMalformedHtlc(m)]);
        p.commit(Bob);
        p.settle_all();
        assert_eq!(p.balances(), (a0, b0));
        assert_eq!(
            p.take_events(),
            vec![(
                Alice,
                Event::HtlcFailed {
                    id: 0,
                    payment_hash: hash(1),
                    failure: HtlcFailure::Malformed {
                        sha256_of_onion: [0x5e; 32],
                        failure_code: BADONION | 5
                    },
                }
            )]
        );
        assert!(p.alice.preimage(&hash(1)).is_none());
    }

    #[test]
    fn state_in_flight_limit_and_dust_exposure() {
        let mut bob_cfg = bob_config();
        bob_cfg.max_htlc_value_in_flight_msat = 50_000_000;
        let mut alice_cfg = alice_config();
        alice_cfg.max_dust_htlc_exposure_msat = 2_000_000;
        let mut p = open_with(alice_cfg, bob_cfg);
        p.add(Alice, 30_000_000, 1);
        assert_eq!(
            p.alice.send_add_htlc(20_000_001, hash(2), CLTV, onion(2)).unwrap_err(),
            StateError::MaxInFlightExceeded { value_msat: 50_000_001, max_msat: 50_000_000 }
        );
        p.add(Alice, 1_500_000, 2); // dust on both commitments
        assert!(matches!(
            p.alice.send_add_htlc(600_000, hash(3), CLTV, onion(3)),
            Err(StateError::DustExposureExceeded { exposure_msat: 2_100_000, .. })
        ));
    }

    /// Disconnects both and runs channel_reestablish; returns what each retransmitted.
    fn reconnect(p: &mut Pair) -> (Vec<Message>, Vec<Message>) {
        let dropped_a = p.alice.peer_disconnected();
        let dropped_b = p.bob.peer_disconnected();
        assert!(dropped_a.is_empty() && dropped_b.is_empty());
        p.step_done();
        let re_a = p.alice.channel_reestablish().unwrap();
        let re_b = p.bob.channel_reestablish().unwrap();
        let from_a =
            p.alice.handle_message(&wire(&Message::ChannelReestablish(re_b))).unwrap().messages;
        let from_b =
            p.bob.handle_message(&wire(&Message::ChannelReestablish(re_a))).unwrap().messages;
        p.step_done();
        (from_a, from_b)
    }

    fn kinds(msgs: &[Message]) -> Vec<u16> {
        msgs.iter().map(Message::msg_type).collect()
    }

    #[test]
    fn state_reestablish_retransmits_lost_commitment_signed() {
        let mut p = open();
        let (a0, b0) = p.balances();
        let add = p.alice.send_add_htlc(70_000_000, hash(1), CLTV, onion(1)).unwrap();
        p.deliver_one(Alice, Message::UpdateAddHtlc(add));
        let _lost = p.alice.send_commitment().unwrap(); // persisted, never arrives
        p.step_done();
        // Only the funder sends update_fee.
        let fee = UpdateFee { channel_id: p.alice.channel_id(), feerate_per_kb: 20_000 };
        assert_eq!(p.alice.handle_message(&Message::UpdateFee(fee)), Err(StateError::NotFunder));
        let lost_alice = p.alice.clone();
        p.alice.peer_disconnected();
        // Nothing but channel_reestablish while disconnected.
        assert_eq!(p.alice.send_commitment().unwrap_err(), StateError::NotReestablished);
        p.alice = lost_alice;
        let (from_a, from_b) = reconnect(&mut p);
        // Bob forgot the uncommitted add (it was never signed), so Alice resends it with the
        // commitment_signed. Neither has revoked a commitment yet, so both repeat
        // channel_ready (BOLT 2), which the other ignores.
        assert_eq!(
            kinds(&from_a),
            vec![msg_type::CHANNEL_READY, msg_type::UPDATE_ADD_HTLC, msg_type::COMMITMENT_SIGNED]
        );
        assert_eq!(kinds(&from_b), vec![msg_type::CHANNEL_READY]);
        p.deliver(Bob, from_b);
        p.deliver(Alice, from_a);
        p.commit(Bob);
        assert_eq!(p.balances(), (a0 - 70_000_000, b0));
    }

    #[test]
    fn state_reestablish_retransmits_lost_revoke_and_ack_and_keeps_order() {
        let mut p = open();
        let (a0, b0) = p.balances();
        p.add(Alice, 80_000_000, 1);
        let cs = p.alice.send_commitment().unwrap();
        p.step_done();
        // Bob answers with revoke_and_ack, then its own commitment_signed: both are lost.
        let _raa = p.deliver_one(Alice, Message::CommitmentSigned(cs));
        let _cs_b = p.bob.send_commitment().unwrap();
        p.step_done();
        let (from_a, from_b) = reconnect(&mut p);
        assert!(from_a.is_empty());
        assert_eq!(kinds(&from_b), vec![msg_type::REVOKE_AND_ACK, msg_type::COMMITMENT_SIGNED]);
        p.deliver(Bob, from_b);
        assert_eq!(p.balances(), (a0 - 80_000_000, b0));
        assert!(
            p.take_events()
                .iter()
                .any(|(w, e)| *w == Bob && matches!(e, Event::HtlcReceived { .. }))
        );

        // Now the other order: Bob signs first, then revokes Alice's commitment.
        p.add(Bob, 9_000_000, 2);
        let cs_b = p.bob.send_commitment().unwrap();
        p.step_done();
        let f = p.alice.send_add_htlc(8_000_000, hash(3), CLTV, onion(3)).unwrap();
        p.deliver_one(Alice, Message::UpdateAddHtlc(f));
        let cs_a = p.alice.send_commitment().unwrap();
        p.step_done();
        // Bob gets Alice's commitment and revokes; that revocation and Bob's earlier
        // commitment_signed never reach Alice.
        let _ = p.deliver_one(Alice, Message::CommitmentSigned(cs_a));
        drop(cs_b);
        let (from_a, from_b) = reconnect(&mut p);
        assert!(from_a.is_empty(), "{:?}", kinds(&from_a));
        assert_eq!(
            kinds(&from_b),
            vec![msg_type::UPDATE_ADD_HTLC, msg_type::COMMITMENT_SIGNED, msg_type::REVOKE_AND_ACK]
        );
        p.deliver(Bob, from_b);
        p.settle_all();
        assert_eq!(p.balances(), (a0 - 88_000_000, b0 - 9_000_000));
    }

    #[test]
    fn state_uncommitted_updates_are_dropped_on_disconnect() {
        let mut p = open();
        let add = p.alice.send_add_htlc(5_000_000, hash(1), CLTV, onion(1)).unwrap();
        assert_eq!(add.id, 0);
        p.deliver_one(Alice, Message::UpdateAddHtlc(add));
        let dropped = p.alice.peer_disconnected();
        p.bob.peer_disconnected();
        assert!(
            matches!(&dropped[..], [Update::Add(a)] if a.id == 0 && a.amount_msat == 5_000_000)
        );
        assert_eq!(p.alice.next_htlc_id(), 0);
        assert!(p.bob.incoming_onion(0).is_none());
        let re_a = p.alice.channel_reestablish().unwrap();
        let re_b = p.bob.channel_reestablish().unwrap();
        let from_a = p.alice.handle_message(&Message::ChannelReestablish(re_b)).unwrap().messages;
        let from_b = p.bob.handle_message(&Message::ChannelReestablish(re_a)).unwrap().messages;
        assert_eq!(
            (kinds(&from_a), kinds(&from_b)),
            (vec![msg_type::CHANNEL_READY], vec![msg_type::CHANNEL_READY])
        );
        p.step_done();
        p.deliver(Alice, from_a);
        p.deliver(Bob, from_b);
        // The same id is used again.
        assert_eq!(p.add(Alice, 5_000_000, 1), 0);
        p.commit(Alice);
    }

    #[test]
    fn state_reestablish_detects_lost_data() {
        let mut p = open();
        let old_bob = p.bob.encode();
        p.add(Alice, 10_000_000, 1);
        p.commit(Alice);
        p.add(Bob, 10_000_000, 2);
        p.commit(Bob);
        // Bob restarts from an old backup.
        p.bob = Channel::decode(&old_bob).unwrap();
        p.alice.peer_disconnected();
        p.bob.peer_disconnected();
        let re_a = p.alice.channel_reestablish().unwrap();
        assert_eq!(
            p.bob.handle_message(&Message::ChannelReestablish(re_a.clone())).unwrap_err(),
            StateError::OutdatedState
        );
        // A forged claim (wrong secret) is refused as a mismatch, not as proof.
        let mut forged = re_a;
        forged.your_last_per_commitment_secret = [9; 32];
        assert!(matches!(
            p.bob.handle_message(&Message::ChannelReestablish(forged)),
            Err(StateError::ReestablishMismatch(_))
        ));
        // Alice, up to date, refuses Bob's stale view too.
        let re_b = p.bob.channel_reestablish().unwrap();
        assert!(p.alice.handle_message(&Message::ChannelReestablish(re_b)).is_err());
    }

    #[test]
    fn state_reestablish_before_channel_ready_resends_it() {
        let request = OpenRequest {
            temporary_channel_id: ChannelId([0x77; 32]),
            funding_amount: FUNDING,
            push_msat: 0,
            feerate: FEERATE,
            announce: true,
        };
        let (mut alice, open) =
            Channel::new_outbound(keys(1), GENESIS, alice_config(), request).unwrap();
        let (mut bob, accept) =
            Channel::new_inbound(keys(11), GENESIS, bob_config(), &open).unwrap();
        alice.handle_message(&Message::AcceptChannel(Box::new(accept))).unwrap();
        let created = alice.funding_created(funding_outpoint()).unwrap();
        let signed = bob.handle_message(&Message::FundingCreated(created)).unwrap().messages;
        alice.handle_message(&signed[0]).unwrap();
        let _lost_ready = bob.funding_depth(5).unwrap();
        alice.peer_disconnected();
        bob.peer_disconnected();
        let re_a = alice.channel_reestablish().unwrap();
        let re_b = bob.channel_reestablish().unwrap();
        assert!(
            alice.handle_message(&Message::ChannelReestablish(re_b)).unwrap().messages.is_empty()
        );
        let resent = bob.handle_message(&Message::ChannelReestablish(re_a)).unwrap().messages;
        assert_eq!(kinds(&resent), vec![msg_type::CHANNEL_READY]);
        alice.handle_message(&resent[0]).unwrap();
        let ready = alice.funding_depth(3).unwrap();
        assert_eq!(ready.events, vec![Event::ChannelReady]);
        let out = bob.handle_message(&ready.messages[0]).unwrap();
        assert_eq!(out.events, vec![Event::ChannelReady]);
    }

    #[test]
    fn state_open_refusals() {
        let request = OpenRequest {
            temporary_channel_id: ChannelId([0x77; 32]),
            funding_amount: FUNDING,
            push_msat: 0,
            feerate: FEERATE,
            announce: false,
        };
        let (_, open) = Channel::new_outbound(keys(1), GENESIS, alice_config(), request).unwrap();
        assert!(matches!(
            Channel::new_inbound(keys(11), BlockHash([1; 32]), bob_config(), &open),
            Err(StateError::WrongChain(_))
        ));
        let mut o = open.clone();
        o.to_self_delay = 5000;
        assert!(matches!(
            Channel::new_inbound(keys(11), GENESIS, bob_config(), &o),
            Err(StateError::UnacceptableParameter { field: "to_self_delay", .. })
        ));
        let mut o = open.clone();
        o.feerate_per_kb = 10;
        assert_eq!(
            Channel::new_inbound(keys(11), GENESIS, bob_config(), &o).unwrap_err(),
            StateError::FeerateOutOfRange(FeeRate(10))
        );
        let mut o = open.clone();
        o.max_accepted_htlcs = 484;
        assert!(Channel::new_inbound(keys(11), GENESIS, bob_config(), &o).is_err());
        let mut o = open.clone();
        o.dust_limit = Amount(100);
        assert!(Channel::new_inbound(keys(11), GENESIS, bob_config(), &o).is_err());
        let mut o = open.clone();
        o.funding_amount = Amount(3500);
        o.channel_reserve = Amount(500);
        assert!(
            matches!(
                Channel::new_inbound(keys(11), GENESIS, bob_config(), &o),
                Err(StateError::Channel(ChannelError::ReserveViolated { .. }))
            ),
            "the fee leaves the funder below its reserve"
        );
        o.funding_amount = Amount(3000);
        assert!(matches!(
            Channel::new_inbound(keys(11), GENESIS, bob_config(), &o),
            Err(StateError::Channel(ChannelError::FunderCannotAffordFee { .. }))
        ));
        // Same funding key as ours.
        assert!(Channel::new_inbound(keys(1), GENESIS, alice_config(), &open).is_err());
    }

    #[test]
    fn state_decode_rejects_garbage_and_never_panics() {
        let p = open();
        let bytes = p.alice.encode();
        assert_eq!(
            Channel::decode(&[]).unwrap_err(),
            StateError::Wire(WireError::Truncated { field: "version", needed: 1, available: 0 })
        );
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(Channel::decode(&v2).unwrap_err(), StateError::UnsupportedVersion(2));
        for len in 0..bytes.len() {
            assert!(Channel::decode(&bytes[..len]).is_err());
        }
        let extra = [&bytes[..], &[0]].concat();
        assert!(Channel::decode(&extra).is_err());
        // Flipping bytes never panics (some flips, e.g. in a signature, still decode).
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let _ = Channel::decode(&b);
        }
    }
}
