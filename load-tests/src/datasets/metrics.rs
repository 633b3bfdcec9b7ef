//! `metrics_aggregated`: one row per service and endpoint per minute. Each
//! series has its own traffic level, latency and error rate; traffic
//! follows the day (busiest mid-afternoon UTC, quietest before dawn);
//! latency rises with load, and now and then a spike multiplies it for a
//! few minutes; errors stay low but burst rarely. `total_requests` is what
//! the minute carried and `qps` is it per second; p95 ≥ average and
//! p99 ≥ p95 always.

use std::collections::VecDeque;
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::RngExt;

use super::{normal, rfc3339, Steps, MICROS_PER_MINUTE};

/// The services a site's monitoring agents report, and their endpoints.
const SERVICES: &[(&str, &[&str])] = &[
    (
        "model-api-v1",
        &[
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/embeddings",
            "/v1/models",
            "/health",
        ],
    ),
    (
        "model-api-v2",
        &["/v2/chat", "/v2/responses", "/v2/embeddings", "/health"],
    ),
    ("embedding-service", &["/embed", "/embed/batch", "/health"]),
    (
        "auth-service",
        &["/oauth/token", "/oauth/introspect", "/users/me", "/health"],
    ),
    (
        "billing-service",
        &["/usage", "/invoices", "/quota", "/health"],
    ),
    ("api-gateway", &["/v1/*", "/v2/*", "/admin/*"]),
    (
        "vector-search",
        &[
            "/collections/{id}/search",
            "/collections/{id}/upsert",
            "/health",
        ],
    ),
    ("moderation-api", &["/v1/moderations", "/health"]),
    ("rate-limiter", &["/check", "/health"]),
    ("model-router", &["/route", "/models/health", "/health"]),
    ("files-api", &["/v1/files", "/v1/files/{id}", "/v1/uploads"]),
    ("tokenizer-service", &["/tokenize", "/detokenize"]),
];

/// Seconds one row aggregates.
const INTERVAL_S: f64 = 60.0;
/// Chance per series and minute that a latency spike starts.
const SPIKE_CHANCE: f64 = 0.004;
/// Chance per series and minute that an error burst starts.
const BURST_CHANCE: f64 = 0.001;

pub(super) fn series_count() -> usize {
    SERVICES.iter().map(|(_, e)| e.len()).sum()
}

#[derive(Debug)]
struct Series {
    service: &'static str,
    endpoint: &'static str,
    /// Requests per second at the day's average.
    base_qps: f64,
    base_latency_ms: f64,
    base_error_rate: f64,
    spike: Option<(u32, f64)>,
    burst: Option<(u32, f64)>,
}

#[derive(Debug)]
pub(super) struct Metrics {
    rng: StdRng,
    series: Vec<Series>,
    minute: i64,
}

impl Metrics {
    pub(super) fn new(mut rng: StdRng, start: i64) -> Self {
        let mut series = Vec::with_capacity(series_count());
        for (service, endpoints) in SERVICES {
            for &endpoint in *endpoints {
                let health = endpoint.ends_with("health");
                series.push(Series {
                    service,
                    endpoint,
                    base_qps: if health {
                        rng.random_range(0.2..2.0)
                    } else {
                        // Log-uniform: a few busy endpoints, many quiet ones.
                        10f64.powf(rng.random_range(-0.5..2.7))
                    },
                    base_latency_ms: if health {
                        rng.random_range(1.0..8.0)
                    } else {
                        10f64.powf(rng.random_range(1.0..3.0))
                    },
                    base_error_rate: rng.random_range(0.0..0.02),
                    spike: None,
                    burst: None,
                });
            }
        }
        Self {
            rng,
            series,
            minute: start.div_euclid(MICROS_PER_MINUTE) * MICROS_PER_MINUTE,
        }
    }
}

/// Traffic relative to the day's average at `t`: 0.5 before dawn, 1.5 mid
/// afternoon (UTC).
fn diurnal(t: i64) -> f64 {
    let hour = t.rem_euclid(86_400_000_000) as f64 / 3_600_000_000.0;
    1.0 + 0.5 * (2.0 * std::f64::consts::PI * (hour - 9.0) / 24.0).sin()
}

impl Steps for Metrics {
    fn step(&mut self, out: &mut VecDeque<String>) {
        let t = self.minute;
        self.minute += MICROS_PER_MINUTE;
        let ts = rfc3339(t);
        let load = diurnal(t);
        let rng = &mut self.rng;
        for s in &mut self.series {
            let rate = s.base_qps * load * (0.1 * normal(rng)).exp();
            let expected = rate * INTERVAL_S;
            let total = (expected + expected.sqrt() * normal(rng)).round().max(0.0) as i64;
            let qps = total as f64 / INTERVAL_S;

            s.spike = match s.spike {
                Some((left, m)) if left > 1 => Some((left - 1, m)),
                Some(_) => None,
                None if rng.random_bool(SPIKE_CHANCE) => {
                    Some((rng.random_range(1..=5), rng.random_range(3.0..10.0)))
                }
                None => None,
            };
            let spike = s.spike.map_or(1.0, |(_, m)| m);
            let avg = s.base_latency_ms * (0.7 + 0.3 * load) * (0.08 * normal(rng)).exp() * spike;
            let avg = round_to(avg, 2);
            let p95 = round_to(avg * rng.random_range(1.6..2.4), 2);
            let p99 = round_to(p95 * rng.random_range(1.15..1.8), 2);

            s.burst = match s.burst {
                Some((left, r)) if left > 1 => Some((left - 1, r)),
                Some(_) => None,
                None if rng.random_bool(BURST_CHANCE) => {
                    Some((rng.random_range(1..=4), rng.random_range(0.2..0.95)))
                }
                None => None,
            };
            let error_rate = match (total, s.burst) {
                (0, _) => 0.0,
                (_, Some((_, r))) => r,
                _ => s.base_error_rate * rng.random_range(0.5..1.5),
            };
            let error_rate = round_to(error_rate.min(1.0), 4);

            let mut row = String::with_capacity(256);
            let _ = write!(
                row,
                r#"{{"timestamp":"{ts}","service_name":"{}","api_endpoint":"{}","qps":{},"avg_latency_ms":{avg},"p95_latency_ms":{p95},"p99_latency_ms":{p99},"error_rate":{error_rate},"total_requests":{total}}}"#,
                s.service,
                s.endpoint,
                round_to(qps, 2),
            );
            out.push_back(row);
        }
    }
}

fn round_to(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}
