//! adit's rollup stage (not built yet): hourly and daily aggregates from
//! `miner_telemetry`, partition lifecycle and retention. Until it lands,
//! `adit serve` keeps daily partitions ready ahead of time itself
//! (`adit_writer::partition::ensure_ahead`) and nothing is dropped.
