//! The server side of an HTTP/1.1 connection: reads request heads, streams request
//! bodies to the handler while it runs, writes responses (one write for a head and
//! a body that is ready), keeps the connection alive, pipelines, hands over
//! upgraded connections, and closes idle or draining connections.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::header;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::codec::{self, ChunkedDecoder, Decoded, Framing, HeadError};
use super::upgrade::{Io, OnUpgrade, Upgraded};
use crate::body::{empty, BoxError, ProxyBody};

/// Read buffer reserved per read.
const READ_CHUNK: usize = 16 * 1024;
/// Buffered response bytes written at once.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// At most this much of an unread request body is drained before closing, so the
/// client reads the response instead of a reset.
const LINGER_BYTES: usize = 256 * 1024;
/// Longest the drain before closing may take.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Largest request head in bytes (431 beyond).
    pub max_head: usize,
    /// A connection waiting this long for a request head is closed.
    pub idle_timeout: Duration,
}

/// What the connection driver needs of a response body beyond [`Body`].
pub(crate) trait SendLimits {
    /// The longest a write of this response to the client may make no progress
    /// (the route's `timeouts.client_write`).
    fn write_timeout(&self) -> Duration;
    /// The response could not be sent in full, for `reason` (noted for its log line).
    fn abandoned(&mut self, reason: &'static str);
}

/// Writes to the client, each allowed to wait `timeout` without progress. The wait
/// uses the connection's idle timer (no head is awaited while a response is written),
/// moved lazily; a write that completes at once reads no clock and touches no timer.
struct Sender<'t, 'a> {
    timer: &'t mut super::LazyTimer<'a>,
    timeout: Duration,
    /// A write gave up after `timeout`.
    timed_out: bool,
}

impl Sender<'_, '_> {
    /// Writes all of `buf` and flushes; fails with `TimedOut` when the client takes
    /// nothing for the timeout.
    async fn write_all<I: Io>(&mut self, io: &mut I, mut buf: &[u8]) -> std::io::Result<()> {
        let mut deadline = None;
        std::future::poll_fn(|cx| {
            while !buf.is_empty() {
                match Pin::new(&mut *io).poll_write(cx, buf) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                    }
                    Poll::Ready(Ok(n)) => {
                        buf = &buf[n..];
                        deadline = None;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return self.wait(cx, &mut deadline),
                }
            }
            match Pin::new(&mut *io).poll_flush(cx) {
                Poll::Ready(flushed) => Poll::Ready(flushed),
                Poll::Pending => self.wait(cx, &mut deadline),
            }
        })
        .await
    }

