//! `-inference[=ADDR]`: serve the chain's tip model over the OpenAI-compatible API of
//! `rnet-inference`, and reload it whenever the active tip changes.

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

/// Binds `addr`, serves the tip model until `node` shuts down, and follows the tip.
pub async fn run(
    addr: SocketAddr,
    node: Arc<Node>,
    netdir: std::path::PathBuf,
) -> Result<(), String> {
    let loader = node.clone();
    let (mut served, checkpoint) = tokio::task::spawn_blocking(move || tip_checkpoint(&loader))
        .await
        .map_err(|e| e.to_string())??;
    let checkpoint = checkpoint.ok_or("the tip's checkpoint is not stored; cannot serve it")?;
    let state = {
        let checkpoint = checkpoint.clone();
        tokio::task::spawn_blocking(move || ServerState::new(ServerConfig::default(), &checkpoint))
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
