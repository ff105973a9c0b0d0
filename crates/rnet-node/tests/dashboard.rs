//! The web dashboard (`-dashboard`, docs/dashboard.md) as a person sees it: a regtest node with
//! the dashboard and the inference server mines 30 blocks by training (the last one confirming a
//! payment), another payment waits in the mempool, and headless Chromium loads every page. The numbers on the overview must equal
//! the RPC's, the loss plot must have one point per block, the block page must show its miner and
//! evaluation sample, bad paths must give 400/404 pages, the chat playground must return text,
//! and `/events` must announce the tip.
//!
//! Chromium is driven from the command line (`--dump-dom`, `--screenshot`), so no WebDriver
//! crate is needed. Without a Chromium binary the test is skipped, unless
//! `RNET_REQUIRE_CHROMIUM=1`, when it fails. `RNET_CHROMIUM=PATH` names the binary;
//! `RNET_DASHBOARD_SCREENSHOTS=DIR` keeps the screenshots there (e.g. `docs/img`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rnet_crypto::SigningKey;
use rnet_functional::TestNode;
use serde_json::{Value, json};

const RNETD: &str = env!("CARGO_BIN_EXE_rnetd");
const BLOCKS: u64 = 30;

/// The Chromium binary: `RNET_CHROMIUM`, else the first of the usual names on `PATH`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RNET_CHROMIUM") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .find_map(|name| std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()))
}

/// Headless Chromium with a throw-away profile.
struct Browser {
    binary: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    fn run(&self, args: &[String], timeout: Duration) -> String {
        let mut child = Command::new(&self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        });
        let deadline = Instant::now() + timeout;
        loop {
            if child.try_wait().expect("wait for chromium").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish {args:?} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        reader.join().expect("stdout reader")
    }

    /// The DOM after the page loaded (and, with `budget_ms`, after that much virtual time, which
    /// waits for the page's own requests).
    fn dom(&self, url: &str, budget_ms: Option<u32>) -> String {
        let mut args = vec!["--dump-dom".to_string()];
        if let Some(ms) = budget_ms {
            args.push(format!("--virtual-time-budget={ms}"));
        }
        args.push(url.to_string());
        let dom = self.run(&args, Duration::from_secs(180));
        assert!(dom.contains("</html>"), "no document for {url}: {dom:?}");
        dom
    }

    fn screenshot(&self, url: &str, file: &Path) {
        let _ = std::fs::remove_file(file);
        self.run(
            &[
                format!("--screenshot={}", file.display()),
                "--window-size=1280,900".into(),
                url.to_string(),
            ],
            Duration::from_secs(120),
        );
        let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "no screenshot of {url} at {}", file.display());
    }
}

/// The text of the element with `id="…"` (its content up to the next tag), tags inside skipped.
fn by_id(dom: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let start = dom.find(&marker).unwrap_or_else(|| panic!("no element {id} in the page"));
    let after = &dom[start..];
    let content = &after[after.find('>').expect("tag end") + 1..];
    // Strip nested tags until the element's text ends.
    let mut text = String::new();
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' => {
                in_tag = true;
                if !text.is_empty() {
                    break;
                }
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.trim().to_string()
}

fn count(dom: &str, needle: &str) -> usize {
    dom.matches(needle).count()
}

/// One HTTP/1.1 request; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the dashboard");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().expect("status code");
    let (_, body) = reply.split_once("\r\n\r\n").expect("HTTP reply");
    (status, body.to_string())
}

