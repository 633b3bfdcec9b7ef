//! Collector heartbeats through the control plane, against a real server
//! and database: a heartbeat is stored and answered, a bad one refused;
//! silence for three intervals raises `agent_offline` and marks the
//! collector offline; the next heartbeat resolves it.

mod common;

use common::*;
use hyper::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_silence_raises_agent_offline_and_a_heartbeat_clears_it() {
    let server = TestServer::start("control_heartbeats").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let key = server.key(4).await;
    let beat = json!({"status": "online", "cpu_usage": 12.5, "memory_usage": 40, "disk_usage": 70,
        "uptime": 3600, "version": "2.1.0", "miners_online": 95, "miners_total": 100,
        "errors_count": 0, "extra_data": {"os": "linux"}, "heartbeat_interval": 1});
    let (s, v) = call_json(
        addr,
        "POST",
        "/api/collector/heartbeat",
        Auth::Key(&key),
        beat.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["received"], true);
    let (s, v) = call_json(
        addr,
        "POST",
        "/api/collector/heartbeat",
        Auth::Key(&key),
        json!({"cpu_usage": 140}),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // Silent for 3 intervals (3 s): offline, one agent_offline alert.
    let alert = eventually("agent_offline", || async {
        let (_, v) = call_json(
            addr,
            "GET",
            "/api/collector/alerts?site_id=4&event_type=agent_offline",
            Auth::Admin(&admin),
            Value::Null,
        )
        .await;
        let items = v["data"]["items"].as_array().unwrap().clone();
        (!items.is_empty()).then(|| items[0].clone())
    })
    .await;
    assert_eq!(alert["severity"], "warning");
    assert_eq!(alert["status"], "open");
    let status: String = server
        .db
        .query_one("SELECT status FROM collector_agents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "offline");

    // A heartbeat resolves it.
    let (s, _) = call_json(
        addr,
        "POST",
        "/api/collector/heartbeat",
        Auth::Key(&key),
        beat,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call_json(
        addr,
        "GET",
        "/api/collector/alerts?site_id=4",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["total"], 0, "{v}");
    let (_, v) = call_json(
        addr,
        "GET",
        "/api/collector/alerts?site_id=4&status=resolved",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["items"][0]["resolved_by"], "auto");
    assert_eq!(
        server.count("SELECT count(*) FROM agent_heartbeats").await,
        2
    );
    let version: String = server
        .db
        .query_one("SELECT version FROM collector_agents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, "2.1.0");
    server.stop().await;
}
