//! Unit tests of the gossip messages: encoding, strict decoding, signatures and tampering.

use rnet_crypto::{SigningKey, keccak256d};
use rnet_primitives::{Amount, BlockHash, TxOut};

use super::*;
use crate::channel::funding_output;

fn chain() -> BlockHash {
    BlockHash::from_bytes([0x42; 32])
}

/// Two node keys and two funding keys, nodes ordered so that `node_1 < node_2`.
fn keys() -> (SigningKey, SigningKey, SigningKey, SigningKey) {
    let a = SigningKey::from_bytes(&[1; 32]);
    let b = SigningKey::from_bytes(&[2; 32]);
    let (n1, n2) =
        if a.public_key().as_bytes() < b.public_key().as_bytes() { (a, b) } else { (b, a) };
    (n1, n2, SigningKey::from_bytes(&[11; 32]), SigningKey::from_bytes(&[12; 32]))
}

fn announcement() -> ChannelAnnouncement {
    let (n1, n2, f1, f2) = keys();
    let contents = UnsignedChannelAnnouncement {
        features: vec![],
        chain_hash: chain(),
        short_channel_id: ShortChannelId::new(700_000, 5, 1).unwrap(),
        node_id_1: n1.public_key(),
        node_id_2: n2.public_key(),
        funding_key_1: f1.public_key(),
        funding_key_2: f2.public_key(),
    };
    ChannelAnnouncement::sign_all(contents, &n1, &n2, &f1, &f2).unwrap()
}

fn update(direction: u8) -> ChannelUpdate {
    let (n1, n2, _, _) = keys();
    let key = if direction == 0 { n1 } else { n2 };
    UnsignedChannelUpdate {
        chain_hash: chain(),
        short_channel_id: ShortChannelId::new(700_000, 5, 1).unwrap(),
        timestamp: 1_700_000_000,
        channel_flags: direction,
        cltv_expiry_delta: 40,
        htlc_minimum_msat: 1_000,
        fee_base_msat: 1_000,
        fee_proportional_millionths: 100,
        htlc_maximum_msat: 1_000_000_000,
    }
    .sign(&key)
}

#[test]
fn channel_announcement_round_trips_and_verifies() {
    let ann = announcement();
    let bytes = ann.encode().unwrap();
    assert_eq!(bytes.len(), 256 + 2 + 32 + 8 + 4 * 32);
    assert_eq!(ChannelAnnouncement::decode(&bytes).unwrap(), ann);
    ann.verify(&chain()).unwrap();
    // What is signed: Keccak-256d("rnet/gossip/v1" ‖ 0x0100 ‖ payload[256..]).
    let mut pre = b"rnet/gossip/v1".to_vec();
    pre.extend_from_slice(&[0x01, 0x00]);
    pre.extend_from_slice(&bytes[256..]);
    assert_eq!(ann.contents.signing_digest().unwrap(), keccak256d(&pre));
    let (n1, ..) = keys();
    assert!(n1.public_key().verify(&keccak256d(&pre), &ann.node_signature_1).is_ok());
}

#[test]
fn each_tampered_signature_is_reported_by_role() {
    let good = announcement();
    let roles = [
        SignatureRole::Node1,
        SignatureRole::Node2,
        SignatureRole::Funding1,
        SignatureRole::Funding2,
    ];
    for (i, role) in roles.into_iter().enumerate() {
        let mut bytes = good.encode().unwrap();
        bytes[i * 64 + 5] ^= 1;
        let bad = ChannelAnnouncement::decode(&bytes).unwrap();
        assert_eq!(bad.verify(&chain()), Err(GossipError::InvalidSignature(role)));
    }
    // A signature by the wrong key in the right slot.
    let mut swapped = good.clone();
    swapped.funding_signature_1 = good.funding_signature_2;
    assert_eq!(
        swapped.verify(&chain()),
        Err(GossipError::InvalidSignature(SignatureRole::Funding1))
    );
}

#[test]
fn every_tampered_signed_byte_is_rejected() {
    let bytes = announcement().encode().unwrap();
    // Every byte after the signatures except the chain hash (checked first) and the key bytes
    // that stop decoding to points: flipping any signed bit must break verification.
    for i in 256..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        if let Ok(a) = ChannelAnnouncement::decode(&b) {
            assert!(a.verify(&chain()).is_err(), "byte {i} not covered");
        }
    }
}

