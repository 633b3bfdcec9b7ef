//! Issue 17 item 9: the maintenance loop of `adit serve` (partitions ahead,
//! idempotency purge) reconnects after its connection is lost, as after a
//! PostgreSQL restart.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_resumes_after_its_backend_is_terminated() {
    let srv = TestServer::start_with("maintenance", |c| {
        c.rollup.interval = Duration::ZERO;
        c.maintenance_interval = Duration::from_millis(200);
    })
    .await;
    // Every connection of the server goes, as in a restart (ours stays).
    let killed: i64 = srv
        .count(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await;
    assert!(killed >= 1, "the maintenance connection was open");
    let ahead = format!(
        "miner_telemetry_p{}",
        (Utc::now().date_naive() + chrono::Days::new(3)).format("%Y%m%d")
    );
    srv.db
        .batch_execute(&format!(
            "DROP TABLE {ahead};
             INSERT INTO idempotency_keys (key_id, idem_key, body_digest, response, created_at)
             VALUES (1, 'expired', '\\x00', '{{}}', now() - interval '2 days')"
        ))
        .await
        .unwrap();
    let mut resumed = false;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let expired = srv
            .count("SELECT count(*) FROM idempotency_keys WHERE idem_key = 'expired'")
            .await;
        let partition = srv
            .count(&format!(
                "SELECT count(*) FROM pg_class WHERE relname = '{ahead}'"
            ))
            .await;
        if expired == 0 && partition == 1 {
            resumed = true;
            break;
        }
    }
    assert!(
        resumed,
        "maintenance purged the expired key and recreated {ahead} after losing its connection"
    );
    srv.stop().await;
}
