//! The front door's credentials and first-hour answers, over a real
//! server: each endpoint reads only the header the API defines for it
//! (issue 17 item 15), an admin token where a collector key belongs is a
//! 403 of its own, a missing key and a wrong one are told apart, new
//! admin tokens look different (issue 18), heartbeats and command polls
//! are rate limited per key (issue 17 item 14), curl's default
//! Content-Type is taken and a compressed body without its header is named.

mod common;

use common::*;
use hyper::StatusCode;
use serde_json::Value;

const LIVE: &str = "/api/collector/live/1";
const HEARTBEAT: &str = "/api/collector/heartbeat";
const UPLOAD: &str = "/api/collector/upload";
const PENDING: &str = "/api/collector/commands/pending";

async fn call(
    srv: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value, hyper::HeaderMap) {
    let (status, h, text) = request(srv.addr, method, path, headers, body.to_string())
        .await
        .unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
    (status, v, h)
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_reads_only_the_credential_the_api_defines() {
    let srv = TestServer::start("cred_headers").await;
    let key = srv.key(1).await;
    let (_, admin) = adit_control::keys::create_key(&srv.db, None, Some("admin"))
        .await
        .unwrap();
    assert!(admin.starts_with("hsa_"), "new admin tokens: {admin}");
    let bearer_admin = format!("Bearer {admin}");
    let bearer_key = format!("Bearer {key}");
    let heartbeat = r#"{"status":"online"}"#;
    let row = r#"[{"miner_id":"m1","online":true}]"#;

    // The admin token is read from Authorization only.
    let (s, v, _) = call(&srv, "GET", LIVE, &[("authorization", &bearer_admin)], "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = call(&srv, "GET", LIVE, &[("x-collector-key", &admin)], "").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_key"),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{v}"
    );
    // A collector key, in either header: the control plane's 403.
    for h in [
        ("authorization", bearer_key.as_str()),
        ("x-collector-key", &key),
    ] {
        let (s, v, _) = call(&srv, "GET", LIVE, &[h], "").await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    }

    // The collector key is read from X-Collector-Key only.
    let (s, v, _) = call(
        &srv,
        "POST",
        HEARTBEAT,
        &[("x-collector-key", &key)],
        heartbeat,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = call(
        &srv,
        "POST",
        HEARTBEAT,
        &[("authorization", &bearer_key)],
        heartbeat,
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_key"),
        "{v}"
    );
    assert!(
        v["error"].as_str().unwrap().contains("X-Collector-Key"),
        "{v}"
    );

    // An admin token where a collector key belongs: 403 of its own, on
    // every collector endpoint, in either header.
    for (method, path, body) in [
        ("POST", UPLOAD, row),
        ("POST", HEARTBEAT, heartbeat),
        ("GET", PENDING, ""),
        (
            "POST",
            "/api/collector/commands/1/result",
            r#"{"status":"completed"}"#,
        ),
    ] {
        for headers in [
            [("x-collector-key", admin.as_str())],
            [("authorization", bearer_admin.as_str())],
        ] {
            let (s, v, _) = call(&srv, method, path, &headers, body).await;
            assert_eq!(
                (s, code(&v)),
                (StatusCode::FORBIDDEN, "admin_token_not_collector_key"),
                "{path} {:?}: {v}",
                headers[0].0
            );
            assert!(v["error"].as_str().unwrap().contains("admin token"), "{v}");
        }
    }
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 0);
    srv.stop().await;
}

/// An admin token made before `hsa_` existed (`hsc_`) keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_hsc_admin_token_keeps_working() {
    let srv = TestServer::start("cred_old_admin").await;
    let old = format!("hsc_{}", "O".repeat(40));
    srv.db
        .execute(
            "INSERT INTO collector_keys (key_hash, site_id, is_admin) VALUES ($1, NULL, true)",
            &[&&adit_control::keys::hash_key(&old)[..]],
        )
        .await
        .unwrap();
    let bearer = format!("Bearer {old}");
    let (s, v, _) = call(&srv, "GET", LIVE, &[("authorization", &bearer)], "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = call(&srv, "POST", UPLOAD, &[("x-collector-key", &old)], "[]").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "admin_token_not_collector_key"),
        "{v}"
    );
    srv.stop().await;
}

