//! The short channel id: where the funding output is in the chain.

use std::fmt;
use std::str::FromStr;

use super::error::GossipError;

/// A channel's position in the chain, BOLT 7 layout: block height (24 bits) ‖ index of the
/// funding transaction in the block (24 bits) ‖ index of the funding output (16 bits),
/// big-endian in a `u64`. Ordering is chain order, which is why it is the graph's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShortChannelId(pub u64);

impl ShortChannelId {
    /// Largest block height and transaction index that fit (24 bits).
    pub const MAX_24: u32 = 0x00FF_FFFF;

    /// The id of output `output_index` of transaction `tx_index` in block `block_height`; fails
    /// when the height or the index does not fit in 24 bits.
    pub fn new(block_height: u32, tx_index: u32, output_index: u16) -> Result<Self, GossipError> {
        if block_height > Self::MAX_24 || tx_index > Self::MAX_24 {
            return Err(GossipError::ScidOutOfRange { block_height, tx_index });
        }
        Ok(Self(
            u64::from(block_height) << 40 | u64::from(tx_index) << 16 | u64::from(output_index),
        ))
    }

    /// Block height of the funding transaction (the top 24 bits).
    pub fn block_height(self) -> u32 {
        (self.0 >> 40) as u32
    }

    /// Index of the funding transaction in its block (the middle 24 bits).
    pub fn tx_index(self) -> u32 {
        ((self.0 >> 16) & u64::from(Self::MAX_24)) as u32
    }

    /// Index of the funding output in its transaction (the low 16 bits).
    pub fn output_index(self) -> u16 {
        (self.0 & 0xFFFF) as u16
    }

    /// The 8 big-endian bytes, as on the wire.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl From<u64> for ShortChannelId {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

impl From<ShortChannelId> for u64 {
    fn from(value: ShortChannelId) -> Self {
        value.0
    }
}

/// `HEIGHTxTXxOUTPUT`, the usual human form (e.g. `700000x12x1`).
impl fmt::Display for ShortChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.block_height(), self.tx_index(), self.output_index())
    }
}

impl FromStr for ShortChannelId {
    type Err = GossipError;

    /// Parses `HEIGHTxTXxOUTPUT` (decimal, no sign, each part in range).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GossipError::InvalidScidString;
        let mut parts = s.split('x');
        let mut next = || {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(bad)
        };
        let h: u32 = next()?.parse().map_err(|_| bad())?;
        let t: u32 = next()?.parse().map_err(|_| bad())?;
        let o: u16 = next()?.parse().map_err(|_| bad())?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Self::new(h, t, o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_layout_is_bolt7() {
        let id = ShortChannelId::new(700_000, 1_234, 7).unwrap();
        assert_eq!(id.0, 0x0AAE_6000_04D2_0007);
        assert_eq!((id.block_height(), id.tx_index(), id.output_index()), (700_000, 1_234, 7));
        assert_eq!(id.to_string(), "700000x1234x7");
        assert_eq!("700000x1234x7".parse::<ShortChannelId>().unwrap(), id);
        let max = ShortChannelId::new(ShortChannelId::MAX_24, ShortChannelId::MAX_24, u16::MAX);
        assert_eq!(max.unwrap().0, u64::MAX);
    }

    #[test]
    fn out_of_range_parts_are_refused() {
        assert!(ShortChannelId::new(1 << 24, 0, 0).is_err());
        assert!(ShortChannelId::new(0, 1 << 24, 0).is_err());
        for bad in ["", "1x2", "1x2x3x4", "1x-2x3", "1x2x65536", "16777216x0x0", "+1x2x3", "1xx3"] {
            assert!(bad.parse::<ShortChannelId>().is_err(), "{bad}");
        }
    }
}
