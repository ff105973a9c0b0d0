//! The consensus encoding: little-endian integers, Bitcoin's CompactSize for lengths and counts,
//! fixed-size arrays as raw bytes.
//!
//! Decoding is strict: CompactSize must be minimal, every length is checked against a per-field
//! maximum and against the bytes actually remaining *before* anything is allocated, and
//! [`decode_exact`] rejects trailing bytes. Together this makes the encoding canonical: each value
//! has exactly one byte string, and every accepted byte string re-encodes to itself.

use thiserror::Error;

/// Largest length or count any single field may declare (4 MB, the block size limit): a generic
/// cap on top of the "fits in the remaining input" check.
pub const MAX_VEC_LEN: usize = 4_000_000;

/// Elements pre-allocated at most when decoding a vector; the rest grows as elements actually
/// decode, so memory follows the bytes consumed, never a declared count.
const MAX_PREALLOC: usize = 1024;

/// Why a byte string is not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("unexpected end of input: needed {needed} more bytes, {remaining} remain")]
    UnexpectedEnd {
        /// Bytes the next field needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A CompactSize used a longer form than its value needs.
    #[error("non-canonical CompactSize encoding")]
    NonCanonicalCompactSize,
    /// A declared length or count exceeds the field's maximum.
    #[error("declared length {len} exceeds the maximum {max}")]
    OversizeLength {
        /// Declared length.
        len: u64,
        /// The field's maximum.
        max: u64,
    },
    /// A declared length or count cannot fit in the bytes that remain.
    #[error("declared length {len} needs at least {needed} bytes, only {remaining} remain")]
    LengthExceedsInput {
        /// Declared length.
        len: u64,
        /// Minimum bytes those elements need.
        needed: u64,
        /// Bytes that were left.
        remaining: usize,
    },
    /// Bytes were left over after a complete value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A field holds a value the encoding does not allow.
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),
}

/// A value with a consensus encoding.
pub trait Encode {
    /// Appends the encoding of `self` to `w`.
    fn encode(&self, w: &mut Vec<u8>);
}

/// A value that can be decoded from its consensus encoding.
pub trait Decode: Sized {
    /// A lower bound on the encoded size of any value of this type, in bytes. Used to reject a
    /// declared element count that cannot fit in the remaining input before allocating.
    const MIN_ENCODED_SIZE: usize;

    /// Reads one value from `r`, leaving `r` just after it.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// The encoding of `value` as a fresh vector.
pub fn encode_to_vec<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut w = Vec::new();
    value.encode(&mut w);
    w
}

/// Decodes a `T` that must span `bytes` exactly: trailing bytes are an error.
pub fn decode_exact<T: Decode>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let value = T::decode(&mut r)?;
    r.finish()?;
    Ok(value)
}

