use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::Array;

use super::*;
use crate::Catalog;

/// 2025-07-01T10:31:00Z: a minute after the seed's example row.
const NOW: i64 = 1_751_365_860_000_000;

fn dataset(name: &str) -> std::sync::Arc<Declared> {
    Catalog::shipped().unwrap().get(name).unwrap().clone()
}

fn run(name: &str, body: &str, format: BodyFormat) -> Decoded {
    decode(
        &dataset(name),
        body.as_bytes(),
        format,
        &Limits::default(),
        NOW,
    )
    .unwrap()
}

const METRICS_ROW: &str = r#"{"timestamp":"2025-07-01T10:30:00Z","service_name":"model-api-v1","api_endpoint":"/predict","qps":2.50,"avg_latency_ms":120.50,"p95_latency_ms":180.20,"p99_latency_ms":250.80,"error_rate":0.0200,"total_requests":1500}"#;

#[test]
fn the_seeds_metrics_row_becomes_typed_columns() {
    let d = run(
        "metrics_aggregated",
        &format!("[{METRICS_ROW}]"),
        BodyFormat::JsonArray,
    );
    assert!(d.rejects.is_empty(), "{:?}", d.rejects);
    let b = &d.batch;
    assert_eq!(b.num_rows(), 1);
    assert_eq!(b.schema().field(0).name(), "timestamp");
    let ts = b.column(0).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.value(0), NOW - 60_000_000);
    assert_eq!(b.column(1).as_string::<i32>().value(0), "model-api-v1");
    assert_eq!(b.column(3).as_primitive::<Float64Type>().value(0), 2.5);
    assert_eq!(b.column(7).as_primitive::<Float64Type>().value(0), 0.02);
    assert_eq!(b.column(8).as_primitive::<Int64Type>().value(0), 1500);
    assert!(b.column(9).is_null(0), "no extra members, no extra");
}

#[test]
fn ndjson_lines_decode_like_array_elements_and_a_broken_line_is_its_own_reject() {
    let body = format!("{METRICS_ROW}\r\n\n{{\"timestamp\": oops}}\n{METRICS_ROW}\n");
    let d = run("metrics_aggregated", &body, BodyFormat::Ndjson);
    assert_eq!(d.batch.num_rows(), 2);
    assert_eq!(d.rejects.len(), 1);
    assert_eq!(d.rejects[0].error.index, 1);
    assert_eq!(d.rejects[0].error.field, "row");
    assert!(d.rejects[0].error.reason.starts_with("not valid JSON"));
    assert_eq!(d.rejects[0].raw_json, "{\"timestamp\": oops}");
    assert_eq!(
        BodyFormat::from_content_type(Some("application/x-ndjson; charset=utf-8")),
        BodyFormat::Ndjson
    );
    assert_eq!(
        BodyFormat::from_content_type(Some("application/json")),
        BodyFormat::JsonArray
    );
    assert_eq!(BodyFormat::from_content_type(None), BodyFormat::JsonArray);
}

fn metrics_with(field: &str, value: &str) -> String {
    let mut v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(METRICS_ROW).unwrap();
    v.insert(field.into(), serde_json::from_str(value).unwrap());
    serde_json::to_string(&v).unwrap()
}

