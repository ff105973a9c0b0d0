// Embedding gather and scatter-add (rnet-training ops::embed_*). Tokens are bytes packed four to a
// u32, little-endian, as in cross_entropy.wgsl.

struct Params {
    rows: u32,
    d: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> tokens: array<u32>;
@group(0) @binding(4) var<storage, read_write> dtable: array<f32>;
@group(0) @binding(5) var<storage, read> dx: array<f32>;

fn token(i: u32) -> u32 {
    return (tokens[i / 4u] >> ((i % 4u) * 8u)) & 0xffu;
}

// x[r, j] = table[tokens[r], j], one invocation per element of x.
@compute @workgroup_size(256)
fn embed_fwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_group(wg, nwg) * 256u + lid;
    if (i >= p.rows * p.d) {
        return;
    }
    let r = i / p.d;
    let j = i - r * p.d;
    x[i] = table[token(r) * p.d + j];
}

// dtable[v, j] += Σ_{r: tokens[r] = v} dx[r, j] in row order: one workgroup per table row v, its
// invocations over the columns, so no two invocations write the same element (no atomics) and the
// sum is deterministic.
@compute @workgroup_size(256)
fn embed_bwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let v = wg.x;
    for (var j = lid; j < p.d; j += 256u) {
        var acc = 0.0;
        for (var r = 0u; r < p.rows; r++) {
            if (token(r) == v) {
                acc += dx[r * p.d + j];
            }
        }
        dtable[v * p.d + j] += acc;
    }
}
