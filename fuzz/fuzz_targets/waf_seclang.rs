//! Rule files are operator input: any text gets rules or located errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(errors) = rampart_waf::seclang::parse_str(text, std::path::Path::new("fuzz.conf")) {
            assert!(!errors.0.is_empty());
        }
    }
});
