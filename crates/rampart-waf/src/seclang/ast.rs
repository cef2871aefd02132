//! The typed form of a SecLang rule set.

use std::path::PathBuf;

/// Where a directive came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// Its first line (1-based).
    pub line: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One directive, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Directive {
    /// `SecRule` (with its chained rules).
    Rule(Rule),
    /// `SecAction`: a rule that always matches.
    Action(Rule),
    /// `SecMarker`: a target for `skipAfter`.
    Marker(String),
    /// `SecDefaultAction`: actions every later rule of that phase starts from.
    DefaultAction(Vec<Action>),
    /// `SecRuleRemoveById` (ids and ranges).
    RemoveById(Vec<(u64, u64)>),
    /// `SecRuleRemoveByTag`.
    RemoveByTag(String),
    /// `SecRuleRemoveByMsg`.
    RemoveByMsg(String),
    /// `SecRuleUpdateTargetById`: variables added to (or, negated, removed from) rules.
    UpdateTargetById(Vec<(u64, u64)>, Vec<Variable>),
    /// `SecRuleUpdateTargetByTag`.
    UpdateTargetByTag(String, Vec<Variable>),
    /// `SecRuleUpdateActionById`.
    UpdateActionById(u64, Vec<Action>),
    /// An engine setting such as `SecRuleEngine On` or `SecRequestBodyLimit 131072`.
    Setting(String, String),
}

/// A rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Where it is.
    pub location: Location,
    /// What it inspects (empty for `SecAction`).
    pub variables: Vec<Variable>,
    /// How it matches.
    pub operator: Operator,
    /// What it does.
    pub actions: Vec<Action>,
    /// The next rule of a chain, which must also match.
    pub chained: Option<Box<Rule>>,
}

impl Rule {
    /// The rule's id, if it has one.
    pub fn id(&self) -> Option<u64> {
        self.actions.iter().find_map(|a| match a {
            Action::Id(id) => Some(*id),
            _ => None,
        })
    }

    /// Whether it starts a chain.
    pub fn is_chain_start(&self) -> bool {
        self.actions.iter().any(|a| matches!(a, Action::Chain))
    }
}

/// One inspected variable: `REQUEST_HEADERS:User-Agent`, `!ARGS:foo`, `&TX:x`, `ARGS:/re/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// `!`: excluded from the collection's other entries.
    pub exclude: bool,
    /// `&`: the number of matching entries rather than their values.
    pub count: bool,
    /// The collection.
    pub collection: Collection,
    /// Which entries.
    pub selector: Selector,
}

/// Which entries of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// All.
    All,
    /// The entry with this name (case-insensitive for most collections).
    Key(String),
    /// Entries whose names match this regex.
    Regex(String),
}

/// Variables and collections SecLang knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Collection {
    Args,
    ArgsGet,
    ArgsPost,
    ArgsNames,
    ArgsGetNames,
    ArgsPostNames,
    ArgsCombinedSize,
    AuthType,
    Duration,
    Env,
    Files,
    FilesCombinedSize,
    FilesNames,
    FilesSizes,
    FilesTmpNames,
    FilesTmpContent,
    FullRequest,
    FullRequestLength,
    Geo,
    HighestSeverity,
    InboundDataError,
    MatchedVar,
    MatchedVarName,
    MatchedVars,
    MatchedVarsNames,
    ModsecBuild,
    MultipartBoundaryQuoted,
    MultipartBoundaryWhitespace,
    MultipartCrlfLfLines,
    MultipartDataAfter,
    MultipartDataBefore,
    MultipartFileLimitExceeded,
    MultipartFilename,
    MultipartHeaderFolding,
    MultipartInvalidHeaderFolding,
    MultipartInvalidPart,
    MultipartInvalidQuoting,
    MultipartLfLine,
    MultipartMissingSemicolon,
    MultipartName,
    MultipartPartHeaders,
    MultipartStrictError,
    MultipartUnmatchedBoundary,
    OutboundDataError,
    PathInfo,
    QueryString,
    RemoteAddr,
    RemoteHost,
    RemotePort,
    RemoteUser,
    ReqbodyError,
    ReqbodyErrorMsg,
    ReqbodyProcessor,
    ReqbodyProcessorError,
    RequestBasename,
    RequestBody,
    RequestBodyLength,
    RequestCookies,
    RequestCookiesNames,
    RequestFilename,
    RequestHeaders,
    RequestHeadersNames,
    RequestLine,
    RequestMethod,
    RequestProtocol,
    RequestUri,
    RequestUriRaw,
    ResponseBody,
    ResponseContentLength,
    ResponseContentType,
    ResponseHeaders,
    ResponseHeadersNames,
    ResponseProtocol,
    ResponseStatus,
    Rule,
    ServerAddr,
    ServerName,
    ServerPort,
    SessionId,
    StatusLine,
    Time,
    TimeDay,
    TimeEpoch,
    TimeHour,
    TimeMin,
    TimeMon,
    TimeSec,
    TimeWday,
    TimeYear,
    Tx,
    UniqueId,
    UrlencodedError,
    Userid,
    Webappid,
    Xml,
    Ip,
    Global,
    Resource,
    Session,
    User,
}

