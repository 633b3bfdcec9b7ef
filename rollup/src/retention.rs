//! Retention drops whole daily partitions once every row in them is past
//! its age: a partition for day D goes when D + 1 ≤ today − keep_days. A
//! declared dataset's partitions (a day, a week or a month) go the same
//! way once their end is older than the dataset's retention.
//! Partitions are detached CONCURRENTLY (no lock that blocks inserts into
//! other partitions) under a short lock_timeout, then dropped; a drop that
//! cannot get its lock is retried at the next round.
//!
//! Tables that are not partitioned ([`Purged`]) lose their old rows in
//! batches instead: each DELETE takes at most `batch_rows` rows in its own
//! short transaction, under the same lock timeout, and one pass runs at
//! most `max_batches` of them per table (the rest waits for the next pass),
//! so a purge never holds a long lock or a long transaction.

use adit_dataset::Partition;
use adit_types::dataset::Dataset;
use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::Result;

/// An unpartitioned table whose rows expire, and the time they expire by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purged {
    /// `ingest_rejects`, by `received_at`.
    Rejects,
    /// `events` that are resolved, by `resolved_at` (open and acknowledged
    /// events stay however old).
    ResolvedEvents,
    /// `miner_live` rows not written for the age (`updated_at`): miners
    /// long gone.
    MinerLive,
}

impl Purged {
    pub fn table(self) -> &'static str {
        match self {
            Self::Rejects => "ingest_rejects",
            Self::ResolvedEvents => "events",
            Self::MinerLive => "miner_live",
        }
    }
}

/// What one purge of one table did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeStats {
    pub rows: u64,
    /// DELETE statements run.
    pub batches: u64,
}

/// Deletes the rows of `what` older than `keep_days` days at `now`, at most
/// `batch_rows` per statement and `max_batches` statements.
pub async fn purge(
    client: &Client,
    what: Purged,
    keep_days: i32,
    now: DateTime<Utc>,
    batch_rows: i64,
    max_batches: u64,
) -> Result<PurgeStats> {
    let cutoff = now - chrono::Duration::days(i64::from(keep_days.max(0)));
    let batch_rows = batch_rows.max(1);
    let mut stats = PurgeStats::default();
    client.batch_execute("SET lock_timeout = '2s'").await?;
    let result = purge_batches(client, what, cutoff, batch_rows, max_batches, &mut stats).await;
    client.batch_execute("RESET lock_timeout").await?;
    match result {
        Ok(()) => {}
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            warn!(
                table = what.table(),
                "Rows busy; the purge goes on next round."
            );
        }
        Err(e) => return Err(e.into()),
    }
    if stats.rows > 0 {
        info!(
            table = what.table(),
            rows = stats.rows,
            batches = stats.batches,
            keep_days,
            "Purged expired rows."
        );
    }
    Ok(stats)
}

async fn purge_batches(
    client: &Client,
    what: Purged,
    cutoff: DateTime<Utc>,
    batch_rows: i64,
    max_batches: u64,
    stats: &mut PurgeStats,
) -> std::result::Result<(), tokio_postgres::Error> {
    // miner_live walks its primary key from where the last batch stopped.
    let mut after: (i32, String) = (i32::MIN, String::new());
    while stats.batches < max_batches {
        let deleted = match what {
            // Append-only rows: their ctid is stable.
            Purged::Rejects => {
                client
                    .execute(
                        "DELETE FROM ingest_rejects WHERE ctid = ANY(ARRAY(
                         SELECT ctid FROM ingest_rejects WHERE received_at < $1 LIMIT $2))",
                        &[&cutoff, &batch_rows],
                    )
                    .await?
            }
            Purged::ResolvedEvents => {
                client
                    .execute(
                        "DELETE FROM events WHERE id IN (
                         SELECT id FROM events
                         WHERE status = 'resolved' AND resolved_at < $1 LIMIT $2)
                       AND status = 'resolved' AND resolved_at < $1",
                        &[&cutoff, &batch_rows],
                    )
                    .await?
            }
            // The condition is repeated on the deleted row: a miner whose
            // row was rewritten meanwhile is back and stays.
            Purged::MinerLive => {
                let rows = client
                    .query(
                        "WITH doomed AS (
                             SELECT site_id, miner_id FROM miner_live
                             WHERE (site_id, miner_id) > ($2, $3) AND updated_at < $1
                             ORDER BY site_id, miner_id LIMIT $4),
                         deleted AS (
                             DELETE FROM miner_live m USING doomed d
                             WHERE m.site_id = d.site_id AND m.miner_id = d.miner_id
                               AND m.updated_at < $1
                             RETURNING m.site_id)
                         SELECT (SELECT count(*) FROM deleted),
                                (SELECT count(*) FROM doomed),
                                (SELECT site_id FROM doomed ORDER BY site_id DESC, miner_id DESC LIMIT 1),
                                (SELECT miner_id FROM doomed ORDER BY site_id DESC, miner_id DESC LIMIT 1)",
                        &[&cutoff, &after.0, &after.1, &batch_rows],
                    )
                    .await?;
                let row = &rows[0];
                let (deleted, seen): (i64, i64) = (row.get(0), row.get(1));
                stats.batches += 1;
                stats.rows += deleted as u64;
                if seen < batch_rows {
                    return Ok(());
                }
                after = (row.get(2), row.get(3));
                continue;
            }
        };
        stats.batches += 1;
        stats.rows += deleted;
        if deleted < batch_rows as u64 {
            return Ok(());
        }
    }
    Ok(())
}

