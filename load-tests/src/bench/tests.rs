//! The bench report against what the Python report of the bench script
//! wrote for the same inputs (`EXPECTED_LATEST`, `EXPECTED_TABLE`).

use super::*;

const E2E: &str = r#"{"model":"closed","seconds":20.0,"uploads_ok":1200,"uploads_failed":0,"uploads_not_sent":0,"retries":0,"rows_acked":1200000,"rows_per_s":60012.5,"uploads_per_s":60.0125,"mb_per_s_compressed":3.1,"mb_per_s_raw":40.2,"latency_ms_p50":250.5,"latency_ms_p90":300.0,"latency_ms_p99":358.125,"latency_ms_p999":400.0,"latency_ms_max":410.0,"status_counts":{"200":1200},"generator_cpu_s":1.5,"verified":true}"#;
const HALF: &str = r#"{"model":"open","seconds":20.0,"uploads_ok":600,"uploads_failed":0,"uploads_not_sent":0,"retries":0,"rows_acked":600000,"rows_per_s":30000.0,"uploads_per_s":30.01,"mb_per_s_compressed":1.5,"mb_per_s_raw":20.1,"latency_ms_p50":12.5,"latency_ms_p90":20.0,"latency_ms_p99":45.25,"latency_ms_p999":50.0,"latency_ms_max":51.0,"status_counts":{"200":600},"generator_cpu_s":0.7,"verified":true}"#;
const FRONTDOOR: &str = r#"{"model":"closed","seconds":20.0,"uploads_ok":8000,"uploads_failed":0,"uploads_not_sent":0,"retries":0,"rows_acked":8000000,"rows_per_s":437000.5,"uploads_per_s":437.0005,"mb_per_s_compressed":20.0,"mb_per_s_raw":300.0,"latency_ms_p50":30.0,"latency_ms_p90":40.0,"latency_ms_p99":50.0,"latency_ms_p999":60.0,"latency_ms_max":70.0,"status_counts":{"200":8000},"generator_cpu_s":5.0}"#;
const OVERLOAD: &str = r#"{"model":"open","seconds":20.0,"uploads_ok":1500,"uploads_failed":2100,"uploads_not_sent":0,"retries":0,"rows_acked":1500000,"rows_per_s":75000.0,"uploads_per_s":180.0,"mb_per_s_compressed":4.0,"mb_per_s_raw":50.0,"latency_ms_p50":900.0,"latency_ms_p90":1500.0,"latency_ms_p99":2000.0,"latency_ms_p999":2100.0,"latency_ms_max":2200.0,"status_counts":{"200":1500,"503":2000,"timeout":100},"generator_cpu_s":2.0,"verified":false}"#;
const CRITERION: &str = r#"{
  "gzip_decode/10k": {
    "bytes_per_s": 250000000.0,
    "mb_per_s": 250.0,
    "mean_ns": 7700000.0
  },
  "parquet_encode/10k": {
    "mean_ns": 5000000.0,
    "rows_per_s": 2000000.0
  },
  "validate/1k": {
    "mean_ns": 1234.5,
    "rows_per_s": 810372.6
  }
}"#;

