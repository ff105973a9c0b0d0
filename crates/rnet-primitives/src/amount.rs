//! Amounts of RNT, counted in resonance (1 RNT = 10^8 resonance).
//!
//! Arithmetic is checked only; there are no panicking operators. Decimal strings are parsed and
//! formatted exactly, without floating point: `Display` always writes 8 decimals ("12.34500000"),
//! [`Amount::from_rnt_str`] accepts `DIGITS[.DIGITS]` with 1 to 8 decimals.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::encode::{Decode, DecodeError, Encode, Reader};

/// Resonance per RNT.
pub const COIN: u64 = 100_000_000;

/// The most resonance that can ever exist: 21 million RNT.
pub const MAX_MONEY: u64 = 21_000_000 * COIN;

/// An amount in resonance. Any `u64` is representable (the encoding is pure); whether it is a
/// valid amount of money is [`Amount::is_valid_money`], checked by consensus.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Amount(pub u64);

/// Why a string is not an RNT amount.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseAmountError {
    /// The string is empty.
    #[error("empty amount")]
    Empty,
    /// A character other than an ASCII digit or one decimal point (signs, exponents, spaces...).
    #[error("invalid character {0:?} in amount")]
    InvalidCharacter(char),
    /// Missing digits before or after the decimal point, or more than one point.
    #[error("malformed amount")]
    Malformed,
    /// More than 8 decimals.
    #[error("more than 8 decimal places")]
    TooManyDecimals,
    /// Larger than [`MAX_MONEY`] (including anything beyond `u64`).
    #[error("amount exceeds 21000000 RNT")]
    ExceedsMaxMoney,
}

impl Amount {
    /// Zero resonance.
    pub const ZERO: Self = Self(0);
    /// One RNT.
    pub const ONE_RNT: Self = Self(COIN);
    /// [`MAX_MONEY`] as an amount.
    pub const MAX_MONEY: Self = Self(MAX_MONEY);

    /// An amount of `resonance`.
    pub const fn from_resonance(resonance: u64) -> Self {
        Self(resonance)
    }

    /// The amount in resonance.
    pub const fn to_resonance(self) -> u64 {
        self.0
    }

    /// `rnt` whole RNT, or `None` on overflow.
    pub const fn from_rnt(rnt: u64) -> Option<Self> {
        match rnt.checked_mul(COIN) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// Whether `0 <= self <= MAX_MONEY`.
    pub const fn is_valid_money(self) -> bool {
        self.0 <= MAX_MONEY
    }

    /// `self + rhs`, or `None` on overflow.
    pub const fn checked_add(self, rhs: Self) -> Option<Self> {
        match self.0.checked_add(rhs.0) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// `self - rhs`, or `None` if negative.
    pub const fn checked_sub(self, rhs: Self) -> Option<Self> {
        match self.0.checked_sub(rhs.0) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// `self * rhs`, or `None` on overflow.
    pub const fn checked_mul(self, rhs: u64) -> Option<Self> {
        match self.0.checked_mul(rhs) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// `self / rhs` rounded down, or `None` if `rhs == 0`.
    pub const fn checked_div(self, rhs: u64) -> Option<Self> {
        match self.0.checked_div(rhs) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// Parses a decimal RNT amount exactly: ASCII digits, optionally a point and 1 to 8 more
    /// digits (`"12"`, `"12.345"`, `"0.00000001"`). Rejects signs, exponents, whitespace, an
    /// empty string, a bare or trailing point, more than 8 decimals and anything above
    /// [`MAX_MONEY`].
    pub fn from_rnt_str(s: &str) -> Result<Self, ParseAmountError> {
        if s.is_empty() {
            return Err(ParseAmountError::Empty);
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_digit() && *c != '.') {
            return Err(ParseAmountError::InvalidCharacter(c));
        }
        let (int_part, frac_part) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        if int_part.is_empty() {
            return Err(ParseAmountError::Malformed);
        }
        let mut value: u64 = 0;
        for d in int_part.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .filter(|v| *v <= MAX_MONEY / COIN)
                .ok_or(ParseAmountError::ExceedsMaxMoney)?;
        }
        // `value <= 21_000_000`, so this cannot overflow.
        value *= COIN;
        if let Some(frac) = frac_part {
            if frac.is_empty() || frac.contains('.') {
                return Err(ParseAmountError::Malformed);
            }
            if frac.len() > 8 {
                return Err(ParseAmountError::TooManyDecimals);
            }
            let mut f: u64 = 0;
            for d in frac.bytes() {
                f = f * 10 + u64::from(d - b'0');
            }
            f *= 10u64.pow(8 - frac.len() as u32);
            value += f;
        }
        if value > MAX_MONEY {
            return Err(ParseAmountError::ExceedsMaxMoney);
        }
        Ok(Self(value))
    }
}

impl fmt::Display for Amount {
    /// RNT with exactly 8 decimals, e.g. `12.34500000` (no unit).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:08}", self.0 / COIN, self.0 % COIN)
    }
}

impl FromStr for Amount {
    type Err = ParseAmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_rnt_str(s)
    }
}

impl Encode for Amount {
    fn encode(&self, w: &mut Vec<u8>) {
        self.0.encode(w);
    }
}

impl Decode for Amount {
    const MIN_ENCODED_SIZE: usize = 8;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_u64().map(Self)
    }
}

/// Serialized as the integer number of resonance (exact in JSON).
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{decode_exact, encode_to_vec};
    use proptest::prelude::*;

