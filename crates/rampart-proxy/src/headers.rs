//! Proxy header semantics: hop-by-hop removal, forwarding headers, request ids,
//! and trace context. (Body framing, and with it the request-smuggling checks, is
//! decided by the HTTP/1.1 codec.)

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// The request-id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C trace context header.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Longest request id kept from a client; longer or odd ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// The hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy `Keep-Alive` and
/// `Proxy-Connection`).
const HOP_BY_HOP_NAMES: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "proxy-authenticate",
    "proxy-authorization",
    "upgrade",
];

static HOP_BY_HOP: [HeaderName; 9] = [
    HeaderName::from_static(HOP_BY_HOP_NAMES[0]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[1]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[2]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[3]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[4]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[5]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[6]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[7]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[8]),
];

/// Whether `name` is one of the hop-by-hop fields, in any case.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    // Most names match no hop-by-hop field's length and cost one test.
    name.len() < 32
        && HOP_BY_HOP_LENGTHS & (1 << name.len()) != 0
        && HOP_BY_HOP_NAMES
            .iter()
            .any(|hop| hop.len() == name.len() && hop.as_bytes().eq_ignore_ascii_case(name))
}

/// Bit `n` set when a hop-by-hop field's name is `n` bytes long (all are under 32).
const HOP_BY_HOP_LENGTHS: u32 = {
    let mut mask = 0u32;
    let mut i = 0;
    while i < HOP_BY_HOP_NAMES.len() {
        mask |= 1 << HOP_BY_HOP_NAMES[i].len();
        i += 1;
    }
    mask
};

/// Index of `te` in [`HOP_BY_HOP_NAMES`].
const TE_INDEX: usize = 3;
const _: () = assert!(matches!(HOP_BY_HOP_NAMES[TE_INDEX].as_bytes(), b"te"));

/// Removes hop-by-hop headers and every header named in `Connection`. With
/// `keep_upgrade`, `Connection: upgrade` and `Upgrade` survive (WebSocket pass-through).
///
/// Returns whether the removed `TE` listed `trailers` (RFC 9110 §10.1.4): `TE:
/// trailers` is the one `TE` an HTTP/2 request may carry (RFC 9113 §8.2.2), gRPC
/// requires it (gRPC over HTTP/2, "Requests": `TE → "te" "trailers"`), and an HTTP/2
/// upstream is sent it again (`Outbound::te_trailers`).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) -> bool {
    // One pass over the names notes which hop-by-hop fields are present (most
    // messages carry none, or only `Connection`); only those are then removed.
    let mut present = 0u16;
    for name in headers.keys() {
        // Names are compared only when their lengths match.
        let len = name.as_str().len();
        let same = (0..HOP_BY_HOP.len())
            .find(|&i| HOP_BY_HOP_NAMES[i].len() == len && HOP_BY_HOP[i] == *name);
        if let Some(i) = same {
            present |= 1 << i;
        }
    }
    // Read before `Connection: te` can remove it.
    let te_trailers = present & (1 << TE_INDEX) != 0 && lists_trailers(headers);
    if present & 1 != 0 {
        remove_connection_named(headers, keep_upgrade);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        let kept = keep_upgrade && (*name == header::UPGRADE || *name == header::CONNECTION);
        if present & (1 << i) != 0 && !kept {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    te_trailers
}

/// Whether a `TE` field lists the `trailers` token (`TE: trailers, gzip;q=0.5` does).
fn lists_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(&HOP_BY_HOP[TE_INDEX])
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|member| {
            let token = member.split(';').next().unwrap_or_default().trim();
            token.eq_ignore_ascii_case("trailers")
        })
}

/// Removes the headers a `Connection` header names.
fn remove_connection_named(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // The usual tokens are connection options, not header names (keep-alive is
        // removed as a hop-by-hop header anyway): no name to build for them.
        .filter(|token| {
            !token.eq_ignore_ascii_case("close") && !token.eq_ignore_ascii_case("keep-alive")
        })
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in named {
        if keep_upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(&name);
    }
}

/// Writes lower-case hex of `bytes` into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// A header value from ASCII hex text (always valid), in one shared allocation: its
/// copies (upstream request, response, log) only count references.
fn ascii_value<const N: usize>(text: [u8; N]) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Prefix of the headers Rampart sets for upstreams (the authenticated principal); a
/// client's are removed when the request is made canonical.
pub const INTERNAL_PREFIX: &str = "x-rampart-";

