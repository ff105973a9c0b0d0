//! Onion routing end to end with fixed keys: construction, hop-by-hop peeling, pinned packet
//! bytes, tampering, limits, error onions and their attribution, and "never panics" properties.

use proptest::prelude::*;
use rnet_crypto::{PublicKey, SigningKey, keccak256d};
use rnet_lightning::onion::tlv::{TlvReader, bigsize_len};
use rnet_lightning::onion::{
    DecodedFailure, ERROR_PACKET_LEN, ErrorPacketError, FailureMessage, FinalPayload,
    ForwardPayload, HOP_PAYLOADS_LEN, HopPayload, KeyError, MAX_HOPS, NodeSecret, OnionError,
    OnionPacket, PACKET_LEN, Peeled, SessionKey, SharedSecret, construct_onion,
    create_error_packet, decode_error_packet, packet_hmac, peel_onion, wrap_error_packet,
};
use sha2::{Digest, Sha256};

/// Hop `i` (0-based) of a route is the node with seed `[i + 1; 32]`.
fn node_key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[i as u8 + 1; 32])
}

fn route(n: usize) -> Vec<PublicKey> {
    (0..n).map(|i| node_key(i).public_key()).collect()
}

fn session() -> SessionKey {
    SessionKey::from_bytes([0x5e; 32])
}

fn payment_hash() -> [u8; 32] {
    keccak256d(b"onion test preimage")
}

fn final_payload(metadata: Option<Vec<u8>>) -> FinalPayload {
    FinalPayload {
        amt_to_forward: 100_000,
        outgoing_cltv_value: 800_040,
        payment_secret: [0xa5; 32],
        total_msat: 250_000,
        payment_metadata: metadata,
    }
}

/// Forward payloads with decreasing amounts and expiries, then the final payload.
fn payloads(n: usize) -> Vec<HopPayload> {
    let mut out: Vec<HopPayload> = (0..n - 1)
        .map(|i| {
            HopPayload::Forward(ForwardPayload {
                amt_to_forward: 100_000 + 1_000 * (n - 1 - i) as u64,
                outgoing_cltv_value: 800_040 + 40 * (n - 1 - i) as u32,
                short_channel_id: (700_000u64 + i as u64) << 40 | (i as u64) << 16 | 1,
            })
        })
        .collect();
    out.push(HopPayload::Final(final_payload(None)));
    out
}

/// Peel the packet through every hop, checking each hop's payload and shared secret.
fn walk(n: usize, packet: &OnionPacket, secrets: &[SharedSecret], ad: &[u8]) {
    let expected = payloads(n);
    let mut current = packet.clone();
    let mut seen_keys = Vec::new();
    for (i, want) in expected.iter().enumerate() {
        seen_keys.push(current.ephemeral_key);
        // Every hop gets the packet over the wire.
        let wire = current.encode();
        assert_eq!(wire.len(), PACKET_LEN);
        let received = OnionPacket::decode(&wire).unwrap();
        let peeled = peel_onion(&NodeSecret::from_signing_key(&node_key(i)), &received, ad)
            .unwrap_or_else(|e| panic!("hop {i} failed to peel: {e}"));
        assert_eq!(peeled.shared_secret().as_bytes(), secrets[i].as_bytes(), "hop {i}");
        match (peeled, want) {
            (Peeled::Forward { payload, next_packet, .. }, HopPayload::Forward(want)) => {
                assert_eq!(&payload, want, "hop {i}");
                current = next_packet;
            }
            (Peeled::Final { payload, .. }, HopPayload::Final(want)) => {
                assert_eq!(i, n - 1, "only the last hop is final");
                assert_eq!(&payload, want);
            }
            (got, _) => panic!("hop {i}: wrong kind {got:?}"),
        }
    }
    // The blinded ephemeral keys differ at every hop, so hops cannot link the packet.
    seen_keys.sort();
    seen_keys.dedup();
    assert_eq!(seen_keys.len(), n);
}

/// The pinned values below were reproduced by an independent Python implementation of
/// `docs/lightning.md` §2 (hand-written Montgomery ladder, no shared code).
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn five_hop_route_peels_in_order_and_is_pinned() {
    let ad = payment_hash();
    assert_eq!(hex::encode(ad), "591ccb7a1293bf7f2c6504b2c07daa42c057dc444e70e05cffdbf84ff1e48099");
    let (packet, secrets) = construct_onion(&session(), &route(5), &payloads(5), &ad).unwrap();
    assert_eq!(secrets.len(), 5);
    walk(5, &packet, &secrets, &ad);
    let bytes = packet.encode();
    assert_eq!(
        hex::encode(&bytes[..33]),
        "00675907571c4b13d77c74051d4df41d04000e1ccc49fe8abc6080cf211a68713f",
        "version and first ephemeral key"
    );
    assert_eq!(
        sha256_hex(&bytes),
        "c8ab87b9deddd425a0bb3edeb4ba62387713df0ad7e5d20280eba1540b6fdbd8"
    );
}

