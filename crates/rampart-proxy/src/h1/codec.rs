//! HTTP/1.1 message heads and bodies as bytes (RFC 9112): parsing request and
//! response heads into `http` types, working out body framing, decoding chunked
//! bodies, and encoding heads. Pure functions over buffers, no I/O.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

/// Most header fields accepted in one head.
pub const MAX_HEADERS: usize = 128;

/// Longest chunk-size line (size, extensions and CRLF) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Why a head could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The head is longer than allowed or has too many fields (431 for requests).
    #[error("header section too large")]
    TooLarge,
    /// The head is not valid HTTP/1.x.
    #[error("malformed message head: {0}")]
    Malformed(&'static str),
    /// The request target holds bytes that must be percent-encoded (`<`, `>`, `"`,
    /// space, …), as a client that sends them raw does (`curl 'host/?q=<script>'`).
    #[error("the request target holds characters that must be percent-encoded")]
    UnencodedTarget,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
    /// The request's framing is ambiguous or unsupported (both Content-Length and
    /// Transfer-Encoding, several lengths, an unknown coding): its body cannot be
    /// found, so the connection ends after the (error) response.
    Invalid,
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, target, version and fields as the `http` crate holds them.
    pub parts: http::request::Parts,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The client asks for a protocol upgrade (`Connection: upgrade` + `Upgrade`).
    pub upgrade: bool,
    /// The field names need the canonical step's full check: a name has `_` or starts
    /// with `x-rampart-`, `Host` appears more than once, or `Connection` names another
    /// field. Noted in the pass that reads the head, so that most requests skip it.
    pub names_need_checking: bool,
}

/// How a response head's fields are handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFields {
    /// As a header map in the parts (for phases that read or change them).
    Map,
    /// As [`PassedFields`] beside the parts (the response head's `passed`), to be
    /// written out as they came;
    /// the map starts empty. Used when nothing on the route looks at the response's
    /// fields: it saves building a map that would only be encoded again.
    /// Interim and `101` responses always get a map.
    PassThrough,
}

/// A response's fields as the upstream sent them, less the hop-by-hop fields (and
/// those its `Connection` names) and `X-Request-Id` (the proxy sets its own):
/// shared slices of the received head, written out by [`encode_response_head`].
#[derive(Debug, Clone)]
pub struct PassedFields {
    head: Bytes,
    fields: smallvec::SmallVec<[PassedField; PASSED_INLINE]>,
    has_date: bool,
    /// Fields the proxy set (the request id), written after the passed ones.
    set: smallvec::SmallVec<[(HeaderName, HeaderValue); 1]>,
}

/// Passed fields kept inline; a response with more spills them to the heap.
const PASSED_INLINE: usize = 16;

/// Where one passed field lies in the head.
#[derive(Debug, Clone, Copy)]
struct PassedField {
    name: (u32, u32),
    value: (u32, u32),
    /// The field is `Content-Length`.
    is_length: bool,
}

impl PassedFields {
    /// The bytes at `span` of the head.
    fn at(&self, span: (u32, u32)) -> &[u8] {
        span_bytes(&self.head, span)
    }

    /// Whether the fields include `Date`.
    pub fn has_date(&self) -> bool {
        self.has_date
    }

