//! The amount in an invoice's human-readable part: `DIGITS [MULTIPLIER]`, in RNT, converted to
//! milli-resonance.
//!
//! 1 RNT = 10^8 resonance = 10^11 milli-resonance. The digits count whole RNT when no multiplier
//! follows; a multiplier scales them: `m` = 10^-3 RNT (10^8 milli-resonance), `u` = 10^-6 RNT
//! (10^5), `n` = 10^-9 RNT (100), `p` = 10^-12 RNT (one tenth of a milli-resonance, so a `p`
//! amount must end in `0`).

use rnet_primitives::MAX_MONEY;
use thiserror::Error;

/// Milli-resonance per RNT: 10^8 resonance × 1000.
pub const MILLI_RESONANCE_PER_RNT: u64 = 100_000_000_000;

/// Largest amount an invoice may request: 21 million RNT, in milli-resonance.
pub const MAX_AMOUNT_MILLI_RESONANCE: u64 = MAX_MONEY * 1000;

/// Why the amount of an invoice's human-readable part (or one given to the builder) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AmountError {
    /// A multiplier letter (or other non-digit) with no digits before it.
    #[error("amount has no digits")]
    NoDigits,
    /// Something other than one of `m`, `u`, `n`, `p` after the digits, or more than one letter.
    #[error("invalid amount multiplier {0:?} (expected m, u, n or p)")]
    InvalidMultiplier(String),
    /// The digits start with `0` (and are not the single digit `0`).
    #[error("amount has a leading zero")]
    LeadingZero,
    /// The amount is zero; omit the amount instead.
    #[error("amount is zero")]
    Zero,
    /// A `p` amount not ending in `0`: not a whole number of milli-resonance.
    #[error("pico-RNT amount {0} is not a whole number of milli-resonance (must end in 0)")]
    SubMilliResonance(String),
    /// The amount does not fit in 128 bits before the range check.
    #[error("amount overflows")]
    Overflow,
    /// Above 21 million RNT.
    #[error("amount {0} milli-resonance exceeds 21 million RNT")]
    TooLarge(u128),
}

/// (multiplier letter, milli-resonance per unit × 10): the ×10 makes `p` (1/10 mres) integral.
const MULTIPLIERS: [(char, u128); 4] =
    [('m', 1_000_000_000), ('u', 1_000_000), ('n', 1_000), ('p', 1)];

/// Parses the amount that follows the currency prefix. `s` is non-empty and starts with a digit
/// (the caller split it off there) but is checked here regardless.
pub(crate) fn parse_amount(s: &str) -> Result<u64, AmountError> {
    let digit_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(digit_end);
    if digits.is_empty() {
        return Err(AmountError::NoDigits);
    }
    // Tenths of a milli-resonance per unit of the digits.
    let tenths_per_unit: u128 = match suffix {
        "" => u128::from(MILLI_RESONANCE_PER_RNT) * 10,
        _ => {
            let mut chars = suffix.chars();
            let letter = chars.next();
            let found = MULTIPLIERS.iter().find(|(m, _)| Some(*m) == letter);
            match (found, chars.next()) {
                (Some((_, per)), None) => *per,
                _ => return Err(AmountError::InvalidMultiplier(suffix.to_owned())),
            }
        }
    };
    if digits.bytes().all(|b| b == b'0') {
        return Err(if digits.len() == 1 { AmountError::Zero } else { AmountError::LeadingZero });
    }
    if digits.starts_with('0') {
        return Err(AmountError::LeadingZero);
    }
    let value = digits.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10).and_then(|a| a.checked_add(u128::from(b - b'0')))
    });
    let tenths = value.and_then(|v| v.checked_mul(tenths_per_unit)).ok_or(AmountError::Overflow)?;
    if tenths % 10 != 0 {
        return Err(AmountError::SubMilliResonance(s.to_owned()));
    }
    let mres = tenths / 10;
    if mres > u128::from(MAX_AMOUNT_MILLI_RESONANCE) {
        return Err(AmountError::TooLarge(mres));
    }
    u64::try_from(mres).map_err(|_| AmountError::TooLarge(mres))
}

