//! Request body processors: urlencoded, multipart, JSON, XML (text only), with limits.
//!
//! Each processor reads a body the way the applications behind the WAF would, and where
//! they could read it differently (a boundary quoted or spelled twice, a part header
//! folded, a JSON key repeated, a charset that is not ASCII-compatible) it either
//! inspects every reading or refuses the body: a [`BodyError`] is never a body let through
//! with less inspected than the application will see.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::seclang::Collection;

/// Most arguments taken from the query or from one body; more is a [`BodyError`].
pub const MAX_ARGS: usize = 4096;
/// Deepest JSON nesting followed.
pub const MAX_JSON_DEPTH: usize = 64;
/// Most multipart parts.
pub const MAX_PARTS: usize = 1024;
/// Longest multipart boundary (RFC 2046).
const MAX_BOUNDARY: usize = 70;
/// Most headers in one multipart part.
const MAX_PART_HEADERS: usize = 32;

/// The most bytes (names and values) a processor may produce from a body of `len` bytes:
/// names repeat (a JSON path per value, a part's name per header line), so this bounds
/// what a small body can make the WAF allocate.
fn expansion_limit(len: usize) -> usize {
    len.saturating_mul(8).saturating_add(64 * 1024)
}

/// Why the query or a body was not inspected in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More arguments (or parts) than the WAF inspects.
    #[error("more than {limit} {what}")]
    TooManyArguments {
        /// What there were too many of (`"query arguments"`, `"multipart parts"`, …).
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The body does not parse as its type says, or it could be read more than one way.
    #[error("{0}")]
    Unparsed(String),
}

fn unparsed(message: impl Into<String>) -> BodyError {
    BodyError::Unparsed(message.into())
}

/// What a body processor found.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Arguments (name, value).
    pub args: Vec<(String, Vec<u8>)>,
    /// Uploaded files (field name, file name).
    pub files: Vec<(String, Vec<u8>)>,
    /// Uploaded files' sizes in bytes (field name, size).
    pub file_sizes: Vec<(String, usize)>,
    /// Multipart part headers (part name, header line).
    pub part_headers: Vec<(String, Vec<u8>)>,
    /// XML content (`/*`) and attribute values (`//@*`).
    pub xml: Vec<(String, Vec<u8>)>,
    /// Multipart flags (`MULTIPART_DATA_BEFORE` and the like).
    pub flags: Vec<(Collection, u8)>,
}

// ---------------------------------------------------------------------------------------
// Header parameters (Content-Type, Content-Disposition)

/// One `name=value` parameter of a header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The name, lower case.
    pub name: String,
    /// The name was written in lower case, right against its `=`: the spelling every
    /// parser reads.
    pub plain: bool,
    /// The value, unquoted.
    pub value: String,
    /// The value was a quoted string.
    pub quoted: bool,
}

/// A media type: `type/subtype` in lower case, and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`, lower case.
    pub essence: String,
    /// The parameters in order.
    pub params: Vec<Param>,
}

impl MediaType {
    /// The value of parameter `name` (lower case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    }
}

/// The media type's `type/subtype`, lower case, read leniently (for choosing a processor).
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a `Content-Type` value strictly: a parameter without a value, an unterminated
/// quote, text after a quoted value or a parameter given twice is an error.
pub fn parse_media_type(value: &str) -> Result<MediaType, BodyError> {
    let (head, rest) = match value.find(';') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    let essence = head.trim().to_ascii_lowercase();
    let valid = essence.split_once('/').is_some_and(|(t, s)| {
        !t.is_empty() && !s.is_empty() && t.bytes().chain(s.bytes()).all(is_token_byte)
    });
    if !valid {
        return Err(unparsed(format!(
            "Content-Type {value:?} is not a media type"
        )));
    }
    let params = parse_params(rest).map_err(|e| unparsed(format!("Content-Type: {e}")))?;
    Ok(MediaType { essence, params })
}

