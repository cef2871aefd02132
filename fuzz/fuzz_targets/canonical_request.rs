//! Canonical request heads: any head the codec accepts is either refused with a
//! reason or made canonical, and the canonical form is a fixed point: canonicalizing
//! it again changes nothing, it names one host, and its path has no dot segment,
//! repeated slash, backslash or escape of an unreserved character.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rampart_config::{EncodedSlashes, PathParameters, RequestNormalization, UnderscoresInHeaders};
use rampart_proxy::canonical::{canonical_host, canonical_path, canonicalize, FieldNames};
use rampart_proxy::h1::codec::parse_request;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, head)) = data.split_first() else {
        return;
    };
    let policy = RequestNormalization {
        merge_slashes: selector & 1 == 0,
        encoded_slashes: match selector >> 1 & 3 {
            0 => EncodedSlashes::Reject,
            1 => EncodedSlashes::Decode,
            _ => EncodedSlashes::Keep,
        },
        underscores_in_headers: if selector & 8 == 0 {
            UnderscoresInHeaders::Drop
        } else {
            UnderscoresInHeaders::Keep
        },
        path_parameters: match selector >> 4 & 3 {
            0 => PathParameters::Reject,
            1 => PathParameters::Strip,
            _ => PathParameters::Keep,
        },
    };
    if let Ok(text) = std::str::from_utf8(head) {
        if let Ok(Some(path)) = canonical_path(text, &policy) {
            assert_eq!(canonical_path(&path, &policy), Ok(None), "{path:?} is a fixed point");
            assert!(path.starts_with('/'));
            if policy.merge_slashes {
                assert!(!path.contains("//"), "{path:?}");
            }
            assert!(!path.split('/').any(|s| s == "." || s == ".."), "{path:?}");
            assert!(!path.contains('\\'));
            if policy.path_parameters != PathParameters::Keep {
                assert!(!path.contains(';'), "{path:?}");
            }
        }
    }
    if let Ok(Some(host)) = canonical_host(head, 80) {
        assert_eq!(canonical_host(host.as_bytes(), 80), Ok(None), "{host:?} is a fixed point");
        assert!(!host.ends_with('.') && !host.bytes().any(|b| b.is_ascii_uppercase()));
    }
    let mut buf = BytesMut::from(head);
    let Ok(Some(parsed)) = parse_request(&mut buf, 64 * 1024) else {
        return;
    };
    let mut parts = parsed.parts;
    if canonicalize(&mut parts, &policy, 80, None, FieldNames::Unchecked).is_ok() {
        assert!(parts.headers.get_all(http::header::HOST).iter().count() <= 1);
        assert!(parts.uri.authority().is_none(), "origin-form after canonicalization");
        assert!(!parts.headers.keys().any(|n| n.as_str().starts_with("x-rampart-")));
        let before = (parts.uri.clone(), parts.headers.clone());
        assert!(canonicalize(&mut parts, &policy, 80, None, FieldNames::Unchecked).is_ok(), "still canonical");
        assert_eq!(before, (parts.uri.clone(), parts.headers.clone()));
    }
});