/// The client's request id if it is sane, else a new random one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    request_id_or(headers, &rand::random())
}

/// The request's id and its trace context, with one draw of randomness for both.
///
/// When Rampart exports its spans (`traced`), the request is a span of the caller's
/// trace, or of a new one, and `traceparent` names that span upstream. Otherwise
/// Rampart takes no part in tracing: a caller's valid trace context is only read (for
/// the access log) and its `traceparent` passes through unchanged; without one there is
/// no trace. (A span id sent upstream that no collector ever receives would leave the
/// upstream's spans with a missing parent, and a new trace marked sampled would
/// override the upstream's own sampling.)
pub fn identify(headers: &HeaderMap, traced: bool) -> (HeaderValue, Option<TraceContext>) {
    use rand::RngCore;
    let mut rng = rand::rng();
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let trace = if traced {
        let (mut span, mut trace) = ([0u8; 8], [0u8; 16]);
        rng.fill_bytes(&mut span);
        rng.fill_bytes(&mut trace);
        Some(trace_context_or(headers, span, trace))
    } else {
        incoming_trace(headers)
    };
    (request_id_or(headers, &id), trace)
}

/// The client's request id if it is sane, else `random` as hex.
fn request_id_or(headers: &HeaderMap, random: &[u8; 16]) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let bytes = v.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID
            && bytes.iter().all(|b| b.is_ascii_graphic())
        {
            return v.clone();
        }
    }
    let mut text = [0u8; 32];
    hex_into(random, &mut text);
    ascii_value(text)
}

/// A W3C trace context: the incoming one continued, or a new trace.
#[derive(Debug, Clone)]
pub struct TraceContext {
    /// The trace id as 32 hex digits.
    pub trace_id_hex: [u8; 32],
    /// The trace id as bytes.
    pub trace_id_bytes: [u8; 16],
    /// Rampart's span for this request (the caller's span when Rampart takes no part).
    pub span_id: [u8; 8],
    /// The caller's span, when the request carried a `traceparent`.
    pub parent_span_id: Option<[u8; 8]>,
    /// Whether the trace is sampled (the caller's decision, or yes for new traces).
    pub sampled: bool,
    /// The `traceparent` naming Rampart's request span, sent upstream; `None` when
    /// Rampart takes no part in the trace (the caller's own passes through).
    pub traceparent: Option<HeaderValue>,
}

impl TraceContext {
    /// The trace id as 32 hex digits.
    pub fn trace_id(&self) -> &str {
        std::str::from_utf8(&self.trace_id_hex).unwrap_or_default()
    }

    /// A `traceparent` naming `span_id` as the parent, for one upstream attempt.
    pub fn traceparent_for(&self, span_id: [u8; 8]) -> HeaderValue {
        traceparent(&self.trace_id_bytes, &span_id, self.sampled)
    }
}

