//! End-to-end runs of the `rnet-tx` binary.

use std::process::{Command, Output};

use rnet_consensus::ChainParams;
use rnet_crypto::SigningKey;
use rnet_primitives::{Amount, Network, Transaction, TxOut};
use rnet_script::{Heartbeat, PlainKey, RelativeLock, ScriptTemplate, VerifyFlags};

fn tx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnet-tx")).args(args).output().expect("run")
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json")
}

#[test]
fn create_sign_decode() {
    let owner = SigningKey::from_bytes(&[5; 32]);
    let hb = Heartbeat::new(
        owner.public_key(),
        SigningKey::from_bytes(&[6; 32]).public_key(),
        RelativeLock::Blocks(10),
    )
    .expect("template");
    let plain = PlainKey::new(owner.public_key());
    let txid = "11".repeat(32);
    let in1 = format!("{txid}:0:2.5:{}", hex::encode(hb.script_pubkey()));
    let in2 = format!("{txid}:1:1:{}", hex::encode(plain.script_pubkey()));
    let dest =
        PlainKey::new(SigningKey::from_bytes(&[7; 32]).public_key()).address(Network::Regtest);
    let out = format!("{dest}:3.4");
    let created = json(&tx(&["create", "--input", &in1, "--input", &in2, "--output", &out]));
    assert_eq!(created["fee"], 10_000_000);
    let unsigned = created["hex"].as_str().expect("hex").to_owned();
    let key = hex::encode(owner.as_bytes());
    let script = hex::encode(hb.witness_script());
    let signed = json(&tx(&[
        "sign",
        "--chain",
        "regtest",
        "--tx",
        &unsigned,
        "--input",
        &in1,
        "--input",
        &in2,
        "--key",
        &key,
        "--witness-script",
        &script,
    ]));
    assert_eq!(signed["complete"], true);
    // Signed for regtest: valid there, invalid on testnet and mainnet.
    let bytes = hex::decode(signed["hex"].as_str().expect("hex")).expect("hex");
    let signed_tx = Transaction::from_bytes(&bytes).expect("tx");
    let spent = [
        TxOut { value: Amount(250_000_000), script_pubkey: hb.script_pubkey() },
        TxOut { value: Amount(100_000_000), script_pubkey: plain.script_pubkey() },
    ];
    for n in Network::ALL {
        let genesis = ChainParams::for_network(n).genesis_hash();
        let verdict =
            rnet_script::verify_transaction(&genesis, &signed_tx, &spent, VerifyFlags::STANDARD);
        assert_eq!(verdict.is_ok(), n == Network::Regtest, "{n}");
    }
    // The network is required and must be known.
    let base = ["sign", "--tx", &unsigned, "--input", &in1, "--input", &in2, "--key", &key];
    assert!(!tx(&base).status.success());
    let bad_chain = [&base[..], &["--chain", "moon"]].concat();
    assert!(!tx(&bad_chain).status.success());
    let decoded = json(&tx(&["decode", signed["hex"].as_str().expect("hex")]));
    assert_eq!(decoded["txid"], created["txid"]);

    for bad in [
        vec!["decode", "zz"],
        vec!["create", "--input", "x:0:1:00", "--output", &out],
        vec!["create", "--input", &in2, "--output", &out],
        vec!["sign", "--chain", "test", "--tx", &unsigned, "--input", &in1, "--key", &key],
    ] {
        let o = tx(&bad);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(String::from_utf8_lossy(&o.stderr).trim_end().lines().count(), 1);
    }
}