    #[test]
    fn parses_exact_decimals() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("1", 100_000_000),
            ("12.345", 1_234_500_000),
            ("0.00000001", 1),
            ("0.1", 10_000_000),
            ("007.50", 750_000_000),
            ("21000000", 2_100_000_000_000_000),
            ("21000000.00000000", 2_100_000_000_000_000),
            ("20999999.99999999", 2_099_999_999_999_999),
        ];
        for &(s, v) in ok {
            assert_eq!(Amount::from_rnt_str(s), Ok(Amount(v)), "{s}");
        }
    }

    #[test]
    fn rejects_bad_amounts() {
        use ParseAmountError::*;
        let bad: &[(&str, ParseAmountError)] = &[
            ("", Empty),
            ("-1", InvalidCharacter('-')),
            ("+1", InvalidCharacter('+')),
            ("1e8", InvalidCharacter('e')),
            (" 1", InvalidCharacter(' ')),
            ("1,5", InvalidCharacter(',')),
            ("١", InvalidCharacter('١')),
            (".", Malformed),
            (".5", Malformed),
            ("1.", Malformed),
            ("1.2.3", Malformed),
            ("0.000000001", TooManyDecimals),
            ("21000000.00000001", ExceedsMaxMoney),
            ("21000001", ExceedsMaxMoney),
            ("184467440737.09551616", ExceedsMaxMoney),
            ("99999999999999999999999999", ExceedsMaxMoney),
        ];
        for (s, e) in bad {
            assert_eq!(Amount::from_rnt_str(s).as_ref(), Err(e), "{s}");
        }
    }

    #[test]
    fn displays_eight_decimals() {
        assert_eq!(Amount(1_234_500_000).to_string(), "12.34500000");
        assert_eq!(Amount(0).to_string(), "0.00000000");
        assert_eq!(Amount(1).to_string(), "0.00000001");
        assert_eq!(Amount(u64::MAX).to_string(), "184467440737.09551615");
    }

    #[test]
    fn checked_arithmetic() {
        assert_eq!(Amount(1).checked_add(Amount(2)), Some(Amount(3)));
        assert_eq!(Amount(u64::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(1).checked_sub(Amount(2)), None);
        assert_eq!(Amount(5).checked_sub(Amount(2)), Some(Amount(3)));
        assert_eq!(Amount(COIN).checked_mul(3), Some(Amount(3 * COIN)));
        assert_eq!(Amount(u64::MAX).checked_mul(2), None);
        assert_eq!(Amount(7).checked_div(2), Some(Amount(3)));
        assert_eq!(Amount(7).checked_div(0), None);
        assert_eq!(Amount::from_rnt(50), Some(Amount(50 * COIN)));
        assert_eq!(Amount::from_rnt(u64::MAX), None);
        assert!(Amount(MAX_MONEY).is_valid_money());
        assert!(!Amount(MAX_MONEY + 1).is_valid_money());
    }

    #[test]
    fn encodes_as_u64_le() {
        assert_eq!(encode_to_vec(&Amount(COIN)), COIN.to_le_bytes());
        assert_eq!(serde_json::to_string(&Amount(COIN)).unwrap(), "100000000");
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(v in 0..=MAX_MONEY) {
            let a = Amount(v);
            prop_assert_eq!(a.to_string().parse::<Amount>(), Ok(a));
        }

        #[test]
        fn encode_round_trip(v in any::<u64>()) {
            let enc = encode_to_vec(&Amount(v));
            prop_assert_eq!(decode_exact::<Amount>(&enc), Ok(Amount(v)));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = Amount::from_rnt_str(&s);
        }

        #[test]
        fn parse_numeric_like_never_panics(s in "[0-9.]{0,40}") {
            if let Ok(a) = Amount::from_rnt_str(&s) {
                prop_assert!(a.is_valid_money());
            }
        }
    }
}
