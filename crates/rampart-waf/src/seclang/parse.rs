//! The SecLang lexer and parser.

use std::collections::HashSet;
use std::path::Path;

use super::ast::*;
use super::{expand_include, ParseError, ParseErrors, RuleSet, MAX_FILE_BYTES, MAX_INCLUDE_DEPTH};

/// Engine settings accepted as they are.
const SETTINGS: &[&str] = &[
    "SecRuleEngine",
    "SecRequestBodyAccess",
    "SecResponseBodyAccess",
    "SecRequestBodyLimit",
    "SecRequestBodyNoFilesLimit",
    "SecRequestBodyInMemoryLimit",
    "SecRequestBodyLimitAction",
    "SecResponseBodyLimit",
    "SecResponseBodyLimitAction",
    "SecResponseBodyMimeType",
    "SecResponseBodyMimeTypesClear",
    "SecPcreMatchLimit",
    "SecPcreMatchLimitRecursion",
    "SecArgumentSeparator",
    "SecCookieFormat",
    "SecUnicodeMapFile",
    "SecStatusEngine",
    "SecAuditEngine",
    "SecAuditLog",
    "SecAuditLogParts",
    "SecAuditLogType",
    "SecAuditLogStorageDir",
    "SecAuditLogRelevantStatus",
    "SecAuditLogFormat",
    "SecDebugLog",
    "SecDebugLogLevel",
    "SecTmpDir",
    "SecDataDir",
    "SecUploadDir",
    "SecUploadKeepFiles",
    "SecUploadFileLimit",
    "SecUploadFileMode",
    "SecCollectionTimeout",
    "SecComponentSignature",
    "SecServerSignature",
    "SecWebAppId",
    "SecHttpBlKey",
    "SecGeoLookupDb",
    "SecArgumentsLimit",
    "SecRequestBodyJsonDepthLimit",
    "SecXmlExternalEntity",
    "SecTmpSaveUploadedFiles",
];

/// A logical line: a directive and its arguments.
struct Line {
    number: usize,
    name: String,
    args: Vec<String>,
}

/// Joins continued lines, drops comments and splits each directive into its name and
/// (quoted or bare) arguments.
fn lines(text: &str) -> Result<Vec<Line>, (usize, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        if pending.is_empty() {
            start = number;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
        }
        if let Some(body) = raw.strip_suffix('\\') {
            pending.push_str(body);
            continue;
        }
        pending.push_str(raw);
        let logical = std::mem::take(&mut pending);
        out.push(split(&logical).map_err(|e| (start, e))?.into_line(start));
    }
    if !pending.is_empty() {
        out.push(split(&pending).map_err(|e| (start, e))?.into_line(start));
    }
    Ok(out)
}

struct Words(Vec<String>);

impl Words {
    fn into_line(mut self, number: usize) -> Line {
        let name = if self.0.is_empty() {
            String::new()
        } else {
            self.0.remove(0)
        };
        Line {
            number,
            name,
            args: self.0,
        }
    }
}

