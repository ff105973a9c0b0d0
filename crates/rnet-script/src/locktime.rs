//! Absolute (BIP65) and relative (BIP68/BIP112) lock-time encodings.
//!
//! The interpreter compares a script's requirement with the transaction's `lock_time` (CLTV) or
//! the input's `sequence` (CSV). Whether the transaction's lock time has passed and whether each
//! input's coin is old enough for its sequence is enforced by consensus, outside the
//! interpreter, using [`relative_lock`] for the latter.

/// Lock times below this are block heights, at or above it unix times (BIP65, as Bitcoin).
pub const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// Sequence bit 31: when set, the sequence carries no relative lock (BIP68).
pub const SEQUENCE_LOCKTIME_DISABLE_FLAG: u32 = 1 << 31;
/// Sequence bit 22: when set, the relative lock counts 512-second units, else blocks (BIP68).
pub const SEQUENCE_LOCKTIME_TYPE_FLAG: u32 = 1 << 22;
/// The bits of a sequence that hold the relative lock's value (BIP68).
pub const SEQUENCE_LOCKTIME_MASK: u32 = 0x0000_ffff;
/// A relative time lock's unit: 2^9 = 512 seconds (BIP68).
pub const SEQUENCE_LOCKTIME_GRANULARITY: u32 = 9;
/// The lowest transaction version for which sequences carry relative locks (BIP68), and for
/// which `OP_CHECKSEQUENCEVERIFY` can succeed (BIP112).
pub const MIN_RELATIVE_LOCK_TX_VERSION: u32 = 2;

/// A relative lock time decoded from an input's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelativeLock {
    /// The spent coin must be this many blocks deep: the spending block's height must be at least
    /// the coin's height plus this value.
    Blocks(u16),
    /// The spent coin must be this many 512-second units old, measured (as BIP68) from the
    /// median-time-past of the block before the coin's block.
    Time(u16),
}

impl RelativeLock {
    /// The value in its unit (blocks or 512-second units).
    pub const fn value(self) -> u16 {
        match self {
            Self::Blocks(n) | Self::Time(n) => n,
        }
    }

    /// For [`RelativeLock::Time`], the lock in seconds (`value × 512`).
    pub const fn seconds(self) -> Option<u32> {
        match self {
            Self::Blocks(_) => None,
            Self::Time(n) => Some((n as u32) << SEQUENCE_LOCKTIME_GRANULARITY),
        }
    }

    /// The sequence number (and equally the `OP_CHECKSEQUENCEVERIFY` operand) that encodes this
    /// lock: the value in the low 16 bits, plus the type flag for time locks.
    pub const fn to_sequence(self) -> u32 {
        match self {
            Self::Blocks(n) => n as u32,
            Self::Time(n) => SEQUENCE_LOCKTIME_TYPE_FLAG | n as u32,
        }
    }

    /// The lock encoded by a CSV operand or template parameter, requiring the canonical form: no
    /// bits besides the type flag and the 16 value bits. `None` otherwise (including when the
    /// disable flag is set).
    pub const fn from_canonical(n: u32) -> Option<Self> {
        if n & !(SEQUENCE_LOCKTIME_TYPE_FLAG | SEQUENCE_LOCKTIME_MASK) != 0 {
            return None;
        }
        let value = (n & SEQUENCE_LOCKTIME_MASK) as u16;
        Some(if n & SEQUENCE_LOCKTIME_TYPE_FLAG != 0 {
            Self::Time(value)
        } else {
            Self::Blocks(value)
        })
    }
}

/// The relative lock an input's `sequence` imposes (BIP68): `None` when bit 31 (disable) is set,
/// else the 16-bit value with its type (bit 22). Bits 16..=21 and 23..=30 are ignored.
///
/// Consensus applies it only to transactions of version ≥ [`MIN_RELATIVE_LOCK_TX_VERSION`] and
/// never to coinbase inputs.
pub const fn relative_lock(sequence: u32) -> Option<RelativeLock> {
    if sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG != 0 {
        return None;
    }
    let value = (sequence & SEQUENCE_LOCKTIME_MASK) as u16;
    Some(if sequence & SEQUENCE_LOCKTIME_TYPE_FLAG != 0 {
        RelativeLock::Time(value)
    } else {
        RelativeLock::Blocks(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_sequences() {
        assert_eq!(relative_lock(0xffff_ffff), None);
        assert_eq!(relative_lock(1 << 31), None);
        assert_eq!(relative_lock(0), Some(RelativeLock::Blocks(0)));
        assert_eq!(relative_lock(144), Some(RelativeLock::Blocks(144)));
        assert_eq!(relative_lock(0x0040_0010), Some(RelativeLock::Time(16)));
        // Ignored bits.
        assert_eq!(
            relative_lock(0x3f_0005 & !SEQUENCE_LOCKTIME_TYPE_FLAG),
            Some(RelativeLock::Blocks(5))
        );
        assert_eq!(relative_lock(0x7fbf_0005), Some(RelativeLock::Blocks(5)));
        assert_eq!(RelativeLock::Time(16).seconds(), Some(8192));
        assert_eq!(RelativeLock::Blocks(16).seconds(), None);
    }

    #[test]
    fn canonical_roundtrip() {
        for lock in [RelativeLock::Blocks(1), RelativeLock::Blocks(65535), RelativeLock::Time(7)] {
            assert_eq!(RelativeLock::from_canonical(lock.to_sequence()), Some(lock));
            assert_eq!(relative_lock(lock.to_sequence()), Some(lock));
        }
        assert_eq!(RelativeLock::from_canonical(1 << 31), None);
        assert_eq!(RelativeLock::from_canonical(1 << 16), None);
    }
}
