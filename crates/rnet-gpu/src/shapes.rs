//! Shape checks of the [`Backend`](crate::Backend) operations, in one place for every backend.
//!
//! Each function takes an operation's buffer lengths (one array, in the order the trait method
//! takes the buffers; a plain length where there is one buffer) and its dimensions, rejects a zero
//! width, an overflowing element count or a buffer that is too short with the
//! [`BackendError::Shape`] of that operation, and returns the element counts the backend's launch
//! code needs. The CPU, CUDA and Vulkan backends all call these, so a shape is accepted or
//! rejected — with the same message — whichever device runs it; each backend only adds its own
//! limits (31- or 32-bit indexing, grid sizes) on top.

use crate::{BackendError, VOCAB, check_lens, check_width, product};

/// Element counts of an operation on `[rows, w]` tensors next to `[rows, 2w]` ones (SwiGLU's `gu`,
/// the minGRU scan's `zh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gated {
    /// Elements of the `[rows, w]` tensors.
    pub n: usize,
    /// Elements of the `[rows, 2w]` tensors (`2n`).
    pub n2: usize,
}

/// Element counts of the depthwise convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Conv {
    /// Elements of the activations `[windows·t_len, d]`.
    pub n: usize,
    /// Elements of the merged kernel `[kmax, d]`.
    pub kd: usize,
}

/// Element counts of the embedding lookup and its backward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Embed {
    /// Elements of the activations `[rows, d]`.
    pub n: usize,
    /// Elements of the table `[VOCAB, d]`.
    pub nt: usize,
}

/// How the device backends split the minGRU forward scan into chunks (the CPU engine's split).
#[cfg(any(feature = "cuda", feature = "vulkan"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chunks {
    /// Rows per chunk, clamped to `1..=t_len`.
    pub chunk: usize,
    /// Chunks per window.
    pub n_chunks: usize,
    /// Work items of the first phase: `windows · n_chunks · d`.
    pub phase1: usize,
}

/// [`Backend::rmsnorm_forward`](crate::Backend::rmsnorm_forward): returns `rows · d`.
pub(crate) fn rmsnorm_forward(
    lens: [usize; 4],
    rows: usize,
    d: usize,
) -> Result<usize, BackendError> {
    let [y, rinv, x, gamma] = lens;
    let op = "rmsnorm_forward";
    check_width(op, "d", d)?;
    let n = product(op, &[rows, d])?;
    check_lens(op, &[("y", y, n), ("rinv", rinv, rows), ("x", x, n), ("gamma", gamma, d)])?;
    Ok(n)
}

/// [`Backend::rmsnorm_backward`](crate::Backend::rmsnorm_backward): returns `rows · d`.
pub(crate) fn rmsnorm_backward(
    lens: [usize; 6],
    rows: usize,
    d: usize,
) -> Result<usize, BackendError> {
    let [dx, dgamma, dy, x, rinv, gamma] = lens;
    let op = "rmsnorm_backward";
    check_width(op, "d", d)?;
    let n = product(op, &[rows, d])?;
    check_lens(
        op,
        &[
            ("dx", dx, n),
            ("dgamma", dgamma, d),
            ("dy", dy, n),
            ("x", x, n),
            ("rinv", rinv, rows),
            ("gamma", gamma, d),
        ],
    )?;
    Ok(n)
}

/// `[rows, f]` next to `[rows, 2f]` for SwiGLU, after the width check.
fn swiglu(op: &'static str, rows: usize, f: usize) -> Result<Gated, BackendError> {
    check_width(op, "f", f)?;
    let n = product(op, &[rows, f])?;
    let n2 = product(op, &[n, 2])?;
    Ok(Gated { n, n2 })
}

/// [`Backend::swiglu_forward`](crate::Backend::swiglu_forward).
pub(crate) fn swiglu_forward(
    lens: [usize; 2],
    rows: usize,
    f: usize,
) -> Result<Gated, BackendError> {
    let [p, gu] = lens;
    let op = "swiglu_forward";
    let s = swiglu(op, rows, f)?;
    check_lens(op, &[("p", p, s.n), ("gu", gu, s.n2)])?;
    Ok(s)
}

/// [`Backend::swiglu_backward`](crate::Backend::swiglu_backward).
pub(crate) fn swiglu_backward(
    lens: [usize; 3],
    rows: usize,
    f: usize,
) -> Result<Gated, BackendError> {
    let [dgu, dp, gu] = lens;
    let op = "swiglu_backward";
    let s = swiglu(op, rows, f)?;
    check_lens(op, &[("dgu", dgu, s.n2), ("dp", dp, s.n), ("gu", gu, s.n2)])?;
    Ok(s)
}