/// `scripts/bench.sh`'s former Python report printed this for the inputs
/// above (raw 70,000 / 120,000 rows/s, RSS 512.3 / 758.1 MiB, 1035 ticks).
const EXPECTED_LATEST: &str = r#"{
  "raw_copy_rows_per_s": 120000,
  "raw_copy_rows_per_s_1_stream": 70000,
  "raw_copy_rows_per_s_2_streams": 120000,
  "e2e_rows_per_s": 60012,
  "e2e_ratio": 0.5,
  "e2e_p50_ms": 250.5,
  "e2e_p99_ms": 358.125,
  "e2e_verified": true,
  "adit_cpu_s_per_million_rows": 8.62,
  "front_door_rows_per_s": 437000,
  "half_max_rate_uploads_per_s": 30.01,
  "p50_ms_at_half_max": 12.5,
  "p99_ms_at_half_max": 45.25,
  "peak_rss_mib": 758.1,
  "overload_offered_uploads_per_s": 180.04,
  "overload_peak_rss_mib": 758.1,
  "overload_acked_rows_per_s": 75000,
  "overload_shed_fraction": 0.556,
  "overload_verified": false,
  "parquet_rows_per_s_per_core": 2000000.0,
  "collector_miners": null,
  "collector_cycle_s": null,
  "collector_cpu_s_per_cycle": null,
  "collector_cycle_s_with_faults": null,
  "collector_cpu_s_per_cycle_with_faults": null,
  "collector_offline_with_faults": null,
  "dataset_metrics_aggregated_rows_per_s": null,
  "dataset_metrics_aggregated_raw_rows_per_s": null,
  "dataset_metrics_aggregated_ratio": null,
  "dataset_metrics_aggregated_cpu_s_per_million_rows": null,
  "dataset_metrics_aggregated_verified": null,
  "dataset_market_data_rows_per_s": null,
  "dataset_market_data_raw_rows_per_s": null,
  "dataset_market_data_ratio": null,
  "dataset_market_data_cpu_s_per_million_rows": null,
  "dataset_market_data_verified": null,
  "dataset_metrics_aggregated_alert_rules": null,
  "dataset_metrics_aggregated_rules_on_rows_per_s": null,
  "dataset_metrics_aggregated_rules_on_ratio": null,
  "dataset_metrics_aggregated_rules_on_cpu_s_per_million_rows": null,
  "dataset_metrics_aggregated_rules_on_verified": null,
  "criterion": {
    "gzip_decode/10k": {
      "bytes_per_s": 250000000.0,
      "mb_per_s": 250.0,
      "mean_ns": 7700000.0
    },
    "parquet_encode/10k": {
      "mean_ns": 5000000.0,
      "rows_per_s": 2000000.0
    },
    "validate/1k": {
      "mean_ns": 1234.5,
      "rows_per_s": 810372.6
    }
  },
  "machine": {
    "cores": 2,
    "cpu_model": "Intel(R) Xeon(R) Processor"
  },
  "timestamp": "2026-12-05T11:17:21+00:00"
}"#;

const EXPECTED_TABLE: &str = "
adit bench — 2026-12-05T11:17:21+00:00 — 2 cores, Intel(R) Xeon(R) Processor
measure                                                 value  note
raw psql binary COPY, best (rows/s)                   120,000  1 stream 70,000, 2 streams 120,000
adit end to end (rows/s)                               60,012  verified
e2e ratio to raw COPY                                    0.50  target >= 0.8
front door alone (rows/s)                             437,000  target >= 250,000
p50 ms at half max                                       12.5  at 30.0 uploads/s
p99 ms at half max                                       45.2  target <= 200
peak RSS MiB                                              758  target <= 1024
  at 3x max offered load                                  758  180 uploads/s offered, 56% shed with 503, NOT VERIFIED
  acked rows/s under overload                          75,000  
adit CPU s per million rows (e2e)                        8.62  user+sys
Parquet rows/s per core                             2,000,000  
collector cycle s, healthy farm (1 core)      n/a (not built)  
  collector CPU s per cycle                   n/a (not built)  user+sys, median
collector cycle s, with faulty miners         n/a (not built)  
  collector CPU s per cycle                   n/a (not built)  user+sys, median
criterion parquet_encode/10k (rows/s)               2,000,000  
criterion validate/1k (rows/s)                        810,373  
";

const MEASURED: Measured = Measured {
    raw_1: 70_000,
    raw_2: 120_000,
    rss_mib: 512.3,
    over_rss_mib: 758.1,
    cpu_ticks: 1035,
};

fn runs() -> Runs {
    let load = |json: &str| serde_json::from_str::<LoadFigures>(json).unwrap();
    Runs {
        e2e: load(E2E),
        half: load(HALF),
        frontdoor: load(FRONTDOOR),
        overload: load(OVERLOAD),
        criterion: serde_json::from_str(CRITERION).unwrap(),
        collector: None,
        collector_faults: None,
        datasets: BTreeMap::new(),
        alert_rules: None,
    }
}

fn machine() -> Machine {
    Machine {
        cores: 2,
        cpu_model: "Intel(R) Xeon(R) Processor".into(),
    }
}

const STAMP: &str = "2026-12-05T11:17:21+00:00";

