use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::*;

const S: i64 = 1_000_000;

/// Rows (seconds, service, endpoint, p95, total_requests).
fn batch(rows: &[(i64, &str, &str, Option<f64>, i64)]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("service_name", DataType::Utf8, false),
        Field::new("api_endpoint", DataType::Utf8, false),
        Field::new("p95_latency_ms", DataType::Float64, true),
        Field::new("total_requests", DataType::Int64, true),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|r| r.0 * S).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).unwrap()
}

fn rule(id: i64, metric: &str, op: Operator, threshold: f64, for_s: i64) -> Rule {
    Rule {
        id,
        name: format!("r{id}"),
        service_name: None,
        metric: metric.into(),
        operator: op,
        threshold,
        severity: Severity::High,
        for_micros: for_s * S,
    }
}

/// (open?, rule, endpoint, time in seconds) of the alert changes.
fn alerts(changes: &[Change]) -> Vec<(bool, i64, String, i64)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Open {
                rule_id,
                endpoint,
                started_at,
                ..
            } => Some((true, *rule_id, endpoint.clone(), started_at / S)),
            Change::Resolve {
                rule_id,
                endpoint,
                at,
                ..
            } => Some((false, *rule_id, endpoint.clone(), at / S)),
            Change::Seen { .. } => None,
        })
        .collect()
}

#[test]
fn each_operator_breaches_as_named() {
    let cases = [
        (Operator::GreaterThan, [false, false, true]),
        (Operator::GreaterEqual, [false, true, true]),
        (Operator::LessThan, [true, false, false]),
        (Operator::LessEqual, [true, true, false]),
        (Operator::Equal, [false, true, false]),
    ];
    for (op, want) in cases {
        let got = [99.0, 100.0, 101.0].map(|v| op.breaches(v, 100.0));
        assert_eq!(got, want, "{op:?}");
        assert_eq!(Operator::parse(op.as_str()), Some(op));
    }
    assert_eq!(Operator::parse("gt"), None);
}

#[test]
fn opens_once_and_resolves_on_a_later_clear_row() {
    let e = AlertEngine::new();
    e.set_rules(vec![rule(
        1,
        "p95_latency_ms",
        Operator::GreaterThan,
        100.0,
        0,
    )]);
    let c = e.evaluate(&batch(&[
        (10, "a", "/x", Some(150.0), 1),
        (20, "a", "/x", Some(160.0), 1),
        (20, "a", "/y", Some(50.0), 1),
    ]));
    // /y's first row clears: a resolve another node's alert may need.
    assert_eq!(
        alerts(&c),
        [(true, 1, "/x".into(), 10), (false, 1, "/y".into(), 20)]
    );
    let c = e.evaluate(&batch(&[
        (30, "a", "/x", Some(90.0), 1),
        (40, "a", "/x", Some(80.0), 1),
    ]));
    assert_eq!(alerts(&c), [(false, 1, "/x".into(), 30)]);
}

#[test]
fn for_duration_holds_by_row_time() {
    let e = AlertEngine::new();
    e.set_rules(vec![rule(
        1,
        "total_requests",
        Operator::GreaterEqual,
        5.0,
        120,
    )]);
    let c = e.evaluate(&batch(&[
        (0, "a", "/x", None, 5),
        (60, "a", "/x", None, 6),
        (119, "a", "/x", None, 7),
    ]));
    assert_eq!(alerts(&c), []);
    let c = e.evaluate(&batch(&[(120, "a", "/x", None, 8)]));
    assert_eq!(alerts(&c), [(true, 1, "/x".into(), 0)]);
    // A clear row restarts the clock.
    let c = e.evaluate(&batch(&[
        (180, "a", "/x", None, 1),
        (240, "a", "/x", None, 9),
        (300, "a", "/x", None, 9),
    ]));
    assert_eq!(alerts(&c), [(false, 1, "/x".into(), 180)]);
}

#[test]
fn an_older_row_does_not_flip_state() {
    let e = AlertEngine::new();
    e.set_rules(vec![rule(
        1,
        "p95_latency_ms",
        Operator::GreaterThan,
        100.0,
        0,
    )]);
    let c = e.evaluate(&batch(&[(100, "a", "/x", Some(500.0), 1)]));
    assert_eq!(alerts(&c), [(true, 1, "/x".into(), 100)]);
    // Late clear row from before the breach: ignored.
    let c = e.evaluate(&batch(&[(50, "a", "/x", Some(1.0), 1)]));
    assert_eq!(alerts(&c), []);
    // Within one batch, rows are judged by time as they come.
    let c = e.evaluate(&batch(&[
        (200, "a", "/x", Some(1.0), 1),
        (150, "a", "/x", Some(900.0), 1),
    ]));
    assert_eq!(alerts(&c), [(false, 1, "/x".into(), 200)]);
}

#[test]
fn service_filter_null_metric_and_counters() {
    let e = AlertEngine::new();
    let mut r = rule(1, "p95_latency_ms", Operator::GreaterThan, 100.0, 0);
    r.service_name = Some("b".into());
    e.set_rules(vec![r]);
    let c = e.evaluate(&batch(&[
        (1, "a", "/x", Some(500.0), 1),
        (1, "b", "/x", None, 1),
        (2, "b", "/x", Some(500.0), 1),
    ]));
    assert_eq!(alerts(&c), [(true, 1, "/x".into(), 2)]);
    assert_eq!(e.counters.evaluations.load(Ordering::Relaxed), 1);
    let seen: Vec<_> = c
        .iter()
        .filter_map(|c| match c {
            Change::Seen {
                service, last_seen, ..
            } => Some((service.as_str(), last_seen / S)),
            _ => None,
        })
        .collect();
    assert_eq!(seen.len(), 2);
    assert!(seen.contains(&("a", 1)) && seen.contains(&("b", 2)));
}

#[test]
fn an_edited_rule_starts_afresh_an_unchanged_one_keeps_state() {
    let e = AlertEngine::new();
    let r1 = rule(1, "p95_latency_ms", Operator::GreaterThan, 100.0, 0);
    let r2 = rule(2, "p95_latency_ms", Operator::GreaterThan, 10.0, 0);
    e.set_rules(vec![r1.clone(), r2.clone()]);
    e.evaluate(&batch(&[(1, "a", "/x", Some(500.0), 1)]));
    let mut edited = r1;
    edited.threshold = 1000.0;
    e.set_rules(vec![edited, r2]);
    let c = e.evaluate(&batch(&[(2, "a", "/x", Some(500.0), 1)]));
    // Rule 1 forgot its series: a first clear row resolves; rule 2 stays open.
    assert_eq!(alerts(&c), [(false, 1, "/x".into(), 2)]);
}

#[test]
fn numeric_columns_come_from_the_declaration() {
    let d = adit_types::dataset::Dataset {
        name: "m".into(),
        table: None,
        description: String::new(),
        time_column: "t".into(),
        mode: Default::default(),
        key: vec![],
        partition: adit_types::dataset::PartitionInterval::Day,
        retention: "30d".parse().unwrap(),
        sort: vec![],
        archive: true,
        columns: serde_json::from_str(
            r#"[{"name":"t","type":"timestamptz"},{"name":"s","type":"text"},
                {"name":"q","type":"double"},{"name":"n","type":"bigint"},{"name":"v","type":"double[]"}]"#,
        )
        .unwrap(),
        checks: vec![],
    };
    assert_eq!(numeric_columns(&d), ["q", "n"]);
}
