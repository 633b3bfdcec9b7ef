//! Each shipped dataset along the whole path: rows posted over HTTP to a
//! real adit → PostgreSQL → the archive's export of the closed day →
//! Parquet files that pyarrow reads back with the values that were sent.

mod common;

use std::collections::BTreeMap;

use adit_archive::dataset::{self as darchive, DatasetArchiveConfig};
use adit_archive::Archive;
use adit_dataset::Catalog;
use common::*;
use serde_json::{json, Value};

/// Reads every Parquet file under a directory: one JSON object per row,
/// the columns as pyarrow gives them (decimals and times as text).
const READ_ALL: &str = r#"
import sys, json, glob, pyarrow.parquet as pq
rows = []
for f in sorted(glob.glob(sys.argv[1] + '/**/*.parquet', recursive=True)):
    for r in pq.read_table(f).to_pylist():
        rows.append({k: (v if isinstance(v, (int, float, str, bool, type(None), list)) else str(v)) for k, v in r.items()})
print(json.dumps(rows))
"#;

/// Yesterday at `hour`:00 UTC, RFC 3339: a closed day, inside every
/// dataset's retention.
fn yesterday(hour: u32) -> String {
    let d = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    format!("{d}T{hour:02}:00:00Z")
}

/// The rows the README's examples send, on yesterday's day.
fn rows() -> BTreeMap<&'static str, Vec<Value>> {
    let t = yesterday(10);
    let t2 = yesterday(11);
    BTreeMap::from([
        (
            "metrics_aggregated",
            vec![
                json!({"timestamp": t, "service_name": "model-api-v1", "api_endpoint": "/predict",
                       "qps": 2.5, "avg_latency_ms": 120.5, "p95_latency_ms": 180.2, "p99_latency_ms": 250.8,
                       "error_rate": 0.02, "total_requests": 1500}),
                json!({"timestamp": t2, "service_name": "model-api-v1", "api_endpoint": "/embed",
                       "qps": 7.0, "avg_latency_ms": 40.0, "p95_latency_ms": 60.0, "p99_latency_ms": 90.0,
                       "error_rate": 0.0, "total_requests": 25200, "region": "eu-west"}),
            ],
        ),
        (
            "market_data",
            vec![
                json!({"timestamp": t, "asset": "BTC", "timeframe": "1h", "open": 100.00, "high": 101.25,
                       "low": 99.50, "close": 100.50, "volume": 12.5, "ema_21": 100.12, "rsi_14": 55.5,
                       "source": "binance"}),
                // The same bar re-sent corrected: it replaces the first.
                json!({"timestamp": t, "asset": "BTC", "timeframe": "1h", "open": 100.00, "high": 101.25,
                       "low": 99.50, "close": 100.75, "volume": 13.0, "ema_21": 100.12, "rsi_14": 56.0,
                       "source": "binance"}),
            ],
        ),
        (
            "agent_analysis_results",
            vec![
                json!({"timestamp": t, "execution_id": "7d3e2a1c-0b1f-4c6e-9a51-2f0e8d1b7c44",
                        "strategy_id": "btc-macro-v2", "agent_type": "macro", "score": 0.8, "confidence": 0.75,
                        "reasoning": "ETF inflows and a dovish Fed", "signals": {"etf_flow": "positive"},
                        "execution_time_ms": 4210, "tokens_used": 1830, "llm_model": "claude",
                        "llm_cost": 0.012345}),
            ],
        ),
        (
            "strategy_executions",
            vec![
                json!({"timestamp": t, "execution_id": "0c9a8f6e-5d4b-4a3c-8b2a-1e0f9d8c7b6a",
                        "strategy_id": "btc-macro-v2", "conviction_score": 0.67, "signal": "BUY",
                        "agent_scores": {"macro": 0.8, "ta": 0.5}, "action_taken": "executed",
                        "total_execution_time_ms": 9000, "total_tokens_used": 5120, "total_cost": 0.034,
                        "status": "completed"}),
            ],
        ),
    ])
}

