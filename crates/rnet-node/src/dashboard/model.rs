//! `/model`: the tip model's shape, parameter count and checkpoint size, and its growth: the
//! shapes the chain actually took, and the schedule ahead (the next block's shape exactly, by
//! `rnet_consensus::next_block_shape`; later ones by `rnet_model::next_shape` assuming no block
//! only just passes, since stagnation speeds growth up).

use axum::extract::State;
use axum::response::Html;
use rnet_consensus::{ChainParams, HeaderSummary, next_block_shape};
use serde_json::json;

use super::html::{self, Nav, escape};
use super::source::Source;
use super::svg::{LinePlot, Series};
use super::{PageError, PageResult};
use crate::node::Node;

/// Most growth heights scanned for the history (longer chains are sampled evenly).
pub const MAX_HISTORY_SCAN: u32 = 20_000;

/// Most scheduled growth steps computed.
pub const MAX_SCHEDULE: usize = 100_000;

/// A model shape from some height on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeStep {
    /// First height with this shape.
    pub height: u64,
    /// Width.
    pub d_model: u32,
    /// Depth.
    pub n_layers: u32,
}

/// The shape changes of the active chain up to `tip` (genesis first), reading the block index at
/// the heights where the shape may change (multiples of `growth_interval`).
pub fn history(node: &Node, tip: &HeaderSummary) -> Result<Vec<ShapeStep>, PageError> {
    let internal = |e: rnet_chain::ChainError| PageError::Internal(e.to_string());
    let interval = node.params.growth_interval.max(1);
    let growth_heights = tip.height / interval;
    let stride = growth_heights.div_ceil(MAX_HISTORY_SCAN).max(1);
    let genesis = node.params.genesis_model.clone();
    let mut out = vec![ShapeStep {
        height: 0,
        d_model: genesis.d_model as u32,
        n_layers: genesis.n_layers as u32,
    }];
    let mut k = stride;
    while k <= growth_heights {
        let height = k * interval;
        if let Some(hash) = node.reader.block_hash_at(height).map_err(internal)? {
            if let Some(s) = node.reader.header_summary(&hash).map_err(internal)? {
                let last = out[out.len() - 1];
                if (s.d_model, s.n_layers) != (last.d_model, last.n_layers) {
                    out.push(ShapeStep {
                        height: u64::from(height),
                        d_model: s.d_model,
                        n_layers: s.n_layers,
                    });
                }
            }
        }
        k += stride;
    }
    Ok(out)
}

/// The scheduled shape changes after `tip`: the next growth height's shape as consensus fixes it
/// now, then one growth step per `growth_interval` with stagnation 0, until the caps hold it (at
/// most [`MAX_SCHEDULE`] steps).
pub fn schedule(params: &ChainParams, tip: &HeaderSummary) -> Vec<ShapeStep> {
    let interval = u64::from(params.growth_interval.max(1));
    let mut height = (u64::from(tip.height) / interval + 1) * interval;
    let mut shape = (tip.d_model as usize, tip.n_layers as usize);
    let mut growth = tip.cumulative_growth as usize;
    let mut stagnation = u64::from(tip.stagnation);
    let mut out = Vec::new();
    // The parent of the next growth height keeps the tip's shape and counters only if it is the
    // tip itself; later parents are assumed never to stagnate.
    if height != u64::from(tip.height) + 1 {
        stagnation = 0;
    }
    for _ in 0..MAX_SCHEDULE {
        let next = if out.is_empty() && height == u64::from(tip.height) + 1 {
            let (d, l) = next_block_shape(params, tip);
            (d as usize, l as usize)
        } else {
            rnet_model::next_shape(shape, growth, stagnation, params.growth_caps)
        };
        if next == shape {
            break;
        }
        growth += next.0 - shape.0;
        shape = next;
        stagnation = 0;
        out.push(ShapeStep { height, d_model: next.0 as u32, n_layers: next.1 as u32 });
        height += interval;
    }
    out
}

fn params_of(params: &ChainParams, s: &ShapeStep) -> (usize, Option<u64>) {
    let config = params.model_config(s.d_model, s.n_layers);
    let count = config.validate().map(|()| config.param_count()).unwrap_or(0);
    (count, params.checkpoint_size(s.d_model, s.n_layers))
}

fn shape_rows(params: &ChainParams, steps: &[ShapeStep]) -> String {
    let mut out = String::from(
        "<tr><th>From height</th><th>d_model</th><th>layers</th><th>Parameters</th><th>Checkpoint</th></tr>",
    );
    for s in steps {
        let (count, size) = params_of(params, s);
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{count}</td><td>{}</td></tr>",
            s.height,
            s.d_model,
            s.n_layers,
            escape(&size.map_or_else(|| "n/a".into(), html::bytes))
        ));
    }
    out
}

