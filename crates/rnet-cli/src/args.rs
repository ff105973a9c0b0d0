//! Command-line parsing in bitcoin-cli's style (`-regtest`, `-rpcport=N`) and GNU style
//! (`--regtest`, `--rpcport N`), and the conversion of command arguments to JSON parameters.

use std::path::{Path, PathBuf};

use rnet_rpc::{Network, default_rpc_port};
use serde_json::{Map, Value};

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Cli {
    /// Print usage.
    Help,
    /// Print the version.
    Version,
    /// Call a method.
    Run(Box<Options>),
}

/// The options of a call.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// The network (`-regtest`, `-testnet`, `-chain=`).
    pub network: Network,
    /// `-datadir`.
    pub datadir: Option<PathBuf>,
    /// `-rpcconnect` (host, or host:port).
    pub rpcconnect: Option<String>,
    /// `-rpcport`.
    pub rpcport: Option<String>,
    /// `-rpcuser`.
    pub rpcuser: Option<String>,
    /// `-rpcpassword`.
    pub rpcpassword: Option<String>,
    /// `-rpccookiefile`.
    pub rpccookiefile: Option<PathBuf>,
    /// `-rpcwallet`.
    pub rpcwallet: Option<String>,
    /// `-named`.
    pub named: bool,
    /// `-stdin`: read further arguments from standard input, one per line.
    pub stdin: bool,
    /// `-stdinrpcpass`: read the RPC password from the first line of standard input.
    pub stdinrpcpass: bool,
    /// `-rpcwait`: wait for the server to come up (and finish warming up).
    pub rpcwait: bool,
    /// `-rpcwaittimeout` in seconds (0: forever).
    pub rpcwaittimeout: u64,
    /// `-rpcclienttimeout` in seconds (0: none).
    pub rpcclienttimeout: u64,
    /// The method followed by its arguments.
    pub command: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            network: Network::Mainnet,
            datadir: None,
            rpcconnect: None,
            rpcport: None,
            rpcuser: None,
            rpcpassword: None,
            rpccookiefile: None,
            rpcwallet: None,
            named: false,
            stdin: false,
            stdinrpcpass: false,
            rpcwait: false,
            rpcwaittimeout: 0,
            rpcclienttimeout: 900,
            command: Vec::new(),
        }
    }
}

/// The usage text (`-help`).
pub const USAGE: &str = "\
rnet-cli: the ResonanceNet RPC client

Usage:
  rnet-cli [options] <command> [params]          send a command to the server
  rnet-cli [options] -named <command> [name=value]...   with named parameters
  rnet-cli [options] help                         list the server's commands
  rnet-cli [options] help <command>               help on a command

