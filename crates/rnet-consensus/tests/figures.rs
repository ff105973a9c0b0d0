//! Measurements for `docs/protocol.md` Part V §9 (not assertions about speed): the time to verify
//! one mainnet block at the genesis shape (Proof-of-Training with its two evaluations), and the
//! growth table (checkpoint size, evaluation time extrapolated by FLOPs, bytes per block
//! interval) at 1 day, 1 month, 1 year and the cap.
//!
//! Run with `cargo test --release -p rnet-consensus --test figures -- --ignored --nocapture`.

use std::time::Instant;

use rnet_consensus::{
    ChainParams, check_proof_of_training, derive_checkpoint, evaluate_candidate, next_block_shape,
    update_limits,
};
use rnet_model::{Checkpoint, ModelUpdate, UpdateEntry, apply};
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

/// Encoded size of a rank-`r` update with one entry per matrix (Part III §5.2), for `config`.
fn low_rank_size(config: &rnet_model::ModelConfig, r: u64) -> u64 {
    let layout = rnet_model::Layout::new(config);
    let header = rnet_model::update::header_len(config.kernel_sizes.len()) as u64;
    header
        + layout
            .tensors
            .iter()
            .filter(|t| t.shape.len() == 2 && !t.name.contains(".conv."))
            .map(|t| 17 + 4 * r * (t.shape[0] as u64 + t.shape[1] as u64))
            .sum::<u64>()
}

/// A rank-`r` update on every matrix of `model` (small deterministic factors).
fn low_rank_update(model: &rnet_model::Model, r: u32) -> ModelUpdate {
    let layout = model.layout().clone();
    let entries = layout
        .tensors
        .iter()
        .filter(|t| t.shape.len() == 2 && !t.name.contains(".conv."))
        .map(|t| {
            let (rows, cols) = (t.shape[0], t.shape[1]);
            let u = (0..rows * r as usize).map(|i| ((i % 7) as f32 - 3.0) * 1e-3).collect();
            let v = (0..r as usize * cols).map(|i| ((i % 5) as f32 - 2.0) * 1e-3).collect();
            UpdateEntry::low_rank(&layout, &t.name, r, u, v).unwrap()
        })
        .collect();
    ModelUpdate::new(model.config().clone(), entries).unwrap()
}

/// The largest rank ≤ 16 whose all-matrix update fits `max` bytes (0: not even rank 1).
fn auto_rank(config: &rnet_model::ModelConfig, max: u64) -> u64 {
    (1..=16).rev().find(|&r| low_rank_size(config, r) <= max).unwrap_or(0)
}

