//! Buffers on cache-line boundaries: vectors that own whole line pairs ([`Lines`]: `f32`, and the
//! int8 engines' f16 conv history) and the packed int8 weights ([`LineBytes`]).
//!
//! The decode threads of one session write disjoint ranges of shared vectors (the residual
//! stream, the conv output, the SwiGLU activations, the ring buffer, the logits), split at
//! multiples of 16 elements so that each participant's range covers whole 64-byte lines. That
//! holds only if the vector itself starts on a line: a `Vec<f32>` is aligned to 4 or 16 bytes,
//! and then the line at every split point holds elements of both participants, which write it in
//! the same phase and pass it back and forth between their cores (false sharing). A [`LineBuf`]
//! starts on a 128-byte boundary (the adjacent-line prefetcher of x86 cores fetches lines in
//! 128-byte pairs) and owns its allocation up to the next such boundary, so neither a split point
//! inside it nor a neighbouring allocation shares a line pair with another writer.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// Alignment and allocation granule of a [`Lines`] buffer, in bytes.
pub const LINE_PAIR: usize = 128;

/// One aligned block of the allocation.
#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Block([u8; LINE_PAIR]);

/// The element types a [`Lines`] buffer holds: plain numbers whose all-zero bit pattern is zero
/// and for which every bit pattern is a valid value.
pub trait LineElem: Copy + private::Sealed {}
impl LineElem for f32 {}
/// IEEE binary16 values, as their bits (the int8 engines' conv history).
impl LineElem for u16 {}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u16 {}
}

/// A fixed-length buffer of `T` aligned to [`LINE_PAIR`] bytes and padded to a multiple of it;
/// it dereferences to a slice of exactly its length.
#[derive(Clone)]
pub struct Lines<T> {
    blocks: Vec<Block>,
    len: usize,
    elem: PhantomData<T>,
}

/// An `f32` [`Lines`] buffer: the decode step's shared vectors and scratch.
pub type LineBuf = Lines<f32>;

impl<T: LineElem> Lines<T> {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        let blocks = (len * size_of::<T>()).div_ceil(LINE_PAIR);
        Self { blocks: vec![Block([0; LINE_PAIR]); blocks], len, elem: PhantomData }
    }
}

impl<T: LineElem> Deref for Lines<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `Block` is `repr(C)` over 128 bytes with size = alignment = 128, so the blocks
        // are `128 · blocks.len() ≥ len · size_of::<T>()` contiguous initialised bytes, aligned
        // for `T`, and every bit pattern is a valid `T` (`LineElem`).
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: LineElem> DerefMut for Lines<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<T>(), self.len) }
    }
}

impl<T: LineElem + std::fmt::Debug> std::fmt::Debug for Lines<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Bytes per line of a [`LineBytes`] buffer: one cache line, the widest load of the kernels.
pub const LINE: usize = 64;

/// One aligned line of a [`LineBytes`] buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
struct Line([u8; LINE]);

/// A fixed byte buffer on cache-line boundaries, for the packed int8 weights: every piece the
/// kernels load (64, 32 or 16 bytes at multiples of its size from the start) lies within one
/// line. A `Vec<u8>` of that size comes from `mmap` 16 bytes past a page boundary, and then
/// every 64-byte load of the AVX-512 kernel spans two lines (and every other 32-byte one).
#[derive(Clone, PartialEq, Eq)]
pub struct LineBytes {
    lines: Vec<Line>,
    len: usize,
}

impl LineBytes {
    /// `len` zero bytes on line boundaries (padded to a whole line), to be written in place.
    pub fn zeroed(len: usize) -> Self {
        Self { lines: vec![Line([0; LINE]); len.div_ceil(LINE)], len }
    }
}

impl std::ops::Deref for LineBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `Line` is `repr(C)` over `[u8; 64]` with size = alignment = 64, so the lines
        // are `64 · lines.len() ≥ len` contiguous initialised bytes.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.len) }
    }
}

impl std::ops::DerefMut for LineBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

impl std::fmt::Debug for LineBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LineBytes({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::{LINE, LINE_PAIR, LineBuf, LineBytes, Lines};

    #[test]
    fn starts_on_a_line_pair_holds_its_length_and_pads_to_the_next_pair() {
        for len in [0, 1, 31, 32, 33, 384, 1000] {
            let mut b = LineBuf::zeros(len);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_ptr() as usize % LINE_PAIR, 0);
            assert_eq!(b.blocks.len() * LINE_PAIR, (4 * len).div_ceil(LINE_PAIR) * LINE_PAIR);
            assert!(b.iter().all(|&v| v == 0.0));
            for (i, v) in b.iter_mut().enumerate() {
                *v = i as f32;
            }
            let c = b.clone();
            assert_eq!(&c[..], &b[..]);
            let h = Lines::<u16>::zeros(len);
            assert_eq!((h.len(), h.as_ptr() as usize % LINE_PAIR), (len, 0));
            assert_eq!(h.blocks.len() * LINE_PAIR, (2 * len).div_ceil(LINE_PAIR) * LINE_PAIR);
        }
    }

    #[test]
    fn line_bytes_start_on_a_line_and_hold_the_bytes() {
        for len in [0, 1, 63, 64, 65, 1000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut b = LineBytes::zeroed(len);
            assert!(b.iter().all(|&v| v == 0));
            b.copy_from_slice(&bytes);
            assert_eq!(&b[..], &bytes[..]);
            assert_eq!(b.as_ptr() as usize % LINE, 0);
            assert_eq!(b.clone(), b);
        }
    }
}
