//! adit's rollup stage.
//!
//! Data comes from `miner_telemetry` (written by `writer/`) and the hours
//! the writer marked dirty in `rollup_dirty_hours`; it goes to
//! `miner_telemetry_hourly`, `site_telemetry_hourly` and
//! `miner_telemetry_daily`, which dashboards read instead of raw rows.
//! [`schedule`] claims dirty hours (advisory locks, so several workers in
//! several processes share the backlog without double-counting), recomputes
//! them ([`aggregate`]) and their days; an hour the database refuses is
//! recorded on its mark and retried after a backoff, never blocking the
//! others. [`retention`] drops whole daily partitions past their age and
//! purges the unpartitioned tables (rejects, resolved events, live rows of
//! long-gone miners) in bounded batches.

pub mod aggregate;
pub mod retention;
pub mod schedule;

use std::time::Duration;

use adit_types::pg::DbErrorText;

pub use retention::Purged;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {}", DbErrorText(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("partition {name} does not follow the <table>_pYYYYMMDD naming")]
    PartitionName { name: String },
}

/// Rollup and retention settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupConfig {
    /// How often `adit serve` looks for work (zero: it runs neither
    /// rollups nor retention).
    pub interval: Duration,
    /// How long after an hour ends before it is rolled up (late uploads of
    /// the last minute arrive; clock skew between processes).
    pub grace: Duration,
    /// The collectors' collection interval, for `uptime_pct`.
    pub collection_interval: Duration,
    /// How far back the first counter reading of an hour looks for the
    /// reading it pairs with.
    pub counter_lookback: Duration,
    /// Days kept per daily-partitioned table, by table name.
    pub retention_days: Vec<(&'static str, i32)>,
    /// Days rows of the unpartitioned tables are kept (see [`Purged`]).
    pub purge_days: Vec<(Purged, i32)>,
    /// Rows deleted per statement by a purge, and statements per table per
    /// retention pass (the rest waits for the next pass).
    pub purge_batch_rows: i64,
    pub purge_max_batches: u64,
    /// How often `adit serve` runs retention.
    pub retention_interval: Duration,
}

impl Default for RollupConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            grace: Duration::from_secs(120),
            collection_interval: Duration::from_secs(60),
            counter_lookback: Duration::from_secs(8 * 86_400),
            retention_days: vec![
                ("miner_telemetry", 90),
                ("upload_log", 7),
                ("agent_heartbeats", 7),
            ],
            purge_days: vec![
                (Purged::Rejects, 7),
                (Purged::ResolvedEvents, 30),
                (Purged::MinerLive, 30),
            ],
            purge_batch_rows: 5_000,
            purge_max_batches: 1_000,
            retention_interval: Duration::from_secs(3600),
        }
    }
}

impl RollupConfig {
    /// Days of `table` kept (0 when it has no retention).
    pub fn retention_of(&self, table: &str) -> i32 {
        self.retention_days
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, days)| *days)
    }

    /// Days the rows of `what` are kept (0 when they are not purged).
    pub fn purge_of(&self, what: Purged) -> i32 {
        self.purge_days
            .iter()
            .find(|(p, _)| *p == what)
            .map_or(0, |(_, days)| *days)
    }

    /// Samples a miner sends per hour at the collection interval.
    pub fn expected_samples_per_hour(&self) -> f64 {
        3600.0 / self.collection_interval.as_secs_f64().max(1.0)
    }
}
