//! Rampart's WAF engine. This first part reads SecLang — the ModSecurity rule language
//! the OWASP Core Rule Set is written in — into typed directives, with every error
//! reported by file, line and directive.

pub mod seclang;
