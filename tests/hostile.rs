//! Hostile input and abuse: each gets its status, none crashes or stalls
//! the server, none of the invalid ones writes a telemetry row; per-key
//! rate limits answer 429 with Retry-After; the in-flight byte budget
//! answers 503 instead of growing.

mod common;

use std::time::Duration;

use adit_server::limits::Rate;
use common::*;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_get_clear_answers_and_write_nothing() {
    let srv = TestServer::start_with("hostile", |c| {
        c.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let key = srv.key(5).await;
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let key = key.clone();
        async move {
            let mut h: Vec<(&str, &str)> = vec![("x-collector-key", key.as_str())];
            h.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
            request(srv.addr, "POST", "/api/collector/upload", &h, body).await
        }
    };
    let gz = |b: &[u8]| (vec![("content-encoding", "gzip".to_string())], gzip(b));
    let truncated = {
        let full = gzip(array(&rows("t", 500)).as_bytes());
        full[..full.len() / 2].to_vec()
    };
    let deep = format!("[{}{}]", "[".repeat(100), "]".repeat(100));
    let long = format!(r#"[{{"miner_id":"a","model":"{}"}}]"#, "x".repeat(10 << 20));
    let many = format!("[{}]", vec![r#"{"miner_id":"a"}"#; 100_000].join(","));
    let zstd_bomb = zstd::encode_all(&vec![b' '; 256 << 20][..], 19).unwrap();

    type Case = (
        &'static str,
        Vec<(&'static str, String)>,
        Vec<u8>,
        StatusCode,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "truncated gzip",
            vec![("content-encoding", "gzip".into())],
            truncated,
            StatusCode::BAD_REQUEST,
            "bad_encoding",
        ),
        (
            "gzip bomb (1 GiB of zeros)",
            vec![("content-encoding", "gzip".into())],
            {
                let member = gzip_best(&b"0,".repeat(8 << 20));
                let mut b = gzip(b"[");
                for _ in 0..64 {
                    b.extend_from_slice(&member);
                }
                b
            },
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "zstd bomb (256 MiB of spaces)",
            vec![("content-encoding", "zstd".into())],
            zstd_bomb,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "nesting 101 deep",
            gz(deep.as_bytes()).0,
            gz(deep.as_bytes()).1,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "NaN",
            gz(br#"[{"miner_id":"a","hashrate_ghs":NaN}]"#).0,
            gz(br#"[{"miner_id":"a","hashrate_ghs":NaN}]"#).1,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "Infinity",
            vec![],
            br#"[{"miner_id":"a","hashrate_ghs":Infinity}]"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "invalid UTF-8",
            vec![],
            b"[{\"miner_id\":\"\xff\xfe\"}]".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "100,000-row batch",
            gz(many.as_bytes()).0,
            gz(many.as_bytes()).1,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "wrong content type",
            vec![("content-type", "text/csv".into())],
            b"miner_id\na".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "unknown encoding",
            vec![("content-encoding", "br".into())],
            b"[]".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
        ),
        (
            "bad Idempotency-Key",
            vec![("idempotency-key", "\t".into())],
            b"[]".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
        ),
    ];
    let mut table = Vec::new();
    for (name, headers, body, want, code) in cases {
        let (status, _, resp) = post(headers, body).await.unwrap();
        table.push(format!("{name:32} {status}"));
        assert_eq!(status, want, "{name}: {resp}");
        assert_eq!(json(&resp)["code"], code, "{name}");
    }
    // Row-level refusals: the batch is answered 200, the row is rejected.
    for (name, body) in [
        ("10 MB string", long.clone()),
        (
            "number out of range",
            r#"[{"miner_id":"a","temperature_max":1e6}]"#.to_string(),
        ),
        (
            "duplicate keys",
            r#"[{"miner_id":"a","miner_id":"b"}]"#.to_string(),
        ),
        // Found by the fuzzer: these once reached the jsonb `extra` column,
        // where PostgreSQL refuses them (and with them the whole COPY).
        (
            "unpaired surrogate, unknown field",
            r#"[{"miner_id":"a","note":"\ud83d alone"}]"#.to_string(),
        ),
        (
            "\\u0000 in an unknown field name",
            r#"[{"miner_id":"a","no\u0000te":1}]"#.to_string(),
        ),
    ] {
        let (status, _, resp) = upload(srv.addr, &key, &body, &[]).await;
        table.push(format!("{name:32} {status} (row rejected)"));
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(
            (
                json(&resp)["data"]["processed"].as_u64(),
                json(&resp)["data"]["rejected"].as_u64()
            ),
            (Some(0), Some(1)),
            "{name}"
        );
    }
    let (status, _, resp) = upload(srv.addr, &key, "[]", &[]).await;
    table.push(format!("{:32} {status} (processed 0)", "empty array"));
    assert_eq!(
        (status, json(&resp)["data"]["processed"].as_u64()),
        (StatusCode::OK, Some(0))
    );

    // Huge headers: refused by the HTTP layer.
    let big = "a".repeat(1 << 20);
    let huge = request(
        srv.addr,
        "POST",
        "/api/collector/upload",
        &[("x-collector-key", &key), ("x-filler", &big)],
        b"[]".to_vec(),
    )
    .await;
    let huge_status = huge
        .as_ref()
        .map(|r| r.0.to_string())
        .unwrap_or_else(|_| "connection closed".into());
    table.push(format!("{:32} {huge_status}", "1 MiB header"));
    assert!(huge
        .map(|r| r.0 == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        .unwrap_or(true));

    // Slowloris: headers that never finish are cut off after the timeout.
    let mut slow = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"POST /api/collector/upload HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let cut = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await;
    let answered = matches!(cut, Ok(Ok(_)));
    table.push(format!(
        "{:32} {}",
        "slowloris (headers never end)",
        if answered {
            "cut after 1 s"
        } else {
            "still open"
        }
    ));
    assert!(
        answered,
        "the server closes a connection whose headers never finish"
    );

    // Still serving, and nothing invalid was written.
    let (status, _, _) = upload(srv.addr, &key, &array(&rows("ok", 3)), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 3);
    let raw_len: i64 = srv
        .db
        .query_one("SELECT max(length(raw))::int8 FROM ingest_rejects", &[])
        .await
        .unwrap()
        .get(0);
    assert!(raw_len < 70_000, "a hostile row is kept cut: {raw_len}");
    println!(
        "hostile input                    answer\n{}",
        table.join("\n")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let srv = TestServer::start_with("ratelimit", |c| {
        c.limits.rate = Rate {
            per_s: 1.0,
            burst: 2.0,
        }
    })
    .await;
    let key = srv.key(6).await;
    let body = array(&rows("r", 2));
    assert_eq!(upload(srv.addr, &key, &body, &[]).await.0, StatusCode::OK);
    assert_eq!(upload(srv.addr, &key, &body, &[]).await.0, StatusCode::OK);
    let (status, headers, resp) = upload(srv.addr, &key, &body, &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{resp}");
    assert_eq!(json(&resp)["code"], "rate_limited");
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        srv.count("SELECT count(*) FROM miner_telemetry").await,
        4,
        "the refused upload wrote nothing"
    );
    // Another key has its own bucket; a per-key setting of 0 lifts the limit.
    let other = srv.key(7).await;
    assert_eq!(upload(srv.addr, &other, &body, &[]).await.0, StatusCode::OK);
    let id: i32 = srv
        .db
        .query_one("SELECT min(id) FROM collector_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert!(adit_control::keys::set_rate_limit(&srv.db, id, Some(0.0))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await; // key cache TTL in tests
    for _ in 0..5 {
        assert_eq!(upload(srv.addr, &key, &body, &[]).await.0, StatusCode::OK);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_byte_budget_sheds_load_with_503() {
    let srv =
        TestServer::start_with("budget", |c| c.limits.inflight_budget_bytes = 256 * 1024).await;
    let key = srv.key(8).await;
    assert_eq!(
        upload(srv.addr, &key, &array(&rows("s", 50)), &[]).await.0,
        StatusCode::OK,
        "small fits"
    );
    let big = array(&rows("b", 2_000)); // ~200 KB of JSON: twice that is over the budget
    let (status, headers, resp) = upload(srv.addr, &key, &big, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{resp}");
    assert_eq!(json(&resp)["code"], "overloaded");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 50);
    srv.stop().await;
}
