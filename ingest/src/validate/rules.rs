//! The bounds a row must respect ([`Rules`], all configurable), the fixed
//! bounds of fields without a configured range, and the time window a
//! sample's `timestamp` must fall in.

use std::time::Duration;

/// The bounds a row must respect; every one can be configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Rows in one upload; a bigger batch is refused whole (413).
    pub max_rows: usize,
    /// Array/object nesting; deeper bodies are refused whole (400).
    pub max_depth: usize,
    pub miner_id_max_chars: usize,
    pub string_max_chars: usize,
    /// For `pool_url` and `error_message`.
    pub long_string_max_chars: usize,
    pub max_temperature_chips: usize,
    pub max_fans: usize,
    pub max_boards: usize,
    pub hashrate_max_ghs: f64,
    pub temperature_min_c: f64,
    pub temperature_max_c: f64,
    pub fan_max_rpm: f64,
    pub power_max_w: f64,
    /// How far ahead of the server clock a `timestamp` may be.
    pub max_future: Duration,
    /// How old a `timestamp` may be (the lateness window).
    pub lateness: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_rows: 20_000,
            max_depth: 64,
            miner_id_max_chars: 64,
            string_max_chars: 256,
            long_string_max_chars: 1024,
            max_temperature_chips: 1024,
            max_fans: 32,
            max_boards: 32,
            hashrate_max_ghs: 1e8,
            temperature_min_c: -40.0,
            temperature_max_c: 250.0,
            fan_max_rpm: 30_000.0,
            power_max_w: 100_000.0,
            max_future: Duration::from_secs(5 * 60),
            lateness: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Upper bounds of fields the spec does not give a range for: generous,
/// but they keep garbage (and overflow) out.
pub(super) const FREQUENCY_MAX_MHZ: f64 = 10_000.0;
pub(super) const EFFICIENCY_MAX: f64 = 100_000.0;
pub(super) const LATENCY_MAX_MS: f64 = 3_600_000.0;
pub(super) const BOARDS_COUNT_MAX: i64 = 1024;

/// Acceptable sample times, Unix microseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) now: i64,
    pub(super) earliest: i64,
    pub(super) latest: i64,
}
