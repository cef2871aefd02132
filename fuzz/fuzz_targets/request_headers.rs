//! Request headers with arbitrary values: trace context, request ids,
//! client IP and forwarding headers never panic.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use rampart_proxy::headers;

fuzz_target!(|data: &[u8]| {
    let names = ["content-length", "transfer-encoding", "traceparent", "x-request-id", "x-forwarded-for", "forwarded", "connection", "upgrade"];
    let mut map = HeaderMap::new();
    for (i, part) in data.split(|b| *b == b'\n').enumerate() {
        if let Ok(value) = HeaderValue::from_bytes(part) {
            map.append(HeaderName::from_static(names[i % names.len()]), value);
        }
    }
    // Read only when untraced; continued (or started) when traced: the same trace either way.
    let read = headers::identify(&map, false).1;
    let joined = headers::identify(&map, true).1.expect("a traced request has a trace");
    if let Some(read) = read {
        assert_eq!(read.trace_id_hex, joined.trace_id_hex);
        assert!(read.traceparent.is_none() && joined.traceparent.is_some());
    }
    let _ = headers::request_id(&map);
    let trusted = ["10.0.0.0/8".parse().expect("net")];
    let peer = "10.1.2.3".parse().expect("ip");
    let _ = headers::client_ip(peer, &map, &trusted);
    let mut copy = map.clone();
    let host = map.get("forwarded").cloned();
    let cache = headers::ForwardedCache::default();
    // Trusted, then untrusted twice: the last call takes the connection's cached value.
    for trusted_peer in [true, false, false] {
        let mut added = headers::AddedFields::default();
        headers::set_forwarding(&copy, &mut added, peer, &headers::ip_value(peer), trusted_peer, "https", host.as_ref(), &cache);
        added.remove_replaced(&mut copy);
        assert!(added.iter().all(|(name, _)| !copy.contains_key(name)), "replaced fields removed");
        added.merge_into(&mut copy);
    }
    headers::remove_hop_by_hop(&mut copy, data.len().is_multiple_of(2));
});
