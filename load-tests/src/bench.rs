//! The `make bench` report: the load runs' JSON reports (closed-model end
//! to end, half its rate, front door alone, 3x overload), the raw COPY
//! rates, peak RSS, adit's CPU ticks, the criterion summary and the edge
//! collector's cycles (when run) become `latest.json` and one printed table. Also the small sums the bench
//! script needs between runs (a raw COPY rate, a load run's rate scaled).
//! The per-dataset step (raw COPY of a dataset's rows against `adit load
//! --dataset` of the same rows) adds its figures when it ran.
//!
//! The keys of `latest.json` are read by people and scripts comparing runs:
//! each keeps its name and meaning.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

/// The figures a load run's JSON report (`adit load --json-report`) gives
/// the bench report.
#[derive(Debug, Clone, Deserialize)]
pub struct LoadFigures {
    pub rows_per_s: f64,
    pub uploads_per_s: f64,
    pub rows_acked: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    #[serde(default)]
    pub status_counts: BTreeMap<String, u64>,
    #[serde(default)]
    pub verified: Option<bool>,
}

/// The load runs of one bench, as `<dir>/{e2e,half,frontdoor,overload}.json`,
/// and the criterion summary `<dir>/criterion.json`.
#[derive(Debug, Clone)]
pub struct Runs {
    pub e2e: LoadFigures,
    pub half: LoadFigures,
    pub frontdoor: LoadFigures,
    pub overload: LoadFigures,
    /// Benchmark id → its figures (`rows_per_s`, `mean_ns`, …), as
    /// `benches/summarize.py` writes them; empty without criterion.
    pub criterion: BTreeMap<String, serde_json::Value>,
    /// The edge collector's cycle over a healthy simulated farm
    /// (`<dir>/collector.json`) and over one with dead, slow and malformed
    /// miners (`<dir>/collector-faults.json`); `None` when not run.
    pub collector: Option<CollectorFigures>,
    pub collector_faults: Option<CollectorFigures>,
    /// The per-dataset step, by dataset (only those it ran for).
    pub datasets: BTreeMap<String, DatasetRun>,
    /// metrics_aggregated end to end again with enabled alert rules
    /// (`<dir>/dataset-metrics_aggregated-rules.json` and `…-rules-raw.json`);
    /// `None` when not run.
    pub alert_rules: Option<AlertRulesRun>,
}

/// What the bench script measured around the rules-on run.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertRulesMeasured {
    /// Enabled alert rules during the run.
    pub rules: u64,
    /// adit's user + system clock ticks during the run.
    #[serde(default)]
    pub adit_cpu_ticks: Option<u64>,
}

/// The metrics_aggregated upload path with alert rules evaluated on every
/// committed row: the same rows as the rules-off run, same server settings.
#[derive(Debug, Clone)]
pub struct AlertRulesRun {
    pub measured: AlertRulesMeasured,
    pub e2e: LoadFigures,
}

/// The datasets make bench measures: one append, one upsert.
pub const BENCH_DATASETS: [&str; 2] = ["metrics_aggregated", "market_data"];

/// What the bench script measured for one dataset
/// (`<dir>/dataset-<name>-raw.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct DatasetMeasured {
    /// Best raw psql binary COPY rate of the rows (an upsert dataset: into
    /// the staging table plus the same INSERT … ON CONFLICT), rows/s.
    pub raw_rows_per_s: u64,
    /// adit's user + system clock ticks during the end-to-end run; absent
    /// when it did not run.
    #[serde(default)]
    pub adit_cpu_ticks: Option<u64>,
    /// Why the end-to-end run was skipped (the server has no dataset
    /// upload endpoint).
    #[serde(default)]
    pub skipped: Option<String>,
}

/// One dataset's step: the raw COPY and, when it ran, the `adit load
/// --dataset` report (`<dir>/dataset-<name>.json`).
#[derive(Debug, Clone)]
pub struct DatasetRun {
    pub measured: DatasetMeasured,
    pub e2e: Option<LoadFigures>,
}

