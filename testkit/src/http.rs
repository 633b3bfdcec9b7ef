//! HTTP to a server on loopback: any request, the gzip upload a collector
//! sends, and waiting for `/health`.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::rows::{array, gzip};

/// Status, headers and body text.
pub type Response = (StatusCode, HeaderMap, String);

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<Response> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(Full::new(body.into()))?).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec())?,
    ))
}

pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Response> {
    request(addr, "GET", path, &[], Bytes::new()).await
}

/// Gzip-posts `json` to the upload endpoint with `key`.
pub async fn upload(addr: SocketAddr, key: &str, json: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![
        ("x-collector-key", key),
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ];
    headers.extend_from_slice(extra);
    request(
        addr,
        "POST",
        "/api/collector/upload",
        &headers,
        gzip(json.as_bytes()),
    )
    .await
    .unwrap()
}

/// Uploads `rows` in uploads of `chunk` rows, each answered 200.
pub async fn upload_rows(addr: SocketAddr, key: &str, rows: &[String], chunk: usize) {
    for part in rows.chunks(chunk) {
        let (status, _, body) = upload(addr, key, &array(part), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Waits (up to 30 s) until /health answers on `port`.
pub async fn wait_healthy(port: u16) {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok((StatusCode::OK, _, _)) = get(addr, "/health").await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("adit did not become healthy on port {port}");
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
