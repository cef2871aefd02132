//! The canonical request: computed once, right after a head is parsed, and the only
//! view that routing, guards, the WAF, the access log and forwarding get.
//!
//! A backend must not be able to read a request differently from the route that
//! admitted it. So the target becomes one origin-form path (RFC 3986 §6.2.2: escapes
//! of unreserved characters decoded, the rest in upper case, dot segments removed,
//! repeated slashes merged), the authority becomes one lower-case `Host` without a
//! trailing dot or default port, and whatever cannot be read one way only (an encoded
//! slash, `%00`, a dot segment above the root, a method spelled in another case, two
//! `Host` fields, a `Connection` naming a protected field) is refused.

use std::net::Ipv6Addr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Uri, Version};
use rampart_config::{EncodedSlashes, PathParameters, RequestNormalization, UnderscoresInHeaders};

use crate::headers::INTERNAL_PREFIX;

/// Why a request cannot be interpreted one way only. Each is its own problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformation {
    /// A broken percent escape, `%00`, a raw backslash or another byte no path may hold.
    PathEncoding,
    /// `%2F` or `%5C` in the path while the listener refuses them.
    EncodedSlash,
    /// A dot segment that climbs above the root, or one with parameters (`..;x`).
    PathTraversal,
    /// `;` parameters on a path segment while the listener refuses them.
    PathParameters,
    /// The authority is not a valid host and port.
    InvalidHost,
    /// Several `Host` fields.
    DuplicateHost,
    /// No authority on a request that needs one (HTTP/1.1, HTTP/2).
    MissingHost,
    /// A standard method spelled in another case (`get`, `Delete`).
    MethodCase,
    /// A request-target form the method does not allow (asterisk-form other than
    /// with OPTIONS, authority-form, an absolute URI that is not http or https).
    TargetForm,
    /// `CONNECT`: no route tunnels.
    Connect,
    /// `Connection` names a field that must reach the backend or that Rampart sets.
    ConnectionOption,
    /// The body's framing is ambiguous or unsupported.
    Framing,
    /// The head is not valid HTTP/1.x (request line, version, field syntax).
    Head,
    /// The head is larger than the listener allows, or has too many fields (431).
    HeadTooLarge,
    /// The target holds characters that must be percent-encoded (`<`, `>`, `"`, space).
    UnencodedTarget,
}

