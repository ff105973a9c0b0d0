// The minGRU scan (rnet-training scan.rs): forward as the chunked log-domain (Heinsen) scan in three
// passes, backward as the reverse-time recurrence. zh rows are [k (d) | h̃ (d)].

struct Params {
    windows: u32,
    t_len: u32,
    d: u32,
    chunk: u32,
    n_chunks: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> h: array<f32>;
@group(0) @binding(2) var<storage, read_write> decay_out: array<f32>;
@group(0) @binding(3) var<storage, read> zh: array<f32>;
@group(0) @binding(4) var<storage, read> decay: array<f32>;
@group(0) @binding(5) var<storage, read_write> dzh: array<f32>;
@group(0) @binding(6) var<storage, read> dh: array<f32>;
@group(0) @binding(7) var<storage, read> h_in: array<f32>;

// Phase 1: every (window, chunk, channel) from a zero state, in the log domain. h holds the
// chunk-local state, decay the chunk-local product of (1 − z).
@compute @workgroup_size(256)
fn scan_chunks(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = flat_group(wg, nwg) * 256u + lid;
    if (idx >= p.windows * p.n_chunks * p.d) {
        return;
    }
    let j = idx % p.d;
    let rest = idx / p.d;
    let c = rest % p.n_chunks;
    let w = rest / p.n_chunks;
    let t0 = c * p.chunk;
    let t1 = min(t0 + p.chunk, p.t_len);
    var a_star = 0.0;
    var m = NEG_BIG;
    var s = 0.0;
    for (var t = t0; t < t1; t++) {
        let row = w * p.t_len + t;
        let k = zh[row * 2u * p.d + j];
        let ht = zh[row * 2u * p.d + p.d + j];
        a_star -= softplus_f(k);
        let log_b = -softplus_f(-k) + log_g(ht);
        let xx = log_b - a_star;
        // Online logcumsumexp.
        if (xx > m) {
            s = s * exp(m - xx) + 1.0;
            m = xx;
        } else {
            s += exp(xx - m);
        }
        h[row * p.d + j] = exp(a_star + m + log(s));
        decay_out[row * p.d + j] = exp(a_star);
    }
}

// Phase 2: per (window, channel), make the last state of every chunk exact, in chunk order:
// h_end(c) += decay_end(c) · h_end(c − 1).
@compute @workgroup_size(256)
fn scan_carry(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = flat_group(wg, nwg) * 256u + lid;
    if (idx >= p.windows * p.d) {
        return;
    }
    let j = idx % p.d;
    let w = idx / p.d;
    let base = w * p.t_len;
    for (var c = 1u; c < p.n_chunks; c++) {
        let prev_end = base + c * p.chunk - 1u;
        let end = base + min((c + 1u) * p.chunk, p.t_len) - 1u;
        h[end * p.d + j] += decay[end * p.d + j] * h[prev_end * p.d + j];
    }
}

// Phase 3: every other position of chunk c >= 1 adds decay · (exact last state of chunk c − 1).
@compute @workgroup_size(256)
fn scan_fix(
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
    let c = t / p.chunk;
    if (c == 0u) {
        return;
    }
    let end = min((c + 1u) * p.chunk, p.t_len) - 1u;
    if (t == end) {
        return;
    }
    let prev_end = row - t + c * p.chunk - 1u;
    h[idx] += decay[idx] * h[prev_end * p.d + j];
}

// Backward of the recurrence, one invocation per (window, channel), reverse in time.
@compute @workgroup_size(256)
fn scan_bwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = flat_group(wg, nwg) * 256u + lid;
    if (idx >= p.windows * p.d) {
        return;
    }
    let j = idx % p.d;
    let w = idx / p.d;
    var carry = 0.0;
    for (var tt = p.t_len; tt > 0u; tt--) {
        let t = tt - 1u;
        let row = w * p.t_len + t;
        let k = zh[row * 2u * p.d + j];
        let ht = zh[row * 2u * p.d + p.d + j];
        let z = sigmoid_f(k);
        let g = g_act(ht);
        var hp = 0.0;
        if (t > 0u) {
            hp = h_in[(row - 1u) * p.d + j];
        }
        let total = dh[row * p.d + j] + carry;
        let dz = total * (g - hp);
        dzh[row * 2u * p.d + j] = dz * z * (1.0 - z);
        dzh[row * 2u * p.d + p.d + j] = total * z * g_grad(ht);
        carry = total * (1.0 - z);
    }
}
