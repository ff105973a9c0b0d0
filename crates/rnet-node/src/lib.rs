//! ResonanceNet full node (layer 6): `rnetd`'s configuration, data-directory lock, logging,
//! shared node state (chainstate behind a mutex, miner key, in-node miner) and JSON-RPC methods.
//!
//! [`run`] is the whole node lifecycle: lock the data directory, open the chainstate and activate
//! the best chain, register the RPC methods and serve them, start the miner thread with `-mine`,
//! and shut down cleanly on SIGINT/SIGTERM or the `stop` RPC. See `docs/node.md`.

pub mod benchmark;
pub mod catch_up;
pub mod chain_open;
pub mod config;
pub mod dashboard;
pub mod disk;
pub mod events;
pub mod inference;
pub mod lightning;
pub mod lock;
pub mod logging;
pub mod metrics_server;
pub mod mining_payout;
pub mod node;
pub mod notify;
pub mod p2p;
pub mod permits;
pub mod pot_workers;
pub mod rpc;
pub mod sync;
pub mod tx_accept;
pub mod upload;
pub mod wallets;

use std::sync::Arc;
use std::time::Duration;

use rnet_consensus::ChainParams;
use rnet_miner::{MINER_KEY_FILE, TrainingData, load_or_create_key};
use rnet_rpc::{Registry, RpcConfig, RpcServer};
use thiserror::Error;

pub use config::{Command, Config, ConfigError};
pub use lock::{DataDirLock, LockError};
pub use node::{Node, NodeError};

/// File in the network data directory holding the bound RPC port while the node runs.
pub const RPC_PORT_FILE: &str = "rpc.port";