/// A cursor over untrusted input bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Succeeds only if every byte has been read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    /// The next byte, without consuming it.
    pub fn peek_u8(&self) -> Result<u8, DecodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEnd { needed: 1, remaining: 0 })
    }

    /// The next `n` bytes, consumed.
    pub fn read_bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(DecodeError::UnexpectedEnd { needed: n, remaining });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.read_bytes(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.read_array::<1>()?[0])
    }

    /// A little-endian `u16`.
    pub fn read_u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.read_array()?))
    }

    /// A little-endian `u32`.
    pub fn read_u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.read_array()?))
    }

    /// A little-endian `u64`.
    pub fn read_u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.read_array()?))
    }

    /// A CompactSize, rejecting non-minimal forms.
    pub fn read_compact_size(&mut self) -> Result<u64, DecodeError> {
        let (value, min) = match self.read_u8()? {
            0xFD => (u64::from(self.read_u16()?), 0xFD),
            0xFE => (u64::from(self.read_u32()?), 0x1_0000),
            0xFF => (self.read_u64()?, 0x1_0000_0000),
            b => return Ok(u64::from(b)),
        };
        if value < min {
            return Err(DecodeError::NonCanonicalCompactSize);
        }
        Ok(value)
    }

    /// A CompactSize length or count of elements that each take at least `min_elem_size` bytes,
    /// checked against `max` and against the remaining input.
    pub fn read_len(&mut self, min_elem_size: usize, max: usize) -> Result<usize, DecodeError> {
        let len = self.read_compact_size()?;
        if len > max as u64 {
            return Err(DecodeError::OversizeLength { len, max: max as u64 });
        }
        let needed = len.saturating_mul(min_elem_size as u64);
        let remaining = self.remaining();
        if needed > remaining as u64 {
            return Err(DecodeError::LengthExceedsInput { len, needed, remaining });
        }
        // `len <= max`, which is a `usize`, so this cannot truncate.
        Ok(len as usize)
    }

    /// A CompactSize-prefixed byte string of at most `max` bytes.
    pub fn read_var_bytes(&mut self, max: usize) -> Result<Vec<u8>, DecodeError> {
        let len = self.read_len(1, max)?;
        Ok(self.read_bytes(len)?.to_vec())
    }

    /// A CompactSize-counted vector of at most `max` elements.
    pub fn read_vec<T: Decode>(&mut self, max: usize) -> Result<Vec<T>, DecodeError> {
        let len = self.read_len(T::MIN_ENCODED_SIZE.max(1), max)?;
        let mut out = Vec::with_capacity(len.min(MAX_PREALLOC));
        for _ in 0..len {
            out.push(T::decode(self)?);
        }
        Ok(out)
    }
}

