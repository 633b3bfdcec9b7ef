//! Daily range partitions. Partition names come from a typed key (table +
//! UTC day), never from request text; creation goes through the SQL function
//! `adit_ensure_day_partition`, which serialises concurrent creators.

use std::collections::HashSet;
use std::fmt;

use chrono::NaiveDate;
use tokio_postgres::Client;

use crate::Result;

/// Tables partitioned by day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partitioned {
    MinerTelemetry,
    UploadLog,
}

impl Partitioned {
    pub const ALL: [Partitioned; 2] = [Partitioned::MinerTelemetry, Partitioned::UploadLog];

    pub fn table(self) -> &'static str {
        match self {
            Partitioned::MinerTelemetry => "miner_telemetry",
            Partitioned::UploadLog => "upload_log",
        }
    }
}

/// One daily partition: a table and a UTC day (days since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DayPartition {
    pub table: Partitioned,
    pub day: i32,
}

impl DayPartition {
    pub fn date(self) -> NaiveDate {
        NaiveDate::from_num_days_from_ce_opt(self.day + UNIX_EPOCH_DAYS_FROM_CE)
            .expect("day within chrono's range")
    }
}

/// `miner_telemetry_p20261122`: the name `adit_ensure_day_partition` gives.
impl fmt::Display for DayPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_p{}",
            self.table.table(),
            self.date().format("%Y%m%d")
        )
    }
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Remembers which partitions exist so the hot path asks PostgreSQL only
/// the first time it meets a day.
#[derive(Debug, Default)]
pub struct PartitionCache {
    known: HashSet<DayPartition>,
}

impl PartitionCache {
    /// Makes sure every partition in `wanted` exists. Runs outside the flush
    /// transaction so DDL locks are never held across a COPY.
    pub async fn ensure(
        &mut self,
        client: &Client,
        wanted: impl IntoIterator<Item = DayPartition>,
    ) -> Result<()> {
        for p in wanted {
            if self.known.contains(&p) {
                continue;
            }
            client
                .execute(
                    "SELECT adit_ensure_day_partition($1::text::regclass, $2)",
                    &[&p.table.table(), &p.date()],
                )
                .await?;
            self.known.insert(p);
        }
        Ok(())
    }

    /// Forgets everything (after a reconnect, a partition may have been
    /// dropped by retention meanwhile).
    pub fn clear(&mut self) {
        self.known.clear();
    }
}

/// Creates the partitions of every daily table from `days_back` days before
/// `today` to `days_ahead` days after it.
pub async fn ensure_ahead(
    client: &Client,
    today: i32,
    days_back: i32,
    days_ahead: i32,
) -> Result<()> {
    let mut cache = PartitionCache::default();
    let wanted = Partitioned::ALL.into_iter().flat_map(|table| {
        (today - days_back..=today + days_ahead).map(move |day| DayPartition { table, day })
    });
    cache.ensure(client, wanted).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_sql_function() {
        let p = DayPartition {
            table: Partitioned::MinerTelemetry,
            day: 0,
        };
        assert_eq!(p.to_string(), "miner_telemetry_p19700101");
        let p = DayPartition {
            table: Partitioned::UploadLog,
            day: 20_433,
        };
        assert_eq!(p.to_string(), "upload_log_p20251211");
    }
}
