//! Script numbers, exactly as Bitcoin's `CScriptNum` with minimal encoding required.
//!
//! A number is a little-endian sign-magnitude byte string: the top bit of the last byte is the
//! sign. Zero is the empty string. Encodings must be minimal (no superfluous trailing zero byte,
//! no negative zero). Operands of arithmetic are at most 4 bytes; lock-time operands of
//! `OP_CHECKLOCKTIMEVERIFY`/`OP_CHECKSEQUENCEVERIFY` (and the cancel window of
//! `OP_CHECKRECOVERYPENDINGVERIFY`) at most 5. Results may be longer than 4 bytes (e.g. a sum);
//! they are pushed but cannot be used as arithmetic operands again.

use crate::error::ScriptError;

/// The maximum length of an arithmetic operand.
pub const MAX_NUM_SIZE: usize = 4;
/// The maximum length of a lock-time operand.
pub const MAX_LOCKTIME_NUM_SIZE: usize = 5;

/// Decodes a script number of at most `max_len` bytes, requiring the minimal encoding.
pub fn decode_num(bytes: &[u8], max_len: usize) -> Result<i64, ScriptError> {
    if bytes.len() > max_len || bytes.len() > 8 {
        return Err(ScriptError::NumberOverflow);
    }
    let Some((&last, rest)) = bytes.split_last() else {
        return Ok(0);
    };
    // Minimal: the last byte must carry a magnitude bit, unless it exists only to hold the sign
    // because the previous byte's top bit is set.
    if last & 0x7f == 0 {
        match rest.last() {
            Some(&prev) if prev & 0x80 != 0 => {}
            _ => return Err(ScriptError::NonMinimalNumber),
        }
    }
    let mut magnitude: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        magnitude |= u64::from(b) << (8 * i);
    }
    let sign_bit = 0x80u64 << (8 * (bytes.len() - 1));
    if last & 0x80 != 0 {
        // At most 8 bytes but at most 5 in practice; the magnitude then fits in 39 bits.
        let m = magnitude & !sign_bit;
        Ok(-(i64::try_from(m).map_err(|_| ScriptError::NumberOverflow)?))
    } else {
        i64::try_from(magnitude).map_err(|_| ScriptError::NumberOverflow)
    }
}

/// The minimal encoding of `n`.
pub fn encode_num(n: i64) -> Vec<u8> {
    if n == 0 {
        return Vec::new();
    }
    let negative = n < 0;
    let mut abs = n.unsigned_abs();
    let mut out = Vec::with_capacity(9);
    while abs > 0 {
        out.push((abs & 0xff) as u8);
        abs >>= 8;
    }
    // `out` is non-empty because n != 0.
    let last = out.len() - 1;
    if out[last] & 0x80 != 0 {
        out.push(if negative { 0x80 } else { 0x00 });
    } else if negative {
        out[last] |= 0x80;
    }
    out
}

/// Bitcoin's `CastToBool`: false iff every byte is zero, except that the last may be 0x80
/// (negative zero).
pub fn cast_to_bool(bytes: &[u8]) -> bool {
    match bytes.split_last() {
        None => false,
        Some((&last, rest)) => rest.iter().any(|&b| b != 0) || (last != 0 && last != 0x80),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[]),
            (1, &[0x01]),
            (-1, &[0x81]),
            (127, &[0x7f]),
            (128, &[0x80, 0x00]),
            (-128, &[0x80, 0x80]),
            (255, &[0xff, 0x00]),
            (256, &[0x00, 0x01]),
            (-255, &[0xff, 0x80]),
            (0x7fff_ffff, &[0xff, 0xff, 0xff, 0x7f]),
            (-0x7fff_ffff, &[0xff, 0xff, 0xff, 0xff]),
            (0x8000_0000, &[0x00, 0x00, 0x00, 0x80, 0x00]),
            (0xffff_ffff, &[0xff, 0xff, 0xff, 0xff, 0x00]),
        ];
        for &(n, enc) in cases {
            assert_eq!(encode_num(n), enc, "encode {n}");
            assert_eq!(decode_num(enc, 5), Ok(n), "decode {n}");
        }
    }

    #[test]
    fn rejects_non_minimal_and_long() {
        assert_eq!(decode_num(&[0x00], 4), Err(ScriptError::NonMinimalNumber));
        assert_eq!(decode_num(&[0x80], 4), Err(ScriptError::NonMinimalNumber));
        assert_eq!(decode_num(&[0x01, 0x00], 4), Err(ScriptError::NonMinimalNumber));
        assert_eq!(decode_num(&[0x01, 0x80], 4), Err(ScriptError::NonMinimalNumber));
        assert_eq!(decode_num(&[0x80, 0x00], 4), Ok(128));
        assert_eq!(decode_num(&[1, 2, 3, 4, 5], 4), Err(ScriptError::NumberOverflow));
        assert_eq!(decode_num(&[1, 2, 3, 4, 5], 5), Ok(0x05_0403_0201));
        assert_eq!(decode_num(&[0xff; 9], 9), Err(ScriptError::NumberOverflow));
    }

    #[test]
    fn roundtrip_range() {
        for n in (-70_000i64..70_000).chain([i32::MAX as i64, i32::MIN as i64 + 1]) {
            assert_eq!(decode_num(&encode_num(n), 5), Ok(n));
        }
        // 8-byte values round-trip too (decode with an 8-byte limit).
        for n in [i64::MAX, -i64::MAX, 1 << 40] {
            let enc = encode_num(n);
            if enc.len() <= 8 {
                assert_eq!(decode_num(&enc, 8), Ok(n));
            }
        }
    }

    #[test]
    fn bool_cast() {
        assert!(!cast_to_bool(&[]));
        assert!(!cast_to_bool(&[0]));
        assert!(!cast_to_bool(&[0, 0]));
        assert!(!cast_to_bool(&[0x80]));
        assert!(!cast_to_bool(&[0, 0x80]));
        assert!(cast_to_bool(&[1]));
        assert!(cast_to_bool(&[0x80, 0]));
        assert!(cast_to_bool(&[0, 1]));
        assert!(cast_to_bool(&[0x81]));
    }
}
