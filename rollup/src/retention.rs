//! Retention drops whole daily partitions once every row in them is past
//! its age: a partition for day D goes when D + 1 ≤ today − keep_days.
//! Partitions are detached CONCURRENTLY (no lock that blocks inserts into
//! other partitions) under a short lock_timeout, then dropped; a drop that
//! cannot get its lock is retried at the next round.

use chrono::NaiveDate;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::Result;

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
        let Some(day) = partition_day(table, &name) else {
            warn!(partition = %name, "Skipping a partition adit did not name.");
            continue;
        };
        if !is_expired(day, today, keep_days) {
            continue;
        }
        let detach = if pending {
            format!("ALTER TABLE {table} DETACH PARTITION {name} FINALIZE")
        } else {
            format!("ALTER TABLE {table} DETACH PARTITION {name} CONCURRENTLY")
        };
        let result = async {
            client.batch_execute(&detach).await?;
            client.batch_execute(&format!("DROP TABLE {name}")).await
        }
        .await;
        match result {
            Ok(()) => {
                info!(partition = %name, keep_days, "Dropped an expired partition.");
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
