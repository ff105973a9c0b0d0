//! Invoice vectors: pinned encodings, round trips across networks and multipliers, and every
//! rejection rule of docs/lightning.md §3, each exercised with an otherwise valid, correctly
//! signed invoice so that the rule under test is the one that fires.

use bech32::{Bech32, Bech32m, Fe32, Fe32IterExt, Hrp};
use proptest::prelude::*;
use rnet_crypto::{PublicKey, SigningKey, keccak256d};
use rnet_lightning::invoice::{
    AmountError, BASIC_MPP_OPTIONAL, DEFAULT_EXPIRY_SECS, DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
    Invoice, InvoiceBuilder, InvoiceDescription, InvoiceError, InvoiceFeatures,
    MAX_AMOUNT_MILLI_RESONANCE, MAX_DESCRIPTION_LEN, MAX_INVOICE_LEN, MAX_TIMESTAMP,
    MILLI_RESONANCE_PER_RNT, PAYMENT_SECRET_REQUIRED, RouteHint, RouteHintHop,
    VAR_ONION_OPTIN_REQUIRED, payment_hash_from_preimage, signing_digest, tag,
};
use rnet_primitives::Network;

const TIMESTAMP: u64 = 1_700_000_000;
const PREIMAGE: [u8; 32] = [0x01; 32];
const SECRET: [u8; 32] = [0x11; 32];

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn builder(network: Network) -> InvoiceBuilder {
    InvoiceBuilder::new(network)
        .timestamp(TIMESTAMP)
        .payment_preimage(&PREIMAGE)
        .payment_secret(SECRET)
        .description("1 cup of coffee")
}

fn hop(n: u8) -> RouteHintHop {
    RouteHintHop {
        src_node_id: key(n).public_key(),
        short_channel_id: 0x0001_0203_0405_0607 + u64::from(n),
        fee_base_msat: 1000 + u32::from(n),
        fee_proportional_millionths: 20 + u32::from(n),
        cltv_expiry_delta: 40 + u16::from(n),
    }
}

// ---- Raw assembly: lets a test write any data part and still sign it correctly. ----

fn to_words(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(((acc >> bits) & 31) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(((acc << (5 - bits)) & 31) as u8);
    }
    out
}

fn int_words(mut v: u64, fixed: Option<usize>) -> Vec<u8> {
    let mut out = Vec::new();
    while v > 0 || fixed.is_some_and(|n| out.len() < n) {
        out.push((v & 31) as u8);
        v >>= 5;
    }
    out.reverse();
    out
}

fn field(t: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![t, (body.len() >> 5) as u8, (body.len() & 31) as u8];
    out.extend_from_slice(body);
    out
}

fn bech32_encode<Ck: bech32::Checksum>(hrp: &str, words: &[u8]) -> String {
    let hrp = Hrp::parse(hrp).unwrap();
    words.iter().map(|&w| Fe32::try_from(w).unwrap()).with_checksum::<Ck>(&hrp).chars().collect()
}

/// Signs `data` (timestamp + fields) under `hrp` with `signer` and encodes the invoice.
fn assemble(hrp: &str, data: &[u8], signer: &SigningKey) -> String {
    let sig = signer.sign(&signing_digest(hrp, data).unwrap());
    let mut words = data.to_vec();
    words.extend(to_words(sig.as_bytes()));
    bech32_encode::<Bech32>(hrp, &words)
}

/// The standard valid fields: p, s, n (of `payee`), d.
fn std_fields(payee: &SigningKey) -> Vec<Vec<u8>> {
    vec![
        field(tag::PAYMENT_HASH, &to_words(&payment_hash_from_preimage(&PREIMAGE))),
        field(tag::PAYMENT_SECRET, &to_words(&SECRET)),
        field(tag::PAYEE, &to_words(payee.public_key().as_bytes())),
        field(tag::DESCRIPTION, &to_words(b"coffee")),
    ]
}

fn data_of(fields: &[Vec<u8>]) -> Vec<u8> {
    let mut data = int_words(TIMESTAMP, Some(7));
    for f in fields {
        data.extend_from_slice(f);
    }
    data
}

/// A raw invoice with the standard fields plus `extra`, signed by key 1.
fn raw_with(extra: &[Vec<u8>]) -> String {
    let k = key(1);
    let mut fields = std_fields(&k);
    fields.extend_from_slice(extra);
    assemble("lnrnt", &data_of(&fields), &k)
}

fn raw_fields(fields: &[Vec<u8>]) -> String {
    assemble("lnrnt", &data_of(fields), &key(1))
}

// ---- Pinned vectors. ----

/// Mainnet, no amount, description, all defaults.
const VECTOR_1: &str = "lnrnt1pj48ugqpp5e6y4myxn5rk4xy4w3h8l7dmszrz25xm7nu06dxpk5wqz6q2vxylqsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygsnp532yw8ht5p8cetl2jmvknewjawt9xwzdlrk2pyxlnwjyqrdq0dawqdqcxysxxatsyphkvgrrdanxvet9cqpjtu452xryksdt7vvrhk4d5mzay9l70vx07z3fn4vuhge4ndvg2gs0hfhv095cm2cg7erq5d98u25zhj2lr57a3z4scvpv3l9pd6ttuzs4mr7ya";
/// Testnet, 2500u (= 0.0025 RNT), expiry 60 s, CLTV delta 144, one 2-hop route hint, features.
const VECTOR_2: &str = "lntrnt2500u1pj48ugqpp5e6y4myxn5rk4xy4w3h8l7dmszrz25xm7nu06dxpk5wqz6q2vxylqsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygsnp5syuhwr4g05t4744r23nvxnr7en9cmz53knhr0gja7c84hr7fkw2qdqcxysxxatsyphkvgrrdanxvet9xqzpucqzysr9qaf9xcclzn3fq40h42pa3xtk9lx25wa4wh6l8hyjzrm4xj9zx6gkqqqgzqvzq2pswqqqq8mcqqqqpkqp0zwv0vtrdrfzhc5d6df9470da9a5le2fjzcscmjye0eqkh5taj09qqqgzqvzq2ps0qqqq8uqqqqqpcqps9qyysgqzuuqkvclnn8t07snl9hqytn8hur679llq5um4twue4dq85vu95kvwh02gg4j7vg3r3ws2fk6wpgyzs6av9a2s3f2ry4etgfu8kd06rg4zfn6a";
/// Regtest, 10p (= 1 milli-resonance), description hash.
const VECTOR_3: &str = "lnrrnt10p1pj48ugqpp5e6y4myxn5rk4xy4w3h8l7dmszrz25xm7nu06dxpk5wqz6q2vxylqsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygsnp5a4yj333g68pvd6hfqvufqkv4vy54jfe6t33ljd3kc9rpfty8xlgshp5hwq7j75g3eunyyvte6upv3dmr8rn7m03q9zkrp3ecnnerntqydaqcqpja8v4c5h5aactafc7d0l555ejuq7gdeajq6gw725jwrxs25kqp80n9vgzylp38r5h4xuhauuet4uh4tzexg5ksmr62sn5d88xchkr2qg2j4nxy";

