// Depthwise causal convolution with a merged kernel weff [kmax, d], per window of t_len rows
// (rnet-training ops::conv_*).

struct Params {
    windows: u32,
    t_len: u32,
    d: u32,
    kmax: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(0) @binding(3) var<storage, read> weff: array<f32>;
@group(0) @binding(4) var<storage, read_write> du: array<f32>;
@group(0) @binding(5) var<storage, read> dc: array<f32>;
@group(0) @binding(6) var<storage, read_write> dweff: array<f32>;

// c[t, j] = Σ_{k < kmax, k <= t} weff[k, j] u[t − k, j], one invocation per element.
@compute @workgroup_size(256)
fn conv_fwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = flat_group(wg, nwg) * 256u + lid;
    if (idx >= p.windows * p.t_len * p.d) {
        return;
    }
    let j = idx % p.d;
    let row = idx / p.d;
    let t = row % p.t_len;
    let kk = min(p.kmax, t + 1u);
    var acc = 0.0;
    for (var k = 0u; k < kk; k++) {
        acc += weff[k * p.d + j] * u[(row - k) * p.d + j];
    }
    c[idx] = acc;
}

// du[s, j] = Σ_{k < kmax, s + k < t_len} weff[k, j] dc[s + k, j] (overwrites).
@compute @workgroup_size(256)
fn conv_bwd_du(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = flat_group(wg, nwg) * 256u + lid;
    if (idx >= p.windows * p.t_len * p.d) {
        return;
    }
    let j = idx % p.d;
    let row = idx / p.d;
    let s = row % p.t_len;
    let kk = min(p.kmax, p.t_len - s);
    var acc = 0.0;
    for (var k = 0u; k < kk; k++) {
        acc += weff[k * p.d + j] * dc[(row + k) * p.d + j];
    }
    du[idx] = acc;
}

var<workgroup> cols: array<f32, 264>;

// dweff[k, j] += Σ_rows dc[t, j] u[t − k, j] (t − k in the same window); grid (ceil(d/32), kmax),
// workgroup (32, 8): 32 columns, 8 invocations striding the rows.
@compute @workgroup_size(32, 8)
fn conv_bwd_dw(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) li: vec3<u32>,
) {
    let j = wg.x * 32u + li.x;
    let k = wg.y;
    let rows = p.windows * p.t_len;
    var acc = 0.0;
    if (j < p.d) {
        for (var r = li.y; r < rows; r += 8u) {
            let t = r % p.t_len;
            if (t >= k) {
                acc += dc[r * p.d + j] * u[(r - k) * p.d + j];
            }
        }
    }
    cols[li.y * 33u + li.x] = acc;
    workgroupBarrier();
    if (li.y == 0u && j < p.d) {
        var s = 0.0;
        for (var i = 0u; i < 8u; i++) {
            s += cols[i * 33u + li.x];
        }
        dweff[k * p.d + j] += s;
    }
}