/// Parses `; name=value; name="quoted \" value"` (after a media type or a disposition
/// type). Names are case-insensitive and may have whitespace around their `=`; a name
/// given twice is an error, as is anything that is not a parameter.
fn parse_params(input: &str) -> Result<Vec<Param>, String> {
    let bytes = input.as_bytes();
    let mut params: Vec<Param> = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= bytes.len() {
            break;
        }
        if bytes[i] == b';' {
            i += 1;
            continue;
        }
        let name_start = i;
        while i < bytes.len() && is_token_byte(bytes[i]) {
            i += 1;
        }
        let raw_name = &input[name_start..i];
        if raw_name.is_empty() {
            return Err(format!("unexpected {:?}", &input[i..]));
        }
        let before_eq = i;
        skip_ws(&mut i);
        if bytes.get(i) != Some(&b'=') {
            return Err(format!("parameter {raw_name:?} without a value"));
        }
        let mut spaced = i != before_eq;
        i += 1;
        let after_eq = i;
        skip_ws(&mut i);
        spaced |= i != after_eq;
        let (value, quoted) = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let mut value = String::new();
            let mut closed = false;
            let mut chars = input[i..].char_indices();
            while let Some((k, c)) = chars.next() {
                match c {
                    '"' => {
                        i += k + 1;
                        closed = true;
                        break;
                    }
                    // Only `\"` and `\\` are escapes, as browsers, Python's frameworks
                    // and ModSecurity read them: other backslashes (Windows paths in
                    // file names) stay.
                    '\\' => match input[i + k + 1..].chars().next() {
                        Some(escaped @ ('"' | '\\')) => {
                            value.push(escaped);
                            chars.next();
                        }
                        _ => value.push('\\'),
                    },
                    other => value.push(other),
                }
            }
            if !closed {
                return Err(format!(
                    "parameter {raw_name:?}: unterminated quoted string"
                ));
            }
            skip_ws(&mut i);
            if i < bytes.len() && bytes[i] != b';' {
                return Err(format!(
                    "parameter {raw_name:?}: text after its quoted value"
                ));
            }
            (value, true)
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b';' {
                i += 1;
            }
            let value = input[start..i].trim_end_matches([' ', '\t']);
            if value.is_empty() || value.bytes().any(|b| matches!(b, b'"' | b' ' | b'\t')) {
                return Err(format!("parameter {raw_name:?}: value {value:?}"));
            }
            (value.to_string(), false)
        };
        let name = raw_name.to_ascii_lowercase();
        if params.iter().any(|p| p.name == name) {
            return Err(format!("parameter {name:?} given twice"));
        }
        params.push(Param {
            plain: !spaced && name == raw_name,
            name,
            value,
            quoted,
        });
    }
    Ok(params)
}

/// Charsets whose bytes for ASCII characters are ASCII's: a body declared in any other
/// (UTF-7, UTF-16, EBCDIC's `ibm037`, …) would read differently to an application that
/// decodes it, so it is not parsed.
fn ascii_compatible(charset: &str) -> bool {
    [
        "utf-8",
        "utf8",
        "us-ascii",
        "ascii",
        "iso-8859-1",
        "iso-8859-15",
        "latin1",
        "windows-1252",
    ]
    .iter()
    .any(|c| charset.trim().eq_ignore_ascii_case(c))
}

