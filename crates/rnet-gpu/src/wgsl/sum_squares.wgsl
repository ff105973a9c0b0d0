// Partial sums of squares for the global gradient norm. Needs reduce.wgsl. Workgroup g (of G, one
// per accumulator slot used) covers elements g·256 + lid + k·G·256 and adds its sum to acc[g], so
// no two workgroups write the same slot and the split is fixed by (n, G).

struct Params {
    n: u32,
    groups: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

@compute @workgroup_size(256)
fn sum_squares(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wg.x;
    var s = 0.0;
    for (var i = g * 256u + lid; i < p.n; i += p.groups * 256u) {
        let v = x[i];
        s += v * v;
    }
    s = block_sum(s, lid);
    if (lid == 0u) {
        acc[g] += s;
    }
}
