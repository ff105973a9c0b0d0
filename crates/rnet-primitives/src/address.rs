//! Bech32m addresses: a network (by HRP), a witness version 0..=16 and a witness program of
//! 2..=40 bytes.
//!
//! ResonanceNet uses the **bech32m** checksum (BIP350) for *every* witness version, version 0
//! included; BIP350 keeps bech32 for Bitcoin's v0, we do not: a bech32-checksummed string is
//! rejected whatever its version. There is also no v0-specific program length rule (Bitcoin's
//! 20-or-32); what a program means is the script layer's business.
//!
//! Encoding is lowercase. Decoding accepts all-lowercase or all-uppercase strings, rejects mixed
//! case, strings over 90 characters, unknown HRPs (typed error naming the HRP), bad checksums,
//! bad padding, versions above 16 and programs outside 2..=40 bytes.
//!
//! The output script an address pays to is `[OP_n, len, program…]` with `OP_0 = 0x00` and
//! `OP_1..OP_16 = 0x51..0x60`.

use core::fmt;
use core::str::FromStr;

use bech32::primitives::decode::{CheckedHrpstring, CheckedHrpstringError};
use bech32::{Bech32m, ByteIterExt, Fe32, Fe32IterExt, Hrp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::network::Network;

/// Longest address string accepted (BIP173's limit).
pub const MAX_ADDRESS_LEN: usize = 90;

/// Shortest witness program.
pub const MIN_PROGRAM_LEN: usize = 2;

/// Longest witness program.
pub const MAX_PROGRAM_LEN: usize = 40;

/// Highest witness version.
pub const MAX_WITNESS_VERSION: u8 = 16;

/// Why a string or script is not an address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// Longer than [`MAX_ADDRESS_LEN`].
    #[error("address is {0} characters, at most 90 allowed")]
    TooLong(usize),
    /// Not a valid bech32m string (characters, case, separator, HRP, checksum).
    #[error("invalid bech32m string: {0}")]
    Bech32(#[from] CheckedHrpstringError),
    /// An HRP that cannot be encoded.
    #[error("invalid human-readable part {0:?}")]
    InvalidHrp(String),
    /// A valid bech32m string whose HRP is not one of ours.
    #[error("unknown address prefix {0:?} (expected rnt, trnt or rrnt)")]
    UnknownHrp(String),
    /// An address of another network than the one required.
    #[error("address is for {found}, expected {expected}")]
    WrongNetwork {
        /// The network required.
        expected: Network,
        /// The network of the address.
        found: Network,
    },
    /// No data after the separator besides the checksum.
    #[error("address has no data")]
    EmptyData,
    /// Witness version above 16.
    #[error("invalid witness version {0}")]
    InvalidWitnessVersion(u8),
    /// More than 4 bits of padding, or non-zero padding bits.
    #[error("invalid padding in the 5-to-8-bit conversion")]
    InvalidPadding,
    /// Program shorter than 2 or longer than 40 bytes.
    #[error("invalid witness program length {0} (must be 2..=40)")]
    InvalidProgramLength(usize),
    /// A script that is not `[OP_n, push(program)]`.
    #[error("script is not a witness program")]
    NotWitnessProgram,
}

/// A witness program decoded from any bech32m string, with its (lowercased) HRP uninterpreted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawWitnessAddress {
    /// The human-readable part, lowercase.
    pub hrp: String,
    /// Witness version, 0..=16.
    pub witness_version: u8,
    /// Witness program, 2..=40 bytes.
    pub program: Vec<u8>,
}

fn check_version_and_program(version: u8, program_len: usize) -> Result<(), AddressError> {
    if version > MAX_WITNESS_VERSION {
        return Err(AddressError::InvalidWitnessVersion(version));
    }
    if !(MIN_PROGRAM_LEN..=MAX_PROGRAM_LEN).contains(&program_len) {
        return Err(AddressError::InvalidProgramLength(program_len));
    }
    Ok(())
}

