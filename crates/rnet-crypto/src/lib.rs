//! ResonanceNet cryptography (layer 1).
//!
//! Everything the protocol hashes or signs goes through this crate, so that the consensus-critical
//! primitives live in one place with their test vectors beside them.

pub mod keccak;

pub use keccak::{keccak256, keccak256d};
