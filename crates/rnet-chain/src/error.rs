//! The chainstate's error type.

use rnet_consensus::BlockError;
use rnet_primitives::{BlockHash, DecodeError, Network};
use thiserror::Error;

/// Why a chainstate operation failed.
#[derive(Debug, Error)]
pub enum ChainError {
    /// The block breaks a consensus rule (the consensus reason is attached).
    #[error("invalid block {hash}: {reason}")]
    InvalidBlock {
        /// The invalid block.
        hash: BlockHash,
        /// The consensus rule it breaks.
        reason: BlockError,
    },
    /// The block descends from a block that is known to be invalid.
    #[error("block {hash} descends from invalid block {invalid_ancestor}")]
    InvalidAncestor {
        /// The block that was submitted.
        hash: BlockHash,
        /// Its invalid ancestor.
        invalid_ancestor: BlockHash,
    },
    /// The block's height is not its parent's height plus one (rejected, nothing stored).
    #[error("block {hash} has height {height} but its parent has height {parent_height}")]
    BadHeight {
        /// The block.
        hash: BlockHash,
        /// Its declared height.
        height: u32,
        /// Its parent's height.
        parent_height: u32,
    },
    /// The block's parent is not validated and the block would be more than
    /// [`crate::MAX_UNVALIDATED_DEPTH`] blocks above its last validated ancestor: refused without
    /// storing or recording anything (not a verdict on the block; offer it again once its
    /// ancestors are validated).
    #[error(
        "block {hash} at height {height} is more than {max_depth} blocks above its last \
         validated ancestor; retry once its ancestors are validated"
    )]
    TooFarAboveValidated {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// The bound it exceeds ([`crate::MAX_UNVALIDATED_DEPTH`]).
        max_depth: u32,
    },
    /// The block was already found invalid (it is never validated again unless reconsidered).
    #[error("block {0} is known to be invalid")]
    KnownInvalid(BlockHash),
    /// Checkpoint bytes do not match the root and size the header commits to.
    #[error("checkpoint for block {hash} does not match the header's root and size")]
    CheckpointMismatch {
        /// The block whose checkpoint was offered.
        hash: BlockHash,
    },
    /// Model update bytes do not match the root and size the header commits to.
    #[error("model update for block {hash} does not match the header's root and size")]
    UpdateMismatch {
        /// The block whose update was offered.
        hash: BlockHash,
    },
    /// A block that the operation needs is not in the block index.
    #[error("unknown block {0}")]
    UnknownBlock(BlockHash),
    /// The operation is not allowed on the genesis block.
    #[error("the genesis block cannot be invalidated or disconnected")]
    Genesis,
    /// The database was created for another network.
    #[error("chainstate belongs to {found}, not {expected}")]
    WrongNetwork {
        /// The network the caller asked for.
        expected: Network,
        /// The network recorded in the database.
        found: String,
    },
    /// The database was created with another genesis block.
    #[error("chainstate has genesis {found}, expected {expected}")]
    WrongGenesis {
        /// The genesis of the chain parameters.
        expected: BlockHash,
        /// The genesis recorded in the database.
        found: BlockHash,
    },
    /// The database uses a schema version this code does not know.
    #[error("unsupported chainstate schema version {0}")]
    UnsupportedSchema(u32),
    /// Stored data failed to decode or is inconsistent with the rest of the database.
    #[error("corrupt chainstate: {0}")]
    Corrupt(String),
    /// A stored record failed to decode.
    #[error("corrupt chainstate record in {table}: {source}")]
    CorruptRecord {
        /// The table holding the record.
        table: &'static str,
        /// The decoding failure.
        source: DecodeError,
    },
    /// The embedded database failed.
    #[error("database: {0}")]
    Db(#[from] Box<redb::Error>),
    /// A file operation (checkpoint files, the data directory) failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A transaction lookup needs the transaction index, which is off (`-txindex`).
    #[error("the transaction index is off (start with -txindex)")]
    NoTxIndex,
    /// A test-only fail point fired (never in production).
    #[error("fail point {0} fired")]
    FailPoint(&'static str),
}

macro_rules! db_error_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for ChainError {
            fn from(e: $ty) -> Self {
                ChainError::Db(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}

db_error_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl ChainError {
    /// A corrupt-record error for `table`.
    pub(crate) fn record(table: &'static str) -> impl FnOnce(DecodeError) -> ChainError {
        move |source| ChainError::CorruptRecord { table, source }
    }
}