    /// The fields as a header map (values share the head's storage). A field the
    /// `http` types refuse is left out; httparse, which read them, accepts the same
    /// name and value bytes, so none is.
    pub fn into_map(self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len() + self.set.len() + 1);
        for field in &self.fields {
            let name = HeaderName::from_bytes(self.at(field.name));
            let (start, end) = field.value;
            let value =
                HeaderValue::from_maybe_shared(self.head.slice(start as usize..end as usize));
            if let (Ok(name), Ok(value)) = (name, value) {
                map.append(name, value);
            }
        }
        for (name, value) in self.set {
            map.insert(name, value);
        }
        map
    }

    /// Puts the fields into `parts`' map, ahead of what the map already holds (fields
    /// set in the map itself, a name given once for all its values).
    pub fn fold_into(self, parts: &mut http::response::Parts) {
        let added = std::mem::replace(&mut parts.headers, self.into_map());
        let mut name = None;
        for (next, value) in added {
            if next.is_some() {
                name = next;
            }
            if let Some(name) = &name {
                parts.headers.append(name.clone(), value);
            }
        }
    }

    /// Sets a field on the response, replacing any passed field of that name.
    pub fn set(&mut self, name: &HeaderName, value: HeaderValue) {
        let head = &self.head;
        let named =
            |field: &PassedField| span_bytes(head, field.name).eq_ignore_ascii_case(name.as_ref());
        if self.fields.iter().any(named) {
            self.fields.retain(|field| !named(field));
        }
        match self.set.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value,
            None => self.set.push((name.clone(), value)),
        }
        self.has_date |= name == header::DATE;
    }

    /// Appends the fields; `Content-Length` only with `with_length`.
    fn encode(&self, out: &mut Vec<u8>, with_length: bool) {
        for field in &self.fields {
            if field.is_length && !with_length {
                continue;
            }
            out.extend_from_slice(self.at(field.name));
            out.extend_from_slice(b": ");
            out.extend_from_slice(self.at(field.value));
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in &self.set {
            push_field(out, name, value);
        }
    }

    /// Picks the end-to-end fields among `buf_fields` (parsed from `buf`) in the same
    /// pass that notes their facts; `head` is added once the head has been taken out
    /// of the buffer. Built where it will stay (the box), not moved there.
    fn scan(
        buf: &[u8],
        buf_fields: &[httparse::Header<'_>],
        facts: &mut FieldFacts,
    ) -> Box<PassedFields> {
        let mut passed = Box::new(PassedFields {
            head: Bytes::new(),
            fields: smallvec::SmallVec::new(),
            has_date: false,
            set: smallvec::SmallVec::new(),
        });
        for field in buf_fields {
            let name = field.name.as_bytes();
            let is_length = match facts.note(name, field.value) {
                FieldKind::HopByHop | FieldKind::RequestId => continue,
                FieldKind::ContentLength => true,
                FieldKind::Date => {
                    passed.has_date = true;
                    false
                }
                FieldKind::Other => false,
            };
            passed.fields.push(PassedField {
                name: span_in(buf, name),
                value: span_in(buf, field.value),
                is_length,
            });
        }
        if facts.names_fields {
            // The names a `Connection` field lists are hop-by-hop too (RFC 9110 §7.6.1).
            let listed: Vec<&[u8]> = buf_fields
                .iter()
                .filter(|f| token_is(f.name.as_bytes(), b"connection"))
                .flat_map(|f| f.value.split(|b| *b == b',').map(<[u8]>::trim_ascii))
                .collect();
            let name = |field: &PassedField| span_bytes(buf, field.name);
            passed
                .fields
                .retain(|field| !listed.iter().any(|t| t.eq_ignore_ascii_case(name(field))));
            passed.has_date = passed
                .fields
                .iter()
                .any(|field| token_is(name(field), b"date"));
        }
        passed
    }
}

/// Sets a field on a response head: among its passed-through fields when it has
/// them (`passed`), else in its map. Either way the field replaces any of the same name.
pub fn set_response_field(
    parts: &mut http::response::Parts,
    passed: Option<&mut PassedFields>,
    name: &HeaderName,
    value: HeaderValue,
) {
    match passed {
        Some(passed) => passed.set(name, value),
        None => {
            parts.headers.insert(name.clone(), value);
        }
    }
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status, version and fields (an empty map with [`ResponseFields::PassThrough`],
    /// the fields then being in `passed`).
    pub parts: http::response::Parts,
    /// The fields as received, with [`ResponseFields::PassThrough`] (boxed: the head
    /// travels up the request path by value).
    pub passed: Option<Box<PassedFields>>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
}

fn version_of(minor: Option<u8>) -> Result<Version, HeadError> {
    match minor {
        Some(1) => Ok(Version::HTTP_11),
        Some(0) => Ok(Version::HTTP_10),
        _ => Err(HeadError::Malformed("unsupported HTTP version")),
    }
}

/// Fields kept inline in a head's span list; longer heads spill to the heap.
const INLINE_FIELDS: usize = 24;

/// Where a head's parts lie in the bytes it was parsed from, so that they can be
/// taken as shared slices of one buffer instead of copied one by one.
struct Spans {
    /// (name start, name end, value start, value end) per field.
    fields: smallvec::SmallVec<[(u32, u32, u32, u32); INLINE_FIELDS]>,
}

impl Spans {
    /// Records the fields httparse found in `buf`.
    fn of(buf: &[u8], fields: &[httparse::Header<'_>]) -> Spans {
        let fields = fields
            .iter()
            .map(|field| {
                let (name_start, name_end) = span_in(buf, field.name.as_bytes());
                let (value_start, value_end) = span_in(buf, field.value);
                (name_start, name_end, value_start, value_end)
            })
            .collect();
        Spans { fields }
    }

    /// The fields as a map whose values share `head`'s storage. `spare` leaves room
    /// for fields the proxy adds, so they do not make the map grow.
    fn header_map(&self, head: &Bytes, spare: usize) -> Result<HeaderMap, HeadError> {
        let mut map = HeaderMap::with_capacity(self.fields.len() + spare);
        for &(name_start, name_end, value_start, value_end) in &self.fields {
            let name = head
                .get(name_start as usize..name_end as usize)
                .and_then(|name| HeaderName::from_bytes(name).ok())
                .ok_or(HeadError::Malformed("invalid header name"))?;
            let value = HeaderValue::from_maybe_shared(
                head.slice(value_start as usize..value_end as usize),
            )
            .map_err(|_| HeadError::Malformed("invalid header value"))?;
            map.append(name, value);
        }
        Ok(map)
    }
}

/// The bytes of `buf` at `span` (as `span_in` gives it); empty when out of range.
fn span_bytes(buf: &[u8], (start, end): (u32, u32)) -> &[u8] {
    buf.get(start as usize..end as usize).unwrap_or_default()
}

/// The position of `part` (a subslice of `buf`) within `buf`; empty when it is not one.
fn span_in(buf: &[u8], part: &[u8]) -> (u32, u32) {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= buf.len() && end <= u32::MAX as usize => (start as u32, end as u32),
        _ => (0, 0),
    }
}

/// Room left in a request's header map for fields phases add (the principal's, from
/// authentication); the proxy's own go beside the map. Kept small so that a typical
/// request's map stays a small allocation.
const REQUEST_SPARE_FIELDS: usize = 3;

/// What the fields that frame a message and manage its connection say, read in one
/// pass over the parsed fields (before the header map exists, so without lookups).
#[derive(Debug, Default)]
struct FieldFacts {
    /// The first and second `Content-Length` values (parsed; `Some(None)`: invalid).
    lengths: [Option<Option<u64>>; 2],
    /// `Transfer-Encoding` fields seen.
    codings: usize,
    /// The first `Transfer-Encoding` field is exactly `chunked`.
    first_coding_chunked: bool,
    /// The last `Transfer-Encoding` field ends with `chunked`.
    last_coding_chunked: bool,
    /// `Connection` tokens seen.
    close: bool,
    keep_alive: bool,
    connection_upgrade: bool,
    /// The first `Expect` field is `100-continue`.
    expect_continue: bool,
    /// An `Upgrade` field is present.
    upgrade: bool,
    /// An `Expect` field has been seen.
    expect_seen: bool,
    /// A `Connection` field names another field (a token other than `close`,
    /// `keep-alive` and `upgrade`).
    names_fields: bool,
}

/// What one field is, as far as forwarding it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    /// A hop-by-hop field: not forwarded.
    HopByHop,
    /// `Content-Length`: replaced by the body's framing when there is a body.
    ContentLength,
    /// `Date`.
    Date,
    /// `X-Request-Id`: the proxy sets its own on responses.
    RequestId,
    /// Any other field.
    Other,
}

impl FieldFacts {
    fn of(fields: &[httparse::Header<'_>]) -> FieldFacts {
        let mut facts = FieldFacts::default();
        for field in fields {
            facts.note(field.name.as_bytes(), field.value);
        }
        facts
    }

    /// Notes one field and says what it is.
    fn note(&mut self, name: &[u8], value: &[u8]) -> FieldKind {
        // Compared only when the length matches: most fields cost one comparison.
        match name.len() {
            14 if token_is(name, b"content-length") => {
                if let Some(slot) = self.lengths.iter_mut().find(|l| l.is_none()) {
                    *slot = Some(parse_length(value));
                }
                FieldKind::ContentLength
            }
            17 if token_is(name, b"transfer-encoding") => {
                if self.codings == 0 {
                    self.first_coding_chunked = token_is(value.trim_ascii(), b"chunked");
                }
                self.codings += 1;
                let last = value.rsplit(|b| *b == b',').next().unwrap_or_default();
                self.last_coding_chunked = token_is(last.trim_ascii(), b"chunked");
                FieldKind::HopByHop
            }
            10 if token_is(name, b"connection") => {
                for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    let close = token_is(token, b"close");
                    let keep_alive = token_is(token, b"keep-alive");
                    let upgrade = token_is(token, b"upgrade");
                    self.close |= close;
                    self.keep_alive |= keep_alive;
                    self.connection_upgrade |= upgrade;
                    self.names_fields |= !(token.is_empty() || close || keep_alive || upgrade);
                }
                FieldKind::HopByHop
            }
            6 if !self.expect_seen && token_is(name, b"expect") => {
                self.expect_seen = true;
                self.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
                FieldKind::Other
            }
            7 if token_is(name, b"upgrade") => {
                self.upgrade = true;
                FieldKind::HopByHop
            }
            4 if token_is(name, b"date") => FieldKind::Date,
            12 if token_is(name, b"x-request-id") => FieldKind::RequestId,
            _ if crate::headers::is_hop_by_hop(name) => FieldKind::HopByHop,
            _ => FieldKind::Other,
        }
    }

    /// Whether the connection may stay open after this message (RFC 9112 §9.3).
    fn keep_alive(&self, version: Version) -> bool {
        if version == Version::HTTP_11 {
            !self.close
        } else {
            self.keep_alive
        }
    }

    /// Body framing of a request (RFC 9112 §6.3), strict: anything ambiguous is `Invalid`.
    fn request_framing(&self, version: Version) -> Framing {
        match (self.lengths[0], self.codings > 0) {
            (None, false) => Framing::Empty,
            (Some(_), true) => Framing::Invalid,
            (Some(length), false) => match length {
                // A second Content-Length field, whatever its value.
                Some(_) if self.lengths[1].is_some() => Framing::Invalid,
                Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
                None => Framing::Invalid,
            },
            (None, true) => {
                if self.codings == 1 && self.first_coding_chunked && version == Version::HTTP_11 {
                    Framing::Chunked
                } else {
                    Framing::Invalid
                }
            }
        }
    }

    /// Body framing of a response whose body is not ruled out by its status or method.
    fn response_framing(&self) -> Result<Framing, HeadError> {
        if self.codings > 0 {
            return Ok(if self.last_coding_chunked {
                Framing::Chunked
            } else {
                Framing::UntilClose
            });
        }
        match self.lengths {
            [None, _] => Ok(Framing::UntilClose),
            [Some(Some(0)), None] => Ok(Framing::Empty),
            [Some(Some(n)), None] => Ok(Framing::Length(n)),
            [Some(Some(n)), Some(other)] if other == Some(n) => Ok(Framing::Length(n)),
            _ => Err(HeadError::Malformed("invalid Content-Length")),
        }
    }
}

/// Whether `token` is `lower` (lower-case letters and `-`) in any case. Setting bit
/// 0x20 lower-cases a letter and keeps `-`; of the other bytes only CR would become
/// one of those (`-`), and httparse lets no CR into a field name or value.
fn token_is(token: &[u8], lower: &[u8]) -> bool {
    token.len() == lower.len() && token.iter().zip(lower).all(|(t, l)| t | 0x20 == *l)
}

fn parse_length(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Whether a request line that did not parse is `METHOD TARGET HTTP/1.x` whose target
/// holds a byte a URI may carry only percent-encoded.
fn target_needs_encoding(buf: &[u8]) -> bool {
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (Some(first), Some(last)) = (
        line.iter().position(|b| *b == b' '),
        line.iter().rposition(|b| *b == b' '),
    ) else {
        return false;
    };
    if first >= last || !line[last + 1..].starts_with(b"HTTP/1.") {
        return false;
    }
    line[first + 1..last].iter().any(|b| needs_encoding(*b))
}

/// Whether `byte` may appear in a request target only percent-encoded: what browsers
/// always encode (the WHATWG URL standard's query percent-encode set: `"`, `<`, `>`,
/// space, controls, non-ASCII). `{`, `|` and the like, which RFC 3986 also excludes,
/// are sent raw in queries by browsers and are left to the URI parser.
fn needs_encoding(byte: u8) -> bool {
    matches!(byte, b'"' | b'<' | b'>') || !(0x21..=0x7e).contains(&byte)
}

/// Parses a request head at the start of `buf` and takes it out of `buf` (the
/// head's fields keep sharing its storage). `Ok(None)`: incomplete (read more,
/// unless `buf` already holds `max_head` bytes, which is `TooLarge`).
pub fn parse_request(
    buf: &mut BytesMut,
    max_head: usize,
) -> Result<Option<RequestHead>, HeadError> {
    // Uninitialised slots: httparse writes the ones it fills (no 4 KiB clear per head).
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let consumed = match request.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) if n > max_head => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) if target_needs_encoding(buf) => return Err(HeadError::UnencodedTarget),
        Err(_) => return Err(HeadError::Malformed("invalid request head")),
    };
    let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let version = version_of(request.version)?;
    let target = span_in(buf, request.path.unwrap_or_default().as_bytes());
    let spans = Spans::of(buf, request.headers);
    let facts = FieldFacts::of(request.headers);
    let names_need_checking = facts.names_fields || names_need_checking(request.headers);
    let head = buf.split_to(consumed).freeze();
    let uri =
        Uri::from_maybe_shared(head.slice(target.0 as usize..target.1 as usize)).map_err(|_| {
            // Read again only to say why (`"` alone passes the URI parser; the canonical
            // path refuses it there).
            if span_bytes(&head, target).iter().any(|b| needs_encoding(*b)) {
                HeadError::UnencodedTarget
            } else {
                HeadError::Malformed("invalid request target")
            }
        })?;
    if uri.path_and_query().is_none() && uri.authority().is_none() {
        return Err(HeadError::Malformed("invalid request target"));
    }
    let headers = spans.header_map(&head, REQUEST_SPARE_FIELDS)?;
    let framing = facts.request_framing(version);
    let keep_alive = facts.keep_alive(version) && framing != Framing::Invalid;
    let expect_continue = version == Version::HTTP_11 && facts.expect_continue;
    let upgrade = version == Version::HTTP_11 && facts.upgrade && facts.connection_upgrade;
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(RequestHead {
        parts,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
        names_need_checking,
    }))
}

