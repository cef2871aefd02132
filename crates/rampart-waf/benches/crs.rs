//! In-process cost of the WAF per request (criterion): the stock CRS v4 at paranoia
//! level 1 (blocking, anomaly threshold 5) on a clean request and on SQLi, XSS and RCE
//! attacks, plus the libinjection detectors alone. The CRS is read from
//! `RAMPART_SHARED_DIR/crs` or `../shared/crs`. Run: `cargo bench -p rampart-waf`
//! (`bench/waf.sh` runs it before the end-to-end comparison).

use std::path::PathBuf;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use rampart_waf::engine::{Request, Transaction};

fn crs_dir() -> Option<PathBuf> {
    let shared = std::env::var_os("RAMPART_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let crs = shared.join("crs");
    crs.join("rules").is_dir().then_some(crs)
}

fn request(uri: &str) -> Request {
    Request {
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
    }
}

fn crs(c: &mut Criterion) {
    let Some(crs) = crs_dir() else {
        eprintln!("SKIPPED: the CRS rules (../shared/crs) were not found");
        return;
    };
    let dir = std::env::temp_dir().join(format!("rampart-waf-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let entry = dir.join("crs.conf");
    std::fs::write(&entry, rampart_waf::conformance::crs_entry(&crs)).expect("entry file");
    let started = Instant::now();
    let engine = rampart_waf::build(&rampart_waf::WafSettings {
        rules: Some(entry),
        block: true,
        paranoia: 1,
        anomaly_threshold: 5,
        exclusions: vec![],
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "compiled {} rules in {:.0} ms",
        engine.rule_count(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let cases = [
        ("clean", "/products?id=42&sort=price", false),
        (
            "sqli",
            "/products?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
            true,
        ),
        (
            "xss",
            "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
            true,
        ),
        ("rce", "/run?cmd=;cat%20/etc/passwd", true),
    ];
    let mut group = c.benchmark_group("crs-pl1");
    for (name, uri, attack) in cases {
        let request = request(uri);
        // The case measures what it says: an attack is blocked, a clean request is not.
        let mut tx = Transaction::new(&engine, &request);
        tx.run_request_phases();
        assert_eq!(tx.interruption.is_some(), attack, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut tx = Transaction::new(&engine, &request);
                tx.run_request_phases();
                tx.interruption.is_some()
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn detectors(c: &mut Criterion) {
    let sqli = b"1' UNION SELECT password FROM users WHERE name='admin'--";
    let xss = b"<img src=x onerror=alert(document.cookie)>";
    let clean = b"The quick brown fox jumps over the lazy dog, 42 times.";
    let mut group = c.benchmark_group("libinjection");
    group.bench_function("sqli-attack", |b| {
        b.iter(|| rampart_waf::libinjection::detect_sqli(std::hint::black_box(sqli)))
    });
    group.bench_function("sqli-clean", |b| {
        b.iter(|| rampart_waf::libinjection::detect_sqli(std::hint::black_box(clean)))
    });
    group.bench_function("xss-attack", |b| {
        b.iter(|| rampart_waf::libinjection::detect_xss(std::hint::black_box(xss)))
    });
    group.bench_function("xss-clean", |b| {
        b.iter(|| rampart_waf::libinjection::detect_xss(std::hint::black_box(clean)))
    });
    group.finish();
}

criterion_group!(benches, crs, detectors);
criterion_main!(benches);
