//! Rollups equal an independent reference computed over the raw rows, for
//! a multi-site, multi-day data set with offline miners, counter resets and
//! late rows; two concurrent workers give the same; retention drops only
//! partitions wholly past their age.

mod common;

use std::time::Duration;

use adit_rollup::{schedule, RollupConfig};
use chrono::{DateTime, Utc};
use common::*;
use hyper::StatusCode;

const STEP_S: i64 = 300; // one sample per miner every 5 minutes
const MINERS: i64 = 6;
const HOURS: i64 = 50;

fn config() -> RollupConfig {
    RollupConfig {
        collection_interval: Duration::from_secs(STEP_S as u64),
        ..Default::default()
    }
}

/// Sample of miner `m` at `ts`, step `i`: miner 1 resets its counters at
/// step 200, miner 4 is offline (zeros) for steps 100..130, miner 5 has no
/// hashrate every 7th sample and no hardware_errors at all.
fn sample(site: i32, m: i64, i: i64, ts: i64) -> String {
    let offline = m == 4 && (100..130).contains(&i);
    let base = if m == 1 && i >= 200 {
        i - 200
    } else {
        i + 1000 * m
    };
    let (acc, rej, hw) = if offline {
        (0, 0, 0)
    } else {
        (base * 37 + m, base / 3, base / 50)
    };
    let hashrate = if m == 5 && i % 7 == 0 {
        "null".to_string()
    } else {
        format!("{}.25", 100_000 + (i * 13 + m * 101) % 997)
    };
    let hw = if m == 5 {
        "null".to_string()
    } else {
        hw.to_string()
    };
    format!(
        r#"{{"miner_id":"s{site}-m{m}","timestamp":{ts},"online":{},"hashrate_ghs":{hashrate},
           "temperature_avg":{}.5,"temperature_max":{},"power_consumption":{},"efficiency":{}.5,
           "accepted_shares":{acc},"rejected_shares":{rej},"hardware_errors":{hw}}}"#,
        !offline,
        55 + (i + m) % 15,
        70 + (i * m) % 20,
        3000 + (i % 11) * 10,
        20 + (i + m) % 9,
    )
}

async fn roll(db_url: &str, cutoff: DateTime<Utc>) -> schedule::RunStats {
    let mut client = connect(db_url).await;
    schedule::run_once(&mut client, &config(), cutoff, Utc::now())
        .await
        .unwrap()
}

