//! Operators, compiled once: regexes (with size limits), phrase sets (Aho-Corasick),
//! numbers, strings and byte-range checks.

use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

use crate::seclang::{Operator, OperatorKind};

/// Largest compiled regex (bytes of program), bounding memory per rule.
const REGEX_SIZE_LIMIT: usize = 8 << 20;

/// A compiled operator.
#[derive(Debug)]
pub enum Compiled {
    /// `@rx`.
    Regex(Regex),
    /// `@rx` with PCRE-only syntax (look-around, back-references, possessive
    /// quantifiers), as in CRS 3.3: a backtracking engine with a step limit.
    Backtracking(fancy_regex::Regex),
    /// `@pm` / `@pmFromFile`: any of the phrases, case-insensitive.
    Phrases(AhoCorasick),
    /// A string operator whose argument may hold macros (expanded per transaction).
    Text(OperatorKind, String),
    /// `@validateByteRange`: allowed byte ranges.
    ByteRange(Vec<(u8, u8)>),
    /// `@ipMatch`: networks.
    Ip(Vec<(std::net::IpAddr, u8)>),
    /// Always true.
    Always,
    /// Never true (such as `@noMatch`), or an operator this engine does not run.
    Never,
}

/// Compiles `op`; `base` is the rule file's directory (for data files).
pub fn compile(op: &Operator, base: &Path) -> Result<Compiled, String> {
    use OperatorKind as K;
    Ok(match op.kind {
        K::Rx | K::RxGlobal => regex(&op.argument)?,
        K::Pm => phrases(op.argument.split_whitespace().map(str::to_string).collect())?,
        K::PmFromFile | K::Pmf => {
            let mut words = Vec::new();
            for file in op.argument.split_whitespace() {
                let path = base.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                words.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string),
                );
            }
            phrases(words)?
        }
        K::ValidateByteRange => Compiled::ByteRange(byte_ranges(&op.argument)?),
        K::IpMatch => Compiled::Ip(networks(&op.argument)?),
        K::UnconditionalMatch => Compiled::Always,
        K::StrEq
        | K::StrMatch
        | K::Contains
        | K::ContainsWord
        | K::BeginsWith
        | K::EndsWith
        | K::Within
        | K::Eq
        | K::Ge
        | K::Gt
        | K::Le
        | K::Lt
        | K::ValidateUrlEncoding
        | K::ValidateUtf8Encoding
        | K::DetectSqli
        | K::DetectXss => Compiled::Text(op.kind, op.argument.clone()),
        _ => Compiled::Never,
    })
}

/// A regex: the linear-time engine when the pattern allows it (after PCRE's lenient
/// escapes and literal braces are normalised), else the backtracking one.
fn regex(pattern: &str) -> Result<Compiled, String> {
    let bytes_escaped = high_escapes_as_bytes(pattern);
    let pattern = bytes_escaped.as_str();
    let linear = |p: &str| {
        RegexBuilder::new(p)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
    };
    let first = match linear(pattern) {
        Ok(re) => return Ok(Compiled::Regex(re)),
        Err(e) => e,
    };
    let normalised = normalise_pcre(pattern);
    if let Ok(re) = linear(&normalised) {
        return Ok(Compiled::Regex(re));
    }
    fancy_regex::RegexBuilder::new(&normalised)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .map(Compiled::Backtracking)
        .map_err(|e| format!("@rx does not compile: {first}; nor as PCRE: {e}"))
}

/// The value of a `\xHH` or `\x{HH}` escape starting at `chars[i]` (the backslash),
/// and its length in chars.
fn hex_escape(chars: &[char], i: usize) -> Option<(u32, usize)> {
    if chars.get(i) != Some(&'\\') || chars.get(i + 1) != Some(&'x') {
        return None;
    }
    if chars.get(i + 2) == Some(&'{') {
        let digits: String = chars[i + 3..].iter().take_while(|c| **c != '}').collect();
        if digits.is_empty() || digits.len() > 2 || chars.get(i + 3 + digits.len()) != Some(&'}') {
            return None;
        }
        let value = u32::from_str_radix(&digits, 16).ok()?;
        return Some((value, 4 + digits.len()));
    }
    let digits: String = chars[i + 2..].iter().take(2).collect();
    if digits.len() == 2 && digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some((u32::from_str_radix(&digits, 16).ok()?, 4));
    }
    None
}

