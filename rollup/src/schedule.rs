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

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};
use tracing::{debug, error, info};

use crate::{aggregate, Error, Result, RollupConfig};

/// Dirty hours or days fetched per look at the queue.
const CLAIM_BATCH: i64 = 200;
const HOUR_SECS: i64 = 3600;
/// First retry of a failed mark, and the longest wait between retries.
const RETRY_FIRST: Duration = Duration::from_secs(60);
const RETRY_MAX: Duration = Duration::from_secs(3600);

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

fn hour_lock(site_id: i32, bucket: DateTime<Utc>) -> i64 {
    let hours = bucket.timestamp().div_euclid(HOUR_SECS) & 0x7fff_ffff;
    (i64::from(site_id) << 32) | hours
}

fn day_lock(site_id: i32, day: NaiveDate) -> i64 {
    let days = (day - NaiveDate::default()).num_days() & 0x7fff_ffff;
    (i64::from(site_id) << 32) | 0x8000_0000 | days
}

/// How long a mark that failed `failures` times in a row waits before the
/// next try: one minute, doubling, at most an hour.
pub fn retry_delay(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(factor).min(RETRY_MAX)
}

/// What claiming one mark came to.
enum Claimed {
    Done,
    /// Another worker holds it.
    Busy,
    /// Another worker finished it since we listed it.
    Gone,
}

/// Which marks: dirty hours or dirty days.
#[derive(Clone, Copy)]
enum Kind {
    Hour,
    Day,
}

/// The hour or day a mark names.
#[derive(Clone, Copy)]
enum Key {
    Hour(DateTime<Utc>),
    Day(NaiveDate),
}

/// A mark listed as due: the site, its hour or day, and the version it had
/// when listed.
#[derive(Clone, Copy)]
struct Mark {
    site_id: i32,
    key: Key,
    version: i64,
}

impl Mark {
    /// The mark's table and key column.
    fn table(&self) -> (&'static str, &'static str) {
        match self.key {
            Key::Hour(_) => ("rollup_dirty_hours", "bucket"),
            Key::Day(_) => ("rollup_dirty_days", "day"),
        }
    }

    /// The key as a statement parameter.
    fn key_param(&self) -> &(dyn ToSql + Sync) {
        match &self.key {
            Key::Hour(bucket) => bucket,
            Key::Day(day) => day,
        }
    }

    /// The advisory lock that one worker at a time holds to compute it.
    fn lock(&self) -> i64 {
        match self.key {
            Key::Hour(bucket) => hour_lock(self.site_id, bucket),
            Key::Day(day) => day_lock(self.site_id, day),
        }
    }
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

/// The next [`CLAIM_BATCH`] marks of `kind` after `after`, in (key, site)
/// order, that are not waiting for a retry; hours only up to `last_due`
/// (the last hour that has closed).
async fn list_due(
    client: &Client,
    kind: Kind,
    last_due: DateTime<Utc>,
    now: DateTime<Utc>,
    after: Option<Mark>,
) -> Result<Vec<Mark>> {
    let site = after.map(|m| m.site_id);
    let rows = match kind {
        Kind::Hour => {
            let bucket = after.and_then(|m| match m.key {
                Key::Hour(b) => Some(b),
                Key::Day(_) => None,
            });
            client
                .query(
                    "SELECT site_id, bucket, version FROM rollup_dirty_hours
                     WHERE bucket <= $1 AND (retry_at IS NULL OR retry_at <= $3)
                       AND ($4::timestamptz IS NULL OR (bucket, site_id) > ($4, $5))
                     ORDER BY bucket, site_id LIMIT $2",
                    &[&last_due, &CLAIM_BATCH, &now, &bucket, &site],
                )
                .await?
        }
        Kind::Day => {
            let day = after.and_then(|m| match m.key {
                Key::Day(d) => Some(d),
                Key::Hour(_) => None,
            });
            client
                .query(
                    "SELECT site_id, day, version FROM rollup_dirty_days
                     WHERE (retry_at IS NULL OR retry_at <= $2)
                       AND ($3::date IS NULL OR (day, site_id) > ($3, $4))
                     ORDER BY day, site_id LIMIT $1",
                    &[&CLAIM_BATCH, &now, &day, &site],
                )
                .await?
        }
    };
    Ok(rows
        .iter()
        .map(|row| Mark {
            site_id: row.get(0),
            key: match kind {
                Kind::Hour => Key::Hour(row.get(1)),
                Kind::Day => Key::Day(row.get(1)),
            },
            version: row.get(2),
        })
        .collect())
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

/// Deletes a computed mark if it is still the version computed from;
/// otherwise (new rows landed meanwhile) it stays for the next round, with
/// its failure record cleared.
async fn finish(tx: &Transaction<'_>, mark: &Mark) -> Result<()> {
    let ((table, col), key) = (mark.table(), mark.key_param());
    let deleted = tx
        .execute(
            &format!("DELETE FROM {table} WHERE site_id = $1 AND {col} = $2 AND version = $3"),
            &[&mark.site_id, key, &mark.version],
        )
        .await?;
    if deleted == 0 {
        tx.execute(
            &format!(
                "UPDATE {table} SET failures = 0, retry_at = NULL, last_error = NULL \
                 WHERE site_id = $1 AND {col} = $2 AND failures > 0"
            ),
            &[&mark.site_id, key],
        )
        .await?;
    }
    Ok(())
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

/// Records a refused mark: logs the database's words and sets the mark's
/// next try. A lost connection is not the mark's fault: it ends the run.
async fn failed(client: &Client, mark: &Mark, now: DateTime<Utc>, e: Error) -> Result<()> {
    if client.is_closed() {
        return Err(e);
    }
    let ((table, col), key, site_id) = (mark.table(), mark.key_param(), mark.site_id);
    let text = match &e {
        Error::Database(db) => adit_types::pg::describe(db),
        other => other.to_string(),
    };
    let Some(row) = client
        .query_opt(
            &format!(
                "UPDATE {table} SET failures = failures + 1, last_error = $3 \
                 WHERE site_id = $1 AND {col} = $2 RETURNING failures"
            ),
            &[&site_id, key, &text],
        )
        .await?
    else {
        return Ok(()); // another worker has done it since
    };
    let failures: i32 = row.get(0);
    let delay = retry_delay(failures.max(1) as u32);
    let retry_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
    client
        .execute(
            &format!("UPDATE {table} SET retry_at = $3 WHERE site_id = $1 AND {col} = $2"),
            &[&site_id, key, &retry_at],
        )
        .await?;
    match mark.key {
        Key::Hour(bucket) => error!(
            site_id,
            %bucket,
            failures,
            retry_in_s = delay.as_secs(),
            error = %text,
            "The database refused to roll up an hour; it is retried later, the others go on."
        ),
        Key::Day(day) => error!(
            site_id,
            %day,
            failures,
            retry_in_s = delay.as_secs(),
            error = %text,
            "The database refused to roll up a day; it is retried later, the others go on."
        ),
    }
    Ok(())
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

    #[test]
    fn failed_marks_back_off_from_a_minute_to_an_hour() {
        assert_eq!(retry_delay(1), Duration::from_secs(60));
        assert_eq!(retry_delay(2), Duration::from_secs(120));
        assert_eq!(retry_delay(6), Duration::from_secs(1920));
        assert_eq!(retry_delay(7), Duration::from_secs(3600));
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(3600));
        assert_eq!(retry_delay(0), Duration::from_secs(60));
    }
}