/// Splits a logical line into words: `"…"` and `'…'` quoted (a backslash escapes the
/// quote; other backslashes stay, as regexes need them) or bare.
fn split(line: &str) -> Result<Words, String> {
    let mut words = Vec::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '\'' {
            let quote = c;
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '\\' && chars.peek() == Some(&quote) {
                    word.push(quote);
                    chars.next();
                } else if c == quote {
                    closed = true;
                    break;
                } else {
                    word.push(c);
                }
            }
            if !closed {
                return Err(format!("unterminated {quote}…{quote}"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    Ok(Words(words))
}

/// Parses SecLang files into a [`RuleSet`], collecting every error.
#[derive(Default)]
pub(super) struct Parser {
    set: RuleSet,
    errors: Vec<ParseError>,
    /// The rule whose `chain` is still waiting for its next rule.
    open_chain: Option<(Location, Rule)>,
    ids: HashSet<u64>,
}

impl Parser {
    fn error(&mut self, location: &Location, directive: &str, message: impl Into<String>) {
        self.errors.push(ParseError {
            location: location.clone(),
            directive: directive.to_string(),
            message: message.into(),
        });
    }

    /// Reads a file (from an `Include` at `from`, when given).
    pub(super) fn file(&mut self, path: &Path, from: Option<&Location>, depth: usize) {
        let here = from.cloned().unwrap_or(Location {
            file: path.to_path_buf(),
            line: 0,
        });
        let text = std::fs::metadata(path)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if m.len() > MAX_FILE_BYTES {
                    Err(format!("larger than {MAX_FILE_BYTES} bytes"))
                } else {
                    std::fs::read_to_string(path).map_err(|e| e.to_string())
                }
            });
        match text {
            Ok(text) => self.text(&text, path, depth),
            Err(e) => self.error(
                &here,
                "Include",
                format!("cannot read {}: {e}", path.display()),
            ),
        }
    }

    /// Parses `text`, the contents of `file`.
    pub(super) fn text(&mut self, text: &str, file: &Path, depth: usize) {
        let lines = match lines(text) {
            Ok(lines) => lines,
            Err((line, message)) => {
                let location = Location {
                    file: file.to_path_buf(),
                    line,
                };
                self.error(&location, "line", message);
                return;
            }
        };
        for line in lines {
            let location = Location {
                file: file.to_path_buf(),
                line: line.number,
            };
            self.directive(&location, &line, depth);
        }
    }

    fn directive(&mut self, location: &Location, line: &Line, depth: usize) {
        let name = line.name.as_str();
        if self.open_chain.is_some() && !name.eq_ignore_ascii_case("SecRule") {
            self.error(
                location,
                name,
                "a chained rule must follow a rule with `chain`",
            );
            self.open_chain = None;
        }
        let arg = |i: usize| line.args.get(i).map(String::as_str);
        match name.to_ascii_lowercase().as_str() {
            "include" => {
                let Some(pattern) = arg(0) else {
                    return self.error(location, name, "needs a file");
                };
                if depth >= MAX_INCLUDE_DEPTH {
                    return self.error(location, name, "includes nested too deeply");
                }
                let base = location
                    .file
                    .parent()
                    .unwrap_or(Path::new("."))
                    .to_path_buf();
                match expand_include(&base, pattern) {
                    Ok(files) if files.is_empty() => {
                        self.error(location, name, format!("{pattern:?} matches no file"))
                    }
                    Ok(files) => {
                        for f in files {
                            self.file(&f, Some(location), depth + 1);
                        }
                    }
                    Err(e) => self.error(location, name, e),
                }
            }
            "secrule" => {
                if line.args.len() != 3 && line.args.len() != 2 {
                    return self.error(
                        location,
                        name,
                        format!(
                            "needs VARIABLES \"OPERATOR\" \"ACTIONS\", got {} arguments",
                            line.args.len()
                        ),
                    );
                }
                let variables = match parse_variables(&line.args[0]) {
                    Ok(v) => v,
                    Err(e) => return self.error(location, name, e),
                };
                let operator = match parse_operator(&line.args[1]) {
                    Ok(o) => o,
                    Err(e) => return self.error(location, name, e),
                };
                let actions = match parse_actions(arg(2).unwrap_or("")) {
                    Ok(a) => a,
                    Err(e) => return self.error(location, name, e),
                };
                self.rule(
                    location,
                    name,
                    Rule {
                        location: location.clone(),
                        variables,
                        operator,
                        actions,
                        chained: None,
                    },
                );
            }
            "secaction" => match parse_actions(arg(0).unwrap_or("")) {
                Ok(actions) => {
                    let rule = Rule {
                        location: location.clone(),
                        variables: Vec::new(),
                        operator: Operator {
                            negated: false,
                            kind: OperatorKind::UnconditionalMatch,
                            argument: String::new(),
                        },
                        actions,
                        chained: None,
                    };
                    if self.check_id(location, name, &rule) {
                        if rule.is_chain_start() {
                            self.open_chain = Some((location.clone(), rule));
                        } else {
                            self.set
                                .directives
                                .push((location.clone(), Directive::Action(rule)));
                        }
                    }
                }
                Err(e) => self.error(location, name, e),
            },
            "secmarker" => match arg(0) {
                Some(marker) => self
                    .set
                    .directives
                    .push((location.clone(), Directive::Marker(marker.to_string()))),
                None => self.error(location, name, "needs a name"),
            },
            "secdefaultaction" => match parse_actions(arg(0).unwrap_or("")) {
                Ok(actions) => {
                    if !actions.iter().any(|a| matches!(a, Action::Phase(_))) {
                        return self.error(location, name, "needs a phase");
                    }
                    self.set
                        .directives
                        .push((location.clone(), Directive::DefaultAction(actions)));
                }
                Err(e) => self.error(location, name, e),
            },
            "secruleremovebyid" => {
                let mut ranges = Vec::new();
                for a in &line.args {
                    match parse_id_ranges(a) {
                        Ok(r) => ranges.extend(r),
                        Err(e) => return self.error(location, name, e),
                    }
                }
                self.set
                    .directives
                    .push((location.clone(), Directive::RemoveById(ranges)));
            }
            "secruleremovebytag" | "secruleremovebymsg" => match arg(0) {
                Some(v) => {
                    let d = if name.eq_ignore_ascii_case("SecRuleRemoveByTag") {
                        Directive::RemoveByTag(v.to_string())
                    } else {
                        Directive::RemoveByMsg(v.to_string())
                    };
                    self.set.directives.push((location.clone(), d));
                }
                None => self.error(location, name, "needs a value"),
            },
            "secruleupdatetargetbyid" | "secruleupdatetargetbytag" => {
                let (Some(target), Some(vars)) = (arg(0), arg(1)) else {
                    return self.error(location, name, "needs a rule and variables");
                };
                let variables = match parse_variables(vars) {
                    Ok(v) => v,
                    Err(e) => return self.error(location, name, e),
                };
                let directive = if name.eq_ignore_ascii_case("SecRuleUpdateTargetById") {
                    match parse_id_ranges(target) {
                        Ok(ids) => Directive::UpdateTargetById(ids, variables),
                        Err(e) => return self.error(location, name, e),
                    }
                } else {
                    Directive::UpdateTargetByTag(target.to_string(), variables)
                };
                self.set.directives.push((location.clone(), directive));
            }
            "secruleupdateactionbyid" => {
                let (Some(id), Some(actions)) = (arg(0), arg(1)) else {
                    return self.error(location, name, "needs a rule id and actions");
                };
                let Ok(id) = id.parse::<u64>() else {
                    return self.error(location, name, format!("{id:?} is not a rule id"));
                };
                match parse_actions(actions) {
                    Ok(actions) => self
                        .set
                        .directives
                        .push((location.clone(), Directive::UpdateActionById(id, actions))),
                    Err(e) => self.error(location, name, e),
                }
            }
            _ => {
                if let Some(known) = SETTINGS.iter().find(|s| s.eq_ignore_ascii_case(name)) {
                    self.set.directives.push((
                        location.clone(),
                        Directive::Setting((*known).to_string(), line.args.join(" ")),
                    ));
                } else {
                    self.error(location, name, "unknown directive");
                }
            }
        }
    }

    /// Checks a chain-starting or standalone rule's id (present, unique).
    fn check_id(&mut self, location: &Location, name: &str, rule: &Rule) -> bool {
        match rule.id() {
            Some(id) if !self.ids.insert(id) => {
                self.error(location, name, format!("duplicate rule id {id}"));
                false
            }
            Some(_) => true,
            None => {
                self.error(location, name, "a rule needs an id");
                false
            }
        }
    }

    fn rule(&mut self, location: &Location, name: &str, rule: Rule) {
        match self.open_chain.take() {
            Some((start, mut head)) => {
                if rule.id().is_some() {
                    return self.error(location, name, "a chained rule cannot have an id");
                }
                let continues = rule.is_chain_start();
                attach(&mut head, rule);
                if continues {
                    self.open_chain = Some((start, head));
                } else {
                    self.set.directives.push((start, Directive::Rule(head)));
                }
            }
            None => {
                if !self.check_id(location, name, &rule) {
                    return;
                }
                if rule.is_chain_start() {
                    self.open_chain = Some((location.clone(), rule));
                } else {
                    self.set
                        .directives
                        .push((location.clone(), Directive::Rule(rule)));
                }
            }
        }
    }

    pub(super) fn finish(mut self) -> Result<RuleSet, ParseErrors> {
        if let Some((location, _)) = self.open_chain.take() {
            self.error(&location, "SecRule", "`chain` with no rule after it");
        }
        if self.errors.is_empty() {
            Ok(self.set)
        } else {
            Err(ParseErrors(self.errors))
        }
    }
}

/// Appends `next` at the end of `rule`'s chain.
fn attach(rule: &mut Rule, next: Rule) {
    match &mut rule.chained {
        Some(chained) => attach(chained, next),
        None => rule.chained = Some(Box::new(next)),
    }
}

/// `1`, `1-5`, `1,3,9-12` or space separated.
fn parse_id_ranges(text: &str) -> Result<Vec<(u64, u64)>, String> {
    text.split([',', ' '])
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let part = part.trim();
            let bad = || format!("{part:?} is not a rule id or range");
            match part.split_once('-') {
                Some((a, b)) => {
                    let a = a.trim().parse::<u64>().map_err(|_| bad())?;
                    let b = b.trim().parse::<u64>().map_err(|_| bad())?;
                    if a > b {
                        return Err(bad());
                    }
                    Ok((a, b))
                }
                None => part.parse::<u64>().map(|id| (id, id)).map_err(|_| bad()),
            }
        })
        .collect()
}