fn wait_for_port(file: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = std::fs::read_to_string(file).ok().and_then(|t| t.trim().parse().ok()) {
            return p;
        }
        assert!(Instant::now() < deadline, "no {}", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_dashboard_page_shows_the_nodes_numbers_in_a_browser() {
    let Some(chromium) = find_chromium() else {
        if std::env::var("RNET_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!(
                "RNET_REQUIRE_CHROMIUM=1 but no Chromium found (install Debian's `chromium`, or set \
                 RNET_CHROMIUM=/path/to/chromium)"
            );
        }
        eprintln!(
            "SKIPPED: no Chromium binary (set RNET_REQUIRE_CHROMIUM=1 to make this an error)"
        );
        return;
    };
    let browser = Browser {
        binary: chromium,
        profile: tempfile::Builder::new().prefix("rnet-chromium-").tempdir().unwrap(),
    };
    let node = TestNode::start(
        Path::new(RNETD),
        &[
            "-port=0",
            "-bind=127.0.0.1",
            "-connect=0",
            "-dashboard=127.0.0.1:0",
            "-inference=127.0.0.1:0",
        ],
    )
    .expect("rnetd starts");
    let port = wait_for_port(&node.network_dir().join("dashboard.port"));
    wait_for_port(&node.network_dir().join("inference.port"));
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    // A wallet receives the coinbases; one payment waits in the mempool.
    let recovery = hex::encode(SigningKey::from_bytes(&[0x11; 32]).public_key().as_bytes());
    let policy = json!({ "heartbeat": { "recovery": recovery, "interval": 1000 } });
    node.call("createwallet", json!(["W", policy])).unwrap();
    let address = node.call("getnewaddress", json!([])).unwrap().as_str().unwrap().to_string();
    let started = Instant::now();
    node.call("generatetoaddress", json!([BLOCKS - 1, address])).unwrap();
    let other = node.call("getnewaddress", json!([])).unwrap();
    let paid =
        node.call("sendtoaddress", json!([other, 1.0])).unwrap().as_str().unwrap().to_string();
    let fee =
        node.call("getmempoolentry", json!([paid])).unwrap()["fees"]["base"].as_f64().unwrap();
    node.call("generatetoaddress", json!([1, address])).unwrap();
    eprintln!("mined {BLOCKS} blocks by training in {:.1?}", started.elapsed());
    let pending = node.call("sendtoaddress", json!([other, 1.0])).unwrap();
    let pending = pending.as_str().unwrap().to_string();

    // Overview: the numbers are the RPC's.
    let page_started = Instant::now();
    let dom = browser.dom(&url("/"), None);
    eprintln!("overview rendered and dumped in {:.1?}", page_started.elapsed());
    let info = node.call("getblockchaininfo", json!([])).unwrap();
    let mempool = node.call("getmempoolinfo", json!([])).unwrap();
    assert_eq!(by_id(&dom, "height"), BLOCKS.to_string());
    assert_eq!(by_id(&dom, "height"), node.call("getblockcount", json!([])).unwrap().to_string());
    assert_eq!(by_id(&dom, "tip"), info["bestblockhash"].as_str().unwrap());
    assert_eq!(by_id(&dom, "chainwork"), info["chainwork"].as_str().unwrap());
    assert_eq!(
        by_id(&dom, "peers"),
        node.call("getconnectioncount", json!([])).unwrap().to_string()
    );
    assert_eq!(by_id(&dom, "mempool-size"), mempool["size"].to_string());
    assert_eq!(mempool["size"], json!(1), "the payment waits in the mempool");
    assert_eq!(by_id(&dom, "mempool-bytes"), mempool["bytes"].to_string());
    assert_eq!(by_id(&dom, "mining"), "no", "generatetoaddress is not the in-node miner");
    let rate: f64 = by_id(&dom, "train-rate").parse().expect("a training rate after 30 blocks");
    assert!(rate > 0.0);
    assert_eq!(count(&dom, "class=\"block-row\""), 10, "the latest ten blocks");

    // Loss plot: one point per block (genesis and the 30 mined), and once the node and the
    // dashboard have evaluated them, one benchmark point per block too.
    let points = BLOCKS as usize + 1;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (status, html) = http(port, "GET", "/loss", "");
        assert_eq!(status, 200);
        if count(&html, "data-series=\"benchmark_loss\" cx") == points {
            break;
        }
        assert!(Instant::now() < deadline, "benchmark losses were not all computed");
        std::thread::sleep(Duration::from_millis(500));
    }
    let dom = browser.dom(&url("/loss"), None);
    assert_eq!(count(&dom, "<circle class=\"pt\" data-series=\"loss_index\""), points);
    assert_eq!(count(&dom, "<circle class=\"pt\" data-series=\"benchmark_loss\""), points);
    assert_eq!(count(&dom, "<circle class=\"pt\" data-series=\"val_loss\""), points);

    // The model page: shape and parameter count of the tip model.
    let dom = browser.dom(&url("/model"), None);
    assert_eq!(by_id(&dom, "d-model"), info["shape"]["d_model"].to_string());
    assert_eq!(by_id(&dom, "n-layers"), info["shape"]["n_layers"].to_string());
    let params: u64 = by_id(&dom, "params").parse().unwrap();
    assert!(params > 1000, "{params}");
    assert!(dom.contains("id=\"growth-history\"") && dom.contains("id=\"growth-plot\""));

    // Blocks list and the tip's page: miner, improvement, reward, sample.
    let dom = browser.dom(&url("/blocks"), None);
    assert_eq!(count(&dom, "class=\"block-row\""), points);
    let tip = info["bestblockhash"].as_str().unwrap();
    let dom = browser.dom(&url(&format!("/block/{tip}")), None);
    let header = node.call("getblockheader", json!([tip])).unwrap();
    assert_eq!(by_id(&dom, "miner"), address);
    assert!(by_id(&dom, "improvement").starts_with(&format!(
        "{} / {} µnat",
        header["improvement"], header["required_improvement"]
    )));
    assert_eq!(by_id(&dom, "loss-index"), header["loss_index"].to_string());
    let block = node.call("getblock", json!([tip, 2])).unwrap();
    let coinbase = &block["tx"][0];
    let claimed: f64 =
        coinbase["vout"].as_array().unwrap().iter().map(|o| o["value"].as_f64().unwrap()).sum();
    let shown: f64 = by_id(&dom, "reward").parse().unwrap();
    assert!((shown - claimed).abs() < 1e-8, "{shown} vs {claimed}");
    let fees: f64 = by_id(&dom, "fees").parse().unwrap();
    assert!(fee > 0.0 && (fees - fee).abs() < 1e-8, "fees shown {fees}, paid {fee}");
    assert_eq!(by_id(&dom, "ntx"), "2");
    assert!(dom.contains(&format!("href=\"/tx/{paid}?block={tip}\"")), "the payment is listed");
    assert_eq!(count(&dom, "class=\"record\""), 32, "regtest samples 32 records");
    assert!(dom.contains("exactly the records the header"), "the sample is the one drawn");

    // Transactions: a confirmed coinbase (found without -txindex) and the pending payment.
    let cb_txid = coinbase["txid"].as_str().unwrap();
    let dom = browser.dom(&url(&format!("/tx/{cb_txid}")), None);
    assert_eq!(by_id(&dom, "txid"), cb_txid);
    assert!(dom.contains(&format!("href=\"/block/{tip}\"")));
    let dom = browser.dom(&url(&format!("/tx/{pending}")), None);
    assert_eq!(by_id(&dom, "txid"), pending);
    assert_eq!(by_id(&dom, "block"), "unconfirmed (mempool)");

    // Bad paths and ids: clear error pages with the right status, never a crash.
    for (path, status) in [
        ("/block/xyz", 400),
        (&format!("/block/{}", "0".repeat(64)), 404),
        ("/tx/%3Cscript%3E", 400),
        (&format!("/tx/{}", "0".repeat(64)), 404),
        ("/loss?n=0", 400),
        ("/blocks?before=x", 400),
        ("/no/such/page", 404),
    ] {
        let (got, body) = http(port, "GET", path, "");
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains("id=\"error\""), "{path}");
        assert!(!body.contains("<script>"), "{path} echoes markup");
    }
    let dom = browser.dom(&url("/block/not-a-hash"), None);
    assert!(by_id(&dom, "error").contains("64 hexadecimal digits"));

    // Chat: the page's own script sends ?q= to the proxy, which asks the inference server.
    let dom = browser.dom(&url("/chat?q=Ge1%3A1%20In%20the"), Some(60_000));
    assert!(dom.contains("id=\"inference-addr\""));
    assert!(
        dom.contains("data-state=\"done\""),
        "the playground got no reply: {}",
        by_id(&dom, "reply")
    );
    assert!(!by_id(&dom, "reply").is_empty());
    let request =
        json!({ "messages": [{ "role": "user", "content": "Ge1:1 In the" }], "max_tokens": 16 });
    let (status, body) = http(port, "POST", "/chat/completions", &request.to_string());
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert!(reply["choices"][0]["message"]["content"].is_string(), "{reply}");
    assert!(reply["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{reply}");
    let (status, _) = http(port, "POST", "/chat/completions", "not json");
    assert_eq!(status, 400);

    // Live updates: the first event names the tip.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while !seen.contains(tip) {
        let n = s.read(&mut buf).expect("an event within 10 s");
        assert!(n > 0, "the event stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream") && seen.contains("event: tip"), "{seen}");
    assert!(seen.contains(&format!("\"height\":{BLOCKS}")), "{seen}");

    // Screenshots.
    let dir = std::env::var_os("RNET_DASHBOARD_SCREENSHOTS").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    browser.screenshot(&url("/"), &dir.join("dashboard-overview.png"));
    browser.screenshot(&url("/loss"), &dir.join("dashboard-loss.png"));
    browser.screenshot(&url(&format!("/block/{tip}")), &dir.join("dashboard-block.png"));
    browser.screenshot(&url("/model"), &dir.join("dashboard-model.png"));
}

