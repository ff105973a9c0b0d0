//! `rnetd` configuration: command-line options (Bitcoin style `-opt=value`, `-noopt`, and GNU
//! style `--opt=value`, `--opt value`) and the config file `<datadir>/rnet.conf` (`key=value`
//! lines, same keys, `#` comments). Command-line values win over the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rnet_primitives::Network;
use thiserror::Error;

/// Name of the config file inside the base data directory.
pub const CONFIG_FILE: &str = "rnet.conf";

/// Why the configuration is unusable.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// An option that `rnetd` does not know.
    #[error("unknown option -{0} (see -help)")]
    UnknownOption(String),
    /// An argument that is not an option.
    #[error("unexpected argument {0:?}: options start with '-' (see -help)")]
    NotAnOption(String),
    /// An option without its value.
    #[error("option -{0} needs a value")]
    MissingValue(String),
    /// A value that does not parse.
    #[error("invalid value {value:?} for -{name}: {reason}")]
    InvalidValue {
        /// The option.
        name: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A line of the config file that is not `key=value`.
    #[error("{file}:{line}: expected key=value")]
    BadLine {
        /// The config file.
        file: String,
        /// 1-based line number.
        line: usize,
    },
    /// The config file could not be read.
    #[error("cannot read config file {file}: {source}")]
    Read {
        /// The config file.
        file: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Both `-testnet` and `-regtest` (or a conflicting `-chain`).
    #[error("invalid combination of -regtest, -testnet and -chain")]
    ConflictingNetworks,
    /// No home directory and no `-datadir`.
    #[error("cannot find a home directory; pass -datadir")]
    NoDatadir,
}

/// What `rnetd` was asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Run the node.
    Run(Box<Config>),
    /// Print the help text.
    Help,
    /// Print the version.
    Version,
}