    /// Waits for the client to take bytes, until `deadline` (set on the first wait
    /// since the last progress).
    fn wait(
        &mut self,
        cx: &mut Context<'_>,
        deadline: &mut Option<tokio::time::Instant>,
    ) -> Poll<std::io::Result<()>> {
        let timeout = self.timeout;
        let at = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
        match self.timer.poll_until(cx, at) {
            Poll::Ready(()) => {
                self.timed_out = true;
                Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Request extension: the request's framing was ambiguous or unsupported (its body
/// was not read; the connection closes after the response).
#[derive(Debug, Clone, Copy)]
pub struct AmbiguousFraming;

/// Request extension: the head's field names need the canonical step's full check
/// ([`codec::RequestHead::names_need_checking`]); without it an HTTP/1.1 request's
/// names were found plain when the head was read.
#[derive(Debug, Clone, Copy)]
pub struct CheckFieldNames;

/// Response extension: the request was refused as unreadable, so the connection
/// closes after the response (what follows it may be read differently by the client).
#[derive(Debug, Clone, Copy)]
pub struct CloseConnection;

/// Why reading a request body failed (the handler sees it as a body error).
#[derive(Debug, thiserror::Error)]
enum RequestBodyError {
    #[error("{0}")]
    Chunked(#[from] codec::ChunkError),
    #[error("the client closed the connection before the body ended")]
    Truncated,
    #[error("reading the request body failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The request body as the handler sees it: frames pumped from the connection.
struct RequestBody {
    frames: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    /// Dropped (signalled) on the first poll: the pump starts reading then.
    want: Option<oneshot::Sender<()>>,
    hint: SizeHint,
    ended: bool,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(want) = self.want.take() {
            let _ = want.send(());
        }
        match self.frames.poll_recv(cx) {
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// Feeds a request body from the connection into its `RequestBody`.
struct Pump {
    state: PumpState,
    /// Dropped when the body is complete, which ends the handler's body.
    frames: Option<mpsc::Sender<Result<Frame<Bytes>, BoxError>>>,
    want: Option<oneshot::Receiver<()>>,
    expect_continue: bool,
}

enum PumpState {
    Length(u64),
    Chunked(ChunkedDecoder),
    /// The whole body was read.
    Done,
    /// Reading stopped early (the handler dropped the body, or the body was bad).
    Abandoned,
}

impl Pump {
    fn active(&self) -> bool {
        matches!(self.state, PumpState::Length(_) | PumpState::Chunked(_))
    }

    fn finished(&self) -> bool {
        matches!(self.state, PumpState::Done)
    }

    /// Moves one frame from the connection to the body. Cancel-safe: a frame is
    /// only taken from the buffer once a slot for it is reserved.
    async fn step<I: Io>(&mut self, io: &mut I, buf: &mut BytesMut) {
        if let Some(want) = self.want.as_mut() {
            // Wait until the handler reads the body (or drops it).
            let _ = want.await;
            self.want = None;
            if self.expect_continue {
                self.expect_continue = false;
                if io
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_err()
                {
                    self.state = PumpState::Abandoned;
                    return;
                }
            }
        }
        let Some(frames) = self.frames.as_ref() else {
            return;
        };
        let Ok(permit) = frames.reserve().await else {
            // The handler no longer wants the body.
            self.state = PumpState::Abandoned;
            self.frames = None;
            return;
        };
        loop {
            let frame = match &mut self.state {
                PumpState::Length(left) if !buf.is_empty() => {
                    let take = (*left).min(buf.len() as u64) as usize;
                    let data = buf.split_to(take).freeze();
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = PumpState::Done;
                    }
                    Some(Ok(Frame::data(data)))
                }
                PumpState::Length(_) => None,
                PumpState::Chunked(decoder) => match decoder.decode(buf) {
                    Ok(Decoded::Data(data)) => Some(Ok(Frame::data(data))),
                    Ok(Decoded::End(trailers)) => {
                        self.state = PumpState::Done;
                        (!trailers.is_empty()).then(|| Ok(Frame::trailers(trailers)))
                    }
                    Ok(Decoded::NeedMore) => None,
                    Err(e) => {
                        self.state = PumpState::Abandoned;
                        Some(Err(RequestBodyError::from(e)))
                    }
                },
                PumpState::Done | PumpState::Abandoned => return,
            };
            match frame {
                Some(frame) => {
                    permit.send(frame.map_err(|e| -> BoxError { Box::new(e) }));
                    if !self.active() {
                        self.frames = None;
                    }
                    return;
                }
                None if !self.active() => {
                    drop(permit);
                    self.frames = None;
                    return;
                }
                None => {}
            }
            buf.reserve(READ_CHUNK);
            match io.read_buf(buf).await {
                Ok(0) => {
                    self.state = PumpState::Abandoned;
                    permit.send(Err(Box::new(RequestBodyError::Truncated)));
                    self.frames = None;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    self.state = PumpState::Abandoned;
                    permit.send(Err(Box::new(RequestBodyError::Io(e))));
                    self.frames = None;
                    return;
                }
            }
        }
    }
}

/// The current `Date` value, formatted once per second per thread.
fn http_date() -> [u8; 29] {
    thread_local! {
        static CACHED: std::cell::Cell<(u64, [u8; 29])> = const { std::cell::Cell::new((0, [0; 29])) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHED.with(|cell| {
        let (cached_second, text) = cell.get();
        if cached_second == second && text[0] != 0 {
            return text;
        }
        let mut fresh = [b' '; 29];
        let formatted = httpdate::fmt_http_date(now);
        let n = formatted.len().min(29);
        fresh[..n].copy_from_slice(&formatted.as_bytes()[..n]);
        cell.set((second, fresh));
        fresh
    })
}

/// Request extension: the head could not be read. The handler answers with the refusal,
/// so that it is logged and counted like any other, and the connection then closes.
#[derive(Debug, Clone)]
pub struct UnreadableHead(pub HeadError);

/// Answers a head that could not be parsed through the handler (which sees a bodiless
/// stand-in request carrying [`UnreadableHead`]), then the connection closes.
async fn refuse_head<I, H, F, B>(
    io: &mut I,
    error: HeadError,
    handler: &mut H,
    timer: &mut super::LazyTimer<'_>,
) where
    I: Io,
    H: FnMut(Request<ProxyBody>) -> F,
    F: Future<Output = (Response<B>, Option<Box<codec::PassedFields>>)>,
    B: Body<Data = Bytes, Error = BoxError> + SendLimits + Unpin,
{
    let mut request = Request::new(empty());
    // Nothing of the head is trusted: the stand-in has no target, only the refusal.
    *request.uri_mut() = http::Uri::from_static("*");
    request.extensions_mut().insert(UnreadableHead(error));
    let (response, _) = handler(request).await;
    let (parts, mut body) = response.into_parts();
    let mut out = Vec::with_capacity(512);
    let framing = match body.size_hint().exact() {
        Some(n) => Framing::Length(n),
        None => Framing::Chunked,
    };
    codec::encode_response_head(
        &mut out,
        parts.status,
        None,
        &parts.headers,
        framing,
        Some("close"),
        Some(&http_date()),
    );
    let mut sender = Sender {
        timer,
        timeout: body.write_timeout(),
        timed_out: false,
    };
    write_body(io, &mut sender, &mut out, &mut body, framing).await;
}

/// Resolves once `stop` flips to true (or its sender is gone). Made once per connection
/// and polled across its requests, so waiting for a head registers no new waiter.
async fn stop_signalled(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Whether the gateway asked its connections to stop, read without the channel's lock.
struct StopFlag {
    receiver: watch::Receiver<bool>,
    at_start: bool,
}

impl StopFlag {
    /// The only value the gateway ever sends is `true`, so a change after this point
    /// (or a sender gone) is the stop.
    fn new(mut receiver: watch::Receiver<bool>) -> Self {
        let at_start = *receiver.borrow_and_update();
        Self { receiver, at_start }
    }

    fn requested(&self) -> bool {
        self.at_start || self.receiver.has_changed().unwrap_or(true)
    }
}

/// The gateway's stop signal, as a connection waits for its next request.
struct StopWait<'a, S> {
    /// Completes when the stop is sent.
    signalled: Pin<&'a mut S>,
    /// The waker `signalled` holds.
    registered: super::LastWaker,
    flag: StopFlag,
}

impl<S: Future<Output = ()>> StopWait<'_, S> {
    /// Ready once the stop is requested. The signal, whose every poll takes its
    /// waiters' lock, is polled only when it does not hold this task's waker yet: a
    /// connection's task registers once, not once per request, and reads the flag
    /// when woken.
    fn poll_stop(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.flag.requested() {
            return Poll::Ready(());
        }
        if self.registered.differs(cx) {
            if self.signalled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            self.registered.record(cx);
        }
        Poll::Pending
    }
}

/// Waits for the next request head in `buf`, reading as needed; `None` when the
/// connection should close (client gone, idle, draining, or a refused head).
///
/// The idle timer is re-armed lazily ([`super::LazyTimer::poll_until`]): one timer
/// update per idle period instead of one per request.
async fn next_head<I: Io, S: Future<Output = ()>>(
    io: &mut I,
    buf: &mut BytesMut,
    limits: ServerLimits,
    idle: &mut super::LazyTimer<'_>,
    stop: &mut StopWait<'_, S>,
) -> Option<Result<codec::RequestHead, HeadError>> {
    let deadline = tokio::time::Instant::now() + limits.idle_timeout;
    loop {
        // Blank lines before a request line are allowed (RFC 9112 §2.2).
        let blank = buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        buf.advance(blank);
        if !buf.is_empty() {
            match codec::parse_request(buf, limits.max_head) {
                Ok(Some(parsed)) => return Some(Ok(parsed)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        } else if stop.flag.requested() {
            return None;
        }
        buf.reserve(READ_CHUNK);
        tokio::select! {
            read = io.read_buf(buf) => match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
            () = std::future::poll_fn(|cx| idle.poll_until(cx, deadline)) => return None,
            () = std::future::poll_fn(|cx| stop.poll_stop(cx)), if buf.is_empty() => return None,
        }
    }
}

/// Serves HTTP/1.1 on `io` until the client leaves, the connection idles out, or
/// `stop` flips (requests in progress finish first). `buf` holds bytes already read.
pub async fn serve<I, H, F, B>(
    mut io: I,
    mut buf: BytesMut,
    limits: ServerLimits,
    stop: watch::Receiver<bool>,
    mut handler: H,
) where
    I: Io,
    H: FnMut(Request<ProxyBody>) -> F,
    F: Future<Output = (Response<B>, Option<Box<codec::PassedFields>>)>,
    B: Body<Data = Bytes, Error = BoxError> + SendLimits + Unpin,
{
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let mut idle = super::LazyTimer::new(idle);
    let signalled = stop_signalled(stop.clone());
    tokio::pin!(signalled);
    let mut stop = StopWait {
        signalled,
        registered: super::LastWaker::default(),
        flag: StopFlag::new(stop),
    };
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let head = match next_head(&mut io, &mut buf, limits, &mut idle, &mut stop).await {
            None => return,
            Some(Ok(head)) => head,
            Some(Err(error)) => {
                refuse_head(&mut io, error, &mut handler, &mut idle).await;
                return;
            }
        };
        let codec::RequestHead {
            mut parts,
            framing,
            keep_alive,
            expect_continue,
            upgrade,
            names_need_checking,
        } = head;
        if names_need_checking {
            parts.extensions.insert(CheckFieldNames);
        }
        let is_head = parts.method == Method::HEAD;
        let version = parts.version;
        let (body, mut pump) = match framing {
            Framing::Length(_) | Framing::Chunked => {
                let (sender, receiver) = mpsc::channel(2);
                let (want_sender, want_receiver) = oneshot::channel();
                let hint = match framing {
                    Framing::Length(n) => SizeHint::with_exact(n),
                    _ => SizeHint::default(),
                };
                let body = RequestBody {
                    frames: receiver,
                    want: Some(want_sender),
                    hint,
                    ended: false,
                };
                let pump = Pump {
                    state: match framing {
                        Framing::Length(n) => PumpState::Length(n),
                        _ => PumpState::Chunked(ChunkedDecoder::new(limits.max_head)),
                    },
                    frames: Some(sender),
                    want: Some(want_receiver),
                    expect_continue,
                };
                (http_body_util::BodyExt::boxed(body), Some(pump))
            }
            Framing::Invalid => {
                parts.extensions.insert(AmbiguousFraming);
                (empty(), None)
            }
            Framing::Empty | Framing::UntilClose => (empty(), None),
        };
        let upgrade_sender = upgrade.then(|| {
            let (sender, on_upgrade) = OnUpgrade::pending();
            parts.extensions.insert(on_upgrade);
            sender
        });
        let request = Request::from_parts(parts, body);

        // Run the handler while the body streams in.
        let response = {
            // Pinned where it is made: the request's future (several KiB) is not
            // moved after it is built.
            let mut responding = std::pin::pin!(handler(request));
            loop {
                match pump.as_mut().filter(|p| p.active()) {
                    Some(p) => tokio::select! {
                        biased;
                        response = responding.as_mut() => break response,
                        () = p.step(&mut io, &mut buf) => {}
                    },
                    None => break responding.await,
                }
            }
        };
        let body_finished = pump.as_ref().is_none_or(Pump::finished) && framing != Framing::Invalid;
        drop(pump);

        let (response, passed) = response;
        let (parts, mut body) = response.into_parts();
        let mut writer = Sender {
            timer: &mut idle,
            timeout: body.write_timeout(),
            timed_out: false,
        };
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(sender) = upgrade_sender {
                out.clear();
                codec::encode_response_head(
                    &mut out,
                    parts.status,
                    None,
                    &parts.headers,
                    Framing::Empty,
                    None,
                    None,
                );
                if writer.write_all(&mut io, &out).await.is_err() {
                    return;
                }
                drop(body);
                let _ = sender.send(Upgraded::new(buf.split().freeze(), Box::new(io)));
                return;
            }
        }
        let stopping = stop.flag.requested();
        let no_body = is_head
            || parts.status.is_informational()
            || parts.status == StatusCode::NO_CONTENT
            || parts.status == StatusCode::NOT_MODIFIED;
        let body_framing = if no_body {
            Framing::Empty
        } else {
            // The encoder leaves out the body's own framing fields.
            match body.size_hint().exact() {
                Some(n) => Framing::Length(n),
                None if version == Version::HTTP_11 => Framing::Chunked,
                None => Framing::UntilClose,
            }
        };
        let keep_alive = keep_alive
            && body_finished
            && !stopping
            && body_framing != Framing::UntilClose
            && parts.extensions.get::<CloseConnection>().is_none();
        let connection = match (keep_alive, version) {
            (false, Version::HTTP_11) => Some("close"),
            (true, Version::HTTP_10) => Some("keep-alive"),
            _ => None,
        };
        let passed = passed.as_deref();
        let date = (!parts.headers.contains_key(header::DATE)
            && !passed.is_some_and(codec::PassedFields::has_date))
        .then(http_date);
        out.clear();
        codec::encode_response_head(
            &mut out,
            parts.status,
            passed,
            &parts.headers,
            if no_body {
                Framing::Empty
            } else {
                body_framing
            },
            connection,
            date.as_ref().map(|d| &d[..]),
        );
        let written = if no_body {
            write_out(&mut io, &mut writer, &mut out).await
        } else {
            write_body(&mut io, &mut writer, &mut out, &mut body, body_framing).await
        };
        if writer.timed_out {
            // The client took nothing for the route's write timeout: the connection
            // closes, and the upstream exchange is dropped with the body (its
            // connection closed mid-body, not reused).
            tracing::debug!("client took nothing for {:?}", writer.timeout);
            body.abandoned("client-write-timeout");
        }
        // Dropping the body ends the request (its access-log line is written).
        drop(body);
        if !written {
            return;
        }
        if !keep_alive {
            linger(&mut io, &mut buf).await;
            return;
        }
    }
}

async fn write_out<I: Io>(io: &mut I, sender: &mut Sender<'_, '_>, out: &mut Vec<u8>) -> bool {
    let ok = sender.write_all(io, out).await.is_ok();
    out.clear();
    ok
}

/// Streams `body` after the head already in `out`, coalescing frames that are ready
/// into one write. Returns whether the whole response was written.
async fn write_body<I: Io, B>(
    io: &mut I,
    sender: &mut Sender<'_, '_>,
    out: &mut Vec<u8>,
    body: &mut B,
    framing: Framing,
) -> bool
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut left = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    loop {
        if left == Some(0) {
            return write_out(io, sender, out).await;
        }
        // Poll once; if nothing is ready, send what is buffered before waiting.
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await;
        let next = match polled {
            Poll::Ready(next) => next,
            Poll::Pending => {
                if !out.is_empty() && !write_out(io, sender, out).await {
                    return false;
                }
                std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
            }
        };
        match next {
            None => {
                return match framing {
                    Framing::Chunked => {
                        codec::encode_last_chunk(out, None);
                        write_out(io, sender, out).await
                    }
                    // A body shorter than it declared: the client must not take it as whole.
                    Framing::Length(_) => {
                        tracing::debug!("response body ended before its length");
                        let _ = write_out(io, sender, out).await;
                        false
                    }
                    _ => write_out(io, sender, out).await,
                };
            }
            Some(Err(e)) => {
                tracing::debug!("response body failed: {e}");
                let _ = write_out(io, sender, out).await;
                return false;
            }
            Some(Ok(frame)) => {
                let frame = match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => {
                        if let (Ok(trailers), Framing::Chunked) = (frame.into_trailers(), framing) {
                            codec::encode_last_chunk(out, Some(&trailers));
                            return write_out(io, sender, out).await;
                        }
                        continue;
                    }
                };
                if frame.is_empty() {
                    continue;
                }
                if let Some(left) = left.as_mut() {
                    if frame.len() as u64 > *left {
                        tracing::debug!("response body longer than its length");
                        let _ = write_out(io, sender, out).await;
                        return false;
                    }
                    *left -= frame.len() as u64;
                }
                if framing == Framing::Chunked {
                    codec::encode_chunk_size(out, frame.len());
                }
                if frame.len() > WRITE_HIGH_WATER {
                    if !write_out(io, sender, out).await
                        || sender.write_all(io, &frame).await.is_err()
                    {
                        return false;
                    }
                } else {
                    out.extend_from_slice(&frame);
                }
                if framing == Framing::Chunked {
                    out.extend_from_slice(b"\r\n");
                }
                if out.len() >= WRITE_HIGH_WATER && !write_out(io, sender, out).await {
                    return false;
                }
            }
        }
    }
}

/// Closes a connection gently: stop sending, then read and drop what the client
/// still sends (an unread body) for a moment, so it sees the response, not a reset.
async fn linger<I: Io>(io: &mut I, buf: &mut BytesMut) {
    // A TLS close may have to wait for room to write its alert: bounded too.
    let _ = tokio::time::timeout(LINGER_TIME, io.shutdown()).await;
    let deadline = Instant::now() + LINGER_TIME;
    let mut drained = 0usize;
    while drained < LINGER_BYTES {
        buf.clear();
        buf.reserve(READ_CHUNK);
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, io.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}
