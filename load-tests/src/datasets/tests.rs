//! The generated rows against the shipped declarations, and the properties
//! each dataset's rows are meant to have.

use std::collections::HashMap;

use adit_dataset::{decode, BodyFormat, Catalog, Limits};
use serde_json::Value;

use super::*;

const ROWS: usize = 6_000;
const SEED: u64 = 42;

fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// `rows` rows of `dataset` for site 7, as parsed JSON objects and as one
/// JSON array.
fn generate(dataset: &str, rows: usize, now: i64) -> (Vec<Value>, Vec<u8>) {
    let catalog = Catalog::shipped().unwrap();
    let days = catalog.get(dataset).unwrap().dataset().retention.days;
    let start = start_micros(dataset, rows, now, days).unwrap();
    let mut source = Source::new(dataset, 7, SEED, start).unwrap();
    let body = source.json_array(rows);
    let values: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(values.len(), rows);
    (values, body)
}

fn micros(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_micros()
}

#[test]
fn every_generated_row_decodes_against_its_shipped_declaration() {
    let catalog = Catalog::shipped().unwrap();
    let now = now();
    for d in catalog.iter() {
        assert!(
            GENERATED.contains(&d.name()),
            "{} has no generator",
            d.name()
        );
        let (values, body) = generate(d.name(), ROWS, now);
        let decoded = decode(d, &body, BodyFormat::JsonArray, &Limits::default(), now).unwrap();
        assert!(
            decoded.rejects.is_empty(),
            "{}: {} rejects, first {:?}",
            d.name(),
            decoded.rejects.len(),
            decoded.errors.first()
        );
        assert_eq!(decoded.batch.num_rows(), ROWS, "{}", d.name());
        // No field the declaration does not name (nothing lands in extra).
        for v in &values {
            for field in v.as_object().unwrap().keys() {
                assert!(d.dataset().column(field).is_some(), "{field}");
            }
        }
        // Every row is in the past, within the retention.
        let time = &d.dataset().time_column;
        let earliest = now - d.dataset().retention.micros();
        assert!(values
            .iter()
            .all(|v| (earliest..now).contains(&micros(&v[time]))));
    }
}

#[test]
fn the_same_seed_gives_the_same_rows_and_another_site_others() {
    for dataset in GENERATED {
        let mut a = Source::new(dataset, 3, SEED, 1_751_328_000_000_000).unwrap();
        let mut b = Source::new(dataset, 3, SEED, 1_751_328_000_000_000).unwrap();
        let mut c = Source::new(dataset, 4, SEED, 1_751_328_000_000_000).unwrap();
        let (a, b, c) = (a.json_array(500), b.json_array(500), c.json_array(500));
        assert_eq!(a, b, "{dataset}");
        assert_ne!(a, c, "{dataset}");
    }
}

#[test]
fn service_metrics_have_consistent_figures_and_a_day_shape() {
    let (rows, _) = generate("metrics_aggregated", 60 * series_total(), now());
    let mut series = HashMap::new();
    let (mut spikes, mut bursts) = (0, 0);
    for r in &rows {
        let f = |k: &str| r[k].as_f64().unwrap();
        assert_eq!(micros(&r["timestamp"]) % 60_000_000, 0, "on the minute");
        assert!(f("p95_latency_ms") >= f("avg_latency_ms"), "{r}");
        assert!(f("p99_latency_ms") >= f("p95_latency_ms"), "{r}");
        assert!((0.0..=1.0).contains(&f("error_rate")), "{r}");
        let total = r["total_requests"].as_i64().unwrap();
        assert!((f("qps") * 60.0 - total as f64).abs() <= 0.31, "{r}");
        bursts += usize::from(f("error_rate") >= 0.2);
        let key = (
            r["service_name"].as_str().unwrap().to_string(),
            r["api_endpoint"].as_str().unwrap().to_string(),
        );
        let lat: &mut Vec<f64> = series.entry(key).or_default();
        lat.push(f("avg_latency_ms"));
    }
    assert!((24..=60).contains(&series.len()), "a few dozen series");
    for lat in series.values() {
        let mut sorted = lat.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        spikes += lat.iter().filter(|&&l| l > 2.5 * median).count();
    }
    // Spikes and bursts are occasional: present, but rare.
    assert!(spikes > 0 && spikes < rows.len() / 20, "{spikes} spikes");
    assert!(bursts < rows.len() / 50, "{bursts} bursts");
}

fn series_total() -> usize {
    metrics::series_count()
}

#[test]
fn diurnal_traffic_peaks_in_the_afternoon() {
    assert!(metrics_day_ratio() > 2.0);
}

