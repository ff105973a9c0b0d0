//! `/loss` (`?n=BLOCKS`, default [`DEFAULT_BLOCKS`]): the chain's loss index, each block's loss
//! on its own evaluation sample, and the benchmark loss (the model on held-out text) against
//! height, one point per block of the active chain, as a server-side SVG plot.

use axum::extract::{RawQuery, State};
use axum::response::Html;
use rnet_primitives::BlockHash;

use super::history::BenchmarkHistory;
use super::html::{self, Nav};
use super::source::Source;
use super::svg::{LinePlot, Series};
use super::{PageError, PageResult};
use crate::node::Node;

/// Blocks plotted by default.
pub const DEFAULT_BLOCKS: u32 = 1000;

/// Most blocks one plot shows.
pub const MAX_BLOCKS: u32 = 10_000;

/// One block's losses (micro-nats per byte).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LossPoint {
    /// Height.
    pub height: u32,
    /// Block id.
    pub hash: BlockHash,
    /// The chain's loss index after the block.
    pub loss_index: u64,
    /// The block's loss on its own sample.
    pub val_loss: u64,
    /// The block's model on the benchmark slice, if known.
    pub benchmark: Option<u64>,
}

/// The losses of the last `n` active blocks, oldest first.
pub fn points(
    node: &Node,
    history: &BenchmarkHistory,
    n: u32,
) -> Result<Vec<LossPoint>, PageError> {
    let internal = |e: rnet_chain::ChainError| PageError::Internal(e.to_string());
    let tip = node.reader.tip().map_err(internal)?.height;
    let mut out = Vec::new();
    for height in tip.saturating_sub(n.max(1) - 1)..=tip {
        let Some(hash) = node.reader.block_hash_at(height).map_err(internal)? else { continue };
        let Some(summary) = node.reader.header_summary(&hash).map_err(internal)? else { continue };
        out.push(LossPoint {
            height,
            hash,
            loss_index: summary.loss_index,
            val_loss: summary.val_loss,
            benchmark: history.get(&hash),
        });
    }
    Ok(out)
}

/// The plot of `points` in nats per byte.
pub fn plot(points: &[LossPoint]) -> LinePlot {
    let nats = |micro: u64| micro as f64 / 1e6;
    let series = |name: &str, color: &'static str, f: &dyn Fn(&LossPoint) -> Option<u64>| Series {
        name: name.to_string(),
        color,
        dashed: false,
        points: points.iter().filter_map(|p| Some((f64::from(p.height), nats(f(p)?)))).collect(),
    };
    LinePlot::new("loss-plot", "height", "nats per byte", 1000, 420)
        .with(series("loss_index", "#1f6feb", &|p| Some(p.loss_index)))
        .with(series("benchmark_loss", "#d1242f", &|p| p.benchmark))
        .with(series("val_loss", "#8c959f", &|p| Some(p.val_loss)))
}

/// `/loss`.
pub async fn page(State(source): State<Source>, RawQuery(query): RawQuery) -> PageResult {
    let n = match html::query_param(query.as_deref(), "n") {
        None => DEFAULT_BLOCKS,
        Some(v) => {
            v.parse::<u32>().ok().filter(|n| (1..=MAX_BLOCKS).contains(n)).ok_or_else(|| {
                PageError::BadRequest(format!("n must be 1 to {MAX_BLOCKS}, not {v:?}"))
            })?
        }
    };
    let history = source.benchmark.clone();
    let points = source.blocking(move |node| points(node, &history, n)).await?;
    let with_benchmark = points.iter().filter(|p| p.benchmark.is_some()).count();
    let body = format!(
        "<h1>Loss against height</h1>{}\
         <p class=\"note\">One point per block of the active chain (the last {n} at most: {} blocks). \
         <b>loss_index</b>: the chain's loss index after the block (it only falls, by the improvement each \
         block proves, capped at twice its requirement); <b>benchmark_loss</b>: the block's model on the \
         held-out benchmark slice nobody is paid to fit ({with_benchmark} of {} blocks evaluated so far: the \
         node evaluates each new tip, the dashboard fills in recent blocks whose models are still stored); \
         <b>val_loss</b>: the block's model on its own evaluation sample.</p>",
        plot(&points).render(),
        points.len(),
        points.len()
    );
    Ok(Html(html::page("Loss", Nav::Loss, &body, true, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_has_one_point_per_block_and_benchmarks_where_known() {
        let points: Vec<LossPoint> = (0..31u32)
            .map(|h| LossPoint {
                height: h,
                hash: BlockHash([h as u8; 32]),
                loss_index: 5_500_000 - u64::from(h) * 20_000,
                val_loss: 5_400_000 - u64::from(h) * 20_000,
                benchmark: (h % 2 == 0).then_some(5_600_000),
            })
            .collect();
        let svg = plot(&points).render();
        assert_eq!(svg.matches("<circle class=\"pt\" data-series=\"loss_index\"").count(), 31);
        assert_eq!(svg.matches("<circle class=\"pt\" data-series=\"val_loss\"").count(), 31);
        assert_eq!(svg.matches("<circle class=\"pt\" data-series=\"benchmark_loss\"").count(), 16);
    }
}