impl Malformation {
    /// The last part of the problem type, and the refusal counter's reason.
    pub fn slug(self) -> &'static str {
        match self {
            Malformation::PathEncoding => "invalid-path-encoding",
            Malformation::EncodedSlash => "encoded-slash",
            Malformation::PathTraversal => "path-traversal",
            Malformation::PathParameters => "path-parameters",
            Malformation::InvalidHost => "invalid-host",
            Malformation::DuplicateHost => "duplicate-host",
            Malformation::MissingHost => "missing-host",
            Malformation::MethodCase => "method-case",
            Malformation::TargetForm => "invalid-target-form",
            Malformation::Connect => "connect-not-allowed",
            Malformation::ConnectionOption => "protected-connection-option",
            Malformation::Framing => "invalid-framing",
            Malformation::Head => "invalid-request-head",
            Malformation::HeadTooLarge => "headers-too-large",
            Malformation::UnencodedTarget => "unencoded-target",
        }
    }

    /// The problem's title.
    pub fn title(self) -> &'static str {
        match self {
            Malformation::PathEncoding => "The request path has an invalid or forbidden encoding",
            Malformation::EncodedSlash => "The request path contains an encoded slash or backslash",
            Malformation::PathTraversal => "The request path climbs above the root",
            Malformation::PathParameters => {
                "The request path has segment parameters (;), which backends read differently"
            }
            Malformation::InvalidHost => "The request's host is not valid",
            Malformation::DuplicateHost => "The request has more than one Host field",
            Malformation::MissingHost => "The request has no host",
            Malformation::MethodCase => "Request methods are case-sensitive: use upper case",
            Malformation::TargetForm => "This request-target form is not accepted",
            Malformation::Connect => "CONNECT tunnels are not enabled",
            Malformation::ConnectionOption => {
                "The Connection field names a field that cannot be removed"
            }
            Malformation::Framing => "The request body's framing is ambiguous or unsupported",
            Malformation::Head => "The request head is not valid HTTP/1.1",
            Malformation::HeadTooLarge => "The request headers are too large",
            Malformation::UnencodedTarget => {
                "The request target contains characters that must be percent-encoded (such as <, > or \")"
            }
        }
    }

    /// The status answered.
    pub fn status(self) -> http::StatusCode {
        match self {
            Malformation::Connect => http::StatusCode::METHOD_NOT_ALLOWED,
            Malformation::HeadTooLarge => http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// What is known of a request's field names before the canonical step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldNames {
    /// Nothing: every check runs.
    Unchecked,
    /// The HTTP/1.1 codec found no name with `_` or `x-rampart-`, at most one `Host`
    /// and no `Connection` naming another field (`h1::codec::RequestHead`).
    Plain,
}

/// Request extension: the request keeps field names with `_` (the listener keeps them),
/// so forwarding must drop those that stand for another field
/// ([`drop_underscore_aliases`]).
#[derive(Debug, Clone, Copy)]
pub struct KeptUnderscoreNames;

/// Request extension: the target as the client sent it, kept when the canonical one
/// differs, for routes that forward the raw path.
#[derive(Debug, Clone)]
pub struct RawTarget(pub PathAndQuery);

/// Turns `parts` into the canonical request in place: an origin-form (or `*`) target,
/// at most one `Host` holding the canonical authority, no `x-rampart-*` fields from the
/// client, and no field names with `_` unless the listener keeps them. `default_port`
/// is the listener's scheme's (80 or 443); `known` is an authority already found
/// canonical on this connection (a `Host` equal to it is not read again); `names`
/// says whether the field names were already found plain.
pub fn canonicalize(
    parts: &mut http::request::Parts,
    policy: &RequestNormalization,
    default_port: u16,
    known: Option<&[u8]>,
    names: FieldNames,
) -> Result<(), Malformation> {
    check_method(&parts.method)?;
    let authority = canonical_authority(parts, default_port, known, names)?;
    let target = canonical_target(&parts.method, &parts.uri, policy)?;
    if names == FieldNames::Unchecked && clean_fields(&mut parts.headers, policy)? {
        parts.extensions.insert(KeptUnderscoreNames);
    }
    if let Some(authority) = authority {
        parts.headers.insert(header::HOST, authority);
    }
    match target {
        Target::AsIs => {}
        Target::OriginForm(path_and_query) => parts.uri = Uri::from(path_and_query),
        Target::Changed(canonical) => {
            if let Some(raw) = parts.uri.path_and_query().cloned() {
                parts.extensions.insert(RawTarget(raw));
            }
            parts.uri = Uri::from(canonical);
        }
    }
    Ok(())
}

/// Refuses a standard method spelled in another case, and CONNECT.
fn check_method(method: &Method) -> Result<(), Malformation> {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    if *method == Method::CONNECT {
        return Err(Malformation::Connect);
    }
    let spelled = method.as_str();
    // A method in upper case is a standard one or an extension that spells none of
    // them: the usual case costs one pass over a few bytes.
    if !spelled.bytes().any(|b| b.is_ascii_lowercase()) {
        return Ok(());
    }
    // Otherwise a backend may fold it to upper case.
    if STANDARD
        .iter()
        .any(|standard| standard.eq_ignore_ascii_case(spelled))
    {
        return Err(Malformation::MethodCase);
    }
    Ok(())
}

/// The canonical authority to put in `Host`, when it differs from the one `Host`
/// holds. An absolute-form target's authority (HTTP/2's `:authority`) wins over `Host`.
fn canonical_authority(
    parts: &http::request::Parts,
    default_port: u16,
    known: Option<&[u8]>,
    names: FieldNames,
) -> Result<Option<HeaderValue>, Malformation> {
    let host_field = match names {
        // At most one `Host`: one lookup.
        FieldNames::Plain => parts.headers.get(header::HOST),
        FieldNames::Unchecked => {
            let mut hosts = parts.headers.get_all(header::HOST).iter();
            let first = hosts.next();
            if hosts.next().is_some() {
                return Err(Malformation::DuplicateHost);
            }
            first
        }
    };
    let from_target = parts.uri.authority().map(|a| a.as_str().as_bytes());
    let raw = match (from_target, host_field) {
        (Some(target), _) => target,
        (None, Some(field)) => field.as_bytes(),
        (None, None) if parts.version == Version::HTTP_10 => return Ok(None),
        (None, None) => return Err(Malformation::MissingHost),
    };
    if from_target.is_none() && !raw.is_empty() && known == Some(raw) {
        // The connection's earlier requests named this authority, already canonical.
        return Ok(None);
    }
    let canonical = canonical_host(raw, default_port)?;
    match canonical {
        // The field already holds it.
        None if from_target.is_none() => Ok(None),
        None => HeaderValue::from_bytes(raw)
            .map(Some)
            .map_err(|_| Malformation::InvalidHost),
        Some(text) => HeaderValue::from_str(&text)
            .map(Some)
            .map_err(|_| Malformation::InvalidHost),
    }
}

/// Longest authority accepted (a DNS name is at most 253 bytes).
const MAX_AUTHORITY: usize = 300;

/// Validates an authority (`host[:port]`) and returns its canonical text when that
/// differs from `raw`: lower case, no trailing dot, no default or empty port. Userinfo,
/// path characters, several colons, percent escapes and control bytes are refused.
pub fn canonical_host(raw: &[u8], default_port: u16) -> Result<Option<String>, Malformation> {
    if raw.is_empty() || raw.len() > MAX_AUTHORITY {
        return Err(Malformation::InvalidHost);
    }
    if is_canonical_host(raw, default_port) {
        return Ok(None);
    }
    let (host, port) = if raw[0] == b'[' {
        let close = raw
            .iter()
            .position(|b| *b == b']')
            .ok_or(Malformation::InvalidHost)?;
        let literal = std::str::from_utf8(&raw[1..close]).map_err(|_| Malformation::InvalidHost)?;
        literal
            .parse::<Ipv6Addr>()
            .map_err(|_| Malformation::InvalidHost)?;
        let rest = &raw[close + 1..];
        let port = match rest.split_first() {
            None => None,
            Some((b':', port)) => Some(port),
            Some(_) => return Err(Malformation::InvalidHost),
        };
        (&raw[..=close], port)
    } else {
        let mut pieces = raw.splitn(3, |b| *b == b':');
        let host = pieces.next().unwrap_or_default();
        let port = pieces.next();
        if pieces.next().is_some() {
            return Err(Malformation::InvalidHost);
        }
        let name_byte = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if host.is_empty() || !host.iter().all(name_byte) {
            return Err(Malformation::InvalidHost);
        }
        (host, port)
    };
    let port = match port {
        None | Some([]) => None,
        Some(digits) => {
            if digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
                return Err(Malformation::InvalidHost);
            }
            let number = digits
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            if number == 0 || number > 65535 {
                return Err(Malformation::InvalidHost);
            }
            (number != u32::from(default_port)).then_some(number)
        }
    };
    let name = host.strip_suffix(b".").unwrap_or(host);
    if host[0] != b'['
        && (name.is_empty()
            || name[0] == b'.'
            || name.ends_with(b".")
            || name.windows(2).any(|w| w == b".."))
    {
        return Err(Malformation::InvalidHost);
    }
    let mut canonical = String::with_capacity(raw.len());
    for b in name {
        canonical.push(char::from(b.to_ascii_lowercase()));
    }
    if let Some(port) = port {
        canonical.push(':');
        canonical.push_str(itoa::Buffer::new().format(port));
    }
    Ok((canonical.as_bytes() != raw).then_some(canonical))
}

