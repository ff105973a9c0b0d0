//! `rnet-miner`: mines Proof-of-Training blocks against a running `rnetd` over JSON-RPC.
//!
//! Loop: `getblocktemplate` → the tip checkpoint (the miner's own last block's, or downloaded
//! with `getcheckpointinfo`, `getcheckpointchunk`) → train on `-data=FILE` (default: the bundled
//! training text) → upload the block's model update (`submitcheckpoint`, or
//! `uploadcheckpointpart` in 1 MiB parts above 1 MiB) → `submitblock`; `-blocks=N` stops after N
//! accepted blocks. With `-trainer-cmd=…` an external program trains instead (see
//! `rnet_miner::external_trainer` and docs/training.md, "External trainers"). With
//! `-device=cuda|vulkan|auto` the in-process training runs on that device (`Miner::with_device`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use rnet_consensus::ChainParams;
use rnet_miner::{
    Device, ExternalTrainer, MINER_KEY_FILE, MineControl, Miner, TrainingData, UpdateRank,
    job_from_template, load_or_create_key, loss_bits, loss_nats, recovery_policy_address,
};
use rnet_model::Checkpoint;
use rnet_primitives::Network;
use rnet_rpc::{Auth, RpcClient, default_datadir, network_datadir};
use serde_json::{Value, json};

const USAGE: &str = "Usage: rnet-miner [options]

Mines blocks against a running rnetd (JSON-RPC, cookie or user/password auth).

