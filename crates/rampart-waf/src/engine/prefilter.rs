//! Literal prefilters for regexes: a set of literals at least one of which occurs
//! (ignoring ASCII case) in every string a regex matches. The engine scans a value once
//! for the literals of every rule that reads it through the same transformation chain
//! (one Aho-Corasick automaton per chain) and runs a rule's regex only when one of its
//! literals is there.
//!
//! The literals come from the regex's syntax tree: a node either matches one of a
//! small, known set of strings ("exact"), or is known to *contain* one of a set
//! ("required"), or neither. Concatenations join neighbouring exact parts into longer
//! literals (zero-width assertions do not break them) and keep the most selective
//! requirement; alternations need a requirement from every branch.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Most strings an exact set may hold (cross products beyond it stop being exact).
const MAX_EXACT: usize = 64;
/// Longest literal kept in an exact set.
const MAX_LITERAL: usize = 48;
/// Most characters a class may match and still count as exact.
const MAX_CLASS: usize = 8;
/// Most literals one regex's requirement may hold.
const MAX_REQUIRED: usize = 512;

/// The literals (ASCII lower case) one of which every match of `pattern` contains,
/// or `None` when the pattern does not guarantee any worth scanning for (or does not
/// parse). `pattern` is read as `regex::bytes` reads it (Unicode on, UTF-8 not required).
pub fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    let mut literals = analyse(&hir).required.filter(|set| worth_scanning(set))?;
    literals.sort();
    literals.dedup();
    // A literal that contains another one adds nothing: drop it.
    let shortest_first = {
        let mut l = literals.clone();
        l.sort_by_key(Vec::len);
        l
    };
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for literal in shortest_first {
        if !kept.iter().any(|k| contains(&literal, k)) {
            kept.push(literal);
        }
    }
    Some(kept)
}

/// Whether literals are rare enough in ordinary values for a scan to spare the regex:
/// no single character that clean requests are full of.
fn worth_scanning(literals: &[Vec<u8>]) -> bool {
    literals.iter().all(|l| match l.as_slice() {
        [] => false,
        [b] => b"<>\"'`;(){}[]$\\|!^~*#".contains(b) || !b.is_ascii(),
        _ => true,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// What is known of the strings one syntax node matches.
#[derive(Debug, Default)]
struct Info {
    /// Every string the node matches is one of these (lower case; may hold "").
    exact: Option<Vec<Vec<u8>>>,
    /// Every string the node matches contains one of these (none empty).
    required: Option<Vec<Vec<u8>>>,
}

impl Info {
    fn exact(set: Vec<Vec<u8>>) -> Self {
        let required = (!set.iter().any(Vec::is_empty)).then(|| set.clone());
        Self {
            exact: Some(set),
            required,
        }
    }
}

fn analyse(hir: &Hir) -> Info {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Info::exact(vec![Vec::new()]),
        HirKind::Literal(literal) => {
            let bytes = literal.0.to_ascii_lowercase();
            if bytes.len() > MAX_LITERAL {
                // Too long to keep whole: any window of it is still required.
                Info {
                    exact: None,
                    required: Some(vec![bytes[..MAX_LITERAL].to_vec()]),
                }
            } else {
                Info::exact(vec![bytes])
            }
        }
        HirKind::Class(class) => match class_strings(class) {
            Some(set) => Info::exact(set),
            None => Info::default(),
        },
        HirKind::Capture(capture) => analyse(&capture.sub),
        HirKind::Repetition(repetition) => {
            let sub = analyse(&repetition.sub);
            if let (Some(set), Some(max)) = (&sub.exact, repetition.max) {
                if max <= 3 {
                    // Every count from min to max: set^min ∪ … ∪ set^max.
                    let mut all: Vec<Vec<u8>> = Vec::new();
                    let mut power = vec![Vec::new()];
                    let mut fits = true;
                    for count in 0..=max {
                        if count >= repetition.min {
                            all.extend(power.iter().cloned());
                        }
                        if count < max {
                            match cross(&power, set) {
                                Some(next) => power = next,
                                None => {
                                    fits = false;
                                    break;
                                }
                            }
                        }
                    }
                    if fits && all.len() <= MAX_EXACT {
                        dedup(&mut all);
                        return Info::exact(all);
                    }
                }
            }
            Info {
                exact: None,
                required: if repetition.min >= 1 {
                    sub.required
                } else {
                    None
                },
            }
        }
        HirKind::Concat(children) => {
            let mut candidates: Vec<Vec<Vec<u8>>> = Vec::new();
            let mut run: Vec<Vec<u8>> = vec![Vec::new()];
            let mut whole_exact = true;
            for child in children {
                let info = analyse(child);
                match info.exact {
                    Some(set) => match cross(&run, &set) {
                        Some(joined) => run = joined,
                        None => {
                            whole_exact = false;
                            push_requirement(&mut candidates, std::mem::take(&mut run));
                            run = set;
                        }
                    },
                    None => {
                        whole_exact = false;
                        push_requirement(
                            &mut candidates,
                            std::mem::replace(&mut run, vec![Vec::new()]),
                        );
                        if let Some(required) = info.required {
                            candidates.push(required);
                        }
                    }
                }
            }
            if whole_exact {
                return Info::exact(run);
            }
            push_requirement(&mut candidates, run);
            Info {
                exact: None,
                required: candidates.into_iter().max_by_key(|set| selectivity(set)),
            }
        }
        HirKind::Alternation(children) => {
            let infos: Vec<Info> = children.iter().map(analyse).collect();
            if infos.iter().all(|i| i.exact.is_some()) {
                let mut all: Vec<Vec<u8>> = infos
                    .iter()
                    .flat_map(|i| i.exact.iter().flatten().cloned())
                    .collect();
                dedup(&mut all);
                if all.len() <= MAX_EXACT {
                    return Info::exact(all);
                }
            }
            let mut required = Vec::new();
            for info in infos {
                // A branch without a requirement leaves the alternation without one.
                let Some(branch) = info.required else {
                    return Info::default();
                };
                required.extend(branch);
                if required.len() > MAX_REQUIRED {
                    return Info::default();
                }
            }
            dedup(&mut required);
            Info {
                exact: None,
                required: Some(required),
            }
        }
    }
}

/// Adds a finished run of exact parts as a requirement, unless it may be empty.
fn push_requirement(candidates: &mut Vec<Vec<Vec<u8>>>, run: Vec<Vec<u8>>) {
    if !run.is_empty() && !run.iter().any(Vec::is_empty) {
        candidates.push(run);
    }
}

/// How well a requirement filters: longer shortest literals first (up to 4 bytes,
/// past which all are rare enough), then fewer literals.
fn selectivity(set: &[Vec<u8>]) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = set.iter().map(Vec::len).min().unwrap_or(0);
    (shortest.min(4), std::cmp::Reverse(set.len()))
}

/// Every `a` followed by every `b`, or `None` when that is too many or too long.
fn cross(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len().saturating_mul(b.len()) > MAX_EXACT {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            if x.len() + y.len() > MAX_LITERAL {
                return None;
            }
            let mut joined = x.clone();
            joined.extend_from_slice(y);
            out.push(joined);
        }
    }
    dedup(&mut out);
    Some(out)
}

