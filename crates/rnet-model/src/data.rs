//! The bundled corpus (`data/kjv.txt`, King James Bible, public domain) and the per-network
//! validation slices that consensus fixes by offset, length and Keccak-256d.
//!
//! The slices lie at the end of the corpus, disjoint and adjacent, in the order mainnet, testnet,
//! regtest; everything before the mainnet slice is the training text:
//!
//! | part | offset | length |
//! |---|---|---|
//! | training text | 0 | 4,320,444 |
//! | mainnet validation | 4,320,444 | 65,536 |
//! | testnet validation | 4,385,980 | 16,384 |
//! | regtest validation | 4,402,364 | 2,048 |

use crate::config::ModelNetwork;

/// The whole bundled corpus.
pub static CORPUS: &[u8] = include_bytes!("../../../data/kjv.txt");

/// Length of the bundled corpus in bytes.
pub const CORPUS_LEN: usize = 4_404_412;

/// Keccak-256d of the whole corpus.
pub const CORPUS_HASH: [u8; 32] =
    hex32("7427310b9266d4f0b0a57b6bb9b7f843d60f6f687868571ed7e6973f00b282a0");

/// A validation slice: a byte range of [`CORPUS`] and its Keccak-256d.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceSpec {
    /// First byte in the corpus.
    pub offset: usize,
    /// Number of bytes.
    pub len: usize,
    /// Keccak-256d of the bytes.
    pub hash: [u8; 32],
}

/// Mainnet validation slice: 64 KiB.
pub const MAINNET_SLICE: SliceSpec = SliceSpec {
    offset: 4_320_444,
    len: 65_536,
    hash: hex32("3838e5462e43d342546864e1406e5b9e1c49b99102a5a8cdaac606266500ee3a"),
};

/// Testnet validation slice: 16 KiB.
pub const TESTNET_SLICE: SliceSpec = SliceSpec {
    offset: 4_385_980,
    len: 16_384,
    hash: hex32("e9235a6df68a70a95401e48e3e4e07972c69fb82ab3c501aec3e2057f9bb836f"),
};

/// Regtest validation slice: 2 KiB.
pub const REGTEST_SLICE: SliceSpec = SliceSpec {
    offset: 4_402_364,
    len: 2_048,
    hash: hex32("1f2014670be7efbac3e6ad68f88bd08aaf8339834175e0daa7e8d3bee6e6d5b3"),
};

/// Length of the training text: every byte before the first validation slice.
pub const TRAINING_LEN: usize = 4_320_444;

/// Keccak-256d of the training text.
pub const TRAINING_HASH: [u8; 32] =
    hex32("9739e8872858514de0ee4d25769588b9aa49ad8e7db01aac686064537e3b00fa");

/// The slice spec of `network`.
pub fn slice_spec(network: ModelNetwork) -> SliceSpec {
    match network {
        ModelNetwork::Mainnet => MAINNET_SLICE,
        ModelNetwork::Testnet => TESTNET_SLICE,
        ModelNetwork::Regtest => REGTEST_SLICE,
    }
}

/// The canonical validation bytes of `network`.
pub fn validation_slice(network: ModelNetwork) -> &'static [u8] {
    let s = slice_spec(network);
    &CORPUS[s.offset..s.offset + s.len]
}

/// The bundled training text (the corpus before every validation slice).
pub fn training_text() -> &'static [u8] {
    &CORPUS[..TRAINING_LEN]
}

/// Parses 64 hex digits at compile time.
const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 64, "need 64 hex digits");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_crypto::keccak256d;

    const NETS: [ModelNetwork; 3] =
        [ModelNetwork::Mainnet, ModelNetwork::Testnet, ModelNetwork::Regtest];

    #[test]
    fn corpus_is_pinned() {
        assert_eq!(CORPUS.len(), CORPUS_LEN);
        assert_eq!(keccak256d(CORPUS), CORPUS_HASH);
        assert_eq!(keccak256d(training_text()), TRAINING_HASH);
    }

    #[test]
    fn slices_match_their_pinned_hashes() {
        for n in NETS {
            let s = slice_spec(n);
            assert_eq!(validation_slice(n).len(), s.len);
            assert_eq!(keccak256d(validation_slice(n)), s.hash, "{n:?}");
        }
        assert_eq!(MAINNET_SLICE.len, 64 * 1024);
        assert_eq!(TESTNET_SLICE.len, 16 * 1024);
        assert_eq!(REGTEST_SLICE.len, 2 * 1024);
    }

    #[test]
    fn slices_are_disjoint_and_after_the_training_text() {
        let mut next = TRAINING_LEN;
        for n in NETS {
            let s = slice_spec(n);
            assert_eq!(s.offset, next, "{n:?} follows the previous part");
            next = s.offset + s.len;
        }
        assert_eq!(next, CORPUS_LEN);
        // Every slice allows at least one full evaluation window of its genesis shape.
        for n in NETS {
            let t = crate::config::ModelConfig::genesis(n).window;
            assert!(validation_slice(n).len() > t);
        }
    }
}
