//! `rnet-cli`: the ResonanceNet RPC command-line client, in the style of `bitcoin-cli`.
//!
//! `rnet-cli -regtest getblockchaininfo`, `rnet-cli -named getblock blockhash=… verbosity=2`.
//! See `rnet-cli -help` and `docs/rpc.md`.

mod args;

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rnet_rpc::{Auth, ClientError, RpcClient, codes};

use args::{Cli, Options};

fn main() -> ExitCode {
    let argv: Result<Vec<String>, _> =
        std::env::args_os().skip(1).map(|a| a.into_string()).collect();
    let argv = match argv {
        Ok(a) => a,
        Err(bad) => {
            eprintln!("error: argument is not valid UTF-8: {}", bad.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    match run(argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(argv: Vec<String>) -> Result<ExitCode> {
    let mut o = match args::parse_args(&argv) {
        Ok(Cli::Help) => {
            print!("{}", args::USAGE);
            return Ok(ExitCode::SUCCESS);
        }
        Ok(Cli::Version) => {
            println!("rnet-cli version v{}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Ok(Cli::Run(o)) => *o,
        Err(e) => bail!("Error parsing command line arguments: {e}"),
    };
    read_stdin_args(&mut o)?;
    let Some((method, params)) = o.command.split_first() else {
        bail!("too few parameters (need at least command)");
    };
    let params = args::build_params(o.named, params).map_err(|e| anyhow!(e))?;

    let auth = resolve_auth(&o)?;
    let (host, port) = args::endpoint(&o).map_err(|e| anyhow!(e))?;
    let url = args::url(&host, port, o.rpcwallet.as_deref());
    let timeout = match o.rpcclienttimeout {
        0 => Duration::from_secs(365 * 24 * 3600),
        s => Duration::from_secs(s),
    };
    let client = RpcClient::new(&url, auth).context("bad server address")?.with_timeout(timeout);

    let started = Instant::now();
    let result = loop {
        match client.call(method, params.clone()) {
            Err(e) if o.rpcwait && should_wait(&e) => {
                if o.rpcwaittimeout > 0
                    && started.elapsed() >= Duration::from_secs(o.rpcwaittimeout)
                {
                    bail!("timeout on transient error: {}", describe(&e, &host, port));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            other => break other,
        }
    };
    match result {
        Ok(v) => {
            if let Some(text) = args::format_result(&v) {
                let mut out = io::stdout().lock();
                // A closed pipe (`rnet-cli … | head`) is not an error worth reporting.
                let _ = writeln!(out, "{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Rpc { code, message }) => {
            let mut text = format!("error code: {code}\nerror message:\n{message}");
            if code == codes::RPC_WALLET_NOT_SPECIFIED {
                text.push_str(" Or for the CLI, specify the \"-rpcwallet=<walletname>\" option before the command");
            }
            eprintln!("{text}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => bail!("{}", describe(&e, &host, port)),
    }
}

/// `-rpcwait` retries while the server is not up yet or still warming up.
fn should_wait(e: &ClientError) -> bool {
    e.is_connect()
        || matches!(e, ClientError::Cookie { .. })
        || e.rpc_code() == Some(codes::RPC_IN_WARMUP)
}

fn describe(e: &ClientError, host: &str, port: u16) -> String {
    match e {
        ClientError::Connect { source, .. } => format!(
            "Could not connect to the server {host}:{port} ({source})\n\n\
             Make sure the rnetd server is running and that you are connecting to the correct RPC port."
        ),
        ClientError::Unauthorized => {
            "Authorization failed: Incorrect rpcuser or rpcpassword".into()
        }
        ClientError::Cookie { path, source } => format!(
            "Could not locate RPC credentials. No authentication cookie could be read from {} ({source}), \
             and no -rpcpassword is set. Is the server running on this network and data directory?",
            path.display()
        ),
        other => other.to_string(),
    }
}

/// `-stdinrpcpass` takes the first line of standard input; `-stdin` the remaining lines as
/// extra arguments.
fn read_stdin_args(o: &mut Options) -> Result<()> {
    if !o.stdin && !o.stdinrpcpass {
        return Ok(());
    }
    let stdin = io::stdin();
    let mut lines = stdin.lock().lines();
    if o.stdinrpcpass {
        let pass = lines.next().transpose().context("reading the password from stdin")?;
        o.rpcpassword = Some(pass.unwrap_or_default());
    }
    if o.stdin {
        for line in lines {
            o.command.push(line.context("reading arguments from stdin")?);
        }
    }
    Ok(())
}

fn resolve_auth(o: &Options) -> Result<Auth> {
    if let Some(pass) = &o.rpcpassword {
        return Ok(Auth::UserPass(o.rpcuser.clone().unwrap_or_default(), pass.clone()));
    }
    let base: PathBuf = match &o.datadir {
        Some(d) => {
            if !d.is_dir() {
                bail!("Specified data directory \"{}\" does not exist.", d.display());
            }
            d.clone()
        }
        None => match rnet_rpc::default_datadir() {
            Some(d) => d,
            None => bail!(
                "no home directory to find the cookie in; use -datadir, -rpccookiefile or -rpcpassword"
            ),
        },
    };
    Ok(Auth::Cookie(args::cookie_file(o, &base)))
}