/// `/model`.
pub async fn page(State(source): State<Source>) -> PageResult {
    let info = source.rpc("getblockchaininfo", json!([])).await?;
    let (params, tip, past) = source
        .blocking(|node| {
            let tip = node.reader.tip().map_err(|e| PageError::Internal(e.to_string()))?;
            let past = history(node, &tip)?;
            Ok((node.params.clone(), tip, past))
        })
        .await?;
    let future = schedule(&params, &tip);
    let config = params.model_config(tip.d_model, tip.n_layers);
    let current =
        ShapeStep { height: u64::from(tip.height), d_model: tip.d_model, n_layers: tip.n_layers };
    let (count, size) = params_of(&params, &current);
    let point = |s: &ShapeStep| (s.height as f64, params_of(&params, s).0 as f64);
    let mut so_far: Vec<(f64, f64)> = past.iter().map(point).collect();
    so_far.push(point(&current));
    let mut ahead = vec![point(&current)];
    ahead.extend(future.iter().map(point));
    let plot = LinePlot::new("growth-plot", "height", "parameters", 1000, 320)
        .with(Series { name: "so far".into(), color: "#1f6feb", dashed: false, points: so_far })
        .with(Series { name: "scheduled".into(), color: "#8250df", dashed: true, points: ahead });
    let caps = params.growth_caps;
    let shown: Vec<ShapeStep> = if future.len() > 12 {
        future.iter().take(11).chain(future.last()).copied().collect()
    } else {
        future.clone()
    };
    let body = format!(
        "<h1>The model</h1><p class=\"note\">ResonanceNet V5 at the tip (height {}): multi-scale causal \
         convolution, minGRU, slot memory and SwiGLU; one byte per token.</p><div class=\"grid\">{}</div>\
         <h2>Growth</h2>{}<p class=\"note\">The shape may change every {} blocks; caps d_model {} and {} layers. \
         The next block's shape is what consensus requires now ({}); later steps assume no block only just \
         passes (stagnation makes the model grow faster).</p>\
         <h2>So far</h2><table id=\"growth-history\">{}</table>\
         <h2>Scheduled</h2><table id=\"growth-schedule\">{}</table>{}",
        tip.height,
        [
            html::card("d-model", "d_model", &tip.d_model.to_string()),
            html::card("n-layers", "Layers", &tip.n_layers.to_string()),
            html::card("d-ff", "d_ff", &config.d_ff.to_string()),
            html::card("slots", "Memory slots", &config.n_slots.to_string()),
            html::card("kernels", "Conv kernels", &format!("{:?}", config.kernel_sizes)),
            html::card("window", "Context window (bytes)", &config.window.to_string()),
            html::card("params", "Parameters", &count.to_string()),
            html::card(
                "checkpoint-size",
                "Checkpoint size",
                &size.map_or_else(|| "n/a".into(), html::bytes)
            ),
        ]
        .concat(),
        plot.render(),
        params.growth_interval,
        caps.max_d_model,
        caps.max_layers,
        escape(&format!(
            "d={} L={}",
            info["next_shape"]["d_model"], info["next_shape"]["n_layers"]
        )),
        shape_rows(&params, &past),
        if future.is_empty() {
            "<tr><td>The model has reached its caps: no further growth.</td></tr>".to_string()
        } else {
            shape_rows(&params, &shown)
        },
        if future.len() > shown.len() {
            format!(
                "<p class=\"note\">{} growth steps in all; the table shows the first 11 and the last.</p>",
                future.len()
            )
        } else {
            String::new()
        }
    );
    Ok(Html(html::page("Model", Nav::Model, &body, true, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tip_at(params: &ChainParams, height: u32, d: u32, l: u32, growth: u32) -> HeaderSummary {
        let mut s = params.genesis_summary();
        s.height = height;
        s.d_model = d;
        s.n_layers = l;
        s.cumulative_growth = growth;
        s.stagnation = 0;
        s
    }

    #[test]
    fn regtest_schedule_grows_every_block_to_the_caps() {
        let params = ChainParams::regtest();
        let g = &params.genesis_model;
        let tip = tip_at(&params, 0, g.d_model as u32, g.n_layers as u32, 0);
        let steps = schedule(&params, &tip);
        assert!(!steps.is_empty());
        assert_eq!(steps[0].height, 1, "growth_interval 1: the next block grows");
        assert!(steps.windows(2).all(|w| w[1].height == w[0].height + 1));
        let last = steps.last().unwrap();
        assert_eq!(last.d_model, params.growth_caps.max_d_model as u32);
        for s in &steps {
            let expected =
                rnet_model::shape_at_height((g.d_model, g.n_layers), s.height, params.growth_caps);
            assert_eq!((s.d_model as usize, s.n_layers as usize), expected, "{s:?}");
        }
        // At the caps nothing is scheduled.
        let capped = tip_at(&params, 40, last.d_model, last.n_layers, 0);
        assert!(schedule(&params, &capped).is_empty());
    }

    #[test]
    fn mainnet_schedule_steps_at_growth_heights() {
        let params = ChainParams::mainnet();
        let g = &params.genesis_model;
        let tip = tip_at(&params, 10, g.d_model as u32, g.n_layers as u32, 0);
        let steps = schedule(&params, &tip);
        assert_eq!(steps[0].height, 144);
        assert!(steps.iter().all(|s| s.height % 144 == 0));
        assert_eq!(steps.last().unwrap().d_model, params.growth_caps.max_d_model as u32);
    }
}