#[test]
fn latest_json_keeps_every_key_and_value() {
    let latest = build(&runs(), MEASURED, machine(), STAMP.into()).unwrap();
    let json = serde_json::to_string_pretty(&latest).unwrap();
    assert_eq!(json, EXPECTED_LATEST);
    // The figures that take arithmetic, spelled out.
    assert_eq!(latest.raw_copy_rows_per_s, 120_000);
    assert_eq!(latest.e2e_rows_per_s, 60_012, "60012.5 rounds half to even");
    assert_eq!(latest.e2e_ratio, 0.5);
    assert_eq!(latest.adit_cpu_s_per_million_rows, 8.62);
    assert_eq!(latest.peak_rss_mib, 758.1);
    assert_eq!(latest.overload_offered_uploads_per_s, 180.04);
    assert_eq!(latest.overload_shed_fraction, 0.556, "2000 of 3600 answers");
    assert_eq!(latest.parquet_rows_per_s_per_core, Some(2_000_000.0));
}

#[test]
fn table_shows_each_measure_with_its_target() {
    let runs = runs();
    let latest = build(&runs, MEASURED, machine(), STAMP.into()).unwrap();
    assert_eq!(table(&latest, &runs), EXPECTED_TABLE);
}

#[test]
fn missing_verification_and_criterion_are_null() {
    let mut runs = runs();
    runs.e2e = runs.frontdoor.clone(); // a run without --verify
    runs.criterion.clear(); // BENCH_SKIP_CRITERION=1
    let latest = build(&runs, MEASURED, machine(), STAMP.into()).unwrap();
    let json: serde_json::Value = serde_json::to_value(&latest).unwrap();
    assert_eq!(json["e2e_verified"], serde_json::Value::Null);
    assert_eq!(json["parquet_rows_per_s_per_core"], serde_json::Value::Null);
    assert_eq!(json["criterion"], serde_json::json!({}));
    let table = table(&latest, &runs);
    assert!(table.contains("n/a (not built)"), "{table}");
    assert!(table.contains("NOT VERIFIED"), "{table}");
    assert!(!table.contains("criterion "), "{table}");
}

#[test]
fn no_raw_rate_is_refused() {
    let m = Measured {
        raw_1: 0,
        raw_2: 0,
        ..MEASURED
    };
    assert!(build(&runs(), m, machine(), STAMP.into()).is_err());
}

