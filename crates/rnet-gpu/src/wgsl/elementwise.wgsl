// Element-wise glue of the whole-model engine (src/model): fill, axpby and the one-position minGRU
// step of decoding (rnet-model step.rs's recurrence).

struct Params {
    n: u32,
    y_off: u32,
    x_off: u32,
    _pad: u32,
    alpha: f32,
    beta: f32,
    value: f32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

// y[i] = value for i < n.
@compute @workgroup_size(256)
fn fill(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_group(wg, nwg) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    y[i] = p.value;
}

// y[y_off + i] = α x[x_off + i] + β y[y_off + i]; β = 0 ignores the old y (even NaN).
@compute @workgroup_size(256)
fn axpby(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_group(wg, nwg) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    var v = p.alpha * x[p.x_off + i];
    if (p.beta != 0.0) {
        v += p.beta * y[p.y_off + i];
    }
    y[p.y_off + i] = v;
}

// h[j] = (1 − σ(k_j)) h[j] + σ(k_j) g(h̃_j) with zh = [k | h̃], j < n (= d).
@compute @workgroup_size(256)
fn scan_step(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = flat_group(wg, nwg) * 256u + lid;
    if (j >= p.n) {
        return;
    }
    let z = sigmoid_f(x[j]);
    y[j] = (1.0 - z) * y[j] + z * g_act(x[p.n + j]);
}