/// `ARGS|!ARGS:foo|&TX:x|REQUEST_HEADERS:/^x-/|XML:/*`.
pub(crate) fn parse_variables(text: &str) -> Result<Vec<Variable>, String> {
    let mut out = Vec::new();
    for part in split_variables(text) {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("empty variable in {text:?}"));
        }
        let (exclude, rest) = match part.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, part),
        };
        let (count, rest) = match rest.strip_prefix('&') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (name, selector) = match rest.split_once(':') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        let collection =
            Collection::parse(name).ok_or_else(|| format!("unknown variable {name:?}"))?;
        let selector = match selector {
            None => Selector::All,
            Some(s) => {
                let s = s.trim_matches('\'');
                if collection != Collection::Xml
                    && s.len() >= 2
                    && s.starts_with('/')
                    && s.ends_with('/')
                {
                    Selector::Regex(s[1..s.len() - 1].to_string())
                } else if s.is_empty() {
                    return Err(format!("empty selector in {part:?}"));
                } else {
                    Selector::Key(s.to_string())
                }
            }
        };
        out.push(Variable {
            exclude,
            count,
            collection,
            selector,
        });
    }
    if out.is_empty() {
        return Err("no variables".into());
    }
    Ok(out)
}

/// Splits on `|` outside `/…/` regex selectors.
fn split_variables(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_regex = false;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            // A `/…/` selector is a regex, except for XML, whose selectors are XPath.
            '/' if !in_regex
                && (current.ends_with(':') || current.ends_with(":'"))
                && !current
                    .to_ascii_uppercase()
                    .trim_start_matches(['!', '&'])
                    .starts_with("XML:") =>
            {
                in_regex = true;
                current.push(c);
            }
            '/' if in_regex => {
                let next = chars.get(i + 1).copied();
                if matches!(next, None | Some('|') | Some('\'')) && !current.ends_with('\\') {
                    in_regex = false;
                }
                current.push(c);
            }
            '|' if !in_regex => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// `@rx …`, `!@eq 0`, or a bare regex (implicit `@rx`).
fn parse_operator(text: &str) -> Result<Operator, String> {
    let (negated, rest) = match text.trim_start().strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, text.trim_start()),
    };
    let Some(named) = rest.strip_prefix('@') else {
        return Ok(Operator {
            negated,
            kind: OperatorKind::Rx,
            argument: rest.to_string(),
        });
    };
    let (name, argument) = match named.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim_start()),
        None => (named, ""),
    };
    let kind = OperatorKind::parse(name).ok_or_else(|| format!("unknown operator @{name}"))?;
    Ok(Operator {
        negated,
        kind,
        argument: argument.to_string(),
    })
}