/// A body in `charset` can be parsed byte-wise.
pub fn check_charset(media: &MediaType) -> Result<(), BodyError> {
    match media.param("charset") {
        Some(charset) if !ascii_compatible(charset) => {
            Err(unparsed(format!("body declared in charset {charset:?}")))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// application/x-www-form-urlencoded (and query strings)

/// `a=1&b=2` with `+` and `%XX` decoded; more than [`MAX_ARGS`] arguments is an error.
pub fn parse_urlencoded(
    body: &[u8],
    what: &'static str,
) -> Result<Vec<(String, Vec<u8>)>, BodyError> {
    let mut out = Vec::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        if out.len() == MAX_ARGS {
            return Err(BodyError::TooManyArguments {
                what,
                limit: MAX_ARGS,
            });
        }
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        out.push((
            String::from_utf8_lossy(&super::transform::url_decode(k, false)).into_owned(),
            super::transform::url_decode(v, false),
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// JSON

/// Flattens JSON into `json.a.b` / `json.list.0` arguments, straight from the parser: a
/// key given twice yields both values (applications differ on which one they keep). A
/// leading UTF-8 byte order mark is skipped; nesting deeper than [`MAX_JSON_DEPTH`], more
/// than [`MAX_ARGS`] values, or anything serde_json refuses is an error.
pub fn parse_json(body: &[u8]) -> Result<Parsed, BodyError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut sink = JsonSink {
        out: Vec::new(),
        too_many: false,
        bytes_left: expansion_limit(body.len()),
    };
    let mut name = String::from("json");
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let result = JsonValue {
        sink: &mut sink,
        name: &mut name,
        depth: 0,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    match result {
        Ok(()) => Ok(Parsed {
            args: sink.out,
            ..Default::default()
        }),
        Err(_) if sink.bytes_left == 0 => Err(unparsed(format!(
            "JSON names and values past {} bytes",
            expansion_limit(body.len())
        ))),
        Err(_) if sink.too_many => Err(BodyError::TooManyArguments {
            what: "JSON values",
            limit: MAX_ARGS,
        }),
        Err(e) => Err(unparsed(format!("JSON: {e}"))),
    }
}

struct JsonSink {
    out: Vec<(String, Vec<u8>)>,
    too_many: bool,
    /// What the names and values may still take ([`expansion_limit`]); 0 once exceeded.
    bytes_left: usize,
}

impl JsonSink {
    fn push<E: de::Error>(&mut self, name: &str, value: Vec<u8>) -> Result<(), E> {
        if self.out.len() == MAX_ARGS {
            self.too_many = true;
            return Err(E::custom("too many values"));
        }
        match self.bytes_left.checked_sub(name.len() + value.len()) {
            Some(left) if left > 0 => self.bytes_left = left,
            _ => {
                self.bytes_left = 0;
                return Err(E::custom("names and values too large"));
            }
        }
        self.out.push((name.to_string(), value));
        Ok(())
    }
}

/// One JSON value, named `name`, `depth` levels down.
struct JsonValue<'s> {
    sink: &'s mut JsonSink,
    name: &'s mut String,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for JsonValue<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonValue<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.sink.push(self.name, v.to_string().into_bytes())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.sink.push(self.name, v.to_string().into_bytes())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.sink.push(self.name, v.to_string().into_bytes())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.sink.push(self.name, v.to_string().into_bytes())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.sink.push(self.name, v.as_bytes().to_vec())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.sink.push(self.name, Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(de::Error::custom(format_args!(
                "nested more than {MAX_JSON_DEPTH} deep"
            )));
        }
        let len = self.name.len();
        for index in 0usize.. {
            self.name.push('.');
            self.name.push_str(itoa::Buffer::new().format(index));
            let more = seq.next_element_seed(JsonValue {
                sink: self.sink,
                name: self.name,
                depth: self.depth + 1,
            })?;
            self.name.truncate(len);
            if more.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(de::Error::custom(format_args!(
                "nested more than {MAX_JSON_DEPTH} deep"
            )));
        }
        let len = self.name.len();
        while let Some(key) = map.next_key::<String>()? {
            self.name.push('.');
            self.name.push_str(&key);
            map.next_value_seed(JsonValue {
                sink: self.sink,
                name: self.name,
                depth: self.depth + 1,
            })?;
            self.name.truncate(len);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// XML

/// An XML document as `XML:/*` (its text content) and `XML://@*` (each attribute
/// value) see it. A document in an encoding that is not ASCII-compatible (by its byte
/// order mark or its declaration) or with more than [`MAX_ARGS`] attributes is an error.
pub fn xml_entries(body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, BodyError> {
    check_xml_encoding(body)?;
    let mut text = Vec::with_capacity(body.len());
    let mut attributes = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'<' {
            // A tag: collect quoted attribute values up to its end.
            i += 1;
            while i < body.len() && body[i] != b'>' {
                if body[i] == b'"' || body[i] == b'\'' {
                    let quote = body[i];
                    let start = i + 1;
                    i = start;
                    while i < body.len() && body[i] != quote {
                        i += 1;
                    }
                    if attributes.len() == MAX_ARGS {
                        return Err(BodyError::TooManyArguments {
                            what: "XML attributes",
                            limit: MAX_ARGS,
                        });
                    }
                    attributes.push(body[start..i.min(body.len())].to_vec());
                }
                i += 1;
            }
            i += 1;
        } else {
            text.push(body[i]);
            i += 1;
        }
    }
    // As an XML parser would, resolve character and predefined entity references.
    let decode =
        |v: Vec<u8>| super::transform::apply(crate::seclang::Transformation::HtmlEntityDecode, &v);
    let mut out = vec![("/*".to_string(), decode(text))];
    out.extend(
        attributes
            .into_iter()
            .map(|a| ("//@*".to_string(), decode(a))),
    );
    Ok(out)
}

/// UTF-16 and UTF-32 documents (a byte order mark, or NULs in the first bytes) and
/// declared encodings that are not ASCII-compatible are refused.
fn check_xml_encoding(body: &[u8]) -> Result<(), BodyError> {
    if body.starts_with(b"\xFE\xFF")
        || body.starts_with(b"\xFF\xFE")
        || body.iter().take(4).any(|b| *b == 0)
    {
        return Err(unparsed("XML in UTF-16 or UTF-32"));
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let Some(declaration) = body.strip_prefix(b"<?xml") else {
        return Ok(());
    };
    let end = memchr::memmem::find(declaration, b"?>").unwrap_or(declaration.len());
    let declaration = String::from_utf8_lossy(&declaration[..end]);
    let Some(at) = declaration.find("encoding") else {
        return Ok(());
    };
    let rest = declaration[at + "encoding".len()..].trim_start();
    let encoding = rest
        .strip_prefix('=')
        .map(str::trim_start)
        .and_then(|r| {
            let quote = r.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            r[1..].split(quote).next()
        })
        .ok_or_else(|| unparsed("XML declaration with a malformed encoding"))?;
    if ascii_compatible(encoding) {
        Ok(())
    } else {
        Err(unparsed(format!("XML declared in encoding {encoding:?}")))
    }
}

// ---------------------------------------------------------------------------------------
// multipart/form-data

/// The line breaks a multipart body uses around its delimiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineBreak {
    CrLf,
    Lf,
}

impl LineBreak {
    fn bytes(self) -> &'static [u8] {
        match self {
            LineBreak::CrLf => b"\r\n",
            LineBreak::Lf => b"\n",
        }
    }
}

/// A delimiter line found in the body.
struct Delimiter {
    /// Where its preceding line break starts (the end of the part before it).
    start: usize,
    /// Where the line after it starts (after the closing one: where its epilogue starts).
    end: usize,
    /// `--boundary--`.
    close: bool,
}

/// The boundary of a `multipart/form-data` type: exactly one `boundary` parameter (any
/// case, quoted or not) of 1 to 70 of RFC 2046's characters.
fn boundary_of(media: &MediaType) -> Result<&str, BodyError> {
    let boundary = media
        .param("boundary")
        .ok_or_else(|| unparsed("multipart without a boundary"))?;
    let valid = !boundary.is_empty()
        && boundary.len() <= MAX_BOUNDARY
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b));
    if valid {
        Ok(boundary)
    } else {
        Err(unparsed(format!(
            "multipart boundary {boundary:?} is invalid"
        )))
    }
}