/// Whether `raw` is already a canonical authority (checked without building one): a
/// lower-case name of labels, and at most a port of digits without a leading zero that
/// is not the default one. Anything else takes the full path, which may still accept it.
fn is_canonical_host(raw: &[u8], default_port: u16) -> bool {
    // One pass over the name: a leading dot, an empty label or a trailing dot fails.
    let mut previous = b'.';
    let mut end = raw.len();
    for (i, &b) in raw.iter().enumerate() {
        if b == b':' {
            end = i;
            break;
        }
        if !HOST_NAME[usize::from(b)] || (b == b'.' && previous == b'.') {
            return false;
        }
        previous = b;
    }
    if end == 0 || previous == b'.' {
        return false;
    }
    let Some(digits) = raw.get(end + 1..) else {
        return true;
    };
    if digits.is_empty() || digits.len() > 5 || digits[0] == b'0' {
        return false;
    }
    let mut port = 0u32;
    for &d in digits {
        if !d.is_ascii_digit() {
            return false;
        }
        port = port * 10 + u32::from(d - b'0');
    }
    port <= 65535 && port != u32::from(default_port)
}

/// The bytes of a canonical host name: lower-case letters, digits, `-`, `.`, `_`.
const HOST_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_lowercase()
            || byte.is_ascii_digit()
            || matches!(byte, b'-' | b'.' | b'_');
        b += 1;
    }
    table
};

