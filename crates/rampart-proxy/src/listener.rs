//! Accept loops: plain and TLS listeners serving HTTP/1.1, HTTP/2 and upgrades,
//! with graceful draining on shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rampart_config::ServerSettings;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::service::{handle, ConnectionInfo, LoggedBody, Shared};

/// The boxed future of one request (boxing pins down its `Send` bound).
type ResponseFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<http::Response<LoggedBody>, std::convert::Infallible>> + Send>,
>;

/// Longest a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
        .keep_alive_interval(Some(server.idle_timeout))
        .max_concurrent_streams(1024);
    builder
}

/// Runs one listener until `stop` flips, then drains its connections for up to `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    name: Arc<str>,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let server = shared.runtime.load().config.server.clone();
    let builder = Arc::new(connection_builder(&server));
    let graceful = GracefulShutdown::new();
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
        let info = Arc::new(ConnectionInfo {
            listener: Arc::clone(&name),
            peer,
            scheme: if tls.is_some() { "https" } else { "http" },
        });
        let shared = Arc::clone(&shared);
        let service = service_fn(move |request| -> ResponseFuture {
            Box::pin(handle(Arc::clone(&shared), Arc::clone(&info), request))
        });
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                None => {
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    let grace = shared.runtime.load().config.server.shutdown_grace;
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!(listener = %name, "listener drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(listener = %name, ?grace, "grace period over; closing remaining connections"),
    }
}
