//! Any text given as a config file compiles or yields errors; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(errors) = rampart_config::compile_str(text, std::path::Path::new("/nonexistent")) {
        // Rendering every error must not panic either.
        let _ = errors.to_string();
    }
});
