//! The least a tokio-based HTTP/1.1 reverse proxy can do: one current-thread runtime,
//! one upstream connection per client connection, requests without bodies, responses
//! framed by `Content-Length`. No routing, header rewriting, logs, metrics, timeouts or
//! resilience. `bench/floor.sh` runs it beside nginx and Rampart to show what the
//! runtime and the kernel cost before any of Rampart's own work.
//!
//! Usage: rampart-bench-floor LISTEN_ADDR UPSTREAM_ADDR
#![forbid(unsafe_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request or response head accepted.
const MAX_HEAD: usize = 64 << 10;

/// Reads into `buf` until it holds one whole head, as `parse` finds it; `None` at end
/// of stream or on a malformed or oversized head.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Option<Option<(usize, usize)>>,
) -> std::io::Result<Option<(usize, usize)>> {
    loop {
        match parse(buf) {
            Some(Some(found)) => return Ok(Some(found)),
            Some(None) if buf.len() < MAX_HEAD => {}
            _ => return Ok(None),
        }
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// `Some(Some((head length, 0)))` for a whole request head, `Some(None)` for a partial one.
fn request_head(buf: &[u8]) -> Option<Option<(usize, usize)>> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    match httparse::Request::new(&mut fields).parse(buf).ok()? {
        httparse::Status::Complete(n) => Some(Some((n, 0))),
        httparse::Status::Partial => Some(None),
    }
}

/// `Some(Some((head length, body length)))` for a whole response head.
fn response_head(buf: &[u8]) -> Option<Option<(usize, usize)>> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(buf).ok()? {
        httparse::Status::Complete(n) => {
            let length = response
                .headers
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case("content-length"))
                .and_then(|f| std::str::from_utf8(f.value).ok()?.trim().parse().ok())?;
            Some(Some((n, length)))
        }
        httparse::Status::Partial => Some(None),
    }
}

async fn relay(mut client: TcpStream, upstream: std::net::SocketAddr) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (mut from_client, mut from_server) = (Vec::with_capacity(8192), Vec::with_capacity(8192));
    loop {
        let Some((head, _)) = read_head(&mut client, &mut from_client, request_head).await? else {
            return Ok(());
        };
        server.write_all(&from_client[..head]).await?;
        from_client.drain(..head);
        let Some((head, body)) = read_head(&mut server, &mut from_server, response_head).await?
        else {
            return Ok(());
        };
        let whole = head.saturating_add(body);
        while from_server.len() < whole {
            if whole > MAX_HEAD || server.read_buf(&mut from_server).await? == 0 {
                return Ok(());
            }
        }
        client.write_all(&from_server[..whole]).await?;
        from_server.drain(..whole);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(listen), Some(upstream)) = (args.first(), args.get(1)) else {
        eprintln!("usage: rampart-bench-floor LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let upstream: std::net::SocketAddr = upstream
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(relay(client, upstream));
    }
}
