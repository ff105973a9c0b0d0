//! The three matrix products of the model (as in `rnet_training::linalg`) as [`MatmulSpec`]s on
//! row-major operands: `Y = X·Wᵀ` (forward), `Y = X·W` (input gradient), `dW += dYᵀ·X` (weight
//! gradient). The column-block variants address one half of a fused `[rows, 2w]` activation
//! (`gru` `[k | h̃]`, SwiGLU `[gate | up]`) through its row stride and offset.

use crate::MatmulSpec;

/// `Y [n, out] = α·X [n, inp] · W [out, inp]ᵀ + β·Y`.
pub(crate) fn xwt(n: usize, inp: usize, out: usize, alpha: f32, beta: f32) -> MatmulSpec {
    MatmulSpec::new(n, out, inp, false, true).scaled(alpha, beta)
}

/// `Y [n, out] = X [n, inp] · W [inp, out] + β·Y`.
pub(crate) fn xw(n: usize, inp: usize, out: usize, beta: f32) -> MatmulSpec {
    MatmulSpec::new(n, out, inp, false, false).scaled(1.0, beta)
}

/// `dW [out, inp] += dY [n, out]ᵀ · X [n, inp]`.
pub(crate) fn dytx(n: usize, out: usize, inp: usize) -> MatmulSpec {
    MatmulSpec::new(out, inp, n, true, false).scaled(1.0, 1.0)
}

/// [`xwt`] into columns `col..col + out` of a `Y` with rows of `ld` values.
pub(crate) fn xwt_cols(n: usize, inp: usize, out: usize, ld: usize, col: usize) -> MatmulSpec {
    let mut s = xwt(n, inp, out, 1.0, 0.0);
    s.ldc = ld;
    s.offset_c = col;
    s
}

/// [`xw`] reading `X` from columns `col..col + inp` of rows of `ld` values.
pub(crate) fn xw_cols(
    n: usize,
    inp: usize,
    out: usize,
    ld: usize,
    col: usize,
    beta: f32,
) -> MatmulSpec {
    let mut s = xw(n, inp, out, beta);
    s.lda = ld;
    s.offset_a = col;
    s
}

/// [`dytx`] reading `dY` from columns `col..col + out` of rows of `ld` values.
pub(crate) fn dytx_cols(n: usize, out: usize, inp: usize, ld: usize, col: usize) -> MatmulSpec {
    let mut s = dytx(n, out, inp);
    s.lda = ld;
    s.offset_a = col;
    s
}
