//! Control-plane input against a real server and database: values
//! PostgreSQL refuses (NUL, numbers past numeric, invalid UTF-8) are
//! answered 400 before any query (never a 503 to retry for ever); paging
//! and site ids never wrap; query strings decode as forms do; the summary's
//! efficiency; every answer's envelope starts with `success`.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use hyper::StatusCode;
use serde_json::{json, Value};

/// `send`, with the body parsed.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: impl Into<Bytes>,
) -> (StatusCode, Value) {
    let (s, _, text) = send(addr, method, path, auth, body).await;
    (s, json(&text))
}

/// Asserts a 400 with `code`, no Retry-After, and returns the body.
async fn refused(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: impl Into<Bytes>,
    code: &str,
) -> Value {
    let (s, retry, text) = send(addr, method, path, auth, body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {text}");
    assert_eq!(retry, None, "{path}: a 400 is not to be retried");
    let v = json(&text);
    assert_eq!(v["code"], code, "{path}: {text}");
    assert_eq!(v["success"], false);
    v
}

/// Issue 17 items 10 and 1 (control part): NUL in text or JSON, numbers
/// past PostgreSQL's numeric, invalid UTF-8 and lone surrogates, in every
/// control-plane value that reaches the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_postgresql_refuses_are_answered_400_before_the_database() {
    let server = TestServer::start("control_unstorable").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let key = server.key(4).await;
    let hb = "/api/collector/heartbeat";

    // Heartbeats: version, extra_data strings and member names, unknown
    // fields (kept in extra_data), at any depth.
    for body in [
        json!({"status": "online", "version": "1.0\u{0}"}),
        json!({"extra_data": {"note": "a\u{0}b"}}),
        json!({"extra_data": {"k\u{0}": 1}}),
        json!({"extra_data": {"deep": [1, {"x": ["\u{0}"]}]}}),
        json!({"plugin\u{0}": true}),
        json!({"plugin": "x\u{0}"}),
    ] {
        let v = refused(
            addr,
            "POST",
            hb,
            Auth::Key(&key),
            body.to_string(),
            "unstorable_value",
        )
        .await;
        let field = v["details"][0]["field"].as_str().unwrap();
        assert!(["version", "extra_data"].contains(&field), "{v}");
    }
    // Numbers past f64 (and so past what jsonb stores), invalid UTF-8 and
    // unpaired surrogates: refused by the parser.
    for body in [
        br#"{"extra_data": {"junk": 1e200000}}"#.to_vec(),
        br#"{"junk": -1e200000}"#.to_vec(),
        br#"{"uptime": 1e200000}"#.to_vec(),
        b"{\"version\": \"1.0\xff\"}".to_vec(),
        br#"{"extra_data": {"s": "\ud800"}}"#.to_vec(),
        br#"{"extra_data": {"\udc00": 1}}"#.to_vec(),
    ] {
        refused(addr, "POST", hb, Auth::Key(&key), body, "invalid_request").await;
    }
    assert_eq!(
        server.count("SELECT count(*) FROM agent_heartbeats").await,
        0
    );
    // The largest and smallest f64 are stored as they are.
    let (s, v) = call(
        addr,
        "POST",
        hb,
        Auth::Key(&key),
        r#"{"version":"1.0","extra_data":{"big":1.7976931348623157e308,"tiny":5e-324,"n":-1e308}}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let stored = server
        .db
        .query_one(
            "SELECT (extra_data->>'big')::float8, (extra_data->>'tiny')::float8, \
                    (extra_data->>'n')::float8 FROM agent_heartbeats",
            &[],
        )
        .await
        .unwrap();
    let got: (f64, f64, f64) = (stored.get(0), stored.get(1), stored.get(2));
    assert_eq!(got, (f64::MAX, 5e-324, -1e308));

    // Commands: NUL in the miner id, a parameter's value or name, a
    // number past f64.
    let cmds = "/api/collector/commands";
    for body in [
        json!({"miner_id": "m\u{0}", "site_id": 4, "command": "restart"}).to_string(),
        json!({"miner_id": "m1", "site_id": 4, "command": "set_pool",
               "params": {"pool_url": "stratum+tcp://p:1\u{0}", "worker": "w"}})
        .to_string(),
        json!({"miner_id": "m1", "site_id": 4, "command": "set_pool",
               "params": {"pool_url": "stratum+tcp://p:1", "worker": "w", "x\u{0}": "y"}})
        .to_string(),
        r#"{"miner_id":"m1","site_id":4,"command":"set_fan","params":{"speed":1e200000}}"#
            .to_string(),
        r#"{"miner_id":"m1","site_id":4294967297,"command":"restart"}"#.to_string(),
    ] {
        refused(
            addr,
            "POST",
            cmds,
            Auth::Admin(&admin),
            body,
            "invalid_request",
        )
        .await;
    }
    let batch = json!({"commands": [
        {"miner_id": "m1", "site_id": 4, "command": "restart"},
        {"miner_id": "m2", "site_id": 4, "command": "set_pool",
         "params": {"pool_url": "stratum+tcp://p:1", "worker": "w\u{0}"}},
    ]});
    refused(
        addr,
        "POST",
        "/api/collector/commands/batch",
        Auth::Admin(&admin),
        batch.to_string(),
        "invalid_request",
    )
    .await;
    assert_eq!(server.count("SELECT count(*) FROM agent_commands").await, 0);

    // A result whose message holds a NUL: 400, the command still takes a
    // proper result afterwards (it was a 503, so the collector retried
    // the same body for ever and the command was sent again).
    let (s, v) = call(
        addr,
        "POST",
        cmds,
        Auth::Admin(&admin),
        json!({"miner_id": "m1", "site_id": 4, "command": "restart"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["data"]["command_id"].as_i64().unwrap();
    let (s, _) = call(
        addr,
        "GET",
        "/api/collector/commands/pending",
        Auth::Key(&key),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let result = format!("/api/collector/commands/{id}/result");
    let v = refused(
        addr,
        "POST",
        &result,
        Auth::Key(&key),
        json!({"status": "failed", "result_message": "bad\u{0}"}).to_string(),
        "unstorable_value",
    )
    .await;
    assert_eq!(v["details"][0]["field"], "result_message");
    refused(
        addr,
        "POST",
        &result,
        Auth::Key(&key),
        br#"{"status":"failed","result_code":1e200000}"#.to_vec(),
        "invalid_request",
    )
    .await;
    let (s, v) = call(
        addr,
        "POST",
        &result,
        Auth::Key(&key),
        json!({"status": "failed", "result_code": 2, "result_message": "no route"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A NUL in a query value would reach a text filter.
    for path in [
        "/api/collector/commands/history?miner_id=m%00",
        "/api/collector/live/4?model=S19%00",
        "/api/collector/alerts?x%00=1",
    ] {
        refused(
            addr,
            "GET",
            path,
            Auth::Admin(&admin),
            "",
            "unstorable_value",
        )
        .await;
    }
    server.stop().await;
}

/// Issue 17 item 14 (control parts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_site_ids_and_query_strings_never_wrap_or_misdecode() {
    let server = TestServer::start("control_query").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let a = Auth::Admin(&admin);

    // Something of site 1 that a wrapped site id would find.
    let (s, v) = call(
        addr,
        "POST",
        "/api/collector/commands",
        a,
        json!({"miner_id": "% f", "site_id": 1, "command": "restart"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    for path in [
        "/api/collector/commands/history?page=9223372036854775807&per_page=500",
        "/api/collector/alerts?page=4611686018427387905&per_page=2",
        "/api/collector/live/1?page=9223372036854775807",
        "/api/collector/commands/history?page=99999999999999999999",
        "/api/collector/commands/history?site_id=4294967297",
        "/api/collector/alerts?site_id=4294967297",
        "/api/collector/stats?site_id=4294967297",
        "/api/collector/stats?site_id=-2147483649",
    ] {
        let v = refused(addr, "GET", path, a, "", "invalid_request").await;
        let field = v["details"][0]["field"].as_str().unwrap();
        assert!(["page", "site_id"].contains(&field), "{path}: {v}");
    }
    // A path site id out of range is no site.
    let (s, _) = call(addr, "GET", "/api/collector/summary/4294967297", a, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The last page that fits still answers (empty).
    let (s, v) = call(
        addr,
        "GET",
        "/api/collector/commands/history?page=18446744073709552&per_page=500",
        a,
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["items"], json!([]));
    assert_eq!(v["data"]["total"], 1);

    // `%+f` is not an escape (the old decoder read byte 0x0f): `+` is a
    // space, the `%` stays.
    let (s, v) = call(
        addr,
        "GET",
        "/api/collector/commands/history?miner_id=%+f",
        a,
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["total"], 1, "{v}");
    assert_eq!(v["data"]["items"][0]["miner_id"], "% f");
    let (_, v) = call(
        addr,
        "GET",
        "/api/collector/commands/history?miner_id=%25%20f&site_id=1",
        a,
        "",
    )
    .await;
    assert_eq!(v["data"]["total"], 1, "{v}");
    server.stop().await;
}

/// Issue 18: J/TH over the miners that report both power and hashrate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_efficiency_counts_only_miners_reporting_power_and_hashrate() {
    let server = TestServer::start("control_efficiency").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let key = server.key(6).await;
    let body = json!([
        {"miner_id": "both", "online": true, "hashrate_ghs": 100000, "power_consumption": 2950},
        {"miner_id": "no-power", "online": true, "hashrate_ghs": 100000},
        {"miner_id": "no-hash", "online": true, "power_consumption": 500},
    ]);
    let (s, _, text) = upload(addr, &key, &body.to_string(), &[]).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let mut d = Value::Null;
    for _ in 0..150 {
        let (_, v) = call(
            addr,
            "GET",
            "/api/collector/summary/6",
            Auth::Admin(&admin),
            "",
        )
        .await;
        d = v["data"].clone();
        if d["miners_total"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(d["miners_total"], 3, "{d}");
    assert_eq!(d["total_hashrate_ghs"], 200000.0);
    assert_eq!(d["total_power_w"], 3450.0);
    // 2950 W over 100 TH/s; not 3450 W over 200 TH/s (17.25), nor
    // 2950 over 200 (14.75).
    assert_eq!(d["efficiency_j_per_th"], 29.5);
    server.stop().await;
}

/// Issue 18: every control-plane answer, success or error, starts with
/// `success` (serde_json sorts keys, so `{"data","success"}` came first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_plane_answer_starts_with_success() {
    let server = TestServer::start("control_envelope").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let key = server.key(3).await;
    let (a, k) = (Auth::Admin(&admin), Auth::Key(&key));
    let restart = json!({"miner_id": "m1", "site_id": 3, "command": "restart"}).to_string();
    let batch = json!({"commands": [{"miner_id": "m2", "site_id": 3, "command": "reboot"},
                                     {"miner_id": "m3", "site_id": 3, "command": "enable"}]})
    .to_string();
    let done = json!({"status": "completed", "result_code": 0}).to_string();
    let steps: Vec<(&str, String, Auth, String, u16)> = vec![
        (
            "POST",
            "/api/collector/commands".into(),
            a,
            restart.clone(),
            200,
        ),
        (
            "POST",
            "/api/collector/commands/batch".into(),
            a,
            batch,
            200,
        ),
        (
            "GET",
            "/api/collector/commands/pending".into(),
            k,
            String::new(),
            200,
        ),
        (
            "POST",
            "/api/collector/commands/1/result".into(),
            k,
            done.clone(),
            200,
        ),
        (
            "POST",
            "/api/collector/commands/1/result".into(),
            k,
            done,
            409,
        ),
        (
            "DELETE",
            "/api/collector/commands/2".into(),
            a,
            String::new(),
            200,
        ),
        (
            "GET",
            "/api/collector/commands/history".into(),
            a,
            String::new(),
            200,
        ),
        (
            "POST",
            "/api/collector/heartbeat".into(),
            k,
            r#"{"status":"online"}"#.into(),
            200,
        ),
        ("GET", "/api/collector/live/3".into(), a, String::new(), 200),
        (
            "GET",
            "/api/collector/summary/3".into(),
            a,
            String::new(),
            200,
        ),
        ("GET", "/api/collector/alerts".into(), a, String::new(), 200),
        (
            "POST",
            "/api/collector/alerts/99/resolve".into(),
            a,
            String::new(),
            404,
        ),
        ("GET", "/api/collector/stats".into(), a, String::new(), 200),
        ("POST", "/api/collector/commands".into(), a, "{".into(), 400),
        ("POST", "/api/collector/commands".into(), k, restart, 403),
        (
            "PUT",
            "/api/collector/heartbeat".into(),
            k,
            String::new(),
            405,
        ),
    ];
    for (method, path, auth, body, want) in steps {
        let (s, _, text) = send(addr, method, &path, auth, body).await;
        assert_eq!(s.as_u16(), want, "{method} {path}: {text}");
        assert!(
            text.starts_with(r#"{"success":"#),
            "{method} {path}: {text}"
        );
        let v = json(&text);
        assert_eq!(v["success"], want == 200, "{method} {path}: {text}");
    }
    server.stop().await;
}
