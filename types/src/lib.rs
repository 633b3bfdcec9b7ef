//! The typed sample that crosses from `ingest/` to `writer/`.
//!
//! ingest parses and validates collector JSON into [`Sample`]s (an invalid
//! sample cannot be built past the front door) and explains each refused row
//! with a [`RowError`]; writer encodes samples for binary COPY and answers the
//! upload with an [`UploadSummary`]. Nothing past this crate parses JSON: the
//! unknown fields of a sample travel as one verbatim JSON object text.

pub mod dataset;
pub mod json;
pub mod pg;
mod upload;

pub use upload::{
    parse_idempotency_key, CommitObserver, DatasetRows, Idempotency, Observers, Upload,
    IDEMPOTENCY_LIFETIME, MAX_IDEMPOTENCY_KEY_LEN,
};

use std::fmt::Write as _;

/// A sample's text field. Up to 24 bytes (miner ids, addresses, models,
/// firmware versions: nearly every value collectors send) live inside the
/// sample itself: no allocation when parsed, no pointer to chase when
/// encoded or sorted. Longer ones go to the heap as a `String` would.
pub type Text = compact_str::CompactString;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
/// Microseconds in one UTC day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// One per-miner telemetry sample, validated. Field names follow the
/// edge collectors' upload contract; units are in the names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    /// Sample time, microseconds since the Unix epoch, UTC.
    pub ts_micros: i64,
    pub miner_id: Text,
    pub ip_address: Option<Text>,
    pub online: Option<bool>,
    pub hashrate_ghs: Option<f64>,
    pub hashrate_5s_ghs: Option<f64>,
    pub hashrate_expected_ghs: Option<f64>,
    pub temperature_avg: Option<f32>,
    pub temperature_min: Option<f32>,
    pub temperature_max: Option<f32>,
    pub temperature_chips: Option<Vec<f32>>,
    pub fan_speeds: Option<Vec<i32>>,
    pub frequency_avg: Option<f32>,
    pub accepted_shares: Option<i64>,
    pub rejected_shares: Option<i64>,
    pub hardware_errors: Option<i64>,
    pub uptime_seconds: Option<i64>,
    pub power_consumption: Option<f32>,
    pub efficiency: Option<f32>,
    pub pool_url: Option<Text>,
    pub worker_name: Option<Text>,
    pub pool_latency_ms: Option<f32>,
    pub boards: Option<Boards>,
    pub boards_total: Option<i16>,
    pub boards_healthy: Option<i16>,
    pub overall_health: Option<Text>,
    pub model: Option<Text>,
    pub firmware_version: Option<Text>,
    pub error_message: Option<Text>,
    pub latency_ms: Option<f32>,
    /// Fields the contract does not name, kept as one JSON object text.
    pub extra: Option<String>,
}

impl Sample {
    /// The UTC day the sample belongs to, as days since the Unix epoch.
    pub fn day(&self) -> i32 {
        day_of(self.ts_micros)
    }
}

/// UTC day (days since the Unix epoch) of a Unix-epoch microsecond time.
pub fn day_of(ts_micros: i64) -> i32 {
    ts_micros.div_euclid(MICROS_PER_DAY) as i32
}

/// One hash board of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Board {
    pub id: Option<i16>,
    pub hashrate: Option<f32>,
    pub temp: Option<f32>,
    pub chips_ok: Option<i16>,
    pub chips_total: Option<i16>,
}

/// The hash boards of a sample in array order: one allocation for all of
/// them (four parallel vectors cost four allocations per row, 3-4 % of
/// adit's CPU under load). COPY still stores them as parallel arrays, the
/// layout that COPYs fastest (arrays 7.4 s vs JSONB 14.1 s per
/// million rows).
pub type Boards = Vec<Board>;

/// Whether the boards' ids are simply 0, 1, 2, … (the usual case): then
/// `board_ids` stores NULL rather than the obvious.
pub fn implicit_board_ids(boards: &[Board]) -> bool {
    boards
        .iter()
        .enumerate()
        .all(|(i, b)| b.id == Some(i as i16))
}

/// Why one row of a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Position of the row in the uploaded array, from 0.
    pub index: u32,
    /// The offending field, or `"row"` when the row as a whole is wrong.
    pub field: String,
    pub reason: String,
}

/// A refused row as the rejects table keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub error: RowError,
    /// The row exactly as it was sent.
    pub raw_json: String,
}

/// Most row errors one answer lists (the first 100).
pub const MAX_LISTED_ERRORS: usize = 100;

/// The counts an upload is answered with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadSummary {
    pub processed: u32,
    pub online: u32,
    pub offline: u32,
    pub rejected: u32,
    /// The first [`MAX_LISTED_ERRORS`] row errors.
    pub errors: Vec<RowError>,
}

impl UploadSummary {
    /// The 200 answer of an upload, byte for byte what a retry gets back.
    pub fn render(&self, processing_time_ms: u64) -> String {
        let mut out = String::with_capacity(128 + self.errors.len() * 96);
        let _ = write!(
            out,
            r#"{{"success":true,"data":{{"processed":{},"online":{},"offline":{},"rejected":{},"processing_time_ms":{},"errors":["#,
            self.processed, self.online, self.offline, self.rejected, processing_time_ms
        );
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, r#"{{"index":{},"field":"#, e.index);
            push_json_string(&mut out, &e.field);
            out.push_str(r#","reason":"#);
            push_json_string(&mut out, &e.reason);
            out.push('}');
        }
        out.push_str("]}}");
        out
    }

    /// The 200 answer of a dataset upload (no online/offline).
    pub fn render_dataset(&self, processing_time_ms: u64) -> String {
        dataset::render_answer(
            self.processed,
            self.rejected,
            processing_time_ms,
            &self.errors,
        )
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The columns of `miner_telemetry` that hold a [`Sample`], in the order
/// the writer's COPY encoder writes them and the archive reads them back
/// (a macro so that `concat!` can extend it).
#[macro_export]
macro_rules! telemetry_columns {
    () => {
        "ts, site_id, miner_id, ip_address, online, \
hashrate_ghs, hashrate_5s_ghs, hashrate_expected_ghs, temperature_avg, temperature_min, \
temperature_max, temperature_chips, fan_speeds, frequency_avg, accepted_shares, \
rejected_shares, hardware_errors, uptime_seconds, power_consumption, efficiency, pool_url, \
worker_name, pool_latency_ms, board_ids, board_hashrate, board_temp, board_chips_ok, \
board_chips_total, boards_total, boards_healthy, overall_health, model, firmware_version, \
error_message, latency_ms, extra"
    };
}

/// [`telemetry_columns!`] as a constant.
pub const TELEMETRY_COLUMNS: &str = telemetry_columns!();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_of_handles_times_before_the_epoch() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(MICROS_PER_DAY - 1), 0);
        assert_eq!(day_of(MICROS_PER_DAY), 1);
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn summary_renders_the_contract_shape_with_escaped_errors() {
        let s = UploadSummary {
            processed: 2,
            online: 1,
            offline: 1,
            rejected: 1,
            errors: vec![RowError {
                index: 3,
                field: "miner_id".into(),
                reason: "has a \"control\" char\n".into(),
            }],
        };
        assert_eq!(
            s.render(7),
            r#"{"success":true,"data":{"processed":2,"online":1,"offline":1,"rejected":1,"processing_time_ms":7,"errors":[{"index":3,"field":"miner_id","reason":"has a \"control\" char\n"}]}}"#
        );
    }
}