#[test]
fn twenty_hop_route_peels_in_order_and_is_pinned() {
    let ad = payment_hash();
    let (packet, secrets) = construct_onion(&session(), &route(20), &payloads(20), &ad).unwrap();
    walk(20, &packet, &secrets, &ad);
    assert_eq!(
        sha256_hex(&packet.encode()),
        "29428b75373cbc0540b92ff9734badf6d1049f4cf8f5eff5c11149fd33b379c9"
    );
}

#[test]
fn single_hop_route_is_final_immediately() {
    let ad = payment_hash();
    let (packet, secrets) = construct_onion(&session(), &route(1), &payloads(1), &ad).unwrap();
    walk(1, &packet, &secrets, &ad);
}

#[test]
fn construction_is_deterministic_and_session_key_dependent() {
    let ad = payment_hash();
    let (a, _) = construct_onion(&session(), &route(3), &payloads(3), &ad).unwrap();
    let (b, _) = construct_onion(&session(), &route(3), &payloads(3), &ad).unwrap();
    let (c, _) =
        construct_onion(&SessionKey::from_bytes([0x5f; 32]), &route(3), &payloads(3), &ad).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.ephemeral_key, c.ephemeral_key);
    assert_ne!(a.hop_payloads, c.hop_payloads);
}

#[test]
fn every_tampered_byte_fails_at_the_receiving_hop() {
    let ad = payment_hash();
    let (packet, _) = construct_onion(&session(), &route(3), &payloads(3), &ad).unwrap();
    let node0 = NodeSecret::from_signing_key(&node_key(0));
    let wire = packet.encode();
    for pos in 0..PACKET_LEN {
        let mut bad = wire.clone();
        bad[pos] ^= 0x01;
        let result = OnionPacket::decode(&bad).and_then(|p| peel_onion(&node0, &p, &ad));
        match pos {
            0 => assert_eq!(result.err(), Some(OnionError::UnknownVersion(1))),
            // A changed ephemeral key is either unusable or yields another secret.
            1..=32 => assert!(
                matches!(result, Err(OnionError::InvalidHmac | OnionError::InvalidEphemeralKey(_))),
                "byte {pos}: {result:?}"
            ),
            _ => assert_eq!(result.err(), Some(OnionError::InvalidHmac), "byte {pos}"),
        }
    }

    // Tampering by an intermediate hop: hop 0 forwards a modified packet, hop 1 refuses it.
    let Ok(Peeled::Forward { next_packet, .. }) = peel_onion(&node0, &packet, &ad) else {
        panic!("hop 0 forwards");
    };
    let node1 = NodeSecret::from_signing_key(&node_key(1));
    let next = next_packet.encode();
    for pos in (33..PACKET_LEN).step_by(7) {
        let mut bad = next.clone();
        bad[pos] ^= 0x80;
        let bad = OnionPacket::decode(&bad).unwrap();
        assert_eq!(peel_onion(&node1, &bad, &ad).err(), Some(OnionError::InvalidHmac));
    }
    assert!(peel_onion(&node1, &next_packet, &ad).is_ok());
}

#[test]
fn wrong_associated_data_or_wrong_node_fails() {
    let ad = payment_hash();
    let (packet, _) = construct_onion(&session(), &route(5), &payloads(5), &ad).unwrap();
    let node0 = NodeSecret::from_signing_key(&node_key(0));
    let mut other = ad;
    other[31] ^= 1;
    assert_eq!(peel_onion(&node0, &packet, &other).err(), Some(OnionError::InvalidHmac));
    assert_eq!(peel_onion(&node0, &packet, &ad[..31]).err(), Some(OnionError::InvalidHmac));
    let node1 = NodeSecret::from_signing_key(&node_key(1));
    assert_eq!(peel_onion(&node1, &packet, &ad).err(), Some(OnionError::InvalidHmac));
}

