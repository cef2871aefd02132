//! Rule evaluation: rules compiled once ([`Engine`]), evaluated per request in a
//! [`Transaction`] phase by phase, with anomaly scoring done by the rules themselves
//! (`setvar`), as the Core Rule Set expects.

mod body;
pub mod operator;
mod prefilter;
pub mod transform;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

pub use body::{BodyError, MAX_ARGS, MAX_JSON_DEPTH, MAX_PARTS};

use crate::seclang::{
    Action, Collection, Ctl, Directive, Location, Operator, Rule, RuleSet, Selector, SetVarOp,
    Transformation, Variable,
};

/// A rule that failed to compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: rule {id}: {message}")]
pub struct CompileError {
    /// Where the rule is.
    pub location: Location,
    /// Its id.
    pub id: u64,
    /// Why.
    pub message: String,
}

/// A compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    /// Its id (0 for chained rules).
    pub id: u64,
    /// Phase 1–5.
    pub phase: u8,
    /// Where it is.
    pub location: Location,
    variables: Vec<Variable>,
    operator: Operator,
    compiled: operator::Compiled,
    transforms: Vec<Transformation>,
    actions: Vec<Action>,
    /// Tags (for removals and logs).
    pub tags: Vec<String>,
    nolog: bool,
    capture: bool,
    multi_match: bool,
    chained: Option<Box<CompiledRule>>,
    /// Its transformation chain's number: rules with the same chain share it (set once
    /// the rule set is compiled).
    chain: Option<u32>,
    /// Its bit in the rule set's [`Prefilter`], when its regex has required literals.
    prefilter_slot: Option<u32>,
}

/// The literal prefilter of the rule set's regexes: one automaton over the required
/// literals of every prefiltered rule, so that one scan of a value tells which of
/// those rules can match it.
#[derive(Debug)]
struct Prefilter {
    literals: AhoCorasick,
    /// The slot (rule) each literal belongs to, by pattern id.
    literal_slot: Vec<u32>,
    /// Prefiltered rules.
    slots: usize,
}

impl Prefilter {
    /// The slots whose rules have a literal in `value`, one bit each.
    fn hits(&self, value: &[u8]) -> Vec<u64> {
        let mut bits = vec![0u64; self.slots.div_ceil(64)];
        for found in self.literals.find_overlapping_iter(value) {
            let slot = self.literal_slot[found.pattern().as_usize()] as usize;
            bits[slot / 64] |= 1 << (slot % 64);
        }
        bits
    }
}

/// Whether `slot`'s bit is set.
fn has_slot(bits: &[u64], slot: u32) -> bool {
    let slot = slot as usize;
    bits.get(slot / 64)
        .is_some_and(|word| word & (1 << (slot % 64)) != 0)
}

/// Most bytes of transformed values one transaction keeps for sharing between rules;
/// past it, values are transformed per rule again (as they were before sharing), so a
/// request of many large arguments cannot make the cache hold a copy per chain of each.
const DERIVED_BYTES_LIMIT: usize = 1 << 20;

/// What a transaction keeps of one collection value for the rules that read it.
#[derive(Debug, Default)]
struct ValueCache {
    /// [`Prefilter::hits`] of the value as it is.
    hits: Option<Vec<u64>>,
    /// The value through each transformation chain, by chain index.
    chains: Vec<Option<Derived>>,
}

/// A value as a transformation chain left it: computed once per transaction.
#[derive(Debug)]
struct Derived {
    /// The transformed value; `None` when the chain leaves it unchanged.
    value: Option<Vec<u8>>,
    /// [`Prefilter::hits`] of the transformed value.
    hits: Option<Vec<u64>>,
}

#[derive(Debug, Clone)]
enum Step {
    Rule(Arc<CompiledRule>),
    Marker(String),
}

/// Whether rules may interrupt a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Rules run and disruptive actions apply.
    On,
    /// Rules run and log; nothing is blocked.
    DetectionOnly,
    /// Rules do not run.
    Off,
}

/// A compiled rule set.
#[derive(Debug)]
pub struct Engine {
    phases: [Vec<Step>; 5],
    /// The regexes' literal prefilter (none when no regex has usable literals).
    prefilter: Option<Prefilter>,
    /// Compiled `/regex/` selectors, by source.
    selectors: HashMap<String, regex::Regex>,
    /// The configured engine mode.
    pub mode: Mode,
    /// Largest request body inspected.
    pub request_body_limit: usize,
    /// Whether response bodies are inspected (`SecResponseBodyAccess On`).
    pub response_body_access: bool,
    /// Largest response body inspected.
    pub response_body_limit: usize,
}

fn ranges_contain(ranges: &[(u64, u64)], id: u64) -> bool {
    ranges.iter().any(|(a, b)| *a <= id && id <= *b)
}