/// [`Backend::cross_entropy`](crate::Backend::cross_entropy): returns `rows · VOCAB`.
pub(crate) fn cross_entropy(lens: [usize; 3], rows: usize) -> Result<usize, BackendError> {
    let [logits, losses, targets] = lens;
    let op = "cross_entropy";
    let n = product(op, &[rows, VOCAB])?;
    check_lens(op, &[("logits", logits, n), ("losses", losses, rows), ("targets", targets, rows)])?;
    Ok(n)
}

/// `[windows·t_len, d]` next to `[windows·t_len, 2d]` for the scan, after the width checks.
fn scan(op: &'static str, windows: usize, t_len: usize, d: usize) -> Result<Gated, BackendError> {
    check_width(op, "t_len", t_len)?;
    check_width(op, "d", d)?;
    let n = product(op, &[windows, t_len, d])?;
    let n2 = product(op, &[n, 2])?;
    Ok(Gated { n, n2 })
}

/// [`Backend::scan_forward`](crate::Backend::scan_forward) (the chunk size is not a shape: see
/// [`scan_chunks`]).
pub(crate) fn scan_forward(
    lens: [usize; 3],
    windows: usize,
    t_len: usize,
    d: usize,
) -> Result<Gated, BackendError> {
    let [h, decay, zh] = lens;
    let op = "scan_forward";
    let s = scan(op, windows, t_len, d)?;
    check_lens(op, &[("h", h, s.n), ("decay", decay, s.n), ("zh", zh, s.n2)])?;
    Ok(s)
}

/// The chunking of a [`scan_forward`]-checked shape: the CPU engine's clamping of `chunk` to
/// `1..=t_len`, so every backend uses the same chunks.
#[cfg(any(feature = "cuda", feature = "vulkan"))]
pub(crate) fn scan_chunks(
    windows: usize,
    t_len: usize,
    d: usize,
    chunk: usize,
) -> Result<Chunks, BackendError> {
    let chunk = chunk.clamp(1, t_len);
    let n_chunks = t_len.div_ceil(chunk);
    let phase1 = product("scan_forward", &[windows, n_chunks, d])?;
    Ok(Chunks { chunk, n_chunks, phase1 })
}

/// [`Backend::scan_backward`](crate::Backend::scan_backward).
pub(crate) fn scan_backward(
    lens: [usize; 4],
    windows: usize,
    t_len: usize,
    d: usize,
) -> Result<Gated, BackendError> {
    let [dzh, dh, zh, h] = lens;
    let op = "scan_backward";
    let s = scan(op, windows, t_len, d)?;
    check_lens(op, &[("dzh", dzh, s.n2), ("dh", dh, s.n), ("zh", zh, s.n2), ("h", h, s.n)])?;
    Ok(s)
}

/// `[windows·t_len, d]` and `[kmax, d]` for the convolution, after the width checks.
fn conv(
    op: &'static str,
    windows: usize,
    t_len: usize,
    d: usize,
    kmax: usize,
) -> Result<Conv, BackendError> {
    check_width(op, "t_len", t_len)?;
    check_width(op, "d", d)?;
    let n = product(op, &[windows, t_len, d])?;
    let kd = product(op, &[kmax, d])?;
    Ok(Conv { n, kd })
}

/// [`Backend::conv_forward`](crate::Backend::conv_forward).
pub(crate) fn conv_forward(
    lens: [usize; 3],
    windows: usize,
    t_len: usize,
    d: usize,
    kmax: usize,
) -> Result<Conv, BackendError> {
    let [c, u, weff] = lens;
    let op = "conv_forward";
    let s = conv(op, windows, t_len, d, kmax)?;
    check_lens(op, &[("c", c, s.n), ("u", u, s.n), ("weff", weff, s.kd)])?;
    Ok(s)
}

/// [`Backend::conv_backward`](crate::Backend::conv_backward).
pub(crate) fn conv_backward(
    lens: [usize; 5],
    windows: usize,
    t_len: usize,
    d: usize,
    kmax: usize,
) -> Result<Conv, BackendError> {
    let [du, dweff, dc, u, weff] = lens;
    let op = "conv_backward";
    let s = conv(op, windows, t_len, d, kmax)?;
    check_lens(
        op,
        &[
            ("du", du, s.n),
            ("dweff", dweff, s.kd),
            ("dc", dc, s.n),
            ("u", u, s.n),
            ("weff", weff, s.kd),
        ],
    )?;
    Ok(s)
}

/// `[rows, d]` and `[VOCAB, d]` for the embedding, after the width check.
fn embed(op: &'static str, rows: usize, d: usize) -> Result<Embed, BackendError> {
    check_width(op, "d", d)?;
    let n = product(op, &[rows, d])?;
    let nt = product(op, &[VOCAB, d])?;
    Ok(Embed { n, nt })
}