/// Whether a field name has `_` or the `x-rampart-` prefix (in any case), or `Host`
/// appears more than once.
fn names_need_checking(fields: &[httparse::Header<'_>]) -> bool {
    let mut hosts = 0;
    for field in fields {
        let name = field.name.as_bytes();
        if name.contains(&b'_')
            || name
                .get(..10)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"x-rampart-"))
        {
            return true;
        }
        if name.len() == 4 && token_is(name, b"host") {
            hosts += 1;
        }
    }
    hosts > 1
}

/// Parses a response head at the start of `buf` for a request with `method`, and
/// takes it out of `buf` (its fields keep sharing the storage), handing the fields on
/// as `fields` says. `Ok(None)`: incomplete.
pub fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
    max_head: usize,
    fields_as: ResponseFields,
) -> Result<Option<ResponseHead>, HeadError> {
    // Uninitialised slots: httparse writes the ones it fills (no 4 KiB clear per head).
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let consumed = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(n)) if n > max_head => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed("invalid response head")),
    };
    let status = StatusCode::from_u16(response.code.unwrap_or_default())
        .map_err(|_| HeadError::Malformed("invalid status code"))?;
    let version = version_of(response.version)?;
    /// The fields, as they will be handed on. (Matched at once, so the variants'
    /// difference in size costs nothing.)
    #[allow(clippy::large_enum_variant)]
    enum Fields {
        Passed(Box<PassedFields>),
        ForMap(Spans),
    }
    let mut facts = FieldFacts::default();
    let fields = if fields_as == ResponseFields::PassThrough && !status.is_informational() {
        Fields::Passed(PassedFields::scan(buf, response.headers, &mut facts))
    } else {
        facts = FieldFacts::of(response.headers);
        Fields::ForMap(Spans::of(buf, response.headers))
    };
    let head = buf.split_to(consumed).freeze();
    let mut parts = http::Response::new(()).into_parts().0;
    let passed = match fields {
        // The fields the proxy sets go with the passed ones (`set_response_field`):
        // the map stays empty, without an allocation.
        Fields::Passed(mut passed) => {
            passed.head = head;
            Some(passed)
        }
        // Room for the one field the proxy adds (the request id); kept small so that a
        // typical response's map stays a small allocation.
        Fields::ForMap(spans) => {
            parts.headers = spans.header_map(&head, 1)?;
            None
        }
    };
    let framing = if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else {
        facts.response_framing()?
    };
    let keep_alive = facts.keep_alive(version) && framing != Framing::UntilClose;
    parts.status = status;
    parts.version = version;
    Ok(Some(ResponseHead {
        parts,
        passed,
        framing,
        keep_alive,
    }))
}