/// What `collector-cycle` (benches/src/bin) measured: polling cycles of a
/// simulated farm on one core.
#[derive(Debug, Clone, Deserialize)]
pub struct CollectorFigures {
    pub miners: u64,
    pub cycles: u64,
    pub cycle_s_median: f64,
    pub cycle_s_max: f64,
    pub cpu_s_per_cycle_median: f64,
    pub online_median: u64,
    pub offline_median: u64,
}

/// What the bench script measured itself.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Best raw psql binary COPY rate, 1 stream and 2 streams (rows/s).
    pub raw_1: u64,
    pub raw_2: u64,
    /// adit's peak RSS (VmHWM, MiB) over the end-to-end and half-rate runs.
    pub rss_mib: f64,
    /// adit's peak RSS (MiB) under the 3x overload.
    pub over_rss_mib: f64,
    /// adit's user + system clock ticks (1/100 s) during the end-to-end run.
    pub cpu_ticks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
}

/// `latest.json`, key for key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latest {
    pub raw_copy_rows_per_s: u64,
    pub raw_copy_rows_per_s_1_stream: u64,
    pub raw_copy_rows_per_s_2_streams: u64,
    pub e2e_rows_per_s: i64,
    pub e2e_ratio: f64,
    pub e2e_p50_ms: f64,
    pub e2e_p99_ms: f64,
    pub e2e_verified: Option<bool>,
    pub adit_cpu_s_per_million_rows: f64,
    pub front_door_rows_per_s: i64,
    pub half_max_rate_uploads_per_s: f64,
    pub p50_ms_at_half_max: f64,
    pub p99_ms_at_half_max: f64,
    pub peak_rss_mib: f64,
    pub overload_offered_uploads_per_s: f64,
    pub overload_peak_rss_mib: f64,
    pub overload_acked_rows_per_s: i64,
    pub overload_shed_fraction: f64,
    pub overload_verified: Option<bool>,
    pub parquet_rows_per_s_per_core: Option<f64>,
    /// Miners polled per collector cycle (one core), and the median cycle
    /// time and collector CPU per cycle over a healthy farm and over one
    /// with faulty miners (and how many of those were offline).
    pub collector_miners: Option<u64>,
    pub collector_cycle_s: Option<f64>,
    pub collector_cpu_s_per_cycle: Option<f64>,
    pub collector_cycle_s_with_faults: Option<f64>,
    pub collector_cpu_s_per_cycle_with_faults: Option<f64>,
    pub collector_offline_with_faults: Option<u64>,
    /// Per dataset (append `metrics_aggregated`, upsert `market_data`):
    /// adit end to end rows/s, raw psql binary COPY of the same rows
    /// (upsert: staging COPY + the same INSERT … ON CONFLICT), their ratio,
    /// adit CPU per million rows, whether --verify passed; null when the
    /// step (or its end-to-end run) did not run.
    pub dataset_metrics_aggregated_rows_per_s: Option<i64>,
    pub dataset_metrics_aggregated_raw_rows_per_s: Option<u64>,
    pub dataset_metrics_aggregated_ratio: Option<f64>,
    pub dataset_metrics_aggregated_cpu_s_per_million_rows: Option<f64>,
    pub dataset_metrics_aggregated_verified: Option<bool>,
    pub dataset_market_data_rows_per_s: Option<i64>,
    pub dataset_market_data_raw_rows_per_s: Option<u64>,
    pub dataset_market_data_ratio: Option<f64>,
    pub dataset_market_data_cpu_s_per_million_rows: Option<f64>,
    pub dataset_market_data_verified: Option<bool>,
    /// metrics_aggregated end to end with this many enabled alert rules,
    /// its rate, its ratio to the rules-off run of the same rows, adit CPU
    /// per million rows, whether --verify passed; null when not run.
    pub dataset_metrics_aggregated_alert_rules: Option<u64>,
    pub dataset_metrics_aggregated_rules_on_rows_per_s: Option<i64>,
    pub dataset_metrics_aggregated_rules_on_ratio: Option<f64>,
    pub dataset_metrics_aggregated_rules_on_cpu_s_per_million_rows: Option<f64>,
    pub dataset_metrics_aggregated_rules_on_verified: Option<bool>,
    pub criterion: BTreeMap<String, serde_json::Value>,
    pub machine: Machine,
    pub timestamp: String,
}

