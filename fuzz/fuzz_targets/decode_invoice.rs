//! Any string: invoice decoding never panics, and an accepted invoice prints back to the same
//! string (lowercased), reparses to an equal invoice and its signature verifies under its payee.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_lightning::invoice::Invoice;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(invoice) = Invoice::parse(text) {
        let printed = invoice.to_string();
        assert_eq!(printed, text.to_ascii_lowercase());
        assert_eq!(Invoice::parse(&printed).as_ref(), Ok(&invoice));
        assert!(invoice.payee().verify(&invoice.signing_digest(), invoice.signature()).is_ok());
    }
});