/// Finds the delimiter lines: `--boundary` at the start of a line, then optional spaces
/// and the line break, or `--` for the closing one. Every delimiter must use the same
/// line break (CRLF, or LF throughout); a bare CR before one, a mix of breaks, other text
/// after `--boundary` or the boundary again after the closing delimiter are errors, since
/// parsers split such bodies differently.
fn delimiters(
    body: &[u8],
    boundary: &str,
) -> Result<(Vec<Delimiter>, Option<LineBreak>), BodyError> {
    let dash_boundary = format!("--{boundary}");
    let mut found: Vec<Delimiter> = Vec::new();
    let mut style: Option<LineBreak> = None;
    for at in memchr::memmem::find_iter(body, dash_boundary.as_bytes()) {
        let start = match at.checked_sub(1).map(|i| body[i]) {
            None => at,
            Some(b'\n') if at >= 2 && body[at - 2] == b'\r' => {
                agree(LineBreak::CrLf, &mut style)?;
                at - 2
            }
            Some(b'\n') => {
                agree(LineBreak::Lf, &mut style)?;
                at - 1
            }
            Some(b'\r') => return Err(unparsed("multipart delimiter after a bare CR")),
            // Within a line: content.
            Some(_) => continue,
        };
        if found.last().is_some_and(|d| d.close) {
            return Err(unparsed("multipart boundary after the closing delimiter"));
        }
        // The parts, and the closing delimiter.
        if found.len() > MAX_PARTS {
            return Err(BodyError::TooManyArguments {
                what: "multipart parts",
                limit: MAX_PARTS,
            });
        }
        let mut i = at + dash_boundary.len();
        if body[i..].starts_with(b"--") {
            // The rest of the closing line is ignored, as parsers do.
            let end = memchr::memchr(b'\n', &body[i..]).map_or(body.len(), |n| i + n + 1);
            found.push(Delimiter {
                start,
                end,
                close: true,
            });
            continue;
        }
        while i < body.len() && matches!(body[i], b' ' | b'\t') {
            i += 1;
        }
        let seen = if body[i..].starts_with(b"\r\n") {
            LineBreak::CrLf
        } else if body[i..].starts_with(b"\n") {
            LineBreak::Lf
        } else {
            return Err(unparsed("multipart boundary followed by other text"));
        };
        agree(seen, &mut style)?;
        found.push(Delimiter {
            start,
            end: i + seen.bytes().len(),
            close: false,
        });
    }
    Ok((found, style))
}

/// Every delimiter uses the line break the first one did.
fn agree(seen: LineBreak, style: &mut Option<LineBreak>) -> Result<(), BodyError> {
    match style {
        Some(s) if *s != seen => Err(unparsed("multipart delimiters with mixed line breaks")),
        _ => {
            *style = Some(seen);
            Ok(())
        }
    }
}

/// What a part's `Content-Disposition` says.
#[derive(Default)]
struct Disposition {
    name: Option<String>,
    filename: Option<String>,
    /// The file name was given in a spelling some parsers do not read (another case,
    /// spaces around `=`, only `filename*`): the part may be a field to the application.
    filename_unusual: bool,
}

/// Decodes an RFC 5987 / 2231 extended value: `charset'language'percent-encoded`.
fn decode_extended(value: &str) -> Result<String, String> {
    let mut pieces = value.splitn(3, '\'');
    let (Some(charset), Some(_language), Some(encoded)) =
        (pieces.next(), pieces.next(), pieces.next())
    else {
        return Err(format!("extended parameter value {value:?}"));
    };
    let mut bytes = Vec::with_capacity(encoded.len());
    let raw = encoded.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("extended parameter value {value:?}"))?;
            bytes.push(hex);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).map_err(|_| format!("extended parameter {value:?}: not UTF-8"))
    } else if charset.eq_ignore_ascii_case("iso-8859-1")
        || (charset.eq_ignore_ascii_case("us-ascii") && bytes.is_ascii())
    {
        Ok(bytes.into_iter().map(char::from).collect())
    } else {
        Err(format!("extended parameter in charset {charset:?}"))
    }
}