/// Checks an amount given to the builder: non-zero and at most 21 million RNT.
pub(crate) fn check_amount(mres: u64) -> Result<(), AmountError> {
    if mres == 0 {
        return Err(AmountError::Zero);
    }
    if mres > MAX_AMOUNT_MILLI_RESONANCE {
        return Err(AmountError::TooLarge(u128::from(mres)));
    }
    Ok(())
}

/// The canonical (shortest) amount string of `mres` milli-resonance: the largest unit among RNT,
/// `m`, `u`, `n`, `p` that divides it exactly.
pub(crate) fn encode_amount(mres: u64) -> String {
    let tenths = u128::from(mres) * 10;
    let whole = u128::from(MILLI_RESONANCE_PER_RNT) * 10;
    if tenths % whole == 0 {
        return (tenths / whole).to_string();
    }
    for (letter, per) in MULTIPLIERS {
        if tenths % per == 0 {
            return format!("{}{letter}", tenths / per);
        }
    }
    // Unreachable: `p` (per = 1) divides everything.
    format!("{tenths}p")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_relative_to_one_rnt() {
        assert_eq!(parse_amount("1"), Ok(MILLI_RESONANCE_PER_RNT));
        assert_eq!(parse_amount("1m"), Ok(100_000_000));
        assert_eq!(parse_amount("1u"), Ok(100_000));
        assert_eq!(parse_amount("1n"), Ok(100));
        assert_eq!(parse_amount("10p"), Ok(1));
        assert_eq!(parse_amount("2500u"), Ok(250_000_000));
        assert_eq!(parse_amount("21000000"), Ok(MAX_AMOUNT_MILLI_RESONANCE));
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(parse_amount("0"), Err(AmountError::Zero));
        assert_eq!(parse_amount("0m"), Err(AmountError::Zero));
        assert_eq!(parse_amount("00"), Err(AmountError::LeadingZero));
        assert_eq!(parse_amount("01m"), Err(AmountError::LeadingZero));
        assert_eq!(parse_amount("15p"), Err(AmountError::SubMilliResonance("15p".into())));
        assert_eq!(parse_amount("1k"), Err(AmountError::InvalidMultiplier("k".into())));
        assert_eq!(parse_amount("1mm"), Err(AmountError::InvalidMultiplier("mm".into())));
        assert_eq!(parse_amount("1m1"), Err(AmountError::InvalidMultiplier("m1".into())));
        assert_eq!(parse_amount("m"), Err(AmountError::NoDigits));
        assert_eq!(parse_amount(""), Err(AmountError::NoDigits));
        assert_eq!(
            parse_amount("21000001"),
            Err(AmountError::TooLarge(u128::from(MAX_AMOUNT_MILLI_RESONANCE) + 100_000_000_000))
        );
        assert_eq!(parse_amount(&"9".repeat(40)), Err(AmountError::Overflow));
        assert_eq!(parse_amount(&format!("{}m", "9".repeat(38))), Err(AmountError::Overflow));
        // Fits u128 but not u64 and above the cap.
        assert!(matches!(parse_amount("999999999999999999999"), Err(AmountError::TooLarge(_))));
    }

    #[test]
    fn canonical_encoding_is_shortest_and_round_trips() {
        for (mres, s) in [
            (MILLI_RESONANCE_PER_RNT, "1"),
            (MILLI_RESONANCE_PER_RNT * 20, "20"),
            (250_000_000, "2500u"),
            (100_000_000, "1m"),
            (100_000, "1u"),
            (100, "1n"),
            (1, "10p"),
            (123, "1230p"),
            (MAX_AMOUNT_MILLI_RESONANCE, "21000000"),
            (MAX_AMOUNT_MILLI_RESONANCE - 1, "20999999999999999990p"),
        ] {
            assert_eq!(encode_amount(mres), s);
            assert_eq!(parse_amount(s), Ok(mres));
        }
    }

    #[test]
    fn builder_amount_check() {
        assert_eq!(check_amount(0), Err(AmountError::Zero));
        assert_eq!(check_amount(1), Ok(()));
        assert_eq!(check_amount(MAX_AMOUNT_MILLI_RESONANCE), Ok(()));
        assert!(check_amount(MAX_AMOUNT_MILLI_RESONANCE + 1).is_err());
    }
}
