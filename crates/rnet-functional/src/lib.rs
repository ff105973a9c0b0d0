//! Functional-test harness: [`TestNode`] starts a real `rnetd` process (the binary path is given
//! by the caller, e.g. `env!("CARGO_BIN_EXE_rnetd")` in `crates/rnet-node/tests`) in a temporary
//! data directory on a free loopback port, waits for its RPC server, and drives it with
//! [`rnet_rpc::RpcClient`]. Dropping a node stops it (`stop`, then kill after a grace period).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rnet_rpc::{Auth, ClientError, RpcClient};
use serde_json::Value;

/// How long [`TestNode::start`] waits for the RPC server.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `rnetd` under test.
pub struct TestNode {
    binary: PathBuf,
    /// `regtest` unless started with [`TestNode::start_on`].
    network: String,
    datadir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    extra: Vec<String>,
    child: Option<Child>,
    port: u16,
    client: Option<RpcClient>,
}

impl TestNode {
    /// Starts a regtest node of `binary` in a fresh temporary data directory with the extra
    /// arguments `extra`.
    pub fn start(binary: &Path, extra: &[&str]) -> std::io::Result<Self> {
        Self::start_on(binary, "regtest", extra)
    }

    /// Starts a node of `binary` on `network` (`regtest`, `testnet` or `mainnet`) in a fresh
    /// temporary data directory with the extra arguments `extra`.
    pub fn start_on(binary: &Path, network: &str, extra: &[&str]) -> std::io::Result<Self> {
        let tmp = tempfile::Builder::new().prefix("rnet-functional-").tempdir()?;
        let datadir = tmp.path().to_path_buf();
        // `RNET_KEEP_DATADIR=1` keeps the directory (its `debug.log`) after the test, for
        // reading what a failing run's node did.
        let tmp = if std::env::var_os("RNET_KEEP_DATADIR").is_some() {
            eprintln!("rnet-functional: keeping {}", tmp.keep().display());
            None
        } else {
            Some(tmp)
        };
        let mut node = Self {
            binary: binary.to_path_buf(),
            network: network.to_string(),
            datadir,
            _tmp: tmp,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            port: 0,
            client: None,
        };
        node.launch()?;
        Ok(node)
    }

    /// The base data directory (`-datadir`).
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The network directory inside the data directory.
    pub fn network_dir(&self) -> PathBuf {
        self.datadir.join(&self.network)
    }

    /// The bound RPC port.
    pub fn rpc_port(&self) -> u16 {
        self.port
    }

    /// The operating-system process id of the running `rnetd` (None once stopped or killed), e.g.
    /// to sample its memory from `/proc/<pid>/status`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The P2P listening address on loopback, from `<netdir>/p2p.port` (the node writes it once
    /// bound; waits up to 10 s for it). For a node started with `-port=0 -bind=127.0.0.1`.
    ///
    /// # Panics
    /// If the port file does not appear in time (the node failed to listen).
    pub fn p2p_addr(&self) -> std::net::SocketAddr {
        let f = self.network_dir().join("p2p.port");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let port = std::fs::read_to_string(&f).ok().and_then(|t| t.trim().parse::<u16>().ok());
            if let Some(p) = port {
                return std::net::SocketAddr::from(([127, 0, 0, 1], p));
            }
            assert!(Instant::now() < deadline, "no p2p.port in {}", f.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The arguments a process needs to reach this node (`-regtest -datadir=… -rpcport=…`).
    pub fn connect_args(&self) -> Vec<String> {
        vec![
            format!("-{}", self.network),
            format!("-datadir={}", self.datadir.display()),
            format!("-rpcport={}", self.port),
        ]
    }

    /// Spawns the process and waits for RPC.
    fn launch(&mut self) -> std::io::Result<()> {
        let port_file = self.network_dir().join("rpc.port");
        let _ = std::fs::remove_file(&port_file);
        let child = Command::new(&self.binary)
            .arg(format!("-{}", self.network))
            .arg(format!("-datadir={}", self.datadir.display()))
            .arg("-rpcport=0")
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(std::io::Error::other(format!("rnetd exited early: {status}")));
            }
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if let Ok(port) = text.trim().parse::<u16>() {
                    self.port = port;
                    let client = RpcClient::new(
                        &self.url(),
                        Auth::Cookie(self.network_dir().join(rnet_rpc::COOKIE_FILE)),
                    )
                    .map_err(std::io::Error::other)?;
                    if client.call("getblockcount", Value::Array(vec![])).is_ok() {
                        self.client = Some(client);
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("rnetd did not start its RPC server"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The RPC client.
    ///
    /// # Panics
    /// If the node is not running.
    pub fn rpc(&self) -> &RpcClient {
        self.client.as_ref().expect("node is running")
    }

    /// Calls `method` with `params`.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.rpc().call(method, params)
    }

    /// Stops the node with the `stop` RPC and waits for the process to exit (killing it after
    /// 30 s). Returns whether it exited successfully on its own.
    pub fn stop(&mut self) -> bool {
        if let Some(c) = &self.client {
            let _ = c.call("stop", Value::Array(vec![]));
        }
        self.client = None;
        let Some(mut child) = self.child.take() else { return true };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }

    /// Stops the node and starts it again on the same data directory (same extra arguments
    /// plus `extra`).
    pub fn restart(&mut self, extra: &[&str]) -> std::io::Result<()> {
        self.stop();
        self.extra.extend(extra.iter().map(|s| s.to_string()));
        self.launch()
    }

    /// Kills the process at once (SIGKILL: no shutdown, no flush), as a crash or power loss
    /// would, and waits for it to die.
    pub fn kill(&mut self) {
        self.client = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process ([`TestNode::kill`]) and starts it again on the same data directory
    /// (same extra arguments plus `extra`).
    pub fn kill_and_restart(&mut self, extra: &[&str]) -> std::io::Result<()> {
        self.kill();
        self.extra.extend(extra.iter().map(|s| s.to_string()));
        self.launch()
    }

    /// Spawns another `rnetd` on this node's data directory (to test the lock); returns its
    /// exit status and stderr.
    pub fn run_second_instance(&self) -> std::io::Result<(std::process::ExitStatus, String)> {
        let out = Command::new(&self.binary)
            .arg(format!("-{}", self.network))
            .arg(format!("-datadir={}", self.datadir.display()))
            .arg("-rpcport=0")
            .stdin(Stdio::null())
            .output()?;
        Ok((out.status, String::from_utf8_lossy(&out.stderr).into_owned()))
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(c) = &self.client {
                let _ = c.call("stop", Value::Array(vec![]));
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
