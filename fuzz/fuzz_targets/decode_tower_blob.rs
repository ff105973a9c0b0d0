//! Any bytes: watchtower blob parsing, authentication and plaintext decoding never panic.
//!
//! The bytes are read as a received blob (checked for version and bucket length, then opened
//! with a fixed txid; a blob that opens must be exactly what sealing its plaintext again gives,
//! as sealing is deterministic and only canonical plaintexts decode), and as a decrypted
//! plaintext, which, when it decodes, must encode back to exactly the same bytes and survive
//! sealing and opening.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_lightning::watchtower::{BlobPlaintext, EncryptedBlob};
use rnet_primitives::Txid;

fuzz_target!(|data: &[u8]| {
    let txid = Txid::from_bytes([0x42; 32]);
    if let Ok(blob) = EncryptedBlob::from_bytes(data)
        && let Ok(plaintext) = blob.open(&txid)
    {
        assert_eq!(EncryptedBlob::seal(&plaintext, &txid).as_ref(), Ok(&blob));
    }
    if let Ok(plaintext) = BlobPlaintext::decode(data) {
        assert_eq!(plaintext.encode().as_deref(), Ok(data));
        let sealed = EncryptedBlob::seal(&plaintext, &txid).expect("a decoded plaintext seals");
        assert_eq!(sealed.open(&txid), Ok(plaintext));
    }
});
