//! The upload path end to end: gzip JSON over a real socket into a real
//! PostgreSQL, read back with SELECT.

mod common;

use common::*;
use hyper::StatusCode;

const SEED_SAMPLE: &str = r#"[{
    "miner_id": "SN123456789", "ip_address": "192.168.1.100", "online": true,
    "hashrate_ghs": 110000, "hashrate_5s_ghs": 108500, "hashrate_expected_ghs": 110000,
    "temperature_avg": 65.5, "temperature_min": 62.0, "temperature_max": 72.0,
    "temperature_chips": [62, 65, 68, 70, 72], "fan_speeds": [5200, 5300, 5100, 5250],
    "frequency_avg": 580, "accepted_shares": 12500, "rejected_shares": 12,
    "hardware_errors": 0, "uptime_seconds": 864000, "power_consumption": 3250,
    "efficiency": 29.5, "pool_url": "stratum+tcp://pool.example.com:3333",
    "worker_name": "farm1.worker001", "pool_latency_ms": 45,
    "boards": [
      {"id": 0, "hashrate": 36700, "temp": 65, "chips_ok": 76, "chips_total": 76},
      {"id": 1, "hashrate": 36800, "temp": 67, "chips_ok": 76, "chips_total": 76},
      {"id": 2, "hashrate": 36500, "temp": 68, "chips_ok": 75, "chips_total": 76}
    ],
    "boards_total": 3, "boards_healthy": 3, "overall_health": "healthy",
    "model": "Antminer S19 Pro", "firmware_version": "Vnish 1.2.3",
    "error_message": "", "latency_ms": 45, "psu_serial": "PSU-77"
}]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_sample_lands_with_every_field_equal() {
    let srv = TestServer::start("seed").await;
    let key = srv.key(7).await;
    let before = chrono::Utc::now();
    let (status, _, body) = upload(srv.addr, &key, SEED_SAMPLE, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json(&body);
    assert_eq!(v["success"], true);
    assert_eq!(v["data"]["processed"], 1);
    assert_eq!(v["data"]["online"], 1);
    assert_eq!(v["data"]["offline"], 0);
    assert_eq!(v["data"]["rejected"], 0);
    assert!(v["data"]["processing_time_ms"].is_u64());
    assert_eq!(v["data"]["errors"], serde_json::json!([]));

    let r = srv
        .db
        .query_one(
            "SELECT ts, site_id, miner_id, ip_address, online, hashrate_ghs, hashrate_5s_ghs,
                    hashrate_expected_ghs, temperature_avg, temperature_min, temperature_max,
                    temperature_chips, fan_speeds, frequency_avg, accepted_shares, rejected_shares,
                    hardware_errors, uptime_seconds, power_consumption, efficiency, pool_url,
                    worker_name, pool_latency_ms, board_ids, board_hashrate, board_temp,
                    board_chips_ok, board_chips_total, boards_total, boards_healthy,
                    overall_health, model, firmware_version, error_message, latency_ms,
                    extra::text
             FROM miner_telemetry",
            &[],
        )
        .await
        .unwrap();
    let ts: chrono::DateTime<chrono::Utc> = r.get(0);
    assert!(
        ts >= before - chrono::Duration::seconds(1) && ts <= chrono::Utc::now(),
        "receive time"
    );
    assert_eq!(r.get::<_, i32>(1), 7, "site from the key");
    assert_eq!(r.get::<_, &str>(2), "SN123456789");
    assert_eq!(r.get::<_, &str>(3), "192.168.1.100");
    assert!(r.get::<_, bool>(4));
    assert_eq!(r.get::<_, f64>(5), 110000.0);
    assert_eq!(r.get::<_, f64>(6), 108500.0);
    assert_eq!(r.get::<_, f64>(7), 110000.0);
    assert_eq!(r.get::<_, f32>(8), 65.5);
    assert_eq!(r.get::<_, f32>(9), 62.0);
    assert_eq!(r.get::<_, f32>(10), 72.0);
    assert_eq!(r.get::<_, Vec<f32>>(11), vec![62.0, 65.0, 68.0, 70.0, 72.0]);
    assert_eq!(r.get::<_, Vec<i32>>(12), vec![5200, 5300, 5100, 5250]);
    assert_eq!(r.get::<_, f32>(13), 580.0);
    assert_eq!(r.get::<_, i64>(14), 12500);
    assert_eq!(r.get::<_, i64>(15), 12);
    assert_eq!(r.get::<_, i64>(16), 0);
    assert_eq!(r.get::<_, i64>(17), 864000);
    assert_eq!(r.get::<_, f32>(18), 3250.0);
    assert_eq!(r.get::<_, f32>(19), 29.5);
    assert_eq!(r.get::<_, &str>(20), "stratum+tcp://pool.example.com:3333");
    assert_eq!(r.get::<_, &str>(21), "farm1.worker001");
    assert_eq!(r.get::<_, f32>(22), 45.0);
    assert_eq!(
        r.get::<_, Option<Vec<i16>>>(23),
        None,
        "ids 0,1,2 are implicit"
    );
    assert_eq!(r.get::<_, Vec<f32>>(24), vec![36700.0, 36800.0, 36500.0]);
    assert_eq!(r.get::<_, Vec<f32>>(25), vec![65.0, 67.0, 68.0]);
    assert_eq!(r.get::<_, Vec<i16>>(26), vec![76, 76, 75]);
    assert_eq!(r.get::<_, Vec<i16>>(27), vec![76, 76, 76]);
    assert_eq!(r.get::<_, i16>(28), 3);
    assert_eq!(r.get::<_, i16>(29), 3);
    assert_eq!(r.get::<_, &str>(30), "healthy");
    assert_eq!(r.get::<_, &str>(31), "Antminer S19 Pro");
    assert_eq!(r.get::<_, &str>(32), "Vnish 1.2.3");
    assert_eq!(r.get::<_, &str>(33), "");
    assert_eq!(r.get::<_, f32>(34), 45.0);
    assert_eq!(
        r.get::<_, &str>(35),
        r#"{"psu_serial": "PSU-77"}"#,
        "unknown fields kept"
    );

    assert_eq!(
        srv.count("SELECT count(*) FROM upload_log WHERE processed = 1 AND site_id = 7")
            .await,
        1
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_across_midnight_lands_in_two_daily_partitions() {
    let srv = TestServer::start("midnight").await;
    let key = srv.key(1).await;
    // Midnight of yesterday (UTC): inside the lateness window, never future.
    let midnight = (chrono::Utc::now().timestamp() / 86_400 - 1) * 86_400;
    let rows: Vec<String> = (0..10_000)
        .map(|i| {
            let ts = midnight - 5_000 + i;
            format!(
                r#"{{"miner_id":"m{}","timestamp":{ts},"hashrate_ghs":1000,"online":true}}"#,
                i % 100
            )
        })
        .collect();
    let (status, _, body) = upload(srv.addr, &key, &array(&rows), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["data"]["processed"], 10_000);
    let per_partition = srv
        .db
        .query(
            "SELECT tableoid::regclass::text, count(*) FROM miner_telemetry GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let day = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .format("%Y%m%d")
            .to_string()
    };
    let got: Vec<(String, i64)> = per_partition.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            (format!("miner_telemetry_p{}", day(midnight - 1)), 5_000),
            (format!("miner_telemetry_p{}", day(midnight)), 5_000),
        ]
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_batch_errors_write_nothing() {
    let srv = TestServer::start("refusals").await;
    let key = srv.key(1).await;
    let revoked = srv.key(1).await;
    let body = array(&rows("x", 3));
    // Revocation is honoured once the key cache entry expires (200 ms in tests).
    let (status, _, _) = upload(srv.addr, &revoked, &body, &[]).await;
    assert_eq!(status, StatusCode::OK, "the key works before revocation");
    let id: i32 = srv
        .db
        .query_one("SELECT max(id) FROM collector_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert!(adit_control::keys::revoke_key(&srv.db, id).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before_rows = srv.count("SELECT count(*) FROM miner_telemetry").await;
    let before_logs = srv.count("SELECT count(*) FROM upload_log").await;

    let bad_key = format!("hsc_{}", "A".repeat(40));
    for (k, what) in [
        (bad_key.as_str(), "wrong"),
        (revoked.as_str(), "revoked"),
        ("", "empty"),
    ] {
        let (status, _, body) = upload(srv.addr, k, &body, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} key: {body}");
        assert_eq!(json(&body)["code"], "invalid_key");
        assert_eq!(json(&body)["success"], false);
    }
    let (status, _, body) = request(srv.addr, "POST", "/api/collector/upload", &[], body.clone())
        .await
        .unwrap();
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_key")),
        "missing key"
    );

    for (payload, what) in [
        (r#"{"miner_id":"a"}"#, "object"),
        ("[{", "truncated"),
        ("[NaN]", "NaN"),
        ("nope", "text"),
    ] {
        let (status, _, resp) = upload(srv.addr, &key, payload, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {resp}");
        assert_eq!(json(&resp)["code"], "malformed_json", "{what}");
    }

    let (status, _, resp) = request(
        srv.addr,
        "POST",
        "/api/collector/upload",
        &[("x-collector-key", &key), ("content-encoding", "br")],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(json(&resp)["code"], "unsupported_encoding");

    assert_eq!(
        srv.count("SELECT count(*) FROM miner_telemetry").await,
        before_rows
    );
    assert_eq!(
        srv.count("SELECT count(*) FROM upload_log").await,
        before_logs
    );
    assert_eq!(srv.count("SELECT count(*) FROM ingest_rejects").await, 0);
    srv.stop().await;
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_at_the_decompressed_limit() {
    let srv = TestServer::start("bomb").await;
    let key = srv.key(1).await;
    // 1 GiB of "[0,0,0,…" as 64 identical 16 MiB gzip members (~1 MiB total).
    let member = gzip_best(&b"0,".repeat(8 << 20));
    let mut bomb = gzip(b"[");
    for _ in 0..64 {
        bomb.extend_from_slice(&member);
    }
    assert!(
        bomb.len() < 2 << 20,
        "bomb is small on the wire: {}",
        bomb.len()
    );
    let rss_before = rss_mib();
    let (status, _, resp) = request(
        srv.addr,
        "POST",
        "/api/collector/upload",
        &[("x-collector-key", &key), ("content-encoding", "gzip")],
        bomb,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{resp}");
    assert_eq!(json(&resp)["code"], "payload_too_large");
    let grown = rss_mib() - rss_before;
    // The default decompressed limit is 32 MiB; inflating the bomb would take 1 GiB.
    assert!(grown < 128.0, "memory grew by {grown:.0} MiB");
    assert_eq!(srv.count("SELECT count(*) FROM upload_log").await, 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rows_are_rejected_alone_and_stored_raw() {
    let srv = TestServer::start("rejects").await;
    let key = srv.key(3).await;
    let mut batch = rows("r", 100);
    batch[5] = r#"{"miner_id":"hot","temperature_max":900}"#.into();
    batch[50] = r#"{"online":true}"#.into();
    batch[99] = r#"{"miner_id":"typed","hashrate_ghs":"fast"}"#.into();
    let (status, _, body) = upload(srv.addr, &key, &array(&batch), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json(&body);
    assert_eq!(v["data"]["processed"], 97);
    assert_eq!(v["data"]["rejected"], 3);
    let errors = v["data"]["errors"].as_array().unwrap();
    let fields: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (5, "temperature_max"),
            (50, "miner_id"),
            (99, "hashrate_ghs")
        ]
    );
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 97);
    let rejects = srv
        .db
        .query(
            "SELECT row_index, field, reason, raw, site_id FROM ingest_rejects ORDER BY row_index",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rejects.len(), 3);
    assert_eq!(rejects[0].get::<_, &str>(3), batch[5]);
    assert_eq!(rejects[1].get::<_, &str>(3), batch[50]);
    assert_eq!(rejects[2].get::<_, &str>(3), batch[99]);
    assert_eq!(rejects[1].get::<_, &str>(2), "required");
    assert!(rejects
        .iter()
        .all(|r| r.get::<_, i32>(4) == 3 && !r.get::<_, &str>(2).is_empty()));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_array_is_acknowledged_with_nothing_processed() {
    let srv = TestServer::start("empty").await;
    let key = srv.key(1).await;
    let (status, _, body) = upload(srv.addr, &key, "[]", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["data"]["processed"], 0);
    let (status, _, body) = get(srv.addr, "/ready").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = get(srv.addr, "/nope").await.unwrap();
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_encoding_is_accepted() {
    let srv = TestServer::start("encodings").await;
    let key = srv.key(1).await;
    let body = array(&rows("e", 10));
    let mut deflate = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut deflate, body.as_bytes()).unwrap();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("identity", body.clone().into_bytes()),
        ("gzip", gzip(body.as_bytes())),
        ("deflate", deflate.finish().unwrap()),
        ("zstd", zstd::encode_all(body.as_bytes(), 3).unwrap()),
    ];
    for (encoding, payload) in bodies {
        let (status, _, resp) = request(
            srv.addr,
            "POST",
            "/api/collector/upload",
            &[("x-collector-key", &key), ("content-encoding", encoding)],
            payload,
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::OK, "{encoding}: {resp}");
    }
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 40);
    srv.stop().await;
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_uploads_rows_and_refusals() {
    let srv = TestServer::start("metrics").await;
    let key = srv.key(1).await;
    let mut batch = rows("mt", 5);
    batch.push(r#"{"miner_id":""}"#.into());
    assert_eq!(
        upload(srv.addr, &key, &array(&batch), &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        upload(srv.addr, "nope", "[]", &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, headers, text) = get(srv.addr, "/metrics").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(metric(&text, r#"adit_uploads_total{status="200"}"#), 1.0);
    assert_eq!(metric(&text, r#"adit_uploads_total{status="401"}"#), 1.0);
    assert_eq!(metric(&text, "adit_rows_accepted_total"), 5.0);
    assert_eq!(metric(&text, "adit_rows_rejected_total"), 1.0);
    assert_eq!(metric(&text, "adit_writer_rows_written_total"), 5.0);
    assert_eq!(
        metric(&text, r#"adit_upload_duration_seconds_bucket{le="+Inf"}"#),
        2.0
    );
    assert_eq!(metric(&text, "adit_rollup_lag_seconds"), 0.0);
    assert_eq!(metric(&text, "adit_database_up"), 1.0);
    srv.stop().await;
}
