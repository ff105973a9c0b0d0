// ResonanceNet training kernels (CUDA C, compiled at run time by NVRTC; see src/cuda.rs).
// Each kernel mirrors a function of rnet-training (ops.rs, scan.rs, optimizer.rs); the CPU engine is
// the reference they are tested against (tests/agreement.rs). Dimensions are `int`: the host checks
// that every element count fits in 31 bits before launching.

#define FULL_MASK 0xffffffffu
// NVRTC has no <math.h>: negative infinity from its bit pattern.
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float sigmoid_f(float x) {
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    }
    float e = expf(x);
    return e / (1.0f + e);
}

__device__ __forceinline__ float softplus_f(float x) {
    float ax = fabsf(x);
    return fmaxf(x, 0.0f) + log1pf(expf(-ax));
}

// minGRU candidate activation g(x) = x + 1/2 for x >= 0, sigmoid(x) otherwise.
__device__ __forceinline__ float g_act(float x) { return x >= 0.0f ? x + 0.5f : sigmoid_f(x); }

__device__ __forceinline__ float g_grad(float x) {
    if (x >= 0.0f) {
        return 1.0f;
    }
    float s = sigmoid_f(x);
    return s * (1.0f - s);
}

__device__ __forceinline__ float log_g(float x) {
    return x >= 0.0f ? logf(x + 0.5f) : -softplus_f(-x);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Sum of `v` over a one-dimensional block (blockDim.x a multiple of 32, at most 1024); every thread
// gets the result.
__device__ float block_sum(float v) {
    __shared__ float sh[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = (threadIdx.x < nw) ? sh[threadIdx.x] : 0.0f;
    if (warp == 0) v = warp_sum(v);
    if (threadIdx.x == 0) sh[0] = v;
    __syncthreads();
    v = sh[0];
    __syncthreads();
    return v;
}

__device__ float block_max(float v) {
    __shared__ float sh[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = (threadIdx.x < nw) ? sh[threadIdx.x] : NEG_INF;
    if (warp == 0) v = warp_max(v);
    if (threadIdx.x == 0) sh[0] = v;
    __syncthreads();
    v = sh[0];
    __syncthreads();
    return v;
}

// Column reduction over rows with a (32, 8) block: returns, in threads with threadIdx.y == 0, the
// sum over the block's y threads of `v`.
__device__ float column_sum(float v) {
    __shared__ float sh[8][33];
    sh[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    float s = 0.0f;
    if (threadIdx.y == 0) {
        for (int i = 0; i < blockDim.y; i++) s += sh[i][threadIdx.x];
    }
    return s;
}

// One block per row.
extern "C" __global__ void rmsnorm_fwd(float* y, float* rinv, const float* x, const float* gamma,
                                       int rows, int d, float eps) {
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* xr = x + (long long)row * d;
    float* yr = y + (long long)row * d;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) ss += xr[j] * xr[j];
    ss = block_sum(ss);
    float inv_d = 1.0f / (float)d;
    float r = 1.0f / sqrtf(ss * inv_d + eps);
    if (threadIdx.x == 0) rinv[row] = r;
    for (int j = threadIdx.x; j < d; j += blockDim.x) yr[j] = xr[j] * r * gamma[j];
}

// dx += r γ dy − (r³ Σ(dy γ x) / d) x, one block per row.
extern "C" __global__ void rmsnorm_bwd_dx(float* dx, const float* dy, const float* x,
                                          const float* rinv, const float* gamma, int rows, int d) {
    int row = blockIdx.x;
    if (row >= rows) return;
    long long base = (long long)row * d;
    float s = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) s += dy[base + j] * gamma[j] * x[base + j];
    s = block_sum(s);
    float r = rinv[row];
    float k = r * r * r * s * (1.0f / (float)d);
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        dx[base + j] += r * gamma[j] * dy[base + j] - k * x[base + j];
    }
}

// dgamma[j] += Σ_rows dy x r; grid.x covers the columns 32 at a time, block (32, 8).
extern "C" __global__ void rmsnorm_bwd_dgamma(float* dgamma, const float* dy, const float* x,
                                              const float* rinv, int rows, int d) {
    int j = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (j < d) {
        for (int r = threadIdx.y; r < rows; r += blockDim.y) {
            long long i = (long long)r * d + j;
            acc += dy[i] * x[i] * rinv[r];
        }
    }
    float s = column_sum(acc);
    if (threadIdx.y == 0 && j < d) dgamma[j] += s;
}

extern "C" __global__ void swiglu_fwd(float* p, const float* gu, int rows, int f) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)rows * f) return;
    long long r = idx / f;
    int j = (int)(idx - r * f);
    float a = gu[r * 2 * f + j];
    float b = gu[r * 2 * f + f + j];
    p[idx] = a * sigmoid_f(a) * b;
}