Options (Bitcoin style -opt=value, or GNU style --opt=value / --opt value):
  -?, -h, -help          print this help and exit
  -version               print the version and exit
  -chain=<chain>         main, test or regtest (default: main)
  -testnet               use the test network (-chain=test)
  -regtest               use the regression-test network (-chain=regtest)
  -datadir=<dir>         data directory (default: ~/.resonancenet; testnet/ and regtest/ inside it)
  -rpcconnect=<host>     server host, optionally host:port (default: 127.0.0.1)
  -rpcport=<port>        server port (default: 9554, testnet 19554, regtest 29554)
  -rpcuser=<user>        user name for -rpcpassword authentication
  -rpcpassword=<pw>      password (default: the cookie <datadir>/[testnet|regtest/].cookie)
  -rpccookiefile=<file>  cookie file (relative paths are inside the network's datadir)
  -rpcwallet=<name>      send the call to /wallet/<name>
  -rpcwait               wait for the server to start (and finish warming up)
  -rpcwaittimeout=<n>    give up waiting after n seconds (default: 0, forever)
  -rpcclienttimeout=<n>  HTTP timeout in seconds (default: 900; 0: none)
  -named                 pass parameters by name: name=value
  -stdin                 read extra arguments from standard input, one per line
  -stdinrpcpass          read the RPC password from the first line of standard input

Each parameter is sent as JSON when it parses as JSON (5, true, [1,2], {\"a\":1}, null),
otherwise as a string; write '\"123\"' to force a string that looks like JSON.
Strings are printed raw, other results as indented JSON. On an error the server's code and
message go to standard error and the exit status is 1.
";

const BOOL_OPTS: &[&str] = &["named", "stdin", "stdinrpcpass", "rpcwait", "testnet", "regtest"];
const VALUE_OPTS: &[&str] = &[
    "chain",
    "datadir",
    "rpcconnect",
    "rpcport",
    "rpcuser",
    "rpcpassword",
    "rpccookiefile",
    "rpcwallet",
    "rpcwaittimeout",
    "rpcclienttimeout",
];

fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "" | "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(format!("Invalid value for -{name}: {v:?} (expected 0 or 1)")),
    }
}

fn parse_secs(name: &str, v: &str) -> Result<u64, String> {
    v.trim().parse().map_err(|_| format!("Invalid value for -{name}: {v:?} (expected seconds)"))
}

/// Parse the arguments after the program name.
pub fn parse_args(args: &[String]) -> Result<Cli, String> {
    let mut o = Options::default();
    let mut chains: Vec<Network> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        let gnu = arg.starts_with("--");
        let body = arg.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        i += 1;
        match name {
            "?" | "h" | "help" => return Ok(Cli::Help),
            "version" => return Ok(Cli::Version),
            _ => {}
        }
        // Bitcoin's -noX form for booleans.
        if let Some(neg) = name.strip_prefix("no").filter(|n| BOOL_OPTS.contains(n)) {
            let v = !parse_bool(name, inline.unwrap_or(""))?;
            set_bool(&mut o, &mut chains, neg, v);
            continue;
        }
        if BOOL_OPTS.contains(&name) {
            let v = parse_bool(name, inline.unwrap_or(""))?;
            set_bool(&mut o, &mut chains, name, v);
            continue;
        }
        if !VALUE_OPTS.contains(&name) {
            return Err(format!("Invalid parameter {arg}"));
        }
        let value = match inline {
            Some(v) => v.to_owned(),
            // `--rpcport 9554` / `-rpcport 9554`: the value is the next argument.
            None => match args.get(i) {
                Some(v) if gnu || !v.starts_with('-') => {
                    i += 1;
                    v.clone()
                }
                _ => return Err(format!("-{name} requires a value")),
            },
        };
        match name {
            "chain" => chains.push(
                value
                    .parse::<Network>()
                    .map_err(|_| format!("Invalid chain {value:?} (main, test or regtest)"))?,
            ),
            "datadir" => o.datadir = Some(PathBuf::from(value)),
            "rpcconnect" => o.rpcconnect = Some(value),
            "rpcport" => o.rpcport = Some(value),
            "rpcuser" => o.rpcuser = Some(value),
            "rpcpassword" => o.rpcpassword = Some(value),
            "rpccookiefile" => o.rpccookiefile = Some(PathBuf::from(value)),
            "rpcwallet" => o.rpcwallet = Some(value),
            "rpcwaittimeout" => o.rpcwaittimeout = parse_secs(name, &value)?,
            _ => o.rpcclienttimeout = parse_secs(name, &value)?,
        }
    }
    chains.dedup();
    match chains.as_slice() {
        [] => {}
        [n] => o.network = *n,
        _ => {
            return Err(
                "Invalid combination of -regtest, -testnet and -chain. Can use at most one.".into(),
            );
        }
    }
    o.command = args[i..].to_vec();
    Ok(Cli::Run(Box::new(o)))
}

fn set_bool(o: &mut Options, chains: &mut Vec<Network>, name: &str, v: bool) {
    match name {
        "named" => o.named = v,
        "stdin" => o.stdin = v,
        "stdinrpcpass" => o.stdinrpcpass = v,
        "rpcwait" => o.rpcwait = v,
        "testnet" if v => chains.push(Network::Testnet),
        "regtest" if v => chains.push(Network::Regtest),
        _ => {}
    }
}

/// A command-line argument as a JSON value: the JSON it spells, else the string itself.
pub fn arg_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

/// The `params` of a call: an array, or with `-named` an object of `name=value` pairs (bare
/// arguments go to Core's `"args"` list of leading positional values).
pub fn build_params(named: bool, args: &[String]) -> Result<Value, String> {
    if !named {
        return Ok(Value::Array(args.iter().map(|a| arg_value(a)).collect()));
    }
    let mut map = Map::new();
    let mut positional = Vec::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) => {
                if map.insert(k.to_owned(), arg_value(v)).is_some() {
                    return Err(format!("Parameter {k} specified multiple times"));
                }
            }
            None => positional.push(arg_value(a)),
        }
    }
    if !positional.is_empty() {
        if map.contains_key("args") {
            return Err("Parameter args specified multiple times".into());
        }
        map.insert("args".into(), Value::Array(positional));
    }
    Ok(Value::Object(map))
}

