//! `f32` buffers that own whole cache-line pairs.
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

use std::ops::{Deref, DerefMut};

/// Alignment and allocation granule of a [`LineBuf`], in bytes.
pub const LINE_PAIR: usize = 128;

/// One aligned block of the allocation.
#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Block([f32; LINE_PAIR / 4]);

/// A fixed-length `f32` buffer aligned to [`LINE_PAIR`] bytes and padded to a multiple of it;
/// it dereferences to a slice of exactly its length.
#[derive(Clone)]
pub struct LineBuf {
    blocks: Vec<Block>,
    len: usize,
}

impl LineBuf {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        let per_block = LINE_PAIR / 4;
        Self { blocks: vec![Block([0.0; LINE_PAIR / 4]); len.div_ceil(per_block)], len }
    }
}

impl Deref for LineBuf {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: `Block` is `repr(C)` over `[f32; 32]` with size = alignment = 128, so the
        // blocks are a contiguous array of `32 · blocks.len() ≥ len` initialised `f32`s.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<f32>(), self.len) }
    }
}

impl DerefMut for LineBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<f32>(), self.len) }
    }
}

impl std::fmt::Debug for LineBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{LINE_PAIR, LineBuf};

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
        }
    }
}