/// Why a chunked body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The chunk framing is broken.
    #[error("invalid chunked encoding: {0}")]
    Invalid(&'static str),
    /// The trailer section is larger than allowed.
    #[error("chunked trailers too large")]
    TrailersTooLarge,
}

/// What the decoder produced from the buffer.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The body ended, with these trailer fields (possibly none).
    End(HeaderMap),
    /// More input is needed.
    NeedMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: reading the trailer section.
    Trailers,
    /// Finished.
    Done,
}

/// Incremental decoder of a chunked body (RFC 9112 §7.1).
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    max_trailers: usize,
}

impl ChunkedDecoder {
    /// A decoder accepting trailer sections up to `max_trailers` bytes.
    pub fn new(max_trailers: usize) -> Self {
        Self {
            state: ChunkState::Size,
            max_trailers,
        }
    }

    /// Whether the final chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from the front of `buf`, consuming what it uses.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(Decoded::End(HeaderMap::new())),
                ChunkState::Size => {
                    let Some(line_end) = buf.iter().position(|b| *b == b'\n') else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(ChunkError::Invalid("chunk-size line too long"));
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    if line_end > MAX_CHUNK_LINE {
                        return Err(ChunkError::Invalid("chunk-size line too long"));
                    }
                    // CRLF only: a bare LF (or a CR inside the line) is a line end to
                    // some parsers and not to others.
                    let line = buf[..line_end]
                        .strip_suffix(b"\r")
                        .ok_or(ChunkError::Invalid("bare LF in chunk-size line"))?;
                    if line.iter().any(|b| *b < 0x20 && *b != b'\t' || *b == 0x7f) {
                        return Err(ChunkError::Invalid("control byte in chunk-size line"));
                    }
                    let size_part = match line.iter().position(|b| *b == b';') {
                        Some(i) => &line[..i],
                        None => line,
                    };
                    let size_part = size_part.trim_ascii_end();
                    if size_part.is_empty() || size_part.len() > 15 {
                        return Err(ChunkError::Invalid("bad chunk size"));
                    }
                    let mut size: u64 = 0;
                    for b in size_part {
                        let digit = (*b as char)
                            .to_digit(16)
                            .ok_or(ChunkError::Invalid("bad chunk size"))?;
                        size = size * 16 + u64::from(digit);
                    }
                    buf.advance(line_end + 1);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = left.min(buf.len() as u64) as usize;
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    match buf.get(..2) {
                        Some(b"\r\n") => buf.advance(2),
                        Some(_) => return Err(ChunkError::Invalid("missing CRLF after chunk")),
                        None if buf.first().is_some_and(|b| *b != b'\r') => {
                            return Err(ChunkError::Invalid("missing CRLF after chunk"))
                        }
                        None => return Ok(Decoded::NeedMore),
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    // The trailer section ends with an empty line; every line ends with
                    // CRLF. The search never looks past the first bare LF, so the
                    // section cannot reach into a message pipelined after it.
                    match buf.get(..2) {
                        Some(b"\r\n") => {
                            buf.advance(2);
                            self.state = ChunkState::Done;
                            return Ok(Decoded::End(HeaderMap::new()));
                        }
                        None if buf.first().is_none_or(|b| *b == b'\r') => {
                            return Ok(Decoded::NeedMore)
                        }
                        _ => {}
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
                    let scanned = &buf[..end.unwrap_or(buf.len())];
                    let bare_lf = scanned
                        .iter()
                        .enumerate()
                        .any(|(i, b)| *b == b'\n' && (i == 0 || scanned[i - 1] != b'\r'));
                    if bare_lf {
                        return Err(ChunkError::Invalid("bare LF in trailer section"));
                    }
                    let Some(end) = end else {
                        if buf.len() > self.max_trailers {
                            return Err(ChunkError::TrailersTooLarge);
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    if end > self.max_trailers {
                        return Err(ChunkError::TrailersTooLarge);
                    }
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let spans = match httparse::parse_headers(&buf[..end], &mut fields) {
                        Ok(httparse::Status::Complete((_, fields))) => Spans::of(buf, fields),
                        _ => return Err(ChunkError::Invalid("invalid trailer section")),
                    };
                    let section = buf.split_to(end).freeze();
                    let trailers = spans
                        .header_map(&section, 0)
                        .map_err(|_| ChunkError::Invalid("invalid trailer field"))?;
                    self.state = ChunkState::Done;
                    return Ok(Decoded::End(trailers));
                }
            }
        }
    }
}

/// The reason phrase written for a status.
fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Unknown")
}