/// Checks that `s` is a valid bech32m string of at most 90 characters, with any HRP and any data
/// (the checksum-level rules of BIP350).
pub fn validate_bech32m(s: &str) -> Result<(), AddressError> {
    if s.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong(s.len()));
    }
    CheckedHrpstring::new::<Bech32m>(s)?;
    Ok(())
}

/// Decodes a bech32m witness address with any HRP: checksum, case, length, version, padding
/// and program length are checked; the HRP is returned lowercased, uninterpreted.
pub fn decode_witness_address(s: &str) -> Result<RawWitnessAddress, AddressError> {
    if s.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong(s.len()));
    }
    let mut checked = CheckedHrpstring::new::<Bech32m>(s)?;
    let data = checked.data_part_ascii_no_checksum();
    let first = *data.first().ok_or(AddressError::EmptyData)?;
    // Every data character was checked to be in the bech32 alphabet.
    let version = Fe32::from_char(char::from(first)).map_err(|_| AddressError::EmptyData)?.to_u8();
    if version > MAX_WITNESS_VERSION {
        return Err(AddressError::InvalidWitnessVersion(version));
    }
    checked.remove_witness_version();
    checked.validate_segwit_padding().map_err(|_| AddressError::InvalidPadding)?;
    let program_len = checked.byte_iter().len();
    check_version_and_program(version, program_len)?;
    Ok(RawWitnessAddress {
        hrp: checked.hrp().to_lowercase(),
        witness_version: version,
        program: checked.byte_iter().collect(),
    })
}

/// Encodes a witness program with bech32m under any HRP (lowercase output).
pub fn encode_witness_address(
    hrp: &str,
    witness_version: u8,
    program: &[u8],
) -> Result<String, AddressError> {
    check_version_and_program(witness_version, program.len())?;
    let hrp_parsed = Hrp::parse(hrp).map_err(|_| AddressError::InvalidHrp(hrp.to_owned()))?;
    let version = Fe32::try_from(witness_version)
        .map_err(|_| AddressError::InvalidWitnessVersion(witness_version))?;
    let s: String = program
        .iter()
        .copied()
        .bytes_to_fes()
        .with_checksum::<Bech32m>(&hrp_parsed)
        .with_witness_version(version)
        .chars()
        .collect();
    if s.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong(s.len()));
    }
    Ok(s)
}

/// A ResonanceNet address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    network: Network,
    witness_version: u8,
    program: Vec<u8>,
}

impl Address {
    /// An address, checking version 0..=16 and program length 2..=40.
    pub fn new(
        network: Network,
        witness_version: u8,
        program: Vec<u8>,
    ) -> Result<Self, AddressError> {
        check_version_and_program(witness_version, program.len())?;
        Ok(Self { network, witness_version, program })
    }

    /// The network (from the HRP).
    pub fn network(&self) -> Network {
        self.network
    }

    /// The witness version, 0..=16.
    pub fn witness_version(&self) -> u8 {
        self.witness_version
    }

    /// The witness program, 2..=40 bytes.
    pub fn program(&self) -> &[u8] {
        &self.program
    }

    /// Decodes an address, requiring it to belong to `network`.
    pub fn from_str_for(s: &str, network: Network) -> Result<Self, AddressError> {
        let a: Address = s.parse()?;
        if a.network != network {
            return Err(AddressError::WrongNetwork { expected: network, found: a.network });
        }
        Ok(a)
    }

    /// The output script paying to this address: `[OP_n, len, program…]`.
    pub fn script_pubkey(&self) -> Vec<u8> {
        let op = match self.witness_version {
            0 => 0x00,
            v => 0x50 + v,
        };
        let mut s = Vec::with_capacity(2 + self.program.len());
        s.push(op);
        s.push(self.program.len() as u8);
        s.extend_from_slice(&self.program);
        s
    }