/// The node's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The network.
    pub network: Network,
    /// The base data directory (`-datadir`, default `~/.resonancenet`).
    pub datadir: PathBuf,
    /// RPC port (`-rpcport`; `0` picks a free one, written to `<netdir>/rpc.port`).
    pub rpc_port: u16,
    /// RPC bind address (`-rpcbind`, default 127.0.0.1).
    pub rpc_bind: std::net::IpAddr,
    /// `-rpcuser` / `-rpcpassword`.
    pub rpc_user_pass: Option<(String, String)>,
    /// Run the in-node miner (`-mine`).
    pub mine: bool,
    /// Where the in-node miner pays (`-miningaddress`, or its old name `-mineaddress`): must be
    /// a recovery-policy address (`mining_payout`).
    pub mining_address: Option<String>,
    /// Where the in-node miner trains (`-device=DEV`: `cpu` (default), `cuda[:N]`,
    /// `vulkan[:N]`, `metal`, `auto`); candidates are still judged by the CPU evaluator.
    pub mine_device: rnet_miner::Device,
    /// The in-node miner's AdamW learning rate (`-minelr=X`; default the miner's, 1e-3).
    pub mine_lr: Option<f32>,
    /// The in-node miner's windows per training step (`-minebatch=N`; default the miner's, 4).
    pub mine_batch: Option<usize>,
    /// The wallet whose fresh addresses the in-node miner pays (`-miningwallet=NAME`).
    pub mining_wallet: Option<String>,
    /// Run this command on every new tip, `%s` replaced by the block hash (`-blocknotify`).
    pub block_notify: Option<String>,
    /// Run this command for every wallet transaction, new or newly confirmed, `%s` replaced by
    /// the txid and `%w` by the wallet name (`-walletnotify`).
    pub wallet_notify: Option<String>,
    /// Serve Prometheus metrics at `/metrics` here (`-metrics[=ADDR]`; default 127.0.0.1 on
    /// port 9558 / 19558 / 29558; port 0 picks a free one, written to `<netdir>/metrics.port`).
    pub metrics: Option<std::net::SocketAddr>,
    /// Training data of the in-node miner (`-minedata=FILE`; default: the bundled text).
    pub mine_data: Option<PathBuf>,
    /// Log to stderr as well as `debug.log` (`-printtoconsole`, default on).
    pub print_to_console: bool,
    /// Log filter (`-debug=FILTER`, `tracing` env-filter syntax, default `info`).
    pub log_filter: String,
    /// Models (checkpoints) of the last N blocks are kept and served (`-prunemodels=N`, or its
    /// alias `-prunecheckpoints=N`; 0 = archive, keep every model; `None`: the default 144).
    pub prune_models: Option<u32>,
    /// Keep a transaction index for `getrawtransaction` (`-txindex`, default off).
    pub txindex: bool,
    /// `-assumevalid=HASH`: skip the Proof-of-Training evaluations of that block and its
    /// ancestors (`Some(None)` for `-assumevalid=0`: evaluate every block; `None`: the
    /// network's default).
    pub assume_valid: Option<Option<rnet_primitives::BlockHash>>,
    /// Snapshot sync under `-assumevalid` (`-snapshotsync=0|1`, default 1): the ancestors of
    /// the assumed-valid block connect without model data and that block's whole checkpoint is
    /// fetched (docs/protocol.md Part V §7.2).
    pub snapshot_sync: bool,
    /// Evaluate each new tip model on the benchmark slice in the background
    /// (`-benchmarkloss=0|1`, default 1): `benchmark_loss` in `getmininginfo` and the logs. A
    /// node on a weak machine following a large model can turn it off.
    pub benchmark_loss: bool,
    /// Least time between two benchmark evaluations (`-benchmarkinterval=SECS`; default 0 on
    /// regtest, 30 elsewhere): a solo miner finds blocks every few seconds early on, and
    /// evaluating every one of them would take a core away from training.
    pub benchmark_interval_secs: u64,
    /// Regtest only: the initial (base) required improvement in µnat
    /// (`-requiredimprovement=N`, at least the regtest floor), so tests can exercise the stall
    /// escape. It changes the genesis block, so a data directory keeps one value.
    pub regtest_required_improvement: Option<u64>,
    /// Serve the tip model over the OpenAI-compatible API here (`-inference[=ADDR]`; default
    /// address 127.0.0.1 on port 9556 / 19556 / 29556; port 0 picks a free one, written to
    /// `<netdir>/inference.port`).
    pub inference: Option<std::net::SocketAddr>,
    /// Threads of the inference server (`-inferencethreads=N`; default half the cores): its
    /// compute pool, its concurrent generations, and the threads one decode step may use.
    pub inference_threads: Option<usize>,
    /// Serve the read-only web dashboard here (`-dashboard[=ADDR]`; default address 127.0.0.1 on
    /// port 9557 / 19557 / 29557; port 0 picks a free one, written to `<netdir>/dashboard.port`).
    pub dashboard: Option<std::net::SocketAddr>,
    /// Run the Lightning service, listening here (`-lightning[=ADDR]`; default address 0.0.0.0
    /// on port 9735 / 19735 / 29735; port 0 picks a free one, written to
    /// `<netdir>/lightning.port`).
    pub lightning: Option<std::net::SocketAddr>,
    /// The wallet Lightning funds channels from and sweeps to (`-lnwallet=NAME`; default: the
    /// only loaded wallet).
    pub ln_wallet: Option<String>,
    /// Run a watchtower for our Lightning peers (`-watchtower`, with `-lightning`).
    pub watchtower: bool,
    /// Send our penalty appointments to this watchtower (`-lntower=ID@HOST:PORT`).
    pub ln_tower: Option<(rnet_crypto::PublicKey, std::net::SocketAddr)>,
    /// Regtest only (`-lndevholdhtlcs`): never settle payments to us, so tests can watch
    /// payers time them out.
    pub ln_dev_hold_htlcs: bool,
    /// Accept inbound P2P connections (`-listen`, default on).
    pub listen: bool,
    /// P2P port (`-port`, default 9555 / 19555 / 29555; `0` picks a free one, written to
    /// `<netdir>/p2p.port`).
    pub p2p_port: u16,
    /// P2P listen addresses (`-bind=IP[,IP…]`, default 0.0.0.0).
    pub bind: Vec<std::net::IpAddr>,
    /// Connect only to these (`-connect=ADDR[,ADDR…]`; `-connect=0` disables automatic
    /// connections).
    pub connect: Vec<String>,
    /// Automatic outbound connections (off with `-connect`).
    pub auto_connect: bool,
    /// Keep connections to these (`-addnode=ADDR[,ADDR…]`).
    pub addnode: Vec<String>,
    /// Connect once to learn addresses (`-seednode=ADDR[,ADDR…]`).
    pub seednode: Vec<String>,
    /// Connection limit (`-maxconnections`, default 125).
    pub max_connections: usize,
    /// SOCKS5 proxy for outbound P2P connections (`-proxy=IP:PORT`).
    pub proxy: Option<std::net::SocketAddr>,
    /// Only connect to onion addresses (`-onlynet=onion`).
    pub onion_only: bool,
    /// Wallets loaded at startup (`-wallet=NAME[,NAME…]`).
    pub wallets: Vec<String>,
    /// Seconds without a connected block, while headers are ahead of blocks, before the sync
    /// watchdog warns (`-syncstallwarn`, default 120).
    pub sync_stall_warn_secs: u64,
    /// Most RPC connections open at once (`-rpcmaxconnections`, default 64); more are closed at
    /// once.
    pub rpc_max_connections: usize,
    /// Seconds an RPC connection may take to send a request, or stay idle between requests
    /// (`-rpcservertimeout`, default 30), before it is closed.
    pub rpc_server_timeout_secs: u64,
    /// Free bytes the data directory's disk must keep (`-mindiskspace`, default 50 MB): below
    /// it the node logs "disk space is too low" and shuts down before writing.
    pub min_disk_space: u64,
}

/// Default of `-rpcmaxconnections`.
pub const DEFAULT_RPC_MAX_CONNECTIONS: usize = 64;
/// Default of `-rpcservertimeout` (Bitcoin Core's value).
pub const DEFAULT_RPC_SERVER_TIMEOUT_SECS: u64 = 30;
/// Default of `-mindiskspace` (Bitcoin Core's 50 MiB threshold).
pub const DEFAULT_MIN_DISK_SPACE: u64 = 50 * 1024 * 1024;

/// Default port of the inference server per network (two above the RPC port).
pub fn default_inference_port(network: Network) -> u16 {
    rnet_rpc::default_rpc_port(network) + 2
}

/// Default port of the web dashboard per network (three above the RPC port).
pub fn default_dashboard_port(network: Network) -> u16 {
    rnet_rpc::default_rpc_port(network) + 3
}

/// The default Lightning port of `network`: 9735 (BOLT 1's), 19735, 29735.
pub fn default_lightning_port(network: Network) -> u16 {
    match network {
        Network::Mainnet => 9735,
        Network::Testnet => 19735,
        Network::Regtest => 29735,
    }
}

impl Config {
    /// The network's data directory (`<datadir>` or `<datadir>/testnet|regtest`).
    pub fn network_dir(&self) -> PathBuf {
        rnet_rpc::network_datadir(&self.datadir, self.network)
    }