#[test]
fn report_reads_the_runs_and_writes_latest_json() {
    let dir = std::env::temp_dir().join(format!("adit-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, json) in [
        ("e2e", E2E),
        ("half", HALF),
        ("frontdoor", FRONTDOOR),
        ("overload", OVERLOAD),
        ("criterion", CRITERION),
    ] {
        std::fs::write(dir.join(format!("{name}.json")), json).unwrap();
    }
    report(&dir, MEASURED).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("latest.json")).unwrap()).unwrap();
    let expected: serde_json::Value = serde_json::from_str(EXPECTED_LATEST).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&written), keys(&expected));
    for key in keys(&expected) {
        if !["machine", "timestamp"].contains(&key.as_str()) {
            assert_eq!(written[&key], expected[&key], "{key}");
        }
    }
    let stamp = written["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with("+00:00"));
    assert!(written["machine"]["cores"].as_u64().unwrap() >= 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_run_is_named() {
    let dir = std::env::temp_dir().join(format!("adit-bench-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = read_runs(&dir).unwrap_err();
    assert!(format!("{err:#}").contains("e2e.json"), "{err:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rates_between_runs() {
    assert_eq!(rows_per_s(1_000_000, 10.0, 12.5).unwrap(), 400_000);
    assert_eq!(rows_per_s(1000, 0.0, 3.0).unwrap(), 333);
    assert!(rows_per_s(1000, 3.0, 3.0).is_err());
    let dir = std::env::temp_dir().join(format!("adit-bench-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e2e = dir.join("e2e.json");
    std::fs::write(&e2e, E2E).unwrap();
    // 60.0125 uploads/s: half and three times, to two decimals.
    assert_eq!(scaled_upload_rate(&e2e, 0.5).unwrap(), 30.01);
    assert_eq!(scaled_upload_rate(&e2e, 3.0).unwrap(), 180.04);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn numbers_round_as_before() {
    assert_eq!(round_int(2.5), 2);
    assert_eq!(round_int(3.5), 4);
    assert_eq!(thousands(999.0), "999");
    assert_eq!(thousands(1_234_567.4), "1,234,567");
    assert_eq!(cell(Some(99.94)), "99.9");
    assert_eq!(cell(Some(9.999)), "10.00");
    assert_eq!(cell(None), "n/a (not built)");
}

#[test]
fn this_machine_has_cores_and_a_model() {
    let m = this_machine();
    assert!(m.cores >= 1);
    assert!(!m.cpu_model.is_empty());
}

const COLLECTOR: &str = r#"{"miners":5000,"cycles":5,"cycle_s_median":0.594,"cycle_s_max":0.76,"cpu_s_per_cycle_median":0.58,"online_median":5000,"offline_median":0}"#;
const COLLECTOR_FAULTS: &str = r#"{"miners":5000,"cycles":5,"cycle_s_median":10.608,"cycle_s_max":10.848,"cpu_s_per_cycle_median":0.6,"online_median":4914,"offline_median":86}"#;

#[test]
fn the_collector_cycles_go_into_latest_json_and_the_table() {
    let mut runs = runs();
    runs.collector = Some(serde_json::from_str(COLLECTOR).unwrap());
    runs.collector_faults = Some(serde_json::from_str(COLLECTOR_FAULTS).unwrap());
    let latest = build(&runs, MEASURED, machine(), STAMP.into()).unwrap();
    assert_eq!(latest.collector_miners, Some(5000));
    assert_eq!(latest.collector_cycle_s, Some(0.594));
    assert_eq!(latest.collector_cpu_s_per_cycle, Some(0.58));
    assert_eq!(latest.collector_cycle_s_with_faults, Some(10.608));
    assert_eq!(latest.collector_cpu_s_per_cycle_with_faults, Some(0.6));
    assert_eq!(latest.collector_offline_with_faults, Some(86));
    let table = table(&latest, &runs);
    assert!(
        table.contains("collector cycle s, healthy farm (1 core)                 0.59  5,000 miners, 5 cycles, max 0.76 s; target < 60"),
        "{table}"
    );
    assert!(
        table.contains("collector cycle s, with faulty miners                    10.6  5,000 miners, 86 offline; max 10.8 s; target < 60"),
        "{table}"
    );
}

#[test]
fn the_collector_reports_are_read_when_present() {
    let dir = std::env::temp_dir().join(format!("adit-bench-collector-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, json) in [
        ("e2e", E2E),
        ("half", HALF),
        ("frontdoor", FRONTDOOR),
        ("overload", OVERLOAD),
        ("criterion", CRITERION),
        ("collector", COLLECTOR),
    ] {
        std::fs::write(dir.join(format!("{name}.json")), json).unwrap();
    }
    let runs = read_runs(&dir).unwrap();
    assert_eq!(runs.collector.as_ref().map(|c| c.miners), Some(5000));
    assert!(runs.collector_faults.is_none());
    std::fs::write(dir.join("collector-faults.json"), "{}").unwrap();
    let err = read_runs(&dir).unwrap_err();
    assert!(
        format!("{err:#}").contains("collector-faults.json"),
        "{err:#}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

const DS_METRICS: &str = r#"{"dataset":"metrics_aggregated","model":"closed","seconds":4.0,"uploads_ok":200,"uploads_failed":0,"uploads_not_sent":0,"retries":0,"rows_acked":200000,"rows_per_s":50000.4,"uploads_per_s":50.0,"mb_per_s_compressed":2.0,"mb_per_s_raw":20.0,"latency_ms_p50":300.0,"latency_ms_p90":320.0,"latency_ms_p99":350.0,"latency_ms_p999":360.0,"latency_ms_max":370.0,"status_counts":{"200":200},"generator_cpu_s":0.5,"verified":true}"#;

fn with_datasets() -> Runs {
    let mut runs = runs();
    runs.datasets.insert(
        "metrics_aggregated".into(),
        DatasetRun {
            measured: serde_json::from_str(r#"{"raw_rows_per_s":100000,"adit_cpu_ticks":250}"#)
                .unwrap(),
            e2e: Some(serde_json::from_str(DS_METRICS).unwrap()),
        },
    );
    runs.datasets.insert(
        "market_data".into(),
        DatasetRun {
            measured: serde_json::from_str(
                r#"{"raw_rows_per_s":40000,"adit_cpu_ticks":null,"skipped":"POST /api/datasets/market_data/upload answered 404"}"#,
            )
            .unwrap(),
            e2e: None,
        },
    );
    runs
}

#[test]
fn dataset_figures_go_into_latest_json_and_the_table() {
    let runs = with_datasets();
    let latest = build(&runs, MEASURED, machine(), STAMP.into()).unwrap();
    assert_eq!(latest.dataset_metrics_aggregated_rows_per_s, Some(50_000));
    assert_eq!(
        latest.dataset_metrics_aggregated_raw_rows_per_s,
        Some(100_000)
    );
    assert_eq!(latest.dataset_metrics_aggregated_ratio, Some(0.5));
    // 2.5 s of CPU over 200,000 rows.
    assert_eq!(
        latest.dataset_metrics_aggregated_cpu_s_per_million_rows,
        Some(12.5)
    );
    assert_eq!(latest.dataset_metrics_aggregated_verified, Some(true));
    // The upsert's raw COPY ran; its end to end was skipped (no endpoint).
    assert_eq!(latest.dataset_market_data_raw_rows_per_s, Some(40_000));
    assert_eq!(latest.dataset_market_data_rows_per_s, None);
    assert_eq!(latest.dataset_market_data_ratio, None);
    assert_eq!(latest.dataset_market_data_cpu_s_per_million_rows, None);
    assert_eq!(latest.dataset_market_data_verified, None);
    let json = serde_json::to_value(&latest).unwrap();
    assert_eq!(
        json["dataset_market_data_rows_per_s"],
        serde_json::Value::Null
    );
    assert_eq!(json["dataset_metrics_aggregated_ratio"], 0.5);

    let table = table(&latest, &runs);
    // The existing lines are all still there, in order, before the new ones.
    let expected_lines: Vec<&str> = EXPECTED_TABLE.lines().collect();
    let lines: Vec<&str> = table.lines().collect();
    let criterion_at = expected_lines
        .iter()
        .position(|l| l.starts_with("criterion "))
        .unwrap();
    assert_eq!(lines[..criterion_at], expected_lines[..criterion_at]);
    assert_eq!(
        lines[lines.len() - 2..],
        expected_lines[expected_lines.len() - 2..]
    );
    let new: Vec<&str> = lines[criterion_at..lines.len() - 2].to_vec();
    assert_eq!(
        new,
        [
            "metrics_aggregated: raw COPY (rows/s)                 100,000  append: psql binary COPY into the table",
            "  adit end to end (rows/s)                             50,000  200,000 rows, verified",
            "  ratio to raw COPY                                      0.50  target >= telemetry's e2e ratio (0.50)",
            "  adit CPU s per million rows                            12.5  user+sys",
            "market_data: raw COPY (rows/s)                         40,000  upsert: psql binary COPY to staging + INSERT … ON CONFLICT",
            "  adit end to end (rows/s)                            skipped  skipped: POST /api/datasets/market_data/upload answered 404",
            "  ratio to raw COPY                                   skipped  skipped: no end-to-end run",
            "  adit CPU s per million rows                         skipped  skipped: no end-to-end run",
        ]
    );
}

#[test]
fn the_dataset_reports_are_read_when_present() {
    let dir = std::env::temp_dir().join(format!("adit-bench-datasets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, json) in [
        ("e2e", E2E),
        ("half", HALF),
        ("frontdoor", FRONTDOOR),
        ("overload", OVERLOAD),
        ("criterion", CRITERION),
    ] {
        std::fs::write(dir.join(format!("{name}.json")), json).unwrap();
    }
    assert!(read_runs(&dir).unwrap().datasets.is_empty());
    std::fs::write(
        dir.join("dataset-metrics_aggregated-raw.json"),
        r#"{"raw_rows_per_s":100000,"adit_cpu_ticks":250}"#,
    )
    .unwrap();
    std::fs::write(dir.join("dataset-metrics_aggregated.json"), DS_METRICS).unwrap();
    std::fs::write(
        dir.join("dataset-market_data-raw.json"),
        r#"{"raw_rows_per_s":40000,"skipped":"404"}"#,
    )
    .unwrap();
    let runs = read_runs(&dir).unwrap();
    assert_eq!(runs.datasets.len(), 2);
    assert!(runs.datasets["metrics_aggregated"].e2e.is_some());
    assert!(runs.datasets["market_data"].e2e.is_none());
    report(&dir, MEASURED).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("latest.json")).unwrap()).unwrap();
    assert_eq!(written["dataset_metrics_aggregated_rows_per_s"], 50_000);
    assert_eq!(written["dataset_market_data_raw_rows_per_s"], 40_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

const DS_RULES: &str = r#"{"dataset":"metrics_aggregated","model":"closed","seconds":5.0,"uploads_ok":200,"uploads_failed":0,"uploads_not_sent":0,"retries":0,"rows_acked":200000,"rows_per_s":45000.2,"uploads_per_s":45.0,"mb_per_s_compressed":2.0,"mb_per_s_raw":20.0,"latency_ms_p50":330.0,"latency_ms_p90":350.0,"latency_ms_p99":380.0,"latency_ms_p999":390.0,"latency_ms_max":400.0,"status_counts":{"200":200},"generator_cpu_s":0.5,"verified":true}"#;

#[test]
fn the_alert_rules_run_goes_into_latest_json_and_the_table() {
    let mut runs = with_datasets();
    runs.alert_rules = Some(AlertRulesRun {
        measured: serde_json::from_str(r#"{"rules":100,"adit_cpu_ticks":300}"#).unwrap(),
        e2e: serde_json::from_str(DS_RULES).unwrap(),
    });
    let latest = build(&runs, MEASURED, machine(), STAMP.into()).unwrap();
    assert_eq!(latest.dataset_metrics_aggregated_alert_rules, Some(100));
    assert_eq!(
        latest.dataset_metrics_aggregated_rules_on_rows_per_s,
        Some(45_000)
    );
    // 45,000.2 / 50,000.4 rows/s.
    assert_eq!(latest.dataset_metrics_aggregated_rules_on_ratio, Some(0.9));
    // 3 s of CPU over 200,000 rows.
    assert_eq!(
        latest.dataset_metrics_aggregated_rules_on_cpu_s_per_million_rows,
        Some(15.0)
    );
    assert_eq!(
        latest.dataset_metrics_aggregated_rules_on_verified,
        Some(true)
    );
    // The rules-off figures are those of the run without rules.
    assert_eq!(latest.dataset_metrics_aggregated_rows_per_s, Some(50_000));
    let table = table(&latest, &runs);
    let lines: Vec<&str> = table.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("  adit CPU s per million rows    "))
        .unwrap();
    assert_eq!(
        lines[at + 1..at + 4],
        [
            "  with 100 alert rules (rows/s)                        45,000  200,000 rows, verified",
            "  rules on / rules off                                   0.90  same rows, same run; 1.00 = no cost",
            "  adit CPU s per million rows, rules on                  15.0  user+sys",
        ]
    );
    assert!(lines[at + 4].starts_with("market_data: raw COPY"));
    // Without the rules-off run there is no ratio.
    runs.datasets.remove("metrics_aggregated");
    let latest = build(&runs, MEASURED, machine(), STAMP.into()).unwrap();
    assert_eq!(latest.dataset_metrics_aggregated_rules_on_ratio, None);
    assert_eq!(
        latest.dataset_metrics_aggregated_rules_on_rows_per_s,
        Some(45_000)
    );
}

#[test]
fn the_alert_rules_reports_are_read_only_together() {
    let dir = std::env::temp_dir().join(format!("adit-bench-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(read_alert_rules(&dir).unwrap().is_none());
    std::fs::write(
        dir.join("dataset-metrics_aggregated-rules-raw.json"),
        r#"{"rules":100,"adit_cpu_ticks":300}"#,
    )
    .unwrap();
    assert!(read_alert_rules(&dir).unwrap().is_none(), "no load report");
    std::fs::write(dir.join("dataset-metrics_aggregated-rules.json"), DS_RULES).unwrap();
    let r = read_alert_rules(&dir).unwrap().unwrap();
    assert_eq!(r.measured.rules, 100);
    assert_eq!(r.e2e.rows_acked, 200_000);
    std::fs::remove_dir_all(&dir).unwrap();
}