/// The criterion benchmark whose rate is the archive's Parquet encoding.
const PARQUET_BENCH: &str = "parquet_encode/10k";

/// Reads `<dir>`'s run reports.
pub fn read_runs(dir: &Path) -> anyhow::Result<Runs> {
    Ok(Runs {
        e2e: read_json(&dir.join("e2e.json"))?,
        half: read_json(&dir.join("half.json"))?,
        frontdoor: read_json(&dir.join("frontdoor.json"))?,
        overload: read_json(&dir.join("overload.json"))?,
        criterion: read_json(&dir.join("criterion.json"))?,
        collector: read_optional(&dir.join("collector.json"))?,
        collector_faults: read_optional(&dir.join("collector-faults.json"))?,
        datasets: read_datasets(dir)?,
        alert_rules: read_alert_rules(dir)?,
    })
}

/// The rules-on run's files, when both are there.
fn read_alert_rules(dir: &Path) -> anyhow::Result<Option<AlertRulesRun>> {
    let measured = read_optional(&dir.join("dataset-metrics_aggregated-rules-raw.json"))?;
    let e2e = read_optional(&dir.join("dataset-metrics_aggregated-rules.json"))?;
    Ok(measured
        .zip(e2e)
        .map(|(measured, e2e)| AlertRulesRun { measured, e2e }))
}

/// The rules-on figures: rules, rows/s, ratio to rules off, CPU s per
/// million rows, verified.
type RulesFigures = (
    Option<u64>,
    Option<i64>,
    Option<f64>,
    Option<f64>,
    Option<bool>,
);

fn rules_figures(runs: &Runs) -> RulesFigures {
    let Some(r) = &runs.alert_rules else {
        return (None, None, None, None, None);
    };
    let off = runs
        .datasets
        .get("metrics_aggregated")
        .and_then(|d| d.e2e.as_ref())
        .map(|e| e.rows_per_s)
        .filter(|&v| v > 0.0);
    (
        Some(r.measured.rules),
        Some(round_int(r.e2e.rows_per_s)),
        off.map(|off| round_to(r.e2e.rows_per_s / off, 3)),
        r.measured
            .adit_cpu_ticks
            .map(|t| round_to(t as f64 / 100.0 / r.e2e.rows_acked.max(1) as f64 * 1e6, 2)),
        r.e2e.verified,
    )
}

/// The per-dataset step's files that are there.
fn read_datasets(dir: &Path) -> anyhow::Result<BTreeMap<String, DatasetRun>> {
    let mut out = BTreeMap::new();
    for name in BENCH_DATASETS {
        let Some(measured) = read_optional(&dir.join(format!("dataset-{name}-raw.json")))? else {
            continue;
        };
        let e2e = read_optional(&dir.join(format!("dataset-{name}.json")))?;
        out.insert(name.to_string(), DatasetRun { measured, e2e });
    }
    Ok(out)
}

/// One dataset's figures for `latest.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct DatasetFigures {
    rows_per_s: Option<i64>,
    raw_rows_per_s: Option<u64>,
    ratio: Option<f64>,
    cpu_s_per_million_rows: Option<f64>,
    verified: Option<bool>,
}