/// `00-<trace id>-<span id>-<flags>` as text.
fn traceparent_text(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> [u8; 55] {
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(trace_id, &mut text[3..35]);
    hex_into(span_id, &mut text[36..52]);
    if sampled {
        text[54] = b'1';
    }
    text
}

fn traceparent(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> HeaderValue {
    ascii_value(traceparent_text(trace_id, span_id, sampled))
}

/// A random non-zero span id.
pub fn new_span_id() -> [u8; 8] {
    rand::random::<u64>().max(1).to_be_bytes()
}

/// The caller's valid `traceparent`, as ids and flags.
fn incoming_traceparent(headers: &HeaderMap) -> Option<([u8; 16], [u8; 8], u8)> {
    headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent)
}

/// The caller's trace context, read and not joined: it is passed on as it came.
fn incoming_trace(headers: &HeaderMap) -> Option<TraceContext> {
    let (trace_id_bytes, parent, flags) = incoming_traceparent(headers)?;
    let mut trace_id_hex = [0u8; 32];
    hex_into(&trace_id_bytes, &mut trace_id_hex);
    Some(TraceContext {
        trace_id_hex,
        trace_id_bytes,
        span_id: parent,
        parent_span_id: Some(parent),
        sampled: flags & 1 == 1,
        traceparent: None,
    })
}

/// Reads `traceparent`, or starts a new trace when it is missing or invalid: `span`
/// becomes this hop's span id and, for a new trace, `trace` the trace id (zero ids
/// are not valid, so they are made non-zero).
fn trace_context_or(headers: &HeaderMap, span: [u8; 8], trace: [u8; 16]) -> TraceContext {
    let span_id = u64::from_be_bytes(span).max(1).to_be_bytes();
    let (trace_id_bytes, parent_span_id, sampled) = match incoming_traceparent(headers) {
        Some((trace_id, parent, flags)) => (trace_id, Some(parent), flags & 1 == 1),
        None => (u128::from_be_bytes(trace).max(1).to_be_bytes(), None, true),
    };
    let text = traceparent_text(&trace_id_bytes, &span_id, sampled);
    let mut trace_id_hex = [0u8; 32];
    // The trace id is the hex between the first two dashes.
    trace_id_hex.copy_from_slice(&text[3..35]);
    TraceContext {
        trace_id_hex,
        traceparent: Some(ascii_value(text)),
        trace_id_bytes,
        span_id,
        parent_span_id,
        sampled,
    }
}

fn parse_traceparent(value: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2)
        && (version != "00" || parts.next().is_none());
    if !valid {
        return None;
    }
    let trace = u128::from_str_radix(trace_id, 16).ok()?.to_be_bytes();
    let parent = u64::from_str_radix(parent, 16).ok()?.to_be_bytes();
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace, parent, flags))
}

/// Whether `ip` is one of the trusted proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

/// `ip` (canonical) as a header value whose copies share one buffer.
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(canonical(ip).to_string()))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// `ip`, with IPv4-mapped IPv6 addresses as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's IP: the peer, or — walking `X-Forwarded-For` from the right past trusted
/// proxies — the first untrusted address.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = canonical(hop);
        if !is_trusted(client, trusted) {
            break;
        }
    }
    client
}

/// A value a connection builds for the first key it asks with, kept for that key: a
/// connection's requests nearly always repeat it. Another key's value is built each
/// time. Set once, so that reading it takes no lock.
#[derive(Debug)]
pub struct FirstKeyCache<K, V>(std::sync::OnceLock<(K, V)>);

impl<K, V> Default for FirstKeyCache<K, V> {
    fn default() -> Self {
        Self(std::sync::OnceLock::new())
    }
}

impl<K, V> FirstKeyCache<K, V> {
    /// The first key, once one was kept.
    pub fn first_key(&self) -> Option<&K> {
        self.0.get().map(|(key, _)| key)
    }
}

impl<K, V: Clone> FirstKeyCache<K, V> {
    /// The value kept when `is_key` accepts the first key, else what `build` makes
    /// (key and value), kept when it is the first.
    pub fn get_or_build(
        &self,
        is_key: impl FnOnce(&K) -> bool,
        build: impl FnOnce() -> (K, V),
    ) -> V {
        match self.0.get() {
            Some((key, value)) if is_key(key) => value.clone(),
            Some(_) => build().1,
            None => {
                let (key, value) = build();
                let _ = self.0.set((key, value.clone()));
                value
            }
        }
    }
}

/// The `Forwarded` value of a connection's first host: its peer and scheme do not
/// change, so the value depends on the host alone.
pub type ForwardedCache = FirstKeyCache<Option<HeaderValue>, HeaderValue>;

