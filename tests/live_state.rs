//! The live state and the telemetry events it raises, driven directly
//! (observe, then flush into a real, migrated database): conditions that
//! flip several times inside one flush interval, and how the state stays
//! bounded under a flood of fresh miner ids.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use adit_control::live::LiveState;
use adit_control::ControlConfig;
use adit_types::Sample;
use common::*;

/// A migrated database of its own.
async fn migrated(name: &str) -> tokio_postgres::Client {
    let url = fresh_database(name).await;
    let mut client = connect(&url).await;
    adit::migrate::migrate(&mut client).await.unwrap();
    client
}

/// A sample of `miner` at second `t`, online or not.
fn sample(miner: &str, t: i64, online: bool) -> Sample {
    Sample {
        ts_micros: 1_700_000_000_000_000 + t * 1_000_000,
        miner_id: miner.into(),
        online: Some(online),
        hashrate_ghs: Some(100_000.0),
        ..Sample::default()
    }
}

/// Unresolved events of `site` of one type.
async fn open_events(db: &tokio_postgres::Client, site: i32, ty: &str) -> i64 {
    db.query_one(
        "SELECT count(*) FROM events WHERE site_id = $1 AND event_type = $2 \
         AND status <> 'resolved'",
        &[&site, &ty],
    )
    .await
    .unwrap()
    .get(0)
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

/// Issue 17 item 7: offline, online, offline in one upload (one flush)
/// must end with miner_offline open, as the live state says.
#[tokio::test]
async fn a_condition_that_flips_twice_inside_one_flush_keeps_its_event() {
    let db = migrated("live_flip").await;
    let live = LiveState::new(&ControlConfig::default());

    // Opened, cleared and opened again before one flush.
    live.observe(
        1,
        &[
            sample("m1", 0, false),
            sample("m1", 1, true),
            sample("m1", 2, false),
        ],
    );
    live.flush(&db).await.unwrap();
    assert_eq!(open_events(&db, 1, "miner_offline").await, 1);
    let online: Option<bool> = db
        .query_one("SELECT online FROM miner_live WHERE miner_id = 'm1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(online, Some(false));

    // Open from an earlier flush, then cleared and raised again in one.
    live.observe(1, &[sample("m1", 3, true), sample("m1", 4, false)]);
    live.flush(&db).await.unwrap();
    assert_eq!(open_events(&db, 1, "miner_offline").await, 1);
    // The flap in between is on record: the first event was resolved.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE subject = 'm1' AND status = 'resolved'"
        )
        .await,
        1
    );

    // Cleared, raised and cleared again: nothing stays open.
    live.observe(
        1,
        &[
            sample("m1", 5, true),
            sample("m1", 6, false),
            sample("m1", 7, true),
        ],
    );
    live.flush(&db).await.unwrap();
    assert_eq!(open_events(&db, 1, "miner_offline").await, 0);

    // Raised then cleared inside one flush: on record, not open.
    live.observe(1, &[sample("m2", 0, false), sample("m2", 1, true)]);
    live.flush(&db).await.unwrap();
    assert_eq!(open_events(&db, 1, "miner_offline").await, 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM events WHERE subject = 'm2'").await,
        1
    );
}

fn stats(live: &LiveState) -> (u64, u64, u64) {
    let s = live.stats();
    (
        s.miners.load(Ordering::Relaxed),
        s.untracked_samples.load(Ordering::Relaxed),
        s.evicted_miners.load(Ordering::Relaxed),
    )
}

/// Issue 17 item 4: a key sending uploads of fresh offline miner ids
/// grew the live state and the open events without bound. A site tracks
/// at most its cap; the rest is counted, not tracked.
#[tokio::test]
async fn a_flood_of_fresh_miner_ids_stays_within_the_site_cap() {
    let db = migrated("live_flood").await;
    let live = LiveState::new(&ControlConfig {
        live_max_miners_per_site: 500,
        ..ControlConfig::default()
    });
    for u in 0..20 {
        let fresh: Vec<Sample> = (0..1000)
            .map(|i| sample(&format!("f{u}-{i}"), u, false))
            .collect();
        live.observe(7, &fresh);
        live.flush(&db).await.unwrap();
    }
    // Another site has its own cap.
    live.observe(8, &[sample("other", 0, false)]);
    live.flush(&db).await.unwrap();
    assert_eq!(stats(&live), (501, 19_500, 0));
    let site7 = "SELECT count(*) FROM miner_live WHERE site_id = 7";
    assert_eq!(count(&db, site7).await, 500);
    assert_eq!(open_events(&db, 7, "miner_offline").await, 500);
    assert_eq!(open_events(&db, 8, "miner_offline").await, 1);

    // The miners tracked are the first 500, and stay tracked.
    live.observe(7, &[sample("f0-0", 30, true), sample("f5-5", 30, true)]);
    live.flush(&db).await.unwrap();
    assert_eq!(open_events(&db, 7, "miner_offline").await, 499);
    assert_eq!(stats(&live).1, 19_501);
}