fn vector_1() -> Invoice {
    builder(Network::Mainnet).sign(&key(1)).unwrap()
}

fn vector_2() -> Invoice {
    builder(Network::Testnet)
        .amount_milli_resonance(250_000_000)
        .expiry(60)
        .min_final_cltv_expiry_delta(144)
        .route_hint(RouteHint::new(vec![hop(7), hop(8)]).unwrap())
        .features(
            InvoiceFeatures::new()
                .with_bit(VAR_ONION_OPTIN_REQUIRED)
                .with_bit(PAYMENT_SECRET_REQUIRED)
                .with_bit(BASIC_MPP_OPTIONAL),
        )
        .sign(&key(2))
        .unwrap()
}

fn vector_3() -> Invoice {
    builder(Network::Regtest)
        .amount_milli_resonance(1)
        .description_hash(InvoiceDescription::hash_of("a long description delivered elsewhere"))
        .sign(&key(3))
        .unwrap()
}

#[test]
fn invoice_pinned_vectors_encode_exactly() {
    assert_eq!(vector_1().to_string(), VECTOR_1);
    assert_eq!(vector_2().to_string(), VECTOR_2);
    assert_eq!(vector_3().to_string(), VECTOR_3);
    // The digest of vector 1, for reimplementations of the signing rule.
    assert_eq!(
        hex::encode(vector_1().signing_digest()),
        "273689ece6beb092d9406ba923d18ef59637bd47be2dbf7bdc0ec4bc21b59d39"
    );
}

#[test]
fn invoice_pinned_vectors_decode_to_their_fields() {
    let v1 = Invoice::parse(VECTOR_1).unwrap();
    assert_eq!(v1, vector_1());
    assert_eq!(v1.network(), Network::Mainnet);
    assert_eq!(v1.hrp(), "lnrnt");
    assert_eq!(v1.amount_milli_resonance(), None);
    assert_eq!(v1.timestamp(), TIMESTAMP);
    assert_eq!(v1.payment_hash(), &keccak256d(&PREIMAGE));
    assert!(v1.is_preimage(&PREIMAGE));
    assert!(!v1.is_preimage(&[0x02; 32]));
    assert_eq!(v1.payment_secret(), &SECRET);
    assert_eq!(v1.description(), &InvoiceDescription::Text("1 cup of coffee".into()));
    assert!(v1.description().commits_to("1 cup of coffee"));
    assert_eq!(v1.expiry(), DEFAULT_EXPIRY_SECS);
    assert_eq!(v1.min_final_cltv_expiry_delta(), DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA);
    assert!(v1.route_hints().is_empty());
    assert!(v1.features().is_empty());
    assert_eq!(v1.payee(), &key(1).public_key());
    assert!(v1.payee().verify(&v1.signing_digest(), v1.signature()).is_ok());

    let v2: Invoice = VECTOR_2.parse().unwrap();
    assert_eq!(v2, vector_2());
    assert_eq!(v2.network(), Network::Testnet);
    assert_eq!(v2.amount_milli_resonance(), Some(MILLI_RESONANCE_PER_RNT / 400));
    assert_eq!(v2.expiry(), 60);
    assert_eq!(v2.expires_at(), TIMESTAMP + 60);
    assert_eq!(v2.min_final_cltv_expiry_delta(), 144);
    assert_eq!(v2.route_hints().len(), 1);
    assert_eq!(v2.route_hints()[0].hops(), &[hop(7), hop(8)]);
    assert_eq!(
        v2.features().bits().collect::<Vec<_>>(),
        vec![VAR_ONION_OPTIN_REQUIRED, PAYMENT_SECRET_REQUIRED, BASIC_MPP_OPTIONAL]
    );
    assert_eq!(v2.payee(), &key(2).public_key());

    let v3 = Invoice::parse_for_network(VECTOR_3, Network::Regtest).unwrap();
    assert_eq!(v3, vector_3());
    assert_eq!(v3.amount_milli_resonance(), Some(1));
    assert!(v3.description().commits_to("a long description delivered elsewhere"));
    assert!(!v3.description().commits_to("another description"));
}

