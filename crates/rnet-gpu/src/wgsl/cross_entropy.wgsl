// Softmax cross-entropy over rows of `vocab` logits, forward and backward in one pass
// (rnet-training ops::cross_entropy). Needs reduce.wgsl. Targets are bytes packed four to a u32,
// little-endian (byte i is bits 8·(i mod 4) of word i / 4).

struct Params {
    rows: u32,
    vocab: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<u32>;

// One workgroup per row: loss = ln Σ e^(x − m) − (x_t − m); the row becomes
// scale · (softmax − onehot(t)).
@compute @workgroup_size(256)
fn cross_entropy(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.vocab;
    let t = (targets[row / 4u] >> ((row % 4u) * 8u)) & 0xffu;
    var m = NEG_BIG;
    for (var j = lid; j < p.vocab; j += 256u) {
        m = max(m, logits[base + j]);
    }
    m = block_max(m, lid);
    let shifted_target = logits[base + t] - m;
    var z = 0.0;
    for (var j = lid; j < p.vocab; j += 256u) {
        z += exp(logits[base + j] - m);
    }
    // Ends with a barrier: every read of the row above happened before the writes below.
    z = block_sum(z, lid);
    if (lid == 0u) {
        losses[row] = log(z) - shifted_target;
    }
    let inv = p.scale / z;
    for (var j = lid; j < p.vocab; j += 256u) {
        var v = exp(logits[base + j] - m) * inv;
        if (j == t) {
            v -= p.scale;
        }
        logits[base + j] = v;
    }
}