fn dataset_figures(runs: &Runs, name: &str) -> DatasetFigures {
    let Some(run) = runs.datasets.get(name) else {
        return DatasetFigures::default();
    };
    let raw = run.measured.raw_rows_per_s;
    let e2e = run.e2e.as_ref();
    DatasetFigures {
        rows_per_s: e2e.map(|e| round_int(e.rows_per_s)),
        raw_rows_per_s: Some(raw),
        ratio: e2e
            .filter(|_| raw > 0)
            .map(|e| round_to(e.rows_per_s / raw as f64, 3)),
        cpu_s_per_million_rows: e2e
            .zip(run.measured.adit_cpu_ticks)
            .map(|(e, ticks)| round_to(ticks as f64 / 100.0 / e.rows_acked.max(1) as f64 * 1e6, 2)),
        verified: e2e.and_then(|e| e.verified),
    }
}

/// Builds `latest.json` from the runs and what the script measured.
pub fn build(
    runs: &Runs,
    m: Measured,
    machine: Machine,
    timestamp: String,
) -> anyhow::Result<Latest> {
    let raw = m.raw_1.max(m.raw_2);
    if raw == 0 {
        bail!("no raw COPY rate: --raw-1 and --raw-2 are both 0");
    }
    let (e2e, half, over) = (&runs.e2e, &runs.half, &runs.overload);
    let cpu_s = m.cpu_ticks as f64 / 100.0;
    let metrics = dataset_figures(runs, "metrics_aggregated");
    let market = dataset_figures(runs, "market_data");
    let rules = rules_figures(runs);
    Ok(Latest {
        raw_copy_rows_per_s: raw,
        raw_copy_rows_per_s_1_stream: m.raw_1,
        raw_copy_rows_per_s_2_streams: m.raw_2,
        e2e_rows_per_s: round_int(e2e.rows_per_s),
        e2e_ratio: round_to(e2e.rows_per_s / raw as f64, 3),
        e2e_p50_ms: e2e.latency_ms_p50,
        e2e_p99_ms: e2e.latency_ms_p99,
        e2e_verified: e2e.verified,
        adit_cpu_s_per_million_rows: round_to(cpu_s / e2e.rows_acked.max(1) as f64 * 1e6, 2),
        front_door_rows_per_s: round_int(runs.frontdoor.rows_per_s),
        half_max_rate_uploads_per_s: half.uploads_per_s,
        p50_ms_at_half_max: half.latency_ms_p50,
        p99_ms_at_half_max: half.latency_ms_p99,
        peak_rss_mib: m.rss_mib.max(m.over_rss_mib),
        overload_offered_uploads_per_s: round_to(e2e.uploads_per_s * 3.0, 2),
        overload_peak_rss_mib: m.over_rss_mib,
        overload_acked_rows_per_s: round_int(over.rows_per_s),
        overload_shed_fraction: round_to(shed_fraction(over), 3),
        overload_verified: over.verified,
        parquet_rows_per_s_per_core: runs
            .criterion
            .get(PARQUET_BENCH)
            .and_then(|b| b.get("rows_per_s"))
            .and_then(serde_json::Value::as_f64),
        collector_miners: runs.collector.as_ref().map(|c| c.miners),
        collector_cycle_s: runs.collector.as_ref().map(|c| c.cycle_s_median),
        collector_cpu_s_per_cycle: runs.collector.as_ref().map(|c| c.cpu_s_per_cycle_median),
        collector_cycle_s_with_faults: runs.collector_faults.as_ref().map(|c| c.cycle_s_median),
        collector_cpu_s_per_cycle_with_faults: runs
            .collector_faults
            .as_ref()
            .map(|c| c.cpu_s_per_cycle_median),
        collector_offline_with_faults: runs.collector_faults.as_ref().map(|c| c.offline_median),
        dataset_metrics_aggregated_rows_per_s: metrics.rows_per_s,
        dataset_metrics_aggregated_raw_rows_per_s: metrics.raw_rows_per_s,
        dataset_metrics_aggregated_ratio: metrics.ratio,
        dataset_metrics_aggregated_cpu_s_per_million_rows: metrics.cpu_s_per_million_rows,
        dataset_metrics_aggregated_verified: metrics.verified,
        dataset_market_data_rows_per_s: market.rows_per_s,
        dataset_market_data_raw_rows_per_s: market.raw_rows_per_s,
        dataset_market_data_ratio: market.ratio,
        dataset_market_data_cpu_s_per_million_rows: market.cpu_s_per_million_rows,
        dataset_market_data_verified: market.verified,
        dataset_metrics_aggregated_alert_rules: rules.0,
        dataset_metrics_aggregated_rules_on_rows_per_s: rules.1,
        dataset_metrics_aggregated_rules_on_ratio: rules.2,
        dataset_metrics_aggregated_rules_on_cpu_s_per_million_rows: rules.3,
        dataset_metrics_aggregated_rules_on_verified: rules.4,
        criterion: runs.criterion.clone(),
        machine,
        timestamp,
    })
}