#[test]
fn invoice_round_trips_across_networks_and_multipliers() {
    let cases: [(Option<u64>, &str); 9] = [
        (None, ""),
        (Some(1), "10p"),
        (Some(123), "1230p"),
        (Some(100), "1n"),
        (Some(100_000), "1u"),
        (Some(250_000_000), "2500u"),
        (Some(100_000_000), "1m"),
        (Some(20 * MILLI_RESONANCE_PER_RNT), "20"),
        (Some(MAX_AMOUNT_MILLI_RESONANCE), "21000000"),
    ];
    for (i, network) in Network::ALL.into_iter().enumerate() {
        for (amount, suffix) in cases {
            let mut b = builder(network);
            if let Some(a) = amount {
                b = b.amount_milli_resonance(a);
            }
            let signer = key(10 + i as u8);
            let invoice = b.sign(&signer).unwrap();
            let s = invoice.to_string();
            let hrp = format!("ln{}{suffix}", network.hrp());
            assert!(s.starts_with(&format!("{hrp}1")), "{s}");
            assert_eq!(invoice.hrp(), hrp);
            let parsed = Invoice::parse(&s).unwrap();
            assert_eq!(parsed, invoice);
            assert_eq!(parsed.to_string(), s);
            assert_eq!(parsed.amount_milli_resonance(), amount);
            assert_eq!(parsed.network(), network);
            assert_eq!(parsed.payee(), &signer.public_key());
        }
    }
}

#[test]
fn invoice_uppercase_accepted_mixed_case_rejected() {
    let upper = VECTOR_1.to_ascii_uppercase();
    let parsed = Invoice::parse(&upper).unwrap();
    assert_eq!(parsed, vector_1());
    assert_eq!(parsed.to_string(), VECTOR_1);

    let mut mixed = VECTOR_1.to_owned();
    mixed.replace_range(0..2, "LN");
    assert_eq!(Invoice::parse(&mixed), Err(InvoiceError::MixedCase));
    let mut mixed = VECTOR_1.to_owned();
    let last = mixed.len() - 1;
    mixed.replace_range(last.., &VECTOR_1[last..].to_ascii_uppercase());
    assert_eq!(Invoice::parse(&mixed), Err(InvoiceError::MixedCase));
}

#[test]
fn invoice_bad_checksum_rejected() {
    // Every single-character substitution in the data part breaks the checksum.
    let sep = VECTOR_1.rfind('1').unwrap();
    for pos in [sep + 1, sep + 50, VECTOR_1.len() - 1] {
        let mut s = VECTOR_1.as_bytes().to_vec();
        s[pos] = if s[pos] == b'q' { b'p' } else { b'q' };
        let s = String::from_utf8(s).unwrap();
        assert_eq!(Invoice::parse(&s), Err(InvoiceError::InvalidChecksum), "{pos}");
    }
    // Changing the amount in the HRP also breaks it.
    let s = VECTOR_2.replacen("2500u", "2600u", 1);
    assert_eq!(Invoice::parse(&s), Err(InvoiceError::InvalidChecksum));
    // The same content under a bech32m checksum is not an invoice.
    let k = key(1);
    let data = data_of(&std_fields(&k));
    let sig = k.sign(&signing_digest("lnrnt", &data).unwrap());
    let mut words = data.clone();
    words.extend(to_words(sig.as_bytes()));
    assert!(Invoice::parse(&bech32_encode::<Bech32>("lnrnt", &words)).is_ok());
    assert_eq!(
        Invoice::parse(&bech32_encode::<Bech32m>("lnrnt", &words)),
        Err(InvoiceError::InvalidChecksum)
    );
}

#[test]
fn invoice_tampered_signature_rejected() {
    let k = key(1);
    let data = data_of(&std_fields(&k));
    let sig = k.sign(&signing_digest("lnrnt", &data).unwrap());
    for byte in [0usize, 31, 32, 63] {
        let mut bad = sig.to_bytes();
        bad[byte] ^= 0x01;
        let mut words = data.clone();
        words.extend(to_words(&bad));
        let s = bech32_encode::<Bech32>("lnrnt", &words);
        assert_eq!(Invoice::parse(&s), Err(InvoiceError::InvalidSignature), "byte {byte}");
    }
    // Non-zero signature padding bits.
    let mut words = data.clone();
    words.extend(to_words(sig.as_bytes()));
    *words.last_mut().unwrap() |= 1;
    let s = bech32_encode::<Bech32>("lnrnt", &words);
    assert_eq!(Invoice::parse(&s), Err(InvoiceError::SignaturePadding));
}

#[test]
fn invoice_signature_by_another_key_than_n_rejected() {
    // n names key 2, key 1 signs.
    let data = data_of(&std_fields(&key(2)));
    let s = assemble("lnrnt", &data, &key(1));
    assert_eq!(Invoice::parse(&s), Err(InvoiceError::InvalidSignature));
    // Control: the same data signed by key 2 is valid.
    assert!(Invoice::parse(&assemble("lnrnt", &data, &key(2))).is_ok());
}

#[test]
fn invoice_signature_covers_hrp_and_every_field() {
    let k = key(1);
    let data = data_of(&std_fields(&k));
    let sig = k.sign(&signing_digest("lnrnt", &data).unwrap());
    let with_sig = |hrp: &str, data: &[u8]| {
        let mut words = data.to_vec();
        words.extend(to_words(sig.as_bytes()));
        bech32_encode::<Bech32>(hrp, &words)
    };
    assert!(Invoice::parse(&with_sig("lnrnt", &data)).is_ok());
    // Same signature, amount added to the HRP.
    assert_eq!(Invoice::parse(&with_sig("lnrnt1m", &data)), Err(InvoiceError::InvalidSignature));
    // Same signature, network changed.
    assert_eq!(Invoice::parse(&with_sig("lntrnt", &data)), Err(InvoiceError::InvalidSignature));
    // Same signature, timestamp changed.
    let mut later = data.clone();
    later[6] ^= 1;
    assert_eq!(Invoice::parse(&with_sig("lnrnt", &later)), Err(InvoiceError::InvalidSignature));
    // Same signature, an unknown field appended.
    let mut extended = data.clone();
    extended.extend(field(27, &[1, 2, 3]));
    assert_eq!(Invoice::parse(&with_sig("lnrnt", &extended)), Err(InvoiceError::InvalidSignature));
}

