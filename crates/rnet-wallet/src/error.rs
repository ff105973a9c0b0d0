//! The wallet's error type.

use thiserror::Error;

/// Any failure of a wallet operation. Every variant is a one-line, user-presentable message;
/// no operation panics on outside input.
#[derive(Debug, Error)]
pub enum WalletError {
    /// The wallet database could not be read or written.
    #[error("wallet database: {0}")]
    Database(String),
    /// A file could not be read or written.
    #[error("wallet file: {0}")]
    Io(#[from] std::io::Error),
    /// The wallet file exists already (create never overwrites).
    #[error("wallet file already exists: {0}")]
    AlreadyExists(String),
    /// The wallet file is not a ResonanceNet wallet, or of an unknown version, or damaged.
    #[error("not a valid wallet file: {0}")]
    Corrupt(String),
    /// The operation needs private keys but the wallet is encrypted and locked.
    #[error("wallet is locked; unlock it with the passphrase first")]
    Locked,
    /// The passphrase is wrong (or the encrypted data was altered).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The wallet is not encrypted (for change-passphrase / unlock on a plain wallet).
    #[error("wallet is not encrypted")]
    NotEncrypted,
    /// The wallet is already encrypted.
    #[error("wallet is already encrypted")]
    AlreadyEncrypted,
    /// An empty passphrase was given where one is required.
    #[error("passphrase must not be empty")]
    EmptyPassphrase,
    /// The recovery policy parameters are invalid.
    #[error("invalid recovery policy: {0}")]
    Policy(String),
    /// A recovery cancel would lock the coins under the same guardian set again, so the quorum
    /// that started the recovery could start it again: name a new guardian set.
    #[error(
        "the cancelled coins' guardians would guard them again: cancel to a policy with a different guardian set"
    )]
    SameGuardians,
    /// A cryptographic operation failed (bad mnemonic, key, backup structure …).
    #[error(transparent)]
    Crypto(#[from] rnet_crypto::CryptoError),
    /// The address belongs to another network.
    #[error("address is for {found}, wallet is on {expected}")]
    WrongNetwork {
        /// The wallet's network.
        expected: rnet_primitives::Network,
        /// The address's network.
        found: rnet_primitives::Network,
    },
    /// A recovery request (or other signing job) for another chain than the wallet's: its
    /// signatures would commit to another genesis id.
    #[error("request is for the chain with genesis {found}, wallet is on genesis {expected}")]
    WrongChain {
        /// The wallet's genesis id.
        expected: rnet_primitives::BlockHash,
        /// The request's genesis id.
        found: rnet_primitives::BlockHash,
    },
    /// An encrypted testnet or regtest wallet file from before coin type 1 (state version < 3):
    /// its keys must be derived again, which needs the secret.
    #[error(
        "this {network} wallet file derived its keys under coin type 9555 (test networks now use 1) \
         and is encrypted: restore it from its words or an encrypted backup"
    )]
    LegacyKeys {
        /// The wallet's network.
        network: rnet_primitives::Network,
    },
    /// The wallet refuses to pay to this output script (non-standard or reserved version).
    #[error("refusing to pay to a non-standard or reserved output script")]
    NonStandardDestination,
    /// An amount was zero, below dust, or overflowed.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// Not enough spendable coins for the outputs plus fee.
    #[error("insufficient funds: need {needed} resonance, have {available} spendable")]
    InsufficientFunds {
        /// Outputs plus fee.
        needed: u64,
        /// Spendable value.
        available: u64,
    },
    /// The transaction is unknown to the wallet.
    #[error("unknown transaction {0}")]
    UnknownTransaction(String),
    /// The outpoint is not a wallet coin (or not of the expected kind).
    #[error("unknown or unusable coin {0}")]
    UnknownCoin(String),
    /// The replacement cannot be built (not replaceable, confirmed, no change to reduce …).
    #[error("cannot bump fee: {0}")]
    BumpFee(String),
    /// A transaction or its spent outputs are inconsistent.
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    /// Script-level failure (signing context, template parameters).
    #[error("script: {0}")]
    Script(String),
    /// The key is not one of the policy's guardians.
    #[error("key is not a guardian of this policy")]
    NotAGuardian,
    /// Fewer guardian signatures than the threshold.
    #[error("need {needed} guardian signatures, have {have}")]
    NotEnoughSignatures {
        /// The threshold.
        needed: usize,
        /// Signatures present.
        have: usize,
    },
    /// Key derivation ran past the largest hardened index.
    #[error("address index space exhausted")]
    IndexExhausted,
}

impl From<redb::Error> for WalletError {
    fn from(e: redb::Error) -> Self {
        Self::Database(e.to_string())
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for WalletError {
            fn from(e: $t) -> Self {
                Self::Database(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<rnet_crypto::BackupError> for WalletError {
    fn from(e: rnet_crypto::BackupError) -> Self {
        match e {
            rnet_crypto::BackupError::WrongPassphraseOrCorrupt => Self::WrongPassphrase,
            other => Self::Crypto(other.into()),
        }
    }
}

impl From<rnet_crypto::MnemonicError> for WalletError {
    fn from(e: rnet_crypto::MnemonicError) -> Self {
        Self::Crypto(e.into())
    }
}

impl From<rnet_crypto::Slip10Error> for WalletError {
    fn from(e: rnet_crypto::Slip10Error) -> Self {
        Self::Crypto(e.into())
    }
}

impl From<rnet_script::TemplateError> for WalletError {
    fn from(e: rnet_script::TemplateError) -> Self {
        Self::Policy(e.to_string())
    }
}

impl From<rnet_script::ScriptError> for WalletError {
    fn from(e: rnet_script::ScriptError) -> Self {
        Self::Script(e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = WalletError> = std::result::Result<T, E>;
