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
    let mut buf = BytesMut::from(data);
    if let Ok(Some(_)) = codec::parse_response(&mut buf, &http::Method::GET, 8192) {
        assert!(buf.len() < data.len(), "a parsed head takes its bytes");
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