/// [`Backend::embed_forward`](crate::Backend::embed_forward).
pub(crate) fn embed_forward(
    lens: [usize; 3],
    rows: usize,
    d: usize,
) -> Result<Embed, BackendError> {
    let [x, table, tokens] = lens;
    let op = "embed_forward";
    let s = embed(op, rows, d)?;
    check_lens(op, &[("x", x, s.n), ("table", table, s.nt), ("tokens", tokens, rows)])?;
    Ok(s)
}

/// [`Backend::embed_backward`](crate::Backend::embed_backward).
pub(crate) fn embed_backward(
    lens: [usize; 3],
    rows: usize,
    d: usize,
) -> Result<Embed, BackendError> {
    let [dtable, dx, tokens] = lens;
    let op = "embed_backward";
    let s = embed(op, rows, d)?;
    check_lens(op, &[("dtable", dtable, s.nt), ("dx", dx, s.n), ("tokens", tokens, rows)])?;
    Ok(s)
}

/// [`Backend::softmax_forward`](crate::Backend::softmax_forward): returns `rows · s`.
pub(crate) fn softmax_forward(x: usize, rows: usize, s: usize) -> Result<usize, BackendError> {
    let op = "softmax_forward";
    check_width(op, "s", s)?;
    let n = product(op, &[rows, s])?;
    check_lens(op, &[("x", x, n)])?;
    Ok(n)
}

/// [`Backend::softmax_backward`](crate::Backend::softmax_backward): returns `rows · s`.
pub(crate) fn softmax_backward(
    lens: [usize; 2],
    rows: usize,
    s: usize,
) -> Result<usize, BackendError> {
    let [dalpha, alpha] = lens;
    let op = "softmax_backward";
    check_width(op, "s", s)?;
    let n = product(op, &[rows, s])?;
    check_lens(op, &[("dalpha", dalpha, n), ("alpha", alpha, n)])?;
    Ok(n)
}

/// [`Backend::sum_squares`](crate::Backend::sum_squares): the accumulator has at least one slot.
pub(crate) fn sum_squares(acc: usize) -> Result<(), BackendError> {
    check_lens("sum_squares", &[("acc", acc, 1)])
}

