//! Lightning between two real `rnetd -lightning` processes on regtest, with blocks mined by
//! training (docs/lightning.md §8): A connects to B over the authenticated Lightning link, funds
//! a channel from its wallet, both follow it to `Normal` through the mined blocks, B issues an
//! invoice that A pays, and a cooperative close pays B's side to B's wallet (a recovery-policy
//! address). Balances are checked to the milli-resonance.

use std::path::Path;
use std::time::{Duration, Instant};

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");
/// The channel: 1 RNT.
const CAPACITY: u64 = 100_000_000;
/// The payment: 0.0001 RNT in milli-resonance.
const PAYMENT_MSAT: u64 = 10_000_000;

fn start() -> TestNode {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> TestNode {
    let mut args = vec!["-port=0", "-bind=127.0.0.1", "-connect=0", "-lightning=127.0.0.1:0"];
    args.extend_from_slice(extra);
    TestNode::start(Path::new(RNETD), &args).expect("rnetd starts")
}

fn policy() -> Value {
    let recovery = hex::encode(SigningKey::from_bytes(&[0x11; 32]).public_key().as_bytes());
    json!({ "heartbeat": { "recovery": recovery, "interval": 1000 } })
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn height(n: &TestNode) -> u64 {
    n.call("getblockcount", json!([])).unwrap().as_u64().unwrap()
}

fn channel(n: &TestNode) -> Value {
    let list = n.call("listpeerchannels", json!([])).unwrap();
    list["channels"].as_array().and_then(|c| c.first().cloned()).unwrap_or(Value::Null)
}

fn mine(miner: &TestNode, other: &TestNode, blocks: u64, address: &str) {
    miner.call("generatetoaddress", json!([blocks, address])).unwrap();
    let target = height(miner);
    wait_until("the other node to follow", 60, || height(other) >= target);
}

fn balance(n: &TestNode) -> f64 {
    let b = n.call("getbalances", json!([])).unwrap();
    b["mine"]["trusted"].as_f64().unwrap() + b["mine"]["untrusted_pending"].as_f64().unwrap()
}

/// Everything the wallet owns, immature coinbases included (unchanged as coinbases mature).
fn total_balance(n: &TestNode) -> f64 {
    let b = n.call("getbalances", json!([])).unwrap();
    balance(n) + b["mine"]["immature"].as_f64().unwrap()
}

/// The Lightning node id and port of `n`.
fn id_port(n: &TestNode) -> (String, u64) {
    let i = n.call("getlightninginfo", json!([])).unwrap();
    (i["id"].as_str().unwrap().to_string(), i["port"].as_u64().unwrap())
}

/// `n`'s (first) channel with `peer`.
fn channel_with(n: &TestNode, peer: &str) -> Value {
    n.call("listpeerchannels", json!([peer])).unwrap()["channels"][0].clone()
}

/// Three nodes in a line, A → B → C: A opens a channel to B and B one to C (1 RNT each, B's
/// funded by coins from A), confirmed and `Normal` on all four ends. C runs with `c_extra`.
struct Line {
    a: TestNode,
    b: TestNode,
    c: TestNode,
    a_id: String,
    b_id: String,
    c_id: String,
    a_addr: String,
}

fn open_line(c_extra: &[&str]) -> Line {
    let (a, b, c) = (start(), start(), start_with(c_extra));
    for (n, name) in [(&a, "A"), (&b, "B"), (&c, "C")] {
        n.call("createwallet", json!([name, policy()])).unwrap();
    }
    for n in [&b, &c] {
        n.call("addnode", json!([a.p2p_addr().to_string(), "onetry"])).unwrap();
    }
    let mine_all = |blocks: u64, address: &str| {
        a.call("generatetoaddress", json!([blocks, address])).unwrap();
        let target = height(&a);
        for n in [&b, &c] {
            wait_until("the others to follow", 60, || height(n) >= target);
        }
    };
    let a_addr = a.call("getnewaddress", json!([])).unwrap().as_str().unwrap().to_string();
    let b_addr = b.call("getnewaddress", json!([])).unwrap().as_str().unwrap().to_string();
    mine_all(8, &a_addr);
    // B needs coins to fund its channel to C.
    a.call("sendtoaddress", json!([b_addr, 3.0])).unwrap();
    mine_all(1, &a_addr);
    let ((a_id, _), (b_id, b_port), (c_id, c_port)) = (id_port(&a), id_port(&b), id_port(&c));
    a.call("connect", json!([b_id, "127.0.0.1", b_port])).unwrap();
    b.call("connect", json!([c_id, "127.0.0.1", c_port])).unwrap();
    a.call("fundchannel", json!([b_id, CAPACITY])).unwrap();
    b.call("fundchannel", json!([c_id, CAPACITY])).unwrap();
    wait_until("both funding transactions in A's mempool", 30, || {
        a.call("getrawmempool", json!([])).unwrap().as_array().unwrap().len() >= 2
    });
    mine_all(3, &a_addr);
    for (n, peer) in [(&a, &b_id), (&b, &a_id), (&b, &c_id), (&c, &b_id)] {
        wait_until("every channel to be Normal", 60, || {
            channel_with(n, peer)["state"] == json!("Normal")
        });
    }
    Line { a, b, c, a_id, b_id, c_id, a_addr }
}

#[test]
fn a_channel_opens_pays_an_invoice_and_closes_between_two_nodes() {
    let a = start();
    let b = start();
    // Without a wallet the Lightning node cannot be created yet.
    let e = a.call("invoice", json!([1000, "x"])).unwrap_err();
    assert!(e.to_string().contains("wallet"), "{e}");
    a.call("createwallet", json!(["A", policy()])).unwrap();
    b.call("createwallet", json!(["B", policy()])).unwrap();
    b.call("addnode", json!([a.p2p_addr().to_string(), "onetry"])).unwrap();
    let address = a.call("getnewaddress", json!([])).unwrap();
    let address = address.as_str().unwrap();
    // Coinbase maturity is 5 on regtest: 8 blocks give A spendable coins.
    mine(&a, &b, 8, address);

    let info = b.call("getlightninginfo", json!([])).unwrap();
    let (b_id, b_port) = (info["id"].as_str().unwrap().to_string(), info["port"].as_u64().unwrap());
    // Bad input is refused with a clear error.
    assert!(a.call("connect", json!(["zz", "127.0.0.1", b_port])).is_err());
    assert!(a.call("decodepay", json!(["lnrrnt1notaninvoice"])).is_err());
    a.call("connect", json!([b_id, "127.0.0.1", b_port])).unwrap();
    let funded = a.call("fundchannel", json!([b_id, CAPACITY])).unwrap();
    let funding_txid = funded["txid"].as_str().unwrap().to_string();
    // The funding transaction reaches the chain; three confirmations make the channel ready.
    wait_until("the funding transaction in A's mempool", 30, || {
        let pool = a.call("getrawmempool", json!([])).unwrap();
        pool.as_array().unwrap().iter().any(|t| t.as_str() == Some(&funding_txid))
    });
    mine(&a, &b, 3, address);
    for n in [&a, &b] {
        wait_until("the channel to be Normal", 60, || channel(n)["state"] == json!("Normal"));
    }
    let (ca, cb) = (channel(&a), channel(&b));
    assert_eq!(ca["total_msat"], json!(CAPACITY * 1000));
    assert_eq!(ca["funding_txid"], json!(funding_txid));
    assert_eq!(cb["to_us_msat"], json!(0));
    let a_before = ca["to_us_msat"].as_u64().unwrap();

    // B invoices, A pays: exact balances on both sides afterwards.
    let invoice = b.call("invoice", json!([PAYMENT_MSAT, "coffee"])).unwrap();
    let bolt11 = invoice["bolt11"].as_str().unwrap();
    assert!(bolt11.starts_with("lnrrnt"), "{bolt11}");
    let decoded = a.call("decodepay", json!([bolt11])).unwrap();
    assert_eq!(decoded["amount_msat"], json!(PAYMENT_MSAT));
    assert_eq!(decoded["payee"], json!(b_id));
    assert_eq!(decoded["description"], json!("coffee"));
    let paid = a.call("pay", json!([bolt11])).unwrap();
    assert_eq!(paid["status"], json!("complete"), "{paid}");
    let preimage: [u8; 32] =
        hex::decode(paid["payment_preimage"].as_str().unwrap()).unwrap().try_into().unwrap();
    assert_eq!(
        hex::encode(rnet_crypto::keccak256d(&preimage)),
        invoice["payment_hash"].as_str().unwrap()
    );
    assert_eq!(paid["amount_sent_msat"], json!(PAYMENT_MSAT), "a direct channel costs no fee");
    wait_until("both sides to settle", 30, || {
        channel(&b)["to_us_msat"] == json!(PAYMENT_MSAT)
            && channel(&a)["to_us_msat"] == json!(a_before - PAYMENT_MSAT)
            && channel(&a)["pending_htlcs"] == json!(0)
    });
    let invoices = b.call("listinvoices", json!([])).unwrap();
    assert_eq!(invoices["invoices"][0]["status"], json!("paid"));
    assert_eq!(invoices["invoices"][0]["amount_received_msat"], json!(PAYMENT_MSAT));
    let pays = a.call("listpays", json!([])).unwrap();
    assert_eq!(pays["pays"][0]["status"], json!("complete"));
    // Paying the same invoice again is refused (the payee would accept it twice).
    let again = a.call("pay", json!([bolt11])).unwrap_err();
    assert!(again.to_string().contains("already paid"), "{again}");

    // A cooperative close pays each side's balance to its own wallet: B's in full, A's less
    // the closing fee (A opened the channel, so A pays it).
    let b_wallet_before = balance(&b);
    let a_balance_msat = channel(&a)["to_us_msat"].as_u64().unwrap();
    let closed = a.call("close", json!([b_id])).unwrap();
    assert_eq!(closed["type"], json!("mutual"));
    let mut closing_txid = String::new();
    wait_until("the closing transaction in A's mempool", 60, || {
        let pool = a.call("getrawmempool", json!([])).unwrap();
        closing_txid = pool[0].as_str().unwrap_or_default().to_string();
        !closing_txid.is_empty()
    });
    mine(&a, &b, 1, address);
    for n in [&a, &b] {
        wait_until("the channel to be closed", 60, || channel(n)["state"] == json!("Closed"));
    }
    let gained = balance(&b) - b_wallet_before;
    let expected = (PAYMENT_MSAT / 1000) as f64 / 1e8;
    assert!((gained - expected).abs() < 1e-9, "B's wallet gained {gained}, expected {expected}");
    let block = a.call("getbestblockhash", json!([])).unwrap();
    let tx = a.call("getrawtransaction", json!([closing_txid, true, block])).unwrap();
    let to_sat = |v: &Value| (v.as_f64().unwrap() * 1e8).round() as u64;
    let outputs: Vec<u64> =
        tx["vout"].as_array().unwrap().iter().map(|o| to_sat(&o["value"])).collect();
    assert_eq!(outputs.len(), 2, "{tx}");
    let fee = CAPACITY - outputs.iter().sum::<u64>();
    let wallet_coin = |n: &TestNode| -> u64 {
        let coins = n.call("listunspent", json!([0])).unwrap();
        let coin = coins.as_array().unwrap().iter().find(|c| c["txid"] == json!(closing_txid));
        coin.map_or(0, |c| to_sat(&c["amount"]))
    };
    assert_eq!(wallet_coin(&b), PAYMENT_MSAT / 1000, "B's wallet holds B's output");
    assert_eq!(wallet_coin(&a), a_balance_msat / 1000 - fee, "A's wallet holds A's output");
    assert!(fee > 0 && fee < 10_000, "closing fee {fee}");
}

/// A opens to B and B to C; C's invoice carries a route hint (B told C its forwarding policy
/// with a `channel_update`), and A pays it through B. B earns its fee: 1,000 msat + 100 ppm.
#[test]
fn a_pays_c_through_b_with_exact_fees() {
    let Line { a, b, c, a_id, b_id, c_id, a_addr } = open_line(&[]);
    let mine_all = |blocks: u64, address: &str| {
        a.call("generatetoaddress", json!([blocks, address])).unwrap();
        let target = height(&a);
        for n in [&b, &c] {
            wait_until("the others to follow", 60, || height(n) >= target);
        }
    };
    let normal = channel_with;
    // C's invoice names B's channel and policy once B's channel_update reached C.
    let mut bolt11 = String::new();
    wait_until("C to learn B's policy", 30, || {
        let inv = c.call("invoice", json!([PAYMENT_MSAT, "through B"])).unwrap();
        bolt11 = inv["bolt11"].as_str().unwrap().to_string();
        let decoded = a.call("decodepay", json!([bolt11])).unwrap();
        decoded["routes"].as_array().is_some_and(|r| !r.is_empty())
    });
    let decoded = a.call("decodepay", json!([bolt11])).unwrap();
    let hop = &decoded["routes"][0][0];
    assert_eq!(hop["pubkey"], json!(b_id));
    assert_eq!(
        (hop["fee_base_msat"].as_u64(), hop["fee_proportional_millionths"].as_u64()),
        (Some(1000), Some(100))
    );

    let (a_before, b_in_before, b_out_before) = (
        normal(&a, &b_id)["to_us_msat"].as_u64().unwrap(),
        normal(&b, &a_id)["to_us_msat"].as_u64().unwrap(),
        normal(&b, &c_id)["to_us_msat"].as_u64().unwrap(),
    );
    let paid = a.call("pay", json!([bolt11])).unwrap();
    let fee = 1000 + PAYMENT_MSAT * 100 / 1_000_000;
    assert_eq!(paid["status"], json!("complete"), "{paid}");
    assert_eq!(paid["amount_sent_msat"], json!(PAYMENT_MSAT + fee));
    wait_until("every side to settle", 30, || {
        normal(&a, &b_id)["to_us_msat"] == json!(a_before - PAYMENT_MSAT - fee)
            && normal(&b, &a_id)["to_us_msat"] == json!(b_in_before + PAYMENT_MSAT + fee)
            && normal(&b, &c_id)["to_us_msat"] == json!(b_out_before - PAYMENT_MSAT)
            && normal(&c, &b_id)["to_us_msat"] == json!(PAYMENT_MSAT)
    });
    // What each side could claim on chain adds up: on each end's latest commitment, both
    // balances, HTLCs and the fee make the channel's value; both ends agree on who owns what;
    // the opener pays the fee, so the other side's claim is its balance floored to resonance.
    for (x, x_id, y, y_id) in [(&a, &a_id, &b, &b_id), (&b, &b_id, &c, &c_id)] {
        let (xy, yx) = (normal(x, y_id), normal(y, x_id));
        let (ox, oy) = (&xy["onchain"], &yx["onchain"]);
        let sat = |o: &Value, k: &str| o[k].as_u64().unwrap();
        for (ch, o) in [(&xy, ox), (&yx, oy)] {
            let parts = ["to_us_sat", "to_them_sat", "offered_htlcs_sat", "received_htlcs_sat"];
            let outputs: u64 = parts.iter().map(|k| sat(o, k)).sum();
            assert_eq!(outputs + sat(o, "fee_sat"), CAPACITY, "{ch}");
            assert_eq!(sat(o, "offered_htlcs_sat") + sat(o, "received_htlcs_sat"), 0);
        }
        assert_eq!(sat(ox, "to_us_sat"), sat(oy, "to_them_sat"));
        assert_eq!(sat(ox, "to_them_sat"), sat(oy, "to_us_sat"));
        assert_eq!(xy["opener"], json!("local"));
        assert_eq!(sat(ox, "to_them_sat"), yx["to_us_msat"].as_u64().unwrap() / 1000);
    }
    // C's claim is exactly what it was paid.
    assert_eq!(normal(&c, &b_id)["onchain"]["to_us_sat"], json!(PAYMENT_MSAT / 1000));

    let route = a.call("getroute", json!([c_id, PAYMENT_MSAT])).unwrap_err();
    assert!(
        route.to_string().contains("no route"),
        "C is private: only its invoice's hint reaches it"
    );

    // A measurement, not a timed assertion: sequential 2-hop payments over loopback, each an
    // `invoice` RPC on C and a `pay` RPC on A that returns once the preimage is back.
    // With RNET_LN_WORKERS > 1, that many RPC clients pay at once (as the Bottlepay benchmark's
    // 100 workers do), so HTLCs share commitment updates.
    let env = |name: &str, default: u64| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let (n, workers) = (env("RNET_LN_PAYMENTS", 20), env("RNET_LN_WORKERS", 1).max(1));
    let invoices: Vec<Value> = (0..n)
        .map(|i| {
            c.call("invoice", json!([1_000_000, format!("bench {i}")])).unwrap()["bolt11"].clone()
        })
        .collect();
    let started = Instant::now();
    let payers: Vec<_> = (0..workers)
        .map(|w| {
            let mine: Vec<Value> =
                invoices.iter().skip(w as usize).step_by(workers as usize).cloned().collect();
            let (url, cookie) = (a.url(), a.network_dir().join(rnet_rpc::COOKIE_FILE));
            std::thread::spawn(move || {
                let client =
                    rnet_rpc::RpcClient::new(&url, rnet_rpc::Auth::Cookie(cookie)).unwrap();
                for bolt11 in mine {
                    let paid = client.call("pay", json!([bolt11])).unwrap();
                    assert_eq!(paid["status"], json!("complete"));
                }
            })
        })
        .collect();
    for payer in payers {
        payer.join().unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "LIGHTNING: {n} 2-hop payments by {workers} concurrent payer(s) between three rnetd on \
         loopback in {secs:.2} s: {:.1} payments/s",
        n as f64 / secs
    );

    // Six blocks deep, both channels are announced (fundchannel's default): B and C exchange
    // announcement_signatures, B gossips B–C's announcement and C's update to A, A checks the
    // funding output on its own chain, and A routes to C from its graph alone.
    mine_all(3, &a_addr);
    let mut route = Value::Null;
    wait_until("A to learn B–C from gossip", 60, || {
        route = a.call("getroute", json!([c_id, PAYMENT_MSAT])).unwrap_or(Value::Null);
        !route.is_null()
    });
    let hops = route["route"].as_array().unwrap();
    assert_eq!(hops.len(), 2, "{route}");
    assert_eq!((hops[0]["id"].as_str(), hops[1]["id"].as_str()), (Some(&*b_id), Some(&*c_id)));
    assert_eq!(hops[0]["amount_msat"], json!(PAYMENT_MSAT + fee), "B's gossiped fee");
    assert_eq!(hops[1]["channel"], normal(&c, &b_id)["short_channel_id"]);
}

/// B broadcasts a commitment it has revoked; A's node notices it on chain and its penalty
/// takes the whole channel: A's wallet gains the channel's value less the fees, B's gains
/// nothing.
#[test]
fn a_revoked_commitment_on_chain_is_punished() {
    let (a, b) = (start(), start());
    a.call("createwallet", json!(["A", policy()])).unwrap();
    b.call("createwallet", json!(["B", policy()])).unwrap();
    b.call("addnode", json!([a.p2p_addr().to_string(), "onetry"])).unwrap();
    let address = a.call("getnewaddress", json!([])).unwrap().as_str().unwrap().to_string();
    mine(&a, &b, 8, &address);
    let info = b.call("getlightninginfo", json!([])).unwrap();
    let (b_id, b_port) = (info["id"].as_str().unwrap().to_string(), info["port"].as_u64().unwrap());
    let a_id = a.call("getlightninginfo", json!([])).unwrap()["id"].as_str().unwrap().to_string();
    a.call("connect", json!([b_id, "127.0.0.1", b_port])).unwrap();
    a.call("fundchannel", json!([b_id, CAPACITY])).unwrap();
    wait_until("the funding transaction", 30, || {
        !a.call("getrawmempool", json!([])).unwrap().as_array().unwrap().is_empty()
    });
    mine(&a, &b, 3, &address);
    for n in [&a, &b] {
        wait_until("the channel to be Normal", 60, || channel(n)["state"] == json!("Normal"));
    }
    // A pays B 0.03 RNT; B saves that state's commitment, then pays 0.01 RNT back (staying above
    // its channel reserve, 1 % of the capacity), which revokes the saved state.
    let (to_b, back) = (3_000_000_000u64, 1_000_000_000u64);
    let inv = b.call("invoice", json!([to_b, "to B"])).unwrap();
    a.call("pay", json!([inv["bolt11"]])).unwrap();
    wait_until("B to hold 0.03 RNT", 30, || channel(&b)["to_us_msat"] == json!(to_b));
    let old = b.call("devsignlasttx", json!([a_id])).unwrap();
    let inv = a.call("invoice", json!([back, "back to A"])).unwrap();
    b.call("pay", json!([inv["bolt11"]])).unwrap();
    wait_until("the old state to be revoked", 30, || {
        channel(&b)["to_us_msat"] == json!(to_b - back) && channel(&a)["pending_htlcs"] == json!(0)
    });
    let (a_wallet, b_wallet) = (balance(&a), balance(&b));

    // B cheats: its revoked commitment goes to the chain.
    let old_txid = old["txid"].as_str().unwrap().to_string();
    b.call("sendrawtransaction", json!([old["tx"]])).unwrap();
    wait_until("the revoked commitment in A's mempool", 30, || {
        a.call("getrawmempool", json!([]))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == &json!(old_txid))
    });
    mine(&a, &b, 1, &address);
    // A's node broadcasts the penalty; it confirms in the next block.
    wait_until("A's penalty in its mempool", 60, || {
        !a.call("getrawmempool", json!([])).unwrap().as_array().unwrap().is_empty()
    });
    mine(&a, &b, 1, &address);
    wait_until("A's wallet to receive the penalty", 60, || balance(&a) > a_wallet + 0.5);
    // A also mined the two blocks: their coinbases are not part of the penalty.
    let coinbase = |depth: u64| {
        let hash = a.call("getblockhash", json!([height(&a) - depth])).unwrap();
        let block = a.call("getblock", json!([hash, 2])).unwrap();
        block["tx"][0]["vout"][0]["value"].as_f64().unwrap()
    };
    let gained = balance(&a) - a_wallet - coinbase(0) - coinbase(1);
    println!(
        "PENALTY: A's wallet {a_wallet} -> {}, coinbases {} + {}, penalty gain {gained}",
        balance(&a),
        coinbase(0),
        coinbase(1)
    );
    let capacity = CAPACITY as f64 / 1e8;
    assert!(gained > capacity - 0.0001 && gained <= capacity, "A gained {gained} of {capacity}");
    assert!(balance(&b) <= b_wallet + 1e-12, "B gets nothing back");
    wait_until("A's channel to be closed", 30, || channel(&a)["state"] == json!("Closed"));
}

/// The same breach while A is offline: A's node gave its watchtower (a third `rnetd` with
/// `-watchtower`, no wallet) an encrypted appointment for every revoked state; the tower sees
/// the revoked commitment in a block B mined and broadcasts the penalty, which pays A's wallet.
/// A, restarted later, finds the channel's value in its wallet.
#[test]
fn a_watchtower_punishes_a_breach_while_the_victim_is_offline() {
    let tower = start_with(&["-watchtower"]);
    let t = tower.call("getlightninginfo", json!([])).unwrap();
    assert_eq!(t["watchtower_appointments"], json!(0));
    let lntower = format!("-lntower={}@127.0.0.1:{}", t["id"].as_str().unwrap(), t["port"]);
    let mut a = start_with(&[&lntower]);
    let b = start();
    a.call("createwallet", json!(["A", policy()])).unwrap();
    b.call("createwallet", json!(["B", policy()])).unwrap();
    for n in [&b, &tower] {
        n.call("addnode", json!([a.p2p_addr().to_string(), "onetry"])).unwrap();
    }
    tower.call("addnode", json!([b.p2p_addr().to_string(), "onetry"])).unwrap();
    let address = a.call("getnewaddress", json!([])).unwrap().as_str().unwrap().to_string();
    mine(&a, &b, 8, &address);
    let info = b.call("getlightninginfo", json!([])).unwrap();
    let (b_id, b_port) = (info["id"].as_str().unwrap().to_string(), info["port"].as_u64().unwrap());
    let a_id = a.call("getlightninginfo", json!([])).unwrap()["id"].as_str().unwrap().to_string();
    a.call("connect", json!([b_id, "127.0.0.1", b_port])).unwrap();
    a.call("fundchannel", json!([b_id, CAPACITY])).unwrap();
    wait_until("the funding transaction", 30, || {
        !a.call("getrawmempool", json!([])).unwrap().as_array().unwrap().is_empty()
    });
    mine(&a, &b, 3, &address);
    for n in [&a, &b] {
        wait_until("the channel to be Normal", 60, || channel(n)["state"] == json!("Normal"));
    }
    let (to_b, back) = (3_000_000_000u64, 1_000_000_000u64);
    let inv = b.call("invoice", json!([to_b, "to B"])).unwrap();
    a.call("pay", json!([inv["bolt11"]])).unwrap();
    wait_until("B to hold 0.03 RNT", 30, || channel(&b)["to_us_msat"] == json!(to_b));
    let old = b.call("devsignlasttx", json!([a_id])).unwrap();
    let inv = a.call("invoice", json!([back, "back to A"])).unwrap();
    b.call("pay", json!([inv["bolt11"]])).unwrap();
    wait_until("the tower to hold A's appointments", 60, || {
        let n = tower.call("getlightninginfo", json!([])).unwrap()["watchtower_appointments"]
            .as_u64()
            .unwrap();
        n >= 2 && channel(&a)["pending_htlcs"] == json!(0)
    });
    let a_wallet = total_balance(&a);
    let tip_before = height(&a);

    // A goes offline; B cheats and mines the revoked commitment itself.
    a.kill();
    let b_address = b.call("getnewaddress", json!([])).unwrap().as_str().unwrap().to_string();
    b.call("sendrawtransaction", json!([old["tx"]])).unwrap();
    b.call("generatetoaddress", json!([1, b_address])).unwrap();
    let breach_height = height(&b);
    wait_until("the tower to see the breach block", 60, || height(&tower) >= breach_height);
    // The tower's penalty reaches B's mempool (relayed) and B's next block.
    wait_until("the tower's penalty in B's mempool", 60, || {
        !b.call("getrawmempool", json!([])).unwrap().as_array().unwrap().is_empty()
    });
    b.call("generatetoaddress", json!([1, b_address])).unwrap();

    // A comes back, catches up, and finds the channel's value in its wallet.
    a.restart(&[]).unwrap();
    a.call("addnode", json!([b.p2p_addr().to_string(), "onetry"])).unwrap();
    let target = height(&b);
    wait_until("A to catch up", 60, || height(&a) >= target);
    a.call("loadwallet", json!(["A"])).unwrap();
    // B's delayed output went to A's wallet through the tower's penalty; A's own output of
    // the revoked commitment is swept by A's node now that it is back.
    wait_until("A's sweep of its own output", 60, || {
        !a.call("getrawmempool", json!([])).unwrap().as_array().unwrap().is_empty()
    });
    b.call("generatetoaddress", json!([1, b_address])).unwrap();
    let target = height(&b);
    wait_until("A to see the sweep confirmed", 60, || height(&a) >= target);
    let capacity = CAPACITY as f64 / 1e8;
    let mut gained = 0.0;
    wait_until("A's wallet to hold the channel's value", 30, || {
        gained = total_balance(&a) - a_wallet;
        gained > capacity - 0.0001
    });
    println!(
        "WATCHTOWER: A's wallet gained {gained} of {capacity} while offline (blocks {tip_before}..{target})"
    );
    assert!(gained > capacity - 0.0001 && gained <= capacity, "A gained {gained} of {capacity}");
}

/// A payment C never settles: C (started with `-lndevholdhtlcs`) takes the HTLC and then goes
/// offline. As the HTLC nears its expiry, B closes its channel to C on chain and times the HTLC
/// out there; the failure travels back and A's channel balance is whole again.
#[test]
fn a_payment_c_never_settles_times_out_and_refunds_a() {
    let Line { a, b, mut c, b_id, c_id, a_addr, .. } = open_line(&["-lndevholdhtlcs"]);
    let mine_all = |blocks: u64, address: &str| {
        a.call("generatetoaddress", json!([blocks, address])).unwrap();
        let target = height(&a);
        wait_until("B to follow", 60, || height(&b) >= target);
    };
    let with = channel_with;
    let mut bolt11 = String::new();
    wait_until("C to learn B's policy", 30, || {
        let inv = c.call("invoice", json!([PAYMENT_MSAT, "never settled"])).unwrap();
        bolt11 = inv["bolt11"].as_str().unwrap().to_string();
        let d = a.call("decodepay", json!([bolt11])).unwrap();
        d["routes"].as_array().is_some_and(|r| !r.is_empty())
    });
    let a_before = with(&a, &b_id)["to_us_msat"].as_u64().unwrap();

    // A pays (the RPC waits); C takes the HTLC and holds it, then goes offline.
    let url = a.url();
    let cookie = a.network_dir().join(rnet_rpc::COOKIE_FILE);
    let invoice = bolt11.clone();
    let payer = std::thread::spawn(move || {
        let client = rnet_rpc::RpcClient::new(&url, rnet_rpc::Auth::Cookie(cookie)).unwrap();
        client.call("pay", json!([invoice]))
    });
    wait_until("C to hold the HTLC", 30, || with(&c, &b_id)["pending_htlcs"] == json!(1));
    c.kill();
    // Blocks until B gives up on C: it closes on chain and times the HTLC out, then fails it
    // back to A.
    let mut mined = 0;
    while with(&a, &b_id)["pending_htlcs"] != json!(0) {
        assert!(mined < 60, "the HTLC never timed out");
        mine_all(1, &a_addr);
        mined += 1;
    }
    // The payment record is updated by the payer's task when the failure reaches it, just
    // after the channel removed the HTLC (CI once read it "pending" in between).
    let mut pays = json!(null);
    wait_until("A's payment to be marked failed", 30, || {
        pays = a.call("listpays", json!([])).unwrap();
        pays["pays"][0]["status"] != json!("pending")
    });
    assert_eq!(pays["pays"][0]["status"], json!("failed"), "{pays}");
    assert_eq!(with(&a, &b_id)["to_us_msat"], json!(a_before), "A is refunded in full");
    assert!(payer.join().unwrap().is_err(), "pay reports the failure");
    let b_to_c = with(&b, &c_id);
    assert_ne!(b_to_c["state"], json!("Normal"), "B closed its channel to C on chain: {b_to_c}");
    println!("TIMEOUT: the HTLC C held timed out after {mined} blocks; A refunded");
}

/// The Lightning node is created on first use; RPCs that arrive together while it is being
/// created all see it (a race once made the losers fail with "no wallet for Lightning").
#[test]
fn concurrent_first_calls_all_find_the_lightning_node() {
    let a = start();
    a.call("createwallet", json!(["A", policy()])).unwrap();
    let url = a.url();
    let cookie = a.network_dir().join(rnet_rpc::COOKIE_FILE);
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (url, cookie) = (url.clone(), cookie.clone());
            std::thread::spawn(move || {
                let client =
                    rnet_rpc::RpcClient::new(&url, rnet_rpc::Auth::Cookie(cookie)).unwrap();
                client.call("listpeerchannels", json!([]))
            })
        })
        .collect();
    for caller in callers {
        let result = caller.join().unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
    assert!(a.call("getlightninginfo", json!([])).unwrap()["blockheight"].is_u64());
}

