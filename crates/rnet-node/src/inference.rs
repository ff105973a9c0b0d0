//! `-inference[=ADDR]`: serve the chain's tip model over the OpenAI-compatible API of
//! `rnet-inference`, and reload it whenever the active tip changes.
//!
//! The server never runs on the node's runtime: it has its own OS thread with its own small
//! tokio runtime ([`IO_WORKERS`] workers, for HTTP), and prefill/decoding run on the server's own
//! rayon pool of half the cores (see [`server_config`]), so inference load cannot starve P2P,
//! RPC or the miner's training pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rnet_inference::server::{ServerConfig, ServerState, serve_listener};
use rnet_model::Checkpoint;
use rnet_primitives::BlockHash;

use crate::node::Node;

/// File in the network data directory holding the inference server's bound port while it runs.
pub const INFERENCE_PORT_FILE: &str = "inference.port";

/// How often the server checks whether the tip moved.
const TIP_POLL: Duration = Duration::from_millis(500);

/// Worker threads of the inference server's own async runtime (connections and parsing only).
pub const IO_WORKERS: usize = 2;

/// How long the inference runtime may take to wind down its blocking tasks after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The server's limits in the node: the library defaults (body, requests, connections,
/// timeouts), with compute on `threads` threads (`-inferencethreads`; default half the cores, at
/// least one, leaving the rest to the miner) and as many concurrent generations; one generation's
/// decode step may use all of them.
pub fn server_config(threads: Option<usize>) -> ServerConfig {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let compute = threads.unwrap_or(cores / 2).clamp(1, cores);
    ServerConfig {
        compute_threads: compute,
        max_sessions: compute,
        decode_threads: Some(compute),
        ..ServerConfig::default()
    }
}

/// Runs the future `make()` builds on a new OS thread named `name` with its own multi-thread
/// runtime of `workers` workers, and waits (asynchronously) for its result. Work on that runtime
/// (including its `spawn_blocking` tasks) never occupies the caller's runtime.
pub async fn on_own_runtime<F, Fut, T>(name: &str, workers: usize, make: F) -> Result<T, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, String>>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread_name = name.to_string();
    std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.max(1))
                .thread_name(format!("{thread_name}-io"))
                .enable_all()
                .build()
                .map_err(|e| format!("{thread_name} runtime: {e}"))
                .and_then(|rt| {
                    let result = rt.block_on(make());
                    rt.shutdown_timeout(SHUTDOWN_GRACE);
                    result
                });
            let _ = tx.send(result);
        })
        .map_err(|e| format!("{name} thread: {e}"))?;
    rx.await.map_err(|_| format!("the {name} thread ended without a result"))?
}