/// Why the node could not run.
#[derive(Debug, Error)]
pub enum RunError {
    /// The data directory is locked or unusable.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Logging could not be set up.
    #[error(transparent)]
    Log(#[from] logging::LogError),
    /// The miner key could not be loaded.
    #[error(transparent)]
    Key(#[from] rnet_miner::KeyError),
    /// The node could not open its state.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A bad `-mineaddress` or `-minedata`.
    #[error("{0}")]
    Config(String),
    /// The RPC server failed.
    #[error("RPC server: {0}")]
    Rpc(String),
    /// Runtime or file-system failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Too little free disk space (at startup, or while running: the node stopped cleanly).
    #[error(transparent)]
    DiskSpace(#[from] disk::DiskSpaceLow),
    /// The node stopped on its own after a fatal condition (logged), after a clean shutdown.
    #[error("{0}")]
    Fatal(String),
}

/// Runs the node until it is stopped (SIGINT, SIGTERM, or the `stop` RPC).
pub fn run(config: &Config) -> Result<(), RunError> {
    let netdir = config.network_dir();
    let _lock = DataDirLock::acquire(&netdir)?;
    logging::init(&netdir, &config.log_filter, config.print_to_console)?;
    tracing::info!("ResonanceNet node {} starting", env!("CARGO_PKG_VERSION"));
    tracing::info!("network {}, data directory {}", config.network, netdir.display());
    disk::DiskGuard::new(&netdir, config.min_disk_space).check().inspect_err(|e| {
        tracing::error!("{e}");
    })?;
    let mut params = ChainParams::for_network(config.network);
    if let Some(required) = config.regtest_required_improvement {
        params.initial_required_improvement = required;
        params.validate().map_err(|e| RunError::Config(format!("-requiredimprovement: {e}")))?;
        tracing::info!("regtest base required improvement {required} µnat (-requiredimprovement)");
    }
    let key = load_or_create_key(&netdir.join(MINER_KEY_FILE))?;
    let mine_data = match &config.mine_data {
        Some(p) => TrainingData::Bytes(Arc::new(
            std::fs::read(p)
                .map_err(|e| RunError::Config(format!("-minedata {}: {e}", p.display())))?,
        )),
        None => TrainingData::Bundled,
    };
    let chain_options = rnet_chain::ChainOptions {
        txindex: config.txindex,
        assume_valid: config.assume_valid.unwrap_or(params.default_assume_valid),
        snapshot_sync: config.snapshot_sync,
        prune_checkpoints_depth: config.model_depth(),
        ..Default::default()
    };
    if let Some(hash) = chain_options.assume_valid {
        if chain_options.snapshot_sync {
            tracing::info!(%hash, "assumevalid with snapshot sync: the ancestors of this block connect without their models; its whole model is fetched from peers");
        } else {
            tracing::info!(%hash, "assumevalid: ancestors of this block skip the Proof-of-Training evaluations");
        }
    }
    let node = Arc::new(Node::open(params, &netdir, key, mine_data, chain_options)?);
    node.disk.set_min(config.min_disk_space);
    {
        let chain = node.chain();
        let tip = chain.tip();
        tracing::info!(
            "chain tip height={} hash={} val_loss={} shape=(d={}, L={})",
            tip.height,
            tip.hash,
            tip.val_loss,
            tip.d_model,
            tip.n_layers
        );
    }
    for name in &config.wallets {
        rpc::load_wallet(&node, name)
            .map_err(|e| RunError::Config(format!("-wallet={name}: {}", e.message)))?;
        tracing::info!("loaded wallet {name}");
    }
    // Wallet transactions become events; -blocknotify / -walletnotify run on them.
    notify::start(
        node.clone(),
        notify::NotifyCommands {
            block: config.block_notify.clone(),
            wallet: config.wallet_notify.clone(),
        },
    )?;
    if config.mine_lr.is_some() || config.mine_batch.is_some() {
        let defaults = rnet_miner::Miner::new(
            node.params.clone(),
            node.miner_key.clone(),
            rnet_miner::TrainingData::Bundled,
        );
        let lr = config.mine_lr.unwrap_or(defaults.train.lr);
        let batch = config.mine_batch.unwrap_or(defaults.train.batch_windows);
        defaults
            .with_training(lr, batch)
            .map_err(|e| RunError::Config(format!("-minelr/-minebatch: {e}")))?;
        tracing::info!("in-node miner: learning rate {lr}, {batch} windows per step");
        node.set_mine_training(lr, batch);
    }
    if config.mine_device != rnet_miner::Device::Cpu {
        let device =
            config.mine_device.resolve().map_err(|e| RunError::Config(format!("-device: {e}")))?;
        tracing::info!("mining trains on device {device} (-device={})", config.mine_device);
        node.set_mine_device(device);
    }
    // Recovery is mandatory for mined coins too: a policy address or a wallet's.
    let payout = if config.mine {
        mining_payout::mining_payout(&node, config).map_err(|e| RunError::Config(e.to_string()))?
    } else {
        Vec::new()
    };
    let mut registry = Registry::new();
    rpc::register_all(&mut registry, &node).map_err(|e| RunError::Rpc(e.to_string()))?;
    let registry = Arc::new(registry);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(serve(config, node.clone(), registry, payout));
    node.request_shutdown();
    runtime.shutdown_timeout(Duration::from_secs(10));
    let _ = std::fs::remove_file(netdir.join(RPC_PORT_FILE));
    let _ = std::fs::remove_file(netdir.join(p2p::P2P_PORT_FILE));
    tracing::info!("shutdown complete");
    result?;
    match node.fatal_reason() {
        Some(reason) => Err(RunError::Fatal(reason)),
        None => Ok(()),
    }
}

async fn serve(
    config: &Config,
    node: Arc<Node>,
    registry: Arc<Registry>,
    payout: Vec<u8>,
) -> Result<(), RunError> {
    let netdir = config.network_dir();
    let mut rpc_config =
        RpcConfig::new(std::net::SocketAddr::new(config.rpc_bind, config.rpc_port), &netdir);
    rpc_config.user_pass = config.rpc_user_pass.clone();
    rpc_config.max_connections = config.rpc_max_connections;
    rpc_config.timeout = Duration::from_secs(config.rpc_server_timeout_secs);
    let server = RpcServer::bind(rpc_config, registry.clone())
        .await
        .map_err(|e| RunError::Rpc(e.to_string()))?;
    let addr = server.local_addr();
    std::fs::write(netdir.join(RPC_PORT_FILE), format!("{}\n", addr.port()))?;
    tracing::info!("RPC server listening on {addr}");
    let (_, p2p_runtime) = p2p::start(config, &node)
        .await
        .map_err(|e| RunError::Config(format!("P2P network: {e}")))?;
    if let Some(addr) = config.lightning {
        let service = lightning::service::LightningService::start(
            node.clone(),
            addr,
            config.ln_wallet.clone(),
            lightning::service::TowerOptions {
                serve: config.watchtower,
                client_of: config.ln_tower,
                hold_htlcs: config.ln_dev_hold_htlcs,
            },
        )
        .await
        .map_err(|e| RunError::Config(format!("Lightning: {e}")))?;
        let _ = node.lightning.set(service);
    }

    if let Some(addr) = config.metrics {
        metrics_server::start(node.clone(), addr)
            .await
            .map_err(|e| RunError::Config(format!("-metrics: {e}")))?;
    }

    // Fatal conditions (disk space too low) trigger the same shutdown as the `stop` RPC.
    let stop = registry.shutdown();
    node.set_stop_hook(move || stop.trigger());
    // Signals trigger the same shutdown as the `stop` RPC.
    let shutdown = registry.shutdown();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received, shutting down");
        shutdown.trigger();
    });
    let stop_node = node.clone();
    let stopped = registry.stopped();
    let running = server.spawn(async move {
        stopped.await;
        stop_node.request_shutdown();
    });

    let benchmark = if config.benchmark_loss {
        let node = node.clone();
        let interval = Duration::from_secs(config.benchmark_interval_secs);
        Some(
            std::thread::Builder::new()
                .name("benchmark".into())
                .spawn(move || benchmark::run(&node, interval))?,
        )
    } else {
        tracing::info!("-benchmarkloss=0: tip models are not evaluated on the benchmark slice");
        None
    };
    let watchdog = {
        let node = node.clone();
        let warn_after = Duration::from_secs(config.sync_stall_warn_secs);
        std::thread::Builder::new()
            .name("sync-watchdog".into())
            .spawn(move || sync::watch(&node, warn_after))?
    };
    let miner = if config.mine {
        let node = node.clone();
        Some(
            std::thread::Builder::new()
                .name("miner".into())
                .spawn(move || node.mining_loop(payout))?,
        )
    } else {
        None
    };
    let dashboard = config.dashboard.map(|addr| {
        let (node, registry, netdir) = (node.clone(), registry.clone(), config.network_dir());
        let options = dashboard::Options {
            addr,
            inference: config.inference,
            benchmark_loss: config.benchmark_loss,
        };
        tokio::spawn(async move {
            if let Err(e) = dashboard::run(options, node, registry.clone(), netdir).await {
                tracing::error!("dashboard: {e}; shutting down");
                registry.shutdown().trigger();
            }
        })
    });
    let inference_threads = config.inference_threads;
    let inference = config.inference.map(|addr| {
        let node = node.clone();
        let registry = registry.clone();
        tokio::spawn(async move {
            if let Err(e) = inference::run(addr, node, netdir, inference_threads).await {
                tracing::error!("inference server: {e}; shutting down");
                registry.shutdown().trigger();
            }
        })
    });
    let result = running.join().await.map_err(|e| RunError::Rpc(e.to_string()));
    node.request_shutdown();
    if let Some(task) = inference {
        let _ = task.await;
    }
    if let Some(task) = dashboard {
        let _ = task.await;
    }
    if let Some(m) = miner {
        let _ = tokio::task::spawn_blocking(move || m.join()).await;
    }
    if let Some(benchmark) = benchmark {
        let _ = tokio::task::spawn_blocking(move || benchmark.join()).await;
    }
    let _ = tokio::task::spawn_blocking(move || watchdog.join()).await;
    let _ = tokio::task::spawn_blocking(move || p2p_runtime.shutdown(Duration::from_secs(5))).await;
    result
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