/// Splits an action list on commas outside single quotes; values keep their content
/// without the quotes.
fn split_actions(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == ':' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let name = name.trim().to_string();
        let mut value = None;
        if chars.peek() == Some(&':') {
            chars.next();
            while chars.peek().is_some_and(|c| *c == ' ') {
                chars.next();
            }
            let mut v = String::new();
            if chars.peek() == Some(&'\'') {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == '\\' && chars.peek() == Some(&'\'') {
                        v.push('\'');
                        chars.next();
                    } else if c == '\'' {
                        closed = true;
                        break;
                    } else {
                        v.push(c);
                    }
                }
                if !closed {
                    return Err(format!("unterminated quote in action {name}"));
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    v.push(c);
                    chars.next();
                }
                v = v.trim_end().to_string();
            }
            value = Some(v);
        }
        if name.is_empty() {
            return Err("empty action".into());
        }
        out.push((name, value));
    }
    Ok(out)
}

fn severity(text: &str) -> Option<u8> {
    let names = [
        "EMERGENCY",
        "ALERT",
        "CRITICAL",
        "ERROR",
        "WARNING",
        "NOTICE",
        "INFO",
        "DEBUG",
    ];
    text.parse::<u8>().ok().filter(|n| *n <= 7).or_else(|| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(text))
            .map(|p| p as u8)
    })
}