    /// How many of the most recent blocks' models the node keeps and advertises serving
    /// (`-prunemodels`, default [`rnet_chain::DEFAULT_PRUNE_CHECKPOINTS_DEPTH`]; 0 = archive).
    pub fn model_depth(&self) -> u32 {
        self.prune_models.unwrap_or(rnet_chain::DEFAULT_PRUNE_CHECKPOINTS_DEPTH)
    }
}

/// The `-help` text.
pub const HELP: &str = "Usage: rnetd [options]

Starts the ResonanceNet full node.

Options (Bitcoin style -opt=value / -noopt, or GNU style --opt=value / --opt value; the same
keys may be set in <datadir>/rnet.conf as key=value lines; the command line wins):
  -regtest, -testnet, -chain=main|test|regtest   network (default: main)
  -datadir=DIR          base data directory (default ~/.resonancenet; testnet and regtest use
                        the testnet/ and regtest/ subdirectories)
  -conf=FILE            config file (default <datadir>/rnet.conf)
  -rpcport=N            JSON-RPC port (default 9554 / 19554 / 29554; 0 = any free port, written
                        to <netdir>/rpc.port)
  -rpcbind=ADDR         JSON-RPC bind address (default 127.0.0.1)
  -rpcuser=U -rpcpassword=P   accept these credentials (the .cookie file is always written)
  -mine                 run the in-node miner (trains the tip model, mines continuously)
  -miningaddress=ADDR   pay mined blocks to ADDR, which must be a recovery-policy address
                        (a wallet's getnewaddress); bare-key addresses are refused
  -miningwallet=NAME    pay mined blocks to fresh addresses of wallet NAME (loaded if needed);
                        without either, regtest creates wallet \"miner\" with a heartbeat policy
  -device=DEV           where the in-node miner trains: cpu (default), cuda[:N], vulkan[:N],
                        metal or auto; a missing device is an error, never a CPU fallback
  -minelr=X             the in-node miner's AdamW learning rate (default 0.001)
  -minebatch=N          the in-node miner's windows per training step (default 4)
  -blocknotify=CMD      run CMD on every new tip (%s = block hash)
  -walletnotify=CMD     run CMD for every wallet transaction (%s = txid, %w = wallet name)
  -metrics[=ADDR]       Prometheus metrics at /metrics (default 127.0.0.1:9558 / 19558 / 29558)
  -minedata=FILE        training data of the in-node miner (default: the bundled text)
  -inference[=ADDR]     serve the tip model over the OpenAI-compatible API (default address
                        127.0.0.1:9556 / 19556 / 29556); follows the tip and reloads on new blocks
  -inferencethreads=N   threads of the inference server (default half the cores, leaving the
                        rest to the miner); one chat session's decode step uses all of them
  -dashboard[=ADDR]     serve the read-only web dashboard (default address 127.0.0.1:9557 /
                        19557 / 29557; port 0 = any free port, written to <netdir>/dashboard.port);
                        see docs/dashboard.md
  -lightning[=ADDR]     run the Lightning service: channels, payments, invoices (default
                        address 0.0.0.0:9735 / 19735 / 29735; port 0 = any free port, written to
                        <netdir>/lightning.port); see docs/lightning.md
  -watchtower           with -lightning: keep our peers' encrypted penalty appointments and
                        broadcast the penalty if a revoked commitment of theirs reaches the chain
  -lntower=ID@HOST:PORT with -lightning: send our penalty appointments to this watchtower
  -lndevholdhtlcs       regtest only: never settle payments to this node (tests of timeouts)
  -lnwallet=NAME        the wallet Lightning funds channels from and sweeps closes to (default:
                        the only loaded wallet)
  -listen=0|1           accept P2P connections (default 1)
  -port=N               P2P port (default 9555 / 19555 / 29555; 0 = any free port, written to
                        <netdir>/p2p.port)
  -bind=IP[,IP...]      P2P listen addresses (default 0.0.0.0)
  -connect=ADDR[,...]   connect only to these peers (-connect=0: no automatic connections)
  -addnode=ADDR[,...]   keep connections to these peers
  -seednode=ADDR[,...]  connect once to learn addresses
  -maxconnections=N     connection limit (default 125)
  -proxy=IP:PORT        SOCKS5 proxy for outbound P2P connections (e.g. Tor)
  -onlynet=onion        only connect to onion addresses (needs -proxy)
  -wallet=NAME[,...]    load these wallets (<netdir>/wallets/NAME.wallet) at startup
  -rpcmaxconnections=N  most JSON-RPC connections open at once (default 64; more are closed)
  -rpcservertimeout=S   close an RPC connection that takes longer than S seconds to send its
                        request, or idles longer between requests (default 30)
  -syncstallwarn=S      warn when headers are ahead of blocks and no block connected for S
                        seconds (default 120)
  -mindiskspace=BYTES   shut down with \"disk space is too low\" when the data directory's disk
                        has less free space (default 52428800, 50 MiB)
  -prunemodels=N        keep and serve the models (checkpoints) of the last N blocks (default
                        144; 0 = archive node: keep every model); advertised to peers
  -prunecheckpoints=N   alias of -prunemodels (an error if both are given with different values)
  -txindex              keep an index of every confirmed transaction (getrawtransaction)
  -assumevalid=HASH     skip the Proof-of-Training evaluations of this block and its ancestors
                        while syncing (every other check still runs; 0 = evaluate every block;
                        default: the network's, none yet)
  -snapshotsync=0|1     with -assumevalid: fetch the assumed-valid block's whole model and
                        connect its ancestors without their models (default 1); 0 = fetch every
                        block's update from genesis
  -benchmarkloss=0|1    evaluate each new tip model on the benchmark slice in the background
                        for benchmark_loss (default 1; as costly as one Proof-of-Training
                        evaluation per block)
  -benchmarkinterval=SECS   evaluate it at most once per SECS seconds, on the tip of that
                        moment (default 0 on regtest: every tip; 30 elsewhere)
  -requiredimprovement=N   regtest only: the base required improvement in µnat (default and
                        minimum: the regtest floor, 20000); changes the regtest genesis block
  -printtoconsole=0|1   log to stderr too (default 1); the log is always in <netdir>/debug.log
  -debug=FILTER         log filter (default info), e.g. -debug=rnet_node=debug
  -help, -version";

const KNOWN: &[(&str, bool)] = &[
    // (name, takes a value)
    ("regtest", false),
    ("testnet", false),
    ("chain", true),
    ("datadir", true),
    ("conf", true),
    ("rpcport", true),
    ("rpcbind", true),
    ("rpcuser", true),
    ("rpcpassword", true),
    ("mine", false),
    ("inference", false),
    ("inferencethreads", true),
    ("dashboard", false),
    ("lightning", false),
    ("lnwallet", true),
    ("watchtower", false),
    ("lntower", true),
    ("lndevholdhtlcs", false),
    ("mineaddress", true),
    ("miningaddress", true),
    ("miningwallet", true),
    ("device", true),
    ("minelr", true),
    ("minebatch", true),
    ("blocknotify", true),
    ("walletnotify", true),
    ("metrics", false),
    ("minedata", true),
    ("prunecheckpoints", true),
    ("prunemodels", true),
    ("txindex", false),
    ("assumevalid", true),
    ("snapshotsync", true),
    ("benchmarkloss", true),
    ("benchmarkinterval", true),
    ("requiredimprovement", true),
    ("listen", false),
    ("port", true),
    ("bind", true),
    ("connect", true),
    ("addnode", true),
    ("seednode", true),
    ("maxconnections", true),
    ("proxy", true),
    ("onlynet", true),
    ("wallet", true),
    ("syncstallwarn", true),
    ("rpcmaxconnections", true),
    ("rpcservertimeout", true),
    ("mindiskspace", true),
    ("printtoconsole", false),
    ("debug", true),
    ("help", false),
    ("version", false),
];

fn known(name: &str) -> Option<bool> {
    KNOWN.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Parses command-line arguments (without the program name) into options.
fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let gnu = arg.starts_with("--");
        let Some(opt) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(ConfigError::NotAnOption(arg.clone()));
        };
        if opt.is_empty() {
            return Err(ConfigError::NotAnOption(arg.clone()));
        }
        let (mut name, mut value) = match opt.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (opt.to_string(), None),
        };
        if matches!(name.as_str(), "h" | "?") {
            name = "help".into();
        }
        if known(&name).is_none() {
            if let Some(neg) = name.strip_prefix("no") {
                if known(neg) == Some(false) && value.is_none() {
                    out.insert(neg.to_string(), "0".to_string());
                    continue;
                }
            }
            return Err(ConfigError::UnknownOption(name));
        }
        let takes_value = known(&name) == Some(true);
        if takes_value && value.is_none() {
            if gnu && i < args.len() {
                value = Some(args[i].clone());
                i += 1;
            } else {
                return Err(ConfigError::MissingValue(name));
            }
        }
        out.insert(name, value.unwrap_or_else(|| "1".to_string()));
    }
    Ok(out)
}

