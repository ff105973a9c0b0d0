// Row-wise softmax of the slot scores and its backward (rnet-training ops::softmax_rows*). Needs
// reduce.wgsl. One workgroup per row.

struct Params {
    rows: u32,
    s: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> alpha: array<f32>;

// x ← softmax(x) per row: e^(x − max) / Σ e^(x − max).
@compute @workgroup_size(256)
fn softmax_fwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.s;
    var m = NEG_BIG;
    for (var j = lid; j < p.s; j += 256u) {
        m = max(m, x[base + j]);
    }
    m = block_max(m, lid);
    var z = 0.0;
    for (var j = lid; j < p.s; j += 256u) {
        let e = exp(x[base + j] - m);
        x[base + j] = e;
        z += e;
    }
    z = block_sum(z, lid);
    let inv = 1.0 / z;
    for (var j = lid; j < p.s; j += 256u) {
        x[base + j] = x[base + j] * inv;
    }
}

// x ← scale · α ⊙ (x − Σ α x) per row (x holds dα on entry).
@compute @workgroup_size(256)
fn softmax_bwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.s;
    var dot = 0.0;
    for (var j = lid; j < p.s; j += 256u) {
        dot += x[base + j] * alpha[base + j];
    }
    dot = block_sum(dot, lid);
    for (var j = lid; j < p.s; j += 256u) {
        let a = alpha[base + j];
        x[base + j] = a * (x[base + j] - dot) * p.scale;
    }
}
