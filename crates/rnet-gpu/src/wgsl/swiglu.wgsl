// SwiGLU forward and backward (rnet-training ops::swiglu_*): rows of gu are [a | b].

struct Params {
    rows: u32,
    f: u32,
    n: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out_p: array<f32>;
@group(0) @binding(2) var<storage, read> gu: array<f32>;
@group(0) @binding(3) var<storage, read_write> dgu: array<f32>;
@group(0) @binding(4) var<storage, read> dp: array<f32>;

// p = SiLU(a) ⊙ b, one invocation per element of p.
@compute @workgroup_size(256)
fn swiglu_fwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = flat_group(wg, nwg) * 256u + lid;
    if (idx >= p.n) {
        return;
    }
    let r = idx / p.f;
    let j = idx - r * p.f;
    let a = gu[r * 2u * p.f + j];
    let b = gu[r * 2u * p.f + p.f + j];
    out_p[idx] = a * sigmoid_f(a) * b;
}

// dgu = [dp ⊙ b ⊙ SiLU'(a) | dp ⊙ SiLU(a)], one invocation per element of dp.
@compute @workgroup_size(256)
fn swiglu_bwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = flat_group(wg, nwg) * 256u + lid;
    if (idx >= p.n) {
        return;
    }
    let r = idx / p.f;
    let j = idx - r * p.f;
    let a = gu[r * 2u * p.f + j];
    let b = gu[r * 2u * p.f + p.f + j];
    let s = sigmoid_f(a);
    let silu = a * s;
    let g = dp[idx];
    dgu[r * 2u * p.f + j] = g * b * (s + silu * (1.0 - s));
    dgu[r * 2u * p.f + p.f + j] = g * silu;
}
