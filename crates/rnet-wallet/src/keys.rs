//! Key paths and the wallet's secret material.
//!
//! Path scheme (SLIP-10 Ed25519, hardened only): `m/44'/coin'/account'/chain'/index'` with
//! chain `0'` = receive, `1'` = change, `2'` = the wallet's own guardian key (index `0'`, the key
//! it offers when it acts as a guardian of another wallet). The coin type is ResonanceNet's 9555
//! on mainnet and 1 (BIP44's "testnet, all coins") on testnet and regtest, so the same words
//! never give a test network a mainnet key.

use rnet_crypto::{DerivationPath, ExtendedSecretKey, Mnemonic, Seed, SigningKey};
use rnet_primitives::Network;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Result, WalletError};

/// The BIP44 purpose level.
pub const PURPOSE: u32 = 44;
/// ResonanceNet's coin type (mainnet).
pub const COIN_TYPE: u32 = 9555;
/// The coin type of every test network (testnet, regtest), as BIP44 registers it for all coins.
pub const TEST_COIN_TYPE: u32 = 1;

/// The coin type of `network`'s keys: [`COIN_TYPE`] on mainnet, [`TEST_COIN_TYPE`] otherwise.
pub fn coin_type(network: Network) -> u32 {
    match network {
        Network::Mainnet => COIN_TYPE,
        Network::Testnet | Network::Regtest => TEST_COIN_TYPE,
    }
}
/// Keys derived ahead of the highest used index on each chain (restore scans this far).
pub const GAP_LIMIT: u32 = 20;
/// Largest index below the hardened offset.
const MAX_INDEX: u32 = (1 << 31) - 1;

/// Which branch of the account a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyChain {
    /// Receive addresses (`0'`).
    Receive,
    /// Change addresses (`1'`).
    Change,
    /// The guardian key (`2'`).
    Guardian,
}

impl KeyChain {
    /// The path component.
    pub fn index(self) -> u32 {
        match self {
            Self::Receive => 0,
            Self::Change => 1,
            Self::Guardian => 2,
        }
    }

    /// The chain with path component `n`.
    pub fn from_index(n: u32) -> Option<Self> {
        match n {
            0 => Some(Self::Receive),
            1 => Some(Self::Change),
            2 => Some(Self::Guardian),
            _ => None,
        }
    }
}

/// `m/44'/coin'/account'/chain'/index'` with `coin` = [`coin_type`]`(network)`.
pub fn key_path(
    network: Network,
    account: u32,
    chain: KeyChain,
    index: u32,
) -> Result<DerivationPath> {
    if index > MAX_INDEX || account > MAX_INDEX {
        return Err(WalletError::IndexExhausted);
    }
    let coin = coin_type(network);
    Ok(DerivationPath::from_hardened_indices(&[PURPOSE, coin, account, chain.index(), index])?)
}

/// The wallet's secret: the mnemonic entropy and the BIP39 passphrase (the seed is derived).
/// Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secret {
    pub entropy: [u8; 32],
    pub bip39_passphrase: String,
}

impl Secret {
    pub fn from_mnemonic(m: &Mnemonic, bip39_passphrase: &str) -> Self {
        Self { entropy: *m.to_entropy(), bip39_passphrase: bip39_passphrase.to_owned() }
    }

    pub fn mnemonic(&self) -> Mnemonic {
        Mnemonic::from_entropy(&self.entropy)
    }

    pub fn seed(&self) -> Seed {
        self.mnemonic().to_seed(&self.bip39_passphrase)
    }

    /// `0x01 ‖ entropy(32) ‖ passphrase bytes`.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(33 + self.bip39_passphrase.len()));
        v.push(1);
        v.extend_from_slice(&self.entropy);
        v.extend_from_slice(self.bip39_passphrase.as_bytes());
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = || WalletError::Corrupt("bad secret record".into());
        if bytes.len() < 33 || bytes[0] != 1 {
            return Err(bad());
        }
        let mut entropy = [0u8; 32];
        entropy.copy_from_slice(&bytes[1..33]);
        let bip39_passphrase = String::from_utf8(bytes[33..].to_vec()).map_err(|_| bad())?;
        Ok(Self { entropy, bip39_passphrase })
    }
}

/// The unlocked key material: the seed's master key, deriving for one network.
pub(crate) struct Keys {
    pub secret: Secret,
    pub master: ExtendedSecretKey,
    pub network: Network,
}

impl Keys {
    pub fn new(secret: Secret, network: Network) -> Result<Self> {
        let seed = secret.seed();
        let master = ExtendedSecretKey::from_seed(&seed);
        Ok(Self { secret, master, network })
    }

    pub fn signing_key(&self, account: u32, chain: KeyChain, index: u32) -> Result<SigningKey> {
        let path = key_path(self.network, account, chain, index)?;
        Ok(self.master.derive_path(&path).signing_key())
    }
}