#[test]
fn route_limits_are_enforced() {
    let ad = payment_hash();
    assert_eq!(
        construct_onion(&session(), &route(21), &payloads(21), &ad).err(),
        Some(OnionError::TooManyHops(21))
    );
    assert_eq!(construct_onion(&session(), &[], &[], &ad).err(), Some(OnionError::EmptyRoute));
    assert_eq!(
        construct_onion(&session(), &route(3), &payloads(2), &ad).err(),
        Some(OnionError::HopCountMismatch { keys: 3, payloads: 2 })
    );
    // A final payload before the end, and a forward payload at the end.
    let mut p = payloads(3);
    p.swap(1, 2);
    assert_eq!(
        construct_onion(&session(), &route(3), &p, &ad).err(),
        Some(OnionError::MisplacedPayload { index: 1 })
    );
    assert_eq!(
        construct_onion(&session(), &route(2), &payloads(3)[..2], &ad).err(),
        Some(OnionError::MisplacedPayload { index: 1 })
    );
    assert_eq!(
        construct_onion(&SessionKey::from_bytes([0; 32]), &route(2), &payloads(2), &ad).err(),
        Some(OnionError::InvalidSessionKey)
    );
    // The Edwards identity is a valid ZIP-215 key but of small order.
    let mut keys = route(3);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    keys[2] = PublicKey::from_bytes(&identity).unwrap();
    assert_eq!(
        construct_onion(&session(), &keys, &payloads(3), &ad).err(),
        Some(OnionError::InvalidHopKey { index: 2, reason: KeyError::SmallOrder })
    );
}

#[test]
fn payloads_fill_exactly_1300_bytes_and_no_more() {
    let ad = payment_hash();
    let n = 5;
    let framed = |p: &HopPayload| {
        let len = p.encode().len();
        bigsize_len(len as u64) + len + 32
    };
    let forward: usize = payloads(n)[..n - 1].iter().map(framed).sum();
    // Find the metadata length that makes the final frame take exactly the remaining space.
    let room = HOP_PAYLOADS_LEN - forward;
    let meta_len = (0..HOP_PAYLOADS_LEN)
        .find(|&m| framed(&HopPayload::Final(final_payload(Some(vec![7; m])))) == room)
        .expect("an exact fit exists");
    let mut p = payloads(n);
    p[n - 1] = HopPayload::Final(final_payload(Some(vec![7; meta_len])));
    let (packet, _) = construct_onion(&session(), &route(n), &p, &ad).unwrap();
    let mut current = packet;
    for i in 0..n {
        match peel_onion(&NodeSecret::from_signing_key(&node_key(i)), &current, &ad).unwrap() {
            Peeled::Forward { next_packet, .. } => current = next_packet,
            Peeled::Final { payload, .. } => {
                assert_eq!(i, n - 1);
                assert_eq!(payload.payment_metadata.as_deref(), Some(&vec![7; meta_len][..]));
            }
        }
    }
    p[n - 1] = HopPayload::Final(final_payload(Some(vec![7; meta_len + 1])));
    assert_eq!(
        construct_onion(&session(), &route(n), &p, &ad).err(),
        Some(OnionError::RouteTooLarge { needed: HOP_PAYLOADS_LEN + 1 })
    );
    // A single payload too large for the packet on its own.
    let huge = vec![HopPayload::Final(final_payload(Some(vec![0; 2000])))];
    assert!(matches!(
        construct_onion(&session(), &route(1), &huge, &ad),
        Err(OnionError::RouteTooLarge { .. })
    ));
}

/// Peel a 5-hop onion and return the shared secret each hop derived.
fn hop_secrets(n: usize) -> (Vec<SharedSecret>, Vec<SharedSecret>) {
    let ad = payment_hash();
    let (packet, origin) = construct_onion(&session(), &route(n), &payloads(n), &ad).unwrap();
    let mut hops = Vec::new();
    let mut current = packet;
    for i in 0..n {
        let peeled =
            peel_onion(&NodeSecret::from_signing_key(&node_key(i)), &current, &ad).unwrap();
        hops.push(peeled.shared_secret().clone());
        if let Peeled::Forward { next_packet, .. } = peeled {
            current = next_packet;
        }
    }
    (origin, hops)
}

/// The failure hop `i` reports (a different one per hop, so attribution is visible).
fn failure_for(i: usize) -> FailureMessage {
    match i {
        0 => FailureMessage::TemporaryChannelFailure { channel_update: vec![] },
        1 => FailureMessage::FeeInsufficient { htlc_msat: 101_000, channel_update: vec![1; 136] },
        2 => FailureMessage::UnknownNextPeer,
        3 => FailureMessage::IncorrectCltvExpiry { cltv_expiry: 800_080, channel_update: vec![] },
        _ => {
            FailureMessage::IncorrectOrUnknownPaymentDetails { htlc_msat: 100_000, height: 800_000 }
        }
    }
}