fn on_off(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

fn parse_ctl(value: &str) -> Result<Ctl, String> {
    let (name, v) = value
        .split_once('=')
        .ok_or_else(|| format!("ctl:{value} needs name=value"))?;
    let bad = || format!("ctl:{name} cannot take {v:?}");
    let target = |v: &str| -> Result<(String, Vec<Variable>), String> {
        let (what, vars) = v.split_once(';').ok_or_else(bad)?;
        Ok((what.to_string(), parse_variables(vars)?))
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "ruleengine" => Ctl::RuleEngine(v.to_string()),
        "ruleremovebyid" => Ctl::RuleRemoveById(parse_id_ranges(v)?),
        "ruleremovebytag" => Ctl::RuleRemoveByTag(v.to_string()),
        "ruleremovetargetbyid" => {
            let (ids, vars) = target(v)?;
            Ctl::RuleRemoveTargetById(parse_id_ranges(&ids)?, vars)
        }
        "ruleremovetargetbytag" => {
            let (tag, vars) = target(v)?;
            Ctl::RuleRemoveTargetByTag(tag, vars)
        }
        "requestbodyprocessor" => Ctl::RequestBodyProcessor(v.to_ascii_uppercase()),
        "requestbodyaccess" => Ctl::RequestBodyAccess(on_off(v).ok_or_else(bad)?),
        "forcerequestbodyvariable" => Ctl::ForceRequestBodyVariable(on_off(v).ok_or_else(bad)?),
        "auditengine" | "auditlogparts" | "debugloglevel" => {
            Ctl::Logging(name.to_string(), v.to_string())
        }
        "requestbodylimit" | "responsebodylimit" => {
            Ctl::Limit(name.to_string(), v.parse().map_err(|_| bad())?)
        }
        _ => return Err(format!("unknown ctl:{name}")),
    })
}

fn parse_setvar(value: &str) -> Result<Action, String> {
    let (delete, rest) = match value.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, value),
    };
    let (target, assigned) = match rest.split_once('=') {
        Some((t, v)) => (t, Some(v)),
        None => (rest, None),
    };
    let (collection, name) = target
        .split_once('.')
        .ok_or_else(|| format!("setvar:{value} needs collection.name"))?;
    if name.is_empty() {
        return Err(format!("setvar:{value} needs a variable name"));
    }
    let op = match (delete, assigned) {
        (true, _) => SetVarOp::Delete,
        (false, None) => SetVarOp::Set("1".into()),
        (false, Some(v)) => {
            if let Some(n) = v.strip_prefix('+') {
                SetVarOp::Add(n.to_string())
            } else if let Some(n) = v.strip_prefix('-') {
                SetVarOp::Subtract(n.to_string())
            } else {
                SetVarOp::Set(v.to_string())
            }
        }
    };
    Ok(Action::SetVar {
        collection: collection.to_ascii_lowercase(),
        name: name.to_string(),
        op,
    })
}

