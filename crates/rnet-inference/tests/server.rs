//! The OpenAI-compatible server over real HTTP on 127.0.0.1: completions and chat completions,
//! streaming and not, errors with the right status and OpenAI shape, API keys, state isolation
//! of concurrent requests, cancellation, and hot reload.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rnet_inference::generate::GenerateParams;
use rnet_inference::sampling::SamplingParams;
use rnet_inference::{
    ChatMessage, Precision, Role, ServerConfig, ServerState, generate, render_chat, serve_listener,
};
use rnet_model::{Model, ModelConfig, ModelNetwork};
use serde_json::{Value, json};

struct TestServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn model() -> Model {
    Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 0).unwrap()
}

fn config() -> ServerConfig {
    ServerConfig {
        precision: Precision::F32,
        max_prompt_bytes: 1024,
        max_tokens_limit: 512,
        default_max_tokens: 16,
        max_sessions: 8,
        max_body_bytes: 64 * 1024,
        ..ServerConfig::default()
    }
}

fn start(config: ServerConfig) -> TestServer {
    start_with(config, &model())
}

fn start_with(config: ServerConfig, model: &Model) -> TestServer {
    serve_state(ServerState::from_model(config, model, 0))
}

fn serve_state(state: Arc<ServerState>) -> TestServer {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve_listener(listener, st, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
    });
    TestServer { addr, state, shutdown: Some(tx), thread: Some(thread) }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `data:` payloads of a server-sent event stream.
    fn events(&self) -> Vec<String> {
        let text = String::from_utf8(self.body.clone()).unwrap();
        text.split("\n\n")
            .filter_map(|ev| {
                let data: Vec<&str> = ev
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                    .collect();
                (!data.is_empty()).then(|| data.join("\n"))
            })
            .collect()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size_line = std::str::from_utf8(&body[..eol]).unwrap();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap();
        body = &body[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
    out
}

fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

/// Parses a whole HTTP/1.1 response (head and body, chunked or not).
fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    raw_request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    raw_request(addr, "GET", path, &[], b"")
}

/// Asserts an OpenAI-shaped error with this status, and returns its `error` object.
fn assert_error(r: &Reply, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    let e = v["error"].clone();
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    e
}

/// What the library generates for the same request, for comparison.
fn direct(
    prompt: &[u8],
    max_tokens: usize,
    sampling: SamplingParams,
    stop: Vec<Vec<u8>>,
) -> String {
    let engine = rnet_inference::Engine::new(&model(), Precision::F32);
    let mut s = engine.new_session();
    let params = GenerateParams { max_tokens, sampling, stop };
    generate(&engine, &mut s, prompt, &params, |_| std::ops::ControlFlow::Continue(()))
        .unwrap()
        .text
}

#[test]
fn models_are_listed() {
    let srv = start(config());
    let r = get(srv.addr, "/v1/models");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "resonancenet-v5");
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(v["data"][0]["owned_by"], "resonancenet");
    assert_eq!(v["data"][0]["height"], 0);
    assert_eq!(get(srv.addr, "/v1/models/resonancenet-v5").json()["id"], "resonancenet-v5");
    let e = assert_error(&get(srv.addr, "/v1/models/gpt-4"), 404);
    assert_eq!(e["code"], "model_not_found");
}

#[test]
fn completion_non_streaming() {
    let srv = start(config());
    let r = post(
        srv.addr,
        "/v1/completions",
        &json!({"model": "resonancenet-v5", "prompt": "In the beginning", "max_tokens": 20, "temperature": 0}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(v["model"], "resonancenet-v5");
    let c = &v["choices"][0];
    assert_eq!(c["index"], 0);
    assert_eq!(c["finish_reason"], "length");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 16, "completion_tokens": 20, "total_tokens": 36})
    );
    let want = direct(b"In the beginning", 20, SamplingParams::greedy(), vec![]);
    assert_eq!(c["text"], want);
    // Byte-array prompts (tokens are bytes) and echo.
    let bytes: Vec<u8> = b"In the beginning".to_vec();
    let r = post(
        srv.addr,
        "/v1/completions",
        &json!({"prompt": bytes, "max_tokens": 20, "temperature": 0, "echo": true}),
    );
    assert_eq!(r.json()["choices"][0]["text"], format!("In the beginning{want}"));
}

