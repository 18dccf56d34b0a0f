#![no_main]
//! Any header and body: parsing and verification never panic.
use kavachos_stripe::webhook::{parse_signature_header, verify_signature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    if let Ok(header) = std::str::from_utf8(header) {
        let _ = parse_signature_header(header);
        let _ = verify_signature(body, header, &["whsec_fuzz"], 300, 1_700_000_000);
    }
});