extern "C" __global__ void swiglu_bwd(float* dgu, const float* dp, const float* gu, int rows, int f) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)rows * f) return;
    long long r = idx / f;
    int j = (int)(idx - r * f);
    float a = gu[r * 2 * f + j];
    float b = gu[r * 2 * f + f + j];
    float s = sigmoid_f(a);
    float silu = a * s;
    float g = dp[idx];
    dgu[r * 2 * f + j] = g * b * (s + silu * (1.0f - s));
    dgu[r * 2 * f + f + j] = g * silu;
}

// One block per row of `vocab` logits: loss = ln Σ e^(x − m) − (x_t − m); the row becomes
// scale · (softmax − onehot(t)).
extern "C" __global__ void cross_entropy(float* logits, float* losses, const unsigned char* targets,
                                         int rows, int vocab, float scale) {
    int row = blockIdx.x;
    if (row >= rows) return;
    float* x = logits + (long long)row * vocab;
    int t = (int)targets[row];
    float m = NEG_INF;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) m = fmaxf(m, x[j]);
    m = block_max(m);
    float shifted_target = x[t] - m;
    float z = 0.0f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) z += expf(x[j] - m);
    z = block_sum(z);  // ends with a barrier: every read of the row above happened before the writes
    if (threadIdx.x == 0) losses[row] = logf(z) - shifted_target;
    float inv = scale / z;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) x[j] = expf(x[j] - m) * inv;
    __syncthreads();
    if (threadIdx.x == 0) x[t] -= scale;
}

// AdamW over elements [start, start + len).
extern "C" __global__ void adamw(float* p, const float* g, float* m, float* v, int start, int len,
                                 float grad_scale, float decay, float step_size, float inv_sqrt_bc2,
                                 float b1, float b2, float eps) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) return;
    i += start;
    float gi = g[i] * grad_scale;
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) * inv_sqrt_bc2 + eps;
    p[i] = p[i] * decay - step_size * mi / denom;
}

// Log-domain scan, phase 1: every (window, chunk, channel) from a zero state. h holds the chunk-local
// state, decay the chunk-local product of (1 − z).
extern "C" __global__ void scan_chunks(float* h, float* decay, const float* zh, int windows, int t_len,
                                       int d, int chunk, int n_chunks) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)windows * n_chunks * d) return;
    int j = (int)(idx % d);
    long long rest = idx / d;
    int c = (int)(rest % n_chunks);
    int w = (int)(rest / n_chunks);
    int t0 = c * chunk;
    int t1 = min(t0 + chunk, t_len);
    float a_star = 0.0f, m = NEG_INF, s = 0.0f;
    for (int t = t0; t < t1; t++) {
        long long row = (long long)w * t_len + t;
        float k = zh[row * 2 * d + j];
        float ht = zh[row * 2 * d + d + j];
        a_star -= softplus_f(k);
        float log_b = -softplus_f(-k) + log_g(ht);
        float xx = log_b - a_star;
        if (xx > m) {
            s = s * expf(m - xx) + 1.0f;
            m = xx;
        } else {
            s += expf(xx - m);
        }
        h[row * d + j] = expf(a_star + m + logf(s));
        decay[row * d + j] = expf(a_star);
    }
}