#[test]
fn completion_streaming_matches_non_streaming() {
    let srv = start(config());
    let req = json!({"prompt": "And God said", "max_tokens": 60, "temperature": 0.9, "top_k": 40, "top_p": 0.95, "seed": 11});
    let whole = post(srv.addr, "/v1/completions", &req).json();
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    let r = post(srv.addr, "/v1/completions", &sreq);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    let events = r.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.len() >= 2);
    let mut text = String::new();
    for c in &chunks {
        assert_eq!(c["object"], "text_completion");
        text.push_str(c["choices"][0]["text"].as_str().unwrap());
    }
    assert_eq!(text, whole["choices"][0]["text"].as_str().unwrap());
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["usage"]["completion_tokens"], 60);
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
    // stream_options.include_usage: a final chunk with no choices carries the usage.
    sreq["stream_options"] = json!({"include_usage": true});
    let events = post(srv.addr, "/v1/completions", &sreq).events();
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 12 + 60);
}

#[test]
fn chat_completion_streaming_and_not() {
    let srv = start(config());
    let messages = json!([
        {"role": "system", "content": "Answer in the style of the King James Bible."},
        {"role": "user", "content": "Who made the heaven and the earth?"},
    ]);
    let req =
        json!({"model": "resonancenet-v5", "messages": messages, "max_tokens": 40, "seed": 3});
    let r = post(srv.addr, "/v1/chat/completions", &req);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["role"], "assistant");
    let content = msg["content"].as_str().unwrap();
    assert!(!content.contains("\n<|"), "the reply stops before the next header");
    let rendered = render_chat(&[
        ChatMessage {
            role: Role::System,
            content: "Answer in the style of the King James Bible.".into(),
        },
        ChatMessage { role: Role::User, content: "Who made the heaven and the earth?".into() },
    ]);
    assert_eq!(v["usage"]["prompt_tokens"], rendered.len());
    let sampling = SamplingParams { seed: Some(3), ..SamplingParams::default() };
    assert_eq!(content, direct(rendered.as_bytes(), 40, sampling, vec![b"\n<|".to_vec()]));

    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    let events = post(srv.addr, "/v1/chat/completions", &sreq).events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(streamed, content);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], v["choices"][0]["finish_reason"]);
    assert_eq!(last["choices"][0]["delta"], json!({}));
    // Content given as text parts renders the same.
    let parts = json!({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "Answer in the style of the King James Bible."}]},
        {"role": "user", "content": [{"type": "text", "text": "Who made the heaven "}, {"type": "text", "text": "and the earth?"}]},
    ], "max_tokens": 40, "seed": 3});
    assert_eq!(
        post(srv.addr, "/v1/chat/completions", &parts).json()["choices"][0]["message"]["content"],
        content
    );
}

#[test]
fn stop_sequences_and_logit_bias() {
    let srv = start(config());
    // A bias of 100 on 'a' makes every byte 'a'.
    let r = post(
        srv.addr,
        "/v1/completions",
        &json!({"prompt": "x", "max_tokens": 10, "logit_bias": {"97": 100}}),
    );
    assert_eq!(r.json()["choices"][0]["text"], "aaaaaaaaaa");
    let v = post(
        srv.addr,
        "/v1/completions",
        &json!({"prompt": "x", "max_tokens": 10, "logit_bias": {"97": 100}, "stop": ["zz", "aaaa"]}),
    )
    .json();
    assert_eq!(v["choices"][0]["text"], "");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    // A two-byte character forced byte by byte never reaches the client split: "é" = c3 a9.
    let v = post(
        srv.addr,
        "/v1/completions",
        &json!({"prompt": "x", "max_tokens": 1, "logit_bias": {"195": 100}, "stream": true}),
    );
    let events = v.events();
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "\u{fffd}", "an incomplete character at the end is one replacement character");
}

