//! What a run measured, in human form and as JSON.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// The dataset loaded (`--dataset`); absent for miner telemetry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    pub model: String,
    pub seconds: f64,
    pub uploads_ok: u64,
    pub uploads_failed: u64,
    /// Open model: uploads never started because too many were in flight.
    pub uploads_not_sent: u64,
    pub retries: u64,
    pub rows_acked: u64,
    pub rows_per_s: f64,
    pub uploads_per_s: f64,
    pub mb_per_s_compressed: f64,
    pub mb_per_s_raw: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_p999: f64,
    pub latency_ms_max: f64,
    /// Final answer of every upload: HTTP status, or `connection_error`/`timeout`.
    pub status_counts: BTreeMap<String, u64>,
    /// CPU the generator itself used (user + system seconds).
    pub generator_cpu_s: f64,
    /// Filled by --verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

impl Report {
    pub fn fill_latency(&mut self, h: &Histogram<u64>) {
        let ms = |v: u64| v as f64 / 1000.0;
        if h.is_empty() {
            return;
        }
        self.latency_ms_p50 = ms(h.value_at_quantile(0.50));
        self.latency_ms_p90 = ms(h.value_at_quantile(0.90));
        self.latency_ms_p99 = ms(h.value_at_quantile(0.99));
        self.latency_ms_p999 = ms(h.value_at_quantile(0.999));
        self.latency_ms_max = ms(h.max());
    }

    pub fn print(&self) {
        let what = match &self.dataset {
            Some(d) => format!("dataset {d}, "),
            None => String::new(),
        };
        println!(
            "{what}{} model, {:.1}s: {} uploads ok, {} failed, {} not sent, {} retries",
            self.model,
            self.seconds,
            self.uploads_ok,
            self.uploads_failed,
            self.uploads_not_sent,
            self.retries
        );
        println!(
            "  {:.0} rows/s ({} rows acked), {:.1} uploads/s, {:.2} MB/s gzip, {:.2} MB/s raw",
            self.rows_per_s,
            self.rows_acked,
            self.uploads_per_s,
            self.mb_per_s_compressed,
            self.mb_per_s_raw
        );
        println!(
            "  latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            self.latency_ms_p50,
            self.latency_ms_p90,
            self.latency_ms_p99,
            self.latency_ms_p999,
            self.latency_ms_max
        );
        let statuses: Vec<String> = self
            .status_counts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!(
            "  answers: {}  | generator CPU {:.2}s",
            statuses.join(", "),
            self.generator_cpu_s
        );
    }
}

/// User + system CPU seconds of this process so far (Linux; 0 elsewhere).
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (USER_HZ = 100).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let mut r = Report::default();
        r.fill_latency(&h);
        assert!(
            (r.latency_ms_p50 - 500.0).abs() < 1.0,
            "{}",
            r.latency_ms_p50
        );
        assert!(
            (r.latency_ms_p99 - 990.0).abs() < 1.0,
            "{}",
            r.latency_ms_p99
        );
        assert!((r.latency_ms_max - 1000.0).abs() < 1.0);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let spin = std::time::Instant::now();
        while spin.elapsed().as_millis() < 30 {}
        assert!(process_cpu_seconds() > 0.0);
    }
}
