//! The client side of HTTP/1.1 to one upstream target: a pool of kept-alive
//! connections, requests written in one go when their body is ready, and response
//! bodies read straight from the connection by whoever polls them (no task or
//! channel in between). A connection goes back to the pool the moment its response
//! body has been read to the end.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::codec::{self, ChunkedDecoder, Decoded, Framing};
use super::upgrade::{Upgraded, UpstreamUpgraded};
use crate::body::{empty, BodyIdleTimeout, BoxError, ProxyBody};
use crate::headers::AddedFields;
use crate::tcp::DirectTcp;

/// Largest response head accepted from an upstream.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Read buffer reserved per read.
const READ_CHUNK: usize = 16 * 1024;
/// Request bodies up to this size are written together with the head.
const COALESCE_BODY: usize = 64 * 1024;

/// Why a request to an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made (or its TLS handshake failed).
    #[error("connect: {0}")]
    Connect(String),
    /// Reading the request body from the client failed.
    #[error("request body: {0}")]
    Body(BoxError),
    /// The upstream broke the exchange. `retryable`: the request may be sent again
    /// (never set by this client, whose only such case is [`SendError::Stale`]).
    #[error("{detail}")]
    Protocol {
        /// What went wrong.
        detail: String,
        /// Whether a retry is safe.
        retryable: bool,
    },
    /// A kept-alive connection turned out to be closed by the upstream (a write to it
    /// failed, or it closed before any byte of the answer), so the request may be sent
    /// again on a fresh connection. Whether it may is the route's call, by what reached
    /// the upstream:
    /// - `written: false`: nothing of the request was written (the first write to a
    ///   plain TCP connection failed): it never reached the upstream, and is safe to
    ///   send again whatever its method, like a connect failure.
    /// - `written: true`: it was written, in part or in full, and no answer came back.
    ///   The upstream most likely closed the idle connection as the request crossed,
    ///   but may have received and processed it: only a request the route may repeat
    ///   (an idempotent method, or any with `retry.non_idempotent`) goes again.
    ///
    /// This client never sends a request twice by itself.
    #[error("{detail}")]
    Stale {
        /// What went wrong.
        detail: String,
        /// Whether any of the request was written.
        written: bool,
    },
    /// The deadline passed before the response head arrived.
    #[error("no response head before the deadline")]
    Timeout,
}