/// ModSecurity runs PCRE without UTF mode, so `\xHH` is a byte; the Rust engine in
/// Unicode mode would read escapes of 0x80 and above as code points (two bytes in
/// UTF-8). Such escapes become byte escapes in non-Unicode groups (a character
/// class holding one is made a byte class as a whole); nothing else changes.
fn high_escapes_as_bytes(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    if !pattern.contains("\\x") {
        return pattern.to_string();
    }
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            if let Some((value, len)) = hex_escape(&chars, i).filter(|(v, _)| *v >= 0x80) {
                out.push_str(&format!("(?-u:\\x{value:02x})"));
                i += len;
            } else {
                out.push(chars[i]);
                out.push(chars[i + 1]);
                i += 2;
            }
            continue;
        }
        if chars[i] == '[' {
            // Copy the class; note whether it holds a high escape or non-ASCII text.
            let start = i;
            let mut j = i + 1;
            if chars.get(j) == Some(&'^') {
                j += 1;
            }
            if chars.get(j) == Some(&']') {
                j += 1;
            }
            let mut high = false;
            let mut non_ascii = false;
            let mut nested = false;
            while j < chars.len() && chars[j] != ']' {
                if chars[j] == '\\' {
                    if let Some((value, len)) = hex_escape(&chars, j) {
                        high |= value >= 0x80;
                        j += len;
                        continue;
                    }
                    j += 2;
                    continue;
                }
                if chars[j] == '[' {
                    nested = true;
                }
                non_ascii |= !chars[j].is_ascii();
                j += 1;
            }
            let end = j.min(chars.len());
            let class: String = chars[start..(end + 1).min(chars.len())].iter().collect();
            if high && !non_ascii && !nested && end < chars.len() {
                // Non-Unicode classes take hex escapes only in their two-digit form.
                out.push_str("(?-u:");
                let mut k = start;
                while k <= end {
                    if let Some((value, len)) = hex_escape(&chars, k) {
                        out.push_str(&format!("\\x{value:02x}"));
                        k += len;
                    } else if chars[k] == '\\' && k < end {
                        out.push(chars[k]);
                        out.push(chars[k + 1]);
                        k += 2;
                    } else {
                        out.push(chars[k]);
                        k += 1;
                    }
                }
                out.push(')');
            } else {
                out.push_str(&class);
            }
            i = end + 1;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Steps a backtracking regex may take on one value before giving up (no match).
const BACKTRACK_LIMIT: usize = 500_000;

/// PCRE accepts needless escapes (`\'`, `\"`), `{` that starts no repetition, and `[`,
/// `&&` or `~~` inside a character class as literals; the Rust engines do not.
fn normalise_pcre(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            if matches!(
                n,
                '\'' | '"' | '`' | '/' | '@' | '%' | '<' | '>' | '=' | ':' | ';' | ',' | '!'
            ) {
                out.push(n);
            } else {
                out.push(c);
                out.push(n);
            }
            i += 2;
            continue;
        }
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    out.push(c);
                }
                '[' if chars.get(i + 1) != Some(&':') => out.push_str("\\["),
                '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push(c);
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` right after the opening is a literal.
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            '{' => {
                // A repetition is `{n}`, `{n,}` or `{n,m}`; anything else is a literal brace.
                let rest: String = chars[i + 1..].iter().take_while(|c| **c != '}').collect();
                let closed = i + 1 + rest.chars().count() < chars.len();
                let mut bounds = rest.split(',');
                let counted = closed
                    && rest.split(',').count() <= 2
                    && bounds
                        .next()
                        .is_some_and(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_digit()))
                    && bounds
                        .next()
                        .is_none_or(|b| b.chars().all(|c| c.is_ascii_digit()));
                if counted {
                    out.push('{');
                    out.push_str(&rest);
                    out.push('}');
                    i += rest.chars().count() + 2;
                    continue;
                }
                out.push_str("\\{");
            }
            '}' => out.push_str("\\}"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

fn phrases(words: Vec<String>) -> Result<Compiled, String> {
    if words.is_empty() {
        return Ok(Compiled::Never);
    }
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(&words)
        .map(Compiled::Phrases)
        .map_err(|e| format!("phrase set: {e}"))
}

fn byte_ranges(text: &str) -> Result<Vec<(u8, u8)>, String> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let bad = || format!("{part:?} is not a byte or range");
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            Ok((
                a.trim().parse::<u8>().map_err(|_| bad())?,
                b.trim().parse::<u8>().map_err(|_| bad())?,
            ))
        })
        .collect()
}

fn networks(text: &str) -> Result<Vec<(std::net::IpAddr, u8)>, String> {
    text.split([',', ' '])
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (addr, bits) = part.split_once('/').unwrap_or((part, ""));
            let ip: std::net::IpAddr = addr
                .parse()
                .map_err(|_| format!("{part:?} is not an address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = if bits.is_empty() {
                max
            } else {
                bits.parse::<u8>()
                    .map_err(|_| format!("{part:?}: bad prefix"))?
            };
            Ok((ip, bits.min(max)))
        })
        .collect()
}

fn in_network(ip: std::net::IpAddr, net: std::net::IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The outcome of one operator run.
pub struct Outcome {
    /// Whether it matched.
    pub matched: bool,
    /// Capture groups 0–9 (regexes) or the matched phrase.
    pub captures: Vec<Vec<u8>>,
}

fn number(bytes: &[u8]) -> i64 {
    // The leading integer of the trimmed text (an optional sign, then digits), as
    // ModSecurity reads operands; anything else is 0.
    let text = bytes.trim_ascii();
    let sign_len = usize::from(matches!(text.first(), Some(b'-' | b'+')));
    let digits = text[sign_len..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&text[..sign_len + digits])
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Runs `op` on `value`; `argument` is the operator's argument with macros expanded.
pub fn run(op: &Compiled, argument: &str, value: &[u8], want_captures: bool) -> Outcome {
    use OperatorKind as K;
    let no = || Outcome {
        matched: false,
        captures: Vec::new(),
    };
    let yes = |captures: Vec<Vec<u8>>| Outcome {
        matched: true,
        captures,
    };
    match op {
        Compiled::Always => yes(Vec::new()),
        Compiled::Never => no(),
        Compiled::Regex(re) => {
            // Most values do not match: find that out before paying for capture groups.
            if want_captures && re.is_match(value) {
                match re.captures(value) {
                    Some(c) => yes((0..c.len().min(10))
                        .map(|i| c.get(i).map(|m| m.as_bytes().to_vec()).unwrap_or_default())
                        .collect()),
                    None => no(),
                }
            } else if !want_captures && re.is_match(value) {
                yes(Vec::new())
            } else {
                no()
            }
        }
        Compiled::Backtracking(re) => {
            let text = String::from_utf8_lossy(value);
            match re.captures(&text) {
                // A pattern that runs out of steps does not match.
                Ok(Some(c)) => yes(if want_captures {
                    (0..c.len().min(10))
                        .map(|i| {
                            c.get(i)
                                .map(|m| m.as_str().as_bytes().to_vec())
                                .unwrap_or_default()
                        })
                        .collect()
                } else {
                    Vec::new()
                }),
                _ => no(),
            }
        }
        Compiled::Phrases(ac) => match ac.find(value) {
            Some(m) => yes(vec![value[m.start()..m.end()].to_vec()]),
            None => no(),
        },
        Compiled::ByteRange(ranges) => {
            let bad = value
                .iter()
                .any(|b| !ranges.iter().any(|(lo, hi)| lo <= b && b <= hi));
            if bad {
                yes(Vec::new())
            } else {
                no()
            }
        }
        Compiled::Ip(nets) => {
            let text = String::from_utf8_lossy(value);
            match text.trim().parse::<std::net::IpAddr>() {
                Ok(ip) if nets.iter().any(|(n, bits)| in_network(ip, *n, *bits)) => yes(Vec::new()),
                _ => no(),
            }
        }
        // libinjection's detectors; TX:0 is the SQLi fingerprint, as in ModSecurity.
        Compiled::Text(K::DetectSqli, _) => match crate::libinjection::detect_sqli(value) {
            Some(fingerprint) => yes(vec![fingerprint.into_bytes()]),
            None => no(),
        },
        Compiled::Text(K::DetectXss, _) => {
            if crate::libinjection::detect_xss(value) {
                yes(vec![value.to_vec()])
            } else {
                no()
            }
        }
        Compiled::Text(kind, _) => {
            let arg = argument.as_bytes();
            let matched = match kind {
                K::StrEq => value == arg,
                K::StrMatch | K::Contains => {
                    !arg.is_empty() && value.windows(arg.len()).any(|w| w == arg) || arg.is_empty()
                }
                K::ContainsWord => contains_word(value, arg),
                K::BeginsWith => value.starts_with(arg),
                K::EndsWith => value.ends_with(arg),
                K::Within => !value.is_empty() && arg.windows(value.len()).any(|w| w == value),
                K::Eq => number(value) == number(arg),
                K::Ge => number(value) >= number(arg),
                K::Gt => number(value) > number(arg),
                K::Le => number(value) <= number(arg),
                K::Lt => number(value) < number(arg),
                K::ValidateUrlEncoding => !valid_url_encoding(value),
                K::ValidateUtf8Encoding => std::str::from_utf8(value).is_err(),
                _ => false,
            };
            if matched {
                let capture = if matches!(
                    kind,
                    K::Contains | K::StrEq | K::Within | K::BeginsWith | K::EndsWith
                ) {
                    vec![arg.to_vec()]
                } else {
                    Vec::new()
                };
                yes(capture)
            } else {
                no()
            }
        }
    }
}

fn contains_word(value: &[u8], word: &[u8]) -> bool {
    if word.is_empty() {
        return true;
    }
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    value.windows(word.len()).enumerate().any(|(i, w)| {
        w == word
            && (i == 0 || !is_word(value[i - 1]))
            && value.get(i + word.len()).is_none_or(|b| !is_word(*b))
    })
}

fn valid_url_encoding(value: &[u8]) -> bool {
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%' {
            let ok = value.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && value.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, value: &[u8]) -> bool {
        match regex(pattern) {
            Ok(Compiled::Regex(re)) => re.is_match(value),
            Ok(Compiled::Backtracking(re)) => re
                .is_match(&String::from_utf8_lossy(value))
                .unwrap_or(false),
            other => panic!("{pattern}: {other:?}"),
        }
    }

    #[test]
    fn numbers_are_read_as_leading_integers() {
        for (text, n) in [
            ("42", 42),
            (" -7 ", -7),
            ("+5", 5),
            ("12abc", 12),
            ("abc", 0),
            ("", 0),
            ("-", 0),
            ("99999999999999999999", 0),
        ] {
            assert_eq!(number(text.as_bytes()), n, "{text:?}");
        }
    }

    #[test]
    fn high_hex_escapes_are_bytes_as_in_pcre() {
        // U+00B4 (acute accent) is C2 B4 in UTF-8; `\x{c2}\x{b4}` is those two bytes.
        assert!(matches(r"a\x{c2}\x{b4}b", "a\u{b4}b".as_bytes()));
        // U+2018 is E2 80 98: a byte class catches its last byte.
        assert!(matches(r"\x{e2}\x80[\x98\x99]", "\u{2018}".as_bytes()));
        assert!(!matches(r"\x{e2}\x80[\x98\x99]", "\u{201c}".as_bytes()));
        // A negated byte class excludes a single byte, not a code point.
        assert!(matches(r"^[^\x{be}]+$", b"abc"));
        assert!(!matches(r"^[^\x{be}]+$", b"a\xbec"));
        // Low escapes and classes with other text are left alone.
        assert_eq!(
            high_escapes_as_bytes(r"[\x41-\x5a]\x0b"),
            r"[\x41-\x5a]\x0b"
        );
        assert_eq!(high_escapes_as_bytes(r"[é\x{e9}]"), r"[é\x{e9}]");
    }

    #[test]
    fn pcre_only_syntax_is_normalised_or_backtracked() {
        assert_eq!(
            normalise_pcre(r#"[\'\"]a{2}b{x}[([]"#),
            r#"['"]a{2}b\{x\}[(\[]"#
        );
        let op = |p: &str| crate::seclang::Operator {
            negated: false,
            kind: OperatorKind::Rx,
            argument: p.to_string(),
        };
        let base = Path::new(".");
        // Look-ahead needs the backtracking engine; it still matches correctly.
        let c = compile(&op(r"<\?(?!xml)"), base).expect("compiles");
        assert!(matches!(c, Compiled::Backtracking(_)));
        assert!(run(&c, "", b"<?php echo 1", false).matched);
        assert!(!run(&c, "", b"<?xml version", false).matched);
        // Back-references too.
        let c = compile(&op(r"\b(\w+)\s*=\s*\1\b"), base).expect("compiles");
        assert!(run(&c, "", b"1 or a = a", false).matched);
        assert!(!run(&c, "", b"a = b", false).matched);
        // Plain patterns stay on the linear-time engine.
        assert!(matches!(
            compile(&op("^abc$"), base).expect("compiles"),
            Compiled::Regex(_)
        ));
    }
}
