//! Limits a hostile client cannot step around, over a real listener: the
//! in-flight byte budget counts chunked bodies as they are read (issue 17
//! item 5), and a key lookup that cannot get a database connection
//! answers 503 `database_busy` instead of queueing without limit (item 13).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use adit_server::auth::{KeyCache, KeyCacheConfig};
use common::*;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a chunked POST: its head and `body` as one chunk, then the last
/// chunk only when `finish`. Returns the open connection.
async fn chunked(addr: SocketAddr, path: &str, key: &str, body: &[u8], finish: bool) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\nx-collector-key: {key}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    );
    // The server may answer (and close) before it read everything.
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body).await;
    let _ = s.write_all(b"\r\n").await;
    if finish {
        let _ = s.write_all(b"0\r\n\r\n").await;
    }
    s
}

/// The status line and body of the answer on `s` (up to 10 s).
async fn answer(mut s: TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if len.is_some_and(|n| body.len() >= n) {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Waits (up to 10 s) until `adit_inflight_bytes` satisfies `ok`.
async fn wait_inflight(addr: SocketAddr, ok: impl Fn(u64) -> bool) {
    let mut last = None;
    for _ in 0..100 {
        let (_, _, text) = get(addr, "/metrics").await.unwrap();
        last = text
            .lines()
            .find_map(|l| l.strip_prefix("adit_inflight_bytes "))
            .map(|v| v.trim().parse::<u64>().unwrap());
        if last.is_some_and(&ok) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("adit_inflight_bytes stayed at {last:?}");
}

/// A chunked upload that stalls holding 100 KiB of a 128 KiB budget: the
/// next chunked upload and a chunked heartbeat get 503 `overloaded`; once
/// the first goes away, uploads fit again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_count_against_the_in_flight_budget() {
    let srv = TestServer::start_with("budget_chunked", |c| {
        c.limits.inflight_budget_bytes = 128 << 10;
    })
    .await;
    let key = srv.key(6).await;
    let mut stalled = b"[".to_vec();
    stalled.resize(100 << 10, b' ');
    let holder = chunked(srv.addr, "/api/collector/upload", &key, &stalled, false).await;
    wait_inflight(srv.addr, |b| b >= 100 << 10).await;

    let rows = array(&rows("c", 400)); // about 40 KiB: fits alone, not beside 100 KiB
    assert!(
        rows.len() > 30 << 10 && rows.len() < 60 << 10,
        "{}",
        rows.len()
    );
    let s = chunked(
        srv.addr,
        "/api/collector/upload",
        &key,
        rows.as_bytes(),
        true,
    )
    .await;
    let (status, body) = answer(s).await;
    assert_eq!(
        status, 503,
        "a chunked upload beside a stalled 100 KiB one: {body}"
    );
    assert_eq!(json(&body)["code"], "overloaded", "{body}");
    let heartbeat = format!(
        r#"{{"status":"online","extra_data":{{"pad":"{}"}}}}"#,
        "x".repeat(40 << 10)
    );
    let s = chunked(
        srv.addr,
        "/api/collector/heartbeat",
        &key,
        heartbeat.as_bytes(),
        true,
    )
    .await;
    let (status, body) = answer(s).await;
    assert_eq!(status, 503, "control-plane bodies count too: {body}");
    assert_eq!(json(&body)["code"], "overloaded", "{body}");

    drop(holder);
    let mut status = 0;
    for _ in 0..50 {
        let s = chunked(
            srv.addr,
            "/api/collector/upload",
            &key,
            rows.as_bytes(),
            true,
        )
        .await;
        status = answer(s).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "the budget is given back when the stalled upload goes"
    );
    srv.stop().await;
}

/// With `collector_keys` locked, lookups of unknown keys hang in the
/// database: at most half the pool's connections go to them, and the
/// uploads beyond get 503 `database_busy` with Retry-After instead of
/// waiting for the lock. Once it is released, the waiting ones are
/// answered 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_lookups_that_cannot_get_a_connection_answer_503() {
    let srv = TestServer::start("budget_pool").await;
    let locker = connect(&srv.db_url).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE collector_keys IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let key = format!("hsc_{:0>40}", i);
            let call = upload(addr, &key, "[]", &[]);
            tokio::time::timeout(Duration::from_secs(8), call).await
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    locker.batch_execute("COMMIT").await.unwrap();
    let (mut busy, mut unauthorized) = (0, 0);
    for t in tasks {
        let (status, headers, body) = t
            .await
            .unwrap()
            .expect("every upload is answered, none queues until the lock goes");
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(json(&body)["code"], "database_busy", "{body}");
                assert_eq!(headers["retry-after"], "1");
                busy += 1;
            }
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            other => panic!("{other}: {body}"),
        }
    }
    assert!(busy >= 4, "12 lookups, 8 connections for them: {busy} busy");
    assert!(
        unauthorized >= 1,
        "the ones that waited on the lock: {unauthorized}"
    );
    srv.stop().await;
}

/// A flood of unknown keys leaves a real key in the cache: it is answered
/// with no query even while the table is locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_keys_never_evicts_a_real_one() {
    let db_url = fresh_database("keycache_flood").await;
    let mut db = connect(&db_url).await;
    adit::migrate::migrate(&mut db).await.unwrap();
    let (_, real) = adit_control::keys::create_key(&db, Some(1), None)
        .await
        .unwrap();
    let pool = adit::db::pool(&db_url, 4).unwrap();
    let cache = KeyCache::with_config(
        pool,
        KeyCacheConfig {
            max_unknown: 50,
            ..KeyCacheConfig::new(Duration::from_secs(60))
        },
    );
    assert!(cache.lookup(&real).await.unwrap().is_some());
    for i in 0..300 {
        let key = format!("hsc_{:0>40}", i);
        assert_eq!(cache.lookup(&key).await.unwrap(), None);
    }
    let queries = cache.queries();
    assert_eq!(queries, 301);
    db.batch_execute("BEGIN; LOCK TABLE collector_keys IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let info = tokio::time::timeout(Duration::from_secs(2), cache.lookup(&real))
        .await
        .expect("answered from the cache")
        .unwrap();
    assert!(info.is_some());
    assert_eq!(cache.queries(), queries);
    db.batch_execute("COMMIT").await.unwrap();
}