/// What becomes of the target.
enum Target {
    /// Already canonical and in origin form (or `*`).
    AsIs,
    /// Canonical, but given in absolute form: only its path and query go on.
    OriginForm(PathAndQuery),
    /// Rewritten into its canonical form.
    Changed(PathAndQuery),
}

/// The canonical request-target: an origin-form path with its query, or `*` with OPTIONS.
fn canonical_target(
    method: &Method,
    uri: &Uri,
    policy: &RequestNormalization,
) -> Result<Target, Malformation> {
    if let Some(scheme) = uri.scheme_str() {
        if scheme != "http" && scheme != "https" {
            return Err(Malformation::TargetForm);
        }
    }
    let absolute = uri.authority().is_some();
    let Some(path_and_query) = uri.path_and_query() else {
        // Authority-form (only CONNECT uses it, and CONNECT was refused).
        return Err(Malformation::TargetForm);
    };
    let path = path_and_query.path();
    if path == "*" {
        return if *method == Method::OPTIONS && path_and_query.query().is_none() {
            if absolute {
                Ok(Target::OriginForm(path_and_query.clone()))
            } else {
                Ok(Target::AsIs)
            }
        } else {
            Err(Malformation::TargetForm)
        };
    }
    if !path.starts_with('/') {
        return Err(Malformation::TargetForm);
    }
    match canonical_path(path, policy)? {
        None if absolute => Ok(Target::OriginForm(path_and_query.clone())),
        None => Ok(Target::AsIs),
        Some(mut canonical) => {
            if let Some(query) = path_and_query.query() {
                canonical.push('?');
                canonical.push_str(query);
            }
            PathAndQuery::try_from(canonical)
                .map(Target::Changed)
                .map_err(|_| Malformation::PathEncoding)
        }
    }
}

/// Whether `byte` is an RFC 3986 unreserved character.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// The value of the hex digit `byte`.
fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The canonical form of an origin-form `path`, when it differs: unreserved escapes
/// decoded, other escapes in upper case, dot segments removed (RFC 3986 §5.2.4, except
/// that one climbing above the root is refused), and, with `merge_slashes`, repeated
/// slashes merged.
pub fn canonical_path(
    path: &str,
    policy: &RequestNormalization,
) -> Result<Option<String>, Malformation> {
    let bytes = path.as_bytes();
    // One pass finds whether there is anything to do: most paths have no escape,
    // backslash, parameter, empty segment or segment starting with a dot.
    let mut previous = 0u8;
    let mut plain = true;
    for &b in bytes {
        if NOT_PLAIN[usize::from(b)]
            || (previous == b'/' && (b == b'.' || (b == b'/' && policy.merge_slashes)))
        {
            plain = false;
            break;
        }
        previous = b;
    }
    if plain {
        return Ok(None);
    }

    // Escapes first: an escaped dot takes part in dot segments like a plain one.
    let mut decoded = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(high), Some(low)) = (
                    bytes.get(i + 1).copied().and_then(hex_value),
                    bytes.get(i + 2).copied().and_then(hex_value),
                ) else {
                    return Err(Malformation::PathEncoding);
                };
                let value = high << 4 | low;
                match value {
                    0 => return Err(Malformation::PathEncoding),
                    b'/' | b'\\' => match policy.encoded_slashes {
                        EncodedSlashes::Reject => return Err(Malformation::EncodedSlash),
                        EncodedSlashes::Decode => decoded.push('/'),
                        EncodedSlashes::Keep => push_escape(&mut decoded, value),
                    },
                    v if is_unreserved(v) => decoded.push(char::from(v)),
                    v => push_escape(&mut decoded, v),
                }
                i += 3;
            }
            // Some servers read a backslash as a slash: no single reading exists.
            b'\\' => return Err(Malformation::PathEncoding),
            // What clients always encode (HTTP/2 paths reach here unchecked by a codec).
            b'"' | b'<' | b'>' => return Err(Malformation::UnencodedTarget),
            b if !(0x21..=0x7e).contains(&b) => return Err(Malformation::PathEncoding),
            b => {
                decoded.push(char::from(b));
                i += 1;
            }
        }
    }

    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let rest = decoded.strip_prefix('/').unwrap_or(&decoded);
    let mut pieces = rest.split('/').peekable();
    while let Some(segment) = pieces.next() {
        let last = pieces.peek().is_none();
        // `..;x` is `..` to servers that strip path parameters (Tomcat, Jetty).
        let bare = segment.split(';').next().unwrap_or_default();
        let segment = if segment.contains(';') {
            match policy.path_parameters {
                _ if bare == "." || bare == ".." => return Err(Malformation::PathTraversal),
                PathParameters::Reject => return Err(Malformation::PathParameters),
                PathParameters::Strip => bare,
                PathParameters::Keep => segment,
            }
        } else {
            segment
        };
        match segment {
            "." => trailing_slash = last,
            ".." => {
                if segments.pop().is_none() {
                    return Err(Malformation::PathTraversal);
                }
                trailing_slash = last;
            }
            "" if policy.merge_slashes => trailing_slash = last,
            segment => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut canonical = String::with_capacity(decoded.len());
    for segment in &segments {
        canonical.push('/');
        canonical.push_str(segment);
    }
    if trailing_slash || segments.is_empty() {
        canonical.push('/');
    }
    Ok((canonical != path).then_some(canonical))
}

/// Bytes that make a path take the full canonicalization: escapes, backslashes,
/// segment parameters, what clients must encode, and anything outside visible ASCII.
const NOT_PLAIN: [bool; 256] = {
    let mut table = [true; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        table[b] = matches!(b as u8, b'%' | b'\\' | b'"' | b'<' | b'>' | b';');
        b += 1;
    }
    table
};

fn push_escape(out: &mut String, value: u8) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(DIGITS[usize::from(value >> 4)]));
    out.push(char::from(DIGITS[usize::from(value & 0xf)]));
}

