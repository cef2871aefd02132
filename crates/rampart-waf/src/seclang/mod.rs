//! SecLang, the ModSecurity rule language: reading rule files (with `Include`) into
//! typed [`Directive`]s, reporting every error with its file, line and directive.

pub mod ast;
mod parse;

use std::path::{Path, PathBuf};

pub use ast::*;

/// Largest rule file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Deepest `Include` nesting.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {directive}: {message}")]
pub struct ParseError {
    /// Where.
    pub location: Location,
    /// The directive's name (`SecRule`, `Include`, …).
    pub directive: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ParseErrors(pub Vec<ParseError>);

/// A parsed rule set: directives in the order they apply, with where each came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    /// The directives.
    pub directives: Vec<(Location, Directive)>,
}

impl RuleSet {
    /// The rules (`SecRule` and `SecAction`), in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.directives.iter().filter_map(|(_, d)| match d {
            Directive::Rule(r) | Directive::Action(r) => Some(r),
            _ => None,
        })
    }
}

/// Reads `path` and everything it includes.
pub fn load(path: &Path) -> Result<RuleSet, ParseErrors> {
    let mut parser = parse::Parser::default();
    parser.file(path, None, 0);
    parser.finish()
}

/// Parses `text` as if it were the file `name` (includes are resolved next to it).
pub fn parse_str(text: &str, name: &Path) -> Result<RuleSet, ParseErrors> {
    let mut parser = parse::Parser::default();
    parser.text(text, name, 0);
    parser.finish()
}

/// The files an `Include` pattern names: a path relative to `base`, whose last
/// component may contain `*` wildcards; sorted.
fn expand_include(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    let name = full
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{pattern:?} names no file"))?
        .to_string();
    if !name.contains('*') {
        return Ok(vec![full]);
    }
    let dir = full.parent().unwrap_or(base);
    let parts: Vec<&str> = name.split('*').collect();
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| wildcard_match(&parts, n))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Whether `name` matches the pattern split at its `*`s.
fn wildcard_match(parts: &[&str], name: &str) -> bool {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let parts: Vec<&str> = "REQUEST-*.conf".split('*').collect();
        assert!(wildcard_match(&parts, "REQUEST-901-INITIALIZATION.conf"));
        assert!(!wildcard_match(&parts, "RESPONSE-950.conf"));
        assert!(!wildcard_match(&parts, "REQUEST-900.conf.example"));
        let parts: Vec<&str> = "*.conf".split('*').collect();
        assert!(wildcard_match(&parts, "a.conf"));
        assert!(!wildcard_match(&parts, "conf"));
    }
}
