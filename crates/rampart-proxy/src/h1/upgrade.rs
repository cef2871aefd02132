//! Connections handed over after `101 Switching Protocols`, with the bytes already
//! read from them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// Any byte stream a connection can run on (TCP, TLS).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connection taken over by an upgraded protocol: first the bytes already read
/// past the HTTP head, then the stream itself.
pub struct Upgraded {
    prefix: Bytes,
    io: Box<dyn Io>,
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("prefix", &self.prefix.len())
            .finish()
    }
}

impl Upgraded {
    /// The stream `io`, of which `prefix` was already read.
    pub fn new(prefix: Bytes, io: Box<dyn Io>) -> Self {
        Self { prefix, io }
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Request extension: the client connection, delivered once the `101` response has
/// been written to it. (Extensions must be `Clone`; clones share the one delivery.)
#[derive(Debug, Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl OnUpgrade {
    /// A pending upgrade and the sender that completes it.
    pub(crate) fn pending() -> (oneshot::Sender<Upgraded>, Self) {
        let (sender, receiver) = oneshot::channel();
        (sender, OnUpgrade(Arc::new(Mutex::new(Some(receiver)))))
    }

    /// Waits for the connection; `None` if it was not upgraded (or already taken).
    pub async fn connection(&self) -> Option<Upgraded> {
        let receiver = self.0.lock().take()?;
        receiver.await.ok()
    }
}

/// Response extension: the upstream connection after it answered `101`.
#[derive(Debug, Clone)]
pub struct UpstreamUpgraded(Arc<Mutex<Option<Upgraded>>>);

impl UpstreamUpgraded {
    pub(crate) fn new(connection: Upgraded) -> Self {
        UpstreamUpgraded(Arc::new(Mutex::new(Some(connection))))
    }

    /// Takes the connection (once).
    pub fn take(&self) -> Option<Upgraded> {
        self.0.lock().take()
    }
}