/// Busiest over quietest hour of a day of generated traffic.
fn metrics_day_ratio() -> f64 {
    let day = 1_751_328_000_000_000; // 2025-07-01T00:00:00Z
    let mut source = Source::new("metrics_aggregated", 1, SEED, day).unwrap();
    let mut per_hour = [0f64; 24];
    for _ in 0..24 * 60 * series_total() {
        let r: Value = serde_json::from_str(&source.next_row()).unwrap();
        let hour = ((micros(&r["timestamp"]) - day) / 3_600_000_000) as usize;
        per_hour[hour] += r["total_requests"].as_f64().unwrap();
    }
    let max = per_hour.iter().cloned().fold(0.0, f64::max);
    let min = per_hour.iter().cloned().fold(f64::MAX, f64::min);
    max / min
}

#[test]
fn bars_are_aligned_consistent_and_some_are_corrected() {
    // Enough minutes for 5m, 1h and 4h bars of every asset.
    let (rows, _) = generate("market_data", 40_000, now());
    let mut seen: HashMap<(String, String, i64), Value> = HashMap::new();
    let mut timeframes = HashMap::new();
    let mut corrected = 0;
    for r in &rows {
        let f = |k: &str| r[k].as_f64().unwrap();
        let tf = r["timeframe"].as_str().unwrap().to_string();
        let step = adit_types::dataset::interval_micros(&tf).unwrap();
        let ts = micros(&r["timestamp"]);
        assert_eq!(ts % step, 0, "aligned to its timeframe: {r}");
        assert!(f("high") >= f("open").max(f("close")).max(f("low")), "{r}");
        assert!(f("low") <= f("open").min(f("close")), "{r}");
        assert!(f("volume") >= 0.0);
        if !r["rsi_14"].is_null() {
            assert!((0.0..=100.0).contains(&f("rsi_14")));
        }
        if !r["bb_upper"].is_null() {
            assert!(f("bb_upper") >= f("bb_middle") && f("bb_middle") >= f("bb_lower"));
        }
        *timeframes.entry(tf.clone()).or_insert(0) += 1;
        let key = (r["asset"].as_str().unwrap().to_string(), tf, ts);
        if let Some(first) = seen.get(&key) {
            // A re-sent bar: same key, new values.
            assert_ne!(first, r, "a correction changes the bar");
            corrected += 1;
        }
        seen.insert(key, r.clone());
    }
    let assets: std::collections::HashSet<_> = seen.keys().map(|k| k.0.clone()).collect();
    assert!((24..=60).contains(&assets.len()), "a few dozen assets");
    for tf in ["1m", "5m", "1h", "4h"] {
        assert!(timeframes.get(tf).is_some_and(|&n| n > 0), "{tf}");
    }
    let share = corrected as f64 / rows.len() as f64;
    assert!((0.01..0.06).contains(&share), "{corrected} corrected bars");
    // Indicators come from the series: most 1m bars carry all of them.
    let full = rows
        .iter()
        .filter(|r| r["timeframe"] == "1m" && !r["bb_lower"].is_null() && !r["rsi_14"].is_null())
        .count();
    assert!(full as f64 > 0.8 * timeframes["1m"] as f64);
}

#[test]
fn daily_bars_close_at_midnight() {
    let day = 1_751_328_000_000_000; // 2025-07-01T00:00:00Z
    let mut source = Source::new("market_data", 1, SEED, day).unwrap();
    let mut daily = Vec::new();
    while daily.len() < market::ASSETS.len() {
        let r: Value = serde_json::from_str(&source.next_row()).unwrap();
        if r["timeframe"] == "1d" {
            daily.push(r);
        }
    }
    assert!(daily.iter().all(|r| micros(&r["timestamp"]) == day));
}

#[test]
fn strategy_runs_and_their_agents_share_execution_ids() {
    let now = now();
    let (runs, _) = generate("strategy_executions", 2_000, now);
    let (agents, _) = generate("agent_analysis_results", 6_000, now);
    let mut by_run: HashMap<&str, Vec<&Value>> = HashMap::new();
    for a in &agents {
        by_run
            .entry(a["execution_id"].as_str().unwrap())
            .or_default()
            .push(a);
        assert!(
            a["signals"].is_object() && a["input_data"].is_object(),
            "{a}"
        );
    }
    let mut matched = 0;
    for r in &runs {
        assert!(r["agent_scores"].is_object());
        let c = r["conviction_score"].as_f64().unwrap();
        match r["signal"].as_str().unwrap() {
            "BUY" => assert!(c > 0.3),
            "SELL" => assert!(c < -0.3),
            _ => assert!((-0.3..=0.3).contains(&c)),
        }
        if let Some(results) = by_run.get(r["execution_id"].as_str().unwrap()) {
            matched += 1;
            assert_eq!(results.len(), 3);
            for a in results {
                let kind = a["agent_type"].as_str().unwrap();
                assert_eq!(a["score"], r["agent_scores"][kind], "{a} / {r}");
            }
        }
    }
    assert!(matched > 1_000, "{matched} runs found in both datasets");
}

#[test]
fn a_span_beyond_the_retention_is_refused() {
    let err = start_micros("metrics_aggregated", 10_000_000, now(), 30).unwrap_err();
    assert!(err.to_string().contains("more sites"), "{err}");
    assert!(Source::new("nope", 1, 1, 0).is_err());
}
