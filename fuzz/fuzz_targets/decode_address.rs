//! Any string: address parsing never panics, and an accepted address prints back to the same
//! string (lowercased) and survives the scriptPubKey round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnet_primitives::Address;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(address) = text.parse::<Address>() {
        assert_eq!(address.to_string(), text.to_ascii_lowercase());
        let script = address.script_pubkey();
        let back = Address::from_script_pubkey(&script, address.network()).expect("own script");
        assert_eq!(back, address);
    }
});
