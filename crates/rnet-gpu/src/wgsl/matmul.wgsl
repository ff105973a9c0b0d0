// C = α · op(A) · op(B) + β · C on row-major operands with row strides, element offsets and
// strided batches (see MatmulSpec in lib.rs). Tiled: a 16×16 workgroup computes a 64×64 block of C,
// 4×4 elements per invocation, stepping through k 16 at a time through workgroup memory. Grid
// (ceil(n/64), ceil(m/64), batch). With β = 0 the old C is never read (it may hold NaN).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32, // bit 0: trans_a, bit 1: trans_b
    lda: u32,
    ldb: u32,
    ldc: u32,
    _pad0: u32,
    off_a: u32,
    off_b: u32,
    off_c: u32,
    _pad1: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    _pad2: u32,
    alpha: f32,
    beta: f32,
    _pad3: u32,
    _pad4: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const TILE: u32 = 64u;
const TK: u32 = 16u;

// as_t[p * TILE + i] = op(A)[row0 + i, k0 + p]; bs_t[p * TILE + j] = op(B)[k0 + p, col0 + j].
var<workgroup> as_t: array<f32, 1024>;
var<workgroup> bs_t: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) li: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ta = (p.flags & 1u) != 0u;
    let tb = (p.flags & 2u) != 0u;
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let oa = p.off_a + wg.z * p.stride_a;
    let ob = p.off_b + wg.z * p.stride_b;
    let oc = p.off_c + wg.z * p.stride_c;
    var acc: array<f32, 16>;
    for (var q = 0u; q < 16u; q++) {
        acc[q] = 0.0;
    }
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // Each invocation loads 4 elements of each tile; consecutive invocations read consecutive
        // addresses of the stored operand.
        for (var e = 0u; e < 4u; e++) {
            let idx = lid + e * 256u;
            var ii: u32;
            var pp: u32;
            if (ta) {
                pp = idx / TILE;
                ii = idx % TILE;
            } else {
                ii = idx / TK;
                pp = idx % TK;
            }
            let gi = row0 + ii;
            let gp = k0 + pp;
            var av = 0.0;
            if (gi < p.m && gp < p.k) {
                if (ta) {
                    av = a[oa + gp * p.lda + gi];
                } else {
                    av = a[oa + gi * p.lda + gp];
                }
            }
            as_t[pp * TILE + ii] = av;
            var jj: u32;
            var qq: u32;
            if (tb) {
                jj = idx / TK;
                qq = idx % TK;
            } else {
                qq = idx / TILE;
                jj = idx % TILE;
            }
            let gj = col0 + jj;
            let gq = k0 + qq;
            var bv = 0.0;
            if (gj < p.n && gq < p.k) {
                if (tb) {
                    bv = b[ob + gj * p.ldb + gq];
                } else {
                    bv = b[ob + gq * p.ldb + gj];
                }
            }
            bs_t[qq * TILE + jj] = bv;
        }
        workgroupBarrier();
        for (var pp = 0u; pp < TK; pp++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var r = 0u; r < 4u; r++) {
                ar[r] = as_t[pp * TILE + li.y * 4u + r];
                br[r] = bs_t[pp * TILE + li.x * 4u + r];
            }
            for (var r = 0u; r < 4u; r++) {
                for (var s = 0u; s < 4u; s++) {
                    acc[r * 4u + s] += ar[r] * br[s];
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let gi = row0 + li.y * 4u + r;
        if (gi >= p.m) {
            break;
        }
        for (var s = 0u; s < 4u; s++) {
            let gj = col0 + li.x * 4u + s;
            if (gj < p.n) {
                let ci = oc + gi * p.ldc + gj;
                var val = p.alpha * acc[r * 4u + s];
                if (p.beta != 0.0) {
                    val += p.beta * c[ci];
                }
                c[ci] = val;
            }
        }
    }
}

// The same product for m = 1 (one row of C: a matrix–vector product, as in decoding), where the
// tiled kernel would leave 63 of every 64 rows of its tile empty. One workgroup of 64 invocations
// per column j of C (grid (n, 1, batch)): the invocations step through k together (consecutive k
// on consecutive invocations, so a row of a transposed B is read in order) and add their partial
// sums in workgroup memory.
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn matvec(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ta = (p.flags & 1u) != 0u;
    let tb = (p.flags & 2u) != 0u;
    let j = wg.x;
    let oa = p.off_a + wg.z * p.stride_a;
    let ob = p.off_b + wg.z * p.stride_b;
    let oc = p.off_c + wg.z * p.stride_c;
    var s = 0.0;
    for (var q = lid; q < p.k; q += 64u) {
        var av: f32;
        if (ta) {
            av = a[oa + q * p.lda];
        } else {
            av = a[oa + q];
        }
        var bv: f32;
        if (tb) {
            bv = b[ob + j * p.ldb + q];
        } else {
            bv = b[ob + q * p.ldb + j];
        }
        s += av * bv;
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var w = 32u; w > 0u; w = w >> 1u) {
        if (lid < w) {
            partial[lid] = partial[lid] + partial[lid + w];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var val = p.alpha * partial[0];
        if (p.beta != 0.0) {
            val += p.beta * c[oc + j];
        }
        c[oc + j] = val;
    }
}

// The same m = 1 product with one invocation per column j (grid (ceil(n/64), 1, batch)), each
// walking k alone: no workgroup memory or barriers. For software rasterisers (Mesa's lavapipe),
// which run invocations as the SIMD lanes of CPU threads: there a barrier costs more than the
// strided reads it avoids (measured 2.5x faster than `matvec` there); GPUs use `matvec`.
@compute @workgroup_size(64)
fn matvec_cols(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ta = (p.flags & 1u) != 0u;
    let tb = (p.flags & 2u) != 0u;
    let j = wg.x * 64u + lid;
    if (j >= p.n) {
        return;
    }
    let oa = p.off_a + wg.z * p.stride_a;
    let ob = p.off_b + wg.z * p.stride_b;
    let oc = p.off_c + wg.z * p.stride_c;
    var s = 0.0;
    for (var q = 0u; q < p.k; q++) {
        var av: f32;
        if (ta) {
            av = a[oa + q * p.lda];
        } else {
            av = a[oa + q];
        }
        var bv: f32;
        if (tb) {
            bv = b[ob + j * p.ldb + q];
        } else {
            bv = b[ob + q * p.ldb + j];
        }
        s += av * bv;
    }
    var val = p.alpha * s;
    if (p.beta != 0.0) {
        val += p.beta * c[oc + j];
    }
    c[oc + j] = val;
}