#[test]
fn announcement_rules() {
    let (n1, n2, f1, f2) = keys();
    let base = announcement().contents;
    // Wrong chain.
    assert_eq!(
        announcement().verify(&BlockHash::from_bytes([0; 32])),
        Err(GossipError::WrongChain)
    );
    // Node ids out of order (signed correctly, still refused).
    let mut c = base.clone();
    std::mem::swap(&mut c.node_id_1, &mut c.node_id_2);
    let a = ChannelAnnouncement::sign_all(c, &n2, &n1, &f1, &f2).unwrap();
    assert_eq!(a.verify(&chain()), Err(GossipError::NodeIdsNotOrdered));
    // Equal funding keys.
    let mut c = base.clone();
    c.funding_key_2 = c.funding_key_1;
    let a = ChannelAnnouncement::sign_all(c, &n1, &n2, &f1, &f1).unwrap();
    assert_eq!(a.verify(&chain()), Err(GossipError::DuplicateFundingKey));
    // A weak (identity) funding key.
    let mut c = base;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    c.funding_key_2 = rnet_crypto::PublicKey::from_bytes(&identity).unwrap();
    let a = ChannelAnnouncement { contents: c, ..announcement() };
    assert_eq!(a.verify(&chain()), Err(GossipError::WeakKey("funding_key_2")));
}

#[test]
fn funding_script_is_the_channel_layers_2_of_2() {
    let ann = announcement();
    let (_, _, f1, f2) = keys();
    let expected = funding_output(f2.public_key(), f1.public_key(), Amount(1)).unwrap();
    assert_eq!(expected_funding_script_pubkey(&ann.contents).unwrap(), expected.script_pubkey);
    let out = TxOut { value: Amount(5_000_000), script_pubkey: expected.script_pubkey.clone() };
    assert_eq!(check_funding_output(&ann.contents, &out), Ok(Amount(5_000_000)));
    let mut wrong = out;
    wrong.script_pubkey[5] ^= 1;
    assert_eq!(
        check_funding_output(&ann.contents, &wrong),
        Err(GossipError::FundingScriptMismatch)
    );
}

#[test]
fn channel_update_round_trips_verifies_and_rejects_tampering() {
    let (n1, n2, _, _) = keys();
    let upd = update(1);
    let bytes = upd.encode();
    assert_eq!(bytes.len(), CHANNEL_UPDATE_LEN);
    assert_eq!(bytes[64 + 32 + 8 + 4], MESSAGE_FLAG_MUST_BE_ONE);
    assert_eq!(ChannelUpdate::decode(&bytes).unwrap(), upd);
    upd.verify(&chain(), &n2.public_key()).unwrap();
    assert_eq!(upd.contents.direction(), 1);
    assert!(!upd.contents.is_disabled());
    // Signed by node 2, so node 1's key does not verify it.
    assert_eq!(
        upd.verify(&chain(), &n1.public_key()),
        Err(GossipError::InvalidSignature(SignatureRole::Update))
    );
    // Any flipped bit after the signature (other than refused flag bits) breaks it.
    for i in 64..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        match ChannelUpdate::decode(&b) {
            Ok(u) => assert!(u.verify(&chain(), &n2.public_key()).is_err(), "byte {i}"),
            Err(e) => assert!(matches!(e, GossipError::InvalidMessageFlags(_)), "{e:?}"),
        }
    }
}

