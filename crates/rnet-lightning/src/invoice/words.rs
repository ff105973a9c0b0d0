//! 5-bit word handling for invoices: the bech32 checksum without BIP173's length limit, strict
//! word ↔ byte and word ↔ integer conversions, and the padded packing used by the signature.
//!
//! Words are kept as `u8` values in `0..32` inside this module tree; they become
//! [`bech32::Fe32`] only at the string boundary.

use bech32::primitives::checksum::Checksum;
use bech32::{Bech32, Fe32, Fe32IterExt, Hrp};

use super::MAX_INVOICE_LEN;

/// The bech32 checksum (BIP173 generator and target residue 1, *not* bech32m) with the code
/// length raised from 1023 to [`MAX_INVOICE_LEN`], since invoices may exceed BIP173's limits.
///
/// The polynomial constants are taken from the `bech32` crate's own [`Bech32`] definition, so the
/// checksum arithmetic is the crate's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvoiceBech32 {}

impl Checksum for InvoiceBech32 {
    type MidstateRepr = <Bech32 as Checksum>::MidstateRepr;
    const CODE_LENGTH: usize = MAX_INVOICE_LEN;
    const CHECKSUM_LENGTH: usize = <Bech32 as Checksum>::CHECKSUM_LENGTH;
    const GENERATOR_SH: [Self::MidstateRepr; 5] = <Bech32 as Checksum>::GENERATOR_SH;
    const TARGET_RESIDUE: Self::MidstateRepr = <Bech32 as Checksum>::TARGET_RESIDUE;
}

/// Number of 5-bit words needed for `n` bytes (zero-padded to a word boundary).
pub(crate) const fn words_for_bytes(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

/// Bytes → 5-bit words, big-endian, the last word right-padded with zero bits.
pub(crate) fn bytes_to_words(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(words_for_bytes(bytes.len()));
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(((acc >> bits) & 0x1f) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(((acc << (5 - bits)) & 0x1f) as u8);
    }
    out
}

/// Why a word string is not the canonical encoding of a byte string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PaddingError {
    /// A whole word (5 bits or more) of padding: the words are not the shortest encoding.
    TooMuchPadding,
    /// A padding bit is set.
    NonZeroPadding,
}

/// 5-bit words → bytes, requiring the canonical form that [`bytes_to_words`] produces: fewer than
/// 5 padding bits, all zero.
pub(crate) fn words_to_bytes(words: &[u8]) -> Result<Vec<u8>, PaddingError> {
    let mut out = Vec::with_capacity(words.len() * 5 / 8);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &w in words {
        acc = (acc << 5) | u32::from(w & 0x1f);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits >= 5 {
        return Err(PaddingError::TooMuchPadding);
    }
    if acc != 0 {
        return Err(PaddingError::NonZeroPadding);
    }
    Ok(out)
}

/// Packs 5-bit words into bytes for hashing: the words' bits concatenated big-endian, then zero
/// bits appended up to a byte boundary (BOLT 11's signing rule). Never fails.
pub(crate) fn pack_words_padded(words: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity((words.len() * 5).div_ceil(8));
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &w in words {
        acc = (acc << 5) | u32::from(w & 0x1f);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) & 0xff) as u8);
    }
    out
}

/// The shortest big-endian word string of `v` (no leading zero word; `0` is the empty string).
pub(crate) fn u64_to_words_minimal(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v > 0 {
        out.push((v & 0x1f) as u8);
        v >>= 5;
    }
    out.reverse();
    out
}

/// `v` as exactly `n` big-endian words (the caller guarantees `v < 32^n`).
pub(crate) fn u64_to_words_fixed(v: u64, n: usize) -> Vec<u8> {
    (0..n).rev().map(|i| ((v >> (5 * i)) & 0x1f) as u8).collect()
}

/// Big-endian words → integer; `None` when the value exceeds `u64`.
pub(crate) fn words_to_u64(words: &[u8]) -> Option<u64> {
    words.iter().try_fold(0u64, |acc, &w| {
        if acc >> 59 != 0 {
            return None;
        }
        Some((acc << 5) | u64::from(w & 0x1f))
    })
}

/// A word (masked to 5 bits) as a bech32 field element.
fn fe(w: u8) -> Fe32 {
    // `w & 0x1f` is always below 32, so the conversion cannot fail; `Q` is never reached.
    Fe32::try_from(w & 0x1f).unwrap_or(Fe32::Q)
}

/// The bech32 string (lowercase, checksummed with [`InvoiceBech32`]) of `hrp` and `words`.
pub(crate) fn encode_bech32(hrp: &Hrp, words: &[u8]) -> String {
    words.iter().map(|&w| fe(w)).with_checksum::<InvoiceBech32>(hrp).chars().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_constants_are_consistent() {
        InvoiceBech32::sanity_check();
    }

    #[test]
    fn byte_word_round_trip_all_lengths() {
        for len in 0..70usize {
            let bytes: Vec<u8> =
                (0..len).map(|i| (i as u8).wrapping_mul(37).wrapping_add(11)).collect();
            let words = bytes_to_words(&bytes);
            assert_eq!(words.len(), words_for_bytes(len));
            assert!(words.iter().all(|&w| w < 32));
            assert_eq!(words_to_bytes(&words), Ok(bytes));
        }
    }

    #[test]
    fn known_word_encoding() {
        // 0xff → 11111 111(00): words 31, 28.
        assert_eq!(bytes_to_words(&[0xff]), vec![31, 28]);
        assert_eq!(words_to_bytes(&[31, 28]), Ok(vec![0xff]));
        assert_eq!(pack_words_padded(&[31, 28]), vec![0xff, 0x00]);
        assert_eq!(pack_words_padded(&[1]), vec![0x08]);
        assert_eq!(pack_words_padded(&[]), Vec::<u8>::new());
    }

    #[test]
    fn padding_is_strict() {
        // 0xff with a set padding bit.
        assert_eq!(words_to_bytes(&[31, 29]), Err(PaddingError::NonZeroPadding));
        // One word alone: 5 bits of padding, no byte.
        assert_eq!(words_to_bytes(&[0]), Err(PaddingError::TooMuchPadding));
        // One byte needs 2 words; a third zero word is 7 bits of padding.
        assert_eq!(words_to_bytes(&[31, 28, 0]), Err(PaddingError::TooMuchPadding));
        // 52 words carry 32 bytes + 4 padding bits; 53 words are 33 bytes + 1 bit.
        let mut words = bytes_to_words(&[7u8; 32]);
        assert_eq!(words.len(), 52);
        words.push(0);
        assert_eq!(words_to_bytes(&words).map(|b| b.len()), Ok(33));
    }

    #[test]
    fn integers() {
        assert_eq!(u64_to_words_minimal(0), Vec::<u8>::new());
        assert_eq!(u64_to_words_minimal(3600), vec![3, 16, 16]);
        assert_eq!(words_to_u64(&[3, 16, 16]), Some(3600));
        assert_eq!(u64_to_words_fixed(1_496_314_658, 7).len(), 7);
        assert_eq!(words_to_u64(&u64_to_words_fixed(1_496_314_658, 7)), Some(1_496_314_658));
        assert_eq!(words_to_u64(&u64_to_words_minimal(u64::MAX)), Some(u64::MAX));
        // 13 words hold 65 bits: the top bit set overflows u64.
        let mut over = vec![0u8; 13];
        over[0] = 0b10000;
        assert_eq!(words_to_u64(&over), None);
        assert_eq!(words_to_u64(&[31; 14]), None);
    }
}
