//! Serde helpers: byte strings shown as lowercase hex.

use serde::{Serialize, Serializer};

/// Serializes a byte slice as a lowercase hex string.
pub(crate) struct HexBytes<'a>(pub(crate) &'a [u8]);

impl Serialize for HexBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

/// Serializes a list of byte strings as a list of hex strings.
pub(crate) struct HexList<'a>(pub(crate) &'a [Vec<u8>]);

impl Serialize for HexList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|b| HexBytes(b)))
    }
}

/// `serialize_with` helper: a byte vector as a lowercase hex string.
pub(crate) fn hex_vec<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    HexBytes(bytes).serialize(s)
}