    /// The address whose [`Address::script_pubkey`] is `script`, on `network`.
    pub fn from_script_pubkey(script: &[u8], network: Network) -> Result<Self, AddressError> {
        let [op, len, program @ ..] = script else {
            return Err(AddressError::NotWitnessProgram);
        };
        let version = match *op {
            0x00 => 0,
            0x51..=0x60 => op - 0x50,
            _ => return Err(AddressError::NotWitnessProgram),
        };
        if usize::from(*len) != program.len()
            || !(MIN_PROGRAM_LEN..=MAX_PROGRAM_LEN).contains(&program.len())
        {
            return Err(AddressError::NotWitnessProgram);
        }
        Self::new(network, version, program.to_vec())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Cannot fail: the invariants were checked on construction and our HRPs are valid.
        match encode_witness_address(self.network.hrp(), self.witness_version, &self.program) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl FromStr for Address {
    type Err = AddressError;
    /// Decodes an address of any of our networks, detected by HRP.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw = decode_witness_address(s)?;
        let network =
            Network::from_hrp(&raw.hrp).ok_or_else(|| AddressError::UnknownHrp(raw.hrp.clone()))?;
        Ok(Self { network, witness_version: raw.witness_version, program: raw.program })
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // ---- BIP350, "Test vectors for Bech32m" (checksum level) ----

    const BIP350_VALID_BECH32M: &[&str] = &[
        "A1LQFN3A",
        "a1lqfn3a",
        "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
        "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
        "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
        "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
        "?1v759aa",
    ];

    const BIP350_INVALID_BECH32M: &[(&str, &str)] = &[
        ("\u{20}1xj0phk", "HRP character out of range"),
        ("\u{7F}1g6xzxy", "HRP character out of range"),
        ("\u{80}1vctc34", "HRP character out of range"),
        (
            "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
            "overall max length exceeded",
        ),
        ("qyrz8wqd2c9m", "No separator character"),
        ("1qyrz8wqd2c9m", "Empty HRP"),
        ("y1b0jsk6g", "Invalid data character"),
        ("lt1igcx5c0", "Invalid data character"),
        ("in1muywd", "Too short checksum"),
        ("mm1crxm3i", "Invalid character in checksum"),
        ("au1s5cgom", "Invalid character in checksum"),
        ("M1VUXWEZ", "checksum calculated with uppercase form of HRP"),
        ("16plkw9", "empty HRP"),
        ("1p2gdwpf", "empty HRP"),
    ];

    #[test]
    fn bip350_valid_bech32m_strings() {
        for s in BIP350_VALID_BECH32M {
            assert_eq!(validate_bech32m(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn bip350_invalid_bech32m_strings() {
        for (s, reason) in BIP350_INVALID_BECH32M {
            assert!(validate_bech32m(s).is_err(), "{s:?} should be invalid: {reason}");
            assert!(s.parse::<Address>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn bip350_valid_strings_are_not_addresses() {
        // Valid checksums, but none is a ResonanceNet address (unknown HRP or no program).
        for s in BIP350_VALID_BECH32M {
            assert!(s.parse::<Address>().is_err(), "{s}");
        }
    }

    // ---- BIP350, "Test vectors for v0-v16 native segregated witness addresses" ----

    /// Valid v1+ addresses and their scriptPubKey, from the BIP.
    const BIP350_VALID_V1_PLUS: &[(&str, &str)] = &[
        (
            "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
            "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
        ),
        ("BC1SW50QGDZ25J", "6002751e"),
        ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
        (
            "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
            "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
        ),
        (
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
            "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        ),
    ];

    /// Valid v0 addresses from the BIP: bech32, so not valid for us (bech32m for every version).
    const BIP350_VALID_V0_BECH32: &[&str] = &[
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
    ];

    /// Invalid addresses from the BIP that our structure rules reject too.
    const BIP350_INVALID_ADDRESSES: &[(&str, &str)] = &[
        (
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
            "Invalid checksum (Bech32 instead of Bech32m)",
        ),
        (
            "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
            "Invalid checksum (Bech32 instead of Bech32m)",
        ),
        (
            "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
            "Invalid checksum (Bech32 instead of Bech32m)",
        ),
        (
            "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
            "Invalid character in checksum",
        ),
        (
            "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",
            "Invalid witness version",
        ),
        ("bc1pw5dgrnzv", "Invalid program length (1 byte)"),
        (
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
            "Invalid program length (41 bytes)",
        ),
        (
            "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
            "Invalid program length for witness version 0 (bech32 checksum, so invalid here)",
        ),
        ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq", "Mixed case"),
        (
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",
            "zero padding of more than 4 bits",
        ),
        (
            "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j",
            "Non-zero padding in 8-to-5 conversion",
        ),
        ("bc1gmk9yu", "Empty data section"),
    ];

    fn spk_of(raw: &RawWitnessAddress) -> Vec<u8> {
        let op = if raw.witness_version == 0 { 0 } else { 0x50 + raw.witness_version };
        let mut s = vec![op, raw.program.len() as u8];
        s.extend_from_slice(&raw.program);
        s
    }

    #[test]
    fn bip350_valid_v1_plus_addresses_decode_to_their_script() {
        for (s, spk) in BIP350_VALID_V1_PLUS {
            // Cross-check with the bech32 crate's own segwit decoder for the HRP they carry.
            let (hrp, ver, prog) = bech32::segwit::decode(s).unwrap();
            let raw = decode_witness_address(s).unwrap();
            assert_eq!(raw.hrp, hrp.to_lowercase());
            assert_eq!(raw.witness_version, ver.to_u8());
            assert_eq!(raw.program, prog);
            assert_eq!(spk_of(&raw), unhex(spk), "{s}");
            // Our encoder reproduces the BIP string (lowercase).
            let again = encode_witness_address(&raw.hrp, raw.witness_version, &raw.program);
            assert_eq!(again.as_deref(), Ok(s.to_lowercase().as_str()));
            // Not our HRP: rejected by name.
            assert_eq!(s.parse::<Address>(), Err(AddressError::UnknownHrp(raw.hrp.clone())));
            // The same program under our HRPs round-trips and gives the BIP's script.
            for n in Network::ALL {
                let a = Address::new(n, raw.witness_version, raw.program.clone()).unwrap();
                assert_eq!(a.script_pubkey(), unhex(spk));
                assert_eq!(a.to_string().parse::<Address>(), Ok(a.clone()));
                assert_eq!(Address::from_script_pubkey(&unhex(spk), n), Ok(a));
            }
        }
    }

    #[test]
    fn bip350_v0_bech32_addresses_are_rejected() {
        for s in BIP350_VALID_V0_BECH32 {
            assert!(bech32::segwit::decode(s).is_ok(), "valid for Bitcoin: {s}");
            assert!(
                matches!(decode_witness_address(s), Err(AddressError::Bech32(_))),
                "bech32 checksum must be rejected: {s}"
            );
        }
    }

    #[test]
    fn bip350_v0_with_bech32m_is_valid_here() {
        // BIP350 lists these as invalid ("Bech32m instead of Bech32" for v0); ResonanceNet uses
        // bech32m for v0 too. Programs are those of the BIP's valid v0 vectors.
        let cases = [
            (
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
                "751e76e8199196d454941c45d1b3a323f1433bd6",
            ),
            (
                "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
                "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
            ),
        ];
        for (s, prog) in cases {
            assert!(bech32::segwit::decode(s).is_err(), "invalid for Bitcoin: {s}");
            let raw = decode_witness_address(s).unwrap();
            assert_eq!(raw.witness_version, 0);
            assert_eq!(raw.program, unhex(prog));
            assert_eq!(encode_witness_address(&raw.hrp, 0, &raw.program).as_deref(), Ok(s));
        }
    }

    #[test]
    fn bip350_invalid_addresses_are_rejected() {
        for (s, reason) in BIP350_INVALID_ADDRESSES {
            assert!(bech32::segwit::decode(s).is_err(), "invalid for Bitcoin: {s}");
            assert!(decode_witness_address(s).is_err(), "{s}: {reason}");
            assert!(s.parse::<Address>().is_err(), "{s}: {reason}");
        }
        // Specific reasons where our layer decides.
        let e = |s: &str| decode_witness_address(s).unwrap_err();
        assert_eq!(
            e("BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R"),
            AddressError::InvalidWitnessVersion(17)
        );
        assert_eq!(e("bc1pw5dgrnzv"), AddressError::InvalidProgramLength(1));
        assert_eq!(
            e("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav"),
            AddressError::InvalidProgramLength(41)
        );
        assert_eq!(
            e("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf"),
            AddressError::InvalidPadding
        );
        assert_eq!(
            e("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j"),
            AddressError::InvalidPadding
        );
        // "bc1gmk9yu" (empty data) carries a bech32 checksum, so fails on the checksum here;
        // the same case with a bech32m checksum (made by the bech32 crate):
        let empty = bech32::encode::<Bech32m>(Hrp::parse("rnt").unwrap(), &[]).unwrap();
        assert_eq!(e(&empty), AddressError::EmptyData);
    }

    #[test]
    fn bip350_invalid_hrp_vector_is_an_unknown_hrp_here() {
        // "Invalid human-readable part": a well-formed v1 program under HRP "tc".
        let s = "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut";
        let raw = decode_witness_address(s).unwrap();
        assert_eq!(raw.hrp, "tc");
        assert_eq!(s.parse::<Address>(), Err(AddressError::UnknownHrp("tc".into())));
    }

    // ---- Our own addresses ----

    #[test]
    fn network_prefixes_and_case() {
        let prog = vec![0xAB; 32];
        for (n, prefix) in
            [(Network::Mainnet, "rnt1"), (Network::Testnet, "trnt1"), (Network::Regtest, "rrnt1")]
        {
            let a = Address::new(n, 1, prog.clone()).unwrap();
            let s = a.to_string();
            assert!(s.starts_with(&format!("{prefix}p")), "{s}");
            assert_eq!(s, s.to_lowercase());
            assert_eq!(s.parse::<Address>(), Ok(a.clone()));
            assert_eq!(s.to_uppercase().parse::<Address>(), Ok(a.clone()));
            let mixed = format!("{}{}", s[0..1].to_uppercase(), &s[1..]);
            assert!(matches!(mixed.parse::<Address>(), Err(AddressError::Bech32(_))));
            assert_eq!(Address::from_str_for(&s, n), Ok(a.clone()));
            let other = if n == Network::Mainnet { Network::Testnet } else { Network::Mainnet };
            assert_eq!(
                Address::from_str_for(&s, other),
                Err(AddressError::WrongNetwork { expected: other, found: n })
            );
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{s}\""));
        }
    }

    #[test]
    fn constructor_enforces_structure() {
        assert_eq!(
            Address::new(Network::Mainnet, 17, vec![0; 20]),
            Err(AddressError::InvalidWitnessVersion(17))
        );
        assert_eq!(
            Address::new(Network::Mainnet, 1, vec![0; 1]),
            Err(AddressError::InvalidProgramLength(1))
        );
        assert_eq!(
            Address::new(Network::Mainnet, 1, vec![0; 41]),
            Err(AddressError::InvalidProgramLength(41))
        );
        assert!(Address::new(Network::Mainnet, 0, vec![0; 2]).is_ok());
        assert!(Address::new(Network::Regtest, 16, vec![0; 40]).is_ok());
    }

    #[test]
    fn script_pubkey_layout() {
        let a = Address::new(Network::Mainnet, 0, vec![7; 20]).unwrap();
        let mut expected = vec![0x00, 20];
        expected.extend([7; 20]);
        assert_eq!(a.script_pubkey(), expected);
        let a = Address::new(Network::Mainnet, 16, vec![7; 2]).unwrap();
        assert_eq!(a.script_pubkey(), [0x60, 2, 7, 7]);
        for bad in [
            &[][..],
            &[0x00][..],
            &[0x00, 1, 7][..],       // program too short
            &[0x50, 2, 7, 7][..],    // OP_RESERVED is not a version
            &[0x61, 2, 7, 7][..],    // beyond OP_16
            &[0x51, 3, 7, 7][..],    // length byte disagrees
            &[0x51, 2, 7, 7, 7][..], // trailing byte
        ] {
            assert_eq!(
                Address::from_script_pubkey(bad, Network::Mainnet),
                Err(AddressError::NotWitnessProgram),
                "{bad:x?}"
            );
        }
        let mut long = vec![0x51, 41];
        long.extend([0; 41]);
        assert_eq!(
            Address::from_script_pubkey(&long, Network::Mainnet),
            Err(AddressError::NotWitnessProgram)
        );
    }

    #[test]
    fn rejects_overlong_strings_before_decoding() {
        let s = format!("rnt1{}", "q".repeat(100));
        assert_eq!(s.parse::<Address>(), Err(AddressError::TooLong(104)));
    }

    fn arb_address() -> impl Strategy<Value = Address> {
        (
            prop::sample::select(Network::ALL.to_vec()),
            0u8..=16,
            prop::collection::vec(any::<u8>(), MIN_PROGRAM_LEN..=MAX_PROGRAM_LEN),
        )
            .prop_map(|(n, v, p)| Address::new(n, v, p).unwrap())
    }

    proptest! {
        #[test]
        fn round_trips(a in arb_address()) {
            let s = a.to_string();
            prop_assert!(s.len() <= MAX_ADDRESS_LEN);
            let back: Address = s.parse().unwrap();
            prop_assert_eq!(&back, &a);
            prop_assert_eq!(back.to_string(), s);
            prop_assert_eq!(Address::from_script_pubkey(&a.script_pubkey(), a.network()), Ok(a));
        }

        #[test]
        fn random_strings_never_panic(s in ".{0,100}") {
            let _ = s.parse::<Address>();
            let _ = validate_bech32m(&s);
        }

        #[test]
        fn bech32_alphabet_strings_never_panic(
            hrp in prop::sample::select(vec!["rnt", "trnt", "rrnt", "RNT", "bc", ""]),
            data in "[qpzry9x8gf2tvdw0s3jn54khce6mua7lQPZRY9X8GF2TVDW0S3JN54KHCE6MUA7Lbio1]{0,90}",
        ) {
            let s = format!("{hrp}1{data}");
            if let Ok(a) = s.parse::<Address>() {
                prop_assert_eq!(a.to_string(), s.to_lowercase());
            }
        }

        #[test]
        fn random_scripts_never_panic(script in prop::collection::vec(any::<u8>(), 0..50)) {
            if let Ok(a) = Address::from_script_pubkey(&script, Network::Testnet) {
                prop_assert_eq!(a.script_pubkey(), script);
            }
        }

        #[test]
        fn single_character_substitution_is_detected(
            a in arb_address(),
            idx in any::<prop::sample::Index>(),
            shift in 1usize..32,
        ) {
            const ALPHABET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
            let s = a.to_string();
            let sep = s.rfind('1').unwrap();
            let i = sep + 1 + idx.index(s.len() - sep - 1);
            let mut bytes = s.into_bytes();
            let pos = ALPHABET.iter().position(|&c| c == bytes[i]).unwrap();
            bytes[i] = ALPHABET[(pos + shift) % 32];
            let t = String::from_utf8(bytes).unwrap();
            prop_assert!(t.parse::<Address>().is_err());
        }

    }
}
