//! The queue of rollup work: dirty marks in `rollup_dirty_hours` and
//! `rollup_dirty_days`, one per site and hour or day, each with a version
//! that new rows bump. Here a run lists the due marks a page at a time,
//! finds the advisory lock of each, deletes a mark once computed (if no
//! rows landed meanwhile), and records a mark the database refused with its
//! next try.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};
use tracing::error;

use crate::{Error, Result};

/// Dirty hours or days fetched per look at the queue.
pub(super) const CLAIM_BATCH: i64 = 200;
const HOUR_SECS: i64 = 3600;
/// First retry of a failed mark, and the longest wait between retries.
const RETRY_FIRST: Duration = Duration::from_secs(60);
const RETRY_MAX: Duration = Duration::from_secs(3600);

/// The advisory lock of a site-hour: the site in the high 32 bits, hours
/// since the epoch in the low 31.
fn hour_lock(site_id: i32, bucket: DateTime<Utc>) -> i64 {
    let hours = bucket.timestamp().div_euclid(HOUR_SECS) & 0x7fff_ffff;
    (i64::from(site_id) << 32) | hours
}

/// The advisory lock of a site-day: as an hour's, with bit 31 set, so a
/// day's lock is never an hour's.
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

/// Which marks: dirty hours or dirty days.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Hour,
    Day,
}

/// The hour or day a mark names.
#[derive(Clone, Copy)]
pub(super) enum Key {
    Hour(DateTime<Utc>),
    Day(NaiveDate),
}

impl Key {
    fn hour(self) -> Option<DateTime<Utc>> {
        match self {
            Self::Hour(bucket) => Some(bucket),
            Self::Day(_) => None,
        }
    }

    fn day(self) -> Option<NaiveDate> {
        match self {
            Self::Day(day) => Some(day),
            Self::Hour(_) => None,
        }
    }
}

/// A mark listed as due: the site, its hour or day, and the version it had
/// when listed.
#[derive(Clone, Copy)]
pub(super) struct Mark {
    pub(super) site_id: i32,
    pub(super) key: Key,
    pub(super) version: i64,
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
    pub(super) fn lock(&self) -> i64 {
        match self.key {
            Key::Hour(bucket) => hour_lock(self.site_id, bucket),
            Key::Day(day) => day_lock(self.site_id, day),
        }
    }
}

/// The next [`CLAIM_BATCH`] marks of `kind` after `after`, in (key, site)
/// order, that are not waiting for a retry; hours only up to `last_due`
/// (the last hour that has closed).
pub(super) async fn list_due(
    client: &Client,
    kind: Kind,
    last_due: DateTime<Utc>,
    now: DateTime<Utc>,
    after: Option<Mark>,
) -> Result<Vec<Mark>> {
    let site = after.map(|m| m.site_id);
    let rows = match kind {
        Kind::Hour => {
            let bucket = after.and_then(|m| m.key.hour());
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
            let day = after.and_then(|m| m.key.day());
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

/// Deletes a computed mark if it is still the version computed from;
/// otherwise (new rows landed meanwhile) it stays for the next round, with
/// its failure record cleared.
pub(super) async fn finish(tx: &Transaction<'_>, mark: &Mark) -> Result<()> {
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

/// Records a refused mark: logs the database's words and sets the mark's
/// next try. A lost connection is not the mark's fault: it ends the run.
pub(super) async fn failed(
    client: &Client,
    mark: &Mark,
    now: DateTime<Utc>,
    e: Error,
) -> Result<()> {
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
