//! Signed notes, checkpoints and verifier keys from untrusted text never panic, and a
//! note only opens with a key that signed it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_audit::note::{open, Checkpoint, Verifier};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Checkpoint::parse(text);
    let verifier = Verifier::parse(text).ok();
    // No key: nothing may verify.
    assert!(open(text, &[]).is_err());
    if let Some(v) = verifier {
        let _ = open(text, &[v]);
    }
});