Options (Bitcoin style -opt=value or GNU style --opt=value):
  -regtest | -testnet | -chain=main|test|regtest
  -datadir=DIR        base data directory (default ~/.resonancenet); the cookie and miner.key
                      are read from its network subdirectory
  -rpcconnect=HOST    node address (default 127.0.0.1)
  -rpcport=N          node RPC port (default: the network's)
  -rpcuser=U -rpcpassword=P   credentials instead of the cookie
  -data=FILE          training data (default: the bundled training text)
  -miningaddress=ADDR pay the coinbase to ADDR (old name -address), which must be a
                      recovery-policy address (a wallet's getnewaddress): bare keys are refused
  -miningwallet=NAME  pay each block to a fresh address of the node's wallet NAME
                      (one of the two is required: mined coins must have a recovery path)
  -blocks=N           stop after N accepted blocks (default: run forever)
  -rank=auto|full|N   the block's model update: full = replace every changed tensor, N = train
                      rank-N adapters on the matrices (1..=the network's max_rank, 128), auto
                      (default) = full when a full replacement fits max_update_bytes, else 16
  -device=DEV         where in-process training runs: cpu (default, the CPU engine), cuda[:N],
                      vulkan[:N], metal or auto (CUDA, else Metal, else a hardware Vulkan GPU,
                      else cpu); a low-rank update computes each step's gradient on the device
                      and keeps its factors on the CPU; each candidate is still judged by the
                      canonical CPU evaluator before it is submitted. cuda, vulkan
                      and metal need the binary built with --features cuda / vulkan / metal; a
                      missing device is an error
  -lr=X               in-process training: AdamW learning rate (default 0.001)
  -batch=N            in-process training: windows per step (default 4)
  -trainer-cmd=CMD    train with an external program instead of in-process: each run the miner
                      writes the grown tip model to {input} (safetensors), runs `sh -c CMD` with
                      {input}, {output}, {data} and {steps} substituted, and imports {output}
                      strictly (docs/training.md, External trainers); needs full updates
  -trainer-steps=N    {steps}: the step budget of one run (default 500)
  -trainer-timeout=S  kill a run (its whole process group) after S seconds (default 3600)
  -trainer-runs=N     runs per block before asking the node for a new template (default 10)
  -noprogress         no progress bar
  -help               this text";

struct Args {
    network: Network,
    datadir: Option<PathBuf>,
    host: String,
    port: Option<u16>,
    user: Option<String>,
    password: Option<String>,
    data: Option<PathBuf>,
    address: Option<String>,
    wallet: Option<String>,
    blocks: Option<u64>,
    rank: UpdateRank,
    device: Device,
    progress: bool,
    trainer_cmd: Option<String>,
    trainer_steps: Option<u64>,
    trainer_timeout: Option<u64>,
    trainer_runs: Option<u32>,
    lr: Option<f32>,
    batch: Option<usize>,
}

fn parse_args() -> Result<Option<Args>> {
    let mut a = Args {
        network: Network::Mainnet,
        datadir: None,
        host: "127.0.0.1".into(),
        port: None,
        user: None,
        password: None,
        data: None,
        address: None,
        wallet: None,
        blocks: None,
        rank: UpdateRank::Auto,
        device: Device::Cpu,
        progress: true,
        trainer_cmd: None,
        trainer_steps: None,
        trainer_timeout: None,
        trainer_runs: None,
        lr: None,
        batch: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let Some(opt) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            bail!("unexpected argument {arg:?} (see -help)");
        };
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (opt.to_string(), None),
        };
        let flag = |v: &Option<String>| !matches!(v.as_deref(), Some("0" | "false"));
        let needs_value = matches!(
            name.as_str(),
            "chain"
                | "datadir"
                | "rpcconnect"
                | "rpcport"
                | "rpcuser"
                | "rpcpassword"
                | "data"
                | "address"
                | "miningaddress"
                | "miningwallet"
                | "blocks"
                | "rank"
                | "device"
                | "trainer-cmd"
                | "trainer-steps"
                | "trainer-timeout"
                | "trainer-runs"
        );
        let value = if needs_value && value.is_none() && arg.starts_with("--") {
            Some(it.next().ok_or_else(|| anyhow!("option -{name} needs a value"))?)
        } else {
            value
        };
        let val = || value.clone().ok_or_else(|| anyhow!("option -{name} needs a value"));
        match name.as_str() {
            "help" | "h" | "?" => return Ok(None),
            "regtest" if flag(&value) => a.network = Network::Regtest,
            "testnet" if flag(&value) => a.network = Network::Testnet,
            "regtest" | "testnet" => {}
            "chain" => {
                a.network = match val()?.as_str() {
                    "main" | "mainnet" => Network::Mainnet,
                    "test" | "testnet" => Network::Testnet,
                    "regtest" => Network::Regtest,
                    other => bail!("unknown chain {other:?}"),
                }
            }
            "datadir" => a.datadir = Some(val()?.into()),
            "rpcconnect" => a.host = val()?,
            "rpcport" => a.port = Some(val()?.parse().context("invalid -rpcport")?),
            "rpcuser" => a.user = Some(val()?),
            "rpcpassword" => a.password = Some(val()?),
            "data" => a.data = Some(val()?.into()),
            "address" | "miningaddress" => a.address = Some(val()?),
            "miningwallet" => a.wallet = Some(val()?),
            "blocks" => a.blocks = Some(val()?.parse().context("invalid -blocks")?),
            "rank" => a.rank = val()?.parse().context("invalid -rank")?,
            "device" => a.device = val()?.parse().context("invalid -device")?,
            "trainer-cmd" => a.trainer_cmd = Some(val()?),
            "trainer-steps" => {
                a.trainer_steps = Some(val()?.parse().context("invalid -trainer-steps")?)
            }
            "trainer-timeout" => {
                let secs: u64 = val()?.parse().context("invalid -trainer-timeout")?;
                if secs == 0 {
                    bail!("-trainer-timeout must be at least 1 second");
                }
                a.trainer_timeout = Some(secs);
            }
            "trainer-runs" => {
                a.trainer_runs = Some(val()?.parse().context("invalid -trainer-runs")?)
            }
            "lr" => a.lr = Some(val()?.parse().context("invalid -lr")?),
            "batch" => a.batch = Some(val()?.parse().context("invalid -batch")?),
            "noprogress" => a.progress = false,
            "progress" => a.progress = flag(&value),
            _ => bail!("unknown option -{name} (see -help)"),
        }
    }
    Ok(Some(a))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn download_checkpoint(client: &RpcClient, hash: &str) -> Result<Vec<u8>> {
    let info = client.call("getcheckpointinfo", json!([hash]))?;
    let chunks = info["chunks"].as_u64().ok_or_else(|| anyhow!("getcheckpointinfo: no chunks"))?;
    let size = info["size"].as_u64().ok_or_else(|| anyhow!("getcheckpointinfo: no size"))?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    for i in 0..chunks {
        let chunk: String = client.call_as("getcheckpointchunk", json!([hash, i]))?;
        bytes.extend(hex::decode(chunk).context("checkpoint chunk is not hex")?);
    }
    if bytes.len() as u64 != size {
        bail!("checkpoint of {} bytes, expected {size}", bytes.len());
    }
    Ok(bytes)
}

/// Uploads a mined block's model data (its update) under its chunk root: one
/// `submitcheckpoint` when it fits one chunk, else `uploadcheckpointpart` in consecutive 1 MiB
/// parts (an RPC body is capped well below `max_update_bytes`).
fn upload_checkpoint(client: &RpcClient, root: &str, bytes: &[u8]) -> Result<()> {
    let part = rnet_model::checkpoint::CHUNK_SIZE;
    if bytes.len() <= part {
        client.call("submitcheckpoint", json!([root, hex::encode(bytes)]))?;
        return Ok(());
    }
    let mut offset = 0usize;
    for chunk in bytes.chunks(part) {
        let r = client
            .call("uploadcheckpointpart", json!([root, bytes.len(), offset, hex::encode(chunk)]))?;
        offset += chunk.len();
        if r["received"].as_u64() != Some(offset as u64) {
            bail!("uploadcheckpointpart: unexpected reply {r}");
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let Some(args) = parse_args()? else {
        println!("{USAGE}");
        return Ok(());
    };
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let params = ChainParams::for_network(args.network);
    let base = match &args.datadir {
        Some(d) => d.clone(),
        None => default_datadir().ok_or_else(|| anyhow!("no home directory; pass -datadir"))?,
    };
    let netdir = network_datadir(&base, args.network);
    let auth = match (&args.user, &args.password) {
        (Some(u), Some(p)) => Auth::UserPass(u.clone(), p.clone()),
        _ => Auth::Cookie(netdir.join(rnet_rpc::COOKIE_FILE)),
    };
    let port = args.port.unwrap_or(params.rpc_port);
    let client = RpcClient::new(&format!("http://{}:{port}", args.host), auth)?;
    let key = load_or_create_key(&netdir.join(MINER_KEY_FILE))?;
    let payout = match (&args.address, &args.wallet) {
        (Some(a), None) => recovery_policy_address(a, args.network)?.script_pubkey(),
        (None, Some(w)) => {
            let auth = match (&args.user, &args.password) {
                (Some(u), Some(p)) => Auth::UserPass(u.clone(), p.clone()),
                _ => Auth::Cookie(netdir.join(rnet_rpc::COOKIE_FILE)),
            };
            let url = format!("http://{}:{port}/wallet/{w}", args.host);
            let address = RpcClient::new(&url, auth)?
                .call("getnewaddress", json!([]))
                .with_context(|| format!("-miningwallet={w}: getnewaddress"))?;
            let address = address.as_str().ok_or_else(|| anyhow!("getnewaddress: not a string"))?;
            let parsed = recovery_policy_address(address, args.network)?;
            tracing::info!("mining to {parsed} of wallet {w}");
            parsed.script_pubkey()
        }
        (Some(_), Some(_)) => bail!("give -miningaddress or -miningwallet, not both"),
        (None, None) => bail!(
            "a payout is required: -miningwallet=NAME (a wallet of the node) or \
             -miningaddress=ADDR (a recovery-policy address); mining to a bare key is refused \
             because those coins could never be recovered"
        ),
    };
    let data = match &args.data {
        Some(p) => TrainingData::Bytes(Arc::new(
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )),
        None => TrainingData::Bundled,
    };
    // Each block this miner gets accepted continues its optimizer on the next one.
    let mut miner = Miner::new(params, key, data)
        .with_rank(args.rank)
        .context("invalid -rank")?
        .with_warm_start(Arc::new(rnet_miner::WarmStart::new()));
    if args.lr.is_some() || args.batch.is_some() {
        let lr = args.lr.unwrap_or(miner.train.lr);
        let batch = args.batch.unwrap_or(miner.train.batch_windows);
        miner = miner.with_training(lr, batch).context("-lr/-batch")?;
    }
    if args.device != Device::Cpu {
        if args.trainer_cmd.is_some() {
            bail!("-device trains in-process; it cannot be combined with -trainer-cmd");
        }
        miner = miner.with_device(args.device)?;
        tracing::info!("training on device {} (-device={})", miner.device, args.device);
    }
    match &args.trainer_cmd {
        Some(command) => {
            if matches!(args.rank, UpdateRank::LowRank(_)) {
                bail!(
                    "-trainer-cmd needs full updates (-rank=auto or full): a trainer writes full weights"
                );
            }
            let mut trainer = ExternalTrainer::new(command.clone(), netdir.join("trainer"));
            trainer.steps = args.trainer_steps.unwrap_or(trainer.steps);
            trainer.timeout = args.trainer_timeout.map_or(trainer.timeout, Duration::from_secs);
            trainer.runs = args.trainer_runs.unwrap_or(trainer.runs).max(1);
            // The command runs in the work directory: hand it an absolute data path.
            trainer.data = match &args.data {
                Some(p) => Some(
                    std::fs::canonicalize(p)
                        .with_context(|| format!("resolving {}", p.display()))?,
                ),
                None => None,
            };
            tracing::info!(
                "external trainer: `{command}` in {} ({} steps, timeout {} s, {} runs per block)",
                trainer.work_dir.display(),
                trainer.steps,
                trainer.timeout.as_secs(),
                trainer.runs
            );
            miner = miner.with_external_trainer(trainer);
        }
        None => {
            if args.trainer_steps.is_some()
                || args.trainer_timeout.is_some()
                || args.trainer_runs.is_some()
            {
                bail!("-trainer-steps, -trainer-timeout and -trainer-runs need -trainer-cmd");
            }
        }
    }
    let mut cached: Option<(String, Arc<Checkpoint>)> = None;
    let mut mined = 0u64;
    let mut node_syncing = false;
    while args.blocks.is_none_or(|n| mined < n) {
        let t = match client.call("getblocktemplate", json!([])) {
            Ok(t) => t,
            // The node is downloading a better chain: a block on its tip would be orphaned.
            Err(e) if e.rpc_code() == Some(rnet_rpc::codes::RPC_CLIENT_IN_INITIAL_DOWNLOAD) => {
                if !node_syncing {
                    tracing::info!("the node is downloading blocks; waiting for its new tip");
                    node_syncing = true;
                }
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        node_syncing = false;
        // The coinbase carries the miner's network magic: a block for another network's node
        // would be rejected after all the training.
        let chain = t["chain"].as_str().unwrap_or_default();
        if chain != args.network.name() {
            bail!("the node is on {chain:?}, the miner on {}", args.network);
        }
        let parent = t["previousblockhash"].as_str().unwrap_or_default().to_string();
        let ckpt = match &cached {
            Some((h, c)) if *h == parent => c.clone(),
            _ => {
                let bytes = download_checkpoint(&client, &parent)?;
                let c = Arc::new(Checkpoint::from_bytes(&bytes).context("tip checkpoint")?);
                cached = Some((parent.clone(), c.clone()));
                c
            }
        };
        let mut job = job_from_template(&t, ckpt, payout.clone())?;
        job.time = job.time.max(now());
        let control =
            MineControl { progress: args.progress, cancel: &|| false, transactions: None };
        let block = match miner.mine(&job, &control) {
            Ok(block) => block,
            // A trainer that failed (or a job that could not be mined) is not a reason to stop:
            // ask for a fresh template and go on.
            Err(e) if miner.external.is_some() && e.is_retryable() => {
                tracing::warn!("block {} not mined: {e}; trying again", job.height);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Err(e) => return Err(e).context("mining"),
        };
        for failure in &block.trainer_failures {
            tracing::warn!("trainer run {} failed: {}", failure.run + 1, failure.error);
        }
        let hash = block.block.block_hash().to_hex();
        let root = block.block.header.update_root.to_hex();
        upload_checkpoint(&client, &root, &block.update_bytes)?;
        let result = client.call("submitblock", json!([hex::encode(block.block.to_bytes())]))?;
        let h = &block.block.header;
        match result {
            Value::Null => {
                mined += 1;
                // The next block builds on this one: its checkpoint is the one just derived, so
                // there is nothing to download.
                if let Ok(c) = Checkpoint::from_bytes(&block.checkpoint_bytes) {
                    cached = Some((hash.clone(), Arc::new(c)));
                }
                tracing::info!(
                    "mined block height={} hash={hash} val_loss={} ({:.6} nats/byte, {:.6} bits/byte) shape=d{}xL{} reward={} RNT steps={} time={:.2}s",
                    h.height,
                    h.val_loss,
                    loss_nats(h.val_loss),
                    loss_bits(h.val_loss),
                    h.shape.d_model,
                    h.shape.n_layers,
                    block.subsidy,
                    block.steps,
                    block.elapsed.as_secs_f64()
                );
            }
            other => {
                tracing::warn!("block {hash} at height {} not accepted: {other}", h.height);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    Ok(())
}
