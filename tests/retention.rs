//! Issue 17 item 12: `ingest_rejects`, resolved `events` and `miner_live`
//! rows of long-gone miners are purged past their retention, in bounded
//! batches, by the same retention pass that drops old partitions.

mod common;

use std::time::Duration;

use adit_rollup::retention::{purge, Purged};
use chrono::Utc;
use common::*;

async fn reject_at(db: &tokio_postgres::Client, days_ago: i32, row: i32) {
    db.execute(
        "INSERT INTO ingest_rejects (received_at, site_id, key_id, upload_id, row_index, field, reason, raw)
         VALUES (now() - make_interval(days => $1), 1, 1, 1, $2, 'f', 'r', repeat('x', 1000))",
        &[&days_ago, &row],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_rejects_are_purged_in_batches() {
    let srv = TestServer::start_with("purge_rejects", |c| c.rollup.interval = Duration::ZERO).await;
    for i in 0..5 {
        reject_at(&srv.db, 8 + i, i).await;
    }
    reject_at(&srv.db, 6, 100).await;
    reject_at(&srv.db, 0, 101).await;
    let stats = purge(&srv.db, Purged::Rejects, 7, Utc::now(), 2, 100)
        .await
        .unwrap();
    assert_eq!((stats.rows, stats.batches), (5, 3), "{stats:?}");
    let left: Vec<i32> = srv
        .db
        .query("SELECT row_index FROM ingest_rejects ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![100, 101]);
    // The batch cap bounds one round; the next round goes on.
    for i in 0..5 {
        reject_at(&srv.db, 30, i).await;
    }
    let capped = purge(&srv.db, Purged::Rejects, 7, Utc::now(), 2, 1)
        .await
        .unwrap();
    assert_eq!((capped.rows, capped.batches), (2, 1));
    let rest = purge(&srv.db, Purged::Rejects, 7, Utc::now(), 100, 10)
        .await
        .unwrap();
    assert_eq!(rest.rows, 3);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_resolved_events_past_their_age_are_purged() {
    let srv = TestServer::start_with("purge_events", |c| c.rollup.interval = Duration::ZERO).await;
    srv.db
        .batch_execute(
            "INSERT INTO events (site_id, subject, event_type, severity, status, message, opened_at,
                                 acknowledged_at, resolved_at)
             VALUES (1, 'old-resolved', 'miner_offline', 'warning', 'resolved', 'm',
                     now() - interval '100 days', NULL, now() - interval '40 days'),
                    (1, 'old-resolved-2', 'hashrate_drop', 'warning', 'resolved', 'm',
                     now() - interval '50 days', NULL, now() - interval '31 days'),
                    (1, 'recent-resolved', 'miner_offline', 'warning', 'resolved', 'm',
                     now() - interval '100 days', NULL, now() - interval '2 days'),
                    (1, 'old-open', 'miner_offline', 'warning', 'open', 'm',
                     now() - interval '100 days', NULL, NULL),
                    (1, 'old-acknowledged', 'high_temperature', 'warning', 'acknowledged', 'm',
                     now() - interval '100 days', now() - interval '90 days', NULL)",
        )
        .await
        .unwrap();
    let stats = purge(&srv.db, Purged::ResolvedEvents, 30, Utc::now(), 1, 100)
        .await
        .unwrap();
    assert_eq!(stats.rows, 2, "{stats:?}");
    let left: Vec<String> = srv
        .db
        .query("SELECT subject FROM events ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        left,
        vec!["old-acknowledged", "old-open", "recent-resolved"]
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_rows_of_long_gone_miners_are_purged() {
    let srv = TestServer::start_with("purge_live", |c| c.rollup.interval = Duration::ZERO).await;
    srv.db
        .batch_execute(
            "INSERT INTO miner_live (site_id, miner_id, ts, updated_at)
             SELECT s, 'gone-' || i, now() - interval '60 days', now() - interval '60 days'
             FROM generate_series(1, 2) s, generate_series(1, 7) i;
             INSERT INTO miner_live (site_id, miner_id, ts, updated_at)
             VALUES (1, 'here', now() - interval '1 minute', now()),
                    (2, 'quiet', now() - interval '20 days', now() - interval '20 days');",
        )
        .await
        .unwrap();
    let stats = purge(&srv.db, Purged::MinerLive, 30, Utc::now(), 3, 100)
        .await
        .unwrap();
    assert_eq!(stats.rows, 14, "{stats:?}");
    assert!(stats.batches >= 5, "batches of 3: {stats:?}");
    let left: Vec<String> = srv
        .db
        .query("SELECT miner_id FROM miner_live ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec!["here", "quiet"]);
    srv.stop().await;
}

/// `adit serve`'s retention pass runs the purges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_purges_on_its_retention_pass() {
    let srv = TestServer::start_with("purge_serve", |c| {
        c.rollup.interval = Duration::from_millis(100);
        c.rollup.retention_interval = Duration::from_millis(100);
    })
    .await;
    reject_at(&srv.db, 30, 1).await;
    reject_at(&srv.db, 0, 2).await;
    srv.db
        .batch_execute(
            "INSERT INTO events (site_id, subject, event_type, severity, status, message, resolved_at)
             VALUES (1, 'x', 'miner_offline', 'warning', 'resolved', 'm', now() - interval '90 days');
             INSERT INTO miner_live (site_id, miner_id, ts, updated_at)
             VALUES (1, 'gone', now() - interval '90 days', now() - interval '90 days');",
        )
        .await
        .unwrap();
    let mut purged = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left = srv
            .count(
                "SELECT (SELECT count(*) FROM ingest_rejects WHERE row_index = 1)
                      + (SELECT count(*) FROM events) + (SELECT count(*) FROM miner_live)",
            )
            .await;
        if left == 0 {
            purged = true;
            break;
        }
    }
    assert!(purged, "the retention pass purged all three tables");
    assert_eq!(srv.count("SELECT count(*) FROM ingest_rejects").await, 1);
    srv.stop().await;
}