// Phase 2: per (window, channel), make the last state of every chunk exact, in chunk order:
// h_end(c) += decay_end(c) · h_end(c − 1).
extern "C" __global__ void scan_carry(float* h, const float* decay, int windows, int t_len, int d,
                                      int chunk, int n_chunks) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)windows * d) return;
    int j = (int)(idx % d);
    int w = (int)(idx / d);
    long long base = (long long)w * t_len;
    for (int c = 1; c < n_chunks; c++) {
        long long prev_end = base + (long long)c * chunk - 1;
        long long end = base + min((c + 1) * chunk, t_len) - 1;
        h[end * d + j] += decay[end * d + j] * h[prev_end * d + j];
    }
}

// Phase 3: every other position of chunk c >= 1 adds decay · (exact last state of chunk c − 1).
extern "C" __global__ void scan_fix(float* h, const float* decay, int windows, int t_len, int d,
                                    int chunk) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)windows * t_len * d) return;
    int j = (int)(idx % d);
    long long row = idx / d;
    int t = (int)(row % t_len);
    int c = t / chunk;
    if (c == 0) return;
    int end = min((c + 1) * chunk, t_len) - 1;
    if (t == end) return;
    long long prev_end = row - t + (long long)c * chunk - 1;
    h[idx] += decay[idx] * h[prev_end * d + j];
}

// Backward of the recurrence, one thread per (window, channel), reverse in time.
extern "C" __global__ void scan_bwd(float* dzh, const float* dh, const float* zh, const float* h,
                                    int windows, int t_len, int d) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)windows * d) return;
    int j = (int)(idx % d);
    int w = (int)(idx / d);
    float carry = 0.0f;
    for (int t = t_len - 1; t >= 0; t--) {
        long long row = (long long)w * t_len + t;
        float k = zh[row * 2 * d + j];
        float ht = zh[row * 2 * d + d + j];
        float z = sigmoid_f(k);
        float g = g_act(ht);
        float hp = (t == 0) ? 0.0f : h[(row - 1) * d + j];
        float total = dh[row * d + j] + carry;
        float dz = total * (g - hp);
        dzh[row * 2 * d + j] = dz * z * (1.0f - z);
        dzh[row * 2 * d + d + j] = total * z * g_grad(ht);
        carry = total * (1.0f - z);
    }
}

// c[t, j] = Σ_{k < kmax, k <= t} weff[k, j] u[t − k, j], one thread per element.
extern "C" __global__ void conv_fwd(float* c, const float* u, const float* weff, int windows, int t_len,
                                    int d, int kmax) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)windows * t_len * d) return;
    int j = (int)(idx % d);
    long long row = idx / d;
    int t = (int)(row % t_len);
    int kk = min(kmax, t + 1);
    float acc = 0.0f;
    for (int k = 0; k < kk; k++) acc += weff[k * d + j] * u[(row - k) * d + j];
    c[idx] = acc;
}

// du[s, j] = Σ_{k < kmax, s + k < t_len} weff[k, j] dc[s + k, j] (overwrites).
extern "C" __global__ void conv_bwd_du(float* du, const float* dc, const float* weff, int windows,
                                       int t_len, int d, int kmax) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)windows * t_len * d) return;
    int j = (int)(idx % d);
    long long row = idx / d;
    int s = (int)(row % t_len);
    int kk = min(kmax, t_len - s);
    float acc = 0.0f;
    for (int k = 0; k < kk; k++) acc += weff[k * d + j] * dc[(row + k) * d + j];
    du[idx] = acc;
}