/// The server's host and port: `-rpcport` beats a port in `-rpcconnect`, which beats the
/// network's default.
pub fn endpoint(o: &Options) -> Result<(String, u16), String> {
    let connect = o.rpcconnect.as_deref().unwrap_or("127.0.0.1");
    let (host, port_in_connect) = split_host_port(connect)?;
    let port = match &o.rpcport {
        Some(p) => p
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("Invalid port provided in -rpcport: {p}"))?,
        None => port_in_connect.unwrap_or(default_rpc_port(o.network)),
    };
    Ok((host, port))
}

fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let bad = || format!("Invalid -rpcconnect: {s}");
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        return Ok((h.to_owned(), port));
    }
    match s.matches(':').count() {
        0 => Ok((s.to_owned(), None)),
        1 => {
            let (h, p) = s.split_once(':').ok_or_else(bad)?;
            Ok((h.to_owned(), Some(p.parse::<u16>().map_err(|_| bad())?)))
        }
        // A bare IPv6 address.
        _ => Ok((s.to_owned(), None)),
    }
}

/// The URL of the call: `http://host:port/` or `http://host:port/wallet/<name>`.
pub fn url(host: &str, port: u16, wallet: Option<&str>) -> String {
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    match wallet {
        Some(w) => format!("http://{host}:{port}/wallet/{}", percent_encode(w)),
        None => format!("http://{host}:{port}/"),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The cookie file to read: `-rpccookiefile` (relative to the network's datadir) or
/// `<network datadir>/.cookie`.
pub fn cookie_file(o: &Options, base_datadir: &Path) -> PathBuf {
    let net_dir = rnet_rpc::network_datadir(base_datadir, o.network);
    match &o.rpccookiefile {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => net_dir.join(p),
        None => net_dir.join(rnet_rpc::COOKIE_FILE),
    }
}

/// How a result is printed: strings raw, `null` not at all, anything else as JSON indented by
/// two spaces.
pub fn format_result(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        parse_args(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    fn opts(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Cli::Run(o)) => *o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn bitcoin_and_gnu_styles() {
        for args in [
            &["-regtest", "-rpcport=1234", "-datadir=/d", "-named", "getblock", "x"][..],
            &["--regtest", "--rpcport=1234", "--datadir", "/d", "--named", "getblock", "x"][..],
            &["-chain=regtest", "-rpcport", "1234", "-datadir=/d", "-named=1", "getblock", "x"][..],
        ] {
            let o = opts(args);
            assert_eq!(o.network, Network::Regtest, "{args:?}");
            assert_eq!(o.rpcport.as_deref(), Some("1234"));
            assert_eq!(o.datadir.as_deref(), Some(Path::new("/d")));
            assert!(o.named);
            assert_eq!(o.command, ["getblock", "x"]);
        }
        let o = opts(&[
            "-testnet",
            "-rpcuser=u",
            "-rpcpassword=p",
            "-rpcwallet=w",
            "-rpcwait",
            "-rpcwaittimeout=5",
        ]);
        assert_eq!(o.network, Network::Testnet);
        assert_eq!((o.rpcuser.as_deref(), o.rpcpassword.as_deref()), (Some("u"), Some("p")));
        assert_eq!(o.rpcwallet.as_deref(), Some("w"));
        assert!(o.rpcwait);
        assert_eq!(o.rpcwaittimeout, 5);
        assert!(o.command.is_empty());
        assert!(!opts(&["-named", "-nonamed", "x"]).named);
        assert!(!opts(&["-named=0", "x"]).named);
        assert_eq!(opts(&["-chain=main", "x"]).network, Network::Mainnet);
        assert_eq!(opts(&["-regtest", "-chain=regtest", "x"]).network, Network::Regtest);
    }

    #[test]
    fn options_stop_at_the_command() {
        // After the method name everything is a parameter, dashes included.
        let o = opts(&["-regtest", "getblockhash", "-1", "-named"]);
        assert_eq!(o.command, ["getblockhash", "-1", "-named"]);
        assert!(!o.named);
        assert_eq!(opts(&["--", "-weird"]).command, ["-weird"]);
    }

    #[test]
    fn help_version_and_errors() {
        for h in ["-h", "-?", "-help", "--help"] {
            assert_eq!(parse(&[h]), Ok(Cli::Help));
        }
        assert_eq!(parse(&["--version"]), Ok(Cli::Version));
        assert_eq!(parse(&["-bogus", "x"]), Err("Invalid parameter -bogus".into()));
        assert!(parse(&["-regtest", "-testnet", "x"]).unwrap_err().contains("at most one"));
        assert!(parse(&["-chain=moon", "x"]).is_err());
        assert!(parse(&["-named=maybe", "x"]).is_err());
        assert!(parse(&["-rpcport"]).is_err());
        // A single-dash value option does not swallow a following option.
        assert!(parse(&["-rpcport", "-regtest"]).is_err());
        assert!(parse(&["-rpcwaittimeout=soon"]).is_err());
    }

    #[test]
    fn params_from_args() {
        let a = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            build_params(
                false,
                &a(&["5", "abc", "true", "[1,2]", "{\"k\":1}", "null", "\"12\"", "00ff"])
            )
            .unwrap(),
            json!([5, "abc", true, [1, 2], {"k": 1}, null, "12", "00ff"])
        );
        assert_eq!(
            build_params(true, &a(&["height=5", "hash=abc", "x=[1]", "eq=a=b"])).unwrap(),
            json!({"height": 5, "hash": "abc", "x": [1], "eq": "a=b"})
        );
        assert_eq!(build_params(true, &a(&["1", "b=2"])).unwrap(), json!({"args": [1], "b": 2}));
        assert!(build_params(true, &a(&["a=1", "a=2"])).is_err());
        assert_eq!(build_params(false, &[]).unwrap(), json!([]));
    }

    #[test]
    fn endpoints_and_urls() {
        let mut o = Options::default();
        assert_eq!(endpoint(&o).unwrap(), ("127.0.0.1".into(), 9554));
        o.network = Network::Testnet;
        assert_eq!(endpoint(&o).unwrap().1, 19554);
        o.network = Network::Regtest;
        assert_eq!(endpoint(&o).unwrap().1, 29554);
        o.rpcconnect = Some("10.0.0.1:7000".into());
        assert_eq!(endpoint(&o).unwrap(), ("10.0.0.1".into(), 7000));
        o.rpcport = Some("7001".into());
        assert_eq!(endpoint(&o).unwrap(), ("10.0.0.1".into(), 7001));
        o.rpcconnect = Some("[::1]:5".into());
        o.rpcport = None;
        assert_eq!(endpoint(&o).unwrap(), ("::1".into(), 5));
        o.rpcconnect = Some("::1".into());
        assert_eq!(endpoint(&o).unwrap(), ("::1".into(), 29554));
        o.rpcport = Some("70000".into());
        assert!(endpoint(&o).is_err());
        o.rpcport = None;
        o.rpcconnect = Some("host:port".into());
        assert!(endpoint(&o).is_err());

        assert_eq!(url("127.0.0.1", 1, None), "http://127.0.0.1:1/");
        assert_eq!(url("::1", 1, Some("my w/é")), "http://[::1]:1/wallet/my%20w%2F%C3%A9");
        assert_eq!(url("h", 2, Some("")), "http://h:2/wallet/");
    }

    #[test]
    fn cookie_locations() {
        let mut o = Options::default();
        let base = Path::new("/base");
        assert_eq!(cookie_file(&o, base), Path::new("/base/.cookie"));
        o.network = Network::Regtest;
        assert_eq!(cookie_file(&o, base), Path::new("/base/regtest/.cookie"));
        o.network = Network::Testnet;
        assert_eq!(cookie_file(&o, base), Path::new("/base/testnet/.cookie"));
        o.rpccookiefile = Some("alt".into());
        assert_eq!(cookie_file(&o, base), Path::new("/base/testnet/alt"));
        o.rpccookiefile = Some("/abs/c".into());
        assert_eq!(cookie_file(&o, base), Path::new("/abs/c"));
    }

    #[test]
    fn output_format() {
        assert_eq!(format_result(&json!("raw\ntext")), Some("raw\ntext".into()));
        assert_eq!(format_result(&Value::Null), None);
        assert_eq!(format_result(&json!(5)), Some("5".into()));
        assert_eq!(format_result(&json!({"a": [1]})), Some("{\n  \"a\": [\n    1\n  ]\n}".into()));
    }
}
