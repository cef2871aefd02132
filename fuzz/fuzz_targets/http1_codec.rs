//! Arbitrary bytes as HTTP/1 request heads, response heads and chunked bodies (fed
//! in pieces): the codec never panics, never takes more bytes than it was given,
//! and never hands out more body bytes than it consumed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rampart_proxy::h1::codec::{self, ChunkedDecoder, Decoded};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(_)) = codec::parse_request(&mut buf, 8192) {
        assert!(buf.len() < data.len(), "a parsed head takes its bytes");
    }
    for fields_as in [codec::ResponseFields::Map, codec::ResponseFields::PassThrough] {
        let mut buf = BytesMut::from(data);
        if let Ok(Some(head)) = codec::parse_response(&mut buf, &http::Method::GET, 8192, fields_as)
        {
            assert!(buf.len() < data.len(), "a parsed head takes its bytes");
            // What is passed on is a valid head again, with the same status.
            let mut out = Vec::new();
            codec::encode_response_head(
                &mut out,
                head.parts.status,
                head.parts.extensions.get::<codec::PassedFields>(),
                &head.parts.headers,
                codec::Framing::Length(0),
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
