// Helpers shared by every ResonanceNet WGSL kernel (src/vulkan/kernels.rs prepends this file to each
// kernel file). They mirror rnet-training's `real.rs` / `scan.rs` and the CUDA port (kernels.cu).
// Dimensions are u32: the host checks every element count fits in 31 bits before dispatching.
// Kernels that cover more workgroups than one grid dimension allows take a two-dimensional grid and
// flatten it with `flat_group`; workgroups past the end return early (uniformly).

// The most negative finite f32: "minus infinity" for running maxima of finite values.
const NEG_BIG: f32 = -3.40282e38;

fn flat_group(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}

fn sigmoid_f(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// ln(1 + u) accurate for small u (WGSL has no log1p): with w = 1 + u rounded, ln(w) · u / (w − 1)
// cancels the rounding of w.
fn log1p_f(u: f32) -> f32 {
    let w = 1.0 + u;
    if (w == 1.0) {
        return u;
    }
    return log(w) * (u / (w - 1.0));
}

// softplus(x) = ln(1 + e^x), stable for large |x|.
fn softplus_f(x: f32) -> f32 {
    return max(x, 0.0) + log1p_f(exp(-abs(x)));
}

// minGRU candidate activation g(x) = x + 1/2 for x >= 0, sigmoid(x) otherwise.
fn g_act(x: f32) -> f32 {
    if (x >= 0.0) {
        return x + 0.5;
    }
    return sigmoid_f(x);
}

fn g_grad(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0;
    }
    let s = sigmoid_f(x);
    return s * (1.0 - s);
}

fn log_g(x: f32) -> f32 {
    if (x >= 0.0) {
        return log(x + 0.5);
    }
    return -softplus_f(-x);
}
