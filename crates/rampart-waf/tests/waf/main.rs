//! The WAF engine against the stock OWASP CRS v4 in `../shared/crs`.

use std::path::{Path, PathBuf};

use rampart_waf::seclang::{self, Directive};

/// The CRS directory: `$RAMPART_SHARED_DIR/crs`, else `shared/crs` beside the checkout.
fn crs_dir() -> Option<PathBuf> {
    let from_env = std::env::var_os("RAMPART_SHARED_DIR").map(PathBuf::from);
    let beside = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared"))
        .find(|d| d.join("crs/rules").is_dir());
    let dir = from_env.or(beside)?.join("crs");
    if dir.join("rules").is_dir() {
        Some(dir)
    } else {
        assert!(
            std::env::var_os("RAMPART_REQUIRE_SHARED").is_none(),
            "the CRS is required here but not found (set RAMPART_SHARED_DIR)"
        );
        eprintln!("SKIPPED (shared data): the CRS was not found; set RAMPART_SHARED_DIR");
        None
    }
}

/// A new empty directory of its own under the system's temporary directory (kept after
/// the test, for a look at what it left).
fn temp_dir(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("rampart-{name}-"))
        .tempdir()
        .expect("temp dir")
        .keep()
}

/// An entry file the way operators write one: the setup, then every rule file (one per
/// test: tests run in parallel).
fn entry_file(crs: &Path, test: &str) -> PathBuf {
    let dir = temp_dir(&format!("waf-crs-{test}"));
    let entry = dir.join("crs.conf");
    std::fs::write(&entry, rampart_waf::conformance::crs_entry(crs)).expect("write");
    entry
}

#[test]
fn the_stock_crs_v4_parses_completely() {
    let Some(crs) = crs_dir() else { return };
    let set = seclang::load(&entry_file(&crs, "parse")).unwrap_or_else(|e| panic!("{e}"));
    let rules = set.rules().count();
    let markers = set
        .directives
        .iter()
        .filter(|(_, d)| matches!(d, Directive::Marker(_)))
        .count();
    let updates = set
        .directives
        .iter()
        .filter(|(_, d)| matches!(d, Directive::UpdateTargetById(..)))
        .count();
    // Counted from the files: SecRule/SecAction heads, SecMarker, SecRuleUpdateTargetById.
    assert!(rules > 600, "{rules} rules");
    assert!(markers >= 30, "{markers} markers");
    assert_eq!(updates, 55);
    // Every rule of the anomaly-scoring core is there, with its chains.
    let ids: Vec<u64> = set.rules().filter_map(|r| r.id()).collect();
    for id in [
        901001, 920100, 942100, 941100, 932230, 949110, 959100, 980170,
    ] {
        assert!(ids.contains(&id), "rule {id} missing");
    }
    assert!(set.rules().any(|r| r.chained.is_some()));
}

#[test]
fn a_broken_rule_file_is_reported_by_file_line_and_directive() {
    let dir = temp_dir("waf-bad");
    std::fs::write(
        dir.join("main.conf"),
        "SecRuleEngine On\nInclude more/*.conf\nInclude missing.conf\n",
    )
    .expect("write");
    std::fs::create_dir_all(dir.join("more")).expect("dir");
    std::fs::write(
        dir.join("more/a.conf"),
        "SecRule ARGS \"@rx x\" \"id:10,phase:2,pass\"\n\nSecRule ARGS \"@rx y\" \"id:11,phase:2,t:frob\"\n",
    )
    .expect("write");
    let errors = seclang::load(&dir.join("main.conf")).expect_err("errors").0;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].location.file.ends_with("more/a.conf"));
    assert_eq!(errors[0].location.line, 3);
    assert_eq!(errors[0].directive, "SecRule");
    assert!(errors[0].message.contains("t:frob"));
    assert!(errors[1].location.file.ends_with("main.conf"));
    assert_eq!(errors[1].location.line, 3);
    assert_eq!(errors[1].directive, "Include");
}

/// The CRS regression corpus: the pass count may only go up (the baseline is in
/// `conformance-baseline.txt`).
#[test]
fn the_regression_corpus_passes_at_least_the_recorded_count() {
    let Some(crs) = crs_dir() else { return };
    let engine = rampart_waf::conformance::engine_for_tests(&entry_file(&crs, "corpus"))
        .unwrap_or_else(|e| panic!("{e}"));
    let results = rampart_waf::conformance::run(&engine, &crs.join("regression"))
        .unwrap_or_else(|e| panic!("{e}"));
    let summary = rampart_waf::conformance::summarize(&results);
    for case in &results {
        if let rampart_waf::conformance::Verdict::Failed(why) = &case.verdict {
            eprintln!("FAIL {}: {why}", case.name);
        }
    }
    eprintln!(
        "{} passed, {} failed, {} skipped",
        summary.passed, summary.failed, summary.skipped
    );
    let baseline: usize = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance-baseline.txt"),
    )
    .expect("baseline file")
    .trim()
    .parse()
    .expect("a number");
    assert!(
        summary.passed >= baseline,
        "{} passed, fewer than the recorded {baseline}",
        summary.passed
    );
}

/// CRS 3.3 as Debian's `modsecurity-crs` package installs it (PCRE-only regexes
/// included) loads, and its anomaly scoring blocks an attack.
#[test]
fn debian_crs_3_3_loads_and_blocks() {
    let rules = Path::new("/usr/share/modsecurity-crs/rules");
    let setup = Path::new("/etc/modsecurity/crs/crs-setup.conf");
    if !rules.is_dir() || !setup.is_file() {
        assert!(
            std::env::var_os("RAMPART_REQUIRE_CRS33").is_none(),
            "CRS 3.3 (Debian package modsecurity-crs) is required here but not installed"
        );
        eprintln!("SKIPPED (CRS 3.3): install the Debian package modsecurity-crs");
        return;
    }
    let dir = temp_dir("waf-crs33");
    let entry = dir.join("crs.conf");
    std::fs::write(
        &entry,
        format!(
            "Include {}\nInclude {}/*.conf\n",
            setup.display(),
            rules.display()
        ),
    )
    .expect("write");
    let engine = rampart_waf::build(&rampart_waf::WafSettings {
        rules: Some(entry),
        block: true,
        paranoia: 1,
        anomaly_threshold: 5,
        exclusions: vec![],
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(engine.rule_count() > 400, "{} rules", engine.rule_count());
    let request = |uri: &str| rampart_waf::engine::Request {
        method: "GET".into(),
        uri: uri.into(),
        protocol: "HTTP/1.1".into(),
        headers: vec![
            ("Host".into(), "example.com".into()),
            ("User-Agent".into(), "Mozilla/5.0".into()),
            ("Accept".into(), "text/html".into()),
        ],
        body: Vec::new(),
        remote_addr: "10.0.0.1".into(),
    };
    let verdict = |uri: &str| {
        let r = request(uri);
        let mut tx = rampart_waf::engine::Transaction::new(&engine, &r);
        tx.run_request_phases();
        tx.interruption
    };
    assert_eq!(verdict("/products?id=42"), None);
    assert!(verdict("/p?q=%3Cscript%3Ealert(1)%3C/script%3E").is_some());
}