/// Every collection with its SecLang name.
const COLLECTION_NAMES: &[(&str, Collection)] = &[
    ("ARGS", Collection::Args),
    ("ARGS_GET", Collection::ArgsGet),
    ("ARGS_POST", Collection::ArgsPost),
    ("ARGS_NAMES", Collection::ArgsNames),
    ("ARGS_GET_NAMES", Collection::ArgsGetNames),
    ("ARGS_POST_NAMES", Collection::ArgsPostNames),
    ("ARGS_COMBINED_SIZE", Collection::ArgsCombinedSize),
    ("AUTH_TYPE", Collection::AuthType),
    ("DURATION", Collection::Duration),
    ("ENV", Collection::Env),
    ("FILES", Collection::Files),
    ("FILES_COMBINED_SIZE", Collection::FilesCombinedSize),
    ("FILES_NAMES", Collection::FilesNames),
    ("FILES_SIZES", Collection::FilesSizes),
    ("FILES_TMPNAMES", Collection::FilesTmpNames),
    ("FILES_TMP_CONTENT", Collection::FilesTmpContent),
    ("FULL_REQUEST", Collection::FullRequest),
    ("FULL_REQUEST_LENGTH", Collection::FullRequestLength),
    ("GEO", Collection::Geo),
    ("HIGHEST_SEVERITY", Collection::HighestSeverity),
    ("INBOUND_DATA_ERROR", Collection::InboundDataError),
    ("MATCHED_VAR", Collection::MatchedVar),
    ("MATCHED_VAR_NAME", Collection::MatchedVarName),
    ("MATCHED_VARS", Collection::MatchedVars),
    ("MATCHED_VARS_NAMES", Collection::MatchedVarsNames),
    ("MODSEC_BUILD", Collection::ModsecBuild),
    (
        "MULTIPART_BOUNDARY_QUOTED",
        Collection::MultipartBoundaryQuoted,
    ),
    (
        "MULTIPART_BOUNDARY_WHITESPACE",
        Collection::MultipartBoundaryWhitespace,
    ),
    ("MULTIPART_CRLF_LF_LINES", Collection::MultipartCrlfLfLines),
    ("MULTIPART_DATA_AFTER", Collection::MultipartDataAfter),
    ("MULTIPART_DATA_BEFORE", Collection::MultipartDataBefore),
    (
        "MULTIPART_FILE_LIMIT_EXCEEDED",
        Collection::MultipartFileLimitExceeded,
    ),
    ("MULTIPART_FILENAME", Collection::MultipartFilename),
    (
        "MULTIPART_HEADER_FOLDING",
        Collection::MultipartHeaderFolding,
    ),
    (
        "MULTIPART_INVALID_HEADER_FOLDING",
        Collection::MultipartInvalidHeaderFolding,
    ),
    ("MULTIPART_INVALID_PART", Collection::MultipartInvalidPart),
    (
        "MULTIPART_INVALID_QUOTING",
        Collection::MultipartInvalidQuoting,
    ),
    ("MULTIPART_LF_LINE", Collection::MultipartLfLine),
    (
        "MULTIPART_MISSING_SEMICOLON",
        Collection::MultipartMissingSemicolon,
    ),
    ("MULTIPART_NAME", Collection::MultipartName),
    ("MULTIPART_PART_HEADERS", Collection::MultipartPartHeaders),
    ("MULTIPART_STRICT_ERROR", Collection::MultipartStrictError),
    (
        "MULTIPART_UNMATCHED_BOUNDARY",
        Collection::MultipartUnmatchedBoundary,
    ),
    ("OUTBOUND_DATA_ERROR", Collection::OutboundDataError),
    ("PATH_INFO", Collection::PathInfo),
    ("QUERY_STRING", Collection::QueryString),
    ("REMOTE_ADDR", Collection::RemoteAddr),
    ("REMOTE_HOST", Collection::RemoteHost),
    ("REMOTE_PORT", Collection::RemotePort),
    ("REMOTE_USER", Collection::RemoteUser),
    ("REQBODY_ERROR", Collection::ReqbodyError),
    ("REQBODY_ERROR_MSG", Collection::ReqbodyErrorMsg),
    ("REQBODY_PROCESSOR", Collection::ReqbodyProcessor),
    ("REQBODY_PROCESSOR_ERROR", Collection::ReqbodyProcessorError),
    ("REQUEST_BASENAME", Collection::RequestBasename),
    ("REQUEST_BODY", Collection::RequestBody),
    ("REQUEST_BODY_LENGTH", Collection::RequestBodyLength),
    ("REQUEST_COOKIES", Collection::RequestCookies),
    ("REQUEST_COOKIES_NAMES", Collection::RequestCookiesNames),
    ("REQUEST_FILENAME", Collection::RequestFilename),
    ("REQUEST_HEADERS", Collection::RequestHeaders),
    ("REQUEST_HEADERS_NAMES", Collection::RequestHeadersNames),
    ("REQUEST_LINE", Collection::RequestLine),
    ("REQUEST_METHOD", Collection::RequestMethod),
    ("REQUEST_PROTOCOL", Collection::RequestProtocol),
    ("REQUEST_URI", Collection::RequestUri),
    ("REQUEST_URI_RAW", Collection::RequestUriRaw),
    ("RESPONSE_BODY", Collection::ResponseBody),
    ("RESPONSE_CONTENT_LENGTH", Collection::ResponseContentLength),
    ("RESPONSE_CONTENT_TYPE", Collection::ResponseContentType),
    ("RESPONSE_HEADERS", Collection::ResponseHeaders),
    ("RESPONSE_HEADERS_NAMES", Collection::ResponseHeadersNames),
    ("RESPONSE_PROTOCOL", Collection::ResponseProtocol),
    ("RESPONSE_STATUS", Collection::ResponseStatus),
    ("RULE", Collection::Rule),
    ("SERVER_ADDR", Collection::ServerAddr),
    ("SERVER_NAME", Collection::ServerName),
    ("SERVER_PORT", Collection::ServerPort),
    ("SESSIONID", Collection::SessionId),
    ("STATUS_LINE", Collection::StatusLine),
    ("TIME", Collection::Time),
    ("TIME_DAY", Collection::TimeDay),
    ("TIME_EPOCH", Collection::TimeEpoch),
    ("TIME_HOUR", Collection::TimeHour),
    ("TIME_MIN", Collection::TimeMin),
    ("TIME_MON", Collection::TimeMon),
    ("TIME_SEC", Collection::TimeSec),
    ("TIME_WDAY", Collection::TimeWday),
    ("TIME_YEAR", Collection::TimeYear),
    ("TX", Collection::Tx),
    ("UNIQUE_ID", Collection::UniqueId),
    ("URLENCODED_ERROR", Collection::UrlencodedError),
    ("USERID", Collection::Userid),
    ("WEBAPPID", Collection::Webappid),
    ("XML", Collection::Xml),
    ("IP", Collection::Ip),
    ("GLOBAL", Collection::Global),
    ("RESOURCE", Collection::Resource),
    ("SESSION", Collection::Session),
    ("USER", Collection::User),
];