/// The collector rows' note: the farm's size and the target (well inside the
/// default 60 s interval), and with `"offline"` how many miners the cycle
/// reported offline.
fn collector_note(c: Option<&CollectorFigures>, what: &str) -> String {
    match c {
        None => String::new(),
        Some(c) if what == "offline" => format!(
            "{} miners, {} offline; max {:.1} s; target < 60",
            thousands(c.miners as f64),
            c.offline_median,
            c.cycle_s_max
        ),
        Some(c) => format!(
            "{} miners, {} cycles, max {:.2} s; target < 60",
            thousands(c.miners as f64),
            c.cycles,
            c.cycle_s_max
        ),
    }
}

/// Share of the overload run's uploads answered 503 (shed).
fn shed_fraction(over: &LoadFigures) -> f64 {
    let sent = over.status_counts.values().sum::<u64>().max(1);
    *over.status_counts.get("503").unwrap_or(&0) as f64 / sent as f64
}

/// The printed table: one line per measure, with its target or context.
pub fn table(latest: &Latest, runs: &Runs) -> String {
    let l = latest;
    let verified = |v: Option<bool>, yes: &str, no: &str| match v {
        Some(true) => yes.to_string(),
        _ => no.to_string(),
    };
    let over_note = format!(
        "{:.0} uploads/s offered, {:.0}% shed with 503, {}",
        l.overload_offered_uploads_per_s,
        shed_fraction(&runs.overload) * 100.0,
        verified(l.overload_verified, "acked verified", "NOT VERIFIED"),
    );
    let num = |v: f64| Some(v);
    let mut rows: Vec<(String, Option<f64>, String)> = vec![
        row(
            "raw psql binary COPY, best (rows/s)",
            num(l.raw_copy_rows_per_s as f64),
            format!(
                "1 stream {}, 2 streams {}",
                thousands(l.raw_copy_rows_per_s_1_stream as f64),
                thousands(l.raw_copy_rows_per_s_2_streams as f64)
            ),
        ),
        row(
            "adit end to end (rows/s)",
            num(l.e2e_rows_per_s as f64),
            verified(l.e2e_verified, "verified", "NOT VERIFIED"),
        ),
        row("e2e ratio to raw COPY", num(l.e2e_ratio), "target >= 0.8"),
        row(
            "front door alone (rows/s)",
            num(l.front_door_rows_per_s as f64),
            "target >= 250,000",
        ),
        row(
            "p50 ms at half max",
            num(l.p50_ms_at_half_max),
            format!("at {:.1} uploads/s", runs.half.uploads_per_s),
        ),
        row(
            "p99 ms at half max",
            num(l.p99_ms_at_half_max),
            "target <= 200",
        ),
        row("peak RSS MiB", num(l.peak_rss_mib), "target <= 1024"),
        row(
            "  at 3x max offered load",
            num(l.overload_peak_rss_mib),
            over_note,
        ),
        row(
            "  acked rows/s under overload",
            num(l.overload_acked_rows_per_s as f64),
            "",
        ),
        row(
            "adit CPU s per million rows (e2e)",
            num(l.adit_cpu_s_per_million_rows),
            "user+sys",
        ),
        row("Parquet rows/s per core", l.parquet_rows_per_s_per_core, ""),
        row(
            "collector cycle s, healthy farm (1 core)",
            l.collector_cycle_s,
            collector_note(runs.collector.as_ref(), "median"),
        ),
        row(
            "  collector CPU s per cycle",
            l.collector_cpu_s_per_cycle,
            "user+sys, median",
        ),
        row(
            "collector cycle s, with faulty miners",
            l.collector_cycle_s_with_faults,
            collector_note(runs.collector_faults.as_ref(), "offline"),
        ),
        row(
            "  collector CPU s per cycle",
            l.collector_cpu_s_per_cycle_with_faults,
            "user+sys, median",
        ),
    ];
    for name in BENCH_DATASETS {
        rows.extend(dataset_rows(latest, runs, name));
        if name == "metrics_aggregated" {
            rows.extend(rules_rows(latest, runs));
        }
    }
    for (id, bench) in &l.criterion {
        if let Some(rate) = bench.get("rows_per_s").and_then(serde_json::Value::as_f64) {
            let name = format!("criterion {id} (rows/s)");
            rows.push((name, Some(round_int(rate) as f64), String::new()));
        }
    }
    let mut out = format!(
        "\nadit bench — {} — {} cores, {}\n",
        l.timestamp, l.machine.cores, l.machine.cpu_model
    );
    let _ = writeln!(out, "{:<44} {:>16}  note", "measure", "value");
    for (name, value, note) in rows {
        let value = match (value, note.starts_with(SKIPPED)) {
            (None, true) => "skipped".to_string(),
            _ => cell(value),
        };
        let _ = writeln!(out, "{name:<44} {value:>16}  {note}");
    }
    out
}