#[test]
fn invoice_unknown_fields_skipped_and_round_tripped() {
    // `m` (27, BOLT 11 payment metadata) and `f` (9, fallback address) are not defined here.
    let s = raw_with(&[field(27, &[1, 2, 3, 4]), field(9, &[]), field(0, &[31; 10])]);
    let invoice = Invoice::parse(&s).unwrap();
    assert_eq!(invoice.to_string(), s);
    assert_eq!(invoice.description(), &InvoiceDescription::Text("coffee".into()));
    // Fields in an unusual order are kept in that order.
    let mut fields = std_fields(&key(1));
    fields.reverse();
    let s = raw_fields(&fields);
    assert_eq!(Invoice::parse(&s).unwrap().to_string(), s);
}

#[test]
fn invoice_bad_amounts_rejected() {
    let k = key(1);
    let data = data_of(&std_fields(&k));
    let parse = |hrp: &str| Invoice::parse(&assemble(hrp, &data, &k));
    assert_eq!(parse("lnrnt0"), Err(AmountError::Zero.into()));
    assert_eq!(parse("lnrnt0n"), Err(AmountError::Zero.into()));
    assert_eq!(parse("lnrnt01m"), Err(AmountError::LeadingZero.into()));
    assert_eq!(parse("lnrnt000"), Err(AmountError::LeadingZero.into()));
    assert_eq!(parse("lnrnt15p"), Err(AmountError::SubMilliResonance("15p".into()).into()));
    assert_eq!(parse("lnrnt1k"), Err(AmountError::InvalidMultiplier("k".into()).into()));
    assert_eq!(parse("lnrnt1mu"), Err(AmountError::InvalidMultiplier("mu".into()).into()));
    assert_eq!(parse("lnrnt1m0"), Err(AmountError::InvalidMultiplier("m0".into()).into()));
    assert_eq!(parse("lnrnt1.5m"), Err(AmountError::InvalidMultiplier(".5m".into()).into()));
    assert_eq!(
        parse("lnrnt21000001"),
        Err(AmountError::TooLarge(2_100_000_100_000_000_000).into())
    );
    assert_eq!(
        parse("lnrnt21000000001m"),
        Err(AmountError::TooLarge(2_100_000_000_100_000_000).into())
    );
    assert_eq!(parse(&format!("lnrnt{}", "9".repeat(40))), Err(AmountError::Overflow.into()));
    // Valid but not the shortest form: accepted, and re-encoded exactly as written.
    let s = assemble("lnrnt1000m", &data, &k);
    let invoice = Invoice::parse(&s).unwrap();
    assert_eq!(invoice.amount_milli_resonance(), Some(MILLI_RESONANCE_PER_RNT));
    assert_eq!(invoice.to_string(), s);
    let s = assemble("lnrnt10000p", &data, &k);
    assert_eq!(Invoice::parse(&s).unwrap().amount_milli_resonance(), Some(1000));
}

#[test]
fn invoice_wrong_or_unknown_network_rejected() {
    let k = key(1);
    let data = data_of(&std_fields(&k));
    let parse = |hrp: &str| Invoice::parse(&assemble(hrp, &data, &k));
    assert_eq!(parse("lnbc"), Err(InvoiceError::UnknownNetwork("bc".into())));
    assert_eq!(parse("lnbc2500u"), Err(InvoiceError::UnknownNetwork("bc".into())));
    assert_eq!(parse("lnrn"), Err(InvoiceError::UnknownNetwork("rn".into())));
    assert_eq!(parse("ln"), Err(InvoiceError::UnknownNetwork(String::new())));
    assert_eq!(parse("lnrntm"), Err(InvoiceError::UnknownNetwork("rntm".into())));
    assert_eq!(parse("rnt"), Err(InvoiceError::NotAnInvoice("rnt".into())));
    assert_eq!(parse("lxrnt"), Err(InvoiceError::NotAnInvoice("lxrnt".into())));
    assert!(parse("lnrnt").is_ok());
    assert!(parse("lntrnt").is_ok());
    assert!(parse("lnrrnt").is_ok());

    assert_eq!(
        Invoice::parse_for_network(VECTOR_2, Network::Mainnet),
        Err(InvoiceError::WrongNetwork { expected: Network::Mainnet, found: Network::Testnet })
    );
    assert!(Invoice::parse_for_network(VECTOR_2, Network::Testnet).is_ok());
    // An on-chain address is not an invoice.
    let addr = "rnt1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0jqsxqw0k";
    assert!(Invoice::parse(addr).is_err());
}

#[test]
fn invoice_truncated_data_rejected() {
    let k = key(1);
    // Cutting characters off the string breaks the checksum.
    assert_eq!(Invoice::parse(&VECTOR_1[..VECTOR_1.len() - 1]), Err(InvoiceError::InvalidChecksum));
    assert_eq!(
        Invoice::parse(&VECTOR_1[..VECTOR_1.len() - 40]),
        Err(InvoiceError::InvalidChecksum)
    );
    // Shorter than timestamp + signature, validly checksummed.
    let s = bech32_encode::<Bech32>("lnrnt", &[0; 109]);
    assert_eq!(Invoice::parse(&s), Err(InvoiceError::TooShort { words: 109 }));
    let s = bech32_encode::<Bech32>("lnrnt", &[]);
    assert_eq!(Invoice::parse(&s), Err(InvoiceError::TooShort { words: 0 }));
    assert_eq!(Invoice::parse("lnrnt1qqqq"), Err(InvoiceError::TooShort { words: 4 }));
    // A field declaring more words than remain before the signature.
    let mut data = data_of(&std_fields(&k));
    data.extend([tag::DESCRIPTION, 0, 9, 1, 2]);
    assert_eq!(
        Invoice::parse(&assemble("lnrnt", &data, &k)),
        Err(InvoiceError::TruncatedField { tag: 'd', declared: 9, available: 2 })
    );
    // One or two words that cannot be a field header.
    for extra in [&[1u8][..], &[1, 0]] {
        let mut data = data_of(&std_fields(&k));
        data.extend_from_slice(extra);
        assert_eq!(
            Invoice::parse(&assemble("lnrnt", &data, &k)),
            Err(InvoiceError::TrailingData(extra.len()))
        );
    }
    // The signature cut short: its last words are read as fields.
    let full = data_of(&std_fields(&k));
    let sig = k.sign(&signing_digest("lnrnt", &full).unwrap());
    let mut words = full.clone();
    words.extend(&to_words(sig.as_bytes())[..100]);
    assert!(Invoice::parse(&bech32_encode::<Bech32>("lnrnt", &words)).is_err());
}

