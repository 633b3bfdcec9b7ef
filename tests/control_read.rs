//! The control plane's read side and telemetry events, against a real
//! server and database: telemetry opens exactly its events and resolves
//! them when the condition clears; live state and the site summary follow
//! the latest uploads; admins acknowledge and resolve alerts; ingest
//! statistics per site.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::*;
use hyper::StatusCode;
use serde_json::{json, Value};

/// Open alerts of `site` as (subject, event_type).
async fn open_alerts(addr: SocketAddr, admin: &str, site: i32) -> BTreeSet<(String, String)> {
    let (s, v) = call_json(
        addr,
        "GET",
        &format!("/api/collector/alerts?site_id={site}"),
        Auth::Admin(admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["subject"].as_str().unwrap().to_string(),
                a["event_type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_opens_exactly_its_events_and_live_state_follows_uploads() {
    let server = TestServer::start("control_live").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let key = server.key(9).await;
    let healthy = |id: &str, h: f64| {
        json!({"miner_id": id, "online": true, "hashrate_ghs": h, "hashrate_expected_ghs": 100000,
               "temperature_avg": 60, "temperature_max": 70, "power_consumption": 3000,
               "model": "S19", "fan_speeds": [4000, 4200], "accepted_shares": 10})
    };
    let mut hot = healthy("hot", 98000.0);
    hot["temperature_max"] = json!(96.5);
    let mut off = healthy("off", 0.0);
    off["online"] = json!(false);
    let drop = healthy("drop", 30000.0);
    let ok = healthy("ok", 101000.0);
    let body = json!([hot, off, drop, ok]).to_string();
    let (s, _, resp) = upload(addr, &key, &body, &[]).await;
    assert_eq!(s, StatusCode::OK, "{resp}");

    let want: BTreeSet<(String, String)> = [
        ("drop", "hashrate_drop"),
        ("hot", "high_temperature"),
        ("off", "miner_offline"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    eventually("the three events", || async {
        (open_alerts(addr, &admin, 9).await == want).then_some(())
    })
    .await;

    // Live and summary agree with the upload.
    let (s, v) = call_json(
        addr,
        "GET",
        "/api/collector/live/9?per_page=10",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["data"]["items"].as_array().unwrap();
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["miner_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["drop", "hot", "off", "ok"]);
    assert_eq!(items[1]["temperature_max"], 96.5);
    assert_eq!(items[1]["fan_max_rpm"], 4200);
    assert_eq!(items[2]["online"], false);
    let (_, v) = call_json(
        addr,
        "GET",
        "/api/collector/live/9?status=offline",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["total"], 1);
    let (_, v) = call_json(
        addr,
        "GET",
        "/api/collector/summary/9",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    let d = &v["data"];
    assert_eq!(
        (
            d["miners_total"].as_i64(),
            d["miners_online"].as_i64(),
            d["miners_offline"].as_i64()
        ),
        (Some(4), Some(3), Some(1))
    );
    assert_eq!(d["total_hashrate_ghs"], 98000.0 + 30000.0 + 101000.0);
    assert_eq!(d["total_power_w"], 9000.0);
    assert_eq!(d["open_alerts"]["error"], 2);
    assert_eq!(d["open_alerts"]["warning"], 1);

    // A healthy follow-up resolves all three.
    let body = json!([
        healthy("hot", 99000.0),
        healthy("off", 99000.0),
        healthy("drop", 99000.0)
    ])
    .to_string();
    let (s, _, _) = upload(addr, &key, &body, &[]).await;
    assert_eq!(s, StatusCode::OK);
    eventually("the events to resolve", || async {
        open_alerts(addr, &admin, 9).await.is_empty().then_some(())
    })
    .await;
    let summary = eventually("the summary to follow", || async {
        let (_, v) = call_json(
            addr,
            "GET",
            "/api/collector/summary/9",
            Auth::Admin(&admin),
            Value::Null,
        )
        .await;
        (v["data"]["miners_online"] == 4).then_some(v)
    })
    .await;
    assert_eq!(
        summary["data"]["total_hashrate_ghs"],
        3.0 * 99000.0 + 101000.0
    );
    let resolved = server
        .count("SELECT count(*) FROM events WHERE site_id = 9 AND status = 'resolved' AND resolved_by = 'auto'")
        .await;
    assert_eq!(resolved, 3);

    // An admin acknowledges and resolves by hand.
    let mut worse = healthy("hot", 98000.0);
    worse["temperature_max"] = json!(99);
    let (s, _, _) = upload(addr, &key, &json!([worse]).to_string(), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let id = eventually("a new high_temperature", || async {
        let (_, v) = call_json(
            addr,
            "GET",
            "/api/collector/alerts?site_id=9",
            Auth::Admin(&admin),
            Value::Null,
        )
        .await;
        v["data"]["items"][0]["id"].as_i64()
    })
    .await;
    let (s, v) = call_json(
        addr,
        "POST",
        &format!("/api/collector/alerts/{id}/acknowledge"),
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, v["data"]["status"].as_str()),
        (StatusCode::OK, Some("acknowledged"))
    );
    let (s, v) = call_json(
        addr,
        "POST",
        &format!("/api/collector/alerts/{id}/resolve"),
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, v["data"]["status"].as_str()),
        (StatusCode::OK, Some("resolved"))
    );
    let (s, _) = call_json(
        addr,
        "POST",
        &format!("/api/collector/alerts/{id}/resolve"),
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Ingest statistics per site.
    let (s, v) = call_json(
        addr,
        "GET",
        "/api/collector/stats?site_id=9",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let site = &v["data"]["sites"][0];
    assert_eq!(
        (
            site["site_id"].as_i64(),
            site["uploads"].as_i64(),
            site["rows_accepted"].as_i64()
        ),
        (Some(9), Some(3), Some(8))
    );
    server.stop().await;
}
