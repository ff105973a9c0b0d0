//! Measurements for `docs/protocol.md` Part V §9 (not assertions about speed): the time to verify
//! one mainnet block at the genesis shape (Proof-of-Training with its two evaluations), and the
//! growth table (checkpoint size, evaluation time extrapolated by FLOPs, bytes per block
//! interval) at 1 day, 1 month, 1 year and the cap.
//!
//! Run with `cargo test --release -p rnet-consensus --test figures -- --ignored --nocapture`.

use std::time::Instant;

use rnet_consensus::{ChainParams, check_proof_of_training, evaluate_candidate, next_block_shape};
use rnet_model::Checkpoint;
use rnet_primitives::{BlockHeader, Hash256, ModelShape, encode_to_vec};
use rnet_testkit::miner::checkpoint_root;

/// Shape after `steps` growth steps without stagnation (Part III §7).
fn shape_after(params: &ChainParams, steps: u64) -> (u32, u32) {
    let mut summary = params.genesis_summary();
    for _ in 0..steps {
        // Jump straight to the next growth height.
        summary.height = params.growth_interval - 1;
        let (d, l) = next_block_shape(params, &summary);
        summary.cumulative_growth += d - summary.d_model;
        summary.d_model = d;
        summary.n_layers = l;
    }
    (summary.d_model, summary.n_layers)
}

#[test]
#[ignore = "measurement: run with --release --ignored --nocapture"]
fn mainnet_verify_time_and_growth_table() {
    let params = ChainParams::mainnet();
    let parent = params.genesis_summary();
    let parent_bytes = params.genesis_checkpoint().to_bytes();
    // A block-1 candidate at the genesis shape (growth comes every 144 blocks): the genesis
    // weights re-labelled for height 1. Its improvement is 0, so the header's requirement is set
    // to 0 (Proof-of-Training trusts the header's requirement; the header stage checks it).
    let candidate = Checkpoint::new(1, params.genesis_checkpoint().model);
    let bytes = candidate.to_bytes();
    let mut header: BlockHeader = params.genesis_block().header;
    header.prev_block_hash = parent.hash;
    header.height = 1;
    header.time = parent.time + 600;
    header.shape = ModelShape { d_model: parent.d_model, n_layers: parent.n_layers };
    header.checkpoint_root = Hash256(checkpoint_root(&bytes));
    header.checkpoint_size = bytes.len() as u64;
    header.required_improvement = 0;
    let t = Instant::now();
    let eval = evaluate_candidate(&params, &header, &candidate.model, &candidate.model).unwrap();
    let mine_s = t.elapsed().as_secs_f64();
    header.parent_loss = eval.parent_loss;
    header.val_loss = eval.val_loss;
    let t = Instant::now();
    check_proof_of_training(&params, &header, &parent, &eval.sample, &parent_bytes, &bytes)
        .unwrap();
    let verify_s = t.elapsed().as_secs_f64();
    let sample_bytes = encode_to_vec(&eval.sample).len();
    println!(
        "FIGURE mainnet genesis-shape block: draw + 2 evaluations (miner) {mine_s:.2} s; \
         Proof-of-Training (2 evaluations, {} records, {sample_bytes} sample bytes) {verify_s:.2} s",
        eval.sample.records.len()
    );
    let per_eval = verify_s / 2.0;
    let genesis_params = params.genesis_model.param_count() as f64;
    println!(
        "| age | blocks | shape (d, L) | parameters | checkpoint | verify (2 evals) | bytes per block |"
    );
    println!("|---|---|---|---|---|---|---|");
    let cap_steps = u64::from((params.growth_caps.max_d_model as u32 - parent.d_model) / 2);
    for (age, steps) in
        [("genesis", 0), ("1 day", 1), ("1 month", 30), ("1 year", 365), ("cap", cap_steps)]
    {
        let (d, l) = shape_after(&params, steps);
        let config = params.model_config(d, l);
        let size = params.checkpoint_size(d, l).unwrap();
        let flops_ratio = config.param_count() as f64 / genesis_params;
        let blocks = steps * u64::from(params.growth_interval);
        println!(
            "| {age} | {blocks} | ({d}, {l}) | {} | {:.1} MiB | {:.0} s | {:.1} MiB |",
            config.param_count(),
            size as f64 / (1 << 20) as f64,
            2.0 * per_eval * flops_ratio,
            (size as f64 + sample_bytes as f64) / (1 << 20) as f64,
        );
    }
}
