//! RPC error codes (Bitcoin Core's `src/rpc/protocol.h`) and the error types of this crate.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

/// Bitcoin Core's JSON-RPC error codes, with the same names and values as `src/rpc/protocol.h`.
pub mod codes {
    // Standard JSON-RPC 2.0 errors.
    /// The JSON sent is not a valid request object (HTTP 400 for 1.0 requests).
    pub const RPC_INVALID_REQUEST: i32 = -32600;
    /// The method does not exist (HTTP 404 for 1.0 requests).
    pub const RPC_METHOD_NOT_FOUND: i32 = -32601;
    /// Invalid method parameters (defined by JSON-RPC 2.0; Core rarely uses it).
    pub const RPC_INVALID_PARAMS: i32 = -32602;
    /// Internal JSON-RPC error (here: a method handler panicked).
    pub const RPC_INTERNAL_ERROR: i32 = -32603;
    /// The body is not valid JSON, or its top level is neither an object nor an array.
    pub const RPC_PARSE_ERROR: i32 = -32700;

    // General application-defined errors.
    /// Generic error thrown in command handling (also: wrong number of parameters, with help text).
    pub const RPC_MISC_ERROR: i32 = -1;
    /// An unexpected JSON type was passed as a parameter.
    pub const RPC_TYPE_ERROR: i32 = -3;
    /// Invalid address or key.
    pub const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
    /// Ran out of memory during the operation.
    pub const RPC_OUT_OF_MEMORY: i32 = -7;
    /// Invalid, missing or duplicate parameter.
    pub const RPC_INVALID_PARAMETER: i32 = -8;
    /// Database error.
    pub const RPC_DATABASE_ERROR: i32 = -20;
    /// Error parsing or validating a structure in raw format (hex transactions, blocks).
    pub const RPC_DESERIALIZATION_ERROR: i32 = -22;
    /// General error during transaction or block submission.
    pub const RPC_VERIFY_ERROR: i32 = -25;
    /// Transaction or block was rejected by network rules.
    pub const RPC_VERIFY_REJECTED: i32 = -26;
    /// Transaction already in the chain.
    pub const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;
    /// The server is still warming up (loading the block index, verifying blocks).
    pub const RPC_IN_WARMUP: i32 = -28;
    /// The RPC method is deprecated.
    pub const RPC_METHOD_DEPRECATED: i32 = -32;

    // P2P client errors.
    /// The node is not connected to any peer.
    pub const RPC_CLIENT_NOT_CONNECTED: i32 = -9;
    /// Still downloading initial blocks.
    pub const RPC_CLIENT_IN_INITIAL_DOWNLOAD: i32 = -10;
    /// The node is already added.
    pub const RPC_CLIENT_NODE_ALREADY_ADDED: i32 = -23;
    /// The node has not been added before.
    pub const RPC_CLIENT_NODE_NOT_ADDED: i32 = -24;
    /// The node to disconnect was not found among connected peers.
    pub const RPC_CLIENT_NODE_NOT_CONNECTED: i32 = -29;
    /// Invalid IP address or subnet.
    pub const RPC_CLIENT_INVALID_IP_OR_SUBNET: i32 = -30;
    /// No valid connection manager instance found (P2P disabled).
    pub const RPC_CLIENT_P2P_DISABLED: i32 = -31;
    /// The mempool is disabled.
    pub const RPC_CLIENT_MEMPOOL_DISABLED: i32 = -33;
    /// The maximum number of outbound connections has been reached.
    pub const RPC_CLIENT_NODE_CAPACITY_REACHED: i32 = -34;

    // Wallet errors.
    /// Unspecified problem with the wallet (key not found etc.).
    pub const RPC_WALLET_ERROR: i32 = -4;
    /// Not enough funds in the wallet.
    pub const RPC_WALLET_INSUFFICIENT_FUNDS: i32 = -6;
    /// Invalid label name.
    pub const RPC_WALLET_INVALID_LABEL_NAME: i32 = -11;
    /// The keypool ran out.
    pub const RPC_WALLET_KEYPOOL_RAN_OUT: i32 = -12;
    /// The wallet must be unlocked with `walletpassphrase` first.
    pub const RPC_WALLET_UNLOCK_NEEDED: i32 = -13;
    /// The wallet passphrase entered was incorrect.
    pub const RPC_WALLET_PASSPHRASE_INCORRECT: i32 = -14;
    /// Command given in the wrong wallet encryption state.
    pub const RPC_WALLET_WRONG_ENC_STATE: i32 = -15;
    /// Failed to encrypt the wallet.
    pub const RPC_WALLET_ENCRYPTION_FAILED: i32 = -16;
    /// The wallet is already unlocked.
    pub const RPC_WALLET_ALREADY_UNLOCKED: i32 = -17;
    /// The requested wallet does not exist or is not loaded.
    pub const RPC_WALLET_NOT_FOUND: i32 = -18;
    /// Several wallets are loaded and none was named (use `/wallet/<name>`).
    pub const RPC_WALLET_NOT_SPECIFIED: i32 = -19;
    /// This same wallet is already loaded.
    pub const RPC_WALLET_ALREADY_LOADED: i32 = -35;
    /// A wallet with this name already exists.
    pub const RPC_WALLET_ALREADY_EXISTS: i32 = -36;
}