/// A TCP or TLS connection to a target.
enum Stream {
    Tcp(DirectTcp),
    Tls(Box<TlsStream<DirectTcp>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One connection and the bytes read from it but not yet used.
struct Conn {
    stream: Stream,
    buf: BytesMut,
    /// What is about to be written (kept between requests to reuse its storage).
    out: Vec<u8>,
    /// When the attempt that last took it began: its idle time is over-estimated by
    /// that attempt's length, never under-estimated, and no clock is read to check it in.
    last_used: Instant,
    reused: bool,
    /// The deadline timer of the exchanges on this connection, kept from one request to
    /// the next (see [`before_deadline`]): a request costs no timer registration.
    /// Taken out while an exchange runs.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Conn {
    /// Whether the peer closed (or sent something unasked) while the connection idled.
    /// Costs no system call unless the socket was reported readable. A plain TCP
    /// connection is probed with a non-blocking read, which leaves no waker with the
    /// socket (the response read registers the task's own next, once); a TLS one is
    /// polled with the task's context, since its layer may hold bytes already read.
    fn is_stale(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let mut probe = [0u8; 1];
        match &mut self.stream {
            Stream::Tcp(tcp) => !matches!(
                tcp.get_ref().try_read(&mut probe),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
            Stream::Tls(tls) => {
                let mut read = ReadBuf::new(&mut probe);
                !matches!(
                    Pin::new(tls.as_mut()).poll_read(cx, &mut read),
                    Poll::Pending
                )
            }
        }
    }
}

/// Where and how to connect to one target.
#[derive(Clone)]
pub struct ConnectTo {
    /// `host:port`.
    pub authority: String,
    /// TLS settings, for `https` targets.
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Connect (and TLS handshake) deadline.
    pub connect_timeout: Duration,
}

/// The kept-alive connections to one target.
pub struct TargetClient {
    connect: ConnectTo,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl std::fmt::Debug for TargetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetClient")
            .field("authority", &self.connect.authority)
            .field("idle", &self.idle.lock().len())
            .finish()
    }
}

/// The parts of a request this client sends.
pub struct Outbound<'a> {
    /// Method.
    pub method: &'a Method,
    /// Origin-form target (`/path?query`).
    pub path_and_query: &'a PathAndQuery,
    /// The `Host` field (sent first, instead of any `Host` in `headers`).
    pub host: Option<&'a HeaderValue>,
    /// The other fields; framing fields are set from the body, not taken from here.
    pub headers: &'a HeaderMap,
    /// Fields the proxy sets, written after `headers` (which holds none of their names).
    pub added: &'a AddedFields,
    /// The client asked for trailers (`TE: trailers`, removed from `headers` with the
    /// other hop-by-hop fields): sent on to HTTP/2 targets only.
    pub te_trailers: bool,
    /// The request asks for a protocol upgrade (its `Upgrade` field is among `headers`).
    pub upgrade: bool,
    /// The body.
    pub body: ProxyBody,
    /// How the response's fields are handed back (pools over HTTP/2 always give a map).
    pub response_fields: codec::ResponseFields,
    /// When the attempt began (the idle pool's clock: no reading of its own).
    pub now: Instant,
    /// When the attempt gives up waiting for the response head
    /// ([`SendError::Timeout`]).
    pub deadline: tokio::time::Instant,
    /// Once the head has arrived, the longest the upstream may send nothing of the
    /// body: past it the body fails with [`crate::body::BodyIdleTimeout`] and its
    /// connection is closed.
    pub body_idle: Duration,
    /// Send on a new connection, not a kept-alive one (the request goes again after
    /// [`SendError::Stale`]).
    pub fresh: bool,
    /// Where the response's fields go when they pass through (`response_fields`).
    pub passed: &'a mut Option<Box<codec::PassedFields>>,
}

impl TargetClient {
    /// A client keeping at most `max_idle` connections idle, each for at most `idle_timeout`.
    pub fn new(connect: ConnectTo, max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            connect,
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// A kept-alive connection idle for less than the idle timeout at `now`.
    fn checkout(&self, now: Instant) -> Option<Conn> {
        let mut idle = self.idle.lock();
        while let Some(conn) = idle.pop() {
            if now.saturating_duration_since(conn.last_used) < self.idle_timeout {
                return Some(conn);
            }
        }
        None
    }

    /// A kept-alive connection still fresh at `now` and still open, marked as taken
    /// at `now`.
    async fn checkout_open(&self, now: Instant) -> Option<Conn> {
        loop {
            let mut conn = self.checkout(now)?;
            if !std::future::poll_fn(|cx| Poll::Ready(conn.is_stale(cx))).await {
                conn.reused = true;
                conn.last_used = now;
                return Some(conn);
            }
        }
    }

    fn checkin(&self, conn: Conn) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    async fn connect(
        &self,
        now: Instant,
        deadline: tokio::time::Instant,
    ) -> Result<Conn, SendError> {
        let connect = &self.connect;
        let attempt = async {
            let tcp = TcpStream::connect(connect.authority.as_str())
                .await
                .map_err(|e| SendError::Connect(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let tcp = DirectTcp::new(tcp);
            let stream = match &connect.tls {
                None => Stream::Tcp(tcp),
                Some((connector, name)) => Stream::Tls(Box::new(
                    connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| SendError::Connect(format!("TLS: {e}")))?,
                )),
            };
            Ok(Conn {
                stream,
                buf: BytesMut::with_capacity(READ_CHUNK),
                out: Vec::with_capacity(1024),
                last_used: now,
                reused: false,
                timer: None,
            })
        };
        let connect_deadline = tokio::time::Instant::now() + connect.connect_timeout;
        match tokio::time::timeout_at(connect_deadline.min(deadline), attempt).await {
            Ok(result) => result,
            Err(_) if deadline < connect_deadline => Err(SendError::Timeout),
            Err(_) => Err(SendError::Connect(format!(
                "no connection within {:?}",
                connect.connect_timeout
            ))),
        }
    }

    /// Sends a request and waits for the response head. The response body reads
    /// from the connection as it is polled.
    pub async fn send(
        self: &Arc<Self>,
        request: Outbound<'_>,
    ) -> Result<Response<ProxyBody>, SendError> {
        let Outbound {
            method,
            path_and_query,
            host,
            headers,
            added,
            te_trailers: _,
            upgrade,
            body,
            response_fields,
            now,
            deadline,
            body_idle,
            fresh,
            passed,
        } = request;
        let hint = body.size_hint();
        let framing = if crate::body::is_known_empty(&body) {
            // Methods that usually carry content say so even when it is empty.
            if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
                Framing::Length(0)
            } else {
                Framing::Empty
            }
        } else {
            hint.exact().map_or(Framing::Chunked, Framing::Length)
        };
        let kept = if fresh {
            None
        } else {
            self.checkout_open(now).await
        };
        let mut conn = match kept {
            Some(conn) => conn,
            None => self.connect(now, deadline).await?,
        };
        conn.out.clear();
        codec::encode_request_head(
            &mut conn.out,
            method,
            path_and_query.as_str(),
            host,
            headers,
            added,
            framing,
        );
        let mut timer = conn
            .timer
            .take()
            .unwrap_or_else(|| Box::pin(tokio::time::sleep_until(deadline)));
        let outcome = {
            // Pinned where it is made and lent to the wait: not moved once built.
            let exchange = std::pin::pin!(async {
                write_request(&mut conn, body, framing).await?;
                read_response_head(&mut conn, method, response_fields).await
            });
            before_deadline(timer.as_mut(), deadline, exchange)
                .await
                .unwrap_or(Err(SendError::Timeout))
        };
        conn.timer = Some(timer);
        let mut response_head = outcome?;
        *passed = response_head.passed.take();
        Ok(self.response(conn, response_head, upgrade, body_idle))
    }

    fn response(
        self: &Arc<Self>,
        conn: Conn,
        head: codec::ResponseHead,
        upgrade: bool,
        body_idle: Duration,
    ) -> Response<ProxyBody> {
        let codec::ResponseHead {
            parts,
            passed: _,
            framing,
            keep_alive,
        } = head;
        let mut response = Response::from_parts(parts, empty());
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if upgrade {
                let Conn { stream, buf, .. } = conn;
                response
                    .extensions_mut()
                    .insert(UpstreamUpgraded::new(Upgraded::new(
                        buf.freeze(),
                        Box::new(stream),
                    )));
            }
            return response;
        }
        let state = match framing {
            Framing::Empty | Framing::Invalid => {
                if keep_alive {
                    self.checkin(conn);
                }
                return response;
            }
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::new(MAX_RESPONSE_HEAD)),
            Framing::UntilClose => BodyState::UntilClose,
        };
        let body = UpstreamBody {
            conn: Some(conn),
            state,
            keep_alive,
            client: Arc::clone(self),
            idle: body_idle,
            idle_deadline: None,
            timer_waker: super::LastWaker::default(),
        };
        *response.body_mut() = body.boxed();
        response
    }
}

