//! Arbitrary bytes through the libinjection detectors: never a panic, and a SQLi
//! fingerprint is one to five token types.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(fingerprint) = rampart_waf::libinjection::detect_sqli(data) {
        assert!((1..=5).contains(&fingerprint.len()), "{fingerprint:?}");
    }
    let _ = rampart_waf::libinjection::detect_xss(data);
});
