//! Claiming and running rollup work. Dirty hours that closed by the
//! caller's cutoff (`adit serve` passes now less a grace period) are taken
//! one at a time under a transaction-scoped advisory lock: a worker that
//! cannot get the lock skips the hour, so any number of workers, in any
//! number of processes, share a backlog and each hour is computed by one
//! of them at a time. A mark is deleted only if its version is the one the
//! worker listed (rows that landed meanwhile leave it for the next round).
//! Ingest never waits on a rollup: marks are not row-locked while
//! aggregates are computed.
//!
//! One run walks the due hours once, oldest first, then the due days the
//! same way. An hour (or day) the database refuses is rolled back, logged
//! with the database's own words, and recorded on its mark (`failures`,
//! `last_error`, `retry_at`): the run goes on with the next mark, and the
//! failed one is tried again after a backoff ([`retry_delay`]). It keeps
//! counting in the lag meanwhile. Only a lost connection, or a failure to
//! list the marks, ends a run early.

mod marks;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use tokio_postgres::{Client, Transaction};
use tracing::{debug, info};

use crate::{aggregate, Result, RollupConfig};
use marks::{failed, finish, list_due, Key, Kind, Mark, CLAIM_BATCH};

pub use marks::{mark_range, retry_delay};

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    pub hours: u64,
    pub days: u64,
    /// Work skipped because another worker held it.
    pub busy: u64,
    /// Hours and days the database refused in this run (they stay marked
    /// and are retried after a backoff).
    pub failed: u64,
    /// Marks of hours and days waiting for a retry after failing.
    pub failing: u64,
    /// Age of the oldest closed hour still waiting (zero when none).
    pub lag: Duration,
}

/// What claiming one mark came to.
enum Claimed {
    Done,
    /// Another worker holds it.
    Busy,
    /// Another worker finished it since we listed it.
    Gone,
}

/// Rolls up every dirty hour that ended at or before `cutoff`, then every
/// dirty day. `now` measures the lag and decides which failed marks are due
/// for a retry.
pub async fn run_once(
    client: &mut Client,
    cfg: &RollupConfig,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<RunStats> {
    let mut stats = RunStats::default();
    let last_due = cutoff - chrono::Duration::hours(1);
    for kind in [Kind::Hour, Kind::Day] {
        roll_due(client, cfg, kind, last_due, now, &mut stats).await?;
    }
    measure_backlog(client, last_due, now, &mut stats).await?;
    if stats.hours > 0 || stats.days > 0 || stats.failed > 0 {
        info!(
            hours = stats.hours,
            days = stats.days,
            busy = stats.busy,
            failed = stats.failed,
            failing = stats.failing,
            lag_s = stats.lag.as_secs(),
            "Rolled up."
        );
    }
    Ok(stats)
}

/// Rolls every due mark of one kind once, oldest first, [`CLAIM_BATCH`]
/// listed at a time; a mark the database refuses is recorded ([`failed`])
/// and the walk goes on.
async fn roll_due(
    client: &mut Client,
    cfg: &RollupConfig,
    kind: Kind,
    last_due: DateTime<Utc>,
    now: DateTime<Utc>,
    stats: &mut RunStats,
) -> Result<()> {
    let mut after: Option<Mark> = None;
    loop {
        let due = list_due(client, kind, last_due, now, after).await?;
        for mark in &due {
            match roll(client, cfg, mark).await {
                Ok(Claimed::Done) => match mark.key {
                    Key::Hour(bucket) => {
                        debug!(site_id = mark.site_id, %bucket, "Rolled up an hour.");
                        stats.hours += 1;
                    }
                    Key::Day(_) => stats.days += 1,
                },
                Ok(Claimed::Busy) => stats.busy += 1,
                Ok(Claimed::Gone) => {}
                Err(e) => {
                    failed(client, mark, now, e).await?;
                    stats.failed += 1;
                }
            }
        }
        if (due.len() as i64) < CLAIM_BATCH {
            return Ok(());
        }
        after = due.last().copied();
    }
}

/// Recomputes one mark in its own transaction, under its advisory lock,
/// and deletes the mark if no rows landed meanwhile ([`finish`]).
async fn roll(client: &mut Client, cfg: &RollupConfig, mark: &Mark) -> Result<Claimed> {
    let Some(tx) = claim(client, mark.lock()).await? else {
        return Ok(Claimed::Busy);
    };
    let expected = cfg.expected_samples_per_hour();
    let claimed = match mark.key {
        Key::Hour(bucket) => roll_hour(&tx, cfg, expected, mark.site_id, bucket).await?,
        Key::Day(day) => roll_day(&tx, expected, mark.site_id, day).await?,
    };
    if let Claimed::Done = claimed {
        finish(&tx, mark).await?;
        tx.commit().await?;
    }
    Ok(claimed) // otherwise dropping the transaction rolls it back
}

/// A transaction holding the advisory lock `lock`, or None (the
/// transaction rolled back) when another worker holds it.
async fn claim(client: &mut Client, lock: i64) -> Result<Option<Transaction<'_>>> {
    let tx = client.transaction().await?;
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&lock])
        .await?
        .get(0);
    Ok(locked.then_some(tx))
}

/// Recomputes one dirty hour, unless another worker finished it since it
/// was listed, and marks its day dirty.
async fn roll_hour(
    tx: &Transaction<'_>,
    cfg: &RollupConfig,
    expected: f64,
    site_id: i32,
    bucket: DateTime<Utc>,
) -> Result<Claimed> {
    let still_dirty = tx
        .query_opt(
            "SELECT 1 FROM rollup_dirty_hours WHERE site_id = $1 AND bucket = $2",
            &[&site_id, &bucket],
        )
        .await?
        .is_some();
    if !still_dirty {
        return Ok(Claimed::Gone);
    }
    aggregate::hour(tx, site_id, bucket, expected, cfg.counter_lookback).await?;
    tx.execute(
        "INSERT INTO rollup_dirty_days (site_id, day) VALUES ($1, ($2 AT TIME ZONE 'UTC')::date) \
         ON CONFLICT (site_id, day) DO UPDATE SET version = rollup_dirty_days.version + 1",
        &[&site_id, &bucket],
    )
    .await?;
    Ok(Claimed::Done)
}

/// Recomputes one dirty day from its hourly rows.
async fn roll_day(
    tx: &Transaction<'_>,
    expected: f64,
    site_id: i32,
    day: NaiveDate,
) -> Result<Claimed> {
    let midnight = day.and_time(NaiveTime::MIN).and_utc();
    aggregate::day(tx, site_id, midnight, expected).await?;
    Ok(Claimed::Done)
}

/// The lag (age of the oldest closed hour still marked, failing ones
/// included) and the number of marks waiting for a retry.
async fn measure_backlog(
    client: &Client,
    last_due: DateTime<Utc>,
    now: DateTime<Utc>,
    stats: &mut RunStats,
) -> Result<()> {
    let row = client
        .query_one(
            "SELECT (SELECT min(bucket) FROM rollup_dirty_hours WHERE bucket <= $1),
                    (SELECT count(*) FROM rollup_dirty_hours WHERE failures > 0)
                  + (SELECT count(*) FROM rollup_dirty_days WHERE failures > 0)",
            &[&last_due],
        )
        .await?;
    let oldest: Option<DateTime<Utc>> = row.get(0);
    stats.failing = row.get::<_, i64>(1) as u64;
    stats.lag = oldest
        .map(|b| {
            (now - (b + chrono::Duration::hours(1)))
                .to_std()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    Ok(())
}