/// Reads a `Content-Disposition` value: its type, then `name`, `filename` and their RFC
/// 2231 forms `name*` and `filename*`, in any case and with spaces around `=`. A name or
/// file name given two ways with different values, RFC 2231 continuations (`name*0`) and
/// anything that is not a parameter are errors.
fn parse_disposition(value: &str) -> Result<Disposition, String> {
    let (kind, rest) = match value.find(';') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    let kind = kind.trim();
    if kind.is_empty() || !kind.bytes().all(is_token_byte) {
        return Err(format!("Content-Disposition type {kind:?}"));
    }
    let params = parse_params(rest)?;
    let mut disposition = Disposition::default();
    let pick = |plain: Option<String>, extended: Option<String>, what: &str| match (plain, extended)
    {
        (Some(a), Some(b)) if a != b => Err(format!("{what} and {what}* differ")),
        (a, b) => Ok(a.or(b)),
    };
    let find = |name: &str| params.iter().find(|p| p.name == name);
    for p in &params {
        if let Some((base, suffix)) = p.name.split_once('*') {
            if matches!(base, "name" | "filename") && !suffix.is_empty() {
                return Err(format!("parameter continuation {:?}", p.name));
            }
        }
    }
    let extended = |name: &str| find(name).map(|p| decode_extended(&p.value)).transpose();
    disposition.name = pick(
        find("name").map(|p| p.value.clone()),
        extended("name*")?,
        "name",
    )?;
    let plain_filename = find("filename");
    disposition.filename = pick(
        plain_filename.map(|p| p.value.clone()),
        extended("filename*")?,
        "filename",
    )?;
    disposition.filename_unusual =
        disposition.filename.is_some() && !plain_filename.is_some_and(|p| p.plain);
    Ok(disposition)
}

/// `multipart/form-data`: fields become arguments, files are listed, part headers kept.
///
/// Parts without a name are inspected as arguments named `""`; a part whose file name
/// only some parsers would see is inspected as an argument too. Part headers must use the
/// body's line breaks and not be folded; a `Content-Transfer-Encoding` other than `7bit`,
/// `8bit` or `binary` (which some frameworks decode) and a second `Content-Disposition`
/// are errors, as is a body without its closing delimiter.
pub fn parse_multipart(body: &[u8], media: &MediaType) -> Result<Parsed, BodyError> {
    let boundary = boundary_of(media)?;
    let (delimiters, style) = delimiters(body, boundary)?;
    let Some(first) = delimiters.first() else {
        return Err(unparsed("multipart body without its boundary"));
    };
    if !delimiters.last().is_some_and(|d| d.close) {
        return Err(unparsed("multipart body without its closing delimiter"));
    }
    let mut parsed = Parsed::default();
    if first.start > 0 {
        parsed.flags.push((Collection::MultipartDataBefore, 1));
    }
    if delimiters
        .last()
        .is_some_and(|last| body[last.end..].iter().any(|b| !b.is_ascii_whitespace()))
    {
        parsed.flags.push((Collection::MultipartDataAfter, 1));
    }
    if style == Some(LineBreak::Lf) {
        parsed.flags.push((Collection::MultipartLfLine, 1));
    }
    let line_break = style.unwrap_or(LineBreak::CrLf).bytes();
    let mut budget = expansion_limit(body.len());
    for pair in delimiters.windows(2) {
        let part = &body[pair[0].end..pair[1].start];
        parse_part(part, line_break, &mut budget, &mut parsed).map_err(unparsed)?;
    }
    Ok(parsed)
}

