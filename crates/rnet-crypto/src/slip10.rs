//! SLIP-10 hierarchical deterministic derivation for Ed25519 (hardened only).
//!
//! As specified by [SLIP-0010](https://github.com/satoshilabs/slips/blob/master/slip-0010.md):
//!
//! - master: `I = HMAC-SHA512(key = "ed25519 seed", data = seed)`; secret `= I[0..32]`, chain
//!   code `= I[32..64]`;
//! - child `i` (must be hardened, `i >= 2^31`): `I = HMAC-SHA512(key = chain_code,
//!   data = 0x00 ‖ secret ‖ ser32(i))` (big-endian `i`); child secret `= I[0..32]`, child chain
//!   code `= I[32..64]`.
//!
//! The derived 32-byte secret is used directly as an RFC 8032 Ed25519 secret seed. Ed25519 has no
//! non-hardened (public) derivation; asking for one is an error. Paths are written
//! `m/44'/9555'/0'` with `'`, `h` or `H` as the hardened marker, each index below 2^31.

use core::fmt;
use core::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha512;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::ed25519::{PublicKey, SigningKey};
use crate::error::Slip10Error;
use crate::mnemonic::Seed;

type HmacSha512 = Hmac<Sha512>;

/// The HMAC key for the Ed25519 master key (SLIP-10 "Curve" string).
const ED25519_CURVE_KEY: &[u8] = b"ed25519 seed";

/// The hardened bit: raw indices `>= HARDENED_OFFSET` are hardened.
pub const HARDENED_OFFSET: u32 = 1 << 31;

/// Longest derivation path accepted (BIP32 depth is one byte).
pub const MAX_DEPTH: usize = 255;

/// Shortest seed accepted (128 bits).
pub const MIN_SEED_LEN: usize = 16;
/// Longest seed accepted (512 bits).
pub const MAX_SEED_LEN: usize = 64;

/// A hardened child index (the only kind Ed25519 SLIP-10 supports).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildIndex(u32);

impl ChildIndex {
    /// Hardened index `index'` for `index` in `0..2^31`.
    pub const fn hardened(index: u32) -> Result<Self, Slip10Error> {
        if index >= HARDENED_OFFSET {
            Err(Slip10Error::IndexTooLarge(index))
        } else {
            Ok(Self(index | HARDENED_OFFSET))
        }
    }

    /// From a raw BIP32 index, which must have the hardened bit set.
    pub const fn from_raw(raw: u32) -> Result<Self, Slip10Error> {
        if raw < HARDENED_OFFSET { Err(Slip10Error::NonHardenedIndex(raw)) } else { Ok(Self(raw)) }
    }

    /// The raw BIP32 index, hardened bit included (what is hashed).
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// The index without the hardened bit (what is written before `'`).
    pub const fn index(self) -> u32 {
        self.0 & !HARDENED_OFFSET
    }
}

impl fmt::Debug for ChildIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}'", self.index())
    }
}

impl fmt::Display for ChildIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}'", self.index())
    }
}

/// A derivation path of hardened indices, e.g. `m/44'/9555'/0'`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct DerivationPath(Vec<ChildIndex>);

impl DerivationPath {
    /// The empty path `m` (the master key).
    pub fn master() -> Self {
        Self(Vec::new())
    }

    /// A path from child indices (at most [`MAX_DEPTH`]).
    pub fn new(children: Vec<ChildIndex>) -> Result<Self, Slip10Error> {
        if children.len() > MAX_DEPTH {
            return Err(Slip10Error::PathTooDeep);
        }
        Ok(Self(children))
    }

    /// A path from indices written without the hardened bit: `[44, 9555, 0]` is
    /// `m/44'/9555'/0'`.
    pub fn from_hardened_indices(indices: &[u32]) -> Result<Self, Slip10Error> {
        let children =
            indices.iter().map(|&i| ChildIndex::hardened(i)).collect::<Result<_, _>>()?;
        Self::new(children)
    }

    /// The child indices from the master down.
    pub fn children(&self) -> &[ChildIndex] {
        &self.0
    }

    /// Number of derivation steps (0 for `m`).
    pub fn depth(&self) -> usize {
        self.0.len()
    }

    /// This path extended by one child.
    pub fn child(&self, child: ChildIndex) -> Result<Self, Slip10Error> {
        let mut children = self.0.clone();
        children.push(child);
        Self::new(children)
    }
}