fn push_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        push_field(out, name, value);
    }
}

/// Appends a request head: the request line, `host`, `headers` (less any `Host`
/// and framing fields), the `added` fields, then `framing`'s field.
pub fn encode_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    host: Option<&HeaderValue>,
    headers: &HeaderMap,
    added: &crate::headers::AddedFields,
    framing: Framing,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        if name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
        {
            continue;
        }
        push_field(out, name, value);
    }
    for (name, value) in added.iter() {
        push_field(out, name, value);
    }
    push_framing(out, framing);
    out.extend_from_slice(b"\r\n");
}

fn push_framing(out: &mut Vec<u8>, framing: Framing) {
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::UntilClose | Framing::Invalid => {}
    }
}

/// Appends a response head: `passed` fields first, then `headers`. `framing` adds its
/// field (`Length` or `Chunked`) and, unless it is `Empty` (a response without a body
/// keeps the fields it has), replaces any `Content-Length` or `Transfer-Encoding`
/// among the fields; `connection` adds a `Connection` field with that value.
pub fn encode_response_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    passed: Option<&PassedFields>,
    headers: &HeaderMap,
    framing: Framing,
    connection: Option<&'static str>,
    date: Option<&[u8]>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(passed) = passed {
        passed.encode(out, framing == Framing::Empty);
    }
    if framing == Framing::Empty {
        push_fields(out, headers);
    } else {
        // The body's framing replaces the fields' own.
        for (name, value) in headers {
            if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
                push_field(out, name, value);
            }
        }
    }
    push_framing(out, framing);
    if let Some(value) = connection {
        out.extend_from_slice(b"connection: ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(date) = date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk's size line.
pub fn encode_chunk_size(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
}

/// Appends the last chunk and the trailer section.
pub fn encode_last_chunk(out: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    if let Some(trailers) = trailers {
        push_fields(out, trailers);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text`; on success also says how many bytes the head took.
    fn request(text: &str) -> Result<Option<(RequestHead, usize)>, HeadError> {
        let mut buf = BytesMut::from(text);
        let head = parse_request(&mut buf, 8192)?;
        Ok(head.map(|head| (head, text.len() - buf.len())))
    }

    fn framing(text: &str) -> Framing {
        match request(text) {
            Ok(Some((head, _))) => head.framing,
            other => panic!("not parsed: {other:?}"),
        }
    }

    #[test]
    fn parses_a_simple_request() {
        let text = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\n\r\nrest";
        let (head, n) = request(text).expect("valid").expect("complete");
        assert_eq!(n, text.len() - 4);
        assert_eq!(head.parts.method, Method::GET);
        assert_eq!(head.parts.uri.path(), "/a");
        assert_eq!(head.parts.uri.query(), Some("b=1"));
        assert_eq!(head.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(head.framing, Framing::Empty);
        assert!(head.keep_alive);
        assert!(!head.upgrade);
    }

    #[test]
    fn incomplete_and_oversized_heads() {
        assert!(matches!(request("GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None)));
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(request(&long).err(), Some(HeadError::TooLarge));
        let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
        let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse_request(&mut BytesMut::from(text.as_str()), 1 << 20).err(),
            Some(HeadError::TooLarge)
        );
        assert!(matches!(
            request("GET / HTTP/1.1\r\nBad Name: v\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            request("GET / HTTP/2.0\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn request_framing_is_strict() {
        assert_eq!(
            framing("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Framing::Chunked
        );
        for ambiguous in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(framing(ambiguous), Framing::Invalid, "{ambiguous:?}");
            let (head, _) = request(ambiguous).expect("valid").expect("complete");
            assert!(!head.keep_alive, "an unframed body ends the connection");
        }
    }

    #[test]
    fn keep_alive_upgrade_and_expect() {
        let (head, _) = request("GET / HTTP/1.0\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(!head.keep_alive);
        let (head, _) = request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(head.keep_alive);
        let (head, _) =
            request("GET / HTTP/1.1\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n")
                .expect("ok")
                .expect("complete");
        assert!(head.upgrade && !head.keep_alive);
        let (head, _) =
            request("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
                .expect("ok")
                .expect("complete");
        assert!(head.expect_continue);
    }

    #[test]
    fn response_framing() {
        let parse = |text: &str, method: &Method| {
            parse_response(&mut BytesMut::from(text), method, 8192, ResponseFields::Map)
                .expect("valid")
                .expect("complete")
        };
        let get = Method::GET;
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", &get).framing,
            Framing::Length(3)
        );
        assert_eq!(
            parse(
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                &Method::HEAD
            )
            .framing,
            Framing::Empty
        );
        assert_eq!(
            parse(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
                &get
            )
            .framing,
            Framing::Empty
        );
        let chunked = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &get,
        );
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(chunked.keep_alive);
        let close = parse("HTTP/1.1 200 OK\r\n\r\n", &get);
        assert_eq!(close.framing, Framing::UntilClose);
        assert!(!close.keep_alive);
        assert!(!parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", &get).keep_alive);
        assert!(parse_response(
            &mut BytesMut::from(
                &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..]
            ),
            &get,
            8192,
            ResponseFields::Map
        )
        .is_err());
    }

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, HeaderMap), ChunkError> {
        let mut decoder = ChunkedDecoder::new(1024);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End(trailers) => return Ok((out, trailers)),
                Decoded::NeedMore => {
                    if fed >= input.len() {
                        return Err(ChunkError::Invalid("truncated"));
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_decoding_in_any_split() {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 9\r\n\r\n";
        for step in [1, 2, 3, 7, input.len()] {
            let (body, trailers) = decode_all(input, step).expect("valid");
            assert_eq!(body, b"hello world", "step {step}");
            assert_eq!(trailers.get("x-sum").map(|v| v.as_bytes()), Some(&b"9"[..]));
        }
        let (body, trailers) = decode_all(b"3\r\nabc\r\n0\r\n\r\n", 1).expect("valid");
        assert_eq!(body, b"abc");
        assert!(trailers.is_empty());
    }

    #[test]
    fn chunked_decoding_refuses_garbage() {
        for bad in [
            &b"zz\r\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"fffffffffffffffff\r\n",
            b"\r\n",
        ] {
            assert!(
                decode_all(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_line = format!("1;{}\r\n", "e".repeat(5000));
        assert!(decode_all(long_line.as_bytes(), 100).is_err());
        let big_trailers = format!("0\r\nX: {}\r\n\r\n", "t".repeat(2000));
        assert_eq!(
            decode_all(big_trailers.as_bytes(), 100).err(),
            Some(ChunkError::TrailersTooLarge)
        );
    }

    #[test]
    fn a_target_with_raw_angle_brackets_or_quotes_says_so() {
        for line in [
            &b"GET /?q=<script> HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(
                parse_request(&mut BytesMut::from(line), 8192).err(),
                Some(HeadError::UnencodedTarget),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(
            parse_request(
                &mut BytesMut::from(&b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"[..]),
                8192
            )
            .err(),
            Some(HeadError::Malformed("invalid request head"))
        );
    }

    #[test]
    fn heads_whose_names_need_the_full_check_are_marked() {
        let marked = |fields: &str| {
            let text = format!("GET / HTTP/1.1\r\n{fields}\r\n");
            parse_request(&mut BytesMut::from(text.as_str()), 8192)
                .expect("parses")
                .expect("complete")
                .names_need_checking
        };
        assert!(!marked("Host: a\r\nAccept: */*\r\nConnection: close\r\n"));
        for fields in [
            "Host: a\r\nX_Api_Key: k\r\n",
            "Host: a\r\nx-rampart-consumer: admin\r\n",
            "Host: a\r\nX-Rampart-Consumer: admin\r\n",
            "Host: a\r\nHOST: b\r\n",
            "Host: a\r\nConnection: x-forwarded-for\r\n",
        ] {
            assert!(marked(fields), "{fields:?}");
        }
    }

    #[test]
    fn chunked_framing_takes_crlf_only() {
        for bad in [
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabc\n0\r\n\r\n",
            b"3\r\nabc\r\n0\n\r\n",
            b"3\r\nabc\r\n0\r\n\n",
            b"3\r\nabc\r\n0\r\nX: 1\n\r\n",
            b"3\r\nabc\r\n0\r\nX: 1\r\n\n",
            b"3;a\rb\r\nabc\r\n0\r\n\r\n",
        ] {
            for step in [1, bad.len()] {
                assert!(
                    decode_all(bad, step).is_err(),
                    "{:?} in steps of {step}",
                    String::from_utf8_lossy(bad)
                );
            }
        }
    }

    #[test]
    fn a_trailer_section_never_reaches_into_the_next_message() {
        // A trailer line ending in a bare LF, then a pipelined request: the decoder must
        // stop at the bare LF, not search on to the next message's blank line.
        let input = b"0\r\nX: 1\n\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut decoder = ChunkedDecoder::new(4096);
        let mut buf = BytesMut::from(&input[..]);
        assert!(decoder.decode(&mut buf).is_err());
        // A well-formed section is consumed exactly, leaving the next request.
        let input = b"0\r\nX: 1\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut decoder = ChunkedDecoder::new(4096);
        let mut buf = BytesMut::from(&input[..]);
        assert!(matches!(decoder.decode(&mut buf), Ok(Decoded::End(_))));
        assert_eq!(&buf[..], b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    mod passed_fields_property {
        use super::*;
        use proptest::prelude::*;

        /// Field names drawn from those the codec treats specially and ordinary ones.
        const NAMES: [&str; 14] = [
            "Connection",
            "connection",
            "Keep-Alive",
            "Transfer-Encoding",
            "Upgrade",
            "TE",
            "Trailer",
            "X-Request-Id",
            "Date",
            "Content-Type",
            "X-Private",
            "x-private",
            "Set-Cookie",
            "Cache-Control",
        ];
        const VALUES: [&str; 8] = [
            "close",
            "keep-alive",
            "x-private",
            "X-Private, close",
            "set-cookie",
            "chunked",
            "text/plain",
            "a=1",
        ];

        fn head(status: u16, fields: &[(usize, usize)]) -> Vec<u8> {
            let mut text = format!("HTTP/1.1 {status} X\r\n");
            for (name, value) in fields {
                text.push_str(&format!("{}: {}\r\n", NAMES[*name], VALUES[*value]));
            }
            text.push_str("Content-Length: 0\r\n\r\n");
            text.into_bytes()
        }

        proptest! {
            /// Passed-through fields, once in a map, are the map's fields less the
            /// hop-by-hop ones (and those `Connection` names) and the request id; both
            /// ways agree on framing and keep-alive.
            #[test]
            fn pass_through_equals_the_map_less_hop_by_hop(
                status in prop::sample::select(vec![200u16, 204, 301, 404, 500]),
                fields in prop::collection::vec((0..NAMES.len(), 0..VALUES.len()), 0..12),
            ) {
                let bytes = head(status, &fields);
                let get = Method::GET;
                let as_map = parse_response(&mut BytesMut::from(&bytes[..]), &get, 8192, ResponseFields::Map);
                let passed = parse_response(&mut BytesMut::from(&bytes[..]), &get, 8192, ResponseFields::PassThrough);
                match (as_map, passed) {
                    (Ok(Some(mut as_map)), Ok(Some(passed))) => {
                        prop_assert_eq!(as_map.framing, passed.framing);
                        prop_assert_eq!(as_map.keep_alive, passed.keep_alive);
                        let fields = passed.passed.expect("a final response passes through");
                        crate::headers::remove_hop_by_hop(&mut as_map.parts.headers, false);
                        as_map.parts.headers.remove(&crate::headers::X_REQUEST_ID);
                        prop_assert_eq!(fields.into_map(), as_map.parts.headers);
                    }
                    (Err(_), Err(_)) => {}
                    (a, b) => prop_assert!(false, "the two ways disagree: {:?} / {:?}", a, b),
                }
            }
        }
    }

    #[test]
    fn tokens_compare_in_any_case() {
        assert!(token_is(b"Content-Length", b"content-length"));
        assert!(token_is(b"KEEP-ALIVE", b"keep-alive"));
        assert!(!token_is(b"keep-alivf", b"keep-alive"));
        assert!(!token_is(b"close ", b"close"));
        assert!(!token_is(b"clos", b"close"));
    }

    fn passed(text: &str, method: &Method) -> ResponseHead {
        parse_response(
            &mut BytesMut::from(text),
            method,
            8192,
            ResponseFields::PassThrough,
        )
        .expect("valid")
        .expect("complete")
    }

    fn encoded(head: &ResponseHead, framing: Framing, date: Option<&[u8]>) -> String {
        let mut out = Vec::new();
        encode_response_head(
            &mut out,
            head.parts.status,
            head.passed.as_deref(),
            &head.parts.headers,
            framing,
            None,
            date,
        );
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn passed_through_fields_leave_out_hop_by_hop_ones() {
        let text = "HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive, X-Secret\r\n\
                    X-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Request-Id: theirs\r\n\
                    Content-Length: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
                    Proxy-Connection: x\r\nTrailer: x\r\nTE: x\r\nUpgrade: x\r\n\r\nok";
        let mut head = passed(text, &Method::GET);
        assert!(head.parts.headers.is_empty(), "the fields are not in a map");
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        let fields = head.passed.as_deref().expect("passed");
        assert!(!fields.has_date());
        assert_eq!(
            encoded(&head, Framing::Empty, None),
            "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\n\
             Set-Cookie: b=2\r\n\r\n",
            "only the end-to-end fields pass, as they were sent"
        );
        head.parts
            .headers
            .insert("x-request-id", HeaderValue::from_static("ours"));
        assert_eq!(
            encoded(&head, Framing::Length(2), Some(b"D")),
            "HTTP/1.1 200 OK\r\nServer: up\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
             x-request-id: ours\r\ncontent-length: 2\r\ndate: D\r\n\r\n",
            "the body's framing replaces the field's Content-Length"
        );
        // Without a body the field's own length is what is sent.
        let head = passed(
            "HTTP/1.1 200 OK\r\nDate: then\r\nContent-Length: 7\r\n\r\n",
            &Method::HEAD,
        );
        let fields = head.passed.as_deref().expect("passed");
        assert!(fields.has_date());
        assert_eq!(
            encoded(&head, Framing::Empty, None),
            "HTTP/1.1 200 OK\r\nDate: then\r\nContent-Length: 7\r\n\r\n"
        );
    }

    #[test]
    fn passed_fields_become_the_same_map_as_parsing_into_one() {
        let text = "HTTP/1.1 200 OK\r\nServer: up\r\nSet-Cookie: a=1\r\nX-Request-Id: theirs\r\n\
                    Connection: X-Private\r\nX-Private: 1\r\nSet-Cookie: b=2\r\n\
                    Content-Length: 0\r\n\r\n";
        let mut passed = passed(text, &Method::GET);
        let fields = passed.passed.take().expect("passed");
        let mut as_map = parse_response(
            &mut BytesMut::from(text),
            &Method::GET,
            8192,
            ResponseFields::Map,
        )
        .expect("valid")
        .expect("complete");
        crate::headers::remove_hop_by_hop(&mut as_map.parts.headers, false);
        as_map.parts.headers.remove("x-request-id");
        let map = fields.into_map();
        assert_eq!(map, as_map.parts.headers);
        let cookies: Vec<_> = map.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"], "order kept");
    }

    #[test]
    fn a_field_set_on_passed_fields_replaces_theirs_and_follows_them() {
        let mut head = passed(
            "HTTP/1.1 200 OK\r\nServer: up\r\nX-Mark: theirs\r\nDate: then\r\n\r\n",
            &Method::HEAD,
        );
        set_response_field(
            &mut head.parts,
            head.passed.as_deref_mut(),
            &HeaderName::from_static("x-mark"),
            HeaderValue::from_static("ours"),
        );
        set_response_field(
            &mut head.parts,
            head.passed.as_deref_mut(),
            &HeaderName::from_static("x-mark"),
            HeaderValue::from_static("ours again"),
        );
        assert!(head.parts.headers.is_empty(), "the map stays empty");
        assert_eq!(
            encoded(&head, Framing::Empty, None),
            "HTTP/1.1 200 OK\r\nServer: up\r\nDate: then\r\nx-mark: ours again\r\n\r\n"
        );
        let fields = head.passed.take().expect("passed");
        let map = fields.into_map();
        assert_eq!(
            map.get_all("x-mark").iter().collect::<Vec<_>>(),
            ["ours again"]
        );
        // Without passed fields, the map takes it.
        let mut plain = http::Response::new(()).into_parts().0;
        set_response_field(
            &mut plain,
            None,
            &HeaderName::from_static("x-mark"),
            HeaderValue::from_static("1"),
        );
        assert_eq!(plain.headers["x-mark"], "1");
    }

    #[test]
    fn interim_responses_always_get_a_map() {
        let head = passed(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            &Method::GET,
        );
        assert!(head.passed.is_none());
        assert_eq!(head.parts.headers.len(), 2);
    }

    #[test]
    fn encodes_heads() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        let mut out = Vec::new();
        headers.insert("host", HeaderValue::from_static("ignored"));
        headers.insert("content-length", HeaderValue::from_static("99"));
        let host = HeaderValue::from_static("h");
        encode_request_head(
            &mut out,
            &Method::POST,
            "/p?q",
            Some(&host),
            &headers,
            &crate::headers::AddedFields::default(),
            Framing::Length(4),
        );
        assert_eq!(
            out,
            b"POST /p?q HTTP/1.1\r\nhost: h\r\nx-a: 1\r\ncontent-length: 4\r\n\r\n".to_vec()
        );
        headers.remove("host");
        out.clear();
        encode_response_head(
            &mut out,
            StatusCode::NOT_FOUND,
            None,
            &headers,
            Framing::Chunked,
            Some("close"),
            None,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\nx-a: 1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                .to_vec(),
            "the body's framing replaces the fields' content-length"
        );
        // Without a body (HEAD, 204, 304) the fields' own framing is what is sent.
        out.clear();
        encode_response_head(
            &mut out,
            StatusCode::OK,
            None,
            &headers,
            Framing::Empty,
            None,
            None,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 99\r\n\r\n".to_vec()
        );
    }
}