/// Appends `n` as a CompactSize.
pub fn write_compact_size(w: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xFC => w.push(n as u8),
        0xFD..=0xFFFF => {
            w.push(0xFD);
            w.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xFFFF_FFFF => {
            w.push(0xFE);
            w.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            w.push(0xFF);
            w.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// The number of bytes the CompactSize encoding of `n` takes.
pub fn compact_size_len(n: u64) -> usize {
    match n {
        0..=0xFC => 1,
        0xFD..=0xFFFF => 3,
        0x1_0000..=0xFFFF_FFFF => 5,
        _ => 9,
    }
}

/// Appends a CompactSize length followed by the bytes.
pub fn write_var_bytes(w: &mut Vec<u8>, bytes: &[u8]) {
    write_compact_size(w, bytes.len() as u64);
    w.extend_from_slice(bytes);
}

/// Appends a CompactSize count followed by each element's encoding.
pub fn write_vec<T: Encode>(w: &mut Vec<u8>, items: &[T]) {
    write_compact_size(w, items.len() as u64);
    for item in items {
        item.encode(w);
    }
}

macro_rules! impl_int {
    ($($t:ty => $read:ident),*) => {$(
        impl Encode for $t {
            fn encode(&self, w: &mut Vec<u8>) {
                w.extend_from_slice(&self.to_le_bytes());
            }
        }
        impl Decode for $t {
            const MIN_ENCODED_SIZE: usize = core::mem::size_of::<$t>();
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$read()
            }
        }
    )*};
}
impl_int!(u8 => read_u8, u16 => read_u16, u32 => read_u32, u64 => read_u64);

impl<const N: usize> Encode for [u8; N] {
    fn encode(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(self);
    }
}

impl<const N: usize> Decode for [u8; N] {
    const MIN_ENCODED_SIZE: usize = N;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_array()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cs(n: u64) -> Vec<u8> {
        let mut w = Vec::new();
        write_compact_size(&mut w, n);
        w
    }

    fn read_cs(bytes: &[u8]) -> Result<u64, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = r.read_compact_size()?;
        r.finish()?;
        Ok(v)
    }

    #[test]
    fn compact_size_boundaries_match_bitcoin() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (0xFC, &[0xFC]),
            (0xFD, &[0xFD, 0xFD, 0x00]),
            (0xFFFF, &[0xFD, 0xFF, 0xFF]),
            (0x1_0000, &[0xFE, 0x00, 0x00, 0x01, 0x00]),
            (0xFFFF_FFFF, &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF]),
            (0x1_0000_0000, &[0xFF, 0, 0, 0, 0, 1, 0, 0, 0]),
            (u64::MAX, &[0xFF; 9]),
        ];
        for &(n, bytes) in cases {
            assert_eq!(cs(n), bytes, "encoding {n:#x}");
            assert_eq!(compact_size_len(n), bytes.len());
            assert_eq!(read_cs(bytes), Ok(n), "decoding {n:#x}");
        }
    }

    #[test]
    fn compact_size_rejects_non_minimal_forms() {
        let bad: &[&[u8]] = &[
            &[0xFD, 0x00, 0x00],
            &[0xFD, 0xFC, 0x00],
            &[0xFE, 0xFF, 0xFF, 0x00, 0x00],
            &[0xFE, 0x00, 0x00, 0x00, 0x00],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0],
            &[0xFF, 0, 0, 0, 0, 0, 0, 0, 0],
        ];
        for bytes in bad {
            assert_eq!(read_cs(bytes), Err(DecodeError::NonCanonicalCompactSize), "{bytes:x?}");
        }
    }

    #[test]
    fn compact_size_truncated_is_unexpected_end() {
        for bytes in [&[][..], &[0xFD, 0x00][..], &[0xFE, 0, 0, 0][..], &[0xFF, 0, 0][..]] {
            assert!(matches!(read_cs(bytes), Err(DecodeError::UnexpectedEnd { .. })));
        }
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        // A byte string claiming u64::MAX bytes.
        let mut r = Reader::new(&[0xFF; 9]);
        assert!(matches!(r.read_var_bytes(MAX_VEC_LEN), Err(DecodeError::OversizeLength { .. })));
        // Claims 10 bytes, has 3.
        let mut r = Reader::new(&[10, 1, 2, 3]);
        assert_eq!(
            r.read_var_bytes(MAX_VEC_LEN),
            Err(DecodeError::LengthExceedsInput { len: 10, needed: 10, remaining: 3 })
        );
        // 3 u32 elements need 12 bytes, only 8 remain.
        let mut r = Reader::new(&[3, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            r.read_vec::<u32>(MAX_VEC_LEN),
            Err(DecodeError::LengthExceedsInput { len: 3, needed: 12, remaining: 8 })
        );
        // Per-field maximum.
        let mut r = Reader::new(&[5, 0, 0, 0, 0, 0]);
        assert_eq!(r.read_var_bytes(4), Err(DecodeError::OversizeLength { len: 5, max: 4 }));
    }

    #[test]
    fn integers_are_little_endian() {
        assert_eq!(encode_to_vec(&0x0102_0304u32), [4, 3, 2, 1]);
        assert_eq!(encode_to_vec(&0x0102_0304_0506_0708u64), [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(decode_exact::<u16>(&[0x34, 0x12]), Ok(0x1234));
        assert_eq!(decode_exact::<u32>(&[1, 0, 0, 0, 0]), Err(DecodeError::TrailingBytes(1)));
    }

    proptest! {
        #[test]
        fn compact_size_round_trips(n in any::<u64>()) {
            let bytes = cs(n);
            prop_assert_eq!(bytes.len(), compact_size_len(n));
            prop_assert_eq!(read_cs(&bytes), Ok(n));
        }

        #[test]
        fn var_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut w = Vec::new();
            write_var_bytes(&mut w, &data);
            let mut r = Reader::new(&w);
            prop_assert_eq!(r.read_var_bytes(MAX_VEC_LEN), Ok(data));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn vec_round_trips(items in proptest::collection::vec(any::<u64>(), 0..300)) {
            let mut w = Vec::new();
            write_vec(&mut w, &items);
            let mut r = Reader::new(&w);
            prop_assert_eq!(r.read_vec::<u64>(MAX_VEC_LEN), Ok(items));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn random_bytes_never_panic_primitive_readers(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read_cs(&data);
            let _ = Reader::new(&data).read_var_bytes(MAX_VEC_LEN);
            let _ = Reader::new(&data).read_vec::<u32>(MAX_VEC_LEN);
            let _ = decode_exact::<[u8; 32]>(&data);
        }
    }
}