impl FromStr for DerivationPath {
    type Err = Slip10Error;

    /// Parse `m` or `m/<n>'/<n>'/…` where the marker is `'`, `h` or `H` and `n < 2^31`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('/');
        if parts.next() != Some("m") {
            return Err(Slip10Error::MissingMaster);
        }
        let mut children = Vec::new();
        for (position, part) in parts.enumerate() {
            if position >= MAX_DEPTH {
                return Err(Slip10Error::PathTooDeep);
            }
            let (digits, hardened) = match part.strip_suffix(['\'', 'h', 'H']) {
                Some(d) => (d, true),
                None => (part, false),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Slip10Error::MalformedComponent { position });
            }
            if !hardened {
                return Err(Slip10Error::NonHardenedComponent { position });
            }
            let index: u32 =
                digits.parse().map_err(|_| Slip10Error::IndexOutOfRange { position })?;
            let child = ChildIndex::hardened(index)
                .map_err(|_| Slip10Error::IndexOutOfRange { position })?;
            children.push(child);
        }
        Ok(Self(children))
    }
}

impl fmt::Display for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("m")?;
        for c in &self.0 {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DerivationPath({self})")
    }
}

/// A SLIP-10 Ed25519 extended secret key: the 32-byte secret and the 32-byte chain code.
/// Zeroized on drop; `Debug` prints only the public key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ExtendedSecretKey {
    secret: [u8; 32],
    chain_code: [u8; 32],
}

