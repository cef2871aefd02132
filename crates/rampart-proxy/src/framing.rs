//! A byte-level watch on HTTP/1 request framing.
//!
//! hyper follows RFC 9112 when a request carries both `Content-Length` and
//! `Transfer-Encoding`, or the same `Content-Length` twice: it drops the extra
//! header before the request reaches Rampart, so such a request cannot be seen in
//! the parsed head. These are classic request-smuggling inputs and Rampart refuses
//! them outright, so this scanner follows the raw bytes of a connection, parses
//! each request head as it passes, tracks body framing to find the next head, and
//! marks the offending requests by their position on the connection. It only
//! reads; hyper remains the parser of record.

use std::collections::BTreeSet;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most headers examined in one head (hyper refuses more anyway).
const MAX_HEADERS: usize = 128;

/// Requests on one connection whose framing is ambiguous, by 0-based position.
#[derive(Debug, Default)]
pub struct FramingVerdicts {
    flagged: Mutex<BTreeSet<u64>>,
}

impl FramingVerdicts {
    /// Whether request number `index` on this connection had ambiguous framing.
    pub fn take(&self, index: u64) -> bool {
        self.flagged.lock().remove(&index)
    }

    fn flag(&self, index: u64) {
        self.flagged.lock().insert(index);
    }
}

#[derive(Debug)]
enum State {
    /// Collecting a request head.
    Head(Vec<u8>),
    /// Skipping a body of known length.
    Body(u64),
    /// Skipping a chunked body.
    Chunked(Chunk),
    /// Not following this connection any more (HTTP/2, upgrade, or input hyper will refuse).
    Off,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size {
        size: u64,
        digits: bool,
        extension: bool,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    Trailer {
        empty_line: bool,
    },
    TrailerLf {
        empty_line: bool,
    },
}

/// Follows request framing on one connection.
#[derive(Debug)]
pub struct FramingScanner {
    state: State,
    requests: u64,
    max_head: usize,
    verdicts: Arc<FramingVerdicts>,
}

impl FramingScanner {
    /// A scanner for a new connection; heads longer than `max_head` end the scan.
    pub fn new(max_head: usize, verdicts: Arc<FramingVerdicts>) -> Self {
        Self {
            state: State::Head(Vec::new()),
            requests: 0,
            max_head,
            verdicts,
        }
    }

    /// Feeds bytes read from the client.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::Head(buffer) => {
                    if buffer.is_empty() {
                        // Blank lines between requests are allowed (RFC 9112 §2.2).
                        let skip = bytes
                            .iter()
                            .take_while(|b| matches!(b, b'\r' | b'\n'))
                            .count();
                        bytes = &bytes[skip..];
                        if bytes.is_empty() {
                            return;
                        }
                        // The common case: a whole head in one read, parsed in place.
                        if let Some(end) = find_head_end(bytes) {
                            self.state = self.on_head(&bytes[..end]);
                            bytes = &bytes[end..];
                            continue;
                        }
                    }
                    let start = buffer.len().saturating_sub(3);
                    let take = bytes
                        .len()
                        .min(self.max_head + 4 - buffer.len().min(self.max_head + 4));
                    buffer.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    match find_head_end(&buffer[start..]).map(|i| start + i) {
                        Some(end) => {
                            let rest = buffer.split_off(end);
                            let head = std::mem::take(buffer);
                            self.state = self.on_head(&head);
                            // What followed the head goes through the new state.
                            let mut pending = rest;
                            if !pending.is_empty() {
                                let owned = std::mem::take(&mut pending);
                                self.feed(&owned);
                            }
                        }
                        None if buffer.len() > self.max_head => self.state = State::Off,
                        None => {}
                    }
                }
                State::Body(remaining) => {
                    let n = (*remaining).min(bytes.len() as u64);
                    *remaining -= n;
                    bytes = &bytes[n as usize..];
                    if *remaining == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::Chunked(chunk) => {
                    let (consumed, next) = step_chunk(*chunk, bytes);
                    bytes = &bytes[consumed..];
                    self.state = next;
                }
            }
        }
    }

    fn on_head(&mut self, head: &[u8]) -> State {
        let index = self.requests;
        self.requests += 1;
        if head.starts_with(b"PRI * HTTP/2.0") {
            return State::Off;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return State::Off,
        }
        let mut lengths = Vec::new();
        let mut transfer_encoding = false;
        let mut chunked_last = false;
        let mut upgrade = request.method == Some("CONNECT");
        for h in request.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                lengths.push(h.value);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                chunked_last = h
                    .value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if (transfer_encoding && !lengths.is_empty()) || lengths.len() > 1 {
            self.verdicts.flag(index);
        }
        if upgrade {
            // Whether the upgrade happens is the upstream's choice; stop following.
            return State::Off;
        }
        if transfer_encoding {
            return if chunked_last {
                State::Chunked(Chunk::Size {
                    size: 0,
                    digits: false,
                    extension: false,
                })
            } else {
                State::Off
            };
        }
        match lengths.first().map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        }) {
            None => State::Head(Vec::new()),
            Some(Some(0)) => State::Head(Vec::new()),
            Some(Some(n)) => State::Body(n),
            Some(None) => State::Off,
        }
    }
}

fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Advances the chunked-body state over `bytes`; returns bytes consumed and the next state.
fn step_chunk(mut chunk: Chunk, bytes: &[u8]) -> (usize, State) {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        chunk = match chunk {
            Chunk::Data(remaining) => {
                let n = remaining.min((bytes.len() - i) as u64);
                i += n as usize;
                let left = remaining - n;
                if left > 0 {
                    return (i, State::Chunked(Chunk::Data(left)));
                }
                Chunk::DataCr
            }
            Chunk::Size {
                size,
                digits,
                extension,
            } => {
                i += 1;
                match b {
                    b'\r' => Chunk::SizeLf { size },
                    b'\n' if digits => next_after_size(size),
                    _ if extension => Chunk::Size {
                        size,
                        digits,
                        extension,
                    },
                    b';' if digits => Chunk::Size {
                        size,
                        digits,
                        extension: true,
                    },
                    _ if b.is_ascii_hexdigit() => {
                        let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                        match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                            Some(size) => Chunk::Size {
                                size,
                                digits: true,
                                extension: false,
                            },
                            None => return (i, State::Off),
                        }
                    }
                    b' ' | b'\t' if digits => Chunk::Size {
                        size,
                        digits,
                        extension: true,
                    },
                    _ => return (i, State::Off),
                }
            }
            Chunk::SizeLf { size } => {
                i += 1;
                if b != b'\n' {
                    return (i, State::Off);
                }
                next_after_size(size)
            }
            Chunk::DataCr => {
                i += 1;
                if b != b'\r' {
                    return (i, State::Off);
                }
                Chunk::DataLf
            }
            Chunk::DataLf => {
                i += 1;
                if b != b'\n' {
                    return (i, State::Off);
                }
                Chunk::Size {
                    size: 0,
                    digits: false,
                    extension: false,
                }
            }
            Chunk::Trailer { empty_line } => {
                i += 1;
                match b {
                    b'\r' => Chunk::TrailerLf { empty_line },
                    b'\n' if empty_line => return (i, State::Head(Vec::new())),
                    b'\n' => Chunk::Trailer { empty_line: true },
                    _ => Chunk::Trailer { empty_line: false },
                }
            }
            Chunk::TrailerLf { empty_line } => {
                i += 1;
                if b != b'\n' {
                    return (i, State::Off);
                }
                if empty_line {
                    return (i, State::Head(Vec::new()));
                }
                Chunk::Trailer { empty_line: true }
            }
        };
    }
    (i, State::Chunked(chunk))
}

fn next_after_size(size: u64) -> Chunk {
    if size == 0 {
        Chunk::Trailer { empty_line: true }
    } else {
        Chunk::Data(size)
    }
}

/// A client stream whose incoming bytes pass through a [`FramingScanner`].
pub struct ScannedIo<I> {
    inner: I,
    scanner: Option<FramingScanner>,
}

impl<I> ScannedIo<I> {
    /// Wraps `inner`; `scanner` is `None` for connections that are not HTTP/1.
    pub fn new(inner: I, scanner: Option<FramingScanner>) -> Self {
        Self { inner, scanner }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ScannedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Some(scanner) = &mut self.scanner {
            let fresh = &buf.filled()[before..];
            if !fresh.is_empty() {
                scanner.feed(fresh);
                if matches!(scanner.state, State::Off) {
                    self.scanner = None;
                }
            }
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ScannedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(stream: &[u8], chunk_size: usize) -> Vec<u64> {
        let verdicts = Arc::new(FramingVerdicts::default());
        let mut scanner = FramingScanner::new(65536, Arc::clone(&verdicts));
        for piece in stream.chunks(chunk_size.max(1)) {
            scanner.feed(piece);
        }
        let out = verdicts.flagged.lock().iter().copied().collect();
        out
    }

    const PIPELINE: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n\
POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi\
GET /f HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn flags_ambiguous_requests_by_position_in_a_pipeline() {
        for chunk_size in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                flagged(PIPELINE, chunk_size),
                vec![3, 4],
                "chunk size {chunk_size}"
            );
        }
    }

    #[test]
    fn bodies_that_look_like_heads_are_not_scanned_as_heads() {
        let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(flagged(&stream, 5).is_empty());
    }

    #[test]
    fn stops_following_upgrades_and_http2() {
        assert!(flagged(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 9).is_empty());
        assert!(flagged(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 4).is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            for _ in 0..(seed % 300) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pick = (seed % 12) as usize;
                let pieces: [&[u8]; 12] = [
                    b"\r\n",
                    b"\r\n\r\n",
                    b"GET / HTTP/1.1",
                    b"Content-Length: 3",
                    b"Transfer-Encoding: chunked",
                    b"0",
                    b"ff",
                    b";",
                    b"x",
                    b"\n",
                    b"POST",
                    b"\r",
                ];
                bytes.extend_from_slice(pieces[pick]);
            }
            flagged(&bytes, (seed % 17) as usize + 1);
        }
    }
}