fn dedup(set: &mut Vec<Vec<u8>>) {
    set.sort();
    set.dedup();
}

/// The strings (lower case, UTF-8 for Unicode classes) a small class matches.
fn class_strings(class: &Class) -> Option<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    match class {
        Class::Unicode(unicode) => {
            for range in unicode.ranges() {
                let (start, end) = (u32::from(range.start()), u32::from(range.end()));
                if (end - start) as usize >= MAX_CLASS {
                    return None;
                }
                for c in (start..=end).filter_map(char::from_u32) {
                    let mut buffer = [0u8; 4];
                    out.push(c.encode_utf8(&mut buffer).as_bytes().to_ascii_lowercase());
                }
            }
        }
        Class::Bytes(bytes) => {
            for range in bytes.ranges() {
                if usize::from(range.end() - range.start()) >= MAX_CLASS {
                    return None;
                }
                out.extend((range.start()..=range.end()).map(|b| vec![b.to_ascii_lowercase()]));
            }
        }
    }
    dedup(&mut out);
    (out.len() <= MAX_CLASS).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(pattern: &str) -> Option<Vec<String>> {
        required_literals(pattern).map(|set| {
            set.into_iter()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .collect()
        })
    }

    #[test]
    fn case_insensitive_words_become_lower_case_literals() {
        // `(?i)s` also matches U+017F (long s) in Unicode mode: both are kept.
        assert_eq!(
            literals(r"(?i)\bunion\b.{1,100}?\bselect\b"),
            Some(vec!["union".to_string()])
        );
        let select = literals(r"(?i)select").expect("a requirement");
        assert!(select.contains(&"select".to_string()), "{select:?}");
        assert!(select.contains(&"\u{17f}elect".to_string()), "{select:?}");
    }

    #[test]
    fn alternations_need_every_branch_and_concatenations_pick_the_rarest_part() {
        assert_eq!(
            literals(r"<(?:script|iframe)[\s/>]"),
            Some(vec!["<iframe".to_string(), "<script".to_string()])
        );
        assert_eq!(literals(r"foo|[a-z]+"), None);
        assert_eq!(
            literals(r"[a-z]+=\$\{jndi:"),
            Some(vec!["=${jndi:".to_string()])
        );
        assert_eq!(literals(r"a?b?"), None);
        assert_eq!(literals(r".*"), None);
    }

    #[test]
    fn every_match_contains_a_literal() {
        // Soundness over a set of patterns of the shapes the CRS uses, and inputs that
        // match them: whenever the regex matches, some literal is in the input.
        let cases: &[(&str, &[&str])] = &[
            (
                r"(?i)\b(?:s(?:elect|leep)|union)\b",
                &["SELECT 1", "x UnIoN y", "ſleep(5)"],
            ),
            (
                r"(?i)on(?:load|error)\s*=",
                &["<img ONERROR =x>", "onload="],
            ),
            (r"\.\./|\.\.\\", &["a/../b", "..\\win"]),
            (r"(?i:a){2,3}b", &["AAb", "aaab"]),
            (r"x(?:ab)?y", &["xy", "xaby"]),
        ];
        for (pattern, inputs) in cases {
            let re = regex::bytes::Regex::new(pattern).expect("pattern compiles");
            let set = required_literals(pattern);
            for input in *inputs {
                let input = input.as_bytes();
                if !re.is_match(input) {
                    continue;
                }
                let set = set.as_ref().expect("a matching pattern here has literals");
                let lower = input.to_ascii_lowercase();
                assert!(
                    set.iter().any(|l| contains(&lower, l)),
                    "{pattern} matches {:?} but none of {set:?} is in it",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }
}