/// The day a partition named `<table>_pYYYYMMDD` holds.
pub fn partition_day(table: &str, name: &str) -> Option<NaiveDate> {
    let suffix = name.strip_prefix(table)?.strip_prefix("_p")?;
    NaiveDate::parse_from_str(suffix, "%Y%m%d").ok()
}

/// True when every row of the partition for `day` is older than
/// `keep_days` days at `today`.
pub fn is_expired(day: NaiveDate, today: NaiveDate, keep_days: i32) -> bool {
    day + chrono::Days::new(1) <= today - chrono::Days::new(keep_days.max(0) as u64)
}

/// Drops the expired partitions of `table`; returns their names.
pub async fn drop_expired(
    client: &Client,
    table: &str,
    keep_days: i32,
    today: NaiveDate,
) -> Result<Vec<String>> {
    drop_partitions(client, table, |name| {
        partition_day(table, name).map(|day| is_expired(day, today, keep_days))
    })
    .await
}

/// Drops the partitions of dataset `d`'s table whose every row is older
/// than its retention at `now` (whole days, weeks or months, as it is
/// partitioned); returns their names.
pub async fn drop_expired_dataset(
    client: &Client,
    d: &Dataset,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let now_micros = now.timestamp_micros();
    drop_partitions(client, d.table(), |name| {
        Partition::from_name(d.partition, d.table(), name)
            .map(|p| p.is_expired(now_micros, d.retention))
    })
    .await
}

/// Detaches and drops each partition of `table` that `expired` says is
/// (`None`: a partition adit did not name, left alone).
async fn drop_partitions(
    client: &Client,
    table: &str,
    expired: impl Fn(&str) -> Option<bool>,
) -> Result<Vec<String>> {
    let parts = client
        .query(
            "SELECT c.relname::text, i.inhdetachpending FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::text::regclass \
             ORDER BY 1",
            &[&table],
        )
        .await?;
    let mut dropped = Vec::new();
    client.batch_execute("SET lock_timeout = '2s'").await?;
    for row in parts {
        let (name, pending): (String, bool) = (row.get(0), row.get(1));
        let Some(expired) = expired(&name) else {
            warn!(partition = %name, "Skipping a partition adit did not name.");
            continue;
        };
        if !expired {
            continue;
        }
        let (qtable, qname) = (quote(table), quote(&name));
        let detach = if pending {
            format!("ALTER TABLE {qtable} DETACH PARTITION {qname} FINALIZE")
        } else {
            format!("ALTER TABLE {qtable} DETACH PARTITION {qname} CONCURRENTLY")
        };
        let result = async {
            client.batch_execute(&detach).await?;
            client.batch_execute(&format!("DROP TABLE {qname}")).await
        }
        .await;
        match result {
            Ok(()) => {
                info!(partition = %name, "Dropped an expired partition.");
                dropped.push(name);
            }
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                warn!(partition = %name, "Partition busy; will drop it next round.");
            }
            Err(e) => {
                client.batch_execute("RESET lock_timeout").await?;
                return Err(e.into());
            }
        }
    }
    client.batch_execute("RESET lock_timeout").await?;
    Ok(dropped)
}

/// `"name"`: an identifier quoted.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_only_for_their_table() {
        let d = NaiveDate::from_ymd_opt(2026, 8, 24).unwrap();
        assert_eq!(
            partition_day("miner_telemetry", "miner_telemetry_p20260824"),
            Some(d)
        );
        assert_eq!(
            partition_day("upload_log", "miner_telemetry_p20260824"),
            None
        );
        assert_eq!(
            partition_day("miner_telemetry", "miner_telemetry_old"),
            None
        );
    }

    #[test]
    fn expiry_needs_the_whole_day_past_its_age() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        // today - 90 days = 2026-08-24: rows of 08-23 are all older than that.
        assert!(is_expired(day(8, 23), today, 90));
        assert!(!is_expired(day(8, 24), today, 90));
        assert!(!is_expired(today, today, 0));
        assert!(is_expired(day(11, 21), today, 0));
    }
}