#[test]
fn channel_update_strict_decoding() {
    let bytes = update(0).encode();
    assert!(matches!(
        ChannelUpdate::decode(&bytes[..135]),
        Err(GossipError::Truncated { field: "htlc_maximum_msat", needed: 8, available: 7 })
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(ChannelUpdate::decode(&long), Err(GossipError::TrailingBytes(1)));
    let flags = 64 + 32 + 8 + 4;
    for mf in [0u8, 3, 0x81] {
        let mut b = bytes.clone();
        b[flags] = mf;
        assert_eq!(ChannelUpdate::decode(&b), Err(GossipError::InvalidMessageFlags(mf)));
    }
    let mut b = bytes.clone();
    b[flags + 1] = 0x04;
    assert_eq!(ChannelUpdate::decode(&b), Err(GossipError::InvalidChannelFlags(4)));
    // min > max is refused at verification.
    let (n1, ..) = keys();
    let mut c = update(0).contents;
    c.htlc_minimum_msat = c.htlc_maximum_msat + 1;
    let u = c.sign(&n1);
    assert!(matches!(
        u.verify(&chain(), &n1.public_key()),
        Err(GossipError::HtlcMinimumAboveMaximum { .. })
    ));
}

fn node_announcement() -> NodeAnnouncement {
    let (n1, ..) = keys();
    let mut alias = [0u8; 32];
    alias[..5].copy_from_slice(b"alice");
    UnsignedNodeAnnouncement {
        features: vec![0x02],
        timestamp: 1_700_000_000,
        node_id: n1.public_key(),
        rgb_color: [1, 2, 3],
        alias,
        addresses: vec![
            NetAddress::Ipv4 { addr: [10, 0, 0, 1], port: 9735 },
            NetAddress::Ipv6 { addr: [0xfe; 16], port: 9735 },
            NetAddress::TorV3 { ed25519_pubkey: [7; 32], checksum: 0xbeef, version: 3, port: 9735 },
            NetAddress::Dns { hostname: "ln.example.org".into(), port: 9735 },
        ],
        unknown_addresses: vec![0x09, 1, 2, 3],
    }
    .sign(&n1)
    .unwrap()
}

#[test]
fn node_announcement_round_trips_and_verifies() {
    let na = node_announcement();
    let bytes = na.encode().unwrap();
    assert_eq!(NodeAnnouncement::decode(&bytes).unwrap(), na);
    na.verify().unwrap();
    for i in 64..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        if let Ok(n) = NodeAnnouncement::decode(&b) {
            assert!(n.verify().is_err(), "byte {i} not covered");
        }
    }
    let mut b = bytes.clone();
    b[3] ^= 1;
    assert_eq!(
        NodeAnnouncement::decode(&b).unwrap().verify(),
        Err(GossipError::InvalidSignature(SignatureRole::Node))
    );
}

#[test]
fn node_announcement_address_rules() {
    let (n1, ..) = keys();
    let mut c = node_announcement().contents;
    c.addresses = vec![NetAddress::Dns { hostname: "bad host".into(), port: 1 }];
    c.unknown_addresses.clear();
    assert_eq!(c.clone().sign(&n1), Err(GossipError::InvalidHostname));
    c.addresses.clear();
    c.unknown_addresses = vec![1, 2, 3];
    assert!(c.sign(&n1).is_err(), "unknown tail starting with a known type is not canonical");
    // A truncated IPv4 descriptor inside addrlen.
    let mut bytes = node_announcement().encode().unwrap();
    let addr_start = 64 + 2 + 1 + 4 + 32 + 3 + 32;
    bytes.truncate(addr_start);
    bytes.extend_from_slice(&[0, 3, 1, 10, 0]);
    assert!(matches!(NodeAnnouncement::decode(&bytes), Err(GossipError::Truncated { .. })));
}

#[test]
fn dispatch_by_type() {
    let upd = update(0);
    let m = GossipMessage::decode(CHANNEL_UPDATE_TYPE, &upd.encode()).unwrap();
    assert_eq!(m, GossipMessage::ChannelUpdate(upd));
    assert_eq!(m.msg_type(), 258);
    assert_eq!(m.encode().unwrap(), upd.encode());
    assert_eq!(GossipMessage::decode(259, &[]), Err(GossipError::UnknownType(259)));
    let ann = announcement();
    let m = GossipMessage::decode(256, &ann.encode().unwrap()).unwrap();
    assert_eq!(m, GossipMessage::ChannelAnnouncement(Box::new(ann)));
    assert_eq!(GossipMessage::decode(257, &vec![0; 70_000]), Err(GossipError::TooLong(70_000)));
}

#[test]
fn feature_parity() {
    assert!(!has_unknown_even_feature(&[]));
    assert!(!has_unknown_even_feature(&[0x02, 0xaa]));
    assert!(has_unknown_even_feature(&[0x01, 0x00]));
    assert!(has_unknown_even_feature(&[0x00, 0x04]));
}