/// Parses a config file's text into options.
fn parse_file(text: &str, file: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('[') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ConfigError::BadLine { file: file.to_string(), line: n + 1 });
        };
        let k = k.trim();
        if known(k).is_none() || matches!(k, "conf" | "datadir" | "help" | "version") {
            return Err(ConfigError::UnknownOption(k.to_string()));
        }
        out.insert(k.to_string(), v.trim().to_string());
    }
    Ok(out)
}

fn flag(opts: &BTreeMap<String, String>, name: &str) -> Result<Option<bool>, ConfigError> {
    match opts.get(name).map(String::as_str) {
        None => Ok(None),
        Some("1" | "true" | "yes" | "") => Ok(Some(true)),
        Some("0" | "false" | "no") => Ok(Some(false)),
        Some(v) => Err(ConfigError::InvalidValue {
            name: name.into(),
            value: v.into(),
            reason: "expected 0 or 1".into(),
        }),
    }
}

/// `-assumevalid`: `0` disables it, otherwise a block id in hex.
fn assume_valid(
    opts: &BTreeMap<String, String>,
) -> Result<Option<Option<rnet_primitives::BlockHash>>, ConfigError> {
    match opts.get("assumevalid").map(String::as_str) {
        None => Ok(None),
        Some("0") => Ok(Some(None)),
        Some(v) => {
            v.parse().map(|h| Some(Some(h))).map_err(|e: rnet_primitives::ParseHashError| {
                ConfigError::InvalidValue {
                    name: "assumevalid".into(),
                    value: v.into(),
                    reason: format!("expected 0 or a block id of 64 hex digits: {e}"),
                }
            })
        }
    }
}

/// `-prunemodels=N`, or its alias `-prunecheckpoints=N`; both with different values is an error.
fn prune_models(opts: &BTreeMap<String, String>) -> Result<Option<u32>, ConfigError> {
    let models = parse_value::<u32>(opts, "prunemodels")?;
    let checkpoints = parse_value::<u32>(opts, "prunecheckpoints")?;
    match (models, checkpoints) {
        (Some(m), Some(c)) if m != c => Err(ConfigError::InvalidValue {
            name: "prunemodels".into(),
            value: m.to_string(),
            reason: format!("-prunecheckpoints={c} (its alias) says otherwise"),
        }),
        (m, c) => Ok(m.or(c)),
    }
}