impl fmt::Debug for ExtendedSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtendedSecretKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 64]> {
    // HMAC accepts keys of every length, so this cannot fail.
    let mut mac = HmacSha512::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    let mut out = Zeroizing::new([0u8; 64]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

impl ExtendedSecretKey {
    fn from_hmac(i: &[u8; 64]) -> Self {
        let mut k = Self { secret: [0; 32], chain_code: [0; 32] };
        k.secret.copy_from_slice(&i[..32]);
        k.chain_code.copy_from_slice(&i[32..]);
        k
    }

    /// The master key of a seed of 16 to 64 bytes.
    pub fn master(seed: &[u8]) -> Result<Self, Slip10Error> {
        if !(MIN_SEED_LEN..=MAX_SEED_LEN).contains(&seed.len()) {
            return Err(Slip10Error::SeedLength(seed.len()));
        }
        Ok(Self::from_hmac(&hmac_sha512(ED25519_CURVE_KEY, &[seed])))
    }

    /// The master key of a BIP39 seed.
    pub fn from_seed(seed: &Seed) -> Self {
        Self::from_hmac(&hmac_sha512(ED25519_CURVE_KEY, &[seed.as_bytes()]))
    }

    /// The hardened child `child` of this key.
    pub fn derive_child(&self, child: ChildIndex) -> Self {
        let i = hmac_sha512(&self.chain_code, &[&[0u8], &self.secret, &child.raw().to_be_bytes()]);
        Self::from_hmac(&i)
    }

    /// The key at `path` below this key.
    pub fn derive_path(&self, path: &DerivationPath) -> Self {
        let mut key = self.clone();
        for &child in path.children() {
            key = key.derive_child(child);
        }
        key
    }

    /// The 32-byte secret (an RFC 8032 Ed25519 secret seed).
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The 32-byte chain code.
    pub fn chain_code(&self) -> &[u8; 32] {
        &self.chain_code
    }

    /// The Ed25519 signing key of this node.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.secret)
    }

    /// The Ed25519 public key of this node (SLIP-10 writes it with a leading `0x00` byte; this is
    /// the 32 bytes after it).
    pub fn public_key(&self) -> PublicKey {
        self.signing_key().public_key()
    }
}

/// Derive the key at `path` from a seed of 16 to 64 bytes.
pub fn derive_from_seed(
    seed: &[u8],
    path: &DerivationPath,
) -> Result<ExtendedSecretKey, Slip10Error> {
    Ok(ExtendedSecretKey::master(seed)?.derive_path(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (path, chain code, private, public with SLIP-10's 0x00 prefix).
    type Row = (&'static str, &'static str, &'static str, &'static str);

    // SLIP-0010, "Test vector 1 for ed25519". Seed 000102030405060708090a0b0c0d0e0f.
    const VECTOR_1: [Row; 6] = [
        (
            "m",
            "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
            "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
            "00a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed",
        ),
        (
            "m/0H",
            "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
            "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
            "008c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c",
        ),
        (
            "m/0H/1H",
            "a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
            "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
            "001932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187",
        ),
        (
            "m/0H/1H/2H",
            "2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
            "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
            "00ae98736566d30ed0e9d2f4486a64bc95740d89c7db33f52121f8ea8f76ff0fc1",
        ),
        (
            "m/0H/1H/2H/2H",
            "8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
            "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
            "008abae2d66361c879b900d204ad2cc4984fa2aa344dd7ddc46007329ac76c429c",
        ),
        (
            "m/0H/1H/2H/2H/1000000000H",
            "68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
            "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
            "003c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a",
        ),
    ];

    // SLIP-0010, "Test vector 2 for ed25519".
    const SEED_2: &str = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542";
    const VECTOR_2: [Row; 6] = [
        (
            "m",
            "ef70a74db9c3a5af931b5fe73ed8e1a53464133654fd55e7a66f8570b8e33c3b",
            "171cb88b1b3c1db25add599712e36245d75bc65a1a5c9e18d76f9f2b1eab4012",
            "008fe9693f8fa62a4305a140b9764c5ee01e455963744fe18204b4fb948249308a",
        ),
        (
            "m/0H",
            "0b78a3226f915c082bf118f83618a618ab6dec793752624cbeb622acb562862d",
            "1559eb2bbec5790b0c65d8693e4d0875b1747f4970ae8b650486ed7470845635",
            "0086fab68dcb57aa196c77c5f264f215a112c22a912c10d123b0d03c3c28ef1037",
        ),
        (
            "m/0H/2147483647H",
            "138f0b2551bcafeca6ff2aa88ba8ed0ed8de070841f0c4ef0165df8181eaad7f",
            "ea4f5bfe8694d8bb74b7b59404632fd5968b774ed545e810de9c32a4fb4192f4",
            "005ba3b9ac6e90e83effcd25ac4e58a1365a9e35a3d3ae5eb07b9e4d90bcf7506d",
        ),
        (
            "m/0H/2147483647H/1H",
            "73bd9fff1cfbde33a1b846c27085f711c0fe2d66fd32e139d3ebc28e5a4a6b90",
            "3757c7577170179c7868353ada796c839135b3d30554bbb74a4b1e4a5a58505c",
            "002e66aa57069c86cc18249aecf5cb5a9cebbfd6fadeab056254763874a9352b45",
        ),
        (
            "m/0H/2147483647H/1H/2147483646H",
            "0902fe8a29f9140480a00ef244bd183e8a13288e4412d8389d140aac1794825a",
            "5837736c89570de861ebc173b1086da4f505d4adb387c6a1b1342d5e4ac9ec72",
            "00e33c0f7d81d843c572275f287498e8d408654fdf0d1e065b84e2e6f157aab09b",
        ),
        (
            "m/0H/2147483647H/1H/2147483646H/2H",
            "5d70af781f3a37b829f0d060924d5e960bdc02e85423494afc0b1a41bbe196d4",
            "551d333177df541ad876a60ea71f00447931c0a9da16f227c11ea080d7391b8d",
            "0047150c75db263559a70d5778bf36abbab30fb061ad69f69ece61a72b0cfa4fc0",
        ),
    ];

    fn check_vector(seed_hex: &str, rows: &[Row]) {
        let seed = hex::decode(seed_hex).unwrap();
        let master = ExtendedSecretKey::master(&seed).unwrap();
        let mut step = master.clone();
        for (i, (path, chain, private, public)) in rows.iter().enumerate() {
            let path: DerivationPath = path.parse().unwrap();
            assert_eq!(path.depth(), i);
            // Both from the master in one go and one step from the previous row.
            let key = derive_from_seed(&seed, &path).unwrap();
            if let Some(&last) = path.children().last() {
                step = step.derive_child(last);
            }
            for k in [&key, &step, &master.derive_path(&path)] {
                assert_eq!(hex::encode(k.chain_code()), *chain, "chain code at {path}");
                assert_eq!(hex::encode(k.secret_bytes()), *private, "private key at {path}");
                let public_hex = format!("00{}", hex::encode(k.public_key().as_bytes()));
                assert_eq!(public_hex, *public, "public key at {path}");
            }
        }
    }

    #[test]
    fn slip10_ed25519_test_vector_1() {
        check_vector("000102030405060708090a0b0c0d0e0f", &VECTOR_1);
    }

    #[test]
    fn slip10_ed25519_test_vector_2() {
        check_vector(SEED_2, &VECTOR_2);
    }

    #[test]
    fn master_from_bip39_seed_matches_master_from_bytes() {
        let seed = crate::mnemonic::Mnemonic::from_entropy(&[0x7f; 32]).to_seed("TREZOR");
        let path: DerivationPath = "m/44'/9555'/0'".parse().unwrap();
        let a = ExtendedSecretKey::from_seed(&seed).derive_path(&path);
        let b = derive_from_seed(seed.as_bytes(), &path).unwrap();
        assert_eq!(a.secret_bytes(), b.secret_bytes());
        assert_eq!(a.chain_code(), b.chain_code());
        assert_eq!(a.public_key(), a.signing_key().public_key());
    }

    #[test]
    fn path_parsing() {
        let p: DerivationPath = "m/44'/9555h/0H".parse().unwrap();
        assert_eq!(p, DerivationPath::from_hardened_indices(&[44, 9555, 0]).unwrap());
        assert_eq!(p.to_string(), "m/44'/9555'/0'");
        assert_eq!("m".parse::<DerivationPath>().unwrap(), DerivationPath::master());
        assert_eq!("".parse::<DerivationPath>(), Err(Slip10Error::MissingMaster));
        assert_eq!("44'/0'".parse::<DerivationPath>(), Err(Slip10Error::MissingMaster));
        assert_eq!(
            "m/44'/0".parse::<DerivationPath>(),
            Err(Slip10Error::NonHardenedComponent { position: 1 })
        );
        assert_eq!(
            "m/".parse::<DerivationPath>(),
            Err(Slip10Error::MalformedComponent { position: 0 })
        );
        assert_eq!(
            "m/-1'".parse::<DerivationPath>(),
            Err(Slip10Error::MalformedComponent { position: 0 })
        );
        assert_eq!(
            "m/2147483648'".parse::<DerivationPath>(),
            Err(Slip10Error::IndexOutOfRange { position: 0 })
        );
        assert_eq!(
            "m/99999999999999999999'".parse::<DerivationPath>(),
            Err(Slip10Error::IndexOutOfRange { position: 0 })
        );
        assert!("m/2147483647'".parse::<DerivationPath>().is_ok());
        let deep = format!("m{}", "/1'".repeat(256));
        assert_eq!(deep.parse::<DerivationPath>(), Err(Slip10Error::PathTooDeep));
        let ok = format!("m{}", "/1'".repeat(255));
        assert_eq!(ok.parse::<DerivationPath>().unwrap().depth(), 255);
    }

    #[test]
    fn child_index_rules() {
        assert_eq!(ChildIndex::from_raw(5), Err(Slip10Error::NonHardenedIndex(5)));
        assert_eq!(ChildIndex::hardened(HARDENED_OFFSET), Err(Slip10Error::IndexTooLarge(1 << 31)));
        let c = ChildIndex::from_raw(HARDENED_OFFSET + 7).unwrap();
        assert_eq!((c.index(), c.raw()), (7, 0x8000_0007));
        assert_eq!(ChildIndex::hardened(7).unwrap(), c);
    }

    #[test]
    fn seed_length_is_checked_and_debug_hides_secret() {
        assert_eq!(ExtendedSecretKey::master(&[0; 15]).err(), Some(Slip10Error::SeedLength(15)));
        assert_eq!(ExtendedSecretKey::master(&[0; 65]).err(), Some(Slip10Error::SeedLength(65)));
        let k =
            ExtendedSecretKey::master(&hex::decode("000102030405060708090a0b0c0d0e0f").unwrap())
                .unwrap();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("2b4be7f1") && !dbg.contains("90046a93"), "leaked: {dbg}");
    }

    proptest! {
        #[test]
        fn path_parser_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<DerivationPath>();
        }

        #[test]
        fn path_display_round_trips(indices in proptest::collection::vec(0u32..HARDENED_OFFSET, 0..10)) {
            let p = DerivationPath::from_hardened_indices(&indices).unwrap();
            prop_assert_eq!(p.to_string().parse::<DerivationPath>().unwrap(), p);
        }

        #[test]
        fn path_like_strings_never_panic(parts in proptest::collection::vec("[0-9]{0,12}['hH]?", 0..6)) {
            let s = format!("m/{}", parts.join("/"));
            let _ = s.parse::<DerivationPath>();
        }
    }
}