/// The tip's hash and its checkpoint, parsed (`None` when the checkpoint is not stored).
fn tip_checkpoint(node: &Node) -> Result<(BlockHash, Option<Checkpoint>), String> {
    let hash = node.chain().tip().hash;
    let bytes = node.checkpoint_bytes(&hash).map_err(|e| e.to_string())?;
    let checkpoint = match bytes {
        Some(bytes) => Some(Checkpoint::from_bytes(&bytes).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((hash, checkpoint))
}

/// Binds `addr`, serves the tip model until `node` shuts down, and follows the tip, all on the
/// server's own thread and runtime ([`on_own_runtime`]).
pub async fn run(
    addr: SocketAddr,
    node: Arc<Node>,
    netdir: std::path::PathBuf,
    threads: Option<usize>,
) -> Result<(), String> {
    on_own_runtime("rnet-inference", IO_WORKERS, move || serve_tip(addr, node, netdir, threads))
        .await
}

async fn serve_tip(
    addr: SocketAddr,
    node: Arc<Node>,
    netdir: std::path::PathBuf,
    threads: Option<usize>,
) -> Result<(), String> {
    let loader = node.clone();
    let (mut served, checkpoint) = tokio::task::spawn_blocking(move || tip_checkpoint(&loader))
        .await
        .map_err(|e| e.to_string())??;
    let checkpoint = checkpoint.ok_or("the tip's checkpoint is not stored; cannot serve it")?;
    let state = {
        let checkpoint = checkpoint.clone();
        tokio::task::spawn_blocking(move || ServerState::new(server_config(threads), &checkpoint))
            .await
            .map_err(|e| e.to_string())?
    };
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("inference {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    std::fs::write(netdir.join(INFERENCE_PORT_FILE), format!("{}\n", bound.port()))
        .map_err(|e| e.to_string())?;
    tracing::info!(
        "inference server on http://{bound}/v1 serving height {} (d={}, L={})",
        checkpoint.height,
        checkpoint.model.config().d_model,
        checkpoint.model.config().n_layers
    );

    let stop_node = node.clone();
    let shutdown = async move {
        while !stop_node.shutting_down() {
            tokio::time::sleep(TIP_POLL).await;
        }
    };
    let server = tokio::spawn(serve_listener(listener, state.clone(), shutdown));

    // Follow the tip: reload the served model when the active tip changes.
    while !node.shutting_down() {
        tokio::time::sleep(TIP_POLL).await;
        if node.chain().tip().hash == served {
            continue;
        }
        let (loader, state) = (node.clone(), state.clone());
        let reloaded = tokio::task::spawn_blocking(move || {
            let (hash, checkpoint) = tip_checkpoint(&loader)?;
            if let Some(checkpoint) = &checkpoint {
                state.reload(checkpoint);
            }
            Ok::<_, String>((hash, checkpoint.map(|c| c.height)))
        })
        .await
        .map_err(|e| e.to_string())?;
        match reloaded {
            Ok((hash, Some(height))) => {
                served = hash;
                tracing::info!("inference server reloaded the tip model (height {height})");
            }
            Ok((hash, None)) => {
                served = hash;
                tracing::warn!("tip {hash} has no stored checkpoint; still serving the old model");
            }
            Err(e) => tracing::warn!("inference reload failed: {e}"),
        }
    }
    let _ = std::fs::remove_file(netdir.join(INFERENCE_PORT_FILE));
    server.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_config_leaves_cores_to_the_miner() {
        let c = server_config(None);
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        assert!(c.compute_threads >= 1 && c.compute_threads <= cores.div_ceil(2));
        assert_eq!(c.max_sessions, c.compute_threads);
        assert_eq!(c.decode_threads, Some(c.compute_threads));
        assert_eq!(c.max_body_bytes, ServerConfig::default().max_body_bytes);
        // -inferencethreads=N: N threads, within 1..=cores.
        assert_eq!(server_config(Some(1)).compute_threads, 1);
        assert_eq!(server_config(Some(cores)).decode_threads, Some(cores));
        assert_eq!(server_config(Some(cores + 7)).compute_threads, cores);
        assert_eq!(server_config(Some(0)).compute_threads, 1);
    }

    /// A caller runtime whose only worker is blocked (as a starved node runtime would be) does
    /// not stop work on the dedicated runtime, which runs on other threads.
    #[test]
    fn work_on_its_own_runtime_progresses_while_the_caller_is_blocked() {
        let caller = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let caller_thread = std::thread::current().id();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let result = caller.block_on(async move {
            let task = tokio::spawn(on_own_runtime("rnet-test-own", 1, move || async move {
                let name = std::thread::current().name().map(str::to_string);
                // Progress that needs this runtime's timer and blocking pool.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let blocking =
                    tokio::task::spawn_blocking(|| 7).await.map_err(|e| e.to_string())?;
                let _ = started_tx.send(());
                Ok((name, std::thread::current().id(), blocking))
            }));
            // Let the task start the dedicated runtime, then block the caller's only worker
            // until that runtime has done its work.
            tokio::task::yield_now().await;
            started_rx.recv_timeout(Duration::from_secs(10)).map_err(|e| e.to_string())?;
            task.await.map_err(|e| e.to_string())?
        });
        let (name, thread, blocking) = result.unwrap();
        assert_ne!(thread, caller_thread);
        assert!(name.is_some_and(|n| n.starts_with("rnet-test-own")));
        assert_eq!(blocking, 7);
    }
}