fn parse_value<T: std::str::FromStr>(
    opts: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    opts.get(name)
        .map(|v| {
            v.parse().map_err(|e: T::Err| ConfigError::InvalidValue {
                name: name.into(),
                value: v.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// Parses the command line (without the program name), reads the config file and returns what to
/// do. `home_datadir` is the default base data directory (`~/.resonancenet`), if there is one.
pub fn parse(args: &[String], home_datadir: Option<PathBuf>) -> Result<Command, ConfigError> {
    let cli = parse_args(args)?;
    if flag(&cli, "help")? == Some(true) {
        return Ok(Command::Help);
    }
    if flag(&cli, "version")? == Some(true) {
        return Ok(Command::Version);
    }
    let datadir = match cli.get("datadir") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => home_datadir.ok_or(ConfigError::NoDatadir)?,
    };
    let conf_path = match cli.get("conf") {
        Some(c) => {
            let p = PathBuf::from(c);
            if p.is_absolute() { p } else { datadir.join(p) }
        }
        None => datadir.join(CONFIG_FILE),
    };
    let mut opts = read_conf(&conf_path, cli.contains_key("conf"))?;
    opts.extend(cli);
    let regtest = flag(&opts, "regtest")?.unwrap_or(false);
    let testnet = flag(&opts, "testnet")?.unwrap_or(false);
    let chain = match opts.get("chain").map(String::as_str) {
        None => None,
        Some("main" | "mainnet") => Some(Network::Mainnet),
        Some("test" | "testnet") => Some(Network::Testnet),
        Some("regtest") => Some(Network::Regtest),
        Some(v) => {
            return Err(ConfigError::InvalidValue {
                name: "chain".into(),
                value: v.into(),
                reason: "expected main, test or regtest".into(),
            });
        }
    };
    let network = match (regtest, testnet, chain) {
        (true, true, _) => return Err(ConfigError::ConflictingNetworks),
        (true, false, None | Some(Network::Regtest)) => Network::Regtest,
        (false, true, None | Some(Network::Testnet)) => Network::Testnet,
        (false, false, c) => c.unwrap_or(Network::Mainnet),
        _ => return Err(ConfigError::ConflictingNetworks),
    };
    let rpc_port = parse_value::<u16>(&opts, "rpcport")?
        .unwrap_or_else(|| rnet_rpc::default_rpc_port(network));
    let rpc_bind = parse_value(&opts, "rpcbind")?.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let rpc_user_pass = match (opts.get("rpcuser"), opts.get("rpcpassword")) {
        (Some(u), Some(p)) => Some((u.clone(), p.clone())),
        (None, None) => None,
        _ => {
            return Err(ConfigError::InvalidValue {
                name: "rpcpassword".into(),
                value: String::new(),
                reason: "-rpcuser and -rpcpassword go together".into(),
            });
        }
    };
    Ok(Command::Run(Box::new(Config {
        network,
        datadir,
        rpc_port,
        rpc_bind,
        rpc_user_pass,
        mine: flag(&opts, "mine")?.unwrap_or(false),
        mining_address: opts.get("miningaddress").or_else(|| opts.get("mineaddress")).cloned(),
        mining_wallet: opts.get("miningwallet").cloned(),
        mine_device: match opts.get("device") {
            None => rnet_miner::Device::default(),
            Some(v) => {
                v.parse().map_err(|e: rnet_miner::DeviceParseError| ConfigError::InvalidValue {
                    name: "device".into(),
                    value: v.clone(),
                    reason: e.to_string(),
                })?
            }
        },
        mine_lr: parse_value::<f32>(&opts, "minelr")?,
        mine_batch: parse_value::<usize>(&opts, "minebatch")?,
        block_notify: opts.get("blocknotify").cloned(),
        wallet_notify: opts.get("walletnotify").cloned(),
        metrics: local_service_addr(&opts, "metrics", default_metrics_port(network))?,
        mine_data: opts.get("minedata").map(PathBuf::from),
        print_to_console: flag(&opts, "printtoconsole")?.unwrap_or(true),
        log_filter: opts.get("debug").cloned().unwrap_or_else(|| "info".to_string()),
        prune_models: prune_models(&opts)?,
        txindex: flag(&opts, "txindex")?.unwrap_or(false),
        assume_valid: assume_valid(&opts)?,
        snapshot_sync: flag(&opts, "snapshotsync")?.unwrap_or(true),
        benchmark_loss: flag(&opts, "benchmarkloss")?.unwrap_or(true),
        benchmark_interval_secs: parse_value::<u64>(&opts, "benchmarkinterval")?
            .unwrap_or(if network == Network::Regtest { 0 } else { 30 }),
        regtest_required_improvement: regtest_required_improvement(&opts, network)?,
        inference: local_service_addr(&opts, "inference", default_inference_port(network))?,
        inference_threads: match parse_value::<usize>(&opts, "inferencethreads")? {
            Some(0) => {
                return Err(ConfigError::InvalidValue {
                    name: "inferencethreads".into(),
                    value: "0".into(),
                    reason: "at least one thread".into(),
                });
            }
            n => n,
        },
        dashboard: local_service_addr(&opts, "dashboard", default_dashboard_port(network))?,
        lightning: lightning_addr(&opts, network)?,
        ln_wallet: opts.get("lnwallet").cloned(),
        watchtower: flag(&opts, "watchtower")?.unwrap_or(false),
        ln_tower: ln_tower(&opts)?,
        ln_dev_hold_htlcs: match flag(&opts, "lndevholdhtlcs")?.unwrap_or(false) {
            true if network != Network::Regtest => {
                return Err(ConfigError::InvalidValue {
                    name: "lndevholdhtlcs".into(),
                    value: "1".into(),
                    reason: "only available on regtest".into(),
                });
            }
            hold => hold,
        },
        listen: flag(&opts, "listen")?.unwrap_or(true),
        p2p_port: parse_value::<u16>(&opts, "port")?
            .unwrap_or_else(|| rnet_consensus::ChainParams::for_network(network).p2p_port),
        bind: match opts.get("bind") {
            Some(v) => list(v)
                .iter()
                .map(|s| {
                    s.parse().map_err(|e: std::net::AddrParseError| ConfigError::InvalidValue {
                        name: "bind".into(),
                        value: s.clone(),
                        reason: e.to_string(),
                    })
                })
                .collect::<Result<_, _>>()?,
            None => vec![std::net::IpAddr::from([0, 0, 0, 0])],
        },
        auto_connect: !opts.contains_key("connect"),
        connect: opts
            .get("connect")
            .map(|v| list(v))
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s != "0")
            .collect(),
        addnode: opts.get("addnode").map(|v| list(v)).unwrap_or_default(),
        seednode: opts.get("seednode").map(|v| list(v)).unwrap_or_default(),
        max_connections: parse_value(&opts, "maxconnections")?.unwrap_or(125),
        proxy: parse_value(&opts, "proxy")?,
        wallets: opts.get("wallet").map(|v| list(v)).unwrap_or_default(),
        sync_stall_warn_secs: positive(&opts, "syncstallwarn")?
            .unwrap_or(crate::sync::DEFAULT_STALL_WARN_SECS),
        rpc_max_connections: positive(&opts, "rpcmaxconnections")?
            .map_or(DEFAULT_RPC_MAX_CONNECTIONS, |n| n as usize),
        rpc_server_timeout_secs: positive(&opts, "rpcservertimeout")?
            .unwrap_or(DEFAULT_RPC_SERVER_TIMEOUT_SECS),
        min_disk_space: parse_value(&opts, "mindiskspace")?.unwrap_or(DEFAULT_MIN_DISK_SPACE),
        onion_only: match opts.get("onlynet").map(String::as_str) {
            None => false,
            Some("onion") => true,
            Some("ipv4" | "ipv6") => false,
            Some(v) => {
                return Err(ConfigError::InvalidValue {
                    name: "onlynet".into(),
                    value: v.into(),
                    reason: "expected onion, ipv4 or ipv6".into(),
                });
            }
        },
    })))
}

/// A numeric option that must be at least 1.
fn positive(opts: &BTreeMap<String, String>, name: &str) -> Result<Option<u64>, ConfigError> {
    match parse_value::<u64>(opts, name)? {
        Some(0) => Err(ConfigError::InvalidValue {
            name: name.into(),
            value: "0".into(),
            reason: "must be at least 1".into(),
        }),
        v => Ok(v),
    }
}

/// A comma-separated option value.
fn list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// `-requiredimprovement=N`: regtest only, at least the regtest floor.
fn regtest_required_improvement(
    opts: &BTreeMap<String, String>,
    network: Network,
) -> Result<Option<u64>, ConfigError> {
    let Some(value) = parse_value::<u64>(opts, "requiredimprovement")? else { return Ok(None) };
    let floor = rnet_consensus::ChainParams::regtest().min_required_improvement;
    let invalid = |reason: String| ConfigError::InvalidValue {
        name: "requiredimprovement".into(),
        value: value.to_string(),
        reason,
    };
    if network != Network::Regtest {
        return Err(invalid("only regtest accepts it".into()));
    }
    if value < floor {
        return Err(invalid(format!("below the regtest floor {floor}")));
    }
    Ok(Some(value))
}

/// The default metrics port of `network`: four above the RPC port.
pub fn default_metrics_port(network: Network) -> u16 {
    rnet_rpc::default_rpc_port(network) + 4
}

/// A local service option (`-inference`, `-dashboard`, `-metrics`): absent or `0` is off, alone
/// or `1` is 127.0.0.1:`default_port`, anything else must be `IP:PORT`.
fn local_service_addr(
    opts: &BTreeMap<String, String>,
    name: &str,
    default_port: u16,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match opts.get(name).map(String::as_str) {
        None | Some("0" | "false" | "no") => Ok(None),
        Some("1" | "true" | "yes" | "") => {
            Ok(Some(std::net::SocketAddr::from(([127, 0, 0, 1], default_port))))
        }
        Some(v) => {
            v.parse().map(Some).map_err(|e: std::net::AddrParseError| ConfigError::InvalidValue {
                name: name.into(),
                value: v.into(),
                reason: format!("expected IP:PORT ({e})"),
            })
        }
    }
}

fn lightning_addr(
    opts: &BTreeMap<String, String>,
    network: Network,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match opts.get("lightning").map(String::as_str) {
        None | Some("0" | "false" | "no") => Ok(None),
        Some("1" | "true" | "yes" | "") => {
            Ok(Some(std::net::SocketAddr::from(([0, 0, 0, 0], default_lightning_port(network)))))
        }
        Some(v) => {
            v.parse().map(Some).map_err(|e: std::net::AddrParseError| ConfigError::InvalidValue {
                name: "lightning".into(),
                value: v.into(),
                reason: format!("expected IP:PORT ({e})"),
            })
        }
    }
}

/// `-lntower=ID@HOST:PORT`: a 64-hex-digit node id and an address.
fn ln_tower(
    opts: &BTreeMap<String, String>,
) -> Result<Option<(rnet_crypto::PublicKey, std::net::SocketAddr)>, ConfigError> {
    let Some(v) = opts.get("lntower") else { return Ok(None) };
    let bad = |reason: &str| ConfigError::InvalidValue {
        name: "lntower".into(),
        value: v.clone(),
        reason: reason.into(),
    };
    let (id, addr) = v.split_once('@').ok_or_else(|| bad("expected ID@HOST:PORT"))?;
    let id: [u8; 32] = hex::decode(id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the id must be 64 hex digits"))?;
    let id = rnet_crypto::PublicKey::from_bytes(&id).map_err(|_| bad("not a node id"))?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| bad("expected HOST:PORT"))?;
    Ok(Some((id, addr)))
}

fn read_conf(path: &Path, required: bool) -> Result<BTreeMap<String, String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_file(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(BTreeMap::new()),
        Err(source) => Err(ConfigError::Read { file: path.display().to_string(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn run(a: &[&str]) -> Config {
        match parse(&args(a), Some("/nonexistent-home".into())).unwrap() {
            Command::Run(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resource_limit_options() {
        let c = run(&["-regtest", "-datadir=/tmp/x"]);
        assert_eq!(c.rpc_max_connections, DEFAULT_RPC_MAX_CONNECTIONS);
        assert_eq!(c.rpc_server_timeout_secs, DEFAULT_RPC_SERVER_TIMEOUT_SECS);
        assert_eq!(c.sync_stall_warn_secs, crate::sync::DEFAULT_STALL_WARN_SECS);
        assert_eq!(c.min_disk_space, DEFAULT_MIN_DISK_SPACE);
        let c = run(&[
            "-datadir=/tmp/x",
            "-rpcmaxconnections=8",
            "-rpcservertimeout=2",
            "-syncstallwarn=5",
            "-mindiskspace=0",
        ]);
        assert_eq!(
            (c.rpc_max_connections, c.rpc_server_timeout_secs, c.sync_stall_warn_secs),
            (8, 2, 5)
        );
        assert_eq!(c.min_disk_space, 0);
        for bad in ["-rpcmaxconnections=0", "-rpcservertimeout=0", "-syncstallwarn=x"] {
            assert!(
                matches!(
                    parse(&args(&["-datadir=/tmp/x", bad]), None),
                    Err(ConfigError::InvalidValue { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn lightning_options() {
        let d = "-datadir=/tmp/x";
        assert_eq!(run(&[d]).lightning, None);
        let c = run(&[d, "-regtest", "-lightning"]);
        assert_eq!(c.lightning, Some("0.0.0.0:29735".parse().unwrap()));
        let c = run(&[d, "-lightning=127.0.0.1:0", "-lnwallet=A"]);
        assert_eq!(c.lightning, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(c.ln_wallet.as_deref(), Some("A"));
        assert!(matches!(
            parse(&args(&[d, "-lightning=nowhere"]), None),
            Err(ConfigError::InvalidValue { .. })
        ));
        let id = hex::encode(rnet_crypto::SigningKey::from_bytes(&[3; 32]).public_key().to_bytes());
        assert!(run(&[d, "-regtest", "-lndevholdhtlcs"]).ln_dev_hold_htlcs);
        assert!(!run(&[d, "-regtest"]).ln_dev_hold_htlcs);
        assert!(matches!(
            parse(&args(&[d, "-testnet", "-lndevholdhtlcs"]), None),
            Err(ConfigError::InvalidValue { .. })
        ));
        let c = run(&[d, "-watchtower", &format!("-lntower={id}@127.0.0.1:9735")]);
        assert!(c.watchtower);
        assert_eq!(c.ln_tower.map(|(_, a)| a.port()), Some(9735));
        for bad in ["-lntower=xyz", "-lntower=00@127.0.0.1:1", &format!("-lntower={id}")] {
            assert!(
                matches!(parse(&args(&[d, bad]), None), Err(ConfigError::InvalidValue { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn benchmarkloss_option() {
        let d = "-datadir=/tmp/x";
        assert!(run(&[d]).benchmark_loss, "on by default");
        assert!(!run(&[d, "-benchmarkloss=0"]).benchmark_loss);
        assert!(run(&[d, "-benchmarkloss=1"]).benchmark_loss);
        assert_eq!(run(&[d, "-regtest"]).benchmark_interval_secs, 0, "regtest: every tip");
        assert_eq!(run(&[d]).benchmark_interval_secs, 30);
        assert_eq!(run(&[d, "-benchmarkinterval=45"]).benchmark_interval_secs, 45);
        assert!(parse(&args(&[d, "-benchmarkinterval=-1"]), None).is_err());
        assert!(matches!(
            parse(&args(&[d, "-benchmarkloss=maybe"]), None),
            Err(ConfigError::InvalidValue { .. })
        ));
    }

    #[test]
    fn prunemodels_option_and_its_alias() {
        let d = "-datadir=/tmp/x";
        let c = run(&[d]);
        assert_eq!((c.prune_models, c.model_depth()), (None, 144));
        let c = run(&[d, "-prunemodels=10"]);
        assert_eq!((c.prune_models, c.model_depth()), (Some(10), 10));
        assert_eq!(run(&[d, "-prunemodels=0"]).model_depth(), 0, "0 = archive");
        assert_eq!(run(&[d, "-prunecheckpoints=12"]).prune_models, Some(12), "alias");
        assert_eq!(run(&[d, "-prunecheckpoints=12", "-prunemodels=12"]).prune_models, Some(12));
        for bad in [
            &[d, "-prunecheckpoints=12", "-prunemodels=13"][..],
            &[d, "-prunemodels=-1"],
            &[d, "-prunemodels=x"],
        ] {
            assert!(
                matches!(parse(&args(bad), None), Err(ConfigError::InvalidValue { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn inference_option() {
        assert_eq!(run(&["-regtest", "-datadir=/tmp/x"]).inference, None);
        let c = run(&["-regtest", "-datadir=/tmp/x", "-inference"]);
        assert_eq!(c.inference, Some("127.0.0.1:29556".parse().unwrap()));
        let c = run(&["-datadir=/tmp/x", "--inference=0.0.0.0:8080"]);
        assert_eq!(c.inference, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(run(&["-datadir=/tmp/x", "-inference=0"]).inference, None);
        assert_eq!(run(&["-datadir=/tmp/x"]).inference_threads, None);
        assert_eq!(run(&["-datadir=/tmp/x", "-inferencethreads=2"]).inference_threads, Some(2));
        for bad in ["-inferencethreads=0", "-inferencethreads=two", "-inferencethreads=-1"] {
            assert!(
                matches!(
                    parse(&args(&["-datadir=/tmp/x", bad]), None),
                    Err(ConfigError::InvalidValue { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            parse(&args(&["-datadir=/tmp/x", "-inference=nope"]), None),
            Err(ConfigError::InvalidValue { .. })
        ));
    }

    #[test]
    fn dashboard_option() {
        assert_eq!(run(&["-regtest", "-datadir=/tmp/x"]).dashboard, None);
        let c = run(&["-regtest", "-datadir=/tmp/x", "-dashboard"]);
        assert_eq!(c.dashboard, Some("127.0.0.1:29557".parse().unwrap()));
        assert_eq!(run(&["-datadir=/tmp/x", "-dashboard"]).dashboard.map(|a| a.port()), Some(9557));
        let c = run(&["-testnet", "-datadir=/tmp/x", "-dashboard=1"]);
        assert_eq!(c.dashboard, Some("127.0.0.1:19557".parse().unwrap()));
        let c = run(&["-datadir=/tmp/x", "--dashboard=127.0.0.1:0"]);
        assert_eq!(c.dashboard, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(run(&["-datadir=/tmp/x", "-dashboard=0"]).dashboard, None);
        assert_eq!(run(&["-datadir=/tmp/x", "-nodashboard"]).dashboard, None);
        assert!(matches!(
            parse(&args(&["-datadir=/tmp/x", "-dashboard=nope"]), None),
            Err(ConfigError::InvalidValue { .. })
        ));
    }

    #[test]
    fn required_improvement_option_is_regtest_only_and_above_the_floor() {
        assert_eq!(run(&["-regtest", "-datadir=/tmp/x"]).regtest_required_improvement, None);
        let c = run(&["-regtest", "-datadir=/tmp/x", "-requiredimprovement=8192000"]);
        assert_eq!(c.regtest_required_improvement, Some(8_192_000));
        for bad in [
            &["-datadir=/tmp/x", "-requiredimprovement=8192000"][..],
            &["-testnet", "-datadir=/tmp/x", "-requiredimprovement=8192000"],
            &["-regtest", "-datadir=/tmp/x", "-requiredimprovement=15999"],
            &["-regtest", "-datadir=/tmp/x", "-requiredimprovement=lots"],
        ] {
            assert!(
                matches!(parse(&args(bad), None), Err(ConfigError::InvalidValue { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bitcoin_and_gnu_styles() {
        let c = run(&["-regtest", "-datadir=/tmp/x", "-rpcport=0", "-mine"]);
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.rpc_port, 0);
        assert!(c.mine);
        assert_eq!(c.network_dir(), PathBuf::from("/tmp/x/regtest"));
        let c = run(&["--regtest", "--datadir", "/tmp/y", "--rpcport=5", "--nomine"]);
        assert_eq!(c.datadir, PathBuf::from("/tmp/y"));
        assert_eq!(c.rpc_port, 5);
        assert!(!c.mine);
        let c = run(&["-testnet", "-datadir=/tmp/x"]);
        assert_eq!(c.rpc_port, 19554);
        assert!(c.wallets.is_empty());
        let c = run(&["-regtest", "-wallet=A, B", "--wallet", "C"]);
        assert_eq!(c.wallets, ["C"]);
        let c = run(&["-regtest", "-wallet=A, B"]);
        assert_eq!(c.wallets, ["A", "B"]);
    }

    #[test]
    fn errors() {
        let home = Some(PathBuf::from("/nonexistent-home"));
        assert!(matches!(
            parse(&args(&["-bogus"]), home.clone()),
            Err(ConfigError::UnknownOption(_))
        ));
        assert!(matches!(
            parse(&args(&["-rpcport"]), home.clone()),
            Err(ConfigError::MissingValue(_))
        ));
        assert!(matches!(
            parse(&args(&["-rpcport=x"]), home.clone()),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse(&args(&["-regtest", "-testnet"]), home.clone()),
            Err(ConfigError::ConflictingNetworks)
        ));
        assert!(matches!(parse(&args(&["x"]), home.clone()), Err(ConfigError::NotAnOption(_))));
        assert_eq!(parse(&args(&["-help"]), home.clone()).unwrap(), Command::Help);
        assert_eq!(parse(&args(&["--version"]), home).unwrap(), Command::Version);
    }

    #[test]
    fn config_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "# comment\nregtest=1\nrpcport=7\nmine=1\nwallet=W\n",
        )
        .unwrap();
        let d = format!("-datadir={}", dir.path().display());
        let c = run(&[&d, "-rpcport=8"]);
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.rpc_port, 8);
        assert!(c.mine);
        assert_eq!(c.wallets, ["W"]);
        std::fs::write(dir.path().join(CONFIG_FILE), "nonsense\n").unwrap();
        assert!(matches!(parse(&args(&[&d]), None), Err(ConfigError::BadLine { line: 1, .. })));
        std::fs::write(dir.path().join(CONFIG_FILE), "bogus=1\n").unwrap();
        assert!(matches!(parse(&args(&[&d]), None), Err(ConfigError::UnknownOption(_))));
    }
}