#[test]
fn the_chat_page_says_when_inference_is_off() {
    let node = TestNode::start(
        Path::new(RNETD),
        &["-port=0", "-bind=127.0.0.1", "-connect=0", "-dashboard=127.0.0.1:0"],
    )
    .expect("rnetd starts");
    let port = wait_for_port(&node.network_dir().join("dashboard.port"));
    let (status, body) = http(port, "GET", "/chat", "");
    assert_eq!(status, 200);
    assert!(body.contains("id=\"inference-off\"") && body.contains("-inference"), "{body}");
    let (status, body) = http(port, "POST", "/chat/completions", "{}");
    assert_eq!(status, 503, "{body}");
    // A fresh node's pages render at height 0.
    let (status, body) = http(port, "GET", "/", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"height\">0<"), "{body}");
    for path in ["/loss", "/model", "/blocks"] {
        assert_eq!(http(port, "GET", path, "").0, 200, "{path}");
    }
}

/// The event stream for programs: besides `tip`, every block, mempool transaction and wallet
/// transaction as it happens.
#[test]
fn the_event_stream_reports_blocks_and_transactions() {
    let node = TestNode::start(
        Path::new(RNETD),
        &["-port=0", "-bind=127.0.0.1", "-connect=0", "-dashboard=127.0.0.1:0"],
    )
    .expect("rnetd starts");
    let port = wait_for_port(&node.network_dir().join("dashboard.port"));
    let recovery =
        hex::encode(rnet_crypto::SigningKey::from_bytes(&[0x11; 32]).public_key().as_bytes());
    let policy = json!({ "heartbeat": { "recovery": recovery, "interval": 1000 } });
    node.call("createwallet", json!(["events", policy])).unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let mut read_until = |needle: &str, seen: &mut String| {
        while !seen.contains(needle) {
            let n = s.read(&mut buf).expect("an event within 20 s");
            assert!(n > 0, "the event stream closed: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    read_until("event: tip", &mut seen);
    let address = node.call("getnewaddress", json!([])).unwrap();
    let hashes = node.call("generatetoaddress", json!([6, address])).unwrap();
    for h in hashes.as_array().unwrap() {
        read_until(&format!("\"hash\":\"{}\"", h.as_str().unwrap()), &mut seen);
    }
    assert!(seen.contains("event: block"), "{seen}");
    let outside =
        rnet_script::PlainKey::new(rnet_crypto::SigningKey::from_bytes(&[0x22; 32]).public_key())
            .address(rnet_primitives::Network::Regtest)
            .to_string();
    let txid = node.call("sendtoaddress", json!([outside, 1.0])).unwrap();
    let txid = txid.as_str().unwrap();
    read_until(&format!("event: tx\ndata: {{\"txid\":\"{txid}\"}}"), &mut seen);
    read_until(&format!("\"txid\":\"{txid}\",\"wallet\":\"events\""), &mut seen);
    assert!(seen.contains("event: wallettx"), "{seen}");
}
