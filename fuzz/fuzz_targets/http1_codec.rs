//! Arbitrary bytes as HTTP/1 request heads, response heads and chunked bodies (fed
//! in pieces): the codec never panics, never takes more bytes than it was given,
//! and never hands out more body bytes than it consumed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rampart_proxy::h1::codec::{self, ChunkedDecoder, Decoded};
use rampart_proxy::headers;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(_)) = codec::parse_request(&mut buf, 8192) {
        assert!(buf.len() < data.len(), "a parsed head takes its bytes");
    }
    // Passed-through fields, once in a map, are the map's fields less the hop-by-hop
    // ones and the request id.
    let as_map = codec::parse_response(&mut BytesMut::from(data), &http::Method::GET, 8192, codec::ResponseFields::Map);
    let passed = codec::parse_response(&mut BytesMut::from(data), &http::Method::GET, 8192, codec::ResponseFields::PassThrough);
    match (as_map, passed) {
        (Ok(Some(mut as_map)), Ok(Some(passed))) => {
            assert_eq!(as_map.framing, passed.framing);
            assert_eq!(as_map.keep_alive, passed.keep_alive);
            // Interim responses always come as a map; every other one passes through.
            assert_eq!(passed.passed.is_some(), !passed.parts.status.is_informational());
            if let Some(fields) = passed.passed {
                headers::remove_hop_by_hop(&mut as_map.parts.headers, false);
                as_map.parts.headers.remove(&headers::X_REQUEST_ID);
                assert_eq!(fields.into_map(), as_map.parts.headers);
            }
        }
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        (a, b) => panic!("the two ways disagree: {a:?} / {b:?}"),
    }
    for fields_as in [codec::ResponseFields::Map, codec::ResponseFields::PassThrough] {
        let mut buf = BytesMut::from(data);
        if let Ok(Some(head)) = codec::parse_response(&mut buf, &http::Method::GET, 8192, fields_as)
        {
            assert!(buf.len() < data.len(), "a parsed head takes its bytes");
            // What is passed on is a valid head again, with the same status. (Written
            // without a body, so that no field is added to a head already at the
            // field limit.)
            let mut out = Vec::new();
            codec::encode_response_head(
                &mut out,
                head.parts.status,
                head.passed.as_deref(),
                &head.parts.headers,
                codec::Framing::Empty,
                None,
                None,
            );
            let again = codec::parse_response(
                &mut BytesMut::from(&out[..]),
                &http::Method::GET,
                out.len(),
                codec::ResponseFields::Map,
            );
            match again {
                Ok(Some(again)) => assert_eq!(again.parts.status, head.parts.status),
                other => panic!("re-encoded head does not parse: {other:?}"),
            }
        }
    }
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut decoder = ChunkedDecoder::new(1024);
    let mut buf = BytesMut::new();
    let (mut fed, mut produced) = (0usize, 0usize);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Data(d)) => {
                produced += d.len();
                assert!(produced <= fed);
            }
            Ok(Decoded::End(_)) | Err(_) => break,
            Ok(Decoded::NeedMore) => {
                if fed >= data.len() {
                    break;
                }
                let end = (fed + step).min(data.len());
                buf.extend_from_slice(&data[fed..end]);
                fed = end;
            }
        }
    }
});
