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
        K::Rx | K::RxGlobal => Compiled::Regex(
            RegexBuilder::new(&op.argument)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("@rx does not compile: {e}"))?,
        ),
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
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let digits: String = text
        .chars()
        .enumerate()
        .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+')))
        .map(|(_, c)| c)
        .collect();
    digits.parse().unwrap_or(0)
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
            if want_captures {
                match re.captures(value) {
                    Some(c) => yes((0..c.len().min(10))
                        .map(|i| c.get(i).map(|m| m.as_bytes().to_vec()).unwrap_or_default())
                        .collect()),
                    None => no(),
                }
            } else if re.is_match(value) {
                yes(Vec::new())
            } else {
                no()
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
                // libinjection's algorithms are not implemented yet: these never match.
                K::DetectSqli | K::DetectXss => false,
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