/// Whether a field name (lower case, `_` read as `-`) is one a client must not set or
/// remove by another spelling: `Host`, framing and connection fields, forwarding
/// fields, the request id and trace context Rampart reads, and its own `x-rampart-*`.
fn is_protected(name: &[u8]) -> bool {
    const PROTECTED: [&[u8]; 13] = [
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"upgrade",
        b"te",
        b"trailer",
        b"keep-alive",
        b"forwarded",
        b"x-real-ip",
        b"x-request-id",
        b"traceparent",
        b"expect",
    ];
    let folded = |b: &u8| {
        if *b == b'_' {
            b'-'
        } else {
            b.to_ascii_lowercase()
        }
    };
    let matches = |candidate: &[u8]| {
        candidate.len() == name.len() && candidate.iter().zip(name).all(|(c, n)| *c == folded(n))
    };
    let starts = |prefix: &[u8]| {
        name.len() >= prefix.len() && prefix.iter().zip(name).all(|(c, n)| *c == folded(n))
    };
    PROTECTED.iter().any(|p| matches(p))
        || starts(INTERNAL_PREFIX.as_bytes())
        || starts(b"x-forwarded-")
        || starts(b"proxy-")
}

/// Removes the client's `x-rampart-*` fields and the names with `_` the listener drops,
/// and refuses a `Connection` that names a protected field.
fn clean_fields(
    headers: &mut HeaderMap,
    policy: &RequestNormalization,
) -> Result<bool, Malformation> {
    let mut removed: Vec<HeaderName> = Vec::new();
    let mut has_connection = false;
    let mut kept_underscores = false;
    for name in headers.keys() {
        let text = name.as_str();
        let drop = if text.as_bytes().contains(&b'_') {
            let drop = policy.underscores_in_headers == UnderscoresInHeaders::Drop
                || is_protected(text.as_bytes());
            kept_underscores |= !drop;
            drop
        } else {
            text.starts_with(INTERNAL_PREFIX)
        };
        if drop {
            removed.push(name.clone());
        }
        has_connection |= *name == header::CONNECTION;
    }
    for name in &removed {
        headers.remove(name);
    }
    if has_connection {
        let nominated = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|value| value.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii);
        for token in nominated {
            let option = token.eq_ignore_ascii_case(b"close")
                || token.eq_ignore_ascii_case(b"keep-alive")
                || token.eq_ignore_ascii_case(b"upgrade")
                || token.eq_ignore_ascii_case(b"te");
            if !option && is_protected(token) {
                return Err(Malformation::ConnectionOption);
            }
        }
    }
    Ok(kept_underscores)
}

