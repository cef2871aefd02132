//! Segment bytes from disk (possibly torn or tampered) never panic the record parser,
//! and every record it accepts is whole and matches its hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_audit::merkle::leaf_hash;

fuzz_target!(|data: &[u8]| {
    for last in [false, true] {
        let mut seen = 0u64;
        let parsed = rampart_audit::parse_records(data, last, 0, "fuzz", |offset, hash, bytes| {
            assert!(offset as usize + bytes.len() <= data.len());
            assert_eq!(leaf_hash(bytes), hash);
            seen += 1;
        });
        assert_eq!(parsed.records, seen);
        assert!(parsed.bytes as usize <= data.len());
        if parsed.is_clean() {
            assert_eq!(parsed.bytes as usize, data.len());
        }
    }
});
