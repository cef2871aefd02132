//! TCP streams whose writes are system calls made directly.
//!
//! tokio writes through the C library's `send`, which in a process with more than one
//! thread (Rampart always has a few) brackets the system call with two atomic updates
//! of the thread's cancellation state, glibc's bookkeeping for `pthread_cancel`, which
//! Rampart never uses. A proxied request makes two writes, one to the upstream and one
//! to the client; [`DirectTcp`] makes the same `send(2)` with `rustix`, without that
//! wrapper. Reads stay tokio's: filling its uninitialised buffers from a direct call
//! would need `unsafe` code.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A connected TCP stream: reads through tokio, writes by direct `send(2)` calls
/// (`MSG_NOSIGNAL`: a peer that went away is an error, never a signal).
pub(crate) struct DirectTcp(TcpStream);

impl DirectTcp {
    /// Wraps a connected stream.
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self(stream)
    }

    /// The stream itself.
    pub(crate) fn get_ref(&self) -> &TcpStream {
        &self.0
    }

    /// Runs `send` once the socket is writable, until it does not block.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        mut send: impl FnMut(&TcpStream) -> rustix::io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_io(Interest::WRITABLE, || {
                send(&self.0).map_err(io::Error::from)
            }) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncRead for DirectTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for DirectTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, |stream| {
            rustix::net::send(stream, buf, SendFlags::NOSIGNAL)
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, |stream| {
            rustix::net::sendmsg(
                stream,
                bufs,
                &mut SendAncillaryBuffer::default(),
                SendFlags::NOSIGNAL,
            )
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing is buffered here.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair on loopback: (ours, wrapped; the peer's, plain).
    async fn pair() -> (DirectTcp, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (ours, theirs) = tokio::join!(TcpStream::connect(address), listener.accept());
        (
            DirectTcp::new(ours.expect("connect")),
            theirs.expect("accept").0,
        )
    }

    #[tokio::test]
    async fn writes_larger_than_the_socket_buffers_arrive_whole_and_in_order() {
        let (mut ours, mut theirs) = pair().await;
        // Far more than the kernel buffers hold: the writer must wait for the reader.
        let sent: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            ours.write_all(&sent).await.expect("write");
            let parts = [io::IoSlice::new(b"two "), io::IoSlice::new(b"slices")];
            let n = ours.write_vectored(&parts).await.expect("vectored write");
            assert_eq!(n, 10, "a short vectored write on an idle socket");
            ours.shutdown().await.expect("shutdown");
        });
        let mut received = Vec::new();
        theirs.read_to_end(&mut received).await.expect("read");
        writer.await.expect("writer");
        assert_eq!(received.len(), expected.len() + 10);
        assert!(received[..expected.len()] == expected[..], "bytes differ");
        assert_eq!(&received[expected.len()..], b"two slices");
    }

    #[tokio::test]
    async fn writing_to_a_closed_peer_fails_with_an_error() {
        let (mut ours, theirs) = pair().await;
        drop(theirs);
        let mut result = Ok(());
        // The first write may still be accepted; a reset follows.
        for _ in 0..100 {
            result = ours.write_all(&[0u8; 64 * 1024]).await;
            if result.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let error = result.expect_err("writes to a closed peer kept succeeding");
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{error:?}"
        );
    }
}