/// Fields the proxy sets on a forwarded request (forwarding fields, request id, trace
/// context, and the principal's from authentication), kept beside the client's fields
/// and written after them: the client's map is neither grown nor hashed for them. Each
/// replaces any field of its name among the client's ([`AddedFields::remove_replaced`]).
#[derive(Debug, Clone, Default)]
pub struct AddedFields(smallvec::SmallVec<[(&'static HeaderName, HeaderValue); ADDED_INLINE]>);

/// Added fields kept inline: the proxy's six and a principal's three.
const ADDED_INLINE: usize = 9;

impl AddedFields {
    /// Adds a field whose name is not set yet (no search).
    pub fn push(&mut self, name: &'static HeaderName, value: HeaderValue) {
        debug_assert!(self.get(name).is_none(), "{name} added twice");
        self.0.push((name, value));
    }

    /// Sets `name` to `value`, replacing an earlier value of `name`.
    pub fn set(&mut self, name: &'static HeaderName, value: HeaderValue) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(field) => field.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value set for `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The fields, in the order they were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0.iter().map(|(n, v)| (*n, v))
    }

    /// Removes from `headers` the fields these replace (one pass over the names; a
    /// removal only for a name that is there).
    pub fn remove_replaced(&self, headers: &mut HeaderMap) {
        // Bit i: the map holds the i-th name (past the 64th, a removal is just tried).
        let mut present = 0u64;
        for name in headers.keys() {
            if let Some(i) = self.0.iter().position(|(n, _)| *n == name) {
                present |= 1u64.checked_shl(i as u32).unwrap_or(0);
            }
        }
        for (i, (name, _)) in self.0.iter().enumerate() {
            if i >= 64 || present & (1 << i) != 0 {
                headers.remove(*name);
            }
        }
    }

    /// Moves the fields into `headers`, replacing theirs (for a sender or a phase that
    /// works on one map).
    pub fn merge_into(self, headers: &mut HeaderMap) {
        for (name, value) in self.0 {
            headers.insert(name.clone(), value);
        }
    }
}

/// Sets `X-Forwarded-For/-Proto/-Host` and `Forwarded` in `added`, from `headers` (the
/// client's fields). From a trusted peer the incoming values are kept and extended;
/// from anyone else they are replaced. `peer_value` is `peer` (canonical) as text;
/// `host` is the requested authority; `cache` belongs to the connection the request
/// came on (peer and scheme fixed).
#[allow(clippy::too_many_arguments)]
pub fn set_forwarding(
    headers: &HeaderMap,
    added: &mut AddedFields,
    peer: IpAddr,
    peer_value: &HeaderValue,
    trusted_peer: bool,
    scheme: &'static str,
    host: Option<&HeaderValue>,
    cache: &ForwardedCache,
) {
    let peer = canonical(peer);
    let peer_text = peer_value.to_str().unwrap_or_default();
    let prior_xff = if trusted_peer {
        join_values(headers, &X_FORWARDED_FOR)
    } else {
        None
    };
    match prior_xff {
        Some(prior) => {
            // A joined value that is not a valid field value is sent as the peer alone.
            let value =
                HeaderValue::from_maybe_shared(bytes::Bytes::from(format!("{prior}, {peer_text}")))
                    .unwrap_or_else(|_| peer_value.clone());
            added.push(&X_FORWARDED_FOR, value);
        }
        None => added.push(&X_FORWARDED_FOR, peer_value.clone()),
    }
    if !(trusted_peer && headers.contains_key(&X_FORWARDED_PROTO)) {
        added.push(&X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
    }
    let host = host.filter(|h| !h.is_empty());
    let keep_host = trusted_peer && headers.contains_key(&X_FORWARDED_HOST);
    if let (false, Some(host)) = (keep_host, host) {
        added.push(&X_FORWARDED_HOST, host.clone());
    }
    let prior = trusted_peer
        .then(|| join_values(headers, &FORWARDED))
        .flatten();
    if prior.is_none() {
        // The value depends only on peer, scheme and host: reuse the connection's.
        let value = cache.get_or_build(
            |for_host| for_host.as_ref() == host,
            || {
                let value = forwarded_value(None, peer, peer_text, scheme, host);
                (host.cloned(), value)
            },
        );
        added.push(&FORWARDED, value);
        return;
    }
    let value = forwarded_value(prior.as_deref(), peer, peer_text, scheme, host);
    added.push(&FORWARDED, value);
}

/// A `Forwarded` value (RFC 7239) for this hop, after `prior` hops if any. A host
/// that is not plain authority text is left out; an invalid value becomes `for=unknown`.
fn forwarded_value(
    prior: Option<&str>,
    peer: IpAddr,
    peer_text: &str,
    scheme: &'static str,
    host: Option<&HeaderValue>,
) -> HeaderValue {
    let mut forwarded =
        String::with_capacity(prior.as_ref().map_or(0, |p| p.len() + 2) + peer_text.len() + 64);
    if let Some(prior) = prior {
        forwarded.push_str(prior);
        forwarded.push_str(", ");
    }
    match peer {
        IpAddr::V4(_) => {
            forwarded.push_str("for=");
            forwarded.push_str(peer_text);
        }
        IpAddr::V6(_) => {
            forwarded.push_str("for=\"[");
            forwarded.push_str(peer_text);
            forwarded.push_str("]\"");
        }
    }
    forwarded.push_str(";proto=");
    forwarded.push_str(scheme);
    if let Some(host) = host.and_then(|h| h.to_str().ok()).filter(|h| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    }) {
        forwarded.push_str(";host=");
        forwarded.push_str(host);
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(forwarded))
        .unwrap_or_else(|_| HeaderValue::from_static("for=unknown"))
}

fn join_values(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn removes_hop_by_hop_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("x-kept", "1"),
        ]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn hop_by_hop_names_in_any_case() {
        for name in [
            "connection",
            "Keep-Alive",
            "PROXY-CONNECTION",
            "te",
            "Trailer",
            "transfer-encoding",
            "proxy-authenticate",
            "Proxy-Authorization",
            "upgrade",
        ] {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
        }
        for name in ["tf", "content-length", "connectiom", "x-upgrade", ""] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn every_hop_by_hop_field_is_removed_in_any_case_and_order() {
        for name in HOP_BY_HOP_NAMES {
            let upper = name.to_ascii_uppercase();
            let mut h = map(&[("x-before", "1"), (upper.as_str(), "v"), ("x-after", "1")]);
            remove_hop_by_hop(&mut h, false);
            assert_eq!(h.len(), 2, "{name} kept");
        }
    }

    #[test]
    fn notes_te_trailers_as_it_removes_te() {
        for (te, connection, wanted) in [
            ("trailers", None, true),
            ("Trailers", Some("TE"), true),
            ("gzip;q=0.5, trailers", Some("te, close"), true),
            ("gzip", None, false),
            ("trailersx", None, false),
        ] {
            let mut h = map(&[("te", te), ("x-kept", "1")]);
            if let Some(connection) = connection {
                h.insert(
                    "connection",
                    HeaderValue::from_str(connection).expect("value"),
                );
            }
            assert_eq!(remove_hop_by_hop(&mut h, false), wanted, "{te}");
            assert!(!h.contains_key("te") && h.contains_key("x-kept"), "{te}");
        }
        assert!(!remove_hop_by_hop(&mut map(&[("x-kept", "1")]), false));
    }

    #[test]
    fn keeps_upgrade_for_websocket() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    /// `h` as forwarded with `added`: the fields `added` replaces are gone, its own
    /// are there.
    fn forward_with(h: &mut HeaderMap, added: AddedFields) {
        added.remove_replaced(h);
        assert!(
            added.iter().all(|(name, _)| !h.contains_key(name)),
            "replaced fields removed"
        );
        added.merge_into(h);
    }

    /// `set_forwarding` for a request from the untrusted peer 10.0.0.1 over http.
    fn forward_from_untrusted(h: &mut HeaderMap, host: &'static str, cache: &ForwardedCache) {
        let mut added = AddedFields::default();
        set_forwarding(
            h,
            &mut added,
            "10.0.0.1".parse().expect("ip"),
            &HeaderValue::from_static("10.0.0.1"),
            false,
            "http",
            Some(&HeaderValue::from_static(host)),
            cache,
        );
        forward_with(h, added);
    }

    #[test]
    fn added_fields_replace_the_clients_of_the_same_name() {
        let mut h = map(&[
            ("x-request-id", "theirs"),
            ("accept", "*/*"),
            ("x-request-id", "again"),
        ]);
        let mut added = AddedFields::default();
        added.set(&X_REQUEST_ID, HeaderValue::from_static("first"));
        added.set(&TRACEPARENT, HeaderValue::from_static("t"));
        added.set(&X_REQUEST_ID, HeaderValue::from_static("ours"));
        assert_eq!(added.iter().count(), 2, "a second set replaces");
        added.remove_replaced(&mut h);
        assert!(
            !h.contains_key("x-request-id"),
            "every value of the name goes"
        );
        assert_eq!(h["accept"], "*/*");
        added.merge_into(&mut h);
        assert_eq!(h["x-request-id"], "ours");
        assert_eq!(h["traceparent"], "t");
    }

    #[test]
    fn forwarding_from_untrusted_peer_replaces_values() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        forward_from_untrusted(&mut h, "app.test", &ForwardedCache::default());
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "app.test");
        assert_eq!(h["forwarded"], "for=10.0.0.1;proto=http;host=app.test");
    }

    #[test]
    fn a_connections_forwarded_value_follows_its_host() {
        let cache = ForwardedCache::default();
        let forwarded_for = |host: &'static str| {
            let mut h = map(&[("forwarded", "for=6.6.6.6")]);
            forward_from_untrusted(&mut h, host, &cache);
            h["forwarded"].clone()
        };
        assert_eq!(
            forwarded_for("a.test"),
            "for=10.0.0.1;proto=http;host=a.test"
        );
        assert_eq!(
            forwarded_for("a.test"),
            "for=10.0.0.1;proto=http;host=a.test"
        );
        assert_eq!(
            forwarded_for("b.test"),
            "for=10.0.0.1;proto=http;host=b.test"
        );
        assert_eq!(
            forwarded_for("a.test"),
            "for=10.0.0.1;proto=http;host=a.test"
        );
    }

    #[test]
    fn forwarding_from_trusted_peer_extends_values() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        let mut added = AddedFields::default();
        set_forwarding(
            &h,
            &mut added,
            "::1".parse().expect("ip"),
            &HeaderValue::from_static("::1"),
            true,
            "http",
            Some(&HeaderValue::from_static("app.test")),
            &ForwardedCache::default(),
        );
        assert!(
            added.get(&X_FORWARDED_PROTO).is_none(),
            "the trusted proxy's value is kept"
        );
        forward_with(&mut h, added);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, ::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            "for=1.2.3.4, for=\"[::1]\";proto=http;host=app.test"
        );
    }

    #[test]
    fn client_ip_walks_past_trusted_proxies_only() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let h = map(&[("x-forwarded-for", "9.9.9.9, 1.2.3.4, 10.1.1.1")]);
        assert_eq!(
            client_ip("10.0.0.2".parse().expect("ip"), &h, &trusted).to_string(),
            "1.2.3.4"
        );
        assert_eq!(
            client_ip("8.8.8.8".parse().expect("ip"), &h, &trusted).to_string(),
            "8.8.8.8"
        );
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        assert_eq!(request_id(&map(&[("x-request-id", "abc-123")])), "abc-123");
        let long = "a".repeat(200);
        assert_eq!(request_id(&map(&[("x-request-id", &long)])).len(), 32);
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
    }

    #[test]
    fn a_traced_request_continues_or_starts_a_trace_with_its_own_span() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let t = identify(&map(&[("traceparent", incoming)]), true)
            .1
            .expect("traced");
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            t.parent_span_id,
            Some(0x00f0_67aa_0ba9_02b7_u64.to_be_bytes())
        );
        assert!(!t.sampled, "the caller's sampling decision is kept");
        let sent = t.traceparent.expect("sent upstream");
        let sent = sent.to_str().expect("ascii");
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(sent.ends_with("-00"), "{sent}");
        assert!(
            !sent.contains("00f067aa0ba902b7"),
            "a new span id for this hop"
        );
        let (fresh_id, fresh) = identify(&map(&[("traceparent", "garbage")]), true);
        let fresh = fresh.expect("a new trace");
        assert_eq!(fresh_id.len(), 32);
        assert_ne!(
            fresh_id.as_bytes(),
            fresh.trace_id().as_bytes(),
            "independent draws"
        );
        assert_eq!(fresh.trace_id().len(), 32);
        assert_ne!(fresh.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(fresh.sampled && fresh.parent_span_id.is_none());
        assert!(fresh.traceparent.is_some());
    }

    #[test]
    fn an_untraced_request_only_reads_the_callers_trace() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = identify(&map(&[("traceparent", incoming)]), false)
            .1
            .expect("the caller's trace");
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            t.parent_span_id,
            Some(0x00f0_67aa_0ba9_02b7_u64.to_be_bytes())
        );
        assert!(t.sampled);
        assert!(t.traceparent.is_none(), "the caller's own passes through");
        assert!(identify(&map(&[("traceparent", "garbage")]), false)
            .1
            .is_none());
        let (id, trace) = identify(&HeaderMap::new(), false);
        assert_eq!(id.len(), 32);
        assert!(trace.is_none(), "no trace is started");
    }
}