/// Reads one part into `parsed`, taking what it adds from `budget`.
fn parse_part(
    part: &[u8],
    line_break: &[u8],
    budget: &mut usize,
    parsed: &mut Parsed,
) -> Result<(), String> {
    let (head, content) = if part.starts_with(line_break) {
        (&part[..0], &part[line_break.len()..])
    } else {
        let blank: Vec<u8> = [line_break, line_break].concat();
        let i = memchr::memmem::find(part, &blank)
            .ok_or("multipart part without the blank line ending its headers")?;
        (&part[..i], &part[i + blank.len()..])
    };
    let mut disposition: Option<Disposition> = None;
    let mut lines = Vec::new();
    if !head.is_empty() {
        for line in memchr::memmem::find_iter(head, line_break)
            .chain(std::iter::once(head.len()))
            .scan(0, |start, end| {
                let line = &head[*start..end];
                *start = end + line_break.len();
                Some(line)
            })
        {
            if lines.len() == MAX_PART_HEADERS {
                return Err(format!(
                    "multipart part with more than {MAX_PART_HEADERS} headers"
                ));
            }
            if line.iter().any(|b| matches!(b, b'\r' | b'\n')) {
                return Err("multipart part header with a stray line break".into());
            }
            if line.first().is_some_and(|b| matches!(b, b' ' | b'\t')) {
                return Err("folded multipart part header".into());
            }
            let text = String::from_utf8_lossy(line);
            let (name, value) = text
                .split_once(':')
                .ok_or("multipart part header without a colon")?;
            let name = name.trim_end_matches([' ', '\t']);
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(format!("multipart part header name {name:?}"));
            }
            if name.eq_ignore_ascii_case("content-disposition") {
                if disposition.is_some() {
                    return Err("multipart part with two Content-Disposition headers".into());
                }
                disposition = Some(parse_disposition(value.trim())?);
            } else if name.eq_ignore_ascii_case("content-transfer-encoding") {
                let encoding = value.trim();
                if !["7bit", "8bit", "binary"]
                    .iter()
                    .any(|e| encoding.eq_ignore_ascii_case(e))
                {
                    return Err(format!("multipart part in transfer encoding {encoding:?}"));
                }
            }
            lines.push(line.to_vec());
        }
    }
    let disposition = disposition.unwrap_or_default();
    let name = disposition.name.unwrap_or_default();
    // Each header line and the content (once, or twice for an unusual file) carry the name.
    let cost = lines.iter().map(|l| l.len() + name.len()).sum::<usize>()
        + 2 * (name.len() + content.len());
    *budget = budget
        .checked_sub(cost)
        .ok_or("multipart names and headers past the limit")?;
    // MULTIPART_PART_HEADERS is keyed by the part's name, as in ModSecurity.
    parsed
        .part_headers
        .extend(lines.into_iter().map(|l| (name.clone(), l)));
    match disposition.filename {
        Some(filename) => {
            if disposition.filename_unusual {
                parsed.args.push((name.clone(), content.to_vec()));
            }
            parsed.file_sizes.push((name.clone(), content.len()));
            parsed.files.push((name, filename.into_bytes()));
        }
        None => parsed.args.push((name, content.to_vec())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(value: &str) -> MediaType {
        parse_media_type(value).expect("media type")
    }

    fn multipart(content_type: &str, body: &str) -> Result<Parsed, BodyError> {
        parse_multipart(body.as_bytes(), &media(content_type))
    }

    fn args(parsed: &Parsed) -> Vec<(&str, &str)> {
        parsed
            .args
            .iter()
            .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).expect("utf-8")))
            .collect()
    }

    fn is_unparsed(result: Result<Parsed, BodyError>) -> bool {
        matches!(result, Err(BodyError::Unparsed(_)))
    }

    #[test]
    fn multipart_fields_and_files() {
        let body = "-----------------------------6276\nContent-Disposition: form-data; name=\"fi=le\"; filename=\"test\"\nContent-Type: text/plain\n\nemail: x@example.com\n\n-----------------------------6276\nContent-Disposition: form-data; name=\"note\"\n\nContact info.\n-----------------------------6276--\n";
        let parsed = multipart(
            "multipart/form-data; boundary=---------------------------6276",
            body,
        )
        .expect("parses");
        assert_eq!(parsed.files, vec![("fi=le".to_string(), b"test".to_vec())]);
        assert_eq!(args(&parsed), [("note", "Contact info.")]);
        assert_eq!(parsed.flags, [(Collection::MultipartLfLine, 1)]);
    }

    const CRLF_BODY: &str = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\ntwo\r\n--XyZ--\r\n";

    #[test]
    fn boundary_parameters_are_read_in_any_spelling_but_only_once() {
        for content_type in [
            "multipart/form-data; boundary=XyZ",
            "Multipart/Form-Data; BOUNDARY=XyZ",
            "multipart/form-data;boundary = XyZ",
            "multipart/form-data; boundary=\"XyZ\"",
            "multipart/form-data; charset=utf-8; boundary=\"XyZ\" ",
        ] {
            let parsed = multipart(content_type, CRLF_BODY).expect(content_type);
            assert_eq!(
                args(&parsed),
                [("a", "one"), ("b", "two")],
                "{content_type}"
            );
        }
        // Two boundaries, the same or not, and malformed parameters: refused.
        for content_type in [
            "multipart/form-data; boundary=XyZ; boundary=other",
            "multipart/form-data; boundary=XyZ; Boundary=XyZ",
            "multipart/form-data; boundary=\"XyZ",
            "multipart/form-data; boundary=\"XyZ\"other",
            "multipart/form-data; boundary",
        ] {
            assert!(
                matches!(parse_media_type(content_type), Err(BodyError::Unparsed(_))),
                "{content_type}"
            );
        }
        for content_type in [
            "multipart/form-data",
            "multipart/form-data; boundary=\"\"",
            "multipart/form-data; boundary=\"a\\\"b\"",
            "multipart/form-data; boundary=\"X\\yZ\"",
            &format!("multipart/form-data; boundary={}", "x".repeat(71)),
        ] {
            assert!(
                is_unparsed(multipart(content_type, CRLF_BODY)),
                "{content_type}"
            );
        }
    }

    #[test]
    fn disposition_parameters_in_any_case_spacing_and_rfc_2231() {
        let ct = "multipart/form-data; boundary=B";
        let part = |disposition: &str| {
            format!("--B\r\nContent-Disposition: {disposition}\r\n\r\nvalue\r\n--B--\r\n")
        };
        for (disposition, name) in [
            ("form-data; NAME=\"x\"", "x"),
            ("FORM-DATA; name = \"x\"", "x"),
            ("form-data;name=x", "x"),
            ("form-data; name*=UTF-8''%C3%A9t%C3%A9", "été"),
            ("form-data; name=\"x\"; name*=utf-8''x", "x"),
            ("form-data; name=\"a\\\"b\"", "a\"b"),
            ("form-data", ""),
        ] {
            let parsed = multipart(ct, &part(disposition)).expect(disposition);
            assert_eq!(args(&parsed), [(name, "value")], "{disposition}");
        }
        for disposition in [
            "form-data; name=\"x\"; name=\"y\"",
            "form-data; name=\"x\"; Name=\"x\"",
            "form-data; name=\"x\"; name*=UTF-8''y",
            "form-data; name*0=\"x\"",
            "form-data; name*=UTF-7''x",
            "form-data name=\"x\"",
            "form-data; name=\"x",
            "form-data; name=x y",
        ] {
            assert!(
                is_unparsed(multipart(ct, &part(disposition))),
                "{disposition}"
            );
        }
    }

    #[test]
    fn files_in_unusual_spellings_are_inspected_as_fields_too() {
        let ct = "multipart/form-data; boundary=B";
        let part = |disposition: &str| {
            format!("--B\r\nContent-Disposition: {disposition}\r\n\r\n<script>\r\n--B--\r\n")
        };
        let plain =
            multipart(ct, &part("form-data; name=\"f\"; filename=\"a.txt\"")).expect("plain");
        assert!(plain.args.is_empty());
        assert_eq!(plain.files, [("f".to_string(), b"a.txt".to_vec())]);
        // Backslashes other than before `"` and `\` are kept (CRS 920120, 930110).
        let windows = multipart(
            ct,
            &part("form-data; name=\"f\"; filename=\"..\\1.j\\s\\p\\\\\""),
        )
        .expect("parses");
        assert_eq!(
            windows.files,
            [("f".to_string(), b"..\\1.j\\s\\p\\".to_vec())]
        );
        for disposition in [
            "form-data; name=\"f\"; FILENAME=\"a.txt\"",
            "form-data; name=\"f\"; filename = \"a.txt\"",
            "form-data; name=\"f\"; filename*=UTF-8''a.txt",
        ] {
            let parsed = multipart(ct, &part(disposition)).expect(disposition);
            assert_eq!(args(&parsed), [("f", "<script>")], "{disposition}");
            assert_eq!(parsed.files, [("f".to_string(), b"a.txt".to_vec())]);
        }
    }

    #[test]
    fn delimiters_count_only_at_line_starts_with_one_kind_of_line_break() {
        let ct = "multipart/form-data; boundary=B";
        // Mid-line, `--B` is content: the field's value holds the fake part.
        let inline = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\n<script>\r\n--B--\r\n";
        let parsed = multipart(ct, inline).expect("parses");
        assert_eq!(parsed.args.len(), 1);
        assert!(parsed.files.is_empty());
        assert!(String::from_utf8_lossy(&parsed.args[0].1).contains("<script>"));
        for (body, why) in [
            ("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\n--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\ny\r\n--B--\r\n", "LF among CRLF"),
            ("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r--B\r\n\r\ny\r\n--B--\r\n", "bare CR"),
            ("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--Bx\r\n--B--\r\n", "text after the boundary"),
            ("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--B--\r\n--B\r\n\r\ny\r\n--B--\r\n", "parts after the close"),
            ("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n", "no closing delimiter"),
            ("no boundary at all", "no delimiter"),
            ("--B\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n\r\nx\r\n--B--\r\n", "folded header"),
            ("--B\r\nContent-Disposition: form-data; name=\"a\"\nX-Other: 1\r\n\r\nx\r\n--B--\r\n", "LF in CRLF headers"),
            ("--B\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nx\r\n--B--\r\n", "two dispositions"),
            ("--B\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Transfer-Encoding: base64\r\n\r\nPHNjcmlwdD4=\r\n--B--\r\n", "base64 part"),
            ("--B\r\nContent-Disposition form-data\r\n\r\nx\r\n--B--\r\n", "header without colon"),
        ] {
            assert!(is_unparsed(multipart(ct, body)), "{why}");
        }
        // Preamble, epilogue, a part without headers, transport padding.
        let parsed = multipart(
            ct,
            "preamble\r\n--B \t\r\n\r\nheadless\r\n--B--\r\nepilogue",
        )
        .expect("parses");
        assert_eq!(args(&parsed), [("", "headless")]);
        assert!(parsed.flags.contains(&(Collection::MultipartDataBefore, 1)));
        assert!(parsed.flags.contains(&(Collection::MultipartDataAfter, 1)));
    }

    #[test]
    fn too_many_parts_is_its_own_error() {
        let mut body = String::new();
        for i in 0..=MAX_PARTS {
            body.push_str(&format!(
                "--B\r\nContent-Disposition: form-data; name=\"p{i}\"\r\n\r\nx\r\n"
            ));
        }
        body.push_str("--B--\r\n");
        assert!(matches!(
            multipart("multipart/form-data; boundary=B", &body),
            Err(BodyError::TooManyArguments { .. })
        ));
    }

    #[test]
    fn json_with_a_bom_duplicate_keys_and_limits() {
        let parsed = parse_json(
            b"\xEF\xBB\xBF{\"a\":\"one\",\"a\":\"<script>\",\"n\":[1,true,null,{\"k\":2.5}]}",
        )
        .expect("parses");
        assert_eq!(
            args(&parsed),
            [
                ("json.a", "one"),
                ("json.a", "<script>"),
                ("json.n.0", "1"),
                ("json.n.1", "true"),
                ("json.n.2", ""),
                ("json.n.3.k", "2.5"),
            ]
        );
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_json(nested(MAX_JSON_DEPTH).as_bytes()).is_ok());
        assert!(is_unparsed(parse_json(
            nested(MAX_JSON_DEPTH + 1).as_bytes()
        )));
        assert!(is_unparsed(parse_json(nested(1000).as_bytes())));
        let many = format!("[{}1]", "1,".repeat(MAX_ARGS));
        assert!(matches!(
            parse_json(many.as_bytes()),
            Err(BodyError::TooManyArguments { .. })
        ));
        let enough = format!("[{}1]", "1,".repeat(MAX_ARGS - 1));
        assert_eq!(
            parse_json(enough.as_bytes()).expect("parses").args.len(),
            MAX_ARGS
        );
        for bad in [
            &b"{\"a\":1} {\"b\":2}"[..],
            b"{\"a\":NaN}",
            b"{\"a\":\"\\ud800\"}",
            b"\xFF\xFE{\x00}\x00",
            b"{'a':1}",
        ] {
            assert!(
                is_unparsed(parse_json(bad)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn what_a_small_body_expands_to_is_bounded() {
        // Long keys nested deep, then many values under them: each value's name repeats
        // every key (about 240 MB of names from 85 KB), refused instead.
        let key = "k".repeat(1000);
        let mut json = format!("{{\"{key}\":").repeat(60);
        json.push('{');
        json.push_str(&vec!["\"a\":1"; 4000].join(","));
        json.push('}');
        json.push_str(&"}".repeat(60));
        assert!(is_unparsed(parse_json(json.as_bytes())));
        // Part headers are bounded per part.
        let headers = "X-H: 1\r\n".repeat(MAX_PART_HEADERS);
        let body = |headers: &str| {
            format!(
                "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n{headers}\r\nx\r\n--B--\r\n"
            )
        };
        let ct = "multipart/form-data; boundary=B";
        assert!(is_unparsed(multipart(ct, &body(&headers))));
        let fewer = "X-H: 1\r\n".repeat(MAX_PART_HEADERS - 1);
        assert_eq!(
            multipart(ct, &body(&fewer))
                .expect("parses")
                .part_headers
                .len(),
            MAX_PART_HEADERS
        );
    }

    #[test]
    fn urlencoded_arguments_past_the_limit_are_an_error() {
        let at_limit = "a=1&".repeat(MAX_ARGS);
        assert_eq!(
            parse_urlencoded(at_limit.as_bytes(), "body arguments")
                .expect("within")
                .len(),
            MAX_ARGS
        );
        let over = format!("{at_limit}b=2");
        assert_eq!(
            parse_urlencoded(over.as_bytes(), "body arguments"),
            Err(BodyError::TooManyArguments {
                what: "body arguments",
                limit: MAX_ARGS
            })
        );
    }

    #[test]
    fn charsets_and_xml_encodings_that_are_not_ascii_compatible_are_refused() {
        assert!(check_charset(&media("application/json; charset=UTF-8")).is_ok());
        assert!(check_charset(&media("application/x-www-form-urlencoded")).is_ok());
        for ct in [
            "application/x-www-form-urlencoded; charset=ibm037",
            "application/json; charset=\"utf-16\"",
            "multipart/form-data; boundary=B; charset=utf-7",
        ] {
            assert!(check_charset(&media(ct)).is_err(), "{ct}");
        }
        assert!(xml_entries(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>x</a>").is_ok());
        for body in [
            &b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a>x</a>"[..],
            b"<?xml version='1.0' encoding='ibm037'?><a>x</a>",
            b"\xFF\xFE<\x00a\x00>\x00",
            b"\x00<\x00a",
        ] {
            assert!(
                xml_entries(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
