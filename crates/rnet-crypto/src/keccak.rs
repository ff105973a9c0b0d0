//! Keccak-256 with the original Keccak padding (0x01, as in Ethereum, not SHA3-256's 0x06) and its
//! doubled form Keccak-256d, used for block ids, txids, merkle nodes and checkpoint chunks.

use sha3::{Digest, Keccak256};

/// Keccak-256 of `data` (original 0x01 padding).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// Keccak-256d: Keccak-256 applied twice, `keccak256(keccak256(data))`.
pub fn keccak256d(data: &[u8]) -> [u8; 32] {
    keccak256(&keccak256(data))
}

/// Incremental Keccak-256d for data that arrives in pieces (large encodings, checkpoint chunks).
#[derive(Clone, Default)]
pub struct Keccak256dWriter {
    inner: Keccak256,
}

impl Keccak256dWriter {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// The Keccak-256d of everything fed so far.
    pub fn finalize(self) -> [u8; 32] {
        keccak256(&self.inner.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn keccak256_empty_matches_ethereum() {
        assert_eq!(
            hex(&keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn keccak256_abc_matches_ethereum() {
        assert_eq!(
            hex(&keccak256(b"abc")),
            "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
        );
    }

    #[test]
    fn keccak256d_is_double_and_writer_agrees() {
        let once = keccak256(b"resonance");
        assert_eq!(keccak256d(b"resonance"), keccak256(&once));
        let mut w = Keccak256dWriter::new();
        w.update(b"reso");
        w.update(b"nance");
        assert_eq!(w.finalize(), keccak256d(b"resonance"));
    }
}