use codes::*;

/// A JSON-RPC error as returned to the caller: Core's `{"code": …, "message": …}` object.
///
/// Method handlers return it; the constructors name the common Core codes.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[error("{message} (code {code})")]
pub struct RpcError {
    /// The numeric error code (see [`codes`]).
    pub code: i32,
    /// The human-readable message.
    pub message: String,
}

impl RpcError {
    /// An error with an arbitrary code.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// `RPC_MISC_ERROR` (-1).
    pub fn misc(message: impl Into<String>) -> Self {
        Self::new(RPC_MISC_ERROR, message)
    }

    /// `RPC_TYPE_ERROR` (-3).
    pub fn type_error(message: impl Into<String>) -> Self {
        Self::new(RPC_TYPE_ERROR, message)
    }

    /// `RPC_INVALID_ADDRESS_OR_KEY` (-5).
    pub fn invalid_address_or_key(message: impl Into<String>) -> Self {
        Self::new(RPC_INVALID_ADDRESS_OR_KEY, message)
    }

    /// `RPC_INVALID_PARAMETER` (-8).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(RPC_INVALID_PARAMETER, message)
    }

    /// `RPC_DATABASE_ERROR` (-20).
    pub fn database(message: impl Into<String>) -> Self {
        Self::new(RPC_DATABASE_ERROR, message)
    }

    /// `RPC_DESERIALIZATION_ERROR` (-22).
    pub fn deserialization(message: impl Into<String>) -> Self {
        Self::new(RPC_DESERIALIZATION_ERROR, message)
    }

    /// `RPC_VERIFY_ERROR` (-25).
    pub fn verify(message: impl Into<String>) -> Self {
        Self::new(RPC_VERIFY_ERROR, message)
    }

    /// `RPC_VERIFY_REJECTED` (-26).
    pub fn verify_rejected(message: impl Into<String>) -> Self {
        Self::new(RPC_VERIFY_REJECTED, message)
    }

    /// `RPC_VERIFY_ALREADY_IN_CHAIN` (-27).
    pub fn already_in_chain(message: impl Into<String>) -> Self {
        Self::new(RPC_VERIFY_ALREADY_IN_CHAIN, message)
    }

    /// `RPC_IN_WARMUP` (-28).
    pub fn in_warmup(message: impl Into<String>) -> Self {
        Self::new(RPC_IN_WARMUP, message)
    }

    /// `RPC_METHOD_NOT_FOUND` (-32601) with Core's message, `Method not found`.
    pub fn method_not_found() -> Self {
        Self::new(RPC_METHOD_NOT_FOUND, "Method not found")
    }

    /// `RPC_INVALID_REQUEST` (-32600).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(RPC_INVALID_REQUEST, message)
    }

    /// `RPC_INVALID_PARAMS` (-32602).
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(RPC_INVALID_PARAMS, message)
    }

    /// `RPC_INTERNAL_ERROR` (-32603).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(RPC_INTERNAL_ERROR, message)
    }

    /// `RPC_PARSE_ERROR` (-32700).
    pub fn parse(message: impl Into<String>) -> Self {
        Self::new(RPC_PARSE_ERROR, message)
    }

    /// The error as a JSON object `{"code": …, "message": …}`.
    pub fn to_json(&self) -> Value {
        json!({ "code": self.code, "message": self.message })
    }
}

/// Why the RPC server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum RpcServerError {
    /// The listening socket could not be bound.
    #[error("cannot bind the RPC server to {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The authentication cookie could not be written.
    #[error("cannot write the RPC cookie file {path}: {source}")]
    Cookie {
        /// The cookie file's path.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The server failed while running.
    #[error("RPC server error: {0}")]
    Serve(io::Error),
    /// The server task ended abnormally.
    #[error("RPC server task failed: {0}")]
    Task(String),
}