#[test]
fn invoice_mandatory_fields_exactly_once() {
    let k = key(1);
    let [p, s, n, d] = <[Vec<u8>; 4]>::try_from(std_fields(&k)).unwrap();
    let h = field(tag::DESCRIPTION_HASH, &to_words(&[9; 32]));
    let missing = |fields: &[Vec<u8>]| Invoice::parse(&raw_fields(fields));
    assert!(matches!(
        missing(&[s.clone(), n.clone(), d.clone()]),
        Err(InvoiceError::MissingField(_))
    ));
    assert!(matches!(
        missing(&[p.clone(), n.clone(), d.clone()]),
        Err(InvoiceError::MissingField(_))
    ));
    assert!(matches!(
        missing(&[p.clone(), s.clone(), d.clone()]),
        Err(InvoiceError::MissingField(_))
    ));
    assert!(matches!(
        missing(&[p.clone(), s.clone(), n.clone()]),
        Err(InvoiceError::MissingField(_))
    ));
    assert!(missing(&[p.clone(), s.clone(), n.clone(), h.clone()]).is_ok());
    assert_eq!(
        missing(&[p.clone(), s.clone(), n.clone(), d.clone(), h.clone()]),
        Err(InvoiceError::BothDescriptions)
    );

    for (dup, c) in [(&p, 'p'), (&s, 's'), (&n, 'n'), (&d, 'd')] {
        assert_eq!(
            Invoice::parse(&raw_with(std::slice::from_ref(dup))),
            Err(InvoiceError::DuplicateField(c))
        );
    }
    let hh = [p.clone(), s.clone(), n.clone(), h.clone(), h.clone()];
    assert_eq!(missing(&hh), Err(InvoiceError::DuplicateField('h')));
    for (t, body, c) in [
        (tag::EXPIRY, vec![1u8], 'x'),
        (tag::MIN_FINAL_CLTV_EXPIRY_DELTA, vec![1], 'c'),
        (tag::FEATURES, vec![1, 0], '9'),
    ] {
        let f = field(t, &body);
        assert!(Invoice::parse(&raw_with(std::slice::from_ref(&f))).is_ok());
        assert_eq!(
            Invoice::parse(&raw_with(&[f.clone(), f])),
            Err(InvoiceError::DuplicateField(c))
        );
    }
    // Route hints may repeat.
    let r = field(tag::ROUTE_HINT, &to_words(&hop_bytes(&hop(5))));
    let invoice = Invoice::parse(&raw_with(&[r.clone(), r])).unwrap();
    assert_eq!(invoice.route_hints().len(), 2);
    assert_eq!(invoice.route_hints()[1].hops(), &[hop(5)]);
}

fn hop_bytes(h: &RouteHintHop) -> Vec<u8> {
    let mut out = h.src_node_id.as_bytes().to_vec();
    out.extend(h.short_channel_id.to_be_bytes());
    out.extend(h.fee_base_msat.to_be_bytes());
    out.extend(h.fee_proportional_millionths.to_be_bytes());
    out.extend(h.cltv_expiry_delta.to_be_bytes());
    out
}

#[test]
fn invoice_wrong_lengths_of_known_fields_rejected() {
    let k = key(1);
    let fields = std_fields(&k);
    // Replace the field at `index` by `t` with a body of `len` words.
    let with = |index: usize, t: u8, body: Vec<u8>| {
        let mut f = fields.clone();
        f[index] = field(t, &body);
        Invoice::parse(&raw_fields(&f))
    };
    for (index, t, c) in
        [(0, tag::PAYMENT_HASH, 'p'), (1, tag::PAYMENT_SECRET, 's'), (2, tag::PAYEE, 'n')]
    {
        for len in [0usize, 51, 53, 104] {
            assert_eq!(
                with(index, t, vec![0; len]),
                Err(InvoiceError::InvalidFieldLength { tag: c, len }),
                "{c} {len}"
            );
        }
    }
    assert_eq!(
        with(3, tag::DESCRIPTION_HASH, vec![0; 51]),
        Err(InvoiceError::InvalidFieldLength { tag: 'h', len: 51 })
    );
    // Route hints: a whole number (at least one) of 80-word hops.
    let one = to_words(&hop_bytes(&hop(3)));
    assert_eq!(one.len(), 80);
    for len in [0usize, 79, 81, 159] {
        let mut body = one.clone();
        body.resize(len, 0);
        assert_eq!(
            Invoice::parse(&raw_with(&[field(tag::ROUTE_HINT, &body)])),
            Err(InvoiceError::InvalidFieldLength { tag: 'r', len })
        );
    }
}

#[test]
fn invoice_non_canonical_padding_rejected() {
    let k = key(1);
    let mut fields = std_fields(&k);
    // Payment hash: 52 words = 256 bits + 4 padding bits; set one.
    *fields[0].last_mut().unwrap() |= 1;
    assert_eq!(Invoice::parse(&raw_fields(&fields)), Err(InvoiceError::InvalidPadding('p')));
    // Description with a whole extra zero word.
    let mut fields = std_fields(&k);
    let mut body = to_words(b"coffee");
    body.push(0);
    fields[3] = field(tag::DESCRIPTION, &body);
    assert_eq!(Invoice::parse(&raw_fields(&fields)), Err(InvoiceError::InvalidPadding('d')));
}

