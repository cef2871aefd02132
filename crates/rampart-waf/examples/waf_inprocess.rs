//! In-process cost of the WAF per request: the CRS at paranoia level 1 (blocking, anomaly
//! threshold 5) on a clean request and on SQLi, XSS and RCE attacks. Run by
//! `bench/waf.sh`: `cargo run --release -p rampart-waf --example waf_inprocess -- <crs dir>`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rampart_waf::engine::{Request, Transaction};

fn main() {
    let crs = PathBuf::from(std::env::args().nth(1).expect("the CRS directory"));
    let dir = std::env::temp_dir().join(format!("rampart-waf-inprocess-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let entry = dir.join("crs.conf");
    std::fs::write(&entry, rampart_waf::conformance::crs_entry(&crs)).expect("write");
    let started = Instant::now();
    let engine = rampart_waf::build(&rampart_waf::WafSettings {
        rules: Some(entry),
        block: true,
        paranoia: 1,
        anomaly_threshold: 5,
        exclusions: vec![],
    })
    .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "compiled {} rules in {:.0} ms",
        engine.rule_count(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let cases = [
        ("clean", "/products?id=42&sort=price"),
        (
            "sqli",
            "/products?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        ),
        (
            "xss",
            "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
        ),
        ("rce", "/run?cmd=;cat%20/etc/passwd"),
    ];
    for (name, uri) in cases {
        let request = Request {
            method: "GET".into(),
            uri: uri.into(),
            protocol: "HTTP/1.1".into(),
            headers: vec![
                ("Host".into(), "shop.example.com".into()),
                (
                    "User-Agent".into(),
                    "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0".into(),
                ),
                ("Accept".into(), "text/html,application/xhtml+xml".into()),
                ("Accept-Language".into(), "en-US,en;q=0.5".into()),
                ("Cookie".into(), "session=abc123; theme=dark".into()),
            ],
            body: Vec::new(),
            remote_addr: "203.0.113.9".into(),
        };
        let rounds = 2000;
        let started = Instant::now();
        let mut blocked = 0;
        for _ in 0..rounds {
            let mut tx = Transaction::new(&engine, &request);
            tx.run_request_phases();
            blocked += usize::from(tx.interruption.is_some());
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        println!(
            "{name:>6}: {per:8.1} µs per request ({} of {rounds} blocked)",
            blocked
        );
    }
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