/// Mismatches between the rollup tables and a reference computed here
/// straight from raw rows with whole-history window functions.
async fn mismatches(srv: &TestServer) -> Vec<String> {
    let expected = 3600.0 / STEP_S as f64;
    let close = |a: &str, b: &str| {
        format!("(({a} IS NULL AND {b} IS NULL) OR abs({a} - {b}) <= 1e-9 * greatest(1, abs({a})))")
    };
    let counters = ["accepted_shares", "rejected_shares", "hardware_errors"];
    let incs: Vec<String> = counters
        .iter()
        .map(|c| {
            format!(
                "inc_{c} AS (
                   SELECT site_id, miner_id, ts,
                          CASE WHEN prev IS NULL THEN 0 WHEN v >= prev THEN v - prev ELSE v END AS inc
                   FROM (SELECT site_id, miner_id, ts, {c} AS v,
                                lag({c}) OVER (PARTITION BY site_id, miner_id ORDER BY ts) AS prev
                         FROM miner_telemetry WHERE online IS NOT FALSE AND {c} IS NOT NULL) r)"
            )
        })
        .collect();
    let reference = |unit: &str, per_bucket: f64| {
        format!(
            "WITH {incs},
             inc AS (
               SELECT site_id, miner_id, date_trunc('{unit}', ts) AS bucket,
                      sum(a) AS acc, sum(r) AS rej, sum(h) AS hw
               FROM (SELECT site_id, miner_id, ts, inc AS a, 0 AS r, 0 AS h FROM inc_accepted_shares
                     UNION ALL SELECT site_id, miner_id, ts, 0, inc, 0 FROM inc_rejected_shares
                     UNION ALL SELECT site_id, miner_id, ts, 0, 0, inc FROM inc_hardware_errors) u
               GROUP BY 1, 2, 3)
             SELECT t.site_id, t.miner_id, date_trunc('{unit}', t.ts) AS bucket,
                    count(*) AS samples, count(*) FILTER (WHERE online) AS online_samples,
                    avg(hashrate_ghs) AS hashrate_avg, min(hashrate_ghs) AS hashrate_min,
                    max(hashrate_ghs) AS hashrate_max, avg(temperature_avg) AS temperature_avg,
                    max(temperature_max) AS temperature_max, avg(power_consumption) AS power_avg,
                    avg(efficiency) AS efficiency_avg,
                    coalesce(max(i.acc), 0) AS acc, coalesce(max(i.rej), 0) AS rej, coalesce(max(i.hw), 0) AS hw,
                    least(100.0, 100.0 * count(*) FILTER (WHERE online) / {per_bucket}) AS uptime
             FROM miner_telemetry t
             LEFT JOIN inc i ON i.site_id = t.site_id AND i.miner_id = t.miner_id
                           AND i.bucket = date_trunc('{unit}', t.ts)
             GROUP BY 1, 2, 3",
            incs = incs.join(",\n")
        )
    };
    let mut out = Vec::new();
    for (table, unit, per_bucket) in [
        ("miner_telemetry_hourly", "hour", expected),
        ("miner_telemetry_daily", "day", 24.0 * expected),
    ] {
        let checks = [
            "r.samples = h.samples".to_string(),
            "r.online_samples = h.online_samples".to_string(),
            close("r.hashrate_avg", "h.hashrate_avg"),
            close("r.hashrate_min", "h.hashrate_min"),
            close("r.hashrate_max", "h.hashrate_max"),
            close("r.temperature_avg", "h.temperature_avg"),
            close("r.temperature_max", "h.temperature_max"),
            close("r.power_avg", "h.power_avg"),
            close("r.efficiency_avg", "h.efficiency_avg"),
            "r.acc = h.accepted_shares".to_string(),
            "r.rej = h.rejected_shares".to_string(),
            "r.hw = h.hardware_errors".to_string(),
            close(
                "CASE WHEN r.acc + r.rej > 0 THEN 100.0 * r.rej / (r.acc + r.rej) END",
                "h.reject_rate",
            ),
            close("r.uptime", "h.uptime_pct"),
        ];
        let sql = format!(
            "WITH r AS ({reference})
             SELECT coalesce(r.site_id, h.site_id)::text || ' ' || coalesce(r.miner_id, h.miner_id) || ' '
                    || coalesce(r.bucket, h.bucket)::text || ': ' || (r.*)::text || ' vs ' || (h.*)::text
             FROM r FULL JOIN {table} h
               ON h.site_id = r.site_id AND h.miner_id = r.miner_id AND h.bucket = r.bucket
             WHERE r.site_id IS NULL OR h.site_id IS NULL OR NOT ({checks})
             LIMIT 5",
            reference = reference(unit, per_bucket),
            checks = checks.join(" AND ")
        );
        for row in srv.db.query(&sql, &[]).await.unwrap() {
            out.push(format!("{table}: {}", row.get::<_, String>(0)));
        }
    }
    // Site rollups against the same raw rows.
    let site_sql = format!(
        "WITH per_miner AS (
             SELECT site_id, miner_id, date_trunc('hour', ts) AS bucket, avg(hashrate_ghs) AS h,
                    count(*) AS n, count(*) FILTER (WHERE online) AS o, max(temperature_max) AS tmax
             FROM miner_telemetry GROUP BY 1, 2, 3),
         r AS (SELECT site_id, bucket, count(*) AS miners, sum(n) AS samples, sum(o) AS online,
                      sum(h) AS hashrate_total, max(tmax) AS tmax,
                      least(100.0, 100.0 * sum(o) / (count(*) * {expected})) AS uptime
               FROM per_miner GROUP BY 1, 2)
         SELECT r.site_id::text || ' ' || r.bucket::text FROM r FULL JOIN site_telemetry_hourly s USING (site_id, bucket)
         WHERE r.miners IS NULL OR s.miners IS NULL OR r.miners <> s.miners OR r.samples <> s.samples
            OR r.online <> s.online_samples OR NOT {} OR NOT {} OR NOT {}
         LIMIT 5",
        close("r.hashrate_total", "s.hashrate_total"),
        close("r.tmax", "s.temperature_max"),
        close("r.uptime", "s.uptime_pct"),
    );
    for row in srv.db.query(&site_sql, &[]).await.unwrap() {
        out.push(format!(
            "site_telemetry_hourly: {}",
            row.get::<_, String>(0)
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_equal_the_reference_with_late_rows_and_two_workers() {
    let srv = TestServer::start_with("rollup", |c| c.rollup.interval = Duration::ZERO).await;
    let now = Utc::now();
    let end = now.timestamp() / 3600 * 3600 - 2 * 3600; // a closed hour
    let start = end - HOURS * 3600;
    let steps = (end - start) / STEP_S;
    let late_from = steps / 2;
    for site in [31, 32] {
        let key = srv.key(site).await;
        let mut late = Vec::new();
        for chunk in (0..steps).collect::<Vec<_>>().chunks(72) {
            let mut rows = Vec::new();
            for &i in chunk {
                for m in 0..MINERS {
                    let row = sample(site, m, i, start + i * STEP_S);
                    // Miner 2's rows of 3 hours in the middle arrive late.
                    if m == 2 && (late_from..late_from + 36).contains(&i) {
                        late.push(row);
                    } else {
                        rows.push(row);
                    }
                }
            }
            let (status, _, body) = upload(srv.addr, &key, &array(&rows), &[]).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        srv.db.execute("SELECT 1", &[]).await.unwrap();
        // First pass before the late rows exist, then the late rows arrive.
        if site == 32 {
            let stats = roll(&srv.db_url, now).await;
            assert!(stats.hours > 0 && stats.days > 0, "{stats:?}");
        }
        let (status, _, body) = upload(srv.addr, &key, &array(&late), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let stats = roll(&srv.db_url, now).await;
    assert!(
        stats.hours > 0,
        "late rows made hours dirty again: {stats:?}"
    );
    assert_eq!(stats.lag, Duration::ZERO, "nothing closed is left behind");
    let again = roll(&srv.db_url, now).await;
    assert_eq!(
        (again.hours, again.days),
        (0, 0),
        "a second run finds nothing to do"
    );
    let bad = mismatches(&srv).await;
    assert!(
        bad.is_empty(),
        "rollups differ from the reference:\n{}",
        bad.join("\n")
    );
    let hourly = srv
        .count("SELECT count(*) FROM miner_telemetry_hourly")
        .await;
    assert_eq!(hourly, 2 * MINERS * HOURS, "one row per miner-hour");
    let resets = srv
        .count("SELECT count(*) FROM miner_telemetry_hourly WHERE miner_id = 's31-m1' AND accepted_shares < 0")
        .await;
    assert_eq!(resets, 0, "a reset never makes an increase negative");

    // Start over: two workers together over the whole backlog.
    srv.db
        .batch_execute(
            "DELETE FROM miner_telemetry_hourly; DELETE FROM miner_telemetry_daily;
             DELETE FROM site_telemetry_hourly; DELETE FROM rollup_dirty_days;",
        )
        .await
        .unwrap();
    let marked = schedule::mark_range(&srv.db, now - chrono::Duration::days(4), now)
        .await
        .unwrap();
    assert!(marked as i64 >= 2 * HOURS);
    let (a, b) = tokio::join!(roll(&srv.db_url, now), roll(&srv.db_url, now));
    assert!(a.hours > 0 || b.hours > 0);
    let leftover = roll(&srv.db_url, now).await;
    assert_eq!(leftover.hours, 0, "two workers left nothing behind");
    let bad = mismatches(&srv).await;
    assert!(
        bad.is_empty(),
        "two workers differ from the reference:\n{}",
        bad.join("\n")
    );
    assert_eq!(
        srv.count("SELECT count(*) FROM miner_telemetry_hourly")
            .await,
        hourly
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_only_partitions_wholly_past_their_age() {
    let srv = TestServer::start_with("retention", |c| c.rollup.interval = Duration::ZERO).await;
    let today = Utc::now().date_naive();
    for back in 88..=95u64 {
        let day = today - chrono::Days::new(back);
        srv.db
            .execute(
                "SELECT adit_ensure_day_partition('miner_telemetry', $1)",
                &[&day],
            )
            .await
            .unwrap();
    }
    let dropped = adit_rollup::retention::drop_expired(&srv.db, "miner_telemetry", 90, today)
        .await
        .unwrap();
    let name = |back: u64| {
        format!(
            "miner_telemetry_p{}",
            (today - chrono::Days::new(back)).format("%Y%m%d")
        )
    };
    let expect: Vec<String> = (91..=95).rev().map(name).collect();
    assert_eq!(dropped, expect);
    let remaining: Vec<String> = srv
        .db
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'miner_telemetry'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for back in 88..=90 {
        assert!(remaining.contains(&name(back)), "{} kept", name(back));
    }
    // Partitions exist ahead of time: the server created today..today+3.
    for ahead in 0..=3u64 {
        let p = format!(
            "miner_telemetry_p{}",
            (today + chrono::Days::new(ahead)).format("%Y%m%d")
        );
        assert!(remaining.contains(&p), "{p} exists ahead");
    }
    srv.stop().await;
}

/// One sample row for the overflow and failure tests.
fn counter_row(miner: &str, ts: i64, acc: i64, rej: i64, hw: i64) -> String {
    format!(
        r#"{{"miner_id":"{miner}","timestamp":{ts},"online":true,"hashrate_ghs":100.5,
           "accepted_shares":{acc},"rejected_shares":{rej},"hardware_errors":{hw}}}"#
    )
}

/// Issue 17 item 2: counters 0 then i64::MAX used to fail the hour with
/// `bigint out of range` (sum cast to int8, accepted + rejected in int8).
/// Increases are now computed in numeric and saturate at i64::MAX.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_near_i64_max_roll_up_without_overflow() {
    let srv = TestServer::start_with("rollup_max", |c| c.rollup.interval = Duration::ZERO).await;
    let now = Utc::now();
    // Two hours back: closed and past the rollup grace at any minute of the hour.
    let hour = now.timestamp() / 3600 * 3600 - 7200;
    let max = i64::MAX;
    let key = srv.key(51).await;
    let rows = vec![
        counter_row("big", hour + 600, 0, 0, 0),
        counter_row("big", hour + 1200, max, max, max),
        // A reset after the maximum: MAX + 3 saturates.
        counter_row("reset", hour + 600, 0, 0, 0),
        counter_row("reset", hour + 1200, max, 0, 0),
        counter_row("reset", hour + 1800, 3, 0, 0),
    ];
    let (status, _, body) = upload(srv.addr, &key, &array(&rows), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stats = roll(&srv.db_url, now).await;
    assert!(stats.hours >= 1 && stats.days >= 1, "{stats:?}");
    let bucket = DateTime::from_timestamp(hour, 0).unwrap();
    let miner = |m: &'static str| {
        let db = &srv.db;
        async move {
            let r = db
                .query_one(
                    "SELECT accepted_shares, rejected_shares, hardware_errors, reject_rate
                     FROM miner_telemetry_hourly WHERE site_id = 51 AND miner_id = $1 AND bucket = $2",
                    &[&m, &bucket],
                )
                .await
                .unwrap();
            (
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                r.get::<_, i64>(2),
                r.get::<_, Option<f64>>(3),
            )
        }
    };
    assert_eq!(miner("big").await, (max, max, max, Some(50.0)));
    assert_eq!(miner("reset").await, (max, 0, 0, Some(0.0)));
    let site = srv
        .db
        .query_one(
            "SELECT accepted_shares, rejected_shares, reject_rate FROM site_telemetry_hourly
             WHERE site_id = 51 AND bucket = $1",
            &[&bucket],
        )
        .await
        .unwrap();
    assert_eq!(
        (site.get::<_, i64>(0), site.get::<_, i64>(1)),
        (max, max),
        "site sums saturate"
    );
    // The rate comes from the exact sums (2·MAX accepted, MAX rejected).
    let rate = site.get::<_, Option<f64>>(2).unwrap();
    assert!((rate - 100.0 / 3.0).abs() < 1e-9, "{rate}");
    let daily: i64 = srv
        .db
        .query_one(
            "SELECT accepted_shares FROM miner_telemetry_daily WHERE site_id = 51 AND miner_id = 'big'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(daily, max);
    srv.stop().await;
}

/// Issue 17 item 2: one hour that fails (forced here by a trigger) no
/// longer blocks the later hours of its site or any other site; it stays
/// marked with the database's message and SQLSTATE, counts in the lag and
/// in `failed`, and is retried after a backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hour_does_not_block_later_hours() {
    let srv = TestServer::start_with("rollup_fail", |c| c.rollup.interval = Duration::ZERO).await;
    let now = Utc::now();
    let h = now.timestamp() / 3600 * 3600;
    let bad = h - 3 * 3600; // the oldest mark
    let bad_bucket = DateTime::from_timestamp(bad, 0).unwrap();
    for (site, hours) in [(41, vec![bad, h - 2 * 3600]), (42, vec![bad])] {
        let key = srv.key(site).await;
        let rows: Vec<String> = hours
            .iter()
            .flat_map(|&t| {
                [
                    counter_row("m", t + 600, 10, 1, 0),
                    counter_row("m", t + 1200, 20, 2, 0),
                ]
            })
            .collect();
        let (status, _, body) = upload(srv.addr, &key, &array(&rows), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    srv.db
        .batch_execute(&format!(
            "CREATE FUNCTION fail_one_hour() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.site_id = 41 AND NEW.bucket = '{}' THEN
                     RAISE EXCEPTION 'forced rollup failure' USING ERRCODE = 'AD001',
                         DETAIL = 'a test trigger refuses this hour';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER fail_one_hour BEFORE INSERT ON miner_telemetry_hourly
                 FOR EACH ROW EXECUTE FUNCTION fail_one_hour();",
            bad_bucket.to_rfc3339()
        ))
        .await
        .unwrap();
    let mut client = connect(&srv.db_url).await;
    let stats = schedule::run_once(&mut client, &config(), now, now)
        .await
        .expect("one failing hour does not fail the run");
    assert_eq!(stats.failed, 1, "{stats:?}");
    assert_eq!(stats.failing, 1, "{stats:?}");
    assert!(
        stats.lag >= Duration::from_secs(2 * 3600),
        "the failing hour shows in the lag: {stats:?}"
    );
    let hourly: Vec<(i32, DateTime<Utc>)> = srv
        .db
        .query(
            "SELECT site_id, bucket FROM miner_telemetry_hourly ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let at = |t: i64| DateTime::from_timestamp(t, 0).unwrap();
    assert_eq!(
        hourly,
        vec![(41, at(h - 2 * 3600)), (42, at(bad))],
        "later hours of the site and other sites are rolled up"
    );
    let mark = srv
        .db
        .query_one(
            "SELECT failures, last_error FROM rollup_dirty_hours WHERE site_id = 41 AND bucket = $1",
            &[&bad_bucket],
        )
        .await
        .unwrap();
    assert_eq!(mark.get::<_, i32>(0), 1);
    let error: String = mark.get(1);
    assert!(
        error.contains("forced rollup failure")
            && error.contains("SQLSTATE AD001")
            && error.contains("a test trigger refuses this hour"),
        "{error}"
    );
    // Within the backoff the hour waits; the others are done.
    let again = schedule::run_once(&mut client, &config(), now, now)
        .await
        .unwrap();
    assert_eq!((again.hours, again.failed), (0, 0), "{again:?}");
    // The cause goes away; after the backoff the hour is retried and done.
    srv.db
        .batch_execute("DROP TRIGGER fail_one_hour ON miner_telemetry_hourly")
        .await
        .unwrap();
    let later = now + chrono::Duration::hours(2);
    let retried = schedule::run_once(&mut client, &config(), now, later)
        .await
        .unwrap();
    assert_eq!(
        (retried.hours, retried.failed, retried.failing),
        (1, 0, 0),
        "{retried:?}"
    );
    assert_eq!(
        srv.count("SELECT count(*) FROM miner_telemetry_hourly WHERE site_id = 41")
            .await,
        2
    );
    srv.stop().await;
}

/// Issue 17 item 2, as `adit serve` runs it: a failing hour shows in
/// /metrics (failed hours, failing marks, the lag) while the others go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_a_failing_hour_in_metrics() {
    let srv = TestServer::start_with("rollup_metrics", |c| {
        c.rollup.interval = Duration::from_millis(100);
        c.rollup.grace = Duration::ZERO;
    })
    .await;
    srv.db
        .batch_execute(
            "CREATE FUNCTION fail_site_61() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.site_id = 61 THEN RAISE EXCEPTION 'forced rollup failure'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER fail_site_61 BEFORE INSERT ON miner_telemetry_hourly
                 FOR EACH ROW EXECUTE FUNCTION fail_site_61();",
        )
        .await
        .unwrap();
    let hour = Utc::now().timestamp() / 3600 * 3600 - 3 * 3600;
    for site in [61, 62] {
        let key = srv.key(site).await;
        let rows = [counter_row("m", hour + 60, 1, 0, 0)];
        let (status, _, body) = upload(srv.addr, &key, &array(&rows), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
            .parse()
            .unwrap()
    };
    let mut seen = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, _, text) = get(srv.addr, "/metrics").await.unwrap();
        let failed = metric(&text, "adit_rollup_failed_hours_total");
        let failing = metric(&text, "adit_rollup_failing_hours");
        let lag = metric(&text, "adit_rollup_lag_seconds");
        let done = srv
            .count("SELECT count(*) FROM miner_telemetry_hourly WHERE site_id = 62")
            .await;
        seen = Some((failed, failing, lag, done));
        if failed >= 1.0 && failing >= 1.0 && done == 1 {
            break;
        }
    }
    let (failed, failing, lag, done) = seen.unwrap();
    assert!(failed >= 1.0 && failing >= 1.0, "{seen:?}");
    assert_eq!(done, 1, "site 62 is rolled up");
    assert!(
        lag >= 2.0 * 3600.0,
        "the failing hour shows in the lag: {seen:?}"
    );
    srv.stop().await;
}

/// One run walks past the first page of due marks (200 at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_takes_every_page_of_due_marks() {
    let srv = TestServer::start_with("rollup_pages", |c| c.rollup.interval = Duration::ZERO).await;
    let now = Utc::now();
    srv.db
        .execute(
            "INSERT INTO rollup_dirty_hours (site_id, bucket)
             SELECT s, date_trunc('hour', $1::timestamptz) - make_interval(hours => h)
             FROM generate_series(70, 72) s, generate_series(2, 151) h",
            &[&now],
        )
        .await
        .unwrap();
    let mut client = connect(&srv.db_url).await;
    let stats = schedule::run_once(&mut client, &config(), now, now)
        .await
        .unwrap();
    assert_eq!((stats.hours, stats.failed), (450, 0), "{stats:?}");
    assert_eq!(
        srv.count("SELECT count(*) FROM rollup_dirty_hours").await,
        0
    );
    srv.stop().await;
}

/// `adit rollup run` (the real binary): counters near i64::MAX roll up;
/// an hour the database refuses is logged with the database's message and
/// SQLSTATE, the other hours are done, and the command exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adit_rollup_run_rolls_up_huge_counters_and_names_a_refusal() {
    let srv = TestServer::start_with("rollup_cli", |c| c.rollup.interval = Duration::ZERO).await;
    // Two hours back: closed and past the rollup grace (2 min) at any minute.
    let hour = Utc::now().timestamp() / 3600 * 3600 - 7200;
    let max = i64::MAX;
    for site in [81, 82] {
        let key = srv.key(site).await;
        let rows = [
            counter_row("m", hour + 600, 0, 0, 0),
            counter_row("m", hour + 1200, max, max, 0),
        ];
        let (status, _, body) = upload(srv.addr, &key, &array(&rows), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let run = |db_url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_adit"))
            .args(["rollup", "run"])
            .env("DATABASE_URL", db_url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("adit runs")
    };
    srv.db
        .batch_execute(
            "CREATE FUNCTION fail_site_82() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.site_id = 82 THEN
                     RAISE EXCEPTION 'forced rollup failure' USING ERRCODE = 'AD002';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER fail_site_82 BEFORE INSERT ON miner_telemetry_hourly
                 FOR EACH ROW EXECUTE FUNCTION fail_site_82();",
        )
        .await
        .unwrap();
    let out = run(&srv.db_url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a refused hour fails the command: {stderr}"
    );
    assert!(
        stderr.contains("forced rollup failure (SQLSTATE AD002)"),
        "the log names the database's message and SQLSTATE: {stderr}"
    );
    let bucket = DateTime::from_timestamp(hour, 0).unwrap();
    let acc: i64 = srv
        .db
        .query_one(
            "SELECT accepted_shares FROM miner_telemetry_hourly WHERE site_id = 81 AND bucket = $1",
            &[&bucket],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(acc, max, "site 81 is rolled up despite site 82");
    srv.stop().await;
}