/// [`Backend::scan_step`](crate::Backend::scan_step): returns `2d`, the length of `zh`.
pub(crate) fn scan_step(lens: [usize; 2], d: usize) -> Result<usize, BackendError> {
    let [h, zh] = lens;
    let op = "scan_step";
    check_width(op, "d", d)?;
    let d2 = product(op, &[d, 2])?;
    check_lens(op, &[("h", h, d), ("zh", zh, d2)])?;
    Ok(d2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detail of a shape error of `op` (panics on anything else).
    fn detail<T: std::fmt::Debug>(r: Result<T, BackendError>, op: &str) -> String {
        match r {
            Err(BackendError::Shape { op: o, detail }) if o == op => detail,
            other => panic!("expected a {op} shape error, got {other:?}"),
        }
    }

    #[test]
    fn row_ops_return_their_element_counts() {
        assert_eq!(rmsnorm_forward([8, 2, 8, 4], 2, 4).unwrap(), 8);
        assert_eq!(rmsnorm_backward([8, 4, 8, 8, 2, 4], 2, 4).unwrap(), 8);
        assert_eq!(swiglu_forward([6, 12], 2, 3).unwrap(), Gated { n: 6, n2: 12 });
        assert_eq!(swiglu_backward([12, 6, 12], 2, 3).unwrap(), Gated { n: 6, n2: 12 });
        assert_eq!(cross_entropy([2 * VOCAB, 2, 2], 2).unwrap(), 2 * VOCAB);
        assert_eq!(softmax_forward(6, 2, 3).unwrap(), 6);
        assert_eq!(softmax_backward([6, 6], 2, 3).unwrap(), 6);
        assert_eq!(embed_forward([6, 3 * VOCAB, 2], 2, 3).unwrap(), Embed { n: 6, nt: 3 * VOCAB });
        assert_eq!(embed_backward([3 * VOCAB, 6, 2], 2, 3).unwrap(), Embed { n: 6, nt: 3 * VOCAB });
        assert_eq!(scan_step([3, 6], 3).unwrap(), 6);
        sum_squares(1).unwrap();
        // Longer buffers are fine: the tail is left alone.
        assert_eq!(softmax_forward(100, 2, 3).unwrap(), 6);
    }

    #[test]
    fn window_ops_return_their_element_counts() {
        assert_eq!(scan_forward([12, 12, 24], 2, 3, 2).unwrap(), Gated { n: 12, n2: 24 });
        assert_eq!(scan_backward([24, 12, 24, 12], 2, 3, 2).unwrap(), Gated { n: 12, n2: 24 });
        assert_eq!(conv_forward([12, 12, 8], 2, 3, 2, 4).unwrap(), Conv { n: 12, kd: 8 });
        assert_eq!(conv_backward([12, 8, 12, 12, 8], 2, 3, 2, 4).unwrap(), Conv { n: 12, kd: 8 });
        // kmax = 0 and no windows are legal shapes with nothing to do.
        assert_eq!(conv_forward([0, 0, 0], 0, 3, 2, 0).unwrap(), Conv { n: 0, kd: 0 });
    }

    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    #[test]
    fn scan_chunking_clamps_like_the_cpu_engine() {
        assert_eq!(scan_chunks(2, 10, 3, 4).unwrap(), Chunks { chunk: 4, n_chunks: 3, phase1: 18 });
        assert_eq!(
            scan_chunks(2, 10, 3, 0).unwrap(),
            Chunks { chunk: 1, n_chunks: 10, phase1: 60 }
        );
        assert_eq!(scan_chunks(1, 5, 2, 99).unwrap(), Chunks { chunk: 5, n_chunks: 1, phase1: 2 });
    }

    #[test]
    fn errors_keep_their_operation_and_message() {
        let op = "rmsnorm_forward";
        assert_eq!(detail(rmsnorm_forward([8, 2, 8, 4], 2, 0), op), "d must be positive");
        assert_eq!(
            detail(rmsnorm_forward([8, 2, 8, 3], 2, 4), op),
            "gamma needs 4 elements, buffer has 3"
        );
        assert_eq!(
            detail(rmsnorm_backward([7, 4, 8, 8, 2, 4], 2, 4), "rmsnorm_backward"),
            "dx needs 8 elements, buffer has 7"
        );
        assert_eq!(detail(swiglu_forward([6, 12], 2, 0), "swiglu_forward"), "f must be positive");
        assert_eq!(
            detail(swiglu_backward([12, 6, 11], 2, 3), "swiglu_backward"),
            "gu needs 12 elements, buffer has 11"
        );
        assert_eq!(
            detail(cross_entropy([2 * VOCAB, 2, 1], 2), "cross_entropy"),
            "targets needs 2 elements, buffer has 1"
        );
        assert_eq!(
            detail(cross_entropy([0, 0, 0], usize::MAX), "cross_entropy"),
            format!("dimensions {:?} overflow", [usize::MAX, VOCAB])
        );
        assert_eq!(
            detail(scan_forward([12, 12, 24], 2, 0, 2), "scan_forward"),
            "t_len must be positive"
        );
        assert_eq!(
            detail(scan_forward([12, 12, 24], 2, 3, 0), "scan_forward"),
            "d must be positive"
        );
        assert_eq!(
            detail(scan_backward([24, 12, 24, 11], 2, 3, 2), "scan_backward"),
            "h needs 12 elements, buffer has 11"
        );
        assert_eq!(
            detail(conv_forward([12, 12, 7], 2, 3, 2, 4), "conv_forward"),
            "weff needs 8 elements, buffer has 7"
        );
        assert_eq!(
            detail(conv_backward([12, 7, 12, 12, 8], 2, 3, 2, 4), "conv_backward"),
            "dweff needs 8 elements, buffer has 7"
        );
        assert_eq!(
            detail(conv_backward([0, 0, 0, 0, 0], usize::MAX, 2, 2, 1), "conv_backward"),
            format!("dimensions {:?} overflow", [usize::MAX, 2, 2])
        );
        assert_eq!(
            detail(embed_forward([6, 3 * VOCAB, 1], 2, 3), "embed_forward"),
            "tokens needs 2 elements, buffer has 1"
        );
        assert_eq!(
            detail(embed_backward([3 * VOCAB - 1, 6, 2], 2, 3), "embed_backward"),
            format!("dtable needs {} elements, buffer has {}", 3 * VOCAB, 3 * VOCAB - 1)
        );
        assert_eq!(detail(softmax_forward(6, 2, 0), "softmax_forward"), "s must be positive");
        assert_eq!(
            detail(softmax_backward([6, 5], 2, 3), "softmax_backward"),
            "alpha needs 6 elements, buffer has 5"
        );
        assert_eq!(detail(sum_squares(0), "sum_squares"), "acc needs 1 elements, buffer has 0");
        assert_eq!(detail(scan_step([2, 6], 3), "scan_step"), "h needs 3 elements, buffer has 2");
        assert_eq!(detail(scan_step([3, 6], 0), "scan_step"), "d must be positive");
    }
}