#[test]
fn errors_have_the_right_status_and_openai_shape() {
    let srv = start(config());
    let a = srv.addr;
    let post_raw = |path: &str, body: &str| {
        raw_request(a, "POST", path, &[("Content-Type", "application/json")], body.as_bytes())
    };
    // Malformed JSON.
    for path in ["/v1/completions", "/v1/chat/completions"] {
        let e = assert_error(&post_raw(path, "{\"prompt\": \"unterminated"), 400);
        assert_eq!(e["type"], "invalid_request_error");
        assert_error(&post_raw(path, "[1, 2, 3]"), 400);
        assert_error(&post_raw(path, ""), 400);
    }
    // Wrong types.
    for (body, param) in [
        (json!({"prompt": "a", "temperature": "hot"}), "temperature"),
        (json!({"prompt": "a", "max_tokens": "ten"}), "max_tokens"),
        (json!({"prompt": "a", "max_tokens": 1.5}), "max_tokens"),
        (json!({"prompt": "a", "stream": "yes"}), "stream"),
        (json!({"prompt": "a", "stop": 5}), "stop"),
        (json!({"prompt": 42}), "prompt"),
        (json!({"prompt": "a", "model": 7}), "model"),
        (json!({"prompt": "a", "seed": "x"}), "seed"),
    ] {
        let e = assert_error(&post(a, "/v1/completions", &body), 400);
        assert_eq!(e["param"], param, "{body}");
        assert_eq!(e["code"], "invalid_type", "{body}");
    }
    for (body, param) in [
        (json!({"messages": "hi"}), "messages"),
        (json!({"messages": [{"role": "user", "content": 5}]}), "messages[0].content"),
        (json!({"messages": [{"role": 1, "content": "x"}]}), "messages[0].role"),
    ] {
        let e = assert_error(&post(a, "/v1/chat/completions", &body), 400);
        assert_eq!(e["param"], param, "{body}");
    }
    // Values out of range.
    for (body, param) in [
        (json!({"prompt": "a", "temperature": 5}), "temperature"),
        (json!({"prompt": "a", "top_p": 0}), "top_p"),
        (json!({"prompt": "a", "max_tokens": -1}), "max_tokens"),
        (json!({"prompt": "a", "max_tokens": 100000}), "max_tokens"),
        (json!({"prompt": "a", "n": 2}), "n"),
        (json!({"prompt": [300]}), "prompt"),
        (json!({"prompt": "a", "logit_bias": {"x": 1}}), "logit_bias"),
        (json!({"prompt": "a", "logit_bias": {"1": 1000}}), "logit_bias"),
    ] {
        let e = assert_error(&post(a, "/v1/completions", &body), 400);
        assert_eq!(e["param"], param, "{body}");
    }
    let e = assert_error(
        &post(
            a,
            "/v1/chat/completions",
            &json!({"messages": [{"role": "wizard", "content": "x"}]}),
        ),
        400,
    );
    assert_eq!(e["param"], "messages[0].role");
    let e =
        assert_error(&post(a, "/v1/chat/completions", &json!({"model": "resonancenet-v5"})), 400);
    assert_eq!(e["param"], "messages");
    assert_error(&post(a, "/v1/chat/completions", &json!({"messages": []})), 400);
    // Unknown model.
    for path in ["/v1/completions", "/v1/chat/completions"] {
        let body = json!({"model": "gpt-4o", "prompt": "a", "messages": [{"role": "user", "content": "a"}]});
        let e = assert_error(&post(a, path, &body), 404);
        assert_eq!(e["code"], "model_not_found");
        assert_eq!(e["param"], "model");
    }
    // Oversized prompt (the server allows 1024 bytes) and conversation.
    let e = assert_error(&post(a, "/v1/completions", &json!({"prompt": "x".repeat(1025)})), 400);
    assert_eq!(e["code"], "context_length_exceeded");
    assert_eq!(e["param"], "prompt");
    let e = assert_error(
        &post(
            a,
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "y".repeat(1001)}]}),
        ),
        400,
    );
    assert_eq!(e["code"], "context_length_exceeded");
    assert_eq!(e["param"], "messages");
    // A body over the limit (64 KiB here).
    let big = json!({"prompt": "z".repeat(70_000)});
    assert_error(&post(a, "/v1/completions", &big), 413);
    // Unknown route and wrong method.
    assert_error(&get(a, "/v1/nothing"), 404);
    assert_error(&get(a, "/v1/completions"), 405);
    // Unsupported features are refused rather than ignored.
    let e = assert_error(&post(a, "/v1/completions", &json!({"prompt": "a", "suffix": "b"})), 400);
    assert_eq!(e["param"], "suffix");
}

