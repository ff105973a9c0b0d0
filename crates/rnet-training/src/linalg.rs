//! Matrix products on row-major buffers, all through the `gemm` crate (runtime-dispatched SIMD
//! kernels, threads from the rayon pool). Weights are stored `[out, in]` and applied as `y = W x`, so
//! a batch of row vectors `X [rows, in]` maps to `Y = X Wᵀ [rows, out]`.

use crate::real::Real;

/// `dst[m×n] (+)= scale · lhs[m×k] · rhs[k×n]` with arbitrary element strides (`rs` = step between
/// rows, `cs` = step between columns). When `accumulate` is false `dst` is overwritten.
///
/// Panics if a buffer is too short for the shape and strides given; the engine only calls this with
/// shapes it allocated itself.
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided<R: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [R],
    dst_rs: usize,
    dst_cs: usize,
    accumulate: bool,
    lhs: &[R],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[R],
    rhs_rs: usize,
    rhs_cs: usize,
    scale: R,
) {
    if m == 0 || n == 0 {
        return;
    }
    let need = |rows: usize, cols: usize, rs: usize, cs: usize| {
        if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 }
    };
    assert!(dst.len() >= need(m, n, dst_rs, dst_cs), "gemm: dst too short");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_rs + j * dst_cs] = R::ZERO;
                }
            }
        }
        return;
    }
    assert!(lhs.len() >= need(m, k, lhs_rs, lhs_cs), "gemm: lhs too short");
    assert!(rhs.len() >= need(k, n, rhs_rs, rhs_cs), "gemm: rhs too short");
    let par = if m * n * k >= 32 * 32 * 32 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every index the product touches (the largest is
    // `(rows-1)·rs + (cols-1)·cs`) inside the respective slices; `dst` is borrowed mutably and so
    // cannot alias `lhs` or `rhs`; `R` is `f32` or `f64`, both supported by `gemm`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            R::ONE,
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

/// Forward projection: `y[rows×out] (+)= scale · x[rows×in] · wᵀ` for a weight `w [out, in]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_xwt<R: Real>(
    y: &mut [R],
    x: &[R],
    w: &[R],
    rows: usize,
    d_in: usize,
    d_out: usize,
    accumulate: bool,
    scale: R,
) {
    gemm_strided(rows, d_out, d_in, y, d_out, 1, accumulate, x, d_in, 1, w, 1, d_in, scale);
}

/// Input gradient: `dx[rows×in] (+)= scale · dy[rows×out] · w` for a weight `w [out, in]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_xw<R: Real>(
    dx: &mut [R],
    dy: &[R],
    w: &[R],
    rows: usize,
    d_out: usize,
    d_in: usize,
    accumulate: bool,
    scale: R,
) {
    gemm_strided(rows, d_in, d_out, dx, d_in, 1, accumulate, dy, d_out, 1, w, d_in, 1, scale);
}

/// Weight gradient: `dw[out×in] (+)= scale · dyᵀ · x` for `dy [rows, out]`, `x [rows, in]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_dytx<R: Real>(
    dw: &mut [R],
    dy: &[R],
    x: &[R],
    rows: usize,
    d_out: usize,
    d_in: usize,
    accumulate: bool,
    scale: R,
) {
    gemm_strided(d_out, d_in, rows, dw, d_in, 1, accumulate, dy, 1, d_out, x, d_in, 1, scale);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(a: &[f64], r: usize, c: usize) -> Vec<f64> {
        let mut t = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = a[i * c + j];
            }
        }
        t
    }

    #[test]
    fn three_products_match_naive() {
        let mut rng = crate::rng::Rng::new(1);
        let (rows, din, dout) = (37, 19, 23);
        let x: Vec<f64> = (0..rows * din).map(|_| rng.normal()).collect();
        let w: Vec<f64> = (0..dout * din).map(|_| rng.normal()).collect();
        let dy: Vec<f64> = (0..rows * dout).map(|_| rng.normal()).collect();

        let mut y = vec![1.0; rows * dout];
        matmul_xwt(&mut y, &x, &w, rows, din, dout, true, 2.0);
        let want = naive(&x, &transpose(&w, dout, din), rows, din, dout);
        for (a, b) in y.iter().zip(&want) {
            assert!((a - (1.0 + 2.0 * b)).abs() < 1e-10);
        }

        let mut dx = vec![0.0; rows * din];
        matmul_xw(&mut dx, &dy, &w, rows, dout, din, false, 1.0);
        let want = naive(&dy, &w, rows, dout, din);
        for (a, b) in dx.iter().zip(&want) {
            assert!((a - b).abs() < 1e-10);
        }

        let mut dw = vec![0.0; dout * din];
        matmul_dytx(&mut dw, &dy, &x, rows, dout, din, false, 1.0);
        let want = naive(&transpose(&dy, rows, dout), &x, dout, rows, din);
        for (a, b) in dw.iter().zip(&want) {
            assert!((a - b).abs() < 1e-10);
        }
    }
}
