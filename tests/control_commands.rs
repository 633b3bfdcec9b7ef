//! Commands through the control plane, against a real server and
//! database: a simulated collector polls, executes and reports commands
//! (who may do what, invalid commands refused whole, priority order, a key
//! never touches another site's commands, cancel, history with logs);
//! concurrent pollers never share a command; timeouts requeue then expire.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::*;
use hyper::StatusCode;
use serde_json::{json, Value};

async fn poll(addr: SocketAddr, key: &str, limit: usize) -> Vec<Value> {
    let (status, v) = call_json(
        addr,
        "GET",
        &format!("/api/collector/commands/pending?limit={limit}"),
        Auth::Key(key),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    let cmds = v["commands"].as_array().unwrap().clone();
    assert_eq!(v["count"].as_u64().unwrap() as usize, cmds.len());
    cmds
}

async fn status_of(server: &TestServer, id: i64) -> String {
    server
        .db
        .query_one("SELECT status FROM agent_commands WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_polls_executes_and_reports_commands() {
    let server = TestServer::start("control_commands").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let (key1, key2) = (server.key(1).await, server.key(2).await);

    // Who may do what.
    let (s, v) = call_json(
        addr,
        "GET",
        "/api/collector/commands/pending",
        Auth::None,
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_key"))
    );
    let (s, v) = call_json(
        addr,
        "POST",
        "/api/collector/commands",
        Auth::Key(&key1),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, _) = call_json(
        addr,
        "GET",
        "/api/collector/commands/pending",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Invalid commands are refused with every problem listed, nothing made.
    let (s, v) = call_json(
        addr,
        "POST",
        "/api/collector/commands",
        Auth::Admin(&admin),
        json!({"miner_id": "m1", "site_id": 1, "command_type": "set_fan",
               "parameters": {"speed": 140}, "priority": 11}),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let fields: BTreeSet<&str> = v["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, BTreeSet::from(["parameters.speed", "priority"]));
    let (s, v) = call_json(
        addr,
        "POST",
        "/api/collector/commands/batch",
        Auth::Admin(&admin),
        json!({"commands": [
            {"miner_id": "m1", "site_id": 1, "command_type": "restart"},
            {"miner_id": "m2", "site_id": 1, "command_type": "set_pool", "parameters": {"pool_url": "http://x"}}
        ]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(server.count("SELECT count(*) FROM agent_commands").await, 0);

    // Three commands for site 1, one for site 2.
    let low = create_command(
        addr,
        &admin,
        json!({"miner_id": "m1", "site_id": 1, "ip_address": "10.0.0.1",
        "command_type": "restart", "priority": 2}),
    )
    .await;
    let high = create_command(
        addr,
        &admin,
        json!({"miner_id": "m2", "site_id": 1,
        "command_type": "set_pool", "priority": 9,
        "parameters": {"pool_url": "stratum+tcp://pool.example:3333", "worker": "farm.w2"}}),
    )
    .await;
    let mid = create_command(
        addr,
        &admin,
        json!({"miner_id": "m3", "site_id": 1,
        "command_type": "set_frequency", "priority": 5, "parameters": {"frequency_mhz": 650}}),
    )
    .await;
    let other = create_command(
        addr,
        &admin,
        json!({"miner_id": "x1", "site_id": 2,
        "command_type": "reboot"}),
    )
    .await;

    // The site-1 collector gets its three, by priority, in the shape collectors read.
    let got = poll(addr, &key1, 50).await;
    let ids: Vec<i64> = got
        .iter()
        .map(|c| c["command_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [high, mid, low]);
    assert_eq!(got[0]["command"], "set_pool");
    assert_eq!(got[0]["params"]["worker"], "farm.w2");
    assert_eq!(got[2]["ip_address"], "10.0.0.1");
    assert!(got[0]["expires_at"].as_str().unwrap().ends_with("+00:00"));
    assert!(
        poll(addr, &key1, 50).await.is_empty(),
        "sent commands are not sent again"
    );
    for id in [high, mid, low] {
        assert_eq!(status_of(&server, id).await, "sent");
    }

    // Site 2's key can neither fetch nor report site 1's commands.
    let got2 = poll(addr, &key2, 50).await;
    assert_eq!(got2.len(), 1);
    assert_eq!(got2[0]["command_id"], other);
    let (s, _) = call_json(
        addr,
        "POST",
        &format!("/api/collector/commands/{high}/result"),
        Auth::Key(&key2),
        json!({"status": "completed"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(status_of(&server, high).await, "sent");

    // The collector executes and reports.
    let (s, v) = call_json(
        addr,
        "POST",
        &format!("/api/collector/commands/{high}/result"),
        Auth::Key(&key1),
        json!({"status": "completed", "result_code": 0, "result_message": "pool switched"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"success": true, "message": "Result reported successfully"})
    );
    let (s, _) = call_json(
        addr,
        "POST",
        &format!("/api/collector/commands/{mid}/result"),
        Auth::Key(&key1),
        json!({"status": "failed", "result_code": 14, "result_message": "frequency locked"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // A second result for a finished command is a conflict.
    let (s, v) = call_json(
        addr,
        "POST",
        &format!("/api/collector/commands/{high}/result"),
        Auth::Key(&key1),
        json!({"status": "failed"}),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    assert_eq!(status_of(&server, high).await, "completed");
    assert_eq!(status_of(&server, mid).await, "failed");

    // The failure raised command_failed for m3.
    let (_, alerts) = call_json(
        addr,
        "GET",
        "/api/collector/alerts?site_id=1",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    let items = alerts["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{alerts}");
    assert_eq!(items[0]["event_type"], "command_failed");
    assert_eq!(items[0]["subject"], "m3");

    // Cancel: the still-sent one is cancelled; a finished one cannot be.
    let (s, v) = call_json(
        addr,
        "DELETE",
        &format!("/api/collector/commands/{low}"),
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "cancelled");
    let (s, _) = call_json(
        addr,
        "DELETE",
        &format!("/api/collector/commands/{high}"),
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = call_json(
        addr,
        "DELETE",
        "/api/collector/commands/999999",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // History: filtered, paginated, with each command's log.
    let (s, v) = call_json(
        addr,
        "GET",
        "/api/collector/commands/history?site_id=1&per_page=2&page=1",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["total"], 3);
    assert_eq!(v["data"]["items"].as_array().unwrap().len(), 2);
    let (_, v) = call_json(
        addr,
        "GET",
        "/api/collector/commands/history?site_id=1&status=completed",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    let item = &v["data"]["items"][0];
    assert_eq!(item["command_id"], high);
    assert_eq!(item["result_message"], "pool switched");
    let events: Vec<&str> = item["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["created", "sent", "completed"]);
    let actors: Vec<&str> = item["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["actor"].as_str().unwrap())
        .collect();
    assert!(actors[0].starts_with("admin:") && actors[1].starts_with("collector:"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pollers_of_one_site_never_get_the_same_command() {
    let server = TestServer::start("control_pollers").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let (key_a, key_b) = (server.key(7).await, server.key(7).await);
    let batch: Vec<Value> = (0..200)
        .map(|i| {
            json!({"miner_id": format!("m{i}"), "site_id": 7, "command_type": "restart",
                        "priority": i % 10})
        })
        .collect();
    let (s, v) = call_json(
        addr,
        "POST",
        "/api/collector/commands/batch",
        Auth::Admin(&admin),
        json!({"commands": batch}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["count"], 200);

    let poller = |key: String| async move {
        let mut got = Vec::new();
        loop {
            let batch = poll(addr, &key, 7).await;
            if batch.is_empty() {
                return got;
            }
            got.extend(batch.iter().map(|c| c["command_id"].as_i64().unwrap()));
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(poller(key_a.clone())),
        tokio::spawn(poller(key_b.clone()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let sa: BTreeSet<i64> = a.iter().copied().collect();
    let sb: BTreeSet<i64> = b.iter().copied().collect();
    assert_eq!(sa.len(), a.len(), "a poller got a command twice");
    assert!(
        sa.is_disjoint(&sb),
        "both pollers got {:?}",
        sa.intersection(&sb).collect::<Vec<_>>()
    );
    assert_eq!(sa.len() + sb.len(), 200);
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both pollers should have taken some"
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM agent_command_logs WHERE event = 'sent'")
            .await,
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_commands_are_retried_then_expire() {
    let server = TestServer::start("control_timeouts").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let key = server.key(3).await;
    // Sent, no result within 1 s: back to pending once, then expired.
    let id = create_command(
        addr,
        &admin,
        json!({"miner_id": "m1", "site_id": 3, "command_type": "enable",
        "timeout_seconds": 1, "max_retries": 1}),
    )
    .await;
    // Never fetched within its TTL (0.02 min = 1.2 s): expired.
    // (At a site nobody polls.)
    let stale = create_command(
        addr,
        &admin,
        json!({"miner_id": "m2", "site_id": 30, "command_type": "disable",
        "ttl_minutes": 0.02}),
    )
    .await;
    let first = poll(addr, &key, 1).await;
    assert_eq!(first[0]["command_id"], id);

    let again = eventually("the timed-out command to be offered again", || async {
        let got = poll(addr, &key, 1).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(again[0]["command_id"], id);
    eventually("the command to expire after its last retry", || async {
        (status_of(&server, id).await == "expired").then_some(())
    })
    .await;
    eventually("the unfetched command to expire", || async {
        (status_of(&server, stale).await == "expired").then_some(())
    })
    .await;
    assert!(poll(addr, &key, 10).await.is_empty());
    let log: Vec<String> = server
        .db
        .query(
            "SELECT event FROM agent_command_logs WHERE command_id = $1 ORDER BY at, id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(log, ["created", "sent", "requeued", "sent", "expired"]);
    let retries: i32 = server
        .db
        .query_one(
            "SELECT retry_count FROM agent_commands WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(retries, 1);
    server.stop().await;
}