impl Collection {
    /// The collection named `name` (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        COLLECTION_NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, c)| *c)
    }

    /// The collection's SecLang name (`REQUEST_HEADERS`).
    pub fn name(self) -> &'static str {
        COLLECTION_NAMES
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("UNKNOWN", |(name, _)| name)
    }
}

/// A rule's operator: `@rx …`, `!@eq 0`, or a bare regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// `!`: the rule matches when the operator does not.
    pub negated: bool,
    /// Which operator.
    pub kind: OperatorKind,
    /// Its argument, with `%{…}` macros still in it.
    pub argument: String,
}

/// Operators SecLang knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum OperatorKind {
    Rx,
    Pm,
    PmFromFile,
    Pmf,
    StrEq,
    StrMatch,
    Contains,
    ContainsWord,
    BeginsWith,
    EndsWith,
    Within,
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
    IpMatch,
    IpMatchFromFile,
    ValidateByteRange,
    ValidateUrlEncoding,
    ValidateUtf8Encoding,
    DetectSqli,
    DetectXss,
    UnconditionalMatch,
    NoMatch,
    Rbl,
    GeoLookup,
    VerifyCc,
    VerifyCpf,
    VerifySsn,
    ValidateDtd,
    ValidateSchema,
    InspectFile,
    FuzzyHash,
    GsbLookup,
    ValidateHash,
    RxGlobal,
}

