//! Realistic rows for every shipped dataset, deterministic from a seed and
//! a site: per-service API metrics with diurnal traffic, latency spikes and
//! error bursts (`metrics_aggregated`); OHLCV bars of a few dozen assets at
//! every timeframe with indicators computed from the series and a share of
//! bars sent first as a preliminary version and again corrected
//! (`market_data`); strategy runs and their agents' analyses with their JSON
//! columns (`strategy_executions`, `agent_analysis_results`, the same runs);
//! host inventory snapshots with rare hardware, address and OS changes
//! (`inventory`).
//!
//! A [`Source`] yields one JSON object per row, in time order (a corrected
//! bar comes a few minutes after its first version). Rows start at
//! [`start_micros`] and end before the time it was given, so they fall in
//! the dataset's retention and never in the future.

mod agents;
pub mod copyfile;
mod inventory;
mod market;
mod metrics;
pub mod verify;

use std::collections::VecDeque;

use anyhow::bail;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The datasets this module generates rows for: the shipped ones.
pub const GENERATED: [&str; 5] = [
    "metrics_aggregated",
    "market_data",
    "agent_analysis_results",
    "strategy_executions",
    "inventory",
];

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A stream of generated rows, each a JSON object.
pub trait Steps: Send {
    /// Pushes the rows of the next time step (one minute) onto `out`.
    fn step(&mut self, out: &mut VecDeque<String>);
}

/// Rows of one dataset for one site.
pub struct Source {
    steps: Box<dyn Steps>,
    queue: VecDeque<String>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl Source {
    /// The rows of `dataset` for `site_id`, from `start` (Unix
    /// microseconds; see [`start_micros`]).
    pub fn new(dataset: &str, site_id: i32, seed: u64, start: i64) -> anyhow::Result<Self> {
        let rng = StdRng::seed_from_u64(
            seed ^ (site_id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xda7a,
        );
        let steps: Box<dyn Steps> = match dataset {
            "metrics_aggregated" => Box::new(metrics::Metrics::new(rng, start)),
            "market_data" => Box::new(market::Market::new(rng, start)),
            "agent_analysis_results" => Box::new(agents::Agents::new(rng, start, false)),
            "strategy_executions" => Box::new(agents::Agents::new(rng, start, true)),
            "inventory" => Box::new(inventory::Inventory::new(rng, start)),
            other => bail!(
                "no generator for dataset {other:?}; generated: {}",
                GENERATED.join(", ")
            ),
        };
        Ok(Self {
            steps,
            queue: VecDeque::new(),
        })
    }

    /// The next row, a JSON object.
    pub fn next_row(&mut self) -> String {
        loop {
            if let Some(row) = self.queue.pop_front() {
                return row;
            }
            self.steps.step(&mut self.queue);
        }
    }

    /// The next `rows` rows as NDJSON: one object per line.
    pub fn ndjson(&mut self, rows: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(rows * 400);
        for _ in 0..rows {
            out.extend_from_slice(self.next_row().as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// The next `rows` rows as one JSON array (an upload body).
    pub fn json_array(&mut self, rows: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(rows * 400 + 2);
        out.push(b'[');
        for i in 0..rows {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.next_row().as_bytes());
        }
        out.push(b']');
        out
    }
}

/// Fewest rows a site's stream has per minute: what bounds its time span.
fn min_rows_per_minute(dataset: &str) -> anyhow::Result<f64> {
    Ok(match dataset {
        "metrics_aggregated" => metrics::series_count() as f64,
        "market_data" => market::ASSETS.len() as f64,
        "agent_analysis_results" => 3.0 * agents::executions_per_minute(),
        "strategy_executions" => agents::executions_per_minute(),
        "inventory" => (inventory::HOSTS / inventory::EVERY_MINUTES) as f64,
        other => bail!(
            "no generator for dataset {other:?}; generated: {}",
            GENERATED.join(", ")
        ),
    })
}

/// Where a site's stream of `rows` rows starts so that it ends before
/// `now` (Unix microseconds): at a whole day for `market_data` (so its
/// daily bars are whole), at a whole minute otherwise. Refuses a span
/// longer than `retention_days` allows (spread the rows over more sites).
pub fn start_micros(
    dataset: &str,
    rows: usize,
    now: i64,
    retention_days: u32,
) -> anyhow::Result<i64> {
    let minutes = (rows as f64 / min_rows_per_minute(dataset)?).ceil() as i64 + 1;
    let mut start = now - minutes * MICROS_PER_MINUTE;
    start = match dataset {
        "market_data" => start.div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY,
        _ => start.div_euclid(MICROS_PER_MINUTE) * MICROS_PER_MINUTE,
    };
    let earliest = now - i64::from(retention_days) * MICROS_PER_DAY + MICROS_PER_DAY;
    if start < earliest {
        bail!(
            "{rows} rows of {dataset} for one site span more than its retention \
             ({retention_days} days): spread them over more sites"
        );
    }
    Ok(start)
}

/// `t` (Unix microseconds) as RFC 3339 UTC, to the second when it is a
/// whole second, else to the microsecond.
pub(crate) fn rfc3339(t: i64) -> String {
    let at = chrono::DateTime::from_timestamp_micros(t).expect("time in range");
    let format = if t % 1_000_000 == 0 {
        chrono::SecondsFormat::Secs
    } else {
        chrono::SecondsFormat::Micros
    };
    at.to_rfc3339_opts(format, true)
}

/// A standard normal draw (Box–Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A version-4 UUID drawn from `rng`.
pub(crate) fn uuid(rng: &mut StdRng) -> String {
    let x: u128 = rng.random();
    let x = (x & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests;
