// One AdamW update over elements [start, start + len) (rnet-training optimizer::AdamW); the
// bias-correction scalars come from the host (AdamWStep::scalars).

struct Params {
    start: u32,
    len: u32,
    grad_scale: f32,
    decay: f32,
    step_size: f32,
    inv_sqrt_bc2: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn adamw(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = flat_group(wg, nwg) * 256u + lid;
    if (k >= p.len) {
        return;
    }
    let i = p.start + k;
    let gi = grads[i] * p.grad_scale;
    let mi = p.b1 * m[i] + (1.0 - p.b1) * gi;
    let vi = p.b2 * v[i] + (1.0 - p.b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) * p.inv_sqrt_bc2 + p.eps;
    params[i] = params[i] * p.decay - p.step_size * mi / denom;
}