/// The error packet as it reaches the origin when hop `i` fails: built by hop `i` and wrapped
/// by hops `i - 1` down to 0, each with the secret it derived while peeling.
fn returned_error(hops: &[SharedSecret], i: usize, failure: &FailureMessage) -> Vec<u8> {
    let mut packet = create_error_packet(&hops[i], failure).unwrap();
    for secret in hops[..i].iter().rev() {
        packet = wrap_error_packet(secret, &packet);
    }
    packet
}

#[test]
fn error_from_each_hop_is_attributed_to_that_hop() {
    let (origin, hops) = hop_secrets(5);
    for i in 0..5 {
        let packet = returned_error(&hops, i, &failure_for(i));
        assert_eq!(packet.len(), ERROR_PACKET_LEN);
        assert_eq!(
            decode_error_packet(&origin, &packet),
            Ok(DecodedFailure { hop_index: i, message: failure_for(i) }),
            "hop {i}"
        );
    }
}

#[test]
fn corrupted_errors_are_unattributable() {
    let (origin, hops) = hop_secrets(5);
    let packet = returned_error(&hops, 3, &failure_for(3));
    for pos in 0..ERROR_PACKET_LEN {
        let mut bad = packet.clone();
        bad[pos] ^= 0x04;
        assert_eq!(
            decode_error_packet(&origin, &bad),
            Err(ErrorPacketError::Unattributable),
            "byte {pos}"
        );
    }
    // An intermediate hop (1) corrupting what hop 3 sent: nobody's HMAC verifies.
    let mut from_hop3 = create_error_packet(&hops[3], &failure_for(3)).unwrap();
    from_hop3 = wrap_error_packet(&hops[2], &from_hop3);
    from_hop3[100] ^= 0xff;
    from_hop3 = wrap_error_packet(&hops[1], &from_hop3);
    from_hop3 = wrap_error_packet(&hops[0], &from_hop3);
    assert_eq!(decode_error_packet(&origin, &from_hop3), Err(ErrorPacketError::Unattributable));
    // Wrong secrets, or a route that ends before the erring hop.
    let (other_origin, _) = {
        let ad = payment_hash();
        let s = SessionKey::from_bytes([0x11; 32]);
        let (_, o) = construct_onion(&s, &route(5), &payloads(5), &ad).unwrap();
        (o, ())
    };
    assert_eq!(decode_error_packet(&other_origin, &packet), Err(ErrorPacketError::Unattributable));
    assert_eq!(decode_error_packet(&origin[..3], &packet), Err(ErrorPacketError::Unattributable));
    assert_eq!(decode_error_packet(&origin[..4], &packet).map(|d| d.hop_index), Ok(3));
    // Random bytes of the right length.
    assert_eq!(
        decode_error_packet(&origin, &[0x3c; ERROR_PACKET_LEN]),
        Err(ErrorPacketError::Unattributable)
    );
    assert_eq!(
        decode_error_packet(&origin, &packet[..100]),
        Err(ErrorPacketError::InvalidLength(100))
    );
    assert_eq!(decode_error_packet(&[], &packet), Err(ErrorPacketError::EmptyRoute));
}

#[test]
fn matches_past_the_route_end_are_ignored() {
    // The last hop fully controls what the origin sees after stripping every real layer; a
    // packet that verifies under the origin's throw-away padding key must not be attributed.
    let (origin, hops) = hop_secrets(5);
    let dummy = SharedSecret::from_bytes([0; 32]);
    let mut packet = create_error_packet(&dummy, &FailureMessage::TemporaryNodeFailure).unwrap();
    for secret in hops.iter().rev() {
        packet = wrap_error_packet(secret, &packet);
    }
    assert_eq!(decode_error_packet(&origin, &packet), Err(ErrorPacketError::Unattributable));
}

#[test]
fn hop_can_answer_an_unusable_payload_with_an_encrypted_failure() {
    // A hop whose payload fails to decode still derives the shared secret and reports where.
    let ad = payment_hash();
    let (packet, origin) = construct_onion(&session(), &route(2), &payloads(2), &ad).unwrap();
    let node0 = NodeSecret::from_signing_key(&node_key(0));
    let secret = node0.shared_secret(&packet.ephemeral_key).unwrap();
    let failure = FailureMessage::InvalidOnionPayload { location: Some((6, 12)) };
    let err = create_error_packet(&secret, &failure).unwrap();
    assert_eq!(
        decode_error_packet(&origin, &err),
        Ok(DecodedFailure { hop_index: 0, message: failure })
    );
}

