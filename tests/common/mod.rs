//! Test fixtures: a fresh database per test on the Makefile's private
//! PostgreSQL cluster, an adit server on 127.0.0.1:0, and an HTTP client.
#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;
use tokio_postgres::NoTls;

use adit::serve::ServeConfig;

/// The cluster's admin URL; tests fail loudly without it.
pub fn admin_url() -> String {
    std::env::var("ADIT_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .expect(
            "these tests need PostgreSQL: run `make test`, or `scripts/pg.sh start` and \
             export DATABASE_URL=$(scripts/pg.sh url)",
        )
}

/// Replaces the database name of a URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("URL has a database");
    format!("{base}/{db}")
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot connect to {url}: {e}; is `scripts/pg.sh start` running?")
        });
    tokio::spawn(conn);
    client.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    client
}

/// A new empty database, named after the test.
pub async fn fresh_database(name: &str) -> String {
    fresh_database_on(&admin_url(), name).await
}

/// A new empty database on the cluster behind `admin`.
pub async fn fresh_database_on(admin: &str, name: &str) -> String {
    let client = connect(admin).await;
    let db = format!("adit_t_{}_{}", name, rand::random::<u32>());
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    with_database(admin, &db)
}

/// A running server with its own database.
pub struct TestServer {
    pub addr: SocketAddr,
    pub db_url: String,
    pub db: tokio_postgres::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, |_| {}).await
    }

    pub async fn start_with(name: &str, tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        Self::start_on(&admin_url(), name, tweak).await
    }

    /// A server with its own database on the cluster behind `admin`.
    pub async fn start_on(admin: &str, name: &str, tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        let db_url = fresh_database_on(admin, name).await;
        let mut config = ServeConfig::test_config(db_url.clone());
        tweak(&mut config);
        let tls = config.tls.is_some();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(adit::serve::run(listener, config, async {
            let _ = stopped.await;
        }));
        let db = connect(&db_url).await;
        // Ready once /health answers (migrations ran before the listener
        // serves); over TLS, once a plain-text probe is hung up on.
        for _ in 0..200 {
            if tls {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut probe = tokio::net::TcpStream::connect(addr).await.unwrap();
                let _ = probe.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
                let mut buf = Vec::new();
                let read = tokio::time::timeout(
                    std::time::Duration::from_millis(100),
                    probe.read_to_end(&mut buf),
                );
                if read.await.is_ok() {
                    break;
                }
                continue;
            }
            if let Ok((StatusCode::OK, _, _)) = get(addr, "/health").await {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Self {
            addr,
            db_url,
            db,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn key(&self, site: i32) -> String {
        adit_control::keys::create_key(&self.db, Some(site), Some("test"))
            .await
            .unwrap()
            .1
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.query_one(sql, &[]).await.unwrap().get(0)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

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

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// `n` valid sample rows with distinct miner ids `{prefix}-{i}`.
pub fn rows(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"miner_id":"{prefix}-{i}","online":{},"hashrate_ghs":{}.5,"temperature_max":70,"accepted_shares":{i}}}"#,
                i % 10 != 0,
                100_000 + i
            )
        })
        .collect()
}

pub fn array(rows: &[String]) -> String {
    format!("[{}]", rows.join(","))
}

/// Starts the real `adit serve` binary on `port` against `db_url`.
pub fn spawn_adit(
    db_url: &str,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_adit"));
    // Rate limits have their own test (tests/hostile.rs); load here is unlimited.
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--rate-limit-per-key",
        "0",
    ])
    .args(args)
    .env("DATABASE_URL", db_url)
    .env("RUST_LOG", "warn")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("adit binary starts")
}

/// The real binary serving a fresh database, and a collector key for `site`.
pub struct Spawned {
    pub child: std::process::Child,
    pub db_url: String,
    pub db: tokio_postgres::Client,
    pub key: String,
    pub port: u16,
    pub addr: SocketAddr,
}

/// Starts `adit serve` (with `args`, `env`) on a fresh database named after
/// the test, waits until it is healthy, and creates a key for `site`.
pub async fn spawn_with_key(name: &str, site: i32, args: &[&str], env: &[(&str, &str)]) -> Spawned {
    let db_url = fresh_database(name).await;
    let port = free_port();
    let child = spawn_adit(&db_url, port, args, env);
    wait_healthy(port).await;
    let db = connect(&db_url).await;
    let key = adit_control::keys::create_key(&db, Some(site), None)
        .await
        .unwrap()
        .1;
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    Spawned {
        child,
        db_url,
        db,
        key,
        port,
        addr,
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `python3 -c script args…`, failing with a hint when the tools the
/// tests need are missing.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs (make setup installs it)");
    assert!(
        out.status.success(),
        "python3 failed (run `make setup` for pyarrow and moto): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Who calls a control-plane endpoint: a collector key, an admin token, or
/// nobody.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    Key(&'a str),
    Admin(&'a str),
    None,
}

/// Sends `body` to a control-plane endpoint with `auth`'s header (the one
/// the API defines for it); answers status, Retry-After and the raw body.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: impl Into<Bytes>,
) -> (StatusCode, Option<String>, String) {
    let bearer;
    let mut headers = vec![("content-type", "application/json")];
    match auth {
        Auth::Key(k) => headers.push(("x-collector-key", k)),
        Auth::Admin(t) => {
            bearer = format!("Bearer {t}");
            headers.push(("authorization", bearer.as_str()));
        }
        Auth::None => {}
    }
    let (status, h, text) = request(addr, method, path, &headers, body).await.unwrap();
    let retry = h
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, text)
}

/// A new admin token in the server's database.
pub async fn admin_token(server: &TestServer) -> String {
    adit_control::keys::create_key(&server.db, None, Some("admin"))
        .await
        .unwrap()
        .1
}

/// Uploads `rows` in uploads of `chunk` rows, each answered 200.
pub async fn upload_rows(addr: SocketAddr, key: &str, rows: &[String], chunk: usize) {
    for part in rows.chunks(chunk) {
        let (status, _, body) = upload(addr, key, &array(part), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Waits (up to 60 s) until nothing is left to archive: no batch queued,
/// no file still being written.
pub async fn archive_drained(db: &tokio_postgres::Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let queued: i64 = db
            .query_one("SELECT count(*) FROM archive_queue", &[])
            .await
            .unwrap()
            .get(0);
        let writing: i64 = db
            .query_one(
                "SELECT count(*) FROM archive_files WHERE state = 'writing'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if queued == 0 && writing == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "archive did not drain: {queued} batches queued, {writing} files being written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `send` with a JSON body (`Value::Null` sends none), the answer parsed as
/// JSON (a body that is not JSON fails the test).
pub async fn call_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (status, _, text) = send(addr, method, path, auth, body).await;
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
    (status, v)
}

/// Retries `check` until it returns Some (up to 15 s), failing the test
/// with `what` after that.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