#[test]
#[ignore = "measurement: run with --release --ignored --nocapture"]
fn mainnet_verify_time_and_growth_table() {
    let params = ChainParams::mainnet();
    let parent = params.genesis_summary();
    let genesis = params.genesis_checkpoint();
    let parent_bytes = genesis.to_bytes();
    // A block-1 candidate at the genesis shape (growth comes every 144 blocks) carrying an empty
    // update: its model is the genesis model at height 1. Its improvement is 0, so the header's
    // requirement is set to 0 (Proof-of-Training trusts the header's requirement; the header
    // stage checks it).
    let empty = ModelUpdate::new(genesis.model.config().clone(), vec![]).unwrap().encode();
    let candidate = Checkpoint::new(1, genesis.model.clone());
    let bytes = candidate.to_bytes();
    let mut header: BlockHeader = params.genesis_block().header;
    header.prev_block_hash = parent.hash;
    header.height = 1;
    header.time = parent.time + 600;
    header.shape = ModelShape { d_model: parent.d_model, n_layers: parent.n_layers };
    header.checkpoint_root = Hash256(checkpoint_root(&bytes));
    header.checkpoint_size = bytes.len() as u64;
    header.update_root = Hash256(checkpoint_root(&empty));
    header.update_size = empty.len() as u64;
    header.required_improvement = 0;
    let t = Instant::now();
    let eval = evaluate_candidate(&params, &header, &candidate.model, &candidate.model).unwrap();
    let mine_s = t.elapsed().as_secs_f64();
    header.parent_loss = eval.parent_loss;
    header.val_loss = eval.val_loss;
    let t = Instant::now();
    check_proof_of_training(&params, &header, &parent, &eval.sample, &parent_bytes, &empty)
        .unwrap();
    let verify_s = t.elapsed().as_secs_f64();
    let sample_bytes = encode_to_vec(&eval.sample).len();
    println!(
        "FIGURE mainnet genesis-shape block: draw + 2 evaluations (miner) {mine_s:.2} s; \
         Proof-of-Training (2 evaluations, {} records, {sample_bytes} sample bytes) {verify_s:.2} s",
        eval.sample.records.len()
    );

    // What a node does per block without the evaluations (assumevalid), old rule: hash and
    // parse the block's checkpoint and its parent's.
    let t = Instant::now();
    for b in [&bytes, &parent_bytes] {
        assert_eq!(checkpoint_root(b).len(), 32);
        Checkpoint::from_bytes(b).unwrap();
    }
    let load_s = t.elapsed().as_secs_f64();
    // New rule: parse the parent, apply a rank-16 update, hash the result (and its bytes, which
    // the node writes to disk).
    let update = low_rank_update(&genesis.model, 16);
    let update_bytes = update.encode();
    let t = Instant::now();
    let parent_model = Checkpoint::from_bytes(&parent_bytes).unwrap().model;
    let derived = apply(&parent_model, &update, &update_limits(&params), 1).unwrap();
    let derived_bytes = derived.to_bytes();
    let derived_root = checkpoint_root(&derived_bytes);
    let derive_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    assert_eq!(
        derive_checkpoint(
            &params,
            &{
                let mut h = header.clone();
                h.checkpoint_root = Hash256(derived_root);
                h
            },
            &parent_model,
            &update_bytes
        )
        .unwrap()
        .root(),
        derived_root
    );
    let consensus_derive_s = t.elapsed().as_secs_f64();
    println!(
        "FIGURE per block without evaluations at the genesis shape: old (hash + parse two \
         checkpoints) {load_s:.3} s; new (parse parent, apply a {}-byte rank-16 update, serialise \
         and hash) {derive_s:.3} s (derive_checkpoint alone {consensus_derive_s:.3} s)",
        update_bytes.len()
    );

    let per_eval = verify_s / 2.0;
    let genesis_params = params.genesis_model.param_count() as f64;
    let mib = (1u64 << 20) as f64;
    let max = params.max_update_bytes;
    println!(
        "| age | height | shape (d, L) | parameters | checkpoint | verify (2 evals) | update (auto rank) | bytes per block: today / new | bytes per day: today / new |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let cap_steps = u64::from((params.growth_caps.max_d_model as u32 - parent.d_model) / 2);
    let ages = [("genesis", 0), ("1 day", 1), ("1 month", 30), ("1 year", 365), ("cap", cap_steps)];
    for (age, steps) in ages {
        let (d, l) = shape_after(&params, steps);
        let config = params.model_config(d, l);
        let size = params.checkpoint_size(d, l).unwrap() as f64;
        let ratio = config.param_count() as f64 / genesis_params;
        let rank = auto_rank(&config, max);
        let update = if rank > 0 { low_rank_size(&config, rank) } else { max } as f64;
        let rank_note =
            if rank > 0 { format!("rank {rank}") } else { "a subset of matrices".into() };
        let blocks = steps * u64::from(params.growth_interval);
        println!(
            "| {age} | {blocks} | ({d}, {l}) | {} | {:.1} MiB | {:.0} s | {:.2} MiB ({rank_note}) | {:.1} / {:.2} MiB | {:.2} / {:.2} GiB |",
            config.param_count(),
            size / mib,
            2.0 * per_eval * ratio,
            update / mib,
            (size + sample_bytes as f64) / mib,
            (update + sample_bytes as f64) / mib,
            144.0 * (size + sample_bytes as f64) / mib / 1024.0,
            144.0 * (update + sample_bytes as f64) / mib / 1024.0,
        );
    }

    // Initial sync to each age at 50 Mbit/s (6.25 MB/s) under assumevalid (no evaluations):
    // today every checkpoint is downloaded and hashed; with updates every update is downloaded
    // and applied (time ∝ parameters), or, with a snapshot, one checkpoint of the target block
    // is downloaded and nothing before it is applied.
    let bw = 50e6 / 8.0;
    println!(
        "| sync to | today: download / time | updates from genesis: download / time | snapshot at the target: download / time |"
    );
    println!("|---|---|---|---|");
    for (age, steps) in ages.into_iter().skip(1) {
        let (mut today_b, mut today_t, mut new_b, mut new_t) = (0f64, 0f64, 0f64, 0f64);
        for step in 0..=steps {
            let (d, l) = shape_after(&params, step);
            let config = params.model_config(d, l);
            let size = params.checkpoint_size(d, l).unwrap() as f64;
            let ratio = config.param_count() as f64 / genesis_params;
            let rank = auto_rank(&config, max);
            let update = if rank > 0 { low_rank_size(&config, rank) } else { max } as f64;
            let n = if step == steps { 1.0 } else { f64::from(params.growth_interval) };
            today_b += n * (size + sample_bytes as f64);
            today_t += n * ((size + sample_bytes as f64) / bw + load_s * ratio);
            new_b += n * (update + sample_bytes as f64);
            new_t += n * ((update + sample_bytes as f64) / bw + derive_s * ratio);
        }
        let (d, l) = shape_after(&params, steps);
        let size = params.checkpoint_size(d, l).unwrap() as f64;
        let gib = mib * 1024.0;
        println!(
            "| {age} | {:.1} GiB / {:.1} h | {:.1} GiB / {:.1} h | {:.2} GiB / {:.2} h |",
            today_b / gib,
            today_t / 3600.0,
            new_b / gib,
            new_t / 3600.0,
            size / gib,
            (size / bw + load_s * 0.5 * size / bytes.len() as f64) / 3600.0,
        );
    }
}
