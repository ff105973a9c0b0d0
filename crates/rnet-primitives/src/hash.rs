//! 32-byte hash newtypes.
//!
//! All hashes display as 64 lowercase hex characters in **natural byte order** (byte 0 first),
//! not reversed as Bitcoin displays its txids and block hashes. `FromStr` parses the same form
//! (either case).

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::encode::{Decode, DecodeError, Encode, Reader};

/// Why a string is not a 32-byte hex hash.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseHashError {
    /// Not exactly 64 characters.
    #[error("a hash is 64 hex characters, got {0}")]
    InvalidLength(usize),
    /// A character outside `0-9a-fA-F`.
    #[error("invalid hex character in hash")]
    InvalidHex,
}

fn parse_hex32(s: &str) -> Result<[u8; 32], ParseHashError> {
    if s.len() != 64 {
        return Err(ParseHashError::InvalidLength(s.len()));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| ParseHashError::InvalidHex)?;
    Ok(out)
}

macro_rules! hash_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The all-zero hash.
            pub const ZERO: Self = Self([0u8; 32]);

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn to_bytes(self) -> [u8; 32] {
                self.0
            }

            /// The raw bytes, borrowed.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Whether every byte is zero.
            pub fn is_zero(&self) -> bool {
                self.0 == [0u8; 32]
            }

            /// Lowercase hex, natural byte order.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = ParseHashError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s).map(Self)
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }

        impl From<$name> for [u8; 32] {
            fn from(h: $name) -> Self {
                h.0
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl Encode for $name {
            fn encode(&self, w: &mut Vec<u8>) {
                w.extend_from_slice(&self.0);
            }
        }

        impl Decode for $name {
            const MIN_ENCODED_SIZE: usize = 32;
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.read_array().map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hash_type!(
    /// A generic 32-byte hash (merkle roots, checkpoint roots, commitments).
    Hash256
);
hash_type!(
    /// A transaction id: Keccak-256d of the transaction's encoding without witnesses.
    Txid
);
hash_type!(
    /// A witness transaction id: Keccak-256d of the transaction's full encoding.
    Wtxid
);
hash_type!(
    /// A block id: Keccak-256d of the header's encoding without the signature.
    BlockHash
);

impl Hash256 {
    /// Keccak-256d of `data`.
    pub fn hash(data: &[u8]) -> Self {
        Self(rnet_crypto::keccak256d(data))
    }
}

macro_rules! hash_conversions {
    ($($name:ident),*) => {$(
        impl From<$name> for Hash256 {
            fn from(h: $name) -> Self {
                Hash256(h.0)
            }
        }
        impl From<Hash256> for $name {
            fn from(h: Hash256) -> Self {
                $name(h.0)
            }
        }
    )*};
}
hash_conversions!(Txid, Wtxid, BlockHash);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{decode_exact, encode_to_vec};
    use proptest::prelude::*;

    #[test]
    fn displays_in_natural_byte_order() {
        let mut b = [0u8; 32];
        b[0] = 0x01;
        b[31] = 0xab;
        let h = Txid(b);
        let s = h.to_string();
        assert_eq!(s, format!("01{}ab", "00".repeat(30)));
        assert_eq!(s.parse::<Txid>(), Ok(h));
        assert_eq!(s.to_uppercase().parse::<Txid>(), Ok(h));
        assert_eq!(format!("{h:?}"), format!("Txid({s})"));
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert_eq!("00".parse::<Hash256>(), Err(ParseHashError::InvalidLength(2)));
        assert_eq!("0".repeat(65).parse::<Hash256>(), Err(ParseHashError::InvalidLength(65)));
        assert_eq!(
            format!("{}g", "0".repeat(63)).parse::<Hash256>(),
            Err(ParseHashError::InvalidHex)
        );
        // A multi-byte character: 64 bytes long but not hex.
        assert!(format!("é{}", "0".repeat(62)).parse::<Hash256>().is_err());
    }

    #[test]
    fn hash_is_keccak256d() {
        assert_eq!(
            Hash256::hash(b"abc").0,
            rnet_crypto::keccak256(&rnet_crypto::keccak256(b"abc"))
        );
    }

    #[test]
    fn serde_uses_hex_strings() {
        let h = BlockHash([0x5a; 32]);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{}\"", "5a".repeat(32)));
        assert_eq!(serde_json::from_str::<BlockHash>(&json).unwrap(), h);
    }

    proptest! {
        #[test]
        fn round_trips(b in any::<[u8; 32]>()) {
            let h = Hash256(b);
            prop_assert_eq!(h.to_string().parse::<Hash256>(), Ok(h));
            let enc = encode_to_vec(&h);
            prop_assert_eq!(&enc[..], &b[..]);
            prop_assert_eq!(decode_exact::<Hash256>(&enc), Ok(h));
        }

        #[test]
        fn parse_never_panics(s in ".{0,70}") {
            let _ = s.parse::<Hash256>();
        }
    }
}