#[test]
fn api_key_is_enforced_when_configured() {
    let srv = start(ServerConfig { api_key: Some("s3cret".into()), ..config() });
    let body = json!({"prompt": "a", "max_tokens": 2}).to_string();
    let call = |auth: Option<&str>| {
        let mut h = vec![("Content-Type", "application/json")];
        if let Some(v) = auth {
            h.push(("Authorization", v));
        }
        raw_request(srv.addr, "POST", "/v1/completions", &h, body.as_bytes())
    };
    let e = assert_error(&call(None), 401);
    assert_eq!(e["code"], "invalid_api_key");
    assert_error(&call(Some("Bearer wrong")), 401);
    assert_error(&call(Some("s3cret")), 401);
    assert_eq!(call(Some("Bearer s3cret")).status, 200);
    assert_error(&get(srv.addr, "/v1/models"), 401);
    let r = raw_request(srv.addr, "GET", "/v1/models", &[("Authorization", "Bearer s3cret")], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn concurrent_requests_do_not_share_state() {
    let srv = start(config());
    let same = json!({"prompt": "In the beginning God created", "max_tokens": 120, "temperature": 1.0, "seed": 7});
    let other = json!({"prompt": "Jesus wept. zzzz qqqq", "max_tokens": 200, "temperature": 1.0, "seed": 7});
    let sequential = post(srv.addr, "/v1/completions", &same).json()["choices"][0]["text"].clone();
    let addr = srv.addr;
    let threads: Vec<_> = [same.clone(), other.clone(), same.clone(), other.clone(), same.clone()]
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            std::thread::spawn(move || {
                let mut body = body;
                if i == 3 {
                    body["stream"] = json!(true);
                }
                let r = post(addr, "/v1/completions", &body);
                assert_eq!(r.status, 200);
                if i == 3 {
                    let ev = r.events();
                    ev[..ev.len() - 1]
                        .iter()
                        .map(|e| {
                            serde_json::from_str::<Value>(e).unwrap()["choices"][0]["text"]
                                .as_str()
                                .unwrap()
                                .to_string()
                        })
                        .collect::<String>()
                } else {
                    r.json()["choices"][0]["text"].as_str().unwrap().to_string()
                }
            })
        })
        .collect();
    let out: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(out[0], sequential.as_str().unwrap());
    assert_eq!(out[2], out[0]);
    assert_eq!(out[4], out[0]);
    assert_eq!(out[1], out[3], "streamed and not, concurrently, the same");
    assert_ne!(out[1], out[0]);
    // Every session was given back.
    assert_eq!(srv.state.free_sessions(), 8);
}

