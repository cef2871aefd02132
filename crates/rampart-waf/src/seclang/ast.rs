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

impl Collection {
    /// The collection named `name` (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        use Collection::*;
        Some(match name.to_ascii_uppercase().as_str() {
            "ARGS" => Args,
            "ARGS_GET" => ArgsGet,
            "ARGS_POST" => ArgsPost,
            "ARGS_NAMES" => ArgsNames,
            "ARGS_GET_NAMES" => ArgsGetNames,
            "ARGS_POST_NAMES" => ArgsPostNames,
            "ARGS_COMBINED_SIZE" => ArgsCombinedSize,
            "AUTH_TYPE" => AuthType,
            "DURATION" => Duration,
            "ENV" => Env,
            "FILES" => Files,
            "FILES_COMBINED_SIZE" => FilesCombinedSize,
            "FILES_NAMES" => FilesNames,
            "FILES_SIZES" => FilesSizes,
            "FILES_TMPNAMES" => FilesTmpNames,
            "FILES_TMP_CONTENT" => FilesTmpContent,
            "FULL_REQUEST" => FullRequest,
            "FULL_REQUEST_LENGTH" => FullRequestLength,
            "GEO" => Geo,
            "HIGHEST_SEVERITY" => HighestSeverity,
            "INBOUND_DATA_ERROR" => InboundDataError,
            "MATCHED_VAR" => MatchedVar,
            "MATCHED_VAR_NAME" => MatchedVarName,
            "MATCHED_VARS" => MatchedVars,
            "MATCHED_VARS_NAMES" => MatchedVarsNames,
            "MODSEC_BUILD" => ModsecBuild,
            "MULTIPART_BOUNDARY_QUOTED" => MultipartBoundaryQuoted,
            "MULTIPART_BOUNDARY_WHITESPACE" => MultipartBoundaryWhitespace,
            "MULTIPART_CRLF_LF_LINES" => MultipartCrlfLfLines,
            "MULTIPART_DATA_AFTER" => MultipartDataAfter,
            "MULTIPART_DATA_BEFORE" => MultipartDataBefore,
            "MULTIPART_FILE_LIMIT_EXCEEDED" => MultipartFileLimitExceeded,
            "MULTIPART_FILENAME" => MultipartFilename,
            "MULTIPART_HEADER_FOLDING" => MultipartHeaderFolding,
            "MULTIPART_INVALID_HEADER_FOLDING" => MultipartInvalidHeaderFolding,
            "MULTIPART_INVALID_PART" => MultipartInvalidPart,
            "MULTIPART_INVALID_QUOTING" => MultipartInvalidQuoting,
            "MULTIPART_LF_LINE" => MultipartLfLine,
            "MULTIPART_MISSING_SEMICOLON" => MultipartMissingSemicolon,
            "MULTIPART_NAME" => MultipartName,
            "MULTIPART_PART_HEADERS" => MultipartPartHeaders,
            "MULTIPART_STRICT_ERROR" => MultipartStrictError,
            "MULTIPART_UNMATCHED_BOUNDARY" => MultipartUnmatchedBoundary,
            "OUTBOUND_DATA_ERROR" => OutboundDataError,
            "PATH_INFO" => PathInfo,
            "QUERY_STRING" => QueryString,
            "REMOTE_ADDR" => RemoteAddr,
            "REMOTE_HOST" => RemoteHost,
            "REMOTE_PORT" => RemotePort,
            "REMOTE_USER" => RemoteUser,
            "REQBODY_ERROR" => ReqbodyError,
            "REQBODY_ERROR_MSG" => ReqbodyErrorMsg,
            "REQBODY_PROCESSOR" => ReqbodyProcessor,
            "REQBODY_PROCESSOR_ERROR" => ReqbodyProcessorError,
            "REQUEST_BASENAME" => RequestBasename,
            "REQUEST_BODY" => RequestBody,
            "REQUEST_BODY_LENGTH" => RequestBodyLength,
            "REQUEST_COOKIES" => RequestCookies,
            "REQUEST_COOKIES_NAMES" => RequestCookiesNames,
            "REQUEST_FILENAME" => RequestFilename,
            "REQUEST_HEADERS" => RequestHeaders,
            "REQUEST_HEADERS_NAMES" => RequestHeadersNames,
            "REQUEST_LINE" => RequestLine,
            "REQUEST_METHOD" => RequestMethod,
            "REQUEST_PROTOCOL" => RequestProtocol,
            "REQUEST_URI" => RequestUri,
            "REQUEST_URI_RAW" => RequestUriRaw,
            "RESPONSE_BODY" => ResponseBody,
            "RESPONSE_CONTENT_LENGTH" => ResponseContentLength,
            "RESPONSE_CONTENT_TYPE" => ResponseContentType,
            "RESPONSE_HEADERS" => ResponseHeaders,
            "RESPONSE_HEADERS_NAMES" => ResponseHeadersNames,
            "RESPONSE_PROTOCOL" => ResponseProtocol,
            "RESPONSE_STATUS" => ResponseStatus,
            "RULE" => Rule,
            "SERVER_ADDR" => ServerAddr,
            "SERVER_NAME" => ServerName,
            "SERVER_PORT" => ServerPort,
            "SESSIONID" => SessionId,
            "STATUS_LINE" => StatusLine,
            "TIME" => Time,
            "TIME_DAY" => TimeDay,
            "TIME_EPOCH" => TimeEpoch,
            "TIME_HOUR" => TimeHour,
            "TIME_MIN" => TimeMin,
            "TIME_MON" => TimeMon,
            "TIME_SEC" => TimeSec,
            "TIME_WDAY" => TimeWday,
            "TIME_YEAR" => TimeYear,
            "TX" => Tx,
            "UNIQUE_ID" => UniqueId,
            "URLENCODED_ERROR" => UrlencodedError,
            "USERID" => Userid,
            "WEBAPPID" => Webappid,
            "XML" => Xml,
            "IP" => Ip,
            "GLOBAL" => Global,
            "RESOURCE" => Resource,
            "SESSION" => Session,
            "USER" => User,
            _ => return None,
        })
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