/// A note that says a measure was not taken (its value prints `skipped`).
const SKIPPED: &str = "skipped: ";

/// The table lines of one dataset's step, when it ran.
fn dataset_rows(latest: &Latest, runs: &Runs, name: &str) -> Vec<(String, Option<f64>, String)> {
    let Some(run) = runs.datasets.get(name) else {
        return Vec::new();
    };
    let f = dataset_figures(runs, name);
    let upsert = name == "market_data";
    let raw_note = match upsert {
        true => "upsert: psql binary COPY to staging + INSERT … ON CONFLICT",
        false => "append: psql binary COPY into the table",
    };
    let e2e_note = match (&run.e2e, &run.measured.skipped) {
        (None, Some(why)) => format!("{SKIPPED}{why}"),
        (None, None) => format!("{SKIPPED}no load report"),
        (Some(e), _) => format!(
            "{} rows, {}",
            thousands(e.rows_acked as f64),
            match e.verified {
                Some(true) => "verified",
                _ => "NOT VERIFIED",
            }
        ),
    };
    let ratio_note = match upsert {
        true => String::new(),
        false => format!("target >= telemetry's e2e ratio ({:.2})", latest.e2e_ratio),
    };
    let dash = |note: &str| match run.e2e {
        None => format!("{SKIPPED}no end-to-end run"),
        Some(_) => note.to_string(),
    };
    vec![
        row(
            &format!("{name}: raw COPY (rows/s)"),
            f.raw_rows_per_s.map(|v| v as f64),
            raw_note,
        ),
        row(
            "  adit end to end (rows/s)",
            f.rows_per_s.map(|v| v as f64),
            e2e_note,
        ),
        row("  ratio to raw COPY", f.ratio, dash(&ratio_note)),
        row(
            "  adit CPU s per million rows",
            f.cpu_s_per_million_rows,
            dash("user+sys"),
        ),
    ]
}

