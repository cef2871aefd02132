//! Request bodies are attacker input: every body processor (urlencoded, multipart, JSON,
//! XML) takes any bytes under any of its content types without panicking, through a
//! transaction that inspects what they produce.
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
    let content_type = match choice % 5 {
        0 => "application/x-www-form-urlencoded",
        1 => "multipart/form-data; boundary=XyZ",
        2 => "application/json",
        3 => "application/xml",
        _ => "text/plain",
    };
    let request = Request {
        method: "POST".into(),
        uri: "/fuzz?a=1".into(),
        protocol: "HTTP/1.1".into(),
        headers: vec![("Content-Type".into(), content_type.into())],
        body: body.to_vec(),
        remote_addr: "127.0.0.1".into(),
    };
    let mut tx = Transaction::new(engine(), &request);
    tx.run_request_phases();
});
