//! BOLT 4's own test vectors (`bolt04/onion-test.json`, `bolt04/onion-error-test.json`) for the
//! layers that do not depend on the curve: key generation, ChaCha20 streams, payload framing,
//! filler, HMACs and error packets. Given BOLT's shared secrets (which on secp256k1 come from
//! the same session key and hop keys), our code must reproduce BOLT's bytes exactly; only the
//! ephemeral key in the packet header differs (ours is an X25519 key).

use super::failure::{FailureMessage, create_error_packet, decode_error_packet, wrap_error_packet};
use super::keys::{KeyType, SessionKey, SharedSecret};
use super::packet::wrap_with_secrets;
use super::tlv::read_bigsize;

const PAYLOADS: [&str; 5] = [
    "1202023a98040205dc06080000000000000001",
    concat!(
        "52020236b00402057806080000000000000002fd02013c0102030405060708090a0b0c0d0e0f010203040506",
        "0708090a0b0c0d0e0f0102030405060708090a0b0c0d0e0f0102030405060708090a0b0c0d0e0f",
    ),
    "12020230d4040204e206080000000000000003",
    "1202022710040203e806080000000000000004",
    concat!(
        "fd011002022710040203e8082224a33562c54507a9334e79f0dc4f17d407e6d7c61f0e2f3d0d38599502f617",
        "042710fd012de02a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a",
        "2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a",
        "2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a",
        "2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a",
        "2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a",
        "2a2a2a2a2a2a2a2a2a2a2a",
    ),
];
const ONION: &str = concat!(
    "0002eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619f7f3416a5aa36dc7eeb3ec6d421e",
    "9615471ab870a33ac07fa5d5a51df0a8823aabe3fea3f90d387529d4f72837f9e687230371ccd8d263072206dbed0234",
    "f6505e21e282abd8c0e4f5b9ff8042800bbab065036eadd0149b37f27dde664725a49866e052e809d2b0198ab9610faa",
    "656bbf4ec516763a59f8f42c171b179166ba38958d4f51b39b3e98706e2d14a2dafd6a5df808093abfca5aeaaca16ede",
    "d5db7d21fb0294dd1a163edf0fb445d5c8d7d688d6dd9c541762bf5a5123bf9939d957fe648416e88f1b0928bfa03498",
    "2b22548e1a4d922690eecf546275afb233acf4323974680779f1a964cfe687456035cc0fba8a5428430b390f0057b6d1",
    "fe9a8875bfa89693eeb838ce59f09d207a503ee6f6299c92d6361bc335fcbf9b5cd44747aadce2ce6069cfdc3d671dae",
    "f9f8ae590cf93d957c9e873e9a1bc62d9640dc8fc39c14902d49a1c80239b6c5b7fd91d05878cbf5ffc7db2569f47c43",
    "d6c0d27c438abff276e87364deb8858a37e5a62c446af95d8b786eaf0b5fcf78d98b41496794f8dcaac4eef34b2acfb9",
    "4c7e8c32a9e9866a8fa0b6f2a06f00a1ccde569f97eec05c803ba7500acc96691d8898d73d8e6a47b8f43c3d5de74458",
    "d20eda61474c426359677001fbd75a74d7d5db6cb4feb83122f133206203e4e2d293f838bf8c8b3a29acb321315100b8",
    "7e80e0edb272ee80fda944e3fb6084ed4d7f7c7d21c69d9da43d31a90b70693f9b0cc3eac74c11ab8ff655905688916c",
    "fa4ef0bd04135f2e50b7c689a21d04e8e981e74c6058188b9b1f9dfc3eec6838e9ffbcf22ce738d8a177c19318dffef0",
    "90cee67e12de1a3e2a39f61247547ba5257489cbc11d7d91ed34617fcc42f7a9da2e3cf31a94a210a1018143173913c3",
    "8f60e62b24bf0d7518f38b5bab3e6a1f8aeb35e31d6442c8abb5178efc892d2e787d79c6ad9e2fc271792983fa9955ac",
    "4d1d84a36c024071bc6e431b625519d556af38185601f70e29035ea6a09c8b676c9d88cf7e05e0f17098b584c4168735",
    "940263f940033a220f40be4c85344128b14beb9e75696db37014107801a59b13e89cd9d2258c169d523be6d31552c44c",
    "82ff4bb18ec9f099f3bf0e5b1bb2ba9a87d7e26f98d294927b600b5529c47e04d98956677cbcee8fa2b60f49776d8b8c",
    "367465b7c626da53700684fb6c918ead0eab8360e4f60edd25b4f43816a75ecf70f909301825b512469f8389d7940231",
    "1d8aecb7b3ef8599e79485a4388d87744d899f7c47ee644361e17040a7958c8911be6f463ab6a9b2afacd688ec55ef51",
    "7b38f1339efc54487232798bb25522ff4572ff68567fe830f92f7b8113efce3e98c3fffbaedce4fd8b50e41da97c0c08",
    "e423a72689cc68e68f752a5e3a9003e64e35c957ca2e1c48bb6f64b05f56b70b575ad2f278d57850a7ad568c24a4d32a",
    "3d74b29f03dc125488bc7c637da582357f40b0a52d16b3b40bb2c2315d03360bc24209e20972c200566bcf3bbe5c5b0a",
    "edd83132a8a4d5b4242ba370b6d67d9b67eb01052d132c7866b9cb502e44796d9d356e4e3cb47cc527322cd24976fe7c",
    "9257a2864151a38e568ef7a79f10d6ef27cc04ce382347a2488b1f404fdbf407fe1ca1c9d0d5649e34800e25e18951c9",
    "8cae9f43555eef65fee1ea8f15828807366c3b612cd5753bf9fb8fced08855f742cddd6f765f74254f03186683d646e6",
    "f09ac2805586c7cf11998357cafc5df3f285329366f475130c928b2dceba4aa383758e7a9d20705c4bb9db619e2992f6",
    "08a1ba65db254bb389468741d0502e2588aeb54390ac600c19af5c8e61383fc1bebe0029e4474051e4ef908828db9cca",
    "13277ef65db3fd47ccc2179126aaefb627719f421e20",
);
const SHARED_SECRETS: [&str; 5] = [
    "53eb63ea8a3fec3b3cd433b85cd62a4b145e1dda09391b348c4e1cd36a03ea66",
    "a6519e98832a0b179f62123b3567c106db99ee37bef036e783263602f3488fae",
    "3a6b412548762f0dbccce5c7ae7bb8147d1caf9b5471c34120b30bc9c04891cc",
    "21e13c2d7cfe7e18836df50872466117a295783ab8aab0e7ecc8c725503ad02d",
    "b5756b9b542727dbafc6765a49488b023a725d631af688fc031217e90770c328",
];
const AMMAG_KEYS: [&str; 5] = [
    "3761ba4d3e726d8abb16cba5950ee976b84937b61b7ad09e741724d7dee12eb5",
    "59ee5867c5c151daa31e36ee42530f429c433836286e63744f2020b980302564",
    "1bf08df8628d452141d56adfd1b25c1530d7921c23cecfc749ac03a9b694b0d3",
    "cd9ac0e09064f039fa43a31dea05f5fe5f6443d40a98be4071af4a9d704be5ad",
    "2f36bb8822e1f0d04c27b7d8bb7d7dd586e032a3218b8d414afbba6f169a4d68",
];
const UM_KEY_4: &str = "4da7f2923edce6c2d85987d1d9fa6d88023e6c3a9c3d20f07d3b10b61a78d646";
const ERROR_PACKET: &str = concat!(
    "9c5add3963fc7f6ed7f148623c84134b5647e1306419dbe2174e523fa9e2fbed3a06a19f899145610741c83ad40b7712",
    "aefaddec8c6baf7325d92ea4ca4d1df8bce517f7e54554608bf2bd8071a4f52a7a2f7ffbb1413edad81eeea5785aa9d9",
    "90f2865dc23b4bc3c301a94eec4eabebca66be5cf638f693ec256aec514620cc28ee4a94bd9565bc4d4962b9d3641d42",
    "78fb319ed2b84de5b665f307a2db0f7fbb757366067d88c50f7e829138fde4f78d39b5b5802f1b92a8a820865af5cc79",
    "f9f30bc3f461c66af95d13e5e1f0381c184572a91dee1c849048a647a1158cf884064deddbf1b0b88dfe2f791428d0ba",
    "0f6fb2f04e14081f69165ae66d9297c118f0907705c9c4954a199bae0bb96fad763d690e7daa6cfda59ba7f2c8d11448",
    "b604d12d",
);