#[test]
fn a_client_that_goes_away_frees_its_session() {
    let srv = start(config());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    let body = json!({"prompt": "a", "max_tokens": 512, "stream": true}).to_string();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(s);
    let t0 = Instant::now();
    while srv.state.free_sessions() < 8 {
        assert!(t0.elapsed() < Duration::from_secs(20), "session not released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reload_swaps_the_model_for_new_requests() {
    let srv = start(config());
    let req = json!({"prompt": "In the beginning", "max_tokens": 30, "temperature": 0});
    let before = post(srv.addr, "/v1/completions", &req).json();
    assert_eq!(before["system_fingerprint"], "rnet-h0-f32");
    let other =
        Model::init(ModelConfig::genesis(ModelNetwork::Regtest).with_shape(34, 2), 9).unwrap();
    srv.state.reload_model(&other, 5);
    let models = get(srv.addr, "/v1/models").json();
    assert_eq!(models["data"][0]["height"], 5);
    assert_eq!(models["data"][0]["d_model"], 34);
    let after = post(srv.addr, "/v1/completions", &req).json();
    assert_eq!(after["system_fingerprint"], "rnet-h5-f32");
    assert_ne!(after["choices"][0]["text"], before["choices"][0]["text"]);
}

/// The device `serving_on_a_device_*` decodes on: with the `vulkan` feature and
/// `RNET_REQUIRE_VULKAN` set (CI, on Mesa's lavapipe), Vulkan adapter `RNET_VULKAN_ADAPTER`
/// (default 0); otherwise rnet-gpu's CPU reference backend, which runs the same device engine
/// code on the host.
fn device_under_test() -> rnet_gpu::Device {
    #[cfg(feature = "vulkan")]
    if std::env::var_os("RNET_REQUIRE_VULKAN").is_some() {
        let n = std::env::var("RNET_VULKAN_ADAPTER").map_or(0, |v| v.parse().unwrap_or(0));
        return rnet_gpu::Device::Vulkan(n);
    }
    rnet_gpu::Device::Cpu
}

#[test]
fn serving_on_a_device_gives_the_cpu_engines_completions() {
    let device = device_under_test();
    let checkpoint = rnet_model::Checkpoint::new(0, model());
    let config = ServerConfig { max_sessions: 2, ..config() };
    let state = ServerState::on_device(config, &checkpoint, device).unwrap();
    let srv = serve_state(state);
    let listed = get(srv.addr, "/v1/models").json();
    assert_eq!(listed["data"][0]["precision"], "f32");
    assert_ne!(listed["data"][0]["device"], "cpu", "{listed}");
    let want = direct(b"In the beginning", 20, SamplingParams::greedy(), vec![]);
    let req = json!({"prompt": "In the beginning", "max_tokens": 20, "temperature": 0});
    let r = post(srv.addr, "/v1/completions", &req).json();
    assert_eq!(r["choices"][0]["text"], want, "{device}");
    assert_eq!(r["system_fingerprint"], "rnet-h0-f32-device");
    // More requests than decoders at once: each waits for a decoder, which starts from a clean
    // state every time.
    let replies: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..5).map(|_| s.spawn(|| post(srv.addr, "/v1/completions", &req).json())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in replies {
        assert_eq!(r["choices"][0]["text"], want);
    }
    // A new model reaches the device too.
    let other =
        Model::init(ModelConfig::genesis(ModelNetwork::Regtest).with_shape(34, 2), 9).unwrap();
    srv.state.reload_model(&other, 5);
    let after = post(srv.addr, "/v1/completions", &req).json();
    assert_eq!(after["system_fingerprint"], "rnet-h5-f32-device");
    let engine = rnet_inference::Engine::new(&other, Precision::F32);
    let mut s = engine.new_session();
    let params =
        GenerateParams { max_tokens: 20, sampling: SamplingParams::greedy(), stop: vec![] };
    let want = generate(&engine, &mut s, b"In the beginning", &params, |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap()
    .text;
    assert_eq!(after["choices"][0]["text"], want);
}

#[test]
fn a_device_that_is_not_there_is_an_error_not_a_cpu_server() {
    let checkpoint = rnet_model::Checkpoint::new(0, model());
    for device in [rnet_gpu::Device::Metal, rnet_gpu::Device::Cuda(1000)] {
        match ServerState::on_device(config(), &checkpoint, device) {
            Err(rnet_inference::ServerError::Device { device: d, .. }) => assert_eq!(d, device),
            other => panic!("{device}: {:?}", other.map(|_| "a server")),
        }
    }
}

/// Sends `raw` (a whole request, head and body as given) and reads the reply until the server
/// closes the connection.
fn raw_bytes(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse_reply(&out)
}

#[test]
fn a_malformed_chunked_body_is_a_bad_request_not_too_large() {
    let srv = start(config());
    // A chunk size that is not hexadecimal.
    let bad = b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"pro\r\nzz\r\nmpt\"\r\n0\r\n\r\n";
    let e = assert_error(&raw_bytes(srv.addr, bad), 400);
    assert_eq!(e["type"], "invalid_request_error");
    // A well-formed chunked body is served, and an oversized one is still 413.
    let body = json!({"prompt": "a", "max_tokens": 2}).to_string();
    let good = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    assert_eq!(raw_bytes(srv.addr, good.as_bytes()).status, 200);
    let big = json!({"prompt": "z".repeat(70_000)}).to_string();
    let mut over = String::from(
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for piece in big.as_bytes().chunks(8192) {
        over.push_str(&format!("{:x}\r\n{}\r\n", piece.len(), std::str::from_utf8(piece).unwrap()));
    }
    over.push_str("0\r\n\r\n");
    let e = assert_error(&raw_bytes(srv.addr, over.as_bytes()), 413);
    assert_eq!(e["code"], "request_too_large");
}

/// Longest error message the server may send back (it quotes at most a short prefix of input).
const MAX_ERROR_MESSAGE: usize = 400;

#[test]
fn errors_never_echo_huge_inputs() {
    let srv = start(config());
    let huge = "Q".repeat(40_000);
    let cases = [
        ("/v1/completions", json!({"model": huge, "prompt": "a"}), 404),
        ("/v1/chat/completions", json!({"messages": [{"role": huge, "content": "x"}]}), 400),
        ("/v1/completions", json!({"prompt": "a", "logit_bias": {huge.clone(): 1}}), 400),
    ];
    for (path, body, status) in cases {
        let e = assert_error(&post(srv.addr, path, &body), status);
        let msg = e["message"].as_str().unwrap();
        assert!(msg.len() <= MAX_ERROR_MESSAGE, "{path}: a {}-byte message", msg.len());
        assert!(msg.contains("QQQQ"), "the message still quotes a prefix: {msg}");
    }
    let e = assert_error(&get(srv.addr, &format!("/v1/{}", "P".repeat(6000))), 404);
    assert!(e["message"].as_str().unwrap().len() <= MAX_ERROR_MESSAGE);
}

/// Reads from `s` until the server closes it (or `limit` passes); returns what was read and
/// whether the server closed the connection.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false);
            }
            Err(_) => return (out, true), // reset: closed
        }
    }
}

