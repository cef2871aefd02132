//! Request bodies are attacker input: every body processor (urlencoded, multipart, JSON,
//! XML) takes any bytes under any of its content types, and the Content-Type parser any
//! value, without panicking, through a transaction that inspects what they produce; a
//! body that could not be read in full is still visible to the rules as it is.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart_waf::engine::{Engine, Request, Transaction};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let rules = "SecRuleEngine On\n\
            SecRule ARGS|ARGS_NAMES|FILES|FILES_NAMES|XML:/*|XML://@*|MULTIPART_PART_HEADERS|REQBODY_ERROR \"@rx (?i)select|<script|1\" \"id:1,phase:2,deny,t:none,t:urlDecodeUni,t:htmlEntityDecode,t:jsDecode\"\n";
        let set = rampart_waf::seclang::parse_str(rules, std::path::Path::new("fuzz.conf"))
            .expect("rules parse");
        Engine::compile(&set).expect("rules compile")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    // A fixed type, or (for the Content-Type parser) the body's first line.
    let (content_type, body) = match choice % 10 {
        0 => ("application/x-www-form-urlencoded".to_string(), body),
        1 => ("multipart/form-data; boundary=XyZ".to_string(), body),
        2 => ("Multipart/Form-Data; BOUNDARY = \"XyZ\"".to_string(), body),
        3 => ("application/json".to_string(), body),
        4 => ("text/json; charset=utf-8".to_string(), body),
        5 => ("application/xml".to_string(), body),
        6 => ("text/plain".to_string(), body),
        _ => {
            let (line, rest) = match body.iter().position(|b| *b == b'\n') {
                Some(i) => (&body[..i], &body[i + 1..]),
                None => (body, &b""[..]),
            };
            (String::from_utf8_lossy(line).into_owned(), rest)
        }
    };
    let request = Request {
        method: "POST".into(),
        uri: "/fuzz?a=1".into(),
        protocol: "HTTP/1.1".into(),
        headers: vec![("Content-Type".into(), content_type)],
        body: body.to_vec(),
        remote_addr: "127.0.0.1".into(),
    };
    let mut tx = Transaction::new(engine(), &request);
    tx.run_request_phases();
    // A body that could not be read in full is visible raw to the rules.
    if tx.inspection_error().is_some() && !body.is_empty() {
        let raw = tx.collection(rampart_waf::seclang::Collection::RequestBody);
        assert!(raw.iter().any(|(_, v)| v.as_slice() == body));
    }
});