fn secrets() -> Vec<SharedSecret> {
    SHARED_SECRETS
        .iter()
        .map(|h| SharedSecret::from_bytes(hex::decode(h).unwrap().try_into().unwrap()))
        .collect()
}

#[test]
fn key_generation_matches_bolt4() {
    let secrets = secrets();
    for (secret, ammag) in secrets.iter().zip(AMMAG_KEYS) {
        assert_eq!(hex::encode(*secret.derive_key(KeyType::Ammag)), ammag);
    }
    assert_eq!(hex::encode(*secrets[4].derive_key(KeyType::Um)), UM_KEY_4);
}

#[test]
fn hop_payloads_and_hmac_match_bolt4_onion_test() {
    let payloads: Vec<Vec<u8>> = PAYLOADS
        .iter()
        .map(|h| {
            let framed = hex::decode(h).unwrap();
            let (len, prefix) = read_bigsize(&framed, 0).unwrap();
            assert_eq!(framed.len(), prefix + len as usize);
            framed[prefix..].to_vec()
        })
        .collect();
    let session = SessionKey::from_bytes([0x41; 32]);
    let (hop_payloads, hmac) = wrap_with_secrets(&session, &secrets(), &payloads, &[0x42; 32]);
    let onion = hex::decode(ONION).unwrap();
    assert_eq!(onion.len(), 1 + 33 + 1300 + 32);
    // BOLT's header is version ‖ 33-byte secp256k1 key; everything after it must be identical.
    assert_eq!(hex::encode(&hop_payloads[..]), hex::encode(&onion[34..34 + 1300]));
    assert_eq!(hex::encode(hmac), hex::encode(&onion[34 + 1300..]));
}

#[test]
fn error_packet_matches_bolt4_onion_error_test() {
    let secrets = secrets();
    let mut packet =
        create_error_packet(&secrets[4], &FailureMessage::TemporaryNodeFailure).unwrap();
    for secret in secrets[..4].iter().rev() {
        packet = wrap_error_packet(secret, &packet);
    }
    assert_eq!(hex::encode(&packet), ERROR_PACKET);
    let decoded = decode_error_packet(&secrets, &packet).unwrap();
    assert_eq!(decoded.hop_index, 4);
    assert_eq!(decoded.message, FailureMessage::TemporaryNodeFailure);
}