/// Removes the fields named with `_` (kept only where the listener keeps them) that
/// stand for a field the request also carries, or that Rampart adds, once `_` reads as
/// `-`: a backend that maps `_` onto `-` would join the client's value to it.
pub fn drop_underscore_aliases(headers: &mut HeaderMap, added: &crate::headers::AddedFields) {
    let aliases: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().as_bytes().contains(&b'_'))
        .filter(|name| {
            let folded = name.as_str().replace('_', "-");
            headers.contains_key(folded.as_str())
                || added.iter().any(|(other, _)| other.as_str() == folded)
        })
        .cloned()
        .collect();
    for name in aliases {
        headers.remove(&name);
    }
}

/// Whether every protocol an `Upgrade` field asks for is one of `allowed` (lower-case
/// names; a version after `/` is not compared). `h2c` is never allowed.
pub fn upgrade_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let mut any = false;
    for value in headers.get_all(header::UPGRADE) {
        for token in value
            .as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
        {
            let name = token.split(|b| *b == b'/').next().unwrap_or_default();
            if name.is_empty() || name.eq_ignore_ascii_case(b"h2c") {
                return false;
            }
            if !allowed
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(name))
            {
                return false;
            }
            any = true;
        }
    }
    any
}

/// Whether a trailer field may go upstream on a route that forwards trailers: never
/// framing, hop-by-hop, `Host` or protected fields.
pub fn trailer_allowed(name: &HeaderName) -> bool {
    let text = name.as_str().as_bytes();
    !crate::headers::is_hop_by_hop(text) && !is_protected(text) && !text.contains(&b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RequestNormalization {
        RequestNormalization::DEFAULT
    }

    fn path(p: &str) -> Result<String, Malformation> {
        canonical_path(p, &policy()).map(|c| c.unwrap_or_else(|| p.to_string()))
    }

    #[test]
    fn paths_are_normalized_as_rfc_3986_says() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/%61dmin", "/admin"),
            ("/%41%42%7e", "/AB~"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/%2e%2E/b", "/b"),
            ("/a/.%2e/b", "/b"),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/a%20b%c3%a9", "/a%20b%C3%A9"),
            ("/.well-known/x", "/.well-known/x"),
            ("/..a/b", "/..a/b"),
        ];
        for (input, expected) in cases {
            assert_eq!(path(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn only_the_bytes_that_need_work_leave_the_quick_scan() {
        for b in b"abcXYZ019-._~/!$&'()*+,=:@" {
            assert!(!NOT_PLAIN[usize::from(*b)], "{}", char::from(*b));
        }
        for b in b"%\\\"<>; \x7f\x00\x80" {
            assert!(NOT_PLAIN[usize::from(*b)], "{b:#x}");
        }
    }

    #[test]
    fn unreadable_paths_are_refused() {
        let cases = [
            ("/a%2fb", Malformation::EncodedSlash),
            ("/a%2Fb", Malformation::EncodedSlash),
            ("/a%5cb", Malformation::EncodedSlash),
            ("/a%00b", Malformation::PathEncoding),
            ("/a%zz", Malformation::PathEncoding),
            ("/a%4", Malformation::PathEncoding),
            ("/a%", Malformation::PathEncoding),
            ("/a\\b", Malformation::PathEncoding),
            ("/a\"b", Malformation::UnencodedTarget),
            ("/<script>", Malformation::UnencodedTarget),
            ("/..", Malformation::PathTraversal),
            ("/a/../..", Malformation::PathTraversal),
            ("/%2e%2e/etc", Malformation::PathTraversal),
            ("/public/..;/admin", Malformation::PathTraversal),
            ("/admin;x=1", Malformation::PathParameters),
        ];
        for (input, expected) in cases {
            assert_eq!(path(input), Err(expected), "{input}");
        }
    }

    #[test]
    fn encoded_slashes_follow_the_listener() {
        let decode = RequestNormalization {
            encoded_slashes: EncodedSlashes::Decode,
            ..policy()
        };
        assert_eq!(
            canonical_path("/a%2Fb/..%5Cc", &decode),
            Ok(Some("/a/c".to_string()))
        );
        let keep = RequestNormalization {
            encoded_slashes: EncodedSlashes::Keep,
            ..policy()
        };
        assert_eq!(
            canonical_path("/a%2fb", &keep),
            Ok(Some("/a%2Fb".to_string()))
        );
    }

    #[test]
    fn path_parameters_follow_the_listener() {
        let strip = RequestNormalization {
            path_parameters: PathParameters::Strip,
            ..policy()
        };
        assert_eq!(
            canonical_path("/admin;x=1/a;b", &strip),
            Ok(Some("/admin/a".to_string()))
        );
        let keep = RequestNormalization {
            path_parameters: PathParameters::Keep,
            ..policy()
        };
        assert_eq!(canonical_path("/admin;x=1", &keep), Ok(None));
        for policy in [strip, keep] {
            assert_eq!(
                canonical_path("/public/..;/admin", &policy),
                Err(Malformation::PathTraversal)
            );
            assert_eq!(
                canonical_path("/a/.;x/b", &policy),
                Err(Malformation::PathTraversal)
            );
        }
    }

    #[test]
    fn repeated_slashes_stay_when_not_merged() {
        let unmerged = RequestNormalization {
            merge_slashes: false,
            ..policy()
        };
        assert_eq!(canonical_path("/a//b", &unmerged), Ok(None));
        assert_eq!(
            canonical_path("/a//../b", &unmerged),
            Ok(Some("/a/b".to_string()))
        );
    }

    #[test]
    fn hosts_are_canonical() {
        let host = |raw: &str| canonical_host(raw.as_bytes(), 80).map(|c| c.unwrap_or(raw.into()));
        assert_eq!(host("a.test").as_deref(), Ok("a.test"));
        assert_eq!(host("A.Test").as_deref(), Ok("a.test"));
        assert_eq!(host("a.test.").as_deref(), Ok("a.test"));
        assert_eq!(host("a.test:80").as_deref(), Ok("a.test"));
        assert_eq!(host("a.test:").as_deref(), Ok("a.test"));
        assert_eq!(host("a.test:0080").as_deref(), Ok("a.test"));
        assert_eq!(host("a.test:8080").as_deref(), Ok("a.test:8080"));
        assert_eq!(host("a.test.:08080").as_deref(), Ok("a.test:8080"));
        assert_eq!(host("[::1]:80").as_deref(), Ok("[::1]"));
        assert_eq!(host("[::1]:81").as_deref(), Ok("[::1]:81"));
        assert_eq!(host("127.0.0.1:8080").as_deref(), Ok("127.0.0.1:8080"));
        for bad in [
            "",
            "a:80:80",
            "user@a.test",
            "a.test/x",
            "a.test\0",
            "a test",
            "a.test:x",
            "a.test:70000",
            "a.test:0",
            "a..test",
            ".a.test",
            "a.test..",
            "[::1",
            "[zz]",
            "[::1]x",
            "a%2etest",
            "a.test:123456",
            ".",
            "a\\b",
        ] {
            assert_eq!(host(bad), Err(Malformation::InvalidHost), "{bad:?}");
        }
        assert_eq!(
            canonical_host(b"a.test:443", 443),
            Ok(Some("a.test".to_string()))
        );
        // The quick check never calls canonical what the full reading would change.
        for raw in [
            "a.test",
            "a.test:8080",
            "a.test:80",
            "a.test:0",
            "a.test:08",
            "a.test:",
            "a.test.",
            ".a",
            "a..b",
            "A.test",
            "a_b.test",
            "1.2.3.4:65535",
            "1.2.3.4:65536",
            "a:1:2",
        ] {
            if is_canonical_host(raw.as_bytes(), 80) {
                assert_eq!(canonical_host(raw.as_bytes(), 80), Ok(None), "{raw}");
            }
        }
        assert!(is_canonical_host(b"a.test:8080", 80));
        assert!(!is_canonical_host(b"a.test:80", 80));
    }

    fn request(text: &str) -> http::request::Parts {
        let mut buf = bytes::BytesMut::from(text);
        crate::h1::codec::parse_request(&mut buf, 65536)
            .expect("parses")
            .expect("complete")
            .parts
    }

    fn canonical(text: &str) -> Result<http::request::Parts, Malformation> {
        let mut parts = request(text);
        canonicalize(&mut parts, &policy(), 80, None, FieldNames::Unchecked).map(|()| parts)
    }

    #[test]
    fn the_target_authority_replaces_host() {
        let parts =
            canonical("GET http://Admin.Test./x/../y HTTP/1.1\r\nHost: public.test\r\n\r\n")
                .expect("canonical");
        assert_eq!(parts.headers[header::HOST], "admin.test");
        assert_eq!(parts.uri, "/y");
        assert!(parts.uri.authority().is_none());
        let parts = canonical("GET / HTTP/1.1\r\nHost: A.TEST:80\r\n\r\n").expect("canonical");
        assert_eq!(parts.headers[header::HOST], "a.test");
    }

    #[test]
    fn requests_that_read_two_ways_are_refused() {
        let cases = [
            (
                "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                Malformation::DuplicateHost,
            ),
            ("GET / HTTP/1.1\r\n\r\n", Malformation::MissingHost),
            (
                "GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n",
                Malformation::InvalidHost,
            ),
            (
                "get / HTTP/1.1\r\nHost: a\r\n\r\n",
                Malformation::MethodCase,
            ),
            (
                "Delete / HTTP/1.1\r\nHost: a\r\n\r\n",
                Malformation::MethodCase,
            ),
            (
                "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
                Malformation::TargetForm,
            ),
            (
                "GET a.test:80 HTTP/1.1\r\nHost: a\r\n\r\n",
                Malformation::TargetForm,
            ),
            (
                "GET ftp://a.test/ HTTP/1.1\r\nHost: a\r\n\r\n",
                Malformation::TargetForm,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, Host\r\n\r\n",
                Malformation::ConnectionOption,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-forwarded-for\r\n\r\n",
                Malformation::ConnectionOption,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Rampart-Consumer\r\n\r\n",
                Malformation::ConnectionOption,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(canonical(text).map(|_| ()), Err(expected), "{text:?}");
        }
        // Extension methods and OPTIONS * are fine; HTTP/1.0 may omit Host.
        assert!(canonical("PURGE / HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(canonical("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(canonical("GET / HTTP/1.0\r\n\r\n").is_ok());
    }

    #[test]
    fn an_authority_known_on_the_connection_is_taken_as_canonical_only_when_equal() {
        let host = |value: &str, known: &[u8]| {
            let mut parts = request(&format!("GET / HTTP/1.1\r\nHost: {value}\r\n\r\n"));
            canonicalize(
                &mut parts,
                &policy(),
                80,
                Some(known),
                FieldNames::Unchecked,
            )
            .map(|()| parts.headers[header::HOST].clone())
        };
        assert_eq!(
            host("a.test:8080", b"a.test:8080"),
            Ok(HeaderValue::from_static("a.test:8080"))
        );
        // Another spelling is read in full.
        assert_eq!(
            host("A.test.", b"a.test"),
            Ok(HeaderValue::from_static("a.test"))
        );
        // An empty key (a first request without a host) never admits an empty Host.
        let mut parts = request("GET / HTTP/1.1\r\nHost:\r\n\r\n");
        assert_eq!(
            canonicalize(&mut parts, &policy(), 80, Some(b""), FieldNames::Unchecked),
            Err(Malformation::InvalidHost)
        );
    }

    #[test]
    fn underscored_and_internal_fields_are_removed() {
        let mut parts = request(
            "GET / HTTP/1.1\r\nHost: a\r\nX_Api_Key: k\r\nx-rampart-consumer: admin\r\nx-api-key: real\r\n\r\n",
        );
        canonicalize(&mut parts, &policy(), 80, None, FieldNames::Unchecked).expect("canonical");
        assert!(parts.headers.get("x_api_key").is_none());
        assert!(parts.headers.get("x-rampart-consumer").is_none());
        assert_eq!(parts.headers["x-api-key"], "real");

        let keep = RequestNormalization {
            underscores_in_headers: UnderscoresInHeaders::Keep,
            ..policy()
        };
        let mut parts = request(
            "GET / HTTP/1.1\r\nHost: a\r\nX_Custom: 1\r\nX_Rampart_Consumer: admin\r\nContent_Length: 5\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n",
        );
        canonicalize(&mut parts, &keep, 80, None, FieldNames::Unchecked).expect("canonical");
        assert_eq!(parts.headers["x_custom"], "1");
        for name in ["x_rampart_consumer", "content_length", "x_forwarded_for"] {
            assert!(parts.headers.get(name).is_none(), "{name}");
        }
    }

    #[test]
    fn upgrades_are_checked_against_the_route() {
        let allowed = vec!["websocket".to_string()];
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(upgrade_allowed(&headers, &allowed));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!upgrade_allowed(&headers, &allowed));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket, h2c"));
        assert!(!upgrade_allowed(&headers, &allowed));
        let everything = vec!["h2c".to_string()];
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!upgrade_allowed(&headers, &everything));
    }
}