/// Missing, empty, malformed and unknown keys: the same code, messages
/// that say which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_and_a_wrong_one_are_told_apart() {
    let srv = TestServer::start("cred_messages").await;
    let unknown = format!("hsc_{}", "A".repeat(40));
    let mut messages = Vec::new();
    for headers in [
        vec![],
        vec![("x-collector-key", "")],
        vec![("x-collector-key", "hsc_short")],
        vec![("x-collector-key", unknown.as_str())],
    ] {
        let (s, v, _) = call(&srv, "POST", UPLOAD, &headers, "[]").await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNAUTHORIZED, "invalid_key"),
            "{v}"
        );
        messages.push(v["error"].as_str().unwrap().to_string());
    }
    assert!(
        messages[0].contains("missing X-Collector-Key"),
        "{messages:?}"
    );
    assert!(messages[3].contains("no active key"), "{messages:?}");
    let distinct: std::collections::BTreeSet<_> = messages.iter().collect();
    assert_eq!(distinct.len(), 4, "{messages:?}");
    srv.stop().await;
}

/// Heartbeats and command polls are rate limited per key, in a bucket of
/// their own: over it they get 429 with Retry-After, and the key's uploads
/// still go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_polls_are_rate_limited_per_key() {
    let srv = TestServer::start("cred_rate").await;
    let key = srv.key(2).await;
    let other = srv.key(3).await;
    let oh = [("x-collector-key", other.as_str())];
    srv.db
        .execute(
            "UPDATE collector_keys SET uploads_per_s = 1 WHERE key_hash = $1",
            &[&&adit_control::keys::hash_key(&key)[..]],
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // key cache TTL
    let h = [("x-collector-key", key.as_str())];
    let mut statuses = Vec::new();
    for i in 0..3 {
        // Polls, then a heartbeat over the limit (refused before the
        // control plane sees it).
        let (s, v, headers) = if i == 2 {
            call(&srv, "POST", HEARTBEAT, &h, r#"{"status":"online"}"#).await
        } else {
            call(&srv, "GET", PENDING, &h, "").await
        };
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(code(&v), "rate_limited");
            assert_eq!(headers["retry-after"], "1", "just under 1 s, rounded up");
        }
        statuses.push(s);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "burst of 2 at 1/s"
    );
    let (s, _, body) = upload(srv.addr, &key, r#"[{"miner_id":"m"}]"#, &[]).await;
    assert_eq!(s, StatusCode::OK, "uploads have their own bucket: {body}");
    let (s, v, _) = call(&srv, "GET", PENDING, &oh, "").await;
    assert_eq!(s, StatusCode::OK, "another key has its own bucket: {v}");
    srv.stop().await;
}

/// `curl -d`/`--data-binary` without `-H Content-Type` sends
/// application/x-www-form-urlencoded: a JSON body is taken. A compressed
/// body without Content-Encoding is refused naming the header to add.
/// Every answer of the upload path opens with `{"success":`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curls_default_is_taken_and_a_compressed_body_names_its_missing_header() {
    let srv = TestServer::start("cred_curl").await;
    let key = srv.key(4).await;
    let json = r#"[{"miner_id":"curl-1","online":true}]"#;
    let form = [
        ("x-collector-key", key.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let (s, _, body) = request(srv.addr, "POST", UPLOAD, &form, json)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.starts_with(r#"{"success":true,"data":"#), "{body}");

    let plain = [("x-collector-key", key.as_str())];
    let zstd = zstd::encode_all(json.as_bytes(), 3).unwrap();
    for (bytes, name) in [(gzip(json.as_bytes()), "gzip"), (zstd, "zstd")] {
        let (s, _, body) = request(srv.addr, "POST", UPLOAD, &plain, bytes)
            .await
            .unwrap();
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
        assert!(body.starts_with(r#"{"success":false,"error":"#), "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(code(&v), "missing_content_encoding");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains(&format!("Content-Encoding: {name}")),
            "{v}"
        );
    }
    for path in ["/health", "/ready"] {
        let (_, _, body) = get(srv.addr, path).await.unwrap();
        assert!(body.starts_with(r#"{"success":true,"data":"#), "{body}");
    }
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 1);
    srv.stop().await;
}