#[test]
fn invoice_integer_fields_minimal_and_in_range() {
    assert_eq!(
        Invoice::parse(&raw_with(&[field(tag::EXPIRY, &[0, 1])])),
        Err(InvoiceError::NonMinimalField('x'))
    );
    assert_eq!(
        Invoice::parse(&raw_with(&[field(tag::MIN_FINAL_CLTV_EXPIRY_DELTA, &[0, 18])])),
        Err(InvoiceError::NonMinimalField('c'))
    );
    assert_eq!(
        Invoice::parse(&raw_with(&[field(tag::FEATURES, &[0, 16, 8, 0])])),
        Err(InvoiceError::NonMinimalField('9'))
    );
    assert_eq!(
        Invoice::parse(&raw_with(&[field(tag::FEATURES, &[])])),
        Err(InvoiceError::NonMinimalField('9'))
    );
    // u32::MAX + 1 for c; 2^64 for x.
    assert_eq!(
        Invoice::parse(&raw_with(&[field(
            tag::MIN_FINAL_CLTV_EXPIRY_DELTA,
            &int_words(1 << 32, None)
        )])),
        Err(InvoiceError::FieldOverflow('c'))
    );
    let mut over = vec![0u8; 13];
    over[0] = 16;
    assert_eq!(
        Invoice::parse(&raw_with(&[field(tag::EXPIRY, &over)])),
        Err(InvoiceError::FieldOverflow('x'))
    );
    // Empty x is 0; empty c is 0.
    let i = Invoice::parse(&raw_with(&[
        field(tag::EXPIRY, &[]),
        field(tag::MIN_FINAL_CLTV_EXPIRY_DELTA, &[]),
    ]))
    .unwrap();
    assert_eq!((i.expiry(), i.min_final_cltv_expiry_delta()), (0, 0));
    let i = Invoice::parse(&raw_with(&[field(tag::EXPIRY, &int_words(u64::MAX, None))])).unwrap();
    assert_eq!(i.expiry(), u64::MAX);
    assert_eq!(i.expires_at(), u64::MAX);
}

#[test]
fn invoice_features_even_unknown_rejected_odd_ignored() {
    let bits = |b: &[u16]| {
        let mut f = InvoiceFeatures::new();
        for &x in b {
            f.set_bit(x);
        }
        field(tag::FEATURES, &feature_words(&f))
    };
    assert_eq!(
        Invoice::parse(&raw_with(&[bits(&[100])])),
        Err(InvoiceError::UnknownRequiredFeature(100))
    );
    assert_eq!(
        Invoice::parse(&raw_with(&[bits(&[0])])),
        Err(InvoiceError::UnknownRequiredFeature(0))
    );
    let ok = Invoice::parse(&raw_with(&[bits(&[101, 9, 15])])).unwrap();
    assert!(ok.features().has_bit(101));
    assert_eq!(
        Invoice::parse(&raw_with(&[bits(&[17])])),
        Err(InvoiceError::MissingFeatureDependency { feature: 16, needs: 14 })
    );
}

fn feature_words(f: &InvoiceFeatures) -> Vec<u8> {
    let top = f.bits().max().unwrap_or(0);
    let len = usize::from(top) / 5 + 1;
    let mut words = vec![0u8; len];
    for bit in f.bits() {
        words[len - 1 - usize::from(bit) / 5] |= 1 << (bit % 5);
    }
    words
}

fn invalid_point() -> [u8; 32] {
    (2u8..=255)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            b
        })
        .find(|b| PublicKey::from_bytes(b).is_err())
        .unwrap()
}

#[test]
fn invoice_bad_keys_rejected() {
    let k = key(1);
    let mut fields = std_fields(&k);
    fields[2] = field(tag::PAYEE, &to_words(&invalid_point()));
    assert_eq!(Invoice::parse(&raw_fields(&fields)), Err(InvoiceError::InvalidPublicKey('n')));
    // The identity point: small order, "signs" everything.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    fields[2] = field(tag::PAYEE, &to_words(&identity));
    assert_eq!(Invoice::parse(&raw_fields(&fields)), Err(InvoiceError::WeakPayeeKey));
    // A route hint hop whose node id is not a point.
    let mut hop = hop_bytes(&hop(4));
    hop[..32].copy_from_slice(&invalid_point());
    assert_eq!(
        Invoice::parse(&raw_with(&[field(tag::ROUTE_HINT, &to_words(&hop))])),
        Err(InvoiceError::InvalidPublicKey('r'))
    );
}

#[test]
fn invoice_description_must_be_utf8() {
    let k = key(1);
    let mut fields = std_fields(&k);
    fields[3] = field(tag::DESCRIPTION, &to_words(&[0x63, 0xff, 0xfe]));
    assert_eq!(Invoice::parse(&raw_fields(&fields)), Err(InvoiceError::DescriptionNotUtf8));
    fields[3] = field(tag::DESCRIPTION, &to_words("ナンセンス 1杯".as_bytes()));
    let i = Invoice::parse(&raw_fields(&fields)).unwrap();
    assert_eq!(i.description(), &InvoiceDescription::Text("ナンセンス 1杯".into()));
}

#[test]
fn invoice_expiry() {
    let i = builder(Network::Mainnet).expiry(600).sign(&key(1)).unwrap();
    assert_eq!(i.expires_at(), TIMESTAMP + 600);
    assert!(!i.is_expired(TIMESTAMP));
    assert!(!i.is_expired(TIMESTAMP + 599));
    assert!(i.is_expired(TIMESTAMP + 600));
    let reparsed = Invoice::parse(&i.to_string()).unwrap();
    assert_eq!(reparsed.expiry(), 600);
    // The default expiry is implied, not written.
    let d = builder(Network::Mainnet).sign(&key(1)).unwrap();
    assert_eq!(d.expires_at(), TIMESTAMP + 3600);
    assert!(d.to_string().len() < i.to_string().len());
}