/// Parses an action list into typed actions.
pub(crate) fn parse_actions(text: &str) -> Result<Vec<Action>, String> {
    let mut out = Vec::new();
    for (name, value) in split_actions(text)? {
        let v = value.as_deref();
        let need = || v.ok_or_else(|| format!("{name} needs a value"));
        let action = match name.to_ascii_lowercase().as_str() {
            "id" => Action::Id(
                need()?
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| format!("{:?} is not a rule id", v.unwrap_or("")))?,
            ),
            "phase" => Action::Phase(match need()?.trim().to_ascii_lowercase().as_str() {
                "request" => 2,
                "response" => 4,
                "logging" => 5,
                n => n
                    .parse::<u8>()
                    .ok()
                    .filter(|p| (1..=5).contains(p))
                    .ok_or_else(|| format!("phase {n:?} is not 1 to 5"))?,
            }),
            "block" => Action::Block,
            "deny" => Action::Deny,
            "drop" => Action::Drop,
            "pass" => Action::Pass,
            "allow" => Action::Allow(value.clone()),
            "redirect" => Action::Redirect(need()?.to_string()),
            "status" => Action::Status(
                need()?
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|s| (100..=599).contains(s))
                    .ok_or_else(|| format!("status {:?} is not an HTTP status", v.unwrap_or("")))?,
            ),
            "capture" => Action::Capture,
            "chain" => Action::Chain,
            "multimatch" => Action::MultiMatch,
            "log" => Action::Log,
            "nolog" => Action::NoLog,
            "auditlog" => Action::AuditLog,
            "noauditlog" => Action::NoAuditLog,
            "t" => Action::Transform(
                Transformation::parse(need()?.trim())
                    .ok_or_else(|| format!("unknown transformation t:{}", v.unwrap_or("")))?,
            ),
            "msg" => Action::Msg(need()?.to_string()),
            "logdata" => Action::LogData(need()?.to_string()),
            "tag" => Action::Tag(need()?.to_string()),
            "severity" => Action::Severity(
                severity(need()?.trim())
                    .ok_or_else(|| format!("unknown severity {:?}", v.unwrap_or("")))?,
            ),
            "ver" => Action::Ver(need()?.to_string()),
            "rev" | "maturity" | "accuracy" | "sanitisematched" | "sanitizematched"
            | "sanitisearg" | "sanitizearg" | "exec" | "append" | "prepend" | "xmlns" => {
                Action::Meta(name.to_ascii_lowercase(), value.clone().unwrap_or_default())
            }
            "setvar" => parse_setvar(need()?)?,
            "expirevar" => {
                let (n, secs) = need()?
                    .split_once('=')
                    .ok_or_else(|| "expirevar needs name=seconds".to_string())?;
                Action::ExpireVar(n.to_string(), secs.to_string())
            }
            "initcol" => {
                let (c, key) = need()?
                    .split_once('=')
                    .ok_or_else(|| "initcol needs collection=key".to_string())?;
                Action::InitCol(c.to_ascii_lowercase(), key.to_string())
            }
            "setenv" => {
                let raw = need()?;
                let (n, val) = raw.split_once('=').unwrap_or((raw, "1"));
                Action::SetEnv(n.to_string(), val.to_string())
            }
            "skip" => Action::Skip(
                need()?
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| "skip needs a positive number".to_string())?,
            ),
            "skipafter" => Action::SkipAfter(need()?.to_string()),
            "ctl" => Action::Ctl(parse_ctl(need()?)?),
            other => return Err(format!("unknown action {other:?}")),
        };
        out.push(action);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seclang::parse_str;

    fn one_rule(text: &str) -> Rule {
        let set = parse_str(text, Path::new("t.conf")).unwrap_or_else(|e| panic!("{e}"));
        let rule = set.rules().next().cloned().expect("a rule");
        rule
    }

    #[test]
    fn rules_with_continuations_quotes_and_chains() {
        let rule = one_rule(
            "SecRule REQUEST_HEADERS:User-Agent|!REQUEST_HEADERS:Referer|&ARGS|ARGS:/^id|x$/ \"!@rx ^a\\\"b\\d\" \\\n    \"id:1,phase:request,block,t:none,t:lowercase,\\\n    msg:'It\\'s, here',\\\n    setvar:'tx.score=+%{tx.critical_anomaly_score}',chain\"\nSecRule TX:x \"@eq 1\" \"t:none\"\n",
        );
        assert_eq!(rule.id(), Some(1));
        assert_eq!(rule.variables.len(), 4);
        assert!(rule.variables[1].exclude);
        assert!(rule.variables[2].count);
        assert_eq!(rule.variables[3].selector, Selector::Regex("^id|x$".into()));
        assert!(rule.operator.negated);
        assert_eq!(rule.operator.kind, OperatorKind::Rx);
        assert_eq!(rule.operator.argument, "^a\"b\\d");
        assert!(rule.actions.contains(&Action::Phase(2)));
        assert!(rule.actions.contains(&Action::Msg("It's, here".into())));
        assert!(rule
            .actions
            .contains(&Action::Transform(Transformation::Lowercase)));
        assert!(rule.actions.contains(&Action::SetVar {
            collection: "tx".into(),
            name: "score".into(),
            op: SetVarOp::Add("%{tx.critical_anomaly_score}".into()),
        }));
        let chained = rule.chained.as_deref().expect("chained");
        assert_eq!(chained.operator.kind, OperatorKind::Eq);
    }

    #[test]
    fn every_error_is_reported_with_file_line_and_directive() {
        let text = "SecRule ARGS \"@rx a\" \"id:1,phase:2\"\n\
                    # a comment\n\
                    SecRule NOPE \"@rx a\" \"id:2\"\n\
                    SecRule ARGS \"@frobnicate\" \"id:3\"\n\
                    SecRule ARGS \"@rx a\" \"id:1\"\n\
                    SecRule ARGS \"@rx a\" \"id:5,phase:9\"\n\
                    SecBogus On\n\
                    SecAction \"nolog\"\n\
                    SecRule ARGS \"@rx a\" \"id:8,chain\"\n";
        let errors = parse_str(text, Path::new("bad.conf"))
            .expect_err("errors")
            .0;
        let lines: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.location.line, e.directive.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (3, "SecRule"),
                (4, "SecRule"),
                (5, "SecRule"),
                (6, "SecRule"),
                (7, "SecBogus"),
                (8, "SecAction"),
                (9, "SecRule")
            ]
        );
        assert!(
            errors[0]
                .to_string()
                .starts_with("bad.conf:3: SecRule: unknown variable"),
            "{}",
            errors[0]
        );
        assert!(errors[2].message.contains("duplicate rule id 1"));
    }

    #[test]
    fn settings_markers_removals_and_updates() {
        let set = parse_str(
            "SecRuleEngine DetectionOnly\nSecMarker \"END-X\"\nSecRuleRemoveById 1 5-9\nSecRuleUpdateTargetById 942100 \"!ARGS:pass\"\nSecDefaultAction \"phase:2,log,auditlog,pass\"\n",
            Path::new("s.conf"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<&Directive> = set.directives.iter().map(|(_, d)| d).collect();
        assert_eq!(
            kinds[0],
            &Directive::Setting("SecRuleEngine".into(), "DetectionOnly".into())
        );
        assert_eq!(kinds[1], &Directive::Marker("END-X".into()));
        assert_eq!(kinds[2], &Directive::RemoveById(vec![(1, 1), (5, 9)]));
        assert!(
            matches!(kinds[3], Directive::UpdateTargetById(ids, vars) if ids == &vec![(942100, 942100)] && vars[0].exclude)
        );
        assert!(matches!(kinds[4], Directive::DefaultAction(_)));
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "\"",
            "SecRule",
            "SecRule \"",
            "SecRule A B C D E",
            "SecRule ARGS:/ \"x\" \"id:1\"",
            "\\",
            "SecAction \"id:'1\"",
            "SecRule ARGS \"@rx\" \"id:99999999999999999999999\"",
        ] {
            let _ = parse_str(text, Path::new("g.conf"));
        }
    }
}
