//! BIP39 mnemonics: 24 English words (256 bits of entropy + 8 checksum bits) and their 64-byte
//! seeds.
//!
//! Wallets use exactly 24 words ([BIP39](https://github.com/bitcoin/bips/blob/master/bip-0039.mediawiki)):
//! the phrase encodes 32 bytes of entropy plus the first byte of its SHA-256 as checksum; the
//! seed is `PBKDF2-HMAC-SHA512(password = phrase, salt = "mnemonic" ‖ passphrase, 2048, 64)` with
//! phrase and passphrase in Unicode NFKD. Parsing folds the phrase to lower case and accepts any
//! whitespace between words.

use core::fmt;

use rand_core::{CryptoRng, OsRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::MnemonicError;

/// Number of words in a ResonanceNet mnemonic.
pub const WORD_COUNT: usize = 24;
/// Bytes of entropy behind a 24-word mnemonic.
pub const ENTROPY_LEN: usize = 32;
/// Length in bytes of a BIP39 seed.
pub const SEED_LEN: usize = 64;

/// A valid 24-word English BIP39 mnemonic (checksum verified). Zeroized on drop; `Debug` does
/// not print the words and there is deliberately no `Display` (use [`Mnemonic::phrase`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Mnemonic(bip39::Mnemonic);

// `bip39::Mnemonic` is built with its `zeroize` feature: it zeroizes its word indices on drop.
impl ZeroizeOnDrop for Mnemonic {}

impl fmt::Debug for Mnemonic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mnemonic(<24 words redacted>)")
    }
}

impl Mnemonic {
    /// A fresh 24-word mnemonic from the operating system's RNG.
    pub fn generate_24() -> Self {
        Self::generate_24_with(&mut OsRng)
    }

    /// A fresh 24-word mnemonic from `rng`.
    pub fn generate_24_with<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut entropy = Zeroizing::new([0u8; ENTROPY_LEN]);
        rng.fill_bytes(entropy.as_mut());
        Self::from_entropy(&entropy)
    }

    /// The mnemonic encoding 32 bytes of entropy.
    pub fn from_entropy(entropy: &[u8; ENTROPY_LEN]) -> Self {
        match bip39::Mnemonic::from_entropy_in(bip39::Language::English, entropy) {
            Ok(m) => Self(m),
            // 256 bits is a valid BIP39 entropy length, so this arm is never taken.
            Err(e) => unreachable!("32-byte entropy rejected by bip39: {e}"),
        }
    }

    /// Parse a phrase: exactly 24 words from the English list (case-insensitive, any
    /// whitespace) with a correct checksum.
    pub fn parse(phrase: &str) -> Result<Self, MnemonicError> {
        let lower = Zeroizing::new(phrase.to_lowercase());
        let count = lower.split_whitespace().count();
        if count != WORD_COUNT {
            return Err(MnemonicError::WordCount(count));
        }
        bip39::Mnemonic::parse_in(bip39::Language::English, lower.as_str()).map(Self).map_err(|e| {
            match e {
                bip39::Error::UnknownWord(i) => MnemonicError::UnknownWord(i),
                bip39::Error::BadWordCount(n) => MnemonicError::WordCount(n),
                _ => MnemonicError::InvalidChecksum,
            }
        })
    }

    /// The 24 words separated by single spaces, in a string zeroized on drop.
    pub fn phrase(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(WORD_COUNT * 9));
        for (i, w) in self.0.words().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(w);
        }
        s
    }

    /// The words, in order.
    pub fn words(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.words()
    }

    /// The 32 bytes of entropy the phrase encodes.
    pub fn to_entropy(&self) -> Zeroizing<[u8; ENTROPY_LEN]> {
        let (mut arr, len) = self.0.to_entropy_array();
        let mut out = Zeroizing::new([0u8; ENTROPY_LEN]);
        let n = len.min(ENTROPY_LEN);
        out[..n].copy_from_slice(&arr[..n]);
        arr.zeroize();
        out
    }

    /// The 64-byte BIP39 seed for `passphrase` (use `""` for none).
    pub fn to_seed(&self, passphrase: &str) -> Seed {
        Seed(self.0.to_seed(passphrase))
    }
}

impl core::str::FromStr for Mnemonic {
    type Err = MnemonicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A 64-byte BIP39 seed, the input of SLIP-10 master key derivation. Zeroized on drop; `Debug`
/// does not print it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Seed([u8; SEED_LEN]);

impl Seed {
    /// A seed from raw bytes (e.g. restored from an encrypted backup).
    pub fn from_bytes(bytes: [u8; SEED_LEN]) -> Self {
        Self(bytes)
    }