fn short_timeouts() -> ServerConfig {
    ServerConfig {
        idle_timeout: Duration::from_millis(400),
        header_timeout: Duration::from_millis(400),
        body_timeout: Duration::from_millis(400),
        ..config()
    }
}

#[test]
fn stalled_connections_are_closed_after_the_timeouts() {
    let srv = start(short_timeouts());
    // 60 connections: silent, half a request head, or a whole head and half its body.
    let mut conns: Vec<(usize, TcpStream)> = (0..60)
        .map(|i| {
            let mut s = TcpStream::connect(srv.addr).unwrap();
            match i % 3 {
                0 => {}
                1 => s.write_all(b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Le").unwrap(),
                _ => s
                    .write_all(b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"prompt\"")
                    .unwrap(),
            }
            (i, s)
        })
        .collect();
    // Trickling bytes does not extend the head's deadline.
    let t0 = Instant::now();
    let trickle = &mut conns[1].1;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(100));
        let _ = trickle.write_all(b"x");
    }
    for (i, s) in &mut conns {
        let (reply, closed) = read_until_closed(s, Duration::from_secs(5));
        assert!(closed, "connection {i} still open after {:?}", t0.elapsed());
        if *i % 3 == 2 {
            let head = String::from_utf8_lossy(&reply);
            assert!(head.starts_with("HTTP/1.1 408"), "connection {i}: {head}");
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(4), "closed after {:?}", t0.elapsed());
    // The server still serves normal requests, on new connections and kept-alive ones.
    let ok = post(srv.addr, "/v1/completions", &json!({"prompt": "a", "max_tokens": 2}));
    assert_eq!(ok.status, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let srv = start(short_timeouts());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    let body = json!({"prompt": "a", "max_tokens": 2}).to_string();
    let req = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Two requests on one connection, the second after a pause shorter than the timeout.
    for _ in 0..2 {
        s.write_all(req.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let t0 = Instant::now();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(closed, "an idle keep-alive connection stays open");
    assert!(t0.elapsed() < Duration::from_secs(2), "closed after {:?}", t0.elapsed());
}

#[test]
fn a_long_generation_is_not_cut_by_the_idle_timeout() {
    let timeout = Duration::from_millis(150);
    let srv = start(ServerConfig {
        max_tokens_limit: 100_000,
        idle_timeout: timeout,
        header_timeout: timeout,
        body_timeout: timeout,
        ..config()
    });
    // Longer than every timeout while the connection reads nothing.
    let t0 = Instant::now();
    let r = post(srv.addr, "/v1/completions", &json!({"prompt": "a", "max_tokens": 6_000}));
    println!("a 6000-byte generation took {:?} (timeouts {timeout:?})", t0.elapsed());
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["usage"]["completion_tokens"], 6_000);
}

#[test]
fn connections_over_the_limit_wait_for_a_free_slot() {
    let srv = start(ServerConfig { max_connections: 4, ..config() });
    let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(srv.addr).unwrap()).collect();
    let body = json!({"prompt": "a", "max_tokens": 2}).to_string();
    let mut fifth = TcpStream::connect(srv.addr).unwrap(); // queued by the kernel, not accepted
    write!(
        fifth,
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (reply, _) = read_until_closed(&mut fifth, Duration::from_millis(700));
    assert!(reply.is_empty(), "served beyond max_connections");
    drop(held);
    let (reply, closed) = read_until_closed(&mut fifth, Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"));
    assert!(closed);
}

#[test]
fn requests_over_the_limit_get_503_at_once() {
    let srv =
        start(ServerConfig { max_requests: 2, body_timeout: Duration::from_secs(60), ..config() });
    // Two requests whose bodies never finish hold both request slots.
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(srv.addr).unwrap();
            s.write_all(
                b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{",
            )
            .unwrap();
            s
        })
        .collect();
    let t0 = Instant::now();
    while srv.state.active_requests() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(10), "requests not admitted");
        std::thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    let r = post(srv.addr, "/v1/completions", &json!({"prompt": "a", "max_tokens": 2}));
    let e = assert_error(&r, 503);
    assert_eq!(e["code"], "overloaded");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(t0.elapsed() < Duration::from_secs(2), "503 took {:?}", t0.elapsed());
    drop(stalled);
    let t0 = Instant::now();
    while srv.state.active_requests() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "slots not released");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        post(srv.addr, "/v1/completions", &json!({"prompt": "a", "max_tokens": 2})).status,
        200
    );
}