impl Engine {
    /// Compiles `set`; `base` is where data files (`@pmFromFile`) are looked up when a
    /// rule's own directory does not have them. Reports every rule that fails.
    pub fn compile(set: &RuleSet) -> Result<Self, Vec<CompileError>> {
        let mut errors = Vec::new();
        let mut defaults: HashMap<u8, Vec<Action>> = HashMap::new();
        let mut steps: Vec<Step> = Vec::new();
        let mut mode = Mode::On;
        let mut request_body_limit = 128 * 1024;
        let mut response_body_access = false;
        let mut response_body_limit = 512 * 1024;
        for (location, directive) in &set.directives {
            match directive {
                Directive::Rule(rule) | Directive::Action(rule) => {
                    match compile_rule(rule, &defaults, true) {
                        Ok(r) => steps.push(Step::Rule(Arc::new(r))),
                        Err(message) => errors.push(CompileError {
                            location: location.clone(),
                            id: rule.id().unwrap_or(0),
                            message,
                        }),
                    }
                }
                Directive::Marker(name) => steps.push(Step::Marker(name.clone())),
                Directive::DefaultAction(actions) => {
                    let phase = actions
                        .iter()
                        .find_map(|a| match a {
                            Action::Phase(p) => Some(*p),
                            _ => None,
                        })
                        .unwrap_or(2);
                    defaults.insert(phase, actions.clone());
                }
                Directive::RemoveById(ranges) => {
                    steps.retain(|s| !matches!(s, Step::Rule(r) if ranges_contain(ranges, r.id)))
                }
                Directive::RemoveByTag(tag) => {
                    steps.retain(|s| !matches!(s, Step::Rule(r) if r.tags.iter().any(|t| t == tag)))
                }
                Directive::RemoveByMsg(_) | Directive::UpdateActionById(..) => {}
                Directive::UpdateTargetById(ranges, variables) => {
                    for s in &mut steps {
                        if let Step::Rule(r) = s {
                            if ranges_contain(ranges, r.id) {
                                if let Some(rule) = Arc::get_mut(r) {
                                    rule.variables.extend(variables.iter().cloned());
                                }
                            }
                        }
                    }
                }
                Directive::UpdateTargetByTag(tag, variables) => {
                    for s in &mut steps {
                        if let Step::Rule(r) = s {
                            if r.tags.iter().any(|t| t == tag) {
                                if let Some(rule) = Arc::get_mut(r) {
                                    rule.variables.extend(variables.iter().cloned());
                                }
                            }
                        }
                    }
                }
                Directive::Setting(name, value) => match name.as_str() {
                    "SecRuleEngine" => {
                        mode = match value.to_ascii_lowercase().as_str() {
                            "off" => Mode::Off,
                            "detectiononly" => Mode::DetectionOnly,
                            _ => Mode::On,
                        }
                    }
                    "SecRequestBodyLimit" => {
                        request_body_limit = value.trim().parse().unwrap_or(request_body_limit)
                    }
                    "SecResponseBodyAccess" => {
                        response_body_access = value.trim().eq_ignore_ascii_case("on")
                    }
                    "SecResponseBodyLimit" => {
                        response_body_limit = value.trim().parse().unwrap_or(response_body_limit)
                    }
                    _ => {}
                },
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let prefilter = share_chains(&mut steps);
        let mut phases: [Vec<Step>; 5] = Default::default();
        for step in steps {
            match &step {
                Step::Rule(r) => phases[usize::from(r.phase.clamp(1, 5) - 1)].push(step),
                Step::Marker(_) => {
                    for p in &mut phases {
                        p.push(step.clone());
                    }
                }
            }
        }
        let mut selectors = HashMap::new();
        let mut add = |vars: &[Variable]| {
            for v in vars {
                if let Selector::Regex(re) = &v.selector {
                    if !selectors.contains_key(re) {
                        if let Ok(compiled) =
                            regex::RegexBuilder::new(re).case_insensitive(true).build()
                        {
                            selectors.insert(re.clone(), compiled);
                        }
                    }
                }
            }
        };
        for step in phases.iter().flatten() {
            if let Step::Rule(rule) = step {
                let mut r: Option<&CompiledRule> = Some(rule);
                while let Some(current) = r {
                    add(&current.variables);
                    for a in &current.actions {
                        if let Action::Ctl(
                            Ctl::RuleRemoveTargetById(_, vars)
                            | Ctl::RuleRemoveTargetByTag(_, vars),
                        ) = a
                        {
                            add(vars);
                        }
                    }
                    r = current.chained.as_deref();
                }
            }
        }
        Ok(Self {
            phases,
            prefilter,
            selectors,
            mode,
            request_body_limit,
            response_body_access,
            response_body_limit,
        })
    }

    /// Number of rules (chain heads).
    pub fn rule_count(&self) -> usize {
        self.phases
            .iter()
            .flatten()
            .filter(|s| matches!(s, Step::Rule(_)))
            .count()
    }
}

/// Gives every rule its shared transformation chain and, for regexes with required
/// literals (and not `multiMatch`, which tests every intermediate value), a prefilter
/// slot; returns the prefilter.
fn share_chains(steps: &mut [Step]) -> Option<Prefilter> {
    let mut chains: Vec<Vec<Transformation>> = Vec::new();
    let mut patterns: Vec<Vec<u8>> = Vec::new();
    let mut literal_slot: Vec<u32> = Vec::new();
    let mut slots = 0usize;
    for step in steps.iter_mut() {
        let Step::Rule(head) = step else { continue };
        let Some(head) = Arc::get_mut(head) else {
            continue;
        };
        let mut next: Option<&mut CompiledRule> = Some(head);
        while let Some(rule) = next {
            let index = match chains.iter().position(|c| *c == rule.transforms) {
                Some(i) => i,
                None => {
                    chains.push(rule.transforms.clone());
                    chains.len() - 1
                }
            };
            rule.chain = u32::try_from(index).ok();
            let required = match &rule.compiled {
                operator::Compiled::Regex(re) if !rule.multi_match => {
                    prefilter::required_literals(re.as_str())
                }
                _ => None,
            };
            if let (Some(required), Ok(slot)) = (required, u32::try_from(slots)) {
                slots += 1;
                rule.prefilter_slot = Some(slot);
                for literal in required {
                    patterns.push(literal);
                    literal_slot.push(slot);
                }
            }
            next = rule.chained.as_deref_mut();
        }
    }
    // Without an automaton (none needed, or too large to build) every regex runs.
    let prefilter = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&patterns)
        .ok()
        .filter(|_| slots > 0)
        .map(|literals| Prefilter {
            literals,
            literal_slot,
            slots,
        });
    prefilter
}

fn compile_rule(
    rule: &Rule,
    defaults: &HashMap<u8, Vec<Action>>,
    head: bool,
) -> Result<CompiledRule, String> {
    let phase = rule
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Phase(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(2);
    let mut actions: Vec<Action> = if head {
        defaults.get(&phase).cloned().unwrap_or_default()
    } else {
        Vec::new()
    };
    actions.extend(rule.actions.iter().cloned());
    let mut transforms = Vec::new();
    for a in &actions {
        if let Action::Transform(t) = a {
            if *t == Transformation::None {
                transforms.clear();
            } else {
                transforms.push(*t);
            }
        }
    }
    let base = rule.location.file.parent().unwrap_or(Path::new("."));
    let compiled = operator::compile(&rule.operator, base)?;
    let chained = match &rule.chained {
        Some(next) => Some(Box::new(compile_rule(next, defaults, false)?)),
        None => None,
    };
    Ok(CompiledRule {
        id: rule.id().unwrap_or(0),
        phase,
        location: rule.location.clone(),
        variables: rule.variables.clone(),
        operator: rule.operator.clone(),
        compiled,
        transforms,
        tags: rule
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Tag(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        nolog: actions.iter().rev().find_map(|a| match a {
            Action::NoLog => Some(true),
            Action::Log => Some(false),
            _ => None,
        }) == Some(true),
        capture: actions.iter().any(|a| matches!(a, Action::Capture)),
        multi_match: actions.iter().any(|a| matches!(a, Action::MultiMatch)),
        actions,
        chained,
        chain: None,
        prefilter_slot: None,
    })
}

/// An HTTP request as the engine sees it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Method.
    pub method: String,
    /// The request target as sent (path and query).
    pub uri: String,
    /// `HTTP/1.1` and so on.
    pub protocol: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The client's address.
    pub remote_addr: String,
}

/// A response as the engine sees it (for phases 3 and 4).
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Status.
    pub status: u16,
    /// `HTTP/1.1`.
    pub protocol: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// The body (up to the inspection limit).
    pub body: Vec<u8>,
}

/// A rule that matched and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Its id.
    pub id: u64,
    /// Its expanded message.
    pub msg: String,
}

type Entries = Vec<(String, Vec<u8>)>;

/// The per-transaction maps: looked up for every rule, so hashed with a fast
/// hasher (seeded per process, not DoS-hardened): their keys are the rule set's names,
/// not the client's.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What [`Transaction::for_each_target`] calls with each selected value.
/// The index is the entry's position in its collection, given for values that stay put
/// until the collection is replaced (not TX, MATCHED_* or counts).
type TargetVisitor<'a> = dyn FnMut(Option<Collection>, Option<u32>, &str, &[u8]) + 'a;

/// Variables a `ctl:ruleRemoveTarget…` took away from rules (by id ranges or tag).
type RemovedTarget = (Option<Vec<(u64, u64)>>, Option<String>, Vec<Variable>);

/// Name/value pairs whose storage outlives a `clear`: the per-rule match lists are
/// cleared for every rule, and would otherwise allocate again for each.
#[derive(Debug, Default)]
struct ReusedEntries {
    items: Entries,
    len: usize,
}

impl ReusedEntries {
    fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `value` under the name `write_name` writes.
    fn push(&mut self, write_name: impl FnOnce(&mut String), value: &[u8]) {
        if self.len == self.items.len() {
            self.items.push(Default::default());
        }
        let (name, stored) = &mut self.items[self.len];
        name.clear();
        write_name(name);
        stored.clear();
        stored.extend_from_slice(value);
        self.len += 1;
    }

    fn as_slice(&self) -> &[(String, Vec<u8>)] {
        &self.items[..self.len]
    }
}

/// A target's name as `MATCHED_VAR_NAME` shows it (`ARGS:id`).
fn write_target_name(name: &mut String, collection: Option<Collection>, key: &str) {
    if let Some(c) = collection {
        name.push_str(c.name());
        if !key.is_empty() {
            name.push(':');
            name.push_str(key);
        }
    }
}

