//! Any bytes: onion decoding and peeling with a fixed node key never panic.
//!
//! The first byte picks the mode. Mode 0 decodes the rest as a whole packet; since nobody else
//! knows the node's secret, a decoded packet must fail its HMAC (or its ephemeral key check).
//! Mode 1 gets past the HMAC: 32 bytes seed a valid ephemeral key, the next 1300 are the
//! `hop_payloads` and the packet is authenticated with the real shared secret, so the framing and
//! TLV decoders see arbitrary decrypted bytes and must answer with a typed error or a payload
//! that re-encodes to what it decoded from.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rnet_lightning::onion::{
    FinalPayload, ForwardPayload, HOP_PAYLOADS_LEN, NodeSecret, OnionError, OnionPacket,
    PACKET_LEN, Peeled, packet_hmac, peel_onion,
};

const ASSOCIATED_DATA: [u8; 32] = [0x42; 32];

fn node() -> &'static NodeSecret {
    static NODE: OnceLock<NodeSecret> = OnceLock::new();
    NODE.get_or_init(|| NodeSecret::from_ed25519_seed(&[1; 32]))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        if let Ok(packet) = OnionPacket::decode(rest) {
            assert_eq!(packet.encode(), rest);
            let result = peel_onion(node(), &packet, &ASSOCIATED_DATA);
            assert!(matches!(
                result,
                Err(OnionError::InvalidHmac | OnionError::InvalidEphemeralKey(_))
            ));
        }
        return;
    }
    let (Some(seed), Some(payloads)) = (rest.get(..32), rest.get(32..32 + HOP_PAYLOADS_LEN)) else {
        return;
    };
    let seed: [u8; 32] = seed.try_into().expect("32 bytes");
    let ephemeral_key = NodeSecret::from_ed25519_seed(&seed).x25519_public_key();
    let Ok(secret) = node().shared_secret(&ephemeral_key) else { return };
    let hop_payloads: Box<[u8; HOP_PAYLOADS_LEN]> =
        payloads.to_vec().into_boxed_slice().try_into().expect("1300 bytes");
    let hmac = packet_hmac(&secret, &hop_payloads, &ASSOCIATED_DATA);
    let packet = OnionPacket { ephemeral_key, hop_payloads, hmac };
    match peel_onion(node(), &packet, &ASSOCIATED_DATA) {
        Ok(Peeled::Forward { payload, next_packet, .. }) => {
            assert_eq!(ForwardPayload::decode(&payload.encode()), Ok(payload));
            assert_eq!(next_packet.encode().len(), PACKET_LEN);
        }
        Ok(Peeled::Final { payload, .. }) => {
            assert_eq!(FinalPayload::decode(&payload.encode()), Ok(payload));
        }
        Err(e) => assert!(matches!(
            e,
            OnionError::MalformedPayloadLength
                | OnionError::PayloadLengthOutOfRange(_)
                | OnionError::InvalidPayload(_)
        )),
    }
});
