// RMSNorm forward and backward (rnet-training ops::rmsnorm_*). Needs reduce.wgsl.

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> rinv_out: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read> dy: array<f32>;
@group(0) @binding(7) var<storage, read> rinv: array<f32>;
@group(0) @binding(8) var<storage, read_write> dgamma: array<f32>;

// y = x · r · γ with r = 1/√(mean(x²) + eps); one workgroup per row.
@compute @workgroup_size(256)
fn rmsnorm_fwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    var ss = 0.0;
    for (var j = lid; j < p.d; j += 256u) {
        let v = x[base + j];
        ss += v * v;
    }
    ss = block_sum(ss, lid);
    let r = 1.0 / sqrt(ss * (1.0 / f32(p.d)) + p.eps);
    if (lid == 0u) {
        rinv_out[row] = r;
    }
    for (var j = lid; j < p.d; j += 256u) {
        y[base + j] = x[base + j] * r * gamma[j];
    }
}

// dx += r γ dy − (r³ Σ(dy γ x) / d) x; one workgroup per row.
@compute @workgroup_size(256)
fn rmsnorm_bwd_dx(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    var s = 0.0;
    for (var j = lid; j < p.d; j += 256u) {
        s += dy[base + j] * gamma[j] * x[base + j];
    }
    s = block_sum(s, lid);
    let r = rinv[row];
    let k = r * r * r * s * (1.0 / f32(p.d));
    for (var j = lid; j < p.d; j += 256u) {
        dx[base + j] += r * gamma[j] * dy[base + j] - k * x[base + j];
    }
}

var<workgroup> cols: array<f32, 264>;

// dgamma[j] += Σ_rows dy x r; workgroup (32, 8): 32 columns, 8 invocations striding the rows.
@compute @workgroup_size(32, 8)
fn rmsnorm_bwd_dgamma(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) li: vec3<u32>,
) {
    let j = wg.x * 32u + li.x;
    var acc = 0.0;
    if (j < p.d) {
        for (var r = li.y; r < p.rows; r += 8u) {
            let i = r * p.d + j;
            acc += dy[i] * x[i] * rinv[r];
        }
    }
    cols[li.y * 33u + li.x] = acc;
    workgroupBarrier();
    if (li.y == 0u && j < p.d) {
        var s = 0.0;
        for (var i = 0u; i < 8u; i++) {
            s += cols[i * 33u + li.x];
        }
        dgamma[j] += s;
    }
}
