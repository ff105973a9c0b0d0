//! The real `rnet-cli` binary against a server started in the test.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use rnet_rpc::{MethodInfo, Registry, RpcConfig, RpcError, RpcServer};
use serde_json::{Value, json};

const CLI: &str = env!("CARGO_BIN_EXE_rnet-cli");

struct TestServer {
    port: u16,
    datadir: PathBuf,
    registry: Arc<Registry>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server whose cookie lives in `<datadir>/regtest/`, as the node lays it out.
    fn start() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let datadir = std::env::temp_dir().join(format!(
            "rnet-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&datadir);
        std::fs::create_dir_all(&datadir).unwrap();

        let mut r = Registry::new();
        r.register_sync(MethodInfo::new("getblockcount", "Blockchain"), |_| Ok(json!(42))).unwrap();
        r.register_sync(
            MethodInfo::new("echo", "Util").params(["a", "b"]).help("echo a ( b )\n\nEchoes."),
            |p| {
                let a: Value = p.required("a")?;
                let b: Option<Value> = p.optional("b")?;
                Ok(json!({"a": a, "b": b}))
            },
        )
        .unwrap();
        r.register_sync(MethodInfo::new("fail", "Util"), |_| {
            Err(RpcError::invalid_parameter("Block height out of range"))
        })
        .unwrap();
        r.register_sync(MethodInfo::new("whichwallet", "Wallet"), |p| Ok(json!(p.wallet())))
            .unwrap();
        r.register_sync(MethodInfo::new("nothing", "Util"), |_| Ok(Value::Null)).unwrap();
        let registry = Arc::new(r);

        let mut config = RpcConfig::localhost(0, datadir.join("regtest"));
        config.user_pass = Some(("alice".into(), "s3cret".into()));
        let (tx, rx) = std::sync::mpsc::channel();
        let reg = Arc::clone(&registry);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = RpcServer::bind(config, Arc::clone(&reg)).await.unwrap();
                tx.send(server.local_addr().port()).unwrap();
                server.run(reg.stopped()).await.unwrap();
            });
        });
        let port = rx.recv().unwrap();
        Self { port, datadir, registry, thread: Some(thread) }
    }

    /// Run `rnet-cli -regtest -datadir=<dir> -rpcport=<port> <args>`.
    fn cli(&self, args: &[&str]) -> Output {
        let mut full = vec![
            "-regtest".to_owned(),
            format!("-datadir={}", self.datadir.display()),
            format!("-rpcport={}", self.port),
        ];
        full.extend(args.iter().map(|s| (*s).to_owned()));
        Command::new(CLI).args(&full).output().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.registry.shutdown().trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.datadir);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cookie_discovery_and_output() {
    let s = TestServer::start();
    let o = s.cli(&["getblockcount"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "42\n");

    // JSON-looking arguments become JSON, others strings; '"12"' forces a string.
    let o = s.cli(&["echo", "[1,2]", "\"12\""]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"12\"\n}\n");
    let o = s.cli(&["echo", "hello"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, json!({"a": "hello", "b": null}));

    // Strings are printed raw; null prints nothing.
    let o = s.cli(&["help", "echo"]);
    assert_eq!(stdout(&o), "echo a ( b )\n\nEchoes.\n");
    let o = s.cli(&["nothing"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
}

#[test]
fn named_arguments() {
    let s = TestServer::start();
    let o = s.cli(&["-named", "echo", "b=x", "a=5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, json!({"a": 5, "b": "x"}));
    // Bare arguments with -named are leading positional ones (Core's "args").
    let o = s.cli(&["-named", "echo", "7", "b=true"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, json!({"a": 7, "b": true}));
    // Unknown name: the server's -8.
    let o = s.cli(&["-named", "echo", "zz=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "error code: -8\nerror message:\nUnknown named parameter zz\n");
}

#[test]
fn errors_exit_non_zero_with_the_servers_message() {
    let s = TestServer::start();
    let o = s.cli(&["fail"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "error code: -8\nerror message:\nBlock height out of range\n");

    let o = s.cli(&["nosuchmethod"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "error code: -32601\nerror message:\nMethod not found\n");

    // Missing required parameter: Core's -1 with the help text.
    let o = s.cli(&["echo"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "error code: -1\nerror message:\necho a ( b )\n\nEchoes.\n");

    let o = s.cli(&["-rpcpassword=wrong", "-rpcuser=alice", "getblockcount"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Authorization failed: Incorrect rpcuser or rpcpassword"),
        "{}",
        stderr(&o)
    );

    let o = s.cli(&["-bogus", "getblockcount"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Invalid parameter -bogus"), "{}", stderr(&o));

    let o = s.cli(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("too few parameters"), "{}", stderr(&o));
}

#[test]
fn user_password_gnu_style_wallet_and_stdin() {
    let s = TestServer::start();
    let port = s.port.to_string();
    // GNU style, and user/password instead of the cookie (no datadir needed).
    let o = Command::new(CLI)
        .args([
            "--regtest",
            "--rpcport",
            &port,
            "--rpcuser=alice",
            "--rpcpassword",
            "s3cret",
            "getblockcount",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "42\n");

    let o = s.cli(&["-rpcwallet=my wallet", "whichwallet"]);
    assert_eq!(stdout(&o), "my wallet\n");

    // -stdinrpcpass then -stdin arguments.
    let mut child = Command::new(CLI)
        .args([
            "-regtest",
            &format!("-rpcport={port}"),
            "-rpcuser=alice",
            "-stdinrpcpass",
            "-stdin",
            "echo",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n3\nfrom stdin\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, json!({"a": 3, "b": "from stdin"}));
}

#[test]
fn stop_then_connection_refused() {
    let s = TestServer::start();
    let cookie = s.datadir.join("regtest/.cookie");
    assert!(cookie.exists());
    let o = s.cli(&["stop"]);
    assert_eq!(stdout(&o), "ResonanceNet server stopping\n");
    // Wait for the server to finish.
    let mut s = s;
    if let Some(t) = s.thread.take() {
        t.join().unwrap();
    }
    assert!(!cookie.exists(), "cookie deleted on clean shutdown");
    let o = s.cli(&["-rpcpassword=x", "getblockcount"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with("error: Could not connect to the server 127.0.0.1:"), "{err}");
    // Without a cookie and password: a clear credentials message.
    let o = s.cli(&["getblockcount"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Could not locate RPC credentials"), "{}", stderr(&o));
    // -rpcwait gives up after -rpcwaittimeout.
    let o = s.cli(&["-rpcwait", "-rpcwaittimeout=1", "-rpcpassword=x", "getblockcount"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("timeout on transient error"), "{}", stderr(&o));
}

#[test]
fn help_version_and_missing_datadir() {
    let o = Command::new(CLI).arg("-help").output().unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).contains("-rpccookiefile"));
    let o = Command::new(CLI).arg("--version").output().unwrap();
    assert!(stdout(&o).starts_with("rnet-cli version v"));
    let o = Command::new(CLI)
        .args(["-datadir=/nonexistent/rnet/dir", "getblockcount"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}
