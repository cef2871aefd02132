//! Accept loops: plain and TLS listeners serving HTTP/1.1, HTTP/2 and upgrades,
//! closing idle connections and draining gracefully on shutdown.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rampart_config::ServerSettings;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::framing::{FramingScanner, FramingVerdicts, ScannedIo};
use crate::service::{handle, ConnectionInfo, LoggedBody, Shared};

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

/// A stream that records when bytes last moved.
struct ActivityIo {
    inner: TcpStream,
    activity: Arc<ConnectionActivity>,
}

impl AsyncRead for ActivityIo {
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

impl AsyncWrite for ActivityIo {
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

fn connection_builder(server: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.idle_timeout)
        .max_buf_size(server.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(1024);
    builder
}

/// Serves one connection until it ends, it idles out, or shutdown asks it to finish.
async fn drive<I>(
    builder: &auto::Builder<TokioExecutor>,
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
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
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
    let builder = Arc::new(connection_builder(&server));
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
        let activity = Arc::new(ConnectionActivity::new());
        let verdicts = Arc::new(FramingVerdicts::default());
        let info = Arc::new(ConnectionInfo {
            listener: Arc::clone(&name),
            peer,
            scheme: if tls.is_some() { "https" } else { "http" },
            activity: Arc::clone(&activity),
            framing: Arc::clone(&verdicts),
            requests: AtomicU64::new(0),
        });
        let max_head = server.max_header_bytes;
        let shared_for_conn = Arc::clone(&shared);
        let service = service_fn(move |request| -> ResponseFuture {
            Box::pin(handle(
                Arc::clone(&shared_for_conn),
                Arc::clone(&info),
                request,
            ))
        });
        let builder = Arc::clone(&builder);
        let tls = tls.clone();
        let stop = stop.clone();
        let alive = alive.clone();
        let idle_timeout = server.idle_timeout;
        tokio::spawn(async move {
            let _alive = alive;
            let io = ActivityIo {
                inner: stream,
                activity: Arc::clone(&activity),
            };
            let scanner = FramingScanner::new(max_head, verdicts);
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => {
                            // HTTP/2 frames its own messages; only HTTP/1 is scanned.
                            let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            let stream = ScannedIo::new(stream, (!http2).then_some(scanner));
                            drive(&builder, stream, service, &activity, idle_timeout, stop).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => {
                    drive(
                        &builder,
                        ScannedIo::new(io, Some(scanner)),
                        service,
                        &activity,
                        idle_timeout,
                        stop,
                    )
                    .await
                }
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
