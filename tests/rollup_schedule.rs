//! The rollup run over dirty days, against a real database: one run walks
//! past the first page of due day marks, and a day the database refuses is
//! recorded on its mark (failures, last_error, retry_at) while the other
//! days are done.

mod common;

use std::time::Duration;

use adit_rollup::{schedule, RollupConfig};
use chrono::Utc;
use common::*;

/// A server whose own rollup worker is off, so each run is the test's.
async fn quiet_server(name: &str) -> TestServer {
    TestServer::start_with(name, |c| c.rollup.interval = Duration::ZERO).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_takes_every_page_of_due_days() {
    let srv = quiet_server("rollup_day_pages").await;
    let now = Utc::now();
    srv.db
        .execute(
            "INSERT INTO rollup_dirty_days (site_id, day)
             SELECT s, ($1::timestamptz AT TIME ZONE 'UTC')::date - d
             FROM generate_series(90, 92) s, generate_series(1, 100) d",
            &[&now],
        )
        .await
        .unwrap();
    let mut client = connect(&srv.db_url).await;
    let stats = schedule::run_once(&mut client, &RollupConfig::default(), now, now)
        .await
        .unwrap();
    assert_eq!((stats.days, stats.failed), (300, 0), "{stats:?}");
    assert_eq!(srv.count("SELECT count(*) FROM rollup_dirty_days").await, 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_day_is_recorded_on_its_mark_and_the_others_are_done() {
    let srv = quiet_server("rollup_day_failure").await;
    let now = Utc::now();
    srv.db
        .batch_execute(
            "CREATE FUNCTION fail_site_94() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.site_id = 94 THEN
                     RAISE EXCEPTION 'forced day failure' USING ERRCODE = 'AD003';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER fail_site_94 BEFORE INSERT ON miner_telemetry_daily
                 FOR EACH ROW EXECUTE FUNCTION fail_site_94();",
        )
        .await
        .unwrap();
    // An hourly row per site, so each day has a miner to insert.
    srv.db
        .execute(
            "INSERT INTO miner_telemetry_hourly (bucket, site_id, miner_id, samples,
                 online_samples, hashrate_n, temperature_n, power_n, efficiency_n,
                 accepted_shares, rejected_shares, hardware_errors, uptime_pct)
             SELECT date_trunc('day', $1::timestamptz) - interval '1 day', s, 'm', 12, 12,
                    0, 0, 0, 0, 0, 0, 0, 100
             FROM generate_series(93, 94) s",
            &[&now],
        )
        .await
        .unwrap();
    srv.db
        .execute(
            "INSERT INTO rollup_dirty_days (site_id, day)
             SELECT s, ($1::timestamptz AT TIME ZONE 'UTC')::date - 1 FROM generate_series(93, 94) s",
            &[&now],
        )
        .await
        .unwrap();
    let mut client = connect(&srv.db_url).await;
    let stats = schedule::run_once(&mut client, &RollupConfig::default(), now, now)
        .await
        .unwrap();
    assert_eq!(
        (stats.days, stats.failed, stats.failing),
        (1, 1, 1),
        "{stats:?}"
    );
    let row = srv
        .db
        .query_one(
            "SELECT site_id, failures, last_error, retry_at > $1 FROM rollup_dirty_days",
            &[&now],
        )
        .await
        .unwrap();
    let (site, failures, error, later): (i32, i32, String, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((site, failures, later), (94, 1, true));
    assert!(error.contains("forced day failure"), "{error}");
    assert_eq!(
        srv.count("SELECT count(*) FROM miner_telemetry_daily WHERE site_id = 93")
            .await,
        1
    );
    // Not due again within its backoff: the next run leaves it alone.
    let again = schedule::run_once(&mut client, &RollupConfig::default(), now, now)
        .await
        .unwrap();
    assert_eq!((again.days, again.failed, again.failing), (0, 0, 1));
    srv.stop().await;
}
