//! Host inventory over real HTTP into a real PostgreSQL: snapshots posted
//! to `POST /api/datasets/inventory/upload` keep `inventory_latest` (the
//! newest snapshot per client; a late older one never overwrites it) and
//! `inventory_history` (a row per real change, a periodic snapshot a day);
//! two uploads in flight for one client write each change once; the
//! history's retention; the admin read endpoints.

mod common;

use std::net::SocketAddr;

use chrono::{DateTime, DurationRound, Utc};
use common::{call_json, json, request, Auth, Response, TestServer};
use hyper::StatusCode;
use serde_json::{json, Value};

/// Posts a batch of snapshots with `key`; must be answered 200 with every
/// row processed.
async fn post_ok(addr: SocketAddr, key: &str, rows: &[Value]) {
    let (status, _, body) = post(addr, key, rows).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json(&body);
    assert_eq!(v["data"]["processed"], rows.len(), "{body}");
    assert_eq!(v["data"]["rejected"], 0, "{body}");
}

async fn post(addr: SocketAddr, key: &str, rows: &[Value]) -> Response {
    let body = Value::Array(rows.to_vec()).to_string();
    request(
        addr,
        "POST",
        "/api/datasets/inventory/upload",
        &[
            ("x-collector-key", key),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
    .unwrap()
}

/// A host's state: what a snapshot reports.
#[derive(Clone)]
struct Host {
    client: &'static str,
    hostname: &'static str,
    platform_version: &'static str,
    kernel: &'static str,
    disk_total: i64,
    ips: Vec<&'static str>,
}

impl Host {
    fn new(client: &'static str, hostname: &'static str) -> Self {
        Self {
            client,
            hostname,
            platform_version: "22.04",
            kernel: "5.15.0-58-generic",
            disk_total: 1_099_511_627_776,
            ips: vec!["192.168.1.100", "10.0.0.5"],
        }
    }

    /// A snapshot at `at`; `noise` varies what changes all the time (usage,
    /// used and free bytes) and never makes history.
    fn snapshot(&self, at: DateTime<Utc>, noise: i64) -> Value {
        let mem_total: i64 = 34_359_738_368;
        let mem_used = 17_179_869_184 + noise * 1_048_576;
        let disk_used = self.disk_total / 2 + noise * 4096;
        json!({
            "client_id": self.client,
            "collected_at": at.to_rfc3339(),
            "hostname": self.hostname,
            "os": "linux",
            "platform": "ubuntu",
            "arch": "amd64",
            "cpu_count": 28,
            "cpu_model": "Intel(R) Xeon(R) CPU E5-2680 v4",
            "cpu_usage_percent": 10.0 + noise as f64,
            "memory_total": mem_total,
            "memory_used": mem_used,
            "memory_free": mem_total - mem_used,
            "memory_usage_percent": 50.0,
            "disk_total": self.disk_total,
            "disk_used": disk_used,
            "disk_free": self.disk_total - disk_used,
            "disk_usage_percent": 50.0,
            "ip_addresses": self.ips,
            "mac_addresses": ["00:0a:95:9d:68:16"],
            "raw_data": {
                "host": {
                    "hostname": self.hostname,
                    "os": "linux",
                    "platform": "ubuntu",
                    "platform_version": self.platform_version,
                    "kernel_version": self.kernel,
                    "kernel_arch": "x86_64"
                },
                "memory": {"total": mem_total, "used": mem_used}
            }
        })
    }
}

/// Midnight UTC `days` days ago.
fn midnight(days: i64) -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(chrono::Duration::days(1))
        .unwrap()
        - chrono::Duration::days(days)
}

/// (client, change_type, change_summary, collected_at) of every history
/// row, in time order.
async fn history(db: &tokio_postgres::Client) -> Vec<(String, String, String, DateTime<Utc>)> {
    db.query(
        "SELECT client_id, change_type, coalesce(change_summary, ''), collected_at \
         FROM inventory_history ORDER BY collected_at, client_id, change_type",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

#[tokio::test]
async fn a_day_of_snapshots_makes_one_history_row_per_change_and_one_periodic_a_day() {
    let server = TestServer::start("inv_day").await;
    let key = server.key(4).await;
    let day = midnight(1);
    let hour = |h: i64| day + chrono::Duration::hours(h);
    let mut web = Host::new("c-web", "web-01");
    let mut db = Host::new("c-db", "db-01");
    let mut app = Host::new("c-app", "app-01");
    for h in 0..24 {
        if h == 10 {
            db.disk_total = 2_199_023_255_552; // disk swapped for a bigger one
        }
        if h == 12 {
            web.ips = vec!["192.168.1.101", "10.0.0.5"];
        }
        if h == 15 {
            app.platform_version = "24.04";
            app.kernel = "6.8.0-31-generic";
        }
        if h == 18 {
            // The same addresses in another order: the same set.
            web.ips = vec!["10.0.0.5", "192.168.1.101"];
        }
        let rows = [
            web.snapshot(hour(h), h),
            db.snapshot(hour(h), 2 * h),
            app.snapshot(hour(h), 3 * h),
        ];
        post_ok(server.addr, &key, &rows).await;
    }

    let got = history(&server.db).await;
    let changes: Vec<(&str, &str, &str, DateTime<Utc>)> = got
        .iter()
        .filter(|r| r.1 != "periodic_snapshot")
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str(), r.3))
        .collect();
    assert_eq!(
        changes,
        [
            (
                "c-db",
                "hardware_change",
                "disk_total: 1099511627776 -> 2199023255552",
                hour(10)
            ),
            (
                "c-web",
                "network_change",
                "ip_addresses: {10.0.0.5,192.168.1.100} -> {10.0.0.5,192.168.1.101}",
                hour(12)
            ),
            (
                "c-app",
                "os_change",
                "platform_version: 22.04 -> 24.04; kernel_version: 5.15.0-58-generic -> \
                 6.8.0-31-generic",
                hour(15)
            ),
        ]
    );
    let periodic: Vec<(&str, DateTime<Utc>)> = got
        .iter()
        .filter(|r| r.1 == "periodic_snapshot")
        .map(|r| (r.0.as_str(), r.3))
        .collect();
    assert_eq!(
        periodic,
        [("c-app", hour(0)), ("c-db", hour(0)), ("c-web", hour(0))]
    );

    // Latest: the 23:00 snapshot of each, with the changes in it.
    let latest = server
        .db
        .query(
            "SELECT client_id, collected_at, disk_total, ip_addresses, \
                    raw_data->'host'->>'kernel_version', cpu_usage_percent \
             FROM inventory_latest WHERE site_id = 4 ORDER BY client_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(latest.len(), 3);
    for r in &latest {
        assert_eq!(r.get::<_, DateTime<Utc>>(1), hour(23));
    }
    assert_eq!(latest[1].get::<_, String>(0), "c-db");
    assert_eq!(latest[1].get::<_, i64>(2), 2_199_023_255_552);
    assert_eq!(
        latest[2].get::<_, Vec<String>>(3),
        ["10.0.0.5", "192.168.1.101"]
    );
    assert_eq!(latest[0].get::<_, String>(4), "6.8.0-31-generic");
    assert_eq!(latest[0].get::<_, f64>(5), 10.0 + 3.0 * 23.0);

    // A late snapshot from before the swap: latest keeps 23:00, no history.
    let mut old_db = db.clone();
    old_db.disk_total = 1_099_511_627_776;
    post_ok(
        server.addr,
        &key,
        &[old_db.snapshot(hour(9) + chrono::Duration::minutes(30), 0)],
    )
    .await;
    assert_eq!(
        history(&server.db).await,
        got,
        "a late snapshot writes no history"
    );
    let (at, disk): (DateTime<Utc>, i64) = {
        let r = server
            .db
            .query_one(
                "SELECT collected_at, disk_total FROM inventory_latest \
                 WHERE site_id = 4 AND client_id = 'c-db'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((at, disk), (hour(23), 2_199_023_255_552));
    // The raw snapshot itself is kept (the dataset's own table).
    assert_eq!(
        server
            .count("SELECT count(*) FROM inventory_snapshots WHERE client_id = 'c-db'")
            .await,
        25
    );

    // The next day's first snapshot is that day's periodic one.
    post_ok(server.addr, &key, &[web.snapshot(hour(24), 0)]).await;
    assert_eq!(
        server
            .count(
                "SELECT count(*) FROM inventory_history \
                 WHERE client_id = 'c-web' AND change_type = 'periodic_snapshot'"
            )
            .await,
        2
    );
    server.stop().await;
}

#[tokio::test]
async fn two_uploads_in_flight_for_one_client_write_each_change_once() {
    let server = TestServer::start_with("inv_race", |c| c.writer.workers = 4).await;
    let key = server.key(5).await;
    let start = midnight(1);
    let mut host = Host::new("c-race", "race-01");
    post_ok(server.addr, &key, &[host.snapshot(start, 0)]).await;
    const ROUNDS: i64 = 30;
    let addresses: Vec<&'static str> = (0..ROUNDS)
        .map(|i| &*Box::leak(format!("10.1.0.{i}").into_boxed_str()))
        .collect();
    for round in 0..ROUNDS {
        // A new address, reported by two snapshots that race each other
        // (and by a third identical to one of them).
        host.ips = vec![addresses[round as usize]];
        let t = start + chrono::Duration::minutes(10 * round + 1);
        let a = host.snapshot(t, 1);
        let b = host.snapshot(t + chrono::Duration::minutes(1), 2);
        let (ra, rb, rc) = tokio::join!(
            post(server.addr, &key, std::slice::from_ref(&a)),
            post(server.addr, &key, std::slice::from_ref(&b)),
            post(server.addr, &key, std::slice::from_ref(&a)),
        );
        for r in [ra, rb, rc] {
            assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        }
    }
    let changes = server
        .count(
            "SELECT count(*) FROM inventory_history \
             WHERE client_id = 'c-race' AND change_type = 'network_change'",
        )
        .await;
    assert_eq!(changes, ROUNDS, "one history row per real change");
    let distinct = server
        .count(
            "SELECT count(DISTINCT ip_addresses) FROM inventory_history \
             WHERE client_id = 'c-race' AND change_type = 'network_change'",
        )
        .await;
    assert_eq!(distinct, ROUNDS);
    assert_eq!(
        server
            .count("SELECT count(*) FROM inventory_history WHERE change_type = 'periodic_snapshot'")
            .await,
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn history_retention_keeps_periodic_snapshots_and_quarter_months() {
    let server = TestServer::start("inv_retention").await;
    let db = &server.db;
    let now: DateTime<Utc> = "2026-06-15T12:00:00Z".parse().unwrap();
    // Synthetic rows: (change_type, collected_at).
    let rows = [
        ("hardware_change", "2026-06-01T00:00:00Z"), // 14 days: kept
        ("network_change", "2026-03-20T00:00:00Z"),  // 87 days: kept
        ("os_change", "2026-03-10T00:00:00Z"),       // 97 days: deleted
        ("periodic_snapshot", "2026-01-05T00:00:00Z"), // 161 days: kept
        ("periodic_snapshot", "2025-08-10T00:00:00Z"), // < 1 year, August: kept
        ("periodic_snapshot", "2025-05-10T00:00:00Z"), // > 1 year, May: deleted
        ("periodic_snapshot", "2025-04-10T00:00:00Z"), // > 1 year, April: kept
        ("periodic_snapshot", "2024-01-31T23:00:00Z"), // January: kept
        ("periodic_snapshot", "2024-12-31T23:00:00Z"), // December: deleted
        ("hardware_change", "2024-01-31T23:00:00Z"), // old change: deleted
    ];
    for (kind, at) in rows {
        let at: DateTime<Utc> = at.parse().unwrap();
        db.execute(
            "SELECT adit_ensure_dataset_partition('inventory_history', 'month', $1)",
            &[&at],
        )
        .await
        .unwrap();
        db.execute(
            "INSERT INTO inventory_history (site_id, client_id, change_type, collected_at) \
             VALUES (1, 'c-old', $1, $2)",
            &[&kind, &at],
        )
        .await
        .unwrap();
    }
    // A client whose latest snapshot is two years old stays.
    db.execute(
        "INSERT INTO inventory_latest (site_id, client_id, collected_at) \
         VALUES (1, 'c-old', '2024-06-01T00:00:00Z')",
        &[],
    )
    .await
    .unwrap();
    let catalog = adit_dataset::Catalog::shipped().unwrap();
    let datasets: Vec<_> = catalog.iter().map(|d| d.dataset().clone()).collect();
    adit::serve::retain(db, &adit_rollup::RollupConfig::default(), &datasets, now).await;
    let left: Vec<(String, String)> = db
        .query(
            "SELECT change_type, to_char(collected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') \
             FROM inventory_history ORDER BY collected_at DESC",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want = [
        ("hardware_change", "2026-06-01"),
        ("network_change", "2026-03-20"),
        ("periodic_snapshot", "2026-01-05"),
        ("periodic_snapshot", "2025-08-10"),
        ("periodic_snapshot", "2025-04-10"),
        ("periodic_snapshot", "2024-01-31"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(left, want);
    assert_eq!(
        server.count("SELECT count(*) FROM inventory_latest").await,
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn the_read_endpoints_filter_paginate_and_take_an_admin_token() {
    let server = TestServer::start("inv_read").await;
    let key = server.key(6).await;
    let other_site_key = server.key(7).await;
    let admin = common::admin_token(&server).await;
    let day = midnight(1);
    let mut rows = Vec::new();
    for i in 0..5 {
        let hostname: &'static str = Box::leak(format!("web-{i:02}").into_boxed_str());
        let client: &'static str = Box::leak(format!("c-{i}").into_boxed_str());
        rows.push(Host::new(client, hostname).snapshot(day, 0));
    }
    let mut win = Host::new("c-win", "db_win");
    let mut snap = win.snapshot(day, 0);
    snap["os"] = json!("windows");
    rows.push(snap);
    post_ok(server.addr, &key, &rows).await;
    post_ok(
        server.addr,
        &other_site_key,
        &[Host::new("c-x", "web-x").snapshot(day, 0)],
    )
    .await;
    // Two changes for c-win, an hour apart.
    win.disk_total *= 2;
    let mut s1 = win.snapshot(day + chrono::Duration::hours(1), 0);
    s1["os"] = json!("windows");
    post_ok(server.addr, &key, &[s1]).await;
    win.ips = vec!["192.168.9.9"];
    let mut s2 = win.snapshot(day + chrono::Duration::hours(2), 0);
    s2["os"] = json!("windows");
    post_ok(server.addr, &key, &[s2]).await;

    let v = common::admin_ok(server.addr, &admin, "GET", "/api/inventory/6", Value::Null).await;
    assert_eq!(v["data"]["total"], 6, "{v}");
    let v = common::admin_ok(
        server.addr,
        &admin,
        "GET",
        "/api/inventory/6?os=linux&hostname=web-0&per_page=2&page=2",
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["total"], 5, "{v}");
    let items = v["data"]["items"].as_array().unwrap();
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c-2", "c-3"]);
    assert_eq!(items[0]["hostname"], "web-02");
    assert_eq!(items[0]["disk_total"], 1_099_511_627_776i64);
    assert!(items[0]["collected_at"]
        .as_str()
        .unwrap()
        .ends_with("+00:00"));
    assert!(items[0].get("site_id").is_none());
    // `_` in a prefix is a character, not a wildcard.
    let v = common::admin_ok(
        server.addr,
        &admin,
        "GET",
        "/api/inventory/6?hostname=db_",
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["total"], 1, "{v}");
    let v = common::admin_ok(
        server.addr,
        &admin,
        "GET",
        "/api/inventory/6?hostname=db%25",
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["total"], 0, "{v}");
    let v = common::admin_ok(
        server.addr,
        &admin,
        "GET",
        "/api/inventory/6?os=windows",
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["items"][0]["client_id"], "c-win");

    let v = common::admin_ok(
        server.addr,
        &admin,
        "GET",
        "/api/inventory/6/c-win/history",
        Value::Null,
    )
    .await;
    let kinds: Vec<&str> = v["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["change_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["network_change", "hardware_change", "periodic_snapshot"]
    );
    let v = common::admin_ok(
        server.addr,
        &admin,
        "GET",
        "/api/inventory/6/c-win/history?change_type=hardware_change",
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["total"], 1);
    assert_eq!(
        v["data"]["items"][0]["change_summary"],
        "disk_total: 1099511627776 -> 2199023255552"
    );
    let v = common::admin_ok(
        server.addr,
        &admin,
        "GET",
        "/api/inventory/6/c-win/history?per_page=1&page=3",
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["items"][0]["change_type"], "periodic_snapshot");

    // Errors: unknown change type, unknown client, other site's client.
    let (status, v) = call_json(
        server.addr,
        "GET",
        "/api/inventory/6/c-win/history?change_type=nope",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("periodic_snapshot"),
        "{v}"
    );
    for path in [
        "/api/inventory/6/c-x/history",
        "/api/inventory/6/nope/history",
    ] {
        let (status, v) =
            call_json(server.addr, "GET", path, Auth::Admin(&admin), Value::Null).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    // A collector key is not an admin token; no credential is a 401.
    let (status, v) = call_json(
        server.addr,
        "GET",
        "/api/inventory/6",
        Auth::Key(&key),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = call_json(
        server.addr,
        "GET",
        "/api/inventory/6",
        Auth::Admin(&key),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, _) = call_json(
        server.addr,
        "GET",
        "/api/inventory/6",
        Auth::None,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An admin token does not upload: uploads take a collector key.
    let (status, _, _) = request(
        server.addr,
        "POST",
        "/api/datasets/inventory/upload",
        &[
            ("authorization", &format!("Bearer {admin}")),
            ("content-type", "application/json"),
        ],
        "[]",
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call_json(
        server.addr,
        "POST",
        "/api/inventory/6",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    server.stop().await;
}