#[test]
fn an_abandoned_prefill_stops_early() {
    // A model large enough that prefill takes visible time; the prompt is sized from a measured
    // prefill rate so that the whole prefill would take about 3 s.
    let big = Model::init(ModelConfig::genesis(ModelNetwork::Testnet), 1).unwrap();
    let engine = rnet_inference::Engine::new(&big, Precision::F32);
    let sample = vec![b'a'; 2048];
    let t0 = Instant::now();
    engine.prefill(&mut engine.new_session(), &sample).unwrap();
    let rate = sample.len() as f64 / t0.elapsed().as_secs_f64();
    let len = ((rate * 3.0) as usize).clamp(8 * 1024, 4 << 20);
    let cfg = ServerConfig {
        max_prompt_bytes: len,
        max_body_bytes: 2 * len + 1024,
        max_sessions: 1,
        ..config()
    };
    let srv = start_with(cfg, &big);
    let prompt: String = "In the beginning ".repeat(len / 17 + 1)[..len].to_string();
    let body = json!({"prompt": prompt, "max_tokens": 4}).to_string();
    let mut s = TcpStream::connect(srv.addr).unwrap();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let t0 = Instant::now();
    while srv.state.free_sessions() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "generation never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
    let t_drop = Instant::now();
    while srv.state.free_sessions() == 0 {
        assert!(t_drop.elapsed() < Duration::from_secs(30), "session not released");
        std::thread::sleep(Duration::from_millis(5));
    }
    let released = t_drop.elapsed();
    let fed = srv.state.prompt_bytes_fed();
    println!(
        "prompt {len} bytes ({:.0} KiB/s prefill): {fed} fed before the client left and the work stopped; session released {released:?} after the disconnect",
        rate / 1024.0
    );
    assert!(fed < len as u64 / 2, "fed {fed} of {len} prompt bytes");
    // The freed session serves the next request.
    let r = post(srv.addr, "/v1/completions", &json!({"prompt": "a", "max_tokens": 2}));
    assert_eq!(r.status, 200);
}