// dweff[k, j] += Σ_rows dc[t, j] u[t − k, j] (t − k in the same window); grid (ceil(d/32), kmax),
// block (32, 8).
extern "C" __global__ void conv_bwd_dw(float* dweff, const float* dc, const float* u, int windows,
                                       int t_len, int d) {
    int j = blockIdx.x * 32 + threadIdx.x;
    int k = blockIdx.y;
    int rows = windows * t_len;
    float acc = 0.0f;
    if (j < d) {
        for (int r = threadIdx.y; r < rows; r += blockDim.y) {
            int t = r % t_len;
            if (t >= k) acc += dc[(long long)r * d + j] * u[(long long)(r - k) * d + j];
        }
    }
    float s = column_sum(acc);
    if (threadIdx.y == 0 && j < d) dweff[k * d + j] += s;
}

// ---- Whole-model glue (src/model): fill, axpby, embedding, slot softmax, sum of squares, decode step.

extern "C" __global__ void fill(float* y, int n, float value) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = value;
}

// y[y_off + i] = alpha x[x_off + i] + beta y[y_off + i]; beta = 0 ignores the old y (even NaN).
extern "C" __global__ void axpby(float* y, const float* x, int y_off, int x_off, int n, float alpha,
                                 float beta) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = alpha * x[x_off + i];
    if (beta != 0.0f) v += beta * y[y_off + i];
    y[y_off + i] = v;
}

// h[j] = (1 - sigma(k_j)) h[j] + sigma(k_j) g(h~_j), zh = [k | h~].
extern "C" __global__ void scan_step(float* h, const float* zh, int d) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    float z = sigmoid_f(zh[j]);
    h[j] = (1.0f - z) * h[j] + z * g_act(zh[d + j]);
}

// x[r, j] = table[tokens[r], j], one thread per element of x.
extern "C" __global__ void embed_fwd(float* x, const float* table, const unsigned char* tokens,
                                     int rows, int d) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * d) return;
    int r = i / d, j = i - r * d;
    x[i] = table[(long long)tokens[r] * d + j];
}

// dtable[v, j] += sum over rows r with tokens[r] = v of dx[r, j], in row order: one block per table
// row, threads over columns (no atomics, deterministic).
extern "C" __global__ void embed_bwd(float* dtable, const float* dx, const unsigned char* tokens,
                                     int rows, int d) {
    int v = blockIdx.x;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float acc = 0.0f;
        for (int r = 0; r < rows; r++) {
            if ((int)tokens[r] == v) acc += dx[(long long)r * d + j];
        }
        dtable[(long long)v * d + j] += acc;
    }
}

// Row-wise softmax in place, one block per row.
extern "C" __global__ void softmax_fwd(float* x, int rows, int s) {
    int row = blockIdx.x;
    if (row >= rows) return;
    float* xr = x + (long long)row * s;
    float m = NEG_INF;
    for (int j = threadIdx.x; j < s; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_max(m);
    float z = 0.0f;
    for (int j = threadIdx.x; j < s; j += blockDim.x) {
        float e = expf(xr[j] - m);
        xr[j] = e;
        z += e;
    }
    z = block_sum(z);
    float inv = 1.0f / z;
    for (int j = threadIdx.x; j < s; j += blockDim.x) xr[j] *= inv;
}

// dalpha <- scale * alpha * (dalpha - sum(alpha * dalpha)) per row, one block per row.
extern "C" __global__ void softmax_bwd(float* dalpha, const float* alpha, int rows, int s,
                                       float scale) {
    int row = blockIdx.x;
    if (row >= rows) return;
    float* g = dalpha + (long long)row * s;
    const float* a = alpha + (long long)row * s;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < s; j += blockDim.x) dot += g[j] * a[j];
    dot = block_sum(dot);
    for (int j = threadIdx.x; j < s; j += blockDim.x) g[j] = a[j] * (g[j] - dot) * scale;
}

// acc[block] += sum of x[i]^2 over i = block * blockDim + tid + k * gridDim * blockDim.
extern "C" __global__ void sum_squares(float* acc, const float* x, int n) {
    float s = 0.0f;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        s += x[i] * x[i];
    }
    s = block_sum(s);
    if (threadIdx.x == 0) acc[blockIdx.x] += s;
}
