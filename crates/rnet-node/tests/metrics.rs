//! `/metrics` (docs/node.md "Metrics") scraped from a real `rnetd` and parsed with a
//! Prometheus text-format parser: each value equals what the RPCs say at that moment.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value as Metric};
use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use serde_json::json;

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");

fn scrape(node: &TestNode) -> Scrape {
    let port: u16 = std::fs::read_to_string(node.network_dir().join("metrics.port"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text format")
}

fn value(scrape: &Scrape, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    let matches =
        |s: &&Sample| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v));
    scrape.samples.iter().find(matches).map(|s| match &s.value {
        Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
        Metric::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
        Metric::Summary(_) => f64::NAN,
    })
}

#[test]
fn metrics_match_the_rpcs() {
    let node = TestNode::start(Path::new(RNETD), &["-metrics=127.0.0.1:0"]).expect("rnetd starts");
    let recovery = hex::encode(SigningKey::from_bytes(&[0x11; 32]).public_key().as_bytes());
    let policy = json!({ "heartbeat": { "recovery": recovery, "interval": 1000 } });
    node.call("createwallet", json!(["w", policy])).unwrap();
    let address = node.call("getnewaddress", json!([])).unwrap();
    node.call("generatetoaddress", json!([7, address])).unwrap();
    let outside = rnet_script::PlainKey::new(SigningKey::from_bytes(&[0x22; 32]).public_key())
        .address(rnet_primitives::Network::Regtest)
        .to_string();
    node.call("sendtoaddress", json!([outside, 1.5])).unwrap();
    assert!(node.call("getblockhash", json!([999])).is_err(), "an RPC error to count");
    // The benchmark loss of the tip is evaluated in the background.
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.call("getmininginfo", json!([])).unwrap()["benchmark_loss"].is_null() {
        assert!(Instant::now() < deadline, "no benchmark loss");
        std::thread::sleep(Duration::from_millis(100));
    }

    let s = scrape(&node);
    let rpc = |m: &str| node.call(m, json!([])).unwrap();
    let mining = rpc("getmininginfo");
    let pool = rpc("getmempoolinfo");
    let totals = rpc("getnettotals");
    let get = |name: &str| value(&s, name, None).unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(get("rnet_chain_height"), rpc("getblockcount").as_f64().unwrap());
    assert_eq!(get("rnet_chain_loss_index"), mining["loss_index"].as_f64().unwrap());
    assert_eq!(get("rnet_benchmark_loss_micronats"), mining["benchmark_loss"].as_f64().unwrap());
    assert_eq!(get("rnet_mempool_transactions"), pool["size"].as_f64().unwrap());
    assert_eq!(get("rnet_mempool_transactions"), 1.0);
    assert_eq!(get("rnet_mempool_bytes"), pool["bytes"].as_f64().unwrap());
    assert_eq!(get("rnet_peers"), rpc("getconnectioncount").as_f64().unwrap());
    assert_eq!(get("rnet_p2p_bytes_received_total"), totals["totalbytesrecv"].as_f64().unwrap());
    assert_eq!(get("rnet_p2p_bytes_sent_total"), totals["totalbytessent"].as_f64().unwrap());
    assert_eq!(get("rnet_mining"), 0.0);
    // RPC latency and errors by method.
    let generate = value(&s, "rnet_rpc_requests_total", Some(("method", "generatetoaddress")));
    assert_eq!(generate, Some(1.0));
    let errors = value(&s, "rnet_rpc_errors_total", Some(("method", "getblockhash")));
    assert_eq!(errors, Some(1.0));
    let latency = value(&s, "rnet_rpc_duration_seconds", Some(("method", "generatetoaddress")));
    assert_eq!(latency, Some(1.0), "one generatetoaddress observation");
    // Blocks the node evaluated outside its lock (the benchmark thread's evaluations are not
    // Proof-of-Training): the histogram exists once any block was evaluated.
    println!(
        "METRICS: {} samples; pot evaluations observed: {:?}",
        s.samples.len(),
        value(&s, "rnet_pot_evaluation_seconds", None)
    );
}