    /// The 64 seed bytes.
    pub fn as_bytes(&self) -> &[u8; SEED_LEN] {
        &self.0
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// All 24-word English vectors of the official BIP39 test vectors
    /// (trezor/python-mnemonic `vectors.json`), passphrase "TREZOR": (entropy, mnemonic, seed).
    const VECTORS: [(&str, &str, &str); 8] = [
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art",
            "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8",
        ),
        (
            "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
            "legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title",
            "bc09fca1804f7e69da93c2f2028eb238c227f2e9dda30cd63699232578480a4021b146ad717fbb7e451ce9eb835f43620bf5c514db0f8add49f5d121449d3e87",
        ),
        (
            "8080808080808080808080808080808080808080808080808080808080808080",
            "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic bless",
            "c0c519bd0e91a2ed54357d9d1ebef6f5af218a153624cf4f2da911a0ed8f7a09e2ef61af0aca007096df430022f7a2b6fb91661a9589097069720d015e4e982f",
        ),
        (
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo vote",
            "dd48c104698c30cfe2b6142103248622fb7bb0ff692eebb00089b32d22484e1613912f0a5b694407be899ffd31ed3992c456cdf60f5d4564b8ba3f05a69890ad",
        ),
        (
            "68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c",
            "hamster diagram private dutch cause delay private meat slide toddler razor book happy fancy gospel tennis maple dilemma loan word shrug inflict delay length",
            "64c87cde7e12ecf6704ab95bb1408bef047c22db4cc7491c4271d170a1b213d20b385bc1588d9c7b38f1b39d415665b8a9030c9ec653d75e65f847d8fc1fc440",
        ),
        (
            "9f6a2878b2520799a44ef18bc7df394e7061a224d2c33cd015b157d746869863",
            "panda eyebrow bullet gorilla call smoke muffin taste mesh discover soft ostrich alcohol speed nation flash devote level hobby quick inner drive ghost inside",
            "72be8e052fc4919d2adf28d5306b5474b0069df35b02303de8c1729c9538dbb6fc2d731d5f832193cd9fb6aeecbc469594a70e3dd50811b5067f3b88b28c3e8d",
        ),
        (
            "066dca1a2bb7e8a1db2832148ce9933eea0f3ac9548d793112d9a95c9407efad",
            "all hour make first leader extend hole alien behind guard gospel lava path output census museum junior mass reopen famous sing advance salt reform",
            "26e975ec644423f4a4c4f4215ef09b4bd7ef924e85d1d17c4cf3f136c2863cf6df0a475045652c57eb5fb41513ca2a2d67722b77e954b4b3fc11f7590449191d",
        ),
        (
            "f585c11aec520db57dd353c69554b21a89b20fb0650966fa0a9d6f74fd989d8f",
            "void come effort suffer camp survey warrior heavy shoot primary clutch crush open amazing screen patrol group space point ten exist slush involve unfold",
            "01f5bced59dec48e362f2c45b5de68b9fd6c92c6634f44d6d40aab69056506f0e35524a518034ddc1192e1dacd32c1ed3eaa3c3b131c88ed8e7e54c49a5d0998",
        ),
    ];

    #[test]
    fn bip39_official_24_word_vectors_trezor() {
        for (entropy, phrase, seed) in VECTORS {
            let entropy: [u8; 32] = hex::decode(entropy).unwrap().try_into().unwrap();
            let m = Mnemonic::from_entropy(&entropy);
            assert_eq!(m.phrase().as_str(), phrase);
            let parsed = Mnemonic::parse(phrase).unwrap();
            assert!(parsed == m);
            assert_eq!(*parsed.to_entropy(), entropy);
            assert_eq!(hex::encode(parsed.to_seed("TREZOR").as_bytes()), seed);
        }
    }

    #[test]
    fn parse_errors_are_typed() {
        let (_, phrase, _) = VECTORS[0];
        // Checksum: swap the last word for another valid word.
        let bad = phrase.replace(" art", " abandon");
        assert_eq!(Mnemonic::parse(&bad), Err(MnemonicError::InvalidChecksum));
        // Unknown word at index 3.
        let words: Vec<&str> = phrase.split(' ').collect();
        let mut w = words.clone();
        w[3] = "notaword";
        assert_eq!(Mnemonic::parse(&w.join(" ")), Err(MnemonicError::UnknownWord(3)));
        // Word counts: a valid 12-word BIP39 phrase is still refused (24 words only).
        assert_eq!(
            Mnemonic::parse(
                "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
            ),
            Err(MnemonicError::WordCount(12))
        );
        assert_eq!(Mnemonic::parse(""), Err(MnemonicError::WordCount(0)));
        // Case and whitespace are forgiven.
        let shouty = format!("  {}\n", phrase.to_uppercase().replace(' ', "\t "));
        assert!(Mnemonic::parse(&shouty).unwrap() == Mnemonic::parse(phrase).unwrap());
    }

    #[test]
    fn generate_and_debug() {
        let m = Mnemonic::generate_24();
        assert_eq!(m.words().count(), 24);
        let again = Mnemonic::parse(&m.phrase()).unwrap();
        assert!(again == m);
        assert_eq!(format!("{m:?}"), "Mnemonic(<24 words redacted>)");
        let seed = m.to_seed("");
        assert_eq!(format!("{seed:?}"), "Seed(<redacted>)");
    }

    proptest! {
        #[test]
        fn entropy_round_trip(entropy in any::<[u8; 32]>()) {
            let m = Mnemonic::from_entropy(&entropy);
            let parsed = Mnemonic::parse(&m.phrase()).unwrap();
            prop_assert_eq!(*parsed.to_entropy(), entropy);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = Mnemonic::parse(&s);
        }

        #[test]
        fn parse_word_soup_never_panics(words in proptest::collection::vec(prop_oneof!["[a-z]{3,8}", Just("abandon".to_string()), Just("zoo".to_string())], 20..28)) {
            let _ = Mnemonic::parse(&words.join(" "));
        }
    }
}
