//! Lower-case hex formatting for `Debug` output of public values (no allocation, no dependency).

use core::fmt;

/// Formats a byte slice as lower-case hex.
pub(crate) struct HexFmt<'a>(pub(crate) &'a [u8]);

impl fmt::Display for HexFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
