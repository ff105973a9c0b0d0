//! The feature vector of an invoice's `9` field, with BOLT 9 bit numbering and the
//! "it's OK to be odd" rule.

use std::collections::BTreeSet;

use super::InvoiceError;

/// `var_onion_optin`, required: the payee accepts TLV onion payloads.
pub const VAR_ONION_OPTIN_REQUIRED: u16 = 8;
/// `var_onion_optin`, optional.
pub const VAR_ONION_OPTIN_OPTIONAL: u16 = 9;
/// `payment_secret`, required: the payee checks the onion's payment secret against `s`.
pub const PAYMENT_SECRET_REQUIRED: u16 = 14;
/// `payment_secret`, optional.
pub const PAYMENT_SECRET_OPTIONAL: u16 = 15;
/// `basic_mpp`, required: the payee accepts (and needs) multi-part payments.
pub const BASIC_MPP_REQUIRED: u16 = 16;
/// `basic_mpp`, optional: the payee accepts multi-part payments.
pub const BASIC_MPP_OPTIONAL: u16 = 17;

/// Highest feature bit a `9` field can carry: 1023 words of 5 bits.
pub const MAX_FEATURE_BIT: u16 = 1023 * 5 - 1;

/// The (even) bit of every feature a reader of this crate understands; odd bits are always
/// acceptable, an even bit outside this list makes an invoice unpayable.
const KNOWN_REQUIRED: [u16; 3] =
    [VAR_ONION_OPTIN_REQUIRED, PAYMENT_SECRET_REQUIRED, BASIC_MPP_REQUIRED];

/// (feature, feature it depends on), both as their even bit (BOLT 9 dependencies).
const DEPENDENCIES: [(u16, u16); 2] = [
    (PAYMENT_SECRET_REQUIRED, VAR_ONION_OPTIN_REQUIRED),
    (BASIC_MPP_REQUIRED, PAYMENT_SECRET_REQUIRED),
];

/// The set of feature bits of an invoice. Bit 0 is the least significant bit of the `9` field;
/// an even bit means "required", the odd bit above it "optional".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct InvoiceFeatures {
    bits: BTreeSet<u16>,
}

impl InvoiceFeatures {
    /// No features (the `9` field is then omitted).
    pub fn new() -> Self {
        Self::default()
    }

    /// The features with `bit` also set.
    pub fn with_bit(mut self, bit: u16) -> Self {
        self.bits.insert(bit);
        self
    }

    /// Sets `bit`.
    pub fn set_bit(&mut self, bit: u16) {
        self.bits.insert(bit);
    }

    /// Whether `bit` is set.
    pub fn has_bit(&self, bit: u16) -> bool {
        self.bits.contains(&bit)
    }

    /// Whether the feature whose required bit is `even_bit` is offered (either of its two bits).
    pub fn supports(&self, even_bit: u16) -> bool {
        let even = even_bit & !1;
        self.has_bit(even) || self.has_bit(even | 1)
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// The set bits, ascending.
    pub fn bits(&self) -> impl Iterator<Item = u16> + '_ {
        self.bits.iter().copied()
    }

    /// Checks the rules a reader applies: every bit at most [`MAX_FEATURE_BIT`], no even bit this
    /// crate does not know, and every known dependency present.
    pub fn validate(&self) -> Result<(), InvoiceError> {
        if let Some(&bit) = self.bits.iter().next_back() {
            if bit > MAX_FEATURE_BIT {
                return Err(InvoiceError::FeatureBitOutOfRange(bit));
            }
        }
        if let Some(&bit) = self.bits.iter().find(|&&b| b % 2 == 0 && !KNOWN_REQUIRED.contains(&b))
        {
            return Err(InvoiceError::UnknownRequiredFeature(bit));
        }
        for (feature, needs) in DEPENDENCIES {
            if self.supports(feature) && !self.supports(needs) {
                return Err(InvoiceError::MissingFeatureDependency { feature, needs });
            }
        }
        Ok(())
    }

    /// The minimal big-endian word string (no leading zero word); empty when no bit is set.
    pub(crate) fn to_words(&self) -> Vec<u8> {
        let Some(&top) = self.bits.iter().next_back() else { return Vec::new() };
        let len = usize::from(top) / 5 + 1;
        let mut words = vec![0u8; len];
        for &bit in &self.bits {
            let from_end = usize::from(bit) / 5;
            words[len - 1 - from_end] |= 1 << (bit % 5);
        }
        words
    }

    /// Reads a word string; `None` if it has a leading zero word or is empty (non-minimal: a
    /// writer omits the field instead).
    pub(crate) fn from_words(words: &[u8]) -> Option<Self> {
        if words.first().is_none_or(|&w| w == 0) {
            return None;
        }
        let mut bits = BTreeSet::new();
        for (from_end, &w) in words.iter().rev().enumerate() {
            for b in 0..5u16 {
                if w & (1 << b) != 0 {
                    // from_end < 1023 for a field, so the bit index fits u16.
                    let bit = u16::try_from(from_end * 5).ok()?.checked_add(b)?;
                    bits.insert(bit);
                }
            }
        }
        Some(Self { bits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_big_endian_and_minimal() {
        let f = InvoiceFeatures::new()
            .with_bit(VAR_ONION_OPTIN_REQUIRED)
            .with_bit(PAYMENT_SECRET_REQUIRED);
        // BOLT 11 example: bits 8 and 14 → words "sgq" = 16, 8, 0.
        assert_eq!(f.to_words(), vec![16, 8, 0]);
        assert_eq!(InvoiceFeatures::from_words(&[16, 8, 0]), Some(f));
        assert_eq!(InvoiceFeatures::new().to_words(), Vec::<u8>::new());
        assert_eq!(InvoiceFeatures::from_words(&[]), None);
        assert_eq!(InvoiceFeatures::from_words(&[0, 16, 8, 0]), None);
        let one = InvoiceFeatures::new().with_bit(0);
        assert_eq!(one.to_words(), vec![1]);
        assert_eq!(InvoiceFeatures::from_words(&[1]), Some(one));
    }

    #[test]
    fn validation() {
        assert_eq!(InvoiceFeatures::new().validate(), Ok(()));
        assert_eq!(InvoiceFeatures::new().with_bit(101).validate(), Ok(()));
        assert_eq!(
            InvoiceFeatures::new().with_bit(100).validate(),
            Err(InvoiceError::UnknownRequiredFeature(100))
        );
        assert_eq!(
            InvoiceFeatures::new().with_bit(BASIC_MPP_OPTIONAL).validate(),
            Err(InvoiceError::MissingFeatureDependency {
                feature: BASIC_MPP_REQUIRED,
                needs: PAYMENT_SECRET_REQUIRED
            })
        );
        let full = InvoiceFeatures::new()
            .with_bit(VAR_ONION_OPTIN_OPTIONAL)
            .with_bit(PAYMENT_SECRET_REQUIRED)
            .with_bit(BASIC_MPP_OPTIONAL);
        assert_eq!(full.validate(), Ok(()));
        assert!(full.supports(BASIC_MPP_REQUIRED));
        assert!(!full.has_bit(BASIC_MPP_REQUIRED));
        assert_eq!(
            InvoiceFeatures::new().with_bit(MAX_FEATURE_BIT + 2).validate(),
            Err(InvoiceError::FeatureBitOutOfRange(MAX_FEATURE_BIT + 2))
        );
    }
}