/// TX names of capture groups 0–9.
const CAPTURE_NAMES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// One request's evaluation state.
pub struct Transaction<'e> {
    engine: &'e Engine,
    mode: Mode,
    collections: FastMap<Collection, Entries>,
    tx: FastMap<String, Vec<u8>>,
    removed_ids: Vec<(u64, u64)>,
    removed_tags: Vec<String>,
    removed_targets: Vec<RemovedTarget>,
    body_processor: Option<String>,
    /// `ctl:forceRequestBodyVariable=On`.
    force_body_variable: bool,
    /// The raw body (`REQUEST_BODY` shows it only for urlencoded or forced bodies).
    raw_body: Vec<u8>,
    matched_var: (String, Vec<u8>),
    matched_vars: ReusedEntries,
    /// The current rule's matches (kept here so that their storage is reused).
    found: ReusedEntries,
    /// Collection values as transformation chains left them: by collection, then
    /// entry index, then chain. A collection's go when it is replaced.
    derived: RefCell<FastMap<Collection, Vec<ValueCache>>>,
    /// Bytes [`Transaction::derived`] has taken so far (never lowered: a bound, not a gauge).
    derived_bytes: std::cell::Cell<usize>,
    /// Rules that matched and log, in order.
    pub matched: Vec<Matched>,
    /// Set when a disruptive action fired in `On` mode: the status to answer.
    pub interruption: Option<u16>,
    /// Why the query or the body was not inspected in full (the first reason found).
    inspection_error: Option<BodyError>,
    rule_id: u64,
}

