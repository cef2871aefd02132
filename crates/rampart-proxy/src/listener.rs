//! Accept loops: plain and TLS listeners. HTTP/1.1 (with upgrades) is served by
//! [`crate::h1::server`]; HTTP/2 (ALPN `h2`, or h2c by prior knowledge) by hyper.
//! Idle connections are closed and all of them drain gracefully on shutdown.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rampart_config::ServerSettings;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::body::{BoxError, ProxyBody};
use crate::h1::server::ServerLimits;
use crate::h1::upgrade::{Io, Upgraded};
use crate::service::{handle, ConnectionInfo, LoggedBody, Shared};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The boxed future of one request (boxing pins down its `Send` bound).
type ResponseFuture = Pin<
    Box<
        dyn std::future::Future<
                Output = Result<http::Response<LoggedBody>, std::convert::Infallible>,
            > + Send,
    >,
>;

/// Longest a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection's idle watchdog needs to know.
#[derive(Debug)]
pub(crate) struct ConnectionActivity {
    started: Instant,
    /// Milliseconds after `started` of the last byte read or written.
    last_active_ms: AtomicU64,
    /// Requests whose responses are not finished.
    pub in_flight: AtomicUsize,
}

impl ConnectionActivity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        self.last_active_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// A stream that records when bytes last moved (HTTP/2 connections, whose idle
/// timeout hyper does not know).
struct ActivityIo<I> {
    inner: I,
    activity: Arc<ConnectionActivity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for ActivityIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ActivityIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
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
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn http2_builder(server: &ServerSettings) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(1024);
    builder
}

/// Serves one HTTP/2 connection until it ends, it idles out, or shutdown asks it to finish.
async fn drive_http2<I: Io>(
    builder: &hyper::server::conn::http2::Builder<TokioExecutor>,
    io: I,
    service: impl hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<LoggedBody>,
            Error = std::convert::Infallible,
            Future = ResponseFuture,
        > + Clone
        + Send
        + 'static,
    activity: &ConnectionActivity,
    idle_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut check = tokio::time::interval((idle_timeout / 4).max(Duration::from_millis(10)));
    let mut closing = *stop.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended with an error: {e}");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = check.tick(), if !closing => {
                if activity.in_flight.load(Ordering::Relaxed) == 0 && activity.idle_for() >= idle_timeout {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Serves one connection: HTTP/2 when ALPN chose it or the client opens with the
/// HTTP/2 preface, HTTP/1.1 otherwise.
async fn serve_connection<I: Io>(mut io: I, alpn_h2: bool, conn: ConnectionSetup) {
    let ConnectionSetup {
        shared,
        mut info,
        builder,
        limits,
        stop,
    } = conn;
    let mut buf = BytesMut::new();
    let mut http2 = alpn_h2;
    if !http2 {
        // Enough of the first bytes to tell h2c prior knowledge from HTTP/1.
        while buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&buf) {
            buf.reserve(4096);
            let read = tokio::time::timeout(limits.idle_timeout, io.read_buf(&mut buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
        }
        http2 = buf.starts_with(H2_PREFACE);
    }
    if http2 {
        // Only HTTP/2 needs the count of unfinished requests (its idle watchdog).
        let activity = Arc::new(ConnectionActivity::new());
        info.activity = Some(Arc::clone(&activity));
        let info = Arc::new(info);
        let service = service_fn(
            move |request: http::Request<hyper::body::Incoming>| -> ResponseFuture {
                let request = request.map(|b| -> ProxyBody {
                    http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(
                        b,
                        |e| -> BoxError { Box::new(e) },
                    ))
                });
                let (shared, info) = (Arc::clone(&shared), Arc::clone(&info));
                Box::pin(async move {
                    // HTTP/2 responses are written from the map.
                    let (response, passed) = handle(shared, info, request).await;
                    let (mut head, body) = response.into_parts();
                    if let Some(passed) = passed {
                        passed.fold_into(&mut head);
                    }
                    Ok(http::Response::from_parts(head, body))
                })
            },
        );
        let io = ActivityIo {
            inner: Upgraded::new(buf.freeze(), Box::new(io)),
            activity: Arc::clone(&activity),
        };
        drive_http2(&builder, io, service, &activity, limits.idle_timeout, stop).await;
        return;
    }
    let info = Arc::new(info);
    crate::h1::server::serve(io, buf, limits, stop, move |request| {
        handle(Arc::clone(&shared), Arc::clone(&info), request)
    })
    .await;
}

/// What a connection task needs from its listener.
struct ConnectionSetup {
    shared: Arc<Shared>,
    info: ConnectionInfo,
    builder: Arc<hyper::server::conn::http2::Builder<TokioExecutor>>,
    limits: ServerLimits,
    stop: watch::Receiver<bool>,
}

/// Runs one listener until `stop` flips, then drains its connections for up to the
/// config's `shutdown_grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    name: Arc<str>,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let server = shared.runtime.load().config.server.clone();
    let builder = Arc::new(http2_builder(&server));
    let limits = ServerLimits {
        max_head: server.max_header_bytes,
        idle_timeout: server.idle_timeout,
    };
    // Each connection task holds a sender; the channel closes when the last one ends.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(listener = %name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let stream = crate::tcp::DirectTcp::new(stream);
        let info = ConnectionInfo {
            listener: Arc::clone(&name),
            peer,
            peer_ip_value: crate::headers::ip_value(peer.ip()),
            peer_text: peer.to_string().into(),
            scheme: if tls.is_some() { "https" } else { "http" },
            activity: None,
            forwarded: Arc::default(),
            host: Default::default(),
        };
        let context = ConnectionSetup {
            shared: Arc::clone(&shared),
            info,
            builder: Arc::clone(&builder),
            limits,
            stop: stop.clone(),
        };
        let tls = tls.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let _alive = alive;
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            serve_connection(stream, http2, context).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => serve_connection(stream, false, context).await,
            }
        });
    }
    drop(listener);
    drop(alive);
    let grace = shared.runtime.load().config.server.shutdown_grace;
    tokio::select! {
        _ = all_done.recv() => tracing::info!(listener = %name, "listener drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(listener = %name, ?grace, "grace period over; closing remaining connections"),
    }
}