/// A number as the file holds it (a double, or a decimal as text).
fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_dataset_goes_from_http_to_parquet_with_the_values_sent() {
    let srv = TestServer::start("dataset_path").await;
    let key = srv.key(12).await;
    for (name, body) in rows() {
        let body = Value::Array(body).to_string();
        let headers = [
            ("x-collector-key", key.as_str()),
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ];
        let path = format!("/api/datasets/{name}/upload");
        let r = request(srv.addr, "POST", &path, &headers, gzip(body.as_bytes()))
            .await
            .unwrap();
        assert_eq!(r.0, hyper::StatusCode::OK, "{name}: {}", r.2);
        let v: Value = serde_json::from_str(&r.2).unwrap();
        assert_eq!(v["data"]["rejected"], 0, "{name}: {v}");
    }
    // The corrected bar replaced the first: one row, the new close.
    assert_eq!(srv.count("SELECT count(*) FROM market_data").await, 1);

    // The archive's pass over the closed day (as `adit serve` runs it).
    let dir = std::env::temp_dir().join(format!("adit-dataset-path-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let archive = Archive::from_url(&format!("file://{}", dir.display())).unwrap();
    let catalog = Catalog::shipped().unwrap();
    let cfg = DatasetArchiveConfig {
        delay: std::time::Duration::ZERO,
        ..Default::default()
    };
    let mut client = connect(&srv.db_url).await;
    let report = darchive::pass(&mut client, &srv.db_url, &archive, &catalog, &cfg)
        .await
        .unwrap();
    assert_eq!(report.windows, 4, "one window per dataset: {report:?}");
    assert_eq!(report.rows, 5, "{report:?}");

    let day = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    for (name, sent) in rows() {
        let window = dir
            .join(name)
            .join("site_id=12")
            .join(format!("date={day}"));
        assert!(window.is_dir(), "{name}: no {}", window.display());
        let got: Vec<Value> =
            serde_json::from_str(&python(READ_ALL, &[window.to_str().unwrap()])).unwrap();
        match name {
            "metrics_aggregated" => {
                assert_eq!(got.len(), 2, "{got:?}");
                // Sorted by service, endpoint, time: /embed before /predict.
                assert_eq!(got[0]["api_endpoint"], "/embed");
                assert_eq!(got[1]["api_endpoint"], "/predict");
                assert_eq!(num(&got[1]["p99_latency_ms"]), 250.8);
                assert_eq!(num(&got[1]["error_rate"]), 0.02);
                assert_eq!(got[1]["total_requests"], 1500);
                // A field the declaration does not name is kept in extra.
                let extra: Value = serde_json::from_str(got[0]["extra"].as_str().unwrap()).unwrap();
                assert_eq!(extra, json!({"region": "eu-west"}));
            }
            "market_data" => {
                assert_eq!(got.len(), 1, "the corrected bar only: {got:?}");
                assert_eq!(num(&got[0]["close"]), 100.75);
                assert_eq!(num(&got[0]["volume"]), 13.0);
                assert_eq!(got[0]["timeframe"], "1h");
            }
            "agent_analysis_results" => {
                assert_eq!(got.len(), 1);
                assert_eq!(got[0]["execution_id"], sent[0]["execution_id"]);
                assert_eq!(num(&got[0]["llm_cost"]), 0.012345);
                let signals: Value =
                    serde_json::from_str(got[0]["signals"].as_str().unwrap()).unwrap();
                assert_eq!(signals, sent[0]["signals"]);
            }
            "strategy_executions" => {
                assert_eq!(got.len(), 1);
                assert_eq!(got[0]["signal"], "BUY");
                let scores: Value =
                    serde_json::from_str(got[0]["agent_scores"].as_str().unwrap()).unwrap();
                assert_eq!(scores, sent[0]["agent_scores"]);
            }
            other => panic!("unexpected dataset {other}"),
        }
        // The site and day are the hive-style path's (site_id=12/date=…), as
        // DuckDB, Polars and Spark read them, not columns of the file.
        assert!(
            got.iter().all(|r| r.get("site_id").is_none()),
            "{name}: {got:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    srv.stop().await;
}