#[test]
fn invoice_builder_errors() {
    let k = key(1);
    let bare = InvoiceBuilder::new(Network::Mainnet).timestamp(TIMESTAMP);
    assert!(matches!(bare.clone().sign(&k), Err(InvoiceError::MissingField(_))));
    assert!(matches!(
        bare.clone().payment_hash([0; 32]).payment_secret(SECRET).sign(&k),
        Err(InvoiceError::MissingField(_))
    ));
    assert!(matches!(
        bare.clone().payment_hash([0; 32]).description("x").sign(&k),
        Err(InvoiceError::MissingField(_))
    ));
    assert_eq!(
        builder(Network::Mainnet).description("x".repeat(MAX_DESCRIPTION_LEN + 1)).sign(&k),
        Err(InvoiceError::DescriptionTooLong(MAX_DESCRIPTION_LEN + 1))
    );
    let longest =
        builder(Network::Mainnet).description("é".repeat(MAX_DESCRIPTION_LEN / 2)).sign(&k);
    assert!(Invoice::parse(&longest.unwrap().to_string()).is_ok());
    let longest =
        builder(Network::Mainnet).description("x".repeat(MAX_DESCRIPTION_LEN)).sign(&k).unwrap();
    assert_eq!(Invoice::parse(&longest.to_string()).unwrap(), longest);
    assert_eq!(
        builder(Network::Mainnet).timestamp(MAX_TIMESTAMP + 1).sign(&k),
        Err(InvoiceError::TimestampOutOfRange(MAX_TIMESTAMP + 1))
    );
    assert!(builder(Network::Mainnet).timestamp(MAX_TIMESTAMP).sign(&k).is_ok());
    assert_eq!(
        builder(Network::Mainnet).amount_milli_resonance(0).sign(&k),
        Err(AmountError::Zero.into())
    );
    assert!(matches!(
        builder(Network::Mainnet).amount_milli_resonance(MAX_AMOUNT_MILLI_RESONANCE + 1).sign(&k),
        Err(InvoiceError::Amount(AmountError::TooLarge(_)))
    ));
    assert_eq!(
        builder(Network::Mainnet).features(InvoiceFeatures::new().with_bit(40)).sign(&k),
        Err(InvoiceError::UnknownRequiredFeature(40))
    );
    assert_eq!(RouteHint::new(vec![]), Err(InvoiceError::RouteHintLength(0)));
    assert_eq!(RouteHint::new(vec![hop(1); 13]), Err(InvoiceError::RouteHintLength(13)));
    // No explicit timestamp: the system clock.
    let now = InvoiceBuilder::new(Network::Mainnet)
        .payment_hash([3; 32])
        .payment_secret(SECRET)
        .description("now")
        .sign(&k)
        .unwrap();
    assert!(now.timestamp() > TIMESTAMP && now.timestamp() <= MAX_TIMESTAMP);
}

#[test]
fn invoice_long_invoices_beyond_bip173_limits() {
    let mut b = builder(Network::Testnet);
    for i in 0..4u8 {
        b = b.route_hint(RouteHint::new((0..12).map(|j| hop(i * 12 + j + 1)).collect()).unwrap());
    }
    let invoice = b.sign(&key(9)).unwrap();
    let s = invoice.to_string();
    assert!(s.len() > 3000, "{}", s.len());
    let parsed = Invoice::parse(&s).unwrap();
    assert_eq!(parsed.to_string(), s);
    assert_eq!(parsed.route_hints().len(), 4);
    assert_eq!(parsed.route_hints()[3].hops()[11], hop(48));
    // Too many hints for MAX_INVOICE_LEN: refused by the builder, and such a string by parse.
    let mut b = builder(Network::Testnet);
    for _ in 0..9 {
        b = b.route_hint(RouteHint::new(vec![hop(1); 12]).unwrap());
    }
    assert!(matches!(b.sign(&key(9)), Err(InvoiceError::TooLong { .. })));
    let long = format!("{s}{}", "q".repeat(MAX_INVOICE_LEN));
    assert_eq!(Invoice::parse(&long), Err(InvoiceError::TooLong { len: long.len() }));
}

#[test]
fn invoice_not_bech32_rejected_without_panic() {
    for s in [
        "",
        "1",
        "ln",
        "lnrnt",
        "lnrnt1",
        "lnrnt1b",
        "lnrnt1qqqqqqqqq\u{e9}",
        "\u{e9}1qqqqqq",
        "lnrnt 1qqqqqq",
    ] {
        assert!(Invoice::parse(s).is_err(), "{s:?}");
    }
}

// ---- Properties. ----

fn arb_features() -> impl Strategy<Value = InvoiceFeatures> {
    (
        prop::collection::btree_set((10u16..300).prop_map(|b| b * 2 + 1), 0..4),
        0u8..4,
        any::<[bool; 3]>(),
    )
        .prop_map(|(odd, depth, required)| {
            let mut f = InvoiceFeatures::new();
            for b in odd {
                f.set_bit(b);
            }
            // A dependency-consistent prefix of var_onion_optin → payment_secret → basic_mpp.
            for (i, even) in
                [VAR_ONION_OPTIN_REQUIRED, PAYMENT_SECRET_REQUIRED, 16].into_iter().enumerate()
            {
                if usize::from(depth) > i {
                    f.set_bit(if required[i] { even } else { even + 1 });
                }
            }
            f
        })
}

fn arb_hop() -> impl Strategy<Value = RouteHintHop> {
    (1u8..=255, any::<u64>(), any::<u32>(), any::<u32>(), any::<u16>()).prop_map(
        |(k, scid, base, prop, cltv)| RouteHintHop {
            src_node_id: key(k).public_key(),
            short_channel_id: scid,
            fee_base_msat: base,
            fee_proportional_millionths: prop,
            cltv_expiry_delta: cltv,
        },
    )
}

