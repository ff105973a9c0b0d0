//! Model-update benchmark: `cargo bench -p rnet-model --bench update`.
//!
//! At the mainnet genesis shape, prints the encoded size of an update with a low-rank entry of
//! rank 4, 16 and 64 on every matrix (every 2-D tensor but the depthwise conv filters: `embed`,
//! `head`, and per layer `wz wh wo wq wm keys values w_gate w_up w_down`) against the full
//! checkpoint, and the time to apply each (check, arithmetic and the result scan; the root is
//! timed separately) on 1 thread and on the whole rayon pool.

use std::time::Instant;

use rnet_model::checkpoint::encoded_len;
use rnet_model::{
    Checkpoint, Model, ModelConfig, ModelNetwork, ModelUpdate, UpdateEntry, UpdateLimits, apply,
};

/// Deterministic small normal values (a xorshift stream), the size a trained adapter would have.
fn values(n: usize, state: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            ((*state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.02
        })
        .collect()
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t0 = Instant::now();
    let out = f();
    (out, t0.elapsed().as_secs_f64())
}

fn main() {
    let cfg = ModelConfig::genesis(ModelNetwork::Mainnet);
    let model = Model::init(cfg.clone(), 0).expect("genesis config is valid");
    let full = encoded_len(&cfg);
    let threads = rayon::current_num_threads();
    println!(
        "mainnet genesis: d={} L={} params={} checkpoint {} bytes ({:.2} MiB); rayon pool {threads}",
        cfg.d_model,
        cfg.n_layers,
        model.param_count(),
        full,
        full as f64 / (1 << 20) as f64
    );
    let layout = model.layout().clone();
    let matrices: Vec<_> = layout
        .tensors
        .iter()
        .filter(|t| t.shape.len() == 2 && !t.name.contains(".conv."))
        .collect();
    let covered: usize = matrices.iter().map(|t| t.len()).sum();
    println!(
        "{} matrices hold {} of {} parameters ({:.1}%)",
        matrices.len(),
        covered,
        model.param_count(),
        100.0 * covered as f64 / model.param_count() as f64
    );
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    for rank in [4u32, 16, 64] {
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ rank as u64;
        let entries = matrices
            .iter()
            .map(|t| {
                let (rows, cols) = (t.shape[0], t.shape[1]);
                let u = values(rows * rank as usize, &mut state);
                let v = values(rank as usize * cols, &mut state);
                UpdateEntry::low_rank(&layout, &t.name, rank, u, v).expect("entry")
            })
            .collect();
        let update = ModelUpdate::new(cfg.clone(), entries).expect("update");
        let size = update.encoded_len();
        let limits = UpdateLimits { max_update_bytes: u64::MAX, max_rank: rank };
        let bytes = update.encode();
        let (decoded, decode_s) = time(|| ModelUpdate::decode(&bytes).expect("decodes"));
        let _ = apply(&model, &decoded, &limits, 1); // warm-up
        let (ck, pool_s) = time(|| apply(&model, &decoded, &limits, 1).expect("applies"));
        let (_, one_s) = one.install(|| time(|| apply(&model, &decoded, &limits, 1)));
        let (_, root_s) = time(|| ck.root());
        println!(
            "rank {rank:>2}: update {size} bytes ({:.3} MiB) = {:.2}% of the checkpoint | decode {:.1} ms | apply {:.1} ms ({threads} threads), {:.1} ms (1 thread) | root {:.1} ms",
            size as f64 / (1 << 20) as f64,
            100.0 * size as f64 / full as f64,
            decode_s * 1e3,
            pool_s * 1e3,
            one_s * 1e3,
            root_s * 1e3
        );
    }
    let trained = Checkpoint::new(1, Model::init(cfg.clone(), 1).expect("init")).model;
    let replace = ModelUpdate::replacing_changed(&model, &trained).expect("same shape");
    println!(
        "full replacement of the {} tensors that differ between two seeds (norms are equal): {} bytes ({:.2}% of the checkpoint)",
        replace.entries().len(),
        replace.encoded_len(),
        100.0 * replace.encoded_len() as f64 / full as f64
    );
}