impl OperatorKind {
    /// The operator named `name` (without `@`, case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        use OperatorKind::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "rx" => Rx,
            "rxglobal" => RxGlobal,
            "pm" => Pm,
            "pmfromfile" => PmFromFile,
            "pmf" => Pmf,
            "streq" => StrEq,
            "strmatch" => StrMatch,
            "contains" => Contains,
            "containsword" => ContainsWord,
            "beginswith" => BeginsWith,
            "endswith" => EndsWith,
            "within" => Within,
            "eq" => Eq,
            "ge" => Ge,
            "gt" => Gt,
            "le" => Le,
            "lt" => Lt,
            "ipmatch" => IpMatch,
            "ipmatchfromfile" | "ipmatchf" => IpMatchFromFile,
            "validatebyterange" => ValidateByteRange,
            "validateurlencoding" => ValidateUrlEncoding,
            "validateutf8encoding" => ValidateUtf8Encoding,
            "detectsqli" => DetectSqli,
            "detectxss" => DetectXss,
            "unconditionalmatch" => UnconditionalMatch,
            "nomatch" => NoMatch,
            "rbl" => Rbl,
            "geolookup" => GeoLookup,
            "verifycc" => VerifyCc,
            "verifycpf" => VerifyCpf,
            "verifyssn" => VerifySsn,
            "validatedtd" => ValidateDtd,
            "validateschema" => ValidateSchema,
            "inspectfile" => InspectFile,
            "fuzzyhash" => FuzzyHash,
            "gsblookup" => GsbLookup,
            "validatehash" => ValidateHash,
            _ => return None,
        })
    }
}

/// Transformations applied to a value before the operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Transformation {
    None,
    Lowercase,
    Uppercase,
    UrlDecode,
    UrlDecodeUni,
    UrlEncode,
    HtmlEntityDecode,
    JsDecode,
    CssDecode,
    CmdLine,
    CompressWhitespace,
    RemoveWhitespace,
    RemoveNulls,
    ReplaceNulls,
    ReplaceComments,
    RemoveComments,
    RemoveCommentsChar,
    NormalizePath,
    NormalizePathWin,
    Utf8ToUnicode,
    Base64Decode,
    Base64DecodeExt,
    Base64Encode,
    HexDecode,
    HexEncode,
    Length,
    Sha1,
    Md5,
    Trim,
    TrimLeft,
    TrimRight,
    EscapeSeqDecode,
    SqlHexDecode,
    ParityEven7bit,
    ParityOdd7bit,
    ParityZero7bit,
}

impl Transformation {
    /// The transformation named `name` (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        use Transformation::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "none" => None,
            "lowercase" => Lowercase,
            "uppercase" => Uppercase,
            "urldecode" => UrlDecode,
            "urldecodeuni" => UrlDecodeUni,
            "urlencode" => UrlEncode,
            "htmlentitydecode" => HtmlEntityDecode,
            "jsdecode" => JsDecode,
            "cssdecode" => CssDecode,
            "cmdline" => CmdLine,
            "compresswhitespace" => CompressWhitespace,
            "removewhitespace" => RemoveWhitespace,
            "removenulls" => RemoveNulls,
            "replacenulls" => ReplaceNulls,
            "replacecomments" => ReplaceComments,
            "removecomments" => RemoveComments,
            "removecommentschar" => RemoveCommentsChar,
            "normalizepath" | "normalisepath" => NormalizePath,
            "normalizepathwin" | "normalisepathwin" => NormalizePathWin,
            "utf8tounicode" => Utf8ToUnicode,
            "base64decode" => Base64Decode,
            "base64decodeext" => Base64DecodeExt,
            "base64encode" => Base64Encode,
            "hexdecode" => HexDecode,
            "hexencode" => HexEncode,
            "length" => Length,
            "sha1" => Sha1,
            "md5" => Md5,
            "trim" => Trim,
            "trimleft" => TrimLeft,
            "trimright" => TrimRight,
            "escapeseqdecode" => EscapeSeqDecode,
            "sqlhexdecode" => SqlHexDecode,
            "parityeven7bit" => ParityEven7bit,
            "parityodd7bit" => ParityOdd7bit,
            "parityzero7bit" => ParityZero7bit,
            _ => return Option::None,
        })
    }
}

