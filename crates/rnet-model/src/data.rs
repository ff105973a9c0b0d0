//! The bundled text (`data/kjv.txt`, King James Bible, public domain), its split into the
//! **corpus** that Proof-of-Training samples from and the held-out **benchmark slice**, and a
//! few fixed excerpts used by tests, benchmarks and golden vectors.
//!
//! | part | offset | length |
//! |---|---|---|
//! | corpus (sampled by consensus, trained on by miners) | 0 | 4,338,876 |
//! | benchmark slice (held out forever, reporting only) | 4,338,876 | 65,536 |
//!
//! With a network's window `T`, corpus record `r` is the bytes `[r·T, r·T + T + 1)` for
//! `r < R = ⌊(corpus length − 1) / T⌋`: one evaluation window of `T` predictions
//! ([`record`], [`record_count`]). The consensus side (sampling, merkle commitments) lives in
//! `rnet_consensus::sample`.
//!
//! The excerpts ([`excerpt`]) are the old fixed validation slices at the end of the file: they
//! no longer mean anything to consensus but pin golden values and size benchmarks.

use crate::config::ModelNetwork;

/// The whole bundled file `data/kjv.txt`.
pub static BUNDLED_TEXT: &[u8] = include_bytes!("../../../data/kjv.txt");

/// Length of the bundled file in bytes.
pub const BUNDLED_LEN: usize = 4_404_412;

/// Keccak-256d of the whole bundled file.
pub const BUNDLED_HASH: [u8; 32] =
    hex32("7427310b9266d4f0b0a57b6bb9b7f843d60f6f687868571ed7e6973f00b282a0");

/// Length of the benchmark slice: the last 64 KiB of the bundled file.
pub const BENCHMARK_LEN: usize = 65_536;

/// Length of the corpus: every byte before the benchmark slice.
pub const CORPUS_LEN: usize = BUNDLED_LEN - BENCHMARK_LEN;

/// Keccak-256d of the corpus.
pub const CORPUS_HASH: [u8; 32] =
    hex32("230e17d0f6015da666350f065b0b97964cd8cdf34b05ba1d7d94d287039f71da");

/// Keccak-256d of the benchmark slice.
pub const BENCHMARK_HASH: [u8; 32] =
    hex32("1a8a3e95621c6f59ee6b13dc4c764371d0c8828eeb66c32ee04727195ec49d1a");

/// The corpus: what Proof-of-Training samples records from and what miners train on.
pub fn corpus() -> &'static [u8] {
    &BUNDLED_TEXT[..CORPUS_LEN]
}

/// The benchmark slice: never sampled by consensus and never rewarded, so a model's loss on it
/// (`benchmark_loss`) shows whether it generalises.
pub fn benchmark_slice() -> &'static [u8] {
    &BUNDLED_TEXT[CORPUS_LEN..]
}

/// Number of corpus records `R = ⌊(corpus length − 1) / T⌋` for window `T` (0 for `T = 0`).
pub fn record_count(window: usize) -> u64 {
    (CORPUS_LEN - 1).checked_div(window).unwrap_or(0) as u64
}

/// Record `r` for window `T`: the corpus bytes `[r·T, r·T + T + 1)`; `None` for `r ≥ R`.
pub fn record(window: usize, r: u64) -> Option<&'static [u8]> {
    if r >= record_count(window) {
        return None;
    }
    let start = usize::try_from(r).ok()?.checked_mul(window)?;
    corpus().get(start..start + window + 1)
}

/// A fixed excerpt: a byte range of [`BUNDLED_TEXT`] and its Keccak-256d.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceSpec {
    /// First byte in the corpus.
    pub offset: usize,
    /// Number of bytes.
    pub len: usize,
    /// Keccak-256d of the bytes.
    pub hash: [u8; 32],
}

/// Mainnet-sized excerpt: 64 KiB.
pub const MAINNET_SLICE: SliceSpec = SliceSpec {
    offset: 4_320_444,
    len: 65_536,
    hash: hex32("3838e5462e43d342546864e1406e5b9e1c49b99102a5a8cdaac606266500ee3a"),
};

/// Testnet-sized excerpt: 16 KiB.
pub const TESTNET_SLICE: SliceSpec = SliceSpec {
    offset: 4_385_980,
    len: 16_384,
    hash: hex32("e9235a6df68a70a95401e48e3e4e07972c69fb82ab3c501aec3e2057f9bb836f"),
};

/// Regtest-sized excerpt: 2 KiB (it lies inside the benchmark slice).
pub const REGTEST_SLICE: SliceSpec = SliceSpec {
    offset: 4_402_364,
    len: 2_048,
    hash: hex32("1f2014670be7efbac3e6ad68f88bd08aaf8339834175e0daa7e8d3bee6e6d5b3"),
};

/// The excerpt spec of `network`.
pub fn slice_spec(network: ModelNetwork) -> SliceSpec {
    match network {
        ModelNetwork::Mainnet => MAINNET_SLICE,
        ModelNetwork::Testnet => TESTNET_SLICE,
        ModelNetwork::Regtest => REGTEST_SLICE,
    }
}

/// The fixed excerpt of `network`'s size (test data and golden vectors; not consensus).
pub fn excerpt(network: ModelNetwork) -> &'static [u8] {
    let s = slice_spec(network);
    &BUNDLED_TEXT[s.offset..s.offset + s.len]
}

/// The text miners train on by default: the corpus.
pub fn training_text() -> &'static [u8] {
    corpus()
}

/// Parses 64 lowercase hex digits at compile time (for pinned hashes; a bad literal fails the
/// build, not the program).
pub const fn hex32(s: &str) -> [u8; 32] {
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
    fn text_and_split_are_pinned() {
        assert_eq!(BUNDLED_TEXT.len(), BUNDLED_LEN);
        assert_eq!(keccak256d(BUNDLED_TEXT), BUNDLED_HASH);
        assert_eq!(corpus().len(), 4_338_876);
        assert_eq!(benchmark_slice().len(), 65_536);
        assert_eq!(keccak256d(corpus()), CORPUS_HASH);
        assert_eq!(keccak256d(benchmark_slice()), BENCHMARK_HASH);
        assert_eq!(training_text(), corpus());
    }

    #[test]
    fn records_tile_the_corpus() {
        for n in NETS {
            let t = crate::config::ModelConfig::genesis(n).window;
            let r = record_count(t);
            assert_eq!(r, ((CORPUS_LEN - 1) / t) as u64);
            let first = record(t, 0).unwrap();
            assert_eq!(first, &corpus()[..t + 1]);
            let last = record(t, r - 1).unwrap();
            assert_eq!(last.len(), t + 1);
            assert!((r as usize - 1) * t + t < CORPUS_LEN);
            assert!(record(t, r).is_none());
            // Neighbours overlap by one byte: every prediction belongs to exactly one record.
            assert_eq!(record(t, 1).unwrap()[0], first[t]);
        }
        assert_eq!(record_count(512), 8_474);
        assert_eq!(record_count(256), 16_948);
        assert_eq!(record_count(64), 67_794);
        assert_eq!(record_count(0), 0);
    }

    #[test]
    fn excerpts_match_their_pinned_hashes() {
        for n in NETS {
            let s = slice_spec(n);
            assert_eq!(excerpt(n).len(), s.len);
            assert_eq!(keccak256d(excerpt(n)), s.hash, "{n:?}");
            assert!(excerpt(n).len() > crate::config::ModelConfig::genesis(n).window);
        }
    }
}