/// The table lines of the rules-on run, when it ran.
fn rules_rows(latest: &Latest, runs: &Runs) -> Vec<(String, Option<f64>, String)> {
    let Some(r) = &runs.alert_rules else {
        return Vec::new();
    };
    let verified = match r.e2e.verified {
        Some(true) => "verified",
        _ => "NOT VERIFIED",
    };
    vec![
        row(
            &format!("  with {} alert rules (rows/s)", r.measured.rules),
            latest
                .dataset_metrics_aggregated_rules_on_rows_per_s
                .map(|v| v as f64),
            format!("{} rows, {verified}", thousands(r.e2e.rows_acked as f64)),
        ),
        row(
            "  rules on / rules off",
            latest.dataset_metrics_aggregated_rules_on_ratio,
            "same rows, same run; 1.00 = no cost",
        ),
        row(
            "  adit CPU s per million rows, rules on",
            latest.dataset_metrics_aggregated_rules_on_cpu_s_per_million_rows,
            "user+sys",
        ),
    ]
}

fn row(name: &str, value: Option<f64>, note: impl Into<String>) -> (String, Option<f64>, String) {
    (name.to_string(), value, note.into())
}

/// A table value: thousands-separated from 100 up, one decimal from 10,
/// two below; a missing figure is a benchmark that was not built.
fn cell(value: Option<f64>) -> String {
    match value {
        None => "n/a (not built)".to_string(),
        Some(v) if v >= 100.0 => thousands(v),
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// `1234567.4` → `1,234,567`.
fn thousands(v: f64) -> String {
    let digits = format!("{v:.0}");
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", digits.as_str()),
    };
    let mut out = String::with_capacity(digits.len() * 4 / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// Writes `<dir>/latest.json` and prints the table (`adit bench-report`).
pub fn report(dir: &Path, m: Measured) -> anyhow::Result<()> {
    let runs = read_runs(dir)?;
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let latest = build(&runs, m, this_machine(), timestamp)?;
    let path = dir.join("latest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&latest)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    print!("{}", table(&latest, &runs));
    println!("\nwritten to {}", path.display());
    Ok(())
}

/// Rows per second of a copy of `rows` rows between two `date +%s.%N`
/// stamps, to the nearest row.
pub fn rows_per_s(rows: u64, from: f64, to: f64) -> anyhow::Result<u64> {
    if to <= from {
        bail!("--to ({to}) must be after --from ({from})");
    }
    Ok(round_int(rows as f64 / (to - from)) as u64)
}

/// A load run's uploads/s times `factor`, to two decimals: the rate of
/// the open-model runs that follow it (half of it, three times it).
pub fn scaled_upload_rate(report: &Path, factor: f64) -> anyhow::Result<f64> {
    let run: LoadFigures = read_json(report)?;
    Ok(round_to(run.uploads_per_s * factor, 2))
}

/// This machine's logical cores and CPU model (from /proc/cpuinfo).
pub fn this_machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |line: &str, name: &str| {
        line.strip_prefix(name)
            .filter(|rest| rest.trim_start().starts_with(':'))
            .map(|rest| {
                rest.split_once(':')
                    .map_or("", |(_, v)| v)
                    .trim()
                    .to_string()
            })
    };
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| field(l, "model name"))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let listed = cpuinfo
        .lines()
        .filter(|l| field(l, "processor").is_some())
        .count();
    let cores = match listed {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    Machine { cores, cpu_model }
}

/// A report that a bench step may not have written (`None` when absent).
fn read_optional<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a bench report", path.display()))
}

/// Nearest integer, halves to even (as the report always rounded).
fn round_int(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// `v` to `digits` decimals, halves to even.
fn round_to(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round_ties_even() / scale
}

#[cfg(test)]
mod tests;