/// How `setvar` changes a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetVarOp {
    /// `name=value`.
    Set(String),
    /// `name=+value`.
    Add(String),
    /// `name=-value`.
    Subtract(String),
    /// `!name`.
    Delete,
}

/// A `ctl:` action: a change to the engine for this transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctl {
    /// `ruleEngine=On|Off|DetectionOnly`.
    RuleEngine(String),
    /// `ruleRemoveById=…`.
    RuleRemoveById(Vec<(u64, u64)>),
    /// `ruleRemoveByTag=…`.
    RuleRemoveByTag(String),
    /// `ruleRemoveTargetById=id;VARIABLE`.
    RuleRemoveTargetById(Vec<(u64, u64)>, Vec<Variable>),
    /// `ruleRemoveTargetByTag=tag;VARIABLE`.
    RuleRemoveTargetByTag(String, Vec<Variable>),
    /// `requestBodyProcessor=URLENCODED|MULTIPART|XML|JSON`.
    RequestBodyProcessor(String),
    /// `requestBodyAccess=On|Off`.
    RequestBodyAccess(bool),
    /// `forceRequestBodyVariable=On|Off`.
    ForceRequestBodyVariable(bool),
    /// `auditEngine=…`, `auditLogParts=…` and other settings that only concern logging.
    Logging(String, String),
    /// `requestBodyLimit=…` and other numeric limits.
    Limit(String, u64),
}

/// One action of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `id:N`.
    Id(u64),
    /// `phase:1…5` (`request` = 2, `response` = 4, `logging` = 5).
    Phase(u8),
    /// `block`: what `SecDefaultAction` says for disruption.
    Block,
    /// `deny`.
    Deny,
    /// `drop`.
    Drop,
    /// `pass`.
    Pass,
    /// `allow` (optionally `:phase` or `:request`).
    Allow(Option<String>),
    /// `redirect:URL`.
    Redirect(String),
    /// `status:N`.
    Status(u16),
    /// `capture`: regex groups go to TX.0–TX.9.
    Capture,
    /// `chain`.
    Chain,
    /// `multiMatch`: the operator runs after every transformation.
    MultiMatch,
    /// `log`.
    Log,
    /// `nolog`.
    NoLog,
    /// `auditlog`.
    AuditLog,
    /// `noauditlog`.
    NoAuditLog,
    /// `t:name`.
    Transform(Transformation),
    /// `msg:'…'` (macros expanded at match time).
    Msg(String),
    /// `logdata:'…'`.
    LogData(String),
    /// `tag:'…'`.
    Tag(String),
    /// `severity:…` as 0 (EMERGENCY) to 7 (DEBUG).
    Severity(u8),
    /// `ver:'…'`.
    Ver(String),
    /// `rev`, `maturity`, `accuracy` and other metadata kept for logs.
    Meta(String, String),
    /// `setvar:collection.name…`.
    SetVar {
        /// `tx`, `ip`, … (lower case).
        collection: String,
        /// The variable's name (may contain macros).
        name: String,
        /// The change.
        op: SetVarOp,
    },
    /// `expirevar:collection.name=seconds`.
    ExpireVar(String, String),
    /// `initcol:collection=key`.
    InitCol(String, String),
    /// `setenv:name=value`.
    SetEnv(String, String),
    /// `skip:N`.
    Skip(u32),
    /// `skipAfter:MARKER`.
    SkipAfter(String),
    /// `ctl:…`.
    Ctl(Ctl),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_round_trip() {
        for (name, collection) in COLLECTION_NAMES {
            assert_eq!(collection.name(), *name);
            assert_eq!(
                Collection::parse(&name.to_ascii_lowercase()),
                Some(*collection)
            );
        }
        assert_eq!(Collection::parse("NOT_A_COLLECTION"), None);
    }
}