/// Collections whose keys are compared without regard to case.
fn key_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl<'e> Transaction<'e> {
    /// A transaction for `request`.
    pub fn new(engine: &'e Engine, request: &Request) -> Self {
        let mut t = Self {
            engine,
            mode: engine.mode,
            collections: FastMap::default(),
            tx: FastMap::default(),
            removed_ids: Vec::new(),
            removed_tags: Vec::new(),
            removed_targets: Vec::new(),
            body_processor: None,
            force_body_variable: false,
            raw_body: request.body.clone(),
            matched_var: Default::default(),
            matched_vars: ReusedEntries::default(),
            found: ReusedEntries::default(),
            derived: RefCell::default(),
            derived_bytes: std::cell::Cell::new(0),
            matched: Vec::new(),
            interruption: None,
            inspection_error: None,
            rule_id: 0,
        };
        t.load_request(request);
        t
    }

    fn set(&mut self, c: Collection, entries: Entries) {
        self.forget_derived(c);
        self.collections.insert(c, entries);
    }

    fn single(&mut self, c: Collection, name: &str, value: impl Into<Vec<u8>>) {
        self.set(c, vec![(name.to_string(), value.into())]);
    }

    /// Drops the transformed values of `c` (its entries are being replaced).
    fn forget_derived(&mut self, c: Collection) {
        self.derived.get_mut().remove(&c);
    }

    fn load_request(&mut self, r: &Request) {
        use Collection as C;
        let (raw_path, query) = r.uri.split_once('?').unwrap_or((&r.uri, ""));
        // REQUEST_FILENAME and REQUEST_BASENAME are percent-decoded, as in ModSecurity
        // (a `+` stays: it means a space only in query strings).
        let path =
            String::from_utf8_lossy(&transform::percent_decode(raw_path.as_bytes())).into_owned();
        let protocol = if r.protocol.is_empty() {
            "HTTP/1.1"
        } else {
            &r.protocol
        };
        self.single(C::RequestMethod, "REQUEST_METHOD", r.method.as_bytes());
        self.single(C::RequestUri, "REQUEST_URI", r.uri.as_bytes());
        self.single(C::RequestUriRaw, "REQUEST_URI_RAW", r.uri.as_bytes());
        self.single(C::RequestFilename, "REQUEST_FILENAME", path.as_bytes());
        self.single(
            C::RequestBasename,
            "REQUEST_BASENAME",
            path.rsplit('/').next().unwrap_or("").as_bytes(),
        );
        self.single(C::QueryString, "QUERY_STRING", query.as_bytes());
        self.single(C::RequestProtocol, "REQUEST_PROTOCOL", protocol.as_bytes());
        self.single(
            C::RequestLine,
            "REQUEST_LINE",
            format!("{} {} {protocol}", r.method, r.uri).into_bytes(),
        );
        self.single(C::RemoteAddr, "REMOTE_ADDR", r.remote_addr.as_bytes());
        self.single(C::UniqueId, "UNIQUE_ID", b"rampart-waf".to_vec());
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.single(C::TimeEpoch, "TIME_EPOCH", epoch.to_string().into_bytes());
        let headers: Entries = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        self.set(
            C::RequestHeadersNames,
            headers
                .iter()
                .map(|(k, _)| (k.clone(), k.as_bytes().to_vec()))
                .collect(),
        );
        let mut cookies = Vec::new();
        for (_, v) in headers.iter().filter(|(k, _)| key_eq(k, "cookie")) {
            for pair in String::from_utf8_lossy(v).split(';') {
                let pair = pair.trim();
                if pair.is_empty() {
                    continue;
                }
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                cookies.push((name.to_string(), value.as_bytes().to_vec()));
            }
        }
        self.set(
            C::RequestCookiesNames,
            cookies
                .iter()
                .map(|(k, _)| (k.clone(), k.as_bytes().to_vec()))
                .collect(),
        );
        self.set(C::RequestCookies, cookies);
        self.set(C::RequestHeaders, headers);
        let get = body::parse_urlencoded(query.as_bytes(), "query arguments").unwrap_or_else(|e| {
            self.inspection_error = Some(e);
            Vec::new()
        });
        self.set(C::ArgsGet, get);
        self.set(C::ArgsPost, Vec::new());
        // The body processor follows the content type (phase-1 rules may change it).
        let content_type = r
            .headers
            .iter()
            .find(|(k, _)| key_eq(k, "content-type"))
            .map(|(_, v)| body::essence(v))
            .unwrap_or_default();
        self.body_processor = default_processor(&content_type).map(str::to_string);
        // A scalar variable exists even when empty (rules test `!@rx …` on it).
        let processor = self.body_processor.clone().unwrap_or_default();
        self.single(
            C::ReqbodyProcessor,
            "REQBODY_PROCESSOR",
            processor.into_bytes(),
        );
        self.single(C::ReqbodyError, "REQBODY_ERROR", b"0".to_vec());
        self.single(C::RequestBody, "REQUEST_BODY", Vec::new());
        self.single(
            C::RequestBodyLength,
            "REQUEST_BODY_LENGTH",
            r.body.len().to_string().into_bytes(),
        );
        self.single(
            C::FullRequestLength,
            "FULL_REQUEST_LENGTH",
            r.body.len().to_string().into_bytes(),
        );
        self.refresh_args();
    }

    /// Recomputes `ARGS`, `ARGS_NAMES` and the combined size from GET and POST.
    fn refresh_args(&mut self) {
        use Collection as C;
        let mut args = self
            .collections
            .get(&C::ArgsGet)
            .cloned()
            .unwrap_or_default();
        args.extend(
            self.collections
                .get(&C::ArgsPost)
                .cloned()
                .unwrap_or_default(),
        );
        let size: usize = args.iter().map(|(k, v)| k.len() + v.len()).sum();
        let names = |c: C, s: &Self| -> Entries {
            s.collections
                .get(&c)
                .map(|e| {
                    e.iter()
                        .map(|(k, _)| (k.clone(), k.as_bytes().to_vec()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let get_names = names(C::ArgsGet, self);
        let post_names = names(C::ArgsPost, self);
        self.set(C::ArgsGetNames, get_names);
        self.set(C::ArgsPostNames, post_names);
        self.set(
            C::ArgsNames,
            args.iter()
                .map(|(k, _)| (k.clone(), k.as_bytes().to_vec()))
                .collect(),
        );
        self.single(
            C::ArgsCombinedSize,
            "ARGS_COMBINED_SIZE",
            size.to_string().into_bytes(),
        );
        self.set(C::Args, args);
    }

    /// Parses the request body with the chosen processor (after phase 1, so that
    /// `ctl:requestBodyProcessor` can pick one). A body no processor parses, or one that
    /// failed to parse, is in `REQUEST_BODY` as it is.
    fn process_body(&mut self) {
        use Collection as C;
        let body = std::mem::take(&mut self.raw_body);
        let outcome = self.parse_body(&body);
        // REQUEST_BODY holds the raw body for urlencoded bodies and, as the CRS
        // regression suite expects (934210 looks for JSON keys there), for JSON
        // bodies; for bodies no processor reads or that failed to parse; or when a rule
        // forces it.
        let raw_visible = self.force_body_variable
            || !matches!(outcome, Some(Ok(_)))
            || matches!(self.body_processor.as_deref(), Some("URLENCODED" | "JSON"));
        if raw_visible {
            self.single(C::RequestBody, "REQUEST_BODY", body.clone());
        }
        self.raw_body = body;
        let Some(outcome) = outcome else {
            return;
        };
        match outcome {
            Ok(parsed) => {
                self.set(C::ArgsPost, parsed.args);
                // FILES: field → file name; FILES_NAMES: the fields' names.
                self.set(
                    C::FilesNames,
                    parsed
                        .files
                        .iter()
                        .map(|(k, _)| (k.clone(), k.as_bytes().to_vec()))
                        .collect(),
                );
                self.set(C::Files, parsed.files);
                // FILES_SIZES per field, FILES_COMBINED_SIZE their sum (CRS 920400/920410).
                let combined: usize = parsed.file_sizes.iter().map(|(_, n)| n).sum();
                self.set(
                    C::FilesSizes,
                    parsed
                        .file_sizes
                        .into_iter()
                        .map(|(k, n)| (k, n.to_string().into_bytes()))
                        .collect(),
                );
                self.single(
                    C::FilesCombinedSize,
                    "FILES_COMBINED_SIZE",
                    combined.to_string().into_bytes(),
                );
                self.set(C::MultipartPartHeaders, parsed.part_headers);
                if !parsed.xml.is_empty() {
                    self.set(C::Xml, parsed.xml);
                }
                self.single(C::ReqbodyError, "REQBODY_ERROR", b"0".to_vec());
                for (flag, value) in parsed.flags {
                    self.single(flag, "", value.to_string().into_bytes());
                }
            }
            Err(error) => {
                self.single(C::ReqbodyError, "REQBODY_ERROR", b"1".to_vec());
                self.single(
                    C::ReqbodyErrorMsg,
                    "REQBODY_ERROR_MSG",
                    error.to_string().into_bytes(),
                );
                self.single(
                    C::ReqbodyProcessorError,
                    "REQBODY_PROCESSOR_ERROR",
                    b"1".to_vec(),
                );
                self.inspection_error.get_or_insert(error);
            }
        }
        self.refresh_args();
    }

    /// The chosen processor's reading of `body`: `None` when there is no body or no
    /// processor for it.
    fn parse_body(&mut self, body: &[u8]) -> Option<Result<body::Parsed, BodyError>> {
        use Collection as C;
        let processor = self.body_processor.clone()?;
        self.single(
            C::ReqbodyProcessor,
            "REQBODY_PROCESSOR",
            processor.as_bytes(),
        );
        if body.is_empty()
            || !matches!(
                processor.as_str(),
                "URLENCODED" | "MULTIPART" | "JSON" | "XML"
            )
        {
            return None;
        }
        let content_types: Vec<String> = self
            .collections
            .get(&C::RequestHeaders)
            .map(|h| {
                h.iter()
                    .filter(|(k, _)| key_eq(k, "content-type"))
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        // Two different types: which one the application reads is anyone's guess.
        if content_types.iter().any(|c| *c != content_types[0]) {
            return Some(Err(BodyError::Unparsed(
                "several different Content-Type fields".into(),
            )));
        }
        let media = match content_types.first() {
            Some(value) => match body::parse_media_type(value) {
                Ok(media) => media,
                Err(e) => return Some(Err(e)),
            },
            // A processor forced by a rule on a body without a type.
            None => body::MediaType {
                essence: String::new(),
                params: Vec::new(),
            },
        };
        if let Err(e) = body::check_charset(&media) {
            return Some(Err(e));
        }
        Some(match processor.as_str() {
            "URLENCODED" => {
                body::parse_urlencoded(body, "body arguments").map(|args| body::Parsed {
                    args,
                    ..Default::default()
                })
            }
            "MULTIPART" => body::parse_multipart(body, &media),
            "JSON" => body::parse_json(body),
            _ => body::xml_entries(body).map(|xml| body::Parsed {
                xml,
                ..Default::default()
            }),
        })
    }

    /// Why the query or the body was not inspected in full, if it was not: more
    /// arguments than [`MAX_ARGS`] (or parts than [`MAX_PARTS`]), or a body that does not
    /// parse as its declared type within the processors' limits. The rules have seen
    /// what could be read (a body that failed to parse as `REQUEST_BODY`, with
    /// `REQBODY_ERROR` set); the caller decides whether to let the request through.
    pub fn inspection_error(&self) -> Option<&BodyError> {
        self.inspection_error.as_ref()
    }

    /// Adds the response for phases 3 and 4.
    pub fn set_response(&mut self, r: &Response) {
        use Collection as C;
        self.single(
            C::ResponseStatus,
            "RESPONSE_STATUS",
            r.status.to_string().into_bytes(),
        );
        self.single(
            C::ResponseProtocol,
            "RESPONSE_PROTOCOL",
            if r.protocol.is_empty() {
                "HTTP/1.1"
            } else {
                &r.protocol
            }
            .as_bytes(),
        );
        let headers: Entries = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        self.set(
            C::ResponseHeadersNames,
            headers
                .iter()
                .map(|(k, _)| (k.clone(), k.as_bytes().to_vec()))
                .collect(),
        );
        if let Some((_, ct)) = headers.iter().find(|(k, _)| key_eq(k, "content-type")) {
            self.single(C::ResponseContentType, "RESPONSE_CONTENT_TYPE", ct.clone());
        }
        self.set(C::ResponseHeaders, headers);
        self.single(C::ResponseBody, "RESPONSE_BODY", r.body.clone());
        self.single(
            C::ResponseContentLength,
            "RESPONSE_CONTENT_LENGTH",
            r.body.len().to_string().into_bytes(),
        );
    }

    /// Runs phases 1 and 2.
    pub fn run_request_phases(&mut self) {
        self.run_phase(1);
        self.process_body();
        self.run_phase(2);
    }

    /// Runs phases 3 and 4 (after [`Transaction::set_response`]) and 5.
    pub fn run_response_phases(&mut self) {
        self.run_phase(3);
        self.run_phase(4);
        self.run_phase(5);
    }

    /// The entries of a collection as rules see them now.
    pub fn collection(&self, c: Collection) -> Vec<(String, Vec<u8>)> {
        self.entries(c)
    }

    /// A TX variable. Names are kept lower case; `name` is copied only when it is not.
    pub fn tx(&self, name: &str) -> Option<&[u8]> {
        if !name.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.tx.get(name).map(Vec::as_slice);
        }
        // Lower-cased on the stack (rule sets' names are short).
        let mut buffer = [0u8; 64];
        let value = match buffer.get_mut(..name.len()) {
            Some(lower) => {
                lower.copy_from_slice(name.as_bytes());
                lower.make_ascii_lowercase();
                self.tx.get(std::str::from_utf8(lower).ok()?)
            }
            None => self.tx.get(&name.to_ascii_lowercase()),
        };
        value.map(Vec::as_slice)
    }

    /// Sets a TX variable (`name` lower case), reusing the old value's storage.
    fn set_tx(&mut self, name: Cow<'_, str>, value: &[u8]) {
        match self.tx.get_mut(name.as_ref()) {
            Some(stored) => {
                stored.clear();
                stored.extend_from_slice(value);
            }
            None => {
                self.tx.insert(name.into_owned(), value.to_vec());
            }
        }
    }

    fn run_phase(&mut self, phase: u8) {
        if self.mode == Mode::Off || self.interruption.is_some() {
            return;
        }
        let engine = self.engine;
        let steps = &engine.phases[usize::from(phase - 1)];
        let mut skip_to: Option<&str> = None;
        let mut skip_count = 0u32;
        for step in steps {
            match step {
                Step::Marker(name) => {
                    if skip_to == Some(name.as_str()) {
                        skip_to = None;
                    }
                }
                Step::Rule(rule) => {
                    if skip_to.is_some() {
                        continue;
                    }
                    if skip_count > 0 {
                        skip_count -= 1;
                        continue;
                    }
                    if ranges_contain(&self.removed_ids, rule.id)
                        || (!self.removed_tags.is_empty()
                            && rule.tags.iter().any(|t| self.removed_tags.contains(t)))
                    {
                        continue;
                    }
                    if self.evaluate(rule, rule) {
                        for a in &rule.actions {
                            match a {
                                Action::SkipAfter(m) => skip_to = Some(m),
                                Action::Skip(n) => skip_count = *n,
                                _ => {}
                            }
                        }
                        if self.interruption.is_some() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Whether `rule` (part of the chain headed by `head`) matches; runs its actions
    /// when the whole chain matched.
    fn evaluate(&mut self, head: &CompiledRule, rule: &CompiledRule) -> bool {
        self.rule_id = head.id;
        // Only string operators read their argument per request (regexes and phrase
        // sets were compiled from theirs).
        let argument: Cow<'_, str> = if matches!(rule.compiled, operator::Compiled::Text(..)) {
            self.expand(&rule.operator.argument)
        } else {
            Cow::Borrowed(&rule.operator.argument)
        };
        // Find the matches with the transaction borrowed (values are not copied unless
        // they match), then run the actions for each.
        let mut found = std::mem::take(&mut self.found);
        found.clear();
        // Capture groups per match, kept only for rules that `capture`.
        let mut captures_found: Vec<Vec<Vec<u8>>> = Vec::new();
        {
            let derived = &self.derived;
            let derived_bytes = &self.derived_bytes;
            let engine = self.engine;
            let shared_chain = rule.chain.filter(|_| !rule.multi_match);
            let mut check =
                |collection: Option<Collection>, index: Option<u32>, key: &str, value: &[u8]| {
                    let try_candidate = |candidate: &[u8]| {
                        let outcome =
                            operator::run(&rule.compiled, &argument, candidate, rule.capture);
                        (outcome.matched != rule.operator.negated).then_some(outcome.captures)
                    };
                    let mut record = |candidate: &[u8], captures: Vec<Vec<u8>>| {
                        found.push(|name| write_target_name(name, collection, key), candidate);
                        if rule.capture {
                            captures_found.push(captures);
                        }
                    };
                    match (collection, index, shared_chain) {
                        // A collection value: transformed once per chain and scanned for
                        // literals once, whichever rule reads it first.
                        (Some(c), Some(index), Some(chain_id)) => {
                            let mut derived = derived.borrow_mut();
                            let by_entry = derived.entry(c).or_default();
                            let index = index as usize;
                            if by_entry.len() <= index {
                                by_entry.resize_with(index + 1, ValueCache::default);
                            }
                            let ValueCache {
                                hits: original_hits,
                                chains,
                            } = &mut by_entry[index];
                            let chain_index = chain_id as usize;
                            if chains.len() <= chain_index {
                                chains.resize_with(chain_index + 1, || None);
                            }
                            let Derived {
                                value: transformed,
                                hits,
                            } = match &mut chains[chain_index] {
                                Some(kept) => kept,
                                slot @ None => {
                                    let transformed =
                                        transform::apply_chain_if_changed(&rule.transforms, value);
                                    let size = transformed.as_ref().map_or(0, Vec::len)
                                        + std::mem::size_of::<Derived>();
                                    if derived_bytes.get() + size > DERIVED_BYTES_LIMIT {
                                        // Over the budget: this value is not kept.
                                        let current = transformed.as_deref().unwrap_or(value);
                                        if let Some(captures) = try_candidate(current) {
                                            record(current, captures);
                                        }
                                        return;
                                    }
                                    derived_bytes.set(derived_bytes.get() + size);
                                    slot.insert(Derived {
                                        value: transformed,
                                        hits: None,
                                    })
                                }
                            };
                            let current = transformed.as_deref().unwrap_or(value);
                            let possible = match (&engine.prefilter, rule.prefilter_slot) {
                                (Some(prefilter), Some(slot)) => {
                                    // An unchanged value shares the scan of the original.
                                    let bits = match &*transformed {
                                        None => &*original_hits
                                            .get_or_insert_with(|| prefilter.hits(value)),
                                        Some(v) => &*hits.get_or_insert_with(|| prefilter.hits(v)),
                                    };
                                    has_slot(bits, slot)
                                }
                                _ => true,
                            };
                            let captures = if possible {
                                try_candidate(current)
                            } else {
                                // None of the regex's literals is there: it cannot match.
                                rule.operator.negated.then(Vec::new)
                            };
                            if let Some(captures) = captures {
                                record(current, captures);
                            }
                        }
                        _ if rule.multi_match => {
                            // Every intermediate value is tested, the untransformed one first.
                            let mut current: Cow<'_, [u8]> = Cow::Borrowed(value);
                            let mut captures = try_candidate(&current);
                            for t in &rule.transforms {
                                if captures.is_some() {
                                    break;
                                }
                                // An unchanged value is neither copied nor tried again.
                                let Some(next) = transform::apply_if_changed(*t, &current) else {
                                    continue;
                                };
                                current = Cow::Owned(next);
                                captures = try_candidate(&current);
                            }
                            if let Some(captures) = captures {
                                record(&current, captures);
                            }
                        }
                        _ => {
                            let current =
                                transform::apply_chain_if_changed(&rule.transforms, value);
                            let current = current.as_deref().unwrap_or(value);
                            if let Some(captures) = try_candidate(current) {
                                record(current, captures);
                            }
                        }
                    }
                };
            if rule.variables.is_empty() {
                check(None, None, "", b"");
            } else {
                self.for_each_target(head, rule, &mut check);
            }
        }
        // MATCHED_VARS is this rule's (the targets above could still read the previous one's).
        self.matched_vars.clear();
        let any = found.len > 0;
        let mut captures_found = captures_found.into_iter();
        for (name, candidate) in found.as_slice() {
            if let Some(captures) = captures_found.next() {
                for (tx_name, c) in CAPTURE_NAMES.iter().zip(captures) {
                    self.set_tx(Cow::Borrowed(tx_name), &c);
                }
            }
            // The previous MATCHED_VAR's storage is reused.
            self.matched_var.0.clear();
            self.matched_var.0.push_str(name);
            self.matched_var.1.clear();
            self.matched_var.1.extend_from_slice(candidate);
            self.matched_vars.push(|n| n.push_str(name), candidate);
            // Non-disruptive actions run per match, before any chained rule (which may
            // read what they set), as in ModSecurity.
            self.run_actions(rule);
        }
        self.found = found;
        if !any {
            return false;
        }
        if let Some(next) = &rule.chained {
            if !self.evaluate(head, next) {
                return false;
            }
        }
        if std::ptr::eq(head, rule) {
            self.conclude(head);
        }
        true
    }

    /// Calls `f(collection, key, value)` for every value `rule`'s variables select,
    /// exclusions applied, without copying values.
    fn for_each_target(&self, head: &CompiledRule, rule: &CompiledRule, f: &mut TargetVisitor<'_>) {
        // Exclusions: the rule's own `!VAR`s and any `ctl:ruleRemoveTarget…` for it.
        let removed: &[RemovedTarget] = &self.removed_targets;
        let excluded = |collection: Collection, key: &str| {
            let hit = |x: &Variable| x.collection == collection && self.selects(&x.selector, key);
            rule.variables.iter().any(|x| x.exclude && hit(x))
                || removed.iter().any(|(ids, tag, vars)| {
                    (ids.as_ref().is_some_and(|r| ranges_contain(r, head.id))
                        || tag.as_ref().is_some_and(|t| head.tags.contains(t)))
                        && vars.iter().any(hit)
                })
        };
        for var in rule.variables.iter().filter(|v| !v.exclude) {
            let kept =
                |key: &str| self.selects(&var.selector, key) && !excluded(var.collection, key);
            let mut count = 0usize;
            let mut visit =
                |index: Option<u32>, key: &str, value: &[u8], f: &mut TargetVisitor<'_>| {
                    if kept(key) {
                        count += 1;
                        if !var.count {
                            f(Some(var.collection), index, key, value);
                        }
                    }
                };
            match var.collection {
                Collection::Tx => match &var.selector {
                    Selector::Key(k) => {
                        if let Some(v) = self.tx(k) {
                            visit(None, k, v, f);
                        }
                    }
                    _ => {
                        for (k, v) in &self.tx {
                            visit(None, k, v, f);
                        }
                    }
                },
                Collection::MatchedVar => visit(None, "", &self.matched_var.1, f),
                Collection::MatchedVarName => visit(None, "", self.matched_var.0.as_bytes(), f),
                Collection::MatchedVars => {
                    for (k, v) in self.matched_vars.as_slice() {
                        visit(None, k, v, f);
                    }
                }
                Collection::MatchedVarsNames => {
                    for (k, _) in self.matched_vars.as_slice() {
                        visit(None, k, k.as_bytes(), f);
                    }
                }
                other => {
                    if let Some(entries) = self.collections.get(&other) {
                        for (i, (k, v)) in entries.iter().enumerate() {
                            visit(u32::try_from(i).ok(), k, v, f);
                        }
                    }
                }
            }
            if var.count {
                f(
                    Some(var.collection),
                    None,
                    "",
                    itoa::Buffer::new().format(count).as_bytes(),
                );
            }
        }
    }

    fn entries(&self, c: Collection) -> Entries {
        match c {
            Collection::Tx => self
                .tx
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Collection::MatchedVar => vec![(String::new(), self.matched_var.1.clone())],
            Collection::MatchedVarName => {
                vec![(String::new(), self.matched_var.0.clone().into_bytes())]
            }
            Collection::MatchedVars => self.matched_vars.as_slice().to_vec(),
            Collection::MatchedVarsNames => self
                .matched_vars
                .as_slice()
                .iter()
                .map(|(k, _)| (k.clone(), k.clone().into_bytes()))
                .collect(),
            other => self.collections.get(&other).cloned().unwrap_or_default(),
        }
    }

    /// Runs a matched rule's non-disruptive actions.
    fn run_actions(&mut self, rule: &CompiledRule) {
        for a in &rule.actions {
            match a {
                Action::SetVar {
                    collection,
                    name,
                    op,
                } if collection == "tx" => {
                    let name = self.expand(name);
                    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                        Cow::Owned(name.to_ascii_lowercase())
                    } else {
                        name
                    };
                    match op {
                        SetVarOp::Delete => {
                            self.tx.remove(name.as_ref());
                        }
                        SetVarOp::Set(v) => {
                            let v = self.expand(v);
                            self.set_tx(name, v.as_bytes());
                        }
                        SetVarOp::Add(v) | SetVarOp::Subtract(v) => {
                            let delta: i64 = self.expand(v).trim().parse().unwrap_or(0);
                            let current: i64 = self
                                .tx
                                .get(name.as_ref())
                                .and_then(|c| std::str::from_utf8(c).ok()?.trim().parse().ok())
                                .unwrap_or(0);
                            let next = if matches!(op, SetVarOp::Add(_)) {
                                current.saturating_add(delta)
                            } else {
                                current.saturating_sub(delta)
                            };
                            self.set_tx(name, itoa::Buffer::new().format(next).as_bytes());
                        }
                    }
                }
                Action::Ctl(ctl) => self.ctl(ctl),
                _ => {}
            }
        }
    }

    /// Logs a chain that matched whole, and applies its disruption.
    fn conclude(&mut self, head: &CompiledRule) {
        {
            if !head.nolog && head.id != 0 {
                let msg = head
                    .actions
                    .iter()
                    .find_map(|a| match a {
                        Action::Msg(m) => Some(self.expand(m).into_owned()),
                        _ => None,
                    })
                    .unwrap_or_default();
                self.matched.push(Matched { id: head.id, msg });
            }
            if self.mode == Mode::On {
                // The last disruptive action decides; `block` means "what the default
                // action says", and the defaults come first in the rule's actions.
                let disruptive = head.actions.iter().rev().find(|a| {
                    matches!(
                        a,
                        Action::Deny | Action::Drop | Action::Pass | Action::Allow(_)
                    )
                });
                let status = head
                    .actions
                    .iter()
                    .find_map(|a| match a {
                        Action::Status(s) => Some(*s),
                        _ => None,
                    })
                    .unwrap_or(403);
                if matches!(disruptive, Some(Action::Deny | Action::Drop)) {
                    self.interruption = Some(status);
                }
            }
        }
    }

    fn ctl(&mut self, ctl: &Ctl) {
        match ctl {
            Ctl::RuleEngine(v) => {
                self.mode = match v.to_ascii_lowercase().as_str() {
                    "off" => Mode::Off,
                    "detectiononly" => Mode::DetectionOnly,
                    _ => Mode::On,
                }
            }
            Ctl::RuleRemoveById(r) => self.removed_ids.extend(r.iter().copied()),
            Ctl::RuleRemoveByTag(t) => self.removed_tags.push(t.clone()),
            Ctl::RuleRemoveTargetById(ids, vars) => {
                self.removed_targets
                    .push((Some(ids.clone()), None, vars.clone()))
            }
            Ctl::RuleRemoveTargetByTag(tag, vars) => {
                self.removed_targets
                    .push((None, Some(tag.clone()), vars.clone()))
            }
            Ctl::RequestBodyProcessor(p) => self.body_processor = Some(p.clone()),
            Ctl::ForceRequestBodyVariable(on) => self.force_body_variable = *on,
            _ => {}
        }
    }

    /// Expands `%{collection.name}` macros (no copy of a text without any).
    fn expand<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if !text.contains("%{") {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("%{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Cow::Owned(out);
            };
            let inner = &after[..end];
            out.push_str(&self.macro_value(inner));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Cow::Owned(out)
    }

    fn macro_value(&self, inner: &str) -> String {
        let (collection, key) = inner.split_once('.').unwrap_or((inner, ""));
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        if collection.eq_ignore_ascii_case("RULE") {
            return if key.eq_ignore_ascii_case("id") {
                self.rule_id.to_string()
            } else {
                String::new()
            };
        }
        match Collection::parse(collection) {
            Some(Collection::Tx) => self.tx(key).map(text),
            Some(Collection::MatchedVar) => Some(text(&self.matched_var.1)),
            Some(Collection::MatchedVarName) => Some(self.matched_var.0.clone()),
            Some(Collection::MatchedVarsNames) => self
                .matched_vars
                .as_slice()
                .iter()
                .find(|(k, _)| key.is_empty() || key_eq(k, key))
                .map(|(k, _)| k.clone()),
            Some(Collection::MatchedVars) => self
                .matched_vars
                .as_slice()
                .iter()
                .find(|(k, _)| key.is_empty() || key_eq(k, key))
                .map(|(_, v)| text(v)),
            Some(other) => self.collections.get(&other).and_then(|entries| {
                entries
                    .iter()
                    .find(|(k, _)| key.is_empty() || key_eq(k, key))
                    .map(|(_, v)| text(v))
            }),
            None => None,
        }
        .unwrap_or_default()
    }
}

impl Transaction<'_> {
    fn selects(&self, selector: &Selector, key: &str) -> bool {
        match selector {
            Selector::All => true,
            Selector::Key(k) => key_eq(k, key),
            Selector::Regex(re) => match self.engine.selectors.get(re) {
                Some(compiled) => compiled.is_match(key),
                None => regex::RegexBuilder::new(re)
                    .case_insensitive(true)
                    .build()
                    .is_ok_and(|r| r.is_match(key)),
            },
        }
    }
}

/// The body processor a media type (`type/subtype`, lower case) calls for: urlencoded
/// and multipart forms, and — as ModSecurity's recommended configuration (rules
/// 200000/200001) does — XML and JSON. Forms are recognised by prefix, as PHP does
/// (`multipart/form-datax` is multipart to it); a value that then does not parse as a
/// media type is an unparsed body.
fn default_processor(content_type: &str) -> Option<&'static str> {
    if content_type.starts_with("application/x-www-form-urlencoded") {
        Some("URLENCODED")
    } else if content_type.starts_with("multipart/form-data") {
        Some("MULTIPART")
    } else if is_xml(content_type) {
        Some("XML")
    } else if is_json(content_type) {
        Some("JSON")
    } else {
        None
    }
}

/// `application/xml`, `text/xml`, `application/soap+xml`, `application/atom+xml`, …
fn is_xml(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media == "text/xml"
        || (media.starts_with("application/")
            && (media.ends_with("/xml") || media.ends_with("+xml")))
}

/// `application/json`, `application/problem+json`, and the names frameworks also parse
/// as JSON: `text/json` (ASP.NET Core), `text/x-json` and `application/jsonrequest`
/// (Rails), `application/x-json`.
fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    (media.starts_with("application/") && (media.ends_with("/json") || media.ends_with("+json")))
        || matches!(
            media,
            "text/json" | "text/x-json" | "application/jsonrequest" | "application/x-json"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(rules: &str) -> Engine {
        let set =
            crate::seclang::parse_str(rules, Path::new("t.conf")).unwrap_or_else(|e| panic!("{e}"));
        Engine::compile(&set).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// Every string scalar of the YAML files under `dir` (the regression corpus's
    /// URIs, headers and bodies), raw and percent-decoded.
    fn corpus_strings(dir: &Path, out: &mut Vec<Vec<u8>>) {
        fn strings(value: &serde_norway::Value, out: &mut Vec<Vec<u8>>) {
            match value {
                serde_norway::Value::String(s) => {
                    out.push(s.as_bytes().to_vec());
                    out.push(transform::apply(Transformation::UrlDecodeUni, s.as_bytes()));
                }
                serde_norway::Value::Sequence(items) => items.iter().for_each(|v| strings(v, out)),
                serde_norway::Value::Mapping(map) => map.values().for_each(|v| strings(v, out)),
                _ => {}
            }
        }
        for entry in std::fs::read_dir(dir).expect("corpus dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                corpus_strings(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).expect("corpus file");
                if let Ok(value) = serde_norway::from_str::<serde_norway::Value>(&text) {
                    strings(&value, out);
                }
            }
        }
    }

    /// The prefilter only ever skips regexes that cannot match: for every prefiltered
    /// CRS rule and every input of the CRS regression corpus, a value the regex matches
    /// (after the rule's transformations) holds one of the rule's literals.
    #[test]
    fn prefiltered_crs_regexes_never_miss_a_match_of_the_corpus() {
        let shared = std::env::var_os("RAMPART_SHARED_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
        let crs = shared.join("crs");
        if !crs.join("rules").is_dir() {
            eprintln!("SKIPPED: the CRS rules (../shared/crs) were not found");
            return;
        }
        let set = crate::seclang::parse_str(
            &crate::conformance::crs_entry(&crs),
            &crs.join("entry.conf"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let engine = Engine::compile(&set).unwrap_or_else(|e| panic!("{e:?}"));
        let mut inputs = Vec::new();
        corpus_strings(&crs.join("regression"), &mut inputs);
        inputs.sort();
        inputs.dedup();
        assert!(inputs.len() > 1000, "corpus read: {} inputs", inputs.len());
        let mut prefiltered = 0;
        let mut matches_checked = 0;
        for step in engine.phases.iter().flatten() {
            let Step::Rule(head) = step else { continue };
            let mut next: Option<&CompiledRule> = Some(head);
            while let Some(rule) = next {
                next = rule.chained.as_deref();
                let (Some(_), operator::Compiled::Regex(re)) =
                    (rule.prefilter_slot, &rule.compiled)
                else {
                    continue;
                };
                prefiltered += 1;
                let literals = prefilter::required_literals(re.as_str()).expect("literals");
                for input in &inputs {
                    let value = transform::apply_chain_if_changed(&rule.transforms, input)
                        .unwrap_or_else(|| input.clone());
                    if !re.is_match(&value) {
                        continue;
                    }
                    matches_checked += 1;
                    let lower = value.to_ascii_lowercase();
                    assert!(
                        literals
                            .iter()
                            .any(|l| memchr::memmem::find(&lower, l).is_some()),
                        "rule {} at {}: {:?} matches, none of {} literals is in it",
                        rule.id,
                        rule.location,
                        String::from_utf8_lossy(&value),
                        literals.len()
                    );
                }
            }
        }
        assert!(
            prefiltered > 200,
            "only {prefiltered} CRS regexes prefiltered"
        );
        assert!(
            matches_checked > 1000,
            "only {matches_checked} matches checked"
        );
    }

    /// A request from 127.0.0.1 with a body of `content_type`.
    fn request(method: &str, uri: &str, content_type: &str, body: &str) -> Request {
        Request {
            method: method.into(),
            uri: uri.into(),
            protocol: "HTTP/1.1".into(),
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
            remote_addr: "127.0.0.1".into(),
        }
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn a_negated_regex_whose_literals_are_absent_matches() {
        let e = engine(concat!(
            "SecRuleEngine DetectionOnly\n",
            "SecRule REQUEST_METHOD \"!@rx ^(?:GET|HEAD)$\" \"id:1,phase:1,pass,log\"\n",
            "SecRule REQUEST_METHOD \"@rx ^(?:GET|HEAD)$\" \"id:2,phase:1,pass,log\"\n",
        ));
        let mut tx = Transaction::new(&e, &request("POST", "/", FORM, ""));
        tx.run_request_phases();
        assert_eq!(tx.matched.iter().map(|m| m.id).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn shared_transformations_follow_a_collection_that_changes() {
        // Phase 1 reads REQUEST_BODY (empty before the body is processed) through
        // t:lowercase; phase 2 reads it again through the same chain once it holds the
        // body: the new value is seen, not the one cached (nor its literal scan).
        let e = engine(concat!(
            "SecRuleEngine DetectionOnly\n",
            "SecRule REQUEST_BODY \"@rx union select\" \"id:1,phase:1,pass,log,t:none,t:lowercase\"\n",
            "SecRule REQUEST_BODY \"@rx union select\" \"id:2,phase:2,pass,log,t:none,t:lowercase\"\n",
            "SecRule ARGS \"@rx ^Q$\" \"id:3,phase:2,pass,log,t:none\"\n",
        ));
        let mut tx = Transaction::new(&e, &request("POST", "/?a=Q", FORM, "b=UNION SELECT"));
        tx.run_request_phases();
        assert_eq!(tx.matched.iter().map(|m| m.id).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn transformed_values_kept_for_sharing_are_bounded() {
        // Ten chains, each turning a 200 KB argument into a new 200 KB value: past the
        // budget values are transformed per rule again, and every rule still matches.
        let mut rules = String::from("SecRuleEngine DetectionOnly\n");
        for id in 1..=10 {
            let chain = ",t:lowercase".repeat(id);
            rules.push_str(&format!(
                "SecRule ARGS \"@rx aaaa\" \"id:{id},phase:1,pass,log,t:none{chain}\"\n"
            ));
        }
        let e = engine(&rules);
        let request = request("GET", &format!("/?a={}", "A".repeat(200_000)), FORM, "");
        let mut tx = Transaction::new(&e, &request);
        tx.run_request_phases();
        assert_eq!(
            tx.matched.iter().map(|m| m.id).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<u64>>()
        );
        assert!(tx.derived_bytes.get() <= DERIVED_BYTES_LIMIT);
        assert!(
            tx.derived_bytes.get() > DERIVED_BYTES_LIMIT / 2,
            "values were kept"
        );
    }

    #[test]
    fn multipart_field_names_reach_files_names() {
        let e = engine("SecRuleEngine DetectionOnly\nSecRule FILES_NAMES \"@rx =\" \"id:1,phase:2,pass,log\"\n");
        let body = "-----------------------------6276\nContent-Disposition: form-data; name=\"fi=le\"; filename=\"test\"\nContent-Type: text/plain\n\nemail: x@example.com\n\n-----------------------------6276--\n";
        let request = request(
            "POST",
            "/",
            "multipart/form-data; boundary=---------------------------6276",
            body,
        );
        let mut tx = Transaction::new(&e, &request);
        tx.run_request_phases();
        assert_eq!(tx.matched.iter().map(|m| m.id).collect::<Vec<_>>(), [1]);
    }

    /// Rule ids that matched `request` under `rules`, and the inspection error.
    fn verdict(rules: &str, request: &Request) -> (Vec<u64>, Option<BodyError>) {
        let e = engine(rules);
        let mut tx = Transaction::new(&e, request);
        tx.run_request_phases();
        (
            tx.matched.iter().map(|m| m.id).collect(),
            tx.inspection_error().cloned(),
        )
    }

    const SCRIPT_RULES: &str = concat!(
        "SecRuleEngine DetectionOnly\n",
        "SecRule ARGS \"@rx <script\" \"id:1,phase:2,pass,log\"\n",
        "SecRule REQUEST_BODY \"@rx <script\" \"id:2,phase:2,pass,log\"\n",
        "SecRule REQBODY_ERROR \"!@eq 0\" \"id:3,phase:2,pass,log\"\n",
    );

    #[test]
    fn json_media_types_in_any_case_and_framework_spelling_are_parsed() {
        let body = "{\"q\":\"<script>\",\"q\":\"x\"}";
        for content_type in [
            "application/json",
            "application/JSON; charset=utf-8",
            "Application/Json ; charset=\"UTF-8\"",
            "application/vnd.api+json",
            "text/json",
            "text/x-json",
        ] {
            // The first `q` is seen (ARGS), though most parsers keep the last.
            let (ids, error) = verdict(SCRIPT_RULES, &request("POST", "/", content_type, body));
            assert_eq!(ids, [1, 2], "{content_type}");
            assert_eq!(error, None, "{content_type}");
        }
        let (ids, error) = verdict(
            SCRIPT_RULES,
            &request(
                "POST",
                "/",
                "application/json",
                "\u{feff}{\"q\":\"<script>\"}",
            ),
        );
        assert_eq!((ids, error), (vec![1, 2], None));
    }

    #[test]
    fn a_body_that_does_not_parse_is_an_inspection_error_and_seen_raw() {
        for (content_type, body) in [
            ("application/json", "{\"q\":\"<script>\""),
            ("application/json; charset=utf-16", "{\"q\":\"<script>\"}"),
            (
                "application/x-www-form-urlencoded; charset=ibm037",
                "q=<script>",
            ),
            (
                "multipart/form-data; boundary=a; boundary=b",
                "--a\r\n\r\n<script>\r\n--a--\r\n",
            ),
        ] {
            let (ids, error) = verdict(SCRIPT_RULES, &request("POST", "/", content_type, body));
            assert_eq!(ids, [2, 3], "{content_type}");
            assert!(
                matches!(error, Some(BodyError::Unparsed(_))),
                "{content_type}"
            );
        }
        // A form type run into another: PHP reads it as a form, and it is no media type.
        let (ids, error) = verdict(
            SCRIPT_RULES,
            &request(
                "POST",
                "/",
                "multipart/form-data, text/plain; boundary=a",
                "--a\r\n\r\n<script>\r\n--a--\r\n",
            ),
        );
        assert_eq!(ids, [2, 3]);
        assert!(matches!(error, Some(BodyError::Unparsed(_))));
        let (ids, error) = verdict(
            SCRIPT_RULES,
            &request(
                "POST",
                "/",
                "application/x-www-form-urlencodedx",
                "q=<script>",
            ),
        );
        assert_eq!((ids, error), (vec![1, 2], None));
        // Two different types.
        let mut two = request("POST", "/", "application/json", "{\"q\":1}");
        two.headers
            .push(("content-type".into(), "text/plain".into()));
        assert!(matches!(
            verdict(SCRIPT_RULES, &two).1,
            Some(BodyError::Unparsed(_))
        ));
        // No body at all is not an error, whatever the type says.
        assert_eq!(
            verdict(SCRIPT_RULES, &request("GET", "/", "application/json", "")),
            (vec![], None)
        );
    }

    #[test]
    fn a_body_of_a_type_no_processor_reads_is_inspected_raw() {
        for content_type in [
            "text/plain",
            "application/octet-stream",
            "application/jsonx",
            "",
        ] {
            let (ids, error) = verdict(
                SCRIPT_RULES,
                &request("POST", "/", content_type, "{\"q\":\"<script>\"}"),
            );
            assert_eq!((ids, error), (vec![2], None), "{content_type:?}");
        }
    }

    #[test]
    fn more_arguments_than_the_limit_is_an_inspection_error() {
        let query = format!("/?{}", "a=1&".repeat(MAX_ARGS));
        assert_eq!(
            verdict(SCRIPT_RULES, &request("GET", &query, FORM, "")).1,
            None
        );
        let over = format!("{query}b=2");
        assert_eq!(
            verdict(SCRIPT_RULES, &request("GET", &over, FORM, "")).1,
            Some(BodyError::TooManyArguments {
                what: "query arguments",
                limit: MAX_ARGS
            })
        );
        let body = "a=1&".repeat(MAX_ARGS + 1);
        assert_eq!(
            verdict(SCRIPT_RULES, &request("POST", "/", FORM, &body)).1,
            Some(BodyError::TooManyArguments {
                what: "body arguments",
                limit: MAX_ARGS
            })
        );
    }

    #[test]
    fn per_match_setvar_with_captures_feeds_a_later_rule() {
        let e = engine(concat!(
            "SecRuleEngine DetectionOnly\n",
            "SecRule &MULTIPART_PART_HEADERS \"@gt 0\" \"id:1,phase:2,pass,nolog,setvar:'tx.counter=0'\"\n",
            "SecRule MULTIPART_PART_HEADERS \"@rx ^content-type\\s*:\\s*(.*)$\" \"id:2,phase:2,pass,capture,t:none,t:lowercase,nolog,setvar:'tx.types_%{tx.counter}=%{tx.1}',setvar:'tx.counter=+1'\"\n",
            "SecRule TX:/TYPES_*/ \"@rx utf-7\" \"id:3,phase:2,pass,log\"\n",
        ));
        let body = "------B\nContent-Disposition: form-data; name=\"u\"\nContent-Type: text/plain; charset=utf-7\n\nx\n------B--\n";
        let request = request("POST", "/", "multipart/form-data; boundary=----B", body);
        let mut tx = Transaction::new(&e, &request);
        tx.run_request_phases();
        assert_eq!(tx.tx("types_0"), Some(&b"text/plain; charset=utf-7"[..]));
        assert_eq!(tx.matched.iter().map(|m| m.id).collect::<Vec<_>>(), [3]);
    }
}
