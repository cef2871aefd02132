//! The guards' refusals of a gRPC call are gRPC errors (Trailers-Only: status 200,
//! `grpc-status`, `grpc-message`, no body), not problems.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_store::LocalState;

use crate::support::*;

/// A gRPC call over h2c to `path` with `headers`: the status, the head, the body.
async fn grpc_call(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, Bytes) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://grpc.test{path}"))
        .header("content-type", "application/grpc+proto")
        .header("te", "trailers");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    // One empty message: a zero flag and a zero length.
    let body = Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]));
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        sender.send_request(request.body(body).expect("request")),
    )
    .await
    .expect("answered in time")
    .expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status.as_u16(), parts.headers, body)
}

/// Checks a Trailers-Only gRPC error and returns its status and message.
fn grpc_error((status, headers, body): (u16, http::HeaderMap, Bytes)) -> (String, String) {
    assert_eq!(status, 200, "{headers:?}");
    assert_eq!(headers["content-type"], "application/grpc", "{headers:?}");
    assert!(headers.contains_key("x-request-id"), "{headers:?}");
    assert!(body.is_empty(), "{body:?}");
    let text = |name: &str| headers[name].to_str().expect("ascii").to_string();
    (text("grpc-status"), text("grpc-message"))
}

#[tokio::test]
async fn guard_refusals_of_grpc_calls_are_grpc_errors() {
    let up = mirror().await;
    let store = store().await;
    let (_, _, secret) = key(&store, "partner", &["notes:read"]).await;
    let (_, _, weak) = key(&store, "reader", &["profile:read"]).await;
    let setup = gateway(
        store,
        Arc::new(LocalState::default()),
        up,
        r#"
[[routes]]
name = "notes"
match = { path_prefix = "/rampart.test.Notes" }
upstream = "app"
auth = { methods = ["api_key"], scopes = ["notes:read"] }
[[routes]]
name = "limited"
match = { path_prefix = "/rampart.test.Limited" }
upstream = "app"
rate_limits = [{ requests = 1, per = "1m" }]
"#,
    )
    .await;
    let call = "/rampart.test.Notes/Echo";
    assert_eq!(
        grpc_error(grpc_call(setup.addr, call, &[]).await),
        ("16".into(), "Valid credentials are required".into())
    );
    assert_eq!(
        grpc_error(grpc_call(setup.addr, call, &[("x-api-key", &weak)]).await),
        (
            "7".into(),
            "The credentials do not allow this request".into()
        )
    );
    let (status, headers, _) = grpc_call(setup.addr, call, &[("x-api-key", &secret)]).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("grpc-status"), "{headers:?}");

    let limited = "/rampart.test.Limited/Echo";
    let (status, headers, _) = grpc_call(setup.addr, limited, &[]).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("grpc-status"), "{headers:?}");
    assert_eq!(
        grpc_error(grpc_call(setup.addr, limited, &[]).await),
        ("8".into(), "Too many requests".into())
    );

    // The same refusal of a request that is not a gRPC call stays a problem.
    let plain = get(setup.addr, call, &[]).await;
    assert_eq!(plain.status, 401);
    assert_eq!(plain.body["type"], "urn:rampart:problem:unauthenticated");
}