#[derive(Debug, Clone)]
struct Params {
    network: Network,
    amount: Option<u64>,
    timestamp: u64,
    hash: [u8; 32],
    secret: [u8; 32],
    description: Result<String, [u8; 32]>,
    expiry: u64,
    cltv: u32,
    hints: Vec<Vec<RouteHintHop>>,
    features: InvoiceFeatures,
    key: u8,
}

fn arb_params() -> impl Strategy<Value = Params> {
    (
        (
            prop::sample::select(Network::ALL.to_vec()),
            prop::option::of(prop_oneof![
                1u64..=MAX_AMOUNT_MILLI_RESONANCE,
                (1u64..=21_000_000).prop_map(|n| n * 1000),
                (1u64..=21_000).prop_map(|n| n * MILLI_RESONANCE_PER_RNT),
            ]),
            0u64..=MAX_TIMESTAMP,
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
        ),
        (
            prop_oneof!["\\PC{0,80}".prop_map(Ok), any::<[u8; 32]>().prop_map(Err)],
            prop_oneof![Just(DEFAULT_EXPIRY_SECS), any::<u64>(), 0u64..100_000],
            any::<u32>(),
            prop::collection::vec(prop::collection::vec(arb_hop(), 1..4), 0..3),
            arb_features(),
            any::<u8>(),
        ),
    )
        .prop_map(
            |(
                (network, amount, timestamp, hash, secret),
                (description, expiry, cltv, hints, features, key),
            )| Params {
                network,
                amount,
                timestamp,
                hash,
                secret,
                description,
                expiry,
                cltv,
                hints,
                features,
                key,
            },
        )
}

fn build(p: &Params) -> Invoice {
    let mut b = InvoiceBuilder::new(p.network)
        .timestamp(p.timestamp)
        .payment_hash(p.hash)
        .payment_secret(p.secret)
        .expiry(p.expiry)
        .min_final_cltv_expiry_delta(p.cltv)
        .features(p.features.clone());
    b = match &p.description {
        Ok(text) => b.description(text.clone()),
        Err(hash) => b.description_hash(*hash),
    };
    if let Some(a) = p.amount {
        b = b.amount_milli_resonance(a);
    }
    for h in &p.hints {
        b = b.route_hint(RouteHint::new(h.clone()).unwrap());
    }
    b.sign(&key(p.key)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invoice_builder_string_parse_is_identity(p in arb_params()) {
        let invoice = build(&p);
        let s = invoice.to_string();
        let parsed = Invoice::parse(&s).unwrap();
        prop_assert_eq!(&parsed, &invoice);
        prop_assert_eq!(parsed.to_string(), s.clone());
        prop_assert_eq!(Invoice::parse(&s.to_ascii_uppercase()).unwrap(), invoice);
        prop_assert_eq!(parsed.network(), p.network);
        prop_assert_eq!(parsed.amount_milli_resonance(), p.amount);
        prop_assert_eq!(parsed.timestamp(), p.timestamp);
        prop_assert_eq!(parsed.payment_hash(), &p.hash);
        prop_assert_eq!(parsed.payment_secret(), &p.secret);
        prop_assert_eq!(parsed.expiry(), p.expiry);
        prop_assert_eq!(parsed.min_final_cltv_expiry_delta(), p.cltv);
        prop_assert_eq!(parsed.features(), &p.features);
        prop_assert_eq!(parsed.route_hints().iter().map(|h| h.hops().to_vec()).collect::<Vec<_>>(), p.hints.clone());
        prop_assert_eq!(parsed.payee(), &key(p.key).public_key());
        match &p.description {
            Ok(t) => prop_assert_eq!(parsed.description(), &InvoiceDescription::Text(t.clone())),
            Err(h) => prop_assert_eq!(parsed.description(), &InvoiceDescription::Hash(*h)),
        }
    }

    #[test]
    fn invoice_any_single_substitution_is_rejected(p in arb_params(), pos in any::<prop::sample::Index>(), c in 0usize..32) {
        let s = build(&p).to_string();
        let i = pos.index(s.len());
        let charset = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        let mut bytes = s.clone().into_bytes();
        let replacement = if charset[c] == bytes[i] { charset[(c + 1) % 32] } else { charset[c] };
        bytes[i] = replacement;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(Invoice::parse(&mutated).is_err(), "{} accepted", mutated);
    }

    #[test]
    fn invoice_decode_never_panics_on_arbitrary_strings(s in "\\PC{0,400}") {
        let _ = Invoice::parse(&s);
    }

    #[test]
    fn invoice_decode_never_panics_on_invoice_like_strings(
        hrp in "ln(rnt|trnt|rrnt|bc)[0-9]{0,4}[munpk]?",
        data in prop::collection::vec(0u8..32, 0..400),
    ) {
        // Valid checksum, arbitrary words: exercises field parsing, not just the checksum.
        let s = bech32_encode::<Bech32>(&hrp, &data);
        if let Ok(invoice) = Invoice::parse(&s) {
            prop_assert_eq!(invoice.to_string(), s);
        }
    }

    #[test]
    fn invoice_mutated_fields_never_panic(p in arb_params(), pos in any::<prop::sample::Index>(), w in 0u8..32) {
        // Change one data word and fix up the checksum: structure errors or a bad signature.
        let s = build(&p).to_string();
        let sep = s.rfind('1').unwrap();
        let hrp = &s[..sep];
        let mut words: Vec<u8> = s[sep + 1..s.len() - 6]
            .chars()
            .map(|c| Fe32::from_char(c).unwrap().to_u8())
            .collect();
        let i = pos.index(words.len());
        prop_assume!(words[i] != w);
        words[i] = w;
        let mutated = bech32_encode::<Bech32>(hrp, &words);
        prop_assert!(Invoice::parse(&mutated).is_err());
    }
}
