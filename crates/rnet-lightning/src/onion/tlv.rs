//! BigSize integers and strict TLV streams (BOLT 1 encoding, as used in hop payloads).
//!
//! The reader is strict: every BigSize must be minimal, record types must strictly increase,
//! and a record's length must fit in what remains. Whether an unknown type is fatal (even) or
//! skipped (odd) is decided by the payload decoder, which knows which types it understands;
//! [`TlvReader`] only frames the records.

use super::error::TlvError;

/// Append the BigSize encoding of `value` to `out`: one byte below `0xfd`, otherwise a marker
/// byte (`0xfd`, `0xfe`, `0xff`) followed by a big-endian `u16`, `u32` or `u64`.
pub fn write_bigsize(out: &mut Vec<u8>, value: u64) {
    if value < 0xfd {
        out.push(value as u8);
    } else if value <= 0xffff {
        out.push(0xfd);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else if value <= 0xffff_ffff {
        out.push(0xfe);
        out.extend_from_slice(&(value as u32).to_be_bytes());
    } else {
        out.push(0xff);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Number of bytes [`write_bigsize`] uses for `value`.
pub fn bigsize_len(value: u64) -> usize {
    if value < 0xfd {
        1
    } else if value <= 0xffff {
        3
    } else if value <= 0xffff_ffff {
        5
    } else {
        9
    }
}

/// Read a minimal BigSize from the start of `bytes`; returns the value and the bytes used.
/// `offset` is only used to locate errors.
pub fn read_bigsize(bytes: &[u8], offset: usize) -> Result<(u64, usize), TlvError> {
    let truncated = TlvError::Truncated { offset };
    let (&first, rest) = bytes.split_first().ok_or(truncated)?;
    let (value, used, min) = match first {
        0xfd => {
            let b: [u8; 2] = rest.get(..2).and_then(|s| s.try_into().ok()).ok_or(truncated)?;
            (u64::from(u16::from_be_bytes(b)), 3, 0xfd)
        }
        0xfe => {
            let b: [u8; 4] = rest.get(..4).and_then(|s| s.try_into().ok()).ok_or(truncated)?;
            (u64::from(u32::from_be_bytes(b)), 5, 0x1_0000)
        }
        0xff => {
            let b: [u8; 8] = rest.get(..8).and_then(|s| s.try_into().ok()).ok_or(truncated)?;
            (u64::from_be_bytes(b), 9, 0x1_0000_0000)
        }
        small => return Ok((u64::from(small), 1)),
    };
    if value < min {
        return Err(TlvError::NonMinimalBigSize { offset });
    }
    Ok((value, used))
}

/// Append a truncated unsigned integer (`tu64`/`tu32`): big-endian with leading zero bytes
/// removed, so 0 is the empty string.
pub fn write_truncated(out: &mut Vec<u8>, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = (value.leading_zeros() / 8) as usize;
    out.extend_from_slice(&bytes[skip..]);
}

/// Length of [`write_truncated`]'s encoding of `value`.
pub fn truncated_len(value: u64) -> usize {
    8 - (value.leading_zeros() / 8) as usize
}

/// Read a minimal truncated integer of at most `max_len` bytes; `None` when it is too long or
/// has a leading zero byte.
pub fn read_truncated(bytes: &[u8], max_len: usize) -> Option<u64> {
    if bytes.len() > max_len || bytes.first() == Some(&0) {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Append one TLV record (`type`, `length`, `value`).
pub fn write_record(out: &mut Vec<u8>, tlv_type: u64, value: &[u8]) {
    write_bigsize(out, tlv_type);
    write_bigsize(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// One framed TLV record borrowed from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvRecord<'a> {
    /// The record type.
    pub tlv_type: u64,
    /// The record value.
    pub value: &'a [u8],
    /// Byte offset of the record (its type) within the stream.
    pub offset: usize,
}

/// Iterator over the records of a TLV stream, enforcing minimal BigSizes, strictly increasing
/// types and in-bounds lengths. It stops after the first error.
#[derive(Debug, Clone)]
pub struct TlvReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    last_type: Option<u64>,
    failed: bool,
}

impl<'a> TlvReader<'a> {
    /// A reader over a complete TLV stream.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0, last_type: None, failed: false }
    }

    fn next_record(&mut self) -> Result<TlvRecord<'a>, TlvError> {
        let offset = self.pos;
        let rest = &self.bytes[self.pos..];
        let (tlv_type, type_len) = read_bigsize(rest, offset)?;
        if self.last_type.is_some_and(|last| tlv_type <= last) {
            return Err(TlvError::NotIncreasing { tlv_type, offset });
        }
        let rest = &rest[type_len..];
        let (len, len_len) = read_bigsize(rest, offset + type_len)?;
        let rest = &rest[len_len..];
        let len = usize::try_from(len).map_err(|_| TlvError::Truncated { offset })?;
        let value = rest.get(..len).ok_or(TlvError::Truncated { offset })?;
        self.pos = offset + type_len + len_len + len;
        self.last_type = Some(tlv_type);
        Ok(TlvRecord { tlv_type, value, offset })
    }
}

impl<'a> Iterator for TlvReader<'a> {
    type Item = Result<TlvRecord<'a>, TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        let item = self.next_record();
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigsize_round_trips_at_every_boundary() {
        for v in [0, 0xfc, 0xfd, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let mut out = Vec::new();
            write_bigsize(&mut out, v);
            assert_eq!(out.len(), bigsize_len(v));
            assert_eq!(read_bigsize(&out, 0), Ok((v, out.len())));
        }
    }

    #[test]
    fn bigsize_rejects_non_minimal_and_truncated() {
        // BOLT 1 BigSize decoding vectors (facts): each is non-minimal.
        for hex in ["fd00fc", "fe0000ffff", "ff00000000ffffffff"] {
            let b = hex::decode(hex).unwrap();
            assert_eq!(read_bigsize(&b, 7), Err(TlvError::NonMinimalBigSize { offset: 7 }));
        }
        for hex in ["", "fd00", "feffff", "ffffffffff"] {
            let b = hex::decode(hex).unwrap();
            assert_eq!(read_bigsize(&b, 3), Err(TlvError::Truncated { offset: 3 }));
        }
    }

    #[test]
    fn truncated_integers_are_minimal() {
        for v in [0u64, 1, 0xff, 0x100, 0x0102_0304, u64::MAX] {
            let mut out = Vec::new();
            write_truncated(&mut out, v);
            assert_eq!(out.len(), truncated_len(v));
            assert_eq!(read_truncated(&out, 8), Some(v));
        }
        assert_eq!(read_truncated(&[0x00, 0x01], 8), None, "leading zero");
        assert_eq!(read_truncated(&[0x00], 8), None, "zero must be empty");
        assert_eq!(read_truncated(&[1, 2, 3, 4, 5], 4), None, "too long for a tu32");
    }

    #[test]
    fn reader_enforces_order_and_bounds() {
        let mut s = Vec::new();
        write_record(&mut s, 2, &[1]);
        write_record(&mut s, 3, &[]);
        write_record(&mut s, 0x1_0000, &[9, 9]);
        let recs: Vec<_> = TlvReader::new(&s).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!((recs[2].tlv_type, recs[2].value, recs[2].offset), (0x1_0000, &[9u8, 9][..], 5));

        let mut dup = Vec::new();
        write_record(&mut dup, 4, &[1]);
        write_record(&mut dup, 4, &[1]);
        let err = TlvReader::new(&dup).find_map(Result::err);
        assert_eq!(err, Some(TlvError::NotIncreasing { tlv_type: 4, offset: 3 }));

        let overlong = [2u8, 5, 1, 2];
        let err = TlvReader::new(&overlong).find_map(Result::err);
        assert_eq!(err, Some(TlvError::Truncated { offset: 0 }));
    }
}
