//! Any byte stream, cut anywhere, goes through the HTTP/1 framing scanner without panics.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rampart_proxy::framing::{FramingScanner, FramingVerdicts};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else { return };
    let verdicts = Arc::new(FramingVerdicts::default());
    let mut scanner = FramingScanner::new(8192, Arc::clone(&verdicts));
    for piece in bytes.chunks(usize::from(cut).max(1)) {
        scanner.feed(piece);
    }
    for index in 0..4 {
        let _ = verdicts.take(index);
    }
});
