//! Rampart's WAF engine: SecLang — the ModSecurity rule language the OWASP Core Rule
//! Set is written in — parsed into typed directives (every error reported by file,
//! line and directive), compiled once, and evaluated per request phase by phase.

mod build;
pub mod conformance;
pub mod engine;
pub mod libinjection;
pub mod seclang;

pub use build::{build, BuildError, WafSettings, BASELINE};
