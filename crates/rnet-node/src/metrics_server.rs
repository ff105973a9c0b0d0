//! Prometheus metrics at `/metrics` (`-metrics[=ADDR]`, docs/node.md "Metrics"), through the
//! `metrics` facade and its Prometheus recorder. Counters and histograms are recorded where
//! things happen (RPC calls in `rnet-rpc`, Proof-of-Training evaluations, mined blocks);
//! gauges of state (chain, benchmark, peers, traffic, mempool) are read at each scrape, so a
//! scrape always agrees with the RPCs at that moment.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::node::Node;

/// The file (in the network directory) holding the bound metrics port.
pub const METRICS_PORT_FILE: &str = "metrics.port";

/// Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process-wide recorder (installed once; later calls return the same handle).
pub fn recorder() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0,
                ])
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// Sets the state gauges from the node (what `getblockchaininfo`, `getmininginfo`,
/// `getconnectioncount`, `getnettotals` and `getmempoolinfo` report now).
pub fn refresh(node: &Node) {
    let tip = node.chain().tip();
    metrics::gauge!("rnet_chain_height").set(f64::from(tip.height));
    metrics::gauge!("rnet_chain_loss_index").set(tip.loss_index as f64);
    metrics::gauge!("rnet_chain_tip_val_loss_micronats").set(tip.val_loss as f64);
    if let Some(b) = node.benchmark.latest() {
        metrics::gauge!("rnet_benchmark_loss_micronats").set(b.loss as f64);
        metrics::gauge!("rnet_benchmark_height").set(f64::from(b.height));
    }
    if let Some(net) = node.net.get() {
        let peers = net.peers().iter().filter(|p| p.handshaked).count();
        metrics::gauge!("rnet_peers").set(peers as f64);
        let totals = &net.totals;
        metrics::counter!("rnet_p2p_bytes_received_total")
            .absolute(totals.recv.load(std::sync::atomic::Ordering::Relaxed));
        metrics::counter!("rnet_p2p_bytes_sent_total")
            .absolute(totals.sent.load(std::sync::atomic::Ordering::Relaxed));
    }
    let pool = node.mempool().info();
    metrics::gauge!("rnet_mempool_transactions").set(pool.size as f64);
    metrics::gauge!("rnet_mempool_bytes").set(pool.bytes as f64);
    metrics::gauge!("rnet_mining").set(if node.mining.load(std::sync::atomic::Ordering::SeqCst) {
        1.0
    } else {
        0.0
    });
}

async fn scrape(State((node, handle)): State<(Arc<Node>, PrometheusHandle)>) -> impl IntoResponse {
    let node2 = node.clone();
    let _ = tokio::task::spawn_blocking(move || refresh(&node2)).await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], handle.render())
}

/// Binds `addr`, writes the port file and serves `/metrics` until the process ends.
pub async fn start(node: Arc<Node>, addr: SocketAddr) -> Result<SocketAddr, String> {
    let handle = recorder()?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("{addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    std::fs::write(node.netdir.join(METRICS_PORT_FILE), format!("{}\n", bound.port()))
        .map_err(|e| e.to_string())?;
    let app = Router::new().route("/metrics", get(scrape)).with_state((node, handle));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("metrics server stopped: {e}");
        }
    });
    tracing::info!("Prometheus metrics on http://{bound}/metrics");
    Ok(bound)
}
