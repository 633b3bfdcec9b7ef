//! Claiming and running rollup work. Dirty hours that have closed (plus a
//! grace period) are taken one at a time under a transaction-scoped
//! advisory lock: a worker that cannot get the lock skips the hour, so any
//! number of workers, in any number of processes, share a backlog and each
//! hour is computed by one of them at a time. A mark is deleted only if its
//! version is the one the worker started from (rows that landed meanwhile
//! leave it for the next round). Ingest never waits on a rollup: marks are
//! not row-locked while aggregates are computed.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use tokio_postgres::Client;
use tracing::{debug, info};

use crate::{aggregate, Result, RollupConfig};

/// Dirty hours or days fetched per look at the queue.
const CLAIM_BATCH: i64 = 200;
const HOUR_SECS: i64 = 3600;

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    pub hours: u64,
    pub days: u64,
    /// Work skipped because another worker held it.
    pub busy: u64,
    /// Age of the oldest closed hour still waiting (zero when none).
    pub lag: Duration,
}

fn hour_lock(site_id: i32, bucket: DateTime<Utc>) -> i64 {
    let hours = bucket.timestamp().div_euclid(HOUR_SECS) & 0x7fff_ffff;
    (i64::from(site_id) << 32) | hours
}

fn day_lock(site_id: i32, day: NaiveDate) -> i64 {
    let days = (day - NaiveDate::default()).num_days() & 0x7fff_ffff;
    (i64::from(site_id) << 32) | 0x8000_0000 | days
}

/// Rolls up every dirty hour that ended at or before `cutoff`, then every
/// dirty day. `now` measures the lag.
pub async fn run_once(
    client: &mut Client,
    cfg: &RollupConfig,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<RunStats> {
    let mut stats = RunStats::default();
    let last_due = cutoff - chrono::Duration::hours(1);
    let expected = cfg.expected_samples_per_hour();
    loop {
        let due = client
            .query(
                "SELECT site_id, bucket, version FROM rollup_dirty_hours WHERE bucket <= $1 \
                 ORDER BY bucket, site_id LIMIT $2",
                &[&last_due, &CLAIM_BATCH],
            )
            .await?;
        let mut done = 0;
        for row in &due {
            let (site_id, bucket, version): (i32, DateTime<Utc>, i64) =
                (row.get(0), row.get(1), row.get(2));
            let tx = client.transaction().await?;
            let locked: bool = tx
                .query_one(
                    "SELECT pg_try_advisory_xact_lock($1)",
                    &[&hour_lock(site_id, bucket)],
                )
                .await?
                .get(0);
            let still_dirty = locked
                && tx
                    .query_opt(
                        "SELECT 1 FROM rollup_dirty_hours WHERE site_id = $1 AND bucket = $2",
                        &[&site_id, &bucket],
                    )
                    .await?
                    .is_some();
            if !still_dirty {
                stats.busy += u64::from(!locked);
                continue; // dropping the transaction rolls it back
            }
            let miners =
                aggregate::hour(&tx, site_id, bucket, expected, cfg.counter_lookback).await?;
            tx.execute(
                "INSERT INTO rollup_dirty_days (site_id, day) VALUES ($1, ($2 AT TIME ZONE 'UTC')::date) \
                 ON CONFLICT (site_id, day) DO UPDATE SET version = rollup_dirty_days.version + 1",
                &[&site_id, &bucket],
            )
            .await?;
            let deleted = tx
                .execute(
                    "DELETE FROM rollup_dirty_hours WHERE site_id = $1 AND bucket = $2 AND version = $3",
                    &[&site_id, &bucket, &version],
                )
                .await?;
            tx.commit().await?;
            debug!(site_id, %bucket, miners, "Rolled up an hour.");
            stats.hours += 1;
            // A mark re-versioned meanwhile stays for the next pass; a pass
            // that clears nothing ends the loop.
            done += deleted;
        }
        if done == 0 {
            break;
        }
    }
    loop {
        let due = client
            .query(
                "SELECT site_id, day, version FROM rollup_dirty_days ORDER BY day, site_id LIMIT $1",
                &[&CLAIM_BATCH],
            )
            .await?;
        let mut done = 0;
        for row in &due {
            let (site_id, day, version): (i32, NaiveDate, i64) =
                (row.get(0), row.get(1), row.get(2));
            let tx = client.transaction().await?;
            let locked: bool = tx
                .query_one(
                    "SELECT pg_try_advisory_xact_lock($1)",
                    &[&day_lock(site_id, day)],
                )
                .await?
                .get(0);
            if !locked {
                stats.busy += 1;
                continue;
            }
            let midnight = day.and_time(NaiveTime::MIN).and_utc();
            aggregate::day(&tx, site_id, midnight, expected).await?;
            let deleted = tx
                .execute(
                    "DELETE FROM rollup_dirty_days WHERE site_id = $1 AND day = $2 AND version = $3",
                    &[&site_id, &day, &version],
                )
                .await?;
            tx.commit().await?;
            stats.days += 1;
            done += deleted;
        }
        if done == 0 {
            break;
        }
    }
    let oldest: Option<DateTime<Utc>> = client
        .query_one(
            "SELECT min(bucket) FROM rollup_dirty_hours WHERE bucket <= $1",
            &[&last_due],
        )
        .await?
        .get(0);
    stats.lag = oldest
        .map(|b| {
            (now - (b + chrono::Duration::hours(1)))
                .to_std()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    if stats.hours > 0 || stats.days > 0 {
        info!(
            hours = stats.hours,
            days = stats.days,
            busy = stats.busy,
            lag_s = stats.lag.as_secs(),
            "Rolled up."
        );
    }
    Ok(stats)
}

/// Marks every hour with raw rows in `[from, to)` (and each next hour)
/// dirty, for a backfill; returns the number of marks.
pub async fn mark_range(client: &Client, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<u64> {
    Ok(client
        .execute(
            "INSERT INTO rollup_dirty_hours (site_id, bucket)
             SELECT DISTINCT s.site_id, h.bucket
             FROM (SELECT DISTINCT site_id, date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hr
                   FROM miner_telemetry WHERE ts >= $1 AND ts < $2) s
             CROSS JOIN LATERAL (VALUES (s.hr), (s.hr + interval '1 hour')) h(bucket)
             ON CONFLICT (site_id, bucket) DO UPDATE SET version = rollup_dirty_hours.version + 1",
            &[&from, &to],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_by_site_hour_and_kind() {
        let t = DateTime::from_timestamp(1_763_800_000, 0).unwrap();
        let d = t.date_naive();
        assert_ne!(hour_lock(1, t), hour_lock(2, t));
        assert_ne!(
            hour_lock(1, t),
            hour_lock(1, t + chrono::Duration::hours(1))
        );
        assert_eq!(
            hour_lock(1, t),
            hour_lock(1, t + chrono::Duration::minutes(5))
        );
        assert_ne!(hour_lock(1, t), day_lock(1, d));
        assert_ne!(day_lock(1, d), day_lock(1, d.succ_opt().unwrap()));
        assert!(hour_lock(1, t) != 0x6164_6974, "never the migration lock");
    }
}
