//! Service alert rules over real HTTP and PostgreSQL: rule CRUD and its
//! validation; rules with each operator and with `for` durations judged on
//! committed metrics_aggregated rows; rows out of order; a rule edited
//! while its alerts are open; two writer workers and two adit servers on
//! one database opening and resolving each alert once; the read endpoints.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use adit::serve::ServeConfig;
use chrono::{DateTime, DurationRound, Utc};
use common::{admin_ok, admin_token, call_json, eventually, request, Auth, TestServer};
use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

fn base() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap()
        - chrono::Duration::hours(1)
}

fn row(t: DateTime<Utc>, service: &str, endpoint: &str, p95: f64, error_rate: f64) -> Value {
    json!({
        "timestamp": t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "service_name": service, "api_endpoint": endpoint,
        "qps": 2.5, "avg_latency_ms": 100.0, "p95_latency_ms": p95, "p99_latency_ms": p95 * 1.2,
        "error_rate": error_rate, "total_requests": 1000
    })
}

async fn upload(addr: SocketAddr, key: &str, rows: &[Value]) {
    let body = Value::Array(rows.to_vec()).to_string();
    let (status, _, text) = request(
        addr,
        "POST",
        "/api/datasets/metrics_aggregated/upload",
        &[
            ("x-collector-key", key),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
}

async fn rule(addr: SocketAddr, admin: &str, r: Value) -> i64 {
    let v = admin_ok(addr, admin, "POST", "/api/alert-rules", r).await;
    v["data"]["id"].as_i64().unwrap()
}

/// (rule, service, endpoint, open?, started_at epoch s, resolved_at epoch s) of every alert.
async fn alerts(
    db: &tokio_postgres::Client,
) -> Vec<(i64, String, String, Option<i64>, Option<i64>)> {
    db.query(
        "SELECT rule_id, service_name, api_endpoint, extract(epoch FROM started_at)::int8, \
         extract(epoch FROM resolved_at)::int8 FROM active_alerts ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

/// Waits until the alert table holds `n` rows of which `open` unresolved.
async fn wait_alerts(db: &tokio_postgres::Client, n: usize, open: usize) {
    eventually(&format!("{n} alerts, {open} open"), || async {
        let a = alerts(db).await;
        let o = a.iter().filter(|x| x.4.is_none()).count();
        (a.len() == n && o == open).then_some(())
    })
    .await;
    // And nothing more arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = alerts(db).await;
    assert_eq!(a.len(), n, "{a:?}");
}

#[tokio::test]
async fn crud_validates_metric_operator_and_severity() {
    let server = TestServer::start("alert_crud").await;
    let admin = admin_token(&server).await;
    let good = json!({"name":"slow","metric":"p95_latency_ms","operator":"greater_than",
                      "threshold":500,"severity":"high"});
    let mut bad = good.clone();
    bad["metric"] = json!("latency");
    let (status, v) = call_json(
        server.addr,
        "POST",
        "/api/alert-rules",
        Auth::Admin(&admin),
        bad,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let msg = v.to_string();
    for m in [
        "qps",
        "avg_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "error_rate",
        "total_requests",
    ] {
        assert!(msg.contains(m), "{m} listed: {msg}");
    }
    assert!(
        !msg.contains("service_name,"),
        "text columns are not metrics: {msg}"
    );
    let mut bad = good.clone();
    bad["operator"] = json!(">");
    let (status, v) = call_json(
        server.addr,
        "POST",
        "/api/alert-rules",
        Auth::Admin(&admin),
        bad,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v.to_string().contains("greater_equal"), "{v}");
    let mut bad = good.clone();
    bad["severity"] = json!("urgent");
    let (status, _) = call_json(
        server.addr,
        "POST",
        "/api/alert-rules",
        Auth::Admin(&admin),
        bad,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A collector key is not an admin token.
    let key = server.key(1).await;
    let (status, _) = call_json(
        server.addr,
        "GET",
        "/api/alert-rules",
        Auth::Admin(&key),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let id = rule(server.addr, &admin, good.clone()).await;
    let v = admin_ok(
        server.addr,
        &admin,
        "GET",
        &format!("/api/alert-rules/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["for"], 0, "for defaults to 0");
    assert_eq!(v["data"]["enabled"], true);
    assert_eq!(v["data"]["service_name"], Value::Null);
    let mut edited = good.clone();
    edited["for"] = json!(300);
    edited["service_name"] = json!("api");
    let v = admin_ok(
        server.addr,
        &admin,
        "PUT",
        &format!("/api/alert-rules/{id}"),
        edited,
    )
    .await;
    assert_eq!(v["data"]["for"], 300);
    assert_eq!(v["data"]["service_name"], "api");
    let v = admin_ok(server.addr, &admin, "GET", "/api/alert-rules", Value::Null).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    admin_ok(
        server.addr,
        &admin,
        "DELETE",
        &format!("/api/alert-rules/{id}"),
        Value::Null,
    )
    .await;
    let (status, _) = call_json(
        server.addr,
        "DELETE",
        &format!("/api/alert-rules/{id}"),
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn each_operator_for_durations_and_out_of_order_rows() {
    let server = TestServer::start("alert_ops").await;
    let admin = admin_token(&server).await;
    let key = server.key(1).await;
    let r = |name: &str, metric: &str, op: &str, th: f64, for_s: i64| {
        json!({"name":name,"service_name":"api","metric":metric,"operator":op,"threshold":th,
               "severity":"medium","for":for_s})
    };
    let gt = rule(
        server.addr,
        &admin,
        r("gt", "p95_latency_ms", "greater_than", 500.0, 0),
    )
    .await;
    let ge = rule(
        server.addr,
        &admin,
        r("ge", "p95_latency_ms", "greater_equal", 500.0, 0),
    )
    .await;
    let lt = rule(
        server.addr,
        &admin,
        r("lt", "p95_latency_ms", "less_than", 10.0, 0),
    )
    .await;
    let le = rule(
        server.addr,
        &admin,
        r("le", "p95_latency_ms", "less_equal", 10.0, 0),
    )
    .await;
    let eq = rule(server.addr, &admin, r("eq", "error_rate", "equal", 0.5, 0)).await;
    let held = rule(
        server.addr,
        &admin,
        r("held", "error_rate", "greater_equal", 0.9, 120),
    )
    .await;
    let t = base();
    let m = |s: i64| t + chrono::Duration::seconds(s);
    // p95 500: ge opens, gt does not; p95 10 on /b: le opens, lt does not;
    // error_rate 0.5 on /a: eq opens.
    upload(
        server.addr,
        &key,
        &[
            row(m(0), "api", "/a", 500.0, 0.5),
            row(m(0), "api", "/b", 10.0, 0.0),
        ],
    )
    .await;
    // Another service: the rules name "api" only.
    upload(server.addr, &key, &[row(m(0), "web", "/a", 900.0, 0.5)]).await;
    wait_alerts(&server.db, 3, 3).await;
    let a = alerts(&server.db).await;
    let opened: Vec<(i64, &str)> = a.iter().map(|x| (x.0, x.2.as_str())).collect();
    assert!(
        opened.contains(&(ge, "/a"))
            && opened.contains(&(le, "/b"))
            && opened.contains(&(eq, "/a")),
        "{a:?}"
    );
    assert!(!opened.iter().any(|(r, _)| *r == gt || *r == lt));

    // `for` 120 s: 0.95 at +60 and +120 holds 60 s, then at +180 120 s.
    upload(
        server.addr,
        &key,
        &[
            row(m(60), "api", "/c", 100.0, 0.95),
            row(m(120), "api", "/c", 100.0, 0.95),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!alerts(&server.db).await.iter().any(|x| x.0 == held));
    upload(server.addr, &key, &[row(m(180), "api", "/c", 100.0, 0.99)]).await;
    wait_alerts(&server.db, 4, 4).await;
    let h = alerts(&server.db)
        .await
        .into_iter()
        .find(|x| x.0 == held)
        .unwrap();
    assert_eq!(
        h.3,
        Some(m(60).timestamp()),
        "started when the condition started"
    );

    // Out of order: a late clear row from before the breach changes nothing.
    upload(server.addr, &key, &[row(m(-60), "api", "/a", 100.0, 0.0)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        alerts(&server.db)
            .await
            .iter()
            .filter(|x| x.4.is_none())
            .count(),
        4
    );
    // A later clear row resolves /a's two alerts at its time.
    upload(server.addr, &key, &[row(m(240), "api", "/a", 100.0, 0.0)]).await;
    wait_alerts(&server.db, 4, 2).await;
    for x in alerts(&server.db).await.iter().filter(|x| x.2 == "/a") {
        assert_eq!(x.4, Some(m(240).timestamp()));
    }
    // Breaching again opens a new alert.
    upload(server.addr, &key, &[row(m(300), "api", "/a", 600.0, 0.0)]).await;
    wait_alerts(&server.db, 6, 4).await; // gt and ge
    server.stop().await;
}

#[tokio::test]
async fn a_rule_edited_while_its_alert_is_open() {
    let server = TestServer::start("alert_edit").await;
    let admin = admin_token(&server).await;
    let key = server.key(1).await;
    let body = json!({"name":"slow","metric":"p95_latency_ms","operator":"greater_than",
                      "threshold":500,"severity":"high"});
    let id = rule(server.addr, &admin, body.clone()).await;
    let t = base();
    upload(server.addr, &key, &[row(t, "api", "/a", 700.0, 0.0)]).await;
    wait_alerts(&server.db, 1, 1).await;
    // Raised above the value: the open alert is resolved; the next row at
    // 700 does not breach the new threshold.
    let mut edited = body.clone();
    edited["threshold"] = json!(800);
    admin_ok(
        server.addr,
        &admin,
        "PUT",
        &format!("/api/alert-rules/{id}"),
        edited,
    )
    .await;
    wait_alerts(&server.db, 1, 0).await;
    upload(
        server.addr,
        &key,
        &[row(
            t + chrono::Duration::minutes(1),
            "api",
            "/a",
            700.0,
            0.0,
        )],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(alerts(&server.db).await.len(), 1);
    // Lowered under it: the next row opens one alert with the new threshold.
    let mut edited = body.clone();
    edited["threshold"] = json!(600);
    admin_ok(
        server.addr,
        &admin,
        "PUT",
        &format!("/api/alert-rules/{id}"),
        edited,
    )
    .await;
    upload(
        server.addr,
        &key,
        &[row(
            t + chrono::Duration::minutes(2),
            "api",
            "/a",
            700.0,
            0.0,
        )],
    )
    .await;
    wait_alerts(&server.db, 2, 1).await;
    let th: f64 = server
        .db
        .query_one(
            "SELECT threshold FROM active_alerts WHERE resolved_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(th, 600.0);
    // Disabled: resolved, and nothing more opens.
    let mut off = body.clone();
    off["enabled"] = json!(false);
    admin_ok(
        server.addr,
        &admin,
        "PUT",
        &format!("/api/alert-rules/{id}"),
        off,
    )
    .await;
    upload(
        server.addr,
        &key,
        &[row(
            t + chrono::Duration::minutes(3),
            "api",
            "/a",
            900.0,
            0.0,
        )],
    )
    .await;
    wait_alerts(&server.db, 2, 0).await;
    server.stop().await;
}

/// A second in-process adit on an existing database.
struct Serving {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Serving {
    async fn start(db_url: &str, workers: usize) -> Self {
        let mut config = ServeConfig::test_config(db_url.to_string());
        config.writer.workers = workers;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(adit::serve::run(listener, config, async {
            let _ = stopped.await;
        }));
        for _ in 0..400 {
            if let Ok((StatusCode::OK, _, _)) = common::get(addr, "/health").await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn two_writer_workers_and_two_servers_open_and_resolve_each_alert_once() {
    let server = TestServer::start_with("alert_two", |c| c.writer.workers = 2).await;
    let admin = admin_token(&server).await;
    let key = server.key(1).await;
    rule(
        server.addr,
        &admin,
        json!({"name":"slow","metric":"p95_latency_ms",
        "operator":"greater_than","threshold":500,"severity":"critical"}),
    )
    .await;
    let other = Serving::start(&server.db_url, 2).await;
    let t = base();
    // Every endpoint breaches in many concurrent uploads spread over both
    // servers (and each server's two workers).
    let mut tasks = Vec::new();
    for i in 0..16i64 {
        let addr = if i % 2 == 0 { server.addr } else { other.addr };
        let key = key.clone();
        let rows: Vec<Value> = (0..4)
            .map(|e| {
                row(
                    t + chrono::Duration::seconds(i),
                    "api",
                    &format!("/e{e}"),
                    900.0,
                    0.0,
                )
            })
            .collect();
        tasks.push(tokio::spawn(async move { upload(addr, &key, &rows).await }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    wait_alerts(&server.db, 4, 4).await;
    // Then clear rows, again over both servers.
    let mut tasks = Vec::new();
    for i in 0..8i64 {
        let addr = if i % 2 == 0 { server.addr } else { other.addr };
        let key = key.clone();
        let rows: Vec<Value> = (0..4)
            .map(|e| {
                row(
                    t + chrono::Duration::seconds(60 + i),
                    "api",
                    &format!("/e{e}"),
                    1.0,
                    0.0,
                )
            })
            .collect();
        tasks.push(tokio::spawn(async move { upload(addr, &key, &rows).await }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    wait_alerts(&server.db, 4, 0).await;
    let (_, _, metrics) = common::get(server.addr, "/metrics").await.unwrap();
    assert!(
        metrics.contains("adit_alert_rule_evaluations_total"),
        "{metrics}"
    );
    other.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn the_read_endpoints() {
    let server = TestServer::start("alert_read").await;
    let admin = admin_token(&server).await;
    let key = server.key(1).await;
    let id = rule(
        server.addr,
        &admin,
        json!({"name":"errors","metric":"error_rate",
        "operator":"greater_than","threshold":0.1,"severity":"low"}),
    )
    .await;
    let t = base();
    let m = |s: i64| t + chrono::Duration::seconds(s);
    upload(
        server.addr,
        &key,
        &[
            row(m(0), "api", "/a", 100.0, 0.0),
            row(m(30), "api", "/a", 300.0, 0.5),
            row(m(30), "api", "/b", 50.0, 0.0),
            row(m(400), "api", "/a", 200.0, 0.2),
        ],
    )
    .await;
    wait_alerts(&server.db, 1, 1).await;
    let v = admin_ok(
        server.addr,
        &admin,
        "GET",
        "/api/alerts/active",
        Value::Null,
    )
    .await;
    let a = &v["data"][0];
    assert_eq!(a["rule_id"], id);
    assert_eq!(a["api_endpoint"], "/a");
    assert_eq!(a["current_value"], 0.5);
    assert_eq!(a["severity"], "low");
    let v = admin_ok(
        server.addr,
        &admin,
        "GET",
        "/api/alerts/stats?hours=24",
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["total"], 1);
    assert_eq!(v["data"]["by_severity"]["low"], 1);
    assert_eq!(v["data"]["by_rule"][0]["name"], "errors");
    let v = eventually("service_info", || async {
        let v = admin_ok(server.addr, &admin, "GET", "/api/services", Value::Null).await;
        (v["data"][0]["endpoints"] == json!(["/a", "/b"])).then_some(v)
    })
    .await;
    let s = &v["data"][0];
    assert_eq!(s["service_name"], "api");
    // Last seen an hour ago: stale.
    assert_eq!(s["status"], "stale");
    assert_eq!(s["latest"]["p95_latency_ms"], 200.0);
    assert_eq!(s["open_alerts"], 1);
    let from = m(0).format("%Y-%m-%dT%H:%M:%SZ");
    let to = m(3600).format("%Y-%m-%dT%H:%M:%SZ");
    let v = admin_ok(
        server.addr,
        &admin,
        "GET",
        &format!("/api/services/api/metrics?from={from}&to={to}&bucket=5m"),
        Value::Null,
    )
    .await;
    let series = v["data"]["series"].as_array().unwrap();
    // Bucket m(0) holds /a (two rows) and /b; m(400) is in a later bucket
    // unless m(0) is late in its own 5-minute bucket: check by endpoint.
    let a_rows: i64 = series
        .iter()
        .filter(|b| b["api_endpoint"] == "/a")
        .map(|b| b["rows"].as_i64().unwrap())
        .sum();
    assert_eq!(a_rows, 3);
    let first = series.iter().find(|b| b["api_endpoint"] == "/a").unwrap();
    assert_eq!(first["max_p95_latency_ms"], 300.0);
    assert_eq!(first["avg_p95_latency_ms"], 200.0);
    let (status, _) = call_json(
        server.addr,
        "GET",
        "/api/services/api/metrics?bucket=2m",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;
}