#[test]
fn a_row_that_breaks_a_rule_is_refused_alone_with_a_reason() {
    let bad = [
        (
            metrics_with("error_rate", "1.5"),
            "error_rate",
            "above the maximum 1",
        ),
        (metrics_with("qps", "\"fast\""), "qps", "expected a number"),
        (
            metrics_with("total_requests", "1.5"),
            "total_requests",
            "not an integer",
        ),
        (
            metrics_with("service_name", "null"),
            "service_name",
            "required",
        ),
        (
            metrics_with("timestamp", "\"2025-07-01T11:30:00Z\""),
            "timestamp",
            "future",
        ),
        (
            metrics_with("timestamp", "\"2025-05-01T10:30:00Z\""),
            "timestamp",
            "retention (30d)",
        ),
        (
            metrics_with("service_name", &format!("\"{}\"", "s".repeat(101))),
            "service_name",
            "longer than 100",
        ),
        (
            r#"{"timestamp":1751365800,"timestamp":1751365800}"#.to_string(),
            "timestamp",
            "duplicate",
        ),
        (r#"[1]"#.to_string(), "row", "expected a JSON object"),
        (metrics_with("note", r#""\u0000""#), "note", "\\u0000"),
    ];
    let body = std::iter::once(METRICS_ROW.to_string())
        .chain(bad.iter().map(|(row, _, _)| row.clone()))
        .collect::<Vec<_>>()
        .join(",");
    let d = run(
        "metrics_aggregated",
        &format!("[{body}]"),
        BodyFormat::JsonArray,
    );
    assert_eq!(d.batch.num_rows(), 1);
    assert_eq!(d.rejects.len(), bad.len());
    for (k, (row, field, reason)) in bad.iter().enumerate() {
        let e = &d.rejects[k].error;
        assert_eq!(e.index as usize, k + 1);
        assert_eq!(&e.field, field, "{row}");
        assert!(e.reason.contains(reason), "{row}: {}", e.reason);
        assert_eq!(&d.rejects[k].raw_json, row);
    }
    assert_eq!(d.errors.len(), bad.len());
}

#[test]
fn unknown_members_are_kept_in_extra_as_sent() {
    let row = metrics_with("region", "\"eu-1\"").replace('}', r#","tags":{"a":[1,2]}}"#);
    let d = run(
        "metrics_aggregated",
        &format!("[{row}]"),
        BodyFormat::JsonArray,
    );
    let extra = d.batch.column(9).as_string::<i32>();
    assert_eq!(extra.value(0), r#"{"region":"eu-1","tags":{"a":[1,2]}}"#);
}

const BAR: &str = r#"{"timestamp":"2025-07-01T10:00:00Z","asset":"BTC","timeframe":"1h","open":107000.10,"high":107500.55,"low":106800.00,"close":107250.25,"volume":1234.56789012,"rsi_14":55.123,"source":"binance"}"#;

fn bar_with(field: &str, value: &str) -> String {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(BAR).unwrap();
    v.insert(field.into(), serde_json::from_str(value).unwrap());
    serde_json::to_string(&v).unwrap()
}

#[test]
fn market_bars_are_exact_decimals_and_their_checks_hold() {
    let bad = [
        (bar_with("high", "106000"), "high", "below open"),
        (bar_with("low", "107600"), "high", "below low"),
        (bar_with("low", "107100"), "low", "above open"),
        (bar_with("volume", "-1"), "volume", "below the minimum 0"),
        (
            bar_with("timestamp", "\"2025-07-01T10:05:00Z\""),
            "timestamp",
            "not aligned to its timeframe 1h",
        ),
        (
            bar_with("timeframe", "\"2h\""),
            "timeframe",
            "one of 1m, 5m, 1h, 4h, 1d",
        ),
        (bar_with("open", "1e20"), "open", "at most 18 digits"),
    ];
    let body = std::iter::once(BAR.to_string())
        .chain(bad.iter().map(|(r, _, _)| r.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    let d = run("market_data", &body, BodyFormat::Ndjson);
    assert_eq!(d.batch.num_rows(), 1, "{:?}", d.errors);
    for (k, (row, field, reason)) in bad.iter().enumerate() {
        let e = &d.rejects[k].error;
        assert_eq!(
            (&e.field, e.index as usize),
            (&field.to_string(), k + 1),
            "{row}"
        );
        assert!(e.reason.contains(reason), "{row}: {}", e.reason);
    }
    let b = &d.batch;
    let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
    assert_eq!(
        col("open").as_primitive::<Decimal128Type>().value(0),
        10_700_010
    );
    assert_eq!(
        col("volume").as_primitive::<Decimal128Type>().value(0),
        123_456_789_012
    );
    assert_eq!(
        col("rsi_14").as_primitive::<Decimal128Type>().value(0),
        5512
    );
    assert!(col("ema_21").is_null(0));
    // A daily bar at midnight UTC is aligned; unix seconds count as times.
    let daily = bar_with("timeframe", "\"1d\"").replace("\"2025-07-01T10:00:00Z\"", "1751328000");
    assert!(run("market_data", &daily, BodyFormat::Ndjson)
        .rejects
        .is_empty());
}

#[test]
fn whole_body_problems_refuse_the_batch() {
    let d = dataset("metrics_aggregated");
    let limits = Limits {
        max_rows: 2,
        max_depth: 4,
        ..Limits::default()
    };
    let run = |body: &str, f| {
        decode(&d, body.as_bytes(), f, &limits, NOW)
            .unwrap_err()
            .code()
    };
    assert_eq!(run("{}", BodyFormat::JsonArray), "malformed_json");
    assert_eq!(run("[{}", BodyFormat::JsonArray), "malformed_json");
    assert_eq!(run("[[[[[1]]]]]", BodyFormat::JsonArray), "malformed_json");
    assert_eq!(
        run("[{},{},{}]", BodyFormat::JsonArray),
        "payload_too_large"
    );
    assert_eq!(
        run("{}\n{}\n\n{}\n", BodyFormat::Ndjson),
        "payload_too_large"
    );
    assert_eq!(
        run("{\"a\":[[[[1]]]]}", BodyFormat::Ndjson),
        "malformed_json"
    );
    let not_utf8 = decode(&d, b"[\"\xff\"]", BodyFormat::JsonArray, &limits, NOW).unwrap_err();
    assert!(not_utf8.to_string().contains("UTF-8"));
    let empty = decode(&d, b"[]", BodyFormat::JsonArray, &limits, NOW).unwrap();
    assert_eq!((empty.batch.num_rows(), empty.rejects.len()), (0, 0));
    let empty = decode(&d, b"", BodyFormat::Ndjson, &limits, NOW).unwrap();
    assert_eq!(empty.batch.num_rows(), 0);
}