/// Issue 17 item 4: miners silent for the eviction time leave the live
/// state and their open events are resolved by `evicted` (so are events
/// open at start of miners never heard from since); a miner that comes
/// back is tracked anew.
#[tokio::test]
async fn silent_miners_are_evicted_and_their_events_resolved() {
    let db = migrated("live_evict").await;
    db.batch_execute(
        "INSERT INTO events (site_id, subject, event_type, severity, message) \
         VALUES (3, 'ghost', 'high_temperature', 'warning', 'from before the start')",
    )
    .await
    .unwrap();
    let live = LiveState::new(&ControlConfig {
        live_max_miners_per_site: 100,
        live_evict_after: Duration::ZERO,
        ..ControlConfig::default()
    });
    assert_eq!(live.load_open_events(&db).await.unwrap(), 1);
    let batch = |tag: &str, t: i64| -> Vec<Sample> {
        (0..100)
            .map(|i| sample(&format!("{tag}-{i}"), t, false))
            .collect()
    };
    live.observe(3, &batch("a", 0));
    // Changed miners are written before they can be evicted.
    assert_eq!(live.flush(&db).await.unwrap(), 100);
    assert_eq!(open_events(&db, 3, "miner_offline").await, 100);
    // At the cap: these are not tracked.
    live.observe(3, &batch("b", 0));
    assert_eq!(stats(&live), (100, 100, 0));

    // Silent since the last flush: evicted, their events resolved.
    assert_eq!(live.flush(&db).await.unwrap(), 0);
    assert_eq!(stats(&live), (0, 100, 100));
    assert_eq!(open_events(&db, 3, "miner_offline").await, 0);
    assert_eq!(open_events(&db, 3, "high_temperature").await, 0);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE site_id = 3 AND resolved_by = 'evicted'"
        )
        .await,
        101
    );

    // Room again: new miners are tracked, and an evicted one that comes
    // back offline opens a new event.
    let mut back = batch("c", 1);
    back[99] = sample("a-0", 1, false);
    live.observe(3, &back);
    live.flush(&db).await.unwrap();
    assert_eq!(stats(&live).0, 100);
    assert_eq!(open_events(&db, 3, "miner_offline").await, 100);
    assert_eq!(
        count(&db, "SELECT count(*) FROM events WHERE subject = 'a-0'").await,
        2
    );
    // The stored rows of every miner stay in miner_live.
    assert_eq!(
        count(&db, "SELECT count(*) FROM miner_live WHERE site_id = 3").await,
        199
    );
}

/// Issue 17 item 4, through the server: rows of miners past the cap are
/// all stored; live rows and open events stay at the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_past_the_cap_are_stored_and_live_state_stays_bounded() {
    let server = TestServer::start_with("live_cap", |c| {
        c.control.live_max_miners_per_site = 50;
    })
    .await;
    let key = server.key(5).await;
    for u in 0..10 {
        let rows: Vec<String> = (0..200)
            .map(|i| format!(r#"{{"miner_id":"u{u}-{i}","online":false}}"#))
            .collect();
        let (s, _, text) = upload(server.addr, &key, &array(&rows), &[]).await;
        assert_eq!(s, hyper::StatusCode::OK, "{text}");
    }
    assert_eq!(
        server
            .count("SELECT count(*) FROM miner_telemetry WHERE site_id = 5")
            .await,
        2000
    );
    let live = "SELECT count(*) FROM miner_live WHERE site_id = 5";
    let open = "SELECT count(*) FROM events WHERE site_id = 5 AND status <> 'resolved'";
    for _ in 0..150 {
        if server.count(live).await == 50 && server.count(open).await == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few more flushes change nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.count(live).await, 50);
    assert_eq!(server.count(open).await, 50);
    // /metrics tells the operator: 50 tracked, 1,950 samples untracked.
    let (_, _, metrics) = common::get(server.addr, "/metrics").await.unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("adit_live_miners"), 50.0);
    assert_eq!(value("adit_live_untracked_samples_total"), 1950.0);
    assert_eq!(value("adit_live_evicted_miners_total"), 0.0);
    server.stop().await;
}
