//! Test fixtures that know adit: an adit server on 127.0.0.1:0 (in
//! process or the real binary), keys, control-plane requests, the archive
//! drained. The generic ones (a fresh database per test on the Makefile's
//! private PostgreSQL cluster, HTTP, rows, gzip) live in `adit-testkit`
//! and are re-exported here.
// Each test file uses some of these; re-exports the others leave unused.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::sync::oneshot;

use adit::serve::ServeConfig;
pub use adit_testkit::{
    admin_url, array, connect, free_port, fresh_database, fresh_database_on, get, gzip, gzip_best,
    json, request, rows, upload, upload_rows, wait_healthy, Response, TestDb,
};

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

/// `call_json` with an admin token that must answer 200: the answer.
pub async fn admin_ok(
    addr: SocketAddr,
    admin: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let (status, v) = call_json(addr, method, path, Auth::Admin(admin), body).await;
    assert_eq!(status, StatusCode::OK, "{method} {path}: {v}");
    v
}

/// Creates a command for a miner (`POST /api/collector/commands`), which
/// must be answered 200: its id.
pub async fn create_command(addr: SocketAddr, admin: &str, cmd: serde_json::Value) -> i64 {
    let v = admin_ok(addr, admin, "POST", "/api/collector/commands", cmd).await;
    v["data"]["command_id"].as_i64().unwrap()
}