/// A node killed mid-payment (SIGKILL, no shutdown) restarts, dials its channel peer again and
/// settles or fails the payment: the payer's record, the payee's invoice and both channel
/// balances always agree, and no HTLC is left hanging. The kills sweep a range of delays after
/// `pay` is called, alternating between the payer and the payee, so that some land while the
/// HTLC is in flight.
#[test]
fn a_node_killed_mid_payment_settles_or_fails_it_after_restart() {
    // Fixed Lightning ports: a restarted node listens where its peer last reached it.
    let start_on_free_port = || {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let lightning = format!("-lightning=127.0.0.1:{port}");
        let args = ["-port=0", "-bind=127.0.0.1", "-connect=0", lightning.as_str()];
        TestNode::start(Path::new(RNETD), &args).expect("rnetd starts")
    };
    let mut a = start_on_free_port();
    let mut b = start_on_free_port();
    a.call("createwallet", json!(["A", policy()])).unwrap();
    b.call("createwallet", json!(["B", policy()])).unwrap();
    b.call("addnode", json!([a.p2p_addr().to_string(), "onetry"])).unwrap();
    let address = a.call("getnewaddress", json!([])).unwrap().as_str().unwrap().to_string();
    mine(&a, &b, 8, &address);
    let info = b.call("getlightninginfo", json!([])).unwrap();
    let (b_id, b_port) = (info["id"].as_str().unwrap().to_string(), info["port"].as_u64().unwrap());
    let a_id = a.call("getlightninginfo", json!([])).unwrap()["id"].as_str().unwrap().to_string();
    a.call("connect", json!([b_id, "127.0.0.1", b_port])).unwrap();
    a.call("fundchannel", json!([b_id, CAPACITY])).unwrap();
    wait_until("the funding transaction", 30, || {
        !a.call("getrawmempool", json!([])).unwrap().as_array().unwrap().is_empty()
    });
    mine(&a, &b, 3, &address);
    let with = |n: &TestNode, peer: &str| {
        n.call("listpeerchannels", json!([peer])).unwrap()["channels"][0].clone()
    };
    for (n, peer) in [(&a, &b_id), (&b, &a_id)] {
        wait_until("the channel to be Normal", 60, || with(n, peer)["state"] == json!("Normal"));
    }
    let a_start = with(&a, &b_id)["to_us_msat"].as_u64().unwrap();
    let status_of = |n: &TestNode, hash: &str| -> Option<String> {
        let pays = n.call("listpays", json!([])).unwrap();
        pays["pays"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["payment_hash"] == json!(hash))
            .map(|p| p["status"].as_str().unwrap().to_string())
    };
    let invoice_paid = |n: &TestNode, hash: &str| {
        let list = n.call("listinvoices", json!([])).unwrap();
        list["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["payment_hash"] == json!(hash) && i["status"] == json!("paid"))
    };
    const AMOUNT: u64 = 1_000_000;
    let (mut paid_total, mut in_flight_kills) = (0u64, 0u32);
    for (round, delay_ms) in [0u64, 2, 4, 6, 9, 12, 16, 20, 25, 30, 40, 55].into_iter().enumerate()
    {
        let invoice = b.call("invoice", json!([AMOUNT, format!("kill {round}")])).unwrap();
        let hash = invoice["payment_hash"].as_str().unwrap().to_string();
        let (url, cookie) = (a.url(), a.network_dir().join(rnet_rpc::COOKIE_FILE));
        let bolt11 = invoice["bolt11"].clone();
        let payer = std::thread::spawn(move || {
            let client = rnet_rpc::RpcClient::new(&url, rnet_rpc::Auth::Cookie(cookie)).unwrap();
            client.call("pay", json!([bolt11]))
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        let payee_killed = round % 2 == 1;
        if payee_killed {
            b.kill_and_restart(&[]).unwrap();
        } else {
            a.kill_and_restart(&[]).unwrap();
        }
        let _ = payer.join();
        // Right after the restart, before the peers met again: was the payment in flight?
        let at_restart = status_of(&a, &hash);
        let in_flight = at_restart.as_deref() == Some("pending")
            || with(&a, &b_id)["pending_htlcs"].as_u64() != Some(0);
        in_flight_kills += u32::from(in_flight);
        // The restarted side dials (or is dialled) again and the payment resolves.
        wait_until("the payment to resolve and the HTLCs to clear", 60, || {
            status_of(&a, &hash).as_deref() != Some("pending")
                && with(&a, &b_id)["pending_htlcs"] == json!(0)
                && with(&b, &a_id)["pending_htlcs"] == json!(0)
                && with(&a, &b_id)["state"] == json!("Normal")
        });
        let status = status_of(&a, &hash);
        let paid = invoice_paid(&b, &hash);
        println!(
            "KILL: round {round}, {} killed {delay_ms} ms after pay: {} at restart, then {}",
            if payee_killed { "payee" } else { "payer" },
            at_restart.as_deref().unwrap_or("not recorded"),
            status.as_deref().unwrap_or("not recorded")
        );
        assert_eq!(
            status.as_deref() == Some("complete"),
            paid,
            "round {round}: payer and payee agree"
        );
        paid_total += if paid { AMOUNT } else { 0 };
        assert_eq!(with(&a, &b_id)["to_us_msat"], json!(a_start - paid_total), "round {round}");
        assert_eq!(with(&b, &a_id)["to_us_msat"], json!(paid_total), "round {round}");
    }
    println!("KILL: {in_flight_kills} of 12 kills landed while the payment was in flight");
    assert!(in_flight_kills > 0, "no kill landed mid-payment: the test tested nothing");
    // The channel still works after all that.
    let invoice = b.call("invoice", json!([AMOUNT, "after"])).unwrap();
    let paid = a.call("pay", json!([invoice["bolt11"]])).unwrap();
    assert_eq!(paid["status"], json!("complete"), "{paid}");
}