/// Runs `exchange` until `deadline`: `None` when the deadline passes first.
///
/// The timer is armed lazily. A connection's requests nearly always have later
/// deadlines than the one before, so the timer, once registered, stays as it is: when
/// it fires before the current deadline it is moved to that deadline and waited on
/// again. That is one timer update per timeout period of a busy connection, instead of
/// a registration and a removal (each under the timer driver's lock) per request.
async fn before_deadline<T>(
    timer: Pin<&mut tokio::time::Sleep>,
    deadline: tokio::time::Instant,
    mut exchange: Pin<&mut impl Future<Output = T>>,
) -> Option<T> {
    let mut timer = super::LazyTimer::new(timer);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = exchange.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        timer.poll_until(cx, deadline).map(|()| None)
    })
    .await
}

/// Writes the head (already encoded in `conn.out`) and the body.
async fn write_request(
    conn: &mut Conn,
    body: ProxyBody,
    framing: Framing,
) -> Result<(), SendError> {
    let mut out = std::mem::take(&mut conn.out);
    let written = write_head_and_body(conn, &mut out, body, framing).await;
    conn.out = out;
    written
}

/// Writes `out` and then the body, coalescing what is ready into few writes.
async fn write_head_and_body(
    conn: &mut Conn,
    out: &mut Vec<u8>,
    mut body: ProxyBody,
    framing: Framing,
) -> Result<(), SendError> {
    let mut sent_head = false;
    loop {
        // Take what is ready without waiting; wait only with nothing left to send.
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let next = match polled {
            Poll::Ready(next) => next,
            Poll::Pending => {
                if !out.is_empty() {
                    send_out(conn, out, &mut sent_head).await?;
                }
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        match next {
            None => {
                if framing == Framing::Chunked {
                    codec::encode_last_chunk(out, None);
                }
                break;
            }
            Some(Err(e)) => return Err(SendError::Body(e)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => {
                    if framing == Framing::Chunked {
                        codec::encode_chunk_size(out, data.len());
                    }
                    out.extend_from_slice(&data);
                    if framing == Framing::Chunked {
                        out.extend_from_slice(b"\r\n");
                    }
                    if out.len() > COALESCE_BODY {
                        send_out(conn, out, &mut sent_head).await?;
                    }
                }
                Ok(_) => {}
                Err(frame) => {
                    if let (Ok(trailers), Framing::Chunked) = (frame.into_trailers(), framing) {
                        codec::encode_last_chunk(out, Some(&trailers));
                        break;
                    }
                }
            },
        }
    }
    if !out.is_empty() {
        send_out(conn, out, &mut sent_head).await?;
    }
    Ok(())
}

/// Writes what is buffered; `sent_any` notes that some of the request was written.
/// A failure on a reused connection means the target had closed it
/// ([`SendError::Stale`]): with nothing written before it, on plain TCP, the request
/// never reached the target. (A TLS layer may have sent part of what it took when it
/// reports a failure, so there every failure counts as written.)
async fn send_out(
    conn: &mut Conn,
    out: &mut Vec<u8>,
    sent_any: &mut bool,
) -> Result<(), SendError> {
    let mut at = 0;
    while at < out.len() {
        let failure = match conn.stream.write(&out[at..]).await {
            Ok(0) => io::Error::from(io::ErrorKind::WriteZero),
            Ok(n) => {
                at += n;
                *sent_any = true;
                continue;
            }
            Err(e) => e,
        };
        let detail = format!("writing the request: {failure}");
        return Err(if conn.reused {
            SendError::Stale {
                detail,
                written: *sent_any || matches!(conn.stream, Stream::Tls(_)),
            }
        } else {
            SendError::Protocol {
                detail,
                retryable: false,
            }
        });
    }
    out.clear();
    Ok(())
}

/// Reads the final response head (skipping `1xx` interim responses other than `101`).
async fn read_response_head(
    conn: &mut Conn,
    method: &Method,
    fields_as: codec::ResponseFields,
) -> Result<codec::ResponseHead, SendError> {
    let mut got_any = false;
    loop {
        if !conn.buf.is_empty() {
            got_any = true;
            match codec::parse_response(&mut conn.buf, method, MAX_RESPONSE_HEAD, fields_as) {
                Ok(Some(head)) => {
                    let status = head.parts.status;
                    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                        continue;
                    }
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(SendError::Protocol {
                        detail: e.to_string(),
                        retryable: false,
                    })
                }
            }
        }
        conn.buf.reserve(READ_CHUNK);
        let detail = match tokio::io::AsyncReadExt::read_buf(&mut conn.stream, &mut conn.buf).await
        {
            Ok(0) => "the upstream closed the connection before answering".to_string(),
            Ok(_) => continue,
            Err(e) => format!("reading the response: {e}"),
        };
        // Written, and closed before any byte of an answer: on a kept-alive connection
        // most likely closed while idle, as the request crossed.
        return Err(if conn.reused && !got_any {
            SendError::Stale {
                detail,
                written: true,
            }
        } else {
            SendError::Protocol {
                detail,
                retryable: false,
            }
        });
    }
}

enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// Why an upstream response body could not be read.
#[derive(Debug, thiserror::Error)]
enum ResponseBodyError {
    #[error("the upstream closed the connection before the body ended")]
    Truncated,
    #[error("{0}")]
    Chunked(#[from] codec::ChunkError),
    #[error("reading the response body: {0}")]
    Io(#[from] io::Error),
}

/// A response body read from its connection as it is polled.
struct UpstreamBody {
    conn: Option<Conn>,
    state: BodyState,
    keep_alive: bool,
    client: Arc<TargetClient>,
    /// Longest the upstream may send nothing.
    idle: Duration,
    /// When the current wait for bytes gives up: set when a read first finds nothing
    /// (one clock reading per wait, none per frame), cleared when bytes come.
    idle_deadline: Option<tokio::time::Instant>,
    /// The waker the connection's timer holds (the wait reuses the connection's
    /// deadline timer, moved lazily: no timer registered per body or per wait).
    timer_waker: super::LastWaker,
}

impl UpstreamBody {
    fn finish(&mut self) {
        self.state = BodyState::Done;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.client.checkin(conn);
            }
        }
    }

    /// Ends the body with `error`; the connection is closed, not reused.
    fn fail(&mut self, error: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = BodyState::Done;
        self.conn = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.state {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Length(left) if !conn.buf.is_empty() => {
                    let take = (*left).min(conn.buf.len() as u64) as usize;
                    let data = conn.buf.split_to(take).freeze();
                    *left -= take as u64;
                    if *left == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                BodyState::Chunked(decoder) => match decoder.decode(&mut conn.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::End(trailers)) => {
                        this.finish();
                        if trailers.is_empty() {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Decoded::NeedMore) => {}
                    Err(e) => return this.fail(Box::new(ResponseBodyError::from(e))),
                },
                BodyState::UntilClose if !conn.buf.is_empty() => {
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                BodyState::Length(_) | BodyState::UntilClose => {}
            }
            conn.buf.reserve(READ_CHUNK);
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.buf) {
                Poll::Pending => {
                    let idle = this.idle;
                    let deadline = *this
                        .idle_deadline
                        .get_or_insert_with(|| tokio::time::Instant::now() + idle);
                    let timer = conn
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if super::poll_lazy(timer.as_mut(), &mut this.timer_waker, cx, deadline)
                        .is_ready()
                    {
                        tracing::debug!("upstream response body idle for {idle:?}");
                        return this.fail(Box::new(BodyIdleTimeout(idle)));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => {
                    if matches!(this.state, BodyState::UntilClose) {
                        this.state = BodyState::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    return this.fail(Box::new(ResponseBodyError::Truncated));
                }
                Poll::Ready(Ok(_)) => this.idle_deadline = None,
                Poll::Ready(Err(e)) => return this.fail(Box::new(ResponseBodyError::from(e))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Length(n) => SizeHint::with_exact(n),
            BodyState::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