fn valid_ephemeral(seed: [u8; 32]) -> [u8; 32] {
    NodeSecret::from_ed25519_seed(&seed).x25519_public_key()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn peel_never_panics_on_arbitrary_packets(
        mut bytes in proptest::collection::vec(any::<u8>(), PACKET_LEN),
        version_zero in any::<bool>(),
        ad in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        if version_zero {
            bytes[0] = 0;
        }
        let node = NodeSecret::from_signing_key(&node_key(0));
        if let Ok(packet) = OnionPacket::decode(&bytes) {
            prop_assert_eq!(packet.encode(), bytes.clone());
            // Without the node's secret nobody can make the HMAC verify.
            let result = peel_onion(&node, &packet, &ad);
            prop_assert!(matches!(
                result,
                Err(OnionError::InvalidHmac | OnionError::InvalidEphemeralKey(_))
            ));
        }
    }

    #[test]
    fn peel_never_panics_on_authenticated_garbage(
        seed in any::<[u8; 32]>(),
        payloads in proptest::collection::vec(any::<u8>(), HOP_PAYLOADS_LEN),
        ad in any::<[u8; 32]>(),
    ) {
        // A valid ephemeral key and a correct HMAC over arbitrary bytes: the hop decrypts them
        // and must reject the framing or the TLV stream with a typed error (or accept them).
        let node = NodeSecret::from_signing_key(&node_key(0));
        let ephemeral_key = valid_ephemeral(seed);
        let secret = node.shared_secret(&ephemeral_key).unwrap();
        let hop_payloads: Box<[u8; HOP_PAYLOADS_LEN]> = payloads.try_into().unwrap();
        let hmac = packet_hmac(&secret, &hop_payloads, &ad);
        let packet = OnionPacket { ephemeral_key, hop_payloads, hmac };
        match peel_onion(&node, &packet, &ad) {
            Ok(Peeled::Forward { next_packet, .. }) => {
                prop_assert_eq!(next_packet.encode().len(), PACKET_LEN);
            }
            Ok(Peeled::Final { .. }) => {}
            Err(e) => prop_assert!(matches!(
                e,
                OnionError::MalformedPayloadLength
                    | OnionError::PayloadLengthOutOfRange(_)
                    | OnionError::InvalidPayload(_)
            ), "{e:?}"),
        }
    }

    #[test]
    fn tlv_and_payload_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = TlvReader::new(&bytes).count();
        if let Ok(p) = ForwardPayload::decode(&bytes) {
            prop_assert_eq!(ForwardPayload::decode(&p.encode()), Ok(p));
        }
        if let Ok(p) = FinalPayload::decode(&bytes) {
            prop_assert_eq!(FinalPayload::decode(&p.encode()), Ok(p));
        }
        let _ = FailureMessage::decode(&bytes);
    }

    #[test]
    fn payloads_round_trip(
        amt in any::<u64>(),
        cltv in any::<u32>(),
        scid in any::<u64>(),
        secret in any::<[u8; 32]>(),
        total in any::<u64>(),
        meta in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
    ) {
        let f = ForwardPayload { amt_to_forward: amt, outgoing_cltv_value: cltv, short_channel_id: scid };
        prop_assert_eq!(ForwardPayload::decode(&f.encode()), Ok(f));
        let p = FinalPayload {
            amt_to_forward: amt,
            outgoing_cltv_value: cltv,
            payment_secret: secret,
            total_msat: total,
            payment_metadata: meta,
        };
        prop_assert_eq!(FinalPayload::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn error_decoding_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        n in 1usize..=MAX_HOPS,
    ) {
        let secrets: Vec<SharedSecret> =
            (0..n).map(|i| SharedSecret::from_bytes([i as u8 + 1; 32])).collect();
        let _ = decode_error_packet(&secrets, &bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn random_routes_peel_and_attribute(session_bytes in any::<[u8; 32]>(), n in 1usize..=MAX_HOPS, fail_at in 0usize..MAX_HOPS) {
        let ad = payment_hash();
        let session = SessionKey::from_bytes(session_bytes);
        let Ok((packet, origin)) = construct_onion(&session, &route(n), &payloads(n), &ad) else {
            // Only a session key that is zero mod ℓ fails.
            return Ok(());
        };
        walk(n, &packet, &origin, &ad);
        let i = fail_at % n;
        let mut hops = Vec::new();
        let mut current = packet;
        for k in 0..n {
            let peeled = peel_onion(&NodeSecret::from_signing_key(&node_key(k)), &current, &ad).unwrap();
            hops.push(peeled.shared_secret().clone());
            if let Peeled::Forward { next_packet, .. } = peeled {
                current = next_packet;
            }
        }
        let err = returned_error(&hops, i, &failure_for(i));
        prop_assert_eq!(decode_error_packet(&origin, &err).map(|d| d.hop_index), Ok(i));
    }
}
